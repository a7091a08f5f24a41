import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from bandsynth.nn.losses import BandLoss, gaussian_nll, gaussian_window, laplace_nll, ssim
from bandsynth.nn.generator import GeneratorOutput


def _skimage_ssim(a, b):
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1
    )


def _pair(kind, shape, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.random(shape), rng.random(shape)
    if kind == "smooth":
        a = gaussian_filter(a, 3)
        b = 0.8 * a + 0.2 * gaussian_filter(b, 2) + 0.05
    return a, b


def _t(a, dtype=torch.float32):
    return torch.tensor(a, dtype=dtype)[None, None]


@pytest.mark.parametrize("kind", ["random", "smooth"])
@pytest.mark.parametrize("shape", [(11, 11), (32, 32), (41, 29)])
def test_ssim_matches_skimage(kind, shape):
    a, b = _pair(kind, shape, seed=sum(shape))
    expected = _skimage_ssim(a, b)
    assert abs(float(ssim(_t(a), _t(b))) - expected) < 1e-3
    assert abs(float(ssim(_t(a, torch.float64), _t(b, torch.float64))) - expected) < 1e-10


def test_ssim_per_image_reduction_matches_skimage():
    pairs = [_pair(kind, (24, 24), seed) for seed, kind in enumerate(["random", "smooth"] * 3)]
    x = torch.tensor(np.stack([p[0] for p in pairs]).reshape(3, 2, 24, 24))
    y = torch.tensor(np.stack([p[1] for p in pairs]).reshape(3, 2, 24, 24))
    values = ssim(x, y, reduction="none")
    assert values.shape == (3, 2)
    expected = np.array([_skimage_ssim(a, b) for a, b in pairs]).reshape(3, 2)
    np.testing.assert_allclose(values.numpy(), expected, atol=1e-10)
    assert float(ssim(x, y)) == pytest.approx(expected.mean(), abs=1e-10)


def test_gaussian_window_is_scipys():
    impulse = np.zeros(21)
    impulse[10] = 1
    expected = gaussian_filter(impulse, 1.5, truncate=3.5)[5:16]
    np.testing.assert_allclose(gaussian_window(dtype=torch.float64).numpy(), expected, atol=1e-15)


def test_ssim_identity_and_gradients():
    a = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    assert float(ssim(a, a)) == pytest.approx(1.0, abs=1e-12)
    b = torch.rand(2, 1, 12, 13, dtype=torch.float64, requires_grad=True)
    c = torch.rand(2, 1, 12, 13, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: ssim(t, c), (b,))


def test_ssim_weight_excludes_masked_region():
    a, b = _pair("smooth", (32, 32), 3)
    x, y = _t(a), _t(a).clone()
    y[..., :, 20:] = _t(b)[..., :, 20:]  # differ only on the right
    weight = torch.ones_like(x)
    assert float(ssim(x, y, weight=weight)) == pytest.approx(float(ssim(x, y)), abs=1e-6)
    weight[..., :, 10:] = 0  # 5-pixel window radius: the left part never sees the change
    assert float(ssim(x, y, weight=weight)) == pytest.approx(1.0, abs=1e-6)
    assert float(ssim(x, y)) < 0.99


def test_ssim_errors():
    with pytest.raises(ValueError, match="at least 11x11 pixels, got 8x20"):
        ssim(torch.rand(1, 1, 8, 20), torch.rand(1, 1, 8, 20))
    with pytest.raises(ValueError, match="differs from target shape"):
        ssim(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 17))
    with pytest.raises(ValueError, match=r"shape \[B, C, H, W\]"):
        ssim(torch.rand(16, 16), torch.rand(16, 16))
    with pytest.raises(ValueError, match="reduction must be one of"):
        ssim(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), reduction="sum")
    with pytest.raises(TypeError, match="target must be a torch.Tensor"):
        ssim(torch.rand(1, 1, 16, 16), np.zeros((1, 1, 16, 16)))
    with pytest.raises(ValueError, match="does not broadcast"):
        ssim(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), weight=torch.ones(3, 16, 16))


def test_laplace_nll_value_and_detach():
    mean = torch.randn(2, 1, 5, 5, requires_grad=True)
    log_scale = torch.randn(2, 1, 5, 5, requires_grad=True)
    target = torch.randn(2, 1, 5, 5)
    nll = laplace_nll(mean, log_scale, target)
    expected = -torch.distributions.Laplace(mean, log_scale.exp()).log_prob(target).mean()
    assert float(nll.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    nll.backward()
    assert mean.grad is None and log_scale.grad is not None
    mean.grad = None
    laplace_nll(mean, log_scale, target, detach_mean=False).backward()
    assert mean.grad is not None


def test_laplace_nll_minimised_at_mean_absolute_error():
    target = torch.randn(1, 1, 50, 50)
    mean = torch.zeros_like(target)
    best = math.log(float(target.abs().mean()))
    values = [float(laplace_nll(mean, torch.full_like(target, best + d), target)) for d in (-0.5, 0.0, 0.5)]
    assert values[1] < values[0] and values[1] < values[2]


def test_gaussian_nll_with_a_noisy_target_is_the_normal_of_the_summed_variance():
    mean, target = torch.randn(2, 1, 5, 5), torch.randn(2, 1, 5, 5)
    log_sigma, noise = torch.randn(2, 1, 5, 5) - 1.0, torch.rand(2, 1, 5, 5)
    nll = gaussian_nll(mean, log_sigma, target, target_sigma=noise)
    scale = torch.sqrt(torch.exp(2 * log_sigma) + noise**2)
    assert float(nll) == pytest.approx(float(-torch.distributions.Normal(mean, scale).log_prob(target).mean()), rel=1e-5)
    assert float(gaussian_nll(mean, log_sigma, target, target_sigma=torch.zeros(1))) == pytest.approx(
        float(gaussian_nll(mean, log_sigma, target)), rel=1e-6)


def test_gaussian_nll_with_target_noise_is_minimised_at_the_sigma_left_after_the_noise():
    # residuals of variance 1.25 about targets whose own noise has variance 1: sigma = 0.5 is what is left
    target = torch.randn(1, 1, 200, 200, generator=torch.Generator().manual_seed(3)) * math.sqrt(1.25)
    mean, noise = torch.zeros_like(target), torch.ones(1)
    left = math.sqrt(float(target.pow(2).mean()) - 1.0)
    values = [float(gaussian_nll(mean, torch.full_like(target, math.log(left) + d), target, target_sigma=noise))
              for d in (-0.3, 0.0, 0.3)]
    assert values[1] < values[0] and values[1] < values[2]
    assert left == pytest.approx(0.5, abs=0.05)


def test_band_loss_components():
    torch.manual_seed(0)
    pred = torch.rand(2, 1, 16, 16)
    target = torch.rand(2, 1, 16, 16)
    log_scale = torch.randn(2, 1, 16, 16)
    out = BandLoss(ssim_weight=0.5, nll_weight=0.2)(pred, target, log_scale=log_scale)
    l1 = (pred - target).abs().mean()
    s = ssim(pred, target)
    nll = laplace_nll(pred, log_scale, target)
    assert float(out.l1) == pytest.approx(float(l1))
    assert float(out.ssim) == pytest.approx(float(s))
    assert float(out.nll) == pytest.approx(float(nll))
    assert float(out.total) == pytest.approx(float(l1 + 0.5 * (1 - s) + 0.2 * nll), rel=1e-6)
    paper = BandLoss()(pred, target)
    assert paper.nll is None
    assert float(paper.total) == pytest.approx(float(l1 + (1 - s)), rel=1e-6)


def test_band_loss_mean_gradient_ignores_nll():
    pred = torch.rand(1, 1, 16, 16, requires_grad=True)
    target, log_scale = torch.rand(1, 1, 16, 16), torch.randn(1, 1, 16, 16)
    grads = []
    for weight in (0.0, 5.0):
        pred.grad = None
        BandLoss(nll_weight=weight)(GeneratorOutput(pred, log_scale), target).total.backward()
        grads.append(pred.grad.clone())
    assert torch.equal(grads[0], grads[1])


def test_band_loss_bf16_inputs_computed_in_float32():
    pred = torch.rand(1, 1, 16, 16)
    target = torch.rand(1, 1, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = BandLoss()(pred.bfloat16(), target)
    assert out.total.dtype == torch.float32
    assert float(out.total) == pytest.approx(float(BandLoss()(pred.bfloat16().float(), target).total), rel=1e-6)


def test_band_loss_validation():
    with pytest.raises(ValueError, match="ssim_weight must be finite and >= 0"):
        BandLoss(ssim_weight=-1)
    with pytest.raises(TypeError, match="nll_weight must be a number"):
        BandLoss(nll_weight="1")
    with pytest.raises(ValueError, match="data_range must be > 0"):
        BandLoss(data_range=0)
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError, match="either inside pred or as an argument"):
        BandLoss()((x, x), x, log_scale=x)


def test_photometric_term_is_the_relative_error_of_each_images_total_flux():
    from bandsynth.nn.losses import BandLoss

    def flux(scaled):  # a stand-in inverse scaling: flux = 10 * scaled
        return 10.0 * scaled

    target = torch.full((2, 1, 16, 16), 0.5)
    pred = target.clone()
    pred[0] *= 1.2  # 20 % too bright
    pred[1] *= 0.9  # 10 % too faint
    loss = BandLoss(flux=flux, flux_weight=1.0, flux_floor=0.0)
    assert float(loss.photometric_error(pred, target)) == pytest.approx((0.2 + 0.1) / 2, rel=1e-5)
    plain = BandLoss()(pred, target).total
    with_flux = loss(pred, target).total
    assert float(with_flux - plain) == pytest.approx(0.15, rel=1e-4)
    with pytest.raises(TypeError, match="BandLoss flux must be a callable"):
        BandLoss(flux=3.0)


def test_pixel_photometric_term_counts_errors_that_cancel_in_the_total():
    from bandsynth.nn.losses import BandLoss

    def flux(scaled):
        return 10.0 * scaled

    target = torch.full((1, 1, 16, 16), 0.5)
    pred = target.clone()
    pred[..., :8, :] *= 1.2  # one half 20 % too bright, the other 20 % too faint: the total is right
    pred[..., 8:, :] *= 0.8
    total = BandLoss(flux=flux, flux_weight=1.0)
    pixel = BandLoss(flux=flux, flux_weight=1.0, flux_error="pixel")
    assert float(total.photometric_error(pred, target)) == pytest.approx(0.0, abs=1e-6)
    assert float(pixel.photometric_error(pred, target)) == pytest.approx(0.2, rel=1e-5)
    # the floor joins the denominator as for the total: 256 px x 5 flux + 256 px x 5 floor
    floored = BandLoss(flux=flux, flux_weight=1.0, flux_floor=5.0, flux_error="pixel")
    assert float(floored.photometric_error(pred, target)) == pytest.approx(0.1, rel=1e-5)
    assert "flux_error='pixel'" in repr(pixel)
    with pytest.raises(ValueError, match="BandLoss flux_error must be one of"):
        BandLoss(flux=flux, flux_error="median")


def test_squared_photometric_term_is_minimised_by_the_mean_flux_where_the_pixel_term_takes_the_median():
    from bandsynth.nn.losses import BandLoss

    def flux(scaled):
        return 10.0 * scaled

    # five pixels of one crop whose true fluxes scatter with a long bright tail (median 1, mean 2.6),
    # predicted by one constant: the best constant is the term's central value
    target = torch.tensor([0.0, 0.1, 0.1, 0.1, 0.9]).view(1, 1, 1, 5)
    candidates = np.linspace(0.0, 0.5, 501)

    def best(flux_error):
        loss = BandLoss(flux=flux, flux_weight=1.0, flux_error=flux_error)
        errors = [float(loss.photometric_error(torch.full_like(target, float(v)), target)) for v in candidates]
        return float(candidates[int(np.argmin(errors))])

    assert best("squared") == pytest.approx(float(target.mean()), abs=1e-3)
    assert best("pixel") == pytest.approx(float(target.median()), abs=1e-3)
    # sqrt(sum dF^2 / (sum F^2 + n floor^2)): a crop 20 % too bright everywhere gives 0.2
    crop = torch.full((1, 1, 4, 4), 0.5)
    squared = BandLoss(flux=flux, flux_weight=1.0, flux_error="squared")
    assert float(squared.photometric_error(1.2 * crop, crop)) == pytest.approx(0.2, rel=1e-5)
    floored = BandLoss(flux=flux, flux_weight=1.0, flux_floor=5.0, flux_error="squared")
    assert float(floored.photometric_error(1.2 * crop, crop)) == pytest.approx(0.2 / np.sqrt(2), rel=1e-5)
    assert "flux_error='squared'" in repr(squared)


def test_a_nan_target_pixel_of_weight_zero_leaves_every_term_finite():
    # NaN * 0 = NaN: one NaN pixel of a training target, weighted 0 by the data set, made the whole loss NaN
    # ("training loss is not finite at step 4"), through L1, SSIM's window and the photometric sums alike.
    from torch.utils.data import TensorDataset

    from bandsynth.nn.generator import build_generator
    from bandsynth.nn.training import evaluate

    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 1, 32, 32, generator=g), torch.rand(2, 1, 32, 32, generator=g)
    weight = torch.ones_like(target)
    weight[0, 0, 10, 10] = 0
    clean = target.clone()
    clean[0, 0, 10, 10] = 0
    target[0, 0, 10, 10] = float("nan")
    loss = BandLoss(flux=torch.sinh, flux_weight=1.0)
    log_scale = torch.zeros_like(pred)
    nan_terms = loss(pred, target, log_scale=log_scale, weight=weight)
    clean_terms = loss(pred, clean, log_scale=log_scale, weight=weight)
    for name in ("total", "l1", "ssim", "nll"):
        assert torch.isfinite(getattr(nan_terms, name)), name
        assert float(getattr(nan_terms, name)) == pytest.approx(float(getattr(clean_terms, name))), name
    torch.manual_seed(0)
    model = build_generator("tiny", 1)
    metrics = evaluate(model, TensorDataset(pred, target, weight))
    assert all(math.isfinite(v) for v in metrics.values())
    # with a non-zero weight a NaN still counts: the loss is NaN, not silently zero
    assert not torch.isfinite(loss(pred, target).total)
