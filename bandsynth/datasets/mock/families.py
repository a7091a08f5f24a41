"""Families of the mock universe: the same kind of galaxies built with different physics.

A model trained on one simulator learns that simulator.  The mock universe therefore
comes in *families* (``make_dataset(..., family=...)``), each a `Family` of physics
choices; :data:`FAMILIES` lists them:

``"default"``
    The universe of earlier versions, pixel for pixel: one Calzetti et al. (2000)
    attenuation curve, stellar continua only, lognormal clump luminosities, bars in
    35 % of disks.
``"smc_dust"`` / ``"mw_dust"``
    The default galaxies under another dust curve: the SMC bar (Gordon et al. 2003;
    steep in the UV, no bump) or the Milky Way's (Cardelli et al. 1989, ``R_V``
    drawn in 2.5-5, with the 2175 A bump): `bandsynth.datasets.mock.dust`.
``"nebular"``
    The default galaxies with the emission lines of their HII regions added to the
    youngest stars' spectra.
``"broad"``
    Everything varies from galaxy to galaxy: the dust curve (Calzetti, SMC bar,
    Milky Way with any ``R_V``, or the Salim et al. 2018 family of slopes and bumps),
    nebular lines, an AGN in 10 % of galaxies, the upper IMF slope, a wider spread of
    metallicities, post-starburst galaxies, a power-law clump luminosity function with
    clump sizes growing with luminosity, and the observed distribution of bar
    fractions, lengths, axis ratios and light fractions.

Each choice is cited where it is made.  A family's extra randomness comes from its own
stream of the galaxy's seed, so every family is deterministic, and the default family
draws nothing new: its images are those of earlier versions (a test pins their hashes).

Examples
--------
>>> from bandsynth.datasets.mock.families import FAMILIES, get_family
>>> sorted(FAMILIES)
['bc03', 'broad', 'default', 'mw_dust', 'nebular', 'smc_dust']
>>> get_family("smc_dust").dust_laws
(('smc_bar', 1.0),)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dust import attenuation_curve
from .spectra import N_BINS, line_band_fluxes, population_band_fluxes, population_sed, sed_band_fluxes

__all__ = ["Family", "FAMILIES", "get_family"]


@dataclass(frozen=True)
class Family:
    """The physics choices of one family of the mock universe.

    The defaults are those of the ``"default"`` family (the universe of earlier
    versions); a range ``(lo, hi)`` is drawn uniformly per galaxy.

    Attributes
    ----------
    name : str
        The family's name (a key of :data:`FAMILIES`).
    description : str
        One line for humans.
    dust_laws : tuple of (str, float)
        Dust curves (`bandsynth.datasets.mock.dust.DUST_LAWS`) and their probabilities.
    mw_r_v : tuple of float
        Range of ``R_V`` of a Milky-Way (``"mw"``) curve.
    salim_delta : tuple of float
        Range of the slope change ``delta`` of a ``"salim18"`` curve; its bump follows
        Kriek & Conroy (2013): ``B = 0.85 - 1.9 delta``.
    ew_hbeta : tuple of float
        Range of the rest-frame H-beta equivalent width (nm) of the youngest stars
        (0: no nebular lines).
    agn_fraction : float
        Share of galaxies with an unobscured AGN at their centre.
    agn_share : tuple of float
        Range (log-uniform) of the AGN's flux as a share of the galaxy's r-band flux.
    imf_slope : tuple of float
        Range of the upper IMF slope (Salpeter: 2.35).
    metallicity_scatter : float
        Extra galaxy-to-galaxy scatter of log metallicity (dex).
    post_starburst_fraction : float
        Share of star-forming galaxies whose star formation stopped 0.1-1 Gyr ago.
    clump_slope : float or None
        Slope ``beta`` of a clump luminosity function ``dN/dL ~ L^-beta`` (None: lognormal).
    bar_fraction : float
        Share of spiral and edge-on disks with a bar.
    bar_length, bar_axis_ratio, bar_light : tuple of float
        Ranges of the bar's length (disk scale lengths), axis ratio and share of the
        disk's stars.
    stellar_spectra : str
        The stellar populations' spectra: the mock universe's own (``"mock"``) or
        Bruzual & Charlot (2003) simple stellar populations (``"bc03"``); see
        `bandsynth.datasets.mock.spectra.STELLAR_SPECTRA`.
    """

    name: str
    description: str
    dust_laws: tuple = (("calzetti", 1.0),)
    mw_r_v: tuple = (3.1, 3.1)
    salim_delta: tuple = (0.0, 0.0)
    ew_hbeta: tuple = (0.0, 0.0)
    agn_fraction: float = 0.0
    agn_share: tuple = (0.02, 0.5)
    imf_slope: tuple = (2.35, 2.35)
    metallicity_scatter: float = 0.0
    post_starburst_fraction: float = 0.0
    clump_slope: float | None = None
    bar_fraction: float = 0.35
    bar_length: tuple = (1.0, 2.0)
    bar_axis_ratio: tuple = (0.2, 0.4)
    bar_light: tuple = (0.05, 0.15)
    stellar_spectra: str = "mock"

    @property
    def is_default(self):
        """Whether this family draws exactly the default universe."""
        return self == FAMILIES["default"]


#: Family name -> :class:`Family`.
FAMILIES = {
    "default": Family("default", "the universe of earlier versions: Calzetti dust, stellar continua only"),
    # Gordon et al. (2003): the SMC bar's steep, bump-less curve, for dust in metal-poor galaxies
    "smc_dust": Family("smc_dust", "default galaxies under SMC-bar dust (Gordon et al. 2003)",
                       dust_laws=(("smc_bar", 1.0),)),
    # Cardelli et al. (1989) with R_V from 2.5 to 5: the range of Milky Way sight lines
    "mw_dust": Family("mw_dust", "default galaxies under Milky-Way dust, R_V 2.5-5 (Cardelli et al. 1989)",
                      dust_laws=(("mw", 1.0),), mw_r_v=(2.5, 5.0)),
    # EW(H-beta) of 10-30 nm: a 0-10 Myr population of Starburst99 (Leitherer et al. 1999)
    "nebular": Family("nebular", "default galaxies with HII-region emission lines", ew_hbeta=(10.0, 30.0)),
    # Bruzual & Charlot (2003) simple stellar populations (Chabrier IMF, MILES library)
    "bc03": Family("bc03", "default galaxies with Bruzual & Charlot (2003) stellar spectra", stellar_spectra="bc03"),
    "broad": Family(
        "broad", "every physics choice varies from galaxy to galaxy",
        # attenuation curves of galaxies span SMC-like to MW-like slopes (Salim, Boquien & Lee 2018)
        dust_laws=(("calzetti", 0.3), ("smc_bar", 0.2), ("mw", 0.2), ("salim18", 0.3)),
        mw_r_v=(2.5, 5.0), salim_delta=(-0.6, 0.2), ew_hbeta=(5.0, 30.0),
        # unobscured AGN in ~10 % of galaxies (Kauffmann et al. 2003 find AGN in up to
        # 40 % of massive galaxies, most obscured), 2-50 % of the r-band light
        agn_fraction=0.1,
        # upper IMF slope 2.0-2.7 around Salpeter's 2.35 (Bastian, Covey & Meyer 2010)
        imf_slope=(2.0, 2.7),
        # the mass-metallicity relation's spread at fixed mass, ~0.3 dex (Gallazzi et al. 2005)
        metallicity_scatter=0.25,
        # E+A galaxies (Dressler & Gunn 1983; French 2021), over-represented for variety
        post_starburst_fraction=0.1,
        # HII-region / clump luminosity function dN/dL ~ L^-2 (Kennicutt, Edgar & Hodge 1989)
        clump_slope=2.0,
        # bars in ~60 % of disks in the near-infrared (Eskridge et al. 2000), a_bar / h of
        # 0.5-2.5 (Erwin 2005), axis ratios 0.2-0.7 (Marinova & Jogee 2007), bar-to-disk
        # light 2-30 % (Gadotti 2011)
        bar_fraction=0.6, bar_length=(0.5, 2.5), bar_axis_ratio=(0.2, 0.7), bar_light=(0.02, 0.3),
    ),
}


def get_family(family):
    """The :class:`Family` called ``family`` (or ``family`` itself if it is one).

    Parameters
    ----------
    family : str or Family
        A name of :data:`FAMILIES`.

    Returns
    -------
    Family

    Raises
    ------
    TypeError
        If ``family`` is neither a string nor a `Family`.
    ValueError
        If no family has that name.

    Examples
    --------
    >>> get_family("broad").agn_fraction
    0.1
    """
    if isinstance(family, Family):
        return family
    if not isinstance(family, str):
        raise TypeError(f"family must be a family name (str), got {type(family).__name__}")
    if family not in FAMILIES:
        raise ValueError(f"unknown mock family {family!r}; expected one of {tuple(FAMILIES)}")
    return FAMILIES[family]


# ----------------------------------------------------------------------------------------------
# Per-galaxy draws (used by bandsynth.datasets.mock.population)
# ----------------------------------------------------------------------------------------------
def draw_physics(family, seed, galaxy_class):
    """The family's per-galaxy physics, from the galaxy's own family stream (plain data)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 11]))
    laws, probs = zip(*family.dust_laws)
    u = rng.random(12)
    law = laws[int(np.searchsorted(np.cumsum(probs) / np.sum(probs), u[0], side="right"))]
    delta = family.salim_delta[0] + u[1] * (family.salim_delta[1] - family.salim_delta[0])
    star_forming = galaxy_class != "elliptical"
    agn = bool(u[5] < family.agn_fraction)
    lo, hi = np.log10(family.agn_share)
    return {
        "dust_law": law,
        "r_v": float(family.mw_r_v[0] + u[2] * (family.mw_r_v[1] - family.mw_r_v[0])),
        "delta": float(delta),
        "bump": float(0.85 - 1.9 * delta),  # Kriek & Conroy (2013), eq. 3
        "ew_hbeta": float(family.ew_hbeta[0] + u[3] * (family.ew_hbeta[1] - family.ew_hbeta[0])),
        # BPT ranges of star-forming galaxies (Kewley, Nicholls & Sutherland 2019)
        "oiii_hbeta": float(10.0 ** (-0.5 + 1.2 * u[4])),
        "nii_halpha": float(10.0 ** (-1.3 + 0.9 * u[6])),
        "oii_hbeta": float(1.0 + 3.0 * u[7]),
        "sii_halpha": float(0.1 + 0.3 * u[8]),
        "agn_share": float(10.0 ** (lo + u[9] * (hi - lo))) if agn else 0.0,
        # quasar continuum f_nu ~ nu^alpha, alpha = -0.44 with ~0.3 scatter (Vanden Berk et al. 2001),
        # plus ~1300 K hot dust near the sublimation radius (Barvainis 1987; Glikman et al. 2006)
        "agn_alpha": float(-0.44 + 0.3 * rng.standard_normal()),
        "agn_hot_dust": float(rng.uniform(0.5, 2.0)),
        "imf_slope": float(rng.uniform(*family.imf_slope)),
        "metallicity_shift": float(family.metallicity_scatter * rng.standard_normal()),
        "post_starburst": bool(star_forming and u[10] < family.post_starburst_fraction),
        "burst_mass": float(rng.uniform(0.05, 0.3)),  # E+A burst mass fractions (French 2021)
        "clump_u": rng.random(64),
    }


def public_physics(physics):
    """The per-galaxy physics as metadata (no arrays)."""
    return {k: v for k, v in physics.items() if k != "clump_u"}


def imf_light_factor(ages, slope):
    """Light per unit mass of each age bin relative to a Salpeter IMF.

    Light at age ``t`` comes from stars near the turn-off mass ``m_to ~ (t / 10 Gyr)^-0.4``
    M_sun (main-sequence lifetimes ``~ m^-2.5``); with the mass dominated by ~1 M_sun
    stars, their number per unit mass scales as ``m_to^(2.35 - slope)`` (e.g. Conroy 2013,
    ARA&A 51, 393).
    """
    m_to = (np.asarray(ages, dtype=float) / 1e10) ** -0.4
    return m_to ** (2.35 - float(slope))


def post_starburst(masses, physics):
    """Masses of a galaxy whose star formation stopped 0.1-1 Gyr ago: its young stars
    are aged into the 200 Myr bin, where a burst of ``burst_mass`` (taken from the old
    stars) adds an A-star population with a strong Balmer break (Dressler & Gunn 1983)."""
    out = {c: np.array(v, dtype=float) for c, v in masses.items()}
    young = {c: v[:3].sum() for c, v in out.items()}
    total_young = sum(young.values())
    burst = physics["burst_mass"]
    old_total = sum(v[4:].sum() for v in out.values())
    for c, v in out.items():
        share = young[c] / total_young if total_young > 0 else 0.0
        v[2] = v[:3].sum() + burst * share
        v[:2] = 0.0
        v[4:] *= 1.0 - burst / old_total if old_total > 0 else 1.0
    return out


def clump_weights(physics, n, slope):
    """Luminosity shares of ``n`` clumps from ``dN/dL ~ L^-slope`` over a factor 100, and
    their sizes relative to the median clump (``r ~ L^(1/3)``: clumps and giant HII regions
    of roughly constant density, Wisnioski et al. 2012)."""
    u = physics["clump_u"][: max(n, 1)]
    ratio = 100.0
    if np.isclose(slope, 1.0):
        lum = ratio**u
    else:
        lum = (1.0 - u * (1.0 - ratio ** (1.0 - slope))) ** (1.0 / (1.0 - slope))
    size = np.clip((lum / np.median(lum)) ** (1.0 / 3.0), 0.5, 3.0)
    return lum / lum.sum(), size


# ----------------------------------------------------------------------------------------------
# Spectra of the family's extra components
# ----------------------------------------------------------------------------------------------
# Nebular lines: (rest wavelength in nm, ratio to H-beta or a key of the per-galaxy ratios).
# Case B recombination at 10^4 K (Osterbrock & Ferland 2006, table 4.4); [OIII] 4959/5007 =
# 1/2.98 (Storey & Zeippen 2000); Ly-alpha is taken as absorbed by dust and resonant scattering.
_LINES = (
    (372.7, "oii_hbeta"), (434.0, 0.468), (486.1, 1.0), (495.9, "oiii_4959"), (500.7, "oiii_hbeta"),
    (656.3, 2.86), (658.4, "nii"), (672.4, "sii"), (1281.8, 0.162), (1875.1, 0.332), (2166.1, 0.0275),
)


def _line_ratio(which, physics):
    if not isinstance(which, str):
        return which
    if which == "oiii_4959":
        return physics["oiii_hbeta"] / 2.98
    if which == "nii":
        return physics["nii_halpha"] * 2.86
    if which == "sii":
        return physics["sii_halpha"] * 2.86
    return physics[which]


def nebular_table(names, age, metallicity, uv_upturn, physics, redshift=0.0, spectra="mock"):
    """Band fluxes of the nebular lines of the youngest age bin per unit (rest-frame) r continuum flux,
    the bands observing at ``redshift``.

    A line of equivalent width ``EW`` on a continuum ``f_nu`` holds ``f_nu EW / lambda``
    of ``integral f_nu d(ln lambda)``; lines are scaled to H-beta, whose equivalent width
    ``ew_hbeta`` is measured on the population's own continuum.
    """
    ew = physics["ew_hbeta"]
    if ew <= 0:
        return np.zeros(len(names))
    pop = dict(age=age, metallicity=metallicity, uv_upturn=uv_upturn, spectra=spectra)
    continuum = population_sed(np.array([486.1]), **pop)[0]
    r_cont = population_band_fluxes(["r"], **pop)[0]
    lam = np.array([w for w, _ in _LINES])
    flux = np.array([_line_ratio(k, physics) for _, k in _LINES]) * ew / 486.1 * lam / 486.1 * continuum / r_cont
    return line_band_fluxes(list(names), lam, flux, redshift=redshift)


def agn_band_fluxes(names, physics, redshift=0.0):
    """Band fluxes of the AGN's spectrum, observed at ``redshift``, per unit rest-frame r-band flux: a power law
    ``f_nu ~ nu^alpha`` plus a 1300 K blackbody holding ``agn_hot_dust`` times the power
    law at 2.2 micron."""
    alpha, hot = physics["agn_alpha"], physics["agn_hot_dust"]

    def sed(lam):
        power = (lam / 550.0) ** (-alpha)
        bb = lam**-3 / np.expm1(np.minimum(1.438777e7 / (lam * 1300.0), 700.0))
        bb_22 = 2200.0**-3 / np.expm1(1.438777e7 / (2200.0 * 1300.0))
        return power + hot * (2200.0 / 550.0) ** (-alpha) * bb / bb_22

    return sed_band_fluxes(list(names), sed, redshift=redshift) / sed_band_fluxes(["r"], sed)[0]


def dust_curve(bands, physics, redshift=0.0):
    """``A_lambda / A_V`` of the galaxy's dust curve at each band's effective wavelength in the
    galaxy's rest frame (float32)."""
    lam = np.array([b.wavelength.value for b in bands]) / (1.0 + redshift)
    return attenuation_curve(lam, physics["dust_law"], r_v=physics["r_v"], delta=physics["delta"],
                             bump=physics["bump"]).astype(np.float32)


def family_table(names, ages, metallicities, uv_upturn, physics, redshift=0.0, spectra="mock"):
    """(n_band, n_age) nebular additions to the population table (per unit r continuum flux)."""
    out = np.zeros((len(names), N_BINS))
    out[:, 0] = nebular_table(names, ages[0], metallicities[0], uv_upturn[0], physics, redshift, spectra)
    return out
