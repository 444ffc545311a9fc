"""Bad-input catalogue, using a trained run (predict, explain, report): one line, the right exit, nothing left.

Warnings (a scored file that deserves a word, a skipped file) are one stderr line each, naming the file, and the
command still succeeds; errors are one `mammo CMD: error:` line and a non-zero exit, before any model loads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from catalogue import assert_one_line_error, files, run
from test_predict import make_run, mammogram

from mammo.io.images import write_png16


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs"))


@pytest.fixture
def scans(tmp_path) -> Path:
    """tmp/scans/{a,b}.png: two small mammograms."""
    for name, seed in (("a", 0), ("b", 1)):
        write_png16(mammogram("LEFT", seed), tmp_path / "scans" / f"{name}.png")
    return tmp_path / "scans"


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a model is loaded: every case here must be refused before."""

    def boom(*args, **kwargs):
        raise AssertionError("the run was loaded before the bad input was refused")

    monkeypatch.setattr("mammo.predict.run.Run.load", boom)


def _file(path: Path, text: str = "x") -> Path:
    """A small file at `path` (its folder made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


REFUSED = {
    "predict model.onnx --dicom-out": (
        lambda t, s: ["predict", _file(t / "model.onnx"), s / "a.png", "--dicom-out", t / "dicom"],
        "model.onnx is a file, not a RUN folder: DICOM results (--dicom-out) with heatmaps need the checkpoint",
    ),
    "explain model.onnx": (
        lambda t, s: ["explain", _file(t / "model.onnx"), s / "a.png", "--out", t / "x"],
        "model.onnx is a file, not a RUN folder: heatmaps need the checkpoint (best.pt)",
    ),
    "explain a RUN with only model.onnx": (
        lambda t, s: ["explain", _file(t / "onnxrun" / "model.onnx").parent, s / "a.png", "--out", t / "x"],
        "best.pt: checkpoint not found, and heatmaps need it; an exported .onnx only scores",
    ),
    "explain a CSV as RUN": (
        lambda t, s: ["explain", _file(t / "p.csv"), s, "--out", t / "x"],
        "p.csv is a file, not a RUN folder",
    ),
    "predict a folder of notes only": (
        lambda t, s: ["predict", t / "run", _file(t / "docs" / "notes.txt").parent],
        "no input images: ",
    ),
    "predict an empty folder": (
        lambda t, s: ["predict", t / "run", _folder(t / "none")],
        "no input images: ",
    ),
    "explain an empty folder": (
        lambda t, s: ["explain", t / "run", _folder(t / "none"), "--out", t / "x"],
        "none: an empty folder; give a folder of image or DICOM files",
    ),
    "predict a table without rows": (
        lambda t, s: ["predict", t / "run", "--table", _file(t / "t.csv", "image,patient_id\n")],
        "t.csv: no rows; list one image per row under the header",
    ),
    "explain --out is a file": (
        lambda t, s: ["explain", t / "run", s, "--out", _file(t / "x.txt")],
        "x.txt is a file, not a folder; give a folder for --out",
    ),
    "export --out under a file": (
        lambda t, s: ["export", t / "run", "--out", _file(t / "f") / "m.onnx"],
        "f is a file, so the folder cannot be created; choose another --out",
    ),
    "export --out is a folder": (
        lambda t, s: ["export", t / "run", "--out", _folder(t / "m.onnx")],
        "m.onnx is a folder; give a file name for --out",
    ),
    "predict --out is a folder": (
        lambda t, s: ["predict", t / "run", s, "--out", _folder(t / "o.csv")],
        "o.csv is a folder; give a file name for --out",
    ),
    "predict --out under a file": (
        lambda t, s: ["predict", t / "run", s, "--out", _file(t / "f") / "p.csv"],
        "is a file, so the folder cannot be created",
    ),
    "report --outside missing": (
        lambda t, s: ["report", t / "run", "--outside", t / "no" / "such"],
        "--outside ",
    ),
    "report --outside without explain.csv": (
        lambda t, s: ["report", t / "run", "--outside", s],
        "scans: no explain.csv; run `mammo explain",
    ),
    "report --out is a folder": (
        lambda t, s: ["report", t / "run", "--out", s],
        "scans is a folder; give a file name for --out",
    ),
    "report of a file": (
        lambda t, s: ["report", s / "a.png"],
        "a.png is a file, not a RUN folder",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_before_the_model_loads(trained, scans, tmp_path, capsys, no_model, case):
    import shutil

    shutil.copytree(trained, tmp_path / "run")
    make, needle = REFUSED[case]
    argv = make(tmp_path, scans)
    before = files(tmp_path)
    line = assert_one_line_error(run(argv, capsys), 2, needle)
    if case == "predict a folder of notes only":
        assert "notes.txt" in line
    assert files(tmp_path) == before  # nothing written, nothing removed
    assert not (tmp_path / "dicom").exists() and not (tmp_path / "x").exists()


def _tiny_png(folder: Path) -> Path:
    write_png16(np.full((1, 1), 30000, np.uint16), folder / "dot.png")
    return folder / "dot.png"


@pytest.mark.parametrize("command", ["predict", "explain"])
def test_a_tiny_image_is_scored_with_a_warning_naming_it(trained, scans, tmp_path, capsys, command):
    _tiny_png(scans)
    out = ["--out", tmp_path / ("p.csv" if command == "predict" else "x")]
    extra = ["--workers", "0"] if command == "predict" else ["--no-features"]
    result = run([command, trained, scans, *out, *extra, "--device", "cpu"], capsys)
    assert result.code == 0, result.errors
    warned = [line for line in result.errors if "dot.png" in line]
    assert len(warned) == 1 and "1x1 pixels, smaller than 64 on a side" in warned[0], result.errors
    assert not [line for line in result.errors if "a.png" in line or "b.png" in line]
    if command == "explain":
        import pandas as pd

        rows = pd.read_csv(tmp_path / "x" / "explain.csv", keep_default_na=False)
        assert "smaller than 64" in rows.loc[rows["image"].str.endswith("dot.png"), "note"].iloc[0]


@pytest.mark.parametrize("command", ["predict", "explain"])
def test_skipped_files_of_a_folder_are_named(trained, scans, tmp_path, capsys, command):
    (scans / "notes.txt").write_text("patient notes")
    (scans / "sub").mkdir()
    (scans / "sub" / "list.csv").write_text("a,b\n")
    (scans / ".DS_Store").write_bytes(b"\0")
    out = ["--out", tmp_path / ("p.csv" if command == "predict" else "x")]
    extra = ["--workers", "0"] if command == "predict" else ["--no-features"]
    result = run([command, trained, scans, *out, *extra, "--device", "cpu"], capsys)
    assert result.code == 0, result.errors
    assert result.errors == [
        f"{scans}: skipped 2 files that are not an image (notes.txt, sub/list.csv); give image or DICOM files"
    ]
    if command == "predict":
        assert "scored 2 of 2 images" in result.out
