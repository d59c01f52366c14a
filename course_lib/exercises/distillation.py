"""Exercises of notebook 03, knowledge distillation: the softmax at a temperature, Hinton et al.'s
distillation loss, an ensemble's averaged probabilities, and the bias shift that brings back a
class the student never saw.

Each exercise has a reference (``*_reference``, for :func:`falls_back_to`) and a checker
(``check_*``) that tests the learner's code on small hand-made cases and names typical mistakes.
The references are plain torch, written to be read beside the notebook; they agree with
:mod:`course_lib.distillation` (``softmax_with_temperature``, ``distillation_loss``, ``Ensemble``
with ``combine="probabilities"``, ``choose_bias_shift``).
"""

from __future__ import annotations

import copy
import itertools
import math
from typing import Callable, Sequence

import torch
from torch.nn import functional as F

from .checking import (check_returned, check_unchanged, checker, CheckResult, close_to, failed, passed, require,
                       run_learner, student_gradient)

__all__ = ["softmax_with_temperature_reference", "check_softmax_with_temperature", "distillation_loss_reference",
           "check_distillation_loss", "ensemble_logits_reference", "check_ensemble_logits",
           "choose_bias_shift_reference", "check_choose_bias_shift"]


def _show(t: torch.Tensor) -> str:
    """A matrix by value when tiny, else by shape, for messages."""
    t = t.detach()
    if t.numel() <= 12:
        values = t.tolist()
        if t.dim() == 2:
            return str([[round(v, 4) for v in row] for row in values])
        if t.dim() == 1:
            return str([round(v, 4) for v in values])
        return str(round(values, 4)) if t.dim() == 0 else str(values)
    return f"of shape {tuple(t.shape)}"




def _first_hint(got: torch.Tensor, candidates: list[tuple[torch.Tensor, str]], rtol: float = 1e-5) -> str | None:
    return next((hint for wrong, hint in candidates if close_to(got, wrong, rtol)), None)


# ----------------------------------------------------------------------------- softmax_with_temperature

def softmax_with_temperature_reference(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """:math:`q_i = \\exp(z_i/T) / \\sum_j \\exp(z_j/T)` along the last axis (the classes):
    (B, C) -> (B, C), each row summing to 1. The row's maximum is subtracted before ``exp``
    (softmax is unchanged by a shift), so large logits do not overflow. ``logits`` is not
    modified."""
    scaled = logits / temperature                                   # a new tensor: logits untouched
    scaled = scaled - scaled.max(dim=-1, keepdim=True).values       # the largest becomes 0: exp <= 1
    e = torch.exp(scaled)
    return e / e.sum(dim=-1, keepdim=True)


def _softmax_cases() -> list[tuple[torch.Tensor, float]]:
    g = torch.Generator().manual_seed(30)
    return [
        (3 * torch.randn(2, 4, generator=g), 2.0),                                   # B != C
        (2 * torch.randn(3, 5, generator=g, dtype=torch.float64), 0.5),              # T < 1 sharpens
        (torch.tensor([[1000.0, 998.0, 990.0], [-1000.0, 0.0, 1000.0]]), 2.0),       # exp(500) overflows
        (torch.randn(4, 3, generator=g, dtype=torch.float64), 5),                    # an int temperature
        (torch.tensor([[1000.0, 999.0, 998.0], [-1000.0, -1001.0, -1003.0]]), 1.0),  # rows 2000 apart
    ]


def _softmax_mistakes(logits: torch.Tensor, T: float) -> list[tuple[torch.Tensor, str]]:
    z = logits.detach().double()
    return [
        (F.softmax(z, dim=-1), "the logits are not divided by T: softmax(logits / T) - without the "
                               "temperature it is the ordinary softmax (T = 1)."),
        (F.softmax(z * T, dim=-1), "the logits are multiplied by T: DIVIDE them, softmax(logits / T) "
                                   "(a higher T must soften the distribution, not sharpen it)."),
        (F.softmax(z / T, dim=0), "softmax along the wrong dim: dim=0 normalises each CLASS over the "
                                  "batch; the probabilities of one example are a row: dim=-1 (or dim=1)."),
        (F.log_softmax(z / T, dim=-1), "these are log-probabilities (log_softmax): return the "
                                       "probabilities themselves, softmax(logits / T, dim=-1)."),
        (torch.exp(z / T), "the exponentials are not normalised: divide by their sum over each row, "
                           "e / e.sum(dim=-1, keepdim=True)."),
        (torch.exp(z / T) / torch.exp(z / T).sum(), "normalised over the whole batch: each row (one "
                                                    "example) must sum to 1: sum(dim=-1, keepdim=True)."),
    ]


def _shifted_by_the_batch_maximum(logits: torch.Tensor, T: float) -> torch.Tensor:
    """The mistake of a "stable" softmax that subtracts one maximum for the whole batch."""
    scaled = logits.detach() / T
    e = torch.exp(scaled - scaled.max())
    return e / e.sum(dim=-1, keepdim=True)


@checker("softmax_with_temperature")
def check_softmax_with_temperature(softmax_with_temperature: Callable[[torch.Tensor, float], torch.Tensor]
                                   ) -> CheckResult:
    """Check ``softmax_with_temperature(logits, temperature) -> Tensor``: softmax(logits / T)
    along the last dim, a (B, C) tensor of ``logits``' dtype whose rows sum to 1, finite even
    for logits as large as 1000; ``logits`` unchanged.
    Reference: :func:`softmax_with_temperature_reference`."""
    name = "softmax_with_temperature"
    cases = _softmax_cases()
    for logits, T in cases:
        original = logits.clone()
        where = f"for logits {_show(logits)} ({logits.dtype}) and temperature={T!r}"
        got = run_learner(softmax_with_temperature, (logits, T), name, case=where[4:])
        require(check_unchanged(original, logits, name, where, "logits", "logits /= T (or logits.div_(T), "
                                "logits -= max) overwrites the caller's logits; write scaled = logits / T, "
                                "a new tensor."))
        require(check_returned(got, name, where, torch.Tensor, dtype=logits.dtype, shape=logits.shape,
                               what="probabilities"))
        expected = softmax_with_temperature_reference(logits.double(), T)
        if not torch.isfinite(got).all() and _shifted_by_the_batch_maximum(logits, T).isnan().equal(got.isnan()):
            return failed(name, f"{where} your result holds NaN: {_show(got)}. Hint: you subtracted the BATCH's "
                          "maximum, one number for every row: a row whose logits all lie far below it (here 2000 "
                          "below) gives exp(...) = 0 everywhere, and 0 / 0 is NaN. Subtract each ROW's maximum: "
                          "scaled - scaled.max(dim=-1, keepdim=True).values.")
        if not torch.isfinite(got).all():
            return failed(name, f"{where} your result holds NaN or inf: {_show(got)}. Hint: exp of a large "
                          "logit overflows (exp(500) is inf in float32, and inf / inf is NaN): subtract each "
                          "row's maximum before exp - softmax is unchanged by a shift - "
                          "scaled - scaled.max(dim=-1, keepdim=True).values (torch.softmax does it for you).")
        if not close_to(got, expected):
            hint = _first_hint(got, _softmax_mistakes(logits, T)) or \
                "softmax(logits / T, dim=-1): divide by T, exponentiate, normalise each row to sum 1."
            return failed(name, f"{where}: expected {_show(expected)}, got {_show(got)}. Hint: {hint}")
    return passed(name, len(cases), f"all {len(cases)} cases pass (divided by T, along the classes, rows "
                  "sum to 1, no overflow for logits of 1000; logits unchanged)")


# ----------------------------------------------------------------------------- distillation_loss

def distillation_loss_reference(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                                labels: torch.Tensor | None, temperature: float, weight: float) -> torch.Tensor:
    """Hinton et al. (2015): :math:`(1 - \\alpha)\\,\\mathrm{CE}(y, q^{(1)}) + \\alpha\\, T^2\\,
    \\mathrm{KL}(p^{(T)} \\| q^{(T)})`, with :math:`\\alpha` = ``weight``, :math:`p^{(T)}` =
    softmax(teacher / T), :math:`q^{(T)}` = softmax(student / T), the KL summed over the classes
    and averaged over the examples ("batchmean"), and the hard term at T = 1. A scalar tensor;
    the teacher is a target (detached: no gradient flows into it). ``labels`` may be None
    when ``weight == 1``."""
    T = temperature
    log_q = F.log_softmax(student_logits / T, dim=-1)                 # (B, C) student, log space
    log_p = F.log_softmax(teacher_logits.detach() / T, dim=-1)        # (B, C) teacher: the target
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=-1)                  # (B,) KL(p || q) per example
    soft = T ** 2 * kl.mean()                                         # batchmean, times T**2
    if weight == 1:
        return soft
    hard = F.cross_entropy(student_logits, labels)                    # T = 1
    return (1 - weight) * hard + weight * soft


def _distillation_cases() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, float]]:
    g = torch.Generator().manual_seed(31)

    def case(B, C, T, weight, dtype=torch.float32):
        student = torch.randn(B, C, generator=g, dtype=dtype)
        teacher = 3 * torch.randn(B, C, generator=g, dtype=dtype)   # a confident teacher
        labels = torch.randint(0, C, (B,), generator=g)
        return student, teacher, labels, T, weight
    return [  # (student_logits, teacher_logits, labels, temperature, weight)
        case(4, 5, 2.0, 0.7),
        case(3, 4, 4.0, 0.25, torch.float64),
        case(5, 3, 3.0, 0.9),
    ]


# Each typical mistake is one setting of the variant below: (key, value, what it means).
_LOSS_MISTAKES = [
    ("teacher_T", False, "the teacher's logits are not divided by T: both distributions must be softened at "
                         "the same temperature, softmax(teacher_logits / T)"),
    ("student_T", False, "the student's logits are not divided by T in the soft term: both distributions must "
                         "be softened at the same temperature, log_softmax(student_logits / T)"),
    ("scale", "1", "the T**2 factor is missing: multiply the soft term by T**2 (its gradients shrink as 1/T**2; "
                   "T**2 keeps the two terms in proportion whatever T)"),
    ("scale", "T", "the soft term is multiplied by T, not by T**2"),
    ("reversed", True, "the KL divergence is reversed: KL(p_T || q_T) = sum p_T * (log p_T - log q_T), with the "
                       "teacher's p_T as the target; in F.kl_div(input, target) the input is the STUDENT's "
                       "log-probabilities and the target the TEACHER's probabilities"),
    ("probs_input", True, "F.kl_div was given probabilities where log-probabilities are needed: its first "
                          "argument must be log_softmax(student_logits / T), not softmax(...)"),
    ("soft_ce", True, "that is the cross-entropy with the soft targets, -sum p_T log q_T; the KL divergence "
                      "also subtracts the teacher's entropy: sum p_T * (log p_T - log q_T) (same gradient, "
                      "different value)"),
    ("reduction", "mean", "the KL is averaged over batch x classes (reduction='mean', F.kl_div's default): sum "
                          "over the classes, then average over the examples (reduction='batchmean')"),
    ("reduction", "sum", "the KL is summed over the batch: sum over the classes, then AVERAGE over the "
                         "examples (reduction='batchmean')"),
    ("combine", "swapped", "the weights are swapped: `weight` multiplies the soft (teacher) term, 1 - weight "
                           "the hard (labels) term"),
    ("combine", "unweighted", "the two terms are not weighted: (1 - weight) * hard + weight * soft"),
    ("combine", "soft_only", "the hard term is missing: add (1 - weight) * F.cross_entropy(student_logits, "
                             "labels)"),
    ("hard_T", True, "the hard term uses the temperature: the cross-entropy with the labels takes the plain "
                     "logits (T = 1), as at test time"),
]


def _loss_variant(student, teacher, labels, T, weight, teacher_T=True, student_T=True, scale="T2",
                  reversed=False, probs_input=False, soft_ce=False, reduction="batchmean", combine="right",
                  hard_T=False) -> torch.Tensor:
    """The distillation loss with some typical mistakes switched on (all off: the right loss)."""
    z, v = student.detach().double(), teacher.detach().double()
    B, C = z.shape
    log_q = F.log_softmax(z / T if student_T else z, dim=-1)
    log_p = F.log_softmax(v / T if teacher_T else v, dim=-1)
    target, inp = (log_q, log_p) if reversed else (log_p, log_q)     # both in log space
    if probs_input:
        inp = inp.exp()                                             # F.kl_div(probabilities, target)
    per_example = -(target.exp() * inp).sum(-1) if soft_ce else (target.exp() * (target - inp)).sum(-1)
    soft = {"batchmean": per_example.mean(), "mean": per_example.mean() / C, "sum": per_example.sum()}[reduction]
    soft = soft * {"T2": T ** 2, "T": T, "1": 1}[scale]
    hard = F.cross_entropy(z / T if hard_T else z, labels)
    return {"right": (1 - weight) * hard + weight * soft, "swapped": weight * hard + (1 - weight) * soft,
            "unweighted": hard + soft, "soft_only": weight * soft}[combine]


def _loss_hint(got: torch.Tensor, args: tuple) -> str | None:
    """Name the mistake (or the two mistakes) that give ``got``."""
    singles = [[m] for m in _LOSS_MISTAKES]
    pairs = [list(p) for p in itertools.combinations(_LOSS_MISTAKES, 2) if p[0][0] != p[1][0]]
    for mistakes in singles + pairs:
        wrong = _loss_variant(*args, **{key: value for key, value, _ in mistakes})
        if close_to(got, wrong):
            return "; and ".join(text for _, _, text in mistakes) + "."
    return None


def _expected_gradient(student, teacher, labels, T, weight) -> torch.Tensor:
    """d loss / d student_logits: weight T (q_T - p_T) / B + (1 - weight) (softmax(z) - onehot) / B."""
    z, v = student.detach().double(), teacher.detach().double()
    B, C = z.shape
    q, p = F.softmax(z / T, dim=-1), F.softmax(v / T, dim=-1)
    onehot = F.one_hot(labels, C).double()
    return weight * T * (q - p) / B + (1 - weight) * (F.softmax(z, dim=-1) - onehot) / B


def _check_loss_gradient(distillation_loss: Callable, args: tuple, where: str) -> CheckResult | None:
    """The loss's gradients, on fresh copies of the logits that require them: the student's by
    autograd equal to :func:`_expected_gradient`, none into the teacher's."""
    name = "distillation_loss"
    student, teacher, labels, T, weight = args
    grad = student_gradient(distillation_loss, student, teacher, (labels.clone(), T, weight), name, where,
                            "you modify an input in place (/=, +=, div_...): compute new tensors instead.",
                            "do not .detach() the student's logits, nor compute under torch.no_grad(), nor "
                            "rebuild the loss with torch.tensor(...) / .item(): the student learns through "
                            "this loss.")
    wanted = _expected_gradient(*args)
    if grad is None or grad.shape != wanted.shape or \
            not bool(((grad.double() - wanted).abs() <= 1e-6 + 1e-4 * wanted.abs().max()).all()):
        difference = "no gradient at all" if grad is None or grad.shape != wanted.shape else \
            f"max difference {(grad.double() - wanted).abs().max().item():.3g} from the expected gradient"
        return failed(name, f"{where}, the loss value is right but its gradient with respect to "
                      f"student_logits is not ({difference}). Hint: part of the loss is cut from the "
                      "graph: do not .detach() the student's logits (only the teacher's) nor compute a "
                      "term under torch.no_grad().")
    return None


@checker("distillation_loss")
def check_distillation_loss(distillation_loss: Callable) -> CheckResult:
    """Check ``distillation_loss(student_logits, teacher_logits, labels, temperature, weight) ->
    Tensor``: the scalar ``(1 - weight) * CE(student_logits, labels) + weight * T**2 *
    KL(p_T || q_T)`` (KL summed over the classes, averaged over the examples; hard term at T = 1)
    of the logits' dtype; its gradient with respect to the student's logits (by autograd)
    ``weight*T*(q_T - p_T)/B + (1-weight)*(softmax(z) - onehot)/B``; no gradient into the
    teacher's logits; no argument modified. Reference: :func:`distillation_loss_reference`."""
    name = "distillation_loss"
    cases = _distillation_cases()
    for args in cases:
        student, teacher, labels, T, weight = args
        B, C = student.shape
        before = copy.deepcopy(args)
        where = (f"for student_logits and teacher_logits of shape {(B, C)} ({student.dtype}), labels "
                 f"{labels.tolist()}, temperature={T!r}, weight={weight!r}")
        got = run_learner(distillation_loss, args, name, case=where[4:], hints={
            "leaf Variable": "you modify an input in place (/=, +=, div_...): compute new tensors instead."})
        for old, new, label in zip(before[:3], args[:3], ("student_logits", "teacher_logits", "labels")):
            require(check_unchanged(old, new, name, where, label, "labels are only read: never write into "
                                    "them." if label == "labels" else f"{label} is only read: {label} / T "
                                    f"makes a new tensor; {label} /= T (or .div_) overwrites the caller's."))
        if isinstance(got, (float, int)) and not isinstance(got, bool):
            return failed(name, f"{where} expected a tensor as the loss, got the Python number {got!r}. Hint: "
                          "return the loss tensor itself (no .item(), no float(...)): training calls "
                          "loss.backward() on it.")
        require(check_returned(got, name, where, torch.Tensor, dtype=student.dtype, what="loss"))
        if got.dim() != 0:
            shape = tuple(got.shape)
            hint = {(B,): "you returned one loss per example: average over the batch (.mean()).",
                    (B, C): "you returned one value per example and class: sum the KL over the classes "
                            "(dim=-1), then average over the examples (reduction='batchmean')."}.get(
                shape, "reduce to a single number: .sum(dim=-1) over the classes, .mean() over the examples.")
            return failed(name, f"{where} the loss must be a scalar (shape ()), got shape {shape}. Hint: {hint}")
        expected = distillation_loss_reference(*args)
        if not torch.isfinite(got):
            return failed(name, f"{where} your loss is {got.item()}. Hint: F.kl_div(input, target) takes the "
                          "target as PROBABILITIES (softmax) unless log_target=True, and the input as "
                          "log-probabilities; take logs with log_softmax, never log(softmax(...)).")
        if not close_to(got, expected):
            hint = _loss_hint(got, args) or ("(1 - weight) * F.cross_entropy(student_logits, labels) + weight * "
                                             "T**2 * F.kl_div(log_softmax(student_logits / T, dim=-1), "
                                             "softmax(teacher_logits / T, dim=-1), reduction='batchmean').")
            return failed(name, f"{where}: expected the loss {expected.item():.6g}, got {got.item():.6g}. "
                          f"Hint: {hint}")

        require(_check_loss_gradient(distillation_loss, args, where))
    return passed(name, len(cases), f"all {len(cases)} cases pass (both sides at T, KL(p_T || q_T) batchmean, "
                  "T**2, weight on the soft term, hard term at T = 1, gradients, teacher detached; inputs "
                  "unchanged)")


# ----------------------------------------------------------------------------- ensemble_logits

def ensemble_logits_reference(logits_list: Sequence[torch.Tensor]) -> torch.Tensor:
    """The log of the members' averaged probabilities: :math:`\\log \\frac1M \\sum_m
    \\mathrm{softmax}(z_m)`, (B, C), computed in log space as ``logsumexp`` of the members'
    ``log_softmax`` minus :math:`\\log M`, so very confident members do not give ``log(0)``.
    ``softmax`` of the result is the average distribution, its ``argmax`` the ensemble's vote.
    The given tensors are not modified."""
    log_probs = torch.stack([F.log_softmax(z, dim=-1) for z in logits_list])   # (M, B, C)
    return torch.logsumexp(log_probs, dim=0) - math.log(len(logits_list))


def _ensemble_cases() -> list[list[torch.Tensor]]:
    g = torch.Generator().manual_seed(32)
    return [
        # example 0: averaging the logits votes class 1, averaging the probabilities class 0
        [torch.tensor([[5.0, 0.0, 0.0, -2.0], [0.0, 2.0, 1.0, 0.5], [1.0, 0.0, 3.0, -1.0]]),
         torch.tensor([[-5.0, 1.0, 0.0, -2.0], [1.0, 0.0, 3.0, 0.5], [0.5, 2.0, 1.0, 0.0]])],
        [torch.randn(4, 5, generator=g, dtype=torch.float64) for _ in range(3)],        # M=3, B=4, C=5
        # very confident members: exp(-400) is 0 in float32, so log(mean(softmax)) gives -inf
        [torch.tensor([[200.0, -200.0, 0.0], [-200.0, 200.0, 0.0]]),
         torch.tensor([[150.0, -200.0, 10.0], [-200.0, 180.0, 20.0]])],
        [torch.randn(2, 3, generator=g, dtype=torch.float64)],                          # one member
    ]


def _ensemble_mistakes(logits_list: list[torch.Tensor]) -> list[tuple[torch.Tensor, str]]:
    z = torch.stack([t.detach().double() for t in logits_list])                    # (M, B, C)
    M, B, C = z.shape
    log_probs = F.log_softmax(z, dim=-1)
    total = torch.logsumexp(log_probs, dim=0)                                       # log of the SUM
    probabilities = ("this exercise averages the PROBABILITIES: softmax each member, average, then take the "
                     "log (averaging logits is a geometric mean of the distributions, and can vote differently).")
    out = [
        (z.mean(0), f"you averaged the logits; {probabilities}"),
        (F.log_softmax(z.mean(0), dim=-1), f"that is log_softmax of the averaged logits; {probabilities}"),
        (log_probs.mean(0), "you averaged the log-probabilities (a geometric mean): average the probabilities, "
                            "then take the log: logsumexp of the members' log_softmax minus log M."),
        ((total - math.log(M)).exp(), "you returned the averaged probabilities: return their LOG (the "
                                      "ensemble's logits): torch.logsumexp(log_probs, dim=0) - math.log(M)."),
        (torch.logsumexp(z, dim=0) - math.log(M), "each member's logits must be normalised first (log_softmax, "
                                                  "not the raw logits): a member's logits are only defined up "
                                                  "to a constant per row."),
    ]
    for count, what in ((1, "not divided at all"), (M - 1, "M - 1"), (B, "the batch size"),
                        (C, "the number of classes")):
        if count not in (0, M):
            out.append((total - math.log(count),
                        f"the probabilities are summed but divided by the wrong count ({what}): divide by the "
                        f"number of members M = len(logits_list) = {M} (subtract math.log(M) in log space)."))
    return out


@checker("ensemble_logits")
def check_ensemble_logits(ensemble_logits: Callable[[list], torch.Tensor]) -> CheckResult:
    """Check ``ensemble_logits(logits_list) -> Tensor``: for a list of M (B, C) logits tensors,
    :math:`\\log \\frac1M \\sum_m \\mathrm{softmax}(z_m)` (B, C) of the logits' dtype, finite even
    for members as confident as logits of ±200; the list and its tensors unchanged.
    Reference: :func:`ensemble_logits_reference`."""
    name = "ensemble_logits"
    cases = _ensemble_cases()
    for logits_list in cases:
        before = copy.deepcopy(logits_list)
        M, (B, C) = len(logits_list), logits_list[0].shape
        dtype = logits_list[0].dtype
        where = (f"for {M} member(s) of logits "
                 + (", ".join(_show(t) for t in logits_list) if B * C <= 12 else f"of shape {(B, C)}")
                 + f" ({dtype})")
        got = run_learner(ensemble_logits, (logits_list,), name, case=where[4:], hints={
            "stack expects": "torch.stack(logits_list) takes the list of (B, C) tensors and gives (M, B, C)."})
        require(check_unchanged(before, logits_list, name, where, "the members' logits", "only read them: "
                                "F.log_softmax(z, dim=-1) and torch.stack make new tensors; in-place ops "
                                "(z -= ..., .exp_(), .append) change the caller's list."))
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (M, B, C) and M > 1:
            return failed(name, f"{where} your result has shape {(M, B, C)}, one (B, C) per member. Hint: "
                          "combine the members: average their probabilities over dim=0 of the stack.")
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (M, C) and M != B:
            return failed(name, f"{where} your result has shape {(M, C)}. Hint: you averaged over the batch "
                          "(dim=1 of the (M, B, C) stack): average over the members, dim=0.")
        require(check_returned(got, name, where, torch.Tensor, dtype=dtype, shape=(B, C),
                               what="ensemble logits"))
        expected = ensemble_logits_reference([t.double() for t in logits_list])
        if not torch.isfinite(got).all():
            return failed(name, f"{where} your result holds -inf or NaN: {_show(got)}. Hint: "
                          "log(mean(softmax)) underflows for very confident members: exp(-400) is 0 in "
                          "float32, so some averaged probabilities are exactly 0 and log(0) = -inf. Stay in "
                          "log space: torch.logsumexp(torch.stack([F.log_softmax(z, dim=-1) for z in "
                          "logits_list]), dim=0) - math.log(len(logits_list)).")
        if not close_to(got, expected):
            hint = _first_hint(got, _ensemble_mistakes(logits_list)) or \
                "the log of the average of the members' softmax probabilities."
            return failed(name, f"{where}: expected {_show(expected)}, got {_show(got)}. Hint: {hint}")
    return passed(name, len(cases), f"all {len(cases)} cases pass (probabilities averaged, then the log; "
                  "finite for very confident members; one member; inputs unchanged)")


# ----------------------------------------------------------------------------- choose_bias_shift

def _errors(logits: torch.Tensor, labels: torch.Tensor, label: int, shift: float) -> int:
    moved = logits.clone()                      # never logits[:, label] += shift: that is the caller's
    moved[:, label] += shift
    return int((moved.argmax(dim=1) != labels).sum())


def choose_bias_shift_reference(logits: torch.Tensor, labels: torch.Tensor, label: int,
                                shifts: Sequence[float]) -> float:
    """The shift among ``shifts`` that, added to column ``label`` of the (B, C) validation
    ``logits``, leaves the fewest errors against ``labels`` (all examples, every class); ties
    go to the smallest shift, the least change. Returns the element of ``shifts`` (a Python
    number); ``logits`` is not modified."""
    best, best_errors = None, None
    for shift in sorted(shifts):                # ascending: a later tie never replaces a smaller shift
        errors = _errors(logits, labels, label, shift)
        if best_errors is None or errors < best_errors:
            best, best_errors = shift, errors
    return best


def _rows(rows: list[tuple[list[float], int]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor([r for r, _ in rows]), torch.tensor([y for _, y in rows])


def _shift_cases() -> list[tuple[torch.Tensor, torch.Tensor, int, list]]:
    # Class 2 is the omitted one: an example of class 2 with logits [d, -1, 0] is fixed by a shift
    # above d; an example of class 0 [m, -1, 0] (or of class 1 [-1, m, 0]) breaks above m.
    recall, recall_labels = _rows([([0.5, -1, 0], 2), ([1.5, -1, 0], 2), ([3.5, -1, 0], 2),
                                   ([2.5, -1, 0], 0), ([-1, 3.5, 0], 1), ([3.5, -1, 0], 0), ([-1, 5.0, 0], 1)])
    # errors at -2, -1, 0, 2, 3, 4: 3, 3, 3, 1, 2, 3 -> 2.0; class 2 alone is best served by 4.0
    ties, ties_labels = _rows([([0.5, -1, 0], 2), ([3.5, -1, 0], 2), ([2.5, -1, 0], 0), ([-1, 3.8, 0], 1),
                               ([6.0, -1, 0], 0)])
    # errors at 0, 1, 2, 3, 4: 2, 1, 1, 2, 2 -> 1.0 (tied with 2.0)
    g = torch.Generator().manual_seed(33)
    clean = 2 * torch.randn(30, 4, generator=g)
    noisy = clean + torch.randn(30, 4, generator=g)
    noisy[:, 1] -= 2.0                                       # class 1 under-predicted
    return [  # (logits, labels, label, shifts)
        (recall, recall_labels, 2, [-2.0, -1.0, 0.0, 2.0, 3.0, 4.0]),
        (ties, ties_labels, 2, [0.0, 1.0, 2.0, 3.0, 4.0]),
        (ties.clone(), ties_labels.clone(), 2, [2.0, 4.0, 0.0, 3.0, 1.0]),        # not sorted
        (noisy, clean.argmax(dim=1), 1, [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]),
    ]


def _shift_mistakes(logits, labels, label, shifts) -> list[tuple[object, str]]:
    errors = [_errors(logits, labels, label, s) for s in shifts]
    fewest = min(errors)
    tied = [s for s, e in zip(shifts, errors) if e == fewest]
    own = labels == label
    recalls = [int((_moved(logits, label, s)[own].argmax(1) == label).sum()) for s in shifts]
    best_recall = [s for s, r in zip(shifts, recalls) if r == max(recalls)]
    row = [int((_moved_row(logits, label, s).argmax(1) != labels).sum()) for s in shifts]
    minus = [_errors(logits, labels, label, -s) for s in shifts]
    tie_hint = ("ties go to the SMALLEST shift (the least change): among the shifts with the fewest errors "
                f"({sorted(tied)}) return the smallest - loop over sorted(shifts) and replace the best only on "
                "STRICTLY fewer errors (<, not <=).")
    return [
        (min(best_recall), "you chose the shift by the accuracy on class `label` alone (its recall): the more "
                           "you shift, the more of that class is right, but the more of the others become "
                           "wrong; count the errors over ALL examples."),
        (max(best_recall), "you chose the shift by the accuracy on class `label` alone (its recall): count the "
                           "errors over ALL examples, every class."),
        (tied[-1], tie_hint),
        (max(tied), tie_hint),
        (fewest, "you returned the number of errors: return the SHIFT that gives the fewest errors."),
        (errors.index(fewest), "you returned the position of the best shift in `shifts`: return the shift "
                               "itself, shifts[i]."),
        (min(zip(row, shifts))[1], "the shift goes to COLUMN `label` (the logit of that class for every "
                                   "example): moved[:, label] += shift, not moved[label] (a row, one example)."),
        (min(zip(minus, shifts))[1], "ADD the shift to the class's logits (moved[:, label] += shift), do not "
                                     "subtract it."),
    ]


def _moved(logits, label, shift):
    moved = logits.clone()
    moved[:, label] += shift
    return moved


def _moved_row(logits, label, shift):
    moved = logits.clone()
    moved[label] += shift
    return moved


@checker("choose_bias_shift")
def check_choose_bias_shift(choose_bias_shift: Callable) -> CheckResult:
    """Check ``choose_bias_shift(logits, labels, label, shifts) -> number``: the element of
    ``shifts`` that, added to column ``label`` of ``logits``, leaves the fewest errors over all
    examples, ties going to the smallest shift (shifts given in any order), returned as a Python
    number; ``logits``, ``labels`` and ``shifts`` unchanged.
    Reference: :func:`choose_bias_shift_reference`."""
    name = "choose_bias_shift"
    cases = _shift_cases()
    for args in cases:
        logits, labels, label, shifts = args
        before = copy.deepcopy(args)
        where = (f"for logits of shape {tuple(logits.shape)}, labels {labels.tolist()}, label={label}, "
                 f"shifts={shifts}")
        got = run_learner(choose_bias_shift, args, name, case=where[4:])
        require(check_unchanged(before[0], logits, name, where, "logits", "logits[:, label] += s writes into "
                                "the caller's logits (and the shifts pile up from one try to the next): shift "
                                "a copy, moved = logits.clone(); moved[:, label] += s."))
        for old, new, what in ((before[1], labels, "labels"), (before[3], shifts, "shifts")):
            require(check_unchanged(old, new, name, where, what, f"{what} is only read (sorted(shifts) makes a "
                                    "new list; shifts.sort() reorders the caller's)."))
        require(check_returned(got, name, where, (float, int), what="shift"))
        expected = choose_bias_shift_reference(logits, labels, label, shifts)
        if got == expected:
            continue
        errors = {s: _errors(logits, labels, label, s) for s in shifts}
        hint = next((h for wrong, h in _shift_mistakes(logits, labels, label, shifts) if wrong == got),
                    "try every shift on a copy of the logits, count the errors over all examples, keep the "
                    "shift with the fewest (ties: the smallest).")
        return failed(name, f"{where} (errors per shift: {errors}) expected {expected!r}, got {got!r}. "
                      f"Hint: {hint}")
    return passed(name, len(cases), f"all {len(cases)} cases pass (errors over all examples, ties to the "
                  "smallest shift, shifts in any order, a Python number; logits unchanged)")
