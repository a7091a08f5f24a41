"""`AnyBandNet`: one network that predicts any of its bands from any subset of the others.

A model reads and writes a fixed list of bands (``bands``, one *slot* each, in
wavelength order).  A request is a pair (the bands at hand, the band wanted); it
reaches the network as constant planes beside the images, so the network stays a
plain local image-to-image network and everything the photometric contract asks of
`~bandsynth.nn.network.TranslationNet` holds here too:

* **Fixed physical scaling** per band, ``asinh(f / b) / asinh(m / b)``, as for the
  dedicated models.
* **Locality.**  No normalisation layer; the request planes are constant over the
  image, so an output pixel depends only on the input pixels inside the receptive
  field, and tiles, cut-outs and flips see the same request.
* **Request modulation (optional, ``film=True``).**  A request enters the network only
  at its input convolution, and the trunk's features must carry it through every
  residual block.  With ``film=True`` a linear map of the request (presence and wanted
  band, ``2K`` numbers) also scales and shifts each residual block's output channels
  (feature-wise linear modulation, Perez et al. 2018), so that one trunk can use its
  features differently for each request.  It is a function of the request alone,
  constant over the image, so locality holds; it starts as the identity, so a network
  given it (`AnyBandNet.with_film`) predicts exactly what it did before.
* **A physics baseline for every request.**  The card stores the second moments of
  the scaled bands over the training pixels: ``moments``, the Gram matrix of the
  inputs as observed, ``z = [1, x_1, ..., x_K]``, and ``cross``, the moments of ``z``
  with each band's target image (its noise-free truth where the data has one).
  The colour model of any request -- ``x_t = a + sum_i c_i x_i`` over the bands at
  hand, least squares on the training pixels, a power-law SED in the asinh's
  logarithmic regime -- solves a sub-block of those matrices, exactly and cheaply,
  for each of the ``K 2^(K-1)`` requests.  The network predicts the correction in
  scaled units.  With ``baseline="flux"`` the moments are those of the fluxes and the
  colour model is the linear one in flux, ``f_t = sum_i c_i f_i`` (no constant), taken
  into the wanted band's scaled units: on images whose galaxies are faint and small
  (observed ones) it is the sturdier start, as the flux-weighted fit follows the
  galaxies' light and sky noise averages out in it.

* **PSF and depth tags (optional, ``psf_tags=True``, ``depth_tags=True``).**  One more
  constant plane per slot and kind says how much broader that input's PSF is than the
  training images' in that band, ``log2(FWHM / FWHM_trained)``, or how much noisier it is,
  ``log2(noise / noise_trained)`` (0 for a band not at hand): the network can learn, from
  inputs blurred or made noisier at random in training
  (`~bandsynth.datasets.band_subsets.BandSubsetDataset`'s ``psf_max_ratio`` and
  ``noise_max_ratio``), to read images whose seeing or depth is worse than its training
  images'.  Constant over the image, the tags keep the network local;
  `AnyBandNet.with_psf_tags` and `AnyBandNet.with_depth_tags` add them to a trained network
  with zero weights, so that it predicts what it did (to the float rounding of an input
  convolution over more channels).

Input layout, ``[B, 3K, H, W]`` (`request_planes` builds it): the scaled images in
their slots (0 where a band is missing), one presence plane per slot (1 or 0) and a
one-hot plane per slot for the wanted band; each kind of tag adds ``K`` planes after
them (PSF tags, then depth tags: ``[B, 5K, H, W]`` with both).  `TaskNet` presents one request as an
ordinary ``inputs -> output`` network, so the inference engine, exact tiling and the
uncertainty sampling run it unchanged.

Examples
--------
>>> import torch
>>> from bandsynth.nn.any_band import AnyBandNet
>>> moments = torch.eye(4) + 0.5          # Gram matrix of [1, x_g, x_r, x_i]
>>> net = AnyBandNet.build("tiny", bands=["g", "r", "i"], softening=[0.01] * 3, maximum=[1.0] * 3,
...                        moments=moments, cross=moments[:, 1:])
>>> task = net.task(inputs=["g", "i"], output="r")
>>> x = task.scale_inputs(torch.full((1, 2, 16, 16), 0.3))
>>> bool(torch.allclose(task(x).mean, task.baseline(x)))    # a fresh net predicts its colour model
True
"""

from __future__ import annotations

import torch
from torch import nn

from ._scaling_ops import asinh, sinh, vector
from .generator import PRESETS, GeneratorOutput, ResNetGenerator, WrapsGenerator

__all__ = ["AnyBandNet", "TaskNet", "request_planes", "RIDGE", "BASELINES", "BASELINE_METHODS", "INPUT_TAGS"]

#: The colour models an `AnyBandNet` can start from: linear in the scaled units (with a constant) or in flux.
BASELINES = ("scaled", "flux")
#: What each kind of colour model is, for the cards.
BASELINE_METHODS = {"scaled": "x_out = a + sum c_i x_i over the bands at hand, linear in the scaled units",
                    "flux": "f_out = sum c_i f_i over the bands at hand, the linear colour model in flux"}

#: The kinds of input tag an `AnyBandNet` may read, in the order of their planes: how much broader each
#: input's PSF is than the training images' (``psf``), and how much noisier (``depth``), as ``log2`` ratios.
INPUT_TAGS = ("psf", "depth")
_TAG_NAMES = {"psf": "PSF", "depth": "depth"}

#: Relative ridge added to the moments' diagonal: keeps nearly collinear bands solvable.
RIDGE = 1e-6


def request_planes(values, present, target, psf=None, depth=None):
    """The network input of a batch of requests: images, presence planes, target planes (and input tags).

    Parameters
    ----------
    values : torch.Tensor
        Scaled images in their slots, ``[B, K, H, W]`` (anything where a band is missing).
    present : torch.Tensor
        ``[B, K]`` bool: the bands at hand.
    target : torch.Tensor
        ``[B]`` int: the slot of the wanted band (not among the bands at hand).
    psf : torch.Tensor, optional
        ``[B, K]``: per slot ``log2(FWHM / FWHM_trained)`` of the band at hand, for a network
        with PSF tags (ignored where a band is missing).
    depth : torch.Tensor, optional
        ``[B, K]``: per slot ``log2(noise / noise_trained)`` of the band at hand, for a network
        with depth tags.

    Returns
    -------
    torch.Tensor
        ``[B, 3K, H, W]``, and ``K`` more planes for each of ``psf`` and ``depth`` given, float32.
    """
    b, k, h, w = values.shape
    present = present.to(values.device, torch.float32).view(b, k, 1, 1)
    wanted = nn.functional.one_hot(target.to(values.device).long(), k).to(torch.float32).view(b, k, 1, 1)
    planes = [values.float() * present, present.expand(b, k, h, w), wanted.expand(b, k, h, w)]
    for tags in (psf, depth):
        if tags is not None:
            planes.append((tags.to(values.device, torch.float32).view(b, k, 1, 1) * present).expand(b, k, h, w))
    return torch.cat(planes, dim=1)


class AnyBandNet(WrapsGenerator, nn.Module):
    """A generator correcting, for any request, the colour model solved from stored pixel moments.

    Parameters
    ----------
    generator : ResNetGenerator
        With ``3K + 1`` input channels (the request planes and the baseline; ``K`` more for
        each of ``psf_tags`` and ``depth_tags``), one output and ``norm="none"``.
    bands : sequence of str
        The band of each slot (registry names).
    softening, maximum : sequence of float
        Per band, in flux units: ``x = asinh(f / b) / asinh(m / b)``.
    moments : array-like
        ``(K + 1, K + 1)`` second moments of ``z = [1, x_1, ..., x_K]`` (the scaled
        inputs as observed; the fluxes for ``baseline="flux"``) over the training pixels.
    cross : array-like
        ``(K + 1, K)`` moments of ``z`` with each band's target image (scaled, or in flux).
    baseline : {"scaled", "flux"}
        The colour model each request starts from (`BASELINES`).
    film : bool
        Modulate each residual block's output by the request (the module docstring).
    psf_tags, depth_tags : bool
        Read one PSF tag plane, one depth tag plane per slot (the module docstring).
    """

    def __init__(self, generator, *, bands, softening, maximum, moments, cross, baseline="scaled", film=False,
                 psf_tags=False, depth_tags=False):
        super().__init__()
        if baseline not in BASELINES:
            raise ValueError(f"AnyBandNet baseline must be one of {BASELINES}, got {baseline!r}")
        if not isinstance(generator, ResNetGenerator):
            raise TypeError(f"generator must be a ResNetGenerator, got {type(generator).__name__}")
        bands = tuple(str(b) for b in bands)
        k = len(bands)
        if k < 2 or len(set(bands)) != k:
            raise ValueError(f"AnyBandNet needs at least two distinct bands, got {list(bands)}")
        if generator.norm != "none":
            raise ValueError(f"AnyBandNet needs a generator without normalisation layers (norm='none'), "
                             f"got {generator.norm!r}")
        tags = tuple(kind for kind, read in zip(INPUT_TAGS, (psf_tags, depth_tags)) if read)
        planes = (3 + len(tags)) * k
        if generator.in_channels != planes + 1 or generator.out_channels != 1:
            reading = f" with {' and '.join(_TAG_NAMES[t] for t in tags)} tags" if tags else ""
            raise ValueError(f"AnyBandNet over {k} bands{reading} needs a generator with {planes + 1} input channels "
                             f"and 1 output, got {generator.in_channels} and {generator.out_channels}")
        softening = vector("AnyBandNet", "softening", softening, k)
        maximum = vector("AnyBandNet", "maximum", maximum, k)
        if torch.any(softening <= 0) or torch.any(maximum <= 0):
            raise ValueError("AnyBandNet softening and maximum values must be > 0")
        moments = torch.as_tensor(moments, dtype=torch.float64)
        cross = torch.as_tensor(cross, dtype=torch.float64)
        for name, value, shape in (("moments", moments, (k + 1, k + 1)), ("cross", cross, (k + 1, k))):
            if value.shape != shape or not torch.all(torch.isfinite(value)):
                raise ValueError(f"AnyBandNet {name} must be a finite {shape} matrix, got shape {tuple(value.shape)}")
        self.bands = bands
        self.tags = tags
        self.baseline_kind = baseline
        self.generator = generator
        self.register_buffer("softening", softening)
        self.register_buffer("norm", torch.asinh(maximum / softening))
        self.register_buffer("moments", 0.5 * (moments + moments.T))
        self.register_buffer("cross", cross)
        self._colour_cache = {}
        nn.init.zeros_(generator.head[-1].weight)
        nn.init.zeros_(generator.head[-1].bias)
        self.film = None
        if film:
            width = generator.base_width * 2 ** generator.n_down
            # per residual block and channel, a scale (1 + s) and a shift; zero: the identity
            self.film = nn.Linear(2 * k, 2 * generator.n_res * width)
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    @classmethod
    def build(cls, preset, *, bands, softening, maximum, moments, cross, baseline="scaled", scale_head=True,
              film=False, psf_tags=False, depth_tags=False):
        """A fresh network from a generator preset; it predicts each request's colour model exactly.

        Parameters
        ----------
        preset : str
            Generator preset (`bandsynth.nn.generator.PRESETS`).
        bands, softening, maximum, moments, cross, baseline, film, psf_tags, depth_tags
            As for `AnyBandNet`.
        scale_head : bool
            Give the generator an uncertainty head.

        Returns
        -------
        AnyBandNet
        """
        if preset not in PRESETS:
            raise ValueError(f"unknown generator preset {preset!r}; known presets: {', '.join(PRESETS)}")
        planes = (3 + bool(psf_tags) + bool(depth_tags)) * len(bands)
        generator = ResNetGenerator(planes + 1, 1, **PRESETS[preset], norm="none", scale_head=scale_head)
        return cls(generator, bands=bands, softening=softening, maximum=maximum, moments=moments, cross=cross,
                   baseline=baseline, film=film, psf_tags=psf_tags, depth_tags=depth_tags)

    def with_film(self):
        """A copy of this network with request modulation (``film=True``) that predicts exactly what it does.

        The copy's modulation starts as the identity; training it from there lets each
        request use the trunk's features in its own way.

        Returns
        -------
        AnyBandNet
            A new network; this one is unchanged.

        Raises
        ------
        ValueError
            This network already has request modulation.
        """
        if self.film is not None:
            raise ValueError("this AnyBandNet already modulates its features by the request (film=True)")
        net = type(self).from_config({**self.config, "film": True}).to(self.softening.device)
        net.load_state_dict({**net.state_dict(), **self.state_dict()})  # strict: only the new, zero modulation is kept
        return net

    def with_psf_tags(self):
        """A copy of this network that reads PSF tags (``psf_tags=True``) and predicts what it does.

        The tag planes' weights in the input convolution start at zero, so every tag is
        ignored until training (on inputs blurred at random) teaches the network to read them.

        Returns
        -------
        AnyBandNet
            A new network; this one is unchanged.

        Raises
        ------
        ValueError
            This network already reads PSF tags.
        """
        return self._with_tags("psf")

    def with_depth_tags(self):
        """A copy of this network that reads depth tags (``depth_tags=True``) and predicts what it does.

        As `with_psf_tags`: the new planes' weights start at zero, until training on inputs
        made noisier at random teaches the network to read them.

        Returns
        -------
        AnyBandNet
            A new network; this one is unchanged.

        Raises
        ------
        ValueError
            This network already reads depth tags.
        """
        return self._with_tags("depth")

    def _with_tags(self, kind):
        if kind in self.tags:
            raise ValueError(f"this AnyBandNet already reads {_TAG_NAMES[kind]} tags ({kind}_tags=True)")
        tags = tuple(t for t in INPUT_TAGS if t in self.tags or t == kind)
        k = len(self.bands)
        config = {**self.config, f"{kind}_tags": True}
        config["generator"] = {**config["generator"], "in_channels": (3 + len(tags)) * k + 1}
        net = type(self).from_config(config).to(self.softening.device)
        state = self.state_dict()
        stem = state["generator.trunk.1.weight"]  # the 7x7 convolution after the stem's padding: reads the input
        # the input is [3K request planes, K planes per kind of tag, baseline]: zero weights for the new kind's
        at = (3 + tags.index(kind)) * k
        state["generator.trunk.1.weight"] = torch.cat(
            [stem[:, :at], stem.new_zeros(stem.shape[0], k, *stem.shape[2:]), stem[:, at:]], dim=1)
        net.load_state_dict(state)  # strict: every other weight carries over as it is
        return net

    @property
    def psf_tags(self):
        """Whether the network reads PSF tags (``"psf" in tags``)."""
        return "psf" in self.tags

    @property
    def depth_tags(self):
        """Whether the network reads depth tags (``"depth" in tags``)."""
        return "depth" in self.tags

    @property
    def in_channels(self):
        """Channels of the network input: ``3K`` request planes and ``K`` per kind of input tag."""
        return (3 + len(self.tags)) * len(self.bands)

    def slot(self, band):
        """The slot index of ``band``.

        Parameters
        ----------
        band : str
            A registry band name.

        Returns
        -------
        int

        Raises
        ------
        ValueError
            The network has no such band.
        """
        try:
            return self.bands.index(band)
        except ValueError:
            raise ValueError(f"band {band!r} is not one this network reads or writes; it knows "
                             f"{', '.join(self.bands)}") from None

    def colour_model(self, present, target):
        """Intercept and per-slot coefficients of the colour model of one request.

        Parameters
        ----------
        present : sequence of bool
            Per slot: the band is at hand.
        target : int
            Slot of the wanted band.

        Returns
        -------
        intercept : float
        coefficients : torch.Tensor
            ``[K]`` float64, zero for the bands not at hand.
        """
        key = (tuple(bool(p) for p in present), int(target))
        # Loading weights writes the moments in place: their version counters keep the cache current.
        version = (self.moments._version, self.cross._version)
        if self._colour_cache.get("version") != version:
            self._colour_cache = {"version": version}
        if key not in self._colour_cache:
            if key[0][key[1]]:
                raise ValueError(f"band {self.bands[key[1]]!r} is both wanted and at hand")
            if not any(key[0]):
                raise ValueError("a request needs at least one band at hand")
            constant = self.baseline_kind == "scaled"  # the linear colour model in flux has none
            rows = [0] * constant + [i + 1 for i, p in enumerate(key[0]) if p]
            m = self.moments.detach().to("cpu", torch.float64)
            block = m[rows][:, rows]
            block = block + RIDGE * torch.diagonal(block).mean() * torch.eye(len(rows), dtype=torch.float64)
            solution = torch.linalg.solve(block, self.cross.detach().to("cpu", torch.float64)[rows, key[1]])
            coefficients = torch.zeros(len(self.bands), dtype=torch.float64)
            coefficients[[r - 1 for r in rows[constant:]]] = solution[constant:]
            self._colour_cache[key] = (float(solution[0]) if constant else 0.0, coefficients)
        return self._colour_cache[key]

    def _requests(self, x):
        k = len(self.bands)
        present = x[:, k:2 * k, 0, 0] > 0.5
        target = x[:, 2 * k:3 * k, 0, 0].argmax(dim=1)
        return present, target

    def baseline(self, x):
        """Each request's colour model, in the wanted band's scaled units, ``[B, 1, H, W]`` float32.

        Parameters
        ----------
        x : torch.Tensor
            Request planes (`request_planes`).

        Returns
        -------
        torch.Tensor
        """
        k = len(self.bands)
        present, target = self._requests(x)
        intercepts, coefficients = [], []
        for p, t in zip(present.tolist(), target.tolist()):
            a, c = self.colour_model(p, t)
            intercepts.append(a)
            coefficients.append(c)
        a = torch.tensor(intercepts, dtype=torch.float32, device=x.device).view(-1, 1, 1, 1)
        c = torch.stack(coefficients).to(x.device, torch.float32).view(-1, k, 1, 1)
        with torch.autocast(x.device.type, enabled=False):
            if self.baseline_kind == "scaled":
                return a + (x[:, :k].float() * c).sum(dim=1, keepdim=True)
            flux = (self.unscale(x[:, :k], range(k)) * c).sum(dim=1, keepdim=True)
            soft, norm = self.softening[target].view(-1, 1, 1, 1), self.norm[target].view(-1, 1, 1, 1)
            return asinh(flux / soft) / norm

    def _modulation(self, x):
        """``modulate(i, features)`` of the requests in ``x`` for the trunk (None without ``film``)."""
        if self.film is None:
            return None
        k = len(self.bands)
        request = x[:, k:3 * k, 0, 0].float()  # presence and wanted-band planes: constant over the image
        film = self.film(request).view(len(x), self.generator.n_res, 2, -1, 1, 1)

        def modulate(i, features):
            return features * (1 + film[:, i, 0].to(features.dtype)) + film[:, i, 1].to(features.dtype)
        return modulate

    def forward(self, x):
        """Predict each request's wanted band, in its scaled units: colour model plus correction.

        Parameters
        ----------
        x : torch.Tensor
            Request planes ``[B, 3K, H, W]`` (sides multiples of ``2 ** n_down``).

        Returns
        -------
        GeneratorOutput
            ``mean`` and ``log_scale`` ``[B, 1, H, W]``, float32.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"AnyBandNet over {len(self.bands)} bands expects [B, {self.in_channels}, H, W] "
                             f"request planes, got {tuple(x.shape)}")
        base = self.baseline(x)
        gen = self.generator
        features_in = torch.cat([x, base.to(x.dtype)], dim=1)
        gen.check_input(features_in)
        features = gen.trunk_features(features_in, modulate=self._modulation(x))
        with torch.autocast(x.device.type, enabled=False):
            features = features.float()
            mean = base + gen.head(features)
            log_scale = None if gen.scale_head is None else gen.scale_head(features.detach())
        return GeneratorOutput(mean, log_scale)

    def scale(self, flux, slots):
        """Fluxes of the bands in ``slots`` -> scaled units.

        Parameters
        ----------
        flux : torch.Tensor
            ``[B, len(slots), H, W]``, in flux units.
        slots : sequence of int
            The bands' slots.

        Returns
        -------
        torch.Tensor
            Float32, same shape.
        """
        soft, norm = self.softening[list(slots)].view(1, -1, 1, 1), self.norm[list(slots)].view(1, -1, 1, 1)
        return asinh(flux.float() / soft) / norm

    def unscale(self, x, slots):
        """Scaled units of the bands in ``slots`` -> fluxes (exact inverse of `scale`).

        Parameters
        ----------
        x : torch.Tensor
            ``[B, len(slots), H, W]``, scaled.
        slots : sequence of int
            The bands' slots.

        Returns
        -------
        torch.Tensor
            Fluxes, float32, same shape.
        """
        soft, norm = self.softening[list(slots)].view(1, -1, 1, 1), self.norm[list(slots)].view(1, -1, 1, 1)
        return sinh(x.float() * norm) * soft

    def task(self, *, inputs, output, psf=None, depth=None):
        """This network as an ``inputs -> output`` network (`TaskNet`).

        Parameters
        ----------
        inputs : sequence of str
            The bands at hand, in the channel order the task takes them.
        output : str
            The wanted band.
        psf, depth : sequence of float, optional
            The inputs' PSF and depth tags (`TaskNet`).

        Returns
        -------
        TaskNet
        """
        return TaskNet(self, inputs=inputs, output=output, psf=psf, depth=depth)

    @property
    def config(self):
        """JSON-serialisable description, enough to rebuild the network (weights aside)."""
        return {
            "kind": "any_band",
            "generator": self.generator.config,
            "bands": list(self.bands),
            "softening": self.softening.tolist(),
            "maximum": (self.softening * torch.sinh(self.norm)).tolist(),
            "moments": self.moments.tolist(),
            "cross": self.cross.tolist(),
            # written only when not the default, so the configurations (and card hashes) of earlier models stay
            **({"baseline": self.baseline_kind} if self.baseline_kind != "scaled" else {}),
            **({"film": True} if self.film is not None else {}),
            **({"psf_tags": True} if self.psf_tags else {}),
            **({"depth_tags": True} if self.depth_tags else {}),
        }

    @classmethod
    def from_config(cls, config):
        """Rebuild a network from `config` (buffers are overwritten when weights are loaded).

        Parameters
        ----------
        config : mapping
            As :attr:`config` returns.

        Returns
        -------
        AnyBandNet
        """
        config = dict(config)
        config.pop("kind", None)
        generator = ResNetGenerator.from_config(config.pop("generator"))
        return cls(generator, **config)


class TaskNet(WrapsGenerator, nn.Module):
    """One request of an `AnyBandNet` as an ``inputs -> output`` network.

    It takes the scaled images of ``inputs`` ``[B, n_inputs, H, W]`` as a
    `~bandsynth.nn.network.TranslationNet` does and has the same attributes
    (``scale_inputs``, ``unscale_output``, ``n_down``, ``receptive_field`` ...), so the
    inference engine and the uncertainty sampling run it unchanged.  It shares the
    weights of the `AnyBandNet` it came from.

    Parameters
    ----------
    net : AnyBandNet
    inputs : sequence of str
        The bands at hand (registry names), in channel order.
    output : str
        The wanted band.
    psf : sequence of float, optional
        Per input band, its PSF tag ``log2(FWHM / FWHM_trained)``; for a network with PSF tags
        (default: 0, the training images' PSF).
    depth : sequence of float, optional
        Per input band, its depth tag ``log2(noise / noise_trained)``; for a network with depth
        tags (default: 0, the training images' noise).
    """

    def __init__(self, net, *, inputs, output, psf=None, depth=None):
        super().__init__()
        if not isinstance(net, AnyBandNet):
            raise TypeError(f"net must be an AnyBandNet, got {type(net).__name__}")
        inputs = tuple(inputs)
        if not inputs or len(set(inputs)) != len(inputs):
            raise ValueError(f"inputs must name at least one band, each once, got {list(inputs)}")
        if output in inputs:
            raise ValueError(f"band {output!r} is both wanted and at hand")
        self.net = net
        self.inputs, self.output = inputs, output
        self.input_slots = tuple(net.slot(b) for b in inputs)
        self.output_slot = net.slot(output)
        present = torch.zeros(len(net.bands), dtype=torch.bool)
        present[list(self.input_slots)] = True
        self.register_buffer("present", present, persistent=False)
        for kind, given in zip(INPUT_TAGS, (psf, depth)):
            tags = torch.zeros(len(net.bands), dtype=torch.float32)
            if given is not None:
                given = torch.as_tensor(given, dtype=torch.float32).reshape(-1)
                if kind not in net.tags:
                    raise ValueError(f"this network reads no {_TAG_NAMES[kind]} tags ({kind}_tags=False): it cannot "
                                     f"take {kind}")
                if given.numel() != len(inputs) or not torch.all(torch.isfinite(given)):
                    raise ValueError(f"{kind} needs one finite tag per input band ({', '.join(inputs)}), "
                                     f"got {given.tolist()}")
                tags[list(self.input_slots)] = given
            self.register_buffer(kind, tags, persistent=False)

    @property
    def generator(self):
        """The shared generator (the engine reads its receptive field)."""
        return self.net.generator

    @property
    def in_channels(self):
        """Number of input bands."""
        return len(self.inputs)

    def scale_inputs(self, flux):
        """Input fluxes ``[B, n_inputs, H, W]`` -> scaled units.

        Parameters
        ----------
        flux : torch.Tensor

        Returns
        -------
        torch.Tensor
            Scaled inputs, float32.
        """
        return self.net.scale(flux, self.input_slots)

    def unscale_inputs(self, x):
        """Scaled inputs -> fluxes (exact inverse of `scale_inputs`).

        Parameters
        ----------
        x : torch.Tensor

        Returns
        -------
        torch.Tensor
            Input fluxes, float32.
        """
        return self.net.unscale(x, self.input_slots)

    def scale_output(self, flux):
        """Output-band fluxes -> scaled units.

        Parameters
        ----------
        flux : torch.Tensor

        Returns
        -------
        torch.Tensor
            Scaled output, float32.
        """
        return self.net.scale(flux, (self.output_slot,))

    def unscale_output(self, y):
        """Scaled output -> fluxes (exact inverse of `scale_output`).

        Parameters
        ----------
        y : torch.Tensor

        Returns
        -------
        torch.Tensor
            Output-band fluxes, float32.
        """
        return self.net.unscale(y, (self.output_slot,))

    def planes(self, x):
        """The `AnyBandNet` input (request planes) of scaled inputs.

        Parameters
        ----------
        x : torch.Tensor
            ``[B, n_inputs, H, W]``, scaled.

        Returns
        -------
        torch.Tensor
            ``[B, 3K, H, W]`` and ``K`` planes per kind of input tag the network reads, float32.
        """
        b, _, h, w = x.shape
        values = x.new_zeros((b, len(self.net.bands), h, w), dtype=torch.float32)
        values[:, list(self.input_slots)] = x.float()
        target = torch.full((b,), self.output_slot, dtype=torch.long)
        tags = {kind: getattr(self, kind).expand(b, -1) for kind in self.net.tags}
        return request_planes(values, self.present.expand(b, -1), target, **tags)

    def baseline(self, x):
        """The request's colour model for scaled inputs, in scaled output units.

        Parameters
        ----------
        x : torch.Tensor
            ``[B, n_inputs, H, W]``, scaled.

        Returns
        -------
        torch.Tensor
            ``[B, 1, H, W]``, float32.
        """
        return self.net.baseline(self.planes(x))

    def forward(self, x):
        """Predict the scaled output band of scaled inputs.

        Parameters
        ----------
        x : torch.Tensor
            ``[B, n_inputs, H, W]``, scaled (sides multiples of ``2 ** n_down``).

        Returns
        -------
        GeneratorOutput
        """
        if x.ndim != 4 or x.shape[1] != len(self.inputs):
            raise ValueError(f"this task takes {len(self.inputs)} band(s) ({', '.join(self.inputs)}) as "
                             f"[B, {len(self.inputs)}, H, W], got {tuple(x.shape)}")
        return self.net(self.planes(x))

    @property
    def config(self):
        """The shared network's configuration and the request."""
        task = {"inputs": list(self.inputs), "output": self.output}
        for kind in self.net.tags:
            task[kind] = [float(getattr(self, kind)[s]) for s in self.input_slots]
        return {**self.net.config, "task": task}
