"""Folders of per-band FITS cut-outs: scanning, problem reports, stacking onto one grid."""

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from bandsynth.datasets.errors import DataFormatError
from bandsynth.datasets.folder import FolderScan, scan_folder

CENTRE = (150.0, 2.0)


def cutout(path, *, npix=20, scale_arcsec=1.5, with_wcs=True, peak=1.0, offset=(0.0, 0.0)):
    """Write a one-band cut-out with a Gaussian source at CENTRE (+ offset in arcsec)."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = list(CENTRE)
    wcs.wcs.crpix = [(npix + 1) / 2, (npix + 1) / 2]
    wcs.wcs.cdelt = [-scale_arcsec / 3600, scale_arcsec / 3600]
    yy, xx = np.mgrid[:npix, :npix]
    x0, y0 = (npix - 1) / 2 + offset[0] / scale_arcsec, (npix - 1) / 2 + offset[1] / scale_arcsec
    sigma = 3.0 / scale_arcsec  # 3 arcsec on the sky
    data = peak * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2))
    header = wcs.to_header() if with_wcs else fits.Header()
    header["BUNIT"] = "Jy"
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.writeto(path, data.astype(np.float32), header)
    return path


@pytest.fixture
def survey_folder(tmp_path):
    d = tmp_path / "cutouts"
    cutout(d / "g1_nuv.fits", npix=20, scale_arcsec=1.5, peak=2.0)
    cutout(d / "g1_Ks.fits", npix=30, scale_arcsec=1.0, peak=5.0, offset=(3.0, -2.0))
    cutout(d / "g2_galex_nuv.fits", npix=24, scale_arcsec=1.0)
    cutout(d / "g2_2mass_ks.fits", npix=24, scale_arcsec=1.0, peak=3.0)
    cutout(d / "g10_NUV.fits", npix=24, scale_arcsec=1.0)
    cutout(d / "g10_K.fits", npix=24, scale_arcsec=1.0)
    cutout(d / "g3_nuv.fits")  # no Ks: incomplete
    cutout(d / "g4_foo.fits")  # unknown band
    cutout(d / "g6_nuv.fits")
    cutout(d / "g6_galex_nuv.fits")  # duplicate band for g6
    cutout(d / "g6_ks.fits")
    (d / "README.txt").write_text("cut-outs from the archive")
    (d / ".hidden_nuv.fits").write_bytes(b"")
    good = cutout(d / "g5_ks.fits")
    cutout(d / "g5_nuv.fits")
    raw = (d / "g5_nuv.fits").read_bytes()
    (d / "g5_nuv.fits").write_bytes(raw[: len(raw) - 2000])  # truncated inside the data
    (d / "g7_nuv.fits").write_bytes(b"garbage" * 100)  # corrupt
    (d / "g7_ks.fits").write_bytes(good.read_bytes())
    return d


def test_scan_groups_files_and_reports_every_problem(survey_folder):
    scan = scan_folder(survey_folder, bands=["NUV", "K"])
    assert isinstance(scan, FolderScan)
    assert scan.bands == ("NUV", "Ks")
    assert scan.ids == ("g1", "g2", "g6", "g10")  # natural order
    assert scan.incomplete == ("g3", "g5", "g7")
    assert set(scan.files["g2"]) == {"NUV", "Ks"}
    assert scan.files["g2"]["NUV"].name == "g2_galex_nuv.fits"
    problems = {(row["file"].split("/")[-1], row["band"]): row["error"] for row in scan.problems}
    assert problems[("README.txt", "")] == "does not match pattern {id}_{band}.fits"
    assert problems[("g4_foo.fits", "foo")] == "unknown band 'foo'"
    assert "duplicate: band NUV of 'g6'" in problems[("g6_nuv.fits", "NUV")]
    assert "file is truncated" in problems[("g5_nuv.fits", "NUV")]
    assert "not a readable FITS file" in problems[("g7_nuv.fits", "NUV")]
    assert problems[("", "Ks")] == "object 'g3' has no usable file for band Ks"
    missing = [(row["id"], row["band"]) for row in scan.problems if row["file"] == ""]
    assert sorted(missing) == [("g3", "Ks"), ("g5", "NUV"), ("g7", "NUV")]
    assert len(scan.problems) == 8
    assert not any(".hidden" in f for f in scan.problems["file"])
    assert len(scan) == 4 and "g1" in scan and "g3" not in scan


def test_scan_without_band_list_keeps_every_object(survey_folder):
    scan = scan_folder(survey_folder)
    assert scan.bands is None
    assert "g3" in scan.ids and scan.incomplete == ()
    assert set(scan.files["g3"]) == {"NUV"}


def test_longest_known_band_string_wins(tmp_path):
    cutout(tmp_path / "ngc_1_galex_nuv.fits")
    cutout(tmp_path / "ngc_1_sdss_r.fits")
    scan = scan_folder(tmp_path)
    assert scan.ids == ("ngc_1",)
    assert set(scan.files["ngc_1"]) == {"NUV", "r"}


def test_stack_on_common_grid_without_reprojection(survey_folder):
    scan = scan_folder(survey_folder, bands=["NUV", "Ks"])
    stack = scan.stack("g2")
    assert stack.names == ("NUV", "Ks")
    assert stack.shape == (24, 24)
    assert stack.meta["reprojected"] == [] and stack.meta["grid_band"] is None
    np.testing.assert_allclose(stack["Ks"].data, fits.getdata(survey_folder / "g2_2mass_ks.fits"))


def test_stack_reprojects_onto_finest_grid(survey_folder):
    scan = scan_folder(survey_folder, bands=["NUV", "Ks"])
    stack = scan.stack("g1")
    assert stack.meta["grid_band"] == "Ks"
    assert stack.meta["reprojected"] == ["NUV"]
    assert stack.shape == (30, 30)
    # the NUV source (at CENTRE) lands on the sky position of CENTRE in the Ks grid
    nuv = np.nan_to_num(stack["NUV"].data)
    y, x = np.unravel_index(np.argmax(nuv), nuv.shape)
    ra, dec = stack.wcs.wcs_pix2world([[x, y]], 0)[0]
    assert abs((ra - CENTRE[0]) * 3600 * np.cos(np.radians(dec))) < 1.0
    assert abs((dec - CENTRE[1]) * 3600) < 1.0
    # Flux per pixel: the 1.5" pixels are split into 1" ones, so the total is kept and the peak
    # drops by the pixel-area ratio (the default conserve_flux="auto").
    assert nuv.max() == pytest.approx(2.0 / 1.5**2, rel=0.1)
    assert nuv.sum() == pytest.approx(np.nansum(fits.getdata(survey_folder / "g1_nuv.fits")), rel=0.02)


def test_stack_reproject_to_named_band(survey_folder):
    scan = scan_folder(survey_folder, bands=["NUV", "Ks"])
    stack = scan.stack("g1", reproject_to="galex_nuv")
    assert stack.meta["grid_band"] == "NUV" and stack.meta["reprojected"] == ["Ks"]
    assert stack.shape == (20, 20)
    with pytest.raises(ValueError, match="object 'g1' has no band 'r'"):
        scan.stack("g1", reproject_to="r")
    with pytest.raises(ValueError, match="method must be one of"):
        scan.stack("g1", method="nearest")
    with pytest.raises(KeyError, match="no object 'g99'"):
        scan.stack("g99")


def test_iteration_yields_stacks_and_exceptions(tmp_path, survey_folder):
    cutout(tmp_path / "a1_nuv.fits")
    cutout(tmp_path / "a1_ks.fits")
    bad = cutout(tmp_path / "a2_nuv.fits")
    cutout(tmp_path / "a2_ks.fits")
    bad.write_bytes(bad.read_bytes()[:-2000])
    scan = scan_folder(tmp_path, bands=["NUV", "Ks"], check=False)  # nothing opened while scanning
    assert scan.ids == ("a1", "a2") and len(scan.problems) == 0
    results = dict(scan)
    assert results["a1"].names == ("NUV", "Ks")
    assert isinstance(results["a2"], DataFormatError)
    assert "a2_nuv.fits" in str(results["a2"])


def test_different_grids_without_wcs_is_an_error(tmp_path):
    cutout(tmp_path / "b1_nuv.fits", npix=20, with_wcs=False)
    cutout(tmp_path / "b1_ks.fits", npix=30, with_wcs=False)
    scan = scan_folder(tmp_path)
    with pytest.raises(DataFormatError, match=r"object 'b1': bands are on different grids but NUV, Ks have no "
                                              r"celestial WCS"):
        scan.stack("b1")


def test_files_without_bunit_need_a_unit(tmp_path):
    for band in ("g", "r"):
        path = cutout(tmp_path / f"c1_{band}.fits", npix=12, scale_arcsec=0.4)
        with fits.open(path, mode="update") as hdul:
            del hdul[0].header["BUNIT"]
    scan = scan_folder(tmp_path)
    with pytest.raises(DataFormatError, match=r"object 'c1' .*has no BUNIT keyword and no unit= was given"):
        scan.stack("c1")
    assert scan.stack("c1", unit="nanomaggy")["r"].unit == u.nmgy


def test_nested_pattern(tmp_path):
    cutout(tmp_path / "obj7" / "r.fits", npix=16, scale_arcsec=0.4)
    cutout(tmp_path / "obj7" / "g.fits", npix=16, scale_arcsec=0.4)
    cutout(tmp_path / "obj8" / "r.fits", npix=16, scale_arcsec=0.4)
    scan = scan_folder(tmp_path, "{id}/{band}.fits", bands=["g", "r"])
    assert scan.ids == ("obj7",) and scan.incomplete == ("obj8",)
    assert scan.stack("obj7").names == ("g", "r")


def test_one_multi_extension_file_per_object(tmp_path):
    # Survey cut-out services deliver every band of an object in one file: a pattern without {band}.
    for key, bands in (("c1", ("g", "r", "i")), ("c2", ("g", "i"))):
        hdus = [fits.PrimaryHDU()]
        for k, band in enumerate(bands):
            one = cutout(tmp_path / "one" / f"{key}_{band}.fits", npix=16, scale_arcsec=0.4, peak=k + 1.0)
            with fits.open(one) as hdul:
                hdus.append(fits.ImageHDU(hdul[0].data, hdul[0].header, name=band))
        fits.HDUList(hdus).writeto(tmp_path / f"{key}.fits")
    (tmp_path / "c3.fits").write_bytes(b"garbage" * 100)
    scan = scan_folder(tmp_path, "{id}.fits", bands=["r", "g"])
    assert scan.ids == ("c1", "c2") and scan.files["c1"] == {"g": tmp_path / "c1.fits", "r": tmp_path / "c1.fits"}
    assert [(row["id"], row["band"]) for row in scan.problems] == [("c3", "")]
    stack = scan.stack("c1")
    assert stack.names == ("g", "r")
    np.testing.assert_allclose(stack["r"].data, 2 * stack["g"].data, rtol=1e-6)  # r's HDU, not the first (g)
    with pytest.raises(ValueError, match=r"holds the images of several bands \(HDUs G \(g\), I \(i\)\), none of "
                                         "them r"):
        scan.stack("c2")
    with pytest.raises(ValueError, match=r"pattern '\{id\}.fits' has no '\{band\}' .*: pass bands="):
        scan_folder(tmp_path, "{id}.fits")
    # gzip-compressed stamps (as survey services deliver them): whole ones are read, one cut short is not
    import gzip

    (tmp_path / "gz").mkdir()
    zipped = gzip.compress((tmp_path / "c1.fits").read_bytes())
    (tmp_path / "gz" / "c1.fits.gz").write_bytes(zipped)
    (tmp_path / "gz" / "c4.fits.gz").write_bytes(zipped[: len(zipped) // 2])
    scan = scan_folder(tmp_path / "gz", "{id}.fits.gz", bands=["r", "g"])
    assert scan.ids == ("c1",) and scan.stack("c1").names == ("g", "r")
    assert [row["id"] for row in scan.problems] == ["c4"] and "truncated or damaged" in scan.problems[0]["error"]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"pattern must contain '\{id\}' once and '\{band\}' at most once"):
        scan_folder(tmp_path, "{band}.fits")
    with pytest.raises(ValueError, match="at most once"):
        scan_folder(tmp_path, "{id}_{band}_{band}.fits")
    with pytest.raises(TypeError, match="pattern must be a string"):
        scan_folder(tmp_path, 3)
    with pytest.raises(NotADirectoryError):
        scan_folder(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown band 'Y'"):
        scan_folder(tmp_path, bands=["Y"])
