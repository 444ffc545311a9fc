"""Ordinary image files: read PNG/JPEG/PGM/TIFF/GIF/WebP (8 or 16 bit) as grayscale, write 16-bit PNG atomically.

Before decoding, PIL's lazy open reads the header (size, bands) so an image claiming more pixels than
`mammo.io.limits.max_pixels()` is refused before OpenCV allocates anything.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import cv2
import numpy as np

from mammo.errors import DataError
from mammo.io.atomic import atomic_path
from mammo.io.limits import check_pixels

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".pgm", ".pnm", ".ppm", ".tif", ".tiff", ".bmp", ".gif", ".webp"}


def is_dicom_path(path: str | os.PathLike) -> bool:
    """True when the file starts with the DICOM preamble marker 'DICM' at byte 128."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def open_header(path: str | os.PathLike, max_pixels: int | None = None):
    """PIL's lazy open of a non-DICOM image (header only), size-checked; the caller closes it.

    DataError when the file is missing, not an image PIL knows, or claims more pixels than the limit.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except UnidentifiedImageError:
        raise DataError(
            f"{path}: not an image PIL or pydicom can read (PNG, JPEG, TIFF, PGM or DICOM expected)"
        ) from None
    except Image.DecompressionBombError as exc:  # PIL's own, higher limit: say it in mammo's words
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        if claimed:
            check_pixels(path, int(claimed.group(1)), 1)
        raise DataError(f"{path}: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: unreadable image header ({' '.join(str(exc).split())})") from None
    try:
        cols, rows = im.size
        check_pixels(path, rows, cols, 1, len(im.getbands()), max_pixels)
    except BaseException:
        im.close()
        raise
    return im


def image_header(path: str | os.PathLike, max_pixels: int | None = None) -> tuple[int, int]:
    """(rows, cols) from a non-DICOM image's header, without decoding; DataError as in `open_header`."""
    with open_header(path, max_pixels) as im:
        cols, rows = im.size
    return rows, cols


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read a grayscale image (8- or 16-bit, colour files converted to gray) as uint8/uint16 HxW.

    DICOM files are routed to `mammo.io.dicom.read_pixels`. The header's size is checked against
    `mammo.io.limits.max_pixels(max_pixels)` before decoding.
    """
    path = Path(path)
    if is_dicom_path(path):
        from mammo.io.dicom import read_pixels

        return read_pixels(path, max_pixels)
    image_header(path, max_pixels)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(
            f"{path}: not a readable image (damaged, or a format OpenCV cannot decode); convert it to PNG"
        )
    if img.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        img = cv2.cvtColor(img, code)
    if img.dtype not in (np.uint8, np.uint16):
        raise DataError(f"{path}: unsupported pixel type {img.dtype}; use 8- or 16-bit grayscale")
    return img


def to_uint16(img: np.ndarray) -> np.ndarray:
    """Scale an 8-bit image to the full 16-bit range (x * 257); 16-bit images pass through unchanged."""
    if img.dtype == np.uint16:
        return img
    if img.dtype == np.uint8:
        return img.astype(np.uint16) * 257
    raise ValueError(f"expected uint8 or uint16, got {img.dtype}")


def write_png16(img: np.ndarray, path: str | os.PathLike) -> None:
    """Write a uint16 HxW array as a 16-bit PNG, atomically."""
    if img.dtype != np.uint16 or img.ndim != 2:
        raise ValueError(f"write_png16 needs a 2-D uint16 array, got {img.dtype} {img.shape}")
    with atomic_path(path) as tmp:
        ok, buf = cv2.imencode(".png", img)
        if not ok:
            raise OSError(f"could not encode {path}")
        tmp.write_bytes(buf.tobytes())


def write_png(img: np.ndarray, path: str | os.PathLike) -> None:
    """Write a uint8 gray or BGR image as PNG, atomically."""
    with atomic_path(path) as tmp:
        ok, buf = cv2.imencode(".png", img)
        if not ok:
            raise OSError(f"could not encode {path}")
        tmp.write_bytes(buf.tobytes())
