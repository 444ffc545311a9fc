"""Experiment tracking: train, cv and the studies logged to MLflow and TensorBoard; `mammo runs` without a server.

Public functions (imported on first use, so `import mammo.track` loads neither MLflow nor torch): `tracking`
(the context every train and cv inside it is logged from), `current`, `parse_track`, `runs_table`.
"""

from typing import TYPE_CHECKING

from mammo import lazy_exports

if TYPE_CHECKING:
    from mammo.track.hooks import current, tracking
    from mammo.track.runs import runs_table
    from mammo.track.spec import parse_track

EXPORTS = {
    "tracking": "mammo.track.hooks",
    "current": "mammo.track.hooks",
    "parse_track": "mammo.track.spec",
    "runs_table": "mammo.track.runs",
}
__all__ = ["current", "parse_track", "runs_table", "tracking"]
__getattr__ = lazy_exports(__name__, EXPORTS)
