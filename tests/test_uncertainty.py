"""course_lib.uncertainty against scipy's own tests and against a bootstrap that resamples images one by one."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from course_lib import uncertainty as U


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 120), st.integers(0, 120))
def test_mcnemar_equals_scipys_exact_binomial_test(only_a, only_b):
    expected = 1.0 if only_a + only_b == 0 else stats.binomtest(only_a, only_a + only_b, 0.5).pvalue
    assert U.mcnemar_p(only_a, only_b) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_mcnemar_is_symmetric_and_small_only_for_lopsided_disagreements():
    assert U.mcnemar_p(45, 37) == U.mcnemar_p(37, 45)
    assert U.mcnemar_p(45, 37) > 0.4
    assert U.mcnemar_p(60, 20) < 1e-4


def test_the_multinomial_bootstrap_equals_resampling_images_one_by_one():
    """Drawing how many images fall in each group is the image-level bootstrap, in distribution."""
    rng = np.random.default_rng(1)
    total, only_a, only_b = 2000, 70, 45
    groups = np.array([0] * only_a + [1] * only_b + [2] * (total - only_a - only_b))
    draws = rng.choice(groups, size=(4000, total), replace=True)
    by_image = 100.0 * ((draws == 0).sum(1) - (draws == 1).sum(1)) / total
    low, high = U.paired_bootstrap_interval(only_a, only_b, total, resamples=20_000)
    assert low == pytest.approx(np.quantile(by_image, 0.025), abs=0.1)
    assert high == pytest.approx(np.quantile(by_image, 0.975), abs=0.1)
    assert low < 100.0 * (only_a - only_b) / total < high


def test_the_interval_is_the_same_for_the_same_seed():
    assert U.paired_bootstrap_interval(10, 5, 500, seed=3) == U.paired_bootstrap_interval(10, 5, 500, seed=3)


def test_compare_predictions_counts_disagreements_and_words_the_result():
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7] * 50)
    a = labels.clone()
    b = labels.clone()
    b[:40] = (b[:40] + 1) % 8                              # B wrong on 40 images A gets right
    result = U.compare_predictions(labels, a, b, names=("a", "b"))
    assert (result.only_a, result.only_b, result.total) == (40, 0, 400)
    assert result.difference == pytest.approx(10.0)
    assert result.verdict == "a ahead"
    assert "a ahead" in str(result) and "McNemar" in str(result)
    level = U.compare_predictions(labels, a, a, names=("a", "b"))
    assert level.verdict == "level within noise" and level.p_value == 1.0


def test_over_seeds_is_students_t_interval():
    values = [91.2, 91.5, 90.9, 91.1]
    spread = U.over_seeds(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert (spread.low, spread.high) == (pytest.approx(low), pytest.approx(high))
    assert spread.std == pytest.approx(np.std(values, ddof=1))


def test_compare_over_seeds_pairs_seed_by_seed():
    """A method better on every seed by about 0.3 is ahead, although the two spreads overlap."""
    a, b = [91.5, 90.8, 91.9], [91.2, 90.5, 91.6]
    result = U.compare_over_seeds([x + 0.01 * k for k, x in enumerate(a)], b, names=("a", "b"))
    assert result.verdict == "a ahead"
    assert result.a.low < result.b.high                 # unpaired, they would look level
    assert U.compare_over_seeds([1.0, 2.0, 3.0], [2.0, 1.0, 3.5]).verdict == "level within noise"


def test_verdict_words():
    assert U.verdict(0.1, 0.5, ("x", "y")) == "x ahead"
    assert U.verdict(-0.5, -0.1, ("x", "y")) == "y ahead"
    assert U.verdict(-0.1, 0.1) == "level within noise"


@pytest.mark.parametrize("call, match", [
    (lambda: U.disagreements(None, [True]), "correct_a"),
    (lambda: U.disagreements([True, False], [True]), "same images"),
    (lambda: U.disagreements([1, 0], [1, 1]), "True/False"),
    (lambda: U.disagreements([], []), "non-empty"),
    (lambda: U.mcnemar_p(-1, 3), "only_a"),
    (lambda: U.mcnemar_p(2, 1.5), "only_b"),
    (lambda: U.paired_bootstrap_interval(5, 5, 8), "total"),
    (lambda: U.paired_bootstrap_interval(1, 1, 10, level=1.5), "level"),
    (lambda: U.paired_bootstrap_interval(1, 1, 10, level=math.nan), "level"),
    (lambda: U.paired_bootstrap_interval(1, 1, 10, resamples=10), "resamples"),
    (lambda: U.compare_predictions([0, 1], [0, 1], [0]), "same images"),
    (lambda: U.compare_predictions(None, [0], [0]), "labels"),
    (lambda: U.compare_predictions([0], [0], [0], names=("only one",)), "names"),
    (lambda: U.over_seeds([91.0]), "at least two"),
    (lambda: U.over_seeds([91.0, math.nan]), "finite"),
    (lambda: U.over_seeds([91.0, 92.0], level=0), "level"),
    (lambda: U.compare_over_seeds([1.0, 2.0], [1.0, 2.0, 3.0]), "same seeds"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
