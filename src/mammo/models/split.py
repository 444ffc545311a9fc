"""A network cut in two: a frozen trunk (computed once per image and cached) and the trainable rest.

The cut is named as `TrainConfig.freeze` names frozen layers: the first `freeze` entries of the model's
`ModelInfo.feature_layers` (stem, stage ends, head conv) form the trunk. For EfficientNet-Lite the trunk is the
stem and the blocks up to that stage end (or every block and the head conv, without its batch norm); the rest
is the remaining blocks, the head and the classifier. `rest_forward(net, trunk_forward(net, x, cut), cut)` is
`net(x)` op for op, in eval mode and in training mode alike (drop-connect rates stay scaled by block depth).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mammo.errors import UserError


@dataclass(frozen=True)
class Cut:
    """Where a network is split: `blocks` MBConv blocks in the trunk, and whether the head conv is in it too."""

    blocks: int
    head_conv: bool = False


def _check_splittable(net: nn.Module, name: str) -> None:
    """UserError unless `net` is an EfficientNet of `efficientnet_lite_pytorch` (stem, blocks, head, fc)."""
    needed = ("_conv_stem", "_bn0", "_blocks", "_conv_head", "_bn1", "_avg_pooling", "_dropout", "_fc")
    if not all(hasattr(net, a) for a in needed):
        raise UserError(f"model {name!r} cannot be split into a cached trunk; use an efficientnet-lite model")


def make_cut(net: nn.Module, feature_layers: tuple[str, ...], freeze: int, name: str = "model") -> Cut:
    """The Cut that puts the first `freeze` feature layers in the trunk; UserError when it leaves nothing to train."""
    _check_splittable(net, name)
    if not 1 <= freeze <= len(feature_layers):
        raise UserError(f"freeze {freeze}: a cached trunk needs 1 to {len(feature_layers)} feature layers")
    last = feature_layers[freeze - 1]
    if last == "_conv_head":
        return Cut(len(net._blocks), head_conv=True)
    if last == "_conv_stem":
        return Cut(0)
    return Cut(int(last.split(".")[1]) + 1)


def trunk_modules(net: nn.Module, cut: Cut) -> list[nn.Module]:
    """The modules whose parameters are in the trunk (frozen)."""
    return [
        net._conv_stem,
        net._bn0,
        *net._blocks[: cut.blocks],
        *([net._conv_head] if cut.head_conv else []),
    ]


def rest_modules(net: nn.Module, cut: Cut, head_norm: bool = True) -> list[nn.Module]:
    """The modules whose parameters are trained on the cache (the head's batch norm only with `head_norm`)."""
    head = [] if cut.head_conv else [net._conv_head]
    norm = [net._bn1] if head_norm else []
    return [*net._blocks[cut.blocks :], *head, *norm, net._avg_pooling, net._fc]


def trunk_forward(net: nn.Module, x: torch.Tensor, cut: Cut) -> torch.Tensor:
    """The trunk's output for input batch `x` (what the cache stores)."""
    x = net._swish(net._bn0(net._conv_stem(x)))
    for block in net._blocks[: cut.blocks]:
        x = block(x)  # the trunk runs in eval mode: drop-connect is off there
    return net._conv_head(x) if cut.head_conv else x


def rest_forward(net: nn.Module, h: torch.Tensor, cut: Cut) -> torch.Tensor:
    """(B, 1) logits from trunk outputs `h`: the remaining blocks, head, pooling, dropout and classifier."""
    n = len(net._blocks)
    rate = net._global_params.drop_connect_rate
    for idx in range(cut.blocks, n):
        h = net._blocks[idx](h, drop_connect_rate=rate * idx / n if rate else rate)
    if not cut.head_conv:
        h = net._conv_head(h)
    h = net._swish(net._bn1(h))
    h = net._avg_pooling(h).flatten(1)
    return net._fc(net._dropout(h))


class Trunk(nn.Module):
    """The trunk as a module of its own (for export and batched caching); shares the network's weights."""

    def __init__(self, net: nn.Module, cut: Cut) -> None:
        super().__init__()
        self.net, self.cut = net, cut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return trunk_forward(self.net, x, self.cut)


class Rest(nn.Module):
    """The trainable rest as a module: trunk outputs -> (B, 1) logits; train()/eval() touch only the rest.

    `head_norm=False` keeps the head's batch norm at its pretrained statistics and weights too. With the head conv
    in the trunk and a pooling without weights, everything before the classifier is then fixed: `pooled` gives
    that fixed vector once per image, and `classify(pooled(h))` is `forward(h)`.
    """

    def __init__(self, net: nn.Module, cut: Cut, head_norm: bool = True) -> None:
        super().__init__()
        self.net, self.cut, self.head_norm = net, cut, head_norm
        for m in trunk_modules(net, cut) + ([] if head_norm else [net._bn1]):
            m.requires_grad_(False)

    @property
    def fixed_until_classifier(self) -> bool:
        """True when nothing before the classifier trains (so pooled vectors can stand in for the trunk output)."""
        pool_weights = any(True for _ in self.net._avg_pooling.parameters())
        return self.cut.head_conv and not self.head_norm and not pool_weights

    def train(self, mode: bool = True) -> Rest:
        """Train mode for the rest only; the trunk stays in eval mode, as it was when the cache was made."""
        self.training = mode
        self.net.eval()
        for m in rest_modules(self.net, self.cut, self.head_norm):
            m.train(mode)
        return self

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return rest_forward(self.net, h, self.cut)

    def pooled(self, h: torch.Tensor) -> torch.Tensor:
        """The pooled head features (B, C) of trunk outputs `h` taken at the head conv."""
        net = self.net
        return net._avg_pooling(net._swish(net._bn1(h))).flatten(1)

    def classify(self, v: torch.Tensor) -> torch.Tensor:
        """(B, 1) logits from pooled head features: dropout and the classifier."""
        return self.net._fc(self.net._dropout(v))
