"""Heatmaps of the evidence for "malignant" (MONAI Grad-CAM, Grad-CAM++, occlusion sensitivity) and feature maps.

Every model here returns one logit per image (malignant), so the class scored is index 0 and the gradient is
that of the malignant logit. MONAI's default post-processing maps (min, max) to (1, 0), which would make the
strongest evidence the coldest colour; it is replaced by the identity, and maps are returned raw (>= 0, hot =
more malignant). Occlusion: MONAI returns the logit with each region blurred out, so the evidence of a region
is how much hiding it lowers the malignant logit (base - occluded), clipped at 0.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

METHODS = ("gradcam", "gradcam++", "occlusion")


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def heatmaps(model: nn.Module, x: torch.Tensor, layer: str, method: str = "gradcam") -> np.ndarray:
    """(B, H, W) float32 maps >= 0 of the malignant evidence of a (B, 1, H, W) normalised input batch."""
    from monai.visualize import GradCAM, GradCAMpp, OcclusionSensitivity

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    model.eval()
    if method == "occlusion":
        side = x.shape[-1]
        occ = OcclusionSensitivity(
            model, mask_size=max(3, side // 8) | 1, n_batch=32, verbose=False, overlap=0.5, activate=False
        )
        maps = []
        with torch.no_grad():
            base = model(x).float().reshape(-1)
            for i in range(x.shape[0]):
                with warnings.catch_warnings():  # MONAI 1.6 indexes with lists, which torch warns about
                    warnings.simplefilter("ignore", UserWarning)
                    occluded = occ(x[i : i + 1])[0].float().reshape(x.shape[-2:])
                maps.append(torch.clamp(base[i] - occluded, min=0.0))
        return torch.stack(maps).cpu().numpy().astype(np.float32)
    cls = GradCAM if method == "gradcam" else GradCAMpp
    cam = cls(nn_module=model, target_layers=layer, postprocessing=_identity)
    with torch.enable_grad():  # Grad-CAM++ weighs by exp(score) per image, so images go one at a time
        x = x.detach().requires_grad_(True)  # so the full backward hooks see an input that needs gradients
        out = [cam(x=x[i : i + 1], class_idx=0)[0, 0] for i in range(x.shape[0])]
    return torch.stack(out).detach().float().cpu().numpy()


def normalise(heat: np.ndarray) -> np.ndarray:
    """A heatmap scaled to [0, 1] by its maximum (all zeros stay zeros): for display only."""
    top = float(heat.max())
    return (heat / top).astype(np.float32) if top > 0 else np.zeros_like(heat, np.float32)


def feature_maps(model: nn.Module, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The activations (C, h, w) of each named block for one (1, 1, H, W) input, via forward hooks."""
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        raise ValueError(f"model has no layer(s) {', '.join(missing)}")
    captured: dict[str, np.ndarray] = {}
    hooks = [
        modules[name].register_forward_hook(
            lambda _m, _i, out, name=name: captured.__setitem__(name, out[0].detach().float().cpu().numpy())
        )
        for name in layers
    ]
    try:
        with torch.no_grad():
            model.eval()(x[:1])
    finally:
        for h in hooks:
            h.remove()
    return {name: captured[name] for name in layers if name in captured}
