"""Ordinary image files: 8/16-bit PNG, PGM, JPEG, colour to gray, 16-bit PNG writes, unreadable files."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from mammo.errors import DataError
from mammo.io.images import is_dicom_path, read_image, to_uint16, write_png, write_png16


def gradient(dtype, shape=(40, 60)) -> np.ndarray:
    """A smooth ramp over the dtype's full range (JPEG-friendly, every value known)."""
    top = np.iinfo(dtype).max
    ramp = np.linspace(0, top, shape[0] * shape[1]).reshape(shape)
    return np.rint(ramp).astype(dtype)


@pytest.mark.parametrize("suffix", [".png", ".pgm", ".tif"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_lossless_formats_round_trip(tmp_path, suffix, dtype):
    img = gradient(dtype)
    path = tmp_path / f"img{suffix}"
    assert cv2.imwrite(str(path), img)
    out = read_image(path)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, img)


def test_jpeg_reads_as_8_bit_gray(tmp_path):
    img = gradient(np.uint8)
    path = tmp_path / "img.jpg"
    cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert np.abs(out.astype(int) - img).max() <= 6


@pytest.mark.parametrize("channels", [3, 4])
def test_colour_becomes_gray(tmp_path, channels):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (20, 30, channels), dtype=np.uint8)
    path = tmp_path / "colour.png"
    cv2.imwrite(str(path), img)
    code = cv2.COLOR_BGR2GRAY if channels == 3 else cv2.COLOR_BGRA2GRAY
    out = read_image(path)
    assert out.ndim == 2
    np.testing.assert_array_equal(out, cv2.cvtColor(img, code))


def test_write_png16_round_trip_is_exact_and_atomic(tmp_path):
    img = gradient(np.uint16, (33, 17))
    target = tmp_path / "sub" / "out.png"
    write_png16(img, target)
    assert [p.name for p in target.parent.iterdir()] == ["out.png"]  # no temporary file left behind
    back = cv2.imread(str(target), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, img)
    np.testing.assert_array_equal(read_image(target), img)


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.uint16), np.zeros((4, 4), float)]
)
def test_write_png16_refuses_other_arrays(tmp_path, bad):
    with pytest.raises(ValueError, match="2-D uint16"):
        write_png16(bad, tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


def test_write_png_8_bit(tmp_path):
    img = gradient(np.uint8)
    write_png(img, tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), img)


def test_to_uint16():
    np.testing.assert_array_equal(to_uint16(np.array([0, 1, 255], np.uint8)), [0, 257, 65535])
    same = np.array([3, 65535], np.uint16)
    assert to_uint16(same) is same
    with pytest.raises(ValueError):
        to_uint16(np.array([1.0]))


def test_unreadable_and_missing_files_raise_data_error(tmp_path):
    junk = tmp_path / "broken.png"
    junk.write_bytes(b"\x89PNG but not really" * 10)
    with pytest.raises(DataError, match=re.escape(str(junk)) + ": not an image"):
        read_image(junk)
    with pytest.raises(DataError, match="file not found"):
        read_image(tmp_path / "missing.png")


def test_unsupported_pixel_type(tmp_path):
    path = tmp_path / "float.tif"
    cv2.imwrite(str(path), np.ones((8, 8), np.float32))
    with pytest.raises(DataError, match="unsupported pixel type"):
        read_image(path)


def test_dicom_is_routed_to_the_dicom_reader(tmp_path):
    src = get_testdata_file("MR_small.dcm", download=False)
    no_suffix = tmp_path / "image_without_suffix"
    no_suffix.write_bytes(Path(src).read_bytes())
    assert is_dicom_path(no_suffix) and not is_dicom_path(tmp_path / "nothing")
    out = read_image(no_suffix)
    assert out.dtype == np.uint16 and out.shape == (pydicom.dcmread(src).Rows, pydicom.dcmread(src).Columns)
