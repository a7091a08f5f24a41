"""Randomness of the data: seeds, the per-epoch sampler and per-sample augmentation.

Every draw is keyed on ``seed`` and the position in the run (epoch, step,
rank), never on how many draws a process has made, so a resumed run repeats
them exactly.  Internal to `bandsynth.nn.training`: nothing here is public API.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = []  # internal to bandsynth.nn.training


def derive_seed(*keys):
    """A 63-bit seed that depends on every key (numpy SeedSequence hashing)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


class ShardSampler(Sampler):
    """Epoch permutation from ``(seed, epoch)``, padded and split across ranks like DistributedSampler."""

    def __init__(self, n, *, seed, epoch, rank=0, world_size=1, shuffle=True, skip=0):
        self.n, self.seed, self.epoch = n, seed, epoch
        self.rank, self.world_size, self.shuffle, self.skip = rank, world_size, shuffle, skip

    def indices(self):
        """This rank's share of the epoch's order, before ``skip``."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, 0, self.epoch))
            order = torch.randperm(self.n, generator=generator).tolist()
        else:
            order = list(range(self.n))
        total = math.ceil(self.n / self.world_size) * self.world_size
        order = (order * math.ceil(total / self.n))[:total]
        return order[self.rank : total : self.world_size]

    def __iter__(self):
        return iter(self.indices()[self.skip :])

    def __len__(self):
        return max(0, math.ceil(self.n / self.world_size) - self.skip)


def augment_batch(x, y, w, *, crop_size, flips, generator):
    """Per-sample random crop and dihedral transform (transpose only for square images)."""
    if not crop_size and not flips:
        return x, y, w
    height, width = x.shape[-2:]
    if crop_size and (crop_size > height or crop_size > width):
        raise ValueError(f"crop_size {crop_size} exceeds the training images ({height}x{width})")
    outputs = ([], [], [])
    for i in range(x.shape[0]):
        draws = torch.randint(0, 2**31 - 1, (3,), generator=generator).tolist()
        rows, cols = slice(None), slice(None)
        if crop_size:
            top, left = draws[0] % (height - crop_size + 1), draws[1] % (width - crop_size + 1)
            rows, cols = slice(top, top + crop_size), slice(left, left + crop_size)
        code = draws[2] % 8 if flips else 0
        for out, tensor in zip(outputs, (x, y, w)):
            if tensor is None:
                out.append(None)
                continue
            t = tensor[i][..., rows, cols]
            if code & 1:
                t = t.flip(-1)
            if code & 2:
                t = t.flip(-2)
            if code & 4 and t.shape[-1] == t.shape[-2]:
                t = t.transpose(-1, -2)
            out.append(t)
    x, y = torch.stack(outputs[0]), torch.stack(outputs[1])
    w = None if w is None else torch.stack(outputs[2])
    return x, y, w
