"""`mammo runs`: a table of the RUN folders under a directory, read from their files; no tracking server needed.

A RUN is a folder with config.yaml and metrics.csv (what `mammo train` writes). Each row: the model, input size,
data (synthetic / real / unknown from the PREP's provenance), epochs, the best validation AUC (with its 95%
interval by woman when `mammo evaluate --split val` ran, else the best epoch's from metrics.csv), the test AUC
with its interval when evaluated, the shortcut baselines of that evaluation, and when the run last wrote.
A folder whose files cannot be read is reported on one line and the others are listed.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mammo.errors import UserError
from mammo.track.record import data_tags
from mammo.track.spec import RUNS_SORT

log = logging.getLogger(__name__)
DESCENDING = {"date", "val_auc", "test_auc"}
TEXT_COLUMNS = ("run", "model", "size", "data", "epochs", "best val AUC [95% CI]", "test AUC [95% CI]")


def _read_json(path: Path) -> dict[str, Any] | None:
    """A metrics.json as a dict, or None when absent."""
    return json.loads(path.read_text()) if path.is_file() else None


def _auc(block: dict[str, Any] | None, prefix: str) -> dict[str, float | None]:
    """prefix_auc, prefix_auc_ci_low, prefix_auc_ci_high of an evaluation block (None where absent)."""
    block = block or {}
    return {f"{prefix}_auc{s}": block.get(f"auc{s}") for s in ("", "_ci_low", "_ci_high")}


def run_row(run: Path, root: Path) -> dict[str, Any]:
    """One RUN folder's row (numbers as numbers, None where the run has none)."""
    config = yaml.safe_load((run / "config.yaml").read_text()) or {}
    history = pd.read_csv(run / "metrics.csv")
    val, test = (
        _read_json(run / "eval" / "val" / "metrics.json"),
        _read_json(run / "eval" / "test" / "metrics.json"),
    )
    prep = Path(config["prep"]) if config.get("prep") else None
    tags = data_tags(prep) if prep is not None and prep.is_dir() else {"mammo.data": "unknown"}
    size, width = config.get("size"), config.get("width")
    row: dict[str, Any] = {
        "run": os.path.relpath(run, root),
        "model": config.get("model", ""),
        "size": f"{size}x{width}" if size and width else str(size or "model's"),
        "data": f"{tags['mammo.data']} {prep.name}" if prep is not None else tags["mammo.data"],
        "epochs": len(history),
    }
    if val is not None:
        row.update(_auc(val, "val"))
    else:
        best = history["val_auc"].max() if "val_auc" in history and len(history) else None
        row.update(
            val_auc=None if best is None or pd.isna(best) else float(best),
            val_auc_ci_low=None,
            val_auc_ci_high=None,
        )
    row.update(_auc(test, "test"))
    shortcuts = (test or val or {}).get("baselines") or {}
    row["baselines_split"] = "test" if test is not None and shortcuts else ("val" if shortcuts else "")
    for name, block in shortcuts.items():
        row[f"baseline_{name}_auc"] = block.get("auc")
    stamp = (run / "metrics.csv").stat().st_mtime
    row["date"] = datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%d %H:%M")
    return row


def find_runs(root: Path) -> list[Path]:
    """Every folder under `root` (itself included) holding config.yaml and metrics.csv, in path order."""
    return sorted({p.parent for p in root.rglob("metrics.csv") if (p.parent / "config.yaml").is_file()})


def _num(value: Any) -> str:
    """0.8123 -> '0.812'; None/NaN -> '-'."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _with_ci(row: pd.Series, prefix: str) -> str:
    """'0.812 [0.700-0.900]', '0.812' without an interval, '-' without a value."""
    value, lo, hi = (row.get(f"{prefix}_auc{s}") for s in ("", "_ci_low", "_ci_high"))
    if _num(value) == "-":
        return "-"
    return _num(value) if _num(lo) == "-" else f"{_num(value)} [{_num(lo)}-{_num(hi)}]"


@dataclass
class RunsTable:
    """The runs found under `root`, one row each, sorted; `summary()` is the text table, `to_csv()` the CSV."""

    root: Path
    rows: pd.DataFrame

    def to_csv(self) -> str:
        """Every column, numbers unrounded."""
        return self.rows.to_csv(index=False)

    def summary(self) -> str:
        """A fixed-width table: run, model, size, data, epochs, val and test AUC with intervals, shortcuts, date."""
        baselines = [c for c in self.rows.columns if c.startswith("baseline_") and c.endswith("_auc")]
        lines = []
        for _, r in self.rows.iterrows():
            shortcuts = ", ".join(
                f"{c[len('baseline_') : -len('_auc')]} {_num(r[c])}" for c in baselines if _num(r[c]) != "-"
            )
            lines.append(
                [
                    r["run"],
                    r["model"],
                    r["size"],
                    r["data"],
                    str(r["epochs"]),
                    _with_ci(r, "val"),
                    _with_ci(r, "test"),
                    f"{r['baselines_split']}: {shortcuts}" if shortcuts else "-",
                    r["date"],
                ]
            )
        header = [*TEXT_COLUMNS, "shortcut baselines (AUC)", "date (UTC)"]
        widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=False)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        return "\n".join(fmt.format(*row).rstrip() for row in [header, *lines])


def runs_table(root: str | os.PathLike, sort: str = "date") -> RunsTable:
    """The RUN folders under `root` as a table sorted by `sort` (date, val_auc, test_auc newest/highest first).

    Example:
        >>> from mammo.track import runs_table
        >>> print(runs_table("runs", sort="val_auc").summary())
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder; pass the folder that holds your RUN folders")
    if sort not in RUNS_SORT:
        raise UserError(f"--sort {sort}: choose from {', '.join(RUNS_SORT)}")
    rows = []
    for run in find_runs(root):
        try:
            rows.append(run_row(run, root))
        except (OSError, ValueError, KeyError, yaml.YAMLError, pd.errors.ParserError) as e:
            log.warning(f"{run}: left out, its files cannot be read ({type(e).__name__}: {e})")
    if not rows:
        raise UserError(f"{root}: no RUN folders (config.yaml and metrics.csv) under it")
    table = pd.DataFrame(rows)
    table = table.sort_values(
        sort, ascending=sort not in DESCENDING, na_position="last", kind="stable"
    ).reset_index(drop=True)
    return RunsTable(root, table)
