"""Notebook 09's checkers: each passes the reference, names the mistakes learners make, and reports an
unwritten exercise as not attempted."""
import pytest
import torch

from course_lib import exercises as E
from course_lib import language as L
from course_lib.exercises import language as X


def _groups_grid(w, bits, g, widen=True, half=True, zero_floor=False):
    groups = w.reshape(-1, g)
    lo, hi = groups.amin(1, keepdim=True), groups.amax(1, keepdim=True)
    if widen:
        lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    s = ((hi - lo) / (2 ** bits - 1)).clamp_min(1e-8)
    s = (s.half().float() if zero_floor else s.half().clamp_min(2 ** -24).float()) if half else s
    return groups, s, torch.round(-lo / s).clamp(0, 2 ** bits - 1)


def _groups(widen=True, half=True, rounding=torch.round, zero_floor=False):
    def quantize_groups(w, bits, g):
        groups, s, z = _groups_grid(w, bits, g, widen, half, zero_floor)
        codes = torch.clamp(rounding(groups / s) + z, 0, 2 ** bits - 1).nan_to_num(0)
        return codes.reshape(w.shape).to(torch.uint8), s.reshape(w.shape[0], -1).half(), z.reshape(w.shape[0], -1).to(torch.uint8)
    return quantize_groups


def _in_place(reference):
    def wrong(first, *rest):
        result = reference(first, *rest)
        first.mul_(1.001)
        return result
    return wrong


def _gptq_without_division(W, U, quantize):
    W, Q = W.clone(), torch.zeros_like(W)
    for j in range(W.shape[1]):
        Q[:, j] = quantize(W[:, j])
        W[:, j + 1:] -= (W[:, j] - Q[:, j]).unsqueeze(1) * U[j, j + 1:].unsqueeze(0)
    return Q


@pytest.mark.parametrize("check, reference", [
    (E.check_quantize_groups, E.quantize_groups_reference), (E.check_pack_int4, E.pack_int4_reference),
    (E.check_gptq_columns, E.gptq_columns_reference), (E.check_wanda_2_4_mask, E.wanda_2_4_mask_reference),
    (E.check_quantize_kv, E.quantize_kv_reference)])
def test_references_pass_and_unwritten_code_is_not_attempted(check, reference):
    assert check(reference).status == "pass"

    @E.falls_back_to(reference)
    def unwritten(*args):
        raise NotImplementedError
    assert check(unwritten).status == "not attempted"
    assert "return" in check(lambda *args: None).message


@pytest.mark.parametrize("check, wrong, fragment", [
    (E.check_quantize_groups, _groups(rounding=torch.floor), "truncated"),
    (E.check_quantize_groups, _groups(widen=False), "widened to hold 0"),
    (E.check_quantize_groups, _groups(half=False), "float16 FIRST"),
    (E.check_quantize_groups, _in_place(E.quantize_groups_reference), "in place"),
    (E.check_quantize_groups, _groups(zero_floor=True), "2**-24"),
    (E.check_pack_int4, lambda c: (c[..., 0::2] << 4) | c[..., 1::2], "LOW nibble"),
    (E.check_pack_int4, lambda c: (c[..., 0::2] | (c[..., 1::2] << 4)).long(), "torch.uint8"),
    (E.check_gptq_columns, lambda W, U, q: torch.stack([q(W[:, j]) for j in range(W.shape[1])], 1),
     "plain round-to-nearest"),
    (E.check_gptq_columns, _gptq_without_division, "divide the column's error by U[j, j]"),
    (E.check_gptq_columns, _in_place(E.gptq_columns_reference), "in place"),
    (E.check_wanda_2_4_mask, lambda w, x: X._mask_of(w.abs()), "magnitude pruning"),
    (E.check_wanda_2_4_mask, lambda w, x: X._mask_of(w.abs() * x.abs().mean(0)), "L2 norm"),
    (E.check_wanda_2_4_mask, lambda w, x: X._mask_of(-(w.abs() * x.norm(dim=0))), "HIGHEST"),
    (E.check_quantize_kv, lambda x: ((x / (x.abs().max() / 127).half().float()).round().clamp(-127, 127).to(torch.int8),
                                     (x.abs().max() / 127).half().expand(*x.shape[:-1], 1).contiguous()), "one scale per vector"),
    (E.check_quantize_kv, lambda x: ((x / (x.abs().amax(-1, keepdim=True) / 128).half().float()).round()
                                     .clamp(-127, 127).to(torch.int8), (x.abs().amax(-1, keepdim=True) / 128).half()),
     "127, not 128"),
    (E.check_quantize_kv, lambda x: (E.quantize_kv_reference(x)[0].float(), E.quantize_kv_reference(x)[1]), "torch.int8"),
    (E.check_quantize_kv, lambda x: ((x / (x.abs().amax(-1, keepdim=True) / 127).clamp_min(1e-8).half().float()).round()
                                     .clamp(-127, 127).nan_to_num(0).to(torch.int8),
                                     (x.abs().amax(-1, keepdim=True) / 127).clamp_min(1e-8).half()), "2**-24"),
])
def test_checkers_name_the_mistake(check, wrong, fragment):
    result = check(wrong)
    assert result.status == "fail" and fragment in result.message, result.message


def test_references_agree_with_the_library():
    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(E.quantize_groups_reference(w, 4, 32), L.quantize_groupwise(w, 4, 32)))
    codes = L.quantize_groupwise(w, 4, 32)[0]
    assert torch.equal(E.pack_int4_reference(codes).reshape(-1), L.pack_codes(codes, 4))
    x = torch.randn(40, 64, generator=torch.Generator().manual_seed(1))
    assert torch.equal(E.wanda_2_4_mask_reference(w, x), L.n_of_m_mask(L.wanda_scores(w, x)))
    kv = torch.randn(2, 4, 5, 32)
    assert all(torch.equal(a, b) for a, b in zip(E.quantize_kv_reference(kv), L.fake_quantize_per_token(kv, 8)))
    H = L.hessian(x)
    gptq = L.gptq_quantize(w, H, 4)
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(
        H.double() + 0.01 * H.double().diag().mean() * torch.eye(64, dtype=torch.float64))), upper=True)
    scale, zero = L.quantize_groupwise(w, 4)[1].float(), L.quantize_groupwise(w, 4)[2].float()
    # the column loop with the library's per-channel grid fixed up front reproduces the library's GPTQ
    q = E.gptq_columns_reference(w.double(), U, lambda col: ((torch.round(col.float() / scale[:, 0]) + zero[:, 0])
                                                             .clamp(0, 15) - zero[:, 0]).double() * scale[:, 0].double())
    assert torch.allclose(q.float(), L.dequantize_groupwise(*gptq), atol=1e-5)
