"""`mammo listen` as a child process: SIGTERM after traffic exits about as fast as idle; SIGKILL mid-receive loses
nothing acknowledged and half-spools nothing. The destination is test_pacs's in-process pynetdicom PACS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pydicom
from dicom_results import mg_file, sr_result
from orthanc import free_port
from test_pacs import Pacs, pacs, run  # noqa: F401  (fixtures)
from test_predict import mammogram

import mammo
from mammo.pacs.node import Destination, echo

SRC = Path(mammo.__file__).resolve().parents[1]


def start_node(run_dir: Path, spool: Path, dest: str, log: Path) -> tuple[subprocess.Popen, int]:
    """`python -m mammo listen` in a child process, once it answers C-ECHO; (the process, its port)."""
    port = free_port()
    command = [sys.executable, "-m", "mammo", "listen", str(run_dir), "--port", str(port)]
    with open(log, "a") as fh:
        proc = subprocess.Popen(
            [*command, "--spool", str(spool), "--dest", dest, "--device", "cpu"],
            env=dict(os.environ, PYTHONPATH=str(SRC)),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 180
    while echo(Destination("127.0.0.1", port, "MAMMO"), "ORTHANC"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the node did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    return proc, port


def seconds_to_exit(proc: subprocess.Popen) -> float:
    """SIGTERM the node; the seconds until it is gone (its exit code must be 0)."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 0
    return time.monotonic() - t0


def sender(port: int, paths: list[Path], statuses: dict[str, int]) -> None:
    """One association: C-STORE each file in turn, its status by SOP Instance UID (-1: the node died)."""
    from pydicom.uid import ExplicitVRLittleEndian
    from pynetdicom import AE
    from pynetdicom.sop_class import SecondaryCaptureImageStorage

    ae = AE(ae_title="ORTHANC")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="MAMMO")
    assert assoc.is_established
    for path in paths:
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        try:
            status = assoc.send_c_store(path) if assoc.is_established else None
        except Exception:  # the association died with the node
            status = None
        statuses[uid] = int(status.Status) if status and "Status" in status else -1
    if assoc.is_established:
        assoc.release()


def images(folder: Path, n: int) -> list[Path]:
    return [mg_file(folder / f"{i:03d}.dcm", mammogram("LEFT" if i % 2 else "RIGHT", i)) for i in range(n)]


def test_sigterm_after_traffic_exits_about_as_fast_as_idle(run, pacs, tmp_path):  # noqa: F811
    """A node that scored images once took 24 s to exit (collecting the objects scoring had imported), 2 s idle.

    No tight time: the bound is generous (10 s, or twice the idle exit on a machine so busy that idle takes
    longer) and it is measured against an idle node on the same machine in the same test."""
    log = tmp_path / "node.log"
    idle, _ = start_node(run, tmp_path / "idle", pacs.dest, log)
    idle_seconds = seconds_to_exit(idle)
    node, port = start_node(run, tmp_path / "busy", pacs.dest, log)
    statuses: dict[str, int] = {}
    sender(port, images(tmp_path / "in", 3), statuses)
    pacs.wait_for(9)
    busy_seconds = seconds_to_exit(node)
    assert list(statuses.values()) == [0, 0, 0] and len(pacs.received) == 9
    assert "stopped: received 3, refused 0, scored 3" in log.read_text()
    print(f"exit after SIGTERM: idle {idle_seconds:.2f} s, after traffic {busy_seconds:.2f} s")
    assert busy_seconds < max(10.0, 2 * idle_seconds), (busy_seconds, idle_seconds)


def test_sigkill_mid_receive_keeps_every_acknowledged_image_and_half_spools_none(run, pacs, tmp_path):  # noqa: F811
    """SIGKILL while an association is still sending, restart on the same spool: every acknowledged image gets
    exactly one SR; an image that was not acknowledged was either spooled whole (and scored once) or not at all."""
    paths = images(tmp_path / "in", 40)
    spool, log = tmp_path / "spool", tmp_path / "node.log"
    node, port = start_node(run, spool, pacs.dest, log)
    statuses: dict[str, int] = {}
    stream = threading.Thread(target=sender, args=(port, paths, statuses))
    stream.start()
    deadline = time.monotonic() + 120
    while sum(s == 0 for s in statuses.values()) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    node.send_signal(signal.SIGKILL)
    node.wait(60)
    stream.join(120)
    acked = {uid for uid, s in statuses.items() if s == 0}
    assert 5 <= len(acked) < len(paths), (
        f"the kill was not mid-receive: {len(acked)} of {len(paths)} acknowledged"
    )

    node, _ = start_node(run, spool, pacs.dest, log)
    deadline = time.monotonic() + 180
    while not acked <= _sr_sources(pacs) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert seconds_to_exit(node) < 120

    srs = [sr_result(ds)[3] for ds in pacs.received.values() if ds.Modality == "SR"]
    assert all(srs.count(uid) == 1 for uid in acked), "an acknowledged image without exactly one SR"
    assert len(srs) == len(set(srs)), "an image with two SRs"
    done = {p.stem for p in (spool / "done").glob("*.json")}
    assert done == set(srs) and acked <= done  # what was scored is what the PACS holds
    left = [p.name for folder in ("instances", "outbox", "done") for p in (spool / folder).iterdir()]
    assert not [name for name in left if name.startswith(".")], f"half-written files left: {left}"
    assert not list((spool / "instances").iterdir())  # every whole spooled image was scored after the restart


def _sr_sources(server: Pacs) -> set[str]:
    """The source UIDs the PACS holds an SR for."""
    return {sr_result(ds)[3] for ds in list(server.received.values()) if ds.Modality == "SR"}
