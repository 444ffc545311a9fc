"""The `mammo` command: a thin skin over the library. Parses flags, calls one function, prints its summary.

Heavy libraries (torch, matplotlib) are imported inside the command that needs them, so `mammo --help`
and the data commands start fast. A UserError becomes one line on stderr and a non-zero exit;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mammo.errors import UserError


def _cmd_synth(a: argparse.Namespace) -> int:
    from mammo.data.synth import make_download

    print(make_download(a.out, women=a.women, layout=a.layout, size=a.size, seed=a.seed).summary())
    return 0


def _cmd_ingest(a: argparse.Namespace) -> int:
    sources = [x for x in (a.root, a.table, a.folders) if x is not None]
    if len(sources) != 1:
        raise UserError(
            "ingest needs exactly one source: ROOT (a CBIS-DDSM download), --table FILE.csv or --folders DIR"
        )
    if a.table is not None:
        from mammo.data.table import ingest_table

        result = ingest_table(a.table, a.out)
    elif a.folders is not None:
        from mammo.data.table import ingest_folders

        result = ingest_folders(a.folders, a.out)
    else:
        from mammo.data.cbis import ingest_cbis

        result = ingest_cbis(a.root, a.out, csv_dir=a.csv_dir, bwc=a.bwc, workers=a.workers)
    print(result.summary())
    return 0


def _cmd_validate(a: argparse.Namespace) -> int:
    from mammo.data.validate import validate

    report = validate(a.data)
    print(report.text())
    return 1 if report.errors else 0


def _cmd_prepare(a: argparse.Namespace) -> int:
    from mammo.prep.run import prepare

    result = prepare(
        a.data,
        a.out,
        task=a.task,
        size=a.size,
        abnormality=a.abnormality,
        view=a.view,
        split=a.split,
        val_fraction=a.val_fraction,
        seed=a.seed,
        workers=a.workers,
        overwrite=a.overwrite,
        context=a.context,
    )
    print(result.summary())
    return 0


def _cmd_eda(a: argparse.Namespace) -> int:
    from mammo.eda import run_eda

    print(run_eda(a.data, a.out).summary())
    return 0


def _cmd_models(a: argparse.Namespace) -> int:
    from mammo.models.registry import models_table

    print(models_table())
    return 0


def _cmd_train(a: argparse.Namespace) -> int:
    from mammo.train.loop import train

    flags = {
        k: getattr(a, k)
        for k in (
            "model",
            "epochs",
            "batch_size",
            "lr",
            "size",
            "device",
            "seed",
            "weights",
            "workers",
            "patience",
            "max_train_batches",
        )
    }
    result = train(a.prep, a.out, config_file=a.config, overrides=flags, resume=a.resume)
    if result is not None:
        print(result.summary())
    return 0


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from mammo.evaluate.run import evaluate

    print(evaluate(a.run, data=a.data, split=a.split, device=a.device).summary())
    return 0


def _cmd_demo(a: argparse.Namespace) -> int:
    from mammo.demo import run_demo

    print(run_demo(a.out, fast=a.fast).summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every subcommand, with examples in its help)."""
    p = argparse.ArgumentParser(
        prog="mammo", description="Mammography benign-vs-malignant: data to explained prediction."
    )
    p.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=fn)
        return sp

    s = add(
        "synth",
        _cmd_synth,
        "write a synthetic CBIS-DDSM download (DICOMs + the four CSVs, with the real quirks)",
    )
    s.add_argument("out", type=Path)
    s.add_argument("--women", type=int, default=12)
    s.add_argument("--layout", choices=["descriptive", "classic"], default="descriptive")
    s.add_argument("--size", choices=["full", "small"], default="small")
    s.add_argument("--seed", type=int, default=0)

    s = add(
        "ingest",
        _cmd_ingest,
        "index a download (CBIS-DDSM tree, --table or --folders) into DATA/manifest.csv",
    )
    s.add_argument("root", type=Path, nargs="?", help="CBIS-DDSM download root (either folder layout)")
    s.add_argument(
        "--csv-dir",
        type=Path,
        help="folder with the four case-description CSVs (default: searched under ROOT)",
    )
    s.add_argument(
        "--table", type=Path, help="CSV with columns image,label [patient_id,split,view,side,x_min,...]"
    )
    s.add_argument("--folders", type=Path, help="class-per-folder tree (e.g. train/Benign, train/Malignant)")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument(
        "--bwc", choices=["benign", "drop"], default="benign", help="BENIGN_WITHOUT_CALLBACK handling"
    )
    s.add_argument("--workers", type=int, default=4)

    s = add("validate", _cmd_validate, "report every problem of DATA at once (exit 1 on errors)")
    s.add_argument("data", type=Path)

    s = add("prepare", _cmd_prepare, "make a training-ready dataset of 16-bit PNGs and dataset.csv")
    s.add_argument("data", type=Path)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--task", choices=["whole", "roi"], default="whole")
    s.add_argument("--size", type=int, default=512)
    s.add_argument("--abnormality", choices=["mass", "calc", "all"], default="all")
    s.add_argument("--view", choices=["CC", "MLO", "all"], default="all")
    s.add_argument("--split", choices=["official", "random"], default="official")
    s.add_argument("--val-fraction", type=float, default=0.2)
    s.add_argument(
        "--context",
        type=float,
        default=0.5,
        help="roi: padding around the lesion box, as a fraction of its side",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--overwrite", action="store_true")

    s = add("eda", _cmd_eda, "exploratory figures (PNG) and a Markdown summary of DATA")
    s.add_argument("data", type=Path)
    s.add_argument("--out", type=Path, required=True)

    add("models", _cmd_models, "list the registered models with parameters and input size")

    s = add("train", _cmd_train, "train a model on PREP (works under torchrun for DDP)")
    s.add_argument("prep", type=Path)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--config", type=Path, help="YAML config (defaults < YAML < flags)")
    s.add_argument("--model")
    s.add_argument("--epochs", type=int)
    s.add_argument("--batch-size", type=int)
    s.add_argument("--lr", type=float)
    s.add_argument("--size", type=int)
    s.add_argument("--device", choices=["auto", "cpu", "cuda"])
    s.add_argument("--seed", type=int)
    s.add_argument("--weights", type=Path, help="start from a local state dict")
    s.add_argument("--workers", type=int, help="data loader workers")
    s.add_argument("--patience", type=int, help="early stopping patience in epochs (val AUC)")
    s.add_argument("--max-train-batches", type=int, help="cap batches per epoch (quick runs)")
    s.add_argument("--resume", action="store_true", help="continue from RUN/last.pt")

    s = add("evaluate", _cmd_evaluate, "metrics with bootstrap CIs by woman, calibration and plots for a RUN")
    s.add_argument("run", type=Path)
    s.add_argument("--data", type=Path, help="PREP folder (default: the one the run was trained on)")
    s.add_argument("--split", choices=["val", "test"], default="test")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")

    s = add("demo", _cmd_demo, "the whole job on synthetic data: synth -> ... -> evaluate")
    s.add_argument("--out", type=Path, default=Path("demo-out"))
    s.add_argument("--fast", action="store_true", help="seconds-long smoke version")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one subcommand; UserError -> one line on stderr and its exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        if args.debug:
            raise
        print(f"mammo {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"mammo {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
