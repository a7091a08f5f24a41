"""
Every missing band from the bands a galaxy has
==============================================

Surveys give a galaxy whatever bands they observed: KiDS *u g r i* for some, VIKING
*Z Y J H Ks* for others, both for a few.  An *any-band* model reads any subset of its
bands and predicts any other one, in nanomaggies, with a per-pixel uncertainty.  Each
request (the bands at hand, the band wanted) starts from its own colour model (linear in
the model's scaled units: a power-law SED), stored in the card; the network learns the morphology-dependent colours on top.

Here the shipped ``any_band_kids_viking`` model fills in the missing bands of a mock
galaxy observed by KiDS in *g* and *r* and by VIKING in *Ks* only, and then shows how the
photometry of *r* degrades as fewer bands are at hand.  The model was fine-tuned on
observed KiDS/VIKING galaxies, where it is more accurate than on these mock ones (the
documentation page "Any band in, any band out" has both).
"""

# %%
# The model and the galaxy
# ------------------------
# The card lists the bands the model reads and writes, the pixel scale it was trained on
# and, per band, the calibrations of its uncertainty: on the request with every other band
# at hand, and per number of bands at hand on requests drawn at random.
import warnings

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning
from astropy.visualization import AsinhStretch, ImageNormalize
from matplotlib.figure import Figure

from bandsynth import Translator
from bandsynth.datasets.mock import observe_galaxy
from bandsynth.metrics import photometric_error

model = Translator.load("any_band_kids_viking")
print("reads and writes:", ", ".join(model.outputs))
print(f"trained at {model.card.pixel_scale}\"/pixel")


def observe(seed):
    """A mock galaxy as KiDS and VIKING observe it, on the model's grid, with its noise-free truth."""
    return observe_galaxy(seed, "kids_viking", size=96, pixel_scale=model.card.pixel_scale,
                          r_mag_range=(15.0, 18.5))


galaxy = observe(7)
have = ["KiDS_g", "KiDS_r", "VISTA_Ks"]
missing = [b for b in model.outputs if b not in have]
stack = galaxy.observed.select(have)

# %%
# Every missing band at once
# --------------------------
# ``predict(stack, band=[...])`` returns one `~bandsynth.SyntheticBand` per band wanted,
# each from every band the stack holds, its uncertainty calibrated for requests from
# three bands.  The model also checks the inputs against the images it was trained on:
# these mock images are less noisy than the observed ones it was fine-tuned on, and it
# says so (shown once here).
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    predicted = model.predict(stack, band=missing)
for text in dict.fromkeys(str(w.message) for w in caught):
    print("warning:", text)

fig = Figure(figsize=(2.0 * len(missing), 6.4), layout="constrained")
axes = fig.subplots(3, len(missing))
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
for column, band in enumerate(have):  # the observed inputs, noise and all
    image = stack[band].data
    norm = ImageNormalize(image, vmin=0.0, vmax=np.percentile(image, 99.5), stretch=AsinhStretch(0.02))
    axes[0, column].imshow(image, origin="lower", cmap="magma", norm=norm)
    axes[0, column].set_title(f"observed {band.split('_')[1]}", fontsize=9)
for ax in axes[0, len(have):]:
    ax.set_axis_off()
for column, band in enumerate(missing):
    truth = galaxy.truth[band].data
    norm = ImageNormalize(truth, vmin=0.0, vmax=np.percentile(truth, 99.5), stretch=AsinhStretch(0.02))
    axes[1, column].imshow(truth, origin="lower", cmap="magma", norm=norm)
    axes[2, column].imshow(predicted[band].data, origin="lower", cmap="magma", norm=norm)
    dmag = photometric_error(predicted[band].data, truth).total
    axes[1, column].set_title(band.split("_")[1], fontsize=9)
    axes[2, column].set_title(f"Δmag {dmag:+.2f}", fontsize=8)
axes[0, 0].set_ylabel("inputs")
axes[1, 0].set_ylabel("truth (no noise)")
axes[2, 0].set_ylabel("predicted")
fig

# %%
# Fewer bands, less certain
# -------------------------
# The same request with fewer bands at hand: *r* from all eight others, from *g i Z*,
# from *g Z* and from *g* alone, on a handful of galaxies: the median absolute Δmag of the
# total flux against the noise-free truth.  ``benchmarks/any_band.py`` measures the same
# on hundreds of mock galaxies and ``benchmarks/real_sky.py`` on observed ones.
requests = {
    "8 bands": [b for b in model.outputs if b != "KiDS_r"],
    "g i Z": ["KiDS_g", "KiDS_i", "VISTA_Z"],
    "g Z": ["KiDS_g", "VISTA_Z"],
    "g": ["KiDS_g"],
}
galaxies = [observe(seed) for seed in range(20, 32)]
dmag = {}
for label, bands in requests.items():
    with warnings.catch_warnings():  # the depth warnings of above, once per galaxy and band
        warnings.simplefilter("ignore", AstropyUserWarning)
        results = model.predict([g.observed.select(bands) for g in galaxies], band="KiDS_r")
    truths = [g.truth["KiDS_r"].data for g in galaxies]
    dmag[label] = np.median([abs(photometric_error(r.data, t).total) for r, t in zip(results, truths)])
    print(f"r from {label:<8}: median |Δmag| {dmag[label]:.3f}")

fig = Figure(figsize=(5.5, 3.2), layout="constrained")
ax = fig.subplots()
ax.bar(list(dmag), list(dmag.values()), color="tab:blue")
ax.set_ylabel("median |Δmag| of r (total flux)")
ax.set_xlabel("bands at hand")
ax.set_title(f"{len(galaxies)} mock KiDS/VIKING galaxies")
fig
