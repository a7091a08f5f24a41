"""``bandsynth mock``: write a data set of mock multi-band galaxies."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import Once, UsageError, add_output, add_overwrite, add_quiet, at_least, check_output_folder
from .train import FAMILY_NAMES


def add_parser(subparsers):
    p = subparsers.add_parser(
        "mock",
        help="write a data set of mock multi-band galaxies",
        description="Generate mock galaxies (all bands, known truth) into a data set folder: one "
                    "memory-mapped FITS cube per band and a manifest.ecsv with a train/validation/test "
                    "split by galaxy, stratified by sSFR.",
    )
    p.add_argument("--n", "--n-galaxies", action=Once, dest="n", type=at_least(1), required=True, metavar="N", help="number of galaxies")
    add_output(p, required=True, metavar="FOLDER",
               help="data set folder to create (must not exist unless --overwrite)")
    p.add_argument("--mode", action=Once, choices=("ideal", "survey"), default=None,
                   help="observing mode: ideal (common PSF, no noise) or survey (per-band PSF, noise, sky; "
                        "default: ideal)")
    p.add_argument("--survey", action=Once, default=None, metavar="NAME",
                   help="observe every band as a named survey does (native pixel scale, PSF, depth, sky residual, "
                        "masked pixels, neighbours and stars), brought onto one grid; the data set also holds the "
                        "noise-free truth. A preset (galex_sdss_2mass, galex_decals_2mass, kids_viking, decals, hsc) "
                        "or a survey (GALEX, SDSS, 2MASS, DECaLS, KiDS, VIKING, HSC). Not with --mode")
    p.add_argument("--r-mag-range", action=Once, nargs=2, type=float, default=None, metavar=("BRIGHT", "FAINT"),
                   help="with --survey: r magnitudes of the galaxies (default: the survey layer's own counts)")
    p.add_argument("--redshift", action="store_true",
                   help="with --survey: observe each galaxy and its neighbours at a redshift drawn from its r "
                        "magnitude (observed-frame colours; default: every galaxy in its rest frame)")
    p.add_argument("--grid-offsets", action=Once, type=float, default=0.0, metavar="P",
                   help="with --survey: offset each band's native pixel grid from the common one by a random "
                        "fraction of a pixel with probability P (0 to 1), so that bringing it onto the grid smooths "
                        "its noise as a user's reprojection does (default: 0, every grid centred on the common one)")
    p.add_argument("--seed", "--data-seed", action=Once, dest="seed", type=at_least(0), default=0,
                   help="seed of the mock universe (default: 0)")
    p.add_argument("--bands", action=Once, nargs="+", default=None, metavar="BAND", help="bands (default: all registered bands)")
    p.add_argument("--views", action=Once, type=at_least(1), default=1, metavar="N", help="viewing angles per galaxy (default: 1)")
    p.add_argument("--size", action=Once, type=at_least(8), default=128, metavar="PIXELS", help="stamp side in pixels (default: 128)")
    p.add_argument("--pixel-scale", action=Once, type=float, default=None, metavar="ARCSEC",
                   help="arcsec per pixel (default: that of the mode)")
    p.add_argument("--depth-offset", action=Once, type=float, default=0.0, metavar="MAG",
                   help="survey mode: magnitudes deeper than the survey's (default: 0)")
    p.add_argument("--no-dust", action="store_true", help="switch the dust screen off")
    p.add_argument("--family", action=Once, default="default", choices=FAMILY_NAMES,
                   help="physics family of the mock universe (default: default)")
    p.add_argument("--split", action=Once, nargs=3, type=float, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"),
                   help="fractions of galaxies in the three splits (default: 0.8 0.1 0.1)")
    add_overwrite(p, help="replace an existing data set")
    add_quiet(p, help="no progress bar")
    # Before 0.2 this command spelt --quiet as --no-progress; still accepted (not listed).
    p.add_argument("--no-progress", dest="quiet", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..bands import get_band

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise UsageError(f"output {out} exists; pass --overwrite to replace it")
    check_output_folder(out)
    try:
        for band in args.bands or ():
            get_band(band)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.survey is not None and args.mode is not None:
        raise UsageError(f"--survey {args.survey} sets how every band is observed; drop --mode {args.mode}")
    if args.r_mag_range is not None and args.survey is None:
        raise UsageError("--r-mag-range needs --survey (ideal and survey mode draw their own magnitudes)")
    if args.depth_offset and args.survey is None and args.mode in (None, "ideal"):  # it was ignored without a word
        raise UsageError("--depth-offset needs --mode survey or --survey (ideal mode images have no noise)")
    if args.redshift and args.survey is None:
        raise UsageError("--redshift needs --survey (ideal and survey mode show galaxies in their rest frame)")
    if args.grid_offsets and args.survey is None:
        raise UsageError("--grid-offsets needs --survey (it offsets the survey layer's native pixel grids)")
    if not 0.0 <= args.grid_offsets <= 1.0:
        raise UsageError(f"--grid-offsets {args.grid_offsets:g}: expected a probability from 0 to 1")
    if args.survey is not None:
        from ..datasets.mock.surveys import resolve_survey

        try:
            resolve_survey(args.survey, args.bands)
        except ValueError as err:
            raise UsageError(f"--survey {args.survey}: {err}") from None
    from ..datasets.base import SPLITS
    from ..datasets.store import write_mock_dataset

    try:
        ds = write_mock_dataset(
            out, args.n, seed=args.seed, mode=args.mode, bands=args.bands,
            size=args.size, pixel_scale=args.pixel_scale, views=args.views, depth_offset=args.depth_offset, dust=not args.no_dust,
            split_fractions=tuple(args.split), overwrite=args.overwrite, progress=not args.quiet,
            family=args.family, survey=args.survey,
            r_mag_range=None if args.r_mag_range is None else tuple(args.r_mag_range), redshift=args.redshift,
            grid_offsets=args.grid_offsets,
        )
    except (FileExistsError, ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    counts = {s: int(len(ds.indices(s))) for s in SPLITS}
    print(f"wrote {len(ds)} images of {args.n} galaxies in {len(ds.bands)} bands to {ds.path} "
          f"({json.dumps(counts)})")
    ds.close()
    return 0
