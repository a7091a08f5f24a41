"""Random (bands at hand, band wanted) requests over a data set, for training an any-band network.

Every item is one galaxy with one request drawn for it: a wanted band, and a random
subset of the other bands as the bands at hand.  It comes as the request planes of
`bandsynth.nn.any_band` (scaled images in their slots, presence and target planes),
so the training loop and its crops and flips treat it as any image pair.

Examples
--------
>>> from bandsynth.datasets import make_dataset
>>> from bandsynth.datasets.band_subsets import BandSubsetDataset
>>> ds = make_dataset(6, seed=0, bands=["NUV", "g", "r", "Ks"], size=32)
>>> items = BandSubsetDataset(ds, bands=["NUV", "g", "r", "Ks"], split="train", crop_size=16, augment=True)
>>> x, y = items[0]
>>> tuple(x.shape), tuple(y.shape)
((12, 16, 16), (1, 16, 16))
>>> present, wanted = items.request(0)
>>> len(present) >= 1 and wanted not in present
True
"""

from __future__ import annotations

import numpy as np
import torch
from astropy.stats import gaussian_fwhm_to_sigma
from scipy.ndimage import gaussian_filter

from ..bands import get_band
from .base import unusable_pixels
from .torch_data import crop_and_turn, fit_scalings_for, gather_cubes, scale_images

__all__ = ["BandSubsetDataset", "fit_band_scalings", "broadening_sigma"]


def _band_names(bands, what):
    names = tuple(get_band(b).name for b in ([bands] if isinstance(bands, str) else bands))
    if len(set(names)) != len(names):
        raise ValueError(f"{what} names a band twice: {list(names)}")
    return names


def broadening_sigma(fwhm, ratio):
    """Sigma of the Gaussian that takes a Gaussian PSF of ``fwhm`` to ``ratio`` times that FWHM.

    Gaussians add in quadrature: ``sigma = fwhm * sqrt(ratio^2 - 1) / 2.3548``.

    Parameters
    ----------
    fwhm : float
        The PSF's FWHM (pixels, or any unit).
    ratio : float
        The broader PSF's FWHM over ``fwhm`` (>= 1).

    Returns
    -------
    float
        In the unit of ``fwhm``.

    Examples
    --------
    >>> round(float(broadening_sigma(1.5, 2.0)), 3)
    1.103
    """
    return fwhm * np.sqrt(ratio ** 2 - 1.0) * gaussian_fwhm_to_sigma


def fit_band_scalings(source, bands, *, split="train", stretch=50.0):
    """One fixed asinh scaling per band, fitted on the images as a model reads them.

    An any-band network reads and writes each band through one scaling, so each is
    fitted once, on the inputs (`~bandsynth.datasets.torch_data.fit_scalings_for` with
    every band both read and written).

    Parameters
    ----------
    source : data set
    bands : sequence of str
    split : str or None
        The images to fit on (None: all).
    stretch : float
        Ratio of each scaling's maximum to its softening.

    Returns
    -------
    dict of str to `~bandsynth.scaling.AsinhScaling`
    """
    bands = _band_names(bands, "bands")
    return fit_scalings_for(source, bands, bands, split=split, stretch=stretch)


class BandSubsetDataset(torch.utils.data.Dataset):
    """A torch Dataset of ``(planes [3K, H, W], y [1, H, W])``: one random request per galaxy.

    Parameters
    ----------
    source : data set
        Holds every band of ``bands`` (``cube(band)``, ``indices(split)``).
    bands : sequence of str
        The slots, in order (as the `~bandsynth.nn.any_band.AnyBandNet` has them).
    scalings : dict of str to AsinhScaling, optional
        Per band; default fitted on the training split (`fit_scalings_for`).
    split, indices : optional
        The images (a split name, or explicit indices).
    crop_size : int, optional
        Side of the square crops (None: whole images).
    augment : bool
        Random crops, flips and a new request per epoch; without it, central crops and
        one fixed request per galaxy (for choosing checkpoints reproducibly).
    targets : sequence of str, optional
        The bands that may be wanted (default: all).
    max_inputs : int, optional
        At most this many bands at hand (default: all the others).
    favoured : sequence of (sequence of str, str), optional
        Requests ``(bands at hand, band wanted)`` drawn more often: the ones users make most
        (e.g. a survey's usual pair of bands for one missing band), which the uniform draw
        reaches rarely (one request in thousands among ten bands).
    favoured_share : float
        The share of items (with ``augment``) whose request is one of ``favoured`` (uniform
        among them) instead of a uniform draw.
    psf_fwhm : mapping of str to float, optional
        Per band, the PSF FWHM of the images in pixels.  Given, every item carries PSF tag
        planes (``[4K, H, W]``, for an `~bandsynth.nn.any_band.AnyBandNet` with ``psf_tags``):
        ``log2(FWHM / psf_fwhm[band])`` of each band at hand, 0 unless blurred.
    psf_max_ratio : float
        With ``psf_fwhm`` and ``augment``: a share ``psf_share`` of the bands at hand are blurred
        (in flux, by a Gaussian) to a FWHM larger by a ratio drawn log-uniformly in
        ``[1, psf_max_ratio]``, and tagged so; the target is left sharp.
    psf_share : float
        The share of the bands at hand so blurred.
    psf_joint : bool
        Blur all the bands at hand of an item together, to one ratio (an item is blurred with
        probability ``psf_share``): where the training images share one PSF, as the ideal mock
        universe's do, the bands stay matched to one PSF.  Each band's own ratio changes the
        colours the colour model reads, which an extrapolating request (u, NUV, FUV from g + r,
        whose colour model weighs g and r by about +4 and -3) amplifies.
    noise_sigma : mapping of str to float, optional
        Per band, the noise per pixel (flux) a model is taken to have been trained on
        (`bandsynth.models.domain.tolerated_noise`).  Given, every item carries depth tag planes
        after the PSF tag planes: ``log2(noise / noise_sigma[band])`` of each band at hand, 0
        unless made noisier.
    noise_max_ratio : float
        With ``noise_sigma`` and ``augment``: a share ``noise_share`` of the bands at hand get
        Gaussian noise (in flux) of ``noise_sigma * sqrt(ratio^2 - 1)``, so that their noise
        becomes ``ratio`` times ``noise_sigma``, ``ratio`` drawn log-uniformly in
        ``[1, noise_max_ratio]``, and are tagged so; the target is left noise-free.
    noise_share : float
        The share of the bands at hand so made noisier.
    seed : int
        Seed of the draws.

    Attributes
    ----------
    bands : tuple of str
    scalings : dict of str to AsinhScaling
    x : numpy.ndarray
        Scaled input images ``(n, K, H, W)`` as a model reads them.
    y : numpy.ndarray
        Scaled target images ``(n, K, H, W)``: the noise-free truth where the data has one.
    """

    def __init__(self, source, *, bands, scalings=None, split=None, indices=None, crop_size=None, augment=False,
                 targets=None, max_inputs=None, favoured=None, favoured_share=0.0, psf_fwhm=None, psf_max_ratio=1.0,
                 psf_share=0.5, psf_joint=False, noise_sigma=None, noise_max_ratio=1.0, noise_share=0.5, seed=0):
        self.bands = _band_names(bands, "bands")
        if len(self.bands) < 2:
            raise ValueError(f"bands must name at least two bands, got {list(self.bands)}")
        self.targets = self.bands if targets is None else _band_names(targets, "targets")
        unknown = [b for b in self.targets if b not in self.bands]
        if unknown:
            raise ValueError(f"targets {unknown} are not among bands {list(self.bands)}")
        self.max_inputs = len(self.bands) - 1 if max_inputs is None else int(max_inputs)
        if not 1 <= self.max_inputs <= len(self.bands) - 1:
            raise ValueError(f"max_inputs must be in [1, {len(self.bands) - 1}], got {max_inputs}")
        self.favoured = self._check_favoured(favoured or ())
        self.favoured_share = float(favoured_share)
        if not 0.0 <= self.favoured_share <= 1.0 or (self.favoured_share and not self.favoured):
            raise ValueError(f"favoured_share must be in [0, 1] and needs favoured requests, got {favoured_share} "
                             f"with {len(self.favoured)} favoured")
        if indices is not None and split is not None:
            raise ValueError("give either split or indices, not both")
        if split is not None:
            indices = source.indices(split)
        if scalings is None:
            scalings = fit_band_scalings(source, self.bands)
        missing = [b for b in self.bands if b not in scalings]
        if missing:
            raise ValueError(f"scalings lack band(s) {missing}")
        self.scalings = {b: scalings[b] for b in self.bands}
        inputs = gather_cubes(source, self.bands, indices, kind="input")
        targets = gather_cubes(source, self.bands, indices, kind="target")
        self.source_indices = np.arange(len(inputs[self.bands[0]])) if indices is None else np.asarray(indices)
        if len(self.source_indices) == 0:
            raise ValueError(f"no images selected (split={split!r})")
        ones = np.ones(len(self.source_indices))
        self.x = np.stack([scale_images(inputs[b], ones, self.scalings[b]) for b in self.bands], axis=1)
        self.y = np.stack([scale_images(targets[b], ones, self.scalings[b]) for b in self.bands], axis=1)
        bad = unusable_pixels(source, self.bands, self.bands[-1])
        self.weight = None if bad is None else (~bad[self.source_indices][:, None]).astype(np.float32)
        side = min(self.x.shape[-2:])
        if crop_size is not None and not 1 <= int(crop_size) <= side:
            raise ValueError(f"crop_size must be in [1, {side}], got {crop_size}")
        self.crop_size = None if crop_size is None else int(crop_size)
        self.augment, self.seed, self.epoch = bool(augment), int(seed), 0
        self.psf_fwhm = self._check_worsening("psf", "psf_fwhm", psf_fwhm, psf_max_ratio, psf_share,
                                              "the bands' PSF FWHM in pixels")
        self.psf_max_ratio, self.psf_share, self.psf_joint = float(psf_max_ratio), float(psf_share), bool(psf_joint)
        self.noise_sigma = self._check_worsening("noise", "noise_sigma", noise_sigma, noise_max_ratio, noise_share,
                                                 "the bands' training noise per pixel")
        self.noise_max_ratio, self.noise_share = float(noise_max_ratio), float(noise_share)
        self.tags = tuple(kind for kind, per_band in (("psf", self.psf_fwhm), ("depth", self.noise_sigma))
                          if per_band is not None)

    def _check_worsening(self, kind, name, per_band, max_ratio, share, what):
        """``per_band`` by registry name, checked with the ratio and share of the inputs made worse by it."""
        if per_band is None:
            if max_ratio != 1.0:
                raise ValueError(f"{kind}_max_ratio needs {name}: {what}")
            return None
        values = {get_band(b).name: float(v) for b, v in dict(per_band).items()}
        missing = [b for b in self.bands if not values.get(b, 0) > 0]
        if missing:
            raise ValueError(f"{name} needs a positive value ({what}) for band(s) {missing}")
        if not max_ratio >= 1.0 or not 0.0 <= share <= 1.0:
            raise ValueError(f"{kind}_max_ratio must be >= 1 and {kind}_share in [0, 1], got {max_ratio} and {share}")
        return values

    def _check_favoured(self, favoured):
        checked = []
        for request in favoured:
            present, wanted = request
            present, wanted = _band_names(present, "a favoured request"), get_band(wanted).name
            if wanted not in self.targets or not set(present) <= set(self.bands) or wanted in present \
                    or not 1 <= len(present) <= self.max_inputs:
                raise ValueError(f"favoured request {list(present)} -> {wanted} must want one of targets "
                                 f"{list(self.targets)} from 1 to max_inputs={self.max_inputs} other bands among "
                                 f"{list(self.bands)}")
            checked.append((tuple(b for b in self.bands if b in present), wanted))
        return tuple(checked)

    def __len__(self):
        return self.x.shape[0]

    def set_epoch(self, epoch):
        """Select the draws of ``epoch`` (with ``augment``).

        Parameters
        ----------
        epoch : int
            The epoch about to start.
        """
        self.epoch = int(epoch)

    def _rng(self, i, stream):
        # One stream for the request, one for the crop and turn: independent draws.
        return np.random.default_rng((self.seed, self.epoch if self.augment else 0, int(i), stream))

    def request(self, i):
        """``(bands at hand, band wanted)`` of item ``i`` in the current epoch.

        The wanted band is uniform over ``targets``; the number of bands at hand is
        uniform over 1..``max_inputs``, and which ones uniform among the others; with
        ``augment``, a share ``favoured_share`` of the items takes one of ``favoured`` instead.

        Parameters
        ----------
        i : int

        Returns
        -------
        present : tuple of str
        wanted : str
        """
        if self.augment and self.favoured_share:
            favour = self._rng(i, 2)  # a stream of its own: the uniform draws stay those without favoured requests
            if favour.random() < self.favoured_share:
                return self.favoured[int(favour.integers(len(self.favoured)))]
        rng = self._rng(i, 0)
        wanted = self.targets[int(rng.integers(len(self.targets)))]
        others = [b for b in self.bands if b != wanted]
        n = int(rng.integers(1, self.max_inputs + 1))
        chosen = set(rng.choice(len(others), size=n, replace=False).tolist())
        return tuple(b for k, b in enumerate(others) if k in chosen), wanted

    def __getitem__(self, i):
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} items")
        i = int(i) % len(self)
        present, wanted = self.request(i)
        rng = self._rng(i, 1)
        k = len(self.bands)
        planes = np.zeros(((3 + len(self.tags)) * k, *self.x.shape[-2:]), dtype=np.float32)
        # streams of their own: requests, crops and turns stay those without blurring or added noise
        blur, noise = self._rng(i, 3), self._rng(i, 4)
        blurring = (blur, self.psf_fwhm, self.psf_share, self.psf_max_ratio)
        joint = self._worse_ratio(*blurring) if self.psf_joint else None
        for band in present:
            s = self.bands.index(band)
            planes[s] = self.x[i, s]
            planes[k + s] = 1.0
            ratio = joint if self.psf_joint else self._worse_ratio(*blurring)
            if ratio is not None:
                planes[s] = self._blurred(planes[s], band, ratio)
                planes[(3 + self.tags.index("psf")) * k + s] = np.log2(ratio)
            ratio = self._worse_ratio(noise, self.noise_sigma, self.noise_share, self.noise_max_ratio)
            if ratio is not None:
                planes[s] = self._noisier(planes[s], band, ratio, noise)
                planes[(3 + self.tags.index("depth")) * k + s] = np.log2(ratio)
        t = self.bands.index(wanted)
        planes[2 * k + t] = 1.0
        arrays = [planes, self.y[i, t:t + 1]] + ([] if self.weight is None else [self.weight[i]])
        height, width = planes.shape[-2:]
        c = self.crop_size
        op = int(rng.integers(8)) if self.augment else 0
        oy, ox = 0, 0
        if c is not None:
            oy, ox = ((int(rng.integers(height - c + 1)), int(rng.integers(width - c + 1))) if self.augment
                      else ((height - c) // 2, (width - c) // 2))
        return crop_and_turn(arrays, oy, ox, c, op)

    def _worse_ratio(self, rng, per_band, share, max_ratio):
        """How much broader a PSF or larger a noise to make (log-uniform in [1, max_ratio]), or None: left as is."""
        if per_band is None or not self.augment or not rng.random() < share:
            return None
        return float(np.exp(rng.uniform(0.0, np.log(max_ratio))))

    def _blurred(self, scaled, band, ratio):
        """``scaled`` image of ``band`` seen through a PSF ``ratio`` times broader (Gaussian, in flux)."""
        scaling = self.scalings[band]
        flux = gaussian_filter(scaling.inverse(scaled.astype(np.float64)), broadening_sigma(self.psf_fwhm[band], ratio),
                               mode="nearest")
        return scaling.forward(flux).astype(np.float32)

    def _noisier(self, scaled, band, ratio, rng):
        """``scaled`` image of ``band`` with noise ``ratio`` times the training noise (Gaussian, in flux)."""
        scaling = self.scalings[band]
        extra = self.noise_sigma[band] * np.sqrt(ratio ** 2 - 1.0)
        flux = scaling.inverse(scaled.astype(np.float64)) + rng.normal(0.0, extra, scaled.shape)
        return scaling.forward(flux).astype(np.float32)
