"""bandsynth: predict a galaxy's image in a photometric band nobody observed."""

from importlib.metadata import PackageNotFoundError, version

from .bands import Band, get_band, list_bands

try:
    __version__ = version("bandsynth")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["Band", "get_band", "list_bands", "__version__"]
