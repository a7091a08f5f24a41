"""The model-zoo quality table, regenerated from the shipped weights in one command.

Run from the repository root::

    python benchmarks/zoo_table.py                      # every shipped model, prints the tables
    python benchmarks/zoo_table.py --write-cards        # ... and stores the metrics in the model cards
    python benchmarks/zoo_table.py --models g_r_to_u_paper --max-images 30 --robustness 20   # a quick look
    python benchmarks/zoo_table.py --models nuv_k_to_r --data runs/data/galex_sdss_2mass_...  # a stored set

For each shipped model: the held-out test split of the mock universe its card names
(rebuilt from the card), evaluated with `bandsynth.evaluation.evaluate_translator`
for the model and both baselines (nearest input band copied; per-pixel linear colour
model fitted on the training split), in the paper's columns (MAE, SSIM, PSNR, Gini W1,
M20 W1) plus SSIM gain, 1-sigma / 2-sigma coverage and the median total-flux error;
then the robustness rows (`bandsynth.evaluation.evaluate_robustness`: the other
observing mode, only starbursts, only edge-on disks, all new galaxies).  Models trained on
the survey layer are scored against its noise-free truth; their robustness rows are not
measured yet (the rows above are ideal/simple-survey-mode sets).  Each
model's row is checked against the zoo's targets and the verdict printed.  With
``--write-cards`` the metrics go into ``bandsynth/models/weights/NAME.json`` (the
weights, and so their SHA-256, are untouched); the documentation's model-zoo page
renders its tables from the cards.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bandsynth import Translator, list_models
from bandsynth.datasets.mock import make_galaxy
from bandsynth.evaluation import card_dataset, evaluate_robustness, evaluate_translator, metric_space
from bandsynth.metrics import evaluate_pairs, summarize
from bandsynth.models.zoo import model_paths

# Quality targets of the zoo: minimum test SSIM and PSNR [dB] per model.
TARGETS = {
    "nuv_k_to_g_paper": (0.97, 33.0),
    "nuv_k_to_r_paper": (0.97, 33.0),
    "nuv_k_to_z_paper": (0.97, 33.0),
    "g_r_to_u_paper": (0.97, None),
    "g_r_to_nuv_paper": (0.94, None),
    "g_r_to_fuv_paper": (0.90, None),
    "g_z_to_r_paper": (0.86, 30.0),
    # Models for observed images (issue 15), against the survey layer's noise-free truth.
    "nuv_k_to_g": (0.97, None),
    "nuv_k_to_r": (0.97, None),
    "nuv_k_to_z": (0.97, None),
    "g_r_to_u": (0.97, None),
    "g_r_to_nuv": (0.94, None),
    "g_r_to_fuv": (0.90, None),
    "g_z_to_r": (0.86, None),
}
COVERAGE_1SIGMA = (0.63, 0.73)
COLUMNS = ("mae", "ssim", "psnr", "gini_w1", "m20_w1", "ssim_gain", "coverage_1sigma", "coverage_2sigma", "dmag_total")


def _cell(row, key):
    if key == "ssim_gain":  # the gain over the input band nearest the output (the harder one to beat)
        gains = [v for k, v in row.items() if k.startswith("ssim_gain_") and v is not None]
        value = min(gains) if gains else None
    else:
        value = row.get(key)
    return "-" if value is None or not np.isfinite(value) else f"{value:.4g}"


def verdict(name, metrics):
    """Lines saying which targets the model meets, and by how much it misses the others."""
    test = metrics["test"]
    model, lines = test["model"], []
    ssim_min, psnr_min = TARGETS.get(name, (None, None))
    checks = [
        ("SSIM", model["ssim"], ssim_min, None),
        ("PSNR", model["psnr"], psnr_min, None),
        ("1-sigma coverage", model.get("coverage_1sigma"), *COVERAGE_1SIGMA),
    ]
    for base in ("nearest_input", "linear_colour"):
        checks.append((f"SSIM above {base}", model["ssim"], test[base]["ssim"], None))
        checks.append((f"MAE below {base}", -model["mae"], -test[base]["mae"], None))
    for label, value, low, high in checks:
        if low is None and high is None:
            continue
        if value is None:
            lines.append(f"  {label}: not measured")
            continue
        ok = (low is None or value >= low) and (high is None or value <= high)
        shown = abs(value) if label.startswith("MAE") else value
        bound = " - ".join(f"{abs(b) if label.startswith('MAE') else b:.4g}" for b in (low, high) if b is not None)
        miss = "" if ok else f" (misses by {min(abs(value - b) for b in (low, high) if b is not None):.3g})"
        lines.append(f"  {'met   ' if ok else 'MISSED'} {label}: {shown:.4g} vs {bound}{miss}")
    if "noise_free_truth" in metrics:
        clean = metrics["noise_free_truth"]
        lines.append(f"  noise ceiling against the observed target (an oracle knowing the noise-free image): "
                     f"SSIM {clean['ceiling_vs_observed']['ssim']:.4g}, PSNR {clean['ceiling_vs_observed']['psnr']:.4g}")
        lines.append(f"  model against the noise-free target: SSIM {clean['model_vs_noise_free']['ssim']:.4g}, "
                     f"PSNR {clean['model_vs_noise_free']['psnr']:.4g}")
    return lines


def noise_free_truth(translator, data, *, max_images=None, n_draws=16, seed=0):
    """Survey-mode models: the model against the noise-free target, and the noise ceiling.

    In survey mode the observed target carries sky and Poisson noise that no input
    can predict, which caps every method's SSIM and PSNR against it.  The mock
    universe knows the noise-free image (the same galaxy rendered 12 mag deeper:
    noise 1e-5 of the real one), so two rows measure what the noise hides:

    * ``model_vs_noise_free``: the model's prediction against the noise-free target;
    * ``ceiling_vs_observed``: against the observed target, an oracle that knows the
      noise-free image -- the mean, over noise draws from the target's uncertainty
      map, of the scaled noisy image -- the best any predictor trained on noisy
      targets can score.

    Returns the card entry: ``{"description", "n_galaxies", row: {"mae", "ssim", "psnr"}}``.
    """
    card = translator.card
    scalings, references = metric_space(data, card.inputs, card.output)
    target = scalings[card.output]
    rng = np.random.default_rng(seed)
    stacks = [data.stack(i) for i in list(data.indices("test"))[:max_images]]
    predictions = translator.predict(stacks, uncertainty=False)
    refs = references(stacks)
    clean, oracle = [], []
    for i, stack in enumerate(stacks):
        meta = stack.meta
        image = make_galaxy(meta["galaxy_id"], view=meta["view"], log_ssfr=meta["log_ssfr"], mode=card.mode,
                            bands=[card.output], size=stack.shape[0], pixel_scale=meta["pixel_scale"],
                            depth_offset=12.0)[card.output]
        if not np.isclose(image.data.sum(), stack[card.output].data.sum(), rtol=0.05):
            raise RuntimeError(f"test image {i}: the noise-free re-rendering is not the same galaxy")
        ref = refs[i]
        sigma = np.asarray(stack[card.output].uncertainty.array)
        draws = [target.forward(image.data + sigma * rng.standard_normal(sigma.shape), reference=ref)
                 for _ in range(n_draws)]
        oracle.append(target.inverse(np.mean(draws, axis=0), reference=ref))
        clean.append(image)
    common = dict(inputs=[{b: s[b] for b in card.inputs} for s in stacks],
                  scaling={**scalings, "target": target}, references=refs, progress=False)
    out = {"description": "survey-mode test galaxies against their noise-free target (the mock's truth)",
           "n_galaxies": len(stacks)}
    for key, pred, truth in (("model_vs_noise_free", predictions, clean),
                             ("ceiling_vs_observed", oracle, [s[card.output] for s in stacks])):
        row = summarize(evaluate_pairs(pred, truth, **common))
        out[key] = {k: float(row[k][0]) for k in ("mae", "ssim", "psnr")}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", help="model names (default: every shipped model)")
    parser.add_argument("--max-images", type=int, help="test images per model (default: the whole split)")
    parser.add_argument("--robustness", type=int, default=60, help="new galaxies per robustness row (0: none)")
    parser.add_argument("--write-cards", action="store_true", help="store the metrics in the shipped model cards")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--data", help="a stored data set to evaluate on instead of rebuilding the card's "
                                       "(e.g. the training cache of benchmarks/train_zoo.py; one model)")
    args = parser.parse_args(argv)

    # a model fine-tuned on observed galaxies (any_band_kids_viking) has no mock test split: benchmarks/real_sky.py
    names = args.models or [card.name for card in list_models()
                            if card.training.get("data_info", {}).get("source") == "bandsynth.datasets.mock"]
    tables, robustness, verdicts = [], [], []
    for name in names:
        start = time.perf_counter()
        translator = Translator.load(name)
        if args.data:
            from bandsynth.datasets import open_dataset

            data = open_dataset(args.data)
        else:
            data = card_dataset(translator.card, progress=not args.quiet)
        sky = translator.card.survey is not None  # scored against the noise-free truth
        result = evaluate_translator(translator, data, max_images=args.max_images, progress=not args.quiet)
        metrics = result.card_metrics()
        if args.robustness and not sky:
            coefficients = result.per_galaxy["linear_colour"].meta["coefficients"]
            metrics["robustness"] = evaluate_robustness(
                translator, linear_coefficients=coefficients, max_images=args.robustness, progress=not args.quiet
            )
        for method in ("model", "nearest_input", "linear_colour"):
            tables.append([name if method == "model" else "", method,
                           *(_cell(metrics["test"][method], c) for c in COLUMNS)])
        for key, row in metrics.get("robustness", {}).items():
            robustness.append([name, key, str(row["model"]["n_galaxies"]),
                               *(_cell(row[m], "ssim") for m in ("model", "nearest_input", "linear_colour")),
                               _cell(row["model"], "psnr"), _cell(row["model"], "mae"),
                               _cell(row["model"], "coverage_1sigma")])
        if translator.card.mode == "survey" and not sky:
            metrics["noise_free_truth"] = noise_free_truth(translator, data, max_images=args.max_images)
        verdicts.append((name, verdict(name, metrics)))
        if args.write_cards:
            card_path = model_paths(name)[1]
            translator.card.with_metrics(metrics).write(card_path)  # model_speed.py's "bf16" stays
        print(f"{name}: evaluated in {time.perf_counter() - start:.0f} s", flush=True)

    _print_table(["model", "method", *COLUMNS], tables)
    if robustness:
        print()
        _print_table(["model", "evaluated on", "n", "SSIM model", "SSIM nearest", "SSIM linear", "PSNR model",
                      "MAE model", "1-sigma cov."], robustness)
    print()
    for name, lines in verdicts:
        print(name)
        print("\n".join(lines))
    return 0


def _print_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    raise SystemExit(main())
