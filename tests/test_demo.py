"""The one-command demo: its fast version runs every step and leaves each step's output."""

import json
import re
from pathlib import Path

import pytest

from mammo import demo
from mammo.demo import run_demo
from mammo.errors import UserError


def test_fast_demo_runs_every_step(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "demo", fast=True)
    out = tmp_path / "demo"
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


def test_demo_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        run_demo(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_each_step_logs_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    monkeypatch.setattr(demo.log, "info", lambda msg, *args: lines.append(msg % args))
    assert demo._step("eda", lambda: "3 figures") == "3 figures"
    assert len(lines) == 1 and re.fullmatch(r"\[     eda\] 3 figures  \(\d+\.\ds\)", lines[0])
