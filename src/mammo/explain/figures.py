"""Explanation pictures: heatmap overlays and feature-map mosaics.

`explain` draws its pictures with OpenCV (`overlay_image`, `blend_bgr`, `feature_mosaic`): milliseconds each,
where a matplotlib figure costs a large share of a second and a grid of small axes about a second.
`overlay_figure` is the matplotlib version, for the report. The heatmap colour scale is either each map's own
maximum or one value shared by every image of a call (`top`), so the strengths of different images can be
compared. An all-zero map (no evidence for malignant anywhere) is not drawn as a uniform overlay: the picture
says so in words.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from mammo.explain.maps import normalise
from mammo.explain.sources import display_gray
from mammo.io.figures import new_figure

HEAT_CMAP = "jet"
ZERO_NOTE = "all-zero map: no evidence for malignant anywhere in this input"
_TILE = 64  # side in pixels of one channel in a feature mosaic
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _heat_lut_bgr() -> np.ndarray:
    """(256, 1, 3) uint8 BGR table of the heat colour map, for cv2.applyColorMap."""
    rgb = colormaps[HEAT_CMAP](np.linspace(0.0, 1.0, 256))[:, :3]
    return np.rint(rgb[:, ::-1] * 255.0).astype(np.uint8).reshape(256, 1, 3)


def blend_bgr(gray: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """uint8 BGR of a gray image (uint8, or float in [0, 1]) with a [0, 1] heatmap on top, weighted by the heat.

    Cold regions stay plain gray (weight alpha * heat), so the overlay shows the image where nothing is found.
    OpenCV's colour table and per-pixel blend, so a full-field mammogram takes a fraction of a second.
    """
    h = np.clip(np.asarray(heat, np.float32), 0.0, 1.0)
    colour = cv2.applyColorMap(cv2.convertScaleAbs(h, alpha=255.0), _heat_lut_bgr())
    g = (
        gray
        if gray.dtype == np.uint8
        else cv2.convertScaleAbs(np.clip(gray.astype(np.float32), 0, 1), alpha=255.0)
    )
    w = h * np.float32(alpha)
    return cv2.blendLinear(cv2.cvtColor(g, cv2.COLOR_GRAY2BGR), colour, 1.0 - w, w)


def overlay_figure(image: np.ndarray, heat: np.ndarray, title: str, top: float | None = None) -> Figure:
    """Two panels: the model's input, and the same input with the malignant-evidence heatmap over it.

    `top` is the value drawn hottest (default: this map's maximum; a value shared across images makes their
    colours comparable). An all-zero map gets a note instead of an overlay.
    """
    fig = new_figure(8.0, 4.4)
    left, right = fig.subplots(1, 2)
    gray = display_gray(image)
    left.imshow(gray, cmap="gray", vmin=0, vmax=1)
    left.set_title("model input")
    right.imshow(gray, cmap="gray", vmin=0, vmax=1)
    right.set_title("evidence for malignant")
    for ax in (left, right):
        ax.set_axis_off()
    if float(np.max(heat)) > 0:
        shown = right.imshow(normalise(heat, top), cmap=HEAT_CMAP, vmin=0, vmax=1, alpha=0.45)
        label = "relative evidence" if top is None else f"evidence / {top:.3g} (one scale for all images)"
        fig.colorbar(shown, ax=right, fraction=0.046, pad=0.02, label=f"{label} (hot = more malignant)")
    else:
        right.text(
            0.5,
            0.5,
            ZERO_NOTE.replace(": ", ":\n"),
            transform=right.transAxes,
            ha="center",
            va="center",
            color="white",
            backgroundcolor="black",
            wrap=True,
        )
    fig.suptitle(title)
    return fig


def _text(img: np.ndarray, text: str, xy: tuple[int, int], scale: float = 0.5, colour=(0, 0, 0)) -> None:
    cv2.putText(img, text, xy, _FONT, scale, colour, 1, cv2.LINE_AA)


def overlay_image(
    image: np.ndarray, heat: np.ndarray, lines: tuple[str, ...], top: float | None = None, height: int = 384
) -> np.ndarray:
    """BGR uint8: the model's input beside it with the heatmap on top, a colour bar, `lines` of text above.

    `top` is the value drawn hottest (default: this map's maximum; one value for every image of a call makes
    their colours comparable), written at the top of the bar. An all-zero map gets a note instead of colours.
    Drawn with OpenCV in milliseconds; `overlay_figure` is the matplotlib version.
    """
    rows, cols = image.shape[:2]
    width = max(1, round(cols * height / rows))
    gray = cv2.resize(display_gray(image), (width, height), interpolation=cv2.INTER_LINEAR)
    gray8 = cv2.convertScaleAbs(gray, alpha=255.0)
    left = cv2.cvtColor(gray8, cv2.COLOR_GRAY2BGR)
    most = float(np.max(heat))
    if most > 0:
        shown = cv2.resize(normalise(heat, top), (width, height), interpolation=cv2.INTER_LINEAR)
        right = blend_bgr(gray8, shown)
    else:
        right = left.copy()
        for i, part in enumerate(ZERO_NOTE.split(": ")):
            _text(right, part, (8, height // 2 - 10 + 22 * i), 0.5, (255, 255, 255))
    bar = np.linspace(255, 0, height).astype(np.uint8)[:, None].repeat(18, axis=1)
    bar = cv2.applyColorMap(bar, _heat_lut_bgr()) if most > 0 else np.full((height, 18, 3), 200, np.uint8)
    labels = np.full((height, 70, 3), 255, np.uint8)
    if most > 0:
        _text(labels, f"{top if top is not None else most:.3g}", (4, 14), 0.45)
        _text(labels, "0", (4, height - 6), 0.45)
    gap = np.full((height, 8, 3), 255, np.uint8)
    body = np.hstack([left, gap, right, gap, bar, labels])
    head = np.full((22 * len(lines) + 10, body.shape[1], 3), 255, np.uint8)
    for i, line in enumerate(lines):
        _text(head, line, (6, 20 + 22 * i))
    return np.vstack([head, body])


def feature_mosaic(maps: np.ndarray, layer: str, n_max: int = 16) -> np.ndarray:
    """The `n_max` most active channels of one block's (C, h, w) activations as one BGR uint8 picture.

    Each channel is scaled to its own range, enlarged to a tile, coloured (viridis) and labelled; a header
    names the block. Drawn with numpy and OpenCV (one colour-map call for all tiles): a matplotlib grid of
    small axes costs about a second each, and a mammogram has a dozen blocks.
    """
    order = np.argsort(-maps.reshape(maps.shape[0], -1).mean(axis=1))[:n_max]
    chosen = maps[order].astype(np.float32)
    lo = chosen.min(axis=(1, 2), keepdims=True)
    span = chosen.max(axis=(1, 2), keepdims=True) - lo
    scaled = np.rint((chosen - lo) * (255.0 / np.where(span > 0, span, 1.0))).astype(np.uint8)
    cols = math.ceil(math.sqrt(len(order)))
    rows = math.ceil(len(order) / cols)
    step = _TILE + 2
    gray = np.zeros((rows * step, cols * step), np.uint8)
    tiles = np.zeros(gray.shape, bool)
    for k, tile in enumerate(scaled):
        y, x = (k // cols) * step, (k % cols) * step
        gray[y : y + _TILE, x : x + _TILE] = cv2.resize(tile, (_TILE, _TILE), interpolation=cv2.INTER_NEAREST)
        tiles[y : y + _TILE, x : x + _TILE] = True
    body = cv2.applyColorMap(gray, cv2.COLORMAP_VIRIDIS)
    body[~tiles] = 255
    for k, ch in enumerate(order):
        y, x = (k // cols) * step, (k % cols) * step
        cv2.putText(body, f"ch {ch}", (x + 2, y + 11), _FONT, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
    head = np.full((44, max(body.shape[1], 300), 3), 255, np.uint8)
    lines = (layer, f"{len(order)} most active of {maps.shape[0]} channels, {maps.shape[1]}x{maps.shape[2]}")
    for i, text in enumerate(lines):
        cv2.putText(head, text, (3, 17 + 20 * i), _FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    out = np.full((head.shape[0] + body.shape[0], head.shape[1], 3), 255, np.uint8)
    out[: head.shape[0]] = head
    out[head.shape[0] :, : body.shape[1]] = body
    return out
