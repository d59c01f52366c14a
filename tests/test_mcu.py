"""The C inference (course_lib/c, course_lib.mcu): built for this computer and for a Cortex-M4 run in
QEMU, its output codes equal the NumPy integer-only forward's (``requantization="fixed_point"``) bit
for bit, on real models and on random ones with every operator and option; the program fits the
Nano's memory map or fails to link; QEMU's counter counts instructions.

Marked ``mcu``; the tests that need a tool skip, with the reason, where it is missing (Debian:
``apt-get install gcc gcc-arm-none-eabi qemu-system-arm``). Run them with
``python3 -m pytest -m mcu``."""
import dataclasses
import subprocess

import numpy as np
import pytest

from course_lib import data, deploy, mcu, runtime, zoo

pytestmark = pytest.mark.mcu

needs_host = pytest.mark.skipif(bool(mcu.missing_tools("host")),
                                reason=f"needs {', '.join(mcu.missing_tools('host'))}")
needs_m4 = pytest.mark.skipif(bool(mcu.missing_tools("cortex-m4")),
                              reason=f"needs {', '.join(mcu.missing_tools('cortex-m4'))}")


# ----------------------------------------------------------------------------- models

def _conv(rng, name, c, o, kernel, groups=1, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), relu=False,
          zero_in=0, zero_out=0):
    """A random int8 convolution whose outputs spread over the codes (neither all 0 nor all 255)."""
    kh, kw = kernel
    k = c // groups * kh * kw
    weight = rng.integers(-127, 128, size=(o, c // groups, kh, kw)).astype(np.int8)
    spread = 80.0 * 73.0 * np.sqrt(k)                   # about the accumulators' standard deviation
    scale_x = np.float32(1 / 64)
    weight_scale = (rng.uniform(20, 60, size=o) / spread / scale_x).astype(np.float32)
    return deploy.QuantizedConv2d(name, weight, rng.integers(-3000, 3000, size=o).astype(np.int32), weight_scale,
                                  np.zeros(o, np.int8), scale_x, zero_in, np.float32(1.0), zero_out, stride, padding,
                                  dilation, relu, groups)


def _linear(rng, name, k, n, relu=False, zero_in=0, zero_out=0):
    weight = rng.integers(-127, 128, size=(n, k)).astype(np.int8)
    scale_x = np.float32(1 / 64)
    weight_scale = (rng.uniform(20, 60, size=n) / (80.0 * 73.0 * np.sqrt(k)) / scale_x).astype(np.float32)
    return deploy.QuantizedLinear(name, weight, rng.integers(-3000, 3000, size=n).astype(np.int32), weight_scale,
                                  np.zeros(n, np.int8), scale_x, zero_in, np.float32(1.0), zero_out, relu)


def _every_operator(seed: int = 0) -> deploy.Int8Model:
    """Input (3, 11, 10): a strided, padded, dilated convolution with a ReLU; max pooling with
    padding; a grouped convolution; a depthwise one; flatten; a fully connected layer. Zero points
    that are not 0, odd sizes, unequal paddings."""
    rng = np.random.default_rng(seed)
    layers = (
        _conv(rng, "conv", 3, 6, (3, 2), stride=(2, 1), padding=(1, 0, 2, 1), dilation=(1, 2), relu=True,
              zero_in=37, zero_out=11),                                  # -> (6, 6, 9)
        deploy.MaxPool2d("pool", (2, 3), (1, 2), (1, 1, 0, 1)),           # -> (6, 6, 5)
        _conv(rng, "grouped", 6, 9, (3, 3), groups=3, padding=(1, 1, 1, 1), zero_in=11, zero_out=128),
        _conv(rng, "depthwise", 9, 9, (3, 3), groups=9, stride=(2, 2), padding=(1, 1, 1, 1), relu=True,
              zero_in=128, zero_out=3),                                  # -> (9, 3, 3)
        deploy.Flatten("flatten"),
        _linear(rng, "fc", 9 * 3 * 3, 7, zero_in=3, zero_out=120),
    )
    model = deploy.Int8Model("every operator", (3, 11, 10), np.float32(1 / 64), 37, layers, np.float32(0.1), 120)
    return _spread(model, _images(model, 50, seed))


def _spread(model: deploy.Int8Model, x: np.ndarray) -> deploy.Int8Model:
    """``model`` with each weight layer's scales set, layer after layer, so that on ``x`` its
    requantized outputs spread over about 60 codes around the zero point (not all clamped)."""
    q = deploy.quantize_linear(x, model.input_scale, model.input_zero_point)
    layers = []
    for layer in model.layers:
        if hasattr(layer, "weight"):
            acc = (deploy.conv2d_accumulate(q, layer) if isinstance(layer, deploy.QuantizedConv2d)
                   else deploy.linear_accumulate(q, layer))
            spread = np.float32(30.0 / (acc.std() + 1.0))
            layer = dataclasses.replace(layer, weight_scale=(layer.weight_scale * spread
                                                             / layer.multiplier).astype(np.float32))
            m0, shift = deploy.quantize_multiplier(layer.multiplier)
            q = deploy.requantize_fixed_point(acc, m0, shift, layer.output_zero_point, layer.relu)
        elif isinstance(layer, deploy.MaxPool2d):
            q = deploy.max_pool2d_codes(q, layer)
        else:
            q = q.reshape(len(q), -1)
        layers.append(layer)
    return dataclasses.replace(model, layers=tuple(layers))


def _requantization_cases(zero_point: int = 0, relu: bool = False) -> deploy.Int8Model:
    """One input feature, 600 outputs: each output's accumulator is its bias plus one product, and
    its multiplier one of 600 between 1e-7 and 300 (right and left shifts), powers of two among them
    (ties: M a exactly k + 1/2); the output's zero point and ReLU as given."""
    rng = np.random.default_rng(1)
    n = 600
    multipliers = np.concatenate([2.0 ** np.arange(-20, 9), 10 ** rng.uniform(-7, 2.5, size=n - 29)])
    bias = np.concatenate([rng.integers(-2 ** 10, 2 ** 10, size=n // 2),
                           rng.integers(-2 ** 30, 2 ** 30, size=n - n // 2)]).astype(np.int32)
    rng.shuffle(bias)
    layer = deploy.QuantizedLinear("fc", rng.integers(-3, 4, (n, 1)).astype(np.int8), bias,
                                   multipliers.astype(np.float32), np.zeros(n, np.int8), np.float32(1.0), 0,
                                   np.float32(1.0), zero_point, relu)
    return deploy.Int8Model("requantization cases", (1,), np.float32(1.0), 0, (layer,), np.float32(1.0), zero_point)


REQUANTIZATION_INPUTS = np.arange(0, 17, dtype=np.float32)[:, None] * 7       # codes 0, 7, ..., 112


@pytest.fixture(scope="module")
def lenet5(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lenet5_int8")
    runtime.deploy_int8(zoo.load("lenet5"), data.load("mnist", "train").subset(500), folder, threads=1)
    return deploy.read_int8_model(folder / "model_int8.onnx")


def _images(model, count, seed=0):
    return np.random.default_rng(seed).uniform(-1, 2, size=(count, *model.input_shape)).astype(np.float32)


# ----------------------------------------------------------------------------- on this computer

@needs_host
def test_every_operator_in_c_equals_the_numpy_forward_bit_for_bit(tmp_path):
    model = _every_operator()
    x = _images(model, 300)
    expected = deploy.forward_int8(model, x, requantization="fixed_point").codes
    assert 5 < expected.mean() < 250 and expected.std() > 10          # the codes spread: a real comparison
    out = mcu.run(model, mcu.build(model, tmp_path, "host"), x)
    assert np.array_equal(out.codes, expected)
    assert np.array_equal(out.logits, deploy.forward_int8(model, x, requantization="fixed_point").logits)
    assert out.instructions is None and out.stack_bytes is None


@needs_host
@pytest.mark.parametrize("zero_point, relu", [(0, False), (200, True), (77, False)])
def test_the_fixed_point_requantization_in_c_equals_numpy_on_hand_cases(tmp_path, zero_point, relu):
    model = _requantization_cases(zero_point, relu)
    x = REQUANTIZATION_INPUTS
    expected = deploy.forward_int8(model, x, requantization="fixed_point").codes
    assert len(np.unique(expected)) > 50                     # the cases reach many codes, both ends included
    assert expected.min() == (zero_point if relu else 0) and expected.max() == 255
    acc = deploy.linear_accumulate(deploy.quantize_linear(x, 1.0, 0), model.layers[0]).astype(np.float64)
    assert (np.abs(acc * model.layers[0].multiplier % 1 - 0.5) < 1e-9).sum() >= 10       # exact ties among them
    out = mcu.run(model, mcu.build(model, tmp_path, "host"), x)
    assert np.array_equal(out.codes, expected)


@needs_host
def test_lenet5_in_c_equals_the_numpy_forward_on_300_test_images(tmp_path, lenet5, mnist_test):
    x = mnist_test.images[:300].numpy()
    out = mcu.run(lenet5, mcu.build(lenet5, tmp_path, "host"), x)
    assert np.array_equal(out.codes, deploy.forward_int8(lenet5, x, requantization="fixed_point").codes)


def test_the_model_source_has_static_buffers_sized_by_the_largest_activation(tmp_path, lenet5):
    paths = mcu.write_model_source(lenet5, tmp_path)
    source, header = paths["source"].read_text(), paths["header"].read_text()
    assert "static uint8_t arena[2][MODEL_ARENA_BYTES];" in source
    assert "malloc" not in source
    assert "#define MODEL_ARENA_BYTES 11520" in header          # conv1's output: 20 x 24 x 24
    assert "#define MODEL_INPUT_BYTES 784" in header and "#define MODEL_OUTPUT_BYTES 10" in header
    assert source.count("conv2d_u8(") == 2 and source.count("fully_connected_u8(") == 2
    assert "conv2d_u8(input," in source and "&model_fc2_params, output);" in source


def test_bad_input_gets_a_clear_error_and_changes_nothing(tmp_path, lenet5):
    with pytest.raises(TypeError, match="model"):
        mcu.build("lenet5", tmp_path)
    with pytest.raises(ValueError, match="target must be one of"):
        mcu.build(lenet5, tmp_path, "arduino")
    with pytest.raises(ValueError, match="folder must be an existing folder"):
        mcu.write_model_source(lenet5, tmp_path / "missing")
    with pytest.raises(ValueError, match="program must be a file"):
        mcu.run(lenet5, tmp_path / "model_host", np.zeros((1, 1, 28, 28), np.float32))
    (tmp_path / "model_host").write_text("")
    with pytest.raises(ValueError, match="shape"):
        mcu.run(lenet5, tmp_path / "model_host", np.zeros((1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        mcu.run(lenet5, tmp_path / "model_host", np.full((1, 1, 28, 28), np.nan, np.float32))
    with pytest.raises(ValueError, match="model.elf"):
        mcu.memory_layout(tmp_path / "model_host")
    with pytest.raises(ValueError, match="target must be one of"):
        mcu.missing_tools("gpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_host"]


def test_a_per_channel_weight_zero_point_is_refused_by_name(tmp_path):
    model = _every_operator()
    conv = model.layers[0]
    odd = deploy.QuantizedConv2d(conv.name, conv.weight, conv.bias, conv.weight_scale,
                                 np.arange(6, dtype=np.int8), conv.input_scale, conv.input_zero_point,
                                 conv.output_scale, conv.output_zero_point, conv.stride, conv.padding,
                                 conv.dilation, conv.relu, conv.groups)
    model = deploy.Int8Model(model.name, model.input_shape, model.input_scale, model.input_zero_point,
                             (odd,) + model.layers[1:], model.output_scale, model.output_zero_point)
    with pytest.raises(NotImplementedError, match="'conv' has a weight zero point per channel"):
        mcu.write_model_source(model, tmp_path)


# ----------------------------------------------------------------------------- on a Cortex-M4 in QEMU

@needs_m4
def test_every_operator_on_the_cortex_m4_equals_the_numpy_forward(tmp_path):
    model = _every_operator(seed=1)
    x = _images(model, 40, seed=1)
    out = mcu.run(model, mcu.build(model, tmp_path, "cortex-m4"), x)
    assert np.array_equal(out.codes, deploy.forward_int8(model, x, requantization="fixed_point").codes)
    assert out.instructions.shape == (40,) and (out.instructions > 0).all()
    assert 0 < out.stack_bytes < 1024


@needs_m4
def test_requantization_cases_on_the_cortex_m4(tmp_path):
    model = _requantization_cases(200, True)
    x = REQUANTIZATION_INPUTS
    out = mcu.run(model, mcu.build(model, tmp_path, "cortex-m4"), x)
    assert np.array_equal(out.codes, deploy.forward_int8(model, x, requantization="fixed_point").codes)


@needs_m4
def test_lenet5_on_the_cortex_m4_equals_the_numpy_forward_and_fits_the_nano(tmp_path, lenet5, mnist_test):
    x = mnist_test.images[:20].numpy()
    program = mcu.build(lenet5, tmp_path, "cortex-m4")
    out = mcu.run(lenet5, program, x)
    assert np.array_equal(out.codes, deploy.forward_int8(lenet5, x, requantization="fixed_point").codes)
    layout = mcu.memory_layout(program)
    weights = sum(layer.weight.size for layer in lenet5.layers if hasattr(layer, "weight"))
    assert layout.weights == weights                           # one byte a weight, nothing else
    assert layout.biases == 4 * sum(layer.bias.size for layer in lenet5.layers if hasattr(layer, "bias"))
    assert layout.arena == 2 * 11520 and layout.io == 784 + 10
    assert 0 < layout.code < 8192                              # the operators and the test program
    assert layout.flash <= 1024 * 1024 and layout.sram <= 256 * 1024
    # The float multipliers of the header are not used by the fixed-point code: the linker drops them.
    assert layout.weights + layout.biases + layout.requantization < deploy.flash_bytes(lenet5)
    assert (tmp_path / "model.map").is_file()
    # LeNet-5's loops do the same work on every image: counts differ only by data-dependent branches.
    macs = 20 * 24 * 24 * 25 + 50 * 8 * 8 * 500 + 800 * 500 + 500 * 10
    assert 5 * macs < out.instructions.min() <= out.instructions.max() < 40 * macs


@needs_m4
def test_a_model_larger_than_the_nanos_flash_fails_to_link(tmp_path):
    rng = np.random.default_rng(0)
    big = deploy.QuantizedLinear("big", rng.integers(-127, 128, (1100, 1000)).astype(np.int8),
                                 np.zeros(1100, np.int32), np.full(1100, 1e-3, np.float32), np.zeros(1100, np.int8),
                                 np.float32(1.0), 0, np.float32(1.0), 0)
    model = deploy.Int8Model("too big", (1000,), np.float32(1.0), 0, (big,), np.float32(1.0), 0)
    with pytest.raises(mcu.McuError, match="FLASH' overflowed"):
        mcu.build(model, tmp_path, "cortex-m4")


@needs_m4
def test_qemus_counter_counts_instructions(tmp_path):
    """A loop of two instructions (subs, bne) run 10^6 and 3 x 10^6 times: the counter reads 2 x 10^6
    and 6 x 10^6 instructions, to within one tick (40 instructions)."""
    (tmp_path / "model.h").write_text("#include <stdint.h>\n#define MODEL_INPUT_BYTES 1\n#define MODEL_OUTPUT_BYTES 1\n"
                                      "void model_forward(const uint8_t *input, uint8_t *output);\n")
    (tmp_path / "model.c").write_text(
        '#include "model.h"\nvoid model_forward(const uint8_t *input, uint8_t *output)\n{\n'
        "    uint32_t n = 1000000u * input[0];\n"
        '    __asm__ volatile("1: subs %0, %0, #1\\n bne 1b" : "+r"(n));\n    output[0] = 0;\n}\n')
    src = mcu._source_folder()
    subprocess.run(["arm-none-eabi-gcc", *mcu.M4_FLAGS, f"-I{src}", "-I.",
                    *[str(src / s) for s in mcu.SOURCES["cortex-m4"]], "model.c", f"-T{src / 'cortex_m4.ld'}",
                    "-lgcc", "-o", "model.elf"], cwd=tmp_path, check=True)
    model = deploy.Int8Model("loop", (1,), np.float32(1.0), 0, (
        deploy.QuantizedLinear("fc", np.ones((1, 1), np.int8), np.zeros(1, np.int32), np.ones(1, np.float32),
                               np.zeros(1, np.int8), np.float32(1.0), 0, np.float32(1.0), 0),), np.float32(1.0), 0)
    out = mcu.run(model, tmp_path / "model.elf", np.array([[1.0], [3.0]], np.float32))
    assert np.abs(out.instructions - np.array([2_000_000, 6_000_000])).max() <= mcu.INSTRUCTIONS_PER_TICK
