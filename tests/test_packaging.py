"""Packaging: SPDX licence with its file, one version, py.typed, no GPL package in the default install."""

import re
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

import mammo

ROOT = Path(__file__).resolve().parents[1]
GPL_PACKAGES = {"pylibjpeg-libjpeg"}  # the only GPL decoder pydicom offers; opt-in via the gpl-decoders extra

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_licence_is_spdx_with_its_file():
    project = _project()
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text()


def test_version_lives_only_in_the_package():
    project = _project()
    assert "version" not in project and "version" in project["dynamic"]
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", mammo.__version__)


def test_typed_marker_ships():
    assert (ROOT / "src" / "mammo" / "py.typed").is_file()


def test_no_gpl_package_in_the_default_install():
    project = _project()
    default = {_name(r) for r in project["dependencies"]}
    assert default & GPL_PACKAGES == set()
    assert {"python-gdcm", "scipy"} <= default
    assert {_name(r) for r in project["optional-dependencies"]["gpl-decoders"]} == GPL_PACKAGES


@pytest.mark.parametrize("name", ["SC_rgb_jpeg_dcmtk.dcm", "JPEG-LL.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm"])
def test_permissive_decoder_reads_jpeg_baseline_and_lossless(name):
    pytest.importorskip("gdcm")
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} not available locally (install pydicom-data)")
    ds = pydicom.dcmread(path)
    ds.pixel_array_options(decoding_plugin="gdcm")
    decoded = ds.pixel_array
    assert decoded.shape[:2] == (ds.Rows, ds.Columns) and decoded.max() > decoded.min()
    try:
        reference = pydicom.dcmread(path)
        reference.pixel_array_options(decoding_plugin="pylibjpeg")
        np.testing.assert_array_equal(decoded, reference.pixel_array)
    except (RuntimeError, ValueError):  # pylibjpeg-libjpeg not installed: nothing to compare with
        pass
