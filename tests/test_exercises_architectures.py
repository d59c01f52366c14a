import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models._utils import _make_divisible

from course_lib import architectures as A
from course_lib import exercises
from course_lib.exercises.architectures import MAKE_DIVISIBLE_CASES, PARETO_CASES, SEPARABLE_CASES


def _todo(*args, **kwargs):
    raise NotImplementedError


def _fails_with(result, hint):
    assert result.status == "fail", result
    assert hint in result.message, result.message


def test_every_architecture_checker_reports_not_attempted():
    for check in (exercises.check_separable_costs, exercises.check_channel_shuffle, exercises.check_make_divisible,
                  exercises.check_pareto_front, exercises.check_inverted_residual):
        assert check(_todo).status == "not attempted", check


def test_every_architecture_reference_passes_its_checker():
    assert exercises.check_separable_costs(exercises.separable_costs_reference).passed
    assert exercises.check_inverted_residual(exercises.InvertedResidualReference).passed
    assert exercises.check_channel_shuffle(exercises.channel_shuffle_reference).passed
    assert exercises.check_make_divisible(exercises.make_divisible_reference).passed
    assert exercises.check_pareto_front(exercises.pareto_front_reference).passed


# ----------------------------------------------------------------------------- separable_costs

def test_separable_costs_reference_agrees_with_the_library():
    for c_in, c_out, k, h, w, s in SEPARABLE_CASES:
        out = (A.conv_output_size(h, k, s), A.conv_output_size(w, k, s))
        library = A.conv_costs(c_in, c_in, k, out, groups=c_in) + A.conv_costs(c_in, c_out, 1, out)
        assert exercises.separable_costs_reference(c_in, c_out, k, h, w, s) == (library.parameters, library.macs)
    # MobileNet's eq. 5: the ratio to a standard convolution
    _, macs = exercises.separable_costs_reference(32, 64, 3, 14, 14)
    standard = A.conv_costs(32, 64, 3, (14, 14))
    assert macs / standard.macs == pytest.approx(A.separable_ratio(64, 3))


def test_separable_costs_checker_accepts_a_costs_object_and_floats_that_are_whole():
    assert exercises.check_separable_costs(
        lambda *a: A.Costs(*exercises.separable_costs_reference(*a))).passed
    assert exercises.check_separable_costs(
        lambda *a: tuple(float(v) for v in exercises.separable_costs_reference(*a))).passed


def _separable(c_in, c_out, k, h, w, s=1, *, depthwise=None, pointwise=None, size=None, macs_factor=1, extra=0,
               pointwise_size=None):
    H, W = size(h, w, k, s) if size else ((h - 1) // s + 1, (w - 1) // s + 1)
    dw = c_in * k * k if depthwise is None else depthwise(c_in, c_out, k)
    pw = c_in * c_out if pointwise is None else pointwise(c_in, c_out, k)
    pH, pW = pointwise_size(h, w, s) if pointwise_size else (H, W)
    return dw + pw + extra, macs_factor * (H * W * dw + pH * pW * pw)


@pytest.mark.parametrize("wrong, hint", [
    (lambda *a: _separable(*a, depthwise=lambda C, N, k: C * N * k * k), "ONE k×k filter per input channel"),
    (lambda *a: _separable(*a, depthwise=lambda C, N, k: C * N * k * k, pointwise=lambda C, N, k: 0),
     "STANDARD convolution"),
    (lambda *a: _separable(*a, pointwise=lambda C, N, k: 0), "pointwise part is missing"),
    (lambda *a: _separable(*a, depthwise=lambda C, N, k: 0), "depthwise part is missing"),
    (lambda *a: _separable(*a, size=lambda h, w, k, s: (h, w)), "use the OUTPUT resolution"),
    (lambda *a: _separable(*a, pointwise_size=lambda h, w, s: (h, w)), "AFTER the stride"),
    (lambda *a: _separable(*a, size=lambda h, w, k, s: (h // s, w // s)), "not H // s"),
    (lambda *a: _separable(*a, size=lambda h, w, k, s: ((h - k) // s + 1, (w - k) // s + 1)), "padded by k // 2"),
    (lambda c_in, c_out, *a: _separable(c_in, c_out, *a, extra=c_in + c_out), "no biases here"),
    (lambda c_in, c_out, *a: _separable(c_in, c_out, *a, extra=c_out), "no bias on the pointwise"),
    (lambda c_in, c_out, *a: _separable(c_in, c_out, *a, extra=2 * c_in + 2 * c_out), "not their batch norms"),
    (lambda *a: _separable(*a, pointwise=lambda C, N, k: C * N * k * k), "pointwise convolution is 1×1"),
    (lambda *a: _separable(*a, macs_factor=2), "not FLOPs"),
    (lambda *a: exercises.separable_costs_reference(*a)[::-1], "the order is (parameters, macs)"),
    (lambda c_in, c_out, k, h, w, s=1: (c_in * k * k + c_in * c_out, h / s * w / s * c_in * (k * k + c_out)),
     "floor"),
    (lambda *a: exercises.separable_costs_reference(*a)[0], "(parameters, macs) pair"),
    (lambda *a: (1, 2, 3), "got 3 values"),
    (lambda *a: None, "did you forget `return`"),
])
def test_separable_costs_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_separable_costs(wrong), hint)


# ----------------------------------------------------------------------------- InvertedResidual

def test_inverted_residual_reference_computes_the_library_block():
    for c_in, c_out, stride, t in ((8, 8, 1, 4), (8, 16, 2, 6), (6, 6, 2, 2)):
        library = A.InvertedResidualBlock(c_in, c_out, 3, stride, t).eval()
        for module in library.modules():                              # non-trivial batch-norm statistics
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.5)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.data.uniform_(0.5, 2.0)
                module.bias.data.normal_()
        ours = exercises.InvertedResidualReference(c_in, c_out, stride, t).eval()
        ours.load_state_dict(exercises.inverted_residual_state_dict(library))
        x = torch.randn(2, c_in, 9, 9)
        assert torch.allclose(ours(x), library(x), atol=1e-5)
        assert ours.use_residual == library.use_residual


def test_inverted_residual_state_dict_names_what_it_cannot_convert():
    with pytest.raises(TypeError, match="InvertedResidualBlock"):
        exercises.inverted_residual_state_dict(nn.Conv2d(2, 2, 1))
    with pytest.raises(ValueError, match="expansion"):
        exercises.inverted_residual_state_dict(A.InvertedResidualBlock(4, 4, expansion=1))
    with pytest.raises(ValueError, match="squeeze"):
        exercises.inverted_residual_state_dict(A.InvertedResidualBlock(4, 4, expansion=2, se=True))


def test_inverted_residual_checker_reports_a_missing_forward_as_not_attempted():
    class InitOnly(exercises.InvertedResidualReference):
        def forward(self, x):
            raise NotImplementedError
    result = exercises.check_inverted_residual(InitOnly)
    assert result.status == "not attempted" and "forward" in result.message


def _block(forward=None, **changes):
    """A subclass of the reference with some layers replaced and / or another forward."""
    class Block(exercises.InvertedResidualReference):
        def __init__(self, c_in, c_out, stride=1, expansion=4):
            super().__init__(c_in, c_out, stride, expansion)
            hidden = expansion * c_in
            for attr, make in changes.items():
                setattr(self, attr, make(c_in, c_out, stride, hidden))
    if forward is not None:
        Block.forward = forward
    return Block


def _forward(act1=F.relu6, act2=F.relu6, act3=None, residual="right", after=None, skip_bn=None):
    def forward(self, x):
        bn = lambda name, y: y if skip_bn == name else getattr(self, name)(y)          # noqa: E731
        y = act1(bn("bn1", self.expand(x))) if act1 else bn("bn1", self.expand(x))
        y = act2(bn("bn2", self.depthwise(y))) if act2 else bn("bn2", self.depthwise(y))
        y = bn("bn3", self.project(y))
        y = act3(y) if act3 else y
        add = {"right": self.use_residual, "never": False, "always": True,
               "stride only": self.depthwise.stride == (1, 1)}[residual]
        y = x + y if add else y
        return after(y) if after else y
    return forward


def _add_in_place(self, x):
    y = exercises.InvertedResidualReference.forward(self, x)
    if self.use_residual:
        x += 0.0 * y + 1.0
    return y


@pytest.mark.parametrize("wrong, hint", [
    (_block(_forward(act3=F.relu6)), "projection is LINEAR"),
    (_block(_forward(act1=F.relu, act2=F.relu)), "not ReLU"),
    (_block(_forward(act2=F.relu)), "after the depthwise convolution is ReLU6"),
    (_block(_forward(act1=None)), "after the expansion (bn1) is missing"),
    (_block(_forward(residual="never")), "the residual is missing"),
    (_block(_forward(residual="always")), "add the residual only when"),
    (_block(_forward(residual="stride only")), "add the residual only when"),
    (_block(_forward(after=F.relu6)), "no activation after the addition"),
    (_block(_forward(skip_bn="bn2")), "bn2 is missing from the forward"),
    (_block(bn3=lambda c_in, c_out, s, h: nn.Identity()), "missing BN"),
    (_block(depthwise=lambda c_in, c_out, s, h: nn.Conv2d(h, h, 3, s, 1, bias=False)), "groups=hidden"),
    (_block(expand=lambda c_in, c_out, s, h: nn.Conv2d(c_in, h, 1, s, bias=False),
            depthwise=lambda c_in, c_out, s, h: nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False)),
     "belongs to the depthwise convolution"),
    (_block(depthwise=lambda c_in, c_out, s, h: nn.Conv2d(h, h, 3, s, 0, groups=h, bias=False)), "padding=1"),
    (_block(project=lambda c_in, c_out, s, h: nn.Conv2d(h, c_out, 1)), "bias=False"),
    (_block(_add_in_place), "changed x in place"),
    (_block(lambda self, x: None), "did you forget `return`"),
    (nn.Conv2d, "missing BN"),
])
def test_inverted_residual_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_inverted_residual(wrong), hint)


def test_inverted_residual_checker_names_an_expansion_of_the_output():
    class Wide(nn.Module):
        def __init__(self, c_in, c_out, stride=1, expansion=4):
            super().__init__()
            hidden = expansion * c_out                                     # the mistake
            self.expand, self.bn1 = nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden)
            self.depthwise = nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False)
            self.bn2 = nn.BatchNorm2d(hidden)
            self.project, self.bn3 = nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
            self.use_residual = stride == 1 and c_in == c_out

        forward = exercises.InvertedResidualReference.forward
    _fails_with(exercises.check_inverted_residual(Wide), "widens the block's INPUT")

    class NotAModule:
        def __init__(self, *args):
            pass
    _fails_with(exercises.check_inverted_residual(NotAModule), "is not an nn.Module")


def test_inverted_residual_checker_tests_the_learner_class_behind_the_fallback():
    @exercises.falls_back_to(exercises.InvertedResidualReference)
    class InvertedResidual(nn.Module):
        def __init__(self, *args):
            raise NotImplementedError
    assert exercises.check_inverted_residual(InvertedResidual).status == "not attempted"
    block = InvertedResidual(4, 4, 1, 2)                           # the notebook still runs: the reference
    assert block(torch.zeros(1, 4, 5, 5)).shape == (1, 4, 5, 5)


# ----------------------------------------------------------------------------- channel_shuffle

def test_channel_shuffle_reference_agrees_with_the_library_and_interleaves_the_groups():
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert exercises.channel_shuffle_reference(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    y = torch.randn(3, 12, 4, 5)
    for g in (1, 2, 3, 4, 6, 12):
        assert torch.equal(exercises.channel_shuffle_reference(y, g), A.channel_shuffle(y, g))
    assert torch.equal(exercises.channel_shuffle_reference(y, 3), nn.ChannelShuffle(3)(y))


def _view_shuffle(x, g):
    B, C, H, W = x.shape
    return x.view(B, g, C // g, H, W).transpose(1, 2).view(B, C, H, W)


def _in_place_shuffle(x, g):
    x.copy_(exercises.channel_shuffle_reference(x, g))
    return x


def _permute_all(x, g):                                    # moves pixels: not a channel permutation
    return exercises.channel_shuffle_reference(x, g).transpose(2, 3).reshape(x.shape) if x.shape[2] != 1 \
        else exercises.channel_shuffle_reference(x, g)


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, g: x.reshape(x.shape[0], g, -1, *x.shape[2:]).reshape(x.shape), "original order"),
    (lambda x, g: x.clone(), "original order"),
    (lambda x, g: exercises.channel_shuffle_reference(x, x.shape[1] // g), "swapped"),
    (lambda x, g: x.reshape(x.shape[0], g, x.shape[1] // g, *x.shape[2:]).transpose(2, 3).reshape(x.shape),
     "transpose(1, 2), not (2, 3)"),
    (lambda x, g: x.reshape(x.shape[0], g, x.shape[1] // g, *x.shape[2:]).transpose(0, 1).reshape(x.shape),
     "batch axis 0 stays in place"),
    (_view_shuffle, "use .reshape"),
    (_in_place_shuffle, "changed x in place"),
    (lambda x, g: x.reshape(x.shape[0], g, x.shape[1] // g, *x.shape[2:]).transpose(1, 2), "reshape back"),
    (lambda x, g: exercises.channel_shuffle_reference(x, g).float(), "dtype"),
    (lambda x, g: x.flip(1), "reverses the channels"),
    (lambda x, g: exercises.channel_shuffle_reference(x, g).roll(1, dims=1), "your channel order is"),
    (_permute_all, "values moved between images or pixels"),
    (lambda x, g: exercises.channel_shuffle_reference(x, g).tolist(), "torch.tensor"),
])
def test_channel_shuffle_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_channel_shuffle(wrong), hint)


# ----------------------------------------------------------------------------- make_divisible

def test_make_divisible_reference_agrees_with_torchvision_and_the_library():
    for value, divisor in MAKE_DIVISIBLE_CASES + [(v / 4, d) for v in range(1, 400) for d in (1, 4, 8, 16)]:
        expected = _make_divisible(value, divisor)
        assert exercises.make_divisible_reference(value, divisor) == expected == A.make_divisible(value, divisor)
        assert isinstance(exercises.make_divisible_reference(value, divisor), int)


def _with_rule(rounded):
    def rule(v, d):
        r = rounded(v, d)
        return r + d if r < 0.9 * v else r
    return rule


@pytest.mark.parametrize("wrong, hint", [
    (lambda v, d: max(d, int(v + d / 2) // d * d), "10 % rule is missing"),
    (lambda v, d: (lambda r: r + d if r <= 0.9 * v else r)(max(d, int(v + d / 2) // d * d)), "not <="),
    (lambda v, d: (lambda r: r + d if v - r > 0.1 * r else r)(max(d, int(v + d / 2) // d * d)), "against VALUE"),
    (lambda v, d: int(v + d / 2) // d * d, "the minimum are missing"),
    (_with_rule(lambda v, d: max(d, round(v / d) * d)), "rounds halves to EVEN"),
    (lambda v, d: max(d, round(v / d) * d), "round() rounds halves to even"),
    (lambda v, d: round(v / d) * d, "at least divisor"),
    (_with_rule(lambda v, d: max(d, int(v // d) * d)), "NEAREST multiple (add divisor / 2"),
    (lambda v, d: max(d, int(v // d) * d), "not down, then apply the 10 % rule"),
    (lambda v, d: int(v // d) * d, "not down to 0"),
    (lambda v, d: max(d, math.ceil(v / d) * d), "not always up"),
    (lambda v, d: max(1, int(v + d / 2) // d), "not the number of multiples"),
    (lambda v, d: float(exercises.make_divisible_reference(v, d)), "wrap it in int()"),
    (lambda v, d: torch.tensor(exercises.make_divisible_reference(v, d)), "not a Python number"),
    (lambda v, d: None, "did you forget `return`"),
    (lambda v, d: exercises.make_divisible_reference(v, d) + (v == 100), "expected 104, got 105"),
])
def test_make_divisible_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_make_divisible(wrong), hint)


# ----------------------------------------------------------------------------- pareto_front

def _brute_force(costs, accuracies):
    n = len(costs)
    def dominated(i):
        return any(costs[j] <= costs[i] and accuracies[j] >= accuracies[i]
                   and (costs[j], accuracies[j]) != (costs[i], accuracies[i]) for j in range(n))
    return sorted((i for i in range(n) if not dominated(i)), key=lambda i: costs[i])


def test_pareto_front_reference_is_the_set_of_non_dominated_models():
    assert exercises.pareto_front_reference([4, 1, 3, 2, 5], [0.90, 0.70, 0.85, 0.80, 0.88]) == [1, 3, 2, 0]
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        n = int(torch.randint(1, 9, (1,), generator=g))
        pairs = list({(int(c), int(a)) for c, a in torch.randint(0, 5, (n, 2), generator=g)})   # no duplicates
        costs, accuracies = [p[0] for p in pairs], [p[1] / 4 for p in pairs]
        assert exercises.pareto_front_reference(costs, accuracies) == _brute_force(costs, accuracies)


def _dominance_front(dominates):
    def front(costs, accuracies):
        n = len(costs)
        kept = [i for i in range(n) if not any(j != i and dominates(costs[j], accuracies[j], costs[i], accuracies[i])
                                               for j in range(n))]
        return sorted(kept, key=lambda i: (costs[i], i))
    return front


def _sweep(key, keep):
    def front(costs, accuracies):
        order = sorted(range(len(costs)), key=lambda i: key(costs, accuracies, i))
        out, best, previous = [], -math.inf, None
        for i in order:
            if keep(accuracies[i], best, previous):
                out.append(i)
            best = max(best, accuracies[i])
            previous = accuracies[i]
        return out
    return front


def _sorts_in_place(costs, accuracies):
    front = exercises.pareto_front_reference(costs, accuracies)
    if isinstance(costs, list):
        costs.sort()
    return front


@pytest.mark.parametrize("wrong, hint", [
    (lambda c, a: sorted(exercises.pareto_front_reference(c, a)), "not by index"),
    (lambda c, a: exercises.pareto_front_reference(c, a)[::-1], "ASCENDING"),
    (_sweep(lambda c, a, i: c[i], lambda acc, best, prev: acc > best), "SAME cost and lower accuracy"),
    (_sweep(lambda c, a, i: (c[i], -a[i]), lambda acc, best, prev: acc >= best), "SAME accuracy"),
    (_dominance_front(lambda cj, aj, ci, ai: cj < ci and aj > ai), "ties"),
    (_dominance_front(lambda cj, aj, ci, ai: cj >= ci and aj >= ai and (cj, aj) != (ci, ai)), "LOWER cost"),
    (_dominance_front(lambda cj, aj, ci, ai: cj <= ci and aj <= ai and (cj, aj) != (ci, ai)), "HIGHER accuracy"),
    (_sweep(lambda c, a, i: (c[i], -a[i]), lambda acc, best, prev: prev is None or acc > prev), "running maximum"),
    (lambda c, a: [c[i] for i in exercises.pareto_front_reference(c, a)], "not their costs"),
    (lambda c, a: [a[i] for i in exercises.pareto_front_reference(c, a)], "not their accuracies"),
    (lambda c, a: [(c[i], a[i]) for i in exercises.pareto_front_reference(c, a)], "pairs"),
    (lambda c, a: torch.tensor(exercises.pareto_front_reference(c, a)), ".tolist()"),
    (_sorts_in_place, "changed costs in place"),
    (lambda c, a: None, "did you forget `return`"),
    (lambda c, a: list(range(len(c))), "no other costs no more"),
])
def test_pareto_front_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_pareto_front(wrong), hint)


def test_pareto_front_checker_accepts_tuples_and_numpy_ints():
    np = pytest.importorskip("numpy")
    assert exercises.check_pareto_front(lambda c, a: tuple(exercises.pareto_front_reference(c, a))).passed
    assert exercises.check_pareto_front(
        lambda c, a: [np.int64(i) for i in exercises.pareto_front_reference(c, a)]).passed


def test_pareto_cases_have_no_duplicate_models():
    for costs, accuracies in PARETO_CASES:
        assert len(set(zip(costs, accuracies))) == len(costs)


def test_pareto_front_checker_gives_the_learner_copies_of_its_cases():
    _fails_with(exercises.check_pareto_front(_sorts_in_place), "changed costs in place")
    assert PARETO_CASES[0][0] == [4, 1, 3, 2, 5]
