"""Large images straight into their FITS file: ``Translator.predict_to_fits`` and ``bandsynth predict``.

An image of more than `LARGE_IMAGE_TILES` tiles is predicted tile by tile and written
strip by strip of tiles, never held whole; the file must be the one
``predict(...).write(...)`` writes, and nothing may be left behind when it fails.
The tiny model with 32-pixel tiles puts a 96-pixel field through that path quickly.
"""

import inspect
import json
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from bandsynth import BandStack, SyntheticBand, Translator
from bandsynth.cli import main
from bandsynth.datasets import make_galaxy
from bandsynth.tiled_prediction import LARGE_IMAGE_TILES

INPUTS = ("NUV", "Ks")


@pytest.fixture(scope="module")
def field():
    """A 96 x 96 survey-mode field whose inputs carry a sigma, with 6 bad NUV pixels."""
    galaxy = make_galaxy(8, mode="survey", bands=list(INPUTS), size=96)
    data = {b: np.array(galaxy[b].data, dtype=np.float32) for b in INPUTS}
    data["NUV"][40:42, 60:63] = np.nan
    sigma = {b: np.full(data[b].shape, 0.05 * float(np.nanstd(data[b])), np.float32) for b in INPUTS}
    with pytest.warns(AstropyUserWarning, match="non-finite"):
        return BandStack.from_arrays(data, wcs=galaxy.wcs, unit=galaxy["NUV"].unit, uncertainty=sigma)


def _header_cards(hdu):
    """The header cards that do not depend on when the file was written."""
    timed = ("DATE", "BSPROV", "CHECKSUM", "DATASUM")
    return [(c.keyword, c.value, c.comment) for c in hdu.header.cards if c.keyword not in timed]


def assert_same_prediction_file(written, streamed):
    """Same HDUs, headers, provenance (but the dates) and pixels; every checksum verifies."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checksum that does not verify warns
        with fits.open(written, checksum=True) as a, fits.open(streamed, checksum=True) as b:
            assert [h.name for h in a] == [h.name for h in b] == ["PRIMARY", "UNCERT", "MASK"]
            for ha, hb in zip(a, b):
                assert [c.keyword for c in ha.header.cards] == [c.keyword for c in hb.header.cards]
                assert _header_cards(ha) == _header_cards(hb)
                assert ha.data.dtype == hb.data.dtype
                np.testing.assert_array_equal(ha.data, hb.data)  # float32 exactness
            prov_a, prov_b = (json.loads(h[0].header["BSPROV"]) for h in (a, b))
            prov_a.pop("date"), prov_b.pop("date")
            assert prov_a == prov_b
    assert written.stat().st_size == streamed.stat().st_size


@pytest.mark.parametrize("options", [dict(n_samples=2), dict(uncertainty=False), dict(tta=True, n_samples=0)])
def test_predict_to_fits_writes_the_file_predict_writes(tiny_translator, field, tmp_path, options):
    assert tiny_translator.engine.n_tiles(field.shape, tile=32) > LARGE_IMAGE_TILES
    calls = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)  # the tiny model is not calibrated
        tiny_translator.predict(field, tile=32, **options).write(tmp_path / "whole.fits")
        path = tiny_translator.predict_to_fits(field, tmp_path / "strips.fits", tile=32,
                                               progress=lambda done, total: calls.append((done, total)), **options)
    assert path == tmp_path / "strips.fits"
    assert calls == [(k, 9) for k in range(1, 10)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["strips.fits", "whole.fits"]
    if options.get("uncertainty", True):
        assert_same_prediction_file(tmp_path / "whole.fits", tmp_path / "strips.fits")
    back = SyntheticBand.read(tmp_path / "strips.fits")
    assert back.mask.sum() == 6 and back.mask[40:42, 60:63].all()
    assert "6 pixels masked: bad or masked input pixels." in back.provenance["history"]
    assert back.provenance["computation"]["tile"] == 32
    assert (back.uncertainty is None) == (options.get("uncertainty") is False)


def test_predict_to_fits_of_a_small_image_writes_it_whole(tiny_translator, field, tmp_path):
    small = field.cutout((48, 48), (40, 40))
    with pytest.warns(AstropyUserWarning, match="calibration"):
        tiny_translator.predict(small).write(tmp_path / "a.fits")
        tiny_translator.predict_to_fits(small, tmp_path / "b.fits")
    assert_same_prediction_file(tmp_path / "a.fits", tmp_path / "b.fits")


def test_predict_to_fits_takes_the_options_of_predict(tiny_translator, field, tmp_path):
    from bandsynth.tiled_prediction import predict_stacks, predict_to_fits

    predict = inspect.signature(Translator.predict).parameters
    for function in (predict_stacks, predict_to_fits):
        params = inspect.signature(function).parameters
        # ``band`` is settled by the translator (which request of a model) before these functions run;
        # predict_to_fits only checks it (one band per file)
        assert {k: p.default for k, p in predict.items() if k not in ("self", "stacks", "band")} == \
               {k: p.default for k, p in params.items() if k not in ("translator", "stack", "stacks", "path",
                                                                       "overwrite", "band")}
    (tmp_path / "old.fits").write_bytes(b"old")
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        tiny_translator.predict_to_fits(field, tmp_path / "old.fits", tile=32)
    with pytest.raises(FileNotFoundError, match="directory .*nowhere for new.fits does not exist"):
        tiny_translator.predict_to_fits(field, tmp_path / "nowhere" / "new.fits")
    with pytest.raises(ValueError, match="predicts r only; band='g' asks for another"):
        tiny_translator.predict_to_fits(field, tmp_path / "new.fits", band="g")
    with pytest.raises(TypeError, match="unexpected keyword argument 'tiles'"):
        tiny_translator.predict_to_fits(field, tmp_path / "new.fits", tiles=32)
    with pytest.raises(TypeError, match="predict_to_fits writes one stack's prediction into one file: it expects a "
                                        "BandStack, got ndarray$"):
        tiny_translator.predict_to_fits(np.zeros((2, 96, 96)), tmp_path / "new.fits")
    with pytest.raises(TypeError, match=r"it expects a BandStack, got list \(call it once per stack\)$"):
        tiny_translator.predict_to_fits([field, field], tmp_path / "new.fits")  # "got list" for a list of them
    assert [p.name for p in tmp_path.iterdir()] == ["old.fits"]


def test_tiles_never_copy_a_whole_input_image(tiny_translator, field, tmp_path, monkeypatch):
    # stack[band] is a copy of the whole image: per tile, that was 0.8 GB more for a 10000^2 pair.
    def whole_copy(self, key):
        pytest.fail(f"stack[{key!r}] copies the whole image")

    monkeypatch.setattr(BandStack, "__getitem__", whole_copy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        tiny_translator.predict_to_fits(field, tmp_path / "o.fits", tile=32)
    assert SyntheticBand.read(tmp_path / "o.fits").mask.sum() == 6

def test_no_partial_file_remains_when_the_prediction_fails_midway(tiny_translator, field, tmp_path, monkeypatch):
    import bandsynth.tiled_prediction as tiled

    sample, calls = tiled.sample, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # the second strip of tiles: the first one is already in the file
            raise MemoryError("no memory for this tile")
        return sample(*args, **kwargs)

    monkeypatch.setattr(tiled, "sample", failing)
    (tmp_path / "old.fits").write_bytes(b"old")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        for name, overwrite in (("new.fits", False), ("old.fits", True)):
            calls.clear()
            with pytest.raises(MemoryError, match="no memory for this tile"):
                tiny_translator.predict_to_fits(field, tmp_path / name, tile=32, n_samples=0, overwrite=overwrite)
            assert len(calls) == 5
    assert [p.name for p in tmp_path.iterdir()] == ["old.fits"]  # no temporary file, the old file untouched
    assert (tmp_path / "old.fits").read_bytes() == b"old"


def test_cli_predict_writes_a_large_image_strip_by_strip_and_shows_the_tiles(tiny_model, field, tmp_path,
                                                                             monkeypatch, capsys):
    import bandsynth.tiled_prediction as tiled

    files = []
    for band in INPUTS:
        field[band].write(tmp_path / f"{band}.fits")
        files += ["--input", f"{band}={tmp_path / band}.fits"]
    monkeypatch.setattr(tiled, "LARGE_IMAGE_TILES", 0)  # with the CLI's 512-pixel tiles, 1 tile is "large"
    original, streamed = tiled.write_large, []

    def spy(translator, stack, out, **kwargs):
        streamed.append(stack.shape)
        return original(translator, stack, out, **kwargs)

    monkeypatch.setattr(tiled, "write_large", spy)
    assert main(["predict", "--model", str(tiny_model[0]), *files, "-o", str(tmp_path / "o.fits")]) == 0
    assert streamed == [(96, 96)]
    err = capsys.readouterr().err
    for stage in ("predict: reading the inputs", "predict: running the network on 96 x 96 pixels",
                  "predict: writing o.fits", "(3/3)"):
        assert stage in err
    back = SyntheticBand.read(tmp_path / "o.fits")
    assert back.data.shape == (96, 96) and back.mask.sum() == 6


def test_tiles_draw_no_noise_when_only_some_inputs_carry_one(field):
    # Tiled, an image whose NUV alone carries a sigma took the 'mc' calibration (of draws of every input's noise)
    # for a sigma without draws: 41 % too small on kids_g_z_to_r, and the provenance recorded draws never made.
    translator = Translator.load("kids_g_z_to_r")
    galaxy = make_galaxy(3, survey="kids_viking", size=96, pixel_scale=0.2).select(list(translator.inputs))
    g, z = translator.inputs
    stack = BandStack.from_arrays({b: galaxy.view(b).data for b in (g, z)}, wcs=galaxy.wcs, unit="nanomaggy",
                                  uncertainty={g: galaxy.view(g).uncertainty.array})
    with pytest.warns(AstropyUserWarning, match=f"only {g} of the inputs carries an uncertainty"):
        whole = translator.predict(stack)
        tiled = translator.predict(stack, tile=32)
    assert translator.engine.n_tiles(stack.shape, tile=32) > LARGE_IMAGE_TILES
    assert whole.provenance["calibration"] == tiled.provenance["calibration"]
    np.testing.assert_allclose(tiled.uncertainty.array, whole.uncertainty.array, rtol=1e-4, atol=1e-7)
