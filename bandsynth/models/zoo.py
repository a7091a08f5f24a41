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

import functools
import hashlib
import json
import math
import re
import types
from dataclasses import dataclass, field, fields
from pathlib import Path

from .._io import sha256_file
from ..bands import get_band

__all__ = [
    "ModelCard",
    "WeightsHashError",
    "CardHashError",
    "CARD_FORMAT",
    "verified_model",
    "write_model",
    "list_models",
    "get_card",
    "model_paths",
    "model_files",
    "sha256_file",
]

WEIGHTS_DIR = Path(__file__).parent / "weights"

_CITATION = (
    "Zaazou, Bihlo & Tricco, 'Mapping Galaxy Images Across Ultraviolet, Visible and "
    "Infrared Bands Using Generative Deep Learning'"
)


#: Version of the model-card format this bandsynth writes and reads.  Format 2: fixed
#: physical scaling, colour baseline, calibration per configuration, whole-card hash.
CARD_FORMAT = 2


class WeightsHashError(ValueError):
    """The weights file does not have the SHA-256 its model card records."""


class CardHashError(ValueError):
    """The model card's content does not have the SHA-256 it records (it was edited by hand)."""


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

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"nuv_k_to_r"``.
    inputs : tuple of str
        Input band names (registry names), in the channel order of the network.
    output : str or None
        Predicted band (None for an any-band model: see ``outputs``).
    preset : str
        Generator preset (see `bandsynth.nn.generator.PRESETS`).
    architecture : mapping
        `~bandsynth.nn.network.TranslationNet` configuration: the generator's
        keyword arguments, the scaling buffers and the colour baseline.
    scaling : mapping
        Band name to `~bandsynth.scaling.AsinhScaling` parameters, for inputs and
        output, in ``unit`` (a fixed physical scaling: no per-image reference).
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
        Uncertainty calibration per `predict` configuration
        (`bandsynth.uncertainty.CONFIGURATIONS`: brightness bin centres, temperatures,
        coverage reached, the split it was fitted on).
    sha256 : str
        SHA-256 of the weights file.
    n_parameters : int
        Number of trainable parameters.
    licence : str
        Licence of the weights.
    citation : str
        Reference to cite when using the model.
    description : str
        Free text.
    bandsynth_version : str
        Version of bandsynth that wrote the card.
    version : int
        Version of the model under this name; ``Translator.load("NAME@2")`` asks for one.
    receptive_field : int
        Side, in pixels, of the input window one output pixel depends on.
    baseline : mapping
        The linear colour model inside the network (``coefficients`` per input band).
    uncertainty : mapping
        The error distribution the sigma stands for (``{"distribution": "gaussian", ...}``).
    outputs : tuple of str
        The bands an any-band model (`bandsynth.nn.any_band`) can predict, each from any
        subset of ``inputs`` (the bands it reads); empty for a model of one ``output``.
        Its ``calibration`` then maps each of these bands to ``inputs`` (the request it
        was fitted on) and ``configurations`` (as a one-band model's calibration).
    format_version : int
        Version of the card format (`CARD_FORMAT`).
    card_sha256 : str
        SHA-256 of the rest of the card (canonical JSON), checked on every load.
    extra : mapping
        Fields a newer bandsynth wrote that this one does not know (kept, not used).
    """

    name: str
    inputs: tuple
    output: str
    preset: str
    architecture: types.MappingProxyType
    scaling: types.MappingProxyType
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
    version: int = 1
    receptive_field: int = 0
    baseline: types.MappingProxyType = field(default_factory=dict)
    uncertainty: types.MappingProxyType = field(default_factory=dict)
    outputs: tuple = ()
    format_version: int = CARD_FORMAT
    card_sha256: str = ""
    extra: types.MappingProxyType = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError("ModelCard name must be a non-empty string")
        if isinstance(self.inputs, str) or not self.inputs:
            raise ValueError(f"model {self.name!r}: inputs must be a non-empty list of band names")
        # Canonical band names, so cards written with aliases compare equal.
        object.__setattr__(self, "inputs", tuple(get_band(b).name for b in self.inputs))
        object.__setattr__(self, "outputs", tuple(get_band(b).name for b in self.outputs))
        if bool(self.outputs) == (self.output is not None):
            raise ValueError(f"model {self.name!r}: give either output (one band) or outputs (an any-band model)")
        if self.output is not None:
            object.__setattr__(self, "output", get_band(self.output).name)
        if self.mode not in ("ideal", "survey"):
            raise ValueError(f"model {self.name!r}: mode must be 'ideal' or 'survey', got {self.mode!r}")
        missing = [b for b in dict.fromkeys((*self.inputs, *self.writes)) if b not in self.scaling]
        if missing:
            raise ValueError(f"model {self.name!r}: the card has no scaling for band(s) {missing}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict | list):
                object.__setattr__(self, f.name, _freeze(value))

    @property
    def writes(self) -> tuple:
        """The bands the model can predict: ``outputs``, or ``(output,)``."""
        return self.outputs or (self.output,)

    def to_dict(self) -> dict:
        """The card as plain JSON-ready types.

        Returns
        -------
        dict
            Field name to value (mappings as dicts, tuples as lists, non-finite floats as None); ``outputs``
            only for an any-band model.
        """
        out = {f.name: _thaw(getattr(self, f.name)) for f in fields(self)}
        if not self.outputs:
            # Cards of one mapping stay as they were before any-band models, so their hashes (and users' saved
            # cards) still verify.
            del out["outputs"]
        return out

    def to_json(self) -> str:
        """The card as JSON text, with its ``card_sha256`` recomputed.

        Returns
        -------
        str
        """
        return json.dumps({**self.to_dict(), "card_sha256": self.content_sha256()}, indent=2, allow_nan=False) + "\n"

    def content_sha256(self) -> str:
        """SHA-256 of the card's canonical JSON without ``card_sha256`` itself.

        Returns
        -------
        str
            Hex digest.
        """
        data = self.to_dict()
        data.pop("card_sha256", None)
        return _canonical_sha256(data)

    @functools.cached_property  # each prediction's provenance records it: the card, frozen, is hashed once
    def prediction_sha256(self) -> str:
        """SHA-256 (hex digest) of what of the card shapes a prediction: bands, architecture, scaling, unit,
        colour model and calibration (not its metrics, description or history).

        A batch run keeps an output only if it was made with the same (`bandsynth.batch`): a card
        recalibrated since states another σ, one with new metrics predicts the same.
        """
        data = self.to_dict()
        return _canonical_sha256({k: data.get(k) for k in ("inputs", "output", "outputs", "architecture", "scaling",
                                                           "unit", "baseline", "calibration", "receptive_field")})

    def verify(self, *, source="model card"):
        """Raise `CardHashError` unless ``card_sha256`` matches the card's content.

        Parameters
        ----------
        source : str
            What the card is, for the error message.

        Returns
        -------
        ModelCard
            This card, unchanged.
        """
        digest = self.content_sha256()
        if self.card_sha256 != digest:
            raise CardHashError(
                f"{source} records card SHA-256 {self.card_sha256 or 'none'} but its content hashes to {digest}: "
                "the card was edited after it was written (e.g. its calibration); refusing to use it. "
                "Write cards with ModelCard.write, which updates the hash."
            )
        return self

    @classmethod
    def from_dict(cls, data) -> "ModelCard":
        """Build a card from :meth:`to_dict` output.

        Fields this version does not know (written by a newer bandsynth of the same
        card format) are kept in ``extra``; an older or newer format is an error.

        Parameters
        ----------
        data : dict
            The card as a JSON object: field name to value, with
            ``format_version``.

        Returns
        -------
        ModelCard
            The card.

        Raises
        ------
        TypeError
            If ``data`` is not a dict.
        ValueError
            If its ``format_version`` is not the one this bandsynth reads.
        """
        if not isinstance(data, dict):
            raise TypeError(f"a model card must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        fmt = data.get("format_version", 1)
        if fmt != CARD_FORMAT:
            raise ValueError(
                f"model card {data.get('name')!r} has format version {fmt}; this bandsynth reads format "
                f"{CARD_FORMAT} (format 1 cards belong to bandsynth 0.1 models, whose predictions depended on "
                "the cut-out: retrain them with Translator.fit or bandsynth train)"
            )
        known = {f.name for f in fields(cls)}
        extra = {k: data.pop(k) for k in sorted(set(data) - known)}
        if extra:
            data["extra"] = {**dict(data.get("extra") or {}), **extra}
        data["inputs"] = tuple(data.get("inputs", ()))
        data["outputs"] = tuple(data.get("outputs", ()))
        return cls(**data)

    @classmethod
    def read(cls, path) -> "ModelCard":
        """Read a card from a JSON file.

        Parameters
        ----------
        path : str or os.PathLike
            The card file (``<model>.json``).

        Returns
        -------
        ModelCard
            The card (see :meth:`from_dict`).

        Raises
        ------
        FileNotFoundError
            If there is no such file.
        ValueError
            If the file is not valid JSON or the card is of another format.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"model card not found: {path}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"model card {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def write(self, path):
        """Write the card as JSON to ``path`` (atomically), with its hash recomputed.

        Parameters
        ----------
        path : str or os.PathLike
            The card file; an existing one is replaced.
        """
        from .._io import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_text(self.to_json())

    @property
    def survey(self):
        """The survey layer the model was trained on, or None (the paper's ideal or simple survey mode).

        Returns
        -------
        str or None
            The preset (``"galex_sdss_2mass"``) or, for a mapping of band to survey, the
            surveys' names (``"GALEX, SDSS"``), from ``training["data_info"]["survey"]``.
        """
        survey = (self.training.get("data_info") or {}).get("survey")
        if survey is None or isinstance(survey, str):
            return survey
        return ", ".join(sorted(set(survey.values())))

    @property
    def observed_data(self):
        """The description of a training set of no mock universe (observed galaxies, say), else None.

        Returns
        -------
        str or None
            The first clause of ``training["data_info"]["description"]`` (or its source).
        """
        info = dict((self.training or {}).get("data_info") or {})
        if info.get("source") in (None, "bandsynth.datasets.mock"):
            return None
        return str(info.get("description") or info["source"]).split(",")[0]

    @property
    def trained_on(self) -> str:
        """What the training images were, in a few words: the survey layer, observed galaxies or the paper's mocks.

        Returns
        -------
        str
            E.g. ``"survey layer (galex_sdss_2mass)"``, ``"ideal mocks"``.
        """
        if self.survey is not None:
            return f"survey layer ({self.survey})"
        return self.observed_data or ("ideal mocks" if self.mode == "ideal" else "noisy mocks")

    def replace(self, **changes) -> "ModelCard":
        """A copy with some fields changed.

        Parameters
        ----------
        **changes
            Field names and their new values.

        Returns
        -------
        ModelCard
            Rebuilt through :meth:`from_dict` (``card_sha256`` is kept as it was).
        """
        data = self.to_dict()
        data.update({k: _thaw(v) for k, v in changes.items()})
        return type(self).from_dict(data)

    def with_metrics(self, metrics) -> "ModelCard":
        """A copy whose ``metrics`` gain (or replace) the given entries; the others stay.

        Each benchmark writes its own entries (``test`` and ``robustness`` by
        ``bandsynth evaluate``, ``bf16`` by ``benchmarks/model_speed.py``): none may drop another's.

        Parameters
        ----------
        metrics : mapping
            Entry name to its new value.

        Returns
        -------
        ModelCard
            As :meth:`replace` makes it.

        Examples
        --------
        >>> card = get_card("g_r_to_u_paper").with_metrics({"note": {"n": 1}})
        >>> card.metrics["note"]["n"], "bf16" in card.metrics
        (1, True)
        """
        return self.replace(metrics={**self.metrics, **metrics})


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

    Parameters
    ----------
    name_or_path : str or os.PathLike

    Returns
    -------
    weights, card : pathlib.Path
        The ``.safetensors`` file and its ``.json`` card.

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
    weights, card = model_files(path)
    earlier = path.with_suffix(".json")  # how bandsynth before 0.2 named a model whose name has a dot in it
    if not card.exists() and earlier != card and earlier.exists() and earlier.with_suffix(".safetensors").exists():
        import warnings

        from astropy.utils.exceptions import AstropyUserWarning

        warnings.warn(f"model {text!r} was saved as {earlier.name} and {earlier.with_suffix('.safetensors').name}, "
                      f"its name cut at its last dot by an earlier bandsynth; rename them to {card.name} and "
                      f"{weights.name}", AstropyUserWarning, stacklevel=2)
        return earlier.with_suffix(".safetensors"), earlier
    if bare and not path.exists() and not card.exists():
        known = ", ".join(c.name for c in list_models()) or "none"
        raise ValueError(f"unknown model {text!r}; shipped models are: {known}")
    for p, what in ((card, "model card"), (weights, "weights file")):
        if not p.exists():
            raise FileNotFoundError(f"{what} not found: {p}")
    return weights, card


def model_files(stem):
    """``(STEM.safetensors, STEM.json)``: the two files of the model saved as ``stem``.

    The suffixes are appended, not swapped in: a stem with a dot (``r_0.262as``) keeps its
    whole name (`pathlib.Path.with_suffix` would write ``r_0.safetensors``, and two models
    differing after the dot would replace each other).  A ``.json`` or ``.safetensors``
    suffix of ``stem`` is dropped first.

    Parameters
    ----------
    stem : str or os.PathLike

    Returns
    -------
    weights, card : pathlib.Path

    Examples
    --------
    >>> [p.name for p in model_files("runs/r_0.262as")]
    ['r_0.262as.safetensors', 'r_0.262as.json']
    >>> [p.name for p in model_files("runs/r_0.262as.json")]
    ['r_0.262as.safetensors', 'r_0.262as.json']
    """
    stem = Path(stem)
    if stem.suffix in (".json", ".safetensors"):
        stem = stem.with_suffix("")
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def _canonical_sha256(data):
    """SHA-256 (hex) of ``data`` as canonical JSON: sorted keys, no spaces, no NaN."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_VERSIONED = re.compile(r"^(?P<name>[A-Za-z0-9_\-]+)@(?P<version>\d+)$")


def split_version(name_or_path):
    """``("nuv_k_to_r", 7)`` of ``"nuv_k_to_r@7"``; ``(text, None)`` of anything without ``@VERSION``.

    Parameters
    ----------
    name_or_path : str or os.PathLike

    Returns
    -------
    tuple of (str, int or None)
    """
    text = str(name_or_path)
    match = _VERSIONED.match(text)
    return (match["name"], int(match["version"])) if match else (text, None)


def _of_version(card, text, version):
    if version is not None and card.version != version:
        raise ValueError(f"model {text!r} version {version} is not available; version {card.version} is")
    return card


def verified_model(name_or_path):
    """``(weights path, card)`` of a model whose weights and card both match their recorded SHA-256.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        Anything `model_paths` takes, optionally with ``@VERSION`` after a shipped
        model's name (``"nuv_k_to_r@5"``).

    Returns
    -------
    weights : pathlib.Path
    card : ModelCard

    Raises
    ------
    ValueError
        Unknown name, or a version other than the one available.
    WeightsHashError, CardHashError
        A file does not match its recorded hash.
    """
    text, version = split_version(name_or_path)
    weights, card_path = model_paths(text)
    card = _of_version(ModelCard.read(card_path).verify(source=f"model card {card_path}"), text, version)
    digest = sha256_file(weights)
    if digest != card.sha256:
        raise WeightsHashError(
            f"weights file {weights} has SHA-256 {digest}, but its model card records "
            f"{card.sha256 or 'none'}: the file is damaged or was replaced; refusing to load it"
        )
    return weights, card


def write_model(state, card, path, *, overwrite=False):
    """Write weights ``state`` (tensors, safetensors) and ``card`` as ``PATH.safetensors`` + ``PATH.json``.

    Both files are written atomically; the card gets the weights' SHA-256 and its own.

    Parameters
    ----------
    state : dict of str to torch.Tensor
        The network's state dict (contiguous CPU tensors).
    card : ModelCard
    path : str or os.PathLike
        ``PATH`` (a ``.json`` or ``.safetensors`` suffix is dropped; any other dot is
        part of the name: `model_files`).
    overwrite : bool
        Replace existing files (else `FileExistsError`).

    Returns
    -------
    ModelCard
        The card as written (read back from ``PATH.json``).
    """
    from safetensors.torch import save

    from .._io import atomic_path

    weights, card_path = model_files(path)
    for p in (weights, card_path):
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} exists; pass overwrite=True to replace it")
    weights.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(weights) as tmp:
        # Bytes into the file atomic_path made: it keeps the usual permissions (safetensors'
        # save_file would create the file itself, readable by its owner only).
        tmp.write_bytes(save(state, metadata={"name": card.name}))
    card = card.replace(sha256=sha256_file(weights))
    card.write(card_path)
    return ModelCard.read(card_path)


def list_models() -> list[ModelCard]:
    """Cards of every shipped model, sorted by name.

    Returns
    -------
    list of ModelCard
    """
    return [ModelCard.read(p) for p in sorted(WEIGHTS_DIR.glob("*.json"))]


def get_card(name) -> ModelCard:
    """The card of a shipped model or of a user's model path.

    Parameters
    ----------
    name : str or os.PathLike
        Anything `model_paths` takes, optionally with ``@VERSION`` after a shipped
        model's name.

    Returns
    -------
    ModelCard

    Raises
    ------
    ValueError
        Unknown name, or a version other than the one available.
    """
    text, version = split_version(name)
    return _of_version(ModelCard.read(model_paths(text)[1]), text, version)
