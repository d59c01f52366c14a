"""ipywidgets panels: thin layers over plain functions that the tests call headlessly.

The device panel asks: on this device, in this number format, does the model fit, how fast would
it run (estimated), and how fast does it run here (measured)? Nothing is computed when a
dropdown changes; the work runs when the button is pressed, and a bad choice shows a message
instead of a traceback. After a control changes, a note marks the result shown as stale.
Every panel is assembled by :func:`_panel`, which holds those rules once.
"""

from __future__ import annotations

import html
import traceback
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from . import architectures, experiments, hardware, measure, model_distillation, planner, quantization, zoo
from .checks import check_choice, check_type
from .hardware import Verdict, verdict_lines
from .measure import Latency, ModelReport
from .nas import STRATEGIES
from .plots import figure_png, plot_fit_bars

_PACKAGE = Path(__file__).resolve().parent

__all__ = ["PANEL_FORMATS", "STALE_NOTE", "RUNNING_NOTE", "PANEL_NOTE", "in_course_words", "DevicePanelResult", "evaluate_on_device",
           "device_panel", "pruning_panel", "quantization_panel", "lowrank_panel", "PANEL_TEMPERATURES",
           "PANEL_LABELLED_IMAGES",
           "distillation_panel", "PANEL_RESOLUTIONS", "architecture_panel", "PANEL_STUDENT_SIZES",
           "model_distillation_panel", "nas_panel", "PANEL_ACCURACY_FLOOR", "compression_planner_panel", "language_model_panel"]

PANEL_FORMATS = ("fp32", "fp16", "int8", "int4", "int2")


def _check_dropdown(value: str, name: str, allowed) -> None:
    """A dropdown's choice: a str (TypeError otherwise) among ``allowed`` (ValueError otherwise)."""
    allowed = tuple(allowed)
    check_type(value, name, str, f"a str, one of {allowed}")
    check_choice(value, name, allowed)


def _check_defaults(default_model: str, default_device: str) -> None:
    """A panel's starting choices, checked before any widget is built."""
    _check_dropdown(default_model, "default_model", experiments.panel_models())
    _check_dropdown(default_device, "default_device", hardware.device_names())


def _dropdown(options, value, description: str):
    """A dropdown wide enough for its longest entry (the label, the entry and the arrow)."""
    import ipywidgets as w

    labels = [o[0] if isinstance(o, tuple) else str(o) for o in options]
    longest = max((len(label) for label in labels), default=0)
    return w.Dropdown(options=options, value=value, description=description,
                      layout=w.Layout(width=f"calc({longest}ch + 130px)", min_width="300px"))


def in_course_words(error: BaseException) -> bool:
    """Whether ``error`` is one of the course's own messages: an error type the course defines, or a
    ValueError / TypeError raised on purpose (a ``raise`` statement) by the course's code, which
    says what was asked, why it cannot be done and what to choose. Anything else (an error deep in
    torch, a bug) is not, and a panel shows it as unexpected."""
    if type(error).__module__.startswith("course_lib"):
        return True
    if not isinstance(error, (ValueError, TypeError)):
        return False
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return False
    last = frames[-1]
    return Path(last.filename).resolve().is_relative_to(_PACKAGE) and (last.line or "").lstrip().startswith("raise")


STALE_NOTE = ("<span style='color:#9a6700'>&#9888; Settings changed: the result below is for the "
              "previous settings. Press <b>{button}</b> to update it.</span>")
RUNNING_NOTE = "<i>Running&hellip;</i>"


def _as_widget(item):
    """What a panel shows for one item of its result: an HTML string as an HTML widget, a figure
    as a PNG image widget (rendered here, on the callback's thread, from the figure alone)."""
    import ipywidgets as w

    if isinstance(item, str):
        return w.HTML(item)
    if isinstance(item, Figure):
        if item.canvas.manager is not None:      # pyplot's: its display hooks may draw it concurrently
            raise TypeError("a panel's figure must be drawn with pyplot=False (see course_lib.plots)")
        png = figure_png(item)
        width = int.from_bytes(png[16:20], "big")   # the PNG's width in pixels (its IHDR chunk)
        # At its natural size, as a notebook cell shows the same figure: one pixel of the PNG per CSS
        # pixel, never stretched to the output's width (narrower outputs may still shrink it).
        return w.Image(value=png, format="png", layout=w.Layout(width=f"{width}px", max_width="100%"))
    raise TypeError(f"a panel shows HTML strings and figures, got {type(item).__name__}")


PANEL_NOTE = "An interactive panel: run this cell to start it (a saved notebook keeps no running panel)."


def _panel_class():
    """The panel's widget class: a VBox whose text form, what a saved notebook shows until the cell
    runs again, is a note saying so, not a list of its children."""
    import ipywidgets as w

    class Panel(w.VBox):
        def __repr__(self) -> str:
            return PANEL_NOTE

    return Panel


def _panel(rows: list, button, compute, failure: str, live: bool = False):
    """A panel from its rows of controls (the button among them), then a one-line note and the
    result. ``compute()`` runs when the button is pressed and returns what to show: HTML strings
    and figures (drawn with ``pyplot=False``). A failure shows ``failure`` and the error's message,
    never a traceback. When any control changes after a result is shown, the note says that the
    result is stale. A ``live`` panel (for a computation that takes well under a second) shows its
    result at once and recomputes it on every change of a control instead; its button computes
    it again.

    The callbacks only set widget values: no ``display()``, no Output capture, no pyplot. With
    JupyterLab's comms over subshells they run on another thread than the notebook's cells, and
    those three are global state shared with that thread."""
    import ipywidgets as w

    def controls(widget):
        for child in getattr(widget, "children", ()):
            yield from controls(child)
        if isinstance(widget, w.ValueWidget) and widget is not button:
            yield widget

    note = w.HTML().add_class("course-panel-note")
    result = w.VBox().add_class("course-panel-result")
    button.layout.width = "max-content"          # the whole label, never cut to "..."

    def mark_stale(_):
        if result.children and note.value != RUNNING_NOTE:
            note.value = STALE_NOTE.format(button=button.description)

    def run(_):
        note.value, result.children = RUNNING_NOTE, ()
        try:
            shown = tuple(_as_widget(item) for item in compute())
        except Exception as e:                    # a panel shows a message, never a traceback
            if in_course_words(e):
                message = f"<b style='color:#cf222e'>{failure}:</b> {html.escape(str(e), quote=False)}"
                shown = (w.HTML(message).add_class("course-panel-failure"),)
            else:                                 # not foreseen: said plainly, and a test looks for it
                message = (f"<b style='color:#cf222e'>{failure}:</b> something the course did not foresee went "
                           f"wrong ({type(e).__name__}: {html.escape(str(e), quote=False)}). Please report it, "
                           "with the settings above.")
                shown = (w.HTML(message).add_class("course-panel-failure").add_class("course-panel-unexpected"),)
        result.children, note.value = shown, ""

    for row in rows:
        for control in controls(row):
            control.observe(run if live else mark_stale, names="value")
    button.on_click(run)
    panel = _panel_class()([*rows, note, result]).add_class("course-panel")
    if live:
        panel.add_class("course-panel-live")
        run(None)
    return panel


@dataclass(frozen=True)
class DevicePanelResult:
    """What the device panel shows: the model's report, its verdict on the device, the device,
    and the latency measured here (None unless asked for)."""
    report: ModelReport
    verdict: Verdict
    device: hardware.Device
    measured: Latency | None

    def lines(self) -> list[str]:
        """The panel's text, one line each (also what the tests read)."""
        v, r = self.verdict, self.report
        lines = [f"{r.name} stored as {r.number_format}: {r.parameters:,} parameters, "
                 f"{measure.format_bytes(r.weight_bytes)} of weights, {r.macs:,} MACs, "
                 f"peak activations {measure.format_bytes(r.peak_activation_bytes)}",
                 *verdict_lines(v)]
        if self.measured is not None:
            lines.append(f"Measured here (PyTorch fp32 eager, batch 1, {self.measured.threads} "
                         f"threads): {1000 * self.measured.median:.3f} ms median of "
                         f"{len(self.measured.times)} runs")
        return lines


def evaluate_on_device(model_name: str, number_format: str, device_name: str,
                       measure_here: bool = False) -> DevicePanelResult:
    """Everything the device panel shows, as plain data: the :func:`course_lib.measure.report`
    of the shipped ``model_name`` stored in ``number_format``, its
    :func:`course_lib.hardware.check_fit` verdict on ``device_name`` (with the estimated
    latency), and, if ``measure_here``, its fp32 latency measured on this machine (batch 1).

    Raises:
        TypeError: a choice that is not a str, or ``measure_here`` not a bool.
        ValueError: ``model_name`` not one of :func:`course_lib.experiments.panel_models`, ``number_format``
            not one of :data:`PANEL_FORMATS`, ``device_name`` not one of
            :func:`course_lib.hardware.device_names`. All are checked before anything runs.
    """
    check_type(model_name, "model_name", str, "a str, one of the zoo's models")
    experiments.check_panel_model(model_name)
    _check_dropdown(number_format, "number_format", PANEL_FORMATS)
    _check_dropdown(device_name, "device_name", hardware.device_names())
    check_type(measure_here, "measure_here", bool, "True or False")
    device = hardware.get_device(device_name)
    model = zoo.load(model_name)
    report = measure.report(model, model_name, number_format)
    measured = measure.measure_latency(model, repeats=30) if measure_here else None
    return DevicePanelResult(report, hardware.check_fit(report, device), device, measured)


def device_panel(default_model: str = "lenet5", default_device: str = "STM32F746"):
    """The interactive panel: model, number format, device, and a button that evaluates
    (:func:`evaluate_on_device`); a failure shows a message, not a traceback.

    Raises:
        TypeError / ValueError: ``default_model`` is not one of :func:`course_lib.experiments.panel_models`
            or ``default_device`` not one of :func:`course_lib.hardware.device_names`.
    """
    _check_defaults(default_model, default_device)
    import ipywidgets as w

    model = _dropdown(experiments.panel_models(), default_model, "model")
    fmt = w.Dropdown(options=PANEL_FORMATS, value="fp32", description="format")
    device = _dropdown(hardware.device_names(), default_device, "device")
    measure_here = w.Checkbox(value=True, description="also measure latency here")
    button = w.Button(description="Evaluate", button_style="primary", icon="play")

    def compute():
        result = evaluate_on_device(model.value, fmt.value, device.value, measure_here.value)
        on_mcu = result.device.kind == "microcontroller"
        figure = plot_fit_bars(result.verdict, "flash" if on_mcu else "storage",
                               "SRAM" if on_mcu else "RAM", pyplot=False)
        return ["<br>".join(result.lines()), figure]

    return _panel([w.HBox([model, fmt]), w.HBox([device, measure_here]), button], button, compute,
                  "Cannot evaluate")


# ----------------------------------------------------------------------------- pruning (notebook 01)

def pruning_panel(default_model: str = "lenet_300_100", default_device: str = "STM32F746"):
    """The notebook-01 panel over :func:`course_lib.experiments.pruning_experiment`: method,
    sparsity, device, fine-tuning; runs on the button only.

    Raises:
        TypeError / ValueError: ``default_model`` is not one of :func:`course_lib.experiments.panel_models`
            or ``default_device`` not one of :func:`course_lib.hardware.device_names`.
    """
    _check_defaults(default_model, default_device)
    import ipywidgets as w

    def methods(model_name: str) -> list[tuple[str, str]]:     # channel pruning only for a plain stack of layers
        return [(experiments.PRUNING_METHOD_NAMES[m], m) for m in experiments.pruning_methods(model_name)]

    model = _dropdown(experiments.panel_models(), default_model, "model")
    method = _dropdown([(experiments.PRUNING_METHOD_NAMES[m], m) for m in experiments.PRUNING_METHODS], "layer",
                       "method")
    method.options = methods(default_model)
    sparsity = w.FloatSlider(value=0.9, min=0.0, max=0.98, step=0.01, description="sparsity",
                             continuous_update=False, readout_format=".2f")
    device = _dropdown(hardware.device_names(), default_device, "device")
    epochs = w.IntSlider(value=1, min=0, max=3, description="fine-tune", continuous_update=False)
    button = w.Button(description="Prune and measure", button_style="primary", icon="scissors")

    def on_model(change):
        if change["new"] in experiments.panel_models():
            chosen, method.options = method.value, methods(change["new"])
            method.value = chosen if chosen in [value for _, value in method.options] else "layer"

    model.observe(on_model, names="value")

    def compute():
        result = experiments.pruning_experiment(model.value, method.value, sparsity.value, device.value,
                                            epochs.value)
        return ["<br>".join(result.lines())]

    return _panel([w.HBox([model, method]), w.HBox([sparsity, device]), w.HBox([epochs, button])], button,
                  compute, "Cannot run")


# ----------------------------------------------------------------------------- quantization (notebook 02)

def quantization_panel(default_model: str = "lenet5", default_device: str = "Arduino Nano 33 BLE Sense"):
    """The notebook-02 panel over :func:`course_lib.experiments.quantization_experiment`: bits,
    granularity, calibration, device; runs on the button only.

    Raises:
        TypeError / ValueError: ``default_model`` is not one of :func:`course_lib.experiments.panel_models`
            or ``default_device`` not one of :func:`course_lib.hardware.device_names`.
    """
    _check_defaults(default_model, default_device)
    import ipywidgets as w

    model = _dropdown(experiments.panel_models(), default_model, "model")
    bits = w.IntSlider(value=8, min=2, max=8, description="bits", continuous_update=False)
    granularity = w.Dropdown(options=[("per-channel", True), ("per-tensor", False)], value=True, description="weights")
    method = w.Dropdown(options=quantization.CALIBRATION_METHODS, value="minmax", description="calibration")
    device = _dropdown(hardware.device_names(), default_device, "device")
    button = w.Button(description="Quantize and measure", button_style="primary", icon="compress")

    def compute():
        result = experiments.quantization_experiment(model.value, bits.value, granularity.value,
                                                      method.value, device.value)
        return ["<br>".join(result.lines())]

    return _panel([w.HBox([model, bits]), w.HBox([granularity, method]), w.HBox([device, button])], button,
                  compute, "Cannot run")


# ----------------------------------------------------------------------------- low-rank (notebook 04)

def lowrank_panel(default_model: str = "lenet_300_100", default_device: str = "Arduino Nano 33 BLE Sense"):
    """The notebook-04 panel over :func:`course_lib.experiments.lowrank_experiment`: model, layer,
    rank, device; no training, so an answer comes in about a second, on the button.

    Raises:
        TypeError / ValueError: ``default_model`` is not one of :func:`course_lib.experiments.panel_models`
            or ``default_device`` not one of :func:`course_lib.hardware.device_names`.
    """
    _check_defaults(default_model, default_device)
    import ipywidgets as w


    def layer_names(model_name: str) -> list[str]:
        return list(measure.weight_layers(zoo.load(model_name)))

    model = _dropdown(experiments.panel_models(), default_model, "model")
    layer = w.Dropdown(options=layer_names(default_model), description="layer")
    rank = w.IntSlider(value=20, min=1, max=200, description="rank", continuous_update=False)
    device = _dropdown(hardware.device_names(), default_device, "device")
    button = w.Button(description="Factorize", button_style="primary", icon="compress")

    def largest_rank(model_name: str, layer_name: str) -> int:
        weight = measure.weight_layers(zoo.load(model_name))[layer_name].weight
        return min(weight.shape[0], weight.shape[1])       # Tucker-2 at (r, r) needs r <= C_in and C_out

    def on_model(change):
        try:
            layer.options = layer_names(change["new"])
        except Exception:                          # no such model (or not built): the button says why
            layer.options = []

    def on_layer(change):
        if change["new"] is not None:
            rank.max = largest_rank(model.value, change["new"])

    model.observe(on_model, names="value")
    layer.observe(on_layer, names="value")
    rank.max = largest_rank(default_model, layer.value)

    def compute():
        result = experiments.lowrank_experiment(model.value, layer.value, rank.value, device.value)
        return ["<br>".join(result.lines())]

    return _panel([w.HBox([model, layer]), w.HBox([rank, device]), button], button, compute,
                  "Cannot factorize")


# ----------------------------------------------------------------------------- distillation (notebook 03)

PANEL_TEMPERATURES = (1, 2, 4, 8, 20)
PANEL_LABELLED_IMAGES = (1_000, 5_000, 20_000, 55_000)     # the training images a student of notebook 03 is given


def distillation_panel(default_device: str = "Arduino Nano 33 BLE Sense"):
    """The notebook-03 panel over :func:`course_lib.experiments.distillation_experiment`:
    student width, temperature, weight, epochs, how many labelled images and device; the two
    trainings (labels only, distilled) run on the button, never on a slider tick.

    Raises:
        TypeError / ValueError: ``default_device`` is not one of
            :func:`course_lib.hardware.device_names`.
    """
    _check_dropdown(default_device, "default_device", hardware.device_names())
    import ipywidgets as w


    hidden = w.IntSlider(value=100, min=10, max=800, step=10, description="hidden",
                         continuous_update=False)
    temperature = w.SelectionSlider(options=PANEL_TEMPERATURES, value=4, description="T",
                                    continuous_update=False)
    weight = w.FloatSlider(value=0.9, min=0.0, max=1.0, step=0.05, description="weight",
                           continuous_update=False, readout_format=".2f")
    epochs = w.IntSlider(value=40, min=1, max=50, description="epochs", continuous_update=False)
    labelled = w.Dropdown(options=[(f"{n:,}", n) for n in PANEL_LABELLED_IMAGES], value=PANEL_LABELLED_IMAGES[0],
                          description="labelled")
    device = _dropdown(hardware.device_names(), default_device, "device")
    button = w.Button(description="Distill", button_style="primary", icon="graduation-cap")

    def compute():
        result = experiments.distillation_experiment(hidden.value, temperature.value, weight.value,
                                                      epochs.value, device.value, transfer_size=labelled.value)
        return ["<br>".join(result.lines())]

    return _panel([w.HBox([hidden, temperature]), w.HBox([weight, epochs]), w.HBox([device, button]),
                   w.HBox([labelled])], button, compute, "Cannot distill")


# ----------------------------------------------------------------------------- architecture design (notebook 05)

PANEL_RESOLUTIONS = (0.5, 0.625, 0.75, 0.875, 1.0)


def architecture_panel(default_device: str = "Arduino Nano 33 BLE Sense"):
    """The notebook-05 panel over :func:`course_lib.experiments.architecture_experiment`:
    block type, width multiplier, resolution multiplier, depth and device; nothing trains, so the
    design is built and measured again on every change (a live panel; the button measures again,
    e.g. to re-time "This machine").

    Raises:
        TypeError / ValueError: ``default_device`` is not one of
            :func:`course_lib.hardware.device_names`.
    """
    _check_dropdown(default_device, "default_device", hardware.device_names())
    import ipywidgets as w


    block = w.Dropdown(options=architectures.BLOCK_TYPES, value="separable", description="block")
    width = w.FloatSlider(value=1.0, min=0.25, max=2.0, step=0.25, description="width α",
                          continuous_update=False, readout_format=".2f")
    resolution = w.SelectionSlider(options=PANEL_RESOLUTIONS, value=1.0, description="resolution ρ",
                                   continuous_update=False)
    depth = w.IntSlider(value=1, min=1, max=3, description="depth ×", continuous_update=False)
    device = _dropdown(hardware.device_names(), default_device, "device")
    button = w.Button(description="Build and measure", button_style="primary", icon="cubes")

    def compute():
        result = experiments.architecture_experiment(block.value, width.value, resolution.value,
                                                       device.value, depth.value)
        return ["<br>".join(result.lines())]

    return _panel([w.HBox([block, width]), w.HBox([resolution, depth]), w.HBox([device, button])], button,
                  compute, "Cannot build", live=True)


# ----------------------------------------------------------------------------- a small language model (notebook 09)

def language_model_panel(default_device: str = "Arduino Nano 33 BLE Sense"):
    """The notebook-09 panel over :func:`course_lib.experiments.language_experiment`: device, context
    length, the weights' format and the KV cache's. Each combination is scored once, in a fraction of a
    second, then only arithmetic runs: a live panel.

    Raises:
        TypeError / ValueError: ``default_device`` is not one of :func:`course_lib.hardware.device_names`.
    """
    _check_dropdown(default_device, "default_device", hardware.device_names())
    import ipywidgets as w

    device = _dropdown(hardware.device_names(), default_device, "device")
    context = w.SelectionSlider(options=experiments.PANEL_CONTEXTS, value=experiments.PANEL_CONTEXTS[0],
                                description="context", continuous_update=False)
    weights = _dropdown(list(experiments.PANEL_WEIGHTS), "int4 g32", "weights")
    cache = w.Dropdown(options=["fp16", "int8"], value="fp16", description="KV cache")
    button = w.Button(description="Estimate", button_style="primary", icon="calculator")

    def compute():
        result = experiments.language_experiment(device.value, context.value, weights.value, cache.value)
        return ["<br>".join(result.lines())]

    return _panel([w.HBox([device, context]), w.HBox([weights, cache]), button], button, compute,
                  "Cannot estimate", live=True)


# ----------------------------------------------------------------------------- model distillation (notebook 06)

# The panel's size slider for each student family: (start, smallest, largest, step).
PANEL_STUDENT_SIZES = {"mlp": (100, 10, 800, 10), "tiny_cnn": (8, 2, 32, 2), "soft_tree": (6, 1, 10, 1),
                       "tree": (8, 1, 20, 1)}


def model_distillation_panel(default_device: str = "Arduino Nano 33 BLE Sense"):
    """The notebook-06 panel over :func:`course_lib.experiments.model_distillation_experiment`:
    student family, its size (hidden width, first conv width or depth: the slider follows the
    family), transfer set, epochs and device; the student is trained on the teacher's outputs (no
    labels) on the button, never on a slider tick.

    Raises:
        TypeError / ValueError: ``default_device`` is not one of
            :func:`course_lib.hardware.device_names`.
    """
    _check_dropdown(default_device, "default_device", hardware.device_names())
    import ipywidgets as w


    family = w.Dropdown(options=experiments.FAMILIES, value="mlp", description="student")
    start, low, high, step = PANEL_STUDENT_SIZES["mlp"]
    size = w.IntSlider(value=start, min=low, max=high, step=step, description="width",
                       continuous_update=False)
    transfer = w.Dropdown(options=model_distillation.TRANSFER_SETS, value="images", description="transfer")
    epochs = w.IntSlider(value=5, min=1, max=20, description="epochs", continuous_update=False)
    device = _dropdown(hardware.device_names(), default_device, "device")
    button = w.Button(description="Distill into the student", button_style="primary", icon="tree")

    def on_family(change):
        if change["new"] not in PANEL_STUDENT_SIZES:
            return                              # nothing chosen: the button reports it
        start, low, high, step = PANEL_STUDENT_SIZES[change["new"]]
        size.min, size.max = min(size.min, low), max(size.max, high)      # never clamp mid-update
        size.step, size.value, size.min, size.max = step, start, low, high
        size.description = experiments.SIZES[change["new"]][0].split()[-1]
        epochs.disabled = change["new"] == "tree"                            # a tree is fitted, not trained

    family.observe(on_family, names="value")

    def compute():
        result = experiments.model_distillation_experiment(family.value, size.value, transfer.value,
                                                                  device.value, epochs=epochs.value)
        return ["<br>".join(result.lines())]

    return _panel([w.HBox([family, size]), w.HBox([transfer, epochs]), w.HBox([device, button])], button,
                  compute, "Cannot distill")


# ----------------------------------------------------------------------------- AutoML and NAS (notebook 07)

def nas_panel(default_device: str = "Arduino Nano 33 BLE Sense"):
    """The notebook-07 panel over :func:`course_lib.experiments.nas_experiment`: device, the
    flash, SRAM and latency the model may use on it, search strategy and budget of evaluations;
    the search runs on the zoo's supernet on the button, never on a slider tick, and shows the
    accuracy-latency Pareto plot, the best network, its costs and its verdict on the device.

    Raises:
        TypeError / ValueError: ``default_device`` is not one of :data:`course_lib.nas.DEVICES`.
    """

    _check_dropdown(default_device, "default_device", experiments.panel_devices())
    import ipywidgets as w


    def slider(limits, value, description):
        low, high, step = limits
        return w.IntSlider(value=value, min=low, max=high, step=step, description=description,
                           continuous_update=False)

    device = _dropdown(experiments.panel_devices(), default_device, "device")
    flash = slider(experiments.PANEL_FLASH_KB, 64, "flash KB")
    sram = slider(experiments.PANEL_SRAM_KB, 32, "SRAM KB")
    latency = slider(experiments.PANEL_LATENCY_MS, 50, "latency ms")
    strategy = w.Dropdown(options=STRATEGIES, value="evolution", description="strategy")
    budget = slider(experiments.PANEL_BUDGET, 20, "budget")
    button = w.Button(description="Search", button_style="primary", icon="search")

    def compute():
        result = experiments.nas_experiment(strategy.value, budget.value, device.value, flash.value, sram.value,
                                            latency.value)
        return ["<br>".join(html.escape(line, quote=False) for line in result.lines()), result.figure(pyplot=False)]

    return _panel([w.HBox([device, flash]), w.HBox([sram, latency]), w.HBox([strategy, budget]), button], button,
                  compute, "Cannot search")


# ----------------------------------------------------------------------------- the compression planner (notebook 10)

PANEL_ACCURACY_FLOOR = (80.0, 95.0, 0.5)        # percent: (smallest, largest, step) of the floor slider


def compression_planner_panel(default_device: str = "Arduino Nano 33 BLE Sense"):
    """The notebook-08 panel over :func:`course_lib.planner.plan`: a device, an accuracy floor
    (validation accuracy, in percent) and an objective give the combination of the course's
    techniques, among the measured ones of :func:`course_lib.planner.plan_table`, that meets them,
    and what it costs. The table is built once (on the first press); a press only filters it.

    Raises:
        TypeError / ValueError: ``default_device`` is not one of
            :func:`course_lib.planner.plan_devices`.
    """

    _check_dropdown(default_device, "default_device", planner.plan_devices())
    import ipywidgets as w

    low, high, step = PANEL_ACCURACY_FLOOR
    device = _dropdown(planner.plan_devices(), default_device, "device")
    floor = w.FloatSlider(value=90.0, min=low, max=high, step=step, description="floor %",
                          continuous_update=False, readout_format=".1f")
    objective = w.Dropdown(options=planner.PLAN_OBJECTIVES, value=planner.PLAN_OBJECTIVES[0],
                           description="objective")
    button = w.Button(description="Plan", button_style="primary", icon="compass")

    def compute():
        result = planner.plan(floor.value / 100, device.value, objective.value)
        return ["<br>".join(html.escape(line, quote=False) for line in result.lines())]

    return _panel([w.HBox([device, floor]), w.HBox([objective, button])], button, compute, "Cannot plan")
