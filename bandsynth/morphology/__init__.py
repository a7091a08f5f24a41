"""Galaxy morphology: segmentation, Gini, M20 and CAS.

Three layers, one module each:

* :func:`segment` finds the galaxy with photutils (background subtraction,
  Gaussian smoothing, :func:`~photutils.segmentation.detect_sources` and
  :func:`~photutils.segmentation.deblend_sources`) and picks the segment at
  (or nearest to) the image centre.
* :func:`measure_morphology` runs statmorph on that segment and returns a
  :class:`MorphologyResult` (Gini, M20, concentration, asymmetry, smoothness,
  optional Sérsic fit) with statmorph's quality flag carried through.
* :func:`gini_m20` is a fast re-implementation of statmorph's Gini and M20 for
  thousands of images.  It follows statmorph's own chain step by step
  (outlier masking, centroid, circular Petrosian radius, asymmetry centre,
  elliptical Petrosian radius, the smoothed "Gini segmap", then Lotz et al.
  2004 Gini over that segmap and M20 about the flux centroid of that segmap)
  with exact pixel/ellipse overlaps computed only on the aperture edge, and
  skips everything Gini and M20 do not need (MID statistics, Sérsic fits,
  shape asymmetry).  On 100 mock galaxies it agrees with statmorph to
  4e-5 (mostly to rounding error) and runs ~25 times faster than
  ``statmorph.SourceMorphology`` (~14 times faster than statmorph evaluating
  only its Gini/M20 chain).  It loops over the images with vectorised numpy
  kernels, because statmorph's chain (Nelder-Mead, root finding) is
  sequential per galaxy.

Examples
--------
>>> import numpy as np
>>> from bandsynth.morphology import gini_m20
>>> y, x = np.mgrid[:64, :64]
>>> image = np.exp(-np.hypot(x - 31.7, y - 32.2) / 4.0)
>>> segmap = (image > 1e-3).astype(int)
>>> result = gini_m20(image, segmap)
>>> bool(0.4 < result.gini[0] < 0.7), bool(-2.5 < result.m20[0] < -1.5)
(True, True)

Modules
-------
``segmentation``
    :func:`segment`, :class:`Segmentation`, :func:`detection_footprint` and :func:`detection_image` (photutils).
``measure``
    :func:`measure_morphology` and :class:`MorphologyResult` (the statmorph wrapper).
``fast_gini_m20``
    :func:`gini_m20` and :class:`GiniM20` (fast batched Gini/M20).
``image``
    :func:`parse_image`, the image parser shared with `bandsynth.metrics`.
"""

from .fast_gini_m20 import GiniM20, gini_m20
from .image import ParsedImage, parse_image
from .measure import MorphologyResult, measure_morphology
from .segmentation import Segmentation, detection_footprint, detection_image, segment

__all__ = [
    "parse_image",
    "ParsedImage",
    "MorphologyResult",
    "Segmentation",
    "GiniM20",
    "segment",
    "detection_footprint",
    "detection_image",
    "measure_morphology",
    "gini_m20",
]
