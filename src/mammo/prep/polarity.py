"""One polarity for every image (bright = dense, dark background), detected from the image's border.

DICOM MONOCHROME1 is already inverted on read (`mammo.io.dicom.read_pixels`); PNG/JPEG exports carry no such
flag, and some machines store them inverted (RSNA machines 29 and 210). The background fills most of a
mammogram's border while the breast touches at most the chest-wall side, top and bottom: an image is
inverted when more of its border frame lies near its top grey level than near its bottom one. Levels are
taken between the 0.5th and 99.5th percentiles, so burned-in text and a few saturated pixels do not count.
"""

from __future__ import annotations

import numpy as np

BORDER = 0.03  # width of the border frame, as a fraction of the long side
NEAR = 0.1  # "near" an end of the grey range: within this fraction of it
SAMPLE_SIDE = 512  # detection runs on a strided subsample about this long (a few ms on a mammogram)


def border_pixels(img: np.ndarray, fraction: float = BORDER) -> np.ndarray:
    """The pixels of the frame `fraction` of the long side wide around the image, flattened."""
    rows, cols = img.shape[:2]
    b = max(1, min(round(fraction * max(rows, cols)), rows // 2, cols // 2))
    inner = img[b : rows - b]
    return np.concatenate(
        [img[:b].ravel(), img[rows - b :].ravel(), inner[:, :b].ravel(), inner[:, cols - b :].ravel()]
    )


def grey_percentiles(img: np.ndarray, q: tuple[float, ...]) -> list[np.float64]:
    """`np.percentile(img.astype(np.float32), q)` (linear method), bit for bit, read off a histogram when it can.

    Unsigned integer grey levels have their order statistics in the cumulative histogram, which is several
    times quicker than partitioning a float copy of the image (NumPy's way); the interpolation between the two
    neighbouring order statistics is NumPy's `_lerp`, in the same precision. Other dtypes go to np.percentile.
    """
    if img.dtype.kind != "u":
        return list(np.percentile(img.astype(np.float32), q))
    n = img.size
    cumulative = np.cumsum(np.bincount(img.ravel()))
    out = []
    for p in q:
        virtual = (n - 1) * (p / 100)
        below = int(np.floor(virtual))
        a, b = (
            np.float32(np.searchsorted(cumulative, i, side="right")) for i in (below, min(below + 1, n - 1))
        )
        gamma, diff = virtual - below, np.float64(b - a)
        out.append(np.float64(b) - diff * (1 - gamma) if gamma >= 0.5 else np.float64(a) + diff * gamma)
    return out


def detect_inverted(img: np.ndarray) -> bool:
    """True when a grayscale image is stored inverted (bright background, dark breast); False for a flat image."""
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {img.shape}")
    step = max(1, max(img.shape) // SAMPLE_SIDE)
    small = img[::step, ::step]
    lo, hi = grey_percentiles(small, (0.5, 99.5))
    if hi <= lo:
        return False
    level = (border_pixels(small).astype(np.float32) - lo) / (hi - lo)
    return bool(np.mean(level > 1 - NEAR) > np.mean(level < NEAR))


def invert(img: np.ndarray) -> np.ndarray:
    """The photographic negative of a uint8/uint16 image (max - x over its dtype's range)."""
    if img.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 or uint16, got {img.dtype}")
    return np.iinfo(img.dtype).max - img


def to_standard_polarity(img: np.ndarray) -> tuple[np.ndarray, bool]:
    """(the image in standard polarity, whether it was inverted): the first step of every preparation."""
    inverted = detect_inverted(img)
    return (invert(img) if inverted else img), inverted
