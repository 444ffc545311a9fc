"""The largest image mammo will decode: a header claiming more pixels is refused before any allocation.

A damaged or hostile file can claim 60000 x 60000 pixels over a few kB of compressed data; decoding it would
allocate gigabytes (and the display LUTs several times that in float64) before anything fails. Every reader
in `mammo.io` checks the size its header claims against `max_pixels()` first.
"""

from __future__ import annotations

import os

from mammo.errors import DataError, UserError

# The largest mammograms are about 40 million pixels: DDSM film scanned at 42-50 um (up to ~7000 x 5500),
# full-field digital detectors at 50 um (Fujifilm 5928 x 4728 = 28 MP) or 70 um (Hologic 4096 x 3328 = 13.6 MP).
# 50 million leaves room above all of them while keeping one decoded image (uint16 plus the float64 LUT pass)
# under about 0.5 GB per worker.
MAX_PIXELS = 50_000_000
# The smallest source worth scoring without a warning: no mammogram is under 64 pixels on a side (a 1x1 PNG or a
# thumbnail is a mistake); prepare and predict both warn below it.
MIN_SOURCE_SIDE = 64
MAX_PIXELS_ENV = (
    "MAMMO_MAX_PIXELS"  # raise (or lower) the limit for one run: MAMMO_MAX_PIXELS=80000000 mammo ...
)


def max_pixels(limit: int | None = None) -> int:
    """The pixel limit in force: `limit` when given, else $MAMMO_MAX_PIXELS, else MAX_PIXELS."""
    if limit is not None:
        value: object = limit
        source = "max_pixels"
    else:
        value = os.environ.get(MAX_PIXELS_ENV, "").strip() or MAX_PIXELS
        source = MAX_PIXELS_ENV
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UserError(
            f"{source}={value!r} is not a whole number of pixels; unset it or give e.g. 80000000"
        ) from None
    if number < 1:
        raise UserError(f"{source}={value!r} must be a positive number of pixels")
    return number


def check_pixels(
    path: str | os.PathLike, rows: int, cols: int, frames: int = 1, samples: int = 1, limit: int | None = None
) -> None:
    """DataError naming the file when its header claims more pixels (rows x cols x frames x samples) than allowed."""
    total = max(0, rows) * max(0, cols) * max(1, frames) * max(1, samples)
    top = max_pixels(limit)
    if total > top:
        shape = (
            f"{rows}x{cols}"
            + (f"x{frames} frames" if frames > 1 else "")
            + (f"x{samples}" if samples > 1 else "")
        )
        shape = f" ({shape})" if cols > 1 else ""  # cols 1: only a total is known (PIL's own check)
        raise DataError(
            f"{path}: header claims {total:,} pixels{shape}, more than any mammogram (limit {top:,}); "
            f"the file is damaged, or set {MAX_PIXELS_ENV} higher if it is real"
        )
