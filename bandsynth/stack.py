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
from collections.abc import Mapping

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import CCDData, Cutout2D, NDData, StdDevUncertainty
from astropy.wcs import WCS

from ._metadata import frozen, without_wcs_keywords
from .bands import Band, get_band
from .resample import METHODS, check_grid, describe_target, regrid, reproject_all
from .errors import BandInputError
from .stack_io import (BandImage, as_unit, as_wcs, convert_unit, image_from_value, read_band_file,
                       read_multi_extension, resolve_mapping)
from .units import format_unit
from .zeropoints import apply_zeropoint, is_count_unit

__all__ = ["BandStack"]


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
        Unit of the bands that carry none, and the unit every band is converted to
        (a count unit such as ``"DN"`` or ``"ct/s"`` is only the former: images in
        counts become nanomaggies through their zero point).
    zeropoint : float or mapping of band to float, optional
        AB zero point of images in counts (DN, ADU, electrons, or those per second):
        the AB magnitude of a source of one count in total.  Default: the zero point
        the image's header states (`bandsynth.zeropoints.header_zeropoint`; read from
        NDData/CCDData ``meta``).  Each conversion is recorded in ``meta["zeropoints"]``.
    uncertainty : mapping of band to array-like or `~astropy.nddata.NDUncertainty`, optional
        Per-pixel standard deviation (other uncertainty types are converted).
    mask : mapping of band to bool array, optional
        `True` marks a bad pixel; combined with the image's own mask.
    meta : mapping, optional
        Metadata of the stack as a whole (e.g. the truth of a mock galaxy).
    reproject_to : str, `~bandsynth.bands.Band` or a grid, optional
        Resample every band onto this band's pixel grid, or onto a grid as
        :meth:`reproject` takes one (``(wcs, shape)``, a header, a pixel scale, ...).
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
        zeropoint=None,
        uncertainty=None,
        mask=None,
        meta=None,
        reproject_to=None,
        reproject_kw=None,
    ):
        images = resolve_mapping(images, "images")
        extras = {}
        for what, value in (("uncertainty", uncertainty), ("mask", mask), ("wcs", wcs)):
            if isinstance(value, Mapping) and not isinstance(value, fits.Header):
                extras[what] = resolve_mapping(value, what, allowed=images)
            else:
                if what != "wcs" and value is not None:
                    raise TypeError(f"{what} must be a mapping of band name to array, got {type(value).__name__}")
                extras[what] = {band: value for band in images}
        common_unit = None if unit is None else as_unit(unit, "unit")
        built = {band: image_from_value(band, value, wcs=extras["wcs"].get(band), unit=common_unit,
                                        uncertainty=extras["uncertainty"].get(band), mask=extras["mask"].get(band))
                 for band, value in images.items()}
        self._assemble(built, unit=common_unit, zeropoint=zeropoint, meta=meta, reproject_to=reproject_to,
                       reproject_kw=reproject_kw)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(cls, images, **kwargs):
        """Build a stack from arrays, Quantities or NDData/CCDData objects.

        Same parameters as the class itself (see :class:`BandStack`).

        Parameters
        ----------
        images : mapping of band name or `~bandsynth.bands.Band` to array, Quantity or NDData
            One 2-D image per band.
        **kwargs
            ``wcs``, ``unit``, ``uncertainty``, ``mask``, ``meta``,
            ``reproject_to`` and ``reproject_kw``, as for :class:`BandStack`.

        Returns
        -------
        BandStack
            The validated stack.

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
    def from_fits(cls, source, *, hdu=None, extnames=None, unit=None, zeropoint=None, meta=None, reproject_to=None,
                  reproject_kw=None):
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
        extnames : mapping of EXTNAME to band, optional
            For one multi-extension file: read only these HDUs, as these bands
            (``{"g": "KiDS_g", "Z": "VISTA_Z"}``), when its extension names are not
            the registry's band names or it holds more bands than wanted.
        unit : str or `~astropy.units.UnitBase`, optional
            Unit of images without ``BUNIT``; every band is converted to it
            (unless it is a count unit, see :class:`BandStack`).
        zeropoint : float or mapping of band to float, optional
            AB zero point of images in counts; default: the one the header states
            (``FLUXMAG0``, ``PHOTZP``/``PHOTSYS``, 2MASS ``MAGZP``, ``MAGZERO``, ...,
            GALEX counts/s; see `bandsynth.zeropoints`).  An image without ``BUNIT``
            whose header states a zero point, or given one here, is read as counts (counts/s for GALEX;
            ``unit=`` DN/ADU names them).
        meta : mapping, optional
            Metadata of the stack.  ``meta["inputs"]`` is set to a list of
            ``{"band", "file", "hdu", "checksum"}`` records (the HDU read, by EXTNAME
            or number; SHA-256 of each file) unless given.
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
        common_unit = None if unit is None else as_unit(unit, "unit")
        if isinstance(source, Mapping):
            paths = resolve_mapping(source, "files")
            hdus = (
                resolve_mapping(hdu, "hdu", allowed=paths)
                if isinstance(hdu, Mapping)
                else dict.fromkeys(paths, hdu)
            )
            if extnames is not None:
                raise ValueError("extnames= applies to one multi-extension file; with one file per band, the "
                                 "mapping's keys name the bands")
            # a file without BUNIT given a zero point is in counts, whatever flux unit unit= gives the others (it
            # asked for unit=, with which the zero point was then refused as one of an image in a physical unit)
            counted = (set(resolve_mapping(zeropoint, "zeropoint", allowed=paths)) if isinstance(zeropoint, Mapping)
                       else set(paths) if zeropoint is not None else set())
            built, inputs = {}, []
            for band, path in paths.items():
                own = u.ct if band in counted and not is_count_unit(common_unit or u.nmgy) else common_unit
                built[band], record = read_band_file(band, path, hdu=hdus.get(band), unit=own)
                inputs.append({**record, "hdu_named": hdus.get(band) is not None})  # the caller's, or the reader's
        elif isinstance(source, (str, os.PathLike)):
            if hdu is not None:
                raise ValueError("hdu= applies to one file per band; a multi-extension file names its bands by EXTNAME")
            built, inputs = read_multi_extension(source, unit=common_unit, extnames=extnames)
        else:
            raise TypeError(
                "from_fits expects a mapping of band name to FITS path or the path of one multi-extension "
                f"file, got {type(source).__name__}"
            )
        meta = dict(meta or {})
        meta.setdefault("inputs", inputs)
        self = cls.__new__(cls)
        self._assemble(built, unit=common_unit, zeropoint=zeropoint, meta=meta, reproject_to=reproject_to,
                       reproject_kw=reproject_kw)
        return self

    def _assemble(self, built, *, unit, zeropoint, meta, reproject_to, reproject_kw):
        """Common end of the public constructors: zero points, units, grids, freezing."""
        meta = dict(meta or {})
        bands = list(built)  # already in wavelength order
        if isinstance(zeropoint, Mapping):
            zeropoints = resolve_mapping(zeropoint, "zeropoint", allowed=built)
        else:
            zeropoints = {} if zeropoint is None else {b: zeropoint for b in built if is_count_unit(built[b].unit)}
            if zeropoint is not None and not zeropoints:
                raise ValueError(f"zeropoint={zeropoint!r} given, but no band is in counts (DN, ADU, counts/s, ...): "
                                 f"the bands are in {', '.join(sorted({str(im.unit) for im in built.values()}))}")
        records = [apply_zeropoint(band, im, zeropoints.get(band)) for band, im in built.items()]
        if any(records):
            meta["zeropoints"] = [*meta.get("zeropoints", ()), *filter(None, records)]
        # Counts are never a stack's unit: once a zero point has turned them into nanomaggies,
        # a count unit= only named the unit of the bands that had none.
        counted = unit is not None and is_count_unit(unit) and any(records)
        target_unit = built[bands[0]].unit if unit is None or counted else unit
        for band, im in built.items():
            convert_unit(band, im, target_unit, requested=unit is not None)
        with_wcs = [b for b in bands if built[b].wcs is not None]
        if with_wcs and len(with_wcs) != len(bands):
            lacking = next(b for b in bands if built[b].wcs is None)
            path = built[lacking].path
            raise BandInputError(
                f"band {lacking.name!r}{f' ({path!r})' if path else ''} has no celestial WCS while band "
                f"{with_wcs[0].name!r} has one: the bands must share a sky grid, so each needs one (in a file, its "
                "header's CTYPEi, CRVALi, CRPIXi and CDELTi or CDi_j; for an array, wcs=)", band=lacking, path=path)
        if reproject_to is not None:
            if isinstance(reproject_to, (str, Band)):
                target = get_band(reproject_to)
                if target not in built:
                    raise ValueError(
                        f"reproject_to={reproject_to!r}: band {target.name!r} is not among the bands "
                        f"({', '.join(b.name for b in bands)})"
                    )
                wcs_out, shape_out = built[target].wcs, built[target].shape
                if wcs_out is None:
                    raise ValueError(
                        f"reproject_to={reproject_to!r}: band {target.name!r} has no WCS to reproject onto")
            else:  # a grid, as reproject takes one; a pixel scale over the bluest band's field
                wcs_out, shape_out = _target_grid(reproject_to, built[bands[0]])
            kw = dict(reproject_kw or {})
            method = kw.pop("method", "auto")
            conserve = kw.pop("conserve_flux", "auto")
            built, records = reproject_all(built, wcs_out, shape_out, method=method, conserve_flux=conserve, kwargs=kw,
                                           requested=describe_target(reproject_to))
            meta["reprojection"] = [*meta.get("reprojection", ()), *records]
        check_grid(built)
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
        object.__setattr__(self, "_meta", frozen(dict(meta or {})))

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
        return CCDData(np.array(im.data), unit=im.unit, mask=None if im.mask is None else np.array(im.mask),
                       uncertainty=None if im.uncertainty is None else StdDevUncertainty(np.array(im.uncertainty)),
                       wcs=copy.deepcopy(im.wcs), meta=copy.deepcopy(im.meta))

    def view(self, key, window=None) -> NDData:
        """Band ``key`` (or a ``window`` of it) as an `~astropy.nddata.NDData` of read-only views: nothing is copied.

        ``stack[key]`` copies the whole image; code that reads part of a large image, tile by
        tile (`bandsynth.inputs.prepare_inputs`), or only looks at its metadata uses this.

        Parameters
        ----------
        key : str or `~bandsynth.bands.Band`
            Band name, alias or Band.
        window : tuple of two slices, optional
            The rows and columns to see (default: the whole image).

        Returns
        -------
        `~astropy.nddata.NDData`
            ``data``, ``uncertainty`` (a `~astropy.nddata.StdDevUncertainty`, or None),
            ``mask`` (or None), ``unit`` and ``meta`` of the band; no WCS.

        Examples
        --------
        >>> import numpy as np
        >>> s = BandStack({"r": np.arange(16.0).reshape(4, 4)}, unit="Jy")
        >>> part = s.view("r", (slice(1, 3), slice(0, 2)))
        >>> part.data, part.data.flags.writeable
        (array([[4., 5.],
               [8., 9.]]), False)
        """
        im = self._images[self._lookup(key)]
        window = (slice(None), slice(None)) if window is None else tuple(window)
        unc = None if im.uncertainty is None else StdDevUncertainty(im.uncertainty[window], copy=False)
        return NDData(im.data[window], uncertainty=unc, mask=None if im.mask is None else im.mask[window],
                      unit=im.unit, meta=copy.copy(im.meta), copy=False)

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
        """``(Band, CCDData)`` pairs in wavelength order.

        Returns
        -------
        list of (`~bandsynth.bands.Band`, `~astropy.nddata.CCDData`)
            Every band with a copy of its image (as ``stack[band]`` gives it).
        """
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
        """Read-only metadata of the stack, its nested dicts too (``copy.deepcopy(stack.meta)`` is a mutable copy)."""
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

        Parameters
        ----------
        bands : str, `~bandsynth.bands.Band` or sequence of them
            The bands to keep (names, aliases or bands), each at most once.

        Returns
        -------
        BandStack
            A new stack of those bands, with the same grid, unit and meta.

        Raises
        ------
        KeyError
            If a band is not in the stack.
        ValueError
            If no band is given, or one is given twice.

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

    def reproject(self, target, *, method="auto", conserve_flux="auto", **kwargs) -> "BandStack":
        """Resample every band onto another pixel grid with the `reproject` package.

        Parameters
        ----------
        target : str, Band, `~astropy.io.fits.Header`, `~astropy.wcs.WCS`, ``(wcs, shape)``, NDData or Quantity
            The output grid: the name of a band of this stack ("onto that band's
            grid"), a header with ``NAXIS1``/``NAXIS2``, a WCS with ``array_shape``,
            a WCS (or header) and ``(ny, nx)`` shape, an NDData's WCS and shape, or a
            pixel scale (``0.262 * u.arcsec``: the bluest band's field on such pixels,
            `bandsynth.resample.regrid`).
        method : {"auto", "interp", "exact", "adaptive"}
            `reproject.reproject_interp`, `reproject.reproject_exact` (flux-exact spherical-polygon
            overlap) or `reproject.reproject_adaptive`; ``"auto"`` (default): ``"exact"`` for bands put on
            larger pixels, whose light interpolation would sample rather than sum, ``"interp"`` for others.
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
            Further options of the reproject function (e.g. ``order="bicubic"`` with ``method="interp"``).

        Returns
        -------
        BandStack
            Bands already on the target grid are unchanged.  The uncertainty is
            reprojected as a variance, each pixel's noise where pixels are binned or
            sampled down, else the noise on scales larger than a pixel (resampling
            correlates neighbours' noise).  Output pixels touching a masked
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
        if method not in METHODS:
            raise ValueError(f"reproject: method must be one of {', '.join(METHODS)}; got {method!r}")
        wcs_out, shape_out = self._resolve_target(target)
        built, records = reproject_all(self._images, wcs_out, shape_out, method=method, conserve_flux=conserve_flux,
                                        kwargs=kwargs, requested=describe_target(target))
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
        return _target_grid(target, self._images[self.bands[0]])

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
        angular = isinstance(size, u.Quantity) and size.unit.physical_type == "angle"
        needs_wcs = isinstance(position, SkyCoord) or angular
        if not isinstance(position, SkyCoord) and not (isinstance(position, (tuple, list, np.ndarray))
                                                       and np.shape(position) == (2,)):
            raise TypeError(f"cutout: position must be a SkyCoord or pixel (x, y), got {position!r}")
        sides = size if isinstance(size, (tuple, list)) else [size]
        if not all(float(getattr(side, "value", side)) > 0 for side in sides):  # Cutout2D made an empty stack
            raise ValueError(f"cutout: size must be positive (pixels or an angle), got {size!r}")
        built = {}
        for band, im in self._images.items():
            if needs_wcs and im.wcs is None:
                raise ValueError(f"cutout: band {band.name!r} has no WCS, which a sky position or angular size needs; "
                                 "give a pixel position (x, y) and a size in pixels")

            def cut(array, fill):
                try:
                    return Cutout2D(array, position, size, wcs=im.wcs, mode=mode, fill_value=fill, copy=True)
                except ValueError as err:  # astropy's "Arrays do not overlap." names neither the where nor the what
                    raise type(err)(f"cutout: band {band.name!r} ({im.shape[0]} x {im.shape[1]} pixels), size "
                                    f"{size!r} at {position!r}, mode={mode!r}: {err}") from None

            main = cut(im.data, np.nan)
            if 0 in main.shape:  # a size below half a pixel
                raise ValueError(f"cutout: size {size!r} is less than one pixel of band {band.name!r}")
            mask = None if im.mask is None else cut(im.mask, True).data
            if mode == "partial":
                outside = ~cut(np.ones(im.shape, dtype=bool), False).data
                if outside.any():
                    mask = outside if mask is None else mask | outside
            unc = None if im.uncertainty is None else cut(im.uncertainty, np.nan).data
            built[band] = BandImage(main.data, im.unit, unc, mask, main.wcs, without_wcs_keywords(im.meta))
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

        Returns
        -------
        numpy.ndarray
            float32 array ``(n_band, ny, nx)`` in :attr:`unit`.

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

        Parameters
        ----------
        bands : list of str, optional
            Bands it is taken from (default: all).
        percentile : float
            Pixel percentile (0-100) of each band; the largest sets the reference.

        Returns
        -------
        float
            The reference flux, in :attr:`unit`.

        Raises
        ------
        ValueError
            If no band has a positive flux at ``percentile``.

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
        """Morphology of one band: `bandsynth.morphology.measure_morphology` on ``self[band]``.

        Parameters
        ----------
        band : str or `~bandsynth.bands.Band`
            The band measured (its uncertainty and mask are used).
        **kwargs
            Further arguments of `bandsynth.morphology.measure_morphology`
            (``segmap``, ``label``, ``gain``, ``psf``, ``sersic``...).

        Returns
        -------
        `~bandsynth.morphology.MorphologyResult`
            Gini, M20, CAS... of the central galaxy.
        """
        from .morphology import measure_morphology

        return measure_morphology(self[band], **kwargs)


def _rebuild_stack(images, meta):
    return BandStack._from_images(images, meta)


def _target_grid(target, reference):
    """``(wcs, shape)`` of a target that is not a band of the stack; a pixel scale regrids the image ``reference``."""
    if isinstance(target, u.Quantity):
        return regrid(as_wcs(reference.wcs, "the reference band"), reference.shape, target)
    if isinstance(target, NDData):
        if target.wcs is None:
            raise ValueError("reproject: the target NDData has no WCS")
        return as_wcs(target.wcs, "target"), tuple(np.shape(target.data))
    if isinstance(target, fits.Header):
        if target.get("NAXIS") != 2:
            raise ValueError(
                "reproject: the target header needs NAXIS = 2 with NAXIS1/NAXIS2 (or give (wcs, shape))"
            )
        return as_wcs(target, "target"), (int(target["NAXIS2"]), int(target["NAXIS1"]))
    if isinstance(target, WCS):
        if target.array_shape is None:
            raise ValueError("reproject: the target WCS has no array_shape; give (wcs, (ny, nx))")
        return target, tuple(target.array_shape)
    if isinstance(target, tuple) and len(target) == 2:
        wcs, shape = target
        shape = tuple(int(n) for n in shape)
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"reproject: target shape must be (ny, nx) with positive sizes, got {shape}")
        return as_wcs(wcs, "target"), shape
    number = isinstance(target, (int, float, np.integer, np.floating)) and not isinstance(target, bool)
    raise TypeError("reproject: target must be a band name, a FITS header, a WCS with array_shape, (wcs, shape), an "
                    f"NDData or a pixel scale (an angle), got {type(target).__name__}"
                    + (f" (a pixel scale in arcseconds: {target!r} * u.arcsec)" if number else ""))
