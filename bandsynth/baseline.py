"""The linear colour model: a target band as a fixed linear combination of the input bands.

``f_target = sum_i c_i f_i`` per pixel, in flux units, with coefficients fitted by
least squares on training pixels.  It is the physics baseline of the photometric
contract: every model predicts a correction on top of it (inside the network,
`bandsynth.nn.network.TranslationNet`), and every model must beat it in photometry.

Examples
--------
>>> import numpy as np
>>> from bandsynth.baseline import fit_linear_colour
>>> from bandsynth.datasets import make_dataset
>>> ds = make_dataset(8, seed=0, bands=["g", "r", "z"], size=32)
>>> coef = fit_linear_colour(ds, ["g", "z"], "r")
>>> coef.shape
(2,)
"""

from __future__ import annotations

import numpy as np

from .datasets.base import model_input_cube, model_target_cube, usable_sample

__all__ = ["fit_linear_colour", "apply_linear_colour"]


def fit_linear_colour(data, inputs, output, *, split="train", indices=None, max_pixels=2_000_000, seed=0):
    """Least-squares coefficients ``c`` of ``output = sum_i c_i * inputs_i`` (fluxes).

    The target is the noise-free truth where the data set has one (survey layer), the
    inputs the observed images with masked pixels filled (as `~bandsynth.Translator.predict`
    reads them); pixels masked in an input are left out (`bandsynth.datasets.base.unusable_pixels`:
    a saturated star core filled from its wings would otherwise dominate the fit).

    Parameters
    ----------
    data : data set
        Anything with ``cube(band)`` and ``indices(split)`` (`bandsynth.datasets.make_dataset`,
        `bandsynth.datasets.open_dataset`).
    inputs : sequence of str
        Input bands.
    output : str
        Target band.
    split : str
        Images to fit on (ignored when ``indices`` is given).
    indices : sequence of int, optional
        Explicit images to fit on.
    max_pixels : int
        At most this many pixels, drawn at random.
    seed : int
        Seed of that draw.

    Returns
    -------
    ndarray
        One coefficient per input band.
    """
    indices = np.asarray(data.indices(split) if indices is None else indices)
    if indices.size == 0:
        raise ValueError(f"cannot fit the linear colour model: no {split!r} images")
    rng = np.random.default_rng(seed)
    target = model_target_cube(data, output)[indices].reshape(indices.size, -1)
    take = rng.choice(target.size, size=min(max_pixels, target.size), replace=False)
    y = target.ravel()[take].astype(np.float64)
    x = np.stack([model_input_cube(data, b)[indices].reshape(-1)[take] for b in inputs], axis=1).astype(np.float64)
    good = np.isfinite(y) & np.all(np.isfinite(x), axis=1) & usable_sample(data, inputs, output, indices, take)
    coef, *_ = np.linalg.lstsq(x[good], y[good], rcond=None)
    return coef


def apply_linear_colour(images, coefficients):
    """``sum_i c_i * images_i`` for a sequence of same-shape arrays (float64).

    Parameters
    ----------
    images : sequence of array-like
        Same-shape images.
    coefficients : sequence of float
        One per image.

    Returns
    -------
    numpy.ndarray
        The weighted sum, float64.

    Raises
    ------
    ValueError
        The numbers of images and coefficients differ.

    Examples
    --------
    >>> import numpy as np
    >>> apply_linear_colour([np.ones(2), 2 * np.ones(2)], [0.5, 0.25]).tolist()
    [1.0, 1.0]
    """
    images = list(images)
    if len(images) != len(coefficients):
        raise ValueError(f"{len(images)} images but {len(coefficients)} coefficients")
    return sum(float(c) * np.asarray(im, dtype=np.float64) for c, im in zip(coefficients, images))
