"""The interface shared by in-memory and on-disk image data sets, and its manifest.

:class:`ImageDataset` is the base class of `bandsynth.datasets.mock.MockDataset` (in
memory) and `bandsynth.datasets.store.StoredDataset` (on disk); :func:`build_manifest`
makes the manifest table both use.  Kept apart from both so that neither imports the other.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from ..bands import get_band, sort_bands
from ..units import parse_unit
from .errors import DataFormatError

__all__ = ["ImageDataset", "build_manifest", "tan_wcs", "progress_bar", "FORMAT_NAME", "FORMAT_VERSION", "SPLITS",
           "fill_masked_cube", "model_input_cube", "model_target_cube", "has_truth", "unusable_pixels",
           "usable_sample", "bad_pixels"]

FORMAT_NAME = "bandsynth-dataset"
FORMAT_VERSION = 1
SPLITS = ("train", "validation", "test")
_BASE_COLUMNS = (
    ("galaxy", int), ("galaxy_id", np.int64), ("view", int), ("galaxy_class", str), ("log_ssfr", float),
    ("bt_r", float), ("bt_mass", float), ("r_mag", float), ("inclination", float), ("position_angle", float),
    ("ra", float), ("dec", float), ("split", str),
)


class ImageDataset:
    """Common interface of in-memory and on-disk data sets (not instantiated directly).

    Subclasses provide ``_get_cube(name)`` and ``_get_uncertainty(name)``, and, for
    data sets of the survey layer, ``_get_truth(name)`` and ``_get_mask(name)``.

    What a model learns from: :meth:`input_cube` (the observed images, masked pixels
    filled as `~bandsynth.Translator.predict` fills them) and :meth:`target_cube` (the
    noise-free truth where the data set has one, the observed images otherwise).

    Parameters
    ----------
    manifest : `~astropy.table.Table`
        One row per image; ``manifest.meta["bands"]`` lists the bands.
    """

    def __init__(self, manifest):
        if not isinstance(manifest, Table):
            raise TypeError(f"manifest must be an astropy Table, got {type(manifest).__name__}")
        self._manifest = manifest
        names = manifest.meta.get("bands")
        if not names:
            raise ValueError("manifest meta must list the data set's 'bands'")
        self._bands = tuple(sort_bands(names))

    # -- description ----------------------------------------------------------------------------
    @property
    def bands(self):
        """The data set's bands (:class:`~bandsynth.bands.Band`), by wavelength."""
        return self._bands

    @property
    def names(self):
        """Canonical names of :attr:`bands`."""
        return tuple(b.name for b in self._bands)

    @property
    def manifest(self):
        """Per-image metadata (`~astropy.table.Table`, one row per image)."""
        return self._manifest

    @property
    def info(self):
        """Data-set-wide metadata (mode, pixel scale, PSF, unit, seed...)."""
        return dict(self._manifest.meta)

    @property
    def shape(self):
        """(ny, nx) of every image."""
        return tuple(self.cube(self._bands[0].name).shape[1:])

    def __len__(self):
        return len(self._manifest)

    def __repr__(self):
        return (f"<{type(self).__name__} {len(self)} images, bands {', '.join(self.names)}, "
                f"mode {self.info.get('mode', '?')}>")

    # -- data -----------------------------------------------------------------------------------
    def _resolve(self, band):
        b = get_band(band)
        if b not in self._bands:
            raise ValueError(f"band {b.name!r} is not in this data set (it has: {', '.join(self.names)})")
        return b.name

    def cube(self, band):
        """Images of ``band``: array (n_images, ny, nx), memory-mapped for on-disk sets.

        Parameters
        ----------
        band : str or `~bandsynth.bands.Band`
            A band of the data set.

        Returns
        -------
        cube : ndarray
            The images.
        """
        return self._get_cube(self._resolve(band))

    def uncertainty_cube(self, band):
        """1-sigma noise of ``band`` (same shape as :meth:`cube`) or None if the set has none.

        Parameters
        ----------
        band : str or `~bandsynth.bands.Band`
            A band of the data set.

        Returns
        -------
        cube : ndarray or None
            The noise maps.
        """
        return self._get_uncertainty(self._resolve(band))

    def _get_truth(self, name):
        return None

    def _get_mask(self, name):
        return None

    @property
    def has_truth(self):
        """Whether the data set holds noise-free truth images (survey layer)."""
        return self._get_truth(self._bands[0].name) is not None

    def truth_cube(self, band):
        """Noise-free images of ``band`` on the data set's grid (survey layer).

        Parameters
        ----------
        band : str or `~bandsynth.bands.Band`
            A band of the data set.

        Returns
        -------
        cube : ndarray
            Shape ``(n_images, ny, nx)``, in the data set's unit.

        Raises
        ------
        ValueError
            If the data set has no truth (not made with ``survey=``) or no such band.
        """
        name = self._resolve(band)
        truth = self._get_truth(name)
        if truth is None:
            raise ValueError(f"{type(self).__name__} has no noise-free truth of band {name!r}; "
                             "make the data set with survey=...")
        return truth

    def mask_cube(self, band):
        """Masks of ``band`` (`True` for a bad pixel), or `None` when the data set has none.

        Parameters
        ----------
        band : str or `~bandsynth.bands.Band`
            A band of the data set.

        Returns
        -------
        cube : ndarray of bool or None
            Shape ``(n_images, ny, nx)``.
        """
        return self._get_mask(self._resolve(band))

    def target_cube(self, band):
        """What a model is trained and scored against: :meth:`truth_cube` if the set has one, else :meth:`cube`.

        Parameters
        ----------
        band : str or `~bandsynth.bands.Band`
            A band of the data set.

        Returns
        -------
        cube : ndarray
            Shape ``(n_images, ny, nx)``.
        """
        return self.truth_cube(band) if self.has_truth else self.cube(band)

    def input_cube(self, band):
        """The observed images of ``band`` as a model reads them: masked and non-finite pixels filled.

        Filled from their neighbours with `bandsynth.inputs.fill_bad_pixels`, as
        `~bandsynth.Translator.predict` does; the filled cube is computed once and kept.
        Without masks or bad pixels this is :meth:`cube` itself.

        Parameters
        ----------
        band : str or `~bandsynth.bands.Band`
            A band of the data set.

        Returns
        -------
        cube : ndarray
            Shape ``(n_images, ny, nx)``.
        """
        name = self._resolve(band)
        cache = self.__dict__.setdefault("_filled_inputs", {})
        if name not in cache:
            cache[name] = fill_masked_cube(self._get_cube(name), self._get_mask(name))
        return cache[name]

    @property
    def has_uncertainty(self):
        """True when the data set has noise maps (survey mode)."""
        return self._get_uncertainty(self._bands[0].name) is not None

    def indices(self, split=None):
        """Image indices of ``split`` ("train", "validation", "test"; None: all).

        Parameters
        ----------
        split : str, optional
            The split.

        Returns
        -------
        indices : ndarray of int
            Indices of its images.
        """
        if split is None:
            return np.arange(len(self))
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
        return np.flatnonzero(np.asarray(self._manifest["split"]) == split)

    def _image_meta(self, i):
        row = self._manifest[i]
        meta = {name: _plain(row[name]) for name in self._manifest.colnames}
        meta.update({k: v for k, v in self.info.items() if k not in ("bands", "format", "version")})
        return meta

    def stack(self, i, *, truth=False):
        """Image ``i`` as a :class:`~bandsynth.stack.BandStack` (WCS, unit, uncertainty, mask, metadata).

        Parameters
        ----------
        i : int
            Image index (negative counts from the end).
        truth : bool
            The noise-free truth (:meth:`truth_cube`, without uncertainty or mask)
            instead of the observed images.

        Returns
        -------
        stack : `~bandsynth.BandStack`
            The image in every band.
        """
        from ..stack import BandStack

        i = self._check_index(i)
        meta = self._image_meta(i)
        get = self.truth_cube if truth else self._get_cube
        images = {name: np.array(get(name)[i], dtype=np.float32) for name in self.names}
        unc = mask = None
        if self.has_uncertainty and not truth:
            unc = {name: np.array(self._get_uncertainty(name)[i], dtype=np.float32) for name in self.names}
        if not truth and self._get_mask(self.names[0]) is not None:
            mask = {name: np.array(self._get_mask(name)[i], dtype=bool) for name in self.names}
        wcs = None
        if "ra" in meta and "dec" in meta and self.info.get("pixel_scale"):
            wcs = tan_wcs(meta["ra"], meta["dec"], float(self.info["pixel_scale"]), self.shape)
        unit = parse_unit(self.info.get("unit", "nanomaggy"))
        return BandStack.from_arrays(images, wcs=wcs, unit=unit, uncertainty=unc, mask=mask, meta=meta)

    def _check_index(self, i):
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise TypeError(f"image index must be an integer, got {type(i).__name__}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"image index {i} is out of range for a data set of {n} images")
        return int(i) % n

    def _check_cubes(self, cubes, uncert, *, source):
        n = len(self)
        shape = None
        for name in self.names:
            if name not in cubes:
                raise DataFormatError(f"{source}: no cube for band {name!r}")
            for kind, arrays in (("cube", cubes), ("uncertainty cube", uncert)):
                if arrays is None:
                    continue
                arr = arrays.get(name)
                if arr is None:
                    raise DataFormatError(f"{source}: no {kind} for band {name!r}")
                if arr.ndim != 3 or arr.shape[0] != n or (shape is not None and arr.shape[1:] != shape):
                    want = f"({n}, ny, nx)" if shape is None else f"({n}, {shape[0]}, {shape[1]})"
                    raise DataFormatError(
                        f"{source}: {kind} of band {name!r} has shape {arr.shape}, expected {want} "
                        "(one image per manifest row, all bands on one grid)"
                    )
                shape = arr.shape[1:]


def bad_pixels(image, mask=None):
    """Non-finite or masked pixels of an image or a cube.

    Parameters
    ----------
    image : array-like
    mask : array-like of bool, optional
        Same shape; `True` for a bad pixel.

    Returns
    -------
    ndarray of bool

    Examples
    --------
    >>> bad_pixels(np.array([1.0, np.nan, 2.0]), np.array([True, False, False])).tolist()
    [True, True, False]
    """
    bad = ~np.isfinite(image)
    if mask is not None:
        bad |= np.asarray(mask, dtype=bool)
    return bad


def fill_masked_cube(cube, mask=None):
    """``cube`` with masked and non-finite pixels of every image filled (`bandsynth.inputs.fill_bad_pixels`).

    Parameters
    ----------
    cube : array-like
        Images ``(n_images, ny, nx)``.
    mask : array-like of bool, optional
        Same shape; `True` for a bad pixel.

    Returns
    -------
    numpy.ndarray
        ``cube`` itself when no pixel is bad, otherwise a float32 copy with the bad
        pixels filled from their neighbours.

    Examples
    --------
    >>> cube = np.ones((2, 32, 32), dtype=np.float32)
    >>> cube[1, 16, 16] = np.nan
    >>> round(float(fill_masked_cube(cube)[1, 16, 16]), 6)
    1.0
    """
    from ..inputs import fill_bad_pixels

    bad = bad_pixels(cube, mask)
    if not bad.any():
        return cube
    out = np.array(cube, dtype=np.float32)
    for k in np.flatnonzero(bad.reshape(len(out), -1).any(axis=1)):
        out[k] = fill_bad_pixels(out[k].astype(np.float64), bad[k])
    return out


def model_input_cube(data, band):
    """``data.input_cube(band)`` (masked pixels filled) for an `ImageDataset`, ``data.cube(band)`` for other data sets.

    Parameters
    ----------
    data : data set
        Anything with ``cube(band)``.
    band : str
        A band of the data set.

    Returns
    -------
    cube : ndarray
        Shape ``(n_images, ny, nx)``.
    """
    return data.input_cube(band) if hasattr(data, "input_cube") else data.cube(band)


def model_target_cube(data, band):
    """``data.target_cube(band)`` (the noise-free truth where there is one) or ``data.cube(band)``.

    Parameters
    ----------
    data : data set
        Anything with ``cube(band)``.
    band : str
        A band of the data set.

    Returns
    -------
    cube : ndarray
        Shape ``(n_images, ny, nx)``.
    """
    return data.target_cube(band) if hasattr(data, "target_cube") else data.cube(band)


def has_truth(data):
    """Whether ``data`` holds noise-free truth images (survey layer).

    Parameters
    ----------
    data : data set

    Returns
    -------
    bool
    """
    return bool(getattr(data, "has_truth", False))


def unusable_pixels(data, inputs, output):
    """Pixels a model can neither learn nor be scored on: masked or non-finite in an input.

    A masked input pixel (a saturated star core, a bad column) reaches the model filled
    from its neighbours, so the target there cannot be predicted: training gives such
    pixels no weight and colour models are fitted without them.  Where the data set has
    no noise-free truth, the target band's own masked pixels are unusable too.

    Parameters
    ----------
    data : data set
        Anything with ``cube(band)`` (and ``mask_cube(band)`` where it has masks).
    inputs : sequence of str
        Input bands.
    output : str
        Target band.

    Returns
    -------
    ndarray of bool or None
        Shape ``(n_images, ny, nx)``, `True` for an unusable pixel; None when no pixel is.

    Examples
    --------
    >>> from bandsynth.datasets.mock import make_dataset
    >>> unusable_pixels(make_dataset(2, bands=["g", "r"], size=16), ["g"], "r") is None
    True
    """
    bands = (*inputs, *(() if has_truth(data) else (output,)))
    # Kept with the data set (as its filled input cubes): training asks for it several times.
    cache = data.__dict__.setdefault("_unusable_pixels", {}) if isinstance(data, ImageDataset) else {}
    if bands not in cache:
        bad = None
        for band in bands:
            this = bad_pixels(data.cube(band), data.mask_cube(band) if hasattr(data, "mask_cube") else None)
            bad = this if bad is None else bad | this
        cache[bands] = bad if bad is not None and bad.any() else None
    return cache[bands]


def usable_sample(data, inputs, output, indices, take):
    """Whether each sampled pixel ``take`` (of the flattened images ``indices``) can be fitted.

    Parameters
    ----------
    data : data set
    inputs : sequence of str
    output : str
    indices : ndarray of int
        The images.
    take : ndarray of int
        Sampled positions in their flattened pixels.

    Returns
    -------
    ndarray of bool
        `False` where `unusable_pixels` marks the pixel.
    """
    bad = unusable_pixels(data, inputs, output)
    return np.ones(take.size, dtype=bool) if bad is None else ~bad[indices].reshape(-1)[take]


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return value


def build_manifest(metas, bands, *, info):
    """Manifest table from per-image metadata dicts (see :func:`bandsynth.datasets.mock.render_galaxy`).

    Parameters
    ----------
    metas : list of dict
        Truth metadata of each image.
    bands : list of `~bandsynth.bands.Band`
        The data set's bands (one ``flux_<band>`` column each).
    info : mapping
        Data-set-wide metadata (mode, seed, pixel scale, unit, ...) for the table's meta.

    Returns
    -------
    manifest : `~astropy.table.Table`
        One row per image.
    """
    cols = {}
    for name, kind in _BASE_COLUMNS:
        values = [m.get(name) for m in metas]
        cols[name] = np.array(values, dtype=kind) if kind is not str else np.array(values, dtype=str)
    for b in bands:
        cols[f"flux_{b.name}"] = np.array([m["flux_total"][b.name] for m in metas])
    table = Table(cols)
    table["log_ssfr"].unit = "dex(1/yr)"
    table["inclination"].unit = table["position_angle"].unit = "deg"
    table["ra"].unit = table["dec"].unit = "deg"
    for b in bands:
        # in nanomaggies (astropy's u.nmgy); kept a plain column as in format version 1
        table[f"flux_{b.name}"].description = "nanomaggy; whole-galaxy flux from the spectra, before dust"
    table.meta.update(info)
    table.meta["bands"] = [b.name for b in bands]
    table.meta["format"] = FORMAT_NAME
    table.meta["version"] = FORMAT_VERSION
    return table


def tan_wcs(ra, dec, pixel_scale, shape):
    """A north-up TAN WCS centred on ``(ra, dec)`` (degrees) for an image of ``shape``.

    Parameters
    ----------
    ra, dec : float
        Sky position of the image centre, in degrees.
    pixel_scale : float
        Arcsec per pixel.
    shape : tuple of int
        ``(ny, nx)``.

    Returns
    -------
    wcs : `~astropy.wcs.WCS`
        The WCS (ICRS, east to the left).
    """
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.crval = [float(ra), float(dec)]
    w.wcs.crpix = [(shape[1] + 1) / 2.0, (shape[0] + 1) / 2.0]
    w.wcs.cdelt = [-pixel_scale / 3600.0, pixel_scale / 3600.0]
    w.wcs.radesys = "ICRS"
    return w


def progress_bar(iterable, enabled, desc, total=None):
    """``iterable`` wrapped in a tqdm progress bar counting images (shown only if ``enabled``).

    Parameters
    ----------
    iterable : iterable
        What to iterate over.
    enabled : bool
        Show the bar.
    desc : str
        Its label.
    total : int, optional
        Number of items, when ``iterable`` has no length.

    Returns
    -------
    bar : `tqdm.tqdm`
        The wrapped iterable.
    """
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit="img", total=total, disable=not enabled)
