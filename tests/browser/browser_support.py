"""What the browser tests share: where Chromium is, how to launch it, a running JupyterLab
server, and the screenshots saved during the run (listed at its end by conftest.py)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS: list[Path] = []          # saved by the tests, listed at the end of the run


def chromium_path() -> str | None:
    """Debian's Chromium (``apt-get install -y chromium``), or $CHROMIUM."""
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save_screenshot(locator, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    locator.screenshot(path=path)
    SCREENSHOTS.append(path)
    return path


class JupyterLab:
    """A running ``jupyter lab`` server: its URL, token, root folder and log."""

    def __init__(self, url: str, token: str, root: Path, runtime: Path, log: Path):
        self.url, self.token, self.root, self.runtime, self.log = url, token, root, runtime, log
        self.news_answered = False

    def api(self, path: str, method: str = "GET", body: dict | None = None):
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def shut_down_kernels(self) -> None:
        for session in self.api("/api/sessions"):
            self.api(f"/api/sessions/{session['id']}", "DELETE")
