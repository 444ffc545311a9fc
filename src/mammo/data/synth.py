"""A synthetic CBIS-DDSM download: DICOMs in either folder layout, the four official CSVs, the real quirks.

Images come from `mammo.data.phantom` and the cohort from `mammo.data.cohort` (both pure numpy); this module
writes the files.
Deterministic per seed: the same seed gives byte-identical files. Everything is written to a hidden temporary
folder beside `out` and renamed onto `out` at the end, so a killed run leaves no half-written download.

What is written (see ../shared/docs/cbis-ddsm.md for the real collection):
- DICOMs: Modality MG, Secondary Capture, PatientID = the CBIS folder name, Laterality and (as in the real
  files) the view in PatientOrientation, SeriesDescription `full mammogram images` / `cropped images` /
  `ROI mask images`.
  Full images: 16-bit MONOCHROME2, RLE Lossless (as the real ones). ROI masks: 8-bit 0/255 at the full image's
  size, RLE Lossless. Crops: 16-bit, small, uncompressed (Explicit VR Little Endian).
  size="small": about 512 x 320 (rows x cols, varying by +-32); size="full": about 3328 x 2048 (+-128).
- Layouts: "classic" `<Folder>/<StudyUID>/<SeriesUID>/000000.dcm`; "descriptive" (today's NBIA Data Retriever)
  `CBIS-DDSM/<Folder>/<MM-DD-YYYY>-DDSM-NA-<5>/1.000000-<series description>-<5>/1-<n>.dcm`, plus the
  retriever's `metadata.csv`.
- The four CSVs at the root, byte-for-byte in the official format: CRLF records, `breast_density` (mass) vs
  `breast density` (calc), mass shape/margins vs calc type/distribution, the literal `N/A`, a trailing "\\n"
  inside
  the quotes of `ROI mask file path` (mass) or `cropped image file path` (calc), paths in the classic form.

`mammo-synth.json` at the root says the download is synthetic (mammo.data.provenance); ingest carries it on.

Quirks present, and where (`SynthResult` exposes them for tests):
- Swapped crop/mask columns: calc rows point `cropped image file path` at 000001.dcm and `ROI mask file path`
  at 000000.dcm, mass rows the other way round; which file really is the crop is decided per finding (next),
  so the columns are wrong for every calc finding stored crop-first and every mass finding stored mask-first.
- Crop and mask in one series, crop first (000000 = crop) or mask first (000000 = mask); or in two separate
  series of two separate studies (each file 000000.dcm). Each arrangement occurs at least once when there are
  three or more findings; `truth["roi_layout"]` says which each finding got. A two-file series is described
  as either `cropped images` or `ROI mask images`.
- Several findings on one image (at least one image; one such image mixes malignant and benign when possible).
- BENIGN_WITHOUT_CALLBACK rows (at least one), and `N/A` descriptors (at least one per file with rows).
- One woman in both mass-train and calc-test (`cross_split_patient`), under different folders and UIDs.
- One truncated DICOM (`truncated`): a full image cut inside its RLE pixel data; its header reads fine, its
  pixels do not. Its CSV rows are still listed, as in a damaged download.
Labels are balanced about 50/50 malignant/benign per abnormality type and split (breast level); the official
split is by woman within each abnormality type, about 70/30 train/test.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from mammo.data.cbis_csv import csv_header
from mammo.data.cohort import SIZES, PlannedImage, plan_cohort
from mammo.data.phantom import LesionSpec, render
from mammo.data.provenance import SYNTH_MARKER, synth_marker
from mammo.errors import UserError
from mammo.io.atomic import check_output_dir, write_json

LAYOUTS = ("descriptive", "classic")
CSV_NAMES = {
    ("mass", "train"): "mass_case_description_train_set.csv",
    ("mass", "test"): "mass_case_description_test_set.csv",
    ("calc", "train"): "calc_case_description_train_set.csv",
    ("calc", "test"): "calc_case_description_test_set.csv",
}
# study dates of the real collection: (full images, ROI files) per file
STUDY_DATES = {
    ("mass", "train"): ("07-20-2016", "07-21-2016"),
    ("mass", "test"): ("10-04-2016", "10-04-2016"),
    ("calc", "train"): ("08-07-2016", "09-06-2017"),
    ("calc", "test"): ("08-29-2017", "08-29-2017"),
}
FULL, CROP, MASK = "full mammogram images", "cropped images", "ROI mask images"
ROI_LAYOUTS = ("crop-first", "mask-first", "two-series")
METADATA_COLUMNS = [
    "Series UID",
    "Collection",
    "3rd Party Analysis",
    "Data Description URI",
    "Subject ID",
    "Study UID",
    "Study Description",
    "Study Date",
    "Series Description",
    "Manufacturer",
    "Modality",
    "SOP Class Name",
    "SOP Class UID",
    "Number of Images",
    "File Size",
    "File Location",
    "Download Timestamp",
]


@dataclass
class SynthResult:
    """What `make_download` wrote: counts, paths, and where each quirk is (for tests and the CLI summary)."""

    root: Path
    layout: str
    size: str
    seed: int
    n_women: int
    n_images: int
    n_findings: int
    n_malignant: int
    n_files: int
    csv_files: list[Path]
    metadata_csv: Path | None
    truncated: Path
    cross_split_patient: str
    truth: pd.DataFrame = field(repr=False)

    def summary(self) -> str:
        """One line: what was written where."""
        return (
            f"synthetic CBIS-DDSM ({self.layout} layout, {self.size} images, seed {self.seed}): "
            f"{self.n_women} women, {self.n_images} images, {self.n_findings} findings "
            f"({self.n_malignant} malignant), {self.n_files} DICOM files + {len(self.csv_files)} CSVs "
            f"in {self.root}; 1 truncated DICOM on purpose: {self.truncated.relative_to(self.root)}"
        )


def _uid(seed: int, *key: object) -> str:
    """A valid, deterministic DICOM UID from the seed and a key (pydicom's root, hashed entropy)."""
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["mammo-synth", str(seed), *map(str, key)])


def _dicom(
    pixels: np.ndarray,
    *,
    patient_id: str,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    description: str,
    study_date: str,
    instance: int,
    side: str,
    view: str,
    rle: bool,
):
    """A Secondary Capture MG dataset holding `pixels` (uint16 or uint8 0/255) with CBIS-DDSM's header fields."""
    from mammo.io.dicom import mg_dataset

    mm, dd, yyyy = study_date.split("-")
    return mg_dataset(
        pixels,
        sop_uid,
        rle,
        SpecificCharacterSet="ISO_IR 100",
        StudyDate=f"{yyyy}{mm}{dd}",
        ConversionType="WSD",
        SeriesDescription=description,
        PatientName=patient_id,
        PatientID=patient_id,
        BodyPartExamined="BREAST",
        StudyInstanceUID=study_uid,
        SeriesInstanceUID=series_uid,
        StudyID="DDSM",
        SeriesNumber=1,
        InstanceNumber=instance,
        PatientOrientation=view,
        Laterality=side[0],
    )


def _crop_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Lesion bounding box (x_min, y_min, x_max, y_max), inclusive, from a 0/255 mask."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


class _Writer:
    """Writes DICOMs under a temporary root in one layout; keeps the metadata.csv rows and a file count."""

    def __init__(self, tmp: Path, layout: str, seed: int):
        self.tmp, self.layout, self.seed = tmp, layout, seed
        self.series: dict[str, dict] = {}  # series UID -> metadata.csv row (descriptive only)
        self.n_files = 0

    def path(
        self, folder: str, study_uid: str, series_uid: str, date: str, description: str, index: int
    ) -> Path:
        """Relative path of file `index` (0-based) of a series, in this writer's layout."""
        if self.layout == "classic":
            return Path(folder, study_uid, series_uid, f"{index:06d}.dcm")
        study_dir = f"{date}-DDSM-NA-{study_uid[-5:]}"
        series_dir = f"1.000000-{description}-{series_uid[-5:]}"
        return Path("CBIS-DDSM", folder, study_dir, series_dir, f"1-{index + 1}.dcm")

    def write(
        self,
        pixels: np.ndarray,
        folder: str,
        study_uid: str,
        series_uid: str,
        date: str,
        description: str,
        index: int,
        side: str,
        view: str,
        rle: bool,
    ) -> Path:
        """Write one DICOM file and return its path relative to the root."""
        rel = self.path(folder, study_uid, series_uid, date, description, index)
        sop = _uid(self.seed, "sop", series_uid, index)
        ds = _dicom(
            pixels,
            patient_id=folder,
            study_uid=study_uid,
            series_uid=series_uid,
            sop_uid=sop,
            description=description,
            study_date=date,
            instance=index + 1,
            side=side,
            view=view,
            rle=rle,
        )
        target = self.tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=True)
        self.n_files += 1
        if self.layout == "descriptive":
            row = self.series.setdefault(
                series_uid,
                {
                    "Series UID": series_uid,
                    "Collection": "CBIS-DDSM",
                    "3rd Party Analysis": "NO",
                    "Data Description URI": "https://doi.org/10.7937/K9/TCIA.2016.7O02S9CY",
                    "Subject ID": folder,
                    "Study UID": study_uid,
                    "Study Description": "",
                    "Study Date": date,
                    "Series Description": description,
                    "Manufacturer": "",
                    "Modality": "MG",
                    "SOP Class Name": "Secondary Capture Image Storage",
                    "SOP Class UID": "1.2.840.10008.5.1.4.1.1.7",
                    "Number of Images": 0,
                    "File Size": 0,
                    "File Location": "./" + rel.parent.as_posix(),
                    "Download Timestamp": "",
                },
            )
            row["Number of Images"] += 1
            row["File Size"] += target.stat().st_size
        return rel

    def metadata(self) -> pd.DataFrame:
        """The NBIA Data Retriever's metadata.csv: one row per series, sizes as 'x.xx MB' / 'x.xx KB'."""
        rows = []
        for i, row in enumerate(self.series.values()):
            size = row["File Size"]
            rows.append(
                {
                    **row,
                    "File Size": f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.2f} KB",
                    "Download Timestamp": f"2023-05-24T02:{i // 60 % 60:02d}:{i % 60:02d}.{i // 3600:03d}",
                }
            )
        return pd.DataFrame(rows, columns=METADATA_COLUMNS)


def _roi_layouts(n: int, rng: np.random.Generator) -> list[str]:
    """How each finding's crop and mask are stored: each arrangement at least once when n >= 3."""
    choice = rng.choice(ROI_LAYOUTS, size=n, p=[0.6, 0.25, 0.15]).tolist()
    if n >= 3:
        for i, kind in zip(rng.choice(n, size=3, replace=False), ROI_LAYOUTS, strict=False):
            choice[i] = kind
    return choice


def _csv_text(kind: str, rows: list[list[str]]) -> str:
    """One description CSV in the official format: CRLF records, a path field quoted with its newline."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(csv_header(kind))
    writer.writerows(rows)
    return buf.getvalue()


def _check_args(out: Path, women: int, layout: str, size: str) -> None:
    if layout not in LAYOUTS:
        raise UserError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if size not in SIZES:
        raise UserError(f"size {size!r} is not one of {', '.join(SIZES)}")
    if int(women) < 2:
        raise UserError(f"--women {women}: need at least 2 women (one train, one test)")
    check_output_dir(out, "OUT")  # a file, or a folder under a file: named as such
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; choose another folder or delete it")


def make_download(
    out: str | os.PathLike, women: int = 12, layout: str = "descriptive", size: str = "small", seed: int = 0
) -> SynthResult:
    """Write a synthetic CBIS-DDSM download (DICOMs, four CSVs, metadata.csv when descriptive) into `out`.

    Args:
        out: folder to write the fake download into (replaced as a whole, atomically).
        women: number of women.
        layout: "descriptive" (today's NBIA tree with metadata.csv) or "classic" (the UID tree).
        size: "small" images, or "full" (about 3300 x 2000).
        seed: random seed; the same seed writes the same files.

    Example:
        >>> from mammo.data import make_download
        >>> print(make_download("downloads/fake", women=40, seed=0).summary())
    """
    out = Path(out)
    _check_args(out, women, layout, size)
    images, cross = plan_cohort(int(women), size, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.synth-", dir=out.parent))
    try:
        result = _write_all(tmp, images, cross, layout, size, seed)
        write_json(synth_marker(seed, int(women), layout, size), tmp / SYNTH_MARKER)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.root = out
    result.truncated = out / result.truncated
    for col in ("image_path", "crop_path", "mask_path"):
        result.truth[col] = [str(out / p) for p in result.truth[col]]
    result.csv_files = [out / p for p in result.csv_files]
    result.metadata_csv = out / result.metadata_csv if result.metadata_csv else None
    return result


def _write_all(
    tmp: Path, images: list[PlannedImage], cross: str, layout: str, size: str, seed: int
) -> SynthResult:
    """Render and write every file under `tmp`; paths in the result are relative to `tmp`."""
    writer = _Writer(tmp, layout, seed)
    rng = np.random.default_rng([seed, 1])
    n_findings = sum(len(im.findings) for im in images)
    roi_layouts = iter(_roi_layouts(n_findings, rng))
    truncate_at = _pick_truncated(images, cross)
    csv_rows: dict[tuple[str, str], list[list[str]]] = {k: [] for k in CSV_NAMES}
    truth, truncated = [], None
    bar = tqdm(images, desc="synth", unit="image", disable=size != "full" and len(images) < 200)
    for i, im in enumerate(bar):
        ph = render(
            im.shape,
            im.side,
            im.view,
            im.density,
            [LesionSpec(im.abn_type, f.malignant, f.shape_seed) for f in im.findings],
            np.random.default_rng([seed, 2, im.seed]),
        )
        full_date, roi_date = STUDY_DATES[im.abn_type, im.split]
        study, series = _uid(seed, "study", im.folder), _uid(seed, "series", im.folder)
        full_rel = writer.write(
            ph.image, im.folder, study, series, full_date, FULL, 0, im.side, im.view, rle=True
        )
        classic_full = Path(im.folder, study, series, "000000.dcm").as_posix()
        if i == truncate_at:
            truncated = full_rel
        for f, mask in zip(im.findings, ph.lesion_masks, strict=False):
            x0, y0, x1, y1 = _crop_box(mask)
            pad = max(4, (max(x1 - x0, y1 - y0) + 1) // 8)
            ya, yb = max(0, y0 - pad), min(mask.shape[0], y1 + pad + 1)
            xa, xb = max(0, x0 - pad), min(mask.shape[1], x1 + pad + 1)
            crop = np.ascontiguousarray(ph.image[ya:yb, xa:xb])
            roi_folder = f"{im.folder}_{f.abn_id}"
            arrangement = next(roi_layouts)
            paths = _write_roi(writer, seed, roi_folder, roi_date, crop, mask, arrangement, im, rng)
            crop_rel, mask_rel, crop_col, mask_col = paths
            row = [
                im.patient_id,
                str(im.density),
                im.side,
                im.view,
                str(f.abn_id),
                "mass" if im.abn_type == "mass" else "calcification",
                *f.descriptors,
                str(f.assessment),
                f.pathology,
                str(f.subtlety),
                classic_full,
                crop_col + ("\n" if im.abn_type == "calc" else ""),
                mask_col + ("\n" if im.abn_type == "mass" else ""),
            ]
            csv_rows[im.abn_type, im.split].append(row)
            truth.append(
                {
                    "patient_id": im.patient_id,
                    "image_id": im.folder,
                    "abnormality_type": im.abn_type,
                    "split": im.split,
                    "side": im.side,
                    "view": im.view,
                    "abnormality_id": f.abn_id,
                    "pathology": f.pathology,
                    "label": int(f.malignant),
                    "image_path": str(full_rel),
                    "mask_path": str(mask_rel),
                    "crop_path": str(crop_rel),
                    "roi_layout": arrangement,
                    "csv_crop_path": crop_col,
                    "csv_mask_path": mask_col,
                    "x_min": x0,
                    "y_min": y0,
                    "x_max": x1,
                    "y_max": y1,
                    "image_rows": im.shape[0],
                    "image_cols": im.shape[1],
                    "truncated": i == truncate_at,
                }
            )
    _truncate(tmp / truncated)
    csv_files = []
    for key, name in CSV_NAMES.items():
        rows = sorted(csv_rows[key], key=lambda r: (r[0], r[2], r[3], int(r[4])))
        (tmp / name).write_bytes(_csv_text(key[0], rows).encode("ascii"))
        csv_files.append(Path(name))
    metadata = None
    if layout == "descriptive":
        metadata = Path("metadata.csv")
        writer.metadata().to_csv(tmp / metadata, index=False)
    truth_df = pd.DataFrame(truth)
    return SynthResult(
        root=tmp,
        layout=layout,
        size=size,
        seed=seed,
        n_women=len({im.patient_id for im in images}),
        n_images=len(images),
        n_findings=len(truth_df),
        n_malignant=int(truth_df["label"].sum()),
        n_files=writer.n_files,
        csv_files=csv_files,
        metadata_csv=metadata,
        truncated=truncated,
        cross_split_patient=cross,
        truth=truth_df,
    )


def _write_roi(
    writer: _Writer,
    seed: int,
    folder: str,
    date: str,
    crop: np.ndarray,
    mask: np.ndarray,
    arrangement: str,
    im: PlannedImage,
    rng: np.random.Generator,
) -> tuple[Path, Path, str, str]:
    """Write one finding's crop and mask; return their real paths and what the CSV's two columns say."""
    if arrangement == "two-series":
        s_crop, s_mask = _uid(seed, "study", folder, "crop"), _uid(seed, "study", folder, "mask")
        r_crop, r_mask = _uid(seed, "series", folder, "crop"), _uid(seed, "series", folder, "mask")
        crop_rel = writer.write(crop, folder, s_crop, r_crop, date, CROP, 0, im.side, im.view, rle=False)
        mask_rel = writer.write(mask, folder, s_mask, r_mask, date, MASK, 0, im.side, im.view, rle=True)
        crop_classic = Path(folder, s_crop, r_crop, "000000.dcm").as_posix()
        mask_classic = Path(folder, s_mask, r_mask, "000000.dcm").as_posix()
        return crop_rel, mask_rel, crop_classic, mask_classic
    study, series = _uid(seed, "study", folder), _uid(seed, "series", folder)
    description = CROP if rng.random() < 0.5 else MASK
    crop_index = 0 if arrangement == "crop-first" else 1
    crop_rel = writer.write(
        crop, folder, study, series, date, description, crop_index, im.side, im.view, rle=False
    )
    mask_rel = writer.write(
        mask, folder, study, series, date, description, 1 - crop_index, im.side, im.view, rle=True
    )
    classic = [Path(folder, study, series, f"{k:06d}.dcm").as_posix() for k in (0, 1)]
    # the official columns: mass crop=000000, mask=000001; calc crop=000001, mask=000000 (whatever is inside)
    crop_col, mask_col = (classic[0], classic[1]) if im.abn_type == "mass" else (classic[1], classic[0])
    return crop_rel, mask_rel, crop_col, mask_col


def _pick_truncated(images: list[PlannedImage], cross: str) -> int:
    """Index of the full image to cut: mass-train if possible, of a woman with other images."""

    def ok(im: PlannedImage) -> bool:
        return im.patient_id != cross and sum(o.patient_id == im.patient_id for o in images) > 1

    for wanted in (lambda im: ok(im) and (im.abn_type, im.split) == ("mass", "train"), ok):
        for i, im in enumerate(images):
            if wanted(im):
                return i
    return len(images) - 1


def _truncate(path: Path) -> None:
    """Cut a file inside its pixel data: keep the header and the first 40% of what follows it."""
    data = path.read_bytes()
    pixel_start = data.find(b"\xe0\x7f\x10\x00")  # the (7FE0,0010) tag; ASCII headers cannot contain it
    keep = pixel_start + (len(data) - pixel_start) * 2 // 5
    path.write_bytes(data[:keep])
