"""Per-pixel uncertainty of a prediction: its components and their calibration.

A prediction's uncertainty is a Gaussian in the model's scaled (asinh) space, with a
standard deviation built from up to three components (`combine`): the network's
own sigma head, the spread over the 8 flips/rotations (``tta=True``) and the inputs'
noise propagated by Monte Carlo draws.  A calibration (`Calibration`), fitted per
`predict` configuration on galaxies used neither for training nor for choosing the
checkpoint, multiplies that sigma by a temperature that depends on the predicted
brightness.  The interval ``mean +- k sigma`` is mapped through the exact inverse of
the scaling, and the standard deviation written to the ``UNCERT`` extension is half
the width of the mapped 1-sigma interval (`flux_sigma`).
"""

from .calibration import CONFIGURATIONS, Calibration, configuration_name, fit_calibration
from .components import combine, flux_sigma, sample

__all__ = ["CONFIGURATIONS", "Calibration", "configuration_name", "fit_calibration", "combine", "flux_sigma", "sample"]
