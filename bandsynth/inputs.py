"""From a `~bandsynth.BandStack` to the arrays a model reads: units, bad pixels, scaling.

One path for every model: each input band is converted to the model's flux unit
(astropy units, `bandsynth.units.parse_unit`), its masked or non-finite pixels are
filled from their neighbours (so the network sees a plausible image; they are
masked in the prediction) and it is scaled by the model's fixed per-band asinh
scaling.  The inputs' own uncertainties, when present, are returned in the model's unit
for the Monte Carlo part of the uncertainty (noise is drawn in flux, then scaled).
"""

from __future__ import annotations

import numpy as np

from ._io import input_files
from .errors import BandInputError
from .units import area_of, to_unit

__all__ = ["prepare_inputs", "group_by_shape", "fill_bad_pixels"]


# Passes of the bad-pixel fill: a hole up to about 16 x this many pixels across is filled from its surroundings.
_FILL_PASSES = 64
_FILL_SIGMA, _FILL_TRUNCATE = 2.0, 4.0  # the Gaussian of the fill, cut at 4 sigma: 8 pixels of reach per pass


def fill_bad_pixels(data, bad):
    """Replace bad pixels by a Gaussian-weighted mean of good neighbours (a normalised convolution).

    Parameters
    ----------
    data : numpy.ndarray
        2-D image.
    bad : numpy.ndarray of bool
        Same shape as ``data``; True where a pixel is bad.

    Returns
    -------
    numpy.ndarray
        A float64 copy of ``data`` with bad pixels filled: a large hole from its edge inwards, pass by
        pass; 0 (the sky) where no good pixel is in reach (a tile of bad pixels only) or the passes
        end first (a hole over about 1000 pixels across).
    """
    from scipy.ndimage import gaussian_filter

    filled, known = np.where(bad, 0.0, data).astype(np.float64), ~np.asarray(bad, dtype=bool)
    reach = int(_FILL_TRUNCATE * _FILL_SIGMA + 0.5)
    # Each pass reaches 8 pixels further into a hole, from its own surroundings: the fill stays local, so a cut-out
    # or a tile gives the same pixels (the median of the whole image or tile, used beyond one pass, moved the flux
    # of unmasked pixels beside a 24-pixel hole by 1 % with the framing).  Outside the image is unknown, not zero.
    for _ in range(_FILL_PASSES):
        if known.all():
            break
        ys, xs = np.nonzero(~known)  # the pass needs only the holes and a reach around them
        box = (slice(max(ys.min() - reach, 0), ys.max() + reach + 1),
               slice(max(xs.min() - reach, 0), xs.max() + reach + 1))
        weight = gaussian_filter(known[box].astype(np.float64), _FILL_SIGMA, mode="constant", truncate=_FILL_TRUNCATE)
        total = gaussian_filter(filled[box] * known[box], _FILL_SIGMA, mode="constant", truncate=_FILL_TRUNCATE)
        new = ~known[box] & (weight > 0)
        if not new.any():  # no good pixel within reach: nothing to fill from
            break
        filled[box][new] = total[new] / weight[new]
        known[box] |= new
    filled[~known] = 0.0
    return filled


def prepare_inputs(stack, bands, scalings, *, unit, model="model", minimum_size=4, window=None, restoration=None):
    """Scaled input ``(n_bands, ny, nx)`` float32, bad-pixel mask, and the inputs' sigma in flux units (or None).

    Parameters
    ----------
    stack : `~bandsynth.BandStack`
    bands : sequence of str
        The model's input bands, in channel order.
    scalings : mapping of str to `~bandsynth.scaling.AsinhScaling`
    unit : `~astropy.units.UnitBase`
        The model's flux unit.
    model : str
        Model name, for messages.
    minimum_size : int
        Smallest image side the network takes.
    window : tuple of two slices, optional
        Only this part of the images (the tiles of a large image, prepared one by one
        so that memory stays bounded).
    restoration : `~bandsynth.restored_noise.NoiseRestoration`, optional
        Adds back the noise an interpolation smoothed away, to the bands it names.

    Returns
    -------
    x : numpy.ndarray
        Scaled input ``(n_bands, ny, nx)``, float32.
    mask : numpy.ndarray of bool
        ``(ny, nx)``; True where any input band is bad (non-finite or masked; filled in ``x``).
    noise : numpy.ndarray or None
        The inputs' sigma ``(n_bands, ny, nx)`` in flux units, float32; None unless every band
        carries an uncertainty (a Monte Carlo of some bands' noise would be calibrated as one of
        all of them, and state too small a sigma).

    Raises
    ------
    TypeError
        ``stack`` is not a BandStack.
    ValueError
        A band is missing, has a unit that does not convert, or the image is too small.
    """
    from .stack import BandStack

    if not isinstance(stack, BandStack):
        raise TypeError(f"predict expects a BandStack or a list of them, got {type(stack).__name__}")
    available = {b.name for b in stack.bands}
    missing = [b for b in bands if b not in available]
    if missing:
        raise BandInputError(  # naming the bands missing, for a batch report's band column
            f"model {model!r} needs bands {', '.join(bands)}; the stack has "
            f"{', '.join(sorted(available)) or 'none'} (missing: {', '.join(missing)})", band=",".join(missing)
        )
    if min(stack.shape) < minimum_size:
        raise ValueError(f"image of {stack.shape[0]}x{stack.shape[1]} pixels is smaller than the {minimum_size}x"
                         f"{minimum_size} pixels model {model!r} needs")
    window = (slice(None), slice(None)) if window is None else tuple(window)
    shape = np.empty(stack.shape, dtype=bool)[window].shape  # a view: no pixels are touched
    scaled, sigmas = [], []
    mask = np.zeros(shape, dtype=bool)
    files = input_files(stack.meta.get("inputs"))
    area = area_of(stack.wcs)  # a band in surface brightness becomes a flux per pixel through it
    for band in bands:
        image = stack.view(band, window)  # just the window: stack[band] would copy the whole image
        path = files.get(band)
        data = np.asarray(image.data, dtype=np.float64)
        sd = None if image.uncertainty is None else np.asarray(image.uncertainty.array, dtype=np.float64)  # a σ
        if image.unit is not None and image.unit != unit:
            # σ with its data: in magnitudes it converts through the flux (to first order), not as a magnitude
            converted = to_unit(data, image.unit, unit, band=band, path=path, pixel_area=area, uncertainty=sd)
            data, sd = converted if sd is not None else (converted, None)
        bad = ~np.isfinite(data)
        if image.mask is not None:
            bad |= np.asarray(image.mask, dtype=bool)
        if restoration is not None and band in restoration:
            sigma = None if sd is None else np.where(bad | ~np.isfinite(sd), 0.0, sd)  # None: measured in the image
            data = data + restoration.noise(band, data.shape, sigma=sigma, window=window)
        if bad.any():
            data = fill_bad_pixels(data, bad)
        mask |= bad
        x = scalings[band].forward(data)
        scaled.append(x.astype(np.float32))
        sigmas.append(None if sd is None else np.where(bad | ~np.isfinite(sd), 0.0, sd).astype(np.float32))
    noise = np.stack(sigmas) if all(s is not None for s in sigmas) else None
    return np.stack(scaled), mask, noise


def group_by_shape(shapes):
    """Lists of indices of equal shapes, in first-seen order (images that share a network call).

    Parameters
    ----------
    shapes : iterable of tuple

    Returns
    -------
    list of list of int

    Examples
    --------
    >>> group_by_shape([(2, 8, 8), (2, 4, 4), (2, 8, 8)])
    [[0, 2], [1]]
    """
    groups = {}
    for i, shape in enumerate(shapes):
        groups.setdefault(tuple(shape), []).append(i)
    return list(groups.values())
