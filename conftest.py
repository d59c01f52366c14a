"""Shared by the tests and the notebooks that nbval runs.

The suite runs in parallel worker processes (pytest-xdist, ``-n auto`` in ``pyproject.toml``): each
worker, and each notebook kernel it starts, gets an equal share of the cores for torch's threads, so
that two workers on two cores do not run four threads and slow each other down. The kernels inherit
``OMP_NUM_THREADS`` from the worker; a value you set yourself is kept. Run one test without workers
with ``python3 -m pytest -n0 tests/test_train.py``.
"""
import os

import torch

WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))

if WORKERS > 1:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // WORKERS)))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
