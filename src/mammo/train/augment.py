"""Training augmentation for mammograms (MONAI transforms on numpy CHW float32), reseeded for every sample.

"mammo": horizontal and vertical flips, a small affine (rotation +-10 degrees, scale 0.9-1.1, shift +-5 %),
mild contrast (gamma), intensity scaling and Gaussian noise. "seed": the starting point's Keras augmentation
(rotation 0.4 degrees, shifts of 0.2, horizontal flip, nearest fill). "none": no augmentation.
The random state is set from (run seed, epoch, sample index) before each sample, so the result does not
depend on the number of loader workers or DDP ranks, and a resumed run replays the same augmentations.
"""

from __future__ import annotations

import math

import numpy as np
from monai.transforms import (
    Compose,
    EnsureType,
    RandAdjustContrast,
    RandAffine,
    RandFlip,
    RandGaussianNoise,
    RandScaleIntensity,
)


def build_transform(mode: str, size: int) -> Compose | None:
    """The MONAI Compose for an augmentation mode and image side length; None for "none"."""
    to_numpy = EnsureType(data_type="numpy", dtype=np.float32, track_meta=False)
    if mode == "none":
        return None
    if mode == "seed":
        shift = 0.2 * size
        return Compose(
            [
                RandAffine(
                    prob=1.0,
                    rotate_range=(math.radians(0.4),),
                    translate_range=(shift, shift),
                    padding_mode="border",
                ),
                RandFlip(prob=0.5, spatial_axis=1),
                to_numpy,
            ]
        )
    if mode == "mammo":
        shift = 0.05 * size
        return Compose(
            [
                RandFlip(prob=0.5, spatial_axis=1),
                RandFlip(prob=0.5, spatial_axis=0),
                RandAffine(
                    prob=0.7,
                    rotate_range=(math.radians(10),),
                    scale_range=(0.1, 0.1),
                    translate_range=(shift, shift),
                    padding_mode="zeros",
                ),
                RandAdjustContrast(prob=0.3, gamma=(0.8, 1.25)),
                RandScaleIntensity(factors=0.1, prob=0.3),
                RandGaussianNoise(prob=0.2, std=0.01),
                to_numpy,
            ]
        )
    raise ValueError(f"unknown augmentation mode {mode!r}")


class Augmenter:
    """Callable: (1, H, W) float32 image in [0, 1] and a seed -> augmented (1, H, W) float32 image."""

    def __init__(self, mode: str, size: int) -> None:
        self.transform = build_transform(mode, size)

    def __call__(self, image: np.ndarray, seed: int) -> np.ndarray:
        """Augment one image with the random state set from `seed` (identity when the mode is "none")."""
        if self.transform is None:
            return image
        self.transform.set_random_state(seed=seed)
        return np.ascontiguousarray(self.transform(image), dtype=np.float32)
