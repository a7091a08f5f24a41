"""``bandsynth predict-batch``: the missing band of many galaxies, with Dask."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from ._common import (
    FAILED,
    OK,
    Once,
    UsageError,
    add_band_request,
    add_model,
    add_output,
    add_overwrite,
    add_quiet,
    add_seed,
    at_least,
    check_input_file,
    check_output_folder,
    reproject_target,
    requested_bands,
)

log = logging.getLogger("bandsynth.cli")


def add_parser(subparsers):
    b = subparsers.add_parser(
        "predict-batch", help="predict the missing band of many galaxies (Dask)",
        description="Predict one output file per galaxy, OUTPUT/<id>_<band>_synth.fits; a rerun keeps the "
                    "galaxies already done. Ends with a one-line summary; exit code 1 if any galaxy failed "
                    "(see the report).",
    )
    add_model(b)
    add_band_request(b, inputs="the bands every galaxy gives")
    source = b.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", metavar="FILE",
                        help="ECSV table: an 'id' column and one file column per input band (FILE[EXT]: one HDU of a "
                             "file)")
    source.add_argument("--pattern", help="file-name pattern in --input-dir, e.g. '{id}_{band}.fits', or "
                                          "'{id}.fits' for one multi-extension file per galaxy")
    b.add_argument("--input-dir", action=Once, metavar="FOLDER", help="folder of the --pattern files")
    add_output(b, required=True, metavar="FOLDER", help="output folder (created if needed)")
    b.add_argument("--workers", action=Once, type=at_least(1), metavar="N",
                   help="local worker processes (default: number of cores)")
    b.add_argument("--scheduler", action=Once, metavar="ADDRESS",
                   help="dask.distributed scheduler address (run on a cluster)")
    b.add_argument("--torch-threads", action=Once, type=at_least(1), metavar="N",
                   help="network threads per worker (default: cores divided among the workers)")
    add_overwrite(b, help="predict again and replace existing outputs")
    b.add_argument("--reproject-to", action=Once, metavar="BAND|ARCSEC",
                   help="resample each galaxy onto this band's grid first, or onto pixels of ARCSEC over the bluest "
                        "input's field (e.g. the model's pixel scale)")
    b.add_argument("--tta", action="store_true", help="average over the 8 flips/rotations (8x slower)")
    add_seed(b)
    b.add_argument("--report", action=Once, metavar="FILE",
                   help="report file (ECSV, or CSV for a .csv name; default OUTPUT/predict_batch_report_<band>.ecsv: "
                        "one per band, as the outputs OUTPUT/<id>_<band>_synth.fits)")
    add_quiet(b, help="no progress bar and no per-galaxy warnings: only the one-line summary (and errors)")
    b.set_defaults(func=run, _parser=b)
    return b


def run(args) -> int:
    if args.pattern is not None and args.input_dir is None:
        args._parser.error("--pattern needs --input-dir")
    if args.input_dir is not None and args.pattern is None:
        args._parser.error("--input-dir goes with --pattern")
    if args.manifest is not None:
        check_input_file(args.manifest, what="manifest")
    elif not Path(args.input_dir).is_dir():
        raise UsageError(f"--input-dir {args.input_dir}: no such folder")
    out = check_output_folder(args.output)
    reproject_to = reproject_target(args.reproject_to)
    from ..batch import predict_many
    from ..batch.report import check_report_path
    from ..models.zoo import WeightsHashError, get_card

    try:
        card = get_card(args.model)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from None
    band, inputs = requested_bands(card, args.band, args.input_bands)
    if args.manifest is not None:
        from ..batch import read_manifest

        fewer = ("; or, to predict from the bands it gives, name them: --input-bands BAND [BAND ...]"
                 if card.outputs and args.input_bands is None else "")
        try:
            listed = read_manifest(args.manifest, bands=inputs, fewer_bands_hint=fewer)
        except (ValueError, OSError) as err:
            raise UsageError(f"--manifest {args.manifest}: {err}") from None
        if not any(listed):  # as a --pattern that matches nothing: said, and no output folder or report made
            raise UsageError(f"--manifest {args.manifest} lists no galaxy: nothing to predict")
        items = args.manifest
    else:
        from ..datasets.folder import scan_folder

        try:
            items = scan_folder(args.input_dir, args.pattern, bands=inputs, check=False)
        except ValueError as err:  # the pattern itself; files scan_folder cannot use are reported, not raised
            raise UsageError(f"--pattern: {str(err).replace('pattern must', 'the pattern must')}") from None
        if not items.files:  # nothing to predict: say so, and make no output folder or report
            raise UsageError(f"--pattern {args.pattern}: no file of --input-dir {args.input_dir} matches it"
                             + (f" for bands {', '.join(inputs)}" if "{band}" in args.pattern else ""))
    default_report = out / f"predict_batch_report_{band or card.output}.ecsv"  # one per band, as the outputs
    report_path = Path(args.report) if args.report is not None else default_report
    try:  # the default path too: a folder there was found after every galaxy had been predicted
        check_report_path(report_path)
    except (OSError, ValueError) as err:
        raise UsageError(f"--report: {err}" if args.report is not None else str(err)) from None
    if args.report is not None:
        check_output_folder(report_path.parent)
    started = time.perf_counter()
    try:
        report = predict_many(
            args.model, items, out_dir=out, band=band, inputs=inputs, workers=args.workers,
            scheduler=args.scheduler, overwrite=args.overwrite, progress=not args.quiet, report=report_path,
            reproject_to=reproject_to, tta=args.tta, torch_threads=args.torch_threads, predict_kw={"seed": args.seed},
        )
    except (ValueError, OSError, TypeError, WeightsHashError) as err:
        raise UsageError(str(err)) from None
    c = report.counts
    if card.outputs and args.input_bands is None and any(re.search("no (usable )?file for band", str(e))
                                                          for e in report.failed["error"]):
        log.warning("model %r predicts %s from any of its bands, and this run read all of them from each galaxy; "
                    "to predict from the bands the galaxies have, name them: --input-bands BAND [BAND ...]",
                    card.name, band)
    ignored = f", {c['ignored']} file(s) ignored (see the report)" if c["ignored"] else ""
    print(f"predict-batch: {c['done']} predicted, {c['exists']} already done, {c['failed']} failed{ignored} "
          f"in {time.perf_counter() - started:.1f} s; outputs in {out}; report {report_path}")
    return OK if report.ok else FAILED
