"""Illustris broadband loaders, tested on fixture files written in the real Sunrise layout."""

import warnings

import astropy.units as u
import h5py
import numpy as np
import pytest
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs.utils import proj_plane_pixel_scales

from bandsynth.datasets.errors import DataFormatError
from bandsynth.datasets.illustris import (
    NOMINAL_POSITION,
    SUNRISE_UNIT,
    iter_illustris,
    match_filter_name,
    read_illustris_broadband,
    read_illustris_hdf5,
)

NPIX = 24
# A Sunrise-style filter list: 0-1 GALEX, 2-6 SDSS, IRAC, Johnson/Cousins, 2MASS in 11-20.
FILTERS = [
    ("FUV_GALEX.res", 1.53e-7), ("NUV_GALEX.res", 2.27e-7),
    ("u_SDSS.res", 3.55e-7), ("g_SDSS.res", 4.69e-7), ("r_SDSS.res", 6.17e-7),
    ("i_SDSS.res", 7.48e-7), ("z_SDSS.res", 8.93e-7),
    ("irac1_SPITZER.res", 3.55e-6), ("irac2_SPITZER.res", 4.49e-6),
    ("irac3_SPITZER.res", 5.73e-6), ("irac4_SPITZER.res", 7.87e-6),
    ("U_Johnson.res", 3.6e-7), ("B_Johnson.res", 4.4e-7), ("V_Johnson.res", 5.5e-7),
    ("R_Cousins.res", 6.5e-7), ("I_Cousins.res", 8.0e-7),
    ("J_2mass.res", 1.235e-6), ("H_2mass.res", 1.662e-6), ("Ks_2mass.res", 2.159e-6),
    ("K_Johnson.res", 2.19e-6), ("ACS_F435W.res", 4.3e-7),
]
INDEX = {"FUV": 0, "NUV": 1, "u": 2, "g": 3, "r": 4, "i": 5, "z": 6, "J": 16, "H": 17, "Ks": 18}
FOV_RAD = 1.0e-3  # full camera field of view


def plane_value(index, camera, scattering):
    return (index + 1) + 100.0 * camera + (0.5 if scattering else 0.0)


def cube(camera, scattering, nfilt):
    yy, xx = np.mgrid[:NPIX, :NPIX]
    blob = np.exp(-((xx - 11.0) ** 2 + (yy - 13.0) ** 2) / 20.0)
    planes = [plane_value(k, camera, scattering) * (1 + blob) for k in range(nfilt)]
    return np.stack(planes).astype(np.float32)


def write_broadband(path, *, filters=FILTERS, cameras=4, name_col="filter", lam_col="lambda_eff",
                    params=True, fov=True, cameradist=True, imunit="W/m/m^2/Sr", extra_planes=0,
                    skip=()):
    """Write a broadband_<id>.fits file in the layout of the Illustris-1 mocks."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)  # long Sunrise keywords -> HIERARCH
        _write(path, filters, cameras, name_col, lam_col, params, fov, cameradist, imunit, extra_planes, skip)
    return path


def _write(path, filters, cameras, name_col, lam_col, params, fov, cameradist, imunit, extra_planes, skip):
    hdus = [fits.PrimaryHDU()]
    bb = fits.ImageHDU(name="BROADBAND")
    bb.header["REDSHIFT"] = 0.0485
    hdus.append(bb)
    if "FILTERS" not in skip:
        cols = [
            fits.Column(name=name_col, format="30A", array=np.array([f for f, _ in filters])),
            fits.Column(name=lam_col, format="D", array=np.array([lam for _, lam in filters])),
        ]
        cols += [fits.Column(name=f"AB_mag_nonscatter{c}", format="D", array=np.full(len(filters), -20.0))
                 for c in range(cameras)]
        hdus.append(fits.BinTableHDU.from_columns(cols, name="FILTERS"))
    for cam in range(cameras):
        if params:
            ph = fits.ImageHDU(name=f"CAMERA{cam}-PARAMETERS")
            ph.header["linear_fov"] = 60.0
            if cameradist:
                ph.header["cameradist"] = 60.0 / FOV_RAD
            if fov:
                ph.header["FOV"] = FOV_RAD
            ph.header["theta"] = 30.0 * cam
            ph.header["phi"] = 0.0
            hdus.append(ph)
        for scattering in (False, True):
            name = f"CAMERA{cam}-BROADBAND" + ("" if scattering else "-NONSCATTER")
            if name in skip:
                continue
            img = fits.ImageHDU(cube(cam, scattering, len(filters) + extra_planes), name=name)
            img.header["CD1_1"] = 60.0 / NPIX
            img.header["CD2_2"] = 60.0 / NPIX
            if imunit is not None:
                img.header["IMUNIT"] = imunit
            hdus.append(img)
    fits.HDUList(hdus).writeto(path)


@pytest.fixture
def broadband(tmp_path):
    return write_broadband(tmp_path / "broadband_12345.fits")


def test_filter_names_map_to_registry_bands():
    assert match_filter_name("GALEX_FUV").name == "FUV"
    assert match_filter_name("nuv").name == "NUV"
    assert match_filter_name("SDSS-r").name == "r"
    assert match_filter_name("2MASS_Ks").name == "Ks"
    assert match_filter_name("2mass_k").name == "Ks"
    assert match_filter_name(b"z_SDSS.res   ").name == "z"
    for other in ("U_Johnson.res", "K_Johnson.res", "irac1_SPITZER.res", "ACS_F435W.res", "r"):
        assert match_filter_name(other) is None
    with pytest.raises(TypeError, match="filter name must be a string"):
        match_filter_name(3)


def test_reads_registry_bands_in_wavelength_order(broadband):
    stack = read_illustris_broadband(broadband)
    assert stack.names == ("FUV", "NUV", "u", "g", "r", "i", "z", "J", "H", "Ks")
    for name, index in INDEX.items():
        expected = cube(0, False, len(FILTERS))[index]
        np.testing.assert_allclose(stack[name].data, expected, rtol=1e-6)
    assert stack["g"].unit == SUNRISE_UNIT
    assert stack.meta["subhalo"] == 12345
    assert stack.meta["camera"] == 0
    assert stack.meta["hdu"] == "CAMERA0-BROADBAND-NONSCATTER"
    assert stack.meta["filters"]["Ks"] == "Ks_2mass.res"
    assert stack.meta["redshift"] == pytest.approx(0.0485)
    assert stack.meta["lambda_eff_nm"]["r"] == pytest.approx(617.0)
    assert stack.meta["pixel_scale_kpc"] == pytest.approx(60.0 / NPIX)


def test_camera_scattering_and_band_selection(broadband):
    stack = read_illustris_broadband(broadband, camera=2, bands=["K", "nuv"], scattering=True)
    assert stack.names == ("NUV", "Ks")
    np.testing.assert_allclose(stack["K"].data, cube(2, True, len(FILTERS))[INDEX["Ks"]], rtol=1e-6)
    assert stack.meta["hdu"] == "CAMERA2-BROADBAND"
    assert stack.meta["camera_theta"] == 60.0


def test_nominal_tan_wcs_from_camera_fov(broadband):
    stack = read_illustris_broadband(broadband, bands="r")
    wcs = stack.wcs
    assert wcs is not None and wcs.has_celestial
    assert list(wcs.wcs.ctype) == ["RA---TAN", "DEC--TAN"]
    scale = proj_plane_pixel_scales(wcs.celestial) * 3600
    np.testing.assert_allclose(scale, np.degrees(FOV_RAD / NPIX) * 3600, rtol=1e-9)
    centre = wcs.pixel_to_world((NPIX - 1) / 2, (NPIX - 1) / 2)
    assert centre.ra.deg == pytest.approx(NOMINAL_POSITION[0])
    assert centre.dec.deg == pytest.approx(NOMINAL_POSITION[1])
    assert "nominal" in stack.meta["wcs_note"] and "FOV" in stack.meta["wcs_note"]


def test_pixel_scale_from_cameradist_or_caller(tmp_path):
    path = write_broadband(tmp_path / "broadband_1.fits", fov=False)
    stack = read_illustris_broadband(path, bands=["g"])
    # 2.5 kpc pixels seen from 60000 kpc
    expected = np.degrees((60.0 / NPIX) / (60.0 / FOV_RAD)) * 3600
    assert stack.meta["pixel_scale_arcsec"] == pytest.approx(expected)
    given = read_illustris_broadband(path, bands=["g"], pixel_scale=0.396 * u.arcsec)
    assert proj_plane_pixel_scales(given.wcs)[0] * 3600 == pytest.approx(0.396)
    with pytest.raises(ValueError, match="pixel_scale must be an angle"):
        read_illustris_broadband(path, bands=["g"], pixel_scale=2 * u.kpc)


def test_no_angular_scale_warns_and_leaves_wcs_out(tmp_path):
    path = write_broadband(tmp_path / "broadband_2.fits", params=False)
    with pytest.warns(AstropyUserWarning, match="no angular pixel scale"):
        stack = read_illustris_broadband(path, bands=["g"])
    assert stack.wcs is None
    assert stack.meta["wcs_note"].startswith("no WCS")


def test_liberal_column_and_filter_spellings(tmp_path):
    filters = [("GALEX_FUV", 1.53e-7), ("galex nuv", 2.27e-7), ("sdss_g", 4.69e-7), ("2MASS_Ks", 2.159e-6)]
    path = write_broadband(tmp_path / "broadband_3.fits", filters=filters, name_col="FILTER",
                           lam_col="LAMBDA_EFF", cameras=1)
    stack = read_illustris_broadband(path)
    assert stack.names == ("FUV", "NUV", "g", "Ks")
    np.testing.assert_allclose(stack["Ks"].data, cube(0, False, 4)[3], rtol=1e-6)


def test_filter_names_in_first_string_column_without_wavelengths(tmp_path):
    path = write_broadband(tmp_path / "broadband_3.fits", name_col="col1", lam_col="col2", cameras=1)
    stack = read_illustris_broadband(path, bands=["FUV", "z"])
    assert stack.names == ("FUV", "z")


def test_implausible_wavelength_warns(tmp_path):
    filters = [("g_SDSS.res", 2.2e-6), ("r_SDSS.res", 6.17e-7)]
    path = write_broadband(tmp_path / "broadband_3.fits", filters=filters, cameras=1)
    with pytest.warns(AstropyUserWarning, match=r"'g_SDSS.res' has lambda_eff 2200.0 nm, far from band 'g'"):
        stack = read_illustris_broadband(path)
    assert stack.names == ("g", "r")


def test_unknown_unit_falls_back_with_warning(tmp_path):
    path = write_broadband(tmp_path / "broadband_4.fits", imunit="furlongs per fortnight", cameras=1)
    with pytest.warns(AstropyUserWarning, match="not understood"):
        stack = read_illustris_broadband(path, bands=["r"])
    assert stack["r"].unit == SUNRISE_UNIT
    path = write_broadband(tmp_path / "broadband_5.fits", imunit=None, cameras=1)
    stack = read_illustris_broadband(path, bands=["r"])
    assert stack["r"].unit == SUNRISE_UNIT
    assert stack.meta["unit_source"].startswith("assumed")


def test_nonfinite_pixels_are_masked_with_warning(tmp_path):
    path = write_broadband(tmp_path / "broadband_6.fits", cameras=1)
    with fits.open(path, mode="update") as hdul:
        hdul["CAMERA0-BROADBAND-NONSCATTER"].data[INDEX["g"], 3, 4] = np.nan
    with pytest.warns(AstropyUserWarning, match=r"band 'g': 1 non-finite pixel"):
        stack = read_illustris_broadband(path, bands=["g", "r"])
    assert stack["g"].mask[3, 4] and stack["g"].mask.sum() == 1


@pytest.mark.parametrize(
    ("kwargs", "read_kwargs", "message"),
    [
        ({"skip": ("FILTERS",)}, {}, r"missing HDU 'FILTERS'"),
        ({}, {"camera": 5},
         r"missing HDU 'CAMERA5-BROADBAND-NONSCATTER' \(cameras with that HDU: 0, 1, 2, 3\)"),
        ({"skip": ("CAMERA0-BROADBAND",)}, {"scattering": True}, r"missing HDU 'CAMERA0-BROADBAND'"),
        ({"filters": FILTERS[:7]}, {"bands": ["Ks"]}, r"band 'Ks' is not in the FILTERS table"),
        ({"extra_planes": 1}, {}, r"has 22 image planes but FILTERS lists 21 filters"),
        ({"filters": FILTERS[7:16]}, {}, r"none of the filters .* is a GALEX, SDSS or 2MASS band"),
    ],
)
def test_layout_errors_name_file_and_what_is_missing(tmp_path, kwargs, read_kwargs, message):
    path = write_broadband(tmp_path / "broadband_7.fits", **kwargs)
    with pytest.raises(DataFormatError, match=message) as info:
        read_illustris_broadband(path, **read_kwargs)
    assert str(path) in str(info.value)


def test_truncated_and_corrupt_files(tmp_path, broadband):
    raw = broadband.read_bytes()
    cut = tmp_path / "broadband_8.fits"
    cut.write_bytes(raw[: len(raw) - 5000])
    with pytest.raises(DataFormatError, match=r"broadband_8\.fits: file is truncated"):
        read_illustris_broadband(cut)
    head_cut = tmp_path / "broadband_9.fits"
    head_cut.write_bytes(raw[: 2880 * 3 + 1000])  # ends inside an extension header
    with pytest.raises(DataFormatError, match=r"broadband_9\.fits: file is truncated"):
        read_illustris_broadband(head_cut)
    junk = tmp_path / "broadband_10.fits"
    junk.write_bytes(b"this is not a FITS file" * 10)
    with pytest.raises(DataFormatError, match=r"broadband_10\.fits: not a readable FITS file"):
        read_illustris_broadband(junk)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_illustris_broadband(tmp_path / "broadband_11.fits")
    with pytest.raises(TypeError, match="camera must be an integer"):
        read_illustris_broadband(broadband, camera="0")


def test_iter_illustris_over_files_and_cameras(tmp_path):
    write_broadband(tmp_path / "broadband_10.fits", cameras=2)
    write_broadband(tmp_path / "broadband_2.fits", cameras=3)
    bad = tmp_path / "broadband_5.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    views = list(iter_illustris(tmp_path, bands=["g"], errors="yield"))
    assert [(v.subhalo, v.camera) for v in views] == [(2, 0), (2, 1), (2, 2), (5, None), (10, 0), (10, 1)]
    assert isinstance(views[3].stack, DataFormatError)
    np.testing.assert_allclose(views[5].stack["g"].data, cube(1, False, len(FILTERS))[INDEX["g"]], rtol=1e-6)
    with pytest.warns(AstropyUserWarning, match=r"skipped: .*broadband_5\.fits"):
        good = list(iter_illustris(tmp_path, bands=["g"], cameras=[1], errors="warn"))
    assert [(v.subhalo, v.camera) for v in good] == [(2, 1), (10, 1)]
    with pytest.raises(DataFormatError, match=r"broadband_5\.fits"):
        list(iter_illustris(tmp_path, bands=["g"]))
    with pytest.raises(ValueError, match="errors must be"):
        next(iter_illustris(tmp_path, errors="ignore"))


def write_api_hdf5(path, *, band_index, cameras=4, shape=(NPIX, NPIX), unit=None):
    """Write a per-band file like .../stellar_mocks/broadband.hdf5?band=<n>."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    blob = np.exp(-((xx - shape[1] / 2) ** 2 + (yy - shape[0] / 2) ** 2) / 10.0)
    with h5py.File(path, "w") as fh:
        for cam in range(cameras):
            ds = fh.create_dataset(f"camera{cam}", data=plane_value(band_index, cam, False) * (1 + blob))
            if unit is not None:
                ds.attrs["units"] = unit
    return path


def test_read_illustris_hdf5(tmp_path):
    files = {
        "u": write_api_hdf5(tmp_path / "band_3_id_77.hdf5", band_index=2),
        "sdss_r": write_api_hdf5(tmp_path / "band_5_id_77.hdf5", band_index=4),
    }
    stack = read_illustris_hdf5(files, camera=1)
    assert stack.names == ("u", "r")
    assert stack["r"].data[0, 0] == pytest.approx(plane_value(4, 1, False), rel=1e-6)
    assert stack["u"].unit == SUNRISE_UNIT
    assert stack.meta["unit_source"].startswith("assumed")
    assert stack.meta["subhalo"] == 77
    assert stack.wcs is None
    located = read_illustris_hdf5(files, pixel_scale=0.5 * u.arcsec / u.pix)
    assert proj_plane_pixel_scales(located.wcs)[1] * 3600 == pytest.approx(0.5)


def test_read_illustris_hdf5_errors(tmp_path):
    good = write_api_hdf5(tmp_path / "band_5_id_1.hdf5", band_index=4)
    small = write_api_hdf5(tmp_path / "band_3_id_1.hdf5", band_index=2, shape=(12, 12))
    with pytest.raises(DataFormatError, match=r"inconsistent image shapes.*band_3_id_1\.hdf5 \(u\): 12x12"):
        read_illustris_hdf5({"r": good, "u": small})
    with pytest.raises(DataFormatError, match=r"band_5_id_1\.hdf5: no dataset 'camera7' for band 'r' "
                                              r"\(datasets present: camera0, camera1, camera2, camera3\)"):
        read_illustris_hdf5({"r": good}, camera=7)
    truncated = tmp_path / "band_2_id_1.hdf5"
    truncated.write_bytes(good.read_bytes()[:3000])
    with pytest.raises(DataFormatError, match=r"band_2_id_1\.hdf5: not a readable HDF5 file"):
        read_illustris_hdf5({"NUV": truncated})
    cubefile = tmp_path / "band_4_id_1.hdf5"
    with h5py.File(cubefile, "w") as fh:
        fh["camera0"] = np.arange(32.0).reshape(2, 4, 4)
    with pytest.raises(DataFormatError, match=r"should be one 2-D image, found shape \(2, 4, 4\)"):
        read_illustris_hdf5({"g": cubefile})
    with pytest.raises(ValueError, match="unknown band 'Y'"):
        read_illustris_hdf5({"Y": good})
    with pytest.raises(TypeError, match="must be a mapping"):
        read_illustris_hdf5([good])


def test_hdf5_unit_attribute(tmp_path):
    path = write_api_hdf5(tmp_path / "band_4_id_3.hdf5", band_index=3, unit="W/m/m^2/Sr")
    stack = read_illustris_hdf5({"g": path})
    assert stack["g"].unit == SUNRISE_UNIT
    assert stack.meta["unit_source"] == "file attribute"


def test_hdf5_each_band_file_keeps_its_own_unit(tmp_path):
    # r's file said nanomaggy, g's said nothing: g's Sunrise surface brightness was labelled nanomaggy.
    r = write_api_hdf5(tmp_path / "band_5_id_9.hdf5", band_index=4, unit="nanomaggy")
    g = write_api_hdf5(tmp_path / "band_4_id_9.hdf5", band_index=3)
    with pytest.raises(DataFormatError, match=r"band_5_id_9\.hdf5, .*band_4_id_9\.hdf5: band 'r': cannot convert its "
                                              r"unit nmgy to W / \(sr m3\)"):
        read_illustris_hdf5({"r": r, "g": g})  # a surface brightness and a flux: only through the pixel area
    stack = read_illustris_hdf5({"r": r, "g": g}, pixel_scale=0.5 * u.arcsec / u.pix)
    assert stack["g"].unit == SUNRISE_UNIT
    corner = plane_value(3, 0, False) * (1 + np.exp(-(NPIX / 2) ** 2 / 5.0))  # write_api_hdf5's blob at (0, 0)
    assert stack["g"].data[0, 0] == pytest.approx(corner, rel=1e-6)
    assert stack.meta["unit_source"] == "per band: r file attribute, g assumed (Sunrise W/m/m^2/sr)"
    both = read_illustris_hdf5({"r": r, "g": write_api_hdf5(tmp_path / "g.hdf5", band_index=3, unit="nanomaggy")})
    assert both["g"].unit == u.nmgy and both.meta["unit_source"] == "file attribute"
