"""The architecture panel's experiment: one design at a width and a resolution, measured in int8,
with its verdict on a device and the recorded accuracy of the zoo model of that design."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import hardware, measure, zoo
from ..architectures.costs import BLOCK_TYPES, Costs
from ..architectures.descriptions import (
    FASHION_FAMILY,
    Architecture,
    architecture_costs,
    build_model,
)
from ..checks import check_choice, check_int, check_real

__all__ = ["DESIGNS", "TRAINED_WIDTHS", "ArchitectureExperiment", "architecture_experiment"]

# The family design built from each block type (see FASHION_FAMILY).
DESIGNS = {"conv": "cnn", "separable": "separable", "inverted_residual": "mobilenet_v2", "residual": "resnet",
           "shuffle": "shufflenet"}
TRAINED_WIDTHS = (1.0, 0.5)        # the width multipliers of the zoo's family, all at resolution 1


@dataclass(frozen=True)
class ArchitectureExperiment:
    """A family design at chosen multipliers, costed and placed on a device without training:
    its int8 report (parameters, MACs, weight bytes, peak activations), the verdict on the
    device, and the test accuracy of the zoo model of that design, width and resolution if one
    is built (``zoo_name`` / ``test_accuracy``, else None), with the nearest built one."""
    block: str
    design: str
    architecture: Architecture
    depth_multiplier: int
    report: measure.ModelReport
    reference_costs: Costs                 # the same design at alpha = rho = 1, depth x1
    verdict: hardware.Verdict
    zoo_name: str | None
    test_accuracy: float | None
    nearest_name: str | None
    nearest_accuracy: float | None

    def lines(self) -> list[str]:
        """The panel's text, one line each."""
        a, r = self.architecture, self.report
        alpha, rho = a.width_multiplier, a.resolution_multiplier
        H, W = a.resolution
        widths = [a.scaled_width(a.stem_width)] + [a.scaled_width(s.width) for s in a.stages]
        ratio = r.macs / self.reference_costs.macs
        lines = [f"{self.design} design ({self.block} blocks): width multiplier α = {alpha:.2f}, resolution multiplier "
                 f"ρ = {rho:g} ({H}×{W} input), depth ×{self.depth_multiplier}; widths {widths}",
                 f"{r.parameters:,} parameters, {r.macs:,} MACs: {ratio:.2f}x the MACs at α = ρ = 1 "
                 f"(α²ρ² = {alpha ** 2 * rho ** 2:.2f})",
                 f"int8: weights {measure.format_bytes(r.weight_bytes)} (flash), peak activations "
                 f"{measure.format_bytes(r.peak_activation_bytes)} (SRAM)",
                 *hardware.verdict_lines(self.verdict)]
        if self.zoo_name is not None:
            lines.append(f"Fashion-MNIST test accuracy (zoo model {self.zoo_name}, fp32, the course's split): "
                         f"{100 * self.test_accuracy:.2f}%")
        else:
            nearest = (f"; nearest trained: {self.nearest_name}, {100 * self.nearest_accuracy:.2f}%"
                       if self.nearest_name is not None else "")
            lines.append(f"Fashion-MNIST test accuracy: not trained (no zoo model at these settings){nearest}")
        return lines


def _recorded_accuracy(name: str) -> float | None:
    """The test accuracy in a zoo model's manifest record, or None if it is not built."""
    if name not in zoo.names():
        return None
    try:
        return 1.0 - zoo.entry(name)["test_error"]
    except zoo.CheckpointError:
        return None


def architecture_experiment(block: str, width_multiplier: float, resolution_multiplier: float,
                            device_name: str, depth_multiplier: int = 1) -> ArchitectureExperiment:
    """Notebook 05's panel: the family design of ``block`` (:data:`DESIGNS`: ``"conv"`` -> cnn,
    ``"separable"``, ``"inverted_residual"`` -> mobilenet_v2, ``"residual"`` -> resnet,
    ``"shuffle"`` -> shufflenet) at width multiplier :math:`\\alpha`, resolution multiplier
    :math:`\\rho` and each stage ``depth_multiplier`` times deeper, built (untrained) and
    measured as int8 (:func:`course_lib.measure.report`), with its verdict on the device
    (:func:`course_lib.hardware.check_fit`) and the recorded test accuracy of the zoo model with
    the same settings (``<design>_x1_0_fashion`` or ``_x0_5``, at :math:`\\rho = 1` and depth x1)
    when it is built. No training: well under a second, except for ``"This machine"``, which is
    measured on the spot.

    Raises:
        ValueError: an unknown ``block`` or ``device_name``; ``width_multiplier`` outside (0, 4];
            ``resolution_multiplier`` outside (0, 1]; ``depth_multiplier`` outside [1, 4]; a
            design these settings cannot build (strides that shrink the image below 1 x 1, a
            shuffle unit whose widths the groups do not divide), named as :class:`Architecture`
            names it.
        TypeError: arguments of the wrong type.
    """
    check_choice(block, "block", BLOCK_TYPES)
    check_real(width_multiplier, "width_multiplier", 0, 4, low_open=True)
    check_real(resolution_multiplier, "resolution_multiplier", 0, 1, low_open=True)
    check_int(depth_multiplier, "depth_multiplier", 1, 4)
    device = hardware.get_device(device_name)
    design = DESIGNS[block]
    base = FASHION_FAMILY[f"{design}_x1_0"]
    stages = tuple(replace(s, depth=s.depth * depth_multiplier) for s in base.stages)
    architecture = replace(base, stages=stages, width_multiplier=width_multiplier,
                           resolution_multiplier=resolution_multiplier)
    name = f"{design} α={width_multiplier:g} ρ={resolution_multiplier:g}"
    report = measure.report(build_model(architecture), name, "int8")
    trained = {alpha: _recorded_accuracy(f"{design}_x{str(alpha).replace('.', '_')}_fashion")
               for alpha in TRAINED_WIDTHS}
    trained = {alpha: accuracy for alpha, accuracy in trained.items() if accuracy is not None}
    zoo_name = test_accuracy = nearest_name = nearest_accuracy = None
    exact = resolution_multiplier == 1 and depth_multiplier == 1 and width_multiplier in trained
    if exact:
        zoo_name = f"{design}_x{str(float(width_multiplier)).replace('.', '_')}_fashion"
        test_accuracy = trained[width_multiplier]
    elif trained:
        alpha = min(trained, key=lambda t: (abs(t - width_multiplier), -t))
        nearest_name = f"{design}_x{str(alpha).replace('.', '_')}_fashion"
        nearest_accuracy = trained[alpha]
    return ArchitectureExperiment(block, design, architecture, depth_multiplier, report,
                                  architecture_costs(base), hardware.check_fit(report, device),
                                  zoo_name, test_accuracy, nearest_name, nearest_accuracy)
