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

import contextlib
import datetime
import gzip
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits, registry
from astropy.io.fits.connect import is_fits
from astropy.nddata import StdDevUncertainty
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS

from ._io import atomic_path, input_files, writable_path
from .synthetic import SyntheticBand, fits_layout
from .units import parse_unit

__all__ = ["read_synthetic_band", "write_synthetic_band", "identify_synthetic_band", "synthetic_band_writer",
           "SyntheticBandWriter"]

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
    OSError
        The file cannot be read as FITS (truncated, damaged, or not FITS).
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
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hdul = None
        try:  # every HDU read, and its CHECKSUM/DATASUM verified, now
            hdul = fits.open(source, checksum=True)
            len(hdul)
        except (OSError, TypeError, ValueError) as err:  # cut short: "Header missing END card", numpy's "buffer
            if hdul is not None:  # is too small for requested array"
                hdul.close()
            raise OSError(f"cannot read {path!r} as FITS: the file is truncated, damaged or not FITS ({err})") from None
    failed = [w for w in caught if "verification failed" in str(w.message)]
    for w in (w for w in caught if w not in failed):
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if failed:  # astropy's "Checksum verification failed for HDU ..." does not say what it means here
        warnings.warn(f"{path!r} was changed after bandsynth wrote it (its CHECKSUM/DATASUM do not match): its "
                      "provenance (BSPROV) may not describe these pixels", AstropyUserWarning, stacklevel=3)
    with hdul:
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
    path = writable_path(path, overwrite=overwrite, inputs=input_files((sb.provenance or {}).get("inputs")))
    hdul = sb.to_hdulist()
    with atomic_path(path, overwrite=overwrite) as tmp, _open_written(tmp, path) as fh:
        hdul.writeto(fh, checksum=True, output_verify="exception")


def _open_written(tmp, path):
    """``tmp`` open for writing the file ``path`` will be: gzip-compressed for a ``.gz`` name, as astropy writes
    one (the temporary name of an atomic write does not say so)."""
    return gzip.open(tmp, "wb") if _gzipped(path) else open(tmp, "wb")


def _gzipped(path):
    return Path(path).suffix.lower() == ".gz"


# ---------------------------------------------------------------------- writing in strips of rows
@contextlib.contextmanager
def synthetic_band_writer(path, shape, *, uncertainty=True, overwrite=False):
    """Write a synthetic band's FITS file strip by strip of rows, in bounded memory.

    A context manager yielding a `SyntheticBandWriter`: give it every row of the image
    once (`SyntheticBandWriter.write_rows`, image, sigma and mask together), then call
    `SyntheticBandWriter.finish` with the unit, band, provenance and WCS, which may
    depend on the whole image (the provenance counts the masked pixels).  The file is
    the one `SyntheticBand.write` writes for the same band -- same HDUs, headers,
    ``CHECKSUM``/``DATASUM``, float32 pixels -- but no image is ever held whole: the
    rows wait in an anonymous temporary file in the destination folder (the file's
    size again on disk for a while, removed even if the process is killed) and
    `~SyntheticBandWriter.finish` copies them behind the headers, computing the checksums.

    The file is written atomically, under a temporary name then renamed onto ``path``
    when the block ends: if anything in the block raises, nothing is left behind and
    an existing ``path`` is untouched.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    shape : tuple of int
        ``(ny, nx)`` of the image.
    uncertainty : bool, optional
        Whether the file has an ``UNCERT`` HDU (then every strip comes with its sigma).
    overwrite : bool, optional
        Replace an existing file (checked before anything is done).

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    RuntimeError
        The block ended without `SyntheticBandWriter.finish`.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from bandsynth import SyntheticBand
    >>> path = os.path.join(tempfile.mkdtemp(), "mosaic_r_synth.fits")
    >>> with synthetic_band_writer(path, (4, 3)) as out:
    ...     for row in range(0, 4, 2):  # two strips of two rows
    ...         strip = np.full((2, 3), row, dtype=np.float32)
    ...         out.write_rows(row, strip, sigma=0.1 * strip, mask=np.zeros((2, 3), bool))
    ...     out.finish(unit="nanomaggy", band="r")
    >>> SyntheticBand.read(path).data[:, 0]
    array([0., 0., 2., 2.], dtype=float32)
    """
    path = writable_path(path, overwrite=overwrite)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(path, overwrite=overwrite))
        rows = stack.enter_context(tempfile.TemporaryFile(dir=path.parent))
        # the writer goes back to fill in each header's checksums, which a gzip stream cannot: a .gz file is
        # written plain first, then compressed
        plain = stack.enter_context(tempfile.NamedTemporaryFile(dir=path.parent, suffix=".fits")) \
            if _gzipped(path) else None
        writer = SyntheticBandWriter(rows, tmp if plain is None else plain.name, shape, uncertainty=uncertainty)
        yield writer
        if not writer.finished:
            raise RuntimeError(f"{path}: the synthetic band was not finished (SyntheticBandWriter.finish); "
                               "nothing was written")
        if plain is not None:
            with open(plain.name, "rb") as source, _open_written(tmp, path) as out:
                shutil.copyfileobj(source, out, 1 << 20)


class SyntheticBandWriter:
    """The rows of a synthetic band on their way to a FITS file (made by `synthetic_band_writer`).

    Parameters
    ----------
    rows : file object
        Open binary file, read and write, that holds the pixels until `finish`.
    target : str or os.PathLike
        The FITS file `finish` writes.
    shape : tuple of int
        ``(ny, nx)``.
    uncertainty : bool
        Whether strips come with a sigma (written as ``UNCERT``).
    """

    _BLOCK = 2880

    def __init__(self, rows, target, shape, *, uncertainty):
        self.shape = ny, nx = tuple(int(n) for n in shape)
        if len(self.shape) != 2 or min(self.shape) < 1:
            raise ValueError(f"SyntheticBand data must be a non-empty 2-D image, got shape {self.shape}")
        self.uncertainty = bool(uncertainty)
        self.finished = False
        self.n_nonfinite = 0
        self._rows, self._target = rows, target
        self._done = np.zeros(ny, dtype=bool)
        itemsizes = (4, 4, 1) if self.uncertainty else (4, 1)  # PRIMARY, [UNCERT,] MASK
        self._sizes = [ny * nx * k for k in itemsizes]
        padded = [-(-n // self._BLOCK) * self._BLOCK for n in self._sizes]
        self._starts = [sum(padded[:i]) for i in range(len(padded))]
        rows.truncate(sum(padded))  # zeros: the FITS padding of every data unit

    def write_rows(self, row, data, sigma=None, mask=None):
        """Rows ``row`` to ``row + len(data)`` of the image, its sigma and its mask.

        As in a `~bandsynth.SyntheticBand`, pixels whose value or sigma is not finite
        are masked (`finish` warns about them).

        Parameters
        ----------
        row : int
            The first row.
        data : ndarray of float, shape (k, nx)
        sigma : ndarray of float, shape (k, nx)
            Required with ``uncertainty``, refused without.
        mask : ndarray of bool, shape (k, nx), optional
            True for a bad pixel (default: none).
        """
        ny, nx = self.shape
        data = np.asarray(data)
        if data.dtype.kind != "f":
            raise TypeError(f"SyntheticBand data must be a floating-point array, got {data.dtype}")
        row = int(row)
        if data.ndim != 2 or data.shape[1] != nx or row < 0 or row + data.shape[0] > ny:
            raise ValueError(f"rows {row} to {row + len(data)} of shape {data.shape} do not fit an image of "
                             f"shape {self.shape}")
        if (sigma is None) == self.uncertainty:
            raise ValueError("sigma is required with uncertainty=True and refused without")
        bad = np.zeros(data.shape, bool) if mask is None else np.array(mask, dtype=bool)
        if bad.shape != data.shape:
            raise ValueError(f"mask has shape {bad.shape}, expected the strip's shape {data.shape}")
        nonfinite = ~np.isfinite(data)
        if sigma is not None:
            sigma = np.asarray(sigma)
            if sigma.shape != data.shape:
                raise ValueError(f"sigma has shape {sigma.shape}, expected the strip's shape {data.shape}")
            if np.any(sigma < 0):
                raise ValueError("SyntheticBand uncertainty (a standard deviation) has negative values")
            nonfinite |= ~np.isfinite(sigma)
        self.n_nonfinite += int(np.count_nonzero(nonfinite & ~bad))
        bad |= nonfinite
        parts = [(data, ">f4"), (sigma, ">f4"), (bad, "u1")] if self.uncertainty else [(data, ">f4"), (bad, "u1")]
        for (array, dtype), start in zip(parts, self._starts):
            array = np.ascontiguousarray(array, dtype=dtype)
            self._rows.seek(start + row * nx * array.itemsize)
            self._rows.write(array.view(np.uint8).data)
        self._done[row : row + data.shape[0]] = True

    def finish(self, *, unit, band=None, provenance=None, wcs=None):
        """Write the FITS file: headers (as `~bandsynth.SyntheticBand.to_hdulist`), pixels, checksums.

        Parameters
        ----------
        unit : str or `~astropy.units.UnitBase`
            Flux unit of the image.
        band : str or `~bandsynth.bands.Band`, optional
            The predicted band (else taken from the provenance).
        provenance : mapping, optional
            As for `~bandsynth.SyntheticBand`.
        wcs : `~astropy.wcs.WCS`, optional

        Raises
        ------
        ValueError
            Some rows were never written.
        """
        missing = np.flatnonzero(~self._done)
        if missing.size:
            raise ValueError(f"{missing.size} row(s) of the synthetic band were not written (first: row {missing[0]})")
        hdul = fits_layout(self.shape, unit=unit, band=band, provenance=provenance, wcs=wcs,
                           uncertainty=self.uncertainty, mask=True)
        hdul.verify("exception")
        if self.n_nonfinite:
            warnings.warn(f"synthetic band {hdul[0].header['BSBAND']!r}: {self.n_nonfinite} pixel(s) with a "
                          "non-finite value or uncertainty are masked", AstropyUserWarning, stacklevel=2)
        buffer = memoryview(bytearray(self._BLOCK * 2048))
        with open(self._target, "r+b") as out:
            for hdu, start, size in zip(hdul, self._starts, self._sizes):
                header = hdu.header
                stamp = datetime.datetime.now().isoformat()[:19]  # as astropy's add_checksum
                header["DATASUM"] = ("0", f"data unit checksum updated {stamp}")
                header.set("CHECKSUM", "0" * 16, f"HDU checksum updated {stamp}", before="DATASUM")
                at = out.tell()
                out.write(header.tostring().encode("ascii"))
                datasum, left = 0, -(-size // self._BLOCK) * self._BLOCK
                self._rows.seek(start)
                while left:
                    n = self._rows.readinto(buffer[: min(left, len(buffer))])
                    datasum = _ones_complement_sum(buffer[:n], datasum)
                    out.write(buffer[:n])
                    left -= n
                header["DATASUM"] = str(datasum)
                checksum = _ones_complement_sum(header.tostring().encode("ascii"), datasum)
                header["CHECKSUM"] = _encode_checksum(~checksum & 0xFFFFFFFF)
                end = out.tell()
                out.seek(at)
                out.write(header.tostring().encode("ascii"))
                out.seek(end)
        self.finished = True


# The FITS checksum by hand: astropy computes DATASUM/CHECKSUM only over an HDU's data held in
# memory (its encoder is private), and the point of the strip writer is never to hold it.
def _ones_complement_sum(buffer, total=0):
    """32-bit ones' complement sum of big-endian words (the FITS checksum), added to ``total``."""
    total += int(np.frombuffer(buffer, dtype=">u4").sum(dtype=np.uint64))
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


_EXCLUDED = frozenset(b":;<=>?@[\\]^_`")  # punctuation the ASCII-encoded checksum avoids


def _encode_checksum(value):
    """The 16 characters of a ``CHECKSUM`` value (FITS standard, Appendix J: ASCII encoding)."""
    chars = [0] * 16
    for i in range(4):
        byte = (value >> (24 - 8 * i)) & 0xFF
        quotient, remainder = byte // 4 + ord("0"), byte % 4
        ch = [quotient + remainder, quotient, quotient, quotient]
        changed = True
        while changed:
            changed = False
            for j in (0, 2):
                while ch[j] in _EXCLUDED or ch[j + 1] in _EXCLUDED:
                    ch[j], ch[j + 1] = ch[j] + 1, ch[j + 1] - 1
                    changed = True
        for j in range(4):
            chars[4 * j + i] = ch[j]
    return bytes(chars[(i + 15) % 16] for i in range(16)).decode("ascii")

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
