"""Where the images came from, carried from the download to DATA/ to PREP/ so a report can say "synthetic".

`mammo synth` leaves SYNTH_MARKER at the root of its download; ingest records DATA/provenance.json (synthetic or
not, and the source) and prepare copies it into PREP/prepare.json["provenance"]. A file copied out of a
synthetic download keeps no marker, so only `synthetic: true` is a claim; its absence proves nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mammo.io.atomic import write_json

SYNTH_MARKER = "mammo-synth.json"
PROVENANCE = "provenance.json"
# What a model trained on a PREP was trained on, as result objects say it (`training_data`)
TRAINED_SYNTHETIC = "synthetic images (mammo synth)"
TRAINED_NOT_MARKED = "images not marked synthetic"
TRAINED_NOT_RECORDED = "not recorded"


def synth_marker(seed: int, women: int, layout: str, size: str) -> dict[str, Any]:
    """What `mammo synth` writes at the root of a download: the generator and its arguments."""
    return {
        "synthetic": True,
        "generator": "mammo synth",
        "seed": int(seed),
        "women": int(women),
        "layout": layout,
        "size": size,
    }


def download_provenance(root: str | os.PathLike, source: str) -> dict[str, Any]:
    """Provenance of what is ingested from `root`: the synth marker when present, else `source` (not synthetic)."""
    marker = Path(root) / SYNTH_MARKER
    if marker.is_file():
        info = json.loads(marker.read_text())
        return {
            **info,
            "synthetic": True,
            "source": f"synthetic CBIS-DDSM download made by mammo synth (seed {info.get('seed')})",
        }
    return {"synthetic": False, "source": source}


def write_provenance(info: dict[str, Any], data_dir: str | os.PathLike) -> Path:
    """DATA/provenance.json, atomically."""
    path = Path(data_dir) / PROVENANCE
    write_json(info, path)
    return path


def read_provenance(data_dir: str | os.PathLike) -> dict[str, Any] | None:
    """DATA/provenance.json, or None for a DATA folder ingested before provenance was recorded."""
    path = Path(data_dir) / PROVENANCE
    return json.loads(path.read_text()) if path.is_file() else None


def is_synthetic(prepare_info: dict[str, Any] | None) -> bool:
    """Whether a PREP's prepare.json says its images are synthetic."""
    return bool(((prepare_info or {}).get("provenance") or {}).get("synthetic"))


def training_data(prepare_info: dict[str, Any] | None) -> str:
    """What a model trained on this PREP was trained on, in words a result object can carry.

    TRAINED_SYNTHETIC when prepare.json says so, TRAINED_NOT_MARKED when it records a provenance without the
    claim, TRAINED_NOT_RECORDED for a PREP made before provenance was recorded.
    """
    provenance = (prepare_info or {}).get("provenance")
    if not provenance:
        return TRAINED_NOT_RECORDED
    return TRAINED_SYNTHETIC if provenance.get("synthetic") else TRAINED_NOT_MARKED
