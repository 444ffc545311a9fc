"""Breast mask, crop, flip and resize-pad on synthetic arrays with known answers."""

import numpy as np
import pytest

from mammo.prep.breast import (
    FRAME_COVER,
    FRAME_FLAT,
    FRAME_MAX,
    breast_mask,
    breast_threshold,
    chest_wall_on_right,
    find_breast,
    fit_shape,
    frame_depth,
    prepare_whole,
    resize_pad,
    resize_to,
    to_uint8,
)

ROWS, COLS = 1200, 800


def half_ellipse(rows=ROWS, cols=COLS, chest_left=True, label=True, border=False):
    """A breast-like half ellipse against one side, a bright label blob far from it, optional film border."""
    yy, xx = np.mgrid[0:rows, 0:cols]
    cy, ry, rx = rows // 2, rows * 0.35, cols * 0.55
    x = xx if chest_left else cols - 1 - xx
    inside = ((x / rx) ** 2 + ((yy - cy) / ry) ** 2) <= 1
    img = np.full((rows, cols), 300, np.uint16)  # dark, slightly noisy film background
    img += (np.random.default_rng(0).integers(0, 200, (rows, cols))).astype(np.uint16)
    tissue = 20000 + (xx * 7 + yy * 3) % 9000  # values well above 255: dynamic range must survive
    img[inside] = tissue[inside].astype(np.uint16)
    if label:
        lx = cols - 140 if chest_left else 60
        img[60:140, lx : lx + 80] = 60000
    if border:
        img[:, :12] = 50000 if not chest_left else img[:, :12]
        img[-10:, :] = 50000
    return img, inside


def test_mask_removes_label_and_keeps_breast():
    img, inside = half_ellipse()
    mask = breast_mask(img[::2, ::2])
    truth = inside[::2, ::2]
    assert mask.dtype == np.uint8
    assert mask[30:70, (COLS - 140) // 2 : (COLS - 60) // 2].sum() == 0  # the label blob is gone
    overlap = (mask.astype(bool) & truth).sum() / truth.sum()
    spill = (mask.astype(bool) & ~truth).sum() / truth.sum()
    assert overlap > 0.97 and spill < 0.03


def test_find_breast_box_excludes_label():
    img, inside = half_ellipse()
    breast = find_breast(img, target=400)
    ys, xs = np.nonzero(inside)
    x0, y0, x1, y1 = breast.box
    step = breast.step
    assert abs(x0 - xs.min()) <= step and abs(x1 - (xs.max() + 1)) <= 2 * step
    assert abs(y0 - ys.min()) <= 2 * step and abs(y1 - (ys.max() + 1)) <= 2 * step
    assert x1 < COLS - 140  # the label (at x >= 660) is outside the box
    assert breast.flip is False


def test_film_border_is_not_breast():
    img, inside = half_ellipse(chest_left=False, border=True)
    x0, _y0, _x1, y1 = find_breast(img, target=400).box
    ys, xs = np.nonzero(inside)
    assert x0 >= xs.min() - 8 and y1 <= ys.max() + 9  # neither the left line nor the bottom line is included


@pytest.mark.parametrize("chest_left", [True, False])
def test_flip_puts_chest_wall_left(chest_left):
    img, _ = half_ellipse(chest_left=chest_left)
    out, breast = prepare_whole(img, 256)
    assert breast.flip is (not chest_left)
    assert out.shape == (256, 256) and out.dtype == np.uint16
    left, right = out[:, :40], out[:, -40:]
    assert (left > 10000).mean() > 0.5  # tissue along the left edge
    assert (right > 0).mean() < 0.05  # padding / nipple side on the right


def test_chest_wall_on_right_from_mass():
    mask = np.zeros((100, 100), np.uint8)
    mask[20:80, 60:100] = 1
    mask[40:60, 40:60] = 1  # nipple-side taper on the left
    assert chest_wall_on_right(mask)
    assert not chest_wall_on_right(mask[:, ::-1].copy())


def test_resize_pad_keeps_aspect_and_range():
    img = np.zeros((400, 100), np.uint16)
    img[:, :] = np.linspace(0, 65535, 400, dtype=np.float64).astype(np.uint16)[:, None]
    out = resize_pad(img, 64)
    assert out.shape == (64, 64) and out.dtype == np.uint16
    assert (out[:, 16:] == 0).all()  # 400x100 -> 64x16, padded on the right
    assert out[:, :16].max() > 64000 and out[:, :16].min() < 1000  # values > 255 survive, full range kept
    assert len(np.unique(out[:, :16])) > 50


def test_fit_shape_and_resize_to():
    assert fit_shape((3000, 1800), 512) == (512, 307)
    assert fit_shape((100, 400), 64) == (16, 64)
    img = np.arange(30 * 21, dtype=np.uint16).reshape(30, 21) * 50
    small = resize_to(img, 10, 7)  # integer factor 3 path
    assert small.shape == (10, 7) and small.dtype == np.uint16
    assert abs(int(small[0, 0]) - int(img[:3, :3].mean())) <= 1
    big = resize_to(img, 60, 42)
    assert big.shape == (60, 42) and big.dtype == np.uint16


def test_blank_image_raises():
    with pytest.raises(ValueError, match="no breast"):
        find_breast(np.zeros((300, 200), np.uint16))


def test_prepare_whole_zeroes_marker_inside_box():
    img, inside = half_ellipse()
    img[200:230, 400:430] = 60000  # a marker within the breast's box but off the breast
    assert not inside[200:230, 400:430].any()
    out, breast = prepare_whole(img, 300)
    x0, y0, x1, y1 = breast.box
    assert x0 <= 400 and x1 >= 430 and y0 <= 200  # the marker lies inside the crop box ...
    scale = 300 / max(y1 - y0, x1 - x0)
    r, c = int((215 - y0) * scale), int((415 - x0) * scale)
    assert out[r - 2 : r + 3, c - 2 : c + 3].max() == 0  # ... and is blanked out
    assert out[150, 20] > 10000  # the breast is not


def _frame_depth_every_line(gray8: np.ndarray, binary: np.ndarray) -> int:
    """The definition `frame_depth` shortcuts: quartiles of every line of the top quarter, not only the covered."""
    lines = gray8[: gray8.shape[0] // FRAME_MAX].astype(np.float32)
    covered = binary[: len(lines)].mean(axis=1) >= FRAME_COVER
    low, high = np.percentile(lines, [25, 75], axis=1)
    frame = covered & (high - low <= FRAME_FLAT)
    return len(frame) if frame.all() else int(np.argmin(frame))


@pytest.mark.parametrize("seed", range(6))
def test_frame_depth_equals_its_every_line_definition(seed):
    rng = np.random.default_rng(seed)
    rows, cols = int(rng.integers(8, 300)), int(rng.integers(8, 300))
    gray8 = rng.integers(0, 255, (rows, cols)).astype(np.uint8)
    depth = int(rng.integers(0, rows // 3 + 1))
    gray8[:depth] = rng.integers(200, 203, (depth, cols))  # a flat bright bar
    if seed % 2 and depth:  # a covered but textured line inside the bar ends the frame there
        gray8[depth // 2] = rng.integers(201, 256, cols)
    binary = (gray8 > int(rng.integers(60, 200))).astype(np.uint8)
    for turn in range(4):
        g, b = np.rot90(gray8, turn), np.rot90(binary, turn)
        assert frame_depth(g, b) == _frame_depth_every_line(g, b)
    img, _ = half_ellipse(border=True)
    small = img[::3, ::3]
    gray8 = to_uint8(small)
    binary = (gray8 > breast_threshold(gray8)).astype(np.uint8)
    for turn in range(4):
        g, b = np.rot90(gray8, turn), np.rot90(binary, turn)
        assert frame_depth(g, b) == _frame_depth_every_line(g, b)
