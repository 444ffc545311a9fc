"""Data loader throughput: prepared 16-bit PNGs delivered as augmented training batches, beside the model's appetite.

Writes 64 random-texture 16-bit PNGs at each size into a temporary PREP, then times full passes of the training
DataLoader (PrepDataset + the "mammo" MONAI augmentation, batch 16) with 0, 1 and 2 workers. The ratio to the
default model's training images/s (from bench/results/train.json, same size) says whether the GPU/CPU would wait.

    python bench/bench_loader.py [--sizes 224 512] [--out bench/results/loader.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from machine import Machine

RESULTS = Path(__file__).resolve().parent / "results"


def make_prep(root: Path, size: int, n: int = 64) -> None:
    """A minimal PREP folder: n smooth-noise 16-bit PNGs and their dataset.csv rows (half malignant)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        img = cv2.GaussianBlur(rng.random((size, size), dtype=np.float32), (0, 0), 4)
        img = (img - img.min()) / (np.ptp(img) + 1e-6)
        cv2.imwrite(str(root / "images" / f"{i}.png"), (img * 65535).astype(np.uint16))
        rows.append(
            {
                "sample_id": str(i),
                "image": f"images/{i}.png",
                "label": i % 2,
                "patient_id": str(i),
                "split": "train",
                "image_id": str(i),
            }
        )
    pd.DataFrame(rows).to_csv(root / "dataset.csv", index=False)


def loader_rate(prep: Path, size: int, workers: int, passes: int = 2) -> float:
    """Samples/s over `passes` full epochs of the training loader (after one warm-up epoch)."""
    import torch
    from torch.utils.data import DataLoader

    from mammo.datasets import PrepDataset
    from mammo.train.augment import Augmenter

    rows = pd.read_csv(prep / "dataset.csv", dtype={"patient_id": str})
    ds = PrepDataset(prep, rows, size=size, mean=0.5, std=0.5, augment=Augmenter("mammo", size), seed=0)
    dl = DataLoader(
        ds,
        batch_size=16,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
    for _ in dl:  # warm-up: worker start-up and file cache
        pass
    t0 = time.perf_counter()
    for _ in range(passes):
        for _ in dl:
            pass
    return passes * len(ds) / (time.perf_counter() - t0)


def main() -> dict:
    """Measure every (size, workers) pair and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 512])
    ap.add_argument("--out", type=Path, default=RESULTS / "loader.json")
    a = ap.parse_args()
    machine = Machine.start()
    import torch

    torch.set_num_threads(1)
    train = json.loads((RESULTS / "train.json").read_text()) if (RESULTS / "train.json").is_file() else {}
    out: dict = {
        "command": "python bench/bench_loader.py",
        "batch_size": 16,
        "augment": "mammo",
        "sizes": {},
    }
    for size in a.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            make_prep(Path(tmp), size)
            rates = {str(w): round(loader_rate(Path(tmp), size, w), 1) for w in (0, 1, 2)}
        model_rate = _model_rate(train, "efficientnet-lite0", size)
        out["sizes"][str(size)] = {
            "samples_per_s_by_workers": rates,
            "default_model_train_images_per_s": model_rate,
            "loader_over_model_1_worker": round(rates["1"] / model_rate, 1) if model_rate else None,
        }
        print(f"{size}px: loader {rates} samples/s; efficientnet-lite0 trains at {model_rate} images/s")
    out["machine"] = machine.finish()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    return out


def _model_rate(train: dict, model: str, size: int) -> float | None:
    """The default model's CPU training images/s at this size from train.json, if measured."""
    for row in train.get("results", []):
        if row.get("model") == model and row.get("size") == size and row.get("device", "cpu") == "cpu":
            return row.get("images_per_s")
    return None


if __name__ == "__main__":
    main()
