"""The photometric contract: one galaxy, one flux, whatever the cut-out, the tiling or the grid.

These run a shipped model in fp32 (the one users start with) and pin what the
contract promises: framing invariance, exact tiling, locality, flux-conserving
reprojection, and a sigma that means what it says.
"""

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.wcs import WCS

from bandsynth import BandStack, Translator, list_models
from bandsynth.datasets import make_galaxy
from bandsynth.evaluation import card_observation_options
from bandsynth.models.domain import OFFSET_FLUX_TOLERANCE, restores_noise
from bandsynth.models.zoo import get_card
from bandsynth.nn.engine import InferenceEngine
from bandsynth.nn.network import TranslationNet


@pytest.fixture(scope="module")
def shipped():
    return Translator.load("nuv_k_to_r_paper")


def _field(size, galaxies, *, seed=0, noise=0.002):
    """A ``size`` x ``size`` field of sky noise with the given 128 px galaxies ``(stack, y0, x0)`` added."""
    rng = np.random.default_rng(seed)
    out = {}
    for band, scale in (("NUV", 0.05), ("Ks", 1.0)):
        image = noise * scale * rng.standard_normal((size, size))
        for stack, y0, x0 in galaxies:
            image[y0 : y0 + 128, x0 : x0 + 128] += stack[band].data
        out[band] = image
    return out


def _stack(arrays, like):
    return BandStack.from_arrays(arrays, wcs=None, unit=like["NUV"].unit)


def test_cut_out_size_does_not_change_the_central_galaxy(shipped):
    # The same galaxy in 128, 256 and 512 px cut-outs of one field of sky noise.
    for seed in (11, 12):
        galaxy = make_galaxy(seed, bands=["NUV", "Ks"], size=128)
        field = _field(512, [(galaxy, 192, 192)], seed=seed)
        centre = {}
        for size in (128, 256, 512):
            lo = (512 - size) // 2
            cut = _stack({b: a[lo : lo + size, lo : lo + size] for b, a in field.items()}, galaxy)
            pred = shipped.predict(cut, uncertainty=False, check_domain=False).data
            inner = (size - 128) // 2
            centre[size] = pred[inner : inner + 128, inner : inner + 128].astype(np.float64)
        peak = centre[512].max()
        for size in (128, 256):
            assert abs(centre[size].sum() / centre[512].sum() - 1) < 0.005, (seed, size)
            assert np.median(np.abs(centre[size] - centre[512])) < 0.01 * peak, (seed, size)
        # Inside the 128 px cut-out, beyond half a receptive field from its edges, it is exact.
        halo = shipped.engine.halo
        np.testing.assert_allclose(centre[256], centre[512], rtol=0, atol=1e-4 * peak)
        inner = slice(halo, 128 - halo)
        np.testing.assert_allclose(centre[128][inner, inner], centre[512][inner, inner], rtol=0, atol=1e-4 * peak)


def test_tiled_and_whole_prediction_agree_on_a_600_px_field(shipped):
    galaxies = [(make_galaxy(20 + k, bands=["NUV", "Ks"], size=128), y, x)
                for k, (y, x) in enumerate([(40, 50), (300, 380), (450, 120)])]
    field = _stack(_field(600, galaxies, seed=3), galaxies[0][0])
    whole = shipped.predict(field, uncertainty=True, tile=600, check_domain=False)
    tiled = shipped.predict(field, uncertainty=True, tile=128, check_domain=False)
    assert shipped.engine.n_tiles((600, 600), tile=128) == 25
    peak = float(whole.data.max())
    np.testing.assert_allclose(tiled.data, whole.data, rtol=0, atol=1e-4 * peak)
    np.testing.assert_allclose(tiled.uncertainty.array, whole.uncertainty.array, rtol=1e-3,
                               atol=1e-4 * float(whole.uncertainty.array.max()))
    assert tiled.meta["provenance"]["computation"]["tile"] == 128


def test_a_masked_hole_is_filled_the_same_in_any_cut_out_or_tile(shipped):
    # A 24 px hole over the galaxy's centre: its pixels beyond the fill's first reach took the median of the
    # whole image or tile, which moved the unmasked pixels around it by 1 % of their flux with the framing.
    galaxy = make_galaxy(15, bands=["NUV", "Ks"], size=128)
    field = _field(256, [(galaxy, 64, 64)], seed=15)
    mask = np.zeros((256, 256), bool)
    mask[116:140, 116:140] = True
    for a in field.values():
        a[mask] = np.nan
    with pytest.warns(UserWarning, match="non-finite"):
        whole = shipped.predict(_stack(field, galaxy), uncertainty=False, check_domain=False)
        tiled = shipped.predict(_stack(field, galaxy), uncertainty=False, check_domain=False, tile=64)
        cut = shipped.predict(_stack({b: a[38:218, 38:218] for b, a in field.items()}, galaxy), uncertainty=False,
                              check_domain=False)
    assert whole.mask[mask].all() and shipped.engine.n_tiles((256, 256), tile=64) > 4
    peak = float(np.nanmax(whole.data))
    good = ~mask
    np.testing.assert_allclose(tiled.data[good], whole.data[good], rtol=0, atol=1e-4 * peak)
    inner = slice(38 + shipped.engine.halo, 218 - shipped.engine.halo)  # beyond half a receptive field of its edges
    within = (slice(shipped.engine.halo, 180 - shipped.engine.halo),) * 2
    np.testing.assert_allclose(cut.data[within][good[inner, inner]], whole.data[inner, inner][good[inner, inner]],
                               rtol=0, atol=1e-4 * peak)


def test_a_bright_neighbour_beyond_the_receptive_field_changes_nothing(shipped):
    galaxy = make_galaxy(31, bands=["NUV", "Ks"], size=128)
    neighbour = make_galaxy(32, bands=["NUV", "Ks"], size=128)
    bright = {b: 30.0 * neighbour[b].data for b in ("NUV", "Ks")}
    alone = _field(384, [(galaxy, 0, 0)], seed=5)
    crowded = {b: a.copy() for b, a in alone.items()}
    gap = shipped.card.receptive_field  # the neighbour's stamp starts a receptive field beyond the galaxy's
    assert 128 + gap + 128 <= 384
    for b in crowded:
        crowded[b][128 + gap : 256 + gap, 128 + gap : 256 + gap] += bright[b]
    a = shipped.predict(_stack(alone, galaxy), uncertainty=False, check_domain=False).data
    c = shipped.predict(_stack(crowded, galaxy), uncertainty=False, check_domain=False).data
    assert not np.allclose(a[128 + gap :, 128 + gap :], c[128 + gap :, 128 + gap :])  # the neighbour is predicted ...
    np.testing.assert_array_equal(a[:128, :128], c[:128, :128])  # ... and the galaxy is untouched


def test_cut_outs_on_odd_pixels_and_flips_keep_the_pixels_of_the_whole_image(shipped):
    # The network's stride-2 layers pair pixels on a grid fixed by the WCS: a cut-out starting on an odd pixel
    # (as Cutout2D makes around a catalogue position half the time) pairs the same pixels as its image, and
    # so do the flips of tta=True, in tiles of any size and images of odd sides.
    galaxy = make_galaxy(14, bands=["NUV", "Ks"], size=128)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype, wcs.wcs.crpix = ["RA---TAN", "DEC--TAN"], [95.5, 95.5]
    wcs.wcs.cdelt, wcs.wcs.crval = [-0.262 / 3600, 0.262 / 3600], [150.0, 2.0]
    field = BandStack.from_arrays(_field(191, [(galaxy, 31, 33)], seed=7), wcs=wcs, unit=galaxy["NUV"].unit)
    whole = shipped.predict(field, uncertainty=True, tta=True, check_domain=False)
    tiled = shipped.predict(field, uncertainty=True, tta=True, check_domain=False, tile=70)
    peak, top = float(whole.data.max()), float(whole.uncertainty.array.max())
    np.testing.assert_allclose(tiled.data, whole.data, rtol=0, atol=1e-5 * peak)
    halo = shipped.engine.halo
    for y0, x0 in ((40, 40), (41, 40), (40, 43), (37, 39)):
        cut = field.cutout((x0 + 59.5, y0 + 59.5), (120, 120))
        assert cut.shape == (120, 120) and np.array_equal(cut["Ks"].data, field["Ks"].data[y0:y0 + 120, x0:x0 + 120])
        for tta in (False, True):
            want = whole if tta else shipped.predict(field, uncertainty=True, check_domain=False)
            got = shipped.predict(cut, uncertainty=True, tta=tta, check_domain=False)
            core = (slice(halo, 120 - halo),) * 2
            np.testing.assert_allclose(got.data[core], want.data[y0:y0 + 120, x0:x0 + 120][core], rtol=0,
                                       atol=1e-5 * peak, err_msg=f"cut-out at {(y0, x0)}, tta={tta}")
            np.testing.assert_allclose(got.uncertainty.array[core],
                                       want.uncertainty.array[y0:y0 + 120, x0:x0 + 120][core], rtol=1e-4,
                                       atol=1e-5 * top, err_msg=f"cut-out at {(y0, x0)}, tta={tta}")


def test_a_reference_pixel_a_rounding_error_below_a_half_pixel_is_the_same_grid(shipped):
    # CRPIX = 64.5 is a usual value; 64.5 - 1e-9 (arithmetic, a text round trip) is the same grid, and moved
    # every pixel's pairing and noise draws by one: pixels changed by 4-6 % of the peak
    galaxy = make_galaxy(14, bands=["NUV", "Ks"], size=64)
    predictions = []
    for crpix in (32.5, 32.5 - 1e-9):
        wcs = galaxy.wcs.deepcopy()
        wcs.wcs.crpix = [crpix, crpix]
        stack = BandStack.from_arrays({b: galaxy[b].data for b in ("NUV", "Ks")}, wcs=wcs, unit=galaxy["NUV"].unit)
        predictions.append(shipped.predict(stack, check_domain=False))
    np.testing.assert_array_equal(predictions[1].data, predictions[0].data)


def test_every_output_pixel_depends_only_on_its_receptive_field():
    torch.manual_seed(1)
    net = TranslationNet.build("tiny", softening=[0.01, 0.01], maximum=[1, 1], out_softening=0.01,
                               out_maximum=1, coefficients=[0.5, 0.5])
    torch.nn.init.normal_(net.generator.head[-1].weight, 0.0, 0.05)
    x = torch.rand(1, 2, 96, 96, requires_grad=True)
    net(x).mean[0, 0, 48, 48].backward()
    rows, cols = np.nonzero(x.grad.abs().sum(1)[0].numpy())
    radius = max(np.abs(rows - 48).max(), np.abs(cols - 48).max())
    assert 2 * radius + 1 <= net.receptive_field
    assert InferenceEngine(net).halo >= radius


def _tan(scale, n, crval=(150.0, 2.0)):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval, w.wcs.crpix = list(crval), [(n + 1) / 2, (n + 1) / 2]
    w.wcs.cdelt = [-scale / 3600, scale / 3600]
    return w


def test_reprojection_on_the_way_in_keeps_the_total_flux(tmp_path):
    # A GALEX-like NUV image at 1.5"/px and a 2MASS-like Ks image at 1.0"/px, both in nanomaggies.
    yy, xx = np.mgrid[:80, :80]
    nuv = 50.0 * np.exp(-((xx - 39.3) ** 2 + (yy - 40.2) ** 2) / (2 * 4.0**2))
    yy, xx = np.mgrid[:120, :120]
    ks = 80.0 * np.exp(-((xx - 59.2) ** 2 + (yy - 60.1) ** 2) / (2 * 6.0**2))
    paths = {}
    for band, image, scale in (("NUV", nuv, 1.5), ("Ks", ks, 1.0)):
        header = _tan(scale, image.shape[0]).to_header()
        header["BUNIT"] = "nanomaggy"
        paths[band] = tmp_path / f"{band}.fits"
        fits.PrimaryHDU(image, header=header).writeto(paths[band])
    stack = BandStack.from_fits(paths, reproject_to="Ks")
    assert stack.shape == (120, 120)
    assert stack["NUV"].data.sum() == pytest.approx(nuv.sum(), rel=0.005)
    assert stack["Ks"].data.sum() == pytest.approx(ks.sum(), rel=1e-12)
    (record,) = stack.meta["reprojection"]
    assert record["band"] == "NUV" and record["flux_scaled_by_area_ratio"]
    assert record["area_ratio"] == pytest.approx(1 / 1.5**2)


@pytest.mark.parametrize("offset", [0.0, 0.3, 0.5])
def test_reprojection_onto_larger_pixels_keeps_the_total_flux(offset):
    # SDSS r at 0.396"/px, a compact source (1.3" seeing), put on GALEX's 1.5" pixels: interpolation samples the
    # coarse grid between input pixels (24 %, 21 % and 17 % of the flux lost at these sub-pixel positions).
    yy, xx = np.mgrid[:151, :151]
    sigma = 1.3 / 2.355 / 0.396
    r = np.exp(-((xx - 75 - offset) ** 2 + (yy - 75 - offset) ** 2) / (2 * sigma**2))
    stack = BandStack({"r": 100 * r / r.sum()}, wcs=_tan(0.396, 151), unit="nanomaggy")
    with pytest.warns(UserWarning, match="not .fully. covered"):
        coarse = stack.reproject((_tan(1.5, 40), (40, 40)))
    assert float(np.nansum(coarse["r"].data)) == pytest.approx(100.0, rel=0.005)
    assert coarse.meta["reprojection"][0]["method"] == "exact"
    with pytest.warns(UserWarning, match="not .fully. covered"):
        fine = stack.reproject((_tan(0.2, 300), (300, 300)))
    assert float(np.nansum(fine["r"].data)) == pytest.approx(100.0, rel=0.005)
    assert fine.meta["reprojection"][0]["method"] == "interp"  # smooth, where the exact overlap gives blocks
    with pytest.raises(ValueError, match=r"order given with method='auto'.*method='interp'"):
        stack.reproject((_tan(1.5, 40), (40, 40)), order="bicubic")


def test_reprojection_onto_a_distorted_grid_keeps_the_total_flux():
    # A SIP grid whose reference pixel lies 1,400 pixels away (a cut-out that keeps its chip's WCS): its pixels
    # there are 6 % larger than at the reference pixel, whose area alone scaled the flux (6 % too bright).
    from astropy.wcs import Sip

    yy, xx = np.mgrid[:60, :60]
    ks = np.exp(-((xx - 29.5) ** 2 + (yy - 29.5) ** 2) / (2 * 4.0**2))
    source = BandStack({"Ks": ks}, wcs=_tan(1.0, 60), unit="nanomaggy")
    distorted = _tan(0.396, 150)
    distorted.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    distorted.wcs.crpix = [1500.0, 1500.0]
    a, b = np.zeros((3, 3)), np.zeros((3, 3))
    a[2, 0] = b[0, 2] = 1e-5
    distorted.sip = Sip(a, b, np.zeros((3, 3)), np.zeros((3, 3)), distorted.wcs.crpix)
    for _ in range(3):  # the target's central pixel on the source's centre
        ra, dec = distorted.all_pix2world(74.5, 74.5, 0)
        distorted.wcs.crval = distorted.wcs.crval - (np.array([ra, dec]) - source.wcs.wcs.crval)
        distorted.wcs.set()
    for method in ("interp", "exact"):
        out = source.reproject((distorted, (150, 150)), method=method)
        assert float(np.nansum(out["Ks"].data)) == pytest.approx(ks.sum(), rel=1e-4), method


def test_reprojection_is_in_the_provenance(shipped, tmp_path):
    galaxy = make_galaxy(7, bands=["NUV", "Ks"], size=128)
    centre = galaxy.wcs.wcs.crval
    shifted = galaxy.reproject((_tan(0.3, 112, crval=(centre[0] + 0.1 / 3600, centre[1])), (112, 112)))
    pred = shipped.predict(shifted, uncertainty=False, check_domain=False)
    records = pred.meta["provenance"]["reprojection"]
    assert [r["band"] for r in records] == ["NUV", "Ks"]
    assert records[0]["pixel_scale_out"] == pytest.approx(0.3)
    assert all(r["flux_scaled_by_area_ratio"] for r in records)
    assert any("Resampled NUV" in line for line in pred.meta["provenance"]["history"])


def test_the_calibrated_sigma_covers_the_truth_on_fresh_galaxies(shipped):
    from bandsynth.morphology import segment

    z, z2 = [], []
    for seed in range(40, 52):
        galaxy = make_galaxy(20_000 + seed, bands=["NUV", "Ks", "r"], size=128)
        pred = shipped.predict(galaxy.select(["NUV", "Ks"]))
        truth = galaxy["r"].data
        seg = segment(truth)
        inside = seg.segmap.data == seg.label
        z.append((pred.data[inside] - truth[inside]) / pred.uncertainty.array[inside])
        # "2 sigma": the central 95.45 % interval of the distribution the prediction states.
        z2.append(z[-1] / pred.meta["provenance"]["uncertainty"]["half_width_2sigma"])
    z, z2 = np.abs(np.concatenate(z)), np.abs(np.concatenate(z2))
    assert 0.60 < np.mean(z <= 1) < 0.76
    assert 0.91 < np.mean(z2 <= 1) < 0.99


@pytest.mark.parametrize("name", [card.name for card in list_models()
                                  if not card.outputs and "survey" in card.training.get("data_info", {})])
def test_a_shipped_model_for_observed_images_is_framing_invariant(name):
    # A survey-layer field of the model's own survey (noise maps, masked pixels, neighbours, stars): its 64 px
    # tiles, a batch with another field and its 96 px centre give the same pixels as the whole 192 px field --
    # sigma too, whose Monte Carlo draws of the inputs' noise belong to the sky's pixels, not to the tiles.
    from bandsynth.datasets.mock import observe_galaxy

    model = Translator.load(name)
    survey = model.card.training["data_info"]["survey"]
    field, other = (observe_galaxy(seed, survey, bands=list(model.inputs), size=192,
                                   pixel_scale=model.card.pixel_scale).observed.select(model.inputs)
                    for seed in (3, 4))
    whole = model.predict(field, uncertainty=True, check_domain=False)
    provenance = whole.meta["provenance"]
    assert provenance["calibration"] == "mc" and provenance["computation"]["monte_carlo"]["seed"] == 0
    peak, top = float(np.abs(whole.data).max()), float(whole.uncertainty.array.max())
    for same in (model.predict(field, uncertainty=True, check_domain=False, tile=64),
                 model.predict([field, other], uncertainty=True, check_domain=False)[0]):
        np.testing.assert_allclose(same.data, whole.data, rtol=0, atol=1e-4 * peak)
        np.testing.assert_allclose(same.uncertainty.array, whole.uncertainty.array, rtol=1e-3, atol=1e-4 * top)
    inner = slice(model.engine.halo, 96 - model.engine.halo)
    for y0, x0 in ((48, 48), (47, 49)):  # a cut-out starting on odd pixels too: its WCS says where it lies
        centre = model.predict(field.cutout((x0 + 47.5, y0 + 47.5), (96, 96)), uncertainty=True, check_domain=False)
        for got, want, rtol, scale in ((centre.data, whole.data, 0, peak),
                                       (centre.uncertainty.array, whole.uncertainty.array, 1e-3, top)):
            np.testing.assert_allclose(got[inner, inner], want[y0 : y0 + 96, x0 : x0 + 96][inner, inner],
                                       rtol=rtol, atol=1e-4 * scale)


@pytest.mark.parametrize("name", [card.name for card in list_models() if card.outputs])
def test_a_shipped_any_band_model_keeps_the_contract_on_every_request(name):
    # One survey-layer galaxy (noise, masked pixels) in a 96 px cut-out of a 192 px field, and the field in
    # 64 px tiles: the same pixels, for r from all the other bands and from g alone.
    from bandsynth.datasets.mock import observe_galaxy

    model = Translator.load(name)
    r, g = (next(b for b in model.outputs if b.endswith(suffix)) for suffix in ("_r", "_g"))
    field = observe_galaxy(3, "kids_viking", size=192, pixel_scale=model.card.pixel_scale).observed
    halo = model.task(inputs=[g], output=r).engine.halo
    for bands in ([b for b in model.inputs if b != r], [g]):
        whole = model.predict(field.select(bands), band=r, uncertainty=False, check_domain=False).data
        tiled = model.predict(field.select(bands), band=r, uncertainty=False, check_domain=False, tile=64).data
        peak = float(np.abs(whole).max())
        np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-4 * peak)
        inner = slice(halo, 96 - halo)
        for y0, x0 in ((48, 48), (49, 47)):
            cut = field.select(bands).cutout((x0 + 47.5, y0 + 47.5), (96, 96))  # masks and uncertainties come along
            np.testing.assert_array_equal(cut[g].data, field[g].data[y0 : y0 + 96, x0 : x0 + 96])
            centre = model.predict(cut, band=r, uncertainty=False, check_domain=False).data
            np.testing.assert_allclose(centre[inner, inner], whole[y0 : y0 + 96, x0 : x0 + 96][inner, inner], rtol=0,
                                       atol=1e-4 * peak)
            assert abs(centre.sum() / whole[y0 : y0 + 96, x0 : x0 + 96].sum() - 1) < 0.005


def _flux_change_on_offset_grids(model, *, offset=0.5, n=8, seeds=4):
    """Per faint galaxy of the model's survey-layer universe: the relative change of its predicted flux (in its
    footprint) when every input band's native grid is offset by ``offset`` pixels along both axes; on the offset
    grids, the mean over ``seeds`` draws of the noise predict restores (one draw moves a faint galaxy's flux as
    much as another exposure would: the bias is what the card's figure is about)."""
    from bandsynth.datasets.mock import galaxy_seed, observe_galaxy
    from bandsynth.morphology import detection_footprint

    options = card_observation_options(model.card)
    options.update(size=64, r_mag=options.pop("r_mag_range")[1] - 0.5)  # faint: where the noise weighs most
    changes = []
    for g in range(n):
        seen = [observe_galaxy(galaxy_seed(707, g), grid_offsets=offsets, **options)
                for offsets in (None, {b: (offset, offset) for b in model.inputs})]
        aligned = seen[0]
        inside = detection_footprint([aligned.truth[model.output].data,
                                      *(np.nan_to_num(aligned.observed[b].data) for b in model.inputs)])
        preds = [model.predict(seen[0].observed.select(model.inputs), uncertainty=False, check_domain=False),
                 *(model.predict(seen[1].observed.select(model.inputs), uncertainty=False, check_domain=False,
                                 seed=seed) for seed in range(seeds if restores_noise(model.card) else 1))]
        for pred in preds:
            inside &= ~np.asarray(pred.mask, dtype=bool)
        aligned_flux, *offset_fluxes = (float(np.sum(pred.data[inside], dtype=np.float64)) for pred in preds)
        changes.append(np.mean(offset_fluxes) / aligned_flux - 1.0)
    return np.array(changes)


def _offset_record(card):
    return card.metrics.get("grid_offsets") or {}


def _default_offset_figure(card):
    """The card's flux change on offset grids as predict runs by default: with the noise restored or not."""
    key = "median_flux_change" if restores_noise(card) else "median_flux_change_unrestored"
    return _offset_record(card).get(key, np.inf)


def test_a_survey_model_restores_the_noise_a_sub_pixel_resampling_smoothed_tile_by_tile_and_says_so():
    # The noise is drawn tied to pixel positions from predict's seed: deterministic, and tiling stays exact.
    from bandsynth.datasets.mock import galaxy_seed, observe_galaxy

    model = Translator.load("g_r_to_u")
    options = dict(card_observation_options(model.card), size=128)
    seen = observe_galaxy(galaxy_seed(808, 1), grid_offsets={b: (0.5, 0.25) for b in model.inputs}, **options)
    stack = seen.observed.select(model.inputs)
    restored = model.predict(stack, uncertainty=False, check_domain=False)
    record = restored.provenance["computation"]["restored_noise"]
    assert [(r["band"], r["seed"]) for r in record] == [("g", 0), ("r", 0)]
    assert all(0.1 < min(f, 1 - f) for r in record for f in r["offset"])  # a quarter and a half pixel
    assert sum("Added back the pixel-to-pixel noise" in line for line in restored.provenance["history"]) == 2
    peak = float(np.abs(restored.data).max())
    again = model.predict(stack, uncertainty=False, check_domain=False, tile=32)
    assert model.engine.n_tiles(stack.shape, tile=32) > 4
    np.testing.assert_allclose(again.data, restored.data, rtol=0, atol=1e-4 * peak)
    plain = model.predict(stack, uncertainty=False, check_domain=False, restore_noise=False)
    other = model.predict(stack, uncertainty=False, check_domain=False, seed=1)
    assert "restored_noise" not in plain.provenance["computation"]
    assert plain.provenance["computation"]["options"]["restore_noise"] is False
    for changed in (plain, other):
        assert np.abs(changed.data - restored.data).max() > 1e-3 * peak


@pytest.mark.parametrize("name", [card.name for card in list_models() if abs(_default_offset_figure(card))
                                  <= OFFSET_FLUX_TOLERANCE])
def test_a_model_measured_to_hold_on_offset_grids_keeps_the_flux_of_faint_galaxies_on_an_offset_grid(name):
    # Interpolating a band onto a grid offset by a fraction of a pixel smooths its noise, which a model trained on
    # aligned grids read as a deeper image: the faint galaxies of g_z_to_r version 5 came out a median 8 % brighter
    # with their inputs' grids offset by half a pixel, those of g_r_to_u version 5 36 % (benchmarks/grid_offsets.py).
    # A card that records holding within the tolerance (and so is not warned about) must hold on other faint galaxies,
    # as predict runs by default (the noise restored, unless the model holds without: g_z_to_r).  A faint galaxy's flux moves with the noise drawn (the
    # ultraviolet models' by a median 5-10 %, as another exposure's would): the median holds to the tolerance within
    # twice its standard error (1.25 std / sqrt(n)); g_r_to_u's unrestored +39 % fails it by far.
    changes = _flux_change_on_offset_grids(Translator.load(name), n=16)
    error = 1.2533 * np.std(changes) / np.sqrt(len(changes))
    assert abs(np.median(changes)) < OFFSET_FLUX_TOLERANCE + 2 * error, (
        f"{name}: flux changes {np.round(changes, 4).tolist()}")


@pytest.mark.parametrize("name", [card.name for card in list_models()
                                  if not card.outputs and card.training.get("data_info", {}).get("survey")])
def test_every_survey_model_records_how_its_photometry_moves_on_offset_grids(name):
    # The resampled-noise warning is given or not on this record (bandsynth.models.domain): measured, not assumed.
    record = _offset_record(get_card(name))
    assert record.get("offset") == 0.5 and record.get("n_galaxies", 0) >= 15
    assert np.isfinite(record["median_flux_change"]) and np.isfinite(record["median_flux_change_unrestored"])
