"""`mammo explain RUN IMAGE...`: for each image, the probability, a heatmap of the malignant evidence, and pictures.

Written to OUT (every file atomically): `<name>_overlay.png` (the model's input beside the heatmap over it),
`<name>_heatmap.npy` (the raw map on the model's input grid, float32, >= 0), for whole-image runs
`<name>_source_overlay.png` (the heatmap laid back onto the original full-resolution image), one
`features/<name>_<block>.png` grid per convolution block, and `explain.csv` (one row per image; a bad file gets
its row with an error and the rest goes on).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from mammo.errors import DataError, UserError
from mammo.evaluate.plots import save_figure
from mammo.explain.figures import blend, display_gray, feature_grid_figure, overlay_figure
from mammo.explain.geometry import heatmap_to_source, rect_heatmap_to_square
from mammo.explain.maps import METHODS, feature_maps, heatmaps, normalise
from mammo.io.atomic import atomic_path, write_csv
from mammo.io.images import read_image, to_uint16, write_png
from mammo.predict.run import Run
from mammo.prep.breast import locate_breast

COLUMNS = [
    "image",
    "probability",
    "prediction",
    "threshold",
    "method",
    "layer",
    "overlay",
    "heatmap",
    "source_overlay",
    "error",
]


@dataclass
class ExplainResult:
    """What `explain` wrote: one row per input image, and where."""

    out: Path
    rows: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        """One line per image and where the pictures are."""
        lines = []
        for r in self.rows:
            if r["error"]:
                lines.append(f"  {r['image']}: error: {r['error']}")
            else:
                lines.append(
                    f"  {r['image']}: malignant probability {r['probability']:.3f} -> {r['overlay']}"
                )
        ok = sum(not r["error"] for r in self.rows)
        return "\n".join([f"explained {ok} of {len(self.rows)} images in {self.out}", *lines])


def _save_npy(array: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def _names(images: list[Path]) -> list[str]:
    """A distinct file-name stem per input (a repeated stem gets _2, _3 ...)."""
    seen: dict[str, int] = {}
    names = []
    for p in images:
        stem = p.stem.replace(" ", "_") or "image"
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return names


def explain_one(
    run: Run, image: np.ndarray, name: str, out: Path, method: str, features: bool = True
) -> dict[str, Any]:
    """Explain one raw image with a loaded run; write its pictures under `out`; return its explain.csv row."""
    info = run.info
    try:
        prepared = run.spec.prepare_source(image)
        x = run.spec.from_prepared(prepared)
        breast = locate_breast(to_uint16(image))[1] if run.task == "whole" else None
    except ValueError as exc:  # no breast found, or an image the run's preprocessing cannot take
        raise DataError(str(exc)) from None
    prob = float(run.probabilities(run.logits(x[None]))[0])
    xt = torch.from_numpy(x)[None].to(run.device)
    heat = heatmaps(run.model, xt, info.gradcam_layer, method)[0]
    threshold = run.threshold
    row = {
        "probability": prob,
        "prediction": int(prob >= threshold),
        "threshold": threshold,
        "method": method,
        "layer": info.gradcam_layer if method != "occlusion" else "",
        "source_overlay": "",
        "error": "",
    }
    _save_npy(heat, out / f"{name}_heatmap.npy")
    title = f"{name}: malignant probability {prob:.3f} (threshold {threshold:.3f}), {method}"
    save_figure(overlay_figure(x[0], heat, title), out / f"{name}_overlay.png")
    row |= {"overlay": str(out / f"{name}_overlay.png"), "heatmap": str(out / f"{name}_heatmap.npy")}
    if breast is not None:
        square = heat if run.spec.width is None else rect_heatmap_to_square(heat, prepared)
        source = heatmap_to_source(normalise(square), breast.box, breast.flip, image.shape[:2])
        rgb = blend(display_gray(image), source)
        write_png(np.ascontiguousarray(rgb[..., ::-1]), out / f"{name}_source_overlay.png")
        row["source_overlay"] = str(out / f"{name}_source_overlay.png")
    if features:
        for layer, maps in feature_maps(run.model, xt, info.feature_layers).items():
            save_figure(
                feature_grid_figure(maps, layer), out / "features" / f"{name}_{layer.replace('.', '-')}.png"
            )
    return row


def explain(
    run_dir: str | os.PathLike,
    images: list[str | os.PathLike],
    out: str | os.PathLike = "explain-out",
    method: str = "gradcam",
    device: str = "auto",
    features: bool = True,
) -> ExplainResult:
    """Heatmaps, overlays and feature maps for each image with RUN's best model; explain.csv in `out`.

    Args:
        run_dir: RUN folder written by train (its best.pt is used).
        images: DICOM, PNG, JPEG, PGM or TIFF files.
        out: folder for the heatmaps, overlays, feature maps and explain.csv.
        method: "gradcam", "gradcam++" or "occlusion" (model-agnostic, slower).
        device: "auto" (CUDA when present), "cpu" or "cuda".
        features: draw the feature-map grids too.

    Example:
        >>> from mammo.explain import explain
        >>> print(explain("runs/lite0", ["scans/P_00001_LEFT_CC.dcm"], "explain-out").summary())
    """
    if method not in METHODS:
        raise UserError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    if not images:
        raise UserError("give at least one IMAGE to explain")
    run = Run.load(run_dir, device=device)
    out = Path(out)
    paths = [Path(p) for p in images]
    rows = []
    for path, name in tqdm(
        list(zip(paths, _names(paths), strict=True)), desc="explain", unit="image", disable=len(paths) < 5
    ):
        row = {"image": str(path)}
        try:
            row |= explain_one(run, read_image(path), name, out, method, features)
        except DataError as exc:  # a bad file gets its row; the rest goes on
            row["error"] = str(exc).splitlines()[0]
        rows.append({c: row.get(c, "") for c in COLUMNS})
    out.mkdir(parents=True, exist_ok=True)
    write_csv(pd.DataFrame(rows, columns=COLUMNS), out / "explain.csv")
    return ExplainResult(out=out, rows=rows)
