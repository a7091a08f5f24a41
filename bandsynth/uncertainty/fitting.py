"""Fitting a translator's calibration on galaxies with a known truth."""

from __future__ import annotations

import numpy as np

from .calibration import CONFIGURATIONS, fit_calibration
from .components import temperature_for_flux_half_width

__all__ = ["calibrate_translator", "FOOTPRINTS"]

#: Where the residuals are measured: the galaxy as detected in the target band, or in the sum of all its bands.
FOOTPRINTS = ("target", "detection")


def _settings(configuration):
    return {"tta": configuration.startswith("tta"), "monte_carlo": configuration.endswith("mc")}


def _needed_temperature(scaling, mean, sigma, residual, target_noise):
    """``needed(k)``: per pixel, the temperature at which the ``k``-sigma interval covers the residual."""

    def needed(k):
        # the target's own noise covers part of the residual (none against a noise-free truth)
        half_width = np.sqrt(np.maximum(residual**2 - (k * target_noise) ** 2, 0.0)) / k
        return temperature_for_flux_half_width(scaling, mean, sigma, half_width)

    return needed


def _check_options(configurations, footprint):
    unknown = [c for c in configurations if c not in CONFIGURATIONS]
    if unknown:
        raise ValueError(f"unknown calibration configuration(s) {unknown}; known: {', '.join(CONFIGURATIONS)}")
    if footprint not in FOOTPRINTS:
        raise ValueError(f"footprint must be one of {FOOTPRINTS}, got {footprint!r}")


def _footprints(stacks, truths, footprint):
    """Per galaxy, the pixels of its main source (None where nothing is detected), segmented on the true
    target (``footprint="target"``) or on a coadd of every band the galaxy has, as surveys detect: deeper
    than a faint band alone."""
    from ..morphology import segment

    footprints = []
    for stack, truth in zip(stacks, truths):
        image = (np.asarray(truth.data, dtype=np.float64) if footprint == "target" else
                 np.nan_to_num(stack.to_array().astype(np.float64)).sum(axis=0))
        seg = segment(image)
        footprints.append(None if seg.segmap is None else seg.segmap.data == seg.label)
    return footprints


def calibrate_translator(translator, data, *, indices=None, split="validation",
                         configurations=("plain", "tta", "mc", "tta+mc"), fitted_on=None, footprint="target"):
    """One `~bandsynth.uncertainty.Calibration` per configuration, from the galaxies ``indices`` of ``data``.

    Each galaxy is predicted with its uncalibrated sigma; inside the galaxy's
    footprint (photutils segmentation of the true image, `bandsynth.morphology.segment`;
    the noise-free truth of a survey-layer data set, ``has_truth``)
    the residuals are measured as users measure them -- ``|prediction - truth|`` in flux
    against the flux half-width ``UNCERT`` of the interval (`temperature_for_flux_half_width`)
    -- and go with the predicted brightness into `fit_calibration`.  Against observed
    targets that carry an uncertainty (real galaxies), the stated sigma stays the error about
    the noise-free sky: a pixel counts as covered at ``k`` sigma when
    ``|prediction - target| <= hypot(k UNCERT, k target_sigma)``.  A configuration needing input noise ("mc") is skipped
    when the galaxies' inputs carry no uncertainty.

    Parameters
    ----------
    translator : `~bandsynth.Translator`
        The model to calibrate.
    data : data set
        Holds the model's input and output bands (e.g. from
        `~bandsynth.datasets.open_dataset`); ``data.stack(i)`` gives galaxy ``i``.
    indices : sequence of int, optional
        The calibration galaxies (default: every galaxy of ``split``).  They
        should be used neither for training nor for choosing the checkpoint.
    split : str
        Split used when ``indices`` is None.
    configurations : sequence of str
        The `predict` configurations to calibrate (of
        `~bandsynth.uncertainty.CONFIGURATIONS`).
    fitted_on : str, optional
        Where the calibration galaxies come from, for the card (default: the
        split, or the number of galaxies given).
    footprint : {"target", "detection"}
        Segment the galaxy on the true target image, or on the sum of all the bands the
        galaxy's stack holds (observed galaxies: a faint target band alone detects only the
        core, while users measure the whole galaxy).

    Returns
    -------
    dict of str to Calibration
        One calibration per configuration fitted (``"mc"`` and ``"tta+mc"``
        are missing when the inputs carry no uncertainty).

    Raises
    ------
    ValueError
        If a configuration or footprint is unknown, no galaxy is given, or no
        galaxy is detected.
    """
    _check_options(configurations, footprint)
    given = indices
    indices = list(data.indices(split) if indices is None else indices)
    if not indices:
        raise ValueError("cannot calibrate: no galaxies given")
    if fitted_on is None:
        fitted_on = f"the {split} split" if given is None else f"{len(indices)} galaxies chosen by the caller"
    if footprint == "detection":
        fitted_on += "; residuals in the galaxy detected in the sum of its bands"
    stacks = [data.stack(int(i)) for i in indices]
    # the noise-free truth where the data set has one (survey layer), the observed image otherwise
    truths = ([data.stack(int(i), truth=True)[translator.output] for i in indices] if getattr(data, "has_truth", False)
              else [s[translator.output] for s in stacks])
    target_noise = [None if t.uncertainty is None else np.asarray(t.uncertainty.array, np.float64) for t in truths]
    output_scaling = translator.scalings[translator.output]
    footprints = _footprints(stacks, truths, footprint)
    has_noise = any(s[b].uncertainty is not None for s in stacks for b in translator.inputs)
    rng = np.random.default_rng(0)
    calibrations = {}
    for config in configurations:
        settings = _settings(config)
        if settings["monte_carlo"] and not has_noise:
            continue
        residual, noise_t, mean_s, sigma_s, galaxy = [], [], [], [], []
        for g, (stack, true, inside, true_noise) in enumerate(zip(stacks, truths, footprints, target_noise)):
            if inside is None:
                continue
            x, mask, noise = translator.scale_inputs(stack.select(translator.inputs))
            noise = noise[None] if settings["monte_carlo"] and noise is not None else None
            mean, variance, _ = translator.predict_scaled(
                x[None], noise, uncertainty=True, tta=settings["tta"], n_samples=8, rng=rng,
                run=dict(batch_size=8, tile=512, precision="fp32", compile=False, progress=None))
            use = inside & ~mask
            m = mean[0, 0][use].astype(np.float64)
            residual.append(np.abs(output_scaling.inverse(m) - np.asarray(true.data, dtype=np.float64)[use]))
            noise_t.append(np.zeros(m.size) if true_noise is None else np.nan_to_num(true_noise[use]))
            mean_s.append(m)
            sigma_s.append(np.sqrt(variance[0, 0][use]))
            galaxy.append(np.full(int(use.sum()), g))
        if not residual:
            raise ValueError("cannot calibrate: no galaxy was detected in the calibration images")
        m = np.concatenate(mean_s)
        needed = _needed_temperature(output_scaling, m, *(np.concatenate(v) for v in (sigma_s, residual, noise_t)))
        calibrations[config] = fit_calibration(
            needed(1.0), m, configuration=config, galaxy=np.concatenate(galaxy), needed_temperature=needed,
            n_galaxies=len(sigma_s), fitted_on=fitted_on)
    return calibrations
