"""Heatmaps of the evidence for "malignant" (MONAI Grad-CAM, Grad-CAM++, occlusion sensitivity) and feature maps.

Every model here returns one logit per image (malignant), so the class scored is index 0 and the gradient is
that of the malignant logit. A batch costs one forward and, for Grad-CAM and Grad-CAM++, one backward: the
logits, the maps and the feature-map activations all come from that one pass (`explain_batch`). MONAI's hooks
are registered once per (model, layer) and reused, since MONAI never removes them. MONAI's default
post-processing maps (min, max) to (1, 0), which would make the strongest evidence the coldest colour; it is
replaced by the identity, and maps are returned raw (>= 0, hot = more malignant). Occlusion: MONAI returns the
logit with each region blurred out, so the evidence of a region is how much hiding it lowers the malignant logit
(base - occluded), clipped at 0; it takes one image at a time.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import torch
from torch import nn

METHODS = ("gradcam", "gradcam++", "occlusion")

# MONAI's hooks per model and layer: registered on first use and kept as long as the model lives.
_HOOKED: weakref.WeakKeyDictionary[nn.Module, dict[str, Any]] = weakref.WeakKeyDictionary()


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@cache
def _per_image_score() -> type:
    """MONAI's ModelWithHooks with the class score kept as (B, 1, 1, 1) and the gradient read by a tensor hook.

    The score's shape: Grad-CAM++'s exp(score) then weighs each image's gradients by its own score (MONAI's (B,)
    score would broadcast along the map's columns for B > 1). The tensor hook: MONAI reads the gradient through a
    module full backward hook, and in torch 2.13 on CPU that hook hands a wrong gradient when an eval-mode
    BatchNorm follows the layer, the input is channels_last (as `Run.load` puts it) and the batch holds one image
    (tests/test_invariance.py), so a film explained alone got another map than in a batch. A hook on the
    layer's output tensor gets the gradient autograd computes, whatever the batch. Built on first use: importing
    MONAI takes seconds.
    """
    from monai.visualize import ModelWithHooks

    class PerImageScore(ModelWithHooks):
        def __init__(self, model: nn.Module, layer: str) -> None:
            super().__init__(model, layer, register_forward=True, register_backward=False)
            self.register_backward = True  # MONAI's __call__ then runs the backward; forward_hook reads it

        def forward_hook(self, name: str) -> Any:
            def _hook(_module: nn.Module, _input: Any, output: torch.Tensor) -> None:
                self.activations[name] = output
                if output.requires_grad:
                    output.register_hook(lambda grad: self.gradients.__setitem__(name, grad))

            return _hook

        def class_score(self, logits: torch.Tensor, class_idx: int) -> torch.Tensor:
            return logits[:, class_idx].reshape(-1, 1, 1, 1)

    return PerImageScore


def _hooks(model: nn.Module, layer: str) -> Any:
    """The model's MONAI hooks on `layer`, registered once and reused for every later batch."""
    per_layer = _HOOKED.setdefault(model, {})
    if layer not in per_layer:
        if layer not in dict(model.named_modules()):
            raise ValueError(f"model has no layer {layer!r} for Grad-CAM")
        per_layer[layer] = _per_image_score()(model, layer)
    return per_layer[layer]


@dataclass
class Evidence:
    """One batch explained: logits (B,), maps (B, H, W) >= 0 on the input grid, activations (B, C, h, w) per block."""

    logits: np.ndarray
    maps: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)


def _capture(model: nn.Module, layers: tuple[str, ...], into: dict[str, torch.Tensor]) -> list:
    """Forward hooks that store each named block's output in `into`; the caller removes the returned handles."""
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        raise ValueError(f"model has no layer(s) {', '.join(missing)}")
    return [
        modules[name].register_forward_hook(
            lambda _m, _i, out, name=name: into.__setitem__(name, out.detach())
        )
        for name in layers
    ]


def _occlusion_maps(model: nn.Module, x: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """(B, H, W) maps by occlusion sensitivity (how much hiding each region lowers the logit), image by image."""
    from monai.visualize import OcclusionSensitivity

    side = x.shape[-1]
    occ = OcclusionSensitivity(
        model, mask_size=max(3, side // 8) | 1, n_batch=32, verbose=False, overlap=0.5, activate=False
    )
    maps = []
    for i in range(x.shape[0]):
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", UserWarning
            )  # MONAI 1.6 indexes with lists, which torch warns about
            occluded = occ(x[i : i + 1])[0].float().reshape(x.shape[-2:])
        maps.append(torch.clamp(base[i] - occluded, min=0.0))
    return torch.stack(maps)


@contextmanager
def _gradients_from(model: nn.Module, layer: str) -> Iterator[None]:
    """Let the backward pass run from the logit back to `layer` only, and no further.

    Grad-CAM needs the gradient of the logit with respect to the layer's output, nothing else: with the
    parameters frozen and that output made a fresh leaf, autograd neither follows the network back to its input
    nor computes weight gradients (which, for depthwise convolutions on a CPU, cost ten forward passes).
    """
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    module = dict(model.named_modules())[layer]
    # prepended, so MONAI's hook (registered before) sees and hooks the leaf, the tensor the gradient reaches
    handle = module.register_forward_hook(lambda _m, _i, out: out.detach().requires_grad_(True), prepend=True)
    try:
        with torch.enable_grad():
            yield
    finally:
        handle.remove()
        for p in frozen:
            p.requires_grad_(True)


@cache
def _gradcam_pp() -> type:
    """MONAI's GradCAMpp with the weights of the paper's equation 19 (Chattopadhay et al. 2018).

    alpha = g^2 / (2 g^2 + g^3 sum(A)) at each position, the activations A summed over positions. MONAI sums
    A * g^3 instead and adds 1e-7 to the denominator, which can then cancel at a position with a positive
    gradient: a map that moved by 4% of its maximum when a batch mate changed the gradients' rounding (1e-9).
    With the paper's sum, a layer of non-negative activations has alpha = 1 / (2 + g sum(A)) in (0, 1/2] where
    the gradient is positive, the only positions that count; MONAI has no option for it, hence this override.
    """
    from monai.visualize import GradCAMpp

    class PaperGradCAMpp(GradCAMpp):
        def compute_map(
            self,
            x: torch.Tensor,
            class_idx: int | None = None,
            retain_graph: bool = False,
            layer_idx: int = -1,
        ) -> torch.Tensor:
            _, acti, grad = self.nn_module(x, class_idx=class_idx, retain_graph=retain_graph)
            acti, grad = acti[layer_idx], grad[layer_idx]
            total = acti.sum(dim=(2, 3), keepdim=True)
            denominator = 2 * grad.pow(2) + grad.pow(3) * total
            alpha = grad.pow(2) / torch.where(denominator != 0, denominator, torch.ones_like(denominator))
            weights = (alpha * torch.relu(self.nn_module.score.exp() * grad)).sum(dim=(2, 3), keepdim=True)
            return torch.relu((weights * acti).sum(1, keepdim=True))

    return PaperGradCAMpp


def _gradcam(model: nn.Module, x: torch.Tensor, layer: str, method: str) -> torch.Tensor:
    """(B, H, W) Grad-CAM or Grad-CAM++ maps of the malignant logit: one forward, one backward for the batch."""
    from monai.visualize import GradCAM

    cls = GradCAM if method == "gradcam" else _gradcam_pp()
    cam = cls(nn_module=_hooks(model, layer), target_layers=layer, postprocessing=_identity)
    with _gradients_from(model, layer):
        return cam(x=x.detach(), class_idx=0)[:, 0]


def explain_batch(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    method: str = "gradcam",
    feature_layers: tuple[str, ...] = (),
) -> Evidence:
    """Logits, malignant-evidence maps and block activations of a (B, 1, H, W) normalised batch.

    The logits and activations come from the forward pass of the Grad-CAM (one forward, one backward for the
    whole batch; each image's map depends only on its own gradients, the model being in eval mode), or for
    occlusion from the unoccluded forward pass.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    model.eval()
    captured: dict[str, torch.Tensor] = {}
    outputs: list[torch.Tensor] = []
    handles = _capture(model, feature_layers, captured)
    handles.append(model.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach())))
    try:
        if method == "occlusion":
            with torch.no_grad():
                model(x)
        else:
            maps = _gradcam(model, x, layer, method)
    finally:
        for h in handles:
            h.remove()
    logits = outputs[0].float().reshape(-1)
    if method == "occlusion":
        maps = _occlusion_maps(model, x, logits)
    return Evidence(
        logits=logits.cpu().numpy(),
        maps=maps.detach().float().cpu().numpy().astype(np.float32),
        features={name: captured[name].float().cpu().numpy() for name in feature_layers if name in captured},
    )


def heatmaps(model: nn.Module, x: torch.Tensor, layer: str, method: str = "gradcam") -> np.ndarray:
    """(B, H, W) float32 maps >= 0 of the malignant evidence of a (B, 1, H, W) normalised input batch."""
    return explain_batch(model, x, layer, method).maps


def normalise(heat: np.ndarray, top: float | None = None) -> np.ndarray:
    """A heatmap scaled to [0, 1] by `top` (default: its own maximum); all zeros stay zeros. For display only."""
    top = float(heat.max()) if top is None else float(top)
    return np.clip(heat / top, 0.0, 1.0).astype(np.float32) if top > 0 else np.zeros_like(heat, np.float32)
