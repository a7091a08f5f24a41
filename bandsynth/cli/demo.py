"""``bandsynth demo``: the whole chain on one mock galaxy, offline."""

from __future__ import annotations

from ._common import OneBand, UsageError, add_model, add_output, add_overwrite, add_quiet, at_least, check_output_folder


def add_parser(subparsers):
    p = subparsers.add_parser(
        "demo", help="predict a mock galaxy's r band from NUV + Ks, offline",
        description="Make one galaxy of the built-in mock universe, predict its r band from NUV + Ks with a "
                    "shipped model (or another model's output from its inputs), print the metrics against the "
                    "known truth and write the synthetic band (FITS) and a PNG panel (inputs | truth | prediction | "
                    "residual | sigma).",
    )
    add_model(p, required=False, default="nuv_k_to_r_paper")
    p.add_argument("--band", metavar="BAND", action=OneBand,
                   help="the band to predict: required for an any-band model, which predicts it from all its "
                        "other bands; for any other model, its output band")
    p.add_argument("--seed", type=at_least(0), default=7, help="seed of the mock galaxy (default: 7)")
    add_output(p, metavar="FOLDER",
               help="output folder, created if needed (default: a new temporary folder, printed at the end)")
    add_overwrite(p, help="replace the files of an earlier run in --output")
    add_quiet(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from .predict import load_translator, wanted_band

    if args.output is not None:
        check_output_folder(args.output)
    translator = load_translator(args.model)  # refuses unknown models and tampered weights (exit 2)
    band, _ = wanted_band(translator, args.band, None)
    if args.output is not None and not args.overwrite:
        from ..demo import demo_paths

        for path in demo_paths(args.output, seed=args.seed, band=band):
            if path.exists():
                raise UsageError(f"{path} exists from an earlier run; pass --overwrite to replace it, "
                                 "or choose another -o/--output folder")
    from ..demo import run_demo

    synthetic, report, paths = run_demo(model=args.model, band=band, seed=args.seed, out_dir=args.output,
                                        overwrite=args.overwrite)
    print(report)
    for p in paths:
        print(f"wrote {p}")
    return 0
