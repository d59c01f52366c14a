"""The 4-bit model on a real runtime: ONNX Runtime's ``MatMulNBits`` kernel.

ONNX Runtime's contrib operator ``com.microsoft.MatMulNBits`` multiplies float activations by a weight
stored as packed low-bit codes, block-quantized along the input axis, dequantized inside the kernel as
``(code - zero_point) * scale``: B is uint8 (N, K / block, block * bits / 8), codes packed low-first, one
scale per output and block (N * K / block), zero-points packed the same way, each output's row padded to
whole bytes. That is exactly :mod:`course_lib.language.weights`'s group-wise format with the group as the
block (a power of two, at least 16): the codes are written as they are, not quantized again.

:func:`export_int4` exports the model with PyTorch's ONNX exporter, then swaps each block linear's
``MatMul`` for a ``MatMulNBits`` that holds that layer's packed codes, scales and zero-points.
"""

from __future__ import annotations

import copy
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checks import check_int
from ..runtime import check_file_path
from .gpt import GPT
from .weights import GroupQuantizedLinear, pack_codes

__all__ = ["export_fp32", "export_int4", "matmulnbits_inputs", "run_session", "interleaved_seconds"]


def _export(model: GPT, path: Path) -> None:
    x = torch.zeros(1, model.config.block_size, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["idx"],
                          output_names=["logits"], dynamic_axes={"idx": {0: "batch", 1: "length"},
                                                                 "logits": {0: "batch", 1: "length"}})


def export_fp32(model: GPT, path: Path | str) -> Path:
    """Export the float model to ONNX: input ``idx`` (batch, length) int64, output ``logits``."""
    path = check_file_path(path, "path")
    _export(copy.deepcopy(model).cpu().eval(), path)
    return path


def matmulnbits_inputs(layer: GroupQuantizedLinear) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 4-bit layer's B, scales and zero-points as ``MatMulNBits`` reads them."""
    if layer.bits != 4:
        raise ValueError(f"MatMulNBits is used here with 4-bit layers, got {layer.bits} bits")
    n, k = layer.shape
    g = layer.group_size
    blocks = k // g
    codes = layer.codes()
    b = np.stack([pack_codes(codes[row], 4).numpy() for row in range(n)]).reshape(n, blocks, g // 2)
    zeros = layer.zero_points()
    zero_points = np.concatenate([pack_codes(zeros[row], 4).numpy() for row in range(n)])
    return b, layer.scales.float().numpy().reshape(-1), zero_points


def export_int4(model: GPT, path: Path | str) -> Path:
    """Export a model whose block linears are 4-bit :class:`GroupQuantizedLinear` s (groups a power of
    two, >= 16) with each of them as a ``MatMulNBits`` node. Returns ``path``.

    Raises:
        ValueError: a block linear that is not 4-bit group-quantized with such groups.
    """
    import onnx
    from onnx import helper, numpy_helper

    path = check_file_path(path, "path")
    layers = {name: m for name, m in model.named_modules() if isinstance(m, GroupQuantizedLinear)}
    if not layers:
        raise ValueError("model has no GroupQuantizedLinear layer: quantize it to 4 bits first")
    for name, layer in layers.items():
        g = layer.group_size
        if layer.bits != 4 or g < 16 or g & (g - 1) or layer.input_scale is not None:
            raise ValueError(f"layer {name!r}: MatMulNBits needs 4-bit codes in groups of a power of two >= 16 "
                             f"and no input scales, got {layer.bits} bits in groups of {g}")
    plain = copy.deepcopy(model).cpu().eval()
    for name, layer in layers.items():           # the same weights as plain Linears, for the exporter
        linear = nn.Linear(layer.shape[1], layer.shape[0], bias=False)
        linear.weight.data.copy_(layer.weight_dequantized)
        plain.set_submodule(name, linear)
    _export(plain, path)
    graph_model = onnx.load(str(path))
    graph = graph_model.graph
    initializers = {init.name: init for init in graph.initializer}
    # Each layer's MatMul multiplies by its transposed weight, an initializer: found by its values.
    wanted = {name: layer.weight_dequantized.T.contiguous().numpy() for name, layer in layers.items()}
    replaced = 0
    for i, node in enumerate(list(graph.node)):
        if node.op_type != "MatMul" or node.input[1] not in initializers:
            continue
        value = numpy_helper.to_array(initializers[node.input[1]])
        match = [name for name, w in wanted.items() if w.shape == value.shape and np.array_equal(w, value)]
        if not match:
            continue
        layer = layers[match[0]]
        b, scales, zero_points = matmulnbits_inputs(layer)
        prefix = match[0].replace(".", "_")
        graph.initializer.extend([numpy_helper.from_array(b, f"{prefix}_B"),
                                  numpy_helper.from_array(scales, f"{prefix}_scales"),
                                  numpy_helper.from_array(zero_points, f"{prefix}_zero_points")])
        graph.node.remove(node)
        graph.node.insert(i, helper.make_node(
            "MatMulNBits", [node.input[0], f"{prefix}_B", f"{prefix}_scales", f"{prefix}_zero_points"],
            list(node.output), name=f"{prefix}_MatMulNBits", domain="com.microsoft",
            K=layer.shape[1], N=layer.shape[0], bits=4, block_size=layer.group_size))
        graph.initializer.remove(initializers[node.input[1]])
        replaced += 1
    if replaced != len(layers):
        raise RuntimeError(f"found the MatMul of {replaced} of {len(layers)} quantized layers in the exported graph")
    graph_model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(graph_model, str(path))
    return path


def run_session(session, idx: torch.Tensor) -> torch.Tensor:
    """Logits from an ONNX Runtime session for indices ``idx`` (batch, length)."""
    return torch.from_numpy(session.run(["logits"], {"idx": idx.numpy()})[0])


def interleaved_seconds(calls: dict[str, callable], repeats: int = 15, warmup: int = 3) -> dict[str, float]:
    """The median seconds of each call, the calls run in turn (baseline and candidates interleaved) after
    ``warmup`` rounds."""
    check_int(repeats, "repeats", 1)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(warmup + repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}
