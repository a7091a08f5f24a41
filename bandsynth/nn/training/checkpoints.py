"""Training checkpoints: single safetensors files, written atomically, nothing pickled.

`Checkpoint`, `save_checkpoint`, `load_checkpoint` and `latest_checkpoint` are
public (re-exported by `bandsynth.nn.training`).  `save_best_weights`,
`prune_checkpoints`, `restore_rng` and ``CHECKPOINT_FORMAT`` serve the training
loop only: they are internal to the subpackage.
"""

from __future__ import annotations

import json
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as _safetensors_bytes
from torch import nn

from .distributed import unwrap_model

__all__ = ["Checkpoint", "latest_checkpoint", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = "bandsynth-checkpoint/1"
_META_KEY = "bandsynth"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)\.safetensors$")


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
    average_state : dict of str to torch.Tensor or None
        The running mean of the weights of a run that averages them (`fit`'s
        ``average_epochs``), once it has begun.
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
    average_state: dict | None = None


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
    average_state=None,
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
    average_state : dict, optional
        Running mean of the weights (`fit`'s ``average_epochs``).
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
        inner = unwrap_model(model)
        state = inner.state_dict()
        model_config = getattr(inner, "config", None)
    elif isinstance(model, dict):
        state, model_config = model, None
    else:
        raise TypeError(f"model must be a torch.nn.Module or a state dict, got {type(model).__name__}")
    tensors = _state_tensors(state, "model")
    for prefix, extra in (("best", best_state), ("average", average_state)):
        if extra is not None:
            tensors.update(_state_tensors(extra, prefix))
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
    """The checkpoint with the highest step in ``directory``, or None.

    Parameters
    ----------
    directory : str or os.PathLike
        A checkpoint directory (files ``checkpoint-<step>.safetensors``).

    Returns
    -------
    pathlib.Path or None
        The file with the highest step, or None when ``directory`` does not
        exist or holds none.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _CHECKPOINT_RE.match(p.name))]
    return max(found)[1] if found else None


def load_checkpoint(path):
    """Read a checkpoint written by `save_checkpoint` (or the latest one in a directory).

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint file, or a directory whose latest checkpoint is read (see
        `latest_checkpoint`).

    Returns
    -------
    Checkpoint
        The weights, optimizer and generator states, progress and metadata
        (tensors on the CPU).

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
        average_state=section("average") or None,
    )


def save_best_weights(path, state, meta):
    """Write the weights ``state`` atomically with the JSON ``meta`` in the header."""
    payload = _safetensors_bytes(
        {k: v.detach().cpu().contiguous() for k, v in state.items()},
        metadata={_META_KEY: json.dumps(meta)},
    )
    return _write_atomic(path, payload)


def prune_checkpoints(directory, keep):
    """Delete all but the ``keep`` latest step checkpoints in ``directory`` (0 keeps all)."""
    found = sorted((int(m.group(1)), p) for p in directory.iterdir() if (m := _CHECKPOINT_RE.match(p.name)))
    for _, p in found[:-keep] if keep else []:
        p.unlink(missing_ok=True)



def _rng_snapshot():
    """The global torch/CUDA generator states as tensors, the numpy/python ones as JSON."""
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


def restore_rng(state):
    """Restore the global generators from the ``rng_state`` of a `Checkpoint`."""
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
