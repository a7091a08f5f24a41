"""Paper-style figures: image panels, Gini/M20 density plots, calibration plots.

Every function builds and returns a `matplotlib.figure.Figure` without
touching pyplot's global state (no ``plt.show``, no open-figure bookkeeping),
so it works the same in scripts, notebooks and on headless machines: save it
with ``fig.savefig("panel.png")``.

Examples
--------
>>> import numpy as np
>>> from bandsynth.plotting import plot_panel
>>> y, x = np.mgrid[:32, :32]
>>> truth = np.exp(-np.hypot(x - 16, y - 16) / 4)
>>> fig = plot_panel({"g": truth * 0.8, "z": truth * 1.3}, truth, truth * 1.01)
>>> sum(len(ax.images) for ax in fig.axes)   # g | z | truth | prediction | residual
5
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning

__all__ = ["plot_panel", "plot_synthetic", "plot_morphology_kde", "plot_calibration"]


def _figure(figsize):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _values(img):
    """Float array from an array, masked array, NDData/CCDData, Quantity or astropy uncertainty (as σ); masked
    pixels become nan."""
    from astropy.nddata import InverseVariance, NDUncertainty, StdDevUncertainty, VarianceUncertainty
    from astropy.utils.masked import Masked

    mask = None
    if isinstance(img, NDUncertainty):  # a variance drawn or used as σ would be off by its square
        as_std = isinstance(img, (VarianceUncertainty, InverseVariance))
        data = (img.represent_as(StdDevUncertainty) if as_std else img).array
    elif isinstance(img, Masked):
        data, mask = img.unmasked, img.mask
    elif np.ma.isMaskedArray(img):
        data, mask = np.ma.getdata(img), np.ma.getmaskarray(img)
    elif isinstance(img, np.ndarray):
        data = img
    else:
        data, mask = getattr(img, "data", img), getattr(img, "mask", None)
    arr = np.array(getattr(data, "value", data), dtype=float)
    if mask is not None:
        arr[np.asarray(mask, dtype=bool)] = np.nan
    return arr


def _array(img, name):
    """2-D float array (`_values`)."""
    arr = _values(img)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D image, got shape {arr.shape}")
    return arr


def _as_rows(value, name):
    """One galaxy or several: list of 2-D images (or None)."""
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.ndim == 3:
        return [value[i] for i in range(value.shape[0])]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _asinh_norm(images, *, a=0.1, percentile=99.5):
    """Shared asinh display stretch for a set of images (same vmin/vmax for all)."""
    from astropy.visualization import AsinhStretch, ImageNormalize

    finite = np.concatenate([im[np.isfinite(im)].ravel() for im in images if im is not None])
    if finite.size == 0:
        vmin, vmax = 0.0, 1.0
    else:
        # black at about the sky level, so faint, noisy bands still show their galaxy
        med = float(np.median(finite))
        vmin = max(float(np.percentile(finite, 0.5)), med - 1.4826 * float(np.median(np.abs(finite - med))))
        vmax = float(np.percentile(finite, percentile))
        if vmax <= vmin:
            vmax = vmin + 1.0
    return ImageNormalize(vmin=vmin, vmax=vmax, stretch=AsinhStretch(a=a), clip=True)


def _show(ax, img, *, norm=None, cmap="magma", title=None, vmin=None, vmax=None):
    im = ax.imshow(img, origin="lower", cmap=cmap, norm=norm, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return im


def _unit_text(unit):
    if unit is None:
        return None
    text = unit.to_string() if hasattr(unit, "to_string") else str(unit)
    return text or "dimensionless"


def _colorbar(fig, im, ax, label, *, stretched=False):
    """A colour bar with its unit; a stretched (asinh) one gets ticks evenly spaced on the bar.

    Matplotlib places ticks evenly in data values, which under an asinh stretch bunches
    them at the bright end of the bar, where the labels overlap.
    """
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator

    cbar = fig.colorbar(im, ax=ax, shrink=0.8)
    if stretched and im.norm is not None:
        ticks = np.asarray(im.norm.inverse(np.linspace(0.0, 1.0, 4)), dtype=float).ravel()
        cbar.set_ticks(ticks)
        cbar.ax.yaxis.set_major_formatter(FormatStrFormatter("%.2g"))
    else:
        cbar.ax.yaxis.set_major_locator(MaxNLocator(nbins=4, symmetric=True))
    cbar.ax.tick_params(labelsize=7)
    if label:
        cbar.set_label(label, fontsize=8)
    return cbar


def plot_panel(inputs, truth, prediction, sigma=None, *, band=None, titles=None, residual=True, stretch=0.1,
               row_labels=None, figsize=None, unit=None):  # fmt: skip
    """Inputs | truth | prediction | residual | σ panels, one row per galaxy.

    Parameters
    ----------
    inputs : mapping band -> 2-D image, or list of such mappings (one per row)
        The input bands; may be empty.
    truth, prediction : 2-D image, list of 2-D images, or 3-D array (one per row)
        Images may be arrays, NDData or CCDData; masked pixels are left blank.
        ``truth`` may be None (no truth and no residual columns).
    sigma : same kinds, optional
        Predicted 1-sigma uncertainty: adds a σ column.
    band : str, optional
        Name of the predicted band, for the titles ("true r", "predicted r").
    titles : mapping column -> title, optional
        Override column titles (keys: band names, "truth", "prediction",
        "residual", "sigma").
    residual : bool
        Add a truth − prediction column (as in the paper's figures).
    stretch : float
        ``a`` of the asinh display stretch (`astropy.visualization.AsinhStretch`);
        each image column of a row shares one normalisation with the truth so
        brightness compares directly.
    row_labels : list of str, optional
        Label for each row.
    figsize : (float, float), optional
    unit : str or `~astropy.units.Unit`, optional
        Flux unit of the images, shown on the colour bars (default: the
        prediction's ``unit`` when it has one).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[:24, :24]
    >>> t = np.exp(-np.hypot(x - 12, y - 12) / 3)
    >>> fig = plot_panel([{"NUV": t}, {"NUV": t}], [t, t], [t, t], sigma=[0.1 * t, 0.1 * t])
    >>> sum(len(ax.images) for ax in fig.axes)   # 2 rows x (NUV, truth, prediction, residual, sigma)
    10
    """
    preds, truths, sigmas, ins, unit = _panel_rows(inputs, truth, prediction, sigma, unit)
    bands, columns, default_titles = _panel_columns(ins, truths, sigmas, band=band, titles=titles, residual=residual)
    n_rows, n_cols = len(preds), len(columns)
    fig = _figure(figsize or (2.0 * n_cols + 0.6, 2.0 * n_rows + 0.3))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r in range(n_rows):
        pred, tru, sig, in_arrs = _panel_arrays(preds[r], truths[r], sigmas[r], ins[r])
        norm = _asinh_norm([tru if tru is not None else pred, pred], a=stretch)
        for c, col in enumerate(columns):
            title = default_titles[col] if r == 0 else None
            _panel_cell(fig, axes[r, c], col, title, bands=bands, pred=pred, tru=tru, sig=sig, in_arrs=in_arrs,
                        norm=norm, stretch=stretch, unit=unit)  # fmt: skip
        if row_labels is not None and r < len(row_labels):
            axes[r, 0].set_ylabel(str(row_labels[r]), fontsize=9)
    return fig


def _panel_rows(inputs, truth, prediction, sigma, unit):
    """:func:`plot_panel`'s arguments as one entry per row: (preds, truths, sigmas, inputs, unit text)."""
    preds = _as_rows(prediction, "prediction")
    if preds is None:
        raise ValueError("prediction is required")
    unit = _unit_text(unit if unit is not None else getattr(preds[0], "unit", None))
    n_rows = len(preds)
    truths = _as_rows(truth, "truth") or [None] * n_rows
    sigmas = _as_rows(sigma, "sigma") or [None] * n_rows
    if isinstance(inputs, Mapping) or inputs is None:
        ins = [dict(inputs or {})] * n_rows
    else:
        ins = [dict(i or {}) for i in inputs]
    for name, seq in (("truth", truths), ("sigma", sigmas), ("inputs", ins)):
        if len(seq) != n_rows:
            raise ValueError(f"{name} has {len(seq)} rows but prediction has {n_rows}")
    return preds, truths, sigmas, ins, unit


def _panel_columns(ins, truths, sigmas, *, band, titles, residual):
    """The input bands, the columns of :func:`plot_panel` and the title of each column."""
    bands = list(dict.fromkeys(b for row in ins for b in row))
    has_truth = any(t is not None for t in truths)
    has_sigma = any(s is not None for s in sigmas)
    columns = bands + (["truth"] if has_truth else []) + ["prediction"]
    if residual and has_truth:
        columns.append("residual")
    if has_sigma:
        columns.append("sigma")
    default_titles = {"truth": "truth", "prediction": "prediction", "residual": "truth − prediction", "sigma": "σ"}
    if band:
        default_titles.update(truth=f"true {band}", prediction=f"predicted {band}")
    default_titles.update({b: f"input {b}" for b in bands})
    default_titles.update(dict(titles or {}))
    return bands, columns, default_titles


def _panel_arrays(pred, truth, sigma, inputs):
    """One row's images as 2-D arrays (truth and sigma may be None), all of the prediction's shape."""
    pred = _array(pred, "prediction")
    tru = _array(truth, "truth") if truth is not None else None
    sig = _array(sigma, "sigma") if sigma is not None else None
    in_arrs = {b: _array(im, f"input {b}") for b, im in inputs.items()}
    for arr, nm in [(tru, "truth"), (sig, "sigma"), *[(a, f"input {b}") for b, a in in_arrs.items()]]:
        if arr is not None and arr.shape != pred.shape:
            raise ValueError(f"{nm} has shape {arr.shape} but prediction has shape {pred.shape}")
    return pred, tru, sig, in_arrs


def _panel_cell(fig, ax, col, title, *, bands, pred, tru, sig, in_arrs, norm, stretch, unit):
    """Draw column ``col`` of one row of :func:`plot_panel` on ``ax``."""
    if col in in_arrs:
        _show(ax, in_arrs[col], norm=_asinh_norm([in_arrs[col]], a=stretch), title=title)
    elif col in bands:
        ax.set_axis_off()
    elif col == "truth":
        if tru is None:
            ax.set_axis_off()
        else:
            _show(ax, tru, norm=norm, title=title)
    elif col == "prediction":
        _show(ax, pred, norm=norm, title=title)
    elif col == "residual":
        if tru is None:
            ax.set_axis_off()
            return
        res = tru - pred
        finite = np.abs(res[np.isfinite(res)])
        lim = float(np.percentile(finite, 99.5)) if finite.size else 1.0
        lim = lim if lim > 0 else 1.0
        im = _show(ax, res, cmap="RdBu_r", vmin=-lim, vmax=lim, title=title)
        _colorbar(fig, im, ax, unit)
    elif col == "sigma":
        if sig is None:
            ax.set_axis_off()
            return
        im = _show(ax, sig, cmap="viridis", norm=_asinh_norm([sig], a=stretch), title=title)
        _colorbar(fig, im, ax, unit, stretched=True)


def plot_synthetic(synthetic_band, *, truth=None, inputs=None, **kwargs):
    """Panel for a :class:`~bandsynth.synthetic.SyntheticBand`.

    Shows the inputs (mapping or `~bandsynth.stack.BandStack`), the truth (if
    any), the prediction, the residual and the predicted σ.

    Parameters
    ----------
    synthetic_band : SyntheticBand (or any NDData)
    truth : 2-D image, NDData or CCDData, optional
    inputs : mapping band -> image, or BandStack, optional
    **kwargs
        Passed to :func:`plot_panel`.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.nddata import NDData, StdDevUncertainty
    >>> img = np.ones((16, 16))
    >>> fig = plot_synthetic(NDData(img, uncertainty=StdDevUncertainty(0.1 * img)))
    >>> sum(len(ax.images) for ax in fig.axes)   # prediction | sigma
    2
    """
    if inputs is not None and not isinstance(inputs, Mapping):
        if hasattr(inputs, "names") and hasattr(inputs, "__getitem__"):
            inputs = {name: inputs[name] for name in inputs.names}
        else:
            raise TypeError(f"inputs must be a mapping of band -> image or a BandStack, got {type(inputs).__name__}")
    unc = getattr(synthetic_band, "uncertainty", None)
    sigma = None if unc is None else _array(unc, "uncertainty")
    kwargs.setdefault("band", getattr(getattr(synthetic_band, "band", None), "name", None))
    kwargs.setdefault("unit", getattr(synthetic_band, "unit", None))
    return plot_panel(inputs or {}, truth, synthetic_band, sigma, **kwargs)


def _kde_curve(values, grid, bw_method):
    from scipy.stats import gaussian_kde

    if values.size < 2 or np.ptp(values) == 0:
        return None
    return gaussian_kde(values, bw_method=bw_method)(grid)


def plot_morphology_kde(values, *, quantity="Gini", ax=None, bw_method=None, fill=True, figsize=None):
    """Kernel-density curves of Gini or M20 (the paper's Figures 2, 4 and 6).

    Parameters
    ----------
    values : mapping label -> 1-D array
        E.g. ``{"input NUV": ..., "input K": ..., "truth R": ..., "predicted R": ...}``.
        Non-finite values (failed measurements) are dropped with a warning.
        With ``quantity=None``, a mapping quantity -> (mapping label -> array)
        draws one panel per quantity.
    quantity : str or None
        Axis label ("Gini", "M20", ...).
    ax : matplotlib Axes, optional
        Draw into this axes (single quantity only); its figure is returned.
    bw_method : str, float or None
        Bandwidth for `scipy.stats.gaussian_kde`.
    fill : bool
        Shade under each curve.
    figsize : (float, float), optional
        Figure size in inches (default 4.2 x 3.2 per panel); ignored with ``ax``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, one axes per quantity; each curve's legend gives its count.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> fig = plot_morphology_kde({"truth": rng.normal(0.5, 0.05, 200), "prediction": rng.normal(0.52, 0.05, 200)})
    >>> len(fig.axes), len(fig.axes[0].lines)
    (1, 2)
    """
    if not isinstance(values, Mapping) or not values:
        raise ValueError("values must be a non-empty mapping of label -> array")
    if quantity is None:
        panels = values
        if not all(isinstance(v, Mapping) for v in panels.values()):
            raise TypeError("with quantity=None, values must map quantity -> (label -> array)")
        fig = _figure(figsize or (4.2 * len(panels), 3.2))
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for a, (q, vals) in zip(axes, panels.items()):
            plot_morphology_kde(vals, quantity=q, ax=a, bw_method=bw_method, fill=fill)
        return fig
    if ax is None:
        fig = _figure(figsize or (4.2, 3.2))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    clean = {}
    for label, v in values.items():
        arr = np.asarray(v, dtype=float).ravel()
        good = np.isfinite(arr)
        if not good.all():
            warnings.warn(f"{quantity} of {label!r}: {int((~good).sum())} non-finite value(s) dropped",
                          AstropyUserWarning, stacklevel=2)  # fmt: skip
        clean[str(label)] = arr[good]
    allv = np.concatenate([v for v in clean.values() if v.size] or [np.array([0.0, 1.0])])
    lo, hi = float(allv.min()), float(allv.max())
    pad = 0.1 * (hi - lo) if hi > lo else 0.5
    grid = np.linspace(lo - pad, hi + pad, 400)
    for label, v in clean.items():
        curve = _kde_curve(v, grid, bw_method)
        if curve is None:
            if v.size:  # a single value or no spread: mark it
                line = ax.axvline(float(v[0]), label=f"{label} (n={v.size})")
                line.set_linestyle("--")
            continue
        (line,) = ax.plot(grid, curve, label=f"{label} (n={v.size})")
        if fill:
            ax.fill_between(grid, curve, alpha=0.2, color=line.get_color())
    ax.set_xlabel(quantity)
    ax.set_ylabel("density")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return fig


def plot_calibration(z_or_triplet, *, max_sigma=3.0, bins=60, figsize=None):
    """Calibration of a predicted uncertainty.

    Left: observed fraction of pixels with ``|z| ≤ k`` against the nominal
    Gaussian coverage ``erf(k/√2)`` for ``k`` up to ``max_sigma`` (the diagonal
    is perfect; below it the uncertainty is too small).  Right: histogram of
    ``z = (pred − truth) / σ`` with the standard normal density.

    Parameters
    ----------
    z_or_triplet : array of z-scores, or (prediction, truth, sigma)
        The z-scores, or three arrays (or NDData, SyntheticBand,
        uncertainties) of one shape they are computed from; pixels with
        ``sigma <= 0`` and non-finite values are dropped.
    max_sigma : float
        Largest ``k`` (in σ) of the coverage curve.
    bins : int
        Number of histogram bins.
    figsize : (float, float), optional
        Figure size in inches (default 8 x 3.4).

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: the coverage curve and the z histogram.

    Raises
    ------
    ValueError
        If the arrays differ in shape or no z-score is finite.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.random.default_rng(0).normal(size=5000)
    >>> fig = plot_calibration(z)
    >>> len(fig.axes)
    2
    """
    if isinstance(z_or_triplet, tuple) and len(z_or_triplet) == 3:
        pred, truth, sigma = (_values(a) for a in z_or_triplet)
        if not (pred.shape == truth.shape == sigma.shape):
            raise ValueError(f"prediction {pred.shape}, truth {truth.shape} and sigma {sigma.shape} differ in shape")
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (pred - truth) / sigma
        z = np.where(sigma > 0, z, np.nan)
    else:
        z = np.asarray(z_or_triplet, dtype=float)
    z = z[np.isfinite(z)].ravel()
    if z.size == 0:
        raise ValueError("no finite z-score to plot")
    k = np.linspace(0.0, max_sigma, 61)
    nominal = np.array([math.erf(x / math.sqrt(2.0)) for x in k])
    az = np.sort(np.abs(z))
    observed = np.searchsorted(az, k, side="right") / az.size
    fig = _figure(figsize or (8.0, 3.4))
    a1, a2 = fig.subplots(1, 2)
    a1.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="ideal")
    a1.plot(nominal, observed, marker=".", label="observed")
    for s in (1, 2, 3):
        if s <= max_sigma:
            i = int(np.argmin(np.abs(k - s)))
            a1.annotate(f"|z| ≤ {s}: {observed[i]:.3f}", (nominal[i], observed[i]), fontsize=8,
                        xytext=(-45, 8), textcoords="offset points")  # fmt: skip
    a1.set_xlabel("nominal (Gaussian) coverage")
    a1.set_ylabel("observed coverage, all pixels pooled")
    a1.set_xlim(0, 1)
    a1.set_ylim(0, 1)
    a1.legend(fontsize=8)
    lim = max(4.0, float(np.percentile(np.abs(z), 99.5)))
    a2.hist(z, bins=bins, range=(-lim, lim), density=True, alpha=0.6, label=f"z (n={z.size})")
    x = np.linspace(-lim, lim, 300)
    a2.plot(x, np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi), color="k", label="N(0, 1)")
    a2.set_xlabel("z = (prediction − truth) / σ")
    a2.set_ylabel("density")
    a2.legend(fontsize=8)
    return fig

