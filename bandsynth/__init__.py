"""bandsynth: predict a galaxy's image in a photometric band nobody observed."""

from importlib.metadata import PackageNotFoundError, version

from .bands import Band, get_band, list_bands
from .errors import BandInputError, BandTypeError
from .stack import BandStack
from .synthetic import SyntheticBand
from . import fits_io  # noqa: F401  (registers the "fits" format of SyntheticBand)

try:
    __version__ = version("bandsynth")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "Band",
    "BandInputError",
    "BandStack",
    "BandTypeError",
    "SyntheticBand",
    "Translator",
    "get_band",
    "list_bands",
    "list_models",
    "__version__",
]

# The model layer needs torch, which takes seconds to import: load it on first use.
_LAZY = {"Translator": "bandsynth.translator", "list_models": "bandsynth.models.zoo"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bandsynth' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
