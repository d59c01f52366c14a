"""Checkers for notebook 00: a convolution's cost, a model's storage at n bits."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .checking import CheckResult, call_learner_function


def conv_cost_reference(c_in: int, c_out: int, kernel_size: int, height: int, width: int,
                        stride: int = 1, padding: int = 0) -> tuple[int, int]:
    """MACs and parameters of a ``Conv2d(c_in, c_out, kernel_size, stride, padding)`` with bias
    on a (c_in, height, width) input:
    :math:`H_{out} = \\lfloor (H + 2p - k)/s \\rfloor + 1`, MACs :math:`= H_{out} W_{out} C_{out} C_{in} k^2`,
    parameters :math:`= C_{out} C_{in} k^2 + C_{out}`."""
    h_out = (height + 2 * padding - kernel_size) // stride + 1
    w_out = (width + 2 * padding - kernel_size) // stride + 1
    return h_out * w_out * c_out * c_in * kernel_size ** 2, c_out * c_in * kernel_size ** 2 + c_out


def _conv_cost_mistakes(c_in, c_out, k, h, w, s, p) -> dict[str, tuple[int, int]]:
    """What the usual wrong formulas give, each with the hint that fixes it."""
    h_out, w_out = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    macs = h_out * w_out * c_out * c_in * k * k
    params = c_out * c_in * k * k + c_out
    return {
        "Parameters: a conv layer has one bias per output channel; add C_out.":
            (macs, params - c_out),
        "MACs: each output position costs C_in*k*k MACs per output channel; use the OUTPUT size "
        "H_out*W_out, not the input size.": (h * w * c_out * c_in * k * k, params),
        "Output size: H_out = floor((H + 2*padding - k) / stride) + 1; did you forget the stride?":
            (((h + 2 * p - k) + 1) * ((w + 2 * p - k) + 1) * c_out * c_in * k * k, params),
        "Output size: padding adds 2*padding to H and W before the kernel slides.":
            (((h - k) // s + 1) * ((w - k) // s + 1) * c_out * c_in * k * k, params),
        "MACs count multiply-accumulates, not FLOPs: do not multiply by 2.": (2 * macs, params),
        "Each output channel sees ALL C_in input channels: multiply by C_in.":
            (h_out * w_out * c_out * k * k, c_out * k * k + c_out),
    }


CONV_CASES = [  # (c_in, c_out, k, h, w, stride, padding)
    (1, 20, 5, 28, 28, 1, 0),      # LeNet-5 conv1
    (20, 50, 5, 12, 12, 1, 0),     # LeNet-5 conv2
    (3, 8, 3, 32, 32, 2, 1),
    (16, 4, 3, 9, 7, 2, 0),
    (2, 3, 1, 5, 5, 1, 2),
]


def check_conv_cost(conv_cost: Callable[..., tuple[int, int]]) -> CheckResult:
    """Check ``conv_cost(c_in, c_out, kernel_size, height, width, stride, padding)``, which
    should return ``(macs, parameters)`` of a square-kernel Conv2d with bias."""
    name = "conv_cost"
    for case in CONV_CASES:
        expected = conv_cost_reference(*case)
        got, failure = call_learner_function(conv_cost, case, name)
        if failure:
            return failure
        if not (isinstance(got, tuple) and len(got) == 2):
            return CheckResult(name, False, 0, f"return a tuple (macs, parameters), got {got!r}")
        got = (int(got[0]), int(got[1]))
        if got != expected:
            hint = next((h for h, wrong in _conv_cost_mistakes(*case).items() if wrong == got),
                        "compare with the formulas in the theory cell above.")
            args = dict(zip(("c_in", "c_out", "kernel_size", "height", "width", "stride",
                             "padding"), case))
            return CheckResult(name, False, 0, f"for {args} expected (macs, parameters) = "
                               f"{expected}, got {got}. Hint: {hint}")
    return CheckResult(name, True, len(CONV_CASES),
                       f"all {len(CONV_CASES)} cases match (including LeNet-5's two conv layers)")


# ----------------------------------------------------------------------------- storage at n bits

def storage_bytes_reference(model: nn.Module, bits: int) -> int:
    """Bytes to store every parameter tensor of ``model`` at ``bits`` bits per value, each
    tensor packed and rounded up to a whole byte: :math:`\\sum_t \\lceil n_t b / 8 \\rceil`."""
    return sum(math.ceil(p.numel() * bits / 8) for p in model.parameters())


def _storage_cases() -> list[tuple[nn.Module, int]]:
    torch.manual_seed(0)
    tiny = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 1))     # tensors of 15, 5, 5, 1
    conv = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    return [(tiny, 32), (tiny, 3), (conv, 5), (conv, 8), (tiny, 1)]


def check_storage_bytes(storage_bytes: Callable[[nn.Module, int], int]) -> CheckResult:
    """Check ``storage_bytes(model, bits)``: bytes for all parameters at ``bits`` bits each,
    each tensor rounded up to whole bytes."""
    name = "storage_bytes"
    for model, bits in _storage_cases():
        expected = storage_bytes_reference(model, bits)
        got, failure = call_learner_function(storage_bytes, (model, bits), name)
        if failure:
            return failure
        if got != expected:
            sizes = [p.numel() for p in model.parameters()]
            weights_only = sum(math.ceil(p.numel() * bits / 8) for p in model.parameters() if p.dim() > 1)
            mistakes = {
                sum(sizes) * bits: "that is a number of bits: divide by 8 for bytes.",
                sum(n * bits // 8 for n in sizes): "round each tensor UP to whole bytes "
                                                     "(math.ceil), a partial byte still takes a byte.",
                math.ceil(sum(sizes) * bits / 8): "round up per tensor, not once for the whole "
                                                  "model: each tensor is stored separately.",
                weights_only: "biases are parameters too: include every tensor in model.parameters().",
                sum(sizes) * 4: "the size depends on `bits`; 4 bytes per value is only fp32.",
            }
            hint = mistakes.get(got, "sum math.ceil(numel * bits / 8) over model.parameters().")
            return CheckResult(name, False, 0, f"for a model with tensor sizes {sizes} at {bits} "
                               f"bits expected {expected} bytes, got {got}. Hint: {hint}")
    return CheckResult(name, True, len(_storage_cases()), "all cases match, odd bit widths included")
