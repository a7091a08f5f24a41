"""The one image parser of the morphology and metrics code: arrays, NDData/CCDData/SyntheticBand,
``(array, wcs)`` and FITS paths."""

from __future__ import annotations

import os
import warnings
from typing import NamedTuple

import numpy as np
from astropy.nddata import NDData
from astropy.utils.exceptions import AstropyUserWarning

__all__ = ["parse_image", "ParsedImage"]


class ParsedImage(NamedTuple):
    """An image as :func:`parse_image` returns it.

    Attributes
    ----------
    data : ndarray
        Float image; non-finite pixels are left in place (see ``mask``).
    mask : ndarray of bool
        True = bad: the NDData mask and the non-finite pixels.
    uncertainty : ndarray or None
        1-sigma uncertainty in the data's unit.
    unit : `~astropy.units.UnitBase` or None
        The data's unit.
    wcs : `~astropy.wcs.WCS` or None
        The image's WCS.
    """

    data: np.ndarray  # float, non-finite pixels left in place (see mask)
    mask: np.ndarray  # bool, True = bad (NDData mask | non-finite)
    uncertainty: np.ndarray | None  # 1-sigma, same units as data
    unit: object
    wcs: object


def parse_image(obj, name="image", *, warn=True) -> ParsedImage:
    """Turn an array, NDData-like, ``(array, wcs)`` or FITS path into a :class:`ParsedImage`.

    The one image parser of the morphology and metrics modules.  Non-finite pixels
    are added to the mask with an ``AstropyUserWarning``.

    Parameters
    ----------
    obj : array-like, `~astropy.nddata.NDData`, ``(array, wcs)``, `~astropy.units.Quantity`, str or os.PathLike
        The image: a 2-D array (a masked array's mask is kept, a torch tensor is
        copied to the CPU), an NDData/CCDData/SyntheticBand (data, unit, mask,
        uncertainty and WCS are kept), a pair of array and WCS, a Quantity, or
        the path of a FITS file (its first 2-D image, ``UNCERT`` and ``MASK``).
    name : str, optional
        What to call the image in messages.
    warn : bool, optional
        Warn about the non-finite pixels that were not masked.

    Returns
    -------
    image : `ParsedImage`
        ``(data, mask, uncertainty, unit, wcs)``: float data, a boolean mask
        (True = bad, including the non-finite pixels), the 1-sigma uncertainty or
        None, the unit or None, the WCS or None.

    Raises
    ------
    TypeError
        ``obj`` is not an image or does not hold numbers.
    ValueError
        Not 2-D, or a mask or uncertainty of another shape.

    Examples
    --------
    >>> import numpy as np
    >>> image = parse_image(np.ma.array(np.ones((3, 3)), mask=np.eye(3)))
    >>> int(image.mask.sum()), image.unit is None
    (3, True)
    """
    unit = wcs = None
    mask = uncertainty = None
    if isinstance(obj, (str, os.PathLike)):
        obj = _read_fits(obj, name)
    if isinstance(obj, tuple) and len(obj) == 2 and not np.isscalar(obj[0]):
        obj, wcs = obj
    if isinstance(obj, NDData):
        data = obj.data
        unit = obj.unit
        wcs = obj.wcs if wcs is None else wcs
        if obj.mask is not None:
            mask = np.asarray(obj.mask, dtype=bool)
        if obj.uncertainty is not None:
            uncertainty = _stddev(obj.uncertainty, name)
    elif hasattr(obj, "unit") and hasattr(obj, "value") and not hasattr(obj, "detach"):
        data, unit = obj.value, obj.unit
    elif isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):
        data = obj.detach().cpu().numpy() if hasattr(obj, "detach") else obj
        if np.ma.isMaskedArray(data):
            mask = np.ma.getmaskarray(data)
            data = np.ma.getdata(data)
    else:
        raise TypeError(
            f"{name} must be a 2-D array, NDData/CCDData or FITS path, got {type(obj).__name__}"
        )
    data = np.asarray(data)
    if data.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold numbers, got dtype {data.dtype}")
    if data.ndim != 2:
        raise ValueError(f"{name} must be a 2-D image, got shape {data.shape}")
    if data.dtype.kind != "f":
        data = data.astype(float)
    if mask is None:
        mask = np.zeros(data.shape, dtype=bool)
    elif mask.shape != data.shape:
        raise ValueError(f"{name} mask has shape {mask.shape}, expected {data.shape}")
    bad = ~np.isfinite(data)
    if uncertainty is not None:
        if uncertainty.shape != data.shape:
            raise ValueError(f"{name} uncertainty has shape {uncertainty.shape}, expected {data.shape}")
        bad |= ~np.isfinite(uncertainty)
    newly = bad & ~mask
    if newly.any() and warn:
        warnings.warn(
            f"{name}: {int(newly.sum())} non-finite pixel(s) masked", AstropyUserWarning, stacklevel=3
        )
    return ParsedImage(data, mask | bad, uncertainty, unit, wcs)


def _stddev(uncertainty, name):
    kind = getattr(uncertainty, "uncertainty_type", "std")
    arr = np.asarray(uncertainty.array, dtype=float)
    if kind == "std":
        return arr
    if kind == "var":
        return np.sqrt(arr)
    if kind == "ivar":
        with np.errstate(divide="ignore"):
            return 1.0 / np.sqrt(arr)
    raise ValueError(f"{name}: unsupported uncertainty type {kind!r}")


def _read_fits(path, name):
    from astropy.io import fits
    from astropy.nddata import StdDevUncertainty
    from astropy.wcs import WCS

    from ..units import parse_unit

    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"{name}: FITS file {path!r} does not exist")
    with fits.open(path) as hdul:
        hdu = next((h for h in hdul if getattr(h, "data", None) is not None and h.data.ndim == 2), None)
        if hdu is None:
            raise ValueError(f"{name}: FITS file {path!r} has no 2-D image")
        data = np.asarray(hdu.data, dtype=float)
        names = {h.name.upper(): h for h in hdul}
        unc = names.get("UNCERT")
        msk = names.get("MASK")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(hdu.header) if "CTYPE1" in hdu.header else None
        bunit = hdu.header.get("BUNIT")
        try:
            unit = parse_unit(bunit) if bunit else None  # so that a truth in Jy is converted, not read as is
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name}: FITS file {path!r} has BUNIT {bunit!r}, not a unit ({err})") from None
        return NDData(
            data,
            uncertainty=StdDevUncertainty(np.asarray(unc.data, float)) if unc is not None else None,
            mask=np.asarray(msk.data, bool) if msk is not None else None,
            wcs=wcs,
            unit=unit,
        )
