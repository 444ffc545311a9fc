"""The manifest contract: DATA/manifest.csv (one row per finding) and DATA/rejected.csv (every problem)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mammo.errors import DataError, UserError
from mammo.io.atomic import write_csv, write_text

MANIFEST = "manifest.csv"
REJECTED = "rejected.csv"

# Columns every manifest has, in this order; sources add their own columns after them.
MANIFEST_COLUMNS = [
    "patient_id",  # the woman: splits group by this
    "image_id",  # key of the full image (CBIS: top-level folder name; table/folders: the image path)
    "abnormality_type",  # mass | calc | "" (unknown, e.g. a --table without it)
    "split",  # official split as given: train | test (a --table may also give val); "" when unknown
    "side",  # LEFT | RIGHT | ""
    "view",  # CC | MLO | other view code | ""
    "abnormality_id",  # 1.. within an image
    "pathology",  # as in the source (MALIGNANT, BENIGN, BENIGN_WITHOUT_CALLBACK, or the table's label text)
    "label",  # 1 malignant, 0 benign
    "image_path",  # absolute path of the full image (DICOM or image file)
    "mask_path",  # absolute path of the ROI mask, "" when none
    "crop_path",  # absolute path of the lesion crop, "" when none
]
SPLITS = ("train", "val", "test")  # the manifest's split values ("" = not given)
BOX_COLUMNS = ["x_min", "y_min", "x_max", "y_max"]  # lesion box in full-image pixels, when a table gives one
REJECTED_COLUMNS = ["path_or_row", "reason"]


def manifest_path(data_dir: str | os.PathLike) -> Path:
    """Where the manifest of DATA lives."""
    return Path(data_dir) / MANIFEST


def read_manifest_text(data_dir: str | os.PathLike) -> pd.DataFrame:
    """Read DATA/manifest.csv as it is, every column as text, without schema checks (validate reports those)."""
    path = manifest_path(data_dir)
    if not path.is_file():
        raise DataError(f"{path}: no manifest here; run `mammo ingest ... --out {data_dir}` first")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise DataError(f"{path}: unreadable manifest ({type(exc).__name__}: {exc})") from None


def read_manifest(data_dir: str | os.PathLike) -> pd.DataFrame:
    """Read DATA/manifest.csv with every column as text except `label` (int); clear error when absent or broken."""
    path = manifest_path(data_dir)
    df = read_manifest_text(data_dir)
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing columns {', '.join(missing)}; re-run `mammo ingest`")
    bad = ~df["label"].isin(["0", "1"])
    if bad.any():
        raise DataError(
            f"{path}: label must be 0 or 1, found {df.loc[bad, 'label'].iloc[0]!r} (row {int(bad.idxmax()) + 2})"
        )
    df["label"] = df["label"].astype(int)
    return df


def manifest_text(df: pd.DataFrame) -> str:
    """The manifest as CSV text, required columns first, then the source's own columns."""
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"manifest lacks columns {missing}")
    extra = [c for c in df.columns if c not in MANIFEST_COLUMNS]
    return df[MANIFEST_COLUMNS + extra].to_csv(index=False)


def write_manifest(df: pd.DataFrame, data_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the manifest atomically; an existing different manifest is replaced only with `overwrite`."""
    path = manifest_path(data_dir)
    text = manifest_text(df)
    if not overwrite and path.is_file() and path.read_text() != text:
        raise UserError(
            f"{path} already exists with other rows; pass --overwrite to replace it or choose another --out"
        )
    write_text(text, path)
    return path


def write_rejected(rows: list[tuple[str, str]] | pd.DataFrame, data_dir: str | os.PathLike) -> Path:
    """Write DATA/rejected.csv (`path_or_row, reason`), always, even when empty, so its absence means 'not run'."""
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows, columns=REJECTED_COLUMNS)
    path = Path(data_dir) / REJECTED
    write_csv(df[REJECTED_COLUMNS], path)
    return path
