"""Evaluation: a RUN scored on one PREP split (metrics.json, predictions.csv) and its plots; k-fold CV.

Public functions (imported on first use): `evaluate`, `run_cv`; `mammo.evaluate.compare.compare` compares
two runs (its name is its module's).
"""

from typing import TYPE_CHECKING

from mammo import lazy_exports

if TYPE_CHECKING:
    from mammo.evaluate.cv import run_cv
    from mammo.evaluate.run import evaluate

EXPORTS = {"evaluate": "mammo.evaluate.run", "run_cv": "mammo.evaluate.cv"}
__all__ = ["evaluate", "run_cv"]
__getattr__ = lazy_exports(__name__, EXPORTS)
