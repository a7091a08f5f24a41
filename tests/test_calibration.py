"""The uncertainty calibration: its stated distribution and the galaxies it is fitted on; the σ head fitted again."""

import astropy.units as u
import numpy as np
import pytest
from astropy.utils.exceptions import AstropyUserWarning
from scipy import stats

from bandsynth.uncertainty import Calibration, fit_calibration, interval_half_widths


def _coverages(cal, z_abs, brightness):
    scaled = z_abs / cal.temperature(brightness)
    return float(np.mean(scaled <= 1.0)), float(np.mean(scaled <= cal.half_width_2sigma))


@pytest.mark.parametrize(("draw", "expected"), [
    (lambda rng, n: rng.standard_normal(n), "gaussian"),
    (lambda rng, n: rng.laplace(size=n), "laplace"),
])
def test_named_shapes_are_recognised(draw, expected):
    rng = np.random.default_rng(3)
    z = np.abs(draw(rng, 200_000)) * 0.3
    cal = fit_calibration(z, rng.random(z.size), configuration="plain", n_bins=4)
    assert cal.distribution == expected
    assert cal.half_width_2sigma == pytest.approx(interval_half_widths(cal.shape)[1])


def test_tails_heavier_than_laplace_state_a_generalized_normal_that_covers_both_levels():
    # Tails heavier than either named shape: under a Laplace shape the fit cannot reach 68.27 %
    # and 95.45 % at once; a free shape can.
    rng = np.random.default_rng(4)
    z = np.abs(stats.gennorm.rvs(0.7, size=200_000, random_state=rng))
    brightness = rng.random(z.size)
    cal = fit_calibration(z, brightness, configuration="tta", n_bins=4)
    assert cal.distribution == "generalized normal" and cal.shape == pytest.approx(0.7, abs=0.1)
    assert cal.half_width_2sigma > interval_half_widths(1.0)[1]
    cov1, cov2 = _coverages(cal, z, brightness)
    assert cov1 == pytest.approx(0.6827, abs=0.01) and cov2 == pytest.approx(0.9545, abs=0.01)
    assert cal.summary["coverage_1sigma"] == pytest.approx(cov1)
    # the stated shape survives the card's round trip
    again = Calibration.from_dict("tta", cal.to_dict())
    assert again.shape == cal.shape and again.half_width_2sigma == pytest.approx(cal.half_width_2sigma)


def test_a_card_written_before_free_shapes_keeps_its_named_distribution():
    old = Calibration.from_dict("plain", {"centres": [0.1], "temperatures": [1.0], "distribution": "laplace"})
    assert old.shape == 1.0 and old.half_width_2sigma == pytest.approx(np.log(1 / 0.0455) / np.log(1 / 0.317311),
                                                                          rel=1e-3)


def test_too_few_pixels_to_calibrate_is_an_error():
    with pytest.raises(ValueError, match="cannot calibrate 'mc': only 5 footprint pixels"):
        fit_calibration(np.ones(5), np.ones(5), configuration="mc")
    with pytest.raises(ValueError, match="cannot calibrate 'plain': the predicted brightness of its 100 pixels has "
                                         "no spread to bin"):
        fit_calibration(np.ones(100), np.full(100, 0.3), configuration="plain")  # numpy: "sample points is empty"


def test_bins_where_the_truths_noise_alone_covers_take_the_fitted_bins_temperature():
    # Against an observed truth, the faint pixels' residuals lie within the truth's own noise: any temperature,
    # down to the grid's floor (1e-3), covers 68 % of them, and the fit took the floor -- a sigma 1000 times too
    # small there.  Such bins take the temperature of the nearest fitted bins instead.
    rng = np.random.default_rng(3)
    n = 4000
    brightness = np.concatenate([rng.uniform(0.0, 0.1, n), rng.uniform(0.5, 1.0, n)])
    faint = np.where(rng.random(n) < 0.97, 0.0, rng.uniform(0.0, 2.0, n))  # 97 % covered by the noise alone
    bright = np.abs(rng.normal(0.0, 0.3, n))  # needs T of about 0.3
    cal = fit_calibration(np.concatenate([faint, bright]), brightness, configuration="plain", n_bins=4)
    assert cal.summary["bins_left_free"] == 2 and len(cal.centres) == 2
    assert cal.temperature(0.05) == pytest.approx(cal.temperature(0.6)) and 0.2 < cal.temperature(0.05) < 0.4
    # a truth whose noise covers every bin leaves nothing to fit from: the smallest sigma the data allow
    alone = fit_calibration(faint, rng.uniform(0.0, 0.1, n), configuration="plain", n_bins=2)
    assert "bins_left_free" not in alone.summary and alone.temperature(0.05) < 0.01


def test_calibrating_on_noisy_observed_targets_states_the_error_about_the_noise_free_sky(make_tiny_translator):
    # A model that is exactly right, calibrated on observed targets: its truth plus sky noise of
    # 0.05 nanomaggy.  Told the noise (the targets' uncertainty), the calibration keeps the sigma
    # of the prediction's own error (near zero); not told, it can only state the noise itself.
    from bandsynth.datasets.mock import MockDataset, make_dataset

    data = make_dataset(8, seed=5, bands=["NUV", "Ks", "r"], size=48)
    t = make_tiny_translator()
    exact = np.stack([t.predict(data.stack(i).select(["NUV", "Ks"]), uncertainty=False).data
                      for i in range(len(data))])
    noise = 0.05
    cubes = {b: np.asarray(data.cube(b)) for b in data.names}
    cubes["r"] = exact + np.random.default_rng(1).normal(0.0, noise, exact.shape)
    sigma = {}
    for told in (True, False):
        uncertainty = {b: np.full(exact.shape, noise) for b in data.names} if told else None
        observed = MockDataset(cubes, data.manifest, uncertainty=uncertainty)
        calibrated = t.calibrate(observed, indices=range(8), configurations=("plain",))
        pred = calibrated.predict(data.stack(0).select(["NUV", "Ks"]))
        sigma[told] = float(np.median(pred.uncertainty.array)) / noise
    assert sigma[False] > 0.5 and sigma[True] < 0.25 * sigma[False]


def test_galaxies_in_another_unit_calibrate_as_in_the_models(make_tiny_translator):
    # The truth was read as if in the model's unit: the same galaxies in Jy set temperatures up to 6 times off
    # and recorded a coverage of 1.0.
    from bandsynth.datasets.mock import MockDataset, make_dataset

    data = make_dataset(6, seed=5, bands=["NUV", "Ks", "r"], size=48)
    manifest = data.manifest.copy()
    manifest.meta["unit"] = "Jy"
    in_jy = MockDataset({b: np.asarray(data.cube(b)) * 3.631e-6 for b in data.names}, manifest)
    assert in_jy.stack(0).unit == u.Jy
    t = make_tiny_translator()
    fitted = [t.calibrate(d, indices=range(6), configurations=("plain",)).calibrations["plain"] for d in (data, in_jy)]
    np.testing.assert_allclose(fitted[1].temperatures, fitted[0].temperatures, rtol=1e-4)


def test_calibrating_on_few_galaxies_says_so_and_keeps_the_other_configurations(make_tiny_translator):
    # Two galaxies calibrated without a word (their card's 10-90 % per-galaxy coverage a single value); galaxies
    # whose footprint is masked in the inputs counted in n_galaxies; one configuration refitted dropped the others.
    from bandsynth.datasets.mock import MockDataset, make_dataset

    data = make_dataset(4, seed=5, bands=["NUV", "Ks", "r"], size=48)
    hidden = np.zeros((4, 48, 48), bool)
    hidden[1], hidden[1, 0, :3] = True, False  # galaxy 1: its inputs masked but for three pixels of sky
    masked = MockDataset({b: np.asarray(data.cube(b)) for b in data.names}, data.manifest,
                         mask={"NUV": hidden, "Ks": hidden, "r": np.zeros_like(hidden)})
    t = make_tiny_translator()
    with pytest.warns(AstropyUserWarning) as said:
        plain = t.calibrate(masked, indices=range(4), configurations=("plain",))
    messages = [str(w.message) for w in said]
    assert any(m.startswith("calibration: 1 galaxy(ies) left out, no usable pixel in their footprint (not detected, "
                            "or masked in the inputs): 1") for m in messages)
    assert any(m.startswith("calibration fitted on 3 galaxies: a galaxy's errors are shared by its pixels") for m in
               messages)
    assert plain.calibrations["plain"].summary["n_galaxies"] == 3
    with pytest.warns(AstropyUserWarning, match="calibration fitted on 3 galaxies"):
        both = plain.calibrate(masked, indices=range(4), configurations=("tta",))
    assert set(both.card.calibration) == {"plain", "tta"} and both.card.calibration["plain"] == plain.card.calibration["plain"]


def test_calibration_can_measure_the_residuals_in_the_galaxy_detected_in_all_its_bands(make_tiny_translator):
    # A faint, noisy target band detects only the galaxy's core; the coadd of its bands detects the galaxy.
    from bandsynth.datasets.mock import MockDataset, make_dataset

    data = make_dataset(6, seed=5, bands=["NUV", "Ks", "r"], size=48)
    noise = 0.05
    cubes = {b: np.asarray(data.cube(b)) for b in data.names}
    cubes["r"] = 0.2 * cubes["r"] + np.random.default_rng(1).normal(0.0, noise, cubes["r"].shape)
    observed = MockDataset(cubes, data.manifest, uncertainty={b: np.full(cubes["r"].shape, noise) for b in data.names})
    t = make_tiny_translator()
    pixels = {}
    for footprint in ("target", "detection"):
        cal = t.calibrate(observed, indices=range(6), configurations=("plain",), footprint=footprint)
        pixels[footprint] = cal.card.calibration["plain"]["n_pixels"]
    assert pixels["detection"] > 1.5 * pixels["target"]
    fitted_on = cal.card.calibration["plain"]["fitted_on"]
    assert fitted_on.endswith("residuals in the galaxy detected in a coadd of its bands")
    with pytest.raises(ValueError, match=r"footprint must be one of \('target', 'detection'\), got 'aperture'"):
        t.calibrate(observed, indices=range(6), footprint="aperture")


def test_calibration_detects_the_galaxy_on_the_noise_free_truth_and_the_inputs(make_tiny_translator):
    # A survey-layer data set holds the observed (noisy) target and its noise-free truth; the residuals are
    # measured against the truth in the footprint compare() measures in: the truth coadded with the inputs.
    from bandsynth.datasets.mock import MockDataset, make_dataset
    from bandsynth.morphology import detection_footprint

    data = make_dataset(4, seed=5, bands=["NUV", "Ks", "r"], size=48)
    truth = {b: np.asarray(data.cube(b)) for b in data.names}
    observed = dict(truth, r=truth["r"] + np.random.default_rng(1).normal(0.0, 0.05, truth["r"].shape))
    survey_like = MockDataset(observed, data.manifest, truth=truth)
    calibrated = make_tiny_translator().calibrate(survey_like, indices=range(4), configurations=("plain",))

    def pixels(r_band):
        footprints = [detection_footprint([r_band[i], truth["NUV"][i], truth["Ks"][i]]) for i in range(4)]
        return sum(int(f.sum()) for f in footprints if f is not None)

    assert calibrated.card.calibration["plain"]["n_pixels"] == pixels(truth["r"]) != pixels(observed["r"])


def _footprint_nll(translator, data, indices):
    """Mean over galaxies of the Gaussian NLL of the true r image in its footprint, under the model's raw σ."""
    import torch

    from bandsynth.morphology import segment
    from bandsynth.nn.losses import gaussian_nll

    values = []
    for i in indices:
        stack = data.stack(i)
        truth = np.asarray(stack["r"].data, dtype=np.float32)
        seg = segment(truth.astype(np.float64))
        x, _, _ = translator.scale_inputs(stack.select(["NUV", "Ks"]))
        with torch.no_grad():
            out = translator.model(torch.as_tensor(x[None]))
            inside = torch.as_tensor(seg.segmap.data == seg.label, dtype=torch.float32)[None, None]
            target = translator.model.scale_output(torch.as_tensor(truth)[None, None])
            values.append(float(gaussian_nll(out.mean, out.log_scale, target, weight=inside)))
    return float(np.mean(values))


def test_fitting_the_sigma_head_again_changes_only_sigma_and_fits_the_new_galaxies_better(make_tiny_translator):
    import torch

    from bandsynth.datasets.mock import make_dataset
    from bandsynth.uncertainty.fitting import fit_sigma_head

    data = make_dataset(6, seed=8, bands=["NUV", "Ks", "r"], size=48, progress=False)
    t = make_tiny_translator().calibrate(data, indices=range(3), configurations=("plain",))
    refitted = fit_sigma_head(t, data, indices=range(6), epochs=15, lr=3e-3, fitted_on="six test galaxies")
    x = torch.as_tensor(t.scale_inputs(data.stack(0).select(["NUV", "Ks"]))[0][None])
    with torch.no_grad():
        old, new = t.model(x), refitted.model(x)
    assert torch.equal(old.mean, new.mean) and not torch.equal(old.log_scale, new.log_scale)
    before, after = _footprint_nll(t, data, range(6)), _footprint_nll(refitted, data, range(6))
    assert after < before - 0.3
    assert dict(refitted.card.calibration) == {} and dict(t.card.calibration) != {}  # calibrate afresh; t untouched
    record = refitted.card.training["sigma_head"]
    assert (record["n_galaxies"], record["fitted_on"], record["epochs"]) == (6, "six test galaxies", 15)
    assert record["nll_before"] == pytest.approx(before, abs=0.01) and record["nll_after"] == pytest.approx(after, abs=0.01)


def test_fitting_the_sigma_head_needs_a_head_galaxies_and_a_known_footprint(make_tiny_translator):
    from bandsynth import Translator
    from bandsynth.datasets.mock import make_dataset
    from bandsynth.nn.network import TranslationNet
    from bandsynth.uncertainty.fitting import fit_sigma_head

    data = make_dataset(2, seed=8, bands=["NUV", "Ks", "r"], size=48, progress=False)
    t = make_tiny_translator()
    with pytest.raises(ValueError, match=r"fit_sigma_head: no galaxies given \(indices is empty\)"):
        fit_sigma_head(t, data, indices=[])
    with pytest.raises(ValueError, match=r"footprint must be one of \('target', 'detection'\), got 'sky'"):
        fit_sigma_head(t, data, indices=range(2), footprint="sky")
    net = TranslationNet.build("tiny", softening=[0.002, 0.08], maximum=[0.12, 4.0], out_softening=0.03,
                               out_maximum=1.5, coefficients=[0.15, 0.15], scale_head=False)
    with pytest.raises(ValueError, match="model 'tiny_test' has no σ head to fit"):
        fit_sigma_head(Translator(net, t.card), data, indices=range(2))


def test_against_noisy_targets_the_sigma_head_learns_the_error_about_the_noise_free_sky(make_tiny_translator):
    import torch

    from bandsynth.datasets.mock import MockDataset, make_dataset
    from bandsynth.uncertainty.fitting import fit_sigma_head

    data = make_dataset(4, seed=8, bands=["NUV", "Ks", "r"], size=48, progress=False)
    cubes = {b: np.asarray(data.cube(b)) for b in data.names}
    rng = np.random.default_rng(1)
    cubes["r"] = cubes["r"] + rng.normal(0.0, 1.0, cubes["r"].shape)  # observed: the truth plus its sky noise
    unlabelled = MockDataset(cubes, data.manifest)
    labelled = MockDataset(cubes, data.manifest,
                           uncertainty={b: np.full(cubes[b].shape, 1.0 if b == "r" else 1e-3) for b in data.names})
    t = make_tiny_translator()
    options = dict(indices=range(4), epochs=40, lr=1e-2, footprint="detection")
    total, about_sky = fit_sigma_head(t, unlabelled, **options), fit_sigma_head(t, labelled, **options)
    x = torch.as_tensor(t.scale_inputs(data.stack(0).select(["NUV", "Ks"]))[0][None])
    with torch.no_grad():
        sigma_total, sigma_sky = (float(m.model(x).log_scale.exp().mean()) for m in (total, about_sky))
    assert sigma_sky < 0.8 * sigma_total  # the noise explains part of the residuals: sigma is what is left
    record = about_sky.card.training["sigma_head"]
    assert "own noise added to the variance" in record["loss"] and record["footprint"] == "detection"
    assert "true image" in total.card.training["sigma_head"]["loss"]


def test_fitting_the_sigma_head_of_an_any_band_model_fits_its_one_head_on_every_band_it_writes(
        tiny_any_band_model):
    import torch

    from bandsynth import Translator
    from bandsynth.datasets.mock import make_dataset
    from bandsynth.uncertainty.fitting import fit_sigma_head

    data = make_dataset(2, seed=8, bands=["NUV", "g", "r", "Ks"], size=48, progress=False)
    model = Translator.load(tiny_any_band_model[0])
    refitted = fit_sigma_head(model, data, indices=range(2), epochs=2, lr=3e-3)
    assert type(refitted) is type(model) and refitted.outputs == model.outputs
    record = refitted.card.training["sigma_head"]
    assert (record["n_galaxies"], record["n_images"]) == (2, 8)  # 2 galaxies x 4 bands, each from the other three
    assert dict(refitted.card.calibration) == {}
    old_task, new_task = (m.task(inputs=["g", "Ks"], output="r") for m in (model, refitted))
    x = torch.as_tensor(old_task.scale_inputs(data.stack(0).select(["g", "Ks"]))[0][None])
    with torch.no_grad():
        old, new = old_task.model(x), new_task.model(x)
    assert torch.equal(old.mean, new.mean) and not torch.equal(old.log_scale, new.log_scale)
    before, after = model.model.state_dict(), refitted.model.state_dict()
    kept = [k for k in before if "scale_head" not in k]
    assert kept and all(after[k].dtype == before[k].dtype and torch.equal(after[k], before[k]) for k in kept)
    assert before["moments"].dtype == torch.float64  # the colour models' moments stay in double precision
    chosen = fit_sigma_head(model, data, indices=range(2), epochs=1, requests=[(["g", "Ks"], "r"), (["NUV"], "g")])
    assert (chosen.card.training["sigma_head"]["n_images"], chosen.card.training["sigma_head"]["n_requests"]) == (4, 2)
    with pytest.raises(ValueError, match=r"fit_sigma_head: no requests given \(requests is empty\)"):
        fit_sigma_head(model, data, indices=range(2), requests=[])
    task = model.task(inputs=["NUV", "Ks"], output="r")  # one request fits the shared head on that request alone
    assert fit_sigma_head(task, data, indices=range(2), epochs=2).card.training["sigma_head"]["n_images"] == 2
    with pytest.raises(ValueError, match="requests are for an any-band model; 'tiny_any' has one mapping"):
        fit_sigma_head(task, data, indices=range(2), requests=[(["NUV"], "r")])
