"""Bad-input catalogue, prepare: one line, the right exit, nothing left in --out; the lock; stale temp files."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from bad_files import breast, png
from catalogue import assert_one_line_error, files, run

from mammo.prep.resume import LOCK, hold_lock


@pytest.fixture
def data(tmp_path: Path, capsys) -> Path:
    """DATA of eight small images of eight women (train and test, both classes)."""
    rows = []
    for i in range(8):
        png(tmp_path / "imgs" / f"i{i}.png", breast(80, 64, seed=i))
        rows.append(f"imgs/i{i}.png,{i % 2},W{i},{'train' if i < 6 else 'test'}")
    (tmp_path / "t.csv").write_text("image,label,patient_id,split\n" + "\n".join(rows) + "\n")
    assert run(["ingest", "--table", tmp_path / "t.csv", "--out", tmp_path / "data"], capsys).code == 0
    return tmp_path / "data"


def _edit(data: Path, **values: str) -> Path:
    path = data / "manifest.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for k, v in values.items():
        df.loc[3, k] = v
    df.to_csv(path, index=False)
    return data


CASES = {
    "size 2": (lambda d, t: ["--size", "2"], 2, ("--size must be between 16 and 4096", "got 2")),
    "size 100000": (lambda d, t: ["--size", "100000"], 2, ("got 100000",)),
    "workers -1": (lambda d, t: ["--workers", "-1"], 2, ("--workers must be 0 (in this process) or more",)),
    "context -1": (lambda d, t: ["--task", "roi", "--context", "-1"], 2, ("--context must be >= 0",)),
    "val-fraction 1.5": (lambda d, t: ["--val-fraction", "1.5"], 1, ("--val-fraction must be in",)),
    "DATA missing": (lambda d, t: ["--data-missing"], 1, ("no manifest here",)),
    "out is a file": (lambda d, t: ["--out-file"], 2, ("is a file, not a folder",)),
    "out under a file": (
        lambda d, t: ["--out-under-file"],
        2,
        ("is a file, so the folder cannot be created",),
    ),
    "split 'validation' in the manifest": (
        lambda d, t: _edit(d, split="validation") and [],
        1,
        ("manifest.csv: row 5 has split 'validation', not train, val or test",),
    ),
    "no view left": (
        lambda d, t: ["--view", "CC"],
        1,
        ("no manifest rows left with --abnormality all --view CC",),
    ),
    "every image unreadable": (
        lambda d, t: _edit(d, image_path="/nonexistent.png") and [],
        0,
        (),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_prepare_refuses(data, tmp_path, capsys, case):
    make, code, needles = CASES[case]
    extra = make(data, tmp_path)
    out = tmp_path / "prep"
    src = data
    if extra == ["--data-missing"]:
        src, extra = tmp_path / "nodata", []
    elif extra == ["--out-file"]:
        out, extra = tmp_path / "t.csv", []
    elif extra == ["--out-under-file"]:
        out, extra = tmp_path / "t.csv" / "prep", []
    before = files(out) if out.is_dir() else None
    result = run(["prepare", src, "--out", out, "--workers", "0", "--size", "32", *extra], capsys)
    if code == 0:  # one unreadable image among good ones: rejected with its reason, the rest prepared
        assert result.code == 0 and "rejected: 1" in result.out
        assert "/nonexistent.png" in (out / "rejected.csv").read_text()
        return
    assert_one_line_error(result, code, *needles)
    assert (files(out) if out.is_dir() else None) == before  # nothing new
    assert not (tmp_path / "prep").exists()


def test_tiny_images_are_prepared_with_a_warning(tmp_path, capsys):
    png(tmp_path / "imgs" / "tiny.png", breast(5, 5))
    png(tmp_path / "imgs" / "ok.png", breast(80, 64))
    (tmp_path / "t.csv").write_text("image,label,patient_id\nimgs/tiny.png,0,A\nimgs/ok.png,1,B\n")
    assert run(["ingest", "--table", tmp_path / "t.csv", "--out", tmp_path / "data"], capsys).code == 0
    result = run(
        ["prepare", tmp_path / "data", "--out", tmp_path / "p", "--size", "32", "--workers", "0"], capsys
    )
    assert result.code == 0
    assert (
        "warning: 1 source images are smaller than 64 pixels on a side" in result.out
        and "tiny.png, 5x5" in result.out
    )


def test_second_prepare_into_the_same_folder_is_refused(data, tmp_path, capsys):
    out = tmp_path / "prep"
    with hold_lock(out):
        assert (out / LOCK).read_text().strip() == str(os.getpid())
        result = run(["prepare", data, "--out", out, "--workers", "0", "--size", "32"], capsys)
        assert_one_line_error(
            result, 2, "is being prepared right now by process", str(os.getpid()), "wait for it"
        )
        assert sorted(files(out)) == [LOCK]
    assert not out.exists()  # the lock's folder was new and nothing was made: removed again


def test_stale_lock_and_temp_files_of_a_killed_run_are_cleared(data, tmp_path, capsys):
    argv = ["prepare", data, "--out", tmp_path / "ref", "--workers", "0", "--size", "32"]
    assert run(argv, capsys).code == 0
    want = {k: v for k, v in files(tmp_path / "ref").items() if k != ".progress.jsonl"}
    out = tmp_path / "prep"
    (out / "images").mkdir(parents=True)
    (out / LOCK).write_text("999999\n")  # a killed run's lock: its process is gone
    (out / "images" / ".W1.png.ab12cd34.png").write_bytes(b"")  # a killed worker's 0-byte temporary PNG
    (out / ".dataset.csv.zz99yy88.csv").write_bytes(b"sample_id")
    result = run(["prepare", data, "--out", out, "--workers", "0", "--size", "32"], capsys)
    assert result.code == 0, result.errors
    got = {k: v for k, v in files(out).items() if k != ".progress.jsonl"}
    assert sorted(got) == sorted(want)
    assert all(got[k] == want[k] for k in want if k != "prepare.json")
