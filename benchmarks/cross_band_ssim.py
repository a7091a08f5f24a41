"""Cross-band SSIM of the mock universe against the figures quoted for Illustris and DECaLS.

For every (input, target) pair of the paper the mean SSIM between the input image and the
target image is computed over an sSFR-stratified sample, in the units the networks train on
(:mod:`bandsynth.datasets.torch_data`: reference flux from the input band, per-band asinh
scalings fitted on the sample, no clipping, no per-image min/max), with
``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1)``.  A second column applies a per-image [0, 1]
min/max normalisation after the asinh stretch (the paper's wording), for comparison.

Run::

    python benchmarks/cross_band_ssim.py [--n 200] [--size 128] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

from bandsynth.datasets.mock import make_dataset
from bandsynth.datasets.torch_data import ILLUSTRIS_SSIM, DECALS_SSIM, cross_band_ssim


def table(n=200, *, size=128, seed=0, views=1):
    rows = []
    ideal = make_dataset(n, seed=seed, size=size, views=views,
                         bands=["FUV", "NUV", "u", "g", "r", "z", "Ks"])
    for (a, b), ref in ILLUSTRIS_SSIM.items():
        rows.append(("ideal", a, b, ref, cross_band_ssim(ideal, a, b), cross_band_ssim(ideal, a, b, minmax=True)))
    survey = make_dataset(n, seed=seed, size=size, views=views, mode="survey",
                          bands=["DECam_g", "DECam_r", "DECam_z"])
    for (a, b), ref in DECALS_SSIM.items():
        rows.append(("survey", a, b, ref, cross_band_ssim(survey, a, b), cross_band_ssim(survey, a, b, minmax=True)))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    rows = table(args.n, size=args.size, seed=args.seed)
    print(f"{'mode':7s} {'input':>8s} {'target':>8s} {'paper':>6s} {'mock':>6s} {'diff':>6s} {'ok':>3s} {'minmax':>7s}")
    for mode, a, b, ref, val, mm in rows:
        ok = "yes" if abs(val - ref) <= 0.15 else "NO"
        print(f"{mode:7s} {a:>8s} {b:>8s} {ref:6.2f} {val:6.2f} {val - ref:+6.2f} {ok:>3s} {mm:7.2f}")
    print(f"({args.n} galaxies per mode, {args.size}x{args.size}, {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
