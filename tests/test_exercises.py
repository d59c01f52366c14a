import copy
import math

import pytest
import torch
from torch import nn

from course_lib import exercises
from course_lib.exercises import checking


def _todo(*args, **kwargs):
    raise NotImplementedError


def _fails_with(result, hint):
    assert result.status == "fail", result
    assert hint in result.message, result.message


# ----------------------------------------------------------------------------- results and the fallback

def test_result_statuses_display_distinctly():
    ok = exercises.CheckResult("x", "pass", 3, "fine")
    bad = exercises.CheckResult("x", "fail", 0, "a < b")
    todo = checking.not_attempted("x")
    assert ok.passed and not bad.passed and not todo.passed
    assert str(ok).startswith("[PASS]") and str(bad).startswith("[FAIL]")
    assert str(todo).startswith("[NOT ATTEMPTED]") and "uses the reference" in str(todo)
    assert "&lt;" in bad._repr_html_() and "NOT ATTEMPTED" in todo._repr_html_()
    assert exercises.CheckResult("x", False, 0, "old style").status == "fail"
    assert exercises.CheckResult("x", True, 1, "old style").passed
    with pytest.raises(ValueError, match="status"):
        exercises.CheckResult("x", "maybe", 0, "")


def test_assert_no_failures_allows_not_attempted_and_lists_failures():
    ok = exercises.CheckResult("a", "pass", 1, "fine")
    todo = checking.not_attempted("b")
    assert exercises.assert_no_failures(ok, todo, ok) == 2
    with pytest.raises(AssertionError, match=r"1 exercise\(s\) failed:\n- c: wrong sign"):
        exercises.assert_no_failures(ok, exercises.CheckResult("c", "fail", 0, "wrong sign"), todo)
    with pytest.raises(TypeError, match="CheckResult"):
        exercises.assert_no_failures(True)


def test_falls_back_to_the_reference_with_one_note(capsys):
    @exercises.falls_back_to(exercises.cubic_sparsity_reference)
    def cubic_sparsity(step, total_steps, final, initial=0.0):
        raise NotImplementedError("exercise: write your solution here")

    assert cubic_sparsity(5, 10, 0.8) == exercises.cubic_sparsity_reference(5, 10, 0.8)
    assert cubic_sparsity(10, 10, 0.8, initial=0.1) == 0.8
    out = capsys.readouterr().out
    assert out.count("cubic_sparsity: not written yet - using the course's reference") == 1
    assert cubic_sparsity.__name__ == "cubic_sparsity"
    with pytest.raises(NotImplementedError):
        cubic_sparsity.learner_function(1, 2, 0.5)
    assert exercises.check_cubic_sparsity(cubic_sparsity).status == "not attempted"


def test_falls_back_to_runs_the_learners_code_once_written(capsys):
    @exercises.falls_back_to(exercises.cubic_sparsity_reference)
    def cubic_sparsity(step, total_steps, final, initial=0.0):
        return 0.5                                            # wrong, but the learner's own
    assert cubic_sparsity(1, 2, 0.9) == 0.5 and capsys.readouterr().out == ""
    assert exercises.check_cubic_sparsity(cubic_sparsity).status == "fail"

    @exercises.falls_back_to(exercises.cubic_sparsity_reference)
    def crashing(step, total_steps, final, initial=0.0):
        return 1 / 0
    with pytest.raises(ZeroDivisionError):                    # a real bug is not hidden
        crashing(1, 2, 0.9)


class _PartialObserver:
    """Written __init__ and __call__, qparams still a stub."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return x

    def qparams(self, bits=8):
        raise NotImplementedError


def test_falls_back_to_on_a_class(capsys):
    Observer = exercises.falls_back_to(exercises.MinMaxObserverReference)(_PartialObserver)
    obs = Observer()
    x = torch.tensor([-1.0, 3.0])
    assert obs(x) is x and obs(torch.tensor([0.5])) is not None
    assert obs.calls == 2 and capsys.readouterr().out == ""   # the learner's object answers
    reference = exercises.MinMaxObserverReference()
    reference(x)
    assert obs.qparams(8) == reference.qparams(8)             # the reference saw every call
    assert "not written yet" in capsys.readouterr().out
    assert Observer.learner_class is _PartialObserver
    assert exercises.check_minmax_observer(Observer).status == "not attempted"

    class Stub:
        def __init__(self):
            raise NotImplementedError
    StubObserver = exercises.falls_back_to(exercises.MinMaxObserverReference)(Stub)
    obs = StubObserver()
    obs(torch.tensor([0.0, 2.0]))
    assert obs.qparams(8) == pytest.approx((2 / 255, 0))
    assert exercises.check_minmax_observer(StubObserver).status == "not attempted"


def test_call_learner_function_turns_errors_into_failures():
    def buggy(w, k):
        scores = w.sum(1)
        return scores[k + 10]
    got, failure = exercises.call_learner_function(buggy, (torch.ones(2, 2), 1), "demo", case="w=ones, k=1")
    assert got is None and failure.status == "fail"
    assert "IndexError" in failure.message and "w=ones, k=1" in failure.message
    assert "`return scores[k + 10]`" in failure.message
    _, failure = exercises.call_learner_function(_todo, (1,), "demo")
    assert failure.status == "not attempted"
    _, failure = exercises.call_learner_function(lambda: {}["x"], (), "demo", hints={"KeyError": "use .get"})
    assert "Hint: use .get" in failure.message


def test_call_learner_function_stops_an_endless_loop(monkeypatch):
    monkeypatch.setattr(checking, "TIME_LIMIT_S", 0.1)

    def forever():
        while True:
            pass
    _, failure = exercises.call_learner_function(forever, (), "demo")
    assert failure.status == "fail" and "loop that never ends" in failure.message


def test_check_returned_names_the_problem():
    where = "for a case"
    codes = torch.zeros(2, dtype=torch.long)
    assert exercises.check_returned(codes, "x", where, dtype="integer", shape=(2,)) is None
    _fails_with(exercises.check_returned(None, "x", where), "did you forget `return`?")
    _fails_with(exercises.check_returned([1, 2], "x", where), "torch.tensor(")
    _fails_with(exercises.check_returned(torch.tensor(0.5), "x", where, (float, int)), ".item()")
    _fails_with(exercises.check_returned(torch.zeros(2), "x", where, dtype="integer"), "INTEGER tensor")
    _fails_with(exercises.check_returned(torch.zeros(2), "x", where, dtype=torch.float64), "float64")
    _fails_with(exercises.check_returned(torch.zeros(2), "x", where, shape=(1, 2)), "shape (1, 2)")
    _fails_with(exercises.check_returned(True, "x", where, int), "an int")


def test_a_checker_never_raises():
    @checking.checker("demo")
    def check(fn):
        return fn()[3]
    _fails_with(check(lambda: [1]), "could not compare your answer")


# ----------------------------------------------------------------------------- notebook 00

def test_conv_checker_passes_the_reference():
    assert exercises.check_conv_cost(exercises.conv_cost_reference).passed


@pytest.mark.parametrize("wrong, hint", [
    (lambda ci, co, k, h, w, s=1, p=0: exercises.conv_cost_reference(ci, co, k, h, w, s, p)[0:1] +
     (co * ci * k * k,), "bias"),
    (lambda ci, co, k, h, w, s=1, p=0: (h * w * co * ci * k * k,
     exercises.conv_cost_reference(ci, co, k, h, w, s, p)[1]), "OUTPUT size"),
    (lambda ci, co, k, h, w, s=1, p=0: (2 * exercises.conv_cost_reference(ci, co, k, h, w, s, p)[0],
     exercises.conv_cost_reference(ci, co, k, h, w, s, p)[1]), "not FLOPs"),
    (lambda ci, co, k, h, w, s=1, p=0: exercises.conv_cost_reference(ci, co, k, h, w, 1, p), "stride"),
    (lambda ci, co, k, h, w, s=1, p=0: exercises.conv_cost_reference(ci, co, k, h, w, s, 0), "padding"),
    (lambda ci, co, k, h, w, s=1, p=0: (((h + 2 * p - k) / s + 1) * ((w + 2 * p - k) / s + 1) * co * ci * k * k,
     co * ci * k * k + co), "floor division //"),
    (lambda *args: None, "did you forget `return`"),
    (lambda *args: 3.0, "a tuple or a list"),
    (lambda *args: (1, 2, 3), "two numbers"),
])
def test_conv_checker_recognises_typical_mistakes(wrong, hint):
    _fails_with(exercises.check_conv_cost(wrong), hint)


def test_checkers_report_unimplemented_and_crashing_code():
    assert exercises.check_conv_cost(_todo).status == "not attempted"
    assert "not attempted yet" in exercises.check_conv_cost(_todo).message
    assert "ZeroDivisionError" in exercises.check_storage_bytes(lambda m, b: 1 / 0).message


@pytest.mark.parametrize("wrong, hint", [
    (lambda m, b: sum(p.numel() for p in m.parameters()) * b, "divide by 8"),
    (lambda m, b: sum(p.numel() * b // 8 for p in m.parameters()), "UP"),
    (lambda m, b: sum(p.numel() * b / 8 for p in m.parameters()), "partial byte"),
    (lambda m, b: math.ceil(sum(p.numel() for p in m.parameters()) * b / 8), "per tensor"),
    (lambda m, b: sum(math.ceil(p.numel() * b / 8) for p in m.parameters() if p.dim() > 1), "biases"),
    (lambda m, b: None, "did you forget `return`"),
    (lambda m, b: sum(math.ceil(t.numel() * b / 8) for t in m.state_dict().values()), "not model.state_dict()"),
    (lambda m, b: exercises.storage_bytes_reference(m, b) + sum(math.ceil(t.numel() * b / 8) for t in m.buffers()),
     "BatchNorm's"),
    (lambda m, b: torch.tensor(exercises.storage_bytes_reference(m, b)), ".item()"),
    (lambda m, b: m.apply(lambda l: l.weight.data.zero_() if isinstance(l, nn.Linear) else None) and
     exercises.storage_bytes_reference(m, b), "changed the model in place"),
])
def test_storage_checker_recognises_typical_mistakes(wrong, hint):
    assert exercises.check_storage_bytes(exercises.storage_bytes_reference).passed
    _fails_with(exercises.check_storage_bytes(wrong), hint)


# ----------------------------------------------------------------------------- notebook 01: magnitude_prune

def _topk_mask(w, k, largest=False, signed=False):
    mask = torch.ones_like(w)
    if k:
        scores = w.flatten() if signed else w.abs().flatten()
        mask.view(-1)[torch.topk(scores, k, largest=largest).indices] = 0
    return w * mask


def test_magnitude_prune_reference_agrees_with_the_library():
    from course_lib.pruning import magnitude_mask
    w = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    for s in (0.0, 0.26, 0.5, 0.9):
        assert torch.equal(exercises.magnitude_prune_reference(w, s), w * magnitude_mask(w, s))
    assert exercises.check_magnitude_prune(exercises.magnitude_prune_reference).passed


@pytest.mark.parametrize("wrong, hint", [
    (lambda w, s: _topk_mask(w, round(s * w.numel()), largest=True), "wrong end"),
    (lambda w, s: _topk_mask(w, round(s * w.numel()), signed=True), "magnitudes"),
    (lambda w, s: _topk_mask(w, w.numel() - round(s * w.numel())), "fraction of weights set to ZERO"),
    (lambda w, s: _topk_mask(w, round(s * w.numel()) + 1 if s else 0), "off by one"),
    (lambda w, s: _topk_mask(w, int(s * w.numel())), "round DOWN"),
    (lambda w, s: _topk_mask(w, math.ceil(s * w.numel() - 1e-9)), "rounds UP"),
    (lambda w, s: w if s == 0 else torch.where(
        w.abs() <= w.abs().flatten().kthvalue(round(s * w.numel())).values, torch.zeros_like(w), w), "ties"),
    (lambda w, s: w.copy_(exercises.magnitude_prune_reference(w, s)), "changed its input"),
    (lambda w, s: None, "did you forget `return`"),
    (lambda w, s: exercises.magnitude_prune_reference(w, s).float(), "dtype torch.float64"),
    (lambda w, s: exercises.magnitude_prune_reference(w, s).flatten(), "shape"),
    (lambda w, s: (exercises.magnitude_prune_reference(w, s) != 0).to(w.dtype), "that is the mask"),
    (lambda w, s: exercises.magnitude_prune_reference(w, s).tolist(), "expected a tensor"),
    (lambda w, s: exercises.magnitude_prune_reference(w, s) * 2, "kept weights changed"),
])
def test_magnitude_prune_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_magnitude_prune(wrong), hint)


# ----------------------------------------------------------------------------- cubic_sparsity

def test_cubic_sparsity_reference_agrees_with_the_library():
    from course_lib.pruning import cubic_sparsity
    for case in checking_cases():
        assert exercises.cubic_sparsity_reference(*case) == pytest.approx(cubic_sparsity(*case))
    assert exercises.check_cubic_sparsity(exercises.cubic_sparsity_reference).passed


def checking_cases():
    from course_lib.exercises.pruning import _CUBIC_CASES
    return _CUBIC_CASES


@pytest.mark.parametrize("wrong, hint", [
    (lambda t, n, f, i=0.0: i + (f - i) * (t / n) ** 3, "starts slowly"),
    (lambda t, n, f, i=0.0: f * (t / n) ** 3, "starts slowly"),
    (lambda t, n, f, i=0.0: i + (f - i) * t / n, "linear schedule"),
    (lambda t, n, f, i=0.0: i + (f - i) * (1 - t / n) ** 3, "swapped"),
    (lambda t, n, f, i=0.0: f + (i - f) * (1 - t // n) ** 3, "integer division"),
    (lambda t, n, f, i=0.0: f + (i - f) * (1 - (t + 1) / n) ** 3, "never exceeds `final`"),
    (lambda t, n, f, i=0.0: f * (1 - (1 - t / n) ** 3), "`initial` is ignored"),
    (lambda t, n, f, i=0.0: torch.tensor(f + (i - f) * (1 - t / n) ** 3), ".item()"),
    (lambda t, n, f, i=0.0: None, "did you forget `return`"),
])
def test_cubic_sparsity_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_cubic_sparsity(wrong), hint)


# ----------------------------------------------------------------------------- select_channels

def _rank(scores, k, descending=True, sort=True):
    idx = torch.argsort(scores, descending=descending)[:k]
    return idx.sort().values if sort else idx


@pytest.mark.parametrize("wrong, hint", [
    (lambda w, k: _rank(w.reshape(len(w), -1).abs().sum(1), k, descending=False), "LEAST"),
    (lambda w, k: _rank(w.reshape(len(w), -1).abs().sum(1), k, sort=False), "increasing order"),
    (lambda w, k: _rank(w.reshape(len(w), -1).sum(1), k), "ABSOLUTE"),
    (lambda w, k: _rank(w.reshape(len(w), -1).norm(dim=1), k), "not the L2"),
    (lambda w, k: _rank(w.abs().sum(0), k), "rows, dim 0"),
    (lambda w, k: None, "did you forget `return`"),
    (lambda w, k: torch.topk(w.reshape(len(w), -1).abs().sum(1), k).values, "not the scores/values"),
    (lambda w, k: torch.isin(torch.arange(len(w)), exercises.select_channels_reference(w, k)), "boolean mask"),
    (lambda w, k: exercises.select_channels_reference(w.abs_(), k), "changed its input"),
    (lambda w, k: exercises.select_channels_reference(w, k).tolist(), "torch.tensor("),
    (lambda w, k: exercises.select_channels_reference(w, k)[None], "shape"),
])
def test_select_channels_checker_names_the_mistake(wrong, hint):
    assert exercises.check_select_channels(exercises.select_channels_reference).passed
    _fails_with(exercises.check_select_channels(wrong), hint)


# ----------------------------------------------------------------------------- remove_channels

_ref_remove = exercises.remove_channels_reference


def _buffers_reset(conv, bn, next_conv, keep):
    c, b, n = _ref_remove(conv, bn, next_conv, keep)
    b.running_mean.zero_()
    b.running_var.fill_(1.0)
    return c, b, n


def _buffers_whole(conv, bn, next_conv, keep):
    c, b, n = _ref_remove(conv, bn, next_conv, keep)
    b.running_mean = bn.running_mean.clone()
    return c, b, n


def _next_outputs_sliced(conv, bn, next_conv, keep):
    c, b, _ = _ref_remove(conv, bn, next_conv, keep)
    n = nn.Conv2d(next_conv.in_channels, len(keep), next_conv.kernel_size, padding=next_conv.padding)
    n.weight.data.copy_(next_conv.weight.detach()[keep])
    return c, b, n


def _bias_whole(conv, bn, next_conv, keep):
    c, b, n = _ref_remove(conv, bn, next_conv, keep)
    if conv.bias is not None:
        c.bias = nn.Parameter(conv.bias.detach().clone())
    return c, b, n


def _stride_lost(conv, bn, next_conv, keep):
    _, b, n = _ref_remove(conv, bn, next_conv, keep)
    c = nn.Conv2d(conv.in_channels, len(keep), conv.kernel_size, bias=conv.bias is not None)
    c.weight.data.copy_(conv.weight.detach()[keep])
    if conv.bias is not None:
        c.bias.data.copy_(conv.bias.detach()[keep])
    return c, b, n


def _in_place(conv, bn, next_conv, keep):
    c, b, n = _ref_remove(conv, bn, next_conv, keep)
    conv.weight = c.weight
    conv.out_channels = len(keep)
    return c, b, n


def _mask_for_bn(conv, bn, next_conv, keep):
    c, b, n = _ref_remove(conv, bn, next_conv, keep)
    mask = torch.zeros(bn.num_features, dtype=torch.bool)
    mask[keep] = True                               # a mask takes the channels in sorted order
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(b, name).data.copy_(getattr(bn, name).detach()[mask])
    return c, b, n


@pytest.mark.parametrize("wrong, hint", [
    (_buffers_reset, "copy the running statistics of the KEPT channels"),
    (_buffers_whole, "buffers, not parameters"),
    (_next_outputs_sliced, "INPUTS"),
    (lambda conv, bn, next_conv, keep: (_ref_remove(conv, bn, next_conv, keep)[:2] +
                                        (nn.Conv2d(6, 4, 3, padding=1).eval(),)),
     "next_conv's weight must have shape"),
    (_bias_whole, "slice conv's bias too"),
    (_stride_lost, "stride was lost"),
    (_in_place, "changed the given conv in place"),
    (_mask_for_bn, "keep was given unsorted"),
    (lambda conv, bn, next_conv, keep: (conv, bn, next_conv), "returned one of the given modules"),
    (lambda conv, bn, next_conv, keep: None, "did you forget `return`"),
    (lambda conv, bn, next_conv, keep: _ref_remove(conv, bn, next_conv, keep)[:2], "three modules"),
])
def test_remove_channels_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_remove_channels(wrong), hint)


def test_remove_channels_checker_passes_the_reference_and_deepcopy_solutions():
    assert exercises.check_remove_channels(_ref_remove).passed

    def by_deepcopy(conv, bn, next_conv, keep):      # another correct way: copy, then slice
        conv, bn, next_conv = copy.deepcopy((conv, bn, next_conv))
        conv.weight = nn.Parameter(conv.weight.detach()[keep])
        if conv.bias is not None:
            conv.bias = nn.Parameter(conv.bias.detach()[keep])
        conv.out_channels = len(keep)
        bn.weight, bn.bias = nn.Parameter(bn.weight.detach()[keep]), nn.Parameter(bn.bias.detach()[keep])
        bn.running_mean, bn.running_var = bn.running_mean[keep], bn.running_var[keep]
        bn.num_features = len(keep)
        next_conv.weight = nn.Parameter(next_conv.weight.detach()[:, keep])
        next_conv.in_channels = len(keep)
        return conv, bn, next_conv
    assert exercises.check_remove_channels(by_deepcopy).passed


# ----------------------------------------------------------------------------- choose_sparsities

def _stop_at_first_failure(scan, baseline, drop):
    out = {}
    for layer, points in scan.items():
        out[layer] = 0.0
        for s, accuracy in sorted(points):
            if accuracy < baseline - drop:
                break
            out[layer] = s
    return out


def _last_qualifying(scan, baseline, drop):
    return {layer: ([s for s, a in points if a >= baseline - drop] or [0.0])[-1] for layer, points in scan.items()}


def _sorts_in_place(scan, baseline, drop):
    for points in scan.values():
        points.sort()
    return exercises.choose_sparsities_reference(scan, baseline, drop)


@pytest.mark.parametrize("wrong, hint", [
    (lambda scan, b, d: {l: max([s for s, a in p if a > b - d], default=0.0) for l, p in scan.items()}, "use >="),
    (lambda scan, b, d: {l: max([s for s, a in p if a >= b * (1 - d)], default=0.0) for l, p in scan.items()},
     "absolute accuracy points"),
    (_last_qualifying, "not sorted by sparsity"),
    (_stop_at_first_failure, "first sparsity that fails"),
    (_sorts_in_place, "points.sort() sorts the caller's list in place"),
    (lambda scan, b, d: {l: max([s for s, a in p if a >= b - d], default=None) for l, p in scan.items()},
     "got None"),
    (lambda scan, b, d: {l: max(s for s, a in p if a >= b - d) for l, p in scan.items()}, "default=0.0"),
    (lambda scan, b, d: list(exercises.choose_sparsities_reference(scan, b, d).values()), "expected a dict"),
    (lambda scan, b, d: {l: 0.5 for l in list(scan)[:1]}, "one entry per layer"),
])
def test_choose_sparsities_checker_names_the_mistake(wrong, hint):
    assert exercises.check_choose_sparsities(exercises.choose_sparsities_reference).passed
    _fails_with(exercises.check_choose_sparsities(wrong), hint)


# ----------------------------------------------------------------------------- notebook 02: linear quantize

def _q(x, s, z, b, lo=None, hi=None, rounding=torch.round, sign=1):
    s, z = torch.as_tensor(s), torch.as_tensor(z)
    if s.dim() == 1:
        s, z = s.reshape(-1, *([1] * (x.dim() - 1))), z.reshape(-1, *([1] * (x.dim() - 1)))
    lo = -(2 ** (b - 1)) if lo is None else lo(b)
    hi = 2 ** (b - 1) - 1 if hi is None else hi(b)
    return torch.clamp(rounding(x / s) + sign * z, lo, hi).long()


def _dq(q, s, z, sign=-1):
    s, z = torch.as_tensor(s), torch.as_tensor(z)
    if s.dim() == 1:
        s, z = s.reshape(-1, *([1] * (q.dim() - 1))), z.reshape(-1, *([1] * (q.dim() - 1)))
    return s * (q + sign * z)


def test_linear_quantize_references_agree_with_the_library():
    from course_lib.quantization import QParams, dequantize, quantize
    x = torch.tensor([[-1.0, -0.26, 0.0], [0.24, 0.7, 2.0]])
    scale, zero_point = torch.tensor([0.01, 0.03]), torch.tensor([-10, 3])
    p = QParams(scale, zero_point, -128, 127, 0)
    q = exercises.linear_quantize_reference(x, scale, zero_point, 8)
    assert torch.equal(q, quantize(x, p))
    assert torch.allclose(exercises.linear_dequantize_reference(q, scale, zero_point), dequantize(q, p))
    assert exercises.check_linear_quantize(exercises.linear_quantize_reference,
                                           exercises.linear_dequantize_reference).passed
    assert exercises.check_linear_quantize(_q, _dq).passed


@pytest.mark.parametrize("quantize, dequantize, hint", [
    (lambda x, s, z, b: _q(x, s, z, b, sign=-1), _dq, "zero-point is ADDED"),
    (lambda x, s, z, b: _q(x, s, z, b, hi=lambda b: 2 ** (b - 1)), _dq, "off by one"),
    (lambda x, s, z, b: _q(x, s, z, b, rounding=torch.floor), _dq, "truncate or floor"),
    (lambda x, s, z, b: _q(x, s, z, b, rounding=lambda v: torch.floor(v + 0.5)), _dq, "half to EVEN"),
    (lambda x, s, z, b: _q(x, s, z, b, rounding=lambda v: torch.sign(v) * torch.floor(v.abs() + 0.5)), _dq,
     "half to EVEN"),
    (lambda x, s, z, b: torch.clamp(torch.round(x / s) + z, -2 ** (b - 1), 2 ** (b - 1) - 1).long(), _dq,
     "per ROW"),
    (lambda x, s, z, b: _q(x, s, z, b).float(), _dq, "INTEGER tensor"),
    (lambda x, s, z, b: _q(x.div_(1.0).mul_(2.0), s, z, b), _dq, "x /= scale"),
    (lambda x, s, z, b: None, _dq, "did you forget `return`"),
    (_q, lambda q, s, z: _dq(q, s, z, sign=1), "subtract the zero-point"),
    (_q, lambda q, s, z: _dq(q, s, z).double(), "must be float32"),
    (_q, lambda q, s, z: q - z, "must be a float tensor"),
    (_q, lambda q, s, z: q.sub_(z) * s, "q -= zero_point"),
    (_q, _todo, "not attempted yet"),
])
def test_linear_quantize_checker_names_the_mistake(quantize, dequantize, hint):
    result = exercises.check_linear_quantize(quantize, dequantize)
    assert not result.passed and hint in result.message, result


# ----------------------------------------------------------------------------- MinMaxObserver

def test_observer_reference_agrees_with_choose_qparams():
    from course_lib.quantization import choose_qparams
    for lo, hi, bits in [(-1.0, 3.0, 8), (0.25, 3.5, 4), (-2.0, -0.5, 8), (0.0, 0.0, 8)]:
        obs = exercises.MinMaxObserverReference()
        obs(torch.tensor([lo, hi]))
        scale, zero_point = obs.qparams(bits)
        p = choose_qparams(lo, hi, bits)
        assert scale == pytest.approx(p.scale.item(), rel=1e-6) and zero_point == p.zero_point.item()
        assert isinstance(scale, float) and isinstance(zero_point, int)
    assert exercises.check_minmax_observer(exercises.MinMaxObserverReference).passed


class _Observer:
    """A configurable observer with one mistake at a time."""
    last_only = widen = trunc = float_zero = no_floor = signed = in_place = no_return = False

    def __init__(self):
        self.lo, self.hi = math.inf, -math.inf

    def __call__(self, x):
        lo, hi = x.min().item(), x.max().item()
        self.lo, self.hi = (lo, hi) if self.last_only else (min(self.lo, lo), max(self.hi, hi))
        if self.in_place:
            x.clamp_(min=0)
        return None if self.no_return else x

    def qparams(self, bits=8):
        lo, hi = (self.lo, self.hi) if self.widen else (min(self.lo, 0.0), max(self.hi, 0.0))
        qmin, qmax = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if self.signed else (0, 2 ** bits - 1)
        scale = (hi - lo) / (qmax - qmin)
        scale = scale if self.no_floor else max(scale, 1e-8)
        if self.float_zero:
            return scale, qmin - lo / scale
        zero_point = qmin - (math.trunc(lo / scale) if self.trunc else round(lo / scale))
        return scale, int(min(max(zero_point, qmin), qmax))


@pytest.mark.parametrize("mistake, hint", [
    ("last_only", "over ALL calls"), ("widen", "include 0"), ("trunc", "do not truncate"),
    ("float_zero", "zero_point must be an int"), ("no_floor", "floor the scale"), ("signed", "UNSIGNED"),
    ("in_place", "clamp_ and other in-place ops"), ("no_return", "return x unchanged"),
])
def test_observer_checker_names_the_mistake(mistake, hint):
    wrong = type("Wrong", (_Observer,), {mistake: True})
    _fails_with(exercises.check_minmax_observer(wrong), hint)


def test_observer_checker_without_qparams():
    class NoQparams:
        def __call__(self, x):
            return x
    _fails_with(exercises.check_minmax_observer(NoQparams), "no method qparams")


# ----------------------------------------------------------------------------- integer_linear

def test_integer_linear_reference_agrees_with_the_library():
    from course_lib.exercises.quantization import _integer_cases
    from course_lib.quantization import QParams, integer_linear
    for x_q, s_x, z_x, w_q, s_w, bias, s_y, z_y in _integer_cases():
        per_channel = isinstance(s_w, torch.Tensor)
        ours = exercises.integer_linear_reference(x_q, s_x, z_x, w_q, s_w, bias, s_y, z_y)
        theirs = integer_linear(x_q, QParams(torch.tensor(s_x), torch.tensor(z_x), 0, 255), w_q,
                                QParams(torch.as_tensor(s_w), torch.zeros(len(w_q) if per_channel else (),
                                        dtype=torch.long), -127, 127, 0 if per_channel else None),
                                bias, QParams(torch.tensor(s_y), torch.tensor(z_y), 0, 255))
        assert (ours - theirs).abs().max() <= 1
    assert exercises.check_integer_linear(exercises.integer_linear_reference).passed


def _integer(x_q, s_x, z_x, w_q, s_w, bias, s_y, z_y, *, subtract_zero=True, bias_scale=None, clamp=True,
             add_zero=True, axis_wrong=False, dtype=torch.int64, in_place=False):
    s_w = torch.as_tensor(s_w, dtype=torch.float64)
    if axis_wrong and s_w.dim() == 1:
        s_w = s_w.reshape(-1, 1)
    if in_place:
        x_q.sub_(z_x)
    acc = ((x_q - z_x) if subtract_zero and not in_place else x_q) @ w_q.T
    s_xw = s_x * s_w
    if bias is not None:
        acc = acc + torch.round(bias / (s_xw if bias_scale is None else bias_scale))
    y = torch.round(acc * (s_xw / s_y)) + (z_y if add_zero else 0)
    return (torch.clamp(y, 0, 255) if clamp else y).to(dtype)


@pytest.mark.parametrize("options, hint", [
    (dict(subtract_zero=False), "subtract x_zero_point"),
    (dict(bias_scale="y"), "not with y_scale"),
    (dict(clamp=False), "clamp the output codes"),
    (dict(add_zero=False), "add y_zero_point"),
    (dict(axis_wrong=True), "(1, out)"),
    (dict(dtype=torch.float32), "INTEGER tensor"),
    (dict(in_place=True), "x_q -= x_zero_point"),
])
def test_integer_linear_checker_names_the_mistake(options, hint):
    def wrong(x_q, s_x, z_x, w_q, s_w, bias, s_y, z_y):
        bias_scale = s_y if options.get("bias_scale") == "y" else None
        return _integer(x_q, s_x, z_x, w_q, s_w, bias, s_y, z_y, **{**options, "bias_scale": bias_scale})
    _fails_with(exercises.check_integer_linear(wrong), hint)


def test_integer_linear_checker_bias_in_real_units_and_none():
    def real_bias(x_q, s_x, z_x, w_q, s_w, bias, s_y, z_y):
        y = _integer(x_q, s_x, z_x, w_q, s_w, None, s_y, z_y, clamp=False).double()
        return torch.clamp(y + (0 if bias is None else torch.round(bias.double())), 0, 255).long()
    _fails_with(exercises.check_integer_linear(real_bias), "the bias is a real number")
    _fails_with(exercises.check_integer_linear(lambda *args: None), "did you forget `return`")


# ----------------------------------------------------------------------------- kmeans_quantize

def test_kmeans_reference_agrees_with_the_library():
    from course_lib.codebook import kmeans_quantize
    w = torch.randn(6, 5, generator=torch.Generator().manual_seed(2))
    centroids, indices = exercises.kmeans_quantize_reference(w, 2)
    theirs = kmeans_quantize(w, 2)
    assert torch.allclose(centroids, theirs.centroids, atol=1e-6) and torch.equal(indices, theirs.indices)
    assert exercises.check_kmeans_quantize(exercises.kmeans_quantize_reference).passed
    assert exercises.check_kmeans_quantize(lambda w, b: tuple(kmeans_quantize(w, b))).passed


def _nan_for_empty(w, bits):
    x = w.reshape(-1)
    c = torch.linspace(x.min().item(), x.max().item(), 2 ** bits)
    for _ in range(20):
        idx = (x[:, None] - c).abs().argmin(1)
        c = torch.stack([x[idx == j].mean() for j in range(len(c))])     # NaN for an empty cluster
    return c, (x[:, None] - c).abs().argmin(1).reshape(w.shape)


def _no_update(w, b):
    c = torch.linspace(w.min().item(), w.max().item(), 2 ** b)
    return c, (w.reshape(-1, 1) - c).abs().argmin(1).reshape(w.shape)


def _drops_empty(w, b):
    c, i = exercises.kmeans_quantize_reference(w, b)
    used = i.unique()
    return c[used], torch.searchsorted(used, i)


def _writes_w(w, b):
    out = exercises.kmeans_quantize_reference(w, b)
    w.view(-1)[0] += 1
    return out


@pytest.mark.parametrize("wrong, hint", [
    (lambda w, b: (torch.linspace(w.min(), w.max(), b), torch.zeros_like(w, dtype=torch.long)), "2**bits"),
    (_no_update, "mean of its weights"),
    (lambda w, b: (lambda c, i: (c, i.reshape(-1)))(*exercises.kmeans_quantize_reference(w, b)), "reshape"),
    (_nan_for_empty, "empty"),
    (_drops_empty, "keep empty clusters"),
    (lambda w, b: (lambda c, i: (c, i.float()))(*exercises.kmeans_quantize_reference(w, b)), "INTEGER"),
    (_writes_w, "changed w in place"),
    (lambda w, b: None, "did you forget `return`"),
])
def test_kmeans_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_kmeans_quantize(wrong), hint)


# ----------------------------------------------------------------------------- bits_for_budget

def _greedy(sensitivity, sizes, budget, nbytes=lambda n, b: -(-n * b // 8), per_byte=True, tie_last=False,
            raise_if_impossible=True, steps=None):
    choice = {layer: max(acc) for layer, acc in sensitivity.items()}
    done = 0
    while sum(nbytes(sizes[l], b) for l, b in choice.items()) > budget and (steps is None or done < steps):
        best = None
        for layer, b in choice.items():
            lower = [c for c in sensitivity[layer] if c < b]
            if not lower:
                continue
            nb = max(lower)
            loss = sensitivity[layer][b] - sensitivity[layer][nb]
            cost = loss / max(nbytes(sizes[layer], b) - nbytes(sizes[layer], nb), 1) if per_byte else loss
            if best is None or cost < best[0] or (tie_last and cost == best[0]):
                best = (cost, layer, nb)
        if best is None:
            if raise_if_impossible:
                raise ValueError("budget cannot be met")
            return choice
        choice[best[1]] = best[2]
        done += 1
    return choice


def _one_bit_down(sensitivity, sizes, budget):
    choice = {layer: max(acc) for layer, acc in sensitivity.items()}
    while sum(-(-sizes[l] * b // 8) for l, b in choice.items()) > budget:
        layer = next(iter(choice))
        choice[layer] = sensitivity[layer][choice[layer] - 1]
    return choice


def _starts_at_8(sensitivity, sizes, budget):
    choice = exercises.bits_for_budget_reference(sensitivity, sizes, budget)
    return {layer: 8 if b == max(sensitivity[layer]) else b for layer, b in choice.items()}


def _pops(sensitivity, sizes, budget):
    result = exercises.bits_for_budget_reference(sensitivity, sizes, budget)
    for acc in sensitivity.values():
        acc.pop(min(acc))
    return result


@pytest.mark.parametrize("wrong, hint", [
    (lambda s, n, b: _greedy(s, n, b, nbytes=lambda n, b: n * b // 8), "round UP"),
    (lambda s, n, b: _greedy(s, n, b, per_byte=False), "PER BYTE SAVED"),
    (lambda s, n, b: _greedy(s, n, b, tie_last=True), "on a tie"),
    (lambda s, n, b: _greedy(s, n, b, raise_if_impossible=False), "raise ValueError"),
    (lambda s, n, b: _greedy(s, n, b, steps=0), "over the budget"),
    (_one_bit_down, "SCANNED bits"),
    (_pops, "changed sensitivity or sizes"),
    (_starts_at_8, "one of its scanned bits"),
    (lambda s, n, b: {layer: float(v) for layer, v in exercises.bits_for_budget_reference(s, n, b).items()}, "an int"),
    (lambda s, n, b: None, "did you forget `return`"),
])
def test_bits_for_budget_checker_names_the_mistake(wrong, hint):
    assert exercises.check_bits_for_budget(exercises.bits_for_budget_reference).passed
    _fails_with(exercises.check_bits_for_budget(wrong), hint)


def test_bits_for_budget_checker_stops_an_endless_loop(monkeypatch):
    monkeypatch.setattr(checking, "TIME_LIMIT_S", 0.2)

    def endless(sensitivity, sizes, budget):
        choice = {layer: max(acc) for layer, acc in sensitivity.items()}
        while sum(-(-sizes[l] * b // 8) for l, b in choice.items()) > budget:
            best = None
            for layer, b in choice.items():
                lower = [c for c in sensitivity[layer] if c < b]
                if lower:
                    nb = max(lower)
                    saved = -(-sizes[layer] * b // 8) + (-sizes[layer] * nb // 8)
                    cost = (sensitivity[layer][b] - sensitivity[layer][nb]) / max(saved, 1)
                    if best is None or cost < best[0]:
                        best = (cost, layer, nb)
            if best is not None:                    # nothing left to lower: loops forever
                choice[best[1]] = best[2]
        return choice
    _fails_with(exercises.check_bits_for_budget(endless), "raise ValueError")


def test_every_checker_reports_not_attempted():
    for check in (exercises.check_magnitude_prune, exercises.check_cubic_sparsity, exercises.check_select_channels,
                  exercises.check_remove_channels, exercises.check_choose_sparsities,
                  exercises.check_minmax_observer, exercises.check_integer_linear,
                  exercises.check_kmeans_quantize, exercises.check_bits_for_budget, exercises.check_storage_bytes,
                  exercises.check_conv_cost):
        assert check(_todo).status == "not attempted", check
    assert exercises.check_linear_quantize(_todo, _todo).status == "not attempted"


def test_a_checker_stops_at_the_first_mistake_through_require_and_run_learner():
    from course_lib.exercises.checking import checker, failed, passed, require, run_learner

    @checker("double")
    def check_double(double):
        for x in (1, 2):
            got = run_learner(double, (x,), "double")
            require(None if got == 2 * x else failed("double", f"for x={x} expected {2 * x}, got {got}"))
        return passed("double", 2, "both cases pass")

    def unwritten(x):
        raise NotImplementedError

    def crashes(x):
        return 1 / 0

    assert check_double(lambda x: 2 * x).passed
    assert check_double(lambda x: x + 1).message == "for x=2 expected 4, got 3"     # x=1 passes, x=2 does not
    assert check_double(unwritten).status == "not attempted"
    assert "ZeroDivisionError" in check_double(crashes).message
