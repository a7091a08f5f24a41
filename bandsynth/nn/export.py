"""Export of a network to ONNX, for ONNX Runtime or another inference engine."""

from __future__ import annotations

import copy
import inspect
import warnings
from pathlib import Path

import torch

from .._io import atomic_path

__all__ = ["export_onnx"]


class _OnnxGraph(torch.nn.Module):
    """The network with plain tensor outputs, for the ONNX exporter."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net(x)
        return out.mean if out.log_scale is None else (out.mean, out.log_scale)


def export_onnx(model, path, *, height=128, width=128, opset=17):
    """Write ``model`` (a `~bandsynth.nn.network.TranslationNet`) to an ONNX file.

    See `bandsynth.Translator.export_onnx` for the graph's inputs and outputs.

    Parameters
    ----------
    model : torch.nn.Module
    path : str or os.PathLike
    height, width : int
        Size of the example input the network is traced with.
    opset : int
        ONNX operator set version.

    Returns
    -------
    pathlib.Path
    """
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
    except ImportError:
        raise ImportError(
            "Translator.export_onnx needs the onnx package: pip install onnx onnxruntime "
            "(or pip install 'bandsynth[onnx]')"
        ) from None
    multiple, minimum = 2**model.n_down, model.minimum_input_size
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"export_onnx {name} must be an int, got {type(value).__name__}")
        if value < minimum or value % multiple:
            raise ValueError(
                f"export_onnx {name} must be a multiple of {multiple} of at least {minimum} pixels, got {value}"
            )
    if not isinstance(opset, int) or isinstance(opset, bool):
        raise TypeError(f"export_onnx opset must be an int, got {type(opset).__name__}")
    path = Path(path)
    # A float32 copy on the CPU in the standard memory format: the translator's own
    # module stays as it is (device, channels-last after bf16 predictions).
    net = _OnnxGraph(copy.deepcopy(model).to("cpu", torch.float32).to(memory_format=torch.contiguous_format))
    outputs = ["mean"] if model.scale_head is None else ["mean", "log_scale"]
    axes = {name: {0: "batch", 2: "height", 3: "width"} for name in ("input", *outputs)}
    example = torch.zeros(1, model.in_channels, height, width)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # The shape checks of the network's forward are constant for the traced sizes;
        # the legacy-exporter and constant-folding notices are about torch, not the model.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message=r"(?s).*(Constant folding|ONNX export mode is set)")
        # The TorchScript exporter: it keeps ``opset``, takes dynamic sizes as they are
        # and needs no onnxscript; torch's newer dynamo exporter (the default since
        # torch 2.9) measured 10x slower here and cannot write Pad below opset 18.
        legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
        torch.onnx.export(
            net.eval(), (example,), str(tmp), input_names=["input"], output_names=outputs,
            dynamic_axes=axes, opset_version=opset, do_constant_folding=True, **legacy,
        )
    return path

