"""`mammo explain RUN IMAGE...`: for each image, the probability, a heatmap of the malignant evidence, and pictures.

Inputs are gathered, read and prepared exactly as `mammo predict` does (files, folders walked recursively,
`--table`, `--box`; decoding in worker processes; the run's own preprocessing), and an roi run refuses whole
images without a lesion box the same way. Each batch then costs one forward and one backward pass
(`mammo.explain.maps.explain_batch`): the probability, the map and the feature maps come from that one pass.

Written to OUT (every file atomically): `<name>_overlay.png` (the model's input beside the heatmap over it),
`<name>_heatmap.npy` (the raw map on the model's input grid, float32, >= 0), for whole-image runs
`<name>_source_overlay.png` (the heatmap laid back onto the original image), one `features/<name>_<block>.png`
mosaic per convolution block, and `explain.csv` (one row per image; a bad file gets its row with an error and the
rest goes on). Colours: with scale "shared" (the default) every map is drawn on one scale, the largest value of
all the maps of the call, so a weak map looks weak; with "per-image" each map is stretched to its own maximum.
The scale is recorded in explain.csv and on each figure. An all-zero map is not drawn: its figure and its row
say so.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from mammo.errors import UserError
from mammo.explain.figures import ZERO_NOTE, blend_bgr, feature_mosaic, overlay_image
from mammo.explain.geometry import heatmap_to_source, rect_heatmap_to_square
from mammo.explain.maps import METHODS, explain_batch, normalise
from mammo.explain.sources import load_shown
from mammo.io.atomic import atomic_path, check_output_dir, write_csv
from mammo.io.images import write_png
from mammo.io.pool import ordered_map
from mammo.predict.files import (
    Source,
    batches,
    check_run_dir,
    gather_sources,
    sources_for,
)
from mammo.predict.run import Run

log = logging.getLogger(__name__)
SCALES = ("shared", "per-image")
SOURCE_MAX_SIDE = (
    2048  # the source overlay is drawn at the source's resolution, at most this many pixels high/wide
)
COLUMNS = [
    "image",
    "patient_id",
    "side",
    "view",
    "probability",
    "prediction",
    "threshold",
    "method",
    "layer",
    "map_max",
    "scale",
    "note",
    "overlay",
    "heatmap",
    "source_overlay",
    "error",
]


@dataclass
class ExplainResult:
    """What `explain` wrote: one row per input image, where, the colour scale, and the time it took."""

    out: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    scale: str = "shared"
    top: float = 0.0
    load_seconds: float = 0.0
    explain_seconds: float = 0.0

    def summary(self) -> str:
        """One line per image, the scale and where the pictures are."""
        lines = []
        for r in self.rows:
            if r["error"]:
                lines.append(f"  {r['image']}: error: {r['error']}")
            else:
                note = f" ({r['note']})" if r["note"] else ""
                lines.append(
                    f"  {r['image']}: malignant probability {r['probability']:.3f} -> {r['overlay']}{note}"
                )
        ok = sum(not r["error"] for r in self.rows)
        scale = (
            f"one colour scale for all maps (hottest = {self.top:.3g})"
            if self.scale == "shared"
            else "each map scaled to its own maximum"
        )
        head = (
            f"explained {ok} of {len(self.rows)} images in {self.out} ({self.explain_seconds:.1f} s); {scale}"
        )
        return "\n".join([head, *lines])


@dataclass(frozen=True)
class Pending:
    """An explained input whose pictures wait for the colour scale: its map, model input and source, on disk."""

    heat: Path
    x: Path
    gray: Path | None
    box: tuple[int, int, int, int] | None
    flip: bool
    prepared: Path | None  # rectangular runs: the PREP square their input was refitted from


def _names(paths: list[Path]) -> list[str]:
    """A distinct file-name stem per input (a repeated stem gets _2, _3 ...)."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        stem = p.stem.replace(" ", "_") or "image"
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return names


def _spill(array: np.ndarray | None, path: Path) -> Path | None:
    """`array` saved at `path` (a scratch file), or None when there is no array."""
    if array is None:
        return None
    np.save(path, array)
    return path


def _save_npy(array: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def _check(method: str, scale: str, batch_size: int, workers: int) -> None:
    if method not in METHODS:
        raise UserError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    if scale not in SCALES:
        raise UserError(f"--scale {scale!r}: choose one of {', '.join(SCALES)}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    if workers < 0:
        raise UserError(f"--workers must be 0 (read in this process) or more, got {workers}")


def explain(
    run_dir: str | os.PathLike,
    inputs: list[str | os.PathLike] | tuple = (),
    out: str | os.PathLike = "explain-out",
    method: str = "gradcam",
    device: str = "auto",
    features: bool = True,
    table: str | os.PathLike | None = None,
    box: tuple[float, float, float, float] | None = None,
    crops: bool = False,
    scale: str = "shared",
    batch_size: int = 8,
    workers: int = 1,
    run: Run | None = None,
) -> ExplainResult:
    """Heatmaps, overlays and feature maps for each input with RUN's best model; explain.csv in `out`.

    Args:
        run_dir: RUN folder written by train (its best.pt is used).
        inputs: DICOM, PNG, JPEG, PGM or TIFF files, or folders (searched recursively), as for predict.
        out: folder for the heatmaps, overlays, feature maps and explain.csv.
        method: "gradcam", "gradcam++" or "occlusion" (model-agnostic, slower).
        device: "auto" (CUDA when present), "cpu" or "cuda".
        features: draw the feature-map mosaics too.
        table: CSV in the ingest table format (image, optional ids and lesion box), added to `inputs`.
        box: (x0, y0, x1, y1) lesion box in source pixels for the inputs without a table box (roi runs).
        crops: roi runs: the inputs without a box are lesion crops already (else they are refused).
        scale: "shared" (one colour scale for every map of the call) or "per-image".
        batch_size: images per forward and backward pass.
        workers: processes decoding files (0: in this process; > 0 needs `if __name__ == "__main__":`).
        run: a loaded Run to reuse instead of loading RUN again.

    Example:
        >>> from mammo.explain import explain
        >>> print(explain("runs/lite0", ["scans/P_00001_LEFT_CC.dcm"], "explain-out").summary())
    """
    _check(method, scale, batch_size, workers)
    check_output_dir(out)  # an --out that is a file is one line now, not an OSError after the model ran
    if run is None:
        check_run_dir(run_dir)
    sources = gather_sources(inputs, table)
    started = time.perf_counter()
    run = run or Run.load(run_dir, device=device)
    loaded_at = time.perf_counter()
    sources = sources_for(sources, run.task, run_dir, box, crops)
    info = run.info
    layer = info.gradcam_layer if method != "occlusion" else ""
    out = Path(out)
    (out / "features" if features else out).mkdir(parents=True, exist_ok=True)
    names = _names([Path(s.path) for s in sources])
    rows: list[dict[str, Any]] = [
        {"image": s.path, "method": method, "layer": layer, "scale": scale, "threshold": run.threshold}
        for s in sources
    ]
    with tempfile.TemporaryDirectory(dir=out, prefix=".explain-") as spill:
        pending = _maps_pass(
            run, sources, rows, names, out, Path(spill), info, method, features, batch_size, workers
        )
        top = max((float(r["map_max"]) for r in rows if not r["error"]), default=0.0)
        for i, job in pending.items():
            _draw(rows[i], names[i], out, job, top if scale == "shared" else None)
    table_rows = [{c: r.get(c, "") for c in COLUMNS} for r in rows]
    write_csv(pd.DataFrame(table_rows, columns=COLUMNS), out / "explain.csv")
    return ExplainResult(out, table_rows, scale, top, loaded_at - started, time.perf_counter() - loaded_at)


def _maps_pass(
    run: Run,
    sources: list[Source],
    rows: list[dict[str, Any]],
    names: list[str],
    out: Path,
    spill: Path,
    info: Any,
    method: str,
    features: bool,
    batch_size: int,
    workers: int,
) -> dict[int, Pending]:
    """Read and prepare the inputs (workers), explain them batch by batch, write maps and feature mosaics.

    Fills each row; returns the explained inputs by index, their pictures to be drawn once every map (and so
    the shared colour scale) is known; what they need waits in `spill`, not in memory.
    """
    jobs = ((s, run.spec) for s in sources)
    shown_items = ordered_map(load_shown, jobs, min(workers, len(sources)), preload=["mammo.explain.sources"])
    pending: dict[int, Pending] = {}
    layers = tuple(info.feature_layers) if features else ()
    with tqdm(total=len(sources), unit="img", desc="explain", disable=len(sources) < 2) as bar:
        for group in batches(shown_items, batch_size):
            ok = [(i, shown) for i, shown in group if shown.loaded.x is not None]
            if ok:
                x = torch.from_numpy(np.stack([s.loaded.x for _, s in ok])).to(run.device)
                ev = explain_batch(run.model, x, info.gradcam_layer, method, layers)
                probs = run.probabilities(ev.logits)
            for i, shown in group:
                item = shown.loaded
                rows[i] |= {"patient_id": item.patient_id, "side": item.side, "view": item.view}
                rows[i]["error"] = item.error
                if item.warning:
                    log.warning("%s: %s", sources[i].path, item.warning)
            for k, (i, shown) in enumerate(ok):
                heat, name = ev.maps[k], names[i]
                p = float(probs[k])
                rows[i] |= {
                    "probability": p,
                    "prediction": int(p >= run.threshold),
                    "map_max": float(heat.max()),
                    "note": "; ".join(
                        n for n in ("" if heat.max() > 0 else ZERO_NOTE, shown.loaded.warning) if n
                    ),
                    "heatmap": str(out / f"{name}_heatmap.npy"),
                }
                _save_npy(heat, out / f"{name}_heatmap.npy")
                np.save(spill / f"{i}_x.npy", shown.loaded.x[0])
                gray, prepared = _spill(shown.gray, spill / f"{i}_gray.npy"), None
                if shown.prepared is not None:
                    prepared = _spill(shown.prepared, spill / f"{i}_prepared.npy")
                pending[i] = Pending(
                    out / f"{name}_heatmap.npy", spill / f"{i}_x.npy", gray, shown.box, shown.flip, prepared
                )
                for block, acts in ev.features.items():
                    write_png(
                        feature_mosaic(acts[k], block),
                        out / "features" / f"{name}_{block.replace('.', '-')}.png",
                    )
            bar.update(len(group))
    return pending


def _draw(row: dict[str, Any], name: str, out: Path, job: Pending, top: float | None) -> None:
    """The overlay picture and, for whole runs, the source overlay of one explained input, on the scale `top`."""
    heat, x = np.load(job.heat), np.load(job.x)
    scale = (
        f"one scale for all images, hottest = {top:.3g}" if top is not None else "each map to its own maximum"
    )
    lines = (
        f"{name}: malignant probability {row['probability']:.3f} (threshold {row['threshold']:.3f})",
        f"{row['method']}{' on ' + row['layer'] if row['layer'] else ''}; colours: {scale}",
    )
    write_png(overlay_image(x, heat, lines, top), out / f"{name}_overlay.png")
    row["overlay"] = str(out / f"{name}_overlay.png")
    if top is not None:
        row["scale"] = f"shared: {top:.6g}"
    if job.gray is None:
        return  # roi runs: a lesion window is not laid back onto the source
    gray = np.load(job.gray)
    square = heat if job.prepared is None else rect_heatmap_to_square(heat, np.load(job.prepared))
    source = heatmap_to_source(normalise(square, top), job.box, job.flip, gray.shape)
    write_png(blend_bgr(gray, source), out / f"{name}_source_overlay.png")
    row["source_overlay"] = str(out / f"{name}_source_overlay.png")
