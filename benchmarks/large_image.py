"""``bandsynth predict`` on a large mosaic: wall time and peak memory.

Writes an NUV and a Ks image of ``--size`` x ``--size`` pixels (float32 nanomaggies,
sky noise with mock galaxies scattered over it) to a temporary folder, runs
``bandsynth predict --model MODEL`` on them in a child process and prints its wall
time and peak resident memory (``getrusage`` of the child), beside the size of the
inputs and of the written file.  The photometric contract asks for < 2 GiB at
10000 x 10000.

    python benchmarks/large_image.py                 # 10000 x 10000, nuv_k_to_r_paper
    python benchmarks/large_image.py --size 3000     # a quick look
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS


def write_mosaic(folder, size, *, n_galaxies=40, seed=0):
    """NUV and Ks FITS files of a ``size``-pixel field: ``{band: path}``."""
    from bandsynth.datasets import make_galaxy

    rng = np.random.default_rng(seed)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval, wcs.wcs.crpix = [150.0, 2.0], [size / 2, size / 2]
    wcs.wcs.cdelt = [-0.262 / 3600, 0.262 / 3600]
    header = wcs.to_header()
    header["BUNIT"] = "nanomaggy"
    galaxies = [make_galaxy(100 + k, bands=["NUV", "Ks"], size=128) for k in range(n_galaxies)]
    places = rng.integers(0, size - 128, size=(n_galaxies, 2))
    paths = {}
    for band, noise in (("NUV", 1e-4), ("Ks", 2e-3)):
        image = (noise * rng.standard_normal((size, size))).astype(np.float32)
        for galaxy, (y, x) in zip(galaxies, places):
            image[y : y + 128, x : x + 128] += galaxy[band].data
        paths[band] = Path(folder) / f"mosaic_{band}.fits"
        fits.PrimaryHDU(image, header=header).writeto(paths[band])
        del image
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10000, help="image side in pixels")
    parser.add_argument("--model", default="nuv_k_to_r_paper", help="shipped model")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bandsynth-mosaic-") as folder:
        paths = write_mosaic(folder, args.size)
        out = Path(folder) / "mosaic_r.fits"
        command = [sys.executable, "-m", "bandsynth.cli", "predict", "--model", args.model,
                   "--input", f"NUV={paths['NUV']}", "--input", f"K={paths['Ks']}", "-o", str(out)]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # kB -> GiB
        inputs = sum(p.stat().st_size for p in paths.values()) / 1024**3
        print(f"{args.size} x {args.size} px, model {args.model}: exit {done.returncode}, {seconds:.0f} s, "
              f"peak RSS {peak:.2f} GiB (inputs {inputs:.2f} GiB on disk"
              + (f", output {out.stat().st_size / 1024**3:.2f} GiB)" if out.exists() else ")"))
        if done.returncode:
            print(done.stderr[-2000:])


if __name__ == "__main__":
    main()
