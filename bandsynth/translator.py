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

import datetime
import logging
import math
import os
import tempfile
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import torch
from astropy.nddata import StdDevUncertainty
from astropy.utils.exceptions import AstropyUserWarning

from .bands import get_band
from .models.generator import build_generator, count_parameters, receptive_field
from .models.zoo import ModelCard, WeightsHashError, model_paths, sha256_file
from .scaling import AsinhScaling, reference_flux
from .units import parse_unit

__all__ = ["Translator"]

log = logging.getLogger(__name__)

# Above this many pixels an image is predicted in overlapping tiles, which bounds
# memory (activations of the "paper" preset take ~1 kB per pixel in fp32).
_TILE = 512
_OVERLAP = 64

# Laplace standard deviation = sqrt(2) * scale b.
_LAPLACE_STD = math.sqrt(2.0)


def _device(device):
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _bf16_supported(device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    # Fast bf16 kernels on CPU need AVX512-BF16 or AMX; elsewhere bf16 is slower than fp32.
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


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
        _atomic_write(weights, lambda tmp: save_file(state, tmp, metadata={"name": self._card.name}))
        card = self._card.replace(
            sha256=sha256_file(weights), n_parameters=count_parameters(self._model)
        )
        _atomic_write(card_path, lambda tmp: Path(tmp).write_text(card.to_json()))
        return type(self)(self._model, card, device=self._device)

    # ------------------------------------------------------------------ properties
    @property
    def card(self) -> ModelCard:
        """The model card."""
        return self._card

    @property
    def name(self) -> str:
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
            if bad.all():
                raise ValueError(f"band {band}: every pixel is masked or not finite; nothing to predict from")
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
    def _forward_batch(self, x, *, precision):
        """Network mean and Laplace log-scale for a batch ``[B, C, H, W]`` (any size)."""
        multiple = 2 ** getattr(self._model, "n_down", 1)
        h, w = x.shape[-2:]
        ph, pw = (-h) % multiple, (-w) % multiple
        if ph or pw:  # reflection padding as inside the network; cropped again below
            x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect")
        x = x.to(self._device)
        use_bf16 = precision == "bf16" or (precision == "auto" and _bf16_supported(self._device))
        if self._device.type == "cpu" and use_bf16:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(self._device.type, dtype=torch.bfloat16, enabled=use_bf16):
            out = self._model(x)
        mean = out.mean.float()[..., :h, :w]
        log_scale = None if out.log_scale is None else out.log_scale.float()[..., :h, :w]
        return mean.cpu(), (None if log_scale is None else log_scale.cpu())

    def _run(self, x, *, batch_size, precision, tile, overlap):
        """Mean and log-scale ``(N, 1, H, W)`` for inputs ``(N, C, H, W)``, tiled when large."""
        n, _, h, w = x.shape
        if h * w <= tile * tile:
            means, scales = [], []
            for start in range(0, n, batch_size):
                m, s = self._forward_batch(torch.from_numpy(x[start : start + batch_size]), precision=precision)
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
        for y0 in _tile_starts(h, th, overlap):
            for x0 in _tile_starts(w, tw, overlap):
                part = x[:, :, y0 : y0 + th, x0 : x0 + tw]
                m, s = self._run(part, batch_size=batch_size, precision=precision, tile=tile, overlap=overlap)
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
        tile, overlap : int
            Images above ``tile**2`` pixels are predicted in ``tile``-sized tiles
            overlapping by ``overlap`` pixels and blended.
        seed : int
            Seed of the Monte Carlo draws (predictions are deterministic).
        check_domain : bool
            Warn when the input's pixel scale differs much from the training data's.

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
        run = dict(batch_size=batch_size, precision=precision, tile=tile, overlap=overlap)
        for indices in by_shape.values():
            x = np.stack([prepared[i][0] for i in indices])
            mean_s, var_s, method = self._predict_scaled(x, indices, stacks, prepared, uncertainty, tta, n_samples, rng, run)
            for j, i in enumerate(indices):
                results[i] = self._to_synthetic(stacks[i], prepared[i], mean_s[j, 0], None if var_s is None else var_s[j, 0], method)
        return results[0] if single else results

    def _predict_scaled(self, x, indices, stacks, prepared, uncertainty, tta, n_samples, rng, run):
        """Scaled-space mean and variance for a same-shape batch, and a method label."""
        transforms = range(8) if tta else (0,)
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
            temperature = float(self._card.calibration.get("temperature", 1.0))
            aleatoric = (_LAPLACE_STD * temperature * np.exp(np.mean(log_scales, axis=0))) ** 2
            var += aleatoric
            parts.append(f"aleatoric (Laplace head x temperature {temperature:.3g})")
        if tta:
            var += np.var(means, axis=0)
            parts.append("spread over 8 flips/rotations")
        noise = self._input_noise(indices, stacks, prepared)
        if n_samples and noise is not None:
            draws = []
            for _ in range(n_samples):
                noisy = (x + noise * rng.standard_normal(x.shape)).astype(np.float32)
                draws.append(self._run(noisy, **run)[0])
            var += np.var(draws, axis=0, ddof=1) if n_samples > 1 else 0.0
            parts.append(f"input noise by Monte Carlo ({n_samples} draws)")
        if not parts:
            return mean, None, "none"
        return mean, var, "; ".join(parts)

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
        inputs = []
        for band in self.inputs:
            meta = stack[band].meta or {}
            inputs.append(
                {
                    "band": band,
                    "file": str(meta.get("FILENAME", meta.get("filename", ""))),
                    "checksum": str(meta.get("CHECKSUM", meta.get("checksum", ""))),
                }
            )
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
        """Warn when the stack's pixel scale is far from the training data's."""
        wcs = stack.wcs
        if wcs is None or not wcs.has_celestial:
            return
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


def _fill_bad_pixels(data, bad):
    """Replace bad pixels by a Gaussian-weighted mean of good neighbours."""
    from astropy.convolution import Gaussian2DKernel, interpolate_replace_nans

    filled = interpolate_replace_nans(np.where(bad, np.nan, data), Gaussian2DKernel(2.0))
    # Pixels far from any good one stay NaN after one pass: fall back to the median.
    return np.where(np.isfinite(filled), filled, np.nanmedian(np.where(bad, np.nan, data)))


def _atomic_write(path, write):
    """Call ``write(tmp_path)`` then move the temporary file onto ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
