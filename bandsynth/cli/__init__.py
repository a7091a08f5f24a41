"""The ``bandsynth`` command: the only place that parses arguments.

One module per sub-command (``predict``, ``batch``, ``train``, ``evaluate``,
``models``, ``mock``, ``demo``), each with ``add_parser(subparsers)`` and
``run(args)``; `bandsynth.cli._common` holds the shared option names, exit codes,
checks and logging.  Building the parser imports no torch, Dask or matplotlib:
each command imports what it needs when it runs.

Exit codes: 0 everything done, 1 some inputs failed, 2 usage error or refused
before any work (see ``docs/command_line.rst``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys

from ._common import FAILED, OK, USAGE, UsageError, cli_text, logging_session

__all__ = ["main", "build_parser", "OK", "FAILED", "USAGE"]

# Sub-command modules, in the order ``bandsynth --help`` lists them.
_COMMANDS = ("demo", "predict", "batch", "models", "train", "evaluate", "mock")

log = logging.getLogger("bandsynth.cli")

_EXIT_CODES = """\
exit codes: 0 everything done; 1 some inputs failed (see the messages or the report);
2 usage error or refused before any work (unknown option, band or model, missing input
file, existing output without --overwrite, output folder not writable)."""
_EPILOG = _EXIT_CODES + "\nRun `bandsynth COMMAND --help` for the options of a command."


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command (imports no torch).

    Returns
    -------
    argparse.ArgumentParser
        The ``bandsynth`` parser: ``--version``, ``-v/--verbose`` and one
        sub-parser per command, each with ``func`` set to the command's ``run``.
    """
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="bandsynth",
        description="Predict a galaxy's image in a photometric band nobody observed.",
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"bandsynth {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv: debug messages and tracebacks)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        sub = importlib.import_module(f"{__name__}.{name}").add_parser(subparsers)
        sub.epilog = _EXIT_CODES
        sub.set_defaults(command_parser=sub)  # its own usage for its errors (argparse gives the top level's)
    return parser


def _silence_stdout():
    """Point stdout at the null device, so that flushing it at exit raises no second broken pipe."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a file descriptor (a test's capture)
        pass


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a batch scheduler's time limit): the run stops as on Ctrl-C, partial files removed and a
    batch's report written, where Python's default would end the process on the spot."""


def _terminate(signum, frame):
    raise Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt():
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (an embedding program): its own handling stands
        yield
        return
    try:
        yield
    finally:  # None: a handler set outside Python (an embedding program), which Python cannot set back
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def main(argv=None) -> int:
    """Run the ``bandsynth`` command; returns the exit code (0, 1 or 2).

    Errors are logged, not raised: a usage error or a model failing its SHA-256
    check gives `USAGE`, any other error `FAILED`; without a command the help is
    printed and `USAGE` returned.

    Parameters
    ----------
    argv : list of str, optional
        The arguments, without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        `OK` (0) everything done, `FAILED` (1) some inputs failed, `USAGE` (2)
        usage error or refused before any work; 130 when interrupted
        (Ctrl-C), 143 when terminated (SIGTERM), 141 when the reader of its output
        went away (``| head``).
        Invalid options make `argparse` exit with status 2 (`SystemExit`).
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # "bandsynth predict ... --tile 0" showed bandsynth's usage, not predict's
        getattr(args, "command_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    args.argv = argv  # commands that record how they were called (model-card recipes)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return USAGE
    with logging_session(verbose=args.verbose, quiet=getattr(args, "quiet", False)), _sigterm_as_interrupt():
        try:
            return int(args.func(args) or OK)
        except UsageError as err:
            log.error("%s", cli_text(err))
            return USAGE
        except KeyboardInterrupt as err:
            terminated = isinstance(err, Terminated)
            log.error("terminated" if terminated else "interrupted")
            return 143 if terminated else 130
        except BrokenPipeError:  # the reader went away (bandsynth models | head): stop quietly, as Unix tools do
            _silence_stdout()
            return 141
        except Exception as err:
            from ..models.zoo import WeightsHashError

            log.debug("traceback", exc_info=True)
            log.error("bandsynth %s: %s%s", args.command, cli_text(err),
                      "" if args.verbose >= 2 else " (-vv shows the traceback)")
            return USAGE if isinstance(err, WeightsHashError) else FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
