import pytest

from course_lib import pruning, quantization, widgets


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


def test_panel_click_evaluates(capsys):
    panel = widgets.device_panel(default_model="lenet_300_100", default_device="ESP32")
    panel.children[1].children[1].value = False      # no latency measurement
    panel.children[2].click()
    assert "ESP32: FITS" in capsys.readouterr().out


def test_pruning_experiment_channel_and_global():
    channel = pruning.pruning_experiment("lenet_300_100", "channel", 0.5, "STM32F746",
                                             fine_tune_epochs=0, measure_speed=False)
    assert channel.report.parameters < 0.6 * 266_610 and channel.report.encoding == "dense"
    glob = pruning.pruning_experiment("lenet_300_100", "global", 0.9, "ESP32",
                                          fine_tune_epochs=1, fine_tune_examples=1000)
    assert glob.report.nonzeros < 0.12 * 266_610 and glob.speedup is not None
    assert glob.report.weight_bytes < glob.dense_bytes / 4
    assert "speedup" in "\n".join(glob.lines())


def test_pruning_experiment_rejects_bad_input():
    with pytest.raises(ValueError, match="method"):
        pruning.pruning_experiment("lenet5", "random", 0.5, "ESP32")
    with pytest.raises(ValueError, match="sparsity"):
        pruning.pruning_experiment("lenet5", "global", 1.5, "ESP32")
    with pytest.raises(ValueError, match="fine_tune_epochs"):
        pruning.pruning_experiment("lenet5", "global", 0.5, "ESP32", fine_tune_epochs=-1)


def test_pruning_panel_click_runs_the_experiment(capsys):
    panel = widgets.pruning_panel(default_model="lenet_300_100", default_device="ESP32")
    panel.children[0].children[1].value = "channel"
    panel.children[1].children[0].value = 0.5
    panel.children[2].children[0].value = 0
    panel.children[2].children[1].click()
    assert "channel pruning at sparsity 0.50" in capsys.readouterr().out


def test_quantization_experiment():
    r8 = quantization.quantization_experiment("lenet_300_100", 8, "per-channel", "minmax", "STM32F746",
                                             measure_speed=False)
    assert abs(r8.accuracy - r8.baseline_accuracy) < 0.005
    # The report is of the quantized model: int8 codes, scales, biases, input qparams.
    assert r8.report.weight_bytes == 266_200 + 4 * 410 + 4 * 410 + 3 * 8 and r8.report.number_format == "int8"
    r2 = quantization.quantization_experiment("lenet_300_100", 2, "per-tensor", "minmax", "STM32F746",
                                             measure_speed=False)
    assert r2.accuracy < r8.accuracy and "not timed" in "\n".join(r2.lines())
    assert r2.report.weight_bytes < r8.report.weight_bytes / 3
    with pytest.raises(ValueError, match="bits"):
        quantization.quantization_experiment("lenet5", 17, "per-tensor", "minmax", "ESP32")
    with pytest.raises(ValueError, match="granularity"):
        quantization.quantization_experiment("lenet5", 8, "per-row", "minmax", "ESP32")
    with pytest.raises(ValueError, match="method"):
        quantization.quantization_experiment("lenet5", 8, "per-tensor", "kl", "ESP32", measure_speed=False)


@pytest.mark.parametrize("make_panel, module, computation, button, failure", [
    (widgets.device_panel, widgets, "evaluate_on_device", lambda p: p.children[2], "Cannot evaluate"),
    (widgets.pruning_panel, pruning, "pruning_experiment", lambda p: p.children[2].children[1], "Cannot run"),
    (widgets.quantization_panel, quantization, "quantization_experiment", lambda p: p.children[2].children[1],
     "Cannot run"),
])
def test_panels_show_a_message_not_a_traceback(make_panel, module, computation, button, failure, monkeypatch,
                                               capsys):
    panel = make_panel()

    def failing(*args):
        raise ValueError("boom")

    monkeypatch.setattr(module, computation, failing)
    button(panel).click()                # must not raise
    # Outside a kernel, display() prints the widget's repr to stdout.
    assert f"{failure}:</b> boom" in capsys.readouterr().out


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


def test_lowrank_panel_follows_the_layer_and_runs_the_experiment(capsys):
    panel = widgets.lowrank_panel(default_model="lenet_300_100", default_device="ESP32")
    model, layer = panel.children[0].children
    rank = panel.children[1].children[0]
    assert layer.options == ("fc1", "fc2", "fc3") and rank.max == 300      # fc1 is 300 x 784
    layer.value = "fc2"
    assert rank.max == 100
    rank.value = 10
    panel.children[2].click()
    assert "fc2 factorised" in capsys.readouterr().out
    model.value = "lenet5"                                                # the layers follow the model
    assert layer.options == ("conv1", "conv2", "fc1", "fc2")
    with pytest.raises(ValueError, match="default_model"):
        widgets.lowrank_panel(default_model="vgg16")
