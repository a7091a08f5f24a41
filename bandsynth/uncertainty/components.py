"""Components of a prediction's sigma in scaled units, and its mapping to flux units."""

from __future__ import annotations

import numpy as np

from .draws import grid_origin

__all__ = ["combine", "flux_sigma", "sample", "temperature_for_flux_half_width"]


def combine(*, log_sigma=None, tta_variance=None, mc_variance=None):
    """Total scaled-space variance of independent components, and a label saying which.

    Parameters
    ----------
    log_sigma : ndarray, optional
        Natural log of the network's per-pixel sigma (its uncertainty head).
    tta_variance : ndarray, optional
        Variance of the prediction over the 8 flips/rotations.
    mc_variance : ndarray, optional
        Variance over Monte Carlo draws of the inputs' noise.

    Returns
    -------
    variance : ndarray or None
        None when no component is given.
    parts : list of str
        What went in, for the provenance.

    Examples
    --------
    >>> import numpy as np
    >>> var, parts = combine(log_sigma=np.log(np.full(3, 0.1)), tta_variance=np.full(3, 0.03 ** 2))
    >>> np.round(var, 4).tolist()
    [0.0109, 0.0109, 0.0109]
    >>> parts
    ['network sigma head (trained with a Gaussian likelihood)', 'spread over 8 flips/rotations']
    """
    variance, parts = None, []
    for value, label, square in (
        (log_sigma, "network sigma head (trained with a Gaussian likelihood)", True),
        (tta_variance, "spread over 8 flips/rotations", False),
        (mc_variance, "input noise by Monte Carlo", False),
    ):
        if value is None:
            continue
        value = np.exp(2.0 * np.asarray(value, dtype=np.float64)) if square else np.asarray(value, dtype=np.float64)
        variance = value if variance is None else variance + value
        parts.append(label)
    return variance, parts


def flux_sigma(scaling, mean, sigma):
    """Half-width, in flux units, of the scaled interval ``mean +- sigma`` mapped through the inverse scaling.

    The asinh scaling is not linear, so the flux interval is not symmetric about
    the predicted flux; its half-width is what the ``UNCERT`` extension stores
    (at most float32's largest value: an interval that reaches beyond it says that
    the flux is unconstrained).

    Parameters
    ----------
    scaling : `~bandsynth.scaling.AsinhScaling`
        The output band's scaling.
    mean, sigma : ndarray
        Scaled-space mean and (calibrated) standard deviation.

    Returns
    -------
    numpy.ndarray
        The half-width in flux units (float64), capped at float32's largest value.

    Examples
    --------
    >>> import numpy as np
    >>> from bandsynth.scaling import AsinhScaling
    >>> s = AsinhScaling(softening=0.01, maximum=1.0)
    >>> m = s.forward(np.array([0.0]))
    >>> bool(np.isclose(flux_sigma(s, m, np.array([1e-3]))[0], s.derivative(m)[0] * 1e-3, rtol=1e-4))
    True
    """
    mean = np.asarray(mean, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    with np.errstate(over="ignore"):  # an interval beyond float range: "unbounded", stored as float32's maximum
        half = 0.5 * (scaling.inverse(mean + sigma) - scaling.inverse(mean - sigma))
    return np.minimum(half, np.finfo(np.float32).max)


def temperature_for_flux_half_width(scaling, mean, sigma, half_width):
    """The temperature ``T`` at which `flux_sigma` of ``T * sigma`` equals ``half_width``: its inverse in ``T``.

    Calibrating on this makes ``UNCERT`` mean what users check: the fraction of pixels
    with ``|prediction - truth| <= UNCERT`` in flux, not of pixels inside the (lopsided)
    mapped interval.  For the asinh scaling, ``flux_sigma = d sinh(n T sigma) / n`` with
    ``d`` the scaling's derivative at ``mean`` and ``n = asinh(maximum / softening)``.

    Parameters
    ----------
    scaling : `~bandsynth.scaling.AsinhScaling`
    mean, sigma : ndarray
        Scaled-space mean and uncalibrated standard deviation.
    half_width : ndarray
        Flux half-widths (e.g. ``|prediction - truth|``).

    Returns
    -------
    numpy.ndarray
        ``T`` per pixel.

    Examples
    --------
    >>> import numpy as np
    >>> from bandsynth.scaling import AsinhScaling
    >>> s = AsinhScaling(softening=0.01, maximum=1.0)
    >>> mean, sigma = np.array([0.1, 0.9]), np.array([0.02, 0.05])
    >>> t = temperature_for_flux_half_width(s, mean, sigma, np.array([0.003, 0.2]))
    >>> np.allclose(flux_sigma(s, mean, t * sigma), [0.003, 0.2])
    True
    """
    norm = np.arcsinh(scaling.maximum / scaling.softening)
    mean = np.asarray(mean, dtype=np.float64)
    return np.arcsinh(np.asarray(half_width, np.float64) * norm / scaling.derivative(mean)) / (
        norm * np.asarray(sigma, dtype=np.float64))


def sample(engine, scalings, x, noise, *, uncertainty, tta, n_samples, draws, run, origins=None):
    """Scaled mean, total uncalibrated variance and its components for a same-shape batch.

    The step of `bandsynth.Translator.predict` before calibration and the inverse
    scaling (calibrations are fitted on its output).

    Parameters
    ----------
    engine : `~bandsynth.nn.engine.InferenceEngine`
    scalings : list of `~bandsynth.scaling.AsinhScaling`
        The input bands' scalings, in channel order.
    x : ndarray (N, C, H, W)
        Scaled inputs.
    noise : ndarray (N, C, H, W) or None
        The inputs' sigma in flux units: Monte Carlo draws are made in flux (where the
        noise is Gaussian), then scaled.
    uncertainty, tta : bool
    n_samples : int
        Monte Carlo draws (with ``noise``).
    draws : `~bandsynth.uncertainty.PixelDraws`
        The draws, tied to pixel positions so that any tiling or batch draws the same at a pixel.
    run : dict
        Options of `~bandsynth.nn.engine.InferenceEngine.run`; its ``progress`` is called
        after every tile of every pass (the prediction, then each Monte Carlo draw), as
        ``progress(done, total)`` counted over all of them.
    origins : list of tuple of int, optional
        Per image, the row and column of its first pixel on the grid fixed to the sky
        (`~bandsynth.uncertainty.grid_origin`, plus a tile's offset in a larger image), on
        which the draws are made and the network's strides pair pixels; default: every
        image at the grid's origin.

    Returns
    -------
    mean, variance : ndarray (N, 1, H, W)
        ``variance`` is None without ``uncertainty``.
    parts : list of str
    """
    repeats = (8 if tta else 1) + (n_samples if noise is not None else 0)
    passes = 1 + (n_samples if uncertainty and noise is not None else 0)
    progress = run.get("progress")

    def counted(k):  # progress over every pass, not each pass from the start
        return None if progress is None else lambda done, total: progress(k * total + done, passes * total)

    run = {**run, "progress": counted(0)}
    out = engine.run(x, tta=tta, repeats=repeats, origins=origins, **run)
    mean, log_sigma = out[0], out[1]
    if not uncertainty:
        return mean, None, []
    mc_variance = None
    if noise is not None:
        flux = np.stack([s.inverse(x[:, c]) for c, s in enumerate(scalings)], axis=1)
        outputs = []
        origins = [grid_origin(None)] * len(x) if origins is None else origins
        for k in range(n_samples):
            # images at one origin (an unregistered batch) share their field: draw it once
            fields = {o: draws.normal(k, flux.shape[1:], origin=o) for o in dict.fromkeys(origins)}
            noisy = flux + noise * np.stack([fields[o] for o in origins])
            xs = np.stack([s.forward(noisy[:, c]) for c, s in enumerate(scalings)], axis=1).astype(np.float32)
            outputs.append(engine.run(xs, repeats=repeats, origins=origins, **{**run, "progress": counted(k + 1)})[0])
        mc_variance = np.var(outputs, axis=0, ddof=1) if n_samples > 1 else np.zeros_like(mean)
    return (mean, *combine(log_sigma=log_sigma, tta_variance=out[2] if tta else None, mc_variance=mc_variance))
