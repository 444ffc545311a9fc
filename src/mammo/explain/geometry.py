"""Where a model-input pixel came from: pure numpy maps between a source image and the prepared input.

`prepare` (mammo.prep) crops a whole image to the breast box, resizes it keeping the aspect ratio, mirrors it so
the chest wall is on the left and pads it to a square at the left edge; an roi sample is a square window around
the lesion, resized and mirrored the same way. The functions here apply those steps to a lesion mask (forwards)
and undo them for a heatmap (backwards). No library offers this inverse, because it is specific to how
`mammo.prep` lays out its images; the steps reuse mammo.prep's own functions so the two cannot drift apart.
"""

from __future__ import annotations

import cv2
import numpy as np

from mammo.prep.breast import fit_into, fit_shape, pad_square, pad_to, resize_to
from mammo.prep.roi import crop_padded

Box = tuple[int, int, int, int]


def content_region(box: Box, size: int) -> tuple[int, int, int]:
    """(top, rows, cols) of the resized breast crop inside the size x size whole-image input."""
    x0, y0, x1, y1 = box
    rows, cols = fit_shape((y1 - y0, x1 - x0), size)
    return (size - rows) // 2, rows, cols


def heatmap_to_source(heat: np.ndarray, box: Box, flip: bool, source_shape: tuple[int, int]) -> np.ndarray:
    """A whole-image input's (size, size) heatmap laid back onto the source image: unpad, unflip, resize, uncrop.

    Zero outside the breast box. `box` and `flip` are what `mammo.prep.breast.find_breast` found on the source.
    """
    size = heat.shape[0]
    top, rows, cols = content_region(box, size)
    content = heat[top : top + rows, :cols].astype(np.float32)
    if flip:
        content = content[:, ::-1]
    x0, y0, x1, y1 = box
    out = np.zeros(source_shape[:2], np.float32)
    out[y0:y1, x0:x1] = cv2.resize(
        np.ascontiguousarray(content), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR
    )
    return out


def input_point_to_source(row: float, col: float, box: Box, flip: bool, size: int) -> tuple[float, float]:
    """The source (row, col) of the centre of whole-image input pixel (row, col)."""
    top, rows, cols = content_region(box, size)
    x0, y0, x1, y1 = box
    c = cols - 1 - col if flip else col
    return y0 + (row - top + 0.5) * (y1 - y0) / rows - 0.5, x0 + (c + 0.5) * (x1 - x0) / cols - 0.5


def whole_mask_to_input(mask: np.ndarray, box: Box, flip: bool, size: int) -> np.ndarray:
    """A source-sized lesion mask as the whole-image input sees it: bool (size, size)."""
    x0, y0, x1, y1 = box
    _, rows, cols = content_region(box, size)
    crop = resize_to(((mask[y0:y1, x0:x1] > 0) * 255).astype(np.uint8), rows, cols)
    if flip:
        crop = crop[:, ::-1]
    return pad_square(np.ascontiguousarray(crop), size) > 127


def roi_mask_to_input(mask: np.ndarray, window: Box, flip: bool, size: int) -> np.ndarray:
    """A source-sized lesion mask as the roi input (the square `window`, resized, mirrored) sees it: bool."""
    crop = resize_to(((crop_padded(mask, window) > 0) * 255).astype(np.uint8), size, size)
    return (crop[:, ::-1] if flip else crop) > 127


def rect_mask_to_input(mask: np.ndarray, prepared: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """A mask on a prepared square image's grid as the rows x cols rectangular input sees it: bool (rows, cols).

    `mammo.prep.breast.rect_input` crops the prepared image to its non-zero content before refitting it into
    the rectangle, so the mask is cropped with the image's box, then resized and padded the same way.
    """
    ys, xs = np.nonzero(prepared)
    crop = ((mask > 0) * 255).astype(np.uint8)
    if len(ys):
        crop = crop[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return pad_to(resize_to(crop, *fit_into(crop.shape[:2], rows, cols)), rows, cols) > 127


def rect_heatmap_to_square(heat: np.ndarray, prepared: np.ndarray) -> np.ndarray:
    """A rows x cols input's heatmap laid back onto the prepared square image it was refitted from (zero outside).

    Undoes `mammo.prep.breast.rect_input`: the fitted content is cut out of the padding and resized onto the
    prepared image's non-zero box, so `heatmap_to_source` can take it from there.
    """
    rows, cols = heat.shape
    ys, xs = np.nonzero(prepared)
    y0, y1 = (int(ys.min()), int(ys.max()) + 1) if len(ys) else (0, prepared.shape[0])
    x0, x1 = (int(xs.min()), int(xs.max()) + 1) if len(xs) else (0, prepared.shape[1])
    r, c = fit_into((y1 - y0, x1 - x0), rows, cols)
    top = (rows - r) // 2
    content = np.ascontiguousarray(heat[top : top + r, :c], dtype=np.float32)
    out = np.zeros(prepared.shape[:2], np.float32)
    out[y0:y1, x0:x1] = cv2.resize(content, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    return out
