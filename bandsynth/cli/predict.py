"""``bandsynth predict``: the missing band of one galaxy."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import threading
import time

from .._io import split_extended_name
from ._common import (
    FAILED,
    OneBand,
    Once,
    UsageError,
    add_model,
    add_output,
    add_overwrite,
    add_quiet,
    add_seed,
    check_input_file,
    check_output_file,
    cli_text,
    known_band,
    reproject_target,
    same_filter_hint,
    status,
)

log = logging.getLogger("bandsynth.cli")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "predict", help="predict the missing band of one galaxy",
        description="Predict the model's output band from FITS images of its input bands and write it as one "
                    "FITS file (image, UNCERT, MASK, provenance). Prints the output path when done. An any-band "
                    "model predicts --band from whichever of its bands are given.",
    )
    add_model(p)
    p.add_argument("--band", metavar="BAND", action=OneBand,
                   help="the band to predict: required for an any-band model (bandsynth models lists what each "
                        "model reads and writes); for any other model, its output band")
    p.add_argument("--input", action="append", required=True, metavar="BAND=FILE",
                   help="an input image, e.g. --input NUV=g123_nuv.fits (repeat per band; FILE[EXT] reads "
                        "one HDU, by EXTNAME or number: --input DECam_g=cutout.fits[g]), or one "
                        "multi-extension FILE with an EXTNAME per band")
    add_output(p, required=True, metavar="FILE", help="output FITS file (its folder must exist)")
    add_overwrite(p, help="replace an existing output file")
    p.add_argument("--reproject-to", action=Once, metavar="BAND|ARCSEC",
                   help="resample the inputs onto this band's grid first (needed when they differ), or onto "
                        "pixels of ARCSEC over the bluest input's field (e.g. the model's pixel scale)")
    p.add_argument("--unit", action=Once, metavar="UNIT",
                   help="unit of input images without BUNIT, e.g. --unit nanomaggy or --unit DN; inputs with a "
                        "BUNIT are converted to it (a unit theirs does not convert to is a usage error)")
    p.add_argument("--zeropoint", action="append", metavar="BAND=ZP",
                   help="AB zero point of an input in counts (DN, ADU, counts/s), e.g. --zeropoint Ks=21.85 "
                        "(repeat per band); default: the one its header states (MAGZP, PHOTZP, FLUXMAG0, ...)")
    p.add_argument("--tta", action="store_true", help="average over the 8 flips/rotations (8x slower)")
    add_seed(p)
    add_quiet(p)
    p.set_defaults(func=run)
    return p


def parse_inputs(specs):
    """``--input BAND=FILE`` (or ``BAND=FILE[EXT]``) options as ``{band: file}`` and ``{band: HDU}``, or one
    multi-extension ``--input FILE`` as that file and no HDUs."""
    from ..bands import get_band

    if len(specs) == 1 and "=" not in specs[0]:
        if split_extended_name(specs[0])[1] is not None:
            raise UsageError(f"--input {specs[0]!r}: one HDU of a file is one band's image; name its band: "
                             f"--input BAND={specs[0]}")
        return specs[0], {}
    files, hdus = {}, {}
    for spec in specs:
        band, sep, path = spec.partition("=")
        if not sep or not band.strip() or not path.strip():
            raise UsageError(f"--input {spec!r}: expected BAND=FILE, e.g. --input NUV=g123_nuv.fits")
        try:
            name = get_band(band.strip()).name
        except ValueError as err:
            raise UsageError(f"--input {spec!r}: {err}") from None
        if name in files:
            raise UsageError(f"--input: band {name} is given twice")
        files[name], hdu = split_extended_name(path.strip())
        if hdu is not None:
            hdus[name] = hdu
    return files, hdus


def parse_zeropoints(specs):
    """``--zeropoint BAND=ZP`` options as ``{band: float}`` (None when there are none)."""
    from ..bands import get_band

    if not specs:
        return None
    zeropoints = {}
    for spec in specs:
        band, sep, value = spec.partition("=")
        if not sep or not band.strip():
            raise UsageError(f"--zeropoint {spec!r}: expected BAND=ZP, e.g. --zeropoint Ks=21.85")
        try:
            name = get_band(band.strip()).name
        except ValueError as err:
            raise UsageError(f"--zeropoint {spec!r}: {err}") from None
        try:
            zero = float(value)
        except ValueError:
            zero = math.nan
        if not math.isfinite(zero):
            raise UsageError(f"--zeropoint {spec!r}: {value.strip()!r} is not a finite number (an AB magnitude, "
                             "e.g. --zeropoint Ks=21.85)") from None
        if zeropoints.setdefault(name, zero) != zero:  # the last one was taken, and recorded, without a word
            raise UsageError(f"--zeropoint given twice for {name} ({zeropoints[name]:g} and {zero:g}): give it once")
    return zeropoints


def parse_unit_option(text):
    """``--unit``: a unit astropy understands, or a usage error."""
    from ..units import parse_unit

    if text is None:
        return None
    try:
        return parse_unit(text)
    except ValueError:
        raise UsageError(f"--unit {text!r}: not a unit astropy understands (e.g. --unit nanomaggy, --unit DN, "
                         "--unit 'ct/s')") from None


def load_translator(model):
    """The translator of ``--model``; a model that cannot be used is a usage error (exit 2)."""
    from ..models.zoo import WeightsHashError
    from ..translator import Translator

    try:
        return Translator.load(model)
    except (ValueError, FileNotFoundError, WeightsHashError) as err:
        raise UsageError(str(err)) from None


def wanted_band(translator, band, files):
    """``--band`` checked against the model, and the input bands it will read (of ``--input``, when named).

    An any-band model (its card lists ``outputs``) needs ``--band`` and reads whichever of its
    bands are given; any other model predicts its output from all its inputs.
    """
    writes = translator.card.writes
    if band is None:
        if translator.card.outputs:
            raise UsageError(f"model {translator.name!r} predicts any of {', '.join(writes)}: say which with --band, "
                             f"e.g. --band {writes[0]}")
        band = translator.output
    band = known_band("--band", band, translator.name, writes)
    if band not in writes:
        raise UsageError(f"--band {band}: model {translator.name!r} predicts {', '.join(writes)}"
                         f"{same_filter_hint(band, writes, '--band {}')}")
    readable = [b for b in translator.inputs if b != band]
    if not isinstance(files, dict):  # one multi-extension file: the stack says which bands it has
        return band, readable
    if translator.card.outputs:
        unknown = [b for b in files if b not in readable]
        if unknown:
            wanted = f" ({band} is the band to predict, --band {band})" if unknown[0] == band else ""
            raise UsageError(f"--input {unknown[0]}: model {translator.name!r} predicts {band} from any of "
                             f"{', '.join(readable)}{wanted}{_renamed(unknown, readable)}")
        return band, [b for b in readable if b in files]
    missing = [b for b in translator.inputs if b not in files]
    if missing:
        raise UsageError(f"model {translator.name!r} needs bands {', '.join(translator.inputs)}; "
                         f"no --input for {', '.join(missing)}{_renamed(list(files), missing)}")
    unread = [b for b in files if b not in translator.inputs]
    if unread:
        log.warning("--input %s: model %r reads %s only; not read", ", ".join(unread), translator.name,
                    " and ".join(translator.inputs))
    return band, list(translator.inputs)


def hdus_of_file(translator, inputs, held, path):
    """``{EXTNAME: band}`` of the input bands a multi-extension ``--input FILE`` holds (``held``:
    `~bandsynth.stack_io.file_bands`): only these HDUs are read, so a broken image of another band
    cannot stop the run.

    A band the model needs that the file holds only in another survey's filter is a usage error
    (exit 2) naming that HDU; one it does not hold at all leaves the file to be read whole (None),
    whose reading says what is wrong with it.
    """
    from ..bands import same_filter

    missing = [b for b in inputs if b not in held]
    alike = [f"--input {b}={path}[{held[match]}]" for b in missing for match in same_filter(b, list(held))[:1]]
    if alike and not translator.card.outputs:
        raise UsageError(f"--input {path}: model {translator.name!r} reads {' and '.join(inputs)}; the file holds "
                         f"{', '.join(held)} (did you mean {' '.join(alike)}?)")
    present = {held[b]: b for b in inputs if b in held}
    if present and translator.card.outputs:  # an any-band model reads what the file holds: say what it leaves
        unread = [b for b in held if b not in translator.inputs]
        renamed = {b: alike[0] for b in unread if (alike := same_filter(b, missing))}
        if unread:
            named = " ".join(f"--input {b}={path}[{e}]" for e, b in present.items())
            named += "".join(f" --input {a}={path}[{held[b]}]" for b, a in renamed.items())
            one, some = len(unread) == 1, len(renamed) == 1
            log.warning("--input %s: model %r does not read HDU%s %s; %s not read%s", path, translator.name,
                        "" if one else "s", ", ".join(f"{held[b]} ({b})" for b in unread),
                        "it is" if one else "they are",
                        f" (if HDU{'' if some else 's'} {', '.join(held[b] for b in renamed)} "
                        f"hold{'s' if some else ''} {', '.join(renamed.values())}, name each band: {named})"
                        if renamed else "")
    return present if present and (translator.card.outputs or not missing) else None


def _renamed(given, wanted):
    """The hint ``(did you mean --input VISTA_H=...?)`` for given bands naming a wanted band's filter elsewhere."""
    from ..bands import same_filter

    alike = [f"--input {match}=..." for b in given for match in same_filter(b, wanted)[:1]]
    return f" (did you mean {' and '.join(alike)}?)" if alike else ""


class _Stages:
    """A one-line progress display: the current stage, the tiles done and the elapsed time.

    Refreshed every second on a terminal, so a large image shows that work goes on.  Elsewhere
    (a batch job's log) a line per stage and per quarter of the tiles, where a bar's carriage
    returns would run together into one long line.
    """

    def __init__(self, total, *, enabled):
        from tqdm.auto import tqdm

        terminal = getattr(sys.stderr, "isatty", lambda: False)()
        self._lines, self._started, self._quarter = enabled and not terminal, time.perf_counter(), 0
        self._done, self._total, self._closed = 0, total, False  # counted here: a disabled bar counts nothing
        self.bar = tqdm(total=total, disable=not enabled or self._lines, desc="predict", unit="step",
                        file=sys.stderr, bar_format="{desc} ({n_fmt}/{total_fmt}) [{elapsed}]", dynamic_ncols=True)
        self._stop = threading.Event()
        self._thread = None
        if enabled and terminal:
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()

    def _line(self, text):
        if self._lines:
            status(f"predict: {text} ({self._done}/{self._total}) [{time.perf_counter() - self._started:.0f} s]")

    def _step(self):
        self.bar.update(1)
        self._done += 1

    def _tick(self):
        while not self._stop.wait(1.0):
            self.bar.refresh()

    @contextlib.contextmanager
    def stage(self, text, *, then=None):
        """One step of the display; with ``then``, two: ``then`` is the work left once the last tile is done."""
        self._text, self._then, self._quarter = text, then, 0
        self.bar.set_description_str(f"predict: {text}")
        self._line(text)
        yield
        if self._then is not None:
            self._next()
        self._step()

    def _next(self):
        self._step()
        self._text, self._then = self._then, None
        self.bar.set_description_str(f"predict: {self._text}")
        self._line(self._text)

    def tiles(self, done, total):
        """Progress callback of `bandsynth.Translator.predict_to_fits` (one call per tile).

        A large image (more than `~bandsynth.tiled_prediction.LARGE_IMAGE_TILES` tiles) reports each
        tile once, and is written strip by strip as they come: after its last tile, the next step begins.
        """
        from ..tiled_prediction import LARGE_IMAGE_TILES

        if done == total > LARGE_IMAGE_TILES and self._then is not None:
            self._next()
        elif total > 1:
            self.bar.set_description_str(f"predict: {self._text}, tile {done}/{total}", refresh=False)
            if 4 * done // total > self._quarter:
                self._quarter = 4 * done // total
                self._line(f"{self._text}, tile {done}/{total}")

    def close(self):
        if self._done == self._total and not self._closed:
            self._line("done")
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.bar.close()


def run(args) -> int:
    files, hdus = parse_inputs(args.input)
    zeropoints, unit = parse_zeropoints(args.zeropoint), parse_unit_option(args.unit)
    given = {"": files} if isinstance(files, str) else files
    for band, path in given.items():
        check_input_file(path, what=f"input file for band {band}" if band else "input file")
    out = check_output_file(args.output, overwrite=args.overwrite)
    read = [band for band, path in given.items() if out.exists() and os.path.samefile(out, path)]
    if read:  # --overwrite would replace an observed image by its prediction, and the provenance's checksum
        raise UsageError(f"-o {args.output} is the input file {'of band ' + read[0] + ' ' if read[0] else ''}"
                         "itself; write the prediction to another file")
    reproject_to = reproject_target(args.reproject_to)
    translator = load_translator(args.model)
    band, inputs = wanted_band(translator, args.band, files)
    extnames = None
    if isinstance(files, dict):  # a band the model does not read is not read (a broken file of it cannot stop it)
        files, hdus = {b: files[b] for b in inputs}, {b: h for b, h in hdus.items() if b in inputs}
    else:
        from ..stack_io import file_bands

        try:
            held = file_bands(files)
        except (ValueError, OSError) as err:
            log.error("%s", cli_text(err))
            return FAILED
        if not held:  # one band's image, as surveys deliver them: the command line must say which band
            raise UsageError(f"--input {files}: no HDU of the file names its band (EXTNAME, or SURVEY and FILTER); "
                             f"name the band of its image: --input BAND={files}, e.g. --input {inputs[0]}={files}")
        extnames = hdus_of_file(translator, inputs, held, files)
        inputs = list(extnames.values()) if extnames else inputs
    named_band = [reproject_to] if isinstance(reproject_to, str) else []
    for option, named, spell in (("--reproject-to", named_band, "--reproject-to {}"),
                                 ("--zeropoint", zeropoints, "--zeropoint {}=ZP")):
        for b in (b for b in named or () if b not in inputs):
            raise UsageError(f"{option} {b}: not one of the bands this run reads with model {translator.name!r} "
                             f"({', '.join(inputs)}){same_filter_hint(b, inputs, spell)}")

    from ..errors import BandOptionError
    from ..stack import BandStack

    started = time.perf_counter()
    status(f"predicting {band} with model {translator.name} from {' + '.join(inputs)} -> {out}", quiet=args.quiet)
    stages = _Stages(3, enabled=not args.quiet)
    try:
        onto = "" if reproject_to is None else f", reprojecting onto {reproject_to}"
        with stages.stage("reading the inputs" + onto):
            stack = BandStack.from_fits(files, hdu=hdus or None, extnames=extnames, unit=unit,
                                        zeropoint=zeropoints, reproject_to=reproject_to)
        for z in stack.meta.get("zeropoints", ()):  # a header's zero point (a Vega MAGZP) was applied unseen
            given = "--zeropoint" if z["source"] == "zeropoint=" else z["source"]
            status(f"{z['band']}: {z['unit']} converted to nanomaggies with AB zero point {z['zeropoint_ab']:g} "
                   f"({given})", quiet=args.quiet)
        ny, nx = stack.shape
        # Predicted and written in one call: a large image goes to the file strip by strip of tiles as they
        # are predicted (bounded memory); copying the pixels behind the headers is left after the last tile.
        with stages.stage(f"running the network on {nx} x {ny} pixels", then=f"writing {out.name}"):
            translator.predict_to_fits(stack, out, band=band, overwrite=args.overwrite, tta=args.tta, seed=args.seed,
                                       progress=stages.tiles)
    except BandOptionError as err:  # an option that does not fit its file: the command line must change
        raise UsageError(str(err)) from None
    except (ValueError, OSError, TypeError, MemoryError) as err:
        stages.close()
        log.error("%s", cli_text(err))
        return FAILED
    finally:  # Ctrl-C and SIGTERM too: the bar was drawn again after "terminated"
        stages.close()
    print(f"wrote {out} ({nx} x {ny} pixels, {time.perf_counter() - started:.1f} s)")
    return 0

