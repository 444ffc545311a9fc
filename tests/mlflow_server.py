"""A throwaway MLflow tracking server for tests and benches: loopback only, a SQLite store, a temporary artifact root.

`mlflow server` is started in its own process group (its uvicorn workers outlive a killed parent otherwise) and
stopped by signalling that group; the start is bounded in time. Tests skip with a reason when mlflow is absent.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

START_SECONDS = 300.0  # about 13 s on an idle machine; minutes when 2 cores are shared by many jobs


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(url: str) -> bool:
    """Whether the server at `url` answers /health."""
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the process group, then SIGKILL what is left after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def mlflow_server(root: Path, timeout: float = START_SECONDS) -> Iterator[str]:
    """Run `mlflow server` on 127.0.0.1 with its store and artifacts under `root`; yield its URL."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("wb")
    command = [
        *(sys.executable, "-m", "mlflow", "server"),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        *("--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"),
        *("--artifacts-destination", str(root / "artifacts")),
    ]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}  # loopback only: nothing to send anywhere
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=root, env=env
    )
    try:
        deadline = time.monotonic() + timeout
        while not healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not start in {timeout:.0f} s; see {root / 'server.log'}"
                )
            time.sleep(0.5)
        yield url
    finally:
        stop_group(process)
        log.close()
