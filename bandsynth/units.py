"""Flux units used across bandsynth, and the package's one unit-conversion path.

Images are in nanomaggies, the linear flux unit of SDSS and the Legacy Surveys: a
source of 1 nanomaggy has an AB magnitude of 22.5, i.e. ``3.631e-6 Jy``.  bandsynth
uses astropy's own unit for it, ``astropy.units.nmgy`` (``nanomaggy`` here is the same
object), so a file written by bandsynth reads back with the same unit through
`~astropy.nddata.CCDData.read` and `~bandsynth.SyntheticBand.read`.

astropy treats maggies as a photometric unit of their own (it does not convert them to
Jy without an equivalency); :func:`to_unit` is the one place where bandsynth converts
between maggies, janskys, other spectral flux densities, surface brightness and AB
magnitudes.

Examples
--------
>>> import astropy.units as u
>>> from bandsynth.units import nanomaggy, ab_magnitude, to_unit
>>> nanomaggy is u.nmgy
True
>>> float(to_unit(1.0, nanomaggy, u.Jy))
3.631e-06
>>> float(ab_magnitude(1.0))
22.5
"""

from __future__ import annotations

import re

import astropy.units as u
import numpy as np

__all__ = [
    "nanomaggy",
    "MAGGY_FLUX",
    "parse_unit",
    "format_unit",
    "ab_magnitude",
    "flux_from_ab",
    "conversion_factor",
    "to_unit",
    "pixel_area",
    "area_of",
    "needs_pixel_area",
    "needs_wavelength",
    "is_magnitude",
]

#: astropy's nanomaggy (``u.nmgy``): AB magnitude 22.5, 3.631e-6 Jy.
nanomaggy = u.nmgy

#: The flux density of one maggy (AB magnitude 0).
MAGGY_FLUX = 3631.0 * u.Jy

_NANOMAGGY_WORDS = ("nanomaggy", "nanomaggies", "nmgy")

#: How survey headers spell counts where astropy's names differ (GALEX, HSC, ESO products).
_SURVEY_SPELLINGS = (
    (r"(?i)^\s*cps\s*$", "ct / s"),
    (r"(?i)\bcounts\b", "ct"),
    (r"\bADU\b", "adu"),
    (r"(?i)\be-(?=\s*(/|$))", "electron"),
    (r"\belectrons\b", "electron"),
)


#: Words of unit strings written all in upper case (old FITS writers), in astropy's case: FITS units are
#: case-sensitive, and read as they stand "COUNTS/S" was counts per siemens.
_UPPER_CASE_WORDS = {
    "COUNTS": "ct", "COUNT": "ct", "CTS": "ct", "CT": "ct", "S": "s", "SEC": "s", "JY": "Jy", "MJY": "MJy",
    "UJY": "uJy", "NJY": "nJy", "SR": "sr", "DN": "DN", "ADU": "adu", "ELECTRONS": "electron",
    "ELECTRON": "electron", "PIXEL": "pix", "PIX": "pix", "ARCSEC": "arcsec", "ARCSEC2": "arcsec2",
    "ERG": "erg", "CM": "cm", "CM2": "cm2", "HZ": "Hz", "ANGSTROM": "Angstrom", "NANOMAGGY": "nanomaggy",
    "NANOMAGGIES": "nanomaggy", "NMGY": "nmgy", "MAGGY": "maggy",
}


def parse_unit(text):
    """Parse a unit string; ``"nanomaggy"``, ``"nanomaggies"`` and ``"nmgy"`` are ``u.nmgy``.

    Parameters
    ----------
    text : str or `~astropy.units.UnitBase`
        The unit, e.g. a FITS ``BUNIT`` value.  Units are returned unchanged.

    Returns
    -------
    unit : `~astropy.units.UnitBase`
        The parsed unit.

    Raises
    ------
    TypeError
        ``text`` is neither a string nor a unit.
    ValueError
        astropy does not understand the string.

    Examples
    --------
    >>> import astropy.units as u
    >>> parse_unit("nanomaggy") is u.nmgy
    True
    >>> parse_unit("Jy")
    Unit("Jy")
    >>> parse_unit("nanomaggies / arcsec2") == u.nmgy / u.arcsec**2
    True
    >>> parse_unit("counts/s"), parse_unit("ADU")
    (Unit("ct / s"), Unit("adu"))
    >>> parse_unit("COUNTS/S"), parse_unit("MJY/SR"), parse_unit("Jy/pixel")  # upper case, per pixel
    (Unit("ct / s"), Unit("MJy / sr"), Unit("Jy"))
    """
    if isinstance(text, (u.UnitBase, u.FunctionUnitBase)):
        return text
    if not isinstance(text, str):
        raise TypeError(f"unit must be a string or astropy unit, got {type(text).__name__}")
    if text.strip().lower() in _NANOMAGGY_WORDS:
        return u.nmgy
    if re.search(r"[A-Z]", text) and not re.search(r"[a-z]", text):
        text = re.sub(r"[A-Z]+\d*", lambda m: _UPPER_CASE_WORDS.get(m.group(0), m.group(0)), text)
    # "nanomaggies" is not an astropy name; inside a composite it is the nanomaggy.
    text = re.sub(r"(?i)\bnanomaggies\b", "nanomaggy", text)
    for pattern, replacement in _SURVEY_SPELLINGS:
        text = re.sub(pattern, replacement, text)
    try:
        unit = u.Unit(text)
    except ValueError as err:  # keep astropy's diagnosis and suggestion; its advice on defining units is for code
        raise ValueError(str(err).split(" If this is meant to be a custom unit")[0]) from None
    # "per pixel" says what a flux in an image is anyway: Jy/pixel is Jy in each pixel
    powers = dict(zip(getattr(unit, "bases", ()), getattr(unit, "powers", ())))
    return unit * u.pix if powers.get(u.pix) == -1 else unit


def format_unit(unit):
    """The text of ``unit`` for a FITS ``BUNIT``: nanomaggies are written ``nanomaggy``.

    ``"nanomaggy"`` is what the Legacy Surveys write and what astropy reads as ``u.nmgy``.

    Parameters
    ----------
    unit : str or `~astropy.units.UnitBase`
        The unit.

    Returns
    -------
    text : str
        Its text.

    Examples
    --------
    >>> import astropy.units as u
    >>> format_unit(u.nmgy / u.arcsec**2)
    'nanomaggy / arcsec2'
    """
    return re.sub(r"\bnmgy\b", "nanomaggy", parse_unit(unit).to_string())


def ab_magnitude(flux_nanomaggy):
    """AB magnitude of a flux given in nanomaggies (``22.5 - 2.5 log10 f``).

    Parameters
    ----------
    flux_nanomaggy : array_like
        Flux in nanomaggies.

    Returns
    -------
    magnitude : `numpy.ndarray`
        AB magnitude.
    """
    return 22.5 - 2.5 * np.log10(np.asarray(flux_nanomaggy, dtype=float))


def flux_from_ab(magnitude):
    """Flux in nanomaggies of an AB magnitude (inverse of :func:`ab_magnitude`).

    Parameters
    ----------
    magnitude : array_like
        AB magnitude.

    Returns
    -------
    flux : `numpy.ndarray`
        Flux in nanomaggies.
    """
    return 10.0 ** (-0.4 * (np.asarray(magnitude, dtype=float) - 22.5))


def is_magnitude(unit):
    """Whether ``unit`` is a magnitude (``u.ABmag``, ``"mag(AB)"``, ``u.mag``): not a linear flux unit.

    Parameters
    ----------
    unit : `~astropy.units.UnitBase`, str or None

    Returns
    -------
    bool

    Examples
    --------
    >>> import astropy.units as u
    >>> is_magnitude(u.ABmag), is_magnitude("mag(AB)"), is_magnitude(u.nmgy)
    (True, True, False)
    """
    if isinstance(unit, str):
        try:
            unit = parse_unit(unit)
        except (TypeError, ValueError):
            return False
    return isinstance(unit, u.MagUnit) or unit == u.mag


def _maggies_as_jansky(unit):
    """``unit`` as a Quantity in which maggies (any prefix) are replaced by 3631 Jy."""
    composite = unit if isinstance(unit, u.CompositeUnit) else u.CompositeUnit(1, [unit], [1])
    out = u.Quantity(composite.scale)
    for base, power in zip(composite.bases, composite.powers):
        if base.is_equivalent(u.mgy):
            out = out * (base.to(u.mgy) * MAGGY_FLUX) ** power
        else:
            out = out * base**power
    return out


def _where(band, path):
    parts = []
    if band is not None:
        parts.append(f"band {getattr(band, 'name', band)!r}")
    if path is not None:
        parts.append(f"{str(path)!r}")
    return " ".join(parts) + ": " if parts else ""


def conversion_factor(unit, target, *, band=None, path=None, pixel_area=None):
    """Multiplicative factor from the linear flux unit ``unit`` to ``target``.

    Parameters
    ----------
    unit, target : str or `~astropy.units.UnitBase`
        Linear units: flux per pixel (nanomaggies, maggies, Jy, erg/s/cm2/Hz or /Å, ...)
        or surface brightness (any of those per solid angle).
    band : `~bandsynth.bands.Band` or str, optional
        Band whose effective wavelength converts between per-frequency and
        per-wavelength flux densities; it also names the band in error messages.
    path : str, optional
        File the data came from, named in error messages.
    pixel_area : `~astropy.units.Quantity`, optional
        Solid angle of one pixel, to convert between flux per pixel and surface
        brightness.

    Returns
    -------
    factor : float
        ``value_in_target = factor * value_in_unit``.

    Raises
    ------
    astropy.units.UnitConversionError
        The units are not convertible (the message names the band and file).
    """
    unit, target = parse_unit(unit), parse_unit(target)
    if unit == target:
        return 1.0
    if is_magnitude(unit) or is_magnitude(target):
        raise u.UnitConversionError(
            f"{_where(band, path)}magnitudes are not a linear unit; use to_unit to convert {unit} to {target}"
        )
    a, b = _maggies_as_jansky(unit), _maggies_as_jansky(target)
    equivalencies = []
    if band is not None:
        from .bands import get_band

        equivalencies = u.spectral_density(get_band(band).wavelength)
    try:
        return float(a.to_value(b.unit, equivalencies=equivalencies) / b.value)
    except u.UnitsError:
        if pixel_area is None:
            raise u.UnitConversionError(f"{_where(band, path)}cannot convert {unit} to {target}") from None
    area = u.Quantity(pixel_area)
    for q in (a / area, a * area):  # surface brightness <-> flux per pixel
        try:
            return float(q.to_value(b.unit, equivalencies=equivalencies) / b.value)
        except u.UnitsError:
            continue
    raise u.UnitConversionError(f"{_where(band, path)}cannot convert {unit} to {target}")


def pixel_area(wcs, label="the WCS"):
    """Solid angle of one pixel of a celestial WCS (at its reference pixel).

    What converts a surface brightness to a flux per pixel and back (``pixel_area=`` of
    `to_unit`).

    Parameters
    ----------
    wcs : `~astropy.wcs.WCS`
    label : str
        What the WCS belongs to, for the error message.

    Returns
    -------
    `~astropy.units.Quantity`
        In deg².

    Raises
    ------
    ValueError
        The WCS has no measurable pixel area.

    Examples
    --------
    >>> from astropy.wcs import WCS
    >>> w = WCS(naxis=2)
    >>> w.wcs.ctype, w.wcs.cdelt = ["RA---TAN", "DEC--TAN"], [-0.2 / 3600, 0.2 / 3600]
    >>> round(float(pixel_area(w).to_value(u.arcsec**2)), 6)
    0.04
    """
    from astropy.wcs.utils import proj_plane_pixel_area

    try:
        if wcs.naxis == 2 and wcs.has_celestial:
            # What proj_plane_pixel_area computes, without its deep copy of the WCS (.celestial),
            # which was a quarter of the survey layer's rendering time.
            return float(abs(np.linalg.det(wcs.pixel_scale_matrix))) * u.deg**2
        return float(proj_plane_pixel_area(wcs.celestial if wcs.has_celestial else wcs)) * u.deg**2
    except (ValueError, TypeError) as err:
        raise ValueError(f"{label}: cannot measure the pixel area of its WCS ({err})") from None


def area_of(wcs):
    """`pixel_area` of ``wcs``, or None where there is no celestial WCS to measure it on.

    Parameters
    ----------
    wcs : `~astropy.wcs.WCS` or None

    Returns
    -------
    `~astropy.units.Quantity` or None
    """
    if wcs is None or not wcs.has_celestial:
        return None
    try:
        return pixel_area(wcs)
    except ValueError:
        return None


def needs_pixel_area(unit, target, *, band=None):
    """Whether ``unit`` converts to ``target`` only through a pixel's area: one a surface brightness, the other a
    flux per pixel.  What an error says when an image without a celestial WCS cannot be converted.

    Parameters
    ----------
    unit, target : str or `~astropy.units.UnitBase`
        Linear flux units.
    band : `~bandsynth.bands.Band` or str, optional
        The band, for conversions between per-frequency and per-wavelength flux densities.

    Returns
    -------
    bool

    Examples
    --------
    >>> needs_pixel_area("MJy / sr", "nanomaggy"), needs_pixel_area("Jy", "nanomaggy")
    (True, False)
    """
    return not _converts(unit, target, band=band) and _converts(unit, target, band=band, pixel_area=1.0 * u.arcsec**2)


def needs_wavelength(unit, target):
    """Whether ``unit`` converts to ``target`` only at a band's wavelength: a flux per wavelength and one per
    frequency.  What an error says when a conversion fails for want of a known band.

    Parameters
    ----------
    unit, target : str or `~astropy.units.UnitBase`
        Linear flux units.

    Returns
    -------
    bool

    Examples
    --------
    >>> needs_wavelength("erg / (s cm2 Angstrom)", "nanomaggy"), needs_wavelength("Jy", "nanomaggy")
    (True, False)
    """
    return not _converts(unit, target) and _converts(unit, target, band="r")  # any band's wavelength tells


def _converts(unit, target, **context):
    """Whether `conversion_factor` converts ``unit`` to ``target`` with this band or pixel area."""
    try:
        conversion_factor(unit, target, **context)
        return True
    except (u.UnitsError, ValueError):
        return False


def to_unit(data, unit, target, *, band=None, path=None, pixel_area=None, uncertainty=None):
    """Convert pixel values from ``unit`` to ``target``: the package's one conversion path.

    Parameters
    ----------
    data : array_like
        Pixel values in ``unit``.
    unit, target : str or `~astropy.units.UnitBase`
        Flux per pixel (nanomaggies, maggies, Jy, erg/s/cm2/Hz or /Å, ...),
        surface brightness (those per solid angle), or AB magnitudes per pixel
        (``u.ABmag``, ``"mag(AB)"``).
    band : `~bandsynth.bands.Band` or str, optional
        Band whose effective wavelength converts between per-frequency and
        per-wavelength flux densities; it also names the band in error messages.
    path : str, optional
        File the data came from, named in error messages.
    pixel_area : `~astropy.units.Quantity`, optional
        Solid angle of one pixel, to convert between flux per pixel and surface
        brightness.
    uncertainty : array_like, optional
        Standard deviation of ``data`` in ``unit``; when given it is converted too
        (to first order for magnitudes) and a pair is returned.

    Returns
    -------
    converted : `numpy.ndarray`
        ``data`` in ``target`` (float64, or the input's float dtype for linear units).
        With ``uncertainty``, the pair ``(converted, converted_uncertainty)``.

    Raises
    ------
    astropy.units.UnitConversionError
        The units are not convertible (the message names the band and file).

    Examples
    --------
    >>> import astropy.units as u
    >>> to_unit([22.5, 20.0], u.ABmag, "nanomaggy").round(6).tolist()
    [1.0, 10.0]
    >>> round(float(to_unit(1.0, "nanomaggy / arcsec2", "MJy / sr")), 4)
    0.1545
    """
    unit, target = parse_unit(unit), parse_unit(target)
    data = np.asarray(data)
    if not np.issubdtype(data.dtype, np.floating):
        data = data.astype(float)
    sigma = None if uncertainty is None else np.asarray(uncertainty)
    if sigma is not None and not np.issubdtype(sigma.dtype, np.floating):
        sigma = sigma.astype(float)
    if unit == target:
        out, out_sigma = data.copy(), None if sigma is None else sigma.copy()
    elif is_magnitude(unit) or is_magnitude(target):
        out, out_sigma = _convert_magnitudes(data, unit, target, sigma, band=band, path=path, pixel_area=pixel_area)
    else:
        factor = conversion_factor(unit, target, band=band, path=path, pixel_area=pixel_area)
        out = data * np.asarray(factor, dtype=data.dtype)
        out_sigma = None if sigma is None else sigma * np.asarray(abs(factor), dtype=sigma.dtype)
    return out if uncertainty is None else (out, out_sigma)


def _convert_magnitudes(data, unit, target, sigma, **where):
    """AB magnitudes per pixel to or from a linear unit (or between magnitude units)."""
    for m in (unit, target):
        if is_magnitude(m) and m != u.ABmag:
            raise u.UnitConversionError(
                f"{_where(where['band'], where['path'])}only AB magnitudes are understood, got {m}"
            )
    ln10 = 0.4 * np.log(10.0)
    if is_magnitude(unit) and is_magnitude(target):
        return data.copy(), None if sigma is None else sigma.copy()
    if is_magnitude(unit):
        flux = flux_from_ab(data)
        out = flux * conversion_factor(u.nmgy, target, **where)
        out_sigma = None if sigma is None else np.abs(out) * ln10 * sigma
        return out, out_sigma
    flux = data * conversion_factor(unit, u.nmgy, **where)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = ab_magnitude(flux)
        out_sigma = None if sigma is None else sigma * conversion_factor(unit, u.nmgy, **where) / (ln10 * np.abs(flux))
    return out, out_sigma
