"""Train the shipped models of the zoo and write their cards: the method paper's seven mappings (``ZOO``).

Each model: the mock universe the previous zoo used (1,500 galaxies, seed 0, 128 px,
one view; ideal mode, survey mode for DECam g + z -> r), the `small` preset,
random 64 px crops (``--crop 128``: whole images), resumable checkpoints under ``--runs``; the weights and card go
to ``bandsynth/models/weights/NAME`` (``--out``).  Held-out metrics are added to the
cards afterwards by ``benchmarks/zoo_table.py --write-cards``.

    python benchmarks/train_zoo.py --models nuv_k_to_r_paper g_z_to_r_paper --epochs 8
    python benchmarks/train_zoo.py --fine-tune --epochs 10 --lr 1.5e-4 --seed 1 --runs runs/zoo2ft

Models for observed images (``SKY_ZOO``, issue 15) are trained on the survey layer of the
mock universe (each band as its survey observes it, reprojected onto one grid as
``bandsynth predict --reproject-to`` does) against the noise-free truth.  Their data set
is rendered once into ``--data-cache`` (the data-set store, with truth and masks) and
reopened by reruns and resumed runs:

    python benchmarks/train_zoo.py --models nuv_k_to_r --n-galaxies 1200 --r-mag-range 12 16 \
        --epochs 24 --baseline flux --runs /tmp/survey_runs/bright --data-cache /tmp/survey_runs/data
    python benchmarks/train_zoo.py --survey galex_sdss_2mass --pixel-scale 1.0 --size 64 \
        --inputs NUV Ks --output g --name nuv_k_to_g      # any other survey-layer model
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

ZOO = {
    "nuv_k_to_g_paper": (("NUV", "Ks"), "g", "ideal"),
    "nuv_k_to_r_paper": (("NUV", "Ks"), "r", "ideal"),
    "nuv_k_to_z_paper": (("NUV", "Ks"), "z", "ideal"),
    "g_r_to_u_paper": (("g", "r"), "u", "ideal"),
    "g_r_to_nuv_paper": (("g", "r"), "NUV", "ideal"),
    "g_r_to_fuv_paper": (("g", "r"), "FUV", "ideal"),
    "g_z_to_r_paper": (("DECam_g", "DECam_z"), "DECam_r", "survey"),
}

#: Models for observed images: name -> (inputs, output, survey preset, common pixel scale ["/px]).
#: The grid is the one ``--reproject-to`` gives: the coarsest input's (2MASS Ks 1.0", SDSS
#: frames 0.396", DECaLS 0.262").
SKY_ZOO = {
    "nuv_k_to_g": (("NUV", "Ks"), "g", "galex_sdss_2mass", 1.0),
    "nuv_k_to_r": (("NUV", "Ks"), "r", "galex_sdss_2mass", 1.0),
    "nuv_k_to_z": (("NUV", "Ks"), "z", "galex_sdss_2mass", 1.0),
    "g_r_to_u": (("g", "r"), "u", "galex_sdss_2mass", 0.396),
    "g_r_to_nuv": (("g", "r"), "NUV", "galex_sdss_2mass", 0.396),
    "g_r_to_fuv": (("g", "r"), "FUV", "galex_sdss_2mass", 0.396),
    "g_z_to_r": (("DECam_g", "DECam_z"), "DECam_r", "decals", 0.262),
}

DESCRIPTION_SKY = ("{inputs} -> {output} for observed images (bands {bands}) brought onto one {scale:g}\"/pixel grid "
                   "(e.g. bandsynth predict --reproject-to {grid}); trained on the survey layer of the mock "
                   "universe ({preset} preset: each band at its survey's pixel scale, PSF, depth, sky residual "
                   "and masked pixels, among neighbours and stars; galaxies of r = {lo:g}-{hi:g}) against the "
                   "noise-free truth")


def main(argv=None):
    from bandsynth.nn.losses import FLUX_ERRORS  # here, not at import: it loads torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=None, choices=[*ZOO, *SKY_ZOO],
                        help="models to train (default: the paper's seven, ZOO)")
    parser.add_argument("--epochs", type=int, default=8, help="passes over the 1,200 training galaxies")
    parser.add_argument("--lr", type=float, default=4e-4, help="peak learning rate (cosine schedule)")
    parser.add_argument("--preset", default="small", help="generator preset")
    parser.add_argument("--version", type=int, default=None,
                        help="model version written into the cards (default 2 for ZOO, 5 for the models for observed images: "
                             "versions 1-4 of their names were the paper's models)")
    parser.add_argument("--runs", default="runs/zoo2", help="checkpoint folder (a rerun resumes)")
    parser.add_argument("--out", default="bandsynth/models/weights", help="folder for weights and cards")
    parser.add_argument("--fine-tune", action="store_true",
                        help="start from the weights in --out (a further round of training; the card keeps the chain)")
    parser.add_argument("--res-blocks", type=int, default=None, metavar="N",
                        help="with --fine-tune: deepen the model to N residual blocks first, the added blocks "
                             "starting as identities (ResNetGenerator.deepened)")
    parser.add_argument("--base-width", type=int, default=None, metavar="W",
                        help="with --fine-tune: widen the model to W channels after the stem first, the added "
                             "channels reaching the old ones through zero weights (ResNetGenerator.widened)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data order and augmentation")
    parser.add_argument("--stretch", type=float, default=50.0, help="scaling maximum / softening of every band")
    parser.add_argument("--baseline", default="auto", choices=("auto", "flux", "scaled"),
                        help="the colour model the network corrects (auto: whichever fits the training pixels)")
    parser.add_argument("--flux-weight", type=float, default=0.0,
                        help="weight of the loss term on each crop's total flux")
    parser.add_argument("--flux-error", choices=FLUX_ERRORS, default="total",
                        help="what the photometric term compares (bandsynth.nn.losses.BandLoss's flux_error)")
    parser.add_argument("--ssim-weight", type=float, default=1.0, help="weight of the (1 - SSIM) term of the loss")
    parser.add_argument("--crop", type=int, default=None,
                        help="training crop side [px] (default: 64, or --size if smaller; 128 is a whole paper-model image)")
    parser.add_argument("--average-epochs", type=int, default=None, metavar="N",
                        help="keep the mean of the weights at the ends of the last N epochs instead of the epoch "
                             "with the best validation SSIM")
    parser.add_argument("--calibrate-only", action="store_true",
                        help="keep the weights in --out, fit their uncertainty calibration again (with --version: "
                             "saved as that version)")
    parser.add_argument("--calibration-galaxies", type=int, default=400,
                        help="fresh mock galaxies (never trained on) the uncertainty is calibrated on")
    parser.add_argument("--calibration-seed", type=int, default=101, help="seed of those galaxies' universe")
    parser.add_argument("--sigma-head-galaxies", type=int, default=0, metavar="N",
                        help="before calibrating, train the sigma head again on N fresh mock galaxies (trunk fixed; "
                             "0: keep the head trained with the network)")
    parser.add_argument("--sigma-head-seed", type=int, default=202, help="seed of those galaxies' universe")
    sky = parser.add_argument_group("survey-layer models (SKY_ZOO, or any with --survey)")
    sky.add_argument("--survey", help="survey preset of a model not in SKY_ZOO (e.g. galex_sdss_2mass)")
    sky.add_argument("--inputs", nargs="+", help="input bands of that model")
    sky.add_argument("--output", help="output band of that model")
    sky.add_argument("--name", help="its name (default <inputs>_to_<output>)")
    sky.add_argument("--pixel-scale", type=float, help="common grid [arcsec/px] (default: SKY_ZOO's, else 1.0)")
    sky.add_argument("--size", type=int, default=64, help="image side [px] of the survey-layer data set")
    sky.add_argument("--n-galaxies", type=int, default=1500, help="galaxies of the survey-layer data set")
    sky.add_argument("--r-mag-range", type=float, nargs=2, default=(12.0, 16.0), metavar=("BRIGHT", "FAINT"),
                     help="r magnitudes of the survey-layer galaxies (default 12-16: about the galaxies of the "
                          "2MASS extended-source catalogue, Ks < 13.5 Vega; the survey layer's own counts run to "
                          "r = 21.5, where 2MASS sees only noise)")
    sky.add_argument("--family", default="default",
                     help="physics family of the mock galaxies (bandsynth.datasets.mock.families, e.g. broad)")
    sky.add_argument("--redshift", action="store_true",
                     help="observe the galaxies at redshifts drawn from their magnitudes (make_dataset(redshift=True))")
    sky.add_argument("--depth-offset", type=float, default=0.0, metavar="MAG",
                     help="shift every band's depth by MAG magnitudes (negative: shallower, noisier images; "
                          "make_dataset(depth_offset=...))")
    sky.add_argument("--grid-offsets", type=float, default=0.0, metavar="P",
                     help="offset each band's native grid from the common one by a random fraction of a pixel with "
                          "probability P, so that reprojection smooths its noise as a user's does "
                          "(make_dataset(grid_offsets=...))")
    sky.add_argument("--data-cache", default="runs/data",
                     help="folder of rendered survey-layer data sets (reopened, never rendered twice)")
    args = parser.parse_args(argv)
    if args.sigma_head_galaxies and args.sigma_head_seed == args.calibration_seed:
        parser.error(f"--sigma-head-seed {args.sigma_head_seed}: expected another seed than --calibration-seed "
                     "(the calibration needs other galaxies than the sigma head)")
    for option, value in (("--res-blocks", args.res_blocks), ("--base-width", args.base_width)):
        if value is not None and not args.fine_tune:
            parser.error(f"{option} grows the model fine-tuning starts from: it needs --fine-tune")

    from bandsynth import Translator
    from bandsynth.datasets import make_dataset

    command = "python benchmarks/train_zoo.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    for name, job in jobs(args).items():
        inputs, output = job["inputs"], job["output"]
        started = time.perf_counter()
        if args.calibrate_only:
            translator = Translator.load(Path(args.out) / name)
            translator = calibrate_on_fresh_galaxies(refit_sigma_head(translator, args, command), args, command)
            if args.version is not None:
                translator = Translator(translator.model, translator.card.replace(version=args.version))
            translator.save(Path(args.out) / name, overwrite=True)
            report(name, translator, started)
            continue
        if job["survey"] is None:
            data = make_dataset(1500, seed=0, mode=job["mode"], bands=[*inputs, output], size=128, views=1,
                                progress=False)
        else:
            data = survey_dataset(job, args)
        translator = Translator.fit(
            data, inputs=inputs, output=output, name=name, preset=args.preset, epochs=args.epochs, lr=args.lr,
            crop_size=job["crop"], batch_size=8, seed=args.seed, checkpoint_dir=Path(args.runs) / name,
            checkpoint_every=200,
            progress=False, recipe=command, description=job["description"],
            init=fine_tune_start(name, args), stretch=args.stretch, baseline=args.baseline,
            flux_weight=args.flux_weight, flux_error=args.flux_error, ssim_weight=args.ssim_weight,
            average_epochs=args.average_epochs, calibrate=False,
        )
        translator = calibrate_on_fresh_galaxies(refit_sigma_head(translator, args, command), args, command)
        translator = Translator(translator.model, translator.card.replace(version=job["version"]))
        translator.save(Path(args.out) / name, overwrite=True)
        report(name, translator, started)


def fine_tune_start(name, args):
    """The model fine-tuning starts from (None without ``--fine-tune``): ``--out``'s, deepened to
    ``--res-blocks`` and widened to ``--base-width`` into the run's folder (a resumed run grows the same
    weights again: the added channels' initialisation is seeded by ``--seed``)."""
    import torch

    from bandsynth import Translator

    if not args.fine_tune:
        return None
    start = Path(args.out) / name
    if args.res_blocks is None and args.base_width is None:
        return start
    shipped = Translator.load(start)
    model = shipped.model if args.res_blocks is None else shipped.model.deepened(args.res_blocks)
    if args.base_width is not None:
        torch.manual_seed(args.seed)
        model = model.widened(args.base_width)
    grown = Path(args.runs) / name / "grown" / name
    Translator(model, shipped.card).save(grown, overwrite=True)
    return grown


def jobs(args):
    """``{name: job}``: what to train, from ``--models`` or from ``--survey`` with ``--inputs/--output``."""
    from bandsynth.bands import get_band

    out = {}
    if args.survey is not None:
        if not args.inputs or not args.output:
            raise SystemExit("--survey needs --inputs and --output")
        inputs, output = tuple(get_band(b).name for b in args.inputs), get_band(args.output).name
        name = args.name or f"{'_'.join(b.lower() for b in inputs)}_to_{output.lower()}"
        out[name] = _sky_job(inputs, output, args.survey, 1.0 if args.pixel_scale is None else args.pixel_scale, args)
    for name in args.models or ([] if out else list(ZOO)):
        if name in SKY_ZOO:
            inputs, output, survey, scale = SKY_ZOO[name]
            out[name] = _sky_job(inputs, output, survey, scale if args.pixel_scale is None else args.pixel_scale,
                                 args)
        else:
            inputs, output, mode = ZOO[name]
            out[name] = {"inputs": inputs, "output": output, "mode": mode, "survey": None, "crop": args.crop or 64,
                         "version": 2 if args.version is None else args.version,
                         "description": f"{' + '.join(inputs)} -> {output}, {mode}-mode mock universe"}
    return out


def _sky_job(inputs, output, survey, scale, args):
    from bandsynth.datasets.mock import resolve_survey

    specs = {sb.band: sb for sb in resolve_survey(survey, [*inputs, output])}

    def label(band):  # "KiDS g" for KiDS_g, "SDSS g" for g
        return f"{specs[band].survey} {band.rsplit('_', 1)[-1]}"

    grid = min(inputs, key=lambda b: abs(specs[b].pixel_scale - scale))  # the input whose grid it is
    description = DESCRIPTION_SKY.format(inputs=" + ".join(label(b) for b in inputs), output=label(output),
                                         bands=", ".join(inputs), scale=scale,
                                         grid=grid, preset=survey, lo=args.r_mag_range[0],
                                         hi=args.r_mag_range[1])
    if args.family != "default":
        spectra = "stellar spectra of Bruzual & Charlot (2003), " if args.family == "bc03" else ""
        description += f"; {spectra}physics family {args.family!r}"
    if args.redshift:
        description += "; galaxies at redshifts drawn from their magnitudes"
    if args.depth_offset:
        description += f"; every band's depth shifted by {args.depth_offset:+g} mag"
    if args.grid_offsets:
        description += f"; each band's grid offset by a random fraction of a pixel with probability {args.grid_offsets:g}"
    return {"inputs": inputs, "output": output, "mode": "survey", "survey": survey, "pixel_scale": float(scale),
            "size": args.size, "n_galaxies": args.n_galaxies, "r_mag_range": tuple(args.r_mag_range),
            "crop": args.crop or min(64, args.size),
            "version": 5 if args.version is None else args.version, "description": description}


def survey_dataset(job, args):
    """The job's survey-layer data set, rendered once into ``--data-cache`` and reopened afterwards."""
    from bandsynth.datasets import open_dataset
    from bandsynth.datasets.store import write_mock_dataset

    bands = [*job["inputs"], job["output"]]
    lo, hi = job["r_mag_range"]
    key = (f"{job['survey']}_{'_'.join(bands)}_{job['pixel_scale']:g}as_{job['size']}px_r{lo:g}-{hi:g}_"
           f"{job['n_galaxies']}" + ("" if args.family == "default" else f"_{args.family}")
           + ("_z" if args.redshift else "") + (f"_depth{args.depth_offset:+g}" if args.depth_offset else "")
           + (f"_offsets{args.grid_offsets:g}" if args.grid_offsets else ""))
    path = Path(args.data_cache) / key
    if path.exists():
        print(f"reusing the rendered data set {path}", flush=True)
        return open_dataset(path)
    started = time.perf_counter()
    data = write_mock_dataset(path, job["n_galaxies"], seed=0, survey=job["survey"], bands=bands, size=job["size"],
                              pixel_scale=job["pixel_scale"], r_mag_range=job["r_mag_range"], family=args.family,
                              redshift=args.redshift, depth_offset=args.depth_offset,
                              grid_offsets=args.grid_offsets, progress=False)
    print(f"rendered {len(data)} survey-layer galaxies into {path} in {time.perf_counter() - started:.0f} s",
          flush=True)
    return data


def refit_sigma_head(translator, args, command):
    """With ``--sigma-head-galaxies N``: the translator with its sigma head trained on N fresh galaxies.

    Another seed than the calibration's, so the head and the temperatures are fitted on
    different galaxies, neither used for training nor for choosing the checkpoint.
    """
    from bandsynth.evaluation import card_dataset
    from bandsynth.uncertainty.fitting import fit_sigma_head

    n, seed = args.sigma_head_galaxies, args.sigma_head_seed
    if not n:
        return translator
    fresh = card_dataset(translator.card, progress=False, seed=seed, n_galaxies=n)
    return fit_sigma_head(translator, fresh, indices=range(len(fresh)), recipe=command,
                          fitted_on=f"{n} fresh mock galaxies of the training universe (seed {seed}), used neither "
                                    "for training, nor for choosing the checkpoint, nor for the calibration")


def calibrate_on_fresh_galaxies(translator, args, command):
    """The translator calibrated on ``--calibration-galaxies`` new galaxies of its training universe.

    Fresh galaxies (another seed) are used neither for training nor for choosing the
    checkpoint, and there can be more of them than the validation split's calibration half
    (75 galaxies): the per-galaxy errors are correlated over a galaxy's pixels, so the
    number of galaxies sets how well the coverage is pinned down.
    """
    from bandsynth.evaluation import card_dataset

    n, seed = args.calibration_galaxies, args.calibration_seed
    fresh = card_dataset(translator.card, progress=False, seed=seed, n_galaxies=n)
    calibrated = translator.calibrate(
        fresh, indices=range(len(fresh)),
        fitted_on=f"{n} fresh mock galaxies of the training universe (seed {seed}), used neither for training "
                  "nor for choosing the checkpoint")
    training = {**calibrated.card.training, "n_calibration": n, "calibration_recipe": command}
    return type(translator)(calibrated.model, calibrated.card.replace(training=training))


def report(name, translator, started):
    """One line: time, validation SSIM and the coverage each calibration reached."""
    calibration = "; ".join(
        f"{config} {entry['distribution']} {entry['coverage_1sigma']:.3f}/{entry['coverage_2sigma']:.3f}"
        for config, entry in translator.card.calibration.items()
    )
    print(f"{name}: {time.perf_counter() - started:.0f} s, validation SSIM "
          f"{translator.card.training['best_validation_ssim']:.4f}, calibration (1/2 sigma) {calibration}", flush=True)


if __name__ == "__main__":
    main()
