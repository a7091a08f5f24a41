"""The learning-rate schedule of `fit` (`learning_rate`, re-exported by `bandsynth.nn.training`)."""

from __future__ import annotations

import math

__all__ = ["learning_rate"]

SCHEDULES = ("cosine", "linear", "constant")


def learning_rate(step, total_steps, *, lr, schedule="cosine"):
    """Learning rate of update ``step`` (0-based) out of ``total_steps``.

    ``"cosine"`` decays from ``lr`` to 0 along half a cosine, ``"linear"``
    linearly to 0, ``"constant"`` keeps ``lr``.

    Parameters
    ----------
    step : int
        The update, 0-based (clipped to ``[0, total_steps]``).
    total_steps : int
        Updates in the whole run.
    lr : float
        Peak (initial) learning rate.
    schedule : {"cosine", "linear", "constant"}
        Shape of the decay.

    Returns
    -------
    float
        The learning rate of update ``step``.

    Raises
    ------
    ValueError
        If ``schedule`` is unknown.

    Examples
    --------
    >>> learning_rate(0, 100, lr=1e-3), learning_rate(50, 100, lr=1e-3)
    (0.001, 0.0005)
    >>> learning_rate(75, 100, lr=1e-3, schedule="linear")
    0.00025
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {schedule!r}")
    t = min(max(step / max(total_steps, 1), 0.0), 1.0)
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "linear":
        return lr * (1.0 - t)
    return lr
