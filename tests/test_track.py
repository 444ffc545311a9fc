"""Experiment tracking: train and cv logged to a real MLflow server and to TensorBoard, read back; refusals.

The server tests share one `mlflow server` on loopback (tests/mlflow_server.py), started once for the module.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_prep

from mammo.errors import UserError
from mammo.evaluate.cv import run_cv
from mammo.track.hooks import Tracker, current, tracking
from mammo.track.spec import parse_track
from mammo.train.loop import train

mlflow = pytest.importorskip("mlflow", reason="needs the track extra: pip install 'mammo[track]'")

FLAGS = {"model": "tiny", "epochs": 3, "batch_size": 8, "workers": 0, "device": "cpu"}


def synthetic_prep(root: Path, **sizes) -> Path:
    """make_prep with the provenance prepare writes for a `mammo synth` download, and an age column."""
    prep = make_prep(root, **sizes)
    info = json.loads((prep / "prepare.json").read_text())
    info["provenance"] = {"synthetic": True, "source": "synthetic CBIS-DDSM download made by mammo synth"}
    (prep / "prepare.json").write_text(json.dumps(info))
    df = pd.read_csv(prep / "dataset.csv")
    df["age"] = 45 + 10 * df["label"] + np.arange(len(df)) % 7
    df.to_csv(prep / "dataset.csv", index=False)
    return prep


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One MLflow tracking server (SQLite store, temporary artifact root) for this module's tests."""
    from mlflow_server import mlflow_server

    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as url:
        yield url


def runs_of(url: str, experiment: str) -> pd.DataFrame:
    """Every run of `experiment` on the server, as mlflow.search_runs gives them."""
    mlflow.set_tracking_uri(url)
    return mlflow.search_runs(experiment_names=[experiment])


def test_parse_track():
    assert parse_track("mlflow, tensorboard,mlflow") == ("mlflow", "tensorboard")
    assert parse_track("none") == parse_track(None) == ()
    with pytest.raises(UserError, match=r"^--track bogus: unknown tracker; choose from mlflow, tensorboard"):
        parse_track("mlflow,bogus")


@pytest.mark.slow
def test_train_logged_to_mlflow_server_and_tensorboard(server, tmp_path, tiny_registry, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    prep = synthetic_prep(tmp_path / "prep")
    run = tmp_path / "run"
    with tracking("mlflow,tensorboard", experiment="train-test"):
        result = train(prep, run, overrides=FLAGS)
    runs = runs_of(server, "train-test")
    assert len(runs) == 1
    r = runs.iloc[0]
    assert r["status"] == "FINISHED"
    assert r["params.model"] == "tiny" and r["params.epochs"] == "3" and r["params.batch_size"] == "8"
    assert r["tags.mammo.data"] == "synthetic" and r["tags.mammo.kind"] == "train"
    assert r["tags.mammo.data.digest"] and r["tags.mammo.version"]
    client = mlflow.MlflowClient(server)
    history = client.get_metric_history(r["run_id"], "val_auc")
    csv = pd.read_csv(run / "metrics.csv")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx(csv["val_auc"].tolist())
    assert len(client.get_metric_history(r["run_id"], "train_loss")) == 3
    assert r["metrics.best_val_auc"] == pytest.approx(result.best_val_auc)
    assert r["metrics.best_val_auc_ci_low"] <= r["metrics.best_val_auc"] <= r["metrics.best_val_auc_ci_high"]
    assert "metrics.baseline_age_best_val_auc" in runs.columns  # the shortcut beside the image model
    assert {a.path for a in client.list_artifacts(r["run_id"])} >= {
        "config.yaml",
        "metrics.csv",
        "curves.png",
    }

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    scalars = events.Scalars("val_auc")
    assert [s.step for s in scalars] == [1, 2, 3]
    assert [s.value for s in scalars] == pytest.approx(csv["val_auc"].tolist(), rel=1e-6)
    assert [s.step for s in events.Scalars("train_loss")] == [1, 2, 3]
    assert events.Scalars("best_val_auc")[0].value == pytest.approx(result.best_val_auc, rel=1e-6)
    assert "curves" in events.Tags()["images"]


@pytest.mark.slow
def test_cv_logs_a_parent_run_with_a_nested_run_per_fold(server, tmp_path, tiny_registry, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    prep = synthetic_prep(tmp_path / "prep", n_train=24, n_val=8, n_test=4)
    with tracking("mlflow", experiment="cv-test"):
        result = run_cv(prep, tmp_path / "cv", folds=2, overrides={**FLAGS, "epochs": 2}, log=lambda _: None)
    runs = runs_of(server, "cv-test")
    parent = runs[runs["tags.mammo.kind"] == "cv"]
    folds = runs[runs["tags.mammo.kind"] == "fold"]
    assert len(parent) == 1 and len(folds) == 2
    parent_id = parent["run_id"].iloc[0]
    assert (folds["tags.mlflow.parentRunId"] == parent_id).all()
    assert sorted(folds["tags.mlflow.runName"]) == ["fold-0/run", "fold-1/run"]
    p = parent.iloc[0]
    assert p["metrics.oof_auc"] == pytest.approx(result.metrics["auc"])
    assert p["metrics.oof_auc_ci_low"] == pytest.approx(result.metrics["auc_ci_low"])
    assert p["metrics.baseline_age_oof_auc"] == pytest.approx(result.metrics["baselines"]["age"]["auc"])
    assert p["params.folds"] == "2" and p["tags.mammo.data"] == "synthetic"
    client = mlflow.MlflowClient(server)
    for _, f in folds.iterrows():
        assert len(client.get_metric_history(f["run_id"], "val_auc")) == 2
        assert np.isfinite(f["metrics.test_auc"]) and "metrics.test_auc_ci_high" in folds.columns
        paths = {a.path for a in client.list_artifacts(f["run_id"])}
        assert {"config.yaml", "metrics.csv", "curves.png", "eval"} <= paths
    assert "metrics.json" in {a.path for a in client.list_artifacts(parent_id)}


def _run_files(run: Path) -> tuple[pd.DataFrame, bytes, dict]:
    """What tracking must not change: metrics.csv (timings aside), config.yaml, best.pt's weights and calibration."""
    best = torch.load(run / "best.pt", weights_only=True)
    keep = {k: best[k] for k in ("threshold", "temperature", "epoch", "best_val_auc")}
    return (
        pd.read_csv(run / "metrics.csv").drop(columns="seconds"),
        (run / "config.yaml").read_bytes(),
        {
            **keep,
            "state_dict": best["state_dict"],
        },
    )


def test_run_is_the_same_with_and_without_tracking(tmp_path, tiny_registry, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    prep = synthetic_prep(tmp_path / "prep")
    train(prep, tmp_path / "plain", overrides=FLAGS)
    with tracking("mlflow,tensorboard"):
        train(prep, tmp_path / "tracked", overrides=FLAGS)
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()  # the default local store
    plain, tracked = _run_files(tmp_path / "plain"), _run_files(tmp_path / "tracked")
    pd.testing.assert_frame_equal(plain[0], tracked[0])
    assert plain[1] == tracked[1]
    assert {k: v for k, v in plain[2].items() if k != "state_dict"} == {
        k: v for k, v in tracked[2].items() if k != "state_dict"
    }
    assert plain[2]["state_dict"].keys() == tracked[2]["state_dict"].keys()
    for name, tensor in plain[2]["state_dict"].items():
        assert torch.equal(tensor, tracked[2]["state_dict"][name]), name
    listing = {p.name for p in (tmp_path / "tracked").iterdir()}
    assert listing - {p.name for p in (tmp_path / "plain").iterdir()} == {"tensorboard"}


def test_unreachable_server_refuses_before_training(tmp_path, monkeypatch):
    from mlflow_server import free_port

    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(UserError) as e, tracking("mlflow"):
        pytest.fail("the block must not run")
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"MLFLOW_TRACKING_URI {uri}: no MLflow server answers")
    assert current().backends == []


@pytest.mark.parametrize(
    ("track", "module"), [("mlflow", "mlflow"), ("tensorboard", "torch.utils.tensorboard")]
)
def test_extra_not_installed_is_one_line(track, module, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with (
        pytest.raises(
            UserError,
            match=rf"^--track {track}: the {track.split('.')[0]} package is not installed; pip install 'mammo\[track\]'$",
        ),
        tracking(track),
    ):
        pytest.fail("the block must not run")


class _Failing:
    """A backend whose every call after start raises, as a server that went away mid-run."""

    name = "flaky"

    def start(self, *args):
        """Opens fine."""

    def __getattr__(self, method):
        def fail(*args):
            raise ConnectionError("server went away")

        return fail


def test_a_backend_failing_mid_run_is_dropped_and_training_goes_on(tmp_path, tiny_registry, caplog):
    from mammo.track import hooks

    prep = synthetic_prep(tmp_path / "prep")
    tracker = Tracker([_Failing()])
    token = hooks._CURRENT.set(tracker)
    try:
        result = train(prep, tmp_path / "run", overrides=FLAGS)
    finally:
        hooks._CURRENT.reset(token)
    assert result.epochs_run == 3 and (tmp_path / "run" / "best.pt").is_file()
    assert tracker.backends == []
    assert (
        "tracking: flaky failed (ConnectionError: server went away); the run goes on without it"
        in caplog.text
    )


def test_cli_track_bogus_is_one_line_and_trains_nothing(tmp_path, capsys):
    from mammo.cli.main import main

    prep = make_prep(tmp_path / "prep", n_train=4, n_val=2, n_test=0)
    code = main(["train", str(prep), "--out", str(tmp_path / "run"), "--track", "bogus"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err == (
        "mammo train: error: --track bogus: unknown tracker; choose from mlflow, tensorboard (comma-separated)"
    )
    assert not (tmp_path / "run").exists()


def test_cli_unreachable_server_is_one_line_and_trains_nothing(tmp_path, capsys, monkeypatch):
    from mlflow_server import free_port

    from mammo.cli.main import main

    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    prep = make_prep(tmp_path / "prep", n_train=4, n_val=2, n_test=0)
    code = main(["cv", str(prep), "--out", str(tmp_path / "cv"), "--track", "mlflow"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1
    assert err.startswith(f"mammo cv: error: MLFLOW_TRACKING_URI {uri}: no MLflow server answers")
    assert not (tmp_path / "cv").exists()


def _fake_run(
    run: Path, prep: Path | None, model: str, val_aucs: list[float], evals: dict[str, dict]
) -> None:
    """A RUN folder as train and evaluate leave it, without training: config.yaml, metrics.csv, eval/*/metrics.json."""
    run.mkdir(parents=True)
    config = {"model": model, "size": 64, "width": None, "prep": str(prep) if prep else None}
    (run / "config.yaml").write_text(
        "\n".join(f"{k}: {'null' if v is None else v}" for k, v in config.items())
    )
    pd.DataFrame({"epoch": range(1, len(val_aucs) + 1), "val_auc": val_aucs}).to_csv(
        run / "metrics.csv", index=False
    )
    for split, block in evals.items():
        (run / "eval" / split).mkdir(parents=True)
        (run / "eval" / split / "metrics.json").write_text(json.dumps(block))


def test_runs_table_lists_sorts_and_reports_a_broken_run(tmp_path, caplog):
    from mammo.track.runs import runs_table

    prep = synthetic_prep(tmp_path / "prep", n_train=2, n_val=2, n_test=2)
    runs = tmp_path / "runs"
    age = {"age": {"auc": 0.61, "auc_ci_low": 0.5, "auc_ci_high": 0.7}}
    _fake_run(
        runs / "a",
        prep,
        "efficientnet-lite0",
        [0.6, 0.7],
        {
            "val": {"auc": 0.71, "auc_ci_low": 0.6, "auc_ci_high": 0.8},
            "test": {"auc": 0.65, "auc_ci_low": 0.55, "auc_ci_high": 0.75, "baselines": age},
        },
    )
    _fake_run(runs / "cv" / "fold-0" / "run", None, "seed-basic", [0.8, 0.75], {})
    (runs / "broken").mkdir()
    (runs / "broken" / "config.yaml").write_text("model: [unclosed")
    (runs / "broken" / "metrics.csv").write_text("epoch\n1\n")
    table = runs_table(runs, sort="val_auc")
    assert table.rows["run"].tolist() == [os.path.join("cv", "fold-0", "run"), "a"]
    a = table.rows.set_index("run").loc["a"]
    assert a["val_auc_ci_low"] == 0.6 and a["test_auc"] == 0.65 and a["baseline_age_auc"] == 0.61
    assert a["data"] == "synthetic prep" and a["size"] == "64" and a["epochs"] == 2
    text = table.summary()
    assert "0.710 [0.600-0.800]" in text and "0.650 [0.550-0.750]" in text and "test: age 0.610" in text
    assert "0.800" in text  # the fold run's best epoch, without an interval (never evaluated on val)
    assert "broken: left out, its files cannot be read" in caplog.text
    csv = pd.read_csv(io.StringIO(table.to_csv()))
    assert list(csv["run"]) == list(table.rows["run"])
    assert runs_table(runs, sort="test_auc").rows["run"].iloc[0] == "a"
    with pytest.raises(UserError, match="no RUN folders"):
        runs_table(tmp_path / "prep")
