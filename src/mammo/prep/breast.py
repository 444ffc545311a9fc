"""Whole-breast preparation: polarity, mask, crop, chest-wall-left flip, aspect-keeping resize and pad (uint16).

The image is first brought to one polarity (`mammo.prep.polarity`). The mask is computed on a strided
subsample (about MASK_SIDE pixels on the long side) so a 5000 x 3000 mammogram costs a few milliseconds: the
threshold is the emptiest grey level between the background and the midway threshold (`breast_threshold`),
flat frame bars along the edges are cleared, an opening removes film-border lines and scanner noise, and the
largest outer contour, filled, is the breast; burned-in labels and markers are other components.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from mammo.prep.polarity import to_standard_polarity

MASK_SIDE = 512  # long side of the subsampled image the breast mask is computed on
BASE_PEAK = 0.05  # a later histogram peak this high relative to the background's may be a film base ...
BASE_DIP = 0.2  # ... when the histogram dips below this fraction of it on both sides
FRAME_MAX = 4  # a frame bar is at most 1/FRAME_MAX of the image deep
FRAME_COVER = 0.95  # ... its lines are at least this much foreground
FRAME_FLAT = 4.0  # ... and flat: interquartile range at most this many levels of 255 (tissue: 15 and more)


@dataclass(frozen=True)
class Breast:
    """Where the breast is: its box (x0, y0, x1, y1, ends exclusive), whether to mirror it, its mask."""

    box: tuple[int, int, int, int]
    flip: bool
    mask: np.ndarray  # uint8 0/1 on the subsampled grid, cropped to `box`
    step: int  # subsampling step of `mask`
    inverted: bool = False  # the source was stored inverted and has been brought to standard polarity


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
    """The least-populated grey level between the background and the midway threshold.

    The midway threshold sits halfway between the background's mean level and Otsu's (Otsu alone cuts into
    fatty tissue). Between the background's level and it, the grey level holding the fewest pixels (histogram
    smoothed over 5 levels) is where the mask changes least: on a flat digital background (exported JPEGs) it
    lies just above black, below the fatty tissue at the skin line, which stays in; on scanned film whose
    background fades smoothly into a scatter halo (CBIS-DDSM) it is the midway threshold itself. The
    background's level is the histogram's peak, or a later peak at least BASE_PEAK as high: the film base of a
    digitised film padded with black (mini-MIAS), so the valley is searched above the film, not below it.
    """
    otsu, _ = cv2.threshold(gray8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    background = gray8[gray8 <= otsu]
    level = float(background.mean()) if background.size else 0.0
    midway = (level + otsu) / 2.0
    counts = np.bincount(gray8.ravel(), minlength=256)
    hist = np.convolve(counts, np.ones(5) / 5, mode="same")[: int(midway) + 1]
    black = int(np.argmax(counts[: len(hist)]))  # unsmoothed: a one-level black peak stays the highest
    peak = film_base(hist, black)
    between = hist[peak + 1 :]
    if between.size == 0:
        return midway
    return min(midway, float(peak + 1 + int(np.argmin(between))))


def film_base(hist: np.ndarray, peak: int) -> int:
    """The level of the background proper: a later isolated histogram peak (film base above black padding).

    A peak counts when it holds at least BASE_PEAK of the main peak's pixels and the histogram falls below
    BASE_DIP of its height both before it (the empty gap above black) and after it (below the breast); the
    gradual rise of fatty tissue in a tightly cropped image has no dip after it.
    """
    for level in range(len(hist) - 2, peak, -1):
        height = hist[level]
        if not (height >= BASE_PEAK * hist[peak] and height >= hist[level - 1] and height >= hist[level + 1]):
            continue
        dip = BASE_DIP * height
        if hist[peak + 1 : level].min(initial=height) <= dip and hist[level + 1 :].min() <= dip:
            return level
    return peak


def frame_depth(gray8: np.ndarray, binary: np.ndarray) -> int:
    """How many lines from the top edge are a frame bar: almost all foreground and flat (no tissue texture).

    Scanners and exports leave uniform bars along an edge; the breast touching an edge is never that flat.
    """
    covered = binary[: gray8.shape[0] // FRAME_MAX].mean(axis=1) >= FRAME_COVER
    # a frame ends at the first line that is not covered, so only the lines above it need their quartiles
    # (the costly part; usually there are none)
    depth = len(covered) if covered.all() else int(np.argmin(covered))
    if depth == 0:
        return 0
    low, high = np.percentile(gray8[:depth].astype(np.float32), [25, 75], axis=1)
    flat = high - low <= FRAME_FLAT  # quartiles, so text or a border line crossing the bar does not count
    return depth if flat.all() else int(np.argmin(flat))


def clear_frames(gray8: np.ndarray, binary: np.ndarray) -> np.ndarray:
    """`binary` with frame bars along any of the four edges set to background (see `frame_depth`)."""
    binary = binary.copy()
    for turn in range(4):  # each edge in turn brought to the top
        g, b = np.rot90(gray8, turn), np.rot90(binary, turn)
        b[: frame_depth(g, b)] = 0
    return binary


def breast_mask(small: np.ndarray) -> np.ndarray:
    """uint8 0/1 mask of the breast on a (subsampled) image: largest bright component, holes filled.

    Frame bars along the edges are cleared first, then an opening removes thin lines and text strokes, and
    the largest outer contour is the breast: burned-in labels and markers are other components.
    """
    gray8 = to_uint8(small)
    binary = clear_frames(gray8, (gray8 > breast_threshold(gray8)).astype(np.uint8))
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


def locate_breast(img: np.ndarray) -> tuple[np.ndarray, Breast]:
    """A full image in standard polarity and its breast (`inverted` says whether it was flipped in grey level)."""
    img, inverted = to_standard_polarity(img)
    return img, replace(find_breast(img), inverted=inverted)


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
    """A full mammogram to a size x size uint16 breast image: standard polarity, chest wall left; and where it was."""
    if img.dtype != np.uint16 or img.ndim != 2:
        raise ValueError(f"expected a 2-D uint16 image, got {img.dtype} {img.shape}")
    img, breast = locate_breast(img)
    x0, y0, x1, y1 = breast.box
    rows, cols = fit_shape((y1 - y0, x1 - x0), size)
    out = resize_to(img[y0:y1, x0:x1], rows, cols)
    keep = cv2.dilate(breast.mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    out[resize_to(keep, rows, cols) == 0] = 0
    if breast.flip:
        out = cv2.flip(out, 1)
    return pad_square(out, size), breast
