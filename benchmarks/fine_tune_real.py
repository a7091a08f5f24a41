"""Fine-tune a model of one mapping on the fit part of the KiDS/VIKING set of observed galaxies.

The model (e.g. ``g_r_to_u``, trained on the survey layer of the mock universe) continues
on the observed galaxies of the set's *fit* part (even ``kv_NNN``; the odd ones are held
out for `benchmarks/real_sky.py`), each of its bands matched to the set's nearest filter
and the stamps put onto the model's pixel scale as real_sky.py does
(`fine_tune_any_band.observed_set`), with `bandsynth.Translator.fit`:

* the targets are the observed images (no noise-free truth exists): the loss is L1 without
  the SSIM term (``--ssim-weight``), the last weights are kept (validation SSIM against
  noisy targets hardly ranks checkpoints) and every fourth galaxy of the fit part is kept
  from training to calibrate on, in the galaxy as detected in the sum of its bands; the
  calibration takes the targets' sky noise (``SKYSIG``) out of the residuals;
* the set is far deeper than the survey the model is for: with ``--survey-depth SURVEY``
  each training galaxy is there twice, as observed and with its input bands' sky noise
  raised to the survey's (the mock universe's noise model of `bandsynth.datasets.mock`),
  so that the model keeps working at that depth and its card's noise range says so.

    python benchmarks/fine_tune_real.py --real-data ../shared/realdata/kids_viking --init g_z_to_r \\
        --survey-depth decals --stamp 96 --runs /tmp/ft/runs --out /tmp/ft/out
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from fine_tune_any_band import add_observed_target_options, observed_set

from bandsynth.datasets.mock.observing import _noise_model
from bandsynth.datasets.mock.surveys import survey_band


def with_survey_depth_copies(data, inputs, survey, *, seed=0):
    """``data`` with a second copy of every training galaxy whose ``inputs`` have the sky noise of ``survey``.

    Gaussian noise of ``sqrt(sigma_survey**2 - sigma_set**2)`` per pixel is added to each input band
    (none where the set is already as noisy); the grid's pixels are the survey's own, so the
    survey's sky sigma per native pixel applies.  Validation galaxies are left as observed.
    """
    from astropy.table import Table, vstack

    from bandsynth.datasets.mock import MockDataset

    train = np.asarray(data.indices("train"))
    rng = np.random.default_rng(seed)
    bands = [band.name for band in data.bands]
    cubes = {b: np.asarray(data.cube(b)) for b in bands}
    noise = {b: np.asarray(data.uncertainty_cube(b)) for b in bands}
    added = {}
    for band in inputs:
        sigma = _noise_model(survey_band(survey, band), 0.0)[0]
        extra = np.sqrt(np.clip(sigma**2 - noise[band][train] ** 2, 0.0, None)).astype(np.float32)
        added[band] = float(np.median(extra))
        cubes[band] = np.concatenate([cubes[band], cubes[band][train] + extra * rng.standard_normal(extra.shape)])
        noise[band] = np.concatenate([noise[band], np.hypot(noise[band][train], extra)])
    for band in set(bands) - set(inputs):
        cubes[band] = np.concatenate([cubes[band], cubes[band][train]])
        noise[band] = np.concatenate([noise[band], noise[band][train]])
    copies = Table({"file": [f"{name}+{survey}_depth" for name in data.manifest["file"][train]],
                    "split": ["train"] * train.size})
    manifest = vstack([data.manifest, copies])
    manifest.meta.update(data.manifest.meta, description=data.manifest.meta["description"] + (
        f"; each training galaxy also with its inputs' sky noise raised to {survey}'s depth"))
    return MockDataset(cubes, manifest, uncertainty=noise), added


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-data", required=True, help="the kids_viking directory (manifest.csv, fits/)")
    parser.add_argument("--init", required=True, help="the model of one mapping to start from (name or path)")
    parser.add_argument("--survey-depth", metavar="SURVEY",
                        help="also train on each galaxy with its inputs' noise raised to this survey's (e.g. sdss)")
    parser.add_argument("--stamp", type=int, default=64, help="side [px] of the stamps on the model's grid")
    parser.add_argument("--epochs", type=int, default=100, help="passes over the training galaxies")
    parser.add_argument("--crop", type=int, default=48, help="training crop side [px]")
    parser.add_argument("--batch-size", type=int, default=8, help="crops per optimizer step")
    parser.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (cosine schedule)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the crops, data order and added noise")
    add_observed_target_options(parser)
    parser.add_argument("--runs", default="runs/real_ft", help="checkpoint folder (a rerun resumes)")
    parser.add_argument("--out", default="runs/real_ft_out", help="folder for the weights and card")
    parser.add_argument("--name", help="model name (default: --init's name)")
    args = parser.parse_args(argv)

    from bandsynth import Translator

    start = Translator.load(args.init)
    if start.card.outputs:
        raise SystemExit(f"--init {args.init}: an any-band model; use fine_tune_any_band.py")
    inputs, output = list(start.inputs), start.output
    data, mapping = observed_set(args.real_data, [*inputs, output], start.card.pixel_scale, stamp=args.stamp)
    calibration = np.asarray(data.indices("validation"))
    added = {}
    if args.survey_depth:
        data, added = with_survey_depth_copies(data, inputs, args.survey_depth, seed=args.seed)
    print(f"{len(data.indices('train'))} training and {calibration.size} calibration stamps; bands {mapping}; "
          f"median noise added {added}", flush=True)
    recipe = "python benchmarks/fine_tune_real.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    depth = f", and again at {args.survey_depth}'s depth" if args.survey_depth else ""
    translator = Translator.fit(
        data, inputs=inputs, output=output, name=args.name or start.name, preset=start.card.preset,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, crop_size=args.crop, seed=args.seed,
        ssim_weight=args.ssim_weight, flux_weight=args.flux_weight, select_checkpoint=False, calibrate=False,
        checkpoint_dir=Path(args.runs), checkpoint_every=100, progress=False, init=args.init, recipe=recipe,
        description=f"{start.card.description}; fine-tuned on observed KiDS/VIKING galaxies (the fit part of the "
                    f"validation set: even kv_NNN{depth})")
    translator = translator.calibrate(
        data, indices=calibration, fitted_on=f"{calibration.size} observed galaxies of the fit part, not trained on "
                                             "(their sky noise taken out of the residuals)",
        footprint=args.calibration_footprint)
    stem = Path(args.out) / translator.name
    translator.save(stem, overwrite=True)
    print(f"{translator.name}: last weights after {translator.card.training['steps']} steps; written to {stem}",
          flush=True)


if __name__ == "__main__":
    main()
