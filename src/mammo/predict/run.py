"""A trained RUN, the one way into a trained model: `Run` (model, input spec, calibration, PREP), loaded once.

`InputSpec.from_checkpoint` is the only reader of a checkpoint's `preprocessing` entries (task, input size and
`width`, normalisation, the PREP's `prepare` parameters); evaluate, predict, explain, report and cv score rows
and images through a `Run`, so every one of them feeds the model the input it was trained on. Torch is
imported inside the functions that need it, so worker processes that only preprocess pixels never load it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mammo.errors import DataError
from mammo.io.images import to_uint16
from mammo.predict.infer import forward_logits, logits_from_loader, probabilities, resolve_device
from mammo.prep.breast import locate_breast, prepare_whole
from mammo.prep.dataset import normalise, scale_input
from mammo.prep.roi import prepare_roi, table_box

if TYPE_CHECKING:
    import torch
    from torch import nn

    from mammo.datasets import PrepDataset
    from mammo.models.registry import ModelInfo

TASKS = ("whole", "roi")
DEFAULT_TASK = "whole"
DEFAULT_THRESHOLD = 0.5  # an uncalibrated run's decision threshold
DEFAULT_TEMPERATURE = 1.0  # an uncalibrated run's temperature
DEFAULT_CONTEXT = 0.5  # roi window margin when the PREP did not record one (prepare's default)
CLASS_NAMES = ("benign", "malignant")


def _scalar(value: Any, default: float) -> float:
    """A stored mean/std: a number or a per-channel list (its mean is used); `default` when absent."""
    return default if value is None else float(np.mean(np.asarray(value, dtype=np.float64)))


@dataclass(frozen=True)
class InputSpec:
    """Everything preprocessing needs to give a model the input it was trained on (picklable, no torch).

    `size` x `width` (rows x cols) is the model input (`width` None = square); `prep_size` and `context` are the
    PREP's `prepare` parameters, used to prepare a raw source image as `mammo prepare` did.
    """

    task: str = DEFAULT_TASK
    size: int = 0
    width: int | None = None
    mean: float = 0.0
    std: float = 1.0
    prep_size: int = 0
    context: float = DEFAULT_CONTEXT
    prepare: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any]) -> InputSpec:
        """The spec of a checkpoint dict: the one reading of its `preprocessing` entries and their defaults.

        The task falls back to the PREP's `prepare` record (prepare.json as the checkpoint carries it), then
        to whole; the PREP size to the input size; the roi context to prepare's default.
        """
        pre = dict(ckpt.get("preprocessing") or {})
        prepare = dict(pre.get("prepare") or {})
        size = int(pre["size"])
        width = pre.get("width")
        context = prepare.get("context")
        return cls(
            task=str(pre.get("task") or prepare.get("task") or DEFAULT_TASK),
            size=size,
            width=None if width is None else int(width),
            mean=_scalar(pre.get("mean"), 0.0),
            std=_scalar(pre.get("std"), 1.0),
            prep_size=int(prepare.get("size") or size),
            context=float(DEFAULT_CONTEXT if context is None else context),
            prepare=prepare,
        )

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the model input."""
        return self.size, self.width if self.width is not None else self.size

    def from_prepared(self, img: np.ndarray) -> np.ndarray:
        """A prepared (PREP) 8/16-bit image as the model's float32 (1, rows, cols) input."""
        return normalise(scale_input(img, self.size, self.width), self.mean, self.std)

    def prepare_source(
        self, image: np.ndarray, box: tuple[float, float, float, float] | None = None
    ) -> np.ndarray:
        """A raw source image (uint8/uint16 HxW, any size) prepared as `mammo prepare` would: the uint16 PREP square.

        whole runs: `prepare_whole` at the PREP size. roi runs: with `box` (x0, y0, x1, y1 in source pixels)
        the lesion window of `prepare_roi` with the run's context and flip, in standard polarity as prepare makes
        it; without it the image is taken as the lesion crop as it is (a centred square window, no extra context,
        no flip, no polarity step: a crop has no background to tell it from).
        ValueError when the image cannot be prepared (no breast, box outside the image).
        """
        if image.ndim != 2:
            raise ValueError(f"expected a 2-D grayscale image, got shape {image.shape}")
        img = to_uint16(image)
        if self.task == "whole":
            return prepare_whole(img, self.prep_size)[0]
        if self.task == "roi":
            if box is None:
                return prepare_roi(img, (0, 0, img.shape[1], img.shape[0]), self.prep_size, 0.0, flip=False)[
                    0
                ]
            img, breast = locate_breast(img)
            lesion = table_box(*box, img.shape[:2])
            return prepare_roi(img, lesion, self.prep_size, self.context, flip=breast.flip)[0]
        raise ValueError(
            f"unknown task {self.task!r} in the checkpoint's preprocessing (expected whole or roi)"
        )

    def preprocess(
        self, image: np.ndarray, box: tuple[float, float, float, float] | None = None
    ) -> np.ndarray:
        """A raw source image as the model's float32 (1, rows, cols) input, as in training (`prepare_source`)."""
        return self.from_prepared(self.prepare_source(image, box))


def find_prep_dir(run_dir: Path, ckpt: Mapping[str, Any], spec: InputSpec) -> Path | None:
    """The PREP a run was trained on: RUN/config.yaml's, the checkpoint config's, then the `prepare` record's."""
    import yaml

    candidates: list[Any] = []
    config_file = run_dir / "config.yaml"
    if config_file.is_file():
        config = yaml.safe_load(config_file.read_text()) or {}
        candidates.append(config.get("prep"))
    candidates.append((ckpt.get("config") or {}).get("prep"))
    candidates += [spec.prepare.get(k) for k in ("out", "prep", "prep_dir")]
    for c in candidates:
        if c and (Path(c) / "dataset.csv").is_file():
            return Path(c)
    return None


@dataclass
class Run:
    """A RUN's model, loaded once on a device, with its input spec, calibration and PREP."""

    model: nn.Module
    ckpt: dict[str, Any]
    spec: InputSpec
    device: torch.device
    run_dir: Path

    @classmethod
    def load(cls, run_dir: str | os.PathLike, device: str = "auto", which: str = "best") -> Run:
        """Load RUN/<which>.pt on the resolved device (DataError when the RUN has no checkpoint).

        The weights are put in channels_last on every device: on CPU too it runs the forward pass 1.2-2x faster
        than the default layout (bench/bench_predict.py, `forward`, same run), and nothing else changes.
        """
        import torch

        from mammo.models.checkpoint import load_run

        dev = resolve_device(device)
        model, ckpt = load_run(run_dir, which=which, device=dev)
        model = model.to(memory_format=torch.channels_last)
        return cls(model.eval(), ckpt, InputSpec.from_checkpoint(ckpt), dev, Path(run_dir))

    @property
    def task(self) -> str:
        """'whole' or 'roi': what the run was trained on."""
        return self.spec.task

    @property
    def threshold(self) -> float:
        """Decision threshold on the calibrated probability, chosen on validation."""
        return float(self.ckpt.get("threshold", DEFAULT_THRESHOLD))

    @property
    def temperature(self) -> float:
        """Calibration temperature fitted on validation."""
        return float(self.ckpt.get("temperature", DEFAULT_TEMPERATURE))

    @property
    def model_name(self) -> str:
        """The registry name of the model."""
        return str((self.ckpt.get("model") or {}).get("name", "unknown"))

    @property
    def info(self) -> ModelInfo:
        """The model's registry entry (its Grad-CAM layer, ...), looked up now so a test registry is honoured."""
        from mammo.models import registry

        return registry.get_model_info(self.model_name)

    @property
    def model_args(self) -> dict[str, Any]:
        """The keyword arguments the model was built with."""
        return dict((self.ckpt.get("model") or {}).get("args") or {})

    @property
    def class_names(self) -> list[str]:
        """Names of the classes (0, 1)."""
        return list(self.ckpt.get("class_names") or CLASS_NAMES)

    def prep_dir(self, data: str | os.PathLike | None = None) -> Path:
        """The PREP folder: `data` if given, else the one this run was trained on; DataError when not found."""
        if data is not None:
            prep = Path(data)
            if not (prep / "dataset.csv").is_file():
                raise DataError(f"{prep}: no dataset.csv here; pass the folder written by `mammo prepare`")
            return prep
        found = find_prep_dir(self.run_dir, self.ckpt, self.spec)
        if found is None:
            raise DataError(
                f"{self.run_dir}: the PREP folder this run was trained on was not found; pass it with --data PREP"
            )
        return found

    def random_model(self, seed: int = 0) -> nn.Module:
        """The same architecture with seeded random weights, in eval mode on this run's device."""
        import torch

        from mammo.models.registry import create_model

        torch.manual_seed(seed)
        return create_model(self.model_name, pretrained=False, **self.model_args).to(self.device).eval()

    def dataset(self, rows: pd.DataFrame, prep: str | os.PathLike | None = None) -> PrepDataset:
        """PREP rows as the model's inputs (size and width, normalisation; no augmentation)."""
        from mammo.datasets import PrepDataset

        spec = self.spec
        return PrepDataset(
            self.prep_dir(prep), rows, spec.size, spec.mean, spec.std, augment=None, width=spec.width
        )

    def preprocess(
        self, image: np.ndarray, box: tuple[float, float, float, float] | None = None
    ) -> np.ndarray:
        """A raw source image as this run's model input (`InputSpec.preprocess`)."""
        return self.spec.preprocess(image, box)

    def logits(self, batch: np.ndarray | torch.Tensor, tta: bool = False) -> np.ndarray:
        """Logits (B,) of a float32 (B, 1, H, W) batch of model inputs."""
        import torch

        x = torch.as_tensor(batch)
        with torch.no_grad():
            return forward_logits(self.model, x, self.device, tta).cpu().numpy()

    def logits_from_loader(self, loader: Iterable, tta: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(logits, labels) of a loader of (x, y, ...) batches, in loader order."""
        return logits_from_loader(self.model, loader, self.device, tta)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of logits with this run's temperature."""
        return probabilities(logits, self.temperature)

    def score_rows(
        self,
        rows: pd.DataFrame,
        prep: str | os.PathLike | None = None,
        batch_size: int = 32,
        tta: bool = False,
        desc: str = "score",
    ) -> np.ndarray:
        """Logits (float64, one per row) of PREP rows, read as training reads them (no augmentation)."""
        from torch.utils.data import DataLoader
        from tqdm import tqdm

        cuda = self.device.type == "cuda"
        loader = DataLoader(
            self.dataset(rows, prep),
            batch_size=batch_size,
            shuffle=False,
            pin_memory=cuda,
            num_workers=min(8, os.cpu_count() or 1) if cuda else 0,
        )
        logits, _ = self.logits_from_loader(tqdm(loader, desc=desc, unit="batch", leave=False), tta)
        return logits.astype(np.float64)
