"""``bandsynth demo``: the whole chain on one mock galaxy, offline.

Makes a galaxy of the built-in mock universe, predicts its r band from NUV and Ks
with the shipped ``nuv_k_to_r_paper`` model, writes the synthetic band as FITS and a
PNG panel (inputs | truth | prediction | residual | sigma) and prints the metrics.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

__all__ = ["run_demo", "demo_paths"]

log = logging.getLogger(__name__)


def demo_paths(out_dir, *, seed=7, band="r"):
    """The FITS file and PNG panel :func:`run_demo` writes into ``out_dir``.

    Parameters
    ----------
    out_dir : str or os.PathLike
        The demo's output folder.
    seed : int
        Seed of the mock galaxy.
    band : str
        The predicted band, as it appears in the file names.

    Returns
    -------
    fits_path, png_path : pathlib.Path
        ``out_dir/mock<seed>_<band>_synth.fits`` and the same name with ``.png``.
    """
    stem = f"mock{seed}_{band}_synth"
    return Path(out_dir) / f"{stem}.fits", Path(out_dir) / f"{stem}.png"


def run_demo(*, model="nuv_k_to_r_paper", band=None, seed=7, out_dir=None, overwrite=False):
    """Run the demo and return ``(synthetic_band, report, paths)``.

    Parameters
    ----------
    model : str
        Shipped model name or path to a saved model.
    band : str, optional
        The band to predict: required for an any-band model, which predicts it from
        all its other bands; for any other model, its output band (the default).
    seed : int
        Seed of the mock galaxy (a galaxy of the mock universe's test population).
    out_dir : str or path, optional
        Where the FITS file and PNG panel go (created if needed; default: a new
        temporary folder, never the current folder).
    overwrite : bool
        Replace files of an earlier run (checked before any work).

    Returns
    -------
    synthetic_band : `~bandsynth.SyntheticBand`
        The prediction for the mock galaxy, in nanomaggies.
    report : `~bandsynth.metrics.ComparisonReport`
        Its metrics against the mock galaxy's true image (pixel metrics in the
        model's scaled space).
    paths : (pathlib.Path, pathlib.Path)
        The FITS file and the PNG panel written (see :func:`demo_paths`).

    Raises
    ------
    FileExistsError
        If an output file exists and ``overwrite`` is False.
    ValueError
        ``band`` is not one the model writes, or not given for an any-band model.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .bands import get_band
    from .plotting import plot_panel
    from .prediction import check_output_band
    from .translator import Translator

    translator = Translator.load(model)
    card = translator.card
    output = translator.output if band is None and not card.outputs else band
    if output is None:
        raise ValueError(f"model {translator.name!r} predicts any of {', '.join(card.outputs)}: say which with band=")
    if check_output_band(card, output):
        raise ValueError(f"the demo predicts one band; band={output!r} names several")
    output = get_band(output).name
    inputs = [b for b in translator.inputs if b != output]
    out = Path(tempfile.mkdtemp(prefix="bandsynth-demo-") if out_dir is None else out_dir)
    fits_path, png_path = demo_paths(out, seed=seed, band=output)
    if not overwrite:
        for p in (fits_path, png_path):
            if p.exists():
                raise FileExistsError(f"{p} exists from an earlier run; pass overwrite=True to replace it")
    stack, truth = _galaxy(card, seed, [*inputs, output])
    options = {"band": output} if card.outputs else {}  # an any-band model is told which band
    synthetic = translator.predict(stack.select(inputs), **options)
    truth = truth[output]
    report = synthetic.compare(truth, inputs=stack.select(inputs), scaling="provenance")

    out.mkdir(parents=True, exist_ok=True)
    synthetic.write(fits_path, overwrite=overwrite)
    fig = plot_panel(
        {b: stack[b].data for b in inputs},
        truth.data,
        synthetic.data,
        sigma=None if synthetic.uncertainty is None else synthetic.uncertainty.array,
        band=output,
        unit=synthetic.unit,
    )
    fig.savefig(png_path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return synthetic, report, (fits_path, png_path)


def _galaxy(card, seed, bands):
    """The demo galaxy in ``bands`` as the model's training images show galaxies, and its truth.

    A model trained on the survey layer sees the galaxy as its surveys observe it and is
    judged against the noise-free truth, as its card's figures are; a model trained on
    observed images (no survey recorded), as the first survey preset that observes all its
    bands does; any other, in the card's mode, its truth the image itself.
    """
    from .datasets.mock import SURVEY_PRESETS, make_galaxy, observe_galaxy, resolve_survey
    from .evaluation import card_observation_options

    info = dict(card.training.get("data_info", {}))
    survey = info.get("survey")
    if survey is None and card.mode == "survey":
        for preset in SURVEY_PRESETS:
            try:
                resolve_survey(preset, bands)
            except ValueError:
                continue
            survey = preset
            break
    if survey is None:
        stack = make_galaxy(seed, mode=card.mode, bands=bands, pixel_scale=card.pixel_scale)
        return stack, stack
    # the training universe's observing options (depth, dust, family, redshift, magnitudes), where the card has them
    options = {k: v for k, v in card_observation_options(card).items() if k not in ("survey", "bands", "size")} \
        if "survey" in info else {"pixel_scale": card.pixel_scale}
    seen = observe_galaxy(seed, survey=survey, bands=None if isinstance(survey, dict) else bands, **options)
    return seen.observed, seen.truth
