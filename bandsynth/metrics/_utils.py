"""Helpers shared by the metric modules (pairs of images, data ranges, warnings)."""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
from astropy.nddata import InverseVariance, NDData, StdDevUncertainty, VarianceUncertainty
from astropy.utils.exceptions import AstropyUserWarning
from astropy.utils.masked import Masked

__all__ = ["NAN", "pair", "image_values", "converted", "std_of", "check_range", "warn_excluded", "finite_1d"]


NAN = float("nan")


def image_values(image, name):
    """Float values, mask (True = bad, or None) and unit (or None) of an array, masked array, Quantity or NDData.

    A masked array's or NDData's mask is the image's own statement of its bad pixels: read with
    ``np.asarray`` it would be dropped and the masked values measured."""
    mask = unit = None
    if isinstance(image, NDData):
        data, unit = image.data, image.unit
        mask = None if image.mask is None else np.asarray(image.mask, dtype=bool)
    elif isinstance(image, Masked):  # astropy's masked Quantity or array
        data, mask = image.unmasked, np.asarray(image.mask, dtype=bool)
    elif isinstance(image, u.Quantity):
        data, unit = image.value, image.unit
    elif np.ma.isMaskedArray(image):
        data, mask = np.ma.getdata(image), np.ma.getmaskarray(image)
    else:
        data = image.detach().cpu().numpy() if hasattr(image, "detach") else image  # a torch tensor
    if isinstance(data, u.Quantity):
        data, unit = data.value, unit or data.unit
    try:
        values = np.asarray(data, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be an array, masked array, Quantity or NDData of numbers, got {type(image).__name__}"
        ) from None
    if mask is not None and mask.shape != values.shape:
        raise ValueError(f"{name}'s mask has shape {mask.shape}, expected {values.shape}")
    return values, mask, unit


def converted(values, unit, target, names):
    """``values`` in ``unit`` converted to ``target`` (either None: unchanged); ``names``: (what, what it joins)."""
    if unit is None or target is None or unit == target:
        return values
    from ..units import conversion_factor  # nanomaggies and Jy convert only through their zero point

    try:
        return values * conversion_factor(unit, target)
    except (u.UnitsError, ValueError, TypeError):
        raise ValueError(f"{names[0]} is in {unit} and {names[1]} in {target}: give both in one flux unit") from None


def std_of(uncertainty, *, unit=None, default_unit=None, name="sigma"):
    """Standard deviations of any astropy uncertainty, Quantity or array, in ``unit`` when given.

    A variance or inverse variance read as one is off by its square (or worse); anything else
    (a bare array, `~astropy.nddata.UnknownUncertainty`) is taken as standard deviations, in its
    own unit or else ``default_unit``."""
    own = getattr(uncertainty, "unit", None)
    if isinstance(uncertainty, (VarianceUncertainty, InverseVariance)):
        uncertainty = uncertainty.represent_as(StdDevUncertainty)
        own = uncertainty.unit
    values = getattr(uncertainty, "array", uncertainty)
    values = np.asarray(getattr(values, "value", values), dtype=np.float64)
    return converted(values, own if own is not None else default_unit, unit, (name, "the prediction"))


def pair(prediction, truth, mask=None, *, names=("prediction", "truth")):
    """Two float arrays of one shape and the pixels to use (True = use): finite, and masked neither by ``mask``
    nor by either image's own mask (a masked array's or NDData's).  A truth in another unit than the
    prediction's is converted to it; a unit on one side only is warned about (the numbers are compared)."""
    p, p_mask, p_unit = image_values(prediction, names[0])
    t, t_mask, t_unit = image_values(truth, names[1])
    if p.shape != t.shape:
        raise ValueError(f"{names[0]} has shape {p.shape} but {names[1]} has shape {t.shape}")
    t = converted(t, t_unit, p_unit, names[::-1])
    if (p_unit is None) != (t_unit is None):
        which, unit = (names[0], p_unit) if t_unit is None else (names[1], t_unit)
        warnings.warn(f"{which} is in {unit} and the other image has no unit: compared as numbers, as if in "
                      f"{unit} both", AstropyUserWarning, stacklevel=3)
    good = np.isfinite(p) & np.isfinite(t)
    for own in (p_mask, t_mask):
        if own is not None:
            good &= ~own
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
