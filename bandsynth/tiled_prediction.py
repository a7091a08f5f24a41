"""Large images, tile by tile: bounded memory whatever the image size.

`bandsynth.Translator.predict` sends an image larger than a few tiles here
(`predict_stacks` decides).  Each tile is prepared from the stack on its own (units,
bad pixels, scaling of just that window with its halo of context), run through the
network, calibrated and converted to flux, and only its core is kept, one strip of
tiles (full rows of the image) at a time.  Because the network is local, the result is
the same as for the whole image (to float rounding).

`predict_large` collects the strips into a `~bandsynth.SyntheticBand`: memory holds the
inputs, the three output arrays (flux, sigma, mask) and one strip's work.
`predict_to_fits` (`bandsynth.Translator.predict_to_fits`, used by ``bandsynth
predict``) hands each strip to the FITS file as soon as it is done
(`bandsynth.fits_io.synthetic_band_writer`): memory holds the inputs and one strip's
work, and the file is the one ``predict(...).write(...)`` writes.
"""

from __future__ import annotations


import numpy as np

from .inputs import prepare_inputs
from .nn.engine import tile_windows
from .prediction import (
    check_one_stack,
    check_output_band,
    computation_record,
    describe_uncertainty,
    noise_restoration,
    plan_prediction,
    predict_batch,
    prediction_provenance,
    to_flux,
    to_synthetic,
)
from .uncertainty import combine, configuration_name, grid_origin, sample
from .units import parse_unit

__all__ = ["predict_stacks", "predict_to_fits", "predict_large", "write_large", "predict_in_tiles",
           "LARGE_IMAGE_TILES", "TILE"]

#: Images that take more than this many tiles go through `predict_in_tiles`.
LARGE_IMAGE_TILES = 4

#: Side of the tiles' cores: bounds memory (~1 kB per pixel for the "paper" preset);
#: tiling is exact, so it never changes a prediction.
TILE = 512


def predict_stacks(translator, stacks, *, uncertainty=True, tta=False, n_samples=8, batch_size=8, precision="fp32",
                   tile=TILE, seed=0, check_domain=True, compile="auto", progress=None, restore_noise="auto"):
    """The `~bandsynth.SyntheticBand` of each stack: `bandsynth.Translator.predict` for a list of stacks.

    Large images (more than `LARGE_IMAGE_TILES` tiles) one by one through `predict_large`,
    the others batched (`bandsynth.prediction.predict_batch`).

    Parameters
    ----------
    translator : `~bandsynth.Translator`
    stacks : list of `~bandsynth.BandStack`
    uncertainty, tta, n_samples, batch_size, precision, tile, seed, check_domain, compile, progress, restore_noise
        As for `bandsynth.Translator.predict`.

    Returns
    -------
    list of `~bandsynth.SyntheticBand`
        In the order of ``stacks``.
    """
    problems, computation, options = plan_prediction(
        translator, stacks, uncertainty=uncertainty, tta=tta, n_samples=n_samples, batch_size=batch_size,
        precision=precision, tile=tile, seed=seed, check_domain=check_domain, compile=compile, progress=progress,
        restore_noise=restore_noise, stacklevel=4)
    results = [None] * len(stacks)
    large = [i for i, s in enumerate(stacks) if translator.engine.n_tiles(s.shape, tile=tile) > LARGE_IMAGE_TILES]
    for i in large:  # one by one, tile by tile: memory stays bounded
        results[i] = predict_large(translator, stacks[i], problems=problems[i], computation=computation, **options)
    small = [i for i in range(len(stacks)) if i not in large]
    for i, band in zip(small, predict_batch(translator, [stacks[i] for i in small],
                                            problems=[problems[i] for i in small], computation=computation,
                                            **options)):
        results[i] = band
    return results


def predict_to_fits(translator, stack, path, *, band=None, overwrite=False, uncertainty=True, tta=False,
                    n_samples=8, batch_size=8, precision="fp32", tile=TILE, seed=0, check_domain=True, compile="auto",
                    progress=None, restore_noise="auto"):
    """Predict the output band of one stack into the FITS file ``path`` (`bandsynth.Translator.predict_to_fits`).

    A large image (more than `LARGE_IMAGE_TILES` tiles) goes through `write_large`, strip
    by strip into the file; a small one is predicted whole and written.

    Parameters
    ----------
    translator : `~bandsynth.Translator`
    stack : `~bandsynth.BandStack`
    path : str or os.PathLike
    band : str, optional
        The band to predict: the translator's output (as ``predict`` accepts it).
    overwrite : bool
        Replace an existing file (else `FileExistsError`, before any work).
    uncertainty, tta, n_samples, batch_size, precision, tile, seed, check_domain, compile, progress, restore_noise
        As for `bandsynth.Translator.predict`.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    FileExistsError, FileNotFoundError
        ``path`` exists (without ``overwrite``) or its folder does not: before any work.
    ValueError
        ``band`` is not the translator's output, or a list of bands.
    """
    from ._io import input_files, writable_path
    from .fits_io import synthetic_band_writer

    if check_output_band(translator.card, band):
        raise ValueError(f"model {translator.name!r} writes one band per FITS file: give band= as one band name")
    check_one_stack(stack)
    path = writable_path(path, overwrite=overwrite, inputs=input_files(stack.meta.get("inputs")))  # before any work
    problems, computation, options = plan_prediction(
        translator, [stack], uncertainty=uncertainty, tta=tta, n_samples=n_samples, batch_size=batch_size,
        precision=precision, tile=tile, seed=seed, check_domain=check_domain, compile=compile, progress=progress,
        restore_noise=restore_noise, stacklevel=4)
    if translator.engine.n_tiles(stack.shape, tile=tile) <= LARGE_IMAGE_TILES:
        band = predict_batch(translator, [stack], problems=problems, computation=computation, **options)[0]
        band.write(path, overwrite=overwrite)
        return path
    with synthetic_band_writer(path, stack.shape, uncertainty=uncertainty, overwrite=overwrite) as out:
        write_large(translator, stack, out, problems=problems[0], computation=computation, **options)
    return path


def predict_in_tiles(engine, card, scalings, stack, *, calibration, uncertainty, tta, n_samples, draws, run,
                     minimum_size, write_rows, restoration=None):
    """Flux, calibrated sigma (or None) and bad-pixel mask of one large stack, tile by tile, strip by strip.

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
    draws : `~bandsynth.uncertainty.PixelDraws`
    run : dict
        `~bandsynth.nn.engine.InferenceEngine.run` options; ``run["tile"]`` is the core
        size and ``run["progress"]`` is called as ``progress(done, total)`` after every tile.
    minimum_size : int
    write_rows : callable
        Called as ``write_rows(row, flux, sigma, mask)`` with each finished strip of
        full rows, top to bottom: float32 flux and sigma (None without ``uncertainty``)
        and the bool mask of bad input pixels, from image row ``row`` on.
    restoration : `~bandsynth.restored_noise.NoiseRestoration`, optional
        The noise to add back to interpolated bands (tied to pixel positions: tiles get the whole image's).

    Returns
    -------
    parts : list of str
        The uncertainty's components.
    """
    ny, nx = stack.shape
    rows = tile_windows(ny, run["tile"], engine.halo, engine.multiple)
    cols = tile_windows(nx, run["tile"], engine.halo, engine.multiple)
    progress = run.get("progress")
    inner = {**run, "progress": None}
    parts, done, origin = [], 0, grid_origin(stack.wcs)
    for r0, r1, wr0, wr1 in rows:
        flux = np.empty((r1 - r0, nx), np.float32)
        sigma = np.empty((r1 - r0, nx), np.float32) if uncertainty else None
        mask = np.zeros((r1 - r0, nx), bool)
        for c0, c1, wc0, wc1 in cols:
            x, bad, noise = prepare_inputs(stack, card.inputs, scalings, unit=parse_unit(card.unit), model=card.name,
                                           minimum_size=minimum_size, window=(slice(wr0, wr1), slice(wc0, wc1)),
                                           restoration=restoration)
            draw = uncertainty and n_samples > 0 and noise is not None
            inner["tile"] = max(x.shape[1:])  # the window in one pass: its halo already holds the context
            mean, variance, parts = sample(engine, [scalings[b] for b in card.inputs], x[None],
                                           noise[None] if draw else None, uncertainty=uncertainty, tta=tta,
                                           n_samples=n_samples, draws=draws, run=inner,
                                           origins=[(origin[0] + wr0, origin[1] + wc0)])
            core = (slice(r0 - wr0, r1 - wr0), slice(c0 - wc0, c1 - wc0))
            f, s = to_flux(card, mean[0, 0][core], None if variance is None else variance[0, 0][core], calibration)
            flux[:, c0:c1] = f
            if sigma is not None:
                sigma[:, c0:c1] = s
            mask[:, c0:c1] = bad[core]
            done += 1
            if progress is not None:
                progress(done, len(rows) * len(cols))
        write_rows(r0, flux, sigma, mask)
    return parts


def _uncertainty_plan(card, stack, *, uncertainty, tta, n_samples):
    """``(configuration, calibration or None, (method, stated distribution))`` of one large stack."""
    # draws of every input's noise, or none (`bandsynth.inputs.prepare_inputs`): some bands' alone understate sigma
    mc = uncertainty and n_samples > 0 and all(stack.view(b).uncertainty is not None for b in card.inputs)
    config = configuration_name(tta=tta, monte_carlo=mc)
    calibration, described = None, ("none", None)
    if uncertainty:
        parts = combine(log_sigma=0.0, tta_variance=0.0 if tta else None, mc_variance=0.0 if mc else None)[1]
        calibration, *described = describe_uncertainty(card, parts, config)
    return config, calibration, tuple(described)


def predict_large(translator, stack, *, problems, computation, uncertainty, tta, n_samples, draws, run,
                  restore_noise):
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
    draws : `~bandsynth.uncertainty.PixelDraws`
    run : dict
        `~bandsynth.nn.engine.InferenceEngine.run` options (``batch_size``, ``tile``,
        ``precision``, ``compile``, ``progress``).
    restore_noise : {"auto", True, False}
        Add back the noise an interpolation smoothed away (`bandsynth.prediction.noise_restoration`).

    Returns
    -------
    `~bandsynth.SyntheticBand`
    """
    card = translator.card
    restoration = noise_restoration(card, stack, draws, restore_noise=restore_noise)
    config, calibration, described = _uncertainty_plan(card, stack, uncertainty=uncertainty, tta=tta,
                                                       n_samples=n_samples)
    flux = np.empty(stack.shape, np.float32)
    sigma = np.empty(stack.shape, np.float32) if uncertainty else None
    mask = np.zeros(stack.shape, bool)

    def keep(row, f, s, m):
        rows = slice(row, row + len(f))
        flux[rows], mask[rows] = f, m
        if sigma is not None:
            sigma[rows] = s

    predict_in_tiles(translator.engine, card, translator.scalings, stack, calibration=calibration,
                     uncertainty=uncertainty, tta=tta, n_samples=n_samples, draws=draws, run=run,
                     minimum_size=translator.model.minimum_input_size, write_rows=keep, restoration=restoration)
    return to_synthetic(card, stack, mask, flux, sigma, uncertainty=described, configuration=config,
                        problems=problems, computation=computation_record(computation, translator.engine, restoration))


def write_large(translator, stack, out, *, problems, computation, uncertainty, tta, n_samples, draws, run,
                restore_noise):
    """Predict one large stack tile by tile into a FITS file being written, strip by strip, and finish it.

    The pixels, sigma, mask and provenance are those `predict_large` returns for the same
    stack, but no output array is held whole.

    Parameters
    ----------
    translator : `~bandsynth.Translator`
    stack : `~bandsynth.BandStack`
    out : `~bandsynth.fits_io.SyntheticBandWriter`
        For ``stack.shape``, with an ``UNCERT`` HDU if and only if ``uncertainty``
        (`bandsynth.fits_io.synthetic_band_writer`).
    problems, computation, uncertainty, tta, n_samples, draws, run, restore_noise
        As for `predict_large`.
    """
    card = translator.card
    restoration = noise_restoration(card, stack, draws, restore_noise=restore_noise)
    config, calibration, described = _uncertainty_plan(card, stack, uncertainty=uncertainty, tta=tta,
                                                       n_samples=n_samples)
    n_masked = 0

    def write(row, f, s, m):
        nonlocal n_masked
        n_masked += int(np.count_nonzero(m))
        out.write_rows(row, f, sigma=s, mask=m)

    predict_in_tiles(translator.engine, card, translator.scalings, stack, calibration=calibration,
                     uncertainty=uncertainty, tta=tta, n_samples=n_samples, draws=draws, run=run,
                     minimum_size=translator.model.minimum_input_size, write_rows=write, restoration=restoration)
    provenance = prediction_provenance(
        card, stack, n_masked, uncertainty=described, configuration=config, problems=problems,
        computation=computation_record(computation, translator.engine, restoration))
    out.finish(unit=parse_unit(card.unit), band=card.output, provenance=provenance, wcs=stack.wcs)
