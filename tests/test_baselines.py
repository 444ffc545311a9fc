"""Shortcut baselines on data where the answer is known: metadata shortcuts are found, diagnoses refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mammo.errors import UserError
from mammo.stats.baselines import (
    DIAGNOSTIC_COLUMNS,
    add_geometry,
    baseline_inputs,
    breast_level,
    check_inputs,
    cross_fit_baselines,
    fit_score,
    split_baselines,
)
from mammo.stats.paired import paired_delta_auc


def _rows(n: int = 400, seed: int = 0, shortcut: str = "machine_id") -> pd.DataFrame:
    """Women with two views; the label depends only on `shortcut`; everything else is noise."""
    rng = np.random.default_rng(seed)
    women = n // 2
    machine = rng.choice(["21", "49", "93"], women)
    age = rng.normal(60, 8, women)
    if shortcut == "machine_id":
        p = np.where(machine == "49", 0.9, 0.1)
    else:
        p = 1 / (1 + np.exp(-(age - 60) / 3))
    label = (rng.random(women) < p).astype(int)
    df = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "patient_id": np.repeat([f"w{i}" for i in range(women)], 2),
            "label": np.repeat(label, 2),
            "machine_id": np.repeat(machine, 2),
            "age": np.repeat(age.round(), 2),
            "site_id": np.repeat(rng.choice(["1", "2"], women), 2),
            "view": np.tile(["CC", "MLO"], women),
            "side": np.repeat(rng.choice(["LEFT", "RIGHT"], women), 2),
            "density": "",
            "source_rows": rng.integers(200, 256, n),
            "source_cols": rng.integers(80, 160, n),
            "biopsy": np.repeat(label, 2),
        }
    )
    df["fold"] = df["patient_id"].str[1:].astype(int) % 4
    return df


@pytest.mark.parametrize("column", ["biopsy", "BIRADS", "Pathology", "assessment", "difficult_negative_case"])
def test_diagnostic_column_is_refused_by_name(column):
    with pytest.raises(UserError, match=f"'{column}' encodes the diagnosis"):
        check_inputs(["age", column])
    df = _rows(40).rename(columns={"biopsy": column})
    with pytest.raises(UserError, match=column):
        fit_score(df, df, ["age"], [column])


def test_diagnostic_columns_are_never_chosen_as_inputs():
    df = _rows(100)
    specs = baseline_inputs(df, image_score="score")
    used = {c.lower() for numeric, cat in specs.values() for c in [*numeric, *cat]}
    assert used.isdisjoint(c.lower() for c in DIAGNOSTIC_COLUMNS)
    assert "density" not in used  # all empty here
    assert {"site_id", "machine_id"}.isdisjoint(
        specs["fused"][0] + specs["fused"][1]
    )  # never in the fused model


def test_metadata_baseline_finds_a_machine_shortcut_out_of_fold():
    df = _rows(600, shortcut="machine_id")
    blocks, scores = cross_fit_baselines(
        df.assign(score=np.random.default_rng(1).normal(size=len(df))),
        df["fold"].to_numpy(),
        image_score="score",
    )
    assert blocks["metadata"]["auc"] > 0.8 and "machine_id" in blocks["metadata"]["inputs"]
    assert blocks["metadata"]["auc_ci_low"] < blocks["metadata"]["auc"] < blocks["metadata"]["auc_ci_high"]
    assert 0.35 < blocks["geometry"]["auc"] < 0.65  # sizes are noise here
    assert len(scores["metadata"]) == len(df) and np.isfinite(scores["metadata"]).all()


def test_fused_model_keeps_the_age_signal_and_the_image_signal():
    df = _rows(600, shortcut="age")
    rng = np.random.default_rng(2)
    df["score"] = rng.normal(size=len(df))  # an image score with no signal
    blocks, _ = cross_fit_baselines(df, df["fold"].to_numpy(), image_score="score")
    assert blocks["age"]["auc"] > 0.8
    assert blocks["fused"]["auc"] > 0.8 and blocks["fused"]["inputs"][:2] == ["score", "age"]
    df["score"] = df["label"] + rng.normal(0, 0.3, len(df))  # now the image carries the label
    blocks, _ = cross_fit_baselines(df, df["fold"].to_numpy(), image_score="score")
    assert blocks["fused"]["auc"] > 0.95


def test_split_baselines_fit_on_one_split_and_score_another():
    df = _rows(600, shortcut="machine_id")
    df["score"] = df["label"] + np.random.default_rng(3).normal(0, 1, len(df))
    fit, held = df[df["fold"] > 0], df[df["fold"] == 0]
    blocks, _ = split_baselines(fit, held, fuse_rows=fit, image_score="score")
    assert blocks["metadata"]["n"] == len(held) and blocks["metadata"]["auc"] > 0.7
    assert set(blocks) == {"metadata", "geometry", "age", "fused"}
    no_fuse, _ = split_baselines(fit, held)
    assert "fused" not in no_fuse


def test_geometry_columns_and_breast_level_mean_over_views():
    df = pd.DataFrame(
        {
            "source_rows": [200, 100],
            "source_cols": [100, 100],
            "crop_x0": [0, 10],
            "crop_x1": [50, 60],
            "crop_y0": [0, 0],
            "crop_y1": [200, 50],
        }
    )
    g = add_geometry(df)
    assert g["source_aspect"].tolist() == [2.0, 1.0] and g["crop_width_fraction"].tolist() == [0.5, 0.5]
    rows = pd.DataFrame(
        {
            "patient_id": ["a", "a", "a", "b"],
            "side": ["L", "L", "R", "L"],
            "label": [1, 1, 0, 0],
            "score": [0.2, 0.6, 0.1, 0.9],
        }
    )
    b = breast_level(rows, ["score"])
    assert b["score"].round(6).tolist() == [0.4, 0.1, 0.9] and b["label"].tolist() == [1, 0, 0]
    assert breast_level(rows.drop(columns="side"), ["score"]) is None


def test_paired_delta_is_zero_for_identical_scores_and_resolves_a_real_gain():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    groups = np.repeat(np.arange(200), 2)
    weak = labels + rng.normal(0, 2, 400)
    strong = labels + rng.normal(0, 0.5, 400)
    same = paired_delta_auc(labels, weak, weak, groups, n_boot=200)
    assert same["delta"] == 0 and same["ci_low"] == 0 and same["ci_high"] == 0
    gain = paired_delta_auc(labels, weak, strong, groups, n_boot=500)
    assert gain["delta"] > 0.15 and gain["ci_low"] > 0
