"""The images `compare` compares: the prediction, the truth (a band's image of a FITS file) and the inputs.

Part of `bandsynth.metrics`; `compare` is the public entry point.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..errors import HDU_HINT, BandError
from ..morphology import parse_image

__all__ = ["band_name", "parse_inputs", "parse_compared", "as_synthetic", "in_unit_of", "band_file", "same_band",
           "check_truth_band"]


def band_name(obj):
    """The band an image says it is of (a SyntheticBand's, or its provenance's), or None."""
    band = getattr(obj, "band", None)
    name = getattr(band, "name", band)
    if name is None and hasattr(obj, "meta"):
        prov = (obj.meta or {}).get("provenance") or {}
        name = prov.get("band") if isinstance(prov, Mapping) else None
    return str(name) if name else None


def parse_inputs(inputs, shape):
    """``inputs`` (mapping or BandStack-like) -> ordered dict band -> parsed image."""
    if inputs is None:
        return {}
    if hasattr(inputs, "names") and hasattr(inputs, "__getitem__") and not isinstance(inputs, Mapping):
        items = [(n, inputs[n]) for n in inputs.names]
    elif isinstance(inputs, Mapping):
        items = list(inputs.items())
    else:
        raise TypeError(f"inputs must be a mapping of band name to image or a BandStack, got {type(inputs).__name__}")
    out = {}
    for band, img in items:
        parsed = parse_image(img, f"input {band!r}")
        if parsed.data.shape != shape:
            raise ValueError(f"input {band!r} has shape {parsed.data.shape} but the truth has shape {shape}")
        out[str(band)] = parsed
    return out


def as_synthetic(prediction):
    """A synthetic band's FITS file, or an NDData/CCDData read from one (``BSPROV`` in its ``meta``), as an
    NDData with its provenance in ``meta["provenance"]``, as a `~bandsynth.SyntheticBand` holds it: its band,
    unit, scaling and stated error distribution are what `compare` measures with (read as a bare image, a
    file of KiDS r was compared with the first band of the truth's file).  Anything else is returned as is."""
    import json

    from astropy.nddata import CCDData, NDData

    if isinstance(prediction, (str, os.PathLike)) and os.path.isfile(prediction):
        from astropy.io import fits

        header = fits.getheader(prediction)  # the primary header alone: a bare image is read once, by parse_image
        if "BSPROV" not in header or not header.get("NAXIS"):
            return prediction
        prediction = CCDData.read(prediction, hdu_uncertainty="UNCERT", hdu_mask="MASK")
    meta = getattr(prediction, "meta", None) or {}
    if isinstance(prediction, NDData) and "BSPROV" in meta and not isinstance(meta.get("provenance"), Mapping):
        return NDData(prediction.data, uncertainty=prediction.uncertainty, mask=prediction.mask, wcs=prediction.wcs,
                      unit=prediction.unit, meta={"provenance": json.loads(meta["BSPROV"])})
    return prediction


def parse_compared(prediction, truth, inputs):
    """Parsed prediction, truth and inputs of `compare`, all checked to have the truth's shape.

    The truth's band -- the predicted one -- is never one of the inputs, even when they come as a
    whole stack of observed bands.
    """
    pred = parse_image(prediction, "prediction", warn=False)  # one warning in compare covers both
    band = band_name(prediction)
    if band is not None and isinstance(truth, (str, os.PathLike)):
        truth = band_file(band, truth, pred.unit)
    else:
        check_truth_band(truth, band)
    true = in_unit_of(pred, parse_image(truth, "truth", warn=False), "truth", band)
    if pred.data.shape != true.data.shape:
        raise ValueError(f"prediction has shape {pred.data.shape} but truth has shape {true.data.shape}: put the "
                         f"truth on the prediction's pixel grid first {_ONTO_PREDICTION}")
    check_same_grid(pred, true, "truth")
    ins = parse_inputs(inputs, true.data.shape)
    for b, image in ins.items():
        check_same_grid(pred, image, f"input {b!r}")
    return pred, true, {b: in_unit_of(pred, image, f"input {b!r}", b) for b, image in ins.items()
                        if not same_band(b, band)}


def check_truth_band(truth, band):
    """Warn of an in-memory truth whose header names another filter than the prediction's band.

    ``stack["VISTA_H"]`` of a survey's file given as the truth of r was scored as r without a
    word; as a file read as another band, it is compared as asked, and said so.

    Parameters
    ----------
    truth : object
        The truth as given to `compare`; its ``meta`` (a FITS header or a dict) is read.
    band : str or None
        The prediction's band (None: nothing to check).

    Warns
    -----
    AstropyUserWarning
        The header (SURVEY/FILTER, or a bandsynth output's BSBAND) names another filter.
    """
    import warnings

    from astropy.utils.exceptions import AstropyUserWarning

    from ..bands import header_band, same_filter

    meta = getattr(truth, "meta", None)
    named = header_band(meta) if band is not None and isinstance(meta, Mapping) else None
    try:
        other = named is not None and not same_filter(band, [named.name])
    except ValueError:  # a prediction's band the registry does not know: nothing to compare it with
        other = False
    if other:
        warnings.warn(f"the truth's header names band {named.name} (SURVEY/FILTER or BSBAND), another filter than "
                      f"the prediction's {band}: compared as {band}, as asked", AstropyUserWarning, stacklevel=4)


_ONTO_PREDICTION = "(BandStack.from_fits(..., reproject_to=(prediction.wcs, prediction.data.shape)))"


def check_same_grid(pred, image, what):
    """Refuse an image whose WCS puts the sky elsewhere on the pixels than the prediction's: pixel by pixel
    it would be compared with another part of the sky (a shifted cut-out of the same shape passed)."""
    from ..resample import GRID_TOLERANCE, grid_offset

    if pred.wcs is None or image.wcs is None or not (pred.wcs.has_celestial and image.wcs.has_celestial):
        return
    offset = grid_offset(pred.wcs.celestial, image.wcs.celestial, pred.data.shape)
    if offset > GRID_TOLERANCE:
        raise ValueError(f"{what} is not on the prediction's pixel grid (its WCS differs by up to {offset:.3g} "
                         f"pixels): put it on the prediction's grid first {_ONTO_PREDICTION}")


def in_unit_of(pred, image, what, band):
    """``image`` (a `~bandsynth.morphology.ParsedImage`) in the prediction's unit, when both state one.

    A truth in Jy compared with a prediction in nanomaggies is converted (f_nu <-> f_lambda at the band's
    wavelength where needed), not read as nanomaggies; one in a surface brightness (MJy/sr) with its WCS's
    pixel area; a unit that is no flux of the same kind is refused.
    """
    import astropy.units as u

    from ..units import area_of, needs_pixel_area, needs_wavelength, to_unit

    if pred.unit is None or image.unit is None or image.unit == pred.unit:
        return image
    from ..bands import get_band

    try:
        known = get_band(band) if band is not None else None
    except ValueError:  # a label the registry does not know: no wavelength to convert f_nu <-> f_lambda at
        known = None
    # a surface brightness (MJy/sr) becomes a flux per pixel with the image's pixel area
    area = area_of(image.wcs if image.wcs is not None else pred.wcs)
    try:
        if image.uncertainty is None:
            data, sigma = to_unit(image.data, image.unit, pred.unit, band=known, pixel_area=area), None
        else:
            data, sigma = to_unit(image.data, image.unit, pred.unit, band=known, pixel_area=area,
                                  uncertainty=image.uncertainty)
    except (u.UnitsError, ValueError):
        if area is None and needs_pixel_area(image.unit, pred.unit, band=known):
            hint = "a surface brightness converts to a flux per pixel through the pixels' area: give either a WCS"
        elif known is None and needs_wavelength(image.unit, pred.unit):
            hint = ("a flux per wavelength converts to one per frequency only at a band's wavelength, and the "
                    "prediction names no known band")
        else:
            hint = "give it in a flux unit"
        raise u.UnitConversionError(f"{what} is in {image.unit}, which cannot be converted to the prediction's "
                                    f"unit {pred.unit}; {hint}") from None
    return image._replace(data=data, uncertainty=sigma, unit=pred.unit)


def band_file(band, path, unit):
    """The image of ``band`` in a FITS file (``FILE[EXT]`` names an HDU), read as `BandStack.from_fits
    <bandsynth.BandStack.from_fits>` reads a band: a file of several bands' images is read from that band's
    HDU, never from its first (another band's); ``unit`` where the file states none."""
    from astropy.nddata import NDData, StdDevUncertainty

    from .._io import split_extended_name
    from ..bands import get_band
    from ..stack_io import read_band_file
    from ..zeropoints import apply_zeropoint

    path, hdu = split_extended_name(path)
    try:
        image = read_band_file(get_band(band), path, hdu=hdu, unit=unit)[0]
    except BandError as err:  # its hints name an HDU as BandStack.from_fits does (hdu=); compare reads FILE[EXT]
        text = HDU_HINT.sub(lambda m: f"'{path}[{m.group(2)}]'", str(err))
        text = text.replace(", or read the file as one multi-extension stack (BandStack.from_fits(path))", "")
        raise type(err)(text, band=err.band, path=err.path) from None
    apply_zeropoint(get_band(band), image)  # counts with their header's zero point, as BandStack.from_fits reads them
    sigma = None if image.uncertainty is None else StdDevUncertainty(image.uncertainty)
    return NDData(image.data, uncertainty=sigma, mask=image.mask, wcs=image.wcs, unit=image.unit)


def same_band(name, band):
    """Whether the band ``name`` is the band ``band`` (None: no band to be)."""
    from ..bands import get_band

    try:
        return band is not None and get_band(name).name == get_band(band).name
    except ValueError:
        return False
