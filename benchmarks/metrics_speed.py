"""Speed of bandsynth's metrics and of the fast Gini/M20 against statmorph.

Run::

    python benchmarks/metrics_speed.py            # 100 mock galaxies
    python benchmarks/metrics_speed.py --n 20     # quicker

Prints, for 128 x 128 mock galaxies (half "ideal", half "survey" mode, r band):

* time per image of the pixel metrics (MAE + SSIM + PSNR) and of a full
  ``bandsynth.metrics.compare`` (segmentation, photometry, calibration,
  colours, Gini/M20 of prediction and truth);
* time per image of ``bandsynth.morphology.gini_m20`` and of statmorph on the
  same images and segmentation maps, measured in the same run: a full
  ``statmorph.SourceMorphology`` (what ``source_morphology`` computes per
  source) and statmorph restricted to the Gini/M20 chain; and the largest
  Gini/M20 difference.

CPU time of this process (``time.process_time``) is reported, so other jobs
on the machine disturb the figures less; BLAS threads are pinned to one.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402


def cpu(fn, *args, repeat=1, **kwargs):
    """(result, CPU seconds per call)."""
    start = time.process_time()
    for _ in range(repeat):
        out = fn(*args, **kwargs)
    return out, (time.process_time() - start) / repeat


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="number of mock galaxies (default 100)")
    parser.add_argument("--band", default="r")
    args = parser.parse_args(argv)

    import statmorph

    from bandsynth.datasets.mock import make_galaxy
    from bandsynth.metrics import compare, mae, psnr, ssim
    from bandsynth.morphology import gini_m20, segment
    from bandsynth.morphology.measure import _lean_class

    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    truths, preds, sigmas, images, segmaps, labels = [], [], [], [], [], []
    for seed in range(args.n):
        mode = "ideal" if seed % 2 else "survey"
        truth = np.asarray(make_galaxy(seed, mode=mode, bands=[args.band])[args.band].data, dtype=float)
        noise = 0.02 * np.nanpercentile(truth, 99)
        truths.append(truth)
        preds.append(truth * rng.normal(1.0, 0.03) + rng.normal(0, noise, truth.shape))
        sigmas.append(np.full(truth.shape, noise))
        seg = segment(truth, background=None if mode == "ideal" else "median")
        images.append(seg.image)
        segmaps.append(np.asarray(seg.segmap.data))
        labels.append(seg.label)
    shape = truths[0].shape
    print(f"{args.n} mock galaxies, {shape[0]}x{shape[1]} pixels, band {args.band}")

    # ---- pixel metrics and compare()
    _, t_pix = cpu(lambda: [(mae(p, t), ssim(p, t, data_range=1.0), psnr(p, t, data_range=1.0))
                            for p, t in zip(preds, truths)])  # fmt: skip
    from astropy.nddata import NDData, StdDevUncertainty

    nds = [NDData(p, uncertainty=StdDevUncertainty(s)) for p, s in zip(preds, sigmas)]
    m = min(args.n, 30)
    _, t_cmp = cpu(lambda: [compare(nd, t) for nd, t in zip(nds[:m], truths[:m])])
    print(f"pixel metrics (MAE+SSIM+PSNR): {1e3 * t_pix / args.n:8.2f} ms/image")
    print(f"compare() (everything)       : {1e3 * t_cmp / m:8.2f} ms/image  ({m} images)")

    # ---- fast Gini/M20 vs statmorph, same images and segmaps
    fast, t_fast = cpu(gini_m20, np.stack(images), np.stack(segmaps), labels=labels)
    lean = _lean_class(check_segmaps=False)
    lean._wanted = ("gini", "m20")
    ref_lean, ref_full = [], []
    start = time.process_time()
    for im, sm, lab in zip(images, segmaps, labels):
        mo = lean(np.asarray(im, float), sm, lab, gain=1.0)
        ref_lean.append((mo.gini, mo.m20))
    t_lean = time.process_time() - start
    start = time.process_time()
    for im, sm, lab in zip(images, segmaps, labels):
        mo = statmorph.SourceMorphology(np.asarray(im, float), sm, lab, gain=1.0)
        ref_full.append((mo.gini, mo.m20))
    t_full = time.process_time() - start
    ref = np.where(np.array(ref_full) == -99.0, np.nan, np.array(ref_full))
    dg = np.nanmax(np.abs(fast.gini - ref[:, 0]))
    dm = np.nanmax(np.abs(fast.m20 - ref[:, 1]))
    n = args.n
    print(f"fast gini_m20                : {1e3 * t_fast / n:8.2f} ms/image")
    print(f"statmorph, Gini/M20 chain    : {1e3 * t_lean / n:8.2f} ms/image  -> fast is {t_lean / t_fast:5.1f}x faster")
    print(f"statmorph.SourceMorphology   : {1e3 * t_full / n:8.2f} ms/image  -> fast is {t_full / t_fast:5.1f}x faster")
    print(f"max |dGini| = {dg:.2e}, max |dM20| = {dm:.2e} over {np.sum(np.isfinite(ref[:, 0]))} galaxies; "
          f"flags (0/1/2/4): {np.bincount(fast.flag, minlength=5)[[0, 1, 2, 4]].tolist()}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
