"""Exercise of notebook 02, mixed precision: choosing bits per layer under a size budget.

The reference (``bits_for_budget_reference``, for :func:`falls_back_to`) and a checker that tests the
learner's code on small hand-made cases and names typical mistakes.
"""

from __future__ import annotations

import copy
from typing import Callable

from .checking import (call_learner_function, check_returned, check_unchanged, checker, CheckResult, failed, passed,
                       require)

__all__ = ["bits_for_budget_reference", "check_bits_for_budget"]


# ----------------------------------------------------------------------------- bits_for_budget

def _bytes(n: int, bits: int) -> int:
    return -(-n * bits // 8)          # ceil(n * bits / 8): a partial byte still takes a byte


def bits_for_budget_reference(sensitivity: dict[str, dict[int, float]], sizes: dict[str, int],
                          budget_bytes: int) -> dict[str, int]:
    """Bits per layer within ``budget_bytes`` (a greedy knapsack, as in HAQ's budget-constrained
    search): ``sensitivity[layer][bits]`` is the accuracy with only that layer at ``bits``,
    ``sizes[layer]`` its number of weights, taking :math:`\\lceil n b / 8 \\rceil` bytes. Start
    every layer at its highest scanned bits; while over budget, lower by one scanned step the
    layer whose step loses the least accuracy per byte saved (ties: the earlier layer in
    ``sensitivity``). Raises ValueError if even the lowest bits do not fit."""
    lowest = sum(_bytes(sizes[layer], min(acc)) for layer, acc in sensitivity.items())
    if lowest > budget_bytes:
        raise ValueError(f"budget_bytes={budget_bytes} cannot be met: the lowest bits take {lowest} bytes")
    choice = {layer: max(acc) for layer, acc in sensitivity.items()}
    while sum(_bytes(sizes[layer], b) for layer, b in choice.items()) > budget_bytes:
        best = None                                      # (cost per byte, layer, lower bits)
        for layer, b in choice.items():
            lower = [c for c in sensitivity[layer] if c < b]
            if not lower:
                continue
            step = max(lower)
            saved = _bytes(sizes[layer], b) - _bytes(sizes[layer], step)
            cost = (sensitivity[layer][b] - sensitivity[layer][step]) / max(saved, 1)
            if best is None or cost < best[0]:           # strict: a tie keeps the earlier layer
                best = (cost, layer, step)
        choice[best[1]] = best[2]
    return choice


def _bits_cases():
    return [  # (sensitivity, sizes, budget, what it tests)
        ({"fc1": {8: 0.98, 4: 0.97, 2: 0.90}, "fc2": {8: 0.98, 4: 0.975, 2: 0.95}},
         {"fc1": 1000, "fc2": 100}, 700, "per byte"),                  # fc1 saves 10x the bytes
        ({"a": {8: 0.9, 3: 0.85}, "b": {8: 0.9, 3: 0.8}}, {"a": 5, "b": 3}, 4, "ceil"),
        ({"z": {8: 0.9, 4: 0.88}, "m": {8: 0.9, 4: 0.88}}, {"m": 16, "z": 16}, 24, "tie"),
        ({"conv": {2: 0.5, 6: 0.9, 4: 0.85}, "fc": {8: 0.9, 4: 0.89}}, {"conv": 64, "fc": 32}, 200, "fits"),
        ({"conv": {2: 0.5, 6: 0.9, 4: 0.85}, "fc": {8: 0.9, 4: 0.89}}, {"conv": 64, "fc": 32}, 48, "unsorted"),
        ({"fc1": {8: 0.98, 4: 0.97}, "fc2": {8: 0.98, 4: 0.9}}, {"fc1": 100, "fc2": 100}, 99, "impossible"),
    ]


def _bits_variant(sensitivity, sizes, budget, nbytes=_bytes, per_byte=True, order=None):
    """The greedy with one piece changed, to recognise a learner's mistake."""
    layers = order or list(sensitivity)
    choice = {layer: max(sensitivity[layer]) for layer in layers}
    while sum(nbytes(sizes[layer], b) for layer, b in choice.items()) > budget:
        best = None
        for layer in layers:
            lower = [c for c in sensitivity[layer] if c < choice[layer]]
            if not lower:
                continue
            step = max(lower)
            loss = sensitivity[layer][choice[layer]] - sensitivity[layer][step]
            saved = nbytes(sizes[layer], choice[layer]) - nbytes(sizes[layer], step)
            cost = loss / max(saved, 1) if per_byte else loss
            if best is None or cost < best[0]:
                best = (cost, layer, step)
        if best is None:
            return None
        choice[best[1]] = best[2]
    return choice


@checker("bits_for_budget")
def check_bits_for_budget(bits_for_budget: Callable) -> CheckResult:
    """Check ``bits_for_budget(sensitivity, sizes, budget_bytes) -> dict[str, int]``:
    ``sensitivity`` is ``{layer: {bits: accuracy}}`` (bits not necessarily sorted), ``sizes``
    ``{layer: number of weights}``; a layer at b bits takes :math:`\\lceil n b / 8 \\rceil`
    bytes. Start every layer at its highest scanned bits; while the total exceeds the budget,
    lower by one scanned step the layer whose step loses the least accuracy per byte saved (ties:
    the layer first in ``sensitivity``'s order); raise ValueError if even the lowest bits do not
    fit. Inputs unchanged. Reference: :func:`bits_for_budget_reference`."""
    name = "bits_for_budget"
    cases = _bits_cases()
    for sensitivity, sizes, budget, label in cases:
        before = copy.deepcopy((sensitivity, sizes))
        where = f"for sensitivity {sensitivity}, sizes {sizes} and budget_bytes={budget}"
        hints = {"KeyError": "lower a layer to its next SCANNED bits (the largest key of "
                             "sensitivity[layer] below the current one), not to bits - 1."}
        got, failure = call_learner_function(bits_for_budget, (sensitivity, sizes, budget), name,
                                             case=where[4:], hints=hints)
        if label == "impossible":
            if failure and failure.failed and "raised ValueError" in failure.message:
                continue
            hint = ("when even the lowest bits do not fit (here 2 layers x 100 weights at 4 bits = 100 "
                    "bytes > 99), raise ValueError with a message saying the budget cannot be met.")
            if failure and failure.failed:
                return failed(name, f"{failure.message} Hint: {hint}")
            if not failure:
                return failed(name, f"{where} your function returned {got!r}. Hint: {hint}")
        require(failure)
        require((check_unchanged(before, (sensitivity, sizes), name, where, "sensitivity or sizes",
                                 "keep your choices in a new dict; do not pop or edit the given ones.")
                 or check_returned(got, name, where, dict, what="bits per layer")))
        expected = bits_for_budget_reference(sensitivity, sizes, budget)
        if set(got) != set(expected):
            return failed(name, f"{where} expected one entry per layer {list(expected)}, got keys {list(got)}.")
        for layer, b in got.items():
            require(check_returned(b, name, f"{where}, layer {layer!r}:", int, what="bits"))
        if got == expected:
            continue
        total = sum(_bytes(sizes[layer], b) for layer, b in got.items() if b in sensitivity[layer])
        variants = [
            (_bits_variant(sensitivity, sizes, budget, nbytes=lambda n, b: n * b // 8),
             "bytes round UP: a layer of n weights at b bits takes ceil(n * b / 8) bytes "
             "(-(-n * b // 8)); with floor the total looks smaller than it is."),
            (_bits_variant(sensitivity, sizes, budget, per_byte=False),
             "choose the step that loses the least accuracy PER BYTE SAVED (loss / bytes saved), not "
             "the least accuracy: lowering a big layer saves many more bytes."),
            *((_bits_variant(sensitivity, sizes, budget, order=order),
               "on a tie, lower the layer that comes first in `sensitivity`'s order (not alphabetical, "
               "not `sizes`' order): iterate over sensitivity and replace the best only when strictly "
               "better (<, not <=).") for order in (sorted(sensitivity), list(sizes), list(sensitivity)[::-1])),
        ]
        hint = next((h for wrong, h in variants if wrong == got), None)
        if hint is None and any(b not in sensitivity[layer] for layer, b in got.items()):
            hint = "every layer's bits must be one of its scanned bits (a key of sensitivity[layer])."
        elif hint is None and total > budget:
            hint = (f"your choice takes {total} bytes, over the budget of {budget}: keep lowering while "
                    "the total (with ceil per layer) exceeds the budget.")
        elif hint is None:
            hint = ("start every layer at max(sensitivity[layer]); while over budget, lower by one scanned "
                    "step the layer with the least accuracy lost per byte saved.")
        return failed(name, f"{where} expected {expected}, got {got}. Hint: {hint}")
    return passed(name, len(cases), "all cases pass (ceil bytes, loss per byte saved, ties, unsorted "
                  "bits, impossible budget raises)")
