"""
A batch prediction over a folder of FITS files
==============================================

`bandsynth.batch.predict_many` -- ``bandsynth predict-batch`` on the command line --
predicts the missing band for many galaxies in parallel with Dask and writes one
FITS file per galaxy.  A run can be interrupted and started again, and one bad file
never stops it.  Here: a folder of NUV and Ks cut-outs of eight mock galaxies, one of
them damaged, one of them missing its Ks image.
"""

# %%
# The model
# ---------
# The shipped ``nuv_k_to_r`` model when there is one, else a *tiny* stand-in trained
# here for a few seconds.  ``predict_many`` takes a model name, a path, or (as here) a
# `~bandsynth.Translator`.
import tempfile
from pathlib import Path

import bandsynth
from bandsynth import SyntheticBand, Translator
from bandsynth.batch import predict_many
from bandsynth.datasets import make_dataset
from bandsynth.datasets.folder import scan_folder

if "nuv_k_to_r" in [card.name for card in bandsynth.list_models()]:
    translator = Translator.load("nuv_k_to_r")
else:
    stand_in_data = make_dataset(40, seed=1, bands=["NUV", "Ks", "r"], size=64)
    translator = Translator.fit(
        stand_in_data, inputs=["NUV", "Ks"], output="r", name="nuv_k_to_r_tiny",
        preset="tiny", epochs=8, crop_size=32, lr=2e-3, progress=False,
    )
card = translator.card
size = int(card.training.get("data_info", {}).get("size", 128))

# %%
# A folder of cut-outs
# --------------------
# One FITS file per galaxy and band, named ``<id>_<band>.fits``.  Galaxy ``g6``'s Ks
# file is cut short, as by an interrupted download; ``g7`` has no Ks file at all.
folder = Path(tempfile.mkdtemp()) / "cutouts"
folder.mkdir()
galaxies = make_dataset(8, seed=500, bands=["NUV", "Ks"], size=size, mode=card.mode, pixel_scale=card.pixel_scale)
for i in range(len(galaxies)):
    stack = galaxies.stack(i)
    for band, name in (("NUV", "nuv"), ("Ks", "k")):
        if i == 7 and band == "Ks":
            continue
        stack[band].write(folder / f"g{i}_{name}.fits")
damaged = folder / "g6_k.fits"
damaged.write_bytes(damaged.read_bytes()[:4000])
print(sorted(p.name for p in folder.iterdir()))

# %%
# `~bandsynth.datasets.folder.scan_folder` groups the files by galaxy and band (any
# alias names a band: ``k`` is Ks); a galaxy without all the model's bands is listed
# as incomplete.
scan = scan_folder(folder, "{id}_{band}.fits", bands=translator.inputs, check=False)
print(scan)
print("incomplete:", scan.incomplete)

# %%
# Predict them all
# ----------------
# Two worker threads share the one model in memory.  The report has one row per
# galaxy: ``done`` (predicted now), ``exists`` (a valid output of an earlier run,
# kept), ``failed`` (with the band, the file and the reason).
out = folder.parent / "synth_r"
report = predict_many(translator, scan, out_dir=out, workers=2, progress=False,
                      report=out / "report.ecsv")
print(report)
rows = report.table["galaxy", "status", "band", "error"]
print("\n".join(rows.pformat(max_width=-1)))

# %%
# Started again
# -------------
# Every output is checked -- readable, checksums right, made by this model for this
# band from these very input files -- and kept.  Only the failures are tried again
# (and fail again until their files are fixed).
again = predict_many(translator, scan, out_dir=out, workers=2, progress=False)
print(again)

# %%
# The outputs
# -----------
# Each is a `~bandsynth.SyntheticBand` FITS file: image, ``UNCERT``, ``MASK`` and the
# provenance (model, weights hash, input files and their SHA-256).
first = SyntheticBand.read(out / "g0_r_synth.fits")
print(repr(first))
for item in first.provenance["inputs"]:
    print(item["band"], Path(item["file"]).name, item["checksum"][:16] + "...")
fig = first.plot()
