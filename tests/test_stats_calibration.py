"""Temperature scaling repairs a deliberately over-confident model."""

from __future__ import annotations

import numpy as np
import pytest

from mammo.stats.calibration import apply_temperature, fit_temperature
from mammo.stats.metrics import expected_calibration_error


def _calibrated_logits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose sigmoid is the true probability of the drawn labels."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, n)
    labels = (rng.uniform(0, 1, n) < 1 / (1 + np.exp(-logits))).astype(int)
    return logits, labels


def test_temperature_scaling_lowers_ece_of_overconfident_model():
    val_logits, val_labels = _calibrated_logits(5000, seed=0)
    test_logits, test_labels = _calibrated_logits(5000, seed=1)
    t = fit_temperature(5 * val_logits, val_labels)
    assert t == pytest.approx(5.0, rel=0.15)
    before = expected_calibration_error(test_labels, apply_temperature(5 * test_logits, 1.0))
    after = expected_calibration_error(test_labels, apply_temperature(5 * test_logits, t))
    assert before > 0.1
    assert after < 0.03
    assert after < before


def test_calibrated_model_keeps_temperature_near_one_and_one_class_gives_one():
    logits, labels = _calibrated_logits(5000, seed=2)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.15)
    assert fit_temperature(logits, np.ones_like(labels)) == 1.0


def test_apply_temperature_keeps_ranking_and_halves_logit():
    p = apply_temperature(np.array([-2.0, 0.0, 4.0]), 2.0)
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-np.array([-1.0, 0.0, 2.0]))))
