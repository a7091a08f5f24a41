"""How an `~bandsynth.nn.any_band.AnyBandNet` is built and trained from a data set.

The steps, as `bandsynth.nn.recipe` has them for a dedicated model:

1. `~bandsynth.datasets.band_subsets.fit_band_scalings`: one fixed asinh scaling per band;
2. `band_moments`: the pixel moments every request's colour model is solved from;
3. `train_any_band`: the training loop on random crops, each with a random request
   (`~bandsynth.datasets.band_subsets.BandSubsetDataset`); the checkpoint is chosen on
   one half of the validation split, with one fixed request per galaxy.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..datasets.band_subsets import BandSubsetDataset, fit_band_scalings
from ..datasets.base import model_input_cube, model_target_cube, unusable_pixels
from ..models.domain import tolerated_noise
from ..scaling import AsinhScaling
from .any_band import BASELINE_METHODS, BASELINES, AnyBandNet
from .losses import BandLoss
from .recipe import chosen_weights, data_identity, data_info, data_unit, loss_text, split_validation, training_noise
from .training import fit as _train_loop

__all__ = ["band_moments", "pixel_moments", "build_any_band", "train_any_band", "any_band_card"]


def _source_pixels(data, bands, scalings, indices):
    """``(n, ny, nx)`` bool: pixels of the sources detected in each image's bands (scaled and summed)."""
    from ..morphology import segment

    masks = []
    for i in indices:
        detection = sum(scalings[b].forward(np.asarray(model_input_cube(data, b)[i], dtype=np.float64))
                        for b in bands)
        seg = segment(detection)
        masks.append(np.zeros(detection.shape, bool) if seg.segmap is None else seg.segmap.data > 0)
    return np.stack(masks)


def band_moments(data, bands, scalings, *, max_pixels=1_000_000, seed=0, pixels="all", kind="scaled"):
    """Second moments of the scaled bands over the training pixels (`AnyBandNet`'s ``moments``, ``cross``).

    Parameters
    ----------
    data : data set
        With ``cube(band)`` and ``indices("train")``.
    bands : sequence of str
        The slots, in order.
    scalings : mapping of str to `~bandsynth.scaling.AsinhScaling`
    max_pixels : int
        Training pixels sampled.
    seed : int
        Seed of the sample.
    pixels : {"all", "sources"}
        The pixels sampled: all, or only those of the sources detected in the images (photutils
        segmentation of the scaled bands' sum, `bandsynth.morphology.segment`).  On survey-like or
        observed images most pixels are sky, and a fit dominated by their noise flattens every
        colour model: on the KiDS/VIKING galaxies, r from the other eight bands came out 2 mag too faint.
    kind : {"scaled", "flux"}
        Moments of the scaled bands, or of the fluxes (`AnyBandNet`'s ``baseline``).

    Returns
    -------
    moments : numpy.ndarray
        ``(K + 1, K + 1)``: mean of ``z z^T``, ``z = [1, x_1, ..., x_K]`` the inputs as a model reads them.
    cross : numpy.ndarray
        ``(K + 1, K)``: mean of ``z y^T``, ``y`` each band's target image (the truth where the data has one).
    """
    if pixels not in ("all", "sources"):
        raise ValueError(f"pixels must be 'all' or 'sources', got {pixels!r}")
    if kind not in BASELINES:
        raise ValueError(f"kind must be one of {BASELINES}, got {kind!r}")
    indices = np.asarray(data.indices("train"))
    first = np.asarray(model_input_cube(data, bands[0])[indices[:1]])
    candidates = (np.arange(indices.size * first[0].size) if pixels == "all"
                  else np.flatnonzero(_source_pixels(data, bands, scalings, indices)))
    if candidates.size == 0:
        raise ValueError("no source detected in the training images: cannot fit the colour models on sources")
    take = np.sort(np.random.default_rng(seed).choice(candidates, size=min(max_pixels, candidates.size),
                                                      replace=False))

    def sample(cube, band):
        flat = np.asarray(cube[indices], dtype=np.float64).reshape(-1)[take]
        return scalings[band].forward(flat) if kind == "scaled" else flat

    x = np.stack([sample(model_input_cube(data, b), b) for b in bands], 1)
    y = np.stack([sample(model_target_cube(data, b), b) for b in bands], 1)
    good = np.all(np.isfinite(x), axis=1) & np.all(np.isfinite(y), axis=1)
    bad = unusable_pixels(data, bands, bands[-1])
    if bad is not None:
        good &= ~bad[indices].reshape(-1)[take]
    return pixel_moments(x[good], y[good])


def pixel_moments(x, y):
    """The colour models' moments of pixel samples: the means of ``z z^T`` and ``z y^T``, ``z = [1, x_1, ..., x_K]``.

    Parameters
    ----------
    x : numpy.ndarray
        ``(N, K)``: the bands as a model reads them (scaled, or fluxes for a ``"flux"`` colour model), per pixel.
    y : numpy.ndarray
        ``(N, K)``: each band's target at those pixels.

    Returns
    -------
    moments, cross : numpy.ndarray
        ``(K + 1, K + 1)`` and ``(K + 1, K)`` (`band_moments`'s form).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> moments, cross = pixel_moments(x, x)
    >>> moments[0].tolist(), cross.shape
    ([1.0, 2.0, 3.0], (3, 2))
    """
    z = np.column_stack([np.ones(len(x)), x])
    return z.T @ z / len(z), z.T @ y / len(z)


def build_any_band(preset, bands, scalings, moments, cross, *, seed=0, baseline="scaled", film=False,
                   psf_tags=False, depth_tags=False):
    """A fresh `AnyBandNet` (it predicts every request's colour model exactly).

    Parameters
    ----------
    preset : str
        Generator preset.
    bands : sequence of str
    scalings : mapping of str to `~bandsynth.scaling.AsinhScaling`
    moments, cross : array-like
        As `band_moments` returns.
    seed : int
        Torch seed of the weights' initialisation.
    baseline : {"scaled", "flux"}
        The kind of colour model (``moments`` and ``cross`` must be of that kind).
    film : bool
        Modulate the trunk's features by the request (`AnyBandNet`'s ``film``).
    psf_tags, depth_tags : bool
        Read a PSF tag, a depth tag per input band (`AnyBandNet`'s ``psf_tags``, ``depth_tags``).

    Returns
    -------
    AnyBandNet
    """
    torch.manual_seed(seed)
    return AnyBandNet.build(preset, bands=bands, softening=[scalings[b].softening for b in bands],
                            maximum=[scalings[b].maximum for b in bands], moments=moments, cross=cross,
                            baseline=baseline, film=film, psf_tags=psf_tags, depth_tags=depth_tags)


def _start_network(data, bands, *, preset, seed, stretch, init, refit_moments, moment_pixels, baseline, film,
                   psf_tags=False, depth_tags=False, moments=None):
    """``(net, scalings)`` training starts from (`train_any_band`): a fresh network, or ``init`` (its colour
    models solved afresh from ``data`` with ``refit_moments``, or from ``moments`` given; a copy with a zero
    correction for another kind; a copy with request modulation for ``film``, with PSF or depth tags for
    ``psf_tags``, ``depth_tags``)."""
    def colour_moments(scalings, kind):  # the moments given, else fitted on the training crops
        if moments is not None:
            return moments
        return band_moments(data, bands, scalings, seed=seed, pixels=moment_pixels, kind=kind)

    if init is None:
        kind = baseline or "scaled"
        scalings = fit_band_scalings(data, bands, stretch=stretch)
        net = build_any_band(preset, bands, scalings, *colour_moments(scalings, kind), seed=seed, baseline=kind,
                             film=film, psf_tags=psf_tags, depth_tags=depth_tags)
    elif tuple(init.bands) != tuple(bands):
        raise ValueError(f"init network reads and writes {', '.join(init.bands)}; expected {', '.join(bands)}")
    else:
        net = init
        maximum = init.softening * torch.sinh(init.norm)
        scalings = {b: AsinhScaling(softening=float(s), maximum=float(m))
                    for b, s, m in zip(bands, init.softening, maximum)}
        kind = baseline or init.baseline_kind
        refit_moments = refit_moments or moments is not None
        if kind != init.baseline_kind and not refit_moments:
            raise ValueError(f"a {kind!r} colour model needs its own moments: pass refit_moments=True")
        if refit_moments:
            moments, cross = colour_moments(scalings, kind)
            if kind != init.baseline_kind:  # the generator's features carry over; the correction starts at zero
                net = AnyBandNet(copy.deepcopy(init.generator), bands=bands, softening=init.softening,
                                 maximum=maximum, moments=moments, cross=cross, baseline=kind,
                                 film=init.film is not None, psf_tags=init.psf_tags,
                                 depth_tags=init.depth_tags)
                if init.film is not None:  # and so does the request modulation
                    net.film.load_state_dict(init.film.state_dict())
            else:
                with torch.no_grad():  # in place: the buffers' versions move, so cached colour models are solved again
                    net.moments.copy_(torch.as_tensor(0.5 * (moments + moments.T)))
                    net.cross.copy_(torch.as_tensor(cross))
        if film and net.film is None:
            net = net.with_film()
        if psf_tags and not net.psf_tags:
            net = net.with_psf_tags()
        if depth_tags and not net.depth_tags:
            net = net.with_depth_tags()
    return net, scalings


def _training_psf_pixels(data, bands):
    """Per band, the PSF FWHM of ``data``'s images in pixels (from its ``info``), for PSF augmentation."""
    info = dict(getattr(data, "info", {}) or {})
    fwhm, scale = dict(info.get("psf_fwhm", {}) or {}), info.get("pixel_scale")
    missing = [b for b in bands if not fwhm.get(b)]
    if missing or not scale:
        raise ValueError(f"psf_max_ratio needs the data's PSF FWHM of every band and its pixel scale "
                         f"(data.info['psf_fwhm'], ['pixel_scale']); missing for {missing or 'the pixel scale'}")
    return {b: float(fwhm[b]) / float(scale) for b in bands}


def _training_noise_sigma(data, net):
    """Per band, the noise per pixel the network is taken to be trained on (`tolerated_noise` of the training
    inputs' noise, as the card will record it), for noise augmentation."""
    noise = training_noise(data, net.bands)
    return {b: tolerated_noise(noise[b], float(s)) for b, s in zip(net.bands, net.softening)}


def train_any_band(data, bands, *, preset="small", epochs=10, batch_size=8, lr=2e-4, crop_size=64, seed=0,
                   stretch=50.0, max_inputs=None, checkpoint_dir=None, checkpoint_every=None, max_steps=None,
                   device="auto", progress=True, init=None, refit_moments=False, crops_per_image=1, ssim_weight=1.0,
                   moment_pixels="all", baseline=None, flux_weight=0.0, flux_error="total", select_checkpoint=True,
                   average_epochs=None, favoured=None, favoured_share=0.0, film=False, psf_max_ratio=None,
                   psf_share=0.5, psf_joint=False, noise_max_ratio=None, noise_share=0.5, moments=None):
    """Build and train an `AnyBandNet` on ``data``; returns it with its scalings, the result and set sizes.

    Parameters
    ----------
    data : data set
        With train/validation splits holding every band of ``bands``.
    bands : sequence of str
        The slots (registry names), in order.
    preset, epochs, batch_size, lr, crop_size, seed, max_steps, checkpoint_dir, checkpoint_every
        As for `bandsynth.Translator.fit`.
    stretch, max_inputs : float, int
        Scaling maximum / softening of every band; at most this many bands at hand per request.
    device, progress : str, bool
        Where to train; progress bars.
    init : AnyBandNet, optional
        Continue from this network (its bands, scalings and moments are kept; ``preset`` and
        ``stretch`` are then unused).
    refit_moments : bool
        With ``init``: solve every request's colour model afresh from ``data``'s training pixels
        (fine-tuning on another universe, e.g. observed galaxies) instead of keeping ``init``'s.
    crops_per_image : int
        Random crops (each with its own request) of every training image per epoch (a small set).
    ssim_weight : float
        Weight of the (1 - SSIM) term of the loss.  Against noisy targets (observed galaxies, no
        noise-free truth) 0: SSIM rewards a prediction whose local contrast matches the target's,
        noise included, which no input can predict.
    moment_pixels, moments : {"all", "sources"}, (numpy.ndarray, numpy.ndarray), optional
        The training pixels the colour models are fitted on (`band_moments`'s ``pixels``), or their ``(moments,
        cross)`` given instead (`band_moments`'s form; e.g. over whole images cut into the crops; replace init's).
    baseline : {"scaled", "flux"}, optional
        The kind of colour model (default: ``init``'s, else ``"scaled"``).  With ``init`` of
        another kind (and ``refit_moments``), the network keeps ``init``'s generator but starts
        from the new colour model: its correction is reset to zero.
    flux_weight : float
        Weight of the loss's photometric term (`~bandsynth.nn.losses.BandLoss`'s ``flux``): the
        relative error of each crop's total flux in its wanted band.  L1 in the asinh scaling
        aims at the median of the log flux, which need not sum to the right total.
    flux_error : {"total", "pixel", "squared"}
        What that term compares: each crop's total flux, its pixels' fluxes or their squares
        (`~bandsynth.nn.losses.BandLoss`'s ``flux_error``; against noisy targets a crop's total is mostly sky noise).
    select_checkpoint : bool
        Keep the checkpoint of best validation SSIM (on one half of the validation split; the
        other half is left for calibration), or the last weights, leaving every validation image
        for calibration: against noisy targets SSIM hardly ranks checkpoints.
    average_epochs : int, optional
        Keep the mean of the weights at the ends of the last this many epochs instead
        (`bandsynth.nn.training.fit`).
    favoured, favoured_share : sequence of (sequence of str, str), float
        Training requests ``(bands at hand, band wanted)`` drawn more often than the uniform draw
        gives them (`~bandsynth.datasets.band_subsets.BandSubsetDataset`'s ``favoured``), in this
        share of the training crops; the checkpoint is still chosen on uniform requests.
    film : bool
        Modulate the trunk's features by the request (`AnyBandNet`'s ``film``); with ``init``
        without it, training starts from a copy of ``init`` given it (`AnyBandNet.with_film`),
        which predicts what ``init`` does.
    psf_max_ratio, psf_share, psf_joint, noise_max_ratio, noise_share
        Teach the network to read inputs whose PSF is up to ``psf_max_ratio`` times broader than the data's
        (its ``info``), or noise up to ``noise_max_ratio`` times (`bandsynth.models.domain.tolerated_noise`):
        PSF or depth tags (added to an ``init`` without them), and a share ``psf_share``, ``noise_share`` of
        the crops' bands at hand blurred (with ``psf_joint``, all to one ratio), made noisier at random
        (`~bandsynth.datasets.band_subsets.BandSubsetDataset`).

    Returns
    -------
    net : AnyBandNet
        With the mean of the last epochs' weights, the best checkpoint's or the last.
    scalings : dict of str to `~bandsynth.scaling.AsinhScaling`
    result : `~bandsynth.nn.training.TrainingResult`
    sizes : dict
        ``n_train``, ``n_selection`` and ``n_calibration`` (the validation images left for calibration).
    """
    worse = dict(psf_max_ratio=psf_max_ratio, psf_share=psf_share, psf_joint=psf_joint, noise_max_ratio=noise_max_ratio,
                 noise_share=noise_share)
    net, scalings = _start_network(data, bands, preset=preset, seed=seed, stretch=stretch, init=init, film=film,
                                   refit_moments=refit_moments, moment_pixels=moment_pixels, baseline=baseline,
                                   psf_tags=psf_max_ratio is not None, depth_tags=noise_max_ratio is not None,
                                   moments=moments)
    loss = _loss(net, ssim_weight=ssim_weight, flux_weight=flux_weight, flux_error=flux_error)
    selection, calibration = split_validation(data, calibrate=True, select_checkpoint=select_checkpoint)
    train_set, val_set = _request_sets(
        data, net, scalings, selection, select_checkpoint=select_checkpoint, max_inputs=max_inputs, seed=seed,
        crop_size=crop_size, crops_per_image=crops_per_image, favoured=favoured, favoured_share=favoured_share,
        worse=worse)
    result = _train_loop(
        net, train_set, val_data=val_set, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, loss=loss,
        checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume="auto" if checkpoint_dir else None,
        device=device, progress=progress, max_steps=max_steps, average_epochs=average_epochs,
        data_identity=data_identity(data, scalings))
    state, _ = chosen_weights(result, select_checkpoint=select_checkpoint)
    if state is not None:
        net.load_state_dict(state)
    sizes = {"n_train": len(data.indices("train")), "n_selection": len(selection), "n_calibration": len(calibration)}
    return net, scalings, result, sizes


def _request_sets(data, net, scalings, selection, *, select_checkpoint, max_inputs, seed, crop_size, crops_per_image,
                  favoured, favoured_share, worse):
    """The training requests (random crops, requests, blurs and noise) and those choosing the checkpoint (or None)."""
    if int(crops_per_image) < 1:
        raise ValueError(f"crops_per_image must be at least 1, got {crops_per_image}")
    common = dict(bands=net.bands, scalings=scalings, max_inputs=max_inputs, seed=seed,  # validation: tagged 0
                  psf_fwhm=_training_psf_pixels(data, net.bands) if net.psf_tags else None,
                  noise_sigma=_training_noise_sigma(data, net) if net.depth_tags else None)
    if worse["psf_joint"] and worse["psf_max_ratio"] is None:
        raise ValueError("psf_joint blurs the bands at hand together: it needs psf_max_ratio")
    blur = {} if worse["psf_max_ratio"] is None else {
        "psf_max_ratio": float(worse["psf_max_ratio"]), "psf_share": float(worse["psf_share"]),
        "psf_joint": bool(worse["psf_joint"])}
    if worse["noise_max_ratio"] is not None:
        blur.update(noise_max_ratio=float(worse["noise_max_ratio"]), noise_share=float(worse["noise_share"]))
    train_set = BandSubsetDataset(data, indices=np.repeat(data.indices("train"), int(crops_per_image)),
                                  crop_size=crop_size, augment=True, favoured=favoured,
                                  favoured_share=favoured_share, **common, **blur)
    val_set = BandSubsetDataset(data, indices=selection, augment=False, **common) if select_checkpoint else None
    return train_set, val_set


def _loss(net, *, ssim_weight, flux_weight, flux_error):
    """The training loss; its photometric term in units of each band's softening (``sinh(y * norm)``):
    relative errors of totals do not depend on the unit, so one inverse scaling serves every wanted band
    when all bands share one stretch (``norm``), as `fit_band_scalings` gives them."""
    if not flux_weight:
        return BandLoss(ssim_weight=ssim_weight, distribution="gaussian")
    norm = net.norm.detach()
    if not torch.allclose(norm, norm[0]):
        raise ValueError("flux_weight needs one stretch (maximum / softening) for every band; the network's "
                         f"differ: {', '.join(f'{b} {float(n):.3g}' for b, n in zip(net.bands, norm))}")
    norm = float(norm[0])
    return BandLoss(ssim_weight=ssim_weight, distribution="gaussian", flux=lambda y: torch.sinh(y * norm),
                    flux_weight=flux_weight, flux_floor=1.0, flux_error=flux_error)


def any_band_card(data, net, *, name, preset, scalings, result, sizes, options, description=""):
    """The `~bandsynth.models.zoo.ModelCard` of a freshly trained any-band network (calibration comes later).

    Parameters
    ----------
    data : data set
        Its ``info`` (mode, pixel scale, PSF FWHM, description) goes into the card.
    net : AnyBandNet
    name, preset : str
    scalings : mapping of str to `~bandsynth.scaling.AsinhScaling`
    result : `~bandsynth.nn.training.TrainingResult`
    sizes : dict
        ``n_train``, ``n_selection``, ``n_calibration``.
    options : mapping
        ``seed``, ``epochs``, ``batch_size``, ``crop_size``, ``lr``, ``stretch``, ``max_inputs``, ``recipe``,
        ``duration_s`` (and any other training option to record, e.g. ``ssim_weight``, or ``favoured`` with
        ``favoured_share``).
    description : str

    Returns
    -------
    `~bandsynth.models.zoo.ModelCard`
        Reading and writing every band of the network.
    """
    from .. import __version__
    from ..models.zoo import ModelCard

    info = dict(getattr(data, "info", {}) or {})
    bands = net.bands
    return ModelCard(
        name=name, inputs=bands, output=None, outputs=bands, preset=preset, architecture=net.config,
        scaling={b: scalings[b].to_dict() for b in bands}, unit=data_unit(info), mode=info.get("mode", "ideal"),
        pixel_scale=float(info.get("pixel_scale", 0.396)),
        psf_fwhm={b: v for b, v in dict(info.get("psf_fwhm", {}) or {}).items() if b in bands},
        receptive_field=net.receptive_field,
        baseline={"kind": net.baseline_kind, "method": f"per request, {BASELINE_METHODS[net.baseline_kind]}; least "
                                                       "squares on the training pixels, solved from their moments"},
        uncertainty={"head": "Gaussian sigma (trained with a Gaussian NLL, mean detached)",
                     "meaning": "per band, as for a model of one mapping (calibrated on the request with every "
                                "other band at hand)"},
        training={
            "data": info.get("description", type(data).__name__), "data_info": data_info(info),
            "target": "noise-free truth (survey layer)" if getattr(data, "has_truth", False) else "observed images",
            "requests": "per crop a wanted band (uniform) and 1 to max_inputs of the others at hand (uniform "
                        "number, then uniform choice)" + (f"; {options['favoured_share']:g} of the crops one of the "
                                                          "favoured requests instead" if options.get("favoured")
                                                          else ""),
            **sizes, **dict(options), "noise": training_noise(data, bands),
            "steps": int(getattr(result, "steps", 0) or 0),
            "loss": loss_text(options.get("ssim_weight", 1.0), options.get("flux_weight", 0.0),
                              options.get("flux_error", "total")),
            "best_validation_ssim": (float(result.best_metric) if result.best_metric_name == "val_ssim"
                                     and result.best_metric is not None else None),
        },
        description=description, bandsynth_version=__version__,
    )
