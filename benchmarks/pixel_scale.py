"""How the shipped models' photometry holds off the pixel scale they were trained on.

For each model (``--models``), fresh galaxies of its card's universe (``--seed``: never
trained on) are rendered on pixels ``--factors`` times the training images' (the same
galaxies: `bandsynth.evaluation.card_dataset` with ``pixel_scale=``), each with its truth,
and predicted with the default settings.
Per galaxy, inside its footprint (`bandsynth.morphology.detection_footprint`, as
``benchmarks/photometry.py``), ``delta mag = -2.5 log10(sum prediction / sum truth)``;
printed per factor: the median ``|delta mag|``, the signed median and the median change of
each galaxy's ``delta mag`` from the training scale's, the figure the domain warning's
threshold (`bandsynth.models.domain.PIXEL_SCALE_FACTOR`, a factor of 1.5) is to be read
against.  Factors beyond that threshold warn; the warnings are silenced here.

    python benchmarks/pixel_scale.py --models nuv_k_to_r_paper g_z_to_r --n 24
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from photometry import _dmag

from bandsynth import Translator
from bandsynth.evaluation import card_dataset, input_array, target_images
from bandsynth.morphology import detection_footprint


def galaxy_dmags(translator, *, factor, n, seed):
    """Per galaxy, delta mag of the prediction in its footprint, on pixels ``factor`` times the training's."""
    card = translator.card
    data = card_dataset(card, seed=seed, n_galaxies=n, pixel_scale=card.pixel_scale * factor, progress=False)
    indices = list(range(len(data)))
    stacks = [data.stack(i) for i in indices]
    truths = target_images(data, indices, card.output, stacks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # off the training scale on purpose
        preds = translator.predict([s.select(card.inputs) for s in stacks], uncertainty=False)
    out = []
    for stack, true, pred in zip(stacks, truths, preds):
        truth = np.asarray(true.data, dtype=np.float64)
        galaxy = detection_footprint([truth, *(input_array(stack[b]) for b in card.inputs)])
        inside = None if galaxy is None else galaxy & ~np.asarray(pred.mask, dtype=bool)
        out.append(np.nan if inside is None else _dmag(pred.data, truth, inside))
    return np.asarray(out, dtype=float)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["nuv_k_to_r_paper", "g_z_to_r"])
    parser.add_argument("--factors", nargs="+", type=float, default=[0.67, 0.8, 1.0, 1.25, 1.5, 2.0])
    parser.add_argument("--n", type=int, default=24, help="galaxies per model and factor (default: 24)")
    parser.add_argument("--seed", type=int, default=404, help="seed of the fresh universe (default: 404)")
    args = parser.parse_args(argv)
    factors = sorted(set(args.factors) | {1.0})
    for name in args.models:
        translator = Translator.load(name)
        dmags = {f: galaxy_dmags(translator, factor=f, n=args.n, seed=args.seed) for f in factors}
        print(f"\n{name} (trained at {translator.card.pixel_scale:g} arcsec/pixel), {args.n} galaxies per factor")
        print(f"{'factor':>7} {'arcsec':>7} {'median|dmag|':>13} {'median dmag':>12} {'median|change|':>15}")
        for f in factors:
            d = dmags[f]
            change = d - dmags[1.0]
            print(f"{f:7.2f} {f * translator.card.pixel_scale:7.3f} {np.nanmedian(np.abs(d)):13.4f} "
                  f"{np.nanmedian(d):+12.4f} {np.nanmedian(np.abs(change)):15.4f}")


if __name__ == "__main__":
    main()
