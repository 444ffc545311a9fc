"""Cached-trunk training: the split network equals the whole one, its RUN is ordinary, its cache is reused."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from conftest import RUN_FILES, make_prep

from mammo.evaluate.cv import run_scores
from mammo.models.checkpoint import load_run
from mammo.models.registry import create_model, get_model_info
from mammo.models.split import make_cut, rest_forward, trunk_forward
from mammo.prep.dataset import read_dataset_csv
from mammo.train.cache import TrunkCache
from mammo.train.cached import score_cached, train_cached

LAYERS = get_model_info("efficientnet-lite0").feature_layers
FP16 = 1e-2  # the cache stores float16 (3 significant digits): logits from it agree with the images' to ~1e-3
RECIPE = {
    "model": "efficientnet-lite0",
    "size": 64,
    "epochs": 2,
    "batch_size": 8,
    "freeze": 7,
    "lr": 1e-3,
    "model_args": {"pooling": "attention"},
    "device": "cpu",
}


@pytest.mark.parametrize("pooling", ["avg", "max", "topk", "tiles", "attention"])
def test_trunk_then_rest_is_the_whole_network(pooling):
    torch.manual_seed(0)
    net = create_model("efficientnet-lite0", pretrained=False, pooling=pooling).eval()
    if pooling == "attention":  # an untrained attention pool is the average; give it something to do
        torch.nn.init.normal_(net._avg_pooling.score.weight)
    x = torch.randn(2, 1, 64, 96)
    with torch.no_grad():
        whole = net(x)
        for freeze in (1, 5, 7, 8, 9):  # stem, stage ends, head conv
            cut = make_cut(net, LAYERS, freeze)
            torch.testing.assert_close(rest_forward(net, trunk_forward(net, x, cut), cut), whole)


def _cache_files(cache):
    return {p: p.stat().st_mtime_ns for p in cache.rglob("*.npy")}


def test_cached_run_is_an_ordinary_run_and_its_cache_is_reused(tmp_path):
    prep = make_prep(tmp_path / "prep", n_train=16, n_val=8, n_test=4, size=64)
    cache = tmp_path / "cache"
    result = train_cached(prep, tmp_path / "run", cache, overrides=RECIPE, engine="torch", mirror=True)
    assert sorted(os.listdir(result.run_dir)) == RUN_FILES
    files = _cache_files(cache)
    assert len(files) == 16 * 2 + 8  # train images and their mirrors, val images, once each

    # the standard loader rebuilds the whole network; on the images it gives the logits of the cached path
    model, ckpt = load_run(tmp_path / "run")
    assert ckpt["model"]["args"]["pooling"] == "attention" and ckpt["temperature"] > 0
    pretrained = create_model("efficientnet-lite0", pretrained=True).state_dict()
    for k in (
        "_conv_stem.weight",
        "_blocks.14._project_conv.weight",
    ):  # trunk: the packaged weights, untouched
        assert torch.equal(model.state_dict()[k], pretrained[k])
    assert model._avg_pooling.score.weight.abs().sum() > 0  # the rest (here the attention pool) was trained
    rows = read_dataset_csv(prep)
    test = rows[rows["split"] == "test"].reset_index(drop=True)
    whole = run_scores(tmp_path / "run", prep, test)
    cached = score_cached(tmp_path / "run", prep, test, cache, engine="torch")
    np.testing.assert_allclose(cached, whole, rtol=FP16, atol=FP16)

    # another fold on the same images reads the cache instead of recomputing it
    files = _cache_files(cache)
    overrides = {**RECIPE, "seed": 1, "model_args": {"pooling": "avg"}}
    train_cached(prep, tmp_path / "run2", cache, overrides=overrides, engine="torch")
    assert _cache_files(cache) == files


def test_onnx_trunk_matches_torch(tmp_path):
    prep = make_prep(tmp_path / "prep", n_train=2, n_val=2, n_test=0, size=64)
    paths = [prep / p for p in read_dataset_csv(prep)["image"]]
    net = create_model("efficientnet-lite0", pretrained=True).eval()
    cut = make_cut(net, LAYERS, 9)
    info = get_model_info("efficientnet-lite0")
    out = {}
    for engine in ("onnx", "torch"):
        cache = TrunkCache(
            tmp_path / engine, net, cut, "efficientnet-lite0", 64, info.mean, info.std, engine=engine
        )
        assert cache.build(paths, mirror=True) == 8
        out[engine] = np.concatenate([cache.load(paths), cache.load(paths, mirror=True)]).astype(np.float32)
    np.testing.assert_allclose(out["onnx"], out["torch"], rtol=1e-2, atol=2e-2)


def test_mammo_train_with_a_trunk_cache(tmp_path, capsys):
    from mammo.cli import main

    prep = make_prep(tmp_path / "prep", n_train=8, n_val=8, n_test=0, size=64)
    flags = ["--freeze", "9", "--size", "64", "--epochs", "1", "--pooling", "topk", "--device", "cpu"]
    rc = main(
        ["train", str(prep), "--out", str(tmp_path / "run"), "--trunk-cache", str(tmp_path / "c"), *flags]
    )
    assert rc == 0 and "trained efficientnet-lite0: 1 epochs" in capsys.readouterr().out
    _, ckpt = load_run(tmp_path / "run")
    assert ckpt["model"]["args"]["pooling"] == "topk" and ckpt["config"]["freeze"] == 9


def test_pretrained_head_norm_trains_the_classifier_on_pooled_vectors(tmp_path):
    prep = make_prep(tmp_path / "prep", n_train=16, n_val=8, n_test=4, size=64)
    overrides = {**RECIPE, "freeze": 9, "model_args": {"pooling": "topk"}}
    train_cached(prep, tmp_path / "run", tmp_path / "c", overrides=overrides, engine="torch", head_norm=False)
    model, ckpt = load_run(tmp_path / "run")
    assert ckpt["recipe"]["head_norm"] == "pretrained"
    pretrained = create_model("efficientnet-lite0", pretrained=True).state_dict()
    for k in ("_bn1.weight", "_bn1.running_mean", "_conv_head.weight"):
        assert torch.equal(model.state_dict()[k], pretrained[k])
    assert not torch.equal(model.state_dict()["_fc.weight"], pretrained["_fc.weight"])
    rows = read_dataset_csv(prep)
    test = rows[rows["split"] == "test"].reset_index(drop=True)
    whole = run_scores(tmp_path / "run", prep, test)
    np.testing.assert_allclose(
        score_cached(tmp_path / "run", prep, test, tmp_path / "c", engine="torch"),
        whole,
        rtol=FP16,
        atol=FP16,
    )


def test_mammo_cv_with_a_trunk_cache_shares_it_between_folds(tmp_path, capsys):
    from mammo.cli import main

    prep = make_prep(tmp_path / "prep", n_train=16, n_val=8, n_test=0, size=64)
    flags = ["--freeze", "9", "--size", "64", "--epochs", "1", "--pooling", "topk", "--device", "cpu"]
    argv = [
        "cv",
        str(prep),
        "--out",
        str(tmp_path / "cv"),
        "--folds",
        "2",
        "--val-fraction",
        "0.5",
        "--trunk-cache",
        str(tmp_path / "c"),
    ]
    assert main([*argv, *flags]) == 0, capsys.readouterr().err
    for k in (0, 1):
        _, ckpt = load_run(tmp_path / "cv" / f"fold-{k}" / "run")
        assert ckpt["model"]["args"]["pooling"] == "topk" and ckpt["config"]["freeze"] == 9
    cached = [p for p in (tmp_path / "c").rglob("*.npy") if not p.name.startswith(".")]
    assert len(cached) == 24  # every image once, not once per fold: the folds share the cache
