"""Exercises of notebook 01, unstructured pruning: magnitude pruning of a tensor, the cubic
sparsity schedule, choosing per-layer sparsities from a sensitivity scan. (Channels: channels.py.)

Each exercise has a reference (``*_reference``, for :func:`falls_back_to`) and a checker
(``check_*``) that tests the learner's code on small hand-made cases and names typical mistakes.
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import torch

from .checking import (check_returned, check_unchanged, checker, CheckResult, describe, failed, passed, require,
                       run_learner)

__all__ = ["magnitude_prune_reference", "check_magnitude_prune", "cubic_sparsity_reference",
           "check_cubic_sparsity", "choose_sparsities_reference", "check_choose_sparsities"]


# ----------------------------------------------------------------------------- magnitude_prune

def magnitude_prune_reference(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """A new tensor: ``weight`` with its ``k = round(sparsity * numel)`` smallest-magnitude entries
    set to zero (ties: the earlier index, as ``torch.topk`` picks); same shape and dtype."""
    k = round(sparsity * weight.numel())
    mask = torch.ones_like(weight)
    if k > 0:
        smallest = torch.topk(weight.detach().abs().reshape(-1), k, largest=False).indices
        mask.view(-1)[smallest] = 0
    return weight * mask


def _prune_cases() -> list[tuple[torch.Tensor, float]]:
    g = torch.Generator().manual_seed(0)
    return [
        (torch.tensor([[0.5, -0.1, 0.3], [-0.7, 0.2, 0.05]]), 0.5),      # the theory cell's example
        (torch.tensor([-3.0, 0.1, 2.0, -0.2]), 0.5),                      # large negatives stay
        (torch.tensor([1.0, 1.0, 1.0, 1.0, 2.0, 0.5]), 0.5),              # ties at the threshold
        (torch.arange(1.0, 11.0), 0.3),                                   # 3 of 10
        (torch.arange(1.0, 11.0), 0.26),                                  # round(2.6) = 3, int() gives 2
        (torch.arange(1.0, 11.0), 0.34),                                  # round(3.4) = 3, ceil gives 4
        (torch.randn(4, 3, 2, 2, generator=g, dtype=torch.float64), 0.75),  # conv weight, float64
        (torch.tensor([0.3, -0.2, 0.1]), 0.0),
    ]


@checker("magnitude_prune")
def check_magnitude_prune(magnitude_prune: Callable[[torch.Tensor, float], torch.Tensor]) -> CheckResult:
    """Check ``magnitude_prune(weight, sparsity) -> Tensor``: a NEW tensor of ``weight``'s shape
    and dtype in which exactly ``k = round(sparsity * weight.numel())`` entries of smallest
    magnitude :math:`|w|` are zero (any choice among ties) and every other entry keeps its
    value; ``weight`` itself unchanged. Reference: :func:`magnitude_prune_reference`."""
    name = "magnitude_prune"
    cases = _prune_cases()
    for w, sparsity in cases:
        original = w.clone()
        k = round(sparsity * w.numel())
        where = f"for weight {describe(w)} and sparsity {sparsity}"
        got = run_learner(magnitude_prune, (w, sparsity), name, case=where[4:])
        require((check_unchanged(original, w, name, where, "its input weight", "work on a copy "
                                 "(weight.clone()) or build a mask and return weight * mask.")
                 or check_returned(got, name, where, torch.Tensor, dtype=w.dtype, shape=w.shape,
                                   what="pruned weight")))
        if bool(((got == 0) | (got == 1)).all()) and not bool(((w == 0) | (w == 1)).all()):
            return failed(name, f"{where} your function returned only 0s and 1s. Hint: that is the "
                          "mask; return the pruned weights, weight * mask.")
        kept = got != 0
        if not torch.equal(got[kept], w[kept]):
            return failed(name, f"{where} some kept weights changed value. Hint: pruning only sets "
                          "weights to zero; the others keep their values.")
        zeroed = (got == 0) & (w != 0)
        n_zero = int((got == 0).sum())
        if n_zero == k and not (zeroed.any() and w[zeroed].abs().max() > w[kept].abs().min()):
            continue
        exact = sparsity * w.numel()
        if n_zero == w.numel() - k and n_zero != k:
            hint = "sparsity is the fraction of weights set to ZERO, not the fraction kept."
        elif n_zero == k and w[zeroed].abs().min() >= w[kept].abs().max():
            hint = "you pruned the wrong end: remove the SMALLEST magnitudes, keep the largest."
        elif n_zero == k:
            hint = "compare magnitudes |w| (weight.abs()), not signed values: -3.0 is a large weight."
        elif n_zero > k and w.abs().unique().numel() < w.numel():
            hint = ("with ties at the threshold, `abs(w) <= threshold` removes too many. Take "
                    "exactly k indices, e.g. torch.topk(w.abs().flatten(), k, largest=False).indices.")
        elif n_zero == math.floor(exact):
            hint = (f"{sparsity} * {w.numel()} = {exact:g}: int() and math.floor round DOWN; the "
                    f"number to prune is k = round(sparsity * numel) = {k}.")
        elif n_zero == math.ceil(exact):
            hint = (f"{sparsity} * {w.numel()} = {exact:g}: math.ceil rounds UP; the number to "
                    f"prune is k = round(sparsity * numel) = {k}.")
        elif abs(n_zero - k) == 1:
            hint = "off by one: the number to prune is k = round(sparsity * numel), exactly."
        else:
            hint = f"expected exactly k = round(sparsity * numel) = {k} zeros."
        what = (f"you zeroed {describe(w[zeroed])}" if n_zero == k else f"expected {k} zeros, got {n_zero}")
        return failed(name, f"{where} {what}. Hint: {hint}")
    return passed(name, len(cases), f"all {len(cases)} cases pass (ties, negatives, exact counts "
                  "with round(), dtype kept, input left unchanged)")


# ----------------------------------------------------------------------------- cubic_sparsity

def cubic_sparsity_reference(step: int, total_steps: int, final: float, initial: float = 0.0) -> float:
    """Zhu & Gupta (2017), "To prune, or not to prune", Eq. 1:
    :math:`s_t = s_f + (s_i - s_f)(1 - t/n)^3` for :math:`t = 0..n`."""
    return final + (initial - final) * (1 - step / total_steps) ** 3


_CUBIC_CASES = [  # (step, total_steps, final, initial): t = n first, then t = 0, then the middle
    (10, 10, 0.8, 0.0), (0, 10, 0.8, 0.0), (3, 10, 0.8, 0.0), (7, 10, 0.9, 0.2), (2, 4, 0.5, 0.1),
    (4, 4, 0.5, 0.1), (1, 3, 0.75, 0.0),
]


def _cubic_mistakes(t: int, n: int, f: float, i: float) -> list[tuple[float, str]]:
    return [
        (f + (i - f) * (1 - t // n) ** 3, "t // n is integer division (0 until the last step): "
                                          "use t / n."),
        (i + (f - i) * (t / n) ** 3, "(t/n)**3 starts slowly and prunes most at the end; Zhu & Gupta "
                                     "prune FAST at first, when many weights are redundant: use "
                                     "(1 - t/n)**3, s_t = s_f + (s_i - s_f)(1 - t/n)**3."),
        (f * (t / n) ** 3, "(t/n)**3 starts slowly and prunes most at the end; Zhu & Gupta prune "
                           "FAST at first: s_t = s_f + (s_i - s_f)(1 - t/n)**3."),
        (i + (f - i) * t / n, "that is a linear schedule; the cubic one is "
                              "s_t = s_f + (s_i - s_f)(1 - t/n)**3."),
        (i + (f - i) * (1 - t / n) ** 3, "initial and final are swapped: the schedule must start at "
                                         "`initial` (t = 0) and end at `final` (t = n)."),
        (f * (1 - (1 - t / n) ** 3), "`initial` is ignored: s_t = s_f + (s_i - s_f)(1 - t/n)**3 "
                                     "starts at s_i."),
    ]


@checker("cubic_sparsity")
def check_cubic_sparsity(cubic_sparsity: Callable[..., float]) -> CheckResult:
    """Check ``cubic_sparsity(step, total_steps, final, initial=0.0) -> float``, the gradual
    pruning schedule of Zhu & Gupta (2017), Eq. 1:
    :math:`s_t = s_f + (s_i - s_f)(1 - t/n)^3` for :math:`t = 0..n` (a Python float, equal to
    ``initial`` at t = 0 and to ``final`` at t = n). Reference: :func:`cubic_sparsity_reference`."""
    name = "cubic_sparsity"
    for t, n, f, i in _CUBIC_CASES:
        expected = cubic_sparsity_reference(t, n, f, i)
        where = f"for step={t}, total_steps={n}, final={f}, initial={i}"
        got = run_learner(cubic_sparsity, (t, n, f, i), name, case=where[4:])
        require(check_returned(got, name, where, (float, int), what="sparsity"))
        if not math.isfinite(got) or abs(got - expected) > 1e-9:
            hint = next((h for wrong, h in _cubic_mistakes(t, n, f, i) if abs(wrong - expected) > 1e-9
                         and abs(wrong - got) <= 1e-9), None)
            if hint is None and got > max(f, i) + 1e-9:
                hint = ("the schedule never exceeds `final`: at t = n, (1 - t/n) = 0 so s_n = s_f "
                        "exactly. Check how you use step and total_steps.")
            hint = hint or "s_t = final + (initial - final) * (1 - step / total_steps) ** 3."
            return failed(name, f"{where} expected {expected:.6g}, got {got:.6g}. Hint: {hint}")
    return passed(name, len(_CUBIC_CASES), f"all {len(_CUBIC_CASES)} cases pass (starts at initial, "
                  "ends exactly at final, fast at first)")


# ----------------------------------------------------------------------------- choose_sparsities

def choose_sparsities_reference(scan: dict[str, list[tuple[float, float]]], baseline_accuracy: float,
                                max_drop: float) -> dict[str, float]:
    """For each layer, the highest scanned sparsity whose accuracy is at least
    ``baseline_accuracy - max_drop`` (absolute points, boundary included), 0.0 if none is."""
    return {layer: max([s for s, accuracy in points if accuracy >= baseline_accuracy - max_drop], default=0.0)
            for layer, points in scan.items()}


def _sparsity_cases() -> list[tuple[dict[str, list[tuple[float, float]]], float, float]]:
    # Binary fractions, so `>=` against `>` is decided exactly. Threshold 0.75 - 0.125 = 0.625;
    # a relative drop would give 0.75 * (1 - 0.125) = 0.65625.
    return [
        ({"boundary": [(0.25, 0.75), (0.375, 0.640625), (0.5, 0.625), (0.75, 0.5)],    # 0.5
          "unsorted": [(0.5, 0.6875), (0.75, 0.6875), (0.25, 0.75), (0.875, 0.5)],      # 0.75
          "bumpy": [(0.25, 0.75), (0.5, 0.5), (0.75, 0.6875), (0.875, 0.5)],            # 0.75
          "fragile": [(0.5, 0.25), (0.25, 0.5)]},                                      # 0.0
         0.75, 0.125),
        ({"fc": [(0.5, 0.4375), (0.25, 0.5)]}, 0.5, 0.0),                              # 0.25
    ]


def _sparsity_mistakes(scan, baseline, drop) -> list[tuple[dict, str]]:
    threshold = baseline - drop

    def in_order(stop: bool, ordered: bool):
        out = {}
        for layer, points in scan.items():
            best = 0.0
            for s, accuracy in (sorted(points) if ordered else points):
                if accuracy >= threshold:
                    best = s
                elif stop:
                    break
            out[layer] = best
        return out
    stop_hint = ("do not stop at the first sparsity that fails: accuracy is not always decreasing in "
                 "sparsity (and the scan is not sorted), a higher sparsity can qualify again; take the "
                 "max over ALL qualifying points.")
    return [
        ({layer: max([s for s, a in points if a > threshold], default=0.0) for layer, points in scan.items()},
         "the boundary is included: a layer whose accuracy is exactly baseline - max_drop qualifies "
         "(use >=, not >)."),
        ({layer: max([s for s, a in points if a >= baseline * (1 - drop)], default=0.0)
          for layer, points in scan.items()},
         "max_drop is in absolute accuracy points: keep accuracy >= baseline_accuracy - max_drop, not "
         "a relative drop baseline * (1 - max_drop)."),
        (in_order(stop=False, ordered=False), "the scan is not sorted by sparsity: take the max over the "
                                              "qualifying sparsities, not the last one in the list."),
        (in_order(stop=True, ordered=False), stop_hint),
        (in_order(stop=True, ordered=True), stop_hint),
    ]


@checker("choose_sparsities")
def check_choose_sparsities(choose_sparsities: Callable) -> CheckResult:
    """Check ``choose_sparsities(scan, baseline_accuracy, max_drop) -> dict[str, float]``: ``scan``
    is ``{layer: [(sparsity, accuracy), ...]}`` (not necessarily sorted by sparsity, accuracy not
    always decreasing); for each layer the highest scanned sparsity whose accuracy is
    ``>= baseline_accuracy - max_drop`` (absolute points, boundary included), 0.0 if none
    qualifies; ``scan`` unchanged. Reference: :func:`choose_sparsities_reference`."""
    name = "choose_sparsities"
    cases = _sparsity_cases()
    for scan, baseline, drop in cases:
        before = copy.deepcopy(scan)
        where = f"for baseline_accuracy={baseline}, max_drop={drop}"
        got = run_learner(choose_sparsities, (scan, baseline, drop), name, case=where[4:],
                          hints={"empty sequence": "a layer where no sparsity qualifies "
                                 "gets 0.0: max(..., default=0.0)."})
        require((check_unchanged(before, scan, name, where, "the scan", "sorted(points) makes a sorted "
                                 "copy; points.sort() sorts the caller's list in place.")
                 or check_returned(got, name, where, dict, what="choice per layer")))
        expected = choose_sparsities_reference(scan, baseline, drop)
        if set(got) != set(expected):
            return failed(name, f"{where} expected one entry per layer {list(expected)}, got keys "
                          f"{list(got)}.")
        for layer in expected:
            if got[layer] is None:
                return failed(name, f"{where}, layer {layer!r} got None. Hint: a layer where no scanned "
                              "sparsity qualifies gets 0.0 (keep all its weights).")
            at = f"{where} and layer {layer!r} scanned at (sparsity, accuracy) {scan[layer]}"
            require(check_returned(got[layer], name, at, (float, int), what="sparsity"))
            if got[layer] != expected[layer]:
                hint = next((h for wrong, h in _sparsity_mistakes(scan, baseline, drop)
                             if wrong[layer] == got[layer]), "keep the highest sparsity s whose accuracy "
                            ">= baseline_accuracy - max_drop, over all the layer's points.")
                return failed(name, f"{at}: expected {expected[layer]}, got {got[layer]}. Hint: {hint}")
    return passed(name, len(cases), "all cases pass (boundary included, unsorted and non-monotone "
                  "scans, absolute drop, 0.0 when nothing qualifies)")
