"""Stellar-population spectra of the mock universe and their integration through the bands.

A spectrum per age -- a mixture of blackbodies (main sequence up to the turn-off
temperature, giants, a variable UV upturn for old stars, metal line blanketing in the
UV) -- is integrated through each band's response
(:meth:`bandsynth.bands.Band.transmission`); :func:`calzetti_k` is the Calzetti et al.
(2000) attenuation curve of the dust."""

from __future__ import annotations

import functools

import numpy as np

from ...bands import get_band

__all__ = ["population_sed", "population_band_fluxes", "component_fluxes", "star_band_fluxes", "calzetti_k",
           "sed_band_fluxes", "line_band_fluxes", "AGE_BINS", "MAX_REDSHIFT", "STELLAR_SPECTRA",
           "rest_wavelength_grid"]


#: Stellar spectra a family of the mock universe builds its galaxies from: the mock universe's
#: own blackbody mixtures (:func:`population_sed`), or the simple stellar populations of
#: Bruzual & Charlot (2003; Chabrier IMF, MILES library), tabulated in ``data/bc03_miles_ssp.fits``
#: by ``benchmarks/build_bc03_table.py``.
STELLAR_SPECTRA = ("mock", "bc03")


#: Highest redshift the mock universe observes (its spectra start at 100 nm in the rest frame).
MAX_REDSHIFT = 0.6


#: Nominal ages (yr) of the six stellar-population bins.
AGE_BINS = (5e6, 3e7, 2e8, 1e9, 4e9, 1e10)


N_BINS = len(AGE_BINS)


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


def rest_wavelength_grid():
    """The rest-frame wavelengths on which the spectra are integrated.

    Returns
    -------
    wavelength : numpy.ndarray
        400 wavelengths in nm, geometrically spaced from 100 nm to 3.2 micron.

    Examples
    --------
    >>> lam = rest_wavelength_grid()
    >>> lam.shape, float(lam[0]), float(lam[-1])
    ((400,), 100.0, 3200.0)
    """
    return _LAM.copy()


@functools.lru_cache(maxsize=1)
def _bc03_table():
    """(log10 Z/Z_sun, log10 age, f_nu cube (n_z, n_age, n_lam) per unit bolometric light) of the BC03 table."""
    from importlib.resources import as_file, files

    from astropy.io import fits

    with as_file(files("bandsynth.datasets.mock") / "data" / "bc03_miles_ssp.fits") as path, fits.open(path) as hdul:
        cube = np.asarray(hdul[0].data, dtype=np.float64)
        log_z = np.log10(np.asarray(hdul["Z_ZSUN"].data, dtype=np.float64))
        log_age = np.asarray(hdul["LOG_AGE_YR"].data, dtype=np.float64)
        if not np.allclose(hdul["WAVELENGTH_NM"].data, _LAM, rtol=1e-6):
            raise RuntimeError("the BC03 table is not on the mock universe's wavelength grid; rebuild it "
                               "with benchmarks/build_bc03_table.py")
    return log_z, log_age, cube


def _interpolation_weights(grid, value):
    """Indices and weights of linear interpolation in ``grid`` (clipped to its ends)."""
    value = float(np.clip(value, grid[0], grid[-1]))
    k = int(np.clip(np.searchsorted(grid, value), 1, len(grid) - 1))
    w = (value - grid[k - 1]) / (grid[k] - grid[k - 1])
    return k - 1, k, w


def _bc03_sed(age, metallicity):
    """BC03 f_nu on the grid per unit bolometric light: linear in log age and log Z within the table."""
    log_z, log_age, cube = _bc03_table()
    a0, a1, wa = _interpolation_weights(log_age, np.log10(age))
    z0, z1, wz = _interpolation_weights(log_z, metallicity)
    by_age = (1.0 - wa) * cube[:, a0] + wa * cube[:, a1]
    return (1.0 - wz) * by_age[z0] + wz * by_age[z1]


def _upturn_profile():
    """Temperature profile (unnormalised) of the hot (25 000 K) horizontal-branch stars of the UV upturn."""
    return np.exp(-0.5 * ((np.log(_TEMPS) - np.log(25000.0)) / 0.1) ** 2)


def _stellar_sed(age, metallicity, uv_upturn, spectra):
    """f_nu on the grid (per unit bolometric light) of one population from ``spectra`` (`STELLAR_SPECTRA`)."""
    if spectra == "bc03":
        # the upturn is drawn per galaxy in every family: BC03's own post-AGB light plus the drawn share
        upturn = _upturn_profile()
        return (1.0 - uv_upturn) * _bc03_sed(age, metallicity) + uv_upturn * mm(upturn / upturn.sum(), _BB)
    if spectra != "mock":
        raise ValueError(f"stellar spectra must be one of {STELLAR_SPECTRA}, got {spectra!r}")
    w = _population_weights(float(age), float(metallicity), float(uv_upturn))
    return _sed(w, _BB, _BREAK, float(metallicity))


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
    upturn = _upturn_profile()
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
    return mm(w, per_temp)


def population_sed(wavelength, *, age, metallicity=0.0, uv_upturn=0.0, spectra="mock"):
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
    spectra : {"mock", "bc03"}
        The mock universe's blackbody mixture described above, or the Bruzual & Charlot
        (2003) population of that age and metallicity (interpolated in the shipped table
        and between its 400 wavelength bins of 100 nm to 3.2 micron) plus the UV upturn:
        see `STELLAR_SPECTRA`.

    Returns
    -------
    sed : ndarray
        f_nu at each wavelength.

    Examples
    --------
    >>> import numpy as np
    >>> lam = np.array([227.0, 616.0])
    >>> young = population_sed(lam, age=1e7)
    >>> old = population_sed(lam, age=1e10)
    >>> bool(young[0] / young[1] > 10 * old[0] / old[1])  # young stars are UV-bright
    True
    >>> fuv_r = [153.0, 616.0]
    >>> bc03, mock = population_sed(fuv_r, age=1e10, spectra="bc03"), population_sed(fuv_r, age=1e10)
    >>> bool(bc03[0] / bc03[1] > 10 * mock[0] / mock[1])  # BC03's old stars: far-UV light of post-AGB stars
    True
    """
    if spectra != "mock":
        lam = np.asarray(_as_nm(wavelength), dtype=float)
        sed = _stellar_sed(age, metallicity, uv_upturn, spectra)
        return np.interp(np.log(lam), np.log(_LAM), sed, left=0.0, right=0.0)
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
def _band_response(names, redshift=0.0):
    """Photon-counting response matrix (n_lam, n_band): f_nu-mean in each band = sed @ R.

    At ``redshift`` z the rows are rest-frame wavelengths: a band observing at lambda sees
    the rest-frame light at lambda / (1 + z).  Normalised by the band's own response
    (observed frame), so the mean is of the observed f_nu up to the (1 + z) that every band
    shares; rest wavelengths below the grid (100 nm) count as no light."""
    dlnlam = np.gradient(np.log(_LAM))
    cols = []
    for name in names:
        band = get_band(name)
        t = band.transmission(_LAM) * dlnlam
        shifted = band.transmission(_LAM * (1.0 + redshift)) * dlnlam if redshift else t
        cols.append(shifted / t.sum())
    return np.stack(cols, axis=1)


def _check_redshift(redshift):
    z = float(redshift)
    if not 0.0 <= z <= MAX_REDSHIFT:
        raise ValueError(f"redshift must be between 0 and {MAX_REDSHIFT}, got {redshift!r}")
    return z


def population_band_fluxes(bands, *, age, metallicity=0.0, uv_upturn=0.0, redshift=0.0, spectra="mock"):
    """Band-averaged f_nu of :func:`population_sed` for each band (same arbitrary units).

    The mean of f_nu weighted by the band response per unit log wavelength (the
    AB convention for photon-counting detectors).

    Parameters
    ----------
    bands : list of str or `~bandsynth.bands.Band`
        The bands.
    age, metallicity, uv_upturn, spectra
        As for :func:`population_sed`.
    redshift : float
        Observe the population at this redshift (0 to `MAX_REDSHIFT`): each band sees the
        spectrum at its wavelengths divided by ``1 + redshift``.

    Returns
    -------
    fluxes : ndarray
        One band-averaged f_nu per band, in the order given.

    Examples
    --------
    >>> f = population_band_fluxes(["NUV", "r"], age=1e10)
    >>> bool(-2.5 * np.log10(f[0] / f[1]) > 4)  # old stars: NUV - r > 4 mag
    True
    >>> g, r = population_band_fluxes(["g", "r"], age=1e10, redshift=0.2)
    >>> g0, r0 = population_band_fluxes(["g", "r"], age=1e10)
    >>> bool(-2.5 * np.log10(g / r) > -2.5 * np.log10(g0 / r0) + 0.2)  # the 4000 A break moves into g
    True
    """
    names = tuple(b.name for b in (get_band(b) for b in bands))
    sed = _stellar_sed(age, metallicity, uv_upturn, spectra)
    return mm(sed, _band_response(names, _check_redshift(redshift)))


def sed_band_fluxes(bands, sed, *, redshift=0.0):
    """Band-averaged f_nu of any spectrum, integrated like :func:`population_band_fluxes`.

    Parameters
    ----------
    bands : list of str or `~bandsynth.bands.Band`
        The bands.
    sed : callable
        ``sed(wavelength_nm)`` -> f_nu (any units) on an array of wavelengths (100 nm to 3.2 micron).
    redshift : float
        Observe the spectrum (rest-frame wavelengths) at this redshift, as
        :func:`population_band_fluxes` does.

    Returns
    -------
    fluxes : ndarray
        One band-averaged f_nu per band, in the units of ``sed``.

    Examples
    --------
    >>> f = sed_band_fluxes(["u", "Ks"], lambda lam: np.ones_like(lam))  # flat f_nu
    >>> np.round(f, 6)
    array([1., 1.])
    """
    names = tuple(b.name for b in (get_band(b) for b in bands))
    return mm(np.asarray(sed(_LAM), dtype=float), _band_response(names, _check_redshift(redshift)))


def line_band_fluxes(bands, wavelengths, fluxes, *, redshift=0.0):
    """Band-averaged f_nu added by emission lines, in the convention of :func:`population_band_fluxes`.

    Parameters
    ----------
    bands : list of str or `~bandsynth.bands.Band`
        The bands.
    wavelengths : array-like of float
        Rest wavelengths of the lines (nm).
    fluxes : array-like of float
        Each line's ``integral of f_nu d(ln lambda)`` (for a line of equivalent width
        ``EW`` on a continuum ``f_nu``: ``f_nu * EW / lambda``).
    redshift : float
        Observe the lines at ``wavelengths * (1 + redshift)``.

    Returns
    -------
    fluxes : ndarray
        One band-averaged f_nu per band: each line weighted by the band's response at
        its wavelength, normalised as the band's response per unit log wavelength.

    Examples
    --------
    >>> h_alpha = line_band_fluxes(["g", "r"], [656.3], [1.0])
    >>> bool(h_alpha[0] < 1e-9 * h_alpha[1])  # H-alpha falls in r, not in g
    True
    """
    lam = np.asarray(wavelengths, dtype=float) * (1.0 + _check_redshift(redshift))
    flux = np.asarray(fluxes, dtype=float)
    dlnlam = np.gradient(np.log(_LAM))
    out = []
    for band in (get_band(b) for b in bands):
        norm = float((band.transmission(_LAM) * dlnlam).sum())
        out.append(float((np.asarray(band.transmission(lam), dtype=float) * flux).sum()) / norm)
    return np.array(out)


def star_band_fluxes(bands, temperature):
    """Band fluxes of stars per unit SDSS r-band flux: the colours of foreground stars.

    Each star is a blackbody of its effective temperature with the metal-line
    blanketing and 4000 A break of :func:`population_sed` at solar metallicity,
    integrated through the band responses like the galaxies' spectra.

    Parameters
    ----------
    bands : list of str or `~bandsynth.bands.Band`
        The bands.
    temperature : float or array-like
        Effective temperature(s) in K (2600 to 60000).

    Returns
    -------
    fluxes : ndarray
        Shape ``(n_star, n_band)`` (``(n_band,)`` for a scalar temperature): band
        flux divided by the r-band flux.

    Examples
    --------
    >>> f = star_band_fluxes(["g", "r", "Ks"], [3500.0, 6000.0])
    >>> bool(f[0, 2] > 3 * f[1, 2])  # a 3500-K star is far redder in r - Ks than a 6000-K one
    True
    """
    temps = np.atleast_1d(np.asarray(temperature, dtype=float))
    names = tuple(b.name for b in (get_band(b) for b in bands))
    resp = _response_and_rest_r(names)
    sed = _blackbody_per_bolometric(_LAM, temps) * np.exp(-_break_depth(_LAM, temps))
    fluxes = mm(sed, resp)
    out = fluxes[:, :-1] / fluxes[:, -1:]
    return out[0] if np.ndim(temperature) == 0 else out


def component_fluxes(meta, bands=None):
    """Whole-galaxy flux (nanomaggies, no dust) of each component in each band, from the spectra.

    Recomputed from the truth metadata of a mock image (``stack.meta``): the
    r-band flux of every component and age bin times the band-to-r flux
    ratio of that age bin's spectrum (:func:`population_band_fluxes`).  The
    stars' continuum only: the nebular lines and the AGN of some families
    (`bandsynth.datasets.mock.families`) are in ``flux_total`` but not here.

    Parameters
    ----------
    meta : mapping
        Truth metadata of a mock image (``stack.meta`` or the ``meta`` of
        :func:`render_galaxy`).
    bands : list of str, optional
        Bands (default: every registered band).

    Returns
    -------
    dict
        Component name -> {band name -> flux}.

    Examples
    --------
    >>> from bandsynth.datasets.mock import render_galaxy
    >>> _, _, meta = render_galaxy(3, bands=["FUV", "Ks"], size=16)
    >>> fluxes = component_fluxes(meta, ["FUV", "Ks"])
    >>> sorted(fluxes)
    ['arms', 'bar', 'bulge', 'clumps', 'companion', 'disk']
    """
    pops = meta["populations"]
    spectra = pops.get("spectra", "mock")
    names = list(meta["flux_total"]) if bands is None else [get_band(b).name for b in bands]
    ratios = []
    for age, z, up in zip(pops["age"], pops["metallicity"], pops["uv_upturn"]):
        f = population_band_fluxes(names + ["r"], age=age, metallicity=z, uv_upturn=up, spectra=spectra)
        ratios.append(f[:-1] / f[-1])
    ratios = np.array(ratios)  # (n_age, n_band)
    return {c: dict(zip(names, np.asarray(r_flux) @ ratios)) for c, r_flux in pops["r_flux"].items()}


def calzetti_k(wavelength):
    """Calzetti et al. (2000) attenuation curve k(lambda), R_V = 4.05.

    ``A_lambda = k(lambda) E(B-V)``; extrapolated linearly in 1/lambda below
    120 nm and above 2.2 micron (where it is clipped at 0).

    Parameters
    ----------
    wavelength : array-like of float or `~astropy.units.Quantity`
        Wavelengths (nm if a plain number).

    Returns
    -------
    k : ndarray
        k(lambda) at each wavelength.

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


@functools.lru_cache(maxsize=64)
def _response_and_rest_r(names, redshift=0.0):
    """`_band_response` of ``names`` at ``redshift`` with the rest-frame r band as a last column."""
    return np.concatenate([_band_response(names, redshift), _band_response(("r",))], axis=1)


@functools.lru_cache(maxsize=64)
def _band_tables(names, redshift=0.0):
    """Per-temperature band fluxes split into the part free of atmospheric absorption and
    the absorbed wavelengths (so a population needs exponentials on those only).  The
    bands are observed at ``redshift``, the r band that normalises them in the rest frame."""
    resp = _response_and_rest_r(names, redshift)  # (n_lam, n_band + 1)
    absorbed = _BREAK.max(axis=0) > 1e-7
    free = mm(_BB[:, ~absorbed], resp[~absorbed])  # (n_T, n_band + 1)
    agb = mm(_sed(_agb_weights(), _BB, _BREAK, 0.0), resp)
    return free, _BB[:, absorbed], _BREAK[:, absorbed], resp[absorbed], agb


@functools.lru_cache(maxsize=256)
def population_table(key, redshift=0.0, spectra="mock"):
    """Band fluxes per unit r flux of each age bin, (n_band, n_age); the AGB spectrum per unit
    r flux, (n_band,); and the AGB share of each bin's r flux, (n_age,).

    Same numbers as integrating :func:`population_sed` through the band responses; at
    ``redshift``, the bands observe the redshifted spectra and r stays the rest-frame r.
    ``spectra`` is one of `STELLAR_SPECTRA`."""
    names, ages, metals, upturns = key
    free, bb_abs, brk_abs, resp_abs, agb = _band_tables(names, _check_redshift(redshift))
    if spectra != "mock":
        resp = _response_and_rest_r(names, redshift)
        fluxes = np.stack([mm(_stellar_sed(age, z, up, spectra), resp) for age, z, up in zip(ages, metals, upturns)])
        agb_amp = np.array([_agb_fraction(age) for age in ages]) * agb[-1] / fluxes[:, -1]
        return (fluxes[:, :-1] / fluxes[:, -1:]).T, agb[:-1] / agb[-1], agb_amp
    out = np.empty((len(names), len(ages)))
    agb_amp = np.empty(len(ages))
    for a, (age, z, up) in enumerate(zip(ages, metals, upturns)):
        w = _population_weights(age, z, up)
        absorbed = mm(w, bb_abs * np.exp(-(10.0 ** (0.4 * z)) * brk_abs))
        fluxes = mm(w, free) + mm(absorbed, resp_abs)  # (n_band + 1,), last is r
        out[:, a] = fluxes[:-1] / fluxes[-1]
        agb_amp[a] = _agb_fraction(age) * agb[-1] / fluxes[-1]
    return out, agb[:-1] / agb[-1], agb_amp


def mm(a, b):
    """Matrix product of a 1-D/2-D ``a`` with a 2-D ``b``, without BLAS (see :func:`_combine`)."""
    return np.einsum("...k,kj->...j", a, b)
