"""`mammo validate DATA`: every problem of a manifest at once, so a leak or a hole is seen before training.

Errors (exit 1): women in more than one split, missing files, mask/image size mismatches, labels not 0/1,
rows without patient_id, missing manifest columns. Warnings: images mixing benign and malignant findings,
out-of-range descriptors, a split with one class, duplicate findings, problems listed in rejected.csv.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mammo.data.ingest import parallel_map
from mammo.data.manifest import MANIFEST_COLUMNS, REJECTED, SPLITS, manifest_path, read_manifest_text
from mammo.data.table import image_size
from mammo.errors import DataError

RANGES = {"assessment": (0, 5), "breast_density": (1, 4), "subtlety": (1, 5)}
NOT_GIVEN = {"", "N/A", "NA", "NAN"}
MAX_NAMES = 40
WORKERS = 4


@dataclass
class Report:
    """Validation result: one-line errors and warnings, plus the class-balance table."""

    data_dir: Path
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    header: str = ""
    balance: str = ""

    def text(self) -> str:
        """The readable report: counts, balance per split, every problem, then 'N errors, M warnings'."""
        parts = [self.header]
        if self.balance:
            parts += ["", "Class balance per split (findings):", self.balance]
        for title, items in (("Errors", self.errors), ("Warnings", self.warnings)):
            if items:
                parts += ["", f"{title}:"] + [f"  - {x}" for x in items]
        parts += ["", f"{len(self.errors)} errors, {len(self.warnings)} warnings"]
        return "\n".join(parts)


def _names(values: list[str]) -> str:
    """'a, b, c' with at most MAX_NAMES shown, then 'and N more'."""
    shown = ", ".join(values[:MAX_NAMES])
    return shown + (f" and {len(values) - MAX_NAMES} more" if len(values) > MAX_NAMES else "")


def _join_splits(splits: tuple[str, ...]) -> str:
    """('test', 'train') -> 'both test and train'; three or more -> 'test, train and val'."""
    if len(splits) == 2:
        return f"both {splits[0]} and {splits[1]}"
    return ", ".join(splits[:-1]) + f" and {splits[-1]}"


def women_in_several_splits(df: pd.DataFrame) -> list[str]:
    """One line per split combination naming the women found in more than one split (mass and calc pooled)."""
    given = df[df["split"] != ""]
    sets = given.groupby("patient_id")["split"].agg(lambda s: tuple(sorted(set(s))))
    out = []
    for combo, women in sets[sets.map(len) > 1].groupby(sets[sets.map(len) > 1]):
        out.append(f"{len(women)} women in {_join_splits(combo)}: {_names(sorted(women.index))}")
    return out


def shared_images(df: pd.DataFrame) -> list[str]:
    """Image files listed under more than one woman: whichever split they land in, the other woman leaks."""
    given = df[(df["patient_id"].str.strip() != "") & (df["image_path"] != "")]
    women = given.groupby("image_path")["patient_id"].agg(lambda s: sorted(set(s)))
    shared = women[women.map(len) > 1]
    if shared.empty:
        return []
    named = [f"{path} ({', '.join(w[:3])})" for path, w in shared.head(5).items()]
    more = f" and {len(shared) - 5} more" if len(shared) > 5 else ""
    return [
        f"{len(shared)} images listed under more than one woman (a leak; fix patient_id): {'; '.join(named)}{more}"
    ]


def bad_splits(df: pd.DataFrame) -> list[str]:
    """Split values other than train, val, test or empty (prepare would refuse them)."""
    bad = ~df["split"].isin(["", *SPLITS])
    if not bad.any():
        return []
    seen = ", ".join(map(repr, sorted(set(df.loc[bad, "split"]))[:5]))
    return [
        f"{int(bad.sum())} rows with split not train, val or test (values {seen}; first at manifest row "
        f"{int(bad.idxmax()) + 2}); fix them or ingest again (ingest reads training/validation/testing)"
    ]


def mixed_images(df: pd.DataFrame) -> list[str]:
    """Images whose findings mix benign and malignant (the image label then depends on the rule)."""
    n = df.groupby("image_id")["label"].nunique()
    mixed = sorted(n[n > 1].index)
    if not mixed:
        return []
    return [
        f"{len(mixed)} images with both benign and malignant findings (whole-image label = any malignant): "
        f"{_names(mixed)}"
    ]


def out_of_range(df: pd.DataFrame) -> list[str]:
    """Descriptors outside their scale (BI-RADS assessment 0-5, density 1-4, subtlety 1-5); N/A is allowed."""
    out = []
    for col, (lo, hi) in RANGES.items():
        if col not in df.columns:
            continue
        vals = df[col].str.strip()
        nums = pd.to_numeric(vals, errors="coerce")
        bad = ~vals.str.upper().isin(NOT_GIVEN) & ~nums.between(lo, hi)
        if bad.any():
            seen = ", ".join(map(repr, sorted(set(vals[bad]))[:5]))
            out.append(
                f"{int(bad.sum())} rows with {col} outside {lo}-{hi} (values {seen};"
                f" first at manifest row {int(bad.idxmax()) + 2})"
            )
    return out


def missing_files(df: pd.DataFrame, data_dir: Path) -> list[str]:
    """Listed files that do not exist (paths relative to DATA are resolved against it)."""
    out = []
    for col in ("image_path", "mask_path", "crop_path"):
        paths = [p for p in df[col].unique() if p and not (data_dir / p).is_file()]
        if paths:
            out.append(
                f"{len(paths)} {col} files missing: {_names(sorted(paths)[:5])}"
                + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
            )
    return out


def mask_size_mismatches(df: pd.DataFrame, data_dir: Path) -> list[str]:
    """Masks whose rows x cols differ from image_rows x image_cols (headers only for DICOM)."""
    if not {"image_rows", "image_cols"} <= set(df.columns):
        return []
    rows = df[(df["mask_path"] != "") & (df["image_rows"] != "")].drop_duplicates("mask_path")
    rows = rows.loc[np.array([(data_dir / p).is_file() for p in rows["mask_path"]], dtype=bool)]

    def size(p: str) -> tuple[int, int] | None:
        try:
            return image_size(data_dir / p)
        except DataError:
            return None

    sizes = parallel_map(size, list(rows["mask_path"]), WORKERS, "mask headers")
    bad = [
        f"{p} ({s[0]}x{s[1]} vs {r}x{c})"
        for p, s, r, c in zip(rows["mask_path"], sizes, rows["image_rows"], rows["image_cols"], strict=False)
        if s is not None and (str(s[0]), str(s[1])) != (str(r), str(c))
    ]
    unreadable = [p for p, s in zip(rows["mask_path"], sizes, strict=False) if s is None]
    out = [f"{len(bad)} masks whose size differs from their image: {_names(bad[:5])}"] if bad else []
    out += [f"{len(unreadable)} masks unreadable: {_names(unreadable[:5])}"] if unreadable else []
    return out


def class_balance(df: pd.DataFrame) -> tuple[str, list[str]]:
    """A small table of findings per split and class (plus images, women); a warning per one-class split."""
    split = df["split"].replace("", "(none)")
    table = (
        pd.DataFrame(
            {
                "findings": df.groupby(split).size(),
                "benign": df[df["label"] == "0"].groupby(split[df["label"] == "0"]).size(),
                "malignant": df[df["label"] == "1"].groupby(split[df["label"] == "1"]).size(),
                "images": df.groupby(split)["image_id"].nunique(),
                "women": df.groupby(split)["patient_id"].nunique(),
            }
        )
        .fillna(0)
        .astype(int)
    )
    table["% malignant"] = (100 * table["malignant"] / table["findings"]).round(1)
    table.index.name = "split"
    warn = [
        f"split {s!r} has only {'benign' if r.malignant == 0 else 'malignant'} findings"
        for s, r in table.iterrows()
        if r.benign == 0 or r.malignant == 0
    ]
    return table.to_string(), warn


def rejected_summary(data_dir: Path) -> list[str]:
    """A warning when ingest listed problems in rejected.csv (count and the first one)."""
    path = data_dir / REJECTED
    if not path.is_file():
        return [f"no {REJECTED} in {data_dir}: was this folder written by `mammo ingest`?"]
    rej = pd.read_csv(path, dtype=str, keep_default_na=False)
    if rej.empty:
        return []
    first = f"{rej.iloc[0, 0]}: {rej.iloc[0, 1]}" if rej.shape[1] >= 2 else ""
    return [f"{path} lists {len(rej)} problems (first: {first})"]


def validate(data_dir: str | os.PathLike) -> Report:
    """Check DATA/manifest.csv and report every problem at once (errors make `mammo validate` exit 1)."""
    data_dir = Path(data_dir)
    path = manifest_path(data_dir)
    df = read_manifest_text(data_dir)
    report = Report(data_dir)
    report.header = (
        f"{path}: {len(df)} findings"
        + (f", {df['image_id'].nunique()} images" if "image_id" in df.columns else "")
        + (f", {df['patient_id'].nunique()} women" if "patient_id" in df.columns else "")
    )
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        report.errors.append(f"manifest lacks columns {', '.join(missing)}; re-run `mammo ingest`")
        report.warnings += rejected_summary(data_dir)
        return report
    bad_label = ~df["label"].isin(["0", "1"])
    if bad_label.any():
        report.errors.append(
            f"{int(bad_label.sum())} rows with label not 0/1 (values "
            f"{', '.join(map(repr, sorted(set(df.loc[bad_label, 'label']))[:5]))}; "
            f"first at manifest row {int(bad_label.idxmax()) + 2})"
        )
    no_pid = df["patient_id"].str.strip() == ""
    if no_pid.any():
        report.errors.append(f"{int(no_pid.sum())} rows without patient_id: splits by woman are impossible")
    report.errors += women_in_several_splits(df[~no_pid])
    report.errors += shared_images(df)
    report.errors += bad_splits(df)
    report.errors += missing_files(df, data_dir)
    report.errors += mask_size_mismatches(df, data_dir)
    report.warnings += mixed_images(df[~bad_label])
    report.warnings += out_of_range(df)
    dup = df.duplicated(["image_id", "abnormality_id"])
    if dup.any():
        report.warnings.append(f"{int(dup.sum())} duplicate findings (same image_id and abnormality_id)")
    report.balance, one_class = class_balance(df[~bad_label])
    report.warnings += one_class
    report.warnings += rejected_summary(data_dir)
    return report
