"""Self-describing checkpoints (docs/architecture.md): atomic save, weights_only load, model rebuild."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mammo.errors import DataError
from mammo.io.atomic import atomic_path

CHECKPOINT_FORMAT = "mammo-checkpoint/1"
CLASS_NAMES = ["benign", "malignant"]
REQUIRED_KEYS = ("format", "model", "state_dict", "preprocessing", "class_names", "threshold", "temperature")


def make_checkpoint(
    model_name: str,
    model_args: dict,
    state_dict: dict[str, torch.Tensor],
    preprocessing: dict,
    epoch: int,
    best_val_auc: float,
    config: dict,
    threshold: float = 0.5,
    temperature: float = 1.0,
    **extra: Any,
) -> dict[str, Any]:
    """The RUN-contract checkpoint dict (CPU tensors and primitives only); `extra` adds resume state."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model": {"name": model_name, "args": dict(model_args)},
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "preprocessing": preprocessing,
        "class_names": list(CLASS_NAMES),
        "threshold": float(threshold),
        "temperature": float(temperature),
        "epoch": int(epoch),
        "best_val_auc": float(best_val_auc),
        "config": config,
        **extra,
    }


def save_checkpoint(path: str | os.PathLike, ckpt: dict[str, Any]) -> None:
    """torch.save the dict atomically (a kill mid-write leaves the previous file intact)."""
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def _first_line(exc: Exception) -> str:
    """An exception's first line (its type when it has no message)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with torch.load(weights_only=True); DataError when missing, corrupt or not ours."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found; train first with `mammo train PREP --out RUN`")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):  # damaged or not a torch file: torch's text would mislead
            raise DataError(
                f"{path}: not a readable checkpoint (damaged, or not written by torch.save); "
                "retrain or restore the file"
            ) from None
        # never relay torch's advice to load it with weights_only=False: that would run the file's code
        raise DataError(
            f"{path}: not a safe mammo checkpoint (it holds Python objects beyond tensors and plain values, "
            "which are refused because loading them can run code); use a RUN/best.pt written by `mammo train`"
        ) from None
    except Exception as exc:  # torch raises several types for truncated/foreign files
        raise DataError(
            f"{path}: not a readable checkpoint ({_first_line(exc)}); retrain or restore the file"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"{path}: not a mammo checkpoint (expected format {CHECKPOINT_FORMAT})")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise DataError(f"{path}: checkpoint lacks {', '.join(missing)}; retrain with this version of mammo")
    return ckpt


def build_model(ckpt: dict[str, Any], device: str | torch.device = "cpu") -> nn.Module:
    """The checkpoint's model rebuilt (pretrained=False) with its weights, in eval mode on `device`."""
    from mammo.models.registry import create_model

    model = create_model(ckpt["model"]["name"], pretrained=False, **ckpt["model"]["args"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval()


def load_run(
    run_dir: str | os.PathLike, which: str = "best", device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode, checkpoint dict) from RUN/<which>.pt, for evaluate, predict and explain."""
    ckpt = load_checkpoint(Path(run_dir) / f"{which}.pt", map_location=device)
    return build_model(ckpt, device), ckpt
