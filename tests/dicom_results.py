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
    """(probability of cancer, threshold, the model's estimate, referenced source SOP Instance UID) of mammo's SR."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from mammo.pacs.objects import MODEL_ESTIMATE, local_code

    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    group = sr.content.get_image_measurement_groups()[0]
    prob = group.get_measurements(name=codes.DCM.ProbabilityOfCancer)[0].value
    threshold = group.get_measurements(name=codes.DCM.ThresholdValue)[0].value
    estimate = group.get_qualitative_evaluations(name=local_code(*MODEL_ESTIMATE))[0].value.meaning
    ref = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    return (
        float(prob),
        float(threshold),
        str(estimate),
        str(ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID),
    )


def sr_provenance(ds: pydicom.Dataset) -> dict[str, str]:
    """What mammo's SR says of its maker (algorithm name, version, parameters, training data) and every concept."""
    import highdicom as hd

    from mammo.pacs.objects import TRAINING_DATA, local_code

    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    group = sr.content.get_image_measurement_groups()[0]
    training = group.get_qualitative_evaluations(name=local_code(*TRAINING_DATA))[0].value.meaning
    texts: dict[str, list[str]] = {}
    items = list(_items(ds))
    for item in items:
        if "ConceptNameCodeSequence" in item and "TextValue" in item:
            name = str(item.ConceptNameCodeSequence[0].CodeMeaning)
            texts.setdefault(name, []).append(str(item.TextValue))
    return {
        "name": texts["Algorithm Name"][0],
        "version": texts["Algorithm Version"][0],
        "parameters": "; ".join(texts.get("Algorithm Parameters", [])),
        "training": str(training),
        "codes": "; ".join(sorted({str(i.CodeMeaning) for i in items if "CodeMeaning" in i})),
        "series": str(ds.SeriesDescription),
    }


def _items(ds: pydicom.Dataset):
    """`ds` and every dataset nested in its sequences, depth first."""
    yield ds
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                yield from _items(item)
