"""Two objectives at once: the Pareto front of (accuracy, cost) points and its hypervolume.

A search with a cost (latency, bytes) has no single best network, only a *front* of networks
none of which is beaten on both axes. With accuracy :math:`a` maximised and cost :math:`c`
minimised, point :math:`j` *dominates* point :math:`i` when

.. math:: a_j \\ge a_i,\\quad c_j \\le c_i,\\quad (a_j, c_j) \\ne (a_i, c_i),

i.e. at least as good on both and strictly better on one. The front is the set of points no
other point dominates. Two *equal* points do not dominate each other: both stay on the front.

The **hypervolume** (Zitzler & Thiele 1998, "Multiobjective Optimization Using Evolutionary
Algorithms: A Comparative Case Study", the "size of the space covered") measures a whole front
with one number: the area of the region it dominates, bounded by a reference point
:math:`(a_{ref}, c_{ref})` (the worst accuracy and cost that still count). In 2-D, with the
front's points sorted by increasing cost :math:`c_1 < \\dots < c_n` (so increasing accuracy),

.. math:: HV = \\sum_{k=1}^{n} (c_{k+1} - c_k)\\,(a_k - a_{ref}),\\qquad c_{n+1} = c_{ref}.

A front that moves up (more accurate) or left (cheaper) has a larger hypervolume: the measure
NSGA-II's results are compared with (Deb et al. 2002).

Taught in ``notebooks/07_automl_search.ipynb``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..checks import check_type, describe, is_real

__all__ = ["dominates", "pareto_front", "hypervolume"]


def _check_points(points, name: str = "points") -> list[tuple[float, float]]:
    """A sequence of (accuracy, cost) pairs of finite numbers, as a list of float pairs."""
    check_type(points, name, (list, tuple), "a list of (accuracy, cost) pairs")
    out = []
    for i, p in enumerate(points):
        if not isinstance(p, (tuple, list)) or len(p) != 2 or not all(is_real(v) for v in p):
            raise TypeError(f"{name}[{i}] must be an (accuracy, cost) pair of numbers, got {describe(p)} {p!r}")
        if not all(math.isfinite(v) for v in p):
            raise ValueError(f"{name}[{i}] must hold finite numbers, got {tuple(p)!r}")
        out.append((float(p[0]), float(p[1])))
    return out


def dominates(p: Sequence[float], q: Sequence[float]) -> bool:
    """Whether (accuracy, cost) point ``p`` dominates ``q``: no worse on both axes (higher or
    equal accuracy, lower or equal cost) and not equal."""
    return p[0] >= q[0] and p[1] <= q[1] and (p[0], p[1]) != (q[0], q[1])


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """The indices of the points that no other point dominates, sorted by cost (cheapest first),
    ties by index. Accuracy is maximised, cost minimised; equal points are all kept.

    The sweep: in order of cost, ties by accuracy descending, a point is on the front when its
    accuracy is above the best of every strictly cheaper point and equal to the best of its own
    cost (:math:`O(n \\log n)`).

    Example: ``pareto_front([(0.9, 4), (0.7, 1), (0.85, 3), (0.8, 2), (0.88, 5)]) == [1, 3, 2, 0]``
    (the last one costs more than the first and is less accurate).

    Raises:
        TypeError: ``points`` not a list of (accuracy, cost) pairs of numbers.
        ValueError: a NaN or infinite value.
    """
    pts = _check_points(points)
    order = sorted(range(len(pts)), key=lambda i: (pts[i][1], -pts[i][0], i))
    front, best_cheaper, k = [], -math.inf, 0
    while k < len(order):                           # one group of equal cost at a time
        cost = pts[order[k]][1]
        group = []
        while k < len(order) and pts[order[k]][1] == cost:
            group.append(order[k])
            k += 1
        top = pts[group[0]][0]                      # the group's best accuracy (sorted descending)
        if top > best_cheaper:
            front += [i for i in group if pts[i][0] == top]
            best_cheaper = top
    return sorted(front, key=lambda i: (pts[i][1], i))


def hypervolume(front: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The area dominated by the (accuracy, cost) points of ``front`` and bounded by
    ``reference`` = :math:`(a_{ref}, c_{ref})`: the union of the rectangles
    :math:`[c, c_{ref}] \\times [a_{ref}, a]`. Points that do not beat the reference on both
    axes (:math:`a \\le a_{ref}` or :math:`c \\ge c_{ref}`) add nothing; dominated points add
    nothing (the front is taken first), so any set of points may be given. An empty front: 0.

    Example: one point (0.9, 2) with reference (0.5, 10) covers :math:`(10-2)(0.9-0.5) = 3.2`.

    Raises:
        TypeError / ValueError: as :func:`pareto_front`, and for a ``reference`` that is not one
            finite (accuracy, cost) pair.
    """
    pts = _check_points(front, "front")
    (a_ref, c_ref), = _check_points([reference] if isinstance(reference, (tuple, list)) else reference,
                                    "reference")
    useful = [p for p in pts if p[0] > a_ref and p[1] < c_ref]
    kept = sorted({useful[i] for i in pareto_front(useful)}, key=lambda p: p[1])
    area = 0.0
    for k, (a, c) in enumerate(kept):
        next_cost = kept[k + 1][1] if k + 1 < len(kept) else c_ref
        area += (next_cost - c) * (a - a_ref)
    return area
