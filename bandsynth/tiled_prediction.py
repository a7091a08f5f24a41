"""Large images, tile by tile: bounded memory whatever the image size.

`bandsynth.Translator.predict` sends an image larger than a few tiles here.  Each tile
is prepared from the stack on its own (units, bad pixels, scaling of just that window
with its halo of context), run through the network, calibrated and converted to flux,
and only its core is written into the output arrays.  Because the network is local,
the result is the same as for the whole image (to float rounding): memory holds the
inputs, the three output arrays (flux, sigma, mask) and one tile's work.
"""

from __future__ import annotations

import numpy as np

from .inputs import prepare_inputs
from .nn.engine import tile_windows
from .prediction import describe_uncertainty, to_flux, to_synthetic
from .uncertainty import combine, configuration_name, sample

__all__ = ["predict_large", "predict_in_tiles", "LARGE_IMAGE_TILES"]

#: Images that take more than this many tiles go through `predict_in_tiles`.
LARGE_IMAGE_TILES = 4


def predict_in_tiles(engine, card, scalings, stack, *, calibration, uncertainty, tta, n_samples, rng, run,
                     minimum_size):
    """Flux, calibrated sigma (or None) and bad-pixel mask of one large stack, tile by tile.

    Parameters
    ----------
    engine : `~bandsynth.nn.engine.InferenceEngine`
    card : `~bandsynth.models.zoo.ModelCard`
    scalings : mapping of str to `~bandsynth.scaling.AsinhScaling`
    stack : `~bandsynth.BandStack`
    calibration : `~bandsynth.uncertainty.Calibration` or None
    uncertainty, tta : bool
    n_samples : int
        Monte Carlo draws of the inputs' noise (where they carry an uncertainty).
    rng : numpy.random.Generator
    run : dict
        `~bandsynth.nn.engine.InferenceEngine.run` options; ``run["tile"]`` is the core
        size and ``run["progress"]`` is called as ``progress(done, total)``.
    minimum_size : int

    Returns
    -------
    flux, sigma, mask : ndarray
    parts : list of str
        The uncertainty's components.
    """
    from .units import parse_unit

    ny, nx = stack.shape
    rows = tile_windows(ny, run["tile"], engine.halo, engine.multiple)
    cols = tile_windows(nx, run["tile"], engine.halo, engine.multiple)
    flux = np.empty((ny, nx), np.float32)
    sigma = np.empty((ny, nx), np.float32) if uncertainty else None
    mask = np.zeros((ny, nx), bool)
    progress = run.get("progress")
    inner = {**run, "progress": None}
    parts, done = [], 0
    for r0, r1, wr0, wr1 in rows:
        for c0, c1, wc0, wc1 in cols:
            x, bad, noise = prepare_inputs(stack, card.inputs, scalings, unit=parse_unit(card.unit), model=card.name,
                                           minimum_size=minimum_size, window=(slice(wr0, wr1), slice(wc0, wc1)))
            draw = uncertainty and n_samples > 0 and noise is not None
            inner["tile"] = max(x.shape[1:])  # the window in one pass: its halo already holds the context
            mean, variance, parts = sample(engine, [scalings[b] for b in card.inputs], x[None],
                                           noise[None] if draw else None, uncertainty=uncertainty, tta=tta,
                                           n_samples=n_samples, rng=rng, run=inner)
            core = (slice(r0 - wr0, r1 - wr0), slice(c0 - wc0, c1 - wc0))
            f, s = to_flux(card, mean[0, 0][core], None if variance is None else variance[0, 0][core], calibration)
            flux[r0:r1, c0:c1] = f
            if sigma is not None:
                sigma[r0:r1, c0:c1] = s
            mask[r0:r1, c0:c1] = bad[core]
            done += 1
            if progress is not None:
                progress(done, len(rows) * len(cols))
    return flux, sigma, mask, parts


def predict_large(translator, stack, *, problems, computation, uncertainty, tta, n_samples, rng, run):
    """The `~bandsynth.SyntheticBand` of one large stack, tile by tile (`predict_in_tiles`).

    Parameters
    ----------
    translator : `~bandsynth.Translator`
    stack : `~bandsynth.BandStack`
    problems : list of str
        Domain warnings of the stack.
    computation : dict
        How the network runs (`bandsynth.nn.engine.InferenceEngine.describe`), for the provenance.
    uncertainty, tta : bool
        Compute the calibrated sigma; average over the 8 flips/rotations.
    n_samples : int
        Monte Carlo draws of the inputs' noise (where they carry an uncertainty).
    rng : numpy.random.Generator
    run : dict
        `~bandsynth.nn.engine.InferenceEngine.run` options (``batch_size``, ``tile``,
        ``precision``, ``compile``, ``progress``).

    Returns
    -------
    `~bandsynth.SyntheticBand`
    """
    card = translator.card
    mc = uncertainty and n_samples > 0 and any(stack[b].uncertainty is not None for b in card.inputs)
    config = configuration_name(tta=tta, monte_carlo=mc)
    calibration, described = None, ("none", None, None)
    if uncertainty:
        parts = combine(log_sigma=0.0, tta_variance=0.0 if tta else None, mc_variance=0.0 if mc else None)[1]
        calibration, *described = describe_uncertainty(card, parts, config)
    flux, sigma, mask, _ = predict_in_tiles(
        translator.engine, card, translator.scalings, stack, calibration=calibration, uncertainty=uncertainty, tta=tta,
        n_samples=n_samples, rng=rng, run=run, minimum_size=translator.model.minimum_input_size)
    return to_synthetic(card, stack, mask, flux, sigma, uncertainty=described, configuration=config,
                        problems=problems, computation={**computation, "compiled": translator.engine.compiled_used})
