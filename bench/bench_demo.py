"""The demo's headline numbers per seed: test AUC, explanation checks, the real films' scores, wall and CPU time.

Runs `mammo demo --seed S` in a fresh folder per seed (one after another, so each has the machine to itself as far
as this script is concerned) and writes bench/results/demo.json. CPU time is the children's user + system time,
which stays meaningful when other work shares the machine (wall time then grows, CPU time hardly); the load
average before and after each run is recorded beside it, so a wall time measured on a busy machine says so.
    python bench/bench_demo.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import Machine, load_average, timed

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "demo.json"


def run_seed(seed: int, work: Path) -> dict:
    """One demo run: its test metrics, explanation checks and times."""
    out = work / f"seed{seed}"
    load_before = load_average()
    with timed() as t:
        subprocess.run(
            [sys.executable, "-m", "mammo", "demo", "--out", str(out), "--seed", str(seed)], check=True
        )
    m = json.loads((out / "run" / "eval" / "test" / "metrics.json").read_text())
    val = json.loads((out / "run" / "eval" / "val" / "metrics.json").read_text())
    checks = json.loads((out / "run" / "explain" / "checks_test.json").read_text())
    prep = json.loads((out / "prep" / "prepare.json").read_text())
    real = out / "real-films" / "explain.csv"
    films = list(csv.DictReader(real.open())) if real.is_file() else []
    return {
        "seed": seed,
        "task": prep["task"],
        "size": prep["size"],
        "epochs_run": sum(1 for _ in (out / "run" / "metrics.csv").open()) - 1,
        "val_auc": val["auc"],
        "test_auc": m["auc"],
        "test_auc_ci": [m["auc_ci_low"], m["auc_ci_high"]],
        "n_test": m["n"],
        "n_test_women": m["n_women"],
        "pointing_game": checks["pointing_game"],
        "pointing_chance": checks["chance"],
        "pointing_n": checks["n"],
        "randomisation_spearman": checks["randomisation_spearman"],
        "baselines": {k: round(b["auc"], 3) for k, b in (m.get("baselines") or {}).items()},
        "real_films": {
            f"{Path(f['image']).parent.name}/{Path(f['image']).name}": (
                round(float(f["probability"]), 3) if not f["error"] else None
            )
            for f in films
        },
        "wall_seconds": round(t["wall"], 1),
        "cpu_seconds": round(t["cpu"], 1),
        "load_average_at_start": load_before,
        "load_average_at_end": load_average(),
    }


def main() -> None:
    """Run the seeds and write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="demo seeds (default: 0 1 2)")
    args = p.parse_args()
    machine = Machine.start()
    runs = []
    with tempfile.TemporaryDirectory(prefix="mammo-demo-bench-") as tmp:
        for seed in args.seeds:
            runs.append(run_seed(seed, Path(tmp)))
            print(json.dumps(runs[-1]), flush=True)
    result = {
        "machine": machine.finish(),
        "command": "mammo demo --out DIR --seed S",
        "seeds": args.seeds,
        "runs": runs,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
