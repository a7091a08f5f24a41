"""The inference engine: scaled inputs in, scaled mean and log-sigma out, for any image size.

Because a `~bandsynth.nn.network.TranslationNet` is local (no normalisation layer,
no image statistic), an image can be cut into tiles that each carry a *halo* of
context at least half the receptive field wide: the core of every tile is then the
same as in a prediction of the whole image (to float rounding), and nothing is
blended.  Memory is bounded by the tile size, whatever the image size.

Every stride-2 layer pairs pixels on one grid: tile origins are multiples of
``2 ** n_down``, and an image whose first pixel lies elsewhere on a grid fixed to the
sky (``origins``: a cut-out starting on an odd pixel of its image) is padded to start
on it, so a tile, a cut-out and the whole image pair the same pixels.  At the
image's own border the network pads the image itself, exactly as it does for a
whole image.

Examples
--------
>>> import numpy as np, torch
>>> from bandsynth.nn.network import TranslationNet
>>> from bandsynth.nn.engine import InferenceEngine
>>> _ = torch.manual_seed(0)
>>> net = TranslationNet.build("tiny", softening=[0.01, 0.02], maximum=[1.0, 2.0],
...                            out_softening=0.02, out_maximum=1.5, coefficients=[0.3, 0.5])
>>> torch.nn.init.normal_(net.generator.head[-1].weight, 0.0, 0.05)  # a non-trivial correction
Parameter containing:...
>>> engine = InferenceEngine(net)
>>> x = np.random.default_rng(0).random((1, 2, 200, 180), dtype=np.float32)
>>> whole, _ = engine.run(x, tile=256)
>>> tiled, _ = engine.run(x, tile=64)
>>> bool(np.abs(whole - tiled).max() < 1e-5)
True
"""

from __future__ import annotations

import collections
import logging
import math
import os
import shutil
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from .training.precision import bf16_supported

__all__ = ["InferenceEngine", "halo_width", "tile_windows", "check_options", "resolve_device", "PRECISIONS",
           "BF16_FLUX_TOLERANCE", "NO_COMPILE_ENV"]

log = logging.getLogger(__name__)

#: Precisions `InferenceEngine` offers.  "bf16": the generator's trunk under bfloat16
#: autocast (the colour baseline, the trunk's input convolution and the output heads stay
#: in float32).
PRECISIONS = ("fp32", "bf16")
#: The largest change of a galaxy's total flux that bf16 may make (the photometric contract):
#: ``precision="auto"`` takes bf16 only for a model measured within it.
BF16_FLUX_TOLERANCE = 0.002
#: Set this environment variable to 1 to never compile (``compile=True`` included).
NO_COMPILE_ENV = "BANDSYNTH_NO_COMPILE"
# torch.compile pays off on a CPU only for bf16 (benchmarks/model_speed.py), and each
# new input shape compiles again (seconds to a minute): with compile="auto" a shape
# is compiled once this many network images of it have been run.
_COMPILE_MIN_IMAGES = 256


def resolve_device(device):
    """``"auto"`` (or None): the GPU if there is one, else the CPU; anything else as `torch.device`.

    Parameters
    ----------
    device : str, torch.device or None

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        A device this machine's torch does not know or cannot reach (torch's own error said neither which
        argument nor what there is).
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
        torch.empty(0, device=chosen)  # reachable: "cuda" on a CPU build of torch fails here, not at predict
    except (RuntimeError, AssertionError, TypeError) as err:
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        raise ValueError(f"device={device!r} is not a device of this machine ({str(err).splitlines()[0]}); it has "
                         f"'cpu'{f' and {gpus} CUDA device(s)' if gpus else ''} (device='auto' picks)") from None
    return chosen


def check_options(*, precision, batch_size, compile, n_samples, device, tile=512, multiple=2, bf16_flux_change=None):
    """Validate `bandsynth.Translator.predict` options; returns the precision to use ("auto" resolved).

    ``"auto"`` gives bf16 only where the hardware has fast bf16 kernels and the model is known
    to keep every galaxy's total flux within `BF16_FLUX_TOLERANCE` of fp32 in it.

    Parameters
    ----------
    precision : {"fp32", "bf16", "auto"}
    batch_size : int
        Must be positive.
    compile : {True, False, "auto"}
    n_samples : int
        Must be >= 0.
    device : str or torch.device
        Where "auto" precision is resolved.
    tile : int
        Must be at least ``multiple``.
    multiple : int
        The network's stride (``2 ** n_down``).
    bf16_flux_change : float, optional
        The largest relative change of a galaxy's total flux bf16 made for this model
        (its card's ``metrics["bf16"]["max_flux_change"]``); None: not measured.

    Returns
    -------
    str
        "fp32" or "bf16".

    Raises
    ------
    ValueError, TypeError
        An option is out of range or of the wrong type.
    """
    if not isinstance(tile, int) or isinstance(tile, bool) or tile < multiple:
        raise ValueError(f"tile must be an integer >= {multiple}, got {tile!r}")
    if precision not in (*PRECISIONS, "auto"):
        raise ValueError(f"precision must be 'fp32', 'bf16' or 'auto', got {precision!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not (isinstance(compile, bool) or compile == "auto"):
        raise TypeError(f"compile must be True, False or 'auto', got {compile!r}")
    if not isinstance(n_samples, int) or isinstance(n_samples, bool) or n_samples < 0:
        raise ValueError(f"n_samples must be an integer >= 0, got {n_samples!r}")
    if n_samples == 1:  # its variance is 0, and the "mc" calibration would narrow sigma for the noise it lacks
        raise ValueError("n_samples=1 draws the inputs' noise once, which has no spread: give 0 (no Monte Carlo) "
                         "or at least 2 (default 8)")
    if precision == "auto":
        holds = bf16_flux_change is not None and float(bf16_flux_change) <= BF16_FLUX_TOLERANCE
        return "bf16" if holds and bf16_supported(device) else "fp32"
    return precision


def halo_width(model):
    """Context, in pixels, a tile needs on each side so its core is exact.

    Half the receptive field of the image and of its uncertainty head, whichever is
    wider, rounded up to a multiple of ``2 ** n_down``.

    Parameters
    ----------
    model : torch.nn.Module
        A generator, or a network wrapping one as ``model.generator``.

    Returns
    -------
    int

    Examples
    --------
    >>> from bandsynth.nn.generator import build_generator
    >>> halo_width(build_generator("paper", 2, norm="none"))
    46
    """
    from .generator import receptive_field, uncertainty_field_margin

    inner = getattr(model, "generator", model)
    multiple = 2**inner.n_down
    field = receptive_field(inner) + uncertainty_field_margin(inner)  # the sigma map is exact in tiles too
    return int(math.ceil(math.ceil(field / 2) / multiple) * multiple)


def tile_windows(size, tile, halo, multiple):
    """``(core start, core stop, window start, window stop)`` of the tiles along one axis.

    Cores of ``tile`` pixels (a multiple of ``multiple``) cover ``[0, size)``; each window
    adds ``halo`` pixels of context on both sides, clipped to the image.

    Parameters
    ----------
    size : int
        Image side along the axis.
    tile : int
        Core side (rounded down to a multiple of ``multiple``, at least ``multiple``).
    halo : int
        Context pixels on each side.
    multiple : int
        The network's stride.

    Returns
    -------
    list of tuple of int

    Examples
    --------
    >>> tile_windows(10, 4, 2, 2)
    [(0, 4, 0, 6), (4, 8, 2, 10), (8, 10, 6, 10)]
    """
    tile = max(multiple, tile // multiple * multiple)
    out = []
    for start in range(0, size, tile):
        stop = min(size, start + tile)
        out.append((start, stop, max(0, start - halo), min(size, stop + halo)))
    return out


def _dihedral(x, k):
    """The k-th of the 8 flips/rotations of the last two axes (k = 0 is the identity)."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


def _undo_dihedral(x, k):
    if k >= 4:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, -(k % 4), dims=(-2, -1))


def _have_cxx():
    """Whether a C++ compiler for inductor's CPU kernels is on the PATH."""
    return any(shutil.which(c) for c in (os.environ.get("CXX") or "g++", "g++", "clang++", "c++"))


def _compile_disabled():
    return os.environ.get(NO_COMPILE_ENV, "").strip().lower() not in ("", "0", "false", "no")


class InferenceEngine:
    """Runs a network on scaled image batches: padding, exact tiling, flips, precision, compilation.

    Parameters
    ----------
    model : torch.nn.Module
        A `~bandsynth.nn.network.TranslationNet` (or a bare generator); put in eval mode.
    device : str or torch.device
    """

    def __init__(self, model, *, device="cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        inner = getattr(model, "generator", model)
        self.multiple = 2**inner.n_down
        self.minimum = max(4, 2 ** (inner.n_down + 1))
        self.halo = halo_width(model)
        self.has_scale = inner.scale_head is not None
        self._compiled = {}
        self._compiled_shapes = set()
        self._images_run = collections.Counter()
        self.compile_error = None
        self.compiled_used = False

    # ---------------------------------------------------------------- one network call
    def _network(self, x, *, precision, compile, expected):
        use_bf16 = precision == "bf16"
        module = self.model
        if compile is not False and not _compile_disabled() and self.compile_error is None:
            shape = (precision, *x.shape)
            wanted = compile is True or shape in self._compiled_shapes or (
                use_bf16 and self.device.type == "cpu" and _have_cxx()
                and self._images_run[shape] + expected >= _COMPILE_MIN_IMAGES
            )
            self._images_run[shape] += x.shape[0]
            if wanted:
                try:
                    module = self._compiled.get(precision)
                    if module is None:
                        # One graph per input shape (dynamic=False): dynamic shapes ran slower than eager.
                        module = self._compiled[precision] = torch.compile(self.model, dynamic=False)
                    out = self._forward(module, x, use_bf16)
                    self._compiled_shapes.add(shape)
                    self.compiled_used = True
                    return out
                except Exception as err:  # no C++ compiler, an inductor or dynamo error, ...
                    first = str(err).strip().splitlines()
                    self.compile_error = f"{type(err).__name__}: {first[0] if first else ''}".rstrip(": ")
                    self._compiled.clear()
                    message = (f"torch.compile failed ({self.compile_error}); predicting without it "
                               f"(set {NO_COMPILE_ENV}=1 to skip the attempt)")
                    if compile is True:
                        warnings.warn(message, RuntimeWarning, stacklevel=6)
                    else:
                        log.info(message)
                    module = self.model
        return self._forward(module, x, use_bf16)

    def _forward(self, module, x, use_bf16):
        with torch.inference_mode():
            x = x.to(self.device, dtype=torch.float32)
            if use_bf16:  # oneDNN's fast bf16 convolutions want channels-last
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                out = module(x)
            mean, log_scale = out
            mean = mean.float().contiguous().cpu().numpy()
            log_scale = None if log_scale is None else log_scale.float().contiguous().cpu().numpy()
        return mean, log_scale

    def _aligned(self, x, lead):
        """``x`` (N, C, h, w) padded to start and end on the stride grid: ``lead`` (rows, columns) pixels
        before it, after it as many as make whole strides and the network's smallest input.

        Padded before any flip or rotation, so that each transform pairs the same pixels in every
        tile and cut-out.
        """
        h, w = x.shape[-2:]
        (ly, lx), m = lead, self.multiple
        th = max(self.minimum, -(-(h + ly) // m) * m)
        tw = max(self.minimum, -(-(w + lx) // m) * m)
        pads = (lx, tw - w - lx, ly, th - h - ly)
        if not any(pads):
            return x
        mode = "reflect" if max(pads[:2]) < w and max(pads[2:]) < h else "replicate"
        return F.pad(x, pads, mode=mode)

    def _batched(self, xt, *, batch_size, precision, compile, repeats):
        """Network output for same-shape, grid-aligned images ``xt`` (N, C, h, w) as numpy arrays."""
        means, scales = [], []
        for start in range(0, len(xt), batch_size):
            m, s = self._network(xt[start : start + batch_size], precision=precision, compile=compile,
                                 expected=repeats * len(xt))
            means.append(m)
            scales.append(s)
        return np.concatenate(means), (None if scales[0] is None else np.concatenate(scales))

    # ---------------------------------------------------------------- public
    def describe(self, *, precision, tile):
        """How predictions are computed, for the provenance (compilation is added per call).

        Parameters
        ----------
        precision : str
        tile : int

        Returns
        -------
        dict
            Precision, device, torch version, tile, halo and receptive field.
        """
        inner = getattr(self.model, "generator", self.model)
        from .generator import receptive_field

        return {"precision": precision, "device": str(self.device), "torch_version": torch.__version__,
                "tile": tile, "halo": self.halo, "receptive_field": receptive_field(inner)}

    def n_tiles(self, shape, *, tile):
        """How many tiles an image of ``shape`` (ny, nx) is cut into.

        Parameters
        ----------
        shape : tuple of int
        tile : int
            Side of the tiles' cores.

        Returns
        -------
        int
        """
        rows = tile_windows(shape[0], tile, self.halo, self.multiple)
        cols = tile_windows(shape[1], tile, self.halo, self.multiple)
        return len(rows) * len(cols)

    def run(self, x, *, batch_size=8, tile=512, precision="fp32", compile=False, tta=False, out=None,
            progress=None, repeats=1, origins=None):
        """Scaled mean and log-sigma ``(N, 1, H, W)`` for scaled inputs ``x`` ``(N, C, H, W)``.

        Parameters
        ----------
        x : ndarray, float32, shape (N, C, H, W)
        batch_size : int
            Images per network call.
        tile : int
            Side of the tiles' cores; images up to ``tile`` pixels on a side run whole.
            Any value gives the same result (to float rounding); it only bounds memory.
        precision : {"fp32", "bf16"}
        compile : {False, True, "auto"}
            Use `torch.compile`; "auto" only for bf16 on a CPU with a C++ compiler once
            a shape is frequent.
        tta : bool
            Also run the 8 flips/rotations; returns their mean and adds their
            variance as a third output.
        out : tuple of two ndarrays, optional
            Preallocated (N, 1, H, W) float32 arrays for mean and log-sigma (e.g. memory
            maps for images larger than memory).
        progress : callable, optional
            Called as ``progress(done, total)`` after every tile.
        repeats : int
            How many times the caller runs images of this shape (for ``compile="auto"``).
        origins : list of tuple of int, optional
            Per image, the row and column of its first pixel on a grid fixed to the sky
            (`bandsynth.uncertainty.grid_origin`): every stride-2 layer then pairs the
            same sky pixels in any cut-out of an image, as in the image itself (a
            cut-out starting on an odd pixel paired others).  Default: each image's
            first pixel starts the grid.

        Returns
        -------
        mean, log_scale : ndarray
            ``log_scale`` is None for a network without an uncertainty head.
        spread : ndarray
            Only with ``tta=True``: the variance over the 8 transforms.
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if not isinstance(tile, int) or isinstance(tile, bool) or tile < self.multiple:
            raise ValueError(f"tile must be an integer >= {self.multiple}, got {tile!r}")
        x = np.asarray(x, dtype=np.float32)
        n, _, h, w = x.shape
        if out is None:
            mean = np.empty((n, 1, h, w), np.float32)
            log_scale = np.empty((n, 1, h, w), np.float32) if self.has_scale else None
        else:
            mean, log_scale = out
        spread = np.empty((n, 1, h, w), np.float32) if tta else None
        origins = [(0, 0)] * n if origins is None else [(int(oy), int(ox)) for oy, ox in origins]
        if len(origins) != n:
            raise ValueError(f"origins must give one (row, column) per image: {len(origins)} for {n} images")
        rows = tile_windows(h, tile, self.halo, self.multiple)
        cols = tile_windows(w, tile, self.halo, self.multiple)
        total, done = len(rows) * len(cols), 0
        transforms = range(8) if tta else (0,)
        for r0, r1, wr0, wr1 in rows:
            for c0, c1, wc0, wc1 in cols:
                # Images whose windows start at another place of the stride grid are padded otherwise.
                groups = {}
                for i, (oy, ox) in enumerate(origins):
                    groups.setdefault(((oy + wr0) % self.multiple, (ox + wc0) % self.multiple), []).append(i)
                for (ly, lx), images in groups.items():
                    part = slice(images[0], images[-1] + 1) if len(images) == images[-1] - images[0] + 1 else images
                    window = torch.from_numpy(np.ascontiguousarray(x[part, :, wr0:wr1, wc0:wc1]))
                    padded = self._aligned(window, (ly, lx))
                    core = (Ellipsis, slice(ly + r0 - wr0, ly + r1 - wr0), slice(lx + c0 - wc0, lx + c1 - wc0))
                    sums = sq = sums_s = None
                    for k in transforms:
                        m, s = self._batched(padded if k == 0 else _dihedral(padded, k), batch_size=batch_size,
                                             precision=precision, compile=compile,
                                             repeats=repeats * total * len(transforms))
                        if k:
                            m = _undo_dihedral(torch.from_numpy(m), k).numpy()
                            s = None if s is None else _undo_dihedral(torch.from_numpy(s), k).numpy()
                        m = m[core].astype(np.float64)
                        sums = m if sums is None else sums + m
                        sq = m**2 if sq is None else sq + m**2
                        if s is not None:
                            s = s[core].astype(np.float64)
                            sums_s = s if sums_s is None else sums_s + s
                    k = len(transforms)
                    mean[part, :, r0:r1, c0:c1] = sums / k
                    if log_scale is not None and sums_s is not None:
                        log_scale[part, :, r0:r1, c0:c1] = sums_s / k
                    if tta:
                        spread[part, :, r0:r1, c0:c1] = np.maximum(sq / k - (sums / k) ** 2, 0.0)
                done += 1
                if progress is not None:
                    progress(done, total)
        return (mean, log_scale, spread) if tta else (mean, log_scale)
