"""Trunk outputs computed once per image and kept on disk: the cache a cached-trunk run trains on.

One float16 .npy per PREP image (and per mirrored image), in CACHE/<model>-<trunk digest>-<input side>/, named by
a digest of the image's resolved path, size and modification time: a re-prepared image is recomputed, the same
image reused by every fold, recipe and run that shares the trunk and input side. The trunk digest covers the
cut and the trunk's weights. Files are written atomically, so a killed build resumes where it stopped.
The forward runs in ONNX Runtime when it is installed (about 2.5x faster than PyTorch eager on CPU here), else
in PyTorch; both give the same numbers up to float rounding.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from mammo.datasets import load_prep_image
from mammo.io.atomic import atomic_path, write_json
from mammo.models.efficientnet_lite import static_padding_copy
from mammo.models.split import Cut, Trunk
from mammo.predict.onnx import session_options
from mammo.prep.dataset import normalise

ENGINES = ("onnx", "torch")
TORCH_BATCH = 4
REDUCE_BATCH = 64


def trunk_digest(net: nn.Module, cut: Cut, modules: Sequence[nn.Module]) -> str:
    """A short digest of the cut and the trunk's parameters and buffers (so other weights never share a cache)."""
    h = hashlib.sha1(repr(cut).encode())
    for m in modules:
        for name, t in m.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def image_key(path: Path) -> str:
    """A digest of the image's resolved path, byte size and modification time."""
    st = path.stat()
    return hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]


class TrunkCache:
    """Trunk outputs of PREP images at one input side: `build` fills in what is missing, `load` stacks them."""

    def __init__(
        self,
        root: str | os.PathLike,
        net: nn.Module,
        cut: Cut,
        model_name: str,
        size: int,
        mean: float,
        std: float,
        width: int | None = None,
        engine: str = "onnx",
    ) -> None:
        from mammo.models.split import trunk_modules

        if engine not in ENGINES:
            raise ValueError(f"engine {engine!r}: choose one of {', '.join(ENGINES)}")
        self.trunk = Trunk(net, cut).eval()
        self.size, self.width, self.mean, self.std = size, width, float(mean), float(std)
        self.engine = engine
        side = f"{size}" if width is None else f"{size}x{width}"
        digest = trunk_digest(net, cut, trunk_modules(net, cut))
        self.dir = Path(root) / f"{model_name}-{digest}-{side}"

    def file(self, path: Path, mirror: bool = False) -> Path:
        """Where the trunk output of `path` (or of its horizontal mirror) lives."""
        return self.dir / f"{image_key(path)}{'-m' if mirror else ''}.npy"

    def _input(self, path: Path, mirror: bool) -> np.ndarray:
        """The model input of one PREP image, as training reads it, mirrored left-right if asked."""
        x = normalise(load_prep_image(path, self.size, self.width), self.mean, self.std)
        return np.ascontiguousarray(x[:, :, ::-1]) if mirror else x

    def _onnx_session(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """A function running the trunk in ONNX Runtime on one (1, 1, H, W) input; None when that is not possible."""
        try:
            import onnxruntime as ort
        except ImportError:
            return None
        path = self.dir / "trunk.onnx"
        if not path.is_file():
            example = torch.zeros(1, 1, self.size, self.width or self.size)
            with warnings.catch_warnings(), atomic_path(path) as tmp:
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    static_padding_copy(self.trunk, example.shape[-2:]),  # convolutions only: faster in ORT
                    (example,),
                    str(tmp),
                    input_names=["x"],
                    output_names=["h"],
                    dynamo=False,
                )
        options = session_options(torch.get_num_threads())  # predict's: no spinning threads between images
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"x": x})[0]

    def build(
        self, paths: Sequence[Path], mirror: bool = False, log: Callable[[str], None] | None = None
    ) -> int:
        """Compute and store every missing trunk output of `paths` (and mirrors); return how many were computed."""
        todo = [
            (p, m)
            for p in paths
            for m in ((False, True) if mirror else (False,))
            if not self.file(p, m).is_file()
        ]
        if not todo:
            return 0
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = {
            "size": self.size,
            "width": self.width,
            "cut": vars(self.trunk.cut),
            "mean": self.mean,
            "std": self.std,
        }
        write_json(meta, self.dir / "cache.json")
        run = self._onnx_session() if self.engine == "onnx" else None
        batch = 1 if run is not None else TORCH_BATCH
        if log:
            log(
                f"trunk cache {self.dir.name}: computing {len(todo)} outputs ({'onnxruntime' if run else 'torch'})"
            )
        bar = tqdm(total=len(todo), desc=f"trunk cache {self.size}px", unit="image", leave=False)
        step = max(1, len(todo) // 10)
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            x = np.stack([self._input(p, m) for p, m in chunk])
            if run is not None:
                h = run(x)
            else:
                with torch.inference_mode():
                    h = self.trunk(torch.from_numpy(x).contiguous(memory_format=torch.channels_last)).numpy()
            for (p, m), out in zip(chunk, h, strict=True):
                with atomic_path(self.file(p, m)) as tmp, open(tmp, "wb") as f:
                    np.save(f, out.astype(np.float16))
            bar.update(len(chunk))
            done = start + len(chunk)
            if log and (done // step) != ((done - len(chunk)) // step) and done < len(todo):
                log(f"trunk cache {self.dir.name}: {done}/{len(todo)}")
        bar.close()
        return len(todo)

    def load_reduced(
        self,
        paths: Sequence[Path],
        tag: str,
        reduce: Callable[[np.ndarray], np.ndarray],
        mirror: bool = False,
    ) -> np.ndarray:
        """`reduce` (a fixed function of a batch of trunk outputs, e.g. frozen head + pooling) of each image,
        stored beside its trunk output under `tag` and read back next time: (N, ...) float32."""
        files = [self.dir / f"{image_key(p)}{'-m' if mirror else ''}-{tag}.npy" for p in paths]
        todo = [i for i, f in enumerate(files) if not f.is_file()]
        for start in range(0, len(todo), REDUCE_BATCH):
            chunk = todo[start : start + REDUCE_BATCH]
            out = reduce(np.stack([np.load(self.file(paths[i], mirror)) for i in chunk]))
            for i, v in zip(chunk, out, strict=True):
                with atomic_path(files[i]) as tmp, open(tmp, "wb") as f:
                    np.save(f, np.asarray(v, np.float32))
        return np.stack([np.load(f) for f in files]) if files else np.zeros((0,), np.float32)

    def load(self, paths: Sequence[Path], mirror: bool = False) -> np.ndarray:
        """The stored trunk outputs of `paths` (or their mirrors) as one float16 (N, C, H, W) array."""
        return np.stack([np.load(self.file(p, mirror)) for p in paths])
