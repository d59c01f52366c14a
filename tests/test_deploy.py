import dataclasses
import os
import platform
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from course_lib import data, deploy, runtime, zoo

# ----------------------------------------------------------------------------- fixtures: real int8 models


def _int8_files(folder, model, calibration_images: int = 500, weight_range: str = "saturation_safe"):
    fp32 = runtime.export_onnx(model, folder / "fp32.onnx")
    int8 = runtime.quantize_onnx_int8(fp32, folder / f"int8_{weight_range}.onnx",
                                      data.load("mnist", "train").subset(calibration_images), weight_range=weight_range)
    return fp32, int8


@pytest.fixture(scope="module")
def lenet5_files(tmp_path_factory):
    return _int8_files(tmp_path_factory.mktemp("lenet5"), zoo.load("lenet5"))


@pytest.fixture(scope="module")
def lenet5(lenet5_files):
    return deploy.read_int8_model(lenet5_files[1])


@pytest.fixture(scope="module")
def test_images(mnist_test):
    return mnist_test.images[:500].numpy().astype(np.float32)


def _ort_logits(path, x):
    return runtime.ort_session(path, threads=1).run(None, {"x": x})[0]


# ----------------------------------------------------------------------------- agreement with ONNX Runtime

def test_lenet5_integer_forward_equals_onnx_runtime_bit_for_bit(lenet5_files, lenet5, test_images):
    out = deploy.forward_int8(lenet5, test_images)
    reference = _ort_logits(lenet5_files[1], test_images)
    assert out.codes.dtype == np.uint8 and out.codes.shape == (500, 10)
    assert out.logits.dtype == np.float32
    assert np.array_equal(out.logits.view(np.uint32), reference.view(np.uint32))      # every bit
    assert np.array_equal(out.logits, deploy.dequantize_linear(out.codes, lenet5.output_scale,
                                                               lenet5.output_zero_point))


def test_lenet_300_100_integer_forward_equals_onnx_runtime(tmp_path, test_images):
    _, int8 = _int8_files(tmp_path, zoo.load("lenet_300_100"), 200)
    model = deploy.read_int8_model(int8)
    assert [type(layer).__name__ for layer in model.layers] == ["Flatten"] + ["QuantizedLinear"] * 3
    assert np.array_equal(deploy.forward_int8(model, test_images).logits.view(np.uint32),
                          _ort_logits(int8, test_images).view(np.uint32))


def test_fixed_point_requantization_stays_within_one_code(lenet5, test_images):
    exact = deploy.forward_int8(lenet5, test_images).codes.astype(int)
    fixed = deploy.forward_int8(lenet5, test_images, requantization="fixed_point").codes.astype(int)
    assert np.abs(exact - fixed).max() <= 1                  # measured: 2.1% of codes differ, by 1, on 10,000 images
    assert (exact.argmax(1) == fixed.argmax(1)).mean() >= 0.99


def _grouped_model():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU(),       # depthwise
        nn.Conv2d(8, 16, 1), nn.ReLU(),                                              # pointwise
        nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=4), nn.ReLU(),              # 4 groups of 4
        nn.Flatten(), nn.Linear(16 * 14 * 14, 10))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):                      # statistics that are not the identity
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_grouped_and_depthwise_convolutions_equal_onnx_runtime(tmp_path, test_images):
    _, int8 = _int8_files(tmp_path, _grouped_model(), 200)
    model = deploy.read_int8_model(int8)
    convs = [layer for layer in model.layers if isinstance(layer, deploy.QuantizedConv2d)]
    assert [c.groups for c in convs] == [1, 8, 1, 4]                 # batch norms folded into the convolutions
    assert [c.weight.shape[1] for c in convs] == [1, 1, 8, 4]        # each output reads C / groups inputs
    assert np.array_equal(deploy.forward_int8(model, test_images).logits.view(np.uint32),
                          _ort_logits(int8, test_images).view(np.uint32))


def test_grouped_accumulators_equal_a_grouped_convolution():
    rng = np.random.default_rng(0)
    for groups, in_c, out_c, stride in ((1, 3, 4, 1), (2, 4, 6, 2), (5, 5, 5, 1), (3, 6, 3, 2)):
        layer = deploy.QuantizedConv2d(
            "conv", rng.integers(-128, 128, (out_c, in_c // groups, 3, 3)).astype(np.int8),
            rng.integers(-1000, 1000, out_c).astype(np.int32), np.ones(out_c, np.float32),
            np.zeros(out_c, np.int8), np.float32(1), 7, np.float32(1), 0, stride=(stride, stride),
            padding=(1, 1, 1, 1), groups=groups)
        q = rng.integers(0, 256, (2, in_c, 6, 5)).astype(np.uint8)
        expected = F.conv2d(torch.from_numpy(q.astype(np.float64) - 7), torch.from_numpy(layer.weight.astype(np.float64)),
                            torch.from_numpy(layer.bias.astype(np.float64)), stride=stride, padding=1, groups=groups)
        acc = deploy.conv2d_accumulate(q, layer)
        assert acc.dtype == np.int32 and np.array_equal(acc, expected.numpy().astype(np.int64))


# ----------------------------------------------------------------------------- int8 that holds on every CPU

def test_saturation_check_passes_the_course_quantization_and_fails_the_full_range(lenet5_files, tmp_path):
    # The CPU-independent check: no two same-sign weight codes of one output channel sum past 128, so
    # no vpmaddubsw pair (255 * 128 = 32,640) can leave int16, however a kernel orders the sum.
    safe = runtime.int16_pair_sums(lenet5_files[1])
    assert set(safe) == {"conv1.weight_quantized", "conv2.weight_quantized", "fc1.weight_quantized",
                         "fc2.weight_quantized"}
    assert max(safe.values()) <= runtime.INT16_PAIR_LIMIT
    full = runtime.int16_pair_sums(runtime.quantize_onnx_int8(
        lenet5_files[0], tmp_path / "full.onnx", data.load("mnist", "train").subset(200), weight_range="full"))
    assert max(full.values()) > runtime.INT16_PAIR_LIMIT           # the old way: caught on any machine
    reduced = runtime.int16_pair_sums(runtime.quantize_onnx_int8(
        lenet5_files[0], tmp_path / "reduced.onnx", data.load("mnist", "train").subset(200), weight_range="reduced"))
    assert max(reduced.values()) <= 128 and all(v > 64 for v in reduced.values())


@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 40)),
              elements=st.floats(-4, 4, allow_nan=False, allow_subnormal=False)))
def test_saturation_safe_range_keeps_every_pair_in_int16_and_clips_nothing(w):
    r = runtime.saturation_safe_range(w).astype(np.float64)
    assert r.shape == (w.shape[0],) and np.all(r > 0)
    assert np.all(r >= np.abs(w).max(axis=1) * (1 - 1e-6))           # no weight is clipped
    q = np.clip(np.rint(w * 127 / r[:, None].astype(np.float32)), -127, 127).astype(int)
    for row in q:
        for side in (row[row > 0], -row[row < 0]):
            assert np.sort(side)[::-1][:2].sum() <= runtime.INT16_PAIR_LIMIT


def test_saturation_safe_range_keeps_8_bits_where_one_weight_dominates():
    w = np.array([[1.0, 0.005, -0.2, 0.002], [1.0, 1.0, 0.0, 0.0], [0.5, -0.5, 0.5, -0.5]])
    r = runtime.saturation_safe_range(w)
    assert r[0] == np.float32(1.0)                                   # 127 codes for the largest: 8 bits
    assert abs(r[1] - 2 * 127 / 128) < 1e-5                          # two equal weights: 64 codes each, 7 bits
    assert abs(r[2] - 127 / 128) < 1e-5


def test_int16_pairs_by_hand():
    codes = np.array([[255, 255, 255, 255], [255, 255, 0, 255], [10, 20, 30, 40]], dtype=np.uint8)
    weight = np.array([[127, 127, -100, 90], [-127, -2, 64, 64]], dtype=np.int8)
    error = deploy.int16_pair_error(codes, weight)
    # Row 0, output 0: 255 * 254 = 64,770 saturates to 32,767; the mixed-sign pair (-100, 90) cannot.
    assert error[0, 0] == 32767 - 64770
    # Output 1: -127 - 2 = -129 codes of one sign: 255 * -129 = -32,895 clamps to -32,768; 64 + 64 fits.
    assert error[0, 1] == -32768 + 32895 and error[1, 1] == -32768 + 32895
    assert error[2].tolist() == [0, 0]                               # small codes: no pair saturates
    odd = deploy.int16_pair_error(codes[:, :3], weight[:, :3])        # an odd K pairs its last code with a 0
    assert odd[0, 0] == 32767 - 64770


def test_saturating_forward_differs_only_for_the_full_range(lenet5, lenet5_files, tmp_path, test_images):
    x = test_images[:200]
    safe = deploy.forward_int8(lenet5, x)
    assert np.array_equal(deploy.forward_int8(lenet5, x, accumulation="int16_pairs").logits, safe.logits)
    _, full_file = _int8_files(tmp_path, zoo.load("lenet5"), 500, "full")
    full = deploy.read_int8_model(full_file)
    exact, saturated = (deploy.forward_int8(full, x, accumulation=a).codes for a in ("int32", "int16_pairs"))
    assert not np.array_equal(exact, saturated)


def test_grouped_convolution_pairs_follow_onnx_runtime_order():
    # K ordered (kernel row, kernel column, channel) within a group: channels 0 and 1 of one tap pair up.
    weight = np.zeros((1, 2, 1, 2), dtype=np.int8)
    weight[0, :, 0, 0] = 127                                         # tap (0, 0), channels 0 and 1
    layer = deploy.QuantizedConv2d("c", weight, np.zeros(1, np.int32), np.ones(1, np.float32), np.zeros(1, np.int8),
                                   np.float32(1), 0, np.float32(1), 0)
    q = np.full((1, 2, 1, 2), 255, dtype=np.uint8)
    assert deploy.conv2d_int16_pair_error(q, layer)[0, 0, 0, 0] == 32767 - 2 * 255 * 127
    depthwise = dataclasses.replace(layer, weight=np.full((2, 1, 1, 2), 127, np.int8), groups=2,
                                    bias=np.zeros(2, np.int32), weight_scale=np.ones(2, np.float32),
                                    weight_zero_point=np.zeros(2, np.int8))
    assert not deploy.conv2d_int16_pair_error(q, depthwise).any()      # depthwise kernels are exact


QEMU = shutil.which("qemu-x86_64")
ORT_ON_CPU = """
import sys, numpy as np, onnxruntime as ort
options = ort.SessionOptions(); options.intra_op_num_threads = 1
for model, x, out in zip(sys.argv[1::3], sys.argv[2::3], sys.argv[3::3]):
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    np.save(out, session.run(None, {"x": np.load(x)})[0])
"""


def _ort_on_emulated_haswell(tmp_path, models, x):
    """ONNX Runtime's logits for each model on an emulated Haswell (AVX2, no VNNI, no AVX-512):
    user-mode QEMU runs this machine's Python and ONNX Runtime, whose CPU dispatch then picks the
    AVX2 kernels (vpmaddubsw) a laptop without VNNI runs."""
    np.save(tmp_path / "x.npy", x)
    script = tmp_path / "ort_on_cpu.py"
    script.write_text(ORT_ON_CPU)
    args = []
    for i, model in enumerate(models):
        args += [str(model), str(tmp_path / "x.npy"), str(tmp_path / f"out{i}.npy")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    subprocess.run([QEMU, "-cpu", "Haswell", os.path.realpath(sys.executable), str(script), *args],
                   check=True, env=env, capture_output=True, timeout=600)
    return [np.load(tmp_path / f"out{i}.npy") for i in range(len(models))]


@pytest.mark.skipif(QEMU is None or platform.machine() != "x86_64",
                    reason="needs user-mode QEMU (Debian's qemu-user) on an x86-64 machine")
def test_on_an_emulated_cpu_without_vnni(tmp_path, lenet5, lenet5_files, test_images):
    """The deploy claims on a CPU class this machine may not be: ONNX Runtime under QEMU's Haswell.
    The course's quantization equals the NumPy forward there; the full range saturates, and the
    NumPy forward with ``accumulation="int16_pairs"`` predicts its output bit for bit."""
    x = test_images[:100]
    _, full_file = _int8_files(tmp_path, zoo.load("lenet5"), 500, "full")
    for sub in ("grouped", "mlp"):
        (tmp_path / sub).mkdir()
    _, grouped_file = _int8_files(tmp_path / "grouped", _grouped_model(), 200)
    _, mlp_file = _int8_files(tmp_path / "mlp", zoo.load("lenet_300_100"), 200)
    safe_out, full_out, grouped_out, mlp_out = _ort_on_emulated_haswell(
        tmp_path, [lenet5_files[1], full_file, grouped_file, mlp_file], x)
    for out, file in ((safe_out, lenet5_files[1]), (grouped_out, grouped_file), (mlp_out, mlp_file)):
        assert np.array_equal(out.view(np.uint32), deploy.forward_int8(deploy.read_int8_model(file), x).logits.view(np.uint32))
    full = deploy.read_int8_model(full_file)
    assert not np.array_equal(full_out, deploy.forward_int8(full, x).logits)                 # saturated
    assert np.array_equal(full_out.view(np.uint32),
                          deploy.forward_int8(full, x, accumulation="int16_pairs").logits.view(np.uint32))


# ----------------------------------------------------------------------------- the arrays

def test_arrays_round_trip_to_the_float_model(lenet5):
    model = zoo.load("lenet5")
    layers = {layer.name: layer for layer in lenet5.layers}
    assert [type(layer).__name__ for layer in lenet5.layers] == [
        "QuantizedConv2d", "MaxPool2d", "QuantizedConv2d", "MaxPool2d", "Flatten", "QuantizedLinear", "QuantizedLinear"]
    assert lenet5.input_shape == (1, 28, 28)
    for name in ("conv1", "conv2", "fc1", "fc2"):
        layer, torch_layer = layers[name], getattr(model, name)
        w, b = torch_layer.weight.detach().double().numpy(), torch_layer.bias.detach().double().numpy()
        assert layer.weight.shape == w.shape and layer.weight.dtype == np.int8
        assert layer.bias.shape == b.shape and layer.bias.dtype == np.int32
        assert layer.weight_scale.shape == (w.shape[0],) and np.all(layer.weight_zero_point == 0)
        scale = layer.weight_scale.astype(np.float64).reshape(-1, *[1] * (w.ndim - 1))
        assert np.all(np.abs(layer.weight * scale - w) <= scale / 2 * (1 + 1e-6))      # round to nearest
        bias_scale = float(layer.input_scale) * layer.weight_scale.astype(np.float64)
        assert np.all(np.abs(layer.bias * bias_scale - b) <= bias_scale / 2 * (1 + 1e-4))
        assert layer.multiplier.dtype == np.float32 and layer.multiplier.shape == (w.shape[0],)
        with pytest.raises(ValueError):                     # read-only: no forward pass can change them
            layer.weight[0] = 0
    assert layers["pool1"].kernel == (2, 2) and layers["pool1"].stride == (2, 2)


def test_inputs_are_not_modified(lenet5, test_images):
    x = test_images[:20].copy()
    weights = [layer.weight.copy() for layer in lenet5.layers if hasattr(layer, "weight")]
    deploy.forward_int8(lenet5, x)
    deploy.forward_int8(lenet5, torch.from_numpy(x), requantization="fixed_point")
    assert np.array_equal(x, test_images[:20])
    assert all(np.array_equal(a, layer.weight) for a, layer in
               zip(weights, [layer for layer in lenet5.layers if hasattr(layer, "weight")]))


# ----------------------------------------------------------------------------- primitives against references

def test_quantize_linear_rounds_half_to_even_and_saturates():
    x = np.array([0.25, 0.75, -0.25, 100.0, -100.0, 0.0], dtype=np.float32)
    q = deploy.quantize_linear(x, 0.5, 10)                       # x / s = 0.5, 1.5, -0.5, 200, -200, 0
    assert q.tolist() == [10, 12, 10, 210, 0, 10]
    assert deploy.dequantize_linear(q, 0.5, 10).tolist() == [0.0, 1.0, 0.0, 100.0, -5.0, 0.0]


def test_requantize_by_hand():
    acc = np.array([[100, -100, 50, 1000]], dtype=np.int32)
    m = np.full(4, 0.25, np.float32)                          # acc * M = 25, -25, 12.5, 250
    assert deploy.requantize(acc, m, 128).tolist() == [[153, 103, 140, 255]]
    assert deploy.requantize(acc, m, 0, relu=True).tolist() == [[25, 0, 12, 250]]


def test_quantize_multiplier_reconstructs_m():
    m = np.array([0.5, 0.75, 2.0 ** -3, 0.0123456, 1.7], dtype=np.float32)
    m0, shift = deploy.quantize_multiplier(m)
    assert m0.tolist()[:3] == [2 ** 30, 1610612736, 2 ** 30] and shift.tolist()[:3] == [0, 0, -2]
    assert np.all((m0 >= 2 ** 30) & (m0 < 2 ** 31))
    assert np.allclose(m0 * 2.0 ** (shift.astype(float) - 31), m, rtol=2 ** -30, atol=0)


def test_fixed_point_requantization_agrees_with_float_but_at_ties():
    rng = np.random.default_rng(0)
    acc = rng.integers(-2 ** 20, 2 ** 20, size=(1000, 8)).astype(np.int32)
    m = rng.uniform(1e-5, 1e-3, size=8).astype(np.float32)
    exact = deploy.requantize(acc, m, 128)
    fixed = deploy.requantize_fixed_point(acc, *deploy.quantize_multiplier(m), 128)
    assert np.abs(exact.astype(int) - fixed.astype(int)).max() <= 1 and (exact == fixed).mean() > 0.99


def _conv_layer(rng, stride=(2, 1), padding=(1, 2, 0, 1), dilation=(1, 2)):
    return deploy.QuantizedConv2d(
        "conv", weight=rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8),
        bias=rng.integers(-1000, 1000, 4).astype(np.int32), weight_scale=np.full(4, 0.01, np.float32),
        weight_zero_point=np.zeros(4, np.int8), input_scale=np.float32(0.02), input_zero_point=17,
        output_scale=np.float32(0.5), output_zero_point=3, stride=stride, padding=padding, dilation=dilation)


def test_conv_accumulators_match_torch_conv2d():
    rng = np.random.default_rng(1)
    layer = _conv_layer(rng)
    q = rng.integers(0, 256, (2, 3, 9, 10)).astype(np.uint8)
    top, left, bottom, right = layer.padding
    x = F.pad(torch.from_numpy(q.astype(np.float64) - layer.input_zero_point), (left, right, top, bottom))
    reference = F.conv2d(x, torch.from_numpy(layer.weight.astype(np.float64)), torch.from_numpy(layer.bias.astype(np.float64)),
                         stride=layer.stride, dilation=layer.dilation)
    acc = deploy.conv2d_accumulate(q, layer)
    assert acc.dtype == np.int32 and np.array_equal(acc, reference.numpy().astype(np.int32))


def test_max_pool_on_codes_matches_torch():
    q = np.random.default_rng(2).integers(0, 256, (2, 3, 7, 8)).astype(np.uint8)
    layer = deploy.MaxPool2d("pool", (3, 2), (2, 2), (1, 0, 1, 0))
    reference = F.max_pool2d(torch.from_numpy(q.astype(np.float32)), (3, 2), (2, 2), padding=(1, 0))
    assert np.array_equal(deploy.max_pool2d_codes(q, layer), reference.numpy().astype(np.uint8))


# ----------------------------------------------------------------------------- the C header

def test_c_header_counts_its_flash_and_compiles(lenet5, tmp_path):
    header = tmp_path / "lenet5_model.h"
    flash = deploy.export_c_header(lenet5, header, "lenet5")
    channels = 20 + 50 + 500 + 10
    assert flash == deploy.flash_bytes(lenet5) == (431_080 - channels) + channels * (4 + 4 + 4 + 1)
    text = header.read_text()
    assert "const int8_t lenet5_conv1_weight[20 * 1 * 5 * 5]" in text and f"#define LENET5_FLASH_BYTES {flash}" in text
    assert "#define LENET5_FC1_IN_FEATURES 800" in text and "const int32_t lenet5_fc2_bias[10]" in text
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    (tmp_path / "model.c").write_text('#include "lenet5_model.h"\n')
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c", "model.c", "-o", "model.o"],
                   cwd=tmp_path, check=True, capture_output=True)
    if shutil.which("nm"):
        symbols = subprocess.run(["nm", "-S", "model.o"], cwd=tmp_path, check=True, capture_output=True, text=True)
        sizes = [int(line.split()[1], 16) for line in symbols.stdout.splitlines() if " lenet5_" in line]
        assert len(sizes) == 4 * 5 and sum(sizes) == flash           # what the compiler stores is what we count


# ----------------------------------------------------------------------------- profile and speed (no speed asserted)

def test_operator_profile_of_lenet5_int8(lenet5_files):
    rows = runtime.operator_profile(lenet5_files[1], runs=5, warmup=2)
    names = [r.name for r in rows]
    assert {"QLinearConv", "QGemm", "QuantizeLinear", "DequantizeLinear"} <= set(names)
    assert names[-1] == runtime.OVERHEAD and abs(sum(r.share for r in rows) - 1) < 1e-9
    nodes = runtime.operator_profile(lenet5_files[1], runs=3, warmup=1, by="node", batch_size=2)
    assert sum(r.op_type == "QLinearConv" for r in nodes) == 2


def test_int8_speedup_times_both_runtimes(lenet5_files):
    s = runtime.int8_speedup(*lenet5_files, batch_size=2, warmup=1, repeats=3)
    assert s.ratio > 0 and len(s.baseline.times) == len(s.candidate.times) == 3 and s.candidate.threads == 1


# ----------------------------------------------------------------------------- bad input gives a named error

@pytest.fixture(scope="module")
def unsupported_file(tmp_path_factory):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(2 * 13 * 13, 10)).eval()
    return _int8_files(tmp_path_factory.mktemp("avgpool"), model, 20)[1]


def test_every_supported_operator_has_a_reader():
    assert set(deploy._READERS) == set(deploy.SUPPORTED_OPS)


def test_unsupported_operator_is_named(unsupported_file):
    with pytest.raises(NotImplementedError, match="AveragePool node"):
        deploy.read_int8_model(unsupported_file)


@pytest.mark.parametrize("call, error, fragment", [
    (lambda m, d, f: deploy.read_int8_model(d / "missing.onnx"), ValueError, "path must be an existing ONNX file"),
    (lambda m, d, f: deploy.read_int8_model(None), TypeError, "path must be a file path"),
    (lambda m, d, f: deploy.read_int8_model(f[0]), ValueError, "holds a float model"),
    (lambda m, d, f: deploy.forward_int8("lenet5", np.zeros((1, 1, 28, 28), np.float32)), TypeError,
     "model must be an Int8Model"),
    (lambda m, d, f: deploy.forward_int8(m, [[0.0]]), TypeError, "x must be a float32 NumPy array or torch.Tensor, got list"),
    (lambda m, d, f: deploy.forward_int8(m, np.zeros((1, 1, 28, 28))), TypeError, "got dtype float64"),
    (lambda m, d, f: deploy.forward_int8(m, np.zeros((1, 28, 28), np.float32)), ValueError,
     "x must have shape (batch >= 1, *(1, 28, 28)), got (1, 28, 28)"),
    (lambda m, d, f: deploy.forward_int8(m, np.zeros((0, 1, 28, 28), np.float32)), ValueError, "batch >= 1"),
    (lambda m, d, f: deploy.forward_int8(m, np.full((2, 1, 28, 28), np.nan, np.float32)), ValueError,
     "x contains NaN or inf"),
    (lambda m, d, f: deploy.forward_int8(m, torch.full((1, 1, 28, 28), float("inf"))), ValueError, "NaN or inf"),
    (lambda m, d, f: deploy.forward_int8(m, np.zeros((1, 1, 28, 28), np.float32), "int"), ValueError,
     "requantization must be one of ('float', 'fixed_point'), got 'int'"),
    (lambda m, d, f: deploy.forward_int8(m, np.zeros((1, 1, 28, 28), np.float32), accumulation="int16"), ValueError,
     "accumulation must be one of ('int32', 'int16_pairs'), got 'int16'"),
    (lambda m, d, f: runtime.quantize_onnx_int8(f[0], d / "q.onnx", data.load("mnist", "train").subset(10),
                                                weight_range="7bit"), ValueError,
     "weight_range must be one of ('saturation_safe', 'reduced', 'full'), got '7bit'"),
    (lambda m, d, f: runtime.int16_pair_sums(d / "none.onnx"), ValueError, "int8_path must be an existing ONNX file"),
    (lambda m, d, f: deploy.export_c_header(m, d / "m.h", "8bit"), ValueError, "name must be a C identifier"),
    (lambda m, d, f: deploy.export_c_header(m, d / "m.h", None), TypeError, "name must be a C identifier"),
    (lambda m, d, f: deploy.export_c_header(m, d / "no" / "m.h", "m"), ValueError, "path must be in an existing folder"),
    (lambda m, d, f: deploy.flash_bytes(None), TypeError, "model must be an Int8Model"),
    (lambda m, d, f: runtime.operator_profile(f[1], by="layer"), ValueError, "by must be one of ('op_type', 'node')"),
    (lambda m, d, f: runtime.operator_profile(f[1], runs=0), ValueError, "runs must be an int >= 1, got 0"),
    (lambda m, d, f: runtime.operator_profile(f[1], threads=1.0), TypeError, "threads must be an int >= 1, got float"),
    (lambda m, d, f: runtime.int8_speedup(d / "none.onnx", f[1]), ValueError, "fp32_path must be an existing ONNX file"),
    (lambda m, d, f: runtime.int8_speedup(*f, batch_size=0), ValueError, "batch_size must be an int >= 1, got 0"),
])
def test_bad_input_raises_a_named_error(lenet5, tmp_path, lenet5_files, call, error, fragment):
    with pytest.raises(error) as info:
        call(lenet5, tmp_path, lenet5_files)
    assert fragment in str(info.value)


def test_a_file_that_is_not_onnx(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not a protobuf \xff\xfe")
    with pytest.raises(ValueError, match="is not an ONNX model"):
        deploy.read_int8_model(path)
