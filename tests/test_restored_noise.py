"""The noise a resampling by a sub-pixel shift smoothed away, restored before a survey model reads a band."""

import numpy as np
import pytest
from astropy import units as u
from astropy.wcs import WCS

from bandsynth import BandStack
from bandsynth.models.domain import pixel_noise
from bandsynth.restored_noise import NoiseRestoration, difference_scatter_ratio, noise_offsets
from bandsynth.uncertainty import PixelDraws

SIGMA = 0.5
# A moved grid's edge pixels lie off the band's image: warned about and masked (tests/test_stack.py), not looked at here.
pytestmark = pytest.mark.filterwarnings("ignore:band.*not .fully. covered")


def _grid(shape, *, shift=(0.0, 0.0), rotation=0.0, scale=1.0, centre=(150.0, 2.0)):
    """A TAN grid of 1" pixels (times ``scale``) about ``centre`` (RA, Dec), its reference pixel moved by ``shift``
    (x, y) pixels."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = list(centre)
    w.wcs.crpix = [shape[1] / 2 + 0.5 + shift[0], shape[0] / 2 + 0.5 + shift[1]]
    c, s = np.cos(np.radians(rotation)), np.sin(np.radians(rotation))
    w.wcs.cd = scale / 3600.0 * np.array([[-c, s], [s, c]])
    return w


def _white_noise_stack(shape=(256, 256), seed=3, centre=(150.0, 2.0)):
    noise = np.random.default_rng(seed).normal(0.0, SIGMA, shape)
    return BandStack({"g": noise}, unit="nanomaggy", wcs=_grid(shape, centre=centre),
                     uncertainty={"g": np.full(shape, SIGMA)})


def _restored(stack, band="g", seed=0):
    data = np.asarray(stack[band].data, dtype=np.float64)
    sigma = np.asarray(stack[band].uncertainty.array, dtype=np.float64)
    return data + NoiseRestoration(stack, [band], PixelDraws(seed)).noise(band, data.shape, sigma=sigma)


def _neighbour_correlations(image):
    inner = image[4:-4, 4:-4]  # away from the grid's uncovered edge
    along = np.corrcoef(inner[:, 1:].ravel(), inner[:, :-1].ravel())[0, 1]
    down = np.corrcoef(inner[1:, :].ravel(), inner[:-1, :].ravel())[0, 1]
    return along, down


@pytest.mark.parametrize(("method", "shift"), [("interp", (0.3, 0.5)), ("exact", (0.25, 0.4)), ("interp", (0.5, 0.5))])
def test_white_noise_resampled_by_a_sub_pixel_shift_is_white_again_with_its_own_sigma(method, shift):
    # Interpolated onto its own grid moved by a fraction of a pixel, white noise keeps its variance on large scales but
    # loses it between neighbouring pixels; restored, it is white again with its own sigma.
    stack = _white_noise_stack()
    moved = stack.reproject((_grid(stack.shape, shift=shift), stack.shape), method=method)
    record = moved.meta["reprojection"][0]
    # the grid's reference pixel moved by +shift: each of its pixels samples the band -shift away
    assert record["interpolation_offset"]["fractions"] == pytest.approx([-shift[1] % 1.0, -shift[0] % 1.0], abs=1e-3)
    assert np.abs(record["interpolation_offset"]["gradient"]).max() < 1e-6
    smoothed = np.nan_to_num(np.asarray(moved["g"].data, dtype=np.float64))[4:-4, 4:-4]
    assert smoothed.std() < 0.8 * SIGMA and max(_neighbour_correlations(np.pad(smoothed, 4))) > 0.2
    restored = _restored(moved)
    assert restored[4:-4, 4:-4].std() == pytest.approx(SIGMA, rel=0.03)
    assert np.abs(_neighbour_correlations(restored)).max() < 0.03
    # and what the domain checks read of the smoothed band, against the restored one
    assert pixel_noise(smoothed) / pixel_noise(restored[4:-4, 4:-4]) == pytest.approx(
        difference_scatter_ratio(record["interpolation_offset"]["fractions"]), rel=0.05)


def test_only_a_band_resampled_by_a_shift_of_its_own_grid_with_a_sigma_has_its_noise_restored():
    stack = _white_noise_stack(shape=(64, 64))
    shape = stack.shape

    def offsets(target, **options):
        return noise_offsets(stack.reproject(target, **options), ["g"])

    assert offsets((_grid(shape, shift=(0.5, 0.25)), shape))["g"]["fractions"] == (0.75, 0.5)
    assert offsets((_grid(shape, shift=(3.0, -2.0)), shape)) == {}  # whole pixels: nothing smoothed
    assert offsets((_grid(shape, shift=(0.5, 0.5), rotation=10.0), shape)) == {}  # rotated: not a shift
    assert offsets((_grid(shape, shift=(0.5, 0.5), scale=1.05), shape)) == {}  # other pixels
    assert offsets(0.5 * u.arcsec) == {}
    assert offsets((_grid(shape, shift=(0.5, 0.5)), shape), method="interp", order="bicubic") == {}
    assert offsets((_grid(shape, shift=(0.5, 0.5)), shape), method="adaptive") == {}


def test_restored_noise_belongs_to_the_pixel_whatever_the_window_or_cut_out():
    # Tiles, cut-outs and batches of one image get the same noise at the same pixel: tiling stays exact.
    stack = _white_noise_stack(shape=(96, 96))
    moved = stack.reproject((_grid(stack.shape, shift=(0.5, 0.5)), stack.shape))
    sigma = np.asarray(moved["g"].uncertainty.array)
    restore = NoiseRestoration(moved, ["g"], PixelDraws(7))
    whole = restore.noise("g", sigma.shape, sigma=sigma)
    window = (slice(20, 60), slice(33, 90))
    np.testing.assert_array_equal(restore.noise("g", (40, 57), sigma=sigma[window], window=window), whole[window])
    cut = moved.cutout((60.0, 40.0), (32, 48))  # centre (x, y), size (ny, nx): rows 24-56, columns 36-84
    cut_noise = NoiseRestoration(cut, ["g"], PixelDraws(7)).noise("g", (32, 48),
                                                                  sigma=np.asarray(cut["g"].uncertainty.array))
    np.testing.assert_array_equal(cut_noise, whole[24:56, 36:84])
    assert not np.array_equal(NoiseRestoration(moved, ["g"], PixelDraws(8)).noise("g", sigma.shape, sigma=sigma), whole)


def test_stamps_centred_on_different_galaxies_get_independent_noise():
    # A catalogue's stamps each centred on its galaxy share their reference pixel: noise tied to it alone would put
    # the same draw around every galaxy, and a faint galaxy's flux moves with the draw (+-0.3 mag with nuv_k_to_r), so
    # the whole catalogue would move alike instead of averaging out.  The same stamp again gets the same noise.
    def restored_noise(centre):
        stack = _white_noise_stack(shape=(96, 96), centre=centre)
        moved = stack.reproject((_grid(stack.shape, shift=(0.5, 0.5), centre=centre), stack.shape))
        sigma = np.asarray(moved["g"].uncertainty.array)
        return NoiseRestoration(moved, ["g"], PixelDraws(0)).noise("g", sigma.shape, sigma=sigma)[4:-4, 4:-4]

    first, again, other = restored_noise((150.0, 2.0)), restored_noise((150.0, 2.0)), restored_noise((150.01, 2.0))
    np.testing.assert_array_equal(again, first)
    assert abs(np.corrcoef(first.ravel(), other.ravel())[0, 1]) < 0.05


def test_a_band_without_an_uncertainty_is_restored_to_the_noise_its_pixels_show():
    # No sigma given: the noise before the resampling is read from the neighbouring pixels' scatter, corrected for the
    # smoothing the shift is known to cause, and recorded in the provenance as measured.
    from bandsynth.models.zoo import get_card
    from bandsynth.prediction import noise_restoration

    rng = np.random.default_rng(5)
    shape = (192, 192)
    stack = BandStack({b: rng.normal(0.0, SIGMA, shape) for b in ("g", "r")}, unit="nanomaggy", wcs=_grid(shape))
    moved = stack.reproject((_grid(shape, shift=(0.5, 0.3)), shape))
    restoration = noise_restoration(get_card("g_r_to_u"), moved, PixelDraws(0), restore_noise="auto")
    assert set(restoration.offsets) == {"g", "r"}
    assert restoration.sky_sigma["g"] == pytest.approx(SIGMA, rel=0.05)
    assert [r["sigma"] for r in restoration.describe()] == [restoration.sky_sigma["g"], restoration.sky_sigma["r"]]
    data = np.nan_to_num(np.asarray(moved["g"].data, dtype=np.float64))
    restored = (data + restoration.noise("g", shape))[4:-4, 4:-4]
    assert restored.std() == pytest.approx(SIGMA, rel=0.05) and np.abs(_neighbour_correlations(restored)).max() < 0.03
    assert noise_restoration(get_card("g_r_to_u"), moved, PixelDraws(0), restore_noise=False) is None
    assert noise_restoration(get_card("g_r_to_u_paper"), moved, PixelDraws(0), restore_noise=True) is None


def test_a_grid_rotated_slightly_drifts_its_shift_and_is_restored_pixel_by_pixel():
    # Frames of one field in two bands seldom share an orientation to the last 0.01 degree: across a large grid the
    # shift then drifts (here by about 0.3 pixel), and each pixel's noise is restored for its own shift.
    stack = _white_noise_stack(shape=(512, 512), seed=11)
    moved = stack.reproject((_grid(stack.shape, shift=(0.3, 0.1), rotation=0.035), stack.shape))
    shift = moved.meta["reprojection"][0]["interpolation_offset"]
    assert 1e-4 < np.abs(shift["gradient"]).max() < 1e-3
    restored = _restored(moved)[8:-8, 8:-8]
    assert restored.std() == pytest.approx(SIGMA, rel=0.03) and np.abs(_neighbour_correlations(restored)).max() < 0.03
    for part in (restored[:100, :100], restored[-100:, -100:]):  # opposite corners, shifts 0.3 pixel apart
        assert np.abs(_neighbour_correlations(part)).max() < 0.05
    # a cut-out reads the same drift at the same pixels
    sigma = np.asarray(moved["g"].uncertainty.array)
    whole = NoiseRestoration(moved, ["g"], PixelDraws(2)).noise("g", sigma.shape, sigma=sigma)
    cut = moved.cutout((400.0, 100.0), (64, 80))  # rows 68-132, columns 360-440
    part = NoiseRestoration(cut, ["g"], PixelDraws(2)).noise("g", (64, 80), sigma=sigma[68:132, 360:440])
    np.testing.assert_allclose(part, whole[68:132, 360:440], rtol=0, atol=1e-9)
