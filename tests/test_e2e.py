"""End to end on a synthetic download in both layouts: synth -> ingest -> validate -> prepare (whole, roi) -> eda."""

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mammo.cli import main
from mammo.data.cbis import ingest_cbis
from mammo.data.eda import run_eda
from mammo.data.synth import make_download
from mammo.data.validate import validate
from mammo.prep.run import prepare


@pytest.mark.parametrize("layout", ["descriptive", "classic"])
def test_pipeline_end_to_end(tmp_path: Path, layout: str) -> None:
    made = make_download(tmp_path / "dl", women=14, layout=layout, size="small", seed=5)
    ingest_cbis(tmp_path / "dl", tmp_path / "data", workers=2)
    manifest = pd.read_csv(tmp_path / "data" / "manifest.csv", dtype=str, keep_default_na=False)
    rejected = pd.read_csv(tmp_path / "data" / "rejected.csv", dtype=str, keep_default_na=False)
    assert rejected["path_or_row"].str.contains(Path(made.truncated).name).any()
    assert manifest["image_id"].nunique() == made.n_images - 1  # all but the truncated image

    report = validate(tmp_path / "data")
    assert any(made.cross_split_patient in e for e in report.errors)

    for task in ("whole", "roi"):
        prep = tmp_path / f"prep-{task}"
        prepare(tmp_path / "data", prep, task=task, size=96, workers=2, seed=1)
        ds = pd.read_csv(prep / "dataset.csv", dtype={"patient_id": str})
        expected = manifest["image_id"].nunique() if task == "whole" else len(manifest)
        assert len(ds) == expected
        assert ds.groupby("patient_id")["split"].nunique().max() == 1  # no woman in two splits
        assert set(ds["split"]) == {"train", "val", "test"}
        img = cv2.imread(str(prep / ds["image"].iloc[0]), cv2.IMREAD_UNCHANGED)
        assert img.dtype == np.uint16 and img.shape == (96, 96)

    eda = run_eda(tmp_path / "data", tmp_path / "eda")
    assert (tmp_path / "eda" / "summary.md").is_file()
    assert len(list((tmp_path / "eda").glob("*.png"))) >= 8, eda.summary()


def test_cli_chain_exit_codes(tmp_path: Path, capsys) -> None:
    assert main(["synth", str(tmp_path / "dl"), "--women", "6", "--seed", "2"]) == 0
    assert main(["ingest", str(tmp_path / "dl"), "--out", str(tmp_path / "data")]) == 0
    assert main(["validate", str(tmp_path / "data")]) == 1  # the synthetic cross-split woman is an error
    assert main(["prepare", str(tmp_path / "data"), "--out", str(tmp_path / "prep"), "--size", "64"]) == 0
    capsys.readouterr()
    assert main(["synth", str(tmp_path / "dl")]) == 2  # exists and is not empty
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty" in err[0]
