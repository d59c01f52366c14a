"""How sure is a comparison? Two models on the same test images, or one experiment repeated over seeds.

Two models that differ by 8 test images in 5,000 may differ, or the 8 images may be the luck of which images
happen to be in the test set. Every comparison the course states is worded by the tools below.

**Two models, one test set: only the images they disagree on count.** Let ``only_a`` be the number of images
model A gets right and B wrong, ``only_b`` the reverse. The images both get right, or both wrong, say nothing
about which is better. If the two were equally good, each disagreement would fall either way with
probability 1/2, so ``only_a ~ Binomial(only_a + only_b, 1/2)``. McNemar's exact test (McNemar 1947; the test
Dietterich 1998, "Approximate statistical tests for comparing supervised classification learning algorithms",
Neural Computation 10(7), §3.1 recommends for one test set) gives the two-sided p-value

    p = min(1, 2 · P(X <= min(only_a, only_b))),   X ~ Binomial(only_a + only_b, 1/2).

**How large the difference may be: a paired bootstrap interval** (Efron & Tibshirani 1993, "An Introduction
to the Bootstrap", ch. 13, percentile interval). Draw n images with replacement from the n test images, many
times, and take the accuracy difference each time; the middle 95 % of those differences is the interval. An
image only moves the difference if it is one of the disagreements, so drawing n images comes down to drawing
how many fall in each of three groups (only A right, only B right, the rest): one multinomial draw per
resample, exactly the same distribution as resampling the images one by one, and fast.

**Over seeds** (a training run repeated with seeds 0, 1, 2, ...): the mean, the sample standard deviation and
Student's t interval for the mean, ``mean ± t(level, n - 1) · std / sqrt(n)``. Two methods trained on the same
seeds are compared by their difference seed by seed (a paired interval).

**The words follow the interval**: "A ahead" or "B ahead" only when the interval excludes zero, otherwise
"level within noise". That is a result, not a failure to find one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

__all__ = ["Comparison", "Spread", "SeedComparison", "disagreements", "mcnemar_p", "paired_bootstrap_interval",
           "compare_predictions", "over_seeds", "compare_over_seeds", "verdict"]

RESAMPLES = 10_000


def _as_bool_vector(values, name: str) -> np.ndarray:
    if values is None:
        raise TypeError(f"{name} must be a vector of True/False (one per test image), got None")
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty vector (one entry per test image), got shape {array.shape}")
    if array.dtype != bool:
        raise TypeError(f"{name} must hold True/False (image right or wrong), got dtype {array.dtype}")
    return array


def _check_level(level: float) -> None:
    if not isinstance(level, (int, float)) or not 0 < level < 1 or math.isnan(level):
        raise ValueError(f"level must be a probability strictly between 0 and 1 (e.g. 0.95), got {level!r}")


def verdict(low: float, high: float, names: tuple[str, str] = ("A", "B")) -> str:
    """The words an interval for ``a - b`` allows: "A ahead", "B ahead" or "level within noise"."""
    if low > 0:
        return f"{names[0]} ahead"
    if high < 0:
        return f"{names[1]} ahead"
    return "level within noise"


def disagreements(correct_a, correct_b) -> tuple[int, int]:
    """(images only A gets right, images only B gets right), from two True/False vectors over the same images."""
    a, b = _as_bool_vector(correct_a, "correct_a"), _as_bool_vector(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b must cover the same images, got {a.size} and {b.size} entries")
    return int((a & ~b).sum()), int((~a & b).sum())


def mcnemar_p(only_a: int, only_b: int) -> float:
    """McNemar's exact two-sided p-value from the two disagreement counts (1.0 when there are none)."""
    for name, value in (("only_a", only_a), ("only_b", only_b)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a count (an integer >= 0), got {value!r}")
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_bootstrap_interval(only_a: int, only_b: int, total: int, level: float = 0.95,
                              resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval for accuracy(A) - accuracy(B), in points (%), on ``total`` test images."""
    _check_level(level)
    if not isinstance(total, (int, np.integer)) or total <= 0 or only_a < 0 or only_b < 0 or only_a + only_b > total:
        raise ValueError(f"need 0 <= only_a + only_b <= total and total > 0, got only_a={only_a}, "
                         f"only_b={only_b}, total={total}")
    if not isinstance(resamples, int) or resamples < 100:
        raise ValueError(f"resamples must be an integer >= 100, got {resamples!r}")
    generator = np.random.default_rng(seed)
    shares = [only_a / total, only_b / total, (total - only_a - only_b) / total]
    counts = generator.multinomial(total, shares, size=resamples)
    differences = 100.0 * (counts[:, 0] - counts[:, 1]) / total
    tail = (1 - level) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Comparison:
    """Two models on the same test images: accuracies (%), disagreements, McNemar's p and the interval."""
    names: tuple[str, str]
    accuracies: tuple[float, float]
    only_a: int
    only_b: int
    total: int
    p_value: float
    low: float
    high: float
    level: float

    @property
    def difference(self) -> float:
        """accuracy(A) - accuracy(B), in points."""
        return self.accuracies[0] - self.accuracies[1]

    @property
    def verdict(self) -> str:
        return verdict(self.low, self.high, self.names)

    def __str__(self) -> str:
        a, b = self.names
        return (f"{a} {self.accuracies[0]:.2f} % vs {b} {self.accuracies[1]:.2f} %: {self.difference:+.2f} points, "
                f"{self.level:.0%} interval [{self.low:+.2f}, {self.high:+.2f}]; {self.only_a} images only {a} gets "
                f"right, {self.only_b} only {b}, McNemar p = {self.p_value:.2g}: {self.verdict}")


def compare_predictions(labels, predictions_a, predictions_b, names: tuple[str, str] = ("A", "B"),
                        level: float = 0.95, seed: int = 0) -> Comparison:
    """Compare two models' predicted classes on the same labelled test images (tensors or arrays of class ids)."""
    arrays = []
    for name, values in (("labels", labels), ("predictions_a", predictions_a), ("predictions_b", predictions_b)):
        if values is None:
            raise TypeError(f"{name} must be a vector of class ids, got None")
        array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
        if array.ndim != 1 or array.size == 0:
            raise ValueError(f"{name} must be a non-empty vector of class ids, got shape {array.shape}")
        arrays.append(array)
    if len({a.size for a in arrays}) != 1:
        raise ValueError(f"labels, predictions_a and predictions_b must cover the same images, got "
                         f"{[a.size for a in arrays]} entries")
    if len(names) != 2 or not all(isinstance(n, str) for n in names):
        raise ValueError(f"names must be two strings, got {names!r}")
    labels_, a, b = arrays
    correct_a, correct_b = a == labels_, b == labels_
    only_a, only_b = disagreements(correct_a, correct_b)
    low, high = paired_bootstrap_interval(only_a, only_b, labels_.size, level, seed=seed)
    return Comparison(tuple(names), (100.0 * correct_a.mean(), 100.0 * correct_b.mean()), only_a, only_b,
                      labels_.size, mcnemar_p(only_a, only_b), low, high, level)


def _as_values(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float) if values is not None else None
    if array is None or array.ndim != 1 or array.size < 2:
        raise ValueError(f"{name} must hold at least two results (one per seed), got {values!r}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite numbers, got {values!r}")
    return array


@dataclass(frozen=True)
class Spread:
    """One result over seeds: the values, their mean, sample standard deviation and t interval for the mean."""
    values: tuple[float, ...]
    mean: float
    std: float
    low: float
    high: float
    level: float

    def __str__(self) -> str:
        return (f"{self.mean:.2f} ± {self.std:.2f} (mean ± std over {len(self.values)} seeds; "
                f"{self.level:.0%} interval [{self.low:.2f}, {self.high:.2f}])")


def over_seeds(values, level: float = 0.95) -> Spread:
    """Mean, standard deviation (n - 1) and Student's t interval of one result measured over several seeds."""
    _check_level(level)
    array = _as_values(values, "values")
    mean, std = float(array.mean()), float(array.std(ddof=1))
    half = float(stats.t.ppf((1 + level) / 2, array.size - 1)) * std / math.sqrt(array.size)
    return Spread(tuple(float(v) for v in array), mean, std, mean - half, mean + half, level)


@dataclass(frozen=True)
class SeedComparison:
    """Two methods run with the same seeds: each one's spread and the paired difference a - b."""
    names: tuple[str, str]
    a: Spread
    b: Spread
    difference: Spread

    @property
    def verdict(self) -> str:
        return verdict(self.difference.low, self.difference.high, self.names)

    def __str__(self) -> str:
        n = len(self.difference.values)
        return (f"{self.names[0]} {self.a.mean:.2f} ± {self.a.std:.2f} vs {self.names[1]} {self.b.mean:.2f} ± "
                f"{self.b.std:.2f} over {n} seeds: difference {self.difference.mean:+.2f}, {self.difference.level:.0%} "
                f"interval [{self.difference.low:+.2f}, {self.difference.high:+.2f}]: {self.verdict}")


def compare_over_seeds(values_a, values_b, names: tuple[str, str] = ("A", "B"), level: float = 0.95) -> SeedComparison:
    """Compare two methods run with the same seeds, seed by seed (``values_a[k]`` and ``values_b[k]`` share seed k)."""
    a, b = _as_values(values_a, "values_a"), _as_values(values_b, "values_b")
    if a.size != b.size:
        raise ValueError(f"values_a and values_b must come from the same seeds, got {a.size} and {b.size} results")
    if len(names) != 2 or not all(isinstance(n, str) for n in names):
        raise ValueError(f"names must be two strings, got {names!r}")
    return SeedComparison(tuple(names), over_seeds(a, level), over_seeds(b, level), over_seeds(a - b, level))
