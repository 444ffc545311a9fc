"""The `mammo` command: a thin skin over the library. Parses flags, calls one function, prints its summary.

Heavy libraries (torch, matplotlib) are imported inside the command that needs them, so `mammo --help`
and the data commands start fast. A UserError becomes one line on stderr and a non-zero exit;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

from mammo import __version__
from mammo.errors import UserError
from mammo.io.devices import DEVICE_HELP, DEVICES
from mammo.train.config import FLAGS

# The README's examples, shown under each command's --help (tests/test_cli.py keeps the two in step).
EXAMPLES = {
    "synth": """
mammo synth downloads/fake --women 40 --layout descriptive --size small --seed 0
""",
    "ingest": """
mammo ingest ~/CBIS-DDSM --out data/cbis                    # a TCIA download, either folder layout
mammo ingest ~/CBIS-DDSM --csv-dir ~/cbis-csv --out data/cbis --bwc drop
mammo ingest --table my_images.csv --out data/mine          # columns image,label [patient_id,split,view,side,x_min,y_min,x_max,y_max]
mammo ingest --folders seed_pngs/ --out data/seed           # train/Benign/*.png, test/Malignant/*.png, ...
""",
    "validate": """
mammo validate data/cbis          # exit 1 on errors, 0 with warnings only
""",
    "eda": """
mammo eda data/cbis --out eda/cbis
""",
    "prepare": """
mammo prepare data/cbis --out prep/whole512 --task whole --size 512 --workers 2
mammo prepare data/cbis --out prep/roi224 --task roi --size 224 --context 0.5 --abnormality mass --view CC
mammo prepare data/mine --out prep/mine --split random --val-fraction 0.2 --seed 0
""",
    "models": """
mammo models
""",
    "train": """
mammo train prep/whole512 --out runs/lite0 --model efficientnet-lite0 --epochs 20 --batch-size 32 --lr 3e-4 --size 512
mammo train prep/whole512 --out runs/lite0 --resume                 # continue from runs/lite0/last.pt
mammo train prep/whole512 --out runs/lite0 --config my.yaml         # defaults < model defaults < YAML < flags
torchrun --nproc-per-node 4 -m mammo train prep/whole512 --out runs/ddp --device cuda   # DDP, any number of nodes
""",
    "evaluate": """
mammo evaluate runs/lite0 --split test            # writes runs/lite0/eval/test/
mammo evaluate runs/lite0 --data prep/other       # writes runs/lite0/eval/other-<hash>/test/, keeps eval/test/
""",
    "cv": """
mammo cv prep/rsna256 --out cv/rsna --folds 5 --size 256 --width 144 --epochs 6 --warmup-epochs 0.5
mammo cv prep/mias-roi --out cv/mias --fold-table folds.csv     # folds given per woman (patient_id,fold)
""",
    "compare": """
mammo compare cv/a cv/b                     # two CV folders (oof.csv) over the same folds
mammo compare runs/a runs/b --split test    # two evaluated runs
""",
    "explain": """
mammo explain runs/lite0 scans/P_00001_LEFT_CC.dcm --out explain-out          # Grad-CAM, overlays, feature maps
mammo explain runs/lite0 a.png b.png --method occlusion --no-features
mammo explain runs/lite0 scans/ --scale per-image                             # folders; each map on its own scale
mammo explain runs/roi224 full.dcm --box 1200,800,1500,1100                   # roi run: the lesion box
""",
    "report": """
mammo evaluate runs/lite0 --split test && mammo report runs/lite0           # writes runs/lite0/report.html
mammo report runs/lite0 --out lite0.html --split val
""",
    "export": """
mammo export runs/lite0                                  # -> runs/lite0/model.onnx, used by predict
mammo export runs/lite0 --out lite0.onnx                 # for ONNX Runtime, Triton, ...
""",
    "predict": """
mammo predict runs/lite0 scans/ --out predictions.csv                 # folders are searched recursively
mammo predict runs/lite0 a.dcm b.png --out p.json --tta               # JSON; mean with the mirrored image
mammo predict runs/lite0 scans/ --aggregate breast --out p.csv        # + one row per breast (mean of its views)
mammo predict runs/roi224 --table lesions.csv --out p.csv             # roi run: boxes and ids from a table
mammo predict runs/roi224 full.dcm --box 1200,800,1500,1100           # roi run: one box in source pixels
mammo predict runs/roi224 crops/ --crops                              # roi run: lesion crops already cut
mammo predict runs/lite0 scans/ --out p.csv --dicom-out results-dicom/ # + SR, heatmap SC and SEG per DICOM
mammo predict runs/lite0/model.onnx scans/ --out p.csv                 # an exported model, no RUN folder needed
""",
    "listen": """
mammo listen runs/lite0 --port 11112 --spool spool/ --dest 127.0.0.1:4242:ORTHANC --allow ORTHANC
mammo listen runs/lite0 --port 104 --spool /var/spool/mammo --dest pacs:104:PACS --host 0.0.0.0   # other machines
""",
    "demo": """
mammo demo --out demo-out          # what `make demo` runs
mammo demo --out /tmp/smoke --fast # seconds-long smoke version (used by the tests)
""",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks and appends an option's default to its help (unless the help says it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or action.default is None
            or action.default is argparse.SUPPRESS
            or action.nargs == 0
            or action.required
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def _cmd_synth(a: argparse.Namespace) -> int:
    from mammo.data.synth import make_download

    print(make_download(a.out, women=a.women, layout=a.layout, size=a.size, seed=a.seed).summary())
    return 0


def _cmd_ingest(a: argparse.Namespace) -> int:
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


def _cmd_validate(a: argparse.Namespace) -> int:
    from mammo.data.validate import validate

    report = validate(a.data)
    print(report.text())
    return 1 if report.errors else 0


def _cmd_prepare(a: argparse.Namespace) -> int:
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
    )
    print(result.summary())
    return 0


def _cmd_eda(a: argparse.Namespace) -> int:
    from mammo.data.eda import run_eda

    print(run_eda(a.data, a.out).summary())
    return 0


def _cmd_models(a: argparse.Namespace) -> int:
    from mammo.models.registry import models_table

    print(models_table())
    return 0


def _cmd_train(a: argparse.Namespace) -> int:
    from mammo.train.loop import train

    overrides = {k: getattr(a, k) for k in a.given}
    if a.pooling:
        overrides["model_args"] = {"pooling": a.pooling}
    if a.trunk_cache is not None:
        from mammo.train.cached import train_cached

        result = train_cached(a.prep, a.out, a.trunk_cache, config_file=a.config, overrides=overrides)
    else:
        result = train(a.prep, a.out, config_file=a.config, overrides=overrides, resume=a.resume)
    if result is not None:
        print(result.summary())
    return 0


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from mammo.evaluate.run import evaluate

    print(evaluate(a.run, data=a.data, split=a.split, device=a.device).summary())
    return 0


def _cmd_explain(a: argparse.Namespace) -> int:
    from mammo.predict.files import check_paths, parse_box

    if not a.images and a.table is None:
        raise UserError("give input files or folders, or --table T.csv")
    box = parse_box(a.box) if a.box else None
    check_paths(a.run, a.images, a.table)  # before torch loads: a mistyped path is refused at once
    if a.dicom_out is not None:
        from mammo.io.atomic import check_output_dir

        check_output_dir(a.dicom_out, "--dicom-out")  # before the heatmaps, not after
    from mammo.explain.run import explain

    result = explain(
        a.run,
        a.images,
        a.out,
        method=a.method,
        device=a.device,
        features=not a.no_features,
        table=a.table,
        box=box,
        crops=a.crops,
        scale=a.scale,
        batch_size=a.batch_size,
        workers=a.workers,
    )
    print(result.summary())
    if a.dicom_out is not None:
        from mammo.pacs.export import dicom_results

        explained = [r["image"] for r in result.rows if not r["error"]]  # folders and --table expanded
        print(dicom_results(a.run, explained, a.dicom_out, device=a.device).summary())
    return 0 if any(not r["error"] for r in result.rows) else 1


def _cmd_report(a: argparse.Namespace) -> int:
    from mammo.report.build import build_report

    print(build_report(a.run, a.out, split=a.split, device=a.device, outside=a.outside).summary())
    return 0


def _cmd_predict(a: argparse.Namespace) -> int:
    from mammo.predict.files import check_args, check_paths, parse_box

    if not a.inputs and a.table is None:
        raise UserError("give input files or folders, or --table T.csv")
    box = parse_box(a.box) if a.box else None
    check_args(a.out, a.aggregate, a.batch_size, a.workers)
    check_paths(a.run, a.inputs, a.table, onnx=True)  # before torch loads: a mistyped path is refused at once
    from mammo.predict.files import predict

    options = {
        "out": a.out,
        "table": a.table,
        "box": box,
        "crops": a.crops,
        "aggregate": a.aggregate,
        "tta": a.tta,
        "batch_size": a.batch_size,
        "workers": a.workers,
        "device": a.device,
        "backend": a.backend,
    }
    if a.dicom_out is not None:
        from mammo.pacs.export import predict_to_dicom

        result = predict_to_dicom(a.run, a.inputs, a.dicom_out, **options)
    else:
        result = predict(a.run, a.inputs, **options)
    print(result.summary())
    return result.exit_code


def _cmd_listen(a: argparse.Namespace) -> int:
    from mammo.pacs.node import listen

    result = listen(a.run, a.port, a.spool, a.dest, a.ae_title, a.allow or (), a.host, a.batch_size, a.device)
    print(result.summary())
    return result.exit_code


def _cmd_export(a: argparse.Namespace) -> int:
    from mammo.predict.onnx import OPSET, export_run

    path, diff = export_run(a.run, a.out)
    print(f"wrote {path} (ONNX opset {OPSET}, dynamic batch; logits equal PyTorch's to {diff:.1g})")
    return 0


def _cmd_cv(a: argparse.Namespace) -> int:
    from mammo.evaluate.cv import run_cv

    result = run_cv(
        a.prep,
        a.out,
        folds=a.folds,
        seed=a.seed,
        overrides={k: getattr(a, k) for k in a.given - {"seed", "device"}},
        config_file=a.config,
        val_fraction=a.val_fraction,
        fold_table=a.fold_table,
        device=a.device,
    )
    print(result.summary())
    return 0


def _cmd_compare(a: argparse.Namespace) -> int:
    from mammo.evaluate.compare import compare

    print(compare(a.a, a.b, split=a.split, n_boot=a.n_boot, seed=a.seed).summary())
    return 0


def _cmd_demo(a: argparse.Namespace) -> int:
    from mammo.demo import run_demo

    print(run_demo(a.out, fast=a.fast, seed=a.seed).summary())
    return 0


class _Given(argparse.Action):
    """Stores a training flag's value and notes that it was given: only given flags override --config."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        namespace.given = namespace.given | {self.dest}


class _GivenSwitch(argparse.BooleanOptionalAction):
    """--name / --no-name for a true-or-false training field, noted as given like `_Given`."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        super().__call__(parser, namespace, values, option_string)
        namespace.given = namespace.given | {self.dest}


def _train_options(s: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (`train` and `cv`): type, choices, help and default all from the field."""
    group = s.add_argument_group(
        "training options", "each flag given overrides --config, which overrides the model's train_defaults"
    )
    s.set_defaults(given=frozenset())
    for f in FLAGS:
        meta, default = f.metadata, f.default
        name = "--" + f.name.replace("_", "-")
        kind = str(f.type).split("|")[0].strip()
        shown = meta["default_text"] or (("off", "on")[default] if kind == "bool" else default)
        if kind == "bool":
            group.add_argument(
                name, action=_GivenSwitch, default=default, help=f"{meta['help']} (default: {shown})"
            )
            continue
        group.add_argument(
            name,
            action=_Given,
            type={"int": int, "float": float}.get(kind, str),
            choices=meta["choices"],
            default=default,
            help=f"{meta['help']} (default: {shown})",
        )


def _device_option(s: argparse.ArgumentParser) -> None:
    """--device, the same everywhere train and cv excepted (theirs comes from TrainConfig, the same choices)."""
    s.add_argument(
        "--device", choices=DEVICES, default=DEVICES[0], help=f"{DEVICE_HELP} (default: {DEVICES[0]})"
    )


def _input_flags(s: argparse.ArgumentParser) -> None:
    """How `predict` and `explain` are told about their inputs beyond the paths: a table, a lesion box, crops."""
    s.add_argument(
        "--table",
        type=Path,
        help="CSV in the ingest table format: image [patient_id, side, view, x_min, y_min, x_max, y_max] "
        "(default: none)",
    )
    s.add_argument(
        "--box",
        help="x0,y0,x1,y1 lesion box in source pixels, for inputs without a table box. An roi (lesion-crop) run "
        "needs a box per whole image and refuses inputs without one (default: none)",
    )
    s.add_argument(
        "--crops",
        action="store_true",
        help="roi runs: the inputs without a box are lesion crops already, each scored whole (default: refuse "
        "them and ask for --box or --table)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser: every subcommand, each option with help and default, README examples as epilog."""
    p = argparse.ArgumentParser(
        prog="mammo",
        description="Mammography benign-vs-malignant: data to explained prediction.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    loud = p.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    loud.add_argument("-v", "--verbose", action="store_true", help="log debugging detail too")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        epilog = (
            "examples:\n" + textwrap.indent(EXAMPLES[name].strip("\n"), "  ") if name in EXAMPLES else None
        )
        sp = sub.add_parser(name, help=help_, description=help_, epilog=epilog, formatter_class=HelpFormatter)
        sp.set_defaults(func=fn)
        return sp

    s = add(
        "synth",
        _cmd_synth,
        "write a synthetic CBIS-DDSM download (DICOMs + the four CSVs, with the real quirks)",
    )
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

    s = add(
        "ingest",
        _cmd_ingest,
        "index a download (CBIS-DDSM tree, --table or --folders) into DATA/manifest.csv",
    )
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

    s = add("validate", _cmd_validate, "report every problem of DATA at once (exit 1 on errors)")
    s.add_argument("data", type=Path, help="DATA folder written by `mammo ingest`")

    s = add("prepare", _cmd_prepare, "make a training-ready dataset of 16-bit PNGs and dataset.csv")
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
    s.add_argument("--overwrite", action="store_true", help="replace an existing PREP instead of resuming it")

    s = add("eda", _cmd_eda, "exploratory figures (PNG) and a Markdown summary of DATA")
    s.add_argument("data", type=Path, help="DATA folder written by `mammo ingest`")
    s.add_argument("--out", type=Path, required=True, help="folder for the figures and summary.md")

    add("models", _cmd_models, "list the registered models with parameters and input size")

    s = add("train", _cmd_train, "train a model on PREP (works under torchrun for DDP)")
    s.add_argument("prep", type=Path, help="PREP folder written by `mammo prepare`")
    s.add_argument("--out", type=Path, required=True, help="RUN folder for checkpoints, metrics and config")
    s.add_argument("--config", type=Path, help="YAML config (defaults < YAML < flags) (default: none)")
    s.add_argument("--resume", action="store_true", help="continue from RUN/last.pt")
    _train_options(s)
    s.add_argument(
        "--pooling",
        choices=("avg", "max", "topk", "attention"),
        help="efficientnet-lite pooling (default: avg)",
    )
    s.add_argument(
        "--trunk-cache",
        type=Path,
        help="train only the layers after --freeze on trunk outputs cached once per image in this folder; "
        "fixed epochs, no early stopping (default: train the whole network on the images)",
    )

    s = add(
        "cv",
        _cmd_cv,
        "k-fold cross-validation by woman over train+val: out-of-fold AUC with CI and baselines",
    )
    s.add_argument("prep", type=Path, help="PREP folder (its test split is never used)")
    s.add_argument("--out", type=Path, required=True, help="CV folder: fold-k/run, oof.csv, metrics.json")
    s.add_argument("--folds", type=int, default=5, help="number of folds, grouped by woman (default: 5)")
    s.add_argument("--fold-table", type=Path, help="CSV patient_id,fold giving the folds (default: drawn)")
    s.add_argument(
        "--val-fraction",
        type=float,
        default=0.15,
        help="share of each fold's training women kept for early stopping and calibration (default: 0.15)",
    )
    s.add_argument("--config", type=Path, help="YAML train config for every fold (default: none)")
    _train_options(s)

    s = add("compare", _cmd_compare, "delta-AUC of B over A on the same samples, paired bootstrap by woman")
    s.add_argument("a", type=Path, help="A: RUN folder, CV folder or predictions CSV")
    s.add_argument("b", type=Path, help="B: same kinds, over the same samples")
    s.add_argument(
        "--split", choices=["val", "test"], default="test", help="split of a RUN's eval (default: test)"
    )
    s.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default: 2000)")
    s.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")

    s = add("evaluate", _cmd_evaluate, "metrics with bootstrap CIs by woman, calibration and plots for a RUN")
    s.add_argument("run", type=Path, help="RUN folder written by `mammo train`")
    s.add_argument("--data", type=Path, help="PREP folder (default: the one the run was trained on)")
    s.add_argument("--split", choices=["val", "test"], default="test", help="PREP split to evaluate")
    _device_option(s)

    s = add(
        "explain",
        _cmd_explain,
        "heatmaps of the evidence for malignant (Grad-CAM, Grad-CAM++, occlusion) and feature maps for images",
    )
    s.add_argument("run", type=Path, help="RUN folder written by `mammo train` (uses best.pt)")
    s.add_argument(
        "images",
        type=Path,
        nargs="*",
        metavar="IMAGE",
        help="DICOM, PNG, JPEG, PGM or TIFF files, or folders searched recursively",
    )
    s.add_argument("--out", type=Path, default=Path("explain-out"), help="output folder")
    _input_flags(s)
    s.add_argument(
        "--method",
        choices=["gradcam", "gradcam++", "occlusion"],
        default="gradcam",
        help="heatmap method (occlusion is model-agnostic but slower)",
    )
    s.add_argument(
        "--scale",
        choices=["shared", "per-image"],
        default="shared",
        help="heatmap colours: one scale for all the images of the call (a weak map looks weak), or each map "
        "stretched to its own maximum; recorded in explain.csv and on each figure",
    )
    s.add_argument("--batch-size", type=int, default=8, help="images per forward and backward pass")
    s.add_argument(
        "--workers", type=int, default=1, help="processes reading and decoding files (0: in this process)"
    )
    _device_option(s)
    s.add_argument(
        "--no-features", action="store_true", help="skip the feature-map pictures (default: draw them)"
    )
    s.add_argument(
        "--dicom-out",
        type=Path,
        help="also write a DICOM SR and Grad-CAM heatmap objects (Secondary Capture, Segmentation) per DICOM image "
        "here (default: none)",
    )

    s = add(
        "report",
        _cmd_report,
        "one self-contained HTML report of a RUN: data, metrics with baselines, subgroups, plots, heatmaps",
    )
    s.add_argument("run", type=Path, help="RUN folder, evaluated with `mammo evaluate` on --split")
    s.add_argument("--out", type=Path, help="HTML file to write (default: RUN/report.html)")
    s.add_argument("--split", choices=["val", "test"], default="test", help="evaluation to report")
    s.add_argument(
        "--outside",
        type=Path,
        metavar="EXPLAIN_DIR",
        help="a `mammo explain` output folder of images outside the run's data, shown in their own section "
        "(default: none)",
    )
    _device_option(s)

    s = add("predict", _cmd_predict, "calibrated probability of malignancy for new images with a RUN's model")
    s.add_argument(
        "run",
        type=Path,
        help="RUN folder written by `mammo train`, or a .onnx file written by `mammo export`",
    )
    s.add_argument(
        "inputs",
        nargs="*",
        help="DICOM (any transfer syntax, with or without .dcm), PNG, JPEG, PGM or TIFF files, or folders "
        "searched recursively",
    )
    s.add_argument(
        "--out", type=Path, help="write every row to this .csv or .json file (default: print a summary only)"
    )
    _input_flags(s)
    s.add_argument(
        "--aggregate",
        choices=["breast"],
        help="add one row per breast (patient + side from DICOM header or table) with the mean over its views "
        "(default: image rows only)",
    )
    s.add_argument("--tta", action="store_true", help="average the logits of each image and its mirror image")
    s.add_argument(
        "--dicom-out",
        type=Path,
        help="also write a DICOM SR and heatmap objects (Secondary Capture, Segmentation) per DICOM input here; "
        "scored on PyTorch, as the heatmaps need gradients (default: none)",
    )
    s.add_argument(
        "--batch-size",
        type=int,
        help="images per forward pass (default: 1 on CPU, the fastest per image there; 8 on CUDA)",
    )
    s.add_argument(
        "--workers", type=int, default=1, help="processes reading and decoding files (0: in this process)"
    )
    _device_option(s)
    s.add_argument(
        "--backend",
        choices=["auto", "onnx", "torch"],
        default="auto",
        help="auto: ONNX Runtime (RUN/model.onnx, or the checkpoint exported in memory) unless --device is "
        "cuda; torch: the RUN's checkpoint on PyTorch",
    )

    s = add("export", _cmd_export, "the RUN's calibrated model as one ONNX file, metadata included")
    s.add_argument("run", type=Path, help="RUN folder written by `mammo train` (its best.pt is exported)")
    s.add_argument("--out", type=Path, help="the .onnx file to write (default: RUN/model.onnx)")

    s = add("listen", _cmd_listen, "run as a DICOM node: receive mammograms, send back SR + heatmap objects")
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
    _device_option(s)

    s = add(
        "demo",
        _cmd_demo,
        "the whole job on synthetic data: synth -> ingest -> ... -> train -> evaluate -> explain -> report",
    )
    s.add_argument("--out", type=Path, default=Path("demo-out"), help="folder for every step's output")
    s.add_argument("--fast", action="store_true", help="seconds-long smoke version")
    s.add_argument("--seed", type=int, default=0, help="seed of the synthetic download")
    return p


class _StderrHandler(logging.StreamHandler):
    """A console handler that writes to whatever sys.stderr is at each record (redirections and captures work)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns one; the live sys.stderr wins
        pass


def configure_logging(quiet: bool = False, verbose: bool = False) -> None:
    """Send the library's `mammo.*` log records to stderr: INFO by default, WARNING with -q, DEBUG with -v."""
    logger = logging.getLogger("mammo")
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one subcommand; UserError -> one line on stderr and its exit code."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    args = build_parser().parse_args(argv)
    configure_logging(args.quiet, args.verbose)
    try:
        with logging_redirect_tqdm(loggers=[logging.getLogger("mammo")]):
            return int(args.func(args) or 0)
    except UserError as exc:
        if args.debug:
            raise
        print(f"mammo {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"mammo {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # the disk, not the input: a full disk, a permission, a path that became a file
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(
            f"mammo {args.command}: error: {where}{exc.strerror or exc}; check the path and free space",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
