"""Bad pixels of a FITS mask HDU: a yes/no mask, or a survey's integer bitmask.

HSC (and LSST) coadds write a ``MASK`` extension of bit planes named in its header
(``MP_BAD = 0``, ``MP_DETECTED = 5``, ...): most planes say something *about* a pixel (it
is in a detected source, near a CCD edge) rather than that it is bad.  Read as astropy's
``CCDData.read(hdu_mask=...)`` reads any mask -- every non-zero pixel bad -- such a mask
masks the galaxy itself (the ``DETECTED`` plane), and its light is filled in from the sky.
No library reads these planes for us, so this small module does.
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning

__all__ = ["BAD_PLANES", "bad_pixels", "mask_of"]

#: Bit planes of an HSC/LSST mask that make a pixel unusable (the others -- DETECTED, EDGE,
#: CLIPPED, ... -- describe it).
BAD_PLANES = ("BAD", "SAT", "INTRP", "CR", "NO_DATA", "SUSPECT")


def bad_pixels(data, header, *, label="the mask"):
    """The bad pixels of a mask HDU's ``data``.

    Parameters
    ----------
    data : ndarray
        The mask image: booleans or 0/1 (non-zero bad), or an integer bitmask.
    header : `~astropy.io.fits.Header`
        The mask HDU's header: ``MP_<PLANE> = bit`` keywords name the planes of a bitmask.
    label : str
        The mask's file and HDU, for the warning.

    Returns
    -------
    ndarray of bool
        True where the pixel is bad: a set bit of a `BAD_PLANES` plane for a bitmask with
        named planes; any non-zero value otherwise (with a warning for an integer mask of
        values beyond 0/1 whose planes are not named).

    Examples
    --------
    >>> from astropy.io import fits
    >>> header = fits.Header({"MP_SAT": 1, "MP_EDGE": 4})  # saturated: bad; near a CCD edge: not
    >>> bad_pixels(np.array([0, 2, 16, 18]), header).tolist()
    [False, True, False, True]
    """
    data = np.asarray(data)
    if data.dtype.kind not in "iu" or not data.size or int(data.max()) <= 1:
        return data.astype(bool)
    planes = {key[3:]: int(value) for key, value in header.items() if key.startswith("MP_")}
    if not planes:
        warnings.warn(f"{label} is an integer bitmask (values up to {int(data.max())}) whose planes the header does "
                      "not name (MP_* keywords): every pixel with any bit set is read as bad", AstropyUserWarning,
                      stacklevel=3)
        return data != 0
    bits = sum(1 << planes[name] for name in BAD_PLANES if name in planes)
    return (data.astype(np.int64) & bits) != 0


def mask_of(hdul, name, label, *, shape=None, band=None):
    """The bad pixels (`bad_pixels`) of HDU ``name`` of an open FITS file, or None where it has none.

    Parameters
    ----------
    hdul : `~astropy.io.fits.HDUList`
    name : str
        The mask HDU's ``EXTNAME`` (``"MASK"``, ``"<BAND>_MASK"``).
    label : str
        What the mask belongs to, for the warning and the error.
    shape : tuple of int, optional
        The shape of the image the mask belongs to.
    band : `~bandsynth.bands.Band` or str, optional
        The band, carried by the error.

    Returns
    -------
    ndarray of bool or None

    Raises
    ------
    bandsynth.errors.BandInputError
        A mask of another shape than ``shape``.
    """
    if name not in hdul or hdul[name].data is None:
        return None
    where = f"{label}: HDU {name} of {hdul.filename()!r}"
    if shape is not None and hdul[name].data.shape != tuple(shape):
        from .errors import BandInputError

        raise BandInputError(f"{where} has shape {hdul[name].data.shape}, the image {tuple(shape)}: a mask must have "
                             "its image's shape", band=band, path=hdul.filename())
    return bad_pixels(hdul[name].data, hdul[name].header, label=where)
