"""`TranslationNet`: a local network that corrects a per-pixel linear colour model.

The photometric contract (see the "Photometric contract" docs page) in one module:

* **Fixed physical scaling.**  Every band is scaled by ``asinh(f / b) / asinh(m / b)``
  with a softening ``b`` and a maximum ``m`` in the model's flux unit, fixed at
  training time.  No statistic of the image (percentile, min/max) enters: the same
  pixel gives the same scaled value in any cut-out.
* **Locality.**  The generator has no normalisation layer (`ResNetGenerator` with
  ``norm="none"``), so an output pixel depends only on the input pixels inside its
  receptive field (`bandsynth.nn.generator.receptive_field`).
* **A physics baseline.**  The target starts from a per-pixel colour model fitted with
  the weights, and the generator predicts the correction in scaled units.  Two kinds
  (``baseline``): ``"flux"``, the linear colour model ``f_out = sum_i c_i f_i``
  (``mean = scale_out(sum_i c_i f_i) + correction``), good between the inputs'
  wavelengths; and ``"scaled"``, ``a + sum_i c_i x_i`` in the scaled units, which in
  the asinh's logarithmic regime is a power-law SED through the inputs
  (``f_out ~ A prod_i f_i^c_i``): it stays positive where a linear model
  extrapolated beyond the inputs' wavelengths goes negative.
  The baseline runs in float32 even under bf16 autocast, and so do the trunk's input
  convolution and the output heads, so reduced precision touches only the inside of
  the correction's trunk.

Examples
--------
>>> import torch
>>> from bandsynth.nn.network import TranslationNet
>>> net = TranslationNet.build("tiny", softening=[0.01, 0.02], maximum=[1.0, 2.0],
...                            out_softening=0.02, out_maximum=1.5, coefficients=[0.3, 0.5])
>>> x = net.scale_inputs(torch.full((1, 2, 16, 16), 0.4))
>>> flux = net.unscale_output(net(x).mean)      # a fresh net predicts the baseline exactly
>>> round(float(flux[0, 0, 8, 8]), 4)           # 0.3 * 0.4 + 0.5 * 0.4
0.32
"""

from __future__ import annotations

import torch
from torch import nn

from ._scaling_ops import asinh, sinh, vector
from .generator import PRESETS, GeneratorOutput, ResNetGenerator, WrapsGenerator

__all__ = ["TranslationNet"]


class TranslationNet(WrapsGenerator, nn.Module):
    """Generator correction on top of a linear colour model, in a fixed asinh scaling.

    Parameters
    ----------
    generator : ResNetGenerator
        Built with ``norm="none"`` (anything else would make predictions depend
        on the whole image).
    softening, maximum : sequence of float
        Per input band, in flux units: ``x = asinh(f / b) / asinh(m / b)``.
    out_softening, out_maximum : float
        The same for the output band.
    coefficients : sequence of float
        The colour model's coefficients, one per input.
    intercept : float
        The ``"scaled"`` colour model's constant term.
    baseline : {"flux", "scaled"}
        Which colour model (see the module notes).
    """

    def __init__(self, generator, *, softening, maximum, out_softening, out_maximum, coefficients, intercept=0.0,
                 baseline="flux"):
        super().__init__()
        if not isinstance(generator, ResNetGenerator):
            raise TypeError(f"generator must be a ResNetGenerator, got {type(generator).__name__}")
        if generator.norm != "none":
            raise ValueError(
                f"TranslationNet needs a generator without normalisation layers (norm='none'), got {generator.norm!r}"
            )
        n = generator.in_channels
        softening, maximum = (vector("TranslationNet", "softening", softening, n),
                              vector("TranslationNet", "maximum", maximum, n))
        out_softening, out_maximum = (vector("TranslationNet", "out_softening", out_softening, 1),
                                      vector("TranslationNet", "out_maximum", out_maximum, 1))
        if torch.any(softening <= 0) or torch.any(maximum <= 0) or out_softening <= 0 or out_maximum <= 0:
            raise ValueError("TranslationNet softening and maximum values must be > 0")
        self.generator = generator
        # Buffers, so that the scaling and the baseline travel with the weights (safetensors).
        self.register_buffer("in_softening", softening.view(1, n, 1, 1))
        self.register_buffer("in_norm", torch.asinh(maximum / softening).view(1, n, 1, 1))
        self.register_buffer("out_softening", out_softening.view(1, 1, 1, 1))
        self.register_buffer("out_norm", torch.asinh(out_maximum / out_softening).view(1, 1, 1, 1))
        if baseline not in ("flux", "scaled"):
            raise ValueError(f"TranslationNet baseline must be 'flux' or 'scaled', got {baseline!r}")
        self.baseline_kind = baseline
        self.register_buffer("coefficients", vector("TranslationNet", "coefficients", coefficients, n).view(1, n, 1, 1))
        self.register_buffer("intercept", vector("TranslationNet", "intercept", intercept, 1).view(1, 1, 1, 1))
        # Start exactly at the colour model: the correction's output layer begins at zero.
        nn.init.zeros_(generator.head[-1].weight)
        nn.init.zeros_(generator.head[-1].bias)

    @classmethod
    def build(cls, preset, *, softening, maximum, out_softening, out_maximum, coefficients, intercept=0.0,
              baseline="flux", scale_head=True):
        """A fresh network from a generator preset (`bandsynth.nn.generator.PRESETS`).

        The generator has one input channel per coefficient, one output, no
        normalisation layers and a zero-initialised output layer, so the fresh
        network predicts the colour model exactly.

        Parameters
        ----------
        preset : str
            Generator preset (``"paper"``, ``"small"``, ``"tiny"``).
        softening, maximum : sequence of float
            Asinh scaling of each input band, in flux units.
        out_softening, out_maximum : float
            Asinh scaling of the output band, in flux units.
        coefficients : sequence of float
            The colour model's coefficients, one per input band.
        intercept : float
            The ``"scaled"`` colour model's constant term (scaled units).
        baseline : {"flux", "scaled"}
            Which colour model (see the module notes).
        scale_head : bool
            Give the generator an uncertainty head.

        Returns
        -------
        TranslationNet
            The network.

        Raises
        ------
        ValueError
            If the preset is unknown, or a scaling value is not finite and > 0.
        """
        if preset not in PRESETS:
            raise ValueError(f"unknown generator preset {preset!r}; known presets: {', '.join(PRESETS)}")
        n = len(coefficients) if hasattr(coefficients, "__len__") else 1
        generator = ResNetGenerator(n, 1, **PRESETS[preset], norm="none", scale_head=scale_head)
        return cls(generator, softening=softening, maximum=maximum, out_softening=out_softening,
                   out_maximum=out_maximum, coefficients=coefficients, intercept=intercept, baseline=baseline)

    @property
    def in_channels(self):
        """Number of input bands."""
        return self.generator.in_channels

    # Scaling, differentiable and in float32 whatever the autocast state.
    def scale_inputs(self, flux):
        """Input fluxes ``[B, C, H, W]`` -> network units.

        Parameters
        ----------
        flux : torch.Tensor

        Returns
        -------
        torch.Tensor
            Scaled inputs, float32, same shape.
        """
        return asinh(flux.float() / self.in_softening) / self.in_norm

    def unscale_inputs(self, x):
        """Network units -> input fluxes (exact inverse of `scale_inputs`).

        Parameters
        ----------
        x : torch.Tensor

        Returns
        -------
        torch.Tensor
            Input fluxes ``[B, C, H, W]``, float32.
        """
        return sinh(x.float() * self.in_norm) * self.in_softening

    def scale_output(self, flux):
        """Output-band fluxes -> network units.

        Parameters
        ----------
        flux : torch.Tensor

        Returns
        -------
        torch.Tensor
            Scaled output, float32, same shape.
        """
        return asinh(flux.float() / self.out_softening) / self.out_norm

    def unscale_output(self, y):
        """Network units -> output-band fluxes (exact inverse of `scale_output`).

        Parameters
        ----------
        y : torch.Tensor

        Returns
        -------
        torch.Tensor
            Output-band fluxes, float32, same shape.
        """
        return sinh(y.float() * self.out_norm) * self.out_softening

    def baseline(self, x):
        """The colour model's prediction for scaled inputs ``x``, in scaled output units.

        Parameters
        ----------
        x : torch.Tensor

        Returns
        -------
        torch.Tensor
            ``[B, 1, H, W]``, float32 (computed outside autocast).
        """
        with torch.autocast(x.device.type, enabled=False):
            if self.baseline_kind == "scaled":
                return self.intercept + (x.float() * self.coefficients).sum(dim=1, keepdim=True)
            flux = self.unscale_inputs(x)
            return self.scale_output((flux * self.coefficients).sum(dim=1, keepdim=True))

    def forward(self, x):
        """Predict the scaled output band: colour baseline plus the generator's correction.

        Parameters
        ----------
        x : torch.Tensor
            Scaled inputs ``[B, C, H, W]`` (sides multiples of ``2 ** n_down``).

        Returns
        -------
        GeneratorOutput
            ``mean`` ``[B, 1, H, W]`` in scaled output units and ``log_scale`` (the
            log of the uncalibrated sigma; None without an uncertainty head), both float32.
        """
        base = self.baseline(x)
        gen = self.generator
        gen.check_input(x)
        features = gen.trunk_features(x)
        # The heads run in float32: bf16 in the trunk moves the correction, not the photometry.
        with torch.autocast(x.device.type, enabled=False):
            features = features.float()
            mean = base + gen.head(features)
            log_scale = None if gen.scale_head is None else gen.scale_head(features.detach())
        return GeneratorOutput(mean, log_scale)

    @property
    def config(self):
        """JSON-serialisable description, enough to rebuild the network (weights aside)."""
        soft = self.in_softening.flatten()
        return {
            "generator": self.generator.config,
            "softening": soft.tolist(),
            "maximum": (soft * torch.sinh(self.in_norm.flatten())).tolist(),
            "out_softening": float(self.out_softening),
            "out_maximum": float(self.out_softening * torch.sinh(self.out_norm)),
            "coefficients": self.coefficients.flatten().tolist(),
            "intercept": float(self.intercept),
            "baseline": self.baseline_kind,
        }

    @classmethod
    def from_config(cls, config):
        """Rebuild a network from `config` (the buffers are overwritten when weights are loaded).

        Parameters
        ----------
        config : mapping
            As :attr:`config` returns: ``generator`` (the generator's
            configuration) and the keyword arguments of `TranslationNet`.

        Returns
        -------
        TranslationNet
            A network with freshly initialised generator weights.
        """
        config = dict(config)
        generator = ResNetGenerator.from_config(config.pop("generator"))
        return cls(generator, **config)

