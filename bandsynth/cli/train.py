"""``bandsynth train``: train a model on the mock universe or a stored data set."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ._common import Once, UsageError, add_overwrite, add_quiet, at_least, check_output_folder, positive_float

log = logging.getLogger("bandsynth.cli")

# bandsynth.nn.generator.PRESETS and bandsynth.datasets.mock.families.FAMILIES, spelt out: building the
# parser must not import torch or the mock universe (tests/test_cli.py keeps them equal)
PRESET_NAMES = ("paper", "small", "tiny")
FAMILY_NAMES = ("default", "smc_dust", "mw_dust", "nebular", "bc03", "broad")


#: Steps between checkpoints when --checkpoint-every is not given.
CHECKPOINT_EVERY = 200

#: The mock universe's options and their defaults (they do nothing for a stored data set).
MOCK_OPTIONS = {"n_galaxies": 1000, "data_seed": 0, "mode": "ideal", "size": 128, "views": 2, "family": "default"}


def mock_or_stored(args, bands):
    """The data set a command names: ``mock`` (built on the fly) or a stored directory holding ``bands``."""
    if args.data == "mock":
        from ..datasets import make_dataset

        return make_dataset(
            args.n_galaxies, seed=args.data_seed, mode=args.mode, bands=bands, size=args.size,
            views=args.views, progress=not args.quiet, family=args.family,
        )
    from ..bands import get_band
    from ..datasets import open_dataset

    if not Path(args.data).is_dir():
        what = "a file, not a data set folder" if Path(args.data).exists() else "no such data set folder"
        raise UsageError(f"--data {args.data}: {what} (give a folder written by `bandsynth mock`, or 'mock' for "
                         "the built-in mock universe)")
    ignored = [f"--{k.replace('_', '-')}" for k, v in MOCK_OPTIONS.items() if getattr(args, k) != v]
    if ignored:
        log.warning("%s: for --data mock only; the data set %s is used as it was written", ", ".join(ignored),
                    args.data)
    data = open_dataset(args.data)
    missing = [b for b in bands if get_band(b).name not in data.names]
    if missing:
        raise UsageError(f"--data {args.data}: the data set has bands {', '.join(data.names)}; "
                         f"no {', '.join(missing)}")
    return data


def add_data_options(parser):
    """``--data`` and the options of the mock universe built on the fly (train, evaluate)."""
    data = parser.add_argument_group("data")
    data.add_argument("--data", action=Once, default="mock", metavar="mock|FOLDER",
                      help="'mock' (the built-in mock universe, made on the fly) or a data set folder written by "
                           "`bandsynth mock` (default: mock)")
    data.add_argument("--n-galaxies", action=Once, type=at_least(1), default=1000, metavar="N", help="mock: number of galaxies (default: 1000)")
    data.add_argument("--data-seed", action=Once, type=int, default=0, metavar="SEED", help="mock: seed of the universe (default: 0)")
    data.add_argument("--mode", action=Once, choices=("ideal", "survey"), default="ideal",
                      help="mock: observing mode, ideal (common PSF, no noise) or survey (default: ideal)")
    data.add_argument("--size", action=Once, type=at_least(4), default=128, metavar="PIXELS", help="mock: image side in pixels (default: 128)")
    data.add_argument("--views", action=Once, type=at_least(1), default=2, metavar="N", help="mock: viewing angles per galaxy (default: 2)")
    data.add_argument("--family", action=Once, default="default", choices=FAMILY_NAMES,
                      help="mock: physics family (default: default)")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "train", help="train a model on the mock universe or a stored data set",
        description="Train a band-translation model and write it as STEM.safetensors + STEM.json (its card). "
                    "--inputs and --output name bands here, as in the model card and in the recipes the "
                    "shipped cards record; --out names the model files.",
    )
    p.add_argument("--inputs", action=Once, nargs="+", required=True, metavar="BAND", help="input bands, e.g. NUV K")
    p.add_argument("--output", action=Once, required=True, metavar="BAND", help="band to predict, e.g. r")
    p.add_argument("--name", action=Once, help="model name (default: <inputs>_to_<output>)")
    p.add_argument("--out", action=Once, required=True, metavar="STEM",
                   help="where the model goes: writes STEM.safetensors and STEM.json")
    p.add_argument("--preset", action=Once, default="small", choices=PRESET_NAMES, help="generator preset (default: small)")
    p.add_argument("--epochs", action=Once, type=at_least(1), default=20, metavar="N", help="passes over the training split (default: 20)")
    p.add_argument("--batch-size", action=Once, type=at_least(1), default=8, metavar="N", help="images per optimizer step (default: 8)")
    p.add_argument("--crop", action=Once, type=at_least(0), default=64, metavar="PIXELS",
                   help="side of the random training crops, 0 for full images (default: 64)")
    p.add_argument("--init", action=Once, metavar="MODEL", help="start from this saved model's weights (fine-tuning)")
    p.add_argument("--lr", action=Once, type=positive_float, default=2e-4, help="learning rate of the Adam optimizer (default: 2e-4)")
    p.add_argument("--seed", action=Once, type=int, default=0,
                   help="seed of the weights' initialisation, crops and batch order (default: 0)")
    p.add_argument("--max-steps", action=Once, type=at_least(1), metavar="N", help="stop after this many optimizer steps")
    p.add_argument("--ssim-weight", action=Once, type=float, default=1.0, metavar="W",
                   help="weight of the loss's (1 - SSIM) term; 0 for observed (noisy) target images (default: 1)")
    p.add_argument("--flux-weight", action=Once, type=float, default=0.0, metavar="W",
                   help="weight of the loss's photometric term, the relative error of each crop's total flux "
                        "(default: 0)")
    # bandsynth.nn.losses.FLUX_ERRORS, spelt out: building the parser must not import torch
    p.add_argument("--flux-error", action=Once, choices=("total", "pixel", "squared"), default="total",
                   help="what the photometric term compares: each crop's total flux, its pixels' absolute flux "
                        "errors, or their root sum of squares, which aims at each pixel's mean flux (default: total)")
    p.add_argument("--keep-last", action="store_true",
                   help="keep the last weights instead of the epoch with the best validation SSIM (which hardly "
                        "ranks them against noisy targets); the whole validation split then calibrates")
    p.add_argument("--average-epochs", action=Once, type=int, metavar="N",
                   help="keep the mean of the weights at the ends of the last N epochs (stochastic weight "
                        "averaging) instead of one epoch's")
    p.add_argument("--checkpoint-dir", action=Once, metavar="FOLDER", help="resumable checkpoints go here (a rerun continues)")
    p.add_argument("--checkpoint-every", action=Once, type=at_least(1), metavar="N",
                   help=f"with --checkpoint-dir: steps between checkpoints (default: {CHECKPOINT_EVERY})")
    p.add_argument("--description", action=Once, default="", help="free text for the model card")
    p.add_argument("--recipe", action=Once, help="command recorded in the card (default: this command line)")
    p.add_argument("--evaluate", action="store_true", help="measure held-out metrics into the card")
    add_overwrite(p, help="replace existing model files")
    add_quiet(p)
    add_data_options(p)
    p.set_defaults(func=run)
    return p


def check_checkpoint_options(args):
    """Refuse, before any work, a --checkpoint-dir that is a file and a --checkpoint-every without a folder."""
    if args.checkpoint_dir is None:
        if args.checkpoint_every is not None:  # it would silently write no checkpoint at all
            raise UsageError(f"--checkpoint-every {args.checkpoint_every}: needs --checkpoint-dir (the folder the "
                             "checkpoints go to)")
        return
    if Path(args.checkpoint_dir).exists() and not Path(args.checkpoint_dir).is_dir():
        raise UsageError(f"--checkpoint-dir {args.checkpoint_dir}: a file, not a folder; give the folder the "
                         "checkpoints go to (created if needed)")
    try:
        check_output_folder(args.checkpoint_dir)
    except UsageError as err:
        raise UsageError(f"--checkpoint-dir {args.checkpoint_dir}: {err}") from None


def check_crop(args, shape):
    """Refuse a --crop the network cannot take (not a multiple of its down-sampling) or larger than the images."""
    from ..nn.generator import PRESETS

    multiple = 2 ** PRESETS[args.preset]["n_down"]
    if args.crop % multiple:
        below = args.crop - args.crop % multiple
        raise UsageError(f"--crop {args.crop}: the {args.preset} preset needs a multiple of {multiple} pixels "
                         f"(e.g. {below or multiple} or {below + multiple}), or 0 for whole images")
    if args.crop and args.crop > min(shape):
        raise UsageError(f"--crop {args.crop}: larger than the data set's {shape[0]} x {shape[1]} pixel "
                         f"images; at most {min(shape)}, or 0 for whole images")


def check_validation_split(args, data):
    """Refuse a data set whose validation split cannot both choose the checkpoint and calibrate, naming the flags.

    The command always calibrates; `bandsynth.nn.recipe.split_validation` says the same in Python's words
    (``calibrate=False``), which the command line has no option for.
    """
    n = len(data.indices("validation"))
    if n == 0:
        raise UsageError(f"--data {args.data}: the data set has no validation images, which calibrate the model's "
                         "uncertainty (and choose its checkpoint); write it with a validation split")
    if n == 1 and not args.keep_last:
        raise UsageError(f"--data {args.data}: the data set has 1 validation image; choosing the checkpoint on one "
                         "half of the validation split and calibrating on the other needs at least 2: pass "
                         "--keep-last (the last weights are kept and the image calibrates), or write the data set "
                         "with more validation images")


def run(args) -> int:
    import shlex

    from ..bands import get_band

    out = Path(args.out)
    if out.is_dir() or args.out.endswith(("/", os.sep)):
        raise UsageError(f"--out {args.out}: a folder; give the model's STEM inside it (writes STEM.safetensors and "
                         f"STEM.json), e.g. --out {out / 'my_model'}")
    for flag, value in (("--ssim-weight", args.ssim_weight), ("--flux-weight", args.flux_weight)):
        if not value >= 0 or value == float("inf"):
            raise UsageError(f"{flag} {value}: expected a finite weight >= 0")
    if args.average_epochs is not None and not 1 <= args.average_epochs <= args.epochs:
        raise UsageError(f"--average-epochs {args.average_epochs}: expected 1 to --epochs ({args.epochs})")
    try:
        for band in [*args.inputs, args.output]:
            get_band(band)
    except ValueError as err:
        raise UsageError(str(err)) from None
    from ..models.zoo import model_files

    weights_file, card_file = model_files(out)  # suffixes appended: --out runs/r_0.262as keeps its dot
    for path in (weights_file, card_file):
        if path.exists() and not args.overwrite:
            raise UsageError(f"output {path} exists; pass --overwrite to replace it")
    check_output_folder(out.parent)  # created by Translator.save if needed
    check_checkpoint_options(args)
    from ..translator import Translator

    if get_band(args.output) in {get_band(b) for b in args.inputs}:
        raise UsageError(f"--output {args.output}: also one of --inputs ({' '.join(args.inputs)})")
    if args.init is not None:
        from ..models.zoo import get_card

        try:
            get_card(args.init)
        except (ValueError, OSError) as err:
            raise UsageError(f"--init {args.init}: {err}") from None
    if args.data == "mock":  # before the galaxies are made: the default --crop 64 exceeds a --size 32 universe
        check_crop(args, (args.size, args.size))
    data = mock_or_stored(args, [*args.inputs, args.output])
    check_crop(args, data.shape)
    check_validation_split(args, data)
    recipe = "bandsynth " + shlex.join(args.argv) if args.recipe is None else args.recipe
    translator = Translator.fit(
        data, inputs=args.inputs, output=args.output, name=args.name, preset=args.preset,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, crop_size=args.crop or None, seed=args.seed,
        init=args.init, ssim_weight=args.ssim_weight, flux_weight=args.flux_weight, flux_error=args.flux_error,
        select_checkpoint=not args.keep_last, average_epochs=args.average_epochs,
        checkpoint_dir=args.checkpoint_dir,
        checkpoint_every=(args.checkpoint_every or CHECKPOINT_EVERY) if args.checkpoint_dir else None,
        max_steps=args.max_steps,
        progress=not args.quiet, recipe=recipe, description=args.description,
    )
    translator = translator.save(out, overwrite=args.overwrite)
    print(f"wrote {out}(.safetensors, .json)")
    if args.evaluate:
        from ..evaluation import evaluate_translator
        from ._common import format_summary

        result = evaluate_translator(translator, data, split="test", progress=not args.quiet)
        translator.card.replace(metrics=result.card_metrics()).write(card_file)
        print(format_summary(result.summary))
    return 0
