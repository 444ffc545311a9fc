"""Real-data accuracy: the default model and the starting point's `seed-final`, side by side on rsna-screening-dev.

Runs the README's commands (ingest --table -> prepare -> train -> evaluate) as subprocesses, times each, and writes
bench/results/rsna.json with the test metrics (AUC with 95% CI by woman) and the wall time of every step.
Usage: python bench/real_rsna.py [--work DIR] [--models efficientnet-lite0 seed-final]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from machine import Machine

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data" / "rsna-screening-dev"
MAMMO = [sys.executable, "-m", "mammo"]

# Per model: the train flags used. seed-final keeps the starting point's recipe (its registry train_defaults:
# Adadelta lr 1.0, batch 32, 150 px, seed augmentation) with the input scaling fixed. It trains at about 1 image/s
# on this 2-core CPU, so its epochs are the original's size (8 steps of 60 = 480 images: 15 batches of 32), 3 of them.
TRAIN_FLAGS = {
    "efficientnet-lite0": ["--epochs", "8", "--batch-size", "32", "--patience", "4"],
    "seed-final": ["--epochs", "3", "--max-train-batches", "15"],
}


def _run(args: list[str]) -> float:
    """Run one mammo command, echoing it; return its wall time in seconds."""
    print("$ mammo " + shlex.join(args[3:]), flush=True)
    t0 = time.perf_counter()
    subprocess.run(args, check=True)
    return round(time.perf_counter() - t0, 1)


def main() -> None:
    """Prepare the data once, then train and evaluate each model; write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", type=Path, default=HERE / "out" / "rsna")
    ap.add_argument("--models", nargs="+", default=list(TRAIN_FLAGS))
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "rsna.json")
    a = ap.parse_args()
    machine = Machine.start()
    if not (SHARED / "labels.csv").is_file():
        sys.exit(
            f"{SHARED}: not found; this benchmark needs ../shared/data/rsna-screening-dev beside the repo"
        )
    data, prep = a.work / "data", a.work / f"prep{a.size}"
    steps: dict[str, float] = {}
    if not (data / "manifest.csv").is_file():
        steps["ingest"] = _run([*MAMMO, "ingest", "--table", str(SHARED / "labels.csv"), "--out", str(data)])
    if not (prep / "dataset.csv").is_file():
        steps["prepare"] = _run(
            [
                *MAMMO,
                "prepare",
                str(data),
                "--out",
                str(prep),
                "--task",
                "whole",
                "--size",
                str(a.size),
                "--workers",
                str(os.cpu_count() or 1),
            ]
        )
    out_path = a.out
    results = json.loads(out_path.read_text()) if out_path.is_file() else {"models": {}}
    for name in a.models:
        run = a.work / f"run-{name}"
        flags = TRAIN_FLAGS.get(name, [])
        train_s = _run(
            [*MAMMO, "train", str(prep), "--out", str(run), "--model", name, "--device", "cpu", *flags]
        )
        eval_s = _run([*MAMMO, "evaluate", str(run), "--split", "test", "--device", "cpu"])
        m = json.loads((run / "eval" / "test" / "metrics.json").read_text())
        history = pd.read_csv(run / "metrics.csv")
        results["models"][name] = {
            "train_command": "mammo "
            + shlex.join(["train", "PREP", "--out", "RUN", "--model", name, *flags]),
            "epochs_run": len(history),
            "best_val_auc": round(float(history["val_auc"].max()), 4),
            "train_seconds": train_s,
            "evaluate_seconds": eval_s,
            **{
                k: m.get(k)
                for k in (
                    "auc",
                    "auc_ci_low",
                    "auc_ci_high",
                    "accuracy",
                    "sensitivity",
                    "specificity",
                    "threshold",
                    "ece",
                    "ece_uncalibrated",
                    "brier",
                    "temperature",
                    "n",
                    "n_pos",
                    "n_women",
                    "majority_accuracy",
                    "prediction_spread",
                )
            },
        }
        results.update(
            dataset="rsna-screening-dev (test split by woman)",
            prepare_size=a.size,
            machine=machine.finish(),
            data_steps_seconds={**results.get("data_steps_seconds", {}), **steps},
        )
        out_path.write_text(json.dumps(results, indent=2) + "\n")
        print(
            f"{name}: test AUC {m['auc']:.3f} ({m['auc_ci_low']:.3f}-{m['auc_ci_high']:.3f}), train {train_s}s"
        )


if __name__ == "__main__":
    main()
