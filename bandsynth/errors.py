"""Exceptions about inputs that carry the band and the file they concern.

Programs that process many files (`bandsynth.batch`, the command line) read
``err.band`` and ``err.path`` instead of parsing message text.  Each class is also a
subclass of the built-in exception a caller would expect (`ValueError`,
`TypeError`, `FileNotFoundError`, ...), so ``except ValueError`` keeps working.

Examples
--------
>>> import numpy as np
>>> from bandsynth import BandStack, BandInputError
>>> try:
...     BandStack.from_arrays({"r": np.zeros((4, 4))}, unit="nanomaggy")
... except BandInputError as err:
...     print(err.band, err.path)
r None
"""

from __future__ import annotations

import os
import re

import astropy.units as u

__all__ = [
    "BandError",
    "BandInputError",
    "BandTypeError",
    "BandFileError",
    "BandFileNotFoundError",
    "BandUnitError",
    "BandOptionError",
    "HDU_HINT",
]

#: How a reading error names the HDU to read, as `BandStack.from_fits <bandsynth.BandStack.from_fits>` takes it
#: (``hdu={'BAND': 'EXT'}``; groups: band, HDU): interfaces that name an HDU otherwise (``FILE[EXT]``) rewrite it.
HDU_HINT = re.compile(r"hdu=\{'([^']*)': '([^']*)'\}")


_PARAMETERS = """
    Parameters
    ----------
    message : str
        The message (it names the band and file already).
    band : `~bandsynth.bands.Band` or str, optional
        The band concerned; stored as its canonical name.
    path : str or os.PathLike, optional
        The file concerned; stored as a string.

    Attributes
    ----------
    band : str or None
        Canonical name of the band, when known.
    path : str or None
        The file, when the input came from one.
"""


class BandError(Exception):
    """Base class of the errors about one band's input; carries ``band`` and ``path``.

    Parameters
    ----------
    message : str
        The message (it names the band and file already).
    band : `~bandsynth.bands.Band` or str, optional
        The band concerned; stored as its canonical name.
    path : str or os.PathLike, optional
        The file concerned; stored as a string.

    Attributes
    ----------
    band : str or None
        Canonical name of the band, when known.
    path : str or None
        The file, when the input came from one.
    """

    def __init__(self, message, *, band=None, path=None):
        super().__init__(message)
        self.band = None if band is None else str(getattr(band, "name", band))
        self.path = None if path is None else os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else str(path)

    def __reduce__(self):
        # Keyword-only attributes survive pickling (Dask sends errors between processes).
        return type(self), self.args, self.__dict__


class BandInputError(BandError, ValueError):
    """A band's input has a wrong value (shape, unit, pixels, file content)."""


class BandTypeError(BandError, TypeError):
    """A band's input has a wrong type."""


class BandFileError(BandError, OSError):
    """A band's file cannot be read."""


class BandFileNotFoundError(BandFileError, FileNotFoundError):
    """A band's file does not exist."""


class BandUnitError(BandInputError, u.UnitConversionError):
    """A band's unit cannot be converted to the unit asked for."""


class BandOptionError(BandUnitError):
    """An argument given for a band does not apply to its input.

    For example a zero point given for an image that is already in a physical
    unit, or a ``unit=`` its unit cannot be converted to: the call, not the file,
    has to change (the command line exits with its usage-error code).
    """


for _cls in (BandInputError, BandTypeError, BandFileError, BandFileNotFoundError, BandUnitError, BandOptionError):
    _cls.__doc__ = _cls.__doc__ + "\n" + _PARAMETERS
del _cls
