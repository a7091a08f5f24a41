"""Folders of per-band FITS cut-outs, grouped by object into :class:`~bandsynth.stack.BandStack`.

A folder holds one FITS file per object and band, named by a pattern with an
``{id}`` and a ``{band}`` placeholder, e.g. ``"{id}_{band}.fits"`` for
``g123_nuv.fits``, ``g123_Ks.fits``, or ``"{id}/{band}.fits"`` for one
sub-folder per object -- or one multi-extension file per object holding every
band, ``"{id}.fits"``.  Everything else in the pattern is literal text.
Band strings are resolved by :func:`bandsynth.bands.get_band` (any alias, any
case); when a name can be split in several ways the longest band string that
is a known band wins (``ngc_1_galex_nuv.fits`` -> id ``ngc_1``, band NUV).

:func:`scan_folder` never raises for one bad file: every file that does not
match the pattern, names an unknown band, duplicates another, cannot be read
(corrupt or truncated) or holds no 2-D image is reported in
``scan.problems``, as is every object missing a requested band; the rest is
used.

Examples
--------
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     scan = scan_folder(tmp)
>>> len(scan), len(scan.problems)
(0, 0)
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from types import MappingProxyType

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_area

from ..bands import get_band, sort_bands
from ..resample import METHODS as _REPROJECT_METHODS
from ._fits import open_fits
from .errors import DataFormatError

__all__ = ["FolderScan", "scan_folder", "DataFormatError"]

_PLACEHOLDER = re.compile(r"(\{id\}|\{band\})")


def _natural_key(text):
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", text) if t]


class _Pattern:
    """``{id}``/``{band}`` file-name pattern; everything else literal.  Without ``{band}`` a file holds every band
    of its object (one multi-extension file each, its HDUs named after their bands)."""

    def __init__(self, pattern):
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be a string, got {type(pattern).__name__}")
        parts = _PLACEHOLDER.split(pattern)
        holders = parts[1::2]
        if sorted(holders) not in (["{band}", "{id}"], ["{id}"]):
            raise ValueError(
                "pattern must contain '{id}' once and '{band}' at most once (without it, one multi-extension file "
                f"per object holds every band), got {pattern!r}"
            )
        self.text = pattern
        self.per_object = holders == ["{id}"]
        self.head, self.middle, self.tail = (parts[0], "", parts[2]) if self.per_object else parts[::2]
        self.id_first = holders[0] == "{id}"
        self.nested = "/" in pattern

    def candidates(self, name):
        """Every (id, band) split of ``name``, longest band string first; (id, None) for a per-object pattern."""
        head, mid_lit, tail = self.head, self.middle, self.tail
        if not (name.startswith(head) and name.endswith(tail)):
            return []
        if self.per_object:
            key = name[len(head): len(name) - len(tail)]
            return [(key, None)] if key and "/" not in key else []
        mid = name[len(head): len(name) - len(tail)]
        if len(mid) < len(mid_lit) + 2:
            return []
        if mid_lit:
            cuts = [i for i in range(1, len(mid) - len(mid_lit)) if mid.startswith(mid_lit, i)]
        else:
            cuts = list(range(1, len(mid)))
        out = []
        for i in cuts:
            first, second = mid[:i], mid[i + len(mid_lit):]
            if not second or "/" in first or "/" in second:
                continue
            out.append((first, second) if self.id_first else (second, first))
        return sorted(out, key=lambda pair: -len(pair[1]))


def _resolve(text):
    try:
        return get_band(text)
    except ValueError:
        return None


class FolderScan:
    """Files of a folder grouped by object id and band (see :func:`scan_folder`).

    Made by :func:`scan_folder`; ``len(scan)`` is the number of complete objects,
    ``id in scan`` tells whether ``id`` is one, and iterating yields
    ``(id, BandStack)`` pairs (see :meth:`iter_stacks`).

    Parameters
    ----------
    folder : str or os.PathLike
        The scanned folder.
    pattern : str
        The file-name pattern, with ``{id}`` and (but for one file per object) ``{band}``.
    bands : tuple of str or None
        Requested bands (registry names, by wavelength), or None for all.
    files : mapping
        id -> {band name: path}, for every object found.
    problems : `~astropy.table.Table`
        Problems found while scanning (columns ``file``, ``id``, ``band``,
        ``error``).

    Attributes
    ----------
    folder : pathlib.Path
        The scanned folder.
    pattern : str
        The file-name pattern.
    bands : tuple of str or None
        Requested bands (registry names, by wavelength), or None for "whatever is there".
    ids : tuple of str
        Objects with every requested band (all objects when ``bands`` is None), naturally sorted.
    incomplete : tuple of str
        Objects missing at least one requested band.
    files : mapping
        id -> {band name: path}, for complete and incomplete objects.
    problems : `~astropy.table.Table`
        One row per problem: ``file``, ``id``, ``band``, ``error``.
    """

    def __init__(self, folder, pattern, bands, files, problems):
        self._folder = Path(folder)
        self._pattern = pattern
        self._bands = bands
        self._files = MappingProxyType({k: MappingProxyType(dict(v)) for k, v in files.items()})
        self._problems = problems
        complete, incomplete = [], []
        for key in sorted(files, key=_natural_key):
            missing = bands is not None and any(b not in files[key] for b in bands)
            (incomplete if missing else complete).append(key)
        self._ids, self._incomplete = tuple(complete), tuple(incomplete)

    @property
    def folder(self) -> Path:
        """The scanned folder."""
        return self._folder

    @property
    def pattern(self) -> str:
        """The file-name pattern, with ``{id}`` and (but for one file per object) ``{band}``."""
        return self._pattern

    @property
    def bands(self):
        """Requested bands (registry names, by wavelength), or None for "whatever is there"."""
        return self._bands

    @property
    def ids(self):
        """Objects with every requested band (all objects when ``bands`` is None), naturally sorted."""
        return self._ids

    @property
    def incomplete(self):
        """Objects missing at least one requested band."""
        return self._incomplete

    @property
    def files(self):
        """id -> {band name: path} (read-only), for complete and incomplete objects."""
        return self._files

    @property
    def problems(self) -> Table:
        """One row per problem: ``file``, ``id``, ``band``, ``error`` (a copy)."""
        return self._problems.copy()

    def __len__(self):
        return len(self._ids)

    def __contains__(self, key):
        return key in self._ids

    def __repr__(self):
        return (f"<FolderScan {self._folder} pattern={self._pattern!r}: {len(self._ids)} objects, "
                f"{len(self._incomplete)} incomplete, {len(self._problems)} problems>")

    def __iter__(self):
        """Yield ``(id, BandStack)`` for every complete object, or ``(id, exception)`` if it fails."""
        return self.iter_stacks()

    def iter_stacks(self, *, reproject_to=None, method="auto", unit=None):
        """Like iterating over the scan, with the options of :meth:`stack`.

        Parameters
        ----------
        reproject_to : str, optional
            Band whose grid all others are reprojected onto (see :meth:`stack`).
        method : {"auto", "interp", "exact", "adaptive"}
            Reprojection method (see :meth:`stack`).
        unit : str or `~astropy.units.UnitBase`, optional
            Unit of files without ``BUNIT``, and the unit of the stacks.

        Yields
        ------
        id : str
            Each complete object, in the order of :attr:`ids`.
        stack : `~bandsynth.stack.BandStack` or Exception
            Its stack, or the `DataFormatError`, `OSError` or `ValueError`
            raised while reading it (the iteration goes on).

        Raises
        ------
        ValueError
            Unknown ``method`` (raised on the first ``next()``).
        """
        _check_method(method)
        for key in self._ids:
            try:
                yield key, self.stack(key, reproject_to=reproject_to, method=method, unit=unit)
            except (DataFormatError, OSError, ValueError) as exc:
                yield key, exc

    def stack(self, id, *, reproject_to=None, method="auto", unit=None):
        """Read object ``id`` as one `~bandsynth.stack.BandStack` on one pixel grid.

        Parameters
        ----------
        id : str
            An object id (``scan.ids`` or ``scan.incomplete``).
        reproject_to : str, optional
            Band whose grid all others are reprojected onto.  Default: no
            reprojection when every band shares one grid, else the grid with
            the finest pixels.
        method : {"auto", "interp", "exact", "adaptive"}
            Reprojection method, passed to `BandStack.reproject` (``"auto"``: exact
            onto larger pixels, interpolation onto others).
        unit : str or `~astropy.units.UnitBase`, optional
            Unit of files without ``BUNIT``, and the unit of the stack
            (passed to `BandStack.from_fits`).

        Returns
        -------
        `~bandsynth.stack.BandStack`
            The object's bands, ordered by wavelength, on one pixel grid; its
            ``meta`` records the files, the grid band and which bands were
            reprojected.

        Raises
        ------
        KeyError
            Unknown id.
        DataFormatError
            A file cannot be read, or bands on different grids without a
            celestial WCS to reproject them.
        """
        from ..stack import BandStack

        _check_method(method)
        if id not in self._files:
            raise KeyError(f"no object {id!r} in {self._folder} (known ids: {', '.join(self._ids[:10])}"
                           f"{', ...' if len(self._ids) > 10 else ''})")
        paths = self._files[id]
        if self._bands is not None:
            missing = [b for b in self._bands if b not in paths]
            if missing:
                raise DataFormatError(
                    f"object {id!r} in {self._folder} has no file for band(s) {', '.join(missing)}"
                )
        names = self._bands if self._bands is not None else [b.name for b in sort_bands(list(paths))]
        paths = {b: paths[b] for b in names}
        grids = {band: _grid_info(path) for band, path in paths.items()}
        target = _choose_grid(grids, reproject_to, id)
        reprojected = [] if target is None else [
            b for b in grids if b != target and not _same_grid(grids[b], grids[target])
        ]
        meta = {
            "source": "folder of per-band FITS cut-outs",
            "id": id,
            "folder": str(self._folder),
            "files": {band: str(path) for band, path in paths.items()},
            "grid_band": target,
            "reprojected": reprojected,
            "reproject_method": method if reprojected else None,
        }
        try:
            return BandStack.from_fits(
                {band: str(path) for band, path in paths.items()},
                meta=meta,
                unit=unit,
                reproject_to=target if reprojected else None,
                reproject_kw={"method": method},
            )
        except (OSError, ValueError, TypeError) as exc:
            raise DataFormatError(f"object {id!r} in {self._folder}: {exc}") from exc


def _check_method(method):
    if method not in _REPROJECT_METHODS:
        raise ValueError(f"method must be one of {', '.join(_REPROJECT_METHODS)}, got {method!r}")


def _grid_info(path):
    """(shape, celestial WCS or None) of the first image HDU, checking the file is complete."""
    with open_fits(path) as hdul:
        for hdu in hdul:
            if hdu.is_image and hdu.header.get("NAXIS", 0) >= 2:
                shape = hdu.shape
                if int(np.prod(shape[:-2])) != 1:
                    raise DataFormatError(
                        f"{path}: image HDU {hdu.name!r} has shape {shape}, expected one 2-D image"
                    )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FITSFixedWarning)
                    try:
                        wcs = WCS(hdu.header, naxis=2)
                    except Exception:  # unusable WCS keywords: treated as no WCS
                        wcs = None
                if wcs is not None and not wcs.has_celestial:
                    wcs = None
                return tuple(shape[-2:]), wcs
    raise DataFormatError(f"{path}: no image HDU with data")


def _same_grid(a, b):
    """Whether two (shape, wcs) grids coincide to 0.01 pixel (the tolerance of BandStack)."""
    (shape_a, wcs_a), (shape_b, wcs_b) = a, b
    if shape_a != shape_b:
        return False
    if wcs_a is None or wcs_b is None:
        return wcs_a is None and wcs_b is None
    ny, nx = shape_a
    x = np.array([0.0, nx - 1.0, 0.0, nx - 1.0])
    y = np.array([0.0, 0.0, ny - 1.0, ny - 1.0])
    try:
        xb, yb = wcs_b.world_to_pixel(wcs_a.pixel_to_world(x, y))
    except Exception:
        return False
    return bool(np.all(np.hypot(np.asarray(xb) - x, np.asarray(yb) - y) < 0.01))


def _choose_grid(grids, reproject_to, key):
    """Band whose grid the others go onto, or None when they already share one."""
    bands = list(grids)
    if reproject_to is not None:
        target = get_band(reproject_to).name
        if target not in grids:
            raise ValueError(f"reproject_to={reproject_to!r}: object {key!r} has no band {target!r} "
                             f"(bands: {', '.join(bands)})")
    elif all(_same_grid(grids[bands[0]], g) for g in grids.values()):
        return None
    else:
        target = None
    no_wcs = [b for b, (_shape, wcs) in grids.items() if wcs is None]
    if no_wcs:
        raise DataFormatError(
            f"object {key!r}: bands are on different grids but {', '.join(no_wcs)} "
            f"{'has' if len(no_wcs) == 1 else 'have'} no celestial WCS to reproject with"
        )
    if target is None:  # finest pixels; the bluest band on ties
        order = [b.name for b in sort_bands(bands)]
        area = {b: proj_plane_pixel_area(grids[b][1].celestial) for b in order}
        target = min(order, key=lambda b: (float(f"{area[b]:.6e}"), order.index(b)))
    return target


def _readable(path, key, band, problem):
    """Whether ``path`` opens as FITS with an image; else reported by ``problem``."""
    try:
        _grid_info(path)
    except (DataFormatError, OSError) as exc:
        problem(path, key, band, str(exc))
        return False
    return True


def scan_folder(folder, pattern="{id}_{band}.fits", *, bands=None, check=True):
    """Group the per-band FITS files of ``folder`` by object id.

    Parameters
    ----------
    folder : str or os.PathLike
    pattern : str
        File name pattern with ``{id}`` and ``{band}``; may contain ``/`` to
        match files in sub-folders.  Without ``{band}`` (``"{id}.fits"``) each
        object is one multi-extension file holding every band, each band read
        from the HDU its ``EXTNAME`` or header names (`bandsynth.BandStack.from_fits`).
    bands : sequence of str, optional
        Bands every object must have; other bands are ignored.  Default: all
        (required without ``{band}``).
    check : bool
        Open every matching file (headers only) to report unreadable,
        truncated or image-less files now rather than when stacking.

    Returns
    -------
    FolderScan

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from astropy.io import fits
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     for name in ("g1_nuv.fits", "g1_Ks.fits", "g2_nuv.fits"):
    ...         fits.writeto(Path(tmp, name), np.zeros((8, 8)))
    ...     _ = Path(tmp, "notes.txt").write_text("x")
    ...     scan = scan_folder(tmp, bands=["NUV", "K"])
    >>> scan.ids, scan.incomplete
    (('g1',), ('g2',))
    >>> row = scan.problems[0]
    >>> print(Path(row["file"]).name, "->", row["error"])
    notes.txt -> does not match pattern {id}_{band}.fits
    """
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a path, got {type(folder).__name__}")
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a directory")
    pat = _Pattern(pattern)
    wanted = None
    if bands is not None:
        if isinstance(bands, str):
            bands = [bands]
        wanted = tuple(b.name for b in sort_bands(bands))
    elif pat.per_object:
        raise ValueError(f"pattern {pattern!r} has no '{{band}}' (one multi-extension file per object): "
                         "pass bands= (the bands to read from each file)")
    rows = []

    def problem(path, key, band, error):
        rows.append((str(path), key or "", band or "", error))

    candidates = folder.rglob("*") if pat.nested else folder.iterdir()
    files = {}
    for path in sorted(candidates, key=lambda p: _natural_key(p.as_posix())):
        rel = path.relative_to(folder).as_posix()
        if not path.is_file() or any(part.startswith(".") for part in Path(rel).parts):
            continue
        splits = pat.candidates(rel)
        if not splits:
            problem(path, None, None, f"does not match pattern {pat.text}")
            continue
        if pat.per_object:  # every band from this file, each from its own HDU (BandStack.from_fits)
            key = splits[0][0]
            if key in files:
                problem(path, key, None, f"duplicate: object {key!r} is already {next(iter(files[key].values()))}")
            elif not check or _readable(path, key, None, problem):
                files[key] = dict.fromkeys(wanted, path)
            continue
        found = next(((k, t, b) for k, t in splits if (b := _resolve(t)) is not None), None)
        if found is None:
            key, text = splits[0]
            problem(path, key, text, f"unknown band {text!r}")
            continue
        key, _text, band = found
        if wanted is not None and band.name not in wanted:
            continue
        group = files.setdefault(key, {})
        if band.name in group:
            earlier = group[band.name].name
            problem(path, key, band.name, f"duplicate: band {band.name} of {key!r} is already {earlier}")
            continue
        if check and not _readable(path, key, band.name, problem):
            if not group:
                del files[key]
            continue
        group[band.name] = path
    if wanted is not None:
        for key in sorted(files, key=_natural_key):
            for band in wanted:
                if band not in files[key]:
                    problem("", key, band, f"object {key!r} has no usable file for band {band}")
    table = Table(rows=rows or None, names=("file", "id", "band", "error"),
                  dtype=(str, str, str, str))
    return FolderScan(folder, pat.text, wanted, files, table)
