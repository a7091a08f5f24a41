"""Survey presets of the mock universe: how each named survey observes each of its bands.

A :class:`SurveyBand` records what the survey layer (:func:`~bandsynth.datasets.mock.observe_galaxy`)
needs to imitate one band of one survey: the native pixel scale of its images, the PSF
FWHM, the 5-sigma point-source depth (AB), the sky surface brightness (which sets the
Poisson gain), the typical large-scale sky-subtraction residual, the fraction of pixels
lost to detector defects, and the magnitude at which a star's core saturates.

Values are typical of the surveys' public data releases, each cited next to it; the ones
no document states (residual levels, defect fractions and some saturation limits) are
marked *assumed* and are order-of-magnitude choices.  Depths are the surveys' own
definitions (PSF or 2" aperture magnitudes), used as the 5-sigma depth of optimal PSF
photometry.

Examples
--------
>>> from bandsynth.datasets.mock.surveys import survey_band, resolve_survey
>>> sb = survey_band("KiDS", "r")
>>> sb.band, sb.pixel_scale, sb.depth
('KiDS_r', 0.2, 25.0)
>>> [b.band for b in resolve_survey({"NUV": "GALEX", "r": "SDSS", "Ks": "2MASS"})]
['NUV', 'r', 'Ks']
>>> [b.band for b in resolve_survey("kids_viking", bands=["g", "Z"])]
['KiDS_g', 'VISTA_Z']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ...bands import get_band

__all__ = ["SurveyBand", "SURVEYS", "SURVEY_PRESETS", "survey_band", "resolve_survey"]


@dataclass(frozen=True)
class SurveyBand:
    """How one survey observes one band.

    Attributes
    ----------
    survey : str
        Survey name (a key of :data:`SURVEYS`).
    band : str
        Canonical name of the band in the registry (`bandsynth.bands`).
    pixel_scale : float
        Native pixel scale of the survey's images (arcsec).
    psf_fwhm : float
        Typical PSF FWHM (arcsec); the PSF is a Moffat profile (beta = 3).
    depth : float
        5-sigma point-source depth (AB magnitude).
    sky_mu : float
        Sky surface brightness (AB mag / arcsec^2): sets the Poisson gain.
    sky_residual : float
        RMS of the large-scale sky-subtraction residual, as a fraction of the sky level.
    mask_fraction : float
        Fraction of pixels lost to detector defects (bad columns, hot pixels).
    saturation : float
        AB magnitude of a star whose central pixel just saturates.
    """

    survey: str
    band: str
    pixel_scale: float
    psf_fwhm: float
    depth: float
    sky_mu: float
    sky_residual: float
    mask_fraction: float
    saturation: float


def _survey(name, pixel_scale, rows, *, sky_residual, mask_fraction):
    """{short band name: SurveyBand} of one survey; rows are (short, band, psf, depth, sky_mu, saturation)."""
    return {short: SurveyBand(name, band, pixel_scale, psf, depth, sky, sky_residual, mask_fraction, sat)
            for short, band, psf, depth, sky, sat in rows}


#: Survey -> {short band name -> :class:`SurveyBand`}.
SURVEYS = {
    # GALEX All-sky Imaging Survey.  Intensity maps of 1.5" pixels, PSF FWHM 4.2" (FUV) and
    # 5.3" (NUV), 5-sigma depths 19.9 and 20.8 (Morrissey et al. 2007, ApJS 173, 682);
    # sky ~26.8 / 26.0 mag/arcsec^2 (the zodiacal and diffuse backgrounds, ibid.).  A star
    # "saturates" where the count rate rolls off by 10 % (109 and 311 counts/s, ibid.:
    # ~13.8 mag in both bands).  Residual (5 % of a faint, Poisson-limited sky) and defect
    # fraction: assumed.
    "GALEX": _survey("GALEX", 1.5, [
        ("FUV", "FUV", 4.2, 19.9, 26.8, 13.8),
        ("NUV", "NUV", 5.3, 20.8, 26.0, 13.8),
    ], sky_residual=0.05, mask_fraction=0.002),
    # SDSS imaging (frames of 0.396" pixels; Gunn et al. 1998).  Median PSF FWHM 1.2-1.5"
    # (Stoughton et al. 2002, AJ 123, 485); 95 %-complete point-source depths u 22.0, g 22.2,
    # r 22.2, i 21.3, z 20.5 and dark-sky brightness u 22.1, g 21.9, r 20.9, i 20.2, z 19.0
    # (Abazajian et al. 2009, ApJS 182, 543); saturation near 14 mag in g, r, i and about
    # a magnitude brighter in u and z (Stoughton et al. 2002).  Sky residual: ~0.5 % of the
    # sky, the over-subtraction around large galaxies of DR7 (Blanton et al. 2011, AJ 142, 31).
    # Defect fraction: assumed.
    "SDSS": _survey("SDSS", 0.396, [
        ("u", "u", 1.5, 22.0, 22.1, 13.0),
        ("g", "g", 1.4, 22.2, 21.9, 14.0),
        ("r", "r", 1.3, 22.2, 20.9, 14.0),
        ("i", "i", 1.2, 21.3, 20.2, 14.0),
        ("z", "z", 1.2, 20.5, 19.0, 13.0),
    ], sky_residual=0.005, mask_fraction=0.005),
    # 2MASS Atlas images (resampled to 1.0" pixels), seeing-limited PSF ~2.5-3" FWHM, 10-sigma
    # depths J 15.8, H 15.1, Ks 14.3 (Vega) and saturation near J 9, H 8.5, Ks 8 (Vega) in the
    # 1.3-s exposures (Skrutskie et al. 2006, AJ 131, 1163); converted here to AB (+0.91,
    # +1.39, +1.85; Blanton & Roweis 2007) and to 5 sigma.  Sky 15.9 / 14.6 / 13.1 Vega
    # mag/arcsec^2 (ibid.).  Residual (the airglow varies within a scan) and defects: assumed.
    "2MASS": _survey("2MASS", 1.0, [
        ("J", "J", 2.9, 17.5, 16.8, 9.9),
        ("H", "H", 2.8, 17.2, 16.0, 9.9),
        ("Ks", "Ks", 2.9, 16.9, 14.9, 9.8),
    ], sky_residual=0.001, mask_fraction=0.002),
    # DECaLS / Legacy Surveys (0.262" pixels).  Median seeing g 1.3", r 1.2", z 1.1" and
    # 5-sigma depths g 24.0, r 23.4, z 22.5 for a 0.45" exponential galaxy, i.e. ~0.4 mag
    # deeper for a point source (Dey et al. 2019, AJ 157, 168).  Sky: dark Kitt Peak /
    # Cerro Tololo.  Saturation (~16 mag in 60-90 s exposures), residual and defects: assumed.
    "DECaLS": _survey("DECaLS", 0.262, [
        ("g", "DECam_g", 1.3, 24.4, 22.0, 16.0),
        ("r", "DECam_r", 1.2, 23.8, 21.0, 16.0),
        ("z", "DECam_z", 1.1, 22.9, 19.2, 16.0),
    ], sky_residual=0.002, mask_fraction=0.01),
    # KiDS DR4 (OmegaCAM coadds regridded to 0.2" pixels; de Jong et al. 2015, A&A 582, A62).
    # Mean seeing u 1.0", g 0.86", r 0.70", i 0.80" and 5-sigma depths (2" apertures)
    # u 24.23, g 25.12, r 25.02, i 23.68 (Kuijken et al. 2019, A&A 625, A2).  Sky: dark
    # Paranal (Patat 2008, A&A 481, 575; in AB).  Saturation (~16 mag in the 240-360 s
    # sub-exposures), residual and defects: assumed.  The large bright-star masks of the
    # KiDS catalogues are not modelled.
    "KiDS": _survey("KiDS", 0.2, [
        ("u", "KiDS_u", 1.0, 24.2, 22.3, 15.0),
        ("g", "KiDS_g", 0.86, 25.1, 22.0, 16.0),
        ("r", "KiDS_r", 0.70, 25.0, 21.0, 16.0),
        ("i", "KiDS_i", 0.80, 23.7, 20.1, 16.0),
    ], sky_residual=0.002, mask_fraction=0.01),
    # VIKING (VIRCAM on VISTA, 0.339" pixels; Sutherland et al. 2015, A&A 575, A25).  Seeing
    # ~0.9" and 5-sigma AB depths (2" apertures) Z 23.1, Y 22.3, J 22.1, H 21.5, Ks 21.2
    # (Edge et al. 2013, The Messenger 154, 32).  Sky: Paranal near-infrared (Cuby et al.
    # 2000; J 16.5, H 14.4, Ks 13.0 Vega, here in AB).  Saturation (~13 AB in the 10-s
    # sub-exposures), residual and defects: assumed.
    "VIKING": _survey("VIKING", 0.339, [
        ("Z", "VISTA_Z", 0.9, 23.1, 19.2, 13.0),
        ("Y", "VISTA_Y", 0.9, 22.3, 17.9, 13.0),
        ("J", "VISTA_J", 0.9, 22.1, 17.4, 13.0),
        ("H", "VISTA_H", 0.9, 21.5, 15.8, 13.0),
        ("Ks", "VISTA_Ks", 0.9, 21.2, 14.9, 13.0),
    ], sky_residual=0.0002, mask_fraction=0.01),
    # HSC-SSP Wide (0.168" pixels).  Median seeing g 0.79", r 0.75", i 0.61", z 0.68",
    # y 0.68" and 5-sigma point-source depths g 26.5, r 26.5, i 26.2, z 25.2, y 24.4
    # (Aihara et al. 2022, PASJ 74, 247, PDR3); stars saturate at ~17.5 mag (Aihara et al.
    # 2018, PASJ 70, S8).  Sky: dark Maunakea.  Residual (after the global sky subtraction
    # of PDR2 onwards) and defects: assumed.
    "HSC": _survey("HSC", 0.168, [
        ("g", "HSC_g", 0.79, 26.5, 22.0, 17.5),
        ("r", "HSC_r", 0.75, 26.5, 21.0, 17.5),
        ("i", "HSC_i", 0.61, 26.2, 20.2, 17.5),
        ("z", "HSC_z", 0.68, 25.2, 19.2, 17.5),
        ("y", "HSC_y", 0.68, 24.4, 18.3, 17.5),
    ], sky_residual=0.001, mask_fraction=0.01),
}


#: Names of several surveys observed together -> the surveys (all their bands).
SURVEY_PRESETS = {
    "galex_sdss_2mass": ("GALEX", "SDSS", "2MASS"),  # the paper's 13-band-like set (SDSS for DECam)
    "galex_decals_2mass": ("GALEX", "DECaLS", "2MASS"),
    "kids_viking": ("KiDS", "VIKING"),  # the KiDS-VIKING nine bands
    "decals": ("DECaLS",),
    "hsc": ("HSC",),
}


_SURVEY_ALIASES = {"decam": "DECaLS", "legacy": "DECaLS", "vista": "VIKING", "hsc-ssp": "HSC", "twomass": "2MASS"}


def _survey_name(name):
    if not isinstance(name, str):
        raise TypeError(f"survey must be a survey name, a preset name or a mapping of band to survey, "
                        f"got {type(name).__name__}")
    key = name.strip().lower()
    for known in SURVEYS:
        if known.lower() == key:
            return known
    if key in _SURVEY_ALIASES:
        return _SURVEY_ALIASES[key]
    raise ValueError(f"unknown survey {name!r}; known surveys are {', '.join(SURVEYS)} "
                     f"and the presets {', '.join(SURVEY_PRESETS)}")


def survey_band(survey, band) -> SurveyBand:
    """How ``survey`` observes ``band``.

    Parameters
    ----------
    survey : str
        Survey name (case-insensitive): one of :data:`SURVEYS`.
    band : str or `~bandsynth.bands.Band`
        The band: its name within the survey (``"r"`` for KiDS r) or any registry
        name or alias of it (``"KiDS_r"``).

    Returns
    -------
    SurveyBand

    Raises
    ------
    ValueError
        Unknown survey, or a band the survey does not observe (the message lists its bands).
    """
    name = _survey_name(survey)
    table = SURVEYS[name]
    if isinstance(band, str):
        if band.strip().lower() == "k" and "Ks" in table:
            band = "Ks"
        for short, sb in table.items():
            if short == band.strip():
                return sb
        for short, sb in table.items():
            if short.lower() == band.strip().lower():
                return sb
    registry = get_band(band)  # ValueError for an unknown band name
    for sb in table.values():
        if sb.band == registry.name:
            return sb
    listing = ", ".join(f"{short} ({sb.band})" for short, sb in table.items())
    raise ValueError(f"survey {name!r} does not observe band {str(band)!r}; its bands are {listing}")


def resolve_survey(survey, bands=None) -> tuple:
    """The :class:`SurveyBand` of every band to observe, in wavelength order.

    Parameters
    ----------
    survey : str or mapping
        A preset name (:data:`SURVEY_PRESETS`, e.g. ``"kids_viking"``), a survey name
        (:data:`SURVEYS`, e.g. ``"HSC"``: all its bands), or a mapping of band to
        survey (``{"NUV": "GALEX", "r": "SDSS", "Ks": "2MASS"}``; band names may be the
        survey's own, ``{"r": "KiDS"}`` is KiDS r).
    bands : list of str, optional
        With a preset or survey name: the bands to keep (names as in ``survey_band``).
        Not allowed with a mapping.

    Returns
    -------
    tuple of SurveyBand

    Raises
    ------
    ValueError
        Unknown survey or preset, a band no survey of the preset observes, a band
        two surveys of the preset observe under that name, or a band given twice.
    """
    if isinstance(survey, Mapping):
        if bands is not None:
            raise ValueError("give the bands either as the keys of survey={band: survey} or as bands=, not both")
        if not survey:
            raise ValueError("survey mapping is empty; give at least one band: survey pair")
        chosen = [survey_band(s, b) for b, s in survey.items()]
    else:
        key = survey.strip().lower() if isinstance(survey, str) else survey
        names = SURVEY_PRESETS.get(key) or (_survey_name(survey),)
        if bands is None:
            chosen = [sb for n in names for sb in SURVEYS[n].values()]
        else:
            chosen = [_pick(names, b, survey) for b in ([bands] if isinstance(bands, str) else bands)]
    seen = set()
    for sb in chosen:
        if sb.band in seen:
            raise ValueError(f"band {sb.band!r} is given twice")
        seen.add(sb.band)
    return tuple(sorted(chosen, key=lambda sb: get_band(sb.band).wavelength.value))


def _pick(names, band, preset):
    found = []
    for n in names:
        try:
            found.append(survey_band(n, band))
        except ValueError:
            continue
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise ValueError(f"band {band!r} is ambiguous in survey preset {preset!r}: "
                         f"{', '.join(f'{sb.band} ({sb.survey})' for sb in found)}; use the registry name")
    listing = ", ".join(sb.band for n in names for sb in SURVEYS[n].values())
    what = "survey preset" if len(names) > 1 or str(preset).lower() in SURVEY_PRESETS else "survey"
    raise ValueError(f"{what} {preset!r} does not observe band {band!r}; its bands are {listing}")
