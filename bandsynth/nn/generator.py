"""ResNet image-to-image generator (Zaazou, Bihlo & Tricco; CycleGAN-style).

The network maps a stack of asinh-scaled input bands ``[B, C_in, H, W]`` to the
asinh-scaled target band ``[B, C_out, H, W]``:

* a stem: reflection pad + 7x7 convolution to ``base_width`` channels, norm, ReLU;
* ``n_down`` stride-2 3x3 down-sampling blocks, each doubling the width;
* ``n_res`` residual blocks (pad, 3x3 conv, norm, ReLU, pad, 3x3 conv, norm, skip);
* ``n_down`` transposed-convolution up-sampling blocks, each halving the width;
* a linear 7x7 output convolution (no ``tanh``: scaled fluxes may leave [0, 1]).

The ``"paper"`` preset (one down-sampling block, 9 residual blocks at 128
channels) is the configuration the thesis found best (its "latent scaling
factor 2"); CycleGAN's default is two blocks and 6 residual blocks.

With ``scale_head=True`` a small second head predicts, per pixel, the log of the
scale ``b`` of a Laplace distribution around the mean (aleatoric uncertainty;
the Laplace standard deviation is ``sqrt(2) * b``).  The head reads the final
features through ``detach()``, so its training signal never reaches the trunk:
the mean is shaped by the image loss alone.

Examples
--------
>>> import torch
>>> from bandsynth.nn.generator import build_generator, count_parameters
>>> net = build_generator("tiny", in_channels=2)
>>> out = net(torch.zeros(1, 2, 16, 16))
>>> tuple(out.mean.shape), tuple(out.log_scale.shape)
((1, 1, 16, 16), (1, 1, 16, 16))
>>> count_parameters(build_generator("paper", in_channels=2, scale_head=False))
2811073
"""

from __future__ import annotations

import copy
import math
import types
from typing import NamedTuple

import torch
from torch import nn

__all__ = [
    "GeneratorOutput",
    "ResNetGenerator",
    "WrapsGenerator",
    "PRESETS",
    "build_generator",
    "count_parameters",
    "minimum_input_size",
    "receptive_field",
    "uncertainty_field_margin",
    "LocalMedian",
]

#: Architecture presets: keyword arguments of `ResNetGenerator`.
PRESETS = types.MappingProxyType(
    {
        # Zaazou, Bihlo & Tricco: 1 down/up-sampling block, 9 residual blocks at 128 channels.
        "paper": types.MappingProxyType({"base_width": 64, "n_down": 1, "n_res": 9}),
        # About 7x fewer operations than "paper": trainable on a few CPU cores.
        "small": types.MappingProxyType({"base_width": 32, "n_down": 1, "n_res": 6}),
        # For tests and examples only.
        "tiny": types.MappingProxyType({"base_width": 8, "n_down": 1, "n_res": 2}),
    }
)

_NORMS = ("instance", "batch", "none")
_PADDINGS = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d, "zero": nn.ZeroPad2d}


class GeneratorOutput(NamedTuple):
    """What `ResNetGenerator` returns.

    Attributes
    ----------
    mean : torch.Tensor
        Predicted scaled image, ``[B, out_channels, H, W]``.
    log_scale : torch.Tensor or None
        Natural log of the per-pixel Laplace scale ``b`` (same shape as ``mean``),
        or None for a generator built with ``scale_head=False``.
    """

    mean: torch.Tensor
    log_scale: torch.Tensor | None


def _norm_layer(norm, channels):
    if norm == "instance":
        # CycleGAN: no affine parameters, no running statistics.
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


def _conv_block(c_in, c_out, kernel, *, padding, norm, relu=True):
    """Pad + conv (+ norm) (+ ReLU); the conv bias is redundant before a norm."""
    layers = [_PADDINGS[padding](kernel // 2), nn.Conv2d(c_in, c_out, kernel, bias=norm == "none")]
    layers.append(_norm_layer(norm, c_out))
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


#: The trunk's layers that read the inputs: the stem's padding and 7x7 convolution.
_STEM_LAYERS = 2


class LocalMedian(nn.Module):
    """The median over a ``size x size`` window around each pixel, padded as the network pads.

    The uncertainty head's last step when ``scale_median > 1``: the head's output can
    jump by a factor of 10-20 from one sky pixel to the next, and the asinh scaling's
    inverse turns such a pixel's interval into one orders of magnitude wider than its
    neighbours'.  Written here because torch has no median filter; padding as the
    convolutions do keeps tiles and whole images in agreement.

    Parameters
    ----------
    size : int
        Odd window side.
    padding : {"reflect", "replicate", "zero"}
        How the window is filled beyond the image's edges.

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(1, 1, 5, 5)
    >>> x[0, 0, 2, 2] = 9.0
    >>> float(LocalMedian(3, padding="reflect")(x).abs().max())
    0.0
    """

    def __init__(self, size, *, padding):
        super().__init__()
        self.size = size
        self.pad = _PADDINGS[padding](size // 2)

    def forward(self, x):
        """The filtered ``[B, C, H, W]`` tensor (same shape).

        Parameters
        ----------
        x : torch.Tensor

        Returns
        -------
        torch.Tensor
        """
        k = self.size
        windows = self.pad(x).unfold(2, k, 1).unfold(3, k, 1)
        return windows.reshape(*x.shape, k * k).median(dim=-1).values


class _ResidualBlock(nn.Module):
    def __init__(self, channels, *, padding, norm):
        super().__init__()
        self.body = nn.Sequential(
            *_conv_block(channels, channels, 3, padding=padding, norm=norm),
            *_conv_block(channels, channels, 3, padding=padding, norm=norm, relu=False),
        )

    def forward(self, x):
        return x + self.body(x)


def _check_int(name, value, minimum):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"ResNetGenerator {name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"ResNetGenerator {name} must be >= {minimum}, got {value}")


class ResNetGenerator(nn.Module):
    """CycleGAN-style ResNet generator with an optional uncertainty head.

    Parameters
    ----------
    in_channels : int
        Number of input bands.
    out_channels : int
        Number of predicted bands (1 in every shipped model).
    base_width : int
        Channels after the stem; each down-sampling block doubles them.
    n_down : int
        Number of stride-2 down-sampling (and matching up-sampling) blocks.
        Input height and width must be multiples of ``2 ** n_down``.
    n_res : int
        Number of residual blocks at the bottleneck.
    norm : {"instance", "batch", "none"}
        Normalisation after each hidden convolution.
    padding : {"reflect", "replicate", "zero"}
        Padding of the stem, residual and output convolutions.
    scale_head : bool
        Also predict the log of a per-pixel Laplace scale (aleatoric uncertainty).
    scale_median : int
        Side of a median filter (`LocalMedian`) over the uncertainty head's output:
        1, none; an odd side removes single-pixel outliers of the head's sigma, which
        then reads ``scale_median - 1`` pixels more (`uncertainty_field_margin`).

    Notes
    -----
    Weights are initialised as in CycleGAN: normal with standard deviation 0.02,
    biases zero.  ``forward`` returns a `GeneratorOutput`.
    """

    def __init__(
        self,
        in_channels,
        out_channels=1,
        *,
        base_width=64,
        n_down=1,
        n_res=9,
        norm="instance",
        padding="reflect",
        scale_head=True,
        scale_median=1,
    ):
        super().__init__()
        _check_int("in_channels", in_channels, 1)
        _check_int("out_channels", out_channels, 1)
        _check_int("base_width", base_width, 1)
        _check_int("n_down", n_down, 0)
        _check_int("n_res", n_res, 0)
        if norm not in _NORMS:
            raise ValueError(f"ResNetGenerator norm must be one of {_NORMS}, got {norm!r}")
        if padding not in _PADDINGS:
            raise ValueError(f"ResNetGenerator padding must be one of {tuple(_PADDINGS)}, got {padding!r}")
        if not isinstance(scale_head, bool):
            raise TypeError(f"ResNetGenerator scale_head must be a bool, got {type(scale_head).__name__}")
        _check_int("scale_median", scale_median, 1)
        if scale_median % 2 == 0 or (scale_median > 1 and not scale_head):
            raise ValueError(f"ResNetGenerator scale_median must be odd and needs scale_head=True, got "
                             f"scale_median={scale_median}, scale_head={scale_head}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.base_width = base_width
        self.n_down = n_down
        self.n_res = n_res
        self.norm = norm
        self.padding = padding
        self.scale_median = scale_median

        bias = norm == "none"
        layers = _conv_block(in_channels, base_width, 7, padding=padding, norm=norm)
        width = base_width
        for _ in range(n_down):
            # CycleGAN down-sampling convs zero-pad by one pixel whatever the padding type.
            layers += [nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=bias),
                       _norm_layer(norm, 2 * width), nn.ReLU(inplace=True)]
            width *= 2
        layers += [_ResidualBlock(width, padding=padding, norm=norm) for _ in range(n_res)]
        for _ in range(n_down):
            layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                       _norm_layer(norm, width // 2), nn.ReLU(inplace=True)]
            width //= 2
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Sequential(_PADDINGS[padding](3), nn.Conv2d(width, out_channels, 7))
        if scale_head:
            self.scale_head = nn.Sequential(
                _PADDINGS[padding](1), nn.Conv2d(width, width, 3), nn.ReLU(inplace=True),
                _PADDINGS[padding](3), nn.Conv2d(width, out_channels, 7),
                *([LocalMedian(scale_median, padding=padding)] if scale_median > 1 else []),
            )
        else:
            self.scale_head = None
        self.reset_parameters()

    @property
    def config(self):
        """Constructor arguments, enough to rebuild the network (JSON-serialisable)."""
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "base_width": self.base_width,
            "n_down": self.n_down,
            "n_res": self.n_res,
            "norm": self.norm,
            "padding": self.padding,
            "scale_head": self.scale_head is not None,
            # written only when used, so the configurations (and card hashes) of earlier models stay
            **({"scale_median": self.scale_median} if self.scale_median > 1 else {}),
        }

    @classmethod
    def from_config(cls, config):
        """Rebuild a network from `config` (weights are freshly initialised).

        Parameters
        ----------
        config : mapping
            Constructor arguments, as in :attr:`config`; ``in_channels`` is
            required.

        Returns
        -------
        ResNetGenerator
            A new network with CycleGAN-initialised weights.

        Raises
        ------
        ValueError
            If ``in_channels`` is missing (or a value is invalid).
        """
        config = dict(config)
        try:
            in_channels = config.pop("in_channels")
        except KeyError:
            raise ValueError("generator config needs 'in_channels'") from None
        return cls(in_channels, **config)

    def deepened(self, n_res):
        """A copy with ``n_res`` residual blocks that computes the same function.

        The blocks added after the last one start as identities (their second
        convolution zero), so fine-tuning starts from this network's predictions with
        more capacity rather than from scratch; the receptive field grows by
        ``4 * 2 ** n_down`` pixels per block.

        Parameters
        ----------
        n_res : int
            Residual blocks of the copy, at least this network's.

        Returns
        -------
        ResNetGenerator

        Raises
        ------
        ValueError
            ``n_res`` is below this network's.

        Examples
        --------
        >>> import torch
        >>> net = build_generator("tiny", in_channels=2)
        >>> deeper = net.deepened(4)
        >>> x = torch.randn(1, 2, 32, 32)
        >>> deeper.n_res, bool(torch.equal(net(x).mean, deeper(x).mean))
        (4, True)
        """
        _check_int("n_res", n_res, self.n_res)
        deeper = type(self).from_config({**self.config, "n_res": n_res})
        first = next(i for i, layer in enumerate(self.trunk) if isinstance(layer, _ResidualBlock))
        added = n_res - self.n_res
        for i, layer in enumerate(self.trunk):  # the layers after the blocks move down by `added`
            deeper.trunk[i if i < first + self.n_res else i + added].load_state_dict(layer.state_dict())
        for block in deeper.trunk[first + self.n_res: first + n_res]:
            last = [m for m in block.body if isinstance(m, nn.Conv2d)][-1]
            nn.init.zeros_(last.weight)
            if last.bias is not None:
                nn.init.zeros_(last.bias)
        deeper.head.load_state_dict(self.head.state_dict())
        if self.scale_head is not None:
            deeper.scale_head.load_state_dict(self.scale_head.state_dict())
        return deeper

    def widened(self, base_width):
        """A copy with ``base_width`` channels after the stem (each level as many more) that computes the
        same function.

        The old channels keep their weights; the added ones start from the CycleGAN
        initialisation, and every weight from an added channel to an old one starts at
        zero, so the added channels change nothing until fine-tuning trains those weights
        (they get a gradient: the added channels are not zero).

        Parameters
        ----------
        base_width : int
            Channels after the stem of the copy, at least this network's.

        Returns
        -------
        ResNetGenerator

        Raises
        ------
        ValueError
            ``base_width`` is below this network's.

        Examples
        --------
        >>> import torch
        >>> net = build_generator("tiny", in_channels=2)
        >>> wider = net.widened(12)
        >>> x = torch.randn(1, 2, 32, 32)
        >>> wider.base_width, bool(torch.allclose(net(x).mean, wider(x).mean, atol=1e-6))
        (12, True)
        """
        _check_int("base_width", base_width, self.base_width)
        wider = type(self).from_config({**self.config, "base_width": base_width})
        convolutions = (nn.Conv2d, nn.ConvTranspose2d)
        pairs = [(a, b) for a, b in zip(self.modules(), wider.modules()) if isinstance(a, convolutions)]
        with torch.no_grad():
            for old, new in pairs:
                transposed = isinstance(old, nn.ConvTranspose2d)  # weight [in, out, k, k], not [out, in, k, k]
                weight = new.weight.transpose(0, 1) if transposed else new.weight
                old_weight = old.weight.transpose(0, 1) if transposed else old.weight
                n_out, n_in = old_weight.shape[:2]
                weight[:n_out, :n_in] = old_weight
                weight[:n_out, n_in:] = 0.0  # an added channel never reaches an old one
                if old.bias is not None:
                    new.bias[:n_out] = old.bias
        return wider

    def with_scale_median(self, size):
        """A copy whose uncertainty head ends in a ``size x size`` median filter (`LocalMedian`).

        The mean and the head's weights are this network's; only the head's output is
        filtered, so a calibration fitted before no longer applies.

        Parameters
        ----------
        size : int
            Odd window side (1: no filter).

        Returns
        -------
        ResNetGenerator

        Raises
        ------
        ValueError
            ``size`` is even, or the network has no uncertainty head.

        Examples
        --------
        >>> import torch
        >>> net = build_generator("tiny", in_channels=2)
        >>> smoothed = net.with_scale_median(3)
        >>> x = torch.randn(1, 2, 32, 32)
        >>> bool(torch.equal(net(x).mean, smoothed(x).mean)), uncertainty_field_margin(smoothed)
        (True, 4)
        """
        smoothed = type(self).from_config({**self.config, "scale_median": size})
        smoothed.load_state_dict(self.state_dict())  # the filter has no weights: the same keys
        return smoothed

    def reset_parameters(self):
        """CycleGAN initialisation: N(0, 0.02) weights, zero biases, unit norm scales."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def check_input(self, x):
        """Raise a clear error unless ``x`` is a batch this network can take.

        Parameters
        ----------
        x : torch.Tensor
            Input batch ``[B, in_channels, H, W]``; ``H`` and ``W`` must be at
            least :func:`minimum_input_size` and multiples of ``2 ** n_down``.

        Raises
        ------
        TypeError
            If ``x`` is not a tensor.
        ValueError
            If its shape, channel count or size is wrong.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"generator input must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4:
            raise ValueError(f"generator input must have shape [B, C, H, W], got {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"generator expects {self.in_channels} input band(s), got {x.shape[1]} channels"
            )
        minimum, multiple = minimum_input_size(self), 2**self.n_down
        for axis, size in zip(("height", "width"), x.shape[-2:]):
            if size < minimum:
                raise ValueError(
                    f"generator input {axis} {size} is below the minimum of {minimum} pixels; "
                    "pad the image first"
                )
            if size % multiple:
                raise ValueError(
                    f"generator input {axis} {size} is not a multiple of 2**n_down = {multiple}; "
                    "pad the image first"
                )

    def trunk_features(self, x, *, modulate=None):
        """The trunk's output, with its input convolution in float32 even under bf16 autocast.

        Rounding the scaled inputs to bfloat16 (8 significant bits) moved the total flux
        of faint extrapolated bands by up to 0.3 % (g + r -> u, `benchmarks/model_speed.py`);
        in float32 the stem's convolution costs a few per cent of the trunk's work.

        Parameters
        ----------
        x : torch.Tensor
            ``[B, in_channels, H, W]``.
        modulate : callable, optional
            ``modulate(i, features)`` is applied to the output of the ``i``-th residual
            block and returns the features the trunk continues with (the any-band
            network's per-request modulation, `bandsynth.nn.any_band`).

        Returns
        -------
        torch.Tensor
            ``[B, base_width, H, W]``, in the autocast dtype of the rest of the trunk.
        """
        with torch.autocast(x.device.type, enabled=False):
            features = self.trunk[:_STEM_LAYERS](x)
        if modulate is None:
            return self.trunk[_STEM_LAYERS:](features)
        block = 0
        for layer in self.trunk[_STEM_LAYERS:]:
            features = layer(features)
            if isinstance(layer, _ResidualBlock):
                features = modulate(block, features)
                block += 1
        return features

    def forward(self, x):
        """Predict the scaled target band (and its log scale) of a batch.

        Parameters
        ----------
        x : torch.Tensor
            Asinh-scaled input bands ``[B, in_channels, H, W]`` (checked by
            :meth:`check_input`).

        Returns
        -------
        GeneratorOutput
            ``mean`` ``[B, out_channels, H, W]`` and ``log_scale`` (same shape,
            or None without a scale head).
        """
        self.check_input(x)
        features = self.trunk_features(x)
        mean = self.head(features)
        log_scale = None if self.scale_head is None else self.scale_head(features.detach())
        return GeneratorOutput(mean, log_scale)


def build_generator(preset, in_channels, out_channels=1, **overrides):
    """Build a `ResNetGenerator` from a named preset.

    Parameters
    ----------
    preset : str
        One of `PRESETS` (``"paper"``, ``"small"``, ``"tiny"``).
    in_channels, out_channels : int
        Number of input and output bands.
    **overrides
        Further `ResNetGenerator` keyword arguments (``norm``, ``padding``,
        ``scale_head``, or any preset value).

    Returns
    -------
    ResNetGenerator
        A freshly initialised network.

    Raises
    ------
    TypeError
        If ``preset`` is not a string.
    ValueError
        If ``preset`` is unknown.

    Examples
    --------
    >>> build_generator("small", 2).n_res
    6
    >>> build_generator("huge", 2)
    Traceback (most recent call last):
    ...
    ValueError: unknown generator preset 'huge'; known presets: paper, small, tiny
    """
    if not isinstance(preset, str):
        raise TypeError(f"generator preset must be a str, got {type(preset).__name__}")
    if preset not in PRESETS:
        raise ValueError(f"unknown generator preset {preset!r}; known presets: {', '.join(PRESETS)}")
    return ResNetGenerator(in_channels, out_channels, **{**PRESETS[preset], **overrides})


def count_parameters(model, *, trainable_only=False):
    """Number of parameters of ``model`` (optionally only those that require grad).

    Parameters
    ----------
    model : torch.nn.Module
        Any module.
    trainable_only : bool
        Count only parameters with ``requires_grad``.

    Returns
    -------
    int
        Number of scalar parameters.

    Examples
    --------
    >>> count_parameters(torch.nn.Linear(3, 2))
    8
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _unwrap(model):
    model = getattr(model, "module", model)  # DistributedDataParallel
    if not isinstance(model, ResNetGenerator):
        raise TypeError(f"model must be a ResNetGenerator, got {type(model).__name__}")
    return model


def minimum_input_size(model):
    """Smallest image side (pixels) ``model`` accepts.

    Sides must also be multiples of ``2 ** model.n_down``.  The limit comes from
    the stem's 3-pixel reflection padding and from instance normalisation, which
    needs at least 2x2 pixels at the bottleneck.

    Parameters
    ----------
    model : ResNetGenerator
        The network (or a `~torch.nn.parallel.DistributedDataParallel` wrapping it).

    Returns
    -------
    int
        ``max(4, 2 ** (n_down + 1))`` pixels.

    Examples
    --------
    >>> minimum_input_size(build_generator("paper", 2))
    4
    """
    model = _unwrap(model)
    return max(4, 2 ** (model.n_down + 1))


def receptive_field(model):
    """Side, in pixels, of the input window one output pixel depends on through convolutions.

    Instance normalisation makes every output depend weakly on the whole image;
    this counts only the convolutional footprint (exact for ``n_down <= 1``, an
    upper bound within ``2 ** n_down`` pixels beyond).  It is the field of the
    predicted image; the uncertainty head's is `uncertainty_field_margin` wider.
    Padding an image by half of it on each side removes border effects from the
    original area.

    Parameters
    ----------
    model : ResNetGenerator
        The network (or a `~torch.nn.parallel.DistributedDataParallel` wrapping it).

    Returns
    -------
    int
        The receptive field side, in input pixels.

    Examples
    --------
    >>> receptive_field(build_generator("paper", 2))
    89
    """
    model = _unwrap(model)
    field, jump = 1, 1.0
    field += 6 * jump  # stem 7x7
    for _ in range(model.n_down):
        field += 2 * jump  # 3x3, stride 2
        jump *= 2
    field += model.n_res * 2 * 2 * jump  # two 3x3 per block
    for _ in range(model.n_down):
        # A 3x3 stride-2 transposed conv reads ceil(3 / 2) = 2 input pixels per output pixel.
        field += (math.ceil(3 / 2) - 1) * jump
        jump /= 2
    field += 6 * jump  # output 7x7
    return int(field)


def uncertainty_field_margin(model):
    """Pixels by which the uncertainty head's receptive field exceeds `receptive_field`.

    The head's 3x3 convolution before its 7x7 one adds 2, its median filter
    (``scale_median``) ``scale_median - 1``; 0 without a head.

    Parameters
    ----------
    model : ResNetGenerator

    Returns
    -------
    int

    Examples
    --------
    >>> uncertainty_field_margin(build_generator("tiny", 2).with_scale_median(3))
    4
    """
    model = _unwrap(model)
    return 0 if model.scale_head is None else 2 + model.scale_median - 1


class WrapsGenerator:
    """What the training loop and the inference engine read of a network built around ``self.generator``.

    A mixin of `~bandsynth.nn.network.TranslationNet` and the any-band networks
    (`bandsynth.nn.any_band`): the properties below come from their `ResNetGenerator`.
    """

    def deepened(self, n_res):
        """A copy whose generator has ``n_res`` residual blocks and the same function: the start of fine-tuning
        with more capacity.

        Parameters
        ----------
        n_res : int
            Residual blocks of the copy's generator (`ResNetGenerator.deepened`).

        Returns
        -------
        object
            A network of this one's class.
        """
        return self._with_generator(self.generator.deepened(n_res))

    def widened(self, base_width):
        """A copy whose generator has ``base_width`` channels after its stem and the same function: the
        start of fine-tuning with more capacity.

        Parameters
        ----------
        base_width : int
            Channels after the stem of the copy's generator (`ResNetGenerator.widened`).

        Returns
        -------
        object
            A network of this one's class.
        """
        return self._with_generator(self.generator.widened(base_width))

    def with_scale_median(self, size):
        """A copy whose uncertainty head ends in a ``size x size`` median filter
        (`ResNetGenerator.with_scale_median`): its calibration must be fitted again.

        Parameters
        ----------
        size : int
            Odd window side.

        Returns
        -------
        object
            A network of this one's class.
        """
        return self._with_generator(self.generator.with_scale_median(size))

    def _with_generator(self, generator):
        copied = copy.deepcopy(self)
        copied.generator = generator
        return copied

    @property
    def n_down(self):
        """Number of stride-2 levels: image sides must be multiples of ``2 ** n_down``."""
        return self.generator.n_down

    @property
    def scale_head(self):
        """The generator's uncertainty head (None without one)."""
        return self.generator.scale_head

    @property
    def receptive_field(self):
        """Side, in pixels, of the input window one output pixel depends on."""
        return receptive_field(self.generator)

    @property
    def minimum_input_size(self):
        """Smallest image side the generator accepts."""
        return minimum_input_size(self.generator)
