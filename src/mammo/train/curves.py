"""Training curves (losses and validation AUC per epoch) as one PNG beside metrics.csv."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mammo.io.figures import new_figure, save_figure


def write_curves(history: pd.DataFrame, path: Path) -> None:
    """Training curves (losses and validation AUC per epoch) as a PNG, atomically."""
    fig = new_figure(10.0, 4.0)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(history["epoch"], history["train_loss"], "o-", label="train loss")
    ax1.plot(history["epoch"], history["val_loss"], "o-", label="val loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("binary cross-entropy")
    ax1.legend()
    ax2.plot(history["epoch"], history["val_auc"], "o-", color="tab:green")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation AUC")
    ax2.set_ylim(0.0, 1.0)
    save_figure(fig, path)
