"""Parallel search: several worker processes sharing one Optuna study through a journal file.

A study's state (its trials, their parameters and values) lives in a *storage*; any process
that opens the same storage joins the same study. Optuna's ``JournalStorage`` over a
``JournalFileBackend`` keeps it as an append-only log of operations in one file, written under a
file lock, so that workers on one machine (or on a shared file system) need no database server:
each worker replays the log to know the study, appends its own trials, and never loses or
duplicates another's. Each worker's sampler sees every finished trial, whoever ran it (TPE with
``constant_liar`` also treats the running ones as bad, so workers do not all try the same point).

:func:`run_parallel_study` creates the study, starts ``n_workers`` processes with the ``"spawn"``
start method (a fresh interpreter: safe with torch, and the same on Linux, macOS and Windows),
each with **one torch thread** (workers share the cores; more threads each would oversubscribe
them), gives each an equal share of the ``n_trials`` and waits for all. The objective must be
picklable: a module-level function or an instance of a module-level class such as
:class:`SpaceObjective` (with a :class:`~course_lib.nas.supernet.SubnetEvaluator` inside).

The order in which trials finish depends on the operating system's scheduling: a parallel study
is not reproducible trial by trial, only in its total (every trial run exactly once).

Taught in ``notebooks/08_nas_for_a_device.ipynb``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..checks import check_choice, check_int, check_path, check_type
from ..data import SEED_RANGE
from .costs import Constraints, candidate_costs, violated_limits
from .space import SearchSpace
from .strategies import Objective, _constraint_option, _set_constraints, _suggest, constraint_values, quiet_optuna

__all__ = ["DIRECTIONS", "StoragePathError", "check_storage_path", "journal_storage", "SpaceObjective",
           "run_parallel_study"]

DIRECTIONS = ("maximize", "minimize")


class StoragePathError(ValueError):
    """A journal storage path that cannot be used: its folder is missing or not writable, or it
    is a folder itself."""


def check_storage_path(path) -> Path:
    """The journal file ``path`` as a Path, after checking that it can be written: its folder
    exists and is writable, and the path is not a folder (the file itself may exist: a study
    is resumed from it). Nothing is created.

    Raises:
        TypeError: not a str or Path. StoragePathError: as above, naming the path.
    """
    path = check_path(path, "storage_path")
    if path.is_dir():
        raise StoragePathError(f"storage_path {str(path)!r} is a folder; give a file path such as "
                               f"{str(path / 'study.journal')!r}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise StoragePathError(f"storage_path {str(path)!r} cannot be written: its folder {str(folder)!r} does "
                               "not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StoragePathError(f"storage_path {str(path)!r} cannot be written (no write permission); "
                               "choose a writable folder")
    return path


def journal_storage(path):
    """``JournalStorage(JournalFileBackend(path))`` after :func:`check_storage_path`."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(str(check_storage_path(path))))


@dataclass(frozen=True)
class SpaceObjective:
    """An Optuna objective over a :class:`~course_lib.nas.space.SearchSpace`: the trial chooses
    every decision (categorical parameters), the candidate is costed and, if it meets
    ``constraints``, scored by ``objective`` (else 0, with its constraint values set, as in
    :func:`~course_lib.nas.strategies.tpe_search`). The architecture's description and costs are
    stored as user attributes. Picklable when ``objective`` is."""
    space: SearchSpace
    objective: Objective
    constraints: Constraints | None = None

    def __post_init__(self) -> None:
        check_type(self.space, "space", SearchSpace, "a SearchSpace")
        check_type(self.objective, "objective", Callable, "a callable objective(architecture) -> accuracy")
        check_type(self.constraints, "constraints", Constraints, "Constraints", allow_none=True)

    def __call__(self, trial) -> float:
        architecture = _suggest(trial, self.space)
        device = self.constraints.device if self.constraints is not None else "Arduino Nano 33 BLE Sense"
        costs = candidate_costs(architecture, device)
        _set_constraints(trial, constraint_values(costs, self.constraints))
        trial.set_user_attr("architecture", architecture.to_dict())
        trial.set_user_attr("latency_ms", costs.latency_ms)
        trial.set_user_attr("flash_bytes", costs.flash_bytes)
        if self.constraints is not None and violated_limits(costs, self.constraints):
            return 0.0
        return float(self.objective(architecture))


def _worker(objective: Callable, storage_path: str, study_name: str, n_trials: int, seed: int) -> None:
    """One worker process: one torch thread, the shared study, its share of the trials."""
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)        # this process's own logger
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(storage_path))
    sampler = optuna.samplers.TPESampler(seed=seed, **_constraint_option())
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    study.optimize(objective, n_trials=n_trials)


def run_parallel_study(objective: Callable, storage_path, n_trials: int, n_workers: int = 2, *,
                       study_name: str = "nas", seed: int = 0, direction: str = "maximize",
                       timeout_s: float | None = None):
    """Run ``n_trials`` trials of ``objective`` (``objective(trial) -> float``) in ``n_workers``
    spawned processes sharing the study ``study_name`` in the journal file ``storage_path``
    (created, or resumed if the study exists there). Worker :math:`i` runs
    :math:`\\lfloor n / k \\rfloor` trials, plus one for the first :math:`n \\bmod k` workers, with
    ``TPESampler(seed=seed + i)``. Returns the study (``optuna.load_study``) once all are done.

    Raises (before any process starts):
        TypeError / ValueError: ``objective`` not callable; ``n_trials`` or ``n_workers`` not an
            int >= 1; an unknown ``direction``; ``seed`` out of range.
        StoragePathError: a ``storage_path`` that cannot be written (:func:`check_storage_path`).
        RuntimeError: a worker that failed (its exit code), after all have stopped.
    """
    import optuna

    check_type(objective, "objective", Callable, "a picklable callable objective(trial) -> float")
    check_int(n_trials, "n_trials", 1)
    check_int(n_workers, "n_workers", 1)
    check_int(seed, "seed", SEED_RANGE[0], SEED_RANGE[1] - n_workers)
    check_type(study_name, "study_name", str, "a str")
    check_choice(direction, "direction", DIRECTIONS)
    storage = journal_storage(storage_path)
    with quiet_optuna():
        optuna.create_study(storage=storage, study_name=study_name, direction=direction, load_if_exists=True)
    shares = [n_trials // n_workers + (i < n_trials % n_workers) for i in range(n_workers)]
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_worker, args=(objective, str(storage_path), study_name, share, seed + i),
                               name=f"nas-worker-{i}")
               for i, share in enumerate(shares) if share > 0]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout_s)
    stuck = [w for w in workers if w.is_alive()]
    for w in stuck:
        w.terminate()
        w.join()
    failed = [(w.name, w.exitcode) for w in workers if w.exitcode != 0]
    if failed:
        raise RuntimeError(f"parallel study workers failed: {failed} (exit codes; a negative code is a signal, "
                           "e.g. a timeout); the trials they finished are kept in the storage")
    return optuna.load_study(study_name=study_name, storage=journal_storage(storage_path))
