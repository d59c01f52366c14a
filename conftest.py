"""Shared by the tests and the notebooks that nbval runs.

The suite runs in parallel worker processes (pytest-xdist, ``-n auto`` in ``pyproject.toml``): each
worker, and each notebook kernel it starts, gets an equal share of the cores for torch's threads, so
that two workers on two cores do not run four threads and slow each other down. The kernels inherit
``OMP_NUM_THREADS`` from the worker; a value you set yourself is kept. Run one test without workers
with ``python3 -m pytest -n0 tests/test_train.py``.
"""
import os

import torch

# glibc's malloc gives every freed block above 32 MB back to the kernel and asks for it again, zeroed, at the next
# allocation; the notebooks do that thousands of times (evaluating on 55,000 images), and a fifth of the suite's CPU
# time went to the kernel. A high threshold keeps such blocks in the process that freed them (measured on notebook 03
# with one thread: kernel time 6.1-6.7 s -> 2.9-3.4 s, wall time 44-45 s -> 41-42 s). glibc reads these at start-up,
# so they reach the processes this one starts (the workers, the notebooks' kernels, the browser tests' JupyterLab),
# never a learner's notebook; other C libraries ignore them.
os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(2 ** 32))
os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", str(2 ** 32))

WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))

if WORKERS > 1:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // WORKERS)))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


# The longest pieces of work first, so that the workers finish together: the notebooks (each runs in one worker, cell
# after cell) and the browser tests, in the order of their measured times on two cores, then every test module as
# collected. Only the order changes, never what runs; a wrong guess only costs time.
LONGEST_FIRST = ("tests/browser/test_panels.py", "notebooks/02_", "notebooks/06_", "notebooks/09_", "notebooks/08_", "notebooks/04_",
                 "notebooks/07_", "notebooks/01_", "notebooks/05_", "notebooks/10_", "tests/test_zoo.py", "notebooks/03_",
                 "tests/test_widgets.py", "tests/test_nas.py", "tests/test_student_notebooks.py", "tests/browser/test_site.py",
                 "notebooks/00_", "tests/test_grading.py", "tests/test_deploy.py", "tests/test_mcu.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        return next((k for k, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)),
                    len(LONGEST_FIRST))
    items.sort(key=rank)                     # stable: cells and tests keep their order within a file
