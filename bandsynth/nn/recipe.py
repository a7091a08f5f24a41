"""How a `~bandsynth.nn.network.TranslationNet` is built and trained from a data set.

The steps `bandsynth.Translator.fit` runs, each in one function:

1. `fit_physical_scalings`: a fixed asinh scaling per band, in flux units, from the
   training split (no per-image statistic);
2. the per-pixel colour model the network corrects (`colour_model`: linear in flux, or a
   power-law SED, whichever fits the training pixels better);
3. `split_validation`: the validation split in two halves, one to choose the
   checkpoint, one to calibrate the uncertainty on (so the calibration never sees
   data that shaped the model);
4. `train_network`: the training loop (`bandsynth.nn.training.fit`) on random crops,
   which a local network predicts exactly as it predicts whole images.
"""

from __future__ import annotations

import numpy as np
import torch

from ..baseline import fit_linear_colour
from ..datasets.torch_data import BandPairDataset, fit_scalings_for
from .losses import BandLoss
from .network import TranslationNet
from .training import fit as _train_loop

__all__ = ["fit_physical_scalings", "colour_model", "split_validation", "check_init", "build_network", "train_network",
           "training_card"]


def fit_physical_scalings(data, inputs, output, *, stretch=50.0):
    """Per-band `~bandsynth.scaling.AsinhScaling` in flux units, fitted on the training split.

    The median training galaxy's brightest pixels map to 1; ``stretch`` is the ratio of
    that level to the softening: larger values put fainter galaxies in the logarithmic
    regime, where a galaxy's brightness is an additive offset and colours are differences.
    """
    return fit_scalings_for(data, inputs, output, split="train", reference="fixed", stretch=stretch)


def split_validation(data):
    """``(selection, calibration)`` image indices: the validation split in two alternating halves.

    With a single validation image it chooses the checkpoint and nothing is left to calibrate on.
    """
    indices = np.asarray(data.indices("validation"))
    if indices.size == 0:
        raise ValueError("the data set has no validation images (needed to choose the checkpoint)")
    return indices[0::2], indices[1::2]


def check_init(start, inputs, output, preset):
    """``start`` (a loaded translator to fine-tune from) if it maps ``inputs -> output`` with ``preset``."""
    if (start.inputs, start.output, start.card.preset) != (tuple(inputs), output, preset):
        raise ValueError(
            f"init model {start.name!r} maps {'+'.join(start.inputs)} -> {start.output} with the "
            f"{start.card.preset!r} preset; expected {'+'.join(inputs)} -> {output}, {preset!r}"
        )
    return start


def build_network(preset, inputs, output, scalings, colour, *, seed=0):
    """A fresh `TranslationNet` for ``inputs -> output`` with the given scalings and colour model (`colour_model`)."""
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
                  checkpoint_dir=None, checkpoint_every=None, max_steps=None, device="auto", progress=True):
    """Train ``net`` in place; returns the `~bandsynth.nn.training.TrainingResult` and the set sizes.

    The loss is L1 + (1 - SSIM) in the scaled units plus the relative error of each
    crop's total flux (`bandsynth.nn.losses.BandLoss` with ``flux``); the uncertainty
    head is trained with a Gaussian negative log likelihood.
    """
    common = dict(inputs=inputs, target=output, scalings=scalings, seed=seed)
    train_set = BandPairDataset(data, split="train", crop_size=crop_size, augment=True, **common)
    val_set = BandPairDataset(data, indices=selection, augment=False, **common)
    result = _train_loop(
        net, train_set, val_data=val_set, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
        loss=BandLoss(distribution="gaussian", flux=net.unscale_output, flux_floor=scalings[output].softening),
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
        resume="auto" if checkpoint_dir else None, device=device, progress=progress, max_steps=max_steps,
    )
    if result.best_state is not None:
        net.load_state_dict(result.best_state)
    return result, {"n_train": len(train_set), "n_selection": len(val_set)}


def colour_model(data, inputs, output, scalings, *, max_pixels=1_000_000, seed=0):
    """The per-pixel colour model inside the network, fitted on the training split.

    Both kinds of `~bandsynth.nn.network.TranslationNet` baseline are fitted by least
    squares -- ``"flux"`` (the linear colour model, `bandsynth.baseline.fit_linear_colour`)
    and ``"scaled"`` (linear in the scaled units, with a constant: a power-law SED in
    the logarithmic regime) -- and the one with the smaller mean absolute error, in
    scaled units, over the galaxies' pixels (target above its softening) is kept.

    Returns
    -------
    dict
        ``baseline`` (the kind), ``coefficients``, ``intercept`` and the two errors.
    """
    flux_coef = fit_linear_colour(data, inputs, output, split="train", max_pixels=max_pixels, seed=seed)
    indices = np.asarray(data.indices("train"))
    rng = np.random.default_rng(seed)
    target = np.asarray(data.cube(output)[indices], dtype=np.float64).reshape(-1)
    take = rng.choice(target.size, size=min(max_pixels, target.size), replace=False)
    fluxes = np.stack([np.asarray(data.cube(b)[indices], dtype=np.float64).reshape(-1)[take] for b in inputs], 1)
    target = target[take]
    x = np.stack([scalings[b].forward(fluxes[:, i]) for i, b in enumerate(inputs)], 1)
    y = scalings[output].forward(target)
    good = np.isfinite(y) & np.all(np.isfinite(x), axis=1)
    design = np.column_stack([np.ones(good.sum()), x[good]])
    solution, *_ = np.linalg.lstsq(design, y[good], rcond=None)
    galaxy = good & (target > scalings[output].softening)
    errors = {
        "flux": float(np.mean(np.abs(scalings[output].forward(fluxes[galaxy] @ flux_coef) - y[galaxy]))),
        "scaled": float(np.mean(np.abs(solution[0] + x[galaxy] @ solution[1:] - y[galaxy]))),
    }
    kind = min(errors, key=errors.get)
    coefficients = flux_coef if kind == "flux" else solution[1:]
    return {"baseline": kind, "coefficients": [float(c) for c in coefficients],
            "intercept": 0.0 if kind == "flux" else float(solution[0]), "errors": errors}


def training_card(data, net, *, name, inputs, output, preset, scalings, result, sizes, started, init, start,
                  options, description):
    """The `~bandsynth.models.zoo.ModelCard` of a freshly trained network (metrics and calibration come later).

    ``options`` holds the recipe (seed, epochs, batch_size, crop_size, lr, recipe); ``start`` is
    the translator fine-tuning began from (or None), so the card keeps the whole chain of runs.
    """
    import time

    from .. import __version__
    from ..models.zoo import ModelCard

    info = dict(getattr(data, "info", {}) or {})
    options = dict(options)
    return ModelCard(
        name=name, inputs=inputs, output=output, preset=preset, architecture=net.config,
        scaling={b: s.to_dict() for b, s in scalings.items()}, mode=info.get("mode", "ideal"),
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
                                "distribution (Gaussian or Laplace) and so the width of the 95.45 % interval"},
        training={
            "data": info.get("description", type(data).__name__),
            "data_info": {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool))},
            **sizes, **{k: options[k] for k in ("seed", "epochs", "batch_size", "crop_size", "lr", "stretch")},
            "steps": int(getattr(result, "steps", 0) or 0),
            "loss": "L1 + (1 - SSIM) on the mean + relative error of each crop's total flux; "
                    "Gaussian NLL on the sigma head",
            "best_validation_ssim": None if result.best_metric is None else float(result.best_metric),
            "duration_s": round(time.perf_counter() - started, 1), "recipe": options["recipe"],
            # The whole chain of runs, so a fine-tuned card still says how its start was made.
            "init": None if start is None else {"path": str(init), "recipe": start.card.training.get("recipe"),
                                                "init": start.card.training.get("init")},
        },
        description=description, bandsynth_version=__version__,
    )
