"""What a candidate costs, known before training it, and whether it fits a device.

Hardware-aware NAS (MnasNet, Tan et al. 2019; MCUNet, Lin et al. 2020) rejects a network that
cannot run on the target *before* spending anything on training it: its costs come from the
description alone. For a candidate :math:`a` on a device :math:`d`:

* parameters and MACs (:func:`course_lib.measure.report`, which agrees with
  :func:`course_lib.architectures.architecture_costs`);
* flash: the int8 weights, :math:`\\approx` one byte per parameter;
* SRAM: the int8 peak activation memory of a layer-by-layer runtime,
  :math:`\\max_i(|x_i| + |y_i|)` bytes (MCUNet, Sec. 2);
* latency: :func:`course_lib.hardware.estimate_latency`'s roofline estimate,
  :math:`\\max(\\text{MACs} / (f m \\eta),\\ \\text{bytes} / B)`.

:class:`Constraints` holds a device and an optional latency limit; :func:`violated_limits` says
which of flash, SRAM and latency a candidate exceeds, with exactly the arithmetic of
:func:`course_lib.hardware.check_fit` (the runtime's overheads included; weights counted in RAM
where a device loads them there). A limit is met when the need is *at most* the budget.

Devices: every profile of :mod:`course_lib.hardware`, plus :data:`TIGHT_BUDGET`, the
notebook-05 budget of 64 KB of flash and 32 KB of SRAM left for the model (the Arduino's core and
clock, no runtime overhead).

Taught in ``notebooks/07_automl_search.ipynb``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .. import hardware, measure
from ..architectures import Architecture, build_model
from ..checks import check_choice, check_real, check_type

__all__ = ["TIGHT_BUDGET", "DEVICES", "LIMITS", "search_device", "CandidateCosts", "candidate_costs", "Constraints",
           "device_constraints", "violated_limits"]

TIGHT_BUDGET = dataclasses.replace(
    hardware.PROFILES["Arduino Nano 33 BLE Sense"], name="Tight budget (64 KB flash, 32 KB SRAM)",
    storage_bytes=64 * hardware.KB, memory_bytes=32 * hardware.KB, storage_overhead_bytes=0,
    memory_overhead_bytes=0,
    notes="Notebook 05's budget: 64 KiB of flash and 32 KiB of SRAM left for the model on an Arduino-class core.")

# The devices a search may target, by name (a constant table: Device is frozen).
DEVICES: dict[str, hardware.Device] = {**hardware.PROFILES, TIGHT_BUDGET.name: TIGHT_BUDGET}
LIMITS = ("flash", "sram", "latency")


def search_device(device: str | hardware.Device) -> hardware.Device:
    """A :class:`~course_lib.hardware.Device` given itself or its name in :data:`DEVICES`
    (``"This machine"`` is left out: a search needs a profile that does not change between runs).

    Raises:
        ValueError: an unknown name (the message lists :data:`DEVICES`). TypeError: neither a
            str nor a Device.
    """
    if isinstance(device, hardware.Device):
        return device
    check_type(device, "device", str, f"a Device or one of the names {tuple(DEVICES)}")
    check_choice(device, "device", tuple(DEVICES))
    return DEVICES[device]


@dataclass(frozen=True)
class CandidateCosts:
    """The costs of one candidate as deployed in int8 on ``device`` (batch 1).

    ``flash_bytes``: int8 weights; ``peak_activation_bytes``: int8 activations; ``latency_s``:
    the roofline estimate on ``device`` (an estimate, never a measurement)."""
    parameters: int
    macs: int
    flash_bytes: int
    peak_activation_bytes: int
    latency_s: float
    device: str

    @property
    def latency_ms(self) -> float:
        return 1000 * self.latency_s


def candidate_costs(architecture: Architecture, device: str | hardware.Device = TIGHT_BUDGET.name) -> CandidateCosts:
    """The :class:`CandidateCosts` of ``architecture``: built once (untrained, no data needed),
    measured by :func:`course_lib.measure.report` in int8, its latency estimated on ``device``.
    About 10 ms for the networks of the default space.

    Raises:
        TypeError: ``architecture`` not an Architecture. ValueError / TypeError: as :func:`search_device`.
    """
    check_type(architecture, "architecture", Architecture, "an Architecture")
    device = search_device(device)
    report = measure.report(build_model(architecture), "candidate", "int8", input_shape=architecture.input_shape)
    estimate = hardware.estimate_latency(report, device)
    return CandidateCosts(report.parameters, report.macs, report.weight_bytes, report.peak_activation_bytes,
                          estimate.seconds, device.name)


@dataclass(frozen=True)
class Constraints:
    """Limits a candidate must meet: the flash and SRAM of ``device`` (less its runtime's
    overheads, as :func:`course_lib.hardware.check_fit` counts them) and, if given, a latency
    limit ``max_latency_s`` on that device's estimate.

    Build one with :func:`device_constraints` (by device name, latency in milliseconds).

    Raises (on construction):
        TypeError: ``device`` not a Device. ValueError: ``max_latency_s`` not a finite number > 0
            (or None).
    """
    device: hardware.Device
    max_latency_s: float | None = None

    def __post_init__(self) -> None:
        check_type(self.device, "device", hardware.Device, "a Device (from nas.search_device)")
        if self.max_latency_s is not None:
            check_real(self.max_latency_s, "max_latency_s", 0, math.inf, low_open=True, high_open=True)

    @property
    def flash_available(self) -> int:
        """Bytes of flash (storage) left for the weights."""
        return self.device.storage_bytes - self.device.storage_overhead_bytes

    @property
    def sram_available(self) -> int:
        """Bytes of working memory left for the activations (and the weights, where loaded into RAM)."""
        return self.device.memory_bytes - self.device.memory_overhead_bytes

    def describe(self) -> str:
        latency = "" if self.max_latency_s is None else f", latency <= {1000 * self.max_latency_s:g} ms"
        return (f"{self.device.name}: flash <= {measure.format_bytes(self.flash_available)}, "
                f"SRAM <= {measure.format_bytes(self.sram_available)}{latency}")


def device_constraints(device: str | hardware.Device, max_latency_ms: float | None = None) -> Constraints:
    """:class:`Constraints` for a device by name (:data:`DEVICES`) and an optional latency limit
    in milliseconds.

    Raises:
        ValueError: an unknown device; ``max_latency_ms`` not a finite number > 0 (NaN, inf, -1).
        TypeError: arguments of the wrong type.
    """
    if max_latency_ms is not None:
        check_real(max_latency_ms, "max_latency_ms", 0, math.inf, low_open=True, high_open=True)
    return Constraints(search_device(device), None if max_latency_ms is None else max_latency_ms / 1000)


def violated_limits(costs: CandidateCosts, constraints: Constraints) -> tuple[str, ...]:
    """The limits of :data:`LIMITS` (``"flash"``, ``"sram"``, ``"latency"``, in that order) that
    ``costs`` exceeds; empty when the candidate fits. With :math:`o` the runtime's overheads:

    * flash: :math:`\\text{flash bytes} + o_{\\text{storage}} > \\text{storage bytes}`;
    * SRAM: :math:`\\text{peak activations} + o_{\\text{memory}}` (+ the weights on a device
      that loads them into RAM) :math:`> \\text{memory bytes}`;
    * latency: the estimate :math:`>` ``max_latency_s`` (never violated without a limit).

    A need exactly equal to its budget fits.

    Raises:
        TypeError: arguments of the wrong type. ValueError: ``costs`` estimated on another
            device than ``constraints``'s (its latency would not apply).
    """
    check_type(costs, "costs", CandidateCosts, "CandidateCosts (from candidate_costs)")
    check_type(constraints, "constraints", Constraints, "Constraints (from device_constraints)")
    d = constraints.device
    if costs.device != d.name:
        raise ValueError(f"costs were estimated on {costs.device!r} but constraints are for {d.name!r}; "
                         f"compute them with candidate_costs(architecture, {d.name!r})")
    memory = costs.peak_activation_bytes + (costs.flash_bytes if d.weights_in_memory else 0)
    violated = []
    if costs.flash_bytes > constraints.flash_available:
        violated.append("flash")
    if memory > constraints.sram_available:
        violated.append("sram")
    if constraints.max_latency_s is not None and costs.latency_s > constraints.max_latency_s:
        violated.append("latency")
    return tuple(violated)
