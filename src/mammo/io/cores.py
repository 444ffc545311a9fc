"""How many CPU cores this process may really use: its affinity mask, capped by a cgroup CPU quota.

A container limited with `--cpus 2` on a 16-core host still sees 16 cores in os.sched_getaffinity; sizing
thread pools to that runs 16 threads on 2 cores' worth of time, and they wait on each other. No library reads
the quota for us (os.process_cpu_count in Python 3.13 reads the affinity only), so it is read here: cgroup v2
`cpu.max`, else v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def cgroup_cpus(root: Path = CGROUP) -> float | None:
    """CPUs the cgroup's CFS quota allows (e.g. 2.0); None when unlimited or unreadable."""
    try:
        if (root / "cpu.max").is_file():
            quota, period = (root / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = root / "cpu"
        if (v1 / "cpu.cfs_quota_us").is_file():
            quota = int((v1 / "cpu.cfs_quota_us").read_text())
            return None if quota <= 0 else quota / int((v1 / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError, ZeroDivisionError):
        return None
    return None


def usable_cores(root: Path = CGROUP) -> int:
    """Cores to size thread pools to: the affinity mask's count, capped by the cgroup quota (rounded up), >= 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpus(root)
    return max(1, min(cores, math.ceil(quota))) if quota else max(1, cores)
