"""The MLflow backend: one MLflow run per train, fold or cv, nested under the cv's, through `MlflowClient`.

The store is MLFLOW_TRACKING_URI when set (a team's server), else a SQLite file in ./mlruns with the artifacts
beside it (MLflow 3 refuses its old folder store). An HTTP server is asked for /health before anything
trains: when it does not answer, `--track mlflow` refuses with one line rather than train an untracked run.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from mammo.errors import UserError

EXPERIMENT = "mammo"
LOCAL_DIR = "mlruns"
PROBE_SECONDS = 5.0
MISSING = "--track mlflow: the mlflow package is not installed; pip install 'mammo[track]'"


def local_store(cwd: Path | None = None) -> tuple[str, str]:
    """(tracking URI, artifact location) of the default local store: ./mlruns/mlflow.db and ./mlruns/artifacts."""
    root = (cwd or Path.cwd()).resolve() / LOCAL_DIR
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri()


def check_server(uri: str, timeout: float = PROBE_SECONDS) -> None:
    """UserError with one line when an http(s) tracking URI has no MLflow server answering /health."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as reply:
            reply.read()
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise UserError(
            f"MLFLOW_TRACKING_URI {uri}: no MLflow server answers ({reason}); start it, or unset "
            "MLFLOW_TRACKING_URI to log to ./mlruns, or leave out --track mlflow"
        ) from e


class MlflowStore:
    """Runs in one MLflow experiment, keyed by their folder; checked reachable when made."""

    name = "mlflow"

    def __init__(self, experiment: str | None = None) -> None:
        try:
            from mlflow import MlflowClient
        except ImportError as e:
            raise UserError(MISSING) from e
        uri = os.environ.get("MLFLOW_TRACKING_URI", "")
        location = None
        if not uri:
            uri, location = local_store()
        check_server(uri)
        name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
        try:
            self.client = MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name(name)
            self.experiment_id = (
                found.experiment_id
                if found
                else self.client.create_experiment(name, artifact_location=location)
            )
        except Exception as e:  # any store error: the URI is wrong or the store unreadable
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"--track mlflow: tracking store {uri} refused: {first}") from e
        self.uri = uri
        self.runs: dict[str, str] = {}

    def start(
        self, key: str, name: str, params: Mapping[str, str], tags: Mapping[str, str], parent: str | None
    ) -> None:
        """Open a run named `name` (nested under `parent`'s run when given) with its params and tags."""
        from mlflow.entities import Param

        extra = {"mlflow.parentRunId": self.runs[parent]} if parent in self.runs else {}
        run = self.client.create_run(self.experiment_id, run_name=name, tags={**tags, **extra})
        self.runs[key] = run.info.run_id
        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run.info.run_id, params=items[i : i + 100])

    def metrics(self, key: str, values: Mapping[str, float], step: int | None) -> None:
        """Log scalars to `key`'s run at `step` (0 for final numbers)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in values.items()]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.runs[key], metrics=items[i : i + 1000])

    def image(self, key: str, tag: str, path: Path, step: int) -> None:
        """Images reach MLflow as artifacts (curves.png), so nothing more here."""

    def files(self, key: str, files: list[tuple[Path, str]]) -> None:
        """Upload small files as the run's artifacts, each under its folder inside the run."""
        for path, folder in files:
            self.client.log_artifact(self.runs[key], str(path), folder or None)

    def end(self, key: str, status: str) -> None:
        """Close `key`'s run as FINISHED, FAILED or KILLED (its id is kept, so cv can log a fold's test numbers)."""
        self.client.set_terminated(self.runs[key], status)

    def close(self) -> None:
        """Nothing buffered: every call above is synchronous."""
