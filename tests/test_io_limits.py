"""The pixel limit: headers claiming more pixels than any mammogram are refused before decoding."""

from __future__ import annotations

import pytest
from bad_files import huge_png, huge_rle_dicom, png

from mammo.cli import main
from mammo.errors import DataError, UserError
from mammo.io.dicom import read_header, read_pixels, read_raw_pixels
from mammo.io.images import image_header, read_image
from mammo.io.limits import MAX_PIXELS, MAX_PIXELS_ENV, check_pixels, max_pixels
from mammo.prep.run import MAX_SIZE


def test_limit_default_parameter_and_env(monkeypatch):
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    assert max_pixels() == MAX_PIXELS == 50_000_000
    assert max_pixels(1000) == 1000
    monkeypatch.setenv(MAX_PIXELS_ENV, "2000")
    assert max_pixels() == 2000 and max_pixels(10) == 10
    with pytest.raises(DataError, match=r"x.png: header claims 2,400 pixels \(40x60\)"):
        check_pixels("x.png", 40, 60)
    check_pixels("x.png", 40, 50)  # exactly at the limit is fine
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(UserError, match=f"{MAX_PIXELS_ENV}='lots' is not a whole number"):
        max_pixels()


@pytest.mark.parametrize("reader", [read_header, read_pixels, read_raw_pixels, read_image])
def test_huge_rle_dicom_refused_before_decoding(tmp_path, reader):
    path = huge_rle_dicom(tmp_path / "huge.dcm")
    assert path.stat().st_size < 4096
    with pytest.raises(DataError, match=r"huge.dcm: header claims 3,600,000,000 pixels \(60000x60000\)"):
        reader(path)


def test_huge_png_refused_and_limit_applies_to_images(tmp_path, monkeypatch):
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    with pytest.raises(DataError, match="header claims 3,600,000,000 pixels, more than any mammogram"):
        read_image(huge_png(tmp_path / "huge.png"))
    with pytest.raises(DataError, match=r"header claims 80,000,000 pixels \(8000x10000\)"):
        image_header(huge_png(tmp_path / "big.png", 10000, 8000))
    small = png(tmp_path / "small.png")
    assert read_image(small).shape == (64, 48)
    with pytest.raises(DataError, match="limit 100"):
        read_image(small, max_pixels=100)
    monkeypatch.setenv(MAX_PIXELS_ENV, "100")
    with pytest.raises(DataError, match=r"small.png: header claims 3,072 pixels"):
        read_image(small)


def test_ingest_rejects_huge_header_keeps_the_rest(tmp_path, capsys):
    huge_rle_dicom(tmp_path / "imgs" / "huge.dcm")
    png(tmp_path / "imgs" / "ok.png")
    (tmp_path / "t.csv").write_text("image,label,patient_id\nimgs/huge.dcm,1,A\nimgs/ok.png,0,B\n")
    assert main(["ingest", "--table", str(tmp_path / "t.csv"), "--out", str(tmp_path / "data")]) == 0
    rejected = (tmp_path / "data" / "rejected.csv").read_text()
    assert "huge.dcm" in rejected and "more than any mammogram" in rejected
    assert "ok.png" in (tmp_path / "data" / "manifest.csv").read_text()


@pytest.mark.parametrize("size", [100000, MAX_SIZE + 1, 2])
def test_prepare_size_capped(tmp_path, capsys, size):
    code = main(["prepare", str(tmp_path / "data"), "--out", str(tmp_path / "prep"), "--size", str(size)])
    err = capsys.readouterr().err
    assert code == 2 and f"--size must be between 16 and {MAX_SIZE} pixels" in err and f"got {size}" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "prep").exists()
