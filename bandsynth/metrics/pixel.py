"""Pixel metrics of a prediction against the truth: MAE, PSNR, SSIM and the SSIM gain.

They follow Zaazou, Bihlo & Tricco (§2.2): MAE, SSIM (Gaussian window, σ = 1.5, as
``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)``) and PSNR, all with a stated data range; the SSIM gain of
the thesis (§3.6.1) is SSIM(output, target) − SSIM(input, target).  :func:`ssim` is the
package's one numpy SSIM (the training loss has its own torch SSIM in `bandsynth.losses`)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import scipy.ndimage as ndi

from ._utils import NAN, check_range, pair, warn_excluded

__all__ = ["mae", "ssim", "psnr", "ssim_gain"]


def mae(prediction, truth, *, mask=None):
    """Mean absolute error over the unmasked, finite pixels.

    Parameters
    ----------
    prediction, truth : array-like, masked array, Quantity or NDData
        Images of one shape; their own masks are honoured, and a truth in another
        unit than the prediction's is converted.
    mask : bool array, optional
        Pixels to exclude (True = excluded); non-finite pixels are always excluded,
        with a warning.

    Returns
    -------
    mae : float
        The mean absolute error (nan when no pixel is left).

    Examples
    --------
    >>> import numpy as np
    >>> mae(np.array([[1.0, 2.0]]), np.array([[1.5, 2.0]]))
    0.25
    """
    p, t, good = pair(prediction, truth, mask)
    warn_excluded(int((~good).sum()))
    if not good.any():
        return NAN
    return float(np.mean(np.abs(p[good] - t[good])))


def psnr(prediction, truth, *, data_range, mask=None):
    """Peak signal-to-noise ratio ``10 log10(data_range² / MSE)`` in dB.

    ``inf`` for identical images (as scikit-image).

    Parameters
    ----------
    prediction, truth : array-like, masked array, Quantity or NDData
        Images of one shape; their own masks are honoured, and a truth in another
        unit than the prediction's is converted.
    data_range : float
        Dynamic range of the images (1 for images scaled to [0, 1]).
    mask : bool array, optional
        Pixels to exclude (True = excluded).

    Returns
    -------
    psnr : float
        PSNR in dB (nan when no pixel is left).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.zeros((4, 4)); p = t + 0.1
    >>> psnr(p, t, data_range=1.0)
    20.0
    """
    data_range = check_range(data_range)
    p, t, good = pair(prediction, truth, mask)
    warn_excluded(int((~good).sum()))
    if not good.any():
        return NAN
    mse = float(np.mean((p[good] - t[good]) ** 2))
    if mse == 0:
        return float("inf")
    return float(round(10.0 * math.log10(data_range**2 / mse), 12))


def ssim(prediction, truth, *, data_range, mask=None, sigma=1.5, full=False):
    """Structural similarity with a Gaussian window (Wang et al. 2004).

    Identical to ``skimage.metrics.structural_similarity(prediction, truth,
    data_range=data_range, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``: K1 = 0.01, K2 = 0.03, window truncated at
    3.5 σ, reflecting borders, the map averaged after cropping the window
    radius.  Masked or non-finite pixels (with a warning) are left out of each
    window's means, variances and covariance (a normalised convolution: the
    window's weights over the pixels left) and of the average.

    Parameters
    ----------
    prediction, truth : 2-D arrays, masked arrays, Quantities or NDData
        Images of one shape; their own masks are honoured, and a truth in another
        unit than the prediction's is converted.
    data_range : float
        Dynamic range of the images (1 for images scaled to [0, 1]).
    mask : bool array, optional
        Pixels to exclude.
    sigma : float
        Width of the Gaussian window.
    full : bool
        Also return the SSIM map.

    Returns
    -------
    ssim : float
        The mean SSIM over the used pixels (nan when none is left).
    smap : ndarray
        The SSIM map, only with ``full=True`` (then a pair is returned).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> t = rng.random((32, 32))
    >>> ssim(t, t, data_range=1.0)
    1.0
    """
    data_range = check_range(data_range)
    p, t, good = pair(prediction, truth, mask)
    if p.ndim != 2:
        raise ValueError(f"ssim needs 2-D images, got shape {p.shape}")
    warn_excluded(int((~good).sum()))
    truncate = 3.5
    pad = int(truncate * sigma + 0.5)
    if min(p.shape) <= 2 * pad:
        raise ValueError(f"images of shape {p.shape} are too small for an SSIM window of radius {pad}")
    p = np.where(good, p, 0.0)
    t = np.where(good, t, 0.0)
    # Zeros in place of masked pixels, the same in both images, would count as agreement and raise SSIM
    # (every other row masked: 0.58 for an image of 0.36); each window is weighted over its good pixels instead.
    weight = None if good.all() else ndi.gaussian_filter(good.astype(float), sigma=sigma, mode="reflect",
                                                         truncate=truncate)

    def filt(a):
        mean = ndi.gaussian_filter(a, sigma=sigma, mode="reflect", truncate=truncate)
        return mean if weight is None else mean / np.maximum(weight, 1e-12)

    ux, uy = filt(p), filt(t)
    vx = filt(p * p) - ux * ux
    vy = filt(t * t) - uy * uy
    vxy = filt(p * t) - ux * uy
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    smap = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    inner = (slice(pad, -pad), slice(pad, -pad))
    use = good[inner]
    value = float(np.mean(smap[inner][use], dtype=np.float64)) if use.any() else NAN
    return (value, smap) if full else value


def ssim_gain(output, target, inputs, *, data_range, mask=None):
    """SSIM gain per input band: ``SSIM(output, target) − SSIM(input, target)``.

    Positive values mean the prediction is closer to the target than the input
    band already was (thesis §3.6.1).

    Parameters
    ----------
    output, target : 2-D arrays
        The prediction and the true image.
    inputs : mapping of band name to 2-D array
        In the same (scaled) space as ``output`` and ``target``.
    data_range : float
        Dynamic range of the images.
    mask : bool array, optional
        Pixels to exclude (True = excluded).

    Returns
    -------
    dict
        Band name to gain.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> target = rng.random((24, 24))
    >>> gains = ssim_gain(target, target, {"g": rng.random((24, 24))}, data_range=1.0)
    >>> bool(gains["g"] > 0.5)
    True
    """
    if not isinstance(inputs, Mapping):
        raise TypeError(f"inputs must be a mapping of band name to image, got {type(inputs).__name__}")
    base = ssim(output, target, data_range=data_range, mask=mask)
    return {
        str(band): base - ssim(np.asarray(img, dtype=float), target, data_range=data_range, mask=mask)
        for band, img in inputs.items()
    }
