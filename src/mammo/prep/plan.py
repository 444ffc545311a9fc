"""Which samples `prepare` makes: manifest rows -> one task per full image (sample ids, dataset.csv fields, boxes)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mammo.data.manifest import BOX_COLUMNS
from mammo.errors import UserError

# Subgroup fields of screening tables (e.g. RSNA's site, machine, age, implant): carried for reports and the
# metadata shortcut baseline, never model inputs.
SUBGROUP_META = ["age", "site_id", "machine_id", "implant", "density"]
WHOLE_META = [
    "side",
    "view",
    "abnormality_type",
    "pathology",
    "assessment",
    "breast_density",
    "subtlety",
    *SUBGROUP_META,
]
ROI_META = [*WHOLE_META, "abnormality_id", "mass_shape", "mass_margins", "calc_type", "calc_distribution"]


@dataclass(frozen=True)
class Item:
    """One sample to make from an image: its id, its dataset.csv fields so far, (roi) its lesion."""

    sample_id: str
    row: dict
    mask_path: str = ""
    box: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class ImageTask:
    """Everything a worker needs to turn one full image into its samples."""

    image_path: str
    task: str
    size: int
    context: float
    images_dir: str
    items: tuple[Item, ...]


def safe_id(text: str) -> str:
    """A file-name-safe unique id for `text`: itself when already safe, else a short readable form + hash.

    A path (a table's image_id) becomes its folder and file stem: /data/P1/left.png -> P1_left-<hash>.
    """
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")
    if clean == text and len(clean) <= 100:
        return clean
    parts = re.split(r"[/\\]+", text.strip("/\\"))
    if len(parts) > 1:
        parts[-1] = Path(parts[-1]).stem
        clean = re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join(parts[-2:])).strip("._-")
    return f"{clean[:80]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def select_rows(df: pd.DataFrame, abnormality: str, view: str) -> pd.DataFrame:
    """Manifest rows kept by --abnormality and --view."""
    if abnormality not in ("mass", "calc", "all"):
        raise UserError(f"--abnormality must be mass, calc or all, got {abnormality!r}")
    if view not in ("CC", "MLO", "all"):
        raise UserError(f"--view must be CC, MLO or all, got {view!r}")
    keep = pd.Series(True, index=df.index)
    if abnormality != "all":
        keep &= df["abnormality_type"].str.lower().str.startswith(abnormality)
    if view != "all":
        keep &= df["view"].str.upper() == view
    return df[keep]


def _meta(rows: pd.DataFrame, columns: list[str]) -> dict:
    return {c: rows[c].iloc[0] for c in columns if c in rows.columns}


def _max_number(values: pd.Series) -> str:
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    return str(int(numbers.max())) if len(numbers) else ""


def whole_row(rows: pd.DataFrame) -> dict:
    """dataset.csv fields of an image from its findings: malignant if any is; highest BI-RADS, subtlety."""
    label = int(rows["label"].max())
    first = rows[rows["label"] == label].iloc[[0]]
    row = _meta(first, WHOLE_META)
    row["abnormality_type"] = "|".join(sorted(set(rows["abnormality_type"]) - {""}))
    for col in ("assessment", "subtlety"):
        if col in rows.columns:
            row[col] = _max_number(rows[col])
    return {"label": label, **row, "n_findings": len(rows)}


def _number_box(row: pd.Series) -> tuple[float, float, float, float] | None:
    """The manifest's lesion box for a finding; None when absent; ValueError when not numbers."""
    values = [str(row.get(c, "")).strip() for c in BOX_COLUMNS]
    if not all(values):
        return None
    try:
        return tuple(float(v) for v in values)
    except ValueError:
        raise ValueError(f"lesion box {values} is not numeric") from None


def _roi_items(rows: pd.DataFrame, common: dict, new_id: Callable[[str], str], rejected: list) -> list[Item]:
    """One item per finding of an image; a finding with no mask and no usable box goes to `rejected`."""
    items = []
    for k, (index, finding) in enumerate(rows.iterrows(), start=1):
        number = finding["abnormality_id"] or str(k)
        where = f"{common['image_id']} finding {number}"
        try:
            box = _number_box(finding)
        except ValueError as exc:
            rejected.append([where, str(exc)])
            continue
        if not finding["mask_path"] and box is None:
            rejected.append([where, "no mask_path and no x_min..y_max lesion box; give one to make an roi"])
            continue
        sid = new_id(f"{safe_id(common['image_id'])}_{safe_id(number)}")
        row = {"sample_id": sid, "image": f"images/{sid}.png", "label": int(finding["label"]), **common}
        row |= _meta(rows.loc[[index]], ROI_META)
        row |= {"source_path": finding["image_path"], "mask_path": finding["mask_path"]}
        items.append(Item(sid, row, finding["mask_path"], box))
    return items


def build_tasks(
    df: pd.DataFrame, task: str, size: int, context: float, images_dir: Path
) -> tuple[list[ImageTask], list[list[str]]]:
    """Group manifest rows by image into tasks (manifest order); findings with no lesion location rejected."""
    tasks, rejected, used = [], [], set()

    def new_id(sid: str) -> str:
        base, n = sid, 1
        while sid in used:
            n += 1
            sid = f"{base}_{n}"
        used.add(sid)
        return sid

    for image_id, rows in df.groupby("image_id", sort=False):
        first = rows.iloc[0]
        common = {"patient_id": first["patient_id"], "split": first["split_prep"], "image_id": image_id}
        if task == "whole":
            sid = new_id(safe_id(image_id))
            row = {"sample_id": sid, "image": f"images/{sid}.png", **whole_row(rows), **common}
            items = [Item(sid, row | {"source_path": first["image_path"]})]
        else:
            items = _roi_items(rows, common, new_id, rejected)
        if items:
            tasks.append(ImageTask(first["image_path"], task, size, context, str(images_dir), tuple(items)))
    return tasks, rejected


def data_path(path: str, data_dir: Path) -> str:
    """A manifest path as an absolute path (relative ones are relative to DATA)."""
    return str(data_dir.resolve() / path) if path and not Path(path).is_absolute() else path
