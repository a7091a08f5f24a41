"""statmorph on the galaxy's segment: :func:`measure_morphology` returns a
:class:`MorphologyResult` (Gini, M20, concentration, asymmetry, smoothness, optional
Sérsic fit) with statmorph's quality flag carried through.

(Named ``measure`` rather than ``statmorph`` so that it does not shadow the statmorph
package.)"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning

from .image import parse_image
from .segmentation import central_label, segment

__all__ = ["MorphologyResult", "measure_morphology"]

log = logging.getLogger(__name__)


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

    Attributes
    ----------
    gini, m20 : float
        Gini coefficient and M20 (Lotz et al. 2004).
    concentration, asymmetry, smoothness : float
        The CAS statistics (Conselice 2003).
    flag : int
        statmorph's quality flag.
    xc, yc : float
        Centroid of the galaxy, in pixels.
    rpetro_circ, rpetro_ellip : float
        Circular and elliptical Petrosian radii, in pixels.
    r20, r80 : float
        Radii holding 20 % and 80 % of the light, in pixels.
    sn_per_pixel : float
        Mean signal-to-noise per pixel of the segment.
    label : int
        Label of the galaxy in the segmentation map.
    sersic_n, sersic_rhalf : float
        Sérsic index and half-light radius of the optional Sérsic fit.
    flag_sersic : int
        Quality flag of the Sérsic fit (-1: not requested).
    notes : tuple of str
        What went wrong, if anything.
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
        """Fields as a plain dict (notes joined into one string).

        Returns
        -------
        fields : dict
            Field name to value.
        """
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
    found = _find_galaxy(img, bad, segmap, label, segmentation)
    if isinstance(found, MorphologyResult):
        return found
    segdata, image, lab = found
    kwargs = _statmorph_kwargs(img, bad, image, uncertainty, gain, psf, statmorph_kwargs)
    measured = _run_statmorph(image, segdata, lab, bad, kwargs, sersic)
    if isinstance(measured, MorphologyResult):
        return measured
    morph, notes = measured
    return _morphology_result(morph, lab, sersic, notes)


def _find_galaxy(img, bad, segmap, label, segmentation):
    """(segmap data, image to measure, label) of the galaxy, or a failed result."""
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
        lab = central_label(segdata, np.where(bad, 0.0, image)) if label is None else int(label)
    if lab == 0 or not np.any(segdata == lab):
        return _failed(f"label {lab} not in the segmentation map", label=lab)
    return segdata, image, lab


def _statmorph_kwargs(img, bad, image, uncertainty, gain, psf, statmorph_kwargs):
    """Keyword arguments of statmorph.SourceMorphology: weight map (or gain) and PSF."""
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
    return kwargs


def _run_statmorph(image, segdata, lab, bad, kwargs, sersic):
    """(statmorph morphology, notes from its warnings), or a failed result if statmorph raised."""
    notes = []
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
    return morph, notes


def _morphology_result(morph, lab, sersic, notes):
    """The MorphologyResult of a statmorph measurement (-99 -> nan)."""

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
