"""``python3 -m course_lib doctor``: what this machine has, and which of the course's claims it can check.

A learner or an instructor runs it before a session. It prints the Python and package versions
(beside the versions the suite last passed with, from ``constraints.txt``), the cores, the CPU's
int8 features (AVX2, AVX-512, VNNI, AMX, Arm's dot product: :func:`course_lib.runtime.cpu_int8`),
the GPU, the optional tools (Chromium for the browser tests, a C compiler, the Arm cross-compiler
and QEMU for the microcontroller program, user-mode QEMU for the emulated CPU without VNNI), the
data's and the zoo's checksums, and, for each notebook, which hardware-dependent claims this machine
checks and which it prints as not checked (the notebooks decide with the same tests).
Nothing is changed or downloaded; it takes a few seconds.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from . import data, mcu, runtime, zoo

__all__ = ["PACKAGES", "Claim", "claims", "package_versions", "pinned_versions", "checksums", "report", "main"]

PACKAGES = ("torch", "numpy", "onnxruntime", "onnx", "safetensors", "optuna", "scikit-learn", "scipy", "matplotlib",
            "ipywidgets", "jupyterlab", "nbval", "playwright")
CONSTRAINTS = Path(__file__).resolve().parent.parent / "constraints.txt"


@dataclass(frozen=True)
class Claim:
    """A claim of a notebook that depends on the machine, and whether this machine checks it."""
    notebook: str
    claim: str
    needs: str
    checked: bool


def package_versions() -> dict[str, str | None]:
    """The installed version of each of :data:`PACKAGES` (None: not installed)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def pinned_versions() -> dict[str, str]:
    """``constraints.txt``'s ``name==version`` lines (empty where the file is absent)."""
    if not CONSTRAINTS.is_file():
        return {}
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.split(";")[0].strip()
    return pins


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _gpu() -> str:
    import torch

    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)}"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "Apple GPU (MPS)"
    return "none (the course runs on the CPU)"


def _tool(name: str) -> str | None:
    path = shutil.which(name)
    if path is None:
        return None
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20)
        first = (done.stdout or done.stderr).strip().splitlines()
        return first[0] if first else path
    except (OSError, subprocess.TimeoutExpired):
        return path


def _digest(path: Path) -> str | None:
    """A listed file's SHA-256; a name listed without its ``.gz`` is the content of the ``.gz`` file
    beside it (how ``SHA256SUMS`` records MNIST's decompressed files); None if neither exists."""
    import gzip
    import hashlib

    if path.is_file():
        return data.sha256_of_file(path)
    packed = path.with_name(path.name + ".gz")
    if packed.is_file():
        with gzip.open(packed, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    return None


def checksums() -> list[tuple[str, bool, str]]:
    """(what, ok, detail) for each data file (its folder's ``SHA256SUMS``) and each zoo model."""
    rows = []
    root = data.data_root()
    for sums in sorted(root.glob("*/SHA256SUMS")):
        expected = data.read_checksums(sums.parent)
        bad = [name for name, digest in expected.items() if _digest(sums.parent / name) != digest]
        rows.append((f"data {sums.parent.name}", not bad,
                     f"{len(expected)} files" + (f"; wrong or missing: {', '.join(bad)}" if bad else "")))
    bad = []
    for name in zoo.names():
        try:
            zoo.verify(name)
        except Exception as e:         # CheckpointError names the file and the fix
            bad.append(f"{name} ({e})")
    rows.append(("zoo", not bad, f"{len(zoo.names())} models" + (f"; {'; '.join(bad)}" if bad else "")))
    return rows


def claims(cpu: runtime.CpuInt8 | None = None, cores: int | None = None, tools: dict | None = None) -> list[Claim]:
    """The hardware-dependent claims of the notebooks and whether this machine checks each, by the
    same tests the notebooks use (``cpu``, ``cores`` and ``tools``, {program: found}, default to
    this machine's)."""
    cpu = cpu if cpu is not None else runtime.cpu_int8()
    cores = cores if cores is not None else _cores()
    if tools is None:
        tools = {t: shutil.which(t) is not None for t in ("chromium", "qemu-x86_64", "cc", "arm-none-eabi-gcc",
                                                           "qemu-system-arm")}
    int8_fast = cpu.dot_product or "avx2" in cpu.flags
    return [
        Claim("02", "int8 is faster than fp32 on ONNX Runtime", "VNNI, AMX or Arm's dot product", cpu.dot_product),
        Claim("02", "which NumPy result ONNX Runtime equals for full-range weights (saturated pairs or exact)",
              "known CPU flags", cpu.saturates is not None),
        Claim("02, tests", "ONNX Runtime on an emulated CPU without VNNI equals the saturating NumPy forward",
              "qemu-x86_64 (apt-get install qemu-user)", bool(tools.get("qemu-x86_64"))),
        Claim("08", "two Optuna workers search about twice as fast as one", "2 free cores", cores >= 2),
        Claim("10", "int8 at least 2x faster than fp32 on the small CNN at batch 64", "VNNI, AMX, Arm's dot product "
              "or AVX2", int8_fast),
        Claim("10", "the C program runs on a Cortex-M4 (QEMU), equal to the NumPy forward",
              "cc, arm-none-eabi-gcc, qemu-system-arm", all(tools.get(t) for t in ("cc", "arm-none-eabi-gcc",
                                                                                     "qemu-system-arm"))),
        Claim("all", "the panels work in a real browser (tests/browser)", "chromium and playwright",
              bool(tools.get("chromium"))),
    ]


def report() -> str:
    """The doctor's whole report, as text."""
    lines = [f"course_lib doctor: Python {platform.python_version()} ({platform.python_implementation()}, "
             f"{platform.system()} {platform.machine()})"]
    pins = pinned_versions()
    lines.append("packages (installed | tested with, constraints.txt):")
    for name, version in package_versions().items():
        pin = pins.get(name.lower())
        mark = "" if pin is None or version == pin else ("  <- differs" if version else "  <- missing")
        lines.append(f"  {name:14s} {version or 'not installed':12s} | {pin or '-'}{mark}")
    cpu = runtime.cpu_int8()
    lines.append(f"cores: {_cores()} usable")
    lines.append(f"CPU: {cpu.description}")
    features = {"AVX2": "avx2", "AVX-512BW": "avx512bw", "AVX-512 VNNI": "avx512_vnni", "AVX-VNNI": "avx_vnni",
                "AMX int8": "amx_int8", "Arm dot product": "asimddp"}
    lines.append("  int8 features: " + ", ".join(f"{label} {'yes' if flag in cpu.flags else 'no'}"
                                                 for label, flag in features.items()))
    lines.append(f"GPU: {_gpu()}")
    lines.append("tools:")
    tools = {}
    for name, use in (("chromium", "browser tests"), ("cc", "the C program, here"),
                      ("arm-none-eabi-gcc", "the C program for a Cortex-M4"),
                      ("qemu-system-arm", "running it on an emulated Cortex-M4"),
                      ("qemu-x86_64", "ONNX Runtime on an emulated CPU without VNNI")):
        found = _tool(name)
        tools[name] = found is not None
        lines.append(f"  {name:18s} {found or 'not found'}  ({use})")
    lines.append("checksums:")
    for what, ok, detail in checksums():
        lines.append(f"  {what:22s} {'ok' if ok else 'FAILED'}: {detail}")
    lines.append("claims that depend on this machine:")
    for c in claims(cpu, tools=tools):
        lines.append(f"  {c.notebook:10s} {'checked    ' if c.checked else 'NOT checked'}  {c.claim} (needs {c.needs})")
    missing = mcu.missing_tools("cortex-m4")
    if missing:
        lines.append("to check the C program: " + "; ".join(missing))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["doctor"]:
        print("usage: python3 -m course_lib doctor", file=sys.stderr)
        return 2
    text = report()
    print(text)
    return 1 if "FAILED" in text else 0
