"""Metrics for a predicted band: pixel, photometric, calibration, colour, morphology.

The pixel metrics follow Zaazou, Bihlo & Tricco (§2.2): MAE, SSIM (Gaussian
window, σ = 1.5, as ``skimage.metrics.structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``) and PSNR,
all with a stated data range; the SSIM gain of the thesis (§3.6.1) is
SSIM(output, target) − SSIM(input, target).  Gini/M20 distributions over a set
of galaxies are compared with the first Wasserstein distance after a *global*
min–max normalisation (the min and max over both distributions map to 0 and
1), so W1 is 0 for identical and at most 1 for disjoint distributions.

Astronomical checks go beyond the paper: aperture and total (Kron) magnitude
errors through photutils, coverage of the predicted uncertainty, and the
fidelity of per-pixel colours against the input bands.

:func:`compare` runs everything on one galaxy and returns a
:class:`ComparisonReport`; :func:`evaluate_pairs` runs it over many galaxies
into an `~astropy.table.Table` (one row per galaxy, failures recorded, never
raised) and :func:`summarize` reduces that table to the paper's one-row summary.

Examples
--------
>>> import numpy as np
>>> from bandsynth.metrics import mae, psnr, wasserstein1
>>> truth = np.linspace(0, 1, 100).reshape(10, 10)
>>> round(mae(truth + 0.01, truth), 6), round(psnr(truth + 0.01, truth, data_range=1.0), 1)
(0.01, 40.0)
>>> wasserstein1([0.0, 0.1], [0.9, 1.0])   # disjoint after global min-max scaling
0.9
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import scipy.ndimage as ndi
from astropy.utils.exceptions import AstropyUserWarning

from .morphology import _FastGiniM20, _parse_image, segment

__all__ = [
    "footprint_z_scores",
    "mae",
    "ssim",
    "psnr",
    "ssim_gain",
    "wasserstein1",
    "global_limits",
    "photometric_error",
    "calibration",
    "colour_fidelity",
    "PhotometricError",
    "Calibration",
    "ColourFidelity",
    "ComparisonReport",
    "compare",
    "evaluate_pairs",
    "summarize",
]

log = logging.getLogger(__name__)

_NAN = float("nan")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _pair(prediction, truth, mask=None, *, names=("prediction", "truth")):
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


def _check_range(data_range):
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float, np.number)):
        raise TypeError(f"data_range must be a number, got {type(data_range).__name__}")
    if not np.isfinite(data_range) or data_range <= 0:
        raise ValueError(f"data_range must be finite and > 0, got {data_range!r}")
    return float(data_range)


def _warn_excluded(n, what="pixel(s)"):
    if n:
        warnings.warn(f"{n} masked or non-finite {what} excluded from the metrics", AstropyUserWarning, stacklevel=3)


# --------------------------------------------------------------------------
# pixel metrics
# --------------------------------------------------------------------------


def mae(prediction, truth, *, mask=None):
    """Mean absolute error over the unmasked, finite pixels.

    Examples
    --------
    >>> import numpy as np
    >>> mae(np.array([[1.0, 2.0]]), np.array([[1.5, 2.0]]))
    0.25
    """
    p, t, good = _pair(prediction, truth, mask)
    _warn_excluded(int((~good).sum()))
    if not good.any():
        return _NAN
    return float(np.mean(np.abs(p[good] - t[good])))


def psnr(prediction, truth, *, data_range, mask=None):
    """Peak signal-to-noise ratio ``10 log10(data_range² / MSE)`` in dB.

    ``inf`` for identical images (as scikit-image).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.zeros((4, 4)); p = t + 0.1
    >>> psnr(p, t, data_range=1.0)
    20.0
    """
    data_range = _check_range(data_range)
    p, t, good = _pair(prediction, truth, mask)
    _warn_excluded(int((~good).sum()))
    if not good.any():
        return _NAN
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
    radius.  Masked or non-finite pixels are set to 0 in both images (with a
    warning) and left out of the average.

    Parameters
    ----------
    prediction, truth : 2-D arrays
    data_range : float
        Dynamic range of the images (1 for images scaled to [0, 1]).
    mask : bool array, optional
        Pixels to exclude.
    sigma : float
        Width of the Gaussian window.
    full : bool
        Also return the SSIM map.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> t = rng.random((32, 32))
    >>> ssim(t, t, data_range=1.0)
    1.0
    """
    data_range = _check_range(data_range)
    p, t, good = _pair(prediction, truth, mask)
    if p.ndim != 2:
        raise ValueError(f"ssim needs 2-D images, got shape {p.shape}")
    _warn_excluded(int((~good).sum()))
    truncate = 3.5
    pad = int(truncate * sigma + 0.5)
    if min(p.shape) <= 2 * pad:
        raise ValueError(f"images of shape {p.shape} are too small for an SSIM window of radius {pad}")
    p = np.where(good, p, 0.0)
    t = np.where(good, t, 0.0)

    def filt(a):
        return ndi.gaussian_filter(a, sigma=sigma, mode="reflect", truncate=truncate)

    ux, uy = filt(p), filt(t)
    vx = filt(p * p) - ux * ux
    vy = filt(t * t) - uy * uy
    vxy = filt(p * t) - ux * uy
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    smap = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    inner = (slice(pad, -pad), slice(pad, -pad))
    use = good[inner]
    value = float(np.mean(smap[inner][use], dtype=np.float64)) if use.any() else _NAN
    return (value, smap) if full else value


def ssim_gain(output, target, inputs, *, data_range, mask=None):
    """SSIM gain per input band: ``SSIM(output, target) − SSIM(input, target)``.

    Positive values mean the prediction is closer to the target than the input
    band already was (thesis §3.6.1).

    Parameters
    ----------
    output, target : 2-D arrays
    inputs : mapping of band name to 2-D array
        In the same (scaled) space as ``output`` and ``target``.
    data_range : float

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


# --------------------------------------------------------------------------
# distribution distance
# --------------------------------------------------------------------------


def _finite_1d(values, name):
    arr = np.asarray(values, dtype=float).ravel()
    good = np.isfinite(arr)
    if not good.all():
        warnings.warn(f"{name}: {int((~good).sum())} non-finite value(s) dropped", AstropyUserWarning, stacklevel=3)
        arr = arr[good]
    if arr.size == 0:
        raise ValueError(f"{name} has no finite values: cannot compute a distribution distance")
    return arr


def global_limits(*distributions):
    """``(min, max)`` over all finite values of all ``distributions``.

    Use it to share one normalisation across the rows of a table (several
    models compared against the same truth).

    Examples
    --------
    >>> global_limits([0.3, 0.5], [0.4, 0.7, float("nan")])
    (0.3, 0.7)
    """
    if not distributions:
        raise ValueError("global_limits needs at least one distribution")
    vals = [np.asarray(d, dtype=float).ravel() for d in distributions]
    vals = np.concatenate(vals)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        raise ValueError("the distributions have no finite values")
    return float(vals.min()), float(vals.max())


def wasserstein1(u, v, *, limits=None):
    """First Wasserstein (earth mover's) distance after global min–max scaling.

    Both samples are mapped to [0, 1] with the same ``(min, max)`` - by default
    those of the two samples together (Zaazou et al. §2.2) - so the distance
    is 0 for identical and at most 1 for disjoint distributions.

    Parameters
    ----------
    u, v : 1-D arrays
        The two samples (e.g. Gini of predictions and of truths).  Non-finite
        values are dropped with a warning.
    limits : (float, float), optional
        Explicit global ``(min, max)``, e.g. from :func:`global_limits` over
        every model of a table.  All values must lie inside.

    Examples
    --------
    >>> wasserstein1([0.40, 0.50, 0.60], [0.40, 0.50, 0.60])
    0.0
    >>> round(wasserstein1([0.4, 0.5], [0.5, 0.6], limits=(0.0, 1.0)), 6)
    0.1
    """
    from scipy.stats import wasserstein_distance

    a = _finite_1d(u, "u")
    b = _finite_1d(v, "v")
    if limits is None:
        lo, hi = global_limits(a, b)
    else:
        try:
            lo, hi = (float(x) for x in limits)
        except (TypeError, ValueError):
            raise TypeError(f"limits must be a pair of numbers (min, max), got {limits!r}") from None
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi < lo:
            raise ValueError(f"limits must be finite with min <= max, got {limits!r}")
        tol = 1e-12 * max(1.0, abs(hi - lo))
        outside = int(np.sum((a < lo - tol) | (a > hi + tol)) + np.sum((b < lo - tol) | (b > hi + tol)))
        if outside:
            raise ValueError(f"{outside} value(s) lie outside limits {limits!r}; widen the limits")
    if hi == lo:
        return 0.0
    return float(wasserstein_distance((a - lo) / (hi - lo), (b - lo) / (hi - lo)))


# --------------------------------------------------------------------------
# photometry, calibration, colours
# --------------------------------------------------------------------------


class PhotometricError(NamedTuple):
    """Magnitude errors ``Δm = −2.5 log10(F_pred / F_true)`` (nan when not measurable)."""

    total: float  # Kron ("total") aperture of the truth
    aperture: float  # circular aperture of the truth's half-light radius
    flux_pred: float  # total fluxes (same units as the images)
    flux_true: float
    radius: float  # half-light radius of the truth, pixels
    note: str = ""


def _dmag(fp, ft):
    if not (np.isfinite(fp) and np.isfinite(ft)) or fp <= 0 or ft <= 0:
        return _NAN
    return float(-2.5 * math.log10(fp / ft))


def photometric_error(prediction, truth, *, mask=None, segmentation=None, aperture_radius=None):
    """Total and aperture magnitude error of the prediction.

    The truth is segmented (:func:`bandsynth.morphology.segment`); its
    central source defines, through photutils'
    `~photutils.segmentation.SourceCatalog`, a Kron aperture ("total" flux)
    and a circular aperture of the half-light radius around the centroid.
    The same apertures measure both images, each after subtracting its own
    sigma-clipped background outside the source.

    Parameters
    ----------
    prediction, truth : 2-D arrays in the same flux units
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
    p, t, good = _pair(prediction, truth, mask)
    seg = segment(np.ma.array(np.nan_to_num(t), mask=~good), **(segmentation or {}))
    return _photometry(p, t, good, seg, aperture_radius)


def _photometry(p, t, good, seg, aperture_radius=None):
    """:func:`photometric_error` given the truth's segmentation."""
    from astropy.stats import sigma_clipped_stats
    from photutils.aperture import CircularAperture
    from photutils.segmentation import SourceCatalog

    bad = ~good
    if seg.segmap is None or seg.label == 0:
        return PhotometricError(_NAN, _NAN, _NAN, _NAN, _NAN, "no source detected in the truth")
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
        return PhotometricError(_NAN, _NAN, _NAN, _NAN, radius, "the truth's source has no valid aperture")
    circ = CircularAperture(kron.positions, max(radius, 0.5))
    ft = float(kron.do_photometry(timg, mask=bad)[0][0])
    fp = float(kron.do_photometry(pimg, mask=bad)[0][0])
    at = float(circ.do_photometry(timg, mask=bad)[0][0])
    ap = float(circ.do_photometry(pimg, mask=bad)[0][0])
    note = "" if min(fp, ft, ap, at) > 0 else "non-positive flux in an aperture"
    return PhotometricError(_dmag(fp, ft), _dmag(ap, at), fp, ft, radius, note)


class Calibration(NamedTuple):
    """Coverage of the predicted 1-sigma uncertainty.

    ``coverage[k]`` is the fraction of pixels with ``|pred − truth| ≤ k σ``
    (ideal for Gaussian errors: 0.683, 0.954, 0.997); ``z_*`` summarise the
    z-scores ``(pred − truth) / σ`` (ideal: median 0, std 1).
    """

    coverage: Mapping
    z_median: float
    z_mean: float
    z_std: float
    z_nmad: float  # 1.4826 × median absolute deviation: robust std
    n: int


_NOMINAL = {k: math.erf(k / math.sqrt(2.0)) for k in (1, 2, 3)}


def calibration(prediction, truth, sigma, *, mask=None, footprint=None, levels=(1, 2, 3)):
    """Coverage of the uncertainty at ``levels`` σ, and z-score statistics.

    Parameters
    ----------
    prediction, truth, sigma : 2-D arrays (or any arrays of one shape)
    mask : bool array, optional
        Pixels to exclude.
    footprint : bool array, optional
        Restrict to these pixels (e.g. the galaxy's segment).
    levels : sequence of float
        Multiples of σ.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> truth = np.zeros(100_000); sigma = np.full(truth.shape, 2.0)
    >>> cal = calibration(truth + rng.normal(0, 2.0, truth.shape), truth, sigma)
    >>> round(cal.coverage[1], 2), round(cal.coverage[2], 2), round(cal.z_std, 2)
    (0.68, 0.95, 1.0)
    """
    p, t, good = _pair(prediction, truth, mask)
    s = np.asarray(sigma, dtype=float)
    if s.shape != p.shape:
        raise ValueError(f"sigma has shape {s.shape} but prediction has shape {p.shape}")
    good &= np.isfinite(s) & (s > 0)
    if footprint is not None:
        fp = np.asarray(footprint, dtype=bool)
        if fp.shape != p.shape:
            raise ValueError(f"footprint has shape {fp.shape}, expected {p.shape}")
        good &= fp
    if not good.any():
        return Calibration(MappingProxyType({k: _NAN for k in levels}), _NAN, _NAN, _NAN, _NAN, 0)
    z = (p[good] - t[good]) / s[good]
    az = np.abs(z)
    cov = MappingProxyType({k: float(np.mean(az <= k)) for k in levels})
    med = float(np.median(z))
    nmad = float(1.4826 * np.median(np.abs(z - med)))
    return Calibration(cov, med, float(np.mean(z)), float(np.std(z)), nmad, int(z.size))


class ColourFidelity(NamedTuple):
    """Per-pixel colour errors against one input band, in magnitudes."""

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
    p, t, good = _pair(prediction, truth, mask)
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
                out[str(band)] = ColourFidelity(_NAN, _NAN, 0)
                continue
            err = -2.5 * np.log10(p[use] / x[use]) + 2.5 * np.log10(t[use] / x[use])
            out[str(band)] = ColourFidelity(float(np.median(np.abs(err))), float(np.median(err)), int(use.sum()))
    return out


# --------------------------------------------------------------------------
# one galaxy: compare()
# --------------------------------------------------------------------------


def _fmt(v, spec=".4g"):
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


@dataclass(frozen=True)
class ComparisonReport:
    """Everything :func:`compare` measured for one predicted image.

    Pixel metrics (``mae``, ``ssim``, ``psnr``) are in ``space`` ("scaled":
    the network's asinh space; "raw": the arrays as given) with
    ``data_range``.  Magnitude errors are ``−2.5 log10(pred / truth)``.
    Values that could not be computed are nan, with a key in ``flags`` and an
    explanation in ``notes``.

    Groups of fields: pixel metrics (``mae``, ``ssim``, ``psnr``,
    ``ssim_input`` and ``ssim_gain`` per input band); photometry
    (``dmag_total`` in the truth's Kron aperture, ``dmag_aperture`` within its
    half-light radius, ``flux_pred``/``flux_true``); calibration
    (``coverage_{1,2,3}sigma``, z-score ``z_median``/``z_std``/``z_nmad``, nan
    without an uncertainty); colours (``colour_error``: median absolute
    per-pixel colour error per input band, ``colour_bias``: its signed
    median, both in mag); morphology (``gini_*``/``m20_*`` of prediction and
    truth with the quality flags ``morph_flag_*``, -1 when not measured).
    """

    space: str
    data_range: float
    n_pixels: int
    n_excluded: int
    mae: float
    ssim: float
    psnr: float
    ssim_input: Mapping = field(default_factory=dict)
    ssim_gain: Mapping = field(default_factory=dict)
    dmag_total: float = _NAN
    dmag_aperture: float = _NAN
    flux_pred: float = _NAN
    flux_true: float = _NAN
    coverage_1sigma: float = _NAN
    coverage_2sigma: float = _NAN
    coverage_3sigma: float = _NAN
    z_median: float = _NAN
    z_std: float = _NAN
    z_nmad: float = _NAN
    colour_error: Mapping = field(default_factory=dict)
    colour_bias: Mapping = field(default_factory=dict)
    gini_pred: float = _NAN
    gini_true: float = _NAN
    m20_pred: float = _NAN
    m20_true: float = _NAN
    morph_flag_pred: int = -1
    morph_flag_true: int = -1
    flags: tuple = ()
    notes: tuple = ()

    def __post_init__(self):
        for name in ("ssim_input", "ssim_gain", "colour_error", "colour_bias"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    @property
    def ok(self) -> bool:
        """True when nothing was flagged."""
        return not self.flags

    def to_dict(self) -> dict:
        """Flat dict of scalars: mappings become ``ssim_gain_<band>`` etc."""
        out = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Mapping):
                for band, v in value.items():
                    out[f"{name}_{band}"] = v
            elif isinstance(value, tuple):
                out[name] = "; ".join(value) if name == "notes" else ",".join(value)
            else:
                out[name] = value
        return out

    def to_table(self):
        """One-row `~astropy.table.QTable` (magnitudes in mag, PSNR in dB)."""
        import astropy.units as u
        from astropy.table import QTable

        row = self.to_dict()
        table = QTable()
        for key, value in row.items():
            col = [value]
            if key.startswith(("dmag_", "colour_")):
                col = [value] * u.mag
            elif key == "psnr":
                col = [value] * u.dB
            table[key] = col
        return table

    def __repr__(self):
        lines = [f"ComparisonReport(space={self.space!r}, data_range={_fmt(self.data_range)}, "
                 f"pixels={self.n_pixels}, excluded={self.n_excluded})"]  # fmt: skip
        lines.append(f"  MAE {_fmt(self.mae)}  SSIM {_fmt(self.ssim)}  PSNR {_fmt(self.psnr, '.3g')} dB")
        if self.ssim_gain:
            gains = ", ".join(f"{b} {_fmt(v, '+.3f')}" for b, v in self.ssim_gain.items())
            lines.append(f"  SSIM gain: {gains}")
        lines.append(f"  Δmag total {_fmt(self.dmag_total, '+.3f')}, aperture {_fmt(self.dmag_aperture, '+.3f')}")
        if not math.isnan(self.coverage_1sigma):
            lines.append(
                f"  coverage 1σ {_fmt(self.coverage_1sigma, '.3f')} 2σ {_fmt(self.coverage_2sigma, '.3f')} "
                f"3σ {_fmt(self.coverage_3sigma, '.3f')} (z median {_fmt(self.z_median, '+.3f')}, "
                f"std {_fmt(self.z_std, '.3f')}, robust std {_fmt(self.z_nmad, '.3f')})"
            )
        if self.colour_error:
            cols = ", ".join(f"{b} {_fmt(v, '.3f')}" for b, v in self.colour_error.items())
            lines.append(f"  median |colour error| [mag]: {cols}")
        lines.append(
            f"  Gini {_fmt(self.gini_pred, '.3f')} (truth {_fmt(self.gini_true, '.3f')})  "
            f"M20 {_fmt(self.m20_pred, '.3f')} (truth {_fmt(self.m20_true, '.3f')})"
        )
        if self.flags:
            lines.append(f"  flags: {', '.join(self.flags)}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        return "\n".join(lines)


def _scaling_for(scaling, band):
    """The AsinhScaling to use for ``band`` (None if not available)."""
    from .scaling import AsinhScaling

    if scaling is None:
        return None
    if isinstance(scaling, AsinhScaling):
        return scaling
    if isinstance(scaling, Mapping):
        entries = scaling.get("bands", scaling)  # provenance dicts may nest the bands
        keys = {str(k).lower(): v for k, v in entries.items()} if isinstance(entries, Mapping) else {}
        candidates = [band] if band else []
        if band:
            try:
                from .bands import get_band

                b = get_band(band)
                candidates += [b.name, *b.names]
            except ValueError:
                pass
        candidates.append("target")
        for c in candidates:
            v = keys.get(str(c).lower())
            if isinstance(v, AsinhScaling):
                return v
            if isinstance(v, Mapping) and "softening" in v and "maximum" in v:
                return AsinhScaling(softening=float(v["softening"]), maximum=float(v["maximum"]))
        return None
    raise TypeError(
        f"scaling must be an AsinhScaling, a mapping band -> AsinhScaling or 'provenance', got {scaling!r}"
    )


def _band_name(obj):
    band = getattr(obj, "band", None)
    name = getattr(band, "name", band)
    if name is None and hasattr(obj, "meta"):
        prov = (obj.meta or {}).get("provenance") or {}
        name = prov.get("band") if isinstance(prov, Mapping) else None
    return str(name) if name else None


def _parse_inputs(inputs, shape):
    """``inputs`` (mapping or BandStack-like) -> ordered dict band -> parsed image."""
    if inputs is None:
        return {}
    if hasattr(inputs, "names") and hasattr(inputs, "__getitem__") and not isinstance(inputs, Mapping):
        items = [(n, inputs[n]) for n in inputs.names]
    elif isinstance(inputs, Mapping):
        items = list(inputs.items())
    else:
        raise TypeError(f"inputs must be a mapping of band name to image or a BandStack, got {type(inputs).__name__}")
    out = {}
    for band, img in items:
        parsed = _parse_image(img, f"input {band!r}")
        if parsed.data.shape != shape:
            raise ValueError(f"input {band!r} has shape {parsed.data.shape} but the truth has shape {shape}")
        out[str(band)] = parsed
    return out


def compare(prediction, truth, *, inputs=None, scaling=None, reference=None, footprint=None, data_range=None,
            segmentation=None):  # fmt: skip
    """All metrics of a predicted image against the true one.

    Parameters
    ----------
    prediction : SyntheticBand, NDData, CCDData, array or FITS path
        The predicted image in physical units; its uncertainty (if any) is
        checked by the calibration metrics.
    truth : same kinds
        The observed (or simulated) image of the same band, same grid.
    inputs : mapping band -> image, or BandStack, optional
        The input bands: enables SSIM gain and colour fidelity.
    scaling : AsinhScaling, mapping band -> AsinhScaling, or "provenance", optional
        With ``reference``, the pixel metrics (MAE, SSIM, PSNR) are computed
        in the network's asinh-scaled space, as the paper defines them;
        "provenance" takes both from ``prediction.meta["provenance"]``.
        Without a scaling they are computed on the raw arrays.
    reference : float, optional
        Reference flux of the galaxy (see `bandsynth.scaling.reference_flux`);
        derived from ``inputs`` when omitted.
    footprint : bool array, optional
        Pixels for calibration and colour metrics (default: the truth's
        dilated source segment).
    data_range : float, optional
        Data range of the pixel metrics: default 1 in scaled space and
        max − min of the truth in raw space.
    segmentation : dict, optional
        Keyword arguments for `bandsynth.morphology.segment`.

    Returns
    -------
    ComparisonReport
        Problems with the data (no detectable source, all pixels masked, no
        uncertainty) are flagged in the report, never raised.

    Raises
    ------
    ValueError
        If the images have different shapes.
    TypeError
        If an argument is of the wrong kind.

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[:64, :64]
    >>> truth = np.exp(-np.hypot(x - 32, y - 31) / 5)
    >>> report = compare(0.95 * truth, truth)
    >>> report.space, round(report.dmag_total, 3), round(report.ssim, 3)
    ('raw', 0.056, 0.999)
    """
    pred = _parse_image(prediction, "prediction", warn=False)  # one warning below covers both
    true = _parse_image(truth, "truth", warn=False)
    if pred.data.shape != true.data.shape:
        raise ValueError(f"prediction has shape {pred.data.shape} but truth has shape {true.data.shape}")
    shape = true.data.shape
    ins = _parse_inputs(inputs, shape)
    flags, notes = [], []
    bad = pred.mask | true.mask
    n_excluded = int(bad.sum())
    if n_excluded:
        warnings.warn(f"{n_excluded} masked or non-finite pixel(s) excluded from the metrics", AstropyUserWarning,
                      stacklevel=2)  # fmt: skip
    good = ~bad
    p_raw = np.where(good, pred.data, np.nan).astype(float)
    t_raw = np.where(good, true.data, np.nan).astype(float)

    # ---- pixel space
    band = _band_name(prediction) or _band_name(truth)
    if isinstance(scaling, str):
        if scaling != "provenance":
            raise ValueError(f"scaling must be an AsinhScaling, a mapping or 'provenance', got {scaling!r}")
        prov = (getattr(prediction, "meta", None) or {}).get("provenance") or {}
        scaling = prov.get("scaling") or None
        if reference is None and scaling:
            reference = scaling.get("reference_flux", scaling.get("reference"))
        if not scaling or reference is None:
            flags.append("no_scaling")
            notes.append("the prediction's provenance has no scaling; pixel metrics on raw arrays")
            scaling = None
    scale_t = _scaling_for(scaling, band)
    if scaling is not None and scale_t is None:
        raise ValueError(f"scaling has no entry for the predicted band {band!r}")
    if scale_t is not None and reference is None:
        if not ins:
            raise ValueError("a reference flux is needed with scaling: pass reference= or inputs=")
        from .scaling import reference_flux

        reference = reference_flux([np.where(i.mask, np.nan, i.data) for i in ins.values()])
    in_data = {b: np.where(i.mask | bad, np.nan, i.data).astype(float) for b, i in ins.items()}
    if scale_t is not None:
        space = "scaled"
        p_pix = scale_t.forward(p_raw, reference=reference)
        t_pix = scale_t.forward(t_raw, reference=reference)
        in_pix = {}
        for b, d in in_data.items():
            s = _scaling_for(scaling, b) or scale_t
            in_pix[b] = s.forward(d, reference=reference)
        rng = 1.0 if data_range is None else data_range
    else:
        space = "raw"
        p_pix, t_pix, in_pix = p_raw, t_raw, in_data
        if data_range is None:
            finite = t_raw[np.isfinite(t_raw)]
            rng = float(finite.max() - finite.min()) if finite.size else _NAN
        else:
            rng = data_range
    n_pixels = int(good.sum())
    mae_v = ssim_v = psnr_v = _NAN
    ssim_in, gains = {}, {}
    if n_pixels == 0:
        flags.append("no_valid_pixels")
        notes.append("every pixel is masked or non-finite")
    elif not (np.isfinite(rng) and rng > 0):
        flags.append("flat_truth")
        notes.append("the truth has no dynamic range: SSIM and PSNR undefined")
        mae_v = float(np.mean(np.abs(p_pix[good] - t_pix[good])))
    else:
        rng = _check_range(rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)  # already warned once above
            mae_v = mae(p_pix, t_pix, mask=bad)
            psnr_v = psnr(p_pix, t_pix, data_range=rng, mask=bad)
            try:
                ssim_v = ssim(p_pix, t_pix, data_range=rng, mask=bad)
                for b, d in in_pix.items():
                    ssim_in[b] = ssim(d, t_pix, data_range=rng, mask=bad | ~np.isfinite(d))
                    gains[b] = ssim_v - ssim_in[b]
            except ValueError as exc:
                flags.append("ssim_failed")
                notes.append(str(exc))

    # ---- the truth's source: photometry and footprint
    seg_kw = dict(segmentation or {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        seg_t = segment(np.ma.array(np.nan_to_num(t_raw), mask=bad), **seg_kw)
        phot = _photometry(p_raw, t_raw, good, seg_t)
    if phot.note:
        flags.append("no_source_truth" if "no source" in phot.note else "photometry")
        notes.append(phot.note)
    if footprint is not None:
        fp = np.asarray(footprint, dtype=bool)
        if fp.shape != shape:
            raise ValueError(f"footprint has shape {fp.shape} but the truth has shape {shape}")
    elif seg_t.segmap is not None and seg_t.label:
        fp = ndi.binary_dilation(np.asarray(seg_t.segmap.data) == seg_t.label, iterations=2)
    else:
        fp = None

    # ---- uncertainty calibration
    cal = None
    if pred.uncertainty is not None:
        cal = calibration(p_raw, t_raw, pred.uncertainty, mask=bad, footprint=fp)
        if cal.n == 0:
            flags.append("no_calibration_pixels")
            notes.append("no pixel with a positive, finite uncertainty in the footprint")
    else:
        notes.append("the prediction has no uncertainty: calibration not computed")

    # ---- colours
    col_err, col_bias = {}, {}
    if ins:
        for b, cf in colour_fidelity(p_raw, t_raw, in_data, mask=bad, footprint=fp).items():
            col_err[b], col_bias[b] = cf.median_abs_error, cf.median_error

    # ---- morphology (each image segmented on its own, as for a real catalogue)
    morph = {}
    for key, img in (("pred", p_raw), ("true", t_raw)):
        g = m = _NAN
        f = -1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AstropyUserWarning)
                seg = seg_t if key == "true" else segment(np.ma.array(np.nan_to_num(img), mask=bad), **seg_kw)
            if seg.segmap is None or seg.label == 0:
                flags.append(f"no_source_{'prediction' if key == 'pred' else 'truth'}")
            else:
                with np.errstate(invalid="ignore", divide="ignore"):
                    res = _FastGiniM20(np.where(bad, np.nan, seg.image), np.asarray(seg.segmap.data), seg.label, bad)
                g, m, f = res.gini, res.m20, int(res.flag)
                if f >= 2:
                    flags.append(f"morphology_{key}")
                    notes.append(f"Gini/M20 of the {'prediction' if key == 'pred' else 'truth'} flagged bad ({f})")
        except Exception as exc:  # morphology must never sink the other metrics
            flags.append(f"morphology_{key}")
            notes.append(f"Gini/M20 failed: {type(exc).__name__}: {exc}")
        morph[key] = (g, m, f)

    return ComparisonReport(
        space=space, data_range=float(rng) if np.isfinite(rng) else _NAN, n_pixels=n_pixels,
        n_excluded=n_excluded, mae=mae_v, ssim=ssim_v, psnr=psnr_v, ssim_input=ssim_in, ssim_gain=gains,
        dmag_total=phot.total, dmag_aperture=phot.aperture, flux_pred=phot.flux_pred, flux_true=phot.flux_true,
        coverage_1sigma=cal.coverage[1] if cal else _NAN, coverage_2sigma=cal.coverage[2] if cal else _NAN,
        coverage_3sigma=cal.coverage[3] if cal else _NAN, z_median=cal.z_median if cal else _NAN,
        z_std=cal.z_std if cal else _NAN, z_nmad=cal.z_nmad if cal else _NAN,
        colour_error=col_err, colour_bias=col_bias,
        gini_pred=morph["pred"][0], gini_true=morph["true"][0], m20_pred=morph["pred"][1],
        m20_true=morph["true"][1], morph_flag_pred=morph["pred"][2], morph_flag_true=morph["true"][2],
        flags=tuple(dict.fromkeys(flags)), notes=tuple(dict.fromkeys(notes)),
    )  # fmt: skip


# --------------------------------------------------------------------------
# many galaxies
# --------------------------------------------------------------------------


def _per_item(value, n, name):
    if value is None:
        return [None] * n
    if isinstance(value, (Mapping, str)) or np.isscalar(value):
        return [value] * n
    items = list(value)
    if len(items) != n:
        raise ValueError(f"{name} has {len(items)} entries, expected one per galaxy ({n})")
    return items


def footprint_z_scores(predictions, truths):
    """``(prediction - truth) / sigma`` of many galaxies, inside each truth's footprint.

    The footprint is the galaxy's segment in the truth
    (`bandsynth.morphology.segment`), less masked prediction pixels; galaxies
    with no detectable source contribute nothing.

    Parameters
    ----------
    predictions : sequence of SyntheticBand (or NDData with a StdDevUncertainty)
    truths : sequence of images (arrays or NDData), same grids

    Returns
    -------
    ndarray
        The z-scores of all footprint pixels, concatenated.
    """
    from .morphology import segment

    z = []
    for pred, truth in zip(predictions, truths):
        if pred.uncertainty is None:
            raise ValueError("footprint_z_scores needs predictions with an uncertainty")
        truth = np.asarray(getattr(truth, "data", truth), dtype=np.float64)
        seg = segment(truth)
        if seg.segmap is None:
            continue
        inside = seg.segmap.data == seg.label
        if pred.mask is not None:
            inside &= ~np.asarray(pred.mask, dtype=bool)
        sigma = np.asarray(pred.uncertainty.array, dtype=np.float64)[inside]
        z.append((np.asarray(pred.data, dtype=np.float64)[inside] - truth[inside]) / np.maximum(sigma, 1e-300))
    return np.concatenate(z) if z else np.empty(0)


def evaluate_pairs(predictions, truths, *, inputs=None, scaling=None, references=None, footprints=None,
                   data_range=None, segmentation=None, progress=True):  # fmt: skip
    """:func:`compare` over many galaxies: one table row per galaxy.

    A galaxy whose comparison fails gets a row with nan metrics and the
    reason in the ``error`` column; the others are still evaluated.

    Parameters
    ----------
    predictions, truths : sequences of images (SyntheticBand, NDData, arrays, paths) or 3-D arrays
    inputs : sequence of mappings band -> image (or BandStacks), optional
    scaling : AsinhScaling, mapping or "provenance", optional
        Shared by all galaxies.
    references : sequence of float, optional
        Reference flux of each galaxy.
    footprints : sequence of bool arrays, optional
    data_range : float, optional
    segmentation : dict, optional
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    astropy.table.Table
        Columns of :meth:`ComparisonReport.to_dict` plus ``index`` and ``error``.

    Raises
    ------
    ValueError
        If the data set is empty or the sequences differ in length.

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[:48, :48]
    >>> truth = np.exp(-np.hypot(x - 24, y - 24) / 4)
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:  # the failed pair is reported
    ...     warnings.simplefilter("always")
    ...     table = evaluate_pairs([truth * 1.02, np.zeros((5, 5))], [truth, truth], progress=False)
    >>> len(table), table["error"][1].startswith("ValueError")
    (2, True)
    >>> print(caught[0].message)
    1 of 2 galaxies could not be evaluated (see the 'error' column)
    """
    from astropy.table import Table

    preds = list(predictions) if not isinstance(predictions, np.ndarray) else list(predictions)
    trues = list(truths) if not isinstance(truths, np.ndarray) else list(truths)
    if len(preds) == 0 or len(trues) == 0:
        raise ValueError("empty data set: evaluate_pairs needs at least one (prediction, truth) pair")
    if len(preds) != len(trues):
        raise ValueError(f"{len(preds)} predictions but {len(trues)} truths: they must pair up")
    n = len(preds)
    ins = _per_item(inputs, n, "inputs") if not isinstance(inputs, Mapping) else [inputs] * n
    refs = _per_item(references, n, "references")
    fps = _per_item(footprints, n, "footprints") if not (isinstance(footprints, np.ndarray) and footprints.ndim == 2) \
        else [footprints] * n  # fmt: skip
    rows = []
    it = range(n)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="evaluating", unit="galaxy")
    for i in it:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AstropyUserWarning)
                rep = compare(preds[i], trues[i], inputs=ins[i], scaling=scaling, reference=refs[i],
                              footprint=fps[i], data_range=data_range, segmentation=segmentation)  # fmt: skip
            row = rep.to_dict()
            row["error"] = ""
        except Exception as exc:  # one bad galaxy must not lose the rest
            log.warning("galaxy %d failed: %s: %s", i, type(exc).__name__, exc)
            row = {"error": f"{type(exc).__name__}: {exc}"}
        row["index"] = i
        rows.append(row)
    keys = ["index"]
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    table = Table()
    for k in keys:
        sample = next((r[k] for r in rows if k in r), None)
        if isinstance(sample, str):
            table[k] = [str(r.get(k, "")) for r in rows]
        elif isinstance(sample, (bool, np.bool_)):
            table[k] = [bool(r.get(k, False)) for r in rows]
        elif isinstance(sample, (int, np.integer)) and k != "index":
            table[k] = np.array([r.get(k, -1) for r in rows], dtype=int)
        else:
            table[k] = np.array([r.get(k, _NAN) for r in rows], dtype=float) if k != "index" else [r[k] for r in rows]
    n_bad = int(np.sum(np.array([bool(e) for e in table["error"]])))
    table.meta["n_failed"] = n_bad
    if n_bad:
        warnings.warn(f"{n_bad} of {n} galaxies could not be evaluated (see the 'error' column)", AstropyUserWarning,
                      stacklevel=2)  # fmt: skip
    return table


def summarize(table, *, limits=None):
    """Paper-style one-row summary of an :func:`evaluate_pairs` table.

    Means of MAE, SSIM and PSNR (finite values), W1 of the Gini and M20
    distributions of predictions against truths (global min–max scaling,
    :func:`wasserstein1`), mean SSIM gain per input band, median magnitude
    errors, mean 1σ/2σ coverage, median colour errors, and the numbers of
    galaxies used, failed, and with a morphology flagged bad (counted, kept).

    Parameters
    ----------
    table : astropy.table.Table
        Output of :func:`evaluate_pairs`.
    limits : mapping {"gini": (min, max), "m20": (min, max)}, optional
        Global limits shared with other tables (other models).

    Returns
    -------
    astropy.table.Table
        One row.

    Raises
    ------
    ValueError
        If the table is empty or no row was evaluated.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.table import Table
    >>> t = Table({"mae": [0.01, 0.03], "ssim": [0.9, 0.8], "psnr": [30.0, 32.0],
    ...            "gini_pred": [0.5, 0.6], "gini_true": [0.5, 0.6], "error": ["", ""]})
    >>> s = summarize(t)
    >>> round(float(s["mae"][0]), 3), float(s["gini_w1"][0])
    (0.02, 0.0)
    """
    from astropy.table import Table

    if table is None or len(table) == 0:
        raise ValueError("empty data set: the evaluation table has no rows")
    ok = np.ones(len(table), dtype=bool)
    if "error" in table.colnames:
        ok = np.array([not e for e in table["error"]])
    if not ok.any():
        raise ValueError(f"no galaxy was evaluated: all {len(table)} rows failed (see the 'error' column)")
    t = table[ok]
    limits = dict(limits or {})
    out = {"n_galaxies": int(ok.sum()), "n_failed": int((~ok).sum())}

    def col(name):
        return np.asarray(t[name], dtype=float) if name in t.colnames else np.array([])

    def mean(name):
        v = col(name)
        v = v[np.isfinite(v)]
        return float(np.mean(v)) if v.size else _NAN

    def median(name):
        v = col(name)
        v = v[np.isfinite(v)]
        return float(np.median(v)) if v.size else _NAN

    for name in ("mae", "ssim", "psnr"):
        out[name] = mean(name)
    n_inf = int(np.sum(np.isinf(col("psnr"))))
    if n_inf:
        warnings.warn(f"{n_inf} identical pair(s) have infinite PSNR and are left out of its mean", AstropyUserWarning,
                      stacklevel=2)  # fmt: skip
    # statmorph-style flags >= 2 ("bad") are counted, not dropped: noise-free
    # images, for instance, fail statmorph's sky test although Gini/M20 are fine
    flagged = np.zeros(len(t), dtype=bool)
    for name in ("morph_flag_pred", "morph_flag_true"):
        if name in t.colnames:
            flagged |= np.asarray(t[name]) >= 2
    out["n_morph_flagged"] = int(flagged.sum())
    for q in ("gini", "m20"):
        pred, true = col(f"{q}_pred"), col(f"{q}_true")
        pred, true = pred[np.isfinite(pred)], true[np.isfinite(true)]
        out[f"{q}_w1"] = wasserstein1(pred, true, limits=limits.get(q)) if pred.size and true.size else _NAN
    for name in t.colnames:
        if name.startswith("ssim_gain_"):
            out[f"{name}"] = mean(name)
    out["dmag_total"] = median("dmag_total")
    out["dmag_aperture"] = median("dmag_aperture")
    out["coverage_1sigma"] = mean("coverage_1sigma")
    out["coverage_2sigma"] = mean("coverage_2sigma")
    for name in t.colnames:
        if name.startswith("colour_error_"):
            out[name] = median(name)
    return Table({k: [v] for k, v in out.items()})
