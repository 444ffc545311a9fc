"""Classification metrics: AUC with a bootstrap interval that resamples women, threshold metrics, calibration error.

Pure numpy/scikit-learn (no torch), so they can be tested on fixed numbers against scikit-learn.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import brier_score_loss, confusion_matrix, roc_auc_score


def _has_both_classes(labels: np.ndarray) -> bool:
    return len(np.unique(labels)) == 2


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (scikit-learn); NaN when only one class is present, where AUC is undefined."""
    labels = np.asarray(labels)
    if not _has_both_classes(labels):
        return float("nan")
    return float(roc_auc_score(labels, scores))


def binary_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy of logits against 0/1 labels, in the stable log(1 + e^z) - y z form."""
    z = np.asarray(logits, dtype=np.float64)
    return float(np.mean(np.logaddexp(0.0, z) - np.asarray(labels, dtype=np.float64) * z))


def _weighted_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of each row of `weights` (B x n row multiplicities) by the weighted Mann-Whitney statistic, ties = 1/2."""
    order = np.argsort(scores, kind="stable")
    s, y, w = scores[order], labels[order], weights[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first row of each distinct score level
    pos = np.add.reduceat(w * y, starts, axis=1)  # B x levels: positive weight at each level
    neg = np.add.reduceat(w * (1 - y), starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (neg_below + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)


def auc_with_ci(
    labels: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """AUC and its (1 - alpha) percentile bootstrap interval, resampling whole groups (women), not rows.

    Each resample draws group ids with replacement and keeps all rows of each drawn group, so images of one
    woman move together (a cluster bootstrap); resamples with a single class are skipped. `groups=None`
    resamples rows. Vectorised: every resample is a row of multiplicities fed to one weighted AUC computation.
    """
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in shape")
    point = auc(labels, scores)
    if np.isnan(point):
        return point, float("nan"), float("nan")
    group_codes = (
        np.arange(len(labels)) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    )
    n_groups = int(group_codes.max()) + 1
    rng = np.random.default_rng(seed)
    chunk = max(
        1, 2_000_000 // max(len(labels), n_groups)
    )  # resamples per batch: bounded memory for big sets
    parts = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        draws = rng.integers(0, n_groups, size=(b, n_groups)) + (np.arange(b) * n_groups)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * n_groups).reshape(b, n_groups)
        parts.append(_weighted_auc(labels, scores, counts[:, group_codes].astype(np.float64)))
    boot = np.concatenate(parts)
    boot = boot[np.isfinite(boot)]
    if len(boot) == 0:
        return point, float("nan"), float("nan")
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return point, float(lo), float(hi)


def binary_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, float | int]:
    """Accuracy, sensitivity, specificity, PPV, NPV and the confusion counts for `prob >= threshold` = malignant.

    A rate whose denominator is zero (e.g. sensitivity with no positives) is NaN.
    """
    labels = np.asarray(labels, dtype=np.int64)
    pred = (np.asarray(probs, dtype=np.float64) >= threshold).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(labels, pred, labels=[0, 1]).ravel())

    def rate(num: int, den: int) -> float:
        return num / den if den else float("nan")

    return {
        "accuracy": rate(tp + tn, len(labels)),
        "sensitivity": rate(tp, tp + fn),
        "specificity": rate(tn, tn + fp),
        "ppv": rate(tp, tp + fp),
        "npv": rate(tn, tn + fn),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def brier(labels: np.ndarray, probs: np.ndarray) -> float:
    """Brier score: mean squared error of the probability of malignancy (lower is better)."""
    return float(brier_score_loss(np.asarray(labels), np.asarray(probs, dtype=np.float64)))


def reliability_bins(
    labels: np.ndarray, probs: np.ndarray, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width probability bin: mean predicted probability, observed malignant fraction, row count."""
    labels = np.asarray(labels, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    idx = np.clip((probs * n_bins).astype(np.int64), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(idx, weights=probs, minlength=n_bins) / count
        frac = np.bincount(idx, weights=labels, minlength=n_bins) / count
    return conf, frac, count


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, n_bins: int = 10) -> float:
    """ECE: count-weighted mean over equal-width bins of |observed malignant fraction - mean predicted probability|."""
    conf, frac, count = reliability_bins(labels, probs, n_bins)
    filled = count > 0
    if not filled.any():
        return float("nan")
    return float(np.sum(count[filled] * np.abs(frac[filled] - conf[filled])) / count.sum())


def majority_accuracy(labels: np.ndarray) -> float:
    """Accuracy of always predicting the more frequent class: the baseline a classifier must beat."""
    labels = np.asarray(labels, dtype=np.float64)
    if len(labels) == 0:
        return float("nan")
    share = float(labels.mean())
    return max(share, 1.0 - share)
