"""Optimiser and learning-rate schedule factories: AdamW/Adadelta/SGD with decay on weights only, warm-up + cosine."""

from __future__ import annotations

import math

import torch
from torch import nn

from mammo.train.config import TrainConfig


def lr_factor(step: int, warmup_steps: int, total_steps: int, kind: str) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine decay to 0 (or constant)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimiser; weight decay on weights only (not on biases and norm parameters)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, **cfg.optimizer_args)
    if cfg.optimizer == "adadelta":
        return torch.optim.Adadelta(groups, lr=cfg.lr, **{"rho": 0.95, "eps": 1e-7, **cfg.optimizer_args})
    return torch.optim.SGD(groups, lr=cfg.lr, **{"momentum": 0.9, "nesterov": True, **cfg.optimizer_args})


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule over the whole run: `cfg.warmup_epochs` of linear warm-up, then `cfg.scheduler`."""
    total = cfg.epochs * steps_per_epoch
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup, total, cfg.scheduler)
    )
