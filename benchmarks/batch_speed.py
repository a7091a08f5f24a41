"""Batch prediction speed: FITS-to-FITS images/s against the model alone, and peak memory of tiling.

Run from the repository root::

    python benchmarks/batch_speed.py                   # paper preset, ~10 min on 2 cores
    python benchmarks/batch_speed.py --n 16 --repeat 1 --rss-size 1024 --preset small   # a quick look

Measured in one run, on an untrained model of the chosen preset saved to a temporary
folder (speed does not depend on the weights):

* model only: `Translator.predict` on in-memory `BandStack` objects, batches of 8,
  with 1 and with 2 torch threads, and split between 2 Python threads of 1 torch
  thread each (the batch's own parallelism without the files: it shows how much
  of the second core the machine gives right now);
* end to end: `bandsynth.batch.predict_many` from FITS files listed in an ECSV
  manifest to FITS outputs (read, hash, scale, predict, write with checksums, fsync),
  on a local cluster of 1 and of 2 worker processes of 1 torch thread each, and of
  1 worker with the default threads, all started and warmed up (torch imported,
  model loaded) before the clock starts; then once cold, processes started by
  ``predict_many`` itself, which gives the start-up cost;
* peak resident memory of ``bandsynth predict`` (FITS to FITS, tiled) on one
  ``--rss-size`` squared image, run as a subprocess and read from
  ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``.

Goals: end-to-end >= 85 % of model-only throughput on the same cores; 2 workers
>= 1.7 x one; peak RSS of the 4096 x 4096 prediction <= 2 GiB.  The load average
is printed before and after: on a machine shared with other work the numbers are
lower bounds and the worker scaling is capped by the cores actually free.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from astropy.io import fits
from astropy.table import Table

from bandsynth import BandStack, Translator
from bandsynth.batch import predict_many
from bandsynth.datasets import make_galaxy
from bandsynth.nn.network import TranslationNet

INPUTS, OUTPUT = ("NUV", "Ks"), "r"


def save_model(folder, preset):
    """An untrained network of ``preset`` with the shipped nuv_k_to_r_paper's scaling and colour model."""
    torch.manual_seed(0)
    shipped = Translator.load("nuv_k_to_r_paper")
    config = shipped.model.config
    net = TranslationNet.build(preset, **{k: config[k] for k in ("softening", "maximum", "out_softening",
                                                                  "out_maximum", "coefficients")})
    stem = Path(folder) / f"{preset}_bench"
    Translator(net, shipped.card.replace(name=f"{preset}_bench", preset=preset)).save(stem)
    return stem


def write_galaxies(folder, n, size):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        stack = make_galaxy(1000 + i, bands=list(INPUTS), size=size)
        names = []
        for band in INPUTS:
            name = f"g{i:04d}_{band}.fits"
            stack[band].write(folder / name, overwrite=True)
            names.append(name)
        rows.append((f"g{i:04d}", *names))
    manifest = folder / "manifest.ecsv"
    Table(rows=rows, names=("id", *INPUTS)).write(manifest, format="ascii.ecsv", overwrite=True)
    return manifest, rows


def model_only(stem, stacks, threads):
    torch.set_num_threads(threads)
    translator = Translator.load(stem)
    translator.predict(stacks[:8], batch_size=8)  # warm-up
    start = time.perf_counter()
    translator.predict(stacks, batch_size=8)
    return len(stacks) / (time.perf_counter() - start)


def model_only_threads(stem, stacks, workers):
    """Model-only images/s of ``workers`` Python threads sharing the stacks, 1 torch thread each.

    The same parallelism as the batch's worker threads, without the files: what the
    machine gives this workload right now.
    """
    from concurrent.futures import ThreadPoolExecutor

    torch.set_num_threads(1)
    translator = Translator.load(stem)
    translator.predict(stacks[:8], batch_size=8)  # warm-up
    chunks = [stacks[i::workers] for i in range(workers)]
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda chunk: translator.predict(chunk, batch_size=8), chunks))
    return len(stacks) / (time.perf_counter() - start)


def warm_cluster(stem, workers):
    """A LocalCluster like predict_many's, whose workers have imported torch and loaded the model."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    client = Client(cluster, set_as_default=False)
    card = Translator.load(stem).card
    ref = (str(Path(stem).resolve()), card.sha256, card.card_sha256)  # as bandsynth.batch.run names a model
    client.run(lambda: bool(__import__("bandsynth.batch.workers").batch.workers.get_translator(ref)))
    return cluster, client


def end_to_end(stem, manifest, out, **kwargs):
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    report = predict_many(stem, manifest, out_dir=out, progress=False, **kwargs)
    elapsed = time.perf_counter() - start
    if not report.ok or report.counts["done"] != len(report):
        raise RuntimeError(f"the benchmark batch failed: {report.failed}")
    return len(report) / elapsed


def peak_rss(stem, folder, size):
    """Peak RSS (GiB) and wall time of ``bandsynth predict`` on one size x size galaxy."""
    from astropy.wcs import WCS

    folder = Path(folder)
    y = np.exp(-0.5 * (np.linspace(-1, 1, size, dtype=np.float32) / 0.15) ** 2)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval, w.wcs.crpix = [150.0, 2.0], [size / 2, size / 2]
    w.wcs.cdelt = [-0.262 / 3600, 0.262 / 3600]
    args = [sys.executable, "-m", "bandsynth.cli", "predict", "--model", str(stem),
            "-o", str(folder / "big_r_synth.fits"), "--overwrite"]
    for band, power in zip(INPUTS, (1.0, 0.5)):
        header = w.to_header()
        header["BUNIT"] = "nanomaggy"
        path = folder / f"big_{band}.fits"
        fits.PrimaryHDU((np.outer(y, y) ** power + 1e-3).astype(np.float32), header).writeto(path, overwrite=True)
        args += ["--input", f"{band}={path}"]
    start = time.perf_counter()
    subprocess.run(args, check=True)
    elapsed = time.perf_counter() - start
    # Linux reports ru_maxrss in KiB; it is the largest of all children waited for so far.
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--n", type=int, default=32, help="galaxies in the batch")
    parser.add_argument("--size", type=int, default=128, help="image side of the batch galaxies")
    parser.add_argument("--rss-size", type=int, default=4096, help="side of the tiled image (0: skip)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; the best counts")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    results = {"preset": args.preset, "n": args.n, "size": args.size, "cores": cores,
               "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
               "load_before": os.getloadavg()}
    print(f"{args.preset} preset, {args.n} galaxies of {args.size}x{args.size}, {cores} cores, "
          f"load average before {results['load_before'][0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bandsynth-bench-") as tmp:
        stem = save_model(tmp, args.preset)
        # First, while this process has no other children: peak RSS of the tiled prediction.
        if args.rss_size:
            rss, seconds = peak_rss(stem, tmp, args.rss_size)
            results.update(rss_gib=rss, rss_seconds=seconds)
            print(f"peak RSS of `bandsynth predict` on {args.rss_size}x{args.rss_size}: {rss:.2f} GiB "
                  f"({seconds:.0f} s)")
        manifest, rows = write_galaxies(Path(tmp) / "data", args.n, args.size)
        stacks = [BandStack.from_fits({b: Path(tmp) / "data" / f for b, f in zip(INPUTS, row[1:])}) for row in rows]
        out = Path(tmp) / "out"
        clusters = {w: warm_cluster(stem, w) for w in (1, 2)}
        try:
            runs = {
                "model_1t": ("model only, 1 torch thread, batch 8", lambda: model_only(stem, stacks, 1)),
                "model_2t": ("model only, 2 torch threads, batch 8", lambda: model_only(stem, stacks, 2)),
                "model_2x1t": ("model only, 2 threads x 1 torch thread",
                               lambda: model_only_threads(stem, stacks, 2)),
                "e2e_1w": ("end to end, 1 worker process x 1 torch thread",
                           lambda: end_to_end(stem, manifest, out, scheduler=clusters[1][1], torch_threads=1)),
                "e2e_2w": ("end to end, 2 worker processes x 1 torch thread",
                           lambda: end_to_end(stem, manifest, out, scheduler=clusters[2][1], torch_threads=1)),
                "e2e_1w_default": (f"end to end, 1 worker process x default ({cores}) torch threads",
                                   lambda: end_to_end(stem, manifest, out, scheduler=clusters[1][1])),
            }
            previous = torch.get_num_threads()
            # Rounds interleave the configurations; the best round of each counts (bursts of
            # other work on a shared machine only ever slow a run down).
            for key in runs:
                results[key] = 0.0
            for _ in range(args.repeat):
                for key, (_, run) in runs.items():
                    results[key] = max(results[key], run())
            torch.set_num_threads(previous)
        finally:
            for cluster, client in clusters.values():
                client.close()
                cluster.close()
        for key, (label, _) in runs.items():
            print(f"{label}: {results[key]:.2f} images/s")
        # A cold run: start 2 worker processes, import torch in them, load the model.
        start = time.perf_counter()
        results["e2e_2w_cold"] = end_to_end(stem, manifest, out, workers=2, torch_threads=1)
        results["startup_s"] = time.perf_counter() - start - args.n / results["e2e_2w"]
        print(f"end to end, 2 workers, cold (processes started by predict_many): "
              f"{results['e2e_2w_cold']:.2f} images/s; start-up ~{results['startup_s']:.1f} s")
    results["load_after"] = os.getloadavg()
    ratio_1 = results["e2e_1w"] / results["model_1t"]
    # Model only on 2 cores: the better of its two ways of using them.
    ratio_2 = results["e2e_2w"] / max(results["model_2t"], results["model_2x1t"])
    scaling = results["e2e_2w"] / results["e2e_1w"]
    machine = results["model_2x1t"] / results["model_1t"]
    results.update(ratio_1=ratio_1, ratio_2=ratio_2, scaling=scaling, machine_scaling=machine)
    print(f"load average after {results['load_after'][0]:.2f}")
    print(f"end-to-end / model-only: {ratio_1:.0%} (1 core), {ratio_2:.0%} (2 cores)   goal >= 85 %")
    print(f"2 workers / 1 worker: {scaling:.2f}x   goal >= 1.7x "
          f"(model alone, 2 threads / 1 thread, same run: {machine:.2f}x)")
    if "rss_gib" in results:
        print(f"peak RSS {args.rss_size}^2: {results['rss_gib']:.2f} GiB   goal <= 2 GiB")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
