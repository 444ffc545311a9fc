"""A throwaway Orthanc PACS for tests and benches: its own loopback ports, storage folder and configuration.

Orthanc (Debian package `orthanc`) is started as a child process and stopped with it; its REST API is used
with urllib only. Tests skip with a reason when the binary is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def orthanc_binary() -> str | None:
    """The Orthanc executable, or None when it is not installed."""
    return shutil.which("Orthanc") or next(
        (p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc") if os.access(p, os.X_OK)), None
    )


@dataclass
class Orthanc:
    """A running Orthanc: its ports, AE title, and a small REST client."""

    http_port: int
    dicom_port: int
    ae_title: str
    process: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dest(self) -> str:
        """HOST:PORT:AET as `mammo listen --dest` takes it."""
        return f"127.0.0.1:{self.dicom_port}:{self.ae_title}"

    def request(self, method: str, path: str, body: bytes | dict | list | None = None, timeout: float = 120):
        """JSON (or bytes, for files) from one REST call."""
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        req = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        if resp.headers.get_content_type() == "application/json":
            return json.loads(raw)
        return raw

    def upload(self, path: Path) -> str:
        """POST a DICOM file to /instances; its Orthanc instance id."""
        return self.request("POST", "/instances", Path(path).read_bytes())["ID"]

    def find(self, **query: str) -> list[dict]:
        """Instances matching a DICOM query (e.g. Modality='SR'), with their main tags."""
        body = {"Level": "Instance", "Query": query, "Expand": True}
        return self.request("POST", "/tools/find", body)

    def file(self, instance_id: str) -> bytes:
        """The stored DICOM file of an instance."""
        return self.request("GET", f"/instances/{instance_id}/file")


@contextmanager
def running_orthanc(
    root: Path, modalities: dict[str, tuple[str, int]], ae_title: str = "ORTHANC"
) -> Iterator[Orthanc]:
    """Start Orthanc with storage under `root` and `modalities` {name: (AET, port)} on 127.0.0.1; stop it after."""
    binary = orthanc_binary()
    if binary is None:
        raise FileNotFoundError("Orthanc is not installed (apt-get install orthanc)")
    root.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "mammo-test",
        "StorageDirectory": str(root / "db"),
        "IndexDirectory": str(root / "db"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ae_title,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpTimeout": 120,
        "DicomScuTimeout": 60,
        "DicomScpTimeout": 60,
        "DicomCheckCalledAet": False,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowEcho": True,
        "DicomModalities": {name: [aet, "127.0.0.1", port] for name, (aet, port) in modalities.items()},
        "Plugins": [],
        "SaveJobs": False,
        "StorageCompression": False,
        "MaximumStorageCacheSize": 0,
    }
    (root / "orthanc.json").write_text(json.dumps(config, indent=2))
    log = root / "orthanc.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([binary, str(root / "orthanc.json")], stdout=fh, stderr=subprocess.STDOUT)
    server = Orthanc(http_port, dicom_port, ae_title, proc, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                server.request("GET", "/system", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Orthanc did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
