import pytest

from course_lib import hardware, planner, zoo


def test_the_table_holds_every_model_in_both_formats_with_their_measured_costs():
    table = planner.plan_table()
    assert planner.plan_table() is table                                  # built once
    assert [(r.model, r.number_format) for r in table] == [
        (name, fmt) for name, _, _ in planner.PLAN_MODELS for fmt in planner.PLAN_FORMATS]
    for fp32, int8 in zip(table[::2], table[1::2]):
        assert int8.report.weight_bytes * 4 == fp32.report.weight_bytes      # int8 codes, no sparse format
        assert int8.report.macs == fp32.report.macs
        assert fp32.test_accuracy == zoo.entry(fp32.model)["test_accuracy"]
        assert abs(int8.validation_accuracy - fp32.validation_accuracy) < 0.005   # int8 costs little


def test_the_recorded_int8_accuracy_is_what_is_measured():
    assert planner.measure_int8_accuracy("tiny_cnn_fashion_distilled") == \
        planner.INT8_ACCURACY["tiny_cnn_fashion_distilled"]


def test_plan_chooses_on_validation_among_what_fits():
    result = planner.plan(0.90, "Arduino Nano 33 BLE Sense", "smallest flash")
    device = hardware.get_device("Arduino Nano 33 BLE Sense")
    for row, verdict in result.meeting:
        assert verdict.fits and row.validation_accuracy >= 0.90
        assert hardware.check_fit(row.report, device).fits
    flashes = [r.report.weight_bytes for r, _ in result.meeting]
    assert flashes == sorted(flashes) and result.chosen is result.meeting[0][0]
    assert result.chosen.label == "tiny_cnn_fashion_distilled in int8"
    # The teacher in fp32 (1.6 MiB) does not fit the Arduino's 1 MiB of flash.
    teacher = next(v for r, v in result.verdicts if r.label == "small_cnn_fashion in fp32")
    assert not teacher.fits
    most = planner.plan(0.90, "Arduino Nano 33 BLE Sense", "most accurate")
    assert most.chosen.label == "small_cnn_fashion in int8"
    fastest = planner.plan(0.90, "Arduino Nano 33 BLE Sense", "fastest on the device")
    times = [v.estimate.seconds for _, v in fastest.meeting]
    assert times == sorted(times)


def test_an_unreachable_floor_says_so():
    result = planner.plan(0.99, "Arduino Nano 33 BLE Sense")
    assert result.chosen is None and not result.meeting
    assert "No combination meets both" in "\n".join(result.lines())


def test_plan_lines_name_the_settings():
    text = "\n".join(planner.plan(0.855, "ESP32", "fastest on the device").lines())
    assert "ESP32, accuracy floor 85.5% (validation), objective: fastest on the device" in text
    assert "Chosen:" in text and "Estimated latency on ESP32" in text


@pytest.mark.parametrize("args, error, fragment", [
    ((0.9, "Arduino"), ValueError, "device_name must be one of"),
    ((0.9, None), TypeError, "device_name must be a str"),
    ((0.9, "This machine"), ValueError, "device_name must be one of"),
    ((90, "ESP32"), ValueError, "accuracy_floor"),
    (("0.9", "ESP32"), TypeError, "accuracy_floor"),
    ((0.9, "ESP32", "cheapest"), ValueError, "objective must be one of"),
    ((0.9, "ESP32", None), TypeError, "objective must be a str"),
])
def test_bad_input_raises_a_named_error(args, error, fragment):
    with pytest.raises(error, match=fragment):
        planner.plan(*args)


def test_measure_int8_accuracy_rejects_an_unknown_model():
    with pytest.raises(ValueError, match="name must be one of"):
        planner.measure_int8_accuracy("lenet5")
