"""`mammo report`: one self-contained HTML page about a RUN (images embedded, no network, opens from disk).

- `collect`: the numbers and tables (config, data counts, metrics and baselines, subgroups, gallery picks).
- `render`: the HTML page from those, every value escaped.
- `build`: `build_report(RUN)`: figures, heatmaps for the gallery, explanation checks, the file.

Public function (imported on first use): `build_report`.
"""

from typing import TYPE_CHECKING

from mammo import lazy_exports

if TYPE_CHECKING:
    from mammo.report.build import build_report

EXPORTS = {"build_report": "mammo.report.build"}
__all__ = ["build_report"]
__getattr__ = lazy_exports(__name__, EXPORTS)
