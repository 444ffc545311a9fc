"""A RUN's calibrated model as one ONNX file, and an ONNX Runtime session that predict scores with.

`export_run` writes the model with opset 17 (ONNX Runtime 1.12 and later, TensorRT and Triton read it), input
`image` float32 (batch, 1, H, W) with a dynamic batch axis, and two outputs: `logit`, the network's raw
logit (batch,), and `probability`, sigmoid(logit / temperature), the calibrated probability, so that an
inference server that reads only the graph gets the same number as `mammo predict`. Everything else predict
needs travels in the model's metadata_props (`mammo.*` keys): the input spec (the run's `InputSpec` as JSON:
task, size, width, mean, std, PREP size, roi context, prepare record), temperature, threshold, class names, model name, mammo version, the RUN path and the sha256 of the
checkpoint it came from (so a RUN/model.onnx older than RUN/best.pt is never used by mistake).

`OnnxModel` loads such a file into an ONNX Runtime CPU session and offers what predict uses of a loaded run:
`spec`, `temperature`, `threshold`, `preprocess`, `logits` and `probabilities` (from the logit output and the
metadata's temperature, in float64, exactly as the PyTorch path computes them). Torch is imported only to
export, so scoring an exported file never loads it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mammo import __version__
from mammo.errors import DataError, UserError
from mammo.io.atomic import atomic_path, check_output_file, json_safe
from mammo.io.cores import usable_cores
from mammo.predict.infer import probabilities
from mammo.predict.run import TASKS, InputSpec

if TYPE_CHECKING:
    import onnxruntime

    from mammo.predict.run import Run

OPSET = 17
FORMAT = "mammo-onnx/1"
INPUT, LOGIT, PROBABILITY = "image", "logit", "probability"
# Largest |logit| difference between PyTorch and ONNX Runtime that export accepts (float32 rounding is ~1e-6).
EXPORT_TOLERANCE = 1e-4
HINT = "export one with `mammo export RUN --out model.onnx`"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def spec_json(spec: InputSpec) -> str:
    """An input spec as JSON (every field; `spec_from_json` reads it back)."""
    return json.dumps(json_safe(dataclasses.asdict(spec)), sort_keys=True)


def spec_from_json(text: str) -> InputSpec:
    """The InputSpec of `spec_json` text; KeyError/TypeError/ValueError when it is not one."""
    fields = json.loads(text)
    if not isinstance(fields, dict):
        raise TypeError("the input spec is not a JSON object")
    spec = InputSpec(**fields)
    if spec.task not in TASKS or spec.size < 1:
        raise ValueError(f"input spec task {spec.task!r}, size {spec.size}")
    return spec


def run_metadata(pred: Run) -> dict[str, str]:
    """The `mammo.*` metadata_props of a RUN's export: strings, JSON where structured."""
    checkpoint = pred.run_dir / "best.pt"
    return {
        "mammo.format": FORMAT,
        "mammo.spec": spec_json(pred.spec),
        "mammo.temperature": repr(pred.temperature),
        "mammo.threshold": repr(pred.threshold),
        "mammo.class_names": json.dumps(pred.class_names),
        "mammo.model": pred.model_name,
        "mammo.version": __version__,
        "mammo.run": str(pred.run_dir.resolve()),
        "mammo.checkpoint_sha256": file_sha256(checkpoint) if checkpoint.is_file() else "",
        "mammo.outputs": f"{LOGIT}: raw logit; {PROBABILITY}: sigmoid({LOGIT} / mammo.temperature)",
    }


def export_bytes(pred: Run, opset: int = OPSET) -> bytes:
    """The serialised ONNX model of a loaded RUN: graph (logit, calibrated probability) + metadata, checked."""
    import onnx
    import torch

    from mammo.models.efficientnet_lite import static_padding_copy

    class Calibrated(torch.nn.Module):
        """The network with its temperature: (logit, sigmoid(logit / T)) per image."""

        def __init__(self, net: torch.nn.Module, temperature: float) -> None:
            super().__init__()
            self.net, self.temperature = net, temperature

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logit = self.net(x).reshape(-1)
            return logit, torch.sigmoid(logit / self.temperature)

    # eval() on the wrapper too: the exporter restores the wrapper's mode afterwards, recursively, and a
    # wrapper left in training mode would switch the loaded run's dropout on for every later forward pass
    net = static_padding_copy(
        pred.model.cpu(), pred.spec.shape
    )  # a graph of convolutions only: faster in ORT
    model = Calibrated(net, pred.temperature).eval()
    dummy = torch.zeros(2, 1, *pred.spec.shape)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about the dynamic-padding convs' Python arithmetic
        torch.onnx.export(
            model,
            (dummy,),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT],
            output_names=[LOGIT, PROBABILITY],
            dynamic_axes={INPUT: {0: "batch"}, LOGIT: {0: "batch"}, PROBABILITY: {0: "batch"}},
        )
    proto = onnx.load_from_string(buffer.getvalue())
    proto.producer_name, proto.producer_version = "mammo", __version__
    proto.doc_string = f"mammo {pred.model_name} from {pred.run_dir}: calibrated P(malignant) of one view"
    onnx.helper.set_model_props(proto, run_metadata(pred))
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def check_export(pred: Run, data: bytes) -> float:
    """Largest |logit| difference of ONNX Runtime against PyTorch on a seeded batch of 2; RuntimeError past tolerance."""
    x = np.random.default_rng(0).normal(0, 1, (2, 1, *pred.spec.shape)).astype(np.float32)
    diff = float(np.max(np.abs(OnnxModel.from_bytes(data).logits(x) - pred.logits(x))))
    if not diff <= EXPORT_TOLERANCE:
        raise RuntimeError(f"ONNX export differs from PyTorch by {diff:.3g} in the logit; please report this")
    return diff


def export_run(
    run_dir: str | os.PathLike, out: str | os.PathLike | None = None, opset: int = OPSET
) -> tuple[Path, float]:
    """Export RUN/best.pt to `out` (default RUN/model.onnx), atomically; (path, max |logit| diff vs PyTorch)."""
    from mammo.predict.run import Run

    path = Path(out) if out is not None else Path(run_dir) / "model.onnx"
    if path.suffix.lower() != ".onnx":
        raise UserError(f"--out {path}: give a file name ending in .onnx")
    check_output_file(path)
    pred = Run.load(run_dir, device="cpu")
    data = export_bytes(pred, opset)
    diff = check_export(pred, data)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path, diff


def session_options(threads: int | None = None) -> onnxruntime.SessionOptions:
    """CPU session options: `threads` intra-op threads (default: the cores this process may use), no spinning.

    The cores it may use are its affinity mask capped by a container's CPU quota (`mammo.io.cores`).

    Spinning threads would burn the cores that the decoding workers need while they wait for the next batch.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or usable_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = (
        3  # errors only: warnings about unused initialisers are not the user's concern
    )
    return options


def _first_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "...") if len(text) > 200 else text or type(exc).__name__


@dataclass
class OnnxModel:
    """An exported RUN in an ONNX Runtime session, with the metadata predict needs."""

    session: onnxruntime.InferenceSession
    metadata: dict[str, str]
    source: str
    spec: InputSpec
    temperature: float  # calibration temperature fitted on validation
    threshold: float  # decision threshold on the calibrated probability, chosen on validation
    class_names: list[str]  # [negative, positive]
    data: bytes = field(default=b"", repr=False)  # the serialised model, so it can travel to cluster workers

    @classmethod
    def load(cls, path: str | os.PathLike, threads: int | None = None) -> OnnxModel:
        """Load an exported .onnx file; DataError (one line) when it is missing, damaged or not mammo's."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: ONNX model not found; {HINT}")
        return cls.from_bytes(path.read_bytes(), str(path), threads)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<memory>", threads: int | None = None) -> OnnxModel:
        """A session over serialised model bytes (an in-memory export, or a file's contents)."""
        import onnxruntime as ort

        try:
            session = ort.InferenceSession(data, session_options(threads), providers=["CPUExecutionProvider"])
        except (
            Exception
        ) as exc:  # ONNX Runtime raises its own types (InvalidProtobuf, Fail, ...) on bad files
            raise DataError(f"{source}: not a readable ONNX model ({_first_line(exc)}); {HINT}") from None
        metadata = dict(session.get_modelmeta().custom_metadata_map)
        if metadata.get("mammo.format") != FORMAT:
            raise DataError(f"{source}: an ONNX model without mammo's metadata (expected {FORMAT}); {HINT}")
        inputs = session.get_inputs()
        if [i.name for i in inputs] != [INPUT] or LOGIT not in [o.name for o in session.get_outputs()]:
            raise DataError(f"{source}: ONNX model lacks the {INPUT} input or {LOGIT} output; {HINT}")
        try:
            spec = spec_from_json(metadata["mammo.spec"])
            temperature = float(metadata["mammo.temperature"])
            threshold = float(metadata["mammo.threshold"])
            names = [str(n) for n in json.loads(metadata["mammo.class_names"])]
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(f"{source}: damaged mammo metadata ({_first_line(exc)}); {HINT}") from None
        return cls(session, metadata, source, spec, temperature, threshold, names, data)

    @property
    def task(self) -> str:
        """'whole' or 'roi': what the run was trained on."""
        return self.spec.task

    @property
    def model_name(self) -> str:
        """The registry name of the exported model."""
        return self.metadata.get("mammo.model", "unknown")

    @property
    def run(self) -> str:
        """Where the model came from: the RUN folder at export time."""
        return self.metadata.get("mammo.run", "")

    def preprocess(
        self, image: np.ndarray, box: tuple[float, float, float, float] | None = None
    ) -> np.ndarray:
        """A raw source image as the exported run's model input (`InputSpec.preprocess`)."""
        return self.spec.preprocess(image, box)

    def logits(self, batch: np.ndarray, tta: bool = False) -> np.ndarray:
        """Logits (B,) of a float32 (B, 1, H, W) batch; with tta the mean with the mirrored batch's."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if tta:
            both = self._run(np.concatenate([batch, np.ascontiguousarray(batch[..., ::-1])]))
            return (both[: len(batch)] + both[len(batch) :]) / 2
        return self._run(batch)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run([LOGIT], {INPUT: batch})[0], dtype=np.float32).reshape(-1)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities sigmoid(logit / T) in float64, as the PyTorch path computes them."""
        return probabilities(logits, self.temperature)

    def graph_probabilities(self, batch: np.ndarray) -> np.ndarray:
        """The graph's own `probability` output (what a server that reads only the graph gets)."""
        return np.asarray(self.session.run([PROBABILITY], {INPUT: batch})[0]).reshape(-1)
