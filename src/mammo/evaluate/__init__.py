"""Evaluation: a RUN scored on one PREP split (metrics.json, predictions.csv) and its plots."""
