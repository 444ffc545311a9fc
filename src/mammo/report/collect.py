"""The report's numbers: data counts, metrics and baselines, subgroup AUCs, gallery picks (pandas/numpy only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mammo.stats.metrics import auc_with_ci

# metadata fields a dataset may carry, as (dataset.csv column, label in the report)
SUBGROUP_FIELDS = (
    ("site_id", "site"),
    ("machine_id", "machine"),
    ("view", "view"),
    ("age_band", "age band"),
    ("density", "density"),
    ("breast_density", "density (BI-RADS)"),
    ("abnormality_type", "abnormality type"),
)
AGE_BANDS = ((0, 50, "<50"), (50, 60, "50-59"), (60, 70, "60-69"), (70, 200, "70+"))
SUBGROUP_BOOT = 1000


def data_summary(dataset: pd.DataFrame) -> pd.DataFrame:
    """Samples per split and class and women per split (rows: train, val, test, all)."""
    df = dataset.assign(label=dataset["label"].astype(int))
    rows = []
    order = [s for s in ("train", "val", "test") if s in set(df["split"])]
    order += sorted(set(df["split"]) - set(order))
    for split, part in [*[(s, df[df["split"] == s]) for s in order], ("all", df)]:
        rows.append(
            {
                "split": split,
                "samples": len(part),
                "benign": int((part["label"] == 0).sum()),
                "malignant": int((part["label"] == 1).sum()),
                "women": int(part["patient_id"].nunique()),
            }
        )
    return pd.DataFrame(rows)


def read_metrics(run_dir: Path, split: str) -> dict[str, Any] | None:
    """RUN/eval/<split>/metrics.json, or None when that split was not evaluated."""
    path = run_dir / "eval" / split / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def baselines_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """Every reference score beside the model: majority class, BI-RADS, and each entry of metrics["baselines"]."""
    rows = [
        {
            "name": f"model ({metrics.get('model', '?')})",
            "auc": metrics.get("auc"),
            "low": metrics.get("auc_ci_low"),
            "high": metrics.get("auc_ci_high"),
            "n": metrics.get("n"),
            "inputs": "the image",
            "description": "this run, calibrated on validation",
        }
    ]
    if metrics.get("majority_accuracy") is not None:
        rows.append(
            {
                "name": "majority class",
                "auc": 0.5,
                "low": None,
                "high": None,
                "n": metrics.get("n"),
                "inputs": "none",
                "description": f"always the most frequent class: accuracy {metrics['majority_accuracy']:.3f} "
                f"(model {metrics.get('accuracy', float('nan')):.3f})",
            }
        )
    if metrics.get("birads_auc") is not None:
        rows.append(
            {
                "name": "BI-RADS assessment",
                "auc": metrics["birads_auc"],
                "low": metrics.get("birads_auc_ci_low"),
                "high": metrics.get("birads_auc_ci_high"),
                "n": metrics.get("birads_n"),
                "inputs": "assessment",
                "description": "the radiologist's assessment as a score (a reference, never a model input)",
            }
        )
    for name, b in (metrics.get("baselines") or {}).items():
        if name in ("majority", "birads") and any(
            r["name"].startswith(("majority", "BI-RADS")) for r in rows
        ):
            continue
        rows.append(
            {
                "name": name,
                "auc": b.get("auc"),
                "low": b.get("auc_ci_low"),
                "high": b.get("auc_ci_high"),
                "n": b.get("n"),
                "inputs": ", ".join(map(str, b.get("inputs") or [])),
                "description": str(b.get("description", "")),
            }
        )
    return pd.DataFrame(rows)


def age_band(age: Any) -> str:
    """'<50', '50-59', '60-69', '70+' for an age (number or text); '' when unknown."""
    value = pd.to_numeric(pd.Series([age]), errors="coerce").iloc[0]
    if pd.isna(value):
        return ""
    return next(label for lo, hi, label in AGE_BANDS if lo <= value < hi)


def with_metadata(predictions: pd.DataFrame, dataset: pd.DataFrame) -> pd.DataFrame:
    """predictions.csv joined with the metadata columns of dataset.csv it lacks (on sample_id); age bands added."""
    extra = [c for c in dataset.columns if c not in predictions.columns or c == "sample_id"]
    joined = predictions.merge(dataset[extra], on="sample_id", how="left")
    if "age" in joined.columns:
        joined["age_band"] = joined["age"].map(age_band)
    return joined


def subgroups(pred: pd.DataFrame, n_boot: int = SUBGROUP_BOOT) -> dict[str, list[dict[str, Any]]]:
    """AUC with a bootstrap-by-woman interval per value of each metadata field present (2+ values)."""
    out: dict[str, list[dict[str, Any]]] = {}
    score = "logit" if "logit" in pred.columns else "probability"
    for column, label in SUBGROUP_FIELDS:
        if column not in pred.columns:
            continue
        values = pred[column].fillna("").astype(str).str.strip()
        known = sorted(v for v in set(values) if v not in ("", "nan", "N/A"))
        if len(known) < 2:
            continue
        rows = []
        for v in known:
            part = pred[values == v]
            a, lo, hi = auc_with_ci(
                part["label"].to_numpy(int),
                part[score].to_numpy(float),
                part["patient_id"].to_numpy(),
                n_boot,
            )
            rows.append(
                {
                    "value": v,
                    "n": len(part),
                    "n_pos": int(part["label"].sum()),
                    "auc": a,
                    "auc_ci_low": lo,
                    "auc_ci_high": hi,
                }
            )
        out[label] = rows
    return out


def gallery_picks(pred: pd.DataFrame, threshold: float, k: int = 4) -> dict[str, pd.DataFrame]:
    """The k most confident true positives, false positives and false negatives (by calibrated probability)."""
    p, y = pred["probability"].to_numpy(float), pred["label"].to_numpy(int)
    hit = p >= threshold
    tp = pred[hit & (y == 1)].sort_values("probability", ascending=False)
    fp = pred[hit & (y == 0)].sort_values("probability", ascending=False)
    fn = pred[~hit & (y == 1)].sort_values("probability", ascending=True)
    return {"true positives": tp.head(k), "false positives": fp.head(k), "false negatives": fn.head(k)}


def fmt(value: Any, digits: int = 3) -> str:
    """A number for the page: fixed digits, 'n/a' for missing or NaN."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)
