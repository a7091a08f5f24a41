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
from bandsynth.models.zoo import WeightsHashError
from bandsynth.translator import _fit_temperature

INPUTS, OUTPUT = ("NUV", "Ks"), "r"


@pytest.fixture(scope="module")
def translator(tiny_translator):
    """The shared tiny translator (``tests/conftest.py``), under this module's name."""
    return tiny_translator


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


def test_wrong_number_of_bands_in_the_network_is_refused(tiny_card):
    with pytest.raises(ValueError, match="the network takes 3 bands but the card lists 2 inputs"):
        Translator(build_generator("tiny", 3), tiny_card())


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



def test_fine_tuning_starts_from_the_init_weights_and_keeps_the_chain_of_recipes(tmp_path):
    data = make_dataset(12, seed=4, bands=[*INPUTS, OUTPUT], size=48)
    opts = dict(inputs=INPUTS, output="r", preset="tiny", epochs=1, crop_size=32, progress=False, calibrate=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
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
def fresh(translator, tiny_card):
    """A translator of its own (empty compile caches) on the shared tiny network."""
    return Translator(translator.model, tiny_card())


@pytest.fixture
def fake_compile(monkeypatch):
    """torch.compile replaced by a spy that returns the model itself (no inductor)."""
    calls = []

    def spy(model, **kwargs):
        calls.append(kwargs)
        return model

    monkeypatch.setattr(torch, "compile", spy)
    monkeypatch.setattr("bandsynth.translator._have_cxx", lambda: True)
    monkeypatch.delenv("BANDSYNTH_NO_COMPILE", raising=False)
    return calls


def test_compiled_prediction_matches_eager(galaxy, monkeypatch, make_tiny_translator):
    monkeypatch.delenv("BANDSYNTH_NO_COMPILE", raising=False)
    # A network of its own: the shared one may be channels-last after bf16 predictions,
    # which is another graph for the compiler (and inductor's on-disk cache).
    fresh = make_tiny_translator()
    stack = galaxy.select(INPUTS)
    eager = fresh.predict(stack, precision="fp32", compile=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AstropyUserWarning)
        compiled = fresh.predict(stack, precision="fp32", compile=True)
    failed = [str(w.message) for w in caught
              if issubclass(w.category, AstropyUserWarning) and str(w.message).startswith("torch.compile of")]
    if failed:
        pytest.skip(f"inductor cannot compile on this machine: {failed[0]}")
    assert set(fresh._compiled) == {"fp32"} and fresh._compiled_shapes
    scale = np.abs(eager.data).max()
    np.testing.assert_allclose(compiled.data, eager.data, rtol=1e-3, atol=1e-3 * scale)
    np.testing.assert_allclose(compiled.uncertainty.array, eager.uncertainty.array, rtol=1e-3,
                               atol=1e-3 * np.abs(eager.uncertainty.array).max())


def test_compile_failure_falls_back_to_eager_with_one_warning(fresh, galaxy, monkeypatch):
    def broken(model, **kwargs):
        raise RuntimeError("no C++ compiler here\nmore detail")

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.delenv("BANDSYNTH_NO_COMPILE", raising=False)
    stack = galaxy.select(INPUTS)
    eager = fresh.predict(stack, precision="fp32", compile=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = fresh.predict(stack, precision="fp32", compile=True)
        second = fresh.predict(stack, precision="fp32", compile=True)
    messages = [str(w.message) for w in caught if issubclass(w.category, AstropyUserWarning)]
    assert messages == [
        "torch.compile of model 'tiny_test' failed (RuntimeError: no C++ compiler here); predicting "
        "without it (set BANDSYNTH_NO_COMPILE=1 to skip the attempt)"
    ]
    np.testing.assert_array_equal(first.data, eager.data)
    np.testing.assert_array_equal(second.data, eager.data)
    assert not fresh._compiled


def test_compile_auto_failure_is_logged_not_warned(fresh, galaxy, monkeypatch, caplog):
    def broken(model, **kwargs):
        raise RuntimeError("inductor exploded")

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr("bandsynth.translator._have_cxx", lambda: True)
    monkeypatch.setattr("bandsynth.translator._COMPILE_MIN_IMAGES", 1)
    monkeypatch.delenv("BANDSYNTH_NO_COMPILE", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AstropyUserWarning)
        with caplog.at_level("INFO", logger="bandsynth.translator"):
            pred = fresh.predict(galaxy.select(INPUTS), precision="bf16")
    assert np.all(np.isfinite(pred.data))
    assert "inductor exploded" in caplog.text


def test_no_compile_environment_variable_disables_compiling(fresh, galaxy, fake_compile, monkeypatch):
    monkeypatch.setenv("BANDSYNTH_NO_COMPILE", "1")
    fresh.predict(galaxy.select(INPUTS), precision="bf16", compile=True)
    assert fake_compile == [] and not fresh._compiled and not fresh._compiled_shapes


def test_compile_auto_waits_for_enough_images_of_a_shape(fresh, translator, tiny_card, galaxy, fake_compile,
                                                        monkeypatch):
    # A batch worker predicts one galaxy per call: after enough images of one shape
    # (over calls) the next call compiles, and later calls reuse the compiled module.
    monkeypatch.setattr("bandsynth.translator._COMPILE_MIN_IMAGES", 3)
    stack = galaxy.select(INPUTS)
    for _ in range(2):
        fresh.predict(stack, precision="bf16", uncertainty=False)
    assert fake_compile == [] and not fresh._compiled_shapes
    fresh.predict(stack, precision="bf16", uncertainty=False)
    assert fake_compile == [{"dynamic": False}] and set(fresh._compiled) == {"bf16"}
    assert fresh._compiled_shapes == {("bf16", 1, 2, 48, 48)}
    fresh.predict(stack, precision="bf16", uncertainty=False)
    assert len(fake_compile) == 1
    # fp32 on a CPU is no faster compiled: "auto" leaves it eager.
    for _ in range(4):
        fresh.predict(stack, precision="fp32", uncertainty=False)
    if next(fresh.model.parameters()).device.type == "cpu":
        assert "fp32" not in fresh._compiled
    # One call with enough images compiles at once.
    other = Translator(translator.model, tiny_card())
    other.predict([stack] * 3, precision="bf16", uncertainty=False)
    assert other._compiled_shapes == {("bf16", 3, 2, 48, 48)}


def test_compile_option_is_checked(translator, galaxy):
    with pytest.raises(TypeError, match="compile must be True, False or 'auto', got 'yes'"):
        translator.predict(galaxy.select(INPUTS), compile="yes")


def test_export_onnx_matches_torch_on_other_sizes(translator, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from bandsynth.training import run_generator

    path = translator.export_onnx(tmp_path / "tiny.onnx")
    assert path == tmp_path / "tiny.onnx" and sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["mean", "log_scale"]
    rng = np.random.default_rng(0)
    for shape in [(2, 2, 96, 96), (3, 2, 64, 80)]:
        x = rng.random(shape, dtype=np.float32)
        mean, log_scale = session.run(None, {"input": x})
        ref = run_generator(translator.model, torch.from_numpy(x), bf16=False, channels_last=False)
        np.testing.assert_allclose(mean, ref.mean.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(log_scale, ref.log_scale.numpy(), rtol=1e-4, atol=1e-4)


def test_export_onnx_without_onnx_names_the_packages(translator, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    with pytest.raises(ImportError, match="pip install onnx onnxruntime"):
        translator.export_onnx(tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_export_onnx_size_is_checked(translator, tmp_path):
    with pytest.raises(ValueError, match="height must be a multiple of 2 of at least 4 pixels, got 97"):
        translator.export_onnx(tmp_path / "m.onnx", height=97)


def test_bf16_keeps_the_ssim_of_fp32_on_held_out_galaxies():
    from bandsynth.datasets.mock import galaxy_seed
    from bandsynth.metrics import ssim
    from bandsynth.scaling import AsinhScaling

    shipped = Translator.load("nuv_k_to_r")
    info = shipped.card.training["data_info"]
    seeds = [10_000 + i for i in range(8)]
    # Held out by construction: not one of the training universe's galaxies.
    assert not set(seeds) & {galaxy_seed(info["seed"], i) for i in range(info["n_galaxies"])}
    galaxies = [make_galaxy(s, bands=[*shipped.inputs, shipped.output], size=128) for s in seeds]
    stacks = [g.select(shipped.inputs) for g in galaxies]
    scaling = AsinhScaling.from_dict(dict(shipped.card.scaling[shipped.output]))

    def scores(precision):
        preds = shipped.predict(stacks, precision=precision, uncertainty=False, compile=False)
        out = []
        for pred, g in zip(preds, galaxies):
            ref = pred.meta["provenance"]["scaling"]["reference_flux"]
            out.append(ssim(scaling.forward(pred.data, reference=ref),
                            scaling.forward(g[shipped.output].data, reference=ref), data_range=1.0))
        return np.array(out)

    fp32, bf16 = scores("fp32"), scores("bf16")
    assert np.all(fp32 > 0.5)  # a trained model: the comparison is meaningful
    assert np.max(np.abs(bf16 - fp32)) < 1e-3
