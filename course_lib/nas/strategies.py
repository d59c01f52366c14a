"""Search strategies: five ways to spend the same budget of evaluations.

Every strategy here gets the same three things, so that they can be compared fairly:

* an *objective* ``objective(architecture) -> float``, the accuracy to maximise (a supernet's
  validation accuracy, :class:`~course_lib.nas.supernet.SubnetEvaluator`, or a short training,
  :class:`~course_lib.nas.standalone.ShortTraining`);
* a *budget*: the number of objective evaluations (the expensive part: each stands for a
  trained network). A proposal that violates the :class:`~course_lib.nas.costs.Constraints` is
  costed (cheap, no training), recorded as rejected and *not* evaluated, so it does not use the
  budget, as MnasNet and MCUNet filter candidates by their costs before training them;
* a seed, from which all of its randomness flows.

The strategies:

* :func:`random_search`: each decision uniformly at random. The baseline that Li & Talwalkar
  (2019, "Random Search and Reproducibility for Neural Architecture Search") found hard to beat.
* :func:`regularized_evolution`: Real, Aggarwal, Huang & Le (2019), "Regularized Evolution for
  Image Classifier Architecture Search", Algorithm 1 (Sec. 2): a population of :math:`P` models;
  each cycle draws :math:`S` at random, mutates the best of them (:func:`~course_lib.nas.space.mutate`),
  evaluates the child, adds it and removes the *oldest* (aging, not the worst).
* :func:`reinforce_search`: Zoph & Le (2017), "Neural Architecture Search with Reinforcement
  Learning", Sec. 3.2: a policy samples each decision, the accuracy :math:`R` is the reward, and
  REINFORCE (Williams 1992) climbs :math:`\\nabla_\\theta J \\approx \\sum_t \\nabla_\\theta \\log
  P(a_t; \\theta)\\,(R - b)` with :math:`b` an exponential moving average of past rewards. Here
  the policy is one independent softmax per decision (the paper's RNN controller, without the RNN),
  so :math:`\\nabla_{\\theta_t} \\log P(a_t) = \\mathbb{1}_{a_t} - \\mathrm{softmax}(\\theta_t)`.
  A rejected proposal gets reward 0 (it teaches the policy the constraints, without a training).
* :func:`tpe_search`: Optuna's tree-structured Parzen estimator (Bergstra et al. 2011,
  "Algorithms for Hyper-Parameter Optimization", Sec. 4): densities :math:`l(x)` of the good
  trials and :math:`g(x)` of the others, the next trial maximising :math:`l(x)/g(x)`; with
  constraints (``Trial.set_constraint``) infeasible trials rank below every feasible one.
* :func:`nsga2_search`: Optuna's NSGA-II (Deb, Pratap, Agarwal & Meyarivan 2002, "A Fast and
  Elitist Multiobjective Genetic Algorithm: NSGA-II"): non-dominated sorting and crowding distance
  on (accuracy, latency) at once, for the accuracy-latency Pareto front.

Each returns a :class:`SearchResult`: every proposal with its costs and feasibility, the
accuracies of those evaluated, and the best-so-far curve (the best accuracy after each
evaluation). A DARTS-style gradient search lives apart, in :mod:`course_lib.nas.darts`.

Taught in ``notebooks/07_automl_search.ipynb``.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..architectures import Architecture
from ..checks import check_choice, check_int, check_real, check_type, describe, is_real
from ..data import SEED_RANGE
from .costs import CandidateCosts, Constraints, candidate_costs, search_device, violated_limits
from .pareto import pareto_front
from .space import SearchSpace, decisions, from_choices, mutate, sample

__all__ = ["STRATEGIES", "DEFAULT_DEVICE", "MAX_REJECTIONS_PER_EVALUATION", "Objective", "Candidate",
           "SearchResult", "random_search", "regularized_evolution", "softmax", "reinforce_search", "quiet_optuna",
           "constraint_values", "tpe_search", "nsga2_search", "run_search"]

STRATEGIES = ("random", "evolution", "reinforce", "tpe", "nsga2")
DEFAULT_DEVICE = "Arduino Nano 33 BLE Sense"     # where costs are estimated when no constraints are given
MAX_REJECTIONS_PER_EVALUATION = 50               # then the constraints are deemed (almost) impossible

Objective = Callable[[Architecture], float]


# ----------------------------------------------------------------------------- results

@dataclass(frozen=True)
class Candidate:
    """One proposal of a search: the network, its costs, the limits it violates, and its
    accuracy (None when it was rejected by the constraints and not evaluated)."""
    architecture: Architecture
    costs: CandidateCosts
    violations: tuple[str, ...]
    accuracy: float | None

    @property
    def feasible(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class SearchResult:
    """What every strategy returns.

    ``candidates``: every proposal in order, evaluated or rejected. ``best_so_far[k]``: the best
    accuracy among the first ``k + 1`` evaluations (length ``budget``)."""
    strategy: str
    seed: int
    budget: int
    candidates: tuple[Candidate, ...]
    best_so_far: tuple[float, ...]

    @property
    def evaluated(self) -> list[Candidate]:
        """The candidates that were evaluated (all feasible), in order."""
        return [c for c in self.candidates if c.accuracy is not None]

    @property
    def rejected(self) -> list[Candidate]:
        return [c for c in self.candidates if c.accuracy is None]

    @property
    def best(self) -> Candidate:
        """The most accurate evaluated candidate (the first one, on a tie)."""
        evaluated = self.evaluated
        return max(evaluated, key=lambda c: (c.accuracy, -evaluated.index(c)))

    def front(self, cost: str = "latency_s") -> list[Candidate]:
        """The evaluated candidates on the Pareto front of accuracy (maximised) and ``cost``
        (a field of :class:`~course_lib.nas.costs.CandidateCosts`, minimised), cheapest first."""
        check_choice(cost, "cost", ("latency_s", "macs", "parameters", "flash_bytes", "peak_activation_bytes"))
        evaluated = self.evaluated
        points = [(c.accuracy, float(getattr(c.costs, cost))) for c in evaluated]
        return [evaluated[i] for i in pareto_front(points)]


class _Evaluations:
    """The bookkeeping every strategy shares: cost a proposal, reject it if it violates the
    constraints, else evaluate it; count the budget; remember every candidate."""

    def __init__(self, space: SearchSpace, objective: Objective, budget: int, constraints: Constraints | None):
        self.space, self.objective, self.budget, self.constraints = space, objective, budget, constraints
        self.device = constraints.device if constraints is not None else search_device(DEFAULT_DEVICE)
        self.candidates: list[Candidate] = []
        self.best_so_far: list[float] = []
        self._costs: dict[Architecture, CandidateCosts] = {}          # costing twice gives the same

    @property
    def done(self) -> bool:
        return len(self.best_so_far) >= self.budget

    def propose(self, architecture: Architecture) -> Candidate:
        if architecture not in self._costs:
            self._costs[architecture] = candidate_costs(architecture, self.device)
        costs = self._costs[architecture]
        violations = violated_limits(costs, self.constraints) if self.constraints is not None else ()
        accuracy = None
        if not violations:
            accuracy = self.objective(architecture)
            if not is_real(accuracy) or not math.isfinite(accuracy):
                raise ValueError(f"objective must return a finite number (an accuracy), got {describe(accuracy)} "
                                 f"for {architecture}")
            accuracy = float(accuracy)
            self.best_so_far.append(max(accuracy, self.best_so_far[-1]) if self.best_so_far else accuracy)
        elif len(self.candidates) - len(self.best_so_far) >= MAX_REJECTIONS_PER_EVALUATION * self.budget:
            raise ValueError(f"the constraints rejected {len(self.candidates)} proposals for "
                             f"{len(self.best_so_far)} evaluations: almost no network of the space meets "
                             f"them ({self.constraints.describe()}); loosen them or shrink the space")
        candidate = Candidate(architecture, costs, violations, accuracy)
        self.candidates.append(candidate)
        return candidate

    def result(self, strategy: str, seed: int) -> SearchResult:
        return SearchResult(strategy, seed, self.budget, tuple(self.candidates), tuple(self.best_so_far))


def _check_search(space, objective, budget, seed, constraints) -> None:
    check_type(space, "space", SearchSpace, "a SearchSpace")
    check_type(objective, "objective", Callable, "a callable objective(architecture) -> accuracy")
    check_int(budget, "budget", 1)
    check_int(seed, "seed", *SEED_RANGE)
    check_type(constraints, "constraints", Constraints, "Constraints (from nas.device_constraints)",
               allow_none=True)


# ----------------------------------------------------------------------------- random search

def random_search(space: SearchSpace, objective: Objective, budget: int, seed: int = 0,
                  constraints: Constraints | None = None) -> SearchResult:
    """Sample networks uniformly (:func:`~course_lib.nas.space.sample`, a ``random.Random(seed)``)
    until ``budget`` of them have been evaluated.

    Raises:
        TypeError / ValueError: a bad space, objective, ``budget`` (an int >= 1), ``seed``
            (an int in [0, 2**32 - 1]) or constraints; constraints that reject nearly every
            proposal; an objective that returns something other than a finite number.
    """
    _check_search(space, objective, budget, seed, constraints)
    rng = random.Random(seed)
    run = _Evaluations(space, objective, budget, constraints)
    while not run.done:
        run.propose(sample(space, rng))
    return run.result("random", seed)


# ----------------------------------------------------------------------------- regularised evolution

def regularized_evolution(space: SearchSpace, objective: Objective, budget: int, seed: int = 0,
                          constraints: Constraints | None = None, population_size: int = 20,
                          sample_size: int = 5) -> SearchResult:
    """Regularised (aging) evolution, Real et al. (2019), Algorithm 1, with ``budget`` playing
    the role of the paper's :math:`C` cycles plus the initial population:

    1. evaluate ``population_size`` (:math:`P`) random networks: the population, a queue;
    2. repeat: draw ``sample_size`` (:math:`S`) members at random (without replacement), take the
       most accurate as the parent, evaluate ``mutate(parent)``, append the child and remove the
       oldest member (the paper's "aging": a good model has to be rediscovered by its
       descendants to survive, which regularises against lucky evaluations).

    A rejected child (over the constraints) is mutated again from the same parent.

    Raises:
        TypeError / ValueError: as :func:`random_search`; ``population_size`` not an int >= 2,
            ``sample_size`` not an int in [1, population_size].
    """
    _check_search(space, objective, budget, seed, constraints)
    check_int(population_size, "population_size", 2)
    check_int(sample_size, "sample_size", 1, population_size)
    rng = random.Random(seed)
    run = _Evaluations(space, objective, budget, constraints)
    population: deque[Candidate] = deque()
    while len(population) < population_size and not run.done:
        candidate = run.propose(sample(space, rng))
        if candidate.accuracy is not None:
            population.append(candidate)
    while not run.done:
        contenders = rng.sample(range(len(population)), sample_size)
        parent = population[max(contenders, key=lambda i: (population[i].accuracy, -i))]
        child = run.propose(mutate(parent.architecture, space, rng))
        if child.accuracy is not None:
            population.append(child)
            population.popleft()                     # aging: the oldest dies, not the worst
    return run.result("evolution", seed)


# ----------------------------------------------------------------------------- REINFORCE

def softmax(logits: np.ndarray) -> np.ndarray:
    """:math:`p_i = e^{\\theta_i - \\max\\theta} / \\sum_j e^{\\theta_j - \\max\\theta}` (stable)."""
    z = np.exp(logits - logits.max())
    return z / z.sum()


def reinforce_search(space: SearchSpace, objective: Objective, budget: int, seed: int = 0,
                     constraints: Constraints | None = None, learning_rate: float = 0.5,
                     baseline_decay: float = 0.8) -> SearchResult:
    """A REINFORCE controller (Zoph & Le 2017, Sec. 3.2) with one independent categorical
    distribution per decision, logits :math:`\\theta_t` starting at 0 (uniform).

    For each proposal :math:`a = (a_1, \\dots, a_T)`, sampled from ``np.random.default_rng(seed)``,
    with reward :math:`R` (the accuracy; 0 for a rejected proposal) and baseline :math:`b`:

    .. math:: \\theta_t \\leftarrow \\theta_t + \\eta\\,(R - b)\\,(\\mathbb{1}_{a_t} - \\mathrm{softmax}(\\theta_t)),
              \\qquad b \\leftarrow \\beta b + (1 - \\beta) R

    (the first reward sets :math:`b`). One update per proposal (the paper averaged over
    :math:`m` sampled networks per step and used Adam; plain gradient ascent suffices here).

    Raises:
        TypeError / ValueError: as :func:`random_search`; ``learning_rate`` not a finite number
            > 0; ``baseline_decay`` not in [0, 1).
    """
    _check_search(space, objective, budget, seed, constraints)
    check_real(learning_rate, "learning_rate", 0, math.inf, low_open=True, high_open=True)
    check_real(baseline_decay, "baseline_decay", 0, 1, high_open=True)
    rng = np.random.default_rng(seed)
    options = decisions(space)
    logits = {name: np.zeros(len(values)) for name, values in options.items()}
    baseline = None
    run = _Evaluations(space, objective, budget, constraints)
    while not run.done:
        index = {name: int(rng.choice(len(options[name]), p=softmax(logits[name]))) for name in options}
        candidate = run.propose(from_choices({name: options[name][i] for name, i in index.items()}, space))
        reward = candidate.accuracy if candidate.accuracy is not None else 0.0
        baseline = reward if baseline is None else baseline
        advantage = reward - baseline
        for name, i in index.items():
            grad_log_p = -softmax(logits[name])          # d log p_i / d theta = onehot(i) - p
            grad_log_p[i] += 1.0
            logits[name] = logits[name] + learning_rate * advantage * grad_log_p
        baseline = baseline_decay * baseline + (1 - baseline_decay) * reward
    return run.result("reinforce", seed)


# ----------------------------------------------------------------------------- Optuna: TPE and NSGA-II

@contextlib.contextmanager
def quiet_optuna():
    """Optuna's per-trial INFO log silenced for the duration (its verbosity restored after)."""
    import optuna

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def constraint_values(costs: CandidateCosts, constraints: Constraints | None) -> dict[str, float]:
    """Optuna's constraint values (a trial is feasible when every one is <= 0): the relative
    excess of each limit, :math:`\\text{need} / \\text{budget} - 1`, for ``"flash"``, ``"sram"``
    and, with a latency limit, ``"latency"``, so that of two infeasible trials the one nearer
    its limits ranks better. Empty without constraints."""
    if constraints is None:
        return {}
    d = constraints.device
    memory = costs.peak_activation_bytes + (costs.flash_bytes if d.weights_in_memory else 0)
    values = {"flash": costs.flash_bytes / max(constraints.flash_available, 1) - 1,
              "sram": memory / max(constraints.sram_available, 1) - 1}
    if constraints.max_latency_s is not None:
        values["latency"] = costs.latency_s / constraints.max_latency_s - 1
    return values


def _set_constraints(trial, values: dict[str, float]) -> None:
    """Optuna >= 5: ``trial.set_constraint`` (which every constrained sampler reads); Optuna 4:
    a user attribute read back by :func:`_trial_constraints` through ``constraints_func``."""
    if hasattr(trial, "set_constraint"):
        for name, value in values.items():
            trial.set_constraint(name, value)
    else:
        trial.set_user_attr("constraint", list(values.values()) or [0.0])


def _trial_constraints(trial) -> list[float]:
    return trial.user_attrs.get("constraint", [0.0])


def _constraint_option() -> dict:
    """The sampler argument that makes it read the constraints: none on Optuna >= 5, where
    ``constraints_func`` is deprecated in favour of ``Trial.set_constraint``."""
    import optuna

    return {} if hasattr(optuna.trial.Trial, "set_constraint") else {"constraints_func": _trial_constraints}


def _suggest(trial, space: SearchSpace) -> Architecture:
    """One categorical parameter per decision (the inert expansion included: the flat space)."""
    return from_choices({name: trial.suggest_categorical(name, list(values))
                         for name, values in decisions(space).items()}, space)


def _optuna_search(strategy: str, sampler, directions: list[str], space: SearchSpace, objective: Objective,
                   budget: int, seed: int, constraints: Constraints | None) -> SearchResult:
    import optuna

    run = _Evaluations(space, objective, budget, constraints)

    def optuna_objective(trial):
        candidate = run.propose(_suggest(trial, space))
        _set_constraints(trial, constraint_values(candidate.costs, constraints))
        accuracy = candidate.accuracy if candidate.accuracy is not None else 0.0
        return accuracy if len(directions) == 1 else (accuracy, candidate.costs.latency_ms)

    def stop_when_spent(study, trial):
        if run.done:
            study.stop()

    with quiet_optuna():
        study = optuna.create_study(directions=directions, sampler=sampler)
        study.optimize(optuna_objective, n_trials=budget * (MAX_REJECTIONS_PER_EVALUATION + 1),
                       callbacks=[stop_when_spent])
    return run.result(strategy, seed)


def tpe_search(space: SearchSpace, objective: Objective, budget: int, seed: int = 0,
               constraints: Constraints | None = None, n_startup_trials: int = 10) -> SearchResult:
    """Optuna's ``TPESampler(seed=seed)`` choosing every decision as a categorical parameter;
    the first ``n_startup_trials`` trials are random. A rejected proposal is a trial with
    accuracy 0 and positive constraint values (:func:`constraint_values`, set with
    ``trial.set_constraint``; Optuna 4's ``constraints_func`` is used where that is missing),
    which the sampler ranks below every feasible trial; it does not use the budget.

    Raises:
        TypeError / ValueError: as :func:`random_search`; ``n_startup_trials`` not an int >= 1.
    """
    import optuna

    _check_search(space, objective, budget, seed, constraints)
    check_int(n_startup_trials, "n_startup_trials", 1)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials, **_constraint_option())
    return _optuna_search("tpe", sampler, ["maximize"], space, objective, budget, seed, constraints)


def nsga2_search(space: SearchSpace, objective: Objective, budget: int, seed: int = 0,
                 constraints: Constraints | None = None, population_size: int = 10) -> SearchResult:
    """Optuna's ``NSGAIISampler(population_size=..., seed=seed)`` on two objectives, accuracy
    (maximised) and estimated latency in ms (minimised): after each generation the next parents
    are chosen by non-dominated rank, then crowding distance (Deb et al. 2002, Sec. III);
    constrained domination puts feasible trials first (constraints as in :func:`tpe_search`).
    Read the result's :meth:`SearchResult.front`.

    Raises:
        TypeError / ValueError: as :func:`random_search`; ``population_size`` not an int >= 2.
    """
    import optuna

    _check_search(space, objective, budget, seed, constraints)
    check_int(population_size, "population_size", 2)
    sampler = optuna.samplers.NSGAIISampler(population_size=population_size, seed=seed, **_constraint_option())
    return _optuna_search("nsga2", sampler, ["maximize", "minimize"], space, objective, budget, seed,
                          constraints)


def run_search(strategy: str, space: SearchSpace, objective: Objective, budget: int, seed: int = 0,
               constraints: Constraints | None = None, **options) -> SearchResult:
    """The strategy named ``strategy`` (one of :data:`STRATEGIES`) with its own ``options``
    (e.g. ``population_size``).

    Raises:
        ValueError: an unknown strategy (the message lists them); as the strategy itself.
    """
    check_choice(strategy, "strategy", STRATEGIES)
    search = {"random": random_search, "evolution": regularized_evolution, "reinforce": reinforce_search,
              "tpe": tpe_search, "nsga2": nsga2_search}[strategy]
    return search(space, objective, budget, seed, constraints, **options)


# ----------------------------------------------------------------------------- a cheap objective

