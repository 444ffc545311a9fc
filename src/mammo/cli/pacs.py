"""`mammo listen`: mammo as a DICOM node (receive mammograms, send back SR and heatmap objects)."""

from __future__ import annotations

import argparse
import gc
from pathlib import Path

from mammo.cli.options import Command, device_option


def _listen_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("run", type=Path, help="RUN folder written by `mammo train` (its best.pt is used)")
    s.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    s.add_argument("--spool", type=Path, required=True, help="folder for received images and unsent results")
    s.add_argument(
        "--dest", required=True, help="where results go: HOST:PORT:AET (e.g. 127.0.0.1:4242:ORTHANC)"
    )
    s.add_argument("--ae-title", default="MAMMO", help="this node's AE title")
    s.add_argument(
        "--allow", nargs="+", metavar="AET", help="accept only these calling AE titles (default: any)"
    )
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    s.add_argument("--batch-size", type=int, default=8, help="images per forward pass")
    device_option(s)


def _listen(a: argparse.Namespace) -> int:
    from mammo.pacs.node import listen

    result = listen(a.run, a.port, a.spool, a.dest, a.ae_title, a.allow or (), a.host, a.batch_size, a.device)
    print(result.summary())
    # Everything is on disk now. Scoring imported MONAI and matplotlib (400k objects, 4300 modules): the
    # interpreter's exit would collect them all (6-20 s on a busy machine); frozen, they are left to the OS.
    gc.freeze()
    return result.exit_code


COMMANDS = [
    Command(
        "listen",
        "run as a DICOM node: receive mammograms, send back SR + heatmap objects",
        _listen_options,
        _listen,
        """
mammo listen runs/lite0 --port 11112 --spool spool/ --dest 127.0.0.1:4242:ORTHANC --allow ORTHANC
mammo listen runs/lite0 --port 104 --spool /var/spool/mammo --dest pacs:104:PACS --host 0.0.0.0   # other machines
""",
    ),
]
