"""What a training run records, shared by every trainer: metrics.csv columns, the result, preprocessing, model.onnx.

Kept apart from the loop so that trainers without MONAI augmentation (the in-memory GPU recipe,
`mammo.train.memory`) import it without importing MONAI.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mammo.predict.onnx import export_run

log = logging.getLogger(__name__)

METRIC_COLUMNS = ["epoch", "train_loss", "val_loss", "val_auc", "lr", "seconds"]


@dataclass
class TrainResult:
    """What a training run produced, with a one-paragraph summary for the CLI."""

    run_dir: Path
    model: str
    epochs_run: int
    best_epoch: int
    best_val_auc: float
    seconds: float
    stopped_early: bool
    threshold: float
    temperature: float

    def summary(self) -> str:
        """Human-readable result: best validation AUC, epochs, time, where the run is."""
        stop = " (early stop)" if self.stopped_early else ""
        return (
            f"trained {self.model}: {self.epochs_run} epochs{stop} in {self.seconds:.0f} s; "
            f"best val AUC {self.best_val_auc:.3f} at epoch {self.best_epoch}; "
            f"threshold {self.threshold:.3f}, temperature {self.temperature:.2f}\n"
            f"run: {self.run_dir} (best.pt, last.pt, model.onnx, metrics.csv, curves.png, config.yaml)"
        )


def preprocessing_record(
    prepare: dict[str, Any], size: int, mean: float, std: float, width: int | None
) -> dict[str, Any]:
    """The checkpoint's preprocessing: PREP's prepare.json and the input side, scale and normalisation."""
    record = {
        "task": prepare.get("task", ""),
        "size": size,
        "mean": mean,
        "std": std,
        "input_scale": 65535,
        "prepare": prepare,
    }
    if width is not None:  # a size x width rectangle (rows x cols) instead of a square
        record["width"] = width
    return record


def write_model_onnx(run_dir: Path) -> None:
    """Export the calibrated RUN/best.pt to RUN/model.onnx, which predict uses while its sha256 matches best.pt.

    A model the exporter cannot take still leaves a usable RUN (predict then exports in memory or runs PyTorch),
    so a failed export is a warning, not a failed training run.
    """
    started = time.perf_counter()
    try:
        export_run(run_dir)
    except Exception as exc:  # torch.onnx, onnx.checker and onnxruntime each raise their own types
        log.warning("%s/model.onnx not written (%s); predict will export best.pt in memory", run_dir, exc)
        return
    log.info("exported %s/model.onnx in %.1f s", run_dir, time.perf_counter() - started)
