"""The ``bandsynth predict`` and ``bandsynth predict-batch`` commands."""

import os
import shutil
import stat
import subprocess

import numpy as np
import pytest
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS

from bandsynth import BandStack, SyntheticBand, Translator
from bandsynth.cli import build_parser, main
from bandsynth.datasets import make_galaxy
from bandsynth.models.zoo import sha256_file

INPUTS, OUTPUT = ("NUV", "Ks"), "r"


@pytest.fixture(scope="module")
def stem(tiny_model):
    return tiny_model[0]


@pytest.fixture(scope="module")
def galaxy(tmp_path_factory):
    """NUV and Ks files of one mock galaxy: ``{band: path}``."""
    folder = tmp_path_factory.mktemp("galaxy")
    stack = make_galaxy(5, bands=list(INPUTS), size=48)
    files = {}
    for band in INPUTS:
        files[band] = folder / f"g5_{band.lower()}.fits"
        stack[band].write(files[band])
    return files


def _predict(stem, files, out, *extra):
    args = ["predict", "--model", str(stem), "-o", str(out), *extra]
    for band, path in files.items():
        args += ["--input", f"{band}={path}"]
    return main(args)


@pytest.mark.parametrize("extra, said", [
    (["--model", "other"], "--model given twice ("),
    (["-o", "b.fits"], "-o given twice ("),
    (["--reproject-to", "0.5", "--reproject-to", "Ks"], "--reproject-to given twice (0.5 and Ks): give it once"),
    (["--unit", "Jy", "--unit", "nanomaggy"], "--unit given twice (Jy and nanomaggy): give it once"),
])
def test_an_option_of_one_value_given_twice_is_a_usage_error(stem, galaxy, tmp_path, capsys, extra, said):
    # The last value was taken without a word: --model A --model B ran B, -o a -o b wrote b alone.
    with pytest.raises(SystemExit, match="2"):
        _predict(stem, galaxy, tmp_path / "a.fits", *extra)
    assert said in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_a_zero_point_given_twice_for_a_band_is_a_usage_error(stem, galaxy, tmp_path, caplog):
    assert _predict(stem, galaxy, tmp_path / "a.fits", "--zeropoint", "Ks=25", "--zeropoint", "Ks=26") == 2
    assert "--zeropoint given twice for Ks (25 and 26): give it once" in caplog.text
    assert not list(tmp_path.iterdir())


def test_predict_writes_one_archive_file(stem, galaxy, tmp_path):
    out = tmp_path / "g5_r_synth.fits"
    assert _predict(stem, {"NUV": galaxy["NUV"], "K": galaxy["Ks"]}, out) == 0
    sb = SyntheticBand.read(out)
    assert sb.band.name == "r" and sb.data.shape == (48, 48) and sb.uncertainty is not None
    header = fits.getheader(out)
    assert header["BSMODEL"] == "tiny_test"
    assert header["BSSHA256"] == sha256_file(stem.with_suffix(".safetensors"))
    assert (header["BSIN1"], header["BSINF1"]) == ("NUV", "g5_nuv.fits")
    assert header["BSINS2"] == sha256_file(galaxy["Ks"])
    if shutil.which("fitsverify"):
        result = subprocess.run(["fitsverify", "-q", str(out)], capture_output=True, text=True)
        assert "verification OK" in result.stdout, result.stdout


def test_progress_in_a_log_is_one_line_per_stage(stem, galaxy, tmp_path, capsys):
    # stderr not a terminal (a batch job's log): the bar's carriage returns ran together into one long line
    assert _predict(stem, galaxy, tmp_path / "r.fits") == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("predict: ")]
    assert [line.split(" [")[0] for line in lines] == ["predict: reading the inputs (0/3)",
                                                       "predict: running the network on 48 x 48 pixels (1/3)",
                                                       "predict: writing r.fits (2/3)", "predict: done (3/3)"]


def test_existing_output_is_kept_without_overwrite(stem, galaxy, tmp_path, caplog):
    out = tmp_path / "out.fits"
    out.write_bytes(b"precious")
    assert _predict(stem, galaxy, out) == 2
    assert out.read_bytes() == b"precious"
    assert "exists; pass --overwrite to replace it" in caplog.text
    assert _predict(stem, galaxy, out, "--overwrite") == 0
    assert SyntheticBand.read(out).band.name == "r"
    assert _predict(stem, galaxy, "") == 2  # it said "output  is a folder"
    assert "-o: an empty name; give the name of the FITS file to write" in caplog.text


def test_reproject_to_a_pixel_scale(stem, galaxy, tmp_path, caplog):
    # the advice of the pixel-scale warning, which a command-line user could not follow without a band there
    out = tmp_path / "coarse.fits"
    # both bands came on the model's pixels: the advice is the grid of one of them, which resamples nothing
    with pytest.warns(AstropyUserWarning, match=r"reproject the inputs onto the grid of NUV, which has 0\.262 "
                                                r"arcsec/pixel: reproject_to='NUV'\)"):
        assert _predict(stem, galaxy, out, "--reproject-to", "0.524") == 0
    sb = SyntheticBand.read(out)
    assert sb.data.shape == (24, 24)  # 48 pixels of 0.262" on pixels twice as large
    assert [r["pixel_scale_out"] for r in sb.meta["provenance"]["reprojection"]] == [pytest.approx(0.524)] * 2
    assert _predict(stem, galaxy, tmp_path / "x.fits", "--reproject-to", "0") == 2
    assert "--reproject-to: a pixel scale must be a positive number of arcsec, got 0" in caplog.text
    folder = _two_galaxies(galaxy, tmp_path)  # a batch the same way, galaxy by galaxy
    assert main(["predict-batch", "--model", str(stem), "--pattern", "{id}_{band}.fits", "--input-dir", str(folder),
                 "--out", str(tmp_path / "b"), "--workers", "1", "--quiet", "--reproject-to", "0.524"]) == 0
    np.testing.assert_array_equal(SyntheticBand.read(tmp_path / "b" / "a_r_synth.fits").data, sb.data)
    from astropy.table import Table

    report = Table.read(tmp_path / "b" / "predict_batch_report_r.ecsv")
    # the report serves both interfaces: it names both options, as its errors do
    assert all("reproject the inputs onto the grid of NUV, which has 0.262 arcsec/pixel: --reproject-to NUV "
               "(reproject_to='NUV')" in w for w in report["warnings"])
    assert main(["predict-batch", "--model", str(stem), "--pattern", "{id}_{band}.fits", "--input-dir", str(folder),
                 "--out", str(tmp_path / "b"), "--workers", "1", "--quiet", "--reproject-to", "0.524"]) == 0
    kept = Table.read(tmp_path / "b" / "predict_batch_report_r.ecsv")  # kept outputs: their recorded warnings
    assert set(kept["status"]) == {"exists"}
    assert all("--reproject-to NUV (reproject_to='NUV')" in w for w in kept["warnings"])


def test_an_output_that_is_not_a_regular_file_is_never_replaced(stem, galaxy, tmp_path, caplog):
    fifo, link = tmp_path / "pipe", tmp_path / "to_null"
    os.mkfifo(fifo)
    link.symlink_to(os.devnull)
    for out in (fifo, link):  # --overwrite renamed a regular file over them (as root, over /dev/full too)
        assert _predict(stem, galaxy, out, "--overwrite") == 2
        assert "exists and is not a regular file; give the name of a FITS file to write" in caplog.text
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and link.is_symlink()
    with pytest.raises(FileExistsError, match="exists and is not a regular file"):
        Translator.load(stem).predict_to_fits(BandStack.from_fits(galaxy), link, overwrite=True)
    # "newdir/" names a folder, even before it exists: it wrote a FITS file called newdir
    assert _predict(stem, galaxy, f"{tmp_path / 'newdir'}{os.sep}") == 2
    assert "is a folder; give the name of the FITS file to write" in caplog.text
    assert not (tmp_path / "newdir").exists()


def test_reproject_to_puts_the_inputs_on_one_grid(stem, galaxy, tmp_path, caplog):
    header = fits.getheader(galaxy["Ks"])
    w = WCS(header)
    w.wcs.crval = w.wcs.crval + [2 / 3600, 0]  # a few pixels off the NUV grid
    shifted = tmp_path / "shifted_k.fits"
    hdr = w.to_header()
    hdr["BUNIT"] = header["BUNIT"]
    fits.PrimaryHDU(fits.getdata(galaxy["Ks"]), hdr).writeto(shifted)
    files = {"NUV": galaxy["NUV"], "Ks": shifted}
    out = tmp_path / "out.fits"
    assert _predict(stem, files, out) == 1
    # each band named with its file (the message named the bands alone)
    assert (f"band 'Ks' ('{shifted}') is not on the pixel grid of band 'NUV' ('{galaxy['NUV']}')" in caplog.text
            and not out.exists())
    with pytest.warns(AstropyUserWarning, match="not \\(fully\\) covered"):
        assert _predict(stem, files, out, "--reproject-to", "NUV") == 0
    sb = SyntheticBand.read(out)
    assert sb.wcs.wcs.compare(WCS(fits.getheader(galaxy["NUV"])).wcs, tolerance=1e-10)
    assert sb.mask.any()  # the pixels the shifted Ks image does not cover


def test_tta_averages_the_flips(stem, galaxy, tmp_path):
    plain, tta = tmp_path / "plain.fits", tmp_path / "tta.fits"
    assert _predict(stem, galaxy, plain) == 0 and _predict(stem, galaxy, tta, "--tta") == 0
    assert "flips/rotations" in fits.getval(tta, "BSUNCMET")
    assert "flips/rotations" not in fits.getval(plain, "BSUNCMET")
    assert not np.array_equal(fits.getdata(plain), fits.getdata(tta))


def test_seed_is_that_of_python_predict(stem, galaxy, tmp_path):
    # the command line had no seed: a user could not see how much the Monte Carlo draws move sigma
    outs = {seed: tmp_path / f"s{seed}.fits" for seed in (0, 5)}
    assert _predict(stem, galaxy, outs[0]) == 0 and _predict(stem, galaxy, outs[5], "--seed", "5") == 0
    stack = BandStack.from_fits(galaxy)
    for seed, out in outs.items():
        written = SyntheticBand.read(out)
        assert written.provenance["computation"]["options"]["seed"] == seed
        expected = Translator.load(stem).predict(stack, seed=seed, progress=False)
        np.testing.assert_allclose(written.uncertainty.array, expected.uncertainty.array, rtol=1e-6)


def test_one_multi_extension_input_file(stem, galaxy, tmp_path):
    hdus = [fits.PrimaryHDU()]
    for band, name in (("NUV", "NUV"), ("Ks", "K")):
        with fits.open(galaxy[band]) as src:
            hdus.append(fits.ImageHDU(src[0].data, src[0].header, name=name))
    multi = tmp_path / "g5.fits"
    fits.HDUList(hdus).writeto(multi)
    out = tmp_path / "out.fits"
    assert main(["predict", "--model", str(stem), "--input", str(multi), "-o", str(out)]) == 0
    ref = tmp_path / "ref.fits"
    assert _predict(stem, galaxy, ref) == 0
    np.testing.assert_array_equal(fits.getdata(out), fits.getdata(ref))


def test_a_multi_extension_file_is_read_for_the_models_bands_only(stem, galaxy, tmp_path, caplog):
    hdus = [fits.PrimaryHDU()]
    for band, name in (("NUV", "NUV"), ("Ks", "K")):
        with fits.open(galaxy[band]) as src:
            hdus.append(fits.ImageHDU(src[0].data, src[0].header, name=name))
    broken = fits.ImageHDU(np.full((48, 48), np.nan), name="g")  # a band the model does not read, unusable
    broken.header["BUNIT"] = "nanomaggy"
    multi = tmp_path / "g5_three.fits"
    fits.HDUList([*hdus, broken, fits.ImageHDU(np.zeros((48, 48)), name="SEGMAP")]).writeto(multi)
    out = tmp_path / "out.fits"
    assert main(["predict", "--model", str(stem), "--input", str(multi), "-o", str(out)]) == 0
    header = fits.getheader(out)
    assert [header[f"BSIN{i}"] for i in (1, 2)] == list(INPUTS) and "BSIN3" not in header
    assert header["BSINH2"] == "K"
    ref = tmp_path / "ref.fits"
    assert _predict(stem, galaxy, ref) == 0
    np.testing.assert_array_equal(fits.getdata(out), fits.getdata(ref))
    # A band the model needs that the file does not hold: a usage error before any image is read,
    # naming what the file holds and the HDU of the same filter.
    hdus[2].header["TELESCOP"], hdus[2].header["FILTER"] = "VISTA", "Ks"
    hdus[2].name = "Ks"
    vista = tmp_path / "g5_vista.fits"
    fits.HDUList([*hdus, broken]).writeto(vista)
    assert main(["predict", "--model", str(stem), "--input", str(vista), "-o", str(tmp_path / "v.fits")]) == 2
    assert "reads NUV and Ks; the file holds NUV, g, VISTA_Ks" in caplog.text
    assert f"did you mean --input Ks={vista}[KS]?" in caplog.text
    # A band it does not hold at all: the file is read whole, and its reading says what is wrong (1).
    unknown = tmp_path / "g5_nuvx.fits"
    with fits.open(galaxy["NUV"]) as nuv, fits.open(galaxy["Ks"]) as ks:
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(nuv[0].data, nuv[0].header, name="NUVX"),
                      fits.ImageHDU(ks[0].data, ks[0].header, name="K")]).writeto(unknown)
    assert main(["predict", "--model", str(stem), "--input", str(unknown), "-o", str(tmp_path / "u.fits")]) == 1
    assert "HDU 1 has EXTNAME 'NUVX', which is not a known band" in caplog.text


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (["NUV", "K=b.fits"], "expected BAND=FILE"),
        (["NUV=a.fits", "galex_nuv=b.fits"], "band NUV is given twice"),
        (["FOO=a.fits"], "unknown band 'FOO'"),
    ],
)
def test_bad_input_options_are_reported(stem, tmp_path, caplog, inputs, message):
    args = ["predict", "--model", str(stem), "-o", str(tmp_path / "o.fits")]
    for spec in inputs:
        args += ["--input", spec]
    assert main(args) == 2
    assert message in caplog.text


def test_a_bad_input_file_fails_with_its_name(stem, galaxy, tmp_path, caplog):
    out = tmp_path / "o.fits"
    # Files named on the command line that do not exist, or a band missing: usage errors (2).
    assert _predict(stem, {"NUV": galaxy["NUV"], "Ks": tmp_path / "missing_k.fits"}, out) == 2
    assert "input file for band Ks" in caplog.text and "missing_k.fits not found" in caplog.text
    assert _predict(stem, {"NUV": galaxy["NUV"]}, out) == 2
    assert "needs bands NUV, Ks" in caplog.text and not out.exists()
    # A file that exists but cannot be used: the input failed (1).
    bad = tmp_path / "bad_k.fits"
    bad.write_bytes(b"not a FITS file")
    assert _predict(stem, {"NUV": galaxy["NUV"], "Ks": bad}, out) == 1
    assert "bad_k.fits" in caplog.text and not out.exists()
    # An option that does not apply to its file: a usage error (2), in the option's own words.
    assert _predict(stem, galaxy, out, "--zeropoint", "Ks=20") == 2
    assert "band 'Ks'" in caplog.text and "--zeropoint BAND=ZP applies to images in counts" in caplog.text
    assert _predict(stem, galaxy, out, "--unit", "adu") == 2  # every image states its unit, none converts to ADU
    last = caplog.records[-1].getMessage()
    assert ("cannot convert its unit nmgy to adu, the unit given with --unit (which names the unit of images without "
            "BUNIT)") in last and "unit=" not in last
    assert not out.exists()


def test_tampered_weights_are_refused_by_both_commands(stem, galaxy, tmp_path, caplog):
    bad = tmp_path / "tampered"
    for suffix in (".safetensors", ".json"):
        shutil.copy(stem.with_suffix(suffix), bad.with_suffix(suffix))
    raw = bytearray(bad.with_suffix(".safetensors").read_bytes())
    raw[len(raw) // 2] ^= 0x10  # one bit of one weight
    bad.with_suffix(".safetensors").write_bytes(bytes(raw))

    out = tmp_path / "out.fits"
    assert _predict(bad, galaxy, out) == 2
    assert "refusing to load it" in caplog.text and "tampered.safetensors" in caplog.text
    assert not out.exists()
    caplog.clear()
    manifest = tmp_path / "m.ecsv"
    manifest.write_text(f"# %ECSV 1.0\n# ---\n# datatype:\n# - {{name: id, datatype: string}}\n"
                        f"# - {{name: NUV, datatype: string}}\n# - {{name: K, datatype: string}}\n"
                        f"id NUV K\ng5 {galaxy['NUV']} {galaxy['Ks']}\n")
    code = main(["predict-batch", "--model", str(bad), "--manifest", str(manifest), "--out", str(tmp_path / "o")])
    assert code == 2 and "refusing to load it" in caplog.text
    assert not list((tmp_path).glob("o/*.fits"))


def _two_galaxies(galaxy, tmp_path):
    """A folder of the galaxy's files as galaxies ``a`` and ``b``, named ``{id}_{band}.fits``."""
    folder = tmp_path / "in"
    folder.mkdir()
    for g in ("a", "b"):
        for band, path in galaxy.items():
            shutil.copy(path, folder / f"{g}_{band}.fits")
    return folder


def test_predict_batch_with_an_empty_manifest_is_a_usage_error(stem, tmp_path, caplog):
    from astropy.table import Table

    manifest = tmp_path / "empty.ecsv"
    Table(names=("id", "NUV", "Ks"), dtype=(str, str, str)).write(manifest)
    out = tmp_path / "out"  # it said "0 predicted" with exit code 0, as a --pattern matching nothing did not
    assert main(["predict-batch", "--model", str(stem), "--manifest", str(manifest), "--out", str(out)]) == 2
    assert f"--manifest {manifest} lists no galaxy: nothing to predict" in caplog.text
    assert not out.exists()


def test_predict_batch_pattern_mode(stem, galaxy, tmp_path):
    folder = _two_galaxies(galaxy, tmp_path)
    out = tmp_path / "out"
    code = main(["predict-batch", "--model", str(stem), "--pattern", "{id}_{band}.fits",
                 "--input-dir", str(folder), "--out", str(out), "--workers", "1", "--seed", "3", "--quiet"])
    assert code == 0
    assert sorted(p.name for p in out.glob("*.fits")) == ["a_r_synth.fits", "b_r_synth.fits"]
    assert (out / "predict_batch_report_r.ecsv").exists()
    assert SyntheticBand.read(out / "a_r_synth.fits").provenance["computation"]["options"]["seed"] == 3

    # a pattern without {id} is a usage error (2), named by its option, before any galaxy is read
    bad = main(["predict-batch", "--model", str(stem), "--pattern", "galaxy.fits.gz", "--input-dir", str(folder),
                "--out", str(tmp_path / "o2"), "--quiet"])
    assert bad == 2 and not (tmp_path / "o2" / "predict_batch_report_r.ecsv").exists()


def test_predict_batch_pattern_matching_no_file_is_a_usage_error(stem, galaxy, tmp_path, caplog):
    out, folder = tmp_path / "none", tmp_path / "in"
    folder.mkdir()
    shutil.copy(galaxy["NUV"], folder / "g5_nuv.fits.bak")  # a file, but not one the pattern names
    assert main(["predict-batch", "--model", str(stem), "--input-dir", str(folder), "--pattern",
                 "{id}_{band}.fits", "-o", str(out), "--quiet"]) == 2
    assert "--pattern {id}_{band}.fits: no file of --input-dir" in caplog.text and "for bands NUV, Ks" in caplog.text
    assert not out.exists()


def test_commands_are_registered_and_check_their_options(capsys):
    help_text = build_parser().format_help()
    assert "predict" in help_text and "predict-batch" in help_text
    with pytest.raises(SystemExit) as exc:
        main(["predict-batch", "--model", "m", "--pattern", "{id}_{band}.fits", "--out", "o"])
    assert exc.value.code == 2 and "--pattern needs --input-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["predict-batch", "--model", "m", "--manifest", "m.ecsv", "--pattern", "p", "--out", "o"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_predict_band_with_an_any_band_model_reads_the_bands_given(tiny_any_band_model, galaxy, tmp_path, caplog):
    stem = tiny_any_band_model[0]
    out = tmp_path / "g5_g_synth.fits"
    # An any-band model predicts --band from whichever of its bands are given (here NUV and Ks).
    assert _predict(stem, galaxy, out, "--band", "g") == 0
    sb = SyntheticBand.read(out)
    assert sb.band.name == "g" and sb.meta["provenance"]["model"] == "tiny_any"
    assert [i["band"] for i in sb.meta["provenance"]["inputs"]] == ["NUV", "Ks"]
    assert _predict(stem, galaxy, tmp_path / "x.fits") == 2
    assert "predicts any of NUV, g, r, Ks: say which with --band, e.g. --band NUV" in caplog.text
    for extra, message in ((["--band", "i"], "--band i: model 'tiny_any' predicts NUV, g, r, Ks"),
                           (["--band", "Ks"], "--input Ks: model 'tiny_any' predicts Ks from any of NUV, g, r "
                                              "(Ks is the band to predict, --band Ks)")):
        assert _predict(stem, galaxy, tmp_path / "y.fits", *extra) == 2
        assert message in caplog.text
    assert not (tmp_path / "x.fits").exists() and not (tmp_path / "y.fits").exists()


def test_predict_says_it_does_not_read_an_input_band_the_model_does_not_use(stem, galaxy, tmp_path, caplog):
    # a band the model does not read is said so, and not read: a broken file of it does not stop the prediction
    broken = tmp_path / "g5_g.fits"
    broken.write_text("not FITS")
    assert _predict(stem, {"NUV": galaxy["NUV"], "Ks": galaxy["Ks"], "g": broken}, tmp_path / "r.fits") == 0
    assert "--input g: model 'tiny_test' reads NUV and Ks only; not read" in caplog.text
    assert [i["band"] for i in SyntheticBand.read(tmp_path / "r.fits").provenance["inputs"]] == ["NUV", "Ks"]


def test_predict_refuses_to_write_onto_an_input_file(stem, galaxy, tmp_path, caplog):
    # even with --overwrite: the observed image would be replaced by its prediction
    copy = tmp_path / "nuv.fits"
    shutil.copy(galaxy["NUV"], copy)
    before = copy.read_bytes()
    assert _predict(stem, {"NUV": copy, "Ks": galaxy["Ks"]}, copy, "--overwrite") == 2
    assert f"-o {copy} is the input file of band NUV itself; write the prediction to another file" in caplog.text
    assert copy.read_bytes() == before


def test_python_writes_refuse_to_replace_an_input_file_too(stem, galaxy, tmp_path):
    # SyntheticBand.write and Translator.predict_to_fits replaced the stack's own Ks image with overwrite=True
    copy = tmp_path / "ks.fits"
    shutil.copy(galaxy["Ks"], copy)
    before = copy.read_bytes()
    stack = BandStack.from_fits({"NUV": galaxy["NUV"], "Ks": copy})
    translator = Translator.load(stem)
    message = f"'{copy}' is the input file of band 'Ks' itself; write the prediction to another file"
    with pytest.raises(FileExistsError, match=message):
        translator.predict(stack, progress=False).write(copy, overwrite=True)
    with pytest.raises(FileExistsError, match=message):
        translator.predict_to_fits(stack, copy, overwrite=True, progress=False)
    assert copy.read_bytes() == before


def test_predict_reads_one_hdu_of_a_file_of_several_bands(stem, galaxy, tmp_path, caplog):
    # Both bands in one file: --input BAND=FILE[EXT] picks an HDU; without it each band finds its own EXTNAME.
    both = tmp_path / "g5_both.fits"
    hdus = [fits.PrimaryHDU()]
    for band in ("NUV", "Ks"):
        with fits.open(galaxy[band]) as hdul:
            hdus.append(fits.ImageHDU(hdul[0].data, hdul[0].header, name=band))
    fits.HDUList(hdus).writeto(both)
    reference = tmp_path / "reference.fits"
    assert _predict(stem, galaxy, reference) == 0
    for spec, out in (({"NUV": f"{both}[NUV]", "Ks": f"{both}[2]"}, "by_hdu.fits"),
                      ({"NUV": both, "Ks": both}, "by_extname.fits")):
        assert _predict(stem, spec, tmp_path / out) == 0
        np.testing.assert_array_equal(SyntheticBand.read(tmp_path / out).data, SyntheticBand.read(reference).data)
        # the provenance says which HDU each band was read from (the EXTNAME, also when given by number)
        assert [i["hdu"] for i in SyntheticBand.read(tmp_path / out).provenance["inputs"]] == ["NUV", "KS"]
    # A file of other bands' images is not read as NUV from its first HDU: the HDU must be named.
    other = tmp_path / "g5_gr.fits"
    with fits.open(galaxy["NUV"]) as hdul:
        fits.HDUList([fits.PrimaryHDU(), *(fits.ImageHDU(hdul[0].data, hdul[0].header, name=b) for b in "gr")]
                     ).writeto(other)
    assert _predict(stem, {"NUV": other, "Ks": galaxy["Ks"]}, tmp_path / "x.fits") == 1
    assert ("none of them NUV; the file holds no NUV image (if an HDU holds it under another band's name, name that "
            "HDU: --input NUV=FILE[EXTNAME])") in caplog.text
    # read as asked, but said: the HDU holds another filter's image
    with pytest.warns(UserWarning, match=r"band 'NUV': HDU 'G' of .* holds g, another filter, read as NUV as asked"):
        assert _predict(stem, {"NUV": f"{other}[G]", "Ks": galaxy["Ks"]}, tmp_path / "x.fits") == 0
    assert main(["predict", "--model", str(stem), "--input", f"{both}[NUV]", "-o", str(tmp_path / "y.fits")]) == 2
    assert "one HDU of a file is one band's image; name its band: --input BAND=" in caplog.text


def test_predict_band_named_by_its_filter_alone_suggests_the_models_band(galaxy, tmp_path, caplog):
    # "H" is 2MASS H in the registry; the KiDS/VIKING model writes VISTA_H.  --band is refused before any
    # input is read, so any existing file stands in for the KiDS g image.
    args = ["predict", "--model", "any_band_kids_viking", "--input", f"KiDS_g={galaxy['NUV']}",
            "-o", str(tmp_path / "h.fits")]
    assert main([*args, "--band", "H"]) == 2
    assert "--band H: model 'any_band_kids_viking' predicts KiDS_u, " in caplog.text
    assert "(did you mean --band VISTA_H?)" in caplog.text
    assert main([*args, "--band", "NUV"]) == 2
    assert "--band NUV: model 'any_band_kids_viking' predicts" in caplog.text
    assert caplog.text.count("did you mean") == 1
    # The same for inputs: "J" is 2MASS J, and "g", "z" are SDSS's where a model reads DECam's.
    assert main(["predict", "--model", "any_band_kids_viking", "--band", "VISTA_H", "--input", f"J={galaxy['NUV']}",
                 "-o", str(tmp_path / "h.fits")]) == 2
    assert "predicts VISTA_H from any of KiDS_u, " in caplog.text
    assert "(did you mean --input VISTA_J=...?)" in caplog.text
    assert main(["predict", "--model", "g_z_to_r", "--input", f"g={galaxy['NUV']}", "--input", f"z={galaxy['Ks']}",
                 "-o", str(tmp_path / "r.fits")]) == 2
    assert ("needs bands DECam_g, DECam_z; no --input for DECam_g, DECam_z (did you mean --input DECam_g=... and "
            "--input DECam_z=...?)") in caplog.text
    assert not (tmp_path / "h.fits").exists() and not (tmp_path / "r.fits").exists()


def test_predict_band_of_a_one_mapping_model_must_be_its_output(stem, galaxy, tmp_path, caplog):
    assert _predict(stem, galaxy, tmp_path / "r.fits", "--band", "r") == 0
    assert _predict(stem, galaxy, tmp_path / "g.fits", "--band", "g") == 2
    assert "--band g: model 'tiny_test' predicts r" in caplog.text


def test_predict_batch_band_with_an_any_band_model(tiny_any_band_model, galaxy, tmp_path, caplog, capsys):
    stem = tiny_any_band_model[0]
    folder = _two_galaxies(galaxy, tmp_path)
    out = tmp_path / "out"
    common = ["predict-batch", "--model", str(stem), "--pattern", "{id}_{band}.fits", "--input-dir", str(folder),
              "--out", str(out), "--workers", "1", "--quiet"]
    assert main([*common, "--band", "g", "--input-bands", "NUV", "Ks"]) == 0
    assert sorted(p.name for p in out.glob("*.fits")) == ["a_g_synth.fits", "b_g_synth.fits"]
    sb = SyntheticBand.read(out / "a_g_synth.fits")
    assert sb.band.name == "g" and [i["band"] for i in sb.meta["provenance"]["inputs"]] == ["NUV", "Ks"]
    # A rerun keeps the outputs of the same request.
    assert main([*common, "--band", "g", "--input-bands", "NUV", "Ks"]) == 0
    from astropy.table import Table

    assert list(Table.read(out / "predict_batch_report_g.ecsv")["status"]) == ["exists", "exists"]
    # ... but not those of another request: kept, and said so (they were "already done")
    assert main([*common, "--band", "g", "--input-bands", "NUV"]) == 1
    report = Table.read(out / "predict_batch_report_g.ecsv")
    assert list(report["status"]) == ["failed", "failed"]
    assert all("exists but was made from NUV + Ks, not from NUV; it is kept" in e for e in report["error"])
    assert main(common) == 2
    assert "model 'tiny_any' predicts any of NUV, g, r, Ks; say which with --band" in caplog.text
    # --input-bands adds up when repeated; --band is one band, --input-bands each band once
    (folder / "notes.txt").write_text("not an image")  # a file the pattern does not match: ignored, and counted
    capsys.readouterr()
    assert main([*common, "--band", "g", "--input-bands", "NUV", "--input-bands", "Ks"]) == 0
    assert list(Table.read(out / "predict_batch_report_g.ecsv")["status"]) == ["exists", "exists", "ignored"]
    assert "2 already done, 0 failed, 1 file(s) ignored (see the report) in" in capsys.readouterr().out
    # another band into the same folder: its own outputs and its own report, g's kept
    assert main([*common, "--band", "r", "--input-bands", "NUV", "Ks"]) == 0
    assert list(Table.read(out / "predict_batch_report_r.ecsv")["status"]) == ["done", "done", "ignored"]
    assert list(Table.read(out / "predict_batch_report_g.ecsv")["status"]) == ["exists", "exists", "ignored"]
    with pytest.raises(SystemExit, match="2"):
        main([*common, "--band", "g", "--band", "r", "--input-bands", "NUV", "Ks"])
    assert "--band given twice (g and r): one run predicts one band; run once per band" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):
        main([*common, "--band", "g", "--report", "a.csv", "--report", "b.csv"])
    assert "--report given twice (a.csv and b.csv): give it once" in capsys.readouterr().err
    assert main([*common, "--band", "g", "--input-bands", "NUV", "Ks", "NUV"]) == 2
    assert "--input-bands: band(s) NUV given twice" in caplog.text
    assert main([*common, "--band", "g", "--input-bands", "NUV", "g"]) == 2
    assert "--input-bands g: model 'tiny_any' predicts g from any of NUV, r, Ks" in caplog.text
    # a band named by its filter alone, of another survey than the model's: the model's band is suggested
    assert main(["predict-batch", "--model", "any_band_kids_viking", "--band", "H", "--pattern", "{id}_{band}.fits",
                 "--input-dir", str(tmp_path), "--out", str(tmp_path / "kv")]) == 2
    assert "say which with --band (did you mean VISTA_H?)" in caplog.text
    assert main(["predict-batch", "--model", "any_band_kids_viking", "--band", "VISTA_H", "--input-bands", "g",
                 "--pattern", "{id}_{band}.fits", "--input-dir", str(tmp_path), "--out", str(tmp_path / "kv")]) == 2
    assert "(did you mean KiDS_g?)" in caplog.text


def test_predict_batch_counts_a_galaxy_without_some_bands_once(tiny_any_band_model, galaxy, tmp_path, caplog,
                                                               capsys):
    from astropy.table import Table

    folder = _two_galaxies(galaxy, tmp_path)  # NUV and Ks only; g from every other band needs r too
    (folder / "b_Ks.fits").unlink()  # b lacks two bands: one galaxy failed, not two
    out = tmp_path / "out"
    assert main(["predict-batch", "--model", str(tiny_any_band_model[0]), "--band", "g", "--pattern",
                 "{id}_{band}.fits", "--input-dir", str(folder), "--out", str(out), "--workers", "1"]) == 1
    assert "0 predicted, 0 already done, 2 failed in" in capsys.readouterr().out  # it counted one per missing band
    report = Table.read(out / "predict_batch_report_g.ecsv")
    assert list(report["galaxy"]) == ["a", "b"] and list(report["band"]) == ["r", "r,Ks"]
    assert report["error"][0] == "object 'a' has no usable file for band r"
    assert report["error"][1] == "object 'b' has no usable file for bands r, Ks"
    assert "to predict from the bands the galaxies have, name them: --input-bands BAND [BAND ...]" in caplog.text


def test_predict_batch_report_never_replaces_what_is_not_a_report(stem, galaxy, tmp_path, caplog, monkeypatch):
    import bandsynth.batch.run

    folder = _two_galaxies(galaxy, tmp_path)
    out = tmp_path / "out"
    common = ["predict-batch", "--model", str(stem), "--pattern", "{id}_{band}.fits", "--input-dir", str(folder),
              "--out", str(out), "--workers", "1", "--quiet"]
    assert main(common) == 0
    prediction, notes = out / "a_r_synth.fits", tmp_path / "notes.csv"
    notes.write_text("my notes")
    before = prediction.read_bytes()
    monkeypatch.setattr(bandsynth.batch.run, "_run", lambda *a, **k: pytest.fail("the batch ran"))
    # both were replaced by the report, and the run said "2 already done"
    for path, why in ((notes, "exists and is not a batch report; it would be replaced"),
                      (prediction, "a report is an ECSV or CSV table; give a .ecsv or .csv file name, not .fits")):
        assert main([*common, "--report", str(path)]) == 2
        assert f"--report: report {path}{'' if path == notes else ':'} {why}" in caplog.text
    assert notes.read_text() == "my notes" and prediction.read_bytes() == before
    # the default report's path is checked before any galaxy is predicted too (a folder there was found after)
    default = tmp_path / "out2" / "predict_batch_report_r.ecsv"
    default.mkdir(parents=True)
    assert main([*common[:-5], "--out", str(tmp_path / "out2"), "--workers", "1", "--quiet"]) == 2
    assert f"report {default} is a folder; give the name of the ECSV file to write" in caplog.text
    # an earlier report is replaced, as before
    monkeypatch.undo()
    assert main([*common, "--report", str(out / "predict_batch_report_r.ecsv")]) == 0


def test_predict_batch_tells_a_psf_tagged_model_each_galaxys_seeing(tiny_any_band_model, galaxy, tmp_path):
    import torch

    from bandsynth import Translator
    from bandsynth.any_band_translator import AnyBandTranslator

    translator = tiny_any_band_model[1]
    net = translator.model.with_psf_tags()
    with torch.no_grad():
        net.generator.trunk[1].weight[:, 12:16].normal_(0.0, 0.3)  # as if trained: the tags matter
    card = translator.card.replace(name="tiny_any_psf", psf_fwhm={b: 1.0 for b in translator.inputs},
                                   training={"psf_max_ratio": 4.0})
    stem = tmp_path / "tiny_any_psf"
    AnyBandTranslator(net, card, one_mapping=Translator).save(stem)
    folder = _two_galaxies(galaxy, tmp_path)
    for g, seeing in (("a", 1.0), ("b", 2.0)):  # galaxy b's NUV image has twice the training PSF
        fits.setval(folder / f"{g}_NUV.fits", "PSF_FWHM", value=seeing)
    out = tmp_path / "out"
    assert main(["predict-batch", "--model", str(stem), "--pattern", "{id}_{band}.fits", "--input-dir", str(folder),
                 "--out", str(out), "--workers", "1", "--quiet", "--band", "g", "--input-bands", "NUV", "Ks"]) == 0
    a, b = (SyntheticBand.read(out / f"{g}_g_synth.fits") for g in ("a", "b"))
    assert [i["psf_tag"] for i in a.meta["provenance"]["inputs"]] == [0.0, 0.0]
    assert [i["psf_tag"] for i in b.meta["provenance"]["inputs"]] == [1.0, 0.0]
    assert not np.allclose(a.data, b.data)  # the same pixels, told another seeing
    assert _predict(stem, {"NUV": folder / "b_NUV.fits", "Ks": folder / "b_Ks.fits"}, tmp_path / "b.fits",
                    "--band", "g") == 0
    np.testing.assert_array_equal(SyntheticBand.read(tmp_path / "b.fits").data, b.data)


def test_predict_says_which_hdus_of_a_file_an_any_band_model_leaves_unread(tiny_any_band_model, galaxy, tmp_path,
                                                                           caplog):
    # One file of all a galaxy's images: those an any-band model does not read were dropped without a word,
    # also those holding one of its bands under another survey's name.
    mixed = tmp_path / "g5_mixed.fits"
    hdus = [fits.PrimaryHDU()]
    for band, name in (("NUV", "NUV"), ("Ks", "KS"), ("NUV", "KIDS_I")):
        with fits.open(galaxy[band]) as hdul:
            hdus.append(fits.ImageHDU(hdul[0].data, hdul[0].header, name=name))
    fits.HDUList(hdus).writeto(mixed)
    out = tmp_path / "g.fits"
    assert main(["predict", "--model", str(tiny_any_band_model[0]), "--band", "g", "--input", str(mixed),
                 "-o", str(out)]) == 0
    assert f"--input {mixed}: model 'tiny_any' does not read HDU KIDS_I (KiDS_i); it is not read" in caplog.text
    assert [i["band"] for i in SyntheticBand.read(out).provenance["inputs"]] == ["NUV", "Ks"]
    # a KiDS/VIKING model told which HDU may hold its band under the registry's other filter
    kv = tmp_path / "kv.fits"
    with fits.open(galaxy["NUV"]) as hdul:
        fits.HDUList([fits.PrimaryHDU(), *(fits.ImageHDU(hdul[0].data, hdul[0].header, name=n)
                                           for n in ("KIDS_G", "J"))]).writeto(kv)
    assert main(["predict", "--model", "any_band_kids_viking", "--band", "KiDS_r", "--input", str(kv),
                 "-o", str(tmp_path / "r.fits")]) == 0
    assert (f"does not read HDU J (J); it is not read (if HDU J holds VISTA_J, name each band: "
            f"--input KiDS_g={kv}[KIDS_G] --input VISTA_J={kv}[J])") in caplog.text


def test_unknown_bands_are_said_against_the_models_own_bands(tiny_any_band_model, galaxy, tmp_path, caplog):
    # the registry's whole band list buried the model's four
    stem = tiny_any_band_model[0]
    assert _predict(stem, galaxy, tmp_path / "x.fits", "--band", "VISTA_X") == 2
    assert "--band VISTA_X: not a known band; model 'tiny_any' predicts NUV, g, r, Ks" in caplog.text
    common = ["predict-batch", "--model", str(stem), "--pattern", "{id}_{band}.fits", "--input-dir", str(tmp_path),
              "--out", str(tmp_path / "out")]
    assert main([*common, "--band", "VISTA_X"]) == 2
    assert main([*common, "--band", "g", "--input-bands", "NUVV"]) == 2
    assert "--input-bands NUVV: not a known band; model 'tiny_any' reads NUV, g, r, Ks" in caplog.text
    assert "FUV" not in caplog.text
    # a survey's own short name, no registered band: the model's band of that filter suggested
    assert main(["predict-batch", "--model", "any_band_kids_viking", "--band", "Y", "--pattern", "{id}_{band}.fits",
                 "--input-dir", str(tmp_path), "--out", str(tmp_path / "kv")]) == 2
    assert "--band Y: not a known band; model 'any_band_kids_viking' predicts KiDS_u, " in caplog.text
    assert "(did you mean --band VISTA_Y?)" in caplog.text
    # a band of another survey's filter named to --reproject-to: the run's own band suggested
    assert main(["predict", "--model", "any_band_kids_viking", "--band", "KiDS_r", "--input",
                 f"VISTA_Z={galaxy['NUV']}", "--reproject-to", "Z", "-o", str(tmp_path / "r.fits")]) == 2
    assert "--reproject-to z: not one of the bands this run reads" in caplog.text
    assert "(did you mean --reproject-to VISTA_Z?)" in caplog.text


def test_a_file_whose_image_names_no_band_is_told_how_to_name_it(stem, galaxy, tmp_path, caplog):
    # it said "give every band image an EXTNAME", as if the user had to edit the file
    assert main(["predict", "--model", str(stem), "--input", str(galaxy["NUV"]), "-o", str(tmp_path / "x.fits")]) == 2
    assert (f"--input {galaxy['NUV']}: no HDU of the file names its band (EXTNAME, or SURVEY and FILTER); name the "
            f"band of its image: --input BAND={galaxy['NUV']}, e.g. --input NUV={galaxy['NUV']}") in caplog.text


def test_a_file_that_is_not_fits_is_said_so_without_astropys_advice(stem, galaxy, tmp_path, caplog):
    # "try with ignore_missing_simple=True" is an argument of astropy's, of no bandsynth interface
    broken = tmp_path / "nuv.fits"
    broken.write_bytes(b"\x00" * 4000)
    assert _predict(stem, {"NUV": broken, "Ks": galaxy["Ks"]}, tmp_path / "x.fits") == 1
    assert "cannot read" in caplog.text and "as FITS: No SIMPLE card found" in caplog.text
    assert "ignore_missing_simple" not in caplog.text


def test_predict_batch_counts_a_listed_galaxy_without_some_bands_once(tiny_any_band_model, galaxy, tmp_path,
                                                                      caplog, capsys):
    from astropy.table import Table

    from bandsynth.batch import predict_many

    manifest = tmp_path / "m.ecsv"  # galaxy b lacks g and Ks: one galaxy failed, not two
    Table({"id": ["a", "b"], "NUV": [str(galaxy["NUV"])] * 2, "g": [str(galaxy["NUV"]), ""],
           "Ks": [str(galaxy["Ks"]), ""]}).write(manifest)
    out = tmp_path / "out"
    assert main(["predict-batch", "--model", str(tiny_any_band_model[0]), "--band", "r", "--input-bands", "NUV", "g",
                 "Ks", "--manifest", str(manifest), "--out", str(out), "--workers", "1"]) == 1
    assert "1 predicted, 0 already done, 1 failed in" in capsys.readouterr().out
    report = Table.read(out / "predict_batch_report_r.ecsv")
    failed = report[report["status"] == "failed"]
    assert list(failed["band"]) == ["g,Ks"] and list(failed["error"]) == ["no file for bands g, Ks in the manifest"]
    assert "to predict from the bands the galaxies have, name them: --input-bands BAND [BAND ...]" not in caplog.text
    # the same for a list of (id, {band: path}) in Python
    report = predict_many(tiny_any_band_model[1], [("c", {"NUV": galaxy["NUV"]})], out_dir=tmp_path / "py",
                          band="r", inputs=["NUV", "g", "Ks"], workers=1, progress=False)
    assert len(report.failed) == 1 and report.failed["error"][0] == "no file for bands g, Ks"
    # a galaxy with a band name nobody knows fails alone (it stopped the batch, naming no galaxy)
    files = {"NUV": galaxy["NUV"], "g": galaxy["NUV"], "Ks": galaxy["Ks"]}
    report = predict_many(tiny_any_band_model[1], [("d", files), ("e", {**files, "FOO": galaxy["Ks"]})],
                          out_dir=tmp_path / "py2", band="r", inputs=["NUV", "g", "Ks"], workers=1, progress=False)
    assert dict(zip(report.table["galaxy"], report.table["status"])) == {"d": "done", "e": "failed"}
    assert "unknown band 'FOO'" in report.failed["error"][0]
    # a manifest of fewer bands than the model reads: naming them is the fix
    Table({"id": ["a"], "NUV": [str(galaxy["NUV"])]}).write(tmp_path / "nuv.ecsv")
    assert main(["predict-batch", "--model", str(tiny_any_band_model[0]), "--band", "r", "--manifest",
                 str(tmp_path / "nuv.ecsv"), "--out", str(tmp_path / "o2")]) == 2
    assert ("has no column for band(s) g, Ks (columns: id, NUV); the model needs NUV, g, Ks: add one column per "
            "band, or a 'file' column of multi-extension files; or, to predict from the bands it gives, name them: "
            "--input-bands BAND [BAND ...]") in caplog.text
    with pytest.raises(ValueError, match=r"multi-extension files; or, to predict from the bands it gives, name them: "
                                         r"inputs=\[\.\.\.\]$"):
        predict_many(tiny_any_band_model[1], tmp_path / "nuv.ecsv", out_dir=tmp_path / "o3", band="r", workers=1)
