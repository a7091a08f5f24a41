"""Prediction speed by precision, and what reduced precision does to photometry.

Run from the repository root::

    python benchmarks/model_speed.py                      # nuv_k_to_r_paper, 24 galaxies
    python benchmarks/model_speed.py --models g_r_to_u_paper --n 8 --seconds 3

For each model, on fresh mock galaxies of its card's universe (its image size; the survey
layer for the models of observed images):

* images per second of `Translator.predict <bandsynth.Translator.predict>` with its
  default options (uncertainty on; fp32), then with ``precision="bf16"`` (trunk in
  bfloat16; colour baseline, input convolution and heads in float32) and with bf16 + ``torch.compile``,
  each as a ratio to eager fp32 measured in the same run;
* the largest and the median relative difference of a galaxy's total flux
  (inside its footprint) between bf16 and fp32: the photometric contract allows
  0.2 %; the default precision is fp32, and ``precision="auto"`` takes bf16 only for a
  model whose card records a largest change within it (``--write-card`` records it);
* the GFLOP/s of one large fp32 and bf16 ``torch.mm``: the machine's practical peak,
  which bounds any bf16 speed-up (AMX CPUs ~6x, AVX512-BF16 ~2x).

Rates are medians over repeated calls (robust to short bursts of other work).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from bandsynth import Translator
from bandsynth.datasets.base import has_truth
from bandsynth.evaluation import card_dataset
from bandsynth.morphology import segment
from bandsynth.nn.training import bf16_supported


def matmul_gflops(dtype, *, n=2048, seconds=1.5):
    """GFLOP/s of the fastest of repeated n x n x n matrix products."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def rate(call, n_images, seconds):
    """Median images per second of ``call`` over ``seconds`` (after one warm-up call)."""
    call()
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 3:
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return n_images / statistics.median(times)


def record_bf16(name, diffs, *, n_galaxies):
    """Write the bf16 flux changes into the model's card (``metrics["bf16"]``; ``card_sha256`` recomputed)."""
    from bandsynth.models.zoo import ModelCard, model_paths

    path = model_paths(name)[1]
    bf16 = {
        "max_flux_change": float(max(diffs)), "median_flux_change": float(statistics.median(diffs)),
        "n_galaxies": int(n_galaxies), "torch": torch.__version__,
        "measured_on": "fresh galaxies of the card's universe (seed 30000): total flux in the truth's footprint, "
                       "bf16 against fp32 (benchmarks/model_speed.py --write-card)",
    }
    ModelCard.read(path).with_metrics({"bf16": bf16}).write(path)
    print(f"  wrote metrics['bf16'] into {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["nuv_k_to_r_paper"], help="shipped model names")
    parser.add_argument("--n", type=int, default=24, help="held-out galaxies")
    parser.add_argument("--seconds", type=float, default=6.0, help="timing per row")
    parser.add_argument("--write-card", action="store_true",
                        help="record the bf16 flux change in each model's card (metrics['bf16']), which "
                             "precision='auto' reads")
    args = parser.parse_args(argv)
    print(f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"bf16 kernels: {bf16_supported('cpu')}")
    peak32, peak16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    print(f"matmul peak: fp32 {peak32:.0f} GFLOP/s, bf16 {peak16:.0f} GFLOP/s ({peak16 / peak32:.2f}x)")
    for name in args.models:
        translator = Translator.load(name)
        card = translator.card
        # fresh galaxies of the card's universe (the survey layer for models of observed images)
        data = card_dataset(card, progress=False, seed=30_000, n_galaxies=args.n)
        stacks = [data.stack(i).select(card.inputs) for i in range(len(data))]
        footprints = []
        for i in range(len(data)):
            seg = segment(np.asarray(data.stack(i, truth=has_truth(data))[card.output].data, dtype=np.float64))
            footprints.append(None if seg.segmap is None else seg.segmap.data == seg.label)
        preds = {}
        for precision in ("fp32", "bf16"):
            preds[precision] = translator.predict(stacks, precision=precision, uncertainty=False, compile=False)
        diffs = [abs(float(b.data[f].sum()) / float(a.data[f].sum()) - 1)
                 for a, b, f in zip(preds["fp32"], preds["bf16"], footprints) if f is not None]
        print(f"\n{name} ({card.preset} preset, {translator.model.receptive_field} px receptive field): "
              f"bf16 vs fp32 total flux in the footprint: max {100 * max(diffs):.3f} %, "
              f"median {100 * statistics.median(diffs):.3f} % (contract: 0.2 %)")
        if args.write_card:
            record_bf16(name, diffs, n_galaxies=len(data))
        rows = [
            ("eager fp32, no uncertainty", dict(uncertainty=False, precision="fp32", compile=False)),
            ("predict() default (fp32, uncertainty on)", {}),
            ("eager bf16, no uncertainty", dict(uncertainty=False, precision="bf16", compile=False)),
            ("compiled bf16, no uncertainty", dict(uncertainty=False, precision="bf16", compile=True)),
        ]
        base = None
        for label, options in rows:
            try:
                r = rate(lambda: translator.predict(stacks, check_domain=False, **options), len(stacks), args.seconds)
            except Exception as err:  # torch.compile without a C++ compiler, ...
                print(f"  {label:<42} failed: {type(err).__name__}: {err}")
                continue
            base = base or r
            print(f"  {label:<42} {r:7.2f} img/s  {r / base:5.2f}x eager fp32")


if __name__ == "__main__":
    main()
