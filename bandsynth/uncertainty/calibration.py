"""Calibration of the predicted sigma, per `predict` configuration and by brightness.

A network's sigma head is trained on the training split; on new galaxies it is too
narrow or too wide, and differently so for faint and bright pixels.  A
`Calibration` corrects it with a temperature ``T(brightness)``: the galaxies'
footprint pixels of a *calibration* split (used neither for training nor for
choosing the checkpoint) are binned by predicted brightness (the scaled mean), and
in every bin ``T`` is chosen so that the fractions of pixels with
``|truth - mean| <= k T sigma`` come closest to the Gaussian 68.27 % (k = 1) and
95.45 % (k = 2).  Between bin centres ``T`` is interpolated linearly.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> brightness = rng.random(20000)
>>> z = rng.standard_normal(20000) * (1 + 2 * brightness)      # sigma too small for bright pixels
>>> cal = fit_calibration(np.abs(z), brightness, configuration="plain", n_bins=5)
>>> cov = np.mean(np.abs(z) <= cal.temperature(brightness))
>>> bool(abs(cov - 0.683) < 0.01)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CONFIGURATIONS", "Calibration", "configuration_name", "fit_calibration"]

#: `predict` configurations a model can be calibrated for.
CONFIGURATIONS = ("plain", "tta", "mc", "tta+mc")
_TARGETS = (0.6827, 0.9545)
_GRID = np.exp(np.linspace(np.log(0.02), np.log(50.0), 1201))


def configuration_name(*, tta, monte_carlo):
    """The calibration key of a `predict` configuration.

    Examples
    --------
    >>> configuration_name(tta=True, monte_carlo=False)
    'tta'
    """
    return {(False, False): "plain", (True, False): "tta", (False, True): "mc", (True, True): "tta+mc"}[
        (bool(tta), bool(monte_carlo))
    ]


def _best_temperature(z):
    """Temperature whose 1- and 2-sigma coverages of ``|z|`` are closest to the Gaussian ones."""
    z = np.sort(z)
    cov1 = np.searchsorted(z, _GRID, side="right") / z.size
    cov2 = np.searchsorted(z, 2 * _GRID, side="right") / z.size
    # Weighted by the tolerances the photometric contract states (0.03 at 1 sigma, 0.02 at 2 sigma).
    misfit = ((cov1 - _TARGETS[0]) / 0.03) ** 2 + ((cov2 - _TARGETS[1]) / 0.02) ** 2
    return float(_GRID[int(np.argmin(misfit))])


@dataclass(frozen=True)
class Calibration:
    """A brightness-dependent temperature for one `predict` configuration.

    Attributes
    ----------
    configuration : str
        One of `CONFIGURATIONS`.
    centres : tuple of float
        Bin centres in scaled brightness (the predicted scaled mean).
    temperatures : tuple of float
        Temperature at each centre.
    summary : dict
        Coverage reached on the calibration pixels, and where they came from.
    """

    configuration: str
    centres: tuple
    temperatures: tuple
    summary: dict

    def temperature(self, brightness):
        """``T`` at scaled ``brightness`` (linear between centres, constant beyond)."""
        return np.interp(np.asarray(brightness, dtype=np.float64), self.centres, self.temperatures)

    def to_dict(self):
        """Plain JSON-ready form (for the model card)."""
        return {"centres": list(self.centres), "temperatures": list(self.temperatures), **self.summary}

    @classmethod
    def from_dict(cls, configuration, data):
        """Rebuild from :meth:`to_dict` output."""
        if configuration not in CONFIGURATIONS:
            raise ValueError(f"unknown calibration configuration {configuration!r}; known: {', '.join(CONFIGURATIONS)}")
        data = dict(data)
        centres, temperatures = tuple(map(float, data.pop("centres"))), tuple(map(float, data.pop("temperatures")))
        if len(centres) != len(temperatures) or not centres:
            raise ValueError(f"calibration {configuration!r}: centres and temperatures must be equal-length lists")
        return cls(configuration, centres, temperatures, data)


def fit_calibration(z_abs, brightness, *, configuration, n_bins=8, galaxy=None, **summary):
    """Fit a `Calibration` to footprint pixels.

    Parameters
    ----------
    z_abs : ndarray
        ``|truth - mean| / sigma`` in scaled units, one value per footprint pixel.
    brightness : ndarray
        The predicted scaled mean of the same pixels.
    configuration : str
        Which `predict` configuration produced them (`CONFIGURATIONS`).
    n_bins : int
        Brightness bins (equal numbers of pixels).
    galaxy : ndarray of int, optional
        Galaxy index of every pixel, to report the spread of per-galaxy coverage.
    **summary
        Further entries for the card (split, number of galaxies, ...).

    Returns
    -------
    Calibration
    """
    z_abs = np.asarray(z_abs, dtype=np.float64).ravel()
    brightness = np.asarray(brightness, dtype=np.float64).ravel()
    good = np.isfinite(z_abs) & np.isfinite(brightness)
    z_abs, brightness = z_abs[good], brightness[good]
    if z_abs.size < 10 * n_bins:
        raise ValueError(f"cannot calibrate {configuration!r}: only {z_abs.size} footprint pixels")
    edges = np.unique(np.quantile(brightness, np.linspace(0, 1, n_bins + 1)))
    which = np.clip(np.searchsorted(edges, brightness, side="right") - 1, 0, len(edges) - 2)
    centres, temperatures = [], []
    for b in range(len(edges) - 1):
        inside = which == b
        if inside.sum() < 10:
            continue
        centres.append(float(np.median(brightness[inside])))
        temperatures.append(_best_temperature(z_abs[inside]))
    cal = Calibration(configuration, tuple(centres), tuple(temperatures), {})
    scaled = z_abs / cal.temperature(brightness)
    stats = {
        "coverage_1sigma": float(np.mean(scaled <= 1.0)),
        "coverage_2sigma": float(np.mean(scaled <= 2.0)),
        "n_pixels": int(z_abs.size),
    }
    if galaxy is not None:
        galaxy = np.asarray(galaxy).ravel()[good]
        per = [np.mean(scaled[galaxy == g] <= 1.0) for g in np.unique(galaxy)]
        stats["galaxy_coverage_1sigma_p10_p90"] = [float(np.percentile(per, 10)), float(np.percentile(per, 90))]
    return Calibration(configuration, cal.centres, cal.temperatures, {**stats, **summary})
