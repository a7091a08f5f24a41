"""Photometric metrics: aperture and total (Kron) magnitude errors through photutils, and
the fidelity of per-pixel colours against the input bands."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import scipy.ndimage as ndi
from astropy.utils.exceptions import AstropyUserWarning

from ..morphology import segment
from ._utils import NAN, pair

__all__ = ["photometric_error", "colour_fidelity", "PhotometricError", "ColourFidelity"]


class PhotometricError(NamedTuple):
    """Magnitude errors ``Δm = −2.5 log10(F_pred / F_true)`` (nan when not measurable).

    Attributes
    ----------
    total : float
        Δm in the Kron ("total") aperture of the truth.
    aperture : float
        Δm in a circular aperture of the truth's half-light radius.
    flux_pred, flux_true : float
        Total fluxes (same units as the images).
    radius : float
        Half-light radius of the truth, in pixels.
    note : str
        What went wrong, if anything.
    """

    total: float  # Kron ("total") aperture of the truth
    aperture: float  # circular aperture of the truth's half-light radius
    flux_pred: float  # total fluxes (same units as the images)
    flux_true: float
    radius: float  # half-light radius of the truth, pixels
    note: str = ""


def _dmag(fp, ft):
    if not (np.isfinite(fp) and np.isfinite(ft)) or fp <= 0 or ft <= 0:
        return NAN
    return float(-2.5 * math.log10(fp / ft))


def photometric_error(prediction, truth, *, mask=None, segmentation=None, aperture_radius=None):
    """Total and aperture magnitude error of the prediction.

    The truth is segmented (:func:`bandsynth.morphology.segment`); its
    central source defines, through photutils'
    `~photutils.segmentation.SourceCatalog`, a Kron aperture ("total" flux)
    and a circular aperture of the half-light radius around the centroid.
    The same apertures measure both images, each after subtracting its own
    sigma-clipped background outside the source, with the pixels of other sources of
    the segmentation left out (as `~photutils.segmentation.SourceCatalog.kron_flux`
    leaves them out: a neighbour is not the galaxy's flux).  The source is found in the truth
    alone; for a clumpy band (a far-ultraviolet disc breaks into knots) use
    :func:`~bandsynth.metrics.compare` with the input bands, which finds the galaxy in a
    coadd of them (`bandsynth.morphology.detection_footprint`).

    Parameters
    ----------
    prediction, truth : 2-D arrays, masked arrays, Quantities or NDData
        In flux units; their own masks are honoured, and a truth in another unit than
        the prediction's is converted.
    mask : bool array, optional
    segmentation : dict, optional
        Keyword arguments for :func:`~bandsynth.morphology.segment`.
    aperture_radius : float, optional
        Radius (pixels) of the circular aperture instead of the half-light radius.

    Returns
    -------
    PhotometricError
        With nan values and a ``note`` when the truth has no detectable source.

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[:64, :64]
    >>> truth = np.exp(-np.hypot(x - 32, y - 32) / 4)
    >>> err = photometric_error(1.1 * truth, truth)
    >>> round(err.total, 3), round(err.aperture, 3)
    (-0.103, -0.103)
    """
    p, t, good = pair(prediction, truth, mask)
    seg = segment(np.ma.array(np.nan_to_num(t), mask=~good), **(segmentation or {}))
    return photometry_with_segmentation(p, t, good, seg, aperture_radius)


def photometry_with_segmentation(p, t, good, seg, aperture_radius=None):
    """:func:`photometric_error` given the truth's segmentation."""
    from astropy.stats import sigma_clipped_stats
    from photutils.aperture import CircularAperture
    from photutils.segmentation import SourceCatalog

    bad = ~good
    if seg.segmap is None or seg.label == 0:
        return PhotometricError(NAN, NAN, NAN, NAN, NAN, "no source detected in the truth")
    source = np.asarray(seg.segmap.data) > 0
    outside = ~ndi.binary_dilation(source, iterations=3) & good
    # each image's own sky level, measured on the same pixels (away from every source)
    level_p = level_t = 0.0
    if outside.sum() > 0.05 * t.size:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)
            level_p = float(sigma_clipped_stats(p, mask=~outside)[1])
            level_t = float(sigma_clipped_stats(t, mask=~outside)[1])
    pimg = np.where(bad, 0.0, p - level_p)
    timg = np.where(bad, 0.0, t - level_t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # attribute renames across photutils versions
        cat = SourceCatalog(timg, seg.segmap, mask=bad)
        src = cat.select_label(seg.label) if hasattr(cat, "select_label") else cat.get_label(seg.label)
        kron = src.kron_aperture
        if aperture_radius is None:
            radius = float(np.atleast_1d(getattr(src.fluxfrac_radius(0.5), "value", src.fluxfrac_radius(0.5)))[0])
        else:
            radius = float(aperture_radius)
    if kron is None or not np.isfinite(radius) or radius <= 0:
        return PhotometricError(NAN, NAN, NAN, NAN, radius, "the truth's source has no valid aperture")
    circ = CircularAperture(kron.positions, max(radius, 0.5))
    # other sources' pixels left out of the apertures, as photutils' own kron_flux does: a neighbour inside the
    # ellipse counted in both images flipped a galaxy's delta mag from +0.05 to -0.06
    labels = np.asarray(seg.segmap.data)
    masked = bad | ((labels > 0) & (labels != seg.label))
    ft, fp, at, ap = (float(aperture.do_photometry(img, mask=masked)[0][0])
                      for aperture, img in ((kron, timg), (kron, pimg), (circ, timg), (circ, pimg)))
    note = "" if min(fp, ft, ap, at) > 0 else "non-positive flux in an aperture"
    return PhotometricError(_dmag(fp, ft), _dmag(ap, at), fp, ft, radius, note)


class ColourFidelity(NamedTuple):
    """Per-pixel colour errors against one input band, in magnitudes.

    Attributes
    ----------
    median_abs_error : float
        Median absolute colour error.
    median_error : float
        Signed median: > 0 when the prediction is too faint.
    n : int
        Number of pixels used.
    """

    median_abs_error: float
    median_error: float  # signed: > 0 when the prediction is too faint
    n: int


def colour_fidelity(prediction, truth, inputs, *, mask=None, footprint=None):
    """How well the prediction keeps the colours against each input band.

    For every input band X and every pixel in the footprint where the
    prediction, the truth and X are all positive, the colour error is
    ``[−2.5 log10(pred / X)] − [−2.5 log10(truth / X)]``.  X cancels within a
    pixel, so per pixel this is the magnitude error; it is reported per input
    band because each band selects its own pixels (where X has flux), and it is
    where high-order information such as redshift lives.  Images must be in
    physical (linear) flux units.

    Parameters
    ----------
    prediction, truth : 2-D arrays, masked arrays, Quantities or NDData
        Prediction and true image, in linear flux units; their own masks are honoured,
        and a truth in another unit than the prediction's is converted.
    inputs : mapping of band name to 2-D array
        The input bands, in the same units.
    mask : bool array, optional
        Pixels to exclude (True = excluded).
    footprint : bool array, optional
        Restrict to these pixels (e.g. the galaxy's segment).

    Returns
    -------
    dict
        Band name to :class:`ColourFidelity`.

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.full((8, 8), 2.0); g = np.full((8, 8), 1.0)
    >>> res = colour_fidelity(truth * 10 ** (-0.4 * 0.1), truth, {"g": g})
    >>> round(res["g"].median_abs_error, 6)
    0.1
    """
    if not isinstance(inputs, Mapping):
        raise TypeError(f"inputs must be a mapping of band name to image, got {type(inputs).__name__}")
    p, t, good = pair(prediction, truth, mask)
    if footprint is not None:
        fp = np.asarray(footprint, dtype=bool)
        if fp.shape != p.shape:
            raise ValueError(f"footprint has shape {fp.shape}, expected {p.shape}")
        good &= fp
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for band, img in inputs.items():
            x = np.asarray(img, dtype=float)
            if x.shape != p.shape:
                raise ValueError(f"input {band!r} has shape {x.shape} but the prediction has shape {p.shape}")
            use = good & np.isfinite(x) & (p > 0) & (t > 0) & (x > 0)
            if not use.any():
                out[str(band)] = ColourFidelity(NAN, NAN, 0)
                continue
            err = -2.5 * np.log10(p[use] / x[use]) + 2.5 * np.log10(t[use] / x[use])
            out[str(band)] = ColourFidelity(float(np.median(np.abs(err))), float(np.median(err)), int(use.sum()))
    return out
