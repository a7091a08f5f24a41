"""How a `~bandsynth.nn.network.TranslationNet` is built and trained from a data set.

The steps `bandsynth.Translator.fit` runs, each in one function:

1. `fit_physical_scalings`: a fixed asinh scaling per band, in flux units, from the
   training split (no per-image statistic);
2. the per-pixel colour model the network corrects (`colour_model`: linear in flux, or a
   power-law SED, whichever fits the training pixels better);
3. `split_validation`: the validation split in two halves, one to choose the
   checkpoint, one to calibrate the uncertainty on (so the calibration never sees
   data that shaped the model); or, keeping the last weights, all of it to calibrate;
4. `train_network`: the training loop (`bandsynth.nn.training.fit`) on random crops,
   which a local network predicts exactly as it predicts whole images.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..baseline import fit_linear_colour
from ..datasets.base import has_truth, model_input_cube, model_target_cube, usable_sample
from ..datasets.torch_data import BandPairDataset, fit_scalings_for
from ..models.domain import pixel_noise
from ..units import parse_unit
from .losses import FLUX_ERRORS, BandLoss
from .network import TranslationNet
from .training import fit as _train_loop

__all__ = ["CALIBRATION_HALF", "CALIBRATION_ALL", "fit_physical_scalings", "colour_model", "training_noise",
           "split_validation", "check_init", "build_network", "train_network", "training_card", "train_translator",
           "data_info", "data_identity", "data_unit", "loss_text"]


def fit_physical_scalings(data, inputs, output, *, stretch=50.0):
    """Per-band `~bandsynth.scaling.AsinhScaling` in flux units, fitted on the training split.

    The median training galaxy's brightest pixels map to 1; ``stretch`` is the ratio of
    that level to the softening: larger values put fainter galaxies in the logarithmic
    regime, where a galaxy's brightness is an additive offset and colours are differences.

    Parameters
    ----------
    data : data set
        With ``cube(band)``, ``indices(split)`` and ``info`` (see `bandsynth.Translator.fit`).
    inputs : sequence of str
        Input bands.
    output : str
        Output band.
    stretch : float
        Ratio of the scaling maximum to the softening.

    Returns
    -------
    dict of str to `~bandsynth.scaling.AsinhScaling`
        One per input band and for the output band.
    """
    return fit_scalings_for(data, inputs, output, split="train", reference="fixed", stretch=stretch)


#: What a card says of a calibration fitted on `split_validation`'s second half.
CALIBRATION_HALF = "calibration half of the validation split (not used for checkpoint choice)"
#: What it says when the last weights were kept and the whole validation split calibrated.
CALIBRATION_ALL = "validation split (the last weights kept: no checkpoint chosen on it)"


def split_validation(data, *, calibrate=False, select_checkpoint=True):
    """``(selection, calibration)`` image indices: the validation split in two alternating halves.

    With a single validation image it chooses the checkpoint and nothing is left to calibrate on.
    Without ``select_checkpoint`` (the last weights are kept) no image chooses and all calibrate.

    Parameters
    ----------
    data : data set
        With ``indices("validation")``.
    calibrate : bool
        The calibration part will be used: it must not be empty.
    select_checkpoint : bool
        Keep an even-position half to choose the checkpoint on.

    Returns
    -------
    selection, calibration : numpy.ndarray of int
        Even- and odd-position validation indices, or none and all of them.

    Raises
    ------
    ValueError
        The data set has no validation images where some are needed, or only one and both
        ``calibrate`` and ``select_checkpoint``.

    Examples
    --------
    >>> from bandsynth.datasets import make_dataset
    >>> data = make_dataset(20, size=32, bands=["g", "r"], progress=False)
    >>> [len(part) for part in split_validation(data)], len(data.indices("validation"))
    ([1, 1], 2)
    >>> [len(part) for part in split_validation(data, select_checkpoint=False)]
    [0, 2]
    """
    indices = np.asarray(data.indices("validation"))
    if not select_checkpoint:
        if calibrate and indices.size == 0:
            raise ValueError("cannot calibrate: the data set has no validation images; pass calibrate=False")
        return indices[:0], indices
    if indices.size == 0:
        raise ValueError("the data set has no validation images (needed to choose the checkpoint); "
                         "keep the last weights instead (select_checkpoint=False)")
    if calibrate and indices.size < 2:
        raise ValueError("cannot calibrate: the data set needs at least 2 validation images "
                         "(one half chooses the checkpoint, the other calibrates); pass calibrate=False")
    return indices[0::2], indices[1::2]


def check_init(start, inputs, output, preset, *, unit=None):
    """``start`` (a loaded translator to fine-tune from) if it maps ``inputs -> output`` with ``preset``.

    Parameters
    ----------
    start : `~bandsynth.Translator`
    inputs : sequence of str
    output : str
    preset : str
    unit : str, optional
        The training data's flux unit: ``start``'s scalings, kept, must be in it.

    Returns
    -------
    `~bandsynth.Translator`
        ``start`` itself.

    Raises
    ------
    ValueError
        ``start`` has other inputs, output or preset, or its card another unit than ``unit``.
    """
    if unit is not None and parse_unit(start.card.unit) != parse_unit(unit):
        # Fine-tuning keeps start's scalings, which are in its unit: data in another would be mis-scaled.
        raise ValueError(f"init model {start.name!r} was trained on data in {start.card.unit}; the training data are "
                         f"in {unit}: write the data in {start.card.unit}, or train without init")
    if (start.inputs, start.output, start.card.preset) != (tuple(inputs), output, preset):
        raise ValueError(
            f"init model {start.name!r} maps {'+'.join(start.inputs)} -> {start.output} with the "
            f"{start.card.preset!r} preset; expected {'+'.join(inputs)} -> {output}, {preset!r}"
        )
    return start


def build_network(preset, inputs, output, scalings, colour, *, seed=0):
    """A fresh `TranslationNet` for ``inputs -> output`` with the given scalings and colour model (`colour_model`).

    Parameters
    ----------
    preset : str
        Generator preset (`bandsynth.nn.generator.PRESETS`).
    inputs : sequence of str
    output : str
    scalings : mapping of str to `~bandsynth.scaling.AsinhScaling`
        At least the input and output bands.
    colour : dict
        As returned by `colour_model` (``baseline``, ``coefficients``, ``intercept``).
    seed : int
        Torch seed of the weights' initialisation.

    Returns
    -------
    `~bandsynth.nn.network.TranslationNet`
    """
    torch.manual_seed(seed)
    return TranslationNet.build(
        preset,
        softening=[scalings[b].softening for b in inputs],
        maximum=[scalings[b].maximum for b in inputs],
        out_softening=scalings[output].softening,
        out_maximum=scalings[output].maximum,
        coefficients=colour["coefficients"], intercept=colour["intercept"], baseline=colour["baseline"],
    )


def train_network(net, data, inputs, output, scalings, *, selection, epochs, batch_size, lr, crop_size, seed,
                  ssim_weight=1.0, flux_weight=0.0, flux_error="total", checkpoint_dir=None, checkpoint_every=None,
                  max_steps=None, device="auto", progress=True, average_epochs=None):
    """Train ``net`` in place; returns the `~bandsynth.nn.training.TrainingResult` and the set sizes.

    The loss is L1 + ``ssim_weight`` (1 - SSIM) in the scaled units, plus ``flux_weight``
    times the relative error of each crop's total flux, or of its pixels' fluxes
    (``flux_error``: `bandsynth.nn.losses.BandLoss`); the uncertainty head is trained
    with a Gaussian negative log likelihood.

    Parameters
    ----------
    net : `~bandsynth.nn.network.TranslationNet`
        Left with the mean of the last ``average_epochs`` epochs' weights, else with the
        best checkpoint's weights (chosen on ``selection``), or the last weights if
        ``selection`` is empty.
    data : data set
        With ``cube(band)``, ``indices(split)`` and ``info`` (see `bandsynth.Translator.fit`).
    inputs : sequence of str
    output : str
    scalings : mapping of str to `~bandsynth.scaling.AsinhScaling`
    selection : sequence of int
        Validation images that choose the checkpoint (none: keep the last weights).
    epochs, batch_size, lr, crop_size, seed, max_steps
        Training recipe (`bandsynth.nn.training.fit`); ``max_steps`` may be None.
    ssim_weight, flux_weight : float
        Weights of the loss's (1 - SSIM) term and of its photometric term (0: none).
    flux_error : {"total", "pixel", "squared"}
        What the photometric term compares (`bandsynth.nn.losses.BandLoss`).
    checkpoint_dir, checkpoint_every
        Resumable checkpoints (resumed from when ``checkpoint_dir`` is given, if they were
        written on the same data, scalings and loss).
    device : str
    progress : bool
        Show progress bars.
    average_epochs : int, optional
        Keep the mean of the weights at the ends of the last this many epochs
        (`bandsynth.nn.training.fit`); ``selection`` then only reports their SSIM.

    Returns
    -------
    result : `~bandsynth.nn.training.TrainingResult`
    sizes : dict
        ``n_train`` and ``n_selection``: the numbers of training and selection images.

    Raises
    ------
    ValueError
        ``checkpoint_dir`` holds a checkpoint of another network, or written on other data
        (its scalings or ``data_info``) or with another loss.
    """
    common = dict(inputs=inputs, target=output, scalings=scalings, seed=seed)
    train_set = BandPairDataset(data, split="train", crop_size=crop_size, augment=True, **common)
    val_set = BandPairDataset(data, indices=selection, augment=False, **common) if len(selection) else None
    result = _train_loop(
        net, train_set, val_data=val_set, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
        loss=BandLoss(ssim_weight=ssim_weight, distribution="gaussian",
                      flux=net.unscale_output if flux_weight else None,
                      flux_weight=flux_weight, flux_floor=scalings[output].softening, flux_error=flux_error),
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
        resume="auto" if checkpoint_dir else None, device=device, progress=progress, max_steps=max_steps,
        average_epochs=average_epochs,
        data_identity=data_identity(data, {b: scalings[b] for b in (*inputs, output)}),
    )
    state, _ = chosen_weights(result, select_checkpoint=val_set is not None)
    if state is not None:
        net.load_state_dict(state)
    return result, {"n_train": len(train_set), "n_selection": len(selection)}


def colour_model(data, inputs, output, scalings, *, kind="auto", max_pixels=1_000_000, seed=0):
    """The per-pixel colour model inside the network, fitted on the training split.

    Both kinds of `~bandsynth.nn.network.TranslationNet` baseline are fitted by least
    squares -- ``"flux"`` (the linear colour model, `bandsynth.baseline.fit_linear_colour`)
    and ``"scaled"`` (linear in the scaled units, with a constant: a power-law SED in
    the logarithmic regime) -- and, with ``kind="auto"``, the one with the smaller mean
    absolute error, in scaled units, over the galaxies' pixels (target above its
    softening) is kept.

    Parameters
    ----------
    data : data set
        With ``cube(band)``, ``indices(split)`` and ``info`` (see `bandsynth.Translator.fit`).
    inputs : sequence of str
    output : str
    scalings : mapping of str to `~bandsynth.scaling.AsinhScaling`
    kind : {"auto", "flux", "scaled"}
        Keep the better-fitting kind ("auto"), or this one.
    max_pixels : int
        Training pixels sampled for the fits.
    seed : int
        Seed of the pixel sample.

    Returns
    -------
    dict
        ``baseline`` (the kind), ``coefficients``, ``intercept`` and the two errors.
    """
    flux_coef = fit_linear_colour(data, inputs, output, split="train", max_pixels=max_pixels, seed=seed)
    indices = np.asarray(data.indices("train"))
    rng = np.random.default_rng(seed)
    target = np.asarray(model_target_cube(data, output)[indices], dtype=np.float64).reshape(-1)
    take = rng.choice(target.size, size=min(max_pixels, target.size), replace=False)
    fluxes = np.stack([np.asarray(model_input_cube(data, b)[indices], dtype=np.float64).reshape(-1)[take]
                       for b in inputs], 1)
    target = target[take]
    x = np.stack([scalings[b].forward(fluxes[:, i]) for i, b in enumerate(inputs)], 1)
    y = scalings[output].forward(target)
    good = np.isfinite(y) & np.all(np.isfinite(x), axis=1) & usable_sample(data, inputs, output, indices, take)
    design = np.column_stack([np.ones(good.sum()), x[good]])
    solution, *_ = np.linalg.lstsq(design, y[good], rcond=None)
    galaxy = good & (target > scalings[output].softening)
    errors = {
        "flux": float(np.mean(np.abs(scalings[output].forward(fluxes[galaxy] @ flux_coef) - y[galaxy]))),
        "scaled": float(np.mean(np.abs(solution[0] + x[galaxy] @ solution[1:] - y[galaxy]))),
    }
    if kind not in ("auto", "flux", "scaled"):
        raise ValueError(f"baseline must be 'auto', 'flux' or 'scaled', got {kind!r}")
    kind = min(errors, key=errors.get) if kind == "auto" else kind
    coefficients = flux_coef if kind == "flux" else solution[1:]
    return {"baseline": kind, "coefficients": [float(c) for c in coefficients],
            "intercept": 0.0 if kind == "flux" else float(solution[0]), "errors": errors}


def training_noise(data, inputs, *, max_images=200, seed=0):
    """The 90th percentile over training images of each input band's pixel noise (`pixel_noise`).

    Recorded in the card (``training["noise"]``) for the domain check: a stack much
    noisier than this is outside the model's training range.

    Parameters
    ----------
    data : data set
        With ``cube(band)`` and ``indices("train")``.
    inputs : sequence of str
        Input bands.
    max_images : int
        At most this many training images, drawn at random.
    seed : int
        Seed of that draw.

    Returns
    -------
    dict of str to float
        Noise per pixel in the data's unit, per input band.
    """
    indices = np.asarray(data.indices("train"))
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(indices, size=min(max_images, indices.size), replace=False))
    return {band: float(np.percentile([pixel_noise(image) for image in model_input_cube(data, band)[chosen]], 90))
            for band in inputs}


def chosen_weights(result, *, select_checkpoint):
    """The weights a training run keeps, and how its card names them.

    Parameters
    ----------
    result : `~bandsynth.nn.training.TrainingResult`
    select_checkpoint : bool
        Whether validation images chose a checkpoint.

    Returns
    -------
    state : dict of str to torch.Tensor or None
        The mean of the last epochs' weights (``average_epochs``), else the best
        checkpoint's, else None: the network keeps its last weights.
    text : str
        ``training["checkpoint"]`` of the card.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> run = SimpleNamespace(average_state=None, averaged_epochs=0, best_state={})
    >>> chosen_weights(run, select_checkpoint=False)
    (None, 'last')
    """
    averaged = getattr(result, "averaged_epochs", 0)
    if averaged and result.average_state is not None:
        return result.average_state, f"mean of the weights at the ends of the last {averaged} epochs"
    if select_checkpoint and result.best_state is not None:
        return result.best_state, "best validation SSIM"
    return None, "last"


def training_card(data, net, *, name, inputs, output, preset, scalings, result, sizes, started, init, start,
                  options, description):
    """The `~bandsynth.models.zoo.ModelCard` of a freshly trained network (metrics and calibration come later).

    ``options`` holds the recipe (seed, epochs, batch_size, crop_size, lr, recipe); ``start`` is
    the translator fine-tuning began from (or None), so the card keeps the whole chain of runs.

    Parameters
    ----------
    data : data set
        Its ``info`` (unit, mode, pixel scale, PSF FWHM, description) goes into the card.
    net : `~bandsynth.nn.network.TranslationNet`
        The trained network.
    name, preset : str
    inputs : sequence of str
    output : str
    scalings : mapping of str to `~bandsynth.scaling.AsinhScaling`
    result : `~bandsynth.nn.training.TrainingResult`
    sizes : dict
        Split sizes (``n_train``, ``n_selection``, ...).
    started : float
        `time.perf_counter` value when training started.
    init : str or path or None
        What fine-tuning started from, as given.
    start : `~bandsynth.Translator` or None
    options : mapping
        Also ``stretch``, ``flux_weight`` and, where not the defaults, ``flux_error`` ("total"), ``ssim_weight`` (1),
        ``select_checkpoint`` (True) and ``average_epochs`` (None).
    description : str

    Returns
    -------
    `~bandsynth.models.zoo.ModelCard`
    """
    import time

    from .. import __version__
    from ..models.zoo import ModelCard

    info = dict(getattr(data, "info", {}) or {})
    options = dict(options)
    return ModelCard(
        name=name, inputs=inputs, output=output, preset=preset, architecture=net.config,
        scaling={b: s.to_dict() for b, s in scalings.items()}, unit=data_unit(info), mode=info.get("mode", "ideal"),
        pixel_scale=float(info.get("pixel_scale", 0.396)),
        psf_fwhm={b: v for b, v in dict(info.get("psf_fwhm", {}) or {}).items() if b in (*inputs, output)},
        receptive_field=net.receptive_field,
        baseline={"kind": net.config["baseline"],
                  "method": {"flux": "linear colour model f_out = sum c_i f_i",
                             "scaled": "linear in the scaled units, x_out = a + sum c_i x_i "
                                       "(a power-law SED in the logarithmic regime)"}[net.config["baseline"]]
                  + ", least squares on training pixels",
                  "coefficients": dict(zip(inputs, map(float, net.config["coefficients"]))),
                  "intercept": float(net.config["intercept"])},
        uncertainty={"head": "Gaussian sigma (trained with a Gaussian NLL, mean detached)",
                     "meaning": "UNCERT is half the width of the calibrated central 68.27 % interval, mapped "
                                "from the scaled space to flux units; each calibration states its error "
                                "distribution (Gaussian, Laplace or generalized normal) and so the width of the "
                                "95.45 % interval"},
        training={
            "data": info.get("description", type(data).__name__),
            "data_info": data_info(info),
            "target": ("noise-free truth (survey layer)" if has_truth(data) else
                       ("noise-free ideal-mode images" if info.get("mode") == "ideal" else
                        "survey-mode mock images (with their noise)")
                       if info.get("source") == "bandsynth.datasets.mock" else "observed images"),
            **sizes, **{k: options[k] for k in ("seed", "epochs", "batch_size", "crop_size", "lr", "stretch", "flux_weight")},
            "ssim_weight": options.get("ssim_weight", 1.0),
            **({"flux_error": options.get("flux_error", "total")} if options["flux_weight"] else {}),
            "checkpoint": chosen_weights(result, select_checkpoint=options.get("select_checkpoint", True))[1],
            "noise": training_noise(data, inputs),
            "steps": int(getattr(result, "steps", 0) or 0),
            "loss": loss_text(options.get("ssim_weight", 1.0), options["flux_weight"],
                              options.get("flux_error", "total")),
            "best_validation_ssim": (float(result.best_metric) if result.best_metric is not None
                                     and getattr(result, "best_metric_name", "val_ssim") == "val_ssim" else None),
            **({"average_validation_ssim": float(result.average_metrics["ssim"])}
               if getattr(result, "average_metrics", None) else {}),
            "duration_s": round(time.perf_counter() - started, 1), "recipe": options["recipe"],
            # The whole chain of runs, so a fine-tuned card still says how its start was made.
            "init": None if start is None else {"path": str(init), "recipe": start.card.training.get("recipe"),
                                                "init": start.card.training.get("init")},
        },
        description=description, bandsynth_version=__version__,
    )


def loss_text(ssim_weight, flux_weight, flux_error="total"):
    """The card's words for the training loss (``training["loss"]``).

    Parameters
    ----------
    ssim_weight, flux_weight : float
        Weights of the (1 - SSIM) and photometric terms.
    flux_error : {"total", "pixel", "squared"}
        What the photometric term compares (`~bandsynth.nn.losses.BandLoss`'s ``flux_error``).

    Returns
    -------
    str

    Examples
    --------
    >>> loss_text(0.0, 0.0)
    'L1 on the mean; Gaussian NLL on the sigma head'
    >>> loss_text(0.0, 1.0, "pixel")
    "L1 on the mean + flux_weight x the pixels' absolute flux errors over each crop's total flux; Gaussian NLL on the sigma head"
    """
    ssim = {0.0: "", 1.0: " + (1 - SSIM)"}.get(float(ssim_weight), f" + {ssim_weight:g} x (1 - SSIM)")
    flux = f" + flux_weight x {FLUX_ERRORS[flux_error]}" if flux_weight else ""
    return f"L1{ssim} on the mean{flux}; Gaussian NLL on the sigma head"


def data_identity(data, scalings):
    """What identifies a model's training data in its checkpoints: a checkpoint folder reused with other data must
    not hand its weights to this data's card (`bandsynth.nn.training.fit` refuses it).

    Parameters
    ----------
    data : data set
        Its ``info`` (`data_info`).
    scalings : dict of str to `~bandsynth.scaling.AsinhScaling`
        The bands' scalings fitted on it.

    Returns
    -------
    dict
        ``scaling`` and ``data_info``, JSON-ready.
    """
    return {"scaling": {b: s.to_dict() for b, s in scalings.items()},
            "data_info": data_info(dict(getattr(data, "info", {}) or {}))}


def data_unit(info):
    """The flux unit of a data set's images (its ``info["unit"]``; nanomaggies when it states none).

    The scalings and the colour model are fitted on the images as they are, so they, and
    the card that carries them, are in this unit.

    Parameters
    ----------
    info : mapping
        The data set's ``info``.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        The unit is not one astropy understands.

    Examples
    --------
    >>> data_unit({"unit": "uJy"}), data_unit({})
    ('uJy', 'nanomaggy')
    """
    unit = info.get("unit")
    unit = "nanomaggy" if unit is None else unit  # "" is dimensionless, as the data set's stacks read it
    parse_unit(unit)  # an unreadable unit is refused here, not by every later load of the model
    return str(unit)


def data_info(info):
    """The data set's scalar meta (and a survey mapping), as the card records it for `card_dataset`.

    Parameters
    ----------
    info : mapping
        The data set's ``info``.

    Returns
    -------
    dict
        JSON-ready: strings and numbers, ``split_fractions``, ``r_mag_range`` and a ``survey`` mapping.
    """
    out = {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool))}
    for key in ("split_fractions", "r_mag_range"):
        values = info.get(key)
        if isinstance(values, (list, tuple)) and all(isinstance(f, (int, float)) for f in values):
            out[key] = [float(f) for f in values]
    survey = info.get("survey")
    if isinstance(survey, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in survey.items()):
        out["survey"] = dict(survey)
    return out


def train_translator(data, *, inputs, output, name, preset, epochs, batch_size, lr, crop_size, seed, stretch, baseline,
                     flux_weight, checkpoint_dir, checkpoint_every, max_steps, device, progress, calibrate, init, start,
                     recipe, description, ssim_weight=1.0, flux_error="total", select_checkpoint=True,
                     average_epochs=None):
    """The steps of `bandsynth.Translator.fit`: the trained network, its card and the calibration galaxies.

    Parameters
    ----------
    data, inputs, output, name, preset, epochs, batch_size, lr, crop_size, seed, stretch, baseline, flux_weight
        As for `bandsynth.Translator.fit`.
    flux_error, ssim_weight, select_checkpoint, average_epochs
        As for `bandsynth.Translator.fit`.
    checkpoint_dir, checkpoint_every, max_steps, device, progress, calibrate, init, recipe, description
        As for `bandsynth.Translator.fit`.
    start : `~bandsynth.Translator` or None
        The loaded ``init`` model, whose network and scalings training continues from.

    Returns
    -------
    net : `~bandsynth.nn.network.TranslationNet`
    card : `~bandsynth.models.zoo.ModelCard`
        Without calibration.
    calibration : numpy.ndarray of int
        The validation images left for calibrating (half, or all without ``select_checkpoint``).
    """
    import time

    from ..bands import get_band

    for argument, value in (("ssim_weight", ssim_weight), ("flux_weight", flux_weight)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{argument} must be a finite number >= 0, got {value!r}")
    if flux_error not in FLUX_ERRORS:
        raise ValueError(f"flux_error must be one of {tuple(FLUX_ERRORS)}, got {flux_error!r}")
    inputs = tuple(get_band(b).name for b in inputs)
    output = get_band(output).name
    name = name or f"{'_'.join(b.lower() for b in inputs)}_to_{output.lower()}"
    if not recipe:  # called from Python: the call itself, with every option that shaped the weights
        recipe = (f"Translator.fit(<{type(data).__name__}: training['data_info']>, inputs={list(inputs)}, "
                  f"output={output!r}, preset={preset!r}, epochs={epochs}, batch_size={batch_size}, lr={lr}, "
                  f"crop_size={crop_size}, seed={seed}, stretch={stretch}, baseline={baseline!r}, "
                  f"flux_weight={flux_weight}, flux_error={flux_error!r}, ssim_weight={ssim_weight}, "
                  f"select_checkpoint={select_checkpoint}, average_epochs={average_epochs}, max_steps={max_steps}, "
                  f"init={None if init is None else str(init)!r})")
    started = time.perf_counter()
    scalings = fit_physical_scalings(data, inputs, output, stretch=stretch)
    net = build_network(preset, inputs, output, scalings, colour_model(data, inputs, output, scalings, kind=baseline),
                        seed=seed)
    if start is not None:
        check_init(start, inputs, output, preset, unit=data_unit(dict(getattr(data, "info", {}) or {})))
        net, scalings = start.model, start.scalings
    selection, calibration = split_validation(data, calibrate=calibrate, select_checkpoint=select_checkpoint)
    result, sizes = train_network(
        net, data, inputs, output, scalings, selection=selection, epochs=epochs, batch_size=batch_size, lr=lr,
        crop_size=crop_size, seed=seed, ssim_weight=ssim_weight, flux_weight=flux_weight, flux_error=flux_error,
        checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, max_steps=max_steps, device=device,
        progress=progress, average_epochs=average_epochs)
    card = training_card(
        data, net, name=name, inputs=inputs, output=output, preset=preset, scalings=scalings, result=result,
        sizes={**sizes, "n_calibration": int(len(calibration))}, started=started, init=init, start=start,
        options=dict(seed=seed, epochs=epochs, batch_size=batch_size, crop_size=crop_size, lr=lr, recipe=recipe,
                     stretch=stretch, flux_weight=flux_weight, flux_error=flux_error, ssim_weight=ssim_weight,
                     select_checkpoint=select_checkpoint, average_epochs=average_epochs),
        description=description)
    return net, card, calibration
