"""Stand-ins for accuracy that cost nothing to evaluate, for testing the search strategies and the
parallel study's machinery (test scaffolding: kept out of the library learners read).

Importable by the parallel study's spawned workers: pytest puts this folder on ``sys.path`` and
``multiprocessing``'s spawn start method hands a child its parent's path.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from course_lib.architectures import Architecture
from course_lib.checks import check_int, check_type
from course_lib.data import SEED_RANGE
from course_lib.nas import SearchSpace
from course_lib.nas.space import check_in_space, decisions, sample, to_choices


@dataclass(frozen=True)
class ToyObjective:
    """A stand-in for accuracy that costs nothing to evaluate: how close a network is to a hidden
    ``target`` of the same space, :math:`1 - \\frac{1}{T}\\sum_t d_t` over the decisions, with
    :math:`d_t` = 0 / 1 for a different block type and, for an ordered decision (resolution,
    width, kernel, depth, expansion), the distance between option indices over the largest one.
    The expansion counts only where both are inverted residuals. 1 at the target; smooth enough
    for a search to climb. For testing strategies and for the notebook's first runs; picklable,
    so parallel workers can use it.

    Raises (on construction):
        TypeError / OutOfSpaceError: ``target`` not an Architecture of ``space``.
    """
    space: SearchSpace
    target: Architecture

    def __post_init__(self) -> None:
        check_in_space(self.target, self.space)

    def __call__(self, architecture: Architecture) -> float:
        got, want = to_choices(architecture, self.space), to_choices(self.target, self.space)
        total, count = 0.0, 0
        for name, values in decisions(self.space).items():
            if name.endswith(".expansion"):
                block = name.replace("expansion", "block")
                if got[block] != "inverted_residual" or want[block] != "inverted_residual":
                    continue
            count += 1
            if name.endswith(".block"):
                total += got[name] != want[name]
            elif len(values) > 1:
                total += abs(values.index(got[name]) - values.index(want[name])) / (len(values) - 1)
        return 1.0 - total / count


def toy_objective(space: SearchSpace, seed: int = 0) -> ToyObjective:
    """A :class:`ToyObjective` whose target is ``sample(space, random.Random(seed))``."""
    check_type(space, "space", SearchSpace, "a SearchSpace")
    check_int(seed, "seed", *SEED_RANGE)
    return ToyObjective(space, sample(space, random.Random(seed)))


def toy_trial_objective(trial) -> float:
    """A picklable objective for trying the machinery: :math:`-(x - 2)^2 - (y + 1)^2`, maximal
    at (2, -1)."""
    x = trial.suggest_float("x", -5.0, 5.0)
    y = trial.suggest_float("y", -5.0, 5.0)
    return -((x - 2.0) ** 2) - (y + 1.0) ** 2

