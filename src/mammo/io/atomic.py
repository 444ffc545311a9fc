"""Atomic writes: write to a temporary file beside the target, then rename, so no half-written file is left."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mammo.errors import UserError

# `atomic_path`'s temporary names: "." + target name + "." + mkstemp's 8 random characters + target suffix
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}(?P<suffix>\.[^.]+)$")
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix or ".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files `atomic_path` leaves in `folder` when its process is killed mid-write.

    Only safe while no other process writes there (prepare holds its lock). Returns what was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.iterdir():
        m = _TEMP_NAME.match(p.name)
        if m and p.is_file() and (m["target"].endswith(m["suffix"]) or m["suffix"] == ".tmp"):
            p.unlink()
            removed.append(p)
    return removed


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a DataFrame as CSV atomically (no index)."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def json_safe(obj: Any) -> Any:
    """NaN/inf -> null and numpy scalars -> Python, recursively, so a dict can be written as strict JSON."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(obj: object, path: str | os.PathLike) -> None:
    """Write JSON atomically, indented, keys in insertion order."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """UserError unless `path` is (or can be created as) a writable folder; creates nothing.

    Called before any heavy work, so a typo in an output path costs a second, not a run.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file, not a folder; give a folder for {flag}")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{path}: {probe} is a file, so the folder cannot be created; choose another {flag}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{path}: {probe} is not writable; choose another {flag} or fix its permissions")
    return path


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """UserError unless `path` can be written as a file: not a folder, its folder creatable and writable.

    Creates nothing; called before any heavy work, as `check_output_dir`.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; give a file name for {flag}")
    probe = path.parent
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{path}: {probe} is a file, so the folder cannot be created; choose another {flag}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{path}: {probe} is not writable; choose another {flag} or fix its permissions")
    return path
