"""Training-recipe options: rectangular aspect-keeping input, frozen prefix, label smoothing validation."""

from __future__ import annotations

import numpy as np
import pytest

from mammo.errors import UserError
from mammo.prep.breast import rect_input
from mammo.train.config import resolve_config


def test_rect_input_keeps_aspect_and_chest_wall_left():
    square = np.zeros((200, 200), np.uint16)
    square[0:200, 0:100] = 1000  # a 2:1 breast against the left edge, as prepare writes it
    out = rect_input(square, 128, 64)
    assert out.shape == (128, 64) and out.dtype == np.uint16
    assert (out > 0).mean() > 0.95  # the rectangle is filled by breast, not padding
    wide = np.zeros((200, 200), np.uint16)
    wide[50:150, 0:200] = 7
    out = rect_input(wide, 128, 64)
    rows = np.flatnonzero(out.any(axis=1))
    assert out[:, 0].any() and len(rows) == 32 and rows[0] == 48  # 1:2 content fits the width, centred


def test_freeze_prefix_freezes_up_to_the_named_layer():
    from mammo.models.registry import create_model, get_model_info
    from mammo.train.loop import freeze_prefix

    model = create_model("efficientnet-lite0", pretrained=False)
    layers = get_model_info("efficientnet-lite0").feature_layers
    n = freeze_prefix(model, layers, 2)  # stem and block 0
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    assert len(frozen) == n and frozen[-1].startswith(layers[1] + ".")
    assert all(p.requires_grad for name, p in model.named_parameters() if name.startswith("_blocks.1."))
    with pytest.raises(UserError, match="exceeds"):
        freeze_prefix(model, layers, len(layers) + 1)


@pytest.mark.parametrize("key,value", [("label_smoothing", 1.0), ("freeze", -1), ("width", 0)])
def test_recipe_values_are_checked(key, value):
    with pytest.raises(UserError, match=key):
        resolve_config(overrides={key: value})
