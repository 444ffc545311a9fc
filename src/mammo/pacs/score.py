"""Score DICOM mammograms with one loaded run and build their result objects (SR, heatmap SC and SEG).

The probability comes from the same path as `mammo predict` (read_source -> the run's preprocess -> logits ->
calibrated probability), so a node's SR and `mammo predict`'s CSV agree for the same file. The heatmap is the
run's Grad-CAM laid back onto the source image (whole-image runs; roi runs get the SR only).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mammo.data.provenance import training_data
from mammo.errors import DataError
from mammo.io.atomic import atomic_path
from mammo.pacs.objects import (
    BreastScore,
    RunIdentity,
    Score,
    heatmap_capture,
    heatmap_segmentation,
    structured_report,
)

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from mammo.predict.run import Run


@dataclass
class Scored:
    """One input's outcome: its header, score, heatmap (uint8 on the source grid) and overlay, or the reason."""

    path: Path
    header: Dataset | None = None
    score: Score | None = None
    heat: np.ndarray | None = None
    overlay: np.ndarray | None = None
    error: str = ""
    logit: float | None = None
    breast: BreastScore | None = None  # when another view of the same breast was scored in the same call

    @property
    def sop_uid(self) -> str:
        """The source's SOP Instance UID ('' when its header could not be read)."""
        return str(self.header.SOPInstanceUID) if self.header is not None else ""


def read_mammogram_header(path: str | os.PathLike) -> Dataset:
    """The header of a DICOM that can carry mammo's results: DataError naming the file otherwise."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        raise DataError(f"{path}: not a DICOM file (no DICM preamble)") from None
    except Exception as exc:
        raise DataError(f"{path}: unreadable DICOM ({type(exc).__name__})") from None
    problem = not_a_mammogram(ds)
    if problem:
        raise DataError(f"{path}: {problem}")
    return ds


def not_a_mammogram(ds: Dataset) -> str:
    """Why a dataset is not a grayscale for-presentation mammogram mammo scores ('' when it is one)."""
    for keyword in (
        "SOPInstanceUID",
        "SOPClassUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "Rows",
        "Columns",
    ):
        if keyword not in ds:
            return f"no {keyword}: not an image"
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if spp != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        return f"{photometric or 'colour'} image: mammograms are grayscale (MONOCHROME1/2)"
    modality = str(ds.get("Modality", ""))
    if modality != "MG":
        return f"Modality {modality or 'missing'}, not MG: mammo scores mammograms only"
    if str(ds.get("PresentationIntentType", "")).upper() == "FOR PROCESSING":
        return "For Processing (raw detector) image: send the For Presentation mammogram"
    return ""


class Scorer:
    """A loaded run that turns DICOM files into scores, heatmap overlays and DICOM result objects."""

    def __init__(self, run: Run, identity: RunIdentity) -> None:
        self.run = run
        self.identity = identity

    @classmethod
    def load(cls, run_dir: str | os.PathLike, device: str = "auto") -> Scorer:
        """Load RUN's best checkpoint once (DataError when the RUN has none)."""
        from mammo.predict.run import Run

        run = Run.load(run_dir, device=device)
        return cls(run, RunIdentity.of(run_dir, run.model_name, training=training_data(run.spec.prepare)))

    def score(self, paths: Sequence[str | os.PathLike], heatmap: bool = True) -> list[Scored]:
        """Score DICOM files in one batch; a file that cannot be scored gets its reason and the rest go on."""
        from mammo.predict.files import Source, read_source

        out, images, prepared, inputs = [], [], [], []
        for path in paths:
            item = Scored(Path(path))
            try:
                item.header = read_mammogram_header(path)
                image, _ = read_source(Source(str(path)))
                square = self.run.spec.prepare_source(image)
                x = self.run.spec.from_prepared(square)
            except Exception as exc:  # one bad file gets its line; the batch goes on
                item.error = _one_line(exc, path)
                image = square = x = None
            out.append(item)
            images.append(image)
            prepared.append(square)
            inputs.append(x)
        ready = [i for i, x in enumerate(inputs) if x is not None]
        if ready:
            logits = self.run.logits(np.stack([inputs[i] for i in ready]))
            probs = self.run.probabilities(logits)
            for i, p, logit in zip(ready, probs, logits, strict=True):
                out[i].score = Score(float(p), self.run.threshold)
                out[i].logit = float(logit)
                if heatmap:
                    try:
                        out[i].heat = self.heatmap(images[i], prepared[i], inputs[i])
                        if out[i].heat is not None:
                            out[i].overlay = overlay_rgb(images[i], out[i].heat)
                    except ValueError as exc:  # no breast found for the map: the SR still goes out
                        out[i].error = f"no heatmap: {exc}"
        add_breast_scores(out, self.run.probabilities, self.run.threshold)
        return out

    def heatmap(self, image: np.ndarray, prepared: np.ndarray, x: np.ndarray) -> np.ndarray | None:
        """The run's Grad-CAM laid back on the source grid, scaled by its maximum to uint8 (None for roi runs).

        The same steps as `mammo explain`'s source overlay: a rectangular input's map goes back onto the
        prepared square first, then the square's map onto the source (unpad, unflip, resize, uncrop).
        """
        import torch

        from mammo.explain.geometry import heatmap_to_source, rect_heatmap_to_square
        from mammo.explain.maps import heatmaps, normalise
        from mammo.io.images import to_uint16
        from mammo.models.registry import get_model_info
        from mammo.prep.breast import find_breast

        if self.run.task != "whole":
            return None
        layer = get_model_info(self.run.model_name).gradcam_layer
        xt = torch.from_numpy(x)[None].to(self.run.device)
        heat = heatmaps(self.run.model, xt, layer, "gradcam")[0]
        square = heat if self.run.spec.width is None else rect_heatmap_to_square(heat, prepared)
        breast = find_breast(to_uint16(image))
        source = heatmap_to_source(normalise(square), breast.box, breast.flip, image.shape[:2])
        return np.rint(source * 255).astype(np.uint8)

    def objects(self, item: Scored) -> list[Dataset]:
        """The SR, and with a heatmap its Secondary Capture overlay and fractional Segmentation, of a scored item."""
        if item.header is None or item.score is None:
            return []
        with warnings.catch_warnings():  # copied patient names such as 'P_00001' are not in PN form
            warnings.filterwarnings("ignore", message=".*person name.*", category=UserWarning)
            found = [structured_report(item.header, item.score, self.identity, item.breast)]
            if item.overlay is not None:
                found.append(heatmap_capture(item.header, item.overlay, item.score, self.identity))
            if item.heat is not None:
                found.append(heatmap_segmentation(item.header, item.heat, self.identity))
        return found


def breast_of(header: Dataset) -> tuple[str, str, str]:
    """(woman, side, view) of a DICOM header (`mammo.stats.breasts.breast_key`: CBIS-DDSM PatientIDs parsed)."""
    from mammo.stats.breasts import breast_key

    side = str(header.get("ImageLaterality", "") or header.get("Laterality", "") or "")
    return breast_key(str(header.get("PatientID", "")), side, str(header.get("ViewPosition", "") or ""))


def add_breast_scores(
    items: Sequence[Scored], calibrate: Callable[[np.ndarray], np.ndarray], threshold: float
) -> None:
    """Give every scored item whose breast has two or more views among `items` that breast's score.

    The breast's logit is `mammo.stats.breasts.breast_scores` over the items' logits (the mean over views of
    each view's mean: never the other breast, never a count), calibrated by `calibrate` as an image's logit.
    """
    import pandas as pd

    from mammo.stats.breasts import breast_scores

    scored = [it for it in items if it.header is not None and it.logit is not None]
    keys = [breast_of(it.header) for it in scored]
    frame = pd.DataFrame(
        {
            "patient_id": [k[0] for k in keys],
            "side": [k[1] for k in keys],
            "view": [k[2] for k in keys],
            "logit": [it.logit for it in scored],
        }
    )
    breasts = breast_scores(frame, ["logit"], label=None) if len(frame) else None
    if breasts is None:
        return
    for b in breasts.itertuples(index=False):
        if "+" not in b.views:  # one view only: its own SR already says it
            continue
        members = [it for it, k in zip(scored, keys, strict=True) if (k[0], k[1]) == (b.patient_id, b.side)]
        result = BreastScore(
            float(calibrate(np.array([b.logit]))[0]),
            threshold,
            b.views,
            tuple(it.header for it in members),
        )
        for it in members:
            it.breast = result


def overlay_rgb(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """uint8 RGB of a grayscale image with a uint8 heatmap (255 = hottest) coloured over it, as `explain` blends.

    The same colours and weights as `mammo.explain.figures.blend`, computed through a 256-entry colour table in
    float32, so a 13-Mpixel mammogram takes a fraction of a second instead of seconds.
    """
    from matplotlib import colormaps

    from mammo.explain.figures import HEAT_CMAP

    img = np.asarray(image, np.float32)
    lo, hi = np.percentile(img[::4, ::4], [0.5, 99.5])
    gray = np.clip((img - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(img)
    level = heat
    colour = (colormaps[HEAT_CMAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.float32)
    weight = (alpha / 255.0) * level.astype(np.float32)
    rgb = np.empty((*img.shape, 3), np.uint8)
    for c in range(3):
        rgb[..., c] = np.rint((1.0 - weight) * gray * 255.0 + weight * colour[level, c]).astype(np.uint8)
    return rgb


def save_objects(objects: Sequence[Dataset], folder: str | os.PathLike, stem: str) -> list[Path]:
    """Write result objects as `<folder>/<stem>.sr.dcm`, `.heatmap.dcm` and `.seg.dcm`, each atomically."""
    paths = []
    for ds in objects:
        kind = {"SR": "sr", "SEG": "seg"}.get(str(ds.Modality), "heatmap")
        path = Path(folder) / f"{stem}.{kind}.dcm"
        with atomic_path(path) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        paths.append(path)
    return paths


def _one_line(exc: Exception, path: str | os.PathLike) -> str:
    from mammo.errors import UserError, without_path

    text = " ".join(without_path(exc, str(path)).split())
    return text if isinstance(exc, (UserError, ValueError)) else f"{type(exc).__name__}: {text}"
