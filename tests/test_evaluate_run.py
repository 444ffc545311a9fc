"""`evaluate` end to end on a PREP and RUN made in code: files, metric values, image level, BI-RADS, errors, CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_seed_run
from sklearn.metrics import roc_auc_score

from mammo.cli import main
from mammo.errors import DataError
from mammo.evaluate.run import PREDICTION_COLUMNS, evaluate, max_assessment
from mammo.io.atomic import write_json

SIZE = 16


class BrightnessModel(torch.nn.Module):
    """Logit = scale * (mean pixel - 0.5): brighter images are more malignant; scale 0 gives a constant model."""

    def __init__(self, scale: float = 8.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * (x.mean(dim=(1, 2, 3)) - 0.5)[:, None]


def make_prep(root, rows: list[dict], task: str = "whole"):
    """PREP/ with one constant-brightness 16-bit PNG per row, dataset.csv and prepare.json."""
    prep = root / "prep"
    (prep / "images").mkdir(parents=True)
    for r in rows:
        img = np.full((SIZE, SIZE), int(r.pop("brightness") * 65535), np.uint16)
        r["image"] = f"images/{r['sample_id']}.png"
        assert cv2.imwrite(str(prep / r["image"]), img)
    pd.DataFrame(rows).to_csv(prep / "dataset.csv", index=False)
    write_json({"task": task, "size": SIZE}, prep / "prepare.json")
    return prep


def make_run(
    root,
    monkeypatch,
    task: str = "whole",
    temperature: float = 2.0,
    threshold: float = 0.5,
    model: torch.nn.Module | None = None,
):
    """A RUN folder whose best.pt is stood in for by a fake model through a patched load_run."""
    run = root / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"stand-in")
    ckpt = {
        "model": {"name": "brightness", "args": {}},
        "temperature": temperature,
        "threshold": threshold,
        "preprocessing": {
            "task": task,
            "size": SIZE,
            "mean": 0.0,
            "std": 1.0,
            "input_scale": 65535,
            "prepare": {"task": task},
        },
    }
    fake = model or BrightnessModel()
    monkeypatch.setattr(
        "mammo.models.checkpoint.load_run", lambda run_dir, which="best", device="cpu": (fake, ckpt)
    )
    return run


def whole_rows() -> list[dict]:
    """8 test images of 4 women (+2 train rows): malignant ones brighter, BI-RADS partly informative."""
    rows = []
    spec = [  # patient, label, brightness, assessment
        ("P1", 1, 0.9, "5"),
        ("P1", 0, 0.2, "2"),
        ("P2", 1, 0.8, "3;4"),
        ("P2", 0, 0.3, "4"),
        ("P3", 1, 0.7, "4"),
        ("P3", 0, 0.4, "3"),
        ("P4", 0, 0.1, ""),
        ("P4", 0, 0.35, "2"),
    ]
    for i, (pid, label, b, a) in enumerate(spec):
        rows.append(
            {
                "sample_id": f"s{i}",
                "image_id": f"img{i}",
                "label": label,
                "patient_id": pid,
                "split": "test",
                "brightness": b,
                "assessment": a,
            }
        )
    rows += [
        {
            "sample_id": f"t{i}",
            "image_id": f"timg{i}",
            "label": i,
            "patient_id": f"T{i}",
            "split": "train",
            "brightness": 0.5,
            "assessment": "",
        }
        for i in range(2)
    ]
    return rows


def test_evaluate_whole_writes_metrics_predictions_and_plots(tmp_path, monkeypatch):
    prep = make_prep(tmp_path, whole_rows())
    run = make_run(tmp_path, monkeypatch, temperature=2.0, threshold=0.5)
    result = evaluate(run, data=prep, split="test", device="cpu")
    out = run / "eval" / "test"
    for name in ("metrics.json", "predictions.csv", "roc.png", "pr.png", "calibration.png", "confusion.png"):
        assert (out / name).stat().st_size > 0, name
    m = json.loads((out / "metrics.json").read_text())
    assert m["auc"] == 1.0 and m["auc_ci_low"] == 1.0 and m["auc_ci_high"] == 1.0
    assert (m["n"], m["n_pos"], m["n_women"]) == (8, 3, 4)
    assert m["majority_accuracy"] == pytest.approx(5 / 8)
    assert m["threshold"] == 0.5 and m["temperature"] == 2.0
    assert (m["model"], m["split"], m["task"]) == ("brightness", "test", "whole")
    # logits 8*(b-0.5): positive exactly for b > 0.5 -> all three malignant, no benign above the threshold
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (3, 0, 5, 0)
    assert m["accuracy"] == 1.0 and m["sensitivity"] == 1.0 and m["specificity"] == 1.0
    assert m["prediction_spread"]["near_constant"] is False
    # temperature 2 softens the probabilities: calibrated and uncalibrated numbers differ
    assert m["brier"] != pytest.approx(m["brier_uncalibrated"])
    # BI-RADS on the 7 rows that have one; "3;4" counts as 4
    known = [(1, 5), (0, 2), (1, 4), (0, 4), (1, 4), (0, 3), (0, 2)]
    want = roc_auc_score([k[0] for k in known], [k[1] for k in known])
    assert m["birads_auc"] == pytest.approx(want) and m["birads_n"] == 7

    pred = pd.read_csv(out / "predictions.csv", dtype={"patient_id": str})
    assert list(pred.columns[:8]) == PREDICTION_COLUMNS
    assert len(pred) == 8 and set(pred["sample_id"]) == {f"s{i}" for i in range(8)}
    brightness = np.array([0.9, 0.2, 0.8, 0.3, 0.7, 0.4, 0.1, 0.35])
    np.testing.assert_allclose(pred["logit"], 8 * (brightness - 0.5), atol=1e-4)
    np.testing.assert_allclose(pred["probability"], 1 / (1 + np.exp(-pred["logit"] / 2.0)))
    np.testing.assert_allclose(pred["probability_uncalibrated"], 1 / (1 + np.exp(-pred["logit"])))
    assert (pred["prediction"] == pred["label"]).all()
    assert "AUC 1.000" in result.summary() and str(out) in result.summary()


def test_evaluate_roi_adds_image_level_block(tmp_path, monkeypatch):
    # two findings on img0 (benign dim + malignant bright), one on img1, two benign on img2
    spec = [
        ("img0", "P1", 0, 0.3),
        ("img0", "P1", 1, 0.9),
        ("img1", "P2", 1, 0.6),
        ("img2", "P3", 0, 0.45),
        ("img2", "P3", 0, 0.2),
        ("img3", "P4", 0, 0.7),
    ]
    rows = [
        {"sample_id": f"f{i}", "image_id": img, "label": y, "patient_id": p, "split": "val", "brightness": b}
        for i, (img, p, y, b) in enumerate(spec)
    ]
    prep = make_prep(tmp_path, rows, task="roi")
    run = make_run(tmp_path, monkeypatch, task="roi", temperature=1.0)
    m = evaluate(run, data=prep, split="val", device="cpu").metrics
    assert m["n"] == 6 and "birads_auc" not in m
    il = m["image_level"]
    assert (il["n"], il["n_pos"], il["n_women"]) == (4, 2, 4)
    # image scores: img0 0.9 (1), img1 0.6 (1), img2 0.45 (0), img3 0.7 (0) -> 3 of 4 pairs right
    assert il["auc"] == pytest.approx(0.75)
    assert m["auc"] == pytest.approx(roc_auc_score([0, 1, 1, 0, 0, 0], [0.3, 0.9, 0.6, 0.45, 0.2, 0.7]))


def test_constant_model_is_flagged(tmp_path, monkeypatch):
    prep = make_prep(tmp_path, whole_rows())
    run = make_run(tmp_path, monkeypatch, model=BrightnessModel(scale=0.0))
    result = evaluate(run, data=prep, split="test", device="cpu")
    assert result.metrics["prediction_spread"]["near_constant"] is True
    assert result.metrics["auc"] == 0.5
    assert "near-constant" in result.summary()


def test_errors_name_the_problem(tmp_path, monkeypatch):
    prep = make_prep(tmp_path, whole_rows())
    with pytest.raises(DataError, match=r"no best.pt"):
        evaluate(tmp_path, data=prep, split="test", device="cpu")
    run = make_run(tmp_path, monkeypatch)
    with pytest.raises(DataError, match="split 'val' has no rows"):
        evaluate(run, data=prep, split="val", device="cpu")
    with pytest.raises(DataError, match="pass it with --data"):
        evaluate(run, split="test", device="cpu")


def test_cli_prints_summary_and_one_line_errors(tmp_path, monkeypatch, capsys):
    prep = make_prep(tmp_path, whole_rows())
    run = make_run(tmp_path, monkeypatch)
    assert main(["evaluate", str(run), "--data", str(prep), "--split", "test", "--device", "cpu"]) == 0
    assert "AUC 1.000" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "nowhere"), "--data", str(prep)]) == 1
    assert "no best.pt" in capsys.readouterr().err


def test_max_assessment_parses_cells():
    assert max_assessment("3;5;4") == 5 and max_assessment("4") == 4 and max_assessment(4.0) == 4
    assert np.isnan(max_assessment(""))


def test_real_checkpoint_round_trip(tmp_path):
    """A real best.pt (seed-basic at 16 px, random weights) read by load_run: logits match the model's own forward."""
    prep = make_prep(tmp_path, whole_rows())
    run = tmp_path / "run"
    model = write_seed_run(run, prep, SIZE, 0.25, 0.5, threshold=0.4, temperature=1.5)
    m = evaluate(run, split="test", device="cpu").metrics  # PREP found through the checkpoint
    pred = pd.read_csv(run / "eval" / "test" / "predictions.csv")
    imgs = np.stack(
        [cv2.imread(str(prep / f"images/{s}.png"), cv2.IMREAD_UNCHANGED) for s in pred["sample_id"]]
    )
    x = torch.from_numpy(((imgs.astype(np.float32) / 65535 - 0.25) / 0.5)[:, None])
    with torch.no_grad():
        want = model(x).reshape(-1).numpy()
    np.testing.assert_allclose(pred["logit"], want, rtol=1e-4, atol=1e-5)
    assert m["threshold"] == 0.4 and m["temperature"] == 1.5 and m["model"] == "seed-basic"
    assert (pred["prediction"] == (pred["probability"] >= 0.4)).all()


def test_train_then_evaluate_end_to_end(tmp_path):
    """`mammo train` (seed-basic at 16 px, one epoch) then evaluate with no --data: PREP found through the RUN."""
    from mammo.models.checkpoint import load_checkpoint
    from mammo.train.loop import train

    rng = np.random.default_rng(0)
    rows = [
        {
            "sample_id": f"s{i}",
            "image_id": f"i{i}",
            "label": i % 2,
            "patient_id": f"P{i // 2}",
            "split": ("train", "train", "val", "test")[i // 2 % 4],
            "brightness": float(np.clip(0.3 + 0.4 * (i % 2) + rng.normal(0, 0.1), 0, 1)),
        }
        for i in range(48)
    ]
    prep = make_prep(tmp_path, rows)
    run = tmp_path / "run"
    train(
        prep,
        run,
        overrides={
            "model": "seed-basic",
            "epochs": 1,
            "size": SIZE,
            "device": "cpu",
            "workers": 0,
            "batch_size": 8,
        },
    )
    m = evaluate(run, split="test", device="cpu").metrics
    ckpt = load_checkpoint(run / "best.pt")
    assert m["threshold"] == pytest.approx(ckpt["threshold"]) and m["temperature"] == pytest.approx(
        ckpt["temperature"]
    )
    assert (m["n"], m["n_pos"], m["n_women"], m["model"]) == (12, 6, 6, "seed-basic")
    assert m["data"] == str(prep.resolve())
    pred = pd.read_csv(run / "eval" / "test" / "predictions.csv")
    assert sorted(pred["sample_id"]) == sorted(r["sample_id"] for r in rows if r["split"] == "test")
    assert (pred["prediction"] == (pred["probability"] >= ckpt["threshold"]).astype(int)).all()


def test_one_class_split_gives_null_auc_and_skips_roc(tmp_path, monkeypatch):
    rows = [
        {
            "sample_id": f"s{i}",
            "image_id": f"i{i}",
            "label": 0,
            "patient_id": f"P{i}",
            "split": "test",
            "brightness": (0.3, 0.4, 0.6, 0.7)[i],
        }
        for i in range(4)
    ]
    prep = make_prep(tmp_path, rows)
    run = make_run(tmp_path, monkeypatch)
    result = evaluate(run, data=prep, split="test", device="cpu")
    m = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    assert m["auc"] is None and m["sensitivity"] is None and m["specificity"] == 0.5
    assert (
        not (run / "eval" / "test" / "roc.png").exists()
        and (run / "eval" / "test" / "confusion.png").exists()
    )
    assert "AUC n/a" in result.summary() and any("one class" in w for w in m["warnings"])


def test_other_data_does_not_replace_the_runs_own_evaluation(tmp_path, monkeypatch):
    prep = make_prep(tmp_path, whole_rows())
    run = make_run(tmp_path, monkeypatch)
    (run / "config.yaml").write_text(f"prep: {prep}\n")
    evaluate(run, split="test", device="cpu")
    own = (run / "eval" / "test" / "metrics.json").read_bytes()
    other_root = tmp_path / "other"
    other_root.mkdir()
    other = make_prep(other_root, [dict(r, brightness=1 - r["brightness"]) for r in whole_rows()])
    result = evaluate(run, data=other, split="test", device="cpu")
    assert result.out_dir.parent.parent == run / "eval" and result.out_dir.name == "test"
    assert result.out_dir.parent.name.startswith("prep-") and (result.out_dir / "metrics.json").is_file()
    assert (run / "eval" / "test" / "metrics.json").read_bytes() == own  # the run's own test metrics kept
    assert evaluate(run, data=prep, split="test", device="cpu").out_dir == run / "eval" / "test"


def test_evaluate_adds_breast_level_from_the_views_logits(tmp_path, monkeypatch):
    """With sides, metrics.json has a breast level: each breast the mean of its views' logits, never the other's."""
    rows = whole_rows()
    sides = ["LEFT", "RIGHT", "LEFT", "RIGHT", "LEFT", "LEFT", "RIGHT", "RIGHT"]
    views = ["CC", "CC", "CC", "MLO", "CC", "MLO", "CC", "MLO"]
    for r, side, view in zip(rows, sides, views, strict=False):
        r["side"], r["view"] = side, view
    for r in rows[8:]:
        r["side"], r["view"] = "LEFT", "CC"
    prep = make_prep(tmp_path, rows)
    run = make_run(tmp_path, monkeypatch, temperature=2.0)
    result = evaluate(run, data=prep, split="test", device="cpu")
    bl = result.metrics["breast_level"]
    # P1 L, P1 R, P2 L, P2 R, P3 L (two views: label max 1, logit mean 8*(0.55-0.5)), P4 R (two views)
    assert (bl["n"], bl["n_pos"], bl["n_women"], bl["n_two_views"]) == (6, 3, 4, 2)
    assert bl["auc"] == 1.0
    assert "breast level" in result.summary()
    assert json.loads((run / "eval" / "test" / "metrics.json").read_text())["breast_level"]["n"] == 6
