import dataclasses

import pytest
from torch import nn

from course_lib import hardware, measure, models


def test_calibration_reproduces_the_published_measurement():
    # The CIFAR-10 CNN of CMSIS-NN, rebuilt to count its MACs.
    cnn = nn.Sequential(nn.Conv2d(3, 32, 5, padding=2), nn.MaxPool2d(2), nn.Conv2d(32, 32, 5, padding=2),
                        nn.MaxPool2d(2), nn.Conv2d(32, 64, 5, padding=2), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(1024, 10))
    assert measure.count_macs(cnn, (3, 32, 32)) == hardware.CMSIS_NN_CIFAR10_MACS
    report = measure.report(cnn, "cmsis-nn cifar10", "int8", input_shape=(3, 32, 32))
    estimate = hardware.estimate_latency(report, hardware.PROFILES["STM32F746"])
    assert estimate.bound == "compute"
    assert estimate.seconds == pytest.approx(hardware.CMSIS_NN_CIFAR10_SECONDS, rel=1e-6)


def test_profiles_carry_the_issue_figures_and_sources():
    p = hardware.PROFILES
    assert (p["Arduino Nano 33 BLE Sense"].memory_bytes, p["Arduino Nano 33 BLE Sense"].storage_bytes,
            p["Arduino Nano 33 BLE Sense"].clock_hz) == (256 * 1024, 1024 ** 2, 64e6)
    assert (p["STM32F746"].memory_bytes, p["STM32F746"].clock_hz) == (320 * 1024, 216e6)
    assert (p["STM32H743"].memory_bytes, p["STM32H743"].storage_bytes) == (512 * 1024, 2 * 1024 ** 2)
    assert p["ESP32"].memory_bytes == 520 * 1024
    assert all(d.source and d.efficiency_source for d in p.values())


def test_lenet5_verdicts_have_reasons():
    fp32 = measure.report(models.lenet5(), "lenet5", "fp32")
    nano = hardware.check_fit(fp32, hardware.PROFILES["Arduino Nano 33 BLE Sense"])
    assert not nano.fits and "flash holds" in nano.reasons[0]
    int8 = measure.report(models.lenet5(), "lenet5", "int8")
    assert hardware.check_fit(int8, hardware.PROFILES["Arduino Nano 33 BLE Sense"]).fits
    fp16 = measure.report(models.lenet5(), "lenet5", "fp16")
    pi = hardware.check_fit(fp16, hardware.PROFILES["Raspberry Pi 4"])
    assert not pi.fits and "no fp16 arithmetic" in pi.reasons[0]
    rows = hardware.verdict_table(fp32)
    assert len(rows) == len(hardware.PROFILES) and all(r["fits"] == "yes" or r["why not"] for r in rows)


def test_activations_that_overflow_sram_are_reported():
    wide = nn.Sequential(nn.Conv2d(1, 256, 3, padding=1))     # 256*28*28*4 bytes of output
    report = measure.report(wide, "wide", "fp32")
    verdict = hardware.check_fit(report, hardware.PROFILES["STM32F746"])
    assert not verdict.fits and any("SRAM holds" in r for r in verdict.reasons)


def test_fewer_bits_estimate_faster_and_cheaper():
    model = models.lenet5()
    fp32, int8 = (measure.report(model, "m", f) for f in ("fp32", "int8"))
    device = hardware.PROFILES["STM32H743"]
    assert hardware.estimate_latency(int8, device).seconds < hardware.estimate_latency(fp32, device).seconds
    e32, e8 = hardware.estimate_energy(fp32), hardware.estimate_energy(int8)
    assert e8.total_pj < e32.total_pj
    assert e32.weight_traffic_pj > 10 * e32.compute_pj   # memory traffic dominates (Horowitz 2014)


def test_arithmetic_format():
    assert [hardware.arithmetic_format(f) for f in ("fp32", "fp16", "bf16", "int8", "int4", "int12", "int32")] == \
        ["fp32", "fp16", "fp16", "int8", "int8", "int16", "fp32"]


def test_this_machine_is_measured():
    here = hardware.this_machine(threads=1)
    assert here.macs_per_second("fp32") > 1e7 and here.bandwidth > 1e8 and "measured" in here.source


def test_bad_arguments_are_named():
    report = measure.report(models.lenet5())
    with pytest.raises(ValueError, match="device"):
        hardware.get_device("Cray-1")
    with pytest.raises(TypeError, match="report"):
        hardware.check_fit("lenet5", hardware.PROFILES["ESP32"])
    with pytest.raises(TypeError, match="device"):
        hardware.check_fit(report, "ESP32")
    with pytest.raises(ValueError, match="weights_from"):
        hardware.estimate_energy(report, "flash")
    with pytest.raises(ValueError, match="memory_overhead_bytes"):
        hardware.with_overheads(hardware.PROFILES["ESP32"], -1, 0)


# ----------------------------------------------------------------------------- bad input

ESP32 = hardware.PROFILES["ESP32"]
NANO = hardware.PROFILES["Arduino Nano 33 BLE Sense"]


@pytest.fixture(scope="module")
def lenet5_fp32():
    return measure.report(models.lenet5(), "lenet5", "fp32")


@pytest.mark.parametrize("memory, storage, error, fragment", [
    (float("nan"), 0, TypeError, "memory_overhead_bytes must be an int >= 0, got float nan"),
    (0, float("inf"), TypeError, "storage_overhead_bytes must be an int >= 0, got float inf"),
    (-float("inf"), 0, TypeError, "memory_overhead_bytes"),
    (1.5, 0, TypeError, "got float 1.5"),
    ("16 KB", 0, TypeError, "got str '16 KB'"),
    (None, 0, TypeError, "memory_overhead_bytes"),
    (True, 0, TypeError, "got bool"),
    (0, -1, ValueError, "storage_overhead_bytes must be an int >= 0, got -1"),
])
def test_with_overheads_rejects_what_is_not_a_byte_count(memory, storage, error, fragment):
    with pytest.raises(error) as info:
        hardware.with_overheads(ESP32, memory, storage)
    assert fragment in str(info.value)


def test_nan_overhead_cannot_turn_does_not_fit_into_fits(lenet5_fp32):
    assert not hardware.check_fit(lenet5_fp32, NANO).fits
    with pytest.raises(TypeError):
        hardware.with_overheads(NANO, float("nan"), float("nan"))
    assert not hardware.check_fit(lenet5_fp32, hardware.with_overheads(NANO, 0, 0)).fits


def test_report_number_format_accepts_names_and_ints_and_names_the_field(lenet5_fp32):
    as_int8 = dataclasses.replace(lenet5_fp32, number_format="int8")
    as_int = dataclasses.replace(lenet5_fp32, number_format=8)
    assert hardware.check_fit(as_int, ESP32) == hardware.check_fit(as_int8, ESP32)
    for bad in ("8", "float8", 8.0, None):
        with pytest.raises(ValueError, match=r"report.number_format must be a format name .* got"):
            hardware.check_fit(dataclasses.replace(lenet5_fp32, number_format=bad), ESP32)


@pytest.mark.parametrize("call, error, fragment", [
    (lambda r: hardware.estimate_latency("lenet5", ESP32), TypeError, "report must be a ModelReport"),
    (lambda r: hardware.estimate_latency(r, "ESP32"), TypeError, "device must be a Device"),
    (lambda r: hardware.estimate_latency(dataclasses.replace(r, number_format="8"), ESP32), ValueError,
     "report.number_format"),
    (lambda r: hardware.estimate_latency(dataclasses.replace(r, macs=float("nan")), ESP32), TypeError,
     "report.macs must be an int >= 0"),
    (lambda r: hardware.check_fit(dataclasses.replace(r, weight_bytes=-1), ESP32), ValueError,
     "report.weight_bytes must be an int >= 0, got -1"),
    (lambda r: hardware.estimate_energy(None), TypeError, "report must be a ModelReport"),
    (lambda r: hardware.estimate_energy(r, None), ValueError, "weights_from must be 'dram' or 'sram', got None"),
    (lambda r: hardware.estimate_energy(dataclasses.replace(r, number_format="fp8")), ValueError,
     "report.number_format"),
    (lambda r: hardware.verdict_table(r, []), ValueError, "devices must hold at least one Device"),
    (lambda r: hardware.verdict_table(r, ESP32), TypeError, "devices must be a list of Device"),
    (lambda r: hardware.verdict_table(r, [ESP32, "STM32F746"]), TypeError, "device must be a Device"),
    (lambda r: hardware.verdict_table("lenet5"), TypeError, "report must be a ModelReport"),
    (lambda r: hardware.get_device(None), TypeError, "name must be a device name"),
    (lambda r: hardware.get_device("esp32"), ValueError, "device must be one of"),
    (lambda r: hardware.this_machine(threads=0), ValueError, "threads must be an int >= 1, got 0"),
    (lambda r: hardware.this_machine(threads=2.0), TypeError, "threads must be an int >= 1, got float"),
    (lambda r: hardware.this_machine(threads=True), TypeError, "got bool"),
    (lambda r: hardware.arithmetic_format("8"), ValueError, "number_format"),
    (lambda r: hardware.arithmetic_format(float("nan")), TypeError, "number_format"),
    (lambda r: ESP32.macs_per_second(8.5), TypeError, "number_format"),
])
def test_bad_input_raises_a_named_error(lenet5_fp32, call, error, fragment):
    with pytest.raises(error) as info:
        call(lenet5_fp32)
    assert fragment in str(info.value)


@pytest.mark.parametrize("change, error, fragment", [
    ({"clock_hz": float("nan")}, ValueError, "clock_hz must be a finite number > 0, got nan"),
    ({"bandwidth": 0}, ValueError, "bandwidth must be a finite number > 0, got 0"),
    ({"efficiency": 1.5}, ValueError, "efficiency must be a finite number in (0, 1], got 1.5"),
    ({"memory_bytes": 2.0 ** 20}, TypeError, "memory_bytes must be an int >= 0"),
    ({"macs_per_cycle": {"int4": 8.0}}, ValueError, "macs_per_cycle keys must be in"),
    ({"macs_per_cycle": {"int8": float("inf")}}, ValueError, "macs_per_cycle['int8']"),
    ({"weights_in_memory": 1}, TypeError, "weights_in_memory must be True or False"),
])
def test_devices_with_impossible_figures_are_rejected(change, error, fragment):
    with pytest.raises(error) as info:
        dataclasses.replace(ESP32, **change)
    assert fragment in str(info.value)


def test_nothing_changes_on_error(lenet5_fp32):
    before = dataclasses.asdict(ESP32), dataclasses.asdict(lenet5_fp32)
    profiles = dict(hardware.PROFILES)
    for call in (lambda: hardware.with_overheads(ESP32, float("nan"), 0),
                 lambda: hardware.verdict_table(lenet5_fp32, [ESP32, None])):
        with pytest.raises(TypeError):
            call()
    assert (dataclasses.asdict(ESP32), dataclasses.asdict(lenet5_fp32)) == before
    assert hardware.PROFILES == profiles
