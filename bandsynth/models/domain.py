"""Does a stack look like the data a model was trained on?  Pixel scale and PSF checks.

`domain_problems` compares a `~bandsynth.BandStack` with a model card's training
range and returns what is out of it, in words; `bandsynth.Translator.predict` warns
with them and records them in the provenance.
"""

from __future__ import annotations

import numpy as np

__all__ = ["domain_problems", "input_psf_fwhm", "PSF_KEYWORDS"]

#: Header keywords read as an input's PSF FWHM in arcsec (the common survey spellings;
#: "FWHM" alone is left out because some pipelines write it in pixels).
PSF_KEYWORDS = ("PSF_FWHM", "PSFFWHM", "SEEING")


def input_psf_fwhm(stack, band):
    """PSF FWHM (arcsec) of ``band`` in ``stack``, or None when nothing records it.

    Read from ``stack.meta["psf_fwhm"][band]`` (mock galaxies) or the band's header
    keywords `PSF_KEYWORDS`.

    Parameters
    ----------
    stack : `~bandsynth.BandStack`
    band : str
        Band name.

    Returns
    -------
    float or None
    """
    recorded = stack.meta.get("psf_fwhm")
    candidates = [recorded.get(band)] if hasattr(recorded, "get") else []
    header = stack.view(band).meta or {}  # not stack[band], a copy of the whole image
    candidates += [header.get(key) for key in PSF_KEYWORDS]
    for value in candidates:
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if np.isfinite(value) and value > 0:
            return value
    return None


def domain_problems(card, stack, *, factor=2.0):
    """Sentences naming each way ``stack`` lies outside ``card``'s training range.

    Parameters
    ----------
    card : `~bandsynth.models.zoo.ModelCard`
    stack : `~bandsynth.BandStack`
    factor : float
        Pixel scale or PSF FWHM more than this factor from the training data's is reported.

    Returns
    -------
    list of str
    """
    problems = []
    wcs = stack.wcs
    if wcs is not None and wcs.has_celestial:
        from astropy.wcs.utils import proj_plane_pixel_scales

        scale = float(np.mean(proj_plane_pixel_scales(wcs.celestial)) * 3600.0)
        trained = float(card.pixel_scale)
        if not 1 / factor <= scale / trained <= factor:
            problems.append(
                f"model {card.name!r} was trained on {trained:.3g} arcsec/pixel images; this stack has "
                f"{scale:.3g} arcsec/pixel: the prediction may be unreliable (reproject the inputs?)"
            )
    for band in card.inputs:
        if band not in stack:  # the missing band is reported by the input preparation
            continue
        fwhm, trained = input_psf_fwhm(stack, band), card.psf_fwhm.get(band)
        if fwhm is not None and trained and not 1 / factor <= fwhm / float(trained) <= factor:
            problems.append(
                f"model {card.name!r} was trained on {band} images with a PSF FWHM of {float(trained):.3g} "
                f"arcsec; this stack's {band} PSF is {fwhm:.3g} arcsec: the prediction may be unreliable"
            )
    return problems
