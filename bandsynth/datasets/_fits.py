"""FITS and path helpers shared by the data-set loaders (errors name the file).

A private module: its functions are for `bandsynth.datasets` only.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

from .errors import DataFormatError

__all__ = ["as_path", "open_fits", "read_section"]


def as_path(path) -> Path:
    """``path`` as a `~pathlib.Path` of an existing file (TypeError, FileNotFoundError, IsADirectoryError)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected a file path (str or os.PathLike), got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, expected a file")
    return path


def open_fits(path) -> fits.HDUList:
    """Open a FITS file, parse every header and check that no data is cut off.

    astropy only warns about truncated files (and fails later, when the data
    is touched), so the check is made here, up front, from the header sizes.
    Data stay on disk (memory-mapped) until a loader slices them.
    """
    path = as_path(path)
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
    with open(path, "rb") as fh:
        compressed = fh.read(2) == b"\x1f\x8b"
    if compressed:  # the HDU sizes are of the decompressed stream, not of the file: check the stream's end
        from .._io import gzip_problem

        problem = gzip_problem(path)
        if problem:
            raise DataFormatError(f"{path}: the file is truncated or damaged ({problem})")
        return
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


def read_section(hdu, index, path: Path):
    """Read ``hdu.section[index]`` as float64, naming the file on failure."""
    try:
        return np.asarray(hdu.section[index], dtype=float)
    except Exception as exc:
        raise DataFormatError(f"{path}: cannot read data of HDU {hdu.name!r} ({exc})") from exc
