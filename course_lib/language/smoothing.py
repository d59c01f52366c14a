"""Weights and activations both in int8 (W8A8), and SmoothQuant (Xiao et al. 2023, "SmoothQuant:
Accurate and Efficient Post-Training Quantization for Large Language Models").

Quantizing a layer's input with one scale per tensor (what fast int8 matrix kernels want) fails when a few
input channels are far larger than the rest: the scale follows the outliers, and the ordinary channels
round to a handful of levels. Large language models grow such channels, from about 6.7 B parameters on
(Dettmers et al. 2022, LLM.int8()). SmoothQuant moves the difficulty into the weights, which
quantize per output channel: with per-input-channel factors

.. math::
    s_j = \\frac{\\max |X_j|^{\\alpha}}{\\max |W_{:, j}|^{1 - \\alpha}}, \\qquad
    Y = (X \\mathrm{diag}(s)^{-1}) (\\mathrm{diag}(s) W^\\top)

(Eq. 4, :math:`\\alpha = 0.5` by default) the product is unchanged; :math:`\\mathrm{diag}(s)^{-1}` folds into
the LayerNorm before the layer, :math:`\\mathrm{diag}(s)` into the weight. As in the paper's own code, the
layers after a LayerNorm are smoothed (query, key, value; the MLP's first layer); the others are
quantized as they are.
"""

from __future__ import annotations

import copy

import torch

from ..checks import check_int, check_real
from ..quantization import FakeQuantized, choose_qparams
from .gpt import GPT
from .weights import block_linears, linear_inputs

__all__ = ["input_channel_ranges", "smooth", "quantize_w8a8"]


def input_channel_ranges(model: GPT, calibration: torch.Tensor) -> dict[str, torch.Tensor]:
    """:math:`\\max |X_j|` over the calibration windows, per input channel of each block linear."""
    inputs = linear_inputs(model, calibration, list(block_linears(model)))
    return {name: x.abs().amax(0) for name, x in inputs.items()}


@torch.no_grad()
def smooth(model: GPT, calibration: torch.Tensor, alpha: float = 0.5) -> GPT:
    """A copy of ``model`` with SmoothQuant's factors folded into the LayerNorms and the weights after
    them; it computes the same function (up to float rounding). ``model`` is not changed."""
    check_real(alpha, "alpha", 0, 1)
    smoothed = copy.deepcopy(model)
    ranges = input_channel_ranges(smoothed, calibration)
    for i, block in enumerate(smoothed.blocks):
        for norm, layers in ((block.ln1, [block.attention.query, block.attention.key, block.attention.value]),
                             (block.ln2, [block.mlp.fc])):
            first = f"blocks.{i}.{'attention.query' if norm is block.ln1 else 'mlp.fc'}"
            x_max = ranges[first].clamp_min(1e-5)
            w_max = torch.cat([layer.weight for layer in layers]).abs().amax(0).clamp_min(1e-5)
            s = x_max ** alpha / w_max ** (1 - alpha)
            norm.weight.div_(s)
            norm.bias.div_(s)
            for layer in layers:
                layer.weight.mul_(s)
    return smoothed


def quantize_w8a8(model: GPT, calibration: torch.Tensor | None, weight_bits: int = 8,
                  activation_bits: int | None = 8) -> GPT:
    """A copy of ``model`` whose block linears compute with ``weight_bits`` weights (symmetric, per output
    channel) and, unless ``activation_bits`` is None (weight-only, W8A16), inputs fake-quantized to
    ``activation_bits`` with one static symmetric scale per tensor, calibrated on the largest magnitude
    the calibration windows give it (:class:`course_lib.quantization.FakeQuantized`)."""
    check_int(weight_bits, "weight_bits", 2, 8)
    check_int(activation_bits, "activation_bits", 2, 8, allow_none=True)
    quantized = copy.deepcopy(model)
    ranges = input_channel_ranges(model, calibration) if activation_bits is not None else {}
    for name, layer in block_linears(quantized).items():
        qparams = None
        if activation_bits is not None:
            top = float(ranges[name].max())
            qparams = choose_qparams(-top, top, activation_bits, symmetric=True)
        quantized.set_submodule(name, FakeQuantized(layer, "affine", weight_bits, per_channel=True,
                                                    input_qparams=qparams))
    return quantized
