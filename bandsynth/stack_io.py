"""Reading the images of a `~bandsynth.stack.BandStack`: values, FITS files, units.

The building blocks of `BandStack <bandsynth.stack.BandStack>` and its constructors:
:func:`image_from_value` checks one band's image given as an array, Quantity,
masked array or NDData; :func:`read_band_file` and :func:`read_multi_extension`
read it from FITS files; :func:`convert_unit` puts it in the stack's unit.  Each
band is held in a :class:`BandImage` record until the stack is frozen.  Most code
uses `BandStack <bandsynth.stack.BandStack>` instead.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData, NDData, NDUncertainty, StdDevUncertainty
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS

from ._io import fits_ascii, sha256_file
from .bands import get_band, list_bands
from .errors import BandFileError, BandFileNotFoundError, BandInputError, BandTypeError, BandUnitError
from .units import conversion_factor, parse_unit, to_unit

__all__ = [
    "BandImage",
    "as_unit",
    "as_wcs",
    "convert_unit",
    "image_from_value",
    "read_band_file",
    "read_multi_extension",
    "resolve_mapping",
]


class BandImage:
    """One band while a stack is being assembled (mutable scratch record).

    `~bandsynth.stack.BandStack` keeps its bands in these records; ``data``,
    ``uncertainty`` (a standard deviation in ``unit``) and ``mask`` are arrays
    (the latter two or None), ``wcs`` a `~astropy.wcs.WCS` or None, ``meta``
    the image's header or metadata and ``path`` the file it was read from.
    """

    __slots__ = ("data", "unit", "uncertainty", "mask", "wcs", "meta", "path")

    def __init__(self, data, unit, uncertainty, mask, wcs, meta, path=None):
        self.data, self.unit, self.uncertainty = data, unit, uncertainty
        self.mask, self.wcs, self.meta, self.path = mask, wcs, meta, path

    @property
    def shape(self):
        return self.data.shape


# ---------------------------------------------------------------------- parsing
def resolve_mapping(mapping, what, *, allowed=None):
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


def as_unit(unit, where, *, band=None, path=None):
    """Parse a unit with `bandsynth.units.parse_unit`; errors name ``where``."""
    try:
        return parse_unit(unit)
    except (TypeError, ValueError) as err:
        raise BandInputError(
            f"{where}: {unit!r} is not a unit astropy understands ({err})",
            band=band, path=path,
        ) from None


def as_wcs(wcs, where, *, band=None, path=None):
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


def image_from_value(band, value, *, wcs=None, unit=None, uncertainty=None, mask=None, source=None, path=None,
                     copy_data=True):
    """Validate one band's image and return a :class:`BandImage` (unit not yet converted).

    ``value`` is an array, a `~astropy.units.Quantity`, a masked array or an
    `~astropy.nddata.NDData` (whose unit, uncertainty, mask, WCS and metadata are
    used); ``wcs``, ``unit``, ``uncertainty`` and ``mask`` complete what it lacks.
    Non-finite pixels are masked with a warning.  Errors are `~bandsynth.errors`
    exceptions naming ``band`` and ``path``.  The image is copied unless ``copy_data``
    is False (an array nobody else holds, just read from a file).
    """
    label = f"band {band.name!r}" + (f" ({source})" if source else "")
    data, own_unit, own_unc, own_mask, own_wcs, own_meta = _unpack(value)
    data = _checked_data(data, label, band=band, path=path, copy=copy_data)

    this_unit = own_unit if own_unit is not None else unit
    if this_unit is None:
        raise BandInputError(
            f"{label} has no unit (no BUNIT / NDData unit); pass unit=, e.g. unit='nanomaggy'",
            band=band, path=path,
        )
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
        raise BandTypeError(
            f"{label}: its WCS must be an astropy.wcs.WCS, got {type(own_wcs).__name__}",
            band=band, path=path,
        )
    chosen_wcs = own_wcs if own_wcs is not None else wcs
    if chosen_wcs is not None:
        chosen_wcs = as_wcs(chosen_wcs, label, band=band, path=path)
    return BandImage(data, this_unit, unc, bad if has_mask else None, chosen_wcs, copy.copy(own_meta), path)


def _unpack(value):
    """``(data, unit, uncertainty, mask, wcs, meta)`` of an image value; None (meta ``{}``) where it has none."""
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
    # Single-precision data (FITS BITPIX -32 arrive big-endian) stay single: float64 would double the
    # memory of a large image and add no information.
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
            raise BandInputError(
                f"{label}: uncertainty has shape {unc.shape}, expected the image shape {shape}",
                band=band, path=path,
            )
        if np.any(unc < 0):
            raise BandInputError(
                f"{label}: the uncertainty (a standard deviation) has negative values",
                band=band, path=path,
            )
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
        warnings.warn(
            f"{label}: {newly} non-finite pixel(s) (NaN/inf) are masked",
            AstropyUserWarning,
            stacklevel=5,
        )
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
        file_unit = as_unit(header["BUNIT"], f"{label}: BUNIT of {path!r}", band=band, path=path)
    elif unit is None:
        raise BandInputError(
            f"{label}: {path!r} HDU {index} has no BUNIT keyword and no unit= was given; "
            "pass unit= (e.g. unit='nanomaggy')",
            band=band, path=path,
        )
    else:
        file_unit = unit
    try:
        # Read into memory, not memory-mapped: the pixels are then put in native byte order in place, so a
        # large image is held once (not as the file's big-endian pixels plus a native copy).
        ccd = CCDData.read(path, hdu=index, unit=file_unit, hdu_uncertainty=hdu_uncertainty, hdu_mask=hdu_mask,
                           memmap=False)
    except (ValueError, TypeError) as err:
        raise BandInputError(f"{label}: cannot read {path!r} HDU {index}: {err}", band=band, path=path) from err
    data = ccd.data
    if isinstance(data, np.ndarray) and data.dtype.byteorder not in "=|" and data.flags.writeable:
        ccd.data = data.byteswap(inplace=True).view(data.dtype.newbyteorder())
    return ccd


def read_band_file(band, path, *, hdu, unit):
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
    im = image_from_value(band, ccd, source=path, path=path, copy_data=False)  # read just now: nobody else holds it
    return im, {"band": band.name, "file": path, "checksum": sha256_file(path)}


def read_multi_extension(path, *, unit):
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
        built[band] = image_from_value(band, ccd, source=f"{path}[{name}]", path=path, copy_data=False)
        inputs.append({"band": band.name, "file": path, "checksum": checksum})
    return built, inputs


# ---------------------------------------------------------------------- units
def convert_unit(band, im, target, *, requested):
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
