"""Supervised training of a generator: loop, checkpoints, mixed precision, DDP.

`fit` trains with Adam (betas 0.5, 0.999 as in CycleGAN) on the loss of
`bandsynth.nn.losses.BandLoss` (L1 + lambda (1 - SSIM), plus the Laplace NLL of
the uncertainty head), with a step-wise learning-rate schedule, validation after
every epoch and selection of the best weights by validation SSIM.

Reproducibility and resumption
------------------------------
Everything random is derived from ``seed``: the data order of epoch ``e`` from
``(seed, e)``, the crop and flip of step ``s`` on rank ``r`` from ``(seed, s, r)``.
Nothing depends on how many steps a process has run, so a run resumed from a
checkpoint (even after ``kill -9``) ends with the same weights as an
uninterrupted one.  A dataset with its own randomness stays exact when it draws
from the global torch/numpy/random generators with ``num_workers=0`` (their
states are checkpointed), or when it keys its randomness on the index and
``set_epoch(epoch)``, which `fit` calls at the start of every epoch.

Checkpoints are single safetensors files (``checkpoint-<step>.safetensors``):
model, best-so-far model, optimizer tensors and the torch RNG state as tensors,
and everything else (step, epoch, history, optimizer hyper-parameters,
numpy/python RNG states, the fit options) as JSON in the safetensors header.
Nothing is pickled.  Files are written to a temporary name and renamed, so a
checkpoint on disk is always complete.

Data
----
``train_data`` is a map-style `torch.utils.data.Dataset` whose items are
``(x [C, H, W], y [C_out, H, W])`` or ``(x, y, weight)`` float tensors
(``weight`` broadcastable to ``y``, 0 on masked pixels).  Cropping and
augmentation are normally the dataset's job; ``crop_size`` (random crops of
that side) and ``augment`` (random flips and 90-degree rotations, which leave
sky images statistically unchanged) apply on top of it, per sample.  With
instance normalisation, crops much smaller than the images to be predicted
shift the normalisation statistics between training and inference, so the
default is no cropping.

Distributed training
--------------------
Under ``torchrun`` (``WORLD_SIZE`` > 1) `fit` joins the process group (gloo on
CPU, nccl on GPU) unless one exists, wraps the model in
`~torch.nn.parallel.DistributedDataParallel` and gives each rank a disjoint
shard of every epoch's permutation (``batch_size`` is per rank).  Validation is
sharded and reduced so every rank selects the same best weights; only rank 0
writes checkpoints and shows progress.

Modules
-------
The public names (``__all__``) are defined in the modules of this subpackage:
``loop`` (`fit`, `TrainingResult`), ``evaluation`` (`evaluate`,
`run_generator`), ``checkpoints``, ``distributed`` (DDP helpers), ``sampling``
(seeds, sampler, augmentation), ``schedule`` (`learning_rate`) and
``precision`` (`bf16_supported`, device and precision flags).

Examples
--------
>>> import torch
>>> from torch.utils.data import TensorDataset
>>> from bandsynth.nn.generator import build_generator
>>> from bandsynth.nn.training import fit
>>> _ = torch.manual_seed(0)
>>> x = torch.rand(8, 2, 16, 16)
>>> data = TensorDataset(x, 0.5 * x[:, :1] + 0.3 * x[:, 1:] ** 2)
>>> net = build_generator("tiny", in_channels=2)
>>> result = fit(net, data, val_data=data, epochs=2, batch_size=4, progress=False, bf16=False)
>>> len(result.history), result.best_metric_name
(2, 'val_ssim')
"""

from .checkpoints import Checkpoint, latest_checkpoint, load_checkpoint, save_checkpoint
from .evaluation import evaluate, run_generator
from .loop import TrainingResult, fit
from .precision import bf16_supported
from .schedule import learning_rate

__all__ = [
    "fit",
    "evaluate",
    "run_generator",
    "TrainingResult",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "bf16_supported",
    "learning_rate",
]
