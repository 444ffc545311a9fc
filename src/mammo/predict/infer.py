"""One inference path: RUN + images -> calibrated probabilities, shared by train, evaluate, predict and explain.

The pixel recipe is the training one: a source image goes through the run's own `prepare` step (whole: breast
crop, chest-wall-left flip, aspect-keeping resize and pad; roi: a square window around the lesion box), then
`scale_input` (png16 / 65535, area resize to the training side) and `normalise` ((x - mean) / std), the two
functions the training dataset uses on PREP PNGs. Torch is imported inside the functions that need it, so
worker processes that only preprocess pixels never load it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mammo.errors import UserError
from mammo.io.images import to_uint16
from mammo.prep.breast import find_breast, prepare_whole
from mammo.prep.dataset import normalise, scale_input
from mammo.prep.roi import prepare_roi, table_box
from mammo.stats.calibration import apply_temperature

if TYPE_CHECKING:
    import torch
    from torch import nn

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' or 'cuda:N' without CUDA, or an unknown name, is a UserError."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind = name.split(":", 1)[0]
    if kind not in ("cpu", "cuda"):
        raise UserError(f"--device {name!r}: choose auto, cpu or cuda (or cuda:N)")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device is available here; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r}: not a device name; use auto, cpu, cuda or cuda:N") from None


def input_stats(preprocessing: dict) -> tuple[float, float]:
    """(mean, std) of a checkpoint's preprocessing; stored as numbers or per-channel lists (their mean is used)."""

    def scalar(value: Any, default: float) -> float:
        return default if value is None else float(np.mean(np.asarray(value, dtype=np.float64)))

    return scalar(preprocessing.get("mean"), 0.0), scalar(preprocessing.get("std"), 1.0)


def preprocess_image(
    image: np.ndarray, preprocessing: dict, box: tuple[float, float, float, float] | None = None
) -> np.ndarray:
    """A raw source image (uint8/uint16 HxW, any size) as the model's float32 (1, H, W) input, as in training.

    whole runs: `prepare_whole` at the PREP size, then scaled and normalised. roi runs: with `box`
    (x0, y0, x1, y1 in source pixels) the lesion window of `prepare_roi` with the run's context and flip;
    without it the image is taken as the lesion crop (a centred square window, no extra context, no flip).
    ValueError when the image cannot be prepared (no breast, box outside the image).
    """
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {image.shape}")
    prepare = preprocessing.get("prepare") or {}
    task = str(preprocessing.get("task") or prepare.get("task") or "whole")
    size = int(preprocessing["size"])
    prep_size = int(prepare.get("size") or size)
    img = to_uint16(image)
    if task == "whole":
        out, _ = prepare_whole(img, prep_size)
    elif task == "roi":
        context = float(prepare.get("context") if prepare.get("context") is not None else 0.5)
        if box is None:
            out, _ = prepare_roi(img, (0, 0, img.shape[1], img.shape[0]), prep_size, 0.0, flip=False)
        else:
            lesion = table_box(*box, img.shape[:2])
            out, _ = prepare_roi(img, lesion, prep_size, context, flip=find_breast(img).flip)
    else:
        raise ValueError(f"unknown task {task!r} in the checkpoint's preprocessing (expected whole or roi)")
    x = scale_input(out, size, preprocessing.get("width"))
    return normalise(x, *input_stats(preprocessing))


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
    return apply_temperature(logits, temperature)


@dataclass
class Predictor:
    """A RUN's model, loaded once on a device, with its checkpoint (preprocessing, threshold, temperature)."""

    model: nn.Module
    ckpt: dict[str, Any]
    device: torch.device
    run_dir: Path

    @classmethod
    def load(cls, run_dir: str | os.PathLike, device: str = "auto", which: str = "best") -> Predictor:
        """Load RUN/<which>.pt on the resolved device (DataError when the RUN has no checkpoint)."""
        import torch

        from mammo.models.checkpoint import load_run

        dev = resolve_device(device)
        model, ckpt = load_run(run_dir, which=which, device=dev)
        if dev.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        return cls(model.eval(), ckpt, dev, Path(run_dir))

    @property
    def preprocessing(self) -> dict[str, Any]:
        """The checkpoint's preprocessing dict (task, size, mean, std, prepare parameters)."""
        return dict(self.ckpt.get("preprocessing") or {})

    @property
    def task(self) -> str:
        """'whole' or 'roi': what the run was trained on."""
        pre = self.preprocessing
        return str(pre.get("task") or (pre.get("prepare") or {}).get("task") or "whole")

    @property
    def threshold(self) -> float:
        """Decision threshold on the calibrated probability, chosen on validation."""
        return float(self.ckpt.get("threshold", 0.5))

    @property
    def temperature(self) -> float:
        """Calibration temperature fitted on validation."""
        return float(self.ckpt.get("temperature", 1.0))

    @property
    def model_name(self) -> str:
        """The registry name of the model."""
        return str((self.ckpt.get("model") or {}).get("name", "unknown"))

    def preprocess(
        self, image: np.ndarray, box: tuple[float, float, float, float] | None = None
    ) -> np.ndarray:
        """`preprocess_image` with this run's preprocessing."""
        return preprocess_image(image, self.preprocessing, box)

    def logits(self, batch: np.ndarray, tta: bool = False) -> np.ndarray:
        """Logits (B,) of a float32 (B, 1, H, W) batch of preprocessed images."""
        import torch

        with torch.no_grad():
            return forward_logits(self.model, torch.from_numpy(batch), self.device, tta).cpu().numpy()

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of logits with this run's temperature."""
        return probabilities(logits, self.temperature)
