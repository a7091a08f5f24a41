"""Helpers shared by the metric modules (pairs of images, data ranges, warnings)."""

from __future__ import annotations

import warnings

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning

__all__ = ["NAN", "pair", "check_range", "warn_excluded", "finite_1d"]


NAN = float("nan")


def pair(prediction, truth, mask=None, *, names=("prediction", "truth")):
    """Two float arrays of one shape and the pixels to use (True = use)."""
    p = np.asarray(prediction, dtype=float)
    t = np.asarray(truth, dtype=float)
    if p.shape != t.shape:
        raise ValueError(f"{names[0]} has shape {p.shape} but {names[1]} has shape {t.shape}")
    good = np.isfinite(p) & np.isfinite(t)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != p.shape:
            raise ValueError(f"mask has shape {mask.shape}, expected {p.shape}")
        good &= ~mask
    return p, t, good


def check_range(data_range):
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float, np.number)):
        raise TypeError(f"data_range must be a number, got {type(data_range).__name__}")
    if not np.isfinite(data_range) or data_range <= 0:
        raise ValueError(f"data_range must be finite and > 0, got {data_range!r}")
    return float(data_range)


def warn_excluded(n, what="pixel(s)"):
    if n:
        warnings.warn(f"{n} masked or non-finite {what} excluded from the metrics", AstropyUserWarning, stacklevel=3)


def finite_1d(values, name):
    arr = np.asarray(values, dtype=float).ravel()
    good = np.isfinite(arr)
    if not good.all():
        warnings.warn(f"{name}: {int((~good).sum())} non-finite value(s) dropped", AstropyUserWarning, stacklevel=3)
        arr = arr[good]
    if arr.size == 0:
        raise ValueError(f"{name} has no finite values: cannot compute a distribution distance")
    return arr
