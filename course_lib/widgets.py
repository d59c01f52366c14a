"""ipywidgets panels: thin layers over plain functions that the tests call headlessly.

The device panel asks: on this device, in this number format, does the model fit, how fast would
it run (estimated), and how fast does it run here (measured)? Nothing is computed when a
dropdown changes; the work runs when the button is pressed, and a bad choice shows a message
instead of a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt

from . import hardware, measure, zoo
from .hardware import Verdict
from .measure import Latency, ModelReport

PANEL_FORMATS = ("fp32", "fp16", "int8", "int4", "int2")


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
                 f"{v.device}: {'FITS' if v.fits else 'DOES NOT FIT'}"]
        lines += [f"  - {reason}" for reason in v.reasons]
        lines.append(f"Estimated latency on {v.device}: {1000 * v.estimate.seconds:,.3f} ms "
                     f"({v.estimate.bound}-bound roofline estimate, not a measurement)")
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
    from IPython.display import display

    model = w.Dropdown(options=zoo.names(), value=default_model, description="model")
    fmt = w.Dropdown(options=PANEL_FORMATS, value="fp32", description="format")
    device = w.Dropdown(options=hardware.device_names(), value=default_device, description="device")
    measure_here = w.Checkbox(value=True, description="also measure latency here")
    button = w.Button(description="Evaluate", button_style="primary", icon="play")
    out = w.Output()

    def on_click(_):
        out.clear_output()
        with out:
            try:
                result = evaluate_on_device(model.value, fmt.value, device.value, measure_here.value)
            except Exception as e:   # a panel shows a message, never a traceback
                display(w.HTML(f"<b style='color:#cf222e'>Cannot evaluate:</b> {e}"))
                return
            kind = result.device.kind
            storage = "flash" if kind == "microcontroller" else "storage"
            memory = "SRAM" if kind == "microcontroller" else "RAM"
            display(w.HTML("<br>".join(result.lines())))
            from .plots import plot_fit_bars
            fig = plot_fit_bars(result.verdict, storage, memory)
            display(fig)
            plt.close(fig)

    button.on_click(on_click)
    return w.VBox([w.HBox([model, fmt]), w.HBox([device, measure_here]), button, out])
