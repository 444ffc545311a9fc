"""What every ingest source (CBIS-DDSM tree, table, folders) shares: the result, writing DATA/, the header pool."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pandas as pd
from tqdm import tqdm

from mammo.data.manifest import MANIFEST, REJECTED, write_manifest, write_rejected
from mammo.data.provenance import write_provenance
from mammo.errors import DataError

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class IngestResult:
    """What an ingest wrote: counts for the one-line summary, and where."""

    out: Path
    rows: int
    images: int
    women: int
    rejected: int
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: rows, images, women, rejected count, where written (plus any warning)."""
        line = (
            f"ingest: {self.rows} rows, {self.images} images, {self.women} women, {self.rejected} rejected"
            f" -> {self.out / MANIFEST}"
        )
        if self.rejected:
            line += f" (problems in {self.out / REJECTED})"
        return "; ".join([line, *self.notes])


def write_outputs(
    df: pd.DataFrame,
    problems: list[tuple[str, str]],
    out: str | os.PathLike,
    notes: list[str] | None = None,
    overwrite: bool = False,
    provenance: dict | None = None,
) -> IngestResult:
    """Write manifest.csv, rejected.csv, then provenance.json, atomically; refuse an empty manifest or replacing
    another one."""
    out = Path(out)
    if df.empty:
        first = f" (first problem: {problems[0][0]}: {problems[0][1]})" if problems else ""
        raise DataError(f"no usable image found, nothing written to {out}{first}")
    write_manifest(df, out, overwrite)
    write_rejected(problems, out)
    write_provenance(provenance or {"synthetic": False, "source": "unknown"}, out)
    return IngestResult(
        out, len(df), df["image_id"].nunique(), df["patient_id"].nunique(), len(problems), notes or []
    )


def parallel_map(fn: Callable[[T], R], items: list[T], workers: int, desc: str) -> list[R]:
    """fn over items in a thread pool with a progress bar (header reads are I/O-bound, so threads overlap)."""
    bar = {"total": len(items), "desc": desc, "leave": False, "disable": len(items) < 2}
    if workers <= 1:
        return [fn(x) for x in tqdm(items, **bar)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(tqdm(pool.map(fn, items), **bar))
