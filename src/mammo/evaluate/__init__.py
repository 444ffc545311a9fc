"""Evaluation: metrics with bootstrap intervals by woman, temperature scaling, plots."""
