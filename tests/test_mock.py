"""Tests of the built-in mock universe: API, determinism, physics and Illustris-like statistics."""

import astropy.units as u
import numpy as np
import pytest

from bandsynth.bands import list_bands
from bandsynth.datasets import make_dataset, make_galaxy
from bandsynth.datasets.mock import (
    DEFAULT_BANDS,
    GALAXY_CLASSES,
    component_fluxes,
    galaxy_seed,
    population_band_fluxes,
    render_galaxy,
    split_by_galaxy,
)
from bandsynth.datasets.torch_data import DECALS_SSIM, ILLUSTRIS_SSIM, cross_band_ssim
from bandsynth.units import nanomaggy

SPIRAL = dict(galaxy_class="spiral", log_ssfr=-10.0)
ELLIPTICAL = dict(galaxy_class="elliptical", log_ssfr=-11.8)


def _mag(flux):
    return -2.5 * np.log10(flux)


# ---- API ---------------------------------------------------------------------------------------
def test_make_galaxy_stack_units_wcs_meta():
    stack = make_galaxy(21, size=32)
    # the 13 bands of the paper, FUV to Ks (the registry has more: KiDS, VISTA, HSC)
    assert stack.names == DEFAULT_BANDS == tuple(b.name for b in list_bands() if b.survey in
                                                 ("GALEX", "SDSS", "DECam", "2MASS"))
    assert len(stack) == 13 and stack.shape == (32, 32)
    r = stack["r"]
    assert r.unit == nanomaggy
    assert r.data.dtype == np.float32
    assert r.uncertainty is None  # ideal mode: no noise
    assert stack.wcs.wcs.ctype[0] == "RA---TAN"
    assert np.allclose(stack.wcs.wcs.crval, [stack.meta["ra"], stack.meta["dec"]])
    assert abs(stack.wcs.proj_plane_pixel_scales()[0].to_value(u.arcsec) - 0.262) < 1e-9
    meta = stack.meta
    assert meta["galaxy_id"] == 21 and meta["view"] == 0
    assert meta["galaxy_class"] in GALAXY_CLASSES
    assert meta["ssfr"] == pytest.approx(10 ** meta["log_ssfr"])
    assert 0 <= meta["bt_r"] <= 1 and 0 <= meta["bt_mass"] <= 1
    assert {"disk_scale", "bulge_n", "arms_m", "dust_tau_v"} <= set(meta["components"])
    assert meta["components"]["arms_m"] in (2, 3, 4)


def test_deterministic_and_seed_dependent():
    a, _, _ = render_galaxy(5, bands=["NUV", "r"], size=32)
    b, _, _ = render_galaxy(5, bands=["NUV", "r"], size=32)
    c, _, _ = render_galaxy(6, bands=["NUV", "r"], size=32)
    assert np.array_equal(a["r"], b["r"])
    assert not np.allclose(a["r"], c["r"])
    # the band selection does not change the galaxy
    d, _, _ = render_galaxy(5, bands=["FUV", "r", "Ks"], size=32)
    assert np.array_equal(a["r"], d["r"])


def test_views_share_the_intrinsic_galaxy():
    s0 = make_galaxy(8, bands=["r"], size=32, view=0, **SPIRAL)
    s1 = make_galaxy(8, bands=["r"], size=32, view=1, **SPIRAL)
    assert s0.meta["components"] == s1.meta["components"]
    assert s0.meta["populations"] == s1.meta["populations"]
    assert s0.meta["flux_total"] == s1.meta["flux_total"]
    assert s0.meta["inclination"] != s1.meta["inclination"]
    assert not np.allclose(s0["r"].data, s1["r"].data)


def test_survey_mode_noise_and_uncertainty():
    stack = make_galaxy(4, mode="survey", bands=["NUV", "DECam_r", "Ks"], size=48)
    deep = make_galaxy(4, mode="survey", bands=["NUV", "DECam_r", "Ks"], size=48, depth_offset=25.0)
    for name in stack.names:
        sigma = stack[name].uncertainty.array
        assert sigma.shape == (48, 48) and np.all(sigma > 0)
        pull = (stack[name].data - deep[name].data) / sigma
        assert 0.85 < pull.std() < 1.15, name
        assert abs(pull.mean()) < 0.1
    # the survey PSFs: GALEX NUV (5.3") blurs far more than DECam r (1.2")
    assert stack.meta["psf_fwhm"]["NUV"] == pytest.approx(5.3)
    assert stack.meta["psf_fwhm"]["DECam_r"] == pytest.approx(1.2)
    ideal = make_galaxy(4, bands=["NUV"], size=48)
    assert ideal["NUV"].data.max() > 2 * deep["NUV"].data.max()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(mode="real"), ValueError, "mode must be 'ideal' or 'survey'"),
        (dict(size=4), ValueError, "size must be >= 8"),
        (dict(size=32.0), TypeError, "size must be an integer"),
        (dict(bands=["r", "q"]), ValueError, "unknown band 'q'"),
        (dict(pixel_scale=-1.0), ValueError, "pixel_scale must be finite and > 0"),
        (dict(view=-1), ValueError, "view must be an integer >= 0"),
        (dict(galaxy_class="lenticular"), ValueError, "galaxy_class must be one of"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_galaxy(1, **kwargs)


# ---- physics -----------------------------------------------------------------------------------
def test_ellipticals_redder_than_star_forming_in_nuv_minus_r():
    colours = {}
    for kind, kw in (("elliptical", ELLIPTICAL), ("spiral", SPIRAL)):
        vals = []
        for seed in range(6):
            im, _, _ = render_galaxy(seed, bands=["NUV", "r"], size=32, **kw)
            vals.append(_mag(im["NUV"].sum()) - _mag(im["r"].sum()))
        colours[kind] = np.median(vals)
    assert colours["elliptical"] - colours["spiral"] > 2.0, colours
    assert colours["elliptical"] > 4.5  # a red-sequence NUV - r


def test_clumps_dominate_fuv_and_vanish_in_ks():
    for seed in range(5):
        _, _, meta = render_galaxy(seed, bands=["FUV", "Ks"], size=16, **SPIRAL)
        comp = component_fluxes(meta)
        total = {b: sum(c[b] for c in comp.values()) for b in ("FUV", "Ks")}
        assert comp["clumps"]["FUV"] / total["FUV"] > 0.45
        assert comp["clumps"]["Ks"] / total["Ks"] < 0.08
        # ... and the total agrees with the catalogue
        assert total["FUV"] == pytest.approx(meta["flux_total"]["FUV"], rel=1e-6)


def test_clumps_are_brightest_in_fuv_images():
    # the 20 brightest FUV pixels stand out far more than in Ks (compact clumps vs smooth light)
    im, _, _ = render_galaxy(3, bands=["FUV", "Ks"], size=64, **SPIRAL)
    peaks = {b: np.sort(im[b].ravel())[-20:].mean() / np.median(im[b][im[b] > 0]) for b in im}
    assert peaks["FUV"] > 3 * peaks["Ks"]


def test_dust_dims_fuv_more_than_ks():
    for seed in range(4):
        dusty, _, _ = render_galaxy(seed, bands=["FUV", "r", "Ks"], size=32, **SPIRAL)
        clean, _, _ = render_galaxy(seed, bands=["FUV", "r", "Ks"], size=32, dust=False, **SPIRAL)
        trans = {b: dusty[b].sum() / clean[b].sum() for b in dusty}
        assert trans["FUV"] < trans["r"] < trans["Ks"] <= 1.0
        assert trans["Ks"] > 0.8
        assert trans["FUV"] < 0.8


def test_edge_on_dust_lane():
    im, _, meta = render_galaxy(2, bands=["g", "Ks"], size=64, galaxy_class="edge-on", log_ssfr=-10.0)
    assert meta["inclination"] > 80
    clean, _, _ = render_galaxy(2, bands=["g", "Ks"], size=64, galaxy_class="edge-on", log_ssfr=-10.0, dust=False)
    # the centre is darkened far more in g than in Ks
    c = slice(28, 36)
    dim = {b: im[b][c, c].sum() / clean[b][c, c].sum() for b in im}
    assert dim["g"] < 0.6 * dim["Ks"]


def test_image_sums_match_sed_fluxes():
    bands = ["FUV", "NUV", "u", "r", "z", "Ks"]
    for seed in range(3):
        # a distant view (4x coarser pixels): the whole galaxy falls on the stamp
        im, _, meta = render_galaxy(seed, bands=bands, size=128, pixel_scale=4 * 0.262, dust=False, **SPIRAL)
        comp = component_fluxes(meta, bands)  # recomputed from the spectra
        for b in bands:
            expected = sum(c[b] for c in comp.values())
            assert im[b].sum() == pytest.approx(expected, rel=0.01), b
        # independently of component_fluxes: one population through the band responses
        pops = meta["populations"]
        f = population_band_fluxes(["FUV", "r"], age=pops["age"][5], metallicity=pops["metallicity"][5],
                                   uv_upturn=pops["uv_upturn"][5])
        assert f[0] / f[1] < 0.05  # 10-Gyr stars are faint in the FUV
    # at the usual scale the recorded in-stamp fraction accounts for the light off the stamp
    im, _, meta = render_galaxy(9, bands=bands, size=64, dust=False)
    for b in bands:
        assert im[b].sum() == pytest.approx(meta["flux_total"][b] * meta["in_stamp_fraction"][b], rel=0.01)
        assert 0.7 < meta["in_stamp_fraction"][b] <= 1.001


def test_galaxies_fill_the_stamp():
    # the thesis kept galaxies large enough to fill their 128x128 stamps
    filled = []
    for seed in range(8):
        im, _, _ = render_galaxy(seed, bands=["r"], size=64)
        r = im["r"]
        filled.append((r > 0.01 * np.percentile(r, 99.5)).mean())
    assert np.median(filled) > 0.35


# ---- data sets ---------------------------------------------------------------------------------
def test_make_dataset_interface_and_splits():
    ds = make_dataset(12, seed=3, bands=["NUV", "r"], size=16, views=2, split_fractions=(0.5, 0.25, 0.25))
    assert len(ds) == 24 and ds.names == ("NUV", "r")
    assert ds.cube("r").shape == (24, 16, 16) and ds.cube("sdss_r") is ds.cube("r")
    m = ds.manifest
    assert {"galaxy_id", "view", "galaxy_class", "log_ssfr", "bt_r", "split", "flux_r"} <= set(m.colnames)
    assert list(m["view"][:4]) == [0, 1, 0, 1]
    # splits are by galaxy: views of one galaxy never straddle two splits
    for gid in set(m["galaxy_id"]):
        assert len(set(m["split"][m["galaxy_id"] == gid])) == 1
    sizes = {s: len(ds.indices(s)) for s in ("train", "validation", "test")}
    assert sizes == {"train": 12, "validation": 6, "test": 6}
    assert sorted(np.concatenate([ds.indices(s) for s in sizes])) == list(range(24))
    with pytest.raises(ValueError, match="split must be one of"):
        ds.indices("dev")
    with pytest.raises(ValueError, match="band 'Ks' is not in this data set"):
        ds.cube("K")


def test_dataset_images_are_make_galaxy_images():
    ds = make_dataset(3, seed=7, bands=["g"], size=16, views=2)
    i = 5
    g, v = divmod(i, 2)
    row = ds.manifest[i]
    st = make_galaxy(galaxy_seed(7, g), bands=["g"], size=16, view=v, log_ssfr=row["log_ssfr"])
    assert np.array_equal(st["g"].data, ds.cube("g")[i])
    assert ds.stack(i).meta["galaxy_id"] == row["galaxy_id"] == st.meta["galaxy_id"]
    again = make_dataset(3, seed=7, bands=["g"], size=16, views=2)
    assert np.array_equal(again.cube("g"), ds.cube("g"))


def test_dataset_is_stratified_by_ssfr():
    ds = make_dataset(40, seed=1, bands=["r"], size=8)
    logs = np.asarray(ds.manifest["log_ssfr"])
    # a Latin-hypercube draw: both tails and all classes are present
    assert logs.min() < -11.5 and logs.max() > -9.5
    assert set(ds.manifest["galaxy_class"]) == set(GALAXY_CLASSES)
    test = logs[ds.indices("test")]
    assert test.min() < np.median(logs) < test.max()  # the held-out set spans the range


def test_split_by_galaxy_validation():
    with pytest.raises(ValueError, match="split fractions must be three numbers"):
        split_by_galaxy(np.zeros(5), (0.5, 0.5))
    labels = split_by_galaxy(np.arange(10.0), (0.8, 0.1, 0.1))
    assert list(labels).count("validation") == 1 and list(labels).count("test") == 1


# ---- Illustris / DECaLS statistics -------------------------------------------------------------
def _ssim_table(ds, pairs):
    return {pair: cross_band_ssim(ds, *pair) for pair in pairs}


def test_cross_band_ssim_matches_illustris_and_decals():
    ideal = make_dataset(64, seed=0, size=128, bands=["FUV", "NUV", "u", "g", "r", "z", "Ks"])
    got = _ssim_table(ideal, ILLUSTRIS_SSIM)
    survey = make_dataset(48, seed=0, size=128, mode="survey", bands=["DECam_g", "DECam_r", "DECam_z"])
    got.update(_ssim_table(survey, DECALS_SSIM))
    paper = {**ILLUSTRIS_SSIM, **DECALS_SSIM}
    lines = [f"{a:>8s} -> {b:8s} paper {paper[(a, b)]:.2f} mock {v:.2f}" for (a, b), v in got.items()]
    print("\n".join(lines))
    for pair, value in got.items():
        assert abs(value - paper[pair]) <= 0.15, lines
    # the task is not trivial: NUV and Ks of spirals look different
    spirals = np.flatnonzero(np.asarray(ideal.manifest["galaxy_class"]) == "spiral")
    assert cross_band_ssim(ideal, "NUV", "Ks", indices=spirals) < 0.7
