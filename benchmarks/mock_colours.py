"""Do the mock universe's colours match observed galaxies'?  The KiDS/VIKING set beside survey-layer mocks.

A model trained on the mock universe can only be as right on the sky as the mock galaxies'
colours are: a model learns how the output band's flux follows from the inputs' on its
training galaxies.  This benchmark measures, in one circular aperture (``--aperture``
arcsec, at the stamp centre) on the observed galaxies (their observed images) and on
survey-layer mock galaxies of the same filters, pixel scale and magnitudes
(``observe_galaxy(..., "kids_viking", r_mag_range=(15, 20.5))``, noise-free truth):

* the median (16-84 %) of each colour of consecutive ``--bands``;
* the *colour relation* ``m_out - m_1 = a + sum_k b_k (m_k - m_1)`` of the aperture
  magnitudes (``--output`` from ``--inputs``; as in ``benchmarks/real_sky.py``), fitted on
  the mock galaxies and applied to the observed ones: the median and median absolute
  ``dmag`` it makes there.  A mock universe whose colours are the sky's gives the
  observed galaxies' own relation (fitted on the fit part, scored on the held-out part:
  the first row) its small error; a bias says by how much the mock galaxies' output band
  sits off the observed ones' at the same input colours.

Mock configurations (``--configs``): a physics family (`bandsynth.datasets.mock.FAMILIES`:
``default``, ``bc03``, ``broad``, ...) in the rest frame, or followed by ``+redshift``
(``make_dataset(..., redshift=True)``: galaxies and neighbours at redshifts drawn from
their magnitudes).

    python benchmarks/mock_colours.py --real-data ../shared/realdata/kids_viking
    python benchmarks/mock_colours.py --real-data DIR --bands u g r --inputs g r --output u
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from photutils.aperture import CircularAperture

from bandsynth.datasets.mock import galaxy_seed, observe_galaxy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_sky import SET_FILTERS, read_bands, read_galaxies  # noqa: E402

PIXEL_SCALE = 0.2  # arcsec: the set's grid, and KiDS'
STAMP = 96  # pixels of a mock stamp (19.2")


def aperture_magnitudes(images, bands, radius_px):
    """AB magnitudes of ``bands`` (``name -> 2-D array`` in nanomaggies) in a circle at the centre; NaN if not > 0."""
    out = []
    for band in bands:
        data = np.nan_to_num(np.asarray(images[band], dtype=np.float64))
        centre = ((data.shape[1] - 1) / 2.0, (data.shape[0] - 1) / 2.0)
        flux = float(CircularAperture(centre, r=radius_px).do_photometry(data)[0][0])
        out.append(22.5 - 2.5 * np.log10(flux) if flux > 0 else np.nan)
    return np.array(out)


def observed_magnitudes(directory, bands, radius_px, part):
    """(n_galaxy, n_band) aperture magnitudes of the observed set's ``part``."""
    mapping = {SET_FILTERS[band]: band for band in bands}  # registry band -> the set's EXTNAME
    rows = []
    for row in read_galaxies(directory, part):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stack = read_bands(row["path"], mapping)[0]
        rows.append(aperture_magnitudes({b: stack[SET_FILTERS[b]].data for b in bands}, bands, radius_px))
    return np.array(rows)


def mock_magnitudes(config, bands, radius_px, n, *, seed, size):
    """(n, n_band) aperture magnitudes of ``n`` survey-layer galaxies (noise-free truth) and their redshifts."""
    family, _, shift = config.partition("+")
    redshift = shift == "redshift"
    names = [SET_FILTERS[b] for b in bands]
    rows, redshifts = [], []
    for i in range(n):
        obs = observe_galaxy(galaxy_seed(seed, i), "kids_viking", bands=list(bands), size=size,
                             pixel_scale=PIXEL_SCALE, r_mag_range=(15.0, 20.5), redshift=redshift, family=family)
        truth = {b: obs.truth[name].data for b, name in zip(bands, names)}
        rows.append(aperture_magnitudes(truth, bands, radius_px))
        redshifts.append(obs.observed.meta["redshift"])
    return np.array(rows), np.array(redshifts)


def fit_relation(mags, columns):
    """Least-squares ``m_out - m_1 = a + sum_k b_k (m_k - m_1)``; ``columns`` = (out, first, *others) indices."""
    ok = np.all(np.isfinite(mags[:, columns]), axis=1)
    out, first, *others = columns
    design = np.column_stack([np.ones(ok.sum()), *(mags[ok, k] - mags[ok, first] for k in others)])
    solution, *_ = np.linalg.lstsq(design, mags[ok, out] - mags[ok, first], rcond=None)
    return solution


def relation_dmag(solution, mags, columns):
    """``dmag`` (predicted minus true output magnitude) of the relation on every galaxy with finite magnitudes."""
    out, first, *others = columns
    ok = np.all(np.isfinite(mags[:, columns]), axis=1)
    predicted = mags[ok, first] + solution[0] + sum(b * (mags[ok, k] - mags[ok, first])
                                                     for b, k in zip(solution[1:], others))
    return predicted - mags[ok, out]


def _colour_text(mags, bands):
    parts = []
    for k in range(len(bands) - 1):
        c = mags[:, k] - mags[:, k + 1]
        c = c[np.isfinite(c)]
        lo, mid, hi = np.percentile(c, [16, 50, 84])
        parts.append(f"{bands[k]}-{bands[k + 1]} {mid:.2f} [{lo:.2f}, {hi:.2f}]")
    return "  ".join(parts)


def _dmag_text(d):
    return f"median {np.median(d):+.3f}  |dmag| {np.median(np.abs(d)):.3f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--real-data", required=True, help="the KiDS/VIKING set's folder (manifest.csv, fits/)")
    parser.add_argument("--bands", nargs="+", default=["g", "r", "Z"], choices=list(SET_FILTERS),
                        help="bands whose consecutive colours are printed (the set's names)")
    parser.add_argument("--inputs", nargs="+", default=["g", "Z"], help="inputs of the colour relation")
    parser.add_argument("--output", default="r", help="output of the colour relation")
    parser.add_argument("--configs", nargs="+", metavar="FAMILY[+redshift]",
                        default=["default", "default+redshift", "bc03", "bc03+redshift"],
                        help="mock configurations (default: default, default+redshift, bc03, bc03+redshift)")
    parser.add_argument("--n-galaxies", type=int, default=150, help="mock galaxies per configuration")
    parser.add_argument("--aperture", type=float, default=2.0, help="aperture radius [arcsec]")
    parser.add_argument("--seed", type=int, default=5, help="seed of the mock galaxies")
    args = parser.parse_args(argv)

    bands = list(dict.fromkeys([*args.bands, args.output, *args.inputs]))
    columns = [bands.index(b) for b in (args.output, *args.inputs)]
    radius = args.aperture / PIXEL_SCALE
    held = observed_magnitudes(args.real_data, bands, radius, "held-out")
    fit = observed_magnitudes(args.real_data, bands, radius, "fit")
    every = np.concatenate([fit, held])
    relation = f"{args.output} from {' + '.join(args.inputs)}"
    print(f"aperture {args.aperture:g}\" radius; colour relation {relation}, scored on the {len(held)} held-out "
          f"observed galaxies")
    print(f"observed (all {len(every)}): {_colour_text(every[:, :len(args.bands)], args.bands)}")
    own = relation_dmag(fit_relation(fit, columns), held, columns)
    print(f"  relation fitted on the fit part ({len(fit)}): {_dmag_text(own)}")
    for config in args.configs:
        mags, z = mock_magnitudes(config, bands, radius, args.n_galaxies, seed=args.seed, size=STAMP)
        solution = fit_relation(mags, columns)
        colours = _colour_text(mags[:, :len(args.bands)], args.bands)
        print(f"mock {config} ({len(mags)}, median z {np.median(z):.2f}): {colours}")
        print(f"  relation fitted on these mocks: {_dmag_text(relation_dmag(solution, held, columns))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
