"""Distances between distributions of a statistic (e.g. Gini or M20) over many galaxies.

The first Wasserstein distance is taken after a *global* min–max normalisation (the min
and max over both distributions map to 0 and 1), so W1 is 0 for identical and at most 1
for disjoint distributions."""

from __future__ import annotations

import numpy as np

from ._utils import finite_1d

__all__ = ["wasserstein1", "global_limits"]


def global_limits(*distributions):
    """``(min, max)`` over all finite values of all ``distributions``.

    Use it to share one normalisation across the rows of a table (several
    models compared against the same truth).

    Parameters
    ----------
    *distributions : array-like
        Samples; non-finite values are ignored.

    Returns
    -------
    limits : tuple of float
        ``(min, max)``.

    Examples
    --------
    >>> global_limits([0.3, 0.5], [0.4, 0.7, float("nan")])
    (0.3, 0.7)
    """
    if not distributions:
        raise ValueError("global_limits needs at least one distribution")
    vals = [np.asarray(d, dtype=float).ravel() for d in distributions]
    vals = np.concatenate(vals)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        raise ValueError("the distributions have no finite values")
    return float(vals.min()), float(vals.max())


def wasserstein1(u, v, *, limits=None):
    """First Wasserstein (earth mover's) distance after global min–max scaling.

    Both samples are mapped to [0, 1] with the same ``(min, max)`` - by default
    those of the two samples together (Zaazou et al. §2.2) - so the distance
    is 0 for identical and at most 1 for disjoint distributions.

    Parameters
    ----------
    u, v : 1-D arrays
        The two samples (e.g. Gini of predictions and of truths).  Non-finite
        values are dropped with a warning.
    limits : (float, float), optional
        Explicit global ``(min, max)``, e.g. from :func:`global_limits` over
        every model of a table.  All values must lie inside.

    Returns
    -------
    w1 : float
        The distance, between 0 and 1.

    Examples
    --------
    >>> wasserstein1([0.40, 0.50, 0.60], [0.40, 0.50, 0.60])
    0.0
    >>> round(wasserstein1([0.4, 0.5], [0.5, 0.6], limits=(0.0, 1.0)), 6)
    0.1
    """
    from scipy.stats import wasserstein_distance

    a = finite_1d(u, "u")
    b = finite_1d(v, "v")
    if limits is None:
        lo, hi = global_limits(a, b)
    else:
        try:
            lo, hi = (float(x) for x in limits)
        except (TypeError, ValueError):
            raise TypeError(f"limits must be a pair of numbers (min, max), got {limits!r}") from None
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi < lo:
            raise ValueError(f"limits must be finite with min <= max, got {limits!r}")
        tol = 1e-12 * max(1.0, abs(hi - lo))
        outside = int(np.sum((a < lo - tol) | (a > hi + tol)) + np.sum((b < lo - tol) | (b > hi + tol)))
        if outside:
            raise ValueError(f"{outside} value(s) lie outside limits {limits!r}; widen the limits")
    if hi == lo:
        return 0.0
    return float(wasserstein_distance((a - lo) / (hi - lo), (b - lo) / (hi - lo)))
