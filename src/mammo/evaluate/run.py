"""`mammo evaluate`: predict one split of PREP with a RUN's best checkpoint and write honest metrics and plots.

Honest means: AUC with a 95% bootstrap interval over women, the threshold and temperature chosen on validation
(read from the checkpoint, never refitted here), the majority-class accuracy and, for CBIS-DDSM, the radiologist's
BI-RADS assessment as reference scores on the same rows. Outputs go to RUN/eval/<split>/, every file atomic.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mammo.errors import DataError
from mammo.evaluate import plots
from mammo.io.atomic import json_safe, write_csv, write_json
from mammo.predict.run import Run
from mammo.prep.dataset import read_dataset_csv, read_prepare_json, read_split
from mammo.prep.plan import safe_id
from mammo.stats.calibration import apply_temperature
from mammo.stats.metrics import (
    auc_with_ci,
    binary_metrics,
    brier,
    expected_calibration_error,
    majority_accuracy,
)

N_BOOT = 2000
NEAR_CONSTANT_STD = 0.01
PREDICTION_COLUMNS = [
    "sample_id",
    "image_id",
    "patient_id",
    "label",
    "logit",
    "probability",
    "probability_uncalibrated",
    "prediction",
]


@dataclass
class EvalResult:
    """What `evaluate` wrote: the metrics dict (as in metrics.json) and the output folder."""

    out_dir: Path
    metrics: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Two lines of numbers (plus BI-RADS, image level, warnings when present) and the output folder."""
        m = self.metrics

        def f(key: str, src: dict[str, Any] | None = None) -> str:
            v = (src or m).get(key)
            return "n/a" if v is None else f"{v:.3f}"

        lines = [
            f"{m['split']} ({m['model']}): AUC {f('auc')} [95% CI {f('auc_ci_low')}-{f('auc_ci_high')}, by woman] "
            f"on {m['n']} samples of {m['n_women']} women ({m['n_pos']} malignant)",
            f"  accuracy {f('accuracy')} (majority baseline {f('majority_accuracy')}), sensitivity "
            f"{f('sensitivity')}, specificity {f('specificity')} at threshold {m['threshold']:.3f}; "
            f"ECE {f('ece')} (uncalibrated {f('ece_uncalibrated')})",
        ]
        if "birads_auc" in m:
            lines.append(
                f"  BI-RADS assessment reference: AUC {f('birads_auc')} "
                f"[{f('birads_auc_ci_low')}-{f('birads_auc_ci_high')}]"
            )
        if "image_level" in m:
            il = m["image_level"]
            lines.append(
                f"  image level (max over findings): AUC {f('auc', il)} [{f('auc_ci_low', il)}-"
                f"{f('auc_ci_high', il)}] on {il['n']} images"
            )
        if "breast_level" in m:
            bl = m["breast_level"]
            lines.append(
                f"  breast level (mean of its views' logits): AUC {f('auc', bl)} [{f('auc_ci_low', bl)}-"
                f"{f('auc_ci_high', bl)}] on {bl['n']} breasts"
            )
        if m.get("baselines"):
            lines.append(
                "  shortcuts on the same rows (no image unless fused): "
                + ", ".join(f"{name} AUC {f('auc', b)}" for name, b in m["baselines"].items())
            )
        lines += [f"  warning: {w}" for w in self.warnings]
        lines.append(f"  -> {self.out_dir}")
        return "\n".join(lines)


def max_assessment(value: str) -> float:
    """The highest BI-RADS category in a cell ('4', '3;4', '' -> NaN): an image's assessment is its worst finding's."""
    numbers = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", str(value))]
    return max(numbers) if numbers else float("nan")


def score_metrics(
    labels: np.ndarray, logits: np.ndarray, groups: np.ndarray, temperature: float, threshold: float
) -> dict[str, Any]:
    """Every number of metrics.json that depends only on labels, logits and women (pure numpy)."""
    probs_raw = apply_temperature(logits, 1.0)
    probs = apply_temperature(logits, temperature)
    a, lo, hi = auc_with_ci(labels, logits, groups, n_boot=N_BOOT)
    std, std_raw = float(np.std(probs)), float(np.std(probs_raw))
    return {
        "auc": a,
        "auc_ci_low": lo,
        "auc_ci_high": hi,
        **binary_metrics(labels, probs, threshold),
        "threshold": float(threshold),
        "brier": brier(labels, probs),
        "ece": expected_calibration_error(labels, probs),
        "brier_uncalibrated": brier(labels, probs_raw),
        "ece_uncalibrated": expected_calibration_error(labels, probs_raw),
        "temperature": float(temperature),
        "n": len(labels),
        "n_pos": int(np.sum(labels)),
        "n_women": len(np.unique(groups)),
        "majority_accuracy": majority_accuracy(labels),
        "prediction_spread": {
            "std": std,
            "min": float(np.min(probs)),
            "max": float(np.max(probs)),
            "std_uncalibrated": std_raw,
            "near_constant": bool(min(std, std_raw) < NEAR_CONSTANT_STD),
        },
    }


def birads_metrics(labels: np.ndarray, assessment: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
    """AUC (with CI by woman) of the BI-RADS assessment used as a score, on the rows where it is known."""
    known = np.isfinite(assessment)
    a, lo, hi = auc_with_ci(labels[known], assessment[known], groups[known], n_boot=N_BOOT)
    return {"birads_auc": a, "birads_auc_ci_low": lo, "birads_auc_ci_high": hi, "birads_n": int(known.sum())}


def image_level(pred: pd.DataFrame, temperature: float, threshold: float) -> dict[str, Any]:
    """Metrics per image for the roi task: an image's score is the max over its findings, its label the max label."""
    agg = {"label": "max", "logit": "max", "patient_id": "first"}
    if "assessment_score" in pred.columns:
        agg["assessment_score"] = "max"
    img = pred.groupby("image_id", sort=False).agg(agg)
    labels, groups = img["label"].to_numpy(int), img["patient_id"].to_numpy()
    block = score_metrics(labels, img["logit"].to_numpy(float), groups, temperature, threshold)
    if "assessment_score" in img.columns:
        block.update(birads_metrics(labels, img["assessment_score"].to_numpy(float), groups))
    return block


def breast_level(pred: pd.DataFrame, temperature: float, threshold: float) -> dict[str, Any] | None:
    """Metrics per breast (woman + side): its logit the mean over views of each view's mean logit, label the max.

    `mammo.stats.breasts.breast_scores`: no input from the other breast or from a count of images. None when the
    rows carry no side.
    """
    from mammo.stats.breasts import breast_scores

    breasts = breast_scores(pred, ["logit"])
    if breasts is None or breasts.empty:
        return None
    labels, groups = breasts["label"].to_numpy(int), breasts["patient_id"].to_numpy()
    block = score_metrics(labels, breasts["logit"].to_numpy(float), groups, temperature, threshold)
    block["n_two_views"] = int((breasts["views"].str.count(r"\+") >= 1).sum())
    return block


def _load_run(run_dir: Path, device: str) -> Run:
    """The best checkpoint of RUN as a Run; DataError when there is none."""
    if not (run_dir / "best.pt").is_file():
        raise DataError(f"{run_dir}: no best.pt here; pass a RUN folder written by `mammo train`")
    return Run.load(run_dir, device=device)


def _write_plots(
    out: Path, pred: pd.DataFrame, metrics: dict[str, Any], temperature: float, threshold: float
) -> list[str]:
    """ROC, PR, calibration and confusion PNGs; ROC and PR need both classes and are skipped otherwise."""
    labels = pred["label"].to_numpy(int)
    probs = pred["probability"].to_numpy(float)
    skipped = []
    if len(np.unique(labels)) == 2:
        plots.plot_roc(
            labels,
            probs,
            out / "roc.png",
            (metrics["auc"], metrics["auc_ci_low"], metrics["auc_ci_high"]),
            title=f"ROC ({metrics['split']}, {metrics['model']})",
        )
        plots.plot_pr(labels, probs, out / "pr.png", title=f"Precision-recall ({metrics['split']})")
    else:
        skipped.append("roc.png and pr.png: the split has one class only")
    plots.plot_calibration(
        labels,
        pred["probability_uncalibrated"].to_numpy(float),
        probs,
        out / "calibration.png",
        temperature=temperature,
    )
    plots.plot_confusion(labels, probs, threshold, out / "confusion.png")
    return skipped


def eval_dir(run: Run, prep: Path, split: str) -> Path:
    """RUN/eval/<split> for the run's own PREP; RUN/eval/<prep name>-<hash of its path>/<split> for other data.

    So evaluating on another dataset never replaces the run's own test metrics.
    """
    run_dir = run.run_dir
    try:
        own = run.prep_dir().resolve()
    except DataError:
        own = None
    if own is None or prep.resolve() == own:
        return run_dir / "eval" / split
    key = hashlib.sha1(str(prep.resolve()).encode()).hexdigest()[:8]
    return run_dir / "eval" / f"{safe_id(prep.resolve().name)}-{key}" / split


PREDICTION_METADATA = [
    "side",
    "view",
    "age",
    "site_id",
    "machine_id",
    "density",
    "breast_density",
    "abnormality_type",
]


def shortcut_baselines(
    run: Run, prep: Path, rows: pd.DataFrame, logits: np.ndarray, split: str, batch_size: int = 32
) -> dict[str, Any]:
    """metrics.json "baselines": metadata/geometry/age fitted on train, fused on validation predictions, same rows.

    The fused model needs the image score on validation, so the validation split is scored once more here; when
    evaluating validation itself the fused model is left out (it would be fitted on the rows it scores).
    """
    from mammo.stats.baselines import baseline_inputs, split_baselines

    table = read_dataset_csv(prep)
    fit = table[table["split"] == "train"].assign(label=lambda d: d["label"].astype(int))
    temperature = run.temperature
    scored = rows.assign(score=logits / temperature)
    fuse = None
    fused_inputs = baseline_inputs(scored, image_score="score").get("fused", ([], []))
    if split != "val" and len(fused_inputs[0]) + len(fused_inputs[1]) > 1 and (table["split"] == "val").any():
        val = read_split(prep, "val")
        val_logits = run.score_rows(val, prep, batch_size, desc="evaluate")
        fuse = val.assign(score=val_logits / temperature)
    blocks, _ = split_baselines(fit, scored, fuse_rows=fuse, image_score="score")
    return blocks


def evaluate(
    run_dir: str | os.PathLike,
    data: str | os.PathLike | None = None,
    split: str = "test",
    device: str = "auto",
    batch_size: int = 32,
) -> EvalResult:
    """Evaluate RUN's best checkpoint on one split of PREP; write RUN/eval/<split>/ (metrics, predictions, plots).

    Another PREP than the run's own (`data`) writes to RUN/eval/<prep name>-<hash>/<split>/ (see `eval_dir`).

    Args:
        run_dir: RUN folder written by train (its best.pt is scored).
        data: PREP folder to score; None = the one the run was trained on.
        split: PREP split to score, "val" or "test".
        device: "auto" (CUDA when present), "cpu" or "cuda".
        batch_size: images per forward pass.

    Example:
        >>> from mammo.evaluate import evaluate
        >>> print(evaluate("runs/lite0", split="test").summary())
    """
    run_dir = Path(run_dir)
    run = _load_run(run_dir, device)
    prep = run.prep_dir(data)
    rows = read_split(prep, split)
    task, temperature, threshold = run.task, run.temperature, run.threshold
    warnings: list[str] = []
    prep_task = read_prepare_json(prep).get("task")
    if prep_task and prep_task != task:
        warnings.append(f"the model was trained for task '{task}' but {prep} was prepared for '{prep_task}'")

    logits = run.score_rows(rows, prep, batch_size, desc="evaluate")
    probs = apply_temperature(logits, temperature)
    pred = pd.DataFrame(
        {
            "sample_id": rows["sample_id"],
            "image_id": rows["image_id"],
            "patient_id": rows["patient_id"],
            "label": rows["label"],
            "logit": logits,
            "probability": probs,
            "probability_uncalibrated": apply_temperature(logits, 1.0),
            "prediction": (probs >= threshold).astype(int),
        }
    )
    labels, groups = rows["label"].to_numpy(int), rows["patient_id"].to_numpy()
    metrics: dict[str, Any] = {
        "model": run.model_name,
        "split": split,
        "task": task,
        "data": str(prep.resolve()),
        "run": str(run_dir.resolve()),
    }
    metrics.update(score_metrics(labels, logits, groups, temperature, threshold))
    metrics["threshold_applies_to"] = "calibrated probability"
    if "assessment" in rows.columns:
        pred["assessment_score"] = rows["assessment"].map(max_assessment)
        if task == "whole":  # one row per image, but be safe: an image's assessment is its worst finding's
            pred["assessment_score"] = pred.groupby("image_id")["assessment_score"].transform("max")
        if pred["assessment_score"].notna().any():
            metrics.update(birads_metrics(labels, pred["assessment_score"].to_numpy(float), groups))
    if task == "roi":
        metrics["image_level"] = image_level(pred, temperature, threshold)
    elif "side" in rows.columns:
        breasts = breast_level(
            pred.assign(side=rows["side"], view=rows.get("view", "")), temperature, threshold
        )
        if breasts is not None:
            metrics["breast_level"] = breasts
    baselines = shortcut_baselines(run, prep, rows, logits, split, batch_size)
    if baselines:
        metrics["baselines"] = baselines
    if metrics["prediction_spread"]["near_constant"]:
        warnings.append(
            f"near-constant predictions (probability std {metrics['prediction_spread']['std']:.4f}): "
            "the model has not learned to separate the classes"
        )
    if metrics["accuracy"] <= metrics["majority_accuracy"]:
        warnings.append("accuracy does not beat always predicting the majority class")

    out = eval_dir(run, prep, split)
    out.mkdir(parents=True, exist_ok=True)
    warnings += _write_plots(out, pred, metrics, temperature, threshold)
    metrics["warnings"] = warnings
    meta = [c for c in PREDICTION_METADATA if c in rows.columns]
    pred[meta] = rows[meta]
    write_csv(
        pred[
            PREDICTION_COLUMNS + (["assessment_score"] if "assessment_score" in pred.columns else []) + meta
        ],
        out / "predictions.csv",
    )
    write_json(json_safe(metrics), out / "metrics.json")
    return EvalResult(out_dir=out, metrics=json_safe(metrics), warnings=warnings)
