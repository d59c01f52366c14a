"""Checkers for learners' own code, and the command that builds the student notebooks.

A checker runs the learner's function on small hand-made cases, compares with the reference,
and returns a :class:`CheckResult` that displays as a pass, or as a fail with a hint. Hints
come from recognising the *typical* wrong answers (a formula missing its bias, the input size
used where the output size belongs, bits not converted to bytes...), not just from a mismatch.

Notebooks hold their solutions between ``# BEGIN SOLUTION`` and ``# END SOLUTION``; the student
version replaces each block with ``raise NotImplementedError`` and clears all outputs::

    python -m course_lib.exercises student notebooks --out student
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a checker: ``passed``, how many cases ran, and a message with a hint."""
    exercise: str
    passed: bool
    cases: int
    message: str

    def __str__(self) -> str:
        mark = "PASS" if self.passed else "FAIL"
        return f"[{mark}] {self.exercise}: {self.message}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.passed else "#cf222e"
        mark = "&#10004; PASS" if self.passed else "&#10008; FAIL"
        text = self.message.replace("&", "&amp;").replace("<", "&lt;")
        return (f"<div style='border-left:4px solid {colour};padding:4px 8px'>"
                f"<b style='color:{colour}'>{mark}</b> <code>{self.exercise}</code>: {text}</div>")


def _run(fn: Callable, args: tuple, exercise: str) -> tuple[object, CheckResult | None]:
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, CheckResult(exercise, False, 0, "not implemented yet: replace the "
                                 "`raise NotImplementedError` with your code")
    except Exception as e:  # the learner's code may raise anything; report it, do not crash
        return None, CheckResult(exercise, False, 0, f"your function raised {type(e).__name__}: {e} "
                                 f"when called with {args}")


# ----------------------------------------------------------------------------- conv cost

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
        got, failure = _run(conv_cost, case, name)
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
        got, failure = _run(storage_bytes, (model, bits), name)
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


# ----------------------------------------------------------------------------- pruning (notebook 01)

def _prune_cases() -> list[tuple[torch.Tensor, float]]:
    return [
        (torch.tensor([[0.5, -0.1, 0.3], [-0.7, 0.2, 0.05]]), 0.5),      # the theory cell's example
        (torch.tensor([-3.0, 0.1, 2.0, -0.2]), 0.5),                      # large negatives stay
        (torch.tensor([1.0, 1.0, 1.0, 1.0, 2.0, 0.5]), 0.5),              # ties at the threshold
        (torch.arange(1.0, 11.0), 0.3),                                   # 3 of 10, not 2 or 4
        (torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(0)), 0.75),
        (torch.tensor([0.3, -0.2, 0.1]), 0.0),
    ]


def check_magnitude_prune(magnitude_prune: Callable[[torch.Tensor, float], torch.Tensor]) -> CheckResult:
    """Check ``magnitude_prune(weight, sparsity)``: a new tensor in which exactly
    ``round(sparsity * numel)`` entries of smallest magnitude are zero (any choice among ties)
    and every other entry keeps its value; ``weight`` itself unchanged."""
    name = "magnitude_prune"
    cases = _prune_cases()
    for w, sparsity in cases:
        original = w.clone()
        got, failure = _run(magnitude_prune, (w, sparsity), name)
        if failure:
            return failure
        k = round(sparsity * w.numel())
        shown = [round(v, 4) for v in original.reshape(-1).tolist()] if w.numel() <= 10 else tuple(w.shape)
        where = f"for weight {shown} and sparsity {sparsity}"
        if not torch.equal(w, original):
            return CheckResult(name, False, 0, f"{where} your function changed its input. Hint: "
                               "work on a copy (weight.clone()) or build a mask and return weight * mask.")
        if not isinstance(got, torch.Tensor) or got.shape != w.shape:
            return CheckResult(name, False, 0, f"{where} return a tensor of shape {tuple(w.shape)}, "
                               f"got {type(got).__name__} {getattr(got, 'shape', '')}")
        zeroed = (got == 0) & (w != 0)
        kept = got != 0
        n_zero = int((got == 0).sum())
        if not torch.equal(got[kept], w[kept]):
            return CheckResult(name, False, 0, f"{where} some kept weights changed value. Hint: "
                               "pruning only sets weights to zero; the others keep their values.")
        if n_zero == w.numel() - k and n_zero != k:
            hint = "sparsity is the fraction of weights set to ZERO, not the fraction kept."
        elif n_zero == k and zeroed.any() and w[zeroed].abs().min() >= w[kept].abs().max():
            hint = "you pruned the wrong end: remove the SMALLEST magnitudes, keep the largest."
        elif n_zero == k and zeroed.any() and w[zeroed].abs().max() > w[kept].abs().min():
            hint = ("compare magnitudes |w| (weight.abs()), not signed values: -3.0 is a large "
                    "weight.")
        elif n_zero > k and w.abs().unique().numel() < w.numel():
            hint = ("with ties at the threshold, `abs(w) <= threshold` removes too many. Take "
                    "exactly k indices, e.g. torch.topk(w.abs().flatten(), k, largest=False).indices.")
        elif abs(n_zero - k) == 1:
            hint = "off by one: the number to prune is k = round(sparsity * numel), exactly."
        elif n_zero != k:
            hint = f"expected exactly k = round(sparsity * numel) = {k} zeros."
        else:
            continue
        return CheckResult(name, False, 0, f"{where} expected {k} zeros, got {n_zero}. Hint: {hint}")
    return CheckResult(name, True, len(cases), f"all {len(cases)} cases pass (ties, negatives, "
                       "exact counts, input left unchanged)")


def _channel_cases() -> list[tuple[torch.Tensor, int]]:
    g = torch.Generator().manual_seed(1)
    # Each wrong answer picks other rows: L1 top-2 = {0, 2}, least = {3, 4}, L2 = {1, 2},
    # signed sum = {1, 4}, columns instead of rows = {0, 1}.
    fc = torch.tensor([[1.0, -1.0, 1.0, -1.0], [3.2, 0.0, 0.0, 0.0], [-3.0, -3.0, 0.0, 0.0],
                       [0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.5, 0.5]])
    conv = torch.randn(6, 3, 3, 3, generator=g)
    conv[4] *= 5.0
    return [(fc, 2), (conv, 3), (torch.randn(8, 5, generator=g), 5), (fc, 1)]


def check_select_channels(select_channels: Callable[[torch.Tensor, int], torch.Tensor]) -> CheckResult:
    """Check ``select_channels(weight, keep)``: the indices of the ``keep`` output channels
    (rows, dim 0) of largest L1 norm :math:`\\sum |W_c|`, in increasing order."""
    name = "select_channels"
    for w, keep in _channel_cases():
        got, failure = _run(select_channels, (w.clone(), keep), name)
        if failure:
            return failure
        flat = w.reshape(w.shape[0], -1)
        expected = torch.argsort(flat.abs().sum(1), descending=True, stable=True)[:keep].sort().values
        try:
            got_list = [int(i) for i in torch.as_tensor(got).reshape(-1)]
        except (TypeError, ValueError):
            return CheckResult(name, False, 0, f"return a tensor of indices, got {got!r}")
        if got_list == expected.tolist():
            continue
        l1 = flat.abs().sum(1)
        candidates = {
            "you kept the LEAST important channels: sort by descending norm (or use torch.topk).":
                torch.argsort(l1)[:keep].sort().values.tolist(),
            "return the indices in increasing order (.sort()), so the pruned layer keeps the "
            "channels in their original order.": torch.argsort(l1, descending=True)[:keep].tolist(),
            "the L1 norm sums ABSOLUTE values: weight.abs().sum(...), not weight.sum(...).":
                torch.argsort(flat.sum(1), descending=True)[:keep].sort().values.tolist(),
            "use the L1 norm (sum of |w|), not the L2 norm.":
                torch.argsort(flat.norm(dim=1), descending=True)[:keep].sort().values.tolist(),
        }
        if w.dim() == 2:
            candidates["score output channels (rows, dim 0), summing over every other dimension."] = \
                torch.argsort(w.abs().sum(0), descending=True)[:keep].sort().values.tolist()
        hint = next((h for h, wrong in candidates.items() if wrong == got_list),
                    "score each output channel by weight[c].abs().sum(), keep the top `keep`, sort them.")
        return CheckResult(name, False, 0, f"for a weight of shape {tuple(w.shape)} and keep={keep} "
                           f"expected {expected.tolist()}, got {got_list}. Hint: {hint}")
    return CheckResult(name, True, len(_channel_cases()), "all cases pass (conv and linear weights, "
                       "L1 not L2, sorted indices)")


# ----------------------------------------------------------------------------- quantization (notebook 02)

def _short(t: torch.Tensor):
    """A tensor's values rounded to 4 decimals, for messages."""
    values = t.tolist()
    return round(values, 4) if isinstance(values, float) else \
        [_short(torch.as_tensor(v)) if isinstance(v, list) else round(v, 4) for v in values]


def _quantize_reference(x, scale, zero_point, bits):
    scale, zero_point = torch.as_tensor(scale, dtype=torch.float32), torch.as_tensor(zero_point)
    if scale.dim() == 1:                      # per channel: one value per row (dim 0)
        shape = (-1,) + (1,) * (x.dim() - 1)
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax).to(torch.int64), scale, zero_point


def _quantize_cases():
    g = torch.Generator().manual_seed(3)
    return [
        (torch.tensor([-1.0, -0.26, 0.0, 0.24, 0.5, 2.0]), torch.tensor(0.01), torch.tensor(-10), 8),
        (torch.tensor([-3.0, -0.4, 0.1, 0.7, 3.0]), torch.tensor(0.2), torch.tensor(1), 4),
        (torch.randn(4, 4, generator=g), torch.tensor([0.01, 0.02, 0.05, 0.1]), torch.tensor([0, 1, -2, 3]), 8),
        (torch.randn(3, 5, generator=g), torch.tensor([0.03, 0.3, 0.003]), torch.tensor([0, 0, 0]), 6),
    ]


def check_linear_quantize(linear_quantize: Callable, linear_dequantize: Callable) -> CheckResult:
    """Check ``linear_quantize(x, scale, zero_point, bits)`` (signed ``bits``-bit integer codes;
    a vector ``scale``/``zero_point`` means one per row) and ``linear_dequantize(q, scale,
    zero_point)``."""
    name = "linear_quantize / linear_dequantize"
    for x, scale, zero_point, bits in _quantize_cases():
        expected, s, z = _quantize_reference(x, scale, zero_point, bits)
        got, failure = _run(linear_quantize, (x.clone(), scale.clone(), zero_point.clone(), bits), name)
        if failure:
            if "size of tensor" in failure.message or "must match" in failure.message:
                return CheckResult(name, False, 0, failure.message + ". Hint: per-channel scales "
                                   "have one value per ROW: reshape them to (C, 1, ...) to broadcast.")
            return failure
        got = torch.as_tensor(got)
        where = (f"for x of shape {tuple(x.shape)}, scale {_short(scale)}, zero_point "
                 f"{zero_point.tolist()}, bits {bits}")
        if got.shape != x.shape or not torch.equal(got.to(torch.int64), expected):
            qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
            per_column = None
            if scale.dim() == 1 and x.dim() == 2 and x.shape[1] == len(scale):
                per_column = torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax)
            mistakes = [
                (torch.clamp(torch.round(x / s) - z, qmin, qmax), "the zero-point is ADDED: q = round(x / s) + z."),
                (torch.round(x / s) + z, "clamp the codes to the integer range [q_min, q_max]."),
                (torch.clamp(torch.round(x / s) + z, qmin, qmax + 1), f"off by one: for {bits} signed bits "
                 f"q_max = 2**(bits-1) - 1 = {qmax}."),
                (torch.clamp(torch.round(x / s) + z, qmin + 1, qmax), f"off by one: for {bits} signed bits "
                 f"q_min = -2**(bits-1) = {qmin}."),
                (torch.clamp(torch.trunc(x / s) + z, qmin, qmax), "round to the nearest integer (torch.round), "
                 "do not truncate or floor."),
                (torch.clamp(torch.floor(x / s) + z, qmin, qmax), "round to the nearest integer (torch.round), "
                 "do not truncate or floor."),
                (torch.clamp(torch.round(x / s.mean()) + z, qmin, qmax),
                 "one scale per channel was asked: do not use a single (per-tensor) scale."),
            ]
            if per_column is not None:
                mistakes.insert(0, (per_column, "the scales apply per ROW (output channel, dim 0), not per "
                                    "column: reshape scale to (C, 1)."))
            hint = next((h for wrong, h in mistakes if wrong.shape == got.shape and torch.equal(wrong.to(torch.int64), got.to(torch.int64))),
                        "q = clamp(round(x / scale) + zero_point, -2**(bits-1), 2**(bits-1) - 1).")
            return CheckResult(name, False, 0, f"{where}: expected {expected.tolist()}, got "
                               f"{got.to(torch.int64).tolist()}. Hint: {hint}")
        back, failure = _run(linear_dequantize, (expected.clone(), scale.clone(), zero_point.clone()), name)
        if failure:
            return failure
        back = torch.as_tensor(back, dtype=torch.float32)
        truth = (expected - z).float() * s
        if back.shape != truth.shape or not torch.allclose(back, truth, atol=1e-6):
            sign = (expected + z).float() * s
            hint = ("subtract the zero-point before scaling: x = scale * (q - zero_point)."
                    if back.shape == sign.shape and torch.allclose(back, sign, atol=1e-6)
                    else "x = scale * (q - zero_point), with per-row scales reshaped to (C, 1).")
            return CheckResult(name, False, 0, f"linear_dequantize {where}: expected {_short(truth)}, "
                               f"got {_short(back)}. Hint: {hint}")
    return CheckResult(name, True, len(_quantize_cases()), "all cases pass (clipping, zero-points, "
                       "odd bit widths, per-channel scales)")


def check_kmeans_quantize(kmeans_quantize: Callable) -> CheckResult:
    """Check ``kmeans_quantize(w, bits)`` returning ``(centroids, indices)``: :math:`2^{bits}`
    centroids, ``indices`` of ``w``'s shape pointing to each weight's nearest centroid, and each
    used centroid the mean of its weights (a fixed point of Lloyd's algorithm)."""
    name = "kmeans_quantize"
    g = torch.Generator().manual_seed(5)
    cases = [(torch.tensor([0.0, 0.1, 0.9, 1.0]), 1), (torch.randn(8, 6, generator=g), 2),
             (torch.randn(5, 3, 3, generator=g), 3)]
    from .codebook import kmeans_quantize as reference

    for w, bits in cases:
        got, failure = _run(kmeans_quantize, (w.clone(), bits), name)
        if failure:
            return failure
        try:
            centroids, indices = (torch.as_tensor(t) for t in got)
        except (TypeError, ValueError):
            return CheckResult(name, False, 0, f"return (centroids, indices), got {got!r}")
        where = f"for w of shape {tuple(w.shape)} and bits={bits}"
        k = 2 ** bits
        if len(centroids) != k:
            hint = "k = 2**bits centroids, not bits." if len(centroids) == bits else f"use k = 2**bits = {k}."
            return CheckResult(name, False, 0, f"{where}: expected {k} centroids, got {len(centroids)}. Hint: {hint}")
        if indices.shape != w.shape:
            return CheckResult(name, False, 0, f"{where}: indices must have w's shape {tuple(w.shape)}, "
                               f"got {tuple(indices.shape)}. Hint: reshape them back with .reshape(w.shape).")
        nearest = (w.reshape(-1, 1) - centroids.reshape(1, -1)).abs().min(1).values
        chosen = (w.reshape(-1) - centroids[indices.reshape(-1).long()]).abs()
        if not torch.allclose(chosen, nearest, atol=1e-6):
            return CheckResult(name, False, 0, f"{where}: some weights are not assigned to their nearest "
                               "centroid. Hint: indices = (w[:, None] - centroids[None, :]).abs().argmin(1).")
        for c in indices.unique():
            members = w.reshape(-1)[indices.reshape(-1) == c]
            if not torch.allclose(centroids[c], members.mean(), atol=1e-4):
                return CheckResult(name, False, 0, f"{where}: centroid {int(c)} is {centroids[c].item():.4f} "
                                   f"but its weights average {members.mean().item():.4f}. Hint: repeat "
                                   "(assign, then move each centroid to the mean of its weights) until stable.")
        ours = (reference(w, bits).reconstruct() - w).pow(2).mean()
        theirs = (centroids[indices.long()] - w).pow(2).mean()
        if theirs > ours * 1.5 + 1e-6:
            return CheckResult(name, False, 0, f"{where}: reconstruction error {theirs:.5f}, the reference "
                               f"reaches {ours:.5f}. Hint: initialise the centroids spread linearly between "
                               "w.min() and w.max() (Deep Compression), not at random.")
    return CheckResult(name, True, len(cases), "all cases pass (2**bits centroids, nearest assignment, "
                       "centroids at their clusters' means)")


# ----------------------------------------------------------------------------- student notebooks

def strip_solutions(source: str, exercise_hint: str = "write your solution here") -> str:
    """Replace each ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block of a cell's source with a
    ``raise NotImplementedError`` at the block's indentation. Raises ValueError on an
    unbalanced block."""
    lines = source.split("\n")
    out: list[str] = []
    inside = False
    for line in lines:
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError("nested '# BEGIN SOLUTION' without '# END SOLUTION'")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}# TODO: {exercise_hint}")
            out.append(f"{indent}raise NotImplementedError(\"exercise: {exercise_hint}\")")
        elif stripped == END:
            if not inside:
                raise ValueError("'# END SOLUTION' without '# BEGIN SOLUTION'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError("'# BEGIN SOLUTION' without a matching '# END SOLUTION'")
    return "\n".join(out)


def student_notebook(notebook: dict) -> dict:
    """A copy of a notebook (nbformat JSON as a dict) with solutions stripped and outputs cleared."""
    nb = json.loads(json.dumps(notebook))
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["source"] = strip_solutions(source)
        cell["outputs"] = []
        cell["execution_count"] = None
    return nb


def build_student_notebooks(source_dir: Path | str, out_dir: Path | str) -> list[Path]:
    """Write the student version of every ``*.ipynb`` in ``source_dir`` to ``out_dir``."""
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    if not source_dir.is_dir():
        raise ValueError(f"source_dir must be a folder of notebooks, got {source_dir}")
    if source_dir.resolve() == out_dir.resolve():
        raise ValueError("out_dir must differ from source_dir, or the solutions would be overwritten")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source_dir.glob("*.ipynb")):
        nb = student_notebook(json.loads(path.read_text()))
        target = out_dir / path.name
        target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        written.append(target)
    return written


def count_solution_blocks(source: str) -> int:
    return len(re.findall(rf"^\s*{re.escape(BEGIN)}\s*$", source, flags=re.M))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.exercises",
                                     description="Build the student version of the notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    student = sub.add_parser("student", help="strip solutions and outputs from every notebook")
    student.add_argument("source", nargs="?", default="notebooks")
    student.add_argument("--out", default="student")
    args = parser.parse_args(argv)
    for path in build_student_notebooks(args.source, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
