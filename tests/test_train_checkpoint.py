"""Checkpoints: contract keys, weights_only loading, load_run round trip, clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_prep

from mammo.datasets import PrepDataset
from mammo.errors import DataError
from mammo.models.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, load_run
from mammo.predict.infer import logits_from_loader
from mammo.prep.dataset import read_dataset_csv, split_rows
from mammo.stats.calibration import apply_temperature, fit_temperature
from mammo.stats.threshold import choose_threshold
from mammo.train.loop import train


@pytest.fixture
def trained_run(tmp_path, tiny_registry):
    prep = make_prep(tmp_path / "prep")
    run = tmp_path / "run"
    train(prep, run, overrides={"model": "tiny", "epochs": 2, "batch_size": 8, "workers": 0, "device": "cpu"})
    return prep, run


def _val_logits(model, prep, ckpt):
    rows = split_rows(read_dataset_csv(prep), "val", prep)
    pre = ckpt["preprocessing"]
    ds = PrepDataset(prep, rows, pre["size"], pre["mean"], pre["std"])
    loader = torch.utils.data.DataLoader(ds, batch_size=5)
    logits, labels = logits_from_loader(model, loader, torch.device("cpu"))
    return logits, labels


def test_checkpoint_contract_and_weights_only(trained_run):
    _prep, run = trained_run
    raw = torch.load(run / "best.pt", weights_only=True)
    assert {
        "format",
        "model",
        "state_dict",
        "preprocessing",
        "class_names",
        "threshold",
        "temperature",
        "epoch",
        "best_val_auc",
        "config",
    } <= set(raw)
    assert raw["format"] == CHECKPOINT_FORMAT and raw["class_names"] == ["benign", "malignant"]
    assert raw["model"] == {"name": "tiny", "args": {"input_size": 32}}
    assert raw["preprocessing"] == {
        "task": "roi",
        "size": 32,
        "mean": 0.4,
        "std": 0.2,
        "input_scale": 65535,
        "prepare": {"task": "roi", "size": 32, "seed": 0},
    }
    assert raw["config"]["model"] == "tiny" and raw["config"]["epochs"] == 2
    assert raw["trained_on"] == {"device": "cpu", "amp": False}  # what the report shows beside config's amp
    assert "optimizer" not in raw and "optimizer" in torch.load(run / "last.pt", weights_only=True)


def test_load_run_round_trip(trained_run):
    prep, run = trained_run
    model, ckpt = load_run(run, which="best")
    assert not model.training
    logits, labels = _val_logits(model, prep, ckpt)
    again, _ = _val_logits(load_run(run)[0], prep, ckpt)
    np.testing.assert_array_equal(logits, again)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(labels, logits) == pytest.approx(ckpt["best_val_auc"], abs=1e-12)
    temperature = fit_temperature(logits, labels)
    assert ckpt["temperature"] == pytest.approx(temperature, rel=1e-6)
    assert ckpt["threshold"] == pytest.approx(
        choose_threshold(apply_temperature(logits, temperature), labels)
    )


def test_bad_checkpoint_files(tmp_path):
    with pytest.raises(DataError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "best.pt")
    (tmp_path / "best.pt").write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match="not a readable checkpoint"):
        load_run(tmp_path)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="not a mammo checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
