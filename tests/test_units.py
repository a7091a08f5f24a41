"""bandsynth.units: astropy's nanomaggy and the package's one conversion path."""

import astropy.units as u
import numpy as np
import pytest

from bandsynth.bands import get_band
from bandsynth.units import (
    ab_magnitude,
    conversion_factor,
    flux_from_ab,
    format_unit,
    nanomaggy,
    parse_unit,
    to_unit,
)


def test_nanomaggy_is_astropys_unit():
    assert nanomaggy is u.nmgy
    for text in ("nanomaggy", "nanomaggies", "nmgy", " Nanomaggy "):
        assert parse_unit(text) is u.nmgy
    assert parse_unit("nanomaggies / arcsec2") == u.nmgy / u.arcsec**2
    assert parse_unit(u.Jy) is u.Jy
    assert format_unit(u.nmgy) == "nanomaggy" and format_unit("nmgy / arcsec2") == "nanomaggy / arcsec2"
    assert parse_unit(format_unit(u.nmgy / u.arcsec**2)) == u.nmgy / u.arcsec**2
    with pytest.raises(TypeError, match="unit must be a string or astropy unit, got int"):
        parse_unit(3)
    with pytest.raises(ValueError):
        parse_unit("furlongs per fortnight")


def test_ab_magnitudes_round_trip():
    assert float(ab_magnitude(1.0)) == 22.5
    np.testing.assert_allclose(flux_from_ab(ab_magnitude([0.3, 1.0, 250.0])), [0.3, 1.0, 250.0])


def test_per_pixel_flux():
    assert conversion_factor(u.nmgy, u.Jy) == pytest.approx(3.631e-6)
    assert conversion_factor("Jy", "nanomaggy") == pytest.approx(1 / 3.631e-6)
    assert conversion_factor(u.mgy, u.nmgy) == pytest.approx(1e9)
    np.testing.assert_allclose(to_unit([1.0, 2.0], "nanomaggy", "uJy"), [3.631, 7.262])
    # f_lambda needs the band's wavelength
    flam = u.erg / u.s / u.cm**2 / u.AA
    r = get_band("r")
    expected = (3.631e-6 * u.Jy).to_value(flam, equivalencies=u.spectral_density(r.wavelength))
    assert conversion_factor(u.nmgy, flam, band="r") == pytest.approx(expected)
    # float32 data stay float32; the input is not modified
    data = np.ones(4, np.float32)
    out = to_unit(data, u.Jy, u.nmgy)
    assert out.dtype == np.float32 and data[0] == 1.0


def test_surface_brightness():
    assert to_unit(1.0, "nanomaggy / arcsec2", "Jy / sr") == pytest.approx(3.631e-6 * (u.sr / u.arcsec**2).to(u.one))
    # per pixel <-> per solid angle only with the pixel area
    with pytest.raises(u.UnitConversionError, match="band 'r' 'g1.fits': cannot convert nmgy to nmgy / arcsec2"):
        to_unit(1.0, u.nmgy, u.nmgy / u.arcsec**2, band="r", path="g1.fits")
    area = (0.25 * u.arcsec) ** 2
    assert to_unit(1.0, u.nmgy, u.nmgy / u.arcsec**2, pixel_area=area) == pytest.approx(16.0)
    assert to_unit(16.0, u.nmgy / u.arcsec**2, u.nmgy, pixel_area=area) == pytest.approx(1.0)


def test_ab_magnitudes_per_pixel():
    np.testing.assert_allclose(to_unit([22.5, 20.0], u.ABmag, u.nmgy), [1.0, 10.0])
    np.testing.assert_allclose(to_unit([1.0, 10.0], u.nmgy, "mag(AB)"), [22.5, 20.0])
    flux, sigma = to_unit(np.array([22.5]), u.ABmag, u.nmgy, uncertainty=np.array([0.1]))
    assert sigma[0] == pytest.approx(0.4 * np.log(10) * 0.1)
    mag, sigma_m = to_unit(flux, u.nmgy, u.ABmag, uncertainty=sigma)
    assert mag[0] == pytest.approx(22.5) and sigma_m[0] == pytest.approx(0.1)
    with pytest.raises(u.UnitConversionError, match="magnitudes are not a linear unit"):
        conversion_factor(u.ABmag, u.nmgy)
    with pytest.raises(u.UnitConversionError, match="band 'g': only AB magnitudes are understood"):
        to_unit(1.0, u.STmag, u.nmgy, band="g")


def test_a_file_in_magnitudes_of_no_system_is_named_itself(tmp_path):
    # BUNIT 'mag' on the first band blamed the second: "band 'Ks' (k.fits): cannot convert its unit nmgy to mag"
    from astropy.io import fits

    from bandsynth import BandStack
    from bandsynth.errors import BandUnitError

    image = np.arange(1.0, 65.0, dtype=np.float32).reshape(8, 8)
    for name, unit in (("nuv.fits", "mag"), ("k.fits", "nanomaggy")):
        fits.PrimaryHDU(image, fits.Header({"BUNIT": unit})).writeto(tmp_path / name)
    with pytest.raises(BandUnitError, match=r"band 'NUV' \(.*nuv\.fits'?\): its unit mag is a magnitude of no stated "
                                            r"system; give AB magnitudes per pixel \('mag\(AB\)'\) or a flux unit"):
        BandStack.from_fits({"NUV": tmp_path / "nuv.fits", "Ks": tmp_path / "k.fits"})


def test_uncertainty_is_scaled_with_the_data():
    data, sigma = to_unit(np.array([2.0]), u.Jy, u.mJy, uncertainty=np.array([0.5]))
    assert data[0] == pytest.approx(2000.0) and sigma[0] == pytest.approx(500.0)


def test_a_stack_in_jansky_goes_into_a_nanomaggy_model(tiny_translator):
    from bandsynth.datasets import make_galaxy

    galaxy = make_galaxy(3, bands=["NUV", "Ks"], size=48)
    in_jy = type(galaxy).from_arrays(
        {b: galaxy[b].data * 3.631e-6 for b in galaxy.names}, unit="Jy", wcs=galaxy.wcs
    )
    a = tiny_translator.predict(galaxy, precision="fp32", uncertainty=False)
    b = tiny_translator.predict(in_jy, precision="fp32", uncertainty=False)
    assert b.unit == a.unit
    np.testing.assert_allclose(b.data, a.data, rtol=1e-3, atol=1e-4 * float(np.abs(a.data).max()))


def test_an_unknown_unit_keeps_astropys_diagnosis_without_its_advice_on_defining_units():
    # "define it with u.def_unit" is advice for code; a BUNIT typo is fixed in the file (or given as unit=/--unit)
    from bandsynth.units import parse_unit

    with pytest.raises(ValueError, match="nanomaggiez is not a valid unit. Did you mean nanomaggy?") as err:
        parse_unit("nanomaggiez")
    assert "def_unit" not in str(err.value) and "add_enabled_units" not in str(err.value)


def test_headers_written_in_upper_case_or_per_pixel_are_read_as_they_mean(tmp_path):
    # FITS units are case-sensitive: "COUNTS/S" read as it stands was counts per siemens, "JY" refused; a flux
    # "per pixel" is what an image holds anyway; a blank BUNIT states no unit (it was read as dimensionless).
    from astropy.io import fits

    from bandsynth import BandStack
    from bandsynth.errors import BandInputError

    for text, unit in (("COUNTS/S", u.ct / u.s), ("CTS/S", u.ct / u.s), ("JY", u.Jy), ("MJY/SR", u.MJy / u.sr),
                       ("DN/S", u.DN / u.s), ("electrons/s", u.electron / u.s), ("Jy/pixel", u.Jy),
                       ("nanomaggy/pix", u.nmgy)):
        assert parse_unit(text) == unit, text
    header = fits.Header({"BUNIT": ""})
    fits.PrimaryHDU(np.ones((8, 8)), header).writeto(tmp_path / "blank.fits")
    with pytest.raises(BandInputError, match=r"band 'r': '.*blank\.fits' HDU 0 has no BUNIT keyword and no unit= "
                                             r"was given"):
        BandStack.from_fits({"r": tmp_path / "blank.fits"})
