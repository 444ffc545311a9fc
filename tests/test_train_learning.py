"""The default model (efficientnet-lite0, ImageNet weights) learns the `mammo synth` lesion task on CPU, and its
Grad-CAM heatmaps point at the lesions (pointing game) and depend on what it learned (randomisation check)."""

from __future__ import annotations

import time

import pytest

from mammo.data.cbis import ingest_cbis
from mammo.data.synth import make_download
from mammo.explain.checks import check_explanations
from mammo.prep.run import prepare
from mammo.train.loop import train


@pytest.mark.slow
def test_default_model_learns_synth_lesions(tmp_path):
    make_download(tmp_path / "dl", women=160, layout="classic", size="small", seed=11)
    ingest_cbis(tmp_path / "dl", tmp_path / "data", workers=2)
    prepare(tmp_path / "data", tmp_path / "prep", task="roi", size=128, workers=2, seed=0, val_fraction=0.3)
    t0 = time.perf_counter()
    result = train(
        tmp_path / "prep",
        tmp_path / "run",
        overrides={
            "epochs": 6,
            "batch_size": 16,
            "lr": 1e-3,
            "size": 128,
            "workers": 0,
            "device": "cpu",
            "seed": 0,
        },
    )
    print(
        f"efficientnet-lite0 on synth roi at 128 px, 6 epochs: {time.perf_counter() - t0:.1f} s, "
        f"best val AUC {result.best_val_auc:.3f}"
    )
    assert result.model == "efficientnet-lite0"
    assert result.best_val_auc > 0.85  # 0.996 measured; subtle cancers (phantom conspicuity) keep it below 1
    checks = check_explanations(tmp_path / "run", split="test")
    print(checks.summary())
    assert checks.n >= 10
    # at 128 px Grad-CAM's last stage is 4 x 4 (measured: pointing game 0.73, chance 0.14); at 96 px its 3 x 3 map
    # was too coarse to point (0.25 with the same model recipe)
    assert checks.pointing_game > max(2 * checks.chance, checks.chance + 0.2), checks.summary()
    assert checks.randomisation_spearman < 0.8, checks.summary()
