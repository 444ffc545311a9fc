"""What a tracked run records, as plain dicts: params from the config, provenance tags, final metrics, artifacts.

Pure functions of the RUN/PREP files and the metrics dicts mammo already writes, so every backend (MLflow,
TensorBoard) logs the same names and `mammo runs` reads the same numbers from the folders.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mammo
from mammo.data.provenance import is_synthetic

# Per-epoch scalars: the columns of RUN/metrics.csv, logged with step = epoch.
EPOCH_METRICS = ("train_loss", "val_loss", "val_auc", "lr", "seconds")
# Small files of a RUN (or CV folder) worth keeping beside its numbers in a tracker.
ARTIFACTS = (
    "config.yaml",
    "metrics.csv",
    "curves.png",
    "report.html",
    "model.onnx",
    "metrics.json",
    "folds.csv",
    "eval/val/metrics.json",
    "eval/test/metrics.json",
)
# Scalars of an evaluation block (RUN/eval/<split>/metrics.json, CV/metrics.json) logged beside its AUC.
BLOCK_SCALARS = (
    "accuracy",
    "sensitivity",
    "specificity",
    "threshold",
    "brier",
    "ece",
    "n",
    "n_pos",
    "n_women",
)


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """The resolved config as params: nested mappings as dotted keys ('model_args.pooling'), values as text."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(flat_params(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)
    return out


def file_digest(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256 ('' when absent): which exact table a run saw."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else ""


def data_tags(prep: Path) -> dict[str, str]:
    """Provenance of PREP: synthetic / real / unknown (no record), its source, the dataset.csv digest, the path."""
    path = prep / "prepare.json"
    info = json.loads(path.read_text()) if path.is_file() else {}
    provenance = info.get("provenance") or {}
    kind = "synthetic" if is_synthetic(info) else ("real" if provenance else "unknown")
    return {
        "mammo.data": kind,
        "mammo.data.source": str(provenance.get("source", "")),
        "mammo.data.digest": file_digest(prep / "dataset.csv"),
        "mammo.prep": str(prep.resolve()),
    }


def run_tags(kind: str, folder: Path, prep: Path) -> dict[str, str]:
    """Tags of a tracked train / fold / cv run: what it is, where its folder is, its data, the mammo version."""
    return {
        "mammo.kind": kind,
        "mammo.folder": str(folder.resolve()),
        "mammo.version": mammo.__version__,
        **data_tags(prep),
    }


def _finite(value: Any) -> bool:
    """A number worth logging (bools and NaN/inf and text are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def auc_metrics(block: Mapping[str, Any], name: str) -> dict[str, float]:
    """`name`, `name`_ci_low, `name`_ci_high from a block's auc, auc_ci_low, auc_ci_high (the finite ones)."""
    pairs = {name: "auc", f"{name}_ci_low": "auc_ci_low", f"{name}_ci_high": "auc_ci_high"}
    return {k: float(block[v]) for k, v in pairs.items() if _finite(block.get(v))}


def block_metrics(block: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """An evaluation block flattened: its AUC with interval, a few scalars, and every shortcut baseline beside it.

    {'auc': .8, 'auc_ci_low': .7, ..., 'baselines': {'age': {'auc': .6, ...}}} with prefix 'test' ->
    test_auc, test_auc_ci_low, ..., test_accuracy, ..., baseline_age_test_auc, baseline_age_test_auc_ci_low, ...
    """
    out = auc_metrics(block, f"{prefix}_auc")
    out.update({f"{prefix}_{k}": float(block[k]) for k in BLOCK_SCALARS if _finite(block.get(k))})
    for name, b in (block.get("baselines") or {}).items():
        out.update(auc_metrics(b, f"baseline_{name}_{prefix}_auc"))
    breast = block.get("breast_level")
    if isinstance(breast, Mapping):
        out.update(auc_metrics(breast, f"breast_{prefix}_auc"))
        for name, b in (breast.get("baselines") or {}).items():
            out.update(auc_metrics(b, f"baseline_{name}_breast_{prefix}_auc"))
    return out


def result_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """A TrainResult's numbers (best val AUC and epoch, epochs run, threshold, temperature, early stop, time).

    Its `seconds` becomes train_seconds: `seconds` is the per-epoch time of metrics.csv.
    """
    out = {("train_seconds" if k == "seconds" else k): float(v) for k, v in result.items() if _finite(v)}
    if isinstance(result.get("stopped_early"), bool):
        out["stopped_early"] = float(result["stopped_early"])
    return out


def artifacts(folder: Path) -> list[tuple[Path, str]]:
    """(file, folder inside the tracker's artifacts) for every ARTIFACTS file present in `folder`."""
    found = []
    for name in ARTIFACTS:
        path = folder / name
        if path.is_file():
            found.append((path, str(Path(name).parent) if "/" in name else ""))
    return found
