"""DICOM reads with pydicom: headers only (fast, for ingest) and display-ready pixels (for prepare/predict).

Compressed transfer syntaxes are decoded by the pylibjpeg / pyjpegls plugins that pydicom picks by itself.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mammo.errors import DataError
from mammo.io.limits import check_pixels

log = logging.getLogger(__name__)

# Decoder warnings that say nothing about a file that decoded: pydicom warns when an encapsulated (RLE, JPEG)
# frame is exactly as long as the raw pixels, in case the transfer syntax is wrong; a 16-bit image whose noise
# RLE cannot compress (the synthetic ones of `mammo synth`) hits that length by chance, and a wrong transfer
# syntax would fail to decode anyway.
HARMLESS_WARNINGS = ("The number of bytes of compressed pixel data matches the expected number",)


def _not_harmless(record: logging.LogRecord) -> bool:
    """pydicom logs each warning too (to its own logger): the harmless ones are dropped there as well."""
    return not record.getMessage().startswith(HARMLESS_WARNINGS)


logging.getLogger("pydicom").addFilter(_not_harmless)

DICOM_SUFFIXES = {".dcm", ".dicom"}  # files with other names are DICOM too when their preamble says so
SEQUENCE_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # (FFFE,E0DD) length 0: how encapsulated pixel data ends
VIEW_CODES = {"CC", "MLO", "ML", "LM", "LMO", "XCC", "XCCL", "XCCM", "FB", "SIO", "AT", "SPOT", "MAG"}


@dataclass(frozen=True)
class DicomHeader:
    """The header fields ingest needs, read without touching the pixel data."""

    path: str
    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    modality: str
    series_description: str
    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    photometric: str
    transfer_syntax: str
    laterality: str
    view: str

    def as_dict(self) -> dict:
        """The header as a plain dict (for DataFrames)."""
        return asdict(self)


def _dcmread(path: str | os.PathLike, header_only: bool):
    import pydicom
    from pydicom.errors import InvalidDicomError

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(p, stop_before_pixels=header_only, force=False)
    except InvalidDicomError:
        raise DataError(f"{p}: not a DICOM file (no DICM preamble)") from None
    except Exception as exc:  # pydicom raises many types on damaged files
        raise DataError(f"{p}: unreadable DICOM ({type(exc).__name__}: {_one_line(exc)})") from None
    if any("End of file reached" in str(w.message) for w in caught):
        raise DataError(f"{p}: truncated (the file ends inside its pixel data); download it again")
    return ds


def _one_line(exc: Exception, limit: int = 300) -> str:
    """An exception message on one line (pydicom lists one reason per decoder plugin on separate lines)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_header(path: str | os.PathLike, max_pixels: int | None = None) -> DicomHeader:
    """Read the header only (stops before the pixel data), so 10,000 files take minutes, not hours.

    A header claiming more pixels than `mammo.io.limits.max_pixels(max_pixels)` is a DataError.
    """
    ds = _dcmread(path, header_only=True)
    try:
        header = DicomHeader(
            path=str(path),
            patient_id=str(ds.get("PatientID", "")),
            study_uid=str(ds.get("StudyInstanceUID", "")),
            series_uid=str(ds.get("SeriesInstanceUID", "")),
            sop_uid=str(ds.get("SOPInstanceUID", "")),
            modality=str(ds.get("Modality", "")),
            series_description=str(ds.get("SeriesDescription", "")),
            rows=int(ds.get("Rows", 0) or 0),
            columns=int(ds.get("Columns", 0) or 0),
            bits_allocated=int(ds.get("BitsAllocated", 0) or 0),
            bits_stored=int(ds.get("BitsStored", 0) or 0),
            photometric=str(ds.get("PhotometricInterpretation", "")),
            transfer_syntax=str(ds.file_meta.get("TransferSyntaxUID", "")) if "file_meta" in dir(ds) else "",
            laterality=str(ds.get("ImageLaterality", "") or ds.get("Laterality", "")),
            view=_view(ds),
        )
        frames, samples = _frames_samples(ds)
    except Exception as exc:
        raise DataError(f"{path}: DICOM header has bad values ({_one_line(exc)})") from None
    check_pixels(path, header.rows, header.columns, frames, samples, max_pixels)
    return header


def _frames_samples(ds) -> tuple[int, int]:
    """(NumberOfFrames, SamplesPerPixel) of a dataset, 1 when absent."""
    return int(ds.get("NumberOfFrames", 1) or 1), int(ds.get("SamplesPerPixel", 1) or 1)


def _view(ds) -> str:
    """ViewPosition, else PatientOrientation when it holds a view code (as in CBIS-DDSM: 'CC', 'MLO')."""
    view = str(ds.get("ViewPosition", "") or "")
    orientation = str(ds.get("PatientOrientation", "") or "")
    return view or (orientation if orientation.upper() in VIEW_CODES else "")


def _pixel_array(ds, path, max_pixels: int | None = None) -> np.ndarray:
    """Decode the first frame of a grayscale image; colour, palette and oversized images are refused first."""
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise DataError(
            f"{path}: no pixel data (not an image, or the file is cut before its pixels); download it again"
        )
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if spp != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2", ""):
        raise DataError(
            f"{path}: colour DICOM ({photometric or f'{spp} samples per pixel'}); "
            "mammograms are grayscale (MONOCHROME1/2): convert it to grayscale first"
        )
    try:
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        frames, _ = _frames_samples(ds)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: DICOM header has bad values ({_one_line(exc)})") from None
    check_pixels(path, rows, cols, frames, spp, max_pixels)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if frames > 1:
                ds.pixel_array_options(index=0)  # multi-frame: decode the first frame only
            arr = ds.pixel_array
    except Exception as exc:
        reason = _one_line(exc)
        if "less than expected" in reason:
            raise DataError(f"{path}: truncated ({reason}); download it again") from None
        if "JPEG Extended" in reason:  # 12-bit: only the GPL decoder handles it, so it is opt-in
            reason += (
                "; 12-bit JPEG Extended needs pylibjpeg-libjpeg (GPLv3): pip install 'mammo[gpl-decoders]'"
            )
        raise DataError(f"{path}: pixel data cannot be decoded ({reason})") from None
    if arr.ndim != 2:
        raise DataError(f"{path}: expected a 2-D grayscale image, got shape {arr.shape}")
    _report_warnings(path, caught)
    return arr


def _report_warnings(path: str | os.PathLike, caught: list[warnings.WarningMessage]) -> None:
    """The decoder's warnings about one file that decoded: the harmless ones dropped, the rest in one log line."""
    said = []
    for w in caught:
        text = " ".join(str(w.message).split())
        if text not in said and not text.startswith(HARMLESS_WARNINGS):
            said.append(text)
    if said:
        log.warning("%s: decoded, with a warning from the decoder: %s", path, "; ".join(said))


def read_raw_pixels(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Decode the stored pixel values as they are (no LUTs): used to tell a 0/255 mask from a 16-bit crop."""
    ds = _dcmread(path, header_only=False)
    return _pixel_array(ds, path, max_pixels)


def read_pixels(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Decode a grayscale DICOM to display-ready uint16: modality LUT, VOI LUT if any, MONOCHROME1 inverted.

    Integer results are scaled losslessly from the stored bit depth to the full 16-bit range
    (x * 65535 / (2**BitsStored - 1)); float results (rescale slope, VOI window) are mapped min..max to
    0..65535. A header claiming more than `max_pixels` (see `mammo.io.limits`) is refused before decoding.
    """
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = _dcmread(path, header_only=False)
    arr = _pixel_array(ds, path, max_pixels)
    out = apply_modality_lut(arr, ds)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        out = apply_voi_lut(out, ds)
    bits = int(ds.get("BitsStored", 16) or 16)
    return _to_display_uint16(out, bits, str(ds.get("PhotometricInterpretation", "")))


def _to_display_uint16(arr: np.ndarray, bits_stored: int, photometric: str) -> np.ndarray:
    """Map LUT output onto uint16 keeping every grey level, and invert MONOCHROME1 so bright means dense."""
    if np.issubdtype(arr.dtype, np.integer) and arr.min() >= 0 and arr.max() < 2**bits_stored <= 65536:
        top = 2**bits_stored - 1
        out = arr.astype(np.float64) * (65535.0 / top) if top != 65535 else arr
        out = np.rint(out).astype(np.uint16) if out is not arr else arr.astype(np.uint16, copy=False)
    else:
        lo, hi = float(arr.min()), float(arr.max())
        scale = 65535.0 / (hi - lo) if hi > lo else 0.0
        out = np.rint((arr.astype(np.float64) - lo) * scale).astype(np.uint16)
    if photometric == "MONOCHROME1":
        out = 65535 - out
    return out


def mg_dataset(pixels: np.ndarray, sop_uid: str | None = None, rle: bool = False, **attributes: object):
    """A Secondary Capture MG dataset (MONOCHROME2) holding uint16 or uint8 `pixels`, RLE-compressed when asked.

    `attributes` set further DICOM keywords (PatientID, SeriesInstanceUID, SeriesDescription, ...); the one
    DICOM writer of the project (synthetic downloads, fixtures, benchmarks).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, SecondaryCaptureImageStorage, generate_uid

    if pixels.dtype not in (np.uint8, np.uint16) or pixels.ndim != 2:
        raise ValueError(f"a DICOM image needs a 2-D uint8/uint16 array, got {pixels.dtype} {pixels.shape}")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.Rows, ds.Columns = pixels.shape
    bits = pixels.dtype.itemsize * 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    if rle:
        ds.compress(RLELossless, generate_instance_uid=False)
    return ds


def write_dicom(
    pixels: np.ndarray,
    path: str | os.PathLike,
    rle: bool = False,
    sop_uid: str | None = None,
    **attributes: object,
) -> Path:
    """Write `mg_dataset(pixels, ...)` to `path` (folders created); PatientID defaults to the file's stem."""
    path = Path(path)
    attributes.setdefault("PatientID", path.stem)
    ds = mg_dataset(pixels, sop_uid, rle, **attributes)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_dicom16(img: np.ndarray, path: str | os.PathLike, patient_id: str | None = None) -> None:
    """Write an uncompressed 16-bit MG DICOM (fixtures, benchmarks, users' own test files)."""
    if img.dtype != np.uint16 or img.ndim != 2:
        raise ValueError(f"write_dicom16 needs a 2-D uint16 array, got {img.dtype} {img.shape}")
    write_dicom(img, path, PatientID=patient_id or Path(path).stem)


def check_dicom(path: str | os.PathLike) -> DicomHeader:
    """Header plus a cheap completeness check (no decode); DataError naming the file when either fails."""
    h = read_header(path)
    problem = completeness_problem(path, h)
    if problem:
        raise DataError(f"{path}: {problem}")
    return h


PIXEL_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) Pixel Data, little endian: how the tag looks in the file


def _meta_end(path: str | os.PathLike) -> int:
    """Where the file meta header ends, from its group length (0 when the file has no standard preamble)."""
    with open(path, "rb") as fh:
        head = fh.read(144)
    if len(head) < 144 or head[128:132] != b"DICM" or head[132:136] != b"\x02\x00\x00\x00":
        return 0
    return 144 + int.from_bytes(head[140:144], "little")


def _has_pixel_tag(path: str | os.PathLike) -> bool:
    """True when the Pixel Data tag occurs in the file (read in chunks; only called on files already in doubt)."""
    tail = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(2**20):
            if PIXEL_TAG in tail + chunk:
                return True
            tail = chunk[-3:]
    return False


def completeness_problem(path: str | os.PathLike, h: DicomHeader) -> str:
    """Why a DICOM's pixel data is incomplete ('' when it looks whole), reading a few KB, never decoding.

    A truncated 40 MB mammogram is caught without reading it: for native transfer syntaxes the pixel element's
    declared length must fit in the file and cover Rows x Columns; encapsulated (compressed) pixel data
    must end with the sequence delimiter that closes its fragments.
    """
    import pydicom
    from pydicom.dataelem import RawDataElement
    from pydicom.uid import UID

    size = os.path.getsize(path)
    meta_end = _meta_end(path)
    if meta_end > size:
        return f"truncated (the file ends at byte {size}, inside its header, which runs to byte {meta_end}); download it again"
    if h.rows <= 0 or h.columns <= 0:
        if not _has_pixel_tag(path):
            return f"no image in this DICOM (no Rows/Columns, no pixel data in its {size} bytes: not an image, or cut short)"
        return "no image in this DICOM (Rows/Columns missing)"
    ts = UID(h.transfer_syntax) if h.transfer_syntax else None
    if ts is not None and ts.is_encapsulated:
        with open(path, "rb") as fh:
            fh.seek(max(0, size - len(SEQUENCE_END)))
            ok = fh.read() == SEQUENCE_END
        if ok:
            return ""
        if not _has_pixel_tag(path):
            return "no pixel data (the header has no image after it: not an image, or cut before its pixels)"
        return "truncated (compressed pixel data does not end with its sequence delimiter); download it again"
    if ts is not None and ts.is_deflated:
        return ""
    try:
        ds = pydicom.dcmread(path, defer_size=1024)
    except Exception as exc:
        return f"unreadable DICOM ({type(exc).__name__}: {' '.join(str(exc).split())})"
    elem = ds.get_item(0x7FE00010, keep_deferred=True)
    if elem is None:
        return "no pixel data"
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    need = h.rows * h.columns * int(ds.get("SamplesPerPixel", 1) or 1) * frames * h.bits_allocated // 8
    deferred = isinstance(elem, RawDataElement) and elem.value is None
    length = elem.length if deferred else len(elem.value or b"")
    if deferred and elem.value_tell + length > size:
        return f"truncated (file has {size} bytes, its pixel data ends at byte {elem.value_tell + length})"
    if length < need:
        return f"pixel data too short ({length} bytes, {h.rows}x{h.columns} needs {need})"
    return ""
