import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course_lib import distillation, exercises
from course_lib.exercises.distillation import _distillation_cases, _ensemble_cases, _shift_cases


def _todo(*args, **kwargs):
    raise NotImplementedError


def _fails_with(result, hint):
    assert result.status == "fail", result
    assert hint in result.message, result.message


def test_every_distillation_checker_reports_not_attempted():
    for check in (exercises.check_softmax_with_temperature, exercises.check_distillation_loss,
                  exercises.check_ensemble_logits, exercises.check_choose_bias_shift):
        assert check(_todo).status == "not attempted", check


def test_a_fallback_exercise_is_checked_on_the_learners_code(capsys):
    @exercises.falls_back_to(exercises.softmax_with_temperature_reference)
    def softmax_with_temperature(logits, temperature):
        raise NotImplementedError
    z = torch.tensor([[1.0, 2.0, 3.0]])
    assert torch.allclose(softmax_with_temperature(z, 2.0), F.softmax(z / 2, dim=-1))
    assert "not written yet" in capsys.readouterr().out
    assert exercises.check_softmax_with_temperature(softmax_with_temperature).status == "not attempted"


# ----------------------------------------------------------------------------- softmax_with_temperature

def test_softmax_with_temperature_reference_agrees_with_the_library():
    z = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    for T in (0.5, 1.0, 4.0):
        assert torch.allclose(exercises.softmax_with_temperature_reference(z, T),
                              distillation.softmax_with_temperature(z, T), atol=1e-7)
    big = torch.tensor([[1000.0, 998.0, 990.0]])
    assert torch.isfinite(exercises.softmax_with_temperature_reference(big, 2.0)).all()
    assert exercises.check_softmax_with_temperature(exercises.softmax_with_temperature_reference).passed
    assert exercises.check_softmax_with_temperature(lambda z, T: torch.softmax(z / T, dim=1)).passed


def _in_place_softmax(z, T):
    z /= T
    return F.softmax(z, dim=-1)


def _batch_max_softmax(z, T):
    scaled = z / T
    e = torch.exp(scaled - scaled.max())           # one maximum for the whole batch
    return e / e.sum(dim=-1, keepdim=True)


def _naive_softmax(z, T):
    e = torch.exp(z / T)
    return e / e.sum(dim=-1, keepdim=True)


@pytest.mark.parametrize("wrong, hint", [
    (lambda z, T: F.softmax(z, dim=-1), "not divided by T"),
    (lambda z, T: F.softmax(z * T, dim=-1), "multiplied by T"),
    (lambda z, T: F.softmax(z / T, dim=0), "wrong dim"),
    (_naive_softmax, "subtract each row's maximum"),
    (_batch_max_softmax, "you subtracted the BATCH's maximum"),
    (_in_place_softmax, "changed logits in place"),
    (lambda z, T: None, "did you forget `return`"),
    (lambda z, T: F.log_softmax(z / T, dim=-1), "log-probabilities"),
    (lambda z, T: torch.exp(z / T), "not normalised"),
    (lambda z, T: F.softmax(z / T, dim=-1).double(), "dtype torch.float32"),
])
def test_softmax_with_temperature_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_softmax_with_temperature(wrong), hint)


# ----------------------------------------------------------------------------- distillation_loss

def _kd(s, t, y, T, w, teacher_T=True, student_T=True, square=True, reverse=False, probs=False,
        reduction="batchmean", swap=False, hard_T=False, detach=True):
    """The loss as a learner writes it, with F.kl_div; each keyword switches on one mistake."""
    t = t.detach() if detach else t
    log_q = F.log_softmax(s / T if student_T else s, dim=-1)
    p = F.softmax(t / T if teacher_T else t, dim=-1)
    if reverse:
        soft = F.kl_div(F.log_softmax(t / T, dim=-1), F.softmax(s / T, dim=-1), reduction=reduction)
    else:
        soft = F.kl_div(log_q.exp() if probs else log_q, p, reduction=reduction)
    soft = soft * (T ** 2 if square else 1)
    hard = F.cross_entropy(s / T if hard_T else s, y)
    a, b = (w, 1 - w) if swap else (1 - w, w)
    return a * hard + b * soft


def test_distillation_loss_reference_agrees_with_the_library_and_its_gradient():
    for s, t, y, T, w in _distillation_cases():
        expected = distillation.distillation_loss(s, t, y, T, w)
        assert torch.allclose(exercises.distillation_loss_reference(s, t, y, T, w), expected, atol=1e-6)
        assert torch.allclose(_kd(s, t, y, T, w), expected, atol=1e-6)
        z, v = s.clone().requires_grad_(True), t.clone().requires_grad_(True)
        exercises.distillation_loss_reference(z, v, y, T, w).backward()
        q, p = F.softmax(s / T, dim=-1), F.softmax(t / T, dim=-1)
        onehot = F.one_hot(y, s.shape[1]).to(s.dtype)
        B = len(s)
        assert v.grad is None
        assert torch.allclose(z.grad, w * T * (q - p) / B + (1 - w) * (F.softmax(s, dim=-1) - onehot) / B,
                              atol=1e-6)
    s, t, y, T, w = _distillation_cases()[0]
    assert torch.allclose(exercises.distillation_loss_reference(s, t, None, T, 1.0),
                          distillation.distillation_loss(s, t, None, T, 1.0))
    assert exercises.check_distillation_loss(exercises.distillation_loss_reference).passed
    assert exercises.check_distillation_loss(_kd).passed


def _in_place_teacher(s, t, y, T, w):
    t /= T
    return _kd(s, t * T, y, T, w)


def _detached_student(s, t, y, T, w):
    hard = F.cross_entropy(s, y)
    soft = T ** 2 * F.kl_div(F.log_softmax(s.detach() / T, dim=-1), F.softmax(t.detach() / T, dim=-1),
                             reduction="batchmean")
    return (1 - w) * hard + w * soft


@pytest.mark.filterwarnings("ignore:reduction")
@pytest.mark.parametrize("wrong, hint", [
    (lambda *a: _kd(*a, teacher_T=False), "teacher's logits are not divided by T"),
    (lambda *a: _kd(*a, student_T=False), "student's logits are not divided by T"),
    (lambda *a: _kd(*a, square=False), "T**2 factor is missing"),
    (lambda *a: _kd(*a, reverse=True), "KL divergence is reversed"),
    (lambda *a: _kd(*a, probs=True), "log-probabilities are needed"),
    (lambda *a: _kd(*a, reduction="mean"), "batch x classes"),
    (lambda *a: _kd(*a, swap=True), "weights are swapped"),
    (lambda *a: _kd(*a, hard_T=True), "hard term uses the temperature"),
    (lambda *a: _kd(*a, detach=False), "gradient flows into teacher_logits"),
    (_in_place_teacher, "changed teacher_logits in place"),
    (lambda *a: _kd(*a, reduction="none"), "must be a scalar"),
    (lambda *a: _kd(*a).item(), "no .item()"),
    (_detached_student, "gradient with respect to student_logits"),
    (lambda *a: None, "did you forget `return`"),
])
def test_distillation_loss_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_distillation_loss(wrong), hint)


@pytest.mark.filterwarnings("ignore:reduction")
def test_distillation_loss_checker_names_two_mistakes_together():
    result = exercises.check_distillation_loss(lambda *a: _kd(*a, reduction="mean", square=False))
    _fails_with(result, "T**2 factor is missing")
    _fails_with(result, "batch x classes")


def test_distillation_loss_checker_names_an_in_place_student():
    def scales_student(s, t, y, T, w):
        loss = _kd(s, t, y, T, w)
        s.mul_(2)
        return loss
    _fails_with(exercises.check_distillation_loss(scales_student), "changed student_logits in place")


# ----------------------------------------------------------------------------- ensemble_logits

class _Fixed(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, x):
        return self.logits


def test_ensemble_logits_reference_agrees_with_the_library_ensemble():
    for members in _ensemble_cases():
        ensemble = distillation.Ensemble([_Fixed(z) for z in members], combine="probabilities")
        expected = ensemble(torch.zeros(1))
        got = exercises.ensemble_logits_reference(members)
        assert torch.isfinite(got).all()
        assert torch.allclose(got, expected, atol=1e-5)
        average = torch.stack([F.softmax(z.double(), dim=-1) for z in members]).mean(0)
        assert torch.allclose(got.double().exp(), average, atol=1e-6)
    first = _ensemble_cases()[0]                                # the two ways to combine vote differently
    assert exercises.ensemble_logits_reference(first).argmax(1)[0] != torch.stack(first).mean(0).argmax(1)[0]
    assert exercises.check_ensemble_logits(exercises.ensemble_logits_reference).passed


def _probs(L):
    return torch.stack([F.softmax(z, dim=-1) for z in L])


def _normalises_in_place(L):
    for z in L:
        z -= z.logsumexp(dim=-1, keepdim=True)
    return torch.logsumexp(torch.stack(L), dim=0) - math.log(len(L))


@pytest.mark.parametrize("wrong, hint", [
    (lambda L: torch.stack(L).mean(0), "averaged the logits"),
    (lambda L: F.log_softmax(torch.stack(L).mean(0), dim=-1), "PROBABILITIES"),
    (lambda L: _probs(L).mean(0), "return their LOG"),
    (lambda L: _probs(L).mean(0).log(), "-inf"),
    (lambda L: _probs(L).sum(0).log(), "wrong count"),
    (lambda L: (_probs(L).sum(0) / L[0].shape[1]).log(), "number of classes"),
    (lambda L: F.log_softmax(torch.stack(L), dim=-1).mean(0), "geometric mean"),
    (_normalises_in_place, "changed the members' logits in place"),
    (lambda L: torch.logsumexp(F.log_softmax(torch.stack(L), dim=-1), dim=0), "wrong count"),
    (lambda L: F.log_softmax(torch.stack(L), dim=-1), "one (B, C) per member"),
    (lambda L: None, "did you forget `return`"),
])
def test_ensemble_logits_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_ensemble_logits(wrong), hint)


# ----------------------------------------------------------------------------- choose_bias_shift

def test_choose_bias_shift_reference_agrees_with_the_library():
    for logits, labels, label, shifts in _shift_cases():
        expected = distillation.choose_bias_shift(logits, labels, label, shifts)
        assert exercises.choose_bias_shift_reference(logits, labels, label, shifts) == expected
        assert expected in shifts
    logits, labels, label, shifts = _shift_cases()[1]
    assert exercises.choose_bias_shift_reference(logits, labels, label, [0, 1, 2]) == 1   # ties: smallest
    assert exercises.check_choose_bias_shift(exercises.choose_bias_shift_reference).passed


def _errors(logits, labels, label, s, own=False):
    moved = logits.clone()
    moved[:, label] += s
    if own:                                                   # the recall of class `label`
        keep = labels == label
        return -int((moved[keep].argmax(1) == label).sum())
    return int((moved.argmax(1) != labels).sum())


def _choose(logits, labels, label, shifts, order=sorted, strict=True, own=False, result="shift"):
    best, best_score = None, None
    for s in order(shifts):
        score = _errors(logits, labels, label, s, own)
        if best is None or (score < best_score if strict else score <= best_score):
            best, best_score = s, score
    return {"shift": best, "errors": best_score, "tensor": torch.tensor(best)}[result]


def _shifts_in_place(logits, labels, label, shifts):
    best, best_errors = None, None
    for s in sorted(shifts):
        logits[:, label] += s                                 # the caller's logits, and the shifts pile up
        errors = int((logits.argmax(1) != labels).sum())
        if best is None or errors < best_errors:
            best, best_errors = s, errors
    return best


def test_choose_bias_shift_checker_accepts_a_min_over_sorted_shifts():
    assert exercises.check_choose_bias_shift(
        lambda z, y, c, shifts: min(sorted(shifts), key=lambda s: _errors(z, y, c, s))).passed


@pytest.mark.parametrize("wrong, hint", [
    (lambda *a: _choose(*a, own=True), "class `label` alone"),
    (lambda *a: _choose(*a, strict=False), "SMALLEST shift"),
    (lambda *a: _choose(*a, order=list), "SMALLEST shift"),
    (lambda *a: _choose(*a, order=lambda s: sorted(s, reverse=True)), "SMALLEST shift"),
    (_shifts_in_place, "changed logits in place"),
    (lambda *a: _choose(*a, result="errors"), "number of errors"),
    (lambda *a: _choose(*a, result="tensor"), ".item()"),
    (lambda z, y, c, shifts: shifts.index(_choose(z, y, c, shifts)), "position of the best shift"),
    (lambda *a: None, "did you forget `return`"),
])
def test_choose_bias_shift_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_choose_bias_shift(wrong), hint)
