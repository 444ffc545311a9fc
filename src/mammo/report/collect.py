"""The report's numbers: data counts, metrics and baselines, subgroup AUCs, gallery picks (pandas/numpy only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mammo.stats.baselines import describe
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
# a baseline within this AUC of the model (or above it) is a shortcut the reader must rule out first
SHORTCUT_MARGIN = 0.05
# the bars each explanation check must clear (the pointing game's is the slow learning test's)
POINTING_BAR = "above max(2 x chance, chance + 0.2)"
RANDOMISATION_BAR = 0.5
# what each baseline input column is, in words, where the column name alone does not say it
INPUT_NAMES = {
    "score": "the model's image score (calibrated logit)",
    "assessment": "the radiologist's BI-RADS assessment",
}


def synthetic_banner(prepare_info: dict[str, Any] | None) -> str | None:
    """The warning a report of synthetic data must carry, from prepare.json's provenance; None for other data."""
    provenance = (prepare_info or {}).get("provenance") or {}
    if not provenance.get("synthetic"):
        return None
    return (
        f"Synthetic data: every image here was drawn by a program ({provenance.get('source', 'mammo synth')}), "
        "with lesions made to be learnable. These numbers show that the pipeline works end to end; they say "
        "nothing about how the model would do on real mammograms."
    )


def shortcut_baselines(metrics: dict[str, Any], margin: float = SHORTCUT_MARGIN) -> list[dict[str, Any]]:
    """Baselines that never see the image within `margin` AUC of the model or above it. The fused one takes the
    image score (matching the model is what it should do) and BI-RADS is the radiologist's reference: neither is
    a shortcut."""
    model = metrics.get("auc")
    if model is None or not np.isfinite(model):
        return []
    with_image = {
        n for n, b in (metrics.get("baselines") or {}).items() if "score" in (b.get("inputs") or [])
    }
    table = baselines_table(metrics).iloc[1:]
    references = {"majority class", "BI-RADS assessment", "birads"}  # references, never model inputs
    table = table[~table["name"].isin(references | with_image)]
    close = table[pd.to_numeric(table["auc"], errors="coerce") >= model - margin]
    return close.to_dict("records")


def shortcut_note(metrics: dict[str, Any]) -> str | None:
    """One sentence naming every shortcut baseline to read before the model's AUC; None when there is none."""
    close = shortcut_baselines(metrics)
    if not close:
        return None
    named = "; ".join(f"{r['name']} {fmt(r['auc'])} (inputs: {r['inputs']})" for r in close)
    return (
        f"Read the shortcuts first: within {SHORTCUT_MARGIN:.2f} AUC of the model ({fmt(metrics.get('auc'))}) or "
        f"above it: {named}. Whatever these inputs carry, the model may be using too (see Baselines)."
    )


def input_words(inputs: Any) -> str:
    """A baseline's input columns, each named exactly (the image score said as such)."""
    return ", ".join(INPUT_NAMES.get(str(c), str(c)) for c in (inputs or []))


def check_verdicts(checks: dict[str, Any]) -> list[dict[str, str]]:
    """Each explanation check with its value, its bar and pass/fail against it."""
    pg, chance, rho = checks.get("pointing_game"), checks.get("chance"), checks.get("randomisation_spearman")
    pointing_ok = pg is not None and chance is not None and pg > max(2 * chance, chance + 0.2)
    return [
        {
            "check": "pointing game",
            "value": fmt(pg, 2),
            "bar": f"{POINTING_BAR} = {fmt(None if chance is None else max(2 * chance, chance + 0.2), 2)} "
            f"(chance {fmt(chance, 2)})",
            "verdict": "pass" if pointing_ok else "fail",
            "meaning": "share of correctly classified malignant samples whose heatmap maximum lies in the lesion",
        },
        {
            "check": "model randomisation (Spearman)",
            "value": fmt(rho, 2),
            "bar": f"below {RANDOMISATION_BAR:.2f} (near 0 is good, near 1 is bad)",
            "verdict": "pass" if rho is not None and rho < RANDOMISATION_BAR else "fail",
            "meaning": "rank correlation of the trained model's heatmaps with those of the same model with "
            "random weights: a high value would mean the map shows the image, not what was learned",
        },
    ]


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


def effective_config(config: dict[str, Any], trained_on: dict[str, Any] | None) -> dict[str, Any]:
    """The config as the run really trained: a setting that became something else shows both (the report's table).

    `trained_on` is the checkpoint's record (device, amp); `amp: true` on a CPU run reads
    "False (asked: True; bf16 autocast is CUDA-only)", `device: auto` reads "cpu (asked: auto)".
    """
    shown = dict(config)
    why = {"amp": "; bf16 autocast is CUDA-only"}
    for key, value in (trained_on or {}).items():
        if key in shown and shown[key] != value:
            shown[key] = f"{value} (asked: {shown[key]}{why.get(key, '')})"
    return shown


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
            "inputs": "the image only",
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
                "inputs": INPUT_NAMES["assessment"],
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
                "inputs": input_words(b.get("inputs")),
                "description": _description(name, b),
            }
        )
    return pd.DataFrame(rows)


def _description(name: str, block: dict[str, Any]) -> str:
    """A baseline's description; the fused one rebuilt from its inputs (older metrics.json named absent ones)."""
    if name != "fused" or not block.get("inputs"):
        return str(block.get("description", ""))
    return describe(name, [str(c) for c in block["inputs"]])


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
