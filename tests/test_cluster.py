"""prepare and predict on a real Dask cluster on loopback: the same files and probabilities as a local run, faults.

The cluster is `dask scheduler` and two `dask worker` processes started here on 127.0.0.1 (workers without
a nanny, so that a SIGKILL really loses one), or a LocalCluster. The workers preload tests/cluster_worker.py:
each image takes 0.1 s longer, and a file named *crash* kills its worker. Every process started here is
stopped by its process group at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from catalogue import files, run
from conftest import write_seed_run

from mammo.cli import main
from mammo.data.manifest import MANIFEST_COLUMNS, write_manifest
from mammo.errors import UserError
from mammo.io import cluster
from mammo.io.images import write_png16
from mammo.predict.files import predict
from mammo.predict.onnx import export_run
from mammo.prep.run import prepare

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

SRC = Path(__file__).resolve().parents[1] / "src"
PRELOAD = Path(__file__).resolve().parent / "cluster_worker.py"
ENV = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
N_IMAGES = 24
START_SECONDS = 60  # generous: two cores shared with other work
# Loopback only. Should this test process die before stopping them, the scheduler ends when idle for 2
# minutes and the workers 30 s after losing it.
SCHEDULER_ARGS = ["--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--idle-timeout", "120"]
WORKER_ARGS = [
    "--host",
    "127.0.0.1",
    "--nthreads",
    "1",
    "--no-nanny",
    "--no-dashboard",
    "--death-timeout",
    "30",
]


def breast(seed: int) -> np.ndarray:
    """A small 16-bit breast: a bright half-ellipse on the left over noise, a different texture per seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:200, 0:140]
    img = rng.integers(0, 300, (200, 140)).astype(np.uint16)
    inside = (xx / 90) ** 2 + ((yy - 100) / 80) ** 2 <= 1
    img[inside] = rng.integers(15000, 40000, int(inside.sum())).astype(np.uint16)
    return img


def make_data(root: Path, crash: bool = False) -> Path:
    """DATA/ of N_IMAGES PNGs of N_IMAGES // 2 women, one path no worker can read, (crash) one decoder crash."""
    src = root / "src"
    src.mkdir(parents=True)
    rows = []
    names = [f"img{i:02d}" for i in range(N_IMAGES)] + ["missing"] + (["crash"] if crash else [])
    for i, name in enumerate(names):
        path = src / f"{name}.png"
        if name != "missing":
            cv2.imwrite(str(path), breast(i))
        rows.append(
            {
                "patient_id": f"P{i // 2}",
                "image_id": name,
                "abnormality_type": "mass",
                "split": "train" if i % 3 else "test",
                "side": "LEFT",
                "view": "CC",
                "abnormality_id": "1",
                "pathology": "MALIGNANT" if i % 2 else "BENIGN",
                "label": i % 2,
                "image_path": str(path),
                "mask_path": "",
                "crop_path": "",
            }
        )
    write_manifest(pd.DataFrame(rows)[MANIFEST_COLUMNS], root / "DATA")
    return root / "DATA"


def outputs(prep: Path) -> dict[str, bytes]:
    """What must not depend on where the images were processed: the PNGs, dataset.csv, rejected.csv."""
    got = files(prep)
    return {k: v for k, v in got.items() if k.startswith("images/") or k in ("dataset.csv", "rejected.csv")}


def _start(argv: list[str]) -> subprocess.Popen:
    """A process in its own group (stopped by its group id), quiet."""
    return subprocess.Popen(
        argv, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


class Cluster:
    """`dask scheduler` + `dask worker`s on 127.0.0.1; `address`, `workers` (their processes), `client()`."""

    def __init__(self, root: Path, n_workers: int = 2) -> None:
        self.procs: list[subprocess.Popen] = []
        scheduler_file = root / "scheduler.json"
        dask = [sys.executable, "-m", "dask"]
        self.procs.append(
            _start([*dask, "scheduler", *SCHEDULER_ARGS, "--scheduler-file", str(scheduler_file)])
        )
        deadline = time.monotonic() + START_SECONDS
        while not scheduler_file.is_file():
            assert time.monotonic() < deadline, "the dask scheduler did not start"
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written whole, but give it a moment
        self.address = json.loads(scheduler_file.read_text())["address"]
        self.workers = [
            _start(
                [*dask, "worker", self.address, *WORKER_ARGS, "--name", f"w{i}", "--preload", str(PRELOAD)]
            )
            for i in range(n_workers)
        ]
        self.procs += self.workers
        with distributed.Client(self.address, timeout=START_SECONDS) as client:
            client.wait_for_workers(n_workers, timeout=START_SECONDS)

    def stop(self) -> None:
        _stop(self.procs)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory) -> Iterator[Cluster]:
    started = Cluster(tmp_path_factory.mktemp("scheduler"))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """DATA and the outputs of a local prepare of it (in this process)."""
    root = tmp_path_factory.mktemp("cluster-data")
    data = make_data(root)
    prepare(data, root / "local", size=64, workers=0)
    return data, outputs(root / "local")


def test_prepare_on_scheduler_and_workers_gives_the_local_files(tmp_path, scheduler, data):
    data_dir, want = data
    result = prepare(data_dir, tmp_path / "PREP", size=64, cluster=scheduler.address)
    got = outputs(tmp_path / "PREP")
    assert sorted(got) == sorted(want) and [k for k in want if got[k] != want[k]] == []
    assert result.n_made == N_IMAGES
    # the worker could not read one path: that image alone is rejected, with the reason
    rejected = pd.read_csv(tmp_path / "PREP" / "rejected.csv")
    assert len(rejected) == 1 and rejected["path_or_row"][0].endswith("missing.png")
    assert "not found" in rejected["reason"][0] or "No such file" in rejected["reason"][0]
    assert json.loads((tmp_path / "PREP" / "prepare.json").read_text())["cluster"] == scheduler.address


def test_prepare_on_a_local_cluster_gives_the_local_files(tmp_path, data):
    data_dir, want = data
    prepare(data_dir, tmp_path / "PREP", size=64, cluster="local:2")
    got = outputs(tmp_path / "PREP")
    assert sorted(got) == sorted(want) and [k for k in want if got[k] != want[k]] == []


def test_tasks_hold_a_few_images_and_results_come_back_in_input_order(scheduler):
    with cluster.connect(scheduler.address) as client:
        got = list(cluster.cluster_map(client, pow, list(range(50)), lambda x, why: None, shared=(2,)))
        assert got == [x**2 for x in range(50)]
    assert cluster.chunk_size(10_000, 2) == cluster.ITEMS_PER_TASK
    assert cluster.chunk_size(10, 2) == 2


def test_unreachable_scheduler_is_one_line_and_writes_nothing(tmp_path, data):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match=r"no Dask scheduler answered within \d+ s") as err:
        prepare(data[0], tmp_path / "PREP", size=64, cluster=f"tcp://127.0.0.1:{port}")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "PREP").exists()


def test_without_dask_cluster_names_the_extra(tmp_path, data, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    with pytest.raises(UserError, match=r"pip install 'mammo\[cluster\]'"):
        prepare(data[0], tmp_path / "PREP", size=64, cluster="local:2")
    with pytest.raises(UserError, match="local:N"):
        cluster.check_cluster("local:zero")


def _progress(prep: Path) -> list[str]:
    """Sample ids of the progress log, one per finished sample (parameters line left out)."""
    path = prep / ".progress.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return [json.loads(x)["sample_id"] for x in lines if '"sample_id"' in x]


def _wait_for_progress(prep: Path, n: int, busy: threading.Thread | subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while len(_progress(prep)) < n:
        alive = busy.is_alive() if isinstance(busy, threading.Thread) else busy.poll() is None
        assert alive and time.monotonic() < deadline, "the run ended before it could be interrupted"
        time.sleep(0.02)


@pytest.mark.slow
def test_a_worker_sigkilled_mid_run_loses_and_doubles_nothing(tmp_path, data):
    data_dir, want = data
    started = Cluster(tmp_path, n_workers=2)
    try:
        out = tmp_path / "PREP"
        run = threading.Thread(
            target=prepare, args=(data_dir, out), kwargs={"size": 64, "cluster": started.address}
        )
        run.start()
        _wait_for_progress(out, 3, run)
        os.killpg(started.workers[0].pid, signal.SIGKILL)
        run.join(timeout=300)
        assert not run.is_alive()
    finally:
        started.stop()
    got = outputs(out)
    assert sorted(got) == sorted(want) and [k for k in want if got[k] != want[k]] == []
    logged = _progress(out)
    assert sorted(logged) == sorted(set(logged)) and len(logged) == N_IMAGES + 1  # each image once


@pytest.mark.slow
def test_client_killed_mid_run_then_rerun_redoes_only_the_rest(tmp_path, scheduler, data):
    data_dir, want = data
    out = tmp_path / "PREP"
    code = (
        "from mammo.prep.run import prepare\n"
        f"prepare({str(data_dir)!r}, {str(out)!r}, size=64, cluster={scheduler.address!r})\n"
    )
    client = _start([sys.executable, "-c", code])
    _wait_for_progress(out, 4, client)
    os.killpg(client.pid, signal.SIGKILL)
    client.wait(timeout=30)
    done = {s for s in _progress(out) if (out / "images" / f"{s}.png").is_file()}
    assert 4 <= len(done) < N_IMAGES + 1
    result = prepare(data_dir, out, size=64, cluster=scheduler.address)
    made = set(_progress(out)) - done - {"missing"}  # the unreadable path is retried: it was never made
    assert result.n_made == len(made) == N_IMAGES - len(done)
    got = outputs(out)
    assert sorted(got) == sorted(want) and [k for k in want if got[k] != want[k]] == []


@pytest.mark.slow
def test_an_image_crashing_its_decoder_fails_alone(tmp_path, data):
    want = data[1]
    crash_data = make_data(tmp_path / "crash", crash=True)
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            preload=[str(PRELOAD)],
        ) as local,
    ):
        prepare(crash_data, tmp_path / "PREP", size=64, cluster=local.scheduler_address)
    rejected = pd.read_csv(tmp_path / "PREP" / "rejected.csv")
    assert sorted(Path(p).name for p in rejected["path_or_row"]) == ["crash.png", "missing.png"]
    assert rejected["reason"][rejected["path_or_row"].str.endswith("crash.png")].iloc[0] == cluster.LOST
    got = outputs(tmp_path / "PREP")
    for name, blob in want.items():  # every other image as in a local run
        if name.startswith("images/"):
            assert got[name] == blob


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A seed-basic whole-image run at 32 px, exported to ONNX."""
    root = tmp_path_factory.mktemp("model")
    write_seed_run(root / "run", None, 32, 0.3, 0.2, 0, prepare={"size": 64}, threshold=0.4, temperature=1.5)
    return export_run(root / "run", root / "model.onnx")[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Twelve mammogram PNGs and a file that is not an image."""
    folder = tmp_path_factory.mktemp("predict-images")
    for i in range(12):
        write_png16(breast(i), folder / f"{i:02d}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


@pytest.mark.parametrize("where", ["scheduler", "local:2"])
def test_predict_on_a_cluster_gives_the_local_probabilities(tmp_path, scheduler, model, images, where):
    address = scheduler.address if where == "scheduler" else where
    local = predict(model, [images], workers=0)
    remote = predict(model, [images], cluster=address, out=tmp_path / "p.csv")
    assert remote.n_scored == local.n_scored == 12 and remote.n_failed == local.n_failed == 1
    assert list(remote.rows["path"]) == list(local.rows["path"])
    assert list(remote.rows["error"]) == list(local.rows["error"])
    np.testing.assert_allclose(
        remote.rows["probability_malignant"], local.rows["probability_malignant"], atol=1e-6
    )
    assert pd.read_csv(tmp_path / "p.csv")["path"].tolist() == list(local.rows["path"])
    if where == "scheduler":  # the model was built once in each worker, and kept
        with distributed.Client(scheduler.address) as client:
            loaded = client.run(lambda: len(sys.modules["mammo.predict.cluster"].MODELS))
        assert set(loaded.values()) <= {0, 1} and 1 in loaded.values()


def test_cli_prepare_and_predict_take_a_cluster(tmp_path, scheduler, data, model, images, capsys):
    data_dir, want = data
    argv = ["prepare", data_dir, "--out", tmp_path / "PREP", "--size", "64", "--cluster", scheduler.address]
    assert main([str(a) for a in argv]) == 0
    got = outputs(tmp_path / "PREP")
    assert [k for k in want if got.get(k) != want[k]] == []
    argv = ["predict", model, images, "--out", tmp_path / "p.csv", "--cluster", scheduler.address]
    assert main([str(a) for a in argv]) == 0
    assert pd.read_csv(tmp_path / "p.csv")["probability_malignant"].notna().sum() == 12


def test_cli_without_the_extra_says_which_to_install(tmp_path, data, model, images, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    for argv in (
        ["prepare", data[0], "--out", tmp_path / "PREP", "--cluster", "local:2"],
        ["predict", model, images, "--cluster", "tcp://127.0.0.1:8786"],
    ):
        outcome = run(argv, capsys)
        assert outcome.code != 0 and outcome.errors == [f"mammo {argv[0]}: error: {cluster.EXTRA}"]
    assert not (tmp_path / "PREP").exists()
