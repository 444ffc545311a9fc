"""Evaluation figures (ROC, precision-recall, reliability diagram, confusion matrix), each written as a PNG atomically.

Figures come from mammo.io.figures (matplotlib object API, no pyplot state), so nothing stays open.
"""

from __future__ import annotations

import os

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_curve, roc_curve

from mammo.io.figures import new_figure, save_figure
from mammo.stats.metrics import reliability_bins


def plot_roc(
    labels: np.ndarray,
    probs: np.ndarray,
    path: str | os.PathLike,
    auc_ci: tuple[float, float, float] | None = None,
    title: str = "ROC",
) -> None:
    """ROC curve with the chance diagonal; the legend gives AUC and its interval when `auc_ci` is given."""
    fpr, tpr, _ = roc_curve(labels, probs)
    label = "model" if auc_ci is None else f"AUC {auc_ci[0]:.3f} (95% CI {auc_ci[1]:.3f}-{auc_ci[2]:.3f})"
    fig = new_figure(5.0, 5.0)
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, lw=2, label=label)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set(
        xlabel="1 - specificity (false positive rate)",
        ylabel="sensitivity (true positive rate)",
        xlim=(0, 1),
        ylim=(0, 1.01),
        title=title,
        aspect="equal",
    )
    ax.legend(loc="lower right")
    save_figure(fig, path)


def plot_pr(
    labels: np.ndarray, probs: np.ndarray, path: str | os.PathLike, title: str = "Precision-recall"
) -> None:
    """Precision-recall curve with average precision in the legend and prevalence as the chance line."""
    labels = np.asarray(labels)
    precision, recall, _ = precision_recall_curve(labels, probs)
    ap = average_precision_score(labels, probs)
    fig = new_figure(5.0, 5.0)
    ax = fig.add_subplot()
    ax.step(recall, precision, where="post", lw=2, label=f"AP {ap:.3f}")
    ax.axhline(float(labels.mean()), ls="--", color="grey", lw=1, label=f"prevalence {labels.mean():.2f}")
    ax.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", xlim=(0, 1), ylim=(0, 1.01), title=title)
    ax.legend(loc="lower left")
    save_figure(fig, path)


def plot_calibration(
    labels: np.ndarray,
    probs_uncalibrated: np.ndarray,
    probs_calibrated: np.ndarray,
    path: str | os.PathLike,
    temperature: float | None = None,
    n_bins: int = 10,
) -> None:
    """Reliability diagram before and after temperature scaling, over a histogram of the calibrated probabilities."""
    fig = new_figure(5.5, 7.0)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    after = "after temperature scaling" + ("" if temperature is None else f" (T={temperature:.2f})")
    for probs, name, marker in ((probs_uncalibrated, "before", "s"), (probs_calibrated, after, "o")):
        conf, frac, count = reliability_bins(labels, probs, n_bins)
        filled = count > 0
        top.plot(conf[filled], frac[filled], marker=marker, lw=1.5, label=name)
    top.set(ylabel="observed malignant fraction", xlim=(0, 1), ylim=(0, 1), title="Calibration (reliability)")
    top.legend(loc="upper left")
    bottom.hist(np.asarray(probs_calibrated, dtype=float), bins=np.linspace(0, 1, 4 * n_bins + 1), color="C1")
    bottom.set(xlabel="predicted probability of malignancy (calibrated)", ylabel="count")
    save_figure(fig, path)


def plot_confusion(
    labels: np.ndarray,
    probs: np.ndarray,
    threshold: float,
    path: str | os.PathLike,
    class_names: tuple[str, str] = ("benign", "malignant"),
) -> None:
    """Confusion matrix counts (rows true, columns predicted) for `prob >= threshold` = malignant."""
    pred = (np.asarray(probs, dtype=float) >= threshold).astype(int)
    cm = confusion_matrix(np.asarray(labels, dtype=int), pred, labels=[0, 1])
    fig = new_figure(4.5, 4.0)
    ax = fig.add_subplot()
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(
            j,
            i,
            str(v),
            ha="center",
            va="center",
            fontsize=14,
            color="white" if v > cm.max() / 2 else "black",
        )
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=class_names,
        yticklabels=class_names,
        xlabel="predicted",
        ylabel="true",
        title=f"Confusion matrix (threshold {threshold:.3f})",
    )
    save_figure(fig, path)
