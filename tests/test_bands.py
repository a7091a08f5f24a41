import astropy.units as u
import numpy as np
import pytest

from bandsynth.bands import Band, get_band, list_bands, register_band, sort_bands

REQUIRED = ["FUV", "NUV", "u", "g", "r", "i", "z", "DECam_g", "DECam_r", "DECam_z", "J", "H", "Ks"]


def test_registry_covers_required_bands():
    names = {b.name for b in list_bands()}
    assert set(REQUIRED) <= names


@pytest.mark.parametrize(
    "alias, name",
    [("NUV", "NUV"), ("galex_nuv", "NUV"), ("Galex_NUV", "NUV"), ("r", "r"), ("sdss_r", "r"),
     ("R", "r"), ("K", "Ks"), ("2mass_ks", "Ks"), ("decals_z", "DECam_z"), (" fuv ", "FUV")],
)
def test_lookup_is_case_insensitive_and_accepts_aliases(alias, name):
    assert get_band(alias).name == name


def test_list_bands_is_ordered_by_wavelength():
    lams = [b.wavelength.to_value(u.nm) for b in list_bands()]
    assert lams == sorted(lams)
    assert list_bands()[0].name == "FUV" and list_bands()[-1].name == "Ks"


def test_unknown_band_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown band 'Y'; known bands are: FUV, NUV, u"):
        get_band("Y")


def test_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="band name must be a string"):
        get_band(3)


def test_sort_bands_orders_and_rejects_duplicates():
    assert [b.name for b in sort_bands(["K", "NUV", "r"])] == ["NUV", "r", "Ks"]
    with pytest.raises(ValueError, match="band 'r' is given twice"):
        sort_bands(["r", "sdss_r"])


def test_band_fields_are_quantities_and_validated():
    b = get_band("g")
    assert b.wavelength.unit == u.nm and b.psf_fwhm.unit == u.arcsec
    with pytest.raises(TypeError, match="wavelength must be a Quantity"):
        Band("X", (), 500.0, 10 * u.nm, "test")


def test_transmission_peaks_at_effective_wavelength():
    b = get_band("r")
    lam = np.linspace(400, 900, 501) * u.nm
    t = b.transmission(lam)
    assert t.max() == pytest.approx(1.0, abs=1e-3)
    assert lam[np.argmax(t)].to_value(u.nm) == pytest.approx(b.wavelength.to_value(u.nm), abs=1)
    half = lam[t >= 0.5].to_value(u.nm)
    assert half.max() - half.min() == pytest.approx(b.width.to_value(u.nm), rel=0.02)


def test_register_band_refuses_taken_names():
    with pytest.raises(ValueError, match="already used by band 'NUV'"):
        register_band(Band("other", ("nuv",), 230 * u.nm, 50 * u.nm, "test"))


def test_bands_are_hashable_and_compare_by_name():
    assert len({get_band("r"), get_band("sdss_r"), get_band("g")}) == 2
    assert get_band("NUV") < get_band("K")


# ---- KiDS, VISTA (VIKING) and HSC ---------------------------------------------------------------
NEW_BANDS = ["KiDS_u", "KiDS_g", "KiDS_r", "KiDS_i", "VISTA_Z", "VISTA_Y", "VISTA_J", "VISTA_H", "VISTA_Ks",
             "HSC_g", "HSC_r", "HSC_i", "HSC_z", "HSC_y"]


def test_registry_covers_kids_vista_and_hsc():
    names = {b.name for b in list_bands()}
    assert set(NEW_BANDS) <= names
    assert {get_band(n).survey for n in NEW_BANDS} == {"KiDS", "VISTA", "HSC"}


@pytest.mark.parametrize(
    "alias, name",
    [("kids_r", "KiDS_r"), ("omegacam_u", "KiDS_u"), ("vista_z", "VISTA_Z"), ("viking_z", "VISTA_Z"),
     ("VIKING_Ks", "VISTA_Ks"), ("vista_k", "VISTA_Ks"), ("hsc_g", "HSC_g"), ("HSC-I2", "HSC_i"),
     # the bare names stay SDSS and 2MASS
     ("z", "z"), ("Z", "z"), ("J", "J"), ("Ks", "Ks"), ("K", "Ks")],
)
def test_new_aliases_do_not_collide(alias, name):
    assert get_band(alias).name == name


def test_new_bands_sit_near_their_namesakes():
    # the same letter in different systems: within 3 % in wavelength
    for new, old in (("KiDS_r", "r"), ("HSC_i", "i"), ("VISTA_J", "J"), ("VISTA_Ks", "Ks"), ("HSC_z", "z")):
        ratio = get_band(new).wavelength / get_band(old).wavelength
        assert abs(ratio.to_value("") - 1) < 0.03, (new, old)


def test_filter_curve_of_a_band_without_a_published_curve():
    with pytest.raises(ValueError, match="band 'KiDS_r': no maintained package publishes its response curve"):
        get_band("KiDS_r").filter_curve()


@pytest.mark.parametrize("name, package", [("HSC_g", "speclite"), ("VISTA_J", "sedpy")])
def test_filter_curve_matches_the_registry(name, package):
    pytest.importorskip(package)
    band = get_band(name)
    lam, resp = band.filter_curve()
    lam = lam.to_value(u.nm)
    pivot = np.sqrt(np.trapezoid(resp * lam, lam) / np.trapezoid(resp / lam, lam))
    assert pivot == pytest.approx(band.wavelength.to_value(u.nm), rel=0.005)
    assert resp.max() == pytest.approx(1.0)


def test_same_filter_finds_a_models_band_of_the_filter_a_user_named():
    from bandsynth.bands import same_filter

    vista = ["VISTA_Z", "VISTA_Y", "VISTA_J", "VISTA_H", "VISTA_Ks"]
    assert same_filter("H", vista) == ["VISTA_H"]
    assert same_filter("2mass_h", vista) == ["VISTA_H"]  # any alias: its canonical name's filter
    assert same_filter("z", ["KiDS_r", *vista]) == ["VISTA_Z"]  # case aside
    assert same_filter("ks", ["Ks", "VISTA_Ks"]) == ["Ks", "VISTA_Ks"]
    assert same_filter("NUV", vista) == []
    with pytest.raises(ValueError, match="unknown band 'Q'"):
        same_filter("g", ["Q"])
