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
fainter half's median flux change at half a pixel in the card (``metrics["grid_offsets"]``):
a model within `bandsynth.models.domain.OFFSET_FLUX_TOLERANCE` is not warned about inputs
interpolated onto a grid of their own pixel size; one beyond it is, with its own figure.

    python benchmarks/grid_offsets.py --models g_z_to_r g_r_to_u --move all --write-card

``--rewhiten`` measures a remedy that is not in the package: before predicting, noise is
added to each moved band of an offset observation, seeded per galaxy.  ``white``: white
Gaussian noise up to the aligned observation's pixel-to-pixel scatter
(`bandsynth.models.domain.pixel_noise`).  ``spectrum``: noise whose power spectrum is the
complement of the bilinear interpolation's, ``sigma^2 (1 - |H(k)|^2)`` with ``sigma`` the
aligned scatter, so that the band's noise is white again, as it was before the interpolation.

    python benchmarks/grid_offsets.py --models g_r_to_u --move all --offsets 0.5 --rewhiten spectrum
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from photometry import _dmag

from bandsynth import BandStack, Translator
from bandsynth.datasets.mock import galaxy_seed, observe_galaxy
from bandsynth.evaluation import card_observation_options, input_array
from bandsynth.models.domain import pixel_noise
from bandsynth.morphology import detection_footprint


def observation_options(card):
    """observe_galaxy's options for the survey-layer universe the card's model was trained on."""
    try:
        return card_observation_options(card)
    except ValueError as err:
        raise SystemExit(f"{err}; this benchmark moves survey-layer grids") from None


def complement_noise(shape, shift, sigma, rng):
    """Noise that makes white noise of ``sigma`` smoothed by a bilinear shift of ``shift`` pixels (both axes) white
    again: white noise filtered by ``sqrt(1 - |H|^2)``, H the interpolation's transfer function.  Written here
    because no library adds the noise an interpolation removed."""
    def power(k):
        return (1 - shift) ** 2 + shift ** 2 + 2 * shift * (1 - shift) * np.cos(k)

    h2 = power(2 * np.pi * np.fft.fftfreq(shape[0]))[:, None] * power(2 * np.pi * np.fft.fftfreq(shape[1]))[None, :]
    white = rng.normal(0.0, 1.0, shape)
    return sigma * np.real(np.fft.ifft2(np.fft.fft2(white) * np.sqrt(np.clip(1.0 - h2, 0.0, None))))


def rewhitened(stack, aligned, bands, rng, *, kind, shift):
    """``stack`` with noise added to ``bands`` (``kind`` as ``--rewhiten``) from their scatter in ``aligned``."""
    images, sigmas = {}, {}
    for band in stack.names:
        data = np.asarray(stack[band].data, dtype=np.float64)
        if band in bands:
            sigma = pixel_noise(aligned[band].data)
            if kind == "white":
                data = data + rng.normal(0.0, np.sqrt(max(sigma ** 2 - pixel_noise(data) ** 2, 0.0)), data.shape)
            else:
                data = data + complement_noise(data.shape, shift % 1.0, sigma, rng)
        images[band] = data
        sigmas[band] = None if stack[band].uncertainty is None else stack[band].uncertainty.array
    return BandStack(images, wcs=stack.wcs, unit=stack.unit, uncertainty=sigmas,
                     mask={b: stack[b].mask for b in stack.names}, meta=stack.meta)


def galaxy_dmags(translator, *, offsets, moved, n, seed, rewhiten=None):
    """``({offset: per-galaxy delta mag}, per-galaxy true flux)`` with ``moved`` bands' grids offset."""
    card = translator.card
    options = observation_options(card)
    dmags, fluxes = {s: [] for s in offsets}, []
    for i in range(n):
        seen = {s: observe_galaxy(galaxy_seed(seed, i), **options,
                                  grid_offsets={b: (s, s) for b in moved} if s else None) for s in offsets}
        aligned = seen[0.0]
        truth = np.asarray(aligned.truth[card.output].data, dtype=np.float64)
        galaxy = detection_footprint([truth, *(input_array(aligned.observed[b]) for b in card.inputs)])
        fluxes.append(np.nan if galaxy is None else float(truth[galaxy].sum()))
        stacks = [seen[s].observed.select(card.inputs) for s in offsets]
        if rewhiten:
            rng = np.random.default_rng([seed, i])
            stacks = [stacks[0], *(rewhitened(st, stacks[0], moved, rng, kind=rewhiten, shift=s)
                                   for st, s in zip(stacks[1:], offsets[1:]))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sub-pixel moves are warned about: measured here on purpose
            preds = translator.predict(stacks, uncertainty=False)
        for s, pred in zip(offsets, preds):
            inside = None if galaxy is None else galaxy & ~np.asarray(pred.mask, dtype=bool)
            dmags[s].append(np.nan if inside is None else _dmag(pred.data, truth, inside))
    return {s: np.asarray(v, dtype=float) for s, v in dmags.items()}, np.asarray(fluxes)


def record_offsets(name, change, *, n_galaxies, seed):
    """Write the fainter half's median flux change at half a pixel into the shipped model's card."""
    from bandsynth.models.zoo import ModelCard, model_paths

    path = model_paths(name)[1]
    record = {
        "offset": 0.5, "median_flux_change": float(np.nanmedian(10 ** (-0.4 * change)) - 1.0),
        "n_galaxies": int(n_galaxies), "seed": int(seed),
        "measured_on": "the fainter half (by true flux) of fresh galaxies of the card's survey-layer universe, every "
                       "input's grid offset by half a native pixel along both axes against aligned grids: the "
                       "median relative change of the predicted flux in the footprint "
                       "(benchmarks/grid_offsets.py --move all --write-card)",
    }
    ModelCard.read(path).with_metrics({"grid_offsets": record}).write(path)
    print(f"  wrote metrics['grid_offsets'] into {path}: {record['median_flux_change']:+.4f}")


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
    parser.add_argument("--rewhiten", choices=("white", "spectrum"),
                        help="add noise to the moved bands first: white up to the aligned observation's scatter, "
                             "or with the spectrum the interpolation removed")
    parser.add_argument("--write-card", action="store_true",
                        help="store the fainter half's flux change at 0.5 px in each (shipped) model's card")
    args = parser.parse_args(argv)
    if args.write_card and args.rewhiten:
        parser.error("--write-card records the model as predict() runs it: leave out --rewhiten")
    if args.write_card and (args.move != "all" or 0.5 not in args.offsets):
        parser.error("--write-card records every input's grid offset by half a pixel: give --move all and 0.5 "
                     "among --offsets")
    bad = [s for s in args.offsets if not 0 < s <= 0.5]
    if bad:
        parser.error(f"--offsets {bad}: expected offsets above 0 and at most 0.5 native pixels")
    offsets = [0.0, *sorted(set(args.offsets))]
    for name in args.models:
        translator = Translator.load(name)
        card = translator.card
        moved = list(card.inputs[1:] if args.move == "others" else card.inputs)
        dmags, fluxes = galaxy_dmags(translator, offsets=offsets, moved=moved, n=args.n, seed=args.seed,
                                     rewhiten=args.rewhiten)
        faint = fluxes <= np.nanmedian(fluxes)
        print(f"\n{card.name} v{card.version}: {args.n} galaxies (seed {args.seed}), grids of {', '.join(moved)} offset"
              f"{f' and re-whitened ({args.rewhiten})' if args.rewhiten else ''}")
        print(f"{'offset [px]':>11}  {'median |dmag|':>13}  {'change of dmag, all [16-84 %]':>32}  "
              f"{'fainter half [16-84 %]':>32}")
        for s in offsets:
            change = dmags[s] - dmags[0.0]
            print(f"{s:>11.2f}  {np.nanmedian(np.abs(dmags[s])):>13.4f}  {_change(change):>32}  "
                  f"{_change(change[faint]):>32}", flush=True)
        if args.write_card:
            record_offsets(name, (dmags[0.5] - dmags[0.0])[faint], n_galaxies=int(faint.sum()), seed=args.seed)


if __name__ == "__main__":
    main()
