"""Invertible asinh scaling of fluxes (Lupton, Gunn & Szalay 1999).

``AsinhScaling.forward`` computes ``asinh(f / (F_ref * b)) / asinh(m / b)``: a per-band
softening ``b`` and a maximum ``m`` that maps to 1.  Nothing is clipped and the inverse
is exact.

The models use it as a *fixed physical* scaling (``F_ref = 1``: ``b`` and ``m`` in the
model's flux unit, set once from the training set by `fit_scalings` and stored in the
model card), so a pixel's scaled value never depends on the rest of the image -- the
photometric contract.  A per-galaxy reference flux (`reference_flux`, a statistic of
the whole cut-out) is used only to define the space the paper's image metrics are
measured in (`bandsynth.evaluation.metric_space`), never in a prediction.

Examples
--------
>>> import numpy as np
>>> from bandsynth.scaling import AsinhScaling
>>> s = AsinhScaling(softening=0.05)
>>> flux = np.array([-0.1, 0.0, 0.5, 2.0])
>>> np.allclose(s.inverse(s.forward(flux, reference=2.0), reference=2.0), flux)
True
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["AsinhScaling", "reference_flux", "fit_scalings"]


@dataclass(frozen=True)
class AsinhScaling:
    """Forward and exact inverse asinh stretch for one band.

    Construct it as ``AsinhScaling(softening=0.02, maximum=1.0)``; both fields
    must be finite numbers > 0 (`TypeError` / `ValueError` otherwise).

    Attributes
    ----------
    softening : float
        Softening ``b`` in units of the reference flux; fluxes well below
        ``b * F_ref`` are scaled linearly, brighter ones logarithmically.
    maximum : float
        Flux, in units of the reference flux, mapped to 1.
    """

    softening: float = 0.02
    maximum: float = 1.0

    def __post_init__(self):
        for name in ("softening", "maximum"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating)) or isinstance(value, bool):
                raise TypeError(f"AsinhScaling {name} must be a number, got {type(value).__name__}")
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"AsinhScaling {name} must be finite and > 0, got {value!r}")
            object.__setattr__(self, name, float(value))

    @property
    def _norm(self) -> float:
        return float(np.arcsinh(self.maximum / self.softening))

    def forward(self, flux, *, reference=1.0):
        """Scale ``flux`` (array, same units as ``reference``) to network units.

        Parameters
        ----------
        flux : array-like
            Fluxes, in the unit of ``reference`` (for a fixed physical scaling,
            the unit the scaling was fitted in).
        reference : float or array-like
            Reference flux ``F_ref`` (finite, > 0), broadcast against ``flux``;
            1 for the models' fixed physical scaling.

        Returns
        -------
        numpy.ndarray
            ``asinh(flux / (reference * softening)) / asinh(maximum / softening)``;
            ``maximum * reference`` maps to 1, nothing is clipped.

        Raises
        ------
        ValueError
            If ``reference`` is not finite and > 0.
        """
        reference = _check_reference(reference)
        return np.arcsinh(np.asarray(flux) / (reference * self.softening)) / self._norm

    def inverse(self, scaled, *, reference=1.0):
        """Exact inverse of :meth:`forward`.

        Parameters
        ----------
        scaled : array-like
            Values in network units.
        reference : float or array-like
            Reference flux used by :meth:`forward` (finite, > 0).

        Returns
        -------
        numpy.ndarray
            Fluxes, in the unit of ``reference``.

        Raises
        ------
        ValueError
            If ``reference`` is not finite and > 0.
        """
        reference = _check_reference(reference)
        return np.sinh(np.asarray(scaled) * self._norm) * (reference * self.softening)

    def derivative(self, scaled, *, reference=1.0):
        """d(flux)/d(scaled) at ``scaled``: turns a scaled-space sigma into flux units.

        Parameters
        ----------
        scaled : array-like
            Values in network units.
        reference : float or array-like
            Reference flux used by :meth:`forward` (finite, > 0).

        Returns
        -------
        numpy.ndarray
            The derivative of :meth:`inverse`, in flux units (of ``reference``)
            per scaled unit.

        Raises
        ------
        ValueError
            If ``reference`` is not finite and > 0.
        """
        reference = _check_reference(reference)
        return np.cosh(np.asarray(scaled) * self._norm) * (self._norm * reference * self.softening)

    def to_dict(self) -> dict:
        """Parameters as a plain dict (for model cards and FITS headers).

        Returns
        -------
        dict
            ``{"softening": float, "maximum": float}``.
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, params) -> "AsinhScaling":
        """Rebuild from :meth:`to_dict` output.

        Parameters
        ----------
        params : mapping
            ``softening`` and/or ``maximum`` (missing ones take their defaults).

        Returns
        -------
        AsinhScaling
            The scaling.

        Raises
        ------
        ValueError
            If ``params`` has other keys, or a value is not > 0.
        """
        unknown = set(params) - {"softening", "maximum"}
        if unknown:
            raise ValueError(f"unknown AsinhScaling parameters: {sorted(unknown)}")
        return cls(**params)


def _check_reference(reference):
    ref = np.asarray(reference, dtype=float)
    if not np.all(np.isfinite(ref)) or np.any(ref <= 0):
        raise ValueError(f"reference flux must be finite and > 0, got {reference!r}")
    return ref


def reference_flux(images, *, percentile=99.5):
    """One reference flux for a set of co-aligned band images.

    The largest of the bands' ``percentile``-th pixel percentiles (NaNs ignored),
    so the brightest band of the galaxy sets the scale for all of them.

    Parameters
    ----------
    images : sequence of array-like
        The band images (any shapes), in one flux unit.
    percentile : float
        Pixel percentile (0-100) taken in each band.

    Returns
    -------
    float
        The reference flux, in the unit of the images.

    Raises
    ------
    ValueError
        If no band has a positive flux at that percentile.
    """
    with warnings.catch_warnings():  # all-NaN bands are reported below, not by numpy
        warnings.simplefilter("ignore", RuntimeWarning)
        levels = [np.nanpercentile(np.asarray(im, dtype=float), percentile) for im in images]
        level = float(np.nanmax(levels)) if levels else np.nan
    if not np.isfinite(level) or level <= 0:
        raise ValueError(
            f"cannot set a reference flux: the {percentile}th percentile of every band is <= 0 "
            "(is the image empty or background-only?)"
        )
    return level


def fit_scalings(cubes, references, *, stretch=50.0, quantile=0.9, percentile=99.5):
    """Choose each band's :class:`AsinhScaling` from a training set.

    For every galaxy the band's ``percentile``-th pixel level is divided by the
    galaxy's reference flux; the ``quantile`` of that ratio over the set becomes
    ``maximum`` (so a typical galaxy fills [0, 1] in every band while colours
    still change from galaxy to galaxy), and ``softening = maximum / stretch``.

    Parameters
    ----------
    cubes : mapping of band name to array of shape (n_galaxies, ny, nx)
        The training images of each band, in one flux unit.
    references : array of shape (n_galaxies,)
        Reference flux of each galaxy (see :func:`reference_flux`); all ones
        for a fixed physical scaling.
    stretch : float
        Ratio of ``maximum`` to ``softening``: how far into the logarithmic
        regime the brightest pixels go.
    quantile : float
        Quantile (0-1) over the galaxies of the ratio that becomes ``maximum``.
    percentile : float
        Pixel percentile (0-100) taken in every image (NaNs ignored).

    Returns
    -------
    dict of band name to AsinhScaling
        One scaling per band of ``cubes``, in units of the reference flux.

    Raises
    ------
    ValueError
        If ``references`` is not a 1-D array of finite fluxes > 0, a cube is not
        of shape (n_galaxies, ny, nx), or a band has no positive flux.

    Examples
    --------
    >>> import numpy as np
    >>> cube = np.abs(np.random.default_rng(0).normal(size=(4, 8, 8)))
    >>> refs = np.array([reference_flux([c]) for c in cube])
    >>> s = fit_scalings({"r": cube}, refs)
    >>> round(s["r"].maximum / s["r"].softening)
    50
    """
    references = np.asarray(references, dtype=float)
    if references.ndim != 1 or not np.all(np.isfinite(references)) or np.any(references <= 0):
        raise ValueError("references must be a 1-D array of finite fluxes > 0")
    scalings = {}
    for band, cube in cubes.items():
        cube = np.asarray(cube, dtype=float)
        if cube.ndim != 3 or cube.shape[0] != references.size:
            raise ValueError(
                f"band {band!r}: expected an array of shape ({references.size}, ny, nx), got {cube.shape}"
            )
        levels = np.nanpercentile(cube.reshape(cube.shape[0], -1), percentile, axis=1) / references
        maximum = float(np.nanquantile(levels, quantile))
        if not np.isfinite(maximum) or maximum <= 0:
            raise ValueError(f"band {band!r}: no positive flux to set its scaling from")
        scalings[band] = AsinhScaling(softening=maximum / stretch, maximum=maximum)
    return scalings
