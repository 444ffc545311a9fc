"""`mammo eda` on manifests built in code (CBIS-like and table-like) and on the real CBIS-DDSM mass CSVs."""

from __future__ import annotations

import re
import subprocess
import sys

import pandas as pd
import pytest
from conftest import SHARED

from mammo.data.eda import FIGURES, run_eda
from mammo.data.manifest import MANIFEST_COLUMNS, write_manifest
from mammo.errors import DataError

CSV_DIR = SHARED / "data" / "cbis-ddsm-csv"


def finding(pid, image_id, split, pathology, atype="mass", view="CC", **extra) -> dict:
    """One manifest row with CBIS-like descriptors."""
    row = dict.fromkeys(MANIFEST_COLUMNS, "")
    row.update(
        patient_id=pid,
        image_id=image_id,
        split=split,
        pathology=pathology,
        abnormality_type=atype,
        view=view,
        side="LEFT",
        abnormality_id="1",
        label=int(pathology == "MALIGNANT"),
        image_path=f"/x/{image_id}.dcm",
        breast_density="2",
        subtlety="3",
        assessment="4",
        image_rows="4000",
        image_cols="2500",
        mass_shape="",
        mass_margins="",
        calc_type="",
        calc_distribution="",
    )
    if atype == "mass":
        row.update(mass_shape="IRREGULAR" if pathology == "MALIGNANT" else "OVAL", mass_margins="SPICULATED")
    else:
        row.update(calc_type="PLEOMORPHIC", calc_distribution="CLUSTERED")
    row.update(extra)
    return row


def cbis_like() -> pd.DataFrame:
    """4 women, 6 images, 8 findings: one image with 3 findings (mixed), one woman in train and test."""
    rows = [
        finding("P1", "m1", "train", "MALIGNANT"),
        finding("P1", "m1", "train", "BENIGN"),
        finding("P1", "m1", "train", "BENIGN_WITHOUT_CALLBACK", assessment="2"),
        finding(
            "P1", "c1", "test", "BENIGN", atype="calc", view="MLO", image_rows="5000"
        ),  # P1 crosses splits
        finding("P2", "m2", "train", "BENIGN", view="MLO", breast_density="3"),
        finding("P3", "m3", "test", "MALIGNANT", assessment="5"),
        finding("P4", "c4", "test", "MALIGNANT", atype="calc", subtlety="5"),
        finding("P4", "c4", "test", "MALIGNANT", atype="calc"),
    ]
    return pd.DataFrame(rows)


def test_cbis_like_manifest_gives_every_figure_and_right_numbers(tmp_path):
    write_manifest(cbis_like(), tmp_path / "data")
    result = run_eda(tmp_path / "data", tmp_path / "eda")
    assert result.skipped == []
    assert sorted(p.stem for p in result.figures) == sorted(name for name, _, _ in FIGURES)
    for p in result.figures:
        assert p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG"
    n = result.numbers
    assert (n["findings"], n["images"], n["women"]) == (8, 5, 4)
    assert (n["malignant_findings"], n["malignant_images"]) == (4, 3)
    assert (n["multi_finding_images"], n["mixed_images"]) == (2, 1)
    assert n["cross_split_women_ids"] == ["P1"]
    assert n["per_split"]["train"] == {
        "findings": 4,
        "malignant_findings": 1,
        "images": 2,
        "malignant_images": 1,
        "women": 2,
        "malignant_women": 1,
    }
    assert n["per_split"]["test"] == {
        "findings": 4,
        "malignant_findings": 3,
        "images": 3,
        "malignant_images": 2,
        "women": 3,
        "malignant_women": 2,
    }
    assert list(n["per_split"]) == ["train", "test"]
    md = result.summary_path.read_text()
    assert "**8 findings** on **5 images** of **4 women**" in md
    assert "| train | 4 | 1 | 2 | 1 | 2 | 1 |" in md
    assert "women in more than one split: 1 (P1)" in md
    assert "![mass_shape_vs_pathology](mass_shape_vs_pathology.png)" in md
    assert "1 women in more than one split" in result.summary()


def test_table_like_manifest_skips_what_it_lacks(tmp_path):
    rows = []
    for i in range(6):
        row = dict.fromkeys(MANIFEST_COLUMNS, "")
        row.update(
            patient_id=f"W{i // 2}",
            image_id=f"/imgs/{i}.png",
            label=i % 2,
            pathology="malignant" if i % 2 else "benign",
            image_path=f"/imgs/{i}.png",
        )
        rows.append(row)
    write_manifest(pd.DataFrame(rows), tmp_path / "data")
    result = run_eda(tmp_path / "data", tmp_path / "eda")
    skipped = {name for name, _ in result.skipped}
    assert {
        "density_vs_pathology",
        "mass_shape_vs_pathology",
        "image_sizes",
        "pathology_by_view",
        "class_balance_by_split",
        "women_per_split",
        "assessment_vs_pathology",
    } <= skipped
    assert {p.stem for p in result.figures} == {"pathology_counts", "findings_per_image"}
    assert all((tmp_path / "eda" / f"{s}.png").exists() is False for s in skipped)
    n = result.numbers
    assert (n["findings"], n["images"], n["women"], n["malignant_images"]) == (6, 6, 3, 3)
    assert n["per_split"]["(none)"]["images"] == 6
    md = result.summary_path.read_text()
    assert "## Skipped figures" in md and "- image_sizes: no values in column(s) image_rows, image_cols" in md


def test_empty_manifest_is_a_clear_error(tmp_path):
    write_manifest(pd.DataFrame(columns=MANIFEST_COLUMNS), tmp_path / "data")
    with pytest.raises(DataError, match="no rows"):
        run_eda(tmp_path / "data", tmp_path / "eda")
    with pytest.raises(DataError, match="no manifest"):
        run_eda(tmp_path / "nothing", tmp_path / "eda")


def test_eda_does_not_import_torch():
    code = "import sys, mammo.data.eda; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _manifest_from_official_csvs(names: list[str]) -> pd.DataFrame:
    """A manifest straight from the official CSVs (no images): the columns ingest writes, in snake_case."""
    frames = []
    for name in names:
        df = pd.read_csv(CSV_DIR / name, dtype=str, keep_default_na=False)
        df.columns = [re.sub(r"[^0-9a-z]+", "_", c.strip().lower()).strip("_") for c in df.columns]
        df = df.rename(columns={"left_or_right_breast": "side", "image_view": "view"})
        df = df.apply(lambda col: col.str.strip())
        df["split"] = "train" if "_train_" in name else "test"
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    df["abnormality_type"] = df["abnormality_type"].replace({"calcification": "calc"})
    df["image_id"] = df["image_file_path"].str.split("/").str[0]
    df["label"] = (df["pathology"] == "MALIGNANT").astype(int)
    for col in ("image_path", "mask_path", "crop_path"):
        df[col] = ""
    return df


@pytest.mark.skipif(not CSV_DIR.is_dir(), reason="../shared/data/cbis-ddsm-csv is absent")
def test_real_mass_csvs_counts(tmp_path):
    df = _manifest_from_official_csvs(
        ["mass_case_description_train_set.csv", "mass_case_description_test_set.csv"]
    )
    write_manifest(df, tmp_path / "data")
    result = run_eda(tmp_path / "data", tmp_path / "eda")
    n = result.numbers
    # docs/cbis-ddsm.md: 1318 + 378 rows, 1231 + 361 images, 691 + 201 women, any-malignant rule 747 images
    assert (n["findings"], n["images"], n["women"]) == (1696, 1592, 892)
    assert n["malignant_images"] == 747 and n["malignant_findings"] == 637 + 147
    assert (n["per_split"]["train"]["images"], n["per_split"]["test"]["images"]) == (1231, 361)
    assert (n["per_split"]["train"]["women"], n["per_split"]["test"]["women"]) == (691, 201)
    assert n["multi_finding_images"] == 58 + 13 and n["mixed_images"] == 6 + 2
    assert n["cross_split_women"] == 0  # the mass files alone are split by woman
    assert n["pathology"] == {"MALIGNANT": 784, "BENIGN": 771, "BENIGN_WITHOUT_CALLBACK": 141}
    assert {name for name, _ in result.skipped} == {
        "calc_type_vs_pathology",
        "calc_distribution_vs_pathology",
        "image_sizes",
    }
    assert "| train | 1318 | 637 | 1231 |" in result.summary_path.read_text()


def test_cli_eda(tmp_path, capsys):
    from mammo.cli import main

    write_manifest(cbis_like(), tmp_path / "data")
    assert main(["eda", str(tmp_path / "data"), "--out", str(tmp_path / "eda")]) == 0
    assert "8 findings on 5 images of 4 women" in capsys.readouterr().out
    assert main(["eda", str(tmp_path / "missing"), "--out", str(tmp_path / "eda2")]) == 1
    assert "no manifest" in capsys.readouterr().err
