"""Commands that score and explain new images with a trained model: predict, explain, export."""

from __future__ import annotations

import argparse
from pathlib import Path

from mammo.cli.options import Command, cluster_option, device_option, input_flags
from mammo.errors import UserError


def _explain_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("run", type=Path, help="RUN folder written by `mammo train` (uses best.pt)")
    s.add_argument(
        "images",
        type=Path,
        nargs="*",
        metavar="IMAGE",
        help="DICOM, PNG, JPEG, PGM or TIFF files, or folders searched recursively",
    )
    s.add_argument("--out", type=Path, default=Path("explain-out"), help="output folder")
    input_flags(s)
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
    device_option(s)
    s.add_argument(
        "--no-features", action="store_true", help="skip the feature-map pictures (default: draw them)"
    )
    s.add_argument(
        "--dicom-out",
        type=Path,
        help="also write a DICOM SR and Grad-CAM heatmap objects (Secondary Capture, Segmentation) per DICOM image "
        "here (default: none)",
    )


def _explain(a: argparse.Namespace) -> int:
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


def _predict_options(s: argparse.ArgumentParser) -> None:
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
    input_flags(s)
    s.add_argument(
        "--aggregate",
        choices=["breast"],
        help="add one row per breast (woman + side from the DICOM header, the table, or a CBIS-DDSM PatientID) "
        "with the mean of its views' logits, calibrated (default: image rows only)",
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
    device_option(s)
    s.add_argument(
        "--backend",
        choices=["auto", "onnx", "torch"],
        default="auto",
        help="auto: ONNX Runtime (RUN/model.onnx, or the checkpoint exported in memory) unless --device is "
        "cuda; torch: the RUN's checkpoint on PyTorch",
    )
    cluster_option(s, "read, decode and score the files (ONNX Runtime)")


def _predict(a: argparse.Namespace) -> int:
    from mammo.predict.files import check_args, check_paths, parse_box

    if not a.inputs and a.table is None:
        raise UserError("give input files or folders, or --table T.csv")
    box = parse_box(a.box) if a.box else None
    check_args(a.out, a.aggregate, a.batch_size, a.workers)
    if a.cluster and a.dicom_out is not None:
        raise UserError(
            "--dicom-out scores on PyTorch in this process (its heatmaps need gradients); drop --cluster for it"
        )
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
        "cluster": a.cluster,
    }
    if a.dicom_out is not None:
        from mammo.pacs.export import predict_to_dicom

        result = predict_to_dicom(a.run, a.inputs, a.dicom_out, **options)
    else:
        result = predict(a.run, a.inputs, **options)
    print(result.summary())
    return result.exit_code


def _export_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("run", type=Path, help="RUN folder written by `mammo train` (its best.pt is exported)")
    s.add_argument("--out", type=Path, help="the .onnx file to write (default: RUN/model.onnx)")


def _export(a: argparse.Namespace) -> int:
    from mammo.predict.onnx import OPSET, export_run

    path, diff = export_run(a.run, a.out)
    print(f"wrote {path} (ONNX opset {OPSET}, dynamic batch; logits equal PyTorch's to {diff:.1g})")
    return 0


COMMANDS = [
    Command(
        "explain",
        "heatmaps of the evidence for malignant (Grad-CAM, Grad-CAM++, occlusion) and feature maps for images",
        _explain_options,
        _explain,
        """
mammo explain runs/lite0 scans/P_00001_LEFT_CC.dcm --out explain-out          # Grad-CAM, overlays, feature maps
mammo explain runs/lite0 a.png b.png --method occlusion --no-features
mammo explain runs/lite0 scans/ --scale per-image                             # folders; each map on its own scale
mammo explain runs/roi224 full.dcm --box 1200,800,1500,1100                   # roi run: the lesion box
""",
    ),
    Command(
        "predict",
        "calibrated probability of malignancy for new images with a RUN's model",
        _predict_options,
        _predict,
        """
mammo predict runs/lite0 scans/ --out predictions.csv                 # folders are searched recursively
mammo predict runs/lite0 a.dcm b.png --out p.json --tta               # JSON; mean with the mirrored image
mammo predict runs/lite0 scans/ --aggregate breast --out p.csv        # + one row per breast (mean of its views)
mammo predict runs/roi224 --table lesions.csv --out p.csv             # roi run: boxes and ids from a table
mammo predict runs/roi224 full.dcm --box 1200,800,1500,1100           # roi run: one box in source pixels
mammo predict runs/roi224 crops/ --crops                              # roi run: lesion crops already cut
mammo predict runs/lite0 scans/ --out p.csv --dicom-out results-dicom/ # + SR, heatmap SC and SEG per DICOM
mammo predict runs/lite0/model.onnx scans/ --out p.csv                 # an exported model, no RUN folder needed
mammo predict runs/lite0 --table big.csv --out p.csv --cluster tcp://10.0.0.5:8786  # on a Dask cluster
""",
    ),
    Command(
        "export",
        "the RUN's calibrated model as one ONNX file, metadata included",
        _export_options,
        _export,
        """
mammo export runs/lite0                                  # -> runs/lite0/model.onnx, used by predict
mammo export runs/lite0 --out lite0.onnx                 # for ONNX Runtime, Triton, ...
""",
    ),
]
