import copy
import math
import warnings

import pytest
import tensorly as tl
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorly.decomposition import parafac, partial_tucker
from torch import nn

from course_lib import data, experiments, lowrank, measure, models, zoo

# TensorLy's backend is global state: each comparison selects PyTorch inside a context, so other tests are untouched.


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _matrix_with_spectrum(m: int, n: int, sigma: list[float], seed: int = 0) -> torch.Tensor:
    """An (m, n) float64 matrix whose singular values are ``sigma``."""
    k = len(sigma)
    U, _ = torch.linalg.qr(torch.randn(m, k, generator=_generator(seed), dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(n, k, generator=_generator(seed + 1), dtype=torch.float64))
    return U @ torch.diag(torch.tensor(sigma, dtype=torch.float64)) @ V.T


def _same_state(a: nn.Module, b_state: dict) -> bool:
    state = a.state_dict()
    return state.keys() == b_state.keys() and all(torch.equal(v, b_state[k]) for k, v in state.items())


# ----------------------------------------------------------------------------- SVD primitives: hand cases

def test_hand_worked_svd_of_a_diagonal_matrix():
    W = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 2.0, 0.0]])   # sigma = 3, 2, 1
    A, B = lowrank.svd_factors(W, 2)
    assert A.shape == (3, 2) and B.shape == (2, 3)
    assert torch.allclose(A @ B, torch.tensor([[3.0, 0, 0], [0, 0, 0], [0, 2.0, 0]]), atol=1e-6)
    s = torch.linalg.svdvals(W)
    assert lowrank.approximation_error_bound(s, 2) == pytest.approx(1.0)
    assert lowrank.approximation_error_bound(s, 0) == pytest.approx(math.sqrt(14))
    assert lowrank.approximation_error_bound(s, 3) == 0.0


def test_energy_and_rank_for_energy_hand_cases():
    s = torch.tensor([3.0, 2.0, 1.0])                     # energies 9, 4, 1 of 14
    assert torch.allclose(lowrank.energy_kept(s), torch.tensor([9 / 14, 13 / 14, 1.0], dtype=torch.float64))
    assert lowrank.energy_kept(s)[-1] == 1.0
    assert lowrank.rank_for_energy(s, 0.9) == 2
    assert lowrank.rank_for_energy(s, 9 / 14) == 1        # the boundary is kept
    assert lowrank.rank_for_energy(s, 0.01) == 1
    assert lowrank.rank_for_energy(s, 1.0) == 3
    assert lowrank.rank_for_energy(torch.tensor([1.0, 0.0]), 1.0) == 1


def test_parameter_counts_and_break_even_hand_cases():
    assert lowrank.lowrank_parameters(300, 784, 20) == 20 * 1084
    assert lowrank.break_even_rank(784, 300) == 216        # 216 * 1084 < 235,200 <= 217 * 1084
    assert lowrank.break_even_rank(10, 10) == 4            # 5 * 20 = 100 is not smaller
    assert lowrank.break_even_rank(2, 2) == 0 and lowrank.break_even_rank(1, 7) == 0
    for m, n in [(784, 300), (10, 10), (500, 800), (3, 1000)]:
        r = lowrank.break_even_rank(m, n)
        assert r * (m + n) < m * n <= (r + 1) * (m + n)


# ----------------------------------------------------------------------------- SVD: properties and references

@settings(max_examples=25, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.data(), st.integers(0, 1000))
def test_svd_error_is_the_eckart_young_bound(m, n, draw, seed):
    rank = draw.draw(st.integers(1, min(m, n)))
    W = torch.randn(m, n, generator=_generator(seed), dtype=torch.float64)
    before = W.clone()
    A, B = lowrank.svd_factors(W, rank)
    assert A.shape == (m, rank) and B.shape == (rank, n)
    error = float(torch.linalg.matrix_norm(W - A @ B))
    bound = lowrank.approximation_error_bound(torch.linalg.svdvals(W), rank)
    assert error == pytest.approx(bound, abs=1e-10 * float(W.norm()))
    assert torch.equal(W, before)


def test_svd_factors_agree_with_torch_linalg_svd_and_svd_lowrank():
    W = _matrix_with_spectrum(60, 40, [0.8 ** i for i in range(40)]).float()
    rank = 10
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    A, B = lowrank.svd_factors(W, rank)
    assert torch.allclose(A @ B, U[:, :rank] @ torch.diag(S[:rank]) @ Vh[:rank], atol=1e-5)
    ours = float(torch.linalg.matrix_norm(W - A @ B))
    with torch.random.fork_rng(devices=[]):                 # svd_lowrank draws from the global generator
        torch.manual_seed(0)
        Ur, Sr, Vr = torch.svd_lowrank(W, q=rank + 5, niter=4)
    randomized = float(torch.linalg.matrix_norm(W - Ur[:, :rank] @ torch.diag(Sr[:rank]) @ Vr[:, :rank].T))
    assert ours <= randomized + 1e-5                        # Eckart-Young: nothing beats the SVD
    assert randomized == pytest.approx(ours, rel=1e-3)


def test_full_rank_linear_reproduces_the_layer_and_carries_the_bias():
    for bias in (True, False):
        layer = nn.Linear(12, 7, bias=bias)
        before = copy.deepcopy(layer.state_dict())
        factorized = lowrank.factorize_linear(layer, 7)
        x = torch.randn(5, 12, generator=_generator())
        assert torch.allclose(factorized(x), layer(x), atol=1e-5)
        assert factorized.project.bias is None and (factorized.expand.bias is not None) == bias
        assert [tuple(m.weight.shape) for m in factorized] == [(7, 12), (7, 7)]
        assert _same_state(layer, before)


def test_factorised_linear_is_measured_as_r_times_m_plus_n():
    model = nn.Sequential(nn.Linear(784, 300))
    factorized = lowrank.factorize_model(model, {"0": 20})
    assert measure.count_parameters(factorized) == 20 * (784 + 300) + 300      # + the bias
    assert measure.count_macs(factorized, (784,)) == lowrank.lowrank_parameters(300, 784, 20)
    assert measure.count_macs(model, (784,)) == 784 * 300


# ----------------------------------------------------------------------------- Tucker-2

def _tensorly_partial_tucker(K, ranks, iterations):
    """TensorLy's partial Tucker on modes 0 and 1; 0.10 returns ((core, factors), errors)."""
    with tl.backend_context("pytorch"):
        result = partial_tucker(K, ranks, modes=[0, 1], init="svd", n_iter_max=iterations, tol=0)
    if isinstance(result[0], tuple):       # TensorLy >= 0.10
        result = result[0]
    core, factors = result
    return core, factors


@pytest.mark.parametrize("iterations", [0, 1, 3])
def test_tucker2_error_equals_tensorly_partial_tucker(iterations):
    K = torch.randn(16, 8, 3, 3, generator=_generator(), dtype=torch.float64)
    core, U_out, U_in = lowrank.tucker2(K, 6, 4, iterations)
    assert core.shape == (6, 4, 3, 3) and U_out.shape == (16, 6) and U_in.shape == (8, 4)
    assert torch.allclose(U_out.T @ U_out, torch.eye(6, dtype=torch.float64), atol=1e-10)
    ours = float((K - lowrank.tucker2_reconstruct(core, U_out, U_in)).norm())
    tl_core, (tl_out, tl_in) = _tensorly_partial_tucker(K, (6, 4), iterations)
    theirs = float((K - torch.einsum("rshw,or,is->oihw", tl_core, tl_out, tl_in)).norm())
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_hooi_never_increases_the_error():
    K = torch.randn(12, 10, 3, 3, generator=_generator(3), dtype=torch.float64)
    errors = [float((K - lowrank.tucker2_reconstruct(*lowrank.tucker2(K, 4, 3, it))).norm()) for it in range(4)]
    assert all(b <= a + 1e-12 for a, b in zip(errors, errors[1:]))


@pytest.mark.parametrize("options", [dict(), dict(stride=2, padding=1), dict(padding=(2, 0), dilation=(1, 2))])
def test_tucker2_conv_at_full_rank_is_the_conv(options):
    conv = nn.Conv2d(6, 10, (3, 3), **options)
    before = copy.deepcopy(conv.state_dict())
    factorized = lowrank.factorize_conv_tucker2(conv, 10, 6)
    x = torch.randn(2, 6, 11, 13, generator=_generator())
    assert torch.allclose(factorized(x), conv(x), atol=1e-5)
    assert _same_state(conv, before)
    # at lower rank, the chain computes the conv with the reconstructed kernel
    small = lowrank.factorize_conv_tucker2(conv, 3, 2, iterations=2)
    kernel = lowrank.tucker2_reconstruct(*lowrank.tucker2(conv.weight, 3, 2, 2))
    assert torch.allclose(small(x), conv._conv_forward(x, kernel, conv.bias), atol=1e-5)


# ----------------------------------------------------------------------------- CP

@pytest.mark.parametrize("rank", [4, 8])
def test_cp_als_is_within_ten_percent_of_tensorly_parafac(rank):
    K = torch.randn(16, 8, 3, 3, generator=_generator(), dtype=torch.float64)
    factors = lowrank.cp_als(K, rank, iterations=50, seed=0)
    assert [tuple(f.shape) for f in factors] == [(16, rank), (8, rank), (3, rank), (3, rank)]
    ours = float((K - lowrank.cp_reconstruct(factors)).norm())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                      # TensorLy warns when rank > a mode's size
        with tl.backend_context("pytorch"):
            theirs = float((K - tl.cp_to_tensor(parafac(K, rank, n_iter_max=100, init="svd"))).norm())
    assert ours <= 1.1 * theirs
    assert ours < float(K.norm())


def test_cp_als_is_seeded_and_leaves_the_global_generator_alone():
    K = torch.randn(5, 4, 3, 3, generator=_generator())
    state = torch.random.get_rng_state()
    a, b = lowrank.cp_als(K, 3, 5, seed=1), lowrank.cp_als(K, 3, 5, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert torch.equal(torch.random.get_rng_state(), state)


@pytest.mark.parametrize("options", [dict(), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
                                     dict(padding="same")])
def test_cp_conv_computes_the_reconstructed_kernel(options):
    conv = nn.Conv2d(5, 7, (3, 3), **options)
    factorized = lowrank.factorize_conv_cp(conv, 6, iterations=10, seed=0)
    assert [m.groups for m in factorized] == [1, 6, 6, 1]
    kernel = lowrank.cp_reconstruct(lowrank.cp_als(conv.weight, 6, 10, seed=0))
    x = torch.randn(2, 5, 9, 10, generator=_generator())
    assert torch.allclose(factorized(x), conv._conv_forward(x, kernel, conv.bias), atol=1e-5)


# ----------------------------------------------------------------------------- spatial

@pytest.mark.parametrize("options", [dict(), dict(stride=2, padding=(1, 2), bias=False),
                                     dict(padding=1, padding_mode="reflect"), dict(dilation=2)])
def test_spatial_factors_at_full_rank_reproduce_the_conv(options):
    conv = nn.Conv2d(4, 6, (3, 3), **options)
    V, H = lowrank.spatial_factors(conv.weight, 12)
    assert V.shape == (12, 4, 3, 1) and H.shape == (6, 12, 1, 3)
    factorized = lowrank.factorize_conv_spatial(conv, 12)           # min(4 * 3, 6 * 3)
    x = torch.randn(2, 4, 10, 11, generator=_generator())
    assert torch.allclose(factorized(x), conv(x), atol=1e-5)
    assert factorized(x).shape == lowrank.factorize_conv_spatial(conv, 2)(x).shape


# ----------------------------------------------------------------------------- models

@pytest.mark.parametrize("method,conv_ranks", [("tucker2", {"conv1": (8, 1), "conv2": 10}),
                                                ("cp", {"conv1": 4, "conv2": 12}),
                                                ("spatial", {"conv1": 3, "conv2": 20})])
def test_factorize_model_returns_a_new_model_of_the_same_shapes(method, conv_ranks):
    model = models.build("lenet5", seed=0).eval()
    before = copy.deepcopy(model.state_dict())
    factorized = lowrank.factorize_model(model, {**conv_ranks, "fc1": 30}, method)
    assert factorized is not model and isinstance(factorized.conv2, nn.Sequential)
    assert isinstance(model.conv2, nn.Conv2d) and _same_state(model, before)
    x = torch.randn(3, 1, 28, 28, generator=_generator())
    assert factorized(x).shape == model(x).shape == (3, 10)
    assert measure.count_parameters(factorized) < measure.count_parameters(model)


def test_layer_singular_values_and_ranks_for_energy():
    model = models.build("lenet5", seed=0)
    spectra = lowrank.layer_singular_values(model)
    assert list(spectra) == ["conv1", "conv2", "fc1", "fc2"]
    assert torch.allclose(spectra["conv2"], torch.linalg.svdvals(model.conv2.weight.detach().reshape(50, -1)))
    assert torch.allclose(spectra["fc1"], torch.linalg.svdvals(model.fc1.weight.detach()))
    layer = nn.Linear(6, 5)
    with torch.no_grad():
        layer.weight.copy_(_matrix_with_spectrum(5, 6, [3.0, 2.0, 1.0, 0.0, 0.0]))
    assert lowrank.ranks_for_energy(nn.Sequential(layer), 0.9) == {"0": 2}
    ranks = lowrank.ranks_for_energy(model, 1.0, layers=["conv1", "conv2"])
    assert ranks == {"conv1": (20, 1), "conv2": (50, 20)}
    assert isinstance(lowrank.ranks_for_energy(model, 0.5)["fc2"], int)


def test_ranks_for_budget_hand_cases():
    model = models.build("lenet5", seed=0)
    ranks = lowrank.ranks_for_budget(model, 0.25, layers=["conv2", "fc1"])
    # conv2 (50, 20, 5, 5): 20 r + 25 r^2 + 50 r <= 6250 -> r = 14 (5880; r = 15 needs 6675)
    # fc1 (500, 800): 1300 r <= 100,000 -> r = 76
    assert ranks == {"conv2": (14, 14), "fc1": 76}
    factorized = lowrank.factorize_model(model, ranks, "tucker2")
    assert measure.count_parameters(factorized.conv2) - 50 == 5880 <= 0.25 * 25_000
    assert lowrank.ranks_for_budget(nn.Sequential(nn.Linear(4, 4)), 1.0) == {"0": 2}     # 8 r <= 16


def test_rank_scan_matches_the_baseline_at_full_rank():
    model = zoo.load("lenet_300_100")
    split = data.load("mnist", "validation").subset(300)
    baseline = float((model(split.images).argmax(1) == split.labels).float().mean())
    scan = lowrank.rank_scan(model, split, "fc2", [1, 100], progress=False)
    assert [r for r, _ in scan] == [1, 100]
    assert scan[1][1] == pytest.approx(baseline, abs=1 / 300)
    assert scan[0][1] < scan[1][1]


# ----------------------------------------------------------------------------- LoRA

def test_lora_starts_as_the_base_layer_and_merges_exactly():
    layer = nn.Linear(10, 6)
    lora = lowrank.LoRALinear(layer, 3, alpha=6.0, generator=_generator())
    x = torch.randn(4, 10, generator=_generator(1))
    assert torch.equal(lora(x), layer(x))                              # B = 0 at first
    assert lora.scale == 2.0 and lora.A.shape == (3, 10) and lora.B.shape == (6, 3)
    assert not lora.base.weight.requires_grad and not lora.base.bias.requires_grad
    with torch.no_grad():
        lora.B.copy_(torch.randn(6, 3, generator=_generator(2)))
    merged = lora.merged()
    assert isinstance(merged, nn.Linear) and torch.allclose(merged(x), lora(x), atol=1e-6)
    assert torch.equal(layer.weight, lora.base.weight)                 # the layer itself is untouched


def test_add_lora_trains_only_a_and_b():
    model = models.build("lenet_300_100", seed=0)
    before = copy.deepcopy(model.state_dict())
    adapted = lowrank.add_lora(model, 4, seed=0)
    assert _same_state(model, before) and all(p.requires_grad for p in model.parameters())
    expected = 4 * ((784 + 300) + (300 + 100) + (100 + 10))
    assert lowrank.count_trainable(adapted) == expected
    trainable = {name for name, p in adapted.named_parameters() if p.requires_grad}
    assert trainable == {f"{fc}.{m}" for fc in ("fc1", "fc2", "fc3") for m in ("A", "B")}
    x = torch.randn(2, 1, 28, 28, generator=_generator())
    assert torch.equal(adapted(x), model(x))
    loss = adapted(x).sum() + sum((p ** 2).sum() for p in adapted.parameters() if p.requires_grad)
    loss.backward()
    assert adapted.fc1.base.weight.grad is None and adapted.fc1.A.grad is not None
    only_fc2 = lowrank.add_lora(model, 2, layers=["fc2"])
    assert lowrank.count_trainable(only_fc2) == 2 * (300 + 100)
    cnn = lowrank.add_lora(models.build("lenet5", seed=0), 2)
    assert lowrank.count_trainable(cnn) == 2 * (800 + 500) + 2 * (500 + 10)   # convs frozen


# ----------------------------------------------------------------------------- the experiment

def test_lowrank_experiment_on_lenet_300_100_fc1():
    result = experiments.lowrank_experiment("lenet_300_100", "fc1", 20, "STM32F746", n_validation=500)
    assert result.rank == 20 and result.layer == "fc1"
    assert result.report.parameters == result.baseline_report.parameters - 784 * 300 + 20 * (784 + 300)
    assert result.report.macs < result.baseline_report.macs
    assert 0.5 < result.accuracy <= 1 and 0.9 < result.baseline_accuracy <= 1
    lines = result.lines()
    assert "fc1" in lines[0] and "rank 20" in lines[0] and "STM32F746" in "\n".join(lines)


def test_lowrank_experiment_on_a_conv_uses_tucker2():
    result = experiments.lowrank_experiment("lenet5", "conv2", 10, "Raspberry Pi 4", n_validation=200)
    assert result.rank == (10, 10) and "Tucker-2" in result.lines()[0]
    assert result.report.parameters < result.baseline_report.parameters


# ----------------------------------------------------------------------------- bad input

W = torch.randn(5, 4, generator=_generator())
K = torch.randn(6, 4, 3, 3, generator=_generator())
S = torch.tensor([3.0, 2.0, 1.0])


@pytest.mark.parametrize("call,error,match", [
    (lambda: lowrank.svd_factors(W, 0), ValueError, r"rank must be an int in \[1, 4\], got 0"),
    (lambda: lowrank.svd_factors(W, 5), ValueError, r"rank must be an int in \[1, 4\], got 5"),
    (lambda: lowrank.svd_factors(W, 2.0), TypeError, "rank must be an int"),
    (lambda: lowrank.svd_factors(W.tolist(), 2), TypeError, "W must be a torch.Tensor"),
    (lambda: lowrank.svd_factors(K, 2), ValueError, "W must be a non-empty 2-D"),
    (lambda: lowrank.svd_factors(torch.full((3, 3), float("nan")), 1), ValueError, "W contains NaN"),
    (lambda: lowrank.approximation_error_bound(S, 4), ValueError, "rank"),
    (lambda: lowrank.energy_kept(torch.zeros(3)), ValueError, "not all zero"),
    (lambda: lowrank.energy_kept(torch.tensor([1.0, -1.0])), ValueError, ">= 0"),
    (lambda: lowrank.rank_for_energy(S, 0.0), ValueError, r"energy must be a finite number in \(0, 1\]"),
    (lambda: lowrank.rank_for_energy(S, 1.5), ValueError, "energy"),
    (lambda: lowrank.rank_for_energy(S, float("nan")), ValueError, "energy"),
    (lambda: lowrank.rank_for_energy(S, "0.9"), TypeError, "energy"),
    (lambda: lowrank.lowrank_parameters(4, 5, 6), ValueError, "rank"),
    (lambda: lowrank.break_even_rank(0, 5), ValueError, "m must be"),
    (lambda: lowrank.tucker2(K, 7, 2), ValueError, r"rank_out must be an int in \[1, 6\]"),
    (lambda: lowrank.tucker2(K, 2, 0), ValueError, "rank_in"),
    (lambda: lowrank.tucker2(K, 2, 2, -1), ValueError, "iterations"),
    (lambda: lowrank.tucker2(W, 2, 2), ValueError, "K must be a non-empty 4-D"),
    (lambda: lowrank.tucker2_reconstruct(torch.zeros(2, 2, 3, 3), torch.zeros(6, 3), torch.zeros(4, 2)),
     ValueError, "expected core"),
    (lambda: lowrank.cp_als(K, 0), ValueError, "rank"),
    (lambda: lowrank.cp_als(K, 2, seed=-1), ValueError, "seed"),
    (lambda: lowrank.cp_reconstruct([W, W]), ValueError, "four"),
    (lambda: lowrank.spatial_factors(K, 13), ValueError, r"rank must be an int in \[1, 12\]"),
    (lambda: lowrank.factorize_linear(nn.Conv2d(3, 4, 3), 2), TypeError, "layer must be an nn.Linear"),
    (lambda: lowrank.factorize_conv_tucker2(nn.Linear(3, 4), 2, 2), TypeError, "conv must be an nn.Conv2d"),
    (lambda: lowrank.factorize_conv_cp(nn.Conv2d(4, 4, 3, groups=2), 2), ValueError, "groups=1"),
    (lambda: lowrank.factorize_conv_spatial(nn.Conv2d(4, 4, 3, groups=4), 2), ValueError, "groups=1"),
    (lambda: lowrank.LoRALinear(nn.Linear(4, 3), 4), ValueError, "rank"),
    (lambda: lowrank.LoRALinear(nn.Linear(4, 3), 2, alpha=0), ValueError, "alpha"),
    (lambda: lowrank.LoRALinear(nn.Conv2d(4, 3, 1), 2), TypeError, "layer must be an nn.Linear"),
    (lambda: lowrank.count_trainable("lenet5"), TypeError, "model must be"),
    (lambda: experiments.lowrank_experiment("lenet_300_100", "fc9", 20, "STM32F746"), ValueError, "layer"),
    (lambda: experiments.lowrank_experiment("lenet_300_100", "fc1", 301, "STM32F746"), ValueError, "'fc1'.*rank"),
    (lambda: experiments.lowrank_experiment("resnet", "fc1", 20, "STM32F746"), ValueError, "model_name"),
])
def test_bad_primitive_and_layer_arguments_raise_named_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


MODEL_CALLS = [
    (lambda m: lowrank.factorize_model(m, {"fc1": 0}), ValueError, r"layer 'fc1': rank must be an int in \[1, 300\]"),
    (lambda m: lowrank.factorize_model(m, {"fc1": 301}), ValueError, r"layer 'fc1'.*got 301"),
    (lambda m: lowrank.factorize_model(m, {"fc1": (2, 2)}), TypeError, "layer 'fc1'"),
    (lambda m: lowrank.factorize_model(m, {"fc9": 2, "fc1": 2}), ValueError, r"unknown layers \['fc9'\]"),
    (lambda m: lowrank.factorize_model(m, {"relu1": 2}), ValueError, "unknown layers"),
    (lambda m: lowrank.factorize_model(m, {}), ValueError, "at least one layer"),
    (lambda m: lowrank.factorize_model(m, [("fc1", 2)]), TypeError, "ranks must be a dict"),
    (lambda m: lowrank.factorize_model(m, {"fc1": 2}, "pca"), ValueError, "method must be one of"),
    (lambda m: lowrank.ranks_for_energy(m, 0.0), ValueError, "energy"),
    (lambda m: lowrank.ranks_for_energy(m, 0.9, layers=["fc7"]), ValueError, "fc7"),
    (lambda m: lowrank.ranks_for_energy(m, 0.9, layers="fc1"), TypeError, "layers must be a list"),
    (lambda m: lowrank.ranks_for_budget(m, 1.5), ValueError, "fraction"),
    (lambda m: lowrank.ranks_for_budget(m, 0.001), ValueError, "layer 'fc1': even rank 1"),
    (lambda m: lowrank.add_lora(m, 0), ValueError, "rank"),
    (lambda m: lowrank.add_lora(m, 200), ValueError, r"layer 'fc2'.*rank"),
    (lambda m: lowrank.add_lora(m, 2, layers=["fc4"]), ValueError, "fc4"),
    (lambda m: lowrank.rank_scan(m, data.load("mnist", "validation").subset(10), "fc9", [2]), ValueError, "layer"),
    (lambda m: lowrank.rank_scan(m, data.load("mnist", "validation").subset(10), "fc1", []), ValueError, "ranks"),
]


@pytest.mark.parametrize("call,error,match", MODEL_CALLS)
def test_bad_model_arguments_raise_named_errors_and_leave_the_model_unchanged(call, error, match):
    model = models.build("lenet_300_100", seed=0)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(error, match=match):
        call(model)
    assert _same_state(model, before)


def test_conv_specific_model_errors():
    model = models.build("lenet5", seed=0)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="layer 'conv2'.*Linear layers only"):
        lowrank.factorize_model(model, {"conv2": 4})                   # method "svd" on a conv
    with pytest.raises(ValueError, match=r"layer 'conv1'.*rank_in must be an int in \[1, 1\]"):
        lowrank.factorize_model(model, {"conv1": 4}, "tucker2")
    with pytest.raises(ValueError, match="layer 'conv2'.*Tucker-2 rank"):
        lowrank.factorize_model(model, {"conv2": (1, 2, 3)}, "tucker2")
    with pytest.raises(ValueError, match="Linear layers of the model"):
        lowrank.add_lora(model, 2, layers=["conv1"])
    assert _same_state(model, before)


def test_nan_weights_are_named():
    model = models.build("lenet_300_100", seed=0)
    with torch.no_grad():
        model.fc2.weight[0, 0] = float("nan")
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="layer 'fc2'.*NaN"):
        lowrank.factorize_model(model, {"fc1": 10, "fc2": 10})
    with pytest.raises(ValueError, match="fc2.*NaN"):
        lowrank.layer_singular_values(model)
    with pytest.raises(ValueError, match="fc2.*NaN"):
        lowrank.ranks_for_energy(model, 0.9)
    with pytest.raises(ValueError, match="NaN"):
        lowrank.add_lora(model, 2)
    assert all(torch.equal(v, before[k]) or torch.isnan(v).any() for k, v in model.state_dict().items())


def test_factorize_model_takes_a_learners_tucker2():
    """``decompose=`` replaces Tucker-2's decomposition (notebook 04 passes the learner's); the library's own gives
    the same model as the default, and a non-function or another method is refused before any copy."""
    torch.manual_seed(0)
    model = models.lenet5()
    calls = []

    def counting(K, rank_out, rank_in):
        calls.append((tuple(K.shape), rank_out, rank_in))
        return lowrank.tucker2(K, rank_out, rank_in)

    default = lowrank.factorize_model(model, {"conv2": (16, 8)}, method="tucker2")
    given = lowrank.factorize_model(model, {"conv2": (16, 8)}, method="tucker2", decompose=counting)
    assert calls == [((50, 20, 5, 5), 16, 8)]
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), given.state_dict().values()))
    with pytest.raises(TypeError, match="decompose must be a function"):
        lowrank.factorize_model(model, {"conv2": (16, 8)}, method="tucker2", decompose="hosvd")
    with pytest.raises(ValueError, match="needs method='tucker2'"):
        lowrank.factorize_model(model, {"conv2": 4}, method="cp", decompose=counting)
