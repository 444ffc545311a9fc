"""validate: every problem at once; women in two splits named; clean data gives no errors."""

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import CBIS_CSV_DIR

from mammo.cli import main
from mammo.data.cbis_csv import find_case_csvs, label_rows, path_parts, read_case_csvs
from mammo.data.manifest import MANIFEST_COLUMNS, write_manifest, write_rejected
from mammo.data.validate import validate
from mammo.errors import DataError

CSV_DIR = CBIS_CSV_DIR


def _img(path: Path, shape=(40, 30)) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full(shape, 7, np.uint8))
    return str(path)


def _clean(tmp_path: Path) -> pd.DataFrame:
    """Four findings on three images of three women, train and test both with both classes, files on disk."""
    rows = []
    for pid, img, split, label, abn in [
        ("W1", "i1", "train", 1, 1),
        ("W1", "i1", "train", 1, 2),
        ("W2", "i2", "train", 0, 1),
        ("W3", "i3", "test", 0, 1),
        ("W4", "i4", "test", 1, 1),
    ]:
        mask = np.zeros((40, 30), np.uint8)
        rows.append(
            {
                "patient_id": pid,
                "image_id": img,
                "abnormality_type": "mass",
                "split": split,
                "side": "LEFT",
                "view": "CC",
                "abnormality_id": str(abn),
                "pathology": "MALIGNANT" if label else "BENIGN",
                "label": str(label),
                "image_path": _img(tmp_path / "img" / f"{img}.png"),
                "mask_path": _img(tmp_path / "mask" / f"{img}_{abn}.png", mask.shape),
                "crop_path": "",
                "image_rows": "40",
                "image_cols": "30",
                "assessment": "4",
                "breast_density": "2",
                "subtlety": "3",
            }
        )
    return pd.DataFrame(rows)


def _write(df: pd.DataFrame, data: Path, rejected=()) -> Path:
    write_manifest(df, data)
    write_rejected(list(rejected), data)
    return data


def test_clean_manifest_has_no_problems(tmp_path, capsys):
    data = _write(_clean(tmp_path), tmp_path / "data")
    report = validate(data)
    assert report.errors == [] and report.warnings == []
    text = report.text()
    assert text.endswith("0 errors, 0 warnings")
    assert "train" in text and "% malignant" in text
    assert main(["validate", str(data)]) == 0
    assert capsys.readouterr().out.strip().endswith("0 errors, 0 warnings")


def test_every_problem_at_once(tmp_path, capsys):
    df = _clean(tmp_path)
    df.loc[3, "patient_id"] = "W1"  # W1 now in train and test
    df.loc[1, "label"] = "0"  # image i1 mixes benign and malignant
    df.loc[2, "breast_density"] = "0"
    df.loc[2, "assessment"] = "7"
    df.loc[4, "image_path"] = str(tmp_path / "gone.png")
    _img(Path(df.loc[0, "mask_path"]), (20, 30))  # mask smaller than its image
    data = _write(df, tmp_path / "data", [("x.dcm", "truncated"), ("y.dcm", "not a DICOM file")])
    report = validate(data)
    errors, warnings = "\n".join(report.errors), "\n".join(report.warnings)
    assert "1 women in both test and train: W1" in errors
    assert "1 image_path files missing" in errors and "gone.png" in errors
    assert "1 masks whose size differs from their image" in errors and "20x30 vs 40x30" in errors
    assert len(report.errors) == 3
    assert "1 images with both benign and malignant findings" in warnings and "i1" in warnings
    assert "breast_density outside 1-4" in warnings and "assessment outside 0-5" in warnings
    assert "lists 2 problems" in warnings
    assert report.text().endswith(f"3 errors, {len(report.warnings)} warnings")
    assert main(["validate", str(data)]) == 1
    assert "W1" in capsys.readouterr().out


def test_one_class_split_and_bad_label(tmp_path):
    df = _clean(tmp_path)
    df.loc[df["split"] == "test", "label"] = "0"
    df.loc[0, "label"] = "2"
    report = validate(_write(df, tmp_path / "data"))
    assert any("label not 0/1" in e and "'2'" in e for e in report.errors)
    assert "split 'test' has only benign findings" in report.warnings


def test_missing_manifest_and_columns(tmp_path):
    with pytest.raises(DataError, match="no manifest here"):
        validate(tmp_path)
    (tmp_path / "manifest.csv").write_text("patient_id,label\nW1,1\n")
    report = validate(tmp_path)
    assert report.errors and "lacks columns" in report.errors[0] and "image_id" in report.errors[0]


@pytest.mark.skipif(not CSV_DIR.is_dir(), reason="../shared/data/cbis-ddsm-csv absent")
def test_real_csvs_name_the_31_cross_split_women(tmp_path):
    df, _ = label_rows(read_case_csvs(find_case_csvs(CSV_DIR)))
    df["image_id"] = df["image_file_path"].map(lambda p: path_parts(p)[0])
    df["image_path"] = df["mask_path"] = df["crop_path"] = ""
    report = validate(_write(df[[*MANIFEST_COLUMNS, "breast_density", "subtlety", "assessment"]], tmp_path))
    assert len(report.errors) == 1 and report.errors[0].startswith(
        "31 women in both test and train: P_00016, P_00041"
    )
    assert any(w.startswith("17 images with both benign and malignant") for w in report.warnings)
    assert any(w.startswith("2 rows with breast_density outside 1-4") for w in report.warnings)
    assert any(w.startswith("2 rows with subtlety outside 1-5") for w in report.warnings)
