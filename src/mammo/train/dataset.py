"""PREP/dataset.csv rows of one split as a torch Dataset of normalised (1, H, W) tensors."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler

from mammo.errors import DataError
from mammo.io.images import to_uint16
from mammo.train.augment import Augmenter
from mammo.train.seeding import derive_seed

REQUIRED_COLUMNS = ("sample_id", "image", "label", "patient_id", "split")


def read_dataset_csv(prep: str | os.PathLike) -> pd.DataFrame:
    """PREP/dataset.csv as a DataFrame; DataError when it is missing or lacks contract columns."""
    path = Path(prep) / "dataset.csv"
    if not path.is_file():
        raise DataError(f"{path}: not found; make PREP with `mammo prepare DATA --out PREP` first")
    df = pd.read_csv(
        path, dtype={"sample_id": str, "patient_id": str, "image_id": str}, keep_default_na=False
    )
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; rerun `mammo prepare`")
    return df


def read_prepare_json(prep: str | os.PathLike) -> dict:
    """PREP/prepare.json as a dict ({} if absent): checkpoints carry the preprocessing that made the data."""
    path = Path(prep) / "prepare.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); rerun `mammo prepare`") from exc


def split_rows(df: pd.DataFrame, split: str, prep: str | os.PathLike) -> pd.DataFrame:
    """The rows of one split; DataError when the split is empty or holds a single class."""
    rows = df[df["split"] == split].reset_index(drop=True)
    where = Path(prep) / "dataset.csv"
    if rows.empty:
        raise DataError(
            f"{where}: the '{split}' split is empty; rerun `mammo prepare` with a split that has one"
        )
    classes = set(rows["label"].astype(int))
    if split in ("train", "val") and len(classes) < 2:
        name = "malignant" if classes == {1} else "benign"
        raise DataError(
            f"{where}: the '{split}' split has only {name} rows ({len(rows)}); "
            "it needs both classes (more data, or another --val-fraction/--seed in prepare)"
        )
    return rows


def load_image(path: Path, size: int) -> np.ndarray:
    """A PREP PNG as float32 (1, size, size) in [0, 1]: 16-bit / 65535, INTER_AREA resize if sizes differ."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"{path}: missing or unreadable image; rerun `mammo prepare`")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    img = to_uint16(img)
    if img.shape != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return (img.astype(np.float32) / 65535.0)[None]


class PrepDataset(Dataset):
    """One split of PREP: item index or (index, epoch) -> (image (1, H, W) float32, label float32, index)."""

    def __init__(
        self,
        prep: str | os.PathLike,
        rows: pd.DataFrame,
        size: int,
        mean: float,
        std: float,
        augment: Augmenter | None = None,
        seed: int = 0,
    ) -> None:
        self.prep = Path(prep)
        self.paths = [self.prep / p for p in rows["image"]]
        self.labels = rows["label"].astype(np.float32).to_numpy()
        self.size = size
        self.mean = np.float32(mean)
        self.std = np.float32(std)
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        x = load_image(self.paths[index], self.size)
        if self.augment is not None:
            x = self.augment(x, derive_seed(self.seed, epoch, index))
        x = (x - self.mean) / self.std
        return torch.from_numpy(x), torch.tensor(self.labels[index]), index


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
