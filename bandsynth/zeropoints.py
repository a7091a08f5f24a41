"""Images in counts: photometric zero points, from the header or given, to nanomaggies.

Many survey images are not in a physical unit but in counts (DN, ADU, electrons, or
those per second) with a *zero point*: the AB magnitude of a source whose pixels add
up to one unit, ``m = ZP - 2.5 log10(sum of pixels)``.  Such an image is in
nanomaggies once multiplied by ``10 ** (-0.4 * (ZP - 22.5))``.

:func:`header_zeropoint` reads the zero point where surveys write it (in this order):

========================  ==========================================================
``FLUXMAG0``              HSC / LSST pipelines: counts of a magnitude-0 source (AB)
``PHOTZP`` + ``PHOTSYS``  ESO Phase 3 products (KiDS, VIKING, ...); ``PHOTSYS`` AB or VEGA
``MAGZP``                 2MASS Atlas images: Vega, unless ``MAGSYS``/``PHOTSYS`` says AB
``MAGZERO``, ``ZEROPT``,  generic zero points; AB unless ``MAGSYS``/``PHOTSYS`` says VEGA
``ZP``
``TELESCOP = 'GALEX'``    GALEX intensity maps in counts/s: NUV 20.08, FUV 18.82 AB
                          (Morrissey et al. 2007)
========================  ==========================================================

Vega zero points are put on the AB system with the band's Vega-to-AB offset
(`VEGA_TO_AB`).  A zero point given by the user (``zeropoint=`` in Python,
``--zeropoint BAND=ZP`` on the command line) is an AB magnitude and wins over the
header.

Examples
--------
>>> from astropy.io import fits
>>> header = fits.Header({"BUNIT": "DN", "MAGZP": 20.0})
>>> zp = header_zeropoint(header, "Ks")
>>> round(zp.ab, 2), zp.source
(21.85, 'MAGZP = 20 (Vega) + 1.85 (Vega to AB)')
>>> round(nanomaggy_factor(zp.ab), 4)
1.8197
"""

from __future__ import annotations

from typing import NamedTuple

import astropy.units as u
import numpy as np

from .errors import BandOptionError, BandUnitError

__all__ = [
    "Zeropoint",
    "VEGA_TO_AB",
    "COUNT_UNITS",
    "is_count_unit",
    "header_zeropoint",
    "stated_zeropoint",
    "nanomaggy_factor",
    "apply_zeropoint",
    "with_primary_photometry",
    "PHOTOMETRY_KEYWORDS",
    "PLAUSIBLE_ZEROPOINTS",
]

#: ``m_AB - m_Vega`` per band (looked up by band name or alias): 2MASS from Blanton &
#: Roweis (2007, Table 1); VISTA from the CASU VIRCAM pages (González-Fernández et al. 2018).
VEGA_TO_AB = {
    "2mass_j": 0.91, "2mass_h": 1.39, "2mass_ks": 1.85,
    "vista_z": 0.521, "vista_y": 0.618, "vista_j": 0.937, "vista_h": 1.384, "vista_ks": 1.839,
}

#: Units counted rather than calibrated (alone or per second).
COUNT_UNITS = (u.ct, u.adu, u.DN, u.electron, u.photon)

#: GALEX counts/s of a 0 AB magnitude source (Morrissey et al. 2007, ApJS 173, 682).
GALEX_ZEROPOINTS = {"NUV": 20.08, "FUV": 18.82}
#: AB zero points a survey image can have (one count, DN or ADU -- or one per second -- in total): GALEX FUV's
#: 18.8 to deep stacks' ~35.  Beyond them a zero point is a placeholder (99) or a typo, and the image would
#: come out as zeros or overflow without a word.
PLAUSIBLE_ZEROPOINTS = (10.0, 45.0)

_GENERIC_KEYWORDS = ("MAGZERO", "ZEROPT", "ZP")
#: The keywords a zero point is read from (`header_zeropoint`).
PHOTOMETRY_KEYWORDS = ("FLUXMAG0", "PHOTZP", "PHOTSYS", "MAGSYS", "MAGZP", *_GENERIC_KEYWORDS, "TELESCOP")


class Zeropoint(NamedTuple):
    """A zero point on the AB system and where it came from.

    Attributes
    ----------
    ab : float
        AB magnitude of a source whose pixels add up to one unit of the image.
    source : str
        The header keyword (with its system and any Vega-to-AB offset) or ``"zeropoint="``.
    """

    ab: float
    source: str


def is_count_unit(unit):
    """True when ``unit`` is a count unit (`COUNT_UNITS`), alone or per second.

    Parameters
    ----------
    unit : `~astropy.units.UnitBase` or None

    Returns
    -------
    bool

    Examples
    --------
    >>> import astropy.units as u
    >>> is_count_unit(u.ct / u.s), is_count_unit(u.DN), is_count_unit(u.nmgy)
    (True, True, False)
    """
    if unit is None:
        return False
    return any(unit == c or unit == c / u.s for c in COUNT_UNITS)


def _vega_offset(band):
    from .bands import get_band

    return next((VEGA_TO_AB[n.lower()] for n in get_band(band).names if n.lower() in VEGA_TO_AB), None)


def _finite(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _on_ab(value, system, keyword, band):
    """``value`` (in ``system``) as an AB zero point, or ValueError when Vega has no known offset."""
    shown = f"{keyword} = {value:g}"
    if not system.strip().upper().startswith("VEGA"):  # VEGA, Vega, VEGAMAG
        return Zeropoint(value, f"{shown} (AB)")
    offset = _vega_offset(band)
    if offset is None:
        raise ValueError(f"band {getattr(band, 'name', band)!r}: {shown} is a Vega zero point and bandsynth "
                         "knows no Vega-to-AB offset for this band; pass an AB zeropoint= instead")
    return Zeropoint(value + offset, f"{shown} (Vega) + {offset:g} (Vega to AB)")


def header_zeropoint(header, band):
    """The AB zero point a survey header states for ``band``'s image, or None.

    Parameters
    ----------
    header : mapping
        The image's FITS header (or any mapping of keywords).
    band : `~bandsynth.bands.Band` or str
        The band of the image (for Vega-to-AB offsets and the GALEX zero points).

    Returns
    -------
    `Zeropoint` or None

    Raises
    ------
    ValueError
        The header states a Vega zero point for a band without a known Vega-to-AB offset.
    """
    from .bands import get_band

    header = header or {}
    stated_system = header.get("PHOTSYS", header.get("MAGSYS"))
    system = str(stated_system or "AB")
    flux_mag0 = _finite(header.get("FLUXMAG0"))
    if flux_mag0 is not None and flux_mag0 > 0:
        return Zeropoint(2.5 * np.log10(flux_mag0), f"FLUXMAG0 = {flux_mag0:g} (AB)")
    if _finite(header.get("PHOTZP")) is not None:
        return _on_ab(_finite(header["PHOTZP"]), system, "PHOTZP", band)
    if _finite(header.get("MAGZP")) is not None:
        return _on_ab(_finite(header["MAGZP"]), str(stated_system or "VEGA"), "MAGZP", band)
    for keyword in _GENERIC_KEYWORDS:
        if _finite(header.get(keyword)) is not None:
            return _on_ab(_finite(header[keyword]), system, keyword, band)
    name = get_band(band).name
    if str(header.get("TELESCOP", "")).strip().upper() == "GALEX" and name in GALEX_ZEROPOINTS:
        return Zeropoint(GALEX_ZEROPOINTS[name], f"GALEX {name} counts/s zero point {GALEX_ZEROPOINTS[name]} (AB)")
    return None


def nanomaggy_factor(zeropoint_ab):
    """Factor from image units to nanomaggies for an AB zero point.

    Parameters
    ----------
    zeropoint_ab : float
        AB magnitude of a source whose pixels add up to one image unit.

    Returns
    -------
    float
        ``10 ** (-0.4 * (zeropoint_ab - 22.5))``.

    Examples
    --------
    >>> nanomaggy_factor(22.5), nanomaggy_factor(27.0) == 10 ** -1.8
    (1.0, True)
    """
    return float(10.0 ** (-0.4 * (float(zeropoint_ab) - 22.5)))


def stated_zeropoint(header, band, path):
    """`header_zeropoint` of an image read from ``path``, its errors naming the file.

    Parameters
    ----------
    header : `~astropy.io.fits.Header` or mapping
        The image's header.
    band : `~bandsynth.bands.Band` or None
        Its band (None: no zero point can be read).
    path : str or None
        The file, for the message.

    Returns
    -------
    Zeropoint or None
        As `header_zeropoint`.
    """
    if band is None:
        return None
    try:
        return header_zeropoint(header, band)
    except ValueError as err:
        raise BandUnitError(f"{err} ({path!r})", band=band, path=path) from None


def with_primary_photometry(header, primary):
    """An extension's ``header`` with the zero-point keywords it lacks taken from the file's ``primary`` header.

    HSC coadds state ``FLUXMAG0`` once, in the primary header, for the image in the extension after it
    (the ``INHERIT`` convention); read from the image's header alone the file stated no zero point.

    Parameters
    ----------
    header, primary : `~astropy.io.fits.Header`

    Returns
    -------
    `~astropy.io.fits.Header`
        A copy of ``header``, with those keywords added.
    """
    header = header.copy()
    for key in PHOTOMETRY_KEYWORDS:
        if key not in header and key in primary:
            header[key] = primary[key]
    return header


def apply_zeropoint(band, im, zeropoint=None):
    """Put an image in counts into nanomaggies with its zero point (in place).

    Parameters
    ----------
    band : `~bandsynth.bands.Band`
        The image's band.
    im : `~bandsynth.stack_io.BandImage`
        The image; untouched unless its unit is a count unit
        (`is_count_unit`).
    zeropoint : float, optional
        AB zero point given by the user; default: the one its header states
        (`header_zeropoint`).

    Returns
    -------
    dict or None
        ``{"band", "unit", "zeropoint_ab", "source"}`` when the image was converted.

    Raises
    ------
    BandUnitError
        Counts without a zero point, or with one outside `PLAUSIBLE_ZEROPOINTS`.
    BandOptionError
        A zero point given for an image in a physical unit.
    """
    where = f"band {band.name!r}" + (f" ({im.path!r})" if im.path else "")
    if not is_count_unit(im.unit):
        if zeropoint is not None:
            raise BandOptionError(
                f"{where}: zeropoint= applies to images in counts (DN, ADU, counts/s, ...), but this image "
                f"is in {im.unit}; leave its zero point out",
                band=band, path=im.path,
            )
        return None
    if zeropoint is not None:
        value = _finite(zeropoint)
        if value is None:
            raise BandUnitError(f"{where}: zeropoint must be a finite AB magnitude, got {zeropoint!r}",
                                band=band, path=im.path)
        found = ("zeropoint=", value)
    else:
        stated = stated_zeropoint(im.meta, band, im.path)
        if stated is None:
            raise BandUnitError(
                f"{where} is in {im.unit} and its header states no zero point (FLUXMAG0, PHOTZP, MAGZP, "
                "MAGZERO, ZEROPT, ZP); pass zeropoint= (the AB magnitude of a source of one "
                f"{im.unit} in total)",
                band=band, path=im.path,
            )
        found = (stated.source, stated.ab)
    low, high = PLAUSIBLE_ZEROPOINTS
    if not low <= found[1] <= high:
        given = "zeropoint= gives" if found[0] == "zeropoint=" else f"its header's {found[0]} gives"
        raise BandUnitError(
            f"{where}: {given} an AB zero point of {found[1]:g} mag, outside the {low:g}-{high:g} of survey images "
            f"(the AB magnitude of one {im.unit} in total); check the value"
            + ("" if found[0] == "zeropoint=" else ", or pass zeropoint="),
            band=band, path=im.path,
        )
    factor = np.asarray(nanomaggy_factor(found[1]), dtype=im.data.dtype)
    im.data = im.data * factor
    if im.uncertainty is not None:
        im.uncertainty = im.uncertainty * factor
    record = {"band": band.name, "unit": im.unit.to_string(), "zeropoint_ab": round(found[1], 6), "source": found[0]}
    im.unit = u.nmgy
    return record
