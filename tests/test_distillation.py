"""Knowledge distillation (course_lib.distillation), and the pieces of train.fit / data.batches
it rides on (``targets``, ``with_index``).

The losses are checked against PyTorch's own KL divergence and autograd; the high-temperature
limit against logit matching; ``distill`` on a few hundred MNIST images and a 16-unit MLP
(each run well under a second), for determinism, equivalence of its code paths, and what it
leaves untouched.
"""

import copy
import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from course_lib import data, distillation, experiments, models, train
from course_lib.data import ImageSplit

D = distillation


# ----------------------------------------------------------------------------- helpers

def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _logits(b: int, c: int, seed: int = 0, scale: float = 3.0, dtype=torch.float64) -> torch.Tensor:
    return scale * torch.randn(b, c, generator=_generator(seed), dtype=dtype)


def _labels(b: int, c: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, c, (b,), generator=_generator(seed))


def _centred(z: torch.Tensor) -> torch.Tensor:
    return z - z.mean(dim=-1, keepdim=True)


def _mlp(seed: int, hidden=(16,), **kwargs) -> nn.Sequential:
    """A tiny MLP initialised from ``seed`` without disturbing the global generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return models.mlp(list(hidden), **kwargs)


def _state(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same_state(model: nn.Module, state: dict) -> bool:
    now = model.state_dict()
    return now.keys() == state.keys() and all(torch.equal(v, state[k]) for k, v in now.items())


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    return _same_state(a, _state(b))


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(1e-300).log()).sum(dim=-1)


def _hard_grad(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (torch.softmax(z, dim=-1) - F.one_hot(y, z.shape[1]).to(z.dtype)) / len(z)


class Spy(nn.Module):
    """Wraps a model; records each input it sees and whether it was in training mode."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.inputs: list[torch.Tensor] = []
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        self.modes.append(self.inner.training)
        return self.inner(x)


@pytest.fixture(scope="module")
def transfer() -> ImageSplit:
    """300 training images (a few hundred: the runs below take milliseconds)."""
    return data.load("mnist", "train").subset(300)


@pytest.fixture(scope="module")
def teacher() -> nn.Sequential:
    """An untrained teacher with dropout (so that its train/eval mode matters). Tests that
    need to change it take a deepcopy."""
    return _mlp(123, hidden=(32,), dropout=0.5)


@pytest.fixture(scope="module")
def teacher_logits(teacher, transfer) -> torch.Tensor:
    return D.precompute_logits(copy.deepcopy(teacher), transfer)


RUN = dict(progress=False)
SET = dict(batch_size=64, seed=3)                  # the training settings of these runs
SETTINGS = {f.name for f in dataclasses.fields(train.TrainingSettings)}


# ----------------------------------------------------------------------------- soft targets: the loss

@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(2, 12), st.floats(0.5, 50.0), st.integers(0, 10_000),
       st.sampled_from([torch.float32, torch.float64]))
def test_soft_target_loss_is_t_squared_times_torch_kl_div(b, c, temperature, seed, dtype):
    z, v = _logits(b, c, seed, dtype=dtype), _logits(b, c, seed + 1, dtype=dtype)
    ours = D.soft_target_loss(z, v, temperature)
    theirs = temperature ** 2 * F.kl_div(F.log_softmax(z / temperature, dim=-1),
                                         F.softmax(v / temperature, dim=-1), reduction="batchmean")
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    assert ours.shape == () and ours.dtype == dtype
    assert float(ours) == pytest.approx(float(theirs), rel=tol, abs=tol)
    assert float(ours) >= -tol                    # a KL divergence


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(2, 10), st.floats(0.5, 50.0), st.integers(0, 10_000),
       st.floats(-100, 100))
def test_soft_target_loss_is_zero_on_itself_and_ignores_constant_offsets(b, c, temperature, seed, offset):
    z, v = _logits(b, c, seed), _logits(b, c, seed + 1)
    assert float(D.soft_target_loss(z, z.clone(), temperature)) == pytest.approx(0.0, abs=1e-10)
    moved = D.soft_target_loss(z + offset, v - offset, temperature)
    assert float(moved) == pytest.approx(float(D.soft_target_loss(z, v, temperature)), rel=1e-8, abs=1e-10)


def test_soft_target_loss_hand_case():
    # Two classes, T = 1: p = (1/2, 1/2), q = softmax(0, log 3) = (1/4, 3/4).
    z = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64)
    v = torch.zeros(1, 2, dtype=torch.float64)
    kl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert float(D.soft_target_loss(z, v, 1.0)) == pytest.approx(kl, rel=1e-12)
    # At T = 2 the same logits halve: q = softmax(0, log 3 / 2), scaled by T**2 = 4.
    q = torch.softmax(z / 2, dim=-1)[0]
    kl2 = float(0.5 * torch.log(0.5 / q[0]) + 0.5 * torch.log(0.5 / q[1]))
    assert float(D.soft_target_loss(z, v, 2.0)) == pytest.approx(4 * kl2, rel=1e-12)
    # batchmean: the mean over examples, not over examples x classes.
    zz, vv = torch.cat([z, z, z]), torch.cat([v, v, v])
    assert float(D.soft_target_loss(zz, vv, 1.0)) == pytest.approx(kl, rel=1e-12)


# ----------------------------------------------------------------------------- gradients

@settings(max_examples=50, deadline=None)
@given(st.integers(1, 8), st.integers(2, 12), st.floats(0.5, 50.0), st.integers(0, 10_000))
def test_soft_target_gradient_is_autograd_of_the_per_example_kl(b, c, temperature, seed):
    z, v = _logits(b, c, seed), _logits(b, c, seed + 1)
    zz = z.clone().requires_grad_(True)
    log_q = F.log_softmax(zz / temperature, dim=-1)
    p = F.softmax(v / temperature, dim=-1)
    kl_sum = (p * (p.log() - log_q)).sum()          # sum over the batch, no T**2
    (autograd,) = torch.autograd.grad(kl_sum, zz)
    ours = D.soft_target_gradient(z, v, temperature)
    q = torch.softmax(z / temperature, dim=-1)
    assert ours.shape == (b, c)
    assert torch.allclose(ours, autograd, rtol=1e-9, atol=1e-12)
    assert torch.allclose(ours, (q - p) / temperature, rtol=1e-12, atol=1e-15)
    assert torch.allclose(ours.sum(dim=-1), torch.zeros(b, dtype=z.dtype), atol=1e-12)
    # And the gradient of soft_target_loss itself is T**2 / B times it.
    zz = z.clone().requires_grad_(True)
    D.soft_target_loss(zz, v, temperature).backward()
    assert torch.allclose(zz.grad, temperature ** 2 * ours / b, rtol=1e-9, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 8), st.integers(2, 12), st.floats(0.5, 50.0), st.floats(0.0, 1.0),
       st.integers(0, 10_000))
def test_distillation_loss_gradient_is_the_weighted_sum_of_the_two_terms(b, c, temperature, weight, seed):
    z, v, y = _logits(b, c, seed), _logits(b, c, seed + 1), _labels(b, c, seed + 2)
    zz = z.clone().requires_grad_(True)
    loss = D.distillation_loss(zz, v, y, temperature, weight)
    loss.backward()
    q_t, p_t = torch.softmax(z / temperature, dim=-1), torch.softmax(v / temperature, dim=-1)
    expected = weight * temperature * (q_t - p_t) / b + (1 - weight) * _hard_grad(z, y)
    assert torch.allclose(zz.grad, expected, rtol=1e-9, atol=1e-12)
    value = (1 - weight) * F.cross_entropy(z, y) + weight * D.soft_target_loss(z, v, temperature)
    assert float(loss.detach()) == pytest.approx(float(value), rel=1e-12, abs=1e-12)


def test_high_temperature_limit_is_logit_matching():
    """T**2 x the paper's eq. 2 tends to the logit-matching gradient as T grows (error ~ 1/T),
    and T**2 x KL to the logit-matching loss."""
    b = 4
    z, v = _centred(_logits(b, 10, 0, scale=1.0)), _centred(_logits(b, 10, 1, scale=1.0))
    zz = z.clone().requires_grad_(True)
    D.logit_matching_loss(zz, v).backward()
    target = zz.grad
    # The logit-matching gradient, by hand: (centred z - centred v) / (N B).
    assert torch.allclose(target, (z - v) / (10 * b), rtol=1e-12, atol=1e-15)
    matching = float(D.logit_matching_loss(z, v))
    assert matching == pytest.approx(float(((z - v) ** 2).sum(dim=-1).mean() / 20), rel=1e-12)

    grad_errors, loss_errors = [], []
    for temperature in (1, 10, 100):
        scaled = temperature ** 2 * D.soft_target_gradient(z, v, temperature) / b
        zz = z.clone().requires_grad_(True)
        D.soft_target_loss(zz, v, temperature).backward()
        assert torch.allclose(zz.grad, scaled, rtol=1e-9, atol=1e-14)     # same thing, by autograd
        grad_errors.append(float((scaled - target).abs().max()))
        loss_errors.append(abs(float(D.soft_target_loss(z, v, temperature)) - matching))
    scale = float(target.abs().max())
    assert grad_errors[0] > grad_errors[1] > grad_errors[2]
    assert grad_errors[2] < 0.02 * scale and grad_errors[2] < grad_errors[1] / 5     # ~ 1/T
    assert loss_errors[0] > loss_errors[1] > loss_errors[2]
    assert loss_errors[2] < 1e-2 * matching and loss_errors[2] < loss_errors[1] / 5


def test_logit_matching_ignores_offsets_and_is_zero_on_itself():
    z, v = _logits(3, 5, 0), _logits(3, 5, 1)
    shifted = D.logit_matching_loss(z + torch.tensor([[1.0], [-7.0], [30.0]], dtype=z.dtype), v + 2.5)
    assert float(shifted) == pytest.approx(float(D.logit_matching_loss(z, v)), rel=1e-12)
    assert float(D.logit_matching_loss(z, z + 4.0)) == pytest.approx(0.0, abs=1e-12)


# ----------------------------------------------------------------------------- softmax with temperature

@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(2, 12), st.floats(0.5, 50.0), st.integers(0, 10_000),
       st.floats(-1000, 1000))
def test_softmax_with_temperature_properties(b, c, temperature, seed, offset):
    z = _logits(b, c, seed)
    q = D.softmax_with_temperature(z, temperature)
    assert q.shape == (b, c) and (q >= 0).all()
    assert torch.allclose(q.sum(dim=-1), torch.ones(b, dtype=z.dtype), atol=1e-12)
    assert torch.allclose(q, torch.softmax(z / temperature, dim=-1), rtol=1e-12, atol=1e-15)
    assert torch.allclose(D.softmax_with_temperature(z + offset, temperature), q, rtol=1e-9, atol=1e-12)
    log_q = D.log_softmax_with_temperature(z, temperature)
    assert torch.allclose(log_q.exp(), q, rtol=1e-12, atol=1e-15)
    assert torch.allclose(D.log_softmax_with_temperature(z + offset, temperature), log_q, atol=1e-9)


def test_softmax_at_t1_is_torch_softmax():
    z = _logits(5, 7, 0, dtype=torch.float32)
    assert torch.equal(D.softmax_with_temperature(z, 1.0), torch.softmax(z, dim=-1))
    assert torch.equal(D.softmax_with_temperature(z, 1), torch.softmax(z, dim=-1))
    assert torch.equal(D.log_softmax_with_temperature(z, 1), torch.log_softmax(z, dim=-1))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(2, 10), st.integers(0, 10_000),
       st.lists(st.floats(0.5, 50.0), min_size=2, max_size=5, unique=True))
def test_higher_temperature_gives_higher_entropy(b, c, seed, temperatures):
    z = _logits(b, c, seed)                                   # not constant rows: strict increase
    entropies = [_entropy(D.softmax_with_temperature(z, t)) for t in sorted(temperatures)]
    for low, high in zip(entropies, entropies[1:]):
        assert (high > low - 1e-12).all()
    assert (entropies[-1] <= math.log(c) + 1e-12).all()


def test_entropy_strictly_increases_and_tends_to_uniform():
    z = torch.tensor([[2.0, 0.0, -1.0, 0.5]], dtype=torch.float64)
    h = [float(_entropy(D.softmax_with_temperature(z, t))) for t in (0.5, 1, 2, 5, 20, 1000)]
    assert all(a < b for a, b in zip(h, h[1:]))
    assert h[-1] == pytest.approx(math.log(4), abs=1e-5)


def test_log_softmax_with_temperature_is_finite_for_huge_logits():
    z = torch.tensor([[1000.0, 0.0, -1000.0], [1000.0, 999.0, -1000.0]])
    for temperature in (0.5, 1.0, 4.0):
        log_q = D.log_softmax_with_temperature(z, temperature)
        assert torch.isfinite(log_q).all()
        assert torch.allclose(log_q.exp().sum(dim=-1), torch.ones(2))
        q = D.softmax_with_temperature(z, temperature)
        assert torch.isfinite(q).all()
    # The naive form underflows: the reason the library never writes log(softmax(...)).
    assert torch.isinf(torch.log(torch.softmax(z, dim=-1))).any()
    assert float(D.log_softmax_with_temperature(z, 1.0)[0, 2]) == pytest.approx(-2000.0)
    # And the losses stay finite on such logits too.
    v = torch.tensor([[0.0, 1000.0, 0.0], [-1000.0, 0.0, 1000.0]])
    assert torch.isfinite(D.soft_target_loss(z, v, 1.0))
    assert torch.isfinite(D.distillation_loss(z, v, torch.tensor([0, 2]), 2.0, 0.5))


# ----------------------------------------------------------------------------- the distillation loss

def test_weight_zero_is_cross_entropy_and_weight_one_is_the_soft_loss():
    z, v, y = _logits(6, 10, 0), _logits(6, 10, 1), _labels(6, 10, 2)
    for temperature in (1.0, 4.0, 20.0):
        assert torch.equal(D.distillation_loss(z, v, y, temperature, 0.0), F.cross_entropy(z, y))
        assert torch.equal(D.distillation_loss(z, v, y, temperature, 0), F.cross_entropy(z, y))
        soft = D.soft_target_loss(z, v, temperature)
        assert torch.equal(D.distillation_loss(z, v, y, temperature, 1.0), soft)
        assert torch.equal(D.distillation_loss(z, v, None, temperature, 1.0), soft)
        assert torch.equal(D.distillation_loss(z, v, None, temperature, 1), soft)


def test_weight_one_needs_no_labels_but_checks_them_if_given():
    z, v = _logits(3, 4, 0), _logits(3, 4, 1)
    with pytest.raises(ValueError, match="labels"):
        D.distillation_loss(z, v, torch.tensor([0, 1, 4]), 2.0, 1.0)


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_no_gradient_reaches_the_teacher_and_inputs_are_unchanged(weight):
    z = _logits(5, 10, 0).requires_grad_(True)
    v = _logits(5, 10, 1).requires_grad_(True)
    y = _labels(5, 10, 2)
    before = (z.detach().clone(), v.detach().clone(), y.clone())
    D.distillation_loss(z, v, y, 4.0, weight).backward()
    assert v.grad is None and z.grad is not None
    assert torch.equal(z.detach(), before[0]) and torch.equal(v.detach(), before[1])
    assert torch.equal(y, before[2])
    for loss_fn in (lambda: D.soft_target_loss(z, v, 3.0), lambda: D.logit_matching_loss(z, v)):
        z.grad = None
        loss_fn().backward()
        assert v.grad is None and z.grad is not None


def test_soft_target_gradient_leaves_its_inputs_unchanged():
    z, v = _logits(2, 3, 0), _logits(2, 3, 1)
    before = (z.clone(), v.clone())
    g = D.soft_target_gradient(z, v, 2.0)
    assert g.shape == (2, 3) and torch.equal(z, before[0]) and torch.equal(v, before[1])


# ----------------------------------------------------------------------------- bad input, named

_Z = _logits(4, 3, 0, dtype=torch.float32)
_V = _logits(4, 3, 1, dtype=torch.float32)
_Y = torch.tensor([0, 1, 2, 1])
_NAN = _Z.clone()
_NAN[1, 2] = float("nan")
_INF = _Z.clone()
_INF[0, 0] = float("inf")


@pytest.mark.parametrize("args, error, name", [
    # temperature
    ((_Z, _V, _Y, 0.0, 0.5), ValueError, "temperature"),
    ((_Z, _V, _Y, -1.0, 0.5), ValueError, "temperature"),
    ((_Z, _V, _Y, float("nan"), 0.5), ValueError, "temperature"),
    ((_Z, _V, _Y, float("inf"), 0.5), ValueError, "temperature"),
    ((_Z, _V, _Y, True, 0.5), TypeError, "temperature"),
    ((_Z, _V, _Y, "4", 0.5), TypeError, "temperature"),
    ((_Z, _V, _Y, None, 0.5), TypeError, "temperature"),
    ((_Z, _V, _Y, torch.tensor(4.0), 0.5), TypeError, "temperature"),
    # weight
    ((_Z, _V, _Y, 4.0, -0.1), ValueError, "weight"),
    ((_Z, _V, _Y, 4.0, 1.5), ValueError, "weight"),
    ((_Z, _V, _Y, 4.0, float("nan")), ValueError, "weight"),
    ((_Z, _V, _Y, 4.0, float("inf")), ValueError, "weight"),
    ((_Z, _V, _Y, 4.0, True), TypeError, "weight"),
    ((_Z, _V, _Y, 4.0, "0.5"), TypeError, "weight"),
    # logits
    ((_Z, _V[:3], _Y, 4.0, 0.5), ValueError, "same shape"),
    ((_Z, _logits(4, 5, 1, dtype=torch.float32), _Y, 4.0, 0.5), ValueError, "same shape"),
    ((_Z[0], _V[0], _Y[:1], 4.0, 0.5), ValueError, "student_logits"),
    ((_Z, _V[0], _Y, 4.0, 0.5), ValueError, "teacher_logits"),
    ((_Z[:, None], _V[:, None], _Y, 4.0, 0.5), ValueError, "student_logits"),
    ((_Z[:, :1], _V[:, :1], _Y, 4.0, 0.5), ValueError, "student_logits"),     # one class
    ((_Z[:0], _V[:0], _Y[:0], 4.0, 0.5), ValueError, "student_logits"),        # empty batch
    ((_Z.long(), _V.long(), _Y, 4.0, 0.5), ValueError, "student_logits"),
    ((_NAN, _V, _Y, 4.0, 0.5), ValueError, "student_logits"),
    ((_Z, _NAN, _Y, 4.0, 0.5), ValueError, "teacher_logits"),
    ((_INF, _V, _Y, 4.0, 0.5), ValueError, "student_logits"),
    ((_Z.tolist(), _V, _Y, 4.0, 0.5), TypeError, "student_logits"),
    ((_Z, None, _Y, 4.0, 0.5), TypeError, "teacher_logits"),
    # labels
    ((_Z, _V, None, 4.0, 0.5), ValueError, "labels"),
    ((_Z, _V, None, 4.0, 0.0), ValueError, "labels"),
    ((_Z, _V, torch.tensor([0, 1, 3, 1]), 4.0, 0.5), ValueError, "labels"),
    ((_Z, _V, torch.tensor([0, -1, 2, 1]), 4.0, 0.5), ValueError, "labels"),
    ((_Z, _V, _Y[:3], 4.0, 0.5), ValueError, "labels"),
    ((_Z, _V, _Y.float(), 4.0, 0.5), ValueError, "labels"),
    ((_Z, _V, _Y.bool(), 4.0, 0.5), ValueError, "labels"),
    ((_Z, _V, _Y[:, None], 4.0, 0.5), ValueError, "labels"),
    ((_Z, _V, [0, 1, 2, 1], 4.0, 0.5), TypeError, "labels"),
])
def test_distillation_loss_rejects_bad_input_by_name(args, error, name):
    copies = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    with pytest.raises(error) as info:
        D.distillation_loss(*args)
    assert name in str(info.value)
    for a, c in zip(args, copies):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a.isnan(), c.isnan()) and torch.equal(a.nan_to_num(), c.nan_to_num())


@pytest.mark.parametrize("temperature, error", [
    (0, ValueError), (-2.0, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
    (False, TypeError), ("1", TypeError),
])
def test_the_other_functions_reject_a_bad_temperature_by_name(temperature, error):
    for fn in (lambda: D.soft_target_loss(_Z, _V, temperature),
               lambda: D.soft_target_gradient(_Z, _V, temperature),
               lambda: D.softmax_with_temperature(_Z, temperature),
               lambda: D.log_softmax_with_temperature(_Z, temperature),
               lambda: D.check_temperature(temperature)):
        with pytest.raises(error, match="temperature"):
            fn()


@pytest.mark.parametrize("fn", [
    lambda z, v: D.soft_target_loss(z, v, 2.0),
    lambda z, v: D.soft_target_gradient(z, v, 2.0),
    lambda z, v: D.logit_matching_loss(z, v),
])
def test_the_other_functions_reject_bad_logits_by_name(fn):
    for z, v, name in [(_Z, _V[:2], "same shape"), (_Z[0], _V[0], "student_logits"),
                       (_NAN, _V, "student_logits"), (_Z, _INF, "teacher_logits"),
                       (_Z[:0], _V[:0], "student_logits"), (_Z, "v", "teacher_logits")]:
        with pytest.raises((TypeError, ValueError)) as info:
            fn(z, v)
        assert name in str(info.value)
    for bad in (_Z[0], _NAN, _Z[:0], _Z.int()):
        with pytest.raises(ValueError, match="logits"):
            D.softmax_with_temperature(bad, 1.0)
        with pytest.raises(ValueError, match="logits"):
            D.log_softmax_with_temperature(bad, 1.0)


def test_check_weight_accepts_the_closed_interval():
    for w in (0, 0.0, 0.25, 1, 1.0):
        D.check_soft_target_weight(w)
    for w in (-1e-9, 1 + 1e-9, float("nan")):
        with pytest.raises(ValueError, match="weight must be a finite number in \\[0, 1\\]"):
            D.check_soft_target_weight(w)


# ----------------------------------------------------------------------------- ensembles

def _members(n: int, classes: int = 10) -> list[nn.Module]:
    return [_mlp(10 + i, hidden=(8,), num_classes=classes) for i in range(n)]


def test_ensemble_of_probabilities_is_log_of_mean_softmax(transfer):
    members = _members(3)
    x = transfer.images[:20]
    ensemble = D.Ensemble(members, combine="probabilities").eval()
    with torch.no_grad():
        out = ensemble(x)
        mean_p = torch.stack([torch.softmax(m(x), dim=-1) for m in members]).mean(dim=0)
    assert out.shape == (20, 10)
    assert torch.allclose(out, mean_p.log(), atol=1e-5)
    assert torch.allclose(torch.softmax(out, dim=-1), mean_p, atol=1e-6)
    assert torch.allclose(out.exp().sum(dim=-1), torch.ones(20), atol=1e-5)   # log-probabilities
    assert D.Ensemble(members).combine == "probabilities"                      # the default


def test_ensemble_of_logits_is_mean_logits(transfer):
    members = _members(3)
    x = transfer.images[:20]
    with torch.no_grad():
        out = D.Ensemble(members, combine="logits")(x)
        mean = torch.stack([m(x) for m in members]).mean(dim=0)
    assert torch.allclose(out, mean, atol=1e-6)


def test_ensemble_of_one_is_the_member(transfer):
    (member,) = _members(1)
    x = transfer.images[:10]
    with torch.no_grad():
        logits = member(x)
        assert torch.equal(D.Ensemble([member], combine="logits")(x), logits)
        out = D.Ensemble([member], combine="probabilities")(x)
    assert torch.allclose(out, torch.log_softmax(logits, dim=-1), atol=1e-6)
    assert torch.allclose(torch.softmax(out, dim=-1), torch.softmax(logits, dim=-1), atol=1e-6)
    assert torch.equal(out.argmax(dim=1), logits.argmax(dim=1))


def test_ensemble_is_stable_for_huge_logits_and_registers_its_members():
    class Const(nn.Module):
        def __init__(self, row):
            super().__init__()
            self.row = torch.tensor(row)

        def forward(self, x):
            return self.row.expand(len(x), -1)

    ensemble = D.Ensemble([Const([1000.0, 0.0]), Const([0.0, 1000.0])])
    out = ensemble(torch.zeros(3, 1))
    assert torch.isfinite(out).all()
    assert torch.allclose(torch.softmax(out, dim=-1), torch.full((3, 2), 0.5))
    members = _members(2)
    assert sum(p.numel() for p in D.Ensemble(members).parameters()) == \
        sum(p.numel() for m in members for p in m.parameters())


@pytest.mark.parametrize("members, combine, error, name", [
    ([], "probabilities", ValueError, "members"),
    ((), "probabilities", ValueError, "members"),
    (None, "probabilities", (TypeError, ValueError), "members"),
    ("mlp", "probabilities", (TypeError, ValueError), "members"),
    (lambda: _mlp(0), "probabilities", (TypeError, ValueError), "members"),      # a model, not a list
    (lambda: [_mlp(0), "teacher"], "probabilities", TypeError, "members[1]"),
    (lambda: [_mlp(0)], "mean", ValueError, "combine"),
    (lambda: [_mlp(0)], None, ValueError, "combine"),
    (lambda: [_mlp(0)], "Logits", ValueError, "combine"),
])
def test_ensemble_rejects_bad_members_and_combine(members, combine, error, name):
    members = members() if callable(members) and not isinstance(members, nn.Module) else members
    with pytest.raises(error) as info:
        D.Ensemble(members, combine=combine)
    assert name in str(info.value)


# ----------------------------------------------------------------------------- precompute_logits

def test_precompute_logits_are_the_teachers_eval_logits_on_the_cpu(teacher, transfer):
    t = copy.deepcopy(teacher).train()
    logits = D.precompute_logits(t, transfer, batch_size=70)
    assert logits.shape == (len(transfer), 10) and logits.device.type == "cpu"
    assert t.training                                                   # mode restored
    with torch.no_grad():
        assert torch.allclose(logits, t.eval()(transfer.images), atol=1e-6)
    assert not logits.requires_grad
    with pytest.raises(TypeError, match="split"):
        D.precompute_logits(t, transfer.images)


# ----------------------------------------------------------------------------- distill

def test_distill_is_deterministic(transfer, teacher):
    for max_shift in (0, 2):
        runs = []
        for _ in range(2):
            student = _mlp(1)
            result = D.distill(student, transfer, train.TrainingSettings(epochs=2, max_shift=max_shift, **SET),
                               teacher=copy.deepcopy(teacher), temperature=4.0, weight=0.7, **RUN)
            runs.append((student, [r["train_loss"] for r in result.history]))
        assert _same_weights(runs[0][0], runs[1][0])
        assert runs[0][1] == runs[1][1] and len(runs[0][1]) == 2
        assert not _same_weights(runs[0][0], _mlp(1))                     # it did train


def test_distill_returns_a_fit_result_and_learns_the_teacher(transfer, teacher, teacher_logits):
    student = _mlp(1)
    before = float(D.soft_target_loss(train.predict_logits(student, transfer.images), teacher_logits, 2.0))
    result = D.distill(student, transfer, train.TrainingSettings(epochs=2, lr=3e-3, **SET),
                       teacher_logits=teacher_logits, temperature=2.0, weight=1.0, validation=transfer, **RUN)
    assert isinstance(result, train.FitResult) and len(result.history) == 2
    assert result.final is not None and result.final.n == len(transfer)
    assert not student.training                                        # eval, as fit leaves it
    after = float(D.soft_target_loss(train.predict_logits(student, transfer.images), teacher_logits, 2.0))
    assert after < before


def test_precomputed_logits_equal_passing_the_teacher(transfer, teacher, teacher_logits):
    a, b = _mlp(1), _mlp(1)
    ra = D.distill(a, transfer, train.TrainingSettings(epochs=2, max_shift=0, **SET),
                   teacher=copy.deepcopy(teacher), temperature=3.0, weight=0.8, **RUN)
    rb = D.distill(b, transfer, train.TrainingSettings(epochs=2, **SET), teacher_logits=teacher_logits.clone(),
                   temperature=3.0, weight=0.8, **RUN)
    assert _same_weights(a, b)
    assert [r["train_loss"] for r in ra.history] == [r["train_loss"] for r in rb.history]


@pytest.mark.parametrize("max_shift, mode", [
    (0, "train"), (0, "eval"), (2, "eval"), (2, "train")])
def test_teacher_mode_is_restored(transfer, teacher, max_shift, mode):
    t = copy.deepcopy(teacher).train(mode == "train")
    D.distill(_mlp(1), transfer, train.TrainingSettings(epochs=1, max_shift=max_shift, **SET), teacher=t, **RUN)
    assert t.training == (mode == "train")
    assert all(m.training == (mode == "train") for m in t.modules())


@pytest.mark.parametrize("max_shift", [0, 2])
def test_teacher_weights_are_unchanged_and_get_no_gradient(transfer, teacher, max_shift):
    t = copy.deepcopy(teacher)
    before = _state(t)
    D.distill(_mlp(1), transfer, train.TrainingSettings(epochs=1, max_shift=max_shift, **SET), teacher=t, **RUN)
    assert _same_state(t, before)
    assert all(p.grad is None for p in t.parameters())
    assert all(p.requires_grad for p in t.parameters())                 # not frozen for good


@pytest.mark.parametrize("max_shift", [0, 2])
def test_teacher_runs_in_eval_mode_on_the_students_batches(transfer, teacher, max_shift):
    spy_teacher = Spy(copy.deepcopy(teacher)).train()
    spy_student = Spy(_mlp(1))
    D.distill(spy_student, transfer, train.TrainingSettings(epochs=2, max_shift=max_shift, **SET),
              teacher=spy_teacher, **RUN)
    assert not any(spy_teacher.modes)                                   # never in train mode
    # Skip the one-image probes that count each model's classes.
    teacher_seen = [x for x in spy_teacher.inputs if len(x) > 1]
    student_seen = [x for x in spy_student.inputs if len(x) > 1]
    steps = 2 * math.ceil(len(transfer) / SET["batch_size"])
    assert len(student_seen) == steps
    if max_shift == 0:
        # Logits computed once, before training, on the unshifted images.
        assert len(teacher_seen) == 1 and torch.equal(teacher_seen[0], transfer.images)
        return
    # With augmentation the teacher sees exactly the student's shifted batch, at every step,
    # the same batches data.batches draws from the fit's seed.
    assert len(teacher_seen) == steps
    assert all(torch.equal(a, b) for a, b in zip(teacher_seen, student_seen))
    generator = _generator(SET["seed"])
    expected = [x for _ in range(2) for x, _y in
                data.batches(transfer, SET["batch_size"], shuffle=True, generator=generator,
                             max_shift=max_shift)]
    assert all(torch.equal(a, b) for a, b in zip(teacher_seen, expected))
    originals = {bytes(row.numpy().tobytes()) for row in transfer.images}
    shifted = sum(bytes(row.numpy().tobytes()) not in originals for x in teacher_seen for row in x)
    assert shifted > len(transfer)                                      # mostly not the originals


def test_shifted_distillation_works_and_differs(transfer, teacher):
    plain, shifted = _mlp(1), _mlp(1)
    D.distill(plain, transfer, train.TrainingSettings(epochs=1, max_shift=0, **SET), teacher=copy.deepcopy(teacher),
              **RUN)
    result = D.distill(shifted, transfer, train.TrainingSettings(epochs=1, max_shift=2, **SET),
                       teacher=copy.deepcopy(teacher), **RUN)
    assert math.isfinite(result.history[0]["train_loss"])
    assert all(torch.isfinite(p).all() for p in shifted.parameters())
    assert not _same_weights(plain, shifted)


@pytest.mark.parametrize("source", ["logits", "teacher"])
def test_weight_zero_reproduces_fit_exactly(transfer, teacher, teacher_logits, source):
    by_fit, by_distill = _mlp(1), _mlp(1)
    fit_result = train.fit(by_fit, transfer, train.TrainingSettings(epochs=2, **SET), **RUN)
    given = dict(teacher_logits=teacher_logits) if source == "logits" else dict(teacher=copy.deepcopy(teacher))
    result = D.distill(by_distill, transfer, train.TrainingSettings(epochs=2, **SET), weight=0.0, temperature=7.0,
                       **RUN, **given)
    assert _same_weights(by_fit, by_distill)
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in fit_result.history]
    assert [r["train_accuracy"] for r in result.history] == [r["train_accuracy"] for r in fit_result.history]


def test_distill_from_an_ensemble(transfer):
    ensemble = D.Ensemble(_members(2))
    student = _mlp(1)
    result = D.distill(student, transfer, train.TrainingSettings(epochs=1, **SET), teacher=ensemble, weight=1.0,
                       **RUN)
    assert math.isfinite(result.history[0]["train_loss"])


def test_distill_with_soft_targets_alone_ignores_the_labels(transfer, teacher_logits):
    relabelled = ImageSplit(transfer.images, (transfer.labels + 1) % 10, transfer.name, transfer.classes)
    a, b = _mlp(1), _mlp(1)
    D.distill(a, transfer, train.TrainingSettings(epochs=1, **SET), teacher_logits=teacher_logits, weight=1.0, **RUN)
    D.distill(b, relabelled, train.TrainingSettings(epochs=1, **SET), teacher_logits=teacher_logits, weight=1.0,
              **RUN)
    assert _same_weights(a, b)


# ----------------------------------------------------------------------------- distill: bad input

def _empty(split: ImageSplit) -> ImageSplit:
    return ImageSplit(split.images[:0], split.labels[:0], "empty", split.classes)


def _relabelled(split: ImageSplit, label: int) -> ImageSplit:
    labels = split.labels.clone()
    labels[0] = label
    return ImageSplit(split.images, labels, split.name, split.classes)


@pytest.mark.parametrize("make, error, names", [
    (lambda s, t, l: dict(), ValueError, ["teacher", "teacher_logits"]),
    (lambda s, t, l: dict(teacher=t, teacher_logits=l), ValueError, ["teacher", "teacher_logits"]),
    (lambda s, t, l: dict(teacher_logits=l[:-1]), ValueError, ["teacher_logits", "(300)"]),
    (lambda s, t, l: dict(teacher_logits=torch.cat([l, l[:1]])), ValueError, ["teacher_logits"]),
    (lambda s, t, l: dict(teacher_logits=l, max_shift=1), ValueError, ["teacher_logits", "max_shift"]),
    (lambda s, t, l: dict(teacher_logits=l[:, :5]), ValueError, ["classes"]),
    (lambda s, t, l: dict(teacher_logits=l[:, 0]), ValueError, ["teacher_logits"]),
    (lambda s, t, l: dict(teacher_logits=l.tolist()), TypeError, ["teacher_logits"]),
    (lambda s, t, l: dict(teacher_logits=torch.where(torch.arange(len(l))[:, None] == 7,
                                                     float("nan"), l)), ValueError, ["teacher_logits"]),
    (lambda s, t, l: dict(teacher=_mlp(5, num_classes=5)), ValueError, ["student", "teacher", "classes"]),
    (lambda s, t, l: dict(teacher=nn.Identity()), ValueError, ["classifier"]),
    (lambda s, t, l: dict(teacher="teacher"), TypeError, ["teacher"]),
    (lambda s, t, l: dict(teacher=t, temperature=0.0), ValueError, ["temperature"]),
    (lambda s, t, l: dict(teacher=t, temperature=float("nan")), ValueError, ["temperature"]),
    (lambda s, t, l: dict(teacher=t, temperature=True), TypeError, ["temperature"]),
    (lambda s, t, l: dict(teacher=t, weight=1.01), ValueError, ["weight"]),
    (lambda s, t, l: dict(teacher=t, weight=float("nan")), ValueError, ["weight"]),
    (lambda s, t, l: dict(teacher=t, max_shift=-1), ValueError, ["max_shift"]),
    (lambda s, t, l: dict(teacher=t, lr=0.0), ValueError, ["lr"]),
    (lambda s, t, l: dict(teacher=t, batch_size=0), ValueError, ["batch_size"]),
    (lambda s, t, l: dict(teacher=t, optimizer="rmsprop"), ValueError, ["optimizer"]),
    (lambda s, t, l: dict(teacher=t, device="gpu"), ValueError, ["device"]),
    (lambda s, t, l: dict(teacher=t, progress=1), TypeError, ["progress"]),
])
def test_distill_rejects_bad_arguments_with_nothing_changed(transfer, teacher, teacher_logits, make,
                                                            error, names):
    student = _mlp(1).train()
    t = copy.deepcopy(teacher).train()
    kwargs = make(transfer, t, teacher_logits.clone())
    before, teacher_before = _state(student), _state(t)
    logits_before = teacher_logits.clone()
    rng = torch.get_rng_state()
    with pytest.raises(error) as info:
        settings = train.TrainingSettings(epochs=1, **{k: v for k, v in kwargs.items() if k in SETTINGS})
        D.distill(student, transfer, settings, progress=False,
                  **{k: v for k, v in kwargs.items() if k not in SETTINGS})
    for name in names:
        assert name in str(info.value)
    assert _same_state(student, before) and student.training
    assert _same_state(t, teacher_before) and t.training
    assert torch.equal(teacher_logits, logits_before)
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.parametrize("make_split, names", [
    (_empty, ["transfer", "at least one"]),
    (lambda s: (s.images, s.labels), ["transfer", "ImageSplit"]),
    (lambda s: _relabelled(s.subset(50), 7), ["labels"]),          # 5 classes, label 7
    (lambda s: _relabelled(s.subset(50), -1), ["labels"]),
])
def test_distill_rejects_a_bad_transfer_set_with_nothing_changed(transfer, make_split, names):
    split = make_split(transfer)
    student = _mlp(1, num_classes=5)
    teacher = _mlp(2, num_classes=5)
    before, teacher_before = _state(student), _state(teacher)
    with pytest.raises((TypeError, ValueError)) as info:
        D.distill(student, split, train.TrainingSettings(epochs=1), teacher=teacher, progress=False)
    for name in names:
        assert name in str(info.value)
    assert _same_state(student, before) and _same_state(teacher, teacher_before)


def test_distill_rejects_a_bad_student_and_epochs(transfer, teacher_logits):
    with pytest.raises(TypeError, match="student"):
        D.distill("student", transfer, train.TrainingSettings(epochs=1), teacher_logits=teacher_logits,
                  progress=False)
    student = _mlp(1)
    before = _state(student)
    for epochs, error in [(-1, ValueError), (1.0, TypeError), (True, TypeError)]:
        with pytest.raises(error, match="epochs"):
            D.distill(student, transfer, train.TrainingSettings(epochs=epochs), teacher_logits=teacher_logits,
                      progress=False)
    assert _same_state(student, before)


def test_distill_rejects_a_student_with_other_classes(transfer, teacher_logits):
    student = _mlp(1, num_classes=5)
    before = _state(student)
    with pytest.raises(ValueError, match="same number of classes"):
        D.distill(student, transfer, train.TrainingSettings(epochs=1), teacher_logits=teacher_logits, progress=False)
    assert _same_state(student, before)


# ----------------------------------------------------------------------------- fit(targets=...), batches(with_index=...)

@pytest.mark.parametrize("max_shift", [0, 1])
def test_fit_targets_reach_the_loss_aligned_with_the_batch(transfer, max_shift):
    targets = torch.stack([transfer.labels.double() * 3 + 1, -transfer.labels.double()], dim=1)
    seen = []

    def loss_fn(logits, labels, images, rows):
        assert rows.shape == (len(labels), 2)
        assert torch.equal(rows[:, 0], labels.double() * 3 + 1)
        assert torch.equal(rows[:, 1], -labels.double())
        seen.append(len(labels))
        return F.cross_entropy(logits, labels)

    train.fit(_mlp(1), transfer, train.TrainingSettings(epochs=2, max_shift=max_shift, **SET), loss_fn=loss_fn,
              targets=targets, **RUN)
    assert sum(seen) == 2 * len(transfer) and len(seen) == 2 * math.ceil(len(transfer) / 64)


def test_fit_target_rows_match_the_images_without_shift(transfer):
    targets = transfer.images.flatten(1).clone()                 # a target that is the image itself
    calls = []

    def loss_fn(logits, labels, images, rows):
        assert torch.equal(rows, images.flatten(1))
        calls.append(1)
        return F.cross_entropy(logits, labels)

    train.fit(_mlp(1), transfer, train.TrainingSettings(epochs=1, **SET), loss_fn=loss_fn, targets=targets, **RUN)
    assert len(calls) == math.ceil(len(transfer) / 64)


def test_fit_with_targets_equals_fit_without_when_the_loss_ignores_them(transfer):
    a, b = _mlp(1), _mlp(1)
    train.fit(a, transfer, train.TrainingSettings(epochs=1, **SET), **RUN)
    train.fit(b, transfer, train.TrainingSettings(epochs=1, **SET), targets=torch.zeros(len(transfer)),
              loss_fn=lambda logits, labels, images, rows: F.cross_entropy(logits, labels), **RUN)
    assert _same_weights(a, b)


def test_fit_without_targets_calls_loss_fn_with_three_arguments(transfer):
    calls = []

    def loss_fn(logits, labels, images):
        calls.append(images.shape)
        return F.cross_entropy(logits, labels)

    train.fit(_mlp(1), transfer.subset(64), train.TrainingSettings(epochs=1, **SET), loss_fn=loss_fn, **RUN)
    assert calls == [(64, 1, 28, 28)]


@pytest.mark.parametrize("make, error, names", [
    (lambda n: dict(targets=torch.zeros(n - 1), loss_fn=lambda *a: None), ValueError, ["targets", str(300)]),
    (lambda n: dict(targets=torch.zeros(n + 1, 3), loss_fn=lambda *a: None), ValueError, ["targets"]),
    (lambda n: dict(targets=torch.tensor(1.0), loss_fn=lambda *a: None), ValueError, ["targets"]),
    (lambda n: dict(targets=torch.zeros(n)), ValueError, ["targets", "loss_fn"]),
    (lambda n: dict(targets=torch.full((n,), float("nan")), loss_fn=lambda *a: None), ValueError, ["targets"]),
    (lambda n: dict(targets=[0.0] * n, loss_fn=lambda *a: None), TypeError, ["targets"]),
])
def test_fit_rejects_bad_targets_with_nothing_changed(transfer, make, error, names):
    model = _mlp(1).train()
    before = _state(model)
    with pytest.raises(error) as info:
        train.fit(model, transfer, train.TrainingSettings(epochs=1), progress=False, **make(len(transfer)))
    for name in names:
        assert name in str(info.value)
    assert _same_state(model, before) and model.training


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_with_index_point_into_the_split(transfer, shuffle):
    generator = _generator(5) if shuffle else None
    seen = []
    for x, y, index in data.batches(transfer, 64, shuffle=shuffle, generator=generator, with_index=True):
        assert torch.equal(transfer.images[index], x) and torch.equal(transfer.labels[index], y)
        seen.append(index)
    order = torch.cat(seen)
    assert torch.equal(order.sort().values, torch.arange(len(transfer)))   # each example once
    assert shuffle != torch.equal(order, torch.arange(len(transfer)))


def test_batches_with_index_and_shift_keep_labels_aligned_and_the_same_draws(transfer):
    with_index = list(data.batches(transfer, 50, shuffle=True, generator=_generator(9), max_shift=2,
                                   with_index=True))
    without = list(data.batches(transfer, 50, shuffle=True, generator=_generator(9), max_shift=2))
    assert len(with_index) == len(without) == 6
    for (x, y, index), (x2, y2) in zip(with_index, without):
        assert torch.equal(transfer.labels[index], y)
        assert torch.equal(x, x2) and torch.equal(y, y2)        # the index changes no draw
        assert len(without[0]) == 2


def test_batches_rejects_a_non_bool_with_index(transfer):
    with pytest.raises(TypeError, match="with_index"):
        data.batches(transfer, 10, with_index=1)
    with pytest.raises(TypeError, match="with_index"):
        data.batches(transfer, 10, with_index="yes")


# ----------------------------------------------------------------------------- an omitted class

def test_without_class_drops_exactly_that_class(transfer):
    images_before, labels_before = transfer.images.clone(), transfer.labels.clone()
    for label in (3, 0, 9):
        kept = D.without_class(transfer, label)
        keep = transfer.labels != label
        assert isinstance(kept, ImageSplit) and len(kept) == int(keep.sum())
        assert not (kept.labels == label).any()
        assert torch.equal(kept.labels, transfer.labels[keep])
        assert torch.equal(kept.images, transfer.images[keep])
        assert kept.classes == transfer.classes and str(label) in kept.name
    assert torch.equal(transfer.images, images_before) and torch.equal(transfer.labels, labels_before)


def test_without_class_of_an_absent_class_keeps_everything(transfer):
    split = D.without_class(transfer, 3)
    again = D.without_class(split, 3)
    assert torch.equal(again.images, split.images) and torch.equal(again.labels, split.labels)


@pytest.mark.parametrize("label, error", [(10, ValueError), (-1, ValueError), (3.0, TypeError),
                                          (True, TypeError), ("3", TypeError)])
def test_without_class_rejects_a_bad_label_by_name(transfer, label, error):
    with pytest.raises(error, match="label"):
        D.without_class(transfer, label)


def test_without_class_rejects_a_split_of_only_that_class_and_bad_splits(transfer):
    only_threes = ImageSplit(transfer.images[transfer.labels == 3], transfer.labels[transfer.labels == 3],
                             "threes", transfer.classes)
    with pytest.raises(ValueError, match="3"):
        D.without_class(only_threes, 3)
    with pytest.raises(ValueError, match="split"):
        D.without_class(_empty(transfer), 3)
    with pytest.raises(TypeError, match="split"):
        D.without_class((transfer.images, transfer.labels), 3)


@pytest.mark.parametrize("label, shift", [(3, 3.5), (0, -2.0), (9, 0.0), (5, 1e-3)])
def test_with_bias_shift_moves_one_class_by_shift_in_a_copy(transfer, label, shift):
    model = _mlp(1, hidden=(16, 8))
    before = _state(model)
    shifted = D.with_bias_shift(model, label, shift)
    assert shifted is not model and _same_state(model, before)
    assert all(p is not q for p, q in zip(model.parameters(), shifted.parameters()))
    x = transfer.images[:40]
    with torch.no_grad():
        old, new = model(x), shifted(x)
    others = [c for c in range(10) if c != label]
    assert torch.equal(new[:, others], old[:, others])
    assert torch.allclose(new[:, label] - old[:, label], torch.full((40,), float(shift)), atol=1e-5)
    last = [m for m in shifted.modules() if isinstance(m, nn.Linear)][-1]
    original_last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert float((last.bias[label] - original_last.bias[label]).detach()) == pytest.approx(shift, abs=1e-6)


def test_with_bias_shift_is_a_deep_copy_that_keeps_the_mode():
    model = _mlp(1, dropout=0.2).eval()
    shifted = D.with_bias_shift(model, 2, 1)
    assert not shifted.training
    with torch.no_grad():
        shifted.fc2.bias.zero_()
    assert not torch.all(model.fc2.bias == 0)


@pytest.mark.parametrize("make, label, shift, error, name", [
    (lambda: _mlp(1), 10, 1.0, ValueError, "label"),
    (lambda: _mlp(1), -1, 1.0, ValueError, "label"),
    (lambda: _mlp(1), 1.0, 1.0, TypeError, "label"),
    (lambda: _mlp(1), 3, float("nan"), ValueError, "shift"),
    (lambda: _mlp(1), 3, float("inf"), ValueError, "shift"),
    (lambda: _mlp(1), 3, "1", TypeError, "shift"),
    (lambda: _mlp(1), 3, True, TypeError, "shift"),
    (lambda: "model", 3, 1.0, TypeError, "model"),
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 10, bias=False)), 3, 1.0, ValueError, "bias"),
    (lambda: nn.Sequential(nn.Flatten()), 3, 1.0, ValueError, "Linear"),
])
def test_with_bias_shift_rejects_bad_input_with_nothing_changed(make, label, shift, error, name):
    model = make()
    before = _state(model) if isinstance(model, nn.Module) else None
    with pytest.raises(error) as info:
        D.with_bias_shift(model, label, shift)
    assert name in str(info.value)
    if before is not None:
        assert _same_state(model, before)


def _errors(logits, labels, label, shift):
    moved = logits.clone()
    moved[:, label] += shift
    return int((moved.argmax(dim=1) != labels).sum())


def test_choose_bias_shift_hand_case():
    logits = torch.tensor([[1.0, 0.0, 0.5],      # a 2 that needs a shift > 0.5
                           [0.0, 2.0, 0.8],      # a 2 that needs > 1.2
                           [3.0, 0.0, 0.0],      # a 0, lost beyond 3
                           [0.0, 1.1, 0.0]])     # a 1, lost beyond 1.1
    labels = torch.tensor([2, 2, 0, 1])
    before = logits.clone()
    assert [_errors(logits, labels, 2, s) for s in (0, 1, 2, 4)] == [2, 1, 1, 2]
    assert D.choose_bias_shift(logits, labels, 2, [4.0, 2.0, 1.0, 0.0]) == 1.0    # tie -> smaller
    assert D.choose_bias_shift(logits, labels, 2, (2.0, 0.0)) == 2.0
    assert D.choose_bias_shift(logits, labels, 2, [0.0]) == 0.0
    assert D.choose_bias_shift(logits, labels, 2, [0, 3]) == 3                     # ints fine
    assert torch.equal(logits, before)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(2, 6), st.integers(0, 10_000), st.data())
def test_choose_bias_shift_is_the_smallest_shift_with_fewest_errors(b, c, seed, draw):
    logits = _logits(b, c, seed, dtype=torch.float32)
    labels = _labels(b, c, seed + 1)
    label = draw.draw(st.integers(0, c - 1))
    shifts = draw.draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0]),
                                min_size=1, max_size=6))
    before = logits.clone()
    chosen = D.choose_bias_shift(logits, labels, label, shifts)
    errors = {s: _errors(logits, labels, label, s) for s in shifts}
    fewest = min(errors.values())
    assert chosen in shifts and errors[chosen] == fewest
    assert chosen == min(s for s in shifts if errors[s] == fewest)
    assert torch.equal(logits, before)


@pytest.mark.parametrize("args, error, name", [
    ((_Z, _Y, 1, []), ValueError, "shifts"),
    ((_Z, _Y, 1, [0.0, float("nan")]), ValueError, "shifts"),
    ((_Z, _Y, 1, [float("inf")]), ValueError, "shifts"),
    ((_Z, _Y, 1, [True]), ValueError, "shifts"),
    ((_Z, _Y, 1, ["1"]), ValueError, "shifts"),
    ((_Z, _Y, 1, 1.0), ValueError, "shifts"),
    ((_Z, _Y, 1, torch.tensor([1.0])), ValueError, "shifts"),
    ((_Z, _Y, 3, [1.0]), ValueError, "label"),
    ((_Z, _Y, -1, [1.0]), ValueError, "label"),
    ((_Z, _Y, 1.0, [1.0]), TypeError, "label"),
    ((_Z, _Y[:2], 1, [1.0]), ValueError, "labels"),
    ((_Z, torch.tensor([0, 1, 5, 1]), 1, [1.0]), ValueError, "labels"),
    ((_Z, _Y.float(), 1, [1.0]), ValueError, "labels"),
    ((_NAN, _Y, 1, [1.0]), ValueError, "logits"),
    ((_Z[0], _Y, 1, [1.0]), ValueError, "logits"),
    ((_Z.tolist(), _Y, 1, [1.0]), TypeError, "logits"),
])
def test_choose_bias_shift_rejects_bad_input_by_name(args, error, name):
    logits = args[0].clone() if isinstance(args[0], torch.Tensor) else None
    with pytest.raises(error) as info:
        D.choose_bias_shift(*args)
    assert name in str(info.value)
    if logits is not None:
        assert torch.equal(args[0].isnan(), logits.isnan())
        assert torch.equal(args[0].nan_to_num(), logits.nan_to_num())


# ----------------------------------------------------------------------------- the panel's experiment: checks only

@pytest.fixture()
def no_training(monkeypatch):
    """Anything past the argument checks fails the test at once (nothing is loaded or trained)."""
    def reached(*args, **kwargs):
        raise AssertionError("distillation_experiment went past its argument checks")

    panel = experiments.distillation                                  # the module the experiment lives in
    monkeypatch.setattr(panel.data, "load", reached)
    monkeypatch.setattr(panel.zoo, "load", reached)
    monkeypatch.setattr(panel.train, "fit", reached)
    monkeypatch.setattr(panel, "distill", reached)


_GOOD = dict(hidden=32, temperature=4.0, weight=0.9, epochs=2, device_name="ESP32")


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(hidden=0), ValueError, "hidden"),
    (dict(hidden=4096), ValueError, "hidden"),
    (dict(hidden=2.5), TypeError, "hidden"),
    (dict(hidden=True), TypeError, "hidden"),
    (dict(hidden="32"), TypeError, "hidden"),
    (dict(epochs=0), ValueError, "epochs"),
    (dict(epochs=51), ValueError, "epochs"),
    (dict(epochs=2.0), TypeError, "epochs"),
    (dict(temperature=0), ValueError, "temperature"),
    (dict(temperature=float("nan")), ValueError, "temperature"),
    (dict(weight=1.5), ValueError, "weight"),
    (dict(weight=float("nan")), ValueError, "weight"),
    (dict(device_name="Nokia 3310"), ValueError, "device"),
    (dict(device_name=None), TypeError, "name"),
    (dict(transfer_size=0), ValueError, "transfer_size"),
    (dict(transfer_size=55_001), ValueError, "transfer_size"),
])
def test_distillation_experiment_checks_arguments_before_training(no_training, kwargs, error, name):
    with pytest.raises(error) as info:
        experiments.distillation_experiment(**{**_GOOD, **kwargs})
    assert name in str(info.value)


def test_the_experiment_guard_is_real(no_training):
    """Good arguments do get past the checks (into the patched loader): the test above is not
    passing for the wrong reason."""
    with pytest.raises(AssertionError, match="past its argument checks"):
        experiments.distillation_experiment(**_GOOD)


def test_distill_trains_with_a_loss_of_the_learners():
    """``loss=`` replaces the library's loss (notebook 03 trains with the learner's); the same loss gives the same
    student, and anything that is not a function is refused before training."""
    split = data.load("mnist", "train").subset(256)
    targets = torch.randn(256, 10, generator=torch.Generator().manual_seed(0))
    settings = train.TrainingSettings(epochs=1, seed=0, batch_size=64)
    students = []
    for loss in (None, D.distillation_loss):
        torch.manual_seed(0)
        student = models.mlp([16])
        D.distill(student, split, settings, teacher_logits=targets, progress=False, loss=loss)
        students.append(student)
    assert all(torch.equal(a, b) for a, b in zip(students[0].state_dict().values(), students[1].state_dict().values()))
    calls = []

    def counting(*args):
        calls.append(1)
        return D.distillation_loss(*args)

    torch.manual_seed(0)
    D.distill(models.mlp([16]), split, settings, teacher_logits=targets, progress=False, loss=counting)
    assert len(calls) == 4
    with pytest.raises(TypeError, match="loss must be a function"):
        D.distill(models.mlp([16]), split, settings, teacher_logits=targets, progress=False, loss="kl")
