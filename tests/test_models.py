"""Tests for the model registry and every registered model (forward, backward, weights, naming)."""

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from mammo.errors import UserError
from mammo.models import create_model, get_model_info, list_models, models_table
from mammo.models.efficientnet_lite import weights_path
from mammo.models.registry import count_parameters

SMALL = 64  # every model accepts input_size; the seed CNNs size their dense layer from it


def _first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_every_model(name):
    torch.manual_seed(0)
    model = create_model(name, pretrained=False, input_size=SMALL).train()
    assert _first_conv(model).in_channels == 1
    x = torch.randn(2, 1, SMALL, SMALL)
    logits = model(x)
    assert logits.shape == (2, 1)
    assert torch.isfinite(logits).all()
    nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([[0.0], [1.0]])).backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for _, p in params)
    nonzero = sum(bool(p.grad.abs().sum() > 0) for _, p in params)
    assert nonzero / len(params) > 0.9


@pytest.mark.parametrize("name", list_models())
def test_info_names_real_layers(name):
    info = get_model_info(name)
    modules = dict(create_model(name, pretrained=False, input_size=SMALL).named_modules())
    assert info.gradcam_layer in modules
    assert info.feature_layers and all(layer in modules for layer in info.feature_layers)
    assert info.std > 0 and 0 <= info.mean <= 1
    assert info.train_defaults["size"] == info.input_size


def test_seed_models_match_the_keras_code():
    convs = (1 * 32 * 9 + 32) + (32 * 64 * 9 + 64) + (64 * 64 * 9 + 64)
    dense = 141 * 141 * 64 * 128 + 128
    assert count_parameters("seed-basic") == convs + dense + 128 + 1
    assert count_parameters("seed-final") == convs + dense + 128 * 64 + 64 + 64 + 1
    with torch.device("meta"):
        basic = create_model("seed-basic")
        final = create_model("seed-final")
        assert basic.features(torch.empty(1, 1, 150, 150)).shape == (1, 64, 141, 141)
    assert [(b[2].kernel_size, b[2].stride) for b in basic.features] == [(2, 1)] * 3
    kinds = [type(m).__name__ for m in final.classifier]
    assert kinds == ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Dropout", "Linear"]
    assert [type(m).__name__ for m in basic.classifier] == ["Flatten", "Linear", "ReLU", "Dropout", "Linear"]
    assert get_model_info("seed-final").train_defaults["optimizer"] == "adadelta"


def test_seed_glorot_uniform_init():
    torch.manual_seed(0)
    model = create_model("seed-final", input_size=20)
    conv = model.features.block1[0]
    bound = math.sqrt(6 / (1 * 9 + 32 * 9))
    assert 0.9 * bound < conv.weight.abs().max() <= bound
    assert not any(m.bias.detach().any() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def test_keras_scaling_bug_shrinks_the_input():
    torch.manual_seed(0)
    fixed = create_model("seed-basic", input_size=30).eval()
    buggy = create_model("seed-basic", input_size=30, keras_scaling_bug=True).eval()
    buggy.load_state_dict(fixed.state_dict())
    x = torch.rand(2, 1, 30, 30)
    with torch.no_grad():
        assert torch.allclose(buggy(x), fixed(x / 257), atol=1e-6)
        assert not torch.allclose(buggy(x), fixed(x), atol=1e-3)


def test_lite0_stem_is_the_rgb_sum_of_the_packaged_weights():
    model = create_model("efficientnet-lite0")
    state = torch.load(weights_path(0), map_location="cpu", weights_only=True)
    assert torch.equal(model._conv_stem.weight, state["_conv_stem.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(model._blocks[3]._depthwise_conv.weight, state["_blocks.3._depthwise_conv.weight"])
    assert model._fc.weight.shape == (1, 1280)


def test_lite0_gray_input_equals_rgb_net_on_replicated_gray():
    from efficientnet_lite_pytorch import EfficientNet

    rgb = EfficientNet.from_name("efficientnet-lite0", image_size=None).eval()
    rgb.load_state_dict(torch.load(weights_path(0), map_location="cpu", weights_only=True))
    gray = create_model("efficientnet-lite0").eval()
    x = torch.rand(2, 1, 96, 96)
    with torch.no_grad():
        expected = rgb.extract_features(x.expand(-1, 3, -1, -1))
        assert torch.allclose(gray.extract_features(x), expected, atol=1e-4)


@pytest.mark.parametrize(
    ("typo", "suggestion"), [("efficientnet-lite", "efficientnet-lite0"), ("seed_final", "seed-final")]
)
def test_unknown_model_suggests_close_names(typo, suggestion):
    with pytest.raises(UserError, match=f"did you mean.*'{suggestion}'"):
        create_model(typo)
    with pytest.raises(UserError, match="did you mean"):
        get_model_info(typo)


def test_weights_round_trip(tmp_path):
    torch.manual_seed(1)
    model = create_model("efficientnet-lite0", pretrained=False).eval()
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"format": "mammo-checkpoint/1", "state_dict": model.state_dict()}, ckpt)
    x = torch.rand(2, 1, SMALL, SMALL)
    with torch.no_grad():
        expected = model(x)
        assert torch.equal(create_model("efficientnet-lite0", weights=path).eval()(x), expected)
        assert torch.equal(create_model("efficientnet-lite0", weights=ckpt).eval()(x), expected)
        assert not torch.allclose(create_model("efficientnet-lite0").eval()(x), expected)


def test_weights_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match=r"not found.*missing.pt"):
        create_model("resnet18", weights=tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a tensor file")
    with pytest.raises(UserError, match="cannot read weights"):
        create_model("resnet18", weights=junk)
    other = tmp_path / "resnet.pt"
    torch.save(create_model("resnet18").state_dict(), other)
    with pytest.raises(UserError, match=r"do not fit model 'efficientnet-lite0'.*missing"):
        create_model("efficientnet-lite0", weights=other)
    small = tmp_path / "seed30.pt"
    torch.save(create_model("seed-basic", input_size=30).state_dict(), small)
    with pytest.raises(UserError, match=r"wrong shape classifier.1.weight"):
        create_model("seed-basic", input_size=31, weights=small)


def test_models_table_lists_every_model():
    table = models_table()
    lines = table.splitlines()
    assert len(lines) == len(list_models()) + 1
    for name in list_models():
        assert any(line.startswith(name + " ") for line in lines)
    seed_line = next(line for line in lines if line.startswith("seed-final"))
    assert "162.9" in seed_line and "150x150" in seed_line
    assert "yes" in next(line for line in lines if line.startswith("efficientnet-lite0"))


def test_info_is_a_copy():
    get_model_info("seed-basic").train_defaults["lr"] = 123.0
    assert get_model_info("seed-basic").train_defaults["lr"] == 1.0


def test_registry_import_does_not_import_torch():
    code = "import sys, mammo.models.registry; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
