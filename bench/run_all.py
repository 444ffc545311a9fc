"""Rerun every benchmark on this machine, then regenerate docs/results.md and the README's summary from their JSON.

python bench/run_all.py [--skip-real]      (make bench)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEPS = [
    ["bench_ingest.py"],
    ["bench_prepare.py"],
    ["bench_train.py"],
    ["bench_loader.py"],
    ["real_rsna.py"],
    ["bench_demo.py"],
    ["bench_tests.py"],
    ["readme_results.py"],
]


def main() -> None:
    """Run the steps in order; stop at the first failure."""
    skip_real = "--skip-real" in sys.argv[1:]
    for step in STEPS:
        if skip_real and step[0] == "real_rsna.py":
            continue
        print(f"== {' '.join(step)}", flush=True)
        subprocess.run([sys.executable, str(HERE / step[0]), *step[1:]], check=True)


if __name__ == "__main__":
    main()
