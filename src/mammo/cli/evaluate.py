"""Commands that judge trained models: evaluate, compare, report, runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from mammo.cli.options import Command, device_option


def _evaluate_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("run", type=Path, help="RUN folder written by `mammo train`")
    s.add_argument("--data", type=Path, help="PREP folder (default: the one the run was trained on)")
    s.add_argument("--split", choices=["val", "test"], default="test", help="PREP split to evaluate")
    device_option(s)


def _evaluate(a: argparse.Namespace) -> int:
    from mammo.evaluate.run import evaluate

    print(evaluate(a.run, data=a.data, split=a.split, device=a.device).summary())
    return 0


def _compare_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("a", type=Path, help="A: RUN folder, CV folder or predictions CSV")
    s.add_argument("b", type=Path, help="B: same kinds, over the same samples")
    s.add_argument(
        "--split", choices=["val", "test"], default="test", help="split of a RUN's eval (default: test)"
    )
    s.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default: 2000)")
    s.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")


def _compare(a: argparse.Namespace) -> int:
    from mammo.evaluate.compare import compare

    print(compare(a.a, a.b, split=a.split, n_boot=a.n_boot, seed=a.seed).summary())
    return 0


def _report_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("run", type=Path, help="RUN folder, evaluated with `mammo evaluate` on --split")
    s.add_argument("--out", type=Path, help="HTML file to write (default: RUN/report.html)")
    s.add_argument("--split", choices=["val", "test"], default="test", help="evaluation to report")
    s.add_argument(
        "--outside",
        type=Path,
        metavar="EXPLAIN_DIR",
        help="a `mammo explain` output folder of images outside the run's data, shown in their own section "
        "(default: none)",
    )
    device_option(s)


def _report(a: argparse.Namespace) -> int:
    from mammo.report.build import build_report

    print(build_report(a.run, a.out, split=a.split, device=a.device, outside=a.outside).summary())
    return 0


def _runs_options(s: argparse.ArgumentParser) -> None:
    from mammo.track.spec import RUNS_SORT

    s.add_argument(
        "dir", type=Path, help="folder holding RUN folders (searched below it: cv folds and demos too)"
    )
    s.add_argument(
        "--sort",
        choices=RUNS_SORT,
        default="date",
        help="order of the rows; date and AUCs newest/highest first",
    )
    s.add_argument("--csv", action="store_true", help="print every column as CSV instead of the table")


def _runs(a: argparse.Namespace) -> int:
    from mammo.track.runs import runs_table

    table = runs_table(a.dir, sort=a.sort)
    print(table.to_csv() if a.csv else table.summary(), end="" if a.csv else "\n")
    return 0


COMMANDS = [
    Command(
        "compare",
        "delta-AUC of B over A on the same samples, paired bootstrap by woman",
        _compare_options,
        _compare,
        """
mammo compare cv/a cv/b                     # two CV folders (oof.csv) over the same folds
mammo compare runs/a runs/b --split test    # two evaluated runs
""",
    ),
    Command(
        "evaluate",
        "metrics with bootstrap CIs by woman, calibration and plots for a RUN",
        _evaluate_options,
        _evaluate,
        """
mammo evaluate runs/lite0 --split test            # writes runs/lite0/eval/test/
mammo evaluate runs/lite0 --data prep/other       # writes runs/lite0/eval/other-<hash>/test/, keeps eval/test/
""",
    ),
    Command(
        "report",
        "one self-contained HTML report of a RUN: data, metrics with baselines, subgroups, plots, heatmaps",
        _report_options,
        _report,
        """
mammo evaluate runs/lite0 --split test && mammo report runs/lite0           # writes runs/lite0/report.html
mammo report runs/lite0 --out lite0.html --split val
""",
    ),
    Command(
        "runs",
        "a table of the RUN folders under DIR: model, data, val and test AUC with CIs, shortcuts; no server",
        _runs_options,
        _runs,
        """
mammo runs runs/                       # newest first
mammo runs runs/ --sort val_auc --csv > runs.csv
""",
    ),
]
