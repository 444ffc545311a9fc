"""The state of a PREP folder between runs: its lock, the progress log of a killed run, earlier parameters.

A killed run leaves its progress log (each finished sample, one JSON line), perhaps a temporary file a
worker was writing, and its lock file. A rerun with the same parameters takes the lock (a lock whose process
is gone is stale and taken over), removes the temporary files and redoes only what the log lacks.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mammo.errors import UserError
from mammo.io.atomic import remove_stale_temps, write_text

PROGRESS = ".progress.jsonl"
LOCK = ".prepare.lock"
OUTPUTS = ("dataset.csv", "prepare.json", "rejected.csv", PROGRESS)


def _differences(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def read_progress(out: Path) -> tuple[dict | None, dict[str, dict]]:
    """The parameters and per-sample outcomes of an earlier run (torn last line ignored)."""
    path = out / PROGRESS
    if not path.is_file():
        return None, {}
    params, outcomes = None, {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "parameters" in record:
            params = record["parameters"]
        elif "sample_id" in record:
            outcomes[record["sample_id"]] = record
    return params, outcomes


def earlier_parameters(out: Path, keys: Iterable[str]) -> dict | None:
    """The output-defining parameters of the run that wrote `out` (prepare.json, or a killed run's log)."""
    done = out / "prepare.json"
    if done.is_file():
        try:
            info = json.loads(done.read_text())
        except json.JSONDecodeError:
            return None
        return {k: info.get(k) for k in keys}
    return read_progress(out)[0]


@contextmanager
def hold_lock(out: Path) -> Iterator[None]:
    """Hold PREP/.prepare.lock (it names this process) for the run; UserError, one line, when a live run holds it.

    The lock is an flock on the file, so the kernel drops it when its process dies, however it dies: a lock
    file left by a killed run is stale and simply taken over. The file is removed when the run ends, and a
    folder this call created is removed again when the run left nothing in it.
    """
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 100).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UserError(
                f"{out} is being prepared right now by process {holder} (lock {path}); wait for it to finish, "
                "or stop it, or choose another --out"
            ) from None
        if path.exists() and path.stat().st_ino == os.fstat(fd).st_ino:
            break
        os.close(fd)  # the holder removed the file between our open and our lock: take the new one
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)
        if created and not any(out.iterdir()):
            out.rmdir()


def _empty_dir(path: Path) -> bool:
    """True for a folder with nothing in it (a run killed right after making images/)."""
    return path.is_dir() and not any(path.iterdir())


def open_output(out: Path, compared: dict, overwrite: bool) -> dict[str, dict]:
    """Check or reset PREP (its lock held); return the outcomes an earlier identical run already finished."""
    remove_stale_temps(out)
    remove_stale_temps(out / "images")
    if overwrite:
        for name in OUTPUTS:
            (out / name).unlink(missing_ok=True)
        for png in (out / "images").glob("*.png"):
            png.unlink()
    elif any(p.name != LOCK and not _empty_dir(p) for p in out.iterdir()):
        before = earlier_parameters(out, compared)
        if before is None:
            raise UserError(
                f"{out} is not empty and holds no earlier prepare run; use another --out or --overwrite"
            )
        if before != compared:
            raise UserError(
                f"{out} was prepared with other parameters ({_differences(before, compared)}); "
                "use --overwrite or another --out folder"
            )
    (out / "images").mkdir(parents=True, exist_ok=True)
    _, outcomes = read_progress(out)
    lines = [json.dumps({"parameters": compared})] + [json.dumps(o) for o in outcomes.values()]
    write_text("\n".join(lines) + "\n", out / PROGRESS)
    return outcomes
