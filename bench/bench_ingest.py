"""Ingest speed: DICOM files indexed per second on a synthetic download (headers only, never the pixels).

Makes a synthetic CBIS-DDSM download (`--women`, small images, both layouts' worth of quirks), then times
`ingest_cbis` on it with the downloader's metadata.csv removed, so every file's header is read.
    python bench/bench_ingest.py [--women 600] [--out bench/results/ingest.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from machine import Machine

from mammo.data.cbis import ingest_cbis
from mammo.data.synth import make_download

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> dict:
    """Time one ingest of a fresh synthetic download and write files/s and the projection to 10,000 files."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--women", type=int, default=600)
    ap.add_argument("--out", type=Path, default=RESULTS / "ingest.json")
    a = ap.parse_args()
    machine = Machine.start()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        made = make_download(Path(tmp) / "dl", women=a.women, layout="descriptive", size="small", seed=0)
        for meta in Path(tmp, "dl").rglob("metadata.csv"):
            meta.unlink()  # force a header read of every file
        t0 = time.perf_counter()
        result = ingest_cbis(Path(tmp) / "dl", Path(tmp) / "data", workers=4)
        seconds = time.perf_counter() - t0
    out = {
        "command": "python bench/bench_ingest.py",
        "women": a.women,
        "dicom_files": made.n_files,
        "findings": result.rows,
        "seconds": round(seconds, 2),
        "files_per_s": round(made.n_files / seconds, 1),
        "projected_seconds_for_10000_files": round(10000 * seconds / made.n_files, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "machine": machine.finish(),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
