"""Ingest your own images into DATA/manifest.csv: a table (--table FILE.csv) or class folders (--folders DIR).

Every image is checked cheaply before it is listed: DICOM by header plus the completeness check of
`mammo.io.dicom.check_dicom`; other formats by PIL's lazy open (reads only the header: format, size), plus a
full decode for files up to FULL_DECODE_BYTES, which catches truncated files where that costs milliseconds.
Larger files are trusted on their header: decoding a 50 MB scan here would double the time of ingest, and
prepare lists any image that then fails to decode in its own rejected.csv.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pandas as pd

from mammo.data.cbis_csv import snake_case
from mammo.data.ingest import IngestResult, parallel_map, write_outputs
from mammo.data.manifest import BOX_COLUMNS, MANIFEST_COLUMNS
from mammo.errors import DataError, UserError, without_path
from mammo.io.atomic import check_output_dir
from mammo.io.dicom import check_dicom
from mammo.io.images import is_dicom_path, open_header

FULL_DECODE_BYTES = 8 * 2**20
WORKERS = 4
LABEL_WORDS = {"benign": 0, "malignant": 1, "0": 0, "1": 1, "0.0": 0, "1.0": 1}
CLASS_FOLDERS = {"benign": 0, "malignant": 1, "0": 0, "1": 1}
SPLIT_NAMES = {  # split names as tables write them -> the manifest's train | val | test ("" = not given)
    "": "",
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
SIDES = {"L": "LEFT", "R": "RIGHT", "LEFT": "LEFT", "RIGHT": "RIGHT"}
ABNORMALITY_PREFIXES = (("mass", "mass"), ("calc", "calc"))


def parse_label(value: str) -> int | None:
    """'Benign'/'malignant' (any case) or 0/1 -> 0/1; anything else -> None."""
    return LABEL_WORDS.get(str(value).strip().lower())


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(rows, cols) of a readable image or DICOM, checked cheaply (see module docstring), else DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if is_dicom_path(path):
        h = check_dicom(path)
        return h.rows, h.columns
    with open_header(path) as im:
        cols, rows = im.size
        if path.stat().st_size <= FULL_DECODE_BYTES:
            try:
                im.load()
            except (OSError, SyntaxError, ValueError) as exc:
                raise DataError(f"{path}: unreadable image ({' '.join(str(exc).split())})") from None
    return rows, cols


def _probe(path: str) -> tuple[int, int, str]:
    """image_size for the thread pool: (rows, cols, '') or (0, 0, why)."""
    if not path:
        return 0, 0, ""
    try:
        return (*image_size(path), "")
    except DataError as exc:
        return 0, 0, without_path(exc, path)


def _table_path(value: str, base: Path) -> str:
    """An absolute, normalised path: absolute as given, else relative to the table's folder."""
    value = value.strip()
    if not value:
        return ""
    p = Path(value).expanduser()
    return os.path.abspath(p if p.is_absolute() else base / p)


def _drop_duplicates(df: pd.DataFrame, keep: pd.Series, row_id: list[str]) -> list[tuple[str, str]]:
    """Rows repeating an earlier row exactly (every column) are dropped, so a copy is not a second finding."""
    problems = []
    table = df.drop(columns=["image"])[keep]  # compared on resolved paths: a/x.png and ./a/x.png are one file
    first: dict[tuple, int] = {}
    for i, values in zip(table.index, table.itertuples(index=False, name=None), strict=True):
        if values in first:
            problems.append((row_id[i], f"exact duplicate of {row_id[first[values]]}; row dropped"))
            keep[i] = False
        else:
            first[values] = i
    return problems


def _drop_shared_images(df: pd.DataFrame, keep: pd.Series, row_id: list[str]) -> list[tuple[str, str]]:
    """Rows whose image file is listed under two or more women are dropped: either woman would leak."""
    pid = df["patient_id"].str.strip()
    given = keep & (pid != "")
    women = pid[given].groupby(df.loc[given, "image_path"]).agg(lambda s: sorted(set(s)))
    shared = women[women.map(len) > 1]
    problems = []
    for i in df.index[given & df["image_path"].isin(shared.index)]:
        names = ", ".join(shared[df.at[i, "image_path"]][:5])
        problems.append(
            (
                row_id[i],
                f"image {df.at[i, 'image']} is listed under women {names} (a leak); row dropped: fix patient_id",
            )
        )
        keep[i] = False
    return problems


def _abnormality_type(value: str) -> str:
    """'Mass', 'mass_circumscribed' -> 'mass'; 'calcification' -> 'calc'; anything else -> ''."""
    low = value.strip().lower()
    return next((short for prefix, short in ABNORMALITY_PREFIXES if low.startswith(prefix)), "")


def _box_problem(box: list[str], rows: int, cols: int) -> str:
    """Why a lesion box is unusable ('' when it is fine or absent)."""
    if not any(v.strip() for v in box):
        return ""
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except ValueError:
        return f"box {box} is not four numbers"
    if not (0 <= x0 < x1 <= cols and 0 <= y0 < y1 <= rows):
        return f"box {box} is not inside the {rows}x{cols} image with min < max"
    return ""


def build_manifest(
    df: pd.DataFrame, base: Path, source: str
) -> tuple[pd.DataFrame, list[tuple[str, str]], list[str]]:
    """Manifest rows from a table of image/label (+ optional) columns; problems (bad rows dropped); notes."""
    df = df.copy().reset_index(drop=True)
    problems: list[tuple[str, str]] = []
    notes: list[str] = []
    row_id = [f"{source} row {i + 2}" for i in range(len(df))]
    for col in (
        "patient_id",
        "split",
        "side",
        "view",
        "image_id",
        "abnormality_id",
        "abnormality_type",
        "pathology",
        "mask_path",
        "crop_path",
    ):
        if col not in df.columns:
            df[col] = ""
    if any(c in df.columns for c in BOX_COLUMNS):
        for c in BOX_COLUMNS:
            df[c] = df[c] if c in df.columns else ""
    labels = df["label"].map(parse_label)
    df["image_path"] = df["image"].map(lambda v: _table_path(v, base))
    df["mask_path"] = df["mask_path"].map(lambda v: _table_path(v, base))
    df["crop_path"] = df["crop_path"].map(lambda v: _table_path(v, base))
    keep = pd.Series(True, index=df.index)
    for i in df.index[labels.isna()]:
        problems.append(
            (row_id[i], f"label {df.at[i, 'label']!r} is not benign/malignant or 0/1; row dropped")
        )
        keep[i] = False
    for i in df.index[(df["image_path"] == "") & keep]:
        problems.append((row_id[i], "no image path; row dropped"))
        keep[i] = False
    split = df["split"].str.strip().str.lower()
    for i in df.index[~split.isin(list(SPLIT_NAMES)) & keep]:
        problems.append(
            (row_id[i], f"split {df.at[i, 'split']!r} is not train, val or test (or empty); row dropped")
        )
        keep[i] = False
    df["split"] = split.map(SPLIT_NAMES).fillna("")
    problems += _drop_duplicates(df, keep, row_id)
    problems += _drop_shared_images(df, keep, row_id)
    probes = parallel_map(_probe, list(df["image_path"].where(keep, "")), WORKERS, "images")
    sizes = {}
    for i, (rows, cols, why) in zip(df.index, probes, strict=False):
        if keep[i] and why:
            problems.append((df.at[i, "image_path"], f"{why}; {row_id[i]} dropped"))
            keep[i] = False
        sizes[i] = (rows, cols)
    df["image_rows"] = [sizes[i][0] for i in df.index]
    df["image_cols"] = [sizes[i][1] for i in df.index]
    for col in ("mask_path", "crop_path"):
        for i, (rows, cols, why) in zip(
            df.index, parallel_map(_probe, list(df[col].where(keep, "")), WORKERS, col), strict=False
        ):
            mismatch = col == "mask_path" and not why and rows and (rows, cols) != sizes[i]
            if why or mismatch:
                reason = why or f"mask size {rows}x{cols} differs from its image {sizes[i][0]}x{sizes[i][1]}"
                problems.append((df.at[i, col], f"{reason}; {col} of {row_id[i]} left empty"))
                df.at[i, col] = ""
    if all(c in df.columns for c in BOX_COLUMNS):
        for i in df.index[keep]:
            why = _box_problem([df.at[i, c] for c in BOX_COLUMNS], *sizes[i])
            if why:
                problems.append((row_id[i], f"{why}; box left empty"))
                df.loc[i, BOX_COLUMNS] = ""
    df = df[keep].copy()
    df["label"] = labels[keep].astype(int)
    no_pid = df["patient_id"].str.strip() == ""
    if no_pid.any():
        df.loc[no_pid, "patient_id"] = df.loc[no_pid, "image_path"].map(lambda p: Path(p).stem)
        notes.append(
            f"warning: {int(no_pid.sum())} rows have no patient_id; the image file name stands in, "
            "so splits cannot be made by woman"
        )
    raw_type = df["abnormality_type"].copy()
    df["abnormality_type"] = raw_type.map(_abnormality_type)
    if (raw_type.str.strip().str.lower() != df["abnormality_type"]).any():
        df["abnormality_type_raw"] = raw_type
    df["image_id"] = df["image_id"].where(df["image_id"].str.strip() != "", df["image_path"])
    df["abnormality_id"] = df["abnormality_id"].where(
        df["abnormality_id"].str.strip() != "", (df.groupby("image_id").cumcount() + 1).astype(str)
    )
    df["pathology"] = df["pathology"].where(
        df["pathology"].str.strip() != "", df["label"].map({0: "BENIGN", 1: "MALIGNANT"})
    )
    df["side"] = df["side"].str.strip().str.upper().map(SIDES).fillna("")
    df["view"] = df["view"].str.strip().str.upper()
    box = [c for c in BOX_COLUMNS if c in df.columns]
    extra = [c for c in df.columns if c not in MANIFEST_COLUMNS + box + ["image", "image_rows", "image_cols"]]
    return df[MANIFEST_COLUMNS + box + ["image_rows", "image_cols"] + extra], problems, notes


def read_table(table: str | os.PathLike) -> tuple[pd.DataFrame, list[str]]:
    """A user's CSV as text columns, the one reader of `ingest --table` and `predict --table`.

    The delimiter is sniffed (, ; tab |) and notes say when it was not a comma; column names are snake_cased
    and an `image_path` column (an edited manifest) is read as `image`. UserError, one line, when the file
    is missing, not UTF-8 (e.g. a Latin-1 export) or not a table.

    Args:
        table: the CSV file.

    Example:
        >>> from mammo.data import read_table
        >>> df, notes = read_table("my_images.csv")  # text columns image, label, patient_id, ...
    """
    table = Path(table)
    if not table.is_file():
        raise UserError(f"{table}: table not found; pass the CSV that lists the images")
    raw = table.read_bytes()
    if b"\x00" in raw[:8192]:
        raise UserError(
            f"{table}: a binary file (an image?), not a CSV table; pass the CSV that lists the images"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{table}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at position {exc.start}, "
            "as in a Latin-1 or Windows-1252 export); save it as UTF-8 and run again"
        ) from None
    if not text.strip():
        raise UserError(
            f"{table}: the table is empty; it needs a header line (image, ...) and one row per image"
        )
    try:
        delimiter = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    try:
        df = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise UserError(
            f"{table}: unreadable CSV ({type(exc).__name__}: {without_path(exc, table)})"
        ) from None
    df.columns = [snake_case(c) for c in df.columns]
    if "image" not in df.columns and "image_path" in df.columns:  # an edited manifest can be read again
        df = df.rename(columns={"image_path": "image"})
    names = {";": "semicolon", "\t": "tab", "|": "|"}
    notes = (
        [f"note: {table.name} is {names[delimiter]}-separated and was read as such"]
        if delimiter != ","
        else []
    )
    return df, notes


def ingest_table(table: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False) -> IngestResult:
    """Index a CSV of images (image, label; optional patient_id, split, view, side, box) into DATA/.

    Args:
        table: the CSV (`,` `;` tab or `|` separated, UTF-8); image paths relative to its folder or absolute.
        out: DATA folder to write manifest.csv and rejected.csv into.
        overwrite: replace an existing, different DATA/manifest.csv (refused otherwise).

    Example:
        >>> from mammo.data import ingest_table
        >>> print(ingest_table("my_images.csv", "data/mine").summary())
    """
    table = Path(table)
    check_output_dir(out)
    df, read_notes = read_table(table)
    missing = [c for c in ("image", "label") if c not in df.columns]
    if missing:
        raise UserError(
            f"{table}: no column {', '.join(missing)} among {', '.join(df.columns[:8])}; a table needs "
            "image,label (optional: patient_id, split, view, side, x_min, y_min, x_max, y_max)"
        )
    manifest, problems, notes = build_manifest(df, table.resolve().parent, table.name)
    provenance = {"synthetic": False, "source": f"table {table.name}"}
    return write_outputs(manifest, problems, out, read_notes + notes, overwrite, provenance)


def _class_of(parts: tuple[str, ...]) -> int | None:
    """Index of the deepest folder named benign/malignant/0/1 (any case) among a file's parent folders."""
    hits = [i for i, p in enumerate(parts[:-1]) if p.lower() in CLASS_FOLDERS]
    return hits[-1] if hits else None


def ingest_folders(root: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False) -> IngestResult:
    """Index class-per-folder trees (train/Benign/x.png, test/Malignant/..., or no split level) into DATA/.

    Every file under ROOT is either listed in the manifest or in rejected.csv with its reason: files are
    recognised by what they hold (DICOM preamble, an image header), not by their suffix, so extension-less
    DICOMs from PACS exports, GIF and WebP are read too.

    Args:
        root: the tree; class folders Benign/Malignant (or 0/1), optionally under train/val/test folders.
        out: DATA folder to write manifest.csv and rejected.csv into.
        overwrite: replace an existing, different DATA/manifest.csv (refused otherwise).

    Example:
        >>> from mammo.data import ingest_folders
        >>> print(ingest_folders("seed_pngs/", "data/seed").summary())
    """
    root = Path(root)
    if not root.is_dir():
        what = "a file, not a folder" if root.exists() else "folder not found"
        raise UserError(f"{root}: {what}; pass a folder with Benign/ and Malignant/ (or 0/ and 1/) inside")
    check_output_dir(out)
    root = root.resolve()
    records, problems, not_splits = [], [], set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            parts = path.relative_to(root).parts
            k = _class_of(parts)
            if k is None:
                problems.append((str(path), "not inside a Benign/Malignant (or 0/1) folder; ignored"))
                continue
            parent = parts[k - 1].lower() if k > 0 else ""
            if parent not in SPLIT_NAMES:
                not_splits.add(parts[k - 1])
            records.append(
                {
                    "image": str(path),
                    "label": str(CLASS_FOLDERS[parts[k].lower()]),
                    "split": SPLIT_NAMES.get(parent, ""),
                }
            )
    if not records:
        raise UserError(f"{root}: no images inside Benign/ or Malignant/ (or 0/ and 1/) folders")
    manifest, more, notes = build_manifest(pd.DataFrame(records), root, root.name)
    if not_splits:
        notes.append(
            f"note: folders {', '.join(sorted(not_splits)[:5])} above the class folders are not train/val/test; "
            "their images have no split (prepare splits them by woman)"
        )
    provenance = {"synthetic": False, "source": f"class folders under {root.name}"}
    return write_outputs(manifest, problems + more, out, notes, overwrite, provenance)
