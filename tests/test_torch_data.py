"""Tests of the torch (inputs, target) data set and the training scaling."""

import numpy as np
import pytest
import torch

from bandsynth.datasets import make_dataset, make_galaxy, write_dataset
from bandsynth.datasets.torch_data import (
    DIHEDRAL_OPS,
    BandPairDataset,
    fit_scalings_for,
    input_references,
    scale_images,
)
from bandsynth.scaling import AsinhScaling

BANDS = ["NUV", "g", "r", "Ks"]


@pytest.fixture(scope="module")
def mock():
    return make_dataset(12, seed=5, bands=BANDS, size=32, split_fractions=(0.5, 0.25, 0.25))


def test_items_shapes_and_scaling(mock):
    ds = BandPairDataset(mock, inputs=["NUV", "Ks"], target="r", split="train")
    assert len(ds) == len(mock.indices("train")) == 6
    x, y = ds[0]
    assert x.dtype == y.dtype == torch.float32
    assert tuple(x.shape) == (2, 32, 32) and tuple(y.shape) == (1, 32, 32)
    # the scaling: fixed and physical (no per-image reference flux), per-band asinh, nothing clipped
    i = 2
    src = ds.source_indices[i]
    assert ds.reference(i) == 1.0
    expected = ds.scalings["r"].forward(mock.cube("r")[src])
    assert np.allclose(ds[i][1][0].numpy(), expected, atol=1e-6)
    # roughly [0, 1]: the median galaxy's brightest pixels near 1
    assert 0.0 <= float(ds.x.min()) and 0.5 < np.median(ds.y.reshape(len(ds), -1).max(axis=1)) < 1.6
    assert np.allclose(ds.to_flux(ds[i][1][0].numpy(), i), mock.cube("r")[src], rtol=1e-4, atol=1e-7)


def test_scalings_fitted_on_train_and_reused(mock):
    sc = fit_scalings_for(mock, ["NUV", "Ks"], "r")
    assert set(sc) == {"NUV", "Ks", "r"} and all(isinstance(s, AsinhScaling) for s in sc.values())
    train = BandPairDataset(mock, inputs=["NUV", "Ks"], target="r", split="train")
    assert train.scalings == sc
    val = BandPairDataset(mock, inputs=["NUV", "Ks"], target="r", split="validation", scalings=sc)
    assert val.scalings == sc and len(val) == 3
    with pytest.raises(ValueError, match=r"scalings lack band\(s\) \['Ks'\]"):
        BandPairDataset(mock, inputs=["NUV", "Ks"], target="r", scalings={"NUV": sc["NUV"], "r": sc["r"]})


def test_augmentation_is_reproducible(mock):
    kw = dict(inputs=["g"], target="r", crop_size=16, augment=True, seed=3)
    a = BandPairDataset(mock, **kw)
    b = BandPairDataset(mock, **kw)
    a.set_epoch(2)
    b.set_epoch(2)
    for i in range(len(a)):
        assert torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1])
    draws = set()
    for epoch in range(6):
        a.set_epoch(epoch)
        draws.add(a.transform(0))
    assert len(draws) > 3  # different epochs, different crops/flips
    x, y = a[0]
    assert tuple(x.shape) == (1, 16, 16)
    # input and target get the same crop and flip: undo it and compare with the stored images
    oy, ox, op = a.transform(0)
    k, flip = DIHEDRAL_OPS[op]
    back = np.rot90(y.numpy(), -k, axes=(1, 2))
    if flip:
        back = back.transpose(0, 2, 1)
    assert np.array_equal(back, a.y[0][:, oy : oy + 16, ox : ox + 16])


def test_all_eight_dihedral_ops_are_distinct():
    img = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    outs = set()
    for k, flip in DIHEDRAL_OPS:
        t = img.transpose(0, 2, 1) if flip else img
        outs.add(np.rot90(t, k, axes=(1, 2)).tobytes())
    assert len(outs) == 8


def test_no_augment_centre_crop(mock):
    ds = BandPairDataset(mock, inputs=["g"], target="r", crop_size=20)
    assert ds.transform(0) == (6, 6, 0)
    assert np.array_equal(ds[0][1].numpy(), ds.y[0][:, 6:26, 6:26])


def test_list_of_bandstacks_and_on_disk_source(mock, tmp_path):
    stacks = [make_galaxy(s, bands=["g", "r"], size=16) for s in range(4)]
    ds = BandPairDataset(stacks, inputs=["g"], target="r")
    assert len(ds) == 4 and tuple(ds[3][0].shape) == (1, 16, 16)
    with pytest.raises(ValueError, match="split needs a data set with splits"):
        BandPairDataset(stacks, inputs=["g"], target="r", split="train")
    with pytest.raises(ValueError, match="has no band 'Ks'"):
        BandPairDataset(stacks, inputs=["g"], target="Ks")
    disk = write_dataset(mock, tmp_path / "set")
    a = BandPairDataset(disk, inputs=["NUV", "Ks"], target="g", split="test")
    b = BandPairDataset(mock, inputs=["NUV", "Ks"], target="g", split="test")
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    disk.close()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(inputs=["g"], target="g"), ValueError, "target band 'g' is also an input"),
        (dict(inputs=["g", "sdss_g"], target="r"), ValueError, "names a band twice"),
        (dict(inputs=["g"], target="r", crop_size=64), ValueError, r"crop_size must be in \[1, 32\]"),
        (dict(inputs=["g"], target="r", crop_size=8.0), TypeError, "crop_size must be an integer"),
        (dict(inputs=["g"], target="z"), ValueError, "band 'z' is not in this data set"),
        (dict(inputs=["g"], target="r", split="train", indices=[0]), ValueError, "either split or indices"),
    ],
)
def test_bad_arguments(mock, kwargs, error, match):
    with pytest.raises(error, match=match):
        BandPairDataset(mock, **kwargs)


def test_input_references_and_scale_images():
    cube = np.zeros((2, 4, 4))
    cube[1, 0, 0] = 1.0
    with pytest.raises(ValueError, match=r"reference flux for image\(s\) \[0\]"):
        input_references([cube])
    refs = input_references([np.ones((3, 4, 4)), 2 * np.ones((3, 4, 4))])
    assert np.allclose(refs, 2.0)
    out = scale_images(np.ones((3, 4, 4)), refs, AsinhScaling(softening=0.1, maximum=1.0))
    assert out.dtype == np.float32 and np.allclose(out, np.arcsinh(5.0) / np.arcsinh(10.0))
    with pytest.raises(TypeError, match="scaling must be an AsinhScaling"):
        scale_images(np.ones((1, 2, 2)), [1.0], {"softening": 0.1})


def test_works_with_a_dataloader(mock):
    ds = BandPairDataset(mock, inputs=["NUV", "Ks"], target="g", crop_size=16, augment=True)
    x, y = next(iter(torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False)))
    assert tuple(x.shape) == (4, 2, 16, 16) and tuple(y.shape) == (4, 1, 16, 16)
