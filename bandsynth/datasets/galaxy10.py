"""Galaxy10 DECaLS (astroNN) images as :class:`~bandsynth.stack.BandStack`.

``Galaxy10_DECals.h5`` (Leung & Bovy; astroNN documentation, "Galaxy10 DECals
Dataset") holds 17 736 colour images of 256 x 256 pixels "(g, r and z band)"
in dataset ``images`` of shape (N, 256, 256, 3), with ``ans`` (class label),
``ra``, ``dec``, ``redshift`` and ``pxscale`` (arcsec per pixel).

These are **8-bit colour composites, not calibrated fluxes**.  The dataset was
built (henrysky/Galaxy10, ``downloader_*.py``) from Legacy Surveys viewer
JPEG cut-outs (``jpeg-cutout?layer=dr8&bands=grz``, 512 x 512 pixels at
0.262 arcsec/pixel, then resized to 256 x 256, hence ``pxscale`` ~0.52).  The
viewer's colour mapping (legacypipe ``sdss_rgb``: g -> plane 2, r -> plane 1,
z -> plane 0) puts **z in the red plane, r in green and g in blue**, so the
default ``channels`` are ``("DECam_z", "DECam_r", "DECam_g")`` for planes
0, 1, 2.  Each plane went through a non-linear stretch and was clipped to
0-255; the values are kept as they are (0-255, unit
``dimensionless_unscaled``) and a one-time
`~astropy.utils.exceptions.AstropyUserWarning` says so.  Use these stacks
for morphology and for the DECaLS-style model, never for photometry.

Each image gets a TAN WCS centred on its ``ra``/``dec`` with its ``pxscale``.
JPEG rows run north to south; they are flipped so that pixel y grows to the
north (FITS convention, east to the left).

The file is opened lazily: only the images asked for are read.

Examples
--------
>>> GALAXY10_CLASSES[2]
'Round Smooth'
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS

from ..bands import get_band
from ._fits import as_path
from .errors import DataFormatError

__all__ = ["GALAXY10_CLASSES", "DEFAULT_CHANNELS", "Galaxy10File", "read_galaxy10"]

#: Class names of the ``ans`` labels (astroNN documentation).
GALAXY10_CLASSES = (
    "Disturbed",
    "Merging",
    "Round Smooth",
    "In-between Round Smooth",
    "Cigar Shaped Smooth",
    "Barred Spiral",
    "Unbarred Tight Spiral",
    "Unbarred Loose Spiral",
    "Edge-on without Bulge",
    "Edge-on with Bulge",
)

#: Band of each colour plane (R, G, B) of a Legacy Surveys grz composite.
DEFAULT_CHANNELS = ("DECam_z", "DECam_r", "DECam_g")

_NOTE = (
    "Galaxy10 DECaLS images are 8-bit colour composites (stretched, clipped to 0-255), "
    "not calibrated fluxes: use them for morphology, not photometry"
)
_WARNED = False


def _warn_composite():
    global _WARNED
    if not _WARNED:
        _WARNED = True
        warnings.warn(_NOTE, AstropyUserWarning, stacklevel=4)


def _channels(channels):
    if isinstance(channels, str) or not isinstance(channels, Sequence):
        raise TypeError(f"channels must be a sequence of 3 band names, got {channels!r}")
    if len(channels) != 3:
        raise ValueError(f"channels must name 3 bands (one per colour plane), got {len(channels)}")
    bands = [get_band(c) for c in channels]
    if len({b.name for b in bands}) != 3:
        raise ValueError(f"channels must name 3 different bands, got {list(channels)}")
    return tuple(b.name for b in bands)


class Galaxy10File(Sequence):
    """Lazy, read-only view of a ``Galaxy10_DECals.h5`` file.

    ``len(g10)`` is the number of images; ``g10[i]`` reads image ``i`` as a
    `~bandsynth.stack.BandStack`, ``g10[a:b]`` a list of them; iteration reads
    one image at a time.  The layout is checked when the view is made.

    Parameters
    ----------
    path : str or os.PathLike
    channels : sequence of 3 str
        Band of colour planes 0, 1, 2 (default z, r, g; see the module notes).
    """

    def __init__(self, path, *, channels=DEFAULT_CHANNELS):
        self._path = as_path(path)
        self._channels = _channels(channels)
        with self._open() as fh:
            self._n, self._shape, self._dtype = self._check(fh)

    @property
    def path(self) -> Path:
        """The HDF5 file."""
        return self._path

    @property
    def channels(self) -> tuple:
        """Registry names of the bands of colour planes 0, 1, 2."""
        return self._channels

    def _open(self):
        import h5py

        try:
            return h5py.File(self._path, "r")
        except OSError as exc:
            raise DataFormatError(f"{self._path}: not a readable HDF5 file ({exc})") from exc

    def _check(self, fh):
        path = self._path
        if "images" not in fh:
            present = ", ".join(fh.keys()) or "none"
            raise DataFormatError(f"{path}: missing dataset 'images' (datasets present: {present})")
        images = fh["images"]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise DataFormatError(
                f"{path}: dataset 'images' should have shape (N, ny, nx, 3), found {images.shape}"
            )
        n = images.shape[0]
        for name in ("ra", "dec", "pxscale"):
            if name not in fh:
                raise DataFormatError(f"{path}: missing dataset {name!r} (needed for the WCS)")
        for name in ("ra", "dec", "pxscale", "redshift", "ans"):
            if name in fh and fh[name].shape != (n,):
                raise DataFormatError(
                    f"{path}: dataset {name!r} has shape {fh[name].shape}, expected ({n},) "
                    f"to match 'images'"
                )
        return n, images.shape[1:3], images.dtype

    def __len__(self):
        return self._n

    def __repr__(self):
        return f"<Galaxy10File {self._path.name}: {self._n} images of {self._shape[0]}x{self._shape[1]}>"

    @cached_property
    def catalog(self) -> Table:
        """Per-image ``ra``, ``dec``, ``pxscale``, ``redshift``, ``label`` (small arrays, read once)."""
        with self._open() as fh:
            cols = {name: np.asarray(fh[name][()]) for name in ("ra", "dec", "pxscale", "redshift", "ans")
                    if name in fh}
        table = Table(cols)
        if "ans" in table.colnames:
            table.rename_column("ans", "label")
        for name, unit in (("ra", u.deg), ("dec", u.deg), ("pxscale", u.arcsec / u.pix)):
            table[name].unit = unit
        return table

    def _index(self, i):
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"image index must be an integer, got {type(i).__name__}")
        j = int(i) + self._n if i < 0 else int(i)
        if not 0 <= j < self._n:
            raise IndexError(f"index {int(i)} out of range for {self._n} images in {self._path}")
        return j

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self._read_many(range(*key.indices(self._n)))
        if isinstance(key, (list, tuple, np.ndarray)):
            return self._read_many([self._index(k) for k in key])
        j = self._index(key)
        with self._open() as fh:
            return self._stack(fh, j)

    def _read_many(self, indices):
        with self._open() as fh:
            return [self._stack(fh, self._index(j)) for j in indices]

    def __iter__(self):
        with self._open() as fh:
            for j in range(self._n):
                yield self._stack(fh, j)

    def _stack(self, fh, j):
        from ..stack import BandStack  # stack imports nothing from datasets

        _warn_composite()
        try:
            rgb = np.asarray(fh["images"][j])
            ra, dec, scale = (float(fh[k][j]) for k in ("ra", "dec", "pxscale"))
            redshift = float(fh["redshift"][j]) if "redshift" in fh else None
            label = int(fh["ans"][j]) if "ans" in fh else None
        except Exception as exc:
            raise DataFormatError(f"{self._path}: cannot read image {j} ({exc})") from exc
        if not (np.isfinite(ra) and np.isfinite(dec) and np.isfinite(scale) and scale > 0):
            raise DataFormatError(
                f"{self._path}: image {j} has no usable position/scale (ra={ra}, dec={dec}, pxscale={scale})"
            )
        # JPEG rows run north -> south; flip so that pixel y grows northwards.
        images = {band: np.flipud(rgb[..., plane]).astype(np.float32)
                  for plane, band in enumerate(self._channels)}
        meta = {
            "source": "Galaxy10 DECaLS (astroNN)",
            "file": str(self._path),
            "index": j,
            "ra": ra,
            "dec": dec,
            "redshift": redshift,
            "pxscale_arcsec": scale,
            "label": label,
            "label_name": GALAXY10_CLASSES[label] if label is not None and 0 <= label < 10 else None,
            "channels": {band: plane for plane, band in enumerate(self._channels)},
            "dtype": str(self._dtype),
            "note": _NOTE,
        }
        wcs = _tan_wcs(rgb.shape[:2], ra, dec, scale / 3600.0)
        try:
            return BandStack.from_arrays(images, wcs=wcs, unit=u.dimensionless_unscaled, meta=meta)
        except ValueError as exc:  # e.g. a blank (all-zero) image
            raise DataFormatError(f"{self._path}: image {j}: {exc}") from exc


def _tan_wcs(shape, ra, dec, scale_deg):
    ny, nx = shape
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]
    wcs.wcs.cdelt = [-scale_deg, scale_deg]
    return wcs


def read_galaxy10(path, *, index=None, channels=DEFAULT_CHANNELS):
    """Read Galaxy10 DECaLS images from ``Galaxy10_DECals.h5``.

    Parameters
    ----------
    path : str or os.PathLike
    index : int, slice or sequence of int, optional
        Which images to read.  ``None`` returns a lazy :class:`Galaxy10File`
        (nothing is read until indexed or iterated: the file has ~18k images).
    channels : sequence of 3 str
        Band of colour planes 0, 1, 2; default ``("DECam_z", "DECam_r", "DECam_g")``.

    Returns
    -------
    `~bandsynth.stack.BandStack`, list of them, or `Galaxy10File`
        Bands DECam_g, DECam_r, DECam_z holding 8-bit composite levels (0-255,
        unit ``dimensionless_unscaled``, not calibrated fluxes), on a TAN WCS
        centred on the image's ra/dec with its pxscale.

    Raises
    ------
    DataFormatError
        Unreadable file, or no ``images``/``ra``/``dec``/``pxscale`` of the
        expected shapes.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path, got {type(path).__name__}")
    g10 = Galaxy10File(path, channels=channels)
    return g10 if index is None else g10[index]
