"""Explanation pictures: heatmap overlays and feature-map grids (matplotlib object API, nothing left open)."""

from __future__ import annotations

import math

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mammo.explain.maps import normalise

HEAT_CMAP = "jet"


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def display_gray(image: np.ndarray) -> np.ndarray:
    """Any image scaled to [0, 1] for display by its 0.5th-99.5th percentiles."""
    img = np.asarray(image, np.float32)
    lo, hi = np.percentile(img, [0.5, 99.5])
    return np.clip((img - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(img)


def blend(gray: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """uint8 RGB of a [0, 1] gray image with a [0, 1] heatmap coloured on top, weighted by the heat itself.

    Cold regions stay plain gray (weight alpha * heat), so the overlay shows the image where nothing is found.
    """
    colour = colormaps[HEAT_CMAP](np.clip(heat, 0.0, 1.0))[..., :3]
    w = (alpha * np.clip(heat, 0.0, 1.0))[..., None]
    rgb = (1.0 - w) * np.clip(gray, 0.0, 1.0)[..., None] + w * colour
    return np.rint(rgb * 255.0).astype(np.uint8)


def overlay_figure(image: np.ndarray, heat: np.ndarray, title: str) -> Figure:
    """Two panels: the model's input, and the same input with the malignant-evidence heatmap over it."""
    fig = _figure(8.0, 4.4)
    left, right = fig.subplots(1, 2)
    gray = display_gray(image)
    left.imshow(gray, cmap="gray", vmin=0, vmax=1)
    left.set_title("model input")
    right.imshow(gray, cmap="gray", vmin=0, vmax=1)
    shown = right.imshow(normalise(heat), cmap=HEAT_CMAP, vmin=0, vmax=1, alpha=0.45)
    right.set_title("evidence for malignant")
    for ax in (left, right):
        ax.set_axis_off()
    fig.colorbar(shown, ax=right, fraction=0.046, pad=0.02, label="relative evidence (hot = more malignant)")
    fig.suptitle(title)
    return fig


def feature_grid_figure(maps: np.ndarray, layer: str, n_max: int = 16) -> Figure:
    """The `n_max` most active channels of one block's (C, h, w) activations as a grid of small images."""
    order = np.argsort(-maps.reshape(maps.shape[0], -1).mean(axis=1))[:n_max]
    cols = math.ceil(math.sqrt(len(order)))
    rows = math.ceil(len(order) / cols)
    fig = _figure(1.6 * cols, 1.6 * rows + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, ch in zip(axes, order, strict=False):
        ax.imshow(maps[ch], cmap="viridis")
        ax.set_title(f"ch {ch}", fontsize=7)
    fig.suptitle(
        f"{layer}: {len(order)} most active of {maps.shape[0]} channels, {maps.shape[1]}x{maps.shape[2]}"
    )
    return fig
