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
