"""Notebook 07's experiment, as one plain function: search a network for a device's limits.

:func:`nas_experiment` is what the notebook's panel (:func:`course_lib.widgets.nas_panel`) runs
on its button, and what the tests call headlessly: a device, the flash, SRAM and latency the
model may use on it, a search strategy and a budget of evaluations; the objective is the zoo's
trained supernet (``supernet_fashion``) scored on a fixed validation subset
(:func:`panel_evaluator`, loaded once). It returns the search, the best network with its costs,
its verdict on the whole device (runtime overheads included) and the accuracy-latency Pareto
front of what was evaluated, drawn by :meth:`NasExperiment.figure`.

:class:`CachedObjective` remembers the accuracy of every network it has scored, so strategies
and seeds that propose the same network pay for it once (the objective is deterministic).

Taught in ``notebooks/07_automl_search.ipynb``.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

from .. import hardware, measure, zoo
from ..architectures import Architecture, build_model
from ..checks import check_int, check_type
from ..nas.costs import DEVICES, Constraints, search_device
from ..nas.pareto import hypervolume
from ..nas.space import SearchSpace, describe_architecture
from ..nas.strategies import STRATEGIES, Candidate, Objective, SearchResult, run_search
from ..nas.supernet import fashion_evaluator
from ..plots import new_figure

__all__ = ["PANEL_FLASH_KB", "PANEL_SRAM_KB", "PANEL_LATENCY_MS", "PANEL_BUDGET", "CachedObjective",
           "panel_evaluator", "panel_devices", "NasExperiment", "nas_experiment"]

PANEL_CALIBRATION, PANEL_VALIDATION = 256, 500     # images: batch-norm re-estimation, accuracy
PANEL_FLASH_KB = (8, 128, 8)                         # (smallest, largest, step) of the panel's sliders
PANEL_SRAM_KB = (8, 64, 4)
PANEL_LATENCY_MS = (5, 200, 5)
PANEL_BUDGET = (5, 60, 5)


class CachedObjective:
    """``objective`` with a memory: the first call for a network computes its accuracy, later
    calls return it (``calls``: computed, ``hits``: remembered). For a deterministic objective
    such as :class:`~course_lib.nas.supernet.SubnetEvaluator` the answers are unchanged.

    Raises (on construction):
        TypeError: ``objective`` not callable.
    """

    def __init__(self, objective: Objective):
        check_type(objective, "objective", Callable, "a callable objective(architecture) -> accuracy")
        self.objective = objective
        self.memory: dict[Architecture, float] = {}
        self.calls = self.hits = 0

    def __call__(self, architecture: Architecture) -> float:
        if architecture in self.memory:
            self.hits += 1
        else:
            self.calls += 1
            self.memory[architecture] = float(self.objective(architecture))
        return self.memory[architecture]


@functools.lru_cache(maxsize=1)
def panel_evaluator() -> CachedObjective:
    """The zoo's supernet as an objective: :func:`~course_lib.nas.supernet.fashion_evaluator`
    with 256 calibration and 500 validation images (seed 0), cached. Loaded once per process."""
    return CachedObjective(fashion_evaluator(zoo.load("supernet_fashion"), PANEL_CALIBRATION,
                                             PANEL_VALIDATION, seed=0))


def panel_devices() -> list[str]:
    """The devices a search may target (:data:`~course_lib.nas.costs.DEVICES`)."""
    return list(DEVICES)


@dataclass(frozen=True)
class NasExperiment:
    """What :func:`nas_experiment` returns (see there); :meth:`lines` is the panel's text."""
    device: hardware.Device
    constraints: Constraints
    flash_kb: int
    sram_kb: int
    latency_ms: int
    result: SearchResult
    best: Candidate
    verdict: hardware.Verdict
    front: tuple[Candidate, ...]
    hypervolume: float
    seconds: float

    def lines(self) -> list[str]:
        r, b, c, v = self.result, self.best, self.best.costs, self.verdict
        fit = "FITS" if v.fits else "DOES NOT FIT"
        return [
            (f"{r.strategy} search, budget {measure.counted(r.budget, 'evaluation')} (seed {r.seed}) for "
             f"{self.device.name}: flash <= {self.flash_kb} KB, SRAM <= {self.sram_kb} KB, "
             f"latency <= {self.latency_ms} ms (estimated)"),
            (f"{measure.counted(len(r.evaluated), 'network')} evaluated on the supernet, "
             f"{measure.counted(len(r.rejected), 'proposal')} rejected by the "
             f"limits before any evaluation; {self.seconds:.1f} s"),
            f"best: {describe_architecture(b.architecture)}",
            (f"its costs: {c.parameters:,} parameters, {c.macs:,} MACs, int8 weights "
             f"{measure.format_bytes(c.flash_bytes)} (flash), peak activations "
             f"{measure.format_bytes(c.peak_activation_bytes)} (SRAM), {c.latency_ms:.1f} ms estimated"),
            f"supernet accuracy (inherited weights, {PANEL_VALIDATION} validation images): {100 * b.accuracy:.1f}%",
            f"on the whole {self.device.name} (runtime overheads included): {fit}",
            (f"Pareto front of accuracy against latency: {len(self.front)} networks, hypervolume "
             f"{self.hypervolume:.2f} (accuracy points x ms, above 50% and below {self.latency_ms} ms)"),
        ]

    def figure(self, *, pyplot: bool = True):
        """Accuracy against estimated latency of the evaluated networks, the front joined, the
        best starred and the latency limit dashed. ``pyplot=False`` in a panel's callback."""
        fig = new_figure((6, 3.2), pyplot)
        ax = fig.add_subplot(1, 1, 1)
        evaluated = self.result.evaluated
        ax.scatter([e.costs.latency_ms for e in evaluated], [100 * e.accuracy for e in evaluated], s=12,
                   color="0.6", label="evaluated")
        ax.plot([f.costs.latency_ms for f in self.front], [100 * f.accuracy for f in self.front], "o-",
                color="C0", markersize=4, label="Pareto front")
        ax.plot([self.best.costs.latency_ms], [100 * self.best.accuracy], "*", color="C3", markersize=14,
                label="best")
        ax.axvline(self.latency_ms, color="C3", linestyle="--", linewidth=1, label="latency limit")
        ax.set_xlabel(f"estimated latency on {self.device.name} (ms)")
        ax.set_ylabel("supernet accuracy (%)")
        ax.set_title(f"{self.result.strategy}, {measure.counted(self.result.budget, 'evaluation')}", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        return fig


def nas_experiment(strategy: str, budget: int, device_name: str, flash_kb: int, sram_kb: int, latency_ms: int,
                   seed: int = 0, objective: Objective | None = None) -> NasExperiment:
    """Search the default :class:`~course_lib.nas.space.SearchSpace` with ``strategy`` for
    ``budget`` evaluations of ``objective`` (default: :func:`panel_evaluator`), keeping only
    networks whose int8 weights fit ``flash_kb``, whose peak activations fit ``sram_kb`` (KB =
    1024 bytes) and whose estimated latency on the device is at most ``latency_ms``: the
    model's share of ``device_name`` (a copy of its profile with those memories and no runtime
    overheads). The best network is then checked on the whole device
    (:func:`course_lib.hardware.check_fit`, overheads included). Hypervolume reference: 50%
    accuracy and the latency limit. Runs on one torch thread (the candidates' layers are tiny).

    Raises (before anything is searched):
        TypeError / ValueError: an unknown device or strategy (named, with the choices);
            ``flash_kb``, ``sram_kb``, ``latency_ms`` or ``budget`` not an int >= 1; limits that
            almost no network of the space meets (as :func:`~course_lib.nas.strategies.run_search`).
    """
    check_type(device_name, "device_name", str, f"a str, one of {panel_devices()}")
    device = search_device(device_name)
    for value, name in ((flash_kb, "flash_kb"), (sram_kb, "sram_kb"), (latency_ms, "latency_ms"),
                        (budget, "budget")):
        check_int(value, name, 1)
    check_type(strategy, "strategy", str, f"a str, one of {STRATEGIES}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    share = dataclasses.replace(device, storage_bytes=flash_kb * hardware.KB, memory_bytes=sram_kb * hardware.KB,
                                storage_overhead_bytes=0, memory_overhead_bytes=0)
    constraints = Constraints(share, latency_ms / 1000)
    objective = panel_evaluator() if objective is None else objective
    start = time.perf_counter()
    with measure.torch_threads(1):          # many tiny layers: a second thread costs more than it saves
        result = run_search(strategy, SearchSpace(), objective, budget, seed, constraints)
        best = result.best
        report = measure.report(build_model(best.architecture), "searched", "int8",
                                input_shape=best.architecture.input_shape)
    verdict = hardware.check_fit(report, device)
    front = tuple(result.front("latency_s"))
    area = hypervolume([(100 * f.accuracy, f.costs.latency_ms) for f in front], (50.0, float(latency_ms)))
    return NasExperiment(device, constraints, flash_kb, sram_kb, latency_ms, result, best, verdict, front, area,
                         time.perf_counter() - start)
