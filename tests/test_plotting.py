"""Tests of bandsynth.plotting (Agg backend, no display)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from astropy.nddata import CCDData, NDData, StdDevUncertainty, VarianceUncertainty  # noqa: E402
from astropy.utils.exceptions import AstropyUserWarning  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from bandsynth.plotting import plot_calibration, plot_morphology_kde, plot_panel, plot_synthetic  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def n_images(fig):
    return sum(len(ax.images) for ax in fig.axes)


@pytest.fixture
def images():
    y, x = np.mgrid[:40, :40]
    truth = np.exp(-np.hypot(x - 20, y - 19) / 4)
    return {"g": 0.7 * truth, "z": 1.3 * truth}, truth, truth * 1.02, 0.01 * np.ones_like(truth)


def saved_png(fig, tmp_path, name="fig.png"):
    path = tmp_path / name
    fig.savefig(path)
    return path.read_bytes()[:8] == PNG_MAGIC


def test_panel_one_galaxy(images, tmp_path):
    inputs, truth, pred, sigma = images
    before = plt.get_fignums()
    fig = plot_panel(inputs, truth, pred, sigma)
    assert isinstance(fig, Figure)
    assert n_images(fig) == 6  # g | z | truth | prediction | residual | sigma
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == ["input g", "input z", "truth", "prediction", "truth − prediction", "σ"]
    assert saved_png(fig, tmp_path)
    assert plt.get_fignums() == before  # pyplot's state untouched: nothing to show or close


def test_panel_several_galaxies_share_truth_stretch(images, tmp_path):
    inputs, truth, pred, _ = images
    fig = plot_panel([inputs] * 3, np.stack([truth] * 3), [pred] * 3, residual=False, row_labels=["a", "b", "c"])
    assert n_images(fig) == 3 * 4
    first_row = [ax for ax in fig.axes if ax.images][:4]
    t_norm, p_norm = first_row[2].images[0].norm, first_row[3].images[0].norm
    assert (t_norm.vmin, t_norm.vmax) == (p_norm.vmin, p_norm.vmax)
    assert saved_png(fig, tmp_path)


def test_panel_draws_no_masked_pixel_and_sigma_as_a_standard_deviation(images):
    # a masked array's mask was dropped (a masked 1e6 drawn and in the residual); a variance drawn as sigma
    inputs, truth, pred, sigma = images
    bad = np.zeros(truth.shape, bool)
    bad[10, 10] = True
    spoilt = np.where(bad, 1e6, pred)
    for prediction in (np.ma.array(spoilt, mask=bad), NDData(spoilt, mask=bad)):
        panels = [ax.images[0].get_array() for ax in plot_panel({}, truth, prediction).axes if ax.images]
        assert np.ma.is_masked(panels[1][10, 10]) and np.ma.is_masked(panels[2][10, 10])
    drawn = plot_synthetic(NDData(pred, uncertainty=VarianceUncertainty(sigma**2)))
    np.testing.assert_allclose([ax.images[0].get_array() for ax in drawn.axes if ax.images][-1], sigma)


def test_panel_errors(images):
    inputs, truth, pred, _ = images
    with pytest.raises(ValueError, match=r"truth has shape \(5, 5\) but prediction has shape \(40, 40\)"):
        plot_panel(inputs, np.zeros((5, 5)), pred)
    with pytest.raises(ValueError, match="truth has 1 rows but prediction has 2"):
        plot_panel({}, [truth], [pred, pred])


def test_plot_synthetic_with_bandstack_inputs(images, tmp_path):
    from bandsynth.stack import BandStack
    from bandsynth.synthetic import SyntheticBand, make_provenance

    inputs, truth, pred, sigma = images
    sb = SyntheticBand(pred.astype(np.float32), unit="nanomaggy", uncertainty=sigma,
                       provenance=make_provenance("r", model="test"))  # fmt: skip
    stack = BandStack.from_arrays(inputs, unit="nanomaggy")
    fig = sb.plot(truth=CCDData(truth, unit="nanomaggy"), inputs=stack)
    assert n_images(fig) == 6
    assert {"predicted r", "true r"} <= {ax.get_title() for ax in fig.axes}
    alone = plot_synthetic(sb)
    assert n_images(alone) == 2  # prediction and sigma
    assert saved_png(fig, tmp_path) and saved_png(alone, tmp_path, "b.png")


def test_morphology_kde(tmp_path):
    rng = np.random.default_rng(0)
    values = {
        "input NUV": rng.normal(0.45, 0.05, 300),
        "input K": rng.normal(0.55, 0.04, 300),
        "truth R": rng.normal(0.52, 0.03, 300),
        "predicted R": np.append(rng.normal(0.51, 0.03, 300), np.nan),
    }
    with pytest.warns(AstropyUserWarning, match="1 non-finite value"):
        fig = plot_morphology_kde(values, quantity="Gini")
    ax = fig.axes[0]
    assert len(ax.lines) == 4 and ax.get_xlabel() == "Gini"
    assert "predicted R (n=300)" in [t.get_text() for t in ax.get_legend().get_texts()]
    # the curves are normalised densities
    x, y = ax.lines[2].get_data()
    assert np.trapezoid(y, x) == pytest.approx(1.0, abs=0.02)
    panels = {"Gini": values, "M20": {"truth": rng.normal(-2, 0.2, 50), "pred": np.full(5, -2.0)}}
    with pytest.warns(AstropyUserWarning, match="non-finite"):
        both = plot_morphology_kde(panels, quantity=None)
    assert len(both.axes) == 2 and both.axes[1].get_xlabel() == "M20"
    assert saved_png(both, tmp_path)
    with pytest.raises(ValueError, match="non-empty mapping"):
        plot_morphology_kde({})


def test_calibration_plot(tmp_path):
    rng = np.random.default_rng(1)
    truth = np.zeros((50, 50))
    sigma = np.full(truth.shape, 0.2)
    pred = truth + rng.normal(0, 0.2, truth.shape)
    fig = plot_calibration((pred, truth, sigma))
    assert len(fig.axes) == 2
    nominal, observed = fig.axes[0].lines[1].get_data()
    assert np.max(np.abs(observed - nominal)) < 0.05  # well calibrated: on the diagonal
    assert len(fig.axes[1].patches) == 60  # histogram bars
    assert saved_png(plot_calibration(rng.normal(size=1000)), tmp_path)
    # sigma as any astropy uncertainty (a variance was read as sigma: 1-sigma coverage 0.07 for 0.68), and a
    # prediction's masked pixels left out (they were pooled in)
    as_std = plot_calibration((pred, truth, StdDevUncertainty(sigma))).axes[0].lines[1].get_data()[1]
    as_var = plot_calibration((pred, truth, VarianceUncertainty(sigma**2))).axes[0].lines[1].get_data()[1]
    np.testing.assert_allclose(as_var, as_std)
    bad = np.zeros(truth.shape, bool)
    bad[:10] = True
    masked = plot_calibration((NDData(pred, mask=bad), truth, sigma))
    assert masked.axes[1].get_legend().get_texts()[0].get_text() == f"z (n={truth.size - 500})"
    with pytest.raises(ValueError, match="differ in shape"):
        plot_calibration((pred, truth, np.ones(3)))
    with pytest.raises(ValueError, match="no finite z-score"):
        plot_calibration(np.array([np.nan]))
