"""Training commands: models, train, cv (k-fold cross-validation by woman)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mammo.cli.options import Command, recipe_options, track_option, train_options, train_overrides


def _models_options(s: argparse.ArgumentParser) -> None:
    """`mammo models` takes no options."""


def _models(a: argparse.Namespace) -> int:
    from mammo.models.registry import models_table

    print(models_table())
    return 0


def _train_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("prep", type=Path, help="PREP folder written by `mammo prepare`")
    s.add_argument("--out", type=Path, required=True, help="RUN folder for checkpoints, metrics and config")
    s.add_argument("--config", type=Path, help="YAML config (defaults < YAML < flags) (default: none)")
    s.add_argument("--resume", action="store_true", help="continue from RUN/last.pt")
    track_option(s)
    train_options(s)
    recipe_options(s)


def _train(a: argparse.Namespace) -> int:
    from mammo.track.hooks import tracking
    from mammo.train.loop import train

    overrides = train_overrides(a)
    with tracking(a.track):
        if a.trunk_cache is not None:
            from mammo.train.cached import train_cached

            result = train_cached(a.prep, a.out, a.trunk_cache, config_file=a.config, overrides=overrides)
        else:
            result = train(a.prep, a.out, config_file=a.config, overrides=overrides, resume=a.resume)
    if result is not None:
        print(result.summary())
    return 0


def _cv_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("prep", type=Path, help="PREP folder (its test split is never used)")
    s.add_argument("--out", type=Path, required=True, help="CV folder: fold-k/run, oof.csv, metrics.json")
    s.add_argument("--folds", type=int, default=5, help="number of folds, grouped by woman (default: 5)")
    s.add_argument("--fold-table", type=Path, help="CSV patient_id,fold giving the folds (default: drawn)")
    s.add_argument(
        "--val-fraction",
        type=float,
        default=0.15,
        help="share of each fold's training women kept for early stopping and calibration (default: 0.15)",
    )
    s.add_argument("--config", type=Path, help="YAML train config for every fold (default: none)")
    track_option(s)
    train_options(s)
    recipe_options(s)


def _cv(a: argparse.Namespace) -> int:
    from mammo.evaluate.cv import run_cv
    from mammo.track.hooks import tracking

    with tracking(a.track):
        result = run_cv(
            a.prep,
            a.out,
            folds=a.folds,
            seed=a.seed,
            overrides=train_overrides(a, leave=frozenset({"seed", "device"})),
            config_file=a.config,
            val_fraction=a.val_fraction,
            fold_table=a.fold_table,
            device=a.device,
            trunk_cache=a.trunk_cache,
        )
    print(result.summary())
    return 0


COMMANDS = [
    Command(
        "models",
        "list the registered models with parameters and input size",
        _models_options,
        _models,
        """
mammo models
""",
    ),
    Command(
        "train",
        "train a model on PREP (works under torchrun for DDP)",
        _train_options,
        _train,
        """
mammo train prep/whole512 --out runs/lite0 --model efficientnet-lite0 --epochs 20 --batch-size 32 --lr 3e-4 --size 512
mammo train prep/whole512 --out runs/lite0 --resume                 # continue from runs/lite0/last.pt
mammo train prep/whole512 --out runs/lite0 --config my.yaml         # defaults < model defaults < YAML < flags
mammo train prep/whole512 --out runs/lite0 --track mlflow           # also log to MLflow (./mlruns or MLFLOW_TRACKING_URI)
torchrun --nproc-per-node 4 -m mammo train prep/whole512 --out runs/ddp --device cuda   # DDP, any number of nodes
""",
    ),
    Command(
        "cv",
        "k-fold cross-validation by woman over train+val: out-of-fold AUC with CI and baselines",
        _cv_options,
        _cv,
        """
mammo cv prep/rsna256 --out cv/rsna --folds 5 --size 256 --width 144 --epochs 6 --warmup-epochs 0.5
mammo cv prep/mias-roi --out cv/mias --fold-table folds.csv     # folds given per woman (patient_id,fold)
mammo cv prep/rsna256 --out cv/rsna --track mlflow,tensorboard   # one MLflow run, a nested run per fold
""",
    ),
]
