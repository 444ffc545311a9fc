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
from mammo.evaluate.calibration import apply_temperature
from mammo.evaluate.plots import save_figure
from mammo.explain.figures import blend, display_gray, feature_grid_figure, overlay_figure
from mammo.explain.geometry import heatmap_to_source
from mammo.explain.maps import METHODS, feature_maps, heatmaps, normalise
from mammo.io.atomic import atomic_path, write_csv
from mammo.io.images import read_image, to_uint16, write_png
from mammo.models.registry import get_model_info
from mammo.prep.breast import Breast, prepare_whole, resize_to

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


def model_input(image: np.ndarray, preprocessing: dict[str, Any]) -> tuple[np.ndarray, Breast | None]:
    """A raw image as the run's model sees it, float32 (1, size, size), and the breast found (whole runs)."""
    size = int(preprocessing["size"])
    img = to_uint16(image)
    if str(preprocessing.get("task") or "whole") == "whole":
        try:
            out, breast = prepare_whole(img, size)
        except ValueError as exc:
            raise DataError(str(exc)) from None
    else:
        out, breast = resize_to(img, size, size), None
    mean = float(np.mean(preprocessing.get("mean", 0.0)))
    std = float(np.mean(preprocessing.get("std", 1.0)))
    return ((out.astype(np.float32) / float(preprocessing.get("input_scale", 65535)) - mean) / std)[
        None
    ], breast


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
    model: torch.nn.Module,
    ckpt: dict[str, Any],
    image: np.ndarray,
    name: str,
    out: Path,
    method: str,
    features: bool = True,
) -> dict[str, Any]:
    """Explain one raw image with a loaded run; write its pictures under `out`; return its explain.csv row."""
    pre = ckpt["preprocessing"]
    info = get_model_info(ckpt["model"]["name"])
    x, breast = model_input(image, pre)
    device = next(model.parameters()).device
    xt = torch.from_numpy(x)[None].to(device)
    with torch.no_grad():
        logit = float(model(xt).float().reshape(-1)[0])
    prob = float(apply_temperature(np.array([logit]), float(ckpt.get("temperature", 1.0)))[0])
    threshold = float(ckpt.get("threshold", 0.5))
    heat = heatmaps(model, xt, info.gradcam_layer, method)[0]
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
        source = heatmap_to_source(normalise(heat), breast.box, breast.flip, image.shape[:2])
        rgb = blend(display_gray(image), source)
        write_png(np.ascontiguousarray(rgb[..., ::-1]), out / f"{name}_source_overlay.png")
        row["source_overlay"] = str(out / f"{name}_source_overlay.png")
    if features:
        for layer, maps in feature_maps(model, xt, info.feature_layers).items():
            save_figure(
                feature_grid_figure(maps, layer), out / "features" / f"{name}_{layer.replace('.', '-')}.png"
            )
    return row


def explain(
    run_dir: str | os.PathLike,
    images: list[str | os.PathLike],
    out: str | os.PathLike = "explain-out",
    method: str = "gradcam",
    device: str = "cpu",
    features: bool = True,
) -> ExplainResult:
    """Heatmaps, overlays and feature maps for each image with RUN's best model; explain.csv in `out`."""
    from mammo.evaluate.run import resolve_device
    from mammo.train.checkpoint import load_run

    if method not in METHODS:
        raise UserError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    if not images:
        raise UserError("give at least one IMAGE to explain")
    model, ckpt = load_run(run_dir, device=resolve_device(device))
    out = Path(out)
    paths = [Path(p) for p in images]
    rows = []
    for path, name in tqdm(
        list(zip(paths, _names(paths), strict=True)), desc="explain", unit="image", disable=len(paths) < 5
    ):
        row = {"image": str(path)}
        try:
            row |= explain_one(model, ckpt, read_image(path), name, out, method, features)
        except DataError as exc:  # a bad file gets its row; the rest goes on
            row["error"] = str(exc).splitlines()[0]
        rows.append({c: row.get(c, "") for c in COLUMNS})
    out.mkdir(parents=True, exist_ok=True)
    write_csv(pd.DataFrame(rows, columns=COLUMNS), out / "explain.csv")
    return ExplainResult(out=out, rows=rows)
