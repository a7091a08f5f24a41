"""
Morphology of predicted galaxies: Gini and M20
==============================================

A synthetic band is only useful for morphology if the *population* of predicted
galaxies has the structure of the real one -- no smoothing into blobs, no collapse to
one typical shape.  The method paper checks this with the distributions of two
non-parametric statistics (its Figures 2, 4 and 6):

* **Gini** -- how unequally the light is shared among a galaxy's pixels
  (0: uniform; 1: all light in one pixel);
* **M20** -- the second moment of the brightest 20 % of the light relative to the
  total (around -2.5 for a smooth concentrated galaxy, around -1 for light spread in
  clumps),

and the Wasserstein-1 distance W1 between the distributions of predictions and
truths after one shared min-max scaling (0 for identical, at most 1 for disjoint
distributions).
"""

# %%
# The model and unseen galaxies
# -----------------------------
# The shipped ``nuv_k_to_r_paper`` model.  The galaxies come from another universe seed
# than any training data.
import numpy as np

from bandsynth import Translator
from bandsynth.datasets import make_dataset
from bandsynth.metrics import global_limits, wasserstein1
from bandsynth.morphology import gini_m20
from bandsynth.plotting import plot_morphology_kde

translator = Translator.load("nuv_k_to_r_paper")
card = translator.card
size = int(card.training.get("data_info", {}).get("size", 128))

# Fewer galaxies for larger stamps, so that this example stays under a minute.
galaxies = make_dataset(
    30 if size <= 64 else 16,
    seed=77,
    bands=["NUV", "Ks", "r"],
    size=size,
    mode=card.mode,
    pixel_scale=card.pixel_scale,
)
stacks = [galaxies.stack(i) for i in range(len(galaxies))]
predictions = translator.predict(
    [s.select(translator.inputs) for s in stacks],
    uncertainty=False,
    check_domain=False,
)
classes, counts = np.unique(
    galaxies.manifest["galaxy_class"], return_counts=True
)
print(
    len(predictions),
    "galaxies predicted:",
    ", ".join(f"{n} {c}" for c, n in zip(classes, counts)),
)

# %%
# Gini and M20 of every image
# ---------------------------
# `bandsynth.morphology.gini_m20` follows statmorph's definitions step by step
# (segmentation with photutils, Petrosian radii, the smoothed "Gini segmap") at a
# fraction of its cost, for whole stacks of images.  Each image is measured on its own
# segmentation, as the paper does.  statmorph flags many of these stamps as "bad"
# (flag 2), mostly because the galaxies fill the stamp; like ``bandsynth evaluate`` we
# count those flags and keep the measurements.
images = {
    "input NUV": galaxies.cube("NUV"),
    "input Ks": galaxies.cube("Ks"),
    "true r": galaxies.cube("r"),
    "predicted r": np.stack([p.data for p in predictions]),
}
measured = {
    label: gini_m20(np.asarray(cube, dtype=float))
    for label, cube in images.items()
}
for label, m in measured.items():
    print(
        f"{label:>12}: median Gini {np.nanmedian(m.gini):.3f}, "
        f"M20 {np.nanmedian(m.m20):.3f}; statmorph flag >= 2 (bad) "
        f"for {int(np.sum(m.flag >= 2))} of {len(m.flag)}"
    )

# %%
# The distributions
# -----------------
# Kernel densities of the inputs, the truth and the prediction, as in the paper.  The
# two inputs bracket the target: the prediction should follow the truth, not either
# input.
values = {
    quantity: {
        label: getattr(m, attr)[np.isfinite(getattr(m, attr))]
        for label, m in measured.items()
    }
    for quantity, attr in (("Gini", "gini"), ("M20", "m20"))
}
kde_figure = plot_morphology_kde(values, quantity=None)

# %%
# W1 distances
# ------------
# One min-max scaling per statistic, shared by all rows so the numbers compare.  The
# paper reports W1(Gini) of 0.006-0.038 and W1(M20) of 0.006-0.010 for its
# interpolation models on Illustris images.
for quantity in ("Gini", "M20"):
    samples = values[quantity]
    limits = global_limits(*samples.values())
    truth = samples["true r"]
    print(
        quantity,
        {
            label: round(wasserstein1(v, truth, limits=limits), 4)
            for label, v in samples.items()
            if label != "true r"
        },
    )

# %%
# The Gini-M20 plane
# ------------------
# Lotz, Primack & Madau (2004) separate galaxy types in this plane; a good model moves
# each galaxy little from its true position.
from matplotlib.figure import Figure  # noqa: E402

plane = Figure(figsize=(4.6, 4.0), layout="constrained")
ax = plane.add_subplot()
true_m, pred_m = measured["true r"], measured["predicted r"]
both = np.isfinite(true_m.gini + true_m.m20 + pred_m.gini + pred_m.m20)
for i in np.flatnonzero(both):
    ax.plot(
        [true_m.m20[i], pred_m.m20[i]],
        [true_m.gini[i], pred_m.gini[i]],
        color="0.7",
        lw=0.8,
    )
ax.scatter(true_m.m20[both], true_m.gini[both], s=18, label="true r")
ax.scatter(
    pred_m.m20[both],
    pred_m.gini[both],
    s=18,
    marker="x",
    label="predicted r",
)
ax.set_xlabel("M20")
ax.set_ylabel("Gini")
ax.invert_xaxis()
ax.legend(fontsize=8)
