"""Single pixels whose sigma stands orders of magnitude above their neighbours', on observed galaxies.

For an any-band model, each band it writes is predicted from all the others on the first
``--galaxies`` held-out galaxies of the KiDS/VIKING set (odd ``kv_NNN``, on the set's own
grid; `benchmarks/real_sky.py` reads them the same way), and the ``UNCERT`` map is
compared with the median of each pixel's 5 x 5 neighbourhood (scipy).  Per band it
prints the pixels above 100 and above 10 times that median and the largest ratio of a
stamp's sigma to its median sigma.  ``any_band_kids_viking`` version 6 had 389 pixels
above 100 times (323 in Y); version 7, whose sigma head ends in a 3 x 3 median, none
(page "Any band in, any band out")::

    python benchmarks/sigma_spikes.py --real-data ../shared/realdata/kids_viking --models any_band_kids_viking
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from scipy.ndimage import median_filter

from real_sky import nearest_filter, read_bands, read_galaxies


def spikes(translator, galaxies, *, tta):
    """Per band: pixels over 100 and over 10 times their 5 x 5 median sigma, and the largest max/median."""
    from astropy.utils.exceptions import AstropyUserWarning

    bands = list(translator.card.outputs)
    mapping = {band: nearest_filter(band) for band in bands}
    counts = {band: [0, 0, 0.0] for band in bands}
    for row in galaxies:
        stack, _, _ = read_bands(row["path"], mapping)
        for band in bands:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AstropyUserWarning)  # the domain checks: not what is measured
                sigma = translator.predict(stack.select([b for b in bands if b != band]), band=band,
                                           tta=tta).uncertainty.array.astype(np.float64)
            ratio = sigma / median_filter(sigma, 5)
            counts[band][0] += int(np.count_nonzero(ratio > 100))
            counts[band][1] += int(np.count_nonzero(ratio > 10))
            counts[band][2] = max(counts[band][2], float(sigma.max() / np.median(sigma)))
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-data", required=True, help="the kids_viking directory (manifest.csv, fits/)")
    parser.add_argument("--models", nargs="+", default=["any_band_kids_viking"], help="any-band models")
    parser.add_argument("--galaxies", type=int, default=10, help="held-out galaxies scored (default 10)")
    parser.add_argument("--tta", action="store_true", help="predict with tta=True")
    args = parser.parse_args(argv)
    from bandsynth import Translator

    galaxies = read_galaxies(args.real_data, "held-out")[:args.galaxies]
    for name in args.models:
        translator = Translator.load(name)
        if not translator.card.outputs:
            parser.error(f"--models {name}: not an any-band model (its card lists no outputs)")
        print(f"{name} (version {translator.card.version}), {len(galaxies)} held-out galaxies, "
              f"each band from the others{' (tta)' if args.tta else ''}:")
        for band, (over100, over10, largest) in spikes(translator, galaxies, tta=args.tta).items():
            print(f"  {band:<9} sigma > 100x its 5x5 median: {over100:5d}   > 10x: {over10:6d}   "
                  f"largest max/median {largest:.3g}", flush=True)


if __name__ == "__main__":
    main()
