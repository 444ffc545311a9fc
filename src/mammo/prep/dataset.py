"""PREP/dataset.csv and PREP/prepare.json readers, beside the PREP format (no torch): rows of one split.

Also the two pure steps from a prepared 16-bit image to the model's input (`scale_input`, `normalise`),
shared by the training dataset and by inference on new images, so both see the same numbers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mammo.errors import DataError
from mammo.io.images import to_uint16
from mammo.prep.breast import rect_input

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


def read_split(prep: str | os.PathLike, split: str) -> pd.DataFrame:
    """Rows of PREP/dataset.csv in `split` (label as int, image_id defaulting to sample_id); DataError when none."""
    df = read_dataset_csv(prep)
    rows = df[df["split"] == split].reset_index(drop=True)
    if rows.empty:
        have = ", ".join(sorted(set(df["split"].astype(str)))) or "none"
        raise DataError(
            f"{Path(prep) / 'dataset.csv'}: split '{split}' has no rows (splits present: {have}); "
            "choose another --split"
        )
    if "image_id" not in rows.columns:
        rows["image_id"] = rows["sample_id"]
    rows["label"] = rows["label"].astype(int)
    return rows


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


def scale_input(img: np.ndarray, size: int, width: int | None = None) -> np.ndarray:
    """A prepared 8/16-bit image as float32 (1, size, size) in [0, 1]: png16 / 65535, INTER_AREA resize if needed.

    With `width` the input is a size x width rectangle (rows x cols), the breast refitted into it with its aspect
    ratio kept (`mammo.prep.breast.rect_input`).
    """
    img = to_uint16(img)
    if width is not None:
        img = rect_input(img, size, width)
    elif img.shape != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return (img.astype(np.float32) / 65535.0)[None]


def normalise(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    """(x - mean) / std in float32: the model's input normalisation, stored in the checkpoint."""
    return (x - np.float32(mean)) / np.float32(std)
