"""The compression planner of notebook 10: a device and an accuracy floor in, the cheapest
combination of the course's techniques that meets them out, from measured results.

:func:`plan_table` measures every combination of a Fashion-MNIST model of the zoo (the teacher,
its labels-only and distilled students of notebook 03, notebook 05's architectures) with a number
format (fp32, or int8 weights and activations: :func:`course_lib.quantization.quantize_model`,
per-channel weights, activations calibrated on 1,000 training images): validation and test
accuracy, weight bytes (flash), peak activations (SRAM), MACs. The fp32 accuracies are the zoo's
records, measured when each entry was built; the int8 ones were measured by
:func:`measure_int8_accuracy` and are recorded in :data:`INT8_ACCURACY` (two minutes to measure
again: ``python -m course_lib.planner``). The table is
built once per process (a second or two) and then reused, so that a panel's
slider never waits for it.

:func:`plan` filters that table for a device and an accuracy floor and ranks what is left by an
objective. The floor applies to the **validation** accuracy (choosing is a choice, made on the
validation split); the test accuracy is only reported. A combination *meets* the device when
:func:`course_lib.hardware.check_fit` says it fits (flash, SRAM with the runtime's overheads, a
number format the device computes in).

Taught in ``notebooks/10_capstone.ipynb``; the panel is
:func:`course_lib.widgets.compression_planner_panel`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from . import hardware, measure, zoo
from .checks import check_choice, check_real, check_type

__all__ = ["PLAN_MODELS", "PLAN_FORMATS", "PLAN_OBJECTIVES", "CALIBRATION_IMAGES", "plan_devices", "PlanRow",
           "INT8_ACCURACY", "measure_int8_accuracy", "plan_table", "main", "PlanResult", "plan"]

# (zoo entry, the techniques that made it, the notebook that teaches them)
PLAN_MODELS = (
    ("small_cnn_fashion", "baseline CNN (the teacher)", "00"),
    ("tiny_cnn_fashion", "smaller CNN, labels only", "03"),
    ("tiny_cnn_fashion_distilled", "smaller CNN, distilled from the teacher", "03"),
    ("cnn_x1_0_fashion", "plain CNN of the architecture family", "05"),
    ("separable_x1_0_fashion", "depthwise-separable convolutions", "05"),
    ("separable_x0_5_fashion", "depthwise-separable convolutions, width 0.5", "05"),
    ("separable_fc_x1_0_fashion", "depthwise-separable convolutions, fully connected head", "05"),
    ("mobilenet_v2_x1_0_fashion", "inverted residuals (MobileNetV2-style)", "05"),
    ("mobilenet_v2_x0_5_fashion", "inverted residuals, width 0.5", "05"),
    ("shufflenet_x0_5_fashion", "channel shuffle (ShuffleNet-style), width 0.5", "05"),
    ("resnet_x1_0_fashion", "residual blocks (ResNet-style)", "05"),
)
PLAN_FORMATS = ("fp32", "int8")
PLAN_OBJECTIVES = ("smallest flash", "fastest on the device", "most accurate")
CALIBRATION_IMAGES = 1000


def plan_devices() -> list[str]:
    """The devices a plan can target: every profile of :mod:`course_lib.hardware` except
    ``"This machine"`` (measured, not a fixed profile)."""
    return [name for name in hardware.device_names() if name != "This machine"]


@dataclass(frozen=True)
class PlanRow:
    """One measured combination: a zoo model in a number format."""
    model: str                    # the zoo entry
    techniques: str
    notebook: str
    number_format: str            # "fp32" or "int8"
    validation_accuracy: float
    test_accuracy: float
    report: measure.ModelReport

    @property
    def label(self) -> str:
        return f"{self.model} in {self.number_format}"

    @property
    def techniques_used(self) -> str:
        quantized = ", int8 quantization (02)" if self.number_format == "int8" else ""
        return f"{self.techniques} ({self.notebook}){quantized}"


# int8 accuracies (validation, test) of every model of PLAN_MODELS, measured by
# measure_int8_accuracy; `python -m course_lib.planner` measures them again and compares (about two
# minutes on one core: the fake-quantized models are slower than the plain ones, and the larger
# architectures run 5 million MACs per image on 15,000 images).
INT8_ACCURACY = {
    "small_cnn_fashion": (0.9336, 0.9327),
    "tiny_cnn_fashion": (0.9100, 0.9100),
    "tiny_cnn_fashion_distilled": (0.9110, 0.9142),
    "cnn_x1_0_fashion": (0.9150, 0.9169),
    "separable_x1_0_fashion": (0.8874, 0.8951),
    "separable_x0_5_fashion": (0.8336, 0.8470),
    "separable_fc_x1_0_fashion": (0.9058, 0.9085),
    "mobilenet_v2_x1_0_fashion": (0.9122, 0.9156),
    "mobilenet_v2_x0_5_fashion": (0.8870, 0.8897),
    "shufflenet_x0_5_fashion": (0.7970, 0.8045),
    "resnet_x1_0_fashion": (0.9174, 0.9164),
}


def measure_int8_accuracy(name: str) -> tuple[float, float]:
    """Validation and test accuracy of the zoo model ``name`` with int8 weights (per channel) and
    int8 activations calibrated on the first 1,000 training images
    (:func:`course_lib.quantization.quantize_model`, min-max), rounded to 4 decimals as
    :data:`INT8_ACCURACY` holds them. Deterministic.

    Raises:
        TypeError / ValueError: ``name`` not one of :data:`PLAN_MODELS`.
    """
    names = tuple(n for n, _, _ in PLAN_MODELS)
    check_type(name, "name", str, f"a str, one of {names}")
    check_choice(name, "name", names)
    from . import data
    from .quantization import quantize_model
    from .train import evaluate

    calibration = data.load("fashion-mnist", "train")           # its first 1,000 images
    quantized = quantize_model(zoo.load(name).eval(), 8, 8, calibration=calibration,
                               n_calibration=CALIBRATION_IMAGES)
    with measure.torch_threads(1):
        return tuple(round(evaluate(quantized, data.load("fashion-mnist", split)).accuracy, 4)
                     for split in ("validation", "test"))


@functools.lru_cache(maxsize=1)
def plan_table() -> tuple[PlanRow, ...]:
    """Every combination of :data:`PLAN_MODELS` and :data:`PLAN_FORMATS`, in that order: the
    accuracies recorded (the zoo's manifest for fp32, :data:`INT8_ACCURACY` for int8) and each
    model measured (:func:`course_lib.measure.report`: bytes, activations, MACs). Computed on the
    first call (a second or two: the models are loaded and traced, nothing is evaluated), then the
    same tuple is returned. Raises nothing a learner can trigger."""
    rows = []
    for name, techniques, notebook in PLAN_MODELS:
        record = zoo.entry(name)
        model = zoo.load(name).eval()
        rows.append(PlanRow(name, techniques, notebook, "fp32", 1 - record["validation_error"],
                            record["test_accuracy"], measure.report(model, name, "fp32")))
        rows.append(PlanRow(name, techniques, notebook, "int8", *INT8_ACCURACY[name],
                            measure.report(model, name, "int8")))
    return tuple(rows)


def main() -> int:
    """``python -m course_lib.planner``: measure every int8 accuracy again and compare it with
    :data:`INT8_ACCURACY`; exit status 1 if one differs."""
    differ = 0
    for name, _, _ in PLAN_MODELS:
        measured = measure_int8_accuracy(name)
        same = measured == INT8_ACCURACY[name]
        differ += not same
        print(f"{name:28s} validation {measured[0]:.4f} test {measured[1]:.4f}  "
              f"{'as recorded' if same else f'recorded {INT8_ACCURACY[name]}'}")
    return 1 if differ else 0


@dataclass(frozen=True)
class PlanResult:
    """What :func:`plan` found: the settings, every row with its verdict on the device, the rows
    that meet both the device and the floor (best first), and the reference (the teacher in fp32)."""
    device: str
    accuracy_floor: float
    objective: str
    verdicts: tuple[tuple[PlanRow, hardware.Verdict], ...]
    meeting: tuple[tuple[PlanRow, hardware.Verdict], ...]
    reference: PlanRow

    @property
    def chosen(self) -> PlanRow | None:
        return self.meeting[0][0] if self.meeting else None

    def lines(self) -> list[str]:
        """The plan in words (what the panel shows and the tests read)."""
        fitting = sum(v.fits for _, v in self.verdicts)
        high = sum(r.validation_accuracy >= self.accuracy_floor for r, _ in self.verdicts)
        lines = [f"{self.device}, accuracy floor {100 * self.accuracy_floor:.1f}% (validation), objective: "
                 f"{self.objective}",
                 f"{len(self.verdicts)} measured combinations: {fitting} fit the device, {high} reach the floor, "
                 f"{len(self.meeting)} do both"]
        if not self.meeting:
            best = max((r for r, v in self.verdicts if v.fits), key=lambda r: r.validation_accuracy, default=None)
            lines.append("No combination meets both." + (
                f" The most accurate that fits: {best.label}, {100 * best.validation_accuracy:.2f}% on validation."
                if best is not None else " Nothing measured fits this device."))
            return lines
        row, verdict = self.meeting[0]
        ref = self.reference
        lines += [f"Chosen: {row.label}: {row.techniques_used}",
                  f"  accuracy {100 * row.validation_accuracy:.2f}% validation, {100 * row.test_accuracy:.2f}% test "
                  f"({100 * (row.test_accuracy - ref.test_accuracy):+.2f} points against {ref.label})",
                  f"  flash {measure.format_bytes(row.report.weight_bytes)} of weights "
                  f"({ref.report.weight_bytes / row.report.weight_bytes:.1f}x smaller), peak activations "
                  f"{measure.format_bytes(row.report.peak_activation_bytes)}, {row.report.macs:,} MACs",
                  *hardware.verdict_lines(verdict)]
        if len(self.meeting) > 1:
            lines.append("Runners-up: " + "; ".join(
                f"{r.label} ({100 * r.validation_accuracy:.2f}%, {measure.format_bytes(r.report.weight_bytes)}, "
                f"{1000 * v.estimate.seconds:,.1f} ms)" for r, v in self.meeting[1:4]))
        return lines


def _rank_key(objective: str):
    if objective == "smallest flash":
        return lambda rv: (rv[0].report.weight_bytes, -rv[0].validation_accuracy)
    if objective == "fastest on the device":
        return lambda rv: (rv[1].estimate.seconds, -rv[0].validation_accuracy)
    return lambda rv: (-rv[0].validation_accuracy, rv[0].report.weight_bytes)


def plan(accuracy_floor: float, device_name: str, objective: str = "smallest flash",
         table: tuple[PlanRow, ...] | None = None) -> PlanResult:
    """The combinations of ``table`` (default :func:`plan_table`) that fit ``device_name`` and
    whose validation accuracy is at least ``accuracy_floor``, best first by ``objective``:
    ``"smallest flash"`` (fewest weight bytes), ``"fastest on the device"`` (lowest roofline
    estimate, :func:`course_lib.hardware.estimate_latency`) or ``"most accurate"`` (validation);
    ties go to the more accurate, then the smaller. Only filtering: fast once the table exists.

    Args:
        accuracy_floor: a fraction in [0, 1] (0.85 is 85%).
        device_name: one of :func:`plan_devices`.
        objective: one of :data:`PLAN_OBJECTIVES`.
        table: None, or rows of :func:`plan_table` that include the reference (the first
            model of :data:`PLAN_MODELS` in fp32).

    Raises:
        TypeError / ValueError: naming the argument, before the table is computed.
    """
    check_type(device_name, "device_name", str, f"a str, one of {tuple(plan_devices())}")
    check_choice(device_name, "device_name", plan_devices())
    check_real(accuracy_floor, "accuracy_floor", 0, 1)
    check_type(objective, "objective", str, f"a str, one of {PLAN_OBJECTIVES}")
    check_choice(objective, "objective", PLAN_OBJECTIVES)
    if table is not None:
        check_type(table, "table", (tuple, list), "a tuple of PlanRow (from plan_table) or None")
        if not all(isinstance(row, PlanRow) for row in table):
            raise TypeError(f"table must hold PlanRow items (from plan_table), got "
                            f"{sorted({type(row).__name__ for row in table})}")
        if not any(r.model == PLAN_MODELS[0][0] and r.number_format == "fp32" for r in table):
            raise ValueError(f"table must include the reference row ({PLAN_MODELS[0][0]} in fp32, which every "
                             f"plan is compared with), got {len(table)} rows without it; filter plan_table() "
                             f"to fewer rows, keeping that one")
    rows = plan_table() if table is None else tuple(table)
    device = hardware.get_device(device_name)
    verdicts = tuple((row, hardware.check_fit(row.report, device)) for row in rows)
    meeting = sorted(((r, v) for r, v in verdicts if v.fits and r.validation_accuracy >= accuracy_floor),
                     key=_rank_key(objective))
    reference = next(r for r in rows if r.model == PLAN_MODELS[0][0] and r.number_format == "fp32")
    return PlanResult(device_name, float(accuracy_floor), objective, verdicts, tuple(meeting), reference)


if __name__ == "__main__":
    raise SystemExit(main())
