"""Benchmark: CPU time per unit of work with and without a competing load, before and after mammo's thread settings.

The demo's CPU time tripled on a loaded machine. The cause measured here: torch's OpenMP threads spin while they
wait at the end of each parallel region, and when another process holds one of the cores, the waiting thread spins
for the whole time slice it is denied. `import mammo` now sets OMP_WAIT_POLICY=PASSIVE (waiting threads sleep)
unless the user set it. Each unit runs in a fresh process (the policy is read once, when torch loads):
  before   torch imported before mammo: OpenMP's default wait policy (spinning)
  after    mammo imported first: its default, PASSIVE
Units (--units):
  train_step     the demo's training step: efficientnet-lite0 at 160 px, batch 16, forward + backward + AdamW,
                 torch's intra-op threads on every usable core
  onnx_forward   predict's ONNX Runtime forward at 512 px, batch 1 (before: ORT's spinning thread pool; after:
                 `mammo.predict.onnx.session_options`, spinning off)
Conditions: `as_found` (the machine as it is, its load average recorded) and `loaded` (plus one busy process per
usable core for the duration). Configurations run interleaved, best of --repeat kept, so both see the same machine.
Writes bench/results/threads.json: CPU and wall seconds per unit, and before / after ratios per condition.

Run: .venv/bin/python bench/bench_threads.py   (2-5 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

from machine import Machine, usable_cpus

ROOT = Path(__file__).resolve().parents[1]
UNITS = ("train_step", "onnx_forward")
CONFIGS = ("before", "after")


def _spin(stop: multiprocessing.Event) -> None:
    """A competing process: pure-Python arithmetic until told to stop."""
    x = 0
    while not stop.is_set():
        for i in range(100_000):
            x += i


def child(unit: str, config: str, steps: int) -> dict:
    """In a fresh process: import in the order `config` says, warm up, time `steps` units (CPU and wall)."""
    if config == "after":
        importlib.import_module("mammo")  # sets OMP_WAIT_POLICY before torch loads OpenMP
    policy = os.environ.get("OMP_WAIT_POLICY")  # what OpenMP reads as torch loads
    import torch

    from mammo.models.registry import create_model

    torch.manual_seed(0)
    if unit == "train_step":
        model = create_model("efficientnet-lite0", pretrained=False, input_size=160).train()
        opt = torch.optim.AdamW(model.parameters(), 1e-3)
        x, y = torch.randn(16, 1, 160, 160), torch.randint(0, 2, (16, 1)).float()

        def work() -> None:
            opt.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
            opt.step()
    else:
        import io

        import numpy as np
        import onnxruntime as ort

        from mammo.predict.onnx import session_options

        model = create_model("efficientnet-lite0", pretrained=False, input_size=512).eval()
        buffer = io.BytesIO()
        torch.onnx.export(model, (torch.zeros(1, 1, 512, 512),), buffer, dynamo=False, input_names=["x"])
        if config == "before":
            options = ort.SessionOptions()
            options.intra_op_num_threads = usable_cpus()
        else:
            options = session_options()
        session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
        batch = np.random.default_rng(0).normal(size=(1, 1, 512, 512)).astype(np.float32)

        def work() -> None:
            session.run(None, {"x": batch})

    work()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        work()
    return {
        "cpu_s": (time.process_time() - cpu) / steps,
        "wall_s": (time.perf_counter() - wall) / steps,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": policy,
    }


def run_child(unit: str, config: str, steps: int) -> dict:
    """`child` in a fresh interpreter with OMP_WAIT_POLICY unset, so the import order alone decides."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    command = [sys.executable, __file__, "--child", unit, config, str(steps)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(units: list[str], steps: dict[str, int], repeat: int) -> dict:
    """Best-of-`repeat` CPU and wall per unit for each unit and configuration, configurations interleaved."""
    best: dict = {u: dict.fromkeys(CONFIGS) for u in units}
    for _ in range(repeat):
        for unit in units:
            for config in CONFIGS:
                r = run_child(unit, config, steps[unit])
                kept = best[unit][config]
                if kept is None or r["cpu_s"] < kept["cpu_s"]:
                    best[unit][config] = r
    for unit in units:
        b, a = best[unit]["before"], best[unit]["after"]
        best[unit]["cpu_before_over_after"] = round(b["cpu_s"] / a["cpu_s"], 2)
        best[unit]["wall_before_over_after"] = round(b["wall_s"] / a["wall_s"], 2)
    return best


def main() -> None:
    """Measure on the machine as found, then under a competing load, and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", nargs="+", default=list(UNITS), choices=UNITS)
    ap.add_argument(
        "--steps", type=int, default=4, help="timed training steps per process (forwards: 5x this)"
    )
    ap.add_argument("--repeat", type=int, default=2, help="interleaved repeats; the least CPU is kept")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "threads.json")
    a = ap.parse_args()
    machine = Machine.start()
    steps = {"train_step": a.steps, "onnx_forward": 5 * a.steps}
    result: dict = {"units": a.units, "steps": steps, "repeat": a.repeat, "conditions": {}}
    result["conditions"]["as_found"] = measure(a.units, steps, a.repeat)
    print("as_found", json.dumps(result["conditions"]["as_found"]), flush=True)
    stop = multiprocessing.Event()
    spinners = [multiprocessing.Process(target=_spin, args=(stop,)) for _ in range(usable_cpus())]
    for p in spinners:
        p.start()
    try:
        result["conditions"]["loaded"] = measure(a.units, steps, a.repeat)
    finally:
        stop.set()
        for p in spinners:
            p.join()
    print("loaded", json.dumps(result["conditions"]["loaded"]), flush=True)
    result["competing_processes"] = len(spinners)
    result["machine"] = machine.finish()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
    else:
        main()
