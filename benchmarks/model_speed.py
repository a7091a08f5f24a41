"""Generator speed: inference and training images per second beside the machine's matmul peak.

Run from the repository root::

    python benchmarks/model_speed.py                 # paper and small presets, a few minutes on 2 cores
    python benchmarks/model_speed.py --presets small --train-steps 2

For each preset it measures inference throughput on 128x128 images in batches of
8 in four modes (fp32 / bf16 autocast, each with and without channels-last),
and training throughput of `bandsynth.training.fit` on 64- and 128-pixel crops
in fp32, bf16 and bf16+channels-last.  Achieved GFLOP/s come from counting the
convolutions' multiply-adds (training ~ 3x the forward pass); they are set
beside the GFLOP/s of one large fp32 and bf16 ``torch.mm`` measured in the same
run, the practical peak of this machine.  Throughputs come from median batch
or step times, which are robust to short bursts of other work on a shared
machine; sustained load still lowers them.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch import nn
from torch.utils.data import TensorDataset

from bandsynth.models.generator import build_generator, count_parameters
from bandsynth.training import bf16_supported, fit, run_generator


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


def time_inference(model, x, *, bf16, channels_last, seconds):
    """Images per second from the median batch time (robust to other jobs on the machine)."""
    run_generator(model, x, bf16=bf16, channels_last=channels_last)  # warm-up (oneDNN primitives)
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t0 = time.perf_counter()
        run_generator(model, x, bf16=bf16, channels_last=channels_last)
        times.append(time.perf_counter() - t0)
    return x.shape[0] / statistics.median(times)


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
    args = parser.parse_args(argv)

    bf16_ok = bf16_supported("cpu")
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, native bf16: {bf16_ok}")
    peak32 = matmul_gflops(torch.float32)
    peak16 = matmul_gflops(torch.bfloat16)
    print(f"matmul peak (2048^3 torch.mm): fp32 {peak32:.0f} GFLOP/s, bf16 {peak16:.0f} GFLOP/s\n")

    print(f"Inference, {args.size}x{args.size}, batch {args.batch}")
    print(f"{'preset':<7} {'params':>9} {'GFLOP/img':>9} {'mode':<11} {'img/s':>8} {'GFLOP/s':>8} {'% mm peak':>9}")
    for preset in args.presets:
        torch.manual_seed(0)
        model = build_generator(preset, args.in_channels)
        flops = forward_flops(model, args.in_channels, args.size)
        x = torch.rand(args.batch, args.in_channels, args.size, args.size)
        for bf16 in (False, True):
            for cl in (False, True):
                model = build_generator(preset, args.in_channels)  # fresh memory format
                rate = time_inference(model, x, bf16=bf16, channels_last=cl, seconds=args.seconds)
                mode = ("bf16" if bf16 else "fp32") + ("+CL" if cl else "")
                achieved = rate * flops / 1e9
                peak = peak16 if bf16 else peak32
                print(f"{preset:<7} {count_parameters(model):>9} {flops / 1e9:>9.2f} {mode:<11} "
                      f"{rate:>8.2f} {achieved:>8.0f} {100 * achieved / peak:>8.0f}%")

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
