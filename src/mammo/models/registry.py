"""Model registry: one name -> builder table, each model carrying its own preprocessing and defaults.

Builders register themselves with `@register_model(...)` when their module is imported; the registry
imports the built-in model modules on first use, so importing this module stays cheap (no torch).

Contract (docs/architecture.md): every model takes a `(B, 1, H, W)` float tensor, made from a 16-bit PNG as
`png16 / 65535` and then `(x - info.mean) / info.std`, and returns `(B, 1)` logits. There is no sigmoid in
the model: training uses `BCEWithLogitsLoss`, which is numerically the Keras `sigmoid` + `binary_crossentropy`
of the starting point, computed stably in one step.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mammo.errors import UserError

if TYPE_CHECKING:
    from torch import nn

_BUILTIN_MODULES = ("mammo.models.seed_cnn", "mammo.models.efficientnet_lite", "mammo.models.monai_nets")


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a registered model needs around it: preprocessing, defaults, and layers to look at.

    Attributes:
        name: registry name, e.g. ``efficientnet-lite0``.
        description: one line for ``mammo models``.
        input_size: default square input side in pixels (the size ``prepare`` should write).
        mean, std: one-channel normalisation applied after ``png16 / 65535``.
        pretrained: True when packaged weights exist (``create_model(pretrained=True)`` loads them).
        gradcam_layer: ``named_modules()`` name to hook for Grad-CAM (the last convolutional stage).
        feature_layers: ``named_modules()`` names of the successive conv blocks, for feature-map pictures.
        train_defaults: training settings this model wants instead of the trainer's defaults. Keys:
            ``optimizer`` ("adamw" | "adadelta"), ``optimizer_args`` (extra optimizer keyword arguments,
            e.g. Adadelta's ``rho``), ``lr``, ``weight_decay``, ``size`` (input side), ``batch_size``,
            ``epochs``, ``scheduler`` ("cosine" = warm-up then cosine decay | "constant"),
            ``augment`` ("mammo" = flips, small affine, intensity jitter | "seed" = the starting point's
            Keras augmentation: rotation 0.4 degrees, shifts 0.2, horizontal flip). Absent keys mean
            "use the trainer's default".
        arg_choices: the allowed values of builder arguments that take one of a few names (e.g. ``pooling``),
            checked with the builder's keywords by ``check_model_args`` before anything is built.
    """

    name: str
    description: str
    input_size: int
    mean: float
    std: float
    pretrained: bool
    gradcam_layer: str
    feature_layers: tuple[str, ...]
    train_defaults: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    arg_choices: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict, hash=False)


Builder = Callable[..., "nn.Module"]
_MODELS: dict[str, tuple[Builder, ModelInfo]] = {}
_loaded = False


def register_model(
    name: str,
    *,
    description: str,
    input_size: int,
    mean: float,
    std: float,
    pretrained: bool,
    gradcam_layer: str,
    feature_layers: tuple[str, ...],
    train_defaults: dict[str, Any] | None = None,
    arg_choices: dict[str, tuple[str, ...]] | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator adding `builder(pretrained: bool, **kwargs) -> nn.Module` to the registry under `name`."""
    info = ModelInfo(
        name,
        description,
        input_size,
        float(mean),
        float(std),
        pretrained,
        gradcam_layer,
        tuple(feature_layers),
        dict(train_defaults or {}),
        dict(arg_choices or {}),
    )

    def decorate(builder: Builder) -> Builder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = (builder, info)
        return builder

    return decorate


def _registry() -> dict[str, tuple[Builder, ModelInfo]]:
    """The registry, after importing the built-in model modules once."""
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
    return _MODELS


def _entry(name: str) -> tuple[Builder, ModelInfo]:
    """Builder and info for `name`, or a UserError that suggests the closest registered names."""
    models = _registry()
    if name in models:
        return models[name]
    close = difflib.get_close_matches(name, list(models), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise UserError(f"unknown model {name!r}: {hint}`mammo models` lists them ({', '.join(sorted(models))})")


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_registry())


def get_model_info(name: str) -> ModelInfo:
    """The ModelInfo of `name` (a copy: changing its train_defaults does not change the registry)."""
    info = _entry(name)[1]
    return dataclasses.replace(info, train_defaults=copy.deepcopy(info.train_defaults))


def check_model_args(name: str, args: dict[str, Any], source: str = "config 'model_args'") -> None:
    """UserError naming the value when `name`'s builder takes no such keyword or the value is not a known choice.

    Called before a run folder or a model exists, so a typo in a YAML config or a flag that this model does not
    have (`--pooling` on resnet18) is one line, not a TypeError or ValueError from inside the builder.
    """
    builder, info = _entry(name)
    params = inspect.signature(builder).parameters
    takes = [p for p in params if p != "pretrained" and params[p].kind is not inspect.Parameter.VAR_KEYWORD]
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key, value in args.items():
        if key == "pretrained" or (key not in takes and not open_ended):
            known = ", ".join(takes) or "none"
            raise UserError(f"{source}: {name} takes no argument {key!r} (its arguments: {known})")
        allowed = info.arg_choices.get(key)
        if allowed is not None and value not in allowed:
            raise UserError(f"{source}: {key} {value!r} is not one of {', '.join(allowed)} for {name}")


def create_model(
    name: str, pretrained: bool = True, weights: str | Path | None = None, **kwargs: Any
) -> nn.Module:
    """Build model `name`: packaged weights when `pretrained` and available, or a local state dict `weights`.

    `weights` may be a plain state dict or a mammo checkpoint (its ``state_dict`` is used); when it is
    given the packaged weights are not loaded first. `kwargs` go to the builder (e.g. ``input_size``).
    """
    builder, info = _entry(name)
    model = builder(pretrained=pretrained and info.pretrained and weights is None, **kwargs)
    if weights is not None:
        load_weights(model, weights, name)
    return model


def load_weights(model: nn.Module, path: str | Path, name: str) -> None:
    """Load a state dict (or a mammo checkpoint's) from `path` into `model`, strictly, or raise UserError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path} (give a state dict saved with torch.save)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(
            f"cannot read weights {path}: {str(exc).splitlines()[0]} "
            "(expected a state dict saved with torch.save)"
        ) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"weights {path} hold a {type(state).__name__}, not a state dict")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(
        k for k in set(expected) & set(state) if getattr(state[k], "shape", None) != expected[k].shape
    )
    if missing or unexpected or wrong_shape:
        problems = (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape))
        parts = [
            f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''} ({len(keys)})"
            for label, keys in problems
            if keys
        ]
        raise UserError(
            f"weights {path} do not fit model {name!r}: {'; '.join(parts)}; "
            "were they saved from this model with the same arguments?"
        )
    model.load_state_dict(state)


def count_parameters(name: str, **kwargs: Any) -> int:
    """Number of parameters of model `name`, counted on the meta device (nothing is allocated)."""
    import torch

    builder = _entry(name)[0]
    with torch.device("meta"):
        model = builder(pretrained=False, **kwargs)
    return sum(p.numel() for p in model.parameters())


def models_table() -> str:
    """A plain-text table of the registered models (used by `mammo models`)."""
    header = ("name", "params (M)", "input", "pretrained", "description")
    rows = [header]
    for name in list_models():
        info = _entry(name)[1]
        rows.append(
            (
                name,
                f"{count_parameters(name) / 1e6:.1f}",
                f"{info.input_size}x{info.input_size}",
                "yes" if info.pretrained else "no",
                info.description,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1] for r in rows]
    return "\n".join(lines)
