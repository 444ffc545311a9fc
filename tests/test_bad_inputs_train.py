"""Bad-input catalogue, train and evaluate: every config value type- and range-checked before anything is built."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from catalogue import assert_one_line_error, files, run

from mammo.models.pooling import POOLINGS

PREP_ROWS = "sample_id,image,label,patient_id,split\n" + "".join(
    f"s{i},images/s{i}.png,{i % 2},W{i},{'train' if i < 4 else 'val'}\n" for i in range(6)
)


@pytest.fixture
def prep(tmp_path: Path) -> Path:
    """A PREP folder with a dataset.csv (the images are never reached: every case fails before)."""
    (tmp_path / "prep").mkdir()
    (tmp_path / "prep" / "dataset.csv").write_text(PREP_ROWS)
    (tmp_path / "prep" / "prepare.json").write_text('{"task": "whole", "size": 32}\n')
    return tmp_path / "prep"


YAML = {
    "epochs: ten": ("epochs: ten\n", "config 'epochs': 'ten' is not a whole number"),
    "batch_size: 4.5": ("batch_size: 4.5\n", "config 'batch_size': 4.5 is not a whole number"),
    "weight_decay: lots": ("weight_decay: lots\n", "config 'weight_decay': 'lots' is not a number"),
    "lr: inf": ("lr: .inf\n", "config 'lr': inf is not a finite number"),
    "lr: nan": ("lr: .nan\n", "is not a finite number"),
    "lr: -1": ("lr: -1\n", "config 'lr': -1.0 is out of range"),
    "epochs: 0": ("epochs: 0\n", "config 'epochs': 0 is out of range; it must be between 1 and"),
    "amp: maybe": ("amp: maybe\n", "config 'amp': 'maybe' is not true or false"),
    "model_args: list": ("model_args: [1, 2]\n", "config 'model_args': expected a mapping"),
    "optimizer: adamx": ("optimizer: adamx\n", "config 'optimizer': 'adamx' is not one of"),
    "unknown key": ("epoch: 3\n", "unknown config key 'epoch' (did you mean 'epochs'?)"),
    "not a mapping": ("- 1\n- 2\n", "expected a mapping of config keys"),
    "not YAML": ("a: [\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", list(YAML))
def test_train_config_yaml_refused_before_building(prep, tmp_path, capsys, case):
    text, needle = YAML[case]
    (tmp_path / "c.yaml").write_text(text)
    result = run(["train", prep, "--out", tmp_path / "run", "--config", tmp_path / "c.yaml"], capsys)
    assert_one_line_error(result, 2, needle)
    assert not (tmp_path / "run").exists()


FLAGS = {
    "--patience 0": (["--patience", "0"], "config 'patience': 0 is out of range; it must be at least 1"),
    "--size 2": (["--size", "2"], "config 'size': 2 is out of range; it must be between 16 and 4096"),
    "--lr inf": (["--lr", "inf"], "config 'lr': inf is not a finite number"),
    "--batch-size 0": (["--batch-size", "0"], "config 'batch_size': 0 is out of range"),
    "--workers -1": (["--workers", "-1"], "config 'workers': -1 is out of range"),
    "--max-train-batches 0": (["--max-train-batches", "0"], "config 'max_train_batches': 0 is out of range"),
}


@pytest.mark.parametrize("case", list(FLAGS))
def test_train_flags_refused_before_building(prep, tmp_path, capsys, case):
    flags, needle = FLAGS[case]
    result = run(["train", prep, "--out", tmp_path / "run", *flags], capsys)
    assert_one_line_error(result, 2, needle)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("out", "needle"),
    [("file", "is a file, not a folder"), ("under file", "is a file, so the folder cannot be created")],
    ids=["out is a file", "out under a file"],
)
def test_train_bad_out_refused_first(prep, tmp_path, capsys, monkeypatch, out, needle):
    def boom(*args, **kwargs):
        raise AssertionError("a model was built before --out was checked")

    monkeypatch.setattr("mammo.models.registry.create_model", boom)
    (tmp_path / "afile").write_text("x")
    target = tmp_path / "afile" if out == "file" else tmp_path / "afile" / "run"
    assert_one_line_error(run(["train", prep, "--out", target], capsys), 2, needle)
    assert (tmp_path / "afile").read_text() == "x"


class Payload:
    """Any Python object: a checkpoint holding one is refused by torch.load(weights_only=True)."""


def test_evaluate_refuses_unsafe_checkpoint_without_torch_advice(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    torch.save({"format": "x", "obj": Payload()}, tmp_path / "run" / "best.pt")
    before = files(tmp_path / "run")
    line = assert_one_line_error(
        run(["evaluate", tmp_path / "run", "--device", "cpu"], capsys),
        1,
        "best.pt: not a safe mammo checkpoint",
    )
    assert "weights_only" not in line
    assert files(tmp_path / "run") == before


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda t: t / "norun", "norun: no best.pt here"),
        (lambda t: (t / "emptyrun").mkdir() or t / "emptyrun", "emptyrun: no best.pt here"),
        (lambda t: _junk_checkpoint(t), "not a readable checkpoint"),
    ],
    ids=["RUN missing", "RUN without best.pt", "best.pt is junk"],
)
def test_evaluate_refuses(tmp_path, capsys, make, needle):
    assert_one_line_error(run(["evaluate", make(tmp_path), "--device", "cpu"], capsys), 1, needle)


def _junk_checkpoint(tmp: Path) -> Path:
    (tmp / "junk").mkdir()
    (tmp / "junk" / "best.pt").write_bytes(b"\x00not a zip" * 10)
    return tmp / "junk"


MODEL_ARGS = {
    "pooling: bogus (YAML)": (
        "model_args: {pooling: bogus}\n",
        [],
        f"config 'model_args': pooling 'bogus' is not one of {', '.join(POOLINGS)} for efficientnet-lite0",
    ),
    "--pooling on resnet18": (
        "",
        ["--model", "resnet18", "--pooling", "topk"],
        "resnet18 takes no argument 'pooling'",
    ),
    "--pooling bogus": (
        "",
        ["--pooling", "bogus"],
        f"pooling 'bogus' is not one of {', '.join(POOLINGS)}",
    ),
    "unknown builder argument (YAML)": (
        "model: seed-basic\nmodel_args: {depth: 3}\n",
        [],
        "seed-basic takes no argument 'depth' (its arguments: input_size",
    ),
}


@pytest.mark.parametrize("case", list(MODEL_ARGS))
def test_model_args_refused_before_building(prep, tmp_path, capsys, case):
    text, flags, needle = MODEL_ARGS[case]
    (tmp_path / "c.yaml").write_text(text or "{}\n")
    argv = ["train", prep, "--out", tmp_path / "run", "--config", tmp_path / "c.yaml", *flags]
    assert_one_line_error(run(argv, capsys), 2, needle)
    assert not (tmp_path / "run").exists()


CV = {
    "--pooling bogus": (["--pooling", "bogus"], "pooling 'bogus' is not one of"),
    "--pooling on resnet18": (
        ["--model", "resnet18", "--pooling", "topk"],
        "resnet18 takes no argument 'pooling'",
    ),
    "--lr inf": (["--lr", "inf"], "config 'lr': inf is not a finite number"),
    "--trunk-cache on cuda": (
        ["--trunk-cache", "{tmp}/c", "--device", "cuda"],
        "a cached-trunk run trains on the CPU",
    ),
}


@pytest.mark.parametrize("case", list(CV))
def test_cv_config_refused_before_out_is_made(prep, tmp_path, capsys, case):
    flags, needle = CV[case]
    flags = [f.format(tmp=tmp_path) for f in flags]
    result = run(["cv", prep, "--out", tmp_path / "cv", "--folds", "2", *flags], capsys)
    assert_one_line_error(result, 2, needle)
    assert not (tmp_path / "cv").exists() and not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda t: t / "none.yaml", "none.yaml: config file not found; give a YAML file of config keys"),
        (lambda t: (t / "cfg").mkdir() or t / "cfg", "cfg: a folder, not a config file; give a YAML file"),
    ],
    ids=["missing", "a folder"],
)
def test_train_config_path_refused(prep, tmp_path, capsys, make, needle):
    result = run(["train", prep, "--out", tmp_path / "run", "--config", make(tmp_path)], capsys)
    assert_one_line_error(result, 2, needle)
    assert not (tmp_path / "run").exists()
