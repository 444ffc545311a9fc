"""Scoring with a trained RUN: the one inference path and `mammo predict`.

- `infer`: devices, batched logits (+ flip TTA), the source-image preprocessing of training, probabilities.
- `files`: `mammo predict RUN IMAGE...`: files and folders -> one calibrated probability per image (CSV/JSON).
"""
