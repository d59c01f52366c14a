import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from course_lib import measure, models


def flop_counter_macs(model, input_shape):
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_shape))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("name", sorted(models.ARCHITECTURES))
def test_macs_match_torch_flop_counter(name):
    model = models.build(name).eval()
    assert measure.count_macs(model) == flop_counter_macs(model, (1, 28, 28))


def test_lenet5_hand_formula():
    # conv1: 24*24*20*1*25, conv2: 8*8*50*20*25, fc1: 800*500, fc2: 500*10
    assert measure.count_macs(models.lenet5()) == 288_000 + 1_600_000 + 400_000 + 5_000


@settings(max_examples=40, deadline=None)
@given(c_in=st.integers(1, 4), c_out=st.integers(1, 6), k=st.integers(1, 5), size=st.integers(5, 16),
       stride=st.integers(1, 3), padding=st.integers(0, 2), groups=st.sampled_from([1, 2]))
def test_conv_macs_formula_against_flop_counter(c_in, c_out, k, size, stride, padding, groups):
    c_in, c_out = c_in * groups, c_out * groups
    if size + 2 * padding < k:
        return
    conv = nn.Sequential(nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, groups=groups))
    h_out = (size + 2 * padding - k) // stride + 1
    expected = h_out * h_out * c_out * (c_in // groups) * k * k
    assert measure.count_macs(conv, (c_in, size, size)) == expected == flop_counter_macs(conv, (c_in, size, size))


def test_peak_activations_by_hand():
    # lenet_300_100 peak: fc1 holds its 784 inputs and 300 outputs at once.
    assert measure.peak_activation_bytes(models.lenet_300_100(), number_format="fp32") == (784 + 300) * 4
    assert measure.peak_activation_bytes(models.lenet_300_100(), number_format="int8") == 784 + 300
    # lenet5 peak: pool1 reads (20,24,24) and writes (20,12,12)
    assert measure.peak_activation_bytes(models.lenet5()) == (20 * 24 * 24 + 20 * 12 * 12) * 4


def test_weight_bytes_dense_and_sparse():
    model = models.lenet_300_100()
    assert measure.weight_bytes(model, "fp32") == 266_610 * 4
    assert measure.weight_bytes(model, "int8") == 266_610
    with torch.no_grad():
        model.fc1.weight.zero_()
    assert measure.count_nonzero(model) == 266_610 - 784 * 300
    assert measure.weight_bytes(model, "fp32", "best") < measure.weight_bytes(model, "fp32", "dense")
    with pytest.raises(ValueError, match="encoding"):
        measure.weight_bytes(model, "fp32", "zip")


def test_report_summary_and_latency():
    model = models.lenet5()
    r = measure.report(model, "lenet5", "int8", latency_batch_sizes=(1, 8), repeats=3)
    assert r.parameters == 431_080 and r.weight_bytes == 431_080 and r.macs == 2_293_000
    assert set(r.latency) == {1, 8} and all(l.median > 0 for l in r.latency.values())
    row = r.summary()
    assert row["weight KiB"] == round(431_080 / 1024, 1) and "measured ms (batch 8)" in row


def test_compare_latency_interleaves_and_restores_threads():
    before = torch.get_num_threads()
    a, b = models.lenet_300_100(), models.lenet5()
    a.train()
    result = measure.compare_latency({"a": a, "b": b}, batch_size=2, warmup=1, repeats=3, threads=1)
    assert torch.get_num_threads() == before and a.training
    assert result["a"].threads == 1 and len(result["b"].times) == 3
    s = measure.speedup(b, a, warmup=1, repeats=5)
    assert s.ratio == pytest.approx(s.baseline.median / s.candidate.median)


def test_bad_arguments_are_named():
    model = models.lenet5()
    with pytest.raises(TypeError, match="model"):
        measure.count_parameters("lenet5")
    with pytest.raises(ValueError, match="input_shape"):
        measure.count_macs(model, (0, 28, 28))
    for kwargs, name in [({"batch_size": 0}, "batch_size"), ({"repeats": 0}, "repeats"),
                         ({"warmup": -1}, "warmup"), ({"threads": 0}, "threads")]:
        with pytest.raises(ValueError, match=name):
            measure.measure_latency(model, **kwargs)
    with pytest.raises(ValueError, match="models"):
        measure.compare_latency({})


# ----------------------------------------------------------------------------- compressed models

from course_lib import codebook, data, hardware, pruning  # noqa: E402
from course_lib import quantization as Q  # noqa: E402

LENET300_WEIGHTS = {"fc1": 784 * 300, "fc2": 300 * 100, "fc3": 100 * 10}
LENET300_ROWS = {"fc1": 300, "fc2": 100, "fc3": 10}
LENET300_BIASES = 300 + 100 + 10


@pytest.fixture(scope="module")
def lenet300():
    return models.build("lenet_300_100", seed=0).eval()


@pytest.fixture(scope="module")
def calibration():
    return data.load("mnist", "validation").subset(200)


def codes_bytes(bits):
    return sum(-(-n * bits // 8) for n in LENET300_WEIGHTS.values())


def test_fake_quantized_int8_model_by_hand(lenet300, calibration):
    q = Q.quantize_model(lenet300, 8, 8, calibration)
    r = measure.report(q, "int8")
    # int8 codes, one fp32 scale per row, fp32/int32 biases, an input scale + zero-point per layer.
    assert r.weight_bytes == codes_bytes(8) + 4 * 410 + 4 * LENET300_BIASES + 3 * 8 == 269_504
    assert r.macs == 266_200 and r.parameters == 266_610
    assert r.number_format == "int8"
    assert r.peak_activation_bytes == 784 + 300                 # fc1's int8 input and output
    assert [t.name for t in r.layers if t.macs] == ["fc1", "fc2", "fc3"]


def test_weight_only_per_tensor_4_bits_by_hand(lenet300):
    q = Q.quantize_model(lenet300, 4, None, per_channel=False)
    r = measure.report(q)
    assert r.weight_bytes == codes_bytes(4) + 3 * 4 + 4 * LENET300_BIASES == 134_752
    assert r.number_format == "fp32" and r.peak_activation_bytes == (784 + 300) * 4


@pytest.mark.parametrize("scheme, bits", [("ternary", 2), ("binary", 1)])
def test_ternary_and_binary_by_hand(lenet300, scheme, bits):
    q = Q.quantize_model(lenet300, activation_bits=None, weight_scheme=scheme)
    assert measure.weight_bytes(q) == codes_bytes(bits) + 4 * 410 + 4 * LENET300_BIASES


def test_kmeans_model_by_hand(lenet300):
    shared = codebook.kmeans_quantize_model(lenet300, 2)
    r = measure.report(shared)
    assert r.weight_bytes == codes_bytes(2) + 3 * 4 * 4 + 4 * LENET300_BIASES == 68_238
    assert r.macs == 266_200 and r.parameters == 266_610
    assert lenet300.fc1.weight.requires_grad                    # the given model is untouched


def test_mixed_precision_by_hand(lenet300):
    q = Q.quantize_model(lenet300, {"fc1": 2, "fc2": 4}, None)
    expected = (LENET300_WEIGHTS["fc1"] * 2 // 8 + 300 * 4 + 300 * 4
                + LENET300_WEIGHTS["fc2"] * 4 // 8 + 100 * 4 + 100 * 4 + (1000 + 10) * 4)
    assert measure.weight_bytes(q) == expected == 81_040
    assert measure.report(q).number_format == "fp32"            # fc3 still computes in float


def test_pruned_model_in_bitmask_by_hand(lenet300):
    pruned, masks = pruning.prune_weights(lenet300, 0.9, "global")
    nnz = {name.split(".")[0]: int(m.sum()) for name, m in masks.items()}
    bitmask = sum(-(-(n + 32 * nnz[layer]) // 8) for layer, n in LENET300_WEIGHTS.items())
    assert measure.weight_bytes(pruned, "fp32", "bitmask") == bitmask + 4 * LENET300_BIASES
    # Pruned, then quantized: the codes keep the zeros, so the encoding still skips them.
    q = Q.quantize_model(pruned, 8, None)
    bitmask8 = sum(-(-(n + 8 * nnz[layer]) // 8) for layer, n in LENET300_WEIGHTS.items())
    assert measure.weight_bytes(q, encoding="bitmask") == bitmask8 + 4 * 410 + 4 * LENET300_BIASES


def test_channel_pruned_model_by_hand():
    model = models.build("lenet5", seed=0).eval()
    small = pruning.prune_channels(model, {"conv1": 0.5, "conv2": 0.5})     # 10 and 25 channels kept
    assert measure.count_parameters(small) == (10 * 25 + 10) + (25 * 10 * 25 + 25) + (25 * 16 * 500 + 500) + 5010
    assert measure.count_macs(small) == 24 * 24 * 10 * 25 + 8 * 8 * 25 * 10 * 25 + 400 * 500 + 5000


def test_conv_wrappers_count_macs_and_activations():
    model = models.build("lenet5", seed=0).eval()
    q = Q.quantize_model(model, 8, None)
    assert measure.count_macs(q) == measure.count_macs(model) == 2_293_000
    shared = codebook.kmeans_quantize_model(model, 4)
    assert measure.peak_activation_bytes(shared) == measure.peak_activation_bytes(model)


def test_number_format_is_canonical_and_check_fit_accepts_it():
    r = measure.report(models.lenet5(), number_format=8)
    assert r.number_format == "int8"
    assert hardware.check_fit(r, hardware.PROFILES["Arduino Nano 33 BLE Sense"]).fits
    with pytest.raises(ValueError, match="number_format"):
        measure.report(models.lenet5(), number_format="8")


def test_format_bytes_uses_one_binary_convention():
    assert measure.format_bytes(1023) == "1,023 B"
    assert measure.format_bytes(1024) == "1.0 KiB"
    assert measure.format_bytes(1_724_320) == "1.64 MiB"         # LeNet-5 in fp32
    assert measure.format_bytes(1_066_440) == "1.02 MiB"         # LeNet-300-100: over a 1 MiB flash


# ----------------------------------------------------------------------------- bad input never gives garbage

LENET5 = models.lenet5()
NAN_MODEL = nn.Sequential(nn.Linear(4, 3))
with torch.no_grad():
    NAN_MODEL[0].weight[0, 0] = float("nan")
TIMES = measure.Latency(1, 1, "cpu", (0.3, 0.1, 0.2))


@pytest.mark.parametrize("call, error, fragment", [
    (lambda: measure.format_bytes("12"), TypeError, "n must be a number of bytes (an int or a float), got str"),
    (lambda: measure.format_bytes(True), TypeError, "got bool"),
    (lambda: measure.format_bytes(float("nan")), ValueError, "n must be a finite number of bytes, got nan"),
    (lambda: measure.format_bytes(float("-inf")), ValueError, "got -inf"),
    (lambda: measure.format_name(8.0), TypeError, "number_format"),
    (lambda: measure.format_name("8"), ValueError, "number_format"),
    (lambda: measure.weight_layers(None), TypeError, "model must be a torch.nn.Module, got NoneType"),
    (lambda: measure.compressed_layers("lenet5"), TypeError, "model must be a torch.nn.Module, got str"),
    (lambda: measure.count_nonzero([LENET5]), TypeError, "model must be a torch.nn.Module, got list"),
    (lambda: measure.model_arithmetic_format("lenet5"), TypeError, "model must be a torch.nn.Module"),
    (lambda: measure.tensor_bytes([1.0], "fp32"), TypeError, "t must be a torch.Tensor, got list"),
    (lambda: measure.tensor_bytes(torch.tensor([[float("nan")]]), "fp32"), ValueError, "NaN or inf"),
    (lambda: measure.tensor_bytes(torch.ones(2, 2), "fp8"), ValueError, "number_format"),
    (lambda: measure.tensor_bytes(torch.ones(2, 2), "fp32", None), ValueError, "encoding must be one of"),
    (lambda: measure.weight_bytes(NAN_MODEL), ValueError, "model parameter '0.weight' contains NaN or inf"),
    (lambda: measure.weight_bytes(LENET5, 32.0), TypeError, "number_format"),
    (lambda: measure.trace_layers(LENET5, (1, 2.7, 28)), TypeError,
     "input_shape must be a tuple of positive ints like (1, 28, 28)"),
    (lambda: measure.trace_layers(LENET5, (1, 2.7, 28)), TypeError, "holding float 2.7"),
    (lambda: measure.trace_layers(LENET5, (1, "28", 28)), TypeError, "holding str '28'"),
    (lambda: measure.trace_layers(LENET5, (1, True, 28)), TypeError, "holding bool"),
    (lambda: measure.trace_layers(LENET5, "1,28,28"), TypeError, "got str '1,28,28'"),
    (lambda: measure.trace_layers(LENET5, 28), TypeError, "got int 28"),
    (lambda: measure.trace_layers(LENET5, ()), ValueError, "got ()"),
    (lambda: measure.count_macs(LENET5, (1, -28, 28)), ValueError, "got (1, -28, 28)"),
    (lambda: measure.count_macs(LENET5, (3, 32, 32)), ValueError, "model cannot run on input_shape (3, 32, 32)"),
    (lambda: measure.count_macs("lenet5"), TypeError, "model must be a torch.nn.Module"),
    (lambda: measure.peak_activation_bytes(LENET5, (0, 28, 28)), ValueError, "input_shape"),
    (lambda: measure.peak_activation_bytes(LENET5, number_format=8.0), TypeError, "number_format"),
    (lambda: measure.layer_macs("fc1", torch.zeros(1, 3)), TypeError, "module must be a torch.nn.Module, got str"),
    (lambda: measure.layer_macs(nn.Linear(4, 3), [0.0] * 3), TypeError, "output must be a torch.Tensor, got list"),
    (lambda: measure.layer_macs(nn.Linear(4, 3), torch.zeros(3)), ValueError,
     "output must be a batch of Linear outputs (N, ..., 3) with N >= 1, got shape (3,)"),
    (lambda: measure.layer_macs(nn.Linear(4, 3), torch.zeros(1, 5)), ValueError, "got shape (1, 5)"),
    (lambda: measure.layer_macs(nn.Linear(4, 3), torch.zeros(0, 3)), ValueError, "N >= 1, got shape (0, 3)"),
    (lambda: measure.layer_macs(nn.Conv2d(1, 2, 3), torch.zeros(2, 5, 5)), ValueError,
     "Conv2d outputs (N, 2, ..., ...) with N >= 1, got shape (2, 5, 5)"),
    (lambda: measure.measure_latency(LENET5, batch_size=2.0), TypeError, "batch_size must be an int >= 1, got float 2.0"),
    (lambda: measure.measure_latency(LENET5, batch_size=True), TypeError, "batch_size must be an int >= 1, got bool"),
    (lambda: measure.measure_latency(LENET5, batch_size=0), ValueError, "batch_size must be an int >= 1, got 0"),
    (lambda: measure.measure_latency(LENET5, warmup=1.5), TypeError, "warmup must be an int >= 0, got float 1.5"),
    (lambda: measure.measure_latency(LENET5, warmup=-1), ValueError, "warmup must be an int >= 0, got -1"),
    (lambda: measure.measure_latency(LENET5, repeats=float("nan")), TypeError, "repeats must be an int >= 1, got float"),
    (lambda: measure.measure_latency(LENET5, repeats=0), ValueError, "repeats must be an int >= 1, got 0"),
    (lambda: measure.measure_latency(LENET5, threads=2.0), TypeError, "threads must be an int >= 1 or None, got float"),
    (lambda: measure.measure_latency(LENET5, threads=False), TypeError, "got bool"),
    (lambda: measure.measure_latency(LENET5, threads=0), ValueError, "threads must be an int >= 1 or None, got 0"),
    (lambda: measure.measure_latency(LENET5, (2.5,)), TypeError, "input_shape"),
    (lambda: measure.compare_latency([LENET5]), TypeError, "models must be a dict {name: model}, got list"),
    (lambda: measure.compare_latency({}), ValueError, "models must hold at least one model"),
    (lambda: measure.compare_latency({"a": "lenet5"}), TypeError, "models['a'] must be a torch.nn.Module, got str"),
    (lambda: measure.compare_latency({"a": LENET5}, (3, 32, 32), warmup=0, repeats=1, threads=1), ValueError,
     "model 'a' cannot run on input_shape (3, 32, 32)"),
    (lambda: measure.speedup(LENET5, "small"), TypeError, "models['candidate'] must be a torch.nn.Module"),
    (lambda: measure.speedup(LENET5, LENET5, batch_size=0), ValueError, "batch_size must be an int >= 1, got 0"),
    (lambda: measure.speedup(LENET5, LENET5, repeat=3), TypeError, "repeat"),
    (lambda: measure.torch_threads(0).__enter__(), ValueError, "threads must be an int >= 1 or None, got 0"),
    (lambda: measure.torch_threads(1.5).__enter__(), TypeError, "threads must be an int >= 1 or None, got float 1.5"),
    (lambda: measure.report(LENET5, name=3), TypeError, "name must be a str, got int 3"),
    (lambda: measure.report(LENET5, latency_batch_sizes=8), TypeError,
     "latency_batch_sizes must be a tuple of ints >= 1 like (1, 32), got int 8"),
    (lambda: measure.report(LENET5, latency_batch_sizes=(1, 2.0)), TypeError, "got (1, 2.0)"),
    (lambda: measure.report(LENET5, latency_batch_sizes=(1, True)), TypeError, "got (1, True)"),
    (lambda: measure.report(LENET5, latency_batch_sizes=(1, 0)), ValueError, "got (1, 0)"),
    (lambda: measure.report(LENET5, repeats=0), ValueError, "repeats must be an int >= 1, got 0"),
    (lambda: measure.report(LENET5, repeats=2.5), TypeError, "repeats must be an int >= 1, got float 2.5"),
    (lambda: measure.report(LENET5, threads=-1), ValueError, "threads must be an int >= 1 or None, got -1"),
    (lambda: measure.report(LENET5, activation_format="fp8"), ValueError, "activation_format must be one of"),
    (lambda: measure.report(LENET5, activation_format=8.0), TypeError, "activation_format must be a str"),
    (lambda: measure.report(LENET5, input_shape=(1, 28.0, 28)), TypeError, "input_shape"),
    (lambda: measure.report(LENET5, encoding=None), ValueError, "encoding must be one of"),
    (lambda: measure.report(NAN_MODEL, input_shape=(4,), latency_batch_sizes=(1,)), ValueError,
     "'0.weight' contains NaN or inf"),
    (lambda: TIMES.quantile(1.5), ValueError, "q must be in [0, 1], got 1.5"),
    (lambda: TIMES.quantile(-0.1), ValueError, "got -0.1"),
    (lambda: TIMES.quantile(float("nan")), ValueError, "q must be in [0, 1], got nan"),
    (lambda: TIMES.quantile("0.5"), TypeError, "q must be a number in [0, 1], got str"),
    (lambda: TIMES.quantile(True), TypeError, "got bool"),
    (lambda: measure.Latency(0, 1, "cpu", (0.1,)), ValueError, "batch_size must be an int >= 1, got 0"),
    (lambda: measure.Latency(1, 1, "cpu", ()), TypeError, "times must be a non-empty tuple"),
    (lambda: measure.Latency(1, 1, "cpu", (float("nan"),)), ValueError, "times must hold finite numbers"),
    (lambda: measure.StoredTensor("codes", [1.0], 8), TypeError, "values must be a torch.Tensor, got list"),
    (lambda: measure.StoredTensor("codes", torch.ones(2), 0), ValueError, "bits must be an int in [1, 32], got 0"),
    (lambda: measure.StoredTensor("codes", torch.ones(2), 8.0), TypeError, "bits must be an int in [1, 32]"),
])
def test_bad_input_raises_a_named_error(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)


def test_good_input_of_the_checked_kinds():
    assert measure.format_bytes(-2048) == "-2.0 KiB" and measure.format_bytes(0.0) == "0 B"
    macs = measure.count_macs(LENET5)               # a list or a torch.Size is a shape too
    assert measure.count_macs(LENET5, [1, 28, 28]) == measure.count_macs(LENET5, torch.Size([1, 28, 28])) == macs
    assert measure.layer_macs(nn.Linear(4, 3), torch.zeros(2, 3)) == 12           # 3 outputs x 4 inputs
    assert measure.layer_macs(nn.Conv2d(1, 2, 3), torch.zeros(1, 2, 3, 3)) == 18 * 9
    assert measure.layer_macs(nn.ReLU(), torch.zeros(1)) == 0
    assert (TIMES.quantile(0), TIMES.quantile(0.5), TIMES.quantile(1)) == (0.1, 0.2, 0.3)
    with measure.torch_threads(None) as used:
        assert used == torch.get_num_threads()


def test_nothing_changes_on_error():
    model = models.build("lenet5", seed=0)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    threads = torch.get_num_threads()
    with pytest.raises(ValueError, match="input_shape"):
        measure.compare_latency({"m": model}, (3, 32, 32), warmup=1, repeats=1, threads=1)
    with pytest.raises(ValueError, match="input_shape"):
        measure.trace_layers(model, (3, 32, 32))
    with pytest.raises(ValueError, match="threads"):
        with measure.torch_threads(0):
            pass
    with pytest.raises(TypeError, match="name"):
        measure.report(model, name=None)
    assert torch.get_num_threads() == threads and model.training
    assert all(not m._forward_hooks for m in model.modules())                       # no hook left behind
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
