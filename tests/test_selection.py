"""The per-layer choices shared by pruning, Deep Compression and mixed precision: the scan, the
choice within an accuracy drop and the greedy knapsack, against brute force where it is exact."""
import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_lib import data, models, pruning, selection


@pytest.fixture(scope="module")
def split():
    return data.load("mnist", "validation").subset(200)


def test_the_scan_compresses_one_layer_at_a_time_and_leaves_the_model(split):
    model = models.build("lenet_300_100", seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []

    def compress(m, layer, setting):
        seen.append((layer, setting))
        return pruning.prune_weights(m, {layer: setting})[0]

    scan = selection.scan_layers(model, split, ["fc1", "fc3"], [0.0, 0.99], compress)
    assert seen == [("fc1", 0.0), ("fc1", 0.99), ("fc3", 0.0), ("fc3", 0.99)]
    assert [s for s, _ in scan["fc1"]] == [0.0, 0.99] and scan["fc1"][0][1] == scan["fc3"][0][1]
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="settings must hold at least one"):
        selection.scan_layers(model, split, ["fc1"], [], compress)
    with pytest.raises(TypeError, match="compress must be a callable"):
        selection.scan_layers(model, split, ["fc1"], [0.5], "prune")


def test_choosing_within_a_drop_takes_the_most_aggressive_setting_that_holds():
    scan = {"a": [(0.5, 0.97), (0.9, 0.95), (0.7, 0.969)], "b": [(0.5, 0.90)]}
    assert selection.choose_within_drop(scan, 0.98, 0.011, max, lambda _: 0.0) == {"a": 0.7, "b": 0.0}
    assert selection.choose_within_drop(scan, 0.98, 0.03, max, lambda _: 0.0) == {"a": 0.9, "b": 0.0}
    bits = {"a": [(2, 0.5), (4, 0.97), (6, 0.98)], "b": [(2, 0.1), (3, 0.2)]}
    assert selection.choose_within_drop(bits, 0.98, 0.01, min, max) == {"a": 4, "b": 3}
    for bad, error in [({}, TypeError), ({"a": []}, ValueError), ({"a": [(1,)]}, ValueError),
                       ({"a": [(1, 1.5)]}, ValueError)]:
        with pytest.raises(error):
            selection.choose_within_drop(bad, 0.9, 0.01, max, max)
    with pytest.raises(ValueError, match="max_drop"):
        selection.choose_within_drop(scan, 0.9, -0.1, max, max)


@given(st.data())
def test_the_knapsack_meets_the_budget_or_says_it_cannot(draw):
    layers = ["a", "b", "c"][:draw.draw(st.integers(1, 3))]
    options = {}
    for layer in layers:
        n = draw.draw(st.integers(1, 4))
        sizes = sorted(draw.draw(st.lists(st.integers(1, 100), min_size=n, max_size=n, unique=True)), reverse=True)
        accuracies = sorted(draw.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)), reverse=True)
        options[layer] = [(k, a, s) for k, (a, s) in enumerate(zip(accuracies, sizes))]
    rest = draw.draw(st.integers(0, 50))
    smallest = rest + sum(o[-1][2] for o in options.values())
    largest = rest + sum(o[0][2] for o in options.values())
    budget = draw.draw(st.integers(0, largest + 10))
    if budget < smallest:
        with pytest.raises(ValueError, match="cannot be met"):
            selection.greedy_knapsack(options, budget, rest)
        return
    chosen = selection.greedy_knapsack(options, budget, rest)
    total = rest + sum(options[layer][k][2] for layer, k in chosen.items())
    assert total <= budget
    if budget >= largest:
        assert all(k == 0 for k in chosen.values())                 # nothing to give up
    # No step further than needed: before the last step the total was over budget, so undoing some layer's last step
    # breaks the budget.
    if any(k > 0 for k in chosen.values()):
        assert any(total - options[layer][k][2] + options[layer][k - 1][2] > budget
                   for layer, k in chosen.items() if k > 0), (chosen, budget)


def test_the_knapsack_breaks_ties_by_the_first_layer_and_prices_per_unit_saved():
    options = {"a": [(8, 0.9, 100), (4, 0.8, 50)], "b": [(8, 0.9, 100), (4, 0.8, 50)]}
    assert selection.greedy_knapsack(options, 150) == {"a": 4, "b": 8}
    # "b" loses more in all, less per byte saved: it goes first.
    options = {"a": [(8, 0.9, 100), (4, 0.85, 90)], "b": [(8, 0.9, 100), (4, 0.8, 10)]}
    assert selection.greedy_knapsack(options, 110) == {"a": 8, "b": 4}
    with pytest.raises(ValueError, match="holds no"):
        selection.greedy_knapsack({"a": []}, 10)


def test_the_knapsack_matches_brute_force_on_a_small_case_where_greedy_is_exact():
    # Convex trade-offs (each further step costs more per byte): greedy is optimal, as brute force confirms.
    options = {"x": [(0, 1.0, 40), (1, 0.99, 30), (2, 0.95, 20)], "y": [(0, 1.0, 40), (1, 0.98, 30), (2, 0.90, 20)]}
    for budget in range(40, 81, 5):
        chosen = selection.greedy_knapsack(options, budget)
        best = max((sum(options[l][k][1] for l, k in zip("xy", ks)), ks)
                   for ks in itertools.product(range(3), repeat=2)
                   if sum(options[l][k][2] for l, k in zip("xy", ks)) <= budget)
        assert sum(options[l][k][1] for l, k in chosen.items()) == pytest.approx(best[0])


def test_one_parser_reads_every_per_layer_setting():
    def check_positive(value, name):
        if value <= 0:
            raise ValueError(f"{name} must be > 0, got {value}")

    layers = ["fc1", "fc2", "fc3"]
    assert selection.per_layer(3, layers, "bits", check_positive) == {"fc1": 3, "fc2": 3, "fc3": 3}
    assert selection.per_layer({"fc3": 2, "fc1": 4}, layers, "bits", check_positive) == {"fc1": 4, "fc3": 2}
    with pytest.raises(ValueError, match=r"bits names unknown layers.*unknown layers \['fc9'\]"):
        selection.per_layer({"fc9": 2}, layers, "bits", check_positive)
    with pytest.raises(ValueError, match=r"must name every weight layer.*missing \['fc2', 'fc3'\]"):
        selection.per_layer({"fc1": 2}, layers, "bits", check_positive, every_layer=True)
    with pytest.raises(ValueError, match=r"bits\['fc2'\] must be > 0, got 0"):
        selection.per_layer({"fc1": 2, "fc2": 0}, layers, "bits", check_positive)
    with pytest.raises(ValueError, match=r"^bits must be > 0"):
        selection.per_layer(-1, layers, "bits", check_positive)
