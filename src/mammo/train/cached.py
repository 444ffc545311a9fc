"""Cached-trunk training: the frozen trunk's outputs computed once per image, only the rest of the network trained.

The trunk (`freeze` feature layers; `mammo.models.split`) keeps its pretrained weights and runs in eval mode, so
its output for an image never changes: `TrunkCache` stores it once and every epoch, fold and recipe reads it
back, which makes 512-640 px affordable on a few CPU cores. The rest trains for a fixed number of epochs (no
early stopping: the last epoch is best.pt), then a temperature and a threshold are fitted on validation, as in
`mammo train`. RUN is an ordinary run: best.pt holds the whole network (trunk weights + trained rest) in the
checkpoint format that predict, explain, evaluate and report load; nothing there knows about the cache.
Augmentation is limited to what a cache can hold: the left-right mirror of each image (`mirror`), drawn with
probability 1/2 per sample and epoch.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mammo.errors import UserError
from mammo.io.atomic import check_output_dir, write_csv
from mammo.models.checkpoint import load_run, make_checkpoint, save_checkpoint
from mammo.models.split import Rest, make_cut
from mammo.predict.run import InputSpec
from mammo.prep.dataset import read_dataset_csv, read_prepare_json, split_rows
from mammo.seeding import derive_seed, seed_everything
from mammo.stats.calibration import apply_temperature, fit_temperature
from mammo.stats.metrics import auc, binary_cross_entropy
from mammo.stats.threshold import choose_threshold
from mammo.track.hooks import TrainHooks, current
from mammo.train.cache import TrunkCache
from mammo.train.config import TrainConfig, read_yaml, resolve_config, save_config
from mammo.train.curves import write_curves
from mammo.train.loop import METRIC_COLUMNS, TrainResult, preprocessing_record, write_model_onnx
from mammo.train.optim import make_optimizer, make_scheduler
from mammo.train.sampling import class_weights

log = logging.getLogger(__name__)
EVAL_BATCH = 64


def _eval_batches(fn: Callable[[torch.Tensor], torch.Tensor], feats: np.ndarray) -> np.ndarray:
    """`fn` over float32 batches of `feats` without gradients, concatenated as a float32 array."""
    out = []
    with torch.no_grad():
        for start in range(0, len(feats), EVAL_BATCH):
            out.append(
                fn(torch.from_numpy(feats[start : start + EVAL_BATCH].astype(np.float32))).float().numpy()
            )
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def cached_logits(rest: Rest, feats: np.ndarray) -> np.ndarray:
    """Float32 logits (N,) of the rest on cached trunk outputs, in eval mode without gradients."""
    rest.eval()
    return _eval_batches(rest, feats).reshape(-1)


def pooled_features(rest: Rest, feats: np.ndarray) -> np.ndarray:
    """The fixed pooled head features (N, C) of cached trunk outputs (see `Rest.pooled`), in eval mode."""
    rest.eval()
    return _eval_batches(rest.pooled, feats)


def _order(labels: np.ndarray, cfg: TrainConfig, epoch: int) -> np.ndarray:
    """This epoch's sample order: class-balanced draws with replacement ('sampler') or a permutation."""
    g = torch.Generator().manual_seed(derive_seed(cfg.seed, epoch, 0, 1))
    if cfg.balance == "sampler":
        weights = torch.as_tensor(class_weights(labels))
        return torch.multinomial(weights, len(labels), replacement=True, generator=g).numpy()
    return torch.randperm(len(labels), generator=g).numpy()


def _batches(n: int, batch_size: int) -> list[slice]:
    """Batch slices of an epoch, the last one dropped when it is a short remainder of a longer epoch."""
    stops = list(range(batch_size, n + 1, batch_size)) or [n]
    return [slice(s - min(batch_size, s), s) for s in stops]


class _CachedRun:
    """One cached-trunk run: model, cut, cached features of train and val, optimiser; `fit` writes RUN."""

    def __init__(
        self,
        cfg: TrainConfig,
        prep: Path,
        out: Path,
        cache_root: Path,
        mirror: bool,
        engine: str,
        say: Callable[[str], None],
        head_norm: bool = True,
    ) -> None:
        from mammo.models.registry import create_model, get_model_info

        if cfg.freeze < 1:
            raise UserError(
                "a cached-trunk run needs --freeze >= 1 (the feature layers kept in the cached trunk)"
            )
        self.cfg, self.prep, self.out, self.mirror, self.say = cfg, prep, out, mirror, say
        info = get_model_info(cfg.model)
        self.size = int(cfg.size or info.input_size)
        self.mean, self.std = float(info.mean), float(info.std)
        seed_everything(cfg.seed)
        self.model_args = {"input_size": self.size, **cfg.model_args}
        self.model = create_model(
            cfg.model, pretrained=cfg.pretrained, weights=cfg.weights, **self.model_args
        )
        cut = make_cut(self.model, info.feature_layers, cfg.freeze, cfg.model)
        self.rest = Rest(self.model, cut, head_norm)
        self.cache = TrunkCache(
            cache_root, self.model, cut, cfg.model, self.size, self.mean, self.std, cfg.width, engine
        )
        self.recipe = {
            "kind": "cached-trunk",
            "freeze": cfg.freeze,
            "head_norm": "trained" if head_norm else "pretrained",
            "mirror": mirror,
            "engine": engine,
        }

    def _pooled_tag(self) -> str:
        """A digest of what makes the pooled vectors: the head's batch norm and the pooling."""
        h = hashlib.sha1(repr(self.model._avg_pooling).encode())
        h.update(str(getattr(self.model._avg_pooling, "fraction", "")).encode())
        for t in self.model._bn1.state_dict().values():
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return "pool-" + h.hexdigest()[:10]

    def _features(
        self, rows: pd.DataFrame, mirror: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(trunk outputs, their mirrors or None, labels) of `rows`, computing what the cache lacks.

        When nothing before the classifier trains, the pooled vectors (N, C, 1, 1) instead, kept in the cache too.
        """
        paths = [self.prep / p for p in rows["image"]]
        self.cache.build(paths, mirror, log=self.say)
        labels = rows["label"].astype(int).to_numpy()
        if self.rest.fixed_until_classifier:
            tag = self._pooled_tag()

            def pool(maps: np.ndarray) -> np.ndarray:
                return pooled_features(self.rest, maps)

            vectors = self.cache.load_reduced(paths, tag, pool)[:, :, None, None]
            mirrored = None
            if mirror:
                mirrored = self.cache.load_reduced(paths, tag, pool, mirror=True)[:, :, None, None]
            return vectors, mirrored, labels
        feats = self.cache.load(paths)
        mirrored = self.cache.load(paths, mirror=True) if mirror else None
        return feats, mirrored, labels

    def _checkpoint(self, epoch: int, val_auc: float, **extra: Any) -> dict[str, Any]:
        """The contract checkpoint of the whole network (trunk + trained rest)."""
        pre = preprocessing_record(
            read_prepare_json(self.prep), self.size, self.mean, self.std, self.cfg.width
        )
        return make_checkpoint(
            self.cfg.model,
            self.model_args,
            self.model.state_dict(),
            pre,
            epoch=epoch,
            best_val_auc=val_auc,
            config=self.cfg.to_dict(),
            recipe=dict(self.recipe, cache=str(self.cache.dir)),
            trained_on={"device": "cpu", "amp": False},  # the cached recipe trains on the CPU in float32
            **extra,
        )

    def fit(self, train_rows: pd.DataFrame, val_rows: pd.DataFrame, hooks: TrainHooks) -> TrainResult:
        """Train for cfg.epochs on the cache, calibrate on validation, write RUN (and tell `hooks`); the result."""
        cfg, out = self.cfg, self.out
        started = time.time()
        x_train, m_train, y_train = self._features(train_rows, self.mirror)  # mirrors: training only
        x_val, _, y_val = self._features(val_rows)
        # with nothing trained before the classifier, `_features` gave pooled vectors: train the classifier on them
        forward: Callable[[torch.Tensor], torch.Tensor] = self.rest
        if self.rest.fixed_until_classifier:
            forward = self.rest.classify

        def step(x: torch.Tensor) -> torch.Tensor:
            return forward(x.flatten(1) if forward is not self.rest else x)

        batches = _batches(len(y_train), cfg.batch_size)
        optimizer = make_optimizer(self.rest, cfg)
        scheduler = make_scheduler(optimizer, cfg, len(batches))
        pos_weight = None
        if cfg.balance == "loss":
            pos_weight = torch.tensor(
                [(y_train == 0).sum() / max(1, (y_train == 1).sum())], dtype=torch.float32
            )
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        history: list[dict[str, Any]] = []
        val_logits = np.zeros(0, np.float32)
        for epoch in range(cfg.epochs):
            t0 = time.time()
            seed_everything(cfg.seed, epoch)
            order = _order(y_train, cfg, epoch)
            flip = np.random.default_rng(derive_seed(cfg.seed, epoch, 2)).random(len(order)) < 0.5
            self.rest.train()
            total, count, lr = 0.0, 0, optimizer.param_groups[0]["lr"]
            for part in batches:
                idx = order[part]
                x = x_train[idx]
                if m_train is not None:
                    x = np.where(flip[part][:, None, None, None], m_train[idx], x)
                target = torch.as_tensor(y_train[idx], dtype=torch.float32)
                if cfg.label_smoothing:
                    target = target * (1.0 - cfg.label_smoothing) + 0.5 * cfg.label_smoothing
                loss = loss_fn(step(torch.from_numpy(x.astype(np.float32))).reshape(-1), target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.rest.parameters(), cfg.grad_clip or math.inf)
                value = float(loss.item())
                if not math.isfinite(value):
                    raise UserError(f"training diverged: loss {value} at epoch {epoch + 1}; try a lower --lr")
                lr = optimizer.param_groups[0]["lr"]
                optimizer.step()
                scheduler.step()
                total, count = total + value * len(idx), count + len(idx)
            self.rest.eval()
            val_logits = _eval_batches(step, x_val).reshape(-1)
            history.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": total / max(1, count),
                    "val_loss": binary_cross_entropy(val_logits, y_val),
                    "val_auc": auc(y_val, val_logits),
                    "lr": lr,
                    "seconds": round(time.time() - t0, 3),
                }
            )
            write_csv(pd.DataFrame(history, columns=METRIC_COLUMNS), out / "metrics.csv")
            hooks.epoch(history[-1])
            log.info(
                f"epoch {epoch + 1}/{cfg.epochs}: train loss {history[-1]['train_loss']:.4f}, "
                f"val AUC {history[-1]['val_auc']:.4f}"
            )
        temperature = fit_temperature(val_logits, y_val)
        threshold = choose_threshold(apply_temperature(val_logits, temperature), y_val)
        last_auc = float(history[-1]["val_auc"])
        calibration = {"threshold": float(threshold), "temperature": float(temperature)}
        state = {"epoch": cfg.epochs, "best_val_auc": last_auc, "best_epoch": cfg.epochs, "bad_epochs": 0}
        save_checkpoint(out / "best.pt", self._checkpoint(cfg.epochs, last_auc, **calibration))
        save_checkpoint(
            out / "last.pt",
            self._checkpoint(
                cfg.epochs,
                last_auc,
                **calibration,
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                train_state=state,
            ),
        )
        write_model_onnx(out)
        write_curves(pd.DataFrame(history, columns=METRIC_COLUMNS), out / "curves.png")
        result = TrainResult(
            out,
            cfg.model,
            cfg.epochs,
            cfg.epochs,
            last_auc,
            time.time() - started,
            False,
            threshold,
            temperature,
        )
        hooks.finished(vars(result), val_logits)
        return result


def train_cached(
    prep: str | os.PathLike,
    out: str | os.PathLike,
    cache: str | os.PathLike,
    overrides: Mapping[str, Any] | None = None,
    config_file: str | os.PathLike | None = None,
    mirror: bool = False,
    engine: str = "onnx",
    say: Callable[[str], None] | None = None,
    head_norm: bool = True,
) -> TrainResult:
    """Train the rest of PREP's model on cached trunk outputs (under `cache`) into RUN `out`, a fixed epoch count.

    `overrides` are train config keys (as `mammo train` flags); `freeze` sets the cut. Patience is ignored: the
    run always trains cfg.epochs epochs and keeps the last. `head_norm=False` keeps the head's batch norm
    pretrained too; with the head conv cached and a pooling without weights only the classifier then trains, on
    pooled vectors computed once per image (the cheap end of the recipe).
    """
    prep, out = Path(prep), Path(out)
    check_output_dir(out)
    if (out / "last.pt").exists():
        raise UserError(f"{out}: already holds a run (last.pt); choose another --out")
    layers = [read_yaml(config_file)] if config_file is not None else []
    cfg = replace(resolve_config(layers, overrides), prep=str(prep.resolve()), patience=None)
    df = read_dataset_csv(prep)
    train_rows, val_rows = split_rows(df, "train", prep), split_rows(df, "val", prep)
    if cfg.device == "cuda":
        raise UserError("a cached-trunk run trains on the CPU; use --device cpu or auto")
    run = _CachedRun(cfg, prep, out, Path(cache), mirror, engine, say or log.info, head_norm)
    with current().training(out, cfg.to_dict(), prep, train_rows, val_rows) as hooks:
        return run.fit(train_rows, val_rows, hooks)


def score_cached(
    run: str | os.PathLike,
    prep: str | os.PathLike,
    rows: pd.DataFrame,
    cache: str | os.PathLike,
    engine: str = "onnx",
    say: Callable[[str], None] | None = None,
) -> np.ndarray:
    """Calibrated logits (logit / temperature) of RUN's best.pt on `rows` of PREP, its trunk read from `cache`.

    The same numbers as running the whole network on the images (`mammo.evaluate.cv.run_scores`), without
    recomputing the trunk for images the cache already holds.
    """
    from mammo.models.registry import get_model_info

    model, ckpt = load_run(run, which="best")
    name, cfg = ckpt["model"]["name"], ckpt.get("config") or {}
    info = get_model_info(name)
    spec = InputSpec.from_checkpoint(ckpt)
    cut = make_cut(model, info.feature_layers, int(cfg.get("freeze") or 0), name)
    store = TrunkCache(cache, model, cut, name, spec.size, spec.mean, spec.std, spec.width, engine)
    paths = [Path(prep) / p for p in rows["image"]]
    store.build(paths, log=say)
    logits = cached_logits(Rest(model, cut), store.load(paths))
    return logits / float(ckpt.get("temperature", 1.0))
