"""Builders of small bad inputs for the bad-input catalogue and the property tests (each a few kB at most)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

from mammo.io.dicom import mg_dataset, write_dicom16


def breast(rows: int = 64, cols: int = 48, seed: int = 0) -> np.ndarray:
    """A small uint16 image with a bright half-disc on the left (a breast prepare can find)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:rows, :cols]
    inside = (xx / (cols * 0.7)) ** 2 + ((yy - rows / 2) / (rows * 0.45)) ** 2 < 1
    img = np.where(inside, 30000 + rng.integers(0, 8000, (rows, cols)), rng.integers(0, 300, (rows, cols)))
    return img.astype(np.uint16)


def png(path: Path, img: np.ndarray | None = None) -> Path:
    """Write a PNG (a small breast when `img` is None)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), breast() if img is None else img)
    return path


def dicom(path: Path, img: np.ndarray | None = None, patient_id: str | None = None) -> Path:
    """Write a small uncompressed 16-bit DICOM through the project's one writer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dicom16(breast() if img is None else img, path, patient_id)
    return path


def huge_rle_dicom(path: Path, rows: int = 60000, cols: int = 60000) -> Path:
    """A DICOM whose header claims rows x cols 16-bit pixels over a few bytes of RLE data."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    ds = mg_dataset(np.zeros((1, 1), np.uint16), PatientID="P_huge")
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.Rows, ds.Columns = rows, cols
    header = struct.pack("<16I", 2, 64, 64 + 4, *([0] * 13))
    ds.PixelData = encapsulate([header + b"\x81\x00" * 2])
    ds["PixelData"].VR = "OB"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def rle_dicom_without_pixels(path: Path) -> Path:
    """An RLE-syntax DICOM header (Rows/Columns given) with no PixelData element at all."""
    import pydicom

    huge_rle_dicom(path, 64, 48)
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path, enforce_file_format=True)
    return path


def huge_png(path: Path, width: int = 60000, height: int = 60000) -> Path:
    """A valid PNG header (IHDR) claiming width x height 8-bit gray pixels, with one tiny IDAT and IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body + chunk(b"IEND", b""))
    return path
