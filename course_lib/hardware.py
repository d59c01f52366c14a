"""Devices as data: does a model fit, how fast would it run, what would it cost in energy?

A :class:`Device` holds the figures that decide deployment: working memory (SRAM on a
microcontroller, RAM elsewhere), storage (flash, SD card, phone storage), the arithmetic it can
do per cycle in each number format, and its memory bandwidth, each with its source.

* :func:`check_fit` says whether a measured model (a :class:`~course_lib.measure.ModelReport`)
  fits, and why not: weights go to flash/storage, the peak activations plus the runtime's own
  needs go to SRAM/RAM (Lin et al. 2020, MCUNet, Sec. 2).
* :func:`estimate_latency` is a *roofline* estimate (Williams, Waterman & Patterson 2009):

  .. math:: t \\approx \\max\\Big(\\frac{\\text{MACs}}{f \\cdot m \\cdot \\eta},\\;
            \\frac{\\text{bytes moved}}{B}\\Big)

  with clock :math:`f`, peak MACs per cycle :math:`m` in the model's number format, efficiency
  :math:`\\eta` and bandwidth :math:`B`. For the Cortex-M parts :math:`\\eta` is calibrated on a
  published measurement (CMSIS-NN, Lai, Suda & Chandra 2018: their CIFAR-10 CNN, 12.3 M MACs,
  ran in 99.1 ms on an STM32F746 at 216 MHz with int8 kernels, i.e. 0.57 MACs per cycle of the
  peak 2). Elsewhere :math:`\\eta` is an assumption, and said so. An estimate is always labelled
  as one: :class:`LatencyEstimate` is never mixed with a measured :class:`~course_lib.measure.Latency`.
* :func:`estimate_energy` uses Horowitz (2014), "Computing's energy problem" (45 nm): a 32-bit
  DRAM read costs ~640 pJ, ~140 times a 32-bit float multiply-add, which is why moving fewer
  bytes saves more energy than doing fewer MACs.

Taught in ``notebooks/00_efficiency_and_hardware.ipynb``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import statistics
import time
from dataclasses import dataclass, field, replace

import torch

from .checks import check_choice, check_int, check_real, check_type
from .encoding import bits_of
from .measure import ModelReport, format_bytes, torch_threads

__all__ = ["KB", "MB", "GB", "GB_DECIMAL", "CMSIS_NN_CIFAR10_MACS", "CMSIS_NN_CIFAR10_SECONDS",
           "CORTEX_M7_INT8_MACS_PER_CYCLE", "CORTEX_M_EFFICIENCY", "ENERGY_PJ", "ENERGY_PER_MAC_PJ",
           "arithmetic_format", "Device", "PROFILES", "device_names", "cpu_clock_hz", "this_machine", "get_device",
           "LatencyEstimate", "estimate_latency", "Verdict", "check_fit", "verdict_table", "EnergyEstimate",
           "estimate_energy", "with_overheads", "verdict_lines"]

KB = 1024           # binary units for memories (a "256 KB" SRAM holds 256 KiB)
MB = 1024 ** 2
GB = 1024 ** 3
GB_DECIMAL = 10 ** 9  # storage media (an SD card, a phone's flash) are sold in decimal gigabytes

# Lai, Suda & Chandra (2018), CMSIS-NN, Sec. 4: CIFAR-10 CNN (conv5x5 3->32, pool, conv5x5 32->32,
# pool, conv5x5 32->64, pool, fc 1024->10; 'same' padding) on an STM32F746 (Cortex-M7, 216 MHz).
CMSIS_NN_CIFAR10_MACS = 32 * 32 * 32 * 3 * 25 + 16 * 16 * 32 * 32 * 25 + 8 * 8 * 64 * 32 * 25 + 1024 * 10
CMSIS_NN_CIFAR10_SECONDS = 0.0991
CORTEX_M7_INT8_MACS_PER_CYCLE = 2.0      # SMLAD: two 16-bit multiply-accumulates per cycle
CORTEX_M_EFFICIENCY = CMSIS_NN_CIFAR10_MACS / (CMSIS_NN_CIFAR10_SECONDS * 216e6 * CORTEX_M7_INT8_MACS_PER_CYCLE)

# Horowitz (2014), ISSCC keynote, 45 nm, energy per operation in picojoules.
ENERGY_PJ = {
    "int8 mult": 0.2, "int32 add": 0.1, "fp16 mult": 1.1, "fp16 add": 0.4,
    "fp32 mult": 3.7, "fp32 add": 0.9, "sram read 32b": 5.0, "dram read 32b": 640.0,
}
ENERGY_PER_MAC_PJ = {
    "int8": ENERGY_PJ["int8 mult"] + ENERGY_PJ["int32 add"],    # int8 products, int32 accumulator
    "fp16": ENERGY_PJ["fp16 mult"] + ENERGY_PJ["fp16 add"],
    "fp32": ENERGY_PJ["fp32 mult"] + ENERGY_PJ["fp32 add"],
}


def arithmetic_format(number_format: str | int) -> str:
    """The arithmetic a format runs in: fp32; fp16 (also bf16); int8 for integer codes of 1-8
    bits (unpacked to int8); int16 for 9-16 bits; fp32 for wider integers. A plain int N is an
    N-bit integer code.

    Raises:
        TypeError / ValueError: as :func:`course_lib.encoding.bits_of` (e.g. ``"8"`` or ``8.0``).
    """
    bits = bits_of(number_format)
    if isinstance(number_format, str) and not re.fullmatch(r"u?int\d+", number_format):
        return "fp32" if bits == 32 else "fp16"
    if bits <= 8:
        return "int8"
    return "int16" if bits <= 16 else "fp32"


# ----------------------------------------------------------------------------- argument checks

def _check_device(device: "Device") -> None:
    check_type(device, "device", Device, "a Device (from hardware.get_device)")


def _check_report(report: ModelReport) -> None:
    """A :class:`ModelReport` whose format names an arithmetic and whose counts are ints >= 0."""
    check_type(report, "report", ModelReport, "a ModelReport (from measure.report)")
    try:
        arithmetic_format(report.number_format)
    except (TypeError, ValueError) as e:
        raise ValueError(f"report.number_format must be a format name like 'int8', 'int4' or "
                         f"'fp16', or an int number of bits, got {report.number_format!r}; "
                         f"pass one of those to measure.report") from e
    for name in ("macs", "weight_bytes", "peak_activation_bytes", "activation_traffic_bytes"):
        check_int(getattr(report, name), f"report.{name}", 0)


@dataclass(frozen=True)
class Device:
    """A deployment target.

    Attributes:
        memory_bytes: working memory for activations (SRAM on a microcontroller, RAM otherwise).
        storage_bytes: where the weights are kept (flash, SD card, phone storage).
        weights_in_memory: True if weights are loaded into RAM to run (phones, boards with an
            OS); False if they execute in place from flash (microcontrollers).
        macs_per_cycle: peak MACs per cycle for the whole chip, by compute format
            (``"fp32"``, ``"fp16"``, ``"int8"``); a missing format is not supported.
        efficiency: fraction of the peak reached on real layers (calibrated or assumed).
        bandwidth: bytes per second from where the weights live to the cores.
        memory_overhead_bytes / storage_overhead_bytes: taken by the runtime and OS.

    Raises (on construction, also through ``dataclasses.replace``):
        TypeError / ValueError: a byte count that is not an int >= 0, a clock, bandwidth or MAC
            rate that is not a finite number > 0 (>= 0 for MACs per cycle), an efficiency
            outside (0, 1], or a format other than fp32, fp16 and int8.
    """
    name: str
    kind: str
    memory_bytes: int
    storage_bytes: int
    weights_in_memory: bool
    clock_hz: float
    macs_per_cycle: dict[str, float]
    efficiency: float
    bandwidth: float
    memory_overhead_bytes: int
    storage_overhead_bytes: int
    source: str
    efficiency_source: str
    notes: str = ""

    def __post_init__(self) -> None:
        for name in ("name", "kind", "source", "efficiency_source", "notes"):
            check_type(getattr(self, name), name, str, "a str")
        for name in ("memory_bytes", "storage_bytes", "memory_overhead_bytes", "storage_overhead_bytes"):
            check_int(getattr(self, name), name, 0)
        check_type(self.weights_in_memory, "weights_in_memory", bool, "True or False")
        check_real(self.clock_hz, "clock_hz", 0, low_open=True)
        check_real(self.efficiency, "efficiency", 0, 1, low_open=True)
        check_real(self.bandwidth, "bandwidth", 0, low_open=True)
        if not isinstance(self.macs_per_cycle, dict) or not self.macs_per_cycle:
            raise TypeError(f"macs_per_cycle must be a non-empty dict like {{'int8': 2.0}}, "
                            f"got {self.macs_per_cycle!r}")
        for fmt, rate in self.macs_per_cycle.items():
            if fmt not in ENERGY_PER_MAC_PJ:
                raise ValueError(f"macs_per_cycle keys must be in {tuple(ENERGY_PER_MAC_PJ)}, got {fmt!r}")
            check_real(rate, f"macs_per_cycle[{fmt!r}]", 0)

    @property
    def formats(self) -> tuple[str, ...]:
        return tuple(self.macs_per_cycle) + (("int16",) if "int8" in self.macs_per_cycle else ())

    def macs_per_second(self, number_format: str | int) -> float:
        """Effective MAC rate for a number format (0 if the device cannot compute in it):
        :math:`f \\cdot m \\cdot \\eta`. int16 runs at half the int8 rate (half as many lanes
        per SIMD register).

        Raises:
            TypeError / ValueError: as :func:`arithmetic_format`.
        """
        fmt = arithmetic_format(number_format)
        if fmt == "int16":
            peak = self.macs_per_cycle.get("int8", 0.0) / 2
        else:
            peak = self.macs_per_cycle.get(fmt, 0.0)
        return peak * self.clock_hz * self.efficiency


_CORTEX_M_EFFICIENCY_SOURCE = (
    f"calibrated: CMSIS-NN CIFAR-10 CNN on STM32F746 (Lai et al. 2018), "
    f"{CORTEX_M_EFFICIENCY:.2f} of the int8 peak; assumed the same for every Cortex-M")

PROFILES: dict[str, Device] = {d.name: d for d in (
    Device("Arduino Nano 33 BLE Sense", "microcontroller", 256 * KB, 1 * MB, False, 64e6,
           {"int8": 2.0, "fp32": 1 / 3}, CORTEX_M_EFFICIENCY, 64e6 * 4, 16 * KB, 64 * KB,
           "Nordic nRF52840 product specification: Cortex-M4F at 64 MHz, 256 KB RAM, 1 MB flash",
           _CORTEX_M_EFFICIENCY_SOURCE,
           "Cortex-M4 FPU: a float multiply-accumulate takes 3 cycles. Overheads assumed "
           "(interpreter code 64 KB in flash, stack and buffers 16 KB in SRAM)."),
    Device("STM32F746", "microcontroller", 320 * KB, 1 * MB, False, 216e6,
           {"int8": 2.0, "fp32": 1.0}, CORTEX_M_EFFICIENCY, 216e6 * 8, 16 * KB, 64 * KB,
           "ST STM32F746 datasheet: Cortex-M7 at 216 MHz, 320 KB SRAM, 1 MB flash; "
           "the MCU of MCUNet (Lin et al. 2020) and of the CMSIS-NN measurement",
           _CORTEX_M_EFFICIENCY_SOURCE, "Overheads assumed as for the other microcontrollers."),
    Device("STM32H743", "microcontroller", 512 * KB, 2 * MB, False, 480e6,
           {"int8": 2.0, "fp32": 1.0}, CORTEX_M_EFFICIENCY, 480e6 * 8, 16 * KB, 64 * KB,
           "ST STM32H743 datasheet: Cortex-M7 at 480 MHz, 2 MB flash, 512 KB AXI SRAM "
           "(the largest contiguous block of its 1 MB RAM)",
           _CORTEX_M_EFFICIENCY_SOURCE, "Overheads assumed as for the other microcontrollers."),
    Device("ESP32", "microcontroller", 520 * KB, 4 * MB, False, 240e6,
           {"int8": 1.0, "fp32": 1.0}, CORTEX_M_EFFICIENCY, 240e6 * 4, 16 * KB, 64 * KB,
           "Espressif ESP32 datasheet: Xtensa LX6 at 240 MHz, 520 KB SRAM; 4 MB external flash "
           "on the common ESP32-WROOM-32 module; one core used for inference",
           "assumed: the Cortex-M efficiency (no published calibration used here)",
           "No int8 SIMD: one MAC per cycle. Part of the 520 KB is reserved by the system."),
    Device("Raspberry Pi 4", "single-board computer", 4 * GB, 32 * GB_DECIMAL, True, 1.5e9,
           {"int8": 4 * 16.0, "fp32": 4 * 8.0}, 0.25, 4e9, 300 * MB, 4 * GB_DECIMAL,
           "Raspberry Pi 4 Model B 4 GB: 4x Cortex-A72 at 1.5 GHz (two 128-bit NEON pipes per "
           "core), LPDDR4-3200 on a 32-bit bus; a 32 GB microSD card",
           "assumed: a quarter of peak, and about a third of the 12.8 GB/s peak bandwidth",
           "No fp16 arithmetic and no int8 dot-product instruction on the A72. "
           "Overheads assumed: 300 MB for the OS and runtime, 4 GB of the card for the OS."),
    Device("Smartphone (2023 flagship CPU)", "phone", 8 * GB, 128 * GB_DECIMAL, True, 2.8e9,
           {"int8": 4 * 32.0, "fp16": 4 * 16.0, "fp32": 4 * 8.0}, 0.25, 30e9, 2 * GB, 16 * GB_DECIMAL,
           "A phone like those on Snapdragon 8 Gen 2: 4 performance Armv9 cores near 2.8 GHz "
           "with int8 dot-product (SDOT) and fp16 NEON, LPDDR5X; 8 GB RAM, 128 GB storage; "
           "CPU only (its GPU and NPU are faster still)",
           "assumed: a quarter of peak, about half the peak LPDDR5X bandwidth",
           "Overheads assumed: 2 GB of RAM for the OS and other apps, 16 GB of storage."),
)}


def device_names() -> list[str]:
    """The names :func:`get_device` accepts: every profile, then ``"This machine"``."""
    return [*PROFILES, "This machine"]


# ----------------------------------------------------------------------------- this machine

def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_clock_hz() -> float:
    """The CPU clock the operating system reports (Linux ``/proc/cpuinfo``), else 1 GHz
    (also when the reported figure is not a positive number)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("cpu mhz"):
                    mhz = float(line.split(":")[1])
                    if math.isfinite(mhz) and mhz > 0:
                        return mhz * 1e6
                    break
    except (OSError, ValueError, IndexError):
        pass
    return 1e9


def this_machine(threads: int | None = None) -> Device:
    """A profile of the computer running this code, *measured*: the fp32 MAC rate of a
    512x512 matrix product and the bandwidth of a 64 MB copy (medians of 5 runs), with RAM and
    free disk from the operating system. Its ``efficiency`` is 1: the measured rate, divided by
    the clock, gives ``macs_per_cycle`` directly.

    Args:
        threads: CPU threads for the measurement, an int >= 1, or None for torch's current count.

    Raises:
        TypeError / ValueError: ``threads`` is neither None nor an int >= 1.
    """
    if threads is not None:
        check_int(threads, "threads", 1)
    n = 512
    a, b = torch.randn(n, n), torch.randn(n, n)
    src = torch.empty(16 * MB)               # 16 M float32 values: 64 MB
    dst = torch.empty_like(src)
    with torch_threads(threads) as used:
        torch.mm(a, b)
        mm_seconds = _median_seconds(lambda: torch.mm(a, b), 5)
        dst.copy_(src)
        copy_seconds = _median_seconds(lambda: dst.copy_(src), 5)
    fp32_rate = n ** 3 / mm_seconds
    bandwidth = 2 * src.numel() * 4 / copy_seconds      # read + write
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 8 * GB
    disk = shutil.disk_usage(os.path.expanduser("~")).free
    clock = cpu_clock_hz()
    per_cycle = fp32_rate / clock
    return Device(
        "This machine", "laptop or desktop", int(ram), int(disk), True, clock,
        {"int8": per_cycle, "fp16": per_cycle, "fp32": per_cycle}, 1.0, bandwidth, 1 * GB, 0,
        f"measured here: {fp32_rate / 1e9:.1f} GMAC/s fp32 (512x512 matmul, {used} threads), "
        f"{bandwidth / 1e9:.1f} GB/s copy bandwidth; RAM and free disk from the OS",
        "measured (effective rates)",
        "int8 and fp16 assumed at the fp32 rate: PyTorch's eager kernels compute them in fp32 "
        "here; a real int8 runtime (the quantization notebook) is faster.")


def get_device(name: str) -> Device:
    """A profile by name; ``"This machine"`` is measured on the spot.

    Raises:
        TypeError: ``name`` is not a str. ValueError: it is not one of :func:`device_names`.
    """
    check_type(name, "name", str, f"a device name (a str), one of {device_names()}")
    check_choice(name, "device", device_names())
    if name == "This machine":
        return this_machine()
    return PROFILES[name]


# ----------------------------------------------------------------------------- verdicts

@dataclass(frozen=True)
class LatencyEstimate:
    """A roofline *estimate* for one inference (batch 1) on a device. Not a measurement."""
    device: str
    seconds: float
    compute_seconds: float
    memory_seconds: float

    @property
    def bound(self) -> str:
        return "compute" if self.compute_seconds >= self.memory_seconds else "memory"


def estimate_latency(report: ModelReport, device: Device) -> LatencyEstimate:
    """Roofline estimate: the larger of compute time (MACs at the effective rate of the report's
    number format) and memory time (weight bytes + activation traffic over the bandwidth).
    ``inf`` if the device cannot compute in that format.

    Raises:
        TypeError: ``report`` is not a ModelReport or ``device`` not a Device.
        ValueError: ``report.number_format`` is not a format name (see :func:`arithmetic_format`).
    """
    _check_report(report)
    _check_device(device)
    rate = device.macs_per_second(report.number_format)
    compute = report.macs / rate if rate > 0 else float("inf")
    memory = (report.weight_bytes + report.activation_traffic_bytes) / device.bandwidth
    return LatencyEstimate(device.name, max(compute, memory), compute, memory)


@dataclass(frozen=True)
class Verdict:
    """Whether a model fits a device, with the numbers behind it and the reasons if not."""
    device: str
    fits: bool
    reasons: tuple[str, ...]
    storage_used: int
    storage_available: int
    memory_used: int
    memory_available: int
    estimate: LatencyEstimate
    notes: tuple[str, ...] = field(default_factory=tuple)
    storage_overhead: int = 0          # of storage_used, the runtime's share (the rest: the weights)
    memory_overhead: int = 0           # of memory_used, the runtime's buffers and stack


def check_fit(report: ModelReport, device: Device) -> Verdict:
    """Does the model of ``report`` fit ``device``? Storage must hold the weights plus the
    runtime; working memory must hold the peak activations plus the runtime's needs, and the
    weights too where they are loaded into RAM. The device must compute in the format.

    Raises:
        TypeError / ValueError: as :func:`estimate_latency`.
    """
    _check_report(report)
    _check_device(device)
    storage_used = report.weight_bytes + device.storage_overhead_bytes
    memory_used = report.peak_activation_bytes + device.memory_overhead_bytes
    if device.weights_in_memory:
        memory_used += report.weight_bytes
    storage_word = "flash" if device.kind == "microcontroller" else "storage"
    memory_word = "SRAM" if device.kind == "microcontroller" else "RAM"
    reasons = []
    if storage_used > device.storage_bytes:
        reasons.append(f"weights need {format_bytes(report.weight_bytes)} + {format_bytes(device.storage_overhead_bytes)} "
                       f"runtime, {storage_word} holds {format_bytes(device.storage_bytes)}")
    if memory_used > device.memory_bytes:
        what = "weights + activations" if device.weights_in_memory else "peak activations"
        reasons.append(f"{what} + runtime need {format_bytes(memory_used)}, {memory_word} holds "
                       f"{format_bytes(device.memory_bytes)}")
    fmt = arithmetic_format(report.number_format)
    if fmt not in device.formats:
        reasons.append(f"{device.name} has no {fmt} arithmetic (supports {', '.join(device.formats)})")
    return Verdict(device.name, not reasons, tuple(reasons), storage_used, device.storage_bytes,
                   memory_used, device.memory_bytes, estimate_latency(report, device),
                   storage_overhead=device.storage_overhead_bytes, memory_overhead=device.memory_overhead_bytes)


def verdict_table(report: ModelReport, devices: list[Device] | None = None) -> list[dict]:
    """One row per device: fits, used/available memory and storage, estimated latency, reasons.

    Args:
        report: from :func:`course_lib.measure.report`.
        devices: a non-empty list (or tuple) of :class:`Device`; every profile if None.

    Raises:
        TypeError: a wrong ``report`` or ``devices`` type, or a non-Device in ``devices``.
        ValueError: ``devices`` is empty, or ``report.number_format`` is not a format name.
    """
    _check_report(report)
    devices = devices if devices is not None else list(PROFILES.values())
    check_type(devices, "devices", (list, tuple), "a list of Device or None")
    if not devices:
        raise ValueError("devices must hold at least one Device (or be None for every profile)")
    for device in devices:
        _check_device(device)
    rows = []
    for device in devices:
        v = check_fit(report, device)
        rows.append({"device": device.name, "fits": "yes" if v.fits else "no",
                     "storage used / available": f"{format_bytes(v.storage_used)} / {format_bytes(v.storage_available)}",
                     "memory used / available": f"{format_bytes(v.memory_used)} / {format_bytes(v.memory_available)}",
                     "estimated ms (roofline)": round(1000 * v.estimate.seconds, 3),
                     "why not": "; ".join(v.reasons)})
    return rows


# ----------------------------------------------------------------------------- energy

@dataclass(frozen=True)
class EnergyEstimate:
    """Energy of one inference in picojoules, split into arithmetic and memory traffic."""
    compute_pj: float
    weight_traffic_pj: float
    activation_traffic_pj: float

    @property
    def total_pj(self) -> float:
        return self.compute_pj + self.weight_traffic_pj + self.activation_traffic_pj


def estimate_energy(report: ModelReport, weights_from: str = "dram") -> EnergyEstimate:
    """Horowitz (2014) energy model: each MAC at the format's cost, each weight byte read once
    from DRAM (or SRAM), each activation byte read or written in SRAM.

    Raises:
        TypeError: ``report`` is not a ModelReport.
        ValueError: ``weights_from`` is not ``"dram"`` or ``"sram"``, or ``report.number_format``
            is not a format name.
    """
    _check_report(report)
    if not isinstance(weights_from, str) or weights_from not in ("dram", "sram"):
        raise ValueError(f"weights_from must be 'dram' or 'sram', got {weights_from!r}")
    fmt = arithmetic_format(report.number_format)
    per_mac = ENERGY_PER_MAC_PJ.get(fmt, ENERGY_PER_MAC_PJ["fp32"])
    per_weight_byte = ENERGY_PJ[f"{weights_from} read 32b"] / 4
    per_activation_byte = ENERGY_PJ["sram read 32b"] / 4
    return EnergyEstimate(report.macs * per_mac, report.weight_bytes * per_weight_byte,
                          report.activation_traffic_bytes * per_activation_byte)


def with_overheads(device: Device, memory_overhead_bytes: int, storage_overhead_bytes: int) -> Device:
    """A copy of ``device`` with other runtime overheads (to explore what-if scenarios);
    ``device`` itself is unchanged.

    Raises:
        TypeError: ``device`` is not a Device, or an overhead is not an int (NaN, 1.5, "1 KB").
        ValueError: an overhead is negative.
    """
    _check_device(device)
    check_int(memory_overhead_bytes, "memory_overhead_bytes", 0)
    check_int(storage_overhead_bytes, "storage_overhead_bytes", 0)
    return replace(device, memory_overhead_bytes=memory_overhead_bytes,
                   storage_overhead_bytes=storage_overhead_bytes)


def verdict_lines(verdict: Verdict, kernels: str = "") -> list[str]:
    """A verdict in words: fits or not, each reason, and the estimated latency (the lines every
    panel shows). ``kernels`` qualifies the estimate, e.g. ``" with dense kernels"``."""
    check_type(verdict, "verdict", Verdict, "a Verdict (from check_fit)")
    lines = [f"{verdict.device}: {'FITS' if verdict.fits else 'DOES NOT FIT'}"]
    lines += [f"  - {reason}" for reason in verdict.reasons]
    lines.append(f"Estimated latency on {verdict.device}: {1000 * verdict.estimate.seconds:,.3f} ms "
                 f"({verdict.estimate.bound}-bound roofline estimate{kernels}, not a measurement)")
    return lines
