"""Translator: a trained network with its model card — load, predict, fit, save, evaluate.

``Translator.load("nuv_k_to_r").predict(stack)`` turns a `~bandsynth.BandStack` of the model's input bands into a
`~bandsynth.SyntheticBand` of the output band (inputs' flux units and WCS, calibrated per-pixel sigma, provenance):
a thin facade over `bandsynth.nn`, `bandsynth.uncertainty` and `bandsynth.models` (cards, registry, domain checks).
"""

from __future__ import annotations

from ._model_access import ModelAccess
from .models.zoo import ModelCard, verified_model, write_model
from .nn.any_band import AnyBandNet, TaskNet
from .nn.engine import InferenceEngine, resolve_device
from .nn.generator import count_parameters
from .nn.network import TranslationNet
from .prediction import check_output_band
from .scaling import AsinhScaling
from .tiled_prediction import TILE, predict_stacks, predict_to_fits
from .uncertainty import Calibration, sample
from .units import parse_unit

__all__ = ["Translator"]

# pytest-doctestplus: run the export example only where its packages are installed.
__doctest_requires__ = {("Translator.export_onnx",): ["onnx", "onnxruntime"]}


class Translator(ModelAccess):
    """A band-translation network and its model card.

    Build one with :meth:`load` or :meth:`fit`; :meth:`predict` turns band stacks into synthetic bands.

    Parameters
    ----------
    model : `~bandsynth.nn.network.TranslationNet`
        Its input channels are ``card.inputs`` in that order.
    card : `~bandsynth.models.zoo.ModelCard`
    device : str or torch.device
        ``"auto"``: the GPU if there is one, else the CPU.

    Examples
    --------
    >>> from bandsynth import Translator
    >>> t = Translator.load("nuv_k_to_r")
    >>> t.inputs, t.output
    (('NUV', 'Ks'), 'r')
    """

    def __init__(self, model, card, *, device="auto"):
        if not isinstance(card, ModelCard):
            raise TypeError(f"card must be a ModelCard, got {type(card).__name__}")
        if not isinstance(model, (TranslationNet, TaskNet)):
            raise TypeError(f"model must be a bandsynth.nn.network.TranslationNet, got {type(model).__name__}")
        if model.in_channels != len(card.inputs):
            raise ValueError(f"model {card.name!r}: the network takes {model.in_channels} bands "
                             f"but the card lists {len(card.inputs)} inputs {card.inputs}")
        self._card = card
        self._device = resolve_device(device)
        self._model = model.to(self._device).eval()
        self._scalings = {b: AsinhScaling.from_dict(dict(p)) for b, p in card.scaling.items()}
        self._calibrations = {k: Calibration.from_dict(k, v) for k, v in card.calibration.items()}
        self._engine = InferenceEngine(self._model, device=self._device)

    @classmethod
    def load(cls, name_or_path, *, device="auto"):
        """Load a shipped model by name (``"nuv_k_to_r"`` or ``"nuv_k_to_r@5"``), or a saved one by path.

        Names without ``/`` or suffix are shipped models first (`bandsynth.models.zoo.model_paths`).  The weights'
        and the card content's SHA-256 must match the card; weights are read with safetensors (nothing unpickled).

        Parameters
        ----------
        name_or_path : str or os.PathLike
            A shipped model's name, optionally with ``@<version>``, or the path of a
            saved model: its ``.safetensors`` file, its ``.json`` card, their
            common stem, or a folder holding exactly one saved model.
        device : str or torch.device
            Where the network runs; ``"auto"``: the GPU if there is one, else the CPU.

        Returns
        -------
        Translator

        Raises
        ------
        ValueError
            Unknown model name, or a version that is not the one shipped.
        WeightsHashError, CardHashError
            The weights file does not match the card's SHA-256, or the card was edited after it was written.
        """
        from safetensors.torch import load_file

        weights, card = verified_model(name_or_path)
        model = (AnyBandNet if card.outputs else TranslationNet).from_config(dict(card.architecture))
        model.load_state_dict(load_file(str(weights)), strict=True)
        if card.outputs:  # an any-band model: its requests are translators of this class
            from .any_band_translator import AnyBandTranslator

            return AnyBandTranslator(model, card, device=device, one_mapping=cls)
        return cls(model, card, device=device)

    def save(self, path, *, overwrite=False):
        """Write ``PATH.safetensors`` and its card ``PATH.json`` (atomically).

        Parameters
        ----------
        path : str or os.PathLike
        overwrite : bool
            Replace existing files (else they are kept: `FileExistsError`).

        Returns
        -------
        Translator
            With the card as written (hashes, ``n_parameters``, architecture and receptive field recomputed).
        """
        if isinstance(self._model, TaskNet):
            raise ValueError(f"this is one request ({' + '.join(self.inputs)} -> {self.output}) of the any-band model "
                             f"{self.name!r}: save that model instead")
        state = {k: v.detach().to("cpu").contiguous() for k, v in self._model.state_dict().items()}
        card = self._card.replace(n_parameters=count_parameters(self._model), architecture=self._model.config,
                                  receptive_field=self._model.receptive_field)
        return type(self)(self._model, write_model(state, card, path, overwrite=overwrite), device=self._device)

    def export_onnx(self, path, *, height=128, width=128, opset=17):
        """Write the network to an ONNX file, for ONNX Runtime or another engine.

        The whole network in float32, colour baseline included: input ``input`` ``[batch, n_inputs, height, width]``
        (the scaled input bands, `scale_inputs`, in the card's ``inputs`` order); outputs ``mean`` and ``log_scale``
        (log of the uncalibrated Gaussian sigma), ``[batch, 1, height, width]``, in the output band's scaled space
        (the card's ``scaling``).  Calibration and exact tiling stay with :meth:`predict`.  Batch, height and width
        are dynamic (sides multiples of ``2 ** n_down``).  The file is written atomically.

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
        from .nn.export import export_onnx

        return export_onnx(self._model, path, height=height, width=width, opset=opset)

    @classmethod
    def fit(cls, data, *, inputs, output, name=None, preset="small", epochs=10, batch_size=8, lr=2e-4,
            crop_size=64, seed=0, stretch=50.0, baseline="auto", flux_weight=0.0, flux_error="total",
            ssim_weight=1.0, select_checkpoint=True, average_epochs=None, checkpoint_dir=None, checkpoint_every=None,
            max_steps=None, device="auto", progress=True, calibrate=True, init=None, recipe="", description=""):
        """Train a new translator on ``data`` (see `bandsynth.nn.recipe` for the steps).

        Parameters
        ----------
        data : data set
            With train/validation splits: `bandsynth.datasets.make_dataset`, `bandsynth.datasets.open_dataset`,
            or any object with their interface (``cube``, ``indices``, ``stack``, ``info``).
        inputs, output : list of str, str
            Input bands, in channel order; the band to predict.
        name : str, optional
            Model name (default ``"<inputs>_to_<output>"``).
        preset : str
            Generator preset (`bandsynth.nn.generator.PRESETS`).
        epochs, batch_size, lr, crop_size, seed, max_steps
            Adam, cosine schedule, random ``crop_size`` crops, 8 flips/rotations (the network is local).
        stretch, baseline, flux_weight : float, str, float
            Scaling maximum / softening per band (`bandsynth.nn.recipe.fit_physical_scalings`); the colour model's
            kind ("auto", "flux", "scaled": `bandsynth.nn.recipe.colour_model`); weight of the loss's photometric term.
        flux_error : {"total", "pixel", "squared"}
            What the photometric term compares (`bandsynth.nn.losses.BandLoss`): each crop's total flux; its pixels'
            absolute flux errors; or their root sum of squares, which aims at each pixel's mean flux rather than its
            median but is ruled by the brightest pixels (on the shipped models it left totals fainter than
            ``"total"`` did: the Training page).
        ssim_weight : float
            Weight of the loss's (1 - SSIM) term; 0 for observed (noisy) targets, whose noise SSIM rewards matching.
        select_checkpoint : bool
            Keep the weights of the epoch with the best SSIM on half the validation split (the other half
            calibrates); False keeps the last weights and calibrates on the whole split (SSIM against noisy
            targets hardly ranks checkpoints).
        average_epochs : int, optional
            Keep the mean of the weights at the ends of the last this many epochs (stochastic weight averaging)
            instead of one epoch's.  The selection half of the validation split then only reports the mean's
            SSIM (``average_validation_ssim`` in the card).
        checkpoint_dir, checkpoint_every
            Resumable safetensors checkpoints: a rerun with the same arguments continues from the newest.
        device, progress, calibrate
            ``"auto"``, ``"cpu"``, ...; progress bars; calibrate on the validation images no checkpoint was
            chosen on.
        init : str or path, optional
            Start from this saved model's weights (same inputs, output and preset).
        recipe, description : str
            The exact command that produced the model, and free text, for its card.

        Returns
        -------
        Translator
        """
        from .nn.recipe import CALIBRATION_ALL, CALIBRATION_HALF, train_translator

        start = None if init is None else Translator.load(init, device="cpu")
        net, card, calibration = train_translator(
            data, inputs=inputs, output=output, name=name, preset=preset, epochs=epochs, batch_size=batch_size, lr=lr,
            crop_size=crop_size, seed=seed, stretch=stretch, baseline=baseline, flux_weight=flux_weight,
            flux_error=flux_error, ssim_weight=ssim_weight, select_checkpoint=select_checkpoint,
            average_epochs=average_epochs, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
            max_steps=max_steps, device=device, progress=progress, calibrate=calibrate, init=init, start=start,
            recipe=recipe, description=description)
        translator = cls(net, card, device=device)
        return translator.calibrate(data, indices=calibration, fitted_on=CALIBRATION_HALF if select_checkpoint
                                    else CALIBRATION_ALL) if calibrate else translator

    def calibrate(self, data, *, indices=None, split="validation", configurations=("plain", "tta", "mc", "tta+mc"),
                  fitted_on=None, footprint="detection"):
        """Fit the uncertainty calibration for each `predict` configuration (`bandsynth.uncertainty`).

        Parameters
        ----------
        data : data set
            With ``stack(i)`` and ``indices(split)``.
        indices : sequence of int, optional
            The calibration galaxies (default: ``split``'s), used neither for training nor for the checkpoint.
        split : str
        configurations : sequence of str
            Which configurations to calibrate; "mc" and "tta+mc" only where the inputs carry an uncertainty
            (else the card keeps none of them).  The card's calibrations of the others are kept.
        fitted_on : str, optional
            Where the galaxies come from, recorded in the card (default: the split or their number).
        footprint : {"detection", "target"}
            Residuals in the galaxy detected in a coadd of its bands, as `bandsynth.metrics.compare` measures
            (default), or in the true band alone (`bandsynth.uncertainty.fitting.calibrate_translator`).

        Returns
        -------
        Translator
            A copy whose card records one calibration per configuration.
        """
        from .uncertainty.fitting import calibrate_translator

        calibrations = calibrate_translator(self, data, indices=indices, split=split, configurations=configurations,
                                            fitted_on=fitted_on, footprint=footprint)
        kept = {k: c for k, c in self._card.calibration.items() if k not in configurations}  # "tta" dropped "plain"
        card = self._card.replace(calibration={**kept, **{k: c.to_dict() for k, c in calibrations.items()}})
        return type(self)(self._model, card, device=self._device)

    def evaluate(self, data, **kwargs):
        """Held-out metrics beside both baselines.

        Parameters
        ----------
        data, **kwargs
            As for `bandsynth.evaluation.evaluate_translator`.

        Returns
        -------
        `~bandsynth.evaluation.EvaluationResult`
        """
        from .evaluation import evaluate_translator

        return evaluate_translator(self, data, **kwargs)

    @property
    def output(self) -> str:
        """Predicted band name."""
        return self._card.output

    @property
    def calibrations(self) -> dict:
        """Configuration name -> `~bandsynth.uncertainty.Calibration` of the card."""
        return dict(self._calibrations)

    @property
    def engine(self):
        """The `~bandsynth.nn.engine.InferenceEngine` running the network."""
        return self._engine

    def __repr__(self):
        return (f"<Translator {self.name!r}: {' + '.join(self.inputs)} -> {self.output} "
                f"({self._card.preset} preset, {self._card.mode} mode)>")

    def scale_inputs(self, stack, *, restoration=None):
        """Scaled input ``(n_in, ny, nx)``, bad-pixel mask, inputs' sigma in flux or None (`bandsynth.inputs`).

        Parameters
        ----------
        stack : `~bandsynth.BandStack`
        restoration : `~bandsynth.restored_noise.NoiseRestoration`, optional

        Returns
        -------
        x, mask, noise : numpy.ndarray
        """
        from .inputs import prepare_inputs

        return prepare_inputs(stack, self.inputs, self._scalings, unit=parse_unit(self._card.unit),
                              model=self.name, minimum_size=self._model.minimum_input_size, restoration=restoration)

    def predict(self, stacks, *, band=None, uncertainty=True, tta=False, n_samples=8, batch_size=8, precision="fp32",
                tile=TILE, seed=0, check_domain=True, compile="auto", progress=None, restore_noise="auto"):
        """Predict the output band for one stack or a list of stacks.

        Parameters
        ----------
        stacks : `~bandsynth.BandStack` or list of them
            Each holds (at least) the model's input bands on one pixel grid (see `BandStack.reproject`).
        band : str or list of str, optional
            The band(s) to predict: the model's output (an `~bandsynth.any_band_translator.AnyBandTranslator` has more).
        uncertainty : bool
            Compute the calibrated per-pixel sigma: the network's sigma head, plus the 8 flips/rotations' spread
            with ``tta``, plus the inputs' noise by Monte Carlo when they carry one (warns if uncalibrated).
        tta : bool
            Average over the 8 flips/rotations (8x slower).
        n_samples : int
            Monte Carlo draws of the inputs' noise (0 disables them).
        batch_size : int
            Images per network call.
        precision : {"fp32", "bf16", "auto"}
            "bf16": the trunk under bfloat16 autocast (baseline, input convolution and heads stay float32); "auto":
            bf16 where the hardware has fast bf16 kernels (``benchmarks/model_speed.py`` prints its flux change).
        tile : int
            Side of the tiles' cores: tiling is exact (as for the whole image); only memory depends on it.
        seed : int
            Seed of the Monte Carlo draws and restored noise (predictions are deterministic).
        check_domain : bool
            Warn when the stack lies outside the training data's domain (`bandsynth.models.domain`).
        compile : {"auto", True, False}
            `torch.compile` (see `bandsynth.nn.engine.InferenceEngine.run`).
        progress : bool or callable, optional
            True: a progress bar of the tiles; a callable is called as
            ``progress(done, total)`` after every tile (of every Monte Carlo pass:
            ``total`` counts them all).
        restore_noise : {"auto", True, False}
            Survey models: add back the noise that resampling an input by a sub-pixel shift of its grid smoothed away
            (`bandsynth.restored_noise`); "auto": unless the card records the model holding without.

        Returns
        -------
        `~bandsynth.SyntheticBand` (for a list of bands, a dict of band to one, as any-band models give) or list
        """
        listed = check_output_band(self._card, band)
        single = not isinstance(stacks, (list, tuple))
        results = predict_stacks(self, [stacks] if single else list(stacks), uncertainty=uncertainty, tta=tta,
                                 n_samples=n_samples, batch_size=batch_size, precision=precision, tile=tile,
                                 seed=seed, check_domain=check_domain, compile=compile, progress=progress,
                                 restore_noise=restore_noise)
        results = [{self.output: r} for r in results] if listed else results
        return results[0] if single else results

    def predict_to_fits(self, stack, path, *, overwrite=False, **options):
        """Predict the output band of one stack straight into the FITS file ``path``, in bounded memory.

        The file ``predict(stack, **options).write(path)`` writes, strip by strip (`bandsynth.tiled_prediction`).

        Parameters
        ----------
        stack : `~bandsynth.BandStack`
        path : str or os.PathLike
        overwrite : bool
            Replace an existing file (else `FileExistsError`, before any work).
        **options
            As for `predict` (``band``, ``uncertainty``, ``tta``, ``n_samples``, ``tile``, ``progress``, ...).

        Returns
        -------
        pathlib.Path
        """
        return predict_to_fits(self, stack, path, overwrite=overwrite, **options)

    def predict_scaled(self, x, noise, *, uncertainty, tta, n_samples, draws, run, origins=None):
        """Scaled mean, uncalibrated scaled variance and its components (`bandsynth.uncertainty.sample`).

        Parameters
        ----------
        x, noise, uncertainty, tta, n_samples, draws, run, origins
            As for `bandsynth.uncertainty.sample` (with this translator's engine and input scalings).

        Returns
        -------
        mean, variance, parts
            As returned by `bandsynth.uncertainty.sample`.
        """
        scalings = [self._scalings[b] for b in self.inputs]
        return sample(self._engine, scalings, x, noise, uncertainty=uncertainty, tta=tta, n_samples=n_samples,
                      draws=draws, run=run, origins=origins)
