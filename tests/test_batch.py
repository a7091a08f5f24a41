"""bandsynth.batch: archive-scale prediction, resumability, bad inputs, security, Dask clusters."""

import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import psutil
import pytest
import torch
from astropy.io import fits
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS

from bandsynth import SyntheticBand, Translator
from bandsynth.batch import BatchReport, output_path, predict_many, read_manifest
from bandsynth.cli import main
from bandsynth.datasets import make_galaxy
from bandsynth.datasets.folder import scan_folder
from bandsynth.models.zoo import ModelCard, WeightsHashError, sha256_file

INPUTS, OUTPUT = ("NUV", "Ks"), "r"
SIZE = 64


def _write_galaxy(folder, galaxy, seed, *, size=SIZE, mode="ideal"):
    """Write ``galaxy``'s NUV and Ks images; returns ``{band: path}``."""
    stack = make_galaxy(seed, mode=mode, bands=list(INPUTS), size=size)
    files = {}
    for band in INPUTS:
        path = Path(folder) / f"{galaxy}_{band}.fits"
        stack[band].write(path, overwrite=True)
        files[band] = path
    return files


def _wcs(shape, *, scale=0.262, crval=(150.0, 2.0)):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = list(crval)
    w.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    w.wcs.cdelt = [-scale / 3600, scale / 3600]
    return w


def _blob(shape, *, width=0.15, dtype=np.float32):
    """A smooth positive galaxy-like image, built from outer products (cheap for huge shapes)."""
    y = np.exp(-0.5 * (np.linspace(-1, 1, shape[0], dtype=dtype) / width) ** 2)
    x = np.exp(-0.5 * (np.linspace(-1, 1, shape[1], dtype=dtype) / width) ** 2)
    return (np.outer(y, x) + dtype(1e-3)).astype(dtype)


def _write_image(path, data, *, wcs=None):
    header = (wcs or _wcs(data.shape)).to_header()
    header["BUNIT"] = "nanomaggy"
    fits.PrimaryHDU(data, header).writeto(path, overwrite=True)
    return path


def _valid_output(path, stem):
    """Assert ``path`` is a complete output of the model at ``stem``; returns its SyntheticBand."""
    with fits.open(path) as hdul:
        assert all(h.verify_checksum() == 1 and h.verify_datasum() == 1 for h in hdul)
        header = hdul[0].header
        assert header["BSMODEL"] == "tiny_test"
        assert header["BSSHA256"] == ModelCard.read(Path(stem).with_suffix(".json")).sha256
        assert header["BSBAND"] == OUTPUT
    return SyntheticBand.read(path)


def _manifest(folder, rows, name="manifest.ecsv", **extra):
    table = Table(rows=rows, names=("id", "NUV", "K", *extra), dtype=[str] * (3 + len(extra)))
    path = Path(folder) / name
    table.write(path, format="ascii.ecsv", overwrite=True)
    return path


# ---------------------------------------------------------------------- a real Dask cluster
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1; yields the address.

    Most tests send their batches here: a local run starts its own processes,
    which takes seconds; two tests cover that default.
    """
    tmp_path = tmp_path_factory.mktemp("cluster")
    dask_cli = shutil.which("dask", path=os.path.dirname(sys.executable)) or shutil.which("dask")
    if dask_cli is None:
        pytest.skip("the dask command is not installed")
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = []

    def start(args, log_name):
        log = open(tmp_path / log_name, "wb")
        procs.append((subprocess.Popen([dask_cli, *args], env=env, stdout=log, stderr=subprocess.STDOUT), log))

    try:
        start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
               "--scheduler-file", str(scheduler_file)], "scheduler.log")
        for i in range(2):
            start(["worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1", "--no-nanny",
                   "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(tmp_path / f"w{i}")],
                  f"worker{i}.log")
        deadline, address = time.monotonic() + 60, None
        while address is None and time.monotonic() < deadline:
            try:  # the scheduler creates the file before it writes it: read it once it parses
                address = json.loads(scheduler_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.05)
        if address is None:
            pytest.fail(f"the dask scheduler wrote no address to {scheduler_file} in 60 s")
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        # Workers first: a worker whose scheduler is gone waits for it to come back.
        for proc, log in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


# ---------------------------------------------------------------------- basics
def test_local_workers_quiet_their_dask_logs_before_the_cluster_closes(tiny_model, tmp_path, monkeypatch):
    # A worker's heartbeat that meets the closing scheduler logs an ERROR from the worker's
    # own process; a quiet batch must not print it, so the workers are quieted first.
    import logging

    import bandsynth.batch.run as run

    stem, _ = tiny_model
    files = _write_galaxy(tmp_path, "g0", 0)
    seen = []
    quiet_close = run.quiet_close

    def recording_close(thing):
        if hasattr(thing, "run"):  # the Client: ask each worker process before it closes
            seen.extend(thing.run(lambda: logging.getLogger("distributed.worker").isEnabledFor(logging.ERROR))
                        .values())
        quiet_close(thing)

    monkeypatch.setattr(run, "quiet_close", recording_close)
    report = predict_many(stem, _manifest(tmp_path, [("g0", files["NUV"].name, files["Ks"].name)]),
                          out_dir=tmp_path / "out", workers=1, progress=False)
    assert report.ok and seen == [False]
    assert logging.getLogger("distributed").isEnabledFor(logging.ERROR)  # this process's levels restored


def test_manifest_batch_writes_outputs_and_a_rerun_keeps_them(tiny_model, tmp_path, cluster):
    stem, translator = tiny_model
    data = tmp_path / "data"
    data.mkdir()
    rows = []
    for i in range(3):
        files = _write_galaxy(data, f"g{i}", i)
        rows.append((f"g{i}", files["NUV"].name, files["Ks"].name))  # relative to the manifest
    manifest = _manifest(data, rows)
    out = tmp_path / "out"

    # The default: local worker processes.
    report = predict_many(stem, manifest, out_dir=out, workers=1, progress=False, report=tmp_path / "r.ecsv")
    assert report.ok and report.counts["done"] == 3 and not report.failed
    for i in range(3):
        path = out / f"g{i}_r_synth.fits"
        sb = _valid_output(path, stem)
        inputs = {rec["band"]: rec for rec in sb.provenance["inputs"]}
        assert inputs["NUV"]["checksum"] == sha256_file(data / f"g{i}_NUV.fits")
        assert sb.wcs.wcs.compare(make_galaxy(i, bands=list(INPUTS), size=SIZE).wcs.wcs, tolerance=1e-10)
    written = Table.read(tmp_path / "r.ecsv", format="ascii.ecsv")
    assert list(written.colnames) == ["galaxy", "status", "band", "file", "output", "error", "warnings", "seconds"]
    assert sorted(written["galaxy"]) == ["g0", "g1", "g2"]

    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*.fits")}
    again = predict_many(stem, manifest, out_dir=out, scheduler=cluster, progress=False)
    assert again.counts == {"done": 0, "exists": 3, "failed": 0, "ignored": 0}
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.fits")} == mtimes
    # outputs made without test-time augmentation are not those of a run with it: kept, and said so
    with_tta = predict_many(stem, manifest, out_dir=out, tta=True, scheduler=cluster, progress=False)
    assert with_tta.counts["failed"] == 3 and {p: p.stat().st_mtime_ns for p in out.glob("*.fits")} == mtimes
    assert all("was made without test-time augmentation (--tta, tta=True) and this run is with it; it is kept" in e
               for e in with_tta.failed["error"])

    # nor are those of other predict options (Monte Carlo draws, their seed, no uncertainty)
    for kw, words in (({"n_samples": 0}, "n_samples=8 and this run asks for n_samples=0"),
                      ({"seed": 3}, "seed=0 and this run asks for seed=3"),
                      ({"uncertainty": False}, "uncertainty=True and this run asks for uncertainty=False")):
        other = predict_many(stem, manifest, out_dir=out, predict_kw=kw, scheduler=cluster, progress=False)
        assert other.counts["failed"] == 3 and all(f"was made with {words}" in e for e in other.failed["error"])
    # the defaults, a tiling, and restoring the noise of inputs that none of these needed: they change nothing
    assert predict_many(stem, manifest, out_dir=out, predict_kw={"n_samples": 8, "tile": 64, "restore_noise": False},
                        scheduler=cluster, progress=False).counts["exists"] == 3
    redo = predict_many(translator, manifest, out_dir=out, overwrite=True, scheduler=cluster, progress=False)
    assert redo.counts["done"] == 3
    assert all(p.stat().st_mtime_ns != m for p, m in mtimes.items())


def test_outputs_made_with_other_noise_restoration_are_not_those_of_this_run():
    # Where an input was resampled by a sub-pixel shift of its grid, whether its noise was restored (and the seed of
    # the noise drawn) changes the prediction; elsewhere nothing.  A run's restore_noise comes resolved for its model.
    from bandsynth.batch.outputs import _options_problem

    made = {"uncertainty": True, "tta": False, "n_samples": 8, "seed": 0, "restore_noise": "auto"}
    shifted = [{"band": "g", "interpolation_offset": {"fractions": [0.5, 0.25]}}]
    prov = {"computation": {"options": made, "restored_noise": [{"band": "g", "offset": [0.5, 0.25], "seed": 0}]},
            "reprojection": shifted}
    asked = {**made, "restore_noise": True}  # "auto" for a model that restores
    assert _options_problem(prov, asked) is None
    assert "restore_noise=True and this run asks for restore_noise=False" in _options_problem(
        prov, {**asked, "restore_noise": False})
    uncertain = {**made, "uncertainty": False}
    assert "seed=0 and this run asks for seed=2" in _options_problem(  # the restored noise's seed, without draws
        {**prov, "computation": {**prov["computation"], "options": uncertain}}, {**asked, "uncertainty": False,
                                                                                 "seed": 2})
    unrestored = {"computation": {"options": {**made, "restore_noise": False}}, "reprojection": shifted}
    assert "restore_noise=False and this run asks for restore_noise=True" in _options_problem(unrestored, asked)
    assert _options_problem(unrestored, {**asked, "restore_noise": False}) is None
    aligned = {"computation": {"options": {**made, "restore_noise": False}},
               "reprojection": [{"band": "g", "interpolation_offset": {"fractions": [0.0, 0.0]}}]}
    assert _options_problem(aligned, asked) is None
    before = {"computation": {"options": {k: v for k, v in made.items() if k != "restore_noise"}},
              "reprojection": shifted}  # made before the option: what it did is unknown
    assert _options_problem(before, asked) is None


def test_an_interrupted_batch_writes_what_it_has_done(tiny_model, tmp_path, cluster, monkeypatch):
    # Ctrl-C left no report: the galaxies written were in no table, the others not named.
    from bandsynth.batch import run

    stem, _ = tiny_model
    items = [(f"g{i}", _write_galaxy(tmp_path, f"g{i}", i)) for i in range(3)]
    logged = []

    def interrupt(row):  # the user presses Ctrl-C once the first galaxy is done
        logged.append(row)
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "_log_row", interrupt)
    with pytest.raises(KeyboardInterrupt):
        predict_many(stem, items, out_dir=tmp_path / "o", scheduler=cluster, progress=False,
                     report=tmp_path / "r.ecsv")
    report = Table.read(tmp_path / "r.ecsv", format="ascii.ecsv")
    assert sorted(report["galaxy"]) == ["g0", "g1", "g2"] and list(report["status"]).count("done") == 1
    assert list(report["status"]).count("failed") == 2
    for row in report[report["status"] == "failed"]:  # a galaxy written while the run stopped is not "not predicted"
        said_written = row["error"].startswith("the run was interrupted before this galaxy was reported; its output ")
        assert said_written or row["error"].startswith("not finished: the run was interrupted"), row["error"]
        assert Path(row["output"]).exists() or not said_written  # (a worker may still write one after the report)


def test_items_as_pairs_table_and_folder_scan(tiny_model, tmp_path, cluster):
    stem, _ = tiny_model
    files = {g: _write_galaxy(tmp_path, g, s) for g, s in (("a", 1), ("b", 2))}
    pairs = [(g, {"galex_nuv": f["NUV"], "K": f["Ks"]}) for g, f in files.items()]
    assert predict_many(stem, pairs, out_dir=tmp_path / "o1", scheduler=cluster, progress=False).counts["done"] == 2

    table = Table({"ID": ["a"], "nuv": ["a_NUV.fits"], "2mass_ks": ["a_Ks.fits"], "notes": ["kept aside"]})
    report = predict_many(stem, table, out_dir=tmp_path / "o2", base_dir=tmp_path, scheduler=cluster, progress=False)
    assert report.counts["done"] == 1 and (tmp_path / "o2" / "a_r_synth.fits").exists()

    (tmp_path / "README.txt").write_text("not a galaxy")
    _write_image(tmp_path / "c_NUV.fits", _blob((SIZE, SIZE)))  # c has no Ks image
    scan = scan_folder(tmp_path, "{id}_{band}.fits", bands=INPUTS, check=False)
    report = predict_many(stem, scan, out_dir=tmp_path / "o3", scheduler=cluster, progress=False)
    table = report.table
    assert sorted(report.succeeded["galaxy"]) == ["a", "b"]
    assert list(report.failed["galaxy"]) == ["c"] and "no usable file for band Ks" in report.failed["error"][0]
    assert "README.txt" in table[table["status"] == "ignored"]["file"][0]


def test_one_multi_extension_file_per_galaxy(tiny_model, tmp_path, cluster):
    # "{id}.fits": each galaxy's bands in one file, each band read from its own HDU; a file lacking a band fails
    # alone, named in the report.
    stem, _ = tiny_model
    (tmp_path / "singles").mkdir()
    singles = {g: _write_galaxy(tmp_path / "singles", g, s) for g, s in (("a", 1), ("b", 2))}
    for g, files in singles.items():
        hdus = [fits.PrimaryHDU()]
        for band in (("Ks", "NUV") if g == "a" else ("Ks",)):  # Ks first: the first image is never taken for NUV
            with fits.open(files[band]) as hdul:
                hdus.append(fits.ImageHDU(hdul[0].data, hdul[0].header, name=band))
        fits.HDUList(hdus).writeto(tmp_path / f"{g}.fits")
    raw = (tmp_path / "a.fits").read_bytes()
    (tmp_path / "t.fits").write_bytes(raw[: len(raw) * 2 // 3])  # cut short: a galaxy that failed, not an ignored file
    scan = scan_folder(tmp_path, "{id}.fits", bands=INPUTS, check=False)
    report = predict_many(stem, scan, out_dir=tmp_path / "o", scheduler=cluster, progress=False)
    assert list(report.succeeded["galaxy"]) == ["a"] and list(report.failed["galaxy"]) == ["b", "t"]
    assert "holds the images of another band (HDU KS (Ks)), none of them NUV" in report.failed["error"][0]
    checked = predict_many(stem, scan_folder(tmp_path, "{id}.fits", bands=INPUTS), out_dir=tmp_path / "o",
                           scheduler=cluster, progress=False)
    assert "t" in list(checked.failed["galaxy"]) and "truncated" in checked.failed["error"][-1]
    reference = predict_many(stem, [("a", singles["a"])], out_dir=tmp_path / "r", scheduler=cluster, progress=False)
    assert reference.ok
    np.testing.assert_array_equal(fits.getdata(tmp_path / "o" / "a_r_synth.fits"),
                                  fits.getdata(tmp_path / "r" / "a_r_synth.fits"))
    # the galaxy's one file also as {"file": path}, the manifest column's name
    named = predict_many(stem, [("a", {"file": tmp_path / "a.fits"})], out_dir=tmp_path / "f", scheduler=cluster,
                         progress=False)
    assert named.ok
    np.testing.assert_array_equal(fits.getdata(tmp_path / "f" / "a_r_synth.fits"),
                                  fits.getdata(tmp_path / "r" / "a_r_synth.fits"))
    lacking = predict_many(stem, [("b", {"file": tmp_path / "b.fits"})], out_dir=tmp_path / "f", scheduler=cluster,
                           progress=False)  # the band it lacks is in the report's band column, not only its text
    assert list(lacking.failed["band"]) == ["NUV"] and "(missing: NUV)" in lacking.failed["error"][0]


def test_manifest_names_one_hdu_of_a_file_as_file_ext(tiny_model, tmp_path, cluster):
    # FILE[EXT] in a band's column reads that HDU (by EXTNAME or number), as `bandsynth predict --input` does; the
    # HDU goes into the output and a rerun naming another HDU of the same file does not keep the old output.
    stem, _ = tiny_model
    files = _write_galaxy(tmp_path, "a", 1)
    both = tmp_path / "a_gr.fits"  # the NUV and Ks images under other bands' names: no HDU names NUV or Ks
    hdus = [fits.PrimaryHDU()]
    for band, name in (("NUV", "g"), ("Ks", "r")):
        with fits.open(files[band]) as hdul:
            hdus.append(fits.ImageHDU(hdul[0].data, hdul[0].header, name=name))
    fits.HDUList(hdus).writeto(both)
    manifest = _manifest(tmp_path, [("a", "a_gr.fits[g]", "a_gr.fits[2]"), ("b", "a_gr.fits", "a_gr.fits[r]")])
    report = predict_many(stem, manifest, out_dir=tmp_path / "o", scheduler=cluster, progress=False)
    assert list(report.succeeded["galaxy"]) == ["a"] and list(report.failed["galaxy"]) == ["b"]
    failed = report.failed[0]
    assert (failed["band"], failed["file"]) == ("NUV", str(both))
    assert f"none of them NUV; the file holds no NUV image (if an HDU holds it under another band's name, name that " \
        f"HDU: give its file as '{both}[EXTNAME]')" in failed["error"]
    assert "hdu=" not in failed["error"] and "BandStack" not in failed["error"]
    reference = predict_many(stem, [("a", files)], out_dir=tmp_path / "r", scheduler=cluster, progress=False)
    assert reference.ok
    out = tmp_path / "o" / "a_r_synth.fits"
    np.testing.assert_array_equal(fits.getdata(out), fits.getdata(tmp_path / "r" / "a_r_synth.fits"))
    header = fits.getheader(out)
    assert (header["BSINF1"], header["BSINH1"], header["BSINH2"]) == ("a_gr.fits", "G", "R")
    assert predict_many(stem, manifest, out_dir=tmp_path / "o", scheduler=cluster, progress=False).counts["exists"] == 1
    moved = _manifest(tmp_path, [("a", "a_gr.fits[r]", "a_gr.fits[r]")], name="moved.ecsv")  # Ks: [2] is R
    again = predict_many(stem, moved, out_dir=tmp_path / "o", scheduler=cluster, progress=False)
    assert "exists but was made from other HDUs of its input files (band(s) NUV)" in again.failed["error"][0]
    # An HDU named then and none now: the reader takes the file's first image (SCI), not the ALT named before.
    with fits.open(files["NUV"]) as hdul:
        two = [fits.PrimaryHDU(), fits.ImageHDU(hdul[0].data, hdul[0].header, name="SCI"),
               fits.ImageHDU(2 * hdul[0].data, hdul[0].header, name="ALT")]
    fits.HDUList(two).writeto(tmp_path / "two.fits")
    ks = files["Ks"].name
    named = _manifest(tmp_path, [("c", "two.fits[ALT]", ks)], name="named.ecsv")
    assert predict_many(stem, named, out_dir=tmp_path / "o", scheduler=cluster, progress=False).ok
    unnamed = predict_many(stem, _manifest(tmp_path, [("c", "two.fits", ks)], name="unnamed.ecsv"),
                           out_dir=tmp_path / "o", scheduler=cluster, progress=False)
    assert (f"was made from the HDU named for band(s) NUV ({tmp_path / 'two.fits'}[ALT]), and this run names none"
            in unnamed.failed["error"][0])
    assert predict_many(stem, named, out_dir=tmp_path / "o", scheduler=cluster, progress=False).counts["exists"] == 1


def test_reproject_to_rescues_galaxies_whose_bands_are_on_different_grids(tiny_model, tmp_path, cluster):
    stem, _ = tiny_model
    files = _write_galaxy(tmp_path, "g", 5)
    w = WCS(fits.getheader(files["Ks"]))
    w.wcs.crval = w.wcs.crval + [1 / 3600, 0]
    _write_image(files["Ks"], fits.getdata(files["Ks"]), wcs=w)
    report = predict_many(stem, [("g", files)], out_dir=tmp_path / "a", scheduler=cluster, progress=False)
    assert "not on the pixel grid" in report.failed["error"][0]
    report = predict_many(stem, [("g", files)], out_dir=tmp_path / "b", reproject_to="NUV", scheduler=cluster,
                          progress=False)
    assert report.ok
    sb = _valid_output(tmp_path / "b" / "g_r_synth.fits", stem)
    assert sb.wcs.wcs.compare(WCS(fits.getheader(files["NUV"])).wcs, tolerance=1e-10)
    assert [(r["band"], r["requested"]) for r in sb.provenance["reprojection"]] == [("Ks", "NUV")]
    # A rerun onto another grid keeps no output of the first, and says so.
    for target, words in (("Ks", "--reproject-to Ks (reproject_to='Ks')"),
                          (0.3 * u.arcsec, "--reproject-to 0.3 (reproject_to=0.3 * u.arcsec)")):
        again = predict_many(stem, [("g", files)], out_dir=tmp_path / "b", reproject_to=target, scheduler=cluster,
                             progress=False)
        assert again.counts["failed"] == 1, again.failed
        assert (f"was made on the grid of --reproject-to NUV (reproject_to='NUV') and this run puts the inputs on "
                f"the grid of {words}") in again.failed["error"][0]
    # On the grid asked for, the same galaxy at its own pixel scale is the same output.
    same = predict_many(stem, [("g", files)], out_dir=tmp_path / "b", reproject_to="NUV", scheduler=cluster,
                        progress=False)
    assert same.counts["exists"] == 1


def test_read_manifest_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="no 'id' column"):
        read_manifest(Table({"NUV": ["a"], "K": ["b"]}), bands=INPUTS)
    with pytest.raises(ValueError, match=r"no column for band\(s\) Ks .*the model needs NUV, Ks"):
        read_manifest(Table({"id": ["g"], "NUV": ["a"]}), bands=INPUTS)
    with pytest.raises(ValueError, match="columns 'K' and 'Ks' both name band Ks"):
        read_manifest(Table({"id": ["g"], "NUV": ["a"], "K": ["b"], "Ks": ["c"]}), bands=INPUTS)
    with pytest.raises(FileNotFoundError, match="manifest .*nope.ecsv.* not found"):
        read_manifest(tmp_path / "nope.ecsv", bands=INPUTS)
    (tmp_path / "junk.ecsv").write_text("# %ECSV 1.0\n# ---\n# garbage: [\nid\n")
    with pytest.raises(ValueError, match="cannot be read as a table"):
        read_manifest(tmp_path / "junk.ecsv", bands=INPUTS)
    with pytest.raises(TypeError, match="manifest must be a path or an astropy Table"):
        read_manifest(42, bands=INPUTS)
    (tmp_path / "spaces.csv").write_text("id NUV K\ng1 a.fits b.fits\n")
    with pytest.raises(ValueError, match=r"has no 'id' column \(columns: 'id NUV K'\); a CSV file separates its "
                                         r"columns with commas$"):
        read_manifest(tmp_path / "spaces.csv", bands=INPUTS)
    (tmp_path / "text.fits").write_text("not a table\n")  # astropy's ~40-line table of formats followed
    with pytest.raises(ValueError, match=r"cannot be read as a table \([^\n]*\); expected a CSV, ECSV or FITS "
                                         r"table with an 'id' column and a column of file names per band$"):
        read_manifest(tmp_path / "text.fits", bands=INPUTS)
    # a band the model does not read is said so, as predict's --input of it (it was dropped without a word)
    with pytest.warns(AstropyUserWarning, match=r"manifest table: the model reads NUV, Ks only; column 'g' \(band g\) "
                                                r"not read"):
        items, _ = read_manifest(Table({"id": ["g1"], "NUV": ["a"], "K": ["b"], "g": ["c"]}), bands=INPUTS)
    assert [sorted(files) for _, files in items] == [["Ks", "NUV"]]


def test_options_are_validated_before_any_work(tiny_model, tmp_path):
    stem, _ = tiny_model
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        predict_many(stem, [], out_dir=tmp_path, workers=0)
    with pytest.raises(TypeError, match="predict_kw: .*unexpected keyword argument 'bogus'"):
        predict_many(stem, [], out_dir=tmp_path, predict_kw={"bogus": 1})
    # values too, named ("no" ran as True; a bad one failed every galaxy, one by one)
    with pytest.raises(TypeError, match="^tta must be True or False, got 'no'"):
        predict_many(stem, [], out_dir=tmp_path, tta="no")
    with pytest.raises(TypeError, match="^predict_kw: uncertainty must be True or False, got 'no'"):
        predict_many(stem, [], out_dir=tmp_path, predict_kw={"uncertainty": "no"})
    with pytest.raises(TypeError, match="^predict_kw: seed must be an integer, got 1.5"):
        predict_many(stem, [], out_dir=tmp_path, predict_kw={"seed": 1.5})
    for option, message in (({"tile": 0}, "tile must be an integer >= 2, got 0"),
                            ({"precision": "fp8"}, "precision must be 'fp32', 'bf16' or 'auto', got 'fp8'"),
                            ({"batch_size": -1}, "batch_size must be a positive integer, got -1"),
                            ({"n_samples": 1}, "n_samples=1 draws the inputs' noise once")):
        with pytest.raises(ValueError, match=r"^predict_kw: " + re.escape(message)):
            predict_many(stem, [("g1", {"NUV": "x.fits", "Ks": "y.fits"})], out_dir=tmp_path / "v", predict_kw=option)
    assert not (tmp_path / "v").exists()
    with pytest.raises(TypeError, match=r"band must be one band name \(a run writes one band per galaxy; run once "
                                        r"per band\), got \['r', 'g'\]"):
        predict_many(stem, [], out_dir=tmp_path / "o", band=["r", "g"])
    with pytest.raises(ValueError, match="reproject_to='r' is not an input band of model 'tiny_test'"):
        predict_many(stem, [], out_dir=tmp_path, reproject_to="r")
    with pytest.raises(ValueError, match="unknown model 'no_such_model'"):
        predict_many("no_such_model", [], out_dir=tmp_path)
    with pytest.raises(TypeError, match=r"items\[0\] must be an \(id, \{band: path\}\) pair"):
        predict_many(stem, ["g1"], out_dir=tmp_path)
    # a Client hung 60 s on it, then failed with a message naming no option
    with pytest.raises(ValueError, match=r"scheduler='garbage': missing port number in address 'garbage' \(expected "
                                         r"an address such as 'tcp://10\.0\.0\.1:8786'\)"):
        predict_many(stem, [], out_dir=tmp_path, scheduler="garbage")


def test_a_csv_report_is_csv_and_other_formats_are_refused(tiny_model, tmp_path, cluster, capsys):
    stem, _ = tiny_model
    with pytest.raises(ValueError, match=r"report .*r\.json: a report is an ECSV or CSV table; give a \.ecsv or "
                                         r"\.csv file name, not \.json"):
        predict_many(stem, [], out_dir=tmp_path, report=tmp_path / "r.json")
    files = _write_galaxy(tmp_path, "g", 1)
    for _ in range(2):  # the second run replaces the first's CSV report: a report, not any other file
        predict_many(stem, [("g", files)], out_dir=tmp_path / "o", report=tmp_path / "r.csv", scheduler=cluster,
                     progress=False)
    written = Table.read(tmp_path / "r.csv", format="ascii.csv")
    assert list(written["galaxy"]) == ["g"] and list(written["status"]) == ["exists"]
    Table(rows=[("g", str(files["NUV"]), str(files["Ks"]))], names=("id", "NUV", "Ks")).write(tmp_path / "m.ecsv")
    assert main(["predict-batch", "--model", str(stem), "--manifest", str(tmp_path / "m.ecsv"), "-o",
                 str(tmp_path / "o"), "--report", str(tmp_path / "r.fits")]) == 2
    assert "--report: report " in capsys.readouterr().err and not (tmp_path / "r.fits").exists()


def test_a_kept_output_is_reported_with_the_warnings_its_run_recorded(tiny_model, tmp_path, cluster):
    stem, _ = tiny_model
    files = _write_galaxy(tmp_path, "g", 2)
    with fits.open(files["NUV"], mode="update") as hdul:
        hdul[0].data[3:5, 3:5] = np.nan
    first = predict_many(stem, [("g", files)], out_dir=tmp_path / "o", scheduler=cluster, progress=False)
    again = predict_many(stem, [("g", files)], out_dir=tmp_path / "o", scheduler=cluster, progress=False)
    assert list(again.table["status"]) == ["exists"] and "masked" in first.table["warnings"][0]
    assert again.table["warnings"][0] == "4 pixels masked: bad or masked input pixels."


def test_batch_report_rejects_unknown_status_and_columns():
    with pytest.raises(ValueError, match="status must be one of"):
        BatchReport([{"galaxy": "g", "status": "maybe"}])
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['colour'\]"):
        BatchReport([{"galaxy": "g", "status": "done", "colour": "red"}])


# ---------------------------------------------------------------------- bad inputs
HUGE = os.environ.get("BANDSYNTH_TEST_HUGE")


def _bad_corpus(folder):
    """Write the bad-input corpus; returns manifest rows and the expected
    ``(status, band, error pattern, file name)`` per galaxy."""
    folder.mkdir()
    rows, expect = [], {}

    def pair(galaxy, nuv, ks, outcome):
        rows.append((galaxy, "", str(nuv), str(ks)))
        expect[galaxy] = outcome + (None,) * (4 - len(outcome))

    for i in range(3):
        f = _write_galaxy(folder, f"good{i}", 10 + i)
        pair(f"good{i}", f["NUV"].name, f["Ks"].name, ("done", None, None))
    ok = _write_galaxy(folder, "ref", 20)
    ks_ok = ok["Ks"].name

    raw = (folder / "ref_NUV.fits").read_bytes()
    (folder / "trunc_NUV.fits").write_bytes(raw[: len(raw) // 2])
    pair("truncated", "trunc_NUV.fits", ks_ok, ("failed", "NUV", "cannot read .*trunc_NUV.fits", "trunc_NUV.fits"))

    table = fits.BinTableHDU.from_columns([fits.Column("flux", "E", array=np.ones(3))])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(folder / "table_NUV.fits")
    pair("table", "table_NUV.fits", ks_ok, ("failed", "NUV", "contains no image HDU", "table_NUV.fits"))

    hdus = [fits.PrimaryHDU()]
    for name, band in (("NUVX", "NUV"), ("K", "Ks")):
        with fits.open(ok[band]) as src:
            hdus.append(fits.ImageHDU(src[0].data, src[0].header, name=name))
    fits.HDUList(hdus).writeto(folder / "badext.fits")
    rows.append(("badext", "badext.fits", "", ""))
    expect["badext"] = ("failed", "", "HDU 1 has EXTNAME 'NUVX', which is not a known band", "badext.fits")
    hdus[1].name = "NUV"
    fits.HDUList(hdus).writeto(folder / "multi.fits")
    rows.append(("multi", "multi.fits", "", ""))
    expect["multi"] = ("done", None, None, None)
    unusable = fits.ImageHDU(np.full((SIZE, SIZE), np.nan), name="g")  # a band the model does not read
    unusable.header["BUNIT"] = "nanomaggy"
    fits.HDUList([*hdus, unusable]).writeto(folder / "multi_g.fits")
    rows.append(("multi_g", "multi_g.fits", "", ""))
    expect["multi_g"] = ("done", None, None, None)

    pair("noband", ok["NUV"].name, "", ("failed", "Ks", "no file for band Ks in the manifest"))
    pair("nofile", ok["NUV"].name, "absent_Ks.fits", ("failed", "Ks", "absent_Ks.fits' not found", "absent_Ks.fits"))

    nan = _write_image(folder / "nan_NUV.fits", np.full((SIZE, SIZE), np.nan, np.float32),
                       wcs=WCS(fits.getheader(ok["NUV"])))
    pair("allnan", nan.name, ks_ok, ("failed", "NUV", "every pixel is masked or non-finite", "nan_NUV.fits"))

    small_ks = _write_image(folder / "small_Ks.fits", _blob((48, 48)))
    pair("shapes", ok["NUV"].name, small_ks.name,  # the hint in a batch's words, not a Python call
         ("failed", "NUV,Ks", r"bands have different shapes .*e\.g\. --reproject-to NUV \(reproject_to='NUV'\)$"))
    no_unit = fits.PrimaryHDU(fits.getdata(ok["NUV"]), _wcs(fits.getdata(ok["NUV"]).shape).to_header())
    no_unit.writeto(folder / "nounit_NUV.fits")
    pair("nounit", "nounit_NUV.fits", ks_ok,
         ("failed", "NUV", r"has no BUNIT keyword; give the file a BUNIT keyword \(e\.g\. BUNIT = 'nanomaggy', or "
                           r"for counts BUNIT = 'adu' with a zero point such as PHOTZP\): a batch reads each file's "
                           r"own unit$"))  # it ended "or for counts --zeropoint BAND=ZP", an option batches lack
    in_dn = fits.PrimaryHDU(fits.getdata(ok["NUV"]), _wcs(fits.getdata(ok["NUV"]).shape).to_header())
    in_dn.header["BUNIT"] = "DN"
    in_dn.writeto(folder / "dn_NUV.fits")
    pair("dn", "dn_NUV.fits", ks_ok, ("failed", "NUV", r"give its header a zero point, e\.g\. PHOTZP = the AB "))

    w = WCS(fits.getheader(ok["Ks"]))
    w.wcs.crval = w.wcs.crval + [10 / 3600, 0]
    shifted = _write_image(folder / "shifted_Ks.fits", fits.getdata(ok["Ks"]), wcs=w)
    pair("wcs", ok["NUV"].name, shifted.name,
         ("failed", "Ks", "not on the pixel grid of band 'NUV' \\('.*--reproject-to NUV \\(reproject_to='NUV'\\)$",
          "shifted_Ks.fits"))

    (folder / "zero_NUV.fits").write_bytes(b"")
    pair("zero", "zero_NUV.fits", ks_ok, ("failed", "NUV", "Empty or corrupt FITS file", "zero_NUV.fits"))

    for band in INPUTS:
        _write_image(folder / f"tiny_{band}.fits", _blob((3, 3)))
    pair("tiny", "tiny_NUV.fits", "tiny_Ks.fits", ("failed", "NUV,Ks", "smaller than the 4x4 pixels"))

    # Larger than one network tile: predicted in overlapping tiles.
    shape = (10000, 10000) if HUGE else (1100, 900)
    for band, width in (("NUV", 0.1), ("Ks", 0.2)):
        _write_image(folder / f"big_{band}.fits", _blob(shape, width=width))
    pair("big", "big_NUV.fits", "big_Ks.fits", ("done", None, None))

    for unsafe in ("../../escaped", "/tmp/absolute", ".hidden", "a\\b"):
        pair(unsafe, ok["NUV"].name, ks_ok, ("failed", "", "galaxy id .* (contains a path separator|starts with '.')"))
    rows.append(("good0", "", ok["NUV"].name, ks_ok))  # second row for the same id
    return rows, expect


def test_bad_input_corpus_goes_through_one_batch(tiny_model, tmp_path, caplog, cluster):
    stem, _ = tiny_model
    rows, expect = _bad_corpus(tmp_path / "in")
    manifest = Table(rows=rows, names=("id", "file", "NUV", "K"), dtype=[str] * 4)
    manifest.write(tmp_path / "in" / "m.ecsv")
    out = tmp_path / "deep" / "out"
    started = time.perf_counter()
    code = main(["predict-batch", "--model", str(stem), "--manifest", str(tmp_path / "in" / "m.ecsv"),
                 "--out", str(out), "--scheduler", cluster, "--quiet", "--report", str(tmp_path / "report.ecsv")])
    elapsed = time.perf_counter() - started
    assert code == 1  # something failed
    report = Table.read(tmp_path / "report.ecsv", format="ascii.ecsv")
    by_id = {}
    for row in report:
        by_id.setdefault(row["galaxy"], []).append(row)
    for galaxy, (status, band, error, file) in expect.items():
        first = by_id[galaxy][0]
        assert first["status"] == status, (galaxy, first["error"])
        if status == "done":
            _valid_output(out / f"{galaxy}_r_synth.fits", stem)
            continue
        assert re.search(error, first["error"]), (galaxy, first["error"])
        if band:
            assert first["band"] == band, galaxy
        if file:
            assert Path(first["file"]).name == file, galaxy
    dup = [r for r in by_id["good0"] if r["status"] == "failed"]
    assert len(dup) == 1 and "duplicate galaxy id" in dup[0]["error"]
    assert "ref_NUV.fits" in dup[0]["file"]  # the item left out, named
    assert not dup[0]["output"]  # it named the other item's output as its own
    from bandsynth.batch import BatchReport

    rows = [dict(zip(report.colnames, row)) for row in report]
    counted = sum(r["status"] != "ignored" for r in rows)
    assert repr(BatchReport(rows)).startswith(f"<BatchReport: {counted} galaxies:")  # as its counts add up
    # Only the good galaxies produced files, all inside the output folder, no temporaries.
    assert sorted(p.name for p in out.iterdir() if p.name.endswith(".fits")) == sorted(
        f"{g}_r_synth.fits" for g, (s, *_) in expect.items() if s == "done"
    )
    assert not list(out.glob(".*")) and not (tmp_path / "escaped_r_synth.fits").exists()
    assert not Path("/tmp/absolute_r_synth.fits").exists()
    assert "galaxy truncated failed [NUV:" in caplog.text
    if not HUGE:
        assert elapsed < 30
    big = SyntheticBand.read(out / "big_r_synth.fits")
    assert big.data.shape == ((10000, 10000) if HUGE else (1100, 900)) and np.isfinite(big.data).all()


def test_output_path_refuses_ids_that_leave_the_folder(tmp_path):
    assert output_path(tmp_path, "J1234+5678.9", "K") == tmp_path / "J1234+5678.9_Ks_synth.fits"
    for bad, why in (("../x", "path separator"), ("/etc/x", "path separator"), ("..", "starts with '.'"),
                     ("", "empty galaxy id"), ("a\nb", "control characters"), ("x" * 300, "longer than")):
        with pytest.raises(ValueError, match=why):
            output_path(tmp_path, bad, "r")


# ---------------------------------------------------------------------- existing outputs
def test_existing_outputs_are_only_replaced_with_overwrite(tiny_model, tiny_card, make_tiny_translator, tmp_path,
                                                           cluster):
    stem, translator = tiny_model
    items = [(f"g{i}", _write_galaxy(tmp_path, f"g{i}", 30 + i)) for i in range(6)]
    out = tmp_path / "out"
    assert predict_many(stem, items, out_dir=out, scheduler=cluster, progress=False).ok
    paths = [out / f"g{i}_r_synth.fits" for i in range(6)]

    # g0: corrupt (one data byte changed); g1: made by another model;
    # g2: its input changed since; g3: not a FITS file at all.
    raw = bytearray(paths[0].read_bytes())
    raw[2880 * 12 + 100] ^= 0xFF
    paths[0].write_bytes(bytes(raw))
    other = make_tiny_translator(tiny_card("other_model"), seed=1)
    other.save(tmp_path / "other_model")
    paths[1].unlink()
    assert predict_many(tmp_path / "other_model", items[1:2], out_dir=out, scheduler=cluster, progress=False).ok
    fits.setval(items[2][1]["Ks"], "OBSERVER", value="someone")  # same pixels, different file
    paths[3].write_text("not a FITS file")
    fits.writeto(paths[4], np.zeros((8, 8)), overwrite=True)  # g4: another program's FITS file (no CHECKSUM)
    paths[5].write_bytes(paths[5].read_bytes()[:10000])  # g5: cut short
    before = {p: p.read_bytes() for p in paths}

    report = predict_many(stem, items, out_dir=out, scheduler=cluster, progress=False)
    failed = {r["galaxy"]: r["error"] for r in report.failed}
    assert sorted(failed) == ["g0", "g1", "g2", "g3", "g4", "g5"]
    assert "fails its CHECKSUM/DATASUM check" in failed["g0"]
    assert "was made by model 'other_model'" in failed["g1"]
    assert "made from other input files (checksum of band(s) Ks differs)" in failed["g2"]
    assert "cannot be read as a bandsynth output" in failed["g3"]
    assert "has no CHECKSUM: it is not a bandsynth output" in failed["g4"]
    assert "cannot be read as a bandsynth output (OSError: the file is truncated" in failed["g5"]
    assert all("pass --overwrite" in e for e in failed.values())
    assert {p: p.read_bytes() for p in paths} == before  # nothing touched

    report = predict_many(stem, items, out_dir=out, scheduler=cluster, progress=False, overwrite=True)
    assert report.counts["done"] == 6
    for p in paths:
        _valid_output(p, stem)


def test_outputs_of_another_card_of_the_model_are_not_taken_for_its_own(tiny_model, tiny_card, make_tiny_translator,
                                                                         tmp_path, cluster):
    # A model recalibrated since (same weights, another card) states another sigma: its old outputs were kept as
    # "already done", and workers that had loaded the old card went on predicting with it.
    _, translator = tiny_model
    model = tmp_path / "model"
    translator.save(model)
    items = [(f"g{i}", _write_galaxy(tmp_path, f"g{i}", 40 + i)) for i in range(2)]
    out = tmp_path / "out"
    assert predict_many(model, items, out_dir=out, scheduler=cluster, progress=False).ok
    # a card edited where it does not shape a prediction (its description, its metrics): the outputs are its own
    described = make_tiny_translator(tiny_card(description="the same network, described")).save(model, overwrite=True)
    assert described.card.card_sha256 != translator.card.card_sha256
    assert predict_many(model, items, out_dir=out, scheduler=cluster, progress=False).counts["exists"] == 2
    calibration = {"plain": {"centres": [0.1], "temperatures": [2.0], "distribution": "laplace"}}
    edited = make_tiny_translator(tiny_card(calibration=calibration)).save(model, overwrite=True)
    assert edited.card.sha256 == translator.card.sha256 and edited.card.card_sha256 != translator.card.card_sha256
    report = predict_many(model, items, out_dir=out, scheduler=cluster, progress=False)
    assert report.counts["failed"] == 2
    assert all("was made by another card of model 'tiny_test' (the SHA-256 of what of the card shapes a prediction"
               in r["error"] for r in report.failed)
    report = predict_many(model, items, out_dir=out, scheduler=cluster, progress=False, overwrite=True)
    assert report.counts["done"] == 2
    for i in range(2):
        made = json.loads(fits.getval(out / f"g{i}_r_synth.fits", "BSPROV"))
        assert made["card_sha256"] == edited.card.card_sha256 and "calibration 'plain'" in made["uncertainty_method"]


def test_worker_threads_leave_warning_filters_intact(tiny_model, tmp_path):
    from distributed import Client, LocalCluster

    stem, _ = tiny_model
    items = [(f"g{i}", _write_galaxy(tmp_path, f"g{i}", 80 + i, size=48)) for i in range(12)]
    before, threads = list(warnings.filters), torch.get_num_threads()
    try:
        # Worker threads in this very process: galaxies must not run concurrently in it.
        with LocalCluster(n_workers=1, threads_per_worker=4, processes=False, dashboard_address=None,
                          scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as lc, Client(lc) as client:
            report = predict_many(stem, items, out_dir=tmp_path / "out", scheduler=client, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert report.counts["done"] == 12
    assert list(warnings.filters) == before


def test_stale_temporary_files_are_removed(tiny_model, tmp_path, cluster):
    stem, _ = tiny_model
    items = [("g0", _write_galaxy(tmp_path, "g0", 40))]
    out = tmp_path / "out"
    out.mkdir()
    leftover = out / ".g0_r_synth.fits.0123456789ab.tmp"
    leftover.write_bytes(b"SIMPLE  =  half a file")
    assert predict_many(stem, items, out_dir=out, scheduler=cluster, progress=False).ok
    assert not leftover.exists()
    _valid_output(out / "g0_r_synth.fits", stem)


def test_kill_9_then_rerun_finishes_without_partial_files(tiny_model, tmp_path, cluster):
    stem, _ = tiny_model
    n = 10
    rows = []
    for i in range(n):
        # Survey mode carries an uncertainty: Monte Carlo draws make each galaxy take a while.
        f = _write_galaxy(tmp_path, f"g{i}", 50 + i, size=96, mode="survey")
        rows.append((f"g{i}", f["NUV"].name, f["Ks"].name))
    manifest = _manifest(tmp_path, rows)
    out = tmp_path / "out"
    args = ["predict-batch", "--model", str(stem), "--manifest", str(manifest), "--out", str(out),
            "--workers", "1", "--torch-threads", "1", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "bandsynth.cli", *args], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    children = []
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if out.is_dir() and any(out.glob("*_synth.fits")):
                children = psutil.Process(proc.pid).children(recursive=True)  # the worker processes
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        # Workers notice that their parent died and exit by themselves.
        _, alive = psutil.wait_procs(children, timeout=30)
        for p in alive:
            p.kill()
        log.close()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "run.log").read_text()[-2000:]
    assert children and not alive
    first = sorted(out.glob("*_synth.fits"))
    assert 1 <= len(first) < n  # killed mid-run
    for p in first:
        _valid_output(p, stem)
    mtimes = {p.name: p.stat().st_mtime_ns for p in first}

    code = main([*args[:5], "--out", str(out), "--scheduler", cluster, "--report", str(tmp_path / "report.ecsv")])
    assert code == 0
    report = Table.read(tmp_path / "report.ecsv", format="ascii.ecsv")
    status = dict(zip(report["galaxy"], report["status"]))
    assert sorted(g for g, s in status.items() if s == "exists") == sorted(p.name.split("_")[0] for p in first)
    assert sum(s == "done" for s in status.values()) == n - len(first)
    for i in range(n):
        _valid_output(out / f"g{i}_r_synth.fits", stem)
    assert {p.name: p.stat().st_mtime_ns for p in first} == mtimes
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("sent, code, said", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_stops_a_local_cluster_run_with_one_line_and_a_report(tiny_model, tmp_path, sent, code, said):
    # A terminal's Ctrl-C reaches every process of its group: each Dask worker printed a ~30-line traceback.  A
    # scheduler's time limit (SIGTERM to the job's processes) ended the run with no report and no message.
    stem, _ = tiny_model
    rows = []
    for i in range(10):  # survey mode: Monte Carlo draws make each galaxy take a while
        f = _write_galaxy(tmp_path, f"g{i}", 70 + i, size=96, mode="survey")
        rows.append((f"g{i}", f["NUV"].name, f["Ks"].name))
    out = tmp_path / "out"
    args = ["predict-batch", "--model", str(stem), "--manifest", str(_manifest(tmp_path, rows)), "--out", str(out),
            "--workers", "1", "--torch-threads", "1", "--quiet", "--report", str(tmp_path / "report.ecsv")]
    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "bandsynth.cli", *args], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and not any(out.glob("*_synth.fits")):
            time.sleep(0.002)
        os.killpg(proc.pid, sent)  # the whole group, as a terminal or a batch scheduler does
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()
    text = (tmp_path / "run.log").read_text()
    assert proc.returncode == code and "Traceback" not in text, text[-3000:]
    assert text.strip().splitlines()[-1] == f"ERROR: {said}"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    report = Table.read(tmp_path / "report.ecsv", format="ascii.ecsv")
    assert sorted(report["galaxy"]) == [f"g{i}" for i in range(10)]  # each done, or failed as interrupted
    assert all(row["status"] == "done" or "the run was interrupted" in row["error"] for row in report)


# ---------------------------------------------------------------------- security
def test_no_unpickling_on_the_load_and_predict_path(tiny_model, tmp_path, monkeypatch, cluster):
    from bandsynth import BandStack

    stem, _ = tiny_model
    files = _write_galaxy(tmp_path, "g0", 60)

    def refuse(*args, **kwargs):
        raise AssertionError("pickle must not be used to load a model")

    with monkeypatch.context() as m:
        for target, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
            m.setattr(target, name, refuse)
        translator = Translator.load(stem)
        pred = translator.predict(BandStack.from_fits(files))
        assert pred.data.shape == (SIZE, SIZE) and np.isfinite(pred.data).all()

    # Dask moves tasks and results with pickle: the batch sends names of things, never the
    # model or an array.
    unpickled = []
    real_loads = pickle.loads

    def spy(data, *args, **kwargs):
        obj = real_loads(data, *args, **kwargs)
        unpickled.append(obj if isinstance(obj, type) else type(obj))
        return obj

    monkeypatch.setattr(pickle, "loads", spy)
    monkeypatch.setattr(torch, "load", refuse)
    report = predict_many(stem, [("g0", files)], out_dir=tmp_path / "out", scheduler=cluster, progress=False)
    assert report.ok
    assert not [t for t in unpickled if t.__module__.split(".")[0] in ("torch", "bandsynth", "numpy")], unpickled


def test_tampered_weights_are_refused(tiny_model, tmp_path):
    stem, _ = tiny_model
    for suffix in (".safetensors", ".json"):
        shutil.copy(stem.with_suffix(suffix), (tmp_path / "tampered").with_suffix(suffix))
    weights = tmp_path / "tampered.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-5] ^= 0x01
    weights.write_bytes(bytes(raw))
    with pytest.raises(WeightsHashError, match="refusing to load it"):
        predict_many(tmp_path / "tampered", [], out_dir=tmp_path / "out")


def test_batch_on_a_distributed_cluster(tiny_model, tmp_path, cluster):
    from distributed import Client

    stem, translator = tiny_model
    data = tmp_path / "data"
    data.mkdir()
    rows = []
    for i in range(6):
        f = _write_galaxy(data, f"g{i}", 70 + i)
        rows.append((f"g{i}", f["NUV"].name, f["Ks"].name))
    rows.append(("broken", "g0_NUV.fits", "absent_Ks.fits"))
    manifest = _manifest(data, rows)
    out = tmp_path / "out"
    code = main(["predict-batch", "--model", str(stem), "--manifest", str(manifest), "--out", str(out),
                 "--scheduler", cluster, "--quiet"])
    assert code == 1  # "broken" failed ...
    report = Table.read(out / "predict_batch_report_r.ecsv", format="ascii.ecsv")
    assert list(report[report["status"] == "failed"]["galaxy"]) == ["broken"]
    for i in range(6):  # ... and every other galaxy was predicted
        _valid_output(out / f"g{i}_r_synth.fits", stem)
    with Client(cluster) as client:
        loaded = client.run(lambda: sorted(k[0] for k in __import__("bandsynth.batch.workers").batch.workers.TRANSLATOR_CACHE))
    # The workers, not this process, loaded the model (by its path) and did the work.
    assert any(str(stem) in names for names in loaded.values()), loaded

    # A translator that exists only in memory travels to the workers as its saved files.
    report = predict_many(translator, [(f"g{i}", {b: data / f"g{i}_{b}.fits" for b in INPUTS}) for i in range(2)],
                          out_dir=tmp_path / "out2", scheduler=cluster, progress=False)
    assert report.counts["done"] == 2
    for i in range(2):
        _valid_output(tmp_path / "out2" / f"g{i}_r_synth.fits", stem)
