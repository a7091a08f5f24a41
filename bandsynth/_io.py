"""File helpers shared by the modules that read and write files.

A file is written under a temporary name in its destination folder, flushed to
disk and then renamed onto the destination, so a crash never leaves a
half-written file behind and readers see either the old file or the new one.
Where a file is named as text (command line, batch manifests), ``FILE[EXT]``
names one HDU of it (`split_extended_name`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import secrets
import unicodedata
from pathlib import Path

__all__ = ["atomic_path", "input_files", "writable_path", "sha256_file", "gzip_problem", "open_whole_fits", "fits_ascii", "split_extended_name"]

# FILE[EXT]: the FITS extended file name (CFITSIO's) for one HDU of a file, by EXTNAME or number.
_HDU_SUFFIX = re.compile(r"^(?P<path>.+)\[(?P<hdu>[^\[\]]+)\]$")


def input_files(records):
    """Band -> file of the input records a stack's ``meta["inputs"]`` or a prediction's provenance holds.

    Parameters
    ----------
    records : iterable of mapping
        ``{"band", "file", ...}`` records (`~bandsynth.BandStack.from_fits`); others are skipped.

    Returns
    -------
    dict
        The file of each band read from one (None or "" for an array).

    Examples
    --------
    >>> input_files([{"band": "NUV", "file": "g1_nuv.fits", "hdu": 0}, {"band": "Ks", "file": ""}])
    {'NUV': 'g1_nuv.fits', 'Ks': ''}
    """
    return {rec.get("band"): rec.get("file") for rec in records or () if hasattr(rec, "get")}


def writable_path(path, *, overwrite, action="write", inputs=None):
    """``path`` as a `~pathlib.Path` a new file can be written to, checked before any work.

    Parameters
    ----------
    path : str or os.PathLike
    overwrite : bool
        Whether an existing file may be replaced.
    action : str
        What the caller does, for the message of a ``path`` that is not a path.
    inputs : mapping of str to path, optional
        Band -> file the written data were made from: none of them is replaced, even
        with ``overwrite`` (a prediction written over its own input image).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    TypeError, IsADirectoryError, FileExistsError, FileNotFoundError
        Not a path; a folder; an existing file without ``overwrite``, a device or FIFO, or one
        of ``inputs``; a missing folder.
    """
    try:
        path = Path(os.fspath(path))
    except TypeError:
        raise TypeError(f"{action}: path must be a str or os.PathLike, got {type(path).__name__}") from None
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, expected a file name")
    for band, source in (inputs or {}).items():
        if source and path.exists() and os.path.exists(source) and os.path.samefile(path, source):
            raise FileExistsError(f"{str(path)!r} is the input file of band {band!r} itself; write the prediction "
                                  "to another file")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} already exists; pass overwrite=True to replace it")
    if path.exists() and not path.is_file():  # a device or FIFO (or a link to one): a rename would replace it
        raise FileExistsError(f"{str(path)!r} exists and is not a regular file; give the name of a file to write")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"directory {path.parent} for {path.name} does not exist")
    return path


@contextlib.contextmanager
def atomic_path(path, *, overwrite=True):
    """Context manager yielding a temporary path that replaces ``path`` on success.

    The temporary file is created empty with the permissions a normal ``open``
    would give (the umask applies); on error it is removed and ``path`` is left
    untouched.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = writable_path(path, overwrite=overwrite)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sha256_file(path) -> str:
    """Hex SHA-256 of a file, read in chunks.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
        The hexadecimal digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def _gzip_problem(path, size, mtime_ns):
    """Why a gzip file's stream is not whole ('' if it is or the file is not gzip-compressed).

    The stream's end marker is its only sign of being whole, so the file is decompressed to
    its end -- once per file version (``size``, ``mtime_ns``): a command that lists a file's
    bands and then reads them opens it several times.
    """
    import gzip
    import zlib

    with open(path, "rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            return ""
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 24):
                pass
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        return str(err)
    return ""


def gzip_problem(path):
    """Why a gzip-compressed file is cut short or damaged, or ``""`` (whole, or not gzip-compressed).

    Decompressed to its end once per version of the file (its size and modification time).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
    """
    stat = os.stat(path)
    return _gzip_problem(os.path.realpath(path), stat.st_size, stat.st_mtime_ns)


def open_whole_fits(path):
    """`astropy.io.fits.open` of a file that is all there, its HDUs' headers read.

    astropy reads a gzip-compressed file cut short as a file of fewer HDUs without a word,
    and only warns of a plain file cut short; both raise here.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    astropy.io.fits.HDUList

    Raises
    ------
    OSError
        The file cannot be read as FITS, or is truncated.
    """
    import warnings

    from astropy.io import fits

    problem = gzip_problem(path)
    if problem:
        raise OSError(f"the file is truncated or damaged ({problem})")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(path)
        except OSError as err:  # astropy's advice "try with ignore_missing_simple=True" names no argument of ours
            if "ignore_missing_simple" not in str(err):
                raise
            raise OSError(str(err).split(" If this is really a FITS file")[0]) from err
        try:
            len(hdul)  # reads every header (not the data), where a short file shows
        except Exception:
            hdul.close()
            raise
    short = next((w for w in caught if "truncated" in str(w.message)), None)
    if short is not None:
        hdul.close()
        raise OSError(f"the file is truncated ({short.message})")
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return hdul


def fits_ascii(text) -> str:
    """A readable printable-ASCII form of ``text`` for a FITS header value.

    FITS header values must be printable ASCII.  Accents are dropped (``é`` ->
    ``e``), other characters become Python escapes (``Ω`` -> ``\\u03a9``) and
    control characters spaces; keep the exact text elsewhere (bandsynth keeps it
    in the JSON provenance, ``BSPROV``).

    Examples
    --------
    >>> print(fits_ascii("NGC 4486 Ωmega-é_nuv.fits"))
    NGC 4486 \\u03a9mega-e_nuv.fits
    """
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if 32 <= ord(c) < 127 else " " for c in text)


def split_extended_name(name):
    """``FILE[EXT]`` as the file and the HDU it names; any other name as itself and None.

    The FITS extended file name of CFITSIO, which astropy does not read: ``EXT``
    is an EXTNAME or an HDU number.  A file whose own name ends in brackets is
    taken as it is.

    Parameters
    ----------
    name : str or os.PathLike

    Returns
    -------
    path : str
    hdu : int, str or None

    Examples
    --------
    >>> split_extended_name("kv_001.fits.gz[g]")
    ('kv_001.fits.gz', 'g')
    >>> split_extended_name("stack.fits[2]"), split_extended_name("g.fits")
    (('stack.fits', 2), ('g.fits', None))
    """
    name = os.fspath(name)
    match = _HDU_SUFFIX.match(name)
    if match is None or os.path.exists(name):
        return name, None
    hdu = match["hdu"].strip()
    return match["path"], int(hdu) if hdu.isdigit() else hdu
