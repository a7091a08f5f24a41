"""Image data sets on disk: one memory-mapped FITS cube per band plus a manifest.

Layout of a data set directory::

    manifest.ecsv          one row per image: galaxy, view, class, sSFR, B/T, split, fluxes...
                           (table meta: format, version, bands, mode, pixel scale, PSF, unit, ...)
    cube_<band>.fits       PRIMARY: float32 (n_images, ny, nx), BUNIT, BSBAND
    uncert_<band>.fits     same shape: 1-sigma noise (survey-mode data sets only)
    truth_<band>.fits      same shape: noise-free truth on the same grid (survey layer only)
    mask_<band>.fits       same shape, uint8: 1 for a bad pixel (survey layer only)

Cubes are opened memory-mapped, so a data set larger than memory can be
sliced at random.  Data sets are written atomically (into a temporary
directory renamed at the end) and never overwrite an existing one unless
asked to.  :func:`open_dataset` and :func:`bandsynth.datasets.mock.make_dataset`
return objects with one interface (:class:`ImageDataset`): ``bands``,
``manifest``, ``len()``, ``cube(band)``, ``uncertainty_cube(band)``,
``indices(split)``, ``stack(i)``.

Examples
--------
>>> import tempfile, pathlib
>>> from bandsynth.datasets import open_dataset
>>> from bandsynth.datasets.store import write_mock_dataset
>>> out = pathlib.Path(tempfile.mkdtemp()) / "mock"
>>> ds = write_mock_dataset(out, 3, seed=2, bands=["g", "r"], size=16, progress=False)
>>> again = open_dataset(out)
>>> len(again), again.names, again.cube("r").shape
(3, ('g', 'r'), (3, 16, 16))
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..bands import get_band
from ..units import parse_unit
from .base import FORMAT_NAME, FORMAT_VERSION, SPLITS, ImageDataset, build_manifest, progress_bar
from ._fits import open_fits
from .errors import DataFormatError

__all__ = ["ImageDataset", "StoredDataset", "open_dataset", "write_dataset", "write_mock_dataset"]

log = logging.getLogger(__name__)

_MANIFEST = "manifest.ecsv"


def _cube_name(band):
    return f"cube_{band}.fits"


def _check_splits(manifest, manifest_path):
    """Refuse split labels other than `SPLITS` (a 'val' image was in no split at all)."""
    unknown = sorted({str(label) for label in manifest["split"]} - set(SPLITS))
    if unknown:
        raise DataFormatError(f"{manifest_path}: unknown split label(s) {', '.join(map(repr, unknown))} in the "
                              f"'split' column; expected {', '.join(map(repr, SPLITS))}")


def _uncert_name(band):
    return f"uncert_{band}.fits"


def _truth_name(band):
    return f"truth_{band}.fits"


def _mask_name(band):
    return f"mask_{band}.fits"


class StoredDataset(ImageDataset):
    """A data set on disk (see the module docstring for the layout); open with :func:`open_dataset`.

    The cubes stay memory-mapped until :meth:`close` (or the end of a ``with``
    block).

    Parameters
    ----------
    path : str or os.PathLike
        The data set directory.

    Attributes
    ----------
    path : pathlib.Path
        The data set directory.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    bandsynth.datasets.errors.DataFormatError
        If ``path`` is not a directory, the manifest is missing, unreadable,
        of another format or a newer version, has split labels other than
        ``train``, ``validation`` and ``test``, or a cube is missing, not
        float32, of another band or of the wrong shape, or its ``BUNIT``
        contradicts the manifest's unit (or, without one, another cube's).
    """

    def __init__(self, path):
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such data set directory")
        if not path.is_dir():
            raise DataFormatError(f"{path}: a data set is a directory holding {_MANIFEST} and cube_<band>.fits")
        manifest_path = path / _MANIFEST
        if not manifest_path.exists():
            raise DataFormatError(f"{path}: not a bandsynth data set ({_MANIFEST} is missing)")
        try:
            manifest = Table.read(manifest_path, format="ascii.ecsv")
        except Exception as exc:
            raise DataFormatError(f"{manifest_path}: cannot read the manifest ({exc})") from exc
        if manifest.meta.get("format") != FORMAT_NAME:
            raise DataFormatError(f"{manifest_path}: not a {FORMAT_NAME} manifest (format is "
                                  f"{manifest.meta.get('format')!r})")
        if int(manifest.meta.get("version", 0)) > FORMAT_VERSION:
            raise DataFormatError(f"{manifest_path}: format version {manifest.meta['version']} is newer than "
                                  f"this bandsynth reads ({FORMAT_VERSION})")
        missing = [c for c in ("galaxy_id", "view", "split") if c not in manifest.colnames]
        if missing:
            raise DataFormatError(f"{manifest_path}: manifest lacks column(s) {missing}")
        _check_splits(manifest, manifest_path)
        super().__init__(manifest)
        self.path = path
        self._hduls = []
        self._bunits = {}
        self._cubes = {name: self._open_cube(path / _cube_name(name), name) for name in self.names}
        try:
            self._settle_unit(manifest, manifest_path)
        except DataFormatError:
            self.close()  # the cubes opened so far
            raise
        self._uncert = None
        if manifest.meta.get("has_uncertainty"):
            self._uncert = {name: self._open_cube(path / _uncert_name(name), name) for name in self.names}
        self._check_cubes(self._cubes, self._uncert, source=str(path))
        self._truth = self._mask = None
        if manifest.meta.get("has_truth"):
            self._truth = {name: self._open_cube(path / _truth_name(name), name) for name in self.names}
            self._mask = {name: self._open_cube(path / _mask_name(name), name, bitpix=8) for name in self.names}
            for kind, cubes in (("truth", self._truth), ("mask", self._mask)):
                self._check_cubes(cubes, None, source=f"{path} ({kind})")

    def _open_cube(self, file, band, bitpix=-32):
        if not file.exists():
            raise DataFormatError(f"{file}: missing cube file of band {band!r} listed in {self.path / _MANIFEST}")
        hdul = open_fits(file)
        self._hduls.append(hdul)
        hdu = hdul[0]
        if hdu.header.get("NAXIS") != 3:
            raise DataFormatError(f"{file}: expected a 3-D cube (n_images, ny, nx) in the primary HDU, "
                                  f"got NAXIS = {hdu.header.get('NAXIS')}")
        if hdu.header.get("BITPIX") != bitpix:
            raise DataFormatError(f"{file}: expected {'float32' if bitpix == -32 else 'uint8'} data (BITPIX = "
                                  f"{bitpix}), got BITPIX = {hdu.header.get('BITPIX')}")
        stored = hdu.header.get("BSBAND")
        if stored is not None and get_band(stored).name != band:
            raise DataFormatError(f"{file}: holds band {stored!r}, expected {band!r}")
        if hdu.header.get("BUNIT") and file.name == _cube_name(band):  # the images' unit (not the truth's copy)
            self._bunits[file] = str(hdu.header["BUNIT"]).strip()
        try:
            return hdu.data
        except Exception as exc:
            raise DataFormatError(f"{file}: cannot map the cube data ({exc})") from exc

    def _settle_unit(self, manifest, manifest_path):
        """The images' unit from the manifest and the cubes' BUNIT: refuse a contradiction, fill in a missing one.

        Cubes written in Jy with no unit in the manifest loaded as nanomaggies without a word.
        """
        parsed = {}
        for file, text in self._bunits.items():
            try:
                parsed[file] = parse_unit(text)
            except ValueError:
                raise DataFormatError(f"{file}: BUNIT {text!r} is not a unit astropy reads") from None
        stated = manifest.meta.get("unit")
        if stated is not None:
            for file, unit in parsed.items():
                if unit != parse_unit(stated):
                    raise DataFormatError(f"{file}: BUNIT {self._bunits[file]!r} contradicts the unit "
                                          f"{stated!r} of {manifest_path}; make them agree")
            return
        files = list(parsed)
        for file in files[1:]:
            if parsed[file] != parsed[files[0]]:
                raise DataFormatError(f"{file}: BUNIT {self._bunits[file]!r} differs from {files[0]}'s "
                                      f"{self._bunits[files[0]]!r}; every band of a data set is in one unit")
        if files:  # the manifest states none: the cubes' own unit, not nanomaggies by default
            manifest.meta["unit"] = self._bunits[files[0]]

    def _get_cube(self, name):
        return self._cubes[name]

    def _get_uncertainty(self, name):
        return None if self._uncert is None else self._uncert[name]

    def _get_truth(self, name):
        return None if self._truth is None else self._truth[name]

    def _get_mask(self, name):
        return None if self._mask is None else self._mask[name]

    def close(self):
        """Release the memory maps."""
        for hdul in self._hduls:
            hdul.close()
        self._hduls = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_dataset(path):
    """Open a data set directory written by :func:`write_dataset` or ``bandsynth mock``.

    Parameters
    ----------
    path : str or os.PathLike
        The data set directory.

    Returns
    -------
    StoredDataset
        The data set, its cubes memory-mapped.

    Raises
    ------
    TypeError
        If ``path`` is not a path.
    FileNotFoundError
        If ``path`` does not exist.
    bandsynth.datasets.errors.DataFormatError
        If the manifest or a cube is missing, corrupt or truncated, or shapes
        disagree; the message names the file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return StoredDataset(path)


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------
_DATASET_FILE = re.compile(r"^(cube|uncert|truth|mask)_.+\.fits$")


def _check_replaceable(path):
    """Refuse to replace what is not a data set: ``overwrite`` replaces the whole folder, and a folder of
    other files (a mistyped path, a project folder) would be deleted with it."""
    if not path.is_dir():
        raise FileExistsError(f"{path}: exists and is a file, not a data set folder; choose another path")
    foreign = sorted(p.name for p in path.iterdir() if p.name != _MANIFEST and not _DATASET_FILE.match(p.name))
    if foreign or (any(path.iterdir()) and not (path / _MANIFEST).is_file()):
        held = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "") if foreign else "no manifest.ecsv"
        raise FileExistsError(f"{path}: exists and is not a bandsynth data set ({held}); overwrite=True / "
                              "--overwrite replaces only a data set folder (or an empty one): choose another path")


class _Writer:
    """Streams images into per-band FITS cubes inside a temporary directory, renamed at the end."""

    def __init__(self, path, *, names, n_images, shape, uncertainty, unit, overwrite, truth=False):
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path}: already exists (use overwrite=True / --overwrite to replace it)")
        if self.path.exists():
            _check_replaceable(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.parent / f".{self.path.name}.tmp-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        self.overwrite = overwrite
        self.streams = {}
        try:
            for name in names:
                self.streams[("cube", name)] = self._stream(_cube_name(name), name, n_images, shape, unit, "image")
                if uncertainty:
                    self.streams[("uncert", name)] = self._stream(
                        _uncert_name(name), name, n_images, shape, unit, "1-sigma uncertainty"
                    )
                if truth:
                    self.streams[("truth", name)] = self._stream(
                        _truth_name(name), name, n_images, shape, unit, "noise-free truth")
                    self.streams[("mask", name)] = self._stream(
                        _mask_name(name), name, n_images, shape, "", "bad-pixel mask (1: bad)", bitpix=8)
        except Exception:
            self.abort()
            raise

    def _stream(self, filename, band, n, shape, unit, what, bitpix=-32):
        header = fits.Header()
        header["SIMPLE"] = True
        header["BITPIX"] = bitpix
        header["NAXIS"] = 3
        header["NAXIS1"] = shape[1]
        header["NAXIS2"] = shape[0]
        header["NAXIS3"] = n
        header["BUNIT"] = (unit, "pixel values")
        header["BSBAND"] = (band, "photometric band")
        header["BSKIND"] = (what, "cube content")
        header["COMMENT"] = "bandsynth data set cube: (n_images, ny, nx); rows match manifest.ecsv"
        return fits.StreamingHDU(self.tmp / filename, header)

    def write(self, images, uncertainty=None, extra=None):
        for name, arr in images.items():
            self.streams[("cube", name)].write(np.asarray(arr, dtype=">f4"))
            if uncertainty is not None:
                self.streams[("uncert", name)].write(np.asarray(uncertainty[name], dtype=">f4"))
            if extra is not None:
                self.streams[("truth", name)].write(np.asarray(extra["truth"][name], dtype=">f4"))
                self.streams[("mask", name)].write(np.asarray(extra["mask"][name], dtype=np.uint8))

    def finish(self, manifest):
        for s in self.streams.values():
            s.close()
        manifest.write(self.tmp / _MANIFEST, format="ascii.ecsv")
        backup = None
        if self.path.exists():
            backup = self.path.parent / f".{self.path.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(self.path, backup)
        os.replace(self.tmp, self.path)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)

    def abort(self):
        for s in self.streams.values():
            try:
                s.close()
            except Exception:  # the stream is incomplete by design
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def write_dataset(source, path, *, overwrite=False):
    """Write an in-memory data set (e.g. from ``make_dataset``) to ``path``; returns the opened copy.

    The data set is written into a temporary directory renamed to ``path`` at
    the end, so an interrupted write leaves no partial data set.

    Parameters
    ----------
    source : ImageDataset
        The data set to write (cubes stored as float32, with uncertainties
        when it has them).
    path : str or os.PathLike
        The data set directory to create.
    overwrite : bool
        Replace an existing directory at ``path``.

    Returns
    -------
    StoredDataset
        The written data set, opened with :func:`open_dataset`.

    Raises
    ------
    TypeError
        If ``source`` is not an `ImageDataset`.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    if not isinstance(source, ImageDataset):
        raise TypeError(f"source must be a data set (ImageDataset), got {type(source).__name__}")
    manifest = source.manifest.copy()
    manifest.meta["has_uncertainty"] = bool(source.has_uncertainty)
    truth = bool(getattr(source, "has_truth", False)) and source.mask_cube(source.names[0]) is not None
    manifest.meta["has_truth"] = truth
    writer = _Writer(path, names=source.names, n_images=len(source), shape=source.shape,
                     uncertainty=source.has_uncertainty, unit=str(source.info.get("unit", "nanomaggy")),
                     overwrite=overwrite, truth=truth)
    try:
        for name in source.names:
            writer.streams[("cube", name)].write(np.asarray(source.cube(name), dtype=">f4"))
            if source.has_uncertainty:
                writer.streams[("uncert", name)].write(np.asarray(source.uncertainty_cube(name), dtype=">f4"))
            if truth:
                writer.streams[("truth", name)].write(np.asarray(source.truth_cube(name), dtype=">f4"))
                writer.streams[("mask", name)].write(np.asarray(source.mask_cube(name), dtype=np.uint8))
        writer.finish(manifest)
    except BaseException:
        writer.abort()
        raise
    return open_dataset(path)


def write_mock_dataset(path, n, *, seed=0, mode=None, bands=None, size=128, pixel_scale=None, views=1,
                       psf_fwhm=None, depth_offset=0.0, dust=True, stratify=True,
                       split_fractions=(0.8, 0.1, 0.1), overwrite=False, progress=True, survey=None,
                       r_mag_range=None, family="default", redshift=False, grid_offsets=0.0):
    """Generate a mock data set straight to disk, one image at a time (bounded memory).

    Same parameters and images as :func:`bandsynth.datasets.mock.make_dataset`;
    returns the opened :class:`StoredDataset`.  Survey-mode data sets get
    uncertainty cubes, survey-layer ones (``survey=``) also the noise-free truth and the
    masks; the unit is nanomaggies.

    Parameters
    ----------
    path : str or os.PathLike
        The data set directory to create (written atomically).
    n : int
        Number of galaxies.
    seed : int
        Seed of the data set.
    mode : {"ideal", "survey"}, optional
        Observing mode (see :func:`bandsynth.datasets.mock.make_galaxy`; None with ``survey``).
    bands : list of str, optional
        Bands to render (default: every registered band).
    size : int
        Stamp width and height in pixels.
    pixel_scale : float, optional
        Arcsec per pixel (default
        :data:`~bandsynth.datasets.mock.DEFAULT_PIXEL_SCALE`).
    views : int
        Images (camera directions) per galaxy.
    psf_fwhm : float, optional
        FWHM (arcsec) of the common PSF in ideal mode.
    depth_offset : float
        Survey mode: magnitudes added to every band's depth (> 0 is deeper).
    dust : bool
        Apply the dust screen.
    stratify : bool
        Draw the sSFRs as a Latin hypercube of the population.
    split_fractions : tuple of float
        Fractions of galaxies in the train, validation and test splits.
    overwrite : bool
        Replace an existing directory at ``path``.
    progress : bool
        Show a progress bar.
    survey : str or mapping, optional
        Observe the galaxies with the survey layer (a preset such as
        ``"galex_sdss_2mass"``, see :func:`bandsynth.datasets.mock.make_dataset`).
    r_mag_range : tuple of float, optional
        With ``survey``: the (bright, faint) range of the galaxies' r magnitudes.
    redshift : bool
        With ``survey``: observe the galaxies at redshifts drawn from their magnitudes.
    grid_offsets : float
        With ``survey``: the probability that a band's native grid is offset from the
        common grid by a random fraction of a pixel.
    family : str
        The mock universe's physics family (`bandsynth.datasets.mock.families.FAMILIES`).

    Returns
    -------
    StoredDataset
        The written data set, opened with :func:`open_dataset`.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        If an option is invalid (see
        :func:`~bandsynth.datasets.mock.make_dataset`).
    """
    from .mock.universe import MockPlan

    plan = MockPlan(n, seed=seed, mode=mode, bands=bands, size=size, pixel_scale=pixel_scale, views=views,
                     psf_fwhm=psf_fwhm, depth_offset=depth_offset, dust=dust, stratify=stratify,
                     split_fractions=split_fractions, survey=survey, r_mag_range=r_mag_range, family=family,
                     redshift=redshift, grid_offsets=grid_offsets)
    noisy = plan.mode == "survey"
    writer = _Writer(path, names=[b.name for b in plan.bands], n_images=plan.n_images, shape=(plan.size, plan.size),
                     uncertainty=noisy, unit="nanomaggy", overwrite=overwrite, truth=survey is not None)
    metas = []
    try:
        for _, images, unc, meta, extra in progress_bar(plan.render(with_truth=True), progress, "mock galaxies",
                                                        plan.n_images):
            writer.write(images, unc if noisy else None, extra)
            for key in ("populations", "components", "neighbours", "stars", "reprojection"):
                meta.pop(key, None)  # keep only what the manifest needs
            metas.append(meta)
        plan.assign_splits(metas)
        manifest = build_manifest(metas, plan.bands, info=plan.info(metas))
        manifest.meta["has_uncertainty"] = noisy
        manifest.meta["has_truth"] = survey is not None
        writer.finish(manifest)
    except BaseException:
        writer.abort()
        raise
    return open_dataset(path)
