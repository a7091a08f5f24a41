"""Data sets: the built-in mock universe, on-disk data sets and torch loaders.

* :mod:`bandsynth.datasets.mock` -- paired multi-band mock galaxies with known truth
  (:func:`make_galaxy`, :func:`make_dataset`).
* :mod:`bandsynth.datasets.store` -- data sets on disk (memory-mapped FITS cubes and a
  manifest): :func:`open_dataset`, :func:`write_dataset`, ``bandsynth mock``.
* :mod:`bandsynth.datasets.torch_data` -- (inputs, target) pairs for training (imported on
  demand, it needs torch).
* :mod:`bandsynth.datasets.illustris`, :mod:`~bandsynth.datasets.galaxy10`,
  :mod:`~bandsynth.datasets.folder` -- readers of users' real data.

Examples
--------
>>> from bandsynth.datasets import make_dataset
>>> ds = make_dataset(2, seed=0, bands=["NUV", "Ks"], size=16)
>>> len(ds), ds.names
(2, ('NUV', 'Ks'))
"""

from .errors import DataFormatError
from .mock import make_dataset, make_galaxy
from .store import ImageDataset, open_dataset, write_dataset

__all__ = ["DataFormatError", "ImageDataset", "make_dataset", "make_galaxy", "open_dataset", "write_dataset"]
