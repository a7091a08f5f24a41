"""Metrics for a predicted band: pixel, photometric, calibration, colour, morphology.

The pixel metrics follow Zaazou, Bihlo & Tricco (§2.2): MAE, SSIM (Gaussian
window, σ = 1.5, as ``skimage.metrics.structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``) and PSNR,
all with a stated data range; the SSIM gain of the thesis (§3.6.1) is
SSIM(output, target) − SSIM(input, target).  Gini/M20 distributions over a set
of galaxies are compared with the first Wasserstein distance after a *global*
min–max normalisation (the min and max over both distributions map to 0 and
1), so W1 is 0 for identical and at most 1 for disjoint distributions.

Astronomical checks go beyond the paper: aperture and total (Kron) magnitude
errors through photutils, coverage of the predicted uncertainty, and the
fidelity of per-pixel colours against the input bands.

:func:`compare` runs everything on one galaxy and returns a
:class:`ComparisonReport`; :func:`evaluate_pairs` runs it over many galaxies
into an `~astropy.table.Table` (one row per galaxy, failures recorded, never
raised) and :func:`summarize` reduces that table to the paper's one-row summary.

Examples
--------
>>> import numpy as np
>>> from bandsynth.metrics import mae, psnr, wasserstein1
>>> truth = np.linspace(0, 1, 100).reshape(10, 10)
>>> round(mae(truth + 0.01, truth), 6), round(psnr(truth + 0.01, truth, data_range=1.0), 1)
(0.01, 40.0)
>>> wasserstein1([0.0, 0.1], [0.9, 1.0])   # disjoint after global min-max scaling
0.9

Modules
-------
``pixel``
    :func:`mae`, :func:`psnr`, :func:`ssim`, :func:`ssim_gain`.
``photometry``
    :func:`photometric_error`, :func:`colour_fidelity`.
``distributions``
    :func:`global_limits`, :func:`wasserstein1`.
``coverage``
    :func:`calibration`, :func:`footprint_z_scores` (calibration of the uncertainty).
``report``
    :class:`ComparisonReport`, :func:`compare`, :func:`evaluate_pairs`, :func:`summarize`, :func:`metric_unit`.
"""

from .coverage import Calibration, calibration, footprint_z_scores
from .distributions import global_limits, wasserstein1
from .photometry import ColourFidelity, PhotometricError, colour_fidelity, photometric_error
from .pixel import mae, psnr, ssim, ssim_gain
from .report import ComparisonReport, compare, evaluate_pairs, metric_unit, summarize

__all__ = [
    "footprint_z_scores",
    "mae",
    "ssim",
    "psnr",
    "ssim_gain",
    "wasserstein1",
    "global_limits",
    "photometric_error",
    "calibration",
    "colour_fidelity",
    "PhotometricError",
    "Calibration",
    "ColourFidelity",
    "ComparisonReport",
    "compare",
    "evaluate_pairs",
    "summarize",
    "metric_unit",
]
