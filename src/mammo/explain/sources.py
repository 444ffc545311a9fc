"""What explain reads: predict's inputs, plus for whole-image runs the source image for display and its breast box.

Torch-free, so the worker processes that decode files never load it (they import this module, not explain.run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mammo.predict.files import Loaded, Source, load_source
from mammo.predict.run import InputSpec
from mammo.prep.breast import locate_breast, resize_to

SOURCE_MAX_SIDE = (
    2048  # the source overlay is drawn at the source's resolution, at most this many pixels high/wide
)
_PERCENTILE_PIXELS = 1 << 20  # display_gray estimates its percentiles on at most about this many pixels


def display_gray(image: np.ndarray) -> np.ndarray:
    """Any image as float32 in [0, 1] for display, by its 0.5th-99.5th percentiles (estimated on a subsample)."""
    img = np.asarray(image)
    step = max(1, math.isqrt(img.size // _PERCENTILE_PIXELS))
    lo, hi = np.percentile(img[::step, ::step], [0.5, 99.5])
    if hi <= lo:
        return np.zeros(img.shape, np.float32)
    out = img.astype(np.float32)
    out -= np.float32(lo)
    out *= np.float32(1.0 / (hi - lo))
    return np.clip(out, 0.0, 1.0, out=out)


@dataclass(frozen=True)
class Shown:
    """A worker's answer for explain: predict's Loaded, plus for whole runs the source for display and the breast."""

    loaded: Loaded
    gray: np.ndarray | None = None  # uint8, the source at most SOURCE_MAX_SIDE high/wide
    box: tuple[int, int, int, int] | None = None  # the breast box on `gray`'s grid
    flip: bool = False
    prepared: np.ndarray | None = (
        None  # the PREP square, for rectangular runs (their input is refitted from it)
    )

    @property
    def x(self) -> np.ndarray | None:
        """The model input (None when the file could not be prepared), as `batches` counts it."""
        return self.loaded.x


def _display_source(image: np.ndarray) -> tuple[np.ndarray, int]:
    """(uint8 display image, step): the source shrunk (area average) by a whole step to <= SOURCE_MAX_SIDE a side."""
    step = -(-max(image.shape[:2]) // SOURCE_MAX_SIDE)
    rows, cols = image.shape[:2]
    small = resize_to(image, -(-rows // step), -(-cols // step)) if step > 1 else image
    return np.rint(display_gray(small) * 255.0).astype(np.uint8), step


def load_shown(job: tuple[Source, InputSpec]) -> Shown:
    """Worker: predict's read, decode and preprocessing; for whole runs also the display image and breast box."""
    source, spec = job
    loaded, image, prepared = load_source(source, spec)
    if image is None or spec.task != "whole":
        return Shown(loaded)
    breast = locate_breast(image)[1]  # on the image in standard polarity, as prepare found it
    gray, step = _display_source(image)
    x0, y0, x1, y1 = breast.box
    box = (x0 // step, y0 // step, max(x0 // step + 1, -(-x1 // step)), max(y0 // step + 1, -(-y1 // step)))
    return Shown(loaded, gray, box, breast.flip, prepared if spec.width is not None else None)
