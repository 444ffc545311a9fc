"""Lesion boxes, context windows at the border, padded crops."""

import numpy as np
import pytest

from mammo.prep.roi import context_window, crop_padded, mask_box, prepare_roi, table_box


def test_mask_box_and_empty():
    mask = np.zeros((50, 40), np.uint8)
    mask[10:20, 5:30] = 255
    assert mask_box(mask) == (5, 10, 30, 20)
    assert mask_box(np.zeros((5, 5), np.uint8)) is None


def test_table_box_rounds_out_and_clips():
    assert table_box(10.4, 20.6, 30.2, 40.0, (100, 100)) == (10, 20, 31, 40)
    assert table_box(-5, -5, 500, 50, (100, 80)) == (0, 0, 80, 50)
    with pytest.raises(ValueError, match="empty or outside"):
        table_box(200, 10, 250, 20, (100, 100))


def test_context_window_centred_inside():
    # 20x10 box at (100..120, 100..110), context 0.5 -> side 40, centred on (110, 105)
    assert context_window((100, 100, 120, 110), 0.5, (1000, 1000)) == (90, 85, 130, 125)
    assert context_window((100, 100, 120, 110), 0.0, (1000, 1000)) == (100, 95, 120, 115)


def test_context_window_shifted_at_border():
    # near the top-left corner the window moves inside instead of padding
    assert context_window((0, 2, 20, 12), 0.5, (1000, 1000)) == (0, 0, 40, 40)
    # near the bottom-right corner
    assert context_window((990, 995, 1000, 1000), 1.0, (1000, 1000)) == (970, 970, 1000, 1000)


def test_context_window_larger_than_image_is_centred_over_it():
    x0, y0, x1, y1 = context_window((10, 10, 90, 50), 0.5, (60, 100))  # side 160 > both sides
    assert (x1 - x0, y1 - y0) == (160, 160)
    assert (x0, y0) == (-30, -50)  # still centred on the lesion, which the padding allows
    assert x0 <= 0 and y0 <= 0 and x1 >= 100 and y1 >= 60  # covers the whole image


def test_crop_padded_zero_outside():
    img = np.arange(1, 101, dtype=np.uint16).reshape(10, 10)
    crop = crop_padded(img, (-2, -3, 4, 3))
    assert crop.shape == (6, 6)
    assert (crop[:3] == 0).all() and (crop[:, :2] == 0).all()
    assert crop[3, 2] == img[0, 0] and crop[5, 5] == img[2, 3]


def test_prepare_roi_size_flip_and_range():
    img = np.zeros((400, 300), np.uint16)
    img[100:140, 100:120] = 40000
    img[100:140, 100:105] = 65535  # brighter left edge of the lesion
    out, window = prepare_roi(img, (100, 100, 120, 140), 64, 0.5, flip=False)
    assert out.shape == (64, 64) and out.dtype == np.uint16 and out.max() > 60000
    assert window == (70, 80, 150, 160)
    flipped, _ = prepare_roi(img, (100, 100, 120, 140), 64, 0.5, flip=True)
    assert np.array_equal(flipped, out[:, ::-1])
