"""Data: ingest a download into a manifest, validate it, synthesise a fake download, EDA.

Public functions (imported on first use): `ingest_cbis`, `ingest_table`, `ingest_folders`, `read_table`,
`make_download`, `run_eda`; `mammo.data.validate.validate` checks a DATA folder (its name is its module's).
"""

from typing import TYPE_CHECKING

from mammo import lazy_exports

if TYPE_CHECKING:
    from mammo.data.cbis import ingest_cbis
    from mammo.data.eda import run_eda
    from mammo.data.synth import make_download
    from mammo.data.table import ingest_folders, ingest_table, read_table

EXPORTS = {
    "ingest_cbis": "mammo.data.cbis",
    "ingest_table": "mammo.data.table",
    "ingest_folders": "mammo.data.table",
    "read_table": "mammo.data.table",
    "make_download": "mammo.data.synth",
    "run_eda": "mammo.data.eda",
}
__all__ = ["ingest_cbis", "ingest_folders", "ingest_table", "make_download", "read_table", "run_eda"]
__getattr__ = lazy_exports(__name__, EXPORTS)
