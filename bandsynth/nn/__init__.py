"""Everything that needs torch: the networks, their losses, training and inference.

* `bandsynth.nn.generator`: the ResNet image-to-image generator of Zaazou, Bihlo & Tricco;
* `bandsynth.nn.network`: `TranslationNet`, the generator as a correction on top of a
  per-pixel linear colour model, in a fixed physical scaling (the photometric contract);
* `bandsynth.nn.engine`: the inference engine (exact tiling, precision, compilation);
* `bandsynth.nn.losses` and `bandsynth.nn.training`: loss, training loop, checkpoints.

The core of bandsynth (bands, stacks, synthetic bands, FITS) never imports this
subpackage; `bandsynth.Translator` is the bridge between the two.
"""
