"""Helpers shared by the DICOM-results tests and the node bench: source files, reading an SR back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import RLELossless, generate_uid

from mammo.io.dicom import write_dicom


def mg_file(path: Path, img: np.ndarray, study: str | None = None, **attributes: object) -> Path:
    """A 16-bit MG DICOM with the UIDs and patient/study attributes a PACS needs."""
    defaults = {
        "StudyInstanceUID": study or generate_uid(),
        "SeriesInstanceUID": generate_uid(),
        "PatientName": "Doe^Jane",
        "PatientID": "P1",
        "StudyDate": "20260101",
        "StudyTime": "120000",
        "ImageLaterality": "L",
        "ViewPosition": "CC",
        "InstanceNumber": 1,
    }
    return write_dicom(img, path, **(defaults | attributes))


def corrupt_rle(source: Path, path: Path) -> Path:
    """A copy of `source` under a new UID, RLE-compressed, whose pixel data does not decode."""
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.compress(RLELossless, generate_instance_uid=False)
    data = bytearray(ds.PixelData)
    data[64:] = b"\x7f" * (len(data) - 64)  # literal runs that overrun every row
    ds.PixelData = bytes(data)
    ds.save_as(path, enforce_file_format=True)
    return path


def sr_result(ds: pydicom.Dataset) -> tuple[float, float, str, str]:
    """(probability of cancer, threshold, decision meaning, referenced source SOP Instance UID) of mammo's SR."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    group = sr.content.get_image_measurement_groups()[0]
    prob = group.get_measurements(name=codes.DCM.ProbabilityOfCancer)[0].value
    threshold = group.get_measurements(name=codes.DCM.ThresholdValue)[0].value
    decision = group.get_qualitative_evaluations(name=codes.DCM.Pathology)[0].value.meaning
    ref = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    return (
        float(prob),
        float(threshold),
        str(decision),
        str(ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID),
    )
