"""Translator: load/save, predict, uncertainty, calibration, errors, speed paths."""

import json
import re
import warnings

import astropy.units as u
import numpy as np
import pytest
import torch
from astropy.utils.exceptions import AstropyUserWarning

from bandsynth import BandStack, SyntheticBand, Translator
from bandsynth.datasets import make_dataset, make_galaxy
from bandsynth.errors import BandInputError
from bandsynth.evaluation import card_dataset
from bandsynth.models.zoo import CardHashError, ModelCard, WeightsHashError
from bandsynth.nn.network import TranslationNet
from bandsynth.scaling import AsinhScaling

INPUTS, OUTPUT = ("NUV", "Ks"), "r"
SCALING = {"NUV": (0.002, 0.12), "Ks": (0.08, 4.0), "r": (0.03, 1.5)}


def _net(seed=0, n_inputs=2):
    torch.manual_seed(seed)
    bands = list(INPUTS)[:n_inputs] + ["g"] * max(0, n_inputs - 2)
    net = TranslationNet.build(
        "tiny", softening=[SCALING.get(b, (0.01, 1.0))[0] for b in bands],
        maximum=[SCALING.get(b, (0.01, 1.0))[1] for b in bands], out_softening=SCALING["r"][0],
        out_maximum=SCALING["r"][1], coefficients=[0.05, 0.3, 0.1][:n_inputs],
    )
    # A non-trivial correction (a fresh network starts exactly at the colour model).
    torch.nn.init.normal_(net.generator.head[-1].weight, 0.0, 0.05)
    return net


def _card(**changes):
    fields = dict(
        name="tiny_test", inputs=INPUTS, output=OUTPUT, preset="tiny", architecture={},
        scaling={b: {"softening": s, "maximum": m} for b, (s, m) in SCALING.items()}, pixel_scale=0.262,
    )
    fields.update(changes)
    return ModelCard(**fields)


@pytest.fixture(scope="module")
def translator():
    return Translator(_net(), _card())


@pytest.fixture(scope="module")
def galaxy():
    return make_galaxy(3, bands=[*INPUTS, OUTPUT], size=48)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, translator):
    stem = tmp_path_factory.mktemp("model") / "tiny_test"
    return translator.save(stem), stem


def test_predict_returns_synthetic_band_on_the_inputs_grid(translator, galaxy):
    with pytest.warns(AstropyUserWarning, match="no uncertainty calibration for the 'plain' configuration"):
        pred = translator.predict(galaxy.select(INPUTS))
    assert isinstance(pred, SyntheticBand)
    assert pred.data.shape == galaxy.shape and pred.data.dtype == np.float32
    assert pred.unit == galaxy["NUV"].unit
    assert pred.wcs.wcs.compare(galaxy.wcs.wcs)
    assert pred.band.name == "r"
    assert np.all(pred.uncertainty.array > 0)
    prov = pred.meta["provenance"]
    assert prov["model"] == "tiny_test" and [i["band"] for i in prov["inputs"]] == list(INPUTS)
    assert prov["scaling"]["bands"]["r"] == {"softening": 0.03, "maximum": 1.5}
    comp = prov["computation"]
    assert comp["precision"] == "fp32" and comp["device"] == "cpu" and comp["torch_version"] == torch.__version__
    assert comp["compiled"] is False and comp["halo"] >= translator.model.receptive_field // 2


def test_predict_is_deterministic_and_batches_lists(translator, galaxy):
    other = make_galaxy(4, bands=list(INPUTS), size=48)
    one = translator.predict(galaxy.select(INPUTS), uncertainty=False)
    assert np.array_equal(translator.predict(galaxy.select(INPUTS), uncertainty=False).data, one.data)
    assert one.meta["provenance"]["calibration"] is None  # no sigma, no calibration (it said "plain")
    # what made the image is recorded with or without sigma (a batch rerun tells outputs made with tta by it)
    assert one.meta["provenance"]["computation"]["tta"] is False
    assert translator.predict(galaxy.select(INPUTS), uncertainty=False, tta=True).meta["provenance"]["computation"][
        "tta"] is True
    both = translator.predict([galaxy.select(INPUTS), other], uncertainty=False)
    assert isinstance(both, list) and len(both) == 2
    # A batch of two may take other convolution kernels than a batch of one: float32 rounding only.
    np.testing.assert_allclose(both[0].data, one.data, rtol=1e-5, atol=1e-6 * np.abs(one.data).max())


def test_prediction_is_the_exact_inverse_scaling_of_the_network_output(translator, galaxy):
    x, mask, noise = translator.scale_inputs(galaxy.select(INPUTS))
    assert noise is None and not mask.any()
    with torch.inference_mode():
        mean = translator.model(torch.from_numpy(x)[None]).mean[0, 0].numpy()
    expected = AsinhScaling(softening=0.03, maximum=1.5).inverse(mean.astype(np.float64))
    pred = translator.predict(galaxy.select(INPUTS), uncertainty=False)
    np.testing.assert_allclose(pred.data, expected, rtol=1e-5, atol=1e-7 * np.abs(expected).max())
    assert pred.uncertainty is None


def test_an_untrained_network_predicts_the_linear_colour_model(galaxy):
    net = TranslationNet.build("tiny", softening=[0.002, 0.08], maximum=[0.12, 4.0], out_softening=0.03,
                               out_maximum=1.5, coefficients=[0.05, 0.3])
    pred = Translator(net, _card()).predict(galaxy.select(INPUTS), uncertainty=False)
    expected = 0.05 * galaxy["NUV"].data + 0.3 * galaxy["Ks"].data
    np.testing.assert_allclose(pred.data, expected, rtol=1e-4, atol=1e-6 * expected.max())


def test_tta_average_is_equivariant_under_flips(translator, galaxy):
    # Averaging over all 8 flips/rotations makes predict(flip(x)) == flip(predict(x)).
    flipped = BandStack.from_arrays(
        {b: np.flip(galaxy[b].data, axis=1) for b in INPUTS}, wcs=galaxy.wcs, unit=galaxy["NUV"].unit
    )
    with pytest.warns(AstropyUserWarning, match="'tta' configuration"):
        tta = translator.predict(galaxy.select(INPUTS), tta=True)
        tta_flipped = translator.predict(flipped, tta=True)
    np.testing.assert_allclose(np.flip(tta_flipped.data, axis=1), tta.data, rtol=1e-4, atol=1e-6)
    plain = translator.predict(flipped, uncertainty=False)
    assert not np.allclose(np.flip(plain.data, axis=1), tta.data, rtol=1e-3)
    assert "flips/rotations" in tta.meta["provenance"]["uncertainty_method"]


def test_sigma_of_a_stack_does_not_depend_on_the_others_in_the_call(translator):
    # A stack without noise maps batched with one that has them was given the "mc" sigma (26 % narrower for
    # g_z_to_r), as if its inputs carried noise; fewer than the calibration's draws, one draw, or noise maps on
    # only some inputs make a sigma the calibration does not describe: said, refused, or left out.
    noisy = make_galaxy(6, mode="survey", bands=list(INPUTS), size=48)
    bare = BandStack({b: noisy[b].data for b in INPUTS}, wcs=noisy.wcs, unit=noisy["NUV"].unit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)  # the tiny model's missing calibrations
        alone = translator.predict(bare)
        together = translator.predict([bare, noisy])
    assert together[0].meta["provenance"]["calibration"] == "plain" == alone.meta["provenance"]["calibration"]
    np.testing.assert_array_equal(together[0].uncertainty.array, alone.uncertainty.array)
    assert together[1].meta["provenance"]["calibration"] == "mc"
    with pytest.raises(ValueError, match=r"n_samples=1 draws the inputs' noise once, which has no spread: give 0 "
                                         r"\(no Monte Carlo\) or at least 2"):
        translator.predict(noisy, n_samples=1)
    with pytest.warns(AstropyUserWarning, match=r"n_samples=4: the 'mc' calibrations are fitted with 8 Monte Carlo "
                                                r"draws"):
        translator.predict(noisy, n_samples=4)
    partial = BandStack({b: noisy[b] if b == "NUV" else noisy[b].data for b in INPUTS}, wcs=noisy.wcs,
                        unit=noisy["NUV"].unit)
    with pytest.warns(AstropyUserWarning, match=r"only NUV of the inputs carries an uncertainty: sigma has no Monte "
                                                r"Carlo term"):
        half = translator.predict(partial)
    assert half.meta["provenance"]["calibration"] == "plain"
    np.testing.assert_array_equal(half.uncertainty.array, alone.uncertainty.array)


def test_input_noise_is_propagated_by_monte_carlo(translator):
    noisy = make_galaxy(6, mode="survey", bands=list(INPUTS), size=48)
    assert noisy["NUV"].uncertainty is not None
    with pytest.warns(AstropyUserWarning, match="calibration"):
        with_mc = translator.predict(noisy, n_samples=4)
        without = translator.predict(noisy, n_samples=0)
    assert "input noise by Monte Carlo" in with_mc.meta["provenance"]["uncertainty_method"]
    assert with_mc.meta["provenance"]["calibration"] == "mc"
    assert np.mean(with_mc.uncertainty.array) > np.mean(without.uncertainty.array)
    # the tiny model has no calibration: the provenance says so, not only the warning
    assert with_mc.meta["provenance"]["uncertainty"]["calibrated"] is False
    assert "configuration 'mc' NOT CALIBRATED (the card calibrates none)" in \
        with_mc.meta["provenance"]["uncertainty_method"]


def test_inputs_in_magnitudes_give_the_same_prediction_and_sigma(translator):
    # A band in AB magnitudes had its sigma (in magnitudes) converted as if it were a magnitude itself: the
    # predicted sigma came out 5.6e13 times too large.  Its flux is converted through the magnitude.
    from astropy.nddata import CCDData, StdDevUncertainty

    from bandsynth.units import ab_magnitude

    noisy = make_galaxy(6, mode="survey", bands=list(INPUTS), size=48)
    flux = BandStack({b: CCDData(np.clip(noisy[b].data, 1e-3, None), unit=noisy.unit,
                                 uncertainty=noisy[b].uncertainty) for b in INPUTS}, wcs=noisy.wcs)
    mags = BandStack({b: CCDData(ab_magnitude(flux[b].data), unit=u.ABmag, uncertainty=StdDevUncertainty(
        2.5 / np.log(10) * flux[b].uncertainty.array / flux[b].data)) for b in INPUTS}, wcs=noisy.wcs)
    with pytest.warns(AstropyUserWarning, match="calibration"):
        want, got = (translator.predict(stack, n_samples=4, seed=0) for stack in (flux, mags))
    np.testing.assert_allclose(got.data, want.data, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.uncertainty.array, want.uncertainty.array, rtol=1e-3)
    with pytest.raises(ValueError, match=r"band 'NUV' is in mag\(AB\), which cannot be resampled: give the band "
                                         r"in a flux unit"):
        mags.reproject(0.5 * u.arcsec)


def test_inputs_in_surface_brightness_give_the_same_prediction(translator):
    # MJy/sr (a unit per solid angle) becomes a flux per pixel through the WCS's pixel area, also in a stack
    # that mixes it with nanomaggies: the stack accepted such images, and predict refused them.
    from astropy.nddata import CCDData

    from bandsynth.units import pixel_area, to_unit

    galaxy = make_galaxy(3, bands=list(INPUTS), size=48)
    area = pixel_area(galaxy.wcs)
    bright = {b: to_unit(galaxy[b].data, galaxy.unit, "MJy / sr", pixel_area=area) for b in INPUTS}
    with pytest.warns(AstropyUserWarning, match="calibration"):
        want = translator.predict(galaxy, n_samples=0).data
        for stack in (BandStack.from_arrays(bright, wcs=galaxy.wcs, unit="MJy / sr"),
                      BandStack.from_arrays({"NUV": CCDData(bright["NUV"], unit="MJy / sr"),
                                             "Ks": CCDData(galaxy["Ks"].data, unit=galaxy.unit)}, wcs=galaxy.wcs)):
            np.testing.assert_allclose(translator.predict(stack, n_samples=0).data, want, rtol=1e-5, atol=1e-7)


def test_save_and_load_round_trip(saved, galaxy):
    saved, stem = saved
    loaded = Translator.load(stem)
    assert loaded.card.sha256 == saved.card.sha256 and len(loaded.card.sha256) == 64
    assert loaded.card.card_sha256 == loaded.card.content_sha256()
    assert loaded.card.receptive_field == saved.model.receptive_field
    original, restored = saved.model.state_dict(), loaded.model.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    a = loaded.predict(galaxy.select(INPUTS), uncertainty=False)
    b = saved.predict(galaxy.select(INPUTS), uncertainty=False)
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


def test_a_card_edited_by_hand_is_refused(translator, tmp_path):
    translator.save(tmp_path / "m")
    card = json.loads((tmp_path / "m.json").read_text())
    card["calibration"] = {"plain": {"centres": [0.1], "temperatures": [0.5]}}  # a narrower sigma, say
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(CardHashError, match="the card was edited after it was written"):
        Translator.load(tmp_path / "m")


def test_a_card_of_the_old_format_is_refused_with_the_reason(translator, tmp_path):
    translator.save(tmp_path / "m")
    card = json.loads((tmp_path / "m.json").read_text())
    del card["format_version"]
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="format version 1; this bandsynth reads format 2"):
        Translator.load(tmp_path / "m")


def test_unknown_model_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="unknown model 'no_such_model'; shipped models are"):
        Translator.load("no_such_model")


def test_a_version_that_is_not_shipped_is_refused():
    version = Translator.load("nuv_k_to_r_paper").card.version
    assert Translator.load(f"nuv_k_to_r_paper@{version}").card.version == version
    with pytest.raises(ValueError, match=f"version 99 is not available; version {version} is"):
        Translator.load("nuv_k_to_r_paper@99")


def test_missing_band_is_named(translator):
    stack = make_galaxy(3, bands=["NUV", "g"], size=48)
    with pytest.raises(ValueError, match=r"needs bands NUV, Ks; the stack has NUV, g \(missing: Ks\)"):
        translator.predict(stack)


def test_wrong_number_of_bands_in_the_network_is_refused():
    with pytest.raises(ValueError, match="the network takes 3 bands but the card lists 2 inputs"):
        Translator(_net(n_inputs=3), _card())


def test_an_untrained_network_with_a_power_law_baseline_predicts_it(galaxy):
    net = TranslationNet.build("tiny", softening=[0.002, 0.08], maximum=[0.12, 4.0], out_softening=0.03,
                               out_maximum=1.5, coefficients=[0.2, 0.7], intercept=0.05, baseline="scaled")
    t = Translator(net, _card())
    pred = t.predict(galaxy.select(INPUTS), uncertainty=False)
    x, _, _ = t.scale_inputs(galaxy.select(INPUTS))
    expected = AsinhScaling(softening=0.03, maximum=1.5).inverse(0.05 + 0.2 * x[0] + 0.7 * x[1])
    np.testing.assert_allclose(pred.data, expected, rtol=1e-4, atol=1e-6 * expected.max())
    assert np.all(pred.data > 0)  # a power law of positive fluxes stays positive
    with pytest.raises(ValueError, match="baseline must be 'flux' or 'scaled', got 'log'"):
        TranslationNet.build("tiny", softening=[1, 1], maximum=[1, 1], out_softening=1, out_maximum=1,
                             coefficients=[1, 1], baseline="log")


def test_a_network_with_image_wide_normalisation_is_refused():
    from bandsynth.nn.generator import build_generator

    with pytest.raises(ValueError, match="needs a generator without normalisation layers"):
        TranslationNet(build_generator("tiny", 2), softening=[1, 1], maximum=[1, 1], out_softening=1,
                       out_maximum=1, coefficients=[1, 1])
    with pytest.raises(TypeError, match="model must be a bandsynth.nn.network.TranslationNet"):
        Translator(build_generator("tiny", 2, norm="none"), _card())


def test_not_a_stack_is_a_type_error(translator):
    with pytest.raises(TypeError, match="predict expects a BandStack"):
        translator.predict(np.zeros((2, 48, 48)))


def test_nan_pixels_are_masked_and_filled_not_zeroed(translator, galaxy):
    data = {b: np.array(galaxy[b].data, dtype=float) for b in INPUTS}
    data["NUV"][20:23, 20:23] = np.nan
    with pytest.warns(AstropyUserWarning, match="NUV"):
        stack = BandStack.from_arrays(data, wcs=galaxy.wcs, unit=galaxy["NUV"].unit)
    pred = translator.predict(stack, uncertainty=False)
    assert pred.mask[20:23, 20:23].all() and pred.mask.sum() == 9
    assert np.all(np.isfinite(pred.data))


def test_pixel_scale_far_from_training_warns_and_is_recorded(translator):
    coarse = make_galaxy(3, bands=list(INPUTS), size=48, pixel_scale=2.0)
    with pytest.warns(AstropyUserWarning, match="trained on 0.262 arcsec/pixel"):
        pred = translator.predict(coarse, uncertainty=False)
    assert "trained on 0.262 arcsec/pixel" in pred.meta["provenance"]["domain_warnings"][0]


@pytest.mark.parametrize(("pixel_scale", "warned"), [(0.2, False), (0.38, False), (0.42, True), (0.16, True)])
def test_the_pixel_scale_warning_starts_at_a_factor_of_one_and_a_half(pixel_scale, warned):
    from bandsynth.models.domain import domain_problems
    from bandsynth.models.zoo import get_card

    card = get_card("nuv_k_to_r_paper")  # 0.262 arcsec/pixel
    stack = make_galaxy(3, bands=["NUV", "Ks"], size=32, pixel_scale=pixel_scale)
    problems = [p for p in domain_problems(card, stack) if "arcsec/pixel images" in p]
    assert bool(problems) == warned
    if warned:
        assert "reproject the inputs onto 0.262 arcsec/pixel" in problems[0]


def test_the_pixel_scale_warning_names_a_band_read_on_the_models_pixels():
    # GALEX NUV (1.5") + 2MASS Ks (1.0") put on NUV's grid: the advice was "onto 1 arcsec/pixel", a new grid that
    # resamples Ks too; Ks's own grid has the model's pixels
    from bandsynth.models.domain import domain_problems
    from bandsynth.models.zoo import get_card

    card = get_card("nuv_k_to_r")  # 1.0 arcsec/pixel
    bands = {"NUV": make_galaxy(3, bands=["NUV"], size=32, pixel_scale=1.5)["NUV"],
             "Ks": make_galaxy(3, bands=["Ks"], size=48, pixel_scale=1.0)["Ks"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the grid's corners lie beyond Ks's field
        stack = BandStack(bands, reproject_to="NUV")
    problems = [p for p in domain_problems(card, stack) if "arcsec/pixel images" in p]
    assert problems and problems[0].endswith("(reproject the inputs onto the grid of Ks, which has 1 arcsec/pixel: "
                                             "reproject_to='Ks')")


def test_the_universe_of_a_card_on_other_pixels_shows_the_same_galaxies():
    from astropy.wcs.utils import proj_plane_pixel_scales

    card = Translator.load("nuv_k_to_r_paper").card  # ideal mode: 128 x 128 pixels of 0.262"
    native, coarse = (card_dataset(card, progress=False, seed=5, n_galaxies=2, pixel_scale=p) for p in (None, 0.524))
    for i in range(2):
        a, b = native.stack(i), coarse.stack(i)
        assert a.shape == b.shape == (128, 128)  # the ideal mode draws a galaxy to the stamp's side in pixels
        assert proj_plane_pixel_scales(b.wcs.celestial)[0] * 3600 == pytest.approx(0.524)
        assert b.meta["flux_total"] == a.meta["flux_total"]
        assert float(b["r"].data.sum()) >= float(a["r"].data.sum())  # a wider field holds more of its light
    card = Translator.load("g_z_to_r").card  # the survey layer: galaxies of their sizes in arcsec, one field
    native, fine = (card_dataset(card, progress=False, seed=5, n_galaxies=1, pixel_scale=p) for p in (None, 0.131))
    a, b = native.stack(0, truth=True), fine.stack(0, truth=True)
    assert b.shape == (2 * a.shape[0], 2 * a.shape[1])
    assert float(b["DECam_r"].data.sum()) == pytest.approx(float(a["DECam_r"].data.sum()), rel=0.01)


def test_fit_calibrate_save_load_on_the_mock_universe(tmp_path):
    data = make_dataset(30, seed=2, bands=[*INPUTS, OUTPUT], size=48)
    t = Translator.fit(data, inputs=["NUV", "K"], output="sdss_r", name="nuv_k_to_r_test", preset="tiny",
                       epochs=1, crop_size=32, progress=False)
    cal = t.card.calibration
    # Ideal-mode inputs carry no noise: the Monte Carlo configuration cannot be calibrated.
    assert set(cal) == {"plain", "tta"}
    assert all(t > 0 for t in cal["plain"]["temperatures"]) and 0 < cal["plain"]["coverage_1sigma"] < 1
    assert cal["plain"]["fitted_on"].startswith("calibration half of the validation split")
    # Checkpoint choice and calibration use disjoint halves of the validation split.
    validation = len(data.indices("validation"))
    assert t.card.training["n_selection"] + t.card.training["n_calibration"] == validation
    assert t.card.training["n_train"] == len(data.indices("train"))
    assert t.card.inputs == INPUTS and t.card.output == "r"
    # a Python call records itself as the recipe, with the options that shaped the weights
    assert t.card.training["recipe"].startswith("Translator.fit(<MockDataset: training['data_info']>, "
                                                "inputs=['NUV', 'Ks'], output='r', preset='tiny', epochs=1, ")
    coef = t.card.baseline["coefficients"]
    assert set(coef) == set(INPUTS) and coef == pytest.approx(dict(zip(INPUTS, t.model.config["coefficients"])))
    assert t.card.baseline["kind"] in ("flux", "scaled") and t.model.config["baseline"] == t.card.baseline["kind"]
    saved = t.save(tmp_path / "nuv_k_to_r_test")
    again = Translator.load(tmp_path / "nuv_k_to_r_test.safetensors")
    assert again.card.calibration["plain"] == pytest.approx(cal["plain"])
    assert again.card.n_parameters == sum(p.numel() for p in saved.model.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error", AstropyUserWarning)  # calibrated: no warning
        again.predict(data.stack(int(data.indices("test")[0])).select(INPUTS))


def test_calibrating_again_on_fresh_galaxies_of_the_training_universe():
    data = make_dataset(20, seed=2, bands=[*INPUTS, OUTPUT], size=48)
    t = Translator.fit(data, inputs=INPUTS, output=OUTPUT, preset="tiny", epochs=1, crop_size=32, progress=False,
                       calibrate=False)
    assert t.card.calibration == {}
    fresh = card_dataset(t.card, progress=False, seed=9, n_galaxies=6)  # the same universe, new galaxies
    assert len(fresh) == 6 and fresh.info["seed"] == 9
    assert not np.array_equal(fresh.stack(0)[OUTPUT].data, data.stack(0)[OUTPUT].data)
    calibrated = t.calibrate(fresh, indices=range(6), configurations=("plain",), fitted_on="6 fresh galaxies")
    entry = calibrated.card.calibration["plain"]
    # By default the residuals are measured where compare() measures them: in the galaxy detected on its bands.
    detected = "; residuals in the galaxy detected in a coadd of its bands"
    assert set(calibrated.card.calibration) == {"plain"} and entry["fitted_on"] == "6 fresh galaxies" + detected
    assert 0 < entry["n_galaxies"] <= 6 and entry["distribution"] in ("gaussian", "laplace", "generalized normal")
    on_test = t.calibrate(fresh, configurations=("plain",), split="test", footprint="target")
    assert on_test.card.calibration["plain"]["fitted_on"] == (
        "the test split; residuals in the true target band's central segment")


def test_fit_for_noisy_targets_keeps_the_last_weights_and_calibrates_on_the_whole_validation_split(tmp_path):
    from bandsynth.nn.training.checkpoints import load_checkpoint

    data = make_dataset(30, seed=2, bands=[*INPUTS, OUTPUT], size=48)
    t = Translator.fit(data, inputs=INPUTS, output=OUTPUT, preset="tiny", epochs=2, crop_size=32, progress=False,
                       ssim_weight=0.0, select_checkpoint=False, checkpoint_dir=tmp_path / "runs")
    last = load_checkpoint(tmp_path / "runs")
    assert last.epoch == 2
    for name, value in t.model.state_dict().items():  # the weights after the last epoch, not the best one's
        assert torch.equal(value.cpu(), last.model_state[name]), name
    # the loss had no SSIM term: train_loss = L1 + NLL in every epoch
    for record in last.history:
        assert record["train_loss"] == pytest.approx(record["train_l1"] + record["train_nll"], rel=1e-5)
    training = t.card.training
    assert (training["ssim_weight"], training["checkpoint"], training["best_validation_ssim"]) == (0.0, "last", None)
    assert training["loss"] == "L1 on the mean; Gaussian NLL on the sigma head"
    assert training["n_selection"] == 0 and training["n_calibration"] == len(data.indices("validation"))
    assert t.card.calibration["plain"]["fitted_on"].startswith("validation split (the last weights kept")


@pytest.mark.parametrize("argument", ["ssim_weight", "flux_weight"])
def test_fit_refuses_a_negative_loss_weight(argument):
    data = make_dataset(6, seed=2, bands=[*INPUTS, OUTPUT], size=32)
    with pytest.raises(ValueError, match=rf"{argument} must be a finite number >= 0, got -1"):
        Translator.fit(data, inputs=INPUTS, output=OUTPUT, preset="tiny", epochs=1, progress=False, **{argument: -1})


def test_fit_refuses_an_unknown_photometric_term():
    data = make_dataset(6, seed=2, bands=[*INPUTS, OUTPUT], size=32)
    with pytest.raises(ValueError, match=r"flux_error must be one of \('total', 'pixel', 'squared'\), got 'mean'"):
        Translator.fit(data, inputs=INPUTS, output=OUTPUT, preset="tiny", epochs=1, progress=False, flux_weight=1.0,
                       flux_error="mean")


def test_fit_trains_with_the_photometric_term_it_is_asked_for(monkeypatch):
    import bandsynth.nn.recipe as recipe

    losses, band_loss = [], recipe.BandLoss

    def recorded(**options):
        losses.append(band_loss(**options))
        return losses[-1]

    monkeypatch.setattr(recipe, "BandLoss", recorded)
    data = make_dataset(12, seed=2, bands=[*INPUTS, OUTPUT], size=32)
    t = Translator.fit(data, inputs=INPUTS, output=OUTPUT, preset="tiny", epochs=1, max_steps=1, crop_size=32,
                       progress=False, calibrate=False, flux_weight=1.0, flux_error="squared")
    assert [loss.flux_error for loss in losses] == ["squared"]
    assert t.card.training["flux_error"] == "squared" and "root sum of squares" in t.card.training["loss"]


def test_fit_names_a_missing_validation_split(monkeypatch):
    data = make_dataset(20, seed=2, bands=[*INPUTS, OUTPUT], size=32)
    monkeypatch.setattr(data, "indices", lambda split: np.arange(18) if split == "train" else np.arange(0))
    opts = dict(inputs=INPUTS, output=OUTPUT, preset="tiny", epochs=1, crop_size=32, progress=False)
    with pytest.raises(ValueError, match=r"no validation images \(needed to choose the checkpoint\); keep the "
                                         r"last weights instead \(select_checkpoint=False\)"):
        Translator.fit(data, calibrate=False, **opts)
    with pytest.raises(ValueError, match=r"cannot calibrate: the data set has no validation images; pass "
                                         r"calibrate=False"):
        Translator.fit(data, select_checkpoint=False, **opts)
    assert Translator.fit(data, select_checkpoint=False, calibrate=False, **opts).card.training["n_selection"] == 0


def test_fine_tuning_starts_from_the_init_weights_and_keeps_the_chain_of_recipes(tmp_path):
    data = make_dataset(12, seed=4, bands=[*INPUTS, OUTPUT], size=48)
    opts = dict(inputs=INPUTS, output="r", preset="tiny", epochs=1, crop_size=32, progress=False, calibrate=False)
    first = Translator.fit(data, recipe="bandsynth train (first)", **opts).save(tmp_path / "first")
    second = Translator.fit(data, recipe="bandsynth train (second)", init=tmp_path / "first", lr=1e-12,
                            **opts).save(tmp_path / "second")
    third = Translator.fit(data, recipe="bandsynth train (third)", init=tmp_path / "second", **opts)
    # a vanishing learning rate: the fine-tuned weights are the init weights, not a fresh initialisation
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.allclose(a, b, rtol=0, atol=1e-9)
    chain = third.card.training["init"]
    assert chain["path"] == str(tmp_path / "second") and chain["recipe"] == "bandsynth train (second)"
    assert chain["init"]["recipe"] == "bandsynth train (first)" and chain["init"]["init"] is None
    with pytest.raises(ValueError, match=r"init model '\w+' maps NUV\+Ks -> r with the 'tiny' preset; "
                                         r"expected NUV\+Ks -> r, 'small'"):
        Translator.fit(data, **{**opts, "preset": "small"}, init=tmp_path / "first")


# ---------------------------------------------------------------------- speed paths
@pytest.fixture
def fresh(translator):
    """A translator of its own (empty compile caches) on the shared tiny network."""
    return Translator(translator.model, _card())


@pytest.fixture
def fake_compile(monkeypatch):
    """torch.compile replaced by a spy that returns the model itself (no inductor)."""
    calls = []

    def spy(model, **kwargs):
        calls.append(kwargs)
        return model

    monkeypatch.setattr(torch, "compile", spy)
    monkeypatch.setattr("bandsynth.nn.engine._have_cxx", lambda: True)
    monkeypatch.delenv("BANDSYNTH_NO_COMPILE", raising=False)
    return calls


def test_compile_failure_falls_back_to_eager_with_one_warning(fresh, galaxy, monkeypatch):
    def broken(model, **kwargs):
        raise RuntimeError("inductor exploded")

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.delenv("BANDSYNTH_NO_COMPILE", raising=False)
    eager = fresh.predict(galaxy.select(INPUTS), uncertainty=False, compile=False)
    with pytest.warns(RuntimeWarning, match="inductor exploded"):
        pred = fresh.predict(galaxy.select(INPUTS), uncertainty=False, compile=True)
    np.testing.assert_array_equal(pred.data, eager.data)
    assert pred.meta["provenance"]["computation"]["compiled"] is False


def test_no_compile_environment_variable_disables_compiling(fresh, galaxy, fake_compile, monkeypatch):
    monkeypatch.setenv("BANDSYNTH_NO_COMPILE", "1")
    fresh.predict(galaxy.select(INPUTS), precision="bf16", compile=True, uncertainty=False)
    assert fake_compile == [] and not fresh.engine.compiled_used


@pytest.mark.parametrize("record, expected", [(None, "fp32"), ({"max_flux_change": 0.0012}, "bf16"),
                                               ({"max_flux_change": 0.0044}, "fp32")])
def test_auto_precision_takes_bf16_only_for_a_model_measured_within_the_contract(translator, galaxy, monkeypatch,
                                                                                  record, expected):
    monkeypatch.setattr("bandsynth.nn.engine.bf16_supported", lambda device: True)  # as on an AMX CPU
    t = Translator(translator.model, _card(metrics={} if record is None else {"bf16": record}))
    pred = t.predict(galaxy.select(INPUTS), precision="auto", compile=False, uncertainty=False)
    assert pred.meta["provenance"]["computation"]["precision"] == expected


def test_a_shipped_models_bf16_record_is_what_bf16_does_to_its_photometry():
    """Recomputed on fresh galaxies of the card's universe: bf16 keeps the contract the card says it keeps."""
    from bandsynth.morphology import segment
    from bandsynth.nn.engine import BF16_FLUX_TOLERANCE

    t = Translator.load("g_r_to_u_paper")
    record = t.card.metrics["bf16"]
    data = card_dataset(t.card, progress=False, seed=30_000, n_galaxies=4)
    changes = []
    for i in range(len(data)):
        stack = data.stack(i)
        fp32, bf16 = (t.predict(stack.select(t.inputs), precision=p, compile=False, uncertainty=False)
                      for p in ("fp32", "bf16"))
        seg = segment(np.asarray(stack[t.output].data, dtype=np.float64))
        inside = seg.segmap.data == seg.label
        changes.append(abs(float(bf16.data[inside].sum()) / float(fp32.data[inside].sum()) - 1))
    assert record["max_flux_change"] <= BF16_FLUX_TOLERANCE and record["n_galaxies"] >= 24  # "auto" takes bf16
    assert max(changes) <= BF16_FLUX_TOLERANCE


def test_compile_auto_waits_for_enough_images_of_a_shape(fresh, galaxy, fake_compile, monkeypatch):
    monkeypatch.setattr("bandsynth.nn.engine._COMPILE_MIN_IMAGES", 3)
    stack = galaxy.select(INPUTS)
    for _ in range(2):
        fresh.predict(stack, precision="bf16", uncertainty=False)
    assert fake_compile == []
    pred = fresh.predict(stack, precision="bf16", uncertainty=False)
    assert fake_compile == [{"dynamic": False}] and pred.meta["provenance"]["computation"]["compiled"] is True
    # the provenance says what this prediction did (it said "compiled" for every later one, compiled or not)
    eager = fresh.predict(stack, precision="bf16", uncertainty=False, compile=False)
    assert eager.meta["provenance"]["computation"]["compiled"] is False
    # fp32 on a CPU is no faster compiled: "auto" leaves it eager.
    for _ in range(4):
        fresh.predict(stack, precision="fp32", uncertainty=False)
    assert len(fake_compile) == 1


def test_options_are_checked(translator, galaxy):
    stack = galaxy.select(INPUTS)
    with pytest.raises(TypeError, match="compile must be True, False or 'auto', got 'yes'"):
        translator.predict(stack, compile="yes")
    with pytest.raises(ValueError, match="precision must be 'fp32', 'bf16' or 'auto', got 'fp16'"):
        translator.predict(stack, precision="fp16")
    with pytest.raises(ValueError, match="n_samples must be an integer >= 0, got -1"):
        translator.predict(stack, n_samples=-1)
    with pytest.raises(ValueError, match="tile must be an integer >= 2, got 1"):
        translator.predict(stack, tile=1, uncertainty=False)
    # yes/no options by name ("no" ran test-time augmentation), integers as integers (numpy's too)
    for name in ("tta", "uncertainty", "check_domain"):
        with pytest.raises(TypeError, match=f"{name} must be True or False, got 'no'"):
            translator.predict(stack, **{name: "no"})
    with pytest.raises(TypeError, match="restore_noise must be 'auto', True or False, got 'no'"):
        translator.predict(stack, restore_noise="no")
    for seed in (1.5, True, "a", None):
        with pytest.raises(TypeError, match=f"seed must be an integer, got {seed!r}"):
            translator.predict(stack, seed=seed)
    counted = translator.predict(stack, tile=np.int64(64), batch_size=np.int64(2), n_samples=np.int64(0))
    assert counted.provenance["computation"]["tile"] == 64
    assert counted.provenance["computation"]["options"]["check_domain"] is True
    with pytest.raises(ValueError, match=r"device='gpu' is not a device of this machine .*; it has 'cpu'"):
        Translator.load("nuv_k_to_r_paper", device="gpu")


def test_export_onnx_matches_torch_on_other_sizes(translator, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")

    path = translator.export_onnx(tmp_path / "tiny.onnx")
    assert path == tmp_path / "tiny.onnx" and sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["mean", "log_scale"]
    rng = np.random.default_rng(0)
    for shape in [(2, 2, 96, 96), (3, 2, 64, 80)]:
        x = rng.random(shape, dtype=np.float32)
        mean, log_scale = session.run(None, {"input": x})
        ref_mean, ref_scale = translator.engine.run(x)
        np.testing.assert_allclose(mean, ref_mean, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(log_scale, ref_scale, rtol=1e-4, atol=1e-4)


def test_export_onnx_without_onnx_names_the_packages(translator, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    with pytest.raises(ImportError, match="pip install onnx onnxruntime"):
        translator.export_onnx(tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_export_onnx_size_is_checked(translator, tmp_path):
    with pytest.raises(ValueError, match="height must be a multiple of 2 of at least 4 pixels, got 97"):
        translator.export_onnx(tmp_path / "m.onnx", height=97)


def test_large_images_go_tile_by_tile_with_progress_and_the_same_result(translator):
    # 9 tiles of 32 px: above LARGE_IMAGE_TILES, so each tile is prepared, predicted,
    # calibrated and converted on its own (bounded memory); the result is the whole image's.
    galaxy = make_galaxy(8, mode="survey", bands=list(INPUTS), size=96)
    calls = []
    with pytest.warns(AstropyUserWarning, match="calibration"):
        whole = translator.predict(galaxy, n_samples=0)
        tiled = translator.predict(galaxy, n_samples=0, tile=32,
                                   progress=lambda done, total: calls.append((done, total)))
    assert calls == [(k, 9) for k in range(1, 10)]
    peak = float(np.abs(whole.data).max())
    np.testing.assert_allclose(tiled.data, whole.data, rtol=0, atol=1e-4 * peak)
    np.testing.assert_allclose(tiled.uncertainty.array, whole.uncertainty.array, rtol=1e-3,
                               atol=1e-4 * float(whole.uncertainty.array.max()))
    np.testing.assert_array_equal(tiled.mask, whole.mask)
    assert tiled.meta["provenance"]["computation"]["tile"] == 32
    # A small image with Monte Carlo draws of its inputs' noise: one count over the prediction and the 3 draws.
    calls.clear()
    with pytest.warns(AstropyUserWarning, match="calibration"):
        translator.predict(galaxy, n_samples=3, tile=64, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(k, 16) for k in range(1, 17)]  # 4 tiles x (1 + 3) passes
    # progress=False is no progress, True a bar; anything else is refused by name
    with pytest.warns(AstropyUserWarning, match="calibration"):
        for flag in (False, True):
            np.testing.assert_array_equal(translator.predict(galaxy, n_samples=0, progress=flag).data, whole.data)
    with pytest.raises(TypeError, match="progress must be True, False or a callable progress\\(done, total\\), got str"):
        translator.predict(galaxy, progress="yes")


def test_a_one_pixel_wide_image_is_refused_without_numpy_warnings(tiny_translator):
    rng = np.random.default_rng(0)
    strip = BandStack({b: rng.random((40, 1)) for b in tiny_translator.inputs}, unit="nanomaggy")
    with warnings.catch_warnings():
        # no "Mean of empty slice" from the noise estimate first, nor domain warnings about an image never predicted
        warnings.simplefilter("error")
        with pytest.raises(BandInputError, match=r"^bands NUV, Ks: image of 40x1 pixels is smaller than the 4x4 "
                                                 r"pixels model 'tiny_test' needs$") as err:
            tiny_translator.predict(strip)
    assert err.value.band == "NUV,Ks"


def test_inputs_much_quieter_than_a_survey_models_training_are_a_domain_warning():
    # a faint galaxy's predicted flux moved by 0.2 mag when its inputs' noise was halved, without a word
    from bandsynth.datasets.mock import observe_galaxy
    from bandsynth.models.domain import domain_problems
    from bandsynth.models.zoo import get_card

    card = get_card("g_z_to_r")
    said = {}
    for depth in (0.0, 1.5, 6.0):  # magnitudes deeper than the survey the model was trained on: 4x (250x) less noise
        stack = observe_galaxy(21, survey="decals", bands=["g", "z"], size=64, depth_offset=depth).observed
        said[depth] = [p for p in domain_problems(card, stack) if "times less" in p]
    assert said[0.0] == []
    assert len(said[1.5]) == 2 and re.search(r"model 'g_z_to_r' was trained on DECam_g images with noise of 0\.003\d+ "
                                             r"nanomaggy/pixel; this stack's DECam_g noise is 0\.000\d+, "
                                             r"[34]\.\d+ times less \(warned beyond 2 times\)", said[1.5][0])
    assert re.search(r", \d{3} times less \(warned beyond 2 times\)", said[6.0][0])  # not "2.51e+02 times"
    # interpolated onto a grid offset by half a pixel, the pixel-to-pixel noise is a third: the depth is the same
    # (g_z_to_r holds there unrestored, and was warned of "2.8 times less" noise); a deeper image still is warned of
    for depth in (0.0, 1.5):
        moved = observe_galaxy(21, survey="decals", bands=["g", "z"], size=64, depth_offset=depth,
                               grid_offsets={"DECam_g": (0.5, 0.5), "DECam_z": (0.5, 0.5)}).observed
        for restore_noise in ("auto", False, True):
            assert len([p for p in domain_problems(card, moved, restore_noise=restore_noise)
                        if "times less" in p]) == (2 if depth else 0)
    assert get_card("nuv_k_to_r_paper").training.get("noise") and not [  # trained noise-free: deeper is no news
        p for p in domain_problems(get_card("nuv_k_to_r_paper"), make_galaxy(3, bands=["NUV", "Ks"], size=48))
        if "times less" in p]


def test_a_noisy_input_interpolated_onto_a_grid_of_its_pixel_size_is_a_domain_warning():
    # Shifted by a quarter pixel (interpolated onto pixels of the same size), the faint galaxies of a model trained on
    # aligned grids came out tens of per cent brighter without a word: interpolation smooths the noise, which the
    # model reads as a deeper image.  predict restores the smoothed-out noise by default; warned about unless the
    # card records holding on offset grids in the same case (restored or not).
    from bandsynth.datasets.mock import observe_galaxy
    from bandsynth.models.domain import OFFSET_FLUX_TOLERANCE, domain_problems
    from bandsynth.models.zoo import get_card

    stack = observe_galaxy(15, survey="galex_sdss_2mass", bands=["g", "r"], size=64, pixel_scale=0.396).observed
    assert all(r["subpixel_shift"] == 0.0 for r in stack.meta["reprojection"])  # put on the grid by whole pixels
    card = get_card("g_r_to_u")
    record = dict(card.metrics["grid_offsets"], median_flux_change=0.07, median_flux_change_unrestored=0.39,
                  median_flux_change_68=[0.05, 0.09], median_flux_change_unrestored_68=None)
    card = card.replace(metrics={**card.metrics, "grid_offsets": record})
    assert not [p for p in domain_problems(card, stack) if "resampled" in p]
    grid = stack.wcs.deepcopy()
    grid.wcs.crpix = [c + 0.25 for c in grid.wcs.crpix]
    shifted = stack.reproject((grid, stack.shape))

    def said(card, stack=shifted, **options):
        return [p for p in domain_problems(card, stack, **options) if "resampled" in p]

    start = ("input g was resampled onto a grid of its own pixel size shifted by 0.25 pixel (interp), which smooths "
             "its noise between pixels by an amount that depends on the grid's sub-pixel offset; model 'g_r_to_u' "
             "reads the noise, and its faint mock galaxies came out a median ")
    assert len(said(card)) == 2 and said(card)[0] == (
        start + "7 % brighter (the median's 16-84 % interval +5 to +9 %) with both inputs' grids offset by 0.5 pixel, "
        "with their noise restored (its card's "
        "metrics['grid_offsets']); where the bands share a grid, predict on it")
    assert said(card, restore_noise=False)[0] == (
        start + "39 % brighter with both inputs' grids offset by 0.5 pixel, without their noise restored (its card's "
        "metrics['grid_offsets']); where the bands share a grid, predict on it; restore_noise=True adds the "
        "smoothed-out noise back")
    # without an uncertainty the noise is restored too (to the sky noise the image shows): the same figure
    bare = BandStack({b: shifted[b].data for b in shifted.names}, wcs=shifted.wcs, unit=shifted.unit,
                     mask={b: shifted[b].mask for b in shifted.names}, meta=shifted.meta)
    assert said(card, bare) == said(card)
    unmeasured = card.replace(metrics={k: v for k, v in card.metrics.items() if k != "grid_offsets"})
    assert "tens of per cent" in said(unmeasured)[0]
    # onto pixels of another size, for a model of noise-free images, or for one measured to hold on offset grids:
    # not this sentence
    assert not said(card, stack.reproject(0.6 * u.arcsec))
    assert not said(get_card("g_r_to_u_paper"))
    holds = card.replace(metrics={**card.metrics, "grid_offsets": dict(record, median_flux_change=-0.9 *
                                                                        OFFSET_FLUX_TOLERANCE)})
    assert not said(holds) and len(said(holds, restore_noise=False)) == 2
    # a model that holds without restoring ("auto" leaves its inputs as they are), warned about only if asked to
    holds_unrestored = card.replace(metrics={**card.metrics, "grid_offsets": dict(
        record, median_flux_change_unrestored=0.9 * OFFSET_FLUX_TOLERANCE)})
    assert not said(holds_unrestored) and "7 % brighter" in said(holds_unrestored, restore_noise=True)[0]


def test_noise_beyond_the_training_range_is_a_domain_warning(tiny_translator):
    from bandsynth.models.domain import pixel_noise

    galaxy = make_galaxy(3, bands=list(tiny_translator.inputs), size=48)
    assert pixel_noise(galaxy["NUV"].data) < 0.001  # ideal mode: no noise
    noisy = BandStack({b: np.asarray(galaxy[b].data) + np.random.default_rng(1).normal(0, 0.05, galaxy.shape)
                       for b in galaxy.names}, wcs=galaxy.wcs, unit="nanomaggy")
    assert pixel_noise(noisy["NUV"].data) == pytest.approx(0.05, rel=0.1)
    with pytest.warns(UserWarning, match=r"trained on noise-free NUV images; this stack's NUV noise is 0\.0[45]"):
        pred = tiny_translator.predict(noisy)
    assert any("NUV noise" in p for p in pred.meta["provenance"]["domain_warnings"])
    assert not any("Ks noise" in p for p in pred.meta["provenance"]["domain_warnings"])  # 0.05 is within Ks's range
    # the same images in Jy are the same noise: measured in the model's unit, not in the stack's numbers
    in_jy = BandStack({b: noisy[b].data * 3.631e-6 for b in noisy.names}, wcs=galaxy.wcs, unit="Jy")
    with pytest.warns(UserWarning, match=r"this stack's NUV noise is 0\.0[45]\d* nanomaggy/pixel"):
        same = tiny_translator.predict(in_jy)
    assert same.meta["provenance"]["domain_warnings"] == pred.meta["provenance"]["domain_warnings"]


def test_a_synthetic_band_read_as_an_input_is_a_domain_warning(tiny_translator, tmp_path):
    # A prediction fed to another model is not an observation: said, and recorded in the provenance.
    from astropy.nddata import CCDData

    from bandsynth.models.domain import domain_problems
    from bandsynth.synthetic import SyntheticBand, make_provenance

    galaxy = make_galaxy(3, bands=list(tiny_translator.inputs), size=48)
    files = {band: tmp_path / f"{band}.fits" for band in galaxy.names}
    CCDData(np.asarray(galaxy["NUV"].data), unit="nanomaggy", wcs=galaxy.wcs).write(files["NUV"])
    SyntheticBand(np.asarray(galaxy["Ks"].data, np.float32), unit="nanomaggy", wcs=galaxy.wcs,
                  provenance=make_provenance("Ks", model="upstream_model")).write(files["Ks"])
    with pytest.warns(UserWarning, match=r"input Ks is a synthetic band predicted by model 'upstream_model' \(FITS "
                                         r"keyword BSMODEL\), not an observation"):
        pred = tiny_translator.predict(BandStack.from_fits(files))
    assert [p for p in pred.meta["provenance"]["domain_warnings"] if "synthetic band" in p]
    assert not [p for p in domain_problems(tiny_translator.card, galaxy) if "synthetic band" in p]


def test_a_stamp_of_at_most_half_the_receptive_field_is_a_domain_warning():
    # every pixel of it reads more mirrored edge than image; a stamp a little larger is the model's business
    from bandsynth.models.domain import domain_problems
    from bandsynth.models.zoo import get_card

    card = get_card("nuv_k_to_r_paper")
    half = card.receptive_field // 2
    for size, warned in ((half, True), (half + 8, False)):
        galaxy = make_galaxy(3, bands=["NUV", "Ks"], size=size)
        problems = [p for p in domain_problems(card, galaxy) if "receptive field" in p]
        assert bool(problems) == warned, (size, problems)
    assert problems == [] and f"this stack is {half} x {half} pixels, at most half the {card.receptive_field}-pixel" \
        in domain_problems(card, make_galaxy(3, bands=["NUV", "Ks"], size=half))[0]


def test_the_noise_warning_names_the_shipped_model_for_observed_images():
    from bandsynth.models.domain import domain_problems
    from bandsynth.models.zoo import get_card

    galaxy = make_galaxy(3, bands=["NUV", "Ks"], size=48)
    noisy = BandStack({b: np.asarray(galaxy[b].data) + np.random.default_rng(1).normal(0, 1.0, galaxy.shape)
                       for b in galaxy.names}, wcs=galaxy.wcs, unit="nanomaggy")
    (problem,) = [p for p in domain_problems(get_card("nuv_k_to_r_paper"), noisy) if "NUV noise" in p]
    assert "the shipped model 'nuv_k_to_r' was trained on images as the surveys observe them" in problem
    # A model trained on survey images is not sent to itself: it says how to check the prediction.
    (problem,) = [p for p in domain_problems(get_card("nuv_k_to_r"), noisy) if "NUV noise" in p]
    assert "noisier than any image it was trained on: check the prediction against an observed band" in problem
    assert re.search(r"nanomaggy/pixel, [\d.]+ times that \(warned beyond 2 times\)", problem)
    assert "survey-like data" not in problem


def test_the_card_names_what_the_network_was_trained_to_reproduce():
    # Noisy survey-mode mocks are not "observed images", nor the noise-free truth of the survey layer.
    opts = dict(inputs=INPUTS, output=OUTPUT, preset="tiny", epochs=1, max_steps=1, crop_size=32, progress=False,
                calibrate=False, select_checkpoint=False)
    for mode, target in (("survey", "survey-mode mock images (with their noise)"),
                         ("ideal", "noise-free ideal-mode images")):
        data = make_dataset(6, seed=2, mode=mode, bands=[*INPUTS, OUTPUT], size=32)
        assert Translator.fit(data, **opts).card.training["target"] == target


def test_the_card_records_the_unit_of_the_training_data(monkeypatch, tmp_path):
    # The card said "nanomaggy" whatever the data's unit: a model trained on microjansky images took its inputs
    # 3.631 times too faint and wrote its output in the wrong unit.
    data = make_dataset(6, seed=2, bands=[*INPUTS, OUTPUT], size=32)
    opts = dict(inputs=INPUTS, output=OUTPUT, preset="tiny", epochs=1, max_steps=1, crop_size=32, progress=False,
                calibrate=False, select_checkpoint=False)
    nanomaggy = Translator.fit(data, **opts).save(tmp_path / "nmgy")
    assert nanomaggy.card.unit == "nanomaggy"
    monkeypatch.setitem(data.manifest.meta, "unit", "uJy")
    assert Translator.fit(data, **opts).card.unit == "uJy"
    # fine-tuning keeps the init model's scalings, which are in its unit
    with pytest.raises(ValueError, match=r"init model 'nuv_ks_to_r' was trained on data in nanomaggy; the training "
                                         r"data are in uJy: write the data in nanomaggy, or train without init"):
        Translator.fit(data, init=tmp_path / "nmgy", **opts)
