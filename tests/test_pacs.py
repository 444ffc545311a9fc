"""DICOM results (SR + heatmap SC), `mammo predict --dicom-out`, and `mammo listen` against an in-process PACS.

The Orthanc round trip lives in test_pacs_orthanc.py (slow); here a pynetdicom Storage SCP plays the PACS.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from dicom_results import corrupt_rle, mg_file, sr_provenance, sr_result
from orthanc import free_port
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless, generate_uid
from test_predict import make_run, mammogram

from mammo import __version__
from mammo.cli import main
from mammo.data.provenance import TRAINED_SYNTHETIC
from mammo.errors import DataError, UserError
from mammo.io.dicom import mg_dataset
from mammo.pacs.node import Destination, Node, listen, send
from mammo.pacs.objects import RunIdentity, derived_uid
from mammo.pacs.score import Scorer, save_objects
from mammo.pacs.spool import Spool


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def scorer(run) -> Scorer:
    return Scorer.load(run, device="cpu")


@pytest.fixture
def source(tmp_path) -> Path:
    return mg_file(tmp_path / "src" / "a.dcm", mammogram(), study="1.2.826.0.1.3680043.8.498.1")


def _objects(scorer: Scorer, path: Path, out: Path) -> dict[str, Path]:
    item = scorer.score([path])[0]
    assert item.score is not None and not item.error, item.error
    written = save_objects(scorer.objects(item), out, item.sop_uid)
    return {p.name.split(".")[-2]: p for p in written}


def test_sr_carries_the_score_in_the_source_study_and_reads_back(scorer, source, tmp_path):
    paths = _objects(scorer, source, tmp_path / "out")
    src = pydicom.dcmread(source, stop_before_pixels=True)
    sr = pydicom.dcmread(paths["sr"])
    prob, threshold, estimate, ref = sr_result(sr)
    expected = scorer.score([source])[0].score
    assert prob == pytest.approx(expected.probability, abs=1e-12) and threshold == pytest.approx(0.4)
    assert estimate == ("Suspicious" if prob >= threshold else "Not suspicious") + " for malignancy"
    assert ref == src.SOPInstanceUID
    assert sr.StudyInstanceUID == src.StudyInstanceUID and sr.SeriesInstanceUID != src.SeriesInstanceUID
    assert (sr.PatientID, str(sr.PatientName), sr.StudyDate) == ("P1", "Doe^Jane", "20260101")
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    texts = {str(e.value) for e in sr.iterall() if e.keyword == "TextValue"}
    assert {"mammo seed-basic", __version__, f"run {scorer.identity.digest}"} <= texts


@pytest.mark.parametrize(
    ("provenance", "training", "mark"),
    [
        ({"synthetic": True, "source": "synthetic CBIS-DDSM download"}, "Synthetic images", True),
        ({"synthetic": False, "source": "CBIS-DDSM download"}, "Images not marked synthetic", False),
        (None, "Not recorded", False),
    ],
)
def test_every_object_names_its_model_run_and_training_data(source, tmp_path, provenance, training, mark):
    from conftest import write_seed_run

    prepare = {"size": 64, **({"provenance": provenance} if provenance else {})}
    write_seed_run(tmp_path / "run", None, 32, 0.3, 0.2, prepare=prepare, threshold=0.0, temperature=1.0)
    scorer = Scorer.load(tmp_path / "run", device="cpu")
    paths = _objects(scorer, source, tmp_path / "out")
    digest = scorer.identity.digest
    said = sr_provenance(pydicom.dcmread(paths["sr"]))
    assert (said["name"], said["version"], said["training"]) == ("mammo seed-basic", __version__, training)
    assert f"run {digest}" in said["parameters"] and "training data: " in said["parameters"]
    # the finding is the model's estimate (threshold 0: always suspicious), never a pathology
    assert "Model estimate" in said["codes"] and "Suspicious for malignancy" in said["codes"]
    assert not {"Pathology", "Malignant", "Benign"} & set(said["codes"].split("; "))
    for kind, path in paths.items():
        header = pydicom.dcmread(path, stop_before_pixels=True)
        description = str(header.SeriesDescription)
        assert description.startswith("mammo ") and f"seed-basic run {digest[:8]}" in description, kind
        assert description.endswith(" synthetic-trained") == mark and len(description) <= 64
        assert __version__ in str(header.SoftwareVersions)
    capture = pydicom.dcmread(paths["heatmap"], stop_before_pixels=True)
    assert "not a diagnosis" in capture.DerivationDescription
    assert f"training data: {scorer.identity.training}" in capture.DerivationDescription


def test_a_long_model_name_is_shortened_before_the_mark():
    identity = RunIdentity("m" * 80, "run", "0123456789abcdef", training=TRAINED_SYNTHETIC)
    text = identity.description("evidence")
    assert len(text) == 64 and text.endswith("m run 01234567 synthetic-trained")
    for name in ("efficientnet-lite0", "densenet121"):  # the registry's names fit whole
        assert f"{name} run" in RunIdentity(name, "run", "0" * 16, training=identity.training).description(
            "evidence"
        )


def test_heatmap_capture_is_an_rgb_picture_on_the_source_grid(scorer, source, tmp_path):
    import highdicom as hd

    paths = _objects(scorer, source, tmp_path / "out")
    sc = pydicom.dcmread(paths["heatmap"])
    src = pydicom.dcmread(source)
    assert (sc.Rows, sc.Columns) == (src.Rows, src.Columns) and sc.SamplesPerPixel == 3
    assert sc.StudyInstanceUID == src.StudyInstanceUID and sc.PatientID == src.PatientID
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    rgb = hd.imread(paths["heatmap"]).get_frame(1) if hasattr(hd, "imread") else sc.pixel_array
    assert rgb.shape == (300, 200, 3)
    spread = rgb.astype(int).max(axis=2) - rgb.astype(int).min(axis=2)
    assert spread.max() > 60  # the heatmap is coloured somewhere ...
    assert np.median(spread) < 10  # ... and most of the picture is the gray mammogram


def test_segmentation_holds_the_heatmap_on_the_source_grid(scorer, source, tmp_path):
    import highdicom as hd

    item = scorer.score([source])[0]
    seg = hd.seg.segread(save_objects(scorer.objects(item), tmp_path, item.sop_uid)[2])
    src = pydicom.dcmread(source, stop_before_pixels=True)
    assert seg.Modality == "SEG" and seg.SegmentationType == "FRACTIONAL"
    assert seg.StudyInstanceUID == src.StudyInstanceUID
    assert (
        seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
        == src.SOPInstanceUID
    )
    fraction = seg.get_pixels_by_source_instance(
        [str(src.SOPInstanceUID)], combine_segments=False, rescale_fractional=True, dtype=np.float32
    ).squeeze()
    assert fraction.shape == (src.Rows, src.Columns)
    assert np.abs(fraction - item.heat / 255.0).max() < 1e-6 and fraction.max() > 0.5


def test_a_rectangular_run_gets_its_heatmap_on_the_source_grid(tiny_registry, source, tmp_path):
    import torch
    from conftest import TinyNet

    from mammo.models.checkpoint import make_checkpoint, save_checkpoint

    torch.manual_seed(0)
    pre = {
        "task": "whole",
        "size": 32,
        "width": 24,
        "mean": 0.3,
        "std": 0.2,
        "prepare": {"task": "whole", "size": 64},
    }
    ckpt = make_checkpoint("tiny", {}, TinyNet().state_dict(), pre, epoch=1, best_val_auc=0.5, config={})
    save_checkpoint(tmp_path / "rect" / "best.pt", ckpt)
    scorer = Scorer.load(tmp_path / "rect", device="cpu")
    assert scorer.run.spec.shape == (32, 24)
    item = scorer.score([source])[0]
    assert item.error == "" and item.heat.shape == item.overlay.shape[:2] == (300, 200)
    assert len(scorer.objects(item)) == 3


def test_uids_depend_only_on_source_and_run(scorer, source, tmp_path, run):
    first = {k: pydicom.dcmread(p) for k, p in _objects(scorer, source, tmp_path / "a").items()}
    again = {k: pydicom.dcmread(p) for k, p in _objects(scorer, source, tmp_path / "b").items()}
    for kind in ("sr", "heatmap", "seg"):
        assert first[kind].SOPInstanceUID == again[kind].SOPInstanceUID
        assert first[kind].SeriesInstanceUID == again[kind].SeriesInstanceUID
    assert first["sr"].SeriesInstanceUID != first["heatmap"].SeriesInstanceUID
    other = mg_file(tmp_path / "b.dcm", mammogram("RIGHT", 1), study="1.2.826.0.1.3680043.8.498.1")
    second = pydicom.dcmread(_objects(scorer, other, tmp_path / "c")["sr"])
    assert second.SeriesInstanceUID == first["sr"].SeriesInstanceUID  # one results series per study and run
    assert second.SOPInstanceUID != first["sr"].SOPInstanceUID
    retrained = RunIdentity("seed-basic", str(run), "ffffffffffffffff")
    assert derived_uid("sr", "1.2.3", retrained.digest) != derived_uid("sr", "1.2.3", scorer.identity.digest)


@pytest.mark.skipif(
    shutil.which("dciodvfy") is None, reason="dciodvfy not installed (apt-get install dicom3tools)"
)
def test_dciodvfy_reports_no_errors_on_either_kind(scorer, source, tmp_path):
    for kind, path in _objects(scorer, source, tmp_path / "out").items():
        proc = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
        report = proc.stdout + proc.stderr
        errors = [line for line in report.splitlines() if line.startswith("Error")]
        assert not errors, f"{kind}: {errors}"
        assert {"sr": "Comprehensive3DSR", "heatmap": "SCImage", "seg": "Segmentation"}[kind] in report


def _rgb_capture(path: Path) -> Path:
    ds = mg_dataset(np.zeros((8, 8), np.uint8), Modality="OT", StudyInstanceUID=generate_uid())
    ds.SeriesInstanceUID = generate_uid()
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = np.zeros((8, 8, 3), np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _variant(source: Path, path: Path, **changes: object) -> Path:
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


BAD = {
    "rgb secondary capture": (lambda s, p: _rgb_capture(p), "grayscale"),
    "ct": (lambda s, p: _variant(s, p, Modality="CT"), "not MG"),
    "for processing": (
        lambda s, p: _variant(s, p, PresentationIntentType="FOR PROCESSING"),
        "For Processing",
    ),
    "no pixel data": (lambda s, p: _variant(s, p, PixelData=None), "no pixel data"),
    "undecodable": (corrupt_rle, "cannot be decoded"),
}


@pytest.mark.parametrize("name", BAD)
def test_node_check_refuses_what_it_cannot_score(source, tmp_path, name):
    make, reason = BAD[name]
    with pytest.raises(DataError, match=reason):
        Node.check(make(source, tmp_path / "bad.dcm"))


def test_predict_dicom_out_matches_the_csv_and_notes_non_dicom(run, source, tmp_path, capsys):
    from mammo.io.images import write_png16

    png = tmp_path / "b.png"
    write_png16(mammogram("RIGHT", 2), png)
    out, folder = tmp_path / "p.csv", tmp_path / "dicom"
    args = [
        "predict",
        str(run),
        str(source),
        str(png),
        "--out",
        str(out),
        "--workers",
        "0",
        "--device",
        "cpu",
    ]
    assert main([*args, "--dicom-out", str(folder)]) == 0
    assert "b.png: not DICOM" in capsys.readouterr().out
    rows = pd.read_csv(out)
    uid = pydicom.dcmread(source, stop_before_pixels=True).SOPInstanceUID
    assert sorted(p.name for p in folder.iterdir()) == [f"{uid}.{k}.dcm" for k in ("heatmap", "seg", "sr")]
    prob, *_ = sr_result(pydicom.dcmread(folder / f"{uid}.sr.dcm"))
    assert prob == pytest.approx(
        rows.loc[rows["path"] == str(source), "probability_malignant"].iloc[0], abs=1e-9
    )
    (tmp_path / "afile").write_text("x")
    assert main([*args, "--dicom-out", str(tmp_path / "afile")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("given", ["file", "folder"])
def test_explain_dicom_out_writes_both_objects(run, source, tmp_path, capsys, given):
    folder = tmp_path / "dicom"
    args = [
        "explain",
        str(run),
        str(source if given == "file" else source.parent),  # a folder is searched, as predict does
        "--out",
        str(tmp_path / "x"),
        "--no-features",
        "--device",
        "cpu",
    ]
    assert main([*args, "--dicom-out", str(folder)]) == 0
    uid = pydicom.dcmread(source, stop_before_pixels=True).SOPInstanceUID
    assert sorted(p.name for p in folder.iterdir()) == [f"{uid}.{k}.dcm" for k in ("heatmap", "seg", "sr")]
    assert "wrote 3 DICOM objects" in capsys.readouterr().out


class Pacs:
    """A pynetdicom Storage SCP that keeps what it receives: the destination of the node under test."""

    def __init__(self) -> None:
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import Verification

        self.received: dict[str, Dataset] = {}
        self.port = free_port()
        ae = AE(ae_title="PACS")
        ae.add_supported_context(Verification)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        self.server = ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._store)]
        )

    def _store(self, event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        self.received[str(ds.SOPInstanceUID)] = ds
        return 0

    @property
    def dest(self) -> str:
        return f"127.0.0.1:{self.port}:PACS"

    def wait_for(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.1)


@pytest.fixture
def pacs():
    server = Pacs()
    yield server
    server.server.shutdown()


class Running:
    """`listen` in a thread, stopped (as SIGTERM would) by `stop()`."""

    def __init__(self, run: Path, spool: Path, dest: str, **kwargs) -> None:
        self.port = free_port()
        self.stop_event, ready = threading.Event(), threading.Event()
        self.result, self.error = None, None

        def target() -> None:
            try:
                self.result = listen(
                    run, self.port, spool, dest, device="cpu", stop=self.stop_event, ready=ready, **kwargs
                )
            except Exception as exc:  # surfaced by the test
                self.error = exc
                ready.set()

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        ready.wait(60)
        if self.error:
            raise self.error

    def stop(self):
        self.stop_event.set()
        self.thread.join(120)
        return self.result


def store(port: int, paths: list[Path], calling: str = "ORTHANC") -> list[int]:
    """C-STORE files to the node; the status of each (-1: no answer)."""
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom import AE
    from pynetdicom.sop_class import DigitalMammographyXRayImageStorageForPresentation as DMX
    from pynetdicom.sop_class import SecondaryCaptureImageStorage

    ae = AE(ae_title=calling)
    for sop in (SecondaryCaptureImageStorage, DMX):
        for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless):
            ae.add_requested_context(sop, syntax)
    assoc = ae.associate("127.0.0.1", port, ae_title="MAMMO")
    assert assoc.is_established
    try:
        return [int(s.Status) if (s := assoc.send_c_store(p)) else -1 for p in paths]
    finally:
        assoc.release()


def test_node_scores_good_images_and_refuses_bad_ones_with_a_status(run, source, pacs, tmp_path, caplog):
    good = [source, mg_file(tmp_path / "b.dcm", mammogram("RIGHT", 1))]
    bad = [make(source, tmp_path / f"bad{i}.dcm") for i, (make, _) in enumerate(BAD.values())]
    spool = tmp_path / "spool"
    node = Running(run, spool, pacs.dest, allow=("ORTHANC",))
    with caplog.at_level("INFO", logger="mammo"):
        statuses = store(node.port, [good[0], *bad, good[1]])
        pacs.wait_for(6)
        result = node.stop()
    assert statuses[0] == statuses[-1] == 0 and all(s == 0xC000 for s in statuses[1:-1]), statuses
    assert (result.counts.received, result.counts.refused, result.counts.scored) == (2, len(bad), 2)
    kinds = sorted(str(ds.Modality) for ds in pacs.received.values())
    assert kinds == ["OT", "OT", "SEG", "SEG", "SR", "SR"]
    lines = [r.getMessage() for r in caplog.records]
    assert sum("p(cancer)" in line and "results sent" in line for line in lines) == 2
    assert sum(" refused " in line for line in lines) == len(bad)
    store_ = Spool(spool)
    assert store_.n_done() == 2 and not list(store_.instances.iterdir()) and not store_.unsent()


def test_node_refuses_callers_outside_the_allow_list(run, pacs, tmp_path, caplog):
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    node = Running(run, tmp_path / "spool", pacs.dest, allow=("ORTHANC",))
    try:
        ae = AE(ae_title="STRANGER")
        ae.add_requested_context(Verification)
        with caplog.at_level("INFO", logger="mammo"):
            assoc = ae.associate("127.0.0.1", node.port, ae_title="MAMMO")
            assert assoc.is_rejected
            time.sleep(0.5)
    finally:
        node.stop()
    assert any("refused an association from STRANGER" in r.getMessage() for r in caplog.records)


def test_restart_scores_what_the_spool_holds_exactly_once(run, scorer, source, pacs, tmp_path):
    spool = Spool(tmp_path / "spool").open()
    uid = str(pydicom.dcmread(source, stop_before_pixels=True).SOPInstanceUID)
    spool.store(uid, source.read_bytes())  # acknowledged before a crash, never scored
    other = mg_file(tmp_path / "b.dcm", mammogram("RIGHT", 1))
    other_uid = str(pydicom.dcmread(other, stop_before_pixels=True).SOPInstanceUID)
    spool.store(other_uid, other.read_bytes())
    spool.mark_done(other_uid, {"probability": 0.5})  # scored before the crash: not again
    stale = spool.instances / f".{uid}.dcm.abcd1234.dcm"
    stale.write_bytes(b"half")  # a temp file of a store that was cut off
    spool.close()
    result = Running(run, tmp_path / "spool", pacs.dest).stop()
    assert result.counts.scored == 1 and not stale.exists()
    sr = [ds for ds in pacs.received.values() if ds.Modality == "SR"]
    assert len(sr) == 1 and sr_result(sr[0])[3] == uid
    assert Spool(tmp_path / "spool").n_done() == 2


def test_a_scoring_failure_stops_the_node_and_keeps_the_image(run, source, pacs, tmp_path, monkeypatch):
    import mammo.pacs.node as node_module

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(node_module, "save_objects", full_disk)
    node = Running(run, tmp_path / "spool", pacs.dest)
    assert store(node.port, [source]) == [0]
    node.thread.join(60)  # the node stops by itself
    result = node.result
    assert result.exit_code == 1 and "No space left" in result.summary()
    spool = Spool(tmp_path / "spool")
    assert len(list(spool.instances.glob("*.dcm"))) == 1 and spool.n_done() == 0  # scored at the next start


def test_unsent_results_stay_in_the_outbox(scorer, source, tmp_path):
    spool = Spool(tmp_path / "spool").open()
    save_objects(scorer.objects(scorer.score([source])[0]), spool.outbox, "1.2.3")
    node = Node(scorer, spool, Destination("127.0.0.1", free_port(), "GONE"))
    assert "not reachable" in node.flush()
    assert len(spool.unsent()) == 3
    sent, reason = send(spool.unsent(), Destination("127.0.0.1", free_port(), "GONE"), "MAMMO")
    assert sent == [] and "not reachable" in reason
    spool.close()


def test_bad_setups_get_one_line_and_leave_nothing(run, pacs, tmp_path, capsys):
    spool = tmp_path / "spool"
    base = ["listen", str(run), "--spool", str(spool), "--device", "cpu"]
    assert main([*base, "--port", str(free_port()), "--dest", f"127.0.0.1:{free_port()}:GONE"]) == 2
    assert "start that node or fix --dest" in capsys.readouterr().err and not spool.exists()
    assert main([*base, "--port", str(free_port()), "--dest", "localhost:ORTHANC"]) == 2
    assert "HOST:PORT:AET" in capsys.readouterr().err
    assert main([*base, "--port", str(pacs.port), "--dest", pacs.dest]) == 2
    assert "in use" in capsys.readouterr().err and not spool.exists()
    for host in ("192.0.2.1", "no-such-host.invalid"):  # TEST-NET-1: never this machine's
        assert main([*base, "--port", str(free_port()), "--dest", pacs.dest, "--host", host]) == 2
        assert f"--host {host}: not an address of this machine" in capsys.readouterr().err
        assert not spool.exists()
    held = Spool(spool).open()
    try:
        assert main([*base, "--port", str(free_port()), "--dest", pacs.dest]) == 2
        assert "another mammo listen" in capsys.readouterr().err
    finally:
        held.close()
    roi = make_run(tmp_path, task="roi", name="roi")
    with pytest.raises(UserError, match="roi run"):
        listen(roi, free_port(), spool, pacs.dest, device="cpu")
    with pytest.raises(UserError, match="AE title"):
        listen(run, 1, spool, pacs.dest, ae_title="A" * 17)


def _breast_probabilities(ds: pydicom.Dataset) -> list[float]:
    """The probabilities of the SR's breast group (mammo breast malignancy), empty when it has none."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    groups = sr.content.get_image_measurement_groups()
    return [
        float(g.get_measurements(name=codes.DCM.ProbabilityOfCancer)[0].value)
        for g in groups
        if "breast" in str(g.tracking_identifier)
    ]


def test_sr_carries_the_breast_score_when_both_views_are_scored_together(scorer, tmp_path):
    """CC + MLO of one breast in one call: each SR adds the breast's probability (mean of the two logits); the
    other breast, scored in the same call, changes nothing, and a view alone gets no breast group."""
    study = generate_uid()
    cc = mg_file(tmp_path / "cc.dcm", mammogram("LEFT", 1), study=study, ViewPosition="CC")
    mlo = mg_file(tmp_path / "mlo.dcm", mammogram("LEFT", 2), study=study, ViewPosition="MLO")
    right = mg_file(
        tmp_path / "r.dcm", mammogram("RIGHT", 3), study=study, ImageLaterality="R", ViewPosition="CC"
    )
    items = scorer.score([cc, mlo, right], heatmap=False)
    logit = (items[0].logit + items[1].logit) / 2
    want = float(scorer.run.probabilities(np.array([logit]))[0])
    assert items[0].breast is items[1].breast and items[2].breast is None
    assert items[0].breast.probability == pytest.approx(want) and items[0].breast.views == "CC+MLO"
    alone = scorer.score([cc, right], heatmap=False)
    assert alone[0].breast is None
    with_other = scorer.score([cc, mlo], heatmap=False)
    assert with_other[0].breast.probability == pytest.approx(want)
    out = tmp_path / "out"
    written = save_objects(scorer.objects(items[0]), out, items[0].sop_uid)
    sr = pydicom.dcmread(next(p for p in written if p.name.endswith(".sr.dcm")))
    assert _breast_probabilities(sr) == [pytest.approx(want)]
    assert sr_result(sr)[0] == pytest.approx(items[0].score.probability)  # the image's own group first
    refs = {
        str(s.ReferencedSOPInstanceUID)
        for e in sr.CurrentRequestedProcedureEvidenceSequence
        for series in e.ReferencedSeriesSequence
        for s in series.ReferencedSOPSequence
    }
    assert refs == {items[0].sop_uid, items[1].sop_uid}
    single = save_objects(scorer.objects(alone[0]), tmp_path / "single", alone[0].sop_uid)
    assert _breast_probabilities(pydicom.dcmread(next(p for p in single if p.name.endswith(".sr.dcm")))) == []
