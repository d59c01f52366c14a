"""Exercises of notebook 04, low-rank approximation: the truncated SVD as two factors, a Linear
layer split into two, the rank that keeps a fraction of the energy, the Tucker-2 (HOSVD)
decomposition of a conv kernel, and the LoRA forward pass.

Each exercise has a reference (``*_reference``, for :func:`falls_back_to`) and a checker
(``check_*``) that tests the learner's code on small hand-made cases and names typical mistakes.
The references are plain torch, written to be read beside the notebook.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from .checking import (check_returned, check_unchanged, checker, CheckResult, close_to, describe, failed, passed,
                       require, run_learner)

__all__ = ["svd_factors_reference", "check_svd_factors", "factorize_linear_reference", "check_factorize_linear",
           "choose_rank_reference", "check_choose_rank", "tucker2_reference", "check_tucker2",
           "lora_forward_reference", "check_lora_forward"]


def _show(t: torch.Tensor) -> str:
    """A matrix by value when tiny, else by shape, for messages."""
    values = t.tolist()
    if t.numel() <= 8:
        return str([[round(v, 4) for v in row] for row in values] if t.dim() == 2 else values)
    return f"of shape {tuple(t.shape)}"



def _close(got: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-4) -> bool:
    return close_to(got, expected, rtol)


def _with_spectrum(m: int, n: int, singular_values: list[float], seed: int,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A seeded (m, n) matrix with exactly these singular values (distinct, so the truncated SVD
    is unique and every wrong answer below gives a different product)."""
    g = torch.Generator().manual_seed(seed)
    k = len(singular_values)
    U = torch.linalg.qr(torch.randn(m, k, generator=g, dtype=torch.float64)).Q          # (m, k)
    V = torch.linalg.qr(torch.randn(n, k, generator=g, dtype=torch.float64)).Q          # (n, k)
    return (U * torch.tensor(singular_values, dtype=torch.float64) @ V.T).to(dtype)


# ----------------------------------------------------------------------------- svd_factors

def svd_factors_reference(W: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, B)`` with :math:`A = U_r \\Sigma_r` (m, r) and :math:`B = V_r^T` (r, n), so that
    ``A @ B`` is the best rank-r approximation of ``W`` (Eckart & Young, 1936)."""
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)      # (m, k), (k,) descending, (k, n)
    return U[:, :rank] * S[:rank], Vh[:rank]


def _svd_cases() -> list[tuple[torch.Tensor, int]]:
    return [
        (torch.tensor([[3.0, 0.0], [0.0, 0.5], [0.0, 0.0]]), 1),                  # the theory cell's example
        (_with_spectrum(4, 6, [4.0, 2.5, 1.5, 0.5], seed=0), 2),                  # wide
        (_with_spectrum(6, 4, [4.0, 2.5, 1.5, 0.5], seed=1), 1),                  # tall
        (_with_spectrum(5, 5, [5.0, 3.0, 2.0, 0.75, 0.25], seed=2, dtype=torch.float64), 3),
    ]


_SVD_STEPS = "U, S, Vh = torch.linalg.svd(W, full_matrices=False); A = U[:, :rank] * S[:rank]; B = Vh[:rank]"


def _product_hint(W: torch.Tensor, rank: int, P: torch.Tensor, left: str, right: str, transposed: str) -> str:
    """Name what a wrong rank-``rank`` product ``P`` of ``W``'s factors did, from its singular
    values (unchanged by the signs and rotations the factors may take). ``left``/``right`` name
    the factors that should hold :math:`U_r \\Sigma_r` and :math:`V_r^T`."""
    S = torch.linalg.svdvals(W.detach().double())                        # (k,) descending
    got = torch.linalg.svdvals(P.detach().double())[:rank]
    U, _, Vh = torch.linalg.svd(W.detach().double(), full_matrices=False)
    if W.shape[0] == W.shape[1] and _close(P, (U[:, :rank] * S[:rank] @ Vh[:rank]).T):
        return transposed
    pad = lambda v: torch.cat([v, v.new_zeros(rank - len(v))])
    candidates = [
        (S[:rank] ** 2, f"Σ is applied twice: it belongs in ONE factor ({left} = U[:, :r] * S[:r], "
                        f"{right} = Vh[:r]); in both, the product has σ² instead of σ."),
        (torch.ones(rank, dtype=torch.float64), f"the singular values are missing: {left} = U[:, :r] * S[:r] "
                                                "(U's columns scaled by S), not U alone."),
        (S[-rank:] if rank < len(S) else S[:0],
         "you kept the SMALLEST singular values: torch.linalg.svd returns them in DESCENDING "
         "order, so the best rank-r approximation takes the first r: U[:, :r], S[:r], Vh[:r]."),
        (pad(S[:rank - 1]), "off by one: keep exactly r = rank components (U[:, :rank]), not rank - 1."),
        (pad(S[1:rank + 1]), "Python indexes from 0: the leading components are U[:, :rank], S[:rank], "
                             "Vh[:rank], not U[:, 1:rank + 1]."),
        (S[:rank], f"the singular values are right but the singular vectors are not: {left} takes U's "
                   f"first r COLUMNS (left vectors), {right} Vh's first r ROWS (torch.linalg.svd returns "
                   "Vh = Vᵀ, already transposed; the old torch.svd returns V, which needs .T)."),
    ]
    for values, hint in candidates:
        if len(values) == rank and _close(got, values):
            return hint
    return f"{left} = U[:, :r] * S[:r] and {right} = Vh[:r], from torch.linalg.svd(W, full_matrices=False)."


def _factor_shapes_hint(A: torch.Tensor, B: torch.Tensor, m: int, n: int, rank: int) -> str | None:
    a, b = tuple(A.shape), tuple(B.shape)
    if a == (m, rank) and b == (rank, n):
        return None
    if m != n and a == (n, rank) and b == (rank, m):
        return (f"U and V are swapped: A = U[:, :rank] * S[:rank] has W's {m} rows (left singular "
                f"vectors), B = Vh[:rank] its {n} columns.")
    if a in ((m, rank - 1), (m, rank + 1)) or b in ((rank - 1, n), (rank + 1, n)):
        return (f"off by one: keep exactly rank={rank} components: U[:, :rank], S[:rank], Vh[:rank] "
                f"(A {(m, rank)}, B {(rank, n)}).")
    if a == (m, rank) and len(b) == 2 and b[1] == rank:
        return ("B = V_rᵀ has shape (rank, n): torch.linalg.svd returns Vh = Vᵀ already, so take its "
                "first rank ROWS, Vh[:rank] (not Vh[:, :rank], not Vh[:rank].T).")
    if a == (m, min(m, n)) or b == (min(m, n), n):
        return "keep only the first rank components: U[:, :rank] * S[:rank] and Vh[:rank]."
    return f"A must have shape {(m, rank)} and B {(rank, n)}: {_SVD_STEPS}."


@checker("svd_factors")
def check_svd_factors(svd_factors: Callable[[torch.Tensor, int], tuple]) -> CheckResult:
    """Check ``svd_factors(W, rank) -> (A, B)``: ``A`` (m, r) :math:`= U_r \\Sigma_r`, ``B``
    (r, n) :math:`= V_r^T`, of ``W``'s dtype, so that ``A @ B`` is the best rank-r approximation
    of ``W`` (judged by the product, since the factors are unique only up to signs); ``W``
    unchanged. Reference: :func:`svd_factors_reference`."""
    name = "svd_factors"
    cases = _svd_cases()
    for W, rank in cases:
        m, n = W.shape
        original = W.clone()
        where = f"for W {_show(W)} ({W.dtype}) and rank={rank}"
        got = run_learner(svd_factors, (W, rank), name, case=where[4:])
        require(check_unchanged(original, W, name, where, "W", "torch.linalg.svd(W) only reads W; never "
                                "write into W (W[...] = ..., W -= ...)."))
        if isinstance(got, torch.Tensor) and got.shape == W.shape:
            return failed(name, f"{where} you returned one matrix of W's shape. Hint: return the two "
                          "factors (A, B), not their product A @ B: storing A and B is what saves memory.")
        require(check_returned(got, name, where, (tuple, list), what="(A, B) pair"))
        if len(got) != 2:
            return failed(name, f"{where} return two factors (A, B), got {len(got)} values. Hint: fold "
                          "the singular values into A: A = U[:, :rank] * S[:rank].")
        A, B = got
        require((check_returned(A, name, where, torch.Tensor, dtype=W.dtype, what="factor A")
                 or check_returned(B, name, where, torch.Tensor, dtype=W.dtype, what="factor B")))
        hint = _factor_shapes_hint(A, B, m, n, rank)
        if hint:
            return failed(name, f"{where}: A has shape {tuple(A.shape)} and B {tuple(B.shape)}, expected "
                          f"{(m, rank)} and {(rank, n)}. Hint: {hint}")
        expected = (lambda A, B: A @ B)(*svd_factors_reference(W, rank))
        product = A.detach() @ B.detach()
        if not _close(product, expected):
            hint = _product_hint(W, rank, product, "A", "B", "your A @ B approximates Wᵀ, not W: U and V are "
                                 "swapped (A comes from U, the LEFT singular vectors; B = Vh[:rank]).")
            return failed(name, f"{where}: A @ B should be the best rank-{rank} approximation "
                          f"{_show(expected)}, got {_show(product)} (max difference "
                          f"{(product - expected).abs().max().item():.3g}). Hint: {hint}")
    return passed(name, len(cases), f"all {len(cases)} cases pass (A @ B is the best rank-r approximation; "
                  "tall, wide and square W; shapes, dtype; W unchanged)")


# ----------------------------------------------------------------------------- factorize_linear

def factorize_linear_reference(layer: nn.Linear, rank: int) -> nn.Sequential:
    """A new ``nn.Sequential(nn.Linear(n, rank, bias=False), nn.Linear(rank, m))`` computing
    :math:`x (U_r \\Sigma_r V_r^T)^T + b`: the first weight is :math:`V_r^T` (r, n), the second
    :math:`U_r \\Sigma_r` (m, r) with the layer's bias. The given layer is not modified."""
    W = layer.weight.detach()                                 # (m, n) = (out_features, in_features)
    m, n = W.shape
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    first = nn.Linear(n, rank, bias=False, dtype=W.dtype, device=W.device)
    second = nn.Linear(rank, m, bias=layer.bias is not None, dtype=W.dtype, device=W.device)
    with torch.no_grad():
        first.weight.copy_(Vh[:rank])                         # (r, n)
        second.weight.copy_(U[:, :rank] * S[:rank])           # (m, r)
        if layer.bias is not None:
            second.bias.copy_(layer.bias)                     # the bias comes after the product
    return nn.Sequential(first, second).train(layer.training)


def _linear(m: int, n: int, singular_values: list[float], seed: int, bias: bool = True,
            dtype: torch.dtype = torch.float32) -> nn.Linear:
    layer = nn.Linear(n, m, bias=bias, dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(_with_spectrum(m, n, singular_values, seed, dtype))
        if bias:
            layer.bias.copy_(torch.randn(m, generator=torch.Generator().manual_seed(seed + 100)))
    return layer


def _factorize_cases() -> list[tuple[nn.Linear, int]]:
    return [
        (_linear(4, 6, [4.0, 2.5, 1.5, 0.5], seed=3), 2),                         # Linear(6 -> 4)
        (_linear(5, 5, [5.0, 3.0, 2.0, 0.75, 0.25], seed=4), 3),                  # square: a transpose computes
        (_linear(6, 3, [3.0, 1.5, 0.5], seed=5, bias=False, dtype=torch.float64), 2),
    ]


def _module_hint(layer: nn.Linear, rank: int, first: nn.Linear, second: nn.Linear) -> str | None:
    """Name what is wrong in the structure of the two returned layers, or None."""
    m, n = layer.weight.shape
    if (first.in_features, first.out_features, second.in_features, second.out_features) == (rank, m, n, rank):
        return ("the two layers are in the wrong order: x (n features) goes first into Linear(n, rank) "
                "(weight Vh[:rank]), then into Linear(rank, m) (weight U_r Σ_r, with the bias).")
    if first.out_features in (rank - 1, rank + 1) or second.in_features in (rank - 1, rank + 1):
        return (f"off by one: the layers meet in exactly rank={rank} features: Linear({n}, {rank}), "
                f"Linear({rank}, {m}).")
    if (first.in_features, first.out_features, second.in_features, second.out_features) != (n, rank, rank, m):
        return f"expected Linear({n}, {rank}, bias=False) then Linear({rank}, {m})."
    if tuple(first.weight.shape) != (rank, n) or tuple(second.weight.shape) != (m, rank):
        return (f"nn.Linear stores its weight as (out_features, in_features): the first layer's weight "
                f"is Vh[:rank], shape {(rank, n)}; the second's U[:, :rank] * S[:rank], shape {(m, rank)}; "
                f"got {tuple(first.weight.shape)} and {tuple(second.weight.shape)}.")
    if first.bias is not None:
        return ("the first Linear must have bias=False (nn.Linear's default is bias=True): the layer's "
                "bias belongs on the SECOND layer, added after the whole rank-r product.")
    if layer.bias is not None and second.bias is None:
        return ("the bias is forgotten: the rank-r product replaces W only; build the second layer with "
                "bias=True and copy layer.bias into it.")
    if layer.bias is None and second.bias is not None:
        return "the given layer has no bias: build the second layer with bias=layer.bias is not None."
    if first.weight.dtype != layer.weight.dtype or second.weight.dtype != layer.weight.dtype:
        return (f"keep the layer's dtype ({layer.weight.dtype}): nn.Linear(..., dtype=layer.weight.dtype), "
                f"got {first.weight.dtype} and {second.weight.dtype}.")
    originals = [p.detach().untyped_storage().data_ptr() for p in layer.parameters()]
    new = (*first.parameters(), *second.parameters())
    if any(p.detach().untyped_storage().data_ptr() in originals for p in new):
        return ("the new module shares a tensor with the given layer (e.g. second.bias = layer.bias, or "
                "nn.Parameter(layer.bias.detach())): fine-tuning it would change the original; copy "
                "instead (second.bias.copy_(layer.bias) under torch.no_grad(), or .clone()).")
    return None


@checker("factorize_linear")
def check_factorize_linear(factorize_linear: Callable[[nn.Linear, int], nn.Module]) -> CheckResult:
    """Check ``factorize_linear(layer, rank) -> nn.Sequential``: a NEW module
    ``nn.Sequential(nn.Linear(n, rank, bias=False), nn.Linear(rank, m))`` of the layer's dtype,
    with weights :math:`V_r^T` and :math:`U_r \\Sigma_r` and the layer's bias (if any) on the
    second Linear, so that it computes :math:`x W_r^T + b` with :math:`W_r` the best rank-r
    approximation of the weight (compared with the reference on random inputs); the given layer
    unchanged and sharing no tensor with the result. Reference: :func:`factorize_linear_reference`."""
    name = "factorize_linear"
    cases = _factorize_cases()
    for layer, rank in cases:
        m, n = layer.weight.shape
        before = copy.deepcopy(layer)
        where = (f"for Linear(in_features={n}, out_features={m}, bias={layer.bias is not None}) "
                 f"({layer.weight.dtype}) and rank={rank}")
        got = run_learner(factorize_linear, (layer, rank), name, case=where[4:], hints={
            "NoneType": "the layer may have no bias (layer.bias is None): build the second Linear with "
     "bias=layer.bias is not None and copy the bias only when there is one."})
        require(check_unchanged(before, layer, name, where, "the given layer", "read layer.weight.detach() "
                                "and build NEW nn.Linear layers; never assign to the layer's .weight or "
                                ".bias, nor run in-place ops on them."))
        if got is layer:
            return failed(name, f"{where} you returned the given layer. Hint: build a new nn.Sequential.")
        require(check_returned(got, name, where, nn.Module, what="factorized module"))
        layers = list(got) if isinstance(got, nn.Sequential) else []
        if len(layers) != 2 or not all(isinstance(l, nn.Linear) for l in layers):
            return failed(name, f"{where} expected nn.Sequential(nn.Linear({n}, {rank}, bias=False), "
                          f"nn.Linear({rank}, {m})), got {describe(got)}.")
        hint = _module_hint(layer, rank, *layers)
        if hint:
            return failed(name, f"{where}: {describe(got, 200)}. Hint: {hint}")
        x = torch.randn(5, n, generator=torch.Generator().manual_seed(m * n), dtype=layer.weight.dtype)
        with torch.no_grad():
            out = got(x)
            expected = factorize_linear_reference(layer, rank)(x)
        if not _close(out, expected):
            first, second = layers
            if layer.bias is not None and not torch.allclose(second.bias.detach(), layer.bias.detach()):
                hint = ("the second layer's bias must equal layer.bias (a new nn.Linear starts with a random "
                        "bias): copy it with second.bias.copy_(layer.bias) under torch.no_grad().")
            else:
                hint = _product_hint(layer.weight, rank, second.weight.detach() @ first.weight.detach(),
                                     "the second layer's weight", "the first layer's weight",
                                     "the weights are transposed: nn.Linear computes x @ weight.T, so your "
                                     "module computes x W_r instead of x W_rᵀ; the first weight is "
                                     "Vh[:rank] (rank, n), the second U[:, :rank] * S[:rank] (m, rank).")
            return failed(name, f"{where}: on random inputs your module's outputs differ from the rank-{rank} "
                          f"layer's (max difference {(out - expected).abs().max().item():.3g}). Hint: {hint}")
    return passed(name, len(cases), f"all {len(cases)} cases pass (Linear(n, r, bias=False) then Linear(r, m) "
                  "with the bias, the rank-r outputs, dtype kept, the layer untouched)")


# ----------------------------------------------------------------------------- choose_rank

def choose_rank_reference(singular_values: torch.Tensor, energy: float) -> int:
    """The smallest :math:`r \\ge 1` with :math:`\\sum_{i<r} \\sigma_i^2 / \\sum_i \\sigma_i^2 \\ge`
    ``energy`` (``singular_values`` sorted descending, as torch.linalg.svd returns them)."""
    power = singular_values.detach().double() ** 2                  # the energy is in the squares
    kept = torch.cumsum(power, 0) / power.sum()                     # (k,): fraction kept by the first i+1
    return min(int((kept < energy).sum()) + 1, len(singular_values))


# Squares 9, 4, 1, 1, 1 out of 16: the fractions kept (0.5625, 0.8125, 0.875, 0.9375, 1) are exact
# binary fractions, so `>=` against `>` is decided exactly.
_SIGMA = [3.0, 2.0, 1.0, 1.0, 1.0]


def _rank_cases() -> list[tuple[torch.Tensor, float]]:
    g = torch.Generator().manual_seed(6)
    return [
        (torch.tensor(_SIGMA), 0.8125),                         # the boundary: exactly 13/16 -> 2
        (torch.tensor(_SIGMA), 0.5),                            # 9/16 already -> 1
        (torch.tensor(_SIGMA), 0.95),                           # needs all five
        (torch.tensor(_SIGMA, dtype=torch.float64), 0.0),       # still one component
        (torch.tensor([2.0, 2.0, 0.0, 0.0]), 1.0),              # trailing zeros add no energy -> 2
        (torch.linalg.svdvals(torch.randn(8, 6, generator=g)), 0.9),
    ]


def _first_reaching(fractions: list[float], energy: float, strict: bool = False) -> int:
    reached = [i for i, f in enumerate(fractions) if (f > energy if strict else f >= energy)]
    return reached[0] + 1 if reached else len(fractions)


@checker("choose_rank")
def check_choose_rank(choose_rank: Callable[[torch.Tensor, float], int]) -> CheckResult:
    """Check ``choose_rank(singular_values, energy) -> int``: the smallest :math:`r \\ge 1` such that
    :math:`\\sum_{i<r} \\sigma_i^2 / \\sum_i \\sigma_i^2 \\ge` ``energy``, for singular values
    sorted in descending order (boundary included, a Python int); ``singular_values`` unchanged.
    Reference: :func:`choose_rank_reference`."""
    name = "choose_rank"
    cases = _rank_cases()
    for sigma, energy in cases:
        original = sigma.clone()
        where = f"for singular_values {describe(sigma)} and energy={energy}"
        got = run_learner(choose_rank, (sigma, energy), name, case=where[4:])
        require(check_unchanged(original, sigma, name, where, "singular_values", "sigma ** 2 makes a new "
                                "tensor; sigma.pow_(2) or sigma **= 2 overwrite the caller's values."))
        if isinstance(got, float):
            return failed(name, f"{where} expected an int as the rank, got the float {got!r}. Hint: a rank "
                          "counts components: return int(...).")
        require(check_returned(got, name, where, int, what="rank"))
        expected = choose_rank_reference(sigma, energy)
        if got == expected:
            continue
        power = (sigma.double() ** 2).tolist()
        squares = [sum(power[:i + 1]) / sum(power) for i in range(len(power))]
        plain = [sum(sigma.double().tolist()[:i + 1]) / sigma.double().sum().item() for i in range(len(power))]
        mistakes = [
            (0, "keep at least one component: r counts components, from 1 (a rank-0 layer would output "
                "only its bias)."),
            (_first_reaching(plain, energy), "the energy is in the SQUARES: use σ² (sigma ** 2) in both sums, "
                                             "not σ."),
            (_first_reaching(squares, energy, strict=True), "the boundary is included: a rank that keeps "
                                                            "exactly `energy` qualifies (use >=, not >)."),
            (expected - 1, "off by one: you returned the INDEX of the first component that reaches the "
                           "energy; the rank is the number of components kept, index + 1."),
            (expected + 1, "off by one: return the smallest r whose first r components reach the energy."),
        ]
        hint = next((h for wrong, h in mistakes if wrong == got), "r = the number of leading components whose "
                    "cumulative sigma**2, divided by the total, is still below `energy`, plus one.")
        fractions = [round(f, 4) for f in squares]
        return failed(name, f"{where} (fractions of energy kept by the first r: {fractions}) expected "
                      f"r={expected}, got {got}. Hint: {hint}")
    return passed(name, len(cases), f"all {len(cases)} cases pass (energy in σ², boundary included, "
                  "at least one component, trailing zeros, an int)")


# ----------------------------------------------------------------------------- tucker2

def _leading_left(M: torch.Tensor, rank: int) -> torch.Tensor:
    return torch.linalg.svd(M, full_matrices=False).U[:, :rank]


def tucker2_reference(K: torch.Tensor, rank_out: int, rank_in: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                             torch.Tensor]:
    """``(core, U_out, U_in)``: the Tucker-2 decomposition of a conv kernel ``K``
    (C_out, C_in, kh, kw) by HOSVD on modes 0 and 1 (De Lathauwer et al. 2000; Kim et al. 2016):
    ``U_out`` (C_out, rank_out) and ``U_in`` (C_in, rank_in) are the leading left singular vectors
    of the mode-0 and mode-1 unfoldings, ``core`` (rank_out, rank_in, kh, kw) is K projected on
    them; :math:`K \\approx` ``einsum('rskl,or,is->oikl', core, U_out, U_in)``."""
    C_out, C_in = K.shape[:2]
    U_out = _leading_left(K.reshape(C_out, -1), rank_out)                    # mode 0: (C_out, C_in*kh*kw)
    U_in = _leading_left(K.transpose(0, 1).reshape(C_in, -1), rank_in)       # mode 1: (C_in, C_out*kh*kw)
    core = torch.einsum("oikl,or,is->rskl", K, U_out, U_in)                  # (r_out, r_in, kh, kw)
    return core, U_out, U_in


def _reconstruct(core: torch.Tensor, U_out: torch.Tensor, U_in: torch.Tensor) -> torch.Tensor:
    return torch.einsum("rskl,or,is->oikl", core.double(), U_out.double(), U_in.double())


def _tucker_cases() -> list[tuple[torch.Tensor, int, int]]:
    g = torch.Generator().manual_seed(7)
    return [
        (torch.randn(6, 4, 3, 3, generator=g), 2, 3),
        (torch.randn(5, 5, 1, 1, generator=g, dtype=torch.float64), 2, 3),       # a 1x1 conv
        (torch.randn(4, 6, 3, 3, generator=g), 4, 2),                            # rank_out = C_out: any basis
        (torch.randn(8, 3, 5, 5, generator=g), 2, 3),                            # rank_in = C_in
    ]


def _tucker_shapes_hint(K, rank_out, rank_in, core, U_out, U_in) -> str | None:
    C_out, C_in, kh, kw = K.shape
    if (U_out.shape, U_in.shape, core.shape) == ((C_out, rank_out), (C_in, rank_in), (rank_out, rank_in, kh, kw)):
        return None
    if U_out.shape == (C_out, rank_in) and U_in.shape == (C_in, rank_out) and rank_in != rank_out:
        return "the ranks are swapped: U_out keeps rank_out columns, U_in keeps rank_in."
    if (K.numel() // C_out in U_out.shape and K.numel() // C_out != C_out) or (
            K.numel() // C_in in U_in.shape and K.numel() // C_in != C_in):
        return ("those are RIGHT singular vectors (V): the factor of mode 0 is U[:, :rank_out] of "
                "torch.linalg.svd(K.reshape(C_out, -1)) - one row per output channel - and likewise for mode 1.")
    if core.shape == K.shape:
        return ("the core must be K projected onto the factors: einsum('oikl,or,is->rskl', K, U_out, U_in), "
                "shape (rank_out, rank_in, kh, kw); do not pass K through.")
    return (f"expected core {(rank_out, rank_in, kh, kw)}, U_out {(C_out, rank_out)}, U_in {(C_in, rank_in)}; "
            f"got {tuple(core.shape)}, {tuple(U_out.shape)}, {tuple(U_in.shape)}.")


def _projector(U: torch.Tensor) -> torch.Tensor:
    U = U.detach().double()
    return U @ U.T                                   # independent of the basis' signs and rotation


def _tucker_hint(K, rank_out, rank_in, core, U_out, U_in) -> str:
    C_out, C_in = K.shape[:2]
    Kd = K.detach().double()
    if not _close(core, torch.einsum("oikl,or,is->rskl", Kd, U_out.double(), U_in.double()), rtol=1e-5):
        return ("the core must be K projected onto YOUR factors: core = einsum('oikl,or,is->rskl', K, U_out, "
                "U_in) (a slice of K, or K itself, is not a projection).")
    mode0 = torch.linalg.svd(Kd.reshape(C_out, -1), full_matrices=False).U
    mode1 = torch.linalg.svd(Kd.transpose(0, 1).reshape(C_in, -1), full_matrices=False).U
    if not _close(_projector(U_out), _projector(mode0[:, :rank_out]), rtol=1e-5):
        if _close(_projector(U_out), _projector(mode0[:, -rank_out:]), rtol=1e-5):
            return "U_out holds the LAST singular vectors: take the leading ones, U[:, :rank_out]."
        return "U_out: the leading left singular vectors of the mode-0 unfolding K.reshape(C_out, -1)."
    plain = _leading_left(Kd.reshape(C_in, -1), rank_in)
    if _close(_projector(U_in), _projector(plain), rtol=1e-5):
        return ("K.reshape(C_in, -1) is not the mode-1 unfolding: reshape cuts K's memory (C_out first) into "
                "C_in rows, mixing the two modes; bring mode 1 to the front first: K.transpose(0, 1)"
                ".reshape(C_in, -1).")
    if _close(_projector(U_in), _projector(mode1[:, -rank_in:]), rtol=1e-5):
        return "U_in holds the LAST singular vectors: take the leading ones, U[:, :rank_in]."
    return "U_in: the leading left singular vectors of the mode-1 unfolding K.transpose(0, 1).reshape(C_in, -1)."


@checker("tucker2")
def check_tucker2(tucker2: Callable[[torch.Tensor, int, int], tuple]) -> CheckResult:
    """Check ``tucker2(K, rank_out, rank_in) -> (core, U_out, U_in)`` for a conv kernel ``K``
    (C_out, C_in, kh, kw), by HOSVD on modes 0 and 1: ``U_out`` (C_out, rank_out) and ``U_in``
    (C_in, rank_in) with orthonormal columns spanning the leading left singular vectors of the
    unfoldings ``K.reshape(C_out, -1)`` and ``K.transpose(0, 1).reshape(C_in, -1)``, ``core``
    (rank_out, rank_in, kh, kw) ``= einsum('oikl,or,is->rskl', K, U_out, U_in)``, all of K's
    dtype; judged by the reconstruction ``einsum('rskl,or,is->oikl', core, U_out, U_in)`` (within
    1e-5 of the reference's, relative); K unchanged. Reference: :func:`tucker2_reference`."""
    name = "tucker2"
    cases = _tucker_cases()
    for K, rank_out, rank_in in cases:
        original = K.clone()
        where = f"for K of shape {tuple(K.shape)} ({K.dtype}), rank_out={rank_out}, rank_in={rank_in}"
        got = run_learner(tucker2, (K, rank_out, rank_in), name, case=where[4:], hints={
            "einsum": "the core is einsum('oikl,or,is->rskl', K, U_out, U_in), with U_out (C_out, rank_out) "
   "and U_in (C_in, rank_in): the LEFT singular vectors U[:, :rank] of each unfolding (one "
   "row per channel), not the RIGHT singular vectors (V, one row per column)."})
        require((check_unchanged(original, K, name, where, "K", "K.transpose(0, 1) is a view of K: write "
                                 "nothing into it (reshape and einsum make new tensors).")
                 or check_returned(got, name, where, (tuple, list), what="(core, U_out, U_in)")))
        if len(got) != 3:
            return failed(name, f"{where} return three tensors (core, U_out, U_in), got {len(got)} values.")
        for value, label in zip(got, ("core", "U_out", "U_in")):
            require(check_returned(value, name, where, torch.Tensor, dtype=K.dtype, what=label))
        core, U_out, U_in = (t.detach() for t in got)
        hint = _tucker_shapes_hint(K, rank_out, rank_in, core, U_out, U_in)
        if hint:
            return failed(name, f"{where}: wrong shapes. Hint: {hint}")
        for U, label in ((U_out, "U_out"), (U_in, "U_in")):
            gram = U.double().T @ U.double()
            if not _close(gram, torch.eye(len(gram), dtype=torch.float64), rtol=1e-4):
                return failed(name, f"{where}: the columns of {label} are not orthonormal ({label}ᵀ {label} "
                              f"is not the identity). Hint: the factors are the singular vectors themselves, "
                              "U[:, :rank]: do not scale them by the singular values.")
        expected = _reconstruct(*tucker2_reference(K.double(), rank_out, rank_in))
        rebuilt = _reconstruct(core, U_out, U_in)
        error = ((rebuilt - expected).norm() / expected.norm()).item()
        if error > 1e-5:
            return failed(name, f"{where}: your factors rebuild a kernel {error:.3g} away (relative) from the "
                          f"HOSVD's. Hint: {_tucker_hint(K, rank_out, rank_in, core, U_out, U_in)}")
    return passed(name, len(cases), f"all {len(cases)} cases pass (both unfoldings, leading left singular "
                  "vectors, orthonormal factors, the projected core; K unchanged)")


# ----------------------------------------------------------------------------- lora_forward

def lora_forward_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, A: torch.Tensor,
                           B: torch.Tensor, alpha: float) -> torch.Tensor:
    """LoRA (Hu et al. 2021): :math:`y = x W^T + b + (\\alpha / r)\\, x A^T B^T` with ``x``
    (N, in), ``weight`` (out, in) frozen, ``A`` (r, in), ``B`` (out, r), ``r = A.shape[0]``;
    ``bias`` (out,) or None. Nothing is modified; the result is (N, out)."""
    r = A.shape[0]
    y = x @ weight.T + (alpha / r) * ((x @ A.T) @ B.T)     # (N, out); x @ A.T is (N, r)
    return y if bias is None else y + bias


def _lora_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(8)

    def case(N, n_in, n_out, r, alpha, bias=True, dtype=torch.float32):
        t = lambda *shape: torch.randn(*shape, generator=g, dtype=dtype)
        return (t(N, n_in), t(n_out, n_in), t(n_out) if bias else None, t(r, n_in), t(n_out, r), alpha)
    return [  # (x, weight, bias, A, B, alpha)
        case(2, 5, 3, 2, 4.0),                               # scale alpha / r = 2
        case(4, 6, 5, 3, 8, bias=False),                     # int alpha: 8 / 3, not 8 // 3
        case(3, 3, 3, 3, 1.5, dtype=torch.float64),          # in = out = r: a wrong order computes
    ]


def _lora_mistakes(x, weight, bias, A, B, alpha) -> list[tuple[torch.Tensor, str]]:
    r, n_out, n_in = A.shape[0], B.shape[0], A.shape[1]
    base = x @ weight.T + (0 if bias is None else bias)
    delta = x @ A.T @ B.T                                    # (N, out)
    out = [
        (base, "the low-rank path is missing: add (alpha / r) * (x @ A.T) @ B.T."),
        (base + delta, "the scale alpha / r is missing: multiply the low-rank path by alpha / A.shape[0]."),
        (base + alpha * delta, "the scale is alpha / r, not alpha: divide by the rank r = A.shape[0]."),
        (base + (alpha // r) * delta, f"alpha // r is integer division ({alpha} // {r} = {alpha // r}): "
                                      "use alpha / r."),
        (base + (r / alpha) * delta, "the scale is alpha / r, not r / alpha."),
        (x @ weight.T + (alpha / r) * delta, "the bias is dropped: add it to the output (when it is not None)."),
    ]
    if n_in != r:
        out.append((base + (alpha / n_in) * delta, "r is the rank, A.shape[0], not A.shape[1] (the input size)."))
    if n_out != r:
        out.append((base + (alpha / n_out) * delta, "r is the rank, A.shape[0], not B.shape[0] (the output "
                                                    "size)."))
    if n_in == n_out == r:
        out += [(base + (alpha / r) * (x @ B.T @ A.T), "A and B are in the wrong order: x @ A.T (N, r) first, "
                                                       "then @ B.T (N, out): the update is B @ A, not A @ B."),
                (x @ weight + (0 if bias is None else bias) + (alpha / r) * delta,
                 "x @ weight computes x W; a linear layer computes x @ weight.T (weight is (out, in)).")]
    return out


@checker("lora_forward")
def check_lora_forward(lora_forward: Callable) -> CheckResult:
    """Check ``lora_forward(x, weight, bias, A, B, alpha) -> Tensor``: :math:`y = x W^T + b +
    (\\alpha / r)\\, x A^T B^T` (Hu et al. 2021) with ``x`` (N, in), ``weight`` (out, in), ``bias``
    (out,) or None, ``A`` (r, in), ``B`` (out, r), ``r = A.shape[0]``; a (N, out) tensor of
    ``x``'s dtype; no argument modified (the base weight stays frozen).
    Reference: :func:`lora_forward_reference`."""
    name = "lora_forward"
    cases = _lora_cases()
    for args in cases:
        x, weight, bias, A, B, alpha = args
        before = copy.deepcopy(args)
        where = (f"for x {tuple(x.shape)}, weight {tuple(weight.shape)}, bias "
                 f"{None if bias is None else tuple(bias.shape)}, A {tuple(A.shape)}, B {tuple(B.shape)}, "
                 f"alpha={alpha!r} ({x.dtype})")
        got = run_learner(lora_forward, args, name, case=where[4:], hints={
            "cannot be multiplied": "A and B in the wrong order, or a missing .T? x (N, in) @ A.T (in, r) "
                 "gives (N, r); then @ B.T (r, out) gives (N, out): A acts first.",
            "NoneType": "bias may be None: add it only when it is given."})
        for old, new, label in zip(before, args, ("x", "weight", "bias", "A", "B", "alpha")):
            hint = ("the base weight stays frozen: W += B @ A (or weight.add_) changes the pretrained layer, and "
                    "every later call adds the update again; compute x @ weight.T and the low-rank path "
                    "separately, or merge into a NEW tensor weight + (alpha / r) * B @ A." if label == "weight"
                    else f"{label} is only read: x @ A.T and + make new tensors; in-place ops (mul_, +=) "
                    "overwrite the caller's.")
            require(check_unchanged(old, new, name, where, label, hint))
        expected = lora_forward_reference(*args)
        require(check_returned(got, name, where, torch.Tensor, dtype=x.dtype, shape=expected.shape,
                               what="output y"))
        if not _close(got, expected, rtol=1e-5):
            hint = next((h for wrong, h in _lora_mistakes(*args) if _close(got, wrong, rtol=1e-5)),
                        "y = x @ weight.T + bias + (alpha / r) * (x @ A.T) @ B.T with r = A.shape[0].")
            return failed(name, f"{where}: expected {_show(expected)}, got {_show(got.detach())} (max difference "
                          f"{(got.detach() - expected).abs().max().item():.3g}). Hint: {hint}")
    return passed(name, len(cases), f"all {len(cases)} cases pass (scale alpha / r, A before B, bias or none, "
                  "the frozen weight and x unchanged)")
