"""`mammo explain`: heatmap sign (hot = malignant), inverse mapping onto the source, files, bad inputs, CLI."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_seed_run

from mammo.cli import main
from mammo.errors import UserError
from mammo.explain.checks import pointing_hits
from mammo.explain.geometry import (
    heatmap_to_source,
    input_point_to_source,
    rect_heatmap_to_square,
    rect_mask_to_input,
    roi_mask_to_input,
    whole_mask_to_input,
)
from mammo.explain.maps import explain_batch, heatmaps
from mammo.explain.run import explain
from mammo.prep.breast import find_breast, prepare_whole, rect_input


class SpotModel(torch.nn.Module):
    """logit = sign * mean(relu(conv(x))): bright pixels are malignant (sign +1) or benign (sign -1)."""

    def __init__(self, sign: float = 1.0) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1, bias=False)
        torch.nn.init.constant_(self.conv.weight, 1.0 / 9)
        self.sign = sign

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sign * torch.relu(self.conv(x)).mean(dim=(1, 2, 3))[:, None]


def _spot_image(size: int = 32, at: tuple[int, int] = (20, 9)) -> torch.Tensor:
    x = torch.zeros(1, 1, size, size)
    x[0, 0, at[0] - 2 : at[0] + 3, at[1] - 2 : at[1] + 3] = 1.0
    return x


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "occlusion"])
def test_hot_means_more_malignant(method):
    x = _spot_image()
    heat = heatmaps(SpotModel(1.0), x, "conv", method)[0]
    r, c = np.unravel_index(np.argmax(heat), heat.shape)
    assert abs(r - 20) <= 3 and abs(c - 9) <= 3, (r, c)
    assert heat.min() >= 0 and heat[20, 9] > 2 * heat[5, 28]
    # evidence for benign is not shown as malignant evidence
    against = heatmaps(SpotModel(-1.0), x, "conv", method)[0]
    assert against[20, 9] <= 0.5 * heat[20, 9]


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "occlusion"])
def test_a_batch_is_explained_in_one_pass_as_each_image_alone(method):
    model = SpotModel(1.0)
    backwards: list[int] = []
    model.conv.register_full_backward_hook(lambda *_: backwards.append(1))
    x = torch.cat([_spot_image(), 3 * _spot_image(at=(8, 20)), torch.zeros(1, 1, 32, 32)])
    batch = explain_batch(model, x, "conv", method, feature_layers=("conv",))
    assert len(backwards) == (0 if method == "occlusion" else 1)  # one backward for the whole batch
    alone = np.stack([heatmaps(model, x[i : i + 1], "conv", method)[0] for i in range(3)])
    np.testing.assert_allclose(batch.maps, alone, rtol=1e-5, atol=1e-9)
    assert batch.maps[2].max() == 0 and batch.maps[1].max() > batch.maps[0].max() > 0
    with torch.no_grad():
        np.testing.assert_allclose(batch.logits, model(x).reshape(-1).numpy(), rtol=1e-6)
    assert batch.features["conv"].shape == (3, 2, 32, 32)
    assert len(model.conv._forward_hooks) <= 1  # MONAI's hooks are registered once, not once per call
    # the backward pass stops at the layer: no weight gradients, and the parameters are left as they were
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_heatmap_maps_back_to_a_known_source_point():
    box, size = (50, 20, 250, 380), 64  # breast box 200 wide, 360 tall in a 400 x 300 source
    for flip in (False, True):
        heat = np.zeros((size, size), np.float32)
        heat[40, 10] = 1.0
        src = heatmap_to_source(heat, box, flip, (400, 300))
        want = input_point_to_source(40, 10, box, flip, size)
        got = np.unravel_index(np.argmax(src), src.shape)
        assert abs(got[0] - want[0]) <= 6 and abs(got[1] - want[1]) <= 6, (flip, got, want)
        assert want[1] > 150 if flip else want[1] < 150  # mirrored: near the chest wall on the right
        assert src[:20].max() == 0 and src[:, 250:].max() == 0  # nothing outside the breast box


def _breast_with_dot(chest_wall_right: bool) -> tuple[np.ndarray, tuple[int, int]]:
    """A 600 x 400 uint16 'mammogram': a half-disc breast on one side and one bright dot inside it."""
    img = np.zeros((600, 400), np.uint16)
    cx = 399 if chest_wall_right else 0
    cv2.ellipse(img, (cx, 300), (260, 220), 0, 0, 360, 20000, -1)
    dot = (380, 330 if chest_wall_right else 70)
    cv2.circle(img, (dot[1], dot[0]), 6, 60000, -1)
    return img, dot


@pytest.mark.parametrize("chest_wall_right", [False, True])
def test_prepare_then_back_finds_the_same_point(chest_wall_right):
    img, dot = _breast_with_dot(chest_wall_right)
    size = 128
    prepared, breast = prepare_whole(img, size)
    assert breast.flip == chest_wall_right
    r, c = np.unravel_index(np.argmax(prepared), prepared.shape)  # where prepare moved the dot
    heat = np.zeros((size, size), np.float32)
    heat[r, c] = 1.0
    back = np.unravel_index(np.argmax(heatmap_to_source(heat, breast.box, breast.flip, img.shape)), img.shape)
    step = (breast.box[3] - breast.box[1]) / size
    assert abs(back[0] - dot[0]) <= 2 * step + 1 and abs(back[1] - dot[1]) <= 2 * step + 1, (back, dot)
    # and forwards: the dot's mask lands where prepare put the dot
    mask = np.zeros(img.shape, np.uint8)
    cv2.circle(mask, (dot[1], dot[0]), 6, 255, -1)
    assert whole_mask_to_input(mask, breast.box, breast.flip, size)[r, c]
    assert find_breast(img).box == breast.box


@pytest.mark.parametrize("chest_wall_right", [False, True])
def test_rectangular_input_maps_back_to_the_same_point(chest_wall_right):
    img, dot = _breast_with_dot(chest_wall_right)
    size, rows, cols = 128, 96, 48
    prepared, breast = prepare_whole(img, size)
    rect = rect_input(prepared, rows, cols)
    r, c = np.unravel_index(np.argmax(rect), rect.shape)  # where the rectangular input holds the dot
    heat = np.zeros((rows, cols), np.float32)
    heat[r, c] = 1.0
    square = rect_heatmap_to_square(heat, prepared)
    assert square.shape == prepared.shape and square[prepared == 0].max() == 0
    back = np.unravel_index(
        np.argmax(heatmap_to_source(square, breast.box, breast.flip, img.shape)), img.shape
    )
    step = (breast.box[3] - breast.box[1]) / rows
    assert abs(back[0] - dot[0]) <= 2 * step + 1 and abs(back[1] - dot[1]) <= 2 * step + 1, (back, dot)
    # and forwards: a mask on the prepared square lands where the rectangle holds the dot
    pr, pc = np.unravel_index(np.argmax(prepared), prepared.shape)
    mask = np.zeros(prepared.shape, np.uint8)
    cv2.circle(mask, (int(pc), int(pr)), 3, 255, -1)
    assert rect_mask_to_input(mask, prepared, rows, cols)[r, c]


def test_roi_mask_follows_window_and_flip():
    mask = np.zeros((100, 100), np.uint8)
    mask[10:20, 60:70] = 255  # top-left corner of the window (60, 10, 100, 50)
    plain = roi_mask_to_input(mask, (60, 10, 100, 50), False, 40)
    flipped = roi_mask_to_input(mask, (60, 10, 100, 50), True, 40)
    assert plain[:10, :10].all() and not plain[20:, 20:].any()
    assert flipped[:10, -10:].all() and not flipped[:, :20].any()


def test_pointing_hits():
    maps = np.zeros((2, 4, 4))
    maps[0, 1, 1] = maps[1, 3, 3] = 1
    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True
    assert pointing_hits(maps, [mask, mask]).tolist() == [True, False]


def _tiny_run(tmp_path, task: str = "whole", size: int = 32):
    run = tmp_path / "run"
    write_seed_run(run, None, size, 0.2, 0.3, task=task)
    return run


def test_explain_writes_overlays_heatmaps_features_and_source_map(tmp_path):
    run = _tiny_run(tmp_path)
    img, _ = _breast_with_dot(True)
    cv2.imwrite(str(tmp_path / "left.png"), img)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    result = explain(run, [tmp_path / "left.png", tmp_path / "broken.png"], tmp_path / "out", "gradcam")
    out = tmp_path / "out"
    table = pd.read_csv(out / "explain.csv", keep_default_na=False)
    assert len(table) == 2 and table.loc[0, "error"] == "" and "not an image" in table.loc[1, "error"]
    assert 0 <= float(table.loc[0, "probability"]) <= 1
    heat = np.load(out / "left_heatmap.npy")
    assert heat.shape == (32, 32) and heat.dtype == np.float32 and heat.min() >= 0
    source = cv2.imread(str(out / "left_source_overlay.png"))
    assert source.shape[:2] == img.shape  # full resolution of the original
    assert cv2.imread(str(out / "left_overlay.png")) is not None
    assert len(list((out / "features").glob("left_*.png"))) == 3  # one grid per seed-basic block
    assert "explained 1 of 2" in result.summary()


def test_a_large_source_overlay_is_shrunk_and_keeps_the_breast_in_place(tmp_path, monkeypatch):
    import mammo.explain.run as explain_run
    import mammo.explain.sources as sources

    monkeypatch.setattr(sources, "SOURCE_MAX_SIDE", 200)  # the 600 x 400 source shrinks by 3
    real = explain_run.explain_batch

    def uniform(*args, **kwargs):
        ev = real(*args, **kwargs)
        ev.maps[:] = 1.0  # evidence everywhere in the input: the overlay shows where the input came from
        return ev

    monkeypatch.setattr(explain_run, "explain_batch", uniform)
    img, _ = _breast_with_dot(True)
    cv2.imwrite(str(tmp_path / "big.png"), img)
    explain(_tiny_run(tmp_path), [tmp_path / "big.png"], tmp_path / "out", workers=0, features=False)
    heat = cv2.imread(str(tmp_path / "out" / "big_source_overlay.png"))
    assert heat.shape[:2] == (200, 134)
    coloured = np.ptp(heat.astype(int), axis=2) > 0
    assert coloured[:, 80:].any() and not coloured[:, :40].any()  # the breast (and the map) is on the right


def test_explain_errors_and_cli(tmp_path, capsys):
    run = _tiny_run(tmp_path, task="roi")
    with pytest.raises(UserError, match="--method"):
        explain(run, [tmp_path / "x.png"], tmp_path / "o", method="lime")
    cv2.imwrite(str(tmp_path / "crop.png"), np.full((50, 60), 30000, np.uint16))
    code = main(
        [
            "explain",
            str(run),
            str(tmp_path / "crop.png"),
            "--out",
            str(tmp_path / "o"),
            "--method",
            "gradcam++",
            "--no-features",
            "--crops",
        ]
    )
    assert code == 0 and "malignant probability" in capsys.readouterr().out
    assert not (tmp_path / "o" / "crop_source_overlay.png").exists()  # roi runs have no source mapping
    assert main(["explain", str(tmp_path / "nowhere"), str(tmp_path / "crop.png")]) != 0
    assert "nowhere: no such RUN folder" in capsys.readouterr().err
    (tmp_path / "empty_run").mkdir()
    assert main(["explain", str(tmp_path / "empty_run"), str(tmp_path / "crop.png")]) != 0
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["explain", str(run), str(tmp_path / "typo.png")]) != 0
    assert "typo.png: no such file or folder" in capsys.readouterr().err


def test_explain_takes_folders_a_table_and_an_roi_box_like_predict(tmp_path, capsys):
    from mammo.predict.files import predict

    img, _ = _breast_with_dot(False)
    (tmp_path / "scans" / "deep").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "scans" / "a.png"), img)
    cv2.imwrite(str(tmp_path / "scans" / "deep" / "b.png"), img[:, ::-1])
    whole = explain(_tiny_run(tmp_path), [tmp_path / "scans"], tmp_path / "w", workers=0, features=False)
    assert [Path(r["image"]).name for r in whole.rows] == ["a.png", "b.png"]  # recursive, sorted
    assert all(r["source_overlay"] for r in whole.rows)

    roi = tmp_path / "roi"
    write_seed_run(roi, None, 32, 0.2, 0.3, task="roi", prepare={"size": 64, "context": 0.5})
    full = tmp_path / "scans" / "a.png"
    with pytest.raises(UserError, match="--box"):
        explain(roi, [full], tmp_path / "r0", workers=0)
    capsys.readouterr()
    assert main(["explain", str(roi), str(full), "--out", str(tmp_path / "r1")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--box" in err[0] and "--table" in err[0]
    box = (40.0, 340.0, 100.0, 420.0)
    by_box = explain(roi, [full], tmp_path / "r2", box=box, workers=0, features=False)
    pd.DataFrame(
        {"image": [str(full)], "x_min": [40], "y_min": [340], "x_max": [100], "y_max": [420]}
    ).to_csv(tmp_path / "t.csv", index=False)
    by_table = explain(roi, table=tmp_path / "t.csv", out=tmp_path / "r3", workers=0, features=False)
    predicted = predict(roi, [full], box=box, workers=0, device="cpu").rows["probability_malignant"][0]
    assert by_box.rows[0]["probability"] == pytest.approx(predicted, rel=1e-5)
    assert by_table.rows[0]["probability"] == pytest.approx(predicted, rel=1e-5)
    assert not by_box.rows[0]["source_overlay"]  # roi windows are not laid back onto the source


def test_an_all_zero_map_says_so_and_the_scale_is_recorded(tmp_path, monkeypatch):
    import mammo.explain.run as explain_run

    real = explain_run.explain_batch

    def one_blank(*args, **kwargs):
        ev = real(*args, **kwargs)
        ev.maps[0] = 0.0  # the first image of the batch: no evidence anywhere
        ev.maps[1] = 0.0
        ev.maps[1, 5, 5] = 7.0
        return ev

    monkeypatch.setattr(explain_run, "explain_batch", one_blank)
    img, _ = _breast_with_dot(True)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), img)
    run = _tiny_run(tmp_path)
    shared = explain(run, [tmp_path / "a.png", tmp_path / "b.png"], tmp_path / "s", workers=0, features=False)
    a, b = shared.rows
    assert a["note"].startswith("all-zero map") and a["map_max"] == 0 and "all-zero map" in shared.summary()
    assert b["note"] == "" and b["map_max"] == pytest.approx(7.0) and shared.top == pytest.approx(7.0)
    table = pd.read_csv(tmp_path / "s" / "explain.csv", keep_default_na=False)
    assert table["scale"].tolist() == ["shared: 7", "shared: 7"] and table.loc[0, "note"] == a["note"]
    per_image = explain(
        run,
        [tmp_path / "a.png", tmp_path / "b.png"],
        tmp_path / "p",
        workers=0,
        features=False,
        scale="per-image",
    )
    assert [r["scale"] for r in per_image.rows] == ["per-image", "per-image"]
    with pytest.raises(UserError, match="--scale"):
        explain(run, [tmp_path / "a.png"], tmp_path / "x", scale="log")


def test_an_all_zero_overlay_is_a_note_not_a_uniform_colour():
    from mammo.explain.figures import ZERO_NOTE, overlay_figure

    x = np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32)
    zero = overlay_figure(x, np.zeros((32, 32), np.float32), "t")
    texts = [t.get_text() for ax in zero.axes for t in ax.texts]
    assert any("all-zero map" in t for t in texts) and len(zero.axes) == 2  # no colour bar
    heat = np.zeros((32, 32), np.float32)
    heat[4, 4] = 1.0
    shown = overlay_figure(x, heat, "t", top=4.0)
    assert len(shown.axes) == 3 and "one scale" in shown.axes[2].get_ylabel()
    assert ZERO_NOTE.startswith("all-zero map")


def test_overlay_image_shows_no_colour_for_an_all_zero_map():
    from mammo.explain.figures import overlay_image

    x = np.tile(np.linspace(-1, 1, 32, dtype=np.float32), (32, 1))
    heat = np.zeros((32, 32), np.float32)
    blank = overlay_image(x, heat, ("t",), height=64)
    heat[8:12, 8:12] = 2.0
    hot = overlay_image(x, heat, ("t",), height=64)
    body = slice(blank.shape[0] - 64, None)
    right = slice(64 + 8, 2 * 64 + 8)  # the second panel, after the input and the gap
    assert np.ptp(blank[body, right].astype(int), axis=2).max() == 0  # gray, its note in white: no colour
    assert np.ptp(hot[body, right].astype(int), axis=2).max() > 50  # coloured where the map is hot
    stripe = blank[body, 2 * 64 + 16 : 2 * 64 + 34]
    assert np.ptp(stripe.astype(int), axis=2).max() == 0  # no colour bar either


def test_a_rectangular_run_lays_its_map_back_onto_the_source(tmp_path, tiny_registry):
    from conftest import TinyNet

    from mammo.models.checkpoint import make_checkpoint, save_checkpoint

    torch.manual_seed(0)
    pre = {"task": "whole", "size": 48, "width": 24, "mean": 0.2, "std": 0.3, "prepare": {"size": 64}}
    ckpt = make_checkpoint("tiny", {}, TinyNet().state_dict(), pre, 1, 0.5, {})
    save_checkpoint(tmp_path / "rect" / "best.pt", ckpt)
    img, _ = _breast_with_dot(True)
    cv2.imwrite(str(tmp_path / "r.png"), img)
    result = explain(tmp_path / "rect", [tmp_path / "r.png"], tmp_path / "out", workers=0, features=False)
    assert result.rows[0]["error"] == "" and np.load(tmp_path / "out" / "r_heatmap.npy").shape == (48, 24)
    assert cv2.imread(str(tmp_path / "out" / "r_source_overlay.png")).shape[:2] == img.shape
