"""Shortcut baselines beside the image model: what metadata, image geometry or age alone reach on the same rows.

A model only shows that it reads the image when it beats scores that need no image: a small model on the
acquisition metadata a PREP carries (age, site, machine, view, ...), one on the geometry preprocessing leaves
as a trace (source size and aspect, crop box, flip), age alone, and a fused model (image score plus the
clinical facts a reader has: age, density; never site or machine, which only describe how the data was
collected). Columns that encode the diagnosis (DIAGNOSTIC_COLUMNS) are refused as inputs. Pure pandas and
scikit-learn, no torch.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from mammo.errors import UserError
from mammo.stats.metrics import auc_with_ci

N_BOOT = 2000

# Outcomes or reads of the diagnosis itself: the label, RSNA's follow-up fields, CBIS-DDSM's assessment,
# pathology and the radiologist's lesion descriptors. Never model inputs (compared case-insensitively).
DIAGNOSTIC_COLUMNS = (
    "label",
    "cancer",
    "biopsy",
    "invasive",
    "birads",
    "difficult_negative_case",
    "assessment",
    "pathology",
    "subtlety",
    "mass_shape",
    "mass_margins",
    "calc_type",
    "calc_distribution",
)
# Candidate inputs, used when present and not empty. Categorical ones are one-hot encoded.
METADATA_NUMERIC = ("age",)
METADATA_CATEGORICAL = (
    "site_id",
    "machine_id",
    "view",
    "side",
    "implant",
    "density",
    "breast_density",
    "inverted",  # polarity detected by prepare (or given by the table): some machines store inverted images
)
GEOMETRY_NUMERIC = (
    "source_rows",
    "source_cols",
    "source_aspect",
    "crop_x0",
    "crop_y0",
    "crop_x1",
    "crop_y1",
    "crop_width_fraction",
    "crop_height_fraction",
    "flipped",
)
CLINICAL_NUMERIC = ("age",)
CLINICAL_CATEGORICAL = ("density", "breast_density")
DESCRIPTIONS = {
    "metadata": "gradient-boosted trees on the acquisition metadata only (no image)",
    "geometry": "gradient-boosted trees on source size, aspect, crop box and flip only (no pixels)",
    "age": "the woman's age used as the score (no fitting)",
    "fused": "logistic regression on the image score plus the clinical columns present (never site or machine)",
}
IMAGE_SCORE = "the model's image score"


def describe(name: str, inputs: Sequence[str]) -> str:
    """What a baseline is, naming the inputs it really used (the fused one's depend on the columns present)."""
    if name != "fused":
        return DESCRIPTIONS[name]
    named = [IMAGE_SCORE if c == "score" else c for c in inputs]
    words = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
    return f"logistic regression on {words} (never site or machine)"


def check_inputs(columns: Sequence[str]) -> None:
    """UserError naming the first column that encodes the diagnosis; such columns are never model inputs."""
    banned = {c.lower() for c in DIAGNOSTIC_COLUMNS}
    for column in columns:
        if str(column).lower() in banned:
            raise UserError(
                f"column '{column}' encodes the diagnosis and is never a model input "
                f"(diagnostic columns: {', '.join(DIAGNOSTIC_COLUMNS)})"
            )


def _present(df: pd.DataFrame, candidates: Sequence[str]) -> list[str]:
    """The candidate columns that exist in `df` and hold at least one value besides empty/NaN."""
    out = []
    for c in candidates:
        if c in df.columns:
            values = df[c].replace("", np.nan)
            if values.notna().any() and values.nunique(dropna=True) > 1:
                out.append(c)
    return out


def add_geometry(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with derived geometry columns (source aspect, crop width/height as fractions) where the raw ones exist."""
    df = df.copy()
    num = {
        c: pd.to_numeric(df[c], errors="coerce")
        for c in GEOMETRY_NUMERIC[:2] + GEOMETRY_NUMERIC[3:7]
        if c in df
    }
    if {"source_rows", "source_cols"} <= set(num):
        df["source_aspect"] = num["source_rows"] / num["source_cols"]
        if {"crop_x0", "crop_x1", "crop_y0", "crop_y1"} <= set(num):
            df["crop_width_fraction"] = (num["crop_x1"] - num["crop_x0"]) / num["source_cols"]
            df["crop_height_fraction"] = (num["crop_y1"] - num["crop_y0"]) / num["source_rows"]
    return df


def _design(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    """Numeric columns as floats (NaN kept for the trees), categorical ones one-hot (unknown values ignored)."""
    parts = []
    if numeric:
        parts.append(("num", "passthrough", numeric))
    if categorical:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical))
    return ColumnTransformer(parts)


def _frame(df: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """The input columns typed for `_design`: numbers as float, categories as strings ('' for missing)."""
    out = pd.DataFrame(index=df.index)
    for c in numeric:
        out[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    for c in categorical:
        out[c] = df[c].astype(str).replace({"nan": "", "None": ""})
    return out


def tree_model(numeric: list[str], categorical: list[str]) -> Pipeline:
    """A small, regularised gradient-boosted model: few shallow trees, so it finds strong shortcuts only."""
    trees = HistGradientBoostingClassifier(
        max_iter=100,
        learning_rate=0.05,
        max_leaf_nodes=8,
        min_samples_leaf=20,
        l2_regularization=1.0,
        random_state=0,
    )
    return make_pipeline(_design(numeric, categorical), trees)


def fused_model(numeric: list[str], categorical: list[str]) -> Pipeline:
    """Logistic regression on standardised image score + clinical numbers (median-imputed) + one-hot categories."""
    num = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
    parts = [("num", num, numeric)]
    if categorical:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical))
    return make_pipeline(ColumnTransformer(parts), LogisticRegression(C=1.0, max_iter=1000))


def fit_score(
    fit_rows: pd.DataFrame,
    eval_rows: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    kind: str = "trees",
) -> np.ndarray:
    """Fit a baseline on `fit_rows` (label column) and return its scores on `eval_rows`; refuses diagnostic inputs."""
    check_inputs([*numeric, *categorical])
    labels = fit_rows["label"].astype(int).to_numpy()
    if len(np.unique(labels)) < 2:
        return np.full(len(eval_rows), np.nan)
    model = (tree_model if kind == "trees" else fused_model)(numeric, categorical)
    with threadpool_limits(1):  # models this small gain nothing from threads and stall on a busy machine
        model.fit(_frame(fit_rows, numeric, categorical), labels)
        return model.predict_proba(_frame(eval_rows, numeric, categorical))[:, 1]


def baseline_inputs(
    df: pd.DataFrame, image_score: str | None = None
) -> dict[str, tuple[list[str], list[str]]]:
    """Per baseline the (numeric, categorical) columns `df` can feed it; baselines with no inputs are left out."""
    df = add_geometry(df)
    specs = {
        "metadata": (_present(df, METADATA_NUMERIC), _present(df, METADATA_CATEGORICAL)),
        "geometry": (_present(df, GEOMETRY_NUMERIC), []),
        "age": (_present(df, ("age",)), []),
    }
    if image_score is not None:
        specs["fused"] = ([image_score, *_present(df, CLINICAL_NUMERIC)], _present(df, CLINICAL_CATEGORICAL))
    return {name: spec for name, spec in specs.items() if spec[0] or spec[1]}


def score_block(
    labels: np.ndarray, scores: np.ndarray, groups: np.ndarray | None, n_boot: int = N_BOOT
) -> dict[str, Any]:
    """AUC with its 95% bootstrap interval by woman (rows with a NaN score left out), n and n_pos."""
    labels, scores = np.asarray(labels, int), np.asarray(scores, float)
    keep = np.isfinite(scores)
    g = None if groups is None else np.asarray(groups)[keep]
    a, lo, hi = auc_with_ci(labels[keep], scores[keep], g, n_boot=max(1, n_boot))
    block = {
        "auc": a,
        "auc_ci_low": lo,
        "auc_ci_high": hi,
        "n": int(keep.sum()),
        "n_pos": int(labels[keep].sum()),
    }
    return block if n_boot else {"auc": a, "n": block["n"], "n_pos": block["n_pos"]}


def _block(name: str, inputs: tuple[list[str], list[str]], labels, scores, groups) -> dict[str, Any]:
    """One baseline's contract entry: AUC with CI by woman, n, its input columns and what it is."""
    return {
        **score_block(labels, scores, groups),
        "inputs": [*inputs[0], *inputs[1]],
        "description": describe(name, [*inputs[0], *inputs[1]]),
    }


def cross_fit_baselines(
    rows: pd.DataFrame, fold: np.ndarray, image_score: str | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Out-of-fold baselines: each fold scored by a model fitted on the other folds (same folds as the image model).

    Returns the metrics.json entries and the scores per baseline (aligned with `rows`).
    """
    rows = add_geometry(rows)
    labels, groups = rows["label"].to_numpy(int), rows["patient_id"].to_numpy()
    blocks, scores = {}, {}
    for name, (numeric, categorical) in baseline_inputs(rows, image_score).items():
        if name == "age":
            s = pd.to_numeric(rows["age"], errors="coerce").to_numpy(float)
        else:
            s = np.full(len(rows), np.nan)
            kind = "logistic" if name == "fused" else "trees"
            for k in np.unique(fold):
                held = fold == k
                s[held] = fit_score(rows[~held], rows[held], numeric, categorical, kind)
        scores[name] = s
        blocks[name] = _block(name, (numeric, categorical), labels, s, groups)
    return blocks, scores


def split_baselines(
    fit_rows: pd.DataFrame,
    eval_rows: pd.DataFrame,
    fuse_rows: pd.DataFrame | None = None,
    image_score: str = "score",
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Baselines on a held-out split: metadata/geometry fitted on `fit_rows`, fused fitted on `fuse_rows`.

    `fuse_rows` (e.g. validation or out-of-fold predictions) and `eval_rows` carry the image score column; without
    `fuse_rows` there is no fused baseline.
    """
    fit_rows, eval_rows = add_geometry(fit_rows), add_geometry(eval_rows)
    labels, groups = eval_rows["label"].to_numpy(int), eval_rows["patient_id"].to_numpy()
    specs = baseline_inputs(eval_rows, image_score if fuse_rows is not None else None)
    blocks, scores = {}, {}
    for name, (numeric, categorical) in specs.items():
        if name == "age":
            s = pd.to_numeric(eval_rows["age"], errors="coerce").to_numpy(float)
        elif name == "fused":
            s = fit_score(add_geometry(fuse_rows), eval_rows, numeric, categorical, "logistic")
        else:
            s = fit_score(fit_rows, eval_rows, numeric, categorical, "trees")
        scores[name] = s
        blocks[name] = _block(name, (numeric, categorical), labels, s, groups)
    return blocks, scores


def breast_level(rows: pd.DataFrame, score_columns: Sequence[str]) -> pd.DataFrame | None:
    """One row per breast (woman + side): label = max, each score = the mean over its views of their mean
    (`mammo.stats.breasts.breast_scores`); None without sides.

    Means, not a max or a sum, so a breast with more images (cancer breasts have more) gains no score from its
    image count, and no score reads the other breast.
    """
    from mammo.stats.breasts import breast_scores

    return breast_scores(rows, score_columns)


def breast_block(rows: pd.DataFrame, baselines: Collection[str]) -> dict | None:
    """AUC with CI by woman at breast level of `rows`' "score" and of each baseline column; None without sides."""
    breasts = breast_level(rows, ["score", *baselines])
    if breasts is None:
        return None
    labels, groups = breasts["label"].to_numpy(int), breasts["patient_id"]
    return {
        **score_block(labels, breasts["score"].to_numpy(float), groups),
        "baselines": {n: score_block(labels, breasts[n].to_numpy(float), groups) for n in baselines},
    }
