"""--table and --folders ingest: relative paths, PGM/PNG, bad rows listed, real tables (RSNA, mini-MIAS)."""

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import SHARED

from mammo.cli import main
from mammo.data.table import image_size, ingest_folders, ingest_table, parse_label
from mammo.errors import DataError, UserError

RSNA = SHARED / "data" / "rsna-screening-dev" / "labels.csv"
MIAS = SHARED / "data" / "mini-mias" / "labels.csv"


def _png(path: Path, shape=(40, 30), dtype=np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (np.arange(np.prod(shape)) % 250).reshape(shape).astype(dtype)
    assert cv2.imwrite(str(path), arr)
    return path


def _read(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (
        pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False),
        pd.read_csv(out / "rejected.csv", dtype=str, keep_default_na=False),
    )


def test_parse_label():
    assert [parse_label(v) for v in ["Benign", " MALIGNANT ", "0", "1", "1.0", "maybe", ""]] == [
        0,
        1,
        0,
        1,
        1,
        None,
        None,
    ]


def test_image_size_formats_and_failures(tmp_path):
    assert image_size(_png(tmp_path / "a.png")) == (40, 30)
    assert image_size(_png(tmp_path / "b.pgm", (20, 10), np.uint16)) == (20, 10)
    good = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="unreadable image"):
        image_size(tmp_path / "cut.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(DataError, match="not an image"):
        image_size(tmp_path / "text.png")
    with pytest.raises(DataError, match="not found"):
        image_size(tmp_path / "none.png")


def test_table_relative_paths_pgm_missing_bad_label(tmp_path):
    _png(tmp_path / "imgs" / "p1_cc.png")
    _png(tmp_path / "imgs" / "p1_mlo.pgm", dtype=np.uint16)
    _png(tmp_path / "imgs" / "p2.png", (50, 60))
    _png(tmp_path / "abs.png")
    (tmp_path / "imgs" / "broken.png").write_text("nope")
    rows = [
        ("imgs/p1_cc.png", "Benign", "P1", "L", "cc", "Train", "1", "2", "10", "20", "a"),
        ("imgs/p1_mlo.pgm", "malignant", "P1", "L", "MLO", "train", "", "", "", "", "b"),
        ("imgs/p2.png", "1", "", "R", "CC", "test", "5", "5", "90", "10", "c"),  # box outside the 50x60 image
        ("imgs/missing.png", "0", "P3", "R", "CC", "test", "", "", "", "", "d"),
        ("imgs/p2.png", "maybe", "P4", "R", "CC", "val", "", "", "", "", "e"),
        ("imgs/broken.png", "0", "P5", "R", "CC", "val", "", "", "", "", "f"),
        (str(tmp_path / "abs.png"), "0", "P6", "RIGHT", "MLO", "val", "", "", "", "", "g"),
    ]
    cols = [
        "image",
        "label",
        "patient_id",
        "side",
        "view",
        "split",
        "x_min",
        "y_min",
        "x_max",
        "y_max",
        "Breast Density",
    ]
    table = tmp_path / "my.csv"
    pd.DataFrame(rows, columns=cols).to_csv(table, index=False)
    result = ingest_table(table, tmp_path / "data")
    man, rej = _read(tmp_path / "data")
    assert result.rows == 4 and result.rejected == 4
    assert "1 rows have no patient_id" in result.summary()
    assert list(man["patient_id"]) == ["P1", "P1", "p2", "P6"]
    assert list(man["label"]) == ["0", "1", "1", "0"]
    assert list(man["pathology"]) == ["BENIGN", "MALIGNANT", "MALIGNANT", "BENIGN"]
    assert list(man["side"]) == ["LEFT", "LEFT", "RIGHT", "RIGHT"] and list(man["view"]) == [
        "CC",
        "MLO",
        "CC",
        "MLO",
    ]
    assert list(man["split"]) == ["train", "train", "test", "val"]
    assert man.loc[0, "image_path"] == str((tmp_path / "imgs" / "p1_cc.png").resolve())
    assert man.loc[0, "image_id"] == man.loc[0, "image_path"]
    assert list(man[["x_min", "y_min", "x_max", "y_max"]].iloc[0]) == ["1", "2", "10", "20"]
    assert man.loc[2, "x_min"] == ""  # the bad box is dropped, the row kept
    assert list(man["image_rows"]) == ["40", "40", "50", "40"] and man.loc[2, "image_cols"] == "60"
    assert list(man["breast_density"]) == ["a", "b", "c", "g"]
    reasons = "\n".join(rej["path_or_row"] + ": " + rej["reason"])
    assert "missing.png: file not found" in reasons
    assert "my.csv row 6: label 'maybe'" in reasons
    assert "broken.png: not an image" in reasons
    assert "my.csv row 4: box" in reasons


def test_manifest_can_be_ingested_again(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    pd.DataFrame({"image": ["a.png", "b.png"], "label": ["0", "1"], "patient_id": ["W1", "W2"]}).to_csv(
        tmp_path / "t.csv", index=False
    )
    ingest_table(tmp_path / "t.csv", tmp_path / "data")
    result = ingest_table(tmp_path / "data" / "manifest.csv", tmp_path / "again")
    first, _ = _read(tmp_path / "data")
    again, _ = _read(tmp_path / "again")
    assert result.rows == 2 and again.equals(first)


def test_table_errors(tmp_path, capsys):
    with pytest.raises(UserError, match="table not found"):
        ingest_table(tmp_path / "none.csv", tmp_path / "data")
    (tmp_path / "t.csv").write_text("path,class\na.png,0\n")
    with pytest.raises(UserError, match="no column image, label"):
        ingest_table(tmp_path / "t.csv", tmp_path / "data")
    assert main(["ingest", "--table", str(tmp_path / "t.csv"), "--out", str(tmp_path / "data")]) != 0
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    (tmp_path / "u.csv").write_text("image,label\nnone.png,0\n")
    with pytest.raises(DataError, match="no usable image"):
        ingest_table(tmp_path / "u.csv", tmp_path / "data")
    assert not (tmp_path / "data").exists()


@pytest.mark.skipif(not RSNA.is_file(), reason="../shared/data/rsna-screening-dev absent")
def test_rsna_labels(tmp_path):
    result = ingest_table(RSNA, tmp_path / "data")
    man, rej = _read(tmp_path / "data")
    assert (result.rows, result.women, len(rej)) == (2074, 1420, 0)
    assert man["split"].value_counts().to_dict() == {"train": 1237, "val": 442, "test": 395}
    assert man["label"].value_counts().to_dict() == {"1": 1039, "0": 1035}
    assert set(man["side"]) == {"LEFT", "RIGHT"}
    assert {"site_id", "machine_id", "birads", "density", "age"} <= set(man.columns)
    assert (man.groupby("patient_id")["split"].nunique() == 1).all()


@pytest.mark.skipif(not MIAS.is_file(), reason="../shared/data/mini-mias absent")
def test_mini_mias_labels(tmp_path):
    result = ingest_table(MIAS, tmp_path / "data")
    man, _ = _read(tmp_path / "data")
    assert (result.rows, result.women) == (115, 108)
    assert man["label"].value_counts().to_dict() == {"0": 63, "1": 52}
    assert set(man["image_rows"]) == {"1024"} and set(man["view"]) == {"MLO"}
    assert set(man["abnormality_type"]) == {""}  # MIAS has no abnormality_type column; lesion_type is kept
    assert {"x", "y", "radius", "lesion_type", "fold"} <= set(man.columns)


def test_folders_with_and_without_split_level(tmp_path):
    root = tmp_path / "tree"
    for split, cls, n in [
        ("train", "Benign", 2),
        ("train", "Malignant", 1),
        ("test", "benign", 1),
        ("hold", "1", 1),
    ]:
        for i in range(n):
            _png(root / split / cls / f"{split}_{cls}_{i}.png")
    _png(root / "loose.png")
    (root / "train" / "Benign" / "readme.txt").write_text("ignored")
    result = ingest_folders(root, tmp_path / "data")
    man, rej = _read(tmp_path / "data")
    assert result.rows == 5 and "splits cannot be made by woman" in result.summary()
    got = sorted(zip(man["split"], man["label"], man["patient_id"], strict=False))
    assert got == [
        ("", "1", "hold_1_0"),
        ("test", "0", "test_benign_0"),
        ("train", "0", "train_Benign_0"),
        ("train", "0", "train_Benign_1"),
        ("train", "1", "train_Malignant_0"),
    ]
    assert "folders hold above the class folders are not train/val/test" in result.summary()
    assert list(rej["path_or_row"]) == [
        str(root / "loose.png"),
        str(root / "train" / "Benign" / "readme.txt"),
    ]
    assert "not an image PIL or pydicom can read" in rej["reason"].iloc[1]
    flat = tmp_path / "flat"
    _png(flat / "benign" / "a.png")
    _png(flat / "MALIGNANT" / "b.png")
    ingest_folders(flat, tmp_path / "data2")
    man, _ = _read(tmp_path / "data2")
    assert sorted(zip(man["split"], man["label"], strict=False)) == [("", "0"), ("", "1")]
    with pytest.raises(UserError, match="no images inside"):
        ingest_folders(tmp_path / "data2", tmp_path / "data3")
