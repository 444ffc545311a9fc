"""Training samplers: (index, epoch) tagging for per-sample augmentation seeds, class-balancing weights."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch.utils.data import Sampler


class EpochTagged(Sampler):
    """Wrap a sampler to yield (index, epoch): per-sample augmentation seeds survive persistent workers."""

    def __init__(self, sampler: Sampler, epoch: int = 0) -> None:
        self.sampler = sampler
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        """Tag the next pass with this epoch (and forward it to a DistributedSampler)."""
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self):
        epoch = self.epoch
        return ((int(i), epoch) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


def class_weights(labels: Sequence[float]) -> np.ndarray:
    """Per-sample weights 1 / (count of its class), so a WeightedRandomSampler draws both classes equally."""
    labels = np.asarray(labels).astype(int)
    counts = np.bincount(labels, minlength=2).astype(np.float64)
    return 1.0 / counts[labels]
