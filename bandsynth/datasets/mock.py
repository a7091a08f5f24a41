"""The built-in mock universe: paired multi-band galaxy images with known truth.

Each galaxy is built from physically motivated parts, deterministically from
one integer seed:

* a Sérsic bulge, an exponential disk seen at some inclination and position
  angle, logarithmic spiral arms (m = 2-4) modulating the disk, compact
  star-forming clumps along the arms, optionally a bar and a companion;
* stars of six ages (5 Myr to 10 Gyr).  Part of every component's light is a
  smooth profile and part is many small "star particles", as in the Illustris
  mock images: young particles are few and bright, old ones many and faint,
  so every band gets its own lumpy structure;
* a stellar-population spectrum per age -- a mixture of blackbodies (main
  sequence up to the turn-off temperature, giants, a variable UV upturn for
  old stars, metal line blanketing in the UV) -- integrated through each
  band's response (:meth:`bandsynth.bands.Band.transmission`); ages and
  metallicities scatter from galaxy to galaxy;
* a dust screen following the disk (and a lane when seen edge-on) with a
  Calzetti et al. (2000) attenuation curve, strongest in the UV;
* a population drawn by specific star-formation rate: ellipticals, spirals,
  irregular/starburst galaxies and edge-on disks.

Several views (like the Illustris cameras) show the same intrinsic galaxy --
the same star particles and dust clouds -- from different directions.
``mode="ideal"`` (Illustris-like) blurs every band with one common Gaussian
PSF and adds no noise; ``mode="survey"`` uses each band's PSF FWHM from the
band registry (Moffat profile, beta = 3), adds sky and Poisson noise at the
depth of :data:`SURVEY_DEPTHS` and returns the noise map as the uncertainty.
Images are in nanomaggies (:data:`bandsynth.units.nanomaggy`) with a TAN WCS.

Rendering is fast (about 100 galaxies per second and core in 13 bands at
128x128): each component's image is made once per view -- analytic profiles
sampled as pixel averages, star particles deposited with cloud-in-cell
weights -- and every band is a weighted sum of these few images with weights
from the spectra, times the band's dust transmission.  In ideal mode the
common PSF, being linear, is applied to the particle images before they are
summed (the smooth profiles are blurred too when the PSF is wider than 2
pixels) and the dust screen multiplies the result; in survey mode each band
is attenuated first and then convolved with its own PSF.

Examples
--------
>>> from bandsynth.datasets.mock import render_galaxy
>>> images, uncertainty, meta = render_galaxy(7, bands=["NUV", "r", "Ks"], size=32)
>>> sorted(images), images["r"].shape, images["r"].dtype
(['Ks', 'NUV', 'r'], (32, 32), dtype('float32'))
>>> meta["galaxy_class"] in ("elliptical", "spiral", "irregular", "edge-on")
True
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft as sfft
from scipy.ndimage import gaussian_filter
from scipy.special import gamma as gamma_fn
from scipy.special import gammaincinv, i0e

from ..bands import get_band, list_bands, sort_bands
from ..units import flux_from_ab, format_unit, nanomaggy

__all__ = [
    "make_galaxy",
    "make_dataset",
    "render_galaxy",
    "galaxy_seed",
    "MockDataset",
    "population_sed",
    "population_band_fluxes",
    "component_fluxes",
    "calzetti_k",
    "GALAXY_CLASSES",
    "AGE_BINS",
    "DEFAULT_PIXEL_SCALE",
    "DEFAULT_IDEAL_PSF_FWHM",
    "SURVEY_DEPTHS",
]

#: Arcsec per pixel of the mock images unless told otherwise (the DECaLS scale).
DEFAULT_PIXEL_SCALE = 0.262
#: FWHM (arcsec) of the common Gaussian PSF of ``mode="ideal"`` (1.5 pixels).
DEFAULT_IDEAL_PSF_FWHM = 1.5 * DEFAULT_PIXEL_SCALE
#: Nominal ages (yr) of the six stellar-population bins.
AGE_BINS = (5e6, 3e7, 2e8, 1e9, 4e9, 1e10)
#: Galaxy classes, in order of increasing specific star-formation rate (edge-on disks are spirals
#: seen edge-on).
GALAXY_CLASSES = ("elliptical", "spiral", "edge-on", "irregular")

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
}

_N_BINS = len(AGE_BINS)
_SMOOTH_FRACTION = np.array([0.08, 0.08, 0.2, 0.35, 0.45, 0.5])  # light of each age kept smooth
# Share of the galaxy's r-band light carried by one star particle, per age bin: young stars
# come in few bright particles, old stars in many faint ones.
_PARTICLE_QUANTUM = np.array([1 / 250, 1 / 400, 1 / 700, 1 / 3000, 1 / 5000, 1 / 6000])
_MAX_PARTICLES_PER_SET = 6000
_N_DUST_CLOUDS = 400
_AGB_SCATTER = 2.0  # ln-scatter of the AGB light of a star particle
_SMOOTH_COMPONENTS = ("bulge", "disk", "arms", "bar", "companion")


# ----------------------------------------------------------------------------------------------
# Stellar populations
# ----------------------------------------------------------------------------------------------
_LAM = np.geomspace(100.0, 3200.0, 400)  # nm
_TEMPS = np.geomspace(2600.0, 60000.0, 40)  # K
_HC_K = 1.438777e7  # h c / k in nm K


def _blackbody_per_bolometric(lam_nm, temps):
    """f_nu shape of blackbodies per unit bolometric flux, shape (n_T, n_lam)."""
    x = _HC_K / (lam_nm[None, :] * temps[:, None])
    with np.errstate(over="ignore"):
        bnu = lam_nm[None, :] ** -3 / np.expm1(np.minimum(x, 700.0))
    return bnu / temps[:, None] ** 4


_BB = _blackbody_per_bolometric(_LAM, _TEMPS)


def _turnoff_temperature(age, metallicity):
    log_t = np.log10(age)
    log_temp = np.interp(log_t, [6.5, 7.0, 8.0, 9.0, 10.1], [4.65, 4.42, 4.08, 3.86, 3.76])
    return 10.0 ** (log_temp - 0.03 * metallicity)


_T_AGB = 2800.0  # K: thermally pulsing AGB stars


def _agb_fraction(age):
    """Share of the bolometric light from TP-AGB stars: large at 0.3-3 Gyr (Maraston 2005)."""
    return float(np.interp(np.log10(age), [8.0, 8.5, 9.0, 9.5, 10.0, 10.2], [0.0, 0.2, 0.35, 0.3, 0.22, 0.2]))


def _agb_weights():
    lt = np.log(_TEMPS)
    g = np.exp(-0.5 * ((lt - np.log(_T_AGB)) / 0.04) ** 2)
    return g / g.sum()


def _population_weights(age, metallicity, uv_upturn):
    """Bolometric light fractions over the temperature grid."""
    t_to = _turnoff_temperature(age, metallicity)
    lt = np.log(_TEMPS)
    ms = (_TEMPS / t_to) ** 3.5 / (1.0 + np.exp((_TEMPS - t_to) / (0.04 * t_to)))
    giant_fraction = 0.02 + 0.48 * np.clip((np.log10(age) - 6.9) / 2.6, 0.0, 1.0)
    agb = _agb_fraction(age)
    t_giant = 4400.0 * 10.0 ** (-0.06 * metallicity)
    giants = np.exp(-0.5 * ((lt - np.log(t_giant)) / 0.05) ** 2)
    upturn = np.exp(-0.5 * ((lt - np.log(25000.0)) / 0.1) ** 2)
    w = (1.0 - giant_fraction - agb - uv_upturn) * ms / ms.sum() + giant_fraction * giants / giants.sum()
    return w + uv_upturn * upturn / upturn.sum() + agb * _agb_weights()


def _break_depth(lam_nm, temps):
    """Absorption optical depth of each temperature's atmosphere, (n_T, n_lam), solar metallicity.

    Cool atmospheres lose a large part of their light blue-wards of 400 nm (the 4000 A
    break: Ca II H&K, Balmer and metal lines) and to metal-line blanketing further in the
    UV; hot ones hardly any.  This is what makes u - r and NUV - r age-sensitive.
    """
    step = 1.0 / (1.0 + np.exp((lam_nm - 395.0) / 8.0))
    uv = np.clip(400.0 / lam_nm - 1.0, 0.0, None)
    cool = (5500.0 / temps[:, None]) ** 4
    return 0.4 * cool * step[None, :] + 0.35 * np.minimum(cool, 3.0) * uv[None, :]


_BREAK = _break_depth(_LAM, _TEMPS)


def _sed(w, bb, brk, metallicity):
    """f_nu of a population with temperature weights ``w`` (see :func:`population_sed`)."""
    absorbed = brk.max(axis=0) > 1e-7  # only blue-wards of ~450 nm
    per_temp = bb.copy()
    per_temp[:, absorbed] *= np.exp(-(10.0 ** (0.4 * metallicity)) * brk[:, absorbed])
    return _mm(w, per_temp)


def population_sed(wavelength, *, age, metallicity=0.0, uv_upturn=0.0):
    """Spectrum f_nu (arbitrary units, 1 unit of bolometric light) of a stellar population.

    Blackbody mixture: main-sequence stars up to the turn-off temperature of
    ``age``, giants whose share of the light grows with age, a hot (25 000 K)
    UV-upturn component carrying ``uv_upturn`` of the bolometric light, and UV
    line blanketing and a 4000 A break (deep for cool stars) growing with
    ``metallicity``.

    Parameters
    ----------
    wavelength : array-like of float or `~astropy.units.Quantity`
        Wavelengths (nm if a plain number).
    age : float
        Age in years (5e6 to 1.3e10).
    metallicity : float
        log10(Z / Z_sun).
    uv_upturn : float
        Fraction (0 to 0.1) of the bolometric light emitted by hot horizontal-branch stars.

    Examples
    --------
    >>> import numpy as np
    >>> lam = np.array([227.0, 616.0])
    >>> young = population_sed(lam, age=1e7)
    >>> old = population_sed(lam, age=1e10)
    >>> bool(young[0] / young[1] > 10 * old[0] / old[1])  # young stars are UV-bright
    True
    """
    lam = np.atleast_1d(_as_nm(wavelength)).astype(float)
    bb = _blackbody_per_bolometric(lam, _TEMPS)
    w = _population_weights(float(age), float(metallicity), float(uv_upturn))
    sed = _sed(w, bb, _break_depth(lam, _TEMPS), float(metallicity))
    return sed.reshape(np.shape(_as_nm(wavelength)))


def _as_nm(wavelength):
    import astropy.units as u

    if isinstance(wavelength, u.Quantity):
        return wavelength.to_value(u.nm, equivalencies=u.spectral())
    return np.asarray(wavelength, dtype=float)


@functools.lru_cache(maxsize=64)
def _band_response(names):
    """Photon-counting response matrix (n_lam, n_band): f_nu-mean in each band = sed @ R."""
    dlnlam = np.gradient(np.log(_LAM))
    cols = []
    for name in names:
        t = get_band(name).transmission(_LAM) * dlnlam
        cols.append(t / t.sum())
    return np.stack(cols, axis=1)


def population_band_fluxes(bands, *, age, metallicity=0.0, uv_upturn=0.0):
    """Band-averaged f_nu of :func:`population_sed` for each band (same arbitrary units).

    The mean of f_nu weighted by the band response per unit log wavelength (the
    AB convention for photon-counting detectors).

    Examples
    --------
    >>> f = population_band_fluxes(["NUV", "r"], age=1e10)
    >>> bool(-2.5 * np.log10(f[0] / f[1]) > 4)  # old stars: NUV - r > 4 mag
    True
    """
    names = tuple(b.name for b in (get_band(b) for b in bands))
    sed = population_sed(_LAM, age=age, metallicity=metallicity, uv_upturn=uv_upturn)
    return _mm(sed, _band_response(names))


def component_fluxes(meta, bands=None):
    """Whole-galaxy flux (nanomaggies, no dust) of each component in each band, from the spectra.

    Recomputed from the truth metadata of a mock image (``stack.meta``): the
    r-band flux of every component and age bin times the band-to-r flux
    ratio of that age bin's spectrum (:func:`population_band_fluxes`).

    Returns
    -------
    dict
        Component name -> {band name -> flux}.

    Examples
    --------
    >>> _, _, meta = render_galaxy(3, bands=["FUV", "Ks"], size=16)
    >>> fluxes = component_fluxes(meta, ["FUV", "Ks"])
    >>> sorted(fluxes)
    ['arms', 'bar', 'bulge', 'clumps', 'companion', 'disk']
    """
    pops = meta["populations"]
    names = list(meta["flux_total"]) if bands is None else [get_band(b).name for b in bands]
    ratios = []
    for age, z, up in zip(pops["age"], pops["metallicity"], pops["uv_upturn"]):
        f = population_band_fluxes(names + ["r"], age=age, metallicity=z, uv_upturn=up)
        ratios.append(f[:-1] / f[-1])
    ratios = np.array(ratios)  # (n_age, n_band)
    return {c: dict(zip(names, np.asarray(r_flux) @ ratios)) for c, r_flux in pops["r_flux"].items()}


def calzetti_k(wavelength):
    """Calzetti et al. (2000) attenuation curve k(lambda), R_V = 4.05.

    ``A_lambda = k(lambda) E(B-V)``; extrapolated linearly in 1/lambda below
    120 nm and above 2.2 micron (where it is clipped at 0).

    Examples
    --------
    >>> round(float(calzetti_k(550.0)), 2)
    4.05
    """
    lam = np.asarray(_as_nm(wavelength), dtype=float) / 1000.0  # micron
    lam_c = np.clip(lam, 0.12, None)
    short = 2.659 * (-2.156 + 1.509 / lam_c - 0.198 / lam_c**2 + 0.011 / lam_c**3) + 4.05
    long = 2.659 * (-1.857 + 1.040 / lam) + 4.05
    k = np.where(lam < 0.63, short, long)
    return np.clip(k, 0.0, None)


# ----------------------------------------------------------------------------------------------
# Intrinsic galaxy (view independent)
# ----------------------------------------------------------------------------------------------
def galaxy_seed(seed, index):
    """Seed of galaxy ``index`` of a data set made with ``seed`` (see :func:`make_dataset`).

    Examples
    --------
    >>> galaxy_seed(0, 1) == galaxy_seed(0, 1) != galaxy_seed(0, 2)
    True
    """
    return int(np.random.SeedSequence([int(seed), int(index), 0x6D6F636B]).generate_state(1, np.uint32)[0])


@functools.lru_cache(maxsize=1)
def _ssfr_cdf():
    """The population's log10 sSFR [1/yr]: red sequence 35 %, star-forming sequence 50 %,
    starbursts 15 % (a mixture of three normals), tabulated as (grid, cdf)."""
    from scipy.special import ndtr

    grid = np.linspace(-13.5, -7.8, 2000)
    cdf = 0.35 * ndtr((grid + 11.8) / 0.35) + 0.50 * ndtr((grid + 10.1) / 0.3) + 0.15 * ndtr((grid + 9.1) / 0.3)
    return grid, (cdf - cdf[0]) / (cdf[-1] - cdf[0])


def _draw_log_ssfr(u):
    """Quantile function of the population's log10 sSFR [1/yr]."""
    grid, cdf = _ssfr_cdf()
    return float(np.interp(u, cdf, grid))


def _classify(log_ssfr, u_edge):
    if log_ssfr < -11.0:
        return "elliptical"
    if log_ssfr > -9.5:
        return "irregular"
    return "edge-on" if u_edge < 0.25 else "spiral"


def _sersic_b(n):
    return float(gammaincinv(2.0 * n, 0.5))


class _Galaxy:
    """All view-independent properties of one galaxy; lengths in units of the stamp width."""

    def __init__(self, seed, *, log_ssfr=None, galaxy_class=None):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
        self.seed = int(seed)
        u_ssfr, u_edge = rng.random(2)
        self.log_ssfr = _draw_log_ssfr(u_ssfr) if log_ssfr is None else float(log_ssfr)
        self.galaxy_class = _classify(self.log_ssfr, u_edge) if galaxy_class is None else galaxy_class
        if self.galaxy_class not in GALAXY_CLASSES:
            raise ValueError(f"galaxy_class must be one of {GALAXY_CLASSES}, got {galaxy_class!r}")
        cls = self.galaxy_class
        self.ra = float(rng.uniform(0.0, 360.0))
        self.dec = float(np.degrees(np.arcsin(rng.uniform(-1.0, 1.0))))
        self.r_mag = float(rng.uniform(13.0, 15.5))

        # ---- structure (sizes: fraction of the stamp width) -----------------------------------
        p = {}
        p["disk_scale"] = float(rng.uniform(0.09, 0.14))
        p["disk_thickness"] = float(rng.uniform(0.08, 0.15))
        p["arms_m"] = int(rng.choice([2, 2, 3, 4]))
        p["arms_pitch_deg"] = float(rng.uniform(12.0, 28.0))
        p["arms_phase"] = float(rng.uniform(0, 2 * np.pi))
        p["arms_width"] = float(rng.uniform(0.25, 0.45))  # radians of spiral phase
        p["arms_concentration"] = float(rng.uniform(3.0, 6.0))
        p["bulge_n"] = float(rng.uniform(3.0, 5.5) if cls == "elliptical" else rng.uniform(1.2, 4.0))
        p["bulge_re"] = float(
            rng.uniform(0.09, 0.18) if cls == "elliptical" else rng.uniform(0.02, 0.05)
        )
        p["bulge_flattening"] = float(rng.uniform(0.55, 1.0) if cls == "elliptical" else rng.uniform(0.6, 0.95))
        p["has_bar"] = bool(cls in ("spiral", "edge-on") and rng.random() < 0.35)
        p["bar_length"] = float(rng.uniform(1.0, 2.0) * p["disk_scale"])
        p["bar_axis_ratio"] = float(rng.uniform(0.2, 0.4))
        p["bar_angle"] = float(rng.uniform(0, np.pi))
        p["has_companion"] = bool(rng.random() < (0.4 if cls == "irregular" else 0.15))
        p["companion_offset"] = rng.normal(size=3)
        p["companion_offset"] *= rng.uniform(0.28, 0.4) / np.linalg.norm(p["companion_offset"][:2] + 1e-9)
        p["companion_re"] = float(rng.uniform(0.02, 0.04))
        p["companion_n"] = float(rng.uniform(1.0, 4.0))
        p["companion_q"] = float(rng.uniform(0.5, 1.0))
        p["companion_pa"] = float(rng.uniform(0, np.pi))
        p["companion_mass_ratio"] = float(rng.uniform(0.05, 0.25))
        p["companion_star_forming"] = bool(rng.random() < 0.5)
        p["n_clumps"] = int(
            {"elliptical": rng.integers(0, 3), "spiral": rng.integers(10, 30),
             "edge-on": rng.integers(10, 30), "irregular": rng.integers(20, 50)}[cls]
        )
        p["clump_size"] = float(rng.uniform(0.003, 0.008))
        p["dust_tau_v"] = float(
            {"elliptical": rng.uniform(0.0, 0.05), "spiral": rng.uniform(0.3, 1.0),
             "edge-on": rng.uniform(0.4, 1.0), "irregular": rng.uniform(0.2, 0.8)}[cls]
        )
        p["dust_lane_tau_v"] = float(rng.uniform(1.5, 4.0)) if cls != "elliptical" else 0.0
        p["dust_scale"] = float(rng.uniform(1.0, 1.5))  # in disk scale lengths
        # clumpy dust: clouds along the arms and in the disk (mean tau_V over the inner disk)
        p["dust_cloud_tau_v"] = float(
            {"elliptical": 0.0, "spiral": rng.uniform(0.3, 1.0), "edge-on": rng.uniform(0.4, 1.2),
             "irregular": rng.uniform(0.3, 0.9)}[cls]
        )
        p["dust_cloud_size"] = float(rng.uniform(0.006, 0.012))
        if cls == "irregular":
            p["arms_concentration"] = float(rng.uniform(0.5, 1.5))  # weak, patchy arms
        self.params = p

        # ---- stellar populations --------------------------------------------------------------
        ages = np.array(AGE_BINS) * 10.0 ** rng.uniform(-0.1, 0.1, _N_BINS)
        z_gal = float(rng.normal(0.0, 0.2))
        metal = z_gal + np.array([0.1, 0.1, 0.05, 0.0, -0.1, -0.2]) + rng.normal(0, 0.05, _N_BINS)
        upturn = np.zeros(_N_BINS)
        upturn[4:] = rng.uniform(0.0, 0.012) * (2.0 if cls == "elliptical" else 1.0)
        self.ages, self.metallicities, self.uv_upturn = ages, metal, upturn

        # ---- masses per component and age bin (total stellar mass = 1) -----------------------
        bt = {
            "elliptical": rng.uniform(0.8, 1.0),
            "spiral": rng.uniform(0.1, 0.5),
            "edge-on": rng.uniform(0.05, 0.4),
            "irregular": rng.uniform(0.0, 0.12),
        }[cls]
        ssfr = 10.0**self.log_ssfr
        burst = rng.uniform(1.5, 3.0) if cls == "irregular" else 1.0
        young = np.array([ssfr * 1e7 * burst, ssfr * 5e7 * burst, ssfr * 3.4e8])
        m = {c: np.zeros(_N_BINS) for c in ("bulge", "disk", "arms", "clumps", "bar", "companion")}
        old_mass = 1.0 - young.sum()
        bar_frac = rng.uniform(0.05, 0.15) if p["has_bar"] else 0.0
        m["bulge"][3:] = bt * old_mass * np.array([0.0, 0.2, 0.8])
        disk_old = (1.0 - bt) * old_mass
        disk_mix = rng.dirichlet([0.3, 3.0, 6.0] if cls == "elliptical" else [2.0, 4.0, 4.0])
        arm_old = rng.uniform(0.2, 0.4) if cls != "elliptical" else 0.0
        # the arms and the bar take shares of the disk's intermediate-age and old stars
        m["arms"][3:5] = arm_old * disk_old * disk_mix[:2]
        m["bar"][3:] = bar_frac * disk_old * disk_mix
        m["disk"][3:] = disk_old * disk_mix - m["arms"][3:] - m["bar"][3:]
        if cls == "elliptical":
            # residual star formation in the disk/bulge, a few clumps at most
            m["bulge"][:3] = 0.6 * young
            m["disk"][:3] = 0.3 * young
            m["clumps"][:3] = 0.1 * young
        else:
            f_clump = rng.uniform(0.5, 0.75)
            m["clumps"][:2] = f_clump * young[:2]
            m["arms"][:2] = (1.0 - f_clump) * 0.65 * young[:2]
            m["disk"][:2] = (1.0 - f_clump) * 0.35 * young[:2]
            m["arms"][2] = 0.45 * young[2]
            m["disk"][2] = 0.55 * young[2]
        if p["n_clumps"] == 0:
            m["disk"] += m["clumps"]
            m["clumps"][:] = 0.0
        if p["has_companion"]:
            q = p["companion_mass_ratio"]
            if p["companion_star_forming"]:
                m["companion"][:] = q * np.array([1e-3, 4e-3, 0.02, 0.1, 0.3, 0.576])
            else:
                m["companion"][3:] = q * np.array([0.0, 0.3, 0.7])
        self.mass = m
        # r-band light per unit mass of each age bin (SSP-like: L/M ~ t^-0.65, 5 Myr / 10 Gyr ~ 140)
        light_per_mass = (self.ages / 1e10) ** -0.65
        light = {c: mc * light_per_mass for c, mc in m.items()}
        total = sum(v.sum() for v in light.values())
        f_tot = float(flux_from_ab(self.r_mag))
        self.light_r = {c: v / total * f_tot for c, v in light.items()}  # nanomaggies in r, no dust
        main_light = sum(v.sum() for c, v in light.items() if c != "companion")
        self.bt_r = float(light["bulge"].sum() / main_light)
        self.bt_mass = float(bt)

        # ---- star particles (3-D, galaxy frame) --------------------------------------------
        self._make_particles(rng)
        self._make_dust_clouds(rng)

    # .........................................................................................
    def _make_particles(self, rng):
        p = self.params
        h = p["disk_scale"]
        pos, flux, age_bin, is_comp, agb_dev = [], [], [], [], []
        total_r = sum(v.sum() for v in self.light_r.values())
        clump_centres = self._arm_positions(rng, max(p["n_clumps"], 1), h, inner=0.5) if p["n_clumps"] else None
        clump_weights = rng.lognormal(0.0, 0.6, max(p["n_clumps"], 1))
        clump_weights /= clump_weights.sum()
        for comp, light in self.light_r.items():
            # one draw per component; the particles of each age bin share its light
            lum = light * (1.0 - _SMOOTH_FRACTION) if comp != "clumps" else np.asarray(light, dtype=float)
            counts = np.where(
                lum > 0,
                np.clip(np.round(lum / (total_r * _PARTICLE_QUANTUM)), 1, _MAX_PARTICLES_PER_SET),
                0,
            ).astype(np.int64)
            if counts.sum() == 0:
                continue
            bins = np.repeat(np.arange(_N_BINS), counts)
            xyz = self._sample(comp, rng, bins, clump_centres, clump_weights)
            w = np.exp(np.where(bins < 3, 0.5, 0.2) * rng.standard_normal(bins.size))
            # a particle holds few TP-AGB stars: its AGB light scatters (mean 1 per bin, so the
            # bin's total light is unchanged)
            agb = np.exp(_AGB_SCATTER * rng.standard_normal(bins.size))
            w_sum = np.bincount(bins, weights=w, minlength=_N_BINS)
            agb_sum = np.bincount(bins, weights=agb * w, minlength=_N_BINS)
            agb_dev.append(agb * (w_sum / np.where(agb_sum > 0, agb_sum, 1.0))[bins] - 1.0)
            pos.append(xyz)
            flux.append(w * (lum / np.where(w_sum > 0, w_sum, 1.0))[bins])
            age_bin.append(bins)
            is_comp.append(np.full(bins.size, comp == "companion"))
        self.particle_pos = np.concatenate(pos)
        self.particle_flux_r = np.concatenate(flux)
        self.particle_bin = np.concatenate(age_bin)
        self.particle_is_companion = np.concatenate(is_comp)
        self.particle_agb_dev = np.concatenate(agb_dev)
        # smooth light of each component (r band, no dust) per age bin
        self.smooth_r = {
            c: (self.light_r[c] * _SMOOTH_FRACTION if c != "clumps" else np.zeros(_N_BINS))
            for c in self.light_r
        }

    def _make_dust_clouds(self, rng):
        p = self.params
        h = p["disk_scale"]
        n = _N_DUST_CLOUDS if p["dust_cloud_tau_v"] > 0 else 0
        n_arm = n * 2 // 3
        # dust lanes run along the inner (concave) edge of the arms
        arms = self._arm_positions(rng, n_arm, h, scatter=0.5 * p["arms_width"], offset=-1.2 * p["arms_width"])
        radius = h * rng.gamma(2.0, 1.0, n - n_arm)
        phi = rng.uniform(0, 2 * np.pi, n - n_arm)
        disk = np.stack([radius * np.cos(phi), radius * np.sin(phi), rng.laplace(0, 0.03 * h, n - n_arm)], 1)
        self.dust_pos = np.concatenate([arms, disk])
        w = rng.lognormal(0.0, 0.8, n)
        # integral of tau_V over the face-on disk (stamp-fraction^2): mean tau over r < 2h
        self.dust_weight = w / max(w.sum(), 1e-30) * p["dust_cloud_tau_v"] * np.pi * (2 * h) ** 2

    def _arm_positions(self, rng, n, h, *, inner=0.0, scatter=None, offset=0.0):
        p = self.params
        radius = h * rng.gamma(2.0, 1.0, n)
        if inner:
            radius = np.where(radius < inner * h, radius + inner * h, radius)
        arm = rng.integers(0, p["arms_m"], n)
        tan_pitch = np.tan(np.radians(p["arms_pitch_deg"]))
        width = p["arms_width"] if scatter is None else scatter
        phase = rng.normal(offset, width, n)
        if self.galaxy_class == "irregular":
            phase = rng.uniform(-np.pi, np.pi, n) * rng.uniform(0.3, 1.0)
        phi = p["arms_phase"] + 2 * np.pi * arm / p["arms_m"] + np.log(radius / h) / tan_pitch + phase / p["arms_m"]
        z = rng.laplace(0.0, 0.03 * h, n)
        return np.stack([radius * np.cos(phi), radius * np.sin(phi), z], axis=1)

    def _sample(self, comp, rng, bins, clump_centres, clump_weights):
        """Positions (galaxy frame) of particles of age bins ``bins`` of component ``comp``."""
        p = self.params
        h = p["disk_scale"]
        n = bins.size
        if comp == "disk":
            radius = h * rng.gamma(2.0, 1.0, n)
            phi = rng.uniform(0, 2 * np.pi, n)
            hz = p["disk_thickness"] * h * np.where(bins < 3, 0.5, 1.0)  # young stars: thinner disk
            return np.stack([radius * np.cos(phi), radius * np.sin(phi), hz * rng.laplace(0, 1.0, n)], axis=1)
        if comp == "arms":
            return self._arm_positions(rng, n, h)
        if comp == "clumps":
            which = rng.choice(len(clump_weights), n, p=clump_weights)
            return clump_centres[which] + rng.normal(0.0, p["clump_size"], (n, 3)) * [1, 1, 0.5]
        if comp in ("bulge", "companion"):
            nn, re = (p["bulge_n"], p["bulge_re"]) if comp == "bulge" else (p["companion_n"], p["companion_re"])
            radius = 1.15 * re * (rng.gamma(2 * nn, 1.0, n) / _sersic_b(nn)) ** nn
            v = rng.normal(size=(n, 3))
            v *= (radius / np.linalg.norm(v, axis=1))[:, None]
            if comp == "bulge":
                v[:, 2] *= p["bulge_flattening"]
                return v
            v[:, 1] *= p["companion_q"]
            return v  # companion: placed per view (its own orientation)
        if comp == "bar":
            length = p["bar_length"]
            x = rng.normal(0, 0.45 * length, n)
            y = rng.normal(0, 0.45 * length * p["bar_axis_ratio"], n)
            c, s = np.cos(p["bar_angle"]), np.sin(p["bar_angle"])
            return np.stack([c * x - s * y, s * x + c * y, rng.laplace(0, 0.05 * h, n)], axis=1)
        raise AssertionError(comp)  # pragma: no cover

    # .........................................................................................
    def view_angles(self, view):
        """(inclination, position angle) in radians of camera ``view``."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 2, int(view)]))
        u_inc, u_pa = rng.random(2)
        if self.galaxy_class == "edge-on":
            inc = np.radians(82.0 + 8.0 * u_inc)
        elif self.galaxy_class == "spiral":
            inc = np.arccos(1.0 - u_inc * (1.0 - np.cos(np.radians(72.0))))
        else:
            inc = np.arccos(1.0 - u_inc)
        return float(inc), float(np.pi * u_pa)

    def population_fluxes(self, bands):
        """(n_band, n_age) band fluxes per unit r-band flux of each age bin."""
        names = tuple(b.name for b in bands)
        key = (names, tuple(self.ages), tuple(self.metallicities), tuple(self.uv_upturn))
        return _population_table(key)


@functools.lru_cache(maxsize=64)
def _band_tables(names):
    """Per-temperature band fluxes split into the part free of atmospheric absorption and
    the absorbed wavelengths (so a population needs exponentials on those only)."""
    resp = np.concatenate([_band_response(names), _band_response(("r",))], axis=1)  # (n_lam, n_band + 1)
    absorbed = _BREAK.max(axis=0) > 1e-7
    free = _mm(_BB[:, ~absorbed], resp[~absorbed])  # (n_T, n_band + 1)
    agb = _mm(_sed(_agb_weights(), _BB, _BREAK, 0.0), resp)
    return free, _BB[:, absorbed], _BREAK[:, absorbed], resp[absorbed], agb


@functools.lru_cache(maxsize=256)
def _population_table(key):
    """Band fluxes per unit r flux of each age bin, (n_band, n_age); the AGB spectrum per unit
    r flux, (n_band,); and the AGB share of each bin's r flux, (n_age,).

    Same numbers as integrating :func:`population_sed` through the band responses."""
    names, ages, metals, upturns = key
    free, bb_abs, brk_abs, resp_abs, agb = _band_tables(names)
    out = np.empty((len(names), len(ages)))
    agb_amp = np.empty(len(ages))
    for a, (age, z, up) in enumerate(zip(ages, metals, upturns)):
        w = _population_weights(age, z, up)
        absorbed = _mm(w, bb_abs * np.exp(-(10.0 ** (0.4 * z)) * brk_abs))
        fluxes = _mm(w, free) + _mm(absorbed, resp_abs)  # (n_band + 1,), last is r
        out[:, a] = fluxes[:-1] / fluxes[-1]
        agb_amp[a] = _agb_fraction(age) * agb[-1] / fluxes[-1]
    return out, agb[:-1] / agb[-1], agb_amp


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
    b = _sersic_b(n)
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


def _mm(a, b):
    """Matrix product of a 1-D/2-D ``a`` with a 2-D ``b``, without BLAS (see :func:`_combine`)."""
    return np.einsum("...k,kj->...j", a, b)


@functools.lru_cache(maxsize=64)
def _psf_transfer(kind, fwhm_px, size):
    """Real FFT of a unit-sum PSF on a zero-padded grid, and that grid's shape."""
    pad = int(np.ceil(2.0 * fwhm_px)) + 2
    n = sfft.next_fast_len(size + 2 * pad, real=True)
    # kernels are sampled in real space (positive, unit sum), centred on pixel (0, 0) with
    # wrap-around; a Gaussian sampled in Fourier space would ring when narrower than a pixel
    d = np.minimum(np.arange(n), n - np.arange(n)).astype(float)
    r2 = d[:, None] ** 2 + d[None, :] ** 2
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
                  psf_fwhm=None, depth_offset=0.0, dust=True, log_ssfr=None, galaxy_class=None):
    """Render one view of one mock galaxy as plain arrays (the fast path of :func:`make_galaxy`).

    Parameters are those of :func:`make_galaxy`.

    Returns
    -------
    images : dict
        Band name -> float32 image (nanomaggies per pixel), in wavelength order.
    uncertainty : dict or None
        Band name -> float32 1-sigma noise map (``mode="survey"`` only).
    meta : dict
        Truth metadata (see :func:`make_galaxy`).
    """
    bands = list_bands() if bands is None else sort_bands([bands] if isinstance(bands, str) else bands)
    if mode not in ("ideal", "survey"):
        raise ValueError(f"mode must be 'ideal' or 'survey', got {mode!r}")
    size = _check_size(size)
    pixel_scale = DEFAULT_PIXEL_SCALE if pixel_scale is None else _positive("pixel_scale", pixel_scale)
    if not isinstance(view, (int, np.integer)) or view < 0:
        raise ValueError(f"view must be an integer >= 0, got {view!r}")
    gal = _galaxy(int(seed), log_ssfr, galaxy_class)
    p = gal.params
    # stamp-fraction lengths -> pixels: galaxies are drawn to fill a stamp of `size` pixels
    # at the default pixel scale, whatever pixel scale is asked for
    to_px = size * DEFAULT_PIXEL_SCALE / pixel_scale
    inc, pa = gal.view_angles(view)
    rot = _rotation(inc, pa)
    x, y = _grid(size)

    # ---- star particles -> one image per age bin ---------------------------------------------
    pos = gal.particle_pos
    sky = _mm(pos, rot.T)[:, :2] * to_px
    comp_mask = gal.particle_is_companion
    if comp_mask.any():
        offset = (p["companion_offset"] @ rot.T)[:2] * to_px
        c, s = np.cos(p["companion_pa"] + pa), np.sin(p["companion_pa"] + pa)
        cpos = pos[comp_mask][:, :2] * to_px
        sky[comp_mask] = np.stack([c * cpos[:, 0] - s * cpos[:, 1], s * cpos[:, 0] + c * cpos[:, 1]], 1) + offset
    table, agb_shape, agb_amp = gal.population_fluxes(bands)
    # age-bin images plus one image of the particles' AGB-light deviations from their bin mean
    n_part = len(gal.particle_bin)
    dust_sky = _mm(gal.dust_pos, rot.T)[:, :2] * to_px
    bins = np.concatenate([gal.particle_bin, np.full(n_part, _N_BINS), np.full(len(dust_sky), _N_BINS + 1)])
    wts = np.concatenate([gal.particle_flux_r, gal.particle_flux_r * agb_amp[gal.particle_bin] * gal.particle_agb_dev,
                          gal.dust_weight * to_px**2])
    deposits = _render_particles(np.concatenate([sky, sky, dust_sky]), wts, bins, _N_BINS + 2, size)
    particle_images, cloud_map = deposits[:-1], deposits[-1]

    # ---- smooth profiles (unit total flux, whole plane) -----------------------------------
    h = p["disk_scale"] * to_px
    q_disk = float(np.sqrt(np.cos(inc) ** 2 + (p["disk_thickness"] * np.sin(inc)) ** 2))
    smooth = {}
    q_bulge = float(np.sqrt(np.cos(inc) ** 2 + (p["bulge_flattening"] * np.sin(inc)) ** 2))
    smooth["bulge"] = _sersic_image(x, y, n=p["bulge_n"], re=p["bulge_re"] * to_px, q=q_bulge, pa=pa, size=size)
    disk = _sersic_image(x, y, n=1.0, re=1.6783469900166608 * h, q=q_disk, pa=pa, size=size)
    smooth["disk"] = disk
    if gal.smooth_r["arms"].sum() > 0:
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
        smooth["arms"] = disk * (1.0 + ramp * modulation)
    if p["has_bar"]:
        cov_disk = np.diag([(0.45 * p["bar_length"]) ** 2, (0.45 * p["bar_length"] * p["bar_axis_ratio"]) ** 2])
        cb, sb = np.cos(p["bar_angle"]), np.sin(p["bar_angle"])
        rb = np.array([[cb, -sb], [sb, cb]])
        cov3 = np.zeros((3, 3))
        cov3[:2, :2] = rb @ cov_disk @ rb.T
        cov3[2, 2] = (0.05 * p["disk_scale"]) ** 2
        cov_sky = (rot @ cov3 @ rot.T)[:2, :2] * to_px**2
        inv = np.linalg.inv(cov_sky)
        quad = inv[0, 0] * x * x + 2 * inv[0, 1] * x * y + inv[1, 1] * y * y
        smooth["bar"] = np.exp(-0.5 * quad) / (2 * np.pi * np.sqrt(np.linalg.det(cov_sky)))
    if p["has_companion"]:
        off = (p["companion_offset"] @ rot.T)[:2] * to_px
        smooth["companion"] = _sersic_image(
            x, y, n=p["companion_n"], re=p["companion_re"] * to_px, q=p["companion_q"],
            pa=p["companion_pa"] + pa, size=size, cx=off[0], cy=off[1],
        )

    # ---- bands = weighted sums of the basis images -------------------------------------------
    names = [c for c in _SMOOTH_COMPONENTS if c in smooth]
    smooth_basis = np.stack([smooth[c] for c in names]).astype(np.float32)
    particle_basis = particle_images.astype(np.float32)
    # (n_band, n_basis): band flux (whole plane) of every basis image
    w_smooth = np.stack([table @ gal.smooth_r[c] for c in names], axis=1).astype(np.float32)
    w_part = np.concatenate([table, agb_shape[:, None]], axis=1).astype(np.float32)
    full_flux = table @ sum(gal.light_r.values())  # per band, whole plane, no dust
    nb = len(bands)
    if mode == "ideal":
        # One common PSF: it is applied to the basis images before they are combined (it is
        # linear), so 8 particle images are convolved instead of 13 bands.  The smooth
        # profiles already have a core softened on the scale of the default PSF; they are
        # convolved too when a wider PSF is asked for.  The dust screen, smooth on the PSF
        # scale, multiplies the result.
        fwhm = DEFAULT_IDEAL_PSF_FWHM if psf_fwhm is None else _positive("psf_fwhm", psf_fwhm)
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

    # ---- dust screen --------------------------------------------------------------------------
    tau_map = _dust_map(gal, inc, pa, q_disk, h, to_px, x, y, cloud_map, size) if dust else None
    if tau_map is not None:
        k_rel = (calzetti_k(np.array([b.wavelength.value for b in bands])) / 4.05).astype(np.float32)
        dusty = np.flatnonzero(tau_map > 1e-6)  # the screen covers the disk only
        intrinsic[:, dusty] *= np.exp(-k_rel[:, None] * tau_map[None, dusty])
    stamp_flux = intrinsic.sum(axis=1)
    images = intrinsic.reshape(nb, size, size)

    # ---- PSF and noise ----------------------------------------------------------------------
    uncertainty = None
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
    images = np.ascontiguousarray(images, dtype=np.float32)

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
        "components": _public_params(p),
        "populations": {
            "age": [float(a) for a in gal.ages],
            "metallicity": [float(z) for z in gal.metallicities],
            "uv_upturn": [float(v) for v in gal.uv_upturn],
            "r_flux": {c: [float(v) for v in gal.light_r[c]] for c in gal.light_r},
        },
        "flux_total": {b.name: float(full_flux[i]) for i, b in enumerate(bands)},
        "flux_stamp": {b.name: float(stamp_flux[i]) for i, b in enumerate(bands)},
        "in_stamp_fraction": {b.name: float(in_stamp[i] / full_flux[i]) for i, b in enumerate(bands)},
    }
    if mode == "survey":
        meta["depth_offset"] = float(depth_offset)
        meta["sky_sigma"] = {b.name: float(sky_sigma[i]) for i, b in enumerate(bands)}
    return {b.name: images[i] for i, b in enumerate(bands)}, uncertainty, meta


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


@functools.lru_cache(maxsize=32)
def _galaxy(seed, log_ssfr, galaxy_class):
    return _Galaxy(seed, log_ssfr=log_ssfr, galaxy_class=galaxy_class)


def _check_size(size):
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool):
        raise TypeError(f"size must be an integer number of pixels, got {type(size).__name__}")
    if size < 8:
        raise ValueError(f"size must be >= 8 pixels, got {size}")
    return int(size)


def _positive(name, value):
    import astropy.units as u

    if isinstance(value, u.Quantity):
        value = value.to_value(u.arcsec)
    if not isinstance(value, (int, float, np.floating, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number (arcsec), got {type(value).__name__}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return float(value)


# ----------------------------------------------------------------------------------------------
# Public constructors
# ----------------------------------------------------------------------------------------------
def make_galaxy(seed, *, mode="ideal", bands=None, size=128, pixel_scale=None, view=0, psf_fwhm=None,
                depth_offset=0.0, dust=True, log_ssfr=None, galaxy_class=None):
    """One view of one mock galaxy as a :class:`~bandsynth.stack.BandStack`.

    Parameters
    ----------
    seed : int
        Identifies the galaxy (the same seed gives the same galaxy in every
        mode, band set and view); it is also its ``galaxy_id``.
    mode : {"ideal", "survey"}
        ``"ideal"``: one common Gaussian PSF (``psf_fwhm``), no noise.
        ``"survey"``: each band's registry PSF (Moffat, beta = 3), sky and
        Poisson noise at the depths of :data:`SURVEY_DEPTHS` shifted by
        ``depth_offset`` magnitudes; the noise map is the uncertainty.
    bands : list of str, optional
        Bands to render (default: every registered band, FUV to Ks).
    size : int
        Stamp width and height in pixels.  Galaxies are drawn to fill most of
        the stamp: their angular size scales with ``size * 0.262"``.
    pixel_scale : float, optional
        Arcsec per pixel (default :data:`DEFAULT_PIXEL_SCALE`).
    view : int
        Camera: views share the intrinsic galaxy (star particles, spectra)
        and differ in inclination and position angle.
    psf_fwhm : float, optional
        FWHM (arcsec) of the common PSF in ideal mode (default :data:`DEFAULT_IDEAL_PSF_FWHM`).
    depth_offset : float
        Survey mode: magnitudes added to every band's depth (> 0 is deeper).
    dust : bool
        Apply the dust screen.
    log_ssfr : float, optional
        Force log10 of the specific star-formation rate (1/yr) instead of drawing it.
    galaxy_class : str, optional
        Force the class (one of :data:`GALAXY_CLASSES`).

    Returns
    -------
    BandStack
        Images in nanomaggies with a TAN WCS; in survey mode with a
        ``StdDevUncertainty``.  ``stack.meta`` holds the truth: ``galaxy_id``,
        ``view``, ``galaxy_class``, ``log_ssfr``, ``ssfr``, ``bt_r`` (bulge
        share of the r-band light), ``bt_mass``, ``inclination``,
        ``position_angle``, ``components`` (structural parameters),
        ``populations`` (ages, metallicities, UV upturn, r-band flux per
        component and age), ``flux_total`` (whole-plane flux per band without
        dust, from the spectra; :func:`component_fluxes` splits it by
        component), ``in_stamp_fraction`` (share of ``flux_total`` falling on
        the stamp, without dust) and ``flux_stamp`` (flux on the stamp after
        dust).

    Examples
    --------
    >>> stack = make_galaxy(11, bands=["NUV", "r", "K"], size=32)
    >>> stack.names
    ('NUV', 'r', 'Ks')
    >>> stack.meta["galaxy_id"]
    11
    """
    images, uncertainty, meta = render_galaxy(
        seed, view=view, mode=mode, bands=bands, size=size, pixel_scale=pixel_scale, psf_fwhm=psf_fwhm,
        depth_offset=depth_offset, dust=dust, log_ssfr=log_ssfr, galaxy_class=galaxy_class,
    )
    return _to_stack(images, uncertainty, meta)


def _tan_wcs(ra, dec, pixel_scale, shape):
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.crval = [float(ra), float(dec)]
    w.wcs.crpix = [(shape[1] + 1) / 2.0, (shape[0] + 1) / 2.0]
    w.wcs.cdelt = [-pixel_scale / 3600.0, pixel_scale / 3600.0]
    w.wcs.radesys = "ICRS"
    return w


def _to_stack(images, uncertainty, meta):
    from ..stack import BandStack

    shape = next(iter(images.values())).shape
    wcs = _tan_wcs(meta["ra"], meta["dec"], meta["pixel_scale"], shape)
    return BandStack.from_arrays(images, wcs=wcs, unit=nanomaggy, uncertainty=uncertainty, meta=meta)


def _stratified_log_ssfr(n, rng):
    """Latin-hypercube draw of the population's sSFR: every sSFR quantile is represented."""
    u = (rng.permutation(n) + rng.random(n)) / n
    return np.array([_draw_log_ssfr(v) for v in u])


def split_by_galaxy(log_ssfr, fractions=(0.8, 0.1, 0.1), *, seed=0):
    """Assign each galaxy to "train"/"validation"/"test", stratified by sSFR.

    Galaxies are ordered by sSFR and the validation and test galaxies are
    picked systematically along that order (random offset), so every split
    spans the whole sSFR range.  Views of one galaxy share its split.

    Examples
    --------
    >>> s = split_by_galaxy(np.linspace(-12, -9, 10), (0.6, 0.2, 0.2), seed=1)
    >>> sorted(s.tolist()).count("train"), sorted(s.tolist()).count("test")
    (6, 2)
    """
    log_ssfr = np.asarray(log_ssfr, dtype=float)
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"split fractions must be three numbers >= 0 summing to 1, got {tuple(fractions)}")
    n = log_ssfr.size
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 4]))
    labels = np.full(n, "train", dtype="<U10")
    order = np.argsort(log_ssfr, kind="stable")
    free = list(order)
    for name, frac in (("validation", fractions[1]), ("test", fractions[2])):
        k = int(round(frac * n))
        if frac > 0 and k == 0 and n >= 3:
            k = 1
        k = min(k, len(free))
        if k == 0:
            continue
        picks = np.floor((np.arange(k) + rng.random()) * len(free) / k).astype(int)
        chosen = [free[i] for i in picks]
        labels[chosen] = name
        chosen_set = set(chosen)
        free = [g for g in free if g not in chosen_set]
    return labels


def make_dataset(n, *, seed=0, mode="ideal", bands=None, size=128, pixel_scale=None, views=1, psf_fwhm=None,
                 depth_offset=0.0, dust=True, stratify=True, split_fractions=(0.8, 0.1, 0.1), progress=False):
    """An in-memory data set of ``n`` mock galaxies, ``views`` images each.

    Image ``i`` is view ``i % views`` of galaxy ``i // views``; galaxy ``g``
    is ``make_galaxy(galaxy_seed(seed, g), log_ssfr=manifest["log_ssfr"][i], ...)``.
    With ``stratify`` the sSFRs are a Latin-hypercube draw from the
    population (every sSFR quantile represented).  Splits are by galaxy,
    stratified by sSFR (:func:`split_by_galaxy`).

    Returns
    -------
    MockDataset
        Same interface as :func:`bandsynth.datasets.open_dataset`:
        ``bands``, ``manifest``, ``len()``, ``cube(band)``, ``indices(split)``, ``stack(i)``.

    Examples
    --------
    >>> ds = make_dataset(4, seed=1, bands=["g", "r"], size=32, views=2)
    >>> len(ds), ds.cube("r").shape
    (8, (8, 32, 32))
    >>> set(ds.manifest["galaxy_id"][ds.indices("train")]).isdisjoint(ds.manifest["galaxy_id"][ds.indices("test")])
    True
    """
    from .store import _build_manifest

    plan = _MockPlan(n, seed=seed, mode=mode, bands=bands, size=size, pixel_scale=pixel_scale, views=views,
                     psf_fwhm=psf_fwhm, depth_offset=depth_offset, dust=dust, stratify=stratify,
                     split_fractions=split_fractions)
    shape = (plan.n_images, plan.size, plan.size)
    cubes = {b.name: np.empty(shape, dtype=np.float32) for b in plan.bands}
    uncert = {b.name: np.empty(shape, dtype=np.float32) for b in plan.bands} if mode == "survey" else None
    metas = []
    for idx, images, unc, meta in _progress(plan.render(), progress, "mock galaxies", plan.n_images):
        for name, im in images.items():
            cubes[name][idx] = im
            if uncert is not None:
                uncert[name][idx] = unc[name]
        metas.append(meta)
    plan.assign_splits(metas)
    manifest = _build_manifest(metas, plan.bands, info=plan.info(metas))
    return MockDataset(cubes, manifest, uncertainty=uncert, metas=metas)


class _MockPlan:
    """Validated recipe of a mock data set; renders its images one at a time."""

    def __init__(self, n, *, seed, mode, bands, size, pixel_scale, views, psf_fwhm, depth_offset, dust,
                 stratify, split_fractions):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive integer number of galaxies, got {n!r}")
        if not isinstance(views, (int, np.integer)) or isinstance(views, bool) or views < 1:
            raise ValueError(f"views must be a positive integer, got {views!r}")
        if mode not in ("ideal", "survey"):
            raise ValueError(f"mode must be 'ideal' or 'survey', got {mode!r}")
        self.n, self.views, self.seed, self.mode = int(n), int(views), int(seed), mode
        self.bands = list_bands() if bands is None else sort_bands([bands] if isinstance(bands, str) else bands)
        self.size = _check_size(size)
        self.pixel_scale = DEFAULT_PIXEL_SCALE if pixel_scale is None else _positive("pixel_scale", pixel_scale)
        self.psf_fwhm, self.depth_offset, self.dust = psf_fwhm, float(depth_offset), bool(dust)
        self.stratify = bool(stratify)
        self.split_fractions = tuple(float(f) for f in split_fractions)
        split_by_galaxy(np.zeros(0), self.split_fractions)  # validate early
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 5]))
        self.log_ssfr = _stratified_log_ssfr(self.n, rng) if self.stratify else [None] * self.n
        self.n_images = self.n * self.views

    def render(self):
        for idx in range(self.n_images):
            g, v = divmod(idx, self.views)
            images, unc, meta = render_galaxy(
                galaxy_seed(self.seed, g), view=v, mode=self.mode, bands=self.bands, size=self.size,
                pixel_scale=self.pixel_scale, psf_fwhm=self.psf_fwhm, depth_offset=self.depth_offset,
                dust=self.dust, log_ssfr=self.log_ssfr[g],
            )
            meta["galaxy"] = g
            yield idx, images, unc, meta

    def assign_splits(self, metas):
        splits = split_by_galaxy([m["log_ssfr"] for m in metas[:: self.views]], self.split_fractions,
                                 seed=self.seed)
        for m in metas:
            m["split"] = str(splits[m["galaxy"]])

    def info(self, metas):
        return {
            "mode": self.mode, "seed": self.seed, "size": self.size, "views": self.views, "n_galaxies": self.n,
            "pixel_scale": self.pixel_scale, "psf_fwhm": metas[0]["psf_fwhm"], "unit": format_unit(nanomaggy),
            "depth_offset": self.depth_offset, "dust": self.dust, "stratify": self.stratify,
            "split_fractions": list(self.split_fractions), "source": "bandsynth.datasets.mock",
        }


def _progress(iterable, enabled, desc, total=None):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit="img", total=total, disable=not enabled)


from .store import ImageDataset  # noqa: E402  (base class; store imports this module lazily)


class MockDataset(ImageDataset):
    """An in-memory mock data set (the interface of :class:`bandsynth.datasets.store.StoredDataset`).

    Made by :func:`make_dataset`; :meth:`stack` carries each image's full truth metadata.
    """

    def __init__(self, cubes, manifest, *, uncertainty=None, metas=None):
        super().__init__(manifest)
        self._cubes = dict(cubes)
        self._uncert = None if uncertainty is None else dict(uncertainty)
        self._metas = metas
        self._check_cubes(self._cubes, self._uncert, source="mock data set")

    def _get_cube(self, name):
        return self._cubes[name]

    def _get_uncertainty(self, name):
        return None if self._uncert is None else self._uncert[name]

    def _image_meta(self, i):
        if self._metas is not None:
            return dict(self._metas[i])
        return super()._image_meta(i)
