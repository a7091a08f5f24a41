"""Tests of on-disk data sets: writing, memory-mapped reading, errors and the ``bandsynth mock`` command."""


import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from bandsynth.datasets import DataFormatError, make_dataset, open_dataset, write_dataset
from bandsynth.datasets.store import write_mock_dataset
from bandsynth.units import nanomaggy

BANDS = ["NUV", "g", "Ks"]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    path = tmp_path_factory.mktemp("sets") / "mock"
    ds = write_mock_dataset(path, 5, seed=4, bands=BANDS, size=16, views=2, progress=False)
    yield path, ds
    ds.close()


def _is_memory_mapped(array):
    while array is not None:
        if isinstance(array, np.memmap) or type(array).__name__ == "mmap":
            return True
        array = getattr(array, "base", None)
    return False


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_written_set_matches_in_memory_set(written):
    path, ds = written
    mem = make_dataset(5, seed=4, bands=BANDS, size=16, views=2)
    assert len(ds) == len(mem) == 10
    assert ds.names == mem.names == ("NUV", "g", "Ks")
    for b in BANDS:
        cube = ds.cube(b)
        assert _is_memory_mapped(cube)
        assert np.array_equal(np.asarray(cube, dtype=np.float32), mem.cube(b))
    assert list(ds.manifest["galaxy_id"]) == list(mem.manifest["galaxy_id"])
    assert list(ds.manifest["split"]) == list(mem.manifest["split"])
    for s in ("train", "validation", "test"):
        assert np.array_equal(ds.indices(s), mem.indices(s))
    assert not ds.has_uncertainty
    assert ds.info["mode"] == "ideal" and ds.info["pixel_scale"] == pytest.approx(0.262)


def test_stack_from_disk(written):
    _, ds = written
    st = ds.stack(3)
    assert st.names == ("NUV", "g", "Ks")
    assert st["g"].unit == nanomaggy
    assert np.array_equal(st["g"].data, np.asarray(ds.cube("g")[3]))
    assert st.meta["galaxy_id"] == ds.manifest["galaxy_id"][3]
    assert st.meta["view"] == 1
    assert st.wcs.wcs.ctype[1] == "DEC--TAN"
    with pytest.raises(IndexError, match="out of range"):
        ds.stack(10)


def test_cube_files_are_fits_with_header(written):
    path, _ = written
    with fits.open(path / "cube_g.fits") as hdul:
        assert hdul[0].header["BSBAND"] == "g"
        assert hdul[0].header["BUNIT"] == "nanomaggy"
        assert hdul[0].data.shape == (10, 16, 16)
    manifest = Table.read(path / "manifest.ecsv")
    assert manifest.meta["format"] == "bandsynth-dataset"


def test_survey_set_has_uncertainty_cubes(tmp_path):
    ds = write_mock_dataset(tmp_path / "s", 2, seed=1, mode="survey", bands=["DECam_r"], size=16, progress=False)
    assert ds.has_uncertainty
    unc = ds.uncertainty_cube("decals_r")
    assert unc.shape == (2, 16, 16) and np.all(np.asarray(unc) > 0)
    assert ds.stack(0)["DECam_r"].uncertainty is not None
    ds.close()


def test_refuses_to_overwrite_and_overwrites_atomically(tmp_path):
    path = tmp_path / "set"
    ds = write_mock_dataset(path, 2, seed=0, bands=["r"], size=8, progress=False)
    first = np.array(ds.cube("r"))
    ds.close()
    with pytest.raises(FileExistsError, match="already exists"):
        write_mock_dataset(path, 2, seed=1, bands=["r"], size=8, progress=False)
    ds = write_mock_dataset(path, 2, seed=1, bands=["r"], size=8, progress=False, overwrite=True)
    assert not np.array_equal(np.asarray(ds.cube("r")), first)
    ds.close()
    # no temporary or backup directories are left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    # overwrite replaces a data set, never a folder of other files (it would be deleted with it)
    other = tmp_path / "project"
    (other / "sub").mkdir(parents=True)
    (other / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"project: exists and is not a bandsynth data set \(notes.txt, sub\); "
                                              r"overwrite=True / --overwrite replaces only a data set folder"):
        write_mock_dataset(other, 2, seed=1, bands=["r"], size=8, progress=False, overwrite=True)
    assert (other / "notes.txt").read_text() == "mine" and (other / "sub").is_dir()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(FileExistsError, match="afile: exists and is a file, not a data set folder"):
        write_mock_dataset(tmp_path / "afile", 2, seed=1, bands=["r"], size=8, progress=False, overwrite=True)
    (tmp_path / "empty").mkdir()
    write_mock_dataset(tmp_path / "empty", 2, seed=1, bands=["r"], size=8, progress=False, overwrite=True).close()


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="unknown band"):
        write_mock_dataset(tmp_path / "bad", 2, bands=["r", "nope"], size=8, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_write_in_memory_set(tmp_path):
    mem = make_dataset(3, seed=2, mode="survey", bands=["g", "r"], size=8)
    ds = write_dataset(mem, tmp_path / "copy")
    assert np.array_equal(np.asarray(ds.uncertainty_cube("r")), mem.uncertainty_cube("r"))
    assert list(ds.manifest["log_ssfr"]) == pytest.approx(list(mem.manifest["log_ssfr"]))
    ds.close()
    with pytest.raises(TypeError, match="source must be a data set"):
        write_dataset([1, 2], tmp_path / "x")


# ---- bad input ---------------------------------------------------------------------------------
def test_missing_directory_and_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such data set"):
        open_dataset(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match=r"manifest\.ecsv is missing"):
        open_dataset(tmp_path / "empty")


def test_missing_cube(written, tmp_path):
    path = _copy(written[0], tmp_path / "c")
    (path / "cube_Ks.fits").unlink()
    with pytest.raises(DataFormatError, match=r"cube_Ks\.fits: missing cube file of band 'Ks'"):
        open_dataset(path)


def test_truncated_cube(written, tmp_path):
    path = _copy(written[0], tmp_path / "t")
    f = path / "cube_g.fits"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"cube_g\.fits: .*truncated"):
        open_dataset(path)


def test_corrupt_cube(written, tmp_path):
    path = _copy(written[0], tmp_path / "x")
    (path / "cube_NUV.fits").write_bytes(b"this is not a FITS file" * 200)
    with pytest.raises(DataFormatError, match=r"cube_NUV\.fits"):
        open_dataset(path)


def test_inconsistent_shape(written, tmp_path):
    path = _copy(written[0], tmp_path / "s")
    fits.PrimaryHDU(np.zeros((10, 8, 8), dtype=np.float32)).writeto(path / "cube_g.fits", overwrite=True)
    with pytest.raises(DataFormatError, match=r"cube of band 'g' has shape \(10, 8, 8\), expected \(10, 16, 16\)"):
        open_dataset(path)
    fits.PrimaryHDU(np.zeros((7, 16, 16), dtype=np.float32)).writeto(path / "cube_g.fits", overwrite=True)
    with pytest.raises(DataFormatError, match="one image per manifest row"):
        open_dataset(path)


def test_wrong_band_in_cube_and_absent_band(written, tmp_path):
    path = _copy(written[0], tmp_path / "w")
    with fits.open(path / "cube_NUV.fits") as hdul:
        hdul[0].header["BSBAND"] = "FUV"
        hdul.writeto(path / "cube_NUV2.fits")
    (path / "cube_NUV2.fits").replace(path / "cube_NUV.fits")
    with pytest.raises(DataFormatError, match="holds band 'FUV', expected 'NUV'"):
        open_dataset(path)
    ds = open_dataset(written[0])
    with pytest.raises(ValueError, match="band 'r' is not in this data set"):
        ds.cube("r")


def test_corrupt_manifest(written, tmp_path):
    path = _copy(written[0], tmp_path / "m")
    (path / "manifest.ecsv").write_text("# %ECSV 1.0\n# ---\n# garbage: [\nnot a table\n")
    with pytest.raises(DataFormatError, match=r"manifest\.ecsv: cannot read the manifest"):
        open_dataset(path)


def _set_header(path, key, value):
    with fits.open(path, mode="update") as hdul:
        if value is None:
            del hdul[0].header[key]
        else:
            hdul[0].header[key] = value


def _set_meta(path, **changes):
    manifest = Table.read(path / "manifest.ecsv", format="ascii.ecsv")
    for key, value in changes.items():
        if value is None:
            manifest.meta.pop(key, None)
        else:
            manifest.meta[key] = value
    manifest.write(path / "manifest.ecsv", overwrite=True)
    return manifest


def test_the_cubes_bunit_is_read_and_a_contradiction_refused(written, tmp_path):
    # Cubes in Jy with no unit in the manifest loaded as nanomaggies without a word, and a manifest unit
    # contradicting the cubes' BUNIT passed.
    import astropy.units as u

    path = _copy(written[0], tmp_path / "u")
    for band in BANDS:
        _set_header(path / f"cube_{band}.fits", "BUNIT", "Jy")
    _set_meta(path, unit=None)
    with open_dataset(path) as ds:
        assert ds.info["unit"] == "Jy" and ds.stack(0)["g"].unit == u.Jy
    _set_meta(path, unit="nanomaggy")
    with pytest.raises(DataFormatError, match=rf"{path / 'cube_NUV.fits'}: BUNIT 'Jy' contradicts the unit "
                                              rf"'nanomaggy' of {path / 'manifest.ecsv'}; make them agree"):
        open_dataset(path)
    _set_meta(path, unit=None)
    _set_header(path / "cube_Ks.fits", "BUNIT", "uJy")
    with pytest.raises(DataFormatError, match=r"cube_Ks.fits: BUNIT 'uJy' differs from .*cube_NUV.fits's 'Jy'; "
                                              r"every band of a data set is in one unit"):
        open_dataset(path)
    _set_header(path / "cube_Ks.fits", "BUNIT", "furlongs")
    with pytest.raises(DataFormatError, match=r"cube_Ks.fits: BUNIT 'furlongs' is not a unit astropy reads"):
        open_dataset(path)
    for band in BANDS:  # cubes without BUNIT: the manifest's unit, as before
        _set_header(path / f"cube_{band}.fits", "BUNIT", None)
    _set_meta(path, unit="uJy")
    with open_dataset(path) as ds:
        assert ds.stack(0)["g"].unit == u.uJy


def test_an_unknown_split_label_is_refused(written, tmp_path):
    # A split spelt 'val' put its images in no split: not validated on, not tested on, without a word.
    path = _copy(written[0], tmp_path / "v")
    manifest = Table.read(path / "manifest.ecsv", format="ascii.ecsv")
    manifest["split"] = ["val" if s == "validation" else s for s in manifest["split"]]
    manifest.write(path / "manifest.ecsv", overwrite=True)
    with pytest.raises(DataFormatError, match=rf"{path / 'manifest.ecsv'}: unknown split label\(s\) 'val' in the "
                                              r"'split' column; expected 'train', 'validation', 'test'"):
        open_dataset(path)


# ---- command line ------------------------------------------------------------------------------
def _run(argv):
    from bandsynth.cli import main

    return main(argv)


def test_cli_mock(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["mock", "--n", "4", "-o", str(out), "--mode", "ideal", "--seed", "3", "--bands", "NUV", "r",
            "--views", "2", "--size", "8", "--quiet"]
    assert _run(argv) == 0
    assert "wrote 8 images of 4 galaxies in 2 bands" in capsys.readouterr().out
    ds = open_dataset(out)
    assert len(ds) == 8 and ds.names == ("NUV", "r")
    ds.close()
    assert _run(argv) == 2  # refuses to overwrite: a usage error, before any work
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert _run(argv + ["--overwrite"]) == 0


def test_cli_mock_survey_layer(tmp_path, capsys):
    out = tmp_path / "kv"
    argv = ["mock", "--n", "3", "-o", str(out), "--survey", "kids_viking", "--bands", "g", "Z", "--size", "24",
            "--r-mag-range", "14", "15", "--seed", "2", "--redshift", "--grid-offsets", "0.5", "--quiet"]
    assert _run(argv) == 0
    ds = open_dataset(out)
    expected = make_dataset(3, seed=2, survey="kids_viking", bands=["g", "Z"], size=24, r_mag_range=(14, 15),
                            redshift=True, grid_offsets=0.5)
    assert ds.manifest.meta["redshift"] is True and ds.manifest.meta["grid_offsets"] == 0.5
    assert ds.names == expected.names == ("KiDS_g", "VISTA_Z")
    np.testing.assert_array_equal(ds.truth_cube("KiDS_g"), expected.truth_cube("KiDS_g"))
    np.testing.assert_array_equal(ds.cube("VISTA_Z"), expected.cube("VISTA_Z"))
    ds.close()
    capsys.readouterr()


@pytest.mark.parametrize("extra, message", [
    (["--survey", "kids_viking", "--mode", "survey"], "--survey kids_viking sets how every band is observed; drop --mode"),
    (["--survey", "SDSS", "--bands", "Ks"], "--survey SDSS: survey 'SDSS' does not observe band 'Ks'"),
    (["--survey", "nowhere"], "--survey nowhere: unknown survey 'nowhere'"),
    (["--r-mag-range", "14", "15"], "--r-mag-range needs --survey"),
    (["--redshift"], "--redshift needs --survey"),
    (["--grid-offsets", "0.5"], "--grid-offsets needs --survey"),
    (["--survey", "decals", "--bands", "r", "--grid-offsets", "2"], "--grid-offsets 2: expected a probability from 0"),
])
def test_cli_mock_survey_errors_name_the_flags(tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert _run(["mock", "--n", "2", "-o", str(out), "--size", "8", "--quiet", *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_cli_mock_accepts_the_names_of_before_0_2(tmp_path):
    assert _run(["mock", "--n", "2", "--out", str(tmp_path / "m"), "--bands", "g", "--size", "8",
                 "--no-progress"]) == 0
    assert (tmp_path / "m" / "cube_g.fits").exists()
