"""`mammo train`: fit a registered model on PREP, write RUN/ (config, metrics, best/last checkpoints, curves).

Single process or DDP under torchrun. Every epoch reseeds Python/NumPy/torch and the sampler from
(seed, epoch), so the same seed gives the same metrics on CPU and `--resume` from RUN/last.pt replays an
uninterrupted run. After training, the best weights get a calibration temperature and a decision threshold
fitted on validation, and rank 0 exports them to RUN/model.onnx (what predict scores with, so a fresh RUN needs
no in-memory export before its first result).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import (
    DistributedSampler,
    RandomSampler,
    SequentialSampler,
    WeightedRandomSampler,
)
from tqdm import tqdm

from mammo.datasets import PrepDataset
from mammo.errors import UserError
from mammo.io.atomic import check_output_dir, write_csv
from mammo.models.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from mammo.predict.infer import forward_logits, logits_from_loader
from mammo.prep.dataset import read_dataset_csv, read_prepare_json, split_rows
from mammo.seeding import reseed_generator, seed_everything
from mammo.stats.calibration import apply_temperature, fit_temperature
from mammo.stats.metrics import auc, binary_cross_entropy
from mammo.stats.threshold import choose_threshold
from mammo.track.hooks import TrainHooks, current
from mammo.train import ddp
from mammo.train.augment import Augmenter
from mammo.train.config import TrainConfig, read_yaml, resolve_config, save_config
from mammo.train.curves import write_curves
from mammo.train.loaders import cpu_count, loader_workers, make_loader
from mammo.train.optim import make_optimizer, make_scheduler
from mammo.train.record import METRIC_COLUMNS, TrainResult, preprocessing_record, write_model_onnx
from mammo.train.sampling import EpochTagged, class_weights

log = logging.getLogger(__name__)


@dataclass
class _State:
    """What --resume restores: completed epochs, best AUC and its epoch, epochs without improvement."""

    epoch: int = 0
    best_val_auc: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0


def freeze_prefix(model: nn.Module, layers: tuple[str, ...], count: int) -> int:
    """Freeze every parameter up to and including module `layers[count - 1]` (registration order); return how many.

    UserError when `count` exceeds the model's feature layers. 0 freezes nothing.
    """
    if count == 0:
        return 0
    if count > len(layers):
        raise UserError(f"config 'freeze': {count} exceeds the model's {len(layers)} feature layers")
    last = layers[count - 1]
    names = [n for n, _ in model.named_parameters()]
    inside = [i for i, n in enumerate(names) if n.startswith(last + ".")]
    end = (inside[-1] + 1) if inside else 0
    for _, p in list(model.named_parameters())[:end]:
        p.requires_grad_(False)
    return end


def _check_run_dir(out: Path, resume: bool) -> None:
    """--resume needs RUN/last.pt; a fresh run refuses to overwrite one."""
    last = out / "last.pt"
    if resume and not last.is_file():
        raise UserError(f"{last}: not found, nothing to resume; train without --resume first")
    if not resume and last.exists():
        raise UserError(
            f"{out}: already holds a run (last.pt); pass --resume to continue it or choose another --out"
        )


def train(
    prep: str | os.PathLike,
    out: str | os.PathLike,
    config_file: str | os.PathLike | None = None,
    overrides: Mapping[str, Any] | None = None,
    resume: bool = False,
) -> TrainResult | None:
    """Train on PREP into RUN (`out`); returns the result on rank 0 and None on other DDP ranks.

    Args:
        prep: PREP folder written by prepare.
        out: RUN folder for checkpoints (best.pt, last.pt), metrics and config.yaml.
        config_file: YAML of TrainConfig keys, over the code's and the model's defaults.
        overrides: TrainConfig keys over the YAML (None values = unset), as the command's flags.
        resume: continue from RUN/last.pt with RUN/config.yaml.

    Example:
        >>> from mammo.train import train
        >>> print(train("prep/whole512", "runs/lite0", overrides={"epochs": 20, "size": 512}).summary())
    """
    prep, out = Path(prep), Path(out)
    check_output_dir(out)  # a bad --out costs a second, not a built model
    _check_run_dir(out, resume)
    layers = [read_yaml(out / "config.yaml")] if resume else []
    if config_file is not None:
        layers.append(read_yaml(config_file))
    cfg = replace(resolve_config(layers, overrides), prep=str(prep.resolve()))
    df = read_dataset_csv(prep)
    train_rows, val_rows = split_rows(df, "train", prep), split_rows(df, "val", prep)
    env, device = ddp.setup(cfg.device)
    try:
        with current().training(out, cfg.to_dict(), prep, train_rows, val_rows, env.is_main) as hooks:
            return _Run(cfg, prep, out, train_rows, val_rows, env, device, hooks).fit(resume)
    finally:
        ddp.cleanup(env)


class _Run:
    """One training run: builds model, data and optimiser, then runs epochs, checkpoints and calibration."""

    def __init__(
        self,
        cfg: TrainConfig,
        prep: Path,
        out: Path,
        train_rows: pd.DataFrame,
        val_rows: pd.DataFrame,
        env: ddp.DistEnv,
        device: torch.device,
        hooks: TrainHooks,
    ) -> None:
        from mammo.models.registry import create_model, get_model_info

        if env.distributed and cfg.balance == "sampler":
            cfg = replace(cfg, balance="loss")  # a weighted sampler cannot shard; pos_weight balances instead
        self.cfg, self.prep, self.out, self.env, self.device = cfg, prep, out, env, device
        self.hooks = hooks
        info = get_model_info(cfg.model)
        self.size = int(cfg.size or info.input_size)
        self.mean, self.std = float(info.mean), float(info.std)
        self.prepare = read_prepare_json(prep)
        self.amp = cfg.amp and device.type == "cuda"
        self.workers = loader_workers(cfg, device)
        if device.type == "cpu":
            torch.set_num_threads(cpu_count())
        seed_everything(cfg.seed)
        self.model_args = {"input_size": self.size, **cfg.model_args}
        model = create_model(cfg.model, pretrained=cfg.pretrained, weights=cfg.weights, **self.model_args)
        model = model.to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        if cfg.freeze:
            freeze_prefix(model, info.feature_layers, cfg.freeze)
        self.model = model
        self.net = ddp.wrap(model, env, device)
        self._build_data(train_rows, val_rows)
        self.optimizer = make_optimizer(model, cfg)
        self.scheduler = make_scheduler(self.optimizer, cfg, self.steps_per_epoch)
        labels = train_rows["label"].astype(int).to_numpy()
        pos_weight = None
        if cfg.balance == "loss":
            pos_weight = torch.tensor([(labels == 0).sum() / max(1, (labels == 1).sum())], device=device)
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)

    def _build_data(self, train_rows: pd.DataFrame, val_rows: pd.DataFrame) -> None:
        """Train/val datasets, samplers and loaders (sharded under DDP, class-balanced if configured)."""
        cfg, env, device = self.cfg, self.env, self.device
        train_ds = PrepDataset(
            self.prep,
            train_rows,
            self.size,
            self.mean,
            self.std,
            Augmenter(cfg.augment, self.size),
            seed=cfg.seed,
            width=cfg.width,
        )
        self.val_ds = PrepDataset(self.prep, val_rows, self.size, self.mean, self.std, width=cfg.width)
        self.sampler_generator = torch.Generator()
        if env.distributed:
            inner = DistributedSampler(
                train_ds, num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=cfg.seed
            )
            val_sampler = DistributedSampler(
                self.val_ds, num_replicas=env.world_size, rank=env.rank, shuffle=False
            )
        elif cfg.balance == "sampler":
            inner = WeightedRandomSampler(
                class_weights(train_ds.labels).tolist(),
                num_samples=len(train_ds),
                replacement=True,
                generator=self.sampler_generator,
            )
            val_sampler = SequentialSampler(self.val_ds)
        else:
            inner = RandomSampler(train_ds, generator=self.sampler_generator)
            val_sampler = SequentialSampler(self.val_ds)
        self.train_sampler = EpochTagged(inner)
        drop_last = len(inner) > cfg.batch_size
        self.train_loader = make_loader(train_ds, cfg, self.train_sampler, self.workers, device, drop_last)
        self.val_loader = make_loader(self.val_ds, cfg, val_sampler, self.workers, device)
        batches = len(self.train_loader)
        self.steps_per_epoch = min(batches, cfg.max_train_batches) if cfg.max_train_batches else batches

    def _checkpoint(self, state: _State, **extra: Any) -> dict[str, Any]:
        """The contract checkpoint of the current weights."""
        return make_checkpoint(
            self.cfg.model,
            self.model_args,
            self.model.state_dict(),
            preprocessing_record(self.prepare, self.size, self.mean, self.std, self.cfg.width),
            epoch=state.epoch,
            best_val_auc=state.best_val_auc,
            config=self.cfg.to_dict(),
            trained_on={"device": self.device.type, "amp": self.amp},  # what config's auto/amp became
            **extra,
        )

    def _resume(self) -> tuple[_State, list[dict]]:
        """Restore model, optimiser, scheduler and progress from RUN/last.pt, and metrics rows up to it."""
        ckpt = load_checkpoint(self.out / "last.pt", map_location=self.device)
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        state = _State(**ckpt["train_state"])
        metrics = self.out / "metrics.csv"
        history = pd.read_csv(metrics).to_dict("records") if metrics.is_file() else []
        return state, [r for r in history if r["epoch"] <= state.epoch]

    def _train_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the (capped) training batches; returns (mean loss over all ranks, last lr)."""
        cfg, device, env = self.cfg, self.device, self.env
        self.net.train()
        total, count, lr = 0.0, 0, self.optimizer.param_groups[0]["lr"]
        bar = tqdm(
            total=self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            unit="batch",
            disable=not env.is_main,
            leave=False,
        )
        for step, (x, y, _) in enumerate(self.train_loader):
            if step >= self.steps_per_epoch:
                break
            logits = forward_logits(self.net, x, device, amp=self.amp)
            target = y.to(device, non_blocking=True)
            if cfg.label_smoothing:
                target = target * (1.0 - cfg.label_smoothing) + 0.5 * cfg.label_smoothing
            loss = self.loss_fn(logits, target)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip or math.inf)
            value = float(loss.item())
            if not ddp.all_ok(math.isfinite(value) and bool(torch.isfinite(norm)), env):
                bar.close()
                raise UserError(
                    f"training diverged: loss {value} (or its gradient) is not finite at epoch {epoch + 1}, "
                    f"step {step + 1}, lr {self.optimizer.param_groups[0]['lr']:.3g}; stopped, "
                    f"{self.out / 'last.pt'} keeps the last good epoch; try a lower --lr"
                )
            lr = self.optimizer.param_groups[0]["lr"]
            self.optimizer.step()
            self.scheduler.step()
            total += value * len(y)
            count += len(y)
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}")
        bar.close()
        total, count = ddp.sum_across([total, float(count)], self.env)
        return total / max(1.0, count), lr

    def _validate(self) -> tuple[np.ndarray, np.ndarray]:
        """Validation logits and labels of every sample (gathered over ranks, padding removed)."""
        logits, labels = logits_from_loader(self.model, self.val_loader, self.device)
        order = np.fromiter(
            iter(self.val_loader.sampler), dtype=np.int64
        )  # this rank's rows, in loader order
        _, logits, labels = ddp.gather_predictions(order, logits, labels, self.env)
        return logits, labels

    def fit(self, resume: bool) -> TrainResult | None:
        """Run the remaining epochs with early stopping, then calibrate the best checkpoint; rank 0 writes."""
        cfg, env, out = self.cfg, self.env, self.out
        started = time.time()
        state, history = self._resume() if resume else (_State(), [])
        if env.is_main:
            out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, out / "config.yaml")
        for row in history:  # a resumed run's earlier epochs, so the tracker holds every epoch
            self.hooks.epoch(row)
        stopped_early = cfg.patience is not None and state.bad_epochs >= cfg.patience
        for epoch in range(state.epoch, cfg.epochs):
            if stopped_early:
                break
            t0 = time.time()
            seed_everything(cfg.seed, epoch)
            reseed_generator(self.sampler_generator, cfg.seed, epoch, env.rank)
            self.train_sampler.set_epoch(epoch)
            train_loss, lr = self._train_epoch(epoch)
            logits, labels = self._validate()
            val_auc = auc(labels, logits)
            history.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": train_loss,
                    "val_loss": binary_cross_entropy(logits, labels),
                    "val_auc": val_auc,
                    "lr": lr,
                    "seconds": round(time.time() - t0, 3),
                }
            )
            improved = val_auc > state.best_val_auc
            state.epoch = epoch + 1
            if improved:
                state.best_val_auc, state.best_epoch, state.bad_epochs = val_auc, epoch + 1, 0
            else:
                state.bad_epochs += 1
            if env.is_main:
                write_csv(pd.DataFrame(history, columns=METRIC_COLUMNS), out / "metrics.csv")
                if improved:
                    save_checkpoint(out / "best.pt", self._checkpoint(state))
                save_checkpoint(
                    out / "last.pt",
                    self._checkpoint(
                        state,
                        optimizer=self.optimizer.state_dict(),
                        scheduler=self.scheduler.state_dict(),
                        train_state=vars(state).copy(),
                    ),
                )
                self.hooks.epoch(history[-1])
                log.info(
                    f"epoch {epoch + 1}/{cfg.epochs}: train loss {train_loss:.4f}, val loss "
                    f"{history[-1]['val_loss']:.4f}, val AUC {val_auc:.4f}, {history[-1]['seconds']:.0f} s"
                )
            stopped_early = cfg.patience is not None and state.bad_epochs >= cfg.patience
        # ending on the last epoch is no early stop
        stopped_early = stopped_early and state.epoch < cfg.epochs
        result = None
        if env.is_main:
            threshold, temperature, val_logits = self._calibrate()
            write_model_onnx(out)
            write_curves(pd.DataFrame(history, columns=METRIC_COLUMNS), out / "curves.png")
            result = TrainResult(
                out,
                cfg.model,
                state.epoch,
                state.best_epoch,
                state.best_val_auc,
                time.time() - started,
                stopped_early,
                threshold,
                temperature,
            )
            self.hooks.finished(vars(result), val_logits)
        ddp.barrier(env)
        return result

    def _calibrate(self) -> tuple[float, float, np.ndarray]:
        """Fit temperature and threshold on validation with the best weights; store both in best/last.pt.

        Returns them and the best weights' validation logits (in val row order, for the tracker's interval).
        """
        best = load_checkpoint(self.out / "best.pt")
        self.model.load_state_dict(best["state_dict"])
        loader = (
            self.val_loader
            if not self.env.distributed
            else make_loader(self.val_ds, self.cfg, SequentialSampler(self.val_ds), self.workers, self.device)
        )
        logits, labels = logits_from_loader(self.model, loader, self.device)
        temperature = fit_temperature(logits, labels)
        threshold = choose_threshold(apply_temperature(logits, temperature), labels)
        for name in ("best.pt", "last.pt"):
            ckpt = load_checkpoint(self.out / name)
            ckpt.update(threshold=float(threshold), temperature=float(temperature))
            save_checkpoint(self.out / name, ckpt)
        return threshold, temperature, logits
