"""Data commands: synth, ingest, validate, prepare, eda. None of them imports torch."""

from __future__ import annotations

import argparse
from pathlib import Path

from mammo.cli.options import Command, cluster_option
from mammo.errors import UserError


def _synth_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("out", type=Path, help="folder to write the fake download into")
    s.add_argument("--women", type=int, default=12, help="number of women")
    s.add_argument(
        "--layout",
        choices=["descriptive", "classic"],
        default="descriptive",
        help="folder layout: today's NBIA tree with metadata.csv, or the classic UID tree",
    )
    s.add_argument(
        "--size", choices=["full", "small"], default="small", help="image size: ~3300x2000 (full) or small"
    )
    s.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")


def _synth(a: argparse.Namespace) -> int:
    from mammo.data.synth import make_download

    print(make_download(a.out, women=a.women, layout=a.layout, size=a.size, seed=a.seed).summary())
    return 0


def _ingest_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("root", type=Path, nargs="?", help="CBIS-DDSM download root (either folder layout)")
    s.add_argument(
        "--csv-dir",
        type=Path,
        help="folder with the four case-description CSVs (default: searched under ROOT)",
    )
    s.add_argument(
        "--table",
        type=Path,
        help="CSV with columns image,label [patient_id,split,view,side,x_min,...] (default: none, use ROOT)",
    )
    s.add_argument(
        "--folders",
        type=Path,
        help="class-per-folder tree, e.g. train/Benign, train/Malignant (default: none, use ROOT)",
    )
    s.add_argument(
        "--out", type=Path, required=True, help="DATA folder to write manifest.csv and rejected.csv"
    )
    s.add_argument(
        "--bwc",
        choices=["benign", "drop"],
        default="benign",
        help="BENIGN_WITHOUT_CALLBACK rows: count as benign or drop",
    )
    s.add_argument("--workers", type=int, default=4, help="threads reading DICOM headers")
    s.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing, different DATA/manifest.csv (default: refuse)",
    )


def _ingest(a: argparse.Namespace) -> int:
    sources = [x for x in (a.root, a.table, a.folders) if x is not None]
    if len(sources) != 1:
        raise UserError(
            "ingest needs exactly one source: ROOT (a CBIS-DDSM download), --table FILE.csv or --folders DIR"
        )
    if a.table is not None:
        from mammo.data.table import ingest_table

        result = ingest_table(a.table, a.out, overwrite=a.overwrite)
    elif a.folders is not None:
        from mammo.data.table import ingest_folders

        result = ingest_folders(a.folders, a.out, overwrite=a.overwrite)
    else:
        from mammo.data.cbis import ingest_cbis

        result = ingest_cbis(
            a.root, a.out, csv_dir=a.csv_dir, bwc=a.bwc, workers=a.workers, overwrite=a.overwrite
        )
    print(result.summary())
    return 0


def _validate_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("data", type=Path, help="DATA folder written by `mammo ingest`")


def _validate(a: argparse.Namespace) -> int:
    from mammo.data.validate import validate

    report = validate(a.data)
    print(report.text())
    return 1 if report.errors else 0


def _prepare_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("data", type=Path, help="DATA folder written by `mammo ingest`")
    s.add_argument(
        "--out", type=Path, required=True, help="PREP folder to write images/, dataset.csv, prepare.json"
    )
    s.add_argument(
        "--task",
        choices=["whole", "roi"],
        default="whole",
        help="whole: one sample per image (breast crop); roi: one crop per finding",
    )
    s.add_argument("--size", type=int, default=512, help="side N of the N x N output PNGs, at most 4096")
    s.add_argument(
        "--abnormality", choices=["mass", "calc", "all"], default="all", help="keep findings of this type"
    )
    s.add_argument("--view", choices=["CC", "MLO", "all"], default="all", help="keep images of this view")
    s.add_argument(
        "--split",
        choices=["official", "random"],
        default="official",
        help="official train/test (validation carved from train by woman) or random 70/20/10 by woman",
    )
    s.add_argument(
        "--val-fraction", type=float, default=0.2, help="share of the train women moved to validation"
    )
    s.add_argument(
        "--context",
        type=float,
        default=0.5,
        help="roi: padding around the lesion box, as a fraction of its side",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the validation/random split")
    s.add_argument("--workers", type=int, default=2, help="worker processes (0: in this process)")
    cluster_option(s, "process the images")
    s.add_argument("--overwrite", action="store_true", help="replace an existing PREP instead of resuming it")


def _prepare(a: argparse.Namespace) -> int:
    from mammo.prep.run import prepare

    result = prepare(
        a.data,
        a.out,
        task=a.task,
        size=a.size,
        abnormality=a.abnormality,
        view=a.view,
        split=a.split,
        val_fraction=a.val_fraction,
        seed=a.seed,
        workers=a.workers,
        overwrite=a.overwrite,
        context=a.context,
        cluster=a.cluster,
    )
    print(result.summary())
    return 0


def _eda_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("data", type=Path, help="DATA folder written by `mammo ingest`")
    s.add_argument("--out", type=Path, required=True, help="folder for the figures and summary.md")


def _eda(a: argparse.Namespace) -> int:
    from mammo.data.eda import run_eda

    print(run_eda(a.data, a.out).summary())
    return 0


COMMANDS = [
    Command(
        "synth",
        "write a synthetic CBIS-DDSM download (DICOMs + the four CSVs, with the real quirks)",
        _synth_options,
        _synth,
        """
mammo synth downloads/fake --women 40 --layout descriptive --size small --seed 0
""",
    ),
    Command(
        "ingest",
        "index a download (CBIS-DDSM tree, --table or --folders) into DATA/manifest.csv",
        _ingest_options,
        _ingest,
        """
mammo ingest ~/CBIS-DDSM --out data/cbis                    # a TCIA download, either folder layout
mammo ingest ~/CBIS-DDSM --csv-dir ~/cbis-csv --out data/cbis --bwc drop
mammo ingest --table my_images.csv --out data/mine          # columns image,label [patient_id,split,view,side,x_min,y_min,x_max,y_max]
mammo ingest --folders seed_pngs/ --out data/seed           # train/Benign/*.png, test/Malignant/*.png, ...
""",
    ),
    Command(
        "validate",
        "report every problem of DATA at once (exit 1 on errors)",
        _validate_options,
        _validate,
        """
mammo validate data/cbis          # exit 1 on errors, 0 with warnings only
""",
    ),
    Command(
        "prepare",
        "make a training-ready dataset of 16-bit PNGs and dataset.csv",
        _prepare_options,
        _prepare,
        """
mammo prepare data/cbis --out prep/whole512 --task whole --size 512 --workers 2
mammo prepare data/cbis --out prep/roi224 --task roi --size 224 --context 0.5 --abnormality mass --view CC
mammo prepare data/mine --out prep/mine --split random --val-fraction 0.2 --seed 0
mammo prepare data/cbis --out prep/whole512 --cluster local:2                       # on a Dask cluster (or tcp://HOST:8786)
""",
    ),
    Command(
        "eda",
        "exploratory figures (PNG) and a Markdown summary of DATA",
        _eda_options,
        _eda,
        """
mammo eda data/cbis --out eda/cbis
""",
    ),
]
