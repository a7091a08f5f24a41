"""Devices and numeric precision: bfloat16 support, device and precision flags.

`bf16_supported` is public (re-exported by `bandsynth.nn.training`); the other
helpers are internal to the subpackage.
"""

from __future__ import annotations

import torch

__all__ = ["bf16_supported"]


def bf16_supported(device="cpu"):
    """Whether ``device`` computes in bfloat16 natively (AVX512-BF16/AMX CPUs, Ampere+ GPUs).

    Parameters
    ----------
    device : str or torch.device
        The device, e.g. ``"cpu"`` or ``"cuda:0"``.

    Returns
    -------
    bool
        True for a CUDA device with bfloat16 support or a CPU with AVX512-BF16
        or AMX; False otherwise (other device types included).

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


def resolve_device(device, local_rank=0):
    """The `torch.device` for ``device`` ("auto": GPU ``local_rank`` if there is one, else the CPU)."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("cpu")
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    return torch.device(device)


def resolve_precision(bf16, channels_last, device):
    """Resolve the ``bf16`` and ``channels_last`` flags (True, False or "auto") on ``device``."""
    use_bf16 = _resolve_flag(bf16, "bf16", bf16_supported(device))
    # On CPU (oneDNN) channels-last measured no faster for these networks, with or
    # without bf16 (benchmarks/model_speed.py); on GPUs it feeds the tensor cores.
    use_cl = _resolve_flag(channels_last, "channels_last", device.type == "cuda")
    return use_bf16, use_cl


def model_device(model):
    """The device of the first parameter of ``model`` (the CPU if it has none)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")

