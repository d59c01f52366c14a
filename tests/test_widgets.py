import pytest

from course_lib import widgets


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


def test_panel_shows_a_message_not_a_traceback(monkeypatch, capsys):
    panel = widgets.device_panel()
    button = panel.children[2]

    def failing(*args):
        raise ValueError("boom")

    monkeypatch.setattr(widgets, "evaluate_on_device", failing)
    button.click()                       # must not raise
    # Outside a kernel, display() prints the widget's repr to stdout.
    assert "Cannot evaluate:</b> boom" in capsys.readouterr().out


def test_panel_click_evaluates(capsys):
    panel = widgets.device_panel(default_model="lenet_300_100", default_device="ESP32")
    panel.children[1].children[1].value = False      # no latency measurement
    panel.children[2].click()
    assert "ESP32: FITS" in capsys.readouterr().out
