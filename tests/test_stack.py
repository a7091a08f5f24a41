"""Tests of bandsynth.stack.BandStack."""

import copy
import hashlib
import pickle
import sys
import types
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import CCDData, NDData, NDDataRef, StdDevUncertainty, VarianceUncertainty
from astropy.nddata.utils import NoOverlapError
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_area, proj_plane_pixel_scales

from bandsynth import BandInputError, BandTypeError
from bandsynth.bands import get_band
from bandsynth.errors import BandFileError, BandFileNotFoundError, BandUnitError
from bandsynth.scaling import reference_flux
from bandsynth.stack import BandStack
from bandsynth.bands import header_band
from bandsynth.units import nanomaggy


# ---------------------------------------------------------------------- fixtures
def tan_wcs(n, scale=1.0, *, crval=(150.0, 2.0), rotation=0.0, crpix=None):
    """Tangent-plane WCS of an n x n grid, ``scale`` arcsec/pixel, rotated by ``rotation`` deg."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.crval = list(crval)
    w.wcs.crpix = list(crpix) if crpix is not None else [(n + 1) / 2.0, (n + 1) / 2.0]
    c, s = np.cos(np.radians(rotation)), np.sin(np.radians(rotation))
    w.wcs.cd = (scale / 3600.0) * np.array([[-c, s], [s, c]])
    w.array_shape = (n, n)
    return w


def gaussian(n, *, x0=None, y0=None, sigma=3.0, amplitude=1.0, background=0.0):
    yy, xx = np.mgrid[:n, :n]
    x0 = (n - 1) / 2.0 if x0 is None else x0
    y0 = (n - 1) / 2.0 if y0 is None else y0
    return background + amplitude * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2))


def same_grid(w1, w2, shape):
    """Whether two WCSs put every pixel of ``shape`` at the same sky position."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    sep = w1.pixel_to_world(xx, yy).separation(w2.pixel_to_world(xx, yy))
    return float(np.max(sep.to_value(u.arcsec))) < 1e-6


@pytest.fixture
def three_band():
    wcs = tan_wcs(32)
    images = {"K": gaussian(32, amplitude=3.0), "sdss_r": gaussian(32, amplitude=2.0), "NUV": gaussian(32)}
    sigma = {"NUV": np.full((32, 32), 0.1), "r": np.full((32, 32), 0.2), "Ks": np.full((32, 32), 0.3)}
    return BandStack.from_arrays(images, wcs=wcs, unit=nanomaggy, uncertainty=sigma, meta={"galaxy_id": 7})


# ---------------------------------------------------------------------- construction and access
def test_order_aliases_and_access(three_band):
    s = three_band
    assert s.names == ("NUV", "r", "Ks")
    assert list(s) == [get_band("NUV"), get_band("r"), get_band("Ks")]
    assert s.bands == tuple(s)
    assert len(s) == 3 and s.shape == (32, 32) and s.unit == nanomaggy
    assert "k" in s and "2mass_ks" in s and "g" not in s and "not-a-band" not in s
    ccd = s["galex_nuv"]
    assert isinstance(ccd, CCDData) and ccd.unit == nanomaggy
    assert isinstance(ccd.uncertainty, StdDevUncertainty)
    np.testing.assert_array_equal(ccd.uncertainty.array, 0.1)
    np.testing.assert_array_equal(s["K"].data, gaussian(32, amplitude=3.0))
    assert s.meta["galaxy_id"] == 7
    assert same_grid(s.wcs, tan_wcs(32), (32, 32))
    assert [b.name for b, _ in s.items()] == list(s.names)
    assert repr(s) == "<BandStack: 3 bands (NUV, r, Ks), 32 x 32 pixels, unit nanomaggy, WCS RA---TAN/DEC--TAN>"


def test_immutable(three_band):
    s = three_band
    ccd = s["r"]
    ccd.data[:] = -1.0  # a copy: the stack is untouched
    np.testing.assert_array_equal(s["r"].data, gaussian(32, amplitude=2.0))
    w = s.wcs
    w.wcs.crval = [0.0, 0.0]
    assert s.wcs.wcs.crval[0] == 150.0
    with pytest.raises(AttributeError, match="immutable"):
        s.shape = (3, 3)
    with pytest.raises(TypeError, match="read-only"):
        s.meta["galaxy_id"] = 8
    assert dict(s.meta) == {"galaxy_id": 7}
    assert copy.deepcopy(s) is s
    clone = pickle.loads(pickle.dumps(s))  # e.g. sent to a Dask worker
    np.testing.assert_array_equal(clone.to_array(), s.to_array())
    assert clone.names == s.names and clone.meta == s.meta and same_grid(clone.wcs, s.wcs, s.shape)
    with pytest.raises(TypeError, match="read-only"):
        clone.meta["galaxy_id"] = 8
    image = gaussian(8)
    stack = BandStack({"r": image}, unit="Jy")
    image[:] = 0.0  # the caller's array is copied
    np.testing.assert_array_equal(stack["r"].data, gaussian(8))
    # nested metadata: the caller's later edits, a write into a nested dict or into a band's returned meta
    # reached the stack (and so every "copy" of it)
    truth, header = {"r_mag": 15.0}, {"OBJECT": "M51", "zp": {"value": 22.5}}
    stack = BandStack({"r": CCDData(gaussian(8), unit="Jy", meta=header)}, meta={"truth": truth})
    truth["r_mag"], header["zp"]["value"] = 99.0, 0.0
    stack["r"].meta["zp"]["value"] = -1.0
    with pytest.raises(TypeError, match="read-only"):
        stack.meta["truth"]["r_mag"] = -1.0
    assert stack.meta["truth"] == {"r_mag": 15.0} and stack["r"].meta["zp"] == {"value": 22.5}
    mutable = copy.deepcopy(stack.meta)
    mutable["truth"]["r_mag"] = 16.0  # a copy is an ordinary dict, nested ones too
    assert pickle.loads(pickle.dumps(stack)).meta == {"truth": {"r_mag": 15.0}}
    # a header stays a header (cards, comments and all); a value that cannot be copied is shared, as NDData does
    import threading

    lock, card = threading.Lock(), fits.Header([("COMMENT", "one"), ("COMMENT", "two")])
    stack = BandStack({"r": gaussian(8)}, unit="Jy", meta={"header": card, "lock": lock})
    assert isinstance(stack.meta["header"], fits.Header) and list(stack.meta["header"]["COMMENT"]) == ["one", "two"]
    assert stack.meta["lock"] is lock


def test_from_arrays_with_nddata_and_quantities():
    wcs = tan_wcs(16)
    var = np.full((16, 16), 4.0)
    mask = np.zeros((16, 16), bool)
    mask[0, 0] = True
    ccd = CCDData(gaussian(16), unit="Jy", uncertainty=VarianceUncertainty(var), mask=mask, wcs=wcs, meta={"A": 1})
    extra = np.zeros((16, 16), bool)
    extra[1, 1] = True
    s = BandStack.from_arrays({"g": ccd, "r": gaussian(16, sigma=2.0) * u.Jy}, mask={"g": extra}, wcs=wcs)
    g = s["g"]
    np.testing.assert_allclose(g.uncertainty.array, 2.0)  # variance -> standard deviation
    assert g.mask[0, 0] and g.mask[1, 1] and g.mask.sum() == 2
    assert g.meta["A"] == 1
    assert s["r"].unit == u.Jy and s["r"].mask is None
    with pytest.raises(ValueError, match="band 'g': uncertainty is given twice"):
        BandStack.from_arrays({"g": ccd}, uncertainty={"g": var})
    with pytest.raises(ValueError, match="band 'r', which is not among the images"):
        BandStack.from_arrays({"g": ccd}, mask={"r": extra})
    nd = NDData(gaussian(16), unit="Jy")
    assert BandStack.from_arrays({"u": nd}).names == ("u",)
    # astropy's Masked Quantity and Masked array keep their masks (16 masked 1e6 pixels went in unmasked)
    from astropy.utils.masked import Masked

    spoilt = np.where(extra, 1e6, gaussian(16))
    for value in (Masked(spoilt * u.Jy, mask=extra), Masked(spoilt, mask=extra)):
        r = BandStack.from_arrays({"r": value}, unit="Jy")["r"]
        assert r.unit == u.Jy and r.mask is not None and r.mask.sum() == 1 and r.mask[1, 1]
    # an NDData's psf and a CCDData's flags were dropped without a word
    with pytest.warns(AstropyUserWarning, match=r"band 'r': its psf is not read: the PSF's FWHM is read from its "
                                                r"header \(PSF_FWHM, PSFFWHM or SEEING, arcsec\)"):
        BandStack.from_arrays({"r": NDData(gaussian(16), unit="Jy", psf=gaussian(5, sigma=1.0))})
    with pytest.warns(AstropyUserWarning, match="band 'r': its flags are not read: bad pixels are read from its mask"):
        BandStack.from_arrays({"r": CCDData(gaussian(16), unit="Jy", flags=np.zeros((16, 16), int))})
    with warnings.catch_warnings():  # a numpy array's .flags are numpy's own
        warnings.simplefilter("error", AstropyUserWarning)
        BandStack.from_arrays({"r": gaussian(16)}, unit="Jy")
    # a sliced NDDataRef's WCS is an astropy wrapper that FITS cannot hold: the message says what keeps one
    with pytest.raises(BandTypeError, match=r"got HighLevelWCSWrapper \(a sliced NDData's: slice a CCDData, or cut "
                                            r"out with astropy.nddata.Cutout2D, to keep a WCS\)"):
        BandStack.from_arrays({"r": NDDataRef(gaussian(16), unit="Jy", wcs=wcs)[2:14, 2:14]})


def test_unknown_band_and_missing_band(three_band):
    with pytest.raises(ValueError, match="unknown band 'Q'; known bands are: FUV, NUV"):
        BandStack.from_arrays({"Q": gaussian(8)}, unit="Jy")
    with pytest.raises(ValueError, match="unknown band 'Q'"):
        three_band["Q"]
    with pytest.raises(KeyError, match="band 'g' is not in this stack"):
        three_band["g"]
    with pytest.raises(ValueError, match="band 'Ks' is given twice"):
        BandStack.from_arrays({"K": gaussian(8), "Ks": gaussian(8)}, unit="Jy")
    with pytest.raises(ValueError, match="images is empty"):
        BandStack.from_arrays({}, unit="Jy")
    with pytest.raises(TypeError, match="images must be a mapping"):
        BandStack.from_arrays([gaussian(8)], unit="Jy")


def test_units():
    img = gaussian(8)
    with pytest.raises(ValueError, match="band 'r' has no unit.*pass unit="):
        BandStack.from_arrays({"r": img})
    # a dimensionless unit (CCDData(unit="")) states none either: it was taken, and predict then failed
    with pytest.raises(ValueError, match="band 'r' has no unit .*or a dimensionless one\\); pass unit="):
        BandStack.from_arrays({"r": CCDData(img, unit="")})
    assert BandStack.from_arrays({"r": CCDData(img, unit="")}, unit="Jy").unit == u.Jy
    # Convertible units are converted to the first band's unit.
    s = BandStack.from_arrays({"g": CCDData(img, unit=nanomaggy), "r": CCDData(img, unit="Jy")})
    np.testing.assert_allclose(s["r"].data, img / 3.631e-6)
    assert s["r"].unit == nanomaggy
    # f_lambda is converted to f_nu at the band's own wavelength.
    flam = u.erg / u.s / u.cm**2 / u.AA
    s = BandStack.from_arrays({"r": CCDData(img, unit=flam)}, unit="Jy")
    factor = (1 * flam).to_value(u.Jy, equivalencies=u.spectral_density(get_band("r").wavelength))
    np.testing.assert_allclose(s["r"].data, img * factor)
    with pytest.raises(u.UnitConversionError, match="band 'Ks': cannot convert its unit erg / s to Jy"):
        BandStack.from_arrays({"r": CCDData(img, unit="Jy"), "K": CCDData(img, unit="erg/s")})
    with pytest.raises(u.UnitConversionError, match="band 'r'.*requested with unit="):
        BandStack.from_arrays({"r": CCDData(img, unit="Jy")}, unit="adu")
    with pytest.raises(ValueError, match="not a unit astropy understands"):
        BandStack.from_arrays({"r": img}, unit="furlongs per fortnight")


def test_nonfinite_pixels_are_masked_not_zeroed():
    img = gaussian(8)
    img[2, 3] = np.nan
    img[4, 4] = np.inf
    with pytest.warns(AstropyUserWarning, match="band 'r': 2 non-finite pixel"):
        s = BandStack.from_arrays({"r": img}, unit="Jy")
    r = s["r"]
    assert np.isnan(r.data[2, 3]) and np.isposinf(r.data[4, 4])
    assert r.mask[2, 3] and r.mask[4, 4] and r.mask.sum() == 2
    sigma = np.full((8, 8), 0.1)
    sigma[0, 0] = np.nan
    with pytest.warns(AstropyUserWarning, match="band 'g': 1 pixel.*non-finite uncertainty"):
        s = BandStack.from_arrays({"g": gaussian(8)}, unit="Jy", uncertainty={"g": sigma})
    assert s["g"].mask[0, 0] and s["g"].data[0, 0] != 0


def test_bad_images():
    with pytest.raises(ValueError, match="band 'g' is all-zero"):
        BandStack.from_arrays({"g": np.zeros((8, 8)), "r": gaussian(8)}, unit="Jy")
    with pytest.raises(ValueError, match=r"band 'r' is constant \(every unmasked pixel is 3\)"):
        BandStack.from_arrays({"r": np.full((8, 8), 3.0)}, unit="Jy")
    with pytest.raises(ValueError, match=r"band 'r': expected a 2-D image, got an array of shape \(2, 8, 8\)"):
        BandStack.from_arrays({"r": np.ones((2, 8, 8))}, unit="Jy")
    with pytest.raises(TypeError, match="band 'r': the image must be a real numeric array"):
        BandStack.from_arrays({"r": np.full((4, 4), "x")}, unit="Jy")
    with pytest.raises(ValueError, match="band 'r': uncertainty has shape"):
        BandStack.from_arrays({"r": gaussian(8)}, unit="Jy", uncertainty={"r": np.ones((4, 4))})
    with pytest.raises(ValueError, match="band 'r': the uncertainty .* negative"):
        BandStack.from_arrays({"r": gaussian(8)}, unit="Jy", uncertainty={"r": -np.ones((8, 8))})
    with pytest.raises(ValueError, match="band 'r': every pixel is masked"):
        BandStack.from_arrays({"r": gaussian(8)}, unit="Jy", mask={"r": np.ones((8, 8), bool)})


def test_different_grids_are_refused_with_a_hint():
    with pytest.raises(ValueError, match=r"different shapes \(NUV \(8, 8\), Ks \(16, 16\)\).*reproject_to='NUV'"):
        BandStack.from_arrays({"NUV": gaussian(8), "K": gaussian(16)}, unit="Jy")
    shifted = tan_wcs(16, crpix=(9.0, 8.5))
    with pytest.raises(ValueError, match="band 'Ks' is not on the pixel grid of band 'NUV'.*reproject"):
        BandStack.from_arrays(
            {"NUV": gaussian(16), "K": gaussian(16)}, unit="Jy", wcs={"NUV": tan_wcs(16), "K": shifted}
        )
    # the hint names the band of the finest pixels, the grid models are trained on (it named the first: NUV's
    # 1.5" pixels, on which nuv_k_to_r, trained on Ks's 1.0", warned of the pixel scale)
    with pytest.raises(ValueError, match=r"different shapes \(NUV \(16, 16\), Ks \(24, 24\)\).*reproject_to='Ks'"):
        BandStack.from_arrays({"NUV": gaussian(16), "K": gaussian(24)}, unit="Jy",
                              wcs={"NUV": tan_wcs(16, 1.5), "K": tan_wcs(24, 1.0)})
    with pytest.raises(ValueError, match=r"band 'Ks' is not on the pixel grid of band 'NUV'.*reproject_to='Ks'"):
        BandStack.from_arrays({"NUV": gaussian(16), "K": gaussian(16)}, unit="Jy",
                              wcs={"NUV": tan_wcs(16, 1.5), "K": tan_wcs(16, 1.0)})
    with pytest.raises(ValueError, match="band 'Ks' has no celestial WCS while band 'NUV' has one"):
        BandStack.from_arrays({"NUV": gaussian(16), "K": gaussian(16)}, unit="Jy", wcs={"NUV": tan_wcs(16)})
    # An equivalent WCS written differently (CDELT instead of CD) is the same grid.
    other = WCS(tan_wcs(16).to_header())
    other.wcs.cdelt, other.wcs.pc = [-1 / 3600, 1 / 3600], np.eye(2)
    s = BandStack.from_arrays({"NUV": gaussian(16), "K": gaussian(16)}, unit="Jy", wcs={"NUV": tan_wcs(16), "K": other})
    assert s.shape == (16, 16)


def test_reproject_to_one_band():
    nuv = gaussian(24, sigma=2.0)
    k = gaussian(32, sigma=3.0)
    s = BandStack.from_arrays(
        {"NUV": nuv, "K": k},
        unit="Jy",
        wcs={"NUV": tan_wcs(24, 1.5), "K": tan_wcs(32, 1.0)},
        reproject_to="K",
        reproject_kw={"method": "exact", "conserve_flux": True},
    )
    assert s.shape == (32, 32)
    np.testing.assert_array_equal(s["K"].data, k)  # the target band is not resampled
    assert np.nansum(s["NUV"].data) == pytest.approx(nuv.sum(), rel=0.01)
    with pytest.raises(ValueError, match="reproject_to='g': band 'g' is not among the bands"):
        BandStack.from_arrays({"NUV": nuv}, unit="Jy", wcs=tan_wcs(24), reproject_to="g")


# ---------------------------------------------------------------------- FITS input
def write_image(path, data, *, wcs=None, unit="Jy", uncertainty=None, mask=None):
    unc = None if uncertainty is None else StdDevUncertainty(uncertainty)
    ccd = CCDData(data, unit=unit, wcs=wcs, uncertainty=unc, mask=mask)
    ccd.write(path, overwrite=True)
    return str(path)


def test_from_fits_per_band_files_round_trip(tmp_path, three_band):
    paths = {}
    for band in three_band:
        ccd = three_band[band]
        mask = np.zeros(ccd.shape, bool)
        mask[3, 4] = True
        paths[band.name] = write_image(
            tmp_path / f"{band.name}.fits", ccd.data, wcs=ccd.wcs, unit=ccd.unit.to_string(),
            uncertainty=ccd.uncertainty.array, mask=mask,
        )
    s = BandStack.from_fits(paths, meta={"galaxy_id": 7})
    assert s.names == three_band.names and s.unit == nanomaggy
    np.testing.assert_array_equal(s.to_array(), three_band.to_array())
    for band in s:
        np.testing.assert_array_equal(s[band].uncertainty.array, three_band[band].uncertainty.array)
        assert s[band].mask[3, 4] and s[band].mask.sum() == 1
        assert s[band].meta["FILENAME"] == f"{band.name}.fits"
    assert same_grid(s.wcs, three_band.wcs, (32, 32))
    inputs = s.meta["inputs"]
    assert [i["band"] for i in inputs] == ["NUV", "r", "Ks"]
    assert inputs[0]["checksum"] == hashlib.sha256(open(paths["NUV"], "rb").read()).hexdigest()
    # ... and back to arrays: the same stack.
    again = BandStack.from_arrays({b: s[b] for b in s.names})
    np.testing.assert_array_equal(again.to_array(), three_band.to_array())


def test_a_float32_fits_image_is_held_once(tmp_path):
    # Read into memory and byte-swapped in place: no big-endian copy beside the native one, no
    # copy of the good pixels to find the range; the pixels are the file's, bit for bit.
    import tracemalloc

    rng = np.random.default_rng(3)
    image = rng.normal(0.0, 1.0, (1000, 1000)).astype(np.float32)
    image[10, 20:23] = np.nan
    path = tmp_path / "r.fits"
    fits.PrimaryHDU(image, tan_wcs(1000).to_header()).writeto(path)
    fits.setval(path, "BUNIT", value="nanomaggy")
    tracemalloc.start()
    try:
        with pytest.warns(AstropyUserWarning, match="3 non-finite pixel"):
            s = BandStack.from_fits({"r": path})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert s["r"].data.dtype == np.float32 and s["r"].data.dtype.isnative
    np.testing.assert_array_equal(s["r"].data, image)
    assert s["r"].mask.sum() == 3
    assert peak < 2.0 * image.nbytes, f"reading held {peak / image.nbytes:.2f} times the image"

def test_view_shows_a_band_or_a_window_of_it_without_copying():
    data = gaussian(16)
    sigma, mask = np.full((16, 16), 0.1), np.zeros((16, 16), bool)
    mask[3, 4] = True
    s = BandStack.from_arrays({"r": data, "g": gaussian(16)}, unit="Jy", uncertainty={"r": sigma}, mask={"r": mask})
    whole, part = s.view("r"), s.view("sdss_r", (slice(2, 6), slice(3, 9)))
    assert whole.unit == u.Jy and whole.data.shape == (16, 16) and not whole.data.flags.writeable
    np.testing.assert_array_equal(part.data, data[2:6, 3:9])
    np.testing.assert_array_equal(part.uncertainty.array, 0.1)
    assert part.mask.shape == (4, 6) and part.mask[1, 1] and part.mask.sum() == 1
    for a, b in ((part.data, whole.data), (part.mask, whole.mask), (part.uncertainty.array, whole.uncertainty.array)):
        assert np.shares_memory(a, b)  # views of the stack's arrays, not copies
    assert s.view("g").uncertainty is None and s.view("g").mask is None
    with pytest.raises(KeyError, match="band 'Ks' is not in this stack"):
        s.view("Ks")

def test_from_fits_multi_extension(tmp_path):
    wcs = tan_wcs(16)
    hdus = [fits.PrimaryHDU()]
    for name, amp in (("k", 3.0), ("galex_nuv", 1.0)):
        hdu = fits.ImageHDU(gaussian(16, amplitude=amp), wcs.to_header())
        hdu.header["EXTNAME"], hdu.header["BUNIT"] = name, "nanomaggy"  # lower case, as some surveys write it
        hdus.append(hdu)
    unc = fits.ImageHDU(np.full((16, 16), 0.5), name="K_UNCERT")
    unc.header["UTYPE"] = "StdDevUncertainty"
    table = fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])  # not an image: skipped
    hdus += [unc, fits.ImageHDU(np.eye(16, dtype=np.uint8), name="K_MASK"), table]
    path = tmp_path / "g123.fits"
    fits.HDUList(hdus).writeto(path)
    s = BandStack.from_fits(path)
    assert s.names == ("NUV", "Ks") and s.unit == nanomaggy
    np.testing.assert_array_equal(s["K"].data, gaussian(16, amplitude=3.0))
    np.testing.assert_array_equal(s["K"].uncertainty.array, 0.5)
    np.testing.assert_array_equal(s["K"].mask, np.eye(16, dtype=bool))
    assert s["NUV"].uncertainty is None and s["NUV"].mask is None
    assert s.wcs is not None and [i["band"] for i in s.meta["inputs"]] == ["NUV", "Ks"]
    assert [i["hdu"] for i in s.meta["inputs"]] == ["galex_nuv", "k"]  # the EXTNAMEs as written


def test_a_truncated_file_is_refused_not_read_in_part(tmp_path):
    # A gzip file cut short read as a file of fewer bands without a word; a plain one with only a warning.
    import gzip


    hdus = [fits.PrimaryHDU()]
    for name in ("g", "r", "i", "z"):
        hdu = fits.ImageHDU(gaussian(64, amplitude=1.0), tan_wcs(64).to_header(), name=name)
        hdu.header["BUNIT"] = "nanomaggy"
        hdus.append(hdu)
    whole = tmp_path / "whole.fits"
    fits.HDUList(hdus).writeto(whole)
    raw = whole.read_bytes()
    (tmp_path / "cut.fits").write_bytes(raw[: len(raw) * 3 // 5])
    zipped = gzip.compress(raw)
    (tmp_path / "cut.fits.gz").write_bytes(zipped[: len(zipped) // 2])
    assert BandStack.from_fits(whole).names == ("g", "r", "i", "z")
    for name, why in (("cut.fits", "the file is truncated"), ("cut.fits.gz", "the file is truncated or damaged")):
        with pytest.raises(BandFileError, match=rf"file '.*{name}': cannot read '.*{name}' as FITS: {why}"):
            BandStack.from_fits(tmp_path / name)
        with pytest.raises(BandFileError, match=rf"band 'g': cannot read '.*{name}' as FITS: {why}"):
            BandStack.from_fits({"g": tmp_path / name})


def test_from_fits_extnames_names_and_selects_the_bands(tmp_path, caplog):
    """A survey's own extension names ("Z" is VISTA Z, "Y" is no registry band): extnames= says which band each is."""
    wcs = tan_wcs(16)
    hdus = [fits.PrimaryHDU()]
    for name, amp in (("g", 1.0), ("Z", 2.0), ("Y", 3.0)):
        hdu = fits.ImageHDU(gaussian(16, amplitude=amp), wcs.to_header(), name=name)
        hdu.header["BUNIT"] = "nanomaggy"
        hdus.append(hdu)
    path = tmp_path / "kv.fits"
    fits.HDUList(hdus).writeto(path)
    with pytest.raises(ValueError, match="HDU 3 has EXTNAME 'Y', which is not a known band"):
        BandStack.from_fits(path)
    s = BandStack.from_fits(path, extnames={"g": "kids_g", "z": "VISTA_Z"})
    assert s.names == ("KiDS_g", "VISTA_Z")
    np.testing.assert_array_equal(s["VISTA_Z"].data, gaussian(16, amplitude=2.0))
    assert "using the unit" not in caplog.text  # astropy's note on the BUNIT spelling is not shown
    with pytest.raises(ValueError, match=r"kv\.fits' has no image HDU with EXTNAME 'H' \(asked for with extnames=\)"):
        BandStack.from_fits(path, extnames={"g": "kids_g", "H": "VISTA_H"})
    with pytest.raises(ValueError, match="extnames: 'Q' \\(for EXTNAME 'G'\\) is not a known band"):
        BandStack.from_fits(path, extnames={"g": "Q"})
    with pytest.raises(ValueError, match="extnames= applies to one multi-extension file"):
        BandStack.from_fits({"g": path}, extnames={"g": "kids_g"})


def test_from_fits_reads_the_survey_and_filter_a_header_states(tmp_path):
    """EXTNAMEs that are just the filter ("g": SDSS g to the registry) are the header's survey's filter."""
    wcs = tan_wcs(16)
    hdus = [fits.PrimaryHDU()]
    for name, survey, amp in (("g", "KiDS", 1.0), ("Z", "VIKING", 2.0), ("Y", "VIKING", 3.0), ("NUV", "KiDS", 4.0)):
        hdu = fits.ImageHDU(gaussian(16, amplitude=amp), wcs.to_header(), name=name)
        hdu.header.update(BUNIT="nanomaggy", SURVEY=survey, FILTER=name if name != "NUV" else "u")
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(tmp_path / "kv.fits")
    s = BandStack.from_fits(tmp_path / "kv.fits")
    # An EXTNAME that names another band than its FILTER keeps its own name.
    assert s.names == ("NUV", "KiDS_g", "VISTA_Z", "VISTA_Y")
    np.testing.assert_array_equal(s["VISTA_Y"].data, gaussian(16, amplitude=3.0))
    instrument = fits.Header({"INSTRUME": "VST/OmegaCAM", "FILTER": "r"})
    assert header_band(instrument).name == "KiDS_r" and header_band(fits.Header({"FILTER": "r"})) is None


def test_an_image_whose_header_names_another_filter_is_read_as_asked_with_a_warning(tmp_path):
    # A survey's one-band file (no EXTNAME; SURVEY and FILTER) given under another band was read silently,
    # as was a bandsynth output (BSBAND), and an HDU renamed by extnames=: swapped files, a wrong image.
    wcs = tan_wcs(16)
    lone = fits.PrimaryHDU(gaussian(16), wcs.to_header())
    lone.header.update(BUNIT="nanomaggy", SURVEY="KiDS", FILTER="r")
    lone.writeto(tmp_path / "r.fits")
    with pytest.warns(AstropyUserWarning, match=r"band 'KiDS_g': '.*r\.fits' holds KiDS_r, another filter, read as "
                                                r"KiDS_g as asked"):
        s = BandStack.from_fits({"KiDS_g": tmp_path / "r.fits"})
    np.testing.assert_array_equal(s["KiDS_g"].data, gaussian(16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its own band, or the same filter of another survey: no word
        BandStack.from_fits({"KiDS_r": tmp_path / "r.fits"})
        BandStack.from_fits({"r": tmp_path / "r.fits"})
    lone.header.update(BSBAND="KiDS_r", FILTER="KiDS_r")
    del lone.header["SURVEY"]
    lone.writeto(tmp_path / "synth.fits")
    assert header_band(lone.header).name == "KiDS_r"
    with pytest.warns(AstropyUserWarning, match=r"'.*synth\.fits' holds KiDS_r, another filter"):
        BandStack.from_fits({"KiDS_g": tmp_path / "synth.fits"})
    hdu = fits.ImageHDU(gaussian(16), wcs.to_header(), name="r")
    hdu.header.update(BUNIT="nanomaggy", SURVEY="KiDS", FILTER="r")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp_path / "kv.fits")
    with pytest.warns(AstropyUserWarning, match=r"HDU 'R' holds KiDS_r, another filter, read as KiDS_g as "
                                                r"extnames= asks"):
        assert BandStack.from_fits(tmp_path / "kv.fits", extnames={"r": "KiDS_g"}).names == ("KiDS_g",)


def test_from_fits_errors(tmp_path):
    good = write_image(tmp_path / "r.fits", gaussian(8))
    with pytest.raises(FileNotFoundError, match=r"band 'NUV': FITS file '.*missing\.fits' not found"):
        BandStack.from_fits({"r": good, "NUV": tmp_path / "missing.fits"})
    with pytest.raises(BandFileError, match=r"band 'NUV': '.*' is a folder, expected a FITS file"):
        BandStack.from_fits({"r": good, "NUV": tmp_path})  # it said "not found"
    with pytest.raises(FileNotFoundError, match="multi-extension FITS file '.*nothing.fits' not found"):
        BandStack.from_fits(str(tmp_path / "nothing.fits"))

    table = tmp_path / "table.fits"
    columns = fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])
    fits.HDUList([fits.PrimaryHDU(), columns]).writeto(table)
    with pytest.raises(ValueError, match="band 'g': FITS file '.*table.fits' contains no image HDU"):
        BandStack.from_fits({"g": table})
    with pytest.raises(ValueError, match="table.fits' contains no image HDU"):
        BandStack.from_fits(table)

    unknown = tmp_path / "unknown.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(gaussian(8), name="FOO")]).writeto(unknown)
    with pytest.raises(ValueError, match="HDU 1 has EXTNAME 'FOO', which is not a known band; known bands are: FUV"):
        BandStack.from_fits(unknown)

    primary = tmp_path / "primary.fits"
    fits.PrimaryHDU(gaussian(8)).writeto(primary)
    with pytest.raises(ValueError, match="primary HDU holds an image but no EXTNAME"):
        BandStack.from_fits(primary)
    with pytest.raises(ValueError, match="band 'r': '.*primary.fits' HDU 0 has no BUNIT keyword.*unit="):
        BandStack.from_fits({"r": primary})
    s = BandStack.from_fits({"r": primary}, unit="Jy")
    assert s["r"].unit == u.Jy
    with pytest.raises(ValueError, match="band 'r': FITS file '.*primary.fits' has no HDU 'SCI'"):
        BandStack.from_fits({"r": primary}, hdu="SCI", unit="Jy")

    cube = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.ones((2, 4, 4))).writeto(cube)
    with pytest.raises(ValueError, match=r"band 'r' \(.*cube.fits\): expected a 2-D image, got .* shape \(2, 4, 4\)"):
        BandStack.from_fits({"r": cube}, unit="Jy")

    with pytest.raises(TypeError, match="from_fits expects a mapping"):
        BandStack.from_fits(42)


def test_a_file_of_several_bands_gives_each_band_its_own_image(tmp_path):
    # One file per band in the mapping, but each file holds every band (a survey's multi-band cut-out): each
    # band is read from its own HDU, never silently from the first image, which is another band's.  (astropy
    # writes EXTNAMEs in upper case.)
    hdus = [fits.PrimaryHDU()]
    for k, (extname, filt) in enumerate((("u", "u"), ("g", "g"), ("Z", "Z"))):
        hdu = fits.ImageHDU(gaussian(8) * (k + 1), name=extname)
        hdu.header.update(BUNIT="nanomaggy", FILTER=filt, SURVEY="KiDS" if filt != "Z" else "VIKING")
        hdus.append(hdu)
    hdus.append(fits.ImageHDU(np.full((8, 8), 0.1), name="g_UNCERT"))
    cutout = tmp_path / "cutout.fits"
    fits.HDUList(hdus).writeto(cutout)

    s = BandStack.from_fits({"KiDS_g": cutout, "VISTA_Z": cutout})
    np.testing.assert_allclose(s["KiDS_g"].data, 2 * gaussian(8))
    np.testing.assert_allclose(s["VISTA_Z"].data, 3 * gaussian(8))
    with pytest.raises(ValueError, match=r"band 'DECam_g': '.*cutout.fits' holds the images of several bands "
                                         r"\(HDUs U \(KiDS_u\), G \(KiDS_g\), Z \(VISTA_Z\)\), none of them DECam_g; "
                                         r"name the HDU to read as DECam_g \(hdu=\{'DECam_g': 'G'\}\)"):
        BandStack.from_fits({"DECam_g": cutout, "DECam_z": cutout})
    s = BandStack.from_fits({"DECam_g": cutout, "DECam_z": cutout}, hdu={"DECam_g": "g", "DECam_z": 3})
    np.testing.assert_allclose(s["DECam_g"].data, 2 * gaussian(8))
    np.testing.assert_allclose(s["DECam_z"].data, 3 * gaussian(8))
    with pytest.raises(ValueError, match=r"has no HDU 'Q' \(its HDUs: PRIMARY, U, G, Z, G_UNCERT\)"):
        BandStack.from_fits({"DECam_g": cutout}, hdu="Q")
    with pytest.raises(ValueError, match=r"has no HDU 7 \(its HDUs: PRIMARY, U, G, Z, G_UNCERT\)"):
        BandStack.from_fits({"DECam_g": cutout}, hdu=7)  # beyond the file's HDUs: missing too
    # CFITSIO's FILE[EXT] is not a file name astropy reads: the message says how to name the HDU in Python
    with pytest.raises(FileNotFoundError, match=r"not found \(to read HDU 'g' of '.*cutout.fits': "
                                                r"hdu=\{'DECam_g': 'g'\}\)"):
        BandStack.from_fits({"DECam_g": f"{cutout}[g]"})

    # Several images none of which names a band (science and weight, say): the first, as CCDData.read takes.
    science = tmp_path / "science.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(gaussian(8), name="SCI"),
                  fits.ImageHDU(np.ones((8, 8)), name="WHT")]).writeto(science)
    np.testing.assert_allclose(BandStack.from_fits({"r": science}, unit="Jy")["r"].data, gaussian(8))


def test_input_errors_carry_band_and_path(tmp_path):
    img = gaussian(8)
    with pytest.raises(BandInputError, match="band 'g' is all-zero") as info:
        BandStack.from_arrays({"r": img, "g": np.zeros((8, 8))}, unit="Jy")
    assert (info.value.band, info.value.path) == ("g", None)
    with pytest.raises(BandTypeError, match="band 'r': the image must be a real numeric array") as info:
        BandStack.from_arrays({"sdss_r": np.array([["a"]])}, unit="Jy")
    assert info.value.band == "r" and isinstance(info.value, TypeError)
    with pytest.raises(BandUnitError, match="band 'Ks': cannot convert its unit erg / s to Jy") as info:
        BandStack.from_arrays({"r": CCDData(img, unit="Jy"), "K": CCDData(img, unit="erg/s")})
    assert info.value.band == "Ks" and isinstance(info.value, u.UnitConversionError)

    good = write_image(tmp_path / "r.fits", img)
    missing = tmp_path / "missing.fits"
    with pytest.raises(BandFileNotFoundError, match="band 'NUV': FITS file .* not found") as info:
        BandStack.from_fits({"r": good, "NUV": missing})
    assert (info.value.band, info.value.path) == ("NUV", str(missing))
    assert isinstance(info.value, FileNotFoundError)
    cube = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.ones((2, 4, 4))).writeto(cube)
    with pytest.raises(BandInputError, match=r"band 'r' \(.*cube.fits\): expected a 2-D image") as info:
        BandStack.from_fits({"r": cube}, unit="Jy")
    assert (info.value.band, info.value.path) == ("r", str(cube))
    primary = tmp_path / "primary.fits"
    fits.PrimaryHDU(img).writeto(primary)
    with pytest.raises(BandInputError, match="band 'r': '.*primary.fits' HDU 0 has no BUNIT keyword") as info:
        BandStack.from_fits({"r": primary})
    assert (info.value.band, info.value.path) == ("r", str(primary))
    bad_unit = write_image(tmp_path / "bad_unit.fits", img)
    fits.setval(bad_unit, "BUNIT", value="furlongs")
    with pytest.raises(BandInputError, match="not a unit astropy understands") as info:
        BandStack.from_fits({"g": bad_unit})
    assert (info.value.band, info.value.path) == ("g", str(bad_unit))
    # one multi-extension file: the band is known once the EXTNAME names it
    multi = tmp_path / "multi.fits"
    hdus = [fits.PrimaryHDU()]
    for name in ("NUV", "K"):
        hdu = fits.ImageHDU(np.zeros((8, 8)) if name == "K" else img, name=name)
        hdu.header["BUNIT"] = "Jy"
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(multi)
    with pytest.raises(BandInputError, match=r"band 'Ks' \(.*multi.fits\[K\]\) is all-zero") as info:
        BandStack.from_fits(multi)
    assert (info.value.band, info.value.path) == ("Ks", str(multi))
    # they survive pickling (Dask sends errors between processes)
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is BandInputError and (again.band, again.path) == ("Ks", str(multi))
    assert str(again) == str(info.value)


def test_from_fits_reproject_to(tmp_path):
    nuv = write_image(tmp_path / "nuv.fits", gaussian(20, sigma=2.0), wcs=tan_wcs(20, 1.5))
    k = write_image(tmp_path / "k.fits", gaussian(30, sigma=3.0), wcs=tan_wcs(30, 1.0))
    with pytest.raises(ValueError, match=r"different shapes \(NUV \(20, 20\) in '.*nuv\.fits', Ks \(30, 30\) in "
                                         r"'.*k\.fits'\).*reproject_to='Ks'"):  # the finer grid, files named
        BandStack.from_fits({"NUV": nuv, "K": k})
    s = BandStack.from_fits({"NUV": nuv, "K": k}, reproject_to="K")
    assert s.shape == (30, 30) and same_grid(s.wcs, tan_wcs(30, 1.0), (30, 30))


# ---------------------------------------------------------------------- reprojection
def test_reproject_exact_conserves_flux_of_a_gaussian():
    n = 64
    image = gaussian(n, x0=30.3, y0=33.1, sigma=3.5, amplitude=10.0)
    s = BandStack.from_arrays({"r": image}, wcs=tan_wcs(n, 1.0), unit=nanomaggy)
    # Coarser (1.7"/px), rotated by 25 degrees and shifted grid, fully inside the input.
    target = tan_wcs(24, 1.7, rotation=25.0, crval=(150.0 + 2.0 / 3600, 2.0 - 1.5 / 3600))
    out = s.reproject((target, (24, 24)), method="exact", conserve_flux=True)
    assert out.shape == (24, 24) and out["r"].mask is None  # nothing outside, nothing masked
    total = np.nansum(out["r"].data)
    assert total == pytest.approx(image.sum(), rel=0.01)
    # The default decides from the unit: a per-pixel flux keeps its total, and the stack says so.
    default = s.reproject((target, (24, 24)), method="exact")
    np.testing.assert_allclose(default["r"].data, out["r"].data)
    (record,) = default.meta["reprojection"]
    assert record["band"] == "r" and record["flux_scaled_by_area_ratio"] and record["method"] == "exact"
    assert record["pixel_scale_in"] == pytest.approx(1.0) and record["pixel_scale_out"] == pytest.approx(1.7)
    # With conserve_flux=False the mean surface brightness is kept: the total drops by the area ratio.
    plain = s.reproject((target, (24, 24)), method="exact", conserve_flux=False)
    ratio = proj_plane_pixel_area(target) / proj_plane_pixel_area(tan_wcs(n, 1.0))
    assert ratio == pytest.approx(1.7**2)
    assert np.nansum(plain["r"].data) * ratio == pytest.approx(image.sum(), rel=0.01)
    # A surface brightness is already conserved: conserve_flux does not rescale it.
    sb = BandStack.from_arrays({"r": image}, wcs=tan_wcs(n, 1.0), unit=u.MJy / u.sr)
    np.testing.assert_allclose(
        sb.reproject((target, (24, 24)), method="exact", conserve_flux=True)["r"].data, plain["r"].data
    )
    with pytest.raises(ValueError, match="conserve_flux must be 'auto', True or False"):
        s.reproject((target, (24, 24)), conserve_flux="yes")


def test_reproject_uncertainty_and_mask():
    n = 32
    mask = np.zeros((n, n), bool)
    mask[10, 12] = True
    s = BandStack.from_arrays(
        {"r": gaussian(n, background=1.0)}, wcs=tan_wcs(n, 1.0), unit="Jy",
        uncertainty={"r": np.full((n, n), 0.4)}, mask={"r": mask},
    )
    target = (tan_wcs(16, 2.0), (16, 16))  # exactly 2 x 2 input pixels per output pixel
    down = s.reproject(target, method="exact", conserve_flux=False)
    sigma = down["r"].uncertainty.array
    good = ~down["r"].mask
    # The mean of 4 independent pixels: sigma / 2; the flux sum of 4: 2 sigma.
    np.testing.assert_allclose(sigma[good], 0.2, rtol=1e-6)
    summed = s.reproject(target, method="exact", conserve_flux=True)["r"].uncertainty.array
    np.testing.assert_allclose(summed[good], 0.8, rtol=1e-6)
    # Only the output pixel containing the masked input pixel (x=12, y=10 -> 6, 5) is masked.
    assert down["r"].mask.sum() == 1 and down["r"].mask[5, 6]
    interp = s.reproject("r", method="interp")  # onto its own grid: unchanged
    np.testing.assert_array_equal(interp["r"].data, s["r"].data)
    # Shifted by 0.75 pixel in x: the last column falls off the input image.
    with pytest.warns(AstropyUserWarning, match="band 'r': 32 pixel"):
        shifted = s.reproject((tan_wcs(n, 1.0, crpix=(15.75, 16.5)), (n, n)), method="interp")
    m = shifted["r"].mask
    assert m[10, 11] and m[10, 12] and not m[20, 20]  # bilinear neighbours of the bad pixel


def test_reprojecting_at_a_higher_order_keeps_every_uncertainty_a_number():
    # the variance was interpolated bicubically too: beside a 100-fold jump of the noise it went negative and
    # 299 unmasked pixels had a NaN sigma (a prediction from them came out 93 % masked)
    n = 64
    sigma = np.full((n, n), 0.01)
    sigma[:, 32:] = 1.0
    s = BandStack.from_arrays({"r": gaussian(n, sigma=4.0)}, wcs=tan_wcs(n, 0.262), unit="nanomaggy",
                              uncertainty={"r": sigma})
    target = (tan_wcs(80, 0.2, rotation=7.0), (80, 80))
    with pytest.warns(AstropyUserWarning, match="not \\(fully\\) covered"):
        cubic = s.reproject(target, method="interp", order="bicubic")["r"]
        linear = s.reproject(target, method="interp")["r"]
    unmasked = ~cubic.mask
    assert np.isfinite(cubic.uncertainty.array[unmasked]).all()
    np.testing.assert_array_equal(cubic.mask, linear.mask)
    np.testing.assert_allclose(cubic.uncertainty.array[unmasked], linear.uncertainty.array[unmasked])
    assert not np.array_equal(cubic.data[unmasked], linear.data[unmasked])  # the data at the order asked
    # orders by number are the named ones: order=1 was taken for another order and stated twice the noise
    np.testing.assert_array_equal(s.reproject(target, method="interp", order=1)["r"].uncertainty.array,
                                  linear.uncertainty.array)
    # nearest neighbour: each pixel's sigma is its input pixel's, beside the jump too (it was a bilinear blend)
    nearest = s.reproject(target, method="interp", order=0)["r"]
    ratio = (0.2 / 0.262) ** 2  # flux per pixel on smaller pixels
    np.testing.assert_allclose(np.unique(nearest.uncertainty.array[~nearest.mask]), [0.01 * ratio, ratio])


@pytest.mark.parametrize("crpix", [100.5, 100.75])  # samples between input pixel centres, or on them
def test_interpolation_onto_coarser_pixels_states_the_noise_it_leaves(crpix):
    # Interpolating the variance gave sum(w) sigma^2 where the noise is sum(w^2) sigma^2: 2x coarser pixels
    # between input centres said 4 sigma for a scatter of 2 sigma (the Monte Carlo term of sigma drew too much)
    n = 400
    noise = np.random.default_rng(3).normal(0.0, 1.0, (n, n))
    s = BandStack.from_arrays({"r": noise}, wcs=tan_wcs(n, 0.2), unit="nanomaggy", uncertainty={"r": np.ones((n, n))})
    down = s.reproject((tan_wcs(196, 0.4, crpix=(crpix, crpix)), (196, 196)), method="interp")["r"]
    good = np.isfinite(down.data) if down.mask is None else ~down.mask
    assert np.std(down.data[good]) == pytest.approx(np.sqrt(np.mean(down.uncertainty.array[good] ** 2)), rel=0.03)


def test_a_band_moved_to_a_new_grid_keeps_no_header_keyword_of_its_old_one(tmp_path):
    # NDData(data, wcs=WCS(header), meta=header) resampled kept the old SIP and CD keywords in its meta: written
    # with CCDData.write, the file's WCS mixed them with the new grid's (0.07" off, "SIP but no -SIP CTYPE")
    header = tan_wcs(64, 0.262).to_header(relax=True)
    header.update({"CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP", "A_ORDER": 2, "B_ORDER": 2, "A_2_0": 3e-4,
                   "B_0_2": 3e-4, "OBJECT": "M51"})
    target, moved = tan_wcs(48, 0.3, rotation=15.0), {}
    for meta in (header, dict(header)):  # a header, or its cards as a dict
        stack = BandStack({"r": NDData(gaussian(64, sigma=5.0), wcs=WCS(header), meta=meta, unit="nanomaggy")})
        with pytest.warns(AstropyUserWarning, match="not \\(fully\\) covered"):
            moved[f"{type(meta).__name__} reprojected"] = stack.reproject((target, (48, 48)))["r"]
        moved[f"{type(meta).__name__} cut out"] = stack.cutout((30, 30), (20, 20))["r"]
    for how, image in moved.items():
        assert image.meta["OBJECT"] == "M51" and not {"A_2_0", "CTYPE1", "CRPIX1"} & set(image.meta), how
        image.write(tmp_path / "r.fits", overwrite=True)
        assert same_grid(WCS(fits.getheader(tmp_path / "r.fits")), image.wcs, image.shape), how


def test_reproject_to_takes_a_grid_as_reproject_does():
    s = BandStack.from_arrays({"g": gaussian(16), "r": gaussian(16)}, wcs=tan_wcs(16), unit="Jy")
    grid = (tan_wcs(8, 2.0), (8, 8))
    direct = BandStack.from_arrays({"g": gaussian(16), "r": gaussian(16)}, wcs=tan_wcs(16), unit="Jy",
                                   reproject_to=grid, reproject_kw={"method": "exact"})
    np.testing.assert_array_equal(direct["r"].data, s.reproject(grid, method="exact")["r"].data)
    assert direct.shape == (8, 8) and [r["band"] for r in direct.meta["reprojection"]] == ["g", "r"]


def test_reproject_outside_footprint_is_masked_with_warning():
    s = BandStack.from_arrays({"g": gaussian(16), "r": gaussian(16)}, wcs=tan_wcs(16), unit="Jy")
    bigger = tan_wcs(24)
    with pytest.warns(AstropyUserWarning) as record:
        out = s.reproject(bigger, method="adaptive")
    messages = [str(w.message) for w in record]  # one warning for the bands of one footprint
    assert len(messages) == 1 and messages[0].startswith("bands 'g', 'r': 422 pixel(s) of the target grid")
    assert "not (fully) covered" in messages[0]
    assert out.shape == (24, 24)
    g = out["g"]
    assert g.mask[0, 0] and not g.mask[12, 12]
    assert np.isfinite(g.data[12, 12])


@pytest.mark.parametrize("method", ["interp", "exact"])
def test_reproject_onto_a_grid_the_image_does_not_reach_is_refused(method):
    # every pixel came out masked and the prediction was written, all NaN, with exit code 0
    s = BandStack.from_arrays({"g": gaussian(16)}, wcs=tan_wcs(16), unit="Jy")
    with pytest.raises(ValueError, match="band 'g': its image does not overlap the target grid"):
        s.reproject(tan_wcs(16, crval=(10.0, 2.0)), method=method)


def test_reproject_onto_a_pixel_scale_keeps_the_field_and_the_flux():
    s = BandStack.from_arrays({"g": gaussian(64, sigma=6.0), "r": gaussian(64, sigma=6.0)}, wcs=tan_wcs(64, 0.2),
                              unit="nanomaggy")
    out = s.reproject(0.262 * u.arcsec, method="exact")
    assert out.shape == (48, 48) and out.meta["reprojection"][0]["pixel_scale_out"] == pytest.approx(0.262)
    assert float(np.nansum(out["g"].data)) == pytest.approx(float(s["g"].data.sum()), rel=5e-3)
    assert out.wcs.pixel_to_world(23.5, 23.5).separation(s.wcs.pixel_to_world(31.5, 31.5)).arcsec < 0.01  # one centre
    with pytest.raises(ValueError, match="a pixel scale must be a positive angle"):
        s.reproject(-1 * u.arcsec)
    # rectangular pixels become square ones of the scale asked (0.3" x 0.5" came out 0.20" x 0.33" for 0.262")
    rectangular = tan_wcs(64, 0.3, rotation=20.0)
    rectangular.wcs.cd = rectangular.wcs.cd * [1.0, 5.0 / 3.0]
    flat = BandStack.from_arrays({"g": gaussian(64, sigma=6.0)}, wcs=rectangular, unit="nanomaggy")
    out = flat.reproject(0.262 * u.arcsec)
    np.testing.assert_allclose(proj_plane_pixel_scales(out.wcs), 0.262 / 3600, rtol=1e-9)
    assert out.shape == (122, 73) and out.meta["reprojection"][0]["pixel_scale_out"] == pytest.approx(0.262)


def test_reproject_target_forms_and_errors(three_band):
    header = tan_wcs(20).to_header()
    header["NAXIS"], header["NAXIS1"], header["NAXIS2"] = 2, 20, 20
    assert three_band.reproject(header, method="interp").shape == (20, 20)
    ccd = CCDData(np.zeros((10, 12)), unit="Jy", wcs=tan_wcs(12))
    assert three_band.reproject(ccd, method="interp").shape == (10, 12)
    assert three_band.reproject((tan_wcs(20).to_header(), (20, 20))).names == three_band.names
    with pytest.raises(ValueError, match="method must be one of auto, interp, exact, adaptive; got 'cubic'"):
        three_band.reproject("r", method="cubic")
    with pytest.raises(TypeError, match=r"target must be a band name.*got int \(a pixel scale in arcseconds: "
                                        r"3 \* u\.arcsec\)$"):  # the command line takes a plain number
        three_band.reproject(3)
    with pytest.raises(TypeError, match=r"got float \(a pixel scale in arcseconds: 0\.5 \* u\.arcsec\)$"):
        three_band.reproject(0.5)
    no_shape = tan_wcs(20)
    no_shape.array_shape = None
    with pytest.raises(ValueError, match="target WCS has no array_shape"):
        three_band.reproject(no_shape)
    flat = BandStack.from_arrays({"r": gaussian(8)}, unit="Jy")
    with pytest.raises(ValueError, match="band 'r' has no WCS; reprojection needs a WCS"):
        flat.reproject((tan_wcs(8), (8, 8)))
    with pytest.raises(ValueError, match="target band 'r' has no WCS"):
        flat.reproject("r")


# ---------------------------------------------------------------------- cutouts
def test_cutout_keeps_the_sky_position_of_every_pixel(three_band):
    big = BandStack.from_arrays(
        {"g": gaussian(40, x0=17, y0=22), "r": gaussian(40, x0=17, y0=22)},
        wcs=tan_wcs(40, 0.8, rotation=15.0), unit="Jy", uncertainty={"g": np.full((40, 40), 0.1)},
    )
    centre = big.wcs.pixel_to_world(17.0, 22.0)
    cut = big.cutout(centre, (11, 13))
    assert cut.shape == (11, 13) and cut.names == ("g", "r")
    yy, xx = np.mgrid[:11, :13]
    x0, y0 = 17 - 6, 22 - 5  # Cutout2D puts the centre pixel in the middle
    for band in cut:
        sky_cut = cut[band].wcs.pixel_to_world(xx, yy)
        sky_big = big[band].wcs.pixel_to_world(xx + x0, yy + y0)
        assert np.max(sky_cut.separation(sky_big).to_value(u.arcsec)) < 1e-6
        np.testing.assert_array_equal(cut[band].data, big[band].data[y0 : y0 + 11, x0 : x0 + 13])
    assert cut["g"].uncertainty.array.shape == (11, 13)
    # Angular sizes work too.
    assert big.cutout(centre, 8 * u.arcsec).shape == (10, 10)
    # Pixel positions (x, y), and "partial" cutouts mask what lies outside.
    edge = big.cutout((1, 1), (5, 5), mode="partial")
    assert edge.shape == (5, 5) and edge["r"].mask[0, 0] and not edge["r"].mask[4, 4]
    assert np.isnan(edge["r"].data[0, 0])


def test_cutout_errors():
    flat = BandStack.from_arrays({"r": gaussian(16)}, unit="Jy")
    with pytest.raises(ValueError, match="cutout: band 'r' has no WCS"):
        flat.cutout(SkyCoord(150 * u.deg, 2 * u.deg), (4, 4))
    with pytest.raises(TypeError, match="position must be a SkyCoord or pixel"):
        flat.cutout("middle", (4, 4))
    with pytest.raises(ValueError, match="mode must be"):
        flat.cutout((8, 8), (4, 4), mode="loose")
    assert flat.cutout((8, 8), (4, 4)).shape == (4, 4)
    # a size of 0 made an empty stack (refused later, elsewhere); astropy's "Arrays do not overlap." named nothing
    for size in (0, (0, 5), -3 * u.arcsec):
        with pytest.raises(ValueError, match="cutout: size must be positive"):
            flat.cutout((8, 8), size)
    with pytest.raises(NoOverlapError, match=r"cutout: band 'r' \(16 x 16 pixels\), size \(4, 4\) at \(200, 200\), "
                                             r"mode='trim': Arrays do not overlap"):
        flat.cutout((200, 200), (4, 4))  # astropy's own error class, named
    with pytest.raises(ValueError, match=r"cutout: size \(0.4, 0.4\) is less than one pixel of band 'r'"):
        flat.cutout((8, 8), (0.4, 0.4))
    assert flat.cutout((8, 8), (3 * u.pix, 5)).shape == (3, 5)  # sides as Cutout2D takes them


# ---------------------------------------------------------------------- arrays and helpers
def test_select_to_array_and_reference_flux(three_band):
    sel = three_band.select(["K", "nuv"])
    assert sel.names == ("NUV", "Ks") and sel.meta == three_band.meta
    arr = three_band.to_array()
    assert arr.dtype == np.float32 and arr.shape == (3, 32, 32)
    np.testing.assert_array_equal(three_band.to_array(["K"])[0], arr[2])
    with pytest.raises(KeyError, match="band 'g' is not in this stack"):
        three_band.select(["g"])
    with pytest.raises(ValueError, match="given twice"):
        three_band.select(["K", "Ks"])
    img = gaussian(8)
    img[0, 0] = 1e6
    mask = np.zeros((8, 8), bool)
    mask[0, 0] = True
    s = BandStack.from_arrays({"g": img, "r": 2 * gaussian(8)}, unit="Jy", mask={"g": mask})
    assert s.to_array(masked_value=0.0)[0, 0, 0] == 0.0 and s.to_array()[0, 0, 0] == 1e6
    expected = reference_flux([np.where(mask, np.nan, img), 2 * gaussian(8)])
    assert s.reference_flux() == pytest.approx(expected)
    assert s.reference_flux() < 1e6  # the masked pixel is ignored


def test_morphology_method_delegates(monkeypatch, three_band):
    calls = []
    fake = types.ModuleType("bandsynth.morphology")
    fake.measure_morphology = lambda ndd, **kw: calls.append((ndd, kw)) or "result"
    monkeypatch.setitem(sys.modules, "bandsynth.morphology", fake)
    assert three_band.morphology("K", gain=2.0) == "result"
    (ndd, kw), = calls
    assert isinstance(ndd, CCDData) and kw == {"gain": 2.0}
    np.testing.assert_array_equal(ndd.data, three_band["Ks"].data)


def test_morphology_real():
    morphology = pytest.importorskip("bandsynth.morphology")
    if not hasattr(morphology, "measure_morphology"):
        pytest.skip("bandsynth.morphology.measure_morphology is not available")
    rng = np.random.default_rng(3)
    image = gaussian(64, sigma=5.0, amplitude=100.0) + rng.normal(0, 0.5, (64, 64))
    s = BandStack.from_arrays({"r": image}, wcs=tan_wcs(64), unit="Jy", uncertainty={"r": np.full((64, 64), 0.5)})
    result = s.morphology("r")
    assert 0.2 < result.gini < 0.8


def test_bad_pixels_at_the_image_edge_are_filled_from_their_neighbours():
    """Beyond the edge is unknown, not zero: a masked corner of a flat image is filled with the flat level."""
    from bandsynth.inputs import fill_bad_pixels

    image, bad = np.full((20, 20), 3.0), np.zeros((20, 20), dtype=bool)
    bad[0, 0] = bad[10, 10] = bad[19, 5] = True
    filled = fill_bad_pixels(image, bad)
    np.testing.assert_allclose(filled[bad], 3.0, rtol=1e-12)
    half = np.zeros((40, 40), dtype=bool)
    half[:, :20] = True  # pixels far from any good one: the median, without astropy's note on them
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(fill_bad_pixels(np.full((40, 40), 3.0), half), 3.0)


def test_an_hsc_bitmask_masks_the_bad_planes_not_the_detected_galaxy(tmp_path):
    # An HSC coadd's MASK is bit planes named in its header; DETECTED covers the galaxy.  Read as "non-zero is
    # bad", the galaxy (95 % of its flux) was masked and filled in from the sky, with no warning.
    image = gaussian(32, amplitude=5.0)
    bits = np.where(image > 0.5, 1 << 5, 0).astype(np.int32)  # DETECTED
    bits[3, 4] |= 1 << 1  # one saturated pixel
    mask_header = fits.Header()
    for name, bit in (("BAD", 0), ("SAT", 1), ("CR", 3), ("DETECTED", 5)):
        mask_header[f"HIERARCH MP_{name}"] = bit
    header = tan_wcs(32).to_header()
    header["BUNIT"] = "nanomaggy"
    fits.HDUList([fits.PrimaryHDU(image, header), fits.ImageHDU(bits, mask_header, name="MASK")]).writeto(
        tmp_path / "hsc.fits")
    mask = BandStack.from_fits({"r": tmp_path / "hsc.fits"})["r"].mask
    assert mask.sum() == 1 and mask[3, 4]
    # a bitmask whose planes are not named: every set bit is bad, and the user is told
    fits.HDUList([fits.PrimaryHDU(image, header), fits.ImageHDU(bits, name="MASK")]).writeto(tmp_path / "bits.fits")
    with pytest.warns(AstropyUserWarning, match=r"HDU MASK of .*bits\.fits' is an integer bitmask \(values up to 32\) "
                                                r"whose planes the header does not name"):
        assert BandStack.from_fits({"r": tmp_path / "bits.fits"})["r"].mask.sum() == np.count_nonzero(bits)


def test_a_file_whose_wcs_or_mask_does_not_fit_is_refused_by_name(tmp_path):
    image = gaussian(32, amplitude=5.0)
    header = tan_wcs(32).to_header()
    header["BUNIT"] = "nanomaggy"
    # A MASK of another shape was astropy's "dimensions of mask ... do not match", naming no band or file.
    fits.HDUList([fits.PrimaryHDU(image, header), fits.ImageHDU(np.ones((10, 10), np.uint8), name="MASK")]).writeto(
        tmp_path / "mask.fits")
    with pytest.raises(ValueError, match=r"band 'r': HDU MASK of .*mask\.fits' has shape \(10, 10\), the image "
                                         r"\(32, 32\): a mask must have its image's shape"):
        BandStack.from_fits({"r": tmp_path / "mask.fits"})
    # A celestial WCS that states no pixel scale: astropy reads 1 degree per pixel, and a reprojection shrank the
    # galaxy's flux 1e6-fold without a word.
    for key in ("PC1_1", "PC2_2", "CDELT1", "CDELT2"):
        header.remove(key, ignore_missing=True)
    fits.PrimaryHDU(image, header).writeto(tmp_path / "noscale.fits")
    with pytest.raises(ValueError, match=r"band 'r' \(.*noscale\.fits\): its WCS puts pixels 1 deg apart: a header "
                                         r"stating no pixel scale \(no CDELTi or CDi_j\)"):
        BandStack.from_fits({"r": tmp_path / "noscale.fits"})
    # A surface brightness without a WCS: the pixel area is what is missing, not a convertible unit.
    header = fits.Header({"BUNIT": "MJy/sr"})
    fits.PrimaryHDU(image, header).writeto(tmp_path / "sb.fits")
    with pytest.raises(ValueError, match=r"band 'NUV' \(.*sb\.fits'\): cannot convert its unit MJy / sr to nmgy.*a "
                                         r"surface brightness and a flux per pixel convert through the pixels' area, "
                                         r"and the image has no celestial WCS"):
        BandStack.from_fits({"NUV": tmp_path / "sb.fits"}, unit="nmgy")


def test_a_survey_variance_hdu_is_the_bands_noise_and_a_weight_map_is_named(tmp_path):
    # An HSC coadd (IMAGE, MASK, VARIANCE): the variance was dropped without a word.
    image = gaussian(32, amplitude=5.0)
    header = tan_wcs(32).to_header()
    header["BUNIT"] = "nanomaggy"
    variance = np.full(image.shape, 0.04)
    fits.HDUList([fits.PrimaryHDU(image, header), fits.ImageHDU(variance, name="VARIANCE")]).writeto(
        tmp_path / "hsc.fits")
    np.testing.assert_allclose(BandStack.from_fits({"HSC_i": tmp_path / "hsc.fits"})["HSC_i"].uncertainty.array, 0.2)
    fits.HDUList([fits.PrimaryHDU(image, header), fits.ImageHDU(1 / variance, name="IVAR")]).writeto(
        tmp_path / "ivar.fits")
    np.testing.assert_allclose(BandStack.from_fits({"r": tmp_path / "ivar.fits"})["r"].uncertainty.array, 0.2)
    fits.HDUList([fits.PrimaryHDU(image, header), fits.ImageHDU(np.ones((8, 8)), name="VARIANCE")]).writeto(
        tmp_path / "bad.fits")
    with pytest.raises(ValueError, match=r"band 'r': HDU VARIANCE of .*bad\.fits' has shape \(8, 8\), the image "
                                         r"\(32, 32\)"):
        BandStack.from_fits({"r": tmp_path / "bad.fits"})
    fits.HDUList([fits.PrimaryHDU(image, header), fits.ImageHDU(1 / variance, name="WGT")]).writeto(
        tmp_path / "wgt.fits")
    with pytest.warns(AstropyUserWarning, match=r"band 'r': HDU WGT of .*wgt\.fits' is not read as the image's noise"):
        assert BandStack.from_fits({"r": tmp_path / "wgt.fits"})["r"].uncertainty is None
    # an inverse variance of 0 is a pixel without data (masked, said once); a map of zeros is no noise map
    ivar = 1 / variance
    ivar[0, :4] = 0.0
    fits.HDUList([fits.PrimaryHDU(image, header), fits.ImageHDU(ivar, name="IVAR")]).writeto(tmp_path / "ivar0.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy's divide-by-zero leaked
        holes = BandStack.from_fits({"r": tmp_path / "ivar0.fits"})["r"]
    assert holes.mask[0, :4].all() and holes.mask.sum() == 4
    fits.HDUList([fits.PrimaryHDU(image, header), fits.ImageHDU(0 * variance, name="VARIANCE")]).writeto(
        tmp_path / "zeros.fits")
    with pytest.warns(AstropyUserWarning, match=r"HDU VARIANCE of .*zeros\.fits' holds no positive value"):
        assert BandStack.from_fits({"r": tmp_path / "zeros.fits"})["r"].uncertainty is None
