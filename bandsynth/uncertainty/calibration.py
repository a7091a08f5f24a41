"""Calibration of the predicted sigma, per `predict` configuration and by brightness.

A network's sigma head is trained on the training split; on new galaxies it is too
narrow or too wide, and differently so for faint and bright pixels.  A
`Calibration` corrects it with a temperature ``T(brightness)``: the galaxies'
footprint pixels of a *calibration* split (used neither for training nor for
choosing the checkpoint) are binned by predicted brightness (the scaled mean).

The calibrated error distribution is *stated*: Gaussian or Laplace, whichever
describes the calibration pixels better (`DISTRIBUTIONS`; the residuals of image
networks are often heavier-tailed than a Gaussian).  ``T sigma`` is the half-width
of the central 68.27 % interval (what ``UNCERT`` holds, in flux), and the central
95.45 % interval -- "2 sigma" -- is ``half_width_2sigma`` times wider: 2 for a
Gaussian, ``ln(1 / 0.0455) / ln(1 / 0.3173) = 2.69`` for a Laplace distribution.  In
every bin ``T`` is chosen so that the fractions of pixels inside the two intervals
come closest to 68.27 % and 95.45 %; between bin centres ``T`` is interpolated
linearly.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> brightness = rng.random(20000)
>>> z = rng.standard_normal(20000) * (1 + 2 * brightness)      # sigma too small for bright pixels
>>> cal = fit_calibration(np.abs(z), brightness, configuration="plain", n_bins=5)
>>> cal.distribution
'gaussian'
>>> cov = np.mean(np.abs(z) <= cal.temperature(brightness))
>>> bool(abs(cov - 0.683) < 0.01)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CONFIGURATIONS", "DISTRIBUTIONS", "Calibration", "configuration_name", "fit_calibration"]

#: `predict` configurations a model can be calibrated for.
CONFIGURATIONS = ("plain", "tta", "mc", "tta+mc")
_TARGETS = (0.6827, 0.9545)
#: Stated error distributions: the half-width of the central 95.45 % interval in units of
#: the half-width of the central 68.27 % interval.
DISTRIBUTIONS = {"gaussian": 2.0, "laplace": float(np.log(1 / (1 - _TARGETS[1])) / np.log(1 / (1 - _TARGETS[0])))}
_GRID = np.exp(np.linspace(np.log(0.02), np.log(50.0), 1201))


def configuration_name(*, tta, monte_carlo):
    """The calibration key of a `predict` configuration.

    Parameters
    ----------
    tta, monte_carlo : bool
        Whether the prediction averages over the 8 flips/rotations, and whether it
        draws Monte Carlo samples of the inputs' noise.

    Returns
    -------
    str
        One of `CONFIGURATIONS`: "plain", "tta", "mc" or "tta+mc".

    Examples
    --------
    >>> configuration_name(tta=True, monte_carlo=False)
    'tta'
    """
    return {(False, False): "plain", (True, False): "tta", (False, True): "mc", (True, True): "tta+mc"}[
        (bool(tta), bool(monte_carlo))
    ]


def _best_temperature(z, half_width_2sigma):
    """``(T, misfit)``: the 68.27 % half-width whose two interval coverages of ``|z|`` fit best."""
    z = np.sort(z)
    cov1 = np.searchsorted(z, _GRID, side="right") / z.size
    cov2 = np.searchsorted(z, half_width_2sigma * _GRID, side="right") / z.size
    # Weighted by the tolerances the photometric contract states (0.03 at 1 sigma, 0.02 at 2 sigma).
    misfit = ((cov1 - _TARGETS[0]) / 0.03) ** 2 + ((cov2 - _TARGETS[1]) / 0.02) ** 2
    best = int(np.argmin(misfit))
    return float(_GRID[best]), float(misfit[best])


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
        The stated ``distribution``, the coverage reached on the calibration pixels,
        and where they came from.
    """

    configuration: str
    centres: tuple
    temperatures: tuple
    summary: dict

    @property
    def distribution(self):
        """The stated error distribution (a key of `DISTRIBUTIONS`)."""
        return self.summary.get("distribution", "gaussian")

    @property
    def half_width_2sigma(self):
        """Half-width of the central 95.45 % interval, in units of the 68.27 % one (``UNCERT``)."""
        return DISTRIBUTIONS[self.distribution]

    def temperature(self, brightness):
        """``T`` at scaled ``brightness`` (linear between centres, constant beyond).

        Parameters
        ----------
        brightness : float or array-like
            Predicted scaled mean.

        Returns
        -------
        numpy.ndarray or float
            The temperature, same shape as ``brightness``.
        """
        return np.interp(np.asarray(brightness, dtype=np.float64), self.centres, self.temperatures)

    def to_dict(self):
        """Plain JSON-ready form (for the model card).

        Returns
        -------
        dict
            ``centres``, ``temperatures`` and the summary's entries.
        """
        return {"centres": list(self.centres), "temperatures": list(self.temperatures), **self.summary}

    @classmethod
    def from_dict(cls, configuration, data):
        """Rebuild from :meth:`to_dict` output.

        Parameters
        ----------
        configuration : str
            One of `CONFIGURATIONS` (the key the card stores it under).
        data : mapping
            ``centres`` and ``temperatures`` (equal-length, non-empty lists);
            every other entry becomes the ``summary``.

        Returns
        -------
        Calibration
            The calibration.

        Raises
        ------
        ValueError
            If the configuration is unknown or the lists are empty or of
            different lengths.
        """
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
        With the stated distribution that fits the pixels better.
    """
    z_abs = np.asarray(z_abs, dtype=np.float64).ravel()
    brightness = np.asarray(brightness, dtype=np.float64).ravel()
    good = np.isfinite(z_abs) & np.isfinite(brightness)
    z_abs, brightness = z_abs[good], brightness[good]
    if z_abs.size < 10 * n_bins:
        raise ValueError(f"cannot calibrate {configuration!r}: only {z_abs.size} footprint pixels")
    edges = np.unique(np.quantile(brightness, np.linspace(0, 1, n_bins + 1)))
    which = np.clip(np.searchsorted(edges, brightness, side="right") - 1, 0, len(edges) - 2)
    bins = [which == b for b in range(len(edges) - 1) if np.sum(which == b) >= 10]
    centres = tuple(float(np.median(brightness[inside])) for inside in bins)
    fits = {}
    for name, factor in DISTRIBUTIONS.items():
        found = [_best_temperature(z_abs[inside], factor) for inside in bins]
        fits[name] = (tuple(t for t, _ in found), sum(m for _, m in found))
    distribution = min(fits, key=lambda name: fits[name][1])  # the shape that describes the pixels best
    cal = Calibration(configuration, centres, fits[distribution][0], {"distribution": distribution})
    scaled = z_abs / cal.temperature(brightness)
    stats = {
        "distribution": distribution,
        "half_width_2sigma": DISTRIBUTIONS[distribution],
        "coverage_1sigma": float(np.mean(scaled <= 1.0)),
        "coverage_2sigma": float(np.mean(scaled <= DISTRIBUTIONS[distribution])),
        "n_pixels": int(z_abs.size),
    }
    if galaxy is not None:
        galaxy = np.asarray(galaxy).ravel()[good]
        per = [np.mean(scaled[galaxy == g] <= 1.0) for g in np.unique(galaxy)]
        stats["galaxy_coverage_1sigma_p10_p90"] = [float(np.percentile(per, 10)), float(np.percentile(per, 90))]
    return Calibration(configuration, cal.centres, cal.temperatures, {**stats, **summary})
