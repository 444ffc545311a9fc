"""Preparation: breast crop, lesion crops, splits by woman, the parallel resumable driver.

Public function (imported on first use): `prepare`.
"""

from typing import TYPE_CHECKING

from mammo import lazy_exports

if TYPE_CHECKING:
    from mammo.prep.run import prepare

EXPORTS = {"prepare": "mammo.prep.run"}
__all__ = ["prepare"]
__getattr__ = lazy_exports(__name__, EXPORTS)
