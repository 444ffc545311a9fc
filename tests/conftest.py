"""Shared test fixtures: the ../shared data path, a tiny PREP folder made by code, a tiny stand-in model."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from mammo.io.images import write_png16

# Real data beside the repository (never committed); tests that read it skip cleanly without it.
SHARED = Path(__file__).resolve().parents[2] / "shared"
CBIS_CSV_DIR = SHARED / "data" / "cbis-ddsm-csv"

TINY_INFO = types.SimpleNamespace(
    input_size=32,
    mean=0.4,
    std=0.2,
    pretrained=False,
    description="tiny stand-in CNN",
    gradcam_layer="conv",
    train_defaults={"lr": 0.01, "epochs": 3, "batch_size": 8, "weight_decay": 0.0, "augment": "mammo"},
)


class TinyNet(nn.Module):
    """(B, 1, H, W) -> (B, 1) logits; `nan_after` makes training forwards return NaN after that many calls."""

    def __init__(self, input_size: int | None = None, nan_after: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(6, 1)
        self.nan_after = nan_after
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x))).amax(dim=(2, 3))
        out = self.fc(self.drop(h))
        if self.training:
            self.calls += 1
            if self.nan_after is not None and self.calls > self.nan_after:
                out = out * float("nan")
        return out


@pytest.fixture
def tiny_registry(monkeypatch):
    """Serve a 'tiny' model from mammo.models.registry (real registry for other names when it exists)."""
    try:
        import mammo.models.registry as reg
    except ImportError:
        reg = types.ModuleType("mammo.models.registry")
        monkeypatch.setitem(sys.modules, "mammo.models.registry", reg)
    real_create, real_info = getattr(reg, "create_model", None), getattr(reg, "get_model_info", None)
    calls: list[dict] = []

    def create_model(name, pretrained=True, weights=None, **kwargs):
        calls.append({"name": name, "pretrained": pretrained, "weights": weights, **kwargs})
        if name != "tiny":
            return real_create(name, pretrained=pretrained, weights=weights, **kwargs)
        model = TinyNet(**kwargs)
        if weights is not None:
            model.load_state_dict(torch.load(weights, weights_only=True))
        return model

    def get_model_info(name):
        return TINY_INFO if name == "tiny" else real_info(name)

    real_check = getattr(reg, "check_model_args", None)

    def check_model_args(name, args, source="config 'model_args'"):
        if name != "tiny":
            real_check(name, args, source)

    monkeypatch.setattr(reg, "create_model", create_model, raising=False)
    monkeypatch.setattr(reg, "get_model_info", get_model_info, raising=False)
    monkeypatch.setattr(reg, "check_model_args", check_model_args, raising=False)
    return calls


def make_prep(
    root: Path, n_train: int = 32, n_val: int = 16, n_test: int = 8, size: int = 32, seed: int = 0
) -> Path:
    """A PREP folder: 16-bit PNGs of noise with a bright disc (malignant) or a dim square (benign)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        for i in range(n):
            label = i % 2
            img = rng.normal(0.3, 0.05, (size, size))
            c = rng.integers(size // 4, 3 * size // 4, 2)
            r = size // 6
            if label:
                cv2.circle(img, (int(c[0]), int(c[1])), r, 0.9, -1)
            else:
                cv2.rectangle(img, (int(c[0] - r), int(c[1] - r)), (int(c[0] + r), int(c[1] + r)), 0.45, -1)
            sid = f"{split}{i:03d}"
            write_png16((np.clip(img, 0, 1) * 65535).astype(np.uint16), root / "images" / f"{sid}.png")
            rows.append(
                {
                    "sample_id": sid,
                    "image": f"images/{sid}.png",
                    "label": label,
                    "patient_id": f"P{sid}",
                    "split": split,
                    "image_id": sid,
                }
            )
    pd.DataFrame(rows).to_csv(root / "dataset.csv", index=False)
    (root / "prepare.json").write_text(json.dumps({"task": "roi", "size": size, "seed": seed}))
    return root


# What `mammo train` writes into RUN/ (tests compare a run folder's listing with it).
RUN_FILES = ["best.pt", "config.yaml", "curves.png", "last.pt", "metrics.csv", "model.onnx"]


def write_seed_run(
    run: Path,
    prep: Path | None,
    size: int,
    mean: float,
    std: float,
    seed: int = 0,
    task: str = "whole",
    prepare: dict | None = None,
    **fields,
) -> nn.Module:
    """RUN/best.pt of a seed-basic model, seeded random weights, made on PREP (`prepare`, `fields`: more keys)."""
    from mammo.models.checkpoint import make_checkpoint, save_checkpoint
    from mammo.models.registry import create_model

    torch.manual_seed(seed)
    model = create_model("seed-basic", pretrained=False, input_size=size).eval()
    pre = {
        "task": task,
        "size": size,
        "mean": mean,
        "std": std,
        "input_scale": 65535,
        "prepare": {"task": task, **({} if prep is None else {"out": str(prep)}), **(prepare or {})},
    }
    args = {"epoch": 1, "best_val_auc": 0.5, "config": {}, **fields}
    save_checkpoint(
        run / "best.pt", make_checkpoint("seed-basic", {"input_size": size}, model.state_dict(), pre, **args)
    )
    return model
