"""`densenet121` and `resnet18`: MONAI architectures trained from scratch, to compare against pretraining.

Both are 2-D, one input channel, one logit, randomly initialised (there are no packaged weights).
Inputs `png16 / 65535` in [0, 1] are mapped to [-1, 1] (mean 0.5, std 0.5), a data-independent choice
for nets with no pretraining to match. MONAI is imported inside the builders so that listing models
stays quick.
"""

from __future__ import annotations

from torch import nn

from mammo.models.registry import register_model

_FROM_SCRATCH = {
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 1e-2,
    "scheduler": "cosine",
    "augment": "mammo",
}

# What the from-scratch MONAI comparisons share in the registry.
_MONAI_INFO = {
    "input_size": 224,
    "mean": 0.5,
    "std": 0.5,
    "pretrained": False,
    "train_defaults": {**_FROM_SCRATCH, "size": 224},
}


@register_model(
    "densenet121",
    description="MONAI DenseNet121, 2-D, from scratch (no pretraining); comparison",
    **_MONAI_INFO,
    gradcam_layer="class_layers.relu",
    feature_layers=(
        "features.conv0",
        "features.denseblock1",
        "features.denseblock2",
        "features.denseblock3",
        "features.denseblock4",
    ),
)
def densenet121(pretrained: bool = False, input_size: int | None = None) -> nn.Module:
    """MONAI DenseNet121 (spatial_dims=2, 1 channel in, 1 logit out); fully convolutional, any input size."""
    from monai.networks.nets import DenseNet121

    return DenseNet121(spatial_dims=2, in_channels=1, out_channels=1)


@register_model(
    "resnet18",
    description="MONAI ResNet18, 2-D, from scratch (no pretraining); comparison",
    **_MONAI_INFO,
    gradcam_layer="layer4",
    feature_layers=("conv1", "layer1", "layer2", "layer3", "layer4"),
)
def resnet18(pretrained: bool = False, input_size: int | None = None) -> nn.Module:
    """MONAI ResNet18 in the ImageNet layout: 7x7 stride-2 stem conv, max pool (MONAI default: stride 1)."""
    from monai.networks.nets import resnet18 as monai_resnet18

    return monai_resnet18(spatial_dims=2, n_input_channels=1, num_classes=1, conv1_t_stride=2)
