"""The four CBIS-DDSM case-description CSVs: find them, parse them the same way, and label their rows.

Quirks handled (see docs/cbis-ddsm.md section 1): `N/A` is a value, not a missing cell
(keep_default_na=False); a trailing newline sits inside the quotes of one path column per file; mass files
say `breast_density`, calc files `breast density`; the split is only in the file name.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

import pandas as pd

from mammo.errors import DataError

OFFICIAL_CSVS = (
    "mass_case_description_train_set.csv",
    "mass_case_description_test_set.csv",
    "calc_case_description_train_set.csv",
    "calc_case_description_test_set.csv",
)
PATH_COLUMNS = ("image_file_path", "cropped_image_file_path", "roi_mask_file_path")
RENAME = {"left_or_right_breast": "side", "image_view": "view"}
REQUIRED = ("patient_id", "side", "view", "abnormality_id", "abnormality_type", "pathology", *PATH_COLUMNS)
ABNORMALITY_TYPES = {"mass": "mass", "calcification": "calc", "calc": "calc"}
PATHOLOGY_LABELS = {"MALIGNANT": 1, "BENIGN": 0, "BENIGN_WITHOUT_CALLBACK": 0}
BWC = "BENIGN_WITHOUT_CALLBACK"


def csv_header(kind: str) -> list[str]:
    """The official header of a `kind` ("mass" or "calc") description CSV, so writers and tests share one copy."""
    return [
        "patient_id",
        "breast_density" if kind == "mass" else "breast density",
        "left or right breast",
        "image view",
        "abnormality id",
        "abnormality type",
        *(("mass shape", "mass margins") if kind == "mass" else ("calc type", "calc distribution")),
        "assessment",
        "pathology",
        "subtlety",
        "image file path",
        "cropped image file path",
        "ROI mask file path",
    ]


def snake_case(name: str) -> str:
    """'ROI mask file path' -> 'roi_mask_file_path'; 'breast density' -> 'breast_density'."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def find_case_csvs(*dirs: str | os.PathLike) -> list[Path]:
    """The case-description CSVs under the first folder with any (official names or *case_description*.csv).

    A file name found twice (e.g. a backup copy) counts once: the shallowest copy wins, so no row is doubled.
    """
    for d in dirs:
        found: dict[str, Path] = {}
        for p in sorted(Path(d).rglob("*.csv"), key=lambda q: (len(q.parts), str(q))):
            low = p.name.lower()
            if (low in OFFICIAL_CSVS or "case_description" in low) and low not in found:
                found[low] = p
        if found:
            return sorted(found.values(), key=_official_order)
    return []


def _official_order(p: Path) -> tuple[int, str]:
    """Sort key: the official files in documented order (mass train, mass test, calc train, calc test)."""
    low = p.name.lower()
    return (OFFICIAL_CSVS.index(low) if low in OFFICIAL_CSVS else len(OFFICIAL_CSVS), low)


def split_from_name(name: str) -> str:
    """'mass_case_description_train_set.csv' -> 'train'; '' when the name says neither."""
    low = name.lower()
    if "train" in low:
        return "train"
    if "test" in low:
        return "test"
    return ""


def split_from_folder(folder: str) -> str:
    """'Mass-Training_P_00001_LEFT_CC' -> 'train', 'Calc-Test_...' -> 'test', else ''."""
    m = re.match(r"^(?:mass|calc)-(training|test)_", folder, flags=re.IGNORECASE)
    return {"training": "train", "test": "test"}.get(m.group(1).lower(), "") if m else ""


def path_parts(csv_path: str) -> tuple[str, ...] | None:
    """Components of a CSV path ('/' or '\\' separated); None when absolute or climbing out of the root."""
    p = csv_path.strip().replace("\\", "/")
    if not p or p.startswith("/") or re.match(r"^[A-Za-z]:", p):
        return None
    norm = posixpath.normpath(p)
    if norm == ".." or norm.startswith("../"):
        return None
    return tuple(x for x in norm.split("/") if x not in ("", "."))


def read_case_csv(path: str | os.PathLike) -> pd.DataFrame:
    """One CSV as text: snake_case columns, stripped values, `split` from the file name, `source_row`."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise DataError(f"{path}: unreadable CSV ({exc}); re-download it from TCIA") from None
    df.columns = [RENAME.get(snake_case(c), snake_case(c)) for c in df.columns]
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataError(f"{path}: not a CBIS-DDSM case-description CSV (no column {', '.join(missing)})")
    df = df.apply(lambda col: col.str.strip())
    df["split"] = split_from_name(path.name) or df["image_file_path"].map(
        lambda p: split_from_folder((path_parts(p) or ("",))[0])
    )
    folders = df["image_file_path"].map(lambda p: (path_parts(p) or ("?",))[0])
    df["source_row"] = [
        f"{path.name} record {i + 1} ({f} #{a})"
        for i, (f, a) in enumerate(zip(folders, df["abnormality_id"], strict=False))
    ]
    return df


def label_rows(df: pd.DataFrame, bwc: str = "benign") -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Normalise type/side/view, add `label`; unlabellable rows (and BWC with bwc='drop') go to the list."""
    if bwc not in ("benign", "drop"):
        raise ValueError(f"bwc must be 'benign' or 'drop', got {bwc!r}")
    df = df.copy()
    df["abnormality_type"] = df["abnormality_type"].str.lower().map(ABNORMALITY_TYPES).fillna("")
    df["side"] = df["side"].str.upper()
    df["view"] = df["view"].str.upper()
    df["pathology"] = df["pathology"].str.upper()
    df["label"] = df["pathology"].map(PATHOLOGY_LABELS)
    problems: list[tuple[str, str]] = []
    reasons = pd.Series("", index=df.index)
    reasons[df["label"].isna()] = (
        "pathology " + df["pathology"].map(repr) + " is not MALIGNANT, BENIGN or " + BWC
    )
    if bwc == "drop":
        reasons[df["pathology"] == BWC] = f"{BWC} dropped (--bwc drop)"
    bad_side = ~df["side"].isin(["LEFT", "RIGHT"])
    reasons[bad_side & (reasons == "")] = "side " + df["side"].map(repr) + " is not LEFT or RIGHT"
    for i in df.index[reasons != ""]:
        problems.append((df.at[i, "source_row"], reasons[i]))
    kept = df[reasons == ""].copy()
    kept["label"] = kept["label"].astype(int)
    return kept, problems


def read_case_csvs(paths: list[Path]) -> pd.DataFrame:
    """All CSVs as one unlabelled frame (mass and calc descriptor columns side by side, '' where absent)."""
    return pd.concat([read_case_csv(p) for p in paths], ignore_index=True, sort=False).fillna("")
