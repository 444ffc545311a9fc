"""One way to make and save figures: matplotlib's object API (no pyplot state, no backend switch), atomic PNGs."""

from __future__ import annotations

import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mammo.io.atomic import atomic_path


def new_figure(width: float = 6.0, height: float = 4.0, dpi: int = 100) -> Figure:
    """A Figure of `width` x `height` inches with its own Agg canvas, so nothing touches the global backend."""
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> None:
    """Lay out `fig`, write it as a PNG at `path` atomically, then release its artists."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    fig.clear()
