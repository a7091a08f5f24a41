"""Issue 18, "The command line and the first hour": one test (at least) per item.

The end-to-end tests run ``python -m bandsynth.cli`` in a subprocess, because what
they pin is what a user sees on the terminal (stdout, stderr, exit code).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS

from bandsynth import BandStack, SyntheticBand, Translator
from bandsynth.cli import build_parser, main
from bandsynth.cli._common import cli_text
from bandsynth.datasets import make_galaxy
from bandsynth.datasets.mock import observe_galaxy
from bandsynth.models.zoo import get_card, model_paths

ROOT = Path(__file__).resolve().parents[1]
INPUTS, OUTPUT = ("NUV", "Ks"), "r"
ODD_NAME = "NGC 4486 Ωmega-é"


@pytest.fixture(scope="module")
def stem(tmp_path_factory, tiny_card, make_tiny_translator):
    path = tmp_path_factory.mktemp("model") / "tiny_first_hour"
    make_tiny_translator(tiny_card("tiny_first_hour")).save(path)
    return path


@pytest.fixture(scope="module")
def galaxy(tmp_path_factory):
    """NUV and Ks files of one mock galaxy, the NUV file with a non-ASCII name: ``{band: path}``."""
    folder = tmp_path_factory.mktemp("galaxy")
    stack = make_galaxy(5, bands=list(INPUTS), size=48)
    files = {"NUV": folder / f"{ODD_NAME}_nuv.fits", "Ks": folder / "g5_k.fits"}
    for band, path in files.items():
        stack[band].write(path)
    return files


@pytest.fixture(scope="module")
def nan_galaxy(galaxy, tmp_path_factory):
    """The same galaxy with a few NaN pixels in NUV (one warning when read)."""
    folder = tmp_path_factory.mktemp("nan")
    with fits.open(galaxy["NUV"]) as hdul:
        hdul[0].data[:3, :3] = np.nan
        hdul.writeto(folder / "nan_nuv.fits")
    return {"NUV": folder / "nan_nuv.fits", "Ks": galaxy["Ks"]}


def _args(stem, files, out, *extra):
    args = ["predict", "--model", str(stem), "-o", str(out), *extra]
    for band, path in files.items():
        args += ["--input", f"{band}={path}"]
    return args


def _cli(*args, cwd=None, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "bandsynth.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=timeout)


def _manifest(path, rows):
    from astropy.table import Table

    Table(rows=[[str(v) for v in row] for row in rows], names=("id", "NUV", "K")).write(path, format="ascii.ecsv")
    return path


# ---------------------------------------------------------------------- 1. non-ASCII file names
def test_item01_non_ascii_input_name_is_written_exactly_in_the_provenance(stem, galaxy, tmp_path, capsys):
    out = tmp_path / f"{ODD_NAME}_r.fits"
    assert main(_args(stem, galaxy, out, "--quiet")) == 0
    with fits.open(out) as hdul:
        header = hdul[0].header
        assert header["BSINF1"] == "NGC 4486 \\u03a9mega-e_nuv.fits"  # readable ASCII
        assert json.loads(header["BSPROV"])["inputs"][0]["file"].endswith(f"{ODD_NAME}_nuv.fits")
    assert SyntheticBand.read(out).provenance["inputs"][0]["file"] == str(galaxy["NUV"])


def test_item01_synthetic_band_write_accepts_non_ascii_provenance(tmp_path):
    sb = SyntheticBand(np.ones((8, 8), dtype=np.float32), unit="nanomaggy", band="r",
                       provenance={"model": "mödel-Ω", "inputs": [{"band": "NUV", "file": f"/data/{ODD_NAME}.fits",
                                                                    "checksum": "0" * 64}]})
    sb.write(tmp_path / "x.fits")
    back = SyntheticBand.read(tmp_path / "x.fits")
    assert back.provenance["inputs"][0]["file"] == f"/data/{ODD_NAME}.fits"
    assert back.provenance["model"] == "mödel-Ω"
    header = fits.getheader(tmp_path / "x.fits")
    assert header["BSMODEL"] == "model-\\u03a9" and header["BSINF1"].isascii()


def test_item01_predict_batch_writes_galaxies_with_non_ascii_names(stem, galaxy, tmp_path):
    manifest = _manifest(tmp_path / "m.ecsv", [(ODD_NAME, galaxy["NUV"], galaxy["Ks"])])
    out = tmp_path / "out"
    assert main(["predict-batch", "--model", str(stem), "--manifest", str(manifest), "-o", str(out),
                 "--workers", "1", "--quiet"]) == 0
    written = out / f"{ODD_NAME}_r_synth.fits"
    assert SyntheticBand.read(written).provenance["inputs"][0]["file"] == str(galaxy["NUV"])


# ---------------------------------------------------------------------- 2. output folder checked first
def test_item02_missing_output_folder_is_refused_before_any_work(stem, galaxy, tmp_path, caplog, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("the model was loaded although the output cannot be written")

    monkeypatch.setattr(Translator, "load", no_work)
    out = tmp_path / "missing" / "g_r.fits"
    assert main(_args(stem, galaxy, out)) == 2
    assert f"cannot write {out}: folder {out.parent} does not exist" in caplog.text
    assert ".tmp" not in caplog.text


def test_item02_read_only_output_folder_names_the_requested_file(stem, galaxy, tmp_path, caplog, monkeypatch):
    import bandsynth.cli._common as common

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(common.tempfile, "mkstemp", read_only)
    out = tmp_path / "ro_out" / "ok0_r.fits"
    out.parent.mkdir()
    assert main(_args(stem, galaxy, out)) == 2
    assert f"cannot write {out}: folder {out.parent} is not writable (Permission denied)" in caplog.text
    caplog.clear()
    manifest = _manifest(tmp_path / "m.ecsv", [("g", galaxy["NUV"], galaxy["Ks"])])
    assert main(["predict-batch", "--model", str(stem), "--manifest", str(manifest), "-o", str(out.parent)]) == 2
    assert "is not writable (Permission denied)" in caplog.text and not list(out.parent.iterdir())


def test_item02_predict_many_checks_the_folder_before_starting_workers(stem, galaxy, tmp_path, monkeypatch):
    import bandsynth.batch as batch

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("bandsynth.batch.outputs.tempfile.mkstemp", read_only)
    monkeypatch.setattr("bandsynth.batch.run.run_local", lambda *a, **k: pytest.fail("workers started"))
    with pytest.raises(PermissionError, match=r"output folder .*ro cannot be written \(Permission denied\)"):
        batch.predict_many(str(stem), [("g", dict(galaxy))], out_dir=tmp_path / "ro", progress=False)


# ---------------------------------------------------------------------- 3. predict says what it did
def test_item03_predict_prints_the_output_path_and_quiet_prints_only_that(stem, galaxy, tmp_path):
    out = tmp_path / "g_r.fits"
    proc = _cli(*_args(stem, galaxy, out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(f"wrote {out}")
    assert "predicting r with model tiny_first_hour" in proc.stderr
    proc = _cli(*_args(stem, galaxy, out, "--overwrite", "--quiet"))
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.count("\n") == 1 and proc.stdout.startswith(f"wrote {out}")


def test_item03_quiet_help_says_what_it_switches_off():
    predict = build_parser()._subparsers._group_actions[0].choices["predict"]
    (quiet,) = [a for a in predict._actions if "--quiet" in a.option_strings]
    assert "no progress output" in quiet.help and "result line are still printed" in quiet.help


# ---------------------------------------------------------------------- 4. logging of the batch
def test_item04_quiet_batch_prints_one_summary_line(stem, galaxy, nan_galaxy, tmp_path):
    manifest = _manifest(tmp_path / "m.ecsv", [("a", galaxy["NUV"], galaxy["Ks"]),
                                               ("b", nan_galaxy["NUV"], nan_galaxy["Ks"]),
                                               ("c", tmp_path / "missing.fits", galaxy["Ks"])])
    proc = _cli("predict-batch", "--model", stem, "--manifest", manifest, "-o", tmp_path / "out", "--workers", "1",
                "--quiet")
    assert proc.returncode == 1  # galaxy c failed
    assert proc.stderr == ""
    (line,) = proc.stdout.splitlines()
    assert line.startswith("predict-batch: 2 predicted, 0 already done, 1 failed") and "report" in line


def test_item04_batch_warnings_appear_once_on_their_own_line(stem, galaxy, nan_galaxy, tmp_path):
    manifest = _manifest(tmp_path / "m.ecsv", [("a", galaxy["NUV"], galaxy["Ks"]),
                                               ("b", nan_galaxy["NUV"], nan_galaxy["Ks"])])
    proc = _cli("predict-batch", "--model", stem, "--manifest", manifest, "-o", tmp_path / "out", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "INFO" not in proc.stderr and "distributed" not in proc.stderr and "Traceback" not in proc.stderr
    lines = re.split(r"[\r\n]", proc.stderr)
    warned = [ln for ln in lines if "non-finite" in ln]
    assert len(warned) == 1 and warned[0].startswith("WARNING: galaxy b: band 'NUV'")
    # ... and in the report, beside the galaxy they concern
    from astropy.table import Table

    report = Table.read(tmp_path / "out" / "predict_batch_report_r.ecsv", format="ascii.ecsv")
    by_galaxy = {row["galaxy"]: str(row["warnings"]) for row in report}
    assert "band 'NUV'" in by_galaxy["b"] and "non-finite" in by_galaxy["b"]
    # A successful batch ends with its summary on stdout.
    assert proc.stdout.splitlines()[-1].startswith("predict-batch: 2 predicted, 0 already done, 0 failed")


def test_item04_single_predict_warns_once_and_not_as_the_batch(stem, nan_galaxy, tmp_path):
    proc = _cli("-v", *_args(stem, nan_galaxy, tmp_path / "o.fits"))
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in re.split(r"[\r\n]", proc.stderr) if "non-finite" in ln]
    assert len(lines) == 1 and lines[0].startswith("WARNING py.warnings: band 'NUV'")
    assert "bandsynth.batch" not in proc.stderr


def test_item04_dask_shutdown_errors_are_not_the_batch_s(monkeypatch):
    from distributed.comm.core import CommClosedError

    from bandsynth.batch.run import quiet_close

    class Closing:
        closed = False

        def close(self):
            self.closed = True
            raise CommClosedError("in <TCP (closed)  local=tcp://127.0.0.1:1>: Stream is closed")

    class Broken:
        def close(self):
            raise ValueError("a real bug")

    import logging

    before = logging.getLogger("distributed").level
    closing = Closing()
    quiet_close(closing)  # a torn-down connection while closing is not the batch's error
    assert closing.closed and logging.getLogger("distributed").level == before  # log levels restored
    with pytest.raises(ValueError, match="a real bug"):  # anything else still surfaces
        quiet_close(Broken())


# ---------------------------------------------------------------------- 5. hints in the user's language
def test_item05_hints_name_options_not_python(stem, galaxy, tmp_path, caplog):
    header = fits.getheader(galaxy["Ks"])
    w = WCS(header)
    w.wcs.crval = w.wcs.crval + [2 / 3600, 0]
    hdr = w.to_header()
    hdr["BUNIT"] = header["BUNIT"]
    shifted = tmp_path / "shifted_k.fits"
    fits.PrimaryHDU(fits.getdata(galaxy["Ks"]), hdr).writeto(shifted)
    assert main(_args(stem, {"NUV": galaxy["NUV"], "Ks": shifted}, tmp_path / "o.fits", "--quiet")) == 1
    assert "--reproject-to NUV" in caplog.text
    assert "BandStack" not in caplog.text and "reproject_to=" not in caplog.text


@pytest.mark.parametrize(
    ("python", "command_line"),
    [
        ("put them on one pixel grid first, e.g. BandStack.from_fits(..., reproject_to='NUV'), "
         "BandStack.from_arrays(..., reproject_to='NUV') or BandStack.reproject",
         "put them on one pixel grid first, e.g. --reproject-to NUV"),
        ("it is kept: pass --overwrite (overwrite=True) to predict it again", "it is kept: pass --overwrite to predict it again"),
        ("x exists; pass overwrite=True to replace it", "x exists; pass --overwrite to replace it"),
        ("(reproject the inputs onto 0.262 arcsec/pixel: reproject_to=0.262 * u.arcsec)",
         "(reproject the inputs onto 0.262 arcsec/pixel: --reproject-to 0.262)"),
        ("no BUNIT keyword and no unit= was given; pass unit= (e.g. unit='nanomaggy')",
         "no BUNIT keyword and no --unit was given; pass --unit (e.g. --unit nanomaggy)"),
        ("made without test-time augmentation (--tta, tta=True)", "made without test-time augmentation (--tta)"),
        ("scheduler='garbage': missing port number", "--scheduler garbage: missing port number"),
        # advice for arrays, which the command line does not read
        ("(in a file, its header's CTYPEi, CRVALi, CRPIXi and CDELTi or CDi_j; for an array, wcs=)",
         "(in a file, its header's CTYPEi, CRVALi, CRPIXi and CDELTi or CDi_j)"),
        ("give the inputs their WCS (in their files' headers, or wcs= for arrays)",
         "give the inputs their WCS (in their files' headers)"),
        # a batch's report names both interfaces' options; its log names the command line's once
        ("bands differ: e.g. --reproject-to NUV (reproject_to='NUV')", "bands differ: e.g. --reproject-to NUV"),
        ("(reproject the inputs onto 0.262 arcsec/pixel: --reproject-to 0.262 (reproject_to=0.262 * u.arcsec))",
         "(reproject the inputs onto 0.262 arcsec/pixel: --reproject-to 0.262)"),
    ],
)
def test_item05_cli_text(python, command_line):
    assert cli_text(ValueError(python)) == command_line


# ---------------------------------------------------------------------- 6. bandsynth models NAME
def test_item06_models_shows_a_card_and_the_table_shows_pixel_scale_and_psf(capsys):
    assert main(["models", "nuv_k_to_r_paper"]) == 0
    card = capsys.readouterr().out
    assert "pixel scale   0.262 arcsec/pixel" in card and "PSF FWHM" in card and "recipe" in card
    # the typical total-flux error beside the signed median (which errors of both signs cancel)
    measured = get_card("nuv_k_to_r_paper").metrics["test"]["model"]
    assert (f"|dmag| {measured['dmag_total_abs']:.3f} mag (median; signed median {measured['dmag_total']:+.3f})"
            in card)
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    header = table.splitlines()[0]
    assert "pixel" in header and "PSF FWHM" in header
    assert re.search(r'nuv_k_to_r_paper .* 0\.262" +0\.39"', table)
    # Which models are for observed images, and which are the paper's reproductions on mock images:
    assert re.search(r"^nuv_k_to_r +\d+ +NUV\+Ks +r +survey layer \(galex_sdss_2mass\)", table, re.MULTILINE)
    assert re.search(r"^nuv_k_to_r_paper +\d+ +NUV\+Ks +r +ideal mocks", table, re.MULTILINE)
    assert main(["models", "nuv_k_to_r_paper", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "nuv_k_to_r_paper"
    assert main(["models", "no_such_model"]) == 2


# ---------------------------------------------------------------------- 7. one name per option, exit codes
def _subcommands():
    return build_parser()._subparsers._group_actions[0].choices


def test_item07_every_option_has_help_and_output_options_share_one_name():
    import argparse

    for name, parser in _subcommands().items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            assert action.help, f"bandsynth {name} {action.option_strings or action.dest}: no help text"
        options = {s for a in parser._actions for s in a.option_strings if a.help != argparse.SUPPRESS}
        assert "--no-progress" not in options and "--out" not in options or name == "train"
        if name in ("predict", "predict-batch", "demo", "mock", "evaluate"):
            assert {"-o", "--output", "--overwrite", "--quiet"} <= options, name
        if name != "models":
            assert "--quiet" in options, name


def test_item07_old_option_names_still_work():
    args = build_parser().parse_args(["mock", "--n", "2", "--out", "x", "--no-progress"])
    assert args.output == "x" and args.quiet
    args = build_parser().parse_args(["predict-batch", "--model", "m", "--manifest", "m", "--out", "o"])
    assert args.output == "o"


def test_item07_exit_codes(stem, galaxy, tmp_path, capsys):
    out = tmp_path / "o.fits"
    # 2: a missing input file, an unknown band, an existing output: before any work
    assert main(_args(stem, {"NUV": tmp_path / "nope.fits", "Ks": galaxy["Ks"]}, out)) == 2
    assert main(_args(stem, {"XYZ": galaxy["NUV"], "Ks": galaxy["Ks"]}, out)) == 2
    out.write_bytes(b"")
    assert main(_args(stem, galaxy, out)) == 2
    assert main(["mock", "--n", "1", "-o", str(tmp_path), "--quiet"]) == 2  # exists
    assert main(["demo", "-o", str(tmp_path / "d"), "--model", "no_such_model"]) == 2
    # 1: an input that exists but cannot be used
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"SIMPLE  = nonsense")
    assert main(_args(stem, {"NUV": bad, "Ks": galaxy["Ks"]}, tmp_path / "o2.fits", "--quiet")) == 1
    # 0: done
    assert main(_args(stem, galaxy, tmp_path / "o3.fits", "--quiet")) == 0


# ---------------------------------------------------------------------- 8. bandsynth demo
def test_item08_demo_refuses_tampered_weights_in_one_line(tmp_path, capsys):
    weights, card = model_paths("nuv_k_to_r_paper")
    bad = tmp_path / "tampered"
    shutil.copy(card, bad.with_suffix(".json"))
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    bad.with_suffix(".safetensors").write_bytes(bytes(raw))
    assert main(["demo", "--model", str(bad), "-o", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "refusing to load it" in err


def test_item08_demo_second_run_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    import bandsynth.demo

    (tmp_path / "mock7_r_synth.fits").write_bytes(b"")
    monkeypatch.setattr(bandsynth.demo, "run_demo", lambda **kw: pytest.fail("the demo ran again"))
    assert main(["demo", "-o", str(tmp_path)]) == 2
    assert "exists from an earlier run; pass --overwrite" in capsys.readouterr().err


def test_item08_demo_does_not_write_into_the_current_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--quiet"]) == 0
    assert list(tmp_path.iterdir()) == []
    written = [Path(line.split(" ", 1)[1]) for line in capsys.readouterr().out.splitlines()
               if line.startswith("wrote ")]
    assert len(written) == 2 and all(p.exists() for p in written)
    shutil.rmtree(written[0].parent)


# ---------------------------------------------------------------------- 9. the README runs
def test_item09_readme_use_it_snippet_runs(tmp_path, monkeypatch):
    from bandsynth.models.zoo import get_card

    text = (ROOT / "README.rst").read_text()
    section = text[text.index("Use it\n------"):text.index("Status\n------")]
    start = section.index(".. code-block:: python\n") + len(".. code-block:: python\n")
    code = textwrap.dedent(section[start:section.index("\n\n", section.index("print(report)"))])
    # A galaxy as GALEX and 2MASS observe it, on the grid of the model for observed images; true r beside it.
    card = get_card("nuv_k_to_r")
    obs = observe_galaxy(3, "galex_sdss_2mass", bands=["NUV", "r", "Ks"], size=64, pixel_scale=card.pixel_scale,
                         r_mag=14.5)
    monkeypatch.chdir(tmp_path)
    # the observed r on its own SDSS grid (0.396"): the snippet puts it on the prediction's
    for stack, band, name in ((obs.observed, "NUV", "g123_nuv.fits"), (obs.observed, "Ks", "g123_k.fits"),
                              (obs.native["r"], "r", "g123_r.fits")):
        stack[band].write(name)
    namespace = {}
    exec(compile(code, "README.rst", "exec"), namespace)
    assert (tmp_path / "g123_r_synth.fits").exists()
    assert 0 < namespace["report"].ssim <= 1


# ---------------------------------------------------------------------- 10. figures
def test_item10_colourbars_have_units_and_sigma_ticks_do_not_overlap():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from bandsynth.plotting import plot_synthetic

    y, x = np.mgrid[:48, :48]
    img = np.exp(-np.hypot(x - 24, y - 24) / 4).astype(np.float32)
    sigma = 1e-3 + 0.5 * img ** 2  # a wide dynamic range: ticks bunched under the asinh stretch before
    sb = SyntheticBand(img, unit="nanomaggy", band="r", uncertainty=sigma)
    fig = plot_synthetic(sb, truth=img * 1.1)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert [ax.get_ylabel() for ax in bars] == [sb.unit.to_string()] * 2  # residual and sigma, titled above
    renderer = canvas.get_renderer()
    for ax in bars:
        boxes = [t.get_window_extent(renderer) for t in ax.get_yticklabels() if t.get_text()]
        assert len(boxes) >= 3
        for a, b in zip(boxes, boxes[1:]):
            assert not a.overlaps(b), ax.get_ylabel()


# ---------------------------------------------------------------------- 11. file format and model names
def test_item11_uncert_and_mask_carry_the_wcs(stem, galaxy, tmp_path):
    out = tmp_path / "o.fits"
    assert main(_args(stem, galaxy, out, "--quiet")) == 0
    with fits.open(out) as hdul:
        primary = WCS(hdul[0].header)
        for name in ("UNCERT", "MASK"):
            w = WCS(hdul[name].header)
            assert w.has_celestial and w.wcs.compare(primary.wcs, tolerance=1e-12), name


def test_item11_an_empty_image_is_called_empty():
    with pytest.raises(ValueError, match=r"band 'NUV': the image is empty \(0 x 0 pixels\)"):
        BandStack.from_arrays({"NUV": np.zeros((0, 0)), "Ks": np.zeros((0, 0))}, unit="nanomaggy")
    with pytest.raises(ValueError, match=r"empty image \(0 x 0 pixels\)"):
        SyntheticBand(np.zeros((0, 0), dtype=np.float32), unit="nanomaggy", band="r")


def test_item11_a_local_model_named_like_a_shipped_one_is_warned_about(stem, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for suffix in (".json", ".safetensors"):
        shutil.copy(stem.with_suffix(suffix), tmp_path / f"nuv_k_to_r_paper{suffix}")
    with pytest.warns(AstropyUserWarning, match=r"names the shipped model 'nuv_k_to_r_paper'.*'\./nuv_k_to_r_paper'"):
        weights, _ = model_paths("nuv_k_to_r_paper")
    assert weights.parent.name == "weights"  # the shipped one, as documented
    assert model_paths("./nuv_k_to_r_paper")[0] == Path("nuv_k_to_r_paper.safetensors")  # the local one, by path
    # A local model that shadows nothing loads by its bare name, and a folder holding one model by the folder.
    shutil.copy(stem.with_suffix(".json"), tmp_path / "mine.json")
    shutil.copy(stem.with_suffix(".safetensors"), tmp_path / "mine.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model_paths("mine")[1] == Path("mine.json")
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(stem.with_suffix(".json"), folder / "m.json")
    shutil.copy(stem.with_suffix(".safetensors"), folder / "m.safetensors")
    assert model_paths(folder)[1] == folder / "m.json"


# ---------------------------------------------------------------------- 12. feedback on large images
def test_item12_predict_shows_its_stages_with_the_image_size(stem, galaxy, tmp_path):
    proc = _cli(*_args(stem, galaxy, tmp_path / "o.fits"))
    assert proc.returncode == 0, proc.stderr
    for stage in ("predict: reading the inputs", "predict: running the network on 48 x 48 pixels",
                  "predict: writing o.fits", "(3/3)"):
        assert stage in proc.stderr


# ---------------------------------------------------------------------- the cli package
def test_building_the_parser_imports_no_torch():
    code = ("import sys; from bandsynth.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'distributed', 'matplotlib') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


def test_library_modules_parse_no_arguments():
    package = ROOT / "bandsynth"
    for path in package.rglob("*.py"):
        if path.parent.name == "cli":
            continue
        text = path.read_text(encoding="utf-8")
        assert "argparse" not in text and "def add_cli" not in text and "def _cli_" not in text, path


def test_console_script_entry_point():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'bandsynth = "bandsynth.cli:main"' in text


def test_command_line_page_lists_every_option_of_every_command():
    import argparse

    page = (ROOT / "docs" / "command_line.rst").read_text()
    assert "command_line" in (ROOT / "docs" / "index.rst").read_text()
    for name, parser in _subcommands().items():
        assert f"``{name}``" in page, name
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    assert f"``{option}" in page, f"{name} {option} is not on docs/command_line.rst"


def test_batch_attributes_failures_from_the_error_s_band_and_path():
    from bandsynth.batch.workers import attribute_error as _attribute

    files = {"NUV": "/d/g_nuv.fits", "Ks": "/d/g_k.fits"}

    class InputError(ValueError):
        def __init__(self, message, *, band=None, path=None):
            super().__init__(message)
            self.band, self.path = band, path

    # The attributes win over the message text, which may name another band.
    assert _attribute(InputError("band 'NUV' looks odd", band="K", path="/d/g_k.fits"), files) == ("Ks", "/d/g_k.fits")
    assert _attribute(InputError("no band in this text", band="Ks"), files) == ("Ks", "/d/g_k.fits")
    assert _attribute(InputError("no band in this text", path="/d/g_nuv.fits"), files) == ("NUV", "/d/g_nuv.fits")
    # Errors without the attributes: attributed from the message, as before.
    assert _attribute(ValueError("band 'NUV': FITS file missing"), files) == ("NUV", "/d/g_nuv.fits")
    assert _attribute(ValueError("something else"), files) == ("NUV,Ks", "/d/g_nuv.fits, /d/g_k.fits")


def test_item02_train_checks_its_output_before_training_and_may_create_the_folder(tmp_path, monkeypatch, caplog):
    class Reached(Exception):
        pass

    def fit(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(Translator, "fit", fit)
    # what train checks of the data before fitting: its image size and its validation images
    data = types.SimpleNamespace(shape=(128, 128), indices=lambda split: list(range(8)))
    monkeypatch.setattr("bandsynth.cli.train.mock_or_stored", lambda args, bands: data)
    base = ["train", "--inputs", "NUV", "K", "--output", "r", "--quiet"]
    # A folder that does not exist yet is fine (saving creates it): training starts.
    assert main([*base, "--out", str(tmp_path / "new" / "m")]) == 1
    assert "bandsynth train: Reached" in caplog.text
    (tmp_path / "m.json").write_text("{}")
    assert main([*base, "--out", str(tmp_path / "m")]) == 2
    assert f"output {tmp_path / 'm.json'} exists; pass --overwrite" in caplog.text
    assert main([*base[:-3], "--output", "nonsense_band", "--out", str(tmp_path / "x")]) == 2
