"""Tests of bandsynth.morphology against statmorph and photutils."""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import statmorph
from astropy.io import fits
from astropy.modeling.models import Sersic2D
from astropy.nddata import NDData, StdDevUncertainty
from astropy.utils.exceptions import AstropyUserWarning

from bandsynth.morphology import (
    GiniM20,
    MorphologyResult,
    detection_footprint,
    gini_m20,
    measure_morphology,
    segment,
)
from bandsynth.morphology.fast_gini_m20 import _circle_weights, _EllipseOverlap, _rotate180
from bandsynth.morphology.measure import _lean_class

# The values statmorph's own test suite (statmorph/tests/test_statmorph.py,
# TestSourceMorphology) asserts for the galaxy it ships in tests/data/slice.fits.
STATMORPH_REFERENCE = {
    "gini": 0.38993180299621,
    "m20": -1.54448930789228,
    "concentration": 2.19100140632153,
    "asymmetry": 0.00377345808887,
    "smoothness": 0.00430880839402,
}
SLICE = Path(statmorph.__file__).parent / "tests" / "data" / "slice.fits"


@pytest.fixture(scope="module")
def slice_data():
    if not SLICE.exists():
        pytest.skip("statmorph's test image slice.fits is not installed")
    with fits.open(SLICE) as hdul:
        return hdul[0].data.copy(), hdul[1].data.copy(), hdul[2].data.astype(bool)


def sersic_clumps(seed, size=128, noise=0.01):
    """A noisy Sérsic bulge + exponential disk + Gaussian star-forming clumps."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(float)
    c = size / 2 + rng.uniform(-3, 3, 2)
    img = Sersic2D(amplitude=1.0, r_eff=rng.uniform(3, 8), n=rng.uniform(1, 4), x_0=c[0], y_0=c[1],
                   ellip=rng.uniform(0, 0.6), theta=rng.uniform(0, np.pi))(x, y)  # fmt: skip
    img += Sersic2D(amplitude=0.3, r_eff=rng.uniform(8, 20), n=1.0, x_0=c[0], y_0=c[1],
                    ellip=rng.uniform(0, 0.6), theta=rng.uniform(0, np.pi))(x, y)  # fmt: skip
    for _ in range(rng.integers(1, 6)):
        r, phi = rng.uniform(4, 20), rng.uniform(0, 2 * np.pi)
        xc, yc = c[0] + r * np.cos(phi), c[1] + r * np.sin(phi)
        img += rng.uniform(0.2, 1.0) * np.exp(-((x - xc) ** 2 + (y - yc) ** 2) / (2 * rng.uniform(0.8, 2) ** 2))
    return img + noise * rng.standard_normal(img.shape)


def statmorph_gini_m20(image, segmap, label, mask=None):
    """statmorph's own Gini and M20 (nan for its -99)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)  # statmorph's own diagnostics
        morph = _lean_class(check_segmaps=False)(np.asarray(image, float), segmap, label, mask=mask, gain=1.0)
    return [np.nan if v == -99.0 else v for v in (morph.gini, morph.m20)] + [morph.flag]


# ---------------------------------------------------------------- statmorph wrapper


def test_reference_values_are_statmorphs_own():
    mod = pytest.importorskip("statmorph.tests.test_statmorph")
    suite = mod.TestSourceMorphology()
    if not SLICE.exists():
        pytest.skip("slice.fits missing")
    suite.setup_class()
    for key, value in STATMORPH_REFERENCE.items():
        assert suite.correct_values[key] == pytest.approx(value, rel=1e-12)


def test_measure_morphology_reproduces_statmorph_reference(slice_data):
    image, segmap, mask = slice_data
    res = measure_morphology(image, segmap=segmap, mask=mask, gain=1.0)
    assert isinstance(res, MorphologyResult)
    for key, value in STATMORPH_REFERENCE.items():
        assert getattr(res, key) == pytest.approx(value, rel=1e-5), key
    assert res.flag == 0 and res.ok and res.label == 1
    assert np.isnan(res.sersic_n) and res.flag_sersic == -1


def test_measure_morphology_uses_uncertainty_as_weightmap(slice_data):
    image, segmap, mask = slice_data
    weightmap = np.sqrt(np.abs(image) / 1.0 + 150.91754150390625**2)  # statmorph's test_weightmap
    nd = NDData(image, uncertainty=StdDevUncertainty(weightmap), mask=mask)
    res = measure_morphology(nd, segmap=segmap)
    for key, value in STATMORPH_REFERENCE.items():
        assert getattr(res, key) == pytest.approx(value, rel=1e-5), key
    # sn_per_pixel depends on the weight map: the NDData uncertainty was used
    assert res.sn_per_pixel == pytest.approx(6.80319166183472, rel=1e-5)


def test_measure_morphology_sersic_on_request(slice_data):
    image, segmap, mask = slice_data
    res = measure_morphology(image, segmap=segmap, mask=mask, gain=1.0, sersic=True)
    assert res.flag_sersic == 0
    assert res.sersic_n == pytest.approx(0.61206828194077, rel=1e-3)  # statmorph's reference fit
    assert "sersic_n" in repr(res)


def test_statmorph_flags_are_carried_through():
    y, x = np.mgrid[:11, :11]
    image = np.exp(-((x - 5.0) ** 2) - (y - 5.0) ** 2)
    res = measure_morphology(image, segmap=np.ones((11, 11), dtype=int), gain=1.0)
    assert res.flag == 2 and not res.ok
    assert any("not background-subtracted" in n for n in res.notes)
    assert "bad" in repr(res)


def test_gini_mid_segmap_check_flags_a_merger():
    # statmorph's own test_merger: two blobs give different Gini and MID segmaps -> flag 1
    y, x = np.mgrid[:25, :25]
    image = np.exp(-((x - 8) ** 2) / 4 - (y - 12) ** 2) + np.exp(-((x - 16) ** 2) / 4 - (y - 12) ** 2)
    res = measure_morphology(image, segmap=(image > 1e-3).astype(int), gain=1.0, verbose=True)
    assert res.flag == 1
    assert any("Gini and MID segmaps are quite different" in n for n in res.notes)


def test_measure_morphology_segments_by_itself():
    img = sersic_clumps(3) * 10
    res = measure_morphology(img)
    assert res.flag <= 1
    assert 0.3 < res.gini < 0.8 and -3.0 < res.m20 < -0.5
    assert abs(res.xc - 64) < 6 and abs(res.yc - 64) < 6


def test_no_source_gives_flagged_result_not_exception():
    noise = np.random.default_rng(0).normal(0, 1.0, (64, 64))
    res = measure_morphology(noise, segmentation={"n_sigma": 50})
    assert res.flag == 4 and np.isnan(res.gini) and res.notes == ("no source detected",)


def test_nan_pixels_are_masked_with_warning():
    img = sersic_clumps(4)
    img[10:12, 10:12] = np.nan
    with pytest.warns(AstropyUserWarning, match="4 non-finite pixel"):
        res = measure_morphology(img)
    assert np.isfinite(res.gini) and res.flag <= 1


def test_measure_morphology_bad_arguments():
    with pytest.raises(TypeError, match="image must be"):
        measure_morphology({"not": "an image"})
    with pytest.raises(ValueError, match=r"2-D image, got shape \(2, 8, 8\)"):
        measure_morphology(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match=r"segmap has shape \(4, 4\)"):
        measure_morphology(np.zeros((8, 8)), segmap=np.ones((4, 4), dtype=int))


def test_bandstack_and_synthetic_band_bridges():
    mock = pytest.importorskip("bandsynth.datasets.mock")
    from bandsynth.synthetic import SyntheticBand, make_provenance

    stack = mock.make_galaxy(2, mode="survey", bands=["g", "r"])
    res = stack.morphology("r")
    assert isinstance(res, MorphologyResult) and res.flag <= 1 and 0.2 < res.gini < 0.8
    r = stack["r"]
    sb = SyntheticBand(r.data, unit=r.unit, uncertainty=r.uncertainty.array, provenance=make_provenance("r"))
    same = sb.morphology()
    assert same.gini == pytest.approx(res.gini, abs=1e-6) and same.m20 == pytest.approx(res.m20, abs=1e-6)


def test_result_is_frozen(slice_data):
    res = MorphologyResult(0.5, -2.0, 3.0, 0.1, 0.05, 0)
    with pytest.raises(AttributeError):
        res.gini = 0.4
    assert res.to_dict()["gini"] == 0.5 and res.ok


# ---------------------------------------------------------------- segmentation


def test_segment_picks_the_central_galaxy():
    y, x = np.mgrid[:96, :96]
    galaxy = np.exp(-np.hypot(x - 48, y - 47) / 5)
    star = 5 * np.exp(-np.hypot(x - 12, y - 80) ** 2 / 2)  # brighter, off-centre
    img = galaxy + star + np.random.default_rng(1).normal(0, 0.01, x.shape)
    seg = segment(img)
    assert seg.segmap.n_labels == 2
    assert seg.segmap.data[47, 48] == seg.label
    assert seg.segmap.data[80, 12] not in (0, seg.label)
    assert seg.rms == pytest.approx(0.01, rel=0.2)


def test_segment_without_source_and_with_deblending():
    assert segment(np.zeros((32, 32))).segmap is None
    y, x = np.mgrid[:64, :96]
    pair = np.exp(-np.hypot(x - 36, y - 32) / 3) + np.exp(-np.hypot(x - 60, y - 32) / 3)
    merged = segment(pair, background=None)
    split = segment(pair, background=None, deblend=True)
    assert merged.segmap.n_labels == 1 and split.segmap.n_labels == 2


def test_detection_footprint_holds_a_clumpy_band_whole():
    """Knots below the noise between them: segmented alone, the central one holds little of the band's light;
    the galaxy found in the sum of the bands holds nearly all of it (and keeps a single band's NaNs masked)."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[:96, :96]
    disc = np.exp(-np.hypot(x - 48, y - 48) / 8)
    knots = sum(0.05 * np.exp(-np.hypot(x - 48 - 22 * np.cos(a), y - 48 - 22 * np.sin(a)) ** 2 / 3)
                for a in np.linspace(0, 2 * np.pi, 7)[:-1]) + 0.01 * np.exp(-np.hypot(x - 48, y - 48) ** 2 / 4)
    knots = knots + rng.normal(0, 0.002, x.shape)
    alone = segment(knots)
    central = alone.segmap.data == alone.label
    footprint = detection_footprint([disc + rng.normal(0, 0.002, x.shape), knots])
    assert knots[central].sum() < 0.25 * knots.sum()
    assert knots[footprint].sum() > 0.9 * knots.sum() and footprint[48, 48]
    holed = knots.copy()
    holed[10, 10] = np.nan
    with pytest.warns(AstropyUserWarning, match="1 non-finite pixel"):
        assert np.array_equal(detection_footprint([holed]), central)  # one band: as segment finds it
    assert detection_footprint([np.zeros((16, 16)), np.zeros((16, 16))]) is None
    with pytest.raises(ValueError, match="at least one image"):
        detection_footprint([])
    with pytest.raises(ValueError, match=r"2-D images on one grid, got shapes \[\(96, 96\), \(8, 8\)\]"):
        detection_footprint([disc, np.ones((8, 8))])


# ---------------------------------------------------------------- fast Gini / M20


def test_exact_overlaps_match_photutils_and_skimage():
    import skimage.transform
    from photutils.aperture import CircularAperture, EllipticalAnnulus

    rng = np.random.default_rng(5)
    img = rng.normal(size=(40, 50))
    for _ in range(10):
        cx, cy, a = rng.uniform(-3, 53), rng.uniform(-3, 43), rng.uniform(1.5, 30)
        elong, theta = rng.uniform(1, 3), rng.uniform(-3, 3)
        geom = _EllipseOverlap(img.shape, cx, cy, elong, theta, values=(img,))
        (outer,), (inner,) = geom.sums(a + 0.5, a - 0.5)
        ann = EllipticalAnnulus((cx, cy), a - 0.5, a + 0.5, (a + 0.5) / elong, theta=theta)
        assert outer - inner == pytest.approx(ann.do_photometry(img, method="exact")[0][0], abs=1e-9)
        (sy, sx), w = _circle_weights(img.shape, cx, cy, a)
        full = np.zeros(img.shape)
        full[sy, sx] = w
        ref = CircularAperture((cx, cy), a).to_mask(method="exact").to_image(img.shape)
        np.testing.assert_allclose(full, ref, atol=1e-12)
    pad = 52
    padded = np.pad(img, pad)
    for cx, cy in [(20.3, 17.9), (0.2, 39.5), (49.7, 1.1)]:
        mine = _rotate180(padded, pad, cx, cy, slice(0, 40), slice(0, 50))
        np.testing.assert_allclose(mine, skimage.transform.rotate(img, 180.0, center=(cx, cy)), atol=1e-12)


def test_fast_gini_m20_reproduces_statmorph_reference(slice_data):
    image, segmap, mask = slice_data
    res = gini_m20(image, segmap, mask=mask)
    assert isinstance(res, GiniM20) and res.flag[0] == 0
    assert res.gini[0] == pytest.approx(STATMORPH_REFERENCE["gini"], abs=1e-6)
    assert res.m20[0] == pytest.approx(STATMORPH_REFERENCE["m20"], abs=1e-6)


def test_fast_gini_m20_matches_statmorph_on_sersic_clumps():
    images, segmaps, labels = [], [], []
    for seed in range(6):
        seg = segment(sersic_clumps(seed))
        images.append(seg.image)
        segmaps.append(np.asarray(seg.segmap.data))
        labels.append(seg.label)
    fast = gini_m20(np.stack(images), np.stack(segmaps), labels=labels)
    for i in range(6):
        g, m, flag = statmorph_gini_m20(images[i], segmaps[i], labels[i])
        assert abs(fast.gini[i] - g) < 1e-3 and abs(fast.m20[i] - m) < 1e-3
        assert fast.flag[i] == flag
    # labels name segments of the maps given: without them, or absent from them, they were ignored
    with pytest.raises(ValueError, match="labels= names segments of segmaps=: give the segmentation maps"):
        gini_m20(images[0], labels=labels[0])
    with pytest.raises(ValueError, match=r"label 99 is not in segmap 0 \(1 image\(s\) with an absent label\)"):
        gini_m20(images[0], segmaps[0], labels=99)


def test_fast_gini_m20_matches_statmorph_on_mock_galaxies():
    mock = pytest.importorskip("bandsynth.datasets.mock")
    # 100 statmorph fits take ~45 s on one core; the default run checks 16 of
    # them (half ideal, half survey), BANDSYNTH_FULL_CHECKS=1 all 100.
    n = 100 if os.environ.get("BANDSYNTH_FULL_CHECKS") else 16
    images, segmaps, labels = [], [], []
    for seed in range(n):
        mode = "ideal" if seed % 2 else "survey"
        data = np.asarray(mock.make_galaxy(seed, mode=mode, bands=["r"])["r"].data)
        seg = segment(data, background=None if mode == "ideal" else "median")
        images.append(seg.image)
        segmaps.append(np.asarray(seg.segmap.data))
        labels.append(seg.label)
    fast = gini_m20(np.stack(images), np.stack(segmaps), labels=labels)
    ref = np.array([statmorph_gini_m20(im, sm, lab) for im, sm, lab in zip(images, segmaps, labels)])
    assert np.all(np.isfinite(ref[:, :2]))
    assert np.max(np.abs(fast.gini - ref[:, 0])) < 1e-3
    assert np.max(np.abs(fast.m20 - ref[:, 1])) < 1e-3
    np.testing.assert_array_equal(fast.flag, ref[:, 2])


def test_gini_m20_orders_concentration_and_handles_bad_rows():
    import torch

    y, x = np.mgrid[:64, :64].astype(float)
    flat = Sersic2D(amplitude=1, r_eff=8, n=0.5, x_0=32, y_0=32)(x, y)
    peaked = Sersic2D(amplitude=1, r_eff=8, n=4, x_0=32, y_0=32)(x, y)
    empty = np.zeros((64, 64))
    images = np.stack([flat, peaked, empty])
    segmaps = np.stack([flat > 1e-3, peaked > 1e-3, empty > 0]).astype(int)
    res = gini_m20(torch.from_numpy(images), segmaps)
    assert res.gini[1] > res.gini[0] + 0.1  # a de Vaucouleurs profile is more unequal...
    assert res.m20[1] < res.m20[0] - 0.2  # ... and its brightest 20 % more central
    assert np.isnan(res.gini[2]) and res.flag[2] == 4
    # without segmaps gini_m20 segments each image itself
    res2 = gini_m20(images[:2])
    np.testing.assert_allclose(res2.gini, res.gini[:2], atol=0.05)


def test_gini_m20_argument_errors():
    with pytest.raises(ValueError, match="empty"):
        gini_m20(np.zeros((0, 8, 8)))
    with pytest.raises(ValueError, match=r"segmaps have shape \(1, 4, 4\), expected .*\(1, 8, 8\)"):
        gini_m20(np.zeros((8, 8)), np.zeros((4, 4), dtype=int))
    with pytest.raises(ValueError, match=r"\(n, ny, nx\)"):
        gini_m20(np.zeros(8))


def test_a_masked_region_wider_than_the_smoothing_kernel_raises_no_astropy_warning():
    # Half an input's footprint missing: astropy's "NaN values detected post convolution ... Increase the kernel
    # size" reached the user, who cannot act on it; the masked pixels are said once, by bandsynth.
    from bandsynth.morphology import segment

    y, x = np.mgrid[:64, :64]
    image = np.exp(-((x - 32) ** 2 + (y - 32) ** 2) / 20.0) + np.random.default_rng(0).normal(0, 0.01, (64, 64))
    image[:, :20] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        segment(image)
    assert [str(w.message) for w in caught] == ["image: 1280 non-finite pixel(s) masked"]
