"""`mammo cv` on a tiny PREP with the tiny stand-in model: folds by woman, pooled OOF predictions, resume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import make_prep

from mammo.errors import UserError
from mammo.evaluate.cv import assign_folds, fold_dataset, fold_scores, run_cv, run_scores

FLAGS = {"model": "tiny", "epochs": 2, "batch_size": 8, "workers": 0}


def _prep_with_metadata(root):
    """make_prep plus two images per woman, sides, and an age that separates the classes."""
    prep = make_prep(root, n_train=40, n_val=16, n_test=8)
    df = pd.read_csv(prep / "dataset.csv", dtype={"sample_id": str, "patient_id": str})
    # images i and i + 2 (same label in make_prep) belong to one woman
    df["patient_id"] = [f"W{i // 4}_{i % 2}" if s != "test" else f"T{i}" for i, s in enumerate(df["split"])]
    df["side"] = np.where(np.arange(len(df)) % 4 < 2, "LEFT", "RIGHT")
    df["age"] = 50 + 15 * df["label"] + np.arange(len(df)) % 3
    df.to_csv(prep / "dataset.csv", index=False)
    return prep, df


def test_folds_group_women_and_inner_val_is_outside_the_fold():
    rows = pd.DataFrame(
        {"patient_id": [f"W{i // 2}" for i in range(60)], "label": [(i // 2) % 2 for i in range(60)]}
    )
    fold = assign_folds(rows, 3, seed=1)
    assert set(fold) == {0, 1, 2}
    assert rows.assign(f=fold).groupby("patient_id")["f"].nunique().max() == 1
    rows["image"] = [f"images/{i}.png" for i in range(60)]
    from pathlib import Path

    df = fold_dataset(rows, fold, 1, Path("/p"), 0.2, 0)
    assert (df["split"] == "test").sum() == (fold == 1).sum()
    assert set(df.loc[df["split"] == "val", "patient_id"]).isdisjoint(df.loc[fold == 1, "patient_id"])
    assert df["image"].str.startswith("/p/images/").all()
    with pytest.raises(UserError, match="--folds 50"):
        assign_folds(rows, 50, seed=1)


def test_cv_pools_out_of_fold_predictions_and_resumes(tmp_path, tiny_registry):
    prep, df = _prep_with_metadata(tmp_path / "prep")
    out = tmp_path / "cv"
    logs: list[str] = []
    result = run_cv(prep, out, folds=3, seed=0, overrides=FLAGS, device="cpu", log=logs.append)
    oof = pd.read_csv(out / "oof.csv", dtype={"sample_id": str})
    pool = df[df["split"] != "test"]
    assert sorted(oof["sample_id"]) == sorted(
        pool["sample_id"]
    )  # every train+val sample once, no test sample
    assert oof.groupby("patient_id")["fold"].nunique().max() == 1
    m = json.loads((out / "metrics.json").read_text())
    assert m["folds"] == 3 and m["n"] == len(pool) and len(m["per_fold_auc"]) == 3
    assert m["auc_ci_low"] <= m["auc"] <= m["auc_ci_high"]
    assert m["baselines"]["age"]["auc"] == pytest.approx(1.0)  # age separates the classes here
    assert m["baselines"]["fused"]["auc"] > 0.95 and "age" in m["baselines"]["fused"]["inputs"]
    assert m["breast_level"]["n"] == pool.groupby(["patient_id", "side"]).ngroups
    assert "fused - image" in m["paired"]
    fold0 = json.loads((out / "fold-0" / "run" / "eval" / "test" / "metrics.json").read_text())
    assert fold0["baselines"]["age"]["auc"] == pytest.approx(
        1.0
    )  # evaluate puts the shortcuts beside the model
    assert {"metadata", "fused"} <= set(fold0["baselines"]) and "age" in fold0["baselines"]["fused"]["inputs"]
    fold_pred = pd.read_csv(out / "fold-0" / "run" / "eval" / "test" / "predictions.csv")
    assert {"age", "side"} <= set(fold_pred.columns)
    assert result.trained == [0, 1, 2] and "out-of-fold" in result.summary()
    assert sum("held-out AUC" in line for line in logs) == 3
    again = run_cv(prep, out, folds=3, seed=0, overrides=FLAGS, device="cpu", log=logs.append)
    assert again.trained == [] and again.metrics["auc"] == pytest.approx(m["auc"])
    with pytest.raises(UserError, match="other samples or folds"):
        run_cv(prep, out, folds=3, seed=7, overrides=FLAGS, device="cpu", log=logs.append)
    # the fold models rescore their own held-out fold exactly as pooled (the ensemble and TTA paths start here)
    held = oof[oof["fold"] == 1].reset_index(drop=True)
    rows = df.set_index("sample_id").loc[held["sample_id"]].reset_index()
    scores = fold_scores(out, prep, rows)
    assert scores.shape == (3, len(rows))
    np.testing.assert_allclose(scores[1], held["score"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(run_scores(out / "fold-1" / "run", prep, rows), scores[1])
