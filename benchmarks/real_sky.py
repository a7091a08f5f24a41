"""The shipped models on observed galaxies: the KiDS/VIKING validation set.

For every shipped model whose bands the set has (each model band matched to the
set's nearest filter, within 10 % in wavelength), every galaxy of the chosen part
of the set is predicted from its observed input bands with the default
`Translator.predict` settings and compared with the observed target band.  The
stamps are first put onto a grid at the model's pixel scale, as a user does with
images whose pixels differ from the model's (`BandStack.reproject`, flux kept,
``reproject_exact``; ``--grid set`` keeps the set's own 0.2"/pixel grid):

* ``dmag``: ``-2.5 log10(prediction / truth)`` in a circular aperture at the stamp
  centre with the manifest's 90 % light radius (photutils; in arcsec, whatever the grid);
  beside it the median sky noise of the truth's aperture magnitude (``truth sigma``):
  a perfect prediction would still show a median ``|dmag|`` of about 0.67 times that;
* SSIM and L1 in the model's own output scaling (the card's fixed asinh stretch
  in nanomaggies, the same for every galaxy and method);
* 1- and 2-sigma coverage of the aperture's pixels: the observed truth carries sky
  noise (``SKYSIG``), so a pixel is covered when
  ``|prediction - truth| <= sqrt((k sigma)^2 + (k_sky SKYSIG)^2)`` (SKYSIG per pixel of
  the grid scored on: times the ratio of the pixel sizes after re-gridding) with ``k = 1`` and
  ``k_sky = 1`` for 1 sigma, and ``k = half_width_2sigma`` of the stated error
  distribution and ``k_sky = 2`` for 2 sigma.  Where the truth's noise dominates the
  residuals, SKYSIG alone covers about 68 % whatever sigma says, so ``cov1 bright``
  repeats the 1-sigma count on the pixels brighter than ``BRIGHT_PIXEL`` SKYSIG, where
  sigma itself is tested;
* ``model - linear``: the model's median ``|dmag|`` minus the linear colour model's, with
  the 16-84 % interval of a paired bootstrap over the scored galaxies (scipy): with some
  forty galaxies, a gap inside that interval's reach of zero is the luck of the split;

Beside each model: the global linear colour model ``f_out = sum_i c_i f_i``
(least squares on the pixels of the *fit* part of the set, never on the galaxies
scored), the nearest input band copied and scaled to the true aperture flux
(its ``dmag`` is zero by construction; it is there for SSIM and L1), and the
galaxy-level *colour relation* ``m_out - m_1 = a + sum_k b_k (m_k - m_1)`` of the
aperture magnitudes, fitted on the fit part's galaxies: a magnitude, not an image
(``dmag`` only), that says how much of the output's magnitude the inputs' integrated
colours determine on these galaxies.

The set is split by galaxy number: odd ``kv_NNN`` are the held-out part, on which
the figures are quoted; even ones form the fit part (the linear colour model, and
any fine-tuning on observed galaxies).

    python benchmarks/real_sky.py --real-data ../shared/realdata/kids_viking
    python benchmarks/real_sky.py --real-data DIR --models g_z_to_r_paper --part all --per-galaxy
    python benchmarks/real_sky.py --real-data DIR --figure docs/_static/real_galaxies_panel.jpg
    python benchmarks/real_sky.py --real-data DIR --models runs/any_band_out/any_band_ideal   # each band from the rest

``--shift 0.5`` then moves every band onto its grid shifted by half a pixel (flux kept), as a
user's reprojection onto another band's grid of the same pixel size does, which smooths the
noise; ``--restore-noise`` sets how ``predict`` treats that (`bandsynth.restored_noise`).  The
truth moves with the inputs and its noise is smoothed too, so SKYSIG overstates it and the
coverage figures are not comparable with the unshifted ones; ``dmag`` is.

    python benchmarks/real_sky.py --real-data DIR --models kids_g_z_to_r --shift 0.5 --restore-noise no

An any-band model (`bandsynth.any_band_translator`) is scored on each band the set has, predicted from all the
other bands the set has; with ``--degradation`` also on r from fewer and fewer bands.
"""

from __future__ import annotations

import argparse
import csv
import warnings
from pathlib import Path

import numpy as np
from astropy.wcs.utils import proj_plane_pixel_scales
from photutils.aperture import CircularAperture

from bandsynth import BandStack, Translator, list_models
from bandsynth.bands import get_band
from bandsynth.baseline import apply_linear_colour
from bandsynth.datasets.base import tan_wcs
from bandsynth.metrics import ssim
from bandsynth.scaling import AsinhScaling

#: The set's filters (EXTNAME) and their registry bands: KiDS (VST/OmegaCAM) and VIKING (VISTA/VIRCAM).
SET_FILTERS = {"u": "KiDS_u", "g": "KiDS_g", "r": "KiDS_r", "i": "KiDS_i", "Z": "VISTA_Z", "Y": "VISTA_Y",
               "J": "VISTA_J", "H": "VISTA_H", "Ks": "VISTA_Ks"}

#: A model band is served by the set's filter nearest in wavelength, if within this fraction.
MATCH_TOLERANCE = 0.10

#: Pixels of the truth brighter than this many sky sigmas: its noise no longer dominates the residuals there.
BRIGHT_PIXEL = 10.0


def held_out(file_name):
    """True for the held-out part: odd galaxy numbers (``kv_NNN``)."""
    return int(Path(file_name).name.split("_")[1]) % 2 == 1


def _wavelength(band):
    return get_band(band).wavelength.to_value("nm")


def nearest_band(band, candidates):
    """Of ``candidates`` (name -> registry band), the name nearest ``band`` in wavelength, or None when none is
    within `MATCH_TOLERANCE`."""
    lam = _wavelength(band)
    distance = {name: abs(np.log(_wavelength(b) / lam)) for name, b in candidates.items()}
    name = min(distance, key=distance.get)
    return name if distance[name] <= np.log1p(MATCH_TOLERANCE) else None


def nearest_filter(band):
    """The set's filter nearest ``band`` in wavelength, or None when none is within `MATCH_TOLERANCE`."""
    return nearest_band(band, SET_FILTERS)


def read_galaxies(directory, part):
    """Manifest rows of the chosen part, with the path resolved."""
    directory = Path(directory)
    with open(directory / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    keep = {"held-out": held_out, "fit": lambda n: not held_out(n), "all": lambda n: True}[part]
    return [dict(row, path=directory / row["file"]) for row in rows if keep(row["file"])]


def read_bands(path, mapping, *, pixel_scale=None, shift=0.0):
    """``(stack, sky, zoom)`` of one galaxy: ``mapping``'s bands (model band -> set filter), each one's SKYSIG
    per pixel and the ratio of the pixel sizes (1 on the set's grid).

    With ``pixel_scale`` (arcsec) the stamp is put onto a grid of that pixel scale with the
    same centre and field (flux kept; ``reproject_exact``), as a user would for a model
    trained at that scale.  Its sky noise per pixel grows with the pixel side (a sum of
    ``zoom**2`` pixels of independent noise).  With ``shift`` (pixels) the stamp is then put onto
    its own grid moved by that fraction of a pixel along both axes, as a user's reprojection of
    a band onto another band's grid of the same pixel size does (``reproject_exact``).
    """
    stack = BandStack.from_fits(path, extnames={extension: band for band, extension in mapping.items()})
    sky = {band: float(stack[band].meta["SKYSIG"]) for band in mapping}
    zoom = 1.0 if pixel_scale is None else float(pixel_scale) / (float(proj_plane_pixel_scales(stack.wcs)[0]) * 3600.0)
    if abs(zoom - 1.0) < 0.01:
        zoom = 1.0
    else:
        ny, nx = stack.shape
        shape = (int(ny / zoom), int(nx / zoom))
        ra, dec = stack.wcs.pixel_to_world_values((nx - 1) / 2.0, (ny - 1) / 2.0)  # the set's grids are north-up TAN
        stack = stack.reproject((tan_wcs(ra, dec, pixel_scale, shape), shape), method="exact")
        sky = {b: s * zoom for b, s in sky.items()}
    if shift:
        moved = stack.wcs.deepcopy()
        moved.wcs.crpix = [c + shift for c in moved.wcs.crpix]
        stack = stack.reproject((moved, stack.shape), method="exact")
    return stack, sky, zoom


def fit_colour_model(galaxies, mapping, inputs, output):
    """Global least-squares ``c`` of ``output = sum_i c_i input_i`` over every pixel of ``galaxies``.

    `bandsynth.baseline.fit_linear_colour` fits the same model on a data set of one image
    size; these stamps come in two sizes, so the pixels are pooled here.
    """
    columns, target = [], []
    for row in galaxies:
        images = read_bands(row["path"], mapping)[0]
        columns.append(np.stack([np.ravel(images[b].data) for b in inputs], axis=1))
        target.append(np.ravel(images[output].data))
    coefficients, *_ = np.linalg.lstsq(np.concatenate(columns), np.concatenate(target), rcond=None)
    return coefficients


def _aperture(row, zoom, size):
    """The scoring aperture: the manifest's 90 % light radius (at least 5 set pixels) at the stamp centre."""
    radius = float(np.clip(float(row["r90_px"]) / zoom, 5.0 / zoom, size / 2 - 1))
    return CircularAperture(((size - 1) / 2, (size - 1) / 2), r=radius)


def _magnitudes(images, bands, aperture):
    """AB magnitudes of ``bands`` in ``aperture`` (NaN where the flux is not positive)."""
    fluxes = np.array([_aperture_sum(np.nan_to_num(images[b].data), aperture) for b in bands])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(fluxes > 0, 22.5 - 2.5 * np.log10(fluxes), np.nan)


def fit_colour_relation(galaxies, mapping, inputs, output, pixel_scale):
    """Galaxy-level colour relation ``m_out - m_1 = a + sum_k b_k (m_k - m_1)`` of aperture magnitudes.

    Least squares over the ``galaxies`` (the fit part), each measured as `score_galaxy` measures
    it: on the grid of ``pixel_scale`` (None: the set's), in the same aperture.  What the inputs'
    integrated colours alone say of the output's magnitude, galaxy by galaxy.
    """
    design, target = [], []
    for row in galaxies:
        images, _, zoom = read_bands(row["path"], mapping, pixel_scale=pixel_scale)
        m = _magnitudes(images, [output, *inputs], _aperture(row, zoom, images.shape[0]))
        if np.all(np.isfinite(m)):
            design.append([1.0, *(m[2:] - m[1])])
            target.append(m[0] - m[1])
    solution, *_ = np.linalg.lstsq(np.array(design), np.array(target), rcond=None)
    return solution


def _aperture_sum(image, aperture):
    return float(aperture.do_photometry(np.asarray(image, dtype=np.float64))[0][0])


def _dmag(flux, truth):
    return -2.5 * np.log10(flux / truth) if flux > 0 and truth > 0 else np.nan


def predict_galaxy(translator, row, mapping, *, grid="model", shift=0.0, restore_noise="auto"):
    """``(images, sky, zoom, prediction)`` of one galaxy: its observed bands (on the model's pixel scale for
    ``grid="model"``, moved by ``shift`` pixels: `read_bands`), their SKYSIG, the ratio of pixel sizes to the
    set's and the model's output."""
    scale = translator.card.pixel_scale if grid == "model" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # placeholder WCS positions; domain notes are in the provenance
        images, sky, zoom = read_bands(row["path"], mapping, pixel_scale=scale, shift=shift)
        return images, sky, zoom, translator.predict(images.select(translator.card.inputs),
                                                     restore_noise=restore_noise)


def score_galaxy(translator, row, mapping, coefficients, nearest, *, relation=None, grid="model", shift=0.0,
                 restore_noise="auto"):
    """Per-galaxy figures of the model and the baselines (``relation``: `fit_colour_relation`'s)."""
    card = translator.card
    images, sky, zoom, pred = predict_galaxy(translator, row, mapping, grid=grid, shift=shift,
                                             restore_noise=restore_noise)
    truth = np.nan_to_num(np.asarray(images[card.output].data, dtype=np.float64))
    aperture = _aperture(row, zoom, truth.shape[0])
    truth_flux = _aperture_sum(truth, aperture)
    linear = apply_linear_colour([np.nan_to_num(images[b].data) for b in card.inputs], coefficients)
    copy = np.nan_to_num(np.asarray(images[nearest].data, dtype=np.float64))
    copy_flux = _aperture_sum(copy, aperture)
    copy = copy * (truth_flux / copy_flux) if copy_flux > 0 else copy
    scale = AsinhScaling(**card.scaling[card.output])
    scaled_truth = scale.forward(truth)
    # the truth's own sky noise in the aperture, in magnitudes (a perfect prediction's |dmag| is ~0.67 of it)
    figures = {"file": Path(row["file"]).name,
               "truth_sigma_mag": 2.5 / np.log(10) * sky[card.output] * np.sqrt(aperture.area) / truth_flux}
    if relation is not None:
        m = _magnitudes(images, [card.output, *card.inputs], aperture)
        figures["relation_dmag"] = m[1] + relation[0] + float(np.dot(relation[1:], m[2:] - m[1])) - m[0]
    for method, image in (("model", np.asarray(pred.data, np.float64)), ("linear", linear), ("copy", copy)):
        scaled = scale.forward(image)
        figures[f"{method}_dmag"] = _dmag(_aperture_sum(image, aperture), truth_flux)
        figures[f"{method}_ssim"] = ssim(scaled, scaled_truth, data_range=1.0)
        figures[f"{method}_l1"] = float(np.mean(np.abs(scaled - scaled_truth)))
    inside = aperture.to_mask(method="center").to_image(truth.shape).astype(bool) & ~np.asarray(pred.mask, bool)
    residual = np.abs(np.asarray(pred.data, np.float64) - truth)[inside]
    sigma, noise = pred.uncertainty.array[inside], sky[card.output]
    half_width = pred.meta["provenance"]["uncertainty"]["half_width_2sigma"]
    figures["cov1"] = float(np.mean(residual <= np.hypot(sigma, noise)))
    figures["cov2"] = float(np.mean(residual <= np.hypot(half_width * sigma, 2 * noise)))
    figures["n_pixels"] = int(inside.sum())
    # where the truth's own noise dominates the residuals, sky noise alone covers ~68 %: the
    # pixels brighter than BRIGHT_PIXEL sky sigmas are where sigma itself is put to the test
    bright = truth[inside] > BRIGHT_PIXEL * noise
    figures["n_bright"] = int(bright.sum())
    figures["cov1_bright"] = (float(np.mean(residual[bright] <= np.hypot(sigma[bright], noise)))
                              if bright.any() else np.nan)
    return figures


def requests(translator, *, degradation=False):
    """The one-mapping translators to score: the model itself, or, for an any-band model, each band the set has
    predicted from all the other bands the set has (and with ``degradation`` r from fewer and fewer bands, the
    rows of benchmarks/any_band.py)."""
    if not translator.card.outputs:
        return [translator]
    served = [b for b in translator.inputs if nearest_filter(b) is not None]
    tasks = [translator.task(inputs=[b for b in served if b != band], output=band)
             for band in translator.outputs if band in served]
    if degradation:
        from any_band import degradation_requests

        tasks += [translator.task(inputs=inputs, output=output)
                  for inputs, output in degradation_requests(translator)
                  if all(b in served for b in (*inputs, output))]
    return tasks


def band_mapping(card):
    """Model band -> set filter for every band of ``card``, or None when one has no match."""
    mapping = {band: nearest_filter(band) for band in (*card.inputs, card.output)}
    return None if None in mapping.values() else mapping


def _median_row(rows, key):
    values = np.array([r[key] for r in rows], dtype=float)
    return np.nanmedian(values)


def _pooled(rows, key, *, weight="n_pixels"):
    """Coverage over every scored pixel (galaxies weighted by their count of them, ``weight``)."""
    weights = np.array([r[weight] for r in rows], dtype=float)
    values = np.nan_to_num(np.array([r[key] for r in rows], dtype=float))  # NaN only where the weight is 0
    return float(np.sum(weights * values) / np.sum(weights))


def _bright_text(rows):
    """1-sigma coverage of the bright pixels, pooled, and how many there are."""
    n = sum(r["n_bright"] for r in rows)
    return f"{_pooled(rows, 'cov1_bright', weight='n_bright'):.3f} ({n})" if n else "- (0)"


def _dmag_text(rows, key):
    values = np.array([r[key] for r in rows], dtype=float)
    values = values[np.isfinite(values)]
    lo, hi = np.percentile(values, [16, 84])
    return f"{np.median(np.abs(values)):.3f} [{lo:+.2f}, {hi:+.2f}]"


def bootstrap_68(samples, statistic):
    """16-84 % interval of ``statistic(*samples, axis=-1)`` from a bootstrap over the galaxies (scipy, 2000
    resamples, seed 0); several samples are resampled together (paired: the same galaxies for each)."""
    from scipy.stats import bootstrap

    result = bootstrap(tuple(samples), statistic, paired=len(samples) > 1, vectorized=True, confidence_level=0.68,
                       n_resamples=2000, method="percentile", random_state=np.random.default_rng(0))
    return tuple(result.confidence_interval)


def _gap_text(rows, key, baseline):
    """Median ``|dmag|`` of ``key`` minus that of ``baseline``, with its paired bootstrap interval: is the
    difference more than the luck of which galaxies were held out?"""
    pairs = np.array([[r[key], r[baseline]] for r in rows], dtype=float)
    pairs = pairs[np.isfinite(pairs).all(axis=1)]

    def gap(a, b, axis=-1):
        return np.median(np.abs(a), axis=axis) - np.median(np.abs(b), axis=axis)

    low, high = bootstrap_68((pairs[:, 0], pairs[:, 1]), gap)
    return f"{gap(pairs[:, 0], pairs[:, 1]):+.3f} [{low:+.3f}, {high:+.3f}]"


def draw_panel(translator, rows, mapping, path, *, n=4, grid="model"):
    """Inputs, truth, prediction, residual and sigma of ``n`` galaxies spread over ``rows`` (by magnitude)."""
    import matplotlib

    matplotlib.use("Agg")
    from bandsynth.plotting import plot_panel

    card = translator.card
    rows = sorted(rows, key=lambda r: float(r["rmag_kron"]))
    chosen = [rows[int(i)] for i in np.linspace(0, len(rows) - 1, n)]
    inputs, truths, preds, sigmas, labels = [], [], [], [], []
    for row in chosen:
        images, _, _, pred = predict_galaxy(translator, row, mapping, grid=grid)
        inputs.append({f"{mapping[b]} (obs.)": images[b].data for b in card.inputs})
        truths.append(images[card.output].data)
        preds.append(pred.data)
        sigmas.append(pred.uncertainty.array)
        labels.append(f"{Path(row['file']).name[:6]}  r={float(row['rmag_kron']):.1f}")
    fig = plot_panel(inputs, truths, preds, sigma=sigmas, band=f"{mapping[card.output]} ({card.name})",
                     row_labels=labels, unit="nanomaggy")
    jpeg = str(path).lower().endswith((".jpg", ".jpeg"))
    fig.savefig(path, dpi=70, bbox_inches="tight", **({"pil_kwargs": {"quality": 85}} if jpeg else {}))
    print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-data", required=True, help="the kids_viking directory (manifest.csv, fits/)")
    parser.add_argument("--models", nargs="+", help="model names (default: every shipped model the set serves)")
    parser.add_argument("--part", choices=["held-out", "fit", "all"], default="held-out",
                        help="galaxies scored (default: the held-out part)")
    parser.add_argument("--per-galaxy", action="store_true", help="print one line per galaxy too")
    parser.add_argument("--figure", metavar="PNG", help="also draw a panel of scored galaxies for --figure-model")
    parser.add_argument("--figure-model", default="kids_g_z_to_r", help="model of the panel (default: kids_g_z_to_r)")
    parser.add_argument("--degradation", action="store_true",
                        help="for an any-band model, also r from fewer and fewer bands")
    parser.add_argument("--grid", choices=["model", "set"], default="model",
                        help="score on a grid at the model's pixel scale (default) or on the set's own")
    parser.add_argument("--shift", type=float, default=0.0, metavar="PIXELS",
                        help="then move every band onto its grid shifted by this fraction of a pixel (0 to 0.5)")
    parser.add_argument("--restore-noise", choices=["auto", "yes", "no"], default="auto",
                        help="predict's restore_noise (default: auto)")
    args = parser.parse_args(argv)
    if not 0.0 <= args.shift <= 0.5:
        parser.error(f"--shift {args.shift}: expected a fraction of a pixel from 0 to 0.5")
    restore_noise = {"auto": "auto", "yes": True, "no": False}[args.restore_noise]
    scored, fit_part = read_galaxies(args.real_data, args.part), read_galaxies(args.real_data, "fit")
    names = args.models or [c.name for c in list_models()]
    print(f"{len(scored)} galaxies ({args.part}); linear colour model fitted on {len(fit_part)} (fit part)")
    print(f"{'model':<11} {'bands':<22} {'|dmag| model [16-84%]':>24} {'linear colour':>24} "
          f"{'colour relation':>24} {'SSIM m/lin/copy':>17} {'L1 m/lin/copy':>20} {'cov1':>5} {'cov2':>5} "
          f"{'cov1 bright (px)':>17} {'truth sigma':>11} {'model - linear [16-84%]':>24}")
    for translator in (t for name in names for t in requests(Translator.load(name), degradation=args.degradation)):
        card = translator.card
        name = f"{card.name}:{card.output}" if "task" in card.architecture else card.name
        mapping = band_mapping(card)
        if mapping is None:
            print(f"{name:<11} skipped: the set has no filter near " +
                  ", ".join(b for b in (*card.inputs, card.output) if nearest_filter(b) is None))
            continue
        coefficients = fit_colour_model(fit_part, mapping, card.inputs, card.output)
        relation = fit_colour_relation(fit_part, mapping, card.inputs, card.output,
                                       card.pixel_scale if args.grid == "model" else None)
        nearest = min(card.inputs, key=lambda b: abs(np.log(_wavelength(b) / _wavelength(card.output))))
        rows = [score_galaxy(translator, row, mapping, coefficients, nearest, relation=relation, grid=args.grid,
                             shift=args.shift, restore_noise=restore_noise) for row in scored]
        if args.per_galaxy:
            for r in rows:
                print("   ", "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
        bands = "+".join(mapping[b] for b in card.inputs) + "->" + mapping[card.output]
        ssims = "/".join(f"{_median_row(rows, f'{m}_ssim'):.3f}" for m in ("model", "linear", "copy"))
        l1s = "/".join(f"{_median_row(rows, f'{m}_l1'):.4f}" for m in ("model", "linear", "copy"))
        print(f"{name:<11} {bands:<22} {_dmag_text(rows, 'model_dmag'):>24} {_dmag_text(rows, 'linear_dmag'):>24} "
              f"{_dmag_text(rows, 'relation_dmag'):>24} {ssims:>17} {l1s:>20} {_pooled(rows, 'cov1'):>5.3f} "
              f"{_pooled(rows, 'cov2'):>5.3f} {_bright_text(rows):>17} {_median_row(rows, 'truth_sigma_mag'):>11.3f} "
              f"{_gap_text(rows, 'model_dmag', 'linear_dmag'):>24}", flush=True)
        if args.figure and name == args.figure_model:
            draw_panel(translator, scored, mapping, args.figure, grid=args.grid)


if __name__ == "__main__":
    main()
