"""How much of a galaxy's magnitude in the output band its integrated input colours say, on survey-layer mocks.

For a model for observed images, fresh galaxies of its own universe (``card_dataset(card,
seed=...)``) are measured in the footprint of the noise-free output image
(`bandsynth.morphology.segment`): the output's true magnitude and each input's magnitude,
once as observed (noise, sky residual, masked pixels filled) and once noise-free.  The
galaxy-level *colour relation* ``m_out - m_1 = a + sum_k b_k (m_k - m_1)`` (as
``benchmarks/real_sky.py`` fits on observed galaxies) is fitted on the even galaxies and
scored on the odd ones, median ``|dmag|``; beside it the model's own median ``|dmag|`` in
the same footprints.  A model below the relation reads more than the integrated colours
(where the light of each colour is); a relation far from a target says how far the
colours alone are from it.  Galaxies whose observed input flux in the footprint is not
positive have no magnitude: they are counted, and left out of the relation.

    python benchmarks/mock_colour_relation.py --models nuv_k_to_r --n-galaxies 300
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np


def footprint_magnitudes(translator, data):
    """``(true output, observed inputs, noise-free inputs, model)`` AB magnitudes in each galaxy's footprint."""
    from bandsynth.evaluation import input_array
    from bandsynth.morphology import segment

    inputs, output = translator.inputs, translator.output
    rows = []
    for i in range(len(data)):
        observed, truth = data.stack(i), data.stack(i, truth=True)
        true = np.asarray(truth[output].data, np.float64)
        footprint = segment(true)
        inside = footprint.segmap.data == footprint.label
        prediction = np.asarray(translator.predict(observed.select(inputs)).data, np.float64)
        rows.append([true[inside].sum(), *(input_array(observed[b])[inside].sum() for b in inputs),
                     *(np.asarray(truth[b].data, np.float64)[inside].sum() for b in inputs),
                     prediction[inside].sum()])
    fluxes = np.array(rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        mags = np.where(fluxes > 0, 22.5 - 2.5 * np.log10(fluxes), np.nan)
    k = len(inputs)
    return mags[:, 0], mags[:, 1:1 + k], mags[:, 1 + k:1 + 2 * k], mags[:, -1]


def relation_dmag(m_out, m_in):
    """Median ``|dmag|`` on the odd galaxies of the colour relation fitted on the even ones, and how many
    galaxies had every magnitude."""
    y = m_out - m_in[:, 0]
    design = np.column_stack([np.ones(len(y)), *(m_in[:, k] - m_in[:, 0] for k in range(1, m_in.shape[1]))])
    ok = np.isfinite(design).all(axis=1) & np.isfinite(y)
    even = np.arange(len(y)) % 2 == 0
    coefficients, *_ = np.linalg.lstsq(design[ok & even], y[ok & even], rcond=None)
    return float(np.median(np.abs(design @ coefficients - y)[ok & ~even])), int(ok.sum())


def main(argv=None):
    from bandsynth import Translator
    from bandsynth.evaluation import card_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["nuv_k_to_r"])
    parser.add_argument("--n-galaxies", type=int, default=300)
    parser.add_argument("--seed", type=int, default=777, help="seed of the fresh universe")
    args = parser.parse_args(argv)
    print(f"{'model':<15} {'n':>4} {'relation, observed inputs':>26} {'relation, noise-free':>21} "
          f"{'model (odd)':>12}")
    for name in args.models:
        translator = Translator.load(name)
        data = card_dataset(translator.card, seed=args.seed, n_galaxies=args.n_galaxies, progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # domain notes of fresh mock galaxies
            m_out, observed, noise_free, model = footprint_magnitudes(translator, data)
        (obs, n_obs), (free, _) = relation_dmag(m_out, observed), relation_dmag(m_out, noise_free)
        odd = np.arange(len(m_out)) % 2 == 1
        model_dmag = float(np.nanmedian(np.abs(model - m_out)[odd]))
        print(f"{name:<15} {len(m_out):>4} {obs:>10.3f} ({len(m_out) - n_obs} without) {free:>21.3f} "
              f"{model_dmag:>12.3f}", flush=True)


if __name__ == "__main__":
    main()
