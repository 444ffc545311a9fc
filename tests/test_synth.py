"""The synthetic CBIS-DDSM download: determinism, layouts, CSV format, headers, quirks, lesions."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.uid import UID

from mammo.data import cohort, synth
from mammo.data.cbis_csv import csv_header
from mammo.data.phantom import LesionSpec, mass_patch, render
from mammo.errors import DataError, UserError
from mammo.io.dicom import read_header, read_pixels, read_raw_pixels

WOMEN, SEED = 8, 3


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    """The same cohort in both layouts."""
    base = tmp_path_factory.mktemp("synth")
    return {
        layout: synth.make_download(base / layout, women=WOMEN, layout=layout, size="small", seed=SEED)
        for layout in synth.LAYOUTS
    }


def _pixel_hashes(result: synth.SynthResult) -> dict[str, str]:
    """sha1 of the decoded pixels of every readable DICOM, keyed by its path under the root."""
    out = {}
    for path in sorted(result.root.rglob("*.dcm")):
        if path != result.truncated:
            out[path.relative_to(result.root).as_posix()] = hashlib.sha1(
                read_raw_pixels(path).tobytes()
            ).hexdigest()
    return out


def test_same_seed_same_files_other_seed_differs(downloads, tmp_path):
    first = downloads["descriptive"]
    again = synth.make_download(
        tmp_path / "again", women=WOMEN, layout="descriptive", size="small", seed=SEED
    )
    hashes = _pixel_hashes(first)
    assert len(hashes) == first.n_files - 1 and hashes == _pixel_hashes(again)
    for name in ["metadata.csv", *synth.CSV_NAMES.values()]:
        assert (first.root / name).read_bytes() == (again.root / name).read_bytes()
    assert first.truncated.read_bytes() == again.truncated.read_bytes()
    other = synth.make_download(
        tmp_path / "other", women=WOMEN, layout="descriptive", size="small", seed=SEED + 1
    )
    assert (other.root / synth.CSV_NAMES["mass", "train"]).read_bytes() != (
        first.root / synth.CSV_NAMES["mass", "train"]
    ).read_bytes()


def test_layouts_hold_the_same_cohort(downloads):
    a, b = (downloads[k].truth.drop(columns=["image_path", "mask_path", "crop_path"]) for k in synth.LAYOUTS)
    assert a.equals(b)
    for k in synth.LAYOUTS:
        assert all((downloads[k].root / n).is_file() for n in synth.CSV_NAMES.values())


def test_classic_layout_paths(downloads):
    res = downloads["classic"]
    uid = r"[0-9.]+"
    pattern = re.compile(
        rf"(Mass|Calc)-(Training|Test)_P_\d{{5}}_(LEFT|RIGHT)_(CC|MLO)(_\d)?/{uid}/{uid}/00000[01]\.dcm"
    )
    files = sorted(p.relative_to(res.root).as_posix() for p in res.root.rglob("*.dcm"))
    assert len(files) == res.n_files and all(pattern.fullmatch(f) for f in files)
    assert res.metadata_csv is None and not (res.root / "metadata.csv").exists()
    # classic paths in the CSVs resolve to real files
    for _, row in res.truth.iterrows():
        assert (res.root / row.csv_crop_path).is_file() and (res.root / row.csv_mask_path).is_file()


def test_descriptive_layout_paths_and_metadata(downloads):
    res = downloads["descriptive"]
    pattern = re.compile(
        r"CBIS-DDSM/(Mass|Calc)-(Training|Test)_P_\d{5}_(LEFT|RIGHT)_(CC|MLO)(_\d)?/"
        r"\d\d-\d\d-\d{4}-DDSM-NA-\d{5}/"
        r"1\.000000-(full mammogram images|cropped images|ROI mask images)-\d{5}/1-[12]\.dcm"
    )
    files = sorted(p.relative_to(res.root).as_posix() for p in res.root.rglob("*.dcm"))
    assert len(files) == res.n_files and all(pattern.fullmatch(f) for f in files)
    meta = pd.read_csv(res.metadata_csv, dtype=str, keep_default_na=False)
    assert list(meta.columns) == synth.METADATA_COLUMNS
    assert meta["Number of Images"].astype(int).sum() == res.n_files
    for _, row in meta.iterrows():
        folder = res.root / row["File Location"]
        dcms = sorted(folder.glob("*.dcm"))
        assert len(dcms) == int(row["Number of Images"])
        head = read_header(dcms[0])
        assert (head.series_uid, head.study_uid, head.patient_id) == (
            row["Series UID"],
            row["Study UID"],
            row["Subject ID"],
        )
        assert row["File Location"].endswith(row["Series UID"][-5:]) and row["File Size"].endswith("B")


def _records(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode("ascii"), newline="")))


@pytest.mark.parametrize("kind", ["mass", "calc"])
def test_csvs_in_the_official_format(downloads, kind):
    res = downloads["classic"]
    columns = csv_header(kind)
    density, descriptor = columns[1], columns[7]  # breast density; mass margins or calc distribution
    newline_col = "ROI mask file path" if kind == "mass" else "cropped image file path"
    frames = []
    for split in ("train", "test"):
        path = res.root / synth.CSV_NAMES[kind, split]
        raw = path.read_bytes()
        assert raw.startswith(",".join(columns).encode() + b"\r\n") and raw.endswith(b"\r\n")
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        assert list(df.columns) == columns
        assert (
            len(df)
            == len(_records(path)) - 1
            == ((res.truth.abnormality_type == kind) & (res.truth.split == split)).sum()
        )
        assert df[newline_col].str.endswith(".dcm\n").all()
        others = [
            c
            for c in ("image file path", "cropped image file path", "ROI mask file path")
            if c != newline_col
        ]
        assert not df[others].apply(lambda s: s.str.contains("\n")).any().any()
        assert (
            df[others[0]]
            .str.fullmatch(r"[A-Za-z]+-[A-Za-z]+_P_\d{5}_(LEFT|RIGHT)_(CC|MLO)/[0-9.]+/[0-9.]+/000000\.dcm")
            .all()
        )
        assert df["abnormality type"].eq("mass" if kind == "mass" else "calcification").all()
        frames.append(df)
    both = pd.concat(frames)
    assert (both[descriptor] == "N/A").any()  # the literal N/A survives keep_default_na=False
    assert set(both["pathology"]) <= {"MALIGNANT", "BENIGN", "BENIGN_WITHOUT_CALLBACK"}
    assert both[density].astype(int).between(1, 4).all()
    # the swapped columns: in one-series findings calc's crop column names 000001 and its mask column 000000
    one_series = both[
        both["cropped image file path"].str.rsplit("/", n=2).str[0]
        == both["ROI mask file path"].str.rsplit("/", n=2).str[0]
    ]
    crop_file = one_series["cropped image file path"].str.strip().str[-10:]
    assert len(one_series) > 0 and (crop_file == ("000000.dcm" if kind == "mass" else "000001.dcm")).all()


def test_dicom_headers(downloads):
    res = downloads["descriptive"]
    row = res.truth[~res.truth.truncated].iloc[0]
    full = pydicom.dcmread(row.image_path)
    assert full.Modality == "MG" and full.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert full.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    assert (
        full.PhotometricInterpretation,
        full.BitsAllocated,
        full.BitsStored,
        full.PixelRepresentation,
    ) == ("MONOCHROME2", 16, 16, 0)
    assert full.PatientID == row.image_id and full.SeriesDescription == "full mammogram images"
    assert full.Laterality == row.side[0] and full.PatientOrientation == row.view
    for uid in (full.StudyInstanceUID, full.SeriesInstanceUID, full.SOPInstanceUID):
        assert UID(uid).is_valid
    assert full.pixel_array.dtype == np.uint16 and full.pixel_array.shape == (row.image_rows, row.image_cols)
    for _, row in res.truth.iterrows():
        mask = pydicom.dcmread(row.mask_path)
        crop = pydicom.dcmread(row.crop_path)
        folder = f"{row.image_id}_{row.abnormality_id}"
        assert mask.PatientID == crop.PatientID == folder
        assert mask.BitsStored == 8 and set(np.unique(mask.pixel_array)) == {0, 255}
        assert mask.pixel_array.shape == (row.image_rows, row.image_cols)
        assert crop.BitsStored == 16 and crop.Rows < row.image_rows / 2 and crop.Columns < row.image_cols / 2
        assert {mask.SeriesDescription, crop.SeriesDescription} <= {"cropped images", "ROI mask images"}
        if row.roi_layout == "two-series":
            assert (
                mask.SeriesInstanceUID != crop.SeriesInstanceUID
                and mask.StudyInstanceUID != crop.StudyInstanceUID
            )
        else:
            assert mask.SeriesInstanceUID == crop.SeriesInstanceUID
            assert (crop.InstanceNumber == 1) == (row.roi_layout == "crop-first")


def test_quirks_are_present(downloads):
    res = downloads["classic"]
    t = res.truth
    assert (t.pathology == "BENIGN_WITHOUT_CALLBACK").any()
    per_image = t.groupby("image_id")["label"].agg(["size", "nunique"])
    assert (per_image["size"] > 1).any() and (per_image["nunique"] > 1).any()
    assert set(t.roi_layout) == set(synth.ROI_LAYOUTS)
    cross = t[t.patient_id == res.cross_split_patient]
    assert {("mass", "train"), ("calc", "test")} <= set(
        zip(cross.abnormality_type, cross.split, strict=False)
    )
    # the calc crop column really names the mask for crop-first calc findings (and vice versa for mass)
    calc = t[(t.abnormality_type == "calc") & (t.roi_layout == "crop-first")]
    for _, row in calc.iterrows():
        named_crop = read_header(res.root / row.csv_crop_path)
        assert (named_crop.rows, named_crop.columns, named_crop.bits_stored) == (
            row.image_rows,
            row.image_cols,
            8,
        )


def test_truncated_file_reads_header_not_pixels(downloads):
    for res in downloads.values():
        assert res.truncated.is_file() and res.truth.truncated.sum() >= 1
        assert str(res.truncated) in set(res.truth.image_path)
        head = read_header(res.truncated)
        assert head.rows > 0 and head.modality == "MG"
        with pytest.raises(DataError, match=re.escape(str(res.truncated)) + ".*truncated"):
            read_pixels(res.truncated)


def test_cohort_is_balanced_and_split_by_woman():
    images, cross = cohort.plan_cohort(80, "small", seed=0)
    df = pd.DataFrame(
        [
            {
                "pid": im.patient_id,
                "kind": im.abn_type,
                "split": im.split,
                "side": im.side,
                "malignant": im.findings[0].malignant,
            }
            for im in images
        ]
    )
    breasts = df.drop_duplicates(["pid", "kind", "side"])
    for (kind, split), g in breasts.groupby(["kind", "split"]):
        assert 0.35 <= g.malignant.mean() <= 0.65, (kind, split, g.malignant.mean())
    for _kind, g in df.groupby("kind"):
        women = g.groupby("split")["pid"].unique()
        assert not set(women["train"]) & set(women["test"])
        n_train, n_test = len(set(women["train"])), len(set(women["test"]) - {cross})
        assert 0.2 <= n_test / (n_train + n_test) <= 0.4
    assert {"LEFT", "RIGHT"} == set(df.side) and {"CC", "MLO"} == {im.view for im in images}


def _solidity_circularity(mask: np.ndarray) -> tuple[float, float]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    c = max(contours, key=cv2.contourArea)
    area = cv2.contourArea(c)
    return area / cv2.contourArea(cv2.convexHull(c)), 4 * np.pi * area / cv2.arcLength(c, True) ** 2


def test_malignant_masses_are_irregular_benign_round():
    shapes = {
        m: [_solidity_circularity(mass_patch(18.0, m, np.random.default_rng(i))[1]) for i in range(12)]
        for m in (False, True)
    }
    benign, malignant = np.array(shapes[False]), np.array(shapes[True])
    assert benign[:, 0].min() > 0.95 and malignant[:, 0].max() < 0.85
    assert benign[:, 1].mean() > 0.8 > 0.5 > malignant[:, 1].mean()


def test_synth_masks_show_the_morphology(downloads):
    t = downloads["classic"].truth
    mass = t[t.abnormality_type == "mass"]
    solidity = {
        label: [_solidity_circularity(read_raw_pixels(p) > 0)[0] for p in g.mask_path]
        for label, g in mass.groupby("label")
    }
    assert max(solidity[1]) < min(solidity[0])


def test_image_looks_like_a_mammogram():
    rng = np.random.default_rng(0)
    for side in ("LEFT", "RIGHT"):
        ph = render(
            (512, 320), side, "MLO", 3, [LesionSpec("mass", True, 5), LesionSpec("mass", False, 6)], rng
        )
        img = ph.image.astype(np.float64) / 65535
        chest, far = (0, -1) if side == "LEFT" else (-1, 0)
        assert ph.breast[200:300, chest].all() and not ph.breast[:, far].any()
        background = img[~ph.breast]
        assert np.median(background) < 0.06
        # a bright film label away from the breast: a separate component that breast cropping should drop
        labels = cv2.connectedComponents((img > 0.5).astype(np.uint8))[0]
        assert labels >= 3
        for mask in ph.lesion_masks:
            inside = mask > 0
            ring = cv2.dilate(mask, np.ones((15, 15), np.uint8)) > 0
            ring &= ~inside & ph.breast
            assert img[inside].mean() - img[ring].mean() > 0.04


def test_bad_input(tmp_path, monkeypatch):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(UserError, match="exists and is not empty; choose another folder or delete it"):
        synth.make_download(tmp_path / "full", women=4)
    with pytest.raises(UserError, match="x is a file, not a folder; give a folder for OUT"):
        synth.make_download(tmp_path / "full" / "x", women=4)
    with pytest.raises(UserError, match="at least 2"):
        synth.make_download(tmp_path / "one", women=1)
    with pytest.raises(UserError, match="layout"):
        synth.make_download(tmp_path / "bad", layout="flat")

    def boom(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(synth, "_write_roi", boom)
    with pytest.raises(RuntimeError):
        synth.make_download(tmp_path / "half", women=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_empty_existing_folder_and_two_women(tmp_path):
    (tmp_path / "out").mkdir()
    res = synth.make_download(tmp_path / "out", women=2, layout="classic", seed=1)
    assert res.n_women == 2 and res.root == tmp_path / "out" and res.truncated.is_file()
    line = res.summary()
    assert "\n" not in line and f"{res.n_images} images" in line and str(res.root) in line
