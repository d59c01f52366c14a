import copy

import pytest
import torch
from torch import nn

from course_lib import exercises


def _todo(*args, **kwargs):
    raise NotImplementedError


def _fails_with(result, hint):
    assert result.status == "fail", result
    assert hint in result.message, result.message


def _svd(W):
    return torch.linalg.svd(W, full_matrices=False)          # U (m, k), S (k,) descending, Vh (k, n)


def test_every_lowrank_checker_reports_not_attempted():
    for check in (exercises.check_svd_factors, exercises.check_factorize_linear, exercises.check_choose_rank,
                  exercises.check_tucker2, exercises.check_lora_forward):
        assert check(_todo).status == "not attempted", check


# ----------------------------------------------------------------------------- svd_factors

def test_svd_factors_reference_is_the_best_rank_r_approximation():
    W = torch.randn(7, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    S = torch.linalg.svdvals(W)
    for r in (1, 3, 5):
        A, B = exercises.svd_factors_reference(W, r)
        assert A.shape == (7, r) and B.shape == (r, 5)
        # Eckart-Young: the error left is the energy of the dropped singular values
        assert torch.linalg.norm(W - A @ B) ** 2 == pytest.approx((S[r:] ** 2).sum().item(), abs=1e-10)
    assert exercises.check_svd_factors(exercises.svd_factors_reference).passed


def _sigma_left(W, r):                     # Σ on the other factor: the same product
    U, S, Vh = _svd(W)
    return U[:, :r], S[:r, None] * Vh[:r]


def _sigma_split(W, r):                    # √Σ on each side: the same product
    U, S, Vh = _svd(W)
    return U[:, :r] * S[:r].sqrt(), S[:r, None].sqrt() * Vh[:r]


def _flipped_signs(W, r):
    A, B = exercises.svd_factors_reference(W, r)
    return -A, -B


@pytest.mark.parametrize("other", [_sigma_left, _sigma_split, _flipped_signs])
def test_svd_factors_checker_accepts_other_correct_factors(other):
    assert exercises.check_svd_factors(other).passed


def _factors(W, r, left=lambda U, S, r: U[:, :r] * S[:r], right=lambda S, Vh, r: Vh[:r]):
    U, S, Vh = _svd(W)
    return left(U, S, r), right(S, Vh, r)


def _overwrites_w(W, r):
    A, B = exercises.svd_factors_reference(W, r)
    W.copy_(A @ B)
    return A, B


@pytest.mark.parametrize("wrong, hint", [
    (lambda W, r: _factors(W, r, right=lambda S, Vh, r: S[:r, None] * Vh[:r]), "applied twice"),
    (lambda W, r: _factors(W, r, left=lambda U, S, r: U[:, :r]), "singular values are missing"),
    (lambda W, r: (_svd(W).Vh[:r].T * _svd(W).S[:r], _svd(W).U[:, :r].T), "U and V are swapped"),
    (lambda W, r: _factors(W, r, right=lambda S, Vh, r: Vh[:r].T), "first rank ROWS"),
    (lambda W, r: _factors(W, r, left=lambda U, S, r: U[:, -r:] * S[-r:], right=lambda S, Vh, r: Vh[-r:]),
     "SMALLEST"),
    (lambda W, r: exercises.svd_factors_reference(W, r + 1), "off by one"),
    (lambda W, r: exercises.svd_factors_reference(W, r - 1), "off by one"),
    (_overwrites_w, "changed W in place"),
    (lambda W, r: (lambda A, B: A @ B)(*exercises.svd_factors_reference(W, r)), "not their product"),
    (lambda W, r: tuple(t.float() for t in exercises.svd_factors_reference(W, r)), "dtype torch.float64"),
    (lambda W, r: exercises.svd_factors_reference(W, r)[0], "(A, B)"),
    (lambda W, r: None, "did you forget `return`"),
])
def test_svd_factors_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_svd_factors(wrong), hint)


def test_svd_factors_checker_names_a_transposed_square_product():
    from course_lib.exercises.lowrank import _svd_cases
    W, r = _svd_cases()[-1]                                   # the square case
    U, S, Vh = _svd(W)

    def transposed(W_given, rank):
        if W_given.shape[0] != W_given.shape[1]:
            return exercises.svd_factors_reference(W_given, rank)
        return Vh[:rank].T * S[:rank], U[:, :rank].T           # V Σ Uᵀ: the approximation of Wᵀ
    _fails_with(exercises.check_svd_factors(transposed), "approximates Wᵀ")


# ----------------------------------------------------------------------------- factorize_linear

def test_factorize_linear_reference_computes_the_rank_r_layer():
    layer = nn.Linear(6, 4)
    x = torch.randn(3, 6)
    small = exercises.factorize_linear_reference(layer, 2)
    A, B = exercises.svd_factors_reference(layer.weight.detach(), 2)
    assert [type(m) for m in small] == [nn.Linear, nn.Linear] and small[0].bias is None
    assert torch.allclose(small(x), x @ (A @ B).T + layer.bias, atol=1e-6)
    assert torch.allclose(exercises.factorize_linear_reference(layer, 4)(x), layer(x), atol=1e-5)  # full rank
    assert exercises.check_factorize_linear(exercises.factorize_linear_reference).passed


def test_factorize_linear_checker_accepts_a_deepcopy_solution():
    def by_deepcopy(layer, rank):
        U, S, Vh = _svd(layer.weight.detach())
        second = copy.deepcopy(layer)                          # keeps bias, dtype, out_features
        second.weight = nn.Parameter(U[:, :rank] * S[:rank])
        second.in_features = rank
        first = nn.Linear(layer.in_features, rank, bias=False, dtype=layer.weight.dtype)
        first.weight = nn.Parameter(Vh[:rank].clone())
        return nn.Sequential(first, second)
    assert exercises.check_factorize_linear(by_deepcopy).passed


def _two_layers(layer, rank, first_bias=False, second_bias=None, copy_bias=True, left=None, right=None,
                order=(0, 1), share_bias=False):
    W = layer.weight.detach()
    m, n = W.shape
    U, S, Vh = _svd(W)
    left = U[:, :rank] * S[:rank] if left is None else left(U, S, Vh, rank)
    right = Vh[:rank] if right is None else right(U, S, Vh, rank)
    first = nn.Linear(n, rank, bias=first_bias, dtype=W.dtype)
    second = nn.Linear(rank, m, bias=layer.bias is not None if second_bias is None else second_bias, dtype=W.dtype)
    first.weight, second.weight = nn.Parameter(right.clone()), nn.Parameter(left.clone())
    if share_bias:
        second.bias = layer.bias
    elif copy_bias and second.bias is not None:
        with torch.no_grad():
            second.bias.copy_(layer.bias)
    layers = (first, second)
    return nn.Sequential(layers[order[0]], layers[order[1]])


def _modifies_layer(layer, rank):
    small = exercises.factorize_linear_reference(layer, rank)
    with torch.no_grad():
        layer.weight.copy_(small[1].weight @ small[0].weight)
    return small


@pytest.mark.parametrize("wrong, hint", [
    (lambda layer, r: _two_layers(layer, r, second_bias=False), "bias is forgotten"),
    (lambda layer, r: _two_layers(layer, r, first_bias=True), "must have bias=False"),
    (lambda layer, r: _two_layers(layer, r, order=(1, 0)), "wrong order"),
    (lambda layer, r: _two_layers(layer, r, left=lambda U, S, Vh, r: Vh[:r].T, right=lambda U, S, Vh, r:
                                  (U[:, :r] * S[:r]).T), "(out_features, in_features)"),
    (_modifies_layer, "changed the given layer in place"),
    (lambda layer, r: exercises.factorize_linear_reference(layer, r + 1), "off by one"),
    (lambda layer, r: exercises.factorize_linear_reference(layer, r - 1), "off by one"),
    (lambda layer, r: _two_layers(layer, r, copy_bias=False), "random bias"),
    (lambda layer, r: _two_layers(layer, r, share_bias=True), "shares a tensor"),
    (lambda layer, r: _two_layers(layer, r, right=lambda U, S, Vh, r: S[:r, None] * Vh[:r]), "applied twice"),
    (lambda layer, r: _two_layers(layer, r, left=lambda U, S, Vh, r: U[:, -r:] * S[-r:],
                                  right=lambda U, S, Vh, r: Vh[-r:]), "SMALLEST"),
    (lambda layer, r: exercises.factorize_linear_reference(layer, r).float(), "keep the layer's dtype"),
    (lambda layer, r: _two_layers(layer, r, second_bias=True), "bias=layer.bias is not None"),
    (lambda layer, r: layer, "returned the given layer"),
    (lambda layer, r: nn.Linear(layer.in_features, layer.out_features), "expected nn.Sequential"),
    (lambda layer, r: None, "did you forget `return`"),
])
def test_factorize_linear_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_factorize_linear(wrong), hint)


def test_factorize_linear_checker_names_a_missing_bias_guard_and_transposed_weights():
    def bias_always(layer, rank):
        small = exercises.factorize_linear_reference(layer, rank)
        small[1] = nn.Linear(rank, layer.out_features, dtype=layer.weight.dtype)
        with torch.no_grad():
            small[1].weight.copy_(exercises.factorize_linear_reference(layer, rank)[1].weight)
            small[1].bias.copy_(layer.bias)                    # fails when the layer has no bias
        return small
    _fails_with(exercises.check_factorize_linear(bias_always), "the layer may have no bias")

    def transposed_if_square(layer, rank):                     # shapes right only when m == n
        if layer.in_features != layer.out_features:
            return exercises.factorize_linear_reference(layer, rank)
        return _two_layers(layer, rank, left=lambda U, S, Vh, r: Vh[:r].T,
                           right=lambda U, S, Vh, r: (U[:, :r] * S[:r]).T)
    _fails_with(exercises.check_factorize_linear(transposed_if_square), "weights are transposed")


# ----------------------------------------------------------------------------- choose_rank

def test_choose_rank_reference_on_exact_fractions():
    sigma = torch.tensor([3.0, 2.0, 1.0, 1.0, 1.0])           # energy kept: 9/16, 13/16, 14/16, 15/16, 1
    assert [exercises.choose_rank_reference(sigma, e) for e in (0.0, 0.5625, 0.6, 0.8125, 0.9, 1.0)] == \
        [1, 1, 2, 2, 4, 5]
    assert isinstance(exercises.choose_rank_reference(sigma, 0.5), int)
    assert exercises.check_choose_rank(exercises.choose_rank_reference).passed


def _first(sigma, energy, power=2, strict=False, start=1, index=False):
    values = sigma ** power
    kept = torch.cumsum(values, 0) / values.sum()
    for r in range(start, len(sigma) + 1):
        fraction = kept[r - 1].item() if r else 0.0
        if (fraction > energy) if strict else (fraction >= energy):
            return r - 1 if index else r
    return len(sigma)


def _squares_in_place(sigma, energy):
    sigma.pow_(2)
    return _first(sigma.sqrt(), energy)


@pytest.mark.parametrize("wrong, hint", [
    (lambda s, e: _first(s, e, power=1), "SQUARES"),
    (lambda s, e: _first(s, e, strict=True), "use >="),
    (lambda s, e: _first(s, e, index=True), "INDEX"),
    (lambda s, e: _first(s, e, start=0), "at least one component"),
    (lambda s, e: torch.tensor(_first(s, e)), ".item()"),
    (lambda s, e: float(_first(s, e)), "int(...)"),
    (_squares_in_place, "changed singular_values in place"),
    (lambda s, e: None, "did you forget `return`"),
])
def test_choose_rank_checker_names_the_mistake(wrong, hint):
    assert exercises.check_choose_rank(_first).passed
    _fails_with(exercises.check_choose_rank(wrong), hint)


# ----------------------------------------------------------------------------- tucker2

def test_tucker2_reference_uses_tensorlys_unfoldings():
    tl = pytest.importorskip("tensorly")
    K = torch.randn(6, 4, 3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    core, U_out, U_in = exercises.tucker2_reference(K, 3, 2)
    for mode, U in ((0, U_out), (1, U_in)):
        unfolded = torch.as_tensor(tl.unfold(K.numpy(), mode))            # (K.shape[mode], -1)
        theirs = torch.linalg.svd(unfolded, full_matrices=False).U[:, :U.shape[1]]
        assert torch.allclose(U @ U.T, theirs @ theirs.T, atol=1e-10)   # same subspace
    assert core.shape == (3, 2, 3, 3)
    assert torch.allclose(U_out.T @ U_out, torch.eye(3, dtype=torch.float64), atol=1e-12)
    full = exercises.tucker2_reference(K, 6, 4)                        # full ranks rebuild K
    assert torch.allclose(torch.einsum("rskl,or,is->oikl", *full), K, atol=1e-10)
    assert exercises.check_tucker2(exercises.tucker2_reference).passed


def _leading(M, r, vectors="U", last=False):
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    if vectors == "V":
        return Vh[:r].T
    return U[:, -r:] if last else U[:, :r]


def _tucker(K, ro, ri, mode1=lambda K: K.transpose(0, 1).reshape(K.shape[1], -1), vectors="U", last=False,
            project=True, scale=False):
    U_out = _leading(K.reshape(K.shape[0], -1), ro, vectors, last)
    U_in = _leading(mode1(K), ri, vectors, last)
    if scale:
        U_out = U_out * torch.linalg.svdvals(K.reshape(K.shape[0], -1))[:ro]
    core = torch.einsum("oikl,or,is->rskl", K, U_out, U_in) if project else K
    return core, U_out, U_in


def _by_gram(K, ro, ri):                   # another correct way: eigenvectors of the Gram matrices
    def top(M, r):
        values, vectors = torch.linalg.eigh(M @ M.T)           # ascending
        return vectors[:, -r:].flip(1)
    U_out = top(K.reshape(K.shape[0], -1), ro)
    U_in = top(K.permute(1, 2, 3, 0).reshape(K.shape[1], -1), ri)   # any column order: same row space
    return torch.einsum("oikl,or,is->rskl", K, U_out, U_in), U_out, U_in


def _writes_k(K, ro, ri):
    out = exercises.tucker2_reference(K, ro, ri)
    K.transpose(0, 1)[0] *= 2
    return out


def test_tucker2_checker_accepts_other_correct_ways():
    assert exercises.check_tucker2(_by_gram).passed

    def flipped(K, ro, ri):                                    # singular vectors come up to sign
        _, U_out, U_in = _tucker(K, ro, ri)
        return torch.einsum("oikl,or,is->rskl", K, -U_out, U_in), -U_out, U_in
    assert exercises.check_tucker2(flipped).passed


@pytest.mark.parametrize("wrong, hint", [
    (lambda K, ro, ri: _tucker(K, ro, ri, mode1=lambda K: K.reshape(K.shape[1], -1)), "mixing the two modes"),
    (lambda K, ro, ri: _tucker(K, ro, ri, vectors="V"), "RIGHT singular vectors"),
    (lambda K, ro, ri: _tucker(K, ro, ri, project=False), "do not pass K through"),
    (lambda K, ro, ri: (lambda c, a, b: (K[:ro, :ri].clone(), a, b))(*_tucker(K, ro, ri)), "onto YOUR factors"),
    (lambda K, ro, ri: _tucker(K, ri, ro), "ranks are swapped"),
    (lambda K, ro, ri: _tucker(K, ro, ri, last=True), "LAST singular vectors"),
    (lambda K, ro, ri: _tucker(K, ro, ri, scale=True), "not orthonormal"),
    (_writes_k, "changed K in place"),
    (lambda K, ro, ri: tuple(t.float() for t in _tucker(K, ro, ri)), "dtype torch.float64"),
    (lambda K, ro, ri: _tucker(K, ro, ri)[:2], "three tensors"),
    (lambda K, ro, ri: None, "did you forget `return`"),
])
def test_tucker2_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_tucker2(wrong), hint)


# ----------------------------------------------------------------------------- lora_forward

def test_lora_forward_reference_matches_a_merged_linear():
    g = torch.Generator().manual_seed(2)
    x, W, b = torch.randn(4, 6, generator=g), torch.randn(3, 6, generator=g), torch.randn(3, generator=g)
    A, B = torch.randn(2, 6, generator=g), torch.randn(3, 2, generator=g)
    merged = nn.functional.linear(x, W + (8 / 2) * B @ A, b)
    assert torch.allclose(exercises.lora_forward_reference(x, W, b, A, B, 8), merged, atol=1e-5)
    assert torch.allclose(exercises.lora_forward_reference(x, W, None, A, torch.zeros(3, 2), 8), x @ W.T)
    assert exercises.check_lora_forward(exercises.lora_forward_reference).passed
    assert exercises.check_lora_forward(                      # merging into a NEW weight is correct too
        lambda x, W, b, A, B, alpha: nn.functional.linear(x, W + alpha / A.shape[0] * B @ A, b)).passed


def _lora(x, W, b, A, B, alpha, scale=None, order="AB", bias=True):
    r = A.shape[0]
    scale = alpha / r if scale is None else scale(alpha, A, B)
    path = x @ A.T @ B.T if order == "AB" else x @ B.T @ A.T
    y = x @ W.T + scale * path
    return y + b if bias and b is not None else y


def _updates_weight(x, W, b, A, B, alpha):
    W += (alpha / A.shape[0]) * B @ A
    return nn.functional.linear(x, W, b)


def _scales_x(x, W, b, A, B, alpha):
    x.mul_(alpha / A.shape[0])
    return exercises.lora_forward_reference(x / (alpha / A.shape[0]), W, b, A, B, alpha)


@pytest.mark.parametrize("wrong, hint", [
    (lambda *args: _lora(*args, scale=lambda alpha, A, B: 1.0), "scale alpha / r is missing"),
    (lambda *args: _lora(*args, scale=lambda alpha, A, B: alpha), "not alpha"),
    (lambda *args: _lora(*args, scale=lambda alpha, A, B: alpha // A.shape[0]), "integer division"),
    (lambda *args: _lora(*args, scale=lambda alpha, A, B: alpha / A.shape[1]), "not A.shape[1]"),
    (lambda *args: _lora(*args, scale=lambda alpha, A, B: 0.0), "low-rank path is missing"),
    (lambda *args: _lora(*args, order="BA"), "wrong order"),
    (_updates_weight, "base weight stays frozen"),
    (lambda *args: _lora(*args, bias=False), "bias is dropped"),
    (lambda x, W, b, A, B, alpha: x @ W.T + b + alpha / A.shape[0] * x @ A.T @ B.T, "bias may be None"),
    (_scales_x, "changed x in place"),
    (lambda *args: _lora(*args).float(), "dtype torch.float64"),
    (lambda *args: _lora(*args).T, "shape"),
    (lambda *args: None, "did you forget `return`"),
])
def test_lora_forward_checker_names_the_mistake(wrong, hint):
    _fails_with(exercises.check_lora_forward(wrong), hint)


def test_lora_forward_checker_names_the_wrong_order_when_shapes_allow_it():
    def order_if_square(x, W, b, A, B, alpha):                  # runs only where in = out = r
        return _lora(x, W, b, A, B, alpha, order="BA" if A.shape[0] == A.shape[1] == B.shape[0] else "AB")
    _fails_with(exercises.check_lora_forward(order_if_square), "the update is B @ A")
