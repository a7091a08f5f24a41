"""Flux units used across bandsynth.

The nanomaggy is the linear flux unit of SDSS and the Legacy Surveys: a source
of 1 nanomaggy has an AB magnitude of 22.5, i.e. ``3.631e-6 Jy``.  It is defined
here once and used by every module that writes or reads images in physical
units.

Examples
--------
>>> import astropy.units as u
>>> from bandsynth.units import nanomaggy, ab_magnitude
>>> (1 * nanomaggy).to(u.Jy)
<Quantity 3.631e-06 Jy>
>>> float(ab_magnitude(1.0))
22.5
"""

from __future__ import annotations

import astropy.units as u
import numpy as np

__all__ = ["nanomaggy", "parse_unit", "ab_magnitude", "flux_from_ab"]

# astropy's own ``nmgy`` is a magnitude-like photometric unit that does not
# convert to Jy, so bandsynth defines a linear flux unit of its own.  It is not
# added to astropy's registry (the name is taken there); use parse_unit to read
# it back from a FITS ``BUNIT``.
nanomaggy = u.def_unit("nanomaggy", 3.631e-6 * u.Jy, doc="SDSS nanomaggy: AB magnitude 22.5")


def parse_unit(text):
    """Parse a unit string, reading ``"nanomaggy"``/``"nmgy"`` as :data:`nanomaggy`.

    Examples
    --------
    >>> parse_unit("nanomaggy") is nanomaggy
    True
    >>> parse_unit("Jy")
    Unit("Jy")
    >>> parse_unit("nanomaggy / arcsec2").bases[0] is nanomaggy
    True
    """
    if isinstance(text, u.UnitBase):
        return text
    if not isinstance(text, str):
        raise TypeError(f"unit must be a string or astropy unit, got {type(text).__name__}")
    if text.strip().lower() in ("nanomaggy", "nanomaggies", "nmgy"):
        return nanomaggy
    parsed = u.Unit(text)
    # Inside a composite ("nanomaggy / arcsec2") astropy reads the name as its own
    # magnitude-like nmgy; the long name always means bandsynth's linear unit.
    if "nanomaggy" in text and isinstance(parsed, u.CompositeUnit):
        bases = [nanomaggy if base == u.nmgy else base for base in parsed.bases]
        parsed = u.CompositeUnit(parsed.scale, bases, parsed.powers)
    return parsed


def ab_magnitude(flux_nanomaggy):
    """AB magnitude of a flux given in nanomaggies (``22.5 - 2.5 log10 f``)."""
    return 22.5 - 2.5 * np.log10(np.asarray(flux_nanomaggy, dtype=float))


def flux_from_ab(magnitude):
    """Flux in nanomaggies of an AB magnitude (inverse of :func:`ab_magnitude`)."""
    return 10.0 ** (-0.4 * (np.asarray(magnitude, dtype=float) - 22.5))
