"""Fixtures shared by the test modules.

The tiny model: a ``tiny`` preset generator (seeded, untrained) for NUV + Ks -> r with a
minimal card. Module-scoped fixtures give each test module a network of its own, so a
module that mutates its translator (calibration, compile caches) does not affect another.
"""

import pytest

TINY_INPUTS, TINY_OUTPUT = ("NUV", "Ks"), "r"


def _make_tiny_card(name="tiny_test", **changes):
    """The card of the tiny test model; keyword arguments replace its fields."""
    from bandsynth.models.zoo import ModelCard

    fields = dict(
        name=name,
        inputs=TINY_INPUTS,
        output=TINY_OUTPUT,
        preset="tiny",
        architecture={},
        scaling={b: {"softening": 0.02, "maximum": 1.0} for b in (*TINY_INPUTS, TINY_OUTPUT)},
        pixel_scale=0.262,
    )
    fields.update(changes)
    return ModelCard(**fields)


def _make_tiny_translator(card=None, *, seed=0):
    """A `~bandsynth.Translator` with a freshly seeded tiny network and ``card``."""
    import torch

    from bandsynth import Translator
    from bandsynth.models.generator import build_generator

    card = _make_tiny_card() if card is None else card
    torch.manual_seed(seed)
    return Translator(build_generator("tiny", len(card.inputs), 1), card)


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
