"""Fixtures for the tests that drive a real browser: Debian's Chromium through Playwright, and a
real JupyterLab server on a free local port serving a temporary copy of the notebooks.

Playwright's own browser download does not work offline, so the system binary is launched by its
path. Every test here is marked ``browser`` and skipped, with the reason, where Chromium or
Playwright is missing; run them with ``python3 -m pytest -m browser tests/browser``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from browser_support import CHROMIUM_FLAGS, REPO, SCREENSHOTS, JupyterLab, chromium_path, free_port


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """A headless Chromium with a fresh profile (one Playwright context for the whole session)."""
    path = chromium_path()
    if path is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium); browser tests skipped")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (python3 -m pip install -e '.[test]'); browser tests skipped")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tmp_path_factory.mktemp("chromium-profile"), executable_path=path, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 1000})
        yield context
        context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def pytest_terminal_summary(terminalreporter):
    if SCREENSHOTS:
        terminalreporter.section("browser screenshots")
        for path in SCREENSHOTS:
            terminalreporter.write_line(str(path))


@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory, browser):
    """``jupyter lab`` with JupyterLab's default settings (comms over subshells included), on a free
    port of 127.0.0.1, serving a temporary root that holds copies of the notebooks (never the
    repository). Its kernels import ``course_lib`` from this checkout."""
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "root"
    shutil.copytree(REPO / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    folders = {name: base / name for name in ("config", "data", "runtime", "settings", "workspaces")}
    for folder in folders.values():
        folder.mkdir()
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
               JUPYTER_CONFIG_DIR=str(folders["config"]), JUPYTER_DATA_DIR=str(folders["data"]),
               JUPYTER_RUNTIME_DIR=str(folders["runtime"]),
               JUPYTERLAB_SETTINGS_DIR=str(folders["settings"]),      # no user settings: the defaults
               JUPYTERLAB_WORKSPACES_DIR=str(folders["workspaces"]))
    port, token = free_port(), os.urandom(16).hex()
    log = base / "server.log"
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
               f"--IdentityProvider.token={token}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    with open(log, "wb") as log_file:
        server = subprocess.Popen(command, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    lab = JupyterLab(f"http://127.0.0.1:{port}", token, root, folders["runtime"], log)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                lab.api("/api/status")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not start; its log:\n{lab.log_text()[-3000:]}")
                time.sleep(0.5)
        yield lab
    finally:
        try:
            lab.api("/api/shutdown", "POST")
            server.wait(timeout=20)
        except Exception:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
