"""The exercises of notebook 06: each reference agrees with course_lib.model_distillation and
passes its checker; each typical mistake fails with a hint that names it; unwritten code is
"not attempted"."""

import pytest
import torch
from torch.nn import functional as F

from course_lib import exercises
from course_lib import model_distillation as M
from course_lib.exercises.model_distillation import _fidelity_cases, _leaf_cases, _mimic_cases


def _todo(*args, **kwargs):
    raise NotImplementedError


def _fails_with(result, hint):
    assert result.status == "fail", result
    assert hint in result.message, result.message


def test_every_model_distillation_checker_reports_not_attempted():
    for check in (exercises.check_agreement_and_accuracy, exercises.check_mimic_loss,
                  exercises.check_leaf_probabilities):
        assert check(_todo).status == "not attempted", check


def test_a_fallback_exercise_is_checked_on_the_learners_code(capsys):
    @exercises.falls_back_to(exercises.leaf_probabilities_reference)
    def leaf_probabilities(node_probabilities):
        raise NotImplementedError
    p = torch.tensor([[0.9, 0.2, 0.7]])
    assert torch.allclose(leaf_probabilities(p), M.path_probabilities(p)[1])
    assert "not written yet" in capsys.readouterr().out
    assert exercises.check_leaf_probabilities(leaf_probabilities).status == "not attempted"


# ----------------------------------------------------------------------------- agreement_and_accuracy

def test_agreement_and_accuracy_reference_agrees_with_the_library():
    for s, t, y in _fidelity_cases():
        agreement, accuracy = exercises.agreement_and_accuracy_reference(s, t, y)
        f = M.fidelity_of_logits(s, t, y)
        assert agreement == pytest.approx(f.agreement) and accuracy == pytest.approx(f.accuracy)
    assert exercises.check_agreement_and_accuracy(exercises.agreement_and_accuracy_reference).passed

    def counting(s, t, y):
        agree = sum(int(a == b) for a, b in zip(s.argmax(1).tolist(), t.argmax(1).tolist()))
        right = sum(int(a == b) for a, b in zip(s.argmax(1).tolist(), y.tolist()))
        return agree / len(s), right / len(s)
    assert exercises.check_agreement_and_accuracy(counting).passed


def _tie_as_agreement(s, t, y):
    top = s.max(dim=1).values
    agree = (s.gather(1, t.argmax(1)[:, None])[:, 0] == top).float().mean().item()
    right = (s.gather(1, y[:, None])[:, 0] == top).float().mean().item()
    return agree, right


def _in_place(s, t, y):
    s -= s.max(dim=1, keepdim=True).values
    return exercises.agreement_and_accuracy_reference(s, t, y)


@pytest.mark.parametrize("wrong, hint", [
    (lambda s, t, y: ((s.argmax(1) == y).float().mean().item(),) * 2, "compared the student with the LABELS"),
    (lambda s, t, y: exercises.agreement_and_accuracy_reference(s, t, y)[::-1], "swapped"),
    (lambda s, t, y: ((s.argmax(1) == t.argmax(1)).float().mean().item(),
                      (t.argmax(1) == y).float().mean().item()), "the TEACHER's"),
    (lambda s, t, y: (float((s.argmax(1) == t.argmax(1)).sum()), float((s.argmax(1) == y).sum())),
     "you returned counts"),
    (_tie_as_agreement, "a tie is counted as agreement"),
    (lambda s, t, y: ((s == t).float().mean().item(), (s.argmax(1) == y).float().mean().item()),
     "compared the logits themselves"),
    (lambda s, t, y: ((s.argmax(0) == t.argmax(0)).float().mean().item(),
                      (s.argmax(0) == y).float().mean().item()),
     "argmax over dim=0"),
    (lambda s, t, y: ((s.argmax(1) == t.argmax(1)).float().mean(), (s.argmax(1) == y).float().mean()), ".item()"),
    (lambda s, t, y: ((s.argmax(0) == t.argmax(0)).float().mean().item(),
                      (s.argmax(1) == y).float().mean().item()),
     "argmax over dim=0"),
    (lambda s, t, y: (int((s.argmax(1) == t.argmax(1)).sum()), int((s.argmax(1) == y).sum())), "returned a count"),
    (lambda s, t, y: None, "did you forget `return`"),
    (_in_place, "changed student_logits in place"),
])
def test_agreement_and_accuracy_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_agreement_and_accuracy(wrong), hint)


# ----------------------------------------------------------------------------- mimic_loss

def test_mimic_loss_reference_agrees_with_the_library():
    for z, v, centre in _mimic_cases():
        assert torch.allclose(exercises.mimic_loss_reference(z, v, centre), M.mimic_loss(z, v, centre))
    assert exercises.check_mimic_loss(exercises.mimic_loss_reference).passed
    assert exercises.check_mimic_loss(M.mimic_loss).passed

    def with_mse(z, v, centre=False):
        if centre:
            z, v = z - z.mean(1, keepdim=True), v - v.mean(1, keepdim=True)
        return 0.5 * z.shape[1] * F.mse_loss(z, v.detach())
    assert exercises.check_mimic_loss(with_mse).passed


def _mimic(z, v, centre=False, *, centring=True, half=True, reduce="right", detach_teacher=True,
           detach_student=False, softmax=False):
    """The loss as a learner writes it; each keyword switches on one mistake."""
    v = v.detach() if detach_teacher else v
    z = z.detach() if detach_student else z
    if softmax:
        z, v = F.softmax(z, 1), F.softmax(v, 1)
    if centre and centring:
        z, v = z - z.mean(1, keepdim=True), v - v.mean(1, keepdim=True)
    d = (z - v) ** 2
    value = {"right": d.sum(1).mean(), "mse": F.mse_loss(z, v), "sum": d.sum()}[reduce]
    return 0.5 * value if half else value


def _centred_over_batch(z, v, centre=False):
    if centre:
        z, v = z - z.mean(0, keepdim=True), v - v.mean(0, keepdim=True)
    return 0.5 * ((z - v.detach()) ** 2).sum(1).mean()


def _in_place_centre(z, v, centre=False):
    if centre:
        z -= z.mean(1, keepdim=True)
        v = v - v.mean(1, keepdim=True)
    return 0.5 * ((z - v.detach()) ** 2).sum(1).mean()


@pytest.mark.parametrize("wrong, hint", [
    (lambda z, v, c=False: _mimic(z, v, c, reduce="mse"), "averaged over batch x classes"),
    (lambda z, v, c=False: _mimic(z, v, c, reduce="sum"), "summed over the batch too"),
    (lambda z, v, c=False: _mimic(z, v, c, half=False), "the factor 1/2 is missing"),
    (lambda z, v, c=False: _mimic(z, v, c, centring=False), "must be centred first"),
    (lambda z, v, c=False: _mimic(z, v, True), "centred although centre=False"),
    (_centred_over_batch, "centred over the batch (dim=0)"),
    (lambda z, v, c=False: _mimic(z, v, c, softmax=True), "softmax probabilities"),
    (lambda z, v, c=False: _mimic(z, v, c, detach_teacher=False), "a gradient flows into teacher_logits"),
    (lambda z, v, c=False: _mimic(z, v, c, detach_student=True), "carries no gradient"),
    (lambda z, v, c=False: _mimic(z, v, c).item(), "no .item()"),
    (lambda z, v, c=False: 0.5 * ((z - v.detach()) ** 2).sum(1), "one loss per example"),
    (lambda z, v, c=False: _mimic(z, v, c, reduce="mse", half=False), "F.mse_loss"),
    (_in_place_centre, "changed student_logits in place"),
])
def test_mimic_loss_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_mimic_loss(wrong), hint)


# ----------------------------------------------------------------------------- leaf_probabilities

def test_leaf_probabilities_reference_agrees_with_the_library():
    for p in _leaf_cases():
        assert torch.allclose(exercises.leaf_probabilities_reference(p), M.path_probabilities(p)[1])
    assert exercises.check_leaf_probabilities(exercises.leaf_probabilities_reference).passed
    assert exercises.check_leaf_probabilities(lambda p: M.path_probabilities(p)[1]).passed


def _leaves(p, order=(0, 1, 2, 3), swap=False, hard=False, root=True):
    """Depth-2 leaves as a learner writes them; each keyword switches on one mistake."""
    q = (p > 0.5).to(p.dtype) if hard else p
    r0, r1, r2 = q[:, 0], q[:, 1], q[:, 2]
    if swap:
        r0, r1, r2 = 1 - r0, 1 - r1, 1 - r2
    a, b = (1 - r0, r0) if root else (torch.ones_like(r0), torch.ones_like(r0))
    leaves = [a * (1 - r1), a * r1, b * (1 - r2), b * r2]
    return torch.stack([leaves[i] for i in order], dim=1)


def _in_place_leaves(p):
    p[:, 1:] = p[:, 1:].clamp(0, 1).mul_(1.0)
    p.mul_(1.0).add_(0.0)
    p[:, 0] = 1 - p[:, 0]
    return _leaves(1 - p)  # wrong anyway, but first: the input changed


@pytest.mark.parametrize("wrong, hint", [
    (lambda p: _leaves(p, swap=True), "left and right are swapped"),
    (lambda p: torch.stack([(1 - p[:, 0]) * (1 - p[:, 2]), (1 - p[:, 0]) * p[:, 2], p[:, 0] * (1 - p[:, 1]),
                            p[:, 0] * p[:, 1]], 1), "the wrong ancestors"),
    (lambda p: _leaves(p, root=False), "the root is missing"),
    (lambda p: _leaves(p, hard=True), "HARD decisions"),
    (lambda p: _leaves(p, order=(0, 2, 1, 3)), "out of order"),
    (lambda p: torch.stack([(1 - p[:, 0]) * (1 - p[:, 1]), (1 - p[:, 0]) * p[:, 1], (1 - p[:, 0]) * (1 - p[:, 2]),
                            (1 - p[:, 0]) * p[:, 2]], 1), "multiplied by (1 - p0)"),
    (lambda p: torch.stack([(2 - p[:, 0] - p[:, 1]), (1 - p[:, 0] + p[:, 1]), (p[:, 0] + 1 - p[:, 2]),
                            (p[:, 0] + p[:, 2])], 1) / 2, "MULTIPLY"),
    (lambda p: torch.stack([p[:, 0] * p[:, 1], p[:, 0] * p[:, 2], p[:, 1] * p[:, 2], p[:, 0]], 1),
     "each row must sum to 1"),
    (lambda p: _leaves(p).T, "torch.stack([...], dim=1)"),
    (lambda p: _leaves(p.detach()), "carries no gradient"),
    (lambda p: _leaves(p).float(), "dtype torch.float64"),
    (_in_place_leaves, "changed node_probabilities in place"),
])
def test_leaf_probabilities_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_leaf_probabilities(wrong), hint)


# ----------------------------------------------------------------------------- nearest_neighbours

def test_nearest_neighbours_reference_is_the_one_munge_uses():
    from course_lib.exercises import model_distillation as X
    from course_lib.model_distillation.transfer import _nearest_neighbours
    g = torch.Generator().manual_seed(1)
    for x in X._neighbour_cases() + [torch.randn(40, 7, generator=g), torch.randint(0, 3, (30, 2), generator=g).float()]:
        assert torch.equal(exercises.nearest_neighbours_reference(x), _nearest_neighbours(x))


def _l1_neighbours(x):
    d = torch.cdist(x, x, p=1)
    d.fill_diagonal_(float("inf"))
    return d.argmin(dim=1)


def _in_place_neighbours(x):
    result = exercises.nearest_neighbours_reference(x)
    x.mul_(2)
    return result


@pytest.mark.parametrize("wrong, hint", [
    (lambda x: torch.cdist(x, x).argmin(dim=1), "nearest to itself"),
    (lambda x: torch.cdist(x, x).argmax(dim=1), "not argmax"),
    (_l1_neighbours, "Euclidean"),
    (_in_place_neighbours, "do not write into x"),
    (lambda x: None, "forget `return`"),
])
def test_nearest_neighbours_checker_names_the_mistake(wrong, hint):
    result = exercises.check_nearest_neighbours(wrong)
    assert result.status == "fail" and hint in result.message, result.message


def test_nearest_neighbours_checker_passes_the_reference_and_reports_not_attempted():
    assert exercises.check_nearest_neighbours(exercises.nearest_neighbours_reference).passed

    def todo(x):
        raise NotImplementedError
    assert exercises.check_nearest_neighbours(todo).status == "not attempted"
