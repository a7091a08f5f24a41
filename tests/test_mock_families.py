"""Physics families of the mock universe (`bandsynth.datasets.mock.families`, `.dust`)."""

import hashlib

import numpy as np
import pytest

from bandsynth.datasets.mock import (
    DUST_LAWS,
    FAMILIES,
    Family,
    attenuation_curve,
    get_family,
    make_dataset,
    make_galaxy,
)
from bandsynth.datasets.mock.population import galaxy

# ----------------------------------------------------------------------------- default unchanged
# Images of the default family as bandsynth made them before families existed (commit b49570e):
# case -> (sha256 of the float32 images, first 16 hex digits; sum of all pixels; sum of squares).
# The shipped models' cards rebuild their data sets from seeds, so these must not move.  The
# hashes are exact on the machine that wrote them (x86-64, numpy 2.4, scipy 1.17); another
# platform may change last bits of the FFTs, which the sums (rtol 1e-5) tolerate.
BEFORE = {
    "ideal-3": ("dde000839731f0f3", 21606.225659980126, 275757.4258674177),
    "survey-3": ("201de5b56347985a", 9202.53867755807, 32024.45138479965),
    "ideal-11": ("974a55f72b764c2a", 14182.512805057804, 341820.25131890783),
    "survey-11": ("0e68e31c7c314dde", 7684.579238168837, 28097.38269582598),
    "ideal-42": ("90be2470056b4ef8", 3888.4873943419516, 12515.308829309226),
    "survey-42": ("679229dce3d80ff2", 5995.1485670044785, 20806.403977753547),
    "layer-7": ("556756f99a37d8f7", 3.1121782286568984, 0.23881200565460273),
    "dataset-ideal": ("49c3826a1a8fb759", 31666.69191429571, 1176300.922094404),
    "dataset-survey": ("1e617d8ca8be6fb5", 12125.333110636799, 83885.11797948196),
}


def _default_images(family_kwargs):
    """The images of :data:`BEFORE`, case -> list of arrays."""
    cases = {}
    for seed in (3, 11, 42):
        st = make_galaxy(seed, size=48, **family_kwargs)
        cases[f"ideal-{seed}"] = [st[b].data for b in st.names]
        st = make_galaxy(seed, size=48, mode="survey", bands=["NUV", "r", "Ks"], **family_kwargs)
        cases[f"survey-{seed}"] = [st[b].data for b in st.names] + [st[b].uncertainty.array for b in st.names]
    st = make_galaxy(7, size=40, survey="kids_viking", bands=["g", "r", "Z"], **family_kwargs)
    cases["layer-7"] = [st[b].data for b in st.names]
    ds = make_dataset(3, seed=2, size=32, views=2, bands=["FUV", "g", "r", "Ks"], **family_kwargs)
    cases["dataset-ideal"] = [ds.cube(b) for b in ds.names]
    ds = make_dataset(3, seed=2, size=32, mode="survey", bands=["NUV", "r", "Ks"], **family_kwargs)
    cases["dataset-survey"] = [ds.cube(b) for b in ds.names]
    return cases


def _digest(arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module", params=[{}, {"family": "default"}], ids=["no-family", "family=default"])
def default_images(request):
    return _default_images(request.param)


def test_default_family_images_are_those_of_earlier_versions(default_images):
    for case, arrays in default_images.items():
        _, total, squares = BEFORE[case]
        got = [np.asarray(a, dtype=np.float64) for a in arrays]
        assert sum(float(a.sum()) for a in got) == pytest.approx(total, rel=1e-5), case
        assert sum(float((a * a).sum()) for a in got) == pytest.approx(squares, rel=1e-5), case


def test_default_family_images_hash_as_before(default_images):
    changed = [case for case, arrays in default_images.items() if _digest(arrays) != BEFORE[case][0]]
    assert changed == [], f"default-family pixels changed (or a new platform's last bits): {changed}"


def test_default_family_leaves_data_set_info_and_meta_as_before():
    ds = make_dataset(2, seed=1, size=16, bands=["g", "r"], family="default")
    assert "family" not in ds.manifest.meta
    assert "family" not in ds.stack(0).meta and "physics" not in ds.stack(0).meta


# ----------------------------------------------------------------------------- dust curves
def test_smc_bar_is_steeper_in_the_uv_than_calzetti_for_the_same_a_v():
    lam = np.array([153.0, 231.0, 355.0, 550.0])  # FUV, NUV, u, V
    smc, cal = attenuation_curve(lam, "smc_bar"), attenuation_curve(lam, "calzetti")
    assert smc[-1] == pytest.approx(1.0, abs=0.01) and cal[-1] == pytest.approx(1.0, abs=0.01)
    assert np.all(smc[:2] > 1.3 * cal[:2])
    assert smc[0] / smc[2] > cal[0] / cal[2]  # steeper, not only higher


def test_mw_curve_has_the_2175_bump_and_depends_on_r_v():
    bump = attenuation_curve([175.0, 217.5, 260.0], "mw", r_v=3.1)
    assert bump[1] > bump[0] and bump[1] > bump[2]
    smc = attenuation_curve([175.0, 217.5, 260.0], "smc_bar")
    assert not (smc[1] > smc[0])
    assert attenuation_curve(153.0, "mw", r_v=2.5) > attenuation_curve(153.0, "mw", r_v=5.0)


def test_salim18_curve_is_calzetti_for_zero_slope_and_bump():
    lam = np.geomspace(130.0, 2200.0, 20)
    np.testing.assert_allclose(attenuation_curve(lam, "salim18"), attenuation_curve(lam, "calzetti"), rtol=1e-12)
    assert attenuation_curve(153.0, "salim18", delta=-0.5) > attenuation_curve(153.0, "calzetti")


def test_dust_curves_match_the_dust_extinction_package():
    pytest.importorskip("dust_extinction")
    import astropy.units as u
    from dust_extinction.averages import G03_SMCBar
    from dust_extinction.parameter_averages import CCM89

    lam = np.array([125.0, 153.0, 200.0, 231.0, 355.0, 480.0, 620.0, 900.0, 1250.0, 2150.0])
    np.testing.assert_allclose(attenuation_curve(lam, "smc_bar"), G03_SMCBar()(lam * u.nm), rtol=1e-3)
    for r_v in (2.5, 3.1, 5.0):
        np.testing.assert_allclose(attenuation_curve(lam, "mw", r_v=r_v), CCM89(Rv=r_v)(lam * u.nm), rtol=1e-3)


def test_unknown_dust_law_and_bad_r_v_are_errors():
    with pytest.raises(ValueError, match=r"unknown dust law 'lmc'; expected one of \('calzetti'"):
        attenuation_curve(500.0, "lmc")
    with pytest.raises(ValueError, match="r_v must be between 2 and 6"):
        attenuation_curve(500.0, "mw", r_v=8.0)
    assert set(DUST_LAWS) == {"calzetti", "smc_bar", "mw", "salim18"}


# ----------------------------------------------------------------------------- families
BANDS = ["FUV", "NUV", "u", "g", "r", "Ks"]


def _colours(family, seed, *, dust=True, size=32):
    st = make_galaxy(seed, bands=BANDS, size=size, family=family, dust=dust)
    f = np.array([float(st[b].data.sum()) for b in BANDS])
    return st, -2.5 * np.log10(f / f[BANDS.index("r")])


def test_dust_families_differ_from_default_only_through_the_dust():
    for fam in ("smc_dust", "mw_dust"):
        a = make_galaxy(5, bands=BANDS, size=32, family=fam, dust=False)
        b = make_galaxy(5, bands=BANDS, size=32, dust=False)
        for band in BANDS:
            np.testing.assert_array_equal(a[band].data, b[band].data)


def test_smc_dust_makes_dusty_galaxies_redder_in_the_uv_than_calzetti():
    st, smc = _colours("smc_dust", 5)
    _, cal = _colours("default", 5)
    assert st.meta["physics"]["dust_law"] == "smc_bar" and st.meta["components"]["dust_tau_v"] > 0.1
    assert smc[0] > cal[0] + 0.1 and smc[1] > cal[1] + 0.1  # FUV - r, NUV - r
    assert abs(smc[-1] - cal[-1]) < 0.1  # r - Ks hardly changes


def test_nebular_lines_brighten_g_and_r_of_star_forming_galaxies_not_fuv():
    neb = make_galaxy(5, bands=BANDS, size=32, family="nebular", dust=False)
    ref = make_galaxy(5, bands=BANDS, size=32, dust=False)
    assert neb.meta["galaxy_class"] != "elliptical"
    ratio = {b: neb.meta["flux_total"][b] / ref.meta["flux_total"][b] for b in BANDS}
    assert ratio["r"] > 1.01 and ratio["g"] > 1.01  # H-alpha; H-beta and [OIII]
    assert ratio["FUV"] == pytest.approx(1.0, abs=1e-6)


def test_broad_family_varies_dust_laws_and_has_agn_and_post_starbursts():
    gals = [galaxy(s, None, None, "broad") for s in range(120)]
    laws = {g.physics["dust_law"] for g in gals}
    assert laws == set(DUST_LAWS)
    with_agn = [g for g in gals if g.agn_r > 0]
    assert 3 <= len(with_agn) <= 30
    psb = [g for g in gals if g.physics["post_starburst"]]
    assert psb and all(sum(v[0] + v[1] for v in g.light_r.values()) == 0 for g in psb)
    assert all(g.galaxy_class != "elliptical" for g in psb)
    bars = [g.params["bar_length"] / g.params["disk_scale"] for g in gals if g.params["has_bar"]]
    assert min(bars) < 1.0 and max(bars) > 2.0  # beyond the default's 1-2 scale lengths


def test_agn_is_a_central_point_source():
    seed = next(s for s in range(200) if galaxy(s, None, None, "broad").agn_r > 0)
    st = make_galaxy(seed, bands=["r"], size=32, family="broad", dust=False)
    peak = np.unravel_index(np.argmax(st["r"].data), st.shape)
    assert abs(peak[0] - 15.5) <= 1 and abs(peak[1] - 15.5) <= 1
    assert st.meta["physics"]["agn_share"] > 0
    assert st["r"].data.sum() == pytest.approx(st.meta["flux_stamp"]["r"], rel=1e-4)


def _g_minus_r(fluxes):
    return -2.5 * np.log10(fluxes[0] / fluxes[1])


def test_bc03_family_takes_its_spectra_from_bruzual_and_charlot():
    from bandsynth.datasets.mock import component_fluxes, population_band_fluxes

    # BC03 solar-metallicity populations in SDSS g - r: ~0.8 mag when 10 Gyr old, ~0.45 at 1 Gyr, where
    # the mock universe's own blackbody mixtures stay red (0.84)
    old = _g_minus_r(population_band_fluxes(["g", "r"], age=1e10, spectra="bc03"))
    middle = _g_minus_r(population_band_fluxes(["g", "r"], age=1e9, spectra="bc03"))
    assert 0.75 < old < 0.9 and 0.35 < middle < 0.55 < _g_minus_r(population_band_fluxes(["g", "r"], age=1e9))
    # the same galaxies (structure, r flux), other colours
    bc03 = make_galaxy(5, bands=["u", "g", "r"], size=32, family="bc03", dust=False)
    ref = make_galaxy(5, bands=["u", "g", "r"], size=32, dust=False)
    assert bc03.meta["family"] == "bc03" and bc03.meta["components"] == ref.meta["components"]
    assert bc03.meta["flux_total"]["r"] == pytest.approx(ref.meta["flux_total"]["r"], rel=1e-9)
    assert _g_minus_r([bc03.meta["flux_total"][b] for b in "gr"]) < _g_minus_r([ref.meta["flux_total"][b]
                                                                                 for b in "gr"]) - 0.1
    # the components' continua (recomputed from the spectra) add up to the whole galaxy's flux
    for band in "ugr":
        total = sum(c[band] for c in component_fluxes(bc03.meta, ["u", "g", "r"]).values())
        assert total == pytest.approx(bc03.meta["flux_total"][band], rel=1e-6)
    with pytest.raises(ValueError, match="stellar spectra must be one of"):
        population_band_fluxes(["r"], age=1e9, spectra="fsps")


def test_families_are_deterministic_and_differ_from_default():
    for fam in ("broad", "nebular"):
        a = make_galaxy(9, bands=["NUV", "r"], size=32, family=fam, mode="survey")
        b = make_galaxy(9, bands=["NUV", "r"], size=32, family=fam, mode="survey")
        np.testing.assert_array_equal(a["NUV"].data, b["NUV"].data)
        ref = make_galaxy(9, bands=["NUV", "r"], size=32, mode="survey")
        assert not np.array_equal(a["r"].data, ref["r"].data)
        assert a.meta["family"] == fam


def test_family_is_recorded_in_the_data_set_info():
    ds = make_dataset(3, seed=1, size=16, bands=["g", "r"], family="broad")
    assert ds.manifest.meta["family"] == "broad"
    assert ds.stack(0).meta["family"] == "broad"
    again = make_dataset(3, seed=1, size=16, bands=["g", "r"], family=ds.manifest.meta["family"])
    np.testing.assert_array_equal(again.cube("g"), ds.cube("g"))


def test_a_card_rebuilds_its_family(tiny_card):
    from bandsynth.evaluation import card_dataset

    ds = make_dataset(3, seed=1, size=16, bands=["g", "r", "u"], family="broad")
    card = tiny_card(inputs=("g", "r"), output="u", training={"data_info": dict(ds.info)})
    again = card_dataset(card, progress=False)
    assert again.info["family"] == "broad"
    np.testing.assert_array_equal(again.cube("u"), ds.cube("u"))


def test_survey_layer_takes_a_family():
    st = make_galaxy(3, size=24, survey="kids_viking", bands=["g", "r"], family="smc_dust")
    assert st.meta["family"] == "smc_dust" and st.meta["physics"]["dust_law"] == "smc_bar"


def test_unknown_family_is_an_error():
    with pytest.raises(ValueError, match=r"unknown mock family 'nope'; expected one of \('default'"):
        make_galaxy(1, size=16, family="nope")
    with pytest.raises(ValueError, match="unknown mock family 'Broad'"):
        make_dataset(2, size=16, bands=["r"], family="Broad")
    with pytest.raises(TypeError, match="family must be a family name"):
        make_dataset(2, size=16, bands=["r"], family=3)
    with pytest.raises(TypeError, match="family must be a family name"):
        make_dataset(2, size=16, bands=["r"], family=FAMILIES["broad"])


def test_get_family_returns_the_registered_families():
    assert get_family("default").is_default and not get_family("broad").is_default
    assert get_family(FAMILIES["mw_dust"]) is FAMILIES["mw_dust"]
    assert all(isinstance(f, Family) and f.name == k for k, f in FAMILIES.items())


def test_cli_mock_writes_the_family_into_the_data_set(tmp_path, capsys):
    from bandsynth.cli import main
    from bandsynth.datasets import open_dataset

    out = tmp_path / "mock"
    assert main(["mock", "--n", "3", "--size", "16", "--bands", "g", "r", "-o", str(out), "--family", "nebular",
                 "--quiet"]) == 0
    ds = open_dataset(out)
    assert ds.info["family"] == "nebular"
    again = make_dataset(3, seed=0, size=16, bands=["g", "r"], family="nebular")
    np.testing.assert_array_equal(np.asarray(ds.cube("r")), again.cube("r"))
    ds.close()
    with pytest.raises(SystemExit, match="2"):  # a usage error listing the families (bc03 was missing from --help)
        main(["mock", "--n", "3", "--size", "16", "-o", str(tmp_path / "x"), "--family", "nope", "--quiet"])
    assert "argument --family: invalid choice: 'nope' (choose from 'default', 'smc_dust', 'mw_dust', 'nebular', " \
           "'bc03', 'broad')" in capsys.readouterr().err
