"""Statistics in pure NumPy/scikit-learn (no torch): AUC with a bootstrap by woman, calibration, threshold."""
