"""Galaxy morphology: segmentation, Gini, M20 and CAS.

Three layers:

* :func:`segment` finds the galaxy with photutils (background subtraction,
  Gaussian smoothing, :func:`~photutils.segmentation.detect_sources` and
  :func:`~photutils.segmentation.deblend_sources`) and picks the segment at
  (or nearest to) the image centre.
* :func:`measure_morphology` runs statmorph on that segment and returns a
  :class:`MorphologyResult` (Gini, M20, concentration, asymmetry, smoothness,
  optional Sérsic fit) with statmorph's quality flag carried through.
* :func:`gini_m20` is a fast re-implementation of statmorph's Gini and M20 for
  thousands of images.  It follows statmorph's own chain step by step
  (outlier masking, centroid, circular Petrosian radius, asymmetry centre,
  elliptical Petrosian radius, the smoothed "Gini segmap", then Lotz et al.
  2004 Gini over that segmap and M20 about the flux centroid of that segmap)
  with exact pixel/ellipse overlaps computed only on the aperture edge, and
  skips everything Gini and M20 do not need (MID statistics, Sérsic fits,
  shape asymmetry).  On 100 mock galaxies it agrees with statmorph to
  4e-5 (mostly to rounding error) and runs ~25 times faster than
  ``statmorph.SourceMorphology`` (~14 times faster than statmorph evaluating
  only its Gini/M20 chain).  It loops over the images with vectorised numpy
  kernels, because statmorph's chain (Nelder-Mead, root finding) is
  sequential per galaxy.

Examples
--------
>>> import numpy as np
>>> from bandsynth.morphology import gini_m20
>>> y, x = np.mgrid[:64, :64]
>>> image = np.exp(-np.hypot(x - 31.7, y - 32.2) / 4.0)
>>> segmap = (image > 1e-3).astype(int)
>>> result = gini_m20(image, segmap)
>>> bool(0.4 < result.gini[0] < 0.7), bool(-2.5 < result.m20[0] < -1.5)
(True, True)
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import numpy as np
import scipy.ndimage as ndi
import scipy.optimize as opt
from astropy.nddata import NDData
from astropy.utils.exceptions import AstropyUserWarning

__all__ = [
    "parse_image",
    "ParsedImage",
    "MorphologyResult",
    "Segmentation",
    "GiniM20",
    "segment",
    "measure_morphology",
    "gini_m20",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------
# One parser for arrays, NDData/CCDData/SyntheticBand, (array, wcs) and FITS
# --------------------------------------------------------------------------


class ParsedImage(NamedTuple):
    """An image as :func:`parse_image` returns it."""

    data: np.ndarray  # float, non-finite pixels left in place (see mask)
    mask: np.ndarray  # bool, True = bad (NDData mask | non-finite)
    uncertainty: np.ndarray | None  # 1-sigma, same units as data
    unit: object
    wcs: object


def parse_image(obj, name="image", *, warn=True) -> ParsedImage:
    """Turn an array, NDData-like, ``(array, wcs)`` or FITS path into a :class:`ParsedImage`.

    The one image parser of the morphology and metrics modules.  Non-finite pixels
    are added to the mask with an ``AstropyUserWarning``.

    Parameters
    ----------
    obj : array-like, `~astropy.nddata.NDData`, ``(array, wcs)``, `~astropy.units.Quantity`, str or os.PathLike
        The image: a 2-D array (a masked array's mask is kept, a torch tensor is
        copied to the CPU), an NDData/CCDData/SyntheticBand (data, unit, mask,
        uncertainty and WCS are kept), a pair of array and WCS, a Quantity, or
        the path of a FITS file (its first 2-D image, ``UNCERT`` and ``MASK``).
    name : str, optional
        What to call the image in messages.
    warn : bool, optional
        Warn about the non-finite pixels that were not masked.

    Returns
    -------
    image : `ParsedImage`
        ``(data, mask, uncertainty, unit, wcs)``: float data, a boolean mask
        (True = bad, including the non-finite pixels), the 1-sigma uncertainty or
        None, the unit or None, the WCS or None.

    Raises
    ------
    TypeError
        ``obj`` is not an image or does not hold numbers.
    ValueError
        Not 2-D, or a mask or uncertainty of another shape.

    Examples
    --------
    >>> import numpy as np
    >>> image = parse_image(np.ma.array(np.ones((3, 3)), mask=np.eye(3)))
    >>> int(image.mask.sum()), image.unit is None
    (3, True)
    """
    unit = wcs = None
    mask = uncertainty = None
    if isinstance(obj, (str, os.PathLike)):
        obj = _read_fits(obj, name)
    if isinstance(obj, tuple) and len(obj) == 2 and not np.isscalar(obj[0]):
        obj, wcs = obj
    if isinstance(obj, NDData):
        data = obj.data
        unit = obj.unit
        wcs = obj.wcs if wcs is None else wcs
        if obj.mask is not None:
            mask = np.asarray(obj.mask, dtype=bool)
        if obj.uncertainty is not None:
            uncertainty = _stddev(obj.uncertainty, name)
    elif hasattr(obj, "unit") and hasattr(obj, "value") and not hasattr(obj, "detach"):
        data, unit = obj.value, obj.unit
    elif isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):
        data = obj.detach().cpu().numpy() if hasattr(obj, "detach") else obj
        if np.ma.isMaskedArray(data):
            mask = np.ma.getmaskarray(data)
            data = np.ma.getdata(data)
    else:
        raise TypeError(
            f"{name} must be a 2-D array, NDData/CCDData or FITS path, got {type(obj).__name__}"
        )
    data = np.asarray(data)
    if data.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold numbers, got dtype {data.dtype}")
    if data.ndim != 2:
        raise ValueError(f"{name} must be a 2-D image, got shape {data.shape}")
    if data.dtype.kind != "f":
        data = data.astype(float)
    if mask is None:
        mask = np.zeros(data.shape, dtype=bool)
    elif mask.shape != data.shape:
        raise ValueError(f"{name} mask has shape {mask.shape}, expected {data.shape}")
    bad = ~np.isfinite(data)
    if uncertainty is not None:
        if uncertainty.shape != data.shape:
            raise ValueError(f"{name} uncertainty has shape {uncertainty.shape}, expected {data.shape}")
        bad |= ~np.isfinite(uncertainty)
    newly = bad & ~mask
    if newly.any() and warn:
        warnings.warn(
            f"{name}: {int(newly.sum())} non-finite pixel(s) masked", AstropyUserWarning, stacklevel=3
        )
    return ParsedImage(data, mask | bad, uncertainty, unit, wcs)


def _stddev(uncertainty, name):
    kind = getattr(uncertainty, "uncertainty_type", "std")
    arr = np.asarray(uncertainty.array, dtype=float)
    if kind == "std":
        return arr
    if kind == "var":
        return np.sqrt(arr)
    if kind == "ivar":
        with np.errstate(divide="ignore"):
            return 1.0 / np.sqrt(arr)
    raise ValueError(f"{name}: unsupported uncertainty type {kind!r}")


def _read_fits(path, name):
    from astropy.io import fits
    from astropy.nddata import StdDevUncertainty
    from astropy.wcs import WCS

    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"{name}: FITS file {path!r} does not exist")
    with fits.open(path) as hdul:
        hdu = next((h for h in hdul if getattr(h, "data", None) is not None and h.data.ndim == 2), None)
        if hdu is None:
            raise ValueError(f"{name}: FITS file {path!r} has no 2-D image")
        data = np.asarray(hdu.data, dtype=float)
        names = {h.name.upper(): h for h in hdul}
        unc = names.get("UNCERT")
        msk = names.get("MASK")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(hdu.header) if "CTYPE1" in hdu.header else None
        return NDData(
            data,
            uncertainty=StdDevUncertainty(np.asarray(unc.data, float)) if unc is not None else None,
            mask=np.asarray(msk.data, bool) if msk is not None else None,
            wcs=wcs,
        )


# --------------------------------------------------------------------------
# Segmentation
# --------------------------------------------------------------------------


class Segmentation(NamedTuple):
    """Result of :func:`segment`.

    Attributes
    ----------
    segmap : photutils.segmentation.SegmentationImage or None
        All detected (and deblended) sources; ``None`` if nothing was found.
    label : int
        Label of the galaxy (0 when nothing was found).
    image : ndarray
        Background-subtracted image the detection ran on (unsmoothed).
    background, rms : float
        Background level subtracted and background noise.
    """

    segmap: object
    label: int
    image: np.ndarray
    background: float
    rms: float


def segment(
    data,
    *,
    mask=None,
    n_sigma=2.0,
    n_pixels=10,
    fwhm=3.0,
    background="median",
    deblend=False,
    contrast=0.3,
    n_levels=32,
    floor=1e-3,
):
    """Detect the galaxy in ``data`` and return its segmentation.

    Parameters
    ----------
    data : array, NDData, CCDData or FITS path
        The image.
    mask : bool array, optional
        Pixels to ignore (added to the NDData mask and non-finite pixels).
    n_sigma : float
        Detection threshold in units of the background noise.
    n_pixels : int
        Minimum number of connected pixels of a source.
    fwhm : float
        FWHM (pixels) of the Gaussian kernel used to smooth before detection.
    background : {"median", None} or float
        ``"median"``: subtract the sigma-clipped median of the pixels outside
        a first detection; ``None``: the image is already background-subtracted;
        a number: subtract it.
    deblend : bool
        Split blended sources with :func:`~photutils.segmentation.deblend_sources`.
        Off by default: on the mock galaxies even ``contrast=0.3`` splits
        20-30 % of isolated galaxies at a clump or arm, which ruins their
        Gini/M20; turn it on for crowded fields.
    contrast : float
        Deblending contrast; larger values split less.
    n_levels : int
        Number of deblending levels.
    floor : float
        The threshold is at least ``floor`` times the peak of the smoothed
        image, so noise-free images are not segmented down to their faintest wing.

    Returns
    -------
    Segmentation

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[:48, :48]
    >>> img = np.exp(-np.hypot(x - 24, y - 24) / 3) + np.random.default_rng(0).normal(0, 0.01, (48, 48))
    >>> seg = segment(img)
    >>> bool(seg.label > 0 and seg.segmap.data[24, 24] == seg.label)
    True
    """
    from astropy.convolution import convolve
    from astropy.stats import sigma_clipped_stats
    from photutils.segmentation import deblend_sources, detect_sources, make_2dgaussian_kernel
    from photutils.utils.exceptions import NoDetectionsWarning

    img = parse_image(data, "image")
    bad = img.mask if mask is None else img.mask | np.asarray(mask, dtype=bool)
    raw = np.where(bad, np.nan, img.data.astype(float))
    if not np.isfinite(raw).any():
        return Segmentation(None, 0, np.zeros_like(raw), 0.0, 0.0)
    # Background: sigma-clipped statistics, then again with the sources masked.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        _, med, std = sigma_clipped_stats(raw, mask=bad, sigma=3.0, maxiters=10)
        src = raw > med + 2.0 * std
        src = ndi.binary_dilation(src, iterations=3)
        if (~src & ~bad).sum() > 0.05 * raw.size:
            _, med, std = sigma_clipped_stats(raw, mask=bad | src, sigma=3.0, maxiters=10)
    if background is None:
        level = 0.0
    elif isinstance(background, str):
        if background != "median":
            raise ValueError(f"background must be 'median', None or a number, got {background!r}")
        level = float(med) if np.isfinite(med) else 0.0
    else:
        level = float(background)
    rms = float(std) if np.isfinite(std) else 0.0
    image = np.where(bad, 0.0, raw - level)
    size = max(3, int(2 * round(1.5 * fwhm) + 1))
    kernel = make_2dgaussian_kernel(fwhm, size=size)
    smooth = convolve(image, kernel, mask=bad, boundary="extend")
    peak = float(np.nanmax(smooth))
    threshold = max(n_sigma * rms, floor * peak if peak > 0 else 0.0)
    if not threshold > 0:
        return Segmentation(None, 0, image, level, rms)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)  # "nothing found" is an answer here
        segm = detect_sources(smooth, threshold, n_pixels, mask=bad)
    if segm is None:
        return Segmentation(None, 0, image, level, rms)
    if deblend:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)
            segm = deblend_sources(
                smooth, segm, n_pixels, n_levels=n_levels, contrast=contrast, progress_bar=False
            )
    return Segmentation(segm, _central_label(segm.data, image), image, level, rms)


def _central_label(segmap, image=None):
    """Label at the image centre, else the segment whose centroid is nearest (brightest on ties)."""
    ny, nx = segmap.shape
    centre = segmap[ny // 2, nx // 2]
    if centre > 0:
        return int(centre)
    labels = np.unique(segmap[segmap > 0])
    if labels.size == 0:
        return 0
    yy, xx = np.indices(segmap.shape)
    best, best_key = 0, None
    for lab in labels:
        sel = segmap == lab
        dist = math.hypot(xx[sel].mean() - (nx - 1) / 2, yy[sel].mean() - (ny - 1) / 2)
        flux = float(np.sum(image[sel])) if image is not None else float(sel.sum())
        key = (round(dist, 6), -flux)
        if best_key is None or key < best_key:
            best, best_key = int(lab), key
    return best


# --------------------------------------------------------------------------
# statmorph wrapper
# --------------------------------------------------------------------------

_CORE = (
    "xc_centroid", "yc_centroid", "xc_asymmetry", "yc_asymmetry", "ellipticity_asymmetry",
    "elongation_asymmetry", "orientation_asymmetry", "rpetro_circ", "rpetro_ellip", "flux_circ",
    "r20", "r50", "r80", "gini", "m20", "sn_per_pixel", "concentration", "asymmetry",
    "smoothness", "sky_mean", "sky_median", "sky_sigma",
)  # fmt: skip
_SERSIC = ("sersic_amplitude", "sersic_rhalf", "sersic_n", "sersic_xc", "sersic_yc",
           "sersic_ellip", "sersic_theta", "sersic_chi2_dof")  # fmt: skip

FLAG_MEANING = {
    0: "good",
    1: "suspect",
    2: "bad",
    4: "catastrophic (nothing measured)",
}


@dataclass(frozen=True)
class MorphologyResult:
    """Non-parametric morphology of one galaxy (statmorph conventions).

    Invalid values are ``nan`` (statmorph's ``-99``).  ``flag`` is statmorph's
    quality flag (0 good, 1 suspect, 2 bad, 4 catastrophic); ``flag_sersic``
    is ``-1`` when no Sérsic fit was requested.  ``notes`` say what went wrong.
    """

    gini: float
    m20: float
    concentration: float
    asymmetry: float
    smoothness: float
    flag: int
    xc: float = float("nan")
    yc: float = float("nan")
    rpetro_circ: float = float("nan")
    rpetro_ellip: float = float("nan")
    r20: float = float("nan")
    r80: float = float("nan")
    sn_per_pixel: float = float("nan")
    label: int = 0
    sersic_n: float = float("nan")
    sersic_rhalf: float = float("nan")
    flag_sersic: int = -1
    notes: tuple = field(default=())

    @property
    def ok(self) -> bool:
        """True when statmorph's flag is 0 or 1 (good or suspect)."""
        return self.flag <= 1

    def to_dict(self) -> dict:
        """Fields as a plain dict (notes joined into one string)."""
        d = asdict(self)
        d["notes"] = "; ".join(self.notes)
        return d

    def __repr__(self):
        core = ", ".join(
            f"{k}={getattr(self, k):.4g}" for k in ("gini", "m20", "concentration", "asymmetry", "smoothness")
        )
        extra = f", sersic_n={self.sersic_n:.3g}" if self.flag_sersic >= 0 else ""
        notes = f", notes={list(self.notes)}" if self.notes else ""
        return f"MorphologyResult({core}{extra}, flag={self.flag} [{FLAG_MEANING.get(self.flag, '?')}]{notes})"


def _failed(note, label=0):
    nan = float("nan")
    return MorphologyResult(nan, nan, nan, nan, nan, 4, label=label, notes=(note,))


def _lean_class(*, check_segmaps=True):
    """statmorph.SourceMorphology that only evaluates the quantities requested.

    statmorph computes every statistic (MID, Sérsic, shape asymmetry) in its
    constructor; the subclass keeps them lazy so unrequested ones cost nothing.
    Its flag then covers the quantities computed (and, with ``check_segmaps``,
    statmorph's comparison of the Gini and MID segmaps).
    """
    import statmorph

    class _Lean(statmorph.SourceMorphology):
        _wanted = _CORE

        def _calculate_morphology(self):
            for q in self._wanted:
                _ = self[q]

        if not check_segmaps:

            def _check_segmaps(self):
                return

    return _Lean


def measure_morphology(
    data,
    *,
    segmap=None,
    label=None,
    mask=None,
    uncertainty=None,
    gain=None,
    psf=None,
    sersic=False,
    segmentation=None,
    **statmorph_kwargs,
):
    """Gini, M20, concentration, asymmetry and smoothness of the central galaxy.

    Parameters
    ----------
    data : array, NDData, CCDData, SyntheticBand or FITS path
        The image (need not be background-subtracted when ``segmap`` is None:
        :func:`segment` subtracts the background).
    segmap : int array or SegmentationImage, optional
        Segmentation; by default :func:`segment` makes one.
    label : int, optional
        The galaxy's label in ``segmap`` (default: the central segment).
    mask : bool array, optional
        Extra bad pixels.
    uncertainty : array, optional
        1-sigma noise map; defaults to the NDData uncertainty.  Used as
        statmorph's ``weightmap``; without one, ``gain`` is used.
    gain : float, optional
        Image units to electrons (statmorph's Poisson weight map); only used
        without an uncertainty, default 1.  It affects S/N and Sérsic weights,
        not Gini, M20 or CAS.
    psf : 2-D array, optional
        PSF for the Sérsic fit.
    sersic : bool
        Also fit a Sérsic profile (slow; off by default).
    segmentation : dict, optional
        Keyword arguments for :func:`segment`.
    **statmorph_kwargs
        Passed to :class:`statmorph.SourceMorphology`.

    Returns
    -------
    MorphologyResult
        Never raises for data problems: an undetectable source or a statmorph
        failure gives ``flag=4`` with a note.

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[:64, :64]
    >>> rng = np.random.default_rng(1)
    >>> img = 10 * np.exp(-np.hypot(x - 32, y - 31) / 4) + rng.normal(0, 0.05, (64, 64))
    >>> m = measure_morphology(img)
    >>> m.flag, round(m.gini, 1)
    (0, 0.5)
    """
    img = parse_image(data, "image")
    bad = img.mask if mask is None else img.mask | np.asarray(mask, dtype=bool)
    notes = []
    if segmap is None:
        seg = segment(img.data if not bad.any() else np.ma.array(img.data, mask=bad), **(segmentation or {}))
        if seg.segmap is None or seg.label == 0:
            return _failed("no source detected")
        segdata = np.asarray(seg.segmap.data)
        image = seg.image
        lab = seg.label if label is None else int(label)
    else:
        segdata = np.asarray(getattr(segmap, "data", segmap))
        if segdata.shape != img.data.shape:
            raise ValueError(f"segmap has shape {segdata.shape}, expected the image shape {img.data.shape}")
        image = img.data  # statmorph masks ``bad`` itself (its outlier test sees the raw pixels)
        lab = _central_label(segdata, np.where(bad, 0.0, image)) if label is None else int(label)
    if lab == 0 or not np.any(segdata == lab):
        return _failed(f"label {lab} not in the segmentation map", label=lab)
    unc = img.uncertainty if uncertainty is None else np.asarray(uncertainty, dtype=float)
    kwargs = dict(statmorph_kwargs)
    if unc is not None:
        if unc.shape != image.shape:
            raise ValueError(f"uncertainty has shape {unc.shape}, expected {image.shape}")
        kwargs["weightmap"] = np.where(bad | ~np.isfinite(unc), 0.0, unc)
    else:
        kwargs["gain"] = 1.0 if gain is None else float(gain)
    if psf is not None:
        kwargs["psf"] = np.asarray(psf, dtype=float)
    cls = _lean_class()
    cls._wanted = _CORE + (_SERSIC if sersic else ())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AstropyUserWarning)
        try:
            morph = cls(np.asarray(image, dtype=float), segdata.astype(np.int64), lab,
                        mask=bad.copy(), **kwargs)  # fmt: skip
        except Exception as exc:  # statmorph asserts on pathological input
            return _failed(f"statmorph failed: {type(exc).__name__}: {exc}", label=lab)
    notes.extend(sorted({str(w.message) for w in caught if issubclass(w.category, AstropyUserWarning)}))

    def val(name):
        v = float(getattr(morph, name, -99.0))
        return float("nan") if v == -99.0 or not np.isfinite(v) else v

    flag = int(morph.flag)
    res = MorphologyResult(
        gini=val("gini"), m20=val("m20"), concentration=val("concentration"),
        asymmetry=val("asymmetry"), smoothness=val("smoothness"), flag=flag,
        xc=val("xc_centroid"), yc=val("yc_centroid"), rpetro_circ=val("rpetro_circ"),
        rpetro_ellip=val("rpetro_ellip"), r20=val("r20"), r80=val("r80"),
        sn_per_pixel=val("sn_per_pixel"), label=lab,
        sersic_n=val("sersic_n") if sersic else float("nan"),
        sersic_rhalf=val("sersic_rhalf") if sersic else float("nan"),
        flag_sersic=int(morph.flag_sersic) if sersic else -1,
        notes=tuple(notes),
    )  # fmt: skip
    if flag >= 2:
        log.info("statmorph flagged the measurement as %s: %s", FLAG_MEANING.get(flag), notes)
    return res


# --------------------------------------------------------------------------
# Exact pixel / ellipse overlaps (edge pixels only)
# --------------------------------------------------------------------------


def _unit_circle_triangle(ax, ay, bx, by):
    """Signed area of (unit circle) ∩ (triangle O, A, B), vectorised."""
    dx, dy = bx - ax, by - ay
    a2 = dx * dx + dy * dy
    b = ax * dx + ay * dy
    c = ax * ax + ay * ay - 1.0
    disc = b * b - a2 * c
    hit = (disc > 0) & (a2 > 0)
    safe = np.where(hit, a2, 1.0)
    sq = np.sqrt(np.where(hit, disc, 0.0))
    t1 = np.where(hit, np.clip((-b - sq) / safe, 0.0, 1.0), 1.0)
    t2 = np.where(hit, np.clip((-b + sq) / safe, 0.0, 1.0), 1.0)
    px, py = ax + t1 * dx, ay + t1 * dy
    qx, qy = ax + t2 * dx, ay + t2 * dy
    s1 = np.arctan2(ax * py - ay * px, ax * px + ay * py)
    s2 = np.arctan2(qx * by - qy * bx, qx * bx + qy * by)
    return 0.5 * (s1 + s2 + px * qy - py * qx)


def _polygon_circle_area(us, vs, radius):
    """Area of circle(radius) ∩ quadrilaterals given by corner arrays (4, m)."""
    us = us / radius
    vs = vs / radius
    ax, ay = us, vs
    bx, by = us[[1, 2, 3, 0]], vs[[1, 2, 3, 0]]
    tri = _unit_circle_triangle(ax.ravel(), ay.ravel(), bx.ravel(), by.ravel()).reshape(us.shape)
    return np.abs(tri.sum(axis=0)) * radius * radius


class _EllipseOverlap:
    """Exact overlaps of concentric, similar ellipses with the pixels of a grid.

    In coordinates rotated by ``theta`` and with the minor axis stretched by
    ``elongation`` the ellipse of semi-major axis ``a`` is a circle of radius
    ``a`` and every pixel a parallelogram of area ``elongation``.  Pixels are
    sorted once by the radius of their centre: those well inside are summed
    from a cumulative sum, and only a thin band around the radius needs the
    exact polygon/circle area.  Matches photutils' ``method='exact'`` to ~1e-13.
    """

    def __init__(self, shape, cx, cy, elongation=1.0, theta=0.0, values=(), presort=True):
        ny, nx = shape
        ct, st = math.cos(theta), math.sin(theta)
        xc = np.arange(nx) - cx
        yc = np.arange(ny) - cy
        uc = (xc[None, :] * ct + yc[:, None] * st).ravel()
        vc = ((-xc[None, :] * st + yc[:, None] * ct) * elongation).ravel()
        # offsets of the four corners from the pixel centre (same for every pixel)
        du = np.array([-0.5, 0.5, 0.5, -0.5]) * ct + np.array([-0.5, -0.5, 0.5, 0.5]) * st
        dv = (-np.array([-0.5, 0.5, 0.5, -0.5]) * st + np.array([-0.5, -0.5, 0.5, 0.5]) * ct) * elongation
        self.half = float(np.sqrt(du * du + dv * dv).max()) * (1 + 1e-12) + 1e-12
        self.du, self.dv = du[:, None], dv[:, None]
        self.elong = float(elongation)
        rho = np.sqrt(uc * uc + vc * vc)
        values = [np.asarray(v, dtype=float).ravel() for v in values]
        self.presort = presort
        if presort:  # many radii to come: sort once, then every sum is a lookup
            order = np.argsort(rho, kind="stable")
            rho, uc, vc = rho[order], uc[order], vc[order]
            values = [v[order] for v in values]
            self.cums = [np.concatenate([[0.0], np.cumsum(v)]) for v in values]
            self.cums_rho = [np.concatenate([[0.0], np.cumsum(v * rho)]) for v in values]
            self.ramp = 0.25 * (1.0 + self.elong)  # typical radial half-extent of a pixel
        self.rho, self.uc, self.vc, self.values = rho, uc, vc, values

    def _edges(self, radius):
        """Indices of pixels near the circle of ``radius`` and the sums of those inside."""
        if self.presort:
            lo = int(np.searchsorted(self.rho, radius - self.half, side="left"))
            hi = int(np.searchsorted(self.rho, radius + self.half, side="right"))
            return np.arange(lo, hi), [float(c[lo]) for c in self.cums]
        inner = self.rho < radius - self.half
        edge = np.nonzero(~inner & (self.rho <= radius + self.half))[0]
        return edge, [float(v[inner].sum()) for v in self.values]

    def sums(self, *radii):
        """Exact aperture sums: one list of ``Σ w·v`` (one per ``values``) per radius."""
        parts = [self._edges(r) for r in radii]
        out = [p[1] for p in parts]
        sizes = [len(p[0]) for p in parts]
        if sum(sizes):
            cat = np.concatenate([p[0] for p in parts])
            rad = np.repeat(np.asarray(radii, dtype=float), sizes)
            w = _polygon_circle_area(self.uc[cat] + self.du, self.vc[cat] + self.dv, rad) / self.elong
            bounds = np.cumsum([0] + sizes)
            for k in range(len(radii)):
                part = slice(bounds[k], bounds[k + 1])
                sel = cat[part]
                out[k] = [o + float(np.dot(w[part], v[sel])) for o, v in zip(out[k], self.values)]
        return out

    def approx_sums(self, radii):
        """Approximate sums for many radii at once (presorted only).

        Each pixel counts with a weight rising linearly from 0 to 1 as the
        radius crosses its centre ± ``ramp``; two cumulative sums give it in
        O(1) per radius.
        """
        h = self.ramp
        lo = np.searchsorted(self.rho, radii - h, side="right")
        hi = np.searchsorted(self.rho, radii + h, side="right")
        out = []
        for c, cr in zip(self.cums, self.cums_rho):
            band = ((radii + h) * (c[hi] - c[lo]) - (cr[hi] - cr[lo])) / (2 * h)
            out.append(c[lo] + band)
        return out


def _circle_weights(shape, cx, cy, r):
    """Exact circle/pixel overlaps (photutils) on the circle's bounding box, clipped to ``shape``."""
    from photutils.geometry import circular_overlap_grid

    ny, nx = shape
    x0, x1 = max(0, math.floor(cx - r + 0.5)), min(nx, math.ceil(cx + r + 0.5))
    y0, y1 = max(0, math.floor(cy - r + 0.5)), min(ny, math.ceil(cy + r + 0.5))
    if x1 <= x0 or y1 <= y0:
        return (slice(0, 0), slice(0, 0)), np.zeros((0, 0))
    w = circular_overlap_grid(
        x0 - 0.5 - cx, x1 - 0.5 - cx, y0 - 0.5 - cy, y1 - 0.5 - cy, x1 - x0, y1 - y0, float(r), 1, 1
    )
    return (slice(y0, y1), slice(x0, x1)), w


# --------------------------------------------------------------------------
# Fast Gini / M20 (statmorph's chain, Gini/M20 only)
# --------------------------------------------------------------------------


class GiniM20(NamedTuple):
    """Result of :func:`gini_m20`: arrays of length ``n_images``.

    ``gini`` and ``m20`` are ``nan`` where they could not be measured;
    ``flag`` follows statmorph (0 good, 1 suspect, 2 bad, 4 catastrophic).
    """

    gini: np.ndarray
    m20: np.ndarray
    flag: np.ndarray


class _FastGiniM20:
    """statmorph's Gini/M20 chain for one source (names mirror statmorph)."""

    eta = 0.2
    annulus_width = 1.0
    petro_fraction_gini = 0.2
    petro_extent_cas = 1.5
    petro_fraction_cas = 0.25
    skybox_size = 32
    cutout_extent = 2.5
    min_cutout_size = 48
    n_sigma_outlier = 10.0
    # statmorph runs Nelder-Mead to 1e-6 pixel; on the same path we stop at
    # 1e-4 pixel: a third fewer evaluations, Gini/M20 move by < 4e-5.
    xtol_center = 1e-4
    # grid points beyond ``approx_min_radius`` whose approximate Petrosian
    # function exceeds ``approx_margin`` are taken as positive without an exact
    # evaluation (on 130 test galaxies no such point had an exact value < 0.07)
    approx_margin = 0.1
    approx_min_radius = 3.0

    def __init__(self, image, segmap, label, mask=None):
        self.flag = 0
        self.gini = self.m20 = float("nan")
        self.label = label
        self._setup(image, segmap, mask)
        if np.sum(self.no_bg) <= 0:
            self.flag = 4
            return
        self._measure()

    # -- stamp and masks --------------------------------------------------
    def _setup(self, image, segmap, mask):
        sel = segmap == self.label
        rows = np.nonzero(sel.any(axis=1))[0]
        cols = np.nonzero(sel.any(axis=0))[0]
        xmin, xmax, ymin, ymax = cols[0], cols[-1], rows[0], rows[-1]
        dx, dy = xmax + 1 - xmin, ymax + 1 - ymin
        xc, yc = xmin + dx // 2, ymin + dy // 2
        dist = int(max(dx, dy) * self.cutout_extent / 2.0)
        dist = max(dist, (self.min_cutout_size - self.min_cutout_size % 2) // 2)
        ny, nx = image.shape
        stamp = (slice(max(0, yc - dist), min(ny, yc + dist)), slice(max(0, xc - dist), min(nx, xc + dist)))
        raw = image[stamp]
        seg = segmap[stamp]
        self.seg = seg
        self.user_mask = mask[stamp] if mask is not None else np.zeros(seg.shape, dtype=bool)
        m = (seg != 0) & (seg != self.label)
        m |= self.user_mask
        m |= ~np.isfinite(raw)
        if self.n_sigma_outlier > 0:
            m |= self._badpixels(raw)
        self.mask = m
        self.img = np.where(~m, raw, 0.0)  # statmorph's _cutout_stamp_maskzeroed
        self.no_bg = np.where(~(m | (seg == 0)), raw, 0.0)
        self.shape = self.img.shape

    def _badpixels(self, raw):
        w = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=float) / 8.0
        filled = np.where(np.isfinite(raw), raw, 0).astype(float)
        sq = raw.astype(float) ** 2 if raw.dtype == np.float64 else (raw**2).astype(float)
        sq = np.where(np.isfinite(sq), sq, 0.0)
        mean = ndi.correlate(filled, w, mode="nearest")
        mean2 = ndi.correlate(sq, w, mode="nearest")
        with np.errstate(invalid="ignore"):
            std = np.sqrt(mean2 - mean**2)
            return np.abs(raw - mean) > self.n_sigma_outlier * std

    # -- chain ------------------------------------------------------------
    def _measure(self):
        ny, nx = self.shape
        f = self.no_bg.astype(float)
        tot = f.sum()
        yc = float(np.dot(f.sum(axis=1), np.arange(ny)) / tot)
        xc = float(np.dot(f.sum(axis=0), np.arange(nx)) / tot)
        if yc < 0 or yc >= ny or xc < 0 or xc >= nx:
            yc, xc = ny / 2.0, nx / 2.0
            self.flag = 2
        self.centroid = np.array([xc, yc])
        if self.img[int(yc), int(xc)] == 0:
            self.flag = 2  # centroid masked
        iy, ix = np.argwhere(self.no_bg == np.max(self.no_bg))[0]
        self.brightest = np.array([ix, iy], dtype=float)
        self.diag = math.hypot(nx, ny)
        self.img64 = self.img.astype(float)
        self.flat = self.img64.ravel()
        self.unmasked = (~self.mask).astype(float).ravel()

        self._skybox()
        values = (self.flat, self.unmasked)
        circ = _EllipseOverlap(self.shape, xc, yc, values=values)
        self.rpetro_circ_centroid = self._rpetro(circ, self.diag)
        self.center = center = self._asymmetry_center()
        cov = self._covariance(center)
        self.elongation, self.orientation = elong, theta = _elongation_orientation(cov)
        ell = _EllipseOverlap(self.shape, center[0], center[1], elong, theta, values=values)
        self.rpetro_ellip = rpetro_ellip = self._rpetro(ell, self.diag * elong)
        self.segmap_gini = segmap = self._segmap_gini(rpetro_ellip, elong, theta)
        self.gini = self._gini(segmap)
        self.m20 = self._m20(segmap)
        if self.sky_mean is not None and abs(self.sky_mean) > self.sky_sigma:
            self.flag = 2  # not background-subtracted

    def _skybox(self):
        bad = ((self.seg != 0) | self.user_mask).astype(np.int64)
        ny, nx = bad.shape
        integral = np.zeros((ny + 1, nx + 1), dtype=np.int64)
        integral[1:, 1:] = bad.cumsum(0).cumsum(1)
        size = self.skybox_size
        self.sky_mean = self.sky_sigma = None
        self.sky_asym = -99.0
        while True:
            ni, nj = ny - size, nx - size
            if ni > 0 and nj > 0:
                s = (integral[size : size + ni, size : size + nj] - integral[:ni, size : size + nj]
                     - integral[size : size + ni, :nj] + integral[:ni, :nj])  # fmt: skip
                hits = np.flatnonzero(s.ravel() == 0)
                if hits.size:
                    i, j = divmod(int(hits[0]), nj)
                    bkg = self.img[i : i + size, j : j + size]
                    self.sky_mean = float(np.mean(bkg))
                    self.sky_sigma = float(np.std(bkg))
                    self.sky_asym = float(np.sum(np.abs(bkg[::-1, ::-1] - bkg)) / float(bkg.size))
                    return
            if size <= 2:
                self.flag = 2  # skybox not found
                return
            size //= 2

    def _petro(self, a, geom):
        """statmorph's Petrosian function at semi-major axis ``a``."""
        half = 0.5 * self.annulus_width
        (s_out, area_out), (s_in, area_in), (s_ap, area_ap) = geom.sums(a + half, a - half, a)
        ann_area = area_out - area_in
        ann = abs((s_out - s_in) / ann_area) if ann_area else 0.0
        ap = abs(s_ap / area_ap) if area_ap else 0.0
        if ap == 0:
            self.flag = 2
            ratio = float(ann != 0)
        else:
            ratio = ann / ap
        return ratio - self.eta

    def _rpetro(self, geom, outer):
        """statmorph's Petrosian radius search, skipping exact evaluations that cannot matter.

        statmorph walks a 100-point grid until the Petrosian function first
        turns non-positive, then refines with ``brentq``.  A cheap approximation
        of the function on the whole grid tells which grid points are safely
        positive; only the others are evaluated exactly.  Should the
        approximation ever be wrong, brentq's bracket check fails and the exact
        walk is redone.
        """
        grid = np.linspace(self.annulus_width, outer, 100)
        try:
            safe = (self._petro_approx(geom, grid) > self.approx_margin) & (grid >= self.approx_min_radius)
            return self._rpetro_walk(geom, grid, safe)
        except ValueError:
            return self._rpetro_walk(geom, grid, np.zeros(grid.size, dtype=bool))

    def _rpetro_walk(self, geom, grid, safe):
        r_min = r_max = None
        for k, r in enumerate(grid):
            val = 1.0 if safe[k] else self._petro(r, geom)
            if val == 0:
                return r
            if val > 0:
                r_min = r
            else:
                if r_min is None:
                    self.flag = 2
                    return grid[0]
                r_max = r
                break
        if r_max is None:
            self.flag = 2
            return grid[-1]
        return opt.brentq(self._petro, r_min, r_max, args=(geom,), xtol=1e-6)

    def _petro_approx(self, geom, grid):
        half = 0.5 * self.annulus_width
        s_out, a_out = geom.approx_sums(grid + half)
        s_in, a_in = geom.approx_sums(grid - half)
        s_ap, a_ap = geom.approx_sums(grid)
        with np.errstate(invalid="ignore", divide="ignore"):
            ann = np.abs((s_out - s_in) / (a_out - a_in))
            ap = np.abs(s_ap / a_ap)
            ratio = ann / ap
        return np.where(np.isfinite(ratio), ratio - self.eta, -np.inf)

    def _asymmetry_prep(self):
        ny, nx = self.shape
        pad = max(ny, nx) + 2
        self.pad = pad
        self.padded = np.zeros((ny + 2 * pad, nx + 2 * pad))
        self.padded[pad : pad + ny, pad : pad + nx] = self.img64
        self.absimg = np.abs(self.img64)
        self.has_mask = bool(self.mask.any())
        if self.has_mask:
            self.padded_mask = np.zeros(self.padded.shape, dtype=bool)
            self.padded_mask[pad : pad + ny, pad : pad + nx] = self.mask

    def _asymmetry(self, center):
        ny, nx = self.shape
        cx, cy = float(center[0]), float(center[1])
        if cx < 0 or cx >= nx or cy < 0 or cy >= ny:
            self.flag = max(self.flag, 1)
            return 100.0
        r = self.petro_extent_cas * self.rpetro_circ_centroid
        (sy, sx), w = _circle_weights(self.shape, cx, cy, r)
        image = self.img64[sy, sx]
        rot = _rotate180(self.padded, self.pad, cx, cy, sy, sx)
        if self.has_mask:
            msym = self.mask[sy, sx] | _rotate180_mask(self.padded_mask, self.pad, cx, cy, sy, sx)
            w = np.where(msym, 0.0, w)  # masked pixels add nothing to any of the sums
        area = float(w.sum())
        abs_sum = float(np.vdot(w, self.absimg[sy, sx]))
        rot -= image
        abs_diff = float(np.vdot(w, np.abs(rot, out=rot)))
        if abs_sum == 0.0:
            self.flag = max(self.flag, 1)
            return 100.0
        if self.sky_asym == -99.0:
            return abs_diff / abs_sum
        return (abs_diff - area * self.sky_asym) / abs_sum

    def _asymmetry_center(self):
        self._asymmetry_prep()
        centroid = self.centroid
        center = opt.fmin(self._asymmetry, centroid, xtol=self.xtol_center, disp=False)
        dist = self.petro_fraction_cas * self.rpetro_circ_centroid
        if np.linalg.norm(center - centroid) > dist:
            self.flag = max(self.flag, 1)
            center = opt.fmin(self._asymmetry, self.brightest, xtol=self.xtol_center, disp=False)
            if np.linalg.norm(center - self.brightest) > dist:
                self.flag = 2
                center = centroid
        if self.img[int(center[1]), int(center[0])] == 0:
            self.flag = 2  # asymmetry centre masked
        return center

    def _covariance(self, center):
        f = self.no_bg.astype(float)
        ny, nx = f.shape
        dx = np.arange(nx) - center[0]
        dy = np.arange(ny) - center[1]
        m00 = f.sum()
        x2 = float(np.dot(f.sum(axis=0), dx * dx)) / m00
        y2 = float(np.dot(f.sum(axis=1), dy * dy)) / m00
        xy = float(dy @ f @ dx) / m00
        if x2 <= 0 or y2 <= 0:
            self.flag = 2
        rho = 1.0 / 12.0
        while abs(x2 * y2 - xy**2) < rho**2:
            x2 += (x2 >= 0) * rho - (x2 < 0) * rho
            y2 += (y2 >= 0) * rho - (y2 < 0) * rho
        return np.array([[x2, xy], [xy, y2]])

    def _segmap_gini(self, rpetro_ellip, elong, theta):
        sigma = self.petro_fraction_gini * rpetro_ellip
        smooth = ndi.gaussian_filter(self.img, sigma, mode="constant", cval=0.0)
        a_in = rpetro_ellip - 0.5 * self.annulus_width
        a_out = rpetro_ellip + 0.5 * self.annulus_width
        geom = _EllipseOverlap(
            self.shape, self.centroid[0], self.centroid[1], elong, theta, values=(smooth,), presort=False
        )
        (s_out,), (s_in,) = geom.sums(a_out, max(a_in, 0.0))
        area = math.pi * (a_out * a_out - a_in * a_in) / elong
        above = smooth >= (s_out - s_in) / area
        labeled, n = ndi.label(above, structure=np.ones((3, 3), dtype=bool))
        if n == 0 or above.all():
            self.flag = 2
            return above
        if n > 1:
            self.flag = max(self.flag, 1)
            ic, jc = np.argwhere(smooth == np.max(smooth))[0]
            return labeled == labeled[ic, jc]
        return above

    def _gini(self, segmap):
        vals = np.sort(np.abs(self.img.ravel()[segmap.ravel()]))
        n = len(vals)
        if n <= 1 or np.sum(vals) == 0:
            self.flag = 2
            return float("nan")
        idx = np.arange(1, n + 1)
        return float(np.sum((2 * idx - n - 1) * vals) / (float(n - 1) * np.sum(vals)))

    def _m20(self, segmap):
        if np.sum(segmap) == 0:
            return float("nan")
        image = np.float64(np.where(segmap, self.img, 0.0))
        ny, nx = image.shape
        m00 = image.sum()
        if m00 <= 0:
            self.flag = 2
            return float("nan")
        yc = float(np.dot(image.sum(axis=1), np.arange(ny)) / m00)
        xc = float(np.dot(image.sum(axis=0), np.arange(nx)) / m00)
        r2 = (np.arange(nx)[None, :] - xc) ** 2 + (np.arange(ny)[:, None] - yc) ** 2
        second_tot = float(np.sum(image * r2))
        srt = np.sort(image.ravel())
        frac = np.cumsum(srt) / np.sum(srt)
        top = srt[frac >= 0.8]
        if len(top) == 0:
            self.flag = 2
            return float("nan")
        second_20 = float(np.sum(np.where(image >= top[0], image, 0.0) * r2))
        if second_20 <= 0 or second_tot <= 0:
            self.flag = 2
            return float("nan")
        return float(np.log10(second_20 / second_tot))


def _rotate180(padded, pad, cx, cy, sy, sx):
    """Bilinear 180° rotation about (cx, cy) (skimage ``rotate(..., 180, center=...)``), on a box."""
    kx, ky = math.floor(2 * cx), math.floor(2 * cy)
    fx, fy = 2 * cx - kx, 2 * cy - ky
    # source pixel of output (y, x) is (ky - y + fy, kx - x + fx)
    y0, y1, x0, x1 = sy.start, sy.stop, sx.start, sx.stop
    rows = slice(pad + ky - (y1 - 1), pad + ky - y0 + 2)
    cols = slice(pad + kx - (x1 - 1), pad + kx - x0 + 2)
    block = padded[rows, cols][::-1, ::-1]
    out = block[1:, 1:] * ((1 - fy) * (1 - fx))  # source (ky - y, kx - x)
    out += block[1:, :-1] * ((1 - fy) * fx)  # (ky - y, kx - x + 1)
    out += block[:-1, 1:] * (fy * (1 - fx))  # (ky - y + 1, kx - x)
    out += block[:-1, :-1] * (fy * fx)  # (ky - y + 1, kx - x + 1)
    return out


def _rotate180_mask(padded_mask, pad, cx, cy, sy, sx):
    """Nearest-neighbour 180° rotation of a boolean mask about (cx, cy), on a box."""
    ky, kx = math.floor(2 * cy + 0.5), math.floor(2 * cx + 0.5)
    rows = slice(pad + ky - (sy.stop - 1), pad + ky - sy.start + 1)
    cols = slice(pad + kx - (sx.stop - 1), pad + kx - sx.start + 1)
    return padded_mask[rows, cols][::-1, ::-1]


def _elongation_orientation(cov):
    eig = np.sort(np.abs(np.linalg.eigvals(cov)))[::-1]
    elong = math.sqrt(abs(eig[0])) / math.sqrt(abs(eig[1]))
    x2, xy, _, y2 = cov.flat
    return elong, 0.5 * math.atan2(2.0 * xy, x2 - y2)


def gini_m20(images, segmaps=None, *, labels=None, mask=None, progress=False):
    """Gini and M20 of many galaxies, as statmorph defines them, fast.

    Follows :class:`statmorph.SourceMorphology` exactly for Gini and M20
    (same stamp, outlier rejection, Petrosian radii, asymmetry centre and
    smoothed "Gini segmap"; M20 about the flux centroid of that segmap, the
    point that minimises the total second moment) and skips everything else,
    running ~25 times faster than ``statmorph.SourceMorphology``
    (benchmarks/metrics_speed.py).

    Parameters
    ----------
    images : array (n, ny, nx) or (ny, nx), or torch tensor
        Background-subtracted images.
    segmaps : int array like ``images``, optional
        Detection segmentation maps (0 = background); made with :func:`segment`
        when omitted.
    labels : int or sequence of int, optional
        Label of the galaxy in each segmap (default: the central segment).
    mask : bool array like ``images``, optional
        Bad pixels.  Non-finite pixels are always masked.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    GiniM20
        ``(gini, m20, flag)`` arrays of length ``n``.  ``flag`` is statmorph's
        flag as set along the Gini/M20 chain (and by its sky test); it omits
        statmorph's Gini-vs-MID segmap comparison (flag 1) and failures of
        statistics not computed here.

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[:64, :64]
    >>> disk = np.exp(-np.hypot(x - 32, y - 32) / 6.0)
    >>> point = np.exp(-np.hypot(x - 32, y - 32) / 1.5)
    >>> seg = (disk > 1e-3).astype(int)
    >>> res = gini_m20(np.stack([disk, point]), np.stack([seg, (point > 1e-3).astype(int)]))
    >>> bool(res.gini[1] > res.gini[0])
    True
    """
    arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"images must have shape (n, ny, nx) or (ny, nx), got {arr.shape}")
    n = arr.shape[0]
    if n == 0:
        raise ValueError("images is empty: nothing to measure")
    if segmaps is not None:
        seg = segmaps.detach().cpu().numpy() if hasattr(segmaps, "detach") else np.asarray(segmaps)
        seg = seg[None] if seg.ndim == 2 else seg
        if seg.shape != arr.shape:
            raise ValueError(f"segmaps have shape {seg.shape}, expected the images' shape {arr.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        mask = mask[None] if mask.ndim == 2 else mask
        if mask.shape != arr.shape:
            raise ValueError(f"mask has shape {mask.shape}, expected the images' shape {arr.shape}")
    if labels is not None:
        labels = np.broadcast_to(np.asarray(labels, dtype=int), (n,))
    gini = np.full(n, np.nan)
    m20 = np.full(n, np.nan)
    flag = np.full(n, 4, dtype=np.int16)
    it = range(n)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="Gini/M20", unit="img")
    for i in it:
        image = arr[i] if arr.dtype.kind == "f" else arr[i].astype(float)
        m = mask[i] if mask is not None else None
        if segmaps is None:
            s = segment(image if m is None else np.ma.array(image, mask=m), background=None)
            if s.segmap is None:
                continue
            sm, lab = np.asarray(s.segmap.data), s.label
        else:
            sm = seg[i]
            lab = int(labels[i]) if labels is not None else _central_label(sm, image)
        if lab == 0 or not np.any(sm == lab):
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            res = _FastGiniM20(image, sm, lab, m)
        gini[i], m20[i], flag[i] = res.gini, res.m20, res.flag
    return GiniM20(gini, m20, flag)
