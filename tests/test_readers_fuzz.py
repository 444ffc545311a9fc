"""Property tests of the readers at the edge: random and mutated bytes as a DICOM, a PNG and a table raise
nothing but the project's own errors (DataError/UserError), which the CLI turns into one line."""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from pathlib import Path

from bad_files import breast, dicom, png
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mammo.data.table import image_size, read_table
from mammo.errors import UserError
from mammo.io.dicom import check_dicom, read_header, read_pixels
from mammo.io.images import read_image

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
WORK = Path(tempfile.mkdtemp(prefix="mammo-fuzz-"))
DICOM_BYTES = dicom(WORK / "seed.dcm", breast(24, 16)).read_bytes()
PNG_BYTES = png(WORK / "seed.png", breast(24, 16)).read_bytes()
TABLE_BYTES = b"image,label,patient_id,split\nimgs/a.png,0,W1,train\nimgs/b.png,1,W2,test\n"


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    """`seed` cut, with some bytes overwritten, or with random bytes inserted."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, 8))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["set", "insert", "cut"]))
        if op == "set":
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(max_size=16))
        else:
            del data[i:]
    return bytes(data)


def _only_our_errors(fn, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.suppress(UserError):
            fn(path)


def _write(data: bytes, name: str) -> Path:
    path = WORK / name
    path.write_bytes(data)
    return path


@SETTINGS
@given(st.one_of(mutated(DICOM_BYTES), st.binary(max_size=600)))
def test_dicom_readers_raise_only_our_errors(data):
    path = _write(data, "x.dcm")
    for fn in (read_header, check_dicom, read_pixels, read_image, image_size):
        _only_our_errors(fn, path)


@SETTINGS
@given(st.one_of(mutated(PNG_BYTES), st.binary(max_size=600)))
def test_png_readers_raise_only_our_errors(data):
    path = _write(data, "x.png")
    for fn in (read_image, image_size):
        _only_our_errors(fn, path)


@SETTINGS
@given(st.one_of(mutated(TABLE_BYTES), st.binary(max_size=300), st.text(max_size=200).map(str.encode)))
def test_table_reader_raises_only_our_errors(data):
    _only_our_errors(read_table, _write(data, "x.csv"))
