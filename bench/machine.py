"""The machine, load and timing block that every benchmark writes under "machine" in its JSON (one shape for all).

    from machine import Machine, timed
    machine = Machine.start()          # versions, commit, date, cores, load average at the start, timers on
    with timed() as t:                  # one measurement: t["wall"], t["cpu"] once the block ends
        ...
    result["machine"] = machine.finish()  # + load average at the end, wall and CPU seconds of the whole script

Keys: `date` (UTC, ISO 8601), `git_commit`, `platform`, `cpu_model`, `cpu_count` (cores in the machine), `cpus_usable` (cores
this process may run on: os.sched_getaffinity), `load_average_at_start` / `load_average_at_end` (1, 5, 15 min),
`python`, `numpy`, `torch`, `onnxruntime`, `pydicom`, `opencv`, `mammo` (null when not installed), `torch_threads`,
`wall_seconds` and `cpu_seconds` (this process and its finished children, user + system). On a shared machine only
ratios measured side by side in one run mean something; the load average says how shared it was.
bench/readme_results.py reads these keys (`cores`, `load_note`), and older JSONs' keys as a fallback.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "numpy": "numpy",
    "torch": "torch",
    "onnxruntime": "onnxruntime",
    "pydicom": "pydicom",
    "opencv": "opencv-python-headless",
    "mammo": "mammo",
}


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its waited-for children (os.times)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded to 2 decimals."""
    return [round(v, 2) for v in os.getloadavg()]


def usable_cpus() -> int:
    """Cores this process may run on (its affinity mask), which a container may set below os.cpu_count()."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _opencv() -> str | None:
    """OpenCV's version from whichever wheel provides cv2 (headless or not)."""
    for dist in ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless"):
        if version := _version(dist):
            return version
    return None


def cpu_model() -> str:
    """The processor's model name from /proc/cpuinfo ('' where there is none)."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.is_file() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")


def git_commit() -> str | None:
    """The checkout's HEAD commit, with '+dirty' when tracked files differ from it; None outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD"], check=False).returncode
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def _torch_threads() -> int | None:
    """torch's intra-op threads when torch is already imported (never imports it: some benches are torch-free)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """Wall and CPU seconds of a block (children it waited for included), filled in on exit: t["wall"], t["cpu"]."""
    times: dict[str, float] = {}
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    try:
        yield times
    finally:
        times["wall"], times["cpu"] = time.perf_counter() - wall0, cpu_seconds() - cpu0


@dataclass
class Machine:
    """The block under construction: what was known at the start, and the timers."""

    block: dict
    _wall0: float = field(default_factory=time.perf_counter)
    _cpu0: float = field(default_factory=cpu_seconds)

    @classmethod
    def start(cls) -> Machine:
        """Record the machine and the load now, and start the wall and CPU timers."""
        versions = {k: _version(dist) for k, dist in PACKAGES.items() if k != "opencv"}
        block = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "git_commit": git_commit(),
            "platform": platform.platform(),
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "cpus_usable": usable_cpus(),
            "load_average_at_start": load_average(),
            "python": platform.python_version(),
            **versions,
            "opencv": _opencv(),
        }
        return cls(block)

    def finish(self) -> dict:
        """The whole block: the start's, plus the load at the end, torch's threads and the script's wall and CPU."""
        return {
            **self.block,
            "load_average_at_end": load_average(),
            "torch_threads": _torch_threads(),
            "wall_seconds": round(time.perf_counter() - self._wall0, 2),
            "cpu_seconds": round(cpu_seconds() - self._cpu0, 2),
        }
