"""Explanations: heatmaps of the evidence for "malignant", feature maps, and checks that the heatmaps mean something.

- `maps`: Grad-CAM, Grad-CAM++ (MONAI) and occlusion sensitivity as (B, H, W) arrays; feature maps per block.
- `geometry`: pure numpy mapping between source images and the model's input (heatmaps back, lesion masks in).
- `figures`: overlay and feature-grid pictures (matplotlib object API).
- `checks`: pointing game and model-randomisation check on data with known lesion masks.
- `run`: `mammo explain RUN IMAGE...`.

Public function (imported on first use): `explain`.
"""

from typing import TYPE_CHECKING

from mammo import lazy_exports

if TYPE_CHECKING:
    from mammo.explain.run import explain

EXPORTS = {"explain": "mammo.explain.run"}
__all__ = ["explain"]
__getattr__ = lazy_exports(__name__, EXPORTS)
