import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import settings

# Same examples on every run (the course's tests are deterministic), no per-example deadline.
settings.register_profile("course", derandomize=True, deadline=None)
settings.load_profile("course")

from course_lib import data


@pytest.fixture(scope="session")
def mnist_test():
    return data.load("mnist", "test")


@pytest.fixture()
def dataset_copy(tmp_path: Path) -> Path:
    """A writable copy of the datasets folder, to corrupt in tests."""
    root = tmp_path / "datasets"
    shutil.copytree(data.data_root(), root)
    return root


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def pytest_addoption(parser):
    parser.addoption("--all-student-notebooks", action="store_true", default=False,
                     help="run every notebook's student version top to bottom (about a quarter of an hour)")
