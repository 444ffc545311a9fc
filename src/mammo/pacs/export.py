"""`--dicom-out DIR` of `mammo predict` and `mammo explain`: an SR and the heatmap (Secondary Capture + Segmentation) per DICOM input.

With predict the SR carries the probability of the prediction row itself (so the CSV and the SR agree exactly);
the heatmap is the run's Grad-CAM on the source image. When two or more views of one breast are among the
inputs, each of their SRs also carries the breast's probability (the mean of its views' logits). Inputs that are
not DICOM mammograms get a note and no objects.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mammo.errors import DataError
from mammo.io.atomic import check_output_dir
from mammo.io.images import is_dicom_path
from mammo.pacs.objects import BreastScore, Score
from mammo.pacs.score import Scored, Scorer, add_breast_scores, read_mammogram_header, save_objects
from mammo.predict.files import PredictResult, check_run_dir, predict


@dataclass
class DicomExport:
    """The predictions, the DICOM objects written for them, and a note per input that got none."""

    result: PredictResult
    folder: Path
    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The predictions' exit code (0 when at least one input was scored)."""
        return self.result.exit_code

    def summary(self) -> str:
        """The predictions' summary, then what went to the DICOM folder."""
        lines = [self.result.summary()]
        lines += [f"  --dicom-out: {note}" for note in self.notes]
        lines.append(f"wrote {len(self.written)} DICOM objects -> {self.folder}")
        return "\n".join(lines)


@dataclass
class DicomResults:
    """The DICOM objects written for a list of images, and a note per image that got none."""

    folder: Path
    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line per note, then the count and the folder."""
        lines = [f"  --dicom-out: {note}" for note in self.notes]
        return "\n".join([*lines, f"wrote {len(self.written)} DICOM objects -> {self.folder}"])


def dicom_results(
    run_dir: str | os.PathLike,
    images: Sequence[str | os.PathLike],
    dicom_out: str | os.PathLike,
    device: str = "auto",
) -> DicomResults:
    """Score each image with RUN and write its SR and heatmap objects (`mammo explain --dicom-out`)."""
    check_run_dir(run_dir, needs="DICOM results (--dicom-out) with heatmaps")
    out = DicomResults(check_output_dir(dicom_out, "--dicom-out"))
    scorer = Scorer.load(run_dir, device=device)
    for path in images:
        if not is_dicom_path(Path(path)):
            out.notes.append(f"{path}: not DICOM, no DICOM objects (they need the source's UIDs)")
            continue
        item = scorer.score([path])[0]
        if item.error:
            out.notes.append(f"{path}: {item.error}")
        if item.score is not None:
            out.written += save_objects(scorer.objects(item), out.folder, item.sop_uid)
    return out


def breasts_of(rows: pd.DataFrame, scorer: Scorer) -> dict[str, BreastScore]:
    """Per scored DICOM path, its breast's score when two or more of its views are among the rows."""
    items = []
    for row in rows.itertuples():
        if pd.isna(row.logit) or not is_dicom_path(Path(row.path)):
            continue
        try:
            items.append(
                Scored(Path(row.path), header=read_mammogram_header(row.path), logit=float(row.logit))
            )
        except DataError:
            continue
    add_breast_scores(items, scorer.run.probabilities, scorer.run.threshold)
    return {str(it.path): it.breast for it in items if it.breast is not None}


def predict_to_dicom(
    run_dir: str | os.PathLike, inputs: Sequence[str | os.PathLike], dicom_out: str | os.PathLike, **kwargs
) -> DicomExport:
    """`predict(run_dir, inputs, **kwargs)` with one loaded run, then DICOM results for every scored DICOM."""
    check_run_dir(run_dir, needs="DICOM results (--dicom-out) with heatmaps")
    folder = check_output_dir(dicom_out, "--dicom-out")
    scorer = Scorer.load(run_dir, device=kwargs.pop("device", "auto"))
    result = predict(run_dir, inputs, run=scorer.run, **kwargs)
    export = DicomExport(result, folder)
    images = result.rows[result.rows["level"] == "image"]
    breasts = breasts_of(images, scorer)
    for row in images.itertuples():
        if pd.isna(row.probability_malignant):
            continue
        if not is_dicom_path(Path(row.path)):
            export.notes.append(f"{row.path}: not DICOM, no DICOM objects (they need the source's UIDs)")
            continue
        item = scorer.score([row.path])[0]
        if item.header is None:
            export.notes.append(f"{row.path}: {item.error}")
            continue
        item.score = Score(float(row.probability_malignant), float(row.threshold))
        item.breast = breasts.get(str(row.path))
        if item.error:
            export.notes.append(f"{row.path}: {item.error}")
        export.written += save_objects(scorer.objects(item), folder, item.sop_uid)
    return export
