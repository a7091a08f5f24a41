"""How far per-galaxy 1-sigma coverage spreads, and whether conditioning on more than brightness narrows it.

The shipped calibration (`bandsynth.uncertainty`) makes the temperature a function of the
pixel's predicted brightness alone: over many galaxies the coverage is right, but one
galaxy's can be off (the card's 10-90 % range of per-galaxy coverage).  This benchmark
predicts fresh mock galaxies of a model's training universe (the calibration's own kind,
another seed), fits per-bin temperatures on one half of the galaxies and scores the
other half, for:

* ``brightness``: 8 bins of the predicted brightness (as shipped);
* ``brightness x sigma``: and terciles of the sigma head's output relative to its typical
  value at that brightness (does the head know which galaxies are hard?);
* ``brightness x local``: and terciles of the prediction smoothed with a Gaussian of
  ``--local-sigma`` pixels (is the pixel in a big, bright galaxy or a small one?);
* ``+ each galaxy's scale``: by brightness, then every scored galaxy's sigma multiplied by
  the RMS of its own errors in sigma units over the pooled RMS -- an oracle no pixel can
  know, which says how much of the spread is the *size* of a galaxy's errors rather than
  their *shape* (a galaxy of heavy-tailed errors is over-covered at the right RMS).

It prints the 10/50/90 % points of per-galaxy 1-sigma coverage of the held-out half and its
pooled coverage, then the rank correlation of per-galaxy coverage with the galaxy's
footprint size and flux::

    python benchmarks/coverage_conditioning.py --models nuv_k_to_r_paper --n-galaxies 200
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.stats import spearmanr

LEVEL_1SIGMA = 0.682689


def pixels(translator, data, *, local_sigma):
    """Per footprint pixel: predicted brightness, raw sigma, smoothed brightness, needed temperature, galaxy; and
    per galaxy its footprint size and true flux.  The footprints and needed temperatures are the calibration's own
    (`bandsynth.uncertainty.fitting`), against the noise-free truth."""
    from bandsynth.uncertainty.fitting import _footprints, _needed_temperature

    scaling = translator.scalings[translator.output]
    columns = {k: [] for k in ("brightness", "sigma", "local", "needed", "galaxy")}
    sizes, fluxes = [], []
    stacks = [data.stack(g) for g in range(len(data))]
    truths = [(data.stack(g, truth=True) if getattr(data, "has_truth", False) else stack)[translator.output]
              for g, stack in enumerate(stacks)]
    for stack, truth, inside in zip(stacks, truths, _footprints(stacks, truths, translator.output, "detection")):
        if inside is None:
            continue
        truth = np.asarray(truth.data, dtype=np.float64)
        x, mask, _ = translator.scale_inputs(stack.select(translator.inputs))
        mean, variance, _ = translator.predict_scaled(
            x[None], None, uncertainty=True, tta=False, n_samples=0, draws=None,
            run=dict(batch_size=8, tile=512, precision="fp32", compile=False, progress=None))
        use = inside & ~mask
        m, s = mean[0, 0].astype(np.float64), np.sqrt(variance[0, 0].astype(np.float64))
        residual = np.abs(scaling.inverse(m[use]) - truth[use])
        columns["brightness"].append(m[use])
        columns["sigma"].append(s[use])
        columns["local"].append(gaussian_filter(m, local_sigma, mode="reflect")[use])
        columns["needed"].append(_needed_temperature(scaling, m[use], s[use], residual, np.zeros(residual.size))(1.0))
        columns["galaxy"].append(np.full(int(use.sum()), len(sizes)))
        sizes.append(int(use.sum()))
        fluxes.append(float(truth[use].sum()))
    return {k: np.concatenate(v) for k, v in columns.items()}, np.array(sizes), np.array(fluxes)


def quantile_bins(values, fit, n):
    """Bin index of every value, with edges at the ``n``-quantiles of ``values[fit]``."""
    return np.searchsorted(np.quantile(values[fit], np.linspace(0, 1, n + 1)[1:-1]), values)


def coverage(needed, keys, galaxy, fit, scored, *, own_scale=False):
    """Per-bin 68.27 % temperatures fitted on the ``fit`` pixels; ``(per-galaxy coverages, pooled)`` of the
    ``scored`` ones (``own_scale``: each scored galaxy's temperatures rescaled to its own errors' RMS)."""
    temperature = np.full(needed.size, np.quantile(needed[fit], LEVEL_1SIGMA))
    for key in np.unique(keys):
        chosen = fit & (keys == key)
        if chosen.sum() >= 50:
            temperature[keys == key] = np.quantile(needed[chosen], LEVEL_1SIGMA)
    if own_scale:  # each scored galaxy's errors brought to the pooled RMS (in units of the calibrated sigma)
        z = needed / temperature
        pooled_rms = np.sqrt(np.mean(z[scored] ** 2))
        for g in np.unique(galaxy[scored]):
            temperature[galaxy == g] *= np.sqrt(np.mean(z[galaxy == g] ** 2)) / pooled_rms
    inside = needed <= temperature
    per = np.array([inside[scored & (galaxy == g)].mean() for g in np.unique(galaxy[scored])])
    return per, float(inside[scored].mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["nuv_k_to_r_paper"], help="shipped models (mock-trained)")
    parser.add_argument("--n-galaxies", type=int, default=200, help="fresh galaxies (half fit, half scored)")
    parser.add_argument("--seed", type=int, default=303,
                        help="seed of their universe (not 0, 101, 202: training, calibration, σ head)")
    parser.add_argument("--local-sigma", type=float, default=8.0, help="smoothing of the local brightness [px]")
    args = parser.parse_args(argv)

    from bandsynth import Translator
    from bandsynth.evaluation import card_dataset

    print(f"{'model':<18} {'conditioning':<20} per-galaxy 1-sigma coverage 10/50/90 %   pooled")
    for name in args.models:
        translator = Translator.load(name)
        data = card_dataset(translator.card, progress=False, seed=args.seed, n_galaxies=args.n_galaxies)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # domain notes of mock galaxies
            px, sizes, fluxes = pixels(translator, data, local_sigma=args.local_sigma)
        galaxy, needed = px["galaxy"], px["needed"]
        fit = galaxy < len(sizes) // 2
        brightness = quantile_bins(px["brightness"], fit, 8)
        # the sigma head relative to its typical value at that brightness (a cubic in brightness of log sigma)
        trend = np.polyval(np.polyfit(px["brightness"][fit], np.log(px["sigma"][fit]), 3), px["brightness"])
        conditionings = {
            "brightness": brightness,
            "brightness x sigma": brightness * 10 + quantile_bins(np.log(px["sigma"]) - trend, fit, 3),
            "brightness x local": brightness * 10 + quantile_bins(px["local"], fit, 3),
        }
        runs = [(label, keys, False) for label, keys in conditionings.items()]
        for label, keys, own_scale in runs + [("+ each galaxy's scale", brightness, True)]:
            per, pooled = coverage(needed, keys, galaxy, fit, ~fit, own_scale=own_scale)
            p10, p50, p90 = np.percentile(per, [10, 50, 90])
            print(f"{name:<18} {label:<20} {p10:.3f} / {p50:.3f} / {p90:.3f}{'':>21}{pooled:.3f}")
        everyone = np.ones_like(fit)
        per, _ = coverage(needed, conditionings["brightness"], galaxy, everyone, everyone)
        print(f"{name:<18} rank correlation of per-galaxy coverage (brightness only, all galaxies) with footprint "
              f"size {spearmanr(per, sizes)[0]:+.2f}, with flux {spearmanr(per, fluxes)[0]:+.2f}")


if __name__ == "__main__":
    main()
