import inspect
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import IterableDataset, TensorDataset

from bandsynth.nn.losses import BandLoss
from bandsynth.nn.generator import build_generator
from bandsynth.nn.training import (
    evaluate,
    fit,
    latest_checkpoint,
    learning_rate,
    load_checkpoint,
    save_checkpoint,
)
from bandsynth.nn.training.sampling import augment_batch as _augment


def smooth_pairs(n, seed, size=32):
    """Smooth 2-band inputs and a non-linear target ``0.5 x0 + 0.3 x1**2``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.avg_pool2d(torch.rand(n, 2, size, size, generator=g), 5, 1, 2)
    return TensorDataset(x, 0.5 * x[:, :1] + 0.3 * x[:, 1:] ** 2)


def tiny_model():
    torch.manual_seed(0)
    return build_generator("tiny", 2)


# Header of the subprocess scripts: the same data and model as in-process.
HELPERS = "\n".join(
    [
        "import torch",
        "from torch.utils.data import TensorDataset",
        "from bandsynth.nn.generator import build_generator",
        inspect.getsource(smooth_pairs),
        inspect.getsource(tiny_model),
    ]
)

FAST = dict(batch_size=4, lr=5e-3, bf16=False, channels_last=False, progress=False, distributed=False)
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def _equal_states(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _strip_time(history):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


@pytest.fixture(scope="module")
def data():
    return smooth_pairs(16, 0), smooth_pairs(4, 1)


@pytest.fixture(scope="module")
def reference(data):
    """An uninterrupted 3-epoch run (12 steps) that resumed runs must reproduce."""
    train, val = data
    model = tiny_model()
    result = fit(model, train, val_data=val, epochs=3, crop_size=16, **FAST)
    return model.state_dict(), result


def test_learning_rate_schedules():
    assert learning_rate(0, 10, lr=1.0) == 1.0
    assert learning_rate(5, 10, lr=1.0) == pytest.approx(0.5)
    assert learning_rate(5, 10, lr=1.0, schedule="linear") == pytest.approx(0.5)
    assert learning_rate(9, 10, lr=1.0, schedule="cosine") < learning_rate(9, 10, lr=1.0, schedule="linear")
    assert learning_rate(7, 10, lr=0.3, schedule="constant") == 0.3
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        learning_rate(0, 10, lr=1.0, schedule="step")


def test_fit_learns_and_selects_best(data, reference):
    _, result = reference
    history = result.history
    assert [r["epoch"] for r in history] == [0, 1, 2] and history[-1]["step"] == 12 == result.steps
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_ssim"] > history[0]["val_ssim"] + 0.05
    assert result.best_metric_name == "val_ssim"
    assert result.best_metric == max(r["val_ssim"] for r in history)
    assert result.best_epoch == max(range(3), key=lambda e: history[e]["val_ssim"])
    assert 0 <= history[-1]["val_coverage"] <= 1 and "val_nll" in history[-1]
    assert not result.stopped_early and result.epochs_completed == 3
    # best_state holds the weights that score best_metric
    model = tiny_model()
    model.load_state_dict(result.best_state)
    assert evaluate(model, data[1])["ssim"] == pytest.approx(result.best_metric, abs=1e-6)


def test_fit_is_reproducible_and_seed_dependent(data, reference):
    train, val = data
    again = tiny_model()
    fit(again, train, val_data=val, epochs=3, crop_size=16, **FAST)
    assert _equal_states(again.state_dict(), reference[0])
    other = tiny_model()
    fit(other, train, epochs=1, crop_size=16, seed=1, max_steps=2, **FAST)
    short = tiny_model()
    fit(short, train, epochs=1, crop_size=16, max_steps=2, **FAST)
    assert not _equal_states(other.state_dict(), short.state_dict())


def test_resume_in_process_matches_uninterrupted(data, reference, tmp_path):
    train, val = data
    kw = dict(val_data=val, epochs=3, crop_size=16, checkpoint_dir=tmp_path, checkpoint_every=3, **FAST)
    first = fit(tiny_model(), train, max_steps=6, **kw)  # stops mid-epoch 1
    assert first.stopped_early and first.steps == 6 and len(first.history) == 1
    ckpt = load_checkpoint(tmp_path)
    assert (ckpt.step, ckpt.epoch, ckpt.step_in_epoch) == (6, 1, 2)
    model = tiny_model()  # fresh weights: everything must come from the checkpoint
    result = fit(model, train, resume="auto", **kw)
    assert result.steps == 12
    assert _equal_states(model.state_dict(), reference[0])
    assert _strip_time(result.history) == _strip_time(reference[1].history)
    assert _equal_states(result.best_state, reference[1].best_state)
    assert load_file(tmp_path / "best.safetensors").keys() == reference[0].keys()


def test_resuming_another_networks_checkpoint_says_so(data, tmp_path):
    train, _ = data
    fit(tiny_model(), train, epochs=1, crop_size=16, max_steps=2, checkpoint_dir=tmp_path, checkpoint_every=2, **FAST)
    wider = build_generator("small", 2)  # another preset: other weights
    with pytest.raises(ValueError, match=r"checkpoint .* was written by a run of another network \(another preset, "
                                         r"or other bands\); give this run another checkpoint folder"):
        fit(wider, train, epochs=1, crop_size=16, checkpoint_dir=tmp_path, resume="auto", **FAST)


def test_resuming_on_other_data_or_with_another_loss_is_refused(data, tmp_path):
    # A reused checkpoint folder handed the old data's weights (and their scaling) to a card describing the new
    # data (~70 % too much flux), and a resumed run with other loss weights had its card state the new loss.
    train, _ = data
    identity = {"scaling": {"r": {"softening": 0.05}}, "data_info": {"seed": 0, "split_fractions": [0.8, 0.2]}}
    kw = dict(epochs=1, crop_size=16, checkpoint_dir=tmp_path, **FAST)
    fit(tiny_model(), train, max_steps=2, data_identity=identity, **kw)
    other = {"scaling": {"r": {"softening": 0.09}}, "data_info": {"seed": 5}}
    with pytest.raises(ValueError, match=r"checkpoint .*checkpoint-00000002.safetensors was written by a run on other "
                                         r"training data \(data_info, scaling differ\); .* another checkpoint folder"):
        fit(tiny_model(), train, resume="auto", data_identity=other, **kw)
    with pytest.raises(ValueError, match=r"written with another loss \(ssim_weight 1.0 -> 0.0\); give this run "
                                         r"another checkpoint folder, or resume it with the checkpoint's loss"):
        fit(tiny_model(), train, resume="auto", data_identity=identity, loss=BandLoss(ssim_weight=0.0), **kw)
    # the same data (a tuple stored as a list) and the same loss -- a flux term's form without the term is none --:
    # resumed
    same = {**identity, "data_info": {"seed": 0, "split_fractions": (0.8, 0.2)}}
    no_term = BandLoss(flux_error="pixel")
    assert fit(tiny_model(), train, resume="auto", data_identity=same, loss=no_term, **kw).steps == 4
    with pytest.raises(TypeError, match="data_identity must be a dict or None, got list"):
        fit(tiny_model(), train, data_identity=[1], epochs=1, **FAST)


def test_average_epochs_is_the_mean_of_the_last_epochs_weights(data, reference, tmp_path):
    train, val = data
    kw = dict(val_data=val, epochs=3, crop_size=16, **FAST)
    model = tiny_model()
    result = fit(model, train, average_epochs=2, checkpoint_dir=tmp_path, keep_checkpoints=0, **kw)
    # Averaging only reads the weights: training itself is the uninterrupted reference run.
    assert _equal_states(model.state_dict(), reference[0])
    assert _strip_time(result.history) == _strip_time(reference[1].history)
    ends = [load_checkpoint(tmp_path / f"checkpoint-{4 * epoch:08d}.safetensors").model_state for epoch in (2, 3)]
    for key, value in result.average_state.items():
        torch.testing.assert_close(value, (ends[0][key] + ends[1][key]) / 2)
    assert result.averaged_epochs == 2
    assert not _equal_states(result.average_state, model.state_dict())
    averaged = tiny_model()
    averaged.load_state_dict(result.average_state)
    assert evaluate(averaged, val)["ssim"] == pytest.approx(result.average_metrics["ssim"], abs=1e-6)
    assert reference[1].average_state is None and reference[1].averaged_epochs == 0


def test_average_epochs_survives_a_resume(data, tmp_path):
    train, val = data
    kw = dict(val_data=val, epochs=3, crop_size=16, average_epochs=2, **FAST)
    whole = fit(tiny_model(), train, **kw)
    first = fit(tiny_model(), train, max_steps=10, checkpoint_dir=tmp_path, checkpoint_every=5, **kw)
    assert first.averaged_epochs == 1 and first.average_metrics is None  # stopped in the last epoch
    assert load_checkpoint(tmp_path).average_state is not None
    resumed = fit(tiny_model(), train, resume="auto", checkpoint_dir=tmp_path, **kw)
    assert resumed.averaged_epochs == 2
    assert _equal_states(resumed.average_state, whole.average_state)
    assert resumed.average_metrics == pytest.approx(whole.average_metrics)


KILL_SCRIPT = HELPERS + textwrap.dedent(
    """
    import sys, time
    from bandsynth.nn.training import fit
    torch.set_num_threads(int(sys.argv[2]))
    fit(tiny_model(), smooth_pairs(16, 0), val_data=smooth_pairs(4, 1), epochs=3, crop_size=16,
        batch_size=4, lr=5e-3, bf16=False, channels_last=False, progress=False, distributed=False,
        checkpoint_dir=sys.argv[1], checkpoint_every=1, on_step=lambda info: time.sleep(0.4))
    """
)


def test_resume_after_sigkill_matches_uninterrupted(data, reference, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    ckpt_dir = tmp_path / "ckpt"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(ckpt_dir), str(torch.get_num_threads())],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            found = latest_checkpoint(ckpt_dir)
            if found is not None and int(found.stem.split("-")[1]) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(ckpt_dir).step
    assert 2 <= killed_at < 12
    train, val = data
    model = tiny_model()
    fit(model, train, val_data=val, epochs=3, crop_size=16, checkpoint_dir=ckpt_dir, resume="auto", **FAST)
    assert _equal_states(model.state_dict(), reference[0])


DDP_SCRIPT = HELPERS + textwrap.dedent(
    """
    import json, os, sys
    from safetensors.torch import save_file
    from bandsynth.nn.training import fit
    out = sys.argv[1]
    rank = int(os.environ["RANK"])
    model = tiny_model()
    result = fit(model, smooth_pairs(16, 0), val_data=smooth_pairs(4, 1), epochs=4, batch_size=2,
                 lr=5e-3, crop_size=16, bf16=False, channels_last=False, progress=False,
                 checkpoint_dir=os.path.join(out, "ckpt"))
    save_file({k: v.contiguous() for k, v in result.best_state.items()}, os.path.join(out, f"best{rank}.safetensors"))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, f"final{rank}.safetensors"))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"world_size": result.world_size, "history": result.history, "steps": result.steps}, f)
    """
)


def test_ddp_two_cpu_processes(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += [str(script), str(tmp_path)]
    run = subprocess.run(cmd, env={**ENV, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world_size"] == 2 for r in reports)
    # 16 images / 2 ranks / batch 2 = 4 steps per epoch
    assert reports[0]["steps"] == 16
    assert _strip_time(reports[0]["history"]) == _strip_time(reports[1]["history"])
    history = reports[0]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    final = [load_file(tmp_path / f"final{r}.safetensors") for r in (0, 1)]
    assert _equal_states(final[0], final[1])
    assert _equal_states(load_file(tmp_path / "best0.safetensors"), load_file(tmp_path / "best1.safetensors"))
    # one set of checkpoints (rank 0's), holding the final weights
    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert ckpt.path.name == "checkpoint-00000016.safetensors"
    assert _equal_states(ckpt.model_state, final[0])


def test_checkpoint_round_trip(tmp_path):
    model = tiny_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    model(torch.rand(2, 2, 16, 16)).mean.sum().backward()
    optimizer.step()
    path = save_checkpoint(
        tmp_path / "c.safetensors", model=model, optimizer=optimizer, step=7, epoch=2, step_in_epoch=1,
        history=[{"epoch": 0, "train_loss": 0.1}], best_state=model.state_dict(), meta={"note": "x"},
    )  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temporary file left
    expected_rng = torch.rand(3)
    torch.set_rng_state(load_checkpoint(path).rng_state["torch"])
    assert torch.equal(torch.rand(3), expected_rng)
    ckpt = load_checkpoint(path)
    assert (ckpt.step, ckpt.epoch, ckpt.step_in_epoch) == (7, 2, 1)
    assert ckpt.history == [{"epoch": 0, "train_loss": 0.1}]
    assert ckpt.meta["note"] == "x" and ckpt.meta["model_config"] == model.config
    assert _equal_states(ckpt.model_state, model.state_dict())
    assert _equal_states(ckpt.best_state, model.state_dict())
    restored = torch.optim.Adam(tiny_model().parameters(), lr=5.0)
    restored.load_state_dict(ckpt.optimizer_state)
    assert restored.param_groups[0]["lr"] == 1e-3 and restored.param_groups[0]["betas"] == (0.5, 0.999)
    for a, b in zip(optimizer.state.values(), restored.state.values()):
        assert torch.equal(a["exp_avg_sq"], b["exp_avg_sq"]) and torch.equal(a["step"], b["step"])


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors checkpoint"):
        load_checkpoint(bogus)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="not a bandsynth checkpoint"):
        load_checkpoint(tmp_path / "plain.safetensors")
    with pytest.raises(TypeError, match="JSON-serialisable"):
        save_checkpoint(tmp_path / "x.safetensors", model={"w": torch.zeros(1)}, meta={"bad": object()})


def test_checkpoint_pruning_and_stale_temporaries(data, tmp_path):
    stale = tmp_path / ".checkpoint-00000001.safetensors.tmp-999"
    stale.write_bytes(b"partial")
    train, _ = data
    fit(tiny_model(), train, epochs=2, checkpoint_dir=tmp_path, checkpoint_every=1, keep_checkpoints=2, **FAST)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["best.safetensors", "checkpoint-00000007.safetensors", "checkpoint-00000008.safetensors"]
    with pytest.warns(UserWarning, match="already holds checkpoints"):
        fit(tiny_model(), train, epochs=1, max_steps=1, checkpoint_dir=tmp_path, **FAST)
    with pytest.warns(UserWarning, match=r"batch_size 4 -> 8"):
        fit(tiny_model(), train, epochs=2, checkpoint_dir=tmp_path, resume=tmp_path / "checkpoint-00000008.safetensors",
            **{**FAST, "batch_size": 8})  # fmt: skip


def test_a_nan_target_pixel_trains_at_weight_zero_and_is_named_otherwise():
    # One NaN pixel of a target, weighted 0, stopped training with "training loss is not finite at step 4",
    # naming nothing.
    x, y = smooth_pairs(8, 2).tensors
    y = y.clone()
    y[0, 0, 10, 10] = float("nan")
    weight = torch.isfinite(y).float()
    result = fit(tiny_model(), TensorDataset(x, y, weight), val_data=TensorDataset(x, y, weight), epochs=1, **FAST)
    assert all(math.isfinite(v) for v in result.history[0].values())
    with pytest.raises(FloatingPointError, match=r"training loss is not finite at step \d+ \(epoch 0\): the "
                                                 r"batch's targets hold non-finite pixels of non-zero weight"):
        fit(tiny_model(), TensorDataset(x, y), epochs=1, **{**FAST, "batch_size": 8})


def test_fit_bf16_channels_last_and_weights(tmp_path):
    x = smooth_pairs(8, 2).tensors[0]
    y = 0.5 * x[:, :1]
    y[:, :, :4] = 100.0  # garbage rows, masked by a zero weight
    weight = torch.ones(8, 1, 32, 32)
    weight[:, :, :4] = 0
    model = tiny_model()
    result = fit(model, TensorDataset(x, y, weight), epochs=2, **{**FAST, "bf16": True, "channels_last": True})
    assert result.bf16 and result.channels_last
    assert model.head[-1].weight.is_contiguous(memory_format=torch.channels_last)
    # the garbage alone would add 100 * 4 / 32 = 12.5 to the L1 term if it were not masked
    assert all(0 < r["train_l1"] < 1 for r in result.history)
    assert evaluate(model, TensorDataset(x, y, weight))["l1"] < 1 < 10 < evaluate(model, TensorDataset(x, y))["l1"]


def test_augment_is_deterministic_and_geometric():
    x = torch.arange(2 * 2 * 8 * 8, dtype=torch.float32).reshape(2, 2, 8, 8)
    y, w = x[:, :1] * 2, torch.ones(2, 1, 8, 8)

    def run():
        return _augment(x, y, w, crop_size=4, flips=True, generator=torch.Generator().manual_seed(3))

    a, b = run(), run()
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert a[0].shape == (2, 2, 4, 4) and a[1].shape == (2, 1, 4, 4)
    assert torch.equal(a[1], a[0][:, :1] * 2)  # input and target transformed alike
    with pytest.raises(ValueError, match="crop_size 16 exceeds the training images"):
        _augment(x, y, None, crop_size=16, flips=False, generator=torch.Generator())


class _Stream(IterableDataset):
    def __iter__(self):
        return iter([])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"epochs": 0}, ValueError, "epochs must be >= 1"),
        ({"epochs": 1, "crop_size": 15}, ValueError, "crop_size 15 must be a multiple of 2\\*\\*n_down = 2"),
        ({"epochs": 1, "lr_schedule": "step"}, ValueError, "lr_schedule must be one of"),
        ({"epochs": 1, "lr": -1.0}, ValueError, "lr must be a positive number"),
        ({"epochs": 1, "checkpoint_every": 5}, ValueError, "checkpoint_every needs a checkpoint_dir"),
        ({"epochs": 1, "resume": "auto"}, ValueError, "resume='auto' needs a checkpoint_dir"),
        ({"epochs": 1, "bf16": "yes"}, TypeError, "bf16 must be True, False or 'auto'"),
        ({"epochs": 1, "loss": torch.nn.L1Loss()}, TypeError, "loss must be a bandsynth.nn.losses.BandLoss"),
        ({"epochs": 2, "average_epochs": 3}, ValueError, "average_epochs \\(3\\) must be at most epochs \\(2\\)"),
        ({"epochs": 2, "average_epochs": 0}, ValueError, "average_epochs must be >= 1"),
    ],
)
def test_fit_validation(data, kwargs, error, match):
    options = {**FAST, **kwargs}
    with pytest.raises(error, match=match):
        fit(tiny_model(), data[0], **options)


def test_fit_data_validation():
    with pytest.raises(TypeError, match="train_data must be a map-style torch Dataset"):
        fit(tiny_model(), _Stream(), epochs=1, **FAST)
    bad = TensorDataset(torch.rand(4, 2, 16, 16), torch.rand(4, 2, 16, 16))
    with pytest.raises(ValueError, match="does not match targets"):
        fit(tiny_model(), bad, epochs=1, **FAST)


def test_evaluate_perfect_prediction_scores_one():
    model = build_generator("tiny", 1, scale_head=False, norm="none")
    data = smooth_pairs(3, 5)
    targets = torch.stack([model(x[None, :1]).mean[0].detach() for x, _ in data])
    perfect = TensorDataset(data.tensors[0][:, :1], targets)
    metrics = evaluate(model, perfect, loss=BandLoss())
    assert metrics["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["l1"] < 1e-6 and metrics["n_images"] == 3 and "nll" not in metrics


def test_progress_bar_and_logging(data, capsys, caplog):
    with caplog.at_level("INFO", logger="bandsynth.nn.training"):
        fit(tiny_model(), data[0], epochs=1, log_every=2, **{**FAST, "progress": True})
    assert "training" in capsys.readouterr().err
    assert any(r.getMessage().startswith("step 2/4 epoch 0 loss") for r in caplog.records)
    assert any(r.getMessage().startswith("epoch 0 done: epoch 0, step 4") for r in caplog.records)
