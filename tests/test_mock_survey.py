"""Tests of the survey layer of the mock universe (bandsynth.datasets.mock.observing / surveys / field)."""

import astropy.units as u
import numpy as np
import pytest
from scipy.signal import fftconvolve

from bandsynth.datasets.mock import (
    SURVEY_PRESETS,
    SURVEYS,
    make_dataset,
    make_galaxy,
    observe_galaxy,
    psf_image,
    resolve_survey,
    survey_band,
)
from bandsynth.units import flux_from_ab

PAPER = {"NUV": "GALEX", "r": "SDSS", "Ks": "2MASS"}


@pytest.fixture(scope="module")
def isolated():
    """A compact, dust-free galaxy alone in its field, seen by four surveys."""
    return observe_galaxy(5, {"NUV": "GALEX", "r": "SDSS", "i": "HSC", "Ks": "VIKING"}, size=96, r_mag=17.0,
                          half_light_radius=1.5, neighbours=False, stars=False, dust=False)


def test_presets_cover_the_issue_surveys():
    assert {"GALEX", "SDSS", "2MASS", "DECaLS", "KiDS", "VIKING", "HSC"} <= set(SURVEYS)
    expected = {"GALEX": 1.5, "SDSS": 0.396, "2MASS": 1.0, "DECaLS": 0.262, "KiDS": 0.2, "VIKING": 0.339, "HSC": 0.168}
    for name, scale in expected.items():
        assert {sb.pixel_scale for sb in SURVEYS[name].values()} == {scale}
    assert [sb.band for sb in resolve_survey("kids_viking")] == [
        "KiDS_u", "KiDS_g", "KiDS_r", "KiDS_i", "VISTA_Z", "VISTA_Y", "VISTA_J", "VISTA_H", "VISTA_Ks"]
    assert len(resolve_survey("galex_sdss_2mass")) == 10 and "hsc" in SURVEY_PRESETS
    assert survey_band("viking", "K").band == "VISTA_Ks" and survey_band("DECaLS", "decals_z").band == "DECam_z"


def test_native_pixel_scales_and_reprojection_records(isolated):
    for band, native in isolated.native.items():
        scale = native.wcs.proj_plane_pixel_scales()[0].to_value(u.arcsec)
        assert scale == pytest.approx(isolated.observed.meta["survey"][band]["pixel_scale"], rel=1e-9)
    assert isolated.native["NUV"].shape[0] < isolated.native["i"].shape[0] if "i" in isolated.native else True
    records = {r["band"]: r for r in isolated.observed.meta["reprojection"]}
    assert records["NUV"]["pixel_scale_in"] == pytest.approx(1.5)
    assert records["HSC_i"]["pixel_scale_in"] == pytest.approx(0.168)
    assert all(r["pixel_scale_out"] == pytest.approx(0.262) and r["flux_scaled_by_area_ratio"] for r in records.values())
    assert isolated.observed.shape == isolated.truth.shape == (96, 96)


def test_total_flux_survives_the_reprojection(isolated):
    for band in isolated.observed.names:
        native = isolated.native_truth[band].sum(dtype=np.float64)
        common = isolated.truth[band].data.sum(dtype=np.float64)
        assert common == pytest.approx(native, rel=0.03), band
        # ... and the rendered light is the galaxy's flux from its spectra
        assert native == pytest.approx(isolated.observed.meta["flux_total"][band], rel=0.05), band
    # the noisy image keeps it too, up to the noise and the sky residual
    r = isolated.observed["r"]
    good = ~r.mask
    assert r.data[good].sum() / isolated.truth["r"].data[good].sum() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("survey, band", [("KiDS", "r"), ("GALEX", "NUV"), ("2MASS", "Ks")])
def test_noise_matches_the_preset_depth(survey, band):
    # a faint galaxy, a wide field: mostly sky
    obs = observe_galaxy(2, {band: survey}, size=128, pixel_scale=1.0 if survey != "KiDS" else 0.3, r_mag=23.0,
                         neighbours=False, stars=False)
    (name,) = obs.observed.names
    native = obs.native[name]
    noise = native[name].data - obs.native_truth[name] - obs.sky_residual[name]
    good = ~native[name].mask
    sigma = obs.observed.meta["sky_sigma"][name]
    assert noise[good].std() == pytest.approx(sigma, rel=0.05)
    assert np.median(native[name].uncertainty.array) == pytest.approx(sigma, rel=0.02)
    # optimal PSF photometry on empty sky: the 5-sigma flux is the survey's depth
    psf = psf_image(survey, band)
    estimates = fftconvolve(np.where(good, noise, 0.0), psf[::-1, ::-1], mode="valid") / (psf**2).sum()
    depth = survey_band(survey, band).depth
    assert 5 * estimates.std() == pytest.approx(flux_from_ab(depth), rel=0.12)


def test_masks_sky_residual_and_saturated_stars():
    obs = observe_galaxy(2, "hsc", bands=["i"], size=64, stars=40.0, neighbours=False)  # an r = 12.2 star
    meta = obs.observed.meta["survey"]["HSC_i"]
    assert 0.2 * meta["mask_fraction"] < meta["masked_fraction"] < 1.0
    assert meta["saturated_pixels"] > 0
    native = obs.native["HSC_i"]["HSC_i"]
    top = native.data.max()
    # the saturated core is clipped at one level and masked; the truth is not clipped
    assert (native.data == top).sum() == meta["saturated_pixels"] and native.mask[native.data == top].all()
    assert obs.native_truth["HSC_i"].max() > 10 * top
    # defects: zero-valued, masked pixels; masks reach the common grid
    assert native.mask[native.data == 0].all() and (native.data[native.mask] == 0).any()
    assert obs.observed["HSC_i"].mask.any() and obs.truth["HSC_i"].mask is None
    assert np.ptp(obs.sky_residual["HSC_i"]) > 0


def test_neighbours_and_stars_are_in_the_field():
    kw = dict(survey="decals", bands=["r"], size=96, r_mag=18.0)
    crowded = observe_galaxy(15, neighbours=3.0, stars=20.0, **kw)  # an r = 13.4 star in the field
    alone = observe_galaxy(15, neighbours=False, stars=False, **kw)
    meta = crowded.observed.meta
    assert meta["neighbours"] and meta["stars"]
    assert all(nb["r_mag"] > meta["r_mag"] for nb in meta["neighbours"])  # neighbours are fainter ...
    assert max(nb["half_light_radius"] for nb in meta["neighbours"]) < 3 * meta["half_light_radius"]  # ... and small
    extra = crowded.truth["DECam_r"].data - alone.truth["DECam_r"].data
    assert extra.sum() > 0
    # the brightest star inside the field sits where the meta says (north up, east left)
    half = 96 * 0.262 / 2 - 1.0
    inside = [s for s in meta["stars"] if abs(s["dx"]) < half and abs(s["dy"]) < half]
    star = min(inside, key=lambda s: s["r_mag"])
    x, y = crowded.truth.wcs.world_to_pixel_values(meta["ra"] + star["dx"] / 3600 / np.cos(np.radians(meta["dec"])),
                                                   meta["dec"] + star["dy"] / 3600)
    stars_only = crowded.truth["DECam_r"].data - observe_galaxy(15, neighbours=3.0, stars=False, **kw).truth[
        "DECam_r"].data
    yy, xx = np.unravel_index(np.argmax(stars_only), stars_only.shape)
    assert abs(xx - x) < 1.5 and abs(yy - y) < 1.5


def test_deterministic_and_band_selection_independent():
    a = observe_galaxy(4, "kids_viking", bands=["g", "r", "Ks"], size=32)
    b = observe_galaxy(4, "kids_viking", bands=["g", "r", "Ks"], size=32)
    c = observe_galaxy(4, "kids_viking", bands=["r"], size=32)
    d = observe_galaxy(5, "kids_viking", bands=["r"], size=32)
    assert np.array_equal(a.observed["KiDS_r"].data, b.observed["KiDS_r"].data)
    assert np.array_equal(a.observed["KiDS_r"].data, c.observed["KiDS_r"].data)
    assert np.array_equal(a.truth["KiDS_r"].data, c.truth["KiDS_r"].data)
    assert not np.allclose(c.observed["KiDS_r"].data, d.observed["KiDS_r"].data)


def test_make_galaxy_and_make_dataset_with_a_survey():
    stack = make_galaxy(6, survey=PAPER, size=32)
    assert stack.names == ("NUV", "r", "Ks") and stack.meta["mode"] == "survey"
    assert stack["r"].uncertainty is not None and stack["r"].mask is not None
    assert np.array_equal(stack["r"].data, observe_galaxy(6, PAPER, size=32).observed["r"].data)
    # without survey= the ideal mode is unchanged (the default), and mode="survey" alone is the simple survey mode
    assert np.array_equal(make_galaxy(6, bands=["r"], size=32)["r"].data,
                          make_galaxy(6, mode="ideal", bands=["r"], size=32)["r"].data)
    assert "survey" not in make_galaxy(6, mode="survey", bands=["r"], size=32).meta
    ds = make_dataset(2, seed=3, survey="kids_viking", bands=["r", "Z"], size=24, views=2)
    assert ds.names == ("KiDS_r", "VISTA_Z") and len(ds) == 4 and ds.has_truth
    assert ds.truth_cube("kids_r").shape == ds.cube("KiDS_r").shape == ds.mask_cube("viking_z").shape
    assert ds.manifest.meta["survey"] == "kids_viking"
    assert np.array_equal(ds.stack(1)["KiDS_r"].data, ds.cube("KiDS_r")[1])
    with pytest.raises(ValueError, match="has no noise-free truth"):
        make_dataset(1, bands=["r"], size=8).truth_cube("r")
    # a mapping of band to survey, as make_galaxy takes it (it failed: "give the bands either as the keys ...")
    mapped = make_dataset(1, seed=6, survey=PAPER, size=32)
    assert mapped.names == ("NUV", "r", "Ks") and mapped.has_truth and mapped.cube("r").shape == (1, 32, 32)


def test_grid_offsets_move_the_native_pixels_not_the_sky():
    options = dict(size=48, r_mag=16.0, half_light_radius=1.0, neighbours=False, stars=False)
    aligned = observe_galaxy(8, "decals", bands=["g", "z"], **options)
    moved = observe_galaxy(8, "decals", bands=["g", "z"], grid_offsets={"DECam_z": (0.5, -0.3)}, **options)
    meta = moved.observed.meta["survey"]
    assert meta["DECam_z"]["grid_offset"] == [0.5, -0.3] and meta["DECam_g"]["grid_offset"] == [0.0, 0.0]
    assert aligned.observed.meta["survey"]["DECam_z"]["grid_offset"] == [0.0, 0.0]
    # the galaxy sits where it was on the sky: same flux, same centroid on the common grid
    def centroid(image):
        image = np.asarray(image, dtype=np.float64)
        yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
        return np.array([(image * xx).sum(), (image * yy).sum()]) / image.sum()

    np.testing.assert_allclose(centroid(moved.truth["DECam_z"].data), centroid(aligned.truth["DECam_z"].data),
                               atol=0.01)
    assert moved.truth["DECam_z"].data.sum() == pytest.approx(aligned.truth["DECam_z"].data.sum(), rel=1e-3)
    # ... while its native pixels moved: the grid's reference pixel by the offset, the light with it
    shift = moved.native["DECam_z"].wcs.wcs.crpix - aligned.native["DECam_z"].wcs.wcs.crpix
    np.testing.assert_allclose(shift, [0.5, -0.3], atol=1e-12)
    np.testing.assert_allclose(centroid(moved.native_truth["DECam_z"]) - centroid(aligned.native_truth["DECam_z"]),
                               [0.5, -0.3], atol=0.01)
    # an aligned band of the common grid's scale moves by whole pixels, its noise untouched; an offset one is
    # interpolated, which smooths its noise as a user's reprojection does
    records = {r["band"]: r for r in moved.observed.meta["reprojection"]}
    assert records["DECam_g"]["subpixel_shift"] == pytest.approx(0.0, abs=1e-6)
    assert records["DECam_z"]["subpixel_shift"] > 0.2
    sky = (slice(0, 8), slice(0, 8))
    assert np.std(moved.observed["DECam_z"].data[sky]) < 0.8 * np.std(aligned.observed["DECam_z"].data[sky])
    np.testing.assert_array_equal(moved.observed["DECam_g"].data, aligned.observed["DECam_g"].data)


def test_random_grid_offsets_are_drawn_per_band_and_reproducible():
    def offsets(p, seed=9):
        obs = observe_galaxy(seed, "decals", size=24, grid_offsets=p, neighbours=False, stars=False)
        return [tuple(obs.observed.meta["survey"][b]["grid_offset"]) for b in obs.observed.names]

    assert offsets(0.0) == [(0.0, 0.0)] * 3 == offsets(None)
    everything = offsets(1.0)
    assert everything == offsets(1.0) and all(0 < abs(dx) <= 0.5 and 0 < abs(dy) <= 0.5 for dx, dy in everything)
    assert len(set(everything)) == 3  # each band its own offset
    some = [o for seed in range(8) for o in offsets(0.5, seed)]
    assert 0 < sum(o == (0.0, 0.0) for o in some) < len(some)
    # the noise draw is the one of the aligned observation: only where the pixels fall changes
    a = observe_galaxy(9, "decals", size=24, neighbours=False, stars=False)
    b = observe_galaxy(9, "decals", size=24, grid_offsets=1.0, neighbours=False, stars=False)
    residual = [obs.native["DECam_r"]["DECam_r"].data - obs.native_truth["DECam_r"] - obs.sky_residual["DECam_r"]
                for obs in (a, b)]
    np.testing.assert_allclose(residual[0], residual[1], atol=1e-3)
    # recorded in the data set, and a card's universe is rebuilt with it
    ds = make_dataset(2, seed=3, survey="decals", bands=["g", "r"], size=16, grid_offsets=0.5)
    assert ds.manifest.meta["grid_offsets"] == 0.5
    assert "grid_offsets" not in make_dataset(1, seed=3, survey="decals", bands=["r"], size=16).manifest.meta


def test_redshift_shifts_the_spectra_through_the_bands():
    from bandsynth.bands import get_band
    from bandsynth.datasets.mock.spectra import population_sed, sed_band_fluxes

    # the band-averaged f_nu at z, integrated independently on the observed-frame wavelengths
    lam = np.geomspace(300.0, 1200.0, 20000)
    for band in ("g", "z"):
        sed = population_sed(lam / 1.3, age=1e10)
        t = get_band(band).transmission(lam)
        direct = np.trapezoid(sed * t / lam, lam) / np.trapezoid(t / lam, lam)
        shifted = sed_band_fluxes([band], lambda rest: population_sed(rest, age=1e10), redshift=0.3)[0]
        assert shifted == pytest.approx(direct, rel=0.01), band
    sdss = {"u": "SDSS", "g": "SDSS", "r": "SDSS", "z": "SDSS"}
    kw = dict(size=32, neighbours=False, stars=False, galaxy_class="elliptical", log_ssfr=-12.5)
    rest = observe_galaxy(7, sdss, **kw)
    assert rest.observed.meta["redshift"] == 0.0
    assert np.array_equal(rest.truth["g"].data, observe_galaxy(7, sdss, redshift=0.0, **kw).truth["g"].data)
    colours = []
    for z in (0.0, 0.15, 0.3):
        meta = observe_galaxy(7, sdss, redshift=z, **kw).observed.meta
        flux = meta["flux_total"]
        # r_mag stays the observed r magnitude at any redshift
        assert flux["r"] == pytest.approx(flux_from_ab(meta["r_mag"]), rel=1e-6) and meta["redshift"] == z
        colours.append(-2.5 * np.log10(flux["g"] / flux["r"]))
    # the 4000 A break of an old population moves through g: g - r reddens by ~0.4 mag per 0.15 in z
    assert colours[0] + 0.25 < colours[1] < colours[2] - 0.25


def test_redshifts_drawn_from_the_magnitudes():
    from bandsynth.datasets.mock.field import draw_redshift

    bright = np.median([draw_redshift(s, 16.0) for s in range(300)])
    faint = np.median([draw_redshift(s, 20.0) for s in range(300)])
    assert 0.04 < bright < 0.08 and 0.22 < faint < 0.32
    obs = observe_galaxy(3, "kids_viking", bands=["r"], size=64, r_mag=20.0, redshift=True, neighbours=3.0)
    meta = obs.observed.meta
    assert meta["redshift"] == draw_redshift(3, 20.0)
    assert meta["neighbours"] and all(nb["redshift"] == draw_redshift(nb["seed"], nb["r_mag"])
                                      for nb in meta["neighbours"])
    assert "redshift" not in observe_galaxy(3, "kids_viking", bands=["r"], size=64, r_mag=20.0,
                                            neighbours=3.0).observed.meta["neighbours"][0]
    ds = make_dataset(2, seed=3, survey="kids_viking", bands=["r"], size=24, redshift=True)
    assert ds.manifest.meta["redshift"] is True and all(ds.stack(i).meta["redshift"] > 0 for i in range(2))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: observe_galaxy(1, "Euclid"), "unknown survey 'Euclid'; known surveys are GALEX, SDSS"),
        (lambda: observe_galaxy(1, {"NUV": "SDSS"}), "survey 'SDSS' does not observe band 'NUV'; its bands are u"),
        (lambda: observe_galaxy(1, "kids_viking", bands=["NUV"]), "survey preset 'kids_viking' does not observe band"),
        (lambda: observe_galaxy(1, {"q": "SDSS"}), "unknown band 'q'"),
        (lambda: observe_galaxy(1, PAPER, bands=["r"]), "either as the keys of survey"),
        (lambda: observe_galaxy(1, {"r": "SDSS", "sdss_r": "SDSS"}), "band 'r' is given twice"),
        (lambda: observe_galaxy(1, PAPER, neighbours=-1), "neighbours must be True, False or a number >= 0"),
        (lambda: observe_galaxy(1, PAPER, size=4), "size must be >= 8"),
        (lambda: make_galaxy(1, mode="ideal", survey=PAPER), "cannot be combined with mode='ideal'"),
        (lambda: make_galaxy(1, survey=PAPER, psf_fwhm=1.0), "psf_fwhm is the common PSF of mode='ideal'"),
        (lambda: make_galaxy(1, survey=3), "survey must be a survey name, a preset name or a mapping"),
        (lambda: observe_galaxy(1, PAPER, redshift=0.9), "redshift must be True, False or a number from 0 to 0.6"),
        (lambda: observe_galaxy(1, PAPER, redshift="high"), r"redshift must be .*, got 'high'"),
        (lambda: make_dataset(1, bands=["r"], size=8, redshift=True), "give survey= too"),
        (lambda: make_dataset(1, survey=PAPER, size=8, redshift=0.2), "redshift must be True or False"),
        (lambda: observe_galaxy(1, PAPER, grid_offsets={"z": (0.1, 0.1)}),
         r"grid_offsets names \['z'\], which this observation does not have; its bands are \['NUV', 'r', 'Ks'\]"),
        (lambda: observe_galaxy(1, PAPER, grid_offsets={"r": (0.7, 0.0)}),
         r"grid_offsets\['r'\]: expected \(dx, dy\) in native pixels, each within \+-0.5, got \(0.7, 0.0\)"),
        (lambda: observe_galaxy(1, PAPER, grid_offsets={"r": 0.2}), r"grid_offsets\['r'\]: expected \(dx, dy\)"),
        (lambda: observe_galaxy(1, PAPER, grid_offsets=1.5), "grid_offsets: expected a probability from 0 to 1"),
        (lambda: observe_galaxy(1, PAPER, grid_offsets=True), "grid_offsets: expected a probability"),
        (lambda: make_dataset(1, survey=PAPER, size=8, grid_offsets=-0.1), r"grid_offsets: expected a probability from 0 to 1, got -0.1"),
        (lambda: make_dataset(1, bands=["r"], size=8, grid_offsets=0.5), "give survey= too"),
    ],
)
def test_errors_name_what_is_wrong(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
