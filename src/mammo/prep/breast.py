"""Whole-breast preparation: mask, crop, chest-wall-left flip, aspect-keeping resize and pad (uint16 in/out).

The mask is computed on a strided subsample (about MASK_SIDE pixels on the long side) so a 5000 x 3000
mammogram costs a few milliseconds: the threshold sits halfway between the background level and Otsu's
threshold (Otsu alone cuts into fatty tissue at the skin line), an opening removes film-border lines and
scanner noise, and the largest outer contour, filled, is the breast; labels and markers are other components.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MASK_SIDE = 512  # long side of the subsampled image the breast mask is computed on


@dataclass(frozen=True)
class Breast:
    """Where the breast is: its box (x0, y0, x1, y1, ends exclusive), whether to mirror it, its mask."""

    box: tuple[int, int, int, int]
    flip: bool
    mask: np.ndarray  # uint8 0/1 on the subsampled grid, cropped to `box`
    step: int  # subsampling step of `mask`


def subsample_step(shape: tuple[int, ...], target: int = MASK_SIDE) -> int:
    """The stride that brings the long side of `shape` down to about `target` pixels (1 for small images)."""
    return max(1, max(shape[:2]) // target)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Scale an image to 0..255 by its own maximum (for thresholding only; never written out)."""
    top = float(img.max())
    if top <= 0:
        return np.zeros(img.shape, np.uint8)
    return cv2.convertScaleAbs(img, alpha=255.0 / top)


def breast_threshold(gray8: np.ndarray) -> float:
    """Threshold halfway between the background's mean level and Otsu's threshold."""
    otsu, _ = cv2.threshold(gray8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    background = gray8[gray8 <= otsu]
    level = float(background.mean()) if background.size else 0.0
    return (level + otsu) / 2.0


def breast_mask(small: np.ndarray) -> np.ndarray:
    """uint8 0/1 mask of the breast on a (subsampled) image: largest bright component, holes filled."""
    gray8 = to_uint8(small)
    binary = (gray8 > breast_threshold(gray8)).astype(np.uint8)
    k = max(3, (max(small.shape) // 32) | 1)
    binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    mask = np.zeros(small.shape, np.uint8)
    if contours:
        largest = max(contours, key=cv2.contourArea)
        cv2.drawContours(mask, [largest], -1, 1, thickness=cv2.FILLED)
    return mask


def chest_wall_on_right(mask: np.ndarray) -> bool:
    """True when the breast's mass lies more on the right half of its box (chest wall right, nipple left)."""
    x, y, w, h = cv2.boundingRect(mask)
    cols = mask[y : y + h, x : x + w].sum(axis=0, dtype=np.int64)
    half = w // 2
    return int(cols[w - half :].sum()) > int(cols[:half].sum())


def find_breast(img: np.ndarray, target: int = MASK_SIDE) -> Breast:
    """Locate the breast in a full image; ValueError when there is none (blank or constant image)."""
    step = subsample_step(img.shape, target)
    small = img[::step, ::step]
    mask = breast_mask(small)
    if not mask.any():
        raise ValueError("no breast found (blank or constant image)")
    x, y, w, h = cv2.boundingRect(mask)
    rows, cols = img.shape[:2]
    box = (x * step, y * step, min(cols, (x + w) * step), min(rows, (y + h) * step))
    return Breast(box=box, flip=chest_wall_on_right(mask), mask=mask[y : y + h, x : x + w], step=step)


def fit_shape(shape: tuple[int, int], size: int) -> tuple[int, int]:
    """(rows, cols) of `shape` scaled so its long side is `size`, aspect ratio kept (each side at least 1)."""
    rows, cols = shape
    scale = size / max(rows, cols)
    return max(1, min(size, round(rows * scale))), max(1, min(size, round(cols * scale)))


def resize_to(img: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Resize with pixel-area averaging when shrinking (no aliasing) and bilinear when enlarging; dtype kept.

    Shrinking goes through an integer-factor area step first (OpenCV's fast path: 5x quicker than one
    fractional INTER_AREA on a full mammogram), dropping at most factor-1 edge rows/columns.
    """
    if (rows, cols) == img.shape[:2]:
        return np.ascontiguousarray(img)
    if rows * cols >= img.shape[0] * img.shape[1]:
        return cv2.resize(img, (cols, rows), interpolation=cv2.INTER_LINEAR)
    factor = min(img.shape[0] // rows, img.shape[1] // cols)
    if factor >= 2:
        r, c = img.shape[0] // factor, img.shape[1] // factor
        img = cv2.resize(img[: r * factor, : c * factor], (c, r), interpolation=cv2.INTER_AREA)
    return cv2.resize(img, (cols, rows), interpolation=cv2.INTER_AREA)


def pad_square(img: np.ndarray, size: int) -> np.ndarray:
    """Pad with zeros to size x size: content kept against the left edge, centred vertically."""
    rows, cols = img.shape[:2]
    top = (size - rows) // 2
    return cv2.copyMakeBorder(img, top, size - rows - top, 0, size - cols, cv2.BORDER_CONSTANT, value=0)


def fit_into(shape: tuple[int, int], rows: int, cols: int) -> tuple[int, int]:
    """(rows, cols) of `shape` scaled to fit inside rows x cols, aspect ratio kept (each side at least 1)."""
    scale = min(rows / shape[0], cols / shape[1])
    return max(1, min(rows, round(shape[0] * scale))), max(1, min(cols, round(shape[1] * scale)))


def pad_to(img: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Pad with zeros to rows x cols: content kept against the left edge (chest wall), centred vertically."""
    r, c = img.shape[:2]
    top = (rows - r) // 2
    return cv2.copyMakeBorder(img, top, rows - r - top, 0, cols - c, cv2.BORDER_CONSTANT, value=0)


def rect_input(img: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """A prepared (zero-padded square) breast image refitted into a rows x cols rectangle, aspect ratio kept.

    Mammograms are about 2:1, so a rectangular input spends its pixels on breast instead of square padding:
    the non-zero content is cropped, resized to fit, and padded like `pad_square`. dtype kept.
    """
    ys, xs = np.nonzero(img)
    if len(ys):
        img = img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return pad_to(resize_to(img, *fit_into(img.shape[:2], rows, cols)), rows, cols)


def resize_pad(img: np.ndarray, size: int) -> np.ndarray:
    """Resize keeping the aspect ratio (long side `size`), then zero-pad to size x size; dtype kept."""
    return pad_square(resize_to(img, *fit_shape(img.shape[:2], size)), size)


def prepare_whole(img: np.ndarray, size: int) -> tuple[np.ndarray, Breast]:
    """A full mammogram to a size x size uint16 breast image, chest wall on the left, and where it was."""
    if img.dtype != np.uint16 or img.ndim != 2:
        raise ValueError(f"expected a 2-D uint16 image, got {img.dtype} {img.shape}")
    breast = find_breast(img)
    x0, y0, x1, y1 = breast.box
    rows, cols = fit_shape((y1 - y0, x1 - x0), size)
    out = resize_to(img[y0:y1, x0:x1], rows, cols)
    keep = cv2.dilate(breast.mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    out[resize_to(keep, rows, cols) == 0] = 0
    if breast.flip:
        out = cv2.flip(out, 1)
    return pad_square(out, size), breast
