"""Errors raised by the survey-data loaders, and the checks that raise them.

Every loader in :mod:`bandsynth.datasets` reports malformed input with
:class:`DataFormatError`, whose message names the file and what is missing or
wrong.  Files that do not exist raise the usual :class:`FileNotFoundError`.

Examples
--------
>>> from bandsynth.datasets.errors import DataFormatError
>>> issubclass(DataFormatError, ValueError)
True
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

__all__ = ["DataFormatError"]


class DataFormatError(ValueError):
    """A file does not have the layout a loader expects.

    Raised for corrupt or truncated files, missing HDUs or datasets, a band
    absent from a file and inconsistent image shapes.  The message always
    names the offending file.
    """


def _as_path(path) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected a file path (str or os.PathLike), got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, expected a file")
    return path


def _open_fits(path) -> fits.HDUList:
    """Open a FITS file, parse every header and check that no data is cut off.

    astropy only warns about truncated files (and fails later, when the data
    is touched), so the check is made here, up front, from the header sizes.
    Data stay on disk (memory-mapped) until a loader slices them.
    """
    path = _as_path(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(path, memmap=True, lazy_load_hdus=False)
        except Exception as exc:  # astropy raises OSError, TypeError, ValueError...
            raise DataFormatError(f"{path}: not a readable FITS file ({exc})") from exc
    try:
        _check_fits_complete(hdul, path, [str(w.message) for w in caught])
    except Exception:
        hdul.close()
        raise
    return hdul


def _check_fits_complete(hdul, path: Path, notes) -> None:
    size = path.stat().st_size
    if len(hdul) == 0:
        raise DataFormatError(f"{path}: not a readable FITS file (no HDU found)")
    for index, hdu in enumerate(hdul):
        info = hdu.fileinfo()
        end = info["datLoc"] + hdu.size
        if end > size:
            name = hdu.name or f"#{index}"
            raise DataFormatError(
                f"{path}: file is truncated: HDU {name!r} needs {end} bytes but the file has {size}"
            )
    last = hdul[-1].fileinfo()
    tail_start = last["datLoc"] + last["datSpan"]
    if size > tail_start:
        with open(path, "rb") as fh:
            fh.seek(tail_start)
            head = fh.read(8)
        if head.startswith(b"XTENSION"):
            detail = "; ".join(n.splitlines()[0] for n in notes) or "header cut off"
            raise DataFormatError(
                f"{path}: file is truncated or corrupt after HDU #{len(hdul) - 1} "
                f"(an extension header could not be read: {detail})"
            )


def _read_section(hdu, index, path: Path):
    """Read ``hdu.section[index]`` as float64, naming the file on failure."""
    try:
        return np.asarray(hdu.section[index], dtype=float)
    except Exception as exc:
        raise DataFormatError(f"{path}: cannot read data of HDU {hdu.name!r} ({exc})") from exc
