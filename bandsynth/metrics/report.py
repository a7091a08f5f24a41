"""Every metric on one galaxy (:func:`compare`, a :class:`ComparisonReport`), over many
galaxies (:func:`evaluate_pairs`, an `~astropy.table.Table` with one row per galaxy,
failures recorded, never raised) and the paper's one-row summary (:func:`summarize`)."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import scipy.ndimage as ndi
from astropy.utils.exceptions import AstropyUserWarning

from ..morphology import detection_image, gini_m20, segment
from ._compared import as_synthetic, band_name, parse_compared
from ._utils import NAN, check_range
from .coverage import calibration
from .distributions import wasserstein1
from .photometry import colour_fidelity, photometry_with_segmentation
from .pixel import mae, psnr, ssim

__all__ = ["ComparisonReport", "compare", "evaluate_pairs", "summarize", "metric_unit"]

log = logging.getLogger(__name__)


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

    Attributes
    ----------
    space : str
        "scaled" or "raw": where the pixel metrics were computed.
    data_range : float
        Data range of the pixel metrics.
    n_pixels, n_excluded : int
        Pixels used and pixels left out (masked or non-finite).
    mae, ssim, psnr : float
        Pixel metrics (PSNR in dB).
    ssim_input, ssim_gain : mapping
        Per input band: SSIM(input, truth) and SSIM(prediction, truth) − SSIM(input, truth).
    dmag_total, dmag_aperture : float
        Magnitude errors in the truth's Kron aperture and within its half-light radius.
    flux_pred, flux_true : float
        Total fluxes of prediction and truth.
    coverage_1sigma, coverage_2sigma, coverage_3sigma : float
        Fractions of pixels whose truth lies in the central 68.27, 95.45 and 99.73 %
        intervals of the error distribution the prediction states (1, 2, 3 σ for
        Gaussian errors; 1, 2.69, 5.15 σ for Laplace errors).
    z_median, z_std, z_nmad : float
        Median, standard deviation and robust standard deviation of the z-scores.
    colour_error, colour_bias : mapping
        Per input band: median absolute and signed per-pixel colour error (mag).
    gini_pred, gini_true, m20_pred, m20_true : float
        Gini and M20 of prediction and truth.
    morph_flag_pred, morph_flag_true : int
        Their statmorph-style quality flags (-1: not measured).
    flags : tuple of str
        Keys of what could not be computed or was flagged.
    notes : tuple of str
        Explanations of the flags.
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
    dmag_total: float = NAN
    dmag_aperture: float = NAN
    flux_pred: float = NAN
    flux_true: float = NAN
    coverage_1sigma: float = NAN
    coverage_2sigma: float = NAN
    coverage_3sigma: float = NAN
    z_median: float = NAN
    z_std: float = NAN
    z_nmad: float = NAN
    colour_error: Mapping = field(default_factory=dict)
    colour_bias: Mapping = field(default_factory=dict)
    gini_pred: float = NAN
    gini_true: float = NAN
    m20_pred: float = NAN
    m20_true: float = NAN
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
        """Flat dict of scalars: mappings become ``ssim_gain_<band>`` etc.

        Returns
        -------
        row : dict
            Field name to value.
        """
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
        """One-row `~astropy.table.QTable` (magnitudes in mag, PSNR in dB).

        Returns
        -------
        table : `~astropy.table.QTable`
            The report as one row.
        """
        import astropy.units as u
        from astropy.table import QTable

        table = QTable()
        for key, value in self.to_dict().items():
            unit = metric_unit(key)
            table[key] = [value] if unit is None else [value] * u.Unit(unit)
        return table

    def __repr__(self):
        lines = [f"ComparisonReport(space={self.space!r}, data_range={_fmt(self.data_range)}, "
                 f"n_pixels={self.n_pixels}, n_excluded={self.n_excluded})"]  # fmt: skip
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
    from ..scaling import AsinhScaling

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
                from ..bands import get_band

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


def metric_unit(name):
    """The unit of a metric column (``"mag"`` for magnitude and colour errors, ``"dB"`` for PSNR), or None.

    Parameters
    ----------
    name : str
        A `ComparisonReport` field or table column.

    Returns
    -------
    str or None
    """
    if name.startswith(("dmag_", "colour_")):
        return "mag"
    return "dB" if name == "psnr" else None


def compare(prediction, truth, *, inputs=None, scaling=None, reference=None, footprint="detection", data_range=None,
            segmentation=None):  # fmt: skip
    """All metrics of a predicted image against the true one.

    Parameters
    ----------
    prediction : SyntheticBand, NDData, CCDData, array or FITS path
        The predicted image in physical units, its σ checked by the calibration metrics; a synthetic
        band's file (or a CCDData read from one) is read as the `~bandsynth.SyntheticBand` it is.
    truth : same kinds
        The observed (or simulated) image of the same band, same grid.  An observed
        truth's uncertainty is added to the prediction's σ in the coverage (σ states
        the error against the noise-free sky).  A FITS file of several bands is read
        from the predicted band's HDU (``FILE[EXT]`` names one), as ``BandStack`` reads it.
        In another flux unit than the prediction's, it is converted; not in a flux unit, refused.
    inputs : mapping band -> image, or BandStack, optional
        The input bands, without the predicted one (converted as ``truth`` is): SSIM gain, colours.
    scaling : AsinhScaling, mapping band -> AsinhScaling, or "provenance", optional
        With ``reference``, the pixel metrics (MAE, SSIM, PSNR) are computed in the network's
        asinh-scaled space, as the paper defines them; "provenance" takes both from
        ``prediction.meta["provenance"]``.  Without a scaling they are computed on the raw arrays.
    reference : float, optional
        Reference flux of the galaxy (see `bandsynth.scaling.reference_flux`);
        derived from ``inputs`` when omitted.
    footprint : {"detection", "target"} or bool array
        The galaxy's pixels, for its photometry (Kron and half-light apertures), calibration and
        colours.  "detection" (default): the central source of a coadd of the truth and the
        ``inputs`` (`bandsynth.morphology.detection_image`), as surveys detect -- a clumpy
        ultraviolet disc segmented alone breaks into knots, the central one holding a few per
        cent of its light; "target": of the truth alone.  Both dilated by two pixels for the
        calibration and colours.  A bool array gives the pixels themselves.
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
    pred, true, ins = parse_compared(prediction := as_synthetic(prediction), truth, inputs)
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
    band = band_name(prediction) or band_name(truth)
    scaling, scale_t, reference = _resolve_scaling(prediction, scaling, reference, band, ins, flags, notes)
    space, p_pix, t_pix, in_data, in_pix, rng = _pixel_space(
        p_raw, t_raw, ins, bad, scaling, scale_t, reference, data_range
    )
    pixel, rng = _pixel_metrics(p_pix, t_pix, in_pix, good, bad, rng, flags, notes)

    # ---- the truth's source: photometry and footprint
    seg_kw = dict(segmentation or {})
    seg_t, phot, fp = _truth_source(p_raw, t_raw, good, bad, seg_kw, footprint, in_data, flags, notes)

    # ---- uncertainty calibration
    cal = _calibration(p_raw, t_raw, pred.uncertainty, true.uncertainty, bad, fp, flags, notes,
                       levels=_stated_levels(prediction))

    # ---- colours
    col_err, col_bias = _colours(p_raw, t_raw, in_data, bad, fp)

    # ---- morphology (each image segmented on its own, as for a real catalogue)
    morph = _morphology_pair(p_raw, t_raw, bad, seg_t, seg_kw, flags, notes)

    return ComparisonReport(
        space=space, data_range=float(rng) if np.isfinite(rng) else NAN, n_excluded=n_excluded, **pixel,
        dmag_total=phot.total, dmag_aperture=phot.aperture, flux_pred=phot.flux_pred, flux_true=phot.flux_true,
        **_calibration_fields(cal), colour_error=col_err, colour_bias=col_bias,
        gini_pred=morph["pred"][0], gini_true=morph["true"][0], m20_pred=morph["pred"][1],
        m20_true=morph["true"][1], morph_flag_pred=morph["pred"][2], morph_flag_true=morph["true"][2],
        flags=tuple(dict.fromkeys(flags)), notes=tuple(dict.fromkeys(notes)),
    )  # fmt: skip


def _resolve_scaling(prediction, scaling, reference, band, ins, flags, notes):
    """:func:`compare`'s ``scaling``/``reference`` resolved: (scaling, the predicted band's scaling, reference)."""
    if isinstance(scaling, str):
        if scaling != "provenance":
            raise ValueError(f"scaling must be an AsinhScaling, a mapping or 'provenance', got {scaling!r}")
        prov = (getattr(prediction, "meta", None) or {}).get("provenance") or {}
        scaling = prov.get("scaling") or None
        if reference is None and scaling:
            # Models since bandsynth 0.2 scale each band in fixed physical units (no reference flux).
            fixed = str(scaling.get("method", "")).startswith("fixed")
            reference = _unit_reference(prediction, scaling, band) if fixed else scaling.get(
                "reference_flux", scaling.get("reference"))
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
        from ..scaling import reference_flux

        reference = reference_flux([np.where(i.mask, np.nan, i.data) for i in ins.values()])
    return scaling, scale_t, reference


def _unit_reference(prediction, scaling, band):
    """Reference flux of a fixed scaling for a prediction in another unit than the scaling's: one of the
    scaling's units in the prediction's (a prediction in Jy was scaled as if in nanomaggies)."""
    unit, stated = getattr(prediction, "unit", None), scaling.get("unit")
    if unit is None or not stated:
        return 1.0
    import astropy.units as u

    from ..units import conversion_factor

    try:
        return float(conversion_factor(stated, unit, band=band))
    except (ValueError, TypeError, u.UnitsError):  # units of no flux are refused where the images are parsed
        return 1.0


def _pixel_space(p_raw, t_raw, ins, bad, scaling, scale_t, reference, data_range):
    """(space, prediction, truth, raw inputs, inputs, data range) where the pixel metrics are computed."""
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
            rng = float(finite.max() - finite.min()) if finite.size else NAN
        else:
            rng = data_range
    return space, p_pix, t_pix, in_data, in_pix, rng


def _pixel_metrics(p_pix, t_pix, in_pix, good, bad, rng, flags, notes):
    """MAE, SSIM, PSNR and the inputs' SSIM (as ComparisonReport fields), and the checked data range."""
    n_pixels = int(good.sum())
    mae_v = ssim_v = psnr_v = NAN
    ssim_in, gains = {}, {}
    if n_pixels == 0:
        flags.append("no_valid_pixels")
        notes.append("every pixel is masked or non-finite")
    elif not (np.isfinite(rng) and rng > 0):
        flags.append("flat_truth")
        notes.append("the truth has no dynamic range: SSIM and PSNR undefined")
        mae_v = float(np.mean(np.abs(p_pix[good] - t_pix[good])))
    else:
        rng = check_range(rng)
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
    pixel = {"n_pixels": n_pixels, "mae": mae_v, "ssim": ssim_v, "psnr": psnr_v, "ssim_input": ssim_in,
             "ssim_gain": gains}  # fmt: skip
    return pixel, rng


def _stated_levels(prediction):
    """Half-widths of the central 68.27, 95.45 and 99.73 % intervals, in units of the stored sigma.

    (1, 2, 3) for Gaussian errors; a prediction whose provenance states heavier-tailed errors
    (a Laplace or generalized normal distribution, `bandsynth.uncertainty.interval_half_widths`)
    has wider 2- and 3-sigma intervals.
    """
    from ..uncertainty import DISTRIBUTIONS, interval_half_widths

    prov = (getattr(prediction, "meta", None) or {}).get("provenance") or {}
    stated = prov.get("uncertainty") or {}
    shape = stated.get("shape") or DISTRIBUTIONS.get(stated.get("distribution"), 2.0)
    return interval_half_widths(float(shape))


def _calibration(p_raw, t_raw, uncertainty, truth_noise, bad, fp, flags, notes, *, levels=(1.0, 2.0, 3.0)):
    """Calibration of the predicted uncertainty in the footprint (an observed truth's noise added), or None."""
    cal = None
    if uncertainty is not None:
        cal = calibration(p_raw, t_raw, uncertainty, truth_sigma=truth_noise, mask=bad, footprint=fp, levels=levels)
        if cal.n == 0:
            flags.append("no_calibration_pixels")
            notes.append("no pixel with a positive, finite uncertainty in the footprint")
        elif truth_noise is None:
            _note_unstated_truth_noise(t_raw, uncertainty, bad, fp, notes)
    else:
        notes.append("the prediction has no uncertainty: calibration not computed")
    return cal


def _note_unstated_truth_noise(t_raw, uncertainty, bad, fp, notes):
    """Note a truth that scatters like an observed image but states no noise: its noise then counts against σ."""
    from ..models.domain import pixel_noise

    sigma = np.asarray(uncertainty, dtype=float)[~bad if fp is None else fp & ~bad]  # no footprint: every pixel
    sigma = float(np.nanmedian(sigma)) if sigma.size else NAN
    noise = pixel_noise(t_raw, mask=bad)
    if np.isfinite(sigma) and noise > 0.5 * sigma:  # a noise-free truth scatters by ~0 on this estimator
        notes.append(f"the truth has no uncertainty, yet its pixels scatter by about {noise:.3g} (median σ in the "
                     f"footprint {sigma:.3g}): an observed truth's noise then counts against σ, which looks too "
                     "narrow; give the truth its noise (uncertainty=StdDevUncertainty(...))")


def _calibration_fields(cal):
    """ComparisonReport's coverage and z-score fields (nan without a calibration)."""
    return {
        **{f"coverage_{k}sigma": (list(cal.coverage.values())[k - 1] if cal else NAN) for k in (1, 2, 3)}, "z_median": cal.z_median if cal else NAN,
        "z_std": cal.z_std if cal else NAN, "z_nmad": cal.z_nmad if cal else NAN,
    }  # fmt: skip


def _colours(p_raw, t_raw, in_data, bad, fp):
    """Per input band: median absolute colour error and its signed median (empty without inputs)."""
    col_err, col_bias = {}, {}
    if in_data:
        for b, cf in colour_fidelity(p_raw, t_raw, in_data, mask=bad, footprint=fp).items():
            col_err[b], col_bias[b] = cf.median_abs_error, cf.median_error
    return col_err, col_bias


def _truth_source(p_raw, t_raw, good, bad, seg_kw, footprint, in_data, flags, notes):
    """The truth's own segmentation (for its morphology), the photometry in the galaxy's apertures and the
    footprint: the galaxy as `compare`'s ``footprint`` defines it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        seg_t = segment(np.ma.array(np.nan_to_num(t_raw), mask=bad), **seg_kw)
        galaxy = _galaxy_segmentation(t_raw, bad, seg_t, seg_kw, footprint, in_data)
        phot = photometry_with_segmentation(p_raw, t_raw, good, galaxy)
    if phot.note:
        flags.append("no_source_truth" if "no source" in phot.note else "photometry")
        notes.append(phot.note)
    if not isinstance(footprint, str):
        fp = np.asarray(footprint, dtype=bool)
    elif galaxy.segmap is not None and galaxy.label:
        fp = ndi.binary_dilation(np.asarray(galaxy.segmap.data) == galaxy.label, iterations=2)
    else:
        fp = None
    return seg_t, phot, fp


def _galaxy_segmentation(t_raw, bad, seg_t, seg_kw, footprint, in_data):
    """The segmentation whose labelled source is the galaxy, by `compare`'s ``footprint``."""
    from photutils.segmentation import SegmentationImage

    if isinstance(footprint, str):
        if footprint not in ("detection", "target"):
            raise ValueError(f"footprint must be 'detection', 'target' or a bool array, got {footprint!r}")
        if footprint == "target" or not in_data:
            return seg_t
        return segment(np.ma.array(detection_image([t_raw, *in_data.values()]), mask=bad), **seg_kw)
    fp = np.asarray(footprint, dtype=bool)
    if fp.shape != t_raw.shape:
        raise ValueError(f"footprint has shape {fp.shape} but the truth has shape {t_raw.shape}")
    if not fp.any():
        return seg_t._replace(segmap=None, label=0)
    return seg_t._replace(segmap=SegmentationImage(fp.astype(np.int32)), label=1)


def _morphology_pair(p_raw, t_raw, bad, seg_t, seg_kw, flags, notes):
    """{"pred": (gini, m20, flag), "true": (...)}: each image segmented on its own; never raises."""
    morph = {}
    for key, img in (("pred", p_raw), ("true", t_raw)):
        g = m = NAN
        f = -1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AstropyUserWarning)
                seg = seg_t if key == "true" else segment(np.ma.array(np.nan_to_num(img), mask=bad), **seg_kw)
            if seg.segmap is None or seg.label == 0:
                flags.append(f"no_source_{'prediction' if key == 'pred' else 'truth'}")
            else:
                with np.errstate(invalid="ignore", divide="ignore"):
                    res = gini_m20(
                        np.where(bad, np.nan, seg.image), np.asarray(seg.segmap.data), labels=seg.label, mask=bad
                    )
                g, m, f = float(res.gini[0]), float(res.m20[0]), int(res.flag[0])
                if f >= 2:
                    flags.append(f"morphology_{key}")
                    notes.append(f"Gini/M20 of the {'prediction' if key == 'pred' else 'truth'} flagged bad ({f})")
        except Exception as exc:  # morphology must never sink the other metrics
            flags.append(f"morphology_{key}")
            notes.append(f"Gini/M20 failed: {type(exc).__name__}: {exc}")
        morph[key] = (g, m, f)
    return morph


def _per_item(value, n, name):
    if value is None:
        return [None] * n
    if isinstance(value, (Mapping, str)) or np.isscalar(value):
        return [value] * n
    items = list(value)
    if len(items) != n:
        raise ValueError(f"{name} has {len(items)} entries, expected one per galaxy ({n})")
    return items


def evaluate_pairs(predictions, truths, *, inputs=None, scaling=None, references=None, footprints="detection",
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
    footprints : {"detection", "target"}, bool array, or a sequence of them (one per galaxy)
        :func:`compare`'s ``footprint``; ``None`` in a sequence is "detection".
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
                              footprint="detection" if fps[i] is None else fps[i], data_range=data_range,
                              segmentation=segmentation)  # fmt: skip
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
            table[k] = np.array([r.get(k, NAN) for r in rows], dtype=float) if k != "index" else [r[k] for r in rows]
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
    errors (signed, ``dmag_total``: the bias; and of their absolute values,
    ``dmag_total_abs``: the typical error), mean 1σ/2σ coverage, median colour errors, and the numbers of
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
        return float(np.mean(v)) if v.size else NAN

    def median(name, of=lambda v: v):
        v = of(col(name))
        v = v[np.isfinite(v)]
        return float(np.median(v)) if v.size else NAN

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
        out[f"{q}_w1"] = wasserstein1(pred, true, limits=limits.get(q)) if pred.size and true.size else NAN
    for name in t.colnames:
        if name.startswith("ssim_gain_"):
            out[f"{name}"] = mean(name)
    for name in ("dmag_total", "dmag_aperture"):
        out[name], out[f"{name}_abs"] = median(name), median(name, np.abs)  # signed: the bias; absolute: the error
    out["coverage_1sigma"] = mean("coverage_1sigma")
    out["coverage_2sigma"] = mean("coverage_2sigma")
    for name in t.colnames:
        if name.startswith("colour_error_"):
            out[name] = median(name)
    return Table({k: [v] for k, v in out.items()})
