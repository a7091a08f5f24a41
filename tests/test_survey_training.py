"""Training and scoring on survey-layer data sets: noisy, masked inputs; noise-free targets.

A data set of the survey layer (``make_dataset(..., survey=...)``) holds the observed images
(noise, sky residuals, masked pixels) and the noise-free truth on the same grid.  A model
reads the observed images with masked pixels filled as `Translator.predict` fills them,
and is trained, calibrated and scored against the truth.
"""

import numpy as np
import pytest
import torch

from bandsynth import Translator
from bandsynth.baseline import fit_linear_colour
from bandsynth.datasets import make_dataset, open_dataset, write_dataset
from bandsynth.datasets.base import unusable_pixels
from bandsynth.datasets.store import write_mock_dataset
from bandsynth.datasets.torch_data import DIHEDRAL_OPS, BandPairDataset, fit_scalings_for, gather_cubes
from bandsynth.evaluation import card_dataset, input_array, target_images
from bandsynth.inputs import fill_bad_pixels
from bandsynth.nn.losses import BandLoss

BANDS = ["NUV", "Ks", "r"]
SPLITS = (0.5, 0.25, 0.25)


@pytest.fixture(scope="module")
def survey_set():
    return make_dataset(8, seed=2, survey="galex_sdss_2mass", bands=BANDS, size=24, pixel_scale=1.0,
                        split_fractions=SPLITS)


def _masked_image(data, band):
    """Index of an image of ``band`` with a masked pixel."""
    masked = np.flatnonzero(data.mask_cube(band).reshape(len(data), -1).any(axis=1))
    assert masked.size, f"no image of {band} has a masked pixel"
    return int(masked[0])


def test_inputs_are_observed_and_filled_targets_are_the_truth(survey_set):
    ds = survey_set
    pairs = BandPairDataset(ds, inputs=["NUV", "Ks"], target="r", split=None)
    y = pairs.scalings["r"].forward(ds.truth_cube("r"))
    assert np.allclose(pairs.y[:, 0], y, atol=1e-5)
    assert not np.allclose(pairs.y[:, 0], pairs.scalings["r"].forward(ds.cube("r")), atol=1e-3)
    i = _masked_image(ds, "NUV")
    bad = ds.mask_cube("NUV")[i]
    filled = fill_bad_pixels(ds.cube("NUV")[i].astype(np.float64), bad)
    assert np.allclose(pairs.x[i, 0], pairs.scalings["NUV"].forward(filled), atol=1e-5)
    assert np.allclose(ds.input_cube("NUV")[i], filled, atol=1e-6)
    # the good pixels are the observed ones, untouched
    assert np.array_equal(ds.input_cube("NUV")[i][~bad], ds.cube("NUV")[i][~bad])
    # an ideal-mode data set has no truth: its targets are its images
    ideal = make_dataset(3, seed=0, bands=["g", "r"], size=16)
    assert not ideal.has_truth and ideal.target_cube("r") is ideal.cube("r") and ideal.input_cube("g") is ideal.cube("g")


def test_scalings_and_colour_model_are_fitted_on_the_truth(survey_set):
    ds = survey_set
    train = ds.indices("train")
    x = np.stack([ds.input_cube(b)[train].ravel() for b in ("NUV", "Ks")], 1).astype(np.float64)
    y = ds.truth_cube("r")[train].ravel().astype(np.float64)
    # fitted without the pixels masked in an input (there the model reads filled values)
    usable = ~(ds.mask_cube("NUV") | ds.mask_cube("Ks"))[train].ravel()
    expected, *_ = np.linalg.lstsq(x[usable], y[usable], rcond=None)
    assert np.allclose(fit_linear_colour(ds, ["NUV", "Ks"], "r"), expected, rtol=1e-6)
    everything, *_ = np.linalg.lstsq(x, y, rcond=None)
    assert not np.allclose(expected, everything, rtol=1e-3)  # the masks matter in this set
    truth_only = fit_scalings_for(ds, ["NUV", "Ks"], "r")
    cubes = gather_cubes(ds, ["r"], train, kind="target")
    assert np.array_equal(cubes["r"], ds.truth_cube("r")[train])
    assert truth_only["r"].maximum > 0
    with pytest.raises(ValueError, match="kind must be 'observed', 'input' or 'target', got 'truth'"):
        gather_cubes(ds, ["r"], kind="truth")


def test_masked_input_pixels_have_no_weight_in_training(survey_set):
    ds = survey_set
    bad = np.asarray(ds.mask_cube("NUV"), bool) | np.asarray(ds.mask_cube("Ks"), bool)
    assert np.array_equal(unusable_pixels(ds, ["NUV", "Ks"], "r"), bad)  # truth: the target's own mask is moot
    pairs = BandPairDataset(ds, inputs=["NUV", "Ks"], target="r", split=None)
    x, y, weight = pairs[0]
    assert np.array_equal(weight[0].numpy() == 0, bad[0])
    # cropped and turned with the same draw as x and y
    augmented = BandPairDataset(ds, inputs=["NUV", "Ks"], target="r", split=None, crop_size=16, augment=True)
    i = _masked_image(ds, "NUV")
    x, y, weight = augmented[i]
    plain = BandPairDataset(ds, inputs=["NUV", "Ks"], target="r", split=None)
    oy, ox, op = augmented.transform(i)
    for a, b in ((x, plain.x[i]), (weight, plain.weight[i])):
        window = b[:, oy:oy + 16, ox:ox + 16]
        k, flip = DIHEDRAL_OPS[op]
        window = window.transpose(0, 2, 1) if flip else window
        assert np.array_equal(a.numpy(), np.rot90(window, k, axes=(1, 2)))
    # an ideal-mode set has no masks: pairs as before
    ideal = make_dataset(3, seed=0, bands=["g", "r"], size=16)
    assert unusable_pixels(ideal, ["g"], "r") is None and len(BandPairDataset(ideal, inputs=["g"], target="r")[0]) == 2


def test_the_photometric_loss_term_leaves_weightless_pixels_out():
    loss = BandLoss(flux=lambda x: x, flux_weight=1.0)
    target = torch.full((1, 1, 8, 8), 0.5)
    pred = target.clone()
    pred[0, 0, 2, 3] = 2.5  # a filled star core: far off
    weight = torch.ones_like(target)
    assert float(loss.photometric_error(pred, target)) > 0.05
    weight[0, 0, 2, 3] = 0.0
    assert float(loss.photometric_error(pred, target, weight)) == 0.0


def test_stacks_carry_masks_and_the_truth(survey_set):
    ds = survey_set
    i = _masked_image(ds, "NUV")
    observed, truth = ds.stack(i), ds.stack(i, truth=True)
    assert np.array_equal(observed["NUV"].mask, ds.mask_cube("NUV")[i])
    assert np.array_equal(truth["r"].data, ds.truth_cube("r")[i])
    assert truth["r"].mask is None and truth["r"].uncertainty is None
    assert [t.data for t in target_images(ds, [i], "r")][0] is not None
    assert np.array_equal(target_images(ds, [i], "r")[0].data, ds.truth_cube("r")[i])
    assert np.allclose(input_array(observed["NUV"]), ds.input_cube("NUV")[i])


def test_the_store_keeps_truth_and_masks(tmp_path, survey_set):
    written = write_dataset(survey_set, tmp_path / "copy")
    rendered = write_mock_dataset(tmp_path / "direct", 8, seed=2, survey="galex_sdss_2mass", bands=BANDS, size=24,
                                  pixel_scale=1.0, split_fractions=SPLITS, progress=False)
    for ds in (written, rendered, open_dataset(tmp_path / "direct")):
        assert ds.has_truth and ds.info["survey"] == "galex_sdss_2mass"
        assert np.array_equal(ds.truth_cube("r"), survey_set.truth_cube("r"))
        assert np.array_equal(ds.mask_cube("NUV").astype(bool), survey_set.mask_cube("NUV"))
        assert np.array_equal(ds.cube("Ks"), survey_set.cube("Ks"))
        assert np.allclose(ds.input_cube("NUV"), survey_set.input_cube("NUV"))
    plain = write_mock_dataset(tmp_path / "ideal", 2, bands=["g"], size=16, progress=False)
    assert not plain.has_truth and plain.mask_cube("g") is None
    with pytest.raises(ValueError, match="has no noise-free truth of band 'g'; make the data set with survey="):
        plain.truth_cube("g")


def test_a_model_trained_on_the_survey_layer_records_it_and_is_scored_against_the_truth(survey_set):
    ds = survey_set
    model = Translator.fit(ds, inputs=["NUV", "Ks"], output="r", preset="tiny", epochs=1, batch_size=2,
                           crop_size=16, progress=False, device="cpu")
    card = model.card
    info = card.training["data_info"]
    assert info["survey"] == "galex_sdss_2mass" and info["pixel_scale"] == 1.0 and info["size"] == 24
    assert tuple(info["split_fractions"]) == SPLITS
    assert card.training["target"] == "noise-free truth (survey layer)"
    assert card.pixel_scale == 1.0 and card.mode == "survey"
    assert card.psf_fwhm == {"NUV": 5.3, "Ks": 2.9, "r": 1.3}
    assert set(card.calibration) == {"plain", "tta", "mc", "tta+mc"}
    again = card_dataset(card, progress=False)
    assert again.has_truth and np.array_equal(again.truth_cube("r"), ds.truth_cube("r"))
    assert np.array_equal(again.indices("test"), ds.indices("test"))
    result = model.evaluate(ds, progress=False, n_examples=1)
    (test,) = ds.indices("test")[:1]
    assert np.array_equal(result.examples[0]["truth"], ds.truth_cube("r")[test])
    assert result.row("model")["n_galaxies"] == len(ds.indices("test"))


def test_a_magnitude_range_for_the_survey_layer(tmp_path):
    ds = make_dataset(4, seed=1, survey="galex_sdss_2mass", bands=["NUV", "r"], size=16, pixel_scale=1.0,
                      r_mag_range=(14.0, 16.0))
    assert np.all((ds.manifest["r_mag"] >= 14.0) & (ds.manifest["r_mag"] <= 16.0))
    assert ds.info["r_mag_range"] == [14.0, 16.0]
    stored = write_mock_dataset(tmp_path / "bright", 4, seed=1, survey="galex_sdss_2mass", bands=["NUV", "r"],
                                size=16, pixel_scale=1.0, r_mag_range=(14.0, 16.0), progress=False)
    assert np.array_equal(stored.truth_cube("r"), ds.truth_cube("r"))


@pytest.mark.parametrize("options, match", [
    (dict(r_mag_range=(18.0, 15.0)), r"r_mag_range must be two finite r magnitudes with bright < faint, got \(18.0"),
    (dict(r_mag_range="bright"), "r_mag_range must be two r magnitudes"),
    (dict(r_mag_range=(14, 18), survey=None), "r_mag_range sets the magnitudes of the survey layer; give survey="),
])
def test_magnitude_range_errors(options, match):
    with pytest.raises(ValueError, match=match):
        make_dataset(1, **{"survey": "galex_sdss_2mass", "bands": ["r"], "size": 16, **options})
