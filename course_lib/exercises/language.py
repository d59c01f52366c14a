"""Exercises of notebook 09, compressing a small language model: group-wise quantization, packing two
4-bit codes a byte, GPTQ's column loop, Wanda's 2:4 mask, and the int8 KV cache's per-token rounding.

Each exercise has a reference (``*_reference``, for :func:`falls_back_to`) and a checker (``check_*``)
that tests the learner's code on small hand-made cases and names the typical mistakes: it computes what
each mistake would return and says which one the learner's answer matches.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..language import FLOAT16_TINIEST
from .checking import CheckResult, check_returned, check_unchanged, checker, failed, passed, require, run_learner

__all__ = ["quantize_groups_reference", "check_quantize_groups", "pack_int4_reference", "check_pack_int4",
           "gptq_columns_reference", "check_gptq_columns", "wanda_2_4_mask_reference", "check_wanda_2_4_mask",
           "quantize_kv_reference", "check_quantize_kv"]


def _seeded(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def _named_mistake(got: torch.Tensor, mistakes: list[tuple[torch.Tensor, str]], default: str,
                   atol: float = 1e-6) -> str:
    """The hint of the first mistake whose answer ``got`` matches, else ``default``."""
    for wrong, hint in mistakes:
        if wrong.shape == got.shape and torch.allclose(got.double(), wrong.double(), atol=atol):
            return hint
    return default


_ZERO_SCALE_HINT = ("a floor such as clamp_min(1e-8) applied before .half() rounds to 0 in float16 (its smallest "
                    "positive number is 2**-24), and 0 / 0 is NaN; convert first, then floor: "
                    ".half().clamp_min(2 ** -24).")


def _check_inputs_unchanged(before: tuple, after: tuple, name: str, where: str, labels: str) -> None:
    require(check_unchanged(before, after, name, where, labels,
                            "work on new tensors (w / scale, w.clone()); in-place ops (div_, sub_, +=, "
                            "clamp_) overwrite the caller's."))


# ----------------------------------------------------------------------------- group-wise quantization

def _grid(groups: torch.Tensor, bits: int, widen: bool = True, half: bool = True):
    qmax = 2 ** bits - 1
    lo, hi = groups.amin(1, keepdim=True), groups.amax(1, keepdim=True)
    if widen:
        lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    scale = ((hi - lo) / qmax).clamp_min(1e-8)
    scale = scale.half().clamp_min(FLOAT16_TINIEST).float() if half else scale
    return scale, torch.round(-lo / scale).clamp(0, qmax)


def quantize_groups_reference(w: torch.Tensor, bits: int, group_size: int
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric round-to-nearest per group of ``group_size`` consecutive inputs of each row of ``w``
    (out, in): the range widened to hold 0, scale :math:`(\\max - \\min) / (2^b - 1)` rounded to
    float16, zero-point :math:`\\mathrm{round}(-\\min / s)`, codes
    :math:`\\mathrm{clamp}(\\mathrm{round}(w / s) + z, 0, 2^b - 1)`. Returns uint8 codes (out, in),
    float16 scales (at least :math:`2^{-24}`, for a group of zeros) and uint8 zero-points (out, in / group_size)."""
    out, n_in = w.shape
    groups = w.reshape(-1, group_size)
    scale, zero = _grid(groups, bits)
    codes = torch.clamp(torch.round(groups / scale) + zero, 0, 2 ** bits - 1)
    return (codes.reshape(out, n_in).to(torch.uint8), scale.reshape(out, -1).half(),
            zero.reshape(out, -1).to(torch.uint8))


def _dequantized(codes, scales, zeros) -> torch.Tensor:
    out, n_in = codes.shape
    g = n_in // scales.shape[1]
    return ((codes.float().reshape(out, -1, g) - zeros.float().unsqueeze(-1)) * scales.float().unsqueeze(-1)
            ).reshape(out, n_in)


def _quantize_groups_mistakes(w: torch.Tensor, bits: int, g: int) -> list[tuple[torch.Tensor, str]]:
    """Each typical mistake's dequantized weights, with the hint that names it."""
    out, n_in = w.shape
    qmax = 2 ** bits - 1

    def dequantized(groups, scale, zero, rounding=torch.round, clamp=True):
        codes = rounding(groups / scale) + zero
        codes = codes.clamp(0, qmax) if clamp else codes
        return (codes - zero) * scale

    groups = w.reshape(-1, g)
    scale, zero = _grid(groups, bits)
    s2, z2 = _grid(groups, bits, widen=False)
    s3, z3 = _grid(groups, bits, half=False)
    cols = w.T.reshape(-1, g)
    s4, z4 = _grid(cols, bits)
    s5, z5 = _grid(w, bits)
    codes32 = torch.clamp(torch.round(groups / s3) + z3, 0, qmax)      # codes from the float32 scale, stored in float16
    return [
        (((codes32 - z3) * scale).reshape(out, n_in),
         "round the scale to float16 FIRST (scale.half().float()), then compute the zero-point and the codes with "
         "that rounded scale: it is the scale the file stores."),
        (dequantized(groups, scale, zero, torch.floor).reshape(out, n_in),
         "the codes are truncated: int() or floor() drops the fraction; use torch.round(w / scale)."),
        (dequantized(groups, scale, zero, clamp=False).reshape(out, n_in),
         f"codes outside [0, {qmax}]: clamp them after adding the zero-point."),
        (dequantized(groups, s2, z2).reshape(out, n_in),
         "the range must be widened to hold 0 (lo = min(w.min(), 0), hi = max(w.max(), 0)), so that 0 is exactly "
         "representable and a group of positive weights still has zero-point 0."),
        (dequantized(cols, s4, z4).reshape(n_in, out).T,
         "the groups run along each ROW (consecutive inputs of one output): w.reshape(-1, group_size), not down "
         "the columns."),
        (dequantized(w, s5, z5),
         "one scale per row is per-channel quantization: each group of group_size inputs needs its own."),
    ]


@checker("quantize_groups")
def check_quantize_groups(quantize_groups: Callable) -> CheckResult:
    """Check ``quantize_groups(w, bits, group_size) -> (codes, scales, zero_points)`` against
    :func:`quantize_groups_reference`: codes exactly, float16 scales, uint8 codes and zero-points, ``w``
    unchanged."""
    name = "quantize_groups"
    cases = [(torch.tensor([[0.5, 1.0, 2.0, 3.0, -1.0, -0.5, 0.25, 0.75]]), 2, 4),
             (_seeded(4, 16, seed=0), 4, 8), (_seeded(3, 32, seed=1, scale=0.05), 4, 32),
             (_seeded(6, 12, seed=2), 3, 4), (_seeded(2, 8, seed=3).abs() + 0.1, 4, 4),
             (torch.tensor([[0.0, 1.0, 0.49993, 0.2]]), 4, 4),          # 7.5 steps with the float16 scale, 7.499 without
             (torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0]]), 2, 4)]    # a group of zeros
    for w, bits, g in cases:
        where = f"for w of shape {tuple(w.shape)}, bits={bits}, group_size={g}"
        before = w.clone()
        got = run_learner(quantize_groups, (w, bits, g), name, case=where[4:])
        _check_inputs_unchanged((before,), (w,), name, where, "w")
        require(check_returned(got, name, where, tuple, what="(codes, scales, zero_points)"))
        if len(got) != 3:
            return failed(name, f"{where}: expected 3 tensors (codes, scales, zero_points), got {len(got)}.")
        codes, scales, zeros = expected = quantize_groups_reference(w, bits, g)
        for value, truth, label in zip(got, expected, ("codes", "scales", "zero_points")):
            require(check_returned(value, name, where, torch.Tensor, dtype=truth.dtype, shape=truth.shape, what=label))
        if bool((got[1] == 0).any()):
            return failed(name, f"{where}: a scale of 0 (a group of zeros?). Hint: {_ZERO_SCALE_HINT}")
        if not (torch.equal(got[0], codes) and torch.equal(got[1], scales) and torch.equal(got[2], zeros)):
            hint = _named_mistake(_dequantized(*got), _quantize_groups_mistakes(w, bits, g),
                                  "scale = (hi - lo) / (2**bits - 1) in float16 over each group's range widened to "
                                  "hold 0; zero_point = round(-lo / scale); codes = clamp(round(w / scale) + "
                                  "zero_point, 0, 2**bits - 1).", atol=1e-5)
            return failed(name, f"{where}: {int((got[0] != codes).sum())} codes and "
                          f"{int((got[1] != scales).sum())} scales differ. Hint: {hint}")
    return passed(name, len(cases), f"all {len(cases)} cases pass (groups along each row, the range holds 0, "
                  "float16 scales, rounding, clamping, uint8 codes)")


# ----------------------------------------------------------------------------- packing

def pack_int4_reference(codes: torch.Tensor) -> torch.Tensor:
    """Two 4-bit codes a byte along the last axis, the first in the LOW nibble (ONNX Runtime's order):
    uint8 (..., n / 2)."""
    c = codes.to(torch.uint8)
    return c[..., 0::2] | (c[..., 1::2] << 4)


@checker("pack_int4")
def check_pack_int4(pack_int4: Callable) -> CheckResult:
    """Check ``pack_int4(codes) -> uint8 tensor``: codes (..., n) in [0, 15], n even, packed two a byte
    along the last axis, the first code in the low nibble; ``codes`` unchanged."""
    name = "pack_int4"
    cases = [torch.tensor([1, 2], dtype=torch.uint8), torch.tensor([[15, 0, 7, 8], [3, 12, 0, 1]], dtype=torch.uint8),
             torch.randint(0, 16, (3, 2, 10), generator=torch.Generator().manual_seed(0)).to(torch.uint8)]
    for codes in cases:
        where = f"for codes {codes.tolist() if codes.numel() <= 8 else tuple(codes.shape)}"
        before = codes.clone()
        got = run_learner(pack_int4, (codes,), name, case=where[4:])
        _check_inputs_unchanged((before,), (codes,), name, where, "codes")
        expected = pack_int4_reference(codes)
        require(check_returned(got, name, where, torch.Tensor, dtype=torch.uint8, shape=expected.shape,
                               what="packed bytes"))
        if not torch.equal(got, expected):
            c = codes.to(torch.int64)
            hint = _named_mistake(got.to(torch.int64), [
                ((c[..., 0::2] << 4) | c[..., 1::2], "the first code goes in the LOW nibble: byte = first | (second << 4)."),
                (c[..., 0::2] + c[..., 1::2], "shift the second code by 4 bits before combining: second << 4."),
                (c.reshape(*c.shape[:-1], 2, -1)[..., 0, :] | (c.reshape(*c.shape[:-1], 2, -1)[..., 1, :] << 4),
                 "pair NEIGHBOURS (codes 0 and 1, 2 and 3, ...): codes[..., 0::2] and codes[..., 1::2], not the "
                 "first half with the second half.")],
                "byte k = codes[..., 2k] | (codes[..., 2k + 1] << 4).")
            return failed(name, f"{where}: expected {expected.tolist() if expected.numel() <= 8 else 'other bytes'}, "
                          f"got {got.tolist() if got.numel() <= 8 else 'these'}. Hint: {hint}")
    return passed(name, len(cases), f"all {len(cases)} cases pass (low nibble first, neighbours paired, uint8, "
                  "any leading shape)")


# ----------------------------------------------------------------------------- GPTQ

def gptq_columns_reference(W: torch.Tensor, U: torch.Tensor, quantize: Callable) -> torch.Tensor:
    """GPTQ's loop (Frantar et al. 2023, Algorithm 1): for each column j in order, ``q = quantize(w_j)``
    (the column's dequantized value), error :math:`e = (w_j - q) / U_{jj}`, then
    :math:`W_{:, k} \\mathrel{-}= e\\, U_{jk}` for every later column k. Returns the quantized matrix; ``W``
    is not changed (work on a copy)."""
    W = W.clone()
    Q = torch.zeros_like(W)
    for j in range(W.shape[1]):
        Q[:, j] = quantize(W[:, j])
        error = (W[:, j] - Q[:, j]) / U[j, j]
        W[:, j + 1:] -= error.unsqueeze(1) * U[j, j + 1:].unsqueeze(0)
    return Q


def _gptq_case(seed: int, out: int, n: int):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(out, n, generator=g, dtype=torch.float64)
    X = torch.randn(64, 3, generator=g, dtype=torch.float64) @ torch.randn(3, n, generator=g, dtype=torch.float64)
    H = 2 * X.T @ X / 64 + 0.05 * torch.eye(n, dtype=torch.float64)
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    return W, U, H


def _round_to_quarter(column: torch.Tensor) -> torch.Tensor:
    return torch.round(column * 4) / 4


@checker("gptq_columns")
def check_gptq_columns(gptq_columns: Callable) -> CheckResult:
    """Check ``gptq_columns(W, U, quantize) -> Tensor``: GPTQ's column loop with ``U`` the upper Cholesky
    factor of the inverse Hessian and ``quantize`` a function from a column to its dequantized value (here:
    round to the nearest quarter); ``W`` and ``U`` unchanged."""
    name = "gptq_columns"
    cases = [_gptq_case(3, 4, 6), _gptq_case(1, 5, 8), _gptq_case(2, 4, 12)]
    for W, U, H in cases:
        where = f"for W of shape {tuple(W.shape)} (float64), quantize = round to the nearest 0.25"
        before = (W.clone(), U.clone())
        got = run_learner(gptq_columns, (W, U, _round_to_quarter), name, case=where[4:])
        _check_inputs_unchanged(before, (W, U), name, where, "W or U")
        expected = gptq_columns_reference(W, U, _round_to_quarter)
        require(check_returned(got, name, where, torch.Tensor, dtype=W.dtype, shape=W.shape, what="quantized W"))
        if not torch.allclose(got, expected, atol=1e-9):
            Uinv = torch.linalg.cholesky(torch.linalg.inv(H), upper=True)
            spread, no_division = W.clone(), torch.zeros_like(W)       # the error spread without / U[j, j]
            for j in range(W.shape[1]):
                no_division[:, j] = _round_to_quarter(spread[:, j])
                spread[:, j + 1:] -= (spread[:, j] - no_division[:, j]).unsqueeze(1) * U[j, j + 1:].unsqueeze(0)
            hint = _named_mistake(got, [
                (_round_to_quarter(W), "that is plain round-to-nearest: after quantizing column j, move its error "
                                       "onto the columns after it, W[:, j+1:] -= e * U[j, j+1:], with e = "
                                       "(w_j - q_j) / U[j, j]."),
                (no_division, "divide the column's error by U[j, j] before spreading it: e = (w_j - q_j) / U[j, j]."),
                (gptq_columns_reference(W, Uinv, _round_to_quarter),
                 "U is the Cholesky factor of the INVERSE Hessian, as given: use it as it is."),
                (gptq_columns_reference(W, -U, _round_to_quarter),
                 "the update subtracts: W[:, j+1:] -= e * U[j, j+1:] (the sign is what cancels the error).")],
                "for j in order: q = quantize(W[:, j]); e = (W[:, j] - q) / U[j, j]; "
                "W[:, j+1:] -= e[:, None] * U[j, j+1:][None, :] (on a copy of W).", atol=1e-9)
            return failed(name, f"{where}: largest difference {(got - expected).abs().max().item():.3g}. Hint: {hint}")
    return passed(name, len(cases), f"all {len(cases)} cases pass (errors divided by U[j, j], spread over the later "
                  "columns only, W and U unchanged)")


# ----------------------------------------------------------------------------- Wanda and 2:4

def wanda_2_4_mask_reference(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Wanda's score :math:`|W_{ij}| \\cdot \\lVert X_j \\rVert_2` (``x``: (N, in), the norm over the N
    tokens), then in every group of 4 consecutive inputs of a row the 2 highest scores kept (ties: the
    earlier index): a float 0/1 mask of ``weight``'s shape."""
    scores = weight.abs() * x.norm(dim=0)
    groups = scores.reshape(weight.shape[0], -1, 4)
    keep = torch.topk(groups, 2, dim=2).indices
    return torch.zeros_like(groups).scatter_(2, keep, 1.0).reshape(weight.shape)


def _mask_of(scores: torch.Tensor) -> torch.Tensor:
    groups = scores.reshape(scores.shape[0], -1, 4)
    return torch.zeros_like(groups).scatter_(2, torch.topk(groups, 2, dim=2).indices, 1.0).reshape(scores.shape)


@checker("wanda_2_4_mask")
def check_wanda_2_4_mask(wanda_2_4_mask: Callable) -> CheckResult:
    """Check ``wanda_2_4_mask(weight, x) -> Tensor``: the 0/1 mask (float, weight's shape) that keeps the 2
    highest Wanda scores of every 4 consecutive inputs; ``weight`` and ``x`` unchanged."""
    name = "wanda_2_4_mask"
    g = torch.Generator().manual_seed(0)
    big = torch.randn(64, 8, generator=g) * torch.tensor([0.1, 5.0, 0.2, 3.0, 1.0, 0.05, 2.0, 0.5])
    cases = [(torch.tensor([[1.0, -2.0, 3.0, -4.0]]), torch.tensor([[4.0, 0.0, 0.0, 1.0], [3.0, 0.0, 1.0, 0.0]])),
             (torch.ones(1, 4), torch.tensor([[1.0, 3.5, 0.95, 0.1], [1.0, 0.0, 0.95, 0.1], [1.0, 0.0, 0.95, 0.1],
                                              [1.0, 0.0, 0.95, 0.1]])),     # a steady channel and a spiky one
             (torch.randn(3, 8, generator=g), big),
             (torch.randn(5, 16, generator=g), torch.randn(32, 16, generator=g) * torch.rand(16, generator=g) * 4)]
    for weight, x in cases:
        where = f"for weight of shape {tuple(weight.shape)} and x of shape {tuple(x.shape)}"
        before = (weight.clone(), x.clone())
        got = run_learner(wanda_2_4_mask, (weight, x), name, case=where[4:])
        _check_inputs_unchanged(before, (weight, x), name, where, "weight or x")
        expected = wanda_2_4_mask_reference(weight, x)
        require(check_returned(got, name, where, torch.Tensor, dtype="float", shape=weight.shape, what="mask"))
        if not torch.equal(got.float(), expected):
            per_group = got.reshape(weight.shape[0], -1, 4).sum(2)
            if not torch.all(per_group == 2):
                hint = "each group of 4 consecutive inputs of a row keeps exactly 2 weights (50 % sparsity)."
            else:
                hint = _named_mistake(got.float(), [
                    (_mask_of(weight.abs()), "that is magnitude pruning: multiply |W| by each input channel's "
                                             "norm over the tokens, x.norm(dim=0)."),
                    (_mask_of(weight.abs() * x.abs().mean(0)), "Wanda uses the L2 norm of each input channel, "
                                                              "x.norm(dim=0), not its mean magnitude."),
                    (_mask_of(-(weight.abs() * x.norm(dim=0))), "keep the 2 HIGHEST scores of each group, prune "
                                                               "the 2 lowest."),
                    (_mask_of(weight * x.norm(dim=0)), "score the magnitude |W|: a large negative weight matters "
                                                      "as much as a large positive one.")],
                    "score = weight.abs() * x.norm(dim=0); in each group of 4 along a row, keep the top 2.")
            return failed(name, f"{where}: {int((got.float() != expected).sum())} entries differ. Hint: {hint}")
    return passed(name, len(cases), f"all {len(cases)} cases pass (|W| times the inputs' L2 norm, 2 of every 4 "
                  "kept, along each row)")


# ----------------------------------------------------------------------------- the int8 KV cache

def quantize_kv_reference(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 rounding of keys or values ``x`` (..., head_dim), one scale per vector (the last
    axis): :math:`s = \\max |x| / 127` in float16, codes :math:`\\mathrm{clamp}(\\mathrm{round}(x / s),
    -127, 127)` as int8. Returns ``(codes, scales)`` with scales (..., 1)."""
    scales = (x.abs().amax(-1, keepdim=True) / 127).half().clamp_min(FLOAT16_TINIEST)
    return torch.round(x / scales.float()).clamp(-127, 127).to(torch.int8), scales


@checker("quantize_kv")
def check_quantize_kv(quantize_kv: Callable) -> CheckResult:
    """Check ``quantize_kv(x) -> (codes, scales)`` against :func:`quantize_kv_reference`; ``x``
    unchanged."""
    name = "quantize_kv"
    cases = [torch.tensor([[1.0, -0.5, 0.25, 2.54]]), _seeded(2, 3, 5, 8, seed=4),
             torch.cat([_seeded(1, 2, 4, 16, seed=5), torch.zeros(1, 2, 1, 16)], 2)]
    for x in cases:
        where = f"for x of shape {tuple(x.shape)}"
        before = x.clone()
        got = run_learner(quantize_kv, (x,), name, case=where[4:])
        _check_inputs_unchanged((before,), (x,), name, where, "x")
        require(check_returned(got, name, where, tuple, what="(codes, scales)"))
        codes, scales = quantize_kv_reference(x)
        if len(got) != 2:
            return failed(name, f"{where}: expected 2 tensors (codes, scales), got {len(got)}.")
        require(check_returned(got[0], name, where, torch.Tensor, dtype=torch.int8, shape=codes.shape, what="codes"))
        require(check_returned(got[1], name, where, torch.Tensor, dtype=torch.float16, shape=scales.shape,
                               what="scales (one per vector, keepdim=True)"))
        if bool((got[1] == 0).any()):
            return failed(name, f"{where}: a scale of 0 (for the all-zero vector). Hint: {_ZERO_SCALE_HINT}")
        if not (torch.equal(got[0], codes) and torch.equal(got[1], scales)):
            tensor_scale = (x.abs().max() / 127).clamp_min(1e-8).half()
            hint = _named_mistake(got[1].float().expand_as(scales).contiguous(), [
                (tensor_scale.float().expand_as(scales), "one scale per vector (per token and head: the last axis), "
                                                         "not one for the whole tensor: x.abs().amax(-1, keepdim=True)."),
                ((x.abs().amax(-1, keepdim=True) / 128).half().float(), "divide by 127, not 128: symmetric codes "
                                                                         "use [-127, 127], so +max maps to 127."),
                ((x.amax(-1, keepdim=True) - x.amin(-1, keepdim=True)).div(255).half().float(),
                 "the cache is symmetric (no zero-point): s = max|x| / 127, not (max - min) / 255.")],
                "")
            if not hint:
                truncated = torch.trunc(x / scales.float()).clamp(-127, 127).to(torch.int8)
                hint = ("the codes are truncated: round them with torch.round(x / s)." if torch.equal(got[0], truncated)
                        else "s = x.abs().amax(-1, keepdim=True) / 127 in float16, floored there at 2**-24 (a floor of "
                             "1e-8 before .half() rounds to 0, and an all-zero vector divides 0 by 0); codes = "
                             "round(x / s), clamped to [-127, 127], as int8.")
            return failed(name, f"{where}: codes or scales differ. Hint: {hint}")
    return passed(name, len(cases), f"all {len(cases)} cases pass (a scale per vector, 127 levels a side, float16 "
                  "scales, int8 codes, an all-zero vector)")
