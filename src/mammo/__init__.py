"""mammo: mammography benign-vs-malignant classification, from download to explained prediction."""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# OpenMP threads (torch's intra-op pool, MKL) sleep while they wait for work instead of spinning: on a machine
# shared with other work, spinning threads burn the cores the others (and our own decoding workers) need, which
# multiplied a training step's CPU time by 3-6 under load (bench/bench_threads.py). A default only: a value the
# user set wins. It must be in the environment before torch is imported, so it is set here, on `import mammo`.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A package's module `__getattr__` serving its public functions from their modules on first use.

    `exports` maps a name to the module that defines it, so `import mammo.train` stays cheap (no torch)
    and `mammo.train.train(...)` still works.
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
