"""Training loop on CPU with a tiny stand-in model: RUN files, determinism, resume, NaN stop, --weights."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import RUN_FILES, TinyNet, make_prep

import mammo.train.loop as loop
from mammo.errors import UserError
from mammo.models.checkpoint import load_checkpoint
from mammo.predict.backend import load_scorer
from mammo.predict.files import predict
from mammo.predict.onnx import OnnxModel, file_sha256
from mammo.train import optim

FLAGS = {"model": "tiny", "epochs": 3, "batch_size": 8, "workers": 0, "device": "cpu", "seed": 5}


def _metrics(run):
    return pd.read_csv(run / "metrics.csv").drop(columns="seconds")


def test_run_folder_contents(tmp_path, tiny_registry):
    prep = make_prep(tmp_path / "prep")
    run = tmp_path / "run"
    result = loop.train(prep, run, overrides=FLAGS)
    assert sorted(p.name for p in run.iterdir()) == RUN_FILES
    m = pd.read_csv(run / "metrics.csv")
    assert list(m.columns) == loop.METRIC_COLUMNS and list(m["epoch"]) == [1, 2, 3]
    assert m[["train_loss", "val_loss", "val_auc", "lr"]].notna().all().all()
    assert result.best_val_auc == pytest.approx(m["val_auc"].max())
    assert result.best_epoch == int(m.loc[m["val_auc"].idxmax(), "epoch"])
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"] == "tiny" and config["lr"] == 0.01 and config["prep"] == str(prep.resolve())
    last = load_checkpoint(run / "last.pt")
    assert last["epoch"] == 3 and set(last) >= {"optimizer", "scheduler", "train_state"}
    assert 0.0 <= last["threshold"] <= 1.0 and last["temperature"] > 0
    assert "best val AUC" in result.summary() and str(run) in result.summary()
    with pytest.raises(UserError, match="already holds a run"):
        loop.train(prep, run, overrides=FLAGS)
    with pytest.raises(UserError, match="nothing to resume"):
        loop.train(prep, tmp_path / "empty", overrides=FLAGS, resume=True)


def test_a_fresh_run_has_the_model_onnx_that_predict_scores_with(tmp_path, tiny_registry):
    prep = make_prep(tmp_path / "prep")
    run = tmp_path / "run"
    loop.train(prep, run, overrides={**FLAGS, "epochs": 1})
    scorer = load_scorer(run)
    assert isinstance(scorer, OnnxModel) and scorer.source == str(run / "model.onnx")
    assert scorer.metadata["mammo.checkpoint_sha256"] == file_sha256(run / "best.pt")
    assert scorer.temperature == load_checkpoint(run / "best.pt")["temperature"]
    onnx = predict(run, [prep / "images"], crops=True, workers=0)
    torch_ = predict(run, [prep / "images"], crops=True, workers=0, backend="torch")
    got, want = (r.rows["probability_malignant"].to_numpy(dtype=float) for r in (onnx, torch_))
    assert len(got) == 56 and got.std() > 0
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_same_seed_same_metrics(tmp_path, tiny_registry):
    prep = make_prep(tmp_path / "prep")
    flags = {**FLAGS, "epochs": 2}
    loop.train(prep, tmp_path / "a", overrides=flags)
    loop.train(prep, tmp_path / "b", overrides={**flags, "workers": 2})  # augmentation seeded per sample
    loop.train(prep, tmp_path / "c", overrides={**flags, "seed": 6})
    pd.testing.assert_frame_equal(_metrics(tmp_path / "a"), _metrics(tmp_path / "b"))
    assert not _metrics(tmp_path / "a")["train_loss"].equals(_metrics(tmp_path / "c")["train_loss"])


@pytest.mark.parametrize("balance", ["sampler", "loss"])
def test_resume_equals_uninterrupted(tmp_path, tiny_registry, monkeypatch, balance):
    prep = make_prep(tmp_path / "prep")
    flags = {**FLAGS, "patience": None}
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"balance: {balance}\n")
    loop.train(prep, tmp_path / "straight", config_file=cfg, overrides=flags)

    real_save = loop.save_checkpoint

    def save_then_die(path, ckpt):
        real_save(path, ckpt)
        if path.name == "last.pt" and ckpt["epoch"] == 2:
            raise KeyboardInterrupt  # killed right after epoch 2 was saved

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        loop.train(prep, tmp_path / "resumed", config_file=cfg, overrides=flags)
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    assert len(pd.read_csv(tmp_path / "resumed" / "metrics.csv")) == 2
    loop.train(prep, tmp_path / "resumed", overrides={"workers": 0, "device": "cpu"}, resume=True)

    pd.testing.assert_frame_equal(_metrics(tmp_path / "straight"), _metrics(tmp_path / "resumed"))
    for name in ("best.pt", "last.pt"):
        a, b = load_checkpoint(tmp_path / "straight" / name), load_checkpoint(tmp_path / "resumed" / name)
        assert a["epoch"] == b["epoch"] and a["temperature"] == b["temperature"]
        assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_early_stopping_on_val_auc(tmp_path, tiny_registry, monkeypatch):
    prep = make_prep(tmp_path / "prep")
    aucs = iter([0.6, 0.8, 0.7, 0.75, 0.9])
    monkeypatch.setattr(loop, "auc", lambda labels, scores: next(aucs))
    result = loop.train(prep, tmp_path / "run", overrides={**FLAGS, "epochs": 5, "patience": 2})
    assert result.stopped_early and result.epochs_run == 4 and result.best_epoch == 2
    assert list(pd.read_csv(tmp_path / "run" / "metrics.csv")["val_auc"]) == [0.6, 0.8, 0.7, 0.75]
    assert load_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == 2
    again = loop.train(prep, tmp_path / "run", overrides={"workers": 0}, resume=True)
    assert again.stopped_early and again.epochs_run == 4


def test_nan_loss_stops_and_keeps_last_good(tmp_path, tiny_registry):
    prep = make_prep(tmp_path / "prep")
    run = tmp_path / "run"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model_args: {nan_after: 6}\n")  # 4 steps per epoch: NaN at epoch 2, step 3
    with pytest.raises(UserError, match=r"not finite at epoch 2, step 3.*last\.pt.*lower --lr"):
        loop.train(prep, run, config_file=cfg, overrides=FLAGS)
    assert len(pd.read_csv(run / "metrics.csv")) == 1
    for name in ("best.pt", "last.pt"):
        ckpt = load_checkpoint(run / name)
        assert ckpt["epoch"] == 1
        assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_weights_flag_reaches_create_model(tmp_path, tiny_registry):
    prep = make_prep(tmp_path / "prep", n_train=8, n_val=4, n_test=0)
    weights = tmp_path / "w.pt"
    torch.save(TinyNet().state_dict(), weights)
    loop.train(prep, tmp_path / "run", overrides={**FLAGS, "epochs": 1, "weights": weights})
    assert tiny_registry[0]["weights"] == str(weights) and tiny_registry[0]["input_size"] == 32


def test_lr_schedule_warmup_then_cosine():
    f = [optim.lr_factor(s, warmup_steps=4, total_steps=20, kind="cosine") for s in range(20)]
    np.testing.assert_allclose(f[:4], [0.25, 0.5, 0.75, 1.0])
    assert f[4] == 1.0 and all(a > b for a, b in itertools.pairwise(f[4:])) and f[-1] < 0.01
    assert optim.lr_factor(15, 4, 20, "constant") == 1.0
    assert math.isclose(optim.lr_factor(12, 4, 20, "cosine"), 0.5)
