"""``bandsynth demo``: the whole chain on one mock galaxy, offline.

Makes a galaxy of the built-in mock universe, predicts its r band from NUV and Ks
with the shipped ``nuv_k_to_r`` model, writes the synthetic band as FITS and a
PNG panel (inputs | truth | prediction | residual | sigma) and prints the metrics.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

__all__ = ["run_demo", "add_cli"]

log = logging.getLogger(__name__)


def run_demo(*, model="nuv_k_to_r", seed=7, out_dir="bandsynth-demo", overwrite=False):
    """Run the demo and return ``(synthetic_band, report, paths)``.

    Parameters
    ----------
    model : str
        Shipped model name or path to a saved model.
    seed : int
        Seed of the mock galaxy (a galaxy of the mock universe's test population).
    out_dir : str or path
        Where the FITS file and PNG panel go.
    overwrite : bool
        Replace files of an earlier run.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .datasets.mock import make_galaxy
    from .plotting import plot_panel
    from .translator import Translator

    translator = Translator.load(model)
    card = translator.card
    stack = make_galaxy(
        seed, mode=card.mode, bands=[*translator.inputs, translator.output], pixel_scale=card.pixel_scale
    )
    synthetic = translator.predict(stack.select(translator.inputs))
    truth = stack[translator.output]
    report = synthetic.compare(truth, inputs=stack.select(translator.inputs), scaling="provenance")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"mock{seed}_{translator.output}_synth"
    fits_path, png_path = out / f"{stem}.fits", out / f"{stem}.png"
    if not overwrite:
        for p in (fits_path, png_path):
            if p.exists():
                raise FileExistsError(f"{p} exists from an earlier run; pass --overwrite to replace it")
    synthetic.write(fits_path, overwrite=overwrite)
    fig = plot_panel(
        {b: stack[b].data for b in translator.inputs},
        truth.data,
        synthetic.data,
        sigma=None if synthetic.uncertainty is None else synthetic.uncertainty.array,
        band=translator.output,
    )
    fig.savefig(png_path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return synthetic, report, (fits_path, png_path)


def _cli_demo(args) -> int:
    from .models.zoo import list_models

    if not any(c.name == args.model for c in list_models()) and not Path(args.model).exists():
        print(f"model {args.model!r} does not ship with this version of bandsynth; see `bandsynth models`")
        return 1
    try:
        synthetic, report, paths = run_demo(
            model=args.model, seed=args.seed, out_dir=args.out, overwrite=args.overwrite
        )
    except FileExistsError as exc:
        print(f"bandsynth demo: {exc}", file=sys.stderr)
        return 1
    print(report)
    for p in paths:
        print(f"wrote {p}")
    return 0


def add_cli(subparsers):
    """Register ``bandsynth demo``."""
    p = subparsers.add_parser("demo", help="predict a mock galaxy's r band from NUV + Ks, offline")
    p.add_argument("--model", default="nuv_k_to_r", help="model to run (default: nuv_k_to_r)")
    p.add_argument("--seed", type=int, default=7, help="seed of the mock galaxy")
    p.add_argument("--out", default="bandsynth-demo", help="output directory (default: ./bandsynth-demo)")
    p.add_argument("--overwrite", action="store_true", help="replace files of an earlier run")
    p.set_defaults(func=_cli_demo)
