"""Tensor operations the networks' fixed asinh scaling is built from (shared by `network` and `any_band`)."""

from __future__ import annotations

import torch


def sinh(x):
    # Written out so that the ONNX exporter (which has no aten::sinh) can export it.
    return 0.5 * (torch.exp(x) - torch.exp(-x))


def asinh(x):
    # Odd-symmetric form of log(x + sqrt(x^2 + 1)): no cancellation for negative x; ONNX-exportable.
    ax = x.abs()
    return torch.sign(x) * torch.log(ax + torch.sqrt(ax * ax + 1.0))


def vector(owner, name, values, n):
    """``values`` as a float32 vector of ``n`` finite numbers (else a `ValueError` naming ``owner``'s ``name``)."""
    tensor = torch.as_tensor(values, dtype=torch.float32).reshape(-1)
    if tensor.numel() != n:
        raise ValueError(f"{owner} {name} needs {n} value(s), got {tensor.numel()}")
    if not torch.all(torch.isfinite(tensor)):
        raise ValueError(f"{owner} {name} must be finite, got {tensor.tolist()}")
    return tensor
