"""Splits by woman: official (validation carved out of train) or random 70/20/10; stratified, seeded.

Every split decision is made on a table of women (one row per `patient_id`, label = any malignant
finding), so grouping by woman holds by construction. Each carve uses sklearn's `train_test_split` on
that table with `stratify=`: it is stratified like StratifiedGroupKFold but gives the exact fraction
asked for (a k-fold can only give 1/k), and unlike GroupShuffleSplit it keeps the class balance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from sklearn.model_selection import train_test_split

from mammo.data.manifest import SPLITS
from mammo.errors import DataError

RANDOM_TEST_FRACTION = 0.1  # --split random: 10% test, --val-fraction (0.2) val, the rest (70%) train


@dataclass
class SplitPlan:
    """The split of every woman, and the women the manifest listed in several splits (moved)."""

    by_woman: dict[str, str]
    moved_to_test: list[str] = field(default_factory=list)
    moved_to_val: list[str] = field(default_factory=list)
    val_source: str = ""  # "manifest" (val rows kept), "carved" (from train) or "random"
    n_random: int = 0  # women split at random because none of their rows had a split

    def assign(self, patient_ids: pd.Series) -> pd.Series:
        """The split of each row, looked up by its patient_id."""
        return patient_ids.map(self.by_woman)


def woman_labels(df: pd.DataFrame) -> pd.Series:
    """One label per woman (1 when any of her findings is malignant), sorted by patient_id for determinism."""
    return df.groupby("patient_id", sort=True)["label"].max().astype(int)


def carve(women: pd.Series, fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Split women (patient_id -> label) into (rest, carved), `fraction` carved, stratified if possible."""
    n = len(women)
    n_take = round(n * fraction)
    if n < 2 or n_take < 1:
        return list(women.index), []
    n_take = min(n_take, n - 1)
    counts = women.value_counts()
    stratify = women.values if (counts.min() >= 2 and min(n_take, n - n_take) >= len(counts)) else None
    rest, taken = train_test_split(list(women.index), test_size=n_take, random_state=seed, stratify=stratify)
    return sorted(rest), sorted(taken)


def random_splits(women: pd.Series, val_fraction: float, seed: int) -> dict[str, str]:
    """Women to train/val/test: 10% test, `val_fraction` val, the rest train (70/20/10 by default)."""
    rest, test = carve(women, RANDOM_TEST_FRACTION, seed)
    rest_women = women.loc[rest]
    val_share = val_fraction / (1 - RANDOM_TEST_FRACTION)
    train, val = carve(rest_women, val_share, seed)
    return {**dict.fromkeys(train, "train"), **dict.fromkeys(val, "val"), **dict.fromkeys(test, "test")}


def official_splits(df: pd.DataFrame, val_fraction: float, seed: int) -> SplitPlan:
    """The manifest's split per woman (test > val > train); val carved from train when none is given.

    A woman listed in test in one file and train in another (CBIS-DDSM has 31 when mass and calc are pooled)
    goes to test; one listed in train and val goes to val. Women whose rows all have an empty split
    are split like `random`.
    """
    given = df.loc[df["split"] != "", ["patient_id", "split"]]
    unknown = sorted(set(given["split"]) - set(SPLITS))
    if unknown:
        raise DataError(
            f"manifest split values must be train, val or test; found {', '.join(map(repr, unknown))}"
        )
    per_woman = given.groupby("patient_id")["split"].agg(set)
    by_woman = {
        w: next(s for s in ("test", "val", "train") if s in splits) for w, splits in per_woman.items()
    }
    moved = {w for w, splits in per_woman.items() if len(splits) > 1}
    women = woman_labels(df)
    val_source = "manifest" if "val" in by_woman.values() else "carved" if by_woman else "random"
    if val_source == "carved":
        train_women = women.loc[[w for w, s in by_woman.items() if s == "train"]].sort_index()
        _, val = carve(train_women, val_fraction, seed)
        by_woman.update(dict.fromkeys(val, "val"))
    unsplit = women.loc[~women.index.isin(list(by_woman))]
    by_woman.update(random_splits(unsplit, val_fraction, seed))
    return SplitPlan(
        by_woman=by_woman,
        moved_to_test=sorted(w for w in moved if by_woman[w] == "test"),
        moved_to_val=sorted(w for w in moved if by_woman[w] == "val"),
        val_source=val_source,
        n_random=len(unsplit),
    )


def plan_splits(
    df: pd.DataFrame, scheme: str = "official", val_fraction: float = 0.2, seed: int = 0
) -> SplitPlan:
    """Decide every woman's split from manifest rows (`patient_id, label, split`) under `scheme`."""
    if not 0 <= val_fraction < 1 - RANDOM_TEST_FRACTION:
        raise DataError(f"--val-fraction must be in [0, {1 - RANDOM_TEST_FRACTION}), got {val_fraction}")
    if scheme == "official":
        return official_splits(df, val_fraction, seed)
    if scheme == "random":
        women = woman_labels(df)
        return SplitPlan(random_splits(women, val_fraction, seed), val_source="random", n_random=len(women))
    raise DataError(f"--split must be official or random, got {scheme!r}")


def check_disjoint(df: pd.DataFrame) -> None:
    """Raise when any patient_id appears in more than one split (the last guard before writing)."""
    n_splits = df.groupby("patient_id")["split"].nunique()
    leaked = sorted(n_splits[n_splits > 1].index)
    if leaked:
        raise DataError(
            f"women in more than one split: {', '.join(leaked[:10])}; this is a bug, please report it"
        )
