"""Ingest a CBIS-DDSM download (either folder layout) into DATA/manifest.csv and DATA/rejected.csv.

The join never trusts the CSV's file names: a row's full image is found by its top-level folder name
(the NBIA Subject ID = the DICOM PatientID) and the SeriesInstanceUID in component 3 of its CSV path,
taken from the downloader's metadata.csv when present, else from each file's header. Crop and mask are
told apart by what the files are (size vs the full image, bit depth, and pixel values when the header
is not enough), never by the column they are listed in.
"""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mammo.data.cbis_csv import PATH_COLUMNS, find_case_csvs, label_rows, path_parts, read_case_csvs
from mammo.data.ingest import IngestResult, parallel_map, write_outputs
from mammo.data.manifest import MANIFEST_COLUMNS
from mammo.data.provenance import download_provenance
from mammo.errors import DataError, UserError, without_path
from mammo.io.atomic import check_output_dir
from mammo.io.dicom import DicomHeader, completeness_problem, read_header, read_raw_pixels

CBIS_FOLDER = re.compile(r"^(mass|calc)-(training|test)_p_\d+_(left|right)_(cc|mlo)(_\d+)?$", re.IGNORECASE)
INTERNAL = ("source_row",)


@dataclass(frozen=True)
class FileInfo:
    """One file of the download: its header (None if unreadable) and why it is unusable ("" if usable)."""

    path: str
    folder: str
    header: DicomHeader | None
    error: str = ""

    @property
    def usable(self) -> bool:
        """Readable header and complete pixel data."""
        return self.header is not None and not self.error


def _scan(item: tuple[str, str]) -> FileInfo:
    path, folder = item
    try:
        header = read_header(path)
    except DataError as exc:
        return FileInfo(path, folder, None, without_path(exc, path))
    return FileInfo(path, folder, header, completeness_problem(path, header))


def _walk(root: Path, known: set[str]) -> tuple[list[tuple[str, str]], list[Path], list[tuple[str, str]]]:
    """Files under CSV-named folders (path, folder), metadata.csv files, CBIS-like folders no CSV names."""
    files: list[tuple[str, str]] = []
    metadata: list[Path] = []
    unknown: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = Path(dirpath).relative_to(root).parts
        folder = next((p for p in rel if p in known), None)
        if folder is None:
            metadata += [Path(dirpath) / f for f in filenames if f.lower() == "metadata.csv"]
            if rel and CBIS_FOLDER.match(rel[-1]):
                unknown.append((dirpath, "folder not named by any case-description CSV row (ignored)"))
                dirnames.clear()
            continue
        files += [(os.path.join(dirpath, f), folder) for f in sorted(filenames)]
    return files, metadata, unknown


def _metadata_series(metadata_files: Iterable[Path]) -> dict[str, str]:
    """Series folder (absolute, normalised) -> Series UID, from NBIA Data Retriever metadata.csv files."""
    series: dict[str, str] = {}
    for meta in metadata_files:
        try:
            with open(meta, newline="", encoding="utf-8-sig") as fh:
                for row in csv.DictReader(fh):
                    loc, uid = (row.get("File Location") or "").strip(), (row.get("Series UID") or "").strip()
                    if loc and uid:
                        series[os.path.normpath(meta.parent / loc.replace("\\", "/"))] = uid
        except (OSError, csv.Error, UnicodeDecodeError):
            continue
    return series


class DownloadIndex:
    """The readable files of a download, grouped by (top-level folder, series UID)."""

    def __init__(self, infos: list[FileInfo], meta_series: dict[str, str]):
        self.series: dict[tuple[str, str], list[FileInfo]] = defaultdict(list)
        self.by_folder: dict[str, set[str]] = defaultdict(set)
        for f in infos:
            uid = meta_series.get(os.path.normpath(os.path.dirname(f.path))) or (
                f.header.series_uid if f.header else ""
            )
            if uid:
                self.series[(f.folder, uid)].append(f)
                self.by_folder[f.folder].add(uid)

    def lookup(self, parts: tuple[str, ...]) -> list[FileInfo]:
        """Files for a CSV path: folder + series UID; a folder with one series matches by folder alone."""
        folder, uid = parts[0], parts[2] if len(parts) > 2 else ""
        found = self.series.get((folder, uid))
        if found:
            return found
        only = self.by_folder.get(folder, set())
        return self.series.get((folder, next(iter(only))), []) if len(only) == 1 else []


def _looks_binary(arr: np.ndarray) -> bool:
    """A mask has at most two distinct values (0/255 in CBIS-DDSM); a crop has many grey levels."""
    return np.unique(arr).size <= 2


def _header_kind(h: DicomHeader, shape: tuple[int, int]) -> str:
    """'mask' (full-image size, 8-bit), 'crop' (smaller, >8-bit) or '' (the header cannot tell)."""
    same = (h.rows, h.columns) == shape
    if same and h.bits_stored <= 8:
        return "mask"
    if not same and h.bits_stored > 8:
        return "crop"
    return ""


@dataclass
class RoiDecision:
    """A row's crop and mask paths ('' when unusable) and the problems found on the way."""

    crop: str = ""
    mask: str = ""
    problems: list[tuple[str, str]] = field(default_factory=list)


def decide_roi(candidates: list[FileInfo], shape: tuple[int, int]) -> RoiDecision:
    """Tell crop from mask among a row's ROI files: by header when unambiguous, else by pixel values."""
    out = RoiDecision()
    good = [c for c in candidates if c.usable]
    kinds = [_header_kind(c.header, shape) for c in good]
    clear = sorted(kinds) == ["crop", "mask"] if len(good) == 2 else len(good) == 1 and kinds[0] != ""
    if not clear:
        kinds = []
        for c in good:
            try:
                kinds.append("mask" if _looks_binary(read_raw_pixels(c.path)) else "crop")
            except DataError as exc:
                out.problems.append((c.path, without_path(exc, c.path)))
                kinds.append("")
    for c, kind in zip(good, kinds, strict=False):
        h = c.header
        if kind == "mask" and (h.rows, h.columns) != shape:
            out.problems.append(
                (c.path, f"mask size {h.rows}x{h.columns} differs from its image {shape[0]}x{shape[1]}")
            )
        elif kind and getattr(out, kind):
            out.problems.append((c.path, f"a second {kind} for the same finding (kept {getattr(out, kind)})"))
        elif kind:
            setattr(out, kind, os.path.abspath(c.path))
    return out


def _full_image(files: list[FileInfo]) -> FileInfo | None:
    """The usable full mammogram among a series' files (the largest, should a series hold more than one)."""
    good = [f for f in files if f.usable]
    return max(good, key=lambda f: f.header.rows * f.header.columns) if good else None


def _resolve_row(row: dict, index: DownloadIndex) -> tuple[dict | None, list[tuple[str, str]]]:
    """Manifest fields for one CSV row, or None when its full image is unusable; plus the row's problems."""
    src = row["source_row"]
    parts = {
        c: path_parts(row[c]) for c in ("image_file_path", "cropped_image_file_path", "roi_mask_file_path")
    }
    img_parts = parts["image_file_path"]
    if img_parts is None:
        return None, [(src, f"image file path {row['image_file_path']!r} resolves outside the download root")]
    files = index.lookup(img_parts)
    full = _full_image(files)
    if full is None:
        why = f"unusable ({files[0].error})" if files else "not found in the download"
        return None, [(src, f"full image {row['image_file_path']} {why}; row dropped")]
    problems: list[tuple[str, str]] = []
    candidates: dict[str, FileInfo] = {}
    for col in ("cropped_image_file_path", "roi_mask_file_path"):
        if parts[col] is None:
            problems.append((src, f"{col} {row[col]!r} resolves outside the download root"))
            continue
        candidates.update({f.path: f for f in index.lookup(parts[col])})
    shape = (full.header.rows, full.header.columns)
    roi = decide_roi(list(candidates.values()), shape)
    problems += roi.problems
    if not candidates:
        problems.append(
            (
                src,
                f"ROI files not found in the download ({row['roi_mask_file_path']}); "
                "crop_path and mask_path left empty",
            )
        )
    for kind in ("crop", "mask") if candidates else ():
        if not getattr(roi, kind):
            problems.append(
                (src, f"no usable ROI {kind} among {len(candidates)} ROI file(s); {kind}_path left empty")
            )
    fields = {
        "image_id": img_parts[0],
        "image_path": os.path.abspath(full.path),
        "mask_path": roi.mask,
        "crop_path": roi.crop,
        "image_rows": shape[0],
        "image_cols": shape[1],
    }
    return fields, problems


def ingest_cbis(
    root: str | os.PathLike,
    out: str | os.PathLike,
    csv_dir: str | os.PathLike | None = None,
    bwc: str = "benign",
    workers: int = 4,
    overwrite: bool = False,
) -> IngestResult:
    """Index a CBIS-DDSM download into DATA/manifest.csv (one row per finding) and DATA/rejected.csv.

    Args:
        root: the TCIA download, either folder layout (today's NBIA tree with metadata.csv, or the classic one).
        out: DATA folder to write manifest.csv and rejected.csv into.
        csv_dir: folder with the four case-description CSVs; None searches under `root`.
        bwc: BENIGN_WITHOUT_CALLBACK findings counted as "benign" or "drop"ped.
        workers: threads reading DICOM headers (0 or 1: in this thread).
        overwrite: replace an existing, different DATA/manifest.csv (refused otherwise).

    Example:
        >>> from mammo.data import ingest_cbis
        >>> print(ingest_cbis("~/CBIS-DDSM", "data/cbis").summary())
    """
    root = Path(root)
    check_output_dir(out)
    if not root.is_dir():
        raise UserError(
            f"{root}: download folder not found; pass the folder that holds the Mass-/Calc- folders"
        )
    if csv_dir is not None and not Path(csv_dir).is_dir():
        raise UserError(f"{csv_dir}: --csv-dir folder not found")
    csvs = find_case_csvs(*([csv_dir] if csv_dir is not None else [root]))
    if not csvs:
        where = csv_dir if csv_dir is not None else root
        raise UserError(
            f"{where}: no CBIS-DDSM case-description CSVs found; download the four "
            "*_case_description_*_set.csv files from TCIA and pass their folder with --csv-dir"
        )
    every_row = read_case_csvs(csvs)
    known = {p[0] for c in PATH_COLUMNS for p in every_row[c].map(path_parts) if p}
    rows, problems = label_rows(every_row, bwc)
    files, metadata, unknown = _walk(root, known)
    meta = [root.parent / "metadata.csv"] if (root.parent / "metadata.csv").is_file() else []
    infos = parallel_map(_scan, files, workers, "DICOM headers")
    problems += [(f.path, f.error) for f in infos if not f.usable] + unknown
    index = DownloadIndex(infos, _metadata_series(meta + metadata))
    records = rows.to_dict("records")
    resolved = parallel_map(lambda r: _resolve_row(r, index), records, workers, "findings")
    kept = []
    for rec, (fields, row_problems) in zip(records, resolved, strict=False):
        problems += row_problems
        if fields is not None:
            kept.append({**rec, **fields})
    df = pd.DataFrame(
        kept,
        columns=[
            *rows.columns,
            "image_id",
            "image_path",
            "mask_path",
            "crop_path",
            "image_rows",
            "image_cols",
        ],
    )
    df = df[
        MANIFEST_COLUMNS
        + ["image_rows", "image_cols"]
        + [c for c in rows.columns if c not in MANIFEST_COLUMNS and c not in INTERNAL]
    ]
    provenance = download_provenance(root, "CBIS-DDSM download")
    return write_outputs(df, problems, out, overwrite=overwrite, provenance=provenance)
