"""Explanations: heatmaps of the evidence for "malignant", feature maps, and checks that the heatmaps mean something.

- `maps`: Grad-CAM, Grad-CAM++ (MONAI) and occlusion sensitivity as (B, H, W) arrays, with the logits and the
  feature maps per block from the same pass (one forward and one backward per batch).
- `geometry`: pure numpy mapping between source images and the model's input (heatmaps back, lesion masks in).
- `sources`: what the decoding workers return (torch-free): predict's input plus the source for display.
- `figures`: overlay pictures and feature-map mosaics (OpenCV; a matplotlib overlay for the report).
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
