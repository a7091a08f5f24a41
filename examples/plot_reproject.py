"""
Bands on different pixel grids: reproject, then predict
=======================================================

Cut-outs from different surveys never share a pixel grid: GALEX, 2MASS, SDSS and
DECaLS pixels differ in size, and each cut-out has its own centre.  A model sees its
input bands as the channels of one image, so they must be put on one grid first.

Here a mock galaxy's NUV image comes on pixels twice as large as the model's, and
its Ks image on pixels 1.5 times as large and off-centre, each in its own FITS file.
We resample both onto a grid at the model's pixel scale with the ``reproject``
package -- which keeps the galaxy's total flux by default for images in flux per
pixel, and records every resampling -- and predict the *r* band there.
"""

# %%
# The model
# ---------
# The shipped ``nuv_k_to_r_paper`` model.
import tempfile
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS
from matplotlib.figure import Figure

from bandsynth import BandStack, Translator
from bandsynth.datasets import make_galaxy
from bandsynth.plotting import plot_panel

translator = Translator.load("nuv_k_to_r_paper")
card = translator.card
size = int(card.training.get("data_info", {}).get("size", 128))
scale = card.pixel_scale  # arcsec per pixel of the training images

# %%
# Two cut-outs on their own grids
# -------------------------------
# The mock universe renders the same galaxy at any pixel scale.  NUV: pixels twice
# the model's.  Ks: pixels 1.5 times the model's, cut off-centre.  Each goes to its
# own FITS file, as survey cut-outs would.
folder = Path(tempfile.mkdtemp())
nuv = make_galaxy(
    23, mode=card.mode, bands=["NUV"], size=size, pixel_scale=2.0 * scale
)
ks = make_galaxy(
    23, mode=card.mode, bands=["Ks"], size=size, pixel_scale=1.5 * scale
)
ks = ks.cutout(
    (0.56 * size, 0.45 * size), (int(0.85 * size), int(0.85 * size))
)
files = {"NUV": folder / "g23_nuv.fits", "K": folder / "g23_k.fits"}
nuv["NUV"].write(files["NUV"])
ks["Ks"].write(files["K"])
for band, path in files.items():
    w = WCS(str(path))
    nx, ny = w.pixel_shape
    middle = w.pixel_to_world((nx - 1) / 2, (ny - 1) / 2)
    print(
        f"{path.name}: {nx} x {ny} pixels of "
        f"{abs(w.wcs.cdelt[0]) * 3600:.3f} arcsec, "
        f"centred on {middle.to_string('hmsdms', precision=1)}"
    )

# %%
# A stack refuses bands on different grids, and says what to do:
try:
    BandStack.from_fits(files)
except ValueError as err:
    print(err)

# %%
# The original cut-outs in sky coordinates: same galaxy, different pixels.
originals = Figure(figsize=(8, 3.8), layout="constrained")
for i, (band, single) in enumerate((("NUV", nuv), ("Ks", ks))):
    ax = originals.add_subplot(1, 2, i + 1, projection=single.wcs)
    data = single[band].data
    ax.imshow(
        data,
        origin="lower",
        cmap="magma",
        vmin=0,
        vmax=np.percentile(data, 99.5),
    )
    ax.set_title(
        f"{band}: {single.shape[1]} × {single.shape[0]} pixels", fontsize=9
    )
    ax.coords[0].set_ticks(number=3)
    ax.coords[0].set_axislabel("RA")
    ax.coords[1].set_axislabel("Dec")

# %%
# One grid at the model's pixel scale
# -----------------------------------
# A tangent-plane grid of ``size`` × ``size`` pixels of the model's scale, centred on
# the galaxy.  Each band is reprojected onto it with flux-exact spherical-polygon
# overlap (``method="exact"``).  The images are in flux per pixel (nanomaggies), so
# the default ``conserve_flux="auto"`` multiplies them by the ratio of the pixel
# areas and the galaxy's total flux is kept when pixels shrink (an image in a surface
# brightness unit such as MJy/sr would be left as it is).  Each resampling is recorded
# in ``stack.meta["reprojection"]``; we carry the records into the combined stack so
# that the prediction's provenance lists them.
centre = SkyCoord(*nuv.wcs.wcs.crval, unit="deg")
target = WCS(naxis=2)
target.wcs.ctype = ["RA---TAN", "DEC--TAN"]
target.wcs.crval = [centre.ra.deg, centre.dec.deg]
target.wcs.crpix = [(size + 1) / 2, (size + 1) / 2]
target.wcs.cdelt = [-scale / 3600, scale / 3600]

on_grid, inputs_meta, resampling = {}, [], []
for band, path in files.items():
    single = BandStack.from_fits({band: path})
    resampled = single.reproject((target, (size, size)), method="exact")
    on_grid[band] = resampled[band]
    inputs_meta += single.meta["inputs"]  # file names and SHA-256
    resampling += resampled.meta["reprojection"]  # what the resampling did
stack = BandStack.from_arrays(
    on_grid, meta={"inputs": inputs_meta, "reprojection": resampling}
)
print(stack)
for record in stack.meta["reprojection"]:
    print(
        f"{record['band']}: {record['pixel_scale_in']:.3f} -> "
        f"{record['pixel_scale_out']:.3f} arcsec/pixel ({record['method']}), "
        f"flux scaled by the area ratio {record['area_ratio']:.3f}: "
        f"{record['flux_scaled_by_area_ratio']}"
    )

# %%
# For reference, the same galaxy rendered directly on the target grid in all three
# bands: the true *r* image, and inputs that never went through a coarser grid.  The
# reprojected NUV image holds the same flux as the one rendered on the target grid.
truth_stack = make_galaxy(
    23,
    mode=card.mode,
    bands=["NUV", "Ks", "r"],
    size=size,
    pixel_scale=scale,
)
truth = truth_stack["r"]
for band in translator.inputs:
    print(
        f"{band} flux on the target grid: "
        f"reprojected {stack[band].data.sum():.1f}, "
        f"rendered there {truth_stack[band].data.sum():.1f} nanomaggy"
    )

# %%
# When one band's grid will do, ``BandStack.from_fits(files, reproject_to="K")`` does
# the same in one line (here that would put the galaxy on 1.5 times coarser pixels
# than the model knows, the largest factor the translator takes without a warning:
# ``bandsynth.models.domain.PIXEL_SCALE_FACTOR``).
#
# Predict, and compare with the truth
# -----------------------------------
from_reprojected = translator.predict(stack)
from_native = translator.predict(truth_stack.select(translator.inputs))
for label, prediction in (
    ("native-grid inputs", from_native),
    ("reprojected inputs", from_reprojected),
):
    report = prediction.compare(truth, scaling="provenance")
    print(
        f"{label:>19}: SSIM {report.ssim:.3f}  MAE {report.mae:.4f}  "
        f"Δmag total {report.dmag_total:+.3f}"
    )
print(
    "input files recorded in the provenance:",
    [
        i["file"].split("/")[-1]
        for i in from_reprojected.provenance["inputs"]
    ],
)
print("resampling steps in its FITS HISTORY:")
for line in from_reprojected.provenance["history"]:
    if line.startswith("Resampled"):
        print(" -", line)

# %%
# Top row: inputs on the model's grid from the start; bottom row: inputs reprojected
# from the coarser cut-outs.  The coarse NUV pixels cannot be undone by resampling: the
# prediction can only be as sharp as the information that reaches it.
comparison = plot_panel(
    [
        {b: truth_stack[b] for b in translator.inputs},
        {b: stack[b] for b in translator.inputs},
    ],
    [truth, truth],
    [from_native, from_reprojected],
    row_labels=["native grid", "reprojected"],
)
