"""Training: augmentation, samplers, config, the loop (single process or DDP under torchrun)."""
