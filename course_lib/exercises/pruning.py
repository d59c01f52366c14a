"""Checkers for notebook 01: magnitude pruning of a tensor, choosing channels to keep."""

from __future__ import annotations

from typing import Callable

import torch

from .checking import CheckResult, call_learner_function


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
        got, failure = call_learner_function(magnitude_prune, (w, sparsity), name)
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
        got, failure = call_learner_function(select_channels, (w.clone(), keep), name)
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
