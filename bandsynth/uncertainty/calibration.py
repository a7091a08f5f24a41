"""Calibration of the predicted sigma, per `predict` configuration and by brightness.

A network's sigma head is trained on the training split; on new galaxies it is too
narrow or too wide, and differently so for faint and bright pixels.  A
`Calibration` corrects it with a temperature ``T(brightness)``: the galaxies'
footprint pixels of a *calibration* split (used neither for training nor for
choosing the checkpoint) are binned by predicted brightness (the scaled mean).

The calibrated error distribution is *stated*: a generalized normal distribution
(density ``exp(-|x / a| ** beta)``; ``beta = 2`` is the Gaussian, ``beta = 1`` the
Laplace distribution, `DISTRIBUTIONS`) whose shape ``beta`` describes the
calibration pixels best (the residuals of image networks are often heavier-tailed
than a Gaussian, sometimes than a Laplace distribution).  ``T sigma`` is the half-width
of the central 68.27 % interval (what ``UNCERT`` holds, in flux), and the central
95.45 % interval -- "2 sigma" -- is ``half_width_2sigma`` times wider: 2 for a
Gaussian, ``ln(1 / 0.0455) / ln(1 / 0.3173) = 2.69`` for a Laplace distribution
(`interval_half_widths`).  In every bin ``T`` is chosen so that the fractions of
pixels inside the two intervals come closest to 68.27 % and 95.45 %; between bin
centres ``T`` is interpolated linearly.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> brightness = rng.random(20000)
>>> z = rng.standard_normal(20000) * (1 + 2 * brightness)      # sigma too small for bright pixels
>>> cal = fit_calibration(np.abs(z), brightness, configuration="plain", n_bins=5)
>>> cal.distribution, cal.shape
('gaussian', 2.0)
>>> cov = np.mean(np.abs(z) <= cal.temperature(brightness))
>>> bool(abs(cov - 0.683) < 0.01)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import gennorm

__all__ = ["CALIBRATION_DRAWS", "CONFIGURATIONS", "DISTRIBUTIONS", "SHAPES", "Calibration", "configuration_name",
           "fit_calibration", "interval_half_widths"]

#: `predict` configurations a model can be calibrated for.
CONFIGURATIONS = ("plain", "tta", "mc", "tta+mc")
#: Monte Carlo draws of the inputs' noise the "mc" calibrations are fitted with (``predict``'s default):
#: fewer draws give a noisier noise term, which the calibration does not cover.
CALIBRATION_DRAWS = 8
_TARGETS = (0.6827, 0.9545)
#: The named shapes ``beta`` of the generalized normal distribution.
DISTRIBUTIONS = {"gaussian": 2.0, "laplace": 1.0}
#: Shapes a calibration chooses from (0.5: tails much heavier than a Laplace distribution's, 3: lighter than a Gaussian's).
SHAPES = tuple(float(b) for b in np.round(np.arange(0.5, 3.001, 0.1), 1))


def interval_half_widths(shape, levels=(0.682689, 0.954500, 0.997300)):
    """Half-widths of central intervals of a generalized normal distribution, in units of the 68.27 % one.

    Parameters
    ----------
    shape : float
        The distribution's ``beta`` (2: Gaussian, 1: Laplace).
    levels : sequence of float
        Probabilities the intervals hold.

    Returns
    -------
    tuple of float
        One half-width per level.

    Examples
    --------
    >>> [round(w, 3) for w in interval_half_widths(2.0)]
    [1.0, 2.0, 3.0]
    >>> round(interval_half_widths(1.0)[1], 3)  # Laplace: ln(1 / 0.0455) / ln(1 / 0.3173)
    2.692
    """
    one = gennorm.ppf(0.5 + 0.682689 / 2, shape)
    return tuple(float(gennorm.ppf(0.5 + p / 2, shape) / one) for p in levels)


def _distribution_name(shape):
    return next((name for name, beta in DISTRIBUTIONS.items() if beta == shape), "generalized normal")


#: Temperatures tried, log-spaced.  Down to 1e-3: one sigma head serves every request of an any-band
#: model, so the request with every other band at hand may need a sigma 50x narrower than the average.
_GRID = np.exp(np.linspace(np.log(1e-3), np.log(50.0), 1661))


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


def _best_temperature(needed_1sigma, needed_2sigma):
    """``(T, misfit)``: the temperature whose two interval coverages fit best.

    ``needed_*``: per pixel, the temperature from which the pixel lies inside the interval.
    """
    cov1 = np.searchsorted(np.sort(needed_1sigma), _GRID, side="right") / needed_1sigma.size
    cov2 = np.searchsorted(np.sort(needed_2sigma), _GRID, side="right") / needed_2sigma.size
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
        """The stated error distribution: "gaussian", "laplace" or "generalized normal" (of `shape`)."""
        return self.summary.get("distribution", "gaussian")

    @property
    def shape(self):
        """``beta`` of the stated generalized normal distribution (2: Gaussian, 1: Laplace)."""
        return float(self.summary.get("shape", DISTRIBUTIONS.get(self.distribution, 2.0)))

    @property
    def half_width_2sigma(self):
        """Half-width of the central 95.45 % interval, in units of the 68.27 % one (``UNCERT``)."""
        return interval_half_widths(self.shape)[1]

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


def fit_calibration(z_abs, brightness, *, configuration, n_bins=8, galaxy=None, needed_temperature=None,
                    **summary):
    """Fit a `Calibration` to footprint pixels.

    Parameters
    ----------
    z_abs : ndarray
        ``|truth - mean| / sigma`` in scaled units, one value per footprint pixel: the
        temperature from which the pixel lies inside ``mean +- T sigma``.
    brightness : ndarray
        The predicted scaled mean of the same pixels.
    configuration : str
        Which `predict` configuration produced them (`CONFIGURATIONS`).
    n_bins : int
        Brightness bins (equal numbers of pixels).
    galaxy : ndarray of int, optional
        Galaxy index of every pixel, to report the spread of per-galaxy coverage.
    needed_temperature : callable, optional
        ``k -> ndarray``: per pixel, the temperature from which it lies inside ``k``
        times the 1-sigma half-width (``z_abs`` is its value at ``k = 1``).
        Default ``z_abs / k``, intervals in the scaled space; the translator's
        calibration measures them in flux (`temperature_for_flux_half_width`).
    **summary
        Further entries for the card (split, number of galaxies, ...).

    Returns
    -------
    Calibration
        With the stated distribution (of `SHAPES`) that fits the pixels best.
    """
    z_abs = np.asarray(z_abs, dtype=np.float64).ravel()
    brightness = np.asarray(brightness, dtype=np.float64).ravel()
    good = np.isfinite(z_abs) & np.isfinite(brightness)
    if needed_temperature is None:
        def needed_temperature(k, z_abs=z_abs):
            return z_abs / k
    needed = {}

    def needed_for(k):  # the usable pixels', once per half-width
        if k not in needed:
            needed[k] = np.asarray(needed_temperature(k), dtype=np.float64).ravel()[good]
        return needed[k]

    z_abs, brightness = z_abs[good], brightness[good]
    needed[1.0] = z_abs
    if z_abs.size < 10 * n_bins:
        raise ValueError(f"cannot calibrate {configuration!r}: only {z_abs.size} footprint pixels")
    edges = np.unique(np.quantile(brightness, np.linspace(0, 1, n_bins + 1)))
    if len(edges) < 2:  # numpy said "array of sample points is empty"
        raise ValueError(f"cannot calibrate {configuration!r}: the predicted brightness of its {z_abs.size} pixels "
                         f"has no spread to bin (every pixel {edges[0]:g})")
    which = np.clip(np.searchsorted(edges, brightness, side="right") - 1, 0, len(edges) - 2)
    bins = [which == b for b in range(len(edges) - 1) if np.sum(which == b) >= 10]
    # Where an observed truth's own noise alone covers the residuals (its faint pixels), no temperature is
    # needed to reach 68 %: the data leave T free and the fit sank to the grid's floor, a sigma up to 1000x too
    # small there.  Such bins are left out, and take the temperature of the nearest fitted ones (`temperature`:
    # linear between centres, constant beyond).  Where every bin is free (a model as good as the truth's noise
    # can tell) the fit stays as small as the data allow.
    free = [bool(np.mean(z_abs[inside] <= _GRID[0]) >= _TARGETS[0] - 0.03) for inside in bins]
    free = [False] * len(bins) if all(free) else free
    bins = [inside for inside, left_out in zip(bins, free) if not left_out]
    centres = tuple(float(np.median(brightness[inside])) for inside in bins)
    fits = {}
    for shape in SHAPES:
        wide = needed_for(interval_half_widths(shape)[1])
        found = [_best_temperature(z_abs[inside], wide[inside]) for inside in bins]
        fits[shape] = (tuple(t for t, _ in found), sum(m for _, m in found))
    shape = min(fits, key=lambda beta: fits[beta][1])  # the shape that describes the pixels best
    distribution, half_width = _distribution_name(shape), interval_half_widths(shape)[1]
    cal = Calibration(configuration, centres, fits[shape][0], {})
    temperature = cal.temperature(brightness)
    inside_1sigma = z_abs <= temperature
    stats = {
        "distribution": distribution,
        "shape": shape,
        "half_width_2sigma": half_width,
        "coverage_1sigma": float(np.mean(inside_1sigma)),
        "coverage_2sigma": float(np.mean(needed_for(half_width) <= temperature)),
        "n_pixels": int(z_abs.size),
        **({"bins_left_free": int(sum(free))} if any(free) else {}),
    }
    if galaxy is not None:
        galaxy = np.asarray(galaxy).ravel()[good]
        per = [np.mean(inside_1sigma[galaxy == g]) for g in np.unique(galaxy)]
        stats["galaxy_coverage_1sigma_p10_p90"] = [float(np.percentile(per, 10)), float(np.percentile(per, 90))]
    return Calibration(configuration, cal.centres, cal.temperatures, {**stats, **summary})
