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


def test_compute_format():
    assert [hardware.compute_format(f) for f in ("fp32", "fp16", "bf16", "int8", "int4", "int12", "int32")] == \
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
    with pytest.raises(ValueError, match="overheads"):
        hardware.with_overheads(hardware.PROFILES["ESP32"], -1, 0)
