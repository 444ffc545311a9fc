"""Seeds for Python, NumPy and torch from (run seed, epoch), so a resumed run replays the same randomness."""

from __future__ import annotations

import random

import numpy as np
import torch


def derive_seed(*parts: int) -> int:
    """A 32-bit seed mixed from integers (run seed, epoch, sample index, ...) with NumPy's SeedSequence."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def seed_everything(seed: int, epoch: int = 0) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for this epoch of this run."""
    s = derive_seed(seed, epoch)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def worker_init_fn(worker_id: int) -> None:
    """Seed Python and NumPy inside a DataLoader worker from the seed torch gave that worker."""
    s = torch.initial_seed() % 2**32
    random.seed(s)
    np.random.seed(s)


def reseed_generator(generator: torch.Generator, seed: int, epoch: int, rank: int = 0) -> None:
    """Reset the Generator behind the training sampler's order for this epoch (and rank)."""
    generator.manual_seed(derive_seed(seed, epoch, rank, 1))
