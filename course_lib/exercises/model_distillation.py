"""Exercises of notebook 06, model distillation: the fidelity metrics (top-1 agreement with the
teacher, beside accuracy), Ba & Caruana's mimic loss (L2 on the logits), and the path
probabilities of a depth-2 soft decision tree.

Each exercise has a reference (``*_reference``, for :func:`falls_back_to`) and a checker
(``check_*``) that tests the learner's code on small hand-made cases and names typical mistakes.
The references are plain torch, written to be read beside the notebook; they agree with
:mod:`course_lib.model_distillation` (``fidelity_of_logits``, ``mimic_loss``,
``path_probabilities``).
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch.nn import functional as F

from .checking import (check_returned, check_unchanged, checker, CheckResult, close_to, failed, passed, require,
                       run_learner, student_gradient)

__all__ = ["agreement_and_accuracy_reference", "check_agreement_and_accuracy", "nearest_neighbours_reference",
           "check_nearest_neighbours", "mimic_loss_reference",
           "check_mimic_loss", "leaf_probabilities_reference", "check_leaf_probabilities"]


def _show(t: torch.Tensor) -> str:
    """A small tensor by value (4 decimals), a larger one by shape, for messages."""
    t = t.detach()
    if t.numel() <= 16:
        values = t.tolist()
        if t.dim() == 2:
            return str([[round(v, 4) for v in row] for row in values])
        if t.dim() == 1:
            return str([round(v, 4) if isinstance(v, float) else v for v in values])
        return str(round(values, 4) if isinstance(values, float) else values)
    return f"of shape {tuple(t.shape)}"




def _number(value) -> float | None:
    """A Python number, or a one-element tensor, as a float (else None)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    return None


# ----------------------------------------------------------------------------- agreement_and_accuracy

def agreement_and_accuracy_reference(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                                     labels: torch.Tensor) -> tuple[float, float]:
    """``(agreement, accuracy)`` of a student on B examples, two Python floats in [0, 1]:
    the fraction whose top class (argmax over the classes, dim=1) is the *teacher's* top class
    (fidelity), and the fraction whose top class is the true label (accuracy). A tie goes to the
    lowest class index on both sides, as ``argmax`` does. Nothing is modified."""
    student_top = student_logits.argmax(dim=1)                     # (B,)
    teacher_top = teacher_logits.argmax(dim=1)                     # (B,)
    agreement = (student_top == teacher_top).float().mean().item()
    accuracy = (student_top == labels).float().mean().item()
    return agreement, accuracy


def _fidelity_cases() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    # The teacher is wrong on some examples, so agreement and accuracy differ; B != C, so an
    # argmax over the wrong dim gives a result of the wrong length.
    student = torch.tensor([[2.0, 0.5, 0.1], [0.1, 3.0, 0.2], [0.3, 0.2, 1.5], [1.0, 0.9, 0.0],
                            [0.2, 0.1, 0.4], [2.5, 0.3, 0.1], [0.2, 2.2, 0.3]])
    teacher = torch.tensor([[3.0, 0.1, 0.2], [0.2, 0.1, 2.0], [0.1, 0.3, 4.0], [2.0, 0.1, 0.5],
                            [0.3, 3.0, 0.1], [0.1, 2.0, 0.2], [0.1, 4.0, 0.2]])
    labels = torch.tensor([0, 1, 2, 1, 1, 1, 2])
    # agreement 4/7 (rows 0, 2, 3, 6), accuracy 3/7 (rows 0, 1, 2), the teacher's accuracy 4/7
    # Ties: the student's row [1, 1, 0] has two top classes; argmax takes class 0.
    tied_student = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [0.5, 0.5, 0.5], [3.0, 1.0, 3.0],
                                 [0.0, 1.0, 0.0]])
    tied_teacher = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 2.0],
                                 [0.0, 1.0, 0.0]])
    tied_labels = torch.tensor([1, 2, 0, 2, 1])
    # argmax: student [0, 1, 0, 0, 1], teacher [1, 2, 2, 2, 1] -> agreement 1/5, accuracy 2/5; counting
    # "the teacher's class is among the student's top ones" would give 5/5
    g = torch.Generator().manual_seed(60)
    s = torch.randn(12, 5, generator=g, dtype=torch.float64)
    t = s + 0.8 * torch.randn(12, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (12,), generator=g)
    return [(student, teacher, labels), (tied_student, tied_teacher, tied_labels), (s, t, y)]


def _fidelity_mistakes(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> list[tuple[tuple, str]]:
    """(agreement, accuracy) pairs a typical mistake gives, with its hint."""
    B = len(s)
    s_top, t_top = s.argmax(dim=1), t.argmax(dim=1)
    agree = (s_top == t_top).double().mean().item()
    acc = (s_top == y).double().mean().item()
    teacher_acc = (t_top == y).double().mean().item()
    tie_agree = (s.gather(1, t_top[:, None])[:, 0] == s.max(dim=1).values).double().mean().item()
    tie_acc = (s.gather(1, y[:, None])[:, 0] == s.max(dim=1).values).double().mean().item()
    elementwise = (s == t).double().mean().item()
    return [
        ((acc, acc), "you compared the student with the LABELS for the agreement: fidelity compares the "
                     "student's top class with the TEACHER's top class, teacher_logits.argmax(dim=1)."),
        ((acc, agree), "agreement and accuracy are swapped: return (agreement with the teacher, accuracy on "
                       "the labels), in that order."),
        ((agree, teacher_acc), "the accuracy is the TEACHER's (teacher_logits.argmax(dim=1) == labels): the "
                               "accuracy asked for is the student's."),
        ((agree * B, acc * B), "you returned counts: divide by the number of examples (a fraction in [0, 1], "
                               "e.g. .float().mean())."),
        ((tie_agree, tie_acc), "a tie is counted as agreement: you checked whether the teacher's class is AMONG "
                               "the student's top scores; take each side's single top class with argmax "
                               "(ties go to the lowest index) and compare the two indices."),
        ((elementwise, acc), "you compared the logits themselves (student_logits == teacher_logits): compare "
                             "the top CLASSES, student_logits.argmax(dim=1) == teacher_logits.argmax(dim=1)."),
    ]


@checker("agreement_and_accuracy")
def check_agreement_and_accuracy(agreement_and_accuracy: Callable) -> CheckResult:
    """Check ``agreement_and_accuracy(student_logits, teacher_logits, labels) -> (float, float)``:
    the fraction of examples whose top class is the teacher's top class, and the fraction whose
    top class is the label; argmax's tie rule on both sides; Python floats; inputs unchanged.
    Reference: :func:`agreement_and_accuracy_reference`."""
    name = "agreement_and_accuracy"
    cases = _fidelity_cases()
    for args in cases:
        s, t, y = args
        before = copy.deepcopy(args)
        where = f"for student_logits {_show(s)}, teacher_logits {_show(t)}, labels {y.tolist()}"
        got = run_learner(agreement_and_accuracy, args, name, case=where[4:], hints={
            "must match the size": "did you take argmax over dim=0 (one top EXAMPLE per class)? The classes are "
                "dim=1: argmax(dim=1) gives one class per example."})
        for old, new, what in zip(before, args, ("student_logits", "teacher_logits", "labels")):
            require(check_unchanged(old, new, name, where, what, f"{what} is only read."))
        require(check_returned(got, name, where, tuple, what="result (agreement, accuracy)"))
        if len(got) != 2:
            return failed(name, f"{where} expected two numbers (agreement, accuracy), got {len(got)} values.")
        B = len(s)
        for value, what in zip(got, ("agreement", "accuracy")):
            if isinstance(value, torch.Tensor) and value.numel() != 1:
                hint = ("you compared argmax over dim=0 (one top EXAMPLE per class): the classes are dim=1, "
                        "argmax(dim=1) gives one class per example." if value.numel() == s.shape[1] else
                        "reduce to one number: the mean over the examples.")
                return failed(name, f"{where} the {what} must be one number, got a tensor of shape "
                              f"{tuple(value.shape)}. Hint: {hint}")
            if isinstance(value, int) and not isinstance(value, bool):
                return failed(name, f"{where} the {what} is the int {value}. Hint: you returned a count: "
                              "divide by the number of examples, for a fraction in [0, 1] (a Python float).")
            require(check_returned(value, name, where, float, what=what))
        expected = agreement_and_accuracy_reference(s, t, y)
        if all(abs(g - e) <= 1e-6 for g, e in zip(got, expected)):
            continue
        hint = next((h for wrong, h in _fidelity_mistakes(s, t, y)
                     if all(abs(g - w) <= 1e-6 for g, w in zip(got, wrong))), None)
        by_examples = (s.argmax(dim=0) == t.argmax(dim=0)).double().mean().item()
        if hint is None and abs(got[0] - by_examples) <= 1e-6:
            hint = ("you took argmax over dim=0 (one top EXAMPLE per class): the classes are dim=1, "
                    "argmax(dim=1) gives one class per example.")
        if hint is None and any(g > 1 for g in got):
            hint = "a fraction is at most 1: divide the count of matches by the number of examples."
        hint = hint or ("agreement = (student_logits.argmax(dim=1) == teacher_logits.argmax(dim=1)).float()"
                        ".mean().item(); accuracy the same with labels.")
        return failed(name, f"{where} (B = {B}): expected {tuple(round(e, 4) for e in expected)}, got "
                      f"{tuple(round(g, 4) for g in got)}. Hint: {hint}")
    return passed(name, len(cases), f"all {len(cases)} cases pass (agreement with the teacher's top class, "
                  "accuracy on the labels, fractions, argmax over the classes with its tie rule; inputs "
                  "unchanged)")


# ----------------------------------------------------------------------------- mimic_loss

def mimic_loss_reference(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                         centre: bool = False) -> torch.Tensor:
    """Ba & Caruana (2014): :math:`\\frac{1}{2B} \\sum_b \\sum_k (z_{bk} - v_{bk})^2`, the squared
    error summed over the classes, averaged over the examples, halved; a scalar tensor whose
    gradient with respect to the student's logits is :math:`(z - v) / B`. With ``centre=True``,
    each example's logits are first centred over the classes (:math:`z - \\bar z`, and the same
    for :math:`v`). The teacher's logits are a target: detached. Nothing is modified."""
    z, v = student_logits, teacher_logits.detach()                 # the teacher is a fixed target
    if centre:
        z = z - z.mean(dim=1, keepdim=True)                        # (B, C) - (B, 1): per example
        v = v - v.mean(dim=1, keepdim=True)
    return 0.5 * ((z - v) ** 2).sum(dim=1).mean()


def _mimic_cases() -> list[tuple[torch.Tensor, torch.Tensor, bool]]:
    g = torch.Generator().manual_seed(61)
    return [  # (student_logits, teacher_logits, centre); B != C everywhere
        (torch.randn(4, 3, generator=g), 2 + 3 * torch.randn(4, 3, generator=g), False),
        (torch.randn(3, 5, generator=g, dtype=torch.float64), 1 + 4 * torch.randn(3, 5, generator=g,
                                                                               dtype=torch.float64), True),
        (torch.randn(5, 4, generator=g), -3 + 2 * torch.randn(5, 4, generator=g), True),
    ]


def _mimic_variant(z: torch.Tensor, v: torch.Tensor, centre: bool, *, centring: str = "right",
                   reduction: str = "right", half: bool = True, kind: str = "logits") -> torch.Tensor:
    """The mimic loss with one typical mistake switched on (all defaults: the right loss)."""
    z, v = z.detach().double(), v.detach().double()
    if kind == "probabilities":
        z, v = F.softmax(z, dim=1), F.softmax(v, dim=1)
    if centring == "right" and centre or centring == "always":
        z, v = z - z.mean(dim=1, keepdim=True), v - v.mean(dim=1, keepdim=True)
    elif centring == "batch":
        z, v = z - z.mean(dim=0, keepdim=True), v - v.mean(dim=0, keepdim=True)
    elif centring == "student_only":
        z = z - z.mean(dim=1, keepdim=True)
    elif centring == "teacher_only":
        v = v - v.mean(dim=1, keepdim=True)
    d = (z - v).abs() if kind == "l1" else (z - v) ** 2
    value = {"right": d.sum(dim=1).mean(), "mean": d.mean(), "sum": d.sum(),
             "class_mean": d.mean(dim=1).sum()}[reduction]
    return 0.5 * value if half else value


_MIMIC_MISTAKES = [
    ({"reduction": "mean"}, "the squared error is averaged over batch x classes (F.mse_loss's default, or "
                            ".mean() over everything): SUM over the classes, then average over the examples, "
                            "((z - v)**2).sum(dim=1).mean()"),
    ({"reduction": "sum"}, "the squared error is summed over the batch too: sum over the classes, then AVERAGE "
                           "over the examples (.sum(dim=1).mean())"),
    ({"reduction": "class_mean"}, "the axes are swapped: averaged over the classes and summed over the examples; "
                                  "sum over the classes (dim=1), average over the examples"),
    ({"half": False}, "the factor 1/2 is missing: Ba & Caruana's loss is (1/2) * squared error (so its gradient "
                      "is (z - v) / B)"),
    ({"centring": "never"}, "with centre=True each example's logits must be centred first: z - z.mean(dim=1, "
                            "keepdim=True), and the same for the teacher's"),
    ({"centring": "always"}, "the logits are centred although centre=False: Ba & Caruana regress the raw logits; "
                             "centre only when asked"),
    ({"centring": "batch"}, "the logits are centred over the batch (dim=0): centre each EXAMPLE over its classes, "
                            "z.mean(dim=1, keepdim=True)"),
    ({"centring": "student_only"}, "only the student's logits are centred: centre the teacher's too"),
    ({"centring": "teacher_only"}, "only the teacher's logits are centred: centre the student's too"),
    ({"kind": "probabilities"}, "you compared softmax probabilities: mimic learning regresses the LOGITS "
                                "themselves (the probabilities squash the differences the teacher encodes)"),
    ({"kind": "l1"}, "that is an absolute (L1) error: square the differences, (z - v)**2"),
]


def _mimic_hint(got: torch.Tensor, args: tuple) -> str | None:
    z, v, centre = args
    singles = [[m] for m in _MIMIC_MISTAKES]
    pairs = [[a, b] for i, a in enumerate(_MIMIC_MISTAKES) for b in _MIMIC_MISTAKES[i + 1:]
             if not set(a[0]) & set(b[0])]
    for mistakes in singles + pairs:
        settings = {k: val for m, _ in mistakes for k, val in m.items()}
        if close_to(got, _mimic_variant(z, v, centre, **settings)):
            return "; and ".join(text for _, text in mistakes) + "."
    return None


@checker("mimic_loss")
def check_mimic_loss(mimic_loss: Callable) -> CheckResult:
    """Check ``mimic_loss(student_logits, teacher_logits, centre=False) -> Tensor``: the scalar
    ``0.5 * ((z - v)**2).sum(dim=1).mean()`` (with ``centre=True``, each example's logits centred
    over the classes first) of the logits' dtype; its gradient with respect to the student's
    logits ``(z - v) / B`` (centred: of the centred logits); no gradient into the teacher's
    logits; inputs unchanged. Reference: :func:`mimic_loss_reference`."""
    name = "mimic_loss"
    cases = _mimic_cases()
    for args in cases:
        z, v, centre = args
        B, C = z.shape
        before = copy.deepcopy(args)
        where = f"for student_logits and teacher_logits of shape {(B, C)} ({z.dtype}), centre={centre}"
        got = run_learner(mimic_loss, (z, v, centre), name, case=where[4:], hints={
            "leaf Variable": "you modify an input in place (-=, sub_...): compute new tensors instead."})
        for old, new, label in zip(before[:2], args[:2], ("student_logits", "teacher_logits")):
            require(check_unchanged(old, new, name, where, label, f"{label} - {label}.mean(dim=1, keepdim=True) "
                                    f"makes a new tensor; {label} -= ... overwrites the caller's."))
        if _number(got) is not None and not isinstance(got, torch.Tensor):
            return failed(name, f"{where} expected a tensor as the loss, got the Python number {got!r}. Hint: "
                          "return the loss tensor itself (no .item()): training calls loss.backward() on it.")
        require(check_returned(got, name, where, torch.Tensor, dtype=z.dtype, what="loss"))
        if got.dim() != 0:
            hint = {(B,): "you returned one loss per example: average over the examples (.mean()).",
                    (B, C): "you returned one value per example and class: sum over the classes (dim=1), then "
                            "average over the examples.",
                    (C,): "you reduced over the examples first: sum over the classes (dim=1), then average over "
                          "the examples."}.get(tuple(got.shape), "reduce to a single number.")
            return failed(name, f"{where} the loss must be a scalar (shape ()), got shape {tuple(got.shape)}. "
                          f"Hint: {hint}")
        expected = mimic_loss_reference(z.double(), v.double(), centre)
        if not close_to(got, expected):
            hint = _mimic_hint(got, args) or "0.5 * ((z - v)**2).sum(dim=1).mean(), centring each row first " \
                                             "when centre=True."
            return failed(name, f"{where}: expected the loss {expected.item():.6g}, got {got.item():.6g}. "
                          f"Hint: {hint}")
        # the gradients, on fresh copies that require them
        grad = student_gradient(mimic_loss, z, v, (centre,), name, where,
                                "you modify an input in place (-=, sub_...): compute new tensors instead.",
                                "do not .detach() the STUDENT's logits (nor use torch.no_grad() or .item()): the "
                                "student learns through this loss; detach only the teacher's.")
        zc = z.double() - z.double().mean(dim=1, keepdim=True) if centre else z.double()
        vc = v.double() - v.double().mean(dim=1, keepdim=True) if centre else v.double()
        wanted = (zc - vc) / B
        if grad is None or not close_to(grad, wanted, 1e-4):
            return failed(name, f"{where}, the loss value is right but its gradient with respect to "
                          "student_logits is not (z - v) / B. Hint: do not .detach() any part of the student's "
                          "side.")
    return passed(name, len(cases), f"all {len(cases)} cases pass (1/2, summed over the classes, averaged over "
                  "the examples, centred per example when asked, gradient (z - v) / B, teacher detached; inputs "
                  "unchanged)")


# ----------------------------------------------------------------------------- leaf_probabilities (depth 2)

def leaf_probabilities_reference(node_probabilities: torch.Tensor) -> torch.Tensor:
    """The four leaves' path probabilities of a depth-2 soft decision tree, (B, 3) -> (B, 4).

    Column :math:`i` of ``node_probabilities`` is :math:`p_i`, the probability that inner node
    :math:`i` sends the input to its RIGHT child: node 0 is the root, node 1 its left child,
    node 2 its right child. Leaves from left to right: left-left, left-right, right-left,
    right-right, each the product of the branch probabilities on its path:

    .. math::  [(1-p_0)(1-p_1),\\; (1-p_0)\\,p_1,\\; p_0(1-p_2),\\; p_0\\,p_2]

    Each row sums to 1. Soft (differentiable) decisions; nothing is modified."""
    p0, p1, p2 = node_probabilities[:, 0], node_probabilities[:, 1], node_probabilities[:, 2]   # (B,) each
    return torch.stack([(1 - p0) * (1 - p1), (1 - p0) * p1, p0 * (1 - p2), p0 * p2], dim=1)


def _leaf_cases() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(62)
    return [
        torch.tensor([[0.9, 0.2, 0.7], [0.3, 0.6, 0.1]]),                       # p1 != p2: ancestors matter
        torch.rand(4, 3, generator=g, dtype=torch.float64) * 0.9 + 0.05,
        torch.tensor([[0.6, 0.45, 0.8], [0.2, 0.9, 0.35], [0.55, 0.3, 0.4]]),   # near 0.5: hard decisions differ
    ]


def _leaf_mistakes(p: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    p = p.double()
    p0, p1, p2 = p[:, 0], p[:, 1], p[:, 2]
    q0, q1, q2 = 1 - p0, 1 - p1, 1 - p2
    h = (p > 0.5).double()
    h0, h1, h2 = h[:, 0], h[:, 1], h[:, 2]
    swap = "p_i is the probability of going RIGHT: the left child gets 1 - p_i and the right child p_i"
    return [
        (torch.stack([p0 * p1, p0 * q1, q0 * p2, q0 * q2], 1), "left and right are swapped: " + swap + "."),
        (torch.stack([q0 * q2, q0 * p2, p0 * q1, p0 * p1], 1),
         "the wrong ancestors: the LEFT subtree's leaves go through node 1 (the root's left child) and the "
         "RIGHT subtree's through node 2; leaf 0 = (1 - p0)(1 - p1), leaf 3 = p0 * p2."),
        (torch.stack([q1, p1, q2, p2], 1), "the root is missing: every leaf's path starts at the root, so "
                                           "multiply by (1 - p0) on the left and p0 on the right (each row "
                                           "must sum to 1)."),
        (torch.stack([q0 * q1, q0 * p1, q0 * q2, q0 * p2], 1),
         "the right subtree is multiplied by (1 - p0): going right at the root has probability p0 (each row "
         "must sum to 1)."),
        (torch.stack([q0 * q1, q0 * p1, p0 * q1, p0 * p1], 1),
         "both subtrees use node 1: the right subtree's decision is node 2's, p2."),
        (torch.stack([(1 - h0) * (1 - h1), (1 - h0) * h1, h0 * (1 - h2), h0 * h2], 1),
         "these are HARD decisions (each p rounded to 0 or 1): a soft tree multiplies the probabilities "
         "themselves, so every leaf gets a share and the result stays differentiable."),
        (torch.stack([q0 * q1, q0 * p2, p0 * q1, p0 * p2], 1),
         "the leaves mix up their nodes: leaves 0 and 1 hang under node 1 (1 - p1, p1), leaves 2 and 3 under "
         "node 2 (1 - p2, p2)."),
        (torch.stack([q0 * q1, p0 * q2, q0 * p1, p0 * p2], 1),
         "the leaves are out of order: from left to right, left-left, left-right, right-left, right-right."),
        (torch.stack([q0 + q1, q0 + p1, p0 + q2, p0 + p2], 1) / 2,
         "probabilities along a path MULTIPLY (the chance of taking both branches), they do not add."),
    ]


@checker("leaf_probabilities")
def check_leaf_probabilities(leaf_probabilities: Callable[[torch.Tensor], torch.Tensor]) -> CheckResult:
    """Check ``leaf_probabilities(node_probabilities) -> Tensor``: the (B, 4) path probabilities
    ``[(1-p0)(1-p1), (1-p0)p1, p0(1-p2), p0 p2]`` of a depth-2 soft tree from its (B, 3)
    right-branch probabilities, of the input's dtype, rows summing to 1, differentiable; the input
    unchanged. Reference: :func:`leaf_probabilities_reference`."""
    name = "leaf_probabilities"
    cases = _leaf_cases()
    for p in cases:
        before = p.clone()
        where = f"for node_probabilities {_show(p)} ({p.dtype})"
        got = run_learner(leaf_probabilities, (p,), name, case=where[4:])
        require(check_unchanged(before, p, name, where, "node_probabilities",
                                "1 - p makes a new tensor; p.mul_(...) or p[:, 0] = ... overwrites the "
                                "caller's."))
        require(check_returned(got, name, where, torch.Tensor, dtype=p.dtype, what="leaf probabilities"))
        B = len(p)
        if tuple(got.shape) != (B, 4):
            hint = "stack the four leaves along dim=1: torch.stack([...], dim=1)." if tuple(got.shape) == (4, B) \
                else "one row per example, one column per leaf: (B, 4)."
            return failed(name, f"{where} the result must have shape {(B, 4)}, got {tuple(got.shape)}. "
                          f"Hint: {hint}")
        expected = leaf_probabilities_reference(p.double())
        if not close_to(got, expected):
            hint = next((h for wrong, h in _leaf_mistakes(p) if close_to(got, wrong)), None)
            sums = got.detach().double().sum(dim=1)
            if hint is None and not close_to(sums, torch.ones_like(sums)):
                hint = (f"each row must sum to 1 (the input ends in exactly one leaf), yours sum to "
                        f"{_show(sums)}: each leaf is the product of the branch probabilities on its path, "
                        "1 - p on a left turn, p on a right one.")
            hint = hint or "leaf 0 = (1 - p0)(1 - p1), leaf 1 = (1 - p0) p1, leaf 2 = p0 (1 - p2), leaf 3 = p0 p2."
            return failed(name, f"{where}: expected {_show(expected)}, got {_show(got)}. Hint: {hint}")
    # differentiable: a gradient reaches every node
    p = cases[0].clone().requires_grad_(True)
    got = run_learner(leaf_probabilities, (p,), name, case="node_probabilities requiring grad")
    if not isinstance(got, torch.Tensor) or not got.requires_grad:
        return failed(name, "your result carries no gradient. Hint: a soft tree learns its filters through these "
                      "probabilities: no .detach(), no rounding, no torch.no_grad().")
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0])
    (got * weights).sum().backward()
    q = cases[0].clone().requires_grad_(True)
    (leaf_probabilities_reference(q) * weights).sum().backward()
    if p.grad is None or not close_to(p.grad, q.grad, 1e-4):
        return failed(name, "the values are right but the gradient is not. Hint: part of the computation is cut "
                      "from the graph (.detach(), .item(), torch.tensor(...) of computed values).")
    return passed(name, len(cases), f"all {len(cases)} cases pass (p is the right branch, the right ancestors, "
                  "leaves left to right, rows sum to 1, soft and differentiable; input unchanged)")


# ----------------------------------------------------------------------------- nearest_neighbours

def nearest_neighbours_reference(x: torch.Tensor) -> torch.Tensor:
    """For each row of ``x`` (n, D), the index of its nearest *other* row by Euclidean distance, as
    an (n,) int64 tensor; a tie goes to the smaller index. MUNGE pairs every example with this
    neighbour (Bucilă et al. 2006, section 4). ``x`` unchanged."""
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))                    # never itself
    return d.argmin(dim=1)


def _neighbour_cases() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(6)
    return [
        torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [5.0, 6.5]]),       # two pairs
        torch.tensor([[0.0, 0.0], [3.0, 0.0], [2.0, 2.0]]),                   # L1 and L2 disagree for row 0
        torch.tensor([[1.0, 1.0], [1.0, 1.0], [4.0, 4.0]]),                   # a duplicate: distance 0, not itself
        torch.tensor([[0.0], [2.0], [4.0]]),                                  # a tie for row 1: the smaller index
        torch.randn(12, 5, generator=g, dtype=torch.float64),                 # random, float64
    ]


def _neighbour_mistakes(x: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    d = torch.cdist(x, x)
    far = d.clone()
    l1 = torch.cdist(x, x, p=1)
    l1.fill_diagonal_(float("inf"))
    return [
        (d.argmin(dim=1), "a row is always nearest to itself (distance 0): set the diagonal of the distance matrix "
                          "to infinity before the argmin."),
        (far.argmax(dim=1), "the NEAREST row: argmin of the distances, not argmax."),
        (l1.argmin(dim=1), "the distance is Euclidean (torch.cdist's default, p=2), not the sum of absolute "
                           "differences."),
    ]


@checker("nearest_neighbours")
def check_nearest_neighbours(nearest_neighbours: Callable[[torch.Tensor], torch.Tensor]) -> CheckResult:
    """Check ``nearest_neighbours(x) -> Tensor``: for each row the index of its nearest other row
    (Euclidean), (n,) integers, ties to the smaller index; ``x`` unchanged.
    Reference: :func:`nearest_neighbours_reference`."""
    name = "nearest_neighbours"
    cases = _neighbour_cases()
    for x in cases:
        original = x.clone()
        where = f"for x of shape {tuple(x.shape)} ({x.dtype})"
        got = run_learner(nearest_neighbours, (x,), name, case=where[4:])
        require(check_unchanged(original, x, name, where, "x", "compute the distances into a new tensor; do not "
                                "write into x."))
        require(check_returned(got, name, where, torch.Tensor, dtype="integer", shape=(len(x),),
                               what="indices"))
        expected = nearest_neighbours_reference(x)
        if torch.equal(got.long(), expected):
            continue
        hint = next((h for wrong, h in _neighbour_mistakes(x) if torch.equal(got.long(), wrong)), None)
        return failed(name, f"{where}: expected {expected.tolist()}, got {got.tolist()}. Hint: " +
                      (hint or "d = torch.cdist(x, x); set its diagonal to inf (a row is not its own neighbour); "
                                "d.argmin(dim=1)."))
    return passed(name, len(cases), f"all {len(cases)} cases pass (never itself, Euclidean, duplicates, ties to the "
                  "smaller index, float64; x unchanged)")
