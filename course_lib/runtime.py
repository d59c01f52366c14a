"""Deployment with a real int8 runtime: ONNX Runtime's static QDQ quantization.

Fake quantization shows what fewer bits cost in accuracy, but it still computes in float. To be
*faster*, the arithmetic itself must run on 8-bit integers. Here the float model is exported to
ONNX, ONNX Runtime quantizes it statically (weights per channel to int8, activations to uint8
with ranges calibrated on real images, in the "QDQ" format), and its graph optimizer fuses each
QuantizeLinear/DequantizeLinear pair around a Conv or Gemm into an integer kernel (``QLinearConv``,
``QGemm``...). :func:`int8_op_counts` reads the optimized graph to prove those kernels run.

Integer kernels win where the CPU multiplies int8 fast: x86 with AVX-512 VNNI or AVX-VNNI
(``vpdpbusd``: 64 int8 multiply-adds per instruction), Arm with the dot-product extension. Without
them, or for layers too small to amortise quantizing their inputs, int8 can be no faster.
Taught in ``notebooks/02_quantization.ipynb``.
"""

from __future__ import annotations

import copy
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import ImageSplit
from .models import IMAGE_SHAPE

INT8_OPS = ("QLinearConv", "QLinearMatMul", "QGemm", "MatMulInteger", "ConvInteger",
            "DynamicQuantizeMatMul", "MatMulIntegerToFloat")


def cpu_int8_features() -> list[str]:
    """The CPU's int8 dot-product features, from ``/proc/cpuinfo`` (Linux; empty elsewhere)."""
    wanted = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        return []
    return [w for w in wanted if w in flags]


def export_onnx(model: nn.Module, path: Path | str, input_shape: tuple[int, ...] = IMAGE_SHAPE) -> Path:
    """Export ``model`` (eval mode, CPU copy) to ONNX with a dynamic batch dimension."""
    path = Path(path)
    cpu_model = copy.deepcopy(model).cpu().eval()         # the given model is left as it was
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(cpu_model, (torch.zeros(1, *input_shape),), str(path), dynamo=False,
                          input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    return path


def quantize_onnx_int8(fp32_path: Path | str, int8_path: Path | str, calibration: ImageSplit,
                       n: int = 1000, per_channel: bool = True) -> Path:
    """ONNX Runtime static quantization in QDQ format: int8 weights (per channel), uint8
    activations calibrated (min-max) on the first ``n`` images of ``calibration``, after ONNX
    Runtime's recommended pre-processing (shape inference, graph optimization)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    images = calibration.images[:n].cpu().numpy()

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.chunks = iter([{"x": images[i:i + 100]} for i in range(0, len(images), 100)])

        def get_next(self):
            return next(self.chunks, None)

    prepared = Path(int8_path).with_suffix(".prepared.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quant_pre_process(str(fp32_path), str(prepared))     # shape inference and graph cleanup first
        quantize_static(str(prepared), str(int8_path), Batches(), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
    return Path(int8_path)


def ort_session(path: Path | str, threads: int | None = None, optimized_path: Path | str | None = None):
    """An ONNX Runtime CPU session with all graph optimizations; ``optimized_path`` saves the
    optimized graph (what actually runs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Idle worker threads would otherwise spin for a while after each call, stealing the cores
    # from whatever runs next (another model timed in the same loop).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def int8_op_counts(optimized_path: Path | str) -> Counter:
    """How many nodes of each integer-kernel type the optimized graph holds."""
    import onnx

    graph = onnx.load(str(optimized_path)).graph
    return Counter(node.op_type for node in graph.node if node.op_type in INT8_OPS)


class OrtModel(nn.Module):
    """An ONNX Runtime session behind the ``nn.Module`` call interface, so the course's
    evaluation and latency tools (``train.evaluate``, ``measure.compare_latency``) time and
    score it exactly like a PyTorch model. CPU tensors in, CPU tensors out; no training."""

    def __init__(self, session):
        super().__init__()
        self.session = session
        self.register_buffer("anchor", torch.zeros(1))   # gives the module a device (CPU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.session.run(None, {"x": np.ascontiguousarray(x.detach().cpu().numpy())})[0]
        return torch.from_numpy(logits)


def deploy_int8(model: nn.Module, calibration: ImageSplit, folder: Path | str,
                threads: int | None = None) -> tuple[OrtModel, OrtModel, Counter]:
    """Export ``model``, quantize it to int8 with ONNX Runtime, and return
    ``(fp32 runtime model, int8 runtime model, int8 kernel counts of the optimized graph)``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = export_onnx(model, folder / "model_fp32.onnx")
    int8 = quantize_onnx_int8(fp32, folder / "model_int8.onnx", calibration)
    optimized = folder / "model_int8_optimized.onnx"
    fp32_model = OrtModel(ort_session(fp32, threads))
    int8_model = OrtModel(ort_session(int8, threads, optimized))
    return fp32_model, int8_model, int8_op_counts(optimized)
