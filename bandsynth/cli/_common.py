"""What every ``bandsynth`` sub-command shares: option names, exit codes, logging, checks.

Nothing here imports torch, Dask or matplotlib: building the parser (``bandsynth
--help``) stays fast.  The conventions (one name per option, exit codes, where
output goes) are documented in ``docs/command_line.rst``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

from ..errors import HDU_HINT

__all__ = [
    "OK",
    "FAILED",
    "USAGE",
    "UsageError",
    "add_seed",
    "at_least",
    "positive_float",
    "add_model",
    "add_output",
    "add_overwrite",
    "add_quiet",
    "cli_text",
    "format_summary",
    "check_input_file",
    "check_output_file",
    "check_output_folder",
    "logging_session",
    "status",
]

#: Exit codes: everything done; some inputs failed (see the messages / report);
#: usage error or refused before any work (bad option, unknown band or model,
#: missing input file, existing output without ``--overwrite``, unwritable folder).
OK, FAILED, USAGE = 0, 1, 2

log = logging.getLogger("bandsynth.cli")


class UsageError(Exception):
    """The command line cannot be carried out as given: exit code 2, nothing was done."""


# ---------------------------------------------------------------------- options
def add_model(parser, *, required=True, default=None):
    """``--model NAME|PATH``."""
    text = "shipped model name (see `bandsynth models`) or path of a saved model (STEM, STEM.json or STEM.safetensors)"
    if default is not None:
        text += f" (default: {default})"
    parser.add_argument("--model", required=required, default=default, metavar="MODEL", help=text, action=Once)


def add_output(parser, *, help, required=False, default=None, metavar="PATH"):
    """``-o/--output``: where the output goes (one name in every command).

    ``--out``, the name some commands used before 0.2, is still accepted (not listed).
    """
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("-o", "--output", default=default, metavar=metavar, help=help, dest="output", action=Once)
    group.add_argument("--out", dest="output", help=argparse.SUPPRESS, action=Once)


def add_overwrite(parser, *, help="replace existing output files (without it they are never touched)"):
    parser.add_argument("--overwrite", action="store_true", help=help)


def add_quiet(parser, *, help="no progress output and no warnings; errors and the result line are still printed"):
    parser.add_argument("-q", "--quiet", action="store_true", help=help)


def status(text, *, quiet=False):
    """A progress line on stderr (not with ``--quiet``); never glued to a progress bar."""
    if quiet:
        return
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)


# ---------------------------------------------------------------------- messages
# Library errors give hints in Python ("BandStack.from_fits(..., reproject_to='NUV')",
# "overwrite=True"); on the command line the same hint is an option.
_HINTS = (
    # a batch's words name both interfaces' options: the command line needs its own once
    (re.compile(r"(--reproject-to \S+) \(reproject_to=(?:'[^']*'|[0-9.e+-]+ \* u\.arcsec)\)"), lambda m: m.group(1)),
    (re.compile(r"BandStack\.from_fits\(\.\.\., reproject_to=('[^']*')\), "
                r"BandStack\.from_arrays\(\.\.\., reproject_to='[^']*'\) or BandStack\.reproject"),
     lambda m: f"--reproject-to {m.group(1)[1:-1]}"),
    (re.compile(r"reproject_to=('[^']*') in BandStack\.from_fits / BandStack\.from_arrays, or BandStack\.reproject"),
     lambda m: f"--reproject-to {m.group(1)[1:-1]}"),
    (re.compile(r"reproject_to=('[^']*')"), lambda m: f"--reproject-to {m.group(1)[1:-1]}"),
    (re.compile(r"reproject_to=([0-9.e+-]+) \* u\.arcsec"), lambda m: f"--reproject-to {m.group(1)}"),
    (re.compile(r"--overwrite \(overwrite=True\)|overwrite=True \(--overwrite\)|overwrite=True / --overwrite"),
     lambda m: "--overwrite"),
    (re.compile(r"overwrite=True"), lambda m: "--overwrite"),
    (re.compile(r"--tta, tta=True|tta=True, --tta|--tta \(tta=True\)"), lambda m: "--tta"),
    (re.compile(r"\btta=True\b"), lambda m: "--tta"),
    (re.compile(r"pass unit= \(e\.g\. unit='([^']*)'\)"), lambda m: f"pass --unit (e.g. --unit {m.group(1)})"),
    (re.compile(r"\bunit=(?=[\s)])"), lambda m: "--unit"),
    (re.compile(r"the unit requested with unit="),
     lambda m: "the unit given with --unit (which names the unit of images without BUNIT)"),
    (re.compile(r"\bzeropoint=(?!\w)"), lambda m: "--zeropoint BAND=ZP"),
    (re.compile(r"; for an array, wcs=\)"), lambda m: ")"),  # the command line reads files only
    (re.compile(r" \(in their files' headers, or wcs= for arrays\)"), lambda m: " (in their files' headers)"),
    (re.compile(r"\bscheduler='([^']*)'"), lambda m: f"--scheduler {m.group(1)}"),
    (HDU_HINT, lambda m: f"--input {m.group(1)}=FILE[{m.group(2)}]"),
    (re.compile(r"BandStack\.from_fits\(path\)"), lambda m: "--input FILE alone"),
)


class Once(argparse.Action):
    """An option of one value given twice: a usage error (exit 2), not the last value silently taken.

    ``--model A --model B`` ran B, ``-o a.fits -o b.fits`` wrote b alone, and ``--reproject-to``
    twice put the inputs on the second grid, each without a word.
    """

    reason = "give it once"

    def __call__(self, parser, namespace, values, option_string=None):
        given = f"_given_{self.dest}"  # the previous value may be a default: count what the user gave
        if getattr(namespace, given, None) is not None:
            parser.error(f"{option_string} given twice ({getattr(namespace, given)} and {values}): {self.reason}")
        setattr(namespace, given, values)
        setattr(namespace, self.dest, values)


class OneBand(Once):
    """``--band``: one run writes one band (``--band KiDS_r --band VISTA_H`` wrote H alone)."""

    reason = "one run predicts one band; run once per band"


def known_band(option, name, model, bands):
    """The registry's name of a band named to ``option``, else a usage error listing ``bands``, the model's.

    Parameters
    ----------
    option : str
        ``"--band"``, ``"--input-bands"``, ...
    name : str
        The band as given.
    model : str
        The model's name.
    bands : sequence of str
        The bands the model predicts (``--band``) or reads.

    Returns
    -------
    str

    Raises
    ------
    UsageError
        No band answers to ``name`` (the registry's whole list would bury the model's own bands).
    """
    from ..bands import get_band

    try:
        return get_band(name).name
    except ValueError:
        raise UsageError(f"{option} {name}: not a known band; model {model!r} "
                         f"{'predicts' if option == '--band' else 'reads'} {', '.join(bands)}"
                         f"{same_filter_hint(name, bands, option + ' {}')}") from None


def add_band_request(parser, *, inputs, wanted="the band to predict"):
    """``--band`` and ``--input-bands``, checked by `requested_bands`.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    inputs : str
        What the input bands are, for the help (``"the bands every galaxy gives"``).
    wanted : str
        What the band is, for the help.
    """
    parser.add_argument("--band", metavar="BAND", action=OneBand,
                        help=f"{wanted}: required for an any-band model; for any other model, its output")
    parser.add_argument("--input-bands", nargs="+", action="extend", metavar="BAND",
                        help=f"with an any-band model: {inputs} (default: all the model reads but --band)")


def requested_bands(card, band, input_bands):
    """``(--band, input bands)`` checked against the model's card (`add_band_request`'s options).

    Parameters
    ----------
    card : `~bandsynth.models.zoo.ModelCard`
    band : str or None
        ``--band``.
    input_bands : list of str or None
        ``--input-bands``.

    Returns
    -------
    band : str or None
        The registry's name of the band to predict (None: a one-mapping model's output).
    inputs : list of str
        The bands read.

    Raises
    ------
    UsageError
        A band the model does not predict or read, a band given twice, or ``--input-bands`` for a
        model of one mapping.
    """
    band = None if band is None else known_band("--band", band, card.name, card.writes)
    inputs = None if input_bands is None else [known_band("--input-bands", b, card.name, card.inputs)
                                               for b in input_bands]
    twice = sorted({b for b in inputs or () if inputs.count(b) > 1})
    if twice:
        raise UsageError(f"--input-bands: band(s) {', '.join(twice)} given twice")
    if not card.outputs:
        if band not in (None, card.output):
            raise UsageError(f"--band {band}: model {card.name!r} predicts {card.output}"
                             f"{same_filter_hint(band, [card.output])}")
        if inputs is not None:
            raise UsageError(f"--input-bands goes with an any-band model; model {card.name!r} reads "
                             f"{', '.join(card.inputs)}")
        return band, list(card.inputs)
    if band not in card.outputs:
        raise UsageError(f"--band{'' if band is None else ' ' + band}: model {card.name!r} predicts any of "
                         f"{', '.join(card.outputs)}; say which with --band"
                         f"{'' if band is None else same_filter_hint(band, card.outputs)}")
    readable = [b for b in card.inputs if b != band]
    unknown = [b for b in inputs or () if b not in readable]
    if unknown:
        raise UsageError(f"--input-bands {unknown[0]}: model {card.name!r} predicts {band} from any of "
                         f"{', '.join(readable)}{same_filter_hint(unknown[0], readable)}")
    return band, inputs or readable


def add_seed(parser):
    """``--seed``: `~bandsynth.Translator.predict`'s ``seed``, of the Monte Carlo draws and the restored noise."""
    parser.add_argument("--seed", action=Once, type=at_least(0), default=0, metavar="N",
                        help="seed of sigma's Monte Carlo draws and of the noise restored to inputs resampled by a "
                             "sub-pixel shift (default: 0); another seed shows how much a faint galaxy's flux "
                             "depends on that draw")


def at_least(minimum):
    """An argparse ``type=``: an integer of at least ``minimum``, else the option's usage error (exit 2).

    Parameters
    ----------
    minimum : int

    Returns
    -------
    callable
    """
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number of at least {minimum}, got {text}")
        return value

    return parse


def positive_float(text):
    """An argparse ``type=``: a positive finite number, else the option's usage error (exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def same_filter_hint(given, known, spell="{}"):
    """`` (did you mean SPELL?)`` for the bands of ``known`` of ``given``'s filter in another survey ("H" is 2MASS H;
    a VIKING model's is VISTA_H), ``spell`` formatting each (``"--band {}"``); empty when there is none."""
    from ..bands import same_filter

    alike = [spell.format(b) for b in same_filter(given, known)]
    return f" (did you mean {' or '.join(alike)}?)" if alike else ""


def cli_text(err) -> str:
    """An error or warning as a command-line user reads it: options instead of Python calls."""
    if isinstance(err, BaseException):
        text = str(err) or type(err).__name__
        if isinstance(err, MemoryError):
            text = "out of memory" + (f": {err}" if str(err) else "")
    else:
        text = str(err)
    for pattern, repl in _HINTS:
        text = pattern.sub(repl, text)
    return text


# ---------------------------------------------------------------------- checks before any work
def _probe(folder, target):
    """Create and remove a file in ``folder``: the only reliable test that ``target`` can be written."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".bandsynth-probe-")
        os.close(fd)
        os.remove(name)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise UsageError(f"cannot write {target}: folder {folder} is not writable ({reason})") from None


def check_output_file(path, *, overwrite):
    """Refuse (before any work) an output file that exists or cannot be written."""
    text, path = os.fspath(path), Path(path)
    if not text.strip():  # Path("") is the current folder: "output  is a folder" named nothing
        raise UsageError("-o: an empty name; give the name of the FITS file to write")
    if path.is_dir() or text.endswith(("/", os.sep)):  # "newdir/" names a folder, even one not yet made
        raise UsageError(f"output {text} is a folder; give the name of the FITS file to write")
    if os.path.lexists(path) and not overwrite:
        raise UsageError(f"output {path} exists; pass --overwrite to replace it")
    if os.path.exists(path) and not path.is_file():  # a device, a FIFO or a link to one: never renamed over
        raise UsageError(f"output {path} exists and is not a regular file; give the name of a FITS file to write")
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: folder {folder} does not exist")
    _probe(folder, path)
    return path


def check_output_folder(path):
    """Refuse (before any work) an output folder that cannot be created or written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"output folder {path} is a file, not a folder")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot create output folder {path}: {existing} is not a folder")
    _probe(existing, path)
    return path


def reproject_target(text):
    """``--reproject-to BAND|ARCSEC`` as a band's canonical name or a pixel scale (an angle), None when not given."""
    if text is None:
        return None
    import astropy.units as u

    from ..bands import get_band

    try:
        scale = float(text)
    except ValueError:  # a band's name
        try:
            return get_band(text).name
        except ValueError as err:
            raise UsageError(f"--reproject-to: {err}") from None
    if not 0 < scale < float("inf"):
        raise UsageError(f"--reproject-to: a pixel scale must be a positive number of arcsec, got {text}")
    return scale * u.arcsec


def check_input_file(path, *, what="input file"):
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{what} {path} not found")
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder, expected a file")
    return path


# ---------------------------------------------------------------------- logging
class _Handler(logging.Handler):
    """One line per message on stderr, written past any progress bar (``tqdm.write``)."""

    def emit(self, record):
        try:
            text = self.format(record)
            from tqdm import tqdm

            tqdm.write(text, file=sys.stderr)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


class _Formatter(logging.Formatter):
    def __init__(self, verbose):
        super().__init__()
        self.verbose = verbose

    def format(self, record):
        text = cli_text(record.getMessage())
        if record.exc_info and self.verbose >= 2:
            text += "\n" + self.formatException(record.exc_info)
        where = f" {record.name}" if self.verbose else ""
        return f"{record.levelname}{where}: {text}"


class _Noise(logging.Filter):
    """Drop the chatter of Dask's ``distributed`` (and its event loop) below ``level``."""

    NOISY = ("distributed", "tornado", "asyncio", "bokeh")

    def __init__(self, level):
        super().__init__()
        self.level = level

    def filter(self, record):
        if record.name.split(".")[0] in self.NOISY:
            return record.levelno >= self.level
        return True


def _showwarning(message, category, filename, lineno, file=None, line=None):
    text = str(message)
    if category.__name__ not in ("UserWarning", "AstropyUserWarning"):
        text = f"{category.__name__}: {text}"
    logging.getLogger("py.warnings").warning("%s", text)


def _recording_warnings():
    """True inside ``warnings.catch_warnings(record=True)`` (e.g. ``pytest.warns``): leave them to the recorder."""
    impl = getattr(warnings, "_showwarnmsg_impl", None)
    return impl is not None and getattr(impl, "__name__", "") != "_showwarnmsg_impl"


@contextlib.contextmanager
def logging_session(*, verbose=0, quiet=False):
    """Route log records and warnings to one handler for the duration of a command.

    Every message is printed once, on its own line; warnings (including
    astropy's) go through `logging` once instead of twice; Dask's
    ``distributed`` INFO chatter is dropped.  Everything is restored afterwards.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    if quiet and not verbose:
        level = logging.ERROR
    root = logging.getLogger()
    handler = _Handler(level=level)
    handler.setFormatter(_Formatter(verbose))
    handler.addFilter(_Noise(logging.WARNING if verbose >= 2 else logging.ERROR))
    saved_level, saved_showwarning = root.level, warnings.showwarning
    astropy_log = sys.modules.get("astropy.logger")
    astropy_log = getattr(astropy_log, "log", None)
    astropy_handlers = list(astropy_log.handlers) if astropy_log is not None else []
    root.addHandler(handler)
    root.setLevel(min(level, saved_level) if saved_level else level)
    if not _recording_warnings():
        warnings.showwarning = _showwarning
    for h in astropy_handlers:  # astropy's records propagate to our handler instead
        astropy_log.removeHandler(h)
    try:
        yield handler
    finally:
        for h in astropy_handlers:
            astropy_log.addHandler(h)
        warnings.showwarning = saved_showwarning
        root.removeHandler(handler)
        root.setLevel(saved_level)


def format_summary(summary) -> str:
    """The summary table of an evaluation as printed text."""
    cols = ["method", "mae", "ssim", "psnr", "gini_w1", "m20_w1", "dmag_total", "dmag_total_abs", "coverage_1sigma",
            "coverage_2sigma"]
    cols += [c for c in summary.colnames if c.startswith("ssim_gain_")]
    shown = summary[[c for c in cols if c in summary.colnames]]
    for c in shown.colnames[1:]:
        shown[c].format = ".4g"
    return "\n".join(shown.pformat(max_width=-1, max_lines=-1))
