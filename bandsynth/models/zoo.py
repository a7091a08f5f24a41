"""Registry of shipped models and their model cards.

Each model ships as ``weights/NAME.safetensors`` beside ``weights/NAME.json``, its
card.  The card records everything needed to use the weights correctly (inputs,
output, architecture, scaling, pixel scale and PSF assumptions) and to judge them
(training recipe, held-out metrics next to baselines, calibration), plus the
SHA-256 of the weights file, checked on every load.  Weights are only ever read
with safetensors: nothing is unpickled.

Examples
--------
>>> from bandsynth.models.zoo import list_models
>>> isinstance(list_models(), list)
True
"""

from __future__ import annotations

import json
import math
import types
from dataclasses import dataclass, field, fields
from pathlib import Path

from .._io import sha256_file
from ..bands import get_band

__all__ = [
    "ModelCard",
    "WeightsHashError",
    "list_models",
    "get_card",
    "model_paths",
    "sha256_file",
]

WEIGHTS_DIR = Path(__file__).parent / "weights"

_CITATION = (
    "Zaazou, Bihlo & Tricco, 'Mapping Galaxy Images Across Ultraviolet, Visible and "
    "Infrared Bands Using Generative Deep Learning'"
)


class WeightsHashError(ValueError):
    """The weights file does not have the SHA-256 its model card records."""


def _freeze(value):
    # Cards are immutable: nested mappings become read-only views, lists tuples.
    if isinstance(value, dict):
        return types.MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value):
    if isinstance(value, types.MappingProxyType | dict):
        return {str(k): _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_thaw(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no NaN: a metric that could not be measured is null
    return value


@dataclass(frozen=True)
class ModelCard:
    """Everything known about one trained band-translation model.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"nuv_k_to_r"``.
    inputs : tuple of str
        Input band names (registry names), in the channel order of the network.
    output : str
        Predicted band.
    preset : str
        Generator preset (see `bandsynth.models.generator.PRESETS`).
    architecture : mapping
        Keyword arguments of the generator (``base_width``, ``n_down``, ``n_res``, ...).
    scaling : mapping
        Band name to `~bandsynth.scaling.AsinhScaling` parameters, for inputs and output.
    reference : mapping
        How the per-galaxy reference flux is set from the inputs
        (``{"method": "max_percentile", "percentile": 99.5}``).
    unit : str
        Flux unit the scaling parameters refer to.
    mode : str
        Observing mode of the training data (``"ideal"`` or ``"survey"``).
    pixel_scale : float
        Pixel scale of the training images, arcsec per pixel.
    psf_fwhm : mapping
        Band name to the PSF FWHM (arcsec) of the training images.
    training : mapping
        Data set, split sizes, recipe (exact command and seed), steps, duration.
    metrics : mapping
        Held-out metrics of the model and of the baselines.
    calibration : mapping
        Uncertainty calibration (temperature, coverage on the validation split).
    sha256 : str
        SHA-256 of the weights file.
    n_parameters : int
        Number of trainable parameters.
    """

    name: str
    inputs: tuple
    output: str
    preset: str
    architecture: types.MappingProxyType
    scaling: types.MappingProxyType
    reference: types.MappingProxyType = field(
        default_factory=lambda: {"method": "max_percentile", "percentile": 99.5}
    )
    unit: str = "nanomaggy"
    mode: str = "ideal"
    pixel_scale: float = 0.396
    psf_fwhm: types.MappingProxyType = field(default_factory=dict)
    training: types.MappingProxyType = field(default_factory=dict)
    metrics: types.MappingProxyType = field(default_factory=dict)
    calibration: types.MappingProxyType = field(default_factory=dict)
    sha256: str = ""
    n_parameters: int = 0
    licence: str = "BSD-3-Clause"
    citation: str = _CITATION
    description: str = ""
    bandsynth_version: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError("ModelCard name must be a non-empty string")
        if isinstance(self.inputs, str) or not self.inputs:
            raise ValueError(f"model {self.name!r}: inputs must be a non-empty list of band names")
        # Canonical band names, so cards written with aliases compare equal.
        object.__setattr__(self, "inputs", tuple(get_band(b).name for b in self.inputs))
        object.__setattr__(self, "output", get_band(self.output).name)
        if self.mode not in ("ideal", "survey"):
            raise ValueError(f"model {self.name!r}: mode must be 'ideal' or 'survey', got {self.mode!r}")
        missing = [b for b in (*self.inputs, self.output) if b not in self.scaling]
        if missing:
            raise ValueError(f"model {self.name!r}: the card has no scaling for band(s) {missing}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict | list):
                object.__setattr__(self, f.name, _freeze(value))

    def to_dict(self) -> dict:
        """The card as plain JSON-ready types."""
        return {f.name: _thaw(getattr(self, f.name)) for f in fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data) -> "ModelCard":
        """Build a card from :meth:`to_dict` output; unknown keys are an error."""
        if not isinstance(data, dict):
            raise TypeError(f"a model card must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"model card {data.get('name')!r} has unknown fields {unknown}")
        data = dict(data)
        data["inputs"] = tuple(data.get("inputs", ()))
        return cls(**data)

    @classmethod
    def read(cls, path) -> "ModelCard":
        """Read a card from a JSON file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"model card not found: {path}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"model card {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def write(self, path):
        """Write the card as JSON to ``path`` (atomically)."""
        from .._io import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_text(self.to_json())

    def replace(self, **changes) -> "ModelCard":
        """A copy with some fields changed."""
        data = self.to_dict()
        data.update({k: _thaw(v) for k, v in changes.items()})
        return type(self).from_dict(data)


def model_paths(name_or_path) -> tuple[Path, Path]:
    """Resolve a registry name or a user path to ``(weights, card)`` paths.

    The rule, in order:

    1. A bare name (no folder separator, no ``.json``/``.safetensors`` suffix)
       of a **shipped** model is that shipped model, even when a file or folder
       of the same name exists in the current folder; that local model is not
       used and an `~astropy.utils.exceptions.AstropyUserWarning` says so.  Give
       a path (``./nuv_k_to_r``) to load the local one.
    2. Anything else is a path: the ``.safetensors`` file, the ``.json`` card,
       their common stem (the other file is looked up beside it), or a folder
       holding exactly one saved model.
    3. A bare name that is neither shipped nor a local path is an error listing
       the shipped models.

    Examples
    --------
    >>> weights, card = model_paths("nuv_k_to_r")
    >>> card.name
    'nuv_k_to_r.json'
    """
    text = str(name_or_path)
    candidate = WEIGHTS_DIR / f"{text}.json"
    bare = "/" not in text and "\\" not in text and not text.endswith((".json", ".safetensors"))
    if bare and candidate.exists():
        local = [p for p in (Path(text), Path(f"{text}.json"), Path(f"{text}.safetensors")) if p.exists()]
        if local:
            import warnings

            from astropy.utils.exceptions import AstropyUserWarning

            warnings.warn(
                f"{text!r} names the shipped model {text!r}; the local {str(local[0])!r} of the same name is not "
                f"used: give a path such as './{text}' to load it",
                AstropyUserWarning,
                stacklevel=2,
            )
        return WEIGHTS_DIR / f"{text}.safetensors", candidate
    path = Path(text)
    if path.is_dir():
        cards = [c for c in sorted(path.glob("*.json")) if c.with_suffix(".safetensors").exists()]
        if len(cards) != 1:
            found = ", ".join(c.name for c in cards) or "none"
            raise FileNotFoundError(
                f"model folder {path} must hold exactly one saved model (NAME.safetensors + NAME.json), "
                f"found {found}; give the path of one of them"
            )
        return cards[0].with_suffix(".safetensors"), cards[0]
    if bare and not path.exists() and not path.with_suffix(".json").exists():
        known = ", ".join(c.name for c in list_models()) or "none"
        raise ValueError(f"unknown model {text!r}; shipped models are: {known}")
    stem = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    weights, card = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    for p, what in ((card, "model card"), (weights, "weights file")):
        if not p.exists():
            raise FileNotFoundError(f"{what} not found: {p}")
    return weights, card


def list_models() -> list[ModelCard]:
    """Cards of every shipped model, sorted by name."""
    return [ModelCard.read(p) for p in sorted(WEIGHTS_DIR.glob("*.json"))]


def get_card(name) -> ModelCard:
    """The card of a shipped model or of a user's model path."""
    return ModelCard.read(model_paths(name)[1])
