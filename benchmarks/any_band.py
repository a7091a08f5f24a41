"""An any-band model against the dedicated models, and how it degrades as bands are removed.

On the held-out galaxies of the mock universe the paper reproductions were trained on
(the any-band model's own test split: the same galaxies, rendered in all its bands;
``--data`` is that stored set, e.g. the cache of ``benchmarks/train_any_band.py``), with
the measures of ``benchmarks/photometry.py`` (median |delta mag| in the footprint with
its 16-84 % range, the linear colour model's, SSIM in the paper's metric space, 1-sigma
coverage):

1. each of the paper's mappings the model's bands cover: the dedicated ``NAME_paper``
   model beside the same request of the any-band model;
2. each band from all the others (the request each band's uncertainty is calibrated on);
3. r from fewer and fewer bands (graceful degradation);
4. speed: one forward pass of a request against the dedicated model of the same width.

    python benchmarks/any_band.py --model runs/any_band_out/any_band_ideal \
        --data runs/data/ideal_FUV_NUV_u_g_r_i_z_J_H_Ks_128px_1500
    python benchmarks/any_band.py --model runs/any_band_kv_out/any_band_kids_viking \
        --data runs/data/kids_viking_u_g_r_i_Z_Y_J_H_Ks_0.2as_96px_r15-20.5_2000

A survey-layer set is scored against its noise-free truth.  ``--parts`` runs some of the
four parts; ``--no-dedicated`` leaves the dedicated models' rows out of part 1 (they do not
change between any-band runs):

    python benchmarks/any_band.py --model runs/any_band_out/any_band_ideal --data ... --parts paper --no-dedicated

``--input-psf-ratio R`` shows every model its inputs through a PSF ``R`` times broader than the
data's (a Gaussian blur in flux, the stacks' ``psf_fwhm`` saying so), against the same sharp
truth: how a model copes with worse seeing.  A model with PSF tags (`bandsynth.nn.any_band`) is
told ``log2(R)`` (``--withhold-psf-tags``: told 0, to see what the tags themselves carry
beyond training on blurred inputs); a dedicated model is not told anything:

    python benchmarks/any_band.py --model ... --data ... --parts paper --input-psf-ratio 3

``--input-noise-ratio R`` likewise gives every input Gaussian noise (in flux) that makes it ``R``
times noisier than the any-band model's training inputs (`bandsynth.models.domain.tolerated_noise`
of its card's training noise), the same draw for every model; a model with depth tags is told
``log2(R)`` (``--withhold-depth-tags``: told 0):

    python benchmarks/any_band.py --model ... --data ... --parts paper --input-noise-ratio 4
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photometry import _row, measure  # noqa: E402  (the measures of benchmarks/photometry.py)
from real_sky import nearest_band  # noqa: E402  (band matching in wavelength, as for the real set)

#: The paper's mappings on ideal mock galaxies: dedicated model -> (inputs, output).
PAPER = {"nuv_k_to_g_paper": (("NUV", "Ks"), "g"), "nuv_k_to_r_paper": (("NUV", "Ks"), "r"),
         "nuv_k_to_z_paper": (("NUV", "Ks"), "z"), "g_r_to_u_paper": (("g", "r"), "u"),
         "g_r_to_nuv_paper": (("g", "r"), "NUV"), "g_r_to_fuv_paper": (("g", "r"), "FUV")}
#: r from fewer and fewer bands (each name stands for the model's band nearest to it in wavelength).
DEGRADATION = (("u", "g", "i", "VISTA_Z", "VISTA_Y", "J", "H", "Ks"), ("u", "g", "i", "VISTA_Z", "J", "H", "Ks"),
               ("g", "i", "VISTA_Z"), ("g", "VISTA_Z"), ("g",), ("NUV", "Ks"))


#: The benchmark's parts, in the order they run.
PARTS = ("paper", "others", "degradation", "speed")


def degradation_requests(model):
    """``[(inputs, output)]``: the `DEGRADATION` rows the model's bands serve, each name matched once (to the
    model's band nearest in wavelength, within real_sky.py's `MATCH_TOLERANCE`)."""
    own = {b: b for b in model.inputs}
    out = []
    for names in DEGRADATION:
        bands = [nearest_band(n, own) for n in (*names, "r")]
        if None not in bands and len(set(bands)) == len(bands):
            out.append((bands[:-1], bands[-1]))
    return out


def _each_band(stack, change, **meta):
    """``stack`` with each band's pixels replaced by ``change(band, pixels as float64)``, ``meta`` updated."""
    from astropy.nddata import NDData

    from bandsynth import BandStack

    images = {}
    for band in stack.names:
        image = stack[band]
        images[band] = NDData(change(band, np.asarray(image.data, dtype=np.float64)), unit=image.unit, wcs=image.wcs,
                              mask=image.mask, meta=image.meta)
    return BandStack(images, meta={**stack.meta, **meta})


def broader_psf(stack, *, ratio, pixel_scale):
    """``stack`` with every band seen through a Gaussian PSF ``ratio`` times broader than its own (flux kept)."""
    from scipy.ndimage import gaussian_filter

    from bandsynth.datasets.band_subsets import broadening_sigma

    fwhm = dict(stack.meta["psf_fwhm"])

    def blurred(band, data):
        return gaussian_filter(data, broadening_sigma(fwhm[band] / pixel_scale, ratio), mode="nearest")
    return _each_band(stack, blurred, psf_fwhm={b: ratio * v for b, v in fwhm.items()})


def noisier(stack, *, ratio, noise):
    """``stack`` with Gaussian noise added so that each band's noise is ``ratio`` times ``noise[band]``.

    The draw is seeded by the stack's pixels: each galaxy gets its own noise, the same for every model.
    """
    import zlib

    def noisy(band, data):
        rng = np.random.default_rng(zlib.crc32(data.tobytes()))
        return data + rng.normal(0.0, noise[band] * np.sqrt(ratio ** 2 - 1.0), data.shape)
    return _each_band(stack, noisy)


def _worsening(args, model, pixel_scale):
    """The transform of each test stack that ``--input-psf-ratio`` and ``--input-noise-ratio`` ask for (or None)."""
    from bandsynth.models.domain import tolerated_noise

    steps = []
    if args.input_psf_ratio != 1.0:
        steps.append(partial(broader_psf, ratio=args.input_psf_ratio, pixel_scale=pixel_scale))
    if args.input_noise_ratio != 1.0:
        card = model.card
        noise = {b: tolerated_noise(card.training["noise"][b], card.scaling[b]["softening"]) for b in model.inputs}
        steps.append(partial(noisier, ratio=args.input_noise_ratio, noise=noise))
    if not steps:
        return None

    def worse(stack):
        for step in steps:
            stack = step(stack)
        return stack
    return worse


def _summary(m):
    z = np.abs(np.concatenate(m["z"]))
    return (f"{len(m['model']):>4} {_row(m['model']):>26} {_row(m['linear_colour']):>26} "
            f"{np.mean(m['ssim']):>7.4f} {np.mean(z <= 1):>6.3f}")


def _speed(translator, *, n=8, size=128, repeats=5):
    """Seconds per forward pass of ``n`` images of ``size``^2 through the translator's network (fp32, eager)."""
    import torch

    net = translator.model.eval()
    x = torch.zeros(n, len(translator.inputs), size, size)
    with torch.inference_mode():
        net(x)
        started = time.perf_counter()
        for _ in range(repeats):
            net(x)
    return (time.perf_counter() - started) / repeats


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the any-band model (path or name)")
    parser.add_argument("--data", required=True, help="the stored data set holding all its bands")
    parser.add_argument("--max-images", type=int, default=150, help="test galaxies per row")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="which parts to run (default: all)")
    parser.add_argument("--no-dedicated", action="store_true",
                        help="part 1 without the dedicated models' rows (they do not change between any-band runs)")
    parser.add_argument("--input-psf-ratio", type=float, default=1.0, metavar="R",
                        help="show the models their inputs through a PSF R times broader than the data's (>= 1)")
    parser.add_argument("--withhold-psf-tags", action="store_true",
                        help="with --input-psf-ratio: tell a model with PSF tags the training PSF (tags 0)")
    parser.add_argument("--input-noise-ratio", type=float, default=1.0, metavar="R",
                        help="give the models inputs R times noisier than the any-band model's training inputs (>= 1)")
    parser.add_argument("--withhold-depth-tags", action="store_true",
                        help="with --input-noise-ratio: tell a model with depth tags the training noise (tags 0)")
    args = parser.parse_args(argv)
    for flag in ("psf", "noise"):
        if not getattr(args, f"input_{flag}_ratio") >= 1.0:
            parser.error(f"--input-{flag}-ratio must be >= 1, got {getattr(args, f'input_{flag}_ratio')}")

    from bandsynth import Translator
    from bandsynth.datasets import open_dataset

    model = Translator.load(args.model)
    data = open_dataset(args.data)
    header = f"{'':<34} {'n':>4} {'|dmag| [16-84%]':>26} {'linear colour':>26} {'SSIM':>7} {'cov1':>6}"

    worse = _worsening(args, model, float(data.info["pixel_scale"]))

    def row(label, translator):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # requests the calibration was not fitted on say so; cov1 shows it
            scores = measure(translator, max_images=args.max_images, data=data, transform=worse)
            print(f"{label:<34} {_summary(scores)}", flush=True)

    def request(inputs, output):
        tags = {}
        for kind, ratio, withhold in (("psf", args.input_psf_ratio, args.withhold_psf_tags),
                                      ("depth", args.input_noise_ratio, args.withhold_depth_tags)):
            if kind in model.model.tags:
                tags[kind] = [0.0 if withhold else float(np.log2(ratio))] * len(inputs)
        return model.task(inputs=inputs, output=output, **tags)

    if "paper" in args.parts:
        print("1. the paper's mappings: dedicated model, then the any-band model's request\n" + header)
        for name, (inputs, output) in PAPER.items():
            if output in model.outputs and all(b in model.inputs for b in inputs):
                if not args.no_dedicated:
                    row(name, Translator.load(name))
                row(f"  {model.name}: {'+'.join(inputs)} -> {output}", request(inputs, output))
    if "others" in args.parts:
        print("\n2. each band from all the others\n" + header)
        for band in model.outputs:
            row(f"{band} from the other {len(model.inputs) - 1}", request([b for b in model.inputs if b != band], band))
    if "degradation" in args.parts:
        print("\n3. r from fewer bands\n" + header)
        for inputs, output in degradation_requests(model):
            row(f"{output} from {'+'.join(inputs)}", request(inputs, output))
    if "speed" in args.parts:
        _print_speed(model)


def _print_speed(model):
    """Part 4: one forward pass of a request against the dedicated model's."""
    from bandsynth import Translator

    print("\n4. one forward pass of 8 x 128 x 128 (fp32, eager), ratio to the dedicated model")
    # the time does not depend on the request: every request fills the same planes
    dedicated = Translator.load("nuv_k_to_r_paper")
    inputs, output = list(model.inputs[:2]), model.inputs[-1]
    base, mine = _speed(dedicated), _speed(model.task(inputs=inputs, output=output))
    print(f"nuv_k_to_r_paper ({dedicated.card.preset}) {base:.3f} s; {model.name} {'+'.join(inputs)} -> {output} "
          f"({model.card.preset}) {mine:.3f} s: ratio {mine / base:.2f}")


if __name__ == "__main__":
    main()
