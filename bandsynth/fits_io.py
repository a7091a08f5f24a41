"""FITS reading and writing of `~bandsynth.SyntheticBand`, through `astropy.io.registry`.

The ``"fits"`` format is registered for `~bandsynth.SyntheticBand` (reader, writer
and identifier), so the `~astropy.nddata.NDIOMixin` methods work as for any NDData:
``SyntheticBand.read(path)``, ``SyntheticBand.read(path, format="fits")``,
``sb.write(path, overwrite=True)``; ``SyntheticBand.read.help("fits")`` shows the
options.  The file format itself (the header of the primary HDU, ``UNCERT`` and
``MASK``) is made by `SyntheticBand.to_hdulist`; a file written here is also read by
`astropy.nddata.CCDData.read` with the same unit.

Importing `bandsynth` registers the format.

Examples
--------
>>> import os, tempfile
>>> import numpy as np
>>> from bandsynth import SyntheticBand
>>> sb = SyntheticBand(np.eye(4, dtype=np.float32), unit="nanomaggy", band="r")
>>> path = os.path.join(tempfile.mkdtemp(), "g123_r_synth.fits")
>>> sb.write(path)
>>> back = SyntheticBand.read(path, format="fits")
>>> bool(np.array_equal(back.data, sb.data)), back.unit == sb.unit
(True, True)
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
from astropy.io import fits, registry
from astropy.io.fits.connect import is_fits
from astropy.nddata import StdDevUncertainty
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS

from ._io import atomic_path
from .synthetic import SyntheticBand
from .units import parse_unit

__all__ = ["read_synthetic_band", "write_synthetic_band", "identify_synthetic_band"]

_WCS_KEYS = ("CTYPE1", "CRPIX1", "CRVAL1", "CDELT1", "CD1_1", "PC1_1")


def read_synthetic_band(path):
    """Read a file written by `write_synthetic_band` (data, uncertainty, mask, WCS, unit, provenance).

    The data and uncertainty are read bit-exactly as float32.

    Parameters
    ----------
    path : str, os.PathLike or file-like
        The FITS file (or the file opened by `astropy.io.registry`).

    Returns
    -------
    sb : `~bandsynth.SyntheticBand`
        The synthetic band.

    Raises
    ------
    TypeError
        ``path`` is not a path.
    FileNotFoundError
        No such file.
    ValueError
        Not a bandsynth synthetic band (no ``BSPROV`` keyword or no image), or a
        broken one (invalid provenance, no ``BUNIT``, an ``UNCERT`` that is not a
        standard deviation).
    """
    source = path
    if hasattr(path, "read"):  # the registry hands over the file it opened to identify the format
        path = os.fsdecode(getattr(path, "name", "<file object>"))
    else:
        try:
            path = source = os.fspath(path)
        except TypeError:
            raise TypeError(f"read: path must be a str or os.PathLike, got {type(path).__name__}") from None
        if not os.path.isfile(path):
            raise FileNotFoundError(f"synthetic band file {path!r} not found")
    with fits.open(source, checksum=True) as hdul:
        primary = hdul[0]
        header = primary.header
        if "BSPROV" not in header or primary.data is None:
            raise ValueError(f"{path!r} is not a bandsynth synthetic band (no image with a BSPROV provenance keyword)")
        try:
            provenance = json.loads(header["BSPROV"])
        except ValueError as err:
            raise ValueError(f"{path!r}: BSPROV is not valid JSON: {err}") from None
        if "BUNIT" not in header:
            raise ValueError(f"{path!r}: the primary HDU has no BUNIT")
        try:
            unit = parse_unit(header["BUNIT"])
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{path!r} BUNIT: {header['BUNIT']!r} is not a unit astropy understands ({err})"
            ) from None
        data = np.array(primary.data, dtype=np.float32)  # native byte order, bit-exact
        wcs = None
        if any(key in header for key in _WCS_KEYS):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AstropyUserWarning)  # FITSFixedWarning on harmless fixes
                wcs = WCS(header, relax=True)
        uncertainty = mask = None
        if "UNCERT" in hdul:
            utype = hdul["UNCERT"].header.get("UTYPE", "StdDevUncertainty")
            if utype != "StdDevUncertainty":
                raise ValueError(f"{path!r}: UNCERT holds a {utype}, expected a StdDevUncertainty")
            uncertainty = StdDevUncertainty(np.array(hdul["UNCERT"].data, dtype=np.float32))
        if "MASK" in hdul:
            mask = np.array(hdul["MASK"].data).astype(bool)
    return SyntheticBand(data, uncertainty=uncertainty, mask=mask, wcs=wcs, unit=unit, provenance=provenance)


def write_synthetic_band(sb, path, *, overwrite=False):
    """Write ``sb`` as a FITS archive file, atomically.

    The file (`SyntheticBand.to_hdulist`, with ``CHECKSUM``/``DATASUM`` in every HDU)
    is written to a temporary file in the same directory and then moved onto
    ``path`` (`os.replace`), so ``path`` never holds a partial file; the temporary
    file is removed if writing fails.  Data and uncertainty are stored as float32.

    Parameters
    ----------
    sb : `~bandsynth.SyntheticBand`
        The synthetic band.
    path : str or os.PathLike
        The file to write.
    overwrite : bool, optional
        Replace an existing file.

    Raises
    ------
    TypeError
        ``path`` is not a path.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from bandsynth import SyntheticBand
    >>> sb = SyntheticBand(np.eye(4, dtype=np.float32), unit="nanomaggy", band="r")
    >>> path = os.path.join(tempfile.mkdtemp(), "g123_r_synth.fits")
    >>> sb.write(path)
    >>> back = SyntheticBand.read(path)
    >>> bool(np.array_equal(back.data, sb.data)), back.provenance == sb.provenance
    (True, True)
    """
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"write: path must be a str or os.PathLike, got {type(path).__name__}") from None
    hdul = sb.to_hdulist()
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        hdul.writeto(fh, checksum=True, output_verify="exception")


def identify_synthetic_band(origin, path, fileobj, *args, **kwargs):
    """Identifier of the ``"fits"`` format for `astropy.io.registry`.

    Parameters
    ----------
    origin : {"read", "write"}
        What the registry is doing.
    path : str or None
        The file's path, when given as one.
    fileobj : file-like or None
        The open file, when reading.
    *args, **kwargs
        The other arguments of ``read``/``write``.

    Returns
    -------
    is_fits : bool
        True when reading a FITS file (by its signature or name), and always when
        writing: FITS is the one format a `~bandsynth.SyntheticBand` is written in.
    """
    if origin == "write":
        return True
    return bool(is_fits(origin, path, fileobj, *args, **kwargs))


registry.register_reader("fits", SyntheticBand, read_synthetic_band, force=True)
registry.register_writer("fits", SyntheticBand, write_synthetic_band, force=True)
registry.register_identifier("fits", SyntheticBand, identify_synthetic_band, force=True)
