"""Splits by woman: disjoint, stratified, seeded, cross-split women to test."""

import numpy as np
import pandas as pd
import pytest

from mammo.errors import DataError
from mammo.prep.splits import carve, check_disjoint, plan_splits, woman_labels


def manifest(n_women=200, malignant_share=0.3, test_share=0.25, seed=1):
    """Rows of findings: 1-3 per woman, her label shared by her rows, official split per woman."""
    rng = np.random.default_rng(seed)
    rows = []
    for w in range(n_women):
        label = int(rng.random() < malignant_share)
        split = "test" if rng.random() < test_share else "train"
        for k in range(rng.integers(1, 4)):
            rows.append(
                {
                    "patient_id": f"P_{w:05d}",
                    "label": label,
                    "split": split,
                    "abnormality_type": "mass" if k % 2 == 0 else "calc",
                }
            )
    return pd.DataFrame(rows)


def split_of_women(df, plan):
    return df.assign(split=plan.assign(df["patient_id"])).groupby("patient_id")["split"].first()


def test_official_keeps_test_and_carves_val_stratified():
    df = manifest()
    plan = plan_splits(df, "official", val_fraction=0.2, seed=0)
    per_woman = split_of_women(df, plan)
    given = df.groupby("patient_id")["split"].first()
    assert (per_woman[given == "test"] == "test").all()
    assert set(per_woman[given == "train"]) == {"train", "val"}
    train_women = (given == "train").sum()
    n_val = (per_woman == "val").sum()
    assert abs(n_val - round(0.2 * train_women)) <= 1
    labels = woman_labels(df)
    share = lambda s: labels[per_woman == s].mean()  # noqa: E731
    assert abs(share("val") - share("train")) < 0.05
    assert plan.val_source == "carved" and plan.moved_to_test == []


def test_seeded_determinism():
    df = manifest()
    a = plan_splits(df, "official", seed=3).by_woman
    assert (
        a == plan_splits(df.sample(frac=1, random_state=5), "official", seed=3).by_woman
    )  # row order irrelevant
    assert a != plan_splits(df, "official", seed=4).by_woman


def test_cross_split_woman_goes_to_test():
    df = manifest(n_women=40)
    extra = df[df["split"] == "train"].head(1).assign(split="test", abnormality_type="calc")
    woman = extra["patient_id"].iloc[0]
    df = pd.concat([df, extra], ignore_index=True)
    plan = plan_splits(df, "official", seed=0)
    assert plan.by_woman[woman] == "test"
    assert plan.moved_to_test == [woman]
    check_disjoint(df.assign(split=plan.assign(df["patient_id"])))


def test_manifest_val_is_kept():
    df = manifest(n_women=60)
    df.loc[df["patient_id"].isin(["P_00001", "P_00002"]), "split"] = "val"
    plan = plan_splits(df, "official", seed=0)
    assert plan.val_source == "manifest"
    assert sorted(w for w, s in plan.by_woman.items() if s == "val") == ["P_00001", "P_00002"]


def test_empty_split_rows_are_split_randomly():
    df = manifest(n_women=100)
    df.loc[df["patient_id"] >= "P_00050", "split"] = ""
    plan = plan_splits(df, "official", seed=0)
    unsplit = {w: s for w, s in plan.by_woman.items() if w >= "P_00050"}
    assert len(unsplit) == 50
    assert plan.n_random == 50 and plan.val_source == "carved"
    assert plan_splits(df.assign(split=""), "official", seed=0).val_source == "random"
    assert sorted(pd.Series(unsplit).value_counts().to_dict().items()) == [
        ("test", 5),
        ("train", 35),
        ("val", 10),
    ]


def test_random_70_20_10_by_woman_stratified():
    df = manifest(n_women=300)
    plan = plan_splits(df, "random", val_fraction=0.2, seed=0)
    per_woman = split_of_women(df, plan)
    counts = per_woman.value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == (210, 60, 30)
    labels = woman_labels(df)
    overall = labels.mean()
    for s in ("train", "val", "test"):
        assert abs(labels[per_woman == s].mean() - overall) < 0.04
    check_disjoint(df.assign(split=plan.assign(df["patient_id"])))


def test_carve_tiny_sets():
    assert carve(pd.Series({"a": 1}), 0.2, 0) == (["a"], [])
    rest, taken = carve(pd.Series({"a": 1, "b": 0, "c": 0}), 0.34, 0)  # one malignant: cannot stratify
    assert len(taken) == 1 and sorted(rest + taken) == ["a", "b", "c"]


def test_check_disjoint_names_women():
    df = pd.DataFrame({"patient_id": ["A", "A", "B"], "split": ["train", "test", "train"]})
    with pytest.raises(DataError, match="A"):
        check_disjoint(df)


def test_bad_values():
    df = manifest(n_women=10).assign(split="holdout")
    with pytest.raises(DataError, match="holdout"):
        plan_splits(df, "official")
    with pytest.raises(DataError, match="val-fraction"):
        plan_splits(manifest(n_women=10), "official", val_fraction=0.95)
