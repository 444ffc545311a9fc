"""Global poolings of a (B, C, H, W) feature map to (B, C, 1, 1): average, max, top-k mean, tiles and attention.

All keep the (B, C, 1, 1) shape of `nn.AdaptiveAvgPool2d(1)`, so a network's own forward can call any of them in
its place. Max, top-k and attention let a few positions (a small lesion in a large breast) carry the score
instead of being averaged away with the whole breast; tiles average within overlapping regions, then take the
largest region per channel.
"""

from __future__ import annotations

import math

import torch
from torch import nn

POOLINGS = ("avg", "max", "topk", "tiles", "attention")
TOPK_FRACTION = 1 / 16
TILE_GRID = 3  # tiles per side: windows of half the map, overlapping by half (3 x 3 tiles)


class TopKPool(nn.Module):
    """Per channel, the mean of its largest `fraction` of positions (at least one)."""

    def __init__(self, fraction: float = TOPK_FRACTION) -> None:
        super().__init__()
        self.fraction = fraction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        k = max(1, math.ceil(self.fraction * flat.shape[2]))
        return flat.topk(k, dim=2).values.mean(dim=2)[..., None, None]


def tile_starts(length: int, window: int, count: int) -> list[int]:
    """`count` window starts spread evenly from 0 to `length - window` (the first and last windows touch the edges)."""
    if count == 1 or length <= window:
        return [0]
    return sorted({round(i * (length - window) / (count - 1)) for i in range(count)})


class TilePool(nn.Module):
    """Per channel, the largest of the means over a `grid` x `grid` layout of overlapping windows of the map.

    Each window is half the map's side (rounded up) and neighbours overlap by about half a window: at a 640 px
    input (a 20 x 20 map at stride 32) these are the regions of nine 320 px tiles with 160 px overlap. A lesion
    that fills part of one tile raises that tile's mean without being diluted by the rest of the breast, as the
    global average does. Unlike running the trunk on 320 px crops, every tile here shares one forward over the
    whole image: its features near a tile's edge see the neighbouring tissue (receptive field), nothing is padded
    at tile edges, and a tile has exactly the detail of the whole image (a crop of the same prepared image has
    no more pixels per lesion either); in exchange tiles cost nothing beyond the one forward already cached.
    """

    def __init__(self, grid: int = TILE_GRID) -> None:
        super().__init__()
        self.grid = grid

    def extra_repr(self) -> str:
        return f"grid={self.grid}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[2]), int(x.shape[3])  # Python ints (constants in an ONNX export at a fixed size)
        kh, kw = math.ceil(h / 2), math.ceil(w / 2)
        means = [
            x[:, :, i : i + kh, j : j + kw].mean(dim=(2, 3))
            for i in tile_starts(h, kh, self.grid)
            for j in tile_starts(w, kw, self.grid)
        ]
        return torch.stack(means, dim=2).amax(dim=2)[..., None, None]


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
    if kind == "tiles":
        return TilePool()
    if kind == "attention":
        return AttentionPool(channels)
    raise ValueError(f"unknown pooling {kind!r}; choose one of {', '.join(POOLINGS)}")
