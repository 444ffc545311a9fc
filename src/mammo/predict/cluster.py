"""predict on a Dask cluster: each worker reads, decodes, preprocesses and scores its files on ONNX Runtime.

The exported model travels, not the checkpoint: its bytes are scattered to the workers once and each worker
process builds one ONNX Runtime session from them on its first task and keeps it for the next ones (keyed
by the bytes' sha256, so a second model in the same workers gets its own). Only a logit per file comes
back; the calibrated probability is computed here, exactly as for a local run.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from mammo.errors import UserError
from mammo.io.cluster import cluster_map
from mammo.predict.files import Loaded, Source, load_source
from mammo.predict.onnx import OnnxModel

if TYPE_CHECKING:
    from distributed import Client

    from mammo.predict.backend import Scorer

# The worker process's models by sha256: loaded on a worker's first task, reused by every later one.
MODELS: dict[str, OnnxModel] = {}
_LOADING = threading.Lock()
Scored = tuple[
    Loaded, float | None, float
]  # the file's Loaded (no pixels), its logit or None, forward seconds


def check_scorer(pred: Scorer) -> OnnxModel:
    """The scorer as an exported model that can travel to the workers; UserError for a PyTorch one."""
    if not isinstance(pred, OnnxModel) or not pred.data:
        raise UserError(
            "--cluster scores on ONNX Runtime on the workers: drop --backend torch and --device cuda "
            "(the RUN's checkpoint is exported in memory), or give a .onnx file from `mammo export`"
        )
    return pred


def worker_model(key: str, data: bytes) -> OnnxModel:
    """This worker's session of the model with sha256 `key`, built from `data` on first use (one thread)."""
    with _LOADING:
        if key not in MODELS:
            MODELS[key] = OnnxModel.from_bytes(data, f"model {key[:12]}", threads=1)
        return MODELS[key]


def score_source(job: tuple[Source, bool], key: str, data: bytes) -> Scored:
    """Worker: read, decode and preprocess one source, then score it on this worker's session."""
    source, tta = job
    model = worker_model(key, data)
    loaded, _, _ = load_source(source, model.spec)
    if loaded.x is None:
        return loaded, None, 0.0
    started = time.perf_counter()
    logit = float(model.logits(loaded.x[None], tta=tta)[0])
    return _without_pixels(loaded), logit, time.perf_counter() - started


def _without_pixels(loaded: Loaded) -> Loaded:
    """The answer sent back: everything but the model input (its warning kept)."""
    return replace(loaded, x=None)


def _lost(job: tuple[Source, bool], reason: str) -> Scored:
    """The row of a file whose worker died on it every time it was tried."""
    source = job[0]
    return Loaded(None, reason, source.patient_id, source.side, source.view), None, 0.0


def cluster_scores(client: Client, pred: OnnxModel, sources: Sequence[Source], tta: bool) -> Iterator[Scored]:
    """Each source scored on the cluster, in input order; the model's bytes sent once to each worker."""
    key = hashlib.sha256(pred.data).hexdigest()
    data = client.scatter(pred.data, broadcast=True, hash=False)
    jobs = [(s, tta) for s in sources]
    yield from cluster_map(client, score_source, jobs, _lost, shared=(key, data))
