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
import math
from typing import NamedTuple

import torch
from torch import nn

from .checks import (check_choice, check_finite, check_int, check_model, check_real, check_tensor, check_type,
                     describe, is_int, is_real)
from .data import ImageSplit, batches, check_split
from .measure import CompressedLayer, StoredTensor, weight_bytes, weight_layers
from .selection import greedy_knapsack, per_layer
from .train import model_device

__all__ = ["CALIBRATION_METHODS", "WEIGHT_SCHEMES", "check_bits", "integer_range", "QParams", "choose_qparams",
           "quantize", "dequantize", "fake_quantize", "check_weight", "weight_qparams", "ternary_scales",
           "ternarize", "binarize", "quantize_weight", "weight_code_bits", "calibrate_range", "FakeQuantized",
           "layer_inputs", "per_layer_bits", "quantize_model", "integer_linear", "mixed_precision_bits"]

CALIBRATION_METHODS = ("minmax", "percentile", "mse")
WEIGHT_SCHEMES = ("affine", "ternary", "binary")


MIN_BITS, MAX_BITS = 1, 16


def check_bits(bits: int, name: str = "bits") -> None:
    """The course's one check of a bit width (codes, codebook indices): an int in [1, 16].

    Raises:
        TypeError: not an int (``8.0``, ``True``). ValueError: outside [1, 16].
    """
    if not is_int(bits):
        raise TypeError(f"{name} must be an int in [{MIN_BITS}, {MAX_BITS}], got {describe(bits)}")
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"{name} must be in [{MIN_BITS}, {MAX_BITS}], got {bits}")


def _check_values(x: torch.Tensor, name: str) -> None:
    """A non-empty tensor of finite values: data that a range can be calibrated on."""
    check_tensor(x, name)
    if x.numel() == 0:
        raise ValueError(f"{name} is empty; quantization needs at least one value")
    check_finite(x, name, "clean the data before calibrating")


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
    ``1e-8`` (a constant tensor still gets a valid scale). Symmetric signed codes need 2 bits or
    more: with 1 bit, :math:`[-1, 0]` would round every value to 0.
    """
    check_bits(bits)
    check_type(signed, "signed", bool, "a bool", allow_none=True)
    check_int(axis, "axis", 0, allow_none=True)
    signed = symmetric if signed is None else signed
    if symmetric and signed and bits < 2:
        raise ValueError("bits must be >= 2 for symmetric signed codes (1 bit leaves the codes {-1, 0}, and every "
                         "weight would round to 0); for 1-bit weights use scheme='binary' (sign times a scale)")
    qmin, qmax = integer_range(bits, signed)
    lo, hi = _as_range_tensor(x_min, "x_min"), _as_range_tensor(x_max, "x_max")
    if lo.shape != hi.shape:
        raise ValueError(f"x_min and x_max must have the same shape, got {tuple(lo.shape)} and {tuple(hi.shape)}")
    if (lo > hi).any():
        raise ValueError(f"x_min must be <= x_max, got x_min={x_min} and x_max={x_max}")
    if axis is None and lo.dim() != 0:
        raise ValueError(f"per-tensor qparams need scalar x_min and x_max, got shape {tuple(lo.shape)}; "
                         "pass axis= for per-channel ranges")
    lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
    if symmetric:
        scale = torch.maximum(-lo, hi) / ((qmax - qmin) / 2)
        scale = torch.clamp(scale, min=1e-8)
        zero_point = torch.zeros_like(scale, dtype=torch.int64) + (0 if signed else (qmin + qmax + 1) // 2)
    else:
        scale = torch.clamp((hi - lo) / (qmax - qmin), min=1e-8)
        zero_point = torch.clamp(qmin - torch.round(lo / scale), qmin, qmax).to(torch.int64)
    return QParams(scale, zero_point, qmin, qmax, axis)


def _as_range_tensor(value: torch.Tensor | float, name: str) -> torch.Tensor:
    """A range bound as a float32 tensor, checked to be real and finite."""
    if not (is_real(value) or isinstance(value, torch.Tensor)):
        raise TypeError(f"{name} must be a real number or a tensor, got {describe(value)}")
    t = torch.as_tensor(value, dtype=torch.float32).detach()
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite, got {value}; calibrate on data without NaN or inf")
    return t


def _check_qparams(p: object, name: str = "qparams") -> None:
    check_type(p, name, QParams, "a QParams (from choose_qparams)")


def _broadcast(p: QParams, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero-point shaped to broadcast against ``x`` (per-channel along ``p.axis``).
    Raises ValueError if per-channel qparams do not match ``x``'s size along that axis."""
    if p.axis is None:
        return p.scale.to(x.device), p.zero_point.to(x.device)
    if p.axis >= x.dim() or x.shape[p.axis] != p.scale.numel():
        raise ValueError(f"per-channel qparams along axis {p.axis} hold {p.scale.numel()} scales, "
                         f"which does not match a tensor of shape {tuple(x.shape)}")
    shape = [1] * x.dim()
    shape[p.axis] = -1
    return p.scale.reshape(shape).to(x.device), p.zero_point.reshape(shape).to(x.device)


def quantize(x: torch.Tensor, p: QParams) -> torch.Tensor:
    """Integer codes :math:`\\mathrm{clamp}(\\mathrm{round}(x/s) + z, q_{min}, q_{max})` as int64.
    Rounds half to even and multiplies by :math:`1/s`, as PyTorch's kernels do. NaN or inf in
    ``x`` raise ValueError (their codes would be meaningless)."""
    _check_values(x, "x")
    _check_qparams(p, "p")
    scale, zero_point = _broadcast(p, x)
    return torch.clamp(torch.round(x * (1.0 / scale)) + zero_point, p.qmin, p.qmax).to(torch.int64)


def dequantize(q: torch.Tensor, p: QParams) -> torch.Tensor:
    """Real values :math:`s (q - z)` (float32) of integer codes ``q``."""
    check_tensor(q, "q")
    _check_qparams(p, "p")
    if q.is_floating_point() or q.is_complex():
        raise TypeError(f"q must hold integer codes, got dtype {q.dtype}; use quantize() to get them")
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
    check_tensor(x, "x")
    _check_qparams(p, "p")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    scale, zero_point = _broadcast(p, x)
    return _FakeQuantizeSTE.apply(x, scale, zero_point.to(x.dtype), p.qmin, p.qmax)


def check_weight(w: torch.Tensor, name: str = "w") -> None:
    """A weight to quantize: a non-empty floating-point tensor (out, ...) of finite values.

    Raises:
        TypeError: not a tensor, or not floating point. ValueError: empty, 0-D, or NaN / inf.
    """
    check_tensor(w, name)
    if w.dim() < 1 or w.numel() == 0:
        raise ValueError(f"{name} must be a non-empty weight tensor (out, ...), got shape {tuple(w.shape)}")
    if not w.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {w.dtype}")
    check_finite(w, name)


def weight_qparams(w: torch.Tensor, bits: int = 8, per_channel: bool = True) -> QParams:
    """Symmetric signed qparams for a weight, one scale per output channel (row) or per tensor."""
    check_weight(w)
    check_type(per_channel, "per_channel", bool, "a bool")
    w = w.detach()
    if per_channel:
        flat = w.reshape(w.shape[0], -1)
        return choose_qparams(flat.min(1).values, flat.max(1).values, bits, symmetric=True, axis=0)
    return choose_qparams(w.min(), w.max(), bits, symmetric=True)


# ----------------------------------------------------------------------------- ternary and binary

def ternary_scales(w: torch.Tensor, threshold_ratio: float = 0.7) -> tuple[torch.Tensor, torch.Tensor]:
    """TWN (Li et al. 2016): per output channel (row), the threshold
    :math:`\\Delta = 0.7 \\cdot \\overline{|W|}` and the scale
    :math:`\\alpha = \\overline{|W_i|}_{|W_i| > \\Delta}`. Returns ``(keep, alpha)``: the 0/1 mask
    of weights above the threshold, (out, rest), and alpha, (out, 1)."""
    check_weight(w)
    check_real(threshold_ratio, "threshold_ratio", 0)
    flat = w.detach().reshape(w.shape[0], -1)
    delta = threshold_ratio * flat.abs().mean(1, keepdim=True)
    keep = (flat.abs() > delta).to(w.dtype)
    alpha = (flat.abs() * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp(min=1)
    return keep, alpha


def ternarize(w: torch.Tensor, threshold_ratio: float = 0.7) -> torch.Tensor:
    """Ternary weights :math:`W_t = \\alpha\\,\\mathrm{sign}(W)\\,\\mathbb{1}[|W| > \\Delta]`, one
    :math:`\\alpha` per output channel (see :func:`ternary_scales`). A new tensor."""
    keep, alpha = ternary_scales(w, threshold_ratio)
    flat = w.detach().reshape(w.shape[0], -1)
    return (alpha * torch.sign(flat) * keep).reshape(w.shape)


def binarize(w: torch.Tensor) -> torch.Tensor:
    """Binary weights (XNOR-Net's BWN): :math:`\\alpha\\,\\mathrm{sign}(W)` with
    :math:`\\alpha = \\overline{|W|}` per output channel. A new tensor."""
    check_weight(w)
    flat = w.detach().reshape(w.shape[0], -1)
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
    check_choice(scheme, "scheme", WEIGHT_SCHEMES)
    if scheme == "affine":
        return fake_quantize(w, weight_qparams(w, bits, per_channel))
    low = ternarize(w.detach()) if scheme == "ternary" else binarize(w.detach())
    return _StraightThrough.apply(w, low)


def weight_code_bits(scheme: str, bits: int) -> int:
    """Bits per stored weight: ``bits`` for affine codes, 2 for ternary, 1 for binary."""
    check_choice(scheme, "scheme", WEIGHT_SCHEMES)
    return {"affine": bits, "ternary": 2, "binary": 1}[scheme]


# ----------------------------------------------------------------------------- calibration

def _fake_quantization_mse(x: torch.Tensor, p: QParams) -> float:
    """The mean of ``(dequantize(quantize(x, p), p) - x) ** 2``, with the same float32 arithmetic
    (exactly the same numbers) but without the int64 round trip and the input checks, which a
    calibration that tries 36 ranges on millions of activations would repeat 36 times."""
    scale, zero_point = _broadcast(p, x)
    codes = torch.clamp(torch.round(x * (1.0 / scale)) + zero_point, p.qmin, p.qmax)
    return ((codes - zero_point) * scale - x).pow(2).mean().item()


def calibrate_range(x: torch.Tensor, method: str = "minmax", bits: int = 8,
                    percentile: float = 99.99) -> tuple[float, float]:
    """The range ``(lo, hi)`` to quantize ``x`` over (asymmetric, unsigned codes):

    * ``"minmax"``: the observed extremes;
    * ``"percentile"``: the ``100 - percentile`` and ``percentile`` percentiles (outliers clipped);
    * ``"mse"``: the extremes shrunk by the factor in [0.3, 1] that minimises the mean squared
      error between ``x`` and its fake-quantized version (clipping traded against rounding).
    """
    check_choice(method, "method", CALIBRATION_METHODS)
    check_bits(bits)
    _check_values(x, "calibration data")
    x = x.detach().reshape(-1).float()
    lo, hi = x.min().item(), x.max().item()
    if method == "percentile":
        check_real(percentile, "percentile", 50, 100, low_open=True)
        sample = x if x.numel() <= 1_000_000 else x[torch.randperm(x.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000]]
        lo = torch.quantile(sample, 1 - percentile / 100).item()
        hi = torch.quantile(sample, percentile / 100).item()
    elif method == "mse":
        best = (float("inf"), lo, hi)
        for ratio in torch.linspace(0.3, 1.0, 36).tolist():
            error = _fake_quantization_mse(x, choose_qparams(lo * ratio, hi * ratio, bits))
            if error < best[0]:
                best = (error, lo * ratio, hi * ratio)
        lo, hi = best[1], best[2]
    return lo, hi


# ----------------------------------------------------------------------------- quantized layers

def _levels_to_bits(p: QParams) -> int:
    return int(math.log2(p.qmax - p.qmin + 1))


class FakeQuantized(CompressedLayer):
    """A Linear or Conv2d whose input activations and weights are fake-quantized.

    The float weight is kept (QAT updates it through the straight-through estimator); the forward
    pass sees ``quantize_weight(weight)``. Input qparams are fixed by calibration; ``None``
    leaves activations in float (weight-only quantization). The wrapped layer is used as it is
    (not copied): :func:`quantize_model` wraps layers of a deep copy.

    Stored (what :func:`course_lib.measure.weight_bytes` counts): the weight codes at
    ``weight_bits`` (2 for ternary, 1 for binary); one fp32 scale per output channel (or one per
    tensor); no weight zero-points (symmetric: they are 0); the bias at 32 bits (int32 in
    integer inference, fp32 otherwise); with quantized inputs, their scale (fp32) and
    zero-point (int32).
    """

    def __init__(self, layer: nn.Module, weight_scheme: str = "affine", weight_bits: int = 8,
                 per_channel: bool = True, input_qparams: QParams | None = None):
        super().__init__(layer)
        check_choice(weight_scheme, "weight_scheme", WEIGHT_SCHEMES)
        check_bits(weight_bits, "weight_bits")
        check_type(per_channel, "per_channel", bool, "a bool")
        if input_qparams is not None:
            _check_qparams(input_qparams, "input_qparams")
            if input_qparams.axis is not None:
                raise ValueError("input_qparams must be per tensor (axis=None)")
        self.weight_scheme = weight_scheme
        self.weight_bits = weight_bits
        self.per_channel = per_channel
        self.input_qparams = input_qparams
        self.activation_bits = None if input_qparams is None else _levels_to_bits(input_qparams)

    def weight_as_computed(self) -> torch.Tensor:
        return quantize_weight(self.layer.weight, self.weight_scheme, self.weight_bits, self.per_channel)


    def stored_tensors(self) -> list[StoredTensor]:
        w = self.layer.weight
        scales = w.shape[0] if (self.per_channel or self.weight_scheme != "affine") else 1
        stored = [StoredTensor("weight codes", self.weight_as_computed().detach(),
                               weight_code_bits(self.weight_scheme, self.weight_bits)),
                  StoredTensor("weight scales", torch.ones(scales), 32)]
        if self.layer.bias is not None:
            stored.append(StoredTensor("bias", self.layer.bias.detach(), 32))
        if self.input_qparams is not None:
            stored.append(StoredTensor("input scale and zero-point", torch.ones(2), 32))
        return stored

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_qparams is not None:
            x = fake_quantize(x, self.input_qparams)
        return self.run_layer(x, self.weight_as_computed())

    def extra_repr(self) -> str:
        bits = f"{self.weight_bits}-bit" if self.weight_scheme == "affine" else self.weight_scheme
        act = "float" if self.input_qparams is None else f"{self.activation_bits}-bit"
        return f"weights {bits}{' per-channel' if self.per_channel else ''}, inputs {act}"


def layer_inputs(model: nn.Module, split: ImageSplit, n: int = 1000) -> dict[str, torch.Tensor]:
    """The inputs each Linear/Conv2d layer receives on the first ``n`` examples (for calibration)."""
    check_model(model)
    check_split(split)
    check_int(n, "n", 1)
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


def per_layer_bits(model: nn.Module, bits: int | dict[str, int], name: str) -> dict[str, int]:
    """``{layer: bits}`` for every weight layer (an int) or the named ones (a dict), checked."""
    layers = weight_layers(model)
    if not layers:
        raise ValueError("model has no Linear or Conv2d layer to quantize")
    return per_layer(bits, layers, name, check_bits)


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
        calibration: training or validation images, never the test set.
        weight_scheme: ``"affine"``, ``"ternary"`` or ``"binary"`` (then ``weight_bits`` is ignored).

    Raises:
        TypeError / ValueError: naming the argument; the given model is never changed.
    """
    check_model(model)
    check_choice(weight_scheme, "weight_scheme", WEIGHT_SCHEMES)
    check_choice(method, "method", CALIBRATION_METHODS)
    check_type(per_channel, "per_channel", bool, "a bool")
    bits = per_layer_bits(model, weight_bits, "weight_bits")
    if weight_scheme == "affine" and any(b < 2 for b in bits.values()):
        raise ValueError(f"weight_bits must be >= 2 for affine weights, got {weight_bits!r} (1 bit leaves the symmetric "
                         f"codes {{-1, 0}}, and every weight would round to 0); for 1-bit weights use "
                         f"weight_scheme='binary'")
    if activation_bits is not None:
        check_bits(activation_bits, "activation_bits")
        if calibration is None:
            raise ValueError("activation quantization needs calibration data: pass calibration=")
        check_split(calibration, "calibration")
        check_int(n_calibration, "n_calibration", 1)
    inputs = layer_inputs(model, calibration, n_calibration) if activation_bits is not None else {}
    quantized = copy.deepcopy(model)
    for name, b in bits.items():
        input_qparams = None
        if activation_bits is not None:
            lo, hi = calibrate_range(inputs[name], method, activation_bits)
            input_qparams = choose_qparams(lo, hi, activation_bits)
        quantized.set_submodule(name, FakeQuantized(quantized.get_submodule(name), weight_scheme, b, per_channel,
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
    for t, name in ((x_q, "x_q"), (w_q, "w_q")):
        check_tensor(t, name)
        if t.is_floating_point():
            raise TypeError(f"{name} must hold integer codes, got dtype {t.dtype}")
    for p, name in ((x_p, "x_p"), (w_p, "w_p"), (out_p, "out_p")):
        _check_qparams(p, name)
    if x_p.axis is not None or out_p.axis is not None:
        raise ValueError("x_p and out_p must be per tensor (axis=None)")
    if x_q.dim() != 2 or w_q.dim() != 2 or x_q.shape[1] != w_q.shape[1]:
        raise ValueError(f"x_q must be (B, in) and w_q (out, in), got {tuple(x_q.shape)} and {tuple(w_q.shape)}")
    if w_p.axis not in (None, 0) or (w_p.axis == 0 and w_p.scale.numel() != w_q.shape[0]):
        raise ValueError(f"w_p must be per tensor or per output channel (axis 0, {w_q.shape[0]} scales)")
    if bias is not None:
        _check_values(bias, "bias")
        if bias.shape != (w_q.shape[0],):
            raise ValueError(f"bias must have shape ({w_q.shape[0]},), got {tuple(bias.shape)}")
    acc = (x_q - x_p.zero_point).to(torch.int32) @ w_q.to(torch.int32).T        # (B, out) int32
    s_w = w_p.scale if w_p.axis is None else w_p.scale.reshape(1, -1)
    multiplier = x_p.scale * s_w                                                 # s_x * s_w
    if bias is not None:
        acc = acc + torch.round(bias / multiplier).to(torch.int32)
    y = torch.round(acc.to(torch.float64) * (multiplier / out_p.scale).to(torch.float64)) + out_p.zero_point
    return torch.clamp(y, out_p.qmin, out_p.qmax).to(torch.int64)


# ----------------------------------------------------------------------------- mixed precision

def _check_sensitivity(sensitivity: object, layers: dict[str, nn.Module]) -> None:
    if not isinstance(sensitivity, dict) or not sensitivity:
        raise TypeError("sensitivity must be a non-empty dict {layer: {bits: accuracy}}")
    unknown = set(sensitivity) - set(layers)
    if unknown:
        raise ValueError(f"sensitivity names unknown layers {sorted(unknown)}; layers: {list(layers)}")
    for layer, scan in sensitivity.items():
        if not isinstance(scan, dict) or not scan:
            raise ValueError(f"sensitivity[{layer!r}] must be a non-empty dict {{bits: accuracy}}")
        for b, accuracy in scan.items():
            check_bits(b, f"bits in sensitivity[{layer!r}]")
            check_real(accuracy, f"sensitivity[{layer!r}][{b}]", 0, 1)


def mixed_precision_bits(model: nn.Module, sensitivity: dict[str, dict[int, float]],
                         budget_bytes: int) -> dict[str, int]:
    """Choose bits per layer so that the model's weights fit ``budget_bytes`` at the least
    accuracy cost (weight-only affine quantization, per channel).

    ``sensitivity[layer][bits]`` is the accuracy, on validation data, with only that layer
    quantized to ``bits``. Every layer starts at its highest scanned bits; while the model is
    over budget, the layer whose next lower step loses the least accuracy per byte saved goes
    down one step (a greedy knapsack, :func:`course_lib.selection.greedy_knapsack`; ties go to
    the layer listed first). Each layer's bytes at
    each width come from :func:`course_lib.measure.weight_bytes` (codes, scales and bias), the
    rest of the model's parameters at fp32. Raises ValueError if even the lowest bits do not fit.
    """
    check_model(model)
    layers = weight_layers(model)
    _check_sensitivity(sensitivity, layers)
    check_real(budget_bytes, "budget_bytes", 0, low_open=True)
    # Bytes of each scanned layer at each scanned width, and of everything else at fp32.
    table = {layer: {b: weight_bytes(FakeQuantized(layers[layer], "affine", b)) for b in scan}
             for layer, scan in sensitivity.items()}
    rest = weight_bytes(model) - sum(weight_bytes(layers[layer]) for layer in sensitivity)
    smallest = rest + sum(table[layer][min(scan)] for layer, scan in sensitivity.items())
    if smallest > budget_bytes:
        raise ValueError(f"budget_bytes {budget_bytes} cannot be met even at the lowest scanned "
                         f"bits ({smallest} bytes needed)")
    options = {layer: [(b, scan[b], table[layer][b]) for b in sorted(scan, reverse=True)]
               for layer, scan in sensitivity.items()}
    return greedy_knapsack(options, budget_bytes, rest)
