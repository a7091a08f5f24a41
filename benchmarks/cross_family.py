"""Train on one family of the mock universe, test on another: how much does the score drop?

For every training family A (``--train``): a small model (`Translator.fit`, preset
``--preset``) is trained on the training split of a mock data set of family A, then
predicts the test split of every test family B (``--test``).  All families' data sets
share the seed, so their test splits hold the *same* galaxies (same structure, same
seeds, never trained on) built with different physics
(`bandsynth.datasets.mock.families`): only the physics differs between the columns.

Per (A, B), on the test galaxies of B:

* ``SSIM``: the mean SSIM (`bandsynth.metrics.ssim`, data range 1) in one metric
  space for all rows (`bandsynth.evaluation.metric_space` fitted on the first test
  family's data set), so that the numbers are comparable;
* ``|dmag|``: the median over galaxies of ``|-2.5 log10(sum prediction / sum truth)|``
  inside the galaxy's footprint (photutils segmentation of the true image), with the
  16-84 % range of ``dmag``;
* the same two for the linear colour model ``f_out = sum_i c_i f_i`` fitted on A's
  training pixels (the floor the network must beat);
* ``drop``: the row's SSIM minus the SSIM on A's own test galaxies (negative: worse),
  and the ratio of ``|dmag|`` to that on A's own galaxies.

Run (small settings: 6-8 minutes on two busy CPU cores)::

    python benchmarks/cross_family.py --train default broad \\
        --test default smc_dust mw_dust nebular broad --inputs g z --output r \\
        --n 400 --size 64 --epochs 8 --preset tiny --flux-weight 1

Example output (bandsynth 0.2.dev, 2 CPU cores shared with another training; the
training and data-set lines left out)::

    # g z -> r, preset tiny, 8 epochs, flux weight 1.0, 400 galaxies of 64x64 per family, mode ideal, seed 0
        train      test   n    SSIM    drop           |dmag| [16-84%]  x own  SSIM lin            |dmag| linear
      default   default  80  0.9960 +0.0000    0.020 [-0.038, +0.020]   1.00    0.9953   0.062 [-0.107, +0.024]
      default  smc_dust  80  0.9959 -0.0001    0.016 [-0.026, +0.031]   0.78    0.9938   0.058 [-0.125, +0.024]
      default   mw_dust  80  0.9959 -0.0002    0.025 [-0.046, +0.015]   1.26    0.9941   0.070 [-0.131, +0.024]
      default   nebular  80  0.9955 -0.0005    0.031 [-0.005, +0.075]   1.55    0.9950   0.034 [-0.077, +0.035]
      default     broad  80  0.9957 -0.0004    0.030 [-0.013, +0.050]   1.52    0.9942   0.039 [-0.088, +0.038]
        broad     broad  80  0.9984 +0.0000    0.018 [-0.036, +0.027]   1.00    0.9955   0.034 [-0.087, +0.030]
        broad   default  80  0.9985 +0.0001    0.025 [-0.076, +0.007]   1.40    0.9962   0.067 [-0.113, +0.027]
        broad  smc_dust  80  0.9983 -0.0002    0.018 [-0.057, +0.011]   0.99    0.9949   0.070 [-0.115, +0.027]
        broad   mw_dust  80  0.9983 -0.0001    0.034 [-0.093, +0.007]   1.90    0.9952   0.081 [-0.134, +0.027]
        broad   nebular  80  0.9984 +0.0000    0.016 [-0.022, +0.020]   0.90    0.9962   0.033 [-0.077, +0.031]
    # 352 s

The same with ``--inputs g r --output NUV`` (448 s): trained on ``default``, SSIM 0.8108
on its own galaxies, 0.7941 (-0.017) on ``smc_dust`` and 0.7835 (-0.027) on ``broad``;
trained on ``broad``, 0.8166 on its own and 0.8235 on ``default``.  At these settings the
NUV network's footprint photometry (median ``|dmag|`` 0.52 on its own family) does not
yet beat the linear colour model's (0.30), so its ``|dmag|`` column says little.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bandsynth import Translator
from bandsynth.baseline import apply_linear_colour, fit_linear_colour
from bandsynth.datasets.mock import make_dataset
from bandsynth.evaluation import input_array, metric_space, target_images
from bandsynth.metrics import ssim
from bandsynth.morphology import segment


def _dmag(pred, truth, inside):
    p, t = float(np.sum(pred[inside])), float(np.sum(truth[inside]))
    return -2.5 * np.log10(p / t) if p > 0 and t > 0 else np.nan


def score(translator, coefficients, data, space, *, max_images=None):
    """Per-galaxy SSIM and footprint delta mag of the model and the linear colour model
    (``coefficients``) on ``data``'s test split."""
    inputs, output = translator.inputs, translator.output
    scalings, references = space
    indices = list(data.indices("test"))[:max_images]
    stacks = [data.stack(int(i)) for i in indices]
    truths = target_images(data, indices, output, stacks)  # the noise-free truth where the set has one
    preds = translator.predict([s.select(inputs) for s in stacks], uncertainty=False, check_domain=False)
    refs = references(stacks)
    out = {k: [] for k in ("ssim", "dmag", "ssim_linear", "dmag_linear")}
    scale = scalings[output]
    for stack, true, pred, ref in zip(stacks, truths, preds, refs):
        truth = np.asarray(true.data, dtype=np.float64)
        seg = segment(truth)
        if seg.segmap is None:
            continue
        inside = seg.segmap.data == seg.label
        linear = apply_linear_colour([input_array(stack[b]) for b in inputs], coefficients)  # as the model reads
        predicted = np.asarray(pred.data, np.float64)
        t_scaled = scale.forward(truth, reference=ref)
        out["ssim"].append(ssim(scale.forward(predicted, reference=ref), t_scaled, data_range=1.0))
        out["ssim_linear"].append(ssim(scale.forward(linear, reference=ref), t_scaled, data_range=1.0))
        out["dmag"].append(_dmag(predicted, truth, inside))
        out["dmag_linear"].append(_dmag(linear, truth, inside))
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def _median_abs(v):
    v = v[np.isfinite(v)]
    return float(np.median(np.abs(v))), np.percentile(v, [16, 84])


def run(*, train, test, inputs, output, n, size, epochs, preset, seed, mode, max_images, progress, flux_weight=1.0):
    """Train one model per family of ``train``; score each on every family of ``test``: a list of row dicts."""
    bands = [*inputs, output]
    data = {}
    for fam in dict.fromkeys([*test, *train]):
        t0 = time.perf_counter()
        data[fam] = make_dataset(n, seed=seed, bands=bands, size=size, mode=mode, family=fam,
                                 split_fractions=(0.7, 0.1, 0.2))
        print(f"# made {n} galaxies of family {fam!r} in {time.perf_counter() - t0:.0f} s", flush=True)
    space = metric_space(data[test[0]], inputs, output)
    rows = []
    for a in train:
        t0 = time.perf_counter()
        model = Translator.fit(data[a], inputs=inputs, output=output, preset=preset, epochs=epochs, seed=seed,
                               crop_size=min(64, size), flux_weight=flux_weight, calibrate=False, progress=progress)
        coefficients = fit_linear_colour(data[a], inputs, output)
        print(f"# trained on {a!r} in {time.perf_counter() - t0:.0f} s", flush=True)
        own = None
        for b in dict.fromkeys([a, *test]):
            s = score(model, coefficients, data[b], space, max_images=max_images)
            row = {"train": a, "test": b, "n": int(np.isfinite(s["dmag"]).sum()),
                   "ssim": float(np.mean(s["ssim"])), "ssim_linear": float(np.mean(s["ssim_linear"])),
                   "dmag": _median_abs(s["dmag"]), "dmag_linear": _median_abs(s["dmag_linear"])}
            own = row if b == a else own
            row["ssim_drop"] = row["ssim"] - own["ssim"]
            row["dmag_ratio"] = row["dmag"][0] / own["dmag"][0]
            if b in test:
                rows.append(row)
                _print_row(row)
    return rows


def _print_header():
    print(f"{'train':>9} {'test':>9} {'n':>3}  {'SSIM':>6} {'drop':>7}  {'|dmag| [16-84%]':>24} {'x own':>6}  "
          f"{'SSIM lin':>8} {'|dmag| linear':>24}", flush=True)


def _print_row(r):
    def dm(v):
        return f"{v[0]:.3f} [{v[1][0]:+.3f}, {v[1][1]:+.3f}]"

    print(f"{r['train']:>9} {r['test']:>9} {r['n']:>3}  {r['ssim']:6.4f} {r['ssim_drop']:+7.4f}  {dm(r['dmag']):>24} "
          f"{r['dmag_ratio']:6.2f}  {r['ssim_linear']:8.4f} {dm(r['dmag_linear']):>24}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", nargs="+", default=["default", "broad"], help="families to train on")
    parser.add_argument("--test", nargs="+", default=["default", "broad"], help="families to test on")
    parser.add_argument("--inputs", nargs="+", default=["g", "r"])
    parser.add_argument("--output", default="NUV")
    parser.add_argument("--n", type=int, default=300, help="galaxies per family (70 %% train, 10 %% validation, "
                                                          "20 %% test)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--flux-weight", type=float, default=1.0,
                        help="weight of the loss's photometric term (as the shipped g_r_to_nuv_paper; default: 1)")
    parser.add_argument("--mode", default="ideal", choices=["ideal", "survey"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-images", type=int, default=None, help="test galaxies per family at most")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    print(f"# {' '.join(args.inputs)} -> {args.output}, preset {args.preset}, {args.epochs} epochs, flux weight "
          f"{args.flux_weight}, {args.n} "
          f"galaxies of {args.size}x{args.size} per family, mode {args.mode}, seed {args.seed}", flush=True)
    _print_header()
    run(train=args.train, test=args.test, inputs=args.inputs, output=args.output, n=args.n, size=args.size,
        epochs=args.epochs, preset=args.preset, seed=args.seed, mode=args.mode, max_images=args.max_images,
        progress=args.progress, flux_weight=args.flux_weight)
    print(f"# {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
