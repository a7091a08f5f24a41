"""Speed of the mock universe and of the training reader (single process, one core).

Prints galaxies per second for ``render_galaxy`` (13 bands, 128x128, ideal and survey
mode; new galaxies and extra views of the same galaxy), for the survey layer
(``observe_galaxy``: GALEX + SDSS + 2MASS, 10 bands, and KiDS + VIKING, 9 bands, each at
its native pixel scale, reprojected onto 128x128 pixels of 0.262"), for ``make_dataset`` and for
``write_mock_dataset``, and samples per second for ``BandPairDataset`` (in-memory and
memory-mapped on-disk sources, 96x96 random crops with flips/rotations).

Run::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/mock_speed.py [--n 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bandsynth.datasets import open_dataset
from bandsynth.datasets.mock import make_dataset, observe_galaxy, render_galaxy
from bandsynth.datasets.mock.population import galaxy as _galaxy
from bandsynth.datasets.store import write_mock_dataset
from bandsynth.datasets.torch_data import BandPairDataset


def _rate(fn, n):
    """(items per wall-clock second, items per CPU second of this process)."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="galaxies per measurement")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--only-survey", action="store_true",
                        help="only render_galaxy and observe_galaxy (skip the data set and reader rows)")
    args = parser.parse_args(argv)
    n, size = args.n, args.size
    render_galaxy(10**6, size=size)  # warm caches (band responses, PSF transfer functions)

    def new_galaxies(mode, offset):
        def run():
            for s in range(offset, offset + n):
                render_galaxy(s, size=size, mode=mode)
        return run

    rows = [
        ("render_galaxy ideal, new galaxies", _rate(new_galaxies("ideal", 0), n), "galaxies/s"),
        ("render_galaxy ideal, 2nd view", _rate(lambda: [render_galaxy(s, size=size, view=1)
                                                        for s in range(0, min(n, 32))], min(n, 32)), "views/s"),
        ("render_galaxy survey, new galaxies", _rate(new_galaxies("survey", 10**5), n), "galaxies/s"),
    ]
    n_obs = max(1, n // 5)
    for preset in ("galex_sdss_2mass", "kids_viking"):
        observe_galaxy(10**6, preset, size=size)  # warm caches
        rows.append((f"observe_galaxy {preset}, new galaxies",
                     _rate(lambda: [observe_galaxy(s, preset, size=size) for s in range(2 * 10**5, 2 * 10**5 + n_obs)],
                           n_obs), "galaxies/s"))
    if args.only_survey:
        rows = rows[:1] + rows[2:]
        _print(rows, n, size)
        return
    _galaxy.cache_clear()
    rows.append(("make_dataset ideal (in memory)", _rate(lambda: make_dataset(n, seed=2, size=size), n), "galaxies/s"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "set"
        rows.append(("write_mock_dataset ideal (FITS cubes)",
                     _rate(lambda: write_mock_dataset(path, n, seed=3, size=size, progress=False).close(), n),
                     "galaxies/s"))
        mem = make_dataset(n, seed=3, size=size, bands=["NUV", "r", "Ks"])
        disk = open_dataset(path)
        for label, source in (("in-memory", mem), ("on-disk (memmap)", disk)):
            t0, c0 = time.perf_counter(), time.process_time()
            pairs = BandPairDataset(source, inputs=["NUV", "Ks"], target="r", split=None,
                                    crop_size=min(96, size), augment=True)
            build = time.perf_counter() - t0, time.process_time() - c0
            reps = max(1, 20000 // len(pairs))

            def read():
                for epoch in range(reps):
                    pairs.set_epoch(epoch)
                    for i in range(len(pairs)):
                        pairs[i]
            rows.append((f"BandPairDataset {label} read", _rate(read, reps * len(pairs)), "samples/s"))
            rows.append((f"BandPairDataset {label} build ({len(pairs)} images)",
                         (len(pairs) / build[0], len(pairs) / build[1]), "images/s"))
        disk.close()
    _print(rows, n, size)


def _print(rows, n, size):
    print(f"{'measurement':48s} {'wall':>9s} {'per core':>9s}")
    for label, (wall, cpu), unit in rows:
        print(f"{label:48s} {wall:9.1f} {cpu:9.1f}  {unit}")
    print(f"({n} galaxies ({max(1, n // 5)} for observe_galaxy), {size}x{size}, one process; 'per core' = per "
          "CPU-second of the process,")
    print(" which does not count the time other processes hold the core)")


if __name__ == "__main__":
    main()
