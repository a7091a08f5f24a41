"""Training losses: L1 + lambda (1 - SSIM) (Zaazou, Bihlo & Tricco) and a Laplace NLL.

`ssim` is a differentiable structural similarity that reproduces
``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1)``: an 11-tap Gaussian window
(sigma 1.5, truncated at 3.5 sigma), K1 = 0.01, K2 = 0.03, and the mean taken
over the region at least half a window from the border (scikit-image crops that
border away too).

`BandLoss` adds, when the generator has an uncertainty head, the negative log
likelihood of a Laplace distribution with per-pixel scale ``b``,
``log(2 b) + |y - mu| / b``, evaluated with the mean detached so the mean is
trained by the image loss alone.

Examples
--------
>>> import torch
>>> from bandsynth.nn.losses import BandLoss, ssim
>>> y = torch.rand(2, 1, 32, 32)
>>> float(ssim(y, y))
1.0
>>> out = BandLoss()(y, y, log_scale=torch.zeros_like(y))
>>> round(float(out.total), 4), round(float(out.nll), 4)  # log 2 + 0: perfect mean, b = 1
(0.6931, 0.6931)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BandLoss", "FLUX_ERRORS", "LossOutput", "ssim", "laplace_nll", "gaussian_nll", "gaussian_window",
           "masked_target"]

_REDUCTIONS = ("mean", "none")
#: What `BandLoss`'s photometric term can compare, in the words the model cards use.
FLUX_ERRORS = {"total": "relative error of each crop's total flux",
               "pixel": "the pixels' absolute flux errors over each crop's total flux",
               "squared": "the root sum of squares of the pixels' flux errors over that of each crop's fluxes"}


def gaussian_window(sigma=1.5, *, truncate=3.5, dtype=torch.float32, device=None):
    """Normalised 1-D Gaussian window, as ``scipy.ndimage.gaussian_filter`` builds it.

    Its length is ``2 * int(truncate * sigma + 0.5) + 1`` (11 for the defaults).

    Parameters
    ----------
    sigma : float
        Standard deviation, in pixels.
    truncate : float
        Half-width of the window, in standard deviations.
    dtype : torch.dtype
        Type of the result (computed in float64).
    device : torch.device or str, optional
        Device of the result (default: the CPU).

    Returns
    -------
    torch.Tensor
        The 1-D window, summing to 1.

    Examples
    --------
    >>> w = gaussian_window()
    >>> len(w), round(float(w.sum()), 6)
    (11, 1.0)
    """
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    window = torch.exp(-0.5 * (x / sigma) ** 2)
    return (window / window.sum()).to(dtype=dtype, device=device)


def _check_pair(pred, target, name="pred"):
    for label, value in ((name, pred), ("target", target)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{label} must be a torch.Tensor, got {type(value).__name__}")
        if value.ndim != 4:
            raise ValueError(f"{label} must have shape [B, C, H, W], got {tuple(value.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"{name} shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")


def _as_float(*tensors):
    """Promote half/bfloat16 to float32 (SSIM statistics need the precision)."""
    return [t.float() if t.dtype in (torch.float16, torch.bfloat16) else t for t in tensors]


def _weight_like(weight, reference):
    if weight is None:
        return None
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor or None, got {type(weight).__name__}")
    try:
        return torch.broadcast_to(weight.to(reference.dtype), reference.shape)
    except RuntimeError:
        raise ValueError(
            f"weight shape {tuple(weight.shape)} does not broadcast to {tuple(reference.shape)}"
        ) from None


def masked_target(target, weight):
    """``target`` with its non-finite pixels of weight 0 set to 0.

    A pixel of weight 0 (masked, or NaN in the data) leaves the loss out only if its value
    is finite: ``NaN * 0`` is NaN, so one NaN target pixel made the whole loss NaN, and it
    spreads through SSIM's window and the photometric sums before any weight applies.

    Parameters
    ----------
    target : torch.Tensor
        True images ``[B, C, H, W]``.
    weight : torch.Tensor or None
        Non-negative pixel weights broadcastable to ``target``.

    Returns
    -------
    torch.Tensor
        ``target`` itself without ``weight``, else a copy.

    Examples
    --------
    >>> t = torch.tensor([[[[1.0, float("nan")]]]])
    >>> masked_target(t, torch.tensor([[[[1.0, 0.0]]]])).tolist()
    [[[[1.0, 0.0]]]]
    """
    if weight is None:
        return target
    unusable = (torch.broadcast_to(weight, target.shape) == 0) & ~torch.isfinite(target)
    return torch.where(unusable, torch.zeros_like(target), target)  # no .any() test: it would wait for the device


def _reduce(values, weight, reduction):
    """Mean over pixels; per image and channel ([B, C]) when ``reduction='none'``."""
    if reduction == "none":
        if weight is None:
            return values.mean(dim=(-2, -1))
        return (values * weight).sum(dim=(-2, -1)) / weight.sum(dim=(-2, -1))
    if weight is None:
        return values.mean()
    return (values * weight).sum() / weight.sum()


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def ssim(pred, target, *, data_range=1.0, sigma=1.5, k1=0.01, k2=0.03, weight=None, reduction="mean"):
    """Differentiable structural similarity of two image batches.

    Parameters
    ----------
    pred, target : torch.Tensor
        Images ``[B, C, H, W]``; H and W at least the window length (11).
    data_range : float
        Dynamic range of the images (1 for the asinh-scaled data).
    sigma : float
        Standard deviation of the Gaussian window (truncated at 3.5 sigma).
    k1, k2 : float
        Stabilising constants, ``C1 = (k1 * data_range)**2``, ``C2 = (k2 * data_range)**2``.
    weight : torch.Tensor, optional
        Non-negative pixel weights broadcastable to the images (e.g. 0 for masked
        pixels); the SSIM map is averaged with them, cropped like the map.
    reduction : {"mean", "none"}
        ``"mean"``: one number; ``"none"``: one value per image and channel ``[B, C]``.

    Returns
    -------
    torch.Tensor
        Mean SSIM (a scalar), or ``[B, C]`` with ``reduction="none"``; float32
        for half-precision inputs.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> a = torch.rand(1, 1, 16, 16, generator=g)
    >>> float(ssim(a, a)) == 1.0, float(ssim(a, 1 - a)) < 0
    (True, True)
    """
    _check_pair(pred, target)
    _check_reduction(reduction)
    if not data_range > 0:
        raise ValueError(f"SSIM data_range must be positive, got {data_range}")
    with torch.autocast(pred.device.type, enabled=False):
        pred, target = _as_float(pred, target)
        window = gaussian_window(sigma, dtype=pred.dtype, device=pred.device)
        size = window.numel()
        height, width = pred.shape[-2:]
        if height < size or width < size:
            raise ValueError(
                f"SSIM needs images of at least {size}x{size} pixels, got {height}x{width}"
            )
        b, c = pred.shape[:2]
        x = pred.reshape(b * c, 1, height, width)
        y = target.reshape(b * c, 1, height, width)
        stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)
        # Separable Gaussian filter, 'valid' region only: equal to scikit-image's
        # reflect-mode filter followed by its crop of (size - 1) // 2 pixels.
        stack = F.conv2d(stack, window.view(1, 1, 1, size).expand(5, 1, 1, size), groups=5)
        stack = F.conv2d(stack, window.view(1, 1, size, 1).expand(5, 1, size, 1), groups=5)
        mu_x, mu_y, xx, yy, xy = stack.unbind(dim=1)
        var_x = xx - mu_x * mu_x
        var_y = yy - mu_y * mu_y
        cov = xy - mu_x * mu_y
        c1 = (k1 * data_range) ** 2
        c2 = (k2 * data_range) ** 2
        smap = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
            (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
        )
        smap = smap.reshape(b, c, *smap.shape[-2:])
        weight = _weight_like(weight, pred)
        if weight is not None:
            crop = (size - 1) // 2
            weight = weight[..., crop : height - crop, crop : width - crop]
        return _reduce(smap, weight, reduction)


def laplace_nll(mean, log_scale, target, *, weight=None, reduction="mean", detach_mean=True):
    """Negative log likelihood of ``target`` under Laplace(mean, exp(log_scale)).

    ``log(2 b) + |target - mean| / b`` per pixel.  With ``detach_mean`` (the
    default) no gradient reaches ``mean``: only the scale is fitted.

    Parameters
    ----------
    mean : torch.Tensor
        Predicted images ``[B, C, H, W]``.
    log_scale : torch.Tensor
        Natural log of the Laplace scale ``b``, same shape (clamped to
        [-20, 20]).
    target : torch.Tensor
        True images, same shape and units as ``mean``.
    weight : torch.Tensor, optional
        Non-negative pixel weights broadcastable to the images.
    reduction : {"mean", "none"}
        ``"mean"``: one number; ``"none"``: the (weighted) mean per image and
        channel ``[B, C]``.
    detach_mean : bool
        Stop the gradient to ``mean``.

    Returns
    -------
    torch.Tensor
        The mean negative log likelihood per pixel (in nats).

    Examples
    --------
    >>> import torch
    >>> zero = torch.zeros(1, 1, 2, 2)
    >>> round(float(laplace_nll(zero, zero, zero + 1)), 4)  # log 2 + 1
    1.6931
    """
    _check_pair(mean, target, "mean")
    _check_pair(log_scale, target, "log_scale")
    _check_reduction(reduction)
    with torch.autocast(mean.device.type, enabled=False):
        mean, log_scale, target = _as_float(mean, log_scale, target)
        if detach_mean:
            mean = mean.detach()
        # The clamp only guards exp() against overflow from a diverging head.
        log_scale = log_scale.clamp(-20.0, 20.0)
        nll = math.log(2.0) + log_scale + (target - mean).abs() * torch.exp(-log_scale)
        return _reduce(nll, _weight_like(weight, mean), reduction)


def gaussian_nll(mean, log_sigma, target, *, weight=None, reduction="mean", detach_mean=True, target_sigma=None):
    """Negative log likelihood of ``target`` under Normal(mean, exp(log_sigma)).

    ``log(sigma) + (target - mean)**2 / (2 sigma**2) + log(2 pi) / 2`` per pixel.  With
    ``detach_mean`` (the default) no gradient reaches ``mean``: only sigma is fitted.  A
    noisy target (``target_sigma``, its own noise) adds its variance: ``sigma**2`` becomes
    ``sigma**2 + target_sigma**2``, so sigma stays the error about the noise-free target.

    Parameters
    ----------
    mean : torch.Tensor
        Predicted images ``[B, C, H, W]``.
    log_sigma : torch.Tensor
        Natural log of the standard deviation, same shape (clamped to
        [-20, 20]).
    target : torch.Tensor
        True images, same shape and units as ``mean``.
    weight : torch.Tensor, optional
        Non-negative pixel weights broadcastable to the images.
    reduction : {"mean", "none"}
        ``"mean"``: one number; ``"none"``: the (weighted) mean per image and
        channel ``[B, C]``.
    detach_mean : bool
        Stop the gradient to ``mean``.
    target_sigma : torch.Tensor, optional
        Standard deviation of the target's own noise, broadcastable to the images, in the
        units of ``mean``.

    Returns
    -------
    torch.Tensor
        The mean negative log likelihood per pixel (in nats).

    Examples
    --------
    >>> import torch
    >>> zero = torch.zeros(1, 1, 2, 2)
    >>> round(float(gaussian_nll(zero, zero, zero + 1)), 4)  # 0.5 + log(2 pi) / 2
    1.4189
    >>> round(float(gaussian_nll(zero, zero, zero + 1, target_sigma=torch.tensor(1.0))), 4)  # variance 2
    1.5155
    """
    _check_pair(mean, target, "mean")
    _check_pair(log_sigma, target, "log_sigma")
    _check_reduction(reduction)
    with torch.autocast(mean.device.type, enabled=False):
        mean, log_sigma, target = _as_float(mean, log_sigma, target)
        if detach_mean:
            mean = mean.detach()
        # The clamp only guards exp() against overflow from a diverging head.
        log_sigma = log_sigma.clamp(-20.0, 20.0)
        if target_sigma is None:
            nll = 0.5 * math.log(2.0 * math.pi) + log_sigma + 0.5 * ((target - mean) * torch.exp(-log_sigma)) ** 2
        else:
            variance = torch.exp(2.0 * log_sigma) + torch.as_tensor(target_sigma, dtype=torch.float32,
                                                                    device=mean.device) ** 2
            nll = 0.5 * (math.log(2.0 * math.pi) + torch.log(variance) + (target - mean) ** 2 / variance)
        return _reduce(nll, _weight_like(weight, mean), reduction)


_NLL = {"laplace": laplace_nll, "gaussian": gaussian_nll}


class LossOutput(NamedTuple):
    """What `BandLoss` returns: the total to minimise and its detached components.

    Attributes
    ----------
    total : torch.Tensor
        The loss to minimise (scalar, with its graph).
    l1 : torch.Tensor
        Mean absolute error (detached).
    ssim : torch.Tensor
        Mean SSIM (detached; the loss uses ``1 - ssim``).
    nll : torch.Tensor or None
        Negative log likelihood of the uncertainty head (detached), or None
        without a ``log_scale``.
    """

    total: torch.Tensor
    l1: torch.Tensor
    ssim: torch.Tensor
    nll: torch.Tensor | None


class BandLoss(nn.Module):
    """``L1 + ssim_weight * (1 - SSIM) + nll_weight * LaplaceNLL``.

    Parameters
    ----------
    ssim_weight : float
        The paper's lambda (1 by default).
    nll_weight : float
        Weight of the Laplace negative log likelihood of the uncertainty head.
        The mean is detached inside that term, so this weight only sets how
        strongly the scale head is trained.
    data_range : float
        Dynamic range for SSIM.
    distribution : {"laplace", "gaussian"}
        Error distribution the uncertainty head's output (the log of the scale
        ``b``, or of ``sigma``) parametrises.
    flux : callable, optional
        The inverse scaling (scaled units -> flux).  When given, a photometric term is
        added: per image, ``|sum(f_pred - f_true)| / (sum|f_true| + n_pixels * flux_floor)``,
        the relative error of the image's total flux, times ``flux_weight``.  L1 in an
        asinh (logarithmic) scaling aims at the median of the log flux, which sums to
        too little flux where the scatter is large; this term holds the totals.
    flux_weight, flux_floor : float
        Weight of that term, and a per-pixel flux added to its denominator (e.g. the
        output band's softening) so that empty crops do not dominate it.
    flux_error : {"total", "pixel", "squared"}
        ``"total"``: the relative error of the image's total flux, as above.  ``"pixel"``:
        the sum of the pixels' absolute flux errors over the same denominator,
        ``sum|f_pred - f_true| / (sum|f_true| + n_pixels * flux_floor)``.  Against noisy
        targets (observed galaxies) a crop's total is mostly its sky noise; the pixel
        form weighs each pixel by its flux, so the galaxy's bright body, where the
        asinh's logarithm makes L1 blind to errors of a few per cent, sets the term.
        ``"squared"``: ``sqrt(sum (f_pred - f_true)^2 / (sum f_true^2 + n_pixels *
        flux_floor^2))``.  An absolute error aims at each pixel's median flux, a squared
        one at its mean, which is what sums to a galaxy's expected total, as the least
        squares fit of the linear colour model in flux does.

    Notes
    -----
    ``forward(pred, target, log_scale=None, weight=None)`` also accepts a
    `~bandsynth.nn.generator.GeneratorOutput` (or any ``(mean, log_scale)``
    pair) as ``pred``.  ``weight`` (e.g. 0 on masked pixels) weighs every term.
    """

    def __init__(self, ssim_weight=1.0, nll_weight=1.0, *, data_range=1.0, distribution="laplace", flux=None,
                 flux_weight=1.0, flux_floor=0.0, flux_error="total"):
        super().__init__()
        if flux is not None and not callable(flux):
            raise TypeError(f"BandLoss flux must be a callable (scaled -> flux) or None, got {type(flux).__name__}")
        if flux_error not in FLUX_ERRORS:
            raise ValueError(f"BandLoss flux_error must be one of {tuple(FLUX_ERRORS)}, got {flux_error!r}")
        self.flux_error = flux_error
        self.flux, self.flux_weight, self.flux_floor = flux, float(flux_weight), float(flux_floor)
        if distribution not in _NLL:
            raise ValueError(f"BandLoss distribution must be one of {tuple(_NLL)}, got {distribution!r}")
        self.distribution = distribution
        for name, value in (("ssim_weight", ssim_weight), ("nll_weight", nll_weight), ("data_range", data_range)):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TypeError(f"BandLoss {name} must be a number, got {type(value).__name__}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"BandLoss {name} must be finite and >= 0, got {value}")
        if data_range == 0:
            raise ValueError("BandLoss data_range must be > 0, got 0")
        self.ssim_weight = float(ssim_weight)
        self.nll_weight = float(nll_weight)
        self.data_range = float(data_range)

    def extra_repr(self):
        """The loss's settings, shown in its ``repr``.

        Returns
        -------
        str
            Weights, data range and distribution.
        """
        return (f"ssim_weight={self.ssim_weight}, nll_weight={self.nll_weight}, data_range={self.data_range}, "
                f"distribution={self.distribution!r}, flux_weight={self.flux_weight if self.flux else 0.0}, "
                f"flux_error={self.flux_error!r}")

    def photometric_error(self, mean, target, weight=None):
        """Mean over images of the relative error of the total flux, or of the pixels' fluxes (needs ``flux``).

        Parameters
        ----------
        mean : torch.Tensor
            Predicted scaled images ``[B, C, H, W]`` (clamped at 3 before
            ``flux`` is applied, to keep it finite).
        target : torch.Tensor
            True scaled images, same shape.
        weight : torch.Tensor, optional
            Pixel weights broadcastable to the images: the totals are weighted sums
            (0 leaves a masked pixel out).

        Returns
        -------
        torch.Tensor
            ``mean over images of |sum(f_pred - f_true)| / (sum|f_true| +
            n_pixels * flux_floor)`` (dimensionless scalar); with ``flux_error="pixel"``
            the numerator is ``sum|f_pred - f_true|``; ``"squared"``: the class docstring's.
        """
        # The clamp keeps sinh finite for a wild early prediction; real images stay far below it.
        pred, true = self.flux(mean.clamp(max=3.0)), self.flux(target)
        w = torch.ones_like(pred) if weight is None else torch.broadcast_to(weight.float(), pred.shape)
        pred, true, w = (pred * w).flatten(1), (true * w).flatten(1), w.flatten(1)
        difference = pred - true
        if self.flux_error == "squared":
            error = difference.square().sum(1).sqrt()
            denominator = (true.square().sum(1) + w.sum(1) * self.flux_floor ** 2).sqrt()
        else:
            error = difference.sum(1).abs() if self.flux_error == "total" else difference.abs().sum(1)
            denominator = true.abs().sum(1) + w.sum(1) * self.flux_floor
        return (error / denominator.clamp(min=1e-12)).mean()

    def nll(self, mean, log_scale, target, *, weight=None, reduction="mean"):
        """Negative log likelihood of ``target`` under this loss's error distribution (mean detached).

        Parameters
        ----------
        mean : torch.Tensor
            Predicted images ``[B, C, H, W]``.
        log_scale : torch.Tensor
            Log of the Laplace scale ``b`` (or of ``sigma`` for the Gaussian),
            same shape.
        target : torch.Tensor
            True images, same shape.
        weight : torch.Tensor, optional
            Non-negative pixel weights broadcastable to the images.
        reduction : {"mean", "none"}
            One number, or one per image and channel ``[B, C]``.

        Returns
        -------
        torch.Tensor
            See :func:`laplace_nll` and :func:`gaussian_nll`.
        """
        return _NLL[self.distribution](mean, log_scale, target, weight=weight, reduction=reduction)

    def forward(self, pred, target, log_scale=None, weight=None):
        """The loss of a batch of predictions.

        Parameters
        ----------
        pred : torch.Tensor or (torch.Tensor, torch.Tensor or None)
            Predicted scaled images ``[B, C, H, W]``, or a
            `~bandsynth.nn.generator.GeneratorOutput` / ``(mean, log_scale)`` pair.
        target : torch.Tensor
            True scaled images, same shape.
        log_scale : torch.Tensor, optional
            Log scale of the uncertainty head (not with a pair as ``pred``);
            without it there is no likelihood term.
        weight : torch.Tensor, optional
            Non-negative pixel weights broadcastable to the images (e.g. 0 on
            masked pixels), applied to the L1, SSIM and likelihood terms; a target
            pixel of weight 0 may be NaN (`masked_target`).

        Returns
        -------
        LossOutput
            The total and its components.

        Raises
        ------
        ValueError
            If ``log_scale`` is given twice or shapes disagree.
        """
        if isinstance(pred, tuple):
            if log_scale is not None:
                raise ValueError("give log_scale either inside pred or as an argument, not both")
            pred, log_scale = pred
        _check_pair(pred, target)
        with torch.autocast(pred.device.type, enabled=False):
            mean, target_f = _as_float(pred, target)
            w = _weight_like(weight, mean)
            target_f = masked_target(target_f, w)
            l1 = _reduce((mean - target_f).abs(), w, "mean")
            similarity = ssim(mean, target_f, data_range=self.data_range, weight=weight)
            total = l1 + self.ssim_weight * (1.0 - similarity)
            if self.flux is not None:
                total = total + self.flux_weight * self.photometric_error(mean, target_f, weight)
            nll = None
            if log_scale is not None:
                nll = self.nll(mean, log_scale, target_f, weight=weight)
                # Added even at weight 0 so every parameter takes part in backward (DDP needs it).
                total = total + self.nll_weight * nll
                nll = nll.detach()
        return LossOutput(total, l1.detach(), similarity.detach(), nll)
