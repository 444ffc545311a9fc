"""Full fine-tuning with the whole data set held in memory: the GPU recipe (`bench/real_accuracy.py gpu`).

Reading and resizing 16-bit PNGs every epoch starves a GPU. Here every image is read once, scaled to the input
side by the same `scale_input` that predict applies, and held as one int16 tensor (the uint16 pixel minus
32768: int16 is a full dtype on every device, uint16 is not) on the training device - 3,068 images at 640 px
are 2.5 GB. Each batch is gathered by index, augmented on the device (`augment_batch`: the flips, small affine
and intensity changes of the "mammo" recipe as batched torch ops), normalised, and run in channels_last under
bf16 autocast on CUDA (float32 on the CPU, where the same code runs the tests). A fixed number of epochs, the
last one kept, then a temperature and a threshold fitted on validation: `write_run` makes an ordinary RUN
that predict, explain, evaluate and export load.

`views="breast"` trains the two-view setting end to end: each step draws breasts (woman + side), scores one CC
and one MLO image of each with the one shared network, and trains the mean of the two logits on the breast's
label. That mean is the breast score `mammo.stats.breasts` computes at inference (a breast with one view uses
it twice: its score is that view's), so the saved network is an ordinary per-image model and
`mammo predict --aggregate breast` gives the score it was trained for. No input ever comes from the other breast.

Written by hand because no installed library holds a data set on the GPU with per-sample augmentation there
(MONAI's CacheDataset keeps decoded images but augments on the CPU per sample); imports neither MONAI nor
pydicom, so the recipe runs on a machine that has only torch, OpenCV, pandas and scikit-learn.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mammo.datasets import load_prep_image
from mammo.errors import UserError
from mammo.io.atomic import write_csv, write_json
from mammo.models.checkpoint import make_checkpoint, save_checkpoint
from mammo.predict.infer import resolve_device
from mammo.prep.dataset import read_prepare_json
from mammo.seeding import derive_seed, seed_everything
from mammo.stats.breasts import with_breast_keys
from mammo.stats.calibration import apply_temperature, fit_temperature
from mammo.stats.metrics import auc, binary_cross_entropy
from mammo.stats.threshold import choose_threshold
from mammo.train.config import TrainConfig, save_config
from mammo.train.curves import write_curves
from mammo.train.optim import make_optimizer, make_scheduler
from mammo.train.record import METRIC_COLUMNS, TrainResult, preprocessing_record, write_model_onnx
from mammo.train.sampling import class_weights

log = logging.getLogger(__name__)
VIEWS = ("image", "breast")
OFFSET = 32768  # uint16 pixel - OFFSET fits int16 exactly
EVAL_BATCH = 64
TWO_VIEWS = ("CC", "MLO")


@dataclass
class Bank:
    """PREP rows' images at one input size, held once as int16 (N, 1, H, W) on `device`, with their rows."""

    pixels: torch.Tensor
    rows: pd.DataFrame
    size: int
    width: int | None
    load_seconds: float

    @property
    def device(self) -> torch.device:
        """Where the pixels live."""
        return self.pixels.device

    @classmethod
    def load(
        cls,
        prep: Path,
        rows: pd.DataFrame,
        size: int,
        width: int | None = None,
        device: str | torch.device = "cpu",
        workers: int = 4,
    ) -> Bank:
        """Read every row's PREP image once (threads: OpenCV releases the GIL), scaled as predict scales it."""
        started = time.perf_counter()
        paths = [Path(prep) / p for p in rows["image"]]
        cols = width if width is not None else size
        pixels = np.empty((len(paths), 1, size, cols), np.int16)

        def one(i: int) -> None:
            x = load_prep_image(paths[i], size, width)  # float32 png16 / 65535, exactly as predict
            pixels[i] = (np.rint(x * 65535.0).astype(np.int32) - OFFSET).astype(np.int16)

        with ThreadPoolExecutor(max(1, workers)) as pool:
            list(pool.map(one, range(len(paths))))
        tensor = torch.from_numpy(pixels).to(device)
        return cls(tensor, rows.reset_index(drop=True), size, width, time.perf_counter() - started)

    def images(self, index: torch.Tensor) -> torch.Tensor:
        """float32 (B, 1, H, W) in [0, 1] of the rows at `index`: png16 / 65535, the numbers predict feeds."""
        return (self.pixels[index].float() + OFFSET) / 65535.0

    def labels(self) -> np.ndarray:
        """Integer labels of the rows."""
        return self.rows["label"].astype(int).to_numpy()


def augment_batch(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """The "mammo" augmentation on a (B, 1, H, W) batch in [0, 1], on its device, parameters drawn from `rng`.

    Per sample: horizontal and vertical flips (p 0.5 each), an affine with p 0.7 (rotation +-10 degrees, scale
    0.9-1.1, shift +-5 %, zeros outside), gamma 0.8-1.25 with p 0.3, intensity x (1 +- 0.1) with p 0.3. The
    parameters come from `rng` on the CPU, so a seed gives the same augmentation on every device.
    """
    b = x.shape[0]
    dev = x.device

    def draw(p: float) -> torch.Tensor:
        return torch.from_numpy(rng.random(b) < p).to(dev)[:, None, None, None]

    x = torch.where(draw(0.5), x.flip(-1), x)
    x = torch.where(draw(0.5), x.flip(-2), x)
    affine = rng.random(b) < 0.7
    if affine.any():
        angle = np.where(affine, np.radians(rng.uniform(-10, 10, b)), 0.0)
        scale = np.where(affine, rng.uniform(0.9, 1.1, b), 1.0)
        shift = np.where(affine[:, None], rng.uniform(-0.1, 0.1, (b, 2)), 0.0)  # 5 % of the side in [-1, 1]
        cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
        theta = np.stack([np.stack([cos, -sin, shift[:, 0]], 1), np.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = nn.functional.affine_grid(
            torch.as_tensor(theta, dtype=x.dtype, device=dev), list(x.shape), align_corners=False
        )
        moved = nn.functional.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
        x = torch.where(torch.from_numpy(affine).to(dev)[:, None, None, None], moved, x)
    gamma = np.where(rng.random(b) < 0.3, rng.uniform(0.8, 1.25, b), 1.0)
    x = x.clamp(0.0, 1.0) ** torch.as_tensor(gamma, dtype=x.dtype, device=dev)[:, None, None, None]
    gain = np.where(rng.random(b) < 0.3, 1.0 + rng.uniform(-0.1, 0.1, b), 1.0)
    return x * torch.as_tensor(gain, dtype=x.dtype, device=dev)[:, None, None, None]


def breast_units(rows: pd.DataFrame) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Per breast (woman + side): (indices of its CC images, of its MLO images) and the breast's label (max).

    A breast lacking one of the two views uses the other for both (its score is then that view's); a breast
    with neither CC nor MLO, or an image without a side, is its own unit of one image.
    """
    keyed = with_breast_keys(rows.reset_index(drop=True))
    labels = keyed["label"].astype(int).to_numpy()
    units, unit_labels = [], []
    for (woman, side), group in keyed.groupby(["woman", "breast_side"], sort=True):
        idx = group.index.to_numpy()
        if not woman or not side:
            units += [(np.array([i]), np.array([i])) for i in idx]
            unit_labels += [labels[i] for i in idx]
            continue
        cc = idx[group["breast_view"].to_numpy() == TWO_VIEWS[0]]
        mlo = idx[group["breast_view"].to_numpy() == TWO_VIEWS[1]]
        if len(cc) == 0 and len(mlo) == 0:
            cc = mlo = idx
        units.append((cc if len(cc) else mlo, mlo if len(mlo) else cc))
        unit_labels.append(int(labels[idx].max()))
    return units, np.array(unit_labels, int)


def epoch_order(labels: np.ndarray, cfg: TrainConfig, epoch: int) -> np.ndarray:
    """This epoch's draw of units: class-balanced with replacement ('sampler'), else a permutation."""
    g = torch.Generator().manual_seed(derive_seed(cfg.seed, epoch, 0, 1))
    if cfg.balance == "sampler":
        weights = torch.as_tensor(class_weights(labels))
        return torch.multinomial(weights, len(labels), replacement=True, generator=g).numpy()
    return torch.randperm(len(labels), generator=g).numpy()


@dataclass
class Timer:
    """Seconds and images per phase; in training, host seconds preparing batches vs in the step (synchronised)."""

    phases: dict[str, dict[str, float]] = field(default_factory=dict)
    utilisation: list[float] = field(default_factory=list)

    def add(self, phase: str, images: int, seconds: float, **parts: float) -> None:
        """Count `images` and `seconds` (and named parts) into `phase`."""
        p = self.phases.setdefault(phase, {"images": 0, "seconds": 0.0})
        p["images"] += images
        p["seconds"] += seconds
        for k, v in parts.items():
            p[k] = p.get(k, 0.0) + v

    def sample_utilisation(self, device: torch.device) -> None:
        """The GPU's own busy percentage (NVML through torch), when the driver library is there."""
        if device.type != "cuda":
            return
        try:
            self.utilisation.append(float(torch.cuda.utilization(device)))
        except Exception:  # no NVML (pynvml) here: the step-time fraction below still says it
            return

    def summary(self) -> dict[str, Any]:
        """Per phase: images, seconds, images/s; training also the fraction of time inside the step."""
        out: dict[str, Any] = {}
        for name, p in self.phases.items():
            block = {
                "images": int(p["images"]),
                "seconds": round(p["seconds"], 3),
                "images_per_s": round(p["images"] / p["seconds"], 2) if p["seconds"] > 0 else None,
            }
            if "step_seconds" in p:
                busy = p["step_seconds"] / max(1e-9, p["step_seconds"] + p["batch_seconds"])
                block["step_fraction"] = round(busy, 4)
                block["batch_seconds"] = round(p["batch_seconds"], 3)
            out[name] = block
        if self.utilisation:
            out["gpu_utilisation_percent_mean"] = round(float(np.mean(self.utilisation)), 1)
        return out


def _sync(device: torch.device) -> None:
    """Wait for the device's queued work (so host timings measure it); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, amp: bool) -> Any:
    """bf16 autocast on CUDA when `amp`, else a context that changes nothing."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


def bank_logits(
    model: nn.Module,
    bank: Bank,
    index: np.ndarray,
    mean: float,
    std: float,
    timer: Timer | None = None,
    phase: str = "score",
) -> np.ndarray:
    """float64 logits (N,) of `bank` rows at `index` in eval mode, in float32 (TF32 convolutions on CUDA)."""
    model.eval()
    out = []
    started = time.perf_counter()
    memory = torch.channels_last if bank.device.type == "cuda" else torch.contiguous_format
    with torch.no_grad():
        for start in range(0, len(index), EVAL_BATCH):
            idx = torch.as_tensor(index[start : start + EVAL_BATCH], device=bank.device)
            x = ((bank.images(idx) - mean) / std).contiguous(memory_format=memory)
            out.append(model(x).float().reshape(-1).cpu().numpy())
    _sync(bank.device)
    if timer is not None:
        timer.add(phase, len(index), time.perf_counter() - started)
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


@dataclass
class Fitted:
    """A trained network with its history, calibration and timings (not yet written as a RUN)."""

    model: nn.Module
    cfg: TrainConfig
    model_args: dict[str, Any]
    views: str
    history: list[dict[str, Any]]
    temperature: float
    threshold: float
    val_logits: np.ndarray
    timer: Timer
    seconds: float


def build_model(cfg: TrainConfig, size: int, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """The registered model with its pretrained weights at `size`, on `device` (channels_last on CUDA)."""
    from mammo.models.registry import create_model

    args = {"input_size": size, **cfg.model_args}
    model = create_model(cfg.model, pretrained=cfg.pretrained, weights=cfg.weights, **args).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model, args


def fit(
    cfg: TrainConfig,
    bank: Bank,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    views: str = "image",
    say: Callable[[str], None] | None = None,
) -> Fitted:
    """Fine-tune every layer on `bank[train_idx]` for cfg.epochs, calibrate on `bank[val_idx]`; the last epoch kept.

    `views="image"`: units are images; `views="breast"`: units are breasts, one CC and one MLO image each, the
    loss on the mean of their two logits (see the module docstring). Batches hold cfg.batch_size images.
    """
    from mammo.models.registry import get_model_info

    if views not in VIEWS:
        raise UserError(f"views {views!r}: choose one of {', '.join(VIEWS)}")
    say = say or log.info
    device = bank.device
    info = get_model_info(cfg.model)
    mean, std = float(info.mean), float(info.std)
    seed_everything(cfg.seed)
    model, model_args = build_model(cfg, bank.size, device)
    train_rows = bank.rows.iloc[train_idx].reset_index(drop=True)
    if views == "breast":
        units, unit_labels = breast_units(train_rows)
        per_unit = 2
    else:
        units = [(np.array([i]), np.array([i])) for i in range(len(train_rows))]
        unit_labels, per_unit = train_rows["label"].astype(int).to_numpy(), 1
    per_batch = max(1, cfg.batch_size // per_unit)
    steps = max(1, len(units) // per_batch)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, steps)
    pos_weight = None
    if cfg.balance == "loss":
        share = unit_labels.mean() if len(unit_labels) else 0.5
        pos_weight = torch.tensor([(1 - share) / max(share, 1e-9)], device=device)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    y_val = bank.labels()[val_idx]
    timer, history = Timer(), []
    memory = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    started = time.perf_counter()
    val_logits = np.zeros(0)
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        seed_everything(cfg.seed, epoch)
        order = epoch_order(unit_labels, cfg, epoch)
        rng = np.random.default_rng(derive_seed(cfg.seed, epoch, 3))
        model.train()
        total = torch.zeros((), device=device)
        count, lr = 0, optimizer.param_groups[0]["lr"]
        batch_s = step_s = 0.0
        images = 0
        for s in range(steps):
            tb = time.perf_counter()
            chosen = order[s * per_batch : (s + 1) * per_batch]
            picks = [
                train_idx[units[u][v][rng.integers(len(units[u][v]))]]
                for u in chosen
                for v in range(per_unit)
            ]
            idx = torch.as_tensor(np.array(picks), device=device)
            images += len(picks)
            x = bank.images(idx)
            if cfg.augment != "none":
                x = augment_batch(x, rng)
            x = ((x - mean) / std).contiguous(memory_format=memory)
            target = torch.as_tensor(unit_labels[chosen], dtype=torch.float32, device=device)
            if cfg.label_smoothing:
                target = target * (1.0 - cfg.label_smoothing) + 0.5 * cfg.label_smoothing
            _sync(device)
            ts = time.perf_counter()
            with _autocast(device, cfg.amp):
                logits = model(x).float().reshape(len(chosen), per_unit).mean(dim=1)
                loss = loss_fn(logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            total += loss.detach() * len(chosen)
            count += len(chosen)
            _sync(device)
            step_s += time.perf_counter() - ts
            batch_s += ts - tb
            if s % 10 == 0:
                timer.sample_utilisation(device)
        value = float(total.item()) / max(1, count)
        if not math.isfinite(value):
            raise UserError(f"training diverged: loss {value} at epoch {epoch + 1}; try a lower --lr")
        train_seconds = time.perf_counter() - t0
        timer.add("train", images, train_seconds, step_seconds=step_s, batch_seconds=batch_s)
        val_logits = bank_logits(model, bank, val_idx, mean, std, timer, "validate")
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": value,
                "val_loss": binary_cross_entropy(val_logits, y_val),
                "val_auc": auc(y_val, val_logits),
                "lr": lr,
                "seconds": round(time.perf_counter() - t0, 3),
            }
        )
        say(
            f"epoch {epoch + 1}/{cfg.epochs}: loss {value:.4f}, val AUC {history[-1]['val_auc']:.4f}, "
            f"{images / train_seconds:.1f} img/s in training, {step_s / max(train_seconds, 1e-9):.0%} in the step"
        )
    temperature = fit_temperature(val_logits, y_val)
    threshold = choose_threshold(apply_temperature(val_logits, temperature), y_val)
    return Fitted(
        model,
        cfg,
        model_args,
        views,
        history,
        float(temperature),
        float(threshold),
        val_logits,
        timer,
        time.perf_counter() - started,
    )


def write_run(fitted: Fitted, prep: Path, out: Path, width: int | None = None) -> TrainResult:
    """RUN/ from a fitted network: config.yaml, metrics.csv, best.pt = last.pt (the last epoch), model.onnx,
    curves.png, timings.json."""
    from mammo.models.registry import get_model_info

    cfg = fitted.cfg
    info = get_model_info(cfg.model)
    size = int(fitted.model_args["input_size"])
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    frame = pd.DataFrame(fitted.history, columns=METRIC_COLUMNS)
    write_csv(frame, out / "metrics.csv")
    last_auc = float(fitted.history[-1]["val_auc"]) if fitted.history else float("nan")
    pre = preprocessing_record(read_prepare_json(prep), size, float(info.mean), float(info.std), width)
    state = {k: v.float() if v.is_floating_point() else v for k, v in fitted.model.state_dict().items()}
    ckpt = make_checkpoint(
        cfg.model,
        fitted.model_args,
        state,
        pre,
        epoch=cfg.epochs,
        best_val_auc=last_auc,
        config=cfg.to_dict(),
        threshold=fitted.threshold,
        temperature=fitted.temperature,
        recipe={"kind": "in-memory full fine-tune", "views": fitted.views, "amp": bool(cfg.amp)},
    )
    save_checkpoint(out / "best.pt", ckpt)
    save_checkpoint(out / "last.pt", ckpt)
    write_model_onnx(out)
    write_curves(frame, out / "curves.png")
    write_json(fitted.timer.summary(), out / "timings.json")
    return TrainResult(
        out,
        cfg.model,
        cfg.epochs,
        cfg.epochs,
        last_auc,
        fitted.seconds,
        False,
        fitted.threshold,
        fitted.temperature,
    )


def device_for(name: str) -> torch.device:
    """The training device (`resolve_device`), with TF32 matmuls allowed on CUDA (float32 scoring stays fast)."""
    device = resolve_device(name)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return device
