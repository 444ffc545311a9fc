"""Scoring with a trained RUN: the one way into a trained model, and `mammo predict`.

- `run`: `Run` (a RUN loaded once: model, `InputSpec`, calibration, PREP) and `InputSpec` (what preprocessing
  needs, read from the checkpoint in one place); every user of a trained model goes through them.
- `infer`: devices, batched logits (+ flip TTA), probabilities.
- `files`: `mammo predict RUN IMAGE...`: files and folders -> one calibrated probability per image (CSV/JSON).
- `onnx`: `mammo export`: a RUN as one ONNX file with its metadata; `OnnxModel`, the ONNX Runtime session.
- `backend`: which engine scores (auto: ONNX Runtime on CPU; torch: the RUN's checkpoint).
"""

from mammo.predict.infer import DEVICES, probabilities, resolve_device
from mammo.predict.run import InputSpec, Run

__all__ = ["DEVICES", "InputSpec", "Run", "probabilities", "resolve_device"]
