"""Tests of bandsynth.metrics: external references (scikit-image, scipy) and bad input."""

import dataclasses

import astropy.units as u
import numpy as np
import pytest
import torch
from astropy.nddata import (CCDData, InverseVariance, NDData, StdDevUncertainty, UnknownUncertainty,
                            VarianceUncertainty)
from astropy.table import QTable, Table
from astropy.utils.exceptions import AstropyUserWarning
from scipy.ndimage import gaussian_filter
from scipy.stats import wasserstein_distance
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bandsynth.metrics import (
    ComparisonReport,
    calibration,
    colour_fidelity,
    compare,
    footprint_z_scores,
    evaluate_pairs,
    global_limits,
    mae,
    photometric_error,
    psnr,
    ssim,
    ssim_gain,
    summarize,
    wasserstein1,
)
from bandsynth.scaling import AsinhScaling
from bandsynth.units import to_unit


def galaxy(size=64, *, scale=5.0, amp=10.0, noise=0.0, seed=0, dx=0.0):
    """A smooth exponential galaxy with a clump, optionally noisy."""
    y, x = np.mgrid[:size, :size].astype(float)
    c = size / 2 + dx
    img = amp * np.exp(-np.hypot(x - c, (y - c) * 1.3) / scale)
    img += 0.3 * amp * np.exp(-((x - c - 6) ** 2 + (y - c - 4) ** 2) / 4.0)
    if noise:
        img += np.random.default_rng(seed).normal(0, noise, img.shape)
    return img


@pytest.fixture
def smooth_pair():
    rng = np.random.default_rng(42)
    truth = gaussian_filter(rng.random((80, 96)), 2)
    pred = truth + gaussian_filter(rng.normal(0, 0.05, truth.shape), 1)
    return pred, truth


# ---------------------------------------------------------------- pixel metrics


@pytest.mark.parametrize("data_range", [1.0, 0.37, 5.0])
def test_ssim_matches_scikit_image(smooth_pair, data_range):
    pred, truth = smooth_pair
    ref = structural_similarity(pred, truth, data_range=data_range, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)  # fmt: skip
    assert ssim(pred, truth, data_range=data_range) == pytest.approx(ref, abs=1e-12)
    value, smap = ssim(pred, truth, data_range=data_range, full=True)
    assert value == pytest.approx(ref, abs=1e-12) and smap.shape == truth.shape


def test_psnr_and_mae_match_references(smooth_pair):
    pred, truth = smooth_pair
    ref = peak_signal_noise_ratio(truth, pred, data_range=1.0)
    assert psnr(pred, truth, data_range=1.0) == pytest.approx(ref, abs=1e-9)
    assert mae(pred, truth) == pytest.approx(np.mean(np.abs(pred - truth)), rel=1e-14)
    assert psnr(truth, truth, data_range=1.0) == np.inf


def test_pixel_metrics_exclude_masked_and_nan_pixels_with_warning(smooth_pair):
    pred, truth = smooth_pair
    pred = pred.copy()
    pred[5, 7] = np.nan
    with pytest.warns(AstropyUserWarning, match="1 masked or non-finite pixel"):
        m = mae(pred, truth)
    good = np.isfinite(pred)
    assert m == pytest.approx(np.mean(np.abs(pred[good] - truth[good])))
    mask = np.zeros(truth.shape, bool)
    mask[:10] = True
    with pytest.warns(AstropyUserWarning):
        assert np.isfinite(ssim(pred, truth, data_range=1.0, mask=mask))


@pytest.mark.parametrize("masked", ["every other row", "a 10 x 10 patch"])
def test_masking_pixels_does_not_raise_ssim(masked):
    # Masked pixels were zeros in both images, whose agreement raised the score of the pixels beside them
    # (every other row masked: 0.58 for an image of 0.36).
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:64, :64]
    truth = np.exp(-np.hypot(x - 32, y - 32) / 6)
    pred = truth + rng.normal(0, 0.05, truth.shape)
    mask = np.zeros(truth.shape, bool)
    if masked == "every other row":
        mask[::2] = True
    else:
        mask[20:30, 20:30] = True
    whole = ssim(pred, truth, data_range=1.0)
    with pytest.warns(AstropyUserWarning, match="masked or non-finite"):
        assert ssim(pred, truth, data_range=1.0, mask=mask) == pytest.approx(whole, abs=0.015)


def test_pixel_metric_errors(smooth_pair):
    pred, truth = smooth_pair
    with pytest.raises(ValueError, match=r"prediction has shape \(80, 96\) but truth has shape \(10, 10\)"):
        mae(pred, np.zeros((10, 10)))
    with pytest.raises(ValueError, match="data_range must be finite and > 0"):
        psnr(pred, truth, data_range=0.0)
    with pytest.raises(TypeError, match="data_range must be a number"):
        ssim(pred, truth, data_range="1")
    with pytest.raises(ValueError, match="too small"):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)), data_range=1.0)


def test_pixel_metrics_honour_the_images_own_masks_and_units(smooth_pair):
    # np.asarray dropped a masked array's or NDData's mask, and NDData raised "float() argument must be ...":
    # 16 masked pixels 10 too bright took the MAE from 0 to 0.039 and SSIM from 1 to 0.95.
    pred, truth = smooth_pair
    bad = np.zeros(truth.shape, bool)
    bad[30:34, 30:34] = True
    spoilt = np.where(bad, truth + 10.0, truth)
    for prediction in (np.ma.array(spoilt, mask=bad), NDData(spoilt, mask=bad)):
        with pytest.warns(AstropyUserWarning, match="16 masked or non-finite pixel"):
            assert mae(prediction, truth) == 0.0
            assert ssim(prediction, truth, data_range=1.0) == pytest.approx(1.0, abs=1e-12)
            assert psnr(prediction, NDData(truth), data_range=1.0) == np.inf
        assert photometric_error(prediction, 10 * truth).total == pytest.approx(2.5, abs=1e-6)
    # a truth in another flux unit is converted to the prediction's, not compared as numbers
    in_jy = truth * 3.631e-6 * u.Jy  # 1 nanomaggy = 3.631 microjansky
    assert mae(truth * u.nmgy, in_jy) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match=r"truth is in mag\(AB\) and prediction in nmgy: give both in one flux unit"):
        mae(truth * u.nmgy, np.ones(truth.shape) * u.ABmag)
    with pytest.raises(TypeError, match="truth must be an array, masked array, Quantity or NDData of numbers, got str"):
        mae(pred, "truth.fits")
    with pytest.warns(AstropyUserWarning, match="truth is in Jy and the other image has no unit: compared as numbers"):
        mae(truth, in_jy)
    # astropy's Masked arrays keep their masks; a torch tensor that requires grad is read
    from astropy.utils.masked import Masked

    with pytest.warns(AstropyUserWarning, match="16 masked or non-finite pixel"):
        assert mae(Masked(spoilt, mask=bad), truth) == 0.0
    assert mae(torch.tensor(truth, requires_grad=True), truth) == 0.0


def test_ssim_gain_is_the_thesis_definition(smooth_pair):
    pred, truth = smooth_pair
    other = np.flipud(truth)
    gains = ssim_gain(pred, truth, {"g": other, "z": truth * 0.9}, data_range=1.0)
    base = ssim(pred, truth, data_range=1.0)
    assert gains["g"] == pytest.approx(base - ssim(other, truth, data_range=1.0))
    assert gains["g"] > 0 > gains["z"] - 1  # an unrelated input gains, a near-copy barely
    with pytest.raises(TypeError, match="mapping"):
        ssim_gain(pred, truth, [other], data_range=1.0)


# ---------------------------------------------------------------- Wasserstein-1


def test_w1_matches_scipy_after_global_min_max():
    rng = np.random.default_rng(3)
    u, v = rng.normal(0.5, 0.05, 300), rng.normal(0.55, 0.08, 250)
    lo, hi = min(u.min(), v.min()), max(u.max(), v.max())
    assert wasserstein1(u, v) == pytest.approx(wasserstein_distance(u, v) / (hi - lo), rel=1e-12)
    assert wasserstein1(u, v) == pytest.approx(
        wasserstein_distance((u - lo) / (hi - lo), (v - lo) / (hi - lo)), rel=1e-12
    )
    assert wasserstein1(u, u) == 0.0
    assert wasserstein1(np.zeros(10), np.ones(10)) == 1.0  # maximally disjoint
    assert 0 <= wasserstein1(u, v) <= 1


def test_w1_with_shared_limits_and_bad_input():
    u, v = [0.4, 0.5], [0.5, 0.6]
    limits = global_limits(u, v, [0.0, 1.0])  # e.g. a third model widens the range
    assert limits == (0.0, 1.0)
    assert wasserstein1(u, v, limits=limits) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="outside limits"):
        wasserstein1(u, v, limits=(0.45, 1.0))
    with pytest.raises(ValueError, match="no finite values"):
        wasserstein1([], v)
    with pytest.warns(AstropyUserWarning, match="1 non-finite value"):
        assert wasserstein1([0.4, np.nan, 0.5], [0.4, 0.5]) == 0.0
    with pytest.raises(TypeError, match="pair of numbers"):
        wasserstein1(u, v, limits=0.5)


# ---------------------------------------------------------------- photometry, calibration, colours


def test_photometric_error_recovers_a_flux_scaling():
    truth = galaxy(noise=0.01)
    pred = 1.1 * galaxy() + np.random.default_rng(9).normal(0, 0.01, truth.shape)
    err = photometric_error(pred, truth)
    assert err.total == pytest.approx(-2.5 * np.log10(1.1), abs=0.01)
    assert err.aperture == pytest.approx(-2.5 * np.log10(1.1), abs=0.01)
    assert err.flux_true > 0 and err.radius > 1 and err.note == ""


def test_photometric_error_leaves_a_deblended_neighbour_out_of_the_galaxys_flux():
    # a neighbour inside the Kron ellipse, predicted twice too bright: counted in both images, it made the galaxy
    # 0.07 mag too bright (photutils' own kron_flux leaves other sources' pixels out)
    y, x = np.mgrid[:128, :128]
    blob = lambda cx, s, a: a * np.exp(-((x - cx) ** 2 + (y - 63.5) ** 2) / (2 * s * s))  # noqa: E731
    noise = np.random.default_rng(0).normal(0, 0.05, (128, 128))
    truth, pred = (blob(63.5, 8, 10) + blob(81.5, 1.5, a) + noise for a in (20, 40))
    err = photometric_error(pred, truth, segmentation={"deblend": True, "contrast": 0.01})
    assert abs(err.total) < 1e-3 and abs(err.aperture) < 1e-3


def test_photometric_error_without_a_source_is_flagged():
    noise = np.random.default_rng(1).normal(0, 1, (64, 64))
    err = photometric_error(noise, noise, segmentation={"n_sigma": 50})
    assert np.isnan(err.total) and "no source" in err.note


def test_calibration_coverage_of_gaussian_errors():
    rng = np.random.default_rng(0)
    truth = np.zeros((300, 300))
    sigma = np.full(truth.shape, 0.5)
    cal = calibration(truth + rng.normal(0, 0.5, truth.shape), truth, sigma)
    assert cal.coverage[1] == pytest.approx(0.6827, abs=0.01)
    assert cal.coverage[2] == pytest.approx(0.9545, abs=0.005)
    assert cal.coverage[3] == pytest.approx(0.9973, abs=0.002)
    assert cal.z_std == pytest.approx(1.0, abs=0.02) and abs(cal.z_median) < 0.02
    over = calibration(truth + rng.normal(0, 1.0, truth.shape), truth, sigma)  # sigma too small
    assert over.coverage[1] < 0.45
    footprint = np.zeros(truth.shape, bool)
    footprint[:10, :10] = True
    assert calibration(truth, truth, sigma, footprint=footprint).n == 100
    with pytest.raises(ValueError, match=r"sigma has shape \(2, 2\)"):
        calibration(truth, truth, np.ones((2, 2)))
    # sigma as an astropy uncertainty: a variance raised "setting an array element with a sequence"
    noisy = truth + rng.normal(0, 0.5, truth.shape)
    stated = calibration(noisy, truth, StdDevUncertainty(sigma)).coverage[1]
    assert calibration(noisy, truth, VarianceUncertainty(sigma**2)).coverage[1] == stated
    assert calibration(noisy, truth, InverseVariance(sigma**-2.0)).coverage[1] == pytest.approx(stated, abs=1e-12)
    assert calibration(noisy, truth, UnknownUncertainty(sigma)).coverage[1] == stated  # NDData(uncertainty=array)


def test_coverage_against_an_observed_truth_adds_its_noise():
    # sigma states the error against the noise-free sky; an observed truth has noise of its own
    rng = np.random.default_rng(1)
    sky = galaxy(size=128)
    sigma, noise = np.full(sky.shape, 0.4), np.full(sky.shape, 0.3)
    pred = sky + rng.normal(0, 0.4, sky.shape)
    observed = sky + rng.normal(0, 0.3, sky.shape)
    assert calibration(pred, observed, sigma).coverage[1] < 0.6  # sigma alone looks too narrow
    cal = calibration(pred, observed, sigma, truth_sigma=noise)
    assert cal.coverage[1] == pytest.approx(0.6827, abs=0.02) and cal.z_std == pytest.approx(1.0, abs=0.03)
    with pytest.raises(ValueError, match=r"truth_sigma has shape \(2, 2\)"):
        calibration(pred, observed, sigma, truth_sigma=np.ones((2, 2)))
    # a truth in another unit: its noise (stated in the truth's unit or its own) converted with it
    jy = 3.631e-6
    for noise_in_jy in (noise * jy, noise * jy * u.Jy):
        assert calibration(pred * u.nmgy, observed * jy * u.Jy, sigma, truth_sigma=noise_in_jy).coverage == cal.coverage
    prediction = NDData(pred, uncertainty=StdDevUncertainty(sigma))
    truth = NDData(observed, uncertainty=StdDevUncertainty(noise))
    z = footprint_z_scores([prediction], [truth])
    assert np.mean(np.abs(z) <= 1) == pytest.approx(0.6827, abs=0.05)
    everywhere = footprint_z_scores([prediction, prediction], [truth, truth],
                                    footprints=[np.ones(sky.shape, bool), None])
    assert everywhere.size == sky.size  # a footprint given is used whole; None leaves its galaxy out
    # The truth's noise as a variance or an inverse variance (their .array was read as a standard deviation).
    for stated in (VarianceUncertainty(noise**2), InverseVariance(noise**-2.0)):
        np.testing.assert_allclose(footprint_z_scores([prediction], [NDData(observed, uncertainty=stated)]), z)
    # the truth's masked and non-finite pixels are no test of sigma (a masked saturated core gave |z| = 50)
    spoilt = observed.copy()
    spoilt[60:64, 60:64], spoilt[0] = 0.0, np.nan
    core = np.zeros(sky.shape, bool)
    core[60:64, 60:64] = True
    kept = footprint_z_scores([prediction], [NDData(spoilt, mask=core)], footprints=[np.ones(sky.shape, bool)])
    assert kept.size == sky.size - 16 - sky.shape[1] and np.isfinite(kept).all()
    with pytest.raises(ValueError, match=r"footprints has 1 entries, expected one per galaxy \(2\)"):
        footprint_z_scores([prediction, prediction], [truth, truth], footprints=[None])
    with_noise = compare(prediction, truth)
    assert with_noise.coverage_1sigma == pytest.approx(0.6827, abs=0.05)
    unstated = compare(prediction, observed)  # an array states no noise: the report says it looks noisy
    assert unstated.coverage_1sigma < 0.6
    assert any("the truth has no uncertainty, yet its pixels scatter by about 0.29" in n for n in unstated.notes)
    assert not any("no uncertainty" in n for n in (*with_noise.notes, *compare(prediction, sky).notes))


def test_colour_fidelity():
    truth = galaxy()
    g = 0.5 * galaxy(scale=4.0)
    g[:, :5] = -1.0  # no flux in g there: those pixels drop out
    res = colour_fidelity(truth * 10 ** (-0.4 * 0.2), truth, {"g": g, "z": 2 * truth})
    assert res["g"].median_abs_error == pytest.approx(0.2, abs=1e-9)
    assert res["g"].median_error == pytest.approx(0.2, abs=1e-9)  # too faint -> positive
    assert res["g"].n == truth.size - 5 * truth.shape[0] and res["z"].n == truth.size
    with pytest.raises(ValueError, match=r"input 'g' has shape \(3, 3\)"):
        colour_fidelity(truth, truth, {"g": np.ones((3, 3))})


# ---------------------------------------------------------------- compare()


def test_compare_raw_and_scaled_spaces():
    truth = galaxy(noise=0.02)
    pred = truth * 1.05 + np.random.default_rng(2).normal(0, 0.02, truth.shape)
    raw = compare(pred, truth)
    assert raw.space == "raw" and raw.data_range == pytest.approx(np.ptp(truth))
    assert raw.mae == pytest.approx(np.mean(np.abs(pred - truth)))
    scaling = AsinhScaling(softening=0.05)
    rep = compare(pred, truth, scaling=scaling, reference=10.0)
    sp, st = scaling.forward(pred, reference=10.0), scaling.forward(truth, reference=10.0)
    assert rep.space == "scaled" and rep.data_range == 1.0
    assert rep.mae == pytest.approx(np.mean(np.abs(sp - st)))
    ref = structural_similarity(sp, st, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)  # fmt: skip
    assert rep.ssim == pytest.approx(ref, abs=1e-12)
    assert rep.dmag_total == pytest.approx(-2.5 * np.log10(1.05), abs=0.01)
    assert np.isfinite(rep.gini_pred) and rep.gini_pred == pytest.approx(rep.gini_true, abs=0.03)


def test_compare_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"prediction has shape \(10, 10\) but truth has shape \(12, 12\)"):
        compare(np.zeros((10, 10)), np.zeros((12, 12)))
    with pytest.raises(ValueError, match=r"input 'g' has shape"):
        compare(np.zeros((64, 64)), galaxy(), inputs={"g": np.zeros((3, 3))})


def test_compare_refuses_a_truth_or_input_on_another_pixel_grid():
    # A cut-out of the truth 22 pixels off, of the prediction's shape, was compared pixel by pixel (-0.72 mag).
    from astropy.wcs import WCS

    def on_sky(image, crpix):
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval, wcs.wcs.crpix, wcs.wcs.cdelt = [150.0, 2.0], crpix, [-5e-5, 5e-5]
        return NDData(image, wcs=wcs, unit="nanomaggy")

    pred = on_sky(galaxy(), [32.5, 32.5])
    assert compare(pred, on_sky(galaxy(), [32.5, 32.5]), inputs={"g": on_sky(galaxy(), [32.5, 32.5])}).mae == 0
    with pytest.raises(ValueError, match=r"^truth is not on the prediction's pixel grid \(its WCS differs by up to "
                                         r"31.1 pixels\): put it on the prediction's grid first \(BandStack\."):
        compare(pred, on_sky(galaxy(), [32.5 + 22, 32.5 + 22]))
    with pytest.raises(ValueError, match=r"^input 'g' is not on the prediction's pixel grid \(its WCS differs by up "
                                         r"to 0\.5 pixels\)"):
        compare(pred, on_sky(galaxy(), [32.5, 32.5]), inputs={"g": on_sky(galaxy(), [33.0, 32.5])})


def test_compare_converts_the_truth_and_inputs_to_the_predictions_unit():

    from bandsynth.synthetic import SyntheticBand, make_provenance

    truth = galaxy(noise=0.05, seed=1)
    sb = SyntheticBand((0.95 * galaxy()).astype(np.float32), unit="nanomaggy", uncertainty=np.full(truth.shape, 0.07),
                       provenance=make_provenance("r", model="test"))
    g = 0.6 * galaxy(scale=4.5)
    sigma = np.full(truth.shape, 0.05)
    same = sb.compare(CCDData(truth, unit="nanomaggy", uncertainty=StdDevUncertainty(sigma)),
                      inputs={"g": CCDData(g, unit="nanomaggy")})
    to_jy = float(to_unit(1.0, "nanomaggy", "Jy"))  # 3.631e-6
    in_jy = sb.compare(CCDData(truth * to_jy, unit="Jy", uncertainty=StdDevUncertainty(sigma * to_jy)),
                       inputs={"g": CCDData(g * to_jy, unit="Jy")})
    assert in_jy.coverage_1sigma == pytest.approx(same.coverage_1sigma, abs=1e-6)
    assert in_jy.dmag_total == pytest.approx(same.dmag_total, abs=1e-6)  # was read as nanomaggies: -13.6 mag
    assert in_jy.colour_error["g"] == pytest.approx(same.colour_error["g"], abs=1e-6)
    to_flambda = float(to_unit(1.0, "nanomaggy", "erg / (s cm2 Angstrom)", band="r"))
    in_flambda = sb.compare(CCDData(truth * to_flambda, unit="erg / (s cm2 Angstrom)",
                                    uncertainty=StdDevUncertainty(sigma * to_flambda)), inputs={"g": g})
    assert in_flambda.dmag_total == pytest.approx(same.dmag_total, abs=1e-6)  # at r's effective wavelength
    from astropy.wcs import WCS

    from bandsynth.units import pixel_area

    wcs = WCS(naxis=2)
    wcs.wcs.ctype, wcs.wcs.cdelt = ["RA---TAN", "DEC--TAN"], [-0.262 / 3600, 0.262 / 3600]
    to_sb = float(to_unit(1.0, "nanomaggy", "MJy / sr", pixel_area=pixel_area(wcs)))
    in_sb = sb.compare(CCDData(truth * to_sb, unit="MJy / sr", wcs=wcs, uncertainty=StdDevUncertainty(sigma * to_sb)),
                       inputs={"g": g})
    assert in_sb.dmag_total == pytest.approx(same.dmag_total, abs=1e-6)  # with the truth's pixel area
    # scaling="provenance": a model's fixed scaling is in its own unit (nanomaggies); a prediction in Jy is
    # scaled in it, not read as nanomaggies (SSIM 0.99999 on any pair of images)
    prov = make_provenance("r", model="test", scaling={"method": "fixed asinh per band (no per-image statistic)",
                                                       "unit": "nanomaggy", "r": {"softening": 0.05, "maximum": 5.0}})
    scaled = {}
    for unit, factor in (("nanomaggy", 1.0), ("Jy", to_jy)):
        pred = SyntheticBand((0.95 * galaxy() * factor).astype(np.float32), unit=unit, provenance=prov)
        scaled[unit] = pred.compare(CCDData(truth * factor, unit=unit), scaling="provenance")
    assert scaled["Jy"].space == "scaled" and scaled["nanomaggy"].mae > 0.01
    for metric in ("mae", "ssim", "psnr"):
        assert getattr(scaled["Jy"], metric) == pytest.approx(getattr(scaled["nanomaggy"], metric), rel=1e-4)
    with pytest.raises(u.UnitConversionError, match="truth is in km, which cannot be converted to the prediction's "
                                                     "unit nmgy; give it in a flux unit"):
        sb.compare(CCDData(truth, unit="km"))
    with pytest.raises(u.UnitConversionError, match="input 'g' is in s"):
        sb.compare(truth, inputs={"g": CCDData(g, unit="s")})
    # what is missing, when it is not the unit: a pixel area, or a band's wavelength
    bare = NDData(truth, unit="nanomaggy")
    with pytest.raises(u.UnitConversionError, match=r"nmgy / arcsec2, .*; a surface brightness converts to a flux per "
                                                    r"pixel through the pixels' area: give either a WCS"):
        compare(bare, NDData(truth, unit=u.nmgy / u.arcsec**2))
    with pytest.raises(u.UnitConversionError, match="a flux per wavelength converts to one per frequency only at a "
                                                    "band's wavelength, and the prediction names no known band"):
        compare(bare, NDData(truth, unit=u.erg / u.s / u.cm**2 / u.AA))


def test_compare_full_report_with_synthetic_band():
    from bandsynth.synthetic import SyntheticBand, make_provenance

    truth = galaxy(noise=0.05, seed=1)
    sigma = np.full(truth.shape, 0.05 * np.sqrt(2))  # both images carry noise of 0.05
    pred_data = galaxy() + np.random.default_rng(5).normal(0, 0.05, truth.shape)
    scaling = {"reference_flux": 10.0, "r": {"softening": 0.05, "maximum": 1.0}}
    prov = make_provenance("r", model="test", scaling=scaling)
    sb = SyntheticBand(pred_data.astype(np.float32), unit="nanomaggy", uncertainty=sigma, provenance=prov)
    inputs = {"g": CCDData(0.6 * galaxy(scale=4.5), unit="nanomaggy"), "z": 1.4 * galaxy(scale=5.5)}
    rep = sb.compare(truth, inputs=inputs, scaling="provenance")
    assert isinstance(rep, ComparisonReport) and rep.space == "scaled"
    assert set(rep.ssim_gain) == {"g", "z"} and set(rep.colour_error) == {"g", "z"}
    assert rep.coverage_1sigma == pytest.approx(0.683, abs=0.05)
    worse = compare(sb.multiply(0.8), truth, inputs=inputs)
    assert 0 < rep.colour_error["g"] < worse.colour_error["g"]
    assert worse.colour_bias["g"] == pytest.approx(2.5 * np.log10(1 / 0.8), abs=0.05)
    assert rep.ok, rep.flags
    table = rep.to_table()
    assert isinstance(table, QTable) and len(table) == 1
    assert str(table["dmag_total"].unit) == "mag" and "ssim_gain_g" in table.colnames
    text = repr(rep)
    assert "SSIM gain" in text and "coverage 1σ" in text and "Gini" in text
    with pytest.raises(dataclasses.FrozenInstanceError):
        rep.mae = 0.0
    with pytest.raises(TypeError):
        rep.ssim_gain["g"] = 1.0


def test_compare_never_crashes_on_bad_data():
    noise = np.random.default_rng(0).normal(0, 1.0, (64, 64))
    rep = compare(noise, noise, segmentation={"n_sigma": 50})
    assert "no_source_truth" in rep.flags and np.isnan(rep.dmag_total)
    assert rep.mae == 0.0 and not rep.ok
    assert "calibration not computed" in " ".join(rep.notes)
    # A prediction with σ against a truth of no source (blank) was a TypeError.
    with_sigma = NDData(galaxy(), uncertainty=StdDevUncertainty(0.1 * galaxy() + 0.01))
    blank = compare(with_sigma, np.zeros(with_sigma.data.shape))
    assert "no_source_truth" in blank.flags and np.isnan(blank.dmag_total) and 0 < blank.coverage_1sigma < 1
    truth = galaxy()
    pred = truth.copy()
    pred[0:4, 0:4] = np.nan
    nd = NDData(pred, mask=np.zeros(pred.shape, bool))
    with pytest.warns(AstropyUserWarning, match="16 masked or non-finite pixel"):
        rep2 = compare(nd, truth)
    assert rep2.n_excluded == 16 and rep2.mae == 0.0
    with pytest.warns(AstropyUserWarning, match="1024 masked"):
        everything = compare(np.full((32, 32), np.nan), np.zeros((32, 32)))
    assert "no_valid_pixels" in everything.flags and np.isnan(everything.mae)
    with pytest.raises(ValueError, match="reference flux is needed"):
        compare(truth, truth, scaling=AsinhScaling())


def test_compare_reads_the_predicted_bands_image_of_a_file_of_several_bands(tmp_path):
    # A FITS path holding several bands' images is read from the predicted band's HDU (FILE[EXT] names one),
    # never from its first; a stack of observed bands given as inputs leaves the predicted band out.
    from astropy.io import fits

    from bandsynth import BandStack, SyntheticBand

    truth = galaxy(noise=0.01)
    other = 3 * galaxy(scale=2.0)
    hdus = [fits.PrimaryHDU()]
    for name, image in (("g", other), ("r", truth), ("i", 2 * truth)):
        hdus.append(fits.ImageHDU(image, fits.Header({"BUNIT": "nanomaggy"}), name=name))
    fits.HDUList(hdus).writeto(tmp_path / "stamp.fits")
    prediction = SyntheticBand(truth * 1.02, band="r", unit="nanomaggy")
    expected = compare(prediction, truth).dmag_total
    for path in (tmp_path / "stamp.fits", f"{tmp_path / 'stamp.fits'}[r]", f"{tmp_path / 'stamp.fits'}[2]"):
        assert compare(prediction, path).dmag_total == pytest.approx(expected, abs=1e-9)
    with pytest.warns(AstropyUserWarning, match=r"HDU 'g' of .* holds g, another filter, read as r as asked"):
        assert compare(prediction, f"{tmp_path / 'stamp.fits'}[g]").dmag_total != pytest.approx(expected, abs=0.1)
    stack = BandStack.from_fits(tmp_path / "stamp.fits")
    assert sorted(compare(prediction, path, inputs=stack).ssim_gain) == ["g", "i"]
    fits.HDUList([fits.PrimaryHDU(), hdus[1].copy()]).writeto(tmp_path / "g_only.fits")
    with pytest.raises(ValueError, match=r"the file holds no r image \(if an HDU holds it under another band's name, "
                                         r"name that HDU: '.*g_only\.fits\[EXTNAME\]'\)$"):
        compare(prediction, tmp_path / "g_only.fits")  # it advised hdu=, an argument compare has not
    # a truth in counts with its survey's zero point, as BandStack.from_fits reads one (it was refused)
    fits.PrimaryHDU(truth * 10 ** (0.4 * (30 - 22.5)), fits.Header({"BUNIT": "DN", "PHOTZP": 30.0})).writeto(
        tmp_path / "counts.fits")
    assert compare(prediction, tmp_path / "counts.fits").dmag_total == pytest.approx(expected, abs=1e-6)


def test_compare_reads_a_synthetic_bands_file_as_the_band_it_is(tmp_path):
    # Read as a bare image, a file of r lost its band, unit and stated errors: the truth came from the first
    # band of a file of several (g here), a truth in Jy was read as nanomaggies, 2 sigma was taken as 2.
    from astropy.io import fits

    from bandsynth.synthetic import SyntheticBand, make_provenance

    truth = galaxy(noise=0.01)
    hdus = [fits.PrimaryHDU()]
    for name, image in (("g", 3 * galaxy(scale=2.0)), ("r", truth)):
        hdus.append(fits.ImageHDU(image, fits.Header({"BUNIT": "nanomaggy"}), name=name))
    fits.HDUList(hdus).writeto(tmp_path / "stamp.fits")
    prov = make_provenance("r", model="test")
    prov["uncertainty"] = {"distribution": "laplace", "shape": 1.0, "half_width_2sigma": 2.69}
    sb = SyntheticBand((1.03 * truth).astype(np.float32), unit="nanomaggy", uncertainty=np.full(truth.shape, 0.05),
                       provenance=prov)
    sb.write(tmp_path / "r.fits")
    expected = sb.compare(tmp_path / "stamp.fits")
    in_jy = CCDData(truth * float(to_unit(1.0, "nanomaggy", "Jy")), unit="Jy")
    for prediction in (tmp_path / "r.fits", str(tmp_path / "r.fits"), CCDData.read(tmp_path / "r.fits")):
        report = compare(prediction, tmp_path / "stamp.fits")
        assert report.dmag_total == pytest.approx(expected.dmag_total, abs=1e-6)
        assert report.coverage_2sigma == pytest.approx(expected.coverage_2sigma, abs=1e-6)  # at 2.69 sigma
        assert compare(prediction, in_jy).dmag_total == pytest.approx(expected.dmag_total, abs=1e-3)


def test_compare_reads_fits_files(tmp_path):
    from astropy.io import fits

    truth = galaxy(noise=0.01)
    pred = truth * 1.02
    fits.HDUList([fits.PrimaryHDU(pred), fits.ImageHDU(np.full(truth.shape, 0.01), name="UNCERT")]).writeto(
        tmp_path / "pred.fits"
    )
    fits.writeto(tmp_path / "truth.fits", truth)
    rep = compare(str(tmp_path / "pred.fits"), tmp_path / "truth.fits")
    assert rep.mae == pytest.approx(np.mean(np.abs(pred - truth)))
    assert np.isfinite(rep.coverage_1sigma)  # the UNCERT extension was read as the uncertainty
    with pytest.raises(ValueError, match="does not exist"):
        compare(str(tmp_path / "missing.fits"), truth)


def test_compare_on_a_mock_galaxy_with_bandstack_inputs():
    mock = pytest.importorskip("bandsynth.datasets.mock")
    stack = mock.make_galaxy(7, mode="survey", bands=["NUV", "r", "Ks"])
    truth = stack["r"]
    assert truth.uncertainty is not None
    pred = CCDData(truth.data * 1.03, unit=truth.unit, uncertainty=StdDevUncertainty(truth.uncertainty.array))
    rep = compare(pred, truth, inputs=stack.select(["NUV", "Ks"]))
    assert set(rep.ssim_gain) == {"NUV", "Ks"}
    assert rep.dmag_total == pytest.approx(-2.5 * np.log10(1.03), abs=0.02)
    assert rep.coverage_3sigma > 0.95 and np.isfinite(rep.gini_true)


def test_compare_measures_a_clumpy_band_in_the_galaxy_detected_on_its_bands():
    """A far-ultraviolet-like truth of knots below the noise between them: its central knot alone
    is not the galaxy; detected on a coadd with the inputs, the photometry holds the whole of it."""
    rng = np.random.default_rng(5)
    y, x = np.mgrid[:96, :96]
    ring = sum(np.exp(-np.hypot(x - 48 - 22 * np.cos(a), y - 48 - 22 * np.sin(a)) ** 2 / 3)
               for a in np.linspace(0, 2 * np.pi, 7)[:-1])
    core = 0.2 * np.exp(-np.hypot(x - 48, y - 48) ** 2 / 4)
    knots = ring + core
    truth = knots + rng.normal(0, 0.02, x.shape)
    optical = {"r": 50 * np.exp(-np.hypot(x - 48, y - 48) / 9) + rng.normal(0, 0.05, x.shape)}
    prediction = 1.2 * ring + core  # the knots 20 % too bright, the core right
    whole = -2.5 * np.log10(prediction.sum() / knots.sum())
    detected = compare(prediction, truth, inputs=optical)
    alone = compare(prediction, truth, inputs=optical, footprint="target")
    assert detected.flux_true > 0.9 * knots.sum() and alone.flux_true < 0.25 * knots.sum()
    assert detected.dmag_total == pytest.approx(whole, abs=0.04) and abs(alone.dmag_total - whole) > 0.1
    given = compare(prediction, truth, footprint=np.hypot(x - 48, y - 48) < 4)  # the user's pixels: the core
    assert given.flux_true < 0.25 * knots.sum()
    with pytest.raises(ValueError, match="footprint must be 'detection', 'target' or a bool array, got 'all'"):
        compare(prediction, truth, footprint="all")


# ---------------------------------------------------------------- many galaxies


def test_evaluate_pairs_and_summarize():
    truths = [galaxy(seed=i, noise=0.02, scale=4 + i, dx=i) for i in range(4)]
    preds = [t * (1 + 0.02 * (i + 1)) for i, t in enumerate(truths)]
    preds.append(np.zeros((10, 10)))  # wrong shape: a failed row, not an exception
    truths.append(truths[0])
    with pytest.warns(AstropyUserWarning, match="1 of 5 galaxies could not be evaluated"):
        table = evaluate_pairs(preds, truths, inputs=[{"g": t * 0.5} for t in truths], progress=False)
    assert isinstance(table, Table) and len(table) == 5
    assert list(table["index"]) == [0, 1, 2, 3, 4]
    assert table["error"][4].startswith("ValueError: prediction has shape (10, 10)")
    assert all(e == "" for e in table["error"][:4]) and np.isnan(table["mae"][4])
    summary = summarize(table)
    assert len(summary) == 1 and summary["n_galaxies"][0] == 4 and summary["n_failed"][0] == 1
    assert summary["mae"][0] == pytest.approx(np.mean(table["mae"][:4]))
    assert summary["gini_w1"][0] == pytest.approx(wasserstein1(table["gini_pred"][:4], table["gini_true"][:4]))
    assert 0 <= summary["m20_w1"][0] <= 1 and "ssim_gain_g" in summary.colnames
    n_flagged = np.sum((table["morph_flag_pred"][:4] >= 2) | (table["morph_flag_true"][:4] >= 2))
    assert summary["n_morph_flagged"][0] == n_flagged
    assert summary["dmag_total"][0] == pytest.approx(np.median(table["dmag_total"][:4]))  # the bias
    # and the typical error: a summary of errors of both signs reads far smaller than either as a signed median
    table["dmag_total"][:4] = [-0.1, 0.1, -0.12, 0.08]
    summary = summarize(table)
    assert summary["dmag_total"][0] == pytest.approx(-0.01) and summary["dmag_total_abs"][0] == pytest.approx(0.1)
    wide = summarize(table, limits={"gini": (0.0, 1.0), "m20": (-3.0, 0.0)})
    assert wide["gini_w1"][0] <= summary["gini_w1"][0] + 1e-12


def test_empty_data_sets_are_clear_errors():
    with pytest.raises(ValueError, match="empty data set"):
        evaluate_pairs([], [], progress=False)
    with pytest.raises(ValueError, match="2 predictions but 1 truths"):
        evaluate_pairs([np.zeros((4, 4))] * 2, [np.zeros((4, 4))], progress=False)
    with pytest.raises(ValueError, match="empty data set"):
        summarize(Table({"mae": [], "error": []}))
    with pytest.raises(ValueError, match="all 1 rows failed"):
        summarize(Table({"mae": [np.nan], "error": ["ValueError: x"]}))
