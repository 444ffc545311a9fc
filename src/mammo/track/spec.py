"""The `--track` value: which backends log a run (mlflow, tensorboard, both, or none), checked before any work."""

from __future__ import annotations

from mammo.errors import UserError

BACKENDS = ("mlflow", "tensorboard")
RUNS_SORT = ("date", "val_auc", "test_auc", "model", "run")  # `mammo runs --sort`
TRACK_HELP = (
    "log the run to experiment trackers: mlflow (MLFLOW_TRACKING_URI, else ./mlruns), tensorboard "
    "(RUN/tensorboard), both as mlflow,tensorboard; needs pip install 'mammo[track]'"
)


def parse_track(value: str | None) -> tuple[str, ...]:
    """'mlflow,tensorboard' -> ('mlflow', 'tensorboard'); '' / 'none' / None -> (); UserError naming a bad one."""
    names = [n.strip().lower() for n in (value or "").split(",") if n.strip()]
    if names == ["none"]:
        return ()
    bad = [n for n in names if n not in BACKENDS]
    if bad:
        raise UserError(
            f"--track {bad[0]}: unknown tracker; choose from {', '.join(BACKENDS)} (comma-separated)"
        )
    return tuple(dict.fromkeys(names))
