"""Translator: a trained generator with its model card.

``Translator.load("nuv_k_to_r").predict(stack)`` turns a `~bandsynth.BandStack`
holding the model's input bands into a `~bandsynth.SyntheticBand` of the output
band, in the inputs' flux units, on their WCS, with a calibrated per-pixel
standard deviation and a provenance record.

The flux scale of a prediction is set by the inputs alone: every band of a galaxy
is divided by one reference flux taken from the input images
(`bandsynth.scaling.reference_flux`), the network predicts the target in those
units, and the exact inverse of the asinh scaling multiplies the reference back.
"""

from __future__ import annotations

import collections
import copy
import datetime
import inspect
import logging
import math
import os
import shutil
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import torch
from astropy.nddata import StdDevUncertainty
from astropy.utils.exceptions import AstropyUserWarning

from ._io import atomic_path
from .bands import get_band
from .models.generator import build_generator, count_parameters, minimum_input_size, receptive_field
from .models.zoo import ModelCard, WeightsHashError, model_paths, sha256_file
from .scaling import AsinhScaling, reference_flux
from .training import _pad_to_valid, bf16_supported, run_generator
from .units import parse_unit

__all__ = ["Translator"]

# pytest-doctestplus: run the export example only where its packages are installed.
__doctest_requires__ = {("Translator.export_onnx",): ["onnx", "onnxruntime"]}

log = logging.getLogger(__name__)

# Above this many pixels an image is predicted in overlapping tiles, which bounds
# memory (activations of the "paper" preset take ~1 kB per pixel in fp32).
_TILE = 512
_OVERLAP = 64

# Laplace standard deviation = sqrt(2) * scale b.
_LAPLACE_STD = math.sqrt(2.0)

# torch.compile (inductor), measured with benchmarks/model_speed.py on a 2-core
# AVX512-BF16 CPU: bf16 inference ~1.5x faster than eager bf16 + channels-last, fp32
# no faster.  Compiling one input shape takes ~5 s (inductor's on-disk cache warm) to
# ~60 s (cold, busy machine) and every new shape compiles again (dynamic shapes ran
# slower than eager), so with compile="auto" a batch shape is compiled once this many
# network images of it are run (in one call or accumulated over calls).
_COMPILE_MIN_IMAGES = 256
#: Set this environment variable to 1 to never compile (``compile=True`` included).
_NO_COMPILE_ENV = "BANDSYNTH_NO_COMPILE"


def _compile_disabled():
    return os.environ.get(_NO_COMPILE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _have_cxx():
    """Whether a C++ compiler for inductor's CPU kernels is on the PATH."""
    return any(shutil.which(c) for c in (os.environ.get("CXX") or "g++", "g++", "clang++", "c++"))


def _device(device):
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _dihedral(x, k):
    """The k-th of the 8 flips/rotations of the last two axes (k = 0 is identity)."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


def _undo_dihedral(x, k):
    if k >= 4:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, -(k % 4), dims=(-2, -1))


def _tile_starts(size, tile, overlap):
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, size - tile, step))
    return starts + [size - tile]


def _ramp(size, overlap):
    # Linear ramps over the overlap so neighbouring tiles cross-fade smoothly.
    ramp = np.ones(size, dtype=np.float32)
    if overlap > 0:
        edge = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        ramp[:overlap] = edge
        ramp[-overlap:] = edge[::-1]
    return ramp


class Translator:
    """A band-translation generator and its model card.

    Build one with :meth:`load` (a shipped model or a saved one) or :meth:`fit`
    (train on your own data); :meth:`predict` turns band stacks into synthetic bands.

    Parameters
    ----------
    model : torch.nn.Module
        A `~bandsynth.models.generator.ResNetGenerator` whose input channels are
        ``card.inputs`` in that order.
    card : `~bandsynth.models.zoo.ModelCard`

    Examples
    --------
    >>> from bandsynth import Translator
    >>> from bandsynth.models.zoo import list_models
    >>> names = [c.name for c in list_models()]
    >>> t = Translator.load(names[0]) if names else None
    """

    def __init__(self, model, card, *, device="auto"):
        if not isinstance(card, ModelCard):
            raise TypeError(f"card must be a ModelCard, got {type(card).__name__}")
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if getattr(model, "in_channels", len(card.inputs)) != len(card.inputs):
            raise ValueError(
                f"model {card.name!r}: the network takes {model.in_channels} bands "
                f"but the card lists {len(card.inputs)} inputs {card.inputs}"
            )
        self._card = card
        self._device = _device(device)
        self._model = model.to(self._device).eval()
        self._scalings = {b: AsinhScaling.from_dict(dict(p)) for b, p in card.scaling.items()}
        # torch.compile caches (not part of the translator's value): compiled modules by
        # precision, the batch shapes run compiled, network images run per batch shape,
        # and why compiling failed (then it is not tried again).
        self._compiled = {}
        self._compiled_shapes = set()
        self._images_run = collections.Counter()
        self._compile_error = None
        self._compile_warned = self._compile_logged = False

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, name_or_path, *, device="auto"):
        """Load a shipped model by name, or a saved model by path.

        The weights file's SHA-256 must match the card; weights are read with
        safetensors only.

        Raises
        ------
        ValueError
            Unknown model name or generator preset.
        WeightsHashError
            The weights file does not match the card's SHA-256.
        """
        from safetensors.torch import load_file

        weights, card_path = model_paths(name_or_path)
        card = ModelCard.read(card_path)
        digest = sha256_file(weights)
        if digest != card.sha256:
            raise WeightsHashError(
                f"weights file {weights} has SHA-256 {digest}, but its model card records "
                f"{card.sha256 or 'none'}: the file is damaged or was replaced; refusing to load it"
            )
        model = build_generator(card.preset, len(card.inputs), 1, **dict(card.architecture))
        state = load_file(str(weights))
        model.load_state_dict(state, strict=True)
        return cls(model, card, device=device)

    def save(self, path, *, overwrite=False):
        """Write ``PATH.safetensors`` and its card ``PATH.json``.

        The card's ``sha256`` and ``n_parameters`` are recomputed.  Both files are
        written atomically; existing files are kept unless ``overwrite=True``.

        Returns
        -------
        Translator
            A translator whose card carries the new hash.
        """
        from safetensors.torch import save_file

        stem = Path(path)
        stem = stem.with_suffix("") if stem.suffix in (".json", ".safetensors") else stem
        weights, card_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
        for p in (weights, card_path):
            if p.exists() and not overwrite:
                raise FileExistsError(f"{p} exists; pass overwrite=True to replace it")
        stem.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self._model.state_dict().items()}
        with atomic_path(weights) as tmp:
            save_file(state, str(tmp), metadata={"name": self._card.name})
        card = self._card.replace(
            sha256=sha256_file(weights),
            n_parameters=count_parameters(self._model),
            architecture={k: v for k, v in self._model.config.items() if k not in ("in_channels", "out_channels")},
        )
        card.write(card_path)
        return type(self)(self._model, card, device=self._device)

    def export_onnx(self, path, *, height=128, width=128, opset=17):
        """Write the network to an ONNX file, for ONNX Runtime or another engine.

        The graph is the generator alone, in float32: input ``input`` of shape
        ``[batch, n_inputs, height, width]`` holding the asinh-scaled input bands
        (`scale_inputs`, in the card's ``inputs`` order), outputs ``mean`` and, for
        a network with an uncertainty head, ``log_scale`` (the Laplace log-scale),
        both ``[batch, 1, height, width]`` in the scaled space of the output band
        (the card's ``scaling``).  The reference flux, the inverse scaling, the
        calibration temperature and tiling stay with :meth:`predict`.  Batch,
        height and width are dynamic: any image whose sides are multiples of
        ``2 ** n_down`` (2 for the shipped presets) and at least the network's
        minimum size runs; pad other sizes first (by reflection, as
        :meth:`predict` does).  The file is written atomically.

        Parameters
        ----------
        path : str or os.PathLike
            Output file (conventionally ``.onnx``); replaced if it exists.
        height, width : int
            Size of the example input the network is traced with.
        opset : int
            ONNX operator set version.

        Returns
        -------
        pathlib.Path
            ``path``.

        Raises
        ------
        ImportError
            If the ``onnx`` package is not installed.

        Examples
        --------
        >>> import pathlib, tempfile
        >>> import numpy as np
        >>> import onnxruntime
        >>> translator = Translator.load("nuv_k_to_r")
        >>> path = translator.export_onnx(pathlib.Path(tempfile.mkdtemp()) / "nuv_k_to_r.onnx")
        >>> session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        >>> x = np.zeros((3, 2, 96, 64), dtype=np.float32)
        >>> mean, log_scale = session.run(None, {"input": x})
        >>> mean.shape, log_scale.shape
        ((3, 1, 96, 64), (3, 1, 96, 64))
        """
        try:
            import onnx  # noqa: F401  (torch.onnx.export needs it)
        except ImportError:
            raise ImportError(
                "Translator.export_onnx needs the onnx package: pip install onnx onnxruntime "
                "(or pip install 'bandsynth[onnx]')"
            ) from None
        multiple, minimum = 2**self._model.n_down, minimum_input_size(self._model)
        for name, value in (("height", height), ("width", width)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"export_onnx {name} must be an int, got {type(value).__name__}")
            if value < minimum or value % multiple:
                raise ValueError(
                    f"export_onnx {name} must be a multiple of {multiple} of at least {minimum} pixels, got {value}"
                )
        if not isinstance(opset, int) or isinstance(opset, bool):
            raise TypeError(f"export_onnx opset must be an int, got {type(opset).__name__}")
        path = Path(path)
        # A float32 copy on the CPU in the standard memory format: the translator's own
        # module stays as it is (device, channels-last after bf16 predictions).
        net = _OnnxGraph(copy.deepcopy(self._model).to("cpu", torch.float32).to(memory_format=torch.contiguous_format))
        outputs = ["mean"] if self._model.scale_head is None else ["mean", "log_scale"]
        axes = {name: {0: "batch", 2: "height", 3: "width"} for name in ("input", *outputs)}
        example = torch.zeros(1, len(self.inputs), height, width)
        with atomic_path(path) as tmp, warnings.catch_warnings():
            # The shape checks of the network's forward are constant for the traced sizes;
            # the legacy-exporter and constant-folding notices are about torch, not the model.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message=r"(?s).*(Constant folding|ONNX export mode is set)")
            # The TorchScript exporter: it keeps ``opset``, takes dynamic sizes as they are
            # and needs no onnxscript; torch's newer dynamo exporter (the default since
            # torch 2.9) measured 10x slower here and cannot write Pad below opset 18.
            legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
            torch.onnx.export(
                net.eval(), (example,), str(tmp), input_names=["input"], output_names=outputs,
                dynamic_axes=axes, opset_version=opset, do_constant_folding=True, **legacy,
            )
        return path

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(
        cls,
        data,
        *,
        inputs,
        output,
        name=None,
        preset="small",
        epochs=10,
        batch_size=8,
        lr=2e-4,
        crop_size=64,
        seed=0,
        checkpoint_dir=None,
        checkpoint_every=None,
        max_steps=None,
        device="auto",
        progress=True,
        calibrate=True,
        init=None,
        recipe="",
        description="",
    ):
        """Train a new translator on ``data``.

        Parameters
        ----------
        data : data set
            A data set with train/validation splits: the mock universe
            (`bandsynth.datasets.make_dataset`), a stored one
            (`bandsynth.datasets.open_dataset`), or any object with the same
            interface (``cube``, ``indices``, ``stack``, ``manifest``).
        inputs : list of str
            Input bands, in channel order.
        output : str
            Band to predict.
        name : str, optional
            Model name (default ``"<inputs>_to_<output>"``).
        preset : str
            Generator preset (`bandsynth.models.generator.PRESETS`).
        epochs, batch_size, lr, crop_size, seed, max_steps
            Training recipe: Adam with a cosine schedule on random ``crop_size``
            crops with the 8 flips/rotations (the generator is fully
            convolutional, so predictions still run on full images).
        checkpoint_dir, checkpoint_every
            Resumable checkpoints (safetensors): a run started again with the
            same arguments continues from the newest one.
        calibrate : bool
            Fit the uncertainty temperature on the validation split.
        init : str or path, optional
            Start from the weights of this saved model (same inputs, output and
            preset) instead of a random initialisation: e.g. to fine-tune on full
            images after training on crops.
        recipe : str
            The exact command that produced the model, for its card.

        Returns
        -------
        Translator
        """
        import time

        from .datasets.torch_data import BandPairDataset, fit_scalings_for
        from .training import fit as train

        inputs = tuple(get_band(b).name for b in inputs)
        output = get_band(output).name
        name = name or f"{'_'.join(b.lower() for b in inputs)}_to_{output.lower()}"
        scalings = fit_scalings_for(data, inputs, output, split="train")
        common = dict(inputs=inputs, target=output, scalings=scalings, seed=seed)
        train_set = BandPairDataset(data, split="train", crop_size=crop_size, augment=True, **common)
        val_set = BandPairDataset(data, split="validation", augment=False, **common)
        torch.manual_seed(seed)
        model = build_generator(preset, len(inputs), 1)
        if init is not None:
            start = Translator.load(init, device="cpu")
            if (start.inputs, start.output, start.card.preset) != (inputs, output, preset):
                raise ValueError(
                    f"init model {start.name!r} maps {'+'.join(start.inputs)} -> {start.output} with the "
                    f"{start.card.preset!r} preset; expected {'+'.join(inputs)} -> {output}, {preset!r}"
                )
            model.load_state_dict(start.model.state_dict())
        started = time.perf_counter()
        result = train(
            model,
            train_set,
            val_data=val_set,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            resume="auto" if checkpoint_dir else None,
            device=device,
            progress=progress,
            max_steps=max_steps,
        )
        if result.best_state is not None:
            model.load_state_dict(result.best_state)
        info = dict(getattr(data, "info", {}) or {})
        card = ModelCard(
            name=name,
            inputs=inputs,
            output=output,
            preset=preset,
            architecture={},
            scaling={b: s.to_dict() for b, s in scalings.items()},
            mode=info.get("mode", "ideal"),
            pixel_scale=float(info.get("pixel_scale", 0.396)),
            psf_fwhm={b: v for b, v in dict(info.get("psf_fwhm", {}) or {}).items() if b in (*inputs, output)},
            training={
                "data": info.get("description", type(data).__name__),
                "data_info": {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool))},
                "n_train": len(train_set),
                "n_validation": len(val_set),
                "seed": seed,
                "epochs": epochs,
                "steps": int(getattr(result, "steps", 0) or 0),
                "batch_size": batch_size,
                "crop_size": crop_size,
                "lr": lr,
                "loss": "L1 + (1 - SSIM) on the mean; Laplace NLL on the scale head",
                "best_validation_ssim": _float_or_none(getattr(result, "best_metric", None)),
                "duration_s": round(time.perf_counter() - started, 1),
                "recipe": recipe,
                # The whole chain of runs, so a fine-tuned card still says how its start was made.
                "init": None if init is None else {"path": str(init), "recipe": start.card.training.get("recipe"),
                                                   "init": start.card.training.get("init")},
            },
            description=description,
            bandsynth_version=_version(),
        )
        translator = cls(model, card, device=device)
        return translator.calibrate(data, split="validation") if calibrate else translator

    def calibrate(self, data, *, split="validation", max_images=200):
        """Fit the uncertainty temperature on ``split`` of ``data``.

        One factor multiplies the combined predicted sigma (with the default
        :meth:`predict` settings, which the calibration uses) so that, inside each
        galaxy's segmentation footprint (photutils, on the true image), the
        observed fractions of pixels within 1 and 2 sigma of the truth are as
        close as possible to 68.3 % and 95.4 %.

        Returns
        -------
        Translator
            A copy whose card records the temperature and the coverage reached.
        """
        from .metrics import footprint_z_scores

        indices = list(data.indices(split))[:max_images]
        if not indices:
            raise ValueError(f"cannot calibrate: the data set has no {split!r} images")
        raw = type(self)(self._model, self._card.replace(calibration={}), device=self._device)
        stacks = [data.stack(i) for i in indices]
        preds = raw.predict([s.select(self.inputs) for s in stacks], check_domain=False)
        z = np.abs(footprint_z_scores(preds, [s[self.output] for s in stacks]))
        if not z.size:
            raise ValueError(f"cannot calibrate: no galaxy was detected in the {split!r} images")
        temperature, cov1, cov2 = _fit_temperature(z)
        calibration = {
            "temperature": temperature,
            "method": "one temperature on the combined sigma of predict()'s default settings, fitted "
            "to 1 and 2 sigma coverage inside the truth's segmentation footprint",
            "split": split,
            "n_images": len(indices),
            "n_pixels": int(z.size),
            "coverage_1sigma": cov1,
            "coverage_2sigma": cov2,
        }
        return type(self)(self._model, self._card.replace(calibration=calibration), device=self._device)

    # ------------------------------------------------------------------ properties
    @property
    def card(self) -> ModelCard:
        """The model card."""
        return self._card

    @property
    def name(self) -> str:
        """Model name, as in the registry (``"nuv_k_to_r"``)."""
        return self._card.name

    @property
    def inputs(self) -> tuple:
        """Input band names, in the network's channel order."""
        return self._card.inputs

    @property
    def output(self) -> str:
        """Predicted band name."""
        return self._card.output

    @property
    def scalings(self) -> dict:
        """Band name -> `~bandsynth.scaling.AsinhScaling` of the card, inputs and output."""
        return dict(self._scalings)

    @property
    def model(self):
        """The underlying torch module (in eval mode)."""
        return self._model

    def __repr__(self):
        return (
            f"<Translator {self.name!r}: {' + '.join(self.inputs)} -> {self.output} "
            f"({self._card.preset} preset, {self._card.mode} mode)>"
        )

    # ------------------------------------------------------------------ scaling
    def scale_inputs(self, stack):
        """Scaled network input ``(n_in, ny, nx)``, reference flux and bad-pixel mask.

        Masked or non-finite input pixels are filled from their neighbours (never
        zeroed) so the network sees a plausible image; they are returned in the
        mask and masked in the prediction.
        """
        arrays, mask = self._input_arrays(stack)
        ref = reference_flux([np.where(mask, np.nan, a) for a in arrays], percentile=self._percentile)
        scaled = np.stack([self._scalings[b].forward(a, reference=ref) for b, a in zip(self.inputs, arrays)])
        return scaled.astype(np.float32), ref, mask

    @property
    def _percentile(self):
        return float(self._card.reference.get("percentile", 99.5))

    def _input_arrays(self, stack):
        from .stack import BandStack

        if not isinstance(stack, BandStack):
            raise TypeError(f"predict expects a BandStack or a list of them, got {type(stack).__name__}")
        available = {b.name for b in stack.bands}
        missing = [b for b in self.inputs if b not in available]
        if missing:
            raise ValueError(
                f"model {self.name!r} needs bands {', '.join(self.inputs)}; the stack has "
                f"{', '.join(sorted(available)) or 'none'} (missing: {', '.join(missing)})"
            )
        unit = parse_unit(self._card.unit)
        arrays, mask = [], np.zeros(stack.shape, dtype=bool)
        for band in self.inputs:
            image = stack[band]
            data = np.asarray(image.data, dtype=np.float64)
            if image.unit is not None and image.unit != unit:
                try:
                    data = (data * image.unit).to_value(unit)
                except u.UnitConversionError:
                    raise ValueError(
                        f"band {band}: unit {image.unit} cannot be converted to the model's unit {unit}"
                    ) from None
            bad = ~np.isfinite(data)
            if image.mask is not None:
                bad |= np.asarray(image.mask, dtype=bool)
            if bad.any():
                data = _fill_bad_pixels(data, bad)
            mask |= bad
            arrays.append(data)
        side = min(stack.shape)
        need = receptive_field(self._model)
        if side < need:
            raise ValueError(
                f"image of {stack.shape[0]}x{stack.shape[1]} pixels is smaller than the receptive "
                f"field of model {self.name!r} ({need}x{need} pixels); use a larger cut-out"
            )
        return arrays, mask

    # ------------------------------------------------------------------ network
    def _forward_batch(self, x, *, precision, compile=False, expected=0):
        """Network mean and Laplace log-scale for a batch ``[B, C, H, W]`` (any size).

        ``expected``: network images of this batch's shape the current call runs (for
        ``compile="auto"``).
        """
        use_bf16 = precision == "bf16" or (precision == "auto" and bf16_supported(self._device))
        x = x.to(device=self._device, dtype=torch.float32)
        x, (rows, cols) = _pad_to_valid(x, self._model)
        out = None
        if compile is not False and not _compile_disabled():
            shape = ("bf16" if use_bf16 else "fp32", *x.shape)
            if self._use_compiled(shape, compile, use_bf16, expected):
                out = self._run_compiled(x, shape, compile, use_bf16)
            self._images_run[shape] += x.shape[0]
        if out is None:
            # channels_last is what makes bf16 convolutions fast on CPUs (oneDNN).
            out = run_generator(self._model, x, bf16=use_bf16, channels_last=use_bf16, pad=False)
        log_scale = None if out.log_scale is None else out.log_scale[..., rows, cols].contiguous().cpu()
        return out.mean[..., rows, cols].contiguous().cpu(), log_scale

    def _use_compiled(self, shape, compile, use_bf16, expected):
        """Whether a batch of ``shape = (precision, B, C, H, W)`` goes through torch.compile."""
        if self._compile_error is not None:
            self._warn_compile_failed(compile)
            return False
        if compile is True or shape in self._compiled_shapes:
            return True
        # "auto": only where it was measured to pay off, once the shape is frequent enough.
        if self._device.type == "cpu":
            if not use_bf16 or not _have_cxx():
                return False
        elif self._device.type != "cuda":
            return False
        return self._images_run[shape] + expected >= _COMPILE_MIN_IMAGES

    def _run_compiled(self, x, shape, compile, use_bf16):
        """The network output through the compiled module, or None if compiling failed."""
        key = shape[0]
        try:
            module = self._compiled.get(key)
            if module is None:
                # One compiled graph per input shape (dynamic=False): dynamic shapes
                # measured slower than eager on CPU.  The module shares the weights.
                module = self._compiled[key] = torch.compile(self._model, dynamic=False)
            out = run_generator(module, x, bf16=use_bf16, channels_last=use_bf16, pad=False)
        except Exception as err:  # no C++ compiler, an inductor or dynamo error, ...
            first = str(err).strip().splitlines()
            self._compile_error = f"{type(err).__name__}: {first[0] if first else ''}".rstrip(": ")
            self._compiled.clear()
            self._compiled_shapes.clear()
            self._warn_compile_failed(compile)
            return None
        self._compiled_shapes.add(shape)
        return out

    def _warn_compile_failed(self, compile):
        """Say once why torch.compile is not used: a warning if it was asked for, else a log entry."""
        message = (
            f"torch.compile of model {self.name!r} failed ({self._compile_error}); "
            f"predicting without it (set {_NO_COMPILE_ENV}=1 to skip the attempt)"
        )
        if compile is True and not self._compile_warned:
            self._compile_warned = True
            # stacklevel: the caller of predict (through _predict_scaled, _run, _forward_batch).
            warnings.warn(message, AstropyUserWarning, stacklevel=7)
        elif compile is not True and not (self._compile_warned or self._compile_logged):
            self._compile_logged = True
            log.info(message)

    def _run(self, x, *, batch_size, precision, tile, overlap, compile=False, repeats=1):
        """Mean and log-scale ``(N, 1, H, W)`` for inputs ``(N, C, H, W)``, tiled when large.

        ``repeats``: how many times the call runs inputs of this shape (flips, Monte
        Carlo draws), to judge whether compiling pays off.
        """
        n, _, h, w = x.shape
        if h * w <= tile * tile:
            means, scales = [], []
            full = (n // batch_size) * batch_size
            for start in range(0, n, batch_size):
                expected = repeats * (full if start + batch_size <= n else n - full)
                m, s = self._forward_batch(
                    torch.from_numpy(x[start : start + batch_size]), precision=precision, compile=compile,
                    expected=expected,
                )
                means.append(m.numpy())
                scales.append(None if s is None else s.numpy())
            mean = np.concatenate(means)
            log_scale = None if scales[0] is None else np.concatenate(scales)
            return mean, log_scale
        # Tiled: accumulate weighted sums tile by tile so memory stays bounded.
        th, tw = min(tile, h), min(tile, w)
        window = np.outer(_ramp(th, min(overlap, th // 4)), _ramp(tw, min(overlap, tw // 4)))
        mean = np.zeros((n, 1, h, w), np.float32)
        log_scale = np.zeros((n, 1, h, w), np.float32)
        weight = np.zeros((h, w), np.float32)
        rows, cols = _tile_starts(h, th, overlap), _tile_starts(w, tw, overlap)
        for y0 in rows:
            for x0 in cols:
                part = x[:, :, y0 : y0 + th, x0 : x0 + tw]
                m, s = self._run(part, batch_size=batch_size, precision=precision, tile=tile, overlap=overlap,
                                 compile=compile, repeats=repeats * len(rows) * len(cols))
                mean[:, :, y0 : y0 + th, x0 : x0 + tw] += m * window
                if s is not None:
                    log_scale[:, :, y0 : y0 + th, x0 : x0 + tw] += s * window
                weight[y0 : y0 + th, x0 : x0 + tw] += window
        mean /= weight
        log_scale /= weight
        return mean, (log_scale if self._model.scale_head is not None else None)

    # ------------------------------------------------------------------ predict
    def predict(
        self,
        stacks,
        *,
        uncertainty=True,
        tta=False,
        n_samples=8,
        batch_size=8,
        precision="auto",
        tile=_TILE,
        overlap=_OVERLAP,
        seed=0,
        check_domain=True,
        compile="auto",
    ):
        """Predict the output band for one stack or a list of stacks.

        Parameters
        ----------
        stacks : `~bandsynth.BandStack` or list of them
            Each holds (at least) the model's input bands on one pixel grid.
            Stacks whose bands differ in grid must be reprojected first
            (`BandStack.reproject`).
        uncertainty : bool
            Compute the per-pixel standard deviation (calibrated aleatoric term,
            plus the spread over test-time augmentations when ``tta``, plus the
            inputs' own noise propagated by Monte Carlo when they carry an
            uncertainty).
        tta : bool
            Average over the 8 flips/rotations (8x slower) and add their spread to
            the uncertainty.
        n_samples : int
            Monte Carlo draws of the inputs' noise (only for inputs with an
            uncertainty; 0 disables it).
        batch_size : int
            Images per network call.
        precision : {"auto", "fp32", "bf16"}
            ``"auto"`` uses bf16 autocast where the hardware has fast bf16 kernels.
        compile : {"auto", True, False}
            Run the network through `torch.compile` (inductor).  Each batch shape is
            compiled once per process (seconds to a minute on a CPU) and then runs
            faster (~1.5x for bf16 on a CPU; fp32 on a CPU is no faster).
            ``"auto"`` compiles a batch shape on a GPU, or on a CPU in bf16 with a
            C++ compiler, once this translator runs at least 256 network images of
            that shape, in one call or over several (flips and Monte Carlo draws
            count); ``True`` always compiles.  If compiling fails, the prediction
            runs without it, with one `~astropy.utils.exceptions.AstropyUserWarning`
            for ``True`` (a log message for ``"auto"``).  The environment variable
            ``BANDSYNTH_NO_COMPILE=1`` turns compiling off.
        tile, overlap : int
            Images above ``tile**2`` pixels are predicted in ``tile``-sized tiles
            overlapping by ``overlap`` pixels and blended.
        seed : int
            Seed of the Monte Carlo draws (predictions are deterministic).
        check_domain : bool
            Warn when an input's pixel scale or PSF FWHM differs by more than a
            factor of 2 from the training data's (the PSF is read from
            ``stack.meta["psf_fwhm"]``, a band-to-arcsec mapping, or the band's
            ``PSF_FWHM``, ``PSFFWHM`` or ``SEEING`` header keyword in arcsec).

        Returns
        -------
        `~bandsynth.SyntheticBand` or list of them
        """
        single = not isinstance(stacks, (list, tuple))
        stacks = [stacks] if single else list(stacks)
        if not stacks:
            raise ValueError("predict got an empty list of stacks")
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not (isinstance(compile, bool) or isinstance(compile, str) and compile == "auto"):
            raise TypeError(f"compile must be True, False or 'auto', got {compile!r}")
        if compile is True and _compile_disabled():
            log.info("compile=True ignored: the environment variable %s is set", _NO_COMPILE_ENV)
        prepared = [self.scale_inputs(s) for s in stacks]
        if check_domain:
            for s in stacks:
                self._check_domain(s)
        results = [None] * len(stacks)
        # Stacks of one shape go through the network together.
        by_shape = {}
        for i, (x, _, _) in enumerate(prepared):
            by_shape.setdefault(x.shape, []).append(i)
        rng = np.random.default_rng(seed)
        run = dict(batch_size=batch_size, precision=precision, tile=tile, overlap=overlap, compile=compile)
        for indices in by_shape.values():
            x = np.stack([prepared[i][0] for i in indices])
            mean_s, var_s, method = self._predict_scaled(x, indices, stacks, prepared, uncertainty, tta, n_samples, rng, run)
            for j, i in enumerate(indices):
                results[i] = self._to_synthetic(stacks[i], prepared[i], mean_s[j, 0], None if var_s is None else var_s[j, 0], method)
        return results[0] if single else results

    def _predict_scaled(self, x, indices, stacks, prepared, uncertainty, tta, n_samples, rng, run):
        """Scaled-space mean and variance for a same-shape batch, and a method label."""
        transforms = range(8) if tta else (0,)
        noise = self._input_noise(indices, stacks, prepared) if uncertainty and n_samples else None
        run = {**run, "repeats": len(transforms) + (n_samples if noise is not None else 0)}
        means, log_scales = [], []
        for k in transforms:
            xt = _dihedral(torch.from_numpy(x), k).numpy()
            m, s = self._run(np.ascontiguousarray(xt), **run)
            means.append(_undo_dihedral(torch.from_numpy(m), k).numpy())
            if s is not None:
                log_scales.append(_undo_dihedral(torch.from_numpy(s), k).numpy())
        mean = np.mean(means, axis=0)
        if not uncertainty:
            return mean, None, "none"
        parts, var = [], np.zeros_like(mean)
        if log_scales:
            var += (_LAPLACE_STD * np.exp(np.mean(log_scales, axis=0))) ** 2
            parts.append("aleatoric (Laplace scale head)")
        if tta:
            var += np.var(means, axis=0)
            parts.append("spread over 8 flips/rotations")
        if noise is not None:
            draws = []
            for _ in range(n_samples):
                noisy = (x + noise * rng.standard_normal(x.shape)).astype(np.float32)
                draws.append(self._run(noisy, **run)[0])
            var += np.var(draws, axis=0, ddof=1) if n_samples > 1 else 0.0
            parts.append(f"input noise by Monte Carlo ({n_samples} draws)")
        if not parts:
            return mean, None, "none"
        # One temperature, fitted on validation galaxies, scales the combined sigma.
        temperature = float(self._card.calibration.get("temperature", 1.0))
        method = " + ".join(parts) + f", combined sigma x temperature {temperature:.3g}"
        return mean, var * temperature**2, method

    def _input_noise(self, indices, stacks, prepared):
        """Per-pixel input standard deviation in scaled units, or None if no input has one."""
        out, any_noise = [], False
        for i in indices:
            stack, (x, ref, _) = stacks[i], prepared[i]
            sig = np.zeros_like(x)
            for c, band in enumerate(self.inputs):
                unc = stack[band].uncertainty
                if unc is None:
                    continue
                any_noise = True
                sd = np.asarray(unc.represent_as(StdDevUncertainty).array, dtype=np.float64)
                sd = np.where(np.isfinite(sd), sd, 0.0)
                image_unit = stack[band].unit
                if image_unit is not None and image_unit != parse_unit(self._card.unit):
                    sd = (sd * image_unit).to_value(parse_unit(self._card.unit))
                sig[c] = sd / self._scalings[band].derivative(x[c], reference=ref)
            out.append(sig)
        return np.stack(out).astype(np.float32) if any_noise else None

    def _to_synthetic(self, stack, prepared, mean_s, var_s, method):
        from . import __version__
        from .synthetic import SyntheticBand

        _, ref, mask = prepared
        out_scaling = self._scalings[self.output]
        flux = out_scaling.inverse(mean_s.astype(np.float64), reference=ref).astype(np.float32)
        sigma = None
        if var_s is not None:
            sigma = (out_scaling.derivative(mean_s, reference=ref) * np.sqrt(var_s)).astype(np.float32)
        # BandStack.from_fits records each input file with its SHA-256.
        files = {rec["band"]: rec for rec in stack.meta.get("inputs", ())}
        inputs = [
            {"band": b, "file": str(files.get(b, {}).get("file", "")), "checksum": str(files.get(b, {}).get("checksum", ""))}
            for b in self.inputs
        ]
        provenance = {
            "bandsynth_version": __version__,
            "model": self.name,
            "weights_sha256": self._card.sha256,
            "band": self.output,
            "inputs": inputs,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "scaling": {
                "reference_flux": float(ref),
                "reference_method": dict(self._card.reference),
                "unit": self._card.unit,
                **{b: self._scalings[b].to_dict() for b in (*self.inputs, self.output)},
            },
            "uncertainty_method": method,
            "history": [
                f"Predicted {self.output} from {' + '.join(self.inputs)} with bandsynth model "
                f"{self.name} ({self._card.preset} preset, trained on {self._card.mode}-mode data).",
                f"Flux scale: inputs divided by reference flux {ref:.6g} {self._card.unit} "
                "(max over inputs of the 99.5th pixel percentile); asinh inverse applied.",
                f"Uncertainty: {method}.",
            ],
        }
        if mask.any():
            provenance["history"].append(f"{int(mask.sum())} pixels masked: bad or masked input pixels.")
        return SyntheticBand(
            flux,
            uncertainty=None if sigma is None else StdDevUncertainty(sigma),
            mask=mask.copy(),
            wcs=stack.wcs,
            unit=parse_unit(self._card.unit),
            band=self.output,
            provenance=provenance,
        )

    def _check_domain(self, stack):
        """Warn when the stack's pixel scale or an input's PSF is far from the training data's."""
        wcs = stack.wcs
        if wcs is not None and wcs.has_celestial:
            from astropy.wcs.utils import proj_plane_pixel_scales

            scale = float(np.mean(proj_plane_pixel_scales(wcs.celestial)) * 3600.0)
            trained = float(self._card.pixel_scale)
            if not 0.5 <= scale / trained <= 2.0:
                warnings.warn(
                    f"model {self.name!r} was trained on {trained:.3g} arcsec/pixel images; this stack has "
                    f"{scale:.3g} arcsec/pixel: the prediction may be unreliable (reproject the inputs?)",
                    AstropyUserWarning,
                    stacklevel=3,
                )
        for band in self.inputs:
            fwhm, trained = _input_psf_fwhm(stack, band), self._card.psf_fwhm.get(band)
            if fwhm is not None and trained and not 0.5 <= fwhm / float(trained) <= 2.0:
                warnings.warn(
                    f"model {self.name!r} was trained on {band} images with a PSF FWHM of {float(trained):.3g} "
                    f"arcsec; this stack's {band} PSF is {fwhm:.3g} arcsec: the prediction may be unreliable",
                    AstropyUserWarning,
                    stacklevel=3,
                )


# Header keywords read as an input's PSF FWHM in arcsec (the common survey spellings;
# "FWHM" alone is left out because some pipelines write it in pixels).
_PSF_KEYWORDS = ("PSF_FWHM", "PSFFWHM", "SEEING")


def _input_psf_fwhm(stack, band):
    """PSF FWHM (arcsec) of ``band`` in ``stack``, or None when nothing records it.

    Read from ``stack.meta["psf_fwhm"][band]`` (mock galaxies) or the band's header
    keywords :data:`_PSF_KEYWORDS`.
    """
    recorded = stack.meta.get("psf_fwhm")
    candidates = [recorded.get(band)] if hasattr(recorded, "get") else []
    header = stack[band].meta or {}
    candidates += [header.get(key) for key in _PSF_KEYWORDS]
    for value in candidates:
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if np.isfinite(value) and value > 0:
            return value
    return None


class _OnnxGraph(torch.nn.Module):
    """The generator with plain tensor outputs, for the ONNX exporter."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net(x)
        return out.mean if out.log_scale is None else (out.mean, out.log_scale)


def _fit_temperature(z):
    """Temperature T minimising the coverage misfit of ``|residual| / sigma`` values ``z``.

    Returns ``(T, coverage within 1 T-sigma, coverage within 2 T-sigma)``.
    """
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 801))
    cov1 = np.array([np.mean(z <= t) for t in grid])
    cov2 = np.array([np.mean(z <= 2 * t) for t in grid])
    # Tolerances of the targets (0.68 +- 0.05, 0.95 +- 0.03) weight the two terms.
    misfit = ((cov1 - 0.6827) / 0.05) ** 2 + ((cov2 - 0.9545) / 0.03) ** 2
    best = int(np.argmin(misfit))
    return float(grid[best]), float(cov1[best]), float(cov2[best])


def _float_or_none(value):
    return None if value is None else float(value)


def _version():
    from . import __version__

    return __version__


def _fill_bad_pixels(data, bad):
    """Replace bad pixels by a Gaussian-weighted mean of good neighbours."""
    from astropy.convolution import Gaussian2DKernel, interpolate_replace_nans

    filled = interpolate_replace_nans(np.where(bad, np.nan, data), Gaussian2DKernel(2.0))
    # Pixels far from any good one stay NaN after one pass: fall back to the median.
    return np.where(np.isfinite(filled), filled, np.nanmedian(np.where(bad, np.nan, data)))
