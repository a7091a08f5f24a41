"""Inference and evaluation: `run_generator` and `evaluate` (full images, no augmentation).

Both are re-exported by `bandsynth.nn.training`; `unpack_batch`, which checks a
batch of a dataset, is shared with the training loop (internal).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, IterableDataset

from ..losses import BandLoss, masked_target, ssim
from .distributed import DistInfo, all_reduce_sum, unwrap_model
from .precision import model_device, resolve_precision

__all__ = ["evaluate", "run_generator"]


def _pad_to_valid(x, model):
    """Pad ``x`` so the generator accepts it; returns the padded batch and the crop back."""
    n_down = getattr(model, "n_down", None)
    height, width = x.shape[-2:]
    if n_down is None:
        return x, (slice(None), slice(None))
    from ..generator import minimum_input_size

    multiple, minimum = 2**n_down, minimum_input_size(getattr(model, "generator", model))
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
        A `~bandsynth.nn.generator.ResNetGenerator` (or a DDP wrapper of one).
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
    >>> from bandsynth.nn.generator import build_generator
    >>> net = build_generator("tiny", 2)
    >>> out = run_generator(net, torch.rand(3, 2, 21, 19))
    >>> tuple(out.mean.shape), out.mean.dtype
    ((3, 1, 21, 19), torch.float32)
    """
    from ..generator import GeneratorOutput

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"generator input must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"generator input must have shape [B, C, H, W], got {tuple(x.shape)}")
    model = unwrap_model(model)
    device = model_device(model)
    use_bf16, use_cl = resolve_precision(bf16, channels_last, device)
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


def unpack_batch(batch, what):
    """Check a DataLoader batch of ``(x, y)`` or ``(x, y, weight)``; return float ``x, y, weight`` (None)."""
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
    """Mean image metrics of ``model`` on ``data`` (full images, no augmentation), means over images.

    Parameters
    ----------
    model : torch.nn.Module
        A generator (or a DDP wrapper of one), run with :func:`run_generator`.
    data : torch.utils.data.Dataset
        Map-style dataset of ``(x, y)`` or ``(x, y, weight)`` items in scaled
        units; per-pixel weights (e.g. 0 on masked pixels) weigh every metric.
    batch_size : int
        Images per batch.
    bf16 : bool or "auto"
        Run under bfloat16 autocast ("auto": when the device supports it
        natively).
    channels_last : bool or "auto"
        Use the channels-last memory format ("auto": on a GPU only).
    loss : `~bandsynth.nn.losses.BandLoss`, optional
        Sets the SSIM data range, the ``ssim_weight`` of ``loss`` and the
        distribution of ``nll`` (default: ``BandLoss()``, Laplace).
    num_workers : int
        `~torch.utils.data.DataLoader` worker processes.
    _dist : optional
        Internal: the process group of a distributed training run, whose
        ranks each evaluate a share of ``data`` and sum the results; leave it
        None.

    Returns
    -------
    dict
        ``l1`` (mean absolute error), ``ssim``, ``loss`` (``l1 + ssim_weight * (1 - ssim)``),
        in scaled units; ``n_images``; with an uncertainty head, ``nll`` (negative log
        likelihood) and ``coverage`` (fraction of pixels with ``|y - mean| <= b``,
        ``1 - 1/e ~ 0.632`` for a calibrated Laplace ``b``).

    Raises
    ------
    TypeError
        If ``data`` is not a map-style dataset, or its items are not tensors.
    ValueError
        If ``data`` is empty.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from bandsynth.nn.generator import build_generator
    >>> x = torch.rand(3, 2, 16, 16)
    >>> sorted(evaluate(build_generator("tiny", 2), TensorDataset(x, x[:, :1])))
    ['coverage', 'l1', 'loss', 'n_images', 'nll', 'ssim']
    """
    if not isinstance(data, Dataset) or isinstance(data, IterableDataset):
        raise TypeError(f"evaluation data must be a map-style torch Dataset, got {type(data).__name__}")
    dist_info = _dist or DistInfo()
    loss = loss or BandLoss()
    inner = unwrap_model(model)
    device = model_device(inner)
    indices = list(range(dist_info.rank, len(data), dist_info.world_size))
    loader = DataLoader(torch.utils.data.Subset(data, indices), batch_size=batch_size, num_workers=num_workers)
    sums = [0.0] * 6  # l1, ssim, nll, covered pixels, pixels, images
    has_scale = False
    with torch.inference_mode():
        for batch in loader:
            x, y, w = unpack_batch(batch, "validation data")
            out = run_generator(inner, x, bf16=bf16, channels_last=channels_last)
            y = y.to(device)
            w = None if w is None else w.to(device)
            mean = out.mean
            weight = None if w is None else torch.broadcast_to(w, y.shape)
            y = masked_target(y, weight)  # a NaN target pixel of weight 0 must not make every metric NaN
            err = (mean - y).abs()
            l1 = err.mean(dim=(1, 2, 3)) if weight is None else (err * weight).sum((1, 2, 3)) / weight.sum((1, 2, 3))
            sums[0] += float(l1.sum())
            sums[1] += float(ssim(mean, y, weight=w, reduction="none", data_range=loss.data_range).mean(1).sum())
            if out.log_scale is not None:
                has_scale = True
                nll = loss.nll(mean, out.log_scale, y, weight=w, reduction="none").mean(1)
                sums[2] += float(nll.sum())
                inside = (err <= torch.exp(out.log_scale)).float()
                if weight is not None:
                    inside, count = (inside * weight).sum(), weight.sum()
                else:
                    inside, count = inside.sum(), torch.tensor(float(err.numel()))
                sums[3] += float(inside)
                sums[4] += float(count)
            sums[5] += x.shape[0]
    sums = all_reduce_sum(sums, dist_info, device)
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
