"""`mammo listen` under load and faults, against a real Orthanc, written to bench/results/dicom_node.json.

1. Load: 4 concurrent associations send 200 synthetic MG DICOMs (plus one corrupt instance in one stream) to the
   node, whose results go to Orthanc. Recorded: each image scored exactly once (node log and done-markers), one SR
   per image in Orthanc, images per second (first send to last result in Orthanc), the node's peak memory
   (VmHWM), and the corrupt instance's status (the others go on).
2. Kill: 2 associations send 100 more; the node is SIGKILLed mid-receive (30 acknowledged, both associations
   still sending) and restarted on the same spool. Recorded: how many were acknowledged before the kill and how
   many were still unanswered, that every acknowledged image ends with exactly one SR in Orthanc (none lost,
   none duplicated), half-written instances at the kill and after the restart (none: the restart clears them),
   unacknowledged images that were spooled whole (scored once, harmless), and how many were scored again.

Needs Orthanc (apt-get install orthanc). The model is a tiny seed-basic run (32 px, random weights): this
measures the node, not the network.
    python bench/bench_dicom_node.py       (about 5 minutes on 2 busy cores)
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pydicom

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
OUT = ROOT / "bench" / "results" / "dicom_node.json"

from conftest import write_seed_run  # noqa: E402
from dicom_results import corrupt_rle, mg_file, sr_result  # noqa: E402
from machine import Machine  # noqa: E402
from orthanc import free_port, running_orthanc  # noqa: E402

from mammo.data.phantom import LesionSpec, render  # noqa: E402
from mammo.pacs.node import Destination, echo  # noqa: E402

SHAPE = (300, 200)
BATCH = 8


def make_images(folder: Path, n: int, seed: int) -> list[Path]:
    """n small synthetic mammograms, four views per study."""
    rng = np.random.default_rng(seed)
    paths, study = [], ""
    for i in range(n):
        if i % 4 == 0:
            study = pydicom.uid.generate_uid()
        side = "LEFT" if i % 2 else "RIGHT"
        img = render(
            SHAPE, side, "CC", 2, [LesionSpec("mass", bool(i % 3), int(rng.integers(1e9)))], rng
        ).image
        paths.append(mg_file(folder / f"{seed}_{i:03d}.dcm", img, study=study, PatientID=f"B{seed}_{i // 4}"))
    return paths


def sop_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def sender(
    port: int, paths: list[Path], statuses: dict[str, int], stop: threading.Event | None = None
) -> None:
    """One association: C-STORE each file, record its status (-1: no answer, the node died)."""
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless
    from pynetdicom import AE
    from pynetdicom.sop_class import SecondaryCaptureImageStorage

    ae = AE(ae_title="ORTHANC")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    for syntax in (ExplicitVRLittleEndian, RLELossless):
        ae.add_requested_context(SecondaryCaptureImageStorage, syntax)
    assoc = ae.associate("127.0.0.1", port, ae_title="MAMMO")
    if not assoc.is_established:
        for p in paths:
            statuses[sop_uid(p)] = -1
        return
    try:
        for p in paths:
            uid = sop_uid(p)
            try:
                status = assoc.send_c_store(p) if assoc.is_established else None
            except Exception:  # the association died with the node
                status = None
            statuses[uid] = int(status.Status) if status and "Status" in status else -1
    finally:
        if assoc.is_established:
            assoc.release()


def start_node(run: Path, port: int, spool: Path, dest: str, log: Path) -> subprocess.Popen:
    """`python -m mammo listen` in a child process; returns once it answers C-ECHO."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    command = [sys.executable, "-m", "mammo", "listen", str(run), "--port", str(port), "--spool", str(spool)]
    command += ["--dest", dest, "--device", "cpu", "--batch-size", str(BATCH)]
    with open(log, "a") as fh:
        proc = subprocess.Popen(command, env=env, stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while echo(Destination("127.0.0.1", port, "MAMMO"), "ORTHANC"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the node did not start: {log.read_text()[-2000:]}")
        time.sleep(0.5)
    return proc


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident memory) of a live process, in MiB."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024


def scored_lines(log: Path) -> list[str]:
    """Source UIDs of the node's 'p(cancer)' lines, one per scoring."""
    return re.findall(r"\d\d:\d\d:\d\d (\S+) from \S+: p\(cancer\)", log.read_text())


def sr_sources(pacs, wanted: set[str], timeout: float) -> dict[str, int]:
    """SR count per referenced source in Orthanc, polled until every wanted source has one (or timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        found = pacs.find(Modality="SR")
        if len(found) >= len(wanted) or time.monotonic() > deadline:
            break
        time.sleep(1)
    counts: dict[str, int] = {}
    for item in found:
        ref = sr_result(pydicom.dcmread(io.BytesIO(pacs.file(item["ID"]))))[3]
        counts[ref] = counts.get(ref, 0) + 1
    return counts


def wait_for_sr_count(pacs, n: int, timeout: float) -> float:
    """Poll Orthanc until it holds n SRs; the time it happened."""
    deadline = time.monotonic() + timeout
    while len(pacs.find(Modality="SR")) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"Orthanc did not get {n} SRs in {timeout} s")
        time.sleep(0.5)
    return time.monotonic()


def load_phase(run: Path, work: Path, pacs, node_port: int) -> dict:
    images = make_images(work / "load", 200, seed=1)
    bad = corrupt_rle(images[0], work / "corrupt.dcm")
    streams = [images[i::4] for i in range(4)]
    streams[0] = [*streams[0][:25], bad, *streams[0][25:]]
    log = work / "node_load.log"
    node = start_node(run, node_port, work / "spool_load", pacs.dest, log)
    statuses: dict[str, int] = {}
    t0 = time.monotonic()
    threads = [threading.Thread(target=sender, args=(node_port, s, statuses)) for s in streams]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acked = time.monotonic()
    done = wait_for_sr_count(pacs, 200, 900)
    peak = peak_rss_mb(node.pid)
    node.send_signal(signal.SIGTERM)
    code = node.wait(120)
    uids = {sop_uid(p) for p in images}
    lines = scored_lines(log)
    per_source = sr_sources(pacs, uids, 60)
    spool_done = len(list((work / "spool_load" / "done").glob("*.json")))
    return {
        "images": len(images),
        "associations": 4,
        "corrupt_instance_status": hex(statuses[sop_uid(bad)]),
        "acknowledged": sum(statuses[u] == 0 for u in uids),
        "scored_exactly_once": sorted(lines) == sorted(uids),
        "scorings_in_log": len(lines),
        "done_markers": spool_done,
        "sources_with_exactly_one_sr_in_orthanc": sum(per_source.get(u, 0) == 1 for u in uids),
        "heatmaps_in_orthanc": len(pacs.find(SeriesDescription="mammo heatmap*")),
        "seconds_to_acknowledge_all": round(acked - t0, 2),
        "seconds_to_last_result_in_orthanc": round(done - t0, 2),
        "images_per_second": round(len(images) / (done - t0), 2),
        "node_peak_rss_mib": round(peak, 1),
        "node_exit_code_after_sigterm": code,
    }


def kill_phase(run: Path, work: Path, pacs, node_port: int, before: int) -> dict:
    images = make_images(work / "kill", 100, seed=2)
    spool, log = work / "spool_kill", work / "node_kill.log"
    node = start_node(run, node_port, spool, pacs.dest, log)
    statuses: dict[str, int] = {}
    threads = [threading.Thread(target=sender, args=(node_port, images[i::2], statuses)) for i in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 300
    while sum(s == 0 for s in statuses.values()) < 30 and time.monotonic() < deadline:
        time.sleep(0.01)  # killed mid-receive: both associations are still sending
    scored_before_kill = len(scored_lines(log))
    answered_at_kill = len(statuses)
    node.send_signal(signal.SIGKILL)
    node.wait()
    for t in threads:
        t.join()
    uids = {sop_uid(p) for p in images}
    acked = {u for u in uids if statuses.get(u) == 0}
    in_spool = len(list((spool / "instances").glob("*.dcm")))
    half_written = len(list((spool / "instances").glob(".*")))
    node = start_node(run, node_port, spool, pacs.dest, log)
    wait_for_sr_count(pacs, before + len(acked), 600)
    time.sleep(2)
    node.send_signal(signal.SIGTERM)
    code = node.wait(120)
    per_source = sr_sources(pacs, acked, 60)
    lines = scored_lines(log)
    scored_uids = {p.stem for p in (spool / "done").glob("*.json")}
    return {
        "images_sent": len(images),
        "associations": 2,
        "killed_mid_receive (images not yet answered when killed)": len(images) - answered_at_kill,
        "acknowledged_before_kill": len(acked),
        "half_written_instances_at_kill": half_written,
        "half_written_instances_after_restart": len(list((spool / "instances").glob(".*"))),
        "unacknowledged_but_spooled_whole_and_scored": len(scored_uids - acked),
        "not_acknowledged (sender saw the node die)": len(uids - acked),
        "scored_before_kill": scored_before_kill,
        "instances_left_in_spool_at_kill": in_spool,
        "acknowledged_with_exactly_one_sr_in_orthanc": sum(per_source.get(u, 0) == 1 for u in acked),
        "acknowledged_without_sr": sum(per_source.get(u, 0) == 0 for u in acked),
        "sr_duplicates": sum(max(0, c - 1) for c in per_source.values()),
        "scored_again_after_restart (killed between scoring and its done-marker)": len(lines)
        - len(set(lines)),
        "node_exit_code_after_sigterm": code,
    }


def main() -> None:
    machine = Machine.start()
    with tempfile.TemporaryDirectory(prefix="mammo-node-bench-") as tmp:
        work = Path(tmp)
        run = work / "run"
        write_seed_run(run, None, 32, 0.3, 0.2, prepare={"size": 64}, threshold=0.4, temperature=1.5)
        node_port = free_port()
        with running_orthanc(work / "orthanc", {"mammo": ("MAMMO", node_port)}) as pacs:
            load = load_phase(run, work, pacs, node_port)
            print(json.dumps(load, indent=2), flush=True)
            kill = kill_phase(run, work, pacs, node_port, before=len(pacs.find(Modality="SR")))
            print(json.dumps(kill, indent=2), flush=True)
    result = {
        "machine": machine.finish(),
        "setup": {
            "node": f"mammo listen --batch-size {BATCH} --device cpu",
            "model": "seed-basic, 32 px input, random weights (measures the node, not the network)",
            "images": f"synthetic MG, {SHAPE[0]} x {SHAPE[1]} uint16, explicit VR little endian",
            "destination": "Orthanc (Debian package), loopback",
        },
        "load": load,
        "kill": kill,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
