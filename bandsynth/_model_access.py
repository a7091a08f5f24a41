"""What `~bandsynth.Translator` and `~bandsynth.any_band_translator.AnyBandTranslator` both expose of a model."""

from __future__ import annotations


class ModelAccess:
    """Read-only views of ``self._card``, ``self._model`` and ``self._scalings`` (a mixin)."""

    @property
    def card(self):
        """The model card (`~bandsynth.models.zoo.ModelCard`)."""
        return self._card

    @property
    def name(self) -> str:
        """Model name, as in the registry (``"nuv_k_to_r"``)."""
        return self._card.name

    @property
    def inputs(self) -> tuple:
        """Input band names: the network's channel order (for an any-band model, the bands it reads)."""
        return self._card.inputs

    @property
    def scalings(self) -> dict:
        """Band name -> `~bandsynth.scaling.AsinhScaling` of the card (fixed, in flux units)."""
        return dict(self._scalings)

    @property
    def model(self):
        """The underlying network (in eval mode)."""
        return self._model
