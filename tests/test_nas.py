import dataclasses
import math
import os
import random
import stat

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from nas_toys import toy_objective, toy_trial_objective
from scipy import stats

from course_lib import architectures as A
from course_lib import data, experiments, hardware, measure
from course_lib import nas

SPACE = nas.SearchSpace()


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def fashion_small():
    train = data.load("fashion-mnist", "train").sample(256, 0)
    validation = data.load("fashion-mnist", "validation").sample(128, 0)
    return train, validation


# ----------------------------------------------------------------------------- space

def test_space_decisions_size_and_round_trip():
    options = nas.decisions(SPACE)
    assert list(options)[:6] == ["resolution", "stage1.block", "stage1.width", "stage1.kernel", "stage1.depth",
                                 "stage1.expansion"]
    assert nas.space_size(SPACE) == 3 * (4 * 2 * 2 * (1 + 1 + 2)) ** 3
    rng = random.Random(0)
    for _ in range(50):
        a = nas.sample(SPACE, rng)
        nas.check_in_space(a, SPACE)
        assert nas.from_choices(nas.to_choices(a, SPACE), SPACE) == a
        assert A.build_model(a)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_sample_is_seeded_by_the_generator_alone():
    state = random.getstate()
    a = [nas.sample(SPACE, random.Random(3)) for _ in range(2)]
    b = [nas.sample(SPACE, np.random.default_rng(3)) for _ in range(2)]
    assert a[0] == a[1] and b[0] == b[1]
    assert random.getstate() == state


@settings(max_examples=80)
@given(seed=st.integers(0, 2 ** 32 - 1), use_numpy=st.booleans())
def test_mutation_never_leaves_the_space_and_changes_one_decision(seed, use_numpy):
    rng = np.random.default_rng(seed) if use_numpy else random.Random(seed)
    a = nas.sample(SPACE, rng)
    before = nas.to_choices(a, SPACE)
    child = nas.mutate(a, SPACE, rng)
    nas.check_in_space(child, SPACE)
    assert child != a and nas.to_choices(a, SPACE) == before
    after = nas.to_choices(child, SPACE)
    def active(k):         # an expansion counts where both are inverted residuals (elsewhere it is inert)
        block = k.replace("expansion", "block")
        return not k.endswith(".expansion") or before[block] == after[block] == "inverted_residual"
    assert sum(before[k] != after[k] for k in before if active(k)) == 1
    mate = nas.crossover(a, nas.sample(SPACE, rng), SPACE, rng)
    nas.check_in_space(mate, SPACE)


def test_descriptions_outside_the_space_get_a_named_error():
    a = nas.sample(SPACE, random.Random(0))
    wide = dataclasses.replace(a, stages=(dataclasses.replace(a.stages[0], width=40),) + a.stages[1:])
    with pytest.raises(nas.OutOfSpaceError, match=r"stages\[0\]\.width = 40 is not in the space's widths"):
        nas.check_in_space(wide, SPACE)
    with pytest.raises(nas.OutOfSpaceError, match="resolution"):
        nas.check_in_space(dataclasses.replace(a, resolution_multiplier=0.5), SPACE)
    with pytest.raises(nas.OutOfSpaceError, match="stages"):
        nas.check_in_space(dataclasses.replace(a, stages=a.stages[:2]), SPACE)
    with pytest.raises(nas.OutOfSpaceError, match="stem_width"):
        nas.check_in_space(A.FASHION_FAMILY["cnn_x1_0"], SPACE)
    choices = nas.to_choices(a, SPACE)
    with pytest.raises(nas.OutOfSpaceError, match=r"choices\['stage2.kernel'\] = 7"):
        nas.from_choices({**choices, "stage2.kernel": 7}, SPACE)
    with pytest.raises(nas.OutOfSpaceError, match="missing"):
        nas.from_choices({k: v for k, v in choices.items() if k != "resolution"}, SPACE)
    with pytest.raises(TypeError, match="rng must be a random.Random"):
        nas.sample(SPACE, 0)
    with pytest.raises(TypeError, match="rng"):
        nas.mutate(a, SPACE, random)


def test_search_space_validates_its_fields():
    with pytest.raises(ValueError, match="blocks must be among"):
        nas.SearchSpace(blocks=("shuffle",))
    with pytest.raises(ValueError, match="kernels must hold odd"):
        nas.SearchSpace(kernels=(3, 4))
    with pytest.raises(ValueError, match="widths must hold at least one value"):
        nas.SearchSpace(widths=())
    with pytest.raises(ValueError, match="resolutions must hold ints in"):
        nas.SearchSpace(resolutions=(32,))
    with pytest.raises(ValueError, match="shrink the smallest resolution"):
        nas.SearchSpace(resolutions=(4,), strides=(2, 2, 2))
    single = nas.SearchSpace(blocks=("conv",), widths=(8,), kernels=(3,), depths=(1,), expansions=(1,),
                             resolutions=(28,))
    with pytest.raises(ValueError, match="single network"):
        nas.mutate(nas.sample(single, random.Random(0)), single, random.Random(0))


# ----------------------------------------------------------------------------- costs

def test_candidate_costs_agree_with_measure_and_hardware():
    a = nas.sample(SPACE, random.Random(1))
    costs = nas.candidate_costs(a, "Arduino Nano 33 BLE Sense")
    model = A.build_model(a)
    report = measure.report(model, "x", "int8")
    assert costs.parameters == A.architecture_costs(a).parameters == report.parameters
    assert costs.macs == A.architecture_costs(a).macs
    assert costs.flash_bytes == report.weight_bytes == report.parameters        # one byte per int8 weight
    assert costs.peak_activation_bytes == measure.peak_activation_bytes(model, (1, 28, 28), "int8")
    device = hardware.get_device("Arduino Nano 33 BLE Sense")
    assert costs.latency_s == hardware.estimate_latency(report, device).seconds


def test_violated_limits_follow_check_fit_and_are_inclusive():
    device = nas.TIGHT_BUDGET
    constraints = nas.device_constraints(device.name, max_latency_ms=10)
    fits = nas.CandidateCosts(1, 1, 64 * 1024, 32 * 1024, 0.010, device.name)        # exactly at every limit
    assert nas.violated_limits(fits, constraints) == ()
    over = dataclasses.replace(fits, flash_bytes=64 * 1024 + 1, peak_activation_bytes=32 * 1024 + 1,
                               latency_s=0.0101)
    assert nas.violated_limits(over, constraints) == ("flash", "sram", "latency")
    assert nas.violated_limits(over, nas.device_constraints(device.name)) == ("flash", "sram")
    # the Arduino keeps 64 KB of flash and 16 KB of SRAM for its runtime, as hardware.check_fit counts
    rng = random.Random(0)
    nano = nas.device_constraints("Arduino Nano 33 BLE Sense")
    for _ in range(5):
        a = nas.sample(SPACE, rng)
        costs = nas.candidate_costs(a, nano.device)
        verdict = hardware.check_fit(measure.report(A.build_model(a), "x", "int8"), nano.device)
        assert (nas.violated_limits(costs, nano) == ()) == verdict.fits
    with pytest.raises(ValueError, match="estimated on"):
        nas.violated_limits(fits, nano)


def test_bad_devices_and_limits_get_named_errors():
    with pytest.raises(ValueError, match="device must be one of"):
        nas.device_constraints("Arduino Uno")
    for bad in (0, -1, math.nan, math.inf):
        with pytest.raises(ValueError, match="max_latency_ms"):
            nas.device_constraints(nas.TIGHT_BUDGET.name, bad)
    with pytest.raises(TypeError, match="architecture"):
        nas.candidate_costs("cnn")


# ----------------------------------------------------------------------------- Pareto front and hypervolume

def _brute_front(points):
    kept = [i for i, p in enumerate(points) if not any(nas.dominates(q, p) for q in points)]
    return sorted(kept, key=lambda i: (points[i][1], i))


def test_pareto_front_on_hand_made_points():
    assert nas.pareto_front([(0.9, 4), (0.7, 1), (0.85, 3), (0.8, 2), (0.88, 5)]) == [1, 3, 2, 0]
    assert nas.pareto_front([(0.8, 2), (0.85, 2), (0.7, 1), (0.85, 3)]) == [2, 1]     # ties on each axis
    assert nas.pareto_front([(0.9, 3), (0.8, 1), (0.9, 3)]) == [1, 0, 2]               # equal points both kept
    assert nas.pareto_front([]) == [] and nas.pareto_front([(0.5, 7)]) == [0]
    g = random.Random(0)
    for _ in range(300):
        points = [(g.randint(0, 4) / 4, g.randint(0, 4)) for _ in range(g.randint(1, 9))]
        assert nas.pareto_front(points) == _brute_front(points)


def test_hypervolume_on_hand_made_fronts():
    assert nas.hypervolume([(0.9, 2)], (0.5, 10)) == pytest.approx(3.2)
    # two steps: (10 - 4) * (0.9 - 0.5) + (4 - 2) * (0.7 - 0.5)
    assert nas.hypervolume([(0.7, 2), (0.9, 4)], (0.5, 10)) == pytest.approx(2.4 + 0.4)
    # a dominated point and a point beyond the reference add nothing; an empty front covers nothing
    assert nas.hypervolume([(0.7, 2), (0.9, 4), (0.6, 5), (0.95, 12)], (0.5, 10)) == pytest.approx(2.8)
    assert nas.hypervolume([], (0.5, 10)) == 0.0
    with pytest.raises(ValueError, match="finite"):
        nas.pareto_front([(0.5, math.nan)])
    with pytest.raises(TypeError, match="reference"):
        nas.hypervolume([(0.9, 2)], None)


# ----------------------------------------------------------------------------- strategies

def test_strategies_return_the_common_result_and_are_seeded():
    objective = toy_objective(SPACE, 1234)
    constraints = nas.device_constraints(nas.TIGHT_BUDGET.name, max_latency_ms=40)
    for strategy in nas.STRATEGIES:
        result = nas.run_search(strategy, SPACE, objective, 12, seed=1, constraints=constraints)
        assert result.strategy == strategy and len(result.best_so_far) == 12 == len(result.evaluated)
        assert all(c.feasible for c in result.evaluated) and all(not c.feasible for c in result.rejected)
        assert list(result.best_so_far) == list(np.maximum.accumulate([c.accuracy for c in result.evaluated]))
        assert result.best.accuracy == result.best_so_far[-1]
        assert all(c.costs.latency_ms <= 40 for c in result.evaluated)
        again = nas.run_search(strategy, SPACE, objective, 12, seed=1, constraints=constraints)
        assert [c.architecture for c in again.candidates] == [c.architecture for c in result.candidates]
    front = result.front()                         # nsga2's accuracy-latency front
    assert front and all(not any(nas.dominates((o.accuracy, o.costs.latency_s), (c.accuracy, c.costs.latency_s))
                                 for o in result.evaluated) for c in front)


def test_evolution_and_tpe_beat_random_search_at_equal_budget():
    wins = {"evolution": 0, "tpe": 0}
    for seed in range(5):
        objective = toy_objective(SPACE, 1000 + seed)        # a target the searches do not know
        random_best = nas.random_search(SPACE, objective, 50, seed).best_so_far[-1]
        evolution = nas.regularized_evolution(SPACE, objective, 50, seed, population_size=10, sample_size=3)
        wins["evolution"] += evolution.best_so_far[-1] > random_best
        wins["tpe"] += nas.tpe_search(SPACE, objective, 50, seed).best_so_far[-1] > random_best
    assert wins["evolution"] >= 4 and wins["tpe"] >= 4, wins


def test_strategies_reject_bad_arguments_with_named_errors():
    objective = toy_objective(SPACE)
    with pytest.raises(ValueError, match="strategy must be one of"):
        nas.run_search("hill-climbing", SPACE, objective, 5)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="budget must be an int >= 1"):
            nas.random_search(SPACE, objective, bad)
    with pytest.raises(TypeError, match="budget"):
        nas.random_search(SPACE, objective, 5.0)
    with pytest.raises(ValueError, match="seed"):
        nas.tpe_search(SPACE, objective, 5, seed=-1)
    with pytest.raises(ValueError, match="sample_size"):
        nas.regularized_evolution(SPACE, objective, 5, population_size=4, sample_size=5)
    with pytest.raises(ValueError, match="learning_rate"):
        nas.reinforce_search(SPACE, objective, 5, learning_rate=math.nan)
    with pytest.raises(ValueError, match="objective must return a finite number"):
        nas.random_search(SPACE, lambda a: math.nan, 3)
    impossible = nas.Constraints(dataclasses.replace(nas.TIGHT_BUDGET, storage_bytes=100))
    with pytest.raises(ValueError, match="almost no network"):
        nas.random_search(SPACE, objective, 1, constraints=impossible)


def test_reinforce_learns_to_prefer_the_target():
    objective = toy_objective(SPACE, 7)
    result = nas.reinforce_search(SPACE, objective, 150, seed=0)
    accuracies = [c.accuracy for c in result.evaluated]
    assert np.mean(accuracies[-30:]) > np.mean(accuracies[:30]) + 0.05


# ----------------------------------------------------------------------------- supernet

def _with_statistics(supernet, seed=0):
    rng, g = random.Random(seed), torch.Generator().manual_seed(seed)
    supernet.train()
    with torch.no_grad():
        for _ in range(6):
            supernet(torch.randn(8, 1, 28, 28, generator=g) * 1.5 + 0.3, nas.sample(SPACE, rng))
    return supernet.eval()


def test_extracted_subnet_equals_the_supernet_on_that_subnet():
    supernet = _with_statistics(nas.Supernet(SPACE, seed=0))
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    rng = random.Random(2)
    archs = [nas.sample(SPACE, rng) for _ in range(12)] + [supernet.largest(rng), supernet.smallest(rng)]
    for a in archs:
        model = supernet.extract(a)
        assert repr(model) == repr(A.build_model(a))              # the standalone network of the description
        with torch.no_grad():
            torch.testing.assert_close(model(x), supernet(x, a), rtol=1e-5, atol=1e-5)
    # inherited, not shared: training the extracted copy leaves the supernet unchanged
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert all(torch.equal(before[k], v) for k, v in supernet.state_dict().items())


def test_elastic_kernel_is_the_centre_crop_and_width_a_prefix():
    layer = nas.ElasticConvBN(4, 6, 5)
    w = layer.sliced_weight(3, 2, 3)
    assert torch.equal(w, layer.weight[:3, :2, 1:4, 1:4])
    dw = nas.ElasticConvBN(6, 6, 5, depthwise=True)
    assert torch.equal(dw.sliced_weight(4, 4, 3), dw.weight[:4, :, 1:4, 1:4])


def test_supernet_rejects_blocks_it_cannot_share_and_bad_arguments():
    with pytest.raises(ValueError, match="space.blocks must be among"):
        nas.Supernet(nas.SearchSpace(blocks=("conv", "residual")))
    with pytest.raises(nas.OutOfSpaceError):
        nas.Supernet(SPACE).extract(A.FASHION_FAMILY["cnn_x1_0"])
    with pytest.raises(ValueError, match="rule must be one of"):
        nas.train_supernet(SPACE, data.load("fashion-mnist", "validation").subset(8), 1, rule="greedy")
    with pytest.raises(ValueError, match="epochs"):
        nas.train_supernet(SPACE, data.load("fashion-mnist", "validation").subset(8), -1)


def test_train_supernet_one_epoch_and_evaluate_subnets(fashion_small):
    train, validation = fashion_small
    small = nas.SearchSpace(widths=(8, 16), depths=(1, 2), resolutions=(20, 28))
    run = nas.train_supernet(small, train, 1, seed=0, batch_size=64, progress=False)
    assert len(run.history) == 1 and math.isfinite(run.history[0]["mean_loss"])
    again = nas.train_supernet(small, train, 1, seed=0, batch_size=64, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(run.supernet.state_dict().values(),
                                                 again.supernet.state_dict().values()))
    evaluator = nas.SubnetEvaluator(run.supernet, train.subset(64), validation)
    a = nas.sample(small, random.Random(0))
    accuracy = evaluator(a)
    assert 0.0 <= accuracy <= 1.0 and evaluator(a) == accuracy
    # batch-norm re-estimation: the running statistics become the calibration batches' statistics
    model = evaluator.subnet(a)
    stem = nas.recalibrate_batch_norm(run.supernet.extract(a), train.subset(64), batch_size=64)
    with torch.no_grad():
        y = stem.stem.conv(torch.nn.functional.interpolate(train.subset(64).images, size=a.resolution,
                                                           mode="bilinear", align_corners=False)
                           if a.resolution != (28, 28) else train.subset(64).images)
    torch.testing.assert_close(stem.stem.bn.running_mean, y.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.stem.bn.running_mean, stem.stem.bn.running_mean)


# ----------------------------------------------------------------------------- DARTS

def test_darts_search_runs_and_discretizes(fashion_small):
    train, validation = fashion_small
    result = nas.darts_search(train, validation, 3, batch_size=16, channels=4)
    assert len(result.genotype) == len(nas.EDGES) and "zero" not in result.genotype
    assert result.weights.shape == (3, len(nas.DARTS_OPS))
    torch.testing.assert_close(result.weights.sum(1), torch.ones(3))
    alpha = torch.zeros(2, len(nas.DARTS_OPS))
    alpha[0, 0], alpha[0, 3] = 5.0, 1.0            # "zero" is strongest on edge 0: the next best is kept
    alpha[1, 4] = 2.0
    assert nas.discretize(alpha) == ("sep5x5", "conv3x3")
    net = nas.DartsNetwork(4, genotype=result.genotype)
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="steps"):
        nas.darts_search(train, validation, 0)


# ----------------------------------------------------------------------------- zero-cost proxies

@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")      # scipy on a constant list: NaN, as ours
def test_kendall_tau_and_spearman_against_scipy_and_brute_force():
    g = random.Random(0)
    for _ in range(40):
        n = g.randint(2, 12)
        x = [g.randint(0, 4) for _ in range(n)]                  # many ties
        y = [g.randint(0, 4) for _ in range(n)]
        ours, ref = nas.kendall_tau(x, y), stats.kendalltau(x, y).statistic
        assert (math.isnan(ours) and math.isnan(ref)) or ours == pytest.approx(ref)
        ours, ref = nas.spearman_rho(x, y), stats.spearmanr(x, y).statistic
        assert (math.isnan(ours) and math.isnan(ref)) or ours == pytest.approx(ref)
    # without ties tau is (concordant - discordant) / all pairs
    x, y = [1, 2, 3, 4, 5], [2, 1, 4, 3, 5]
    pairs = [(i, j) for i in range(5) for j in range(i + 1, 5)]
    brute = sum(np.sign((x[i] - x[j]) * (y[i] - y[j])) for i, j in pairs) / len(pairs)
    assert nas.kendall_tau(x, y) == pytest.approx(brute) == pytest.approx(0.6)
    assert nas.kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert nas.kendall_tau([-math.inf, 0.0, 1.0], [0, 1, 2]) == 1.0
    with pytest.raises(ValueError, match="same length"):
        nas.kendall_tau([1, 2], [1])
    with pytest.raises(ValueError, match="not NaN"):
        nas.kendall_tau([1, math.nan], [1, 2])


def test_synflow_and_naswot_by_hand():
    # synflow of a two-layer linear chain: R = 1^T |W2| |W1| 1, S = sum |theta * dR/dtheta| = 2 R (no biases)
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4, bias=False), torch.nn.ReLU(), torch.nn.Linear(4, 2, bias=False))
    for layer in (net[0], net[2]):
        layer.weight.data = torch.randn(layer.weight.shape, generator=g)
    R = (net[2].weight.abs() @ net[0].weight.abs()).sum().item()
    assert nas.synflow(net, (3,)) == pytest.approx(2 * R)
    # NASWOT: K_H[i, j] = N_A - Hamming distance, log |det K_H|
    model = A.build_model(nas.sample(SPACE, random.Random(0)))
    images = torch.randn(6, 1, 28, 28, generator=g)
    codes = nas.activation_codes(model, images)
    hamming = torch.cdist(codes.double(), codes.double(), p=1)
    K = codes.shape[1] - hamming
    assert nas.naswot(model, images) == pytest.approx(torch.linalg.slogdet(K).logabsdet.item())
    scores = nas.proxy_scores([model, A.build_model(nas.sample(SPACE, random.Random(1)))], images)
    assert set(scores) == {"synflow", "naswot"} and len(scores["naswot"]) == 2
    with pytest.raises(ValueError, match="N >= 2"):
        nas.naswot(model, images[:1])


# ----------------------------------------------------------------------------- AutoML for compression

def test_compression_search_meets_the_budget(fashion_small):
    _, validation = fashion_small
    model = A.build_model(A.FASHION_FAMILY["cnn_x0_5"])
    full = measure.weight_bytes(model, "fp32", "best")
    result = nas.search_compression(model, validation.subset(64), full // 5, 5, sparsities=(0.0, 0.5),
                                    bits=(4, 8), n_startup_trials=2)
    assert len(result.trials) == 5 and result.uniform_bytes <= full // 5
    assert all((size <= full // 5) == (accuracy is not None) for _, size, accuracy in result.trials)
    if result.policy is not None:
        assert nas.policy_bytes(model, result.policy) == result.bytes <= full // 5
    with pytest.raises(ValueError, match="budget_bytes"):
        nas.search_compression(model, validation, -1, 5)
    with pytest.raises(ValueError, match="policy names"):
        nas.apply_policy(model, {"nope": (0.5, 4)})
    with pytest.raises(ValueError, match="sparsity"):
        nas.apply_policy(model, {"fc": (1.5, 4)})


def test_a_warm_started_compression_search_begins_with_the_uniform_grid(fashion_small):
    _, validation = fashion_small
    model = A.build_model(A.FASHION_FAMILY["cnn_x0_5"])
    full = measure.weight_bytes(model, "fp32", "best")
    result = nas.search_compression(model, validation.subset(64), full // 3, 4, sparsities=(0.0, 0.5), bits=(4, 8),
                                    n_startup_trials=2, warm_start=True)
    grid = [(0.0, 4), (0.0, 8), (0.5, 4), (0.5, 8)]
    assert len(result.trials) == 4 + 4
    assert [set(policy.values()) for policy, _, _ in result.trials[:4]] == [{point} for point in grid]
    uniform = [(point, accuracy) for point, (_, _, accuracy) in zip(grid, result.trials) if accuracy is not None]
    assert result.uniform_accuracy == max(accuracy for _, accuracy in uniform)
    assert result.accuracy >= result.uniform_accuracy           # the uniform grid is among the search's trials
    with pytest.raises(TypeError, match="warm_start"):
        nas.search_compression(model, validation, full, 2, warm_start=1)


# ----------------------------------------------------------------------------- parallel search

# ----------------------------------------------------------------------------- space design, short training

def test_fitting_macs_counts_the_networks_that_meet_the_constraints():
    tight = nas.device_constraints(nas.TIGHT_BUDGET.name)
    macs, share = nas.fitting_macs(SPACE, tight, n_samples=40, seed=3)
    rng = random.Random(3)
    expected = []
    for _ in range(40):                               # the same draws, checked one by one
        costs = nas.candidate_costs(nas.sample(SPACE, rng), tight.device)
        if not nas.violated_limits(costs, tight):
            expected.append(costs.macs)
    assert macs == expected and share == len(expected) / 40
    # MCUNet's rule on the course's budget: the tight space's fitting networks compute more.
    wide, wide_share = nas.fitting_macs(nas.TIGHT_SPACE, tight, n_samples=60, seed=0)
    small, _ = nas.fitting_macs(SPACE, tight, n_samples=60, seed=0)
    assert 0 < wide_share < 1 and np.mean(wide) > 1.5 * np.mean(small)
    with pytest.raises(ValueError, match="n_samples"):
        nas.fitting_macs(SPACE, tight, n_samples=0)
    with pytest.raises(TypeError, match="constraints"):
        nas.fitting_macs(SPACE, "Tight budget")


def test_short_training_scores_a_candidate_repeatably_without_touching_global_state(fashion_small):
    train, validation = fashion_small
    objective = nas.ShortTraining(train, validation, epochs=1, lr=3e-3, seed=0)
    architecture = nas.sample(SPACE, random.Random(0))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = objective(architecture)
    assert torch.equal(torch.get_rng_state(), state)          # the caller's generator is left alone
    assert objective(architecture) == first and 0 <= first <= 1
    # A search takes it as its objective.
    result = nas.random_search(SPACE, objective, 2, seed=0, constraints=nas.device_constraints(nas.TIGHT_BUDGET.name))
    assert len(result.evaluated) == 2


@pytest.mark.parametrize("kwargs, error, fragment", [
    ({"epochs": 0}, ValueError, "epochs"), ({"lr": float("nan")}, ValueError, "lr"), ({"lr": 0}, ValueError, "lr"),
    ({"seed": -1}, ValueError, "seed"), ({"train_split": None}, TypeError, "train_split"),
])
def test_short_training_rejects_bad_arguments(fashion_small, kwargs, error, fragment):
    train, validation = fashion_small
    arguments = {"train_split": train, "validation": validation, **kwargs}
    with pytest.raises(error, match=fragment):
        nas.ShortTraining(**arguments)
    with pytest.raises(TypeError, match="architecture"):
        nas.ShortTraining(train, validation)({"resolution": 28})


def test_two_processes_share_one_journal_study(tmp_path):
    path = tmp_path / "study.journal"
    study = nas.run_parallel_study(toy_trial_objective, path, n_trials=9, n_workers=2, seed=0)
    numbers = sorted(t.number for t in study.trials)
    assert numbers == list(range(9))                                  # none lost, none duplicated
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 9


def test_unwritable_storage_paths_get_a_named_error(tmp_path):
    with pytest.raises(nas.StoragePathError, match="does not exist"):
        nas.run_parallel_study(toy_trial_objective, tmp_path / "missing" / "s.journal", 2)
    with pytest.raises(nas.StoragePathError, match="is a folder"):
        nas.check_storage_path(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if not os.access(locked, os.W_OK):                             # root can write anywhere
            with pytest.raises(nas.StoragePathError, match="no write permission"):
                nas.check_storage_path(locked / "s.journal")
    finally:
        locked.chmod(stat.S_IRWXU)
    with pytest.raises(ValueError, match="n_workers"):
        nas.run_parallel_study(toy_trial_objective, tmp_path / "s.journal", 2, n_workers=0)
    with pytest.raises(TypeError, match="storage_path"):
        nas.check_storage_path(None)


def test_space_objective_records_the_candidate():
    import optuna

    objective = nas.SpaceObjective(SPACE, toy_objective(SPACE, 5), nas.device_constraints(nas.TIGHT_BUDGET.name))
    with nas.strategies.quiet_optuna():
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
        study.optimize(objective, n_trials=3)
    for t in study.trials:
        a = A.Architecture.from_dict(t.user_attrs["architecture"])
        nas.check_in_space(a, SPACE)
        assert t.value == pytest.approx(toy_objective(SPACE, 5)(a)) or t.value == 0.0


# ----------------------------------------------------------------------------- experiment (notebook 07's panel)

def test_cached_objective_computes_each_network_once():
    toy = toy_objective(SPACE, 2)
    cached = experiments.CachedObjective(toy)
    a, b = nas.sample(SPACE, random.Random(0)), nas.sample(SPACE, random.Random(1))
    assert [cached(a), cached(b), cached(a)] == [toy(a), toy(b), toy(a)]
    assert (cached.calls, cached.hits) == (2, 1)
    with pytest.raises(TypeError, match="objective"):
        experiments.CachedObjective(3)


@pytest.mark.parametrize("strategy", nas.STRATEGIES)
def test_nas_experiment_respects_the_panel_limits(strategy):

    low = {"flash_kb": experiments.PANEL_FLASH_KB[0], "sram_kb": experiments.PANEL_SRAM_KB[0], "latency_ms": experiments.PANEL_LATENCY_MS[0]}
    run = experiments.nas_experiment(strategy, experiments.PANEL_BUDGET[0], "Arduino Nano 33 BLE Sense", **low,
                                     objective=toy_objective(SPACE, 3))
    assert len(run.result.evaluated) == experiments.PANEL_BUDGET[0]          # the sliders' minimum is a valid search
    costs = run.best.costs
    assert costs.flash_bytes <= 8 * 1024 and costs.peak_activation_bytes <= 8 * 1024 and costs.latency_ms <= 5
    text = "\n".join(run.lines())
    assert "flash <= 8 KB" in text and strategy in text and "FITS" in text
    assert run.front and run.hypervolume >= 0


@pytest.mark.parametrize("kwargs, error, fragment", [
    ({"device_name": "toaster"}, ValueError, "device must be one of"),
    ({"device_name": None}, TypeError, "device_name must be a str"),
    ({"strategy": "annealing"}, ValueError, "strategy must be one of"),
    ({"budget": -1}, ValueError, "budget"),
    ({"flash_kb": 0}, ValueError, "flash_kb"),
])
def test_nas_experiment_rejects_bad_input_with_a_named_error(kwargs, error, fragment):
    args = {"device_name": "ESP32", "flash_kb": 64, "sram_kb": 32, "latency_ms": 50, "strategy": "random", "budget": 5,
            "objective": toy_objective(SPACE, 0)}
    with pytest.raises(error, match=fragment):
        experiments.nas_experiment(**{**args, **kwargs})


def test_nas_panel_click_runs_the_search(monkeypatch):
    import ipywidgets as w

    from course_lib import widgets
    from course_lib.experiments import nas as E

    monkeypatch.setattr(E, "panel_evaluator", lambda: experiments.CachedObjective(toy_objective(SPACE, 1)))
    panel = widgets.nas_panel(default_device="ESP32")
    panel.children[2].children[1].value = 5                       # budget
    panel.children[3].click()
    text, image = panel.children[-1].children
    assert "ESP32" in text.value and "evolution search, budget 5" in text.value
    assert isinstance(image, w.Image) and bytes(image.value).startswith(b"\x89PNG")
    panel.children[0].children[0].value = None                    # nothing chosen: a message, not a traceback
    panel.children[3].click()
    assert "Cannot search" in panel.children[-1].children[0].value and "must be" in panel.children[-1].children[0].value
