"""Which engine scores images: ONNX Runtime (an exported model) or PyTorch (the RUN's checkpoint).

`auto` is ONNX Runtime whenever it is installed (a default dependency) and no CUDA device is asked for:
on CPU it runs the same weights 2-4x faster than PyTorch eager, to 1e-5 in probability. For a RUN folder it
uses RUN/model.onnx when that was exported from the current RUN/best.pt (`mammo train` writes it, `mammo export
RUN` rewrites it), else exports the checkpoint in memory first (a few seconds; nothing is written into the RUN). A bare .onnx file always
runs on ONNX Runtime. explain keeps PyTorch: it needs gradients.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from pathlib import Path

from mammo.errors import UserError
from mammo.predict.onnx import OnnxModel, export_bytes, file_sha256
from mammo.predict.run import Run

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnx", "torch")
EXPORTED = "model.onnx"  # what `mammo export RUN` writes by default, and where predict looks for it
Scorer = Run | OnnxModel


def onnxruntime_installed() -> bool:
    """Whether onnxruntime can be imported (without importing it)."""
    return importlib.util.find_spec("onnxruntime") is not None


def _cuda(device: str) -> bool:
    return device.split(":", 1)[0] == "cuda"


def choose_backend(source: str | os.PathLike, backend: str = "auto", device: str = "auto") -> str:
    """'onnx' or 'torch' for a RUN folder or .onnx file; UserError for a combination that cannot work."""
    if backend not in BACKENDS:
        raise UserError(f"--backend {backend!r}: choose auto, onnx or torch")
    path = Path(source)
    if path.is_file() and path.suffix.lower() != ".onnx":
        raise UserError(
            f"{path}: give the RUN folder (its best.pt is used) or a .onnx file from `mammo export`"
        )
    onnx_file = path.suffix.lower() == ".onnx"
    if onnx_file and backend == "torch":
        raise UserError(
            f"--backend torch: {source} is an exported ONNX model; give its RUN folder for PyTorch"
        )
    if backend == "onnx" or onnx_file:
        if _cuda(device):
            raise UserError(
                f"--device {device}: the ONNX backend runs on CPU; give the RUN folder with --backend torch "
                "for CUDA"
            )
        if not onnxruntime_installed():
            raise UserError(
                "the ONNX backend needs onnxruntime: pip install onnxruntime, or use --backend torch"
            )
        return "onnx"
    if backend == "torch" or _cuda(device) or not onnxruntime_installed():
        return "torch"
    return "onnx"


def load_scorer(
    source: str | os.PathLike, backend: str = "auto", device: str = "auto", threads: int | None = None
) -> Scorer:
    """The loaded model of a RUN folder or an exported .onnx file on the chosen backend (`choose_backend`)."""
    path = Path(source)
    if choose_backend(path, backend, device) == "torch":
        return Run.load(path, device=device)
    if path.suffix.lower() == ".onnx":
        return OnnxModel.load(path, threads)
    exported, checkpoint = path / EXPORTED, path / "best.pt"
    if exported.is_file():
        model = OnnxModel.load(exported, threads)
        if not checkpoint.is_file() or model.metadata.get("mammo.checkpoint_sha256") == file_sha256(
            checkpoint
        ):
            return model
        log.info(
            "%s was exported from an older best.pt: exporting the current one in memory (`mammo export` again saves this)",
            exported,
        )
    started = time.perf_counter()
    data = export_bytes(Run.load(path, device="cpu"))
    log.debug(
        "exported %s to ONNX in memory in %.1f s (`mammo export %s` once saves this)",
        path,
        time.perf_counter() - started,
        path,
    )
    return OnnxModel.from_bytes(data, f"{path} (exported in memory)", threads)
