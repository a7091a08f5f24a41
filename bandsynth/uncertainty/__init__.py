"""Per-pixel uncertainty of a prediction: its components and their calibration.

A prediction's uncertainty lives in the model's scaled (asinh) space.  Its standard
deviation combines up to three components (`combine`): the network's own sigma head,
the spread over the 8 flips/rotations (``tta=True``) and the inputs' noise
propagated by Monte Carlo draws (`sample`; the draws belong to the pixels,
`PixelDraws`).  A calibration (`Calibration`), fitted per `predict` configuration on
galaxies used neither for training nor for choosing the checkpoint, multiplies it by
a temperature that depends on the predicted brightness, and states the error
distribution (a generalized normal distribution, Gaussian and Laplace among them,
whose shape describes the calibration pixels best) and so how much wider the 95.45 %
interval is than the 68.27 % one.  The interval
``mean +- sigma`` is mapped through the exact inverse of the scaling, and the standard
deviation written to the ``UNCERT`` extension is half the width of the mapped 68.27 %
interval (`flux_sigma`); the temperature is fitted so that the symmetric flux interval
``prediction +- UNCERT`` holds 68.27 % of the calibration pixels
(`temperature_for_flux_half_width`).
"""

from .calibration import (
    CALIBRATION_DRAWS, CONFIGURATIONS, DISTRIBUTIONS, SHAPES, Calibration, configuration_name, fit_calibration,
    interval_half_widths,
)
from .components import combine, flux_sigma, sample, temperature_for_flux_half_width
from .draws import PixelDraws, grid_origin

__all__ = [
    "CALIBRATION_DRAWS", "CONFIGURATIONS", "DISTRIBUTIONS", "SHAPES", "Calibration", "PixelDraws", "configuration_name",
    "fit_calibration", "grid_origin", "interval_half_widths", "combine", "flux_sigma", "sample",
    "temperature_for_flux_half_width",
]
