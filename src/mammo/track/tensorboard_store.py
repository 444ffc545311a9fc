"""The TensorBoard backend: event files in FOLDER/tensorboard (RUN or CV), the same scalars and the curves image.

`tensorboard --logdir runs/` then shows every run below runs/; a cv's folds appear as fold-k/run/tensorboard.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mammo.errors import UserError

SUBDIR = "tensorboard"
MISSING = "--track tensorboard: the tensorboard package is not installed; pip install 'mammo[track]'"


class TensorBoardStore:
    """One SummaryWriter per tracked folder."""

    name = "tensorboard"

    def __init__(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise UserError(MISSING) from e
        self.writer_class = SummaryWriter
        self.writers: dict[str, Any] = {}

    def start(
        self, key: str, name: str, params: Mapping[str, str], tags: Mapping[str, str], parent: str | None
    ) -> None:
        """Open FOLDER/tensorboard and write the params and tags as two text tables."""
        writer = self._writer(key)
        for title, table in (("params", params), ("tags", tags)):
            rows = "\n".join(f"| {k} | {v} |" for k, v in table.items())
            writer.add_text(title, f"| {title[:-1]} | value |\n|---|---|\n{rows}", 0)

    def _writer(self, key: str) -> Any:
        """The folder's open writer; a new one (a new event file in the same folder) after `end`, e.g. for cv."""
        if key not in self.writers:
            self.writers[key] = self.writer_class(log_dir=str(Path(key) / SUBDIR))
        return self.writers[key]

    def metrics(self, key: str, values: Mapping[str, float], step: int | None) -> None:
        """Scalars at `step` (0 for final numbers)."""
        writer = self._writer(key)
        for k, v in values.items():
            writer.add_scalar(k, float(v), step or 0)
        writer.flush()

    def image(self, key: str, tag: str, path: Path, step: int) -> None:
        """A PNG (the curves) as an image summary."""
        import numpy as np
        from PIL import Image

        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        self._writer(key).add_image(tag, pixels, step, dataformats="HWC")

    def files(self, key: str, files: list[tuple[Path, str]]) -> None:
        """TensorBoard keeps no files: they stay in the folder beside the events."""

    def end(self, key: str, status: str) -> None:
        """Flush and close the folder's event file."""
        self.writers.pop(key).close()

    def close(self) -> None:
        """Close the writers still open (a fold's, reopened for its test numbers; a failed run's)."""
        for key in list(self.writers):
            self.end(key, "FAILED")
