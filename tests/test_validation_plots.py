"""Bad input to course_lib.plots raises a named error before any figure is created."""
import matplotlib.pyplot as plt
import pytest

from course_lib import hardware, measure, models, plots

REPORT = measure.report(models.lenet5(), "lenet5", "int8")
VERDICT = hardware.check_fit(REPORT, hardware.PROFILES["ESP32"])


@pytest.mark.parametrize("call, error, fragment", [
    (lambda: plots.plot_layer_costs("lenet5"), TypeError, "report must be a ModelReport"),
    (lambda: plots.plot_fit_bars(REPORT), TypeError, "verdict must be a Verdict"),
    (lambda: plots.plot_fit_bars(VERDICT, storage_label=1), TypeError, "storage_label must be a str"),
    (lambda: plots.plot_device_matrix(REPORT, {}), TypeError, "reports must be a list of ModelReport"),
    (lambda: plots.plot_device_matrix([REPORT], [VERDICT]), TypeError, "verdicts must be a dict"),
    (lambda: plots.plot_device_matrix([], {}), ValueError, "at least one item"),
    (lambda: plots.plot_device_matrix([REPORT], {("lenet5", "ESP32"): REPORT}), TypeError,
     "verdicts must map (model name, device name) to a Verdict"),
    (lambda: plots.plot_device_matrix([REPORT, measure.report(models.lenet_300_100(), "mlp")],
                                      {("lenet5", "ESP32"): VERDICT}), ValueError,
     "verdicts lacks (model, device) pairs [('mlp', 'ESP32')]"),
    (lambda: plots.plot_history([]), ValueError, "history is empty"),
    (lambda: plots.plot_history({"epoch": 1}), TypeError, "history must be a list of dicts"),
    (lambda: plots.plot_history([{"epoch": 1, "train_loss": 0.5, "validation_accuracy": 0.9},
                                 {"epoch": 2, "train_loss": 0.4}]), ValueError,
     "history[1] lacks ['validation_accuracy']"),
    (lambda: plots.plot_history([{"epoch": 1, "train_loss": 0.5}], title=None), TypeError, "title must be a str"),
])
def test_bad_input_raises_a_named_error_and_leaves_no_figure(call, error, fragment):
    plt.close("all")
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)
    assert plt.get_fignums() == []


def test_good_input_still_draws():
    figures = [plots.plot_layer_costs(REPORT), plots.plot_fit_bars(VERDICT),
               plots.plot_device_matrix([REPORT], {("lenet5", "ESP32"): VERDICT}),
               plots.plot_history([{"epoch": 1, "train_loss": 0.5, "validation_accuracy": 0.9}])]
    assert all(f.axes for f in figures)
    plt.close("all")
