"""`mammo report`: one self-contained HTML page with every section, every image inline, subgroups, baselines."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import write_seed_run

from mammo.cli import main
from mammo.errors import DataError
from mammo.io.atomic import write_json
from mammo.report.build import SECTION_IDS, build_report, training_curves
from mammo.report.collect import (
    age_band,
    baselines_table,
    check_verdicts,
    data_summary,
    effective_config,
    shortcut_baselines,
    subgroups,
)

SIZE = 32
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"  # ignored by git; CI can keep it


def make_run(tmp_path, n_women: int = 24):
    """PREP (bright = malignant blobs, metadata) and a RUN with a seed-basic best.pt, evaluated on val and test."""
    from mammo.evaluate.run import evaluate

    rng = np.random.default_rng(0)
    prep = tmp_path / "prep"
    (prep / "images").mkdir(parents=True)
    rows = []
    for w in range(n_women):
        split = "train" if w < 8 else ("val" if w < 14 else "test")
        for k in range(2):
            label = (w + k) % 2
            img = rng.integers(0, 20000, (SIZE, SIZE)).astype(np.uint16)
            cv2.circle(img, (16, 16), 6, 30000 + 30000 * label, -1)
            sid = f"P{w}_{k}"
            cv2.imwrite(str(prep / "images" / f"{sid}.png"), img)
            rows.append(
                {
                    "sample_id": sid,
                    "image": f"images/{sid}.png",
                    "label": label,
                    "patient_id": f"P{w}",
                    "split": split,
                    "view": "CC" if k else "MLO",
                    "side": "LEFT" if k else "RIGHT",
                    "site_id": f"s{w % 2}",
                    "age": 45 + w,
                }
            )
    pd.DataFrame(rows).to_csv(prep / "dataset.csv", index=False)
    write_json({"task": "whole", "size": SIZE}, prep / "prepare.json")
    run = tmp_path / "run"
    config = {"prep": str(prep), "epochs": 2}
    write_seed_run(run, prep, SIZE, 0.3, 0.3, epoch=2, best_val_auc=0.7, config=config, threshold=0.5)
    pd.DataFrame(
        {
            "epoch": [1, 2],
            "train_loss": [0.7, 0.6],
            "val_loss": [0.69, 0.65],
            "val_auc": [0.6, 0.7],
            "lr": [1e-3, 1e-3],
            "seconds": [1.0, 1.0],
        }
    ).to_csv(run / "metrics.csv", index=False)
    for split in ("val", "test"):
        evaluate(run, split=split, device="cpu")
    return run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("report"))


def _images(text: str) -> list[bytes]:
    srcs = re.findall(r'<img src="([^"]*)"', text)
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    return [base64.b64decode(s.split(",", 1)[1]) for s in srcs]


def test_report_is_one_self_contained_page(run, tmp_path):
    checks = {
        "split": "test",
        "method": "gradcam",
        "layer": "features.block3",
        "n": 9,
        "pointing_game": 0.78,
        "chance": 0.12,
        "randomisation_spearman": 0.08,
        "n_constant_random": 0,
    }
    write_json(checks, run / "explain" / "checks_test.json")
    result = build_report(run, tmp_path / "r.html", gallery_k=2)
    text = (tmp_path / "r.html").read_text()
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in text, sid
    images = _images(text)
    assert len(images) == result.n_images >= 4 + 1 + 2  # eval plots, training curves, gallery
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in images)
    assert not re.search(r"(src|href)=\"(https?:|//)", text) and "<script" not in text  # nothing to fetch
    assert "0.78" in text and "chance 0.12" in text and "0.08" in text  # the explanation checks
    assert "<h3>view</h3>" in text and "<h3>site</h3>" in text and "<h3>age band</h3>" in text
    assert "true positives" in text and "false negatives" in text
    metrics = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    assert f"{metrics['auc']:.3f}" in text
    breast = metrics["breast_level"]  # a line per breast beside the split's: the mean of its views' logits
    assert "test, per breast" in text
    assert f"{breast['auc']:.3f} ({breast['auc_ci_low']:.3f}-{breast['auc_ci_high']:.3f})" in text


def test_report_cli_and_missing_evaluation(run, tmp_path, capsys):
    assert main(["report", str(run), "--out", str(tmp_path / "x.html")]) == 0
    assert "report with 11 sections" in capsys.readouterr().out and (tmp_path / "x.html").is_file()
    with pytest.raises(DataError, match="mammo evaluate"):
        build_report(run, tmp_path / "y.html", split="train")


def _with_baselines(run, geometry_auc: float) -> None:
    """Set the test metrics: the model at 0.9, geometry at `geometry_auc`, fused (score and density) far below."""
    path = run / "eval" / "test" / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["auc"] = 0.9
    metrics["baselines"] = {
        "geometry": {
            "auc": geometry_auc,
            "n": 20,
            "inputs": ["source_rows", "crop_x0"],
            "description": "trees",
        },
        "fused": {"auc": 0.1, "n": 20, "inputs": ["score", "density"], "description": "plus age and density"},
    }
    write_json(metrics, path)


def test_synthetic_banner_and_shortcut_note_only_where_they_apply(tmp_path):
    real = make_run(tmp_path / "real", n_women=16)  # no provenance in prepare.json: real-like data
    _with_baselines(real, geometry_auc=0.8)
    text = build_report(real, tmp_path / "real.html", gallery_k=1).path.read_text()
    assert "Synthetic data" not in text and "Read the shortcuts first" not in text
    assert "logistic regression on the model&#x27;s image score and density" in text
    assert "plus age and density" not in text  # the fused row names the inputs it really used

    demo = make_run(tmp_path / "demo", n_women=16)
    prep_json = tmp_path / "demo" / "prep" / "prepare.json"
    info = json.loads(prep_json.read_text())
    write_json({**info, "provenance": {"synthetic": True, "source": "mammo synth (seed 0)"}}, prep_json)
    _with_baselines(demo, geometry_auc=0.87)
    text = build_report(demo, tmp_path / "demo.html", gallery_k=1).path.read_text()
    summary = text.split('<section id="summary">', 1)[1].split("</section>", 1)[0]
    assert 'class="warn banner">Synthetic data' in summary and "mammo synth (seed 0)" in summary
    assert "Read the shortcuts first" in summary and "geometry 0.870" in summary
    assert "source_rows, crop_x0" in summary and "fused" not in summary


def test_a_baseline_that_takes_the_image_score_is_no_shortcut():
    close = {"auc": 0.88, "n": 20, "auc_ci_low": 0.8, "auc_ci_high": 0.9}
    metrics = {
        "auc": 0.9,
        "birads_auc": 0.95,
        "baselines": {
            "fused": {**close, "inputs": ["score", "density"]},
            "age": {**close, "inputs": ["age"]},
        },
    }
    assert [r["name"] for r in shortcut_baselines(metrics)] == ["age"]


def test_check_verdicts_against_their_bars():
    good = check_verdicts({"pointing_game": 0.7, "chance": 0.1, "randomisation_spearman": 0.2})
    bad = check_verdicts({"pointing_game": 0.25, "chance": 0.1, "randomisation_spearman": 0.6})
    assert [c["verdict"] for c in good] == ["pass", "pass"] and [c["verdict"] for c in bad] == [
        "fail",
        "fail",
    ]
    assert "0.30" in bad[0]["bar"] and "0.50" in bad[1]["bar"]


def test_training_curves_mark_the_kept_epoch():
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.7, 0.6, 0.5], "val_auc": [0.6, 0.8, 0.7]})
    marked = cv2.imdecode(np.frombuffer(training_curves(history, kept=2), np.uint8), cv2.IMREAD_COLOR)
    plain = cv2.imdecode(np.frombuffer(training_curves(history), np.uint8), cv2.IMREAD_COLOR)
    assert marked.shape == plain.shape and (marked != plain).any()


def test_subgroups_ci_by_woman_and_age_bands():
    pred = pd.DataFrame(
        {
            "label": [0, 1] * 20,
            "logit": np.r_[np.linspace(0, 1, 20), np.linspace(0, 1, 20)],
            "patient_id": [f"w{i // 2}" for i in range(40)],
            "site_id": ["a"] * 20 + ["b"] * 20,
            "view": ["CC"] * 40,
        }
    )
    pred.loc[pred.label == 1, "logit"] += np.where(pred.loc[pred.label == 1, "site_id"] == "a", 5.0, 0.0)
    groups = subgroups(pred, n_boot=200)
    assert list(groups) == ["site"]  # view has one value: no comparison
    a, b = groups["site"]
    assert a["value"] == "a" and a["auc"] == 1.0 and b["auc"] < 0.9
    assert b["auc_ci_low"] < b["auc_ci_high"] < 1.0 and a["n"] == 20 and a["n_pos"] == 10
    assert [age_band(x) for x in (42, "55", 60, 79.5, "")] == ["<50", "50-59", "60-69", "70+", ""]


def test_baselines_are_rendered_generically():
    metrics = {
        "model": "m",
        "auc": 0.8,
        "auc_ci_low": 0.7,
        "auc_ci_high": 0.9,
        "n": 50,
        "majority_accuracy": 0.6,
        "accuracy": 0.75,
        "birads_auc": 0.85,
        "birads_auc_ci_low": 0.8,
        "birads_auc_ci_high": 0.9,
        "baselines": {
            "metadata": {
                "auc": 0.7,
                "auc_ci_low": 0.6,
                "auc_ci_high": 0.8,
                "n": 50,
                "inputs": ["age", "site_id"],
                "description": "age and site alone",
            }
        },
    }
    table = baselines_table(metrics)
    assert table["name"].tolist() == ["model (m)", "majority class", "BI-RADS assessment", "metadata"]
    assert table.loc[3, "inputs"] == "age, site_id" and table.loc[3, "auc"] == 0.7


def test_data_summary_counts_women():
    df = pd.DataFrame(
        {"split": ["train", "train", "test"], "label": [0, 1, 1], "patient_id": ["a", "a", "b"]}
    )
    s = data_summary(df).set_index("split")
    assert (
        s.loc["train", "women"] == 1
        and s.loc["all", "malignant"] == 2
        and list(s.index) == ["train", "test", "all"]
    )


class _Dom(HTMLParser):
    """Section ids and <img> sources of a DOM dump."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id") or "")
        elif tag == "img":
            self.images.append(a.get("src") or "")


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(run, tmp_path):
    import cv2

    report = build_report(run, tmp_path / "report.html", gallery_k=2)
    uri = report.path.resolve().as_uri()
    dump = _chromium(["--dump-dom", uri], tmp_path / "profile")
    dom = _Dom()
    dom.feed(dump.stdout)
    assert dom.sections == list(SECTION_IDS), dump.stderr[-2000:]
    assert len(dom.images) == report.n_images
    for src in dom.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-screenshot.png"
    shot.unlink(missing_ok=True)
    done = _chromium(
        [f"--screenshot={shot}", "--window-size=1200,3000", "--hide-scrollbars", uri], tmp_path / "p2"
    )
    assert shot.is_file(), done.stderr[-2000:]
    pixels = cv2.imread(str(shot), cv2.IMREAD_GRAYSCALE)
    assert pixels.shape == (3000, 1200) and pixels.std() > 20  # text, tables and plots, not a blank page


def test_config_table_shows_what_the_run_really_used():
    config = {"device": "auto", "amp": True, "epochs": 3}
    shown = effective_config(config, {"device": "cpu", "amp": False})
    assert shown == {
        "device": "cpu (asked: auto)",
        "amp": "False (asked: True; bf16 autocast is CUDA-only)",
        "epochs": 3,
    }
    assert effective_config(config, None) == config  # a run trained before the record: as asked
    assert effective_config({"device": "cuda", "amp": True}, {"device": "cuda", "amp": True})["amp"] is True
