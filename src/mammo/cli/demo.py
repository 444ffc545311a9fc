"""`mammo demo`: the whole job on synthetic data in one command."""

from __future__ import annotations

import argparse
from pathlib import Path

from mammo.cli.options import Command


def _demo_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--out", type=Path, default=Path("demo-out"), help="folder for every step's output")
    s.add_argument("--fast", action="store_true", help="seconds-long smoke version")
    s.add_argument("--seed", type=int, default=0, help="seed of the synthetic download")


def _demo(a: argparse.Namespace) -> int:
    from mammo.demo import run_demo

    print(run_demo(a.out, fast=a.fast, seed=a.seed).summary())
    return 0


COMMANDS = [
    Command(
        "demo",
        "the whole job on synthetic data: synth -> ingest -> ... -> train -> evaluate -> explain -> report",
        _demo_options,
        _demo,
        """
mammo demo --out demo-out          # what `make demo` runs
mammo demo --out /tmp/smoke --fast # seconds-long smoke version (used by the tests)
""",
    ),
]
