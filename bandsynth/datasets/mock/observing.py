"""The survey layer of the mock universe: a galaxy as named surveys observe it, on one grid.

:func:`observe_galaxy` renders each band as its survey delivers it (:mod:`.surveys`):
at the native pixel scale, with the survey's PSF (Moffat, beta = 3), sky and Poisson
noise at the survey's depth, a low-order sky-subtraction residual, pixels lost to
detector defects (bad columns and hot pixels, set to 0 and masked) and saturated star
cores (clipped and masked), with the galaxy at a realistic magnitude and size among
neighbours and foreground stars (:mod:`.field`).  The bands are then brought onto one
grid as a user would: `BandStack.reproject <bandsynth.stack.BandStack.reproject>`
(flux-conserving for these per-pixel fluxes).  The same scene without noise, sky
residual, defects or saturation, reprojected the same way, is the noise-free truth.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real

import numpy as np

from ...bands import get_band
from ...units import flux_from_ab, format_unit, nanomaggy
from ..base import tan_wcs
from .field import draw_field, draw_redshift, galaxy_size_and_mag
from .population import galaxy
from .rendering import DEFAULT_PIXEL_SCALE, check_size, convolve, intrinsic_images, positive, psf_transfer
from .spectra import MAX_REDSHIFT, star_band_fluxes
from .surveys import resolve_survey

__all__ = ["observe_galaxy", "SurveyObservation", "psf_image"]

_MARGIN_PX = 2  # native pixels beyond the target grid on every side


@dataclass(frozen=True)
class SurveyObservation:
    """One mock galaxy as surveys observe it (see :func:`observe_galaxy`).

    Attributes
    ----------
    observed : `~bandsynth.BandStack`
        Every band on the common grid: noisy images with their uncertainty and mask,
        as a user gets them after `BandStack.reproject <bandsynth.stack.BandStack.reproject>`;
        ``meta`` holds the truth metadata and the reprojection records.
    truth : `~bandsynth.BandStack`
        The same scene without noise, sky residual, defects or saturation, each band
        with its survey's PSF, reprojected the same way.
    native : dict
        Band name -> single-band `~bandsynth.BandStack` on the survey's native grid
        (as the survey delivers it).
    native_truth : dict
        Band name -> noise-free float32 image on the native grid.
    sky_residual : dict
        Band name -> the sky-subtraction residual added to the native image.
    """

    observed: object
    truth: object
    native: dict
    native_truth: dict
    sky_residual: dict


@functools.lru_cache(maxsize=64)
def _psf_kernel(fwhm_px):
    """The unit-sum Moffat kernel of the survey layer (centred, 2 * ceil(3 FWHM) + 1 pixels wide)."""
    half = int(np.ceil(3 * fwhm_px))
    size = 2 * half + 1
    delta = np.zeros((1, size, size), dtype=np.float32)
    delta[0, half, half] = 1.0
    transfer, n = psf_transfer(fwhm_px, size)
    kern = convolve(delta, transfer, n, size)[0].astype(np.float64)
    return kern / kern.sum()


def psf_image(survey, band):
    """The PSF of ``band`` as ``survey`` observes it, on the native pixel grid.

    Parameters
    ----------
    survey : str
        Survey name (see `bandsynth.datasets.mock.surveys.SURVEYS`).
    band : str
        Band name within the survey or in the registry.

    Returns
    -------
    psf : ndarray
        Unit-sum Moffat (beta = 3) image, centred, odd width.

    Examples
    --------
    >>> psf = psf_image("KiDS", "r")
    >>> psf.shape, round(float(psf.sum()), 6)
    ((23, 23), 1.0)
    """
    (sb,) = resolve_survey({band: survey})
    return _psf_kernel(round(sb.psf_fwhm / sb.pixel_scale, 4)).copy()


def _noise_model(sb, depth_offset):
    """(sky sigma per native pixel, gain in counts per nanomaggy, sky level per pixel) of one survey band.

    The 5-sigma point-source flux is 5 sigma sqrt(NEA), NEA = 1 / sum(psf^2) the noise-
    equivalent area of the pixelated PSF (optimal PSF photometry on a sky-limited image).
    """
    kern = _psf_kernel(round(sb.psf_fwhm / sb.pixel_scale, 4))
    nea = 1.0 / float((kern**2).sum())
    sigma = flux_from_ab(sb.depth + depth_offset) / 5.0 / np.sqrt(nea)
    sky = flux_from_ab(sb.sky_mu) * sb.pixel_scale**2
    return float(sigma), float(sky / sigma**2), float(sky)


def _scenes(gal, view, specs, field, mag, radius, near, star_list, dust, redshift):
    """Noise-free scenes of every band, rendered once per native pixel scale; and each band's total flux."""
    scenes, full_flux = {}, {}
    for scale in sorted({sb.pixel_scale for sb in specs}):
        group = [sb for sb in specs if sb.pixel_scale == scale]
        n = 2 * int(np.ceil(field / 2.0 / scale)) + 2 * _MARGIN_PX
        images, flux = _scene(gal, view, group, n, scale, mag, radius, near, star_list, dust, redshift)
        scenes.update(images)
        full_flux.update(flux)
    return scenes, full_flux


def observe_galaxy(seed, survey="galex_sdss_2mass", *, bands=None, size=128, pixel_scale=None, view=0,
                   depth_offset=0.0, dust=True, log_ssfr=None, galaxy_class=None, r_mag=None,
                   half_light_radius=None, neighbours=True, stars=True, method="interp", family="default",
                   r_mag_range=None, redshift=False, grid_offsets=None):
    """One mock galaxy as named surveys observe it, brought onto one pixel grid.

    Each band is rendered as its survey delivers it -- native pixel scale, PSF, depth, sky
    residual, defects and saturated stars (`bandsynth.datasets.mock.surveys`) -- with the
    galaxy at a realistic magnitude and size among neighbours and foreground stars
    (`bandsynth.datasets.mock.field`), then reprojected onto the common grid with
    `BandStack.reproject <bandsynth.stack.BandStack.reproject>`.  Deterministic.

    Parameters
    ----------
    seed : int
        The galaxy (as in :func:`make_galaxy`); it also seeds its field and noise.
    survey : str or mapping
        A preset (``"galex_sdss_2mass"``, ``"kids_viking"``, ``"decals"``, ``"hsc"``, ...:
        `bandsynth.datasets.mock.surveys.SURVEY_PRESETS`), a survey name (``"HSC"``), or a
        mapping band -> survey such as ``{"NUV": "GALEX", "r": "SDSS", "Ks": "2MASS"}``
        (band names as the survey calls them: ``{"r": "KiDS"}`` is KiDS r, ``KiDS_r``).
    bands : list of str, optional
        With a preset or survey name: the bands to observe (default: all of them).
    size : int
        Width and height of the common grid in pixels.
    pixel_scale : float, optional
        Arcsec per pixel of the common grid (default 0.262").  Every band covers it.
    view : int
        Camera direction (views share the intrinsic galaxy); the field differs per view.
    depth_offset, dust : float, bool
        Magnitudes added to every depth (> 0 is deeper); apply the galaxy's dust screen.
    log_ssfr, galaxy_class, r_mag, half_light_radius : optional
        Force the galaxy's sSFR or class (as in :func:`make_galaxy`), SDSS r magnitude (default: drawn
        from galaxy counts, r = 15-21.5) or half-light radius in arcsec (default: size-magnitude relation).
    r_mag_range : tuple of float, optional
        ``(bright, faint)`` range of the galaxy counts (e.g. ``(14, 18.5)``: galaxies 2MASS detects).
    redshift : bool or float
        `False`: rest frame.  `True`: the galaxy and its neighbours at redshifts drawn from
        their r magnitudes (`bandsynth.datasets.mock.field`), each band seeing the light of
        its wavelength / (1 + z).  A number (at most 0.6): the galaxy's redshift.
    neighbours, stars : bool or float
        Neighbouring galaxies and foreground stars: `True` for the default densities,
        `False` for none, or a number (neighbours: a factor on the density; stars:
        stars per arcmin^2 brighter than r = 24).
    method : {"interp", "exact", "adaptive"}
        Resampling method of `BandStack.reproject <bandsynth.stack.BandStack.reproject>`.
    family : str
        The physics family of the galaxy and its neighbours (`bandsynth.datasets.mock.families.FAMILIES`).
    grid_offsets : float or mapping, optional
        By default every native grid is centred on the common grid's centre (a band of its
        pixel scale moves by whole pixels, its noise untouched).  A number ``p`` offsets each
        band's grid with probability ``p`` by up to half a native pixel along each axis (at
        random, from the galaxy's seed), so that reprojection interpolates it and smooths its
        noise as a user's does; a mapping ``{band: (dx, dy)}`` sets offsets in native pixels
        (each within +-0.5).  Recorded in ``meta["survey"][band]["grid_offset"]``.

    Returns
    -------
    SurveyObservation
        ``observed`` and ``truth`` (BandStacks on the common grid), ``native``,
        ``native_truth`` and ``sky_residual`` (per band, on the native grids).
        ``observed.meta`` holds the truth metadata: that of :func:`make_galaxy` plus the
        galaxy's ``r_mag``, ``half_light_radius`` and ``redshift``, ``survey`` (per band: the
        preset values, ``sky_sigma`` in nanomaggies per native pixel, ``native_shape`` and
        ``masked_fraction``), ``neighbours`` and ``stars`` (positions in arcsec from the
        centre, r magnitudes, neighbours' redshifts) and ``reprojection``.

    Raises
    ------
    ValueError
        Unknown survey, preset or band, a band the survey does not observe, bad sizes.

    Examples
    --------
    >>> obs = observe_galaxy(3, "kids_viking", bands=["g", "r", "Ks"], size=48)
    >>> obs.observed.names, obs.observed.shape
    (('KiDS_g', 'KiDS_r', 'VISTA_Ks'), (48, 48))
    >>> obs.native["KiDS_r"].shape, obs.native["VISTA_Ks"].shape  # 0.2" and 0.339" pixels
    ((68, 68), (42, 42))
    >>> obs.truth["KiDS_r"].uncertainty is None, obs.observed["KiDS_r"].uncertainty is not None
    (True, True)
    """
    specs = resolve_survey(survey, bands)
    size = check_size(size)
    pixel_scale = DEFAULT_PIXEL_SCALE if pixel_scale is None else positive("pixel_scale", pixel_scale)
    _check_options(view, neighbours, stars, depth_offset)
    gal = galaxy(int(seed), log_ssfr, galaxy_class, family)
    field = size * pixel_scale
    mag, radius = galaxy_size_and_mag(gal.seed, field, r_mag=r_mag, half_light_radius=half_light_radius,
                                      mag_range=check_mag_range(r_mag_range))
    near, star_list = draw_field(gal.seed, view, field, mag, neighbours=neighbours, stars=stars)
    z, near = _redshifts(redshift, gal.seed, mag, near)
    scenes, full_flux = _scenes(gal, view, specs, field, mag, radius, near, star_list, dust, z)
    offsets = _grid_offsets(grid_offsets, specs, gal, view)
    seen = {sb.band: _observe_band(sb, scenes[sb.band], gal, view, depth_offset, offsets[sb.band]) for sb in specs}
    native, native_truth, sky_res, info = ({band: parts[k] for band, parts in seen.items()} for k in range(4))
    meta = _meta(gal, view, specs, pixel_scale, mag, radius, near, star_list, info, full_flux, depth_offset, dust, z)
    target = (tan_wcs(gal.ra, gal.dec, pixel_scale, (size, size)), (size, size))
    observed, truth = _onto_common_grid(native, native_truth, specs, target, method, meta)
    return SurveyObservation(observed, truth, native, native_truth, sky_res)


def check_mag_range(r_mag_range):
    """``r_mag_range`` as a (bright, faint) tuple of floats, or None.

    Parameters
    ----------
    r_mag_range : sequence of two float or None

    Returns
    -------
    tuple of float or None

    Raises
    ------
    ValueError
        Not two finite magnitudes, bright < faint.
    """
    if r_mag_range is None:
        return None
    try:
        lo, hi = (float(m) for m in r_mag_range)
    except (TypeError, ValueError):
        raise ValueError(f"r_mag_range must be two r magnitudes (bright, faint), got {r_mag_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"r_mag_range must be two finite r magnitudes with bright < faint, got {r_mag_range!r}")
    return lo, hi


def _redshifts(redshift, seed, r_mag, near):
    """The galaxy's redshift from ``observe_galaxy``'s ``redshift`` option, and the neighbours
    with theirs (drawn unless the option is False)."""
    if redshift is False:
        return 0.0, near
    near = [{**nb, "redshift": draw_redshift(nb["seed"], nb["r_mag"])} for nb in near]
    if redshift is True:
        return draw_redshift(seed, r_mag), near
    try:
        z = float(redshift)
    except (TypeError, ValueError):
        z = float("nan")
    if not 0.0 <= z <= MAX_REDSHIFT:
        raise ValueError(f"redshift must be True, False or a number from 0 to {MAX_REDSHIFT}, got {redshift!r}")
    return z, near


def _check_options(view, neighbours, stars, depth_offset):
    if not isinstance(view, (int, np.integer)) or isinstance(view, bool) or view < 0:
        raise ValueError(f"view must be an integer >= 0, got {view!r}")
    for name, value in (("neighbours", neighbours), ("stars", stars)):
        if isinstance(value, bool):
            continue
        if not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be True, False or a number >= 0, got {value!r}")
    if not np.isfinite(float(depth_offset)):
        raise ValueError(f"depth_offset must be a finite number of magnitudes, got {depth_offset!r}")


def _stamp_scale(gal):
    """Half-light radius of ``gal`` in its own length unit (a stamp width), roughly."""
    p = gal.params
    return gal.bt_r * p["bulge_re"] + (1.0 - gal.bt_r) * 1.678 * p["disk_scale"]


def _scene(gal, view, group, n, scale, mag, radius, near, star_list, dust, redshift):
    """Noise-free images before the PSF of every band of ``group`` (one native grid): galaxy,
    neighbours and stars.  Returns ({band: (n, n) image}, {band: whole-galaxy dust-free flux})."""
    bands = [get_band(sb.band) for sb in group]
    to_px = radius / _stamp_scale(gal) / scale
    images, flux = intrinsic_images(gal, view=view, bands=bands, size=n, to_px=to_px, dust=dust, redshift=redshift)
    scale_flux = 10.0 ** (-0.4 * (mag - gal.r_mag))
    images = images * np.float32(scale_flux)
    c = (n - 1) / 2.0
    for nb in near:
        other = galaxy(nb["seed"], None, None, gal.family)
        px = nb["half_light_radius"] / _stamp_scale(other) / scale
        m = int(np.clip(np.ceil(px * 1.2) * 2 + 3, 9, 97))
        stamp, _ = intrinsic_images(other, view=nb["view"], bands=bands, size=m, to_px=px, dust=dust,
                                    redshift=nb.get("redshift", 0.0))
        stamp *= np.float32(10.0 ** (-0.4 * (nb["r_mag"] - other.r_mag)))
        _add_shifted(images, stamp, c - nb["dx"] / scale - (m - 1) / 2.0, c + nb["dy"] / scale - (m - 1) / 2.0)
    if star_list:
        colours = star_band_fluxes(bands, [s["temperature"] for s in star_list])  # (n_star, n_band)
        for s, col in zip(star_list, colours):
            point = (flux_from_ab(s["r_mag"]) * col).astype(np.float32)[:, None, None]
            _add_shifted(images, point, c - s["dx"] / scale, c + s["dy"] / scale)
    return {sb.band: images[i] for i, sb in enumerate(group)}, {sb.band: float(f * scale_flux)
                                                                for sb, f in zip(group, flux)}


def _add_shifted(images, stamp, x0, y0):
    """Add ``stamp`` (n_band, m, m) into ``images`` with its pixel (0, 0) at (x0, y0): bilinear
    (flux-conserving) sub-pixel placement; light falling off ``images`` is lost.  (Offsets
    ``dx`` are to the east, i.e. to the left of these north-up images, ``dy`` to the north.)"""
    ix, iy = int(np.floor(x0)), int(np.floor(y0))
    fx, fy = x0 - ix, y0 - iy
    n_y, n_x = images.shape[1:]
    m_y, m_x = stamp.shape[1:]
    for ox, oy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xs, ys = ix + ox, iy + oy
        x_lo, x_hi = max(xs, 0), min(xs + m_x, n_x)
        y_lo, y_hi = max(ys, 0), min(ys + m_y, n_y)
        if x_lo >= x_hi or y_lo >= y_hi or w == 0:
            continue
        images[:, y_lo:y_hi, x_lo:x_hi] += np.float32(w) * stamp[:, y_lo - ys:y_hi - ys, x_lo - xs:x_hi - xs]


def _band_rng(gal, view, band, what):
    return np.random.default_rng(np.random.SeedSequence([gal.seed, 8, int(view), zlib.crc32(band.encode()), what]))


def check_offset_probability(value, *, or_mapping=False):
    """``grid_offsets`` as a probability (float from 0 to 1).

    Parameters
    ----------
    value : float
    or_mapping : bool
        Say in the error that a mapping of band to offsets is accepted too (`observe_galaxy`).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Not a number from 0 to 1.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real) or not 0.0 <= value <= 1.0:
        alternative = " or a mapping of band to (dx, dy)" if or_mapping else ""
        raise ValueError(f"grid_offsets: expected a probability from 0 to 1{alternative}, got {value!r}")
    return float(value)


def _grid_offsets(grid_offsets, specs, gal, view):
    """Band -> ``(dx, dy)``: how far its native grid is offset, in native pixels (see :func:`observe_galaxy`)."""
    names = [sb.band for sb in specs]
    if grid_offsets is None:
        return dict.fromkeys(names, (0.0, 0.0))
    if isinstance(grid_offsets, Mapping):
        unknown = sorted(set(grid_offsets) - set(names))
        if unknown:
            raise ValueError(f"grid_offsets names {unknown}, which this observation does not have; its bands are "
                             f"{names}")
        offsets = dict.fromkeys(names, (0.0, 0.0))
        for band, offset in grid_offsets.items():
            pair = np.asarray(offset, dtype=float)
            if pair.shape != (2,) or not np.all(np.abs(pair) <= 0.5):
                raise ValueError(f"grid_offsets[{band!r}]: expected (dx, dy) in native pixels, each within +-0.5, "
                                 f"got {offset!r}")
            offsets[band] = (float(pair[0]), float(pair[1]))
        return offsets
    probability = check_offset_probability(grid_offsets, or_mapping=True)
    offsets = {}
    for band in names:
        rng = _band_rng(gal, view, band, 1)  # its own stream: the noise (stream 0) stays as it was
        moved, dx, dy = rng.random() < probability, rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)
        offsets[band] = (float(dx), float(dy)) if moved else (0.0, 0.0)
    return offsets


def _observe_band(sb, scene, gal, view, depth_offset, offset):
    """PSF, noise, sky residual, defects and saturation of one band on its native grid, that grid
    ``offset`` ``(dx, dy)`` native pixels from being centred on the galaxy."""
    from ...stack import BandStack

    n = scene.shape[0]
    fwhm_px = round(sb.psf_fwhm / sb.pixel_scale, 4)
    transfer, pad_n = psf_transfer(fwhm_px, n, offset)  # the scene moved by the offset as the PSF blurs it
    truth = convolve(scene[None], transfer, pad_n, n)[0].astype(np.float32)
    sigma, gain, sky = _noise_model(sb, depth_offset)
    rng = _band_rng(gal, view, sb.band, 0)
    var = sigma**2 + np.clip(truth, 0.0, None) / gain
    unc = np.sqrt(var).astype(np.float32)
    data = truth + unc * rng.standard_normal(truth.shape, dtype=np.float32)
    residual = _sky_residual(rng, n, sb.sky_residual * sky)
    data += residual
    mask = _defects(rng, n, sb.mask_fraction)
    data[mask] = 0.0
    level = flux_from_ab(sb.saturation) * float(_psf_kernel(fwhm_px).max())
    saturated = truth > level
    if saturated.any():
        from scipy.ndimage import binary_dilation

        data[saturated] = level
        mask |= binary_dilation(saturated)
    wcs = tan_wcs(gal.ra, gal.dec, sb.pixel_scale, (n, n))
    wcs.wcs.crpix = wcs.wcs.crpix + np.asarray(offset)  # the galaxy's centre is where the scene moved it
    stack = BandStack.from_arrays({sb.band: data}, wcs=wcs, unit=nanomaggy, uncertainty={sb.band: unc},
                                  mask={sb.band: mask}, meta={"survey": sb.survey})
    info = {"sky_sigma": sigma, "native_shape": [n, n], "masked_fraction": float(mask.mean()),
            "saturated_pixels": int(saturated.sum()), "grid_offset": [float(offset[0]), float(offset[1])]}
    return stack, truth, residual, info


def _sky_residual(rng, n, rms):
    """A plane plus a quadratic of RMS ``rms`` over the image (a large-scale sky-subtraction error)."""
    if rms <= 0:
        return np.zeros((n, n), dtype=np.float32)
    t = np.linspace(-1.0, 1.0, n)
    x, y = np.meshgrid(t, t)
    terms = np.stack([x, y, x * x - 1 / 3, y * y - 1 / 3, x * y])
    surface = np.tensordot(rng.standard_normal(5), terms, axes=1)
    surface += rng.standard_normal() * surface.std()  # a constant offset of the same order
    return (surface * rms / max(np.sqrt(np.mean(surface**2)), 1e-30)).astype(np.float32)


def _defects(rng, n, fraction):
    """Boolean mask of detector defects covering ~``fraction`` of the pixels: half in bad
    column segments, half in hot pixels and small clusters."""
    mask = np.zeros((n, n), dtype=bool)
    budget = fraction * n * n
    while budget > 0.5 * fraction * n * n and fraction > 0:
        col, start = rng.integers(0, n), rng.integers(0, n)
        length = int(rng.integers(n // 4, n + 1))
        mask[start:start + length, col] = True
        budget -= min(length, n - start)
    n_hot = rng.poisson(max(budget, 0.0) / 2.0)
    ys, xs = rng.integers(0, n, n_hot), rng.integers(0, n, n_hot)
    mask[ys, xs] = True
    mask[ys, np.minimum(xs + 1, n - 1)] |= rng.random(n_hot) < 0.5
    return mask


def _onto_common_grid(native, native_truth, specs, target, method, meta):
    """The observed and the noise-free bands (on their native grids) reprojected onto the target grid."""
    from ...stack import BandStack

    truth = {sb.band: BandStack.from_arrays({sb.band: native_truth[sb.band]}, unit=nanomaggy,
                                            wcs=native[sb.band].wcs) for sb in specs}
    return (_reproject_bands(native, specs, target, method, meta),
            _reproject_bands(truth, specs, target, method, {**meta, "noise_free": True}))


def _reproject_bands(stacks, specs, target, method, meta):
    """Every band's native stack onto the target grid with BandStack.reproject, then one stack."""
    from ...stack import BandStack

    out, records = {}, []
    for sb in specs:
        native = stacks[sb.band]
        # a user would give the same option: TAN grids need no round-trip check of the coordinates
        moved = native.reproject(target, method=method, **({"roundtrip_coords": False} if method == "interp" else {}))
        out[sb.band] = moved[sb.band]
        records.extend(moved.meta.get("reprojection", ()))
    return BandStack.from_arrays(out, meta={**meta, "reprojection": records})


def _meta(gal, view, specs, pixel_scale, mag, radius, near, star_list, info, full_flux, depth_offset, dust, redshift):
    inc, pa = gal.view_angles(view)
    return {
        "galaxy_id": gal.seed, "seed": gal.seed, "view": int(view), "galaxy_class": gal.galaxy_class,
        "log_ssfr": gal.log_ssfr, "ssfr": 10.0**gal.log_ssfr, "bt_r": gal.bt_r, "bt_mass": gal.bt_mass,
        "r_mag": float(mag), "half_light_radius": float(radius), "redshift": float(redshift),
        "inclination": float(np.degrees(inc)), "position_angle": float(np.degrees(pa)),
        "ra": gal.ra, "dec": gal.dec, "mode": "survey", "pixel_scale": float(pixel_scale),
        "psf_fwhm": {sb.band: sb.psf_fwhm for sb in specs}, "unit": format_unit(nanomaggy), "dust": bool(dust),
        "depth_offset": float(depth_offset),
        "survey": {sb.band: {"survey": sb.survey, "pixel_scale": sb.pixel_scale, "psf_fwhm": sb.psf_fwhm,
                             "depth": sb.depth, "sky_mu": sb.sky_mu, "sky_residual": sb.sky_residual,
                             "mask_fraction": sb.mask_fraction, "saturation": sb.saturation, **info[sb.band]}
                   for sb in specs},
        "components": {k: (bool(v) if isinstance(v, (bool, np.bool_)) else
                           [float(t) for t in v] if isinstance(v, np.ndarray) else float(v))
                       for k, v in gal.params.items()},
        "flux_total": {sb.band: full_flux[sb.band] for sb in specs},
        "sky_sigma": {sb.band: info[sb.band]["sky_sigma"] for sb in specs},
        "neighbours": [dict(nb) for nb in near],
        "stars": [dict(s) for s in star_list],
        **gal.family_meta(),
    }
