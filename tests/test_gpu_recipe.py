"""The GPU recipe (`bench/real_accuracy.py gpu`) on the CPU, on a tiny synthetic table: it cannot break unseen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_final_command import make_table

from mammo.predict.files import predict
from mammo.train.config import resolve_config
from mammo.train.memory import Bank, augment_batch, bank_logits, breast_units, fit, write_run

ROOT = Path(__file__).resolve().parents[1]
# pydicom and MONAI are not on the GPU machine: the recipe runs with both imports refused
NO_DICOM_NO_MONAI = (
    "import sys, runpy; sys.modules['pydicom'] = None; sys.modules['monai'] = None; "
    "sys.argv = sys.argv[1:]; sys.path.insert(0, sys.argv[0].rsplit('/', 1)[0]); "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def test_gpu_command_runs_on_cpu_and_writes_a_run_predict_scores(tmp_path):
    table = make_table(tmp_path / "set")
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [
        sys.executable,
        "-c",
        NO_DICOM_NO_MONAI,
        str(ROOT / "bench" / "real_accuracy.py"),
        "gpu",
        "--table",
        str(table),
        "--out",
        str(run),
        "--device",
        "cpu",
        "--prep-size",
        "64",
        "--sizes",
        "32",
        "--folds",
        "2",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--workers",
        "2",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "run-work" / "gpu_accuracy.json").read_text())
    assert set(results["cv"]) == {"lite0-32-image", "lite0-32-breast"}
    assert set(results["paired_settings"]) == {"lite0-32-breast - lite0-32-image"}
    for m in results["cv"].values():
        assert 0 <= m["auc"] <= 1 and m["n"] == 24 and m["breast_level"]["n"] == 12
        assert "age" in m["baselines"] and m["timings"]["train"]["images_per_s"] > 0
        assert 0 < m["timings"]["train"]["step_fraction"] <= 1
    assert results["chosen"] in results["cv"] and results["test"]["n"] == 8
    assert results["machine"]["device"] == "cpu"
    assert (
        not (ROOT / "bench" / "results" / "gpu_accuracy.json").exists()
        or "cuda"
        in json.loads((ROOT / "bench" / "results" / "gpu_accuracy.json").read_text())["machine"]["device"]
    )
    # the final model is an ordinary RUN: predict scores a test woman's films with it, and per breast
    images = sorted((tmp_path / "set" / "images").glob("3_*"))
    rows = predict(run, images, workers=0, device="cpu", aggregate=None).rows
    assert rows["probability_malignant"].between(0, 1).all() and len(rows) == 2


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    """A PREP of the tiny table (prepared at 64 px) held at 32 px."""
    from mammo.data.table import ingest_table
    from mammo.prep.run import prepare

    root = tmp_path_factory.mktemp("bank")
    table = make_table(root / "set")
    df = pd.read_csv(table, dtype=str, keep_default_na=False)
    df["image"] = [str(root / "set" / p) for p in df["image"]]
    df.to_csv(root / "abs.csv", index=False)
    ingest_table(root / "abs.csv", root / "data")
    prepare(root / "data", root / "prep", task="whole", size=64, workers=0)
    from mammo.prep.dataset import read_dataset_csv

    rows = read_dataset_csv(root / "prep")
    return root / "prep", Bank.load(root / "prep", rows, 32, workers=2)


def test_bank_holds_the_inputs_predict_feeds(bank):
    from mammo.datasets import load_prep_image

    prep, b = bank
    for i in (0, 5):
        want = load_prep_image(prep / b.rows["image"].iloc[i], 32)
        got = b.images(torch.tensor([i]))[0].numpy()
        np.testing.assert_array_equal(got, want)
    assert b.pixels.dtype == torch.int16


def test_augment_batch_is_seeded_and_keeps_shape(bank):
    _, b = bank
    x = b.images(torch.arange(4))
    one = augment_batch(x, np.random.default_rng(3))
    two = augment_batch(x, np.random.default_rng(3))
    assert one.shape == x.shape and torch.equal(one, two)
    assert not torch.equal(one, x)


def test_breast_units_pair_the_views_of_one_breast():
    rows = pd.DataFrame(
        {
            "patient_id": ["A", "A", "A", "B", "C", "C", "Mass-Test_P_1_LEFT_CC"],
            "side": ["L", "L", "R", "L", "", "", ""],
            "view": ["CC", "MLO", "CC", "MLO", "CC", "MLO", ""],
            "label": [1, 0, 0, 0, 1, 1, 0],
        }
    )
    units, labels = breast_units(rows)
    as_sets = sorted((tuple(cc), tuple(mlo), int(lab)) for (cc, mlo), lab in zip(units, labels, strict=True))
    # A-left pairs its CC and MLO (label max 1); a one-view breast uses its view twice; no side: one image each
    assert as_sets == sorted(
        [((0,), (1,), 1), ((2,), (2,), 0), ((3,), (3,), 0), ((4,), (4,), 1), ((5,), (5,), 1), ((6,), (6,), 0)]
    )


def test_fit_writes_an_ordinary_run_with_the_same_logits(bank, tmp_path):
    prep, b = bank
    train = np.flatnonzero(b.rows["split"].isin(["train"]).to_numpy())
    val = np.flatnonzero((b.rows["split"] == "val").to_numpy())
    cfg = resolve_config(
        [], {"model": "efficientnet-lite0", "size": 32, "epochs": 1, "batch_size": 8, "device": "cpu"}
    )
    fitted = fit(cfg, b, train, val, views="breast")
    assert fitted.timer.summary()["train"]["images"] > 0
    result = write_run(fitted, prep, tmp_path / "run")
    from mammo.predict.run import Run

    loaded = Run.load(result.run_dir, device="cpu")
    test = np.flatnonzero((b.rows["split"] == "test").to_numpy())
    from mammo.models.registry import get_model_info

    info = get_model_info("efficientnet-lite0")
    ours = bank_logits(fitted.model, b, test, info.mean, info.std)
    theirs = loaded.score_rows(b.rows.iloc[test].reset_index(drop=True), prep, 8)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    assert loaded.temperature == pytest.approx(fitted.temperature)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here: --device cuda is valid")
def test_gpu_command_without_cuda_says_so_in_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    (tmp_path / "t.csv").write_text("image,label,patient_id,split\n")
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "real_accuracy.py"),
        "gpu",
        "--table",
        str(tmp_path / "t.csv"),
    ]
    done = subprocess.run(
        [*cmd, "--out", str(tmp_path / "run"), "--device", "cuda"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "real_accuracy.py gpu: --device cuda: no CUDA device is available here; use --device cpu or auto"
    ]
    assert not (tmp_path / "run").exists() and not (tmp_path / "run-work").exists()
    missing = [*cmd[:-1], str(tmp_path / "none.csv"), "--out", str(tmp_path / "run"), "--device", "cpu"]
    done = subprocess.run(missing, env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "none.csv: not found" in done.stderr and "Traceback" not in done.stderr
