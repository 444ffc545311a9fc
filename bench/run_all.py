"""Rerun benchmarks on this machine, then regenerate docs/results.md and the README's summary from their JSON.

python bench/run_all.py [--skip-real]                       (make bench: every benchmark)
python bench/run_all.py prepare predict explain dicom_node  (just these, then the README; names as in STEPS)

Run it on a quiet machine: every JSON records the load average beside its numbers (bench/machine.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEPS = {
    "ingest": ["bench_ingest.py"],
    "prepare": ["bench_prepare.py"],
    "predict": ["bench_predict.py"],
    "cluster": ["bench_cluster.py"],
    "explain": ["bench_explain.py"],
    "dicom_node": ["bench_dicom_node.py"],
    "threads": ["bench_threads.py"],
    "train": ["bench_train.py"],
    "loader": ["bench_loader.py"],
    "rsna": ["real_rsna.py"],
    "demo": ["bench_demo.py"],
    "tests": ["bench_tests.py"],
}
REAL = {"rsna"}  # needs ../shared/data


def main() -> None:
    """Run the chosen steps (all by default) in order, stop at the first failure, then rewrite the README."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("steps", nargs="*", help=f"benchmarks to rerun, of {', '.join(STEPS)} (default: all)")
    ap.add_argument("--skip-real", action="store_true", help="leave out the ones that need ../shared/data")
    a = ap.parse_args()
    if unknown := sorted(set(a.steps) - set(STEPS)):
        ap.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(STEPS)}")
    chosen = [s for s in STEPS if (not a.steps or s in a.steps) and not (a.skip_real and s in REAL)]
    for name in chosen:
        print(f"== {name}: {' '.join(STEPS[name])}", flush=True)
        subprocess.run([sys.executable, str(HERE / STEPS[name][0]), *STEPS[name][1:]], check=True)
    subprocess.run([sys.executable, str(HERE / "readme_results.py")], check=True)


if __name__ == "__main__":
    main()
