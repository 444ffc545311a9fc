"""Training throughput and peak memory of every registered model: a bare PyTorch loop on random tensors.

Each (model, size) runs in its own subprocess (forward + BCEWithLogits backward + AdamW step, batch 8 on
CPU) so that its peak RSS (`ru_maxrss`) is its own. On CUDA the same loop runs with bf16 autocast and
channels_last, and peak memory is `torch.cuda.max_memory_allocated`. Models whose weights and AdamW state
would not fit in half the free memory are recorded as skipped with the reason (the seed CNNs at 512).

    python bench/bench_train.py [--sizes 224 512] [--models ...] [--out bench/results/train.json]

Throughput is the batch over the median step time (`images_per_s`) and over the fastest step
(`images_per_s_best_step`, the better estimate on a machine shared with other work). `--models` reruns
only those models and keeps the other rows of an existing output file.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import Machine, usable_cpus

BYTES_PER_PARAM_TRAINING = 16  # fp32 weight + gradient + two AdamW moments
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "train.json"


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), or 0 when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def skip_reason(name: str, size: int, device: str) -> str | None:
    """Why (name, size) is not run, or None: when training state would exceed half the free memory."""
    import torch

    from mammo.models import create_model

    with torch.device("meta"):
        model = create_model(name, pretrained=False, input_size=size)
    sizes = {n: p.numel() for n, p in model.named_parameters()}
    params, largest = sum(sizes.values()), max(sizes, key=sizes.get)
    need = params * BYTES_PER_PARAM_TRAINING
    free = torch.cuda.mem_get_info()[0] if device == "cuda" else available_memory_bytes()
    if free and need > free / 2:
        return (
            f"not built: {params / 1e9:.2f} G parameters at {size} px ({largest} alone "
            f"{sizes[largest] / 1e9:.2f} G) need {need / 2**30:.0f} GiB for weights, gradients and AdamW "
            f"state ({free / 2**30:.0f} GiB free on {device})"
        )
    return None


def run_one(
    name: str, size: int, batch: int, device: str, warmup: int, min_steps: int, max_seconds: float
) -> dict:
    """Time training steps of `name` at `size` on random data in this process; return speed and memory."""
    import torch

    from mammo.models import create_model

    torch.manual_seed(0)
    torch.set_num_threads(usable_cpus())
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = create_model(name, pretrained=False, input_size=size).to(device).train()
    cuda = device == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
        torch.cuda.reset_peak_memory_stats()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x = torch.randn(batch, 1, size, size, device=device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    y = (torch.arange(batch, device=device) % 2).float().unsqueeze(1)

    def step() -> None:
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=cuda):
            loss = loss_fn(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if cuda:
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    times: list[float] = []
    while len(times) < min_steps or (sum(times) < max_seconds and len(times) < 50):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    median, best = statistics.median(times), min(times)
    result = {
        "model": name,
        "size": size,
        "device": device,
        "batch_size": batch,
        "steps": len(times),
        "step_s": round(median, 4),
        "images_per_s": round(batch / median, 2),
        "images_per_s_best_step": round(batch / best, 2),
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
    }
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result.update(peak_rss_mb=round(peak), rss_increase_mb=round(peak - rss_before))
    if cuda:
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return result


def run_in_subprocess(name: str, size: int, args: argparse.Namespace, device: str) -> dict:
    """Run one measurement in a fresh interpreter so its peak memory is its own."""
    cmd = [
        sys.executable,
        __file__,
        "--one",
        name,
        str(size),
        "--device",
        device,
        "--batch",
        str(args.batch),
        "--warmup",
        str(args.warmup),
        "--min-steps",
        str(args.min_steps),
        "--max-seconds",
        str(args.max_seconds),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"model": name, "size": size, "device": device, "error": f"exit {proc.returncode}: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Benchmark every registered model (or --models) at each size; write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--sizes", nargs="*", type=int, default=[224, 512])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--gpu-batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--min-steps", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:
        result = run_one(
            args.one[0],
            int(args.one[1]),
            args.batch,
            args.device,
            args.warmup,
            args.min_steps,
            args.max_seconds,
        )
        print(json.dumps(result))
        return 0

    import torch

    from mammo.io.atomic import write_json
    from mammo.models import list_models

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = []
    machine = Machine.start()
    started = time.perf_counter()
    for device in devices:
        batch = args.gpu_batch if device == "cuda" else args.batch
        run_args = argparse.Namespace(**{**vars(args), "batch": batch})
        for name in args.models or list_models():
            for size in args.sizes:
                reason = skip_reason(name, size, device)
                row = (
                    {"model": name, "size": size, "device": device, "skipped": reason}
                    if reason
                    else run_in_subprocess(name, size, run_args, device)
                )
                print(json.dumps(row), flush=True)
                results.append(row)
    report = {
        "what": "training step (forward, BCEWithLogits backward, AdamW step) on random tensors; a bare "
        "PyTorch loop, so it is also the reference the real trainer should approach",
        "machine": {
            **machine.finish(),
            "mem_available_gb": round(available_memory_bytes() / 2**30, 1),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "cpu_batch_size": args.batch,
        "cuda": f"bf16 autocast + channels_last, batch {args.gpu_batch}" if "cuda" in devices else None,
        "total_seconds": round(time.perf_counter() - started),
        "results": results,
    }
    if args.models and args.out.exists():
        rerun = {(r["model"], r["size"], r["device"]) for r in results}
        previous = json.loads(args.out.read_text())["results"]
        kept = [r for r in previous if (r["model"], r["size"], r["device"]) not in rerun]
        report["results"] = kept + results
        report["partial_rerun"] = sorted({r[0] for r in rerun})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(report, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
