"""The ``bandsynth`` command.

Each sub-command lives next to the code it drives and registers itself through an
``add_cli(subparsers)`` function; this module only collects them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

__all__ = ["main", "build_parser"]

# Modules that contribute sub-commands, in the order ``bandsynth --help`` lists them.
_COMMAND_MODULES = (
    "bandsynth.demo",
    "bandsynth.translator",
    "bandsynth.evaluation",
    "bandsynth.batch",
    "bandsynth.models.zoo",
    "bandsynth.datasets.store",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available sub-command."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="bandsynth",
        description="Predict a galaxy's image in a photometric band nobody observed.",
    )
    parser.add_argument("--version", action="version", version=f"bandsynth {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_cli(subparsers)
    return parser


def main(argv=None) -> int:
    """Run the ``bandsynth`` command; returns the exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # commands that record how they were called (model-card recipes)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
