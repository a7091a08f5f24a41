"""Generator speed: inference and training images per second beside the machine's matmul peak.

Run from the repository root::

    python benchmarks/model_speed.py                 # paper and small presets, ~10 minutes on 2 cores
    python benchmarks/model_speed.py --presets small --seconds 2 --no-training   # a quick look

For each preset it measures inference throughput on 128x128 images in batches of
8, model only (`bandsynth.training.run_generator`):

* eager PyTorch in four modes: fp32 / bf16 autocast, each with and without
  channels-last;
* ``torch.compile`` (inductor, one static shape) with bf16 autocast and
  channels-last, with the time the first call took to compile;
* ONNX Runtime in fp32 on the graph of `Translator.export_onnx
  <bandsynth.Translator.export_onnx>` (if onnx and onnxruntime are installed),
  with as many intra-op threads as torch uses;

then `Translator.predict <bandsynth.Translator.predict>` with its default options
(uncertainty off and on; ideal-mode mock galaxies, so no Monte Carlo draws) on an
untrained model of the preset saved to a temporary folder, in the steady state of
a long run: batch shapes that ``compile="auto"`` would compile after 256 images
are compiled in the warm-up.  Its ratio to eager fp32 is printed.

Then training throughput of `bandsynth.training.fit` on 64- and 128-pixel crops
in fp32, bf16 and bf16+channels-last (``--no-training`` skips it).  Achieved
GFLOP/s come from counting the convolutions' multiply-adds (training ~ 3x the
forward pass); they are set beside the GFLOP/s of one large fp32 and bf16
``torch.mm`` measured in the same run, the practical peak of this machine.
Throughputs come from median batch or step times, which are robust to short
bursts of other work on a shared machine; sustained load still lowers them.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

import bandsynth.translator as translator_module
from bandsynth import Translator
from bandsynth.datasets import make_galaxy
from bandsynth.models.generator import build_generator, count_parameters
from bandsynth.models.zoo import ModelCard
from bandsynth.training import bf16_supported, fit, run_generator

# Input bands of the Translator rows (the first --in-channels of them) and the output.
BANDS, OUTPUT = ("NUV", "Ks", "u", "z", "g", "i"), "r"


def matmul_gflops(dtype, *, n=2048, seconds=1.5):
    """GFLOP/s of the fastest of repeated n x n x n matrix products."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.mm(a, b)  # warm-up
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times) / 1e9


def forward_flops(model, in_channels, size):
    """Floating-point operations (2 x multiply-adds) of one forward pass on one image."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1] // module.groups
        if isinstance(module, nn.ConvTranspose2d):
            n_in = inputs[0].shape[-2] * inputs[0].shape[-1]
            total += 2 * module.in_channels * n_in * module.out_channels * k
        else:
            n_out = output.shape[-2] * output.shape[-1]
            total += 2 * module.out_channels * n_out * module.in_channels * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.inference_mode():
        model(torch.zeros(1, in_channels, size, size))
    for h in handles:
        h.remove()
    return total


def median_rate(step, n_images, seconds):
    """Images per second from the median time of ``step()`` (robust to other jobs on the machine)."""
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return n_images / statistics.median(times)


def time_inference(model, x, *, bf16, channels_last, seconds, pad=True):
    """Images per second of `run_generator`, and the seconds of the first (warm-up) call."""
    t0 = time.perf_counter()
    run_generator(model, x, bf16=bf16, channels_last=channels_last, pad=pad)  # oneDNN primitives, compiling
    first = time.perf_counter() - t0
    step = lambda: run_generator(model, x, bf16=bf16, channels_last=channels_last, pad=pad)  # noqa: E731
    return median_rate(step, x.shape[0], seconds), first


def time_onnxruntime(path, x, *, seconds):
    """Images per second of an ONNX Runtime CPU session with torch's number of threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"input": x.numpy()}
    session.run(None, feed)  # warm-up
    return median_rate(lambda: session.run(None, feed), x.shape[0], seconds)


def saved_translator(folder, preset, in_channels):
    """An untrained translator of ``preset`` saved to ``folder`` and loaded back (speed needs no weights)."""
    inputs = BANDS[:in_channels]
    card = ModelCard(name=f"{preset}_bench", inputs=inputs, output=OUTPUT, preset=preset, architecture={},
                     scaling={b: {"softening": 0.02, "maximum": 1.0} for b in (*inputs, OUTPUT)},
                     pixel_scale=0.262)
    torch.manual_seed(0)
    stem = Path(folder) / card.name
    Translator(build_generator(preset, in_channels, 1), card).save(stem)
    return Translator.load(stem)


def time_predict(translator, stacks, *, uncertainty, seconds):
    """Images per second of ``predict`` with default options, after a steady-state warm-up.

    The warm-up lets ``compile="auto"`` compile what it would compile after 256 images
    of a shape, so the timing is that of a long run (returns whether it compiled).
    """
    saved = translator_module._COMPILE_MIN_IMAGES
    translator_module._COMPILE_MIN_IMAGES = 0
    try:
        translator.predict(stacks, uncertainty=uncertainty)
    finally:
        translator_module._COMPILE_MIN_IMAGES = saved
    rate = median_rate(lambda: translator.predict(stacks, uncertainty=uncertainty), len(stacks), seconds)
    return rate, bool(translator._compiled_shapes)


def time_training(preset, in_channels, crop, *, batch, steps, bf16, channels_last):
    """Images per second of `fit` from the median time between optimizer steps."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch * (steps + 2), in_channels, crop, crop, generator=g)
    data = TensorDataset(x, x[:, :1] * 0.5 + x[:, 1:2] ** 2)
    torch.manual_seed(0)
    model = build_generator(preset, in_channels)
    stamps = []
    fit(model, data, epochs=1, batch_size=batch, bf16=bf16, channels_last=channels_last, progress=False,
        distributed=False, max_steps=steps + 2, on_step=lambda info: stamps.append(time.perf_counter()))
    # The first step builds oneDNN primitives: time the later ones.
    return batch / statistics.median(b - a for a, b in zip(stamps[1:], stamps[2:]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["paper", "small"])
    parser.add_argument("--size", type=int, default=128, help="inference image side")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--in-channels", type=int, default=2)
    parser.add_argument("--crops", type=int, nargs="+", default=[64, 128], help="training crop sides")
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timing per inference mode")
    parser.add_argument("--train-steps", type=int, default=4)
    parser.add_argument("--no-training", action="store_true", help="skip the training measurements")
    args = parser.parse_args(argv)
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError:
        onnxruntime = None

    bf16_ok = bf16_supported("cpu")
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, native bf16: {bf16_ok}, onnxruntime "
          f"{onnxruntime.__version__ if onnxruntime else 'not installed'}")
    peak32 = matmul_gflops(torch.float32)
    peak16 = matmul_gflops(torch.bfloat16)
    print(f"matmul peak (2048^3 torch.mm): fp32 {peak32:.0f} GFLOP/s, bf16 {peak16:.0f} GFLOP/s\n")

    print(f"Inference, {args.size}x{args.size}, batch {args.batch}")
    print(f"{'preset':<7} {'params':>9} {'GFLOP/img':>9} {'mode':<21} {'img/s':>8} {'GFLOP/s':>8} "
          f"{'% mm peak':>9}  note")
    for preset in args.presets:
        torch.manual_seed(0)
        model = build_generator(preset, args.in_channels)
        flops = forward_flops(model, args.in_channels, args.size)
        x = torch.rand(args.batch, args.in_channels, args.size, args.size)

        def row(mode, rate, peak, note=""):
            if rate is None:
                print(f"{preset:<7} {count_parameters(model):>9} {flops / 1e9:>9.2f} {mode:<21} {'-':>8} "
                      f"{'-':>8} {'-':>9}  {note}")
                return
            achieved = rate * flops / 1e9
            print(f"{preset:<7} {count_parameters(model):>9} {flops / 1e9:>9.2f} {mode:<21} {rate:>8.2f} "
                  f"{achieved:>8.0f} {100 * achieved / peak:>8.0f}%  {note}", flush=True)

        eager = {}
        for bf16 in (False, True):
            for cl in (False, True):
                model = build_generator(preset, args.in_channels)  # fresh memory format
                rate, _ = time_inference(model, x, bf16=bf16, channels_last=cl, seconds=args.seconds)
                mode = ("bf16" if bf16 else "fp32") + ("+CL" if cl else "")
                eager[mode] = rate
                row(f"eager {mode}", rate, peak16 if bf16 else peak32)
        model = build_generator(preset, args.in_channels)
        try:
            # 128 x 128 needs no padding: the compiled module goes in as it is.
            compiled = torch.compile(model, dynamic=False)
            rate, first = time_inference(compiled, x, bf16=True, channels_last=True, seconds=args.seconds,
                                         pad=False)
            row("compile bf16+CL", rate, peak16, f"first call (compiling) {first:.1f} s")
        except Exception as err:  # no C++ compiler, inductor error
            row("compile bf16+CL", None, peak16, f"failed: {type(err).__name__}: {str(err).splitlines()[0]}")
        with tempfile.TemporaryDirectory(prefix="bandsynth-speed-") as folder:
            translator = saved_translator(folder, preset, args.in_channels)
            if onnxruntime is not None:
                path = translator.export_onnx(Path(folder) / "model.onnx", height=args.size, width=args.size)
                rate = time_onnxruntime(path, x, seconds=args.seconds)
                row("onnxruntime fp32", rate, peak32, f"{torch.get_num_threads()} intra-op threads")
            else:
                row("onnxruntime fp32", None, peak32, "onnx/onnxruntime not installed")
            stacks = [make_galaxy(1000 + i, bands=list(translator.inputs), size=args.size)
                      for i in range(args.batch)]
            auto_bf16 = bf16_supported(next(translator.model.parameters()).device)
            for uncertainty in (False, True):
                rate, compiled_now = time_predict(translator, stacks, uncertainty=uncertainty,
                                                  seconds=args.seconds)
                note = (f"{'bf16' if auto_bf16 else 'fp32'}, {'compiled' if compiled_now else 'eager'}; "
                        f"{rate / eager['fp32']:.2f}x eager fp32")
                row(f"predict uncert. {'on' if uncertainty else 'off'}", rate, peak16 if auto_bf16 else peak32,
                    note)

    if args.no_training:
        return
    print(f"\nTraining (fit, batch {args.batch}, median of {args.train_steps} steps; GFLOP/s ~ 3x forward)")
    print(f"{'preset':<7} {'crop':>5} {'mode':<11} {'img/s':>8} {'GFLOP/s':>8}")
    for preset in args.presets:
        model = build_generator(preset, args.in_channels)
        for crop in args.crops:
            flops = forward_flops(model, args.in_channels, crop)
            for bf16, cl in ((False, False), (True, False), (True, True)):
                rate = time_training(preset, args.in_channels, crop, batch=args.batch,
                                     steps=args.train_steps, bf16=bf16, channels_last=cl)
                mode = ("bf16" if bf16 else "fp32") + ("+CL" if cl else "")
                print(f"{preset:<7} {crop:>5} {mode:<11} {rate:>8.2f} {3 * rate * flops / 1e9:>8.0f}")


if __name__ == "__main__":
    main()
