"""Train the shipped models of the zoo (the method paper's seven mappings) and write their cards.

Each model: the mock universe the previous zoo used (1,500 galaxies, seed 0, 128 px,
one view; ideal mode, survey mode for DECam g + z -> r), the `small` preset,
random 64 px crops, resumable checkpoints under ``--runs``; the weights and card go
to ``bandsynth/models/weights/NAME`` (``--out``).  Held-out metrics are added to the
cards afterwards by ``benchmarks/zoo_table.py --write-cards``.

    python benchmarks/train_zoo.py --models nuv_k_to_r g_z_to_r --epochs 8
    python benchmarks/train_zoo.py --fine-tune --epochs 10 --lr 1.5e-4 --seed 1 --runs runs/zoo2ft
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

ZOO = {
    "nuv_k_to_g": (("NUV", "Ks"), "g", "ideal"),
    "nuv_k_to_r": (("NUV", "Ks"), "r", "ideal"),
    "nuv_k_to_z": (("NUV", "Ks"), "z", "ideal"),
    "g_r_to_u": (("g", "r"), "u", "ideal"),
    "g_r_to_nuv": (("g", "r"), "NUV", "ideal"),
    "g_r_to_fuv": (("g", "r"), "FUV", "ideal"),
    "g_z_to_r": (("DECam_g", "DECam_z"), "DECam_r", "survey"),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(ZOO), choices=list(ZOO), help="models to train")
    parser.add_argument("--epochs", type=int, default=8, help="passes over the 1,200 training galaxies")
    parser.add_argument("--lr", type=float, default=4e-4, help="peak learning rate (cosine schedule)")
    parser.add_argument("--preset", default="small", help="generator preset")
    parser.add_argument("--version", type=int, default=2, help="model version written into the cards")
    parser.add_argument("--runs", default="runs/zoo2", help="checkpoint folder (a rerun resumes)")
    parser.add_argument("--out", default="bandsynth/models/weights", help="folder for weights and cards")
    parser.add_argument("--fine-tune", action="store_true",
                        help="start from the weights in --out (a further round of training; the card keeps the chain)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data order and augmentation")
    parser.add_argument("--stretch", type=float, default=50.0, help="scaling maximum / softening of every band")
    parser.add_argument("--baseline", default="auto", choices=("auto", "flux", "scaled"),
                        help="the colour model the network corrects (auto: whichever fits the training pixels)")
    parser.add_argument("--flux-weight", type=float, default=0.0,
                        help="weight of the loss term on each crop's total flux")
    parser.add_argument("--calibrate-only", action="store_true",
                        help="keep the weights in --out, fit their uncertainty calibration again")
    args = parser.parse_args(argv)

    from bandsynth import Translator
    from bandsynth.datasets import make_dataset

    command = "python benchmarks/train_zoo.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    for name in args.models:
        inputs, output, mode = ZOO[name]
        started = time.perf_counter()
        data = make_dataset(1500, seed=0, mode=mode, bands=[*inputs, output], size=128, views=1, progress=False)
        if args.calibrate_only:
            from bandsynth.nn.recipe import split_validation

            translator = Translator.load(Path(args.out) / name).calibrate(data, indices=split_validation(data)[1])
            translator.save(Path(args.out) / name, overwrite=True)
            report(name, translator, started)
            continue
        translator = Translator.fit(
            data, inputs=inputs, output=output, name=name, preset=args.preset, epochs=args.epochs, lr=args.lr,
            crop_size=64, batch_size=8, seed=args.seed, checkpoint_dir=Path(args.runs) / name, checkpoint_every=200,
            progress=False, recipe=command, description=f"{' + '.join(inputs)} -> {output}, {mode}-mode mock universe",
            init=Path(args.out) / name if args.fine_tune else None, stretch=args.stretch, baseline=args.baseline,
            flux_weight=args.flux_weight,
        )
        translator = Translator(translator.model, translator.card.replace(version=args.version))
        translator.save(Path(args.out) / name, overwrite=True)
        report(name, translator, started)


def report(name, translator, started):
    """One line: time, validation SSIM and the coverage each calibration reached."""
    calibration = "; ".join(
        f"{config} {entry['distribution']} {entry['coverage_1sigma']:.3f}/{entry['coverage_2sigma']:.3f}"
        for config, entry in translator.card.calibration.items()
    )
    print(f"{name}: {time.perf_counter() - started:.0f} s, validation SSIM "
          f"{translator.card.training['best_validation_ssim']:.4f}, calibration (1/2 sigma) {calibration}", flush=True)


if __name__ == "__main__":
    main()
