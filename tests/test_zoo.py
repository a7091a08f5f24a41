"""Model cards and the shipped zoo."""

import json

import pytest
from safetensors.torch import load_file

from bandsynth import Translator
from bandsynth.cli import main
from bandsynth.models.generator import build_generator, count_parameters
from bandsynth.models.zoo import ModelCard, list_models, model_paths, sha256_file

SHIPPED = [card.name for card in list_models()]


def _minimal(**changes):
    fields = dict(
        name="m", inputs=("g", "r"), output="u", preset="tiny", architecture={},
        scaling={b: {"softening": 0.02, "maximum": 1.0} for b in ("g", "r", "u")},
    )
    fields.update(changes)
    return fields


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_card_matches_its_weights(name):
    """Schema test: recompute the hash and the parameter count of every shipped model."""
    weights, card_path = model_paths(name)
    card = ModelCard.read(card_path)
    assert card.name == name == card_path.stem
    assert sha256_file(weights) == card.sha256
    model = build_generator(card.preset, len(card.inputs), 1, **dict(card.architecture))
    model.load_state_dict(load_file(str(weights)), strict=True)
    assert count_parameters(model) == card.n_parameters
    assert card.training.get("recipe"), "the card must record the exact training command"
    test = card.metrics["test"]
    for method in ("model", "nearest_input", "linear_colour"):
        assert {"mae", "ssim", "psnr", "gini_w1", "m20_w1"} <= set(test[method])
    assert 0 < card.calibration["temperature"]
    assert card.licence and card.citation


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_beats_both_baselines_and_is_calibrated_on_its_test_split(name):
    """The zoo's floor, read from the card's held-out rows (benchmarks/zoo_table.py re-measures them)."""
    test = ModelCard.read(model_paths(name)[1]).metrics["test"]
    model = test["model"]
    for baseline in ("nearest_input", "linear_colour"):
        assert model["ssim"] > test[baseline]["ssim"], baseline
        assert model["mae"] < test[baseline]["mae"], baseline
    assert 0.63 <= model["coverage_1sigma"] <= 0.73
    assert model["n_galaxies"] >= 100 and model["n_failed"] == 0


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_loads_by_name(name):
    t = Translator.load(name)
    assert t.name == name and t.card.sha256 == sha256_file(model_paths(name)[0])


def test_card_round_trips_through_json(tmp_path):
    card = ModelCard(**_minimal(metrics={"test": {"model": {"ssim": 0.9}}}))
    card.write(tmp_path / "m.json")
    again = ModelCard.read(tmp_path / "m.json")
    assert again == card
    assert again.metrics["test"]["model"]["ssim"] == 0.9


def test_card_is_immutable():
    card = ModelCard(**_minimal())
    with pytest.raises(AttributeError):
        card.name = "other"
    with pytest.raises(TypeError):
        card.scaling["g"] = {}


def test_card_canonicalises_band_names():
    card = ModelCard(**_minimal(inputs=("sdss_g", "R"), output="SDSS_U"))
    assert card.inputs == ("g", "r") and card.output == "u"


def test_card_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="the card has no scaling for band"):
        ModelCard(**_minimal(scaling={"g": {"softening": 0.1, "maximum": 1.0}}))
    with pytest.raises(ValueError, match="mode must be 'ideal' or 'survey'"):
        ModelCard(**_minimal(mode="space"))
    with pytest.raises(ValueError, match="unknown band 'Q'"):
        ModelCard(**_minimal(output="Q"))
    (tmp_path / "bad.json").write_text(json.dumps({**_minimal(), "colour": "blue", "inputs": ["g", "r"]}))
    with pytest.raises(ValueError, match=r"unknown fields \['colour'\]"):
        ModelCard.read(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        ModelCard.read(tmp_path / "broken.json")


def test_model_paths_needs_both_files(tmp_path):
    (tmp_path / "only.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        model_paths(tmp_path / "only.json")


# The seven mappings of the method paper.
PAPER_MODELS = {"nuv_k_to_g", "nuv_k_to_r", "nuv_k_to_z", "g_r_to_u", "g_r_to_nuv", "g_r_to_fuv", "g_z_to_r"}


def test_the_paper_mappings_ship_with_their_presets_and_modes():
    cards = {card.name: card for card in list_models()}
    assert PAPER_MODELS <= set(cards)
    assert cards["nuv_k_to_r"].preset == "paper"
    assert cards["g_z_to_r"].mode == "survey" and cards["g_z_to_r"].inputs == ("DECam_g", "DECam_z")
    assert {cards[n].mode for n in PAPER_MODELS - {"g_z_to_r"}} == {"ideal"}


def test_models_command_lists_the_zoo(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in PAPER_MODELS)


def test_nuv_k_to_r_on_fresh_mock_galaxies_beats_copying_an_input_and_keeps_the_flux_scale():
    """Galaxies the model never saw (another seed of the same universe): quality and photometry."""
    import numpy as np

    from bandsynth.datasets import make_dataset
    from bandsynth.metrics import compare

    t = Translator.load("nuv_k_to_r")
    data = make_dataset(10, seed=20261122, bands=[*t.inputs, t.output], size=128)
    stacks = [data.stack(i) for i in range(len(data))]
    preds = t.predict([s.select(t.inputs) for s in stacks])
    reports = [
        compare(p, s[t.output], inputs=s.select(t.inputs), scaling="provenance") for p, s in zip(preds, stacks)
    ]
    ssim = np.mean([r.ssim for r in reports])
    best_input_ssim = np.mean([max(r.ssim_input.values()) for r in reports])
    assert ssim > 0.9 and ssim > best_input_ssim
    assert abs(np.median([r.dmag_total for r in reports])) < 0.1
