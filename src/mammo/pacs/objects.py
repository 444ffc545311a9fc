"""The DICOM objects mammo writes for one scored mammogram, built with highdicom.

- a Comprehensive 3D SR holding a TID 1500 Measurement Report: the calibrated probability of cancer
  (DCM 111047, derivation Estimated), the decision threshold (DCM 122411), the model's estimate ("Model
  estimate: Suspicious / Not suspicious for malignancy", local codes: a model's output is not a pathology
  finding), what the model was trained on (synthetic images or not, from the PREP's provenance), the algorithm
  (model, mammo version, run digest) and a reference to the source image;
- a Secondary Capture (RGB) of the heatmap blended over the source image, on the source's pixel grid;
- the heatmap itself as a fractional Segmentation (probability type, 255 = the map's maximum) on the same grid,
  for viewers and tools that read standard quantitative objects.

Each series description names the model and the run digest and, for a model trained on synthetic images, says
so (mammo's version is in Software Versions): a PACS user sees only the DICOM, not the HTML report's banner.

All go into the source's Study (patient and study attributes copied from it), each kind in its own new Series.
Every UID is derived from (source SOP Instance UID or Study UID, run identity, kind), so scoring the same image
with the same run again yields the same UIDs and a PACS replaces the objects instead of adding copies.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import JPEGBaseline8Bit, generate_uid

from mammo import __version__
from mammo.data.provenance import TRAINED_NOT_RECORDED, TRAINED_SYNTHETIC

MANUFACTURER = "mammo"
# Patient and study attributes the result objects copy: type 2, so present (maybe empty) in every output
COPIED_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "ReferringPhysicianName",
    "AccessionNumber",
)
SR_SERIES_NUMBER = 9701
SC_SERIES_NUMBER = 9702
SEG_SERIES_NUMBER = 9703
# Local codes (a "99" designator is private by the standard) for what no standard code says: a model's estimate
LOCAL_SCHEME = "99MAMMO"


@dataclass(frozen=True)
class RunIdentity:
    """What names a scoring run in the objects: model, mammo version, run folder, checkpoint digest, training data.

    `training` is `mammo.data.provenance.training_data` of the run's PREP (TRAINED_SYNTHETIC, TRAINED_NOT_MARKED
    or TRAINED_NOT_RECORDED).
    """

    model: str
    run: str
    digest: str
    version: str = __version__
    training: str = TRAINED_NOT_RECORDED

    @classmethod
    def of(
        cls,
        run_dir: str | os.PathLike,
        model: str,
        checkpoint: str = "best.pt",
        training: str = TRAINED_NOT_RECORDED,
    ) -> RunIdentity:
        """The identity of RUN: its checkpoint's SHA-256 (first 16 hex digits) names it, not its path."""
        path = Path(run_dir) / checkpoint
        sha = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(2**20):
                sha.update(chunk)
        digest = sha.hexdigest()[:16]
        return cls(model=model, run=str(Path(run_dir).resolve()), digest=digest, training=training)

    @property
    def synthetic(self) -> bool:
        """Whether the model was trained on synthetic images (its PREP's provenance says so)."""
        return self.training == TRAINED_SYNTHETIC

    @property
    def label(self) -> str:
        """'mammo 0.1.0 seed-basic run 1a2b...' (64 characters at most, for LO attributes)."""
        return f"mammo {self.version} {self.model} run {self.digest}"[:64]

    def description(self, kind: str) -> str:
        """A series description: 'mammo heatmap seed-basic run 1a2b3c4d synthetic-trained' (64 at most).

        The model name is shortened when needed, never the digest or the synthetic-training mark; the version
        is in each object's Software Versions.
        """
        head = f"mammo {kind} "
        tail = f" run {self.digest[:8]}" + (" synthetic-trained" if self.synthetic else "")
        return head + self.model[: max(0, 64 - len(head) - len(tail))] + tail


@dataclass(frozen=True)
class Score:
    """One image's result: the calibrated probability of cancer and the run's decision threshold."""

    probability: float
    threshold: float

    @property
    def malignant(self) -> bool:
        """The decision: probability at or above the threshold."""
        return self.probability >= self.threshold


@dataclass(frozen=True)
class BreastScore:
    """A breast's result from its views scored together: the mean of their logits, calibrated, and its sources."""

    probability: float
    threshold: float
    views: str  # 'CC+MLO'
    sources: tuple[Dataset, ...]  # the headers of the breast's scored images


def with_type2(source: Dataset) -> Dataset:
    """A copy of the source header with every copied type-2 patient/study attribute present (empty if absent)."""
    from pydicom.datadict import dictionary_VR

    header = Dataset()
    header.update(source)
    for keyword in COPIED_TYPE2:
        if keyword not in header:
            header.add_new(keyword, dictionary_VR(keyword), None)
    return header


def derived_uid(*parts: str) -> str:
    """A UID that depends only on `parts` (pydicom's hash under its root): same inputs, same UID."""
    return generate_uid(entropy_srcs=["mammo", *parts])


def local_code(value: str, meaning: str):
    """A code of mammo's private scheme (LOCAL_SCHEME), declared in each SR's Coding Scheme Identification."""
    import highdicom as hd

    return hd.sr.CodedConcept(value=value, scheme_designator=LOCAL_SCHEME, meaning=meaning)


MODEL_ESTIMATE = ("ESTIMATE", "Model estimate")
SUSPICIOUS = ("SUSPICIOUS", "Suspicious for malignancy")
NOT_SUSPICIOUS = ("NOT-SUSPICIOUS", "Not suspicious for malignancy")
TRAINING_DATA = ("TRAINING-DATA", "Model training data")


def _training_value(identity: RunIdentity) -> tuple[str, str]:
    """The local code of what the model was trained on."""
    if identity.synthetic:
        return "SYNTHETIC", "Synthetic images"
    if identity.training == TRAINED_NOT_RECORDED:
        return "NOT-RECORDED", "Not recorded"
    return "NOT-MARKED-SYNTHETIC", "Images not marked synthetic"


def _coding_scheme() -> Dataset:
    """The Coding Scheme Identification item that declares LOCAL_SCHEME."""
    item = Dataset()
    item.CodingSchemeDesignator = LOCAL_SCHEME
    item.CodingSchemeName = "mammo local codes for model estimates"
    item.CodingSchemeResponsibleOrganization = "mammo"
    return item


def _observer_context(identity: RunIdentity):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=derived_uid("device", identity.digest),
        name="mammo",
        manufacturer_name=MANUFACTURER,
        model_name=identity.model[:64],
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.cid270.Device,
            observer_identifying_attributes=device,
        )
    )


def structured_report(
    source: Dataset, score: Score, identity: RunIdentity, breast: BreastScore | None = None
) -> Dataset:
    """A TID 1500 Measurement Report SR on `source` (a header is enough): probability, threshold, the model's
    estimate and its training data.

    With `breast` (its views scored in one call), a second measurement group holds the breast's probability,
    referencing every view it was computed from.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    source = with_type2(source)
    sop_uid = str(source.SOPInstanceUID)
    algorithm = hd.sr.AlgorithmIdentification(
        name=f"mammo {identity.model}"[:64],
        version=identity.version,
        parameters=[
            f"run {identity.digest}",
            f"threshold {score.threshold:.6g}",
            f"training data: {identity.training}",
        ],
    )
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=derived_uid("tracking", sop_uid, identity.digest), identifier="mammo malignancy"
        ),
        finding_type=codes.SCT.Breast,
        algorithm_id=algorithm,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
        measurements=[
            hd.sr.Measurement(
                name=codes.DCM.ProbabilityOfCancer,
                value=float(score.probability),
                unit=codes.UCUM.NoUnits,
                derivation=codes.cid3627.Estimated,
                algorithm_id=algorithm,
            ),
            hd.sr.Measurement(
                name=codes.DCM.ThresholdValue,
                value=float(score.threshold),
                unit=codes.UCUM.NoUnits,
                algorithm_id=algorithm,
            ),
        ],
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(
                name=local_code(*MODEL_ESTIMATE),
                value=local_code(*(SUSPICIOUS if score.malignant else NOT_SUSPICIOUS)),
            ),
            hd.sr.QualitativeEvaluation(
                name=local_code(*TRAINING_DATA), value=local_code(*_training_value(identity))
            ),
        ],
    )
    groups = [group]
    evidence = [source]
    if breast is not None:
        evidence += [with_type2(s) for s in breast.sources if str(s.SOPInstanceUID) != sop_uid]
        uids = sorted(str(s.SOPInstanceUID) for s in evidence)
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=derived_uid("tracking-breast", *uids, identity.digest),
                    identifier=f"mammo breast malignancy, mean of {breast.views} logits"[:64],
                ),
                finding_type=codes.SCT.Breast,
                algorithm_id=algorithm,
                source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(s) for s in evidence],
                measurements=[
                    hd.sr.Measurement(
                        name=codes.DCM.ProbabilityOfCancer,
                        value=float(breast.probability),
                        unit=codes.UCUM.NoUnits,
                        derivation=codes.cid3627.Estimated,
                        algorithm_id=algorithm,
                    )
                ],
            )
        )
    report = hd.sr.MeasurementReport(
        observation_context=_observer_context(identity),
        procedure_reported=codes.SCT.Mammography,
        imaging_measurements=groups,
    )
    study = str(source.StudyInstanceUID)
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=derived_uid("sr-series", study, identity.digest),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=derived_uid("sr", sop_uid, identity.digest),
        instance_number=int(source.get("InstanceNumber", 1) or 1),
        manufacturer=MANUFACTURER,
        series_description=identity.description("estimate"),
        institution_name=source.get("InstitutionName"),
        is_complete=True,
        is_final=False,
        is_verified=False,
    )
    sr.CodingSchemeIdentificationSequence = [_coding_scheme()]
    sr.SoftwareVersions = f"mammo {identity.version}"
    return sr


def heatmap_capture(source: Dataset, rgb: np.ndarray, score: Score, identity: RunIdentity) -> Dataset:
    """A Secondary Capture of the heatmap overlay (uint8 RGB, the source's rows x columns) in the source's study.

    Stored as baseline JPEG (YBR_FULL_422), which every viewer decodes: a 13-Mpixel overlay is a few MB, not 38.
    """
    import highdicom as hd

    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"an overlay must be uint8 (rows, columns, 3), got {rgb.dtype} {rgb.shape}")
    if rgb.shape[:2] != (int(source.Rows), int(source.Columns)):
        raise ValueError(
            f"overlay {rgb.shape[:2]} is not on the source grid ({source.Rows}, {source.Columns})"
        )
    source = with_type2(source)
    sop_uid = str(source.SOPInstanceUID)
    study = str(source.StudyInstanceUID)
    laterality = str(source.get("ImageLaterality", "") or source.get("Laterality", "") or "")
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=np.ascontiguousarray(rgb),
        photometric_interpretation=hd.PhotometricInterpretationValues.YBR_FULL_422,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=derived_uid("sc-series", study, identity.digest),
        sop_instance_uid=derived_uid("sc", sop_uid, identity.digest),
        series_number=SC_SERIES_NUMBER,
        instance_number=int(source.get("InstanceNumber", 1) or 1),
        manufacturer=MANUFACTURER,
        patient_orientation=_orientation(source) or ("A", "R"),
        laterality=laterality if laterality in ("L", "R") else None,
        series_description=identity.description("heatmap"),
        transfer_syntax_uid=JPEGBaseline8Bit,
    )
    if "Laterality" not in sc:  # type 2C for a paired organ: empty when the source does not say
        sc.Laterality = ""
    if _orientation(source) is None:  # not known from the source: left empty (type 2), never made up
        sc.PatientOrientation = ""
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.SoftwareVersions = f"mammo {identity.version}"
    sc.DerivationDescription = (
        f"Grad-CAM evidence for the model's estimate of malignancy over the source image (a model estimate, "
        f"not a diagnosis); estimated p(cancer) {score.probability:.4f}, threshold {score.threshold:.4f}, "
        f"{identity.label}; training data: {identity.training}"
    )[:1024]
    sc.SourceImageSequence = [_image_reference(source)]
    return sc


def heatmap_segmentation(source: Dataset, heat: np.ndarray, identity: RunIdentity) -> Dataset:
    """The heatmap (uint8, 255 = its maximum, the source's rows x columns) as a fractional Segmentation, RLE."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import RLELossless

    if heat.dtype != np.uint8 or heat.shape != (int(source.Rows), int(source.Columns)):
        raise ValueError(f"a heatmap must be uint8 on the source grid, got {heat.dtype} {heat.shape}")
    source = with_type2(source)
    sop_uid = str(source.SOPInstanceUID)
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="mammo Grad-CAM evidence",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=f"mammo {identity.model}"[:64],
            version=identity.version,
            family=codes.cid7162.ArtificialIntelligence,
            parameters={"run": identity.digest, "training data": identity.training},
        ),
    )
    seg = hd.seg.Segmentation(
        source_images=[source],
        pixel_array=heat.astype(np.float32) / 255.0,
        segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL,
        segment_descriptions=[description],
        series_instance_uid=derived_uid("seg-series", str(source.StudyInstanceUID), identity.digest),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=derived_uid("seg", sop_uid, identity.digest),
        instance_number=int(source.get("InstanceNumber", 1) or 1),
        manufacturer=MANUFACTURER,
        manufacturer_model_name=identity.model[:64],
        software_versions=f"mammo {identity.version}",
        device_serial_number=identity.digest,
        max_fractional_value=255,
        transfer_syntax_uid=RLELossless,
        series_description=identity.description("evidence"),
    )
    orientation = _orientation(source)
    seg.PatientOrientation = list(orientation) if orientation else ""  # type 2C here: empty when unknown
    return seg


def _orientation(source: Dataset) -> tuple[str, str] | None:
    """The source's PatientOrientation when it is a pair of single-letter directions (A, P, L, R, H, F)."""
    value = source.get("PatientOrientation")
    if value is not None and not isinstance(value, str) and len(value) == 2:
        row, col = (str(v) for v in value)
        if row in set("APLRHF") and col in set("APLRHF") and row and col:
            return row, col
    return None


def _image_reference(source: Dataset) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return ref
