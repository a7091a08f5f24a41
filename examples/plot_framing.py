"""
One galaxy, any cut-out
=======================

A prediction should describe the galaxy, not the way it was cut out of the sky.
bandsynth's models are *local*: a pixel's prediction depends only on the input pixels
within the network's receptive field, and fluxes are scaled by a fixed per-band
transform in nanomaggies, never by a statistic of the image (see the photometric
contract in the documentation).

Here one mock galaxy is placed in a 512 × 512 pixel field of sky noise and predicted
twice -- in the whole field and in a 256 × 256 pixel cut-out of it -- and the galaxy's
pixels and total flux are compared.  Then the 512 pixel field is predicted in
128 pixel tiles and compared with the prediction in one pass.
"""

# %%
# The model and the galaxy
# ------------------------
# The shipped ``nuv_k_to_r_paper`` model.  Its card records the receptive field: each
# output pixel depends on a square of that many input pixels around it.  Tiles get
# a halo of half of it (rounded up to the network's stride).
import numpy as np
from astropy.visualization import AsinhStretch, ImageNormalize
from matplotlib.figure import Figure

from bandsynth import BandStack, Translator
from bandsynth.datasets import make_galaxy

translator = Translator.load("nuv_k_to_r_paper")
card = translator.card
print(translator)
print(
    f"receptive field {card.receptive_field} pixels, "
    f"tile halo {translator.engine.halo} pixels"
)

# A 128 × 128 pixel mock galaxy, rendered like the model's training images, with its
# true r band for reference.
galaxy = make_galaxy(
    31,
    mode=card.mode,
    bands=["NUV", "Ks", "r"],
    size=128,
    pixel_scale=card.pixel_scale,
)
unit = galaxy["NUV"].unit

# %%
# One field of sky, two cut-outs
# ------------------------------
# The galaxy goes in the middle of a 512 × 512 pixel field of Gaussian sky noise
# (in nanomaggies, a small fraction of each band's bright pixels).  The 256 pixel
# cut-out is the middle of the same field: the same galaxy on the same sky, only with
# less of it around.  Each cut-out gets the galaxy's WCS shifted to its own origin.
rng = np.random.default_rng(0)
field = {}
for band in translator.inputs:
    sky = 0.002 * float(np.percentile(galaxy[band].data, 99))
    image = rng.normal(0.0, sky, (512, 512))
    image[192:320, 192:320] += galaxy[band].data
    field[band] = image


def cut_out(size):
    """The central ``size`` x ``size`` pixels of the field, as a BandStack."""
    lo = (512 - size) // 2
    wcs = galaxy.wcs.deepcopy()
    wcs.wcs.crpix = wcs.wcs.crpix + (192 - lo)  # the galaxy starts at 192 - lo
    return BandStack.from_arrays(
        {b: a[lo : lo + size, lo : lo + size] for b, a in field.items()},
        wcs=wcs,
        unit=unit,
    )


stacks = {size: cut_out(size) for size in (256, 512)}
predictions = {
    size: translator.predict(stack) for size, stack in stacks.items()
}


def centre(image):
    """The central 128 x 128 pixels: where the galaxy is."""
    lo = (image.shape[0] - 128) // 2
    return np.asarray(image[lo : lo + 128, lo : lo + 128], dtype=np.float64)


galaxy_pixels = {size: centre(p.data) for size, p in predictions.items()}

# %%
# The galaxy's total flux
# -----------------------
# Summed over the 128 × 128 pixels of the galaxy, in each cut-out, beside the true
# r-band flux.
truth_flux = float(galaxy["r"].data.sum())
for size, pixels in galaxy_pixels.items():
    print(f"{size} px cut-out: total r flux {pixels.sum():9.3f} {unit}")
print(f"   true r image: total r flux {truth_flux:9.3f} {unit}")
ratio = galaxy_pixels[256].sum() / galaxy_pixels[512].sum()
print(f"256 px / 512 px: {ratio:.6f} ({100 * abs(ratio - 1):.4f} % apart)")

# %%
# Pixel by pixel
# --------------
# The galaxy's predicted r band in the two cut-outs, on one asinh stretch, and their
# difference on a linear scale of ±0.1 % of the galaxy's peak.  The difference is at
# most float rounding: the 256 pixel cut-out leaves far more than half a receptive
# field of sky around the galaxy.
difference = galaxy_pixels[256] - galaxy_pixels[512]
peak = galaxy_pixels[512].max()
print(
    f"largest |difference|: {np.abs(difference).max():.3g} {unit} "
    f"({np.abs(difference).max() / peak:.2g} of the peak)"
)

norm = ImageNormalize(galaxy_pixels[512], stretch=AsinhStretch(0.05))
framing = Figure(figsize=(10, 3.3), layout="constrained")
axes = framing.subplots(1, 3)
for ax, size in zip(axes, (256, 512)):
    shown = ax.imshow(
        galaxy_pixels[size], origin="lower", cmap="magma", norm=norm
    )
    ax.set_title(f"predicted r, {size} px cut-out", fontsize=9)
    framing.colorbar(
        shown, ax=ax, shrink=0.8, label=f"flux per pixel [{unit}]"
    )
limit = 1e-3 * peak
shown = axes[2].imshow(
    difference, origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit
)
axes[2].set_title("256 px − 512 px", fontsize=9)
framing.colorbar(
    shown, ax=axes[2], shrink=0.8, label=f"difference [{unit}]"
)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])

# %%
# Tiles
# -----
# An archive image too large for memory is predicted in tiles.  Each tile carries a
# halo of real context, so its core is computed from the same pixels as in one pass
# over the whole image; nothing is blended.  Here the 512 pixel field is cut into
# 128 pixel tiles (the ``tile`` option only bounds memory).
whole = predictions[512]
tiled = translator.predict(stacks[512], tile=128)
n_tiles = translator.engine.n_tiles(stacks[512].shape, tile=128)
tile_difference = np.asarray(tiled.data, np.float64) - np.asarray(
    whole.data, np.float64
)
print(
    f"{n_tiles} tiles of 128 px with a {translator.engine.halo} px halo: "
    f"largest |tiled - whole| {np.abs(tile_difference).max():.3g} {unit} "
    f"({np.abs(tile_difference).max() / float(whole.data.max()):.2g} of the peak)"
)
print("recorded in the provenance:", tiled.provenance["computation"])

tiles = Figure(figsize=(7.5, 3.4), layout="constrained")
axes = tiles.subplots(1, 2)
shown = axes[0].imshow(whole.data, origin="lower", cmap="magma", norm=norm)
axes[0].set_title("predicted r, 512 px field in one pass", fontsize=9)
tiles.colorbar(
    shown, ax=axes[0], shrink=0.8, label=f"flux per pixel [{unit}]"
)
limit = 1e-3 * float(whole.data.max())  # ±0.1 % of the peak, as above
shown = axes[1].imshow(
    tile_difference, origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit
)
for edge in range(128, 512, 128):  # the tile boundaries
    axes[1].axhline(edge - 0.5, color="0.5", lw=0.5)
    axes[1].axvline(edge - 0.5, color="0.5", lw=0.5)
axes[1].set_title("tiles of 128 px − one pass", fontsize=9)
tiles.colorbar(
    shown, ax=axes[1], shrink=0.8, label=f"difference [{unit}]"
)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])

# %%
# What it means
# -------------
# Cut a galaxy with as much sky as you like, as long as at least half a receptive
# field of it surrounds what you measure: its prediction, and its total flux, do not
# depend on the cut-out.  Survey tiles and mosaics can be predicted whole, in tiles of
# any size, with the same result.
