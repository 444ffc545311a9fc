"""PyTorch DDP plumbing for `torchrun --nproc-per-node N -m mammo train ...` (a no-op in a single process).

Under torchrun (WORLD_SIZE > 1) the process group starts with nccl on CUDA and gloo on CPU; the train data is
sharded with DistributedSampler (class balance then comes from pos_weight in the loss, not from a weighted
sampler); validation predictions are gathered from every rank and deduplicated by sample index.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mammo.predict.infer import resolve_device


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: its rank, local rank (GPU index) and the number of processes."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and shows progress."""
        return self.rank == 0


def setup(requested_device: str) -> tuple[DistEnv, torch.device]:
    """Read torchrun's environment, start the process group when WORLD_SIZE > 1, return (env, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    env = DistEnv(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world)
    device = resolve_device(requested_device)
    if device.type == "cuda" and device.index is None:  # one GPU per local rank
        device = torch.device("cuda", env.local_rank % torch.cuda.device_count())
    if env.distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo", rank=env.rank, world_size=env.world_size
        )
    return env, device


def wrap(model: nn.Module, env: DistEnv, device: torch.device) -> nn.Module:
    """The model wrapped in DistributedDataParallel when distributed, else unchanged."""
    if not env.distributed:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def gather_predictions(
    indices: np.ndarray, logits: np.ndarray, labels: np.ndarray, env: DistEnv
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All ranks' (index, logit, label) combined, sorted by index, sampler-padding duplicates dropped."""
    if env.distributed:
        parts: list = [None] * env.world_size
        dist.all_gather_object(parts, (indices, logits, labels))
        indices = np.concatenate([p[0] for p in parts])
        logits = np.concatenate([p[1] for p in parts])
        labels = np.concatenate([p[2] for p in parts])
    _, first = np.unique(indices, return_index=True)
    return indices[first], logits[first], labels[first]


def barrier(env: DistEnv) -> None:
    """Wait for every rank (no-op in a single process)."""
    if env.distributed and dist.is_initialized():
        dist.barrier()


def sum_across(values: list[float], env: DistEnv) -> list[float]:
    """Element-wise sum of `values` over all ranks (unchanged in a single process)."""
    if not env.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.cpu().tolist()


def all_ok(ok: bool, env: DistEnv) -> bool:
    """True only when `ok` holds on every rank, so that all ranks stop together."""
    return sum_across([0.0 if ok else 1.0], env)[0] == 0


def cleanup(env: DistEnv) -> None:
    """Destroy the process group (call once at the end, also after an error)."""
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()
