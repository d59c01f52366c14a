"""Exercises of notebooks 07 and 08, AutoML and NAS: the mutation of regularised evolution, REINFORCE's
update of a controller's logits, the hypervolume
of a set of (accuracy, cost) points and the check of a candidate against a device's limits (07);
Kendall's tau, which says how far to trust a cheap judge's ranking, the NASWOT score, one such cheap
judge, McNemar's test, which says whether two trained networks differ beyond noise, and the bits of
a pruned, quantized layer (08).

Each exercise has a reference (``*_reference``, for :func:`falls_back_to`) and a checker
(``check_*``) that tests the learner's code on small hand-made cases and names typical mistakes.
The references are plain Python, written to be read beside the notebook; they agree with
:mod:`course_lib.nas` (``mutate``, ``hypervolume``, ``violated_limits``, ``kendall_tau``, ``naswot``; tested).
"""

from __future__ import annotations

import copy
import math
import random
from typing import Callable, Sequence

import numpy as np
import torch

from ..checks import is_int
from .checking import (check_returned, check_unchanged, checker, CheckResult, failed, passed, require, returned_number,
                       run_learner)

__all__ = ["KB", "mutate_choices_reference", "MUTATE_OPTIONS", "MUTATE_CHOICES", "N_SEEDS", "check_mutate_choices",
           "reinforce_update_reference", "REINFORCE_CASES", "check_reinforce_update", "hypervolume_reference",
           "HYPERVOLUME_CASES", "check_hypervolume", "kendall_tau_reference", "KENDALL_CASES", "check_kendall_tau",
           "mcnemar_p_reference", "MCNEMAR_CASES", "check_mcnemar_p", "naswot_score_reference", "naswot_cases",
           "check_naswot_score", "layer_bits_reference", "LAYER_BITS_CASES",
           "check_layer_bits", "violated_limits_reference", "TIGHT",
           "LIMIT_CASES", "check_violated_limits"]

KB = 1024          # the course's KB is 1024 bytes (a KiB), as in course_lib.hardware


# ----------------------------------------------------------------------------- mutate_choices

def mutate_choices_reference(choices: dict, options: dict, rng: random.Random) -> dict:
    """A new dict of choices one decision away from ``choices``: a decision with at least two
    options is drawn uniformly (``rng.choice`` over them, in the order of ``options``), then one of
    its *other* options. Only ``rng`` is used; ``choices`` is not modified."""
    changeable = [name for name in options if len(options[name]) > 1]
    name = rng.choice(changeable)
    others = [v for v in options[name] if v != choices[name]]
    return {**choices, name: rng.choice(others)}


MUTATE_OPTIONS = {"resolution": (20, 24, 28), "stage1.block": ("conv", "separable", "inverted_residual"),
                  "stage1.width": (8, 16, 24, 32), "stage1.kernel": (3, 5), "stage1.depth": (1,)}
MUTATE_CHOICES = [{"resolution": 28, "stage1.block": "conv", "stage1.width": 16, "stage1.kernel": 3, "stage1.depth": 1},
                  {"resolution": 20, "stage1.block": "inverted_residual", "stage1.width": 32, "stage1.kernel": 5,
                   "stage1.depth": 1}]
N_SEEDS = 40


@checker("mutate_choices")
def check_mutate_choices(mutate_choices: Callable[[dict, dict, random.Random], dict]) -> CheckResult:
    """Check ``mutate_choices(choices, options, rng) -> dict``: a new dict with the same keys, every
    value among its options, exactly one decision changed (never one with a single option), the
    input unchanged, and all randomness from ``rng`` (same seed, same answer; the global ``random``
    untouched; different seeds reach different decisions). Reference: :func:`mutate_choices_reference`."""
    name = "mutate_choices"
    results = []
    for choices in MUTATE_CHOICES:
        for seed in range(N_SEEDS):
            given, options = copy.deepcopy(choices), copy.deepcopy(MUTATE_OPTIONS)
            where = f"for choices={choices} and rng=random.Random({seed})"
            global_state = random.getstate()
            got = run_learner(mutate_choices, (given, options, random.Random(seed)), name,
                              case=where[4:])
            if random.getstate() != global_state:
                return failed(name, f"{where} your function drew from the global `random` module. Hint: draw "
                              "only from the rng passed in (rng.choice(...), rng.randrange(...)), so that a "
                              "search seeded once is repeatable.")
            require(check_unchanged(choices, given, name, where, "choices",
                                    "build a new dict ({**choices, name: value} or dict(choices)) instead of "
                                    "assigning into the one you were given: the parent must survive in the "
                                    "population."))
            require(check_returned(got, name, where, dict, what="new choices"))
            if set(got) != set(choices):
                return failed(name, f"{where} expected the same decisions {sorted(choices)}, got {sorted(got)}. "
                              "Hint: copy every decision and change the value of one.")
            outside = [k for k in got if got[k] not in options[k]]
            if outside:
                return failed(name, f"{where} got {outside[0]} = {got[outside[0]]!r}, not one of its options "
                              f"{options[outside[0]]}. Hint: draw the new value from options[name], so the "
                              "result stays in the space.")
            changed = [k for k in choices if got[k] != choices[k]]
            if not changed:
                return failed(name, f"{where} nothing changed. Hint: choose among the OTHER values of the "
                              "decision (leave out the current one), and skip decisions with a single option: "
                              "a mutation that changes nothing wastes an evaluation.")
            if len(changed) > 1:
                return failed(name, f"{where} {len(changed)} decisions changed ({changed}). Hint: a mutation "
                              "changes ONE decision; draw the decision first, then its new value.")
            again = run_learner(mutate_choices, (copy.deepcopy(choices), options,
                                                 random.Random(seed)), name, case=where[4:])
            if again != got:
                return failed(name, f"{where} two calls with the same seed gave {got} and {again}. Hint: use the "
                              "rng passed in for every random draw (not random.choice or numpy's global RNG).")
            results.append((changed[0], got[changed[0]]))
    reached = {decision for decision, _ in results}
    changeable = {k for k, v in MUTATE_OPTIONS.items() if len(v) > 1}
    if reached != changeable:
        missing = sorted(changeable - reached)
        return failed(name, f"over {len(results)} seeds the decisions {missing} were never mutated. Hint: draw "
                      "the decision uniformly among all that have two or more options (rng.choice(names)).")
    n = len(results)
    return passed(name, n, f"all {n} mutations pass (one decision changed, in the space, input unchanged, "
                  "repeatable from the rng, every decision reachable)")


# ----------------------------------------------------------------------------- reinforce_update

def reinforce_update_reference(logits: Sequence[float], choice: int, reward: float, baseline: float,
                               learning_rate: float) -> list[float]:
    """One REINFORCE step (Williams 1992) for one categorical decision with logits :math:`\\theta`:

    .. math:: \\theta \\leftarrow \\theta + \\eta\\,(R - b)\\,(\\mathbb{1}_a - \\mathrm{softmax}(\\theta)),

    the gradient of :math:`\\log \\mathrm{softmax}(\\theta)_a` scaled by the advantage. A new list; ``logits``
    unchanged. It agrees with :func:`course_lib.nas.reinforce_search`'s update (tested)."""
    top = max(logits)
    exps = [math.exp(t - top) for t in logits]
    total = sum(exps)
    return [t + learning_rate * (reward - baseline) * ((1.0 if i == choice else 0.0) - e / total)
            for i, (t, e) in enumerate(zip(logits, exps))]


REINFORCE_CASES = [  # (logits, choice, reward, baseline, learning_rate)
    ([3.0, 1.0], 1, 1.0, 0.2, 0.1),                   # a rarely chosen option rewarded
    ([0.0, 0.0, 0.0], 1, 0.9, 0.7, 0.5),              # uniform start, a good reward
    ([0.0, 0.0, 0.0, 0.0], 2, 0.4, 0.7, 0.5),         # a reward below the baseline: the choice loses weight
    ([1.0, -0.5, 2.0], 0, 0.8, 0.8, 1.0),             # no advantage: nothing moves
    ([1000.0, 998.0, 990.0], 2, 0.6, 0.5, 0.5),       # large logits: exp(1000) overflows even in float64
]


def _reinforce_variants(logits, choice, reward, baseline, lr) -> dict[str, list[float]]:
    top = max(logits)
    exps = [math.exp(t - top) for t in logits]
    p = [e / sum(exps) for e in exps]
    onehot = [1.0 if i == choice else 0.0 for i in range(len(logits))]
    adv = reward - baseline
    return {
        "no_baseline": [t + lr * reward * (o - q) for t, o, q in zip(logits, onehot, p)],
        "descent": [t - lr * adv * (o - q) for t, o, q in zip(logits, onehot, p)],
        "onehot_only": [t + lr * adv * o for t, o in zip(logits, onehot)],
        "gradient_of_p": [t + lr * adv * p[choice] * (o - q) for t, o, q in zip(logits, onehot, p)],
        "logits_as_p": [t + lr * adv * (o - t) for t, o in zip(logits, onehot)],
    }


_REINFORCE_HINTS = {
    "no_baseline": "subtract the baseline: the step is scaled by the ADVANTAGE R - b, so a reward below the usual one "
                   "lowers the choice's probability (without it every reward, however poor, pushes the choice up).",
    "descent": "REINFORCE climbs the expected reward: theta + lr * (R - b) * gradient, not minus.",
    "onehot_only": "the gradient of log softmax(theta)_a is onehot(a) - softmax(theta): every logit moves, the others "
                   "down, not only the chosen one up.",
    "gradient_of_p": "that is the gradient of the probability p_a; REINFORCE uses the gradient of its LOG, "
                     "onehot(a) - softmax(theta), without the factor p_a.",
    "logits_as_p": "the logits are not probabilities: take softmax(theta) before subtracting it from the one-hot.",
}


@checker("reinforce_update")
def check_reinforce_update(reinforce_update: Callable[..., Sequence[float]]) -> CheckResult:
    """Check ``reinforce_update(logits, choice, reward, baseline, learning_rate)``: the new logits
    :math:`\\theta + \\eta (R - b)(\\mathbb{1}_a - \\mathrm{softmax}(\\theta))` as a sequence of numbers of the same
    length, finite for large logits; ``logits`` unchanged. Reference: :func:`reinforce_update_reference`."""
    name = "reinforce_update"
    for logits, choice, reward, baseline, lr in copy.deepcopy(REINFORCE_CASES):
        given = list(logits)
        where = f"for logits={logits}, choice={choice}, reward={reward}, baseline={baseline}, learning_rate={lr}"
        got = run_learner(reinforce_update, (given, choice, reward, baseline, lr), name, case=where[4:],
                          hints={"Overflow": "exp of a logit of 1000 overflows: subtract the largest logit before "
                                             "exponentiating (the softmax does not change)."})
        require(check_unchanged(logits, given, name, where, "logits",
                                "build a new list (or array): logits[i] += ... changes the caller's logits."))
        if got is None:
            return failed(name, f"{where} got None. Hint: did you forget `return`?")
        try:
            values = [float(v) for v in (got.tolist() if hasattr(got, "tolist") else got)]
        except (TypeError, ValueError):
            return failed(name, f"{where} expected the new logits, a sequence of {len(logits)} numbers, got "
                          f"{type(got).__name__}. Hint: return a list (or a numpy array) of floats.")
        if len(values) != len(logits):
            return failed(name, f"{where} expected {len(logits)} logits, got {len(values)}. Hint: every logit of the "
                          "decision moves; return them all.")
        if not all(math.isfinite(v) for v in values):
            return failed(name, f"{where} your logits hold NaN or inf: {values}. Hint: exp(1000) overflows; subtract "
                          "the largest logit before exponentiating (the softmax does not change).")
        expected = reinforce_update_reference(logits, choice, reward, baseline, lr)
        if all(math.isclose(v, e, rel_tol=1e-9, abs_tol=1e-12) for v, e in zip(values, expected)):
            continue
        hint = next((_REINFORCE_HINTS[key] for key, wrong in _reinforce_variants(logits, choice, reward, baseline, lr).items()
                     if not all(math.isclose(w, e, rel_tol=1e-9, abs_tol=1e-12) for w, e in zip(wrong, expected))
                     and all(math.isclose(v, w, rel_tol=1e-9, abs_tol=1e-12) for v, w in zip(values, wrong))), None)
        return failed(name, f"{where}: expected {[round(e, 6) for e in expected]}, got {[round(v, 6) for v in values]}. "
                      "Hint: " + (hint or "theta + learning_rate * (reward - baseline) * (onehot(choice) - softmax(theta))."))
    n = len(REINFORCE_CASES)
    return passed(name, n, f"all {n} cases pass (the advantage, the log-probability's gradient on every logit, no "
                  "advantage, large logits; logits unchanged)")


# ----------------------------------------------------------------------------- hypervolume

def hypervolume_reference(points: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """The area dominated by the (accuracy, cost) ``points`` and bounded by ``reference`` =
    :math:`(a_{ref}, c_{ref})`, accuracy maximised and cost minimised. Points no better than the
    reference on both axes add nothing, nor do dominated points; the front, sorted by cost
    :math:`c_1 < \\dots < c_n` (so by rising accuracy), covers

    .. math:: HV = \\sum_{k=1}^{n} (c_{k+1} - c_k)\\,(a_k - a_{ref}),\\qquad c_{n+1} = c_{ref}.

    A plain sweep in order of cost, written to be read beside the notebook; it agrees with
    :func:`course_lib.nas.hypervolume` (tested)."""
    a_ref, c_ref = reference
    useful = [(a, c) for a, c in points if a > a_ref and c < c_ref]
    front = []
    for a, c in sorted(useful, key=lambda p: (p[1], -p[0])):     # by cost; at equal cost, the best first
        if not front or a > front[-1][0]:                         # better than every cheaper point: on the front
            front.append((a, c))
    area = 0.0
    for k, (a, c) in enumerate(front):
        next_cost = front[k + 1][1] if k + 1 < len(front) else c_ref
        area += (next_cost - c) * (a - a_ref)
    return area


HYPERVOLUME_CASES = [  # (points as (accuracy, cost), reference)
    ([(0.9, 2)], (0.5, 10)),                                                   # one rectangle: 8 x 0.4
    ([(0.90, 4), (0.70, 1), (0.85, 3), (0.80, 2), (0.88, 5)], (0.5, 6)),       # one dominated point (cost 5)
    ([(0.95, 5.5), (0.90, 4.0), (0.85, 3.5), (0.80, 2.0), (0.70, 1.0)], (0.6, 6.0)),   # the front, dearest first
    ([(0.80, 2), (0.85, 2), (0.70, 1), (0.90, 7), (0.40, 0.5)], (0.5, 6)),     # equal costs; beyond the reference
    ([(0.90, 3.0), (0.80, 1.5), (0.90, 3.0)], (0.6, 4.0)),                     # a duplicate on the front
    ([], (0.5, 10)),                                                          # nothing: no area
    ([(0.3, 1), (0.9, 12)], (0.5, 10)),                                        # every point outside the reference
]


def _sum_strips(points, reference, keep_outside=False, keep_dominated=False, own_height=True, to_reference=False,
                descending=False) -> float:
    """The area with one of the usual mistakes switched on (the checker compares the learner's answer with each)."""
    a_ref, c_ref = reference
    pts = [(a, c) for a, c in points if keep_outside or (a > a_ref and c < c_ref)]
    pts.sort(key=lambda p: (p[1], -p[0]), reverse=descending)
    if not keep_dominated:
        front = []
        for a, c in pts:
            if not front or a > front[-1][0]:
                front.append((a, c))
        pts = front
    area = 0.0
    for k, (a, c) in enumerate(pts):
        nxt = pts[k + 1] if k + 1 < len(pts) else (a_ref, c_ref)
        width = (c_ref - c) if to_reference else (nxt[1] - c)
        area += width * ((a if own_height else nxt[0]) - a_ref)
    return area


def _hypervolume_mistakes(points, reference) -> list[tuple[float, str]]:
    return [
        (_sum_strips(points, reference, to_reference=True),
         "the rectangles overlap: summing each point's whole rectangle up to the reference counts the shared area "
         "again and again. Each front point adds one strip, from its cost to the NEXT front point's cost."),
        (_sum_strips(points, reference, keep_dominated=True),
         "a dominated point adds nothing: keep only the front (in order of cost, a point counts when it is more "
         "accurate than every cheaper one) before adding strips."),
        (_sum_strips(points, reference, keep_outside=True),
         "a point no better than the reference on either axis (accuracy <= a_ref or cost >= c_ref) adds nothing; "
         "leave it out before the sweep, or its strip comes out negative."),
        (_sum_strips(points, reference, own_height=False),
         "each strip's height is ITS OWN point's accuracy minus a_ref (the strip lies to the right of the point, "
         "up to the next, more accurate one)."),
        (_sum_strips(points, reference, descending=True),
         "sort by cost ASCENDING (the cheapest first): each strip runs to the next, dearer point."),
    ]


@checker("hypervolume")
def check_hypervolume(hypervolume: Callable[[Sequence[tuple[float, float]], tuple[float, float]], float]) -> CheckResult:
    """Check ``hypervolume(points, reference) -> float``: the area the (accuracy, cost) points
    dominate up to the reference point (accuracy maximised, cost minimised), dominated points and
    points beyond the reference adding nothing, 0 for no point; a number; the inputs unchanged.
    Reference: :func:`hypervolume_reference`."""
    name = "hypervolume"
    for points, reference in copy.deepcopy(HYPERVOLUME_CASES):
        given = copy.deepcopy(points)
        where = f"for points={points}, reference={reference}"
        got = run_learner(hypervolume, (given, tuple(reference)), name, case=where[4:])
        require(check_unchanged(points, given, name, where, "points",
                                "sorted(points, ...) makes a new list; points.sort() reorders the caller's list."))
        got = returned_number(got, name, where, "return the area as a float; 0.0 when no point beats the reference.")
        expected = hypervolume_reference(points, reference)
        if math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12):
            continue
        hint = next((h for wrong, h in _hypervolume_mistakes(points, reference)
                     if not math.isclose(wrong, expected, rel_tol=1e-9, abs_tol=1e-12)
                     and math.isclose(got, wrong, rel_tol=1e-9, abs_tol=1e-12)), None)
        return failed(name, f"{where} expected {expected:.6g}, got {got:.6g}. Hint: " +
                      (hint or "keep the points better than the reference on both axes, keep the front (sorted by "
                                "cost, each more accurate than every cheaper one), then add (next cost - cost) x "
                                "(accuracy - a_ref) for each, the last one's strip ending at c_ref."))
    n = len(HYPERVOLUME_CASES)
    return passed(name, n, f"all {n} cases pass (one point, dominated points, points beyond the reference, equal costs, "
                  "duplicates, no point; inputs unchanged)")


# ----------------------------------------------------------------------------- kendall_tau

def kendall_tau_reference(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's :math:`\\tau_b` of two equally long lists: over the :math:`n_0 = n(n-1)/2` pairs
    :math:`i < j`, :math:`n_c` concordant (:math:`(x_i - x_j)(y_i - y_j) > 0`), :math:`n_d`
    discordant (< 0), :math:`n_x` tied in x and :math:`n_y` tied in y;

    .. math:: \\tau_b = \\frac{n_c - n_d}{\\sqrt{(n_0 - n_x)(n_0 - n_y)}},

    NaN when x or y is constant (every pair tied). A plain loop over the pairs; it agrees with
    :func:`course_lib.nas.kendall_tau` and ``scipy.stats.kendalltau`` (tested)."""
    n = len(x)
    concordant = discordant = tied_x = tied_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            tied_x += dx == 0
            tied_y += dy == 0
            concordant += dx * dy > 0
            discordant += dx * dy < 0
    pairs = n * (n - 1) // 2
    denominator = math.sqrt((pairs - tied_x) * (pairs - tied_y))
    return (concordant - discordant) / denominator if denominator else math.nan


KENDALL_CASES = [  # (x, y)
    ([1, 2, 3, 4, 5], [10, 20, 30, 40, 50]),                        # the same order: +1
    ([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]),                             # reversed: -1
    ([0.3, 0.1, 0.4, 0.2, 0.5, 0.9], [3.0, 1.0, 2.0, 5.0, 4.0, 6.0]),  # no ties
    ([1, 1, 2, 3, 3, 4], [2, 1, 3, 3, 5, 4]),                       # ties in x and in y
    ([1, 2, 2, 2, 5], [0.5, 0.7, 0.2, 0.9, 0.8]),                   # three tied in x
    ([4, 3], [1, 2]),                                               # one pair
    ([7, 7, 7, 7], [1, 2, 3, 4]),                                   # x constant: NaN
]


def _tau_variants(x, y) -> dict[str, float]:
    n, pairs = len(x), len(x) * (len(x) - 1) // 2
    c = d = tx = ty = both = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            tx, ty, both = tx + (dx == 0), ty + (dy == 0), both + (dx == 0 and dy == 0)
            c, d = c + (dx * dy > 0), d + (dx * dy < 0)
    ties_as_concordant = pairs - d
    return {
        "tau_a": (c - d) / pairs,
        "all_pairs": 2 * (c - d) / pairs,
        "ties_concordant": (ties_as_concordant - d) / pairs,
        "no_tie_correction": (c - d) / (c + d) if c + d else math.nan,
    }


_TAU_HINTS = {
    "tau_a": "with ties, divide by sqrt((n0 - n_x) * (n0 - n_y)), leaving out the pairs tied in x and those tied in "
             "y (tau_b), not by the number of pairs n0 (that is tau_a, which cannot reach 1 when there are ties).",
    "all_pairs": "count each pair once, i < j: looping over every i != j counts every pair twice.",
    "ties_concordant": "a pair tied in x or in y is neither concordant nor discordant: test (x_i - x_j)(y_i - y_j) "
                       "> 0 and < 0, strictly.",
    "no_tie_correction": "the denominator is sqrt((n0 - n_x) * (n0 - n_y)), not n_c + n_d (the two differ when a pair "
                         "is tied in one list but not in the other).",
}


@checker("kendall_tau")
def check_kendall_tau(kendall_tau: Callable[[Sequence[float], Sequence[float]], float]) -> CheckResult:
    """Check ``kendall_tau(x, y) -> float``: Kendall's tau_b, ties handled, each pair counted
    once, NaN when a list is constant; a number; the inputs unchanged.
    Reference: :func:`kendall_tau_reference`."""
    name = "kendall_tau"
    for x, y in copy.deepcopy(KENDALL_CASES):
        given_x, given_y = list(x), list(y)
        where = f"for x={x}, y={y}"
        got = run_learner(kendall_tau, (given_x, given_y), name, case=where[4:],
                          hints={"division by zero": "when x or y is constant, every pair is tied and the denominator "
                                                     "is 0: return math.nan (the order says nothing)."})
        require(check_unchanged(x, given_x, name, where, "x", "sorted(x) makes a new list; x.sort() reorders the "
                                "caller's list (and the pairs lose their partners)."))
        require(check_unchanged(y, given_y, name, where, "y", "sorted(y) makes a new list; y.sort() reorders the "
                                "caller's list."))
        got = returned_number(got, name, where)
        expected = kendall_tau_reference(x, y)
        if math.isnan(expected):
            if math.isnan(got):
                continue
            return failed(name, f"{where} expected NaN, got {got!r}. Hint: when x or y is constant every pair is "
                          "tied, tau_b is 0 / 0: return math.nan (the order says nothing).")
        if not math.isnan(got) and math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12):
            continue
        hint = next((_TAU_HINTS[key] for key, wrong in _tau_variants(x, y).items()
                     if not math.isnan(wrong) and math.isclose(got, wrong, rel_tol=1e-9, abs_tol=1e-12)), None)
        return failed(name, f"{where} expected {expected:.6g}, got {got:.6g}. Hint: " +
                      (hint or "over the pairs i < j, count concordant (product of differences > 0), discordant "
                                "(< 0), tied in x and tied in y; tau_b = (n_c - n_d) / sqrt((n0 - n_x)(n0 - n_y))."))
    n = len(KENDALL_CASES)
    return passed(name, n, f"all {n} cases pass (same and reversed order, ties in x and in y, one pair, a constant "
                  "list; inputs unchanged)")


# ----------------------------------------------------------------------------- mcnemar_p

def mcnemar_p_reference(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> float:
    """McNemar's exact two-sided p-value for two models scored on the same images: with ``only_a``
    images right for A alone and ``only_b`` for B alone, :math:`p = \\min(1, 2\\,P(X \\le
    \\min(only_a, only_b)))` for :math:`X \\sim \\mathrm{Binomial}(only_a + only_b, 1/2)`; 1.0 when
    they never disagree. It agrees with :func:`course_lib.uncertainty.mcnemar_p` (tested)."""
    only_a = sum(1 for a, b in zip(correct_a, correct_b) if a and not b)
    only_b = sum(1 for a, b in zip(correct_a, correct_b) if b and not a)
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


MCNEMAR_CASES = [  # (correct_a, correct_b)
    ([True] * 10 + [False] * 2, [True] * 10 + [True] * 2),                 # B right on 2 more: p = 0.5
    ([True, False] * 20, [True, False] * 20),                               # never disagree: p = 1
    ([True] * 30 + [False] * 10 + [True] * 2, [True] * 30 + [True] * 10 + [False] * 2),   # 2 against 10
    ([True] * 12 + [False] * 0, [False] * 12),                              # A right on all 12 they split
    ([True, True, False, False, True, False, True], [True, False, True, False, False, True, True]),  # 2 against 2
    ([False] * 5 + [True] * 40, [True] * 5 + [True] * 25 + [False] * 15),  # 15 against 5
]


def _mcnemar_variants(correct_a, correct_b) -> dict[str, float]:
    only_a = sum(1 for a, b in zip(correct_a, correct_b) if a and not b)
    only_b = sum(1 for a, b in zip(correct_a, correct_b) if b and not a)
    n, k = only_a + only_b, min(only_a, only_b)
    total = len(correct_a)
    def tail(m, j):
        return sum(math.comb(m, i) for i in range(j + 1)) / 2 ** m if m else 1.0
    variants = {
        "one_sided": tail(n, k),
        "not_clamped": 2 * tail(n, k),
        "all_images": min(1.0, 2 * tail(total, min(sum(map(bool, correct_a)), sum(map(bool, correct_b))))),
        "strict_tail": min(1.0, 2 * (tail(n, k) - (math.comb(n, k) / 2 ** n if n else 0.0))),
    }
    if n:
        z = (abs(only_a - only_b) - 1) / math.sqrt(n)
        variants["normal"] = math.erfc(max(z, 0.0) / math.sqrt(2))
    return variants


_MCNEMAR_HINTS = {
    "one_sided": "the test is two-sided (either model could be the better one): double the tail, 2 * P(X <= min).",
    "not_clamped": "a probability is at most 1: when the two counts are equal, 2 * P(X <= min) passes 1; clamp with min(1, ...).",
    "all_images": "only the images the two models DISAGREE on count (right for one, wrong for the other); the images "
                  "both get right or both get wrong say nothing about which is better.",
    "strict_tail": "the tail includes min itself: P(X <= min), the sum over k = 0 .. min inclusive.",
    "normal": "this asks for the EXACT test (a sum of binomial probabilities, math.comb), not the normal approximation, "
              "which is poor for the few disagreements of a small test.",
}


@checker("mcnemar_p")
def check_mcnemar_p(mcnemar_p: Callable[[Sequence[bool], Sequence[bool]], float]) -> CheckResult:
    """Check ``mcnemar_p(correct_a, correct_b) -> float``: McNemar's exact two-sided p-value from
    two True/False lists over the same images; 1.0 when they never disagree; a number; the inputs
    unchanged. Reference: :func:`mcnemar_p_reference`."""
    name = "mcnemar_p"
    for correct_a, correct_b in copy.deepcopy(MCNEMAR_CASES):
        given_a, given_b = list(correct_a), list(correct_b)
        where = f"for {sum(a and not b for a, b in zip(correct_a, correct_b))} images only A gets right and " \
                f"{sum(b and not a for a, b in zip(correct_a, correct_b))} only B (of {len(correct_a)})"
        got = run_learner(mcnemar_p, (given_a, given_b), name, case=where[4:],
                          hints={"division by zero": "when the two models never disagree there is nothing to test: "
                                                     "return 1.0."})
        require(check_unchanged(correct_a, given_a, name, where, "correct_a"))
        require(check_unchanged(correct_b, given_b, name, where, "correct_b"))
        got = returned_number(got, name, where, "return the p-value as a float.")
        expected = mcnemar_p_reference(correct_a, correct_b)
        if math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12):
            continue
        hint = next((_MCNEMAR_HINTS[key] for key, wrong in _mcnemar_variants(correct_a, correct_b).items()
                     if not math.isclose(wrong, expected, rel_tol=1e-9, abs_tol=1e-12)
                     and math.isclose(got, wrong, rel_tol=1e-9, abs_tol=1e-12)), None)
        return failed(name, f"{where}: expected p = {expected:.6g}, got {got:.6g}. Hint: " +
                      (hint or "count the images only A gets right and only B gets right; with n their sum, "
                                "p = min(1, 2 * sum(comb(n, k) for k <= min) / 2 ** n)."))
    n = len(MCNEMAR_CASES)
    return passed(name, n, f"all {n} cases pass (two-sided, exact, only the disagreements counted, no disagreement, "
                  "equal counts clamped to 1; inputs unchanged)")


# ----------------------------------------------------------------------------- naswot_score

def naswot_score_reference(codes: torch.Tensor) -> float:
    """The NASWOT score of Mellor et al. (2021, Sec. 3, eq. 2) from the binary activation codes ``codes``
    (N images x N_A units, 1 where a ReLU unit is active): :math:`K_H[i, j] = N_A - d_H(c_i, c_j)`, the
    units on which images i and j agree (both active or both inactive), i.e.
    :math:`K_H = C C^\\top + (1 - C)(1 - C)^\\top`; the score is :math:`\\log |\\det K_H|` (natural
    log), computed with a log-determinant in float64 so that it cannot overflow; ``-inf`` when two
    images share a code (:math:`K_H` singular). It agrees with :func:`course_lib.nas.naswot` (tested)."""
    C = codes.double()
    K = C @ C.T + (1 - C) @ (1 - C).T
    sign, logdet = torch.linalg.slogdet(K)
    return float(logdet) if sign > 0 else -math.inf


def naswot_cases() -> list[tuple[torch.Tensor, str]]:
    """The checker's cases, (codes, what the case is), float32 0/1 tensors as
    :func:`course_lib.nas.activation_codes` gives them; the random ones drawn from a fixed generator."""
    g = torch.Generator().manual_seed(0)
    def draws(n, units):
        return (torch.rand(n, units, generator=g) < 0.5).float()
    return [
        (torch.tensor([[1., 0., 1.], [0., 1., 1.]]), "2 images, 3 units: K = [[3, 1], [1, 3]]"),
        (torch.tensor([[0., 0., 0., 1.], [0., 0., 1., 0.], [0., 1., 0., 0.]]),
         "3 images whose active units never overlap, though they agree on inactive ones"),
        (draws(6, 20), "6 images, 20 units"),
        (torch.tensor([[1., 0., 1., 0.], [1., 0., 1., 0.], [0., 1., 1., 0.]]), "2 of 3 images with the same code"),
        (draws(160, 4000), "160 images, 4,000 units (det K_H about 10^529)"),
    ]


def _naswot_variants(codes: torch.Tensor) -> dict[str, float]:
    C = codes.double()
    agree = C @ C.T + (1 - C) @ (1 - C).T
    def logabsdet(K):
        return float(torch.linalg.slogdet(K)[1])
    with np.errstate(divide="ignore", over="ignore"):
        det = float(torch.linalg.det(agree))
        return {
            "hamming": logabsdet(C.shape[1] - agree),
            "active_only": logabsdet(C @ C.T),
            "log10": logabsdet(agree) / math.log(10),
            "det_overflow": math.log(det) if det > 0 else -math.inf if det == 0 else math.nan,
            "per_unit": logabsdet(agree / C.shape[1]),
        }


_NASWOT_HINTS = {
    "hamming": "K_H counts the units on which two images AGREE, N_A - d_H(c_i, c_j); the Hamming distance d_H "
               "counts those on which they differ.",
    "active_only": "two images also agree on a unit that is inactive for both: K_H = C @ C.T + (1 - C) @ (1 - C).T, "
                   "not C @ C.T alone.",
    "log10": "the score is the natural logarithm (math.log, torch.log), not log10.",
    "det_overflow": "the determinant of a large K_H overflows (it is above 10^308 here): compute the log-determinant "
                    "directly, torch.linalg.slogdet(K) (its second value), never log(det(K)).",
    "per_unit": "K_H counts units, 0 to N_A: do not divide it by the number of units.",
}


@checker("naswot_score")
def check_naswot_score(naswot_score: Callable[[torch.Tensor], float]) -> CheckResult:
    """Check ``naswot_score(codes) -> float``: log|det K_H| with K_H the agreements between binary
    activation codes; -inf when two codes are equal; the codes unchanged. Reference:
    :func:`naswot_score_reference`."""
    name = "naswot_score"
    cases = naswot_cases()
    for codes, what in cases:
        given = codes.clone()
        where = f"for {what}"
        got = run_learner(naswot_score, (given,), name, case=what,
                          hints={"math domain error": "when two images share a code, K_H is singular and its "
                                                      "determinant 0: the score is -inf (slogdet gives it; "
                                                      "math.log(0) raises)."})
        require(check_unchanged(codes, given, name, where, "codes"))
        got = returned_number(got, name, where, "return log|det K_H| as a float.")
        expected = naswot_score_reference(codes)
        if expected == -math.inf:
            if got == -math.inf:
                continue
            return failed(name, f"{where}: expected -inf, got {got:g}. Hint: when two images share a code, two rows "
                          "of K_H are equal and its determinant is 0: the score is log 0 = -inf (slogdet gives it; "
                          "math.log(0) raises instead).")
        if math.isclose(got, expected, rel_tol=1e-5, abs_tol=1e-6):
            continue
        hint = next((_NASWOT_HINTS[key] for key, wrong in _naswot_variants(codes).items()
                     if not math.isclose(wrong, expected, rel_tol=1e-5, abs_tol=1e-6)
                     and (got == wrong or math.isclose(got, wrong, rel_tol=1e-5, abs_tol=1e-6))), None)
        return failed(name, f"{where}: expected {expected:.6g}, got {got:.6g}. Hint: " +
                      (hint or "C = codes.double(); K = C @ C.T + (1 - C) @ (1 - C).T; return the second value of "
                                "torch.linalg.slogdet(K)."))
    return passed(name, len(cases), f"all {len(cases)} cases pass (agreements on active and inactive units, natural "
                  "log, no overflow, -inf for a repeated code; codes unchanged)")


# ----------------------------------------------------------------------------- layer_bits

def layer_bits_reference(weights: int, sparsity: float, bits: int) -> int:
    """The bits a layer of ``weights`` values takes once magnitude-pruned to ``sparsity`` (``round(sparsity *
    weights)`` zeros, as :func:`course_lib.pruning.magnitude_prune`) and quantized to ``bits``, in the smaller of
    two encodings: dense, every value at ``bits`` (:math:`n b`), or a bitmask of one bit per position plus the
    nonzeros (:math:`n + (n - k)\\,b`). It agrees with :func:`course_lib.encoding.storage_bits` (tested)."""
    zeros = round(sparsity * weights)
    return min(weights * bits, weights + (weights - zeros) * bits)


LAYER_BITS_CASES = [  # (weights, sparsity, bits)
    (144, 0.0, 6),          # dense: 864
    (1000, 0.5, 4),         # the bitmask wins: 1,000 + 500 x 4
    (8192, 0.25, 4),        # a tie: a quarter pruned saves nothing at 4 bits
    (8192, 0.25, 8),        # at 8 bits it saves an eighth
    (10, 0.35, 8),          # round(3.5) = 4 zeros (int() would give 3)
    (30, 0.85, 2),          # round(25.5) = 26 zeros (Python rounds halves to even; int() gives 25)
]


def _layer_bits_variants(n, s, b) -> dict[str, float]:
    k = round(s * n)
    return {
        "no_bitmask": min(n * b, (n - k) * b),
        "bitmask_in_bytes": min(n * b, n / 8 + (n - k) * b),
        "kept_as_zeros": min(n * b, n + k * b),
        "always_bitmask": n + (n - k) * b,
        "bytes": min(n * b, n + (n - k) * b) / 8,
        "truncated": min(n * b, n + (n - int(s * n)) * b),
    }


_LAYER_BITS_HINTS = {
    "no_bitmask": "the positions cost too: a bitmask stores one bit per weight, n bits, besides the nonzeros.",
    "bitmask_in_bytes": "the bitmask is n BITS (one per position), not n / 8: everything here is counted in bits.",
    "kept_as_zeros": "sparsity is the fraction of ZEROS: the nonzeros are n - round(sparsity * n).",
    "always_bitmask": "the layer is stored the cheaper way: when the bitmask costs more than dense (little sparsity), "
                      "store it dense, n * bits.",
    "bytes": "return bits, not bytes.",
    "truncated": "round the number of zeros as magnitude pruning does, round(sparsity * n), not int(...), which "
                 "truncates.",
}


@checker("layer_bits")
def check_layer_bits(layer_bits: Callable[[int, float, int], int]) -> CheckResult:
    """Check ``layer_bits(weights, sparsity, bits) -> int``: min(dense, bitmask) bits of a pruned,
    quantized layer. Reference: :func:`layer_bits_reference`."""
    name = "layer_bits"
    for n, s, b in LAYER_BITS_CASES:
        where = f"for weights={n}, sparsity={s}, bits={b}"
        got = returned_number(run_learner(layer_bits, (n, s, b), name, case=where[4:]), name, where,
                              "return a number of bits, an int.")
        expected = layer_bits_reference(n, s, b)
        if got == expected:
            continue
        hint = next((_LAYER_BITS_HINTS[key] for key, wrong in _layer_bits_variants(n, s, b).items()
                     if wrong != expected and math.isclose(got, wrong)), None)
        return failed(name, f"{where}: expected {expected} bits, got {got:g}. Hint: " +
                      (hint or "zeros = round(sparsity * weights); min(weights * bits, weights + (weights - zeros) "
                                "* bits)."))
    n = len(LAYER_BITS_CASES)
    return passed(name, n, f"all {n} cases pass (dense, bitmask, a tie, rounding of the zeros, bits not bytes)")


# ----------------------------------------------------------------------------- violated_limits

def violated_limits_reference(flash_bytes: int, sram_bytes: int, latency_ms: float, limits: dict) -> list[str]:
    """The limits a candidate exceeds, in the order ``"flash"``, ``"sram"``, ``"latency"``.
    ``limits`` = ``{"flash_kb": ..., "sram_kb": ..., "latency_ms": ... or None}``, with KB = 1024
    bytes (the course's KB, a KiB); a need *equal* to its limit fits; ``latency_ms`` None: no
    latency limit."""
    violated = []
    if flash_bytes > limits["flash_kb"] * KB:
        violated.append("flash")
    if sram_bytes > limits["sram_kb"] * KB:
        violated.append("sram")
    if limits["latency_ms"] is not None and latency_ms > limits["latency_ms"]:
        violated.append("latency")
    return violated


TIGHT = {"flash_kb": 64, "sram_kb": 32, "latency_ms": 50.0}
LIMIT_CASES = [  # (flash_bytes, sram_bytes, latency_ms, limits)
    (40_000, 20_000, 30.0, TIGHT),                        # fits
    (70_000, 20_000, 30.0, TIGHT),                        # flash only
    (40_000, 33_000, 30.0, TIGHT),                        # SRAM only (32 KB = 32,768 bytes)
    (40_000, 20_000, 80.0, TIGHT),                        # latency only
    (65_000, 32_500, 30.0, TIGHT),                        # between 1000 and 1024 bytes per KB: fits
    (65_536, 32_768, 50.0, TIGHT),                        # exactly at every limit: fits
    (65_537, 32_769, 50.1, TIGHT),                        # just over every limit
    (900_000, 300_000, 500.0, {"flash_kb": 960, "sram_kb": 240, "latency_ms": None}),   # no latency limit
]


def _limit_mistakes(flash, sram, latency, limits) -> list[tuple[list, str]]:
    def rule(flash_unit=KB, strict=False, use_sram=True, use_latency=True, order=("flash", "sram", "latency")):
        over = (lambda need, limit: need >= limit) if strict else (lambda need, limit: need > limit)
        out = {"flash": over(flash, limits["flash_kb"] * flash_unit),
               "sram": use_sram and over(sram, limits["sram_kb"] * flash_unit),
               "latency": use_latency and limits["latency_ms"] is not None and over(latency, limits["latency_ms"])}
        return [k for k in order if out[k]]

    return [
        (rule(flash_unit=1000), "the course's KB is 1024 bytes (a KiB, as in hardware.KB), not 1000."),
        (rule(flash_unit=1), "the limits are in KB and the needs in bytes: multiply the KB by 1024 before comparing."),
        (rule(strict=True), "a need EQUAL to its limit fits: a limit is violated only when need > limit (not >=)."),
        (rule(use_sram=False), "check the SRAM too: peak activations must fit the SRAM limit."),
        (rule(use_latency=False), "check the latency too (unless limits['latency_ms'] is None)."),
        (rule(order=("latency", "sram", "flash")), "list the violated limits in the order flash, sram, latency."),
    ]


@checker("violated_limits")
def check_violated_limits(violated_limits: Callable[[int, int, float, dict], list[str]]) -> CheckResult:
    """Check ``violated_limits(flash_bytes, sram_bytes, latency_ms, limits) -> list[str]``: the
    names among ``"flash"``, ``"sram"``, ``"latency"`` (in that order) of the limits exceeded,
    KB = 1024 bytes, equal fits, a latency limit of None means none. Reference:
    :func:`violated_limits_reference`."""
    name = "violated_limits"
    for flash, sram, latency, limits in LIMIT_CASES:
        given = dict(limits)
        where = f"for flash_bytes={flash}, sram_bytes={sram}, latency_ms={latency}, limits={limits}"
        got = run_learner(violated_limits, (flash, sram, latency, given), name, case=where[4:],
                          hints={"NoneType": "limits['latency_ms'] may be None: then there is "
                                             "no latency limit to check."})
        require(check_unchanged(limits, given, name, where, "limits"))
        require(check_returned(got, name, where, (list, tuple), what="list of limit names"))
        expected = violated_limits_reference(flash, sram, latency, limits)
        if list(got) == expected:
            continue
        hint = next((h for wrong, h in _limit_mistakes(flash, sram, latency, limits) if wrong == list(got)), None)
        if hint is None and any(not isinstance(v, str) for v in got):
            hint = "return the NAMES of the violated limits ('flash', 'sram', 'latency'), not booleans or numbers."
        return failed(name, f"{where} expected {expected}, got {list(got)}. Hint: " +
                      (hint or "compare each need with its limit in the same unit (bytes: KB x 1024) and list the "
                                "names of those that exceed it."))
    n = len(LIMIT_CASES)
    return passed(name, n, f"all {n} cases pass (KB = 1024 bytes, equal fits, SRAM and latency checked, no "
                  "latency limit)")

