"""Notebook 02's panel: quantize a zoo model after training and measure it, with ONNX Runtime's int8 speed at 8 bits."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

from .. import data, hardware, measure, runtime, zoo
from ..checks import check_choice, check_type
from ..quantization import CALIBRATION_METHODS, check_bits, quantize_model
from ..train import evaluate
from .choices import check_panel_model

__all__ = ["QuantizationExperiment", "quantization_experiment"]


@dataclass(frozen=True)
class QuantizationExperiment:
    """What post-training quantization of a zoo model did: accuracy, bytes, fit, speed."""
    model_name: str
    bits: int
    per_channel: bool                 # the weights' granularity: one scale per output channel, or one per tensor
    method: str
    baseline_accuracy: float          # fp32, on the validation split
    accuracy: float                   # quantized, on the validation split
    report: measure.ModelReport       # of the quantized model (weights and activations at `bits`)
    verdict: hardware.Verdict
    speedup: measure.Speedup | None   # ONNX Runtime int8 against ONNX Runtime fp32 (8 bits only)

    def lines(self) -> list[str]:
        """The result in words, one line each (what the panel shows)."""
        r = self.report
        granularity = "per-channel" if self.per_channel else "per-tensor"
        lines = [f"{self.model_name}, weights and activations at {self.bits} bits ({granularity} "
                 f"weights, {self.method} calibration): validation accuracy {100 * self.accuracy:.2f}% "
                 f"(fp32 {100 * self.baseline_accuracy:.2f}%)",
                 f"weights {measure.format_bytes(r.weight_bytes)} (codes, scales, zero-points and "
                 f"biases), peak activations {measure.format_bytes(r.peak_activation_bytes)}; "
                 f"{r.number_format} codes, computed with {hardware.arithmetic_format(r.number_format)} arithmetic",
                 *hardware.verdict_lines(self.verdict)]
        if self.speedup is not None:
            lines.append(f"Measured here with ONNX Runtime, batch {self.speedup.baseline.batch_size}: "
                         f"int8 {1000 * self.speedup.candidate.median:.3f} ms vs fp32 "
                         f"{1000 * self.speedup.baseline.median:.3f} ms: speedup {self.speedup.ratio:.2f}x")
        else:
            lines.append("Measured here: not timed (this CPU's runtime has integer kernels for 8 bits only)")
        return lines


def quantization_experiment(model_name: str, bits: int, per_channel: bool, method: str,
                            device_name: str, measure_speed: bool = True) -> QuantizationExperiment:
    """Post-training quantization of a zoo model at ``bits`` (weights and activations,
    calibrated on 1,000 training images): its validation accuracy, its measured report (so
    bytes and activations are at ``bits``), fit and estimated latency on a device; at 8 bits
    also the measured speed of ONNX Runtime's int8 model against its fp32 one. ``per_channel``: the
    weights' granularity (one scale per output channel, else one per tensor)."""
    check_panel_model(model_name)
    check_bits(bits)
    check_type(per_channel, "per_channel", bool, "True (per-channel) or False (per-tensor)")
    check_choice(method, "method", CALIBRATION_METHODS)
    device = hardware.get_device(device_name)
    baseline = zoo.load(model_name)
    dataset = zoo.dataset_of(model_name)
    validation, calibration = data.load(dataset, "validation"), data.load(dataset, "train").sample(1000)
    quantized = quantize_model(baseline, bits, bits, calibration, method,
                               per_channel=per_channel)
    report = measure.report(quantized, model_name)
    speed = None
    if measure_speed and bits == 8:
        with tempfile.TemporaryDirectory() as folder:
            fp32, int8, _ = runtime.deploy_int8(baseline, calibration, folder)
            speed = measure.speedup(fp32, int8, batch_size=128, repeats=20)
    return QuantizationExperiment(
        model_name, bits, per_channel, method, evaluate(baseline, validation).accuracy,
        evaluate(quantized, validation).accuracy, report, hardware.check_fit(report, device), speed)
