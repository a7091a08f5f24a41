"""Distributed data-parallel (DDP) helpers: process-group set-up, all-reduce, unwrapping.

Internal to `bandsynth.nn.training`: nothing here is public API.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

__all__ = []  # internal to bandsynth.nn.training


@dataclass(frozen=True)
class DistInfo:
    """Rank, world size and local rank of this process (the defaults: not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owned: bool = False  # process group created by fit, destroyed at the end

    @property
    def active(self):
        """Whether more than one process takes part."""
        return self.world_size > 1


def setup_distributed(distributed, device):
    """Join (or create, under torchrun) the process group if ``distributed`` asks for it.

    ``distributed`` is True, False or "auto" (when ``WORLD_SIZE`` > 1); a group
    created here is marked ``owned``, for the caller to destroy.
    """
    env_world = int(os.environ.get("WORLD_SIZE", "1"))
    if distributed == "auto":
        wanted = env_world > 1
    elif isinstance(distributed, bool):
        wanted = distributed
    else:
        raise TypeError(f"distributed must be True, False or 'auto', got {distributed!r}")
    if not wanted:
        return DistInfo()
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError("distributed training requested but torch.distributed is not available")
    owned = False
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ and "MASTER_PORT" not in os.environ:
            raise RuntimeError("distributed training needs torchrun (MASTER_ADDR/MASTER_PORT are not set)")
        use_cuda = (device == "auto" and torch.cuda.is_available()) or (
            device != "auto" and torch.device(device).type == "cuda"
        )
        dist.init_process_group("nccl" if use_cuda else "gloo")
        owned = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, owned)


def all_reduce_sum(values, dist_info, device):
    """Sum the list of numbers ``values`` over all ranks (unchanged when not distributed)."""
    if not dist_info.active:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(tensor)
    return tensor.tolist()


def unwrap_model(model):
    """The module inside a `~torch.nn.parallel.DistributedDataParallel` wrapper (else ``model``)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
