"""(inputs, target) image pairs for training, in the scaled units the networks see.

The networks' scaling is fixed and physical (the photometric contract): per band
an :class:`~bandsynth.scaling.AsinhScaling` in flux units, fitted once on the
training split (:func:`fit_scalings_for`: the median galaxy's 99.5th-percentile
pixel maps to 1; softening = maximum / 50), and ``scaled = scaling.forward(flux)``
with no per-image statistic, no clipping and no min/max normalisation.

The paper's metrics (SSIM, PSNR) are measured in a per-galaxy space instead: every
band divided by one reference flux from the input images (:func:`input_references`),
then asinh-scaled (``fit_scalings_for(..., reference="input")``).  That space is for
judging images only; nothing a model predicts depends on it.

:func:`cross_band_ssim` measures SSIM(input, target) in these units -- the
baseline of the SSIM gain -- with ``data_range=1``.

Examples
--------
>>> from bandsynth.datasets import make_dataset
>>> from bandsynth.datasets.torch_data import BandPairDataset
>>> ds = make_dataset(6, seed=0, bands=["NUV", "r", "Ks"], size=32)
>>> pairs = BandPairDataset(ds, inputs=["NUV", "Ks"], target="r", split="train", crop_size=16, augment=True)
>>> x, y = pairs[0]
>>> tuple(x.shape), tuple(y.shape), str(x.dtype)
((2, 16, 16), (1, 16, 16), 'torch.float32')
"""

from __future__ import annotations

import numpy as np
import torch

from ..bands import get_band
from ..scaling import AsinhScaling, fit_scalings
from .base import bad_pixels, fill_masked_cube, model_input_cube, model_target_cube, unusable_pixels

__all__ = ["BandPairDataset", "crop_and_turn", "fit_scalings_for", "input_references", "scale_images", "gather_cubes",
           "DIHEDRAL_OPS", "SCALING_QUANTILE", "cross_band_ssim", "ILLUSTRIS_SSIM", "DECALS_SSIM"]

#: Quantile over the training galaxies of (band's 99.5th pixel percentile / reference flux)
#: mapped to 1 by the fitted scalings.
SCALING_QUANTILE = 0.5
#: The 8 flips/rotations: (number of 90-degree rotations, transpose first).
DIHEDRAL_OPS = tuple((k, flip) for flip in (False, True) for k in range(4))


def _names(bands, what):
    if isinstance(bands, str):
        bands = [bands]
    try:
        names = [get_band(b).name for b in bands]
    except TypeError:
        raise TypeError(f"{what} must be a band name or a list of band names") from None
    if not names:
        raise ValueError(f"{what} must name at least one band")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} names a band twice: {names}")
    return names


def gather_cubes(source, bands, indices=None, *, kind="observed"):
    """Float32 arrays (n, ny, nx) of ``bands`` for the images ``indices`` of ``source``.

    ``source`` is a data set (:func:`~bandsynth.datasets.mock.make_dataset`,
    :func:`~bandsynth.datasets.open_dataset`, or anything with ``cube(band)``)
    or a sequence of :class:`~bandsynth.stack.BandStack`.

    Parameters
    ----------
    source : data set or sequence of `~bandsynth.stack.BandStack`
        Where the images come from.
    bands : str or sequence of str
        Band names or aliases (each at most once).
    indices : array-like of int, optional
        Images to take, in this order (default: all).
    kind : {"observed", "input", "target"}
        ``"observed"``: the images as stored; ``"input"``: as a model reads them
        (masked and non-finite pixels filled from their neighbours, as
        `~bandsynth.Translator.predict` does); ``"target"``: what a model is trained
        and scored against (the noise-free truth of a survey-layer data set, the
        images otherwise).

    Returns
    -------
    dict of str to numpy.ndarray
        Registry band name to a float32 array of shape (n, ny, nx), in the
        source's flux unit.

    Raises
    ------
    IndexError
        If an index is out of range for a data set.
    ValueError
        If the source holds no images, an image lacks a band, or the images of
        a band differ in shape.
    """
    names = _names(bands, "bands")
    if kind not in ("observed", "input", "target"):
        raise ValueError(f"kind must be 'observed', 'input' or 'target', got {kind!r}")
    if hasattr(source, "cube"):
        n = len(source)
        idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"image indices must lie in [0, {n}), got {idx.min()}..{idx.max()}")
        read = {"observed": lambda d, b: d.cube(b), "input": model_input_cube, "target": model_target_cube}[kind]
        out = {}
        for name in names:
            cube = read(source, name)
            # sorted reads are much faster on memory maps; restore the order afterwards
            order = np.argsort(idx, kind="stable")
            data = np.empty((idx.size,) + tuple(cube.shape[1:]), dtype=np.float32)
            data[order] = np.asarray(cube[idx[order]], dtype=np.float32)
            out[name] = data
        return out
    stacks = list(source)
    if not stacks:
        raise ValueError("source holds no images")
    if indices is not None:
        stacks = [stacks[int(i)] for i in indices]
    out = {}
    for name in names:
        arrays = []
        for k, st in enumerate(stacks):
            if not hasattr(st, "names") or name not in st.names:
                have = getattr(st, "names", None)
                raise ValueError(f"image {k} of the source has no band {name!r} (it has: {have})")
            image = np.asarray(st[name].data, dtype=np.float32)
            if kind == "input":
                image = fill_masked_cube(image[None], None if st[name].mask is None else st[name].mask[None])[0]
            arrays.append(image)
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise ValueError(f"band {name!r}: images have different shapes {sorted(shapes)}; "
                             "crop or reproject them to one size first")
        out[name] = np.stack(arrays)
    return out


def _unusable(source, inputs, target, indices):
    """`unusable_pixels` of the images ``indices`` of a data set or a sequence of stacks (None if none)."""
    if hasattr(source, "cube"):
        bad = unusable_pixels(source, inputs, target)
        return None if bad is None else bad[indices]
    stacks = list(source)
    bad = []
    for i in indices:
        images = [stacks[int(i)][b] for b in (*inputs, target)]
        bad.append(np.any([bad_pixels(np.asarray(im.data), im.mask) for im in images], axis=0))
    bad = np.stack(bad)
    return bad if bad.any() else None


def input_references(input_cubes, *, percentile=99.5):
    """Reference flux of every image from its input bands (vectorised ``reference_flux``).

    Parameters
    ----------
    input_cubes : sequence of arrays (n, ny, nx)
        The input bands' images.
    percentile : float
        Pixel percentile (0-100) taken in every image (NaNs ignored).

    Returns
    -------
    ndarray (n,)
        For every image, the largest of its input bands' ``percentile``-th
        pixel levels (float64, in the images' flux unit).

    Raises
    ------
    ValueError
        If an image has no positive flux at ``percentile`` in any input band.

    Examples
    --------
    >>> import numpy as np
    >>> from bandsynth.scaling import reference_flux
    >>> cube = np.random.default_rng(1).random((3, 8, 8))
    >>> bool(np.isclose(input_references([cube])[1], reference_flux([cube[1]])))
    True
    """
    levels = []
    for cube in input_cubes:
        flat = np.asarray(cube).reshape(len(cube), -1)
        if np.isnan(flat).any():
            levels.append(np.nanpercentile(flat, percentile, axis=1))
        else:
            levels.append(np.percentile(flat, percentile, axis=1))
    ref = np.max(np.stack(levels), axis=0).astype(np.float64)
    bad = np.flatnonzero(~(np.isfinite(ref) & (ref > 0)))
    if bad.size:
        raise ValueError(
            f"cannot set a reference flux for image(s) {bad[:10].tolist()}: the {percentile}th percentile "
            "of every input band is <= 0 (empty or background-only image?)"
        )
    return ref


def scale_images(images, references, scaling):
    """Scaled float32 images: ``scaling.forward(images, reference=F_ref)`` per image.

    ``images`` is (n, ny, nx) and ``references`` (n,), or one image and a scalar.

    Parameters
    ----------
    images : array-like
        Images in flux units, (n, ny, nx) or (ny, nx).
    references : array-like or float
        Reference flux of each image, (n,), or a scalar (finite, > 0).
    scaling : `~bandsynth.scaling.AsinhScaling`
        The band's scaling.

    Returns
    -------
    numpy.ndarray
        The scaled images, float32, of the shape of ``images``.

    Raises
    ------
    TypeError
        If ``scaling`` is not an `~bandsynth.scaling.AsinhScaling`.
    """
    if not isinstance(scaling, AsinhScaling):
        raise TypeError(f"scaling must be an AsinhScaling, got {type(scaling).__name__}")
    images = np.asarray(images, dtype=np.float32)
    ref = np.asarray(references, dtype=np.float64)
    if ref.ndim == 1:
        ref = ref[:, None, None]
    return scaling.forward(images, reference=ref).astype(np.float32)


def fit_scalings_for(source, inputs, target, *, split="train", stretch=50.0, quantile=None, percentile=99.5,
                     reference="fixed"):
    """Fit each band's :class:`~bandsynth.scaling.AsinhScaling` on ``split`` of ``source``.

    The inputs are read as a model reads them and the targets as a model is trained
    against them (:func:`gather_cubes` with ``kind="input"`` and ``kind="target"``).

    With ``reference="fixed"`` (what the networks use) the scalings are in
    physical units: no per-image reference flux, so a pixel's scaled value never
    depends on the rest of the cut-out.  ``reference="input"`` divides each
    image by its inputs' reference flux (:func:`input_references`): the metric
    space of the paper's SSIM and PSNR, used for evaluation only;
    ``split=None`` (or a list of BandStacks) uses every image.  ``quantile``
    defaults to :data:`SCALING_QUANTILE` (0.5): the median galaxy's brightest
    pixels map to 1 in every band.  (With 0.9 the red galaxies of a
    colour-bimodal population set the scale and most target images would use
    a small part of [0, 1]; brighter-than-median galaxies exceed 1 a little,
    compressed by the asinh, never clipped.)

    Parameters
    ----------
    source : data set or sequence of `~bandsynth.stack.BandStack`
        The images (see :func:`gather_cubes`).
    inputs : str or sequence of str
        Input bands.
    target : str or sequence of str
        Target band(s).
    split : {"train", "validation", "test", None}
        Images of the data set to fit on (None, or a source without splits:
        every image).
    stretch : float
        Ratio of ``maximum`` to ``softening`` of every scaling.
    quantile : float, optional
        Quantile over the galaxies mapped to 1 (default
        :data:`SCALING_QUANTILE`).
    percentile : float
        Pixel percentile (0-100) of each image, and of the input references.
    reference : {"fixed", "input"}
        ``"fixed"``: physical scalings in the source's flux unit;
        ``"input"``: scalings relative to each image's input reference flux.

    Returns
    -------
    dict of band name to AsinhScaling (inputs and target)
        One scaling per input and target band.

    Raises
    ------
    ValueError
        If the split is empty, ``reference`` is unknown, or a band has no
        positive flux.
    """
    in_names, tgt = _names(inputs, "inputs"), _names(target, "target")
    idx = None
    if split is not None and hasattr(source, "indices"):
        idx = source.indices(split)
        if len(idx) == 0:
            raise ValueError(f"split {split!r} of the source is empty: cannot fit scalings")
    if reference not in ("fixed", "input"):
        raise ValueError(f"reference must be 'fixed' or 'input', got {reference!r}")
    # A target that is also an input (an any-band model reads and writes each band) is fitted as an input.
    targets_only = [t for t in tgt if t not in in_names]
    cubes = {**(gather_cubes(source, targets_only, idx, kind="target") if targets_only else {}),
             **gather_cubes(source, in_names, idx, kind="input")}
    if reference == "fixed":
        refs = np.ones(len(cubes[in_names[0]]))
    else:
        refs = input_references([cubes[n] for n in in_names], percentile=percentile)
    quantile = SCALING_QUANTILE if quantile is None else quantile
    return fit_scalings(cubes, refs, stretch=stretch, quantile=quantile, percentile=percentile)


class BandPairDataset(torch.utils.data.Dataset):
    """A torch Dataset of ``(x [n_in, H, W], y [1, H, W])`` float32 pairs.

    Whole cubes are read and scaled once at construction; items are views
    with a random crop and one of the 8 flips/rotations.  The inputs are the
    observed images with masked pixels filled (as `~bandsynth.Translator.predict`
    fills them); the target is the noise-free truth where the data set has one
    (survey layer, ``has_truth``), the observed image otherwise.  Where some
    pixel is masked (`bandsynth.datasets.base.unusable_pixels`), items are
    ``(x, y, weight [1, H, W])`` triples, the weight 0 on those pixels.

    Parameters
    ----------
    source : data set or sequence of BandStack
        An in-memory (``make_dataset``) or on-disk (``open_dataset``) data
        set, or a list of BandStacks holding the bands.
    inputs : list of str
        Input bands (order = channel order of ``x``).
    target : str
        The band to predict.
    scalings : dict of str to AsinhScaling, optional
        Per-band scalings; default: fitted on the source's training split
        with :func:`fit_scalings_for` (pass the training set's scalings to
        the validation and test sets!).
    split : {"train", "validation", "test", None}
        Images to use (None: all; required None for a list of BandStacks).
    indices : array of int, optional
        Explicit image indices (instead of ``split``).
    crop_size : int, optional
        Side of the square crops (None: full images).  Random offsets with
        ``augment``, central crops otherwise.
    augment : bool
        Random crop offsets and one of the 8 flips/rotations per item,
        reproducible from ``(seed, epoch, index)``; call :meth:`set_epoch`
        at the start of each epoch.
    seed : int
        Seed of the augmentation draws.
    percentile : float
        Percentile the scalings are fitted at (when ``scalings`` is None).

    Attributes
    ----------
    inputs : tuple of str
        Input bands (registry names), the channels of ``x``.
    target : str
        The target band.
    scalings : dict of str to AsinhScaling
        Scaling of every input and of the target.
    source_indices : numpy.ndarray
        Image index in ``source`` of every item.
    x, y : numpy.ndarray
        Scaled input (n, n_in, H, W) and target (n, 1, H, W) images, float32.
    epoch : int
        The current epoch (see :meth:`set_epoch`).

    Examples
    --------
    >>> from bandsynth.datasets import make_dataset
    >>> ds = make_dataset(4, seed=3, bands=["g", "r", "u"], size=16)
    >>> train = BandPairDataset(ds, inputs=["g", "r"], target="u", split=None)
    >>> flux = train.to_flux(train[0][1].numpy()[0], 0)   # back to nanomaggies
    >>> bool(np.allclose(flux, ds.cube("u")[0], rtol=1e-3, atol=1e-6))
    True
    """

    def __init__(self, source, *, inputs, target, scalings=None, split=None, indices=None, crop_size=None,
                 augment=False, seed=0, percentile=99.5):
        self.inputs = tuple(_names(inputs, "inputs"))
        (self.target,) = _names(target, "target")
        if self.target in self.inputs:
            raise ValueError(f"target band {self.target!r} is also an input")
        if indices is not None and split is not None:
            raise ValueError("give either split or indices, not both")
        if split is not None:
            if not hasattr(source, "indices"):
                raise ValueError("split needs a data set with splits; use split=None for a list of BandStacks")
            indices = source.indices(split)
        self.source_indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        if scalings is None:
            scalings = fit_scalings_for(source, self.inputs, self.target,
                                        split="train" if hasattr(source, "indices") else None,
                                        percentile=percentile)
        missing = [b for b in self.inputs + (self.target,) if b not in scalings]
        if missing:
            raise ValueError(f"scalings lack band(s) {missing}")
        self.scalings = {b: scalings[b] for b in self.inputs + (self.target,)}
        cubes = {**gather_cubes(source, self.inputs, self.source_indices, kind="input"),
                 **gather_cubes(source, self.target, self.source_indices, kind="target")}
        if self.source_indices is None:
            self.source_indices = np.arange(len(cubes[self.target]))
        if len(self.source_indices) == 0:
            raise ValueError(f"no images selected (split={split!r})")
        # Fixed physical scaling: no per-image statistic (the photometric contract).
        self.references = np.ones(len(self.source_indices))
        self.x = np.stack([scale_images(cubes[b], self.references, self.scalings[b]) for b in self.inputs], axis=1)
        self.y = scale_images(cubes[self.target], self.references, self.scalings[self.target])[:, None]
        # Pixels masked in an input reach the model filled: no weight in the loss and the metrics.
        bad = _unusable(source, self.inputs, self.target, self.source_indices)
        self.weight = None if bad is None else (~bad[:, None]).astype(np.float32)
        height, width = self.x.shape[-2:]
        if crop_size is not None:
            if not isinstance(crop_size, (int, np.integer)) or isinstance(crop_size, bool):
                raise TypeError(f"crop_size must be an integer or None, got {type(crop_size).__name__}")
            if not 1 <= crop_size <= min(height, width):
                raise ValueError(f"crop_size must be in [1, {min(height, width)}] for {height}x{width} images, "
                                 f"got {crop_size}")
        self.crop_size = None if crop_size is None else int(crop_size)
        self.augment = bool(augment)
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self):
        return self.x.shape[0]

    def set_epoch(self, epoch):
        """Select the augmentation draw of ``epoch`` (reproducible per (seed, epoch, index)).

        Parameters
        ----------
        epoch : int
            The epoch about to start.
        """
        self.epoch = int(epoch)

    def reference(self, i):
        """Reference flux of item ``i`` (1: the scaling is fixed and physical).

        Parameters
        ----------
        i : int
            Item index.

        Returns
        -------
        float
            Always 1.0: the scalings are fixed and physical.
        """
        return float(self.references[i])

    def to_flux(self, scaled, i):
        """Turn a scaled target-band image of item ``i`` back into flux units.

        Parameters
        ----------
        scaled : array-like
            Image in the target band's scaled units (e.g. a network output).
        i : int
            Item index.

        Returns
        -------
        numpy.ndarray
            The image in the source's flux unit (float64).
        """
        return self.scalings[self.target].inverse(np.asarray(scaled, dtype=np.float64), reference=self.reference(i))

    def transform(self, i):
        """(crop offset y, crop offset x, dihedral op index) used for item ``i`` in the current epoch.

        Parameters
        ----------
        i : int
            Item index (non-negative).

        Returns
        -------
        offset_y, offset_x : int
            Top-left corner of the crop, in pixels (0 without a crop; the
            centred crop without ``augment``).
        op : int
            Index into :data:`DIHEDRAL_OPS` (0, the identity, without
            ``augment``).
        """
        height, width = self.x.shape[-2:]
        c = self.crop_size
        if not self.augment:
            if c is None:
                return 0, 0, 0
            return (height - c) // 2, (width - c) // 2, 0
        rng = np.random.default_rng((self.seed, self.epoch, int(i)))
        op = int(rng.integers(8))
        if c is None:
            return 0, 0, op
        return int(rng.integers(height - c + 1)), int(rng.integers(width - c + 1)), op

    def __getitem__(self, i):
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} items")
        i = int(i) % len(self)
        oy, ox, op = self.transform(i)
        arrays = [self.x[i], self.y[i]] + ([] if self.weight is None else [self.weight[i]])
        return crop_and_turn(arrays, oy, ox, self.crop_size, op)


def crop_and_turn(arrays, offset_y, offset_x, crop_size, op):
    """The same crop and flip/rotation of each ``(C, H, W)`` array, as float tensors.

    Parameters
    ----------
    arrays : sequence of numpy.ndarray
        Arrays of one item (images, target, weight), ``(C, H, W)`` each.
    offset_y, offset_x : int
        Top-left corner of the crop.
    crop_size : int or None
        Side of the square crop (None: no crop).
    op : int
        Index into :data:`DIHEDRAL_OPS` (0: the identity).

    Returns
    -------
    tuple of torch.Tensor
    """
    if crop_size is not None:
        arrays = [a[:, offset_y:offset_y + crop_size, offset_x:offset_x + crop_size] for a in arrays]
    if op:
        k, flip = DIHEDRAL_OPS[op]
        if flip:
            arrays = [a.transpose(0, 2, 1) for a in arrays]
        arrays = [np.rot90(a, k, axes=(1, 2)) for a in arrays]
    return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)


#: Mean SSIM between input and target bands on Illustris quoted by Zaazou et al.: (input, target) -> SSIM.
ILLUSTRIS_SSIM = {
    ("NUV", "g"): 0.53, ("NUV", "r"): 0.45, ("NUV", "z"): 0.43,
    ("Ks", "g"): 0.86, ("Ks", "r"): 0.82, ("Ks", "z"): 0.85,
    ("g", "u"): 0.84, ("g", "NUV"): 0.52, ("g", "FUV"): 0.49,
    ("r", "u"): 0.73, ("r", "NUV"): 0.44, ("r", "FUV"): 0.41,
}
#: The same on DECaLS (Galaxy10): (input, target) -> SSIM.
DECALS_SSIM = {("DECam_g", "DECam_r"): 0.53, ("DECam_z", "DECam_r"): 0.38}


def cross_band_ssim(source, input_band, target_band, *, indices=None, scalings=None, minmax=False,
                    percentile=99.5):
    """Mean SSIM between the ``input_band`` and ``target_band`` images of ``source``.

    Both images are scaled in the paper's metric space (reference flux from the
    input band, per-band asinh scalings -- fitted on the images used unless
    given), then compared with `bandsynth.metrics.ssim` (Gaussian weights,
    sigma 1.5, population covariance, ``data_range=1``).
    ``minmax=True`` additionally normalises each scaled image to [0, 1] by its
    own minimum and maximum (the paper's "asinh scaling followed by
    normalization to [0, 1]").  This is the baseline SSIM(input, target) of
    the SSIM gain.

    Parameters
    ----------
    source : data set or sequence of `~bandsynth.stack.BandStack`
        The images (see :func:`gather_cubes`).
    input_band, target_band : str
        The two bands compared.
    indices : array-like of int, optional
        Images to use (default: all).
    scalings : dict of str to AsinhScaling, optional
        Scalings of the two bands relative to the input reference flux
        (default: fitted on the images used, at :data:`SCALING_QUANTILE`).
    minmax : bool
        Normalise each scaled image to [0, 1] before comparing.
    percentile : float
        Pixel percentile (0-100) of the reference flux and of the fit.

    Returns
    -------
    float
        The mean SSIM over the images.
    """
    from ..metrics import ssim

    a, b = _names(input_band, "input_band")[0], _names(target_band, "target_band")[0]
    cubes = gather_cubes(source, [a, b], indices)
    refs = input_references([cubes[a]], percentile=percentile)
    if scalings is None:
        scalings = fit_scalings(cubes, refs, quantile=SCALING_QUANTILE, percentile=percentile)
    xa = scale_images(cubes[a], refs, scalings[a])
    xb = scale_images(cubes[b], refs, scalings[b])
    values = []
    for ia, ib in zip(xa, xb):
        if minmax:
            ia = (ia - ia.min()) / max(float(ia.max() - ia.min()), 1e-12)
            ib = (ib - ib.min()) / max(float(ib.max() - ib.min()), 1e-12)
        values.append(ssim(ia, ib, data_range=1.0))
    return float(np.mean(values))
