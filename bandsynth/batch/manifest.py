"""The galaxies of a batch: manifests, folder scans and lists, and the ids that name outputs.

Part of `bandsynth.batch`; import the public names from there.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning

from .report import report_row

__all__ = ["read_manifest", "normalise_items", "id_problem"]

_MAX_ID_LENGTH = 200


# ---------------------------------------------------------------------- names
def id_problem(galaxy):
    """Why ``galaxy`` cannot name an output file, or None.

    Parameters
    ----------
    galaxy : str
        A galaxy id, to be used in the output file name.

    Returns
    -------
    str or None
        The reason (empty id, longer than 200 characters, a path separator or
        an absolute path, a leading ``.``, control characters), or None when the
        id is safe.
    """
    if not isinstance(galaxy, str) or not galaxy.strip():
        return "empty galaxy id"
    if len(galaxy) > _MAX_ID_LENGTH:
        return f"galaxy id is longer than {_MAX_ID_LENGTH} characters"
    if "/" in galaxy or "\\" in galaxy or os.path.isabs(galaxy):
        return f"galaxy id {galaxy!r} contains a path separator; it must not name a path outside the output folder"
    if galaxy.startswith("."):
        return f"galaxy id {galaxy!r} starts with '.'; ids must not name hidden files or parent folders"
    if any(ord(c) < 32 or ord(c) == 127 for c in galaxy):
        return f"galaxy id {galaxy!r} contains control characters"
    return None


# ---------------------------------------------------------------------- inputs
def _band_columns(colnames, what):
    """Map band name -> column for the columns that name a band (others are ignored)."""
    from ..bands import get_band

    found = {}
    for name in colnames:
        if name.lower() in ("id", "file"):
            continue
        try:
            band = get_band(name).name
        except ValueError:
            continue
        if band in found:
            raise ValueError(f"{what}: columns {found[band]!r} and {name!r} both name band {band}")
        found[band] = name
    return found


def _cell(value):
    """A table cell as a stripped string, '' when masked or empty."""
    if value is None or value is np.ma.masked or (isinstance(value, np.ma.MaskedArray) and value.mask.all()):
        return ""
    return str(value).strip()


def read_manifest(manifest, *, bands, base_dir=None, fewer_bands_hint=""):
    """Galaxies of a manifest: ``(items, problems)``.

    The manifest (ECSV, or any table `astropy.table.Table.read` understands)
    has an ``id`` column and either one column per band (named by any alias of
    the band, e.g. ``NUV``, ``K``) holding one FITS file per band, or a
    ``file`` column holding a multi-extension file whose image HDUs are named
    after their bands (``EXTNAME``); a row may use either.  ``FILE[EXT]`` in a
    band's column reads one HDU of a file (by EXTNAME or number).  Relative paths
    are resolved against the manifest's folder (``base_dir`` for a Table).  Other
    columns are ignored.

    Parameters
    ----------
    manifest : str, os.PathLike or `~astropy.table.Table`
    bands : sequence of str
        Bands every galaxy needs (the model's inputs).
    base_dir : str or os.PathLike, optional
        Folder of relative paths (default: the manifest's folder, or the
        current folder for a Table).
    fewer_bands_hint : str
        Added to the error of a manifest without columns for some bands: how the caller
        names fewer bands (an any-band model's ``inputs=`` / ``--input-bands``).

    Returns
    -------
    items : list of (str, dict or str)
        ``(id, {band: path})`` or ``(id, multi-extension path)``, absolute paths.
    problems : list of dict
        Report rows (status ``"failed"``) of rows that cannot be used: empty
        id, missing band file.

    Raises
    ------
    ValueError
        The table cannot be read, has no ``id`` column, or no column for a
        needed band (and no ``file`` column).

    Examples
    --------
    >>> from astropy.table import Table
    >>> t = Table({"id": ["g1", "g2"], "NUV": ["g1_nuv.fits", "g2_nuv.fits"], "K": ["g1_k.fits", ""]})
    >>> items, problems = read_manifest(t, bands=["NUV", "Ks"], base_dir="/data")
    >>> items
    [('g1', {'NUV': '/data/g1_nuv.fits', 'Ks': '/data/g1_k.fits'})]
    >>> problems[0]["galaxy"], problems[0]["error"]
    ('g2', 'no file for band Ks in the manifest')
    """
    from ..bands import get_band

    table, what, base = _read_table(manifest, base_dir)
    needed = [get_band(b).name for b in bands]
    lower = {name.lower(): name for name in table.colnames}
    if "id" not in lower:
        one = len(table.colnames) == 1 and len(table.colnames[0].split()) > 1
        raise ValueError(f"{what} has no 'id' column (columns: {', '.join(map(repr, table.colnames))})"
                         + ("; a CSV file separates its columns with commas" if one else ""))
    id_col, file_col = lower["id"], lower.get("file")
    columns = _band_columns(table.colnames, what)
    unread = [f"{columns[b]!r} (band {b})" for b in columns if b not in needed]
    if unread:  # as predict's --input of such a band: said, not silently dropped
        warnings.warn(f"{what}: the model reads {', '.join(needed)} only; column{'s' if len(unread) > 1 else ''} "
                      f"{', '.join(unread)} not read", AstropyUserWarning, stacklevel=3)
    missing = [b for b in needed if b not in columns]
    if missing and file_col is None:
        raise ValueError(
            f"{what} has no column for band(s) {', '.join(missing)} (columns: {', '.join(table.colnames)}); "
            f"the model needs {', '.join(needed)}: add one column per band, or a 'file' column of "
            f"multi-extension files{fewer_bands_hint}"
        )

    def absolute(text):
        return os.path.abspath(base / os.path.expanduser(text))

    items, problems = [], []
    for n, row in enumerate(table, start=1):
        galaxy = _cell(row[id_col])
        if not galaxy:
            problems.append(report_row(f"(row {n})", "failed", error=f"{what} row {n} has an empty id"))
            continue
        single = _cell(row[file_col]) if file_col else ""
        cells = {b: _cell(row[columns[b]]) for b in needed if b in columns}
        if single:
            if any(cells.values()):
                problems.append(report_row(galaxy, "failed", file=single,
                                           error="the row gives both a multi-extension 'file' and per-band files"))
                continue
            items.append((galaxy, absolute(single)))
            continue
        lacking = [b for b in needed if not cells.get(b)]
        if lacking:  # one row per galaxy, as the report promises
            problems.append(report_row(galaxy, "failed", band=",".join(lacking),
                                       error=f"no file for {_bands(lacking)} in the manifest"))
        else:
            items.append((galaxy, {b: absolute(cells[b]) for b in needed}))
    return items, problems


def _read_table(manifest, base_dir):
    """``(table, how to name it in messages, folder of its relative paths)`` of a manifest."""
    if isinstance(manifest, Table):
        table, what = manifest, "manifest table"
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    elif isinstance(manifest, (str, os.PathLike)):
        path = Path(manifest)
        what = f"manifest {str(path)!r}"
        if not path.is_file():
            raise FileNotFoundError(f"{what} not found")
        try:
            table = Table.read(path, format="ascii.ecsv") if path.suffix.lower() == ".ecsv" else Table.read(path)
        except Exception as err:  # astropy raises many types for malformed tables
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]  # not astropy's table of formats
            raise ValueError(f"{what} cannot be read as a table ({reason}); expected a CSV, ECSV or FITS table "
                             "with an 'id' column and a column of file names per band") from err
        base = Path(base_dir) if base_dir is not None else path.resolve().parent
    else:
        raise TypeError(f"manifest must be a path or an astropy Table, got {type(manifest).__name__}")
    return table, what, base


def _bands(names):
    """``band r`` or ``bands r, Ks``."""
    return f"band{'s' if len(names) > 1 else ''} {', '.join(names)}"


def _from_scan(scan, needed):
    """Items and report rows of a `~bandsynth.datasets.folder.FolderScan`."""
    items, rows, failed = [], [], {}
    known = set(scan.ids) | set(scan.incomplete)
    for p in scan.problems:
        galaxy, band, file, error = str(p["id"]), str(p["band"]), str(p["file"]), str(p["error"])
        # a galaxy's file of a band it needs, or its one file of every band (a pattern without {band}): failed
        if (galaxy in known and band in needed) or (galaxy and not band):
            failed.setdefault(galaxy, []).append((band, file, error))
        else:
            rows.append(report_row(galaxy, "ignored", band=band, file=file, error=error))
    for galaxy, problems in failed.items():  # one row per galaxy, as the report promises
        missing = [band for band, file, _ in problems if band and not file]
        errors = [error for band, file, error in problems if file or not band]
        if missing:
            errors.append(f"object {galaxy!r} has no usable file for {_bands(missing)}")
        rows.append(report_row(galaxy, "failed", band=",".join(dict.fromkeys(b for b, _, _ in problems if b)),
                               file=",".join(f for _, f, _ in problems if f), error="; ".join(errors)))
    bad = set(failed)
    for galaxy in scan.ids:
        if galaxy not in bad:
            files = scan.files[galaxy]
            items.append((galaxy, {b: os.path.abspath(files[b]) for b in needed}))
    return items, rows


def normalise_items(items, needed, base_dir, *, fewer_bands_hint=""):
    """``(items, rows)`` from any accepted form of ``items``.

    Parameters
    ----------
    items : str, os.PathLike, `~astropy.table.Table`, `~bandsynth.datasets.folder.FolderScan` or iterable
        A manifest path or table (read with :func:`read_manifest`), a folder
        scan, or ``(id, {band: path})`` / ``(id, multi-extension path)`` pairs (the
        latter also as ``(id, {"file": path})``, the name of a manifest's column).
    needed : sequence of str
        Bands every galaxy needs (the model's inputs, registry names).
    base_dir : str, os.PathLike or None
        Folder of relative paths in a manifest (see :func:`read_manifest`).
    fewer_bands_hint : str
        As for :func:`read_manifest`.

    Returns
    -------
    items : list of (str, dict or str)
        ``(id, {band: path})`` with exactly the ``needed`` bands, or
        ``(id, multi-extension path)``; absolute paths.
    rows : list of dict
        Report rows (:func:`~bandsynth.batch.report.report_row`) of galaxies
        that cannot be used (status ``"failed"``) and, for a folder scan, of
        files that are not used (status ``"ignored"``).

    Raises
    ------
    TypeError
        ``items`` or one of its entries has an unsupported form.
    """
    from ..datasets.folder import FolderScan

    if isinstance(items, (str, os.PathLike, Table)):
        return read_manifest(items, bands=needed, base_dir=base_dir, fewer_bands_hint=fewer_bands_hint)
    if isinstance(items, FolderScan):
        return _from_scan(items, needed)
    if isinstance(items, Mapping) or not isinstance(items, Iterable):
        raise TypeError(
            "items must be a manifest path, an astropy Table, a FolderScan or a list of "
            f"(id, {{band: path}}) pairs, got {type(items).__name__}"
        )
    out, rows = [], []
    for n, entry in enumerate(items):
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
            raise TypeError(f"items[{n}] must be an (id, {{band: path}}) pair, got {entry!r}")
        galaxy, files = entry
        galaxy = str(galaxy)
        if isinstance(files, Mapping) and set(files) == {"file"}:  # as a manifest's "file" column
            files = files["file"]
        if isinstance(files, (str, os.PathLike)):
            out.append((galaxy, os.path.abspath(os.fspath(files))))
            continue
        if not isinstance(files, Mapping):
            raise TypeError(
                f"items[{n}]: files must be a mapping of band to path or one path, got {type(files).__name__}"
            )
        from ..bands import get_band

        try:  # one galaxy's unknown band name fails that galaxy, not the batch
            resolved = {get_band(b).name: os.path.abspath(os.fspath(p)) for b, p in files.items()}
        except ValueError as err:
            rows.append(report_row(galaxy, "failed", error=str(err)))
            continue
        lacking = [b for b in needed if b not in resolved]
        if lacking:
            rows.append(report_row(galaxy, "failed", band=",".join(lacking), error=f"no file for {_bands(lacking)}"))
        else:
            out.append((galaxy, {b: resolved[b] for b in needed}))
    return out, rows
