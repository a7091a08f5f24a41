"""What observing the band itself scores: the survey-layer targets' reference.

The models for observed images are scored against the *noise-free* image of their
output band (`bandsynth.evaluation.evaluate_translator` on a survey-layer data set).
Their SSIM targets (page "The model zoo", "Quality targets") were set on the method
paper's noise-free images.  This benchmark puts beside each model the score of the
output band *as its survey observes it* -- native pixels and PSF, sky and Poisson
noise, masked pixels filled, brought onto the model's grid like the inputs -- against
the same noise-free truth, in the same metric space (`bandsynth.evaluation.metric_space`):
what an astronomer who had observed the band would hold.  A model above that row
predicts the band better than the survey observes it.

On fresh galaxies of each model's own universe (``card_dataset(card, seed=...)``: the
model has seen none of them), every galaxy of the fresh set scored.

    python benchmarks/observed_band.py                       # every survey-layer model, 60 galaxies each
    python benchmarks/observed_band.py --models nuv_k_to_r g_z_to_r --n-galaxies 100
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def observed_band_scores(translator, *, n_galaxies, seed):
    """Mean SSIM, PSNR and MAE of the model and of the observed output band against the noise-free truth."""
    from bandsynth.evaluation import card_dataset, evaluate_translator, input_array, metric_space, target_images
    from bandsynth.metrics import evaluate_pairs

    card = translator.card
    data = card_dataset(card, seed=seed, n_galaxies=n_galaxies, progress=False)
    indices = list(range(len(data)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # domain notes of fresh galaxies; the figures are the point here
        result = evaluate_translator(translator, data, indices=indices, progress=False)
        inputs, output = translator.inputs, translator.output
        scalings, refs_of = metric_space(data, inputs, output)
        stacks = [data.stack(i) for i in indices]
        observed = [input_array(s[output]) for s in stacks]  # the band as observed, as a model would read it
        table = evaluate_pairs(observed, target_images(data, indices, output, stacks),
                               inputs=[{b: s[b] for b in inputs} for s in stacks],
                               scaling={**scalings, "target": scalings[output]}, references=refs_of(stacks),
                               progress=False)
    rows = {}
    for method, per_galaxy in (("model", result.per_galaxy["model"]),
                               ("linear", result.per_galaxy["linear_colour"]), ("observed", table)):
        rows[method] = {k: float(np.nanmean(np.asarray(per_galaxy[k], float))) for k in ("ssim", "psnr", "mae")}
    return rows, len(indices)


def main(argv=None):
    from bandsynth import Translator, list_models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="models (default: every shipped survey-layer model)")
    parser.add_argument("--n-galaxies", type=int, default=60, help="fresh galaxies per model")
    parser.add_argument("--seed", type=int, default=4242, help="seed of the fresh universe")
    args = parser.parse_args(argv)
    names = args.models or [c.name for c in list_models()
                            if not c.outputs and dict(c.training.get("data_info", {})).get("survey")]
    print(f"mean over fresh galaxies, against the noise-free truth (seed {args.seed})")
    print(f"{'model':<15} {'n':>4} {'SSIM model/linear/observed':>28} {'PSNR model/observed':>20} "
          f"{'MAE model/observed':>20} {'s':>5}")
    for name in names:
        started = time.perf_counter()
        rows, n = observed_band_scores(Translator.load(name), n_galaxies=args.n_galaxies, seed=args.seed)
        ssim = "/".join(f"{rows[m]['ssim']:.3f}" for m in ("model", "linear", "observed"))
        psnr = "/".join(f"{rows[m]['psnr']:.1f}" for m in ("model", "observed"))
        mae = "/".join(f"{rows[m]['mae']:.4f}" for m in ("model", "observed"))
        print(f"{name:<15} {n:>4} {ssim:>28} {psnr:>20} {mae:>20} {time.perf_counter() - started:>5.0f}", flush=True)


if __name__ == "__main__":
    main()
