"""Model cards and the shipped zoo."""

import json

import pytest
from astropy.utils.exceptions import AstropyUserWarning
from safetensors.torch import load_file

from bandsynth import Translator
from bandsynth.cli import main
from bandsynth.models.zoo import CARD_FORMAT, ModelCard, get_card, list_models, model_paths, sha256_file
from bandsynth.nn.generator import count_parameters
from bandsynth.nn.network import TranslationNet

#: The shipped models of one mapping, and the any-band models (their cards list ``outputs``).
SHIPPED = [card.name for card in list_models() if not card.outputs]
ANY_BAND = [card.name for card in list_models() if card.outputs]


def _minimal(**changes):
    fields = dict(
        name="m", inputs=("g", "r"), output="u", preset="tiny", architecture={},
        scaling={b: {"softening": 0.02, "maximum": 1.0} for b in ("g", "r", "u")},
    )
    fields.update(changes)
    return fields


def _card_and_weights(name, network):
    """The shipped card, checked against its file name, format and hashes, and its weights loaded strictly into
    ``network`` (whose parameter count and receptive field the card states)."""
    weights, card_path = model_paths(name)
    card = ModelCard.read(card_path)
    assert card.name == name == card_path.stem and card.format_version == CARD_FORMAT
    assert sha256_file(weights) == card.sha256 and card.card_sha256 == card.content_sha256()
    model = network.from_config(dict(card.architecture))
    model.load_state_dict(load_file(str(weights)), strict=True)
    assert count_parameters(model) == card.n_parameters and model.receptive_field == card.receptive_field
    return card, model


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_card_matches_its_weights(name):
    """Schema test: recompute the hash and the parameter count of every shipped model."""
    card, model = _card_and_weights(name, TranslationNet)
    # The colour model inside the weights is the one the card states.
    assert model.config["coefficients"] == pytest.approx([card.baseline["coefficients"][b] for b in card.inputs])
    assert model.config["baseline"] == card.baseline["kind"] and model.config["intercept"] == card.baseline["intercept"]
    assert card.training.get("recipe"), "the card must record the exact training command"
    test = card.metrics["test"]
    for method in ("model", "nearest_input", "linear_colour"):
        assert {"mae", "ssim", "psnr", "gini_w1", "m20_w1"} <= set(test[method])
    expected = {"plain", "tta", "mc", "tta+mc"} if card.mode == "survey" else {"plain", "tta"}
    assert set(card.calibration) == expected
    assert all(t > 0 for c in card.calibration.values() for t in c["temperatures"])
    assert card.licence and card.citation


@pytest.mark.parametrize("name", ANY_BAND)
def test_shipped_any_band_card_matches_its_weights(name):
    """Schema test of an any-band model: hashes, weights, and a calibration for every band it writes."""
    from bandsynth.nn.any_band import AnyBandNet

    card, model = _card_and_weights(name, AnyBandNet)
    assert list(model.bands) == list(card.inputs) == list(card.outputs)
    assert card.training.get("recipe"), "the card must record the exact training command"
    for band in card.outputs:
        request = card.calibration[band]
        assert list(request["inputs"]) == [b for b in card.inputs if b != band]
        assert set(request["configurations"]) == {"plain", "tta", "mc", "tta+mc"}
        assert all(t > 0 for c in request["configurations"].values() for t in c["temperatures"])
    assert card.licence and card.citation


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_beats_both_baselines_and_is_calibrated_on_its_test_split(name):
    """The zoo's floor, read from the card's held-out rows (benchmarks/zoo_table.py re-measures them)."""
    test = ModelCard.read(model_paths(name)[1]).metrics["test"]
    model = test["model"]
    for baseline in ("nearest_input", "linear_colour"):
        assert model["ssim"] > test[baseline]["ssim"], baseline
        assert model["mae"] < test[baseline]["mae"], baseline
    # A sanity band: calibrated, not wildly off.  The photometric contract's 0.68 +- 0.03 is
    # measured (and, where missed, reported) by benchmarks/photometry.py on fresh galaxies.
    assert 0.60 <= model["coverage_1sigma"] <= 0.80
    assert model["n_galaxies"] >= 100 and model["n_failed"] == 0


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_loads_by_name(name):
    t = Translator.load(name)
    assert t.name == name and t.card.sha256 == sha256_file(model_paths(name)[0])


def test_card_round_trips_through_json(tmp_path):
    card = ModelCard(**_minimal(metrics={"test": {"model": {"ssim": 0.9}}}))
    card.write(tmp_path / "m.json")
    again = ModelCard.read(tmp_path / "m.json")
    assert again.replace(card_sha256="") == card and again.card_sha256 == card.content_sha256()
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
    (tmp_path / "newer.json").write_text(json.dumps({**_minimal(), "colour": "blue", "inputs": ["g", "r"],
                                                     "format_version": CARD_FORMAT}))
    assert ModelCard.read(tmp_path / "newer.json").extra == {"colour": "blue"}  # a newer field is kept
    (tmp_path / "old.json").write_text(json.dumps({**_minimal(), "inputs": ["g", "r"], "format_version": 1}))
    with pytest.raises(ValueError, match="has format version 1; this bandsynth reads format 2"):
        ModelCard.read(tmp_path / "old.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        ModelCard.read(tmp_path / "broken.json")


def test_model_paths_needs_both_files(tmp_path):
    (tmp_path / "only.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        model_paths(tmp_path / "only.json")


def test_a_dot_in_a_models_name_is_part_of_the_name(tmp_path):
    # save("runs/r_0.262as") wrote runs/r_0.safetensors + r_0.json, and r_0.5as then replaced it.
    t = Translator.load(SHIPPED[0])
    t.save(tmp_path / "r_0.262as")
    t.save(tmp_path / "r_0.5as")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "r_0.262as.json", "r_0.262as.safetensors", "r_0.5as.json", "r_0.5as.safetensors"]
    for given in ("r_0.262as", "r_0.262as.json", "r_0.262as.safetensors"):
        assert [p.name for p in model_paths(tmp_path / given)] == ["r_0.262as.safetensors", "r_0.262as.json"]
        assert Translator.load(tmp_path / given).name == t.name
    with pytest.raises(FileExistsError, match=r"r_0.5as.safetensors exists; pass overwrite=True"):
        t.save(tmp_path / "r_0.5as")
    with pytest.raises(FileNotFoundError, match=r"model card not found: .*r_0.7as.json"):
        model_paths(tmp_path / "r_0.7as")
    # one saved by an earlier bandsynth (cut at the dot) is still found, with how to rename it
    for suffix in (".json", ".safetensors"):
        (tmp_path / f"r_0.262as{suffix}").rename(tmp_path / f"r_0{suffix}")
    with pytest.warns(AstropyUserWarning, match=r"model '.*r_0.262as' was saved as r_0.json and r_0.safetensors, its "
                                                r"name cut at its last dot by an earlier bandsynth; rename them"):
        assert [p.name for p in model_paths(tmp_path / "r_0.262as")] == ["r_0.safetensors", "r_0.json"]


# The seven mappings of the method paper: the plain names are the models for observed images,
# the paper's reproductions end in "_paper".
MAPPINGS = ("nuv_k_to_g", "nuv_k_to_r", "nuv_k_to_z", "g_r_to_u", "g_r_to_nuv", "g_r_to_fuv", "g_z_to_r")
PAPER_MODELS = {f"{name}_paper" for name in MAPPINGS}
OBSERVED_IMAGE_MODELS = set(MAPPINGS) & set(SHIPPED)


def test_the_paper_mappings_ship_with_their_presets_and_modes():
    cards = {card.name: card for card in list_models()}
    assert PAPER_MODELS <= set(cards)
    assert all(cards[n].version >= 2 for n in PAPER_MODELS)  # retrained under the photometric contract
    assert cards["g_z_to_r_paper"].mode == "survey" and cards["g_z_to_r_paper"].inputs == ("DECam_g", "DECam_z")
    assert {cards[n].mode for n in PAPER_MODELS - {"g_z_to_r_paper"}} == {"ideal"}


@pytest.mark.parametrize("name", sorted(OBSERVED_IMAGE_MODELS))
def test_plain_names_load_the_models_for_observed_images(name):
    card = Translator.load(name).card
    paper = Translator.load(f"{name}_paper").card
    assert card.training["data_info"]["survey"] and card.training["target"].startswith("noise-free truth")
    assert (card.inputs, card.output) == (paper.inputs, paper.output)
    # Versions 1-4 of the plain names were the paper's models: an old pin must fail, not load the other model.
    assert card.version >= 5
    with pytest.raises(ValueError, match=rf"model '{name}' version 4 is not available; version {card.version} is"):
        Translator.load(f"{name}@4")


def test_models_command_checks_a_saved_models_hashes_and_says_how_to_load_it(tmp_path, capsys, caplog):
    # A model with a flipped weights byte or a hand-edited card was shown as fine (exit 0) where Translator.load
    # refuses it, and the hint Translator.load("NAME@1") fails for a model given by path.
    t = Translator.load(SHIPPED[0])
    t.save(tmp_path / "good" / "m")
    assert main(["models", str(tmp_path / "good" / "m")]) == 0
    out = capsys.readouterr().out
    assert f"(a saved model: Translator.load({str(tmp_path / 'good' / 'm')!r}) loads it)" in out and "@" not in out
    Translator.load(str(tmp_path / "good" / "m"))  # the hint works
    t.save(tmp_path / "weights" / "m")
    weights = tmp_path / "weights" / "m.safetensors"
    damaged = bytearray(weights.read_bytes())
    damaged[-10] ^= 1
    weights.write_bytes(bytes(damaged))
    assert main(["models", str(tmp_path / "weights" / "m")]) == 2
    assert f"weights file {weights} has SHA-256" in caplog.text and "refusing to load it" in caplog.text
    t.save(tmp_path / "card" / "m")
    card = json.loads((tmp_path / "card" / "m.json").read_text())
    card["scaling"][card["output"]]["softening"] *= 2
    (tmp_path / "card" / "m.json").write_text(json.dumps(card))
    assert main(["models", str(tmp_path / "card" / "m"), "--json"]) == 2
    assert f"model card {tmp_path / 'card' / 'm.json'} records card SHA-256" in caplog.text
    assert "the card was edited after it was written" in caplog.text
    assert capsys.readouterr().out == ""


def test_models_command_lists_the_zoo(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in PAPER_MODELS)
    # What each was trained on, from its card: the model fine-tuned on observed galaxies says so.
    rows = {line.split()[0]: line for line in out.splitlines() if line}
    assert "survey layer (galex_sdss_2mass)" in rows["nuv_k_to_r"] and "ideal mocks" in rows["nuv_k_to_r_paper"]
    assert "observed KiDS/VIKING galaxies" in rows["any_band_kids_viking"]
    assert rows["nuv_k_to_g"].split()[1] == str(get_card("nuv_k_to_g").version)  # the version column
    # A model's card, by NAME@VERSION too; its colour model written in the units it works in.
    card = get_card("nuv_k_to_g")
    assert main(["models", f"nuv_k_to_g@{card.version}"]) == 0
    out = capsys.readouterr().out
    assert f"  version       {card.version}" in out and card.baseline["kind"] == "scaled"
    assert f"colour model  x_g = {card.baseline['intercept']:.3g} + " in out and "power-law SED in flux" in out
    assert main(["models", "nuv_k_to_g@4"]) == 2
    assert main(["models", "kids_g_z_to_r"]) == 0 and "linear in flux" in capsys.readouterr().out


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_beats_its_colour_model_on_fresh_galaxies(name):
    """Recomputed, not read from the card: galaxies of the card's universe the model never saw."""
    import numpy as np

    from bandsynth.baseline import apply_linear_colour, fit_linear_colour
    from bandsynth.datasets import make_dataset, make_galaxy
    from bandsynth.evaluation import input_array
    from bandsynth.morphology import segment

    t = Translator.load(name)
    info = t.card.training["data_info"]
    common = dict(bands=[*t.inputs, t.output], size=int(info["size"]), pixel_scale=float(info["pixel_scale"]))
    if "survey" in info:  # a model for observed images: the survey layer, scored against its noise-free truth
        common.update(survey=info["survey"], r_mag_range=info.get("r_mag_range"))
        fresh = make_dataset(16, seed=40_000, progress=False, **common)
        galaxies = [(fresh.stack(i), fresh.stack(i, truth=True)[t.output]) for i in range(len(fresh))]
    else:
        common["mode"] = t.card.mode
        galaxies = []
        for seed in range(40_000, 40_016):
            galaxy = make_galaxy(seed, **common)
            galaxies.append((galaxy, galaxy[t.output]))
    # The floor: the linear colour model, fitted on galaxies of the model's training universe.
    universe = make_dataset(60, seed=info["seed"], views=1, progress=False, **common)
    coefficients = fit_linear_colour(universe, t.inputs, t.output, split="train")
    model, colour = [], []
    for galaxy, true in galaxies:
        pred = t.predict(galaxy.select(t.inputs), uncertainty=False)
        truth = np.asarray(true.data, dtype=np.float64)
        seg = segment(truth)
        if seg.segmap is None:
            continue
        inside = seg.segmap.data == seg.label
        linear = apply_linear_colour([input_array(galaxy[b]) for b in t.inputs], coefficients)
        for errors, image in ((model, pred.data), (colour, linear)):
            total = float(np.nansum(image[inside]))  # a negative total flux has no magnitude: an infinite error
            errors.append(abs(2.5 * np.log10(total / truth[inside].sum())) if total > 0 else np.inf)
    assert len(model) >= 12
    assert np.median(model) < np.median(colour)
