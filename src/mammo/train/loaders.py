"""Training DataLoaders: worker counts from cores and device, pinned memory on CUDA, seeded persistent workers."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch.utils.data import DataLoader

from mammo.datasets import PrepDataset
from mammo.io.cores import usable_cores
from mammo.seeding import worker_init_fn
from mammo.train.config import TrainConfig


def cpu_count() -> int:
    """CPU cores available to this process (affinity and cgroup quota), shared among the local DDP processes."""
    return max(1, usable_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def loader_workers(cfg: TrainConfig, device: torch.device) -> int:
    """Loader workers: the config's, or enough for a GPU, or few on CPU where the model is the bottleneck."""
    if cfg.workers is not None:
        return max(0, cfg.workers)
    cores = cpu_count()
    if device.type == "cuda":
        return min(8, max(1, cores - 1))
    return 0 if cores <= 2 else min(2, cores // 4)


def make_loader(
    ds: PrepDataset,
    cfg: TrainConfig,
    sampler: Any,
    workers: int,
    device: torch.device,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader with pinned memory on CUDA, persistent seeded workers, and the given sampler.

    Its own generator (fixed by the run seed) seeds the workers, so the loader never draws from the global
    torch RNG (dropout's): results do not depend on the number of workers.
    """
    generator = torch.Generator()
    generator.manual_seed(cfg.seed)
    return DataLoader(
        ds,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        worker_init_fn=worker_init_fn,
        generator=generator,
        drop_last=drop_last,
        prefetch_factor=4 if workers > 0 else None,
    )
