"""DDP: `torchrun --nproc-per-node 2 -m mammo train` on CPU (gloo): one RUN, metrics over every val row."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import RUN_FILES, make_prep
from sklearn.metrics import roc_auc_score

from mammo.datasets import PrepDataset
from mammo.models.checkpoint import load_run
from mammo.predict.infer import logits_from_loader
from mammo.prep.dataset import read_dataset_csv, split_rows


@pytest.mark.slow
def test_two_process_gloo_run(tmp_path):
    prep = make_prep(tmp_path / "prep", n_train=32, n_val=15, n_test=0)  # 15 val rows: the sampler pads one
    run = tmp_path / "run"
    (tmp_path / "cfg.yaml").write_text(
        "balance: sampler\n"
    )  # under DDP a weighted sampler becomes pos_weight
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "mammo",
        "train",
        str(prep),
        "--out",
        str(run),
        "--model",
        "seed-basic",
        "--size",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--lr",
        "0.5",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--config",
        str(tmp_path / "cfg.yaml"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("trained seed-basic") == 1  # only rank 0 reports
    assert sorted(p.name for p in run.iterdir()) == RUN_FILES
    assert yaml.safe_load((run / "config.yaml").read_text())["balance"] == "loss"
    m = pd.read_csv(run / "metrics.csv")
    assert list(m["epoch"]) == [1, 2]
    assert np.isfinite(m[["train_loss", "val_loss", "val_auc"]].to_numpy()).all()

    model, ckpt = load_run(run)
    rows = split_rows(read_dataset_csv(prep), "val", prep)
    ds = PrepDataset(prep, rows, 32, ckpt["preprocessing"]["mean"], ckpt["preprocessing"]["std"])
    logits, labels = logits_from_loader(
        model, torch.utils.data.DataLoader(ds, batch_size=4), torch.device("cpu")
    )
    assert len(logits) == 15
    # the ranks' gathered, de-duplicated predictions are exactly the 15 val rows: same AUC and same mean loss
    best = m[m["epoch"] == ckpt["epoch"]].iloc[0]
    assert roc_auc_score(labels, logits) == pytest.approx(best["val_auc"], abs=1e-9)
    bce = np.mean(np.logaddexp(0.0, logits) - labels * logits)
    assert bce == pytest.approx(best["val_loss"], rel=1e-5)
