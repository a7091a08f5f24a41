"""``bandsynth evaluate``: paper-style held-out metrics of a model against baselines."""

from __future__ import annotations

import logging
from pathlib import Path

from ._common import (
    FAILED, UsageError, add_band_request, add_model, add_output, add_overwrite, add_quiet, at_least,
    check_output_folder, format_summary, requested_bands,
)
from .train import add_data_options, mock_or_stored

log = logging.getLogger("bandsynth.cli")


def _nan(value):
    import numpy as np

    return np.nan if value is None else value


def format_robustness(rows) -> str:
    """The robustness rows of an evaluation as printed text."""
    import numpy as np

    from ..evaluation import METHODS

    lines = []
    for key, row in rows.items():
        model, near, lin = (row.get(m, {}) for m in METHODS)
        lines.append(
            f"{key:<12} {row['description']}: n={model.get('n_galaxies')}  model SSIM {model.get('ssim', np.nan):.4g} "
            f"PSNR {model.get('psnr', np.nan):.4g} MAE {model.get('mae', np.nan):.4g} "
            f"1-sigma coverage {_nan(model.get('coverage_1sigma')):.3g}  |  baselines SSIM "
            f"{near.get('ssim', np.nan):.4g} (nearest) {lin.get('ssim', np.nan):.4g} (linear)"
        )
    return "\n".join(lines)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "evaluate", help="paper-style held-out metrics of a model against baselines",
        description="Measure a model on held-out data next to two baselines (copying the nearest input band, "
                    "a per-pixel linear colour model) and print the summary; -o writes the tables (ECSV) "
                    "and figures (PNG).",
    )
    add_model(p)
    add_band_request(p, inputs="the bands it reads", wanted="the band to score")
    p.add_argument("--split", default="test", choices=("train", "validation", "test"),
                   help="split to evaluate (default: test)")
    p.add_argument("--max-images", type=at_least(1), metavar="N", help="evaluate at most this many images")
    add_output(p, metavar="FOLDER", help="folder for the ECSV tables and PNG figures (default: print only)")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.add_argument("--from-card", action="store_true",
                   help="mock data: rebuild the universe the model card says the model was trained on (all of "
                        "it, also with --max-images: the linear colour baseline is fitted on its training split)")
    p.add_argument("--robustness", type=at_least(0), nargs="?", const=60, default=0, metavar="N",
                   help="also evaluate N (default 60) new galaxies per shifted set: the other observing mode, "
                        "only starbursts, only edge-on disks")
    p.add_argument("--write-card", action="store_true", help="store the summary in the model card")
    add_overwrite(p)
    add_quiet(p)
    add_data_options(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    if args.output:
        out = check_output_folder(args.output)
        if not args.overwrite:
            from ..evaluation import OUTPUT_FILES

            existing = [out / name for name in OUTPUT_FILES if (out / name).exists()]
            if existing:
                raise UsageError(f"output {existing[0]} exists; pass --overwrite to replace it")
    from ..evaluation import card_dataset, evaluate_robustness, evaluate_translator
    from ..models.zoo import get_card
    from ..translator import Translator

    try:
        card = get_card(args.model)  # the request checked before the weights are read
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from None
    band, inputs = requested_bands(card, args.band, args.input_bands)
    if card.outputs and args.write_card:
        raise UsageError(f"--write-card: model {card.name!r} predicts any of its bands; its card keeps no test rows "
                         f"of one request such as --band {band}")
    try:
        translator = Translator.load(args.model)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from None
    if card.outputs:  # an any-band model is scored on one request
        translator = translator.task(inputs=inputs, output=band)
    if args.data == "mock" and args.from_card:
        try:
            data = card_dataset(translator.card, progress=not args.quiet)
        except ValueError as err:  # a model of no mock universe: there is no universe to rebuild
            text = str(err).replace("a stored data set", "a stored data set (--data FOLDER)")
            raise UsageError(f"--from-card: {text}") from None
    else:
        data = mock_or_stored(args, [*translator.inputs, translator.output])
    result = evaluate_translator(translator, data, split=args.split, max_images=args.max_images,
                                 progress=not args.quiet)
    print(f"model {translator.name}: {' + '.join(translator.inputs)} -> {translator.output}, {args.split} split")
    print(format_summary(result.summary))
    metrics = result.card_metrics()
    if args.robustness:
        coefficients = result.per_galaxy["linear_colour"].meta["coefficients"]
        metrics["robustness"] = evaluate_robustness(translator, linear_coefficients=coefficients,
                                                    max_images=args.robustness, progress=not args.quiet)
        print("robustness (data the model was not trained on):")
        print(format_robustness(metrics["robustness"]))
    if args.output:
        paths = result.write(args.output, overwrite=args.overwrite, figures=not args.no_figures)
        print(f"wrote {len(paths)} files to {Path(args.output)}")
    if args.write_card:
        from ..models.zoo import model_paths

        card_path = model_paths(args.model)[1]
        # rows not re-measured (robustness without --robustness, model_speed.py's bf16 record) stay
        translator.card.with_metrics(metrics).write(card_path)
        print(f"held-out metrics written to {card_path}")
    failed = int(result.summary["n_failed"][0])
    if failed:  # the model's row; every method read the same images
        log.error("%d of %d galaxies could not be evaluated: see the 'error' column of the per-galaxy tables (-o)",
                  failed, len(result.per_galaxy["model"]))
    return FAILED if failed else 0
