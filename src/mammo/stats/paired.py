"""Paired comparison of two scores on the same rows: delta-AUC with a bootstrap interval that resamples women.

Both scores see the same resampled women in every replicate, so the interval reflects the difference itself,
not the (much wider) spread of each AUC: it is the paired test the README's "this helps" claims rest on.
"""

from __future__ import annotations

import numpy as np

from mammo.stats.metrics import _weighted_auc, auc

N_BOOT = 2000


def paired_delta_auc(
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    groups: np.ndarray | None = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, float]:
    """AUC(b) - AUC(a) with its (1 - alpha) percentile interval from one bootstrap over women shared by a and b."""
    labels = np.asarray(labels, dtype=np.int64)
    a, b = np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64)
    if not (labels.shape == a.shape == b.shape):
        raise ValueError(f"labels {labels.shape}, a {a.shape} and b {b.shape} differ in shape")
    codes = (
        np.arange(len(labels)) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    )
    n_groups = int(codes.max()) + 1
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(n_boot, n_groups)) + (np.arange(n_boot) * n_groups)[:, None]
    counts = np.bincount(draws.ravel(), minlength=n_boot * n_groups).reshape(n_boot, n_groups)[:, codes]
    weights = counts.astype(np.float64)
    delta = _weighted_auc(labels, b, weights) - _weighted_auc(labels, a, weights)
    delta = delta[np.isfinite(delta)]
    auc_a, auc_b = auc(labels, a), auc(labels, b)
    lo, hi = np.quantile(delta, [alpha / 2, 1 - alpha / 2]) if len(delta) else (np.nan, np.nan)
    return {"auc_a": auc_a, "auc_b": auc_b, "delta": auc_b - auc_a, "ci_low": float(lo), "ci_high": float(hi)}
