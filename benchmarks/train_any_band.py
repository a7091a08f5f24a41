"""Train an any-band model (`bandsynth.nn.any_band.AnyBandNet`) on the mock universe.

The data set is the universe the paper reproductions were trained on (1,500 galaxies,
seed 0, 128 px, one view, ideal mode) rendered in every band of ``--bands`` into
``--data-cache`` once, or with ``--survey`` the survey layer of that preset (each band
at its survey's pixel scale, PSF, depth and sky, brought onto one ``--pixel-scale`` grid;
trained against the noise-free truth); each training crop comes with a random request (a wanted band
and a random subset of the others at hand).  Checkpoints go to ``--runs``: a rerun
resumes, and once training is done it only writes the result.

    python benchmarks/train_any_band.py --epochs 40 --runs /tmp/any/runs --data-cache /tmp/any/data \
        --out /tmp/any/out
    python benchmarks/train_any_band.py --survey kids_viking --bands u g r i Z Y J H Ks --pixel-scale 0.2 \
        --size 96 --n-galaxies 2000 --r-mag-range 15 20.5 --name any_band_kids_viking ...

``--favour IN,IN:OUT ...`` gives a share (``--favour-share``) of the training crops those
requests and calibrates each of them on its own; ``--calibrate-only --init MODEL``
calibrates a saved model afresh without training.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from bandsynth.nn.any_band import BASELINES
from bandsynth.nn.losses import FLUX_ERRORS

#: The bands of the paper's ideal-mode mappings and those between them.
BANDS = ("FUV", "NUV", "u", "g", "r", "i", "z", "J", "H", "Ks")


def add_noise_options(parser, *, than):
    """``--noise-max-ratio`` and ``--noise-share``: depth tags, and inputs made noisier at random in training."""
    parser.add_argument("--noise-max-ratio", type=float, metavar="R",
                        help=f"teach the network to read inputs up to R times noisier than {than}: depth tags, "
                             "and --noise-share of the bands at hand given noise at random in training")
    parser.add_argument("--noise-share", type=float, default=0.5,
                        help="with --noise-max-ratio: the share of the bands at hand made noisier (default 0.5)")


def noise_options(args):
    """What the card's ``training`` records of ``--noise-max-ratio`` and ``--noise-share`` (nothing without them)."""
    return {"noise_max_ratio": args.noise_max_ratio, "noise_share": args.noise_share} if args.noise_max_ratio else {}


def check_worsening(parser, args, kinds):
    """Stop with a parser error unless each of ``kinds`` ("psf", "noise") has a ratio > 1 (or none) and a share in
    [0, 1]."""
    for kind in kinds:
        ratio, share = getattr(args, f"{kind}_max_ratio"), getattr(args, f"{kind}_share")
        if ratio is not None and not ratio > 1.0:
            parser.error(f"--{kind}-max-ratio must be > 1, got {ratio}")
        if not 0.0 <= share <= 1.0:
            parser.error(f"--{kind}-share must be in [0, 1], got {share}")


def favoured_request(text):
    """``"NUV,Ks:r"`` -> ``(("NUV", "Ks"), "r")``: one value of ``--favour``."""
    bands_in, sep, out = text.partition(":")
    if not sep or not bands_in or not out or "," in out:
        raise argparse.ArgumentTypeError(f"expected BANDS_AT_HAND:WANTED_BAND such as NUV,Ks:r, got {text!r}")
    return tuple(bands_in.split(",")), out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bands", nargs="+", default=list(BANDS), help="the bands the model reads and writes")
    parser.add_argument("--n-galaxies", type=int, default=1500, help="galaxies of the mock data set")
    parser.add_argument("--size", type=int, default=128, help="image side [px]")
    parser.add_argument("--crop", type=int, default=64, help="training crop side [px]")
    parser.add_argument("--preset", default="small", help="generator preset")
    parser.add_argument("--epochs", type=int, default=40, help="passes over the training galaxies")
    parser.add_argument("--lr", type=float, default=2e-4, help="peak learning rate (cosine schedule)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights, data order and requests")
    parser.add_argument("--max-inputs", type=int, default=None, help="at most this many bands at hand per request")
    parser.add_argument("--runs", default="runs/any_band", help="checkpoint folder (a rerun resumes)")
    parser.add_argument("--data-cache", default="runs/data", help="folder of rendered data sets")
    parser.add_argument("--out", default="runs/any_band_out", help="folder for the weights and card")
    parser.add_argument("--name", default="any_band_ideal", help="model name")
    parser.add_argument("--survey", help="render this survey preset's layer (e.g. kids_viking) instead of ideal mocks")
    parser.add_argument("--pixel-scale", type=float, help="common grid of --survey [arcsec/px]")
    parser.add_argument("--r-mag-range", type=float, nargs=2, help="r magnitudes of the --survey galaxies")
    parser.add_argument("--family", default="default",
                        help="physics family of the mock galaxies (bandsynth.datasets.mock.families, e.g. bc03)")
    parser.add_argument("--redshift", action="store_true",
                        help="with --survey: galaxies at redshifts drawn from their magnitudes")
    parser.add_argument("--moment-pixels", choices=["all", "sources"],
                        help="pixels the colour models are fitted on (default: sources with --survey, else all)")
    parser.add_argument("--baseline", choices=BASELINES,
                        help="every request's colour model: linear in the scaled units (the default of a new "
                             "model) or in flux; --init keeps its own unless --refit-moments")
    parser.add_argument("--flux-weight", type=float, default=0.0,
                        help="weight of the loss's photometric term (relative error of each crop's total flux)")
    parser.add_argument("--flux-error", choices=FLUX_ERRORS, default="total",
                        help="what the photometric term compares: each crop's total flux, its pixels' fluxes or their "
                             "squares")
    parser.add_argument("--average-epochs", type=int,
                        help="keep the mean of the weights at the ends of the last this many epochs")
    parser.add_argument("--favour", nargs="+", type=favoured_request, default=[], metavar="IN,IN:OUT",
                        help="requests drawn more often than uniformly, e.g. NUV,Ks:r g,r:u")
    parser.add_argument("--favour-share", type=float, default=0.5,
                        help="with --favour: the share of training crops whose request is one of them")
    parser.add_argument("--calibration-n-inputs", nargs="*", type=int, metavar="N",
                        help="numbers of bands at hand calibrated besides every other band, on random requests "
                             "(default: each from 1 to one fewer than the other bands; the option without "
                             "numbers: none)")
    parser.add_argument("--configurations", nargs="+", choices=("plain", "tta", "mc", "tta+mc"),
                        help="the predict configurations to calibrate (default: every one the data allow; "
                             "tta costs eight times plain)")
    parser.add_argument("--calibrate-only", action="store_true",
                        help="keep --init's weights and only calibrate it afresh (every band, --calibration-n-inputs, "
                             "each --favour request on its own)")
    parser.add_argument("--init", help="continue from this saved any-band model (same bands; a new schedule)")
    parser.add_argument("--film", action="store_true",
                        help="modulate the trunk's features by the request (with --init: added to its network, "
                             "starting as the identity)")
    parser.add_argument("--psf-max-ratio", type=float, metavar="R",
                        help="teach the network to read inputs whose PSF is up to R times broader than the data's: "
                             "PSF tags, and --psf-share of the bands at hand blurred at random in training")
    parser.add_argument("--psf-share", type=float, default=0.5,
                        help="with --psf-max-ratio: the share of the bands at hand blurred (default 0.5)")
    parser.add_argument("--psf-joint", action="store_true",
                        help="with --psf-max-ratio: blur all the bands at hand of a crop to one ratio (with "
                             "probability --psf-share)")
    add_noise_options(parser, than="the data's")
    parser.add_argument("--refit-moments", action="store_true",
                        help="with --init: solve the colour models afresh from the data, of the kind --baseline "
                             "names (another kind than the init's starts its correction at zero)")
    args = parser.parse_args(argv)
    if not 0.0 <= args.favour_share <= 1.0:
        parser.error(f"--favour-share must be in [0, 1], got {args.favour_share}")
    if args.refit_moments and args.init is None:
        parser.error("--refit-moments refits the colour models of --init: give --init")
    if args.psf_joint and args.psf_max_ratio is None:
        parser.error("--psf-joint blurs the bands at hand together: give --psf-max-ratio")
    check_worsening(parser, args, ("psf", "noise"))
    if args.calibrate_only and args.init is None:
        parser.error("--calibrate-only calibrates --init afresh: give --init")

    from bandsynth import Translator
    from bandsynth.any_band_translator import AnyBandTranslator
    from bandsynth.nn.any_band_recipe import any_band_card, train_any_band

    data, universe = open_or_render(args)
    bands = [band.name for band in data.bands]  # registry names: a survey's "r" is stored as e.g. KiDS_r
    init = None if args.init is None else Translator.load(args.init)
    recipe = "python benchmarks/train_any_band.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.calibrate_only:
        card = init.card.replace(name=args.name, training={**init.card.training, "calibration_recipe": recipe})
        calibrate_and_save(init.replace(card=card), data, args)
        print(f"{args.name}: calibrated afresh; written to {Path(args.out) / args.name}", flush=True)
        return
    started = time.perf_counter()
    net, scalings, result, sizes = train_any_band(
        data, bands, preset=args.preset, epochs=args.epochs, lr=args.lr, seed=args.seed, crop_size=args.crop,
        max_inputs=args.max_inputs, checkpoint_dir=Path(args.runs), checkpoint_every=200, progress=False,
        moment_pixels=args.moment_pixels or ("all" if args.survey is None else "sources"),
        baseline=args.baseline, flux_weight=args.flux_weight, flux_error=args.flux_error,
        average_epochs=args.average_epochs, refit_moments=args.refit_moments, favoured=args.favour,
        favoured_share=args.favour_share if args.favour else 0.0, film=args.film,
        psf_max_ratio=args.psf_max_ratio, psf_share=args.psf_share, psf_joint=args.psf_joint,
        noise_max_ratio=args.noise_max_ratio, noise_share=args.noise_share, init=None if init is None else init.model)
    card = any_band_card(data, net, name=args.name, preset=args.preset, scalings=scalings, result=result, sizes=sizes,
                         options=dict(seed=args.seed, epochs=args.epochs, batch_size=8, crop_size=args.crop,
                                      lr=args.lr, stretch=50.0, max_inputs=args.max_inputs, recipe=recipe,
                                      flux_weight=args.flux_weight,
                                      **({"flux_error": args.flux_error} if args.flux_weight else {}),
                                      average_epochs=args.average_epochs,
                                      **({"favoured": args.favour,
                                          "favoured_share": args.favour_share} if args.favour else {}),
                                      **({"psf_max_ratio": args.psf_max_ratio, "psf_share": args.psf_share,
                                          **({"psf_joint": True} if args.psf_joint else {})}
                                         if args.psf_max_ratio else {}),
                                      **noise_options(args),
                                      **({} if init is None else {
                                          "moments": "refitted" if args.refit_moments else "kept from init",
                                          "init": {"path": args.init, "recipe": init.card.training.get("recipe"),
                                                   "init": init.card.training.get("init")}}),
                                      duration_s=round(time.perf_counter() - started, 1)),
                         description=f"any of {', '.join(bands)} from any subset of the others, on {universe}")
    calibrate_and_save(AnyBandTranslator(net, card, one_mapping=Translator), data, args)
    print(f"{args.name}: best validation SSIM {result.best_metric:.4f} after {result.steps} steps; "
          f"written to {Path(args.out) / args.name}", flush=True)


def open_or_render(args):
    """The data set of ``--data-cache`` (rendered there first if missing) and a description of its universe."""
    from bandsynth.datasets import open_dataset
    from bandsynth.datasets.store import write_mock_dataset

    if args.survey is None:
        if args.redshift:
            raise SystemExit("--redshift needs --survey (ideal mock galaxies are seen in their rest frame)")
        path = Path(args.data_cache) / f"ideal_{'_'.join(args.bands)}_{args.size}px_{args.n_galaxies}"
        render = dict(mode="ideal")
        universe = "ideal mock galaxies (the universe of the paper reproductions)"
    else:
        lo, hi = args.r_mag_range or (14.0, 18.0)
        scale = 0.262 if args.pixel_scale is None else args.pixel_scale
        path = (Path(args.data_cache) / f"{args.survey}_{'_'.join(args.bands)}_{scale:g}as_{args.size}px_"
                                        f"r{lo:g}-{hi:g}_{args.n_galaxies}")
        render = dict(survey=args.survey, pixel_scale=scale, r_mag_range=(lo, hi), redshift=args.redshift)
        universe = (f"the survey layer of the mock universe ({args.survey} preset on one {scale:g}\"/pixel grid, "
                    f"galaxies of r = {lo:g}-{hi:g}{' at redshifts drawn from their magnitudes' * args.redshift}) "
                    "against the noise-free truth")
        path = path.with_name(path.name + "_z" * args.redshift)
    if args.family != "default":
        path = path.with_name(f"{path.name}_{args.family}")
        render["family"] = args.family
        universe += f", physics family {args.family!r}"
    if path.exists():
        data = open_dataset(path)
    else:
        started = time.perf_counter()
        data = write_mock_dataset(path, args.n_galaxies, seed=0, bands=args.bands, size=args.size, progress=False,
                                  **render)
        print(f"rendered {len(data)} galaxies into {path} in {time.perf_counter() - started:.0f} s", flush=True)
    return data, universe


def calibrate_and_save(translator, data, args):
    """Calibrate every band (from all the others, per number of bands at hand, and each ``--favour``
    request on its own) on the validation half left for calibration, and write the model to ``--out``."""
    from bandsynth.nn.recipe import CALIBRATION_HALF, split_validation

    _, calibration = split_validation(data, calibrate=True)
    # with input noise (the survey layer) predict draws it by Monte Carlo: those configurations need a calibration too
    configurations = ("plain", "tta", "mc", "tta+mc") if data.has_uncertainty else ("plain", "tta")
    if args.configurations:
        impossible = sorted(set(args.configurations) - set(configurations))
        if impossible:
            raise SystemExit(f"--configurations {' '.join(impossible)}: the inputs carry no noise here, so only "
                             f"{' and '.join(configurations)} can be calibrated")
        configurations = tuple(c for c in configurations if c in args.configurations)
    n_inputs = "all" if args.calibration_n_inputs is None else args.calibration_n_inputs
    translator = translator.calibrate(data, indices=calibration, configurations=configurations, n_inputs=n_inputs,
                                      requests=args.favour, fitted_on=CALIBRATION_HALF)
    return translator.save(Path(args.out) / args.name, overwrite=True)


if __name__ == "__main__":
    main()
