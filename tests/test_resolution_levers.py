"""Issue 28's levers on the cached trunk: tile pooling by hand, the ensemble, partial-fold pairing, the choice."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from mammo.models.pooling import TilePool, make_pool, tile_starts
from mammo.models.registry import create_model, get_model_info
from mammo.models.split import Rest, make_cut, rest_forward, trunk_forward

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import real_accuracy  # noqa: E402
import real_resolution as rr  # noqa: E402


def test_tile_pool_is_the_largest_window_mean_by_hand():
    x = np.arange(2 * 16, dtype=np.float32).reshape(1, 2, 4, 4)
    x[0, 1] = x[0, 1, ::-1, ::-1]  # channel 1 has its largest values top-left
    # a 4 x 4 map: 2 x 2 windows starting at rows/cols 0, 1 and 2 (nine tiles overlapping by half)
    means = [[x[0, c, i : i + 2, j : j + 2].mean() for i in (0, 1, 2) for j in (0, 1, 2)] for c in (0, 1)]
    out = TilePool()(torch.from_numpy(x))
    assert out.shape == (1, 2, 1, 1)
    np.testing.assert_allclose(out.flatten().numpy(), [max(m) for m in means])
    np.testing.assert_allclose(out.flatten().numpy(), [x[0, 0, 2:, 2:].mean(), x[0, 1, :2, :2].mean()])


def test_tile_pool_sees_a_spot_the_average_dilutes():
    x = torch.zeros(1, 1, 20, 20)
    x[0, 0, 2:4, 15:17] = 1.0  # 4 of 400 positions: a small lesion in a 640 px input's 20 x 20 map
    assert float(TilePool()(x)) == pytest.approx(4 / 100)  # its 10 x 10 tile's mean (a 320 px tile)
    assert float(make_pool("avg", 1)(x)) == pytest.approx(4 / 400)


@pytest.mark.parametrize(
    ("length", "window", "starts"), [(20, 10, [0, 5, 10]), (13, 7, [0, 3, 6]), (1, 1, [0])]
)
def test_tile_windows_reach_both_edges(length, window, starts):
    assert tile_starts(length, window, 3) == starts
    assert starts[-1] + window == length


def test_stage7_cut_splits_the_tiled_network_exactly():
    torch.manual_seed(0)
    info = get_model_info("efficientnet-lite0")
    net = create_model("efficientnet-lite0", pretrained=False, pooling="tiles").eval()
    cut = make_cut(net, info.feature_layers, rr.STAGE7["freeze"])
    x = torch.randn(2, 1, 96, 64)
    with torch.no_grad():
        torch.testing.assert_close(rest_forward(net, trunk_forward(net, x, cut), cut), net(x))
    trained = {n for n, p in Rest(net, cut, True).named_parameters() if p.requires_grad}
    assert "net._blocks.15._project_conv.weight" in trained and "net._conv_head.weight" in trained
    assert "net._blocks.14._project_conv.weight" not in trained  # stage 6 is the cached trunk


def _oof(ids, scores, folds, labels=None):
    n = len(ids)
    return pd.DataFrame(
        {
            "sample_id": ids,
            "patient_id": [f"w{i // 2}" for i in range(n)],
            "label": labels if labels is not None else [i % 2 for i in range(n)],
            "fold": folds,
            "score": scores,
        }
    )


def test_ensemble_is_the_mean_logit_matched_by_sample_id():
    ids = pd.Series(["a", "b", "c"])
    one = _oof(["a", "b", "c"], [1.0, 2.0, 3.0], [0, 1, 2])
    other = _oof(["c", "a", "b"], [6.0, -1.0, 0.0], [2, 0, 1])  # another row order
    np.testing.assert_allclose(rr.ensemble_scores(ids, [one, other]), [0.0, 1.0, 4.5])


def test_a_partial_setting_is_paired_on_its_folds_women_only():
    rng = np.random.default_rng(0)
    n = 80
    ids = [f"s{i}" for i in range(n)]
    folds = np.repeat(np.arange(5), n // 5)
    full = _oof(ids, rng.normal(size=n), folds)
    part = full[full["fold"] < 3].assign(score=rng.normal(size=int((folds < 3).sum())))
    p = rr.paired({"full": full, "part": part}, "full", "part")
    on_part = full.set_index("sample_id").loc[part["sample_id"]]
    assert p["auc_a"] == pytest.approx(roc_auc_score(on_part["label"], on_part["score"]))
    assert p["auc_a"] != pytest.approx(roc_auc_score(full["label"], full["score"]))
    assert p["auc_b"] == pytest.approx(roc_auc_score(part["label"], part["score"]))


def test_choice_skips_extras_partial_rows_the_ensemble_and_rows_without_their_folds(tmp_path):
    settings = {
        "384-avg": {"auc": 0.61},
        "384-tiles": {"auc": 0.62},
        "old-640": {"auc": 0.70},  # an earlier session's row: no out-of-fold rows on disk
        "256-avg-bn": {"auc": 0.80, "extra": True},
        "384-avg-stage7": {"auc": 0.90, "partial": True},
        "ensemble": {"auc": 0.95, "kind": "ensemble"},
    }
    for name in settings:
        if name != "old-640":
            (tmp_path / f"cv-{name}").mkdir()
            (tmp_path / f"cv-{name}" / "oof.csv").write_text("sample_id,score\n")
    assert rr.singles(tmp_path, settings) == ["384-avg", "384-tiles"]
    assert rr.choose(tmp_path, settings) == "384-tiles"


def test_stage7_setting_name_and_recipe():
    assert rr.setting_name(384, "avg", True, rr.STAGE7["freeze"]) == "384-avg-stage7"
    assert rr.setting_name(384, "avg") == "384-avg"
    recipe = rr.recipe_for(384, "avg", overrides=rr.stage7_overrides())
    assert recipe["freeze"] == 7 and recipe["epochs"] == rr.STAGE7["epochs"] and recipe["size"] == 384


def test_final_trains_what_the_study_chose(tmp_path, monkeypatch):
    path = tmp_path / "resolution.json"
    monkeypatch.setattr(rr, "OUT_JSON", path)
    assert real_accuracy.final_setting() == (*rr.FINAL_DEFAULT, {})
    row = {"size": 384, "pooling": "avg", "head_norm": "trained", "freeze": 7}
    path.write_text(json.dumps({"chosen": "384-avg-stage7", "cv": {"384-avg-stage7": row}}))
    assert real_accuracy.final_setting() == (384, "avg", True, rr.stage7_overrides())
    row = {"size": 640, "pooling": "tiles", "head_norm": "pretrained", "freeze": 9}
    path.write_text(json.dumps({"chosen": "640-tiles", "cv": {"640-tiles": row}}))
    assert real_accuracy.final_setting() == (640, "tiles", False, {})


def test_tiled_network_exports_to_onnx_with_the_same_logits():
    import io
    import warnings

    import onnxruntime as ort

    torch.manual_seed(0)
    net = create_model("efficientnet-lite0", pretrained=False, pooling="tiles").eval()
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # tracer warnings: the tile windows are constants at the exported size
        torch.onnx.export(
            net,
            (torch.zeros(1, 1, 96, 64),),
            buffer,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        )
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 1, 96, 64)
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {"x": x.numpy()})[0], net(x).numpy(), atol=1e-4)
