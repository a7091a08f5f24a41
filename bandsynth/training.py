"""Supervised training of a generator: loop, checkpoints, mixed precision, DDP.

`fit` trains with Adam (betas 0.5, 0.999 as in CycleGAN) on the loss of
`bandsynth.losses.BandLoss` (L1 + lambda (1 - SSIM), plus the Laplace NLL of
the uncertainty head), with a step-wise learning-rate schedule, validation after
every epoch and selection of the best weights by validation SSIM.

Reproducibility and resumption
------------------------------
Everything random is derived from ``seed``: the data order of epoch ``e`` from
``(seed, e)``, the crop and flip of step ``s`` on rank ``r`` from ``(seed, s, r)``.
Nothing depends on how many steps a process has run, so a run resumed from a
checkpoint (even after ``kill -9``) ends with the same weights as an
uninterrupted one.  A dataset with its own randomness stays exact when it draws
from the global torch/numpy/random generators with ``num_workers=0`` (their
states are checkpointed), or when it keys its randomness on the index and
``set_epoch(epoch)``, which `fit` calls at the start of every epoch.

Checkpoints are single safetensors files (``checkpoint-<step>.safetensors``):
model, best-so-far model, optimizer tensors and the torch RNG state as tensors,
and everything else (step, epoch, history, optimizer hyper-parameters,
numpy/python RNG states, the fit options) as JSON in the safetensors header.
Nothing is pickled.  Files are written to a temporary name and renamed, so a
checkpoint on disk is always complete.

Data
----
``train_data`` is a map-style `torch.utils.data.Dataset` whose items are
``(x [C, H, W], y [C_out, H, W])`` or ``(x, y, weight)`` float tensors
(``weight`` broadcastable to ``y``, 0 on masked pixels).  Cropping and
augmentation are normally the dataset's job; ``crop_size`` (random crops of
that side) and ``augment`` (random flips and 90-degree rotations, which leave
sky images statistically unchanged) apply on top of it, per sample.  With
instance normalisation, crops much smaller than the images to be predicted
shift the normalisation statistics between training and inference, so the
default is no cropping.

Distributed training
--------------------
Under ``torchrun`` (``WORLD_SIZE`` > 1) `fit` joins the process group (gloo on
CPU, nccl on GPU) unless one exists, wraps the model in
`~torch.nn.parallel.DistributedDataParallel` and gives each rank a disjoint
shard of every epoch's permutation (``batch_size`` is per rank).  Validation is
sharded and reduced so every rank selects the same best weights; only rank 0
writes checkpoints and shows progress.

Examples
--------
>>> import torch
>>> from torch.utils.data import TensorDataset
>>> from bandsynth.models.generator import build_generator
>>> from bandsynth.training import fit
>>> _ = torch.manual_seed(0)
>>> x = torch.rand(8, 2, 16, 16)
>>> data = TensorDataset(x, 0.5 * x[:, :1] + 0.3 * x[:, 1:] ** 2)
>>> net = build_generator("tiny", in_channels=2)
>>> result = fit(net, data, val_data=data, epochs=2, batch_size=4, progress=False, bf16=False)
>>> len(result.history), result.best_metric_name
(2, 'val_ssim')
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save as _safetensors_bytes
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from .losses import BandLoss, laplace_nll, ssim

__all__ = [
    "fit",
    "evaluate",
    "run_generator",
    "TrainingResult",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "bf16_supported",
    "learning_rate",
]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "bandsynth-checkpoint/1"
_META_KEY = "bandsynth"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)\.safetensors$")
_SCHEDULES = ("cosine", "linear", "constant")
# Options whose change makes a resumed run differ from the one that wrote the checkpoint.
_RUN_OPTIONS = ("epochs", "batch_size", "lr", "betas", "lr_schedule", "crop_size", "augment", "seed", "world_size")


# --------------------------------------------------------------------------- precision


def bf16_supported(device="cpu"):
    """Whether ``device`` computes in bfloat16 natively (AVX512-BF16/AMX CPUs, Ampere+ GPUs).

    Examples
    --------
    >>> isinstance(bf16_supported("cpu"), bool)
    True
    """
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
    return False


def _resolve_flag(value, name, auto):
    if value == "auto":
        return bool(auto)
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True, False or 'auto', got {value!r}")
    return value


def _resolve_device(device, local_rank=0):
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("cpu")
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    return torch.device(device)


def _resolve_precision(bf16, channels_last, device):
    use_bf16 = _resolve_flag(bf16, "bf16", bf16_supported(device))
    # On CPU (oneDNN) channels-last measured no faster for these networks, with or
    # without bf16 (benchmarks/model_speed.py); on GPUs it feeds the tensor cores.
    use_cl = _resolve_flag(channels_last, "channels_last", device.type == "cuda")
    return use_bf16, use_cl


def _model_device(model):
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _inner(model):
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _pad_to_valid(x, model):
    """Pad ``x`` so the generator accepts it; returns the padded batch and the crop back."""
    n_down = getattr(model, "n_down", None)
    height, width = x.shape[-2:]
    if n_down is None:
        return x, (slice(None), slice(None))
    from .models.generator import minimum_input_size

    multiple, minimum = 2**n_down, minimum_input_size(model)
    pads = []
    for size in (height, width):
        target = max(minimum, -(-size // multiple) * multiple)
        pads.append(((target - size) // 2, target - size - (target - size) // 2))
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x, (slice(None), slice(None))
    mode = "reflect" if max(top, bottom) < height and max(left, right) < width else "replicate"
    x = F.pad(x, (left, right, top, bottom), mode=mode)
    return x, (slice(top, top + height), slice(left, left + width))


def run_generator(model, x, *, bf16=False, channels_last=False, pad=True):
    """Run ``model`` on a batch for inference, in float32 out.

    Parameters
    ----------
    model : torch.nn.Module
        A `~bandsynth.models.generator.ResNetGenerator` (or a DDP wrapper of one).
    x : torch.Tensor
        Input batch ``[B, C, H, W]``; moved to the model's device as float32.
    bf16 : bool or "auto"
        Run under bfloat16 autocast ("auto": when the device supports it natively).
    channels_last : bool or "auto"
        Convert model (in place) and input to channels-last memory format
        ("auto": on a GPU only).
    pad : bool
        Reflection-pad images whose sides are too small or not multiples of
        ``2 ** n_down``, and crop the outputs back.

    Returns
    -------
    GeneratorOutput
        ``mean`` and ``log_scale`` (None without an uncertainty head), float32,
        same spatial size as ``x``.

    Examples
    --------
    >>> import torch
    >>> from bandsynth.models.generator import build_generator
    >>> net = build_generator("tiny", 2)
    >>> out = run_generator(net, torch.rand(3, 2, 21, 19))
    >>> tuple(out.mean.shape), out.mean.dtype
    ((3, 1, 21, 19), torch.float32)
    """
    from .models.generator import GeneratorOutput

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"generator input must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"generator input must have shape [B, C, H, W], got {tuple(x.shape)}")
    model = _inner(model)
    device = _model_device(model)
    use_bf16, use_cl = _resolve_precision(bf16, channels_last, device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            x = x.to(device=device, dtype=torch.float32)
            rows, cols = slice(None), slice(None)
            if pad:
                x, (rows, cols) = _pad_to_valid(x, model)
            if use_cl:
                model.to(memory_format=torch.channels_last)
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                out = model(x)
            mean, log_scale = out if isinstance(out, tuple) else (out, None)
            mean = mean.float()[..., rows, cols].contiguous()
            if log_scale is not None:
                log_scale = log_scale.float()[..., rows, cols].contiguous()
            return GeneratorOutput(mean, log_scale)
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- randomness


def _derive_seed(*keys):
    """A 63-bit seed that depends on every key (numpy SeedSequence hashing)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


def _rng_snapshot():
    np_state = np.random.get_state()
    tensors = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = state
    meta = {
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    return tensors, meta


def _rng_restore(state):
    if not state:
        return
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    cuda = [state[k] for k in sorted(k for k in state if k.startswith("cuda/"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))


class _ShardSampler(Sampler):
    """Epoch permutation from ``(seed, epoch)``, padded and split across ranks like DistributedSampler."""

    def __init__(self, n, *, seed, epoch, rank=0, world_size=1, shuffle=True, skip=0):
        self.n, self.seed, self.epoch = n, seed, epoch
        self.rank, self.world_size, self.shuffle, self.skip = rank, world_size, shuffle, skip

    def indices(self):
        if self.shuffle:
            generator = torch.Generator().manual_seed(_derive_seed(self.seed, 0, self.epoch))
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


def _augment(x, y, w, *, crop_size, flips, generator):
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


def learning_rate(step, total_steps, *, lr, schedule="cosine"):
    """Learning rate of update ``step`` (0-based) out of ``total_steps``.

    ``"cosine"`` decays from ``lr`` to 0 along half a cosine, ``"linear"``
    linearly to 0, ``"constant"`` keeps ``lr``.

    Examples
    --------
    >>> learning_rate(0, 100, lr=1e-3), learning_rate(50, 100, lr=1e-3)
    (0.001, 0.0005)
    >>> learning_rate(75, 100, lr=1e-3, schedule="linear")
    0.00025
    """
    if schedule not in _SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {_SCHEDULES}, got {schedule!r}")
    t = min(max(step / max(total_steps, 1), 0.0), 1.0)
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "linear":
        return lr * (1.0 - t)
    return lr


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """Contents of a checkpoint file (see `load_checkpoint`).

    Attributes
    ----------
    path : pathlib.Path
    model_state, best_state : dict of str to torch.Tensor
        Weights at the checkpoint and the best weights so far (None if none yet).
    optimizer_state : dict or None
        A state dict for `torch.optim.Optimizer.load_state_dict`.
    step, epoch, step_in_epoch : int
        Optimizer updates done, current epoch (0-based) and updates done in it.
    history : list of dict
        Per-epoch records so far.
    rng_state : dict
        Saved torch/numpy/python generator states.
    meta : dict
        Everything else: ``model_config``, ``fit_options``, ``best_metric``, ...
    """

    path: Path
    model_state: dict
    optimizer_state: dict | None
    best_state: dict | None
    step: int
    epoch: int
    step_in_epoch: int
    history: list
    rng_state: dict
    meta: dict


def _state_tensors(state, prefix):
    # Copies: safetensors refuses tensors that share memory (e.g. model and best state).
    return {f"{prefix}/{k}": v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in state.items()}


def _write_atomic(path, payload):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename durable; not every file system allows opening a directory
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return path


def _jsonable(value, what):
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise TypeError(f"checkpoint {what} must be JSON-serialisable, got {value!r}") from None
    return value


def save_checkpoint(
    path,
    *,
    model,
    optimizer=None,
    step=0,
    epoch=0,
    step_in_epoch=0,
    history=(),
    best_state=None,
    rng=True,
    meta=None,
):
    """Write a training checkpoint atomically as one safetensors file.

    Parameters
    ----------
    path : str or pathlib.Path
        Output file (``.safetensors``).
    model : torch.nn.Module or dict
        Module (its ``state_dict()`` is saved; DDP wrappers are unwrapped) or a state dict.
    optimizer : torch.optim.Optimizer, optional
        Its tensors go to the file, its hyper-parameters to the JSON header.
    step, epoch, step_in_epoch : int
        Progress counters.
    history : sequence of dict
        JSON-serialisable records.
    best_state : dict, optional
        Best weights so far.
    rng : bool
        Save the global torch, CUDA, numpy and python generator states.
    meta : dict, optional
        Further JSON-serialisable metadata; ``model_config`` is added when the
        model has a ``config``.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile, torch
    >>> net = torch.nn.Linear(2, 1)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = save_checkpoint(f"{d}/c.safetensors", model=net, step=3)
    ...     c = load_checkpoint(p)
    >>> c.step, torch.equal(c.model_state["weight"], net.weight.detach())
    (3, True)
    """
    if isinstance(model, nn.Module):
        inner = _inner(model)
        state = inner.state_dict()
        model_config = getattr(inner, "config", None)
    elif isinstance(model, dict):
        state, model_config = model, None
    else:
        raise TypeError(f"model must be a torch.nn.Module or a state dict, got {type(model).__name__}")
    tensors = _state_tensors(state, "model")
    if best_state is not None:
        tensors.update(_state_tensors(best_state, "best"))
    header = {
        "format": CHECKPOINT_FORMAT,
        "step": int(step),
        "epoch": int(epoch),
        "step_in_epoch": int(step_in_epoch),
        "history": _jsonable(list(history), "history"),
        "meta": _jsonable(dict(meta or {}), "meta"),
        "optimizer": None,
        "rng": None,
    }
    if model_config is not None:
        header["meta"].setdefault("model_config", model_config)
    if optimizer is not None:
        opt_state = optimizer.state_dict()
        scalars = {}
        for index, values in opt_state["state"].items():
            for key, value in values.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optimizer/{index}/{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars.setdefault(str(index), {})[key] = value
        header["optimizer"] = {
            "class": type(optimizer).__name__,
            "param_groups": _jsonable(opt_state["param_groups"], "optimizer param_groups"),
            "scalars": _jsonable(scalars, "optimizer state"),
        }
    if rng:
        rng_tensors, rng_meta = _rng_snapshot()
        tensors.update(rng_tensors)
        header["rng"] = rng_meta
    payload = _safetensors_bytes(tensors, metadata={_META_KEY: json.dumps(header)})
    return _write_atomic(path, payload)


def latest_checkpoint(directory):
    """The checkpoint with the highest step in ``directory``, or None."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _CHECKPOINT_RE.match(p.name))]
    return max(found)[1] if found else None


def load_checkpoint(path):
    """Read a checkpoint written by `save_checkpoint` (or the latest one in a directory).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist or a directory holds no checkpoint.
    ValueError
        If the file is not a bandsynth checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"no checkpoint-*.safetensors in {path}")
        path = found
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = json.loads((f.metadata() or {}).get(_META_KEY, "null"))
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (OSError, ValueError) as exc:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{path} is not a readable safetensors checkpoint: {exc}") from exc
    except Exception as exc:
        raise ValueError(f"{path} is not a readable safetensors checkpoint: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a bandsynth checkpoint (format {CHECKPOINT_FORMAT!r} expected)")

    def section(prefix):
        n = len(prefix) + 1
        return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + "/")}

    best = section("best") or None
    optimizer_state = None
    if header["optimizer"] is not None:
        state = {}
        for key, value in section("optimizer").items():
            index, name = key.split("/", 1)
            state.setdefault(int(index), {})[name] = value
        for index, values in header["optimizer"]["scalars"].items():
            state.setdefault(int(index), {}).update(values)
        groups = header["optimizer"]["param_groups"]
        for group in groups:
            if isinstance(group.get("betas"), list):
                group["betas"] = tuple(group["betas"])
        optimizer_state = {"state": state, "param_groups": groups}
    rng_state = dict(section("rng"))
    if header["rng"]:
        rng_state.update(header["rng"])
    return Checkpoint(
        path=path,
        model_state=section("model"),
        optimizer_state=optimizer_state,
        best_state=best,
        step=header["step"],
        epoch=header["epoch"],
        step_in_epoch=header["step_in_epoch"],
        history=header["history"],
        rng_state=rng_state,
        meta=header["meta"],
    )


def _save_best(path, state, meta):
    payload = _safetensors_bytes(
        {k: v.detach().cpu().contiguous() for k, v in state.items()},
        metadata={_META_KEY: json.dumps(meta)},
    )
    return _write_atomic(path, payload)


def _prune(directory, keep):
    found = sorted((int(m.group(1)), p) for p in directory.iterdir() if (m := _CHECKPOINT_RE.match(p.name)))
    for _, p in found[:-keep] if keep else []:
        p.unlink(missing_ok=True)


# --------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owned: bool = False  # process group created by fit, destroyed at the end

    @property
    def active(self):
        return self.world_size > 1


def _setup_distributed(distributed, device):
    env_world = int(os.environ.get("WORLD_SIZE", "1"))
    if distributed == "auto":
        wanted = env_world > 1
    elif isinstance(distributed, bool):
        wanted = distributed
    else:
        raise TypeError(f"distributed must be True, False or 'auto', got {distributed!r}")
    if not wanted:
        return _Dist()
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
    return _Dist(dist.get_rank(), dist.get_world_size(), local_rank, owned)


def _all_reduce_sum(values, dist_info, device):
    if not dist_info.active:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(tensor)
    return tensor.tolist()


# --------------------------------------------------------------------------- evaluation


def _unpack(batch, what):
    if not isinstance(batch, (list, tuple)) or len(batch) not in (2, 3):
        raise TypeError(f"{what} items must be (x, y) or (x, y, weight) tensors")
    x, y = batch[0], batch[1]
    w = batch[2] if len(batch) == 3 else None
    for name, t in (("x", x), ("y", y), ("weight", w)):
        if t is not None and not isinstance(t, torch.Tensor):
            raise TypeError(f"{what} {name} must be a torch.Tensor, got {type(t).__name__}")
    if x.ndim != 4 or y.ndim != 4:
        raise ValueError(
            f"{what} items must be x [C, H, W] and y [C_out, H, W]; got batches {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[-2:] != y.shape[-2:]:
        raise ValueError(f"{what} x and y differ in size: {tuple(x.shape[-2:])} vs {tuple(y.shape[-2:])}")
    return x.float(), y.float(), (None if w is None else w.float())


def evaluate(
    model, data, *, batch_size=8, bf16=False, channels_last=False, loss=None, num_workers=0, _dist=None
):
    """Mean image metrics of ``model`` on ``data`` (full images, no augmentation).

    Returns a dict with ``l1`` (mean absolute error), ``ssim``, ``loss``
    (``l1 + ssim_weight * (1 - ssim)``), the number of images ``n_images``,
    and, for a generator with an uncertainty head, ``nll`` (Laplace negative log
    likelihood) and ``coverage`` (fraction of pixels with ``|y - mean| <= b``,
    ``1 - 1/e ~ 0.632`` when calibrated).  All are means over images.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from bandsynth.models.generator import build_generator
    >>> x = torch.rand(3, 2, 16, 16)
    >>> sorted(evaluate(build_generator("tiny", 2), TensorDataset(x, x[:, :1])))
    ['coverage', 'l1', 'loss', 'n_images', 'nll', 'ssim']
    """
    if not isinstance(data, Dataset) or isinstance(data, IterableDataset):
        raise TypeError(f"evaluation data must be a map-style torch Dataset, got {type(data).__name__}")
    dist_info = _dist or _Dist()
    loss = loss or BandLoss()
    inner = _inner(model)
    device = _model_device(inner)
    indices = list(range(dist_info.rank, len(data), dist_info.world_size))
    loader = DataLoader(torch.utils.data.Subset(data, indices), batch_size=batch_size, num_workers=num_workers)
    sums = [0.0] * 6  # l1, ssim, nll, covered pixels, pixels, images
    has_scale = False
    with torch.inference_mode():
        for batch in loader:
            x, y, w = _unpack(batch, "validation data")
            out = run_generator(inner, x, bf16=bf16, channels_last=channels_last)
            y = y.to(device)
            w = None if w is None else w.to(device)
            mean = out.mean
            weight = None if w is None else torch.broadcast_to(w, y.shape)
            err = (mean - y).abs()
            if weight is None:
                l1 = err.mean(dim=(1, 2, 3))
            else:
                l1 = (err * weight).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3))
            sums[0] += float(l1.sum())
            sums[1] += float(ssim(mean, y, weight=w, reduction="none", data_range=loss.data_range).mean(1).sum())
            if out.log_scale is not None:
                has_scale = True
                nll = laplace_nll(mean, out.log_scale, y, weight=w, reduction="none").mean(1)
                sums[2] += float(nll.sum())
                inside = (err <= torch.exp(out.log_scale)).float()
                if weight is not None:
                    inside, count = (inside * weight).sum(), weight.sum()
                else:
                    inside, count = inside.sum(), torch.tensor(float(err.numel()))
                sums[3] += float(inside)
                sums[4] += float(count)
            sums[5] += x.shape[0]
    sums = _all_reduce_sum(sums, dist_info, device)
    n = sums[5]
    if n == 0:
        raise ValueError("evaluation data is empty")
    result = {"l1": sums[0] / n, "ssim": sums[1] / n}
    result["loss"] = result["l1"] + loss.ssim_weight * (1.0 - result["ssim"])
    if has_scale:
        result["nll"] = sums[2] / n
        result["coverage"] = sums[3] / sums[4]
    result["n_images"] = int(n)
    return result


# --------------------------------------------------------------------------- fit


@dataclass
class TrainingResult:
    """What `fit` returns.

    Attributes
    ----------
    history : list of dict
        One record per epoch: ``epoch`` (0-based), ``step``, ``lr``, ``train_loss``,
        ``train_l1``, ``train_ssim``, ``train_nll``, ``val_*`` metrics from
        `evaluate` when validation data were given, and ``seconds``.
    best_state : dict of str to torch.Tensor
        CPU copy of the best weights (highest ``val_ssim``; lowest ``train_loss``
        without validation data).  The model itself keeps its final weights.
    best_metric : float or None
    best_metric_name : str
    best_epoch : int or None
    steps : int
        Optimizer updates done in total.
    epochs_completed : int
    stopped_early : bool
        True when ``max_steps`` ended the run before ``epochs``.
    last_checkpoint, best_checkpoint : pathlib.Path or None
    device : str
    bf16, channels_last : bool
    world_size : int
    seconds : float
        Wall-clock time of this call.
    images_per_second : float
        Training images processed per second in this call (all ranks).
    """

    history: list
    best_state: dict | None
    best_metric: float | None
    best_metric_name: str
    best_epoch: int | None
    steps: int
    epochs_completed: int
    stopped_early: bool
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    device: str = "cpu"
    bf16: bool = False
    channels_last: bool = False
    world_size: int = 1
    seconds: float = 0.0
    images_per_second: float = 0.0


def _check_positive_int(name, value, *, allow_none=False, minimum=1):
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int{' or None' if allow_none else ''}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _better(metric_name, value, best):
    if best is None:
        return True
    return value > best if metric_name == "val_ssim" else value < best


def fit(
    model,
    train_data,
    *,
    val_data=None,
    epochs,
    batch_size=8,
    lr=2e-4,
    betas=(0.5, 0.999),
    lr_schedule="cosine",
    loss=None,
    crop_size=None,
    augment=True,
    seed=0,
    num_workers=0,
    checkpoint_dir=None,
    checkpoint_every=None,
    keep_checkpoints=2,
    resume=None,
    bf16="auto",
    channels_last="auto",
    device="auto",
    distributed="auto",
    progress=True,
    log_every=50,
    max_steps=None,
    grad_clip=None,
    on_step=None,
):
    """Train ``model`` in place on ``train_data`` and return a `TrainingResult`.

    Parameters
    ----------
    model : torch.nn.Module
        Usually a `~bandsynth.models.generator.ResNetGenerator`; it must return
        ``(mean, log_scale)`` (``log_scale`` may be None).
    train_data : torch.utils.data.Dataset
        Map-style dataset of ``(x, y)`` or ``(x, y, weight)`` float tensors.
    val_data : torch.utils.data.Dataset, optional
        Evaluated on full images after every epoch; the best weights are
        selected by its mean SSIM.
    epochs : int
        Number of passes over ``train_data``; sets the learning-rate schedule.
    batch_size : int
        Images per optimizer update (per rank under DDP).
    lr : float
        Peak learning rate of Adam.
    betas : tuple of float
        Adam betas (CycleGAN's 0.5, 0.999).
    lr_schedule : {"cosine", "linear", "constant"}
        Decay of the learning rate over ``epochs`` (see `learning_rate`).
    loss : bandsynth.losses.BandLoss, optional
        Defaults to ``BandLoss()`` (L1 + (1 - SSIM) + Laplace NLL).
    crop_size : int, optional
        Random square crops of this side, per sample (a multiple of ``2 ** n_down``).
    augment : bool
        Random flips and 90-degree rotations, per sample.
    seed : int
        Seed of the data order and augmentation (not of the weights: initialise
        the model before calling).
    num_workers : int
        DataLoader worker processes.
    checkpoint_dir : str or pathlib.Path, optional
        Where ``checkpoint-<step>.safetensors`` (after every epoch and every
        ``checkpoint_every`` steps) and ``best.safetensors`` are written.
    checkpoint_every : int, optional
        Also checkpoint every this many optimizer steps.
    keep_checkpoints : int
        How many step checkpoints to keep (0 keeps all).
    resume : None, "auto", str or pathlib.Path
        A checkpoint (file or directory) to continue from; ``"auto"`` resumes
        from the latest one in ``checkpoint_dir`` when there is one.
    bf16 : bool or "auto"
        bfloat16 autocast; "auto" enables it where the device supports it natively.
    channels_last : bool or "auto"
        Channels-last memory format; "auto" enables it on a GPU only.
    device : "auto", str or torch.device
        "auto": the local GPU if there is one, else the CPU.
    distributed : bool or "auto"
        DDP; "auto" when launched by torchrun with more than one process.
    progress : bool
        Show a tqdm progress bar (rank 0 only).
    log_every : int
        Log the running loss every this many steps (logger ``bandsynth.training``).
    max_steps : int, optional
        Stop after this many optimizer updates in total (a checkpoint is written
        if ``checkpoint_dir`` is set), e.g. to split a run across jobs.
    grad_clip : float, optional
        Clip the global gradient norm to this value.
    on_step : callable, optional
        Called after every update with a dict (``step``, ``epoch``, ``loss``, ``lr``, ...).

    Returns
    -------
    TrainingResult
    """
    # ---- validate
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for name, data in (("train_data", train_data), ("val_data", val_data)):
        if data is None and name == "val_data":
            continue
        if not isinstance(data, Dataset) or isinstance(data, IterableDataset):
            raise TypeError(f"{name} must be a map-style torch Dataset, got {type(data).__name__}")
    if len(train_data) == 0:
        raise ValueError("train_data is empty")
    _check_positive_int("epochs", epochs)
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("crop_size", crop_size, allow_none=True)
    _check_positive_int("seed", seed, minimum=0)
    _check_positive_int("num_workers", num_workers, minimum=0)
    _check_positive_int("checkpoint_every", checkpoint_every, allow_none=True)
    _check_positive_int("keep_checkpoints", keep_checkpoints, minimum=0)
    _check_positive_int("log_every", log_every)
    _check_positive_int("max_steps", max_steps, allow_none=True)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if lr_schedule not in _SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {_SCHEDULES}, got {lr_schedule!r}")
    if loss is not None and not isinstance(loss, BandLoss):
        raise TypeError(f"loss must be a bandsynth.losses.BandLoss, got {type(loss).__name__}")
    multiple = 2 ** getattr(_inner(model), "n_down", 0)
    if crop_size is not None and crop_size % multiple:
        raise ValueError(f"crop_size {crop_size} must be a multiple of 2**n_down = {multiple}")
    if checkpoint_every is not None and checkpoint_dir is None:
        raise ValueError("checkpoint_every needs a checkpoint_dir")
    if resume == "auto" and checkpoint_dir is None:
        raise ValueError("resume='auto' needs a checkpoint_dir")
    loss = loss or BandLoss()

    # ---- set up
    started = time.perf_counter()
    dist_info = _setup_distributed(distributed, device)
    device = _resolve_device(device, dist_info.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    use_bf16, use_cl = _resolve_precision(bf16, channels_last, device)
    model.to(device)
    if use_cl:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=tuple(betas))
    ckpt_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
    is_main = dist_info.rank == 0
    if ckpt_dir is not None and is_main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        for stale in ckpt_dir.glob(".*.tmp-*"):  # left by a process killed while writing
            stale.unlink(missing_ok=True)
    options = {
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "betas": list(betas),
        "lr_schedule": lr_schedule, "crop_size": crop_size, "augment": augment, "seed": seed,
        "world_size": dist_info.world_size, "ssim_weight": loss.ssim_weight, "nll_weight": loss.nll_weight,
    }  # fmt: skip
    metric_name = "val_ssim" if val_data is not None else "train_loss"

    step = epoch = step_in_epoch = 0
    history, best_state, best_metric, best_epoch = [], None, None, None
    acc = {"loss": 0.0, "l1": 0.0, "ssim": 0.0, "nll": 0.0, "batches": 0}
    last_ckpt = best_ckpt = None

    source = None
    if resume == "auto":
        source = latest_checkpoint(ckpt_dir)
    elif resume is not None:
        source = resume
    elif ckpt_dir is not None and latest_checkpoint(ckpt_dir) is not None:
        warnings.warn(
            f"checkpoint_dir {ckpt_dir} already holds checkpoints; starting a new run "
            "(pass resume='auto' to continue the old one)",
            UserWarning,
            stacklevel=2,
        )
    if source is not None:
        ckpt = load_checkpoint(source)
        _inner(model).load_state_dict(ckpt.model_state)
        if ckpt.optimizer_state is None:
            raise ValueError(f"checkpoint {ckpt.path} holds no optimizer state; cannot resume")
        optimizer.load_state_dict(ckpt.optimizer_state)
        _rng_restore(ckpt.rng_state)
        old = ckpt.meta.get("fit_options", {})
        changed = [k for k in _RUN_OPTIONS if k in old and old[k] != options[k]]
        if changed:
            warnings.warn(
                "resuming with different options than the checkpoint's: "
                + ", ".join(f"{k} {old[k]!r} -> {options[k]!r}" for k in changed),
                UserWarning,
                stacklevel=2,
            )
        step, epoch, step_in_epoch = ckpt.step, ckpt.epoch, ckpt.step_in_epoch
        history = ckpt.history
        state = ckpt.meta.get("fit_state", {})
        acc = state.get("accumulators", acc)
        best_metric, best_epoch = state.get("best_metric"), state.get("best_epoch")
        best_state = ckpt.best_state
        last_ckpt = ckpt.path
        log.info("resumed from %s at step %d (epoch %d)", ckpt.path, step, epoch)

    train_model = model
    if dist_info.active:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    n_train = len(train_data)
    steps_per_epoch = math.ceil(math.ceil(n_train / dist_info.world_size) / batch_size)
    total_steps = epochs * steps_per_epoch
    stop_at = total_steps if max_steps is None else min(max_steps, total_steps)

    def checkpoint():
        nonlocal last_ckpt
        if ckpt_dir is None or not is_main:
            return
        meta = {
            "fit_options": options,
            "fit_state": {"accumulators": acc, "best_metric": best_metric, "best_epoch": best_epoch,
                          "metric_name": metric_name, "total_steps": total_steps},
        }  # fmt: skip
        last_ckpt = save_checkpoint(
            ckpt_dir / f"checkpoint-{step:08d}.safetensors", model=model, optimizer=optimizer,
            step=step, epoch=epoch, step_in_epoch=step_in_epoch, history=history,
            best_state=best_state, meta=meta,
        )  # fmt: skip
        _prune(ckpt_dir, keep_checkpoints)

    from tqdm.auto import tqdm

    bar = tqdm(
        total=stop_at, initial=min(step, stop_at), unit="step", dynamic_ncols=True,
        disable=not progress or not is_main, desc="training",
    )  # fmt: skip
    images_seen = 0
    train_seconds = 0.0
    stopped = step >= stop_at and step < total_steps
    try:
        while epoch < epochs and not stopped:
            epoch_started = time.perf_counter()
            if hasattr(train_data, "set_epoch"):
                train_data.set_epoch(epoch)
            sampler = _ShardSampler(
                n_train, seed=seed, epoch=epoch, rank=dist_info.rank,
                world_size=dist_info.world_size, skip=step_in_epoch * batch_size,
            )  # fmt: skip
            loader = DataLoader(
                train_data, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                generator=torch.Generator().manual_seed(_derive_seed(seed, 2, epoch)),
                pin_memory=device.type == "cuda",
            )  # fmt: skip
            train_model.train()
            for batch in loader:
                if step >= stop_at:
                    stopped = True
                    break
                t0 = time.perf_counter()
                x, y, w = _unpack(batch, "train_data")
                generator = torch.Generator().manual_seed(_derive_seed(seed, 1, step, dist_info.rank))
                x, y, w = _augment(x, y, w, crop_size=crop_size, flips=augment, generator=generator)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                w = None if w is None else w.to(device, non_blocking=True)
                if use_cl:
                    x = x.contiguous(memory_format=torch.channels_last)
                current_lr = learning_rate(step, total_steps, lr=lr, schedule=lr_schedule)
                for group in optimizer.param_groups:
                    group["lr"] = current_lr
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    out = train_model(x)
                if not isinstance(out, tuple):
                    out = (out, None)
                if out[0].shape != y.shape:
                    raise ValueError(
                        f"model output {tuple(out[0].shape)} does not match targets {tuple(y.shape)}"
                    )
                terms = loss(out[0], y, log_scale=out[1], weight=w)
                if not torch.isfinite(terms.total):
                    raise FloatingPointError(f"training loss is not finite at step {step} (epoch {epoch})")
                terms.total.backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                optimizer.step()
                step += 1
                step_in_epoch += 1
                images_seen += x.shape[0] * dist_info.world_size
                train_seconds += time.perf_counter() - t0
                values = {
                    "loss": float(terms.total.detach()), "l1": float(terms.l1),
                    "ssim": float(terms.ssim), "nll": float(terms.nll) if terms.nll is not None else 0.0,
                }  # fmt: skip
                for key, value in values.items():
                    acc[key] += value
                acc["batches"] += 1
                bar.update(1)
                bar.set_postfix(loss=f"{values['loss']:.4f}", epoch=epoch, refresh=False)
                if step % log_every == 0 and is_main:
                    log.info(
                        "step %d/%d epoch %d loss %.5f l1 %.5f ssim %.4f lr %.3g",
                        step, total_steps, epoch, values["loss"], values["l1"], values["ssim"], current_lr,
                    )  # fmt: skip
                if on_step is not None:
                    on_step({"step": step, "epoch": epoch, "lr": current_lr, **values})
                end_of_epoch = step_in_epoch >= steps_per_epoch
                if step >= stop_at and not end_of_epoch:
                    stopped = True
                    checkpoint()
                    break
                if checkpoint_every and step % checkpoint_every == 0 and not end_of_epoch:
                    checkpoint()
            if stopped or step_in_epoch < steps_per_epoch:
                break

            # ---- end of epoch: reduce, validate, select, checkpoint
            sums = _all_reduce_sum([acc["loss"], acc["l1"], acc["ssim"], acc["nll"], acc["batches"]], dist_info, device)
            batches = max(sums[4], 1)
            record = {
                "epoch": epoch, "step": step,
                "lr": learning_rate(step - 1, total_steps, lr=lr, schedule=lr_schedule),
                "train_loss": sums[0] / batches, "train_l1": sums[1] / batches,
                "train_ssim": sums[2] / batches, "train_nll": sums[3] / batches,
            }  # fmt: skip
            if val_data is not None:
                metrics = evaluate(
                    model, val_data, batch_size=batch_size, bf16=use_bf16, channels_last=use_cl,
                    loss=loss, num_workers=num_workers, _dist=dist_info,
                )  # fmt: skip
                record.update({f"val_{k}": v for k, v in metrics.items() if k != "n_images"})
            record["seconds"] = time.perf_counter() - epoch_started
            history.append(record)
            if _better(metric_name, record[metric_name], best_metric):
                best_metric, best_epoch = record[metric_name], epoch
                best_state = {k: v.detach().cpu().clone().contiguous() for k, v in _inner(model).state_dict().items()}
                if ckpt_dir is not None and is_main:
                    best_ckpt = _save_best(
                        ckpt_dir / "best.safetensors", best_state,
                        {"format": CHECKPOINT_FORMAT + "+weights", "metric": metric_name, "value": best_metric,
                         "epoch": epoch, "step": step,
                         "model_config": getattr(_inner(model), "config", None)},
                    )  # fmt: skip
            if is_main:
                log.info("epoch %d done: %s", epoch, ", ".join(f"{k} {v:.5g}" for k, v in record.items()))
            epoch += 1
            step_in_epoch = 0
            acc = {"loss": 0.0, "l1": 0.0, "ssim": 0.0, "nll": 0.0, "batches": 0}
            checkpoint()
            if step >= stop_at and step < total_steps:
                stopped = True
        if dist_info.active:  # every rank returns once rank 0's files are written
            torch.distributed.barrier()
    finally:
        bar.close()
        # No barrier on the way out of an error: the other ranks may never reach it.
        if dist_info.owned:
            torch.distributed.destroy_process_group()

    if best_state is None:  # stopped before the first epoch ended
        best_state = {k: v.detach().cpu().clone().contiguous() for k, v in _inner(model).state_dict().items()}
    if ckpt_dir is not None and best_ckpt is None and (ckpt_dir / "best.safetensors").exists():
        best_ckpt = ckpt_dir / "best.safetensors"
    return TrainingResult(
        history=history,
        best_state=best_state,
        best_metric=best_metric,
        best_metric_name=metric_name,
        best_epoch=best_epoch,
        steps=step,
        epochs_completed=epoch,
        stopped_early=stopped,
        last_checkpoint=last_ckpt,
        best_checkpoint=best_ckpt,
        device=str(device),
        bf16=use_bf16,
        channels_last=use_cl,
        world_size=dist_info.world_size,
        seconds=time.perf_counter() - started,
        images_per_second=images_seen / train_seconds if train_seconds > 0 else 0.0,
    )
