"""The node's spool folder: what was acknowledged, what was scored, what is still to be sent.

    SPOOL/instances/<uid>.dcm   received and acknowledged, not scored yet (written atomically before success)
    SPOOL/outbox/<uid>.*.dcm    result objects of a scored instance, until the destination has them
    SPOOL/done/<uid>.json       the done-marker: the instance was scored (probability, when); written once

A file name is the source's SOP Instance UID. An instance is scored when its done-marker exists; the marker is
written after its results are in the outbox and before the instance is removed, so a node killed at any point
and restarted scores every acknowledged instance exactly once and sends every result (again, under the same
UIDs, which a PACS takes as a replacement).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from pathlib import Path

from mammo.errors import UserError
from mammo.io.atomic import atomic_path, remove_stale_temps, write_json

UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class Spool:
    """A spool folder held by one node at a time (an exclusive lock, released by the kernel if it dies)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.instances = self.root / "instances"
        self.outbox = self.root / "outbox"
        self.done = self.root / "done"
        self._lock: int | None = None

    def open(self) -> Spool:
        """Create the folders, take the lock (UserError when another node holds it), clear stale temp files."""
        try:
            for folder in (self.instances, self.outbox, self.done):
                folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(
                f"--spool {self.root}: cannot write there ({exc.strerror}); give a writable folder"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise UserError(
                f"--spool {self.root}: another mammo listen uses this spool; give each node its own"
            ) from None
        self._lock = fd
        for folder in (self.instances, self.outbox, self.done):
            remove_stale_temps(folder)
        return self

    def close(self) -> None:
        """Release the lock."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def instance_path(self, uid: str) -> Path:
        """Where an acknowledged instance lives; ValueError for a UID that is not one (no path tricks)."""
        if not UID_PATTERN.match(uid) or len(uid) > 64:
            raise ValueError(f"SOP Instance UID {uid!r} is not a valid UID")
        return self.instances / f"{uid}.dcm"

    def store(self, uid: str, data: bytes, check=None) -> Path:
        """Write an instance atomically and durably; `check(tmp_path)` may raise to refuse it (nothing is kept)."""
        path = self.instance_path(uid)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if check is not None:
                check(tmp)
            self.done_path(uid).unlink(missing_ok=True)  # a re-sent instance is scored again
        fd = os.open(self.instances, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself survives a power cut before success is answered
        finally:
            os.close(fd)
        return path

    def done_path(self, uid: str) -> Path:
        """The done-marker of an instance."""
        return self.done / f"{uid}.json"

    def pending(self) -> list[Path]:
        """Acknowledged instances not scored yet, oldest first; instances already marked done are removed."""
        out = []
        found = [p for p in self.instances.glob("*.dcm") if not p.name.startswith(".")]
        for path in sorted(found, key=lambda p: p.stat().st_mtime):
            if self.done_path(path.stem).exists():
                path.unlink(missing_ok=True)  # killed between marker and removal: scored already
            else:
                out.append(path)
        return out

    def mark_done(self, uid: str, record: dict) -> None:
        """Write the done-marker (after the results are in the outbox), then drop the instance."""
        write_json({"sop_instance_uid": uid, "scored_at": time.time(), **record}, self.done_path(uid))
        self.instance_path(uid).unlink(missing_ok=True)

    def unsent(self) -> list[Path]:
        """Result objects waiting for the destination."""
        return sorted(p for p in self.outbox.glob("*.dcm") if not p.name.startswith("."))

    def n_done(self) -> int:
        """How many instances have a done-marker."""
        return sum(1 for _ in self.done.glob("*.json"))

    def record(self, uid: str) -> dict:
        """The done-marker's content."""
        return json.loads(self.done_path(uid).read_text())
