import json
from pathlib import Path
import math

import pytest

from course_lib import exercises


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
])
def test_conv_checker_recognises_typical_mistakes(wrong, hint):
    result = exercises.check_conv_cost(wrong)
    assert not result.passed and hint in result.message


def test_checkers_report_unimplemented_and_crashing_code():
    def todo(*args):
        raise NotImplementedError
    assert "not implemented" in exercises.check_conv_cost(todo).message
    assert "ZeroDivisionError" in exercises.check_storage_bytes(lambda m, b: 1 / 0).message


def test_storage_checker():
    assert exercises.check_storage_bytes(exercises.storage_bytes_reference).passed
    bits = lambda m, b: sum(p.numel() for p in m.parameters()) * b
    assert "divide by 8" in exercises.check_storage_bytes(bits).message
    floor = lambda m, b: sum(p.numel() * b // 8 for p in m.parameters())
    assert "UP" in exercises.check_storage_bytes(floor).message
    whole = lambda m, b: math.ceil(sum(p.numel() for p in m.parameters()) * b / 8)
    assert "per tensor" in exercises.check_storage_bytes(whole).message
    no_bias = lambda m, b: sum(math.ceil(p.numel() * b / 8) for p in m.parameters() if p.dim() > 1)
    assert "biases" in exercises.check_storage_bytes(no_bias).message


def test_result_displays():
    r = exercises.CheckResult("x", False, 0, "a < b")
    assert str(r).startswith("[FAIL]") and "&lt;" in r._repr_html_()


def test_strip_solutions_keeps_indentation_and_rejects_unbalanced_blocks():
    source = "def f(x):\n    # BEGIN SOLUTION\n    return x + 1\n    # END SOLUTION\nprint(f)"
    stripped = exercises.strip_solutions(source)
    assert "return x + 1" not in stripped
    assert "    raise NotImplementedError" in stripped and stripped.endswith("print(f)")
    compile(stripped, "<cell>", "exec")
    with pytest.raises(ValueError, match="END SOLUTION"):
        exercises.strip_solutions("# BEGIN SOLUTION\nx = 1")
    with pytest.raises(ValueError, match="BEGIN SOLUTION"):
        exercises.strip_solutions("x = 1\n# END SOLUTION")


def test_student_notebooks_are_built_from_the_course(tmp_path):
    written = exercises.build_student_notebooks("notebooks", tmp_path)
    assert written
    for path in written:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
        text = "\n".join(c["source"] for c in code)
        assert "# BEGIN SOLUTION" not in text
        original = json.loads((Path("notebooks") / path.name).read_text())
        blocks = sum(exercises.count_solution_blocks("".join(c["source"])) for c in original["cells"]
                     if c["cell_type"] == "code")
        assert text.count("raise NotImplementedError") >= blocks
    with pytest.raises(ValueError, match="out_dir"):
        exercises.build_student_notebooks("notebooks", "notebooks")


# ----------------------------------------------------------------------------- pruning checkers

import torch  # noqa: E402

from course_lib import pruning  # noqa: E402


def _topk_mask(w, k, largest=False, signed=False):
    mask = torch.ones_like(w)
    if k:
        scores = w.flatten() if signed else w.abs().flatten()
        mask.view(-1)[torch.topk(scores, k, largest=largest).indices] = 0
    return w * mask


@pytest.mark.parametrize("wrong, hint", [
    (lambda w, s: _topk_mask(w, round(s * w.numel()), largest=True), "wrong end"),
    (lambda w, s: _topk_mask(w, round(s * w.numel()), signed=True), "magnitudes"),
    (lambda w, s: _topk_mask(w, w.numel() - round(s * w.numel())), "fraction of weights set to ZERO"),
    (lambda w, s: _topk_mask(w, round(s * w.numel()) + 1 if s else 0), "off by one"),
    (lambda w, s: w if s == 0 else torch.where(
        w.abs() <= w.abs().flatten().kthvalue(round(s * w.numel())).values, torch.zeros_like(w), w), "ties"),
    (lambda w, s: w.mul_(pruning.magnitude_mask(w, s)), "changed its input"),
])
def test_magnitude_prune_checker_names_the_mistake(wrong, hint):
    assert exercises.check_magnitude_prune(lambda w, s: w * pruning.magnitude_mask(w, s)).passed
    result = exercises.check_magnitude_prune(wrong)
    assert not result.passed and hint in result.message


def _rank(scores, k, descending=True, sort=True):
    idx = torch.argsort(scores, descending=descending)[:k]
    return idx.sort().values if sort else idx


@pytest.mark.parametrize("wrong, hint", [
    (lambda w, k: _rank(w.reshape(len(w), -1).abs().sum(1), k, descending=False), "LEAST"),
    (lambda w, k: _rank(w.reshape(len(w), -1).abs().sum(1), k, sort=False), "increasing order"),
    (lambda w, k: _rank(w.reshape(len(w), -1).sum(1), k), "ABSOLUTE"),
    (lambda w, k: _rank(w.reshape(len(w), -1).norm(dim=1), k), "not the L2"),
    (lambda w, k: _rank(w.abs().sum(0), k), "rows, dim 0"),
])
def test_select_channels_checker_names_the_mistake(wrong, hint):
    assert exercises.check_select_channels(
        lambda w, k: pruning.select_channels(pruning.channel_norm(w, 1), k)).passed
    result = exercises.check_select_channels(wrong)
    assert not result.passed and hint in result.message


# ----------------------------------------------------------------------------- quantization checkers

def _q(x, s, z, b, lo=None, hi=None, rounding=torch.round, sign=1):
    s, z = torch.as_tensor(s), torch.as_tensor(z)
    if s.dim() == 1:
        s, z = s.reshape(-1, *([1] * (x.dim() - 1))), z.reshape(-1, *([1] * (x.dim() - 1)))
    lo = -(2 ** (b - 1)) if lo is None else lo(b)
    hi = 2 ** (b - 1) - 1 if hi is None else hi(b)
    return torch.clamp(rounding(x / s) + sign * z, lo, hi)


def _dq(q, s, z, sign=-1):
    s, z = torch.as_tensor(s), torch.as_tensor(z)
    if s.dim() == 1:
        s, z = s.reshape(-1, *([1] * (q.dim() - 1))), z.reshape(-1, *([1] * (q.dim() - 1)))
    return s * (q + sign * z)


@pytest.mark.parametrize("quantize, dequantize, hint", [
    (lambda x, s, z, b: _q(x, s, z, b, sign=-1), _dq, "zero-point is ADDED"),
    (lambda x, s, z, b: _q(x, s, z, b, hi=lambda b: 2 ** (b - 1)), _dq, "off by one"),
    (lambda x, s, z, b: _q(x, s, z, b, rounding=torch.floor), _dq, "truncate or floor"),
    (lambda x, s, z, b: torch.clamp(torch.round(x / s) + z, -2 ** (b - 1), 2 ** (b - 1) - 1), _dq, "per ROW"),
    (_q, lambda q, s, z: _dq(q, s, z, sign=1), "subtract the zero-point"),
])
def test_linear_quantize_checker_names_the_mistake(quantize, dequantize, hint):
    assert exercises.check_linear_quantize(_q, _dq).passed
    result = exercises.check_linear_quantize(quantize, dequantize)
    assert not result.passed and hint in result.message


def test_kmeans_checker():
    from course_lib.codebook import kmeans_quantize
    assert exercises.check_kmeans_quantize(lambda w, b: tuple(kmeans_quantize(w, b))).passed
    one_centroid_per_bit = lambda w, b: (torch.linspace(w.min(), w.max(), b), torch.zeros_like(w, dtype=torch.long))
    assert "2**bits" in exercises.check_kmeans_quantize(one_centroid_per_bit).message

    def no_update(w, b):
        c = torch.linspace(w.min().item(), w.max().item(), 2 ** b)
        return c, (w.reshape(-1, 1) - c).abs().argmin(1).reshape(w.shape)
    assert "mean of its weights" in exercises.check_kmeans_quantize(no_update).message
    flat = lambda w, b: (kmeans_quantize(w, b).centroids, kmeans_quantize(w, b).indices.reshape(-1))
    assert "reshape" in exercises.check_kmeans_quantize(flat).message
