"""Translator: load/save, predict, uncertainty, errors."""

import json
import warnings

import numpy as np
import pytest
import torch
from astropy.utils.exceptions import AstropyUserWarning

from bandsynth import BandStack, SyntheticBand, Translator
from bandsynth.datasets import make_dataset, make_galaxy
from bandsynth.models.generator import build_generator, receptive_field
from bandsynth.models.zoo import ModelCard, WeightsHashError
from bandsynth.translator import _fit_temperature

INPUTS, OUTPUT = ("NUV", "Ks"), "r"


def _card(**changes):
    fields = dict(
        name="tiny_test",
        inputs=INPUTS,
        output=OUTPUT,
        preset="tiny",
        architecture={},
        scaling={b: {"softening": 0.02, "maximum": 1.0} for b in (*INPUTS, OUTPUT)},
        pixel_scale=0.262,
    )
    fields.update(changes)
    return ModelCard(**fields)


@pytest.fixture(scope="module")
def translator():
    torch.manual_seed(0)
    return Translator(build_generator("tiny", len(INPUTS)), _card())


@pytest.fixture(scope="module")
def galaxy():
    return make_galaxy(3, bands=[*INPUTS, OUTPUT], size=48)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, translator):
    stem = tmp_path_factory.mktemp("model") / "tiny_test"
    return translator.save(stem), stem


def test_predict_returns_synthetic_band_on_the_inputs_grid(translator, galaxy):
    pred = translator.predict(galaxy.select(INPUTS))
    assert isinstance(pred, SyntheticBand)
    assert pred.data.shape == galaxy.shape and pred.data.dtype == np.float32
    assert pred.unit == galaxy["NUV"].unit
    assert pred.wcs.wcs.compare(galaxy.wcs.wcs)
    assert pred.band.name == "r"
    assert np.all(pred.uncertainty.array > 0)
    prov = pred.meta["provenance"]
    assert prov["model"] == "tiny_test" and [i["band"] for i in prov["inputs"]] == list(INPUTS)
    assert prov["scaling"]["reference_flux"] == pytest.approx(galaxy.select(INPUTS).reference_flux())


def test_predict_is_deterministic_and_batches_lists(translator, galaxy):
    other = make_galaxy(4, bands=list(INPUTS), size=48)
    one = translator.predict(galaxy.select(INPUTS), precision="fp32")
    assert np.array_equal(translator.predict(galaxy.select(INPUTS), precision="fp32").data, one.data)
    both = translator.predict([galaxy.select(INPUTS), other], precision="fp32")
    assert isinstance(both, list) and len(both) == 2
    # A batch of two may take other convolution kernels than a batch of one: float32 rounding only
    # (amplified by the inverse asinh of this untrained network's large outputs).
    np.testing.assert_allclose(both[0].data, one.data, rtol=1e-3, atol=1e-6 * np.abs(one.data).max())


def test_prediction_is_the_exact_inverse_scaling_of_the_network_output(translator, galaxy):
    x, ref, _ = translator.scale_inputs(galaxy.select(INPUTS))
    with torch.inference_mode():
        mean = translator.model(torch.from_numpy(x)[None]).mean[0, 0].numpy()
    expected = translator._scalings["r"].inverse(mean.astype(np.float64), reference=ref)
    pred = translator.predict(galaxy.select(INPUTS), precision="fp32", uncertainty=False)
    np.testing.assert_allclose(pred.data, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    assert pred.uncertainty is None


def test_tiled_prediction_matches_whole_image_away_from_seams(translator):
    big = make_galaxy(5, bands=list(INPUTS), size=128)
    whole = translator.predict(big, precision="fp32", uncertainty=False)
    tiled = translator.predict(big, precision="fp32", uncertainty=False, tile=80, overlap=32)
    # Instance normalisation sees different statistics per tile, so agreement is close, not exact.
    scale = np.abs(whole.data).max()
    assert np.median(np.abs(tiled.data - whole.data)) < 0.05 * scale
    assert np.all(np.isfinite(tiled.data))


def test_tta_average_is_equivariant_under_flips(translator, galaxy):
    # Averaging over all 8 flips/rotations makes predict(flip(x)) == flip(predict(x)).
    flipped = BandStack.from_arrays(
        {b: np.flip(galaxy[b].data, axis=1) for b in INPUTS}, wcs=galaxy.wcs, unit=galaxy["NUV"].unit
    )
    tta = translator.predict(galaxy.select(INPUTS), precision="fp32", tta=True)
    tta_flipped = translator.predict(flipped, precision="fp32", tta=True)
    np.testing.assert_allclose(np.flip(tta_flipped.data, axis=1), tta.data, rtol=1e-4, atol=1e-6)
    plain = translator.predict(flipped, precision="fp32")
    assert not np.allclose(np.flip(plain.data, axis=1), tta.data, rtol=1e-3)
    assert "flips/rotations" in tta.meta["provenance"]["uncertainty_method"]


def test_input_noise_is_propagated_by_monte_carlo(translator):
    noisy = make_galaxy(6, mode="survey", bands=list(INPUTS), size=48)
    assert noisy["NUV"].uncertainty is not None
    with_mc = translator.predict(noisy, n_samples=4)
    without = translator.predict(noisy, n_samples=0)
    assert "Monte Carlo (4 draws)" in with_mc.meta["provenance"]["uncertainty_method"]
    assert np.mean(with_mc.uncertainty.array) > np.mean(without.uncertainty.array)


def test_save_and_load_round_trip(saved, galaxy):
    saved, stem = saved
    loaded = Translator.load(stem)
    assert loaded.card.sha256 == saved.card.sha256 and len(loaded.card.sha256) == 64
    original, restored = saved.model.state_dict(), loaded.model.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    a = loaded.predict(galaxy.select(INPUTS), precision="fp32")
    b = Translator.load(stem).predict(galaxy.select(INPUTS), precision="fp32")
    np.testing.assert_array_equal(a.data, b.data)


def test_save_refuses_to_overwrite(translator, tmp_path):
    translator.save(tmp_path / "m")
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        translator.save(tmp_path / "m")


def test_tampered_weights_are_refused(translator, tmp_path):
    translator.save(tmp_path / "m")
    weights = tmp_path / "m.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsHashError, match="refusing to load it"):
        Translator.load(tmp_path / "m.json")


def test_card_with_unknown_preset_is_refused(translator, tmp_path):
    translator.save(tmp_path / "m")
    card = json.loads((tmp_path / "m.json").read_text())
    card["preset"] = "enormous"
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="unknown generator preset 'enormous'"):
        Translator.load(tmp_path / "m")


def test_unknown_model_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="unknown model 'no_such_model'; shipped models are"):
        Translator.load("no_such_model")


def test_missing_band_is_named(translator):
    stack = make_galaxy(3, bands=["NUV", "g"], size=48)
    with pytest.raises(ValueError, match=r"needs bands NUV, Ks; the stack has NUV, g \(missing: Ks\)"):
        translator.predict(stack)


def test_wrong_number_of_bands_in_the_network_is_refused():
    with pytest.raises(ValueError, match="the network takes 3 bands but the card lists 2 inputs"):
        Translator(build_generator("tiny", 3), _card())


def test_not_a_stack_is_a_type_error(translator):
    with pytest.raises(TypeError, match="predict expects a BandStack"):
        translator.predict(np.zeros((2, 48, 48)))


def test_image_smaller_than_receptive_field_is_refused(translator):
    side = receptive_field(translator.model) - 2
    small = make_galaxy(3, bands=list(INPUTS), size=max(side, 8))
    with pytest.raises(ValueError, match="smaller than the receptive field"):
        translator.predict(small)


def test_nan_pixels_are_masked_and_filled_not_zeroed(translator, galaxy):
    data = {b: np.array(galaxy[b].data, dtype=float) for b in INPUTS}
    data["NUV"][20:23, 20:23] = np.nan
    with pytest.warns(AstropyUserWarning, match="NUV"):
        stack = BandStack.from_arrays(data, wcs=galaxy.wcs, unit=galaxy["NUV"].unit)
    pred = translator.predict(stack)
    assert pred.mask[20:23, 20:23].all() and pred.mask.sum() == 9
    assert np.all(np.isfinite(pred.data))


def test_pixel_scale_far_from_training_warns(translator):
    coarse = make_galaxy(3, bands=list(INPUTS), size=48, pixel_scale=2.0)
    with pytest.warns(AstropyUserWarning, match="trained on 0.262 arcsec/pixel"):
        translator.predict(coarse)


def test_fit_temperature_recovers_gaussian_calibration():
    z = np.abs(np.random.default_rng(0).normal(scale=2.0, size=200_000))
    temperature, cov1, cov2 = _fit_temperature(z)
    assert temperature == pytest.approx(2.0, rel=0.02)
    assert cov1 == pytest.approx(0.683, abs=0.01) and cov2 == pytest.approx(0.954, abs=0.01)


def test_fit_calibrate_save_load_on_the_mock_universe(tmp_path):
    data = make_dataset(24, seed=2, bands=[*INPUTS, OUTPUT], size=48)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        t = Translator.fit(
            data, inputs=["NUV", "K"], output="sdss_r", name="nuv_k_to_r_test", preset="tiny",
            epochs=1, crop_size=32, progress=False,
        )
    cal = t.card.calibration
    assert cal["temperature"] > 0 and 0 < cal["coverage_1sigma"] < 1
    assert t.card.training["n_train"] == len(data.indices("train"))
    assert t.card.inputs == INPUTS and t.card.output == "r"
    saved = t.save(tmp_path / "nuv_k_to_r_test")
    again = Translator.load(tmp_path / "nuv_k_to_r_test.safetensors")
    assert again.card.calibration["temperature"] == pytest.approx(cal["temperature"])
    assert again.card.n_parameters == sum(p.numel() for p in saved.model.parameters())
