"""The hooks train, cv and the studies call, and `tracking`, the context that turns them on.

A training loop asks `current()` for the tracker and calls three hooks: `training(...)` around the run,
`epoch(row)` after each epoch and `finished(result, val_logits)` at the end; `run_cv` wraps its folds in
`cv(...)`, so each fold's run nests under the cv's. Outside `tracking(...)` the tracker has no backend and
every hook returns at once. Tracking only reads what the run wrote: it never changes what is trained. A backend
that fails while a run trains is dropped with one warning and the run goes on; one that cannot start (no
package, no server) refuses in `tracking`, before anything trains.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mammo.track.record import (
    EPOCH_METRICS,
    artifacts,
    block_metrics,
    flat_params,
    result_metrics,
    run_tags,
)
from mammo.track.spec import parse_track

log = logging.getLogger(__name__)


class Tracker:
    """The backends a run is logged to, and the folders of the runs now open (innermost last)."""

    def __init__(self, backends: list[Any] | None = None) -> None:
        self.backends = list(backends or [])
        self.open: list[str] = []

    def _each(self, method: str, *args: Any) -> None:
        """Call `method` on every backend; one that raises is warned about once and dropped, the run goes on."""
        for backend in list(self.backends):
            try:
                getattr(backend, method)(*args)
            except Exception as e:
                log.warning(
                    f"tracking: {backend.name} failed ({type(e).__name__}: {e}); the run goes on without it"
                )
                self.backends.remove(backend)

    @contextmanager
    def _run(self, folder: Path, kind: str, config: Mapping[str, Any], prep: Path) -> Iterator[str]:
        """Open a tracked run for `folder` (nested under the open one), close it FINISHED, FAILED or KILLED."""
        key = str(folder.resolve())
        parent = self.open[-1] if self.open else None
        name = os.path.relpath(key, parent) if parent else folder.resolve().name
        self._each("start", key, name, flat_params(config), run_tags(kind, folder, prep), parent)
        self.open.append(key)
        status = "FAILED"
        try:
            yield key
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            self.open.remove(key)
            self._each("end", key, status)

    @contextmanager
    def training(
        self,
        out: Path,
        config: Mapping[str, Any],
        prep: Path,
        train_rows: pd.DataFrame,
        val_rows: pd.DataFrame,
        enabled: bool = True,
    ) -> Iterator[TrainHooks]:
        """Track one training run into RUN `out` (a fold's when a cv is open); `enabled=False` on DDP's other ranks."""
        if not (self.backends and enabled):
            yield TrainHooks(Tracker(), "", out, train_rows, val_rows)
            return
        with self._run(out, "fold" if self.open else "train", config, prep) as key:
            yield TrainHooks(self, key, out, train_rows, val_rows)

    @contextmanager
    def cv(self, out: Path, params: Mapping[str, Any], prep: Path) -> Iterator[CvHooks]:
        """Track a cross-validation in `out`: a parent run that every fold's training run nests under."""
        if not self.backends:
            yield CvHooks(Tracker(), "", out)
            return
        with self._run(out, "cv", params, prep) as key:
            yield CvHooks(self, key, out)

    def close(self) -> None:
        """Flush and close every backend."""
        self._each("close")


@dataclass
class TrainHooks:
    """What a training loop calls: `epoch` after each epoch, `finished` once with the best weights' val logits."""

    tracker: Tracker
    key: str
    out: Path
    train_rows: pd.DataFrame
    val_rows: pd.DataFrame

    def epoch(self, row: Mapping[str, Any]) -> None:
        """The epoch's row of metrics.csv as scalars at step = epoch."""
        if self.tracker.backends:
            values = {k: float(row[k]) for k in EPOCH_METRICS if k in row}
            self.tracker._each("metrics", self.key, values, int(row["epoch"]))

    def finished(self, result: Mapping[str, Any], val_logits: np.ndarray | None = None) -> None:
        """Final numbers (best val AUC with its interval by woman, shortcut baselines on val), curves, files."""
        if not self.tracker.backends:
            return
        values = result_metrics(result)
        if val_logits is not None:
            values.update(val_metrics(self.train_rows, self.val_rows, val_logits))
        self.tracker._each("metrics", self.key, values, None)
        curves = self.out / "curves.png"
        if curves.is_file():
            self.tracker._each("image", self.key, "curves", curves, int(result.get("epochs_run") or 0))
        self.tracker._each("files", self.key, artifacts(self.out))


@dataclass
class CvHooks:
    """What `run_cv` calls: `evaluated` after scoring a fold's held-out women, `finished` with the pooled numbers."""

    tracker: Tracker
    key: str
    out: Path

    def evaluated(self, run: Path, metrics: Mapping[str, Any], split: str = "test") -> None:
        """A fold's evaluation (AUC with interval, baselines) and its metrics.json logged to that fold's run."""
        key = str(run.resolve())
        if self.tracker.backends:
            self.tracker._each("metrics", key, block_metrics(metrics, split), None)
            self.tracker._each("files", key, artifacts(run))

    def finished(self, metrics: Mapping[str, Any]) -> None:
        """The pooled out-of-fold numbers with intervals and baselines, per-fold AUCs by step, the cv's files."""
        if not self.tracker.backends:
            return
        self.tracker._each("metrics", self.key, block_metrics(metrics, "oof"), None)
        for k, value in enumerate(metrics.get("per_fold_auc") or []):
            if value is not None:
                self.tracker._each("metrics", self.key, {"fold_auc": float(value)}, k)
        self.tracker._each("files", self.key, artifacts(self.out))


def val_metrics(train_rows: pd.DataFrame, val_rows: pd.DataFrame, logits: np.ndarray) -> dict[str, float]:
    """best_val_auc with its 95% interval by woman and each shortcut baseline (fitted on train) on the same rows."""
    from mammo.stats.baselines import score_block, split_baselines

    val = val_rows.assign(label=val_rows["label"].astype(int))
    block = score_block(val["label"].to_numpy(), logits, val["patient_id"].to_numpy())
    try:
        fit = train_rows.assign(label=train_rows["label"].astype(int))
        block["baselines"], _ = split_baselines(fit, val, fuse_rows=None)
    except Exception as e:  # a baseline that cannot be fitted here leaves the run's own numbers
        log.warning(f"tracking: shortcut baselines on val left out ({type(e).__name__}: {e})")
    return block_metrics(block, "best_val")


_CURRENT: ContextVar[Tracker] = ContextVar("mammo_tracker", default=Tracker())  # noqa: B039 (never mutated)


def current() -> Tracker:
    """The tracker of the enclosing `tracking(...)`, or one with no backend."""
    return _CURRENT.get()


def make_backends(names: tuple[str, ...], experiment: str | None = None) -> list[Any]:
    """The backends named, each checked now (package installed, server answering): UserError otherwise."""
    backends: list[Any] = []
    for name in names:
        if name == "mlflow":
            from mammo.track.mlflow_store import MlflowStore

            backends.append(MlflowStore(experiment))
        else:
            from mammo.track.tensorboard_store import TensorBoardStore

            backends.append(TensorBoardStore())
    return backends


@contextmanager
def tracking(track: str | None, experiment: str | None = None) -> Iterator[Tracker]:
    """Log every train and cv inside the block to the trackers named by `track` ('mlflow', 'mlflow,tensorboard').

    Refuses (UserError) before anything trains when a name is unknown, a package is missing or the MLflow
    server does not answer. `experiment` names the MLflow experiment (default: MLFLOW_EXPERIMENT_NAME, else mammo).

    Example:
        >>> with tracking("mlflow"):
        ...     train("prep/whole512", "runs/lite0", overrides={"epochs": 20})
    """
    names = parse_track(track)
    # under torchrun only rank 0 logs (the loop tells its hooks the same), so only it opens a store
    tracker = Tracker(make_backends(names, experiment) if os.environ.get("RANK", "0") == "0" else [])
    token = _CURRENT.set(tracker)
    try:
        yield tracker
    finally:
        _CURRENT.reset(token)
        tracker.close()
