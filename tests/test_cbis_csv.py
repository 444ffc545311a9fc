"""CBIS-DDSM case-description CSV parsing: the real 3,568 rows give the documented counts; quirks handled."""

import pandas as pd
import pytest
from conftest import SHARED

from mammo.data.cbis_csv import (
    OFFICIAL_CSVS,
    csv_header,
    find_case_csvs,
    label_rows,
    path_parts,
    read_case_csv,
    read_case_csvs,
    snake_case,
    split_from_name,
)

CSV_DIR = SHARED / "data" / "cbis-ddsm-csv"
needs_csv = pytest.mark.skipif(not CSV_DIR.is_dir(), reason="../shared/data/cbis-ddsm-csv absent")

CROSS_SPLIT = {
    "P_00041",
    "P_00495",
    "P_00678",
    "P_00723",
    "P_00753",
    "P_00906",
    "P_01152",
    "P_01179",
    "P_01237",
    "P_01621",
    "P_01635",
    "P_01803",
    "P_01883",
    "P_00016",
    "P_00159",
    "P_00394",
    "P_00510",
    "P_00591",
    "P_00601",
    "P_00639",
    "P_00652",
    "P_00882",
    "P_00924",
    "P_00969",
    "P_01108",
    "P_01307",
    "P_01365",
    "P_01467",
    "P_01566",
    "P_01605",
    "P_01741",
}


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    """All four real CSVs, read and labelled (BWC as benign)."""
    df, problems = label_rows(read_case_csvs(find_case_csvs(CSV_DIR)))
    assert problems == []
    df["file"] = df["source_row"].str.split(" ").str[0]
    df["image_id"] = df["image_file_path"].map(lambda p: path_parts(p)[0])
    return df


@needs_csv
@pytest.mark.parametrize("name", OFFICIAL_CSVS)
def test_csv_header_is_the_real_one(name):
    first_line = (CSV_DIR / name).read_bytes().split(b"\r\n", 1)[0].decode("ascii")
    assert first_line == ",".join(csv_header(name.split("_")[0]))


def test_snake_case_and_split_names():
    assert snake_case("ROI mask file path") == "roi_mask_file_path"
    assert snake_case(" breast density ") == "breast_density"
    assert snake_case("left or right breast") == "left_or_right_breast"
    assert split_from_name("calc_case_description_train_set.csv") == "train"
    assert split_from_name("Mass_Case_Description_TEST_set.csv") == "test"
    assert split_from_name("my_case_description.csv") == ""


def test_path_parts_rejects_paths_outside_root():
    assert path_parts("A_1/s/u/000000.dcm\n") == ("A_1", "s", "u", "000000.dcm")
    assert path_parts("A_1\\s\\u\\1-1.dcm") == ("A_1", "s", "u", "1-1.dcm")
    assert path_parts("../etc/passwd") is None
    assert path_parts("A/../../x.dcm") is None
    assert path_parts("/abs/x.dcm") is None
    assert path_parts("C:/x.dcm") is None
    assert path_parts("") is None


def test_tiny_csv_bad_pathology_and_bwc_drop(tmp_path):
    header = (
        "patient_id,breast density,left or right breast,image view,abnormality id,abnormality type,calc type,"
        "calc distribution,assessment,pathology,subtlety,image file path,cropped image file path,"
        "ROI mask file path\n"
    )
    rows = [
        'P_1,2,LEFT,CC,1,calcification,N/A,CLUSTERED,4,MALIGNANT,3,Calc-Test_P_1_LEFT_CC/s/u/000000.dcm,"c/s/u/1.dcm\n",m/s/u/0.dcm',
        "P_1,2,LEFT,CC,2,calcification,X,Y,2,BENIGN_WITHOUT_CALLBACK,3,Calc-Test_P_1_LEFT_CC/s/u/000000.dcm,c,m",
        "P_2,3,RIGHT,MLO,1,calcification,X,Y,3,MAYBE,3,Calc-Test_P_2_RIGHT_MLO/s/u/000000.dcm,c,m",
    ]
    path = tmp_path / "calc_case_description_test_set.csv"
    path.write_text(header + "\r\n".join(rows) + "\r\n")
    df = read_case_csv(path)
    assert list(df["split"]) == ["test"] * 3
    assert df.loc[0, "calc_type"] == "N/A"
    assert df.loc[0, "cropped_image_file_path"] == "c/s/u/1.dcm"
    assert "breast_density" in df.columns and df.loc[2, "breast_density"] == "3"
    kept, problems = label_rows(df, "benign")
    assert list(kept["label"]) == [1, 0]
    assert list(kept["abnormality_type"]) == ["calc", "calc"]
    assert len(problems) == 1 and "MAYBE" in problems[0][1] and "record 3" in problems[0][0]
    kept, problems = label_rows(df, "drop")
    assert list(kept["pathology"]) == ["MALIGNANT"]
    assert sorted(r for _, r in problems)[0].startswith("BENIGN_WITHOUT_CALLBACK dropped")


def test_finds_official_and_case_description_names(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in OFFICIAL_CSVS[:2]:
        (tmp_path / "a" / name).write_text("x\n")
        (tmp_path / "a" / "b" / name).write_text("x\n")
    (tmp_path / "a" / "my_case_description_extra.csv").write_text("x\n")
    (tmp_path / "a" / "metadata.csv").write_text("x\n")
    found = find_case_csvs(tmp_path)
    assert [p.name for p in found] == [*OFFICIAL_CSVS[:2], "my_case_description_extra.csv"]
    assert all(p.parent.name == "a" for p in found)  # the shallow copy wins, no duplicates
    (tmp_path / "empty").mkdir()
    assert find_case_csvs(tmp_path / "empty", tmp_path) == found
    assert find_case_csvs(tmp_path / "empty") == []


@needs_csv
def test_real_rows_images_patients_per_file(real):
    by_file = real.groupby("file")
    assert by_file.size().to_dict() == {
        "mass_case_description_train_set.csv": 1318,
        "mass_case_description_test_set.csv": 378,
        "calc_case_description_train_set.csv": 1546,
        "calc_case_description_test_set.csv": 326,
    }
    assert by_file["image_id"].nunique().to_dict() == {
        "mass_case_description_train_set.csv": 1231,
        "mass_case_description_test_set.csv": 361,
        "calc_case_description_train_set.csv": 1227,
        "calc_case_description_test_set.csv": 284,
    }
    assert by_file["patient_id"].nunique().to_dict() == {
        "mass_case_description_train_set.csv": 691,
        "mass_case_description_test_set.csv": 201,
        "calc_case_description_train_set.csv": 602,
        "calc_case_description_test_set.csv": 151,
    }
    assert (len(real), real["image_id"].nunique(), real["patient_id"].nunique()) == (3568, 3103, 1566)


@needs_csv
def test_real_labels_types_splits(real):
    counts = real.groupby(["file", "pathology"]).size()
    assert counts["mass_case_description_train_set.csv"].to_dict() == {
        "MALIGNANT": 637,
        "BENIGN": 577,
        "BENIGN_WITHOUT_CALLBACK": 104,
    }
    assert counts["calc_case_description_test_set.csv"].to_dict() == {
        "MALIGNANT": 129,
        "BENIGN": 130,
        "BENIGN_WITHOUT_CALLBACK": 67,
    }
    assert real["label"].sum() == 637 + 147 + 544 + 129
    assert real["abnormality_type"].value_counts().to_dict() == {"calc": 1872, "mass": 1696}
    assert real["split"].value_counts().to_dict() == {"train": 2864, "test": 704}
    assert set(real["side"]) == {"LEFT", "RIGHT"} and set(real["view"]) == {"CC", "MLO"}
    _, problems = label_rows(read_case_csvs(find_case_csvs(CSV_DIR)), "drop")
    assert len(problems) == 104 + 37 + 474 + 67


@needs_csv
def test_real_quirks_na_density_and_paths(real):
    mass, calc = real[real["abnormality_type"] == "mass"], real[real["abnormality_type"] == "calc"]
    assert (mass["mass_shape"] == "N/A").sum() == 4 and (mass["mass_margins"] == "N/A").sum() == 60
    assert (calc["calc_type"] == "N/A").sum() == 24 and (calc["calc_distribution"] == "N/A").sum() == 439
    assert (calc["mass_shape"] == "").all() and (mass["calc_type"] == "").all()
    assert (real["breast_density"] != "").all() and (real["breast_density"] == "0").sum() == 2
    for col in ("image_file_path", "cropped_image_file_path", "roi_mask_file_path"):
        assert not real[col].str.contains("\n").any()
        assert real[col].str.endswith(".dcm").all()
        assert real[col].map(lambda p: len(path_parts(p))).eq(4).all()


@needs_csv
def test_real_cross_split_women(real):
    splits = real.groupby("patient_id")["split"].nunique()
    assert set(splits[splits > 1].index) == CROSS_SPLIT
    for kind in ("mass", "calc"):
        one = real[real["abnormality_type"] == kind].groupby("patient_id")["split"].nunique()
        assert (one == 1).all()
