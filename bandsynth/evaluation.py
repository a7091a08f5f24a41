"""Held-out evaluation of a translator against two baselines, as in the paper's tables.

`evaluate_translator` predicts every galaxy of a data set's split and measures,
with `bandsynth.metrics`, the model and two baselines in the same way:

* ``nearest_input``: the input band nearest in wavelength, copied (in the
  network's scaled space, so it is the paper's "SSIM(input, target)");
* ``linear_colour``: a per-pixel linear colour model, ``target = sum_i c_i input_i``
  in flux, its coefficients fitted by least squares on the training split.

``bandsynth evaluate`` writes the paper-style table (ECSV), prints it and draws
the figures (panels, Gini/M20 densities, calibration).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bands import get_band
from .baseline import fit_linear_colour

__all__ = [
    "EvaluationResult",
    "evaluate_translator",
    "evaluate_robustness",
    "robustness_sets",
    "card_dataset",
    "card_observation_options",
    "metric_space",
    "target_images",
    "input_array",
    "OUTPUT_FILES",
]

log = logging.getLogger(__name__)

METHODS = ("model", "nearest_input", "linear_colour")
#: The files `EvaluationResult.write` writes: the tables, then the figures.
OUTPUT_FILES = ("summary.ecsv", *(f"{m}_per_galaxy.ecsv" for m in METHODS), "panels.png", "gini_kde.png",
                "m20_kde.png", "calibration.png")

# Summary columns that go into a model card, in the paper's order first.
_CARD_COLUMNS = (
    "mae", "ssim", "psnr", "gini_w1", "m20_w1", "dmag_total", "dmag_total_abs", "dmag_aperture", "dmag_aperture_abs",
    "coverage_1sigma", "coverage_2sigma", "n_galaxies", "n_failed",
)


def _with_units(table):
    """A copy of a metrics table whose columns state their units, as a reader of the ECSV file needs them."""
    from .metrics import metric_unit

    table = table.copy()
    for name in table.colnames:
        unit = table.meta.get("flux_unit") if name in ("flux_pred", "flux_true") else metric_unit(name)
        if unit:
            table[name].unit = unit
    return table


@dataclass(frozen=True)
class EvaluationResult:
    """Per-galaxy tables and the paper-style summary of one evaluation.

    Attributes
    ----------
    model : str
        Model name.
    split : str
        Split evaluated.
    per_galaxy : dict of str to `~astropy.table.Table`
        One table per method (``model``, ``nearest_input``, ``linear_colour``).
    summary : `~astropy.table.Table`
        One row per method; W1 distances use global limits shared by all methods.
    examples : list of dict
        A few galaxies (``inputs``, ``truth``, ``prediction``) for figures.
    z_scores : ndarray
        ``(prediction - truth) / sigma`` of the model over the galaxies'
        footprints, detected in a coadd of the truth and the inputs as
        `bandsynth.metrics.compare` finds them (empty without an uncertainty).
    """

    model: str
    split: str
    per_galaxy: dict
    summary: object
    examples: list = field(default_factory=list)
    z_scores: np.ndarray = field(default_factory=lambda: np.empty(0))

    def row(self, method):
        """The summary row of ``method`` as a dict of floats.

        Parameters
        ----------
        method : str
            ``"model"``, ``"nearest_input"`` or ``"linear_colour"``.

        Returns
        -------
        dict
            Every summary column but ``method`` to its value, as plain Python
            numbers (floats; counts such as ``n_galaxies`` stay integers).

        Raises
        ------
        ValueError
            If the summary has no row for ``method``.
        """
        (i,) = np.flatnonzero(np.asarray(self.summary["method"]) == method)
        return {k: _plain(self.summary[k][i]) for k in self.summary.colnames if k != "method"}

    def method_rows(self) -> dict:
        """``{"split": ..., method: {metric: value}}``: the summary as a card stores it.

        Returns
        -------
        dict
            ``"split"`` to the split evaluated, and each method to its card
            metrics (MAE, SSIM, PSNR, W1 distances of Gini and M20, Δm,
            coverages, counts and the SSIM gains).
        """
        out = {"split": self.split}
        for method in map(str, self.summary["method"]):
            row = self.row(method)
            out[method] = {k: row[k] for k in row if k in _CARD_COLUMNS or k.startswith("ssim_gain_")}
        return out

    def card_metrics(self) -> dict:
        """Metrics in the form a model card stores them.

        Returns
        -------
        dict
            ``{"test": self.method_rows()}``, the ``metrics`` entry of a
            `~bandsynth.models.zoo.ModelCard`.
        """
        return {"test": self.method_rows()}

    def write(self, out_dir, *, overwrite=False, figures=True):
        """Write ``summary.ecsv``, ``<method>_per_galaxy.ecsv`` and the PNG figures.

        The figures are ``panels.png`` (example galaxies), ``gini_kde.png``,
        ``m20_kde.png`` and, with uncertainties, ``calibration.png``.

        Parameters
        ----------
        out_dir : str or os.PathLike
            Output folder (created if needed).
        overwrite : bool
            Replace existing files (checked before anything is written); an earlier run's
            figures that this one does not draw are removed, so that none passes for this run's.
        figures : bool
            Also draw the figures.

        Returns
        -------
        list of pathlib.Path
            The files written, tables first.

        Raises
        ------
        FileExistsError
            If a table exists and ``overwrite`` is False.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "summary.ecsv"] + [out / f"{m}_per_galaxy.ecsv" for m in self.per_galaxy]
        for p in [*paths, *(out / name for name in OUTPUT_FILES if name.endswith(".png"))]:
            if p.exists() and not overwrite:
                raise FileExistsError(f"{p} exists; pass overwrite=True (--overwrite) to replace it")
        _with_units(self.summary).write(paths[0], format="ascii.ecsv", overwrite=True)
        for m, table in self.per_galaxy.items():
            _with_units(table).write(out / f"{m}_per_galaxy.ecsv", format="ascii.ecsv", overwrite=True)
        if figures:
            paths.extend(self._figures(out))
        for stale in (out / name for name in OUTPUT_FILES if name.endswith(".png")):
            if stale not in paths:
                stale.unlink(missing_ok=True)
        return paths

    def _figures(self, out):
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        from . import plotting

        written = []
        if self.examples:
            fig = plotting.plot_panel(
                [e["inputs"] for e in self.examples],
                [e["truth"] for e in self.examples],
                [e["prediction"] for e in self.examples],
                sigma=[e["sigma"] for e in self.examples],
            )
            written.append(_save(fig, out / "panels.png", plt))
        table = self.per_galaxy["model"]
        for quantity in ("gini", "m20"):
            values = {"truth": table[f"{quantity}_true"], "prediction": table[f"{quantity}_pred"]}
            fig = plotting.plot_morphology_kde(values, quantity="Gini" if quantity == "gini" else "M20")
            written.append(_save(fig, out / f"{quantity}_kde.png", plt))
        if self.z_scores.size:
            fig = plotting.plot_calibration(self.z_scores)
            written.append(_save(fig, out / "calibration.png", plt))
        return written


def _save(fig, path, plt):
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _plain(value):
    value = value.item() if hasattr(value, "item") else value
    return float(value) if isinstance(value, (float, np.floating)) else value


def _w1_limits(per_galaxy):
    """The common limits of each morphology statistic's distributions (Gini, M20) over every method's table."""
    from .metrics import global_limits

    limits = {}
    for q in ("gini", "m20"):
        values = [np.asarray(t[f"{q}_pred"], float) for t in per_galaxy.values() if f"{q}_pred" in t.colnames]
        # every method's truth column: a method's failed measurement may leave a galaxy out of its truth values
        values += [np.asarray(t[f"{q}_true"], float) for t in per_galaxy.values() if f"{q}_true" in t.colnames]
        finite = [v[np.isfinite(v)] for v in values if np.isfinite(v).any()]
        if finite:
            limits[q] = global_limits(*finite)
    return limits


def _readable(data, indices, output):
    """The galaxies whose images can be read -- indices, stacks, truths -- and ``(index, error)`` of the others: a
    blank or corrupt image fails its galaxy's row, not the evaluation."""
    kept, stacks, truths, unreadable = [], [], [], []
    for i in indices:
        try:
            stack = data.stack(i)
            truth = target_images(data, [i], output, [stack])[0]
        except (OSError, ValueError) as err:
            unreadable.append((i, f"{type(err).__name__}: image {i}: {err}"))
            continue
        kept.append(i)
        stacks.append(stack)
        truths.append(truth)
    if not kept:
        raise ValueError(f"no image could be read; the first: {unreadable[0][1]}")
    return kept, stacks, truths, unreadable


def _with_unreadable(table, unreadable, order):
    """``table`` and a row per galaxy that could not be read -- its ``image`` and ``error``; NaN, -1 (as
    `~bandsynth.metrics.evaluate_pairs` marks a missing count) or empty elsewhere -- in the ``order`` of the images."""
    from astropy.table import Table, vstack

    if not unreadable:
        return table
    out = vstack([table, Table({"image": [i for i, _ in unreadable], "error": [e for _, e in unreadable]})],
                 join_type="outer", metadata_conflicts="silent")
    fills = {"f": np.nan, "i": -1, "u": 0, "b": False}
    for name in out.colnames:
        if getattr(out[name], "mask", None) is not None and np.any(out[name].mask):
            out[name] = out[name].filled(fills.get(out[name].dtype.kind, ""))
    position = {i: k for k, i in enumerate(order)}
    out = Table(out, masked=False)[np.argsort([position[i] for i in out["image"]], kind="stable")]
    out.meta["n_failed"] = int(sum(bool(e) for e in out["error"]))
    return out


def evaluate_translator(translator, data, *, split="test", indices=None, linear_coefficients=None, max_images=None,
                        n_examples=4, progress=True):
    """Evaluate ``translator`` and both baselines on ``split`` of ``data``.

    Scored against the noise-free truth where the data set has one (survey layer, ``has_truth``),
    against the observed output band otherwise; the baselines read the inputs as the model does
    (masked pixels filled).  A galaxy whose images cannot be read fails its rows (``error``).

    Parameters
    ----------
    translator : `~bandsynth.Translator`
        A model of one mapping; of an any-band model, one request of it
        (``model.task(inputs=[...], output=BAND)``).
    data : data set
        With splits (`bandsynth.datasets.make_dataset`, `~bandsynth.datasets.open_dataset`).
    split : str
        The split to evaluate (the linear colour baseline is fitted on ``"train"``).
    indices : sequence of int, optional
        Evaluate these images of ``data`` instead of a split (``split`` then only
        labels the result).
    linear_coefficients : sequence of float, optional
        Coefficients of the linear colour baseline, one per input band, instead of
        fitting them on ``data``'s training split (e.g. those fitted on the
        model's own training data, for a shifted population).
    max_images : int, optional
        Evaluate at most this many images.
    n_examples : int
        Galaxies kept for figures.
    progress : bool
        Progress bars.

    Returns
    -------
    EvaluationResult

    Raises
    ------
    ValueError
        An any-band model (evaluate one of its requests), or no image to evaluate or to read.
    """
    from astropy.table import Table, vstack

    from .metrics import evaluate_pairs, footprint_z_scores, summarize
    from .morphology import detection_footprint

    if translator.card.outputs:
        raise ValueError(f"model {translator.name!r} predicts any of {', '.join(translator.card.outputs)}: evaluate "
                         "one request, translator.task(inputs=[...], output=BAND)")
    indices = list(data.indices(split) if indices is None else indices)[:max_images]
    if not indices:
        raise ValueError(f"empty data set: no {split!r} images to evaluate")
    inputs, output = translator.inputs, translator.output
    scalings, refs_of = metric_space(data, inputs, output)
    order = indices
    indices, stacks, truths, unreadable = _readable(data, indices, output)
    preds = _predict_all(translator, stacks, progress=progress)
    input_images = [{b: s[b] for b in inputs} for s in stacks]
    refs = refs_of(stacks)
    filled = [{b: input_array(s[b]) for b in inputs} for s in stacks]  # the baselines read what the model reads

    nearest = min(inputs, key=lambda b: abs(np.log(get_band(b).wavelength / get_band(output).wavelength)))
    copied = [
        scalings[output].inverse(scalings[nearest].forward(f[nearest], reference=r), reference=r)
        for f, r in zip(filled, refs)
    ]
    coef = fit_linear_colour(data, inputs, output) if linear_coefficients is None else np.asarray(linear_coefficients, float)
    linear = [sum(c * f[b] for c, b in zip(coef, inputs)) for f in filled]

    # Baseline images are plain arrays: "target" tells compare() which scaling is the output's.
    common = dict(inputs=input_images, scaling={**scalings, "target": scalings[output]}, references=refs,
                  progress=progress)
    per_galaxy = {
        "model": evaluate_pairs(preds, truths, **common),
        "nearest_input": evaluate_pairs(copied, truths, **common),
        "linear_colour": evaluate_pairs(linear, truths, **common),
    }
    for name, table in per_galaxy.items():
        table["image"] = indices
        per_galaxy[name] = table = _with_unreadable(table, unreadable, order)
        table.meta["method"] = name
        table.meta["flux_unit"] = translator.card.unit
    per_galaxy["linear_colour"].meta["coefficients"] = dict(zip(inputs, map(float, coef)))
    per_galaxy["nearest_input"].meta["band"] = nearest
    limits = _w1_limits(per_galaxy)
    rows = []
    for name, table in per_galaxy.items():
        row = summarize(table, limits=limits)
        row.add_column([name], name="method", index=0)
        rows.append(row)
    summary = vstack(rows, join_type="outer")
    summary.meta.update({"model": translator.name, "split": split, "w1_limits": limits})
    examples = [{"inputs": {b: np.asarray(s[b].data) for b in inputs}, "truth": np.asarray(t.data),
                 "prediction": np.asarray(p.data),
                 "sigma": None if p.uncertainty is None else np.asarray(p.uncertainty.array)}
                for s, t, p in list(zip(stacks, truths, preds))[:n_examples]]
    # the galaxy as compare() finds it: detected in a coadd of the truth and the inputs (as the model read them)
    footprints = [detection_footprint([t, *f.values()]) for t, f in zip(truths, filled)]
    z = footprint_z_scores(preds, truths, footprints=footprints) if preds[0].uncertainty is not None else np.empty(0)
    return EvaluationResult(translator.name, split, per_galaxy, Table(summary), examples, z)


def target_images(data, indices, band, stacks=None):
    """The images of ``band`` a prediction is scored against: the noise-free truth where ``data`` has one.

    Parameters
    ----------
    data : data set
        With ``stack(i)``; survey-layer data sets (``has_truth``) also with ``stack(i, truth=True)``.
    indices : sequence of int
        The images.
    band : str
        The predicted band.
    stacks : sequence of `~bandsynth.BandStack`, optional
        ``data.stack(i)`` of the same images, if already read.

    Returns
    -------
    list of `~astropy.nddata.NDData`
        One image of ``band`` per index.
    """
    if getattr(data, "has_truth", False):
        return [data.stack(int(i), truth=True)[band] for i in indices]
    stacks = [data.stack(int(i)) for i in indices] if stacks is None else stacks
    return [s[band] for s in stacks]


def input_array(image):
    """An input image as a float64 array with its masked and non-finite pixels filled (as predict does).

    Parameters
    ----------
    image : `~astropy.nddata.NDData`
        One band of a `~bandsynth.BandStack`.

    Returns
    -------
    numpy.ndarray
    """
    from .datasets.base import fill_masked_cube

    data = np.asarray(image.data, dtype=np.float64)
    mask = None if image.mask is None else np.asarray(image.mask, dtype=bool)[None]
    return np.asarray(fill_masked_cube(data[None], mask)[0], dtype=np.float64)


def metric_space(data, inputs, output):
    """The space the paper's image metrics (SSIM, PSNR, MAE) are measured in, independent of any model.

    Every band of a galaxy divided by one reference flux taken from its input
    images (`bandsynth.scaling.reference_flux`), then asinh-scaled with per-band
    parameters fitted on ``data``'s training split (``fit_scalings_for(...,
    reference="input")``).  It judges images only: since bandsynth 0.2 the models
    themselves use a fixed physical scaling, so every model and baseline is scored
    in this one space, as the zoo's earlier cards were.

    Parameters
    ----------
    data : data set
        A data set with a ``"train"`` split holding the ``inputs`` and ``output``
        bands.
    inputs : sequence of str
        The input bands, which set each galaxy's reference flux.
    output : str
        The predicted band.

    Returns
    -------
    scalings : dict of str to AsinhScaling
        Per-band scalings, in units of the reference flux.
    references : callable
        ``references(stacks)``: the reference flux of each stack.
    """
    from .datasets.torch_data import fit_scalings_for

    scalings = fit_scalings_for(data, inputs, output, split="train", reference="input")

    def references(stacks):
        return [s.reference_flux(bands=list(inputs)) for s in stacks]

    return scalings, references


def card_dataset(card, *, progress=True, seed=None, n_galaxies=None, pixel_scale=None):
    """Rebuild the mock universe a model card says its model was trained on (all splits).

    A survey-layer data set (``data_info["survey"]``: the preset or mapping of band to
    survey) is rebuilt with the same survey, pixel scale, depth offset, dust and grid
    offsets, and so holds the noise-free truth the model is scored against.

    Parameters
    ----------
    card : `~bandsynth.models.zoo.ModelCard`
        A card whose ``training["data_info"]`` describes a mock data set.
    progress : bool
        Progress bar while rendering.
    seed, n_galaxies : int, optional
        Draw a *fresh* universe of the same kind instead: another seed gives galaxies
        the model has never seen (e.g. to calibrate its uncertainty on).
    pixel_scale : float, optional
        Render the same galaxies on pixels of this many arcsec instead of the training
        images' (e.g. to measure how a model fares off its pixel scale).  A survey-layer
        stamp keeps its field (its side scaled to an even number of pixels); the ideal and
        simple survey modes draw a galaxy to a stamp's side in pixels, so their stamps keep
        their side and show the galaxy in a wider (or narrower) field.

    Returns
    -------
    MockDataset
        With the card's inputs and output, and the same train/validation/test split.
    """
    from .datasets import make_dataset

    info = dict(card.training.get("data_info", {}))
    if info.get("source") != "bandsynth.datasets.mock":
        raise ValueError(
            f"model {card.name!r} was not trained on the built-in mock universe "
            f"(training data: {card.training.get('data', 'unknown')}); evaluate it on a stored data set"
        )
    survey = info.get("survey")
    if survey is None:
        options = dict(mode=info.get("mode", card.mode))
        if "family" in info:  # a physics family other than the default (`bandsynth.datasets.mock.families`)
            options["family"] = str(info["family"])
    else:  # the survey layer as each of its galaxies is observed
        observed = card_observation_options(card)
        options = {k: observed[k] for k in ("survey", "depth_offset", "dust", "family", "redshift", "r_mag_range")}
        if info.get("grid_offsets"):  # native grids offset from the common grid by fractions of a pixel
            options["grid_offsets"] = float(info["grid_offsets"])
    if "split_fractions" in info:
        options["split_fractions"] = tuple(float(f) for f in info["split_fractions"])
    size, trained_scale = int(info.get("size", 128)), info.get("pixel_scale")
    if pixel_scale is not None and survey is not None:  # the same field on other pixels
        size = 2 * max(4, round(size * float(trained_scale or card.pixel_scale) / float(pixel_scale) / 2))
    return make_dataset(
        int(info["n_galaxies"] if n_galaxies is None else n_galaxies),
        seed=int(info.get("seed", 0) if seed is None else seed), bands=[*card.inputs, card.output],
        size=size, views=int(info.get("views", 1)), pixel_scale=trained_scale if pixel_scale is None else pixel_scale,
        progress=progress, **options,
    )


def card_observation_options(card):
    """`~bandsynth.datasets.mock.observe_galaxy`'s options for the survey-layer universe a model was trained on.

    One galaxy at a time, as the model's training images show galaxies (`card_dataset`
    rebuilds the whole data set): to observe chosen galaxies or move their grids
    (``grid_offsets=``) beside the model's own figures.

    Parameters
    ----------
    card : `~bandsynth.models.zoo.ModelCard`
        A card whose ``training["data_info"]`` describes a survey-layer mock data set.

    Returns
    -------
    dict
        ``survey``, ``bands`` (the inputs, then the output), ``size``, ``pixel_scale``,
        ``depth_offset``, ``dust``, ``family``, ``redshift`` and ``r_mag_range``.

    Raises
    ------
    ValueError
        The model was not trained on the survey layer of the mock universe.

    Examples
    --------
    >>> from bandsynth import Translator
    >>> from bandsynth.datasets.mock import observe_galaxy
    >>> card = Translator.load("g_z_to_r").card
    >>> options = card_observation_options(card)
    >>> options["survey"], options["bands"], options["size"]
    ('decals', ['DECam_g', 'DECam_z', 'DECam_r'], 64)
    >>> observe_galaxy(7, **options).observed.names  # bands sorted by wavelength
    ('DECam_g', 'DECam_r', 'DECam_z')
    """
    info = dict(card.training.get("data_info", {}))
    if info.get("source") != "bandsynth.datasets.mock" or "survey" not in info:
        raise ValueError(f"model {card.name!r} was not trained on the survey layer of the mock universe "
                         f"(its card's training data_info names no survey)")
    return dict(survey=info["survey"], bands=[*card.inputs, card.output], size=int(info.get("size", 128)),
                pixel_scale=float(info.get("pixel_scale") or card.pixel_scale),
                depth_offset=float(info.get("depth_offset", 0.0)), dust=bool(info.get("dust", True)),
                family=str(info.get("family", "default")), redshift=bool(info.get("redshift", False)),
                r_mag_range=tuple(float(f) for f in info["r_mag_range"]) if "r_mag_range" in info else None)


#: Shifted populations of the robustness check: key -> (mock galaxy class, description).
SHIFTED_POPULATIONS = {
    "starbursts": ("irregular", "only starbursts (irregular, clumpy, log sSFR > -9.5)"),
    "edge_on": ("edge-on", "only edge-on disks"),
}


def robustness_sets(card, *, n_galaxies=400, max_images=60, seed=1, progress=False):
    """Data sets a model was not trained on, for the robustness rows of its card.

    From a fresh mock universe (``seed`` differs from the training universe's, so
    every galaxy is new): the same bands in the *other* observing mode, and
    galaxies of the model's own mode restricted to one class
    (:data:`SHIFTED_POPULATIONS`).

    Parameters
    ----------
    card : `~bandsynth.models.zoo.ModelCard`
        The model's card: its bands, observing mode and training image size and
        pixel scale.
    n_galaxies : int
        Galaxies of the model's own mode drawn to find those of each shifted
        class.
    max_images : int
        Images per set at most (the other-mode set has exactly this many).
    seed : int
        Seed of the new mock universe.
    progress : bool
        Progress bars while rendering.

    Returns
    -------
    dict
        Key (``"<other mode>_mode"``, ``"starbursts"``, ``"edge_on"``) ->
        ``(description, data set, image indices)``; the indices may be empty
        when no galaxy of a class was drawn.
    """
    from .datasets import make_dataset

    bands = [*card.inputs, card.output]
    info = dict(card.training.get("data_info", {}))
    common = dict(bands=bands, size=int(info.get("size", 128)), views=1, pixel_scale=info.get("pixel_scale"),
                  progress=progress)
    other = "survey" if card.mode == "ideal" else "ideal"
    sets = {}
    other_data = make_dataset(max_images, seed=seed, mode=other, **common)
    sets[f"{other}_mode"] = (
        f"{other}-mode images of new galaxies (trained on {card.mode} mode)", other_data, list(range(max_images)),
    )
    own = make_dataset(n_galaxies, seed=seed, mode=card.mode, **common)
    classes = np.asarray(own.manifest["galaxy_class"]).astype(str)
    for key, (galaxy_class, description) in SHIFTED_POPULATIONS.items():
        chosen = np.flatnonzero(classes == galaxy_class)[:max_images]
        sets[key] = (f"{description}, new galaxies", own, [int(i) for i in chosen])
    return sets


def evaluate_robustness(translator, *, linear_coefficients=None, n_galaxies=400, max_images=60, seed=1,
                        progress=True):
    """Evaluate ``translator`` and the baselines on :func:`robustness_sets`.

    Parameters
    ----------
    translator : `~bandsynth.Translator`
    linear_coefficients : sequence of float or dict, optional
        The linear colour baseline's coefficients (per input band) fitted on the training data
        (``result.per_galaxy["linear_colour"].meta["coefficients"]`` of the test
        evaluation); fitted on the new universe if not given.
    n_galaxies, max_images, seed : int
        Size and seed of the new universe; images evaluated per row.
    progress : bool
        Progress bars.

    Returns
    -------
    dict
        Key -> ``{"description", "split", method: {metric: value}}``, as stored in
        a card's ``metrics["robustness"]``.
    """
    rows = {}
    coefficients = linear_coefficients
    if isinstance(coefficients, dict):
        coefficients = [coefficients[b] for b in translator.inputs]
    sets = robustness_sets(translator.card, n_galaxies=n_galaxies, max_images=max_images, seed=seed)
    for key, (description, data, indices) in sets.items():
        if not indices:
            log.warning("robustness row %s: no galaxies of that kind among %d; skipped", key, n_galaxies)
            continue
        result = evaluate_translator(translator, data, split=key, indices=indices,
                                     linear_coefficients=coefficients, n_examples=0, progress=progress)
        rows[key] = {"description": description, **result.method_rows()}
    return rows


def _predict_all(translator, stacks, *, progress, chunk=32):
    from tqdm.auto import tqdm

    preds = []
    bar = tqdm(total=len(stacks), desc=f"predicting {translator.output}", unit="galaxy", disable=not progress)
    for start in range(0, len(stacks), chunk):
        part = [s.select(translator.inputs) for s in stacks[start : start + chunk]]
        preds.extend(translator.predict(part, check_domain=False))
        bar.update(len(part))
    bar.close()
    return preds
