"""Galaxy10 DECaLS loader, tested on small files written in the astroNN layout."""

import time

import astropy.units as u
import h5py
import numpy as np
import pytest
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs.utils import proj_plane_pixel_scales

import bandsynth.datasets.galaxy10 as g10mod
from bandsynth.datasets.errors import DataFormatError
from bandsynth.datasets.galaxy10 import GALAXY10_CLASSES, Galaxy10File, read_galaxy10

# the one-time "not calibrated fluxes" warning is asserted where it matters
pytestmark = pytest.mark.filterwarnings(
    "ignore:Galaxy10 DECaLS images are 8-bit:astropy.utils.exceptions.AstropyUserWarning"
)

N, NPIX = 5, 16
PLANE_LEVEL = (200, 120, 40)  # R, G, B planes of the composite


def make_images(n=N, npix=NPIX):
    rows = np.arange(npix, dtype=np.uint8)[:, None] * 3  # brighter towards the bottom (south) row
    images = np.empty((n, npix, npix, 3), np.uint8)
    for k in range(n):
        for plane, level in enumerate(PLANE_LEVEL):
            images[k, :, :, plane] = level - 20 + rows + k
    return images


@pytest.fixture
def g10_file(tmp_path):
    path = tmp_path / "Galaxy10_DECals.h5"
    with h5py.File(path, "w") as fh:
        fh["images"] = make_images()
        fh["ans"] = np.array([0, 2, 5, 8, 9], np.uint8)
        fh["ra"] = np.linspace(150.0, 151.0, N)
        fh["dec"] = np.linspace(-1.0, 1.0, N)
        fh["redshift"] = np.linspace(0.02, 0.1, N)
        fh["pxscale"] = np.full(N, 0.524)
    return path


@pytest.fixture(autouse=True)
def fresh_warning(monkeypatch):
    monkeypatch.setattr(g10mod, "_WARNED", False)


def test_one_image_as_bandstack(g10_file):
    with pytest.warns(AstropyUserWarning, match="not calibrated fluxes"):
        stack = read_galaxy10(g10_file, index=1)
    assert stack.names == ("DECam_g", "DECam_r", "DECam_z")
    raw = make_images()[1]
    # red plane is z, blue plane is g; rows flipped so that y grows northwards
    np.testing.assert_array_equal(stack["DECam_z"].data, np.flipud(raw[..., 0]))
    np.testing.assert_array_equal(stack["DECam_g"].data, np.flipud(raw[..., 2]))
    assert stack["DECam_r"].unit == u.dimensionless_unscaled
    assert stack.meta["label"] == 2 and stack.meta["label_name"] == GALAXY10_CLASSES[2] == "Round Smooth"
    assert stack.meta["redshift"] == pytest.approx(0.04)
    assert "not calibrated fluxes" in stack.meta["note"]
    assert stack.meta["channels"] == {"DECam_z": 0, "DECam_r": 1, "DECam_g": 2}


def test_wcs_centred_on_ra_dec_with_pxscale_north_up(g10_file):
    stack = read_galaxy10(g10_file, index=3)
    wcs = stack.wcs
    centre = wcs.pixel_to_world((NPIX - 1) / 2, (NPIX - 1) / 2)
    assert centre.ra.deg == pytest.approx(150.75)
    assert centre.dec.deg == pytest.approx(0.5)
    np.testing.assert_allclose(proj_plane_pixel_scales(wcs) * 3600, 0.524)
    above = wcs.pixel_to_world(NPIX / 2, NPIX / 2 + 1)
    below = wcs.pixel_to_world(NPIX / 2, NPIX / 2)
    assert above.dec > below.dec  # pixel y grows to the north
    assert wcs.pixel_to_world(NPIX / 2 + 1, NPIX / 2).ra < below.ra  # east to the left
    # the JPEG's bottom (southern) row is brightest; after the flip it is row 0
    assert stack["DECam_r"].data[0].mean() > stack["DECam_r"].data[-1].mean()


def test_composite_warning_is_given_once(g10_file, recwarn):
    read_galaxy10(g10_file, index=0)
    read_galaxy10(g10_file, index=[1, 2])
    messages = [w for w in recwarn if issubclass(w.category, AstropyUserWarning)]
    assert len(messages) == 1


def test_lazy_file_view_slices_and_iteration(g10_file):
    view = read_galaxy10(g10_file)
    assert isinstance(view, Galaxy10File) and len(view) == N
    batch = view[1:4]
    assert [s.meta["index"] for s in batch] == [1, 2, 3]
    assert view[-1].meta["index"] == N - 1
    assert [s.meta["label"] for s in view] == [0, 2, 5, 8, 9]
    cat = view.catalog
    assert list(cat["label"]) == [0, 2, 5, 8, 9]
    assert cat["ra"].unit == u.deg
    with pytest.raises(IndexError, match=r"index 5 out of range for 5 images"):
        view[5]
    with pytest.raises(TypeError, match="image index must be an integer"):
        view[1.0]


def test_large_file_is_read_one_image_at_a_time(tmp_path):
    # 50 000 images declared (~9.8 GB as uint8), only one written: reading must not load them all
    path = tmp_path / "big.h5"
    n = 50_000
    with h5py.File(path, "w") as fh:
        ds = fh.create_dataset("images", shape=(n, 256, 256, 3), dtype=np.uint8, chunks=(1, 256, 256, 3))
        ds[n - 1] = np.arange(256, dtype=np.uint8)[:, None, None]
        for name, value in (("ra", 10.0), ("dec", 5.0), ("pxscale", 0.262), ("redshift", 0.05)):
            fh[name] = np.full(n, value)
        fh["ans"] = np.zeros(n, np.uint8)
    start = time.perf_counter()
    stack = read_galaxy10(path, index=n - 1)
    assert time.perf_counter() - start < 5.0
    assert stack.shape == (256, 256)
    np.testing.assert_array_equal(stack["DECam_g"].data[:, 0], np.arange(255, -1, -1))


def test_channel_order_can_be_overridden(g10_file):
    stack = read_galaxy10(g10_file, index=0, channels=("DECam_g", "DECam_r", "DECam_z"))
    np.testing.assert_array_equal(stack["DECam_g"].data, np.flipud(make_images()[0][..., 0]))
    with pytest.raises(ValueError, match="channels must name 3 different bands"):
        read_galaxy10(g10_file, index=0, channels=("g", "sdss_g", "z"))
    with pytest.raises(ValueError, match="channels must name 3 bands"):
        read_galaxy10(g10_file, channels=("DECam_g", "DECam_r"))


@pytest.mark.parametrize(
    ("drop", "change", "message"),
    [
        ("images", None, r"missing dataset 'images' \(datasets present: ans, dec, pxscale, ra, redshift\)"),
        ("pxscale", None, r"missing dataset 'pxscale' \(needed for the WCS\)"),
        (None, ("images", np.zeros((N, NPIX, NPIX), np.uint8)),
         r"'images' should have shape \(N, ny, nx, 3\)"),
        (None, ("ra", np.zeros(N + 1)), r"dataset 'ra' has shape \(6,\), expected \(5,\)"),
    ],
)
def test_layout_errors(g10_file, drop, change, message):
    with h5py.File(g10_file, "a") as fh:
        if drop:
            del fh[drop]
        if change:
            del fh[change[0]]
            fh[change[0]] = change[1]
    with pytest.raises(DataFormatError, match=message) as info:
        read_galaxy10(g10_file, index=0)
    assert str(g10_file) in str(info.value)


def test_truncated_and_missing_files(tmp_path, g10_file):
    cut = tmp_path / "cut.h5"
    cut.write_bytes(g10_file.read_bytes()[:2000])
    with pytest.raises(DataFormatError, match=r"cut\.h5: not a readable HDF5 file"):
        read_galaxy10(cut)
    with pytest.raises(FileNotFoundError):
        read_galaxy10(tmp_path / "absent.h5")
    with h5py.File(g10_file, "a") as fh:
        fh["pxscale"][2] = np.nan
    with pytest.raises(DataFormatError, match="image 2 has no usable position/scale"):
        read_galaxy10(g10_file, index=2)
