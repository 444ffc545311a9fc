"""Are the heatmaps about the lesion? Two checks on data whose lesion masks are known (e.g. `mammo synth`).

- Pointing game (Zhang et al. 2016): the share of correctly classified malignant samples whose heatmap maximum
  falls inside the lesion mask. Chance level is the mean share of the input the mask covers.
- Model randomisation (Adebayo et al. 2018): the heatmaps of the same architecture with random weights. If
  they rank pixels like the trained model's (Spearman correlation near 1), the map shows the image or the
  architecture, not what was learned.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from mammo.explain.geometry import rect_mask_to_input, roi_mask_to_input, whole_mask_to_input
from mammo.explain.maps import heatmaps
from mammo.io.atomic import json_safe, write_json
from mammo.predict.run import InputSpec, Run
from mammo.prep.pool import read_mask


@dataclass
class ExplanationChecks:
    """The two numbers and what they were measured on."""

    split: str
    method: str
    layer: str
    n: int  # correctly classified malignant samples with a mask
    pointing_game: float  # share of them whose heatmap maximum is inside the lesion
    chance: float  # mean mask area fraction: the pointing game of a random point
    randomisation_spearman: float  # mean Spearman correlation, trained vs randomly initialised model
    n_constant_random: int  # random-model maps that were constant (counted as correlation 0)

    def summary(self) -> str:
        """One line with both numbers."""
        return (
            f"explanation checks ({self.method} on {self.split}, {self.n} true-positive lesions): pointing game "
            f"{self.pointing_game:.2f} (chance {self.chance:.2f}); trained vs random-weights heatmaps "
            f"Spearman {self.randomisation_spearman:.2f}"
        )

    def to_dict(self) -> dict[str, Any]:
        """As a JSON-ready dict."""
        return asdict(self)


def lesion_mask(
    row: pd.Series, task: str, size: int, manifest: pd.DataFrame | None = None
) -> np.ndarray | None:
    """The malignant lesion(s) of one dataset.csv row on the model-input grid (bool), or None without a mask.

    roi rows carry their own mask_path and crop window; whole rows take the masks of the image's malignant
    findings from DATA/manifest.csv.
    """
    flip = bool(int(row.get("flipped", 0) or 0))
    window = tuple(int(row[c]) for c in ("crop_x0", "crop_y0", "crop_x1", "crop_y1"))
    if task == "roi":
        path = str(row.get("mask_path", "") or "")
        return roi_mask_to_input(read_mask(path), window, flip, size) if path else None
    if manifest is None:
        return None
    found = manifest[(manifest["image_id"] == row["image_id"]) & (manifest["label"] == 1)]
    paths = [p for p in found["mask_path"] if p]
    if not paths:
        return None
    union = np.zeros((int(row["source_rows"]), int(row["source_cols"])), bool)
    for p in paths:
        m = read_mask(p)
        if m.shape[:2] == union.shape:
            union |= m > 0
    return whole_mask_to_input(union, window, flip, size) if union.any() else None


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two maps; 0 when either is constant (no ranking to agree with)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a.ravel(), b.ravel()).statistic)


def pointing_hits(maps: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
    """Per sample: is the heatmap's maximum inside its mask? (ties: the first maximum in row-major order)."""
    return np.array([bool(m.ravel()[int(np.argmax(h))]) for h, m in zip(maps, masks, strict=True)])


def input_mask(
    row: pd.Series, spec: InputSpec, prep: Path, manifest: pd.DataFrame | None = None
) -> np.ndarray | None:
    """The malignant lesion(s) of one dataset.csv row on the run's input grid (size, or size x width), or None."""
    if spec.width is None:
        return lesion_mask(row, spec.task, spec.size, manifest)
    from mammo.io.images import read_image

    prepared = read_image(prep / row["image"])
    mask = lesion_mask(row, spec.task, prepared.shape[0], manifest)
    return None if mask is None else rect_mask_to_input(mask, prepared, spec.size, spec.width)


def check_explanations(
    run_dir: str | os.PathLike,
    split: str = "test",
    method: str = "gradcam",
    device: str = "cpu",
    max_samples: int = 200,
    seed: int = 0,
    batch_size: int = 16,
    run: Run | None = None,
) -> ExplanationChecks:
    """Pointing game and randomisation check of RUN's heatmaps on `split` (lesion masks from PREP/DATA).

    `run` reuses a loaded Run; the maps are computed on the inputs the run scores (`Run.dataset`).
    """
    from mammo.data.manifest import read_manifest
    from mammo.prep.dataset import read_prepare_json, read_split

    run = run or Run.load(run_dir, device=device)
    prep = run.prep_dir()
    spec = run.spec
    rows = read_split(prep, split)
    logits = run.score_rows(rows, prep, batch_size, desc="checks")
    keep = (rows["label"].to_numpy() == 1) & (run.probabilities(logits) >= run.threshold)
    manifest = None
    if spec.task == "whole":
        data_dir = read_prepare_json(prep).get("data_dir")
        manifest = read_manifest(data_dir) if data_dir and Path(data_dir, "manifest.csv").is_file() else None
    chosen, masks = [], []
    for i in np.flatnonzero(keep):
        mask = input_mask(rows.iloc[i], spec, prep, manifest)
        if mask is not None and mask.any():
            chosen.append(i)
            masks.append(mask)
        if len(chosen) >= max_samples:
            break
    info = run.info
    layer = info.gradcam_layer if method != "occlusion" else ""
    if not chosen:
        return ExplanationChecks(split, method, layer, 0, float("nan"), float("nan"), float("nan"), 0)
    dataset = run.dataset(rows.iloc[chosen].reset_index(drop=True), prep)
    random_model = run.random_model(seed)
    trained, randomised = [], []
    for start in range(0, len(dataset), batch_size):
        x = torch.stack([dataset[j][0] for j in range(start, min(start + batch_size, len(dataset)))])
        x = x.to(run.device)
        trained.append(heatmaps(run.model, x, info.gradcam_layer, method))
        randomised.append(heatmaps(random_model, x, info.gradcam_layer, method))
    maps, random_maps = np.concatenate(trained), np.concatenate(randomised)
    rhos = [_spearman(a, b) for a, b in zip(maps, random_maps, strict=True)]
    return ExplanationChecks(
        split=split,
        method=method,
        layer=layer,
        n=len(chosen),
        pointing_game=float(pointing_hits(maps, masks).mean()),
        chance=float(np.mean([m.mean() for m in masks])),
        randomisation_spearman=float(np.mean(rhos)),
        n_constant_random=int(sum(np.ptp(m) == 0 for m in random_maps)),
    )


def cached_checks(
    run_dir: str | os.PathLike, split: str = "test", device: str = "cpu", run: Run | None = None
) -> dict[str, Any]:
    """The checks of RUN on `split` as a dict: read from RUN/explain/checks_<split>.json, or measured and saved there.

    `run` reuses a loaded Run when the checks must be measured.
    """
    path = Path(run_dir) / "explain" / f"checks_{split}.json"
    if path.is_file():
        return json.loads(path.read_text())
    result = json_safe(check_explanations(run_dir, split=split, device=device, run=run).to_dict())
    write_json(result, path)
    return result
