"""The model-side steps of inference, shared by train and by `mammo.predict.run.Run`: devices, batched logits
(channels_last, bf16 autocast on CUDA, flip TTA) and calibrated probabilities.

The pixel side (a source image or a PREP PNG to the model's input) is `mammo.predict.run.InputSpec`. Torch is
imported inside the functions that need it, so worker processes that only preprocess pixels never load it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from mammo.errors import UserError
from mammo.io.devices import DEVICES

if TYPE_CHECKING:
    import torch
    from torch import nn


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' or 'cuda:N' without CUDA, or an unknown name, is a UserError."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind = name.split(":", 1)[0]
    if kind == "auto" or kind not in DEVICES:  # auto:N is not a device
        raise UserError(f"--device {name!r}: choose auto, cpu or cuda (or cuda:N)")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device is available here; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r}: not a device name; use auto, cpu, cuda or cuda:N") from None


def forward_logits(
    model: nn.Module, x: torch.Tensor, device: torch.device, tta: bool = False, amp: bool | None = None
) -> torch.Tensor:
    """Float32 logits (B,) of one batch: channels_last and bf16 autocast on CUDA (amp=None), optional flip TTA.

    TTA is the mean of the logits of the image and of its horizontal mirror. Call under torch.no_grad().
    """
    import torch

    x = x.to(device, non_blocking=True)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    amp = device.type == "cuda" if amp is None else amp
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model(x).reshape(-1).float()
        if tta:
            logits = (logits + model(torch.flip(x, dims=[3])).reshape(-1).float()) / 2
    return logits


def logits_from_loader(
    model: nn.Module, loader: Iterable, device: torch.device, tta: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) in loader order, model in eval mode without gradients; batches are (x, y, ...) tuples."""
    import torch

    model.eval()
    out, labels = [], []
    with torch.no_grad():
        for batch in loader:
            out.append(forward_logits(model, batch[0], device, tta).cpu().numpy())
            labels.append(np.asarray(batch[1]))
    if not out:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    return np.concatenate(out), np.concatenate(labels)


def probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated probabilities sigmoid(logit / T) in float64 (T fitted on validation, stored in the checkpoint)."""
    # here, not at the top: scikit-learn takes seconds to import, and a mistyped path is refused before it loads
    from mammo.stats.calibration import apply_temperature

    return apply_temperature(logits, temperature)
