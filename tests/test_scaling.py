"""Tests of bandsynth.scaling: asinh stretch, reference flux, fitted scalings."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandsynth.scaling import AsinhScaling, fit_scalings, reference_flux

positive = st.floats(min_value=1e-4, max_value=1e4, allow_nan=False, allow_infinity=False)
flux = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
fluxes = st.lists(flux, min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(flux=fluxes, softening=positive, stretch=st.floats(min_value=1.0, max_value=1e3), reference=positive)
def test_asinh_inverse_is_exact(flux, softening, stretch, reference):
    s = AsinhScaling(softening=softening, maximum=softening * stretch)
    flux = np.array(flux)
    scaled = s.forward(flux, reference=reference)
    back = s.inverse(scaled, reference=reference)
    # Round-off only: relative to the flux, or to the linear-regime scale for fluxes near zero.
    np.testing.assert_allclose(back, flux, rtol=1e-9, atol=1e-12 * reference * softening)
    # The stretch is odd and monotonic, and maps maximum * reference to 1.
    np.testing.assert_allclose(s.forward(-flux, reference=reference), -scaled, rtol=1e-12, atol=0)
    order = np.argsort(flux, kind="stable")
    assert np.all(np.diff(scaled[order]) >= 0)
    assert s.forward(s.maximum * reference, reference=reference) == pytest.approx(1.0, rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(scaled=st.floats(min_value=-1.5, max_value=1.5), softening=positive, reference=positive)
def test_derivative_matches_the_inverse(scaled, softening, reference):
    s = AsinhScaling(softening=softening, maximum=20 * softening)
    h = 1e-6
    numeric = (s.inverse(scaled + h, reference=reference) - s.inverse(scaled - h, reference=reference)) / (2 * h)
    assert s.derivative(scaled, reference=reference) == pytest.approx(numeric, rel=1e-5)


def test_asinh_parameters():
    s = AsinhScaling(softening=0.05, maximum=2.0)
    assert AsinhScaling.from_dict(s.to_dict()) == s
    assert s.to_dict() == {"softening": 0.05, "maximum": 2.0}
    with pytest.raises(ValueError, match="softening must be finite and > 0, got 0"):
        AsinhScaling(softening=0)
    with pytest.raises(ValueError, match="maximum must be finite and > 0"):
        AsinhScaling(maximum=float("inf"))
    with pytest.raises(TypeError, match="softening must be a number, got str"):
        AsinhScaling(softening="0.1")
    with pytest.raises(TypeError, match="maximum must be a number, got bool"):
        AsinhScaling(maximum=True)
    with pytest.raises(ValueError, match=r"unknown AsinhScaling parameters: \['zero_point'\]"):
        AsinhScaling.from_dict({"softening": 0.1, "zero_point": 3})
    with pytest.raises(ValueError, match="reference flux must be finite and > 0"):
        s.forward(np.ones(3), reference=0.0)
    with pytest.raises(ValueError, match="reference flux must be finite and > 0"):
        s.inverse(np.ones(3), reference=np.nan)


@pytest.mark.filterwarnings("ignore:All-NaN:RuntimeWarning")  # numpy's, for the all-NaN band
def test_reference_flux():
    rng = np.random.default_rng(0)
    g = rng.random((16, 16))
    r = 3 * rng.random((16, 16))
    assert reference_flux([g, r]) == pytest.approx(np.percentile(r, 99.5))
    assert reference_flux([g], percentile=50) == pytest.approx(np.median(g))
    with_nan = g.copy()
    with_nan[0, 0] = np.nan
    assert np.isfinite(reference_flux([with_nan]))
    with pytest.raises(ValueError, match="cannot set a reference flux: the 99.5th percentile of every band is <= 0"):
        reference_flux([np.zeros((4, 4)), -np.ones((4, 4))])
    with pytest.raises(ValueError, match="cannot set a reference flux"):
        reference_flux([])
    with pytest.raises(ValueError, match="cannot set a reference flux"):
        reference_flux([np.full((4, 4), np.nan)])


def test_fit_scalings():
    rng = np.random.default_rng(1)
    cubes = {"g": rng.random((6, 8, 8)), "r": 4 * rng.random((6, 8, 8))}
    refs = np.array([reference_flux([cubes["g"][i], cubes["r"][i]]) for i in range(6)])
    s = fit_scalings(cubes, refs, stretch=25.0)
    assert set(s) == {"g", "r"}
    for band in s:
        assert s[band].maximum / s[band].softening == pytest.approx(25.0)
    # r sets every galaxy's reference flux, so its maximum is about 1; g is fainter.
    assert s["r"].maximum == pytest.approx(1.0, rel=1e-9)
    assert s["g"].maximum < 0.5
    with pytest.raises(ValueError, match="references must be a 1-D array of finite fluxes > 0"):
        fit_scalings(cubes, refs[:, None])
    with pytest.raises(ValueError, match="references must be a 1-D array"):
        fit_scalings(cubes, -refs)
    with pytest.raises(ValueError, match=r"band 'g': expected an array of shape \(6, ny, nx\), got \(5, 8, 8\)"):
        fit_scalings({"g": cubes["g"][:5]}, refs)
    with pytest.raises(ValueError, match="band 'z': no positive flux to set its scaling from"):
        fit_scalings({"z": np.zeros((6, 8, 8))}, refs)
