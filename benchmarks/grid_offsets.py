"""How a survey model's photometry moves when an input band's pixel grid is offset by a fraction of a pixel.

Surveys do not align their grids: a user brings the bands onto one grid with
`BandStack.reproject <bandsynth.stack.BandStack.reproject>`, which interpolates a band whose
grid is offset by a fraction of a pixel, and so smooths its noise.  For each model
(``--models``), fresh galaxies of its card's survey-layer universe (``--seed``: never trained
on) are observed with every native grid centred on the common one (the survey layer's
default) and again with the grids of the bands ``--move`` names offset by ``--offsets``
native pixels along both axes (`bandsynth.datasets.mock.observe_galaxy`'s ``grid_offsets``:
the same scene and the same noise draw, only where the pixels fall), and predicted with the
default settings.  Per galaxy, inside its footprint in the aligned observation
(`bandsynth.morphology.detection_footprint`, as ``benchmarks/photometry.py``),
``delta mag = -2.5 log10(sum prediction / sum truth)``; printed per offset: the median
``|delta mag|``, the median change of each galaxy's ``delta mag`` from the aligned
observation's with its 16-84 % range (negative: the offset made the galaxy brighter), for all
galaxies and for the fainter half (by true flux).  The truth is the aligned observation's
noise-free target band, which no offset of an input moves.

    python benchmarks/grid_offsets.py --models g_z_to_r --n 40
    python benchmarks/grid_offsets.py --models DIR/g_z_to_r --move all   # every input band moved

``--write-card`` (shipped models, ``--move all`` with 0.5 among ``--offsets``) stores the
fainter half's median flux change at half a pixel in the card (``metrics["grid_offsets"]``),
with the noise restored and without: a model within `bandsynth.models.domain.OFFSET_FLUX_TOLERANCE`
is not warned about inputs interpolated onto a grid of their own pixel size; one beyond it is,
with its own figure.

    python benchmarks/grid_offsets.py --models g_z_to_r g_r_to_u --move all --offsets 0.5 --n 80 --write-card

``--restore-noise``: predict with the noise the interpolation smoothed away added back
(`bandsynth.restored_noise`, ``Translator.predict``'s default), without, or both (the default).

    python benchmarks/grid_offsets.py --models g_r_to_u --move all --offsets 0.5 --restore-noise no
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from photometry import _dmag
from real_sky import bootstrap_68

from bandsynth import Translator
from bandsynth.datasets.mock import galaxy_seed, observe_galaxy
from bandsynth.evaluation import card_observation_options, input_array
from bandsynth.morphology import detection_footprint


def observation_options(card):
    """observe_galaxy's options for the survey-layer universe the card's model was trained on."""
    try:
        return card_observation_options(card)
    except ValueError as err:
        raise SystemExit(f"{err}; this benchmark moves survey-layer grids") from None


def galaxy_dmags(translator, *, offsets, moved, n, seed, restores=(True,)):
    """``({restore_noise: {offset: per-galaxy delta mag}}, per-galaxy true flux)`` with ``moved`` bands' grids
    offset, predicted with each of ``restores`` as ``restore_noise``."""
    card = translator.card
    options = observation_options(card)
    dmags, fluxes = {r: {s: [] for s in offsets} for r in restores}, []
    for i in range(n):
        seen = {s: observe_galaxy(galaxy_seed(seed, i), **options,
                                  grid_offsets={b: (s, s) for b in moved} if s else None) for s in offsets}
        aligned = seen[0.0]
        truth = np.asarray(aligned.truth[card.output].data, dtype=np.float64)
        galaxy = detection_footprint([truth, *(input_array(aligned.observed[b]) for b in card.inputs)])
        fluxes.append(np.nan if galaxy is None else float(truth[galaxy].sum()))
        stacks = [seen[s].observed.select(card.inputs) for s in offsets]
        for restore in restores:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # sub-pixel moves are warned about: measured here on purpose
                preds = translator.predict(stacks, uncertainty=False, restore_noise=restore)
            for s, pred in zip(offsets, preds):
                inside = None if galaxy is None else galaxy & ~np.asarray(pred.mask, dtype=bool)
                dmags[restore][s].append(np.nan if inside is None else _dmag(pred.data, truth, inside))
    return {r: {s: np.asarray(v, dtype=float) for s, v in d.items()} for r, d in dmags.items()}, np.asarray(fluxes)


def record_offsets(name, changes, *, n_galaxies, seed):
    """Write the fainter half's median flux change at half a pixel, with the noise restored and without, into the
    shipped model's card."""
    from bandsynth.models.zoo import ModelCard, model_paths

    path = model_paths(name)[1]
    ratios = {r: 10 ** (-0.4 * change[np.isfinite(change)]) - 1.0 for r, change in changes.items()}
    flux_change = {r: float(np.median(x)) for r, x in ratios.items()}
    # a faint galaxy's prediction moves with the noise drawn: how well the median is known (bootstrap over galaxies)
    interval = {r: [float(v) for v in bootstrap_68([x], np.median)] for r, x in ratios.items()}
    record = {
        "offset": 0.5, "median_flux_change": flux_change[True], "median_flux_change_unrestored": flux_change[False],
        "median_flux_change_68": interval[True], "median_flux_change_unrestored_68": interval[False],
        "n_galaxies": int(n_galaxies), "seed": int(seed),
        "measured_on": "the fainter half (by true flux) of fresh galaxies of the card's survey-layer universe, every "
                       "input's grid offset by half a native pixel along both axes against aligned grids: the "
                       "median relative change of the predicted flux in the footprint, with the smoothed-out noise "
                       "restored (restore_noise=True) and without (restore_noise=False), each with the 16-84 % "
                       "bootstrap interval of the median over the galaxies "
                       "(benchmarks/grid_offsets.py --move all --write-card)",
    }
    ModelCard.read(path).with_metrics({"grid_offsets": record}).write(path)
    print(f"  wrote metrics['grid_offsets'] into {path}: {flux_change[True]:+.4f} {interval[True]} (restored), "
          f"{flux_change[False]:+.4f} {interval[False]} (not restored)")


def _change(values):
    v = values[np.isfinite(values)]
    lo, mid, hi = np.percentile(v, [16, 50, 84])
    return f"{mid:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["g_z_to_r"], help="survey-layer models (names or folders)")
    parser.add_argument("--offsets", nargs="+", type=float, default=[0.1, 0.25, 0.5],
                        help="grid offsets in native pixels along each axis, each within 0.5 (default: 0.1 0.25 0.5)")
    parser.add_argument("--move", choices=("others", "all"), default="others",
                        help="whose grids move: every input but the first, the grid a user reprojects onto "
                             "(default), or every input")
    parser.add_argument("--n", type=int, default=40, help="galaxies per model (default: 40)")
    parser.add_argument("--seed", type=int, default=404, help="seed of the fresh universe (default: 404)")
    parser.add_argument("--restore-noise", choices=("yes", "no", "both"), default="both",
                        help="predict with restore_noise=True (predict's default), False or both (default: both)")
    parser.add_argument("--write-card", action="store_true",
                        help="store the fainter half's flux change at 0.5 px in each (shipped) model's card")
    args = parser.parse_args(argv)
    if args.write_card and (args.move != "all" or 0.5 not in args.offsets or args.restore_noise != "both"):
        parser.error("--write-card records every input's grid offset by half a pixel, with the noise restored and "
                     "without: give --move all, 0.5 among --offsets and --restore-noise both")
    bad = [s for s in args.offsets if not 0 < s <= 0.5]
    if bad:
        parser.error(f"--offsets {bad}: expected offsets above 0 and at most 0.5 native pixels")
    offsets = [0.0, *sorted(set(args.offsets))]
    for name in args.models:
        translator = Translator.load(name)
        card = translator.card
        moved = list(card.inputs[1:] if args.move == "others" else card.inputs)
        restores = {"yes": (True,), "no": (False,), "both": (True, False)}[args.restore_noise]
        dmags, fluxes = galaxy_dmags(translator, offsets=offsets, moved=moved, n=args.n, seed=args.seed,
                                     restores=restores)
        faint = fluxes <= np.nanmedian(fluxes)
        for restore in restores:
            print(f"\n{card.name} v{card.version}: {args.n} galaxies (seed {args.seed}), grids of {', '.join(moved)} "
                  f"offset, restore_noise={restore}")
            print(f"{'offset [px]':>11}  {'median |dmag|':>13}  {'change of dmag, all [16-84 %]':>32}  "
                  f"{'fainter half [16-84 %]':>32}")
            for s in offsets:
                change = dmags[restore][s] - dmags[restore][0.0]
                print(f"{s:>11.2f}  {np.nanmedian(np.abs(dmags[restore][s])):>13.4f}  {_change(change):>32}  "
                      f"{_change(change[faint]):>32}", flush=True)
        if args.write_card:
            record_offsets(name, {r: (dmags[r][0.5] - dmags[r][0.0])[faint] for r in restores},
                           n_galaxies=int(faint.sum()), seed=args.seed)


if __name__ == "__main__":
    main()
