"""Fine-tune an any-band model on the fit part of the KiDS/VIKING set of observed galaxies.

The model (trained on the survey layer of the mock universe, `benchmarks/train_any_band.py`)
continues on the observed galaxies of the set's *fit* part (even ``kv_NNN``; the odd ones
are held out for `benchmarks/real_sky.py`), each band of the model matched to the set's
nearest filter and the stamps put onto the model's pixel scale as real_sky.py does:

* every request's colour model is solved afresh from the fit part's training pixels, those
  of the sources (``--keep-moments`` keeps the mock universe's; ``--moment-stamps whole``
  takes every pixel of the training galaxies' whole stamps instead of their cut-outs, as
  real_sky.py's linear colour model); ``--baseline flux`` starts every request from the
  linear colour model in flux instead, keeping the generator and resetting its correction
  to zero;
* the targets are the observed images (no noise-free truth exists): the loss is L1 without
  the SSIM term (``--ssim-weight``; SSIM rewards matching the targets' noise), the sigma head
  learns on noisy targets and the calibration removes the targets' sky noise (``SKYSIG``,
  as their uncertainty) from the residuals: the stated sigma is the error about the sky
  without noise, and real_sky.py counts a pixel as covered when
  ``|prediction - observed| <= hypot(sigma, SKYSIG)``;
* of the fit part, every fourth galaxy is kept from training: half of those choose the
  checkpoint, the other half calibrate (every `predict` configuration, per target band on the
  request with every other band at hand, in the galaxy as detected in the sum of its bands);
  with ``--keep-last`` the last weights are kept and all of them calibrate.

    python benchmarks/fine_tune_any_band.py --real-data ../shared/realdata/kids_viking \\
        --init benchmarks/models/any_band_kids_viking_survey_sources --epochs 30 --keep-last \\
        --runs /tmp/ft/runs --out /tmp/ft/out          # any_band_kids_viking version 1
    python benchmarks/fine_tune_any_band.py --real-data ../shared/realdata/kids_viking \\
        --init /tmp/ft/out/any_band_kids_viking --sigma-head-only --sigma-head-requests 2 \\
        --epochs 60 --lr 1e-3 --out /tmp/ft/head

With ``--sigma-head-only`` (the second command: version 2) only the σ head is trained again
(`bandsynth.uncertainty.fitting.fit_sigma_head`), on the training galaxies with each target's
sky noise added to the likelihood's variance, and the model is calibrated afresh.
With ``--calibrate-only`` every weight is kept and the model is only calibrated afresh:
each band from all the others and, per number of bands at hand, from random sets of them
(``--calibration-n-inputs``; `AnyBandTranslator.calibrate`), as for version 4:

    python benchmarks/fine_tune_any_band.py --real-data ../shared/realdata/kids_viking \\
        --init V3 --calibrate-only --version 4 --name any_band_kids_viking --out /tmp/ft/v4

``--scale-median 3`` ends the σ head in a 3 x 3 median filter first (version 7: version 6's
weights, ``--calibrate-only``).

With ``--noise-max-ratio R`` the network reads depth tags and a share ``--noise-share`` of
each crop's bands at hand is made up to R times noisier than the stamps (version 5: R = 3,
with ``--flux-error squared --flux-weight 3 --favour-every-other``, then ``--calibrate-only``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from astropy.table import Table

from real_sky import nearest_filter, read_bands, read_galaxies
from train_any_band import add_noise_options, check_worsening, noise_options

from bandsynth.nn.any_band import BASELINES
from bandsynth.nn.any_band_recipe import pixel_moments
from bandsynth.nn.losses import FLUX_ERRORS
from bandsynth.uncertainty import CONFIGURATIONS
from bandsynth.uncertainty.fitting import FOOTPRINTS

#: Side [px] every stamp is cut to (centred), on the model's grid.
STAMP = 128


def observed_set(directory, bands, pixel_scale, *, validation_every=4, stamp=STAMP):
    """The fit part of the set as an in-memory data set of ``bands`` (registry names; observed images only).

    Every ``validation_every``-th galaxy forms the validation split; each band's uncertainty
    is its stamp's SKYSIG per pixel of the grid; every stamp is cut to ``stamp`` px (centred).
    """
    from bandsynth.datasets.mock import MockDataset

    mapping = {band: nearest_filter(band) for band in bands}
    missing = [band for band, f in mapping.items() if f is None]
    if missing:
        raise SystemExit(f"the set has no filter near band(s) {missing} of the model")
    rows = read_galaxies(directory, "fit")
    cubes = {b: [] for b in bands}
    noise = {b: [] for b in bands}
    psf = {b: [] for b in bands}
    for row in rows:
        stack, sky, _ = read_bands(row["path"], mapping, pixel_scale=pixel_scale)
        for b in bands:
            psf[b].append(float(stack[b].meta.get("PSFFWHM", np.nan)))
        ny, nx = stack.shape
        if min(ny, nx) < stamp:
            raise SystemExit(f"{row['file']}: {ny} x {nx} px on the model's grid, smaller than {stamp} px")
        y0, x0 = (ny - stamp) // 2, (nx - stamp) // 2
        for b in bands:
            cubes[b].append(np.asarray(stack[b].data, np.float32)[y0:y0 + stamp, x0:x0 + stamp])
            noise[b].append(np.full((stamp, stamp), sky[b], np.float32))
    split = ["validation" if k % validation_every == validation_every - 1 else "train" for k in range(len(rows))]
    manifest = Table({"file": [Path(r["file"]).name for r in rows], "split": split})
    manifest.meta.update(bands=list(bands), mode="survey", unit="nanomaggy", pixel_scale=float(pixel_scale),
                         psf_fwhm={b: round(float(np.nanmedian(v)), 3) for b, v in psf.items()
                                   if np.isfinite(v).any()},  # the stamps' median PSFFWHM [arcsec]
                         description="observed KiDS/VIKING galaxies, fit part (even kv_NNN)",
                         source=f"observed galaxies: {Path(directory).name}")
    return MockDataset({b: np.stack(v) for b, v in cubes.items()}, manifest,
                       uncertainty={b: np.stack(v) for b, v in noise.items()}), mapping


def whole_stamp_moments(directory, data, mapping, scalings, pixel_scale, *, kind):
    """The colour models' moments (`band_moments`'s form) over every pixel of the training galaxies' whole stamps.

    As real_sky.py fits its linear colour model: the cut-outs of `observed_set` leave out the outskirts
    of the largest galaxies (8 of the set's 85 stamps are 256 px), whose light weighs most in a fit in flux.
    """
    train = set(data.manifest["file"][data.indices("train")])
    pixels = []
    for row in read_galaxies(directory, "fit"):
        if Path(row["file"]).name in train:
            stack = read_bands(row["path"], mapping, pixel_scale=pixel_scale)[0]
            flux = {b: np.asarray(stack[b].data, np.float64).ravel() for b in mapping}
            pixels.append(np.stack([flux[b] if kind == "flux" else scalings[b].forward(flux[b]) for b in mapping],
                                   axis=1))
    x = np.concatenate(pixels)
    x = x[np.all(np.isfinite(x), axis=1)]
    return pixel_moments(x, x)  # the targets are the observed images themselves


#: What the card's description says of every fine-tune on the set, once however many there were.
FINE_TUNED = "fine-tuned on observed KiDS/VIKING galaxies (the fit part of the validation set: even kv_NNN)"


def fine_tuned_description(description):
    """``description`` followed by `FINE_TUNED`, unless an earlier fine-tune wrote it there."""
    kept = description.replace(f"; {FINE_TUNED}", "")
    return f"{kept}; {FINE_TUNED}"


def head_requests(bands, per_band, *, seed):
    """Each band from all the others, and ``per_band`` requests per band from a random number of the others
    (uniform in 1 to all but one, then a uniform choice, as training draws them)."""
    rng = np.random.default_rng(seed)
    requests = []
    for band in bands:
        others = [b for b in bands if b != band]
        requests.append((others, band))
        for _ in range(per_band):
            chosen = rng.choice(len(others), size=int(rng.integers(1, len(others))), replace=False)
            requests.append(([others[k] for k in sorted(chosen)], band))
    return requests


def add_observed_target_options(parser):
    """The options of training on observed targets: the loss's terms and where the calibration looks."""
    parser.add_argument("--ssim-weight", type=float, default=0.0,
                        help="weight of the loss's (1 - SSIM) term (default 0: the targets are noisy)")
    parser.add_argument("--flux-weight", type=float, default=0.0,
                        help="weight of the loss's photometric term (relative error of each crop's total flux)")
    parser.add_argument("--calibration-footprint", choices=FOOTPRINTS, default="detection",
                        help="calibrate in the galaxy as detected in the target band or (default) in the sum of "
                             "its bands, as real_sky.py scores the whole galaxy")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-data", required=True, help="the kids_viking directory (manifest.csv, fits/)")
    parser.add_argument("--init", required=True, help="the any-band model to start from")
    parser.add_argument("--epochs", type=int, default=20, help="passes over the training galaxies")
    parser.add_argument("--crops", type=int, default=16, help="random crops (and requests) per galaxy and epoch")
    parser.add_argument("--crop", type=int, default=64, help="training crop side [px]")
    parser.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (cosine schedule)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data order and requests")
    add_observed_target_options(parser)
    parser.add_argument("--flux-error", choices=FLUX_ERRORS, default="total",
                        help="what the photometric term compares: each crop's total flux (default), its pixels' "
                             "fluxes, which weighs the galaxies' bright bodies rather than the crops' sky noise, "
                             "or their squares (each pixel's mean rather than its median)")
    parser.add_argument("--moment-pixels", choices=["all", "sources"], default="sources",
                        help="pixels the colour models are refitted on (default: the sources')")
    parser.add_argument("--baseline", choices=BASELINES,
                        help="the colour model to start from (default: --init's kind); another kind than --init's "
                             "keeps its generator and resets the correction")
    parser.add_argument("--keep-last", action="store_true",
                        help="keep the last weights (no checkpoint chosen on validation SSIM, which hardly ranks "
                             "them against noisy targets): every validation galaxy then calibrates")
    parser.add_argument("--average-epochs", type=int, metavar="N",
                        help="keep the mean of the weights at the ends of the last N epochs")
    parser.add_argument("--favour-every-other", action="store_true",
                        help="draw each band's request from every other band (the one real_sky.py scores) for a "
                             "share --favour-share of the training crops")
    parser.add_argument("--favour-share", type=float, default=0.5, help="see --favour-every-other")
    parser.add_argument("--favour-bands", nargs="+", metavar="BAND",
                        help="with --favour-every-other: only these wanted bands (the model's names)")
    parser.add_argument("--keep-moments", action="store_true", help="keep the colour models of --init")
    add_noise_options(parser, than="the observed stamps")
    parser.add_argument("--moment-stamps", choices=["cut", "whole"], default="cut",
                        help="fit the colour models on the training cut-outs (default) or on every pixel of the "
                             "training galaxies' whole stamps, as real_sky.py's linear colour model")
    parser.add_argument("--sigma-head-only", action="store_true",
                        help="keep --init's weights but its σ head, fitted again on the training galaxies with their "
                             "sky noise in the likelihood (--epochs passes); then calibrate on the validation ones")
    parser.add_argument("--sigma-head-requests", type=int, default=0, metavar="N",
                        help="with --sigma-head-only: besides each band from all the others, N requests per band "
                             "from a random number of the others (default 0)")
    parser.add_argument("--calibration-n-inputs", nargs="*", type=int, metavar="N",
                        help="numbers of bands at hand calibrated besides every other band, on random requests "
                             "(default: each from 1 to one fewer than the other bands; the option without "
                             "numbers: none)")
    parser.add_argument("--configurations", nargs="+", choices=CONFIGURATIONS, default=list(CONFIGURATIONS),
                        help="the predict configurations to calibrate (default: all four; plain alone is the quick "
                             "look at a run)")
    parser.add_argument("--calibrate-only", action="store_true",
                        help="keep every weight of --init and calibrate it afresh on the validation galaxies")
    parser.add_argument("--scale-median", type=int, default=1, metavar="K",
                        help="end the σ head in a K x K median filter (odd; ResNetGenerator.with_scale_median) "
                             "before anything else: removes single sky pixels whose σ stands orders of magnitude "
                             "above their neighbours' (default 1: none, or --init's filter)")
    parser.add_argument("--version", type=int, help="model version written into the card (default: --init's, "
                                                    "plus one with --sigma-head-only or --calibrate-only)")
    parser.add_argument("--runs", default="runs/any_band_ft", help="checkpoint folder (a rerun resumes)")
    parser.add_argument("--out", default="runs/any_band_ft_out", help="folder for the weights and card")
    parser.add_argument("--name", help="model name (default: --init's name with _kids)")
    args = parser.parse_args(argv)
    if args.sigma_head_requests < 0 or (args.sigma_head_requests and not args.sigma_head_only):
        parser.error(f"--sigma-head-requests {args.sigma_head_requests}: expected a number >= 0, "
                     "with --sigma-head-only")
    if args.calibrate_only and args.sigma_head_only:
        parser.error("--calibrate-only keeps the σ head of --init: leave out --sigma-head-only")
    if args.keep_moments and args.moment_stamps == "whole":
        parser.error("--moment-stamps whole fits the colour models afresh: leave out --keep-moments")
    if args.noise_max_ratio is not None and (args.calibrate_only or args.sigma_head_only):
        parser.error("--noise-max-ratio trains the whole network: leave out --calibrate-only and --sigma-head-only")
    if not 0.0 <= args.favour_share <= 1.0:
        parser.error(f"--favour-share must be in [0, 1], got {args.favour_share}")
    check_worsening(parser, args, ("noise",))
    if args.scale_median < 1 or args.scale_median % 2 == 0:
        parser.error(f"--scale-median {args.scale_median}: expected an odd number >= 1")
    if args.favour_bands and not args.favour_every_other:
        parser.error("--favour-bands narrows --favour-every-other: give both")

    n_inputs = "all" if args.calibration_n_inputs is None else args.calibration_n_inputs
    from bandsynth import Translator
    from bandsynth.any_band_translator import AnyBandTranslator
    from bandsynth.nn.any_band_recipe import any_band_card, train_any_band
    from bandsynth.nn.recipe import chosen_weights, split_validation

    start = Translator.load(args.init)
    if not start.card.outputs:
        raise SystemExit(f"--init {args.init}: not an any-band model (its card lists no outputs)")
    if args.scale_median > 1:
        start = start.replace(model=start.model.with_scale_median(args.scale_median))
    bands = list(start.card.inputs)
    unknown = sorted(set(args.favour_bands or ()) - set(bands))
    if unknown:
        raise SystemExit(f"--favour-bands {' '.join(unknown)}: not a band of --init; it has {' '.join(bands)}")
    data, mapping = observed_set(args.real_data, bands, start.card.pixel_scale)
    print(f"{len(data.indices('train'))} training and {len(data.indices('validation'))} validation galaxies; "
          f"bands {mapping}", flush=True)
    recipe = "python benchmarks/fine_tune_any_band.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    # without a checkpoint to choose, every validation galaxy calibrates
    _, calibration = split_validation(data, calibrate=True,
                                      select_checkpoint=not (args.keep_last or args.sigma_head_only
                                                                  or args.calibrate_only))
    calibration_text = (f"{len(calibration)} observed galaxies of the fit part, not trained on (their sky noise taken "
                        "out of the residuals)")
    if args.sigma_head_only or args.calibrate_only:
        name = args.name or start.name
        train = list(data.indices("train"))
        translator = start
        if args.sigma_head_only:
            from bandsynth.uncertainty.fitting import fit_sigma_head

            requests = head_requests(bands, args.sigma_head_requests, seed=args.seed)
            translator = fit_sigma_head(start, data, indices=train, epochs=args.epochs, lr=args.lr, seed=args.seed,
                                        footprint=args.calibration_footprint, requests=requests, recipe=recipe,
                                        fitted_on=f"the {len(train)} training galaxies of the fit part (even kv_NNN)")
            record = translator.card.training["sigma_head"]
            print(f"σ head: mean NLL {record['nll_before']:.4f} -> {record['nll_after']:.4f}", flush=True)
        else:
            training = translator.card.training
            translator = translator.replace(card=translator.card.replace(
                training={**training, "calibration_recipe": recipe}))
        translator = translator.calibrate(data, indices=calibration, configurations=args.configurations,
                                          n_inputs=n_inputs, fitted_on=calibration_text,
                                          footprint=args.calibration_footprint)
        version = start.card.version + 1 if args.version is None else args.version
        translator = translator.replace(card=translator.card.replace(name=name, version=version))
        translator.save(Path(args.out) / name, overwrite=True)
        print(f"{name} version {version}: written to {Path(args.out) / name}", flush=True)
        return
    started = time.perf_counter()
    wanted_bands = bands if args.favour_bands is None else args.favour_bands
    favoured = [(tuple(b for b in bands if b != wanted), wanted) for wanted in wanted_bands] \
        if args.favour_every_other else []
    moments = None
    if args.moment_stamps == "whole":
        moments = whole_stamp_moments(args.real_data, data, mapping, start.scalings, start.card.pixel_scale,
                                      kind=args.baseline or start.model.baseline_kind)
    net, scalings, result, sizes = train_any_band(
        data, bands, epochs=args.epochs, lr=args.lr, seed=args.seed, crop_size=args.crop, init=start.model,
        refit_moments=not args.keep_moments, moment_pixels=args.moment_pixels, baseline=args.baseline,
        crops_per_image=args.crops, select_checkpoint=not args.keep_last, average_epochs=args.average_epochs,
        ssim_weight=args.ssim_weight, flux_weight=args.flux_weight, flux_error=args.flux_error,
        favoured=favoured, favoured_share=args.favour_share if favoured else 0.0, checkpoint_dir=Path(args.runs),
        checkpoint_every=100, progress=False, moments=moments, noise_max_ratio=args.noise_max_ratio,
        noise_share=args.noise_share)
    _, checkpoint = chosen_weights(result, select_checkpoint=not args.keep_last)
    name = args.name or f"{start.name}_kids"
    card = any_band_card(
        data, net, name=name, preset=start.card.preset, scalings=scalings, result=result, sizes=sizes,
        options=dict(seed=args.seed, epochs=args.epochs, batch_size=8, crop_size=args.crop, lr=args.lr,
                     crops_per_image=args.crops, ssim_weight=args.ssim_weight, flux_weight=args.flux_weight,
                     **({"flux_error": args.flux_error} if args.flux_weight else {}), checkpoint=checkpoint,
                     moment_pixels=args.moment_pixels, moment_stamps=args.moment_stamps,
                     **({"favoured": favoured,
                         "favoured_share": args.favour_share} if favoured else {}),
                     moments="kept from init" if args.keep_moments else "refitted",
                     **noise_options(args),
                     recipe=recipe, duration_s=round(time.perf_counter() - started, 1),
                     init={"path": args.init, "recipe": start.card.training.get("recipe"),
                           "init": start.card.training.get("init")}),
        description=fine_tuned_description(start.card.description))
    if args.version is not None:
        card = card.replace(version=args.version)
    translator = AnyBandTranslator(net, card, one_mapping=Translator)
    translator = translator.calibrate(data, indices=calibration, configurations=args.configurations,
                                      n_inputs=n_inputs, fitted_on=calibration_text,
                                      footprint=args.calibration_footprint)
    translator = translator.save(Path(args.out) / name, overwrite=True)
    chosen = f"{checkpoint} {result.best_metric:.4f}" if checkpoint == "best validation SSIM" else checkpoint
    print(f"{name}: {chosen} after {result.steps} steps; written to {Path(args.out) / name}", flush=True)


if __name__ == "__main__":
    main()
