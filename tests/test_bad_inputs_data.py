"""Bad-input catalogue, data commands (ingest, validate): one line, the right exit, nothing lost or left behind.

Each case builds its bad input next to a good set of four images of four women, runs `mammo ...` in this
process, and checks the README's promise. Cases that ingest (exit 0) check that the bad part is listed in
rejected.csv with its reason and that every good image is in the manifest.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from bad_files import breast, dicom, huge_png, huge_rle_dicom, png, rle_dicom_without_pixels
from catalogue import assert_one_line_error, files, run
from PIL import Image

from mammo.errors import UserError

GOOD = [
    ("a", "W1", "0", "train"),
    ("b", "W2", "1", "train"),
    ("c", "W3", "0", "test"),
    ("d", "W4", "1", "test"),
]
HEADER = "image,label,patient_id,split\n"
GOOD_ROWS = "".join(f"imgs/{n}.png,{label},{w},{s}\n" for n, w, label, s in GOOD)


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    """tmp/imgs/{a,b,c,d}.png and tmp/good.csv listing them."""
    for name, *_ in GOOD:
        png(tmp_path / "imgs" / f"{name}.png")
    (tmp_path / "good.csv").write_text(HEADER + GOOD_ROWS)
    return tmp_path


def table(tmp: Path, extra: str, header: str = HEADER, name: str = "t.csv") -> Path:
    """A table of the good rows plus `extra` rows."""
    path = tmp / name
    path.write_text(header + GOOD_ROWS + extra)
    return path


def tree(tmp: Path) -> Path:
    """A class-per-folder tree with the four good images."""
    for name, _, label, split in GOOD:
        png(tmp / "tree" / split / ("Malignant" if label == "1" else "Benign") / f"{name}.png")
    return tmp / "tree"


# --- ingest: refused with one line, nothing written ------------------------------------------------------
def _cut_out_parent(tmp: Path) -> list:
    (tmp / "afile").write_text("x")
    return ["ingest", "--table", tmp / "good.csv", "--out", tmp / "afile" / "data"]


def _existing_manifest(tmp: Path) -> list:
    run_ok(["ingest", "--table", tmp / "good.csv", "--out", tmp / "out"])
    (tmp / "fewer.csv").write_text(HEADER + "imgs/a.png,0,W1,train\n")
    return ["ingest", "--table", tmp / "fewer.csv", "--out", tmp / "out"]


def _ingest(*source: str | Callable[[Path], object]) -> Callable[[Path], list]:
    """argv maker of `mammo ingest SOURCE... --out tmp/out`: strings as given, callables applied to tmp."""
    return lambda t: ["ingest", *(a(t) if callable(a) else a for a in source), "--out", t / "out"]


def run_ok(argv: list) -> None:
    from mammo.cli import main

    assert main([str(a) for a in argv]) == 0


INGEST_ERRORS: dict[str, tuple[Callable[[Path], list], int, tuple[str, ...]]] = {
    "no source": (_ingest(), 2, ("exactly one source",)),
    "two sources": (
        _ingest("--table", lambda t: t / "good.csv", "--folders", lambda t: t / "imgs"),
        2,
        ("exactly one source",),
    ),
    "root missing": (_ingest(lambda t: t / "nope"), 2, ("nope: download folder not found",)),
    "root without CSVs": (_ingest(lambda t: t / "imgs"), 2, ("no CBIS-DDSM case-description",)),
    "csv-dir missing": (
        _ingest(lambda t: t / "imgs", "--csv-dir", lambda t: t / "nocsv"),
        2,
        ("nocsv: --csv-dir folder not found",),
    ),
    "table missing": (_ingest("--table", lambda t: t / "no.csv"), 2, ("no.csv: table not found",)),
    "table is a folder": (_ingest("--table", lambda t: t / "imgs"), 2, ("table not found",)),
    "table empty": (_ingest("--table", lambda t: _write(t / "e.csv", "")), 2, ("e.csv: the table is empty",)),
    "table header only": (
        _ingest("--table", lambda t: _write(t / "h.csv", HEADER)),
        1,
        ("no usable image found",),
    ),
    "table Latin-1": (_ingest("--table", lambda t: _latin1(t)), 2, ("l1.csv: not UTF-8", "save it as UTF-8")),
    "table is an image": (_ingest("--table", lambda t: t / "imgs" / "a.png"), 2, ("a binary file",)),
    "table without label column": (
        _ingest("--table", lambda t: table(t, "", header="image,diagnosis,patient_id,split\n")),
        2,
        ("t.csv: no column label", "a table needs image,label"),
    ),
    "table ragged rows": (
        _ingest("--table", lambda t: table(t, "imgs/a.png,0,W1,train,x,y,z\n")),
        2,
        ("t.csv: unreadable CSV",),
    ),
    "table every label bad": (
        _ingest("--table", lambda t: _write(t / "b.csv", HEADER + "imgs/a.png,maybe,W1,train\n")),
        1,
        ("no usable image found", "label 'maybe'"),
    ),
    "out is a file": (
        lambda t: ["ingest", "--table", t / "good.csv", "--out", t / "good.csv"],
        2,
        ("good.csv is a file, not a folder",),
    ),
    "out under a file": (_cut_out_parent, 2, ("afile is a file, so the folder cannot be created",)),
    "replacing a different manifest": (
        _existing_manifest,
        2,
        ("already exists with other rows", "--overwrite"),
    ),
    "folders missing": (_ingest("--folders", lambda t: t / "nodir"), 2, ("nodir: folder not found",)),
    "folders is a file": (
        _ingest("--folders", lambda t: t / "good.csv"),
        2,
        ("good.csv: a file, not a folder",),
    ),
    "folders without class folders": (
        _ingest("--folders", lambda t: t / "imgs"),
        2,
        ("no images inside Benign/ or Malignant/",),
    ),
    "folders of unreadable files": (
        _ingest("--folders", lambda t: _junk_tree(t)),
        1,
        ("no usable image found", "not an image"),
    ),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _latin1(tmp: Path) -> Path:
    path = tmp / "l1.csv"
    path.write_bytes((HEADER + GOOD_ROWS + "imgs/a.png,0,Ren\xe9e,train\n").encode("latin-1"))
    return path


def _junk_tree(tmp: Path) -> Path:
    for name in ("x.png", "y.dcm"):
        path = tmp / "junk" / "Benign" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not an image")
    return tmp / "junk"


@pytest.mark.parametrize("case", list(INGEST_ERRORS))
def test_ingest_refuses(tmp, capsys, case):
    make, code, needles = INGEST_ERRORS[case]
    argv = make(tmp)
    capsys.readouterr()
    before = files(tmp / "out")
    result = run(argv, capsys)
    assert_one_line_error(result, code, *needles)
    assert files(tmp / "out") == before  # nothing new, nothing changed
    assert sorted(p.name for p in (tmp / "imgs").iterdir()) == ["a.png", "b.png", "c.png", "d.png"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_ingest_out_not_writable(tmp, capsys):
    locked = tmp / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = run(["ingest", "--table", tmp / "good.csv", "--out", locked / "data"], capsys)
    finally:
        locked.chmod(0o700)
    assert_one_line_error(result, 2, "locked is not writable")


# --- ingest: the bad part rejected with its reason, every good image kept ---------------------------------
def _rows(extra: str) -> Callable[[Path], Path]:
    return lambda t: table(t, extra)


def _file_row(make: Callable[[Path], Path], label: str = "1", woman: str = "W9") -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        path = make(tmp)
        return table(tmp, f"{path.relative_to(tmp)},{label},{woman},train\n")

    return build


def _cut_dicom(tmp: Path) -> Path:
    path = dicom(tmp / "imgs" / "cut.dcm")
    path.write_bytes(path.read_bytes()[:200])
    return path


def _cut_png(tmp: Path) -> Path:
    whole = png(tmp / "imgs" / "whole.png").read_bytes()
    path = tmp / "imgs" / "cut.png"
    path.write_bytes(whole[: len(whole) // 2])
    return path


def _text_png(tmp: Path) -> Path:
    path = tmp / "imgs" / "text.png"
    path.write_text("hello")
    return path


def _mask_row(tmp: Path) -> Path:
    png(tmp / "imgs" / "m.png", breast(10, 10))
    path = tmp / "t.csv"
    path.write_text(
        "image,label,patient_id,split,mask_path\n"
        + "".join(
            f"imgs/{n}.png,{label},{w},{s},{'imgs/m.png' if n == 'a' else ''}\n" for n, w, label, s in GOOD
        )
    )
    return path


def _box_row(tmp: Path) -> Path:
    path = tmp / "t.csv"
    path.write_text(
        "image,label,patient_id,split,x_min,y_min,x_max,y_max\n"
        + "".join(
            f"imgs/{n}.png,{label},{w},{s},{'1,1,900,900' if n == 'a' else ',,,'}\n"
            for n, w, label, s in GOOD
        )
    )
    return path


ROW_PROBLEMS: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    # case: (table builder, who is named in rejected.csv, reason)
    "exact duplicate row": (
        _rows("imgs/b.png,1,W2,train\n"),
        "t.csv row 6",
        "exact duplicate of t.csv row 3",
    ),
    "one image under two women": (
        _rows("imgs/b.png,1,W7,train\n"),
        "t.csv row 3",
        "listed under women W2, W7 (a leak)",
    ),
    "unknown split value": (
        _rows("imgs/e.png,0,W5,holdout\n"),
        "t.csv row 6",
        "split 'holdout' is not train, val or test",
    ),
    "label not benign/malignant": (
        _rows("imgs/e.png,maybe,W5,train\n"),
        "t.csv row 6",
        "label 'maybe' is not",
    ),
    "no image path": (_rows(",0,W5,train\n"), "t.csv row 6", "no image path"),
    "image file missing": (_rows("imgs/gone.png,0,W5,train\n"), "gone.png", "file not found"),
    "DICOM header claims 60000x60000": (
        _file_row(lambda t: huge_rle_dicom(t / "imgs" / "huge.dcm")),
        "huge.dcm",
        "header claims 3,600,000,000 pixels (60000x60000), more than any mammogram",
    ),
    "PNG header claims 60000x60000": (
        _file_row(lambda t: huge_png(t / "imgs" / "huge.png")),
        "huge.png",
        "more than any mammogram",
    ),
    "DICOM cut at 200 bytes": (
        _file_row(_cut_dicom),
        "cut.dcm",
        "truncated (the file ends at byte 200, inside its header",
    ),
    "RLE DICOM without pixel data": (
        _file_row(lambda t: rle_dicom_without_pixels(t / "imgs" / "nopix.dcm")),
        "nopix.dcm",
        "no pixel data",
    ),
    "PNG cut in half": (_file_row(_cut_png), "cut.png", "unreadable image"),
    "text file named .png": (_file_row(_text_png), "text.png", "not an image PIL or pydicom can read"),
    "mask of another size": (_mask_row, "m.png", "mask size 10x10 differs from its image 64x48"),
    "lesion box outside the image": (_box_row, "t.csv row 2", "is not inside the 64x48 image"),
}


@pytest.mark.parametrize("case", list(ROW_PROBLEMS))
def test_ingest_rejects_bad_rows_keeps_good(tmp, capsys, case):
    make, who, reason = ROW_PROBLEMS[case]
    result = run(["ingest", "--table", make(tmp), "--out", tmp / "out"], capsys)
    assert result.code == 0 and not result.errors, result.errors
    manifest = pd.read_csv(tmp / "out" / "manifest.csv", dtype=str, keep_default_na=False)
    rejected = pd.read_csv(tmp / "out" / "rejected.csv", dtype=str, keep_default_na=False)
    kept = {Path(p).name for p in manifest["image_path"]}
    if case == "one image under two women":
        assert kept == {"a.png", "c.png", "d.png"}  # both claims on b.png dropped: either would leak
    else:
        assert kept == {"a.png", "b.png", "c.png", "d.png"} and len(manifest) == 4
    hits = rejected[rejected["path_or_row"].str.contains(who, regex=False)]
    assert len(hits) >= 1 and hits["reason"].str.contains(reason, regex=False).any(), rejected.to_dict(
        "records"
    )
    assert "rejected" in result.out


def test_ingest_split_synonyms_are_read(tmp, capsys):
    path = tmp / "t.csv"
    path.write_text(
        HEADER
        + GOOD_ROWS.replace("train", "Training").replace("test", "testing")
        + "imgs/a.png,0,W1,validation\n"
    )
    (tmp / "imgs" / "a.png").rename(tmp / "imgs" / "a0.png")
    png(tmp / "imgs" / "a.png")
    result = run(["ingest", "--table", path, "--out", tmp / "out"], capsys)
    assert result.code == 0
    manifest = pd.read_csv(tmp / "out" / "manifest.csv", dtype=str, keep_default_na=False)
    assert set(manifest["split"]) == {"train", "test", "val"}


def test_ingest_semicolon_table_is_read_and_said(tmp, capsys):
    path = tmp / "semi.csv"
    path.write_text((HEADER + GOOD_ROWS).replace(",", ";"))
    result = run(["ingest", "--table", path, "--out", tmp / "out"], capsys)
    assert result.code == 0 and "semi.csv is semicolon-separated and was read as such" in result.out
    assert len(pd.read_csv(tmp / "out" / "manifest.csv")) == 4


def test_ingest_folders_relative_path_keeps_every_image(tmp, capsys, monkeypatch):
    tree(tmp)
    monkeypatch.chdir(tmp)
    result = run(["ingest", "--folders", "tree/", "--out", "data"], capsys)
    assert result.code == 0, result.errors
    manifest = pd.read_csv(tmp / "data" / "manifest.csv", dtype=str, keep_default_na=False)
    assert sorted(Path(p).name for p in manifest["image_path"]) == ["a.png", "b.png", "c.png", "d.png"]
    assert all(Path(p).is_file() for p in manifest["image_path"])


def test_ingest_folders_reads_gif_webp_and_extensionless_dicom(tmp, capsys):
    root = tree(tmp)
    Image.fromarray((breast() // 257).astype("uint8")).save(root / "train" / "Benign" / "e.gif")
    Image.fromarray((breast() // 257).astype("uint8")).save(root / "train" / "Benign" / "f.webp")
    dicom(root / "test" / "Malignant" / "IM000001")
    (root / "train" / "Benign" / "README.txt").write_text("notes")
    (root / "train" / "Benign" / ".DS_Store").write_bytes(b"\x00\x01")
    result = run(["ingest", "--folders", root, "--out", tmp / "out"], capsys)
    assert result.code == 0, result.errors
    manifest = pd.read_csv(tmp / "out" / "manifest.csv", dtype=str, keep_default_na=False)
    rejected = pd.read_csv(tmp / "out" / "rejected.csv", dtype=str, keep_default_na=False)
    kept = sorted(Path(p).name for p in manifest["image_path"])
    assert kept == ["IM000001", "a.png", "b.png", "c.png", "d.png", "e.gif", "f.webp"]
    assert sorted(Path(p).name for p in rejected["path_or_row"]) == [".DS_Store", "README.txt"]
    found = sorted(p.name for p in root.rglob("*") if p.is_file())
    assert sorted([*kept, ".DS_Store", "README.txt"]) == found  # every file: ingested or rejected


def test_ingest_rerun_identical_needs_no_overwrite_and_overwrite_replaces(tmp, capsys):
    argv = ["ingest", "--table", tmp / "good.csv", "--out", tmp / "out"]
    assert run(argv, capsys).code == 0
    first = files(tmp / "out")
    assert run(argv, capsys).code == 0 and files(tmp / "out") == first
    (tmp / "fewer.csv").write_text(HEADER + "imgs/a.png,0,W1,train\n")
    result = run(["ingest", "--table", tmp / "fewer.csv", "--out", tmp / "out", "--overwrite"], capsys)
    assert result.code == 0 and len(pd.read_csv(tmp / "out" / "manifest.csv")) == 1


# --- validate --------------------------------------------------------------------------------------------
def _manifest(tmp: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Path:
    run_ok(["ingest", "--table", tmp / "good.csv", "--out", tmp / "data"])
    path = tmp / "data" / "manifest.csv"
    edit(pd.read_csv(path, dtype=str, keep_default_na=False)).to_csv(path, index=False)
    return tmp / "data"


def _set(df: pd.DataFrame, row: int, **values: str) -> pd.DataFrame:
    for k, v in values.items():
        df.loc[row, k] = v
    return df


VALIDATE_REPORTS: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], str]] = {
    "split 'validation'": (
        lambda df: _set(df, 1, split="validation"),
        "split not train, val or test (values 'validation'; first at manifest row 3)",
    ),
    "image under two women": (
        lambda df: _set(df, 1, image_path=df.loc[0, "image_path"]),
        "listed under more than one woman (a leak",
    ),
    "label not 0/1": (lambda df: _set(df, 2, label="2"), "rows with label not 0/1"),
    "woman in two splits": (lambda df: _set(df, 2, patient_id="W1"), "women in both test and train: W1"),
    "image file missing": (
        lambda df: _set(df, 3, image_path="/nonexistent/x.png"),
        "image_path files missing",
    ),
    "no patient_id": (lambda df: _set(df, 0, patient_id=""), "rows without patient_id"),
    "missing columns": (lambda df: df.drop(columns=["label"]), "manifest lacks columns label"),
}


@pytest.mark.parametrize("case", list(VALIDATE_REPORTS))
def test_validate_reports_error(tmp, capsys, case):
    edit, line = VALIDATE_REPORTS[case]
    data = _manifest(tmp, edit)
    before = files(data)
    result = run(["validate", data], capsys)
    assert result.code == 1 and not result.errors
    assert line in result.out, result.out
    assert files(data) == before


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda t: t / "nodata", "nodata/manifest.csv: no manifest here"),
        (lambda t: t / "good.csv", "good.csv/manifest.csv: no manifest here"),
    ],
    ids=["DATA missing", "DATA is a file"],
)
def test_validate_refuses(tmp, capsys, make, needle):
    assert_one_line_error(run(["validate", make(tmp)], capsys), 1, needle, "run `mammo ingest")


# --- predict --table: ingest's reader, so the same tables are read and the same ones refused -------------
TABLE_REFUSED = ["table missing", "table is a folder", "table empty", "table Latin-1", "table is an image"]
TABLE_REFUSED += ["table ragged rows"]
TABLE_READ = {
    "comma": lambda text: text.encode(),
    "semicolon": lambda text: text.replace(",", ";").encode(),
    "tab": lambda text: text.replace(",", "\t").encode(),
    "pipe": lambda text: text.replace(",", "|").encode(),
    "UTF-8 with BOM": lambda text: text.encode("utf-8-sig"),
    "Windows line ends": lambda text: text.replace("\n", "\r\n").encode(),
    "header in other case": lambda text: text.replace("image,label", "Image,Label").encode(),
    "edited manifest": lambda text: text.replace("image,", "image_path,").encode(),
}


@pytest.mark.parametrize("case", TABLE_REFUSED)
def test_predict_table_refused_with_ingests_line(tmp, capsys, case):
    from mammo.predict.files import table_sources

    make, code, needles = INGEST_ERRORS[case]
    argv = [str(a) for a in make(tmp)]
    result = run(argv, capsys)
    assert_one_line_error(result, code, *needles)
    with pytest.raises(UserError) as refused:
        table_sources(argv[argv.index("--table") + 1])
    assert result.errors == [f"mammo ingest: error: {refused.value}"]


@pytest.mark.parametrize("case", list(TABLE_READ))
def test_predict_table_reads_every_table_ingest_reads(tmp, capsys, case):
    from mammo.predict.files import table_sources

    path = tmp / "t.csv"
    path.write_bytes(TABLE_READ[case](HEADER + GOOD_ROWS))
    assert run(["ingest", "--table", path, "--out", tmp / "out"], capsys).code == 0
    manifest = pd.read_csv(tmp / "out" / "manifest.csv", dtype=str, keep_default_na=False)
    sources = table_sources(path)
    assert [s.path for s in sources] == list(manifest["image_path"])
    assert [s.patient_id for s in sources] == list(manifest["patient_id"]) == ["W1", "W2", "W3", "W4"]
