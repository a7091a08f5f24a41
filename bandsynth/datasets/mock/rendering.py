"""Rendering a mock galaxy in each band: components, star particles, dust, PSF and noise.

Each component's image is made once per view -- analytic profiles sampled as pixel
averages, star particles deposited with cloud-in-cell weights -- and every band is a
weighted sum of these few images with weights from the spectra, times the band's dust
transmission.  ``mode="ideal"`` blurs every band with one common Gaussian PSF and adds no
noise; ``mode="survey"`` uses each band's PSF FWHM (Moffat, beta = 3) and adds sky and
Poisson noise at the depth of :data:`SURVEY_DEPTHS`."""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft as sfft
from scipy.ndimage import gaussian_filter
from scipy.special import gamma as gamma_fn
from scipy.special import i0e

from ...bands import sort_bands
from ...units import flux_from_ab, format_unit, nanomaggy
from .families import dust_curve
from .population import galaxy, sersic_b
from .spectra import N_BINS, calzetti_k, mm
from .surveys import SURVEYS

__all__ = ["render_galaxy", "DEFAULT_BANDS", "DEFAULT_PIXEL_SCALE", "DEFAULT_IDEAL_PSF_FWHM", "SURVEY_DEPTHS"]


#: Bands rendered unless told otherwise: the 13 bands of the paper's data (GALEX FUV/NUV,
#: SDSS ugriz, DECam grz, 2MASS JHKs) in wavelength order.  Every registered band can be asked for by name.
DEFAULT_BANDS = ("FUV", "NUV", "u", "g", "DECam_g", "r", "DECam_r", "i", "z", "DECam_z", "J", "H", "Ks")


#: Arcsec per pixel of the mock images unless told otherwise (the DECaLS scale).
DEFAULT_PIXEL_SCALE = 0.262


#: FWHM (arcsec) of the common Gaussian PSF of ``mode="ideal"`` (1.5 pixels).
DEFAULT_IDEAL_PSF_FWHM = 1.5 * DEFAULT_PIXEL_SCALE


#: Survey-mode depth per band: (5-sigma point-source AB depth, sky surface brightness in AB mag/arcsec^2).
#: Typical values: GALEX AIS, SDSS (Abazajian et al. 2009), DECaLS (Dey et al. 2019: 5-sigma depths
#: g 24.0, r 23.4, z 22.5 for a 0.45" exponential galaxy, here +0.4 mag for a point source), 2MASS
#: (10-sigma Vega depths J 15.8, H 15.1, Ks 14.3 and sky 15.9/14.6/13.1 mag/arcsec^2, converted
#: to AB and to 5 sigma).
SURVEY_DEPTHS = {
    "FUV": (19.9, 26.8),
    "NUV": (20.8, 26.0),
    "u": (22.0, 22.1),
    "g": (22.2, 21.9),
    "r": (22.2, 20.9),
    "i": (21.3, 20.2),
    "z": (20.5, 19.0),
    "DECam_g": (24.4, 22.0),
    "DECam_r": (23.8, 21.0),
    "DECam_z": (22.9, 19.2),
    "J": (17.5, 16.8),
    "H": (17.2, 16.0),
    "Ks": (16.9, 14.9),
    # the newer bands: the depths and skies of their survey presets
    **{sb.band: (sb.depth, sb.sky_mu) for name in ("KiDS", "VIKING", "HSC") for sb in SURVEYS[name].values()},
}


_SMOOTH_COMPONENTS = ("bulge", "disk", "arms", "bar", "companion")


# ----------------------------------------------------------------------------------------------
# Rendering one view
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _grid(size):
    c = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return (x - c).ravel(), (y - c).ravel()


def _rotation(inc, pa):
    """Galaxy frame -> sky (x to the right, y up, z towards the observer)."""
    ci, si = np.cos(inc), np.sin(inc)
    incl = np.array([[1, 0, 0], [0, ci, -si], [0, si, ci]])
    cp, sp = np.cos(pa), np.sin(pa)
    rot = np.array([[cp, -sp, 0], [sp, cp, 0], [0, 0, 1]])
    return rot @ incl


def _elliptical_radius(x, y, q, pa, soft):
    c, s = np.cos(pa), np.sin(pa)
    xr = x * c + y * s
    yr = (-x * s + y * c) / q
    return np.sqrt(xr * xr + yr * yr + soft * soft)


def _sersic_image(x, y, *, n, re, q, pa, size, cx=0.0, cy=0.0):
    """Sérsic profile centred on (cx, cy), normalised to unit total flux over the whole plane.

    Pixel values are pixel averages: the central pixels are supersampled so that a cuspy
    profile a pixel or two across keeps its flux.
    """
    b = sersic_b(n)
    total = 2 * np.pi * q * re * re * n * math.exp(b) * b ** (-2 * n) * gamma_fn(2 * n)

    def profile(xx, yy):
        r = _elliptical_radius(xx - cx, yy - cy, q, pa, 0.0)
        return np.exp(-b * ((r / re) ** (1.0 / n) - 1.0)) / total

    img = profile(x, y)
    c = (size - 1) / 2.0
    i0, j0 = int(round(cx + c)), int(round(cy + c))
    # 9x9 pixels at 5x5 sub-samples, then the central 3x3 finely enough for the cusp (~Re/25)
    for half, k in ((4, 5), (1, int(np.clip(np.ceil(25.0 / max(re, 1e-3)), 5, 64)))):
        ii = np.arange(max(i0 - half, 0), min(i0 + half + 1, size))
        jj = np.arange(max(j0 - half, 0), min(j0 + half + 1, size))
        if not (ii.size and jj.size):
            continue
        sub = (np.arange(k) + 0.5) / k - 0.5
        xs = (ii[:, None] + sub[None, :]).ravel() - c
        ys = (jj[:, None] + sub[None, :]).ravel() - c
        vals = profile(xs[None, :], ys[:, None]).reshape(jj.size, k, ii.size, k).mean(axis=(1, 3))
        img.reshape(size, size)[jj[:, None], ii[None, :]] = vals
    return img


def _render_particles(pos_xy, weights, bins, n_bins, size):
    """Cloud-in-cell deposit of particles into ``n_bins`` images; off-stamp light is lost."""
    px = pos_xy[:, 0] + (size - 1) / 2.0
    py = pos_xy[:, 1] + (size - 1) / 2.0
    ix, iy = np.floor(px), np.floor(py)
    fx, fy = px - ix, py - iy
    ix, iy = ix.astype(np.int64), iy.astype(np.int64)
    jx = np.concatenate([ix, ix + 1, ix, ix + 1])
    jy = np.concatenate([iy, iy, iy + 1, iy + 1])
    w = np.concatenate([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy]) * np.tile(weights, 4)
    ok = (jx >= 0) & (jx < size) & (jy >= 0) & (jy < size)
    idx = (np.tile(bins, 4) * size + jy) * size + jx
    # one bincount for all bins and corners
    return np.bincount(idx[ok], weights=w[ok], minlength=n_bins * size * size).reshape(n_bins, size * size)


def _combine(weights, basis):
    """``weights @ basis`` without BLAS: tiny inner dimension, and BLAS threads stall on busy machines."""
    return np.einsum("bk,kp->bp", weights, basis)


@functools.lru_cache(maxsize=64)
def _psf_transfer(kind, fwhm_px, size, shift=(0.0, 0.0)):
    """Real FFT of a unit-sum PSF on a zero-padded grid, and that grid's shape.

    ``shift`` ``(dx, dy)`` centres the kernel that many pixels off pixel (0, 0): convolving
    with it moves the image by that much, exactly in flux and without the ringing of a
    phase ramp.
    """
    pad = int(np.ceil(2.0 * fwhm_px)) + 2
    n = sfft.next_fast_len(size + 2 * pad, real=True)
    # kernels are sampled in real space (positive, unit sum), centred on pixel (0, 0) with
    # wrap-around; a Gaussian sampled in Fourier space would ring when narrower than a pixel
    d = (np.arange(n) + n // 2) % n - n // 2  # signed wrap-around offsets from pixel 0
    r2 = (d[:, None] - shift[1]) ** 2 + (d[None, :] - shift[0]) ** 2
    if kind == "gaussian":
        sigma = fwhm_px / 2.3548
        kern = np.exp(-0.5 * r2 / sigma**2)
    else:  # Moffat, beta = 3
        beta = 3.0
        alpha = fwhm_px / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
        kern = (1.0 + r2 / alpha**2) ** -beta
    kern /= kern.sum()
    transfer = sfft.rfft2(kern)
    return transfer.astype(np.complex64), n


@functools.lru_cache(maxsize=16)
def _gaussian_taps(fwhm_px):
    sigma = fwhm_px / 2.3548
    r = np.arange(-int(np.ceil(3 * sigma)), int(np.ceil(3 * sigma)) + 1)
    k = np.exp(-0.5 * (r / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def _gaussian_blur(images, fwhm_px):
    """Gaussian PSF on (n, ny, nx) images: separable direct convolution when narrow, FFT otherwise."""
    if fwhm_px > 6.0:
        transfer, n = _psf_transfer("gaussian", fwhm_px, images.shape[-1])
        return _convolve(images, transfer, n, images.shape[-1])
    taps = _gaussian_taps(fwhm_px)
    r = len(taps) // 2
    nimg, ny, nx = images.shape
    # shift-and-add in float32 (faster than generic filters for a handful of taps); zero outside
    tmp = np.zeros((nimg, ny + 2 * r, nx), dtype=np.float32)
    for j, w in enumerate(taps):
        tmp[:, j : j + ny, :] += w * images
    tmp = tmp[:, r : r + ny, :]
    out = np.zeros((nimg, ny, nx + 2 * r), dtype=np.float32)
    for j, w in enumerate(taps):
        out[:, :, j : j + nx] += w * tmp
    return out[:, :, r : r + nx]


def _convolve(images, transfers, n, size):
    """Convolve (n_band, size, size) images; ``transfers`` one per band or one shared."""
    padded = np.zeros((images.shape[0], n, n), dtype=np.float32)
    padded[:, :size, :size] = images
    spec = sfft.rfft2(padded, workers=1)
    spec *= transfers
    out = sfft.irfft2(spec, s=(n, n), workers=1)
    return out[:, :size, :size]


def render_galaxy(seed, *, view=0, mode="ideal", bands=None, size=128, pixel_scale=None,
                  psf_fwhm=None, depth_offset=0.0, dust=True, log_ssfr=None, galaxy_class=None, family="default"):
    """Render one view of one mock galaxy as plain arrays (the fast path of :func:`make_galaxy`).

    Parameters
    ----------
    seed : int
        Identifies the galaxy (the same seed gives the same galaxy in every
        mode, band set and view); it is also its ``galaxy_id``.
    view : int
        Camera: views share the intrinsic galaxy (star particles, spectra)
        and differ in inclination and position angle.
    mode : {"ideal", "survey"}
        ``"ideal"``: one common Gaussian PSF (``psf_fwhm``), no noise.
        ``"survey"``: each band's registry PSF (Moffat, beta = 3), sky and
        Poisson noise at the depths of :data:`SURVEY_DEPTHS` shifted by
        ``depth_offset`` magnitudes; the noise map is the uncertainty.
    bands : list of str, optional
        Bands to render (default: :data:`DEFAULT_BANDS`, the 13 bands FUV to Ks of the paper).
    size : int
        Stamp width and height in pixels.  Galaxies are drawn to fill most of
        the stamp: their angular size scales with ``size * 0.262"``.
    pixel_scale : float, optional
        Arcsec per pixel (default :data:`DEFAULT_PIXEL_SCALE`).
    psf_fwhm : float, optional
        FWHM (arcsec) of the common PSF in ideal mode (default :data:`DEFAULT_IDEAL_PSF_FWHM`).
    depth_offset : float
        Survey mode: magnitudes added to every band's depth (> 0 is deeper).
    dust : bool
        Apply the dust screen.
    log_ssfr : float, optional
        Force log10 of the specific star-formation rate (1/yr) instead of drawing it.
    galaxy_class : str, optional
        Force the class (one of `~bandsynth.datasets.mock.GALAXY_CLASSES`).
    family : str
        The physics family (`bandsynth.datasets.mock.families.FAMILIES`).

    Returns
    -------
    images : dict
        Band name -> float32 image (nanomaggies per pixel), in wavelength order.
    uncertainty : dict or None
        Band name -> float32 1-sigma noise map (``mode="survey"`` only).
    meta : dict
        Truth metadata (see :func:`make_galaxy`).
    """
    bands, size, pixel_scale = _check_render_args(bands, mode, size, pixel_scale, view)
    gal = galaxy(int(seed), log_ssfr, galaxy_class, family)
    # stamp-fraction lengths -> pixels: galaxies are drawn to fill a stamp of `size` pixels
    # at the default pixel scale, whatever pixel scale is asked for
    to_px = size * DEFAULT_PIXEL_SCALE / pixel_scale
    inc, pa = gal.view_angles(view)
    rot = _rotation(inc, pa)
    x, y = _grid(size)
    table, agb_shape, particle_images, cloud_map = _particle_images(gal, bands, rot, pa, to_px, size)
    smooth, q_disk, h = _smooth_images(gal, inc, pa, rot, to_px, x, y, size)
    intrinsic, in_stamp, full_flux, psf = _band_images(
        gal, bands, mode, table, agb_shape, smooth, particle_images, psf_fwhm, pixel_scale, size
    )
    tau_map = _dust_map(gal, inc, pa, q_disk, h, to_px, x, y, cloud_map, size) if dust else None
    if tau_map is not None:
        _apply_dust(intrinsic, bands, tau_map, gal)
    stamp_flux = intrinsic.sum(axis=1)
    images = intrinsic.reshape(len(bands), size, size)
    images, uncertainty, sky_sigma = _observe(images, gal, view, mode, bands, psf, pixel_scale, depth_offset, size)
    fluxes = (full_flux, stamp_flux, in_stamp)
    meta = _render_meta(gal, view, mode, bands, inc, pa, pixel_scale, psf, dust, fluxes, depth_offset, sky_sigma)
    return {b.name: images[i] for i, b in enumerate(bands)}, uncertainty, meta


def intrinsic_images(gal, *, view, bands, size, to_px, dust=True, redshift=0.0):
    """Dust-attenuated images of ``gal`` before any PSF, for the survey layer.

    ``gal`` is a galaxy of `bandsynth.datasets.mock.population.galaxy`; ``bands``
    are registry bands; ``to_px`` converts the galaxy's lengths (fractions of a
    stamp width) to pixels.  Returns the float32 ``(n_band, size, size)`` images
    (nanomaggies per pixel, whole galaxy flux set by ``gal.r_mag``) and the
    whole-plane dust-free flux of each band.  At ``redshift`` the bands observe the galaxy's
    redshifted light (its dust in its rest frame) and ``gal.r_mag`` is its observed r magnitude.
    """
    inc, pa = gal.view_angles(view)
    rot = _rotation(inc, pa)
    x, y = _grid(size)
    table, agb_shape, particle_images, cloud_map = _particle_images(gal, bands, rot, pa, to_px, size, redshift)
    smooth, q_disk, h = _smooth_images(gal, inc, pa, rot, to_px, x, y, size)
    intrinsic, _, full_flux, _ = _band_images(
        gal, bands, "survey", table, agb_shape, smooth, particle_images, None, 1.0, size, redshift=redshift
    )
    if dust:
        tau_map = _dust_map(gal, inc, pa, q_disk, h, to_px, x, y, cloud_map, size)
        if tau_map is not None:
            _apply_dust(intrinsic, bands, tau_map, gal, redshift)
    return intrinsic.reshape(len(bands), size, size), full_flux


def psf_transfer(fwhm_px, size, shift=(0.0, 0.0)):
    """Real FFT of the unit-sum Moffat (beta = 3) PSF of FWHM ``fwhm_px`` pixels on the
    zero-padded grid of a ``size``-pixel image, and that grid's width (see :func:`convolve`);
    with ``shift`` ``(dx, dy)`` the PSF is centred that many pixels off the pixel's centre."""
    shift = (float(shift[0]), float(shift[1]))
    # a random sub-pixel shift is drawn once per band and galaxy: not cached, so as not to evict the centred kernels
    compute = _psf_transfer if shift == (0.0, 0.0) else _psf_transfer.__wrapped__
    return compute("moffat", round(float(fwhm_px), 4), int(size), shift)


def convolve(images, transfer, n, size):
    """Convolve ``(n_image, size, size)`` images with a transfer function of :func:`psf_transfer`."""
    return _convolve(images, transfer, n, size)


def _check_render_args(bands, mode, size, pixel_scale, view):
    """Validated (bands, size, pixel_scale) of :func:`render_galaxy`."""
    bands = sort_bands(DEFAULT_BANDS if bands is None else [bands] if isinstance(bands, str) else bands)
    if mode not in ("ideal", "survey"):
        raise ValueError(f"mode must be 'ideal' or 'survey', got {mode!r}")
    size = check_size(size)
    pixel_scale = DEFAULT_PIXEL_SCALE if pixel_scale is None else positive("pixel_scale", pixel_scale)
    if not isinstance(view, (int, np.integer)) or view < 0:
        raise ValueError(f"view must be an integer >= 0, got {view!r}")
    return bands, size, pixel_scale


def _particle_images(gal, bands, rot, pa, to_px, size, redshift=0.0):
    """Star particles -> one image per age bin, one of the AGB-light deviations, and the dust clouds.

    Returns the populations' band table, the AGB band shape, the (N_BINS + 1, npix) particle
    images and the flattened dust-cloud map.
    """
    p = gal.params
    pos = gal.particle_pos
    sky = mm(pos, rot.T)[:, :2] * to_px
    comp_mask = gal.particle_is_companion
    if comp_mask.any():
        offset = (p["companion_offset"] @ rot.T)[:2] * to_px
        c, s = np.cos(p["companion_pa"] + pa), np.sin(p["companion_pa"] + pa)
        cpos = pos[comp_mask][:, :2] * to_px
        sky[comp_mask] = np.stack([c * cpos[:, 0] - s * cpos[:, 1], s * cpos[:, 0] + c * cpos[:, 1]], 1) + offset
    table, agb_shape, agb_amp = gal.population_fluxes(bands, redshift)
    # age-bin images plus one image of the particles' AGB-light deviations from their bin mean
    n_part = len(gal.particle_bin)
    dust_sky = mm(gal.dust_pos, rot.T)[:, :2] * to_px
    bins = np.concatenate([gal.particle_bin, np.full(n_part, N_BINS), np.full(len(dust_sky), N_BINS + 1)])
    wts = np.concatenate([gal.particle_flux_r, gal.particle_flux_r * agb_amp[gal.particle_bin] * gal.particle_agb_dev,
                          gal.dust_weight * to_px**2])
    if gal.agn_r > 0:
        # the AGN: one point at the galaxy's centre, in its own image after the dust clouds'
        deposits = _render_particles(np.concatenate([sky, sky, dust_sky, np.zeros((1, 2))]),
                                     np.concatenate([wts, [1.0]]), np.concatenate([bins, [N_BINS + 2]]),
                                     N_BINS + 3, size)
        return table, agb_shape, np.concatenate([deposits[:N_BINS + 1], deposits[N_BINS + 2:]]), deposits[N_BINS + 1]
    deposits = _render_particles(np.concatenate([sky, sky, dust_sky]), wts, bins, N_BINS + 2, size)
    particle_images, cloud_map = deposits[:-1], deposits[-1]
    return table, agb_shape, particle_images, cloud_map


def _smooth_images(gal, inc, pa, rot, to_px, x, y, size):
    """Smooth profiles (unit total flux, whole plane) by component, the disk's axis ratio and scale (px)."""
    p = gal.params
    h = p["disk_scale"] * to_px
    q_disk = float(np.sqrt(np.cos(inc) ** 2 + (p["disk_thickness"] * np.sin(inc)) ** 2))
    smooth = {}
    q_bulge = float(np.sqrt(np.cos(inc) ** 2 + (p["bulge_flattening"] * np.sin(inc)) ** 2))
    smooth["bulge"] = _sersic_image(x, y, n=p["bulge_n"], re=p["bulge_re"] * to_px, q=q_bulge, pa=pa, size=size)
    disk = _sersic_image(x, y, n=1.0, re=1.6783469900166608 * h, q=q_disk, pa=pa, size=size)
    smooth["disk"] = disk
    if gal.smooth_r["arms"].sum() > 0:
        smooth["arms"] = _arms_image(p, disk, pa, q_disk, h, x, y)
    if p["has_bar"]:
        smooth["bar"] = _bar_image(p, rot, to_px, x, y)
    if p["has_companion"]:
        off = (p["companion_offset"] @ rot.T)[:2] * to_px
        smooth["companion"] = _sersic_image(
            x, y, n=p["companion_n"], re=p["companion_re"] * to_px, q=p["companion_q"],
            pa=p["companion_pa"] + pa, size=size, cx=off[0], cy=off[1],
        )
    return smooth, q_disk, h


def _arms_image(p, disk, pa, q_disk, h, x, y):
    """The disk modulated by the spiral arms."""
    # the spiral phase in the disk plane; the modulation has unit mean around every circle
    c, s = np.cos(pa), np.sin(pa)
    xd = x * c + y * s
    yd = (-x * s + y * c) / q_disk  # the disk's own ellipse, so circles keep the disk's light
    rd = np.sqrt(xd * xd + yd * yd) + 1e-3
    phi = np.arctan2(yd, xd)
    tan_pitch = np.tan(np.radians(p["arms_pitch_deg"]))
    # arms no narrower than ~1 pixel across (sharper ones would alias on the grid)
    kappa0 = p["arms_concentration"]
    kappa = np.minimum(kappa0, (rd * tan_pitch / p["arms_m"]) ** 2)
    norm = np.full_like(kappa, i0e(kappa0))
    inner = kappa < kappa0
    norm[inner] = i0e(kappa[inner])
    delta = p["arms_m"] * (phi - p["arms_phase"] - np.log(rd / h) / tan_pitch)
    modulation = np.exp(kappa * (np.cos(delta) - 1.0)) / norm - 1.0  # zero mean on every circle
    # arms start outside the centre (where the log spiral winds faster than the pixels)
    ramp = 1.0 - np.exp(-((rd / (0.6 * h)) ** 2))
    return disk * (1.0 + ramp * modulation)


def _bar_image(p, rot, to_px, x, y):
    """The bar: a projected 3-D Gaussian, unit total flux."""
    cov_disk = np.diag([(0.45 * p["bar_length"]) ** 2, (0.45 * p["bar_length"] * p["bar_axis_ratio"]) ** 2])
    cb, sb = np.cos(p["bar_angle"]), np.sin(p["bar_angle"])
    rb = np.array([[cb, -sb], [sb, cb]])
    cov3 = np.zeros((3, 3))
    cov3[:2, :2] = rb @ cov_disk @ rb.T
    cov3[2, 2] = (0.05 * p["disk_scale"]) ** 2
    cov_sky = (rot @ cov3 @ rot.T)[:2, :2] * to_px**2
    inv = np.linalg.inv(cov_sky)
    quad = inv[0, 0] * x * x + 2 * inv[0, 1] * x * y + inv[1, 1] * y * y
    return np.exp(-0.5 * quad) / (2 * np.pi * np.sqrt(np.linalg.det(cov_sky)))


def _band_images(gal, bands, mode, table, agb_shape, smooth, particle_images, psf_fwhm, pixel_scale, size, *,
                 redshift=0.0):
    """Bands = weighted sums of the basis images (PSF-blurred first in ideal mode).

    Returns the (n_band, npix) dust-free images, their in-stamp and whole-plane fluxes,
    and the PSF FWHM of each band.
    """
    names = [c for c in _SMOOTH_COMPONENTS if c in smooth]
    smooth_basis = np.stack([smooth[c] for c in names]).astype(np.float32)
    particle_basis = particle_images.astype(np.float32)
    # (n_band, n_basis): band flux (whole plane) of every basis image
    w_smooth = np.stack([table @ gal.smooth_r[c] for c in names], axis=1).astype(np.float32)
    w_part = np.concatenate([table, agb_shape[:, None]], axis=1).astype(np.float32)
    full_flux = table @ sum(gal.light_r.values())  # per band, whole plane, no dust
    agn = gal.agn_fluxes(bands, redshift)
    if agn is not None:  # the AGN's image (unit flux) is the last particle image
        w_part = np.concatenate([w_part, agn[:, None].astype(np.float32)], axis=1)
        full_flux = full_flux + agn
    if mode == "ideal":
        # One common PSF: it is applied to the basis images before they are combined (it is
        # linear), so 8 particle images are convolved instead of 13 bands.  The smooth
        # profiles already have a core softened on the scale of the default PSF; they are
        # convolved too when a wider PSF is asked for.  The dust screen, smooth on the PSF
        # scale, multiplies the result.
        fwhm = DEFAULT_IDEAL_PSF_FWHM if psf_fwhm is None else positive("psf_fwhm", psf_fwhm)
        fwhm_px = round(fwhm / pixel_scale, 4)
        particle_basis = _gaussian_blur(particle_basis.reshape(-1, size, size), fwhm_px).reshape(-1, size * size)
        if fwhm_px > 2.0:
            smooth_basis = _gaussian_blur(smooth_basis.reshape(-1, size, size), fwhm_px).reshape(-1, size * size)
        psf = {b.name: float(fwhm) for b in bands}
    else:
        psf = {b.name: float(b.psf_fwhm.value) for b in bands}
    intrinsic = _combine(w_smooth, smooth_basis) + _combine(w_part, particle_basis)  # (n_band, npix)
    in_stamp = (w_smooth.astype(np.float64) * smooth_basis.sum(axis=1, dtype=np.float64)).sum(axis=1) + (
        w_part.astype(np.float64) * particle_basis.sum(axis=1, dtype=np.float64)
    ).sum(axis=1)
    return intrinsic, in_stamp, full_flux, psf


def _apply_dust(intrinsic, bands, tau_map, gal, redshift=0.0):
    """Dim the (n_band, npix) images in place by the dust screen ``tau_map`` (tau_V), with the
    galaxy's dust curve (Calzetti et al. 2000 in the default family) at the bands' rest-frame
    wavelengths."""
    if gal.physics is None:
        rest = np.array([b.wavelength.value for b in bands]) / (1.0 + redshift)
        k_rel = (calzetti_k(rest) / 4.05).astype(np.float32)
    else:
        k_rel = dust_curve(bands, gal.physics, redshift)
    dusty = np.flatnonzero(tau_map > 1e-6)  # the screen covers the disk only
    intrinsic[:, dusty] *= np.exp(-k_rel[:, None] * tau_map[None, dusty])


def _observe(images, gal, view, mode, bands, psf, pixel_scale, depth_offset, size):
    """PSF and noise: (float32 images, uncertainty or None, per-band sky sigma or None)."""
    uncertainty = sky_sigma = None
    if mode == "ideal":
        images = np.maximum(images, 0.0)  # float32 round-off of the FFT: ideal images have no noise
    else:
        out = np.empty_like(images)
        for i, b in enumerate(bands):
            transfer, n = _psf_transfer("moffat", round(psf[b.name] / pixel_scale, 4), size)
            out[i] = _convolve(images[i : i + 1], transfer, n, size)[0]
        sky_sigma, gains = _noise_levels(bands, pixel_scale, depth_offset)
        var = sky_sigma[:, None, None] ** 2 + np.clip(out, 0, None) / gains[:, None, None]
        sigma = np.sqrt(var).astype(np.float32)
        rng_noise = np.random.default_rng(np.random.SeedSequence([gal.seed, 3, int(view)]))
        images = out + sigma * rng_noise.standard_normal(out.shape, dtype=np.float32)
        uncertainty = {b.name: sigma[i] for i, b in enumerate(bands)}
    return np.ascontiguousarray(images, dtype=np.float32), uncertainty, sky_sigma


def _render_meta(gal, view, mode, bands, inc, pa, pixel_scale, psf, dust, fluxes, depth_offset, sky_sigma):
    """Truth metadata of one rendered view; ``fluxes`` = (whole plane, in stamp, in-stamp basis)."""
    full_flux, stamp_flux, in_stamp = fluxes
    meta = {
        "galaxy_id": gal.seed,
        "seed": gal.seed,
        "view": int(view),
        "galaxy_class": gal.galaxy_class,
        "log_ssfr": gal.log_ssfr,
        "ssfr": 10.0**gal.log_ssfr,
        "bt_r": gal.bt_r,
        "bt_mass": gal.bt_mass,
        "r_mag": gal.r_mag,
        "inclination": float(np.degrees(inc)),
        "position_angle": float(np.degrees(pa)),
        "ra": gal.ra,
        "dec": gal.dec,
        "mode": mode,
        "pixel_scale": float(pixel_scale),
        "psf_fwhm": psf,
        "unit": format_unit(nanomaggy),
        "dust": bool(dust),
        "components": _public_params(gal.params),
        "populations": {
            "age": [float(a) for a in gal.ages],
            "metallicity": [float(z) for z in gal.metallicities],
            "uv_upturn": [float(v) for v in gal.uv_upturn],
            "r_flux": {c: [float(v) for v in gal.light_r[c]] for c in gal.light_r},
            # a family's other stellar spectra (spectra.STELLAR_SPECTRA), for component_fluxes
            **({} if gal.family.stellar_spectra == "mock" else {"spectra": gal.family.stellar_spectra}),
        },
        "flux_total": {b.name: float(full_flux[i]) for i, b in enumerate(bands)},
        "flux_stamp": {b.name: float(stamp_flux[i]) for i, b in enumerate(bands)},
        "in_stamp_fraction": {b.name: float(in_stamp[i] / full_flux[i]) for i, b in enumerate(bands)},
        **gal.family_meta(),
    }
    if mode == "survey":
        meta["depth_offset"] = float(depth_offset)
        meta["sky_sigma"] = {b.name: float(sky_sigma[i]) for i, b in enumerate(bands)}
    return meta


def _dust_map(gal, inc, pa, q_disk, h, to_px, x, y, cloud_map, size):
    """tau_V on the stamp (flattened, float32), or None for a dust-free galaxy."""
    p = gal.params
    if not (p["dust_tau_v"] > 0 or p["dust_lane_tau_v"] > 0 or p["dust_cloud_tau_v"] > 0):
        return None
    c, s = np.cos(pa), np.sin(pa)
    xr, yr = x * c + y * s, -x * s + y * c
    r_ell = np.sqrt(xr**2 + (yr / q_disk) ** 2)
    hd = p["dust_scale"] * h
    path = min(1.0 / max(np.cos(inc), 1e-3), 6.0) ** 0.5  # longer sight lines through inclined disks
    tau = p["dust_tau_v"] * path * np.exp(-r_ell / hd)
    if inc > np.radians(65.0):  # the mid-plane lane of a (nearly) edge-on disk
        strength = (inc - np.radians(65.0)) / np.radians(25.0)
        width = max(0.8, h * (0.05 + 0.6 * np.cos(inc)))
        shift = 0.35 * h * np.cos(inc)
        tau = tau + strength * p["dust_lane_tau_v"] * np.exp(-np.abs(yr - shift) / width - np.abs(xr) / (1.5 * hd))
    if p["dust_cloud_tau_v"] > 0:
        sigma = max(p["dust_cloud_size"] * to_px, 0.5)
        tau = tau + gaussian_filter(cloud_map.reshape(size, size), sigma, mode="constant").ravel()
    return tau.astype(np.float32)


def _noise_levels(bands, pixel_scale, depth_offset):
    """Per-pixel sky sigma and effective gain (counts per nanomaggy) of each band."""
    sig, gain = [], []
    for b in bands:
        depth, sky_mu = SURVEY_DEPTHS.get(b.name, (22.0, 21.0))
        f5 = flux_from_ab(depth + depth_offset)
        sigma_psf_px = b.psf_fwhm.value / pixel_scale / 2.3548
        nea = 4 * np.pi * sigma_psf_px**2  # noise-equivalent area of a Gaussian PSF
        s = f5 / 5.0 / np.sqrt(nea)
        sky = flux_from_ab(sky_mu) * pixel_scale**2
        sig.append(s)
        gain.append(sky / s**2)
    return np.array(sig, dtype=np.float32), np.array(gain, dtype=np.float32)


def _public_params(p):
    out = {}
    for k, v in p.items():
        if isinstance(v, np.ndarray):
            out[k] = [float(t) for t in v]
        elif isinstance(v, (bool, np.bool_)):
            out[k] = bool(v)
        elif isinstance(v, (int, np.integer)):
            out[k] = int(v)
        else:
            out[k] = float(v)
    return out


def check_size(size):
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool):
        raise TypeError(f"size must be an integer number of pixels, got {type(size).__name__}")
    if size < 8:
        raise ValueError(f"size must be >= 8 pixels, got {size}")
    return int(size)


def positive(name, value):
    import astropy.units as u

    if isinstance(value, u.Quantity):
        value = value.to_value(u.arcsec)
    if not isinstance(value, (int, float, np.floating, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number (arcsec), got {type(value).__name__}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return float(value)
