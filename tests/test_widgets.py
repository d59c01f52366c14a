import re
import threading

import ipywidgets as w
import matplotlib.pyplot as plt
import pytest

from course_lib import checks, data, experiments, measure, planner, plots, widgets, zoo


def shown(panel) -> str:
    """The text a panel shows in its result area (the last child; the note is the one before)."""
    return "\n".join(c.value for c in panel.children[-1].children if isinstance(c, w.HTML))


def test_panel_result_for_lenet5_on_the_stm32():
    result = widgets.evaluate_on_device("lenet5", "int8", "STM32F746", measure_here=True)
    text = "\n".join(result.lines())
    assert result.verdict.fits and "FITS" in text and "estimate" in text and "Measured here" in text


def test_panel_rejects_bad_choices_with_named_errors():
    with pytest.raises(ValueError, match="model_name"):
        widgets.evaluate_on_device("vgg16", "int8", "ESP32")
    with pytest.raises(ValueError, match="number_format"):
        widgets.evaluate_on_device("lenet5", "int3", "ESP32")
    with pytest.raises(ValueError, match="device"):
        widgets.evaluate_on_device("lenet5", "int8", "toaster")


def test_panel_click_evaluates():
    panel = widgets.device_panel(default_model="lenet_300_100", default_device="ESP32")
    panel.children[1].children[1].value = False      # no latency measurement
    panel.children[2].click()
    assert "ESP32: FITS" in shown(panel)


def test_pruning_experiment_channel_and_global():
    channel = experiments.pruning_experiment("lenet_300_100", "channel", 0.5, "STM32F746",
                                             fine_tune_epochs=0, measure_speed=False)
    assert channel.report.parameters < 0.6 * 266_610 and channel.report.encoding == "dense"
    glob = experiments.pruning_experiment("lenet_300_100", "global", 0.9, "ESP32",
                                          fine_tune_epochs=1, fine_tune_examples=1000)
    assert glob.report.nonzeros < 0.12 * 266_610 and glob.speedup is not None
    assert glob.report.weight_bytes < glob.dense_bytes / 4
    assert "speedup" in "\n".join(glob.lines())


def test_pruning_experiment_rejects_bad_input():
    with pytest.raises(ValueError, match="method"):
        experiments.pruning_experiment("lenet5", "random", 0.5, "ESP32")
    with pytest.raises(ValueError, match="sparsity"):
        experiments.pruning_experiment("lenet5", "global", 1.5, "ESP32")
    with pytest.raises(ValueError, match="fine_tune_epochs"):
        experiments.pruning_experiment("lenet5", "global", 0.5, "ESP32", fine_tune_epochs=-1)


def test_pruning_panel_click_runs_the_experiment():
    panel = widgets.pruning_panel(default_model="lenet_300_100", default_device="ESP32")
    panel.children[0].children[1].value = "channel"
    panel.children[1].children[0].value = 0.5
    panel.children[2].children[0].value = 0
    panel.children[2].children[1].click()
    assert "channel pruning at sparsity 0.50" in shown(panel)


def test_quantization_experiment():
    r8 = experiments.quantization_experiment("lenet_300_100", 8, True, "minmax", "STM32F746",
                                             measure_speed=False)
    assert abs(r8.accuracy - r8.baseline_accuracy) < 0.005
    # The report is of the quantized model: int8 codes, scales, biases, input qparams.
    assert r8.report.weight_bytes == 266_200 + 4 * 410 + 4 * 410 + 3 * 8 and r8.report.number_format == "int8"
    r2 = experiments.quantization_experiment("lenet_300_100", 2, False, "minmax", "STM32F746",
                                             measure_speed=False)
    assert r2.accuracy < r8.accuracy and "not timed" in "\n".join(r2.lines())
    assert r2.report.weight_bytes < r8.report.weight_bytes / 3
    with pytest.raises(ValueError, match="bits"):
        experiments.quantization_experiment("lenet5", 17, False, "minmax", "ESP32")
    with pytest.raises(TypeError, match="per_channel must be True"):
        experiments.quantization_experiment("lenet5", 8, "per-channel", "minmax", "ESP32")
    with pytest.raises(ValueError, match="method"):
        experiments.quantization_experiment("lenet5", 8, False, "kl", "ESP32", measure_speed=False)


@pytest.mark.parametrize("make_panel, module, computation, button, failure", [
    (widgets.device_panel, widgets, "evaluate_on_device", lambda p: p.children[2], "Cannot evaluate"),
    (widgets.pruning_panel, experiments, "pruning_experiment", lambda p: p.children[2].children[1], "Cannot run"),
    (widgets.quantization_panel, experiments, "quantization_experiment", lambda p: p.children[2].children[1],
     "Cannot run"),
    (widgets.lowrank_panel, experiments, "lowrank_experiment", lambda p: p.children[2], "Cannot factorize"),
    (widgets.distillation_panel, experiments, "distillation_experiment", lambda p: p.children[2].children[1],
     "Cannot distill"),
    (widgets.model_distillation_panel, experiments, "model_distillation_experiment",
     lambda p: p.children[2].children[1], "Cannot distill"),
    (widgets.nas_panel, experiments, "nas_experiment", lambda p: p.children[3], "Cannot search"),
    (widgets.compression_planner_panel, planner, "plan", lambda p: p.children[1].children[1], "Cannot plan"),
])
def test_panels_show_a_message_not_a_traceback(make_panel, module, computation, button, failure, monkeypatch):
    panel = make_panel()

    def failing(*args, **kwargs):
        raise ValueError("boom <b>")      # raised outside the course's code: not one of its messages

    monkeypatch.setattr(module, computation, failing)
    button(panel).click()                # must not raise
    assert f"{failure}:</b> something the course did not foresee" in shown(panel)
    assert "(ValueError: boom &lt;b&gt;)" in shown(panel)        # the message, as text
    assert "course-panel-unexpected" in panel.children[-1].children[0]._dom_classes

    monkeypatch.setattr(module, computation, lambda *args, **kwargs: checks.check_choice("x", "model_name", ["y"]))
    button(panel).click()                # the course's own message: shown as it is
    assert f"{failure}:</b> model_name must be one of" in shown(panel)
    assert "course-panel-unexpected" not in panel.children[-1].children[0]._dom_classes


# ----------------------------------------------------------------------------- bad input never gives garbage

from course_lib import hardware, zoo  # noqa: E402


@pytest.mark.parametrize("call, error, fragment", [
    (lambda: widgets.evaluate_on_device(3, "int8", "ESP32"), TypeError, "model_name must be a str, one of"),
    (lambda: widgets.evaluate_on_device("vgg16", "int8", "ESP32"), ValueError, "model_name must be one of"),
    (lambda: widgets.evaluate_on_device("lenet5", 8, "ESP32"), TypeError, "number_format must be a str, one of"),
    (lambda: widgets.evaluate_on_device("lenet5", "int3", "ESP32"), ValueError,
     "number_format must be one of ('fp32', 'fp16', 'int8', 'int4', 'int2'), got 'int3'"),
    (lambda: widgets.evaluate_on_device("lenet5", "int8", None), TypeError, "device_name must be a str, one of"),
    (lambda: widgets.evaluate_on_device("lenet5", "int8", "esp32"), ValueError,
     "device_name must be one of"),
    (lambda: widgets.evaluate_on_device("lenet5", "int8", "ESP32", measure_here=1), TypeError,
     "measure_here must be True or False, got int 1"),
    (lambda: widgets.evaluate_on_device("lenet5", "int8", "This machine", measure_here="no"), TypeError,
     "measure_here must be True or False, got str"),
    (lambda: widgets.device_panel(default_model="vgg16"), ValueError, "default_model must be one of"),
    (lambda: widgets.device_panel(default_device="toaster"), ValueError,
     "default_device must be one of"),
    (lambda: widgets.pruning_panel(default_model=None), TypeError, "default_model must be a str, one of"),
    (lambda: widgets.pruning_panel(default_device="Arduino"), ValueError, "got 'Arduino'"),
    (lambda: widgets.quantization_panel(default_device=3), TypeError, "default_device must be a str"),
    (lambda: widgets.quantization_panel(default_model="LeNet5"), ValueError, "default_model must be one of"),
])
def test_bad_input_raises_a_named_error(call, error, fragment, monkeypatch):
    def nothing_may_run(*args, **kwargs):
        raise AssertionError("bad input must be rejected before any model or device is loaded")

    monkeypatch.setattr(zoo, "load", nothing_may_run)
    monkeypatch.setattr(hardware, "this_machine", nothing_may_run)
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)


def test_lowrank_panel_follows_the_layer_and_runs_the_experiment():
    panel = widgets.lowrank_panel(default_model="lenet_300_100", default_device="ESP32")
    model, layer = panel.children[0].children
    rank = panel.children[1].children[0]
    assert layer.options == ("fc1", "fc2", "fc3") and rank.max == 300      # fc1 is 300 x 784
    layer.value = "fc2"
    assert rank.max == 100
    rank.value = 10
    panel.children[2].click()
    assert "fc2 factorised" in shown(panel)
    model.value = "lenet5"                                                # the layers follow the model
    assert layer.options == ("conv1", "conv2", "fc1", "fc2")
    with pytest.raises(ValueError, match="default_model"):
        widgets.lowrank_panel(default_model="vgg16")


# ----------------------------------------------------------------------------- figures, staleness, labels

PANELS = [widgets.device_panel, widgets.pruning_panel, widgets.quantization_panel, widgets.lowrank_panel,
          widgets.distillation_panel, widgets.model_distillation_panel, widgets.nas_panel,
          widgets.compression_planner_panel]


def controls(panel):
    """The panel's controls (dropdowns, sliders, checkboxes), in order; not its button or result."""
    def walk(widget):
        for child in getattr(widget, "children", ()):
            yield from walk(child)
        if isinstance(widget, w.ValueWidget):
            yield widget
    return [c for row in panel.children[:-2] for c in walk(row)]


def another_value(control):
    """A valid value other than the control's current one."""
    if isinstance(control, w.Checkbox):
        return not control.value
    if isinstance(control, (w.Dropdown, w.SelectionSlider)):
        return next(v for _, v in reversed(control._options_full) if v != control.value)
    return control.max if control.value != control.max else control.min


def test_device_panel_shows_its_figure_as_a_png_drawn_without_pyplot(monkeypatch):
    panel = widgets.device_panel(default_model="lenet5", default_device="STM32F746")
    panel.children[1].children[1].value = False

    def no_pyplot(*args, **kwargs):
        raise AssertionError("a panel callback must not touch pyplot")

    for name in ("figure", "subplots", "show", "close", "gcf"):
        monkeypatch.setattr(plt, name, no_pyplot)
    panel.children[2].click()
    monkeypatch.undo()
    text, image = panel.children[-1].children
    assert "lenet5 stored as fp32" in text.value and "STM32F746" in text.value
    assert isinstance(image, w.Image) and image.format == "png" and bytes(image.value).startswith(b"\x89PNG")
    # The same figure drawn outside the panel, through pyplot as a notebook cell draws it: same pixels.
    verdict = widgets.evaluate_on_device("lenet5", "fp32", "STM32F746").verdict
    outside = plots.plot_fit_bars(verdict, "flash", "SRAM")
    try:
        assert plots.figure_png(outside) == bytes(image.value)
    finally:
        plt.close(outside)


def test_a_panel_press_on_another_thread_draws_the_complete_figure():
    # JupyterLab's comms over subshells deliver the click on a second thread.
    panel = widgets.device_panel(default_model="lenet_300_100", default_device="ESP32")
    panel.children[1].children[1].value = False
    presses = [threading.Thread(target=panel.children[2].click) for _ in range(2)]
    for t in presses:
        t.start()
        t.join()
    verdict = widgets.evaluate_on_device("lenet_300_100", "fp32", "ESP32").verdict
    reference = plots.figure_png(plots.plot_fit_bars(verdict, "flash", "SRAM", pyplot=False))
    assert bytes(panel.children[-1].children[1].value) == reference


def test_a_panel_refuses_a_pyplot_figure():
    fig = plt.figure()
    try:
        with pytest.raises(TypeError, match="pyplot=False"):
            widgets._as_widget(fig)
    finally:
        plt.close(fig)


@pytest.mark.parametrize("make_panel", PANELS)
def test_every_control_marks_an_old_result_stale(make_panel):
    panel = make_panel()
    note, result = panel.children[-2:]
    first = controls(panel)[0]
    first.value = another_value(first)
    assert note.value == ""                                   # nothing shown yet: nothing is stale
    result.children = (w.HTML("an old result"),)
    for control in controls(panel):
        if isinstance(control, w.Dropdown) and len(control.options) < 2:
            continue                                          # e.g. the layers of a model not built here
        note.value = ""
        control.value = another_value(control)
        assert "Settings changed" in note.value, control.description


def test_a_press_clears_the_stale_note():
    panel = widgets.device_panel(default_model="lenet_300_100", default_device="ESP32")
    note, measure_here, fmt = panel.children[-2], panel.children[1].children[1], panel.children[0].children[1]
    measure_here.value = False
    panel.children[2].click()
    assert note.value == "" and "stored as fp32" in shown(panel)
    fmt.value = "int8"
    assert "Settings changed" in note.value and "<b>Evaluate</b>" in note.value
    assert "stored as fp32" in shown(panel)                   # the old result stays, marked stale
    panel.children[2].click()
    assert note.value == "" and "stored as int8" in shown(panel)


@pytest.mark.parametrize("make_panel", PANELS)
def test_buttons_are_sized_to_their_label(make_panel):
    panel = make_panel()
    buttons = [c for row in panel.children[:-2] for c in [row, *getattr(row, "children", ())]
               if isinstance(c, w.Button)]
    assert len(buttons) == 1 and buttons[0].layout.width == "max-content"


def test_model_distillation_panel_size_slider_follows_the_family():
    panel = widgets.model_distillation_panel()
    family, size = panel.children[0].children
    epochs = panel.children[1].children[1]
    for name, (start, low, high, step) in widgets.PANEL_STUDENT_SIZES.items():
        family.value = name
        assert (size.value, size.min, size.max, size.step) == (start, low, high, step)
        assert size.description == experiments.SIZES[name][0].split()[-1]
        assert epochs.disabled == (name == "tree")
    family.value = "tree"
    size.value = 3
    panel.children[2].children[1].click()
    text = shown(panel)
    assert "decision tree of depth <= 3" in text and "no true labels used" in text


def test_compression_planner_panel_plans_and_names_its_settings():
    panel = widgets.compression_planner_panel()
    device, floor = panel.children[0].children
    objective, button = panel.children[1].children
    floor.value = 85.5
    objective.value = "fastest on the device"
    button.click()
    text = shown(panel)
    assert "Arduino Nano 33 BLE Sense, accuracy floor 85.5%" in text and "fastest on the device" in text
    assert "Chosen: tiny_cnn_fashion_distilled in int8" in text and "FITS" in text
    device.value = None
    button.click()
    assert "Cannot plan:</b> device_name must be a str" in shown(panel)


def test_architecture_panel_is_live():
    # Costing a design takes milliseconds: the result is there at once and follows every control.
    panel = widgets.architecture_panel(default_device="STM32F746")
    assert "course-panel-live" in panel._dom_classes
    assert "separable design" in shown(panel) and "STM32F746" in shown(panel)
    block, width = panel.children[0].children
    width.value = 0.5
    assert "α = 0.50" in shown(panel) and panel.children[-2].value == ""          # no stale note
    block.value = "inverted_residual"
    assert "mobilenet_v2 design" in shown(panel) and "mobilenet_v2_x0_5_fashion" in shown(panel)
    device = panel.children[2].children[0]
    device.value = None                                                             # nothing chosen
    assert "Cannot build" in shown(panel) and "must be" in shown(panel)


# ----------------------------------------------------------------------------- every choice a panel offers

PANELS = (widgets.device_panel, widgets.pruning_panel, widgets.quantization_panel, widgets.lowrank_panel,
          widgets.distillation_panel, widgets.architecture_panel, widgets.model_distillation_panel,
          widgets.nas_panel, widgets.compression_planner_panel, widgets.language_model_panel)


def _walk(widget):
    for child in getattr(widget, "children", ()):
        yield from _walk(child)
    yield widget


@pytest.fixture
def cheap_data(monkeypatch):
    """The panels' work cut down: splits of at most 2,000 images (samples of 100), accuracy scored on
    100 images, two timing runs. What a choice can break is the code path, not the accuracy, so
    every choice runs in a fraction of a second."""
    import importlib

    from course_lib import data, measure, train

    load, subset, sample = data.load, data.ImageSplit.subset, data.ImageSplit.sample
    monkeypatch.setattr(data, "load", lambda *a, **k: subset(load(*a, **k), 2000))
    monkeypatch.setattr(data.ImageSplit, "subset", lambda self, n: subset(self, min(n, len(self))))
    monkeypatch.setattr(data.ImageSplit, "sample", lambda self, n, seed=0: sample(self, min(n, len(self), 100), seed))
    evaluate = train.evaluate
    for name in ("pruning", "quantization", "lowrank", "distillation", "model_distillation"):
        module = importlib.import_module(f"course_lib.experiments.{name}")
        if hasattr(module, "evaluate"):
            monkeypatch.setattr(module, "evaluate", lambda model, split, *a, **k: evaluate(model, subset(split, 100)))
    for name in ("speedup", "measure_latency"):
        timing = getattr(measure, name)
        monkeypatch.setattr(measure, name, lambda *a, _timing=timing, **k: _timing(*a, **{**k, "warmup": 0,
                                                                                           "repeats": 2}))


def test_every_dropdown_value_of_every_panel_gives_a_result_or_a_course_message(cheap_data):
    """Every panel, every value of every dropdown (the others at their defaults, sliders at their
    cheapest, no optional measuring; of the zoo's models, one per family of architectures, since the
    widths and seeds of one design share every code path; every device in the device panel, the
    first, the last and the default elsewhere): the result, or a message in the course's words; never
    an error the course did not foresee (a raw Python or torch message). Prints the table."""
    import ipywidgets as w

    rows, unexpected = [], []
    for make_panel in PANELS:
        panel = make_panel()
        controls = [c for c in _walk(panel) if isinstance(c, w.ValueWidget)]
        for control in controls:
            if isinstance(control, (w.IntSlider, w.FloatSlider)):
                control.value = control.min
            elif isinstance(control, w.Checkbox):
                control.value = False
        button = next(c for c in _walk(panel) if isinstance(c, w.Button))
        for dropdown in [c for c in controls if isinstance(c, w.Dropdown)]:
            default = dropdown.value
            options = list(zip(dropdown._options_labels, dropdown._options_values))
            if dropdown.description == "model":      # one zoo model per family of architectures (widths and
                first = {}                            # seeds of one design share every code path)
                for label, value in options:
                    family = re.sub(r"(_x\d_\d|_\d)+$", "", zoo.entry(value)["architecture"])
                    first.setdefault(family, (label, value))
                options = list(first.values())
            elif dropdown.description == "device" and make_panel is not widgets.device_panel:
                options = options[:1] + options[-1:]  # every device profile goes through the device panel
                if default not in [v for _, v in options]:
                    options.append(next(o for o in zip(dropdown._options_labels, dropdown._options_values)
                                        if o[1] == default))
            for label, value in options:
                dropdown.value = value
                button.click()
                result = panel.children[-1].children
                failure = [c for c in result if "course-panel-failure" in c._dom_classes]
                outcome = "result" if not failure else "message: " + failure[0].value.split("</b>", 1)[1][:90]
                rows.append((make_panel.__name__, dropdown.description, label, outcome))
                if failure and "course-panel-unexpected" in failure[0]._dom_classes:
                    unexpected.append(rows[-1])
            dropdown.value = default
    width = max(len(r[2]) for r in rows)
    print("\n".join(f"{p:26s} {d:12s} {label:{width}s} {o}" for p, d, label, o in rows))
    assert len(rows) > 100 and not unexpected, "\n".join(map(str, unexpected))


def test_panels_offer_only_models_they_can_run():
    """The model dropdowns list the zoo's models that classify images by themselves, derived from each
    model's forward; the supernet, which also needs an architecture, is not offered, and asked for
    anyway it gets the course's message. The pruning panel offers channel pruning only for a plain
    stack of layers."""
    import ipywidgets as w

    offered = experiments.panel_models()
    image_models = [n for n in zoo.names() if zoo.RECIPES[n].dataset in data.DATASET_NAMES]    # not the language models
    assert "supernet_fashion" not in offered and "lenet5" in offered and len(offered) == len(image_models) - 1
    for make_panel in (widgets.device_panel, widgets.pruning_panel, widgets.quantization_panel,
                       widgets.lowrank_panel):
        model = next(c for c in _walk(make_panel()) if isinstance(c, w.Dropdown) and c.description == "model")
        assert model.options == offered
    with pytest.raises(ValueError, match="cannot classify images by itself: its forward also needs 'architecture'"):
        widgets.evaluate_on_device("supernet_fashion", "int8", "ESP32")
    panel = widgets.pruning_panel(default_model="lenet5")
    model, method = (next(c for c in _walk(panel) if isinstance(c, w.Dropdown) and c.description == d)
                     for d in ("model", "method"))
    assert "channel" in method.options[-1] and method.value == "layer"
    method.value = "channel"
    model.value = "mobilenet_v2_x1_0_fashion"            # blocks with shortcuts: no channel pruning offered
    assert [v for _, v in method.options] == ["layer", "global"] and method.value == "layer"
    with pytest.raises(ValueError, match="channel pruning needs a plain stack of layers"):
        experiments.pruning_experiment("mobilenet_v2_x1_0_fashion", "channel", 0.5, "ESP32", measure_speed=False)


def test_a_saved_panel_reads_as_a_note_and_its_figures_keep_their_size():
    """A panel's text form (what a notebook saved with it shows until the cell runs again) is a
    note, not a repr of its children; a figure is shown at its natural width, not stretched."""
    import ipywidgets as w

    panel = widgets.device_panel(default_model="lenet5", default_device="Arduino Nano 33 BLE Sense")
    assert repr(panel) == widgets.PANEL_NOTE and "VBox" not in repr(panel)
    assert panel._repr_mimebundle_()["text/plain"] == widgets.PANEL_NOTE
    next(c for c in _walk(panel) if isinstance(c, w.Checkbox)).value = False
    next(c for c in _walk(panel) if isinstance(c, w.Button)).click()
    (image,) = [c for c in panel.children[-1].children if isinstance(c, w.Image)]
    width = int.from_bytes(bytes(image.value)[16:20], "big")
    assert image.layout.width == f"{width}px" and image.layout.max_width == "100%"


@pytest.mark.parametrize("model, number_format, device", [
    ("lenet5", "fp32", "Arduino Nano 33 BLE Sense"), ("lenet5", "int8", "Arduino Nano 33 BLE Sense"),
    ("lenet5", "fp32", "Raspberry Pi 4"), ("mobilenet_v2_x1_0_fashion", "int8", "STM32F746"),
    ("lenet_300_100", "fp32", "This machine")])
def test_fit_bars_keep_their_labels_inside_the_frame_and_name_the_runtime(model, number_format, device):
    result = widgets.evaluate_on_device(model, number_format, device)
    figure = plots.plot_fit_bars(result.verdict, pyplot=False)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    ax = figure.axes[0]
    frame = ax.get_window_extent(renderer)
    for text in ax.texts:
        box = text.get_window_extent(renderer)
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, text
    if result.verdict.storage_overhead:
        assert f"incl. {measure.format_bytes(result.verdict.storage_overhead)} for the runtime" in ax.texts[0].get_text()


def test_counts_read_in_the_right_number():
    assert measure.counted(1, "epoch") == "1 epoch" and measure.counted(2, "epoch") == "2 epochs"
    assert measure.counted(0, "proposal") == "0 proposals" and measure.counted(1_000, "image") == "1,000 images"


def test_notebooks_keep_no_panel_state_and_a_saved_panel_reads_as_the_note():
    """Opened before it runs, a panel cell shows the course's note: the notebooks store no widget state
    (which JupyterLab would draw as a dead, static panel) and each panel cell's text is the note."""
    import json
    import re
    from pathlib import Path

    panels = 0
    for path in sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        assert "widgets" not in notebook["metadata"], f"{path.name} stores widget state"
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code" and re.search(r"\bwidgets\.\w+_panel\(", "".join(cell["source"])):
                texts = ["".join(o["data"]["text/plain"]) for o in cell["outputs"]
                         if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
                assert texts == [widgets.PANEL_NOTE], (path.name, texts)
                panels += 1
    assert panels >= 9
