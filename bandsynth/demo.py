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


def run_demo(*, model="nuv_k_to_r_paper", seed=7, out_dir=None, overwrite=False):
    """Run the demo and return ``(synthetic_band, report, paths)``.

    Parameters
    ----------
    model : str
        Shipped model name or path to a saved model.
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
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .datasets.mock import make_galaxy
    from .plotting import plot_panel
    from .translator import Translator

    translator = Translator.load(model)
    card = translator.card
    out = Path(tempfile.mkdtemp(prefix="bandsynth-demo-") if out_dir is None else out_dir)
    fits_path, png_path = demo_paths(out, seed=seed, band=translator.output)
    if not overwrite:
        for p in (fits_path, png_path):
            if p.exists():
                raise FileExistsError(f"{p} exists from an earlier run; pass overwrite=True to replace it")
    stack = make_galaxy(
        seed, mode=card.mode, bands=[*translator.inputs, translator.output], pixel_scale=card.pixel_scale
    )
    synthetic = translator.predict(stack.select(translator.inputs))
    truth = stack[translator.output]
    report = synthetic.compare(truth, inputs=stack.select(translator.inputs), scaling="provenance")

    out.mkdir(parents=True, exist_ok=True)
    synthetic.write(fits_path, overwrite=overwrite)
    fig = plot_panel(
        {b: stack[b].data for b in translator.inputs},
        truth.data,
        synthetic.data,
        sigma=None if synthetic.uncertainty is None else synthetic.uncertainty.array,
        band=translator.output,
        unit=synthetic.unit,
    )
    fig.savefig(png_path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return synthetic, report, (fits_path, png_path)
