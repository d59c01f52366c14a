
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import data, measure, models, quantization as Q, train


def test_hand_worked_example():
    # x in [-1, 3] on 2 bits asymmetric: s = 4/3, z = 0 - round(-1/(4/3)) = 1
    p = Q.choose_qparams(-1.0, 3.0, bits=2)
    assert p.scale.item() == pytest.approx(4 / 3) and p.zero_point.item() == 1
    x = torch.tensor([-1.0, 0.0, 1.0, 3.0, 5.0])
    assert Q.quantize(x, p).tolist() == [0, 1, 2, 3, 3]          # 5.0 clips to q_max
    assert torch.allclose(Q.dequantize(Q.quantize(x, p), p), torch.tensor([-4 / 3, 0, 4 / 3, 8 / 3, 8 / 3]))


def test_integer_ranges():
    assert Q.integer_range(8, signed=True) == (-128, 127)
    assert Q.integer_range(8, signed=False) == (0, 255)
    assert Q.integer_range(2, signed=True) == (-2, 1)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 8), st.booleans(), st.integers(0, 10_000))
def test_bit_exact_with_torch_fake_quantize_per_tensor(bits, symmetric, seed):
    x = torch.randn(500, generator=torch.Generator().manual_seed(seed)) * 3
    p = Q.choose_qparams(x.min(), x.max(), bits, symmetric=symmetric)
    ref = torch.fake_quantize_per_tensor_affine(x, p.scale.item(), int(p.zero_point), p.qmin, p.qmax)
    assert torch.equal(Q.fake_quantize(x, p), ref)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 8), st.integers(0, 10_000))
def test_bit_exact_with_torch_fake_quantize_per_channel(bits, seed):
    w = torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(seed))
    p = Q.weight_qparams(w, bits, per_channel=True)
    ref = torch.fake_quantize_per_channel_affine(w, p.scale, p.zero_point.to(torch.int32), 0, p.qmin, p.qmax)
    assert torch.equal(Q.fake_quantize(w, p), ref)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 16), st.floats(-50, 0), st.floats(0.01, 50), st.integers(0, 1000))
def test_round_trip_error_at_most_half_a_step_inside_the_range(bits, lo, hi, seed):
    p = Q.choose_qparams(lo, hi, bits)
    x = lo + (hi - lo) * torch.rand(200, generator=torch.Generator().manual_seed(seed))
    error = (Q.dequantize(Q.quantize(x, p), p) - x).abs().max().item()
    float32_rounding = 1e-6 * max(abs(lo), abs(hi))          # a few float32 ulps at the largest |x|
    assert error <= p.scale.item() / 2 + float32_rounding


def test_straight_through_gradient_is_zero_only_where_clipped():
    p = Q.choose_qparams(-1.0, 1.0, 8)
    x = torch.tensor([-3.0, -0.5, 0.2, 0.9, 4.0], requires_grad=True)
    Q.fake_quantize(x, p).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_ternary_and_binary_weights():
    w = torch.tensor([[1.0, -0.1, 0.9, -1.1]])         # mean |w| = 0.775, delta = 0.5425
    t = Q.ternarize(w)
    assert t.tolist() == [[1.0, 0.0, 1.0, -1.0]]       # alpha = mean(1, .9, 1.1) = 1
    assert torch.allclose(Q.binarize(w).abs(), torch.full_like(w, 0.775))
    w = torch.randn(4, 10, requires_grad=True)
    Q.quantize_weight(w, "ternary").sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))      # straight through


def test_calibration_methods_clip_outliers():
    x = torch.cat([torch.randn(10_000, generator=torch.Generator().manual_seed(0)), torch.tensor([80.0])])
    lo, hi = Q.calibrate_range(x, "minmax")
    assert hi == 80.0
    assert Q.calibrate_range(x, "percentile")[1] < 10
    assert Q.calibrate_range(x, "mse")[1] < 80.0


def test_quantize_model_ptq_keeps_lenet_accuracy():
    model = models.build("lenet_300_100", seed=0)
    split = data.load("mnist", "validation").subset(1000)
    train.fit(model, split, train.TrainingSettings(epochs=2), progress=False)
    q = Q.quantize_model(model, 8, 8, calibration=split)
    assert abs(train.evaluate(q, split).accuracy - train.evaluate(model, split).accuracy) < 0.01
    assert len(measure.compressed_layers(q)) == 3
    assert not any(isinstance(m, Q.FakeQuantized) for m in model.modules())   # original untouched


def test_integer_only_linear_matches_fake_quant_within_one_step():
    g = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(20, 7)
    x = torch.relu(torch.randn(16, 20, generator=g))
    x_p = Q.choose_qparams(x.min(), x.max(), 8)
    w_p = Q.weight_qparams(layer.weight, 8, per_channel=True)
    reference = torch.nn.functional.linear(Q.fake_quantize(x, x_p), Q.fake_quantize(layer.weight, w_p), layer.bias)
    out_p = Q.choose_qparams(reference.min(), reference.max(), 8)
    y_q = Q.integer_linear(Q.quantize(x, x_p), x_p, Q.quantize(layer.weight, w_p), w_p, layer.bias.detach(), out_p)
    assert (y_q - Q.quantize(reference.detach(), out_p)).abs().max() <= 1


def test_mixed_precision_meets_the_budget_and_prefers_insensitive_layers():
    model = torch.nn.Sequential(torch.nn.Linear(100, 10), torch.nn.ReLU(), torch.nn.Linear(10, 100))
    sensitivity = {"0": {8: 0.99, 4: 0.98, 2: 0.50}, "2": {8: 0.99, 4: 0.99, 2: 0.98}}
    # Each layer: 1000 weights, 10 or 100 fp32 scales, 10 or 100 fp32 biases.
    overhead = 4 * (10 + 10) + 4 * (100 + 100)
    choice = Q.mixed_precision_bits(model, sensitivity, budget_bytes=1000 + overhead)
    # "2" loses nothing going 8 -> 4, so it goes first; then "0"'s small loss beats "2"'s 4 -> 2.
    assert choice == {"0": 4, "2": 4}
    assert measure.weight_bytes(Q.quantize_model(model, choice, None)) == 1000 + overhead
    with pytest.raises(ValueError, match="budget_bytes"):
        Q.mixed_precision_bits(model, sensitivity, budget_bytes=100)
    with pytest.raises(ValueError, match="budget_bytes"):
        Q.mixed_precision_bits(model, sensitivity, budget_bytes=float("nan"))
    with pytest.raises(ValueError, match="unknown layers"):
        Q.mixed_precision_bits(model, {"fc9": {8: 0.9}}, budget_bytes=10_000)


def test_bad_input_gets_named_errors():
    with pytest.raises(ValueError, match=r"bits must be in \[1, 16\]"):
        Q.integer_range(0, True)
    with pytest.raises(ValueError, match="bits must be in"):
        Q.choose_qparams(0, 1, bits=17)
    with pytest.raises(TypeError, match="bits"):
        Q.choose_qparams(0, 1, bits=7.5)
    # The order check happens before the range is widened to include zero.
    with pytest.raises(ValueError, match="x_min must be <= x_max"):
        Q.choose_qparams(1.0, -1.0)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            Q.choose_qparams(bad, 1.0)
        with pytest.raises(ValueError, match="NaN or inf"):
            Q.quantize(torch.tensor([bad]), Q.choose_qparams(0.0, 1.0))
    with pytest.raises(TypeError, match="x_min"):
        Q.choose_qparams(None, 1.0)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        Q.quantize(None, Q.choose_qparams(0.0, 1.0))
    with pytest.raises(ValueError, match="per-channel qparams"):
        Q.quantize(torch.ones(3, 4), Q.weight_qparams(torch.ones(5, 4)))
    with pytest.raises(TypeError, match="integer codes"):
        Q.dequantize(torch.ones(3), Q.choose_qparams(0.0, 1.0))
    with pytest.raises(ValueError, match="threshold_ratio"):
        Q.ternarize(torch.ones(2, 2), float("nan"))
    with pytest.raises(ValueError, match="empty"):
        Q.calibrate_range(torch.tensor([]))
    with pytest.raises(ValueError, match="NaN or inf"):
        Q.calibrate_range(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="method"):
        Q.calibrate_range(torch.ones(3), "kl")
    with pytest.raises(ValueError, match="calibration"):
        Q.quantize_model(models.lenet5(), 8, 8)
    with pytest.raises(ValueError, match="unknown layers"):
        Q.quantize_model(models.lenet5(), {"fc9": 4}, None)
    with pytest.raises(ValueError, match="scheme"):
        Q.quantize_weight(torch.ones(2, 2), "quaternary")
    # A constant tensor still gets a valid (positive) scale.
    assert Q.choose_qparams(2.0, 2.0, 8).scale.item() > 0


def test_the_mse_calibration_error_is_exactly_quantize_then_dequantize():
    """The calibration's fast error (no int64 round trip) gives the very numbers of the public functions."""
    x = torch.relu(torch.randn(20_000, generator=torch.Generator().manual_seed(5)) * 3)
    for bits in (2, 4, 8):
        for ratio in (0.3, 0.65, 1.0):
            p = Q.choose_qparams(0.0, float(x.max()) * ratio, bits)
            assert Q._fake_quantization_mse(x, p) == (Q.dequantize(Q.quantize(x, p), p) - x).pow(2).mean().item()
