"""One trained run, one way in: evaluate, predict, explain (maps and checks), the report's gallery and cv's
rescoring feed a run's model the same inputs, so they give the same logits for the same images, for a square
run and for a rectangular (`width`) one; and one module alone reads the checkpoint's preprocessing entries.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_prep

from mammo.predict.run import InputSpec, Run

SRC = Path(__file__).resolve().parents[1] / "src" / "mammo"
SIZE = 40
TOL = {"rtol": 1e-5, "atol": 1e-5}


def _add_masks(prep: Path) -> None:
    """Give every test row a lesion mask (the centre of its image) and the crop window of an roi sample."""
    df = pd.read_csv(prep / "dataset.csv", dtype={"sample_id": str, "patient_id": str, "image_id": str})
    mask = np.zeros((32, 32), np.uint8)
    mask[10:22, 10:22] = 255
    cv2.imwrite(str(prep / "mask.png"), mask)
    df["mask_path"] = [str(prep / "mask.png") if s == "test" else "" for s in df["split"]]
    df[["crop_x0", "crop_y0", "crop_x1", "crop_y1"]] = [0, 0, 32, 32]
    df["flipped"] = 0
    df.to_csv(prep / "dataset.csv", index=False)


def _train(tmp_path: Path, width: int | None) -> tuple[Path, Path]:
    """A tiny roi run on make_prep's PREP (input SIZE, or SIZE x width), its threshold set to 0 afterwards."""
    from mammo.models.checkpoint import load_checkpoint, save_checkpoint
    from mammo.train.loop import train

    prep = make_prep(tmp_path / "prep", n_train=16, n_val=8, n_test=8)
    _add_masks(prep)
    flags = {"model": "tiny", "epochs": 1, "batch_size": 8, "workers": 0, "device": "cpu", "size": SIZE}
    if width is not None:
        flags["width"] = width
    run = tmp_path / "run"
    train(prep, run, overrides=flags)
    ckpt = load_checkpoint(run / "best.pt")
    ckpt["threshold"] = 0.0  # every malignant sample counts as a hit, so the checks and gallery have samples
    save_checkpoint(run / "best.pt", ckpt)
    return prep, run


class Recorder:
    """Stands in for mammo.explain.maps.heatmaps: keeps every (model, input batch), returns zero maps."""

    def __init__(self) -> None:
        self.calls: list[tuple[torch.nn.Module, torch.Tensor]] = []

    def __call__(self, model, x, layer, method="gradcam"):
        self.calls.append((model, x.detach().clone()))
        return np.zeros((x.shape[0], *x.shape[-2:]), np.float32)


@pytest.mark.parametrize("width", [None, 24])
def test_every_consumer_feeds_the_run_the_same_inputs(tmp_path, tiny_registry, monkeypatch, width):
    import mammo.explain.checks as checks
    import mammo.explain.maps as maps
    import mammo.explain.run as explain_run
    from mammo.datasets import PrepDataset
    from mammo.evaluate.cv import run_scores
    from mammo.evaluate.run import evaluate
    from mammo.predict.files import predict
    from mammo.prep.dataset import read_split
    from mammo.report import collect
    from mammo.report.build import build_report

    prep, run_dir = _train(tmp_path, width)
    run = Run.load(run_dir, device="cpu")
    assert run.spec.shape == (SIZE, width or SIZE) and run.task == "roi"  # task from the checkpoint's prepare

    # evaluate: predictions.csv's logits are the Run's logits of the PREP rows
    evaluate(run_dir, split="test", device="cpu")
    pred = pd.read_csv(run_dir / "eval" / "test" / "predictions.csv", dtype={"sample_id": str})
    rows = read_split(prep, "test")
    want = pred["logit"].to_numpy(float)
    np.testing.assert_allclose(run.score_rows(rows), want, **TOL)
    # what the old gallery and checks did (square inputs of the run's size) gives other logits for a rectangle
    square = PrepDataset(prep, rows, SIZE, run.spec.mean, run.spec.std)
    square_logits = run.logits(torch.stack([square[i][0] for i in range(len(square))]))
    assert np.allclose(square_logits, want, **TOL) == (width is None)

    # cv's rescoring: calibrated logits of the same rows
    np.testing.assert_allclose(run_scores(run_dir, prep, rows) * run.temperature, want, **TOL)

    # predict on the PREP PNGs (lesion crops already: an roi run scores each whole)
    images = [str(prep / p) for p in rows["image"]]
    got = predict(run_dir, images, crops=True, workers=0, device="cpu").rows
    np.testing.assert_allclose(got["logit"].to_numpy(float), want, **TOL)

    # explain: the maps are computed on the input that gives predict's logit
    explained: list[torch.Tensor] = []
    real = explain_run.explain_batch

    def record(model, x, *args, **kwargs):
        explained.append(x.detach().clone())
        return real(model, x, *args, **kwargs)

    monkeypatch.setattr(explain_run, "explain_batch", record)
    result = explain_run.explain(
        run_dir, images[:3], out=tmp_path / "explain", features=False, crops=True, workers=0
    )
    xs = torch.cat(explained)
    np.testing.assert_allclose(run.logits(xs), want[:3], **TOL)
    np.testing.assert_allclose([r["probability"] for r in result.rows], run.probabilities(want[:3]), **TOL)

    # explain's checks: scored on the same logits, maps on the same inputs, masks on the input's grid
    recorder = Recorder()
    monkeypatch.setattr(checks, "heatmaps", recorder)
    found = checks.cached_checks(run_dir, "test", "cpu", run=run)
    malignant = rows["label"].to_numpy() == 1
    assert found["n"] == malignant.sum()
    trained = torch.cat([x for model, x in recorder.calls if model is run.model])
    np.testing.assert_allclose(run.logits(trained), want[malignant], **TOL)

    # the report's gallery (checks now cached): heatmaps of the picks on the inputs evaluate scored
    recorder = Recorder()
    monkeypatch.setattr(maps, "heatmaps", recorder)
    build_report(run_dir, split="test", device="cpu")
    picks = collect.gallery_picks(pred, run.threshold, 4)
    expected = np.concatenate([p["logit"].to_numpy(float) for p in picks.values() if not p.empty])
    gallery = torch.cat([x for _, x in recorder.calls])
    np.testing.assert_allclose(run.logits(gallery), expected, **TOL)


def test_input_spec_defaults_and_task_fallback():
    spec = InputSpec.from_checkpoint({"preprocessing": {"task": "", "size": 32, "prepare": {"task": "roi"}}})
    assert (spec.task, spec.size, spec.width, spec.mean, spec.std) == ("roi", 32, None, 0.0, 1.0)
    assert (spec.prep_size, spec.context, spec.shape) == (32, 0.5, (32, 32))
    spec = InputSpec.from_checkpoint(
        {"preprocessing": {"size": 48, "width": 24, "mean": [0.2, 0.4], "std": 0.5, "prepare": {"size": 64}}}
    )
    assert (spec.task, spec.shape, spec.mean, spec.prep_size) == ("whole", (48, 24), pytest.approx(0.3), 64)


def _reads_preprocessing(tree: ast.AST) -> list[int]:
    """Lines where the string "preprocessing" is a subscript or a .get() key (a read of the checkpoint entry)."""
    lines = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Subscript):
            key = node.slice
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            key = node.args[0] if node.args else None
        if isinstance(key, ast.Constant) and key.value == "preprocessing":
            lines.append(node.lineno)
    return lines


def test_one_module_alone_reads_the_checkpoints_preprocessing():
    readers = {
        str(path.relative_to(SRC)): lines
        for path in sorted(SRC.rglob("*.py"))
        if (lines := _reads_preprocessing(ast.parse(path.read_text())))
    }
    assert set(readers) == {"predict/run.py"}, readers
    assert len(readers["predict/run.py"]) == 1  # InputSpec.from_checkpoint
