"""Does a stack look like the data a model was trained on?  Pixel scale, PSF and noise checks.

`domain_problems` compares a `~bandsynth.BandStack` with a model card's training
range and returns what is out of it, in words; `bandsynth.Translator.predict` warns
with them and records them in the provenance.
"""

from __future__ import annotations

import numpy as np

from ..restored_noise import difference_scatter_ratio, noise_offsets

__all__ = ["domain_problems", "restores_noise", "input_psf_fwhm", "psf_tags", "input_noise", "depth_tags",
           "tolerated_noise", "pixel_noise", "PSF_KEYWORDS", "NOISE_FLOOR", "PIXEL_SCALE_FACTOR",
           "SURVEY_PIXEL_SCALE_FACTOR", "OFFSET_FLUX_TOLERANCE"]

#: Header keywords read as an input's PSF FWHM in arcsec (the common survey spellings;
#: "FWHM" alone is left out because some pipelines write it in pixels).
PSF_KEYWORDS = ("PSF_FWHM", "PSFFWHM", "SEEING")

#: Noise a model trained without a noise record is taken to tolerate, as a fraction of each
#: band's asinh softening (the flux per pixel where its scaling turns from linear to
#: logarithmic).  Noise-free (ideal-mode) mock galaxies measure below 0.2 of it.
NOISE_FLOOR = 0.5

#: Side of the central window in which the noise of a large image is measured (pixels).
NOISE_WINDOW = 1024


def pixel_noise(image, mask=None):
    """Per-pixel noise of an image, from neighbouring-pixel differences in its faint half.

    ``mad_std(x[i, j+1] - x[i, j]) / sqrt(2)`` over the pixel pairs where the image,
    smoothed (Gaussian, 2 px), is below its median: smooth light cancels in the
    differences and the smoothing keeps the choice of pixels from depending on the
    noise, so this measures the sky noise even where a galaxy fills the stamp (it
    reads the KiDS/VIKING stamps' ``SKYSIG`` to ~15 %, and a mock galaxy's noise map
    to ~1 %).  Noise correlated between pixels (after resampling) is underestimated.

    Parameters
    ----------
    image : 2-D array
        Pixel values.
    mask : 2-D bool array, optional
        Bad pixels, left out.

    Returns
    -------
    float
        The standard deviation of one pixel's noise, in the image's unit.

    Examples
    --------
    >>> import numpy as np
    >>> noise = np.random.default_rng(0).normal(0.0, 0.1, (200, 200))
    >>> round(pixel_noise(noise + np.linspace(0, 50, 200)), 2)
    0.1
    """
    from astropy.stats import mad_std
    from scipy.ndimage import gaussian_filter

    data = np.array(image, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] < 2:  # no pixel pairs along a row: nothing to measure
        return 0.0
    bad = ~np.isfinite(data) if mask is None else (np.asarray(mask, dtype=bool) | ~np.isfinite(data))
    data[bad] = np.median(data[~bad]) if (~bad).any() else 0.0
    smooth = gaussian_filter(data, 2.0)
    diff, level = np.diff(data, axis=1), np.maximum(smooth[:, 1:], smooth[:, :-1])
    use = (level <= np.median(level)) & ~bad[:, 1:] & ~bad[:, :-1]
    return float(mad_std(diff[use]) / np.sqrt(2.0)) if use.any() else 0.0


def tolerated_noise(recorded, softening):
    """The noise per pixel a model is taken to have been trained on in a band.

    The noise its training inputs had (``recorded``), but at least `NOISE_FLOOR` times the
    band's softening: below that the scaling is linear and the noise of nearly noise-free
    (ideal-mode) images says nothing about what the model tolerates.

    Parameters
    ----------
    recorded : float
        The training inputs' noise per pixel (``card.training["noise"][band]``).
    softening : float
        The band's asinh softening, in the same unit.

    Returns
    -------
    float

    Examples
    --------
    >>> tolerated_noise(0.001, 0.01), tolerated_noise(0.02, 0.01)
    (0.005, 0.02)
    """
    return max(float(recorded), NOISE_FLOOR * float(softening))


def _recorded_noise(card, band):
    """The noise per pixel the card records for ``band``'s training inputs, or None."""
    return dict(card.training.get("noise", {}) or {}).get(band)


def _trained_noise(card, band):
    """The noise per pixel the model's training inputs had in ``band``, or None when unknown."""
    recorded = _recorded_noise(card, band)
    softening = float(card.scaling[band]["softening"])
    if recorded is not None:
        return tolerated_noise(recorded, softening)
    return NOISE_FLOOR * softening if card.mode == "ideal" else None


def input_noise(stack, band, *, unit=None):
    """Per-pixel noise of ``band`` in ``stack``, measured in the image (`pixel_noise`).

    Measured in the central `NOISE_WINDOW` pixels at most, so that a mosaic's noise is
    read without copying the mosaic; masked pixels are left out.

    Parameters
    ----------
    stack : `~bandsynth.BandStack`
    band : str
        Band name.
    unit : str or `~astropy.units.UnitBase`, optional
        Measure in this unit (a model's), converted as `~bandsynth.Translator.predict`
        converts the inputs; default: the band's own.

    Returns
    -------
    float
    """
    from ..units import area_of, to_unit

    starts = [max(0, (n - NOISE_WINDOW) // 2) for n in stack.shape]
    seen = stack.view(band, tuple(slice(start, start + NOISE_WINDOW) for start in starts))
    data = seen.data if unit is None or seen.unit is None else to_unit(seen.data, seen.unit, unit, band=band,
                                                                         pixel_area=area_of(stack.wcs))
    return pixel_noise(data, seen.mask)


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


def _broadest_psf_ratio(card):
    """How many times broader than the training PSF the card's model was trained to read inputs (1: not at all)."""
    return float(card.training.get("psf_max_ratio") or 1.0)


def _quietest_noise(card, band, factor):
    """Below this noise per pixel ``band`` is quieter than the model knows; None for a model trained on (nearly)
    noise-free inputs, which deeper images do not surprise."""
    recorded = _recorded_noise(card, band)
    if recorded is None or recorded <= NOISE_FLOOR * float(card.scaling[band]["softening"]):
        return None
    return float(recorded) / factor


def _noisiest_ratio(card):
    """How many times noisier than its training inputs the card's model was trained to read inputs (1: not at all)."""
    return float(card.training.get("noise_max_ratio") or 1.0)


def _held_tag(ratio, most):
    """``log2(ratio)`` held within what training taught, ``[0, log2(most)]``, rounded to 0.01."""
    return round(float(np.log2(np.clip(ratio, 1.0, most))), 2)


def psf_tags(card, stack, inputs):
    """Per input band, the PSF tag ``log2(FWHM / FWHM_trained)`` an any-band network with PSF tags reads.

    The tag says how much broader the band's PSF in ``stack`` is than the training images'
    (`bandsynth.nn.any_band`).  It is held within the range training taught, 0 to
    ``log2(card.training["psf_max_ratio"])`` (`domain_problems` reports a PSF beyond it), is 0
    where the stack or the card records no PSF, and is rounded to 0.01 so that stacks of
    nearly the same seeing make one request.

    Parameters
    ----------
    card : `~bandsynth.models.zoo.ModelCard`
    stack : `~bandsynth.BandStack`
    inputs : sequence of str
        The bands at hand.

    Returns
    -------
    tuple of float
    """
    broadest = _broadest_psf_ratio(card)
    tags = []
    for band in inputs:
        fwhm, trained = input_psf_fwhm(stack, band), card.psf_fwhm.get(band)
        tags.append(_held_tag(1.0 if fwhm is None or not trained else fwhm / float(trained), broadest))
    return tuple(tags)


def depth_tags(card, stack, inputs):
    """Per input band, the depth tag ``log2(noise / noise_trained)`` an any-band network with depth tags reads.

    The tag says how much noisier the band is in ``stack`` (`input_noise`) than the model's
    training inputs (`tolerated_noise` of the card's ``training["noise"]``).  As for
    `psf_tags`, it is held within the range training taught, 0 to
    ``log2(card.training["noise_max_ratio"])`` (`domain_problems` reports noise beyond it),
    is 0 where the card records no training noise, and is rounded to 0.01.

    Parameters
    ----------
    card : `~bandsynth.models.zoo.ModelCard`
    stack : `~bandsynth.BandStack`
    inputs : sequence of str
        The bands at hand.

    Returns
    -------
    tuple of float
    """
    noisiest = _noisiest_ratio(card)
    tags = []
    for band in inputs:
        trained = _trained_noise(card, band)
        tags.append(_held_tag(input_noise(stack, band, unit=card.unit) / trained if trained else 1.0, noisiest))
    return tuple(tags)


def _times(ratio, factor):
    """``"2.04 times"`` for a ratio beyond ``factor``, never rounded down onto it ("2.0 times (warned beyond 2)")."""
    text = f"{ratio:.3g}" if ratio < 100 else f"{ratio:.0f}"  # no "1.23e+04 times"
    return f"{text} times" if float(text) > factor else f"just over {factor:g} times"


def _for_observed_images(card):
    """Advice for noisy inputs: the shipped survey-layer model of the same bands, if there is one."""
    from .zoo import list_models

    if card.survey is not None:  # already trained on survey images, less deep than these
        return ("noisier than any image it was trained on: check the prediction against an observed band "
                "(SyntheticBand.compare) before relying on it")
    same = [c.name for c in list_models() if card.mode == "ideal" and c.output == card.output
            and set(c.inputs) == set(card.inputs) and c.survey is not None]
    if same:
        return f"the shipped model {same[0]!r} was trained on images as the surveys observe them"
    return "a model trained on survey-like data suits noisy images better"


#: A survey model keeps the photometric contract on offset grids when the faint mock galaxies of its universe
#: come out within this fraction of their flux with both inputs' grids offset by half a pixel (its card's
#: ``metrics["grid_offsets"]``, measured by ``benchmarks/grid_offsets.py --write-card``): beyond it, or unmeasured,
#: an input interpolated onto a grid of its own pixel size is warned about.
OFFSET_FLUX_TOLERANCE = 0.02


def restores_noise(card, restore_noise="auto"):
    """Whether a prediction with ``card``'s model adds back the noise a sub-pixel resampling smoothed away.

    Never for a model trained on noise-free images, which reads no noise; with ``"auto"``, for a model of survey
    images unless its card records it holding within `OFFSET_FLUX_TOLERANCE` without
    (``metrics["grid_offsets"]["median_flux_change_unrestored"]``): the restored noise is one more draw of noise,
    which a model that already holds would only read as such (`bandsynth.restored_noise`).

    Parameters
    ----------
    card : `~bandsynth.models.zoo.ModelCard`
    restore_noise : {"auto", True, False}
        `~bandsynth.Translator.predict`'s option.

    Returns
    -------
    bool

    Examples
    --------
    >>> from bandsynth.models.zoo import get_card
    >>> restores_noise(get_card("g_r_to_u")), restores_noise(get_card("g_r_to_u_paper"), True)
    (True, False)
    """
    if card.mode != "survey" or restore_noise is False:
        return False
    if restore_noise == "auto":
        unrestored = (card.metrics.get("grid_offsets") or {}).get("median_flux_change_unrestored")
        return unrestored is None or abs(unrestored) > OFFSET_FLUX_TOLERANCE
    return True


def _synthetic_input(stack, band):
    """The sentence for an input that is itself a bandsynth prediction (its FITS file's BSMODEL), or None."""
    made_by = (stack.view(band).meta or {}).get("BSMODEL")
    if not made_by:
        return None
    return (f"input {band} is a synthetic band predicted by model {made_by!r} (FITS keyword BSMODEL), not an "
            "observation: this prediction inherits its errors, which are correlated between pixels, and reads "
            "its UNCERT as independent pixel noise")


def _resampled_noise(card, stack, band, *, restored, restorable):
    """The sentence for a noisy input interpolated onto a grid of its own pixel size, for a model that reads noise
    and is not measured to hold on such grids (or None).  How much the interpolation smooths the noise between
    pixels depends on the grid's sub-pixel offset, and a model trained on aligned grids reads smoother noise as a
    deeper image.  ``restored``: whether the prediction adds the smoothed-out noise back to the band
    (`bandsynth.restored_noise`), ``restorable``: whether it could (a shift of the band's own grid); the card
    records the change with and without."""
    if card.mode != "survey":
        return None
    moved = [r for r in stack.meta.get("reprojection", ()) if hasattr(r, "get") and r.get("band") == band
             and abs(float(r.get("area_ratio", 0.0)) - 1.0) <= 0.05 and float(r.get("subpixel_shift", 0.0)) > 0.02]
    if not moved:
        return None
    record = card.metrics.get("grid_offsets") or {}
    key = "median_flux_change" if restored else "median_flux_change_unrestored"
    change, interval = record.get(key), record.get(f"{key}_68")
    if change is not None and abs(change) <= OFFSET_FLUX_TOLERANCE:
        return None
    how = "with their noise restored" if restored else "without their noise restored"
    if change is None:
        measured = ("a faint galaxy's predicted flux can change by tens of per cent with that offset (models "
                    "trained on aligned grids only: g_r_to_u version 5's faint mock galaxies, both inputs offset by "
                    "half a pixel, came out a median 39 % brighter)")
    else:
        known = "" if not interval else (  # a faint galaxy moves with the noise drawn: how well the median is known
            f" (the median's 16-84 % interval {100 * interval[0]:+.0f} to {100 * interval[1]:+.0f} %)")
        measured = (f"its faint mock galaxies came out a median {100 * abs(change):.0f} % "
                    f"{'brighter' if change > 0 else 'fainter'}{known} with both inputs' grids offset by "
                    f"{float(record.get('offset', 0.5)):g} pixel, {how} (its card's metrics['grid_offsets'])")
    remedy = "; restore_noise=True adds the smoothed-out noise back" if restorable and not restored else ""
    return (f"input {band} was resampled onto a grid of its own pixel size shifted by "
            f"{float(moved[-1]['subpixel_shift']):.2g} pixel ({moved[-1].get('method')}), which "
            f"smooths its noise between pixels by an amount that depends on the grid's sub-pixel offset; model "
            f"{card.name!r} reads the noise, and {measured}; where the bands share a grid, predict on it{remedy}")


#: Pixel scales further than this factor from the training images' are warned about, for a model
#: trained on ideal (noise-free) images: the ideal-mode nuv_k_to_r_paper moved a galaxy's flux by a
#: median of at most 0.02 mag on pixels 0.67-2 times its own (benchmarks/pixel_scale.py).
PIXEL_SCALE_FACTOR = 1.5
#: The same for a model trained on noisy (survey) images, which reads the noise's texture on its pixels
#: too.  Measured (benchmarks/pixel_scale.py, 24 fresh survey-layer galaxies each): on pixels 10 % smaller
#: or larger than the training's, a galaxy's flux moved by a median 0.02-0.05 mag (g_z_to_r,
#: kids_g_z_to_r) and 0.16-0.27 mag (nuv_k_to_r); on observed KiDS galaxies at 0.2"/pixel the survey-layer
#: g + r -> u model (0.396") misses u by a median 0.47 mag, by 0.18 mag on the same stamps put onto
#: 0.396" pixels (benchmarks/real_sky.py --grid set / --grid model).
SURVEY_PIXEL_SCALE_FACTOR = 1.05


def _onto(stack, trained):
    """Where to reproject a stack off the model's pixel scale: the grid of a band that came on that scale (read
    unresampled; "onto 1 arcsec/pixel" made a new grid, which moved a 2MASS Ks band too), else the scale."""
    native = [r["band"] for r in stack.meta.get("reprojection", ())
              if abs(float(r.get("pixel_scale_in", 0.0)) / trained - 1.0) < SURVEY_PIXEL_SCALE_FACTOR - 1.0]
    if native:
        return f"reproject the inputs onto the grid of {native[0]}, which has {trained:.3g} arcsec/pixel: " \
               f"reproject_to={native[0]!r}"
    return f"reproject the inputs onto {trained:.3g} arcsec/pixel: reproject_to={trained:.3g} * u.arcsec"


def domain_problems(card, stack, *, factor=2.0, pixel_scale_factor=None, restore_noise="auto"):
    """Sentences naming each way ``stack`` lies outside ``card``'s training range.

    Parameters
    ----------
    card : `~bandsynth.models.zoo.ModelCard`
    stack : `~bandsynth.BandStack`
    factor : float
        PSF FWHM more than this factor from the training data's is reported, and noise
        more than this factor above it (`pixel_noise`; ideal-mode models: above
        `NOISE_FLOOR` times the band's softening) or, for a model trained on noisy
        inputs, below it (on survey mocks a faint galaxy's predicted flux moved by up to
        0.2 mag when its inputs' noise was halved); the noise before a sub-pixel shift of the band's own grid.
    pixel_scale_factor : float, optional
        Pixel scale more than this factor from the training data's is reported (default:
        `PIXEL_SCALE_FACTOR`, or `SURVEY_PIXEL_SCALE_FACTOR` for a model trained on
        survey images).
    restore_noise : {"auto", True, False}
        `~bandsynth.Translator.predict`'s option (`restores_noise`): an input resampled by a
        sub-pixel shift of its grid is reported unless the card's ``metrics["grid_offsets"]``
        records the model within `OFFSET_FLUX_TOLERANCE` in the same case (restored or not).

    Returns
    -------
    list of str
    """
    problems = []
    field = int(card.receptive_field or 0)
    if field and min(stack.shape) <= field // 2:  # every pixel reads more mirrored edge than image
        problems.append(
            f"this stack is {stack.shape[0]} x {stack.shape[1]} pixels, at most half the {field}-pixel receptive "
            f"field of model {card.name!r}: every pixel's prediction reads more of the image mirrored at its edges "
            "than of the image itself; the prediction may be unreliable (give a larger cut-out)"
        )
    wcs = stack.wcs
    if card.mode == "survey" and (wcs is None or not wcs.has_celestial):  # an array's pixels may be any size
        problems.append(
            f"this stack has no celestial WCS, so its pixel scale cannot be checked against the "
            f"{float(card.pixel_scale):.3g} arcsec/pixel model {card.name!r} was trained on, to which a model of "
            "survey images is sensitive: give the inputs their WCS (in their files' headers, or wcs= for arrays)"
        )
    elif wcs is not None and wcs.has_celestial:
        from astropy.wcs.utils import proj_plane_pixel_scales

        scale = float(np.mean(proj_plane_pixel_scales(wcs.celestial)) * 3600.0)
        trained = float(card.pixel_scale)
        if pixel_scale_factor is None:
            pixel_scale_factor = SURVEY_PIXEL_SCALE_FACTOR if card.mode == "survey" else PIXEL_SCALE_FACTOR
        if not 1 / pixel_scale_factor <= scale / trained <= pixel_scale_factor:
            problems.append(
                f"model {card.name!r} was trained on {trained:.3g} arcsec/pixel images; this stack has "
                f"{scale:.3g} arcsec/pixel: the prediction may be unreliable ({_onto(stack, trained)})"
            )
    broadest, noisiest = _broadest_psf_ratio(card), _noisiest_ratio(card)  # > 1: trained on worse inputs too
    noisy = [b for b in card.inputs if b in stack and stack.view(b).uncertainty is not None]  # view: no copy
    if noisy and len(noisy) < len(card.inputs):
        problems.append(
            f"only {', '.join(noisy)} of the inputs carr{'ies' if len(noisy) == 1 else 'y'} an uncertainty: sigma has "
            "no Monte Carlo term of the inputs' noise (the 'plain' calibration), as a draw of some bands' noise "
            "alone would state too small a sigma; give every input's uncertainty for one"
        )
    shifts, restoring = noise_offsets(stack, card.inputs), restores_noise(card, restore_noise)
    for band in card.inputs:
        if band not in stack:  # the missing band is reported by the input preparation
            continue
        problems += [p for p in (_synthetic_input(stack, band), _resampled_noise(
            card, stack, band, restored=restoring and band in shifts, restorable=band in shifts)) if p]
        trained_noise = _trained_noise(card, band)
        noise = None if trained_noise is None else input_noise(stack, band, unit=card.unit)
        if noise is not None and band in shifts:  # the depth before the shift; its smoothing is warned of above
            noise /= difference_scatter_ratio(shifts[band]["fractions"])  # the central window's (input_noise)
        if noise is not None and noise > factor * noisiest * trained_noise:
            trained = ("noise-free" if card.mode == "ideal" and "noise" not in card.training
                       else f"noise up to {noisiest * trained_noise:.3g} {card.unit}/pixel in")
            times = "" if card.mode == "ideal" and "noise" not in card.training else (
                f", {_times(noise / (noisiest * trained_noise), factor)} that (warned beyond {factor:g} times)")
            problems.append(
                f"model {card.name!r} was trained on {trained} {band} images; this stack's {band} noise is "
                f"{noise:.3g} {card.unit}/pixel{times}: the prediction may be unreliable "
                f"({_for_observed_images(card)})"
            )
        quietest = _quietest_noise(card, band, factor)
        if noise is not None and quietest is not None and noise < quietest:
            less = f"{_times(quietest * factor / noise, factor)} less" if noise > 0 else "none measurable"
            problems.append(
                f"model {card.name!r} was trained on {band} images with noise of {quietest * factor:.3g} {card.unit}/"
                f"pixel; this stack's {band} noise is {noise:.3g}, {less} (warned beyond {factor:g} times): the model "
                "reads faint light against the noise it was trained with, and the predicted flux of a faint galaxy "
                "may change with the depth"
            )
        fwhm, trained = input_psf_fwhm(stack, band), card.psf_fwhm.get(band)
        if fwhm is not None and trained and not 1 / factor <= fwhm / float(trained) <= factor * broadest:
            blurred = f" (and blurred up to {broadest * float(trained):.3g})" if broadest > 1 else ""
            problems.append(
                f"model {card.name!r} was trained on {band} images with a PSF FWHM of {float(trained):.3g} "
                f"arcsec{blurred}; this stack's {band} PSF is {fwhm:.3g} arcsec: the prediction may be unreliable"
            )
    return problems
