"""Fixtures shared by the test modules."""

import pytest
import torch

from bandsynth import Translator
from bandsynth.models.zoo import ModelCard
from bandsynth.nn.network import TranslationNet

#: Fixed asinh scaling (softening, maximum in nanomaggies) of the tiny test models' bands.
TINY_SCALING = {"NUV": (0.002, 0.12), "Ks": (0.08, 4.0), "r": (0.03, 1.5), "g": (0.02, 1.0), "u": (0.01, 0.5)}


def make_tiny_translator(name="tiny_test", inputs=("NUV", "Ks"), output="r", *, seed=0, **card_fields):
    """An untrained `tiny` translator with a non-trivial correction on top of its colour model."""
    torch.manual_seed(seed)
    net = TranslationNet.build(
        "tiny", softening=[TINY_SCALING[b][0] for b in inputs], maximum=[TINY_SCALING[b][1] for b in inputs],
        out_softening=TINY_SCALING[output][0], out_maximum=TINY_SCALING[output][1],
        coefficients=[0.3 / len(inputs)] * len(inputs),
    )
    torch.nn.init.normal_(net.generator.head[-1].weight, 0.0, 0.05)  # a fresh net is exactly the colour model
    fields = dict(name=name, inputs=tuple(inputs), output=output, preset="tiny", architecture=net.config,
                  scaling={b: {"softening": TINY_SCALING[b][0], "maximum": TINY_SCALING[b][1]}
                           for b in (*inputs, output)},
                  pixel_scale=0.262)
    fields.update(card_fields)
    return Translator(net, ModelCard(**fields))


@pytest.fixture(scope="session")
def tiny_translator():
    """Factory of tiny untrained translators: ``tiny_translator(name, inputs, output, **card_fields)``."""
    return make_tiny_translator
