"""Training: dataset, augmentation, loop (single process or DDP under torchrun), checkpoints."""
