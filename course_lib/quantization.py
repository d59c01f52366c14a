"""Quantization: fewer bits per number.

**The affine map** (Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference"). A real value :math:`x` is represented by an integer
:math:`q \\in [q_{min}, q_{max}]` through a scale :math:`s > 0` and a zero-point :math:`z`:

.. math:: q = \\mathrm{clamp}\\big(\\mathrm{round}(x / s) + z,\\; q_{min},\\; q_{max}\\big), \\qquad
          \\hat x = s\\,(q - z).

For :math:`b` bits, signed codes span :math:`[-2^{b-1}, 2^{b-1}-1]`, unsigned ones :math:`[0, 2^b-1]`.
Inside the representable range the error :math:`|\\hat x - x|` is at most :math:`s/2` (rounding);
outside it, values are clipped. *Asymmetric* quantization maps :math:`[x_{min}, x_{max}]` onto the
whole code range; *symmetric* quantization fixes :math:`z = 0`. Scales are chosen per tensor or per
output channel (one :math:`s` per row of a weight, which helps when rows differ in range).

**Fake quantization** computes :math:`\\hat x` in floating point, so a model can be evaluated and
trained as it would behave in integers. Rounding has zero gradient almost everywhere, so training
uses the *straight-through estimator* (Bengio et al. 2013): the gradient passes unchanged where
:math:`x` is inside the range and is zero where it was clipped.

**Ternary and binary weights** are the low end: TWN (Li, Zhang & Liu 2016) keeps
:math:`\\{-\\alpha, 0, +\\alpha\\}` with threshold :math:`\\Delta = 0.7\\,\\overline{|W|}`; binary weights
keep :math:`\\pm\\alpha` with :math:`\\alpha = \\overline{|W|}` (Rastegari et al. 2016, XNOR-Net).

Primitives (``choose_qparams``, ``quantize``, ``dequantize``, ``fake_quantize``) act on tensors;
:func:`quantize_model` builds a fake-quantized copy of a model for post-training quantization
and quantization-aware training. Taught in ``notebooks/02_quantization.ipynb``.
"""

from __future__ import annotations

import copy
from typing import Iterable, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .data import ImageSplit, batches
from .encoding import storage_bytes
from .train import model_device

CALIBRATION_METHODS = ("minmax", "percentile", "mse")
WEIGHT_SCHEMES = ("affine", "ternary", "binary")


def check_bits(bits: int, name: str = "bits") -> None:
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"{name} must be an int in [2, 16], got {type(bits).__name__}")
    if not 2 <= bits <= 16:
        raise ValueError(f"{name} must be in [2, 16], got {bits}")


def _check_finite(x: torch.Tensor, name: str) -> None:
    if x.numel() == 0:
        raise ValueError(f"{name} is empty; quantization needs at least one value")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf; clean the data before calibrating")


# ----------------------------------------------------------------------------- primitives

def integer_range(bits: int, signed: bool) -> tuple[int, int]:
    """:math:`[q_{min}, q_{max}]`: signed ``[-2^(b-1), 2^(b-1)-1]``, unsigned ``[0, 2^b - 1]``."""
    check_bits(bits)
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)


class QParams(NamedTuple):
    """Scale and zero-point (per tensor: 0-d tensors; per channel: vectors along ``axis``)."""
    scale: torch.Tensor
    zero_point: torch.Tensor
    qmin: int
    qmax: int
    axis: int | None = None


def choose_qparams(x_min: torch.Tensor | float, x_max: torch.Tensor | float, bits: int = 8,
                   symmetric: bool = False, signed: bool | None = None,
                   axis: int | None = None) -> QParams:
    """Scale and zero-point mapping ``[x_min, x_max]`` (widened to include 0, so that zero is
    exact) onto the ``bits``-bit code range.

    * asymmetric: :math:`s = (x_{max} - x_{min}) / (q_{max} - q_{min})`,
      :math:`z = q_{min} - \\mathrm{round}(x_{min}/s)`, clamped into the range;
    * symmetric: :math:`s = \\max(|x_{min}|, |x_{max}|) / ((q_{max} - q_{min})/2)`, :math:`z = 0`
      (signed codes), as PyTorch's observers do.

    ``signed`` defaults to True for symmetric and False for asymmetric. Scales are at least
    ``1e-8`` (a constant tensor still gets a valid scale).
    """
    signed = symmetric if signed is None else signed
    qmin, qmax = integer_range(bits, signed)
    lo = torch.clamp(torch.as_tensor(x_min, dtype=torch.float32), max=0.0)
    hi = torch.clamp(torch.as_tensor(x_max, dtype=torch.float32), min=0.0)
    if (lo > hi).any():
        raise ValueError("x_min must be <= x_max")
    if symmetric:
        scale = torch.maximum(-lo, hi) / ((qmax - qmin) / 2)
        scale = torch.clamp(scale, min=1e-8)
        zero_point = torch.zeros_like(scale, dtype=torch.int64) + (0 if signed else (qmin + qmax + 1) // 2)
    else:
        scale = torch.clamp((hi - lo) / (qmax - qmin), min=1e-8)
        zero_point = torch.clamp(qmin - torch.round(lo / scale), qmin, qmax).to(torch.int64)
    return QParams(scale, zero_point, qmin, qmax, axis)


def _broadcast(p: QParams, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero-point shaped to broadcast against ``x`` (per-channel along ``p.axis``)."""
    if p.axis is None:
        return p.scale.to(x.device), p.zero_point.to(x.device)
    shape = [1] * x.dim()
    shape[p.axis] = -1
    return p.scale.reshape(shape).to(x.device), p.zero_point.reshape(shape).to(x.device)


def quantize(x: torch.Tensor, p: QParams) -> torch.Tensor:
    """Integer codes :math:`\\mathrm{clamp}(\\mathrm{round}(x/s) + z, q_{min}, q_{max})` as int64.
    Rounds half to even and multiplies by :math:`1/s`, as PyTorch's kernels do."""
    scale, zero_point = _broadcast(p, x)
    return torch.clamp(torch.round(x * (1.0 / scale)) + zero_point, p.qmin, p.qmax).to(torch.int64)


def dequantize(q: torch.Tensor, p: QParams) -> torch.Tensor:
    """Real values :math:`s (q - z)` (float32)."""
    scale, zero_point = _broadcast(p, q)
    return (q - zero_point).to(torch.float32) * scale


class _FakeQuantizeSTE(torch.autograd.Function):
    """Forward: dequantize(quantize(x)). Backward: straight-through inside the range, 0 outside."""

    @staticmethod
    def forward(ctx, x, scale, zero_point, qmin, qmax):
        q = torch.round(x * (1.0 / scale)) + zero_point
        ctx.save_for_backward((q >= qmin) & (q <= qmax))
        return (torch.clamp(q, qmin, qmax) - zero_point) * scale

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None, None


def fake_quantize(x: torch.Tensor, p: QParams) -> torch.Tensor:
    """:math:`\\hat x = s(\\mathrm{clamp}(\\mathrm{round}(x/s)+z) - z)` in float, differentiable
    with the straight-through estimator. Matches ``torch.fake_quantize_per_tensor_affine`` and
    ``torch.fake_quantize_per_channel_affine`` bit for bit (tested)."""
    scale, zero_point = _broadcast(p, x)
    return _FakeQuantizeSTE.apply(x, scale, zero_point.to(x.dtype), p.qmin, p.qmax)


def weight_qparams(w: torch.Tensor, bits: int = 8, per_channel: bool = True) -> QParams:
    """Symmetric signed qparams for a weight, one scale per output channel (row) or per tensor."""
    w = w.detach()
    if per_channel:
        flat = w.reshape(w.shape[0], -1)
        return choose_qparams(flat.min(1).values, flat.max(1).values, bits, symmetric=True, axis=0)
    return choose_qparams(w.min(), w.max(), bits, symmetric=True)


# ----------------------------------------------------------------------------- ternary and binary

def ternarize(w: torch.Tensor, threshold_ratio: float = 0.7) -> torch.Tensor:
    """TWN (Li et al. 2016): :math:`\\Delta = 0.7 \\cdot \\overline{|W|}`,
    :math:`\\alpha = \\overline{|W_i|}_{|W_i| > \\Delta}`, :math:`W_t = \\alpha\\,\\mathrm{sign}(W)\\,
    \\mathbb{1}[|W| > \\Delta]`, one :math:`\\alpha` per output channel (row)."""
    flat = w.reshape(w.shape[0], -1)
    delta = threshold_ratio * flat.abs().mean(1, keepdim=True)
    keep = (flat.abs() > delta).to(w.dtype)
    alpha = (flat.abs() * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp(min=1)
    return (alpha * torch.sign(flat) * keep).reshape(w.shape)


def binarize(w: torch.Tensor) -> torch.Tensor:
    """Binary weights (XNOR-Net's BWN): :math:`\\alpha\\,\\mathrm{sign}(W)` with
    :math:`\\alpha = \\overline{|W|}` per output channel."""
    flat = w.reshape(w.shape[0], -1)
    alpha = flat.abs().mean(1, keepdim=True)
    return (alpha * torch.where(flat >= 0, 1.0, -1.0)).reshape(w.shape)


class _StraightThrough(torch.autograd.Function):
    """Forward: the low-precision tensor, exactly. Backward: the gradient goes to the float one."""

    @staticmethod
    def forward(ctx, w, low):
        return low.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def quantize_weight(w: torch.Tensor, scheme: str = "affine", bits: int = 8,
                    per_channel: bool = True) -> torch.Tensor:
    """The weight as the quantized model sees it, differentiable by the straight-through
    estimator: affine ``bits``-bit fake quantization, or ternary / binary values."""
    if scheme not in WEIGHT_SCHEMES:
        raise ValueError(f"scheme must be one of {WEIGHT_SCHEMES}, got {scheme!r}")
    if scheme == "affine":
        return fake_quantize(w, weight_qparams(w, bits, per_channel))
    low = ternarize(w.detach()) if scheme == "ternary" else binarize(w.detach())
    return _StraightThrough.apply(w, low)


# ----------------------------------------------------------------------------- calibration

def calibrate_range(x: torch.Tensor, method: str = "minmax", bits: int = 8,
                    percentile: float = 99.99) -> tuple[float, float]:
    """The range ``(lo, hi)`` to quantize ``x`` over (asymmetric, unsigned codes):

    * ``"minmax"``: the observed extremes;
    * ``"percentile"``: the ``100 - percentile`` and ``percentile`` percentiles (outliers clipped);
    * ``"mse"``: the extremes shrunk by the factor in [0.3, 1] that minimises the mean squared
      error between ``x`` and its fake-quantized version (clipping traded against rounding).
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"method must be one of {CALIBRATION_METHODS}, got {method!r}")
    check_bits(bits)
    x = x.detach().reshape(-1).float()
    _check_finite(x, "calibration data")
    lo, hi = x.min().item(), x.max().item()
    if method == "percentile":
        if not 50.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {percentile}")
        sample = x if x.numel() <= 1_000_000 else x[torch.randperm(x.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000]]
        lo = torch.quantile(sample, 1 - percentile / 100).item()
        hi = torch.quantile(sample, percentile / 100).item()
    elif method == "mse":
        best = (float("inf"), lo, hi)
        for ratio in torch.linspace(0.3, 1.0, 36).tolist():
            p = choose_qparams(lo * ratio, hi * ratio, bits)
            error = (dequantize(quantize(x, p), p) - x).pow(2).mean().item()
            if error < best[0]:
                best = (error, lo * ratio, hi * ratio)
        lo, hi = best[1], best[2]
    return lo, hi


# ----------------------------------------------------------------------------- quantized layers

class FakeQuantized(nn.Module):
    """A Linear or Conv2d whose input activations and weights are fake-quantized.

    The float weight is kept (QAT updates it through the straight-through estimator); the forward
    pass sees ``quantize_weight(weight)``. Input qparams are fixed by calibration; ``None``
    leaves activations in float (weight-only quantization).
    """

    def __init__(self, layer: nn.Module, weight_scheme: str = "affine", weight_bits: int = 8,
                 per_channel: bool = True, input_qparams: QParams | None = None):
        super().__init__()
        if not isinstance(layer, (nn.Linear, nn.Conv2d)):
            raise TypeError(f"layer must be nn.Linear or nn.Conv2d, got {type(layer).__name__}")
        self.layer = layer
        self.weight_scheme = weight_scheme
        self.weight_bits = weight_bits
        self.per_channel = per_channel
        self.input_qparams = input_qparams

    def quantized_weight(self) -> torch.Tensor:
        return quantize_weight(self.layer.weight, self.weight_scheme, self.weight_bits, self.per_channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_qparams is not None:
            x = fake_quantize(x, self.input_qparams)
        w = self.quantized_weight()
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, w, self.layer.bias)
        return self.layer._conv_forward(x, w, self.layer.bias)

    def extra_repr(self) -> str:
        bits = f"{self.weight_bits}-bit" if self.weight_scheme == "affine" else self.weight_scheme
        act = "float" if self.input_qparams is None else f"{self.input_qparams.qmax - self.input_qparams.qmin + 1}-level"
        return f"weights {bits}{' per-channel' if self.per_channel else ''}, inputs {act}"


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The Linear and Conv2d layers of a model, by name, in order: the layers quantization acts on."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}


def layer_inputs(model: nn.Module, split: ImageSplit, n: int = 1000) -> dict[str, torch.Tensor]:
    """The inputs each Linear/Conv2d layer receives on the first ``n`` examples (for calibration)."""
    layers = weight_layers(model)
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in layers}

    def recorder(name: str):
        def hook(module, inputs, output):
            seen[name].append(inputs[0].detach().cpu())
        return hook

    hooks = [m.register_forward_hook(recorder(name)) for name, m in layers.items()]
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for x, _ in batches(split.subset(min(n, len(split))), 500):
                model(x.to(device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {name: torch.cat(chunks) for name, chunks in seen.items()}


def quantize_model(model: nn.Module, weight_bits: int | dict[str, int] = 8, activation_bits: int | None = 8,
                   calibration: ImageSplit | None = None, method: str = "minmax",
                   per_channel: bool = True, weight_scheme: str = "affine",
                   n_calibration: int = 1000) -> nn.Module:
    """A fake-quantized copy of ``model``: every Linear/Conv2d wrapped in :class:`FakeQuantized`.

    Args:
        weight_bits: bits for every layer, or ``{layer name: bits}`` (mixed precision; layers
            not named stay in float).
        activation_bits: bits of each layer's input (asymmetric, calibrated on ``calibration``
            with ``method``), or None for weight-only quantization.
        weight_scheme: ``"affine"``, ``"ternary"`` or ``"binary"`` (then ``weight_bits`` is ignored).
    """
    if weight_scheme not in WEIGHT_SCHEMES:
        raise ValueError(f"weight_scheme must be one of {WEIGHT_SCHEMES}, got {weight_scheme!r}")
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"method must be one of {CALIBRATION_METHODS}, got {method!r}")
    layers = weight_layers(model)
    if not layers:
        raise ValueError("model has no Linear or Conv2d layer to quantize")
    bits = weight_bits if isinstance(weight_bits, dict) else {name: weight_bits for name in layers}
    unknown = set(bits) - set(layers)
    if unknown:
        raise ValueError(f"weight_bits names unknown layers {sorted(unknown)}; layers: {list(layers)}")
    for name, b in bits.items():
        check_bits(b, f"weight_bits[{name!r}]")
    if activation_bits is not None:
        check_bits(activation_bits, "activation_bits")
        if calibration is None:
            raise ValueError("activation quantization needs calibration data: pass calibration=")
    inputs = layer_inputs(model, calibration, n_calibration) if activation_bits is not None else {}
    quantized = copy.deepcopy(model)
    for name, b in bits.items():
        input_qparams = None
        if activation_bits is not None:
            lo, hi = calibrate_range(inputs[name], method, activation_bits)
            input_qparams = choose_qparams(lo, hi, activation_bits)
        parent_name, _, child = name.rpartition(".")
        parent = quantized.get_submodule(parent_name) if parent_name else quantized
        setattr(parent, child, FakeQuantized(getattr(parent, child), weight_scheme, b, per_channel,
                                             input_qparams))
    return quantized


# ----------------------------------------------------------------------------- integer-only inference

def integer_linear(x_q: torch.Tensor, x_p: QParams, w_q: torch.Tensor, w_p: QParams,
                   bias: torch.Tensor | None, out_p: QParams) -> torch.Tensor:
    """A Linear layer in integers only (Jacob et al. 2018, Sec. 2.2): int8 inputs and weights,
    int32 accumulation, bias quantized to int32 with scale :math:`s_x s_w`, then requantization
    to the output's codes with the real multiplier :math:`M = s_x s_w / s_y`.

    ``x_q``: (B, in) codes with qparams ``x_p`` (per tensor); ``w_q``: (out, in) symmetric codes,
    per channel (axis 0) or per tensor; returns (B, out) int64 codes with qparams ``out_p``.
    """
    acc = (x_q - x_p.zero_point).to(torch.int32) @ w_q.to(torch.int32).T        # (B, out) int32
    s_w = w_p.scale if w_p.axis is None else w_p.scale.reshape(1, -1)
    multiplier = x_p.scale * s_w                                                 # s_x * s_w
    if bias is not None:
        acc = acc + torch.round(bias / multiplier).to(torch.int32)
    y = torch.round(acc.to(torch.float64) * (multiplier / out_p.scale).to(torch.float64)) + out_p.zero_point
    return torch.clamp(y, out_p.qmin, out_p.qmax).to(torch.int64)


def weight_bytes_at(model: nn.Module, bits: dict[str, int] | int, float_bits: int = 32) -> int:
    """Bytes of a model's parameters with each quantized layer's weight at its bits (and its
    scales as fp32, one per output channel), everything else at ``float_bits``."""
    total = 0
    layers = weight_layers(model)
    per_layer = bits if isinstance(bits, dict) else {name: bits for name in layers}
    counted = set()
    for name, m in layers.items():
        if name in per_layer:
            total += storage_bytes(m.weight, per_layer[name]) + m.weight.shape[0] * 4
            counted.add(id(m.weight))
    for p in model.parameters():
        if id(p) not in counted:
            total += storage_bytes(p, float_bits)
    return total


def named_weight_layers(model: nn.Module) -> list[str]:
    return list(weight_layers(model))


def mixed_precision_bits(sensitivity: dict[str, dict[int, float]], sizes: dict[str, int],
                         budget_bytes: int, overhead_bytes: int = 0) -> dict[str, int]:
    """Choose bits per layer to fit ``budget_bytes`` at the least accuracy cost.

    ``sensitivity[layer][bits]`` is the accuracy with only that layer quantized to ``bits``;
    ``sizes[layer]`` its number of weights. Start every layer at its highest scanned bits;
    while over budget, lower by one step the layer whose step loses the least accuracy per byte
    saved (a greedy knapsack). Raises ValueError if even the lowest bits do not fit.
    """
    choice = {layer: max(acc) for layer, acc in sensitivity.items()}

    def total() -> int:
        return overhead_bytes + sum(-(-sizes[l] * b // 8) for l, b in choice.items())

    while total() > budget_bytes:
        best = None
        for layer, b in choice.items():
            lower = [c for c in sensitivity[layer] if c < b]
            if not lower:
                continue
            nb = max(lower)
            saved = -(-sizes[layer] * b // 8) - (-(-sizes[layer] * nb // 8))
            cost = (sensitivity[layer][b] - sensitivity[layer][nb]) / max(saved, 1)
            if best is None or cost < best[0]:
                best = (cost, layer, nb)
        if best is None:
            raise ValueError(f"budget_bytes {budget_bytes} cannot be met even at the lowest bits "
                             f"({total()} bytes needed)")
        choice[best[1]] = best[2]
    return choice


def iter_fake_quantized(model: nn.Module) -> Iterable[tuple[str, FakeQuantized]]:
    return ((n, m) for n, m in model.named_modules() if isinstance(m, FakeQuantized))
