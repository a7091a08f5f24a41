"""Co-aligned images of one galaxy in several photometric bands.

A :class:`BandStack` holds one `~astropy.nddata.CCDData`-like image per band
(data, unit, standard-deviation uncertainty, mask, WCS, header) on ONE pixel
grid, ordered by wavelength.  It is immutable: every operation
(:meth:`~BandStack.select`, :meth:`~BandStack.reproject`,
:meth:`~BandStack.cutout`) returns a new stack, and ``stack["r"]`` hands out a
copy.

Examples
--------
>>> import numpy as np
>>> from bandsynth.stack import BandStack
>>> yy, xx = np.mgrid[:32, :32]
>>> galaxy = np.exp(-((xx - 16.0) ** 2 + (yy - 16.0) ** 2) / 20.0)
>>> stack = BandStack.from_arrays({"K": 2 * galaxy, "NUV": galaxy}, unit="Jy")
>>> stack.names
('NUV', 'Ks')
>>> stack["k"].unit
Unit("Jy")
>>> stack.to_array().shape
(2, 32, 32)
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import CCDData, Cutout2D, NDData, NDUncertainty, StdDevUncertainty
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS

from ._io import fits_ascii, sha256_file
from .bands import Band, get_band, list_bands
from .errors import BandFileError, BandFileNotFoundError, BandInputError, BandTypeError, BandUnitError
from .units import conversion_factor, format_unit, parse_unit, to_unit

__all__ = ["BandStack"]

_METHODS = ("interp", "exact", "adaptive")
# Two bands share a pixel grid when their WCSs agree to this many pixels everywhere.
_GRID_TOLERANCE = 0.01
# Reprojected pixels covered by less than this fraction of input pixels are masked.
_MIN_COVERAGE = 0.999


class _FrozenDict(dict):
    """A ``dict`` that refuses changes: the metadata of an immutable stack."""

    def _read_only(self, *args, **kwargs):
        raise TypeError("BandStack.meta is read-only; build a new stack with meta=... instead")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    # Copies are ordinary, mutable dicts.
    def __reduce__(self):
        return (dict, (dict(self),))

    def __copy__(self):
        return dict(self)

    def __deepcopy__(self, memo):
        return copy.deepcopy(dict(self), memo)


class _Image:
    """One band while a stack is being assembled (mutable scratch record)."""

    __slots__ = ("data", "unit", "uncertainty", "mask", "wcs", "meta", "path")

    def __init__(self, data, unit, uncertainty, mask, wcs, meta, path=None):
        self.data, self.unit, self.uncertainty = data, unit, uncertainty
        self.mask, self.wcs, self.meta, self.path = mask, wcs, meta, path

    @property
    def shape(self):
        return self.data.shape


class BandStack:
    """Images of one galaxy in several bands, on one pixel grid, ordered by wavelength.

    Build it with :meth:`from_arrays` or :meth:`from_fits` (calling the class
    is the same as :meth:`from_arrays`).  Each band is validated: it must be a
    2-D image with a unit; non-finite pixels are masked (with an
    `~astropy.utils.exceptions.AstropyUserWarning`) and keep their value; an
    all-zero or constant image is refused.  Every band is converted to one
    flux unit (``unit=`` or that of the shortest-wavelength band, using the
    band's wavelength to go between f_nu and f_lambda) and all bands must share
    the pixel grid: give ``reproject_to=`` to resample them onto one band's grid.

    Parameters
    ----------
    images : mapping of band name or `~bandsynth.bands.Band` to array, Quantity or NDData
        One 2-D image per band; NDData / CCDData bring their own unit,
        uncertainty, mask, WCS and meta.
    wcs : `~astropy.wcs.WCS`, `~astropy.io.fits.Header` or mapping of band to them, optional
        WCS of the bands that carry none.
    unit : str or `~astropy.units.UnitBase`, optional
        Unit of the bands that carry none, and the unit every band is converted to.
    uncertainty : mapping of band to array-like or `~astropy.nddata.NDUncertainty`, optional
        Per-pixel standard deviation (other uncertainty types are converted).
    mask : mapping of band to bool array, optional
        `True` marks a bad pixel; combined with the image's own mask.
    meta : mapping, optional
        Metadata of the stack as a whole (e.g. the truth of a mock galaxy).
    reproject_to : str or `~bandsynth.bands.Band`, optional
        Resample every band onto this band's pixel grid (see :meth:`reproject`).
    reproject_kw : mapping, optional
        Options for that resampling: ``method``, ``conserve_flux`` and any
        option of the `reproject` function.

    Raises
    ------
    ValueError
        Unknown band, not a 2-D image, no unit, constant image, bands on different
        grids, a band without a WCS while others have one.
    astropy.units.UnitConversionError
        A band's unit cannot be converted to the stack's unit.
    TypeError
        A value of the wrong type.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.wcs import WCS
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    >>> wcs.wcs.crval, wcs.wcs.crpix, wcs.wcs.cdelt = [150, 2], [8.5, 8.5], [-1 / 3600, 1 / 3600]
    >>> image = np.arange(256.0).reshape(16, 16)
    >>> stack = BandStack({"r": image, "g": image + 1}, wcs=wcs, unit="nanomaggy")
    >>> stack
    <BandStack: 2 bands (g, r), 16 x 16 pixels, unit nanomaggy, WCS RA---TAN/DEC--TAN>
    >>> "sdss_r" in stack, len(stack), stack.shape
    (True, 2, (16, 16))
    """

    def __init__(
        self,
        images,
        *,
        wcs=None,
        unit=None,
        uncertainty=None,
        mask=None,
        meta=None,
        reproject_to=None,
        reproject_kw=None,
    ):
        images = _resolve_mapping(images, "images")
        extras = {}
        for what, value in (("uncertainty", uncertainty), ("mask", mask), ("wcs", wcs)):
            if isinstance(value, Mapping) and not isinstance(value, fits.Header):
                extras[what] = _resolve_mapping(value, what, allowed=images)
            else:
                if what != "wcs" and value is not None:
                    raise TypeError(f"{what} must be a mapping of band name to array, got {type(value).__name__}")
                extras[what] = {band: value for band in images}
        common_unit = None if unit is None else _parse_unit(unit, "unit")
        built = {
            band: _image_from_value(
                band,
                value,
                wcs=extras["wcs"].get(band),
                unit=common_unit,
                uncertainty=extras["uncertainty"].get(band),
                mask=extras["mask"].get(band),
            )
            for band, value in images.items()
        }
        self._assemble(built, unit=common_unit, meta=meta, reproject_to=reproject_to, reproject_kw=reproject_kw)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(cls, images, **kwargs):
        """Build a stack from arrays, Quantities or NDData/CCDData objects.

        Same parameters as the class itself (see :class:`BandStack`).

        Examples
        --------
        >>> import numpy as np
        >>> from astropy.nddata import CCDData
        >>> nuv = CCDData(np.random.default_rng(1).random((8, 8)), unit="Jy")
        >>> BandStack.from_arrays({"galex_nuv": nuv}).names
        ('NUV',)
        """
        return cls(images, **kwargs)

    @classmethod
    def from_fits(cls, source, *, hdu=None, unit=None, meta=None, reproject_to=None, reproject_kw=None):
        """Read a stack from FITS files.

        Parameters
        ----------
        source : mapping of band to path, or path
            Either one file per band (each read like `~astropy.nddata.CCDData.read`:
            image, ``BUNIT``, WCS, and ``UNCERT``/``MASK`` extensions when present),
            or ONE multi-extension file whose image HDUs are named (``EXTNAME``,
            matched case-insensitively with the band aliases) after their band;
            ``<EXTNAME>_UNCERT`` and ``<EXTNAME>_MASK`` extensions are read as
            that band's uncertainty and mask.
        hdu : int, str or mapping of band to int/str, optional
            HDU holding the image in the per-band files (default: the first
            HDU with image data).
        unit : str or `~astropy.units.UnitBase`, optional
            Unit of images without ``BUNIT``; every band is converted to it.
        meta : mapping, optional
            Metadata of the stack.  ``meta["inputs"]`` is set to a list of
            ``{"band", "file", "checksum"}`` records (SHA-256 of each file)
            unless given.
        reproject_to, reproject_kw
            As for :class:`BandStack`.

        Raises
        ------
        FileNotFoundError
            A file does not exist (the message names the file and band).
        ValueError
            No image HDU, an ``EXTNAME`` that is not a band, no ``BUNIT`` and no
            ``unit=``, plus everything :class:`BandStack` refuses.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> from astropy.io import fits
        >>> d = tempfile.mkdtemp()
        >>> hdus = [fits.PrimaryHDU()]
        >>> for name, scale in (("NUV", 1.0), ("K", 3.0)):
        ...     hdu = fits.ImageHDU(scale * np.arange(64.0).reshape(8, 8), name=name)
        ...     hdu.header["BUNIT"] = "Jy"
        ...     hdus.append(hdu)
        >>> fits.HDUList(hdus).writeto(os.path.join(d, "g123.fits"))
        >>> BandStack.from_fits(os.path.join(d, "g123.fits")).names
        ('NUV', 'Ks')
        """
        common_unit = None if unit is None else _parse_unit(unit, "unit")
        if isinstance(source, Mapping):
            paths = _resolve_mapping(source, "files")
            hdus = (
                _resolve_mapping(hdu, "hdu", allowed=paths)
                if isinstance(hdu, Mapping)
                else dict.fromkeys(paths, hdu)
            )
            built, inputs = {}, []
            for band, path in paths.items():
                built[band], record = _read_band_file(band, path, hdu=hdus.get(band), unit=common_unit)
                inputs.append(record)
        elif isinstance(source, (str, os.PathLike)):
            if hdu is not None:
                raise ValueError("hdu= applies to one file per band; a multi-extension file names its bands by EXTNAME")
            built, inputs = _read_multi_extension(source, unit=common_unit)
        else:
            raise TypeError(
                "from_fits expects a mapping of band name to FITS path or the path of one multi-extension "
                f"file, got {type(source).__name__}"
            )
        meta = dict(meta or {})
        meta.setdefault("inputs", inputs)
        self = cls.__new__(cls)
        self._assemble(built, unit=common_unit, meta=meta, reproject_to=reproject_to, reproject_kw=reproject_kw)
        return self

    def _assemble(self, built, *, unit, meta, reproject_to, reproject_kw):
        """Common end of the public constructors: units, grids, freezing."""
        meta = dict(meta or {})
        bands = list(built)  # already in wavelength order
        target_unit = unit if unit is not None else built[bands[0]].unit
        for band, im in built.items():
            _convert_unit(band, im, target_unit, requested=unit is not None)
        with_wcs = [b for b in bands if built[b].wcs is not None]
        if with_wcs and len(with_wcs) != len(bands):
            lacking = next(b for b in bands if built[b].wcs is None)
            raise ValueError(
                f"band {lacking.name!r} has no WCS while band {with_wcs[0].name!r} has one; "
                "give every band a WCS (e.g. wcs=...)"
            )
        if reproject_to is not None:
            target = get_band(reproject_to)
            if target not in built:
                raise ValueError(
                    f"reproject_to={reproject_to!r}: band {target.name!r} is not among the bands "
                    f"({', '.join(b.name for b in bands)})"
                )
            ref = built[target]
            if ref.wcs is None:
                raise ValueError(f"reproject_to={reproject_to!r}: band {target.name!r} has no WCS to reproject onto")
            kw = dict(reproject_kw or {})
            method = kw.pop("method", "interp")
            conserve = kw.pop("conserve_flux", "auto")
            built, records = _reproject_all(built, ref.wcs, ref.shape, method=method, conserve_flux=conserve, kwargs=kw)
            meta["reprojection"] = [*meta.get("reprojection", ()), *records]
        _check_grid(built)
        self._init_frozen(built, meta)

    @classmethod
    def _from_images(cls, built, meta):
        """Wrap already validated images (results of select / reproject / cutout)."""
        self = cls.__new__(cls)
        self._init_frozen(built, meta)
        return self

    def _init_frozen(self, built, meta):
        if meta is not None and not isinstance(meta, Mapping):
            raise TypeError(f"meta must be a mapping, got {type(meta).__name__}")
        ccds = {}
        for band, im in built.items():
            for arr in (im.data, im.uncertainty, im.mask):
                if arr is not None:
                    arr.flags.writeable = False
            ccds[band] = im
        object.__setattr__(self, "_images", ccds)
        object.__setattr__(self, "_bands", tuple(ccds))
        object.__setattr__(self, "_meta", _FrozenDict(meta or {}))

    def __setattr__(self, name, value):
        raise AttributeError(f"BandStack is immutable; cannot set {name!r}")

    __delattr__ = __setattr__

    # Immutable: copies are the object itself; pickling (e.g. to Dask workers) rebuilds it.
    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return (_rebuild_stack, (dict(self._images), dict(self._meta)))

    # ------------------------------------------------------------------ mapping-like access
    def _lookup(self, key) -> Band:
        band = get_band(key)
        if band not in self._images:
            raise KeyError(f"band {band.name!r} is not in this stack (bands: {', '.join(self.names)})")
        return band

    def __getitem__(self, key) -> CCDData:
        """The image of band ``key`` (name, alias or Band) as a new `~astropy.nddata.CCDData` (a copy)."""
        im = self._images[self._lookup(key)]
        return CCDData(
            np.array(im.data),
            unit=im.unit,
            uncertainty=None if im.uncertainty is None else StdDevUncertainty(np.array(im.uncertainty)),
            mask=None if im.mask is None else np.array(im.mask),
            wcs=copy.deepcopy(im.wcs),
            meta=copy.copy(im.meta),
        )

    def __contains__(self, key) -> bool:
        try:
            return get_band(key) in self._images
        except (TypeError, ValueError):
            return False

    def __iter__(self):
        """Bands in wavelength order."""
        return iter(self._bands)

    def __len__(self) -> int:
        return len(self._bands)

    def items(self):
        """``(Band, CCDData)`` pairs in wavelength order."""
        return [(band, self[band]) for band in self._bands]

    @property
    def bands(self) -> tuple:
        """The `~bandsynth.bands.Band` of every image, in wavelength order."""
        return self._bands

    @property
    def names(self) -> tuple:
        """Canonical band names, in wavelength order."""
        return tuple(b.name for b in self._bands)

    @property
    def shape(self) -> tuple:
        """``(ny, nx)`` of the common pixel grid."""
        return self._images[self._bands[0]].shape

    @property
    def unit(self):
        """The flux unit shared by every band."""
        return self._images[self._bands[0]].unit

    @property
    def wcs(self):
        """WCS of the common pixel grid (a copy), or `None`."""
        return copy.deepcopy(self._images[self._bands[0]].wcs)

    @property
    def meta(self) -> dict:
        """Read-only metadata of the stack (``dict(stack.meta)`` gives a mutable copy)."""
        return self._meta

    def __repr__(self):
        ny, nx = self.shape
        wcs = self._images[self._bands[0]].wcs
        wcs_text = "/".join(wcs.wcs.ctype) if wcs is not None else "none"
        return (
            f"<BandStack: {len(self)} band{'s' if len(self) != 1 else ''} ({', '.join(self.names)}), "
            f"{ny} x {nx} pixels, unit {format_unit(self.unit)}, WCS {wcs_text}>"
        )

    # ------------------------------------------------------------------ derived stacks
    def select(self, bands) -> "BandStack":
        """A stack of some of the bands (in wavelength order, whatever the order given).

        Examples
        --------
        >>> import numpy as np
        >>> s = BandStack({"g": np.eye(4), "r": np.eye(4), "z": np.eye(4)}, unit="Jy")
        >>> s.select(["z", "g"]).names
        ('g', 'z')
        """
        if isinstance(bands, (str, Band)):
            bands = [bands]
        chosen = [self._lookup(b) for b in bands]
        if not chosen:
            raise ValueError("select needs at least one band")
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"select: a band is given twice in {list(bands)!r}")
        chosen.sort(key=lambda b: b.wavelength.value)
        return self._from_images({b: self._images[b] for b in chosen}, self._meta)

    def reproject(self, target, *, method="interp", conserve_flux="auto", **kwargs) -> "BandStack":
        """Resample every band onto another pixel grid with the `reproject` package.

        Parameters
        ----------
        target : str, `~bandsynth.bands.Band`, `~astropy.io.fits.Header`, `~astropy.wcs.WCS`, ``(wcs, shape)`` or NDData
            The output grid: the name of a band of this stack ("onto that band's
            grid"), a header with ``NAXIS1``/``NAXIS2``, a WCS with ``array_shape``,
            a WCS (or header) and ``(ny, nx)`` shape, or an NDData's WCS and shape.
        method : {"interp", "exact", "adaptive"}
            `reproject.reproject_interp`, `reproject.reproject_exact` (flux-exact
            spherical-polygon overlap) or `reproject.reproject_adaptive`.
        conserve_flux : {"auto", True, False}
            The reproject functions return area-weighted means, which preserve
            *surface brightness*.  Images in flux per pixel (e.g. nanomaggies) are
            multiplied by the ratio of the output to the input pixel area
            (``proj_plane_pixel_area`` at the reference pixels, exact for the
            tangent-plane projections of galaxy images) so that the total flux is
            kept.  ``"auto"`` (the default) decides from the unit: per-pixel fluxes
            are scaled, units with a solid angle (e.g. ``MJy / sr``, surface
            brightnesses already) are left unscaled.  `False` never scales (the
            values then change with the pixel area); `True` is the same as "auto".
            Every resampling is recorded in the stack's ``meta["reprojection"]``
            (band, input and output pixel scale, method, flux scaling), which
            predictions copy into their provenance.
        **kwargs
            Further options of the reproject function (e.g. ``order="bicubic"``).

        Returns
        -------
        BandStack
            Bands already on the target grid are unchanged.  The uncertainty is
            reprojected as a variance (for ``"exact"``/``"adaptive"`` divided by the
            number of input pixels averaged into an output pixel when binning
            down, which ignores the correlation resampling creates; for
            ``"interp"`` it is an upper bound).  Output pixels touching a masked
            input pixel, non-finite, or not fully covered by the input image are
            masked (the latter with an `~astropy.utils.exceptions.AstropyUserWarning`).

        Raises
        ------
        ValueError
            A band (or the target) has no WCS, an unknown ``method``, a target without shape.

        Examples
        --------
        >>> import numpy as np
        >>> from astropy.wcs import WCS
        >>> def tan(scale, n):
        ...     w = WCS(naxis=2)
        ...     w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        ...     w.wcs.crval, w.wcs.crpix = [150, 2], [(n + 1) / 2, (n + 1) / 2]
        ...     w.wcs.cdelt = [-scale / 3600, scale / 3600]
        ...     return w
        >>> yy, xx = np.mgrid[:32, :32]
        >>> image = np.exp(-((xx - 15.5) ** 2 + (yy - 15.5) ** 2) / 18.0)
        >>> stack = BandStack({"r": image}, wcs=tan(1.0, 32), unit="Jy")
        >>> coarse = stack.reproject((tan(2.0, 16), (16, 16)), method="exact", conserve_flux=True)
        >>> coarse.shape
        (16, 16)
        >>> bool(abs(coarse.to_array().sum() / image.sum() - 1) < 0.01)
        True
        """
        if method not in _METHODS:
            raise ValueError(f"reproject: method must be one of {', '.join(_METHODS)}; got {method!r}")
        wcs_out, shape_out = self._resolve_target(target)
        built, records = _reproject_all(self._images, wcs_out, shape_out, method=method, conserve_flux=conserve_flux,
                                        kwargs=kwargs)
        meta = dict(self._meta)
        meta["reprojection"] = [*meta.get("reprojection", ()), *records]
        return self._from_images(built, meta)

    def _resolve_target(self, target):
        if isinstance(target, (str, Band)):
            band = self._lookup(target)
            im = self._images[band]
            if im.wcs is None:
                raise ValueError(f"reproject: target band {band.name!r} has no WCS")
            return im.wcs, im.shape
        if isinstance(target, NDData):
            if target.wcs is None:
                raise ValueError("reproject: the target NDData has no WCS")
            return _as_wcs(target.wcs, "target"), tuple(np.shape(target.data))
        if isinstance(target, fits.Header):
            if target.get("NAXIS") != 2:
                raise ValueError(
                    "reproject: the target header needs NAXIS = 2 with NAXIS1/NAXIS2 (or give (wcs, shape))"
                )
            return _as_wcs(target, "target"), (int(target["NAXIS2"]), int(target["NAXIS1"]))
        if isinstance(target, WCS):
            if target.array_shape is None:
                raise ValueError("reproject: the target WCS has no array_shape; give (wcs, (ny, nx))")
            return target, tuple(target.array_shape)
        if isinstance(target, tuple) and len(target) == 2:
            wcs, shape = target
            shape = tuple(int(n) for n in shape)
            if len(shape) != 2 or min(shape) < 1:
                raise ValueError(f"reproject: target shape must be (ny, nx) with positive sizes, got {shape}")
            return _as_wcs(wcs, "target"), shape
        raise TypeError(
            "reproject: target must be a band name, a FITS header, a WCS with array_shape, (wcs, shape) "
            f"or an NDData, got {type(target).__name__}"
        )

    def cutout(self, position, size, *, mode="trim") -> "BandStack":
        """Cut the same region out of every band with `~astropy.nddata.Cutout2D`.

        Parameters
        ----------
        position : `~astropy.coordinates.SkyCoord` or tuple of float
            Centre of the cutout: a sky position (needs a WCS) or pixel ``(x, y)``.
        size : int, tuple or `~astropy.units.Quantity`
            As for `~astropy.nddata.Cutout2D`: ``(ny, nx)`` pixels, or angles.
        mode : {"trim", "partial", "strict"}
            As for `~astropy.nddata.Cutout2D`.  With ``"partial"`` the pixels
            outside the image are NaN and masked.

        Returns
        -------
        BandStack
            With the WCS of the cutout, so every pixel keeps its sky position.

        Examples
        --------
        >>> import numpy as np
        >>> s = BandStack({"r": np.arange(100.0).reshape(10, 10)}, unit="Jy")
        >>> c = s.cutout((4, 5), (3, 3))
        >>> c["r"].data
        array([[43., 44., 45.],
               [53., 54., 55.],
               [63., 64., 65.]])
        """
        if mode not in ("trim", "partial", "strict"):
            raise ValueError(f"cutout: mode must be 'trim', 'partial' or 'strict', got {mode!r}")
        needs_wcs = isinstance(position, SkyCoord) or (
            isinstance(size, u.Quantity) and size.unit.physical_type == "angle"
        )
        if not isinstance(position, SkyCoord):
            if not (isinstance(position, (tuple, list, np.ndarray)) and np.shape(position) == (2,)):
                raise TypeError(f"cutout: position must be a SkyCoord or pixel (x, y), got {position!r}")
        built = {}
        for band, im in self._images.items():
            if needs_wcs and im.wcs is None:
                raise ValueError(
                    f"cutout: band {band.name!r} has no WCS, which a sky position or angular size needs; "
                    "give a pixel position (x, y) and a size in pixels"
                )

            def cut(array, fill):
                return Cutout2D(array, position, size, wcs=im.wcs, mode=mode, fill_value=fill, copy=True)

            main = cut(im.data, np.nan)
            mask = None if im.mask is None else cut(im.mask, True).data
            if mode == "partial":
                outside = ~cut(np.ones(im.shape, dtype=bool), False).data
                if outside.any():
                    mask = outside if mask is None else mask | outside
            unc = None if im.uncertainty is None else cut(im.uncertainty, np.nan).data
            built[band] = _Image(main.data, im.unit, unc, mask, main.wcs, copy.copy(im.meta))
        return self._from_images(built, self._meta)

    # ------------------------------------------------------------------ arrays and statistics
    def to_array(self, bands=None, *, masked_value=None) -> np.ndarray:
        """The images as one float32 array of shape ``(n_band, ny, nx)``.

        Parameters
        ----------
        bands : list of str, optional
            Bands to include, in this order (default: all, in wavelength order).
        masked_value : float, optional
            Value for masked pixels; by default they keep their data (NaN where
            not finite).

        Examples
        --------
        >>> import numpy as np
        >>> s = BandStack({"g": np.eye(3), "r": 2 * np.eye(3)}, unit="Jy")
        >>> s.to_array(["r"])[0, 1, 1], s.to_array().dtype
        (np.float32(2.0), dtype('float32'))
        """
        chosen = self._bands if bands is None else [self._lookup(b) for b in bands]
        out = np.empty((len(chosen), *self.shape), dtype=np.float32)
        for i, band in enumerate(chosen):
            im = self._images[band]
            out[i] = im.data
            if masked_value is not None and im.mask is not None:
                out[i][im.mask] = masked_value
        return out

    def reference_flux(self, *, bands=None, percentile=99.5) -> float:
        """The galaxy's reference flux (`bandsynth.scaling.reference_flux`, masked pixels ignored).

        In units of :attr:`unit`.

        Examples
        --------
        >>> import numpy as np
        >>> s = BandStack({"g": np.arange(100.0).reshape(10, 10)}, unit="Jy")
        >>> round(s.reference_flux(percentile=50), 6)
        49.5
        """
        from .scaling import reference_flux

        chosen = self._bands if bands is None else [self._lookup(b) for b in bands]
        images = []
        for band in chosen:
            im = self._images[band]
            data = np.asarray(im.data, dtype=float)
            images.append(data if im.mask is None else np.where(im.mask, np.nan, data))
        return reference_flux(images, percentile=percentile)

    def morphology(self, band, **kwargs):
        """Morphology of one band: `bandsynth.morphology.measure_morphology` on ``self[band]``."""
        from .morphology import measure_morphology

        return measure_morphology(self[band], **kwargs)


def _rebuild_stack(images, meta):
    return BandStack._from_images(images, meta)


# ---------------------------------------------------------------------- helpers: parsing
def _resolve_mapping(mapping, what, *, allowed=None):
    """Mapping keyed by band names -> dict keyed by Band, in wavelength order."""
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{what} must be a mapping of band name to value, got {type(mapping).__name__}")
    if not mapping and allowed is None:
        raise ValueError(f"{what} is empty; give at least one band")
    out = {}
    for key, value in mapping.items():
        band = get_band(key)
        if band in out:
            raise BandInputError(f"band {band.name!r} is given twice in {what} (as {key!r})", band=band)
        if allowed is not None and band not in allowed:
            raise BandInputError(f"{what} given for band {band.name!r}, which is not among the images", band=band)
        out[band] = value
    return dict(sorted(out.items(), key=lambda kv: kv[0].wavelength.value))


def _parse_unit(unit, where, *, band=None, path=None):
    """Parse a unit with `bandsynth.units.parse_unit`; errors name ``where``."""
    try:
        return parse_unit(unit)
    except (TypeError, ValueError) as err:
        raise BandInputError(
            f"{where}: {unit!r} is not a unit astropy understands ({err})",
            band=band, path=path,
        ) from None


def _as_wcs(wcs, where, *, band=None, path=None):
    if isinstance(wcs, fits.Header):
        wcs = WCS(wcs)
    elif not isinstance(wcs, WCS):
        raise BandTypeError(
            f"{where}: the WCS must be an astropy.wcs.WCS or a FITS header, got {type(wcs).__name__}",
            band=band, path=path,
        )
    else:
        wcs = copy.deepcopy(wcs)
    if wcs.pixel_n_dim != 2:
        raise BandInputError(
            f"{where}: expected a 2-D WCS, got one with {wcs.pixel_n_dim} pixel axes",
            band=band, path=path,
        )
    return wcs


def _uncertainty_factor(band, unit, data_unit, path):
    try:
        return conversion_factor(unit, data_unit, band=band, path=path)
    except u.UnitsError as err:
        raise BandUnitError(
            f"band {band.name!r}: the uncertainty's unit does not convert: {err}",
            band=band, path=path,
        ) from None


def _std_array(band, unc, data_unit, path=None):
    """Standard deviation as a float array in the data's unit, from any uncertainty form."""
    if isinstance(unc, NDUncertainty):
        if not isinstance(unc, StdDevUncertainty):
            try:
                unc = unc.represent_as(StdDevUncertainty)
            except (TypeError, ValueError, AttributeError) as err:
                raise BandTypeError(
                    f"band {band.name!r}: cannot use a {type(unc).__name__} as a standard deviation ({err})",
                    band=band,
                ) from None
        own = unc._unit if hasattr(unc, "_unit") else None
        arr = np.asarray(unc.array, dtype=float)
        if own is not None and data_unit is not None and own != data_unit:
            arr = arr * _uncertainty_factor(band, own, data_unit, path)
        return arr
    if isinstance(unc, u.Quantity):
        if data_unit is None:
            return np.asarray(unc.value, dtype=float)
        return np.asarray(unc.value, dtype=float) * _uncertainty_factor(band, unc.unit, data_unit, path)
    arr = np.asarray(unc)
    if arr.dtype.kind not in "fiu":
        raise BandTypeError(
            f"band {band.name!r}: uncertainty must be a numeric array, got dtype {arr.dtype}",
            band=band,
        )
    return arr.astype(float)


def _image_from_value(band, value, *, wcs=None, unit=None, uncertainty=None, mask=None, source=None, path=None):
    """Validate one band's image and return an :class:`_Image` (unit not yet converted)."""
    label = f"band {band.name!r}" + (f" ({source})" if source else "")
    own_unc = own_mask = own_wcs = None
    own_meta = {}
    own_unit = None
    if isinstance(value, NDData):
        data = value.data
        own_unit, own_unc, own_mask, own_wcs = value.unit, value.uncertainty, value.mask, value.wcs
        own_meta = value.meta
    elif isinstance(value, u.Quantity):
        data, own_unit = value.value, value.unit
    elif isinstance(value, np.ma.MaskedArray):
        data, own_mask = value.data, np.ma.getmaskarray(value)
    else:
        data = value
    if isinstance(data, u.Quantity):  # NDData may wrap one
        data, own_unit = data.value, own_unit or data.unit
    data = np.asarray(data)
    if data.dtype.kind not in "fiu":
        raise BandTypeError(
            f"{label}: the image must be a real numeric array, got dtype {data.dtype}",
            band=band, path=path,
        )
    if data.ndim != 2:
        raise BandInputError(f"{label}: expected a 2-D image, got an array of shape {data.shape}", band=band, path=path)
    if data.size == 0:
        raise BandInputError(f"{label}: the image is empty ({data.shape[0]} x {data.shape[1]} pixels)",
                             band=band, path=path)
    data = np.array(data, dtype=np.float32 if data.dtype in (np.float16, np.float32) else np.float64)

    this_unit = own_unit if own_unit is not None else unit
    if this_unit is None:
        raise BandInputError(
            f"{label} has no unit (no BUNIT / NDData unit); pass unit=, e.g. unit='nanomaggy'",
            band=band, path=path,
        )

    if own_unc is not None and uncertainty is not None:
        raise BandInputError(
            f"{label}: uncertainty is given twice (in the image and in uncertainty=)",
            band=band, path=path,
        )
    unc = own_unc if own_unc is not None else uncertainty
    if unc is not None:
        unc = _std_array(band, unc, this_unit, path)
        if unc.shape != data.shape:
            raise BandInputError(
                f"{label}: uncertainty has shape {unc.shape}, expected the image shape {data.shape}",
                band=band, path=path,
            )
        if np.any(unc < 0):
            raise BandInputError(
                f"{label}: the uncertainty (a standard deviation) has negative values",
                band=band, path=path,
            )

    bad = np.zeros(data.shape, dtype=bool)
    for given in (own_mask, mask):
        if given is None:
            continue
        given = np.asarray(given)
        if given.ndim == 0:  # NDData allows a scalar mask
            given = np.broadcast_to(given, data.shape)
        if given.dtype.kind not in "biu":
            raise BandTypeError(f"{label}: mask must be a boolean array, got dtype {given.dtype}", band=band, path=path)
        if given.shape != data.shape:
            raise BandInputError(
                f"{label}: mask has shape {given.shape}, expected the image shape {data.shape}",
                band=band, path=path,
            )
        bad |= given.astype(bool)
    has_mask = own_mask is not None or mask is not None

    # Warn about the bad pixels nobody had masked yet; all of them end up masked.
    nonfinite = ~np.isfinite(data)
    newly = nonfinite & ~bad
    if newly.any():
        warnings.warn(
            f"{label}: {int(newly.sum())} non-finite pixel(s) (NaN/inf) are masked",
            AstropyUserWarning,
            stacklevel=4,
        )
    if unc is not None:
        bad_unc = ~np.isfinite(unc) & ~nonfinite & ~bad
        if bad_unc.any():
            warnings.warn(
                f"{label}: {int(bad_unc.sum())} pixel(s) with a non-finite uncertainty are masked",
                AstropyUserWarning,
                stacklevel=4,
            )
            nonfinite |= bad_unc
    if nonfinite.any():
        bad |= nonfinite
        has_mask = True

    good = data[~bad]
    if good.size == 0:
        raise BandInputError(f"{label}: every pixel is masked or non-finite", band=band, path=path)
    lo, hi = good.min(), good.max()
    if lo == hi:
        what = "all-zero" if lo == 0 else f"constant (every unmasked pixel is {lo:g})"
        raise BandInputError(f"{label} is {what}: an image without structure cannot be used", band=band, path=path)

    if own_wcs is not None and not isinstance(own_wcs, WCS):
        raise BandTypeError(
            f"{label}: its WCS must be an astropy.wcs.WCS, got {type(own_wcs).__name__}",
            band=band, path=path,
        )
    chosen_wcs = own_wcs if own_wcs is not None else wcs
    if chosen_wcs is not None:
        chosen_wcs = _as_wcs(chosen_wcs, label, band=band, path=path)
    return _Image(data, this_unit, unc, bad if has_mask else None, chosen_wcs, copy.copy(own_meta), path)


def _fspath(path, what, *, band=None):
    try:
        return os.fspath(path)
    except TypeError:
        raise BandTypeError(f"{what}: expected a file path, got {type(path).__name__}", band=band) from None


def _image_hdus(hdul):
    """Indices of the HDUs holding image data."""
    return [i for i, h in enumerate(hdul) if h.is_image and h.header.get("NAXIS", 0) > 0]


def _open_fits(path, label, *, band=None):
    try:
        return fits.open(path)
    except OSError as err:
        raise BandFileError(f"{label}: cannot read {path!r} as FITS: {err}", band=band, path=path) from err


def _read_ccd(path, index, *, label, unit, hdu_uncertainty, hdu_mask, header, band=None):
    """`CCDData.read` of one HDU, with the unit read by bandsynth's parser."""
    if "BUNIT" in header:
        file_unit = _parse_unit(header["BUNIT"], f"{label}: BUNIT of {path!r}", band=band, path=path)
    elif unit is None:
        raise BandInputError(
            f"{label}: {path!r} HDU {index} has no BUNIT keyword and no unit= was given; "
            "pass unit= (e.g. unit='nanomaggy')",
            band=band, path=path,
        )
    else:
        file_unit = unit
    try:
        return CCDData.read(path, hdu=index, unit=file_unit, hdu_uncertainty=hdu_uncertainty, hdu_mask=hdu_mask)
    except (ValueError, TypeError) as err:
        raise BandInputError(f"{label}: cannot read {path!r} HDU {index}: {err}", band=band, path=path) from err


def _read_band_file(band, path, *, hdu, unit):
    path = _fspath(path, f"band {band.name!r}", band=band)
    label = f"band {band.name!r}"
    if not os.path.isfile(path):
        raise BandFileNotFoundError(f"{label}: FITS file {path!r} not found", band=band, path=path)
    with _open_fits(path, label, band=band) as hdul:
        images = _image_hdus(hdul)
        if hdu is None:
            if not images:
                raise BandInputError(
                    f"{label}: FITS file {path!r} contains no image HDU (expected a 2-D image in the "
                    "primary HDU or an image extension)",
                    band=band, path=path,
                )
            index = images[0]
        else:
            try:
                index = hdul.index_of(hdu)
            except (KeyError, IndexError):
                raise BandInputError(f"{label}: FITS file {path!r} has no HDU {hdu!r}", band=band, path=path) from None
            if index not in images:
                raise BandInputError(
                    f"{label}: HDU {hdu!r} of {path!r} is not an image HDU with data",
                    band=band, path=path,
                )
        header = hdul[index].header.copy()
    ccd = _read_ccd(
        path, index, label=label, unit=unit, hdu_uncertainty="UNCERT", hdu_mask="MASK", header=header, band=band
    )
    ccd.meta["FILENAME"] = fits_ascii(os.path.basename(path))  # exact name: in the provenance
    im = _image_from_value(band, ccd, source=path, path=path)
    return im, {"band": band.name, "file": path, "checksum": sha256_file(path)}


def _read_multi_extension(path, *, unit):
    path = _fspath(path, "from_fits")
    if not os.path.isfile(path):
        raise BandFileNotFoundError(f"multi-extension FITS file {path!r} not found", path=path)
    label = f"file {path!r}"
    found = {}
    with _open_fits(path, label) as hdul:
        images = _image_hdus(hdul)
        if not images:
            raise BandInputError(f"{label} contains no image HDU (expected one image extension per band)", path=path)
        names = {hdul[i].name.upper() for i in images}
        for i in images:
            name = hdul[i].name.upper()
            if i == 0 and name in ("", "PRIMARY"):
                raise BandInputError(
                    f"{label}: the primary HDU holds an image but no EXTNAME naming its band; "
                    "give every band image an EXTNAME (e.g. 'NUV')",
                    path=path,
                )
            base = name
            for suffix in ("_UNCERT", "_MASK"):
                if name.endswith(suffix) and name[: -len(suffix)] in names:
                    base = None
            if base is None:
                continue
            try:
                band = get_band(name)
            except ValueError:
                known = ", ".join(b.name for b in list_bands())
                raise BandInputError(
                    f"{label}: HDU {i} has EXTNAME {name!r}, which is not a known band; known bands are: {known}",
                    path=path,
                ) from None
            if band in found:
                raise BandInputError(
                    f"{label}: band {band.name!r} appears twice (EXTNAME {name!r})",
                    band=band, path=path,
                )
            found[band] = (i, name, hdul[i].header.copy())
    checksum = sha256_file(path)
    built, inputs = {}, []
    for band in sorted(found, key=lambda b: b.wavelength.value):
        i, name, header = found[band]
        label_b = f"band {band.name!r}"
        ccd = _read_ccd(
            path, i, label=label_b, unit=unit, hdu_uncertainty=f"{name}_UNCERT", hdu_mask=f"{name}_MASK", header=header,
            band=band,
        )
        ccd.meta["FILENAME"] = fits_ascii(os.path.basename(path))  # exact name: in the provenance
        built[band] = _image_from_value(band, ccd, source=f"{path}[{name}]", path=path)
        inputs.append({"band": band.name, "file": path, "checksum": checksum})
    return built, inputs


# ---------------------------------------------------------------------- helpers: units and grids
def _convert_unit(band, im, target, *, requested):
    """Convert ``im`` in place to ``target`` through `bandsynth.units.to_unit`."""
    if im.unit == target:
        return
    try:
        if im.uncertainty is None:
            im.data = to_unit(im.data, im.unit, target, band=band, path=im.path)
        else:
            im.data, im.uncertainty = to_unit(
                im.data, im.unit, target, band=band, path=im.path, uncertainty=im.uncertainty
            )
    except (u.UnitsError, ValueError):
        why = "the unit requested with unit=" if requested else "the stack's unit (that of its first band)"
        raise BandUnitError(
            f"band {band.name!r}: cannot convert its unit {im.unit} to {target}, {why}; "
            "the bands of a stack must be in convertible flux units",
            band=band, path=im.path,
        ) from None
    im.unit = target


def _grid_offset(wcs_a, wcs_b, shape):
    """Largest pixel distance between where two WCSs put the same sky points (inf if they cannot be compared)."""
    ny, nx = shape
    x = np.array([0.0, nx - 1.0, 0.0, nx - 1.0, (nx - 1) / 2.0])
    y = np.array([0.0, 0.0, ny - 1.0, ny - 1.0, (ny - 1) / 2.0])
    try:
        world = wcs_a.pixel_to_world(x, y)
        if not isinstance(world, (list, tuple)):
            world = [world]
        xb, yb = wcs_b.world_to_pixel(*world)
    except Exception:  # any failure (different frames, axis types...) means "not the same grid"
        return np.inf
    offset = float(np.max(np.hypot(np.asarray(xb) - x, np.asarray(yb) - y)))
    return offset if np.isfinite(offset) else np.inf


def _check_grid(built):
    bands = list(built)
    first = bands[0]
    shape = built[first].shape
    different = [b for b in bands if built[b].shape != shape]
    if different:
        listing = ", ".join(f"{b.name} {built[b].shape}" for b in bands)
        raise ValueError(
            f"bands have different shapes ({listing}); put them on one pixel grid first, e.g. "
            f"BandStack.from_fits(..., reproject_to={first.name!r}), "
            f"BandStack.from_arrays(..., reproject_to={first.name!r}) or BandStack.reproject"
        )
    ref = built[first].wcs
    for band in bands[1:]:
        if ref is None:
            break
        offset = _grid_offset(ref, built[band].wcs, shape)
        if offset > _GRID_TOLERANCE:
            raise ValueError(
                f"band {band.name!r} is not on the pixel grid of band {first.name!r} (its WCS differs by up to "
                f"{offset:.3g} pixels); reproject onto one grid, e.g. reproject_to={first.name!r} in "
                "BandStack.from_fits / BandStack.from_arrays, or BandStack.reproject"
            )


# ---------------------------------------------------------------------- helpers: reprojection
def _is_surface_brightness(unit) -> bool:
    """Whether ``unit`` is per solid angle (its SI decomposition has rad**-2)."""
    try:
        dec = u.Unit(unit).decompose()
    except (u.UnitsError, ValueError):
        return False
    return any(base == u.rad and power < 0 for base, power in zip(dec.bases, dec.powers))


def _pixel_area(wcs, label):
    from astropy.wcs.utils import proj_plane_pixel_area

    try:
        return float(proj_plane_pixel_area(wcs.celestial if wcs.has_celestial else wcs))
    except (ValueError, TypeError) as err:
        raise ValueError(f"{label}: cannot measure the pixel area of its WCS ({err})") from None


def _reproject_all(images, wcs_out, shape_out, *, method, conserve_flux, kwargs):
    """Resample every band; returns the new images and one record per band that moved."""
    if conserve_flux not in ("auto", True, False):
        raise ValueError(f"reproject: conserve_flux must be 'auto', True or False; got {conserve_flux!r}")
    built, records = {}, []
    for band, im in images.items():
        new = _reproject_image(band, im, wcs_out, shape_out, method=method, conserve_flux=conserve_flux,
                               kwargs=kwargs)
        if new is not im:
            a_in, a_out = _pixel_area(im.wcs, f"band {band.name!r}"), _pixel_area(wcs_out, "target")
            scaled = conserve_flux is not False and not _is_surface_brightness(im.unit)
            records.append({
                "band": band.name, "method": method,
                "pixel_scale_in": round(float(np.sqrt(a_in)) * 3600.0, 6),
                "pixel_scale_out": round(float(np.sqrt(a_out)) * 3600.0, 6),
                "shape_out": [int(n) for n in shape_out],
                "flux_scaled_by_area_ratio": bool(scaled),
                "area_ratio": float(a_out / a_in),
                "unit": str(im.unit),
            })
        built[band] = new
    return built, records


def _reproject_image(band, im, wcs_out, shape_out, *, method, conserve_flux, kwargs):
    """Resample one band onto ``(wcs_out, shape_out)`` with the reproject package."""
    if method not in _METHODS:
        raise ValueError(f"reproject: method must be one of {', '.join(_METHODS)}; got {method!r}")
    label = f"band {band.name!r}"
    if im.wcs is None:
        raise ValueError(f"{label} has no WCS; reprojection needs a WCS on every band (pass wcs=)")
    if im.shape == tuple(shape_out) and _grid_offset(im.wcs, wcs_out, shape_out) <= _GRID_TOLERANCE:
        return im
    import reproject

    func = {
        "interp": reproject.reproject_interp,
        "exact": reproject.reproject_exact,
        "adaptive": reproject.reproject_adaptive,
    }[method]

    def run(array, **extra):
        try:
            return func((np.array(array, dtype=float), im.wcs), wcs_out, shape_out=shape_out, **{**kwargs, **extra})
        except (ValueError, TypeError) as err:
            raise ValueError(f"{label}: reproject_{method} failed: {err}") from err

    data, footprint = run(im.data)
    bad = ~np.isfinite(data)
    outside = footprint < _MIN_COVERAGE
    if outside.any():
        warnings.warn(
            f"{label}: {int(outside.sum())} pixel(s) of the target grid are not (fully) covered by the "
            "band's image; they are masked",
            AstropyUserWarning,
            stacklevel=4,
        )
        bad |= outside
    if im.mask is not None and im.mask.any():
        mask_extra = {"order": "bilinear"} if method == "interp" else {}
        touched, _ = run(im.mask.astype(float), **mask_extra)
        bad |= ~(np.nan_to_num(touched, nan=1.0) <= 1e-6)
    a_in, a_out = _pixel_area(im.wcs, label), _pixel_area(wcs_out, "target")
    variance = None
    if im.uncertainty is not None:
        variance, _ = run(im.uncertainty**2)
        if method in ("exact", "adaptive"):
            # an output pixel averages about a_out / a_in independent input pixels
            variance = variance * min(1.0, a_in / a_out)
    if conserve_flux is not False and not _is_surface_brightness(im.unit):
        ratio = a_out / a_in
        data = data * ratio
        if variance is not None:
            variance = variance * ratio**2
    unc = None if variance is None else np.sqrt(variance)
    mask = bad if (bad.any() or im.mask is not None) else None
    return _Image(data, im.unit, unc, mask, copy.deepcopy(wcs_out), copy.copy(im.meta))
