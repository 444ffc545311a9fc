"""Lesion crops: a square window around a finding's box with context, shifted or zero-padded at the border.

Boxes are (x0, y0, x1, y1) in full-image pixels with exclusive ends. The window's side is the box's long
side times (1 + 2 * context), centred on the box; where it would cross the image border it is shifted back
inside (real tissue rather than black), and only a window larger than the image is zero-padded.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from mammo.prep.breast import resize_to

Box = tuple[int, int, int, int]


def mask_box(mask: np.ndarray) -> Box | None:
    """Bounding box of a mask's nonzero pixels (ends exclusive); None when the mask is empty."""
    binary = (mask > 0).astype(np.uint8)
    if not binary.any():
        return None
    x, y, w, h = cv2.boundingRect(binary)
    return x, y, x + w, y + h


def table_box(x_min: float, y_min: float, x_max: float, y_max: float, shape: tuple[int, int]) -> Box:
    """A box given as numbers, rounded outward and clipped to the image; ValueError when empty or outside."""
    rows, cols = shape
    x0, y0 = max(0, math.floor(x_min)), max(0, math.floor(y_min))
    x1, y1 = min(cols, math.ceil(x_max)), min(rows, math.ceil(y_max))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(
            f"box ({x_min}, {y_min}, {x_max}, {y_max}) is empty or outside the {rows}x{cols} image"
        )
    return x0, y0, x1, y1


def _start(center: float, side: int, length: int) -> int:
    """Window start on one axis: centred, then shifted inside [0, length) or centred over it when too big."""
    start = round(center - side / 2)
    low, high = min(0, length - side), max(0, length - side)
    return min(max(start, low), high)


def context_window(box: Box, context: float, shape: tuple[int, int]) -> Box:
    """Square window around `box`: side = long side * (1 + 2 * context), kept inside the image if it fits."""
    if context < 0:
        raise ValueError(f"context must be >= 0, got {context}")
    x0, y0, x1, y1 = box
    side = max(1, math.ceil(max(x1 - x0, y1 - y0) * (1 + 2 * context)))
    rows, cols = shape
    wx = _start((x0 + x1) / 2, side, cols)
    wy = _start((y0 + y1) / 2, side, rows)
    return wx, wy, wx + side, wy + side


def crop_padded(img: np.ndarray, window: Box) -> np.ndarray:
    """The pixels of `window`, zero where it extends past the image border."""
    x0, y0, x1, y1 = window
    rows, cols = img.shape[:2]
    inner = img[max(0, y0) : min(rows, y1), max(0, x0) : min(cols, x1)]
    return cv2.copyMakeBorder(
        inner, max(0, -y0), max(0, y1 - rows), max(0, -x0), max(0, x1 - cols), cv2.BORDER_CONSTANT, value=0
    )


def prepare_roi(img: np.ndarray, box: Box, size: int, context: float, flip: bool) -> tuple[np.ndarray, Box]:
    """A size x size crop around a lesion box with context (mirrored when `flip`); also returns the window."""
    window = context_window(box, context, img.shape[:2])
    out = resize_to(crop_padded(img, window), size, size)
    return (cv2.flip(out, 1) if flip else out), window
