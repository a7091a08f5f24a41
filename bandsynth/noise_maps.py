"""A band's per-pixel noise from a survey's companion HDU: a variance or an inverse variance.

bandsynth's own files state the noise as an ``UNCERT`` HDU, which `~astropy.nddata.CCDData.read`
reads.  Survey pipelines write it otherwise: HSC and LSST coadds as a ``VARIANCE`` HDU beside
``IMAGE`` and ``MASK``, others as an inverse variance (``IVAR``, ``INVVAR``), in the image's unit
squared (or its inverse).  Read as nothing, a user's noise map was dropped without a word and
``predict`` fell back on the calibration without input noise.  Weight maps (``WHT``, ``WEIGHT``,
``WGT``) are not read: their scale differs between surveys (KiDS' are relative), so reading one
as an inverse variance could be off by any factor; a warning says so.
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy.nddata import InverseVariance, VarianceUncertainty
from astropy.utils.exceptions import AstropyUserWarning

__all__ = ["NOISE_HDUS", "WEIGHT_HDUS", "noise_of"]

#: EXTNAMEs read as a band's noise, with the astropy uncertainty class each holds (first found wins).
NOISE_HDUS = {"VARIANCE": VarianceUncertainty, "IVAR": InverseVariance, "INVVAR": InverseVariance}
#: EXTNAMEs of weight maps, which are not read (with a warning).
WEIGHT_HDUS = ("WHT", "WEIGHT", "WGT")


def noise_of(hdul, label, *, shape, band=None):
    """The noise a file's ``VARIANCE`` / ``IVAR`` / ``INVVAR`` HDU states, or None.

    Parameters
    ----------
    hdul : `~astropy.io.fits.HDUList`
        The open file.
    label : str
        What the noise belongs to, for the warning and the error.
    shape : tuple of int
        The shape of the image the noise belongs to.
    band : `~bandsynth.bands.Band` or str, optional
        The band, carried by the error.

    Returns
    -------
    `~astropy.nddata.VarianceUncertainty`, `~astropy.nddata.InverseVariance` or None
        In the image's unit squared (or its inverse), NaN where a value is not positive and
        finite (an inverse variance of 0: no data; such pixels are masked); None when the
        file has no such HDU (with a warning when it has a weight map instead) or its HDU
        holds no positive value (with a warning).

    Raises
    ------
    bandsynth.errors.BandInputError
        A noise HDU of another shape than the image's.

    Examples
    --------
    >>> from astropy.io import fits
    >>> from astropy.nddata import StdDevUncertainty
    >>> hdul = fits.HDUList([fits.PrimaryHDU(np.ones((4, 4))),
    ...                      fits.ImageHDU(np.full((4, 4), 0.25), name="VARIANCE")])
    >>> float(noise_of(hdul, "band 'HSC_i'", shape=(4, 4)).represent_as(StdDevUncertainty).array[0, 0])
    0.5
    """
    name = next((n for n in NOISE_HDUS if n in hdul and hdul[n].data is not None), None)
    if name is None:
        weights = [n for n in WEIGHT_HDUS if n in hdul]
        if weights:
            warnings.warn(f"{label}: HDU {weights[0]} of {hdul.filename()!r} is not read as the image's noise (the "
                          "scale of a weight map differs between surveys): state the noise as an UNCERT (standard "
                          "deviation), VARIANCE or IVAR HDU", AstropyUserWarning, stacklevel=4)
        return None
    values, where = np.array(hdul[name].data, dtype=float), f"{label}: HDU {name} of {hdul.filename()!r}"
    if values.shape != tuple(shape):
        from .errors import BandInputError

        raise BandInputError(f"{where} has shape {values.shape}, the image {tuple(shape)}: a noise map must have its "
                             "image's shape", band=band, path=hdul.filename())
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(values) & (values > 0)
    if not valid.any():  # a placeholder: sigma 0 everywhere would make the inputs' noise draws add nothing
        warnings.warn(f"{where} holds no positive value: not read as the image's noise", AstropyUserWarning,
                      stacklevel=4)
        return None
    return NOISE_HDUS[name](np.where(valid, values, np.nan))
