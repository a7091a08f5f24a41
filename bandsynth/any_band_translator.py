"""AnyBandTranslator: one model that predicts any of its bands from whatever bands a galaxy has.

``Translator.load(NAME)`` returns one for an any-band model (`bandsynth.nn.any_band`: its
card lists ``outputs``).  A request -- the bands a stack holds, the band wanted --
becomes an ordinary `~bandsynth.Translator` of one mapping (:meth:`AnyBandTranslator.task`)
with its own card: those bands' scalings, the request's colour model and the wanted
band's calibration.  Prediction, exact tiling, uncertainty and provenance then run as
for a dedicated model, so the photometric contract holds for every request.
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning

from ._model_access import ModelAccess
from .bands import get_band, same_filter
from .models.domain import depth_tags, psf_tags
from .models.zoo import ModelCard, write_model
from .nn.any_band import BASELINE_METHODS, AnyBandNet
from .nn.engine import resolve_device
from .nn.generator import count_parameters
from .prediction import check_one_stack, check_output_band, is_band_list
from .scaling import AsinhScaling

__all__ = ["AnyBandTranslator", "make_request", "request_calibration"]


def request_calibration(card, inputs, output):
    """The calibrations (configuration -> dict) measured for the request ``inputs -> output``, or ``{}``.

    That of the request itself where the card has one (``output`` from every other band,
    or one of the ``requests`` calibrated on their own), else that of the requests from as
    many bands, drawn at random (``by_n_inputs``).

    Parameters
    ----------
    card : `~bandsynth.models.zoo.ModelCard`
        An any-band model's card.
    inputs : sequence of str
    output : str

    Returns
    -------
    dict

    Examples
    --------
    >>> from bandsynth import Translator
    >>> card = Translator.load("any_band_kids_viking").card
    >>> sorted(request_calibration(card, ["KiDS_g"], "KiDS_r"))
    ['mc', 'plain', 'tta', 'tta+mc']
    """
    entry = dict(card.calibration.get(output, {}))
    for request in map(dict, (entry, *entry.get("requests", ()))):
        if set(request.get("inputs", ())) == set(inputs):
            return dict(request.get("configurations", {}))
    return dict(dict(entry.get("by_n_inputs", {})).get(str(len(inputs)), {}))


def make_request(card, net, inputs, output, psf=None, depth=None):
    """The network and the `~bandsynth.models.zoo.ModelCard` of one request of an any-band model.

    Parameters
    ----------
    card : `~bandsynth.models.zoo.ModelCard`
        The any-band model's card.
    net : `~bandsynth.nn.any_band.AnyBandNet`
    inputs : tuple of str
        The bands at hand.
    output : str
        The band wanted.
    psf : sequence of float, optional
        The inputs' PSF tags, for a network that reads them (`bandsynth.models.domain.psf_tags`).
    depth : sequence of float, optional
        The inputs' depth tags, for a network that reads them (`bandsynth.models.domain.depth_tags`).

    Returns
    -------
    task : `~bandsynth.nn.any_band.TaskNet`
        The request as a network of one mapping (sharing ``net``'s weights).
    card : `~bandsynth.models.zoo.ModelCard`
        Not written anywhere: it describes the request (predictions' provenance, domain checks).

    Raises
    ------
    ValueError
        A band the model does not read or write for this request.
    """
    check_output_band(card, output)
    readable = [b for b in card.inputs if b != output]
    unknown = [b for b in inputs if b not in readable]
    if not inputs:
        raise ValueError(f"model {card.name!r} predicts {output} from any of {', '.join(readable)}; inputs=[] gives "
                         "none of them")
    if unknown:
        alike = ", ".join(repr(a) for b in unknown for a in same_filter(b, readable)[:1])
        raise ValueError(f"model {card.name!r} predicts {output} from any of {', '.join(readable)}; it cannot read "
                         f"{', '.join(unknown)}{f' (did you mean {alike}?)' if alike else ''}")
    task = net.task(inputs=inputs, output=output, psf=psf, depth=depth)
    intercept, coefficients = net.colour_model(task.present.tolist(), task.output_slot)
    calibration = request_calibration(card, inputs, output)
    return task, card.replace(
        inputs=inputs, output=output, outputs=(), architecture=task.config,
        scaling={b: card.scaling[b] for b in (*inputs, output)},
        psf_fwhm={b: v for b, v in card.psf_fwhm.items() if b in (*inputs, output)},
        calibration=calibration or dict(dict(card.calibration.get(output, {})).get("configurations", {})),
        baseline={"kind": net.baseline_kind,
                  "method": f"{BASELINE_METHODS[net.baseline_kind]}, solved for this request from the training "
                            "pixels' moments",
                  "coefficients": {b: float(coefficients[net.slot(b)]) for b in inputs}, "intercept": intercept})


class AnyBandTranslator(ModelAccess):
    """An any-band network and its model card: any of its bands from any subset of the others.

    Build one with `bandsynth.Translator.load` (it returns this class for an any-band
    model's card) or from a trained `~bandsynth.nn.any_band.AnyBandNet` and its card.

    Parameters
    ----------
    model : `~bandsynth.nn.any_band.AnyBandNet`
    card : `~bandsynth.models.zoo.ModelCard`
        With ``outputs``; the network's bands are ``inputs`` then the ``outputs`` not among them.
    one_mapping : type
        The class of the translators of single requests: `bandsynth.Translator` (or a subclass).
    device : str or torch.device
        ``"auto"``: the GPU if there is one, else the CPU.
    """

    def __init__(self, model, card, *, one_mapping, device="auto"):
        if not isinstance(card, ModelCard) or not card.outputs:
            raise TypeError("card must be the ModelCard of an any-band model (one listing outputs)")
        if not isinstance(model, AnyBandNet):
            raise TypeError(f"model must be a bandsynth.nn.any_band.AnyBandNet, got {type(model).__name__}")
        if model.bands != tuple(dict.fromkeys((*card.inputs, *card.outputs))):
            raise ValueError(f"model {card.name!r}: the network's bands {model.bands} are not the card's inputs "
                             f"{card.inputs} and outputs {card.outputs}")
        self._card, self._device = card, resolve_device(device)
        self._model = model.to(self._device).eval()
        self._scalings = {b: AsinhScaling.from_dict(dict(p)) for b, p in card.scaling.items()}
        self._one_mapping = one_mapping
        self._tasks = {}

    @property
    def outputs(self) -> tuple:
        """The bands the model can predict."""
        return self._card.outputs

    def __repr__(self):
        return (f"<AnyBandTranslator {self.name!r}: any of {', '.join(self.outputs)} from any of "
                f"{', '.join(self.inputs)} ({self._card.preset} preset, {self._card.mode} mode)>")

    def task(self, *, inputs, output, psf=None, depth=None):
        """One request as a `~bandsynth.Translator` of one mapping, ``inputs -> output``.

        It shares this model's weights; its card is the request's (those bands' scalings, the
        request's colour model, ``output``'s calibration).

        Parameters
        ----------
        inputs : str or sequence of str
            The bands at hand, in the channel order the translator takes them.
        output : str
            The band wanted.
        psf : sequence of float, optional
            For a model that reads PSF tags: per input band ``log2(FWHM / FWHM_trained)``
            (`bandsynth.models.domain.psf_tags`; default 0, the training images' PSF).
        depth : sequence of float, optional
            For a model that reads depth tags: per input band ``log2(noise / noise_trained)``
            (`bandsynth.models.domain.depth_tags`; default 0, the training images' noise).

        Returns
        -------
        `~bandsynth.Translator`

        Raises
        ------
        ValueError
            A band the model does not read or write, or the wanted band among those at hand.
        """
        inputs = tuple(get_band(b).name for b in ([inputs] if isinstance(inputs, str) else inputs))
        output = get_band(output).name
        psf, depth = (None if tags is None else tuple(float(t) for t in tags) for tags in (psf, depth))
        key = (inputs, output, psf, depth)
        if key not in self._tasks:
            task, card = make_request(self._card, self._model, inputs, output, psf=psf, depth=depth)
            self._tasks[key] = self._one_mapping(task, card, device=self._device)
        return self._tasks[key]

    def request(self, stack, band, *, inputs=None):
        """The translator that predicts ``band`` from the bands of ``stack`` the model reads.

        A model that reads PSF tags is told each input's PSF as ``stack`` records it
        (`bandsynth.models.domain.psf_tags`); one that reads depth tags, each input's noise
        as measured in ``stack`` (`bandsynth.models.domain.depth_tags`).

        Parameters
        ----------
        stack : `~bandsynth.BandStack`
        band : str
            The band wanted.
        inputs : sequence of str, optional
            The bands at hand, in the translator's channel order (default: every band of
            ``stack`` the model reads).

        Returns
        -------
        `~bandsynth.Translator`

        Raises
        ------
        ValueError
            The stack holds none of the bands the model reads for ``band``.
        """
        check_output_band(self._card, band)  # in the words it was asked in
        band = get_band(band).name
        # bands of the stack the model reads in another survey's filter ("g" is SDSS g): left out, and said
        alike = {b: a[0] for b in stack.names if b not in self.inputs and (a := same_filter(b, self.inputs))}
        hint = "; ".join(f"the stack's {b} is not {a}: if it is, name its band {a!r}" for b, a in alike.items())
        if inputs is None:
            inputs = tuple(b for b in self.inputs if b in stack and b != band)
            unread = [b for b in stack.names if b not in self.inputs and b not in alike and b != band]
            said = "; ".join(([f"it does not read {', '.join(unread)}"] if unread else []) + ([hint] if hint else []))
            if inputs and said:
                warnings.warn(f"model {self.name!r} predicts {band} from {', '.join(inputs)} alone: {said}",
                              AstropyUserWarning, stacklevel=3)
        if not inputs:
            readable = ", ".join(b for b in self.inputs if b != band)
            raise ValueError(f"model {self.name!r} predicts {band} from any of {readable}; "
                             f"the stack has {', '.join(stack.names)}{f' ({hint})' if hint else ''}")
        psf = psf_tags(self._card, stack, inputs) if self._model.psf_tags else None
        depth = depth_tags(self._card, stack, inputs) if self._model.depth_tags else None
        return self.task(inputs=inputs, output=band, psf=psf, depth=depth)

    def _wanted(self, band):
        if band is None:
            raise ValueError(f"model {self.name!r} predicts any of {', '.join(self.outputs)}: say which with band= "
                             "(a band name or a list of them)")
        asked = list(band) if is_band_list(band) else [band]
        if not asked:
            raise ValueError(f"band=[] asks for no band; model {self.name!r} predicts any of {', '.join(self.outputs)}")
        for b in asked:
            check_output_band(self._card, b)
        return list(dict.fromkeys(get_band(b).name for b in asked))  # a band asked twice is predicted once

    def _warn_if_calibrated_otherwise(self, task):
        calibrated = tuple((self._card.calibration.get(task.output) or {}).get("inputs", ()))
        if calibrated and not request_calibration(self._card, task.inputs, task.output):
            warnings.warn(f"model {self.name!r}: the uncertainty of {task.output} is calibrated for predictions from "
                          f"{' + '.join(calibrated)}; from {' + '.join(task.inputs)} its coverage is not measured",
                          AstropyUserWarning, stacklevel=3)

    def predict(self, stacks, *, band=None, **options):
        """Predict ``band`` (or several) for one stack or a list of stacks, each from the bands it holds.

        Stacks making the same request (same bands at hand) are predicted together.

        Parameters
        ----------
        stacks : `~bandsynth.BandStack` or list of them
            Each holds any of the bands the model reads, on one pixel grid.
        band : str or list of str
            The band(s) to predict; a band asked twice (or under two of its names) is
            predicted once.  A stack that holds a wanted band is predicted from its other
            bands (its own is left for a comparison).
        **options
            As for `bandsynth.Translator.predict` (``uncertainty``, ``tta``, ``n_samples``, ``tile``, ...).

        Returns
        -------
        `~bandsynth.SyntheticBand`, or a dict of band to one for a list of bands; a list of those for a list of stacks

        Warns
        -----
        AstropyUserWarning
            When a band's uncertainty was calibrated on another request (another set of bands at hand).
        """
        from .stack import BandStack

        wanted = self._wanted(band)
        single = not isinstance(stacks, (list, tuple))
        stacks = [stacks] if single else list(stacks)
        for s in (s for s in stacks if not isinstance(s, BandStack)):  # a file name said "'str' has no 'names'"
            raise TypeError(f"predict expects a BandStack or a list of them, got {type(s).__name__} (read files "
                            "with BandStack.from_fits)")
        groups = {}
        for i, stack in enumerate(stacks):
            for b in wanted:
                groups.setdefault(self.request(stack, b), []).append(i)
        results = [{} for _ in stacks]
        for task, members in groups.items():
            if options.get("uncertainty", True):
                self._warn_if_calibrated_otherwise(task)
            for i, result in zip(members, task.predict([stacks[i] for i in members], **options)):
                results[i][task.output] = result
        results = [r if is_band_list(band) else r[wanted[0]] for r in results]
        return results[0] if single else results

    def predict_to_fits(self, stack, path, *, band=None, overwrite=False, **options):
        """Predict one band of one stack straight into the FITS file ``path`` (`bandsynth.Translator.predict_to_fits`).

        Parameters
        ----------
        stack : `~bandsynth.BandStack`
        path : str or os.PathLike
        band : str
            The band to predict.
        overwrite : bool
            Replace an existing file.
        **options
            As for `bandsynth.Translator.predict`.

        Returns
        -------
        pathlib.Path
        """
        check_one_stack(stack)
        if is_band_list(band):
            raise ValueError(f"model {self.name!r} writes one band per FITS file: give band= as one band name")
        task = self.request(stack, band)
        if options.get("uncertainty", True):
            self._warn_if_calibrated_otherwise(task)
        return task.predict_to_fits(stack, path, overwrite=overwrite, **options)

    def calibrate(self, data, *, n_inputs="all", requests=(), seed=0, **options):
        """Fit each band's uncertainty calibration: on the request with every other band at hand, on
        requests from fewer bands, and on chosen requests of their own.

        A request from ``n`` bands is calibrated on the residuals of requests drawn at random,
        a different set of ``n`` of the other bands for each calibration galaxy: its coverage
        is measured over the requests of that size, not for each set of bands.

        Parameters
        ----------
        data : data set
            Holds every band of the model (``stack(i)``, ``indices(split)``).
        n_inputs : "all" or sequence of int
            The numbers of bands at hand calibrated besides every other band: ``"all"`` (each from
            one to one fewer than the band's others) or a sequence (empty: that request alone).
        requests : sequence of (sequence of str, str)
            Requests ``(bands at hand, band wanted)`` calibrated each on its own residuals, e.g.
            those favoured in training (`~bandsynth.nn.any_band_recipe.train_any_band`), which
            fit better than the average request of their size.
        seed : int
            Seed of the random requests.
        **options
            As for `bandsynth.Translator.calibrate` (``indices``, ``split``, ``configurations``, ``fitted_on``,
            ``footprint``).

        Returns
        -------
        AnyBandTranslator
            A copy whose card records, per band, the request (``inputs``) and its calibrations
            (``configurations``), per number of bands at hand those of the random requests
            (``by_n_inputs``), and those of ``requests`` (``requests``: ``inputs`` and
            ``configurations`` each).

        Raises
        ------
        ValueError
            A number of bands at hand outside one to one fewer than a band's others.
        """
        every_size = isinstance(n_inputs, str) and n_inputs == "all"
        largest = min(len([b for b in self.inputs if b != band]) for band in self.outputs) - 1
        bad = [] if every_size else [n for n in n_inputs if not 1 <= n <= largest]
        if bad:
            raise ValueError(f"n_inputs must be 'all' or numbers of bands at hand from 1 to {largest}, got {bad}")
        requests = [(tuple(inputs), output) for inputs, output in requests]
        for inputs, output in requests:
            make_request(self._card, self._model, inputs, output)  # refuses bands the model cannot read or write
        from .uncertainty.fitting import calibrate_translator, calibration_galaxies

        indices, fitted_on = calibration_galaxies(data, indices=options.pop("indices", None),
                                                  split=options.pop("split", "validation"),
                                                  fitted_on=options.pop("fitted_on", None))
        rng = np.random.default_rng(seed)
        calibration = {}
        for band in self.outputs:
            inputs = [b for b in self.inputs if b != band]
            task = self.task(inputs=inputs, output=band)
            entry = {"inputs": inputs, "configurations": {
                k: c.to_dict() for k, c in calibrate_translator(task, data, indices=indices, fitted_on=fitted_on,
                                                                **options).items()}}
            for n in range(1, len(inputs)) if every_size else n_inputs:
                drawn = [self.task(inputs=[inputs[k] for k in sorted(rng.choice(len(inputs), n, replace=False))],
                                   output=band) for _ in indices]
                calibrations = calibrate_translator(
                    task, data, indices=indices, per_galaxy=drawn, **options,
                    fitted_on=f"{fitted_on}; each galaxy predicted from {n} of the other bands drawn at random")
                entry.setdefault("by_n_inputs", {})[str(n)] = {k: c.to_dict() for k, c in calibrations.items()}
            for present in (present for present, wanted in requests if wanted == band):
                calibrations = calibrate_translator(self.task(inputs=present, output=band), data, indices=indices,
                                                    fitted_on=fitted_on, **options)
                entry.setdefault("requests", []).append(
                    {"inputs": list(present), "configurations": {k: c.to_dict() for k, c in calibrations.items()}})
            calibration[band] = entry
        return self.replace(card=self._card.replace(calibration=calibration))

    def replace(self, *, model=None, card=None):
        """A copy with another network or card (each kept when not given).

        Parameters
        ----------
        model : `~bandsynth.nn.any_band.AnyBandNet`, optional
        card : `~bandsynth.models.zoo.ModelCard`, optional

        Returns
        -------
        AnyBandTranslator
            On the same device.

        Examples
        --------
        >>> from bandsynth import Translator
        >>> model = Translator.load("any_band_kids_viking")
        >>> uncalibrated = model.replace(card=model.card.replace(calibration={}))
        >>> dict(uncalibrated.card.calibration), uncalibrated.outputs == model.outputs
        ({}, True)
        """
        return type(self)(self._model if model is None else model, self._card if card is None else card,
                          device=self._device, one_mapping=self._one_mapping)

    def save(self, path, *, overwrite=False):
        """Write ``PATH.safetensors`` and its card ``PATH.json`` (atomically; `bandsynth.Translator.save`).

        Parameters
        ----------
        path : str or os.PathLike
        overwrite : bool
            Replace existing files.

        Returns
        -------
        AnyBandTranslator
            With the card as written.
        """
        state = {k: v.detach().to("cpu").contiguous() for k, v in self._model.state_dict().items()}
        card = self._card.replace(n_parameters=count_parameters(self._model), architecture=self._model.config,
                                  receptive_field=self._model.receptive_field)
        return self.replace(card=write_model(state, card, path, overwrite=overwrite))
