"""The default model (efficientnet-lite0, ImageNet weights) learns a synthetic lesion task on CPU."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mammo.io.images import write_png16
from mammo.train.loop import train


def lesion_image(rng: np.random.Generator, size: int, malignant: bool) -> np.ndarray:
    """Tissue-like noise with a lesion: round and smooth (benign) or irregular, spiculated (malignant)."""
    tissue = cv2.GaussianBlur(rng.normal(0.0, 1.0, (size, size)), (0, 0), size / 24)
    img = 0.35 + 0.08 * tissue / tissue.std()
    mask = np.zeros((size, size), np.float64)
    c = rng.uniform(0.35, 0.65, 2) * size
    r = rng.uniform(0.10, 0.16) * size
    if malignant:
        angles = np.sort(rng.uniform(0, 2 * np.pi, 14))
        radii = r * rng.uniform(0.6, 1.2, angles.size)
        pts = np.stack([c[0] + radii * np.cos(angles), c[1] + radii * np.sin(angles)], 1).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1.0)
        for a in rng.uniform(0, 2 * np.pi, 8):
            end = c + rng.uniform(1.6, 2.4) * r * np.array([np.cos(a), np.sin(a)])
            cv2.line(mask, tuple(int(v) for v in c), tuple(int(v) for v in end), 1.0, 1)
    else:
        axes = (int(r), int(r * rng.uniform(0.7, 1.0)))
        cv2.ellipse(mask, tuple(int(v) for v in c), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 1.5)
    img = img + 0.25 * mask
    return (np.clip(img, 0, 1) * 65535).astype(np.uint16)


def make_lesion_prep(root: Path, counts: dict[str, int], size: int, seed: int = 0) -> Path:
    """A PREP folder (16-bit PNGs, dataset.csv, prepare.json) of the lesion task, balanced classes."""
    rng = np.random.default_rng(seed)
    rows = []
    for split, n in counts.items():
        for i in range(n):
            sid = f"{split}{i:04d}"
            write_png16(lesion_image(rng, size, bool(i % 2)), root / "images" / f"{sid}.png")
            rows.append(
                {
                    "sample_id": sid,
                    "image": f"images/{sid}.png",
                    "label": i % 2,
                    "patient_id": f"W{sid}",
                    "split": split,
                    "image_id": sid,
                }
            )
    pd.DataFrame(rows).to_csv(root / "dataset.csv", index=False)
    (root / "prepare.json").write_text(json.dumps({"task": "roi", "size": size, "seed": seed}))
    return root


@pytest.mark.slow
def test_default_model_learns_synthetic_lesions(tmp_path):
    prep = make_lesion_prep(tmp_path / "prep", {"train": 160, "val": 60}, size=128)
    t0 = time.perf_counter()
    result = train(
        prep,
        tmp_path / "run",
        overrides={
            "epochs": 3,
            "batch_size": 16,
            "lr": 1e-3,
            "size": 128,
            "workers": 0,
            "device": "cpu",
            "seed": 0,
        },
    )
    print(
        f"efficientnet-lite0, 160 train / 60 val at 128 px, 3 epochs: {time.perf_counter() - t0:.1f} s, "
        f"best val AUC {result.best_val_auc:.3f}"
    )
    assert result.model == "efficientnet-lite0"
    assert result.best_val_auc > 0.9
