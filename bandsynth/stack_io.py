"""Reading the images of a `~bandsynth.stack.BandStack`: values, FITS files, units.

The building blocks of `BandStack <bandsynth.stack.BandStack>`: :func:`image_from_value` checks one band's image
(array, Quantity, masked array or NDData); :func:`read_band_file` and :func:`read_multi_extension` read it from FITS
files; :func:`convert_unit` puts it in the stack's unit (counts into nanomaggies by
`bandsynth.zeropoints.apply_zeropoint`).  Each band is a :class:`BandImage` record until the stack is frozen.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping

import astropy.units as u
from astropy import log as astropy_log
import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData, NDData, NDUncertainty, StdDevUncertainty
from astropy.utils.exceptions import AstropyUserWarning
from astropy.utils.masked import Masked
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from ._io import fits_ascii, open_whole_fits, sha256_file, split_extended_name
from ._metadata import copied_meta
from .bands import get_band, header_band, list_bands, same_filter
from .bitmasks import mask_of
from .noise_maps import noise_of
from .errors import (BandFileError, BandFileNotFoundError, BandInputError, BandOptionError, BandTypeError,
                     BandUnitError)
from .units import area_of, conversion_factor, is_magnitude, needs_pixel_area, parse_unit, to_unit
from .zeropoints import is_count_unit, stated_zeropoint, with_primary_photometry

__all__ = ["BandImage", "as_unit", "as_wcs", "convert_unit", "file_bands", "image_from_value", "read_band_file",
           "read_multi_extension", "resolve_mapping"]


class BandImage:
    """One band while a stack is being assembled (mutable scratch record).

    `~bandsynth.stack.BandStack` keeps its bands in these records; ``data``,
    ``uncertainty`` (a standard deviation in ``unit``) and ``mask`` are arrays
    (the latter two or None), ``wcs`` a `~astropy.wcs.WCS` or None, ``meta``
    the image's header or metadata and ``path`` the file it was read from.

    Parameters
    ----------
    data : numpy.ndarray
        The 2-D image.
    unit : `~astropy.units.UnitBase`
        Its unit.
    uncertainty : numpy.ndarray or None
        Per-pixel standard deviation, in ``unit``.
    mask : numpy.ndarray of bool or None
        `True` marks a bad pixel.
    wcs : `~astropy.wcs.WCS` or None
        Its WCS.
    meta : mapping
        Header or metadata of the image.
    path : str, optional
        The file it was read from.
    """

    __slots__ = ("data", "unit", "uncertainty", "mask", "wcs", "meta", "path")

    def __init__(self, data, unit, uncertainty, mask, wcs, meta, path=None):
        self.data, self.unit, self.uncertainty = data, unit, uncertainty
        self.mask, self.wcs, self.meta, self.path = mask, wcs, meta, path

    @property
    def shape(self):
        """``(ny, nx)`` of the image."""
        return self.data.shape


# ---------------------------------------------------------------------- parsing
def resolve_mapping(mapping, what, *, allowed=None):
    """Mapping keyed by band names -> dict keyed by Band, in wavelength order.

    Parameters
    ----------
    mapping : mapping
        Band name, alias or `~bandsynth.bands.Band` to a value.
    what : str
        What the mapping is (e.g. ``"images"``), for error messages.
    allowed : collection of `~bandsynth.bands.Band`, optional
        The only bands the keys may name (e.g. those of the images); with it an
        empty mapping is allowed.

    Returns
    -------
    dict
        `~bandsynth.bands.Band` to value, bluest band first.

    Raises
    ------
    TypeError
        If ``mapping`` is not a mapping.
    ValueError
        If it is empty (without ``allowed``) or a key is not a known band.
    bandsynth.errors.BandInputError
        If two keys name the same band, or a band is not in ``allowed``.
    """
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


def as_unit(unit, where, *, band=None, path=None):
    """Parse a unit with `bandsynth.units.parse_unit`; errors name ``where``.

    Parameters
    ----------
    unit : str or `~astropy.units.UnitBase`
        The unit (e.g. a ``BUNIT`` value or ``unit=``).
    where : str
        Where the unit comes from, for the error message.
    band : `~bandsynth.bands.Band`, optional
        Band the unit belongs to, carried by the error.
    path : str, optional
        File the unit comes from, carried by the error.

    Returns
    -------
    `~astropy.units.UnitBase`
        The parsed unit.

    Raises
    ------
    bandsynth.errors.BandInputError
        If astropy does not understand the unit.
    """
    try:
        return parse_unit(unit)
    except (TypeError, ValueError) as err:
        raise BandInputError(
            f"{where}: {unit!r} is not a unit astropy understands ({err})",
            band=band, path=path,
        ) from None


def as_wcs(wcs, where, *, band=None, path=None):
    """A 2-D `~astropy.wcs.WCS` from a WCS (copied) or a FITS header; errors name ``where``.

    Parameters
    ----------
    wcs : `~astropy.wcs.WCS` or `~astropy.io.fits.Header`
        The WCS, or a header holding it.
    where : str
        What the WCS belongs to, for the error message.
    band : `~bandsynth.bands.Band`, optional
        Band the WCS belongs to, carried by the error.
    path : str, optional
        File the WCS comes from, carried by the error.

    Returns
    -------
    `~astropy.wcs.WCS`
        A new WCS with two pixel axes.

    Raises
    ------
    bandsynth.errors.BandTypeError
        If ``wcs`` is neither a WCS nor a header.
    bandsynth.errors.BandInputError
        If it does not have two pixel axes, or puts celestial pixels half a degree apart or more.
    """
    if isinstance(wcs, fits.Header):
        wcs = WCS(wcs)
    elif not isinstance(wcs, WCS):
        raise BandTypeError(f"{where}: the WCS must be an astropy.wcs.WCS or a FITS header, got {type(wcs).__name__}",
                            band=band, path=path)
    else:
        wcs = copy.deepcopy(wcs)
    if wcs.pixel_n_dim != 2:
        raise BandInputError(f"{where}: expected a 2-D WCS, got one with {wcs.pixel_n_dim} pixel axes",
                             band=band, path=path)
    if wcs.has_celestial and (scale := proj_plane_pixel_scales(wcs.celestial).max()) >= 0.5:  # no galaxy image's
        raise BandInputError(f"{where}: its WCS puts pixels {scale:g} deg apart: a header stating no pixel scale (no "
                             "CDELTi or CDi_j) is read by astropy as 1 degree per pixel", band=band, path=path)
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
        raise BandTypeError(f"band {band.name!r}: uncertainty must be a numeric array, got dtype {arr.dtype}",
                            band=band)
    return arr.astype(float)


def image_from_value(band, value, *, wcs=None, unit=None, uncertainty=None, mask=None, source=None, path=None,
                     copy_data=True):
    """Validate one band's image and return a :class:`BandImage` (unit not yet converted).

    ``value`` is an array, a `~astropy.units.Quantity`, a masked array or an
    `~astropy.nddata.NDData` (whose unit, uncertainty, mask, WCS and metadata are
    used); ``wcs``, ``unit``, ``uncertainty`` and ``mask`` complete what it lacks.
    Non-finite pixels are masked with a warning.  Errors are `~bandsynth.errors`
    exceptions naming ``band`` and ``path``.  The image is copied unless ``copy_data``
    is False (an array nobody else holds, just read from a file).

    Parameters
    ----------
    band : `~bandsynth.bands.Band`
        The band of the image.
    value : array-like, `~astropy.units.Quantity`, masked array or `~astropy.nddata.NDData`
        The 2-D image (real numbers; float32 stays float32, other types become
        float64).
    wcs : `~astropy.wcs.WCS` or `~astropy.io.fits.Header`, optional
        WCS, when ``value`` has none.
    unit : `~astropy.units.UnitBase`, optional
        Unit, when ``value`` has none.
    uncertainty : array-like, `~astropy.units.Quantity` or `~astropy.nddata.NDUncertainty`, optional
        Standard deviation, when ``value`` has none (given twice is an error).
    mask : bool array, optional
        Bad pixels, combined with those of ``value``.
    source : str, optional
        Where the image comes from (e.g. a file and extension), for messages.
    path : str, optional
        File the image was read from, carried by the record and by errors.
    copy_data : bool
        Copy the image (default); False only for an array nobody else holds.

    Returns
    -------
    BandImage
        The checked image in its own unit, with the mask set when any pixel
        is masked.

    Raises
    ------
    bandsynth.errors.BandTypeError
        Non-numeric image, uncertainty or mask, or a WCS of the wrong type.
    bandsynth.errors.BandInputError
        Not 2-D, empty, no unit, shapes that disagree, negative uncertainties,
        every pixel masked, or an all-zero or constant image.
    """
    label = f"band {band.name!r}" + (f" ({source})" if source else "")
    data, own_unit, own_unc, own_mask, own_wcs, own_meta = _unpack(value)
    data = _checked_data(data, label, band=band, path=path, copy=copy_data)
    for kept, instead in (("psf", "the PSF's FWHM is read from its header (PSF_FWHM, PSFFWHM or SEEING, arcsec)"),
                          ("flags", "bad pixels are read from its mask")):  # NDData's psf, CCDData's flags
        if isinstance(value, NDData) and getattr(value, kept, None) is not None:  # (an array's .flags are numpy's)
            warnings.warn(f"{label}: its {kept} {'are' if kept == 'flags' else 'is'} not read: {instead}",
                          AstropyUserWarning, stacklevel=4)

    this_unit = own_unit if own_unit not in (None, u.dimensionless_unscaled) else unit  # unit="" states none
    if this_unit is None or (this_unit == u.dimensionless_unscaled and unit is None):  # asked for, it is kept
        raise BandInputError(
            f"{label} has no unit (no BUNIT / NDData unit, or a dimensionless one); pass unit=, e.g. unit='nanomaggy'",
            band=band, path=path,
        )
    if is_magnitude(this_unit) and this_unit != u.ABmag:  # else a good band after it was blamed for the unit
        raise BandUnitError(f"{label}: its unit {this_unit} is a magnitude of no stated system; give AB magnitudes "
                            "per pixel ('mag(AB)') or a flux unit (e.g. 'nanomaggy', 'Jy')", band=band, path=path)
    unc = _checked_uncertainty(band, own_unc, uncertainty, this_unit, data.shape, label, path)
    bad = _given_mask(data.shape, (own_mask, mask), label, band=band, path=path)
    has_mask = own_mask is not None or mask is not None
    if _mask_nonfinite(data, unc, bad, label):
        has_mask = True

    good = True if not bad.any() else ~bad  # min/max in place: a copy of the good pixels would double the memory
    if good is not True and not good.any():
        raise BandInputError(f"{label}: every pixel is masked or non-finite", band=band, path=path)
    lo, hi = data.min(where=good, initial=np.inf), data.max(where=good, initial=-np.inf)
    del good
    if lo == hi:
        what = "all-zero" if lo == 0 else f"constant (every unmasked pixel is {lo:g})"
        raise BandInputError(f"{label} is {what}: an image without structure cannot be used", band=band, path=path)

    if own_wcs is not None and not isinstance(own_wcs, WCS):
        raise BandTypeError(f"{label}: its WCS must be an astropy.wcs.WCS, got {type(own_wcs).__name__}"
                            + (" (a sliced NDData's: slice a CCDData, or cut out with astropy.nddata.Cutout2D, to "
                               "keep a WCS)" if hasattr(own_wcs, "low_level_wcs") else ""), band=band, path=path)
    chosen_wcs = own_wcs if own_wcs is not None else wcs
    if chosen_wcs is not None:
        chosen_wcs = as_wcs(chosen_wcs, label, band=band, path=path)
    # a deep copy: the caller's later edits of a nested value (a header card, a dict) do not reach the stack
    return BandImage(data, this_unit, unc, bad if has_mask else None, chosen_wcs, copied_meta(own_meta), path)


def _unpack(value):
    """``(data, unit, uncertainty, mask, wcs, meta)`` of an image value; None (meta ``{}``) where it has none."""
    own_unc = own_mask = own_wcs = own_unit = None
    own_meta = {}
    if isinstance(value, NDData):
        data = value.data
        own_unit, own_unc, own_mask, own_wcs = value.unit, value.uncertainty, value.mask, value.wcs
        own_meta = value.meta
    elif isinstance(value, Masked):  # astropy's masked Quantity or array: its mask is the image's
        data, own_mask = value.unmasked, np.asarray(value.mask, dtype=bool)
    elif isinstance(value, u.Quantity):
        data, own_unit = value.value, value.unit
    elif isinstance(value, np.ma.MaskedArray):
        data, own_mask = value.data, np.ma.getmaskarray(value)
    else:
        data = value
    if isinstance(data, u.Quantity):  # NDData may wrap one
        data, own_unit = data.value, own_unit or data.unit
    return data, own_unit, own_unc, own_mask, own_wcs, own_meta


def _checked_data(data, label, *, band, path, copy=True):
    """The image as a float array (float32 kept, else float64) after checking it is real, 2-D and not empty.

    A copy, unless ``copy`` is False and the array is already native float of the right size.
    """
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
    # Single-precision data (FITS BITPIX -32) stay single: float64 would double the memory and add no information.
    single = data.dtype.kind == "f" and data.dtype.itemsize <= 4
    return (np.array if copy else np.asarray)(data, dtype=np.float32 if single else np.float64)


def _checked_uncertainty(band, own_unc, uncertainty, this_unit, shape, label, path):
    """The standard deviation in ``this_unit`` (or None), from the image's own uncertainty or ``uncertainty``."""
    if own_unc is not None and uncertainty is not None:
        raise BandInputError(
            f"{label}: uncertainty is given twice (in the image and in uncertainty=)",
            band=band, path=path,
        )
    unc = own_unc if own_unc is not None else uncertainty
    if unc is not None:
        unc = _std_array(band, unc, this_unit, path)
        if unc.shape != shape:
            raise BandInputError(f"{label}: uncertainty has shape {unc.shape}, expected the image shape {shape}",
                                 band=band, path=path)
        if np.any(unc < 0):
            raise BandInputError(f"{label}: the uncertainty (a standard deviation) has negative values", band=band,
                                 path=path)
    return unc


def _given_mask(shape, masks, label, *, band, path):
    """The union of the given masks (each None, a scalar or a boolean array of ``shape``)."""
    bad = np.zeros(shape, dtype=bool)
    for given in masks:
        if given is None:
            continue
        given = np.asarray(given)
        if given.ndim == 0:  # NDData allows a scalar mask
            given = np.broadcast_to(given, shape)
        if given.dtype.kind not in "biu":
            raise BandTypeError(f"{label}: mask must be a boolean array, got dtype {given.dtype}", band=band, path=path)
        if given.shape != shape:
            raise BandInputError(
                f"{label}: mask has shape {given.shape}, expected the image shape {shape}",
                band=band, path=path,
            )
        bad |= given.astype(bool)
    return bad


def _mask_nonfinite(data, unc, bad, label):
    """Add the non-finite pixels of ``data`` and ``unc`` to ``bad`` (in place); True if there were any.

    Warns about the bad pixels nobody had masked yet (``stacklevel`` counts this helper,
    so the warnings point at the same caller as when :func:`image_from_value` warned itself).
    """
    nonfinite = np.isfinite(data)
    np.logical_not(nonfinite, out=nonfinite)  # in place: one full-size temporary, not two
    newly = int(np.count_nonzero(np.greater(nonfinite, bad)))  # non-finite and not masked yet
    if newly:
        warnings.warn(f"{label}: {newly} non-finite pixel(s) (NaN/inf) are masked", AstropyUserWarning, stacklevel=5)
    if unc is not None:
        bad_unc = ~np.isfinite(unc) & ~nonfinite & ~bad
        if bad_unc.any():
            warnings.warn(
                f"{label}: {int(bad_unc.sum())} pixel(s) with a non-finite uncertainty are masked",
                AstropyUserWarning,
                stacklevel=5,
            )
            nonfinite |= bad_unc
    if nonfinite.any():
        bad |= nonfinite
        return True
    return False


# ---------------------------------------------------------------------- FITS files
def _fspath(path, what, *, band=None):
    try:
        return os.fspath(path)
    except TypeError:
        raise BandTypeError(f"{what}: expected a file path, got {type(path).__name__}", band=band) from None


def _image_hdus(hdul):  # the indices of the HDUs holding image data
    return [i for i, h in enumerate(hdul) if h.is_image and h.header.get("NAXIS", 0) > 0]


def _open_fits(path, label, *, band=None):
    try:
        return open_whole_fits(path)
    except OSError as err:
        raise BandFileError(f"{label}: cannot read {path!r} as FITS: {err}", band=band, path=path) from err


def _read_ccd(path, index, *, label, unit, hdu_uncertainty, mask, header, band=None):
    """`CCDData.read` of one HDU, with the unit read by bandsynth's parser and ``mask`` (`mask_of`)."""
    if str(header.get("BUNIT", "")).strip():  # a blank BUNIT states no unit (it was read as dimensionless)
        file_unit = as_unit(header["BUNIT"], f"{label}: BUNIT of {path!r}", band=band, path=path)
    elif not (unit is not None and is_count_unit(unit)) and stated_zeropoint(header, band, path) is not None:
        # No BUNIT but a survey zero point: the pixels are counts (per second for GALEX), whatever flux unit=
        # gives the other files (it read a GALEX map in counts/s as nanomaggies, 9x too faint).
        galex = str(header.get("TELESCOP", "")).strip().upper() == "GALEX"
        file_unit = u.ct / u.s if galex else u.ct
        if unit is not None:  # said, not silently set aside
            warnings.warn(f"{label}: {path!r} has no BUNIT but states a zero point: read as {file_unit} with it, not "
                          f"as {unit} (unit= is for files that state neither)", AstropyUserWarning, stacklevel=5)
    elif unit is None:
        raise BandInputError(f"{label}: {path!r} HDU {index} has no BUNIT keyword and no unit= was given; pass unit= "
                             "(e.g. unit='nanomaggy'), or for counts zeropoint=", band=band, path=path)
    else:
        file_unit = unit
    try:
        # The unit is bandsynth's reading of BUNIT; astropy's note that it differs ("nanomaggy" as nmgy) is noise.
        level = astropy_log.level
        astropy_log.setLevel("WARNING")
        try:
            # Not memory-mapped: native byte order in place holds a large image once, not as big-endian + a copy.
            ccd = CCDData.read(path, hdu=index, unit=file_unit, hdu_uncertainty=hdu_uncertainty, hdu_mask=None,
                               memmap=False)
        finally:
            astropy_log.setLevel(level)
    except (ValueError, TypeError) as err:
        raise BandInputError(f"{label}: cannot read {path!r} HDU {index}: {err}", band=band, path=path) from err
    ccd.mask, data = mask, ccd.data
    if isinstance(data, np.ndarray) and data.dtype.byteorder not in "=|" and data.flags.writeable:
        ccd.data = data.byteswap(inplace=True).view(data.dtype.newbyteorder())
    return ccd


def _the_band_image(hdul, images, band, path, label):
    """The HDU to read as ``band`` when none is named: the first image, but in a file of bands' images (EXTNAMEs or
    headers naming them) the one of ``band``: the first may be another band's, and would be read silently."""
    main = [i for i in images if not hdul[i].name.upper().endswith(("UNCERT", "MASK"))]  # not a band's companion
    named = {i: b for i in main if (b := _extname_band(hdul[i].name.upper(), hdul[i].header)) is not None}
    if len(main) < 2:  # one image: read as any band, unless an extension named after another band holds it
        named = {i: b for i, b in named.items() if hdul[i].name.upper() not in ("", "PRIMARY")}
    if not named:  # images of no band (SCI, WHT, a primary image): the first, as CCDData.read takes
        return images[0]
    if len(mine := [i for i, b in named.items() if b == band]) == 1:
        return mine[0]
    alike = set(same_filter(band.name, list(named.values())))
    # An example HDU only of the same filter (KiDS g's for DECam g): another filter's would read a wrong image.
    example = next((hdul[i].name for i, b in named.items() if b == band or b.name in alike), None)
    hint = (f"name the HDU to read as {band.name} (hdu={{{band.name!r}: {example!r}}}), or read the file as one "
            "multi-extension stack (BandStack.from_fits(path))" if example else
            f"the file holds no {band.name} image (if an HDU holds it under another band's name, name that HDU: "
            f"hdu={{{band.name!r}: 'EXTNAME'}})")
    raise BandInputError(
        f"{label}: {path!r} holds the images of {'several bands (HDUs' if len(named) > 1 else 'another band (HDU'} "
        f"{', '.join(f'{hdul[i].name} ({b.name})' for i, b in named.items())}), {'more than one' if mine else 'none'} "
        f"of them {band.name}; {hint}", band=band, path=path)


def read_band_file(band, path, *, hdu, unit):
    """Read one band's image from a FITS file, as `~astropy.nddata.CCDData.read` would.

    The image, its ``BUNIT`` (read by bandsynth's parser), WCS, and ``UNCERT`` (or a survey's
    ``VARIANCE`` / ``IVAR``: `~bandsynth.noise_maps`) and ``MASK`` extensions when present; checked
    by :func:`image_from_value`.

    Parameters
    ----------
    band : `~bandsynth.bands.Band`
        The band of the file.
    path : str or os.PathLike
        The FITS file.
    hdu : int, str or None
        HDU holding the image (None: the first HDU with image data, or, in a file of several
        bands' images, the one of ``band``).
    unit : `~astropy.units.UnitBase` or None
        Unit of an image without ``BUNIT``.

    Returns
    -------
    image : BandImage
        The checked image, ``meta`` its header (with ``FILENAME``).
    input : dict
        Its provenance record: ``band``, ``file``, ``hdu`` (EXTNAME, or number) and
        ``checksum`` (SHA-256 of the file).

    Raises
    ------
    bandsynth.errors.BandFileNotFoundError
        No such file.
    bandsynth.errors.BandFileError
        A folder, or a file that cannot be read as FITS.
    bandsynth.errors.BandInputError
        No image HDU (or no HDU ``hdu``), no unit, or an invalid image.
    """
    path = _fspath(path, f"band {band.name!r}", band=band)
    label = f"band {band.name!r}"
    if not os.path.isfile(path):
        if os.path.isdir(path):  # a manifest's cell naming a folder: it said "not found"
            raise BandFileError(f"{label}: {path!r} is a folder, expected a FITS file", band=band, path=path)
        file, extension = split_extended_name(path)  # CFITSIO's FILE[EXT], which astropy does not read
        hint = f" (to read HDU {extension!r} of {file!r}: hdu={{{band.name!r}: {extension!r}}})" if extension else ""
        raise BandFileNotFoundError(f"{label}: FITS file {path!r} not found{hint}", band=band, path=path)
    with _open_fits(path, label, band=band) as hdul:
        images = _image_hdus(hdul)
        if hdu is None:
            if not images:
                raise BandInputError(f"{label}: FITS file {path!r} contains no image HDU (expected a 2-D image in "
                                     "the primary HDU or an image extension)", band=band, path=path)
            index = _the_band_image(hdul, images, band, path, label)
        else:
            try:
                index = hdul.index_of(hdul[hdu])  # hdul[hdu]: an HDU number beyond the file's is missing too
            except (KeyError, IndexError):
                held = ", ".join(h.name or str(i) for i, h in enumerate(hdul))
                raise BandInputError(f"{label}: FITS file {path!r} has no HDU {hdu!r} (its HDUs: {held})",
                                     band=band, path=path) from None
            if index not in images:
                raise BandInputError(f"{label}: HDU {hdu!r} of {path!r} is not an image HDU with data",
                                     band=band, path=path)
        named = _extname_band(hdul[index].name.upper(), hdul[index].header)  # a lone image's too: its FILTER
        if named is not None and not same_filter(band.name, [named]):  # its own band is of its filter too
            warnings.warn(f"{label}: {'' if hdu is None else f'HDU {hdu!r} of '}{path!r} holds {named.name}, another "
                          f"filter, read as {band.name} as asked", AstropyUserWarning, stacklevel=4)
        header, where = hdul[index].header, hdul[index].name or index
        mask = mask_of(hdul, "MASK", label, shape=hdul[index].shape, band=band)
        noise = None if "UNCERT" in hdul else noise_of(hdul, label, shape=hdul[index].shape, band=band)
        header = with_primary_photometry(header, hdul[0].header) if index else header.copy()
    ccd = _read_ccd(path, index, label=label, unit=unit, hdu_uncertainty="UNCERT", mask=mask, header=header, band=band)
    ccd.uncertainty = ccd.uncertainty if noise is None else noise
    ccd.meta = with_primary_photometry(ccd.meta, header)  # zero-point keywords of the primary header too
    ccd.meta["FILENAME"] = fits_ascii(os.path.basename(path))  # exact name: in the provenance
    im = image_from_value(band, ccd, source=path, path=path, copy_data=False)  # read just now: nobody else holds it
    return im, {"band": band.name, "file": path, "hdu": where, "checksum": sha256_file(path)}


def _extname_band(name, header):
    """The band an HDU's upper-case EXTNAME names; the header's (`header_band`) where the EXTNAME is just its
    FILTER or no band at all; None if neither names one."""
    named = header_band(header)
    if named is not None and name == str(header.get("FILTER", "")).strip().upper():
        return named
    try:
        return get_band(name)
    except ValueError:
        return named


def _band_hdus(hdul, label, path, wanted, *, strict=True):
    """``{band: (index, EXTNAME, header)}`` of the band images of an open multi-extension file.

    ``strict=False`` leaves out what cannot be a band's image (an unnamed primary image, an
    ``EXTNAME`` that names no band) instead of refusing the file.
    """
    images = _image_hdus(hdul)
    if not images:
        raise BandInputError(f"{label} contains no image HDU (expected one image extension per band)", path=path)
    names = {hdul[i].name.upper() for i in images}
    found = {}
    for i in images:
        name = hdul[i].name.upper()
        if i == 0 and name in ("", "PRIMARY"):
            if not strict:
                continue
            raise BandInputError(f"{label}: the primary HDU holds an image but no EXTNAME naming its band; "
                                 "give every band image an EXTNAME (e.g. 'NUV')", path=path)
        if any(name.endswith(suffix) and name[: -len(suffix)] in names for suffix in ("_UNCERT", "_MASK")):
            continue
        if wanted is not None and name not in wanted:
            continue
        if wanted is not None:
            try:
                band = get_band(wanted[name])
            except ValueError:
                raise BandInputError(f"extnames: {wanted[name]!r} (for EXTNAME {name!r}) is not a known band",
                                     path=path) from None
            held = _extname_band(name, hdul[i].header)  # what its EXTNAME or FILTER says it is
            if held is not None and not same_filter(band.name, [held]):
                warnings.warn(f"{label}: HDU {name!r} holds {held.name}, another filter, read as {band.name} as "
                              "extnames= asks", AstropyUserWarning, stacklevel=5)
        elif (band := _extname_band(name, hdul[i].header)) is None:
            if not strict:
                continue
            known = ", ".join(b.name for b in list_bands())
            raise BandInputError(f"{label}: HDU {i} has EXTNAME {name!r}, which is not a known band; known bands are: "
                                 f"{known}", path=path)
        if band in found:
            raise BandInputError(f"{label}: band {band.name!r} appears twice (EXTNAME {name!r})", band=band,
                                 path=path)
        found[band] = (i, name, hdul[i].header.copy())
    return found


def file_bands(path):
    """The bands of a multi-extension FITS file, from its headers alone.

    Each image HDU is named after its band as `read_multi_extension` reads it; HDUs
    that name no band are left out.  No image is read, so a command can say which
    bands a file holds, and read only those it needs (``extnames=``), before any work.

    Parameters
    ----------
    path : str or os.PathLike
        The FITS file.

    Returns
    -------
    dict of str to str
        ``{band name: EXTNAME}``, bluest band first.

    Raises
    ------
    bandsynth.errors.BandFileNotFoundError
        No such file.
    bandsynth.errors.BandFileError
        The file cannot be read as FITS.
    bandsynth.errors.BandInputError
        No image HDU, or a band held twice.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from astropy.io import fits
    >>> path = os.path.join(tempfile.mkdtemp(), "g1.fits")
    >>> hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(np.ones((4, 4)), name=n) for n in ("K", "NUV", "SEG")]
    >>> fits.HDUList(hdus).writeto(path)
    >>> file_bands(path)
    {'NUV': 'NUV', 'Ks': 'K'}
    """
    path = _fspath(path, "file_bands")
    if not os.path.isfile(path):
        raise BandFileNotFoundError(f"FITS file {path!r} not found", path=path)
    label = f"file {path!r}"
    with _open_fits(path, label) as hdul:
        found = _band_hdus(hdul, label, path, None, strict=False)
    return {band.name: found[band][1] for band in sorted(found, key=lambda b: b.wavelength.value)}


def read_multi_extension(path, *, unit, extnames=None):
    """Read every band of a multi-extension FITS file, each image HDU named after its band.

    An image HDU's ``EXTNAME`` names its band (any alias, any case), unless
    ``extnames`` says otherwise; ``<EXTNAME>_UNCERT`` and ``<EXTNAME>_MASK`` HDUs hold
    that band's uncertainty and mask.  An ``EXTNAME`` that is just the HDU's ``FILTER``
    (``'g'``), or no known band at all (``'Y'``), is read as the band the header names by
    survey or instrument and filter (`~bandsynth.bands.header_band`: ``SURVEY = 'KiDS'`` makes ``'g'``
    KiDS g, not SDSS g).

    Parameters
    ----------
    path : str or os.PathLike
        The FITS file.
    unit : `~astropy.units.UnitBase` or None
        Unit of the images without ``BUNIT``.
    extnames : mapping of str to str or `~bandsynth.bands.Band`, optional
        ``{EXTNAME: band}``: read only these HDUs (``EXTNAME`` in any case), as these
        bands -- for files whose extension names are not the registry's (``"Z"`` for
        VISTA Z, say) or that hold more bands than are wanted.

    Returns
    -------
    images : dict of `~bandsynth.bands.Band` to BandImage
        The checked images, bluest band first.
    inputs : list of dict
        Their provenance records (``band``, ``file``, ``hdu``, ``checksum``), in the
        same order.

    Raises
    ------
    bandsynth.errors.BandFileNotFoundError
        No such file.
    bandsynth.errors.BandFileError
        The file cannot be read as FITS.
    bandsynth.errors.BandInputError
        No image HDU, an image in an unnamed primary HDU, an ``EXTNAME`` that
        is not a known band, a band given twice, an ``extnames`` HDU missing, no
        unit, or an invalid image.
    """
    path = _fspath(path, "from_fits")
    wanted = None if extnames is None else {str(k).strip().upper(): v for k, v in dict(extnames).items()}
    if not os.path.isfile(path):
        raise BandFileNotFoundError(f"multi-extension FITS file {path!r} not found", path=path)
    label = f"file {path!r}"
    with _open_fits(path, label) as hdul:
        found = _band_hdus(hdul, label, path, wanted)
        masks = {band: mask_of(hdul, f"{name}_MASK", f"band {band.name!r}", shape=hdul[i].shape, band=band)
                 for band, (i, name, _) in found.items()}
    missing = sorted(set(wanted or ()) - {name for _, name, _ in found.values()})
    if missing:
        raise BandInputError(f"{label} has no image HDU with EXTNAME {', '.join(map(repr, missing))} "
                             "(asked for with extnames=)", path=path)
    checksum = sha256_file(path)
    built, inputs = {}, []
    for band in sorted(found, key=lambda b: b.wavelength.value):
        i, name, header = found[band]
        label_b = f"band {band.name!r}"
        ccd = _read_ccd(
            path, i, label=label_b, unit=unit, hdu_uncertainty=f"{name}_UNCERT", mask=masks[band], header=header,
            band=band,
        )
        ccd.meta["FILENAME"] = fits_ascii(os.path.basename(path))  # exact name: in the provenance
        written = str(header.get("EXTNAME", name)).strip()  # `name` is upper-cased for matching
        built[band] = image_from_value(band, ccd, source=f"{path}[{written}]", path=path, copy_data=False)
        inputs.append({"band": band.name, "file": path, "hdu": written, "checksum": checksum})
    return built, inputs


# ---------------------------------------------------------------------- units
def convert_unit(band, im, target, *, requested):
    """Convert ``im`` in place to ``target`` through `bandsynth.units.to_unit`.

    The data and uncertainty are converted (f_nu <-> f_lambda at the band's
    wavelength where needed) and ``im.unit`` becomes ``target``.

    Parameters
    ----------
    band : `~bandsynth.bands.Band`
        The band of the image.
    im : BandImage
        The image, changed in place.
    target : `~astropy.units.UnitBase`
        The stack's unit.
    requested : bool
        Whether ``target`` was asked for with ``unit=`` (else it is the first
        band's unit); only changes the error message.

    Raises
    ------
    bandsynth.errors.BandUnitError
        If the unit cannot be converted; a `~bandsynth.errors.BandOptionError` when
        ``target`` was asked for.
    """
    if im.unit == target:
        return
    area = area_of(im.wcs)  # a surface brightness converts to a flux per pixel through it
    try:
        if im.uncertainty is None:
            im.data = to_unit(im.data, im.unit, target, band=band, path=im.path, pixel_area=area)
        else:
            im.data, im.uncertainty = to_unit(
                im.data, im.unit, target, band=band, path=im.path, uncertainty=im.uncertainty, pixel_area=area
            )
    except (u.UnitsError, ValueError):
        why = "the unit requested with unit=" if requested else "the stack's unit (that of its first band)"
        hint = ("a surface brightness and a flux per pixel convert through the pixels' area, and the image has no "
                "celestial WCS to give it" if area is None and needs_pixel_area(im.unit, target, band=band)
                else "the bands of a stack must be in convertible flux units")
        raise (BandOptionError if requested else BandUnitError)(
            f"band {band.name!r}{f' ({im.path!r})' if im.path else ''}: cannot convert its unit {im.unit} to "
            f"{target}, {why}; {hint}", band=band, path=im.path) from None
    im.unit = target
