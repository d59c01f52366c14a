"""Checkers for notebook 02: linear quantize / dequantize, k-means quantization of a tensor."""

from __future__ import annotations

from typing import Callable

import torch

from .checking import CheckResult, call_learner_function


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
        got, failure = call_learner_function(linear_quantize, (x.clone(), scale.clone(), zero_point.clone(), bits), name)
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
        back, failure = call_learner_function(linear_dequantize, (expected.clone(), scale.clone(), zero_point.clone()), name)
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
    from ..codebook import kmeans_quantize as reference

    for w, bits in cases:
        got, failure = call_learner_function(kmeans_quantize, (w.clone(), bits), name)
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
