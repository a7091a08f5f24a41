"""Errors raised by the survey-data loaders, and the checks that raise them.

Every loader in :mod:`bandsynth.datasets` reports malformed input with
:class:`DataFormatError`, whose message names the file and what is missing or
wrong.  Files that do not exist raise the usual :class:`FileNotFoundError`.

Examples
--------
>>> from bandsynth.datasets.errors import DataFormatError
>>> issubclass(DataFormatError, ValueError)
True
"""

from __future__ import annotations

__all__ = ["DataFormatError"]


class DataFormatError(ValueError):
    """A file does not have the layout a loader expects.

    Raised for corrupt or truncated files, missing HDUs or datasets, a band
    absent from a file and inconsistent image shapes.  The message always
    names the offending file.
    """
