"""Metrics against scikit-learn on fixed numbers, and known answers for the bootstrap and calibration error."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from mammo.stats.metrics import (
    _weighted_auc,
    auc,
    auc_with_ci,
    binary_metrics,
    brier,
    expected_calibration_error,
    majority_accuracy,
)

LABELS = np.array([0, 0, 1, 1, 0, 1, 0, 1, 1, 0])
SCORES = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.7, 0.6, 0.9, 0.5, 0.3])


def test_auc_matches_sklearn_on_fixed_numbers():
    assert auc(LABELS, SCORES) == pytest.approx(roc_auc_score(LABELS, SCORES))
    assert auc(LABELS, SCORES) == pytest.approx(22 / 25)  # 22 of 25 (malignant, benign) pairs ranked right


def test_auc_perfect_reversed_and_one_class():
    y = np.array([0, 0, 1, 1])
    assert auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert math.isnan(auc(np.ones(4), np.arange(4)))
    assert all(math.isnan(v) for v in auc_with_ci(np.zeros(5), np.arange(5)))


def test_weighted_auc_equals_sklearn_on_expanded_rows_with_ties():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.normal(y, 1.0), 1)  # rounded: many ties
    w = rng.integers(0, 4, (6, 60))
    got = _weighted_auc(y, s, w.astype(float))
    want = [roc_auc_score(np.repeat(y, wi), np.repeat(s, wi)) for wi in w]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_ci_contains_point_and_perfect_ranking_ci_is_one():
    point, lo, hi = auc_with_ci(LABELS, SCORES, groups=np.arange(10) // 2, n_boot=500)
    assert lo <= point <= hi
    assert 0.0 <= lo < hi <= 1.0
    y = np.array([0, 1] * 20)
    assert auc_with_ci(y, y + 0.1 * np.arange(40) / 40, groups=np.arange(40)) == (1.0, 1.0, 1.0)


def test_ci_is_seeded():
    a = auc_with_ci(LABELS, SCORES, n_boot=300, seed=5)
    assert a == auc_with_ci(LABELS, SCORES, n_boot=300, seed=5)
    assert a[1:] != auc_with_ci(LABELS, SCORES, n_boot=300, seed=6)[1:]


def test_grouped_ci_is_wider_when_each_woman_has_duplicated_rows():
    rng = np.random.default_rng(0)
    women = 80
    y = rng.integers(0, 2, women)
    s = rng.normal(y * 1.0, 1.0)
    rows = np.repeat(np.arange(women), 4)  # four identical images per woman
    _, lo_img, hi_img = auc_with_ci(y[rows], s[rows], groups=None)
    point, lo_w, hi_w = auc_with_ci(y[rows], s[rows], groups=rows)
    assert hi_w - lo_w >= hi_img - lo_img
    # images of one woman are not independent: the honest interval is about twice as wide (sqrt(4))
    assert hi_w - lo_w > 1.5 * (hi_img - lo_img)
    # and equals the interval of one row per woman (same data, same information)
    _, lo_1, hi_1 = auc_with_ci(y, s, groups=np.arange(women))
    assert hi_w - lo_w == pytest.approx(hi_1 - lo_1, rel=0.25)
    assert lo_w <= point <= hi_w


def test_binary_metrics_counts_and_rates():
    m = binary_metrics(LABELS, SCORES, 0.5)
    # predicted positive: 0.8, 0.7, 0.6, 0.9, 0.5 -> tp 4 (0.8, 0.7, 0.9, 0.5), fp 1 (0.6)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (4, 1, 4, 1)
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["sensitivity"] == pytest.approx(0.8)
    assert m["specificity"] == pytest.approx(0.8)
    assert m["ppv"] == pytest.approx(0.8)
    assert m["npv"] == pytest.approx(0.8)
    m = binary_metrics(np.zeros(3), np.array([0.1, 0.9, 0.2]), 0.5)
    assert math.isnan(m["sensitivity"]) and m["specificity"] == pytest.approx(2 / 3)


def test_brier_and_majority():
    assert brier(LABELS, SCORES) == pytest.approx(brier_score_loss(LABELS, SCORES))
    assert majority_accuracy(np.array([1, 0, 0, 0])) == 0.75
    assert majority_accuracy(np.array([1, 1, 1, 0])) == 0.75


def test_ece_known_answers():
    # one bin [0.2, 0.3): mean prob 0.25, observed 0.5 -> ECE 0.25
    assert expected_calibration_error(np.array([0, 1, 0, 1]), np.full(4, 0.25)) == pytest.approx(0.25)
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 200_000)
    calibrated = (rng.uniform(0, 1, p.size) < p).astype(int)
    assert expected_calibration_error(calibrated, p) < 0.01
    overconfident = np.where(p > 0.5, 0.99, 0.01)  # says 99% where the truth is ~75%
    assert expected_calibration_error(calibrated, overconfident) > 0.2
