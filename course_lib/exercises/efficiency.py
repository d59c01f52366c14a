"""Checkers for notebook 00: a convolution's cost, a model's storage at n bits."""

from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import nn

from .checking import (check_returned, check_unchanged, checker, CheckResult, describe, failed, passed, require,
                       run_learner)

__all__ = ["conv_cost_reference", "CONV_CASES", "check_conv_cost", "storage_bytes_reference",
           "check_storage_bytes"]


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
        "Output size: the kernel fits a whole number of times: use floor division //, "
        "H_out = (H + 2*padding - k) // stride + 1.":
            (((h + 2 * p - k) / s + 1) * ((w + 2 * p - k) / s + 1) * c_out * c_in * k * k, params),
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


def _whole_number(value) -> int | None:
    """``value`` as an int if it is a whole number (int, or a float/0-d tensor equal to one)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value == int(value)):
        return None
    return int(value)


@checker("conv_cost")
def check_conv_cost(conv_cost: Callable[..., tuple[int, int]]) -> CheckResult:
    """Check ``conv_cost(c_in, c_out, kernel_size, height, width, stride=1, padding=0)``, which
    should return ``(macs, parameters)`` of a square-kernel Conv2d with bias: two whole numbers,
    with :math:`H_{out} = \\lfloor (H + 2p - k)/s \\rfloor + 1` (the reference is
    :func:`conv_cost_reference`)."""
    name = "conv_cost"
    for case in CONV_CASES:
        expected = conv_cost_reference(*case)
        args = dict(zip(("c_in", "c_out", "kernel_size", "height", "width", "stride", "padding"), case))
        where = f"for {args}"
        got = run_learner(conv_cost, case, name, case=str(args))
        require(check_returned(got, name, where, (tuple, list), what="(macs, parameters) pair"))
        if len(got) != 2:
            return failed(name, f"{where} return a tuple (macs, parameters) of two numbers, got "
                          f"{len(got)} values: {describe(got)}")
        whole = (_whole_number(got[0]), _whole_number(got[1]))
        if None in whole:
            return failed(name, f"{where} expected two whole numbers, got {describe(got)}. Hint: "
                          "the output size is a whole number of positions: use floor division // "
                          "in H_out = (H + 2*padding - k) // stride + 1.")
        if whole != expected:
            hint = next((h for h, wrong in _conv_cost_mistakes(*case).items() if wrong == whole),
                        "compare with the formulas in the theory cell above.")
            return failed(name, f"{where} expected (macs, parameters) = {expected}, got {whole}. "
                          f"Hint: {hint}")
    return passed(name, len(CONV_CASES), f"all {len(CONV_CASES)} cases match (including LeNet-5's "
                  "two conv layers, strides that do not divide evenly)")


# ----------------------------------------------------------------------------- storage at n bits

def storage_bytes_reference(model: nn.Module, bits: int) -> int:
    """Bytes to store every parameter tensor of ``model`` at ``bits`` bits per value, each
    tensor packed and rounded up to a whole byte: :math:`\\sum_t \\lceil n_t b / 8 \\rceil`."""
    return sum(math.ceil(p.numel() * bits / 8) for p in model.parameters())


def _storage_cases() -> list[tuple[nn.Module, int]]:
    g = torch.Generator().manual_seed(0)
    tiny = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 1))     # tensors of 15, 5, 5, 1
    conv = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    odd = nn.Linear(3, 1)            # at 5 bits: 3 weights = 15 bits -> 2 bytes, 1 bias = 5 bits -> 1 byte
    normed = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU())   # buffers: not parameters
    for m in (tiny, conv, odd, normed):
        for p in m.parameters():
            p.data.copy_(torch.randn(p.shape, generator=g))
    return [(odd, 5), (odd, 3), (tiny, 32), (tiny, 3), (conv, 5), (conv, 8), (tiny, 1), (normed, 8), (normed, 32)]


@checker("storage_bytes")
def check_storage_bytes(storage_bytes: Callable[[nn.Module, int], int]) -> CheckResult:
    """Check ``storage_bytes(model, bits)``: bytes for all parameters at ``bits`` bits each,
    each tensor rounded up to whole bytes, :math:`\\sum_t \\lceil n_t b / 8 \\rceil` (the
    reference is :func:`storage_bytes_reference`); the model must not change."""
    name = "storage_bytes"
    cases = _storage_cases()
    for model, bits in cases:
        expected = storage_bytes_reference(model, bits)
        sizes = [p.numel() for p in model.parameters()]
        where = f"for a model with tensor sizes {sizes} at {bits} bits"
        before = copy.deepcopy(model)
        got = run_learner(storage_bytes, (model, bits), name, case=where[4:])
        require(check_unchanged(before, model, name, where, "the model"))
        require(check_returned(got, name, where, (int, float), what="number of bytes"))
        if got != expected:
            weights_only = sum(math.ceil(p.numel() * bits / 8) for p in model.parameters() if p.dim() > 1)
            partial = "round each tensor UP to whole bytes (math.ceil): a partial byte still takes a byte."
            state = [t.numel() for t in model.state_dict().values()]
            mistakes = [   # (wrong answer, hint), the most specific first
                (sum(math.ceil(n * bits / 8) for n in state),
                 "count model.parameters(), not model.state_dict(): the state dict also holds BatchNorm's BUFFERS "
                 "(running mean, running variance, the batch counter), which are statistics, not trained weights."),
                (sum(math.ceil(t.numel() * bits / 8) for t in model.buffers()) + expected,
                 "count model.parameters() only: BatchNorm's buffers (running mean and variance, the batch "
                 "counter) are not weights."),
                (sum(n * bits // 8 for n in sizes), partial),
                (sum(n * bits / 8 for n in sizes), partial),
                (sum(round(n * bits / 8) for n in sizes), "round each tensor UP to whole bytes (math.ceil), "
                                                            "not to the nearest byte."),
                (math.ceil(sum(sizes) * bits / 8), "round up per tensor, not once for the whole model: "
                                                   "each tensor is stored separately."),
                (sum(sizes) * bits, "that is a number of bits: divide by 8 for bytes."),
                (weights_only, "biases are parameters too: include every tensor in model.parameters()."),
                (sum(sizes) * 4, "the size depends on `bits`; 4 bytes per value is only fp32."),
            ]
            hint = next((h for wrong, h in mistakes if wrong == got),
                        "sum math.ceil(numel * bits / 8) over model.parameters().")
            return failed(name, f"{where} expected {expected} bytes, got {got}. Hint: {hint}")
    return passed(name, len(cases), "all cases match, odd bit widths and partial bytes included")
