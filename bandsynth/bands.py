"""Photometric band registry.

Each :class:`Band` records what bandsynth needs to know about a filter: its
effective wavelength and width, the survey it belongs to and the typical PSF
FWHM of that survey.  Lookups are case-insensitive and accept aliases, so
``"NUV"``, ``"galex_nuv"`` and ``"Galex_NUV"`` all name the same band.

The registry covers GALEX FUV/NUV, SDSS ugriz, DECam grz (DECaLS), 2MASS JHKs,
OmegaCAM ugri (KiDS: ``KiDS_u`` ...), VISTA/VIRCAM ZYJHKs (VIKING: ``VISTA_Z`` ...,
also ``viking_z``) and HSC grizy (``HSC_g`` ...).  The bare names ``u g r i z`` are
SDSS's and ``J H Ks`` are 2MASS's.

Examples
--------
>>> from bandsynth.bands import get_band
>>> get_band("galex_nuv").name
'NUV'
>>> get_band("K").name
'Ks'
>>> [b.name for b in sorted([get_band("r"), get_band("FUV")])]
['FUV', 'r']
"""

from __future__ import annotations

from dataclasses import dataclass, field

import astropy.units as u
import numpy as np

__all__ = ["Band", "get_band", "header_band", "list_bands", "sort_bands", "register_band", "same_filter"]


@dataclass(frozen=True, eq=False)
class Band:
    """One photometric band.

    Construct it with the fields below, in this order (``psf_fwhm`` defaults to
    1 arcsec); lengths are converted to nm and the PSF FWHM to arcsec.  Bands
    compare equal when their canonical names are equal and sort by wavelength.

    Attributes
    ----------
    name : str
        Canonical name, e.g. ``"NUV"`` or ``"DECam_r"``.
    aliases : tuple of str
        Other names the band answers to (matched case-insensitively).
    wavelength : `~astropy.units.Quantity`
        Effective (pivot) wavelength, in nm.
    width : `~astropy.units.Quantity`
        Effective width (FWHM of the response), in nm.
    survey : str
        Survey or instrument the band belongs to.
    psf_fwhm : `~astropy.units.Quantity`
        Typical PSF FWHM of the survey in this band, in arcsec.
    curve : str, optional
        Where a maintained package publishes the measured response, as
        ``"package:name"`` (``"speclite:hsc2017-g"``, ``"sedpy:vista_vircam_Z"``);
        read by :meth:`filter_curve`.

    Raises
    ------
    TypeError
        If ``name`` is not a non-empty string, or a length or the PSF FWHM is not a
        `~astropy.units.Quantity` of the right physical type.
    """

    name: str
    aliases: tuple[str, ...]
    wavelength: u.Quantity
    width: u.Quantity
    survey: str
    psf_fwhm: u.Quantity = field(default=1.0 * u.arcsec)
    curve: str | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Band name must be a non-empty string, got {self.name!r}")
        for attr, unit in (("wavelength", u.nm), ("width", u.nm), ("psf_fwhm", u.arcsec)):
            value = getattr(self, attr)
            if not isinstance(value, u.Quantity) or not value.unit.is_equivalent(unit):
                raise TypeError(f"Band {self.name!r}: {attr} must be a Quantity in units of {unit}")
            object.__setattr__(self, attr, value.to(unit))

    @property
    def names(self) -> tuple[str, ...]:
        """The canonical name followed by every alias."""
        return (self.name, *self.aliases)

    def transmission(self, wavelength) -> np.ndarray:
        """Approximate normalised response at ``wavelength``.

        A smooth top-hat (super-Gaussian of order 6) centred on the effective
        wavelength with the band's width as FWHM; peak value 1.  Used by the
        mock universe to integrate spectra through the band.

        Parameters
        ----------
        wavelength : `~astropy.units.Quantity` or array-like
            Wavelength(s) at which to evaluate the response; a plain number or
            array is taken to be in nm.

        Returns
        -------
        numpy.ndarray
            Response between 0 and 1, of the shape of ``wavelength``.
        """
        lam = u.Quantity(wavelength, u.nm).value
        x = (lam - self.wavelength.value) / (0.5 * self.width.value)
        return np.exp(-np.log(2.0) * np.abs(x) ** 6)

    def filter_curve(self):
        """The measured response of the band from the package that maintains it.

        ``speclite`` (SDSS, DECam, GALEX, 2MASS, HSC) or ``astro-sedpy``
        (VISTA/VIRCAM) is needed; both are optional (``pip install
        bandsynth[filters]``).  The mock universe keeps using the smooth model of
        :meth:`transmission`, so that mock images do not depend on which optional
        packages are installed.

        Returns
        -------
        wavelength : `~astropy.units.Quantity`
            Wavelengths of the tabulated curve (nm).
        response : ndarray
            Response at each wavelength, normalised to a peak of 1.

        Raises
        ------
        ValueError
            If no maintained package publishes this band's curve (e.g. the
            OmegaCAM bands of KiDS).
        ImportError
            If the package that publishes it is not installed.
        """
        if self.curve is None:
            raise ValueError(f"band {self.name!r}: no maintained package publishes its response curve; "
                             "use Band.transmission (the smooth model of its effective wavelength and width)")
        package, name = self.curve.split(":", 1)
        try:
            if package == "speclite":
                from speclite.filters import load_filter

                curve = load_filter(name)
                lam, resp = np.asarray(curve.wavelength, float), np.asarray(curve.response, float)
            else:
                from sedpy.observate import Filter

                curve = Filter(name)
                lam, resp = np.asarray(curve.wavelength, float), np.asarray(curve.transmission, float)
        except ImportError as err:
            pip = "speclite" if package == "speclite" else "astro-sedpy"
            raise ImportError(f"band {self.name!r}: its response curve comes from {pip}; "
                              f"pip install {pip} (or bandsynth[filters])") from err
        return (lam * u.AA).to(u.nm), np.clip(resp, 0.0, None) / resp.max()

    # Quantities are not hashable, so identity is the canonical name.
    def __eq__(self, other):
        return isinstance(other, Band) and other.name == self.name

    def __hash__(self):
        return hash(("Band", self.name))

    def __lt__(self, other):
        if not isinstance(other, Band):
            return NotImplemented
        return self.wavelength < other.wavelength

    def __str__(self):
        return self.name


def _band(name, aliases, lam_nm, width_nm, survey, psf_arcsec, curve=None):
    return Band(name, tuple(aliases), lam_nm * u.nm, width_nm * u.nm, survey, psf_arcsec * u.arcsec, curve)


# Effective wavelengths and widths from the survey documentation (GALEX: Morrissey
# et al. 2007; SDSS: Fukugita et al. 1996; DECam: DES DR1; 2MASS: Cohen et al. 2003).
#
# The newer bands: the pivot wavelength and the FWHM of the measured system responses
# where a maintained package publishes them -- HSC from speclite 1.0 (``hsc2017-*``,
# Kawanomoto et al. 2018), VISTA/VIRCAM from astro-sedpy 0.4 (``vista_vircam_*``: filter,
# mirrors, detector QE and a Paranal atmosphere, from the ESO VIRCAM pages).  No
# maintained package publishes the OmegaCAM (KiDS) curves (neither speclite nor
# astro-sedpy does): those are the nominal values of its SDSS-like ugri filters
# (Kuijken et al. 2019, KiDS DR4; to ~1 %).  The registry keeps its smooth
# effective-wavelength/width model (Band.transmission) for every band, so that the mock
# universe does not depend on optional packages; Band.filter_curve reads the measured
# curve where one is published.  Typical PSFs: KiDS DR4 mean seeing (u 1.0", g 0.86",
# r 0.70", i 0.80"), VIKING (Edge et al. 2013: ~0.9" median), HSC-SSP Wide PDR3 median
# seeing (Aihara et al. 2022: g 0.79", r 0.75", i 0.61", z 0.68", y 0.68").
_BANDS = [
    _band("FUV", ["galex_fuv"], 152.8, 26.9, "GALEX", 4.2, "speclite:galex-fuv"),
    _band("NUV", ["galex_nuv"], 227.1, 61.6, "GALEX", 5.3, "speclite:galex-nuv"),
    _band("u", ["sdss_u"], 355.1, 59.9, "SDSS", 1.5, "speclite:sdss2010-u"),
    _band("g", ["sdss_g"], 468.6, 137.9, "SDSS", 1.4, "speclite:sdss2010-g"),
    _band("r", ["sdss_r"], 616.6, 138.2, "SDSS", 1.3, "speclite:sdss2010-r"),
    _band("i", ["sdss_i"], 748.0, 153.5, "SDSS", 1.2, "speclite:sdss2010-i"),
    _band("z", ["sdss_z"], 893.2, 137.0, "SDSS", 1.2, "speclite:sdss2010-z"),
    _band("DECam_g", ["decam_g", "decals_g", "des_g"], 480.0, 147.0, "DECam", 1.3, "speclite:decam2014-g"),
    _band("DECam_r", ["decam_r", "decals_r", "des_r"], 640.0, 148.0, "DECam", 1.2, "speclite:decam2014-r"),
    _band("DECam_z", ["decam_z", "decals_z", "des_z"], 915.0, 152.0, "DECam", 1.1, "speclite:decam2014-z"),
    _band("J", ["2mass_j"], 1235.0, 162.0, "2MASS", 2.9, "speclite:twomass-J"),
    _band("H", ["2mass_h"], 1662.0, 251.0, "2MASS", 2.8, "speclite:twomass-H"),
    _band("Ks", ["k", "2mass_ks", "2mass_k"], 2159.0, 262.0, "2MASS", 2.9, "speclite:twomass-Ks"),
    # KiDS (OmegaCAM on the VST)
    _band("KiDS_u", ["omegacam_u"], 357.0, 57.0, "KiDS", 1.0),
    _band("KiDS_g", ["omegacam_g"], 477.0, 139.0, "KiDS", 0.86),
    _band("KiDS_r", ["omegacam_r"], 623.0, 145.0, "KiDS", 0.70),
    _band("KiDS_i", ["omegacam_i"], 762.0, 155.0, "KiDS", 0.80),
    # VIKING (VIRCAM on VISTA)
    _band("VISTA_Z", ["viking_z", "vircam_z"], 880.1, 97.0, "VISTA", 0.9, "sedpy:vista_vircam_Z"),
    _band("VISTA_Y", ["viking_y", "vircam_y"], 1021.7, 91.0, "VISTA", 0.9, "sedpy:vista_vircam_Y"),
    _band("VISTA_J", ["viking_j", "vircam_j"], 1252.7, 171.0, "VISTA", 0.9, "sedpy:vista_vircam_J"),
    _band("VISTA_H", ["viking_h", "vircam_h"], 1643.3, 290.0, "VISTA", 0.9, "sedpy:vista_vircam_H"),
    _band("VISTA_Ks", ["vista_k", "viking_ks", "viking_k", "vircam_ks"], 2150.3, 306.0, "VISTA", 0.9,
          "sedpy:vista_vircam_Ks"),
    # HSC-SSP (Hyper Suprime-Cam on Subaru)
    _band("HSC_g", ["hsc-g"], 479.1, 137.0, "HSC", 0.79, "speclite:hsc2017-g"),
    _band("HSC_r", ["hsc-r", "hsc-r2"], 621.4, 149.0, "HSC", 0.75, "speclite:hsc2017-r"),
    _band("HSC_i", ["hsc-i", "hsc-i2"], 768.9, 151.0, "HSC", 0.61, "speclite:hsc2017-i"),
    _band("HSC_z", ["hsc-z"], 890.3, 76.0, "HSC", 0.68, "speclite:hsc2017-z"),
    _band("HSC_y", ["hsc-y"], 977.2, 73.0, "HSC", 0.68, "speclite:hsc2017-y"),
]

_REGISTRY: dict[str, Band] = {}


def register_band(band: Band) -> Band:
    """Add ``band`` to the registry so that :func:`get_band` finds it.

    Registering the same `Band` object twice does nothing.

    Parameters
    ----------
    band : `Band`
        The band; its canonical name and every alias become lookup keys
        (case-insensitive).

    Returns
    -------
    `Band`
        ``band`` itself.

    Raises
    ------
    TypeError
        If ``band`` is not a `Band`.
    ValueError
        If one of its names is already taken by another band.
    """
    if not isinstance(band, Band):
        raise TypeError(f"register_band expects a Band, got {type(band).__name__}")
    for key in (n.lower() for n in band.names):
        if key in _REGISTRY and _REGISTRY[key] is not band:
            raise ValueError(f"band name {key!r} is already used by band {_REGISTRY[key].name!r}")
    for key in (n.lower() for n in band.names):
        _REGISTRY[key] = band
    return band


for _b in _BANDS:
    register_band(_b)


def get_band(name) -> Band:
    """Return the registered band called ``name`` (case-insensitive, aliases allowed).

    Parameters
    ----------
    name : str or `Band`
        Canonical name or alias, matched case-insensitively after stripping
        whitespace; a `Band` is returned as it is.

    Returns
    -------
    `Band`
        The registered band.

    Raises
    ------
    TypeError
        If ``name`` is neither a string nor a `Band`.
    ValueError
        If no band answers to ``name``; the message lists the known bands.

    Examples
    --------
    >>> get_band("sdss_r").wavelength
    <Quantity 616.6 nm>
    """
    if isinstance(name, Band):
        return name
    if not isinstance(name, str):
        raise TypeError(f"band name must be a string or Band, got {type(name).__name__}")
    try:
        return _REGISTRY[name.strip().lower()]
    except KeyError:
        known = ", ".join(b.name for b in list_bands())
        raise ValueError(f"unknown band {name!r}; known bands are: {known}") from None


def list_bands() -> list[Band]:
    """All registered bands, ordered by effective wavelength.

    Returns
    -------
    list of `Band`
        Each registered band once, bluest first.
    """
    return sorted(set(_REGISTRY.values()), key=lambda b: b.wavelength.value)


def sort_bands(names) -> list[Band]:
    """Resolve ``names`` and return the bands ordered by wavelength.

    Parameters
    ----------
    names : sequence of str or `Band`
        Band names or aliases (anything :func:`get_band` accepts).

    Returns
    -------
    list of `Band`
        The bands, bluest first.

    Raises
    ------
    ValueError
        If a name is unknown or two names resolve to the same band.
    """
    bands = [get_band(n) for n in names]
    seen = set()
    for given, band in zip(names, bands):
        if band.name in seen:
            raise ValueError(f"band {band.name!r} is given twice (as {given!r})")
        seen.add(band.name)
    return sorted(bands, key=lambda b: b.wavelength.value)


def same_filter(name, bands) -> list[str]:
    """The bands among ``bands`` whose filter ``name`` names, whatever their survey.

    A band's filter is its canonical name without the survey prefix (``"H"`` of
    ``"VISTA_H"``), compared case-insensitively.  What a message suggests when a bare
    filter name resolves to another survey's band than a model's: ``"H"`` is 2MASS H, and
    a VIKING model writes ``"VISTA_H"``.

    Parameters
    ----------
    name : str
        A band name or alias as the user gave it.
    bands : sequence of str or `Band`
        The bands to look among (a model's, say).

    Returns
    -------
    list of str
        Their canonical names, in the order of ``bands``; empty if none matches.

    Examples
    --------
    >>> same_filter("H", ["VISTA_J", "VISTA_H", "VISTA_Ks"])
    ['VISTA_H']
    >>> same_filter("z", ["KiDS_r", "VISTA_Z"])
    ['VISTA_Z']
    """
    def filter_of(text):
        return text.rsplit("_", 1)[-1].lower()

    try:
        wanted = filter_of(get_band(name).name)
    except ValueError:  # not a registered name: read its last part as the filter
        wanted = filter_of(str(name).strip())
    names = [get_band(b).name for b in bands]
    return [n for n in names if filter_of(n) == wanted]


def header_band(header):
    """The band a FITS header names by its survey or instrument and its filter, or None.

    ``FILTER`` after the survey (``SURVEY``), the instrument or telescope (``INSTRUME``,
    ``TELESCOP``, or either part of ``'VST/OmegaCAM'``) or the ``ORIGIN``, as `get_band`
    knows them: ``SURVEY = 'KiDS'``, ``FILTER = 'g'`` is KiDS g, ``INSTRUME =
    'VISTA/VIRCAM'``, ``FILTER = 'Y'`` is VISTA Y, ``ORIGIN = '2MASS'``, ``FILTER = 'k'``
    is 2MASS Ks; GALEX images say ``BAND = 1`` (NUV) or ``2`` (FUV); a bandsynth
    output's ``BSBAND`` names its band outright.

    Parameters
    ----------
    header : `~astropy.io.fits.Header`

    Returns
    -------
    `~bandsynth.bands.Band` or None

    Examples
    --------
    >>> from astropy.io import fits
    >>> header_band(fits.Header({"SURVEY": "VIKING", "FILTER": "Z"})).name
    'VISTA_Z'
    >>> header_band(fits.Header({"FILTER": "g"})) is None     # no survey: the filter alone is ambiguous
    True
    """
    own = str(header.get("BSBAND", "")).strip()  # a bandsynth output names its band
    if own:
        try:
            return get_band(own)
        except ValueError:
            pass
    galex = {"1": "NUV", "1.0": "NUV", "NUV": "NUV", "2": "FUV", "2.0": "FUV", "FUV": "FUV"}  # its BAND keyword
    stated = str(header.get("BAND", "")).strip().upper()
    if str(header.get("TELESCOP", "")).strip().upper() == "GALEX" and stated in galex:
        return get_band(galex[stated])
    filt = str(header.get("FILTER", "")).strip()
    if not filt:
        return None
    for key in ("SURVEY", "INSTRUME", "TELESCOP", "ORIGIN"):
        value = str(header.get(key, ""))
        for prefix in filter(None, (p.strip() for p in [value, *value.split("/")])):
            try:
                return get_band(f"{prefix}_{filt}")
            except ValueError:
                continue
    return None
