"""Global poolings of a (B, C, H, W) feature map to (B, C, 1, 1): average, max, top-k mean and attention.

All keep the (B, C, 1, 1) shape of `nn.AdaptiveAvgPool2d(1)`, so a network's own forward can call any of them in
its place. Max, top-k and attention let a few positions (a small lesion in a large breast) carry the score
instead of being averaged away with the whole breast.
"""

from __future__ import annotations

import math

import torch
from torch import nn

POOLINGS = ("avg", "max", "topk", "attention")
TOPK_FRACTION = 1 / 16


class TopKPool(nn.Module):
    """Per channel, the mean of its largest `fraction` of positions (at least one)."""

    def __init__(self, fraction: float = TOPK_FRACTION) -> None:
        super().__init__()
        self.fraction = fraction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        k = max(1, math.ceil(self.fraction * flat.shape[2]))
        return flat.topk(k, dim=2).values.mean(dim=2)[..., None, None]


class AttentionPool(nn.Module):
    """A 1 x 1 conv scores each position; the softmax of the scores over positions weights the sum of features.

    The conv starts at zero, so an untrained attention pool is the global average.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = nn.Conv2d(channels, 1, kernel_size=1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.score(x).flatten(2), dim=2)  # (B, 1, HW)
        return (x.flatten(2) * weights).sum(dim=2)[..., None, None]


def make_pool(kind: str, channels: int) -> nn.Module:
    """The pooling module named `kind` (one of POOLINGS) for `channels` feature channels; ValueError otherwise."""
    if kind == "avg":
        return nn.AdaptiveAvgPool2d(1)
    if kind == "max":
        return nn.AdaptiveMaxPool2d(1)
    if kind == "topk":
        return TopKPool()
    if kind == "attention":
        return AttentionPool(channels)
    raise ValueError(f"unknown pooling {kind!r}; choose one of {', '.join(POOLINGS)}")
