"""`mammo compare A B`: is B better than A on the same samples? Delta-AUC with a paired bootstrap-by-woman interval.

A and B may each be a RUN folder (its eval/<split>/predictions.csv), a CV folder (its oof.csv) or a predictions
CSV. Each needs sample_id, patient_id, label and a score column (`score` when present, else `logit`). The two
must hold exactly the same samples with the same labels; otherwise the comparison is refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mammo.errors import DataError, UserError
from mammo.stats.paired import paired_delta_auc

NEEDED = ("sample_id", "patient_id", "label")


@dataclass
class CompareResult:
    """Both AUCs, their difference B - A with its paired 95% interval by woman, and the sample count."""

    a: str
    b: str
    auc_a: float
    auc_b: float
    delta: float
    ci_low: float
    ci_high: float
    n: int
    n_women: int

    def summary(self) -> str:
        """One paragraph: the two AUCs, the delta with its interval, and what the interval says."""
        verdict = (
            "B is better"
            if self.ci_low > 0
            else "A is better"
            if self.ci_high < 0
            else "no resolved difference"
        )
        return (
            f"A {self.a}: AUC {self.auc_a:.3f}\nB {self.b}: AUC {self.auc_b:.3f}\n"
            f"delta B - A {self.delta:+.3f} [95% CI {self.ci_low:+.3f} to {self.ci_high:+.3f}, paired bootstrap by "
            f"woman] on {self.n} samples of {self.n_women} women: {verdict}"
        )


def predictions_file(path: str | os.PathLike, split: str = "test") -> Path:
    """The predictions table behind A or B: a CSV itself, CV/oof.csv, or RUN/eval/<split>/predictions.csv."""
    path = Path(path)
    if path.is_file():
        return path
    for candidate in (path / "oof.csv", path / "eval" / split / "predictions.csv"):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"{path}: no predictions here; pass a predictions CSV, a CV folder (oof.csv) or a RUN evaluated on "
        f"'{split}' (`mammo evaluate {path} --split {split}`)"
    )


def read_scores(path: Path) -> pd.DataFrame:
    """sample_id, patient_id, label, score of a predictions table, one row per sample."""
    df = pd.read_csv(path, dtype={"sample_id": str, "patient_id": str})
    score = "score" if "score" in df.columns else "logit" if "logit" in df.columns else None
    missing = [c for c in NEEDED if c not in df.columns] + ([] if score else ["score or logit"])
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    if df["sample_id"].duplicated().any():
        raise DataError(
            f"{path}: sample_id {df['sample_id'][df['sample_id'].duplicated()].iloc[0]} appears twice"
        )
    return df[[*NEEDED, score]].rename(columns={score: "score"}).set_index("sample_id")


def compare(
    a: str | os.PathLike, b: str | os.PathLike, split: str = "test", n_boot: int = 2000, seed: int = 0
) -> CompareResult:
    """Delta-AUC of B over A on identical samples, with a paired bootstrap interval that resamples women."""
    fa, fb = predictions_file(a, split), predictions_file(b, split)
    da, db = read_scores(fa), read_scores(fb)
    if set(da.index) != set(db.index):
        only_a, only_b = len(set(da.index) - set(db.index)), len(set(db.index) - set(da.index))
        raise UserError(
            f"{fa} and {fb} hold different samples ({only_a} only in A, {only_b} only in B); "
            "compare predictions of the same split or the same CV folds"
        )
    db = db.loc[da.index]
    if (da["label"].astype(int) != db["label"].astype(int)).any():
        raise UserError(f"{fa} and {fb} disagree on labels; they were not made from the same data")
    r = paired_delta_auc(
        da["label"].to_numpy(int),
        da["score"].to_numpy(float),
        db["score"].to_numpy(float),
        da["patient_id"].to_numpy(),
        n_boot=n_boot,
        seed=seed,
    )
    return CompareResult(
        str(fa),
        str(fb),
        r["auc_a"],
        r["auc_b"],
        r["delta"],
        r["ci_low"],
        r["ci_high"],
        len(da),
        int(da["patient_id"].nunique()),
    )
