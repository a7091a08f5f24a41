"""Fitting a translator's uncertainty on galaxies with a known truth: its σ head, then its calibration."""

from __future__ import annotations

import copy

import numpy as np

from .calibration import CALIBRATION_DRAWS, CONFIGURATIONS, fit_calibration
from .components import temperature_for_flux_half_width
from .draws import PixelDraws, grid_origin

__all__ = ["calibrate_translator", "calibration_galaxies", "fit_sigma_head", "FOOTPRINTS"]

#: Where the residuals are measured: the galaxy as detected in the target band alone, or in a coadd of all its bands.
FOOTPRINTS = ("target", "detection")


def _settings(configuration):
    return {"tta": configuration.startswith("tta"), "monte_carlo": configuration.endswith("mc")}


def _needed_temperature(scaling, mean, sigma, residual, target_noise):
    """``needed(k)``: per pixel, the temperature at which the ``k``-sigma interval covers the residual."""

    def needed(k):
        # the target's own noise covers part of the residual (none against a noise-free truth)
        half_width = np.sqrt(np.maximum(residual**2 - (k * target_noise) ** 2, 0.0)) / k
        return temperature_for_flux_half_width(scaling, mean, sigma, half_width)

    return needed


def _check_options(configurations, footprint):
    unknown = [c for c in configurations if c not in CONFIGURATIONS]
    if unknown:
        raise ValueError(f"unknown calibration configuration(s) {unknown}; known: {', '.join(CONFIGURATIONS)}")
    if footprint not in FOOTPRINTS:
        raise ValueError(f"footprint must be one of {FOOTPRINTS}, got {footprint!r}")


def _footprints(stacks, truths, band, footprint):
    """Per galaxy, the pixels of its main source (None where nothing is detected), segmented on the true
    ``band`` (``footprint="target"``) or on a coadd of it and every other band the galaxy has, as surveys
    detect (deeper than a faint band alone) and as `bandsynth.metrics.compare` measures: the truth where the
    data set has a noise-free one, with the observed other bands."""
    from ..morphology import detection_footprint

    return [detection_footprint([truth] if footprint == "target"
                                else [truth, *stack.to_array([b for b in stack.names if b != band])])
            for stack, truth in zip(stacks, truths)]


def _truths(data, indices, stacks, band, unit):
    """The noise-free truth of ``band`` where the data set has one (survey layer), the observed image otherwise, in
    the model's ``unit`` (the residuals are taken against predictions in it: a truth in Jy read as nanomaggies
    set temperatures 6 times off)."""
    from astropy.nddata import CCDData, StdDevUncertainty

    from ..units import area_of, parse_unit, to_unit

    unit = None if unit is None else parse_unit(unit)
    if getattr(data, "has_truth", False):
        truths = [data.stack(int(i), truth=True)[band] for i in indices]
    else:
        truths = [s[band] for s in stacks]
    for k, true in enumerate(truths):
        if unit is not None and true.unit is not None and true.unit != unit:
            noise = None if true.uncertainty is None else true.uncertainty.array
            values = to_unit(true.data, true.unit, unit, band=band, pixel_area=area_of(true.wcs), uncertainty=noise)
            data_, noise = values if noise is not None else (values, None)
            truths[k] = CCDData(data_, unit=unit, wcs=true.wcs, mask=true.mask, meta=true.meta,
                                uncertainty=None if noise is None else StdDevUncertainty(noise))
    return truths


def calibration_galaxies(data, *, indices=None, split="validation", fitted_on=None):
    """The calibration galaxies of ``data`` and the words a card records for them.

    Parameters
    ----------
    data : data set
        With ``indices(split)``.
    indices : sequence of int, optional
        The galaxies (default: every galaxy of ``split``).
    split : str
    fitted_on : str, optional
        Where they come from (default: the split, or how many the caller chose).

    Returns
    -------
    indices : list of int
    fitted_on : str

    Raises
    ------
    ValueError
        If no galaxy is given.

    Examples
    --------
    >>> from bandsynth.datasets import make_dataset
    >>> data = make_dataset(8, seed=0, bands=["g", "r"], size=32)
    >>> calibration_galaxies(data, indices=[0, 3])
    ([0, 3], '2 galaxies chosen by the caller')
    """
    chosen = list(data.indices(split) if indices is None else indices)
    if not chosen:
        raise ValueError("cannot calibrate: no galaxies given")
    if fitted_on is None:
        fitted_on = f"the {split} split" if indices is None else f"{len(chosen)} galaxies chosen by the caller"
    return chosen, fitted_on


def _scaled_prediction(translator, stack, inside, settings, draws):
    """Mean and uncalibrated sigma (scaled units) of one galaxy's pixels ``inside`` its footprint and unmasked,
    predicted in a configuration's ``settings``; and which pixels those are."""
    from ..prediction import noise_restoration

    # as predict() reads an input resampled by a sub-pixel shift: its smoothed-out noise restored
    restoration = noise_restoration(translator.card, stack, draws, restore_noise="auto")
    x, mask, noise = translator.scale_inputs(stack.select(translator.inputs), restoration=restoration)
    noise = noise[None] if settings["monte_carlo"] and noise is not None else None
    mean, variance, _ = translator.predict_scaled(
        x[None], noise, uncertainty=True, tta=settings["tta"], n_samples=CALIBRATION_DRAWS, draws=draws,
        origins=[grid_origin(stack.wcs)],
        run=dict(batch_size=8, tile=512, precision="fp32", compile=False, progress=None))
    use = inside & ~mask
    return mean[0, 0][use].astype(np.float64), np.sqrt(variance[0, 0][use]), use


def calibrate_translator(translator, data, *, indices=None, split="validation",
                         configurations=("plain", "tta", "mc", "tta+mc"), fitted_on=None, footprint="detection",
                         per_galaxy=None):
    """One `~bandsynth.uncertainty.Calibration` per configuration, from the galaxies ``indices`` of ``data``.

    Each galaxy is predicted with its uncalibrated sigma; inside the galaxy's footprint
    (photutils segmentation of a coadd of its bands, `bandsynth.morphology.detection_footprint`),
    against the true image (the noise-free truth of a survey-layer data set, ``has_truth``),
    the residuals are measured as users measure them -- ``|prediction - truth|`` in flux
    against the flux half-width ``UNCERT`` of the interval (`temperature_for_flux_half_width`)
    -- and go with the predicted brightness into `fit_calibration`.  Against observed
    targets that carry an uncertainty (real galaxies), the stated sigma stays the error about
    the noise-free sky: a pixel counts as covered at ``k`` sigma when
    ``|prediction - target| <= hypot(k UNCERT, k target_sigma)``.  A configuration needing input noise ("mc") is skipped
    when the galaxies' inputs carry no uncertainty.

    Parameters
    ----------
    translator : `~bandsynth.Translator`
        The model to calibrate.
    data : data set
        Holds the model's input and output bands (e.g. from
        `~bandsynth.datasets.open_dataset`); ``data.stack(i)`` gives galaxy ``i``.
    indices : sequence of int, optional
        The calibration galaxies (default: every galaxy of ``split``).  They
        should be used neither for training nor for choosing the checkpoint.
    split : str
        Split used when ``indices`` is None.
    configurations : sequence of str
        The `predict` configurations to calibrate (of
        `~bandsynth.uncertainty.CONFIGURATIONS`).
    fitted_on : str, optional
        Where the calibration galaxies come from, for the card (default: the
        split, or the number of galaxies given).
    footprint : {"detection", "target"}
        Segment the galaxy on a coadd of all the bands its stack holds, each in units of its
        noise (`bandsynth.morphology.detection_footprint`: the footprint `bandsynth.metrics.compare`
        measures in, default), or on the true target image alone (a faint or clumpy target band
        alone detects only the core or one knot, while users measure the whole galaxy).
    per_galaxy : sequence of `~bandsynth.Translator`, optional
        The translator that predicts each galaxy of ``indices``, all wanting ``translator``'s band
        with its scaling: requests of an any-band model from different bands at hand, whose
        residuals make one calibration (default: ``translator`` for every galaxy).

    Returns
    -------
    dict of str to Calibration
        One calibration per configuration fitted (``"mc"`` and ``"tta+mc"``
        are missing when the inputs carry no uncertainty).

    Raises
    ------
    ValueError
        If a configuration or footprint is unknown, no galaxy is given, no
        galaxy is detected, or ``per_galaxy`` does not give one translator of the band per galaxy.
    """
    _check_options(configurations, footprint)
    indices, fitted_on = calibration_galaxies(data, indices=indices, split=split, fitted_on=fitted_on)
    translators = [translator] * len(indices) if per_galaxy is None else list(per_galaxy)
    if len(translators) != len(indices) or any(t.output != translator.output for t in translators):
        raise ValueError(f"per_galaxy must give one translator predicting {translator.output} per calibration "
                         f"galaxy ({len(indices)}), got {len(translators)}")
    fitted_on += ("; residuals in the galaxy detected in a coadd of its bands" if footprint == "detection"
                  else "; residuals in the true target band's central segment")
    stacks = [data.stack(int(i)) for i in indices]
    truths = _truths(data, indices, stacks, translator.output, translator.card.unit)
    target_noise = [None if t.uncertainty is None else np.asarray(t.uncertainty.array, np.float64) for t in truths]
    output_scaling = translator.scalings[translator.output]
    footprints = _footprints(stacks, truths, translator.output, footprint)
    has_noise = any(s[b].uncertainty is not None for s, t in zip(stacks, translators) for b in t.inputs)
    calibrations, unused = {}, set()
    for config in configurations:
        settings = _settings(config)
        if settings["monte_carlo"] and not has_noise:
            continue
        residual, noise_t, mean_s, sigma_s, galaxy = [], [], [], [], []
        for g, (request, stack, true, inside, true_noise) in enumerate(
                zip(translators, stacks, truths, footprints, target_noise)):
            if inside is None:
                unused.add(g)
                continue
            m, sigma, use = _scaled_prediction(request, stack, inside, settings, PixelDraws(g))  # galaxy's own
            if not use.any():  # its footprint masked in the inputs: no residual to count it by
                unused.add(g)
                continue
            residual.append(np.abs(output_scaling.inverse(m) - np.asarray(true.data, dtype=np.float64)[use]))
            noise_t.append(np.zeros(m.size) if true_noise is None else np.nan_to_num(true_noise[use]))
            mean_s.append(m)
            sigma_s.append(sigma)
            galaxy.append(np.full(int(use.sum()), g))
        if not residual:
            raise ValueError("cannot calibrate: no galaxy was detected in the calibration images")
        m = np.concatenate(mean_s)
        needed = _needed_temperature(output_scaling, m, *(np.concatenate(v) for v in (sigma_s, residual, noise_t)))
        calibrations[config] = fit_calibration(
            needed(1.0), m, configuration=config, galaxy=np.concatenate(galaxy), needed_temperature=needed,
            n_galaxies=len(sigma_s), fitted_on=fitted_on)
    _warn_about_few_galaxies(len(indices) - len(unused), [indices[g] for g in sorted(unused)])
    return calibrations


#: Fewer calibration galaxies than this are warned about: a galaxy's errors are shared by its pixels, so the
#: coverage is measured on about as many independent samples as there are galaxies.
FEW_GALAXIES = 30


def _warn_about_few_galaxies(n_used, unused):
    import warnings

    from astropy.utils.exceptions import AstropyUserWarning

    if unused:
        listed = ", ".join(map(str, unused[:10])) + (", ..." if len(unused) > 10 else "")
        warnings.warn(f"calibration: {len(unused)} galaxy(ies) left out, no usable pixel in their footprint (not "
                      f"detected, or masked in the inputs): {listed}", AstropyUserWarning, stacklevel=4)
    if n_used < FEW_GALAXIES:
        warnings.warn(f"calibration fitted on {n_used} galaxies: a galaxy's errors are shared by its pixels, so the "
                      f"coverage it states is measured on few independent samples (at least {FEW_GALAXIES} are "
                      "advised; the shipped models use 400)", AstropyUserWarning, stacklevel=4)


def _head_features(model, x):
    """The mean and the features the σ head reads, for scaled inputs ``x`` ``[1, C, H, W]``."""
    import torch

    captured = []
    hook = model.generator.scale_head.register_forward_pre_hook(lambda _, args: captured.append(args[0].detach()))
    try:
        with torch.no_grad():
            mean = model(x).mean
    finally:
        hook.remove()
    return mean, captured[0].half()  # half precision: features of hundreds of galaxies stay in memory


def _head_requests(translator, model, requests):
    """``(translator, network)`` of each request whose σ head is fitted: the model itself, or for an any-band
    model each of ``requests`` (default: each band it writes from all the others, the requests its calibration
    covers), run by ``model``."""
    if not translator.card.outputs:
        if requests is not None:
            raise ValueError(f"requests are for an any-band model; {translator.name!r} has one mapping")
        return [(translator, model)]
    if requests is None:
        requests = [([b for b in translator.inputs if b != band], band) for band in translator.outputs]
    if not requests:
        raise ValueError("fit_sigma_head: no requests given (requests is empty)")
    return [(translator.task(inputs=inputs, output=output), model.task(inputs=list(inputs), output=output))
            for inputs, output in requests]


def _head_examples(request, network, stacks, truths, footprints):
    """Per detected galaxy: the mean, the σ head's features, the scaled target, the footprint weight and the
    target's own noise in scaled units (None for a noise-free truth)."""
    import torch

    scaling = request.scalings[request.output]
    step = 2 ** network.n_down
    examples = []
    for stack, true, inside in zip(stacks, truths, footprints):
        if inside is None:
            continue
        x, mask, _ = request.scale_inputs(stack.select(request.inputs))
        h, w = (x.shape[1] // step) * step, (x.shape[2] // step) * step
        truth = np.asarray(true.data, dtype=np.float32)[:h, :w]
        use = inside[:h, :w] & ~mask[:h, :w] & np.isfinite(truth)
        mean, features = _head_features(network, torch.as_tensor(x[None, :, :h, :w], dtype=torch.float32))
        target = network.scale_output(torch.as_tensor(np.nan_to_num(truth))[None, None])
        noise = None
        if true.uncertainty is not None:  # an observed target: its noise, taken to scaled units at the prediction
            flux_noise = np.nan_to_num(np.asarray(true.uncertainty.array, np.float64)[:h, :w])
            noise = torch.as_tensor(flux_noise / scaling.derivative(mean[0, 0].double().numpy()),
                                    dtype=torch.float32)[None, None]
        examples.append((mean, features, target, torch.as_tensor(use, dtype=torch.float32)[None, None], noise))
    return examples


def _request_examples(pairs, data, indices, stacks, footprint):
    """`_head_examples` of every request, each wanted band's truths and footprints found once."""
    truths, footprints, examples = {}, {}, []
    for request, network in pairs:
        band = request.output
        if band not in truths:  # once per wanted band, however many requests want it
            truths[band] = _truths(data, indices, stacks, band, request.card.unit)
            footprints[band] = _footprints(stacks, truths[band], band, footprint)
        examples += _head_examples(request, network, stacks, truths[band], footprints[band])
    return examples


def _train_head(head, examples, *, epochs, lr, batch_size, seed, progress):
    """Fit ``head`` by the Gaussian NLL of `_head_examples`; the mean NLL before and after."""
    import torch
    from tqdm.auto import tqdm

    from ..nn.losses import gaussian_nll

    def nll(example):
        mean, features, target, weight, noise = example
        return gaussian_nll(mean, head(features.float()), target, weight=weight, target_sigma=noise)

    def mean_nll():
        with torch.no_grad():
            return float(np.mean([float(nll(e)) for e in examples]))

    before = mean_nll()
    head.train()
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    order = np.random.default_rng(seed)
    for _ in tqdm(range(epochs), desc="σ head", unit="epoch", disable=not progress):
        perm = order.permutation(len(examples))
        for start in range(0, len(perm), batch_size):
            batch = [examples[int(j)] for j in perm[start:start + batch_size]]
            loss = sum(nll(e) for e in batch) / len(batch)  # one image at a time (sizes may differ), each the same
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    head.eval()
    return before, mean_nll()


def fit_sigma_head(translator, data, *, indices, epochs=60, lr=1e-3, batch_size=8, seed=0, fitted_on=None,
                   footprint="detection", requests=None, recipe="", progress=False):
    """The translator with its σ head trained again on galaxies the rest of the network never saw.

    The σ head learns with the network, on the training galaxies, where the network's
    errors are smaller than on new galaxies -- and not by the same factor for every kind
    of galaxy, so a calibration by brightness leaves some galaxies' intervals too wide and
    others' too narrow.  Here the trunk and the mean stay as they are; only the σ head is
    fitted again, by the Gaussian negative log likelihood of the truth in the galaxies'
    footprints (photutils segmentation), on galaxies used neither for training nor for
    choosing the checkpoint.  Against observed targets that carry an uncertainty (real
    galaxies) the likelihood's variance is ``sigma**2 + target_sigma**2``: σ stays the
    error about the noise-free sky, as the calibration (`calibrate_translator`) reads it.
    An any-band model's one σ head is fitted on all its ``requests`` together.  The returned translator has no calibration: calibrate it
    (`~bandsynth.Translator.calibrate`) on other galaxies still.

    Parameters
    ----------
    translator : `~bandsynth.Translator` or `~bandsynth.any_band_translator.AnyBandTranslator`
        A model with a σ head.
    data : data set
        Holds the model's bands: mock galaxies, a survey-layer data set (its noise-free
        truth is taken) or observed galaxies whose targets carry their noise as uncertainty.
    indices : sequence of int
        The galaxies to fit on (image sides are cut to multiples of ``2 ** n_down``).
    epochs, lr, batch_size, seed : int, float, int, int
        Passes over the galaxies, Adam's learning rate, galaxies per step, seed of their order.
    fitted_on : str, optional
        Where the galaxies come from, for the card (default: their number).
    footprint : {"detection", "target"}
        Segment each galaxy on a coadd of all its bands (default, as `calibrate_translator`)
        or on its target image alone.
    requests : sequence of (sequence of str, str), optional
        For an any-band model, the ``(inputs, output)`` requests whose predictions the head
        is fitted on (default: each band it writes from all the others).  Include requests
        from fewer bands for the head to serve them too.
    recipe : str
        The command that ran this fit, for the card (left out when empty).
    progress : bool
        Show a progress bar over the epochs.

    Returns
    -------
    `~bandsynth.Translator` or `~bandsynth.any_band_translator.AnyBandTranslator`
        A copy with the new σ head, no calibration, and ``card.training["sigma_head"]``
        recording the galaxies, the settings (and ``recipe``) and the mean negative log
        likelihood on them before and after.

    Raises
    ------
    ValueError
        If the model has no σ head, the footprint is unknown, no galaxy or request is given, no galaxy
        is detected, or requests are given for a model of one mapping.

    Examples
    --------
    >>> from bandsynth import Translator
    >>> from bandsynth.datasets.mock import make_dataset
    >>> from bandsynth.uncertainty.fitting import fit_sigma_head
    >>> model = Translator.load("nuv_k_to_r_paper")
    >>> fresh = make_dataset(4, seed=321, bands=["NUV", "Ks", "r"], size=64, progress=False)
    >>> refitted = fit_sigma_head(model, fresh, indices=range(4), epochs=2)
    >>> record = refitted.card.training["sigma_head"]
    >>> record["n_galaxies"], dict(refitted.card.calibration)
    (4, {})
    """
    _check_options((), footprint)
    # not .float(): an any-band network keeps its colour models' moments in float64, and the images must not move
    model = copy.deepcopy(translator.model).cpu().eval()
    head = getattr(getattr(model, "generator", None), "scale_head", None)
    if head is None:
        raise ValueError(f"model {translator.name!r} has no σ head to fit")
    head.float()
    indices = list(indices)
    if not indices:
        raise ValueError("fit_sigma_head: no galaxies given (indices is empty)")
    requests = None if requests is None else [(tuple(inputs), output) for inputs, output in requests]
    pairs = _head_requests(translator, model, requests)
    stacks = [data.stack(int(i)) for i in indices]
    examples = _request_examples(pairs, data, indices, stacks, footprint)
    if not examples:
        raise ValueError(f"fit_sigma_head: no galaxy was detected in the given galaxies' {footprint} images")

    before, after = _train_head(head, examples, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                                progress=progress)
    noisy = any(e[4] is not None for e in examples)
    record = {"n_galaxies": len(stacks), "n_images": len(examples),
              **({} if requests is None else {"n_requests": len(requests)}),
              "fitted_on": fitted_on or f"{len(stacks)} galaxies chosen by the caller",
              "epochs": int(epochs), "lr": float(lr), "batch_size": int(batch_size), "seed": int(seed),
              "footprint": footprint,
              "loss": ("Gaussian NLL of the observed image in the galaxy's footprint, the image's own noise added to "
                       "the variance" if noisy else "Gaussian NLL of the true image in the galaxy's footprint")
                      + "; trunk and mean fixed",
              "nll_before": before, "nll_after": after, **({"recipe": recipe} if recipe else {})}
    card = translator.card.replace(calibration={}, training={**translator.card.training, "sigma_head": record})
    return translator.replace(model=model, card=card) if card.outputs else type(translator)(model, card)
