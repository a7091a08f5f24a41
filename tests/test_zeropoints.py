"""Images in counts: zero points from survey headers or given, into nanomaggies (issue 15, item 3)."""

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS

from bandsynth import BandStack
from bandsynth.errors import BandUnitError
from bandsynth.units import parse_unit
from bandsynth.zeropoints import header_zeropoint, is_count_unit, nanomaggy_factor


def _wcs(scale, n):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval, w.wcs.crpix = [150.0, 2.0], [(n + 1) / 2, (n + 1) / 2]
    w.wcs.cdelt = [-scale / 3600, scale / 3600]
    return w


def _blob(n, width):
    y, x = np.mgrid[:n, :n]
    c = (n - 1) / 2
    return np.exp(-((x - c) ** 2 + (y - c) ** 2) / (2 * width**2)).astype(np.float32)


@pytest.mark.parametrize("keywords, band, expected, source", [
    ({"FLUXMAG0": 10**10.8}, "r", 27.0, "FLUXMAG0"),
    ({"PHOTZP": 30.0, "PHOTSYS": "AB"}, "r", 30.0, "PHOTZP = 30 (AB)"),
    ({"PHOTZP": 25.0, "PHOTSYS": "VEGA"}, "Ks", 26.85, "(Vega) + 1.85"),
    ({"MAGZP": 20.0}, "J", 20.91, "MAGZP = 20 (Vega) + 0.91"),
    ({"MAGZP": 25.0, "MAGSYS": "AB"}, "Ks", 25.0, "MAGZP = 25 (AB)"),  # was read as Vega: 5.5x too faint
    ({"MAGZERO": 20.0, "PHOTSYS": "VEGAMAG"}, "J", 20.91, "MAGZERO = 20 (Vega) + 0.91"),
    ({"MAGZERO": 22.5}, "g", 22.5, "MAGZERO = 22.5 (AB)"),
    ({"TELESCOP": "GALEX"}, "NUV", 20.08, "GALEX NUV"),
    ({"TELESCOP": "GALEX"}, "FUV", 18.82, "GALEX FUV"),
])
def test_header_zeropoints_of_the_surveys(keywords, band, expected, source):
    zp = header_zeropoint(fits.Header(keywords), band)
    assert zp.ab == pytest.approx(expected, abs=1e-9)
    assert source in zp.source


def test_no_zeropoint_and_unknown_vega_offset():
    assert header_zeropoint(fits.Header({"BUNIT": "DN"}), "r") is None
    with pytest.raises(ValueError, match="band 'r': MAGZP = 20 is a Vega zero point.*pass an AB zeropoint="):
        header_zeropoint(fits.Header({"MAGZP": 20.0}), "r")


def test_count_units_and_their_survey_spellings():
    assert [is_count_unit(parse_unit(t)) for t in ("DN", "ADU", "counts/s", "cps", "e-/s", "nanomaggy", "Jy")] == [
        True, True, True, True, True, False, False]
    assert nanomaggy_factor(22.5) == 1.0 and nanomaggy_factor(27.0) == pytest.approx(10**-1.8)


@pytest.fixture
def survey_files(tmp_path):
    """A GALEX-like NUV file in counts/s at 1.5"/px (no BUNIT) and a 2MASS-like Ks file in DN with MAGZP at 1.0"/px."""
    nuv = 0.05 * _blob(40, 3.0)
    header = _wcs(1.5, 40).to_header()
    header["TELESCOP"] = "GALEX"
    fits.PrimaryHDU(nuv, header).writeto(tmp_path / "nuv.fits")
    ks = 100.0 * _blob(60, 4.5)
    header = _wcs(1.0, 60).to_header()
    header["BUNIT"], header["MAGZP"] = "DN", 20.0
    fits.PrimaryHDU(ks, header).writeto(tmp_path / "ks.fits")
    return {"NUV": tmp_path / "nuv.fits", "Ks": tmp_path / "ks.fits"}, float(nuv.sum()), float(ks.sum())


def test_survey_files_become_nanomaggies_with_their_header_zeropoints(survey_files):
    files, nuv_counts, ks_dn = survey_files
    stack = BandStack.from_fits(files, reproject_to="Ks")
    assert stack.unit == u.nmgy
    assert float(np.sum(stack["Ks"].data)) == pytest.approx(ks_dn * 10 ** (-0.4 * (21.85 - 22.5)), rel=1e-5)
    # Flux-conserving resampling from 1.5" to 1.0": the NUV total is kept to 0.5 %.
    assert float(np.nansum(stack["NUV"].data)) == pytest.approx(nuv_counts * 10 ** (-0.4 * (20.08 - 22.5)), rel=5e-3)
    records = {r["band"]: r for r in stack.meta["zeropoints"]}
    assert records["Ks"]["unit"] == "DN" and records["Ks"]["zeropoint_ab"] == pytest.approx(21.85)
    assert records["NUV"]["unit"] == "ct / s" and "GALEX" in records["NUV"]["source"]
    # unit= gives a flux unit to files without BUNIT, not to one whose header states a zero point (read as
    # nanomaggies, the GALEX map came out 9x too faint); a count unit it does give
    with pytest.warns(AstropyUserWarning, match=r"band 'NUV': '.*' has no BUNIT but states a zero point: read as "
                                                r"ct / s with it, not as nmgy \(unit= is for files that state neither"):
        with_unit = BandStack.from_fits({"NUV": files["NUV"]}, unit="nanomaggy")  # set aside without a word
    assert float(np.sum(with_unit["NUV"].data)) == pytest.approx(nuv_counts * 10 ** (-0.4 * (20.08 - 22.5)), rel=1e-5)
    as_dn = BandStack.from_fits({"NUV": files["NUV"]}, unit="DN", zeropoint={"NUV": 20.0})
    assert as_dn.meta["zeropoints"][0]["unit"] == "DN"


@pytest.mark.parametrize("keywords, asked, held", [
    ({"TELESCOP": "GALEX", "BAND": 2}, "NUV", "FUV"),  # GALEX: BAND = 1 NUV, 2 FUV
    ({"TELESCOP": "GALEX", "BAND": "NUV"}, "FUV", "NUV"),
    ({"ORIGIN": "2MASS", "FILTER": "j", "BUNIT": "DN", "MAGZP": 20.9}, "Ks", "J"),
])
def test_a_file_of_another_filter_is_named_before_its_zero_point_is_used(tmp_path, keywords, asked, held):
    # Read silently with the asked band's zero point: a GALEX FUV map as NUV came out 3.2x too faint.
    header = _wcs(1.5, 20).to_header()
    header.update(keywords)
    fits.PrimaryHDU(_blob(20, 3.0), header).writeto(tmp_path / "x.fits")
    with pytest.warns(AstropyUserWarning, match=f"x.fits' holds {held}, another filter, read as {asked} as asked"):
        BandStack.from_fits({asked: tmp_path / "x.fits"})


def test_a_given_zeropoint_that_is_no_number_names_its_band(survey_files):
    files, _, _ = survey_files
    with pytest.raises(BandUnitError, match=r"band 'Ks' \(.*ks\.fits'\): zeropoint must be a finite AB magnitude, "
                                            r"got 'abc'"):
        BandStack.from_fits({"Ks": files["Ks"]}, zeropoint="abc")


@pytest.mark.parametrize("keywords, given, message", [
    ({"PHOTZP": 99.0}, None, r"its header's PHOTZP = 99 \(AB\) gives an AB zero point of 99 mag, outside the 10-45 "
                             r"of survey images .*check the value, or pass zeropoint="),
    ({"PHOTZP": -99.0}, None, r"its header's PHOTZP = -99 \(AB\) gives an AB zero point of -99 mag"),
    ({}, -5.0, r"zeropoint= gives an AB zero point of -5 mag, outside the 10-45 of survey images \(the AB magnitude "
               r"of one adu in total\); check the value$"),
    ({}, 1e6, r"zeropoint= gives an AB zero point of 1e\+06 mag"),
])
def test_a_zeropoint_no_survey_image_has_is_refused(tmp_path, keywords, given, message):
    # PHOTZP = 99 (a catalogue's placeholder) turned the image into zeros and -99 into an overflow, each predicted
    # and written without an error.
    header = _wcs(1.0, 20).to_header()
    header.update({"BUNIT": "adu", **keywords})
    fits.PrimaryHDU(100 * _blob(20, 3.0), header).writeto(tmp_path / "r.fits")
    with pytest.raises(BandUnitError, match=r"band 'r' \(.*r\.fits'\): " + message):
        BandStack.from_fits({"r": tmp_path / "r.fits"}, zeropoint=None if given is None else {"r": given})


def test_a_zeropoint_given_for_a_file_without_bunit_reads_it_as_counts(tmp_path):
    # It asked for unit=, and with unit='nanomaggy' refused the zero point as one of an image in a physical unit.
    fits.PrimaryHDU(100 * _blob(20, 3.0), _wcs(1.0, 20).to_header()).writeto(tmp_path / "k.fits")
    stack = BandStack.from_fits({"K": tmp_path / "k.fits"}, zeropoint={"K": 21.85})
    assert float(np.sum(stack["Ks"].data)) == pytest.approx(100 * float(np.sum(_blob(20, 3.0))) * 10 ** (0.26),
                                                            rel=1e-5)
    assert stack.meta["zeropoints"][0]["unit"] == "ct"
    # with unit= for the files that state neither (--zeropoint K=21.85 --unit nanomaggy): the same
    named = BandStack.from_fits({"K": tmp_path / "k.fits"}, zeropoint={"K": 21.85}, unit="nanomaggy")
    np.testing.assert_array_equal(named["Ks"].data, stack["Ks"].data)


def test_given_zeropoint_wins_and_is_recorded(survey_files):
    files, _, ks_dn = survey_files
    stack = BandStack.from_fits({"Ks": files["Ks"]}, zeropoint={"Ks": 25.0})
    assert float(np.sum(stack["Ks"].data)) == pytest.approx(ks_dn * 10 ** (-0.4 * 2.5), rel=1e-5)
    assert stack.meta["zeropoints"] == [{"band": "Ks", "unit": "DN", "zeropoint_ab": 25.0, "source": "zeropoint="}]


def test_counts_without_a_zeropoint_are_refused(tmp_path):
    header = _wcs(1.0, 20).to_header()
    header["BUNIT"] = "adu"
    fits.PrimaryHDU(_blob(20, 3.0), header).writeto(tmp_path / "r.fits")
    with pytest.raises(BandUnitError, match=r"band 'r' \(.*r\.fits'\) is in adu and its header states no zero point"
                                            r".*pass zeropoint=") as err:
        BandStack.from_fits({"r": tmp_path / "r.fits"})
    assert err.value.band == "r" and str(err.value.path).endswith("r.fits")


def test_arrays_in_counts_with_a_scalar_zeropoint():
    stack = BandStack({"g": 10 * _blob(16, 2.0), "r": 20 * _blob(16, 2.0)}, unit="DN", zeropoint=27.0)
    assert stack.unit == u.nmgy
    assert float(stack["r"].data.max()) == pytest.approx(20 * float(_blob(16, 2.0).max()) * 10**-1.8, rel=1e-6)
    assert [r["band"] for r in stack.meta["zeropoints"]] == ["g", "r"]


def test_zeropoint_for_an_image_in_a_physical_unit_is_an_error():
    with pytest.raises(ValueError, match="zeropoint=27.0 given, but no band is in counts"):
        BandStack({"r": _blob(16, 2.0)}, unit="nanomaggy", zeropoint=27.0)
    with pytest.raises(BandUnitError, match="band 'r': zeropoint= applies to images in counts"):
        BandStack({"r": _blob(16, 2.0)}, unit="nanomaggy", zeropoint={"r": 27.0})


# ---------------------------------------------------------------------- command line
def test_cli_reads_counts_and_records_the_zeropoints(tiny_model, survey_files, tmp_path, capsys):
    from bandsynth import SyntheticBand
    from bandsynth.cli import main

    files, _, _ = survey_files
    out = tmp_path / "r.fits"
    code = main(["predict", "--model", str(tiny_model[0]), "--input", f"NUV={files['NUV']}",
                 "--input", f"Ks={files['Ks']}", "--zeropoint", "Ks=25", "--reproject-to", "Ks", "-o", str(out)])
    assert code == 0
    # said as it is done, not only in the file's history (a header's Vega MAGZP was applied without a word)
    err = capsys.readouterr().err
    assert "NUV: ct / s converted to nanomaggies with AB zero point 20.08 (GALEX NUV counts/s zero point 20.08 " \
           "(AB))" in err and "Ks: DN converted to nanomaggies with AB zero point 25 (--zeropoint)" in err
    provenance = SyntheticBand.read(out).provenance
    assert {z["band"]: z["source"] for z in provenance["zeropoints"]} == {
        "NUV": "GALEX NUV counts/s zero point 20.08 (AB)", "Ks": "zeropoint="}
    assert any(line.startswith("Converted Ks from DN to nanomaggies with AB zero point 25.0000")
               for line in provenance["history"])


@pytest.mark.parametrize("option, message", [
    (["--zeropoint", "Ks"], "--zeropoint 'Ks': expected BAND=ZP"),
    (["--zeropoint", "Ks=faint"], "--zeropoint 'Ks=faint': 'faint' is not a finite number"),
    (["--zeropoint", "Ks=nan"], "--zeropoint 'Ks=nan': 'nan' is not a finite number"),  # was "given twice"
    (["--zeropoint", "Ks=inf"], "--zeropoint 'Ks=inf': 'inf' is not a finite number"),
    (["--zeropoint", "Q=25"], "--zeropoint 'Q=25': unknown band 'Q'"),
    (["--zeropoint", "r=21.85"], "--zeropoint r: not one of the bands this run reads with model 'tiny_test' (NUV, Ks)"),
    (["--unit", "furlongs"], "--unit 'furlongs': not a unit astropy understands"),
])
def test_cli_zeropoint_and_unit_usage_errors(tiny_model, survey_files, tmp_path, option, message, capsys):
    from bandsynth.cli import main

    files, _, _ = survey_files
    code = main(["predict", "--model", str(tiny_model[0]), "--input", f"NUV={files['NUV']}",
                 "--input", f"Ks={files['Ks']}", *option, "-o", str(tmp_path / "r.fits")])
    assert code == 2
    assert message in capsys.readouterr().err


def test_cli_counts_without_zeropoint_names_the_option(tiny_model, tmp_path, caplog):
    from bandsynth.cli import main

    for band, n in (("NUV", 20), ("Ks", 20)):
        header = _wcs(1.0, n).to_header()
        header["BUNIT"] = "DN"
        fits.PrimaryHDU(_blob(n, 3.0), header).writeto(tmp_path / f"{band}.fits")
    code = main(["predict", "--model", str(tiny_model[0]), "--input", f"NUV={tmp_path / 'NUV.fits'}",
                 "--input", f"Ks={tmp_path / 'Ks.fits'}", "--zeropoint", "Ks=25", "-o", str(tmp_path / "r.fits")])
    assert code == 1
    assert "band 'NUV'" in caplog.text and "pass --zeropoint BAND=ZP" in caplog.text
    assert not (tmp_path / "r.fits").exists()


def test_a_zero_point_in_the_primary_header_holds_for_the_image_after_it(tmp_path):
    # HSC coadds state FLUXMAG0 once, in the primary header; the image is the next HDU.  Read from the image's
    # header alone, the file "stated no zero point".
    image = 40.0 * _blob(24, 3.0)
    fits.HDUList([fits.PrimaryHDU(header=fits.Header({"FLUXMAG0": 10 ** (0.4 * 27.0)})),
                  fits.ImageHDU(image, _wcs(0.168, 24).to_header(), name="IMAGE")]).writeto(tmp_path / "hsc.fits")
    stack = BandStack.from_fits({"r": tmp_path / "hsc.fits"}, unit="adu")
    assert float(np.sum(stack["r"].data)) == pytest.approx(image.sum() * 10 ** (-0.4 * (27.0 - 22.5)), rel=1e-5)
    assert stack.meta["zeropoints"][0]["zeropoint_ab"] == pytest.approx(27.0)
