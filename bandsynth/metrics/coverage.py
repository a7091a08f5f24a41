"""Calibration of the predicted uncertainty: coverage of the 1/2/3-sigma intervals and
z-scores within each galaxy's footprint."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from ..morphology import detection_footprint
from ._utils import NAN, converted, image_values, pair, std_of

__all__ = ["footprint_z_scores", "calibration", "Calibration"]


class Calibration(NamedTuple):
    """Coverage of the predicted 1-sigma uncertainty.

    ``coverage[k]`` is the fraction of pixels with ``|pred − truth| ≤ k σ``
    (ideal for Gaussian errors: 0.683, 0.954, 0.997); ``z_*`` summarise the
    z-scores ``(pred − truth) / σ`` (ideal: median 0, std 1).

    Attributes
    ----------
    coverage : mapping
        Level (multiple of σ) to the fraction of pixels within it.
    z_median, z_mean, z_std : float
        Median, mean and standard deviation of the z-scores.
    z_nmad : float
        1.4826 × median absolute deviation of the z-scores (a robust std).
    n : int
        Number of pixels used.
    """

    coverage: Mapping
    z_median: float
    z_mean: float
    z_std: float
    z_nmad: float  # 1.4826 × median absolute deviation: robust std
    n: int


_NOMINAL = {k: math.erf(k / math.sqrt(2.0)) for k in (1, 2, 3)}


def calibration(prediction, truth, sigma, *, truth_sigma=None, mask=None, footprint=None, levels=(1, 2, 3)):
    """Coverage of the uncertainty at ``levels`` σ, and z-score statistics.

    Parameters
    ----------
    prediction, truth : arrays (of any one shape), masked arrays, Quantities or NDData
        Prediction and true image; a masked array's or NDData's mask is honoured, and a
        truth in another unit than the prediction's is converted.
    sigma : array, Quantity or astropy uncertainty
        The prediction's 1-sigma uncertainty (a variance or inverse variance is converted;
        so is another unit than the prediction's).
    truth_sigma : array, Quantity or astropy uncertainty, optional
        The truth's own 1-sigma noise, when the truth is an observed image: a model's σ
        states its error against the noise-free sky (its calibration takes an observed
        target's noise out), so the residual is compared with both,
        ``z = (prediction − truth) / sqrt(σ² + truth_sigma²)``; without a unit of its own,
        in the truth's.
    mask : bool array, optional
        Pixels to exclude.
    footprint : bool array, optional
        Restrict to these pixels (e.g. the galaxy's segment).
    levels : sequence of float
        Multiples of σ.

    Returns
    -------
    calibration : `Calibration`
        Coverage per level and z-score statistics.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> truth = np.zeros(100_000); sigma = np.full(truth.shape, 2.0)
    >>> cal = calibration(truth + rng.normal(0, 2.0, truth.shape), truth, sigma)
    >>> round(cal.coverage[1], 2), round(cal.coverage[2], 2), round(cal.z_std, 2)
    (0.68, 0.95, 1.0)

    Against an observed truth with noise of its own (σ = 1 here), give that noise:

    >>> observed = truth + rng.normal(0, 1.0, truth.shape)
    >>> pred = truth + rng.normal(0, 2.0, truth.shape)
    >>> round(calibration(pred, observed, sigma).coverage[1], 2)
    0.63
    >>> round(calibration(pred, observed, sigma, truth_sigma=np.ones(truth.shape)).coverage[1], 2)
    0.68
    """
    p, t, good = pair(prediction, truth, mask)
    unit = getattr(prediction, "unit", None)  # sigmas in another unit are converted to it, as the truth is
    s = std_of(sigma, unit=unit)
    if s.shape != p.shape:
        raise ValueError(f"sigma has shape {s.shape} but prediction has shape {p.shape}")
    good &= np.isfinite(s) & (s > 0)
    if truth_sigma is not None:
        noise = std_of(truth_sigma, unit=unit, default_unit=getattr(truth, "unit", None), name="truth_sigma")
        if noise.shape != p.shape:
            raise ValueError(f"truth_sigma has shape {noise.shape} but prediction has shape {p.shape}")
        good &= np.isfinite(noise)
        s = np.hypot(s, np.where(good, noise, 0.0))
    if footprint is not None:
        fp = np.asarray(footprint, dtype=bool)
        if fp.shape != p.shape:
            raise ValueError(f"footprint has shape {fp.shape}, expected {p.shape}")
        good &= fp
    if not good.any():
        return Calibration(MappingProxyType({k: NAN for k in levels}), NAN, NAN, NAN, NAN, 0)
    z = (p[good] - t[good]) / s[good]
    az = np.abs(z)
    cov = MappingProxyType({k: float(np.mean(az <= k)) for k in levels})
    med = float(np.median(z))
    nmad = float(1.4826 * np.median(np.abs(z - med)))
    return Calibration(cov, med, float(np.mean(z)), float(np.std(z)), nmad, int(z.size))


def footprint_z_scores(predictions, truths, *, footprints=None):
    """``(prediction - truth) / sigma`` of many galaxies, inside each galaxy's footprint.

    The footprint is by default the galaxy's segment in the truth
    (`bandsynth.morphology.segment`); ``footprints`` gives others, e.g. the galaxy
    detected in a coadd of its bands (`bandsynth.morphology.detection_footprint`), which
    holds the whole of a clumpy ultraviolet disc.  Masked pixels of the prediction and of
    the truth, and the truth's non-finite pixels, are left out; galaxies with no footprint contribute nothing.  A truth with an uncertainty (an
    observed image) adds its noise to σ, as :func:`calibration` does with ``truth_sigma``.

    Parameters
    ----------
    predictions : sequence of SyntheticBand (or NDData with an uncertainty)
    truths : sequence of images (arrays or NDData), same grids
    footprints : sequence of bool arrays (or None), optional
        One per galaxy, on its grid; ``None`` for a galaxy leaves it out.

    Returns
    -------
    ndarray
        The z-scores of all footprint pixels, concatenated.

    Raises
    ------
    ValueError
        If a prediction has no uncertainty, or ``footprints`` does not give one entry per galaxy.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.nddata import NDData, StdDevUncertainty
    >>> y, x = np.mgrid[:32, :32]
    >>> truth = np.exp(-np.hypot(x - 16, y - 16) / 3)
    >>> prediction = NDData(truth + 0.01, uncertainty=StdDevUncertainty(np.full(truth.shape, 0.02)))
    >>> z = footprint_z_scores([prediction], [truth], footprints=[np.ones(truth.shape, bool)])
    >>> z.size, float(np.median(z))
    (1024, 0.5)
    """
    predictions, truths = list(predictions), list(truths)
    if footprints is None:
        footprints = [detection_footprint([truth]) for truth in truths]  # each truth's central segment
    footprints = list(footprints)
    if len(footprints) != len(truths):
        raise ValueError(f"footprints has {len(footprints)} entries, expected one per galaxy ({len(truths)})")
    z = []
    for pred, truth, footprint in zip(predictions, truths, footprints, strict=True):
        if pred.uncertainty is None:
            raise ValueError("footprint_z_scores needs predictions with an uncertainty")
        if footprint is None:
            continue
        noise, unit = getattr(truth, "uncertainty", None), getattr(pred, "unit", None)
        truth, truth_mask, truth_unit = image_values(truth, "truth")
        truth = converted(truth, truth_unit, unit, ("truth", "the prediction"))
        inside = np.asarray(footprint, dtype=bool) & np.isfinite(truth)  # a truth's bad pixels are no test of σ
        for mask in (pred.mask, truth_mask):
            if mask is not None:
                inside &= ~np.asarray(mask, dtype=bool)
        sigma = std_of(pred.uncertainty)[inside]
        if noise is not None:
            sigma = np.hypot(sigma, std_of(noise, unit=unit, default_unit=truth_unit, name="the truth's sigma")[inside])
        z.append((np.asarray(pred.data, dtype=np.float64)[inside] - truth[inside]) / np.maximum(sigma, 1e-300))
    return np.concatenate(z) if z else np.empty(0)

