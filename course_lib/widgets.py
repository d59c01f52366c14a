"""ipywidgets panels: thin layers over plain functions that the tests call headlessly.

The device panel asks: on this device, in this number format, does the model fit, how fast would
it run (estimated), and how fast does it run here (measured)? Nothing is computed when a
dropdown changes; the work runs when the button is pressed, and a bad choice shows a message
instead of a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt

from . import data, hardware, measure, pruning, train, zoo
from .hardware import Verdict
from .measure import Latency, ModelReport
from .plots import plot_fit_bars

PANEL_FORMATS = ("fp32", "fp16", "int8", "int4", "int2")


def verdict_lines(verdict: Verdict, kernels: str = "") -> list[str]:
    """Fits or not, each reason, and the estimated latency: the lines every panel shows."""
    lines = [f"{verdict.device}: {'FITS' if verdict.fits else 'DOES NOT FIT'}"]
    lines += [f"  - {reason}" for reason in verdict.reasons]
    lines.append(f"Estimated latency on {verdict.device}: {1000 * verdict.estimate.seconds:,.3f} ms "
                 f"({verdict.estimate.bound}-bound roofline estimate{kernels}, not a measurement)")
    return lines


def _show_on_click(out, compute, failure: str):
    """A button handler: clear ``out``, run ``compute()`` and display what it returns (a list of
    HTML strings and figures), or ``failure`` and the error's message. Never a traceback."""
    import ipywidgets as w
    from IPython.display import display

    def handler(_):
        out.clear_output()
        with out:
            try:
                items = compute()
            except Exception as e:   # a panel shows a message, never a traceback
                display(w.HTML(f"<b style='color:#cf222e'>{failure}:</b> {e}"))
                return
            for item in items:
                display(w.HTML(item) if isinstance(item, str) else item)
                if isinstance(item, plt.Figure):
                    plt.close(item)
    return handler


@dataclass(frozen=True)
class DevicePanelResult:
    report: ModelReport
    verdict: Verdict
    device: hardware.Device
    measured: Latency | None

    def lines(self) -> list[str]:
        """The panel's text, one line each (also what the tests read)."""
        v, r = self.verdict, self.report
        lines = [f"{r.name} stored as {r.number_format}: {r.parameters:,} parameters, "
                 f"{r.weight_bytes / 1024:,.1f} KB of weights, {r.macs:,} MACs, "
                 f"peak activations {r.peak_activation_bytes / 1024:,.1f} KB",
                 *verdict_lines(v)]
        if self.measured is not None:
            lines.append(f"Measured here (PyTorch fp32 eager, batch 1, {self.measured.threads} "
                         f"threads): {1000 * self.measured.median:.3f} ms median of "
                         f"{len(self.measured.times)} runs")
        return lines


def evaluate_on_device(model_name: str, number_format: str, device_name: str,
                       measure_here: bool = False) -> DevicePanelResult:
    """Everything the device panel shows, as plain data. Raises ValueError on a bad choice."""
    if model_name not in zoo.names():
        raise ValueError(f"model_name must be one of {zoo.names()}, got {model_name!r}")
    if number_format not in PANEL_FORMATS:
        raise ValueError(f"number_format must be one of {PANEL_FORMATS}, got {number_format!r}")
    device = hardware.get_device(device_name)
    model = zoo.load(model_name)
    report = measure.report(model, model_name, number_format)
    measured = measure.measure_latency(model, repeats=30) if measure_here else None
    return DevicePanelResult(report, hardware.check_fit(report, device), device, measured)


def device_panel(default_model: str = "lenet5", default_device: str = "STM32F746"):
    """The interactive panel: model, number format, device, and a button that evaluates."""
    import ipywidgets as w

    model = w.Dropdown(options=zoo.names(), value=default_model, description="model")
    fmt = w.Dropdown(options=PANEL_FORMATS, value="fp32", description="format")
    device = w.Dropdown(options=hardware.device_names(), value=default_device, description="device")
    measure_here = w.Checkbox(value=True, description="also measure latency here")
    button = w.Button(description="Evaluate", button_style="primary", icon="play")
    out = w.Output()

    def compute():
        result = evaluate_on_device(model.value, fmt.value, device.value, measure_here.value)
        on_mcu = result.device.kind == "microcontroller"
        figure = plot_fit_bars(result.verdict, "flash" if on_mcu else "storage",
                               "SRAM" if on_mcu else "RAM")
        return ["<br>".join(result.lines()), figure]

    button.on_click(_show_on_click(out, compute, "Cannot evaluate"))
    return w.VBox([w.HBox([model, fmt]), w.HBox([device, measure_here]), button, out])


# ----------------------------------------------------------------------------- pruning (notebook 01)

PRUNING_METHODS = ("layer-wise", "global", "channel")


@dataclass(frozen=True)
class PruningExperimentResult:
    model_name: str
    method: str
    sparsity: float
    baseline_accuracy: float
    accuracy: float
    report: ModelReport           # of the pruned model, weights in their best encoding
    dense_bytes: int              # of the baseline, fp32 dense
    verdict: Verdict
    speedup: measure.Speedup | None

    def lines(self) -> list[str]:
        r, v = self.report, self.verdict
        lines = [f"{self.model_name}, {self.method} pruning at sparsity {self.sparsity:.2f}: accuracy "
                 f"{100 * self.accuracy:.2f}% (baseline {100 * self.baseline_accuracy:.2f}%)",
                 f"nonzero weights {r.nonzeros:,} of {r.parameters:,}; {r.macs:,} MACs; stored in "
                 f"{measure.format_bytes(r.weight_bytes)} ({r.encoding}) vs "
                 f"{measure.format_bytes(self.dense_bytes)} dense fp32",
                 *verdict_lines(v, " with dense kernels")]
        if self.speedup is not None:
            lines.append(f"Measured here, batch {self.speedup.baseline.batch_size}: "
                         f"{1000 * self.speedup.candidate.median:.3f} ms vs "
                         f"{1000 * self.speedup.baseline.median:.3f} ms dense: speedup "
                         f"{self.speedup.ratio:.2f}x")
        return lines


def run_pruning_experiment(model_name: str, method: str, sparsity: float, device_name: str,
                           fine_tune_epochs: int = 0, fine_tune_examples: int = 10_000,
                           measure_speed: bool = True) -> PruningExperimentResult:
    """Prune a zoo model, optionally fine-tune it briefly, and measure what the panel shows.

    ``method``: ``"layer-wise"`` / ``"global"`` magnitude pruning (masks held while
    fine-tuning), or ``"channel"``: every hidden layer keeps ``1 - sparsity`` of its channels
    by L1 norm, giving a smaller dense network.
    """
    if model_name not in zoo.names():
        raise ValueError(f"model_name must be one of {zoo.names()}, got {model_name!r}")
    if method not in PRUNING_METHODS:
        raise ValueError(f"method must be one of {PRUNING_METHODS}, got {method!r}")
    pruning.check_sparsity(sparsity)
    if fine_tune_epochs < 0:
        raise ValueError(f"fine_tune_epochs must be >= 0, got {fine_tune_epochs}")
    device = hardware.get_device(device_name)
    baseline = zoo.load(model_name)
    dataset = zoo.dataset_of(model_name)
    test = data.load(dataset, "test")
    if method == "channel":
        hidden = list(pruning.prunable_layers(baseline))[:-1]
        pruned = pruning.channel_prune(baseline, {n: 1.0 - sparsity for n in hidden})
        hook = None
    else:
        pruned, masks = pruning.prune(baseline, sparsity, "layer" if method == "layer-wise" else "global")
        hook = pruning.masks_hook(masks)
    if fine_tune_epochs:
        subset = data.load(dataset, "train").subset(fine_tune_examples)
        train.fine_tune(pruned, subset, fine_tune_epochs, lr=1e-3, after_step=hook, progress=False)
    encoding = "dense" if method == "channel" else "best"
    report = measure.report(pruned, model_name, "fp32", encoding)
    speed = measure.speedup(baseline, pruned, batch_size=64, repeats=20) if measure_speed else None
    return PruningExperimentResult(
        model_name, method, sparsity, train.evaluate(baseline, test).accuracy,
        train.evaluate(pruned, test).accuracy, report, measure.weight_bytes(baseline, "fp32"),
        hardware.check_fit(report, device), speed)


def pruning_panel(default_model: str = "lenet_300_100", default_device: str = "STM32F746"):
    """The notebook-01 panel: method, sparsity, device, fine-tuning; runs on the button only."""
    import ipywidgets as w

    model = w.Dropdown(options=zoo.names(), value=default_model, description="model")
    method = w.Dropdown(options=PRUNING_METHODS, value="layer-wise", description="method")
    sparsity = w.FloatSlider(value=0.9, min=0.0, max=0.98, step=0.01, description="sparsity",
                             continuous_update=False, readout_format=".2f")
    device = w.Dropdown(options=hardware.device_names(), value=default_device, description="device")
    epochs = w.IntSlider(value=1, min=0, max=3, description="fine-tune", continuous_update=False)
    button = w.Button(description="Prune and measure", button_style="primary", icon="scissors")
    out = w.Output()

    def compute():
        result = run_pruning_experiment(model.value, method.value, sparsity.value, device.value,
                                        epochs.value)
        return ["<br>".join(result.lines())]

    button.on_click(_show_on_click(out, compute, "Cannot run"))
    return w.VBox([w.HBox([model, method]), w.HBox([sparsity, device]), w.HBox([epochs, button]), out])


# ----------------------------------------------------------------------------- quantization (notebook 02)

GRANULARITIES = ("per-channel", "per-tensor")


@dataclass(frozen=True)
class QuantizationExperimentResult:
    model_name: str
    bits: int
    granularity: str
    method: str
    baseline_accuracy: float
    accuracy: float
    report: ModelReport            # weights and activations at `bits`
    verdict: Verdict
    speedup: measure.Speedup | None   # ONNX Runtime int8 against ONNX Runtime fp32 (8 bits only)

    def lines(self) -> list[str]:
        r, v = self.report, self.verdict
        lines = [f"{self.model_name}, weights and activations at {self.bits} bits ({self.granularity} "
                 f"weights, {self.method} calibration): accuracy {100 * self.accuracy:.2f}% "
                 f"(fp32 {100 * self.baseline_accuracy:.2f}%)",
                 f"weights {measure.format_bytes(r.weight_bytes)}, peak activations "
                 f"{measure.format_bytes(r.peak_activation_bytes)}",
                 *verdict_lines(v)]
        if self.speedup is not None:
            lines.append(f"Measured here with ONNX Runtime, batch {self.speedup.baseline.batch_size}: "
                         f"int8 {1000 * self.speedup.candidate.median:.3f} ms vs fp32 "
                         f"{1000 * self.speedup.baseline.median:.3f} ms: speedup {self.speedup.ratio:.2f}x")
        else:
            lines.append(f"Measured here: no {self.bits}-bit kernels on this CPU (only 8-bit runs in integers)")
        return lines


def run_quantization_experiment(model_name: str, bits: int, granularity: str, method: str,
                                device_name: str, measure_speed: bool = True) -> QuantizationExperimentResult:
    """Post-training quantization of a zoo model at ``bits`` (weights and activations), its
    accuracy, size, fit and estimated latency on a device; at 8 bits also the measured speed of
    ONNX Runtime's int8 model against its fp32 one."""
    import tempfile

    from . import quantization, runtime

    if model_name not in zoo.names():
        raise ValueError(f"model_name must be one of {zoo.names()}, got {model_name!r}")
    quantization.check_bits(bits)
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    device = hardware.get_device(device_name)
    baseline = zoo.load(model_name)
    dataset = zoo.dataset_of(model_name)
    test, calibration = data.load(dataset, "test"), data.load(dataset, "train").subset(1000)
    quantized = quantization.quantize_model(baseline, bits, bits, calibration, method,
                                            per_channel=granularity == "per-channel")
    report = measure.report(baseline, model_name, f"int{bits}")
    speed = None
    if measure_speed and bits == 8:
        with tempfile.TemporaryDirectory() as folder:
            fp32, int8, _ = runtime.deploy_int8(baseline, calibration, folder)
            speed = measure.speedup(fp32, int8, batch_size=128, repeats=20)
    return QuantizationExperimentResult(
        model_name, bits, granularity, method, train.evaluate(baseline, test).accuracy,
        train.evaluate(quantized, test).accuracy, report, hardware.check_fit(report, device), speed)


def quantization_panel(default_model: str = "lenet5", default_device: str = "Arduino Nano 33 BLE Sense"):
    """The notebook-02 panel: bits, granularity, calibration, device; runs on the button only."""
    import ipywidgets as w

    from .quantization import CALIBRATION_METHODS

    model = w.Dropdown(options=zoo.names(), value=default_model, description="model")
    bits = w.IntSlider(value=8, min=2, max=8, description="bits", continuous_update=False)
    granularity = w.Dropdown(options=GRANULARITIES, value="per-channel", description="weights")
    method = w.Dropdown(options=CALIBRATION_METHODS, value="minmax", description="calibration")
    device = w.Dropdown(options=hardware.device_names(), value=default_device, description="device")
    button = w.Button(description="Quantize and measure", button_style="primary", icon="compress")
    out = w.Output()

    def compute():
        result = run_quantization_experiment(model.value, bits.value, granularity.value,
                                             method.value, device.value)
        return ["<br>".join(result.lines())]

    button.on_click(_show_on_click(out, compute, "Cannot run"))
    return w.VBox([w.HBox([model, bits]), w.HBox([granularity, method]), w.HBox([device, button]), out])
