"""Training configuration: defaults < model train_defaults < YAML file < flags, saved as RUN/config.yaml."""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mammo.errors import UserError
from mammo.io.atomic import write_text

CHOICES = {
    "optimizer": ("adamw", "adadelta", "sgd"),
    "scheduler": ("cosine", "constant"),
    "device": ("auto", "cpu", "cuda"),
    "balance": ("sampler", "loss", "none"),
    "augment": ("mammo", "seed", "none"),
}


@dataclass
class TrainConfig:
    """Every knob of a training run; `size=None` means the model's own input size, `workers=None` means auto.

    `prep` records the PREP folder the run was trained on (set by `train`, read by `mammo evaluate`).
    `width` makes the input a size x width rectangle (rows x cols; None = square); `label_smoothing` trains
    on targets eps/2 and 1 - eps/2 instead of 0 and 1; `freeze` keeps the parameters up to and including the
    model's `freeze`-th feature layer (ModelInfo.feature_layers: stem, stage ends, head) at their pretrained
    values, which skips their backward pass (about 2.5x faster on CPU for 4 with efficientnet-lite0).
    """

    prep: str | None = None
    model: str = "efficientnet-lite0"
    model_args: dict = field(default_factory=dict)
    pretrained: bool = True
    weights: str | None = None
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    optimizer_args: dict = field(default_factory=dict)
    scheduler: str = "cosine"
    warmup_epochs: float = 1.0
    grad_clip: float | None = 5.0
    size: int | None = None
    width: int | None = None
    label_smoothing: float = 0.0
    freeze: int = 0
    device: str = "auto"
    seed: int = 0
    workers: int | None = None
    patience: int | None = 5
    balance: str = "sampler"
    augment: str = "mammo"
    max_train_batches: int | None = None
    amp: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of primitives (YAML- and torch.load(weights_only=True)-safe)."""
        return dataclasses.asdict(self)


FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def _check_keys(values: Mapping[str, Any], source: str) -> None:
    """UserError naming the first unknown key and the closest known one."""
    for key in values:
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key), sorted(FIELDS), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(sorted(FIELDS))}"
            raise UserError(f"{source}: unknown config key '{key}' ({hint})")


# Allowed ranges (inclusive; None = no bound) of numeric knobs; every value is also type-checked against
# its field's annotation and must be finite, so `lr: inf`, `epochs: ten` or `batch_size: 4.5` stop here.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "epochs": (1, 100_000),
    "batch_size": (1, 65_536),
    "lr": (1e-12, 10.0),
    "weight_decay": (0.0, 10.0),
    "warmup_epochs": (0.0, None),
    "grad_clip": (1e-12, None),
    "size": (16, 4096),  # as prepare's --size: no mammogram model needs more
    "seed": (0, 2**32 - 1),
    "workers": (0, 256),
    "patience": (1, None),
    "max_train_batches": (1, None),
    "width": (16, 4096),
    "label_smoothing": (0.0, 0.999),
    "freeze": (0, None),
}
_KINDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "str": "text",
    "dict": "a mapping",
}


def _check_value(key: str, value: Any, annotation: str) -> Any:
    """`value` as the type `annotation` names ('int', 'float | None', ...), range-checked; else UserError."""
    kinds = [k.strip() for k in str(annotation).split("|")]
    if value is None:
        if "None" in kinds:
            return None
        raise UserError(f"config '{key}': a value is required ({_KINDS.get(kinds[0], kinds[0])})")
    kind = kinds[0]
    out: Any = value
    if kind == "bool":
        if not isinstance(value, bool):
            raise UserError(f"config '{key}': {value!r} is not true or false")
    elif kind in ("int", "float"):
        if isinstance(value, str):  # YAML reads 3e-4 as text
            try:
                value = float(value.strip())
            except ValueError:
                raise UserError(f"config '{key}': {out!r} is not {_KINDS[kind]}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"config '{key}': {out!r} is not {_KINDS[kind]}")
        if not math.isfinite(value):
            raise UserError(f"config '{key}': {out!r} is not a finite number")
        if kind == "int" and value != int(value):
            raise UserError(f"config '{key}': {out!r} is not a whole number")
        out = int(value) if kind == "int" else float(value)
        lo, hi = RANGES.get(key, (None, None))
        if (lo is not None and out < lo) or (hi is not None and out > hi):
            bounds = f"between {lo:g} and {hi:g}" if hi is not None else f"at least {lo:g}"
            raise UserError(f"config '{key}': {out!r} is out of range; it must be {bounds}")
    elif kind == "str":
        if not isinstance(value, (str, os.PathLike)):
            raise UserError(f"config '{key}': {value!r} is not text")
        out = str(value)
    elif kind == "dict" and not isinstance(value, dict):
        raise UserError(f"config '{key}': expected a mapping, got {value!r}")
    return out


def _coerce(cfg: TrainConfig) -> TrainConfig:
    """Check every value's type and range and the choices; Path-like values become str (a primitive config)."""
    for f in dataclasses.fields(cfg):
        setattr(cfg, f.name, _check_value(f.name, getattr(cfg, f.name), f.type))
    for key, allowed in CHOICES.items():
        value = getattr(cfg, key)
        if value not in allowed:
            raise UserError(f"config '{key}': '{value}' is not one of {', '.join(allowed)}")
    return cfg


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML config file as a dict; UserError when missing, unparsable or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    _check_keys(data, str(path))
    return data


def resolve_config(
    layers: list[Mapping[str, Any]] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Merge code defaults < model train_defaults < YAML layers (in order) < flags (None = unset)."""
    layers = list(layers or [])
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    _check_keys(flags, "flags")
    model = TrainConfig.model
    for layer in [*layers, flags]:
        model = layer.get("model", model)
    from mammo.models.registry import get_model_info

    model_defaults = {
        k: v for k, v in dict(get_model_info(model).train_defaults or {}).items() if k in FIELDS
    }
    merged: dict[str, Any] = {}
    for layer in [model_defaults, *layers, flags]:
        merged.update(layer)
    return _coerce(TrainConfig(**merged))


def save_config(cfg: TrainConfig, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML, atomically."""
    write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), path)
