"""The pixel-to-pixel noise an interpolation took out of an input band, added back before a model reads it.

A band resampled onto a grid of its own pixel size shifted by a fraction ``f`` of a pixel
(`BandStack.reproject <bandsynth.stack.BandStack.reproject>`, bilinear or exact) has each
pixel a mix ``(1 - f) a + f b`` of two input pixels along each axis: its noise keeps its
variance on large scales but loses power between neighbouring pixels, by the transfer
``|H(k)|^2 = 1 - 2 f (1 - f) (1 - cos k)`` per axis.  A model trained on noise as the
surveys deliver it reads the smoother noise as a deeper image, and brightens faint
galaxies (tens of per cent: :doc:`/photometric_contract`).  Adding Gaussian noise with the
missing power spectrum, ``sigma^2 (1 - |H_x|^2 |H_y|^2)``, makes the band's noise white
again with its own sigma, as a model trained on survey images expects -- what GalSim's
``whitenNoise`` does for noise of any correlation; for the two-pixel kernel of a shift it
is two short difference filters, written here rather than adding GalSim for them.

Per axis ``1 - |H(k)|^2 = f (1 - f) |1 - e^{-ik}|^2``, the power of the difference filter
``D w[j] = sqrt(f (1 - f)) (w[j] - w[j - 1])`` on white noise ``w``.  In two dimensions
``1 - A B = (1 - A) + A (1 - B)``, so the noise is ``sigma (D_x w1 + H_x D_y w2)`` with two
independent white fields and ``H_x`` the interpolation's own filter along x.  The fields
are `~bandsynth.uncertainty.PixelDraws` tied to pixel positions, so that every tile,
cut-out and batch of an image gets the same noise at the same pixel, and a prediction is
deterministic for its ``seed``.
"""

from __future__ import annotations

import zlib

import numpy as np

from .uncertainty.draws import grid_origin

__all__ = ["smoothing_shift", "noise_offsets", "restoring_noise", "difference_scatter_ratio", "NoiseRestoration"]

# Draw indices of the restoring fields, far above any Monte Carlo draw's (0, 1, ...): the two must not coincide.
_FIELD_DRAWS = 2**40
# A drift of the shift below this (fraction of a pixel per pixel) is the WCS arithmetic's rounding, not a drift.
_NO_DRIFT = 1e-9


def smoothing_shift(record):
    """The shift of a reprojection record that smoothed its band's noise, or None.

    Parameters
    ----------
    record : mapping
        One of ``stack.meta["reprojection"]`` (`BandStack.reproject <bandsynth.stack.BandStack.reproject>`).

    Returns
    -------
    dict or None
        ``{"fractions": (fy, fx), "reference": (row, column), "gradient": 2 x 2 array}`` (``interpolation_offset``,
        `bandsynth.resample.reproject_all`), or None for a resampling that was no sub-pixel shift of the band's own
        grid, or one by whole pixels (within 0.01 of one, all over the grid), which smooths nothing.

    Examples
    --------
    >>> smoothing_shift({"band": "g", "interpolation_offset": {"fractions": [0.5, 0.25]}})["fractions"]
    (0.5, 0.25)
    >>> smoothing_shift({"band": "g", "interpolation_offset": {"fractions": [0.0, 0.995]}}) is None
    True
    """
    shift = record.get("interpolation_offset") if hasattr(record, "get") else None
    if not shift:
        return None
    fy, fx = (float(f) for f in shift["fractions"])
    gradient = np.asarray(shift.get("gradient", np.zeros((2, 2))), dtype=float)
    if np.abs(gradient).max() <= _NO_DRIFT:
        gradient = np.zeros((2, 2))
    if not gradient.any() and max(min(fy, 1 - fy), min(fx, 1 - fx)) <= 0.01:
        return None
    return {"fractions": (fy, fx), "reference": tuple(float(r) for r in shift.get("reference", (0.0, 0.0))),
            "gradient": gradient}


def noise_offsets(stack, bands):
    """The bands of ``stack`` whose noise a resampling onto their own pixel size smoothed, with the shift.

    Parameters
    ----------
    stack : `~bandsynth.BandStack`
        Its ``meta["reprojection"]`` records (`BandStack.reproject <bandsynth.stack.BandStack.reproject>`).
    bands : sequence of str
        The bands to look at (a model's inputs).

    Returns
    -------
    dict of str to dict
        ``{band: shift}`` (`smoothing_shift`) of the last resampling of each band, where it smoothed the noise.

    Examples
    --------
    >>> from bandsynth import BandStack
    >>> image = np.random.default_rng(0).normal(size=(8, 8))
    >>> shifted = {"band": "g", "interpolation_offset": {"fractions": [0.5, 0.25]}}
    >>> stack = BandStack({"g": image}, unit="nanomaggy", meta={"reprojection": [shifted]})
    >>> noise_offsets(stack, ["g"])["g"]["fractions"]
    (0.5, 0.25)
    """
    last = {r["band"]: r for r in stack.meta.get("reprojection", ()) if hasattr(r, "get") and r.get("band") in bands}
    shifts = {band: smoothing_shift(record) for band, record in last.items()}
    return {band: shift for band, shift in shifts.items() if shift is not None}


def restoring_noise(fields, offsets):
    """The noise, in units of the band's sigma, that makes interpolated white noise white again.

    Parameters
    ----------
    fields : numpy.ndarray
        ``(2, ny + 1, nx + 1)`` independent standard normal fields, one row and column more than the
        window, before it (the difference filters reach one pixel back).
    offsets : tuple
        ``(row fraction, column fraction)`` of the shift: numbers, or ``(ny + 1, nx + 1)`` arrays on the
        fields' pixels where the shift drifts across the grid (slowly: the filters are those of the local shift).

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)``: add it times the band's sigma.

    Examples
    --------
    Bilinearly interpolated white noise plus this is white again, with unit variance:

    >>> rng = np.random.default_rng(1)
    >>> w = rng.standard_normal((401, 401))
    >>> smoothed = 0.25 * (w[1:, 1:] + w[1:, :-1] + w[:-1, 1:] + w[:-1, :-1])   # a shift of half a pixel
    >>> restored = smoothed + restoring_noise(rng.standard_normal((2, 401, 401)), (0.5, 0.5))
    >>> print(f"{smoothed.var():.2f} {restored.var():.2f}")
    0.25 0.99
    >>> print(f"{np.corrcoef(restored[:, 1:].ravel(), restored[:, :-1].ravel())[0, 1]:.2f}")
    -0.00
    """
    fy, fx = (np.asarray(f, dtype=float) for f in offsets)
    fy = fy[1:, :] if fy.ndim else fy  # on the window's rows, and the column before it (for H_x)
    fx = fx[1:, 1:] if fx.ndim else fx  # on the window's pixels
    w1, w2 = fields
    across = np.sqrt(fx * (1 - fx)) * (w1[1:, 1:] - w1[1:, :-1])  # D_x w1
    down = np.sqrt(fy * (1 - fy)) * (w2[1:, :] - w2[:-1, :])  # D_y w2, one column more, for H_x
    return across + (1 - fx) * down[:, 1:] + fx * down[:, :-1]


def difference_scatter_ratio(offsets):
    """How much less neighbouring pixels along a row differ after a bilinear shift of white noise (a ratio of
    standard deviations): what `bandsynth.models.domain.pixel_noise` reads of an interpolated band, against its
    noise restored.

    Parameters
    ----------
    offsets : tuple of float
        ``(row fraction, column fraction)`` of the shift (`noise_offsets`).

    Returns
    -------
    float

    Examples
    --------
    >>> difference_scatter_ratio((0.0, 0.0)), round(difference_scatter_ratio((0.5, 0.5)), 3)
    (1.0, 0.354)
    """
    fy, fx = offsets
    along = (1 - fx) ** 2 + (2 * fx - 1) ** 2 + fx**2  # [1 - fx, fx] convolved with [1, -1]: 2 for white noise
    across = (1 - fy) ** 2 + fy**2
    return float(np.sqrt(along * across / 2.0))


class NoiseRestoration:
    """Restores the noise of a stack's interpolated bands, window by window (`restoring_noise`).

    Parameters
    ----------
    stack : `~bandsynth.BandStack`
    bands : sequence of str
        The model's inputs; those `noise_offsets` finds are restored.
    draws : `~bandsynth.uncertainty.PixelDraws`
        The prediction's random fields (its ``seed``), tied to pixel positions.
    sky_sigma : mapping of str to float, optional
        The noise per pixel, before the resampling, of bands without an uncertainty (the same
        everywhere; `bandsynth.prediction.noise_restoration` measures it in the image).

    Examples
    --------
    >>> from bandsynth import BandStack
    >>> from bandsynth.uncertainty import PixelDraws
    >>> image = np.random.default_rng(0).normal(size=(64, 64))
    >>> stack = BandStack({"g": image}, unit="nanomaggy", uncertainty={"g": np.full((64, 64), 2.0)},
    ...                   meta={"reprojection": [{"band": "g", "interpolation_offset": {"fractions": [0.5, 0.5]}}]})
    >>> restore = NoiseRestoration(stack, ["g"], PixelDraws(0))
    >>> whole = restore.noise("g", (64, 64), sigma=np.full((64, 64), 2.0))
    >>> tile = restore.noise("g", (16, 16), sigma=np.full((16, 16), 2.0), window=(slice(8, 24), slice(40, 56)))
    >>> bool(np.array_equal(tile, whole[8:24, 40:56]))
    True
    """

    def __init__(self, stack, bands, draws, *, sky_sigma=None):
        self.offsets = noise_offsets(stack, bands)
        self.sky_sigma = dict(sky_sigma or {})
        self.draws, self.origin = draws, grid_origin(stack.wcs)
        wcs = None if stack.wcs is None else stack.wcs.celestial
        self.crpix = (0.0, 0.0) if wcs is None else (float(wcs.wcs.crpix[1]) - 1.0, float(wcs.wcs.crpix[0]) - 1.0)

    def _fractions(self, shift, r0, c0, rows, cols):
        """The shift's fractions on the window's pixels and the row and column before them: numbers where it is
        the same all over the grid, else arrays (positions counted from the grid's reference pixel, as the
        record's, so that a cut-out reads the same)."""
        (fy, fx), gradient = shift["fractions"], shift["gradient"]
        if not gradient.any():
            return fy, fx
        dr = (np.arange(r0 - 1, r0 + rows) - self.crpix[0] - shift["reference"][0])[:, None]
        dc = (np.arange(c0 - 1, c0 + cols) - self.crpix[1] - shift["reference"][1])[None, :]
        return ((fy + gradient[0, 0] * dr + gradient[0, 1] * dc) % 1.0,
                (fx + gradient[1, 0] * dr + gradient[1, 1] * dc) % 1.0)

    def __contains__(self, band):
        return band in self.offsets

    def noise(self, band, shape, *, sigma=None, window=None):
        """The noise to add to ``band`` (zero where ``sigma`` is).

        Parameters
        ----------
        band : str
        shape : tuple of int
            ``(rows, columns)`` of the window.
        sigma : numpy.ndarray, optional
            The band's sigma on the window, in the unit of the image it is added to; default: its
            ``sky_sigma``.
        window : tuple of two slices, optional
            The part of the image (start indices; the whole image by default).

        Returns
        -------
        numpy.ndarray
            Of ``shape``.
        """
        rows, cols = shape
        sigma = self.sky_sigma[band] if sigma is None else sigma
        r0, c0 = ((s.start or 0) for s in window) if window is not None else (0, 0)
        key = _FIELD_DRAWS + 2 * zlib.crc32(band.encode())  # the same band's noise whatever the model's other inputs
        fields = np.stack([self.draws.normal(key + k, (1, rows + 1, cols + 1),
                                             origin=(self.origin[0] + r0 - 1, self.origin[1] + c0 - 1))[0]
                           for k in (0, 1)])
        return sigma * restoring_noise(fields, self._fractions(self.offsets[band], r0, c0, rows, cols))

    def describe(self):
        """The provenance of the restoration.

        Returns
        -------
        list of dict
            ``{"band", "offset", "drift", "seed", "sigma"}`` per band restored: the shift's fractions at the grid's
            centre and their drift per pixel (`smoothing_shift`); ``sigma``: ``"uncertainty"`` (the band's), or
            the noise per pixel measured in the image.
        """
        return [{"band": b, "offset": list(f["fractions"]), "drift": f["gradient"].tolist(), "seed": self.draws.seed,
                 "sigma": float(self.sky_sigma[b]) if b in self.sky_sigma else "uncertainty"}
                for b, f in self.offsets.items()]
