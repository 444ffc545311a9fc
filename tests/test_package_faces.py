"""Package faces: each package's public entry functions from its `__init__`, loaded lazily, documented."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

FACES = {
    "mammo.data": ["ingest_cbis", "ingest_table", "ingest_folders", "read_table", "make_download", "run_eda"],
    "mammo.prep": ["prepare"],
    "mammo.train": ["train", "resolve_config", "TrainConfig"],
    "mammo.evaluate": ["evaluate", "run_cv"],
    "mammo.explain": ["explain"],
    "mammo.report": ["build_report"],
}
ENTRY_POINTS = [(pkg, name) for pkg, names in FACES.items() for name in names if name[0].islower()]


@pytest.mark.parametrize("package", list(FACES))
def test_package_exports_its_functions(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(FACES[package])
    for name in FACES[package]:
        obj = getattr(module, name)
        assert obj.__module__.startswith(package + "."), (package, name)
        assert getattr(importlib.import_module(obj.__module__), name) is obj
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


def test_package_faces_load_no_torch() -> None:
    code = "import sys, mammo.data, mammo.prep, mammo.train, mammo.evaluate, mammo.explain, mammo.report; "
    code += "print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize(("package", "name"), ENTRY_POINTS)
def test_entry_points_document_arguments_and_an_example(package: str, name: str) -> None:
    fn = getattr(importlib.import_module(package), name)
    doc = inspect.getdoc(fn) or ""
    assert "Args:" in doc and "Example:" in doc, f"{package}.{name}"
    args = doc.split("Args:")[1].split("Example:")[0]
    for param in inspect.signature(fn).parameters:
        assert f"{param}:" in args, f"{package}.{name}: argument {param} undocumented"
    example = [line for line in doc.split("Example:")[1].splitlines() if line.strip().startswith(">>>")]
    assert len(example) == 2 and f"from {package} import {name}" in example[0], f"{package}.{name}"


def test_predict_loads_no_scikit_learn() -> None:
    """`mammo predict`'s modules leave scikit-learn (0.8 s of imports) unloaded: time to the first result."""
    code = (
        "import sys; import mammo.cli, mammo.predict.files, mammo.predict.onnx, mammo.predict.backend; "
        "print(sorted(m for m in ('sklearn', 'scipy.stats', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
