"""From a network's scaled output to a `~bandsynth.SyntheticBand`: calibration, flux, provenance.

The last step of `bandsynth.Translator.predict`: the scaled mean goes through the
exact inverse of the output band's fixed scaling; the scaled variance is multiplied
by the calibration of the configuration that produced it (a warning when the card
has none) and the calibrated 1-sigma interval is mapped to flux
(`bandsynth.uncertainty.flux_sigma`); the provenance records how every number was
made.  `plan_prediction` checks a call's options before any of this.
"""

from __future__ import annotations

import datetime
import warnings
from collections.abc import Iterable

import numpy as np
from astropy.nddata import StdDevUncertainty
from astropy.utils.exceptions import AstropyUserWarning

from ._io import input_files
from .nn.any_band import INPUT_TAGS
from .scaling import AsinhScaling
from .uncertainty import Calibration, PixelDraws, flux_sigma, grid_origin
from .units import parse_unit

#: How the provenance history names each kind of input tag an any-band request read.
_TAG_WORDS = {"psf": "PSF tags read, log2(FWHM / training FWHM)",
             "depth": "Depth tags read, log2(noise / training noise)"}

__all__ = ["MASKED_PIXELS_NOTE", "check_input_size", "check_output_band", "check_one_stack", "check_predict_options",
           "plan_prediction", "describe_uncertainty", "to_flux", "to_synthetic", "prediction_provenance", "predict_batch",
           "noise_restoration", "computation_record"]


#: The provenance history's line on masked pixels, after their number (a resumed batch reports it again).
MASKED_PIXELS_NOTE = "pixels masked: bad or masked input pixels."


def _calibration(card, configuration):
    data = card.calibration.get(configuration)
    return None if data is None else Calibration.from_dict(configuration, dict(data))


def is_band_list(band) -> bool:
    """Whether ``band=`` asks for several bands: a list, tuple, set or other iterable of names, not one name or Band.

    Parameters
    ----------
    band : object

    Returns
    -------
    bool

    Examples
    --------
    >>> is_band_list(["g", "r"]), is_band_list("r"), is_band_list(None)
    (True, False, False)
    """
    from .bands import Band

    return isinstance(band, Iterable) and not isinstance(band, (str, bytes, Band))


def check_output_band(card, band):
    """Refuse a ``band`` the model of ``card`` does not write.

    A model of one mapping accepts ``band=`` too, so that a script may pass it to whatever
    model it is given.  Where the band asked for is one the model writes in another survey's
    filter (``"H"`` for a model of ``"VISTA_H"``), the message suggests the model's.

    Parameters
    ----------
    card : `~bandsynth.models.zoo.ModelCard`
    band : str, list of str or None
        The band asked for, or a list of them; None asks for nothing.

    Returns
    -------
    bool
        Whether ``band`` is a list (whose predictions come as a dict of band to prediction).

    Raises
    ------
    ValueError
        ``band`` is not a band the model writes, or an empty list.
    """
    from .bands import get_band, same_filter

    if is_band_list(band):
        band = list(band)
        if not band:
            raise ValueError(f"band=[] asks for no band; model {card.name!r} predicts {', '.join(card.writes)}")
        for b in band:
            check_output_band(card, b)
        return True
    if band is None:
        return False
    alike = same_filter(band, card.writes)
    hint = f" (did you mean {' or '.join(map(repr, alike))}?)" if alike else ""
    try:
        name = get_band(band).name
    except ValueError as err:  # a survey's own short name ("Y" of VIKING) is no registered band
        raise ValueError(f"{err}{hint}") from None
    if name in card.writes:
        return False
    if card.outputs:  # an any-band model
        raise ValueError(f"model {card.name!r} predicts {', '.join(card.outputs)}; it cannot predict {band!r}"
                         f"{'' if str(band) == name else f' (the registry reads it as {name})'}{hint}")
    raise ValueError(f"model {card.name!r} predicts {card.output} only; band={band!r} asks for another{hint}")


def check_one_stack(stack):
    """Refuse anything but one `~bandsynth.BandStack` for ``predict_to_fits``, which writes one file.

    Parameters
    ----------
    stack : object

    Raises
    ------
    TypeError
        ``stack`` is not a `~bandsynth.BandStack` (a list of them: call once per stack).

    Examples
    --------
    >>> check_one_stack([])
    Traceback (most recent call last):
    ...
    TypeError: predict_to_fits writes one stack's prediction into one file: ... got list (call it once per stack)
    """
    from .stack import BandStack

    if not isinstance(stack, BandStack):
        several = " (call it once per stack)" if isinstance(stack, (list, tuple)) else ""
        raise TypeError(f"predict_to_fits writes one stack's prediction into one file: it expects a BandStack, got "
                        f"{type(stack).__name__}{several}")


def check_input_size(stack, translator):
    """Refuse a stack smaller than the network's smallest input, naming its input bands and files.

    Parameters
    ----------
    stack : `~bandsynth.BandStack`
    translator : `~bandsynth.Translator`

    Raises
    ------
    bandsynth.errors.BandInputError
        The image is smaller than ``translator.model.minimum_input_size`` on a side.

    Examples
    --------
    >>> import numpy as np
    >>> from bandsynth import BandStack, Translator
    >>> tiny = BandStack.from_arrays({"g": np.eye(3) + 1, "r": np.eye(3) + 2}, unit="nanomaggy")
    >>> check_input_size(tiny, Translator.load("g_r_to_u"))
    Traceback (most recent call last):
    ...
    bandsynth.errors.BandInputError: bands g, r: image of 3x3 pixels is smaller than the 4x4 pixels model 'g_r_to_u' needs
    """
    from .errors import BandInputError

    minimum = translator.model.minimum_input_size
    if min(stack.shape) >= minimum:
        return
    files = input_files(stack.meta.get("inputs"))
    bands = [b for b in translator.inputs if b in stack.names] or list(stack.names)
    named = ", ".join(f"{b} ({files[b]!r})" if files.get(b) else b for b in bands)
    raise BandInputError(f"band{'s' if len(bands) > 1 else ''} {named}: image of {stack.shape[0]}x{stack.shape[1]} "
                         f"pixels is smaller than the {minimum}x{minimum} pixels model {translator.name!r} needs",
                         band=",".join(bands), path=None)


def plan_prediction(translator, stacks, *, uncertainty, tta, n_samples, batch_size, precision, tile, seed,
                    check_domain, compile, progress, restore_noise, stacklevel):
    """The checked options of one `~bandsynth.Translator.predict` call, and the domain warnings of its stacks.

    Warns (`~astropy.utils.exceptions.AstropyUserWarning`, once per message) when a stack is
    outside the model's domain (`bandsynth.models.domain.domain_problems`).

    Parameters
    ----------
    translator : `~bandsynth.Translator`
    stacks : list of `~bandsynth.BandStack`
    uncertainty, tta, n_samples, batch_size, precision, tile, seed, check_domain, compile, progress, restore_noise
        As for `~bandsynth.Translator.predict`.
    stacklevel : int
        Of the warnings, counted from this function.

    Returns
    -------
    problems : list of list of str
        The domain warnings of each stack.
    computation : dict
        How the network runs (`bandsynth.nn.engine.InferenceEngine.describe`), for the provenance.
    options : dict
        ``uncertainty``, ``tta``, ``n_samples``, ``draws``, ``run`` (the engine's options) and
        ``restore_noise``.

    Raises
    ------
    TypeError, ValueError
        A stack that is not a `~bandsynth.BandStack`, or an option out of range.
    """
    from .models.domain import domain_problems
    from .nn.engine import check_options
    from .stack import BandStack
    from .uncertainty import CALIBRATION_DRAWS

    engine = translator.engine
    if not stacks:
        raise ValueError("predict got an empty list of stacks")
    n_samples, batch_size, tile, seed = check_predict_options(
        uncertainty=uncertainty, tta=tta, check_domain=check_domain, restore_noise=restore_noise, n_samples=n_samples,
        batch_size=batch_size, tile=tile, seed=seed)
    engine.compiled_used = False  # set by this prediction's network calls when they run compiled
    precision = check_options(precision=precision, batch_size=batch_size, compile=compile, n_samples=n_samples,
                              device=engine.device, tile=tile, multiple=engine.multiple,
                              bf16_flux_change=dict(translator.card.metrics.get("bf16", {})).get("max_flux_change"))
    for s in (s for s in stacks if not isinstance(s, BandStack)):
        raise TypeError(f"predict expects a BandStack or a list of them, got {type(s).__name__}")
    for s in stacks:  # refused before the domain check warns about an image that is never predicted
        check_input_size(s, translator)
    problems = [domain_problems(translator.card, s, restore_noise=restore_noise) if check_domain else []
                for s in stacks]
    for message in dict.fromkeys(m for p in problems for m in p):
        warnings.warn(message, AstropyUserWarning, stacklevel=stacklevel)
    if uncertainty and 1 < n_samples < CALIBRATION_DRAWS and any(  # draws are made only with every input's noise
            all(s.view(b).uncertainty is not None for b in translator.inputs if b in s) for s in stacks):
        warnings.warn(f"n_samples={n_samples}: the 'mc' calibrations are fitted with {CALIBRATION_DRAWS} Monte Carlo "
                      "draws of the inputs' noise; fewer give a noisier noise term, and sigma covers less than it "
                      f"states (give n_samples >= {CALIBRATION_DRAWS})", AstropyUserWarning, stacklevel=stacklevel)
    run = dict(batch_size=batch_size, tile=tile, precision=precision, compile=compile, progress=_progress(progress))
    computation = {**engine.describe(precision=precision, tile=tile), "tta": bool(tta),
                   "monte_carlo": {"draws": n_samples, "seed": seed, "tied_to": "pixel positions"},
                   # as asked, whatever was made (no draws of inputs without noise): a resumed batch compares them
                   "options": {"uncertainty": bool(uncertainty), "tta": bool(tta), "n_samples": int(n_samples),
                               "seed": seed, "check_domain": bool(check_domain),
                               "restore_noise": restore_noise if restore_noise == "auto" else bool(restore_noise)}}
    options = dict(uncertainty=uncertainty, tta=tta, n_samples=n_samples, draws=PixelDraws(seed), run=run,
                   restore_noise=restore_noise)
    return problems, computation, options


def check_predict_options(*, uncertainty=True, tta=False, check_domain=True, restore_noise="auto", **counts):
    """Check `~bandsynth.Translator.predict`'s yes/no options and counts by name, before any work.

    A yes/no option must be a bool (a string "no" ran as True); a count an integer, numpy's too
    (a float is not), returned as a Python int, since the provenance is JSON.

    Parameters
    ----------
    uncertainty, tta, check_domain : bool
        As for `~bandsynth.Translator.predict`.
    restore_noise : {"auto", True, False}
        As for `~bandsynth.Translator.predict`.
    **counts : int
        Any of ``n_samples``, ``batch_size``, ``tile`` and ``seed``.

    Returns
    -------
    tuple of int
        The counts, in the order given.

    Raises
    ------
    TypeError
        An option of the wrong type, named.

    Examples
    --------
    >>> import numpy as np
    >>> check_predict_options(tta=True, tile=np.int64(256), seed=3)
    (256, 3)
    """
    import numbers

    for name, value in (("uncertainty", uncertainty), ("tta", tta), ("check_domain", check_domain)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    if not (isinstance(restore_noise, (bool, np.bool_)) or restore_noise == "auto"):
        raise TypeError(f"restore_noise must be 'auto', True or False, got {restore_noise!r}")
    for name, value in counts.items():
        if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be an integer, got {value!r}")
    return tuple(int(value) for value in counts.values())


def _progress(progress):
    """``progress=`` as the engine's callable (or None): True shows a tqdm bar of the tiles, False none."""
    if progress is None or progress is False:
        return None
    if progress is True:
        from tqdm.auto import tqdm

        bar = None

        def show(done, total):  # one bar per run of tiles, closed when its last tile is done
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, desc="predict", unit="tile")
            bar.update(done - bar.n)
            if done >= total:
                bar.close()
                bar = None

        return show
    if not callable(progress):
        raise TypeError(f"progress must be True, False or a callable progress(done, total), got "
                        f"{type(progress).__name__}")
    return progress


def describe_uncertainty(card, parts, configuration):
    """``(calibration or None, provenance text, stated error distribution)`` of a configuration.

    Warns (`~astropy.utils.exceptions.AstropyUserWarning`) when the card has no
    calibration for it: the sigma is then the uncalibrated combination of its parts.

    Parameters
    ----------
    card : `~bandsynth.models.zoo.ModelCard`
    parts : list of str
        The uncertainty's components (`bandsynth.uncertainty.sample`).
    configuration : str
        The `predict` configuration (`bandsynth.uncertainty.CONFIGURATIONS`).

    Returns
    -------
    calibration : `~bandsynth.uncertainty.Calibration` or None
    method : str
        Provenance text.
    stated : dict
        ``distribution`` ("gaussian", "laplace" or "generalized normal"; "gaussian" without a
        calibration), its ``shape`` beta and ``half_width_2sigma``, the 95.45 % interval's
        half-width in units of the 68.27 % one (2.0 without a calibration), and whether the
        configuration is ``calibrated``.
    """
    calibration = _calibration(card, configuration)
    if calibration is None:
        warnings.warn(
            f"model {card.name!r} has no uncertainty calibration for the {configuration!r} configuration "
            f"(calibrated: {', '.join(card.calibration) or 'none'}); its sigma is the uncalibrated "
            "combination of its components", AstropyUserWarning, stacklevel=3)
    if calibration is None:  # said in the words of the provenance, not only in a warning that may go unseen
        stated = {"distribution": "gaussian", "shape": 2.0, "half_width_2sigma": 2.0, "calibrated": False}
        method = (" + ".join(parts) + f"; configuration {configuration!r} NOT CALIBRATED (the card calibrates "
                  f"{', '.join(map(repr, card.calibration)) or 'none'}): UNCERT is the uncalibrated sigma of these "
                  "components, taken as Gaussian; its coverage is not known")
        return None, method, stated
    stated = {"distribution": calibration.distribution, "shape": calibration.shape,
              "half_width_2sigma": calibration.half_width_2sigma, "calibrated": True}
    name = stated["distribution"] + (f" (beta = {stated['shape']:g})" if stated["distribution"] == "generalized normal"
                                     else "")
    fitted_on = calibration.summary.get("fitted_on")
    method = (" + ".join(parts) + f"; calibration {configuration!r} (brightness-dependent temperature"
              + (f", fitted on {fitted_on})" if fitted_on else ")")
              + f"; {name} errors: UNCERT is the half-width of the central 68.27 % interval in flux, "
              f"the 95.45 % interval is {stated['half_width_2sigma']:.3g} times wider")
    return calibration, method, stated


def to_flux(card, mean_s, var_s, calibration):
    """Flux and calibrated flux sigma (float32; sigma None without ``var_s``) from scaled mean and variance.

    Parameters
    ----------
    card : `~bandsynth.models.zoo.ModelCard`
        Its output band's scaling maps back to flux.
    mean_s, var_s : ndarray
        Scaled mean and uncalibrated scaled variance (``var_s`` may be None).
    calibration : `~bandsynth.uncertainty.Calibration` or None
        Its brightness-dependent temperature multiplies the scaled sigma (none: 1).

    Returns
    -------
    flux : ndarray
    sigma : ndarray or None
        Half-width of the mapped 68.27 % interval (`bandsynth.uncertainty.flux_sigma`).
    """
    scaling = AsinhScaling.from_dict(dict(card.scaling[card.output]))
    flux = scaling.inverse(np.asarray(mean_s, dtype=np.float64)).astype(np.float32)
    if var_s is None:
        return flux, None
    temperature = 1.0 if calibration is None else calibration.temperature(mean_s)
    return flux, flux_sigma(scaling, mean_s, np.sqrt(var_s) * temperature).astype(np.float32)


def to_synthetic(card, stack, mask, flux, sigma, *, uncertainty, configuration, computation, problems):
    """The `~bandsynth.SyntheticBand` of one galaxy.

    Parameters
    ----------
    card : `~bandsynth.models.zoo.ModelCard`
    stack : `~bandsynth.BandStack`
        The inputs (for the WCS, the input files, the zero-point and reprojection records).
    mask : ndarray of bool
        Bad input pixels.
    flux, sigma : ndarray
        The prediction and its calibrated sigma (`to_flux`; sigma None without uncertainty).
    uncertainty, configuration, computation, problems
        As for `prediction_provenance`.

    Returns
    -------
    SyntheticBand
    """
    from .synthetic import SyntheticBand

    provenance = prediction_provenance(card, stack, int(np.count_nonzero(mask)), uncertainty=uncertainty,
                                       configuration=configuration, computation=computation, problems=problems)
    return SyntheticBand(flux, uncertainty=None if sigma is None else StdDevUncertainty(sigma), mask=mask,
                         wcs=stack.wcs, unit=parse_unit(card.unit), band=card.output,
                         provenance=provenance)


def prediction_provenance(card, stack, n_masked, *, uncertainty, configuration, computation, problems):
    """The provenance record of one prediction (``SyntheticBand.provenance``).

    Parameters
    ----------
    card : `~bandsynth.models.zoo.ModelCard`
    stack : `~bandsynth.BandStack`
        The inputs (for the input files and the reprojection records).
    n_masked : int
        How many pixels are masked for bad input pixels.
    uncertainty : tuple
        ``(method text, stated distribution)`` (`describe_uncertainty`), or ``("none", None)``.
    configuration : str
        The `predict` configuration (`bandsynth.uncertainty.CONFIGURATIONS`).
    computation : dict
        Precision, device, torch version, compilation, tile, halo, receptive field, the
        Monte Carlo draws (kept only where the configuration made them) and the noise restored
        (``restored_noise``, `computation_record`).
    problems : list of str
        Domain warnings (`bandsynth.models.domain.domain_problems`).

    Returns
    -------
    dict
    """
    from . import __version__

    computation = dict(computation)
    if "mc" not in configuration.split("+"):
        computation.pop("monte_carlo", None)

    method, stated = uncertainty
    files = {rec["band"]: rec for rec in stack.meta.get("inputs", ())}
    # an any-band request that read input tags (log2 of each input's PSF FWHM, noise over the training images')
    task = dict(card.architecture.get("task", {}) or {})
    tags = {kind: dict(zip(card.inputs, task[kind])) for kind in INPUT_TAGS if kind in task}
    inputs = [{"band": b, "file": str(files.get(b, {}).get("file", "")),
               **{k: files[b][k] for k in ("hdu", "hdu_named") if k in files.get(b, {})},
               "checksum": str(files.get(b, {}).get("checksum", "")),
               **{f"{kind}_tag": per_band[b] for kind, per_band in tags.items()}}
              for b in card.inputs]
    provenance = {
        "bandsynth_version": __version__, "model": card.name, "model_version": card.version,
        "weights_sha256": card.sha256, "card_sha256": card.card_sha256,
        "prediction_card_sha256": card.prediction_sha256, "band": card.output,
        "inputs": inputs,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "scaling": {"method": "fixed asinh per band (no per-image statistic)", "unit": card.unit,
                    "bands": {b: dict(card.scaling[b]) for b in (*card.inputs, card.output)}},
        "reprojection": [r for r in stack.meta.get("reprojection", ()) if r["band"] in card.inputs],  # as read
        "zeropoints": [dict(z) for z in stack.meta.get("zeropoints", ()) if z["band"] in card.inputs],
        "uncertainty_method": method, "calibration": None if method == "none" else configuration,
        "uncertainty": dict(stated or {"distribution": None, "shape": None, "half_width_2sigma": None,
                                       "calibrated": None}),
        "computation": dict(computation),
        "domain_warnings": list(problems),
        "history": [
            f"Predicted {card.output} from {' + '.join(card.inputs)} with bandsynth model {card.name} "
            f"v{card.version} ({card.preset} preset, trained on {card.trained_on}).",
            f"Network: local correction of a per-pixel colour model ({card.baseline.get('kind', 'flux')} kind), "
            "fixed asinh scaling per band "
            f"({computation['precision']} on {computation['device']}, tiles of {computation['tile']} px with a "
            f"{computation['halo']} px halo).",
            *[f"{_TAG_WORDS[kind]}: {', '.join(f'{b} {t:.2f}' for b, t in per_band.items())}."
              for kind, per_band in tags.items()],
            f"Uncertainty: {method}.",
            *[f"Converted {z['band']} from {z['unit']} to nanomaggies with AB zero point {z['zeropoint_ab']:.4f} "
              f"({z['source']})." for z in stack.meta.get("zeropoints", ()) if z["band"] in card.inputs],
            *[f"Resampled {r['band']} from {r['pixel_scale_in']:.4g} to {r['pixel_scale_out']:.4g} arcsec/px "
              f"({r['method']}, flux {'kept' if r['flux_scaled_by_area_ratio'] else 'per unit area kept'})."
              for r in stack.meta.get("reprojection", ()) if r["band"] in card.inputs],
            *[f"Added back the pixel-to-pixel noise that resampling by a shift of ({r['offset'][0]:.3g}, "
              f"{r['offset'][1]:.3g}) pixel smoothed out of {r['band']} (seed {r['seed']})."
              for r in computation.get("restored_noise", ())],
            *[f"Warning: {p}" for p in problems],
        ],
    }
    if n_masked:
        provenance["history"].append(f"{int(n_masked)} {MASKED_PIXELS_NOTE}")
    return provenance


def noise_restoration(card, stack, draws, *, restore_noise):
    """The `~bandsynth.restored_noise.NoiseRestoration` of ``stack``'s interpolated inputs, or None.

    Where `bandsynth.models.domain.restores_noise` says the model's predictions restore it, and some input needs
    it; to a band's uncertainty, or to the noise its neighbouring pixels' scatter shows (`bandsynth.models.domain.
    input_noise`, corrected for the resampling's smoothing) where it has none.

    Parameters
    ----------
    card : `~bandsynth.models.zoo.ModelCard`
    stack : `~bandsynth.BandStack`
    draws : `~bandsynth.uncertainty.PixelDraws`
        The prediction's random fields (its ``seed``).
    restore_noise : {"auto", True, False}
        As for `~bandsynth.Translator.predict`.

    Returns
    -------
    `~bandsynth.restored_noise.NoiseRestoration` or None
    """
    from .models.domain import input_noise, restores_noise
    from .restored_noise import NoiseRestoration, difference_scatter_ratio, noise_offsets

    if not restores_noise(card, restore_noise):
        return None
    offsets = noise_offsets(stack, card.inputs)
    if not offsets:
        return None
    # a band without an uncertainty: its noise before the resampling, from its neighbouring pixels' scatter now
    sky = {b: input_noise(stack, b, unit=card.unit) / difference_scatter_ratio(f["fractions"])
           for b, f in offsets.items() if stack.view(b).uncertainty is None}
    return NoiseRestoration(stack, card.inputs, draws, sky_sigma=sky)


def computation_record(computation, engine, restoration):
    """``computation`` with how one prediction ran: compiled or not, and the noise restored (if any).

    Parameters
    ----------
    computation : dict
        As `plan_prediction` returns it.
    engine : `~bandsynth.nn.engine.InferenceEngine`
    restoration : `~bandsynth.restored_noise.NoiseRestoration` or None

    Returns
    -------
    dict
    """
    return {**computation, "compiled": engine.compiled_used,
            **({"restored_noise": restoration.describe()} if restoration is not None else {})}


def predict_batch(translator, stacks, *, problems, computation, uncertainty, tta, n_samples, draws, run,
                  restore_noise):
    """`~bandsynth.SyntheticBand` of each of ``stacks`` (small images), same-shape stacks in one batch.

    The step of `bandsynth.Translator.predict` for images of a few tiles at most.

    Parameters
    ----------
    translator : `~bandsynth.Translator`
    stacks : list of `~bandsynth.BandStack`
    problems : list of list of str
        Domain warnings of each stack.
    computation : dict
        How the network runs (`bandsynth.nn.engine.InferenceEngine.describe`), for the provenance.
    uncertainty, tta : bool
        Compute the calibrated sigma; average over the 8 flips/rotations.
    n_samples : int
        Monte Carlo draws of the inputs' noise (where they carry an uncertainty).
    draws : `~bandsynth.uncertainty.PixelDraws`
    run : dict
        `~bandsynth.nn.engine.InferenceEngine.run` options (``batch_size``, ``tile``,
        ``precision``, ``compile``, ``progress``).
    restore_noise : {"auto", True, False}
        Add back the noise an interpolation smoothed away (`noise_restoration`).

    Returns
    -------
    list of `~bandsynth.SyntheticBand`
        In the order of ``stacks``.
    """
    from .inputs import group_by_shape
    from .uncertainty import configuration_name

    card, results = translator.card, [None] * len(stacks)
    restorations = [noise_restoration(card, s, draws, restore_noise=restore_noise) for s in stacks]
    prepared = [translator.scale_inputs(s, restoration=r) for s, r in zip(stacks, restorations)]
    # one network call per shape and kind: a stack with noise maps must not give one without them its "mc" sigma
    for indices in group_by_shape((*p[0].shape, p[2] is not None) for p in prepared):
        x = np.stack([prepared[i][0] for i in indices])
        noise = [prepared[i][2] for i in indices]
        mc = uncertainty and n_samples > 0 and noise[0] is not None  # the group's stacks all have noise, or none
        noise = np.stack(noise) if mc else None
        mean, variance, parts = translator.predict_scaled(
            x, noise, uncertainty=uncertainty, tta=tta, n_samples=n_samples, draws=draws, run=run,
            origins=[grid_origin(stacks[i].wcs) for i in indices])
        config = configuration_name(tta=tta, monte_carlo=mc)
        calibration, *described = describe_uncertainty(card, parts, config) if uncertainty else (None, "none", None)
        for j, i in enumerate(indices):
            flux, sigma = to_flux(card, mean[j, 0], None if variance is None else variance[j, 0], calibration)
            results[i] = to_synthetic(card, stacks[i], prepared[i][1], flux, sigma, uncertainty=described,
                                      configuration=config, problems=problems[i],
                                      computation=computation_record(computation, translator.engine,
                                                                     restorations[i]))
    return results
