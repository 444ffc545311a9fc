"""`seed-basic` and `seed-final`: PyTorch reproductions of the starting point's Keras CNNs, kept as baselines.

Read from the study's code (../shared/docs/seed.md): three blocks of Conv2D 3x3 (32, 64, 64 filters, valid
padding) - ReLU - MaxPool 2x2 with **stride 1**, so the maps only shrink from 150 to 141 and the flatten has
141 x 141 x 64 = 1,272,384 features; then Dense 128 - ReLU, (`seed-final` only: Dense 64 - ReLU),
Dropout 0.5, Dense 1. All kernels glorot_uniform with zero biases, as in Keras (its default initialiser;
the final model names it explicitly).

Two places where the sources disagree, settled by the code (seed.md) over the write-up (issue 3's text):
- Initialisation is glorot *uniform* in both models (the write-up says Glorot normal; the code says uniform).
- Dropout 0.5 sits in both models, right before the output layer; the models differ only by Dense 64.

Kept as it was: architecture, initialisation, Adadelta (lr 1.0, rho 0.95, eps 1e-7), no schedule, the Keras
augmentation (see `train_defaults`). Fixed: the input scaling. The original divided 8-bit images by 65535
(inputs in [0, 0.0039]) and never learned; here inputs are `png16 / 65535` in [0, 1], i.e. the Keras
`rescale=1/255` it meant. `keras_scaling_bug=True` multiplies the input by 1/257 to reproduce the failure.
The final sigmoid is left to the loss (BCEWithLogits), per the registry contract.
Batch 32 and 10 epochs follow the reference measurement in seed.md (the original code used batch 60 and
10 or 5 epochs).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from mammo.models.registry import register_model

SEED_SIZE = 150
_BLOCK_FILTERS = (32, 64, 64)
_SEED_DEFAULTS = {
    "optimizer": "adadelta",
    "optimizer_args": {"rho": 0.95, "eps": 1e-7},
    "lr": 1.0,
    "weight_decay": 0.0,
    "size": SEED_SIZE,
    "batch_size": 32,
    "epochs": 10,
    "scheduler": "constant",
    "warmup_epochs": 0,
    "grad_clip": None,
    "balance": "none",
    "augment": "seed",
}
_FEATURE_LAYERS = ("features.block1", "features.block2", "features.block3")


def seed_feature_side(input_size: int) -> int:
    """Side of the last feature map: each block loses 2 pixels (valid 3x3 conv) and 1 (2x2 pool, stride 1)."""
    return input_size - 3 * len(_BLOCK_FILTERS)


class SeedCNN(nn.Module):
    """The starting point's Keras CNN: conv blocks with stride-1 pooling, a huge dense layer, one logit."""

    def __init__(self, hidden: tuple[int, ...], input_size: int = SEED_SIZE, keras_scaling_bug: bool = False):
        super().__init__()
        side = seed_feature_side(input_size)
        if side < 1:
            raise ValueError(f"input_size {input_size} is too small for the seed CNN (needs at least 10)")
        self.keras_scaling_bug = keras_scaling_bug
        blocks, channels = [], 1
        for i, filters in enumerate(_BLOCK_FILTERS, start=1):
            block = nn.Sequential(nn.Conv2d(channels, filters, 3), nn.ReLU(), nn.MaxPool2d(2, stride=1))
            blocks.append((f"block{i}", block))
            channels = filters
        self.features = nn.Sequential(OrderedDict(blocks))
        layers: list[nn.Module] = [nn.Flatten()]
        width = channels * side * side
        for units in hidden:
            layers += [nn.Linear(width, units), nn.ReLU()]
            width = units
        layers += [nn.Dropout(0.5), nn.Linear(width, 1)]
        self.classifier = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> (B, 1) logits; with `keras_scaling_bug` the input is first shrunk by 1/257."""
        if self.keras_scaling_bug:
            x = x / 257.0
        return self.classifier(self.features(x))


# What both seed models share in the registry: input size, scaling, Grad-CAM and feature layers, recipe.
_SEED_INFO = {
    "input_size": SEED_SIZE,
    "mean": 0.0,
    "std": 1.0,
    "pretrained": False,
    "gradcam_layer": "features.block3",
    "feature_layers": _FEATURE_LAYERS,
    "train_defaults": _SEED_DEFAULTS,
}


@register_model(
    "seed-basic",
    description="starting point's Keras CNN (stride-1 pools, Dense 128), scaling fixed; baseline",
    **_SEED_INFO,
)
def seed_basic(
    pretrained: bool = False, input_size: int = SEED_SIZE, keras_scaling_bug: bool = False
) -> SeedCNN:
    """`seed-basic`: Dense 128 then the logit; `input_size` sets the flatten width (150 as in the study)."""
    return SeedCNN((128,), input_size=input_size, keras_scaling_bug=keras_scaling_bug)


@register_model(
    "seed-final",
    description="starting point's final Keras CNN (+ Dense 64), scaling fixed; baseline",
    **_SEED_INFO,
)
def seed_final(
    pretrained: bool = False, input_size: int = SEED_SIZE, keras_scaling_bug: bool = False
) -> SeedCNN:
    """`seed-final`: Dense 128 - Dense 64 then the logit; `input_size` sets the flatten width."""
    return SeedCNN((128, 64), input_size=input_size, keras_scaling_bug=keras_scaling_bug)
