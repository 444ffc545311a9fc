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
from mammo.io.devices import DEVICE_HELP, DEVICES


def option(
    help: str,
    default: Any = None,
    bounds: tuple[float | None, float | None] | None = None,
    choices: tuple[str, ...] | None = None,
    default_text: str | None = None,
    flag: bool = True,
    **field_args: Any,
) -> Any:
    """A TrainConfig field described once: the flag's help, its allowed range or choices, the shown default.

    `bounds` is (low, high), inclusive, None = no bound; `default_text` replaces the default in the help
    where a None default means something (e.g. "the model's input size"); `flag=False` keeps a field out of
    the command line (a mapping, or set by `train` itself): YAML config only.
    """
    if "default_factory" not in field_args:
        field_args["default"] = default
    meta = {"help": help, "bounds": bounds, "choices": choices, "default_text": default_text, "flag": flag}
    return field(metadata=meta, **field_args)


@dataclass
class TrainConfig:
    """Every knob of a training run, each described once (its flag's help, range, choices: `option`).

    `prep` records the PREP folder the run was trained on (set by `train`, read by `mammo evaluate`).
    `width` makes the input a size x width rectangle (rows x cols; None = square); `label_smoothing` trains
    on targets eps/2 and 1 - eps/2 instead of 0 and 1; `freeze` keeps the parameters up to and including the
    model's `freeze`-th feature layer (ModelInfo.feature_layers: stem, stage ends, head) at their pretrained
    values, which skips their backward pass (about 2.5x faster on CPU for 4 with efficientnet-lite0).
    """

    prep: str | None = option("PREP folder the run was trained on (set by train)", flag=False)
    model: str = option("registered model name, see `mammo models`", "efficientnet-lite0")
    model_args: dict = option(  # noqa: RUF009 (option returns a dataclasses.field)
        "keyword arguments of the model's builder", flag=False, default_factory=dict
    )
    pretrained: bool = option("start from the model's pretrained weights (--no-pretrained: random)", True)
    weights: str | None = option("start from a local state dict", default_text="the model's own")
    epochs: int = option("epochs to train", 10, (1, 100_000))
    batch_size: int = option("images per batch", 32, (1, 65_536))
    lr: float = option("peak learning rate", 3e-4, (1e-12, 10.0))
    weight_decay: float = option("weight decay of the optimiser", 1e-4, (0.0, 10.0))
    optimizer: str = option("optimiser", "adamw", choices=("adamw", "adadelta", "sgd"))
    optimizer_args: dict = option(  # noqa: RUF009 (option returns a dataclasses.field)
        "keyword arguments of the optimiser", flag=False, default_factory=dict
    )
    scheduler: str = option(
        "learning-rate schedule after the warm-up", "cosine", choices=("cosine", "constant")
    )
    warmup_epochs: float = option("linear learning-rate warm-up in epochs", 1.0, (0.0, None))
    grad_clip: float | None = option("clip the gradient norm at this value", 5.0, (1e-12, None))
    # as prepare's --size: no mammogram model needs more than 4096
    size: int | None = option(
        "input rows (side of a square input)", None, (16, 4096), default_text="the model's input size"
    )
    width: int | None = option(
        "input columns: a size x width rectangle, aspect kept", None, (16, 4096), default_text="square"
    )
    label_smoothing: float = option("train on targets eps/2, 1-eps/2", 0.0, (0.0, 0.999))
    freeze: int = option("keep the first N feature layers pretrained and fixed", 0, (0, None))
    device: str = option(DEVICE_HELP, "auto", choices=DEVICES)
    seed: int = option(
        "seed of the run (and of cv's folds): same seed, same metrics on CPU", 0, (0, 2**32 - 1)
    )
    workers: int | None = option(
        "data loader workers (0: in this process)", None, (0, 256), default_text="auto from cores and device"
    )
    patience: int | None = option("early stopping patience in epochs of val AUC", 5, (1, None))
    balance: str = option(
        "class balance: a weighted sampler, a weighted loss or none",
        "sampler",
        choices=("sampler", "loss", "none"),
    )
    augment: str = option("augmentation recipe", "mammo", choices=("mammo", "seed", "none"))
    max_train_batches: int | None = option(
        "cap batches per epoch for quick runs", None, (1, None), default_text="no cap"
    )
    amp: bool = option("bf16 autocast on CUDA (--no-amp: float32)", True)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of primitives (YAML- and torch.load(weights_only=True)-safe)."""
        return dataclasses.asdict(self)


FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
FLAGS = [f for f in dataclasses.fields(TrainConfig) if f.metadata["flag"]]
# Allowed ranges (inclusive; None = no bound) and choices, from the fields; every value is also type-checked
# against its field's annotation and must be finite, so `lr: inf`, `epochs: ten` or `batch_size: 4.5` stop here.
RANGES = {f.name: f.metadata["bounds"] for f in dataclasses.fields(TrainConfig) if f.metadata["bounds"]}
CHOICES = {f.name: f.metadata["choices"] for f in dataclasses.fields(TrainConfig) if f.metadata["choices"]}


def _check_keys(values: Mapping[str, Any], source: str) -> None:
    """UserError naming the first unknown key and the closest known one."""
    for key in values:
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key), sorted(FIELDS), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(sorted(FIELDS))}"
            raise UserError(f"{source}: unknown config key '{key}' ({hint})")


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
        what = "a folder, not a config file" if path.is_dir() else "config file not found"
        raise UserError(f"{path}: {what}; give a YAML file of config keys")
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
    """Merge code defaults < model train_defaults < YAML layers (in order) < flags (None = unset).

    Args:
        layers: mappings of TrainConfig keys (YAML files read with `read_yaml`), later ones winning.
        overrides: keys over every layer, as flags; None values are unset.

    Example:
        >>> from mammo.train import resolve_config
        >>> cfg = resolve_config([{"epochs": 5}], {"model": "efficientnet-lite0", "lr": None})
    """
    layers = list(layers or [])
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    _check_keys(flags, "flags")
    model = TrainConfig.model
    for layer in [*layers, flags]:
        model = layer.get("model", model)
    from mammo.models.registry import check_model_args, get_model_info

    model_defaults = {
        k: v for k, v in dict(get_model_info(model).train_defaults or {}).items() if k in FIELDS
    }
    merged: dict[str, Any] = {}
    for layer in [model_defaults, *layers, flags]:
        merged.update(layer)
    cfg = _coerce(TrainConfig(**merged))
    check_model_args(cfg.model, cfg.model_args)
    return cfg


def save_config(cfg: TrainConfig, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML, atomically."""
    from mammo.io.atomic import write_text  # pandas: not at import, the CLI reads this module for its flags

    write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), path)
