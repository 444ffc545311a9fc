"""PREP rows as a torch Dataset of normalised (1, H, W) tensors, read the same way by train and evaluate.

Below train and evaluate in the package stack: `augment` is any callable (image, seed) -> image, so training
passes its Augmenter and evaluation passes none.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from mammo.errors import DataError
from mammo.prep.dataset import normalise, scale_input
from mammo.seeding import derive_seed


def load_prep_image(path: Path, size: int, width: int | None = None) -> np.ndarray:
    """A PREP PNG as float32 (1, size, size) in [0, 1]: 16-bit / 65535, INTER_AREA resize if sizes differ.

    With `width`, the input is the rectangle size x width (rows x cols) and the breast is refitted into it
    keeping its aspect ratio (`mammo.prep.breast.rect_input`).
    """
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"{path}: missing or unreadable image; rerun `mammo prepare`")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return scale_input(img, size, width)


class PrepDataset(Dataset):
    """One split of PREP: item index or (index, epoch) -> (image (1, H, W) float32, label float32, index)."""

    def __init__(
        self,
        prep: str | os.PathLike,
        rows: pd.DataFrame,
        size: int,
        mean: float,
        std: float,
        augment: Callable[[np.ndarray, int], np.ndarray] | None = None,
        seed: int = 0,
        width: int | None = None,
    ) -> None:
        self.prep = Path(prep)
        self.paths = [self.prep / p for p in rows["image"]]
        self.labels = rows["label"].astype(np.float32).to_numpy()
        self.size = size
        self.width = width
        self.mean = np.float32(mean)
        self.std = np.float32(std)
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        x = load_prep_image(self.paths[index], self.size, self.width)
        if self.augment is not None:
            x = self.augment(x, derive_seed(self.seed, epoch, index))
        x = normalise(x, self.mean, self.std)
        return torch.from_numpy(x), torch.tensor(self.labels[index]), index
