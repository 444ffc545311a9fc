"""Temperature scaling (Guo et al. 2017): one scalar T fitted on validation logits so probabilities mean what they say.

SciPy and scikit-learn are imported by the fit only: `apply_temperature` is on predict's start-up path, where
importing them would cost a second or more before the first result.
"""

from __future__ import annotations

import numpy as np

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.25, 20.0


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T in [0.25, 20] minimising validation negative log-likelihood of sigmoid(logit / T).

    The lower bound stops a perfectly separable validation set from driving T to 0 (infinite confidence).
    """
    from scipy.optimize import minimize_scalar

    from mammo.stats.metrics import binary_cross_entropy

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if len(np.unique(labels)) < 2:
        return 1.0
    res = minimize_scalar(
        lambda log_t: binary_cross_entropy(logits / np.exp(log_t), labels),
        bounds=(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)),
        method="bounded",
    )
    return float(np.exp(res.x))


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated probabilities sigmoid(logit / T)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    return 1.0 / (1.0 + np.exp(-z))
