"""Explanations: heatmaps of the evidence for "malignant", feature maps, and checks that the heatmaps mean something.

- `maps`: Grad-CAM, Grad-CAM++ (MONAI) and occlusion sensitivity as (B, H, W) arrays; feature maps per block.
- `geometry`: pure numpy mapping between source images and the model's input (heatmaps back, lesion masks in).
- `figures`: overlay and feature-grid pictures (matplotlib object API).
- `checks`: pointing game and model-randomisation check on data with known lesion masks.
- `run`: `mammo explain RUN IMAGE...`.
"""
