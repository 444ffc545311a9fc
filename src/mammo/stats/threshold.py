"""Decision threshold chosen on validation (Youden's J on the ROC curve), never on test."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve


def choose_threshold(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The probability cut maximising sensitivity + specificity - 1 on these (validation) rows; 0.5 if one class."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return 0.5
    fpr, tpr, thr = roc_curve(labels, probabilities)
    best = int(np.argmax(tpr - fpr))
    return float(np.clip(thr[best], 0.0, 1.0))
