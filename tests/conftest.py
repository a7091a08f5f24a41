"""Fixtures shared by the test modules.

The tiny model: an untrained ``tiny`` `~bandsynth.nn.network.TranslationNet` for
NUV + Ks -> r with a minimal card, seeded, with a non-trivial correction on top of
its linear colour model (a fresh network predicts exactly the colour model).
Module-scoped fixtures give each test module a network of its own, so a module that
mutates its translator (calibration, compile caches) does not affect another.
"""

import pytest

TINY_INPUTS, TINY_OUTPUT = ("NUV", "Ks"), "r"
#: Fixed asinh scaling (softening, maximum, in nanomaggies) of the tiny models' bands.
TINY_SCALING = {"NUV": (0.002, 0.12), "Ks": (0.08, 4.0), "r": (0.03, 1.5), "g": (0.02, 1.0), "u": (0.01, 0.5)}


def _make_tiny_card(name="tiny_test", **changes):
    """The card of the tiny test model; keyword arguments replace its fields."""
    from bandsynth.models.zoo import ModelCard

    inputs = tuple(changes.pop("inputs", TINY_INPUTS))
    output = changes.pop("output", TINY_OUTPUT)
    fields = dict(
        name=name, inputs=inputs, output=output, preset="tiny", architecture={},
        scaling={b: {"softening": TINY_SCALING[b][0], "maximum": TINY_SCALING[b][1]} for b in (*inputs, output)},
        pixel_scale=0.262,
    )
    fields.update(changes)
    return ModelCard(**fields)


def _make_tiny_translator(card=None, *, seed=0):
    """A `~bandsynth.Translator` with a freshly seeded tiny network for ``card`` (its scaling in the buffers)."""
    import torch

    from bandsynth import Translator
    from bandsynth.nn.network import TranslationNet

    card = _make_tiny_card() if card is None else card
    torch.manual_seed(seed)
    scaling = {b: dict(p) for b, p in card.scaling.items()}
    net = TranslationNet.build(
        "tiny", softening=[scaling[b]["softening"] for b in card.inputs],
        maximum=[scaling[b]["maximum"] for b in card.inputs], out_softening=scaling[card.output]["softening"],
        out_maximum=scaling[card.output]["maximum"], coefficients=[0.3 / len(card.inputs)] * len(card.inputs),
    )
    torch.nn.init.normal_(net.generator.head[-1].weight, 0.0, 0.05)
    return Translator(net, card)


@pytest.fixture(scope="session")
def tiny_card():
    """Factory: ``tiny_card(name="tiny_test", **changes)`` returns the tiny model's card."""
    return _make_tiny_card


@pytest.fixture(scope="session")
def make_tiny_translator():
    """Factory: ``make_tiny_translator(card=None, *, seed=0)`` returns a new tiny translator."""
    return _make_tiny_translator


@pytest.fixture(scope="module")
def tiny_translator():
    """The tiny translator (seed 0), one per test module."""
    return _make_tiny_translator()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """The tiny translator (seed 0) saved to disk, one per test module: ``(stem, translator)``.

    ``stem`` is the path without suffix (``stem.json`` is the card, ``stem.safetensors``
    the weights); ``translator`` is what `~bandsynth.Translator.save` returned.
    """
    stem = tmp_path_factory.mktemp("model") / "tiny_test"
    return stem, _make_tiny_translator().save(stem)


#: The bands of the tiny any-band model.
TINY_ANY_BANDS = ("NUV", "g", "r", "Ks")


@pytest.fixture(scope="module")
def tiny_any_band_model(tmp_path_factory):
    """An untrained tiny any-band model (NUV, g, r, Ks) saved to disk: ``(stem, translator)``.

    Its colour models come from a made-up positive-definite moment matrix; its correction is non-trivial.
    """
    import torch

    from bandsynth import Translator
    from bandsynth.any_band_translator import AnyBandTranslator
    from bandsynth.models.zoo import ModelCard
    from bandsynth.nn.any_band import AnyBandNet

    torch.manual_seed(0)
    k = len(TINY_ANY_BANDS)
    moments = torch.eye(k + 1, dtype=torch.float64) + 0.5
    net = AnyBandNet.build("tiny", bands=TINY_ANY_BANDS, softening=[TINY_SCALING[b][0] for b in TINY_ANY_BANDS],
                           maximum=[TINY_SCALING[b][1] for b in TINY_ANY_BANDS], moments=moments, cross=moments[:, 1:])
    torch.nn.init.normal_(net.generator.head[-1].weight, 0.0, 0.05)
    card = ModelCard(name="tiny_any", inputs=TINY_ANY_BANDS, output=None, outputs=TINY_ANY_BANDS, preset="tiny",
                     architecture={}, pixel_scale=0.262,
                     scaling={b: {"softening": TINY_SCALING[b][0], "maximum": TINY_SCALING[b][1]}
                              for b in TINY_ANY_BANDS})
    stem = tmp_path_factory.mktemp("any_band") / "tiny_any"
    return stem, AnyBandTranslator(net, card, one_mapping=Translator).save(stem)
