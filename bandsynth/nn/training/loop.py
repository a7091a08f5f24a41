"""The training loop: `fit` and the `TrainingResult` it returns.

`fit` checks its arguments and hands over to ``_TrainingRun``, which holds the
state of one run (progress counters, running sums, best and averaged weights)
and runs it step by step: set-up and resumption, the epochs with their updates
and mid-epoch checkpoints, and the end of each epoch (validation, selection of
the best weights, the running mean of the last epochs' weights, checkpoint).
The order of every random draw and update is that of an uninterrupted run,
whatever the step a run resumes from.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset, IterableDataset

from ..losses import BandLoss
from .checkpoints import (
    CHECKPOINT_FORMAT,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    restore_rng,
    save_best_weights,
    save_checkpoint,
)
from .distributed import all_reduce_sum, setup_distributed, unwrap_model
from .evaluation import evaluate, unpack_batch
from .precision import resolve_device, resolve_precision
from .sampling import ShardSampler, augment_batch, derive_seed
from .schedule import SCHEDULES, learning_rate

__all__ = ["TrainingResult", "fit"]

# The logger named in the documentation of `fit` (``log_every``).
log = logging.getLogger("bandsynth.nn.training")

# Options whose change makes a resumed run differ from the one that wrote the checkpoint.
_RUN_OPTIONS = ("epochs", "batch_size", "lr", "betas", "lr_schedule", "crop_size", "augment", "seed", "world_size",
                "average_epochs")
# Options a resumed run may not change at all: the loss the weights were trained with.  A card states one loss
# for every step, so a run whose steps followed two losses cannot be described by it.
_LOSS_OPTIONS = ("ssim_weight", "nll_weight", "flux_weight", "flux_error")
# stacklevel of the warnings of _TrainingRun.resume: resume <- __init__ <- fit <- the caller of fit.
_FIT_CALLER = 4


def _changed_options(old, new, keys):
    """``"k old -> new, ..."`` for the options ``keys`` that the checkpoint's ``old`` records and ``new`` changes."""
    return ", ".join(f"{k} {old[k]!r} -> {new[k]!r}" for k in keys if k in old and old[k] != new[k])


@dataclass
class TrainingResult:
    """What `fit` returns.

    Attributes
    ----------
    history : list of dict
        One record per epoch: ``epoch`` (0-based), ``step``, ``lr``, ``train_loss``,
        ``train_l1``, ``train_ssim``, ``train_nll``, ``val_*`` metrics from
        `evaluate` when validation data were given, and ``seconds``.
    best_state : dict of str to torch.Tensor
        CPU copy of the best weights (highest ``val_ssim``; lowest ``train_loss``
        without validation data).  The model itself keeps its final weights.
    best_metric : float or None
    best_metric_name : str
    best_epoch : int or None
    steps : int
        Optimizer updates done in total.
    epochs_completed : int
    stopped_early : bool
        True when ``max_steps`` ended the run before ``epochs``.
    last_checkpoint, best_checkpoint : pathlib.Path or None
    device : str
    bf16, channels_last : bool
    world_size : int
    seconds : float
        Wall-clock time of this call.
    images_per_second : float
        Training images processed per second in this call (all ranks).
    average_state : dict of str to torch.Tensor or None
        With ``average_epochs``: CPU copy of the mean of the weights at the ends of the
        epochs averaged so far (None before the first).
    averaged_epochs : int
        How many epochs' weights that mean holds.
    average_metrics : dict or None
        `evaluate` metrics of the averaged weights on the validation data, once every
        epoch has run.
    """

    history: list
    best_state: dict | None
    best_metric: float | None
    best_metric_name: str
    best_epoch: int | None
    steps: int
    epochs_completed: int
    stopped_early: bool
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    device: str = "cpu"
    bf16: bool = False
    channels_last: bool = False
    world_size: int = 1
    seconds: float = 0.0
    images_per_second: float = 0.0
    average_state: dict | None = None
    averaged_epochs: int = 0
    average_metrics: dict | None = None


def fit(
    model,
    train_data,
    *,
    val_data=None,
    epochs,
    batch_size=8,
    lr=2e-4,
    betas=(0.5, 0.999),
    lr_schedule="cosine",
    loss=None,
    crop_size=None,
    augment=True,
    seed=0,
    num_workers=0,
    checkpoint_dir=None,
    checkpoint_every=None,
    keep_checkpoints=2,
    resume=None,
    bf16="auto",
    channels_last="auto",
    device="auto",
    distributed="auto",
    progress=True,
    log_every=50,
    max_steps=None,
    grad_clip=None,
    on_step=None,
    average_epochs=None,
    data_identity=None,
):
    """Train ``model`` in place on ``train_data`` and return a `TrainingResult`.

    Parameters
    ----------
    model : torch.nn.Module
        Usually a `~bandsynth.nn.generator.ResNetGenerator`; it must return
        ``(mean, log_scale)`` (``log_scale`` may be None).
    train_data : torch.utils.data.Dataset
        Map-style dataset of ``(x, y)`` or ``(x, y, weight)`` float tensors.
    val_data : torch.utils.data.Dataset, optional
        Evaluated on full images after every epoch; selects the best weights by SSIM.
    epochs : int
        Number of passes over ``train_data``; sets the learning-rate schedule.
    batch_size : int
        Images per optimizer update (per rank under DDP).
    lr, betas : float, tuple of float
        Peak learning rate and betas of Adam (CycleGAN's betas: 0.5, 0.999).
    lr_schedule : {"cosine", "linear", "constant"}
        Decay of the learning rate over ``epochs`` (see `learning_rate`).
    loss : bandsynth.nn.losses.BandLoss, optional
        Defaults to ``BandLoss()`` (L1 + (1 - SSIM) + Laplace NLL).
    crop_size : int, optional
        Random square crops of this side, per sample (a multiple of ``2 ** n_down``).
    augment, seed, num_workers : bool, int, int
        Random flips and 90-degree rotations, per sample; the seed of the data order and
        augmentation (not of the weights: initialise the model before); DataLoader workers.
    checkpoint_dir, checkpoint_every : str or pathlib.Path, int, optional
        Where ``checkpoint-<step>.safetensors`` (after every epoch, and every
        ``checkpoint_every`` optimizer steps) and ``best.safetensors`` are written.
    keep_checkpoints : int
        How many step checkpoints to keep (0 keeps all).
    resume : None, "auto", str or pathlib.Path
        A checkpoint (file or directory) to continue from; "auto": ``checkpoint_dir``'s latest, if any.
    bf16, channels_last : bool or "auto"
        bfloat16 autocast ("auto": where the device has it natively); channels-last ("auto": on a GPU).
    device, distributed : "auto", str or torch.device, bool or "auto"
        "auto": the local GPU if there is one, else the CPU; DDP, "auto" when launched
        by torchrun with more than one process.
    progress : bool
        Show a tqdm progress bar (rank 0 only).
    log_every : int
        Log the running loss every this many steps (logger ``bandsynth.nn.training``).
    max_steps : int, optional
        Stop after this many updates in total (with a checkpoint), e.g. to split a run across jobs.
    grad_clip : float, optional
        Clip the global gradient norm to this value.
    on_step : callable, optional
        Called after every update with a dict (``step``, ``epoch``, ``loss``, ``lr``, ...).
    average_epochs : int, optional
        Average the weights (and buffers) at the ends of the last this many epochs:
        stochastic weight averaging (`torch.optim.swa_utils.AveragedModel`).  The result's
        ``average_state`` holds the mean; ``model`` keeps its final weights.
    data_identity : dict, optional
        JSON-ready description of the training data (e.g. its scalings and meta), kept in
        every checkpoint: a run resumed on other data is refused.

    Returns
    -------
    TrainingResult

    Raises
    ------
    ValueError
        Invalid arguments; resuming from a checkpoint of another network, loss (weights,
        ``flux_error``) or, when both record one, ``data_identity``.
    """
    arguments = dict(locals())  # every parameter above, by name
    _check_arguments(**arguments)
    return _TrainingRun(**arguments).train()


def _check_arguments(
    model,
    train_data,
    *,
    val_data,
    epochs,
    batch_size,
    lr,
    lr_schedule,
    loss,
    crop_size,
    seed,
    num_workers,
    checkpoint_dir,
    checkpoint_every,
    keep_checkpoints,
    resume,
    log_every,
    max_steps,
    average_epochs,
    data_identity,
    **_others,
):
    """Raise on invalid `fit` arguments (those not checked during the set-up)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for name, data in (("train_data", train_data), ("val_data", val_data)):
        if data is None and name == "val_data":
            continue
        if not isinstance(data, Dataset) or isinstance(data, IterableDataset):
            raise TypeError(f"{name} must be a map-style torch Dataset, got {type(data).__name__}")
    if len(train_data) == 0:
        raise ValueError("train_data is empty")
    _check_positive_int("epochs", epochs)
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("crop_size", crop_size, allow_none=True)
    _check_positive_int("seed", seed, minimum=0)
    _check_positive_int("num_workers", num_workers, minimum=0)
    _check_positive_int("checkpoint_every", checkpoint_every, allow_none=True)
    _check_positive_int("keep_checkpoints", keep_checkpoints, minimum=0)
    _check_positive_int("log_every", log_every)
    _check_positive_int("max_steps", max_steps, allow_none=True)
    _check_positive_int("average_epochs", average_epochs, allow_none=True)
    if average_epochs is not None and average_epochs > epochs:
        raise ValueError(f"average_epochs ({average_epochs}) must be at most epochs ({epochs})")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if lr_schedule not in SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {lr_schedule!r}")
    if loss is not None and not isinstance(loss, BandLoss):
        raise TypeError(f"loss must be a bandsynth.nn.losses.BandLoss, got {type(loss).__name__}")
    multiple = 2 ** getattr(unwrap_model(model), "n_down", 0)
    if crop_size is not None and crop_size % multiple:
        raise ValueError(f"crop_size {crop_size} must be a multiple of 2**n_down = {multiple}")
    if checkpoint_every is not None and checkpoint_dir is None:
        raise ValueError("checkpoint_every needs a checkpoint_dir")
    if resume == "auto" and checkpoint_dir is None:
        raise ValueError("resume='auto' needs a checkpoint_dir")
    if data_identity is not None and not isinstance(data_identity, dict):
        raise TypeError(f"data_identity must be a dict or None, got {type(data_identity).__name__}")


def _check_positive_int(name, value, *, allow_none=False, minimum=1):
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int{' or None' if allow_none else ''}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


@dataclass(frozen=True)
class _FitSettings:
    """The `fit` arguments that steer the loop once it is set up (see `fit`)."""

    epochs: int
    batch_size: int
    lr: float
    betas: tuple
    lr_schedule: str
    loss: BandLoss
    crop_size: int | None
    augment: bool
    seed: int
    num_workers: int
    checkpoint_every: int | None
    keep_checkpoints: int
    progress: bool
    log_every: int
    max_steps: int | None
    grad_clip: float | None
    on_step: object
    average_epochs: int | None


def _non_finite_cause(x, y, w):
    """What in a batch made the loss non-finite, if the data did: the words to add to the error."""
    usable = torch.ones_like(y, dtype=torch.bool) if w is None else torch.broadcast_to(w, y.shape) > 0
    if not bool(torch.isfinite(y[usable]).all()):
        return ": the batch's targets hold non-finite pixels of non-zero weight (give them weight 0)"
    if not bool(torch.isfinite(x).all()):
        return ": the batch's inputs hold non-finite pixels"
    return ""


def _new_sums():
    """Zeroed running sums of the training loss terms over an epoch."""
    return {"loss": 0.0, "l1": 0.0, "ssim": 0.0, "nll": 0.0, "batches": 0}


def _cpu_copy(model):
    """A CPU copy of the weights of ``model`` (unwrapped from DDP)."""
    return {k: v.detach().cpu().clone().contiguous() for k, v in unwrap_model(model).state_dict().items()}


def _better(metric_name, value, best):
    """Whether ``value`` of ``metric_name`` beats ``best`` (higher SSIM, lower loss)."""
    if best is None:
        return True
    return value > best if metric_name == "val_ssim" else value < best


class _TrainingRun:
    """One call of `fit`: its set-up, its state and the steps of the loop.

    The state is what a checkpoint stores besides the weights and the optimizer:
    the counters ``step``, ``epoch`` and ``step_in_epoch``, the ``history``, the
    running sums ``acc`` of the current epoch and the best weights so far.
    Construction sets up the device, the optimizer and the checkpoint directory
    and resumes (`resume`); `train` then runs the epochs (`train_epoch`, which
    calls `train_step` per batch, and `finish_epoch`) and returns the
    `TrainingResult`.
    """

    def __init__(
        self,
        model,
        train_data,
        *,
        val_data,
        loss,
        resume,
        checkpoint_dir,
        bf16,
        channels_last,
        device,
        distributed,
        data_identity,
        **settings,
    ):
        # Through JSON, as a checkpoint stores it: tuples become lists, and a resumed run compares like with like.
        self.data_identity = None if data_identity is None else json.loads(json.dumps(data_identity))
        s = self.settings = _FitSettings(loss=loss or BandLoss(), **settings)
        self.started = time.perf_counter()
        self.model, self.train_data, self.val_data = model, train_data, val_data
        self.dist = setup_distributed(distributed, device)
        self.device = resolve_device(device, self.dist.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.use_bf16, self.use_cl = resolve_precision(bf16, channels_last, self.device)
        model.to(self.device)
        if self.use_cl:
            model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=s.lr, betas=tuple(s.betas))
        self.ckpt_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.is_main = self.dist.rank == 0
        if self.ckpt_dir is not None and self.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.ckpt_dir.glob(".*.tmp-*"):  # left by a process killed while writing
                stale.unlink(missing_ok=True)
        flux_on = s.loss.flux is not None and s.loss.flux_weight != 0
        self.fit_options = {
            "epochs": s.epochs, "batch_size": s.batch_size, "lr": s.lr, "betas": list(s.betas),
            "lr_schedule": s.lr_schedule, "crop_size": s.crop_size, "augment": s.augment, "seed": s.seed,
            "world_size": self.dist.world_size, "ssim_weight": s.loss.ssim_weight, "nll_weight": s.loss.nll_weight,
            "flux_weight": s.loss.flux_weight if flux_on else 0.0,
            "flux_error": s.loss.flux_error if flux_on else None,  # no term: its form changes nothing
            "average_epochs": s.average_epochs,
        }  # fmt: skip
        self.metric_name = "val_ssim" if val_data is not None else "train_loss"
        self.step = self.epoch = self.step_in_epoch = 0
        self.history, self.best_state, self.best_metric, self.best_epoch = [], None, None, None
        self.acc = _new_sums()
        self.last_ckpt = self.best_ckpt = None
        self.average = None
        if s.average_epochs is not None:  # buffers too: a network's constants stay, norm statistics are averaged
            self.average = AveragedModel(unwrap_model(model), device="cpu", use_buffers=True)
        self.average_metrics = None
        self.resume(resume)
        self.train_model = model
        if self.dist.active:
            self.train_model = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.n_train = len(train_data)
        self.steps_per_epoch = math.ceil(math.ceil(self.n_train / self.dist.world_size) / s.batch_size)
        self.total_steps = s.epochs * self.steps_per_epoch
        self.stop_at = self.total_steps if s.max_steps is None else min(s.max_steps, self.total_steps)
        self.images_seen, self.train_seconds = 0, 0.0
        self.stopped = self.step >= self.stop_at and self.step < self.total_steps

    def resume(self, resume):
        """Continue from the checkpoint ``resume`` names, if any: weights, optimizer, RNG states, state.

        ``resume`` is None, "auto" (the latest checkpoint in ``checkpoint_dir``)
        or a checkpoint file or directory.
        """
        source = None
        if resume == "auto":
            source = latest_checkpoint(self.ckpt_dir)
        elif resume is not None:
            source = resume
        elif self.ckpt_dir is not None and latest_checkpoint(self.ckpt_dir) is not None:
            warnings.warn(
                f"checkpoint_dir {self.ckpt_dir} already holds checkpoints; starting a new run "
                "(pass resume='auto' to continue the old one)",
                UserWarning,
                stacklevel=_FIT_CALLER,
            )
        if source is None:
            return
        ckpt = load_checkpoint(source)
        self._check_same_run(ckpt)
        try:
            unwrap_model(self.model).load_state_dict(ckpt.model_state)
        except RuntimeError:  # torch lists every missing and unexpected key: say what it means instead
            raise ValueError(
                f"checkpoint {ckpt.path} was written by a run of another network (another preset, or other "
                "bands); give this run another checkpoint folder, or resume it with the same network options"
            ) from None
        if ckpt.optimizer_state is None:
            raise ValueError(f"checkpoint {ckpt.path} holds no optimizer state; cannot resume")
        self.optimizer.load_state_dict(ckpt.optimizer_state)
        restore_rng(ckpt.rng_state)
        changed = _changed_options(ckpt.meta.get("fit_options", {}), self.fit_options, _RUN_OPTIONS)
        if changed:
            warnings.warn(f"resuming with different options than the checkpoint's: {changed}", UserWarning,
                          stacklevel=_FIT_CALLER)
        self.step, self.epoch, self.step_in_epoch = ckpt.step, ckpt.epoch, ckpt.step_in_epoch
        self.history = ckpt.history
        state = ckpt.meta.get("fit_state", {})
        self.acc = state.get("accumulators", self.acc)
        self.best_metric, self.best_epoch = state.get("best_metric"), state.get("best_epoch")
        self.best_state = ckpt.best_state
        if self.average is not None and ckpt.average_state is not None:
            self.average.module.load_state_dict(ckpt.average_state)
            self.average.n_averaged.fill_(int(state.get("n_averaged", 0)))
        self.last_ckpt = ckpt.path
        log.info("resumed from %s at step %d (epoch %d)", ckpt.path, self.step, self.epoch)

    def _check_same_run(self, ckpt):
        """Refuse a checkpoint written on other data or with another loss (before anything is loaded from it)."""
        old_identity = ckpt.meta.get("data_identity")
        if old_identity is not None and self.data_identity is not None and old_identity != self.data_identity:
            differ = sorted(k for k in {*old_identity, *self.data_identity}
                            if old_identity.get(k) != self.data_identity.get(k))
            raise ValueError(
                f"checkpoint {ckpt.path} was written by a run on other training data ({', '.join(differ)} differ); "
                "resuming would keep its weights under this data's description: give this run another checkpoint "
                "folder, or resume it on the same data"
            )
        changed = _changed_options(ckpt.meta.get("fit_options", {}), self.fit_options, _LOSS_OPTIONS)
        if changed:
            raise ValueError(
                f"checkpoint {ckpt.path} was written with another loss ({changed}); give this run another "
                "checkpoint folder, or resume it with the checkpoint's loss"
            )

    def train(self):
        """Run the remaining epochs (or steps, up to ``max_steps``) and return the `TrainingResult`."""
        from tqdm.auto import tqdm

        bar = tqdm(
            total=self.stop_at, initial=min(self.step, self.stop_at), unit="step", dynamic_ncols=True,
            disable=not self.settings.progress or not self.is_main, desc="training",
        )  # fmt: skip
        try:
            while self.epoch < self.settings.epochs and not self.stopped:
                epoch_started = time.perf_counter()
                self.train_epoch(bar)
                if self.stopped or self.step_in_epoch < self.steps_per_epoch:
                    break
                self.finish_epoch(epoch_started)
            if self._averaged_epochs() and self.val_data is not None and self.epoch >= self.settings.epochs:
                self.average_metrics = self._evaluate_average()
            if self.dist.active:  # every rank returns once rank 0's files are written
                torch.distributed.barrier()
        finally:
            bar.close()
            # No barrier on the way out of an error: the other ranks may never reach it.
            if self.dist.owned:
                torch.distributed.destroy_process_group()
        return self.result()

    def train_epoch(self, bar):
        """Train on the rest of the current epoch; stop (with a checkpoint) at ``max_steps``."""
        s = self.settings
        if hasattr(self.train_data, "set_epoch"):
            self.train_data.set_epoch(self.epoch)
        sampler = ShardSampler(
            self.n_train, seed=s.seed, epoch=self.epoch, rank=self.dist.rank,
            world_size=self.dist.world_size, skip=self.step_in_epoch * s.batch_size,
        )  # fmt: skip
        loader = DataLoader(
            self.train_data, batch_size=s.batch_size, sampler=sampler, num_workers=s.num_workers,
            generator=torch.Generator().manual_seed(derive_seed(s.seed, 2, self.epoch)),
            pin_memory=self.device.type == "cuda",
        )  # fmt: skip
        self.train_model.train()
        for batch in loader:
            if self.step >= self.stop_at:
                self.stopped = True
                break
            self.train_step(batch, bar)
            end_of_epoch = self.step_in_epoch >= self.steps_per_epoch
            if self.step >= self.stop_at and not end_of_epoch:
                self.stopped = True
                self.checkpoint()
                break
            if s.checkpoint_every and self.step % s.checkpoint_every == 0 and not end_of_epoch:
                self.checkpoint()

    def train_step(self, batch, bar):
        """One optimizer update on ``batch`` (augmented with the draws of this step and rank)."""
        s = self.settings
        t0 = time.perf_counter()
        x, y, w = unpack_batch(batch, "train_data")
        generator = torch.Generator().manual_seed(derive_seed(s.seed, 1, self.step, self.dist.rank))
        x, y, w = augment_batch(x, y, w, crop_size=s.crop_size, flips=s.augment, generator=generator)
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        w = None if w is None else w.to(self.device, non_blocking=True)
        if self.use_cl:
            x = x.contiguous(memory_format=torch.channels_last)
        current_lr = learning_rate(self.step, self.total_steps, lr=s.lr, schedule=s.lr_schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = current_lr
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            out = self.train_model(x)
        if not isinstance(out, tuple):
            out = (out, None)
        if out[0].shape != y.shape:
            raise ValueError(f"model output {tuple(out[0].shape)} does not match targets {tuple(y.shape)}")
        terms = s.loss(out[0], y, log_scale=out[1], weight=w)
        if not torch.isfinite(terms.total):
            raise FloatingPointError(f"training loss is not finite at step {self.step} (epoch {self.epoch})"
                                     + _non_finite_cause(x, y, w))
        terms.total.backward()
        if s.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), s.grad_clip)
        self.optimizer.step()
        self.step += 1
        self.step_in_epoch += 1
        self.images_seen += x.shape[0] * self.dist.world_size
        self.train_seconds += time.perf_counter() - t0
        self._report_step(terms, current_lr, bar)

    def _report_step(self, terms, current_lr, bar):
        """Add the loss terms of the step to the running sums; progress bar, log and ``on_step``."""
        s = self.settings
        values = {
            "loss": float(terms.total.detach()), "l1": float(terms.l1),
            "ssim": float(terms.ssim), "nll": float(terms.nll) if terms.nll is not None else 0.0,
        }  # fmt: skip
        for key, value in values.items():
            self.acc[key] += value
        self.acc["batches"] += 1
        bar.update(1)
        bar.set_postfix(loss=f"{values['loss']:.4f}", epoch=self.epoch, refresh=False)
        if self.step % s.log_every == 0 and self.is_main:
            log.info(
                "step %d/%d epoch %d loss %.5f l1 %.5f ssim %.4f lr %.3g",
                self.step, self.total_steps, self.epoch, values["loss"], values["l1"], values["ssim"], current_lr,
            )  # fmt: skip
        if s.on_step is not None:
            s.on_step({"step": self.step, "epoch": self.epoch, "lr": current_lr, **values})

    def finish_epoch(self, epoch_started):
        """End a completed epoch: record its metrics, keep the best weights, move on, checkpoint."""
        record = self._epoch_record()
        record["seconds"] = time.perf_counter() - epoch_started
        self.history.append(record)
        if _better(self.metric_name, record[self.metric_name], self.best_metric):
            self._keep_best(record)
        if self.is_main:
            log.info("epoch %d done: %s", self.epoch, ", ".join(f"{k} {v:.5g}" for k, v in record.items()))
        if self.average is not None and self.epoch >= self.settings.epochs - self.settings.average_epochs:
            self.average.update_parameters(unwrap_model(self.model))
        self.epoch += 1
        self.step_in_epoch = 0
        self.acc = _new_sums()
        self.checkpoint()
        if self.step >= self.stop_at and self.step < self.total_steps:
            self.stopped = True

    def _epoch_record(self):
        """The history record of the epoch: training means over all ranks and validation metrics."""
        s, acc = self.settings, self.acc
        sums = all_reduce_sum([acc["loss"], acc["l1"], acc["ssim"], acc["nll"], acc["batches"]], self.dist, self.device)
        batches = max(sums[4], 1)
        record = {
            "epoch": self.epoch, "step": self.step,
            "lr": learning_rate(self.step - 1, self.total_steps, lr=s.lr, schedule=s.lr_schedule),
            "train_loss": sums[0] / batches, "train_l1": sums[1] / batches,
            "train_ssim": sums[2] / batches, "train_nll": sums[3] / batches,
        }  # fmt: skip
        if self.val_data is not None:
            metrics = evaluate(
                self.model, self.val_data, batch_size=s.batch_size, bf16=self.use_bf16, channels_last=self.use_cl,
                loss=s.loss, num_workers=s.num_workers, _dist=self.dist,
            )  # fmt: skip
            record.update({f"val_{k}": v for k, v in metrics.items() if k != "n_images"})
        return record

    def _keep_best(self, record):
        """Make the current weights the best so far (and write ``best.safetensors``)."""
        self.best_metric, self.best_epoch = record[self.metric_name], self.epoch
        self.best_state = _cpu_copy(self.model)
        if self.ckpt_dir is not None and self.is_main:
            self.best_ckpt = save_best_weights(
                self.ckpt_dir / "best.safetensors", self.best_state,
                {"format": CHECKPOINT_FORMAT + "+weights", "metric": self.metric_name, "value": self.best_metric,
                 "epoch": self.epoch, "step": self.step,
                 "model_config": getattr(unwrap_model(self.model), "config", None)},
            )  # fmt: skip

    def checkpoint(self):
        """Write a step checkpoint of the run (rank 0, with a ``checkpoint_dir``) and prune old ones."""
        if self.ckpt_dir is None or not self.is_main:
            return
        meta = {
            "fit_options": self.fit_options,
            "data_identity": self.data_identity,
            "fit_state": {"accumulators": self.acc, "best_metric": self.best_metric, "best_epoch": self.best_epoch,
                          "metric_name": self.metric_name, "total_steps": self.total_steps,
                          "n_averaged": self._averaged_epochs()},
        }  # fmt: skip
        self.last_ckpt = save_checkpoint(
            self.ckpt_dir / f"checkpoint-{self.step:08d}.safetensors", model=self.model, optimizer=self.optimizer,
            step=self.step, epoch=self.epoch, step_in_epoch=self.step_in_epoch, history=self.history,
            best_state=self.best_state, meta=meta,
            # save_checkpoint copies the tensors it writes: no CPU copy of the mean first.
            average_state=self.average.module.state_dict() if self._averaged_epochs() else None,
        )  # fmt: skip
        prune_checkpoints(self.ckpt_dir, self.settings.keep_checkpoints)

    def result(self):
        """The `TrainingResult` of the run so far."""
        best_state = self.best_state
        if best_state is None:  # stopped before the first epoch ended
            best_state = _cpu_copy(self.model)
        best_ckpt = self.best_ckpt
        if self.ckpt_dir is not None and best_ckpt is None and (self.ckpt_dir / "best.safetensors").exists():
            best_ckpt = self.ckpt_dir / "best.safetensors"
        return TrainingResult(
            history=self.history,
            best_state=best_state,
            best_metric=self.best_metric,
            best_metric_name=self.metric_name,
            best_epoch=self.best_epoch,
            steps=self.step,
            epochs_completed=self.epoch,
            stopped_early=self.stopped,
            last_checkpoint=self.last_ckpt,
            best_checkpoint=best_ckpt,
            device=str(self.device),
            bf16=self.use_bf16,
            channels_last=self.use_cl,
            world_size=self.dist.world_size,
            seconds=time.perf_counter() - self.started,
            images_per_second=self.images_seen / self.train_seconds if self.train_seconds > 0 else 0.0,
            average_state=_cpu_copy(self.average.module) if self._averaged_epochs() else None,
            averaged_epochs=self._averaged_epochs(),
            average_metrics=self.average_metrics,
        )

    def _averaged_epochs(self):
        """How many epochs' weights the running mean holds (0 without averaging)."""
        return 0 if self.average is None else int(self.average.n_averaged)

    def _evaluate_average(self):
        """Validation metrics of the averaged weights (on the training device, every rank its share)."""
        averaged = copy.deepcopy(self.average.module).to(self.device)
        s = self.settings
        metrics = evaluate(averaged, self.val_data, batch_size=s.batch_size, bf16=self.use_bf16,
                           channels_last=self.use_cl, loss=s.loss, num_workers=s.num_workers, _dist=self.dist)
        return {k: v for k, v in metrics.items() if k != "n_images"}
