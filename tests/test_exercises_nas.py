import random

import numpy as np
import pytest
import torch

from course_lib import nas
from course_lib.exercises import nas as X
from course_lib.exercises.nas import HYPERVOLUME_CASES, KENDALL_CASES, LIMIT_CASES, MUTATE_OPTIONS


def _todo(*args, **kwargs):
    raise NotImplementedError


def _fails_with(result, hint):
    assert result.status == "fail", result
    assert hint in result.message, result.message


def test_every_nas_checker_reports_not_attempted_and_passes_its_reference():
    for check in (X.check_mutate_choices, X.check_hypervolume, X.check_violated_limits):
        assert check(_todo).status == "not attempted", check
    assert X.check_mutate_choices(X.mutate_choices_reference).passed
    assert X.check_hypervolume(X.hypervolume_reference).passed
    assert X.check_violated_limits(X.violated_limits_reference).passed


# ----------------------------------------------------------------------------- mutate_choices

def test_mutate_choices_reference_agrees_with_the_library_mutation():
    space = nas.SearchSpace()
    rng = random.Random(0)
    for _ in range(50):
        a = nas.sample(space, rng)
        choices = nas.to_choices(a, space)
        child = X.mutate_choices_reference(choices, nas.decisions(space), rng)
        nas.check_in_space(child, space)
        assert sum(child[k] != choices[k] for k in choices) == 1


def _changeable(options):
    return [k for k in options if len(options[k]) > 1]


def test_mutate_choices_checker_names_the_mistakes():
    def in_place(choices, options, rng):
        name = rng.choice(_changeable(options))
        choices[name] = rng.choice([v for v in options[name] if v != choices[name]])
        return choices
    _fails_with(X.check_mutate_choices(in_place), "build a new dict")

    def global_random(choices, options, rng):
        name = random.choice(_changeable(options))
        return {**choices, name: random.choice([v for v in options[name] if v != choices[name]])}
    _fails_with(X.check_mutate_choices(global_random), "global `random`")

    def maybe_same(choices, options, rng):
        name = rng.choice(_changeable(options))
        return {**choices, name: rng.choice(options[name])}
    _fails_with(X.check_mutate_choices(maybe_same), "OTHER values")

    def any_decision(choices, options, rng):             # may pick the single-option depth: nothing changes
        name = rng.choice(list(options))
        others = [v for v in options[name] if v != choices[name]]
        return {**choices, name: rng.choice(others)} if others else dict(choices)
    _fails_with(X.check_mutate_choices(any_decision), "skip decisions with a single option")

    def two_at_once(choices, options, rng):
        new = dict(choices)
        for name in rng.sample(_changeable(options), 2):
            new[name] = rng.choice([v for v in options[name] if v != choices[name]])
        return new
    _fails_with(X.check_mutate_choices(two_at_once), "changes ONE decision")

    def out_of_space(choices, options, rng):
        return {**choices, "stage1.width": choices["stage1.width"] + 1}
    _fails_with(X.check_mutate_choices(out_of_space), "not one of its options")

    def only_first(choices, options, rng):
        name = _changeable(options)[0]
        return {**choices, name: rng.choice([v for v in options[name] if v != choices[name]])}
    _fails_with(X.check_mutate_choices(only_first), "were never mutated")

    _fails_with(X.check_mutate_choices(lambda c, o, r: None), "forget `return`")
    assert set(MUTATE_OPTIONS) and X.check_mutate_choices(lambda c, o, r: 1 / 0).failed


# ----------------------------------------------------------------------------- hypervolume

def test_hypervolume_reference_agrees_with_the_library():
    for points, reference in HYPERVOLUME_CASES:
        assert X.hypervolume_reference(points, reference) == pytest.approx(nas.hypervolume(points, reference))
    g = random.Random(1)
    for _ in range(300):
        points = [(g.randint(0, 6) / 6, g.randint(0, 6)) for _ in range(g.randint(0, 9))]
        reference = (g.randint(0, 3) / 6, g.randint(3, 7))
        assert X.hypervolume_reference(points, reference) == pytest.approx(nas.hypervolume(points, reference))


def _strips(points, reference, **mistake):
    return X._sum_strips(points, reference, **mistake)


@pytest.mark.parametrize("mistake, hint", [
    (dict(to_reference=True), "rectangles overlap"),
    (dict(keep_dominated=True), "dominated point adds nothing"),
    (dict(keep_outside=True), "no better than the reference"),
    (dict(own_height=False), "ITS OWN point's accuracy"),
    (dict(descending=True), "ASCENDING"),
])
def test_hypervolume_checker_names_the_mistake(mistake, hint):
    _fails_with(X.check_hypervolume(lambda points, reference: _strips(points, reference, **mistake)), hint)


def test_hypervolume_checker_on_in_place_sorting_types_and_no_return():
    def sorts_in_place(points, reference):
        points.sort(key=lambda p: p[1])
        return X.hypervolume_reference(points, reference)
    _fails_with(X.check_hypervolume(sorts_in_place), "points.sort()")
    _fails_with(X.check_hypervolume(lambda points, reference: None), "forget `return`")
    _fails_with(X.check_hypervolume(lambda points, reference: [X.hypervolume_reference(points, reference)]),
                "expected a number")
    assert X.check_hypervolume(lambda p, r: torch.tensor(X.hypervolume_reference(p, r), dtype=torch.float64)).passed
    assert X.check_hypervolume(lambda p, r: np.float64(X.hypervolume_reference(p, r))).passed
    assert X.check_hypervolume(lambda p, r: 1 / 0).failed


# ----------------------------------------------------------------------------- violated_limits

def test_violated_limits_reference_agrees_with_the_library():
    for flash, sram, latency, limits in LIMIT_CASES:
        device = nas.TIGHT_BUDGET.__class__(**{**nas.TIGHT_BUDGET.__dict__, "storage_bytes": limits["flash_kb"] * 1024,
                                              "memory_bytes": limits["sram_kb"] * 1024})
        ms = limits["latency_ms"]
        constraints = nas.Constraints(device, None if ms is None else ms / 1000)
        costs = nas.CandidateCosts(1, 1, flash, sram, latency / 1000, device.name)
        assert list(nas.violated_limits(costs, constraints)) == X.violated_limits_reference(flash, sram, latency, limits)


def _rule(unit=1024, strict=False, sram=True, latency=True, none_means_zero=False):
    def violated_limits(flash_bytes, sram_bytes, latency_ms, limits):
        over = (lambda n, l: n >= l) if strict else (lambda n, l: n > l)
        out = []
        if over(flash_bytes, limits["flash_kb"] * unit):
            out.append("flash")
        if sram and over(sram_bytes, limits["sram_kb"] * unit):
            out.append("sram")
        limit = limits["latency_ms"]
        if latency and (limit is not None or none_means_zero) and over(latency_ms, limit or 0):
            out.append("latency")
        return out
    return violated_limits


@pytest.mark.parametrize("wrong, hint", [
    (_rule(unit=1), "multiply the KB by 1024"),
    (_rule(unit=1000), "1024 bytes (a KiB"),
    (_rule(strict=True), "EQUAL to its limit fits"),
    (_rule(sram=False), "check the SRAM too"),
    (_rule(latency=False), "check the latency too"),
])
def test_violated_limits_checker_names_the_mistakes(wrong, hint):
    _fails_with(X.check_violated_limits(wrong), hint)


def test_violated_limits_checker_on_none_latency_and_booleans():
    def compares_none(flash_bytes, sram_bytes, latency_ms, limits):
        return [k for k, bad in (("flash", flash_bytes > limits["flash_kb"] * 1024),
                                 ("sram", sram_bytes > limits["sram_kb"] * 1024),
                                 ("latency", latency_ms > limits["latency_ms"])) if bad]
    _fails_with(X.check_violated_limits(compares_none), "may be None")
    _fails_with(X.check_violated_limits(lambda f, s, l, lim: [f > lim["flash_kb"] * 1024, False, False]), "NAMES")


# ----------------------------------------------------------------------------- kendall_tau

def test_kendall_tau_reference_agrees_with_the_library_and_scipy():
    from scipy import stats
    g = random.Random(2)
    cases = list(KENDALL_CASES) + [([g.randint(0, 4) for _ in range(n)], [g.randint(0, 4) for _ in range(n)])
                                   for n in (2, 3, 5, 8, 12) for _ in range(20)]
    for x, y in cases:
        ours = X.kendall_tau_reference(x, y)
        library = nas.kendall_tau(x, y)
        if len(set(x)) == 1 or len(set(y)) == 1:
            assert np.isnan(ours) and np.isnan(library)
            continue
        assert ours == pytest.approx(library) == pytest.approx(stats.kendalltau(x, y).statistic)


@pytest.mark.parametrize("mistake, hint", [
    ("tau_a", "that is tau_a"),
    ("all_pairs", "count each pair once"),
    ("ties_concordant", "neither concordant nor discordant"),
    ("no_tie_correction", "not n_c + n_d"),
])
def test_kendall_tau_checker_names_the_mistake(mistake, hint):
    _fails_with(X.check_kendall_tau(lambda x, y: X._tau_variants(x, y)[mistake]), hint)


def test_kendall_tau_checker_on_constant_lists_in_place_sorting_and_types():
    def divides_by_zero(x, y):
        value = X.kendall_tau_reference(x, y)
        if value != value:
            return 0 / 0
        return value
    _fails_with(X.check_kendall_tau(divides_by_zero), "return math.nan")
    _fails_with(X.check_kendall_tau(lambda x, y: 0.0 if len(set(x)) == 1 else X.kendall_tau_reference(x, y)),
                "expected NaN")

    def sorts_in_place(x, y):
        value = X.kendall_tau_reference(x, y)
        x.sort()
        return value
    _fails_with(X.check_kendall_tau(sorts_in_place), "x.sort()")
    _fails_with(X.check_kendall_tau(lambda x, y: None), "forget `return`")
    assert X.check_kendall_tau(lambda x, y: np.float64(X.kendall_tau_reference(x, y))).passed
    assert X.check_kendall_tau(_todo).status == "not attempted"


# ----------------------------------------------------------------------------- mcnemar_p

def test_mcnemar_reference_agrees_with_the_library():
    from course_lib import uncertainty
    g = random.Random(3)
    for a, b in list(X.MCNEMAR_CASES) + [([g.random() < 0.8 for _ in range(n)], [g.random() < 0.7 for _ in range(n)])
                                         for n in (1, 5, 30, 200) for _ in range(10)]:
        assert X.mcnemar_p_reference(a, b) == pytest.approx(uncertainty.mcnemar_p(*uncertainty.disagreements(a, b)))


@pytest.mark.parametrize("mistake, hint", [
    ("one_sided", "two-sided"),
    ("not_clamped", "at most 1"),
    ("all_images", "DISAGREE"),
    ("strict_tail", "includes min itself"),
    ("normal", "EXACT test"),
])
def test_mcnemar_checker_names_the_mistake(mistake, hint):
    _fails_with(X.check_mcnemar_p(lambda a, b: X._mcnemar_variants(a, b).get(mistake, 1.0)), hint)


def test_mcnemar_checker_on_no_disagreement_in_place_changes_and_types():
    def divides(a, b):
        only_a = sum(x and not y for x, y in zip(a, b))
        only_b = sum(y and not x for x, y in zip(a, b))
        return X.mcnemar_p_reference(a, b) * (only_a + only_b) / (only_a + only_b)
    _fails_with(X.check_mcnemar_p(divides), "return 1.0")

    def flips(a, b):
        value = X.mcnemar_p_reference(a, b)
        a.reverse()
        return value
    _fails_with(X.check_mcnemar_p(flips), "correct_a")
    _fails_with(X.check_mcnemar_p(lambda a, b: None), "forget `return`")
    assert X.check_mcnemar_p(lambda a, b: torch.tensor(X.mcnemar_p_reference(a, b))).passed
    assert X.check_mcnemar_p(_todo).status == "not attempted"


# ----------------------------------------------------------------------------- naswot_score

def test_naswot_reference_agrees_with_the_library():
    from course_lib import architectures
    images = torch.randn(24, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    g = random.Random(5)
    for k in range(4):
        model = architectures.build_model(nas.sample(nas.TIGHT_SPACE, g), seed=k)
        assert X.naswot_score_reference(nas.activation_codes(model, images)) == pytest.approx(
            nas.naswot(model, images), rel=1e-12)
    assert all(isinstance(codes, torch.Tensor) and codes.dtype == torch.float32 for codes, _ in X.naswot_cases())


@pytest.mark.parametrize("mistake, hint", [
    ("hamming", "AGREE"),
    ("active_only", "inactive for both"),
    ("log10", "natural logarithm"),
    ("det_overflow", "overflows"),
    ("per_unit", "do not divide"),
])
def test_naswot_checker_names_the_mistake(mistake, hint):
    _fails_with(X.check_naswot_score(lambda codes: X._naswot_variants(codes)[mistake]), hint)


def test_naswot_checker_on_a_singular_kernel_in_place_changes_and_types():
    import math

    def log_of_det(codes):
        C = codes.double()
        return math.log(torch.linalg.det(C @ C.T + (1 - C) @ (1 - C).T).item())
    _fails_with(X.check_naswot_score(log_of_det), "math.log(0) raises")
    _fails_with(X.check_naswot_score(lambda codes: 0.0 if len(set(map(tuple, codes.tolist()))) < len(codes)
                                     else X.naswot_score_reference(codes)), "expected -inf")

    def flips(codes):
        codes[0] = 1 - codes[0]
        return X.naswot_score_reference(codes)
    _fails_with(X.check_naswot_score(flips), "changed codes in place")
    _fails_with(X.check_naswot_score(lambda codes: None), "forget `return`")

    def in_float32(codes):                   # float32 throughout: within the checker's tolerance
        return torch.linalg.slogdet(codes @ codes.T + (1 - codes) @ (1 - codes).T)[1]
    assert X.check_naswot_score(in_float32).passed
    assert X.check_naswot_score(X.naswot_score_reference).passed
    assert X.check_naswot_score(_todo).status == "not attempted"


# ----------------------------------------------------------------------------- reinforce_update

def test_reinforce_update_reference_is_the_librarys_update():
    """The library's REINFORCE loop, one step, written out: theta + lr (R - b)(onehot(a) - softmax(theta))."""
    from course_lib.nas.strategies import softmax
    g = np.random.default_rng(0)
    for _ in range(50):
        logits = g.normal(size=g.integers(2, 6)) * 3
        choice, reward, baseline, lr = int(g.integers(len(logits))), g.random(), g.random(), 0.5
        grad = -softmax(logits)
        grad[choice] += 1.0
        assert X.reinforce_update_reference(list(logits), choice, reward, baseline, lr) == \
            pytest.approx(list(logits + lr * (reward - baseline) * grad))


@pytest.mark.parametrize("mistake, hint", [
    ("no_baseline", "ADVANTAGE"),
    ("descent", "not minus"),
    ("onehot_only", "every logit moves"),
    ("gradient_of_p", "gradient of its LOG"),
    ("logits_as_p", "logits are not probabilities"),
])
def test_reinforce_checker_names_the_mistake(mistake, hint):
    _fails_with(X.check_reinforce_update(lambda *args: X._reinforce_variants(*args)[mistake]), hint)


def test_reinforce_checker_on_overflow_in_place_changes_and_types():
    import math

    def naive(logits, choice, reward, baseline, lr):
        e = [math.exp(t) for t in logits]
        return [t + lr * (reward - baseline) * ((i == choice) - x / sum(e)) for i, (t, x) in enumerate(zip(logits, e))]
    _fails_with(X.check_reinforce_update(naive), "subtract the largest logit")

    def in_place(logits, *rest):
        new = X.reinforce_update_reference(logits, *rest)
        logits[:] = new
        return new
    _fails_with(X.check_reinforce_update(in_place), "changes the caller's logits")
    _fails_with(X.check_reinforce_update(lambda *args: None), "forget `return`")
    _fails_with(X.check_reinforce_update(lambda *args: X.reinforce_update_reference(*args)[:-1]), "return them all")
    assert X.check_reinforce_update(lambda *args: np.array(X.reinforce_update_reference(*args))).passed
    assert X.check_reinforce_update(_todo).status == "not attempted"


# ----------------------------------------------------------------------------- layer_bits

def test_layer_bits_reference_agrees_with_the_encodings_of_a_pruned_tensor():
    """min(dense, bitmask) of encoding.storage_bits on a tensor pruned by magnitude to the same sparsity."""
    from course_lib import encoding, pruning
    g = torch.Generator().manual_seed(0)
    for n, s, b in list(X.LAYER_BITS_CASES) + [(200, 0.6, 3), (64, 0.1, 8), (500, 0.9, 5)]:
        w = torch.randn(n, generator=g) * pruning.magnitude_mask(torch.randn(n, generator=g), s)
        expected = min(encoding.storage_bits(w, b, e) for e in ("dense", "bitmask"))
        assert X.layer_bits_reference(n, s, b) == expected, (n, s, b)


@pytest.mark.parametrize("mistake, hint", [
    ("no_bitmask", "one bit per weight"),
    ("bitmask_in_bytes", "n BITS"),
    ("kept_as_zeros", "fraction of ZEROS"),
    ("always_bitmask", "store it dense"),
    ("bytes", "not bytes"),
    ("truncated", "not int"),
])
def test_layer_bits_checker_names_the_mistake(mistake, hint):
    _fails_with(X.check_layer_bits(lambda n, s, b: X._layer_bits_variants(n, s, b)[mistake]), hint)


def test_layer_bits_checker_on_none_and_not_attempted():
    _fails_with(X.check_layer_bits(lambda n, s, b: None), "forget `return`")
    assert X.check_layer_bits(_todo).status == "not attempted"
