"""
A batch prediction over a folder of FITS files
==============================================

``bandsynth predict-batch`` -- `bandsynth.batch.predict_many` in Python -- predicts
the missing band for many galaxies in parallel with Dask and writes one FITS file
per galaxy.  A run can be interrupted and started again, and one bad file never
stops it.  Here: a folder of NUV and Ks cut-outs of eight mock galaxies, one of
them damaged, one missing its Ks image.
"""

# %%
# The model
# ---------
# The shipped ``nuv_k_to_r_paper`` model: the batch workers load a model by name (or a
# model of your own by path), and its SHA-256 is checked.
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from astropy.table import Table

from bandsynth import SyntheticBand, Translator
from bandsynth.datasets import make_dataset

work = Path(tempfile.mkdtemp())
model = "nuv_k_to_r_paper"
translator = Translator.load(model)
card = translator.card
size = int(card.training.get("data_info", {}).get("size", 128))

# %%
# A folder of cut-outs
# --------------------
# One FITS file per galaxy and band, named ``<id>_<band>.fits`` (any alias names a
# band: ``k`` is Ks).  Galaxy ``g6``'s Ks file is cut short, as by an interrupted
# download; ``g7`` has no Ks file at all.
folder = work / "cutouts"
folder.mkdir()
galaxies = make_dataset(
    8,
    seed=500,
    bands=["NUV", "Ks"],
    size=size,
    mode=card.mode,
    pixel_scale=card.pixel_scale,
)
for i in range(len(galaxies)):
    stack = galaxies.stack(i)
    stack["NUV"].write(folder / f"g{i}_nuv.fits")
    if i != 7:
        stack["Ks"].write(folder / f"g{i}_k.fits")
damaged = folder / "g6_k.fits"
damaged.write_bytes(damaged.read_bytes()[:4000])
print(textwrap.fill("  ".join(sorted(p.name for p in folder.iterdir())), 70))

# %%
# Predict them all
# ----------------
# The command scans the folder with the pattern, spreads the galaxies over two Dask
# worker processes and writes ``OUTPUT/<id>_r_synth.fits`` and a report.  Its exit
# status is 1 when any galaxy failed.
out = work / "synth_r"
command = [
    sys.executable, "-m", "bandsynth.cli", "predict-batch",
    "--model", model,
    "--pattern", "{id}_{band}.fits", "--input-dir", str(folder),
    "-o", str(out), "--workers", "2", "--quiet",
]
run = subprocess.run(command, capture_output=True, text=True)
print("exit status", run.returncode)
if run.returncode not in (0, 1):  # 2: the command itself failed (bad model, options...)
    raise RuntimeError(run.stderr)

# %%
# The report has one row per galaxy: ``done`` (predicted now), ``exists`` (a valid
# output of an earlier run, kept), ``failed`` (with the band, the file and the
# reason).
report = Table.read(out / "predict_batch_report_r.ecsv")
print("\n".join(report["galaxy", "status", "band", "error"].pformat(max_width=-1)))

# %%
# Started again
# -------------
# Every existing output is checked -- readable, checksums right, made by this model
# for this band from these very input files -- and kept.  Only the failures are tried
# again (and fail again until their files are fixed).
run = subprocess.run(command, capture_output=True, text=True)
again = Table.read(out / "predict_batch_report_r.ecsv")
print("exit status", run.returncode)
print({s: int((again["status"] == s).sum()) for s in ("done", "exists", "failed")})

# %%
# The same in Python is `bandsynth.batch.predict_many`, which also takes a
# `~bandsynth.Translator` held in memory and returns the report as a
# `~bandsynth.batch.BatchReport`::
#
#     from bandsynth.batch import predict_many
#     from bandsynth.datasets.folder import scan_folder
#
#     if __name__ == "__main__":  # Dask's worker processes re-import the script
#         scan = scan_folder(folder, "{id}_{band}.fits", bands=["NUV", "Ks"])
#         report = predict_many("nuv_k_to_r_paper", scan, out_dir=out, workers=2)
#         print(report.failed)
#
# The outputs
# -----------
# Each is a `~bandsynth.SyntheticBand` FITS file: image, ``UNCERT``, ``MASK`` and the
# provenance -- model, weights hash, input files and their SHA-256.
first = SyntheticBand.read(out / "g0_r_synth.fits")
print(repr(first))
for item in first.provenance["inputs"]:
    print(item["band"], Path(item["file"]).name, item["checksum"][:16] + "...")
fig = first.plot()
