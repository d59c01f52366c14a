"""From ONNX Runtime's int8 model to a microcontroller: integer-only inference, step by step.

:func:`course_lib.runtime.quantize_onnx_int8` writes a QDQ model: int8 weights, int32 biases and
uint8 activations, each tensor with a scale :math:`s` and a zero point :math:`z`, so that a real
value is :math:`r = s\\,(q - z)` (Jacob et al. 2018, "Quantization and Training of Neural
Networks for Efficient Integer-Arithmetic-Only Inference", eq. 1). ONNX Runtime fuses that graph
into integer kernels (``QLinearConv``, ``QGemm``). This module reads the same numbers back as plain
arrays and runs them in NumPy with integers only, so that nothing is hidden.

**One layer in integers** (Jacob et al. 2018, eqs. 2-7). For an output channel :math:`c` with
weights :math:`q_w` (scale :math:`s_w[c]`, zero point :math:`z_w`), input codes :math:`q_x`
(:math:`s_x, z_x`), output codes :math:`q_y` (:math:`s_y, z_y`) and the bias stored as int32
codes :math:`q_b = \\mathrm{round}(b / (s_x s_w[c]))`:

.. math:: a[c] = q_b[c] + \\sum_k (q_x[k] - z_x)\\,(q_w[c, k] - z_w)
          \\qquad \\text{(int32 accumulator, eq. 7 without the zero-point expansion)}

.. math:: q_y[c] = \\mathrm{clamp}\\big(z_y + \\mathrm{round}(M[c]\\, a[c]),\\; 0,\\; 255\\big),
          \\qquad M[c] = \\frac{s_x\\, s_w[c]}{s_y} \\qquad \\text{(eqs. 4-5)}

A ReLU costs nothing: its output range starts at 0, so ONNX Runtime's quantizer drops the node
and the clamp to :math:`q_y \\geq z_y` (here :math:`z_y = 0`) does the job. Max pooling and
flattening act on the codes directly (the map :math:`q \\mapsto s(q - z)` is increasing).
A grouped convolution sums over the input channels of its output's group only; a depthwise
one (MobileNet's, one group per channel) is the case ``groups = C``.

**How ONNX Runtime rounds** (read in its source, ``qlinearconv.cc``, ``quant_gemm.cc`` and MLAS's
``MlasRequantizeOutput`` / ``ConvSymKernel*.S``): :math:`M` is a float32 computed as
``(s_x * s_w[c]) / s_y``; the accumulator is converted to float32, multiplied by :math:`M` in
float32, clamped to :math:`[-z_y, 255 - z_y]`, rounded half to even (``cvtps2dq``), and shifted
by :math:`z_y`. The input is quantized as ``clamp(round_half_even(x / s_x))`` with a true float32
division (``QuantizeLinear``), and the logits come back as ``float32(q - z) * s`` (``DequantizeLinear``).
:func:`forward_int8` with ``requantization="float"`` does exactly that, and its logits equal ONNX
Runtime's bit for bit. The int32 sums are exact in both, with one exception on ONNX Runtime's side:
x86 CPUs without VNNI multiply u8 by s8 with ``vpmaddubsw``, which saturates pairs of products
at int16 (ONNX Runtime's quantization guide warns of it). With VNNI (``vpdpbusd``), AMX or Arm's
kernels, nothing saturates. The course's weights are quantized so that no pair can saturate
(:func:`course_lib.runtime.saturation_safe_range`), so the sums are exact on every CPU.

**What a saturating CPU computes** (read in ONNX Runtime's MLAS: ``QgemmU8S8KernelAvx2.S``,
``ConvSymKernelAvx2.S``, ``qlinearconv.cc``): the raw codes are multiplied, :math:`x \\in [0, 255]`
by :math:`w \\in [-127, 127]`, and the products are added in pairs :math:`(2j, 2j+1)` of the
reduction axis, each pair clamped to :math:`[-32768, 32767]`; the zero point is removed afterwards
(:math:`-z_x \\sum_k w_k`, exact). A convolution's reduction axis is ordered (kernel row, kernel
column, input channel) within its group, as ONNX Runtime's NHWC im2col and its ``ConvSym`` kernels
both order it; a fully connected layer's is its input features. Depthwise convolutions (one input
and one output channel per group) run in exact 32-bit kernels. ``forward_int8(...,
accumulation="int16_pairs")`` computes that, so a learner sees on any machine what an AVX2-only
laptop gets.

A microcontroller without a floating-point unit writes :math:`M = M_0\\, 2^{n - 31}` with an int32
:math:`M_0 \\in [2^{30}, 2^{31})` (eq. 6) and requantizes with one 64-bit multiply and shifts, as
gemmlowp, TensorFlow Lite Micro and CMSIS-NN do: ``requantization="fixed_point"``. Its results can
differ from the float path by one code where :math:`M a` lies within rounding error of a half.

The ONNX operator specifications (QuantizeLinear, DequantizeLinear, QLinearConv, MaxPool, Flatten,
Gemm) define each step; ``export_c_header`` writes the arrays for a C compiler. Where ONNX Runtime
spends its time, and int8 against fp32 timed, are in :mod:`course_lib.runtime`
(``operator_profile``, ``int8_speedup``).
Taught in notebook 10, the capstone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .checks import check_choice, check_type
from .runtime import check_file_path, check_onnx_file, load_onnx_graph

__all__ = ["REQUANTIZATIONS", "ACCUMULATIONS", "SUPPORTED_OPS", "CHUNK", "QuantizedConv2d", "QuantizedLinear",
           "MaxPool2d", "Flatten", "Layer", "Int8Model", "Int8Output", "combined_scale", "quantize_linear",
           "dequantize_linear", "requantize", "quantize_multiplier", "requantize_fixed_point", "conv2d_accumulate",
           "linear_accumulate", "int16_pair_error", "conv2d_int16_pair_error", "max_pool2d_codes",
           "read_int8_model", "forward_int8", "C_TYPES", "flash_bytes", "export_c_header"]

UINT8_MIN, UINT8_MAX = 0, 255
REQUANTIZATIONS = ("float", "fixed_point")
ACCUMULATIONS = ("int32", "int16_pairs")
INT16_MIN, INT16_MAX = -32768, 32767
SUPPORTED_OPS = ("QuantizeLinear", "DequantizeLinear", "Conv", "Gemm", "Relu", "MaxPool", "Flatten")
CHUNK = 256          # images per slice in forward_int8: bounds the im2col buffer (conv2 of LeNet-5: 33 MB)


# ----------------------------------------------------------------------------- the arrays

@dataclass(frozen=True, eq=False)
class QuantizedConv2d:
    """A 2-D convolution in integers: ``weight`` (O, C / groups, kh, kw) int8, ``bias`` (O,) int32
    codes of scale :math:`s_x s_w`, ``weight_scale`` (O,) float32 and ``weight_zero_point`` (O,)
    int8 (one per output channel), the input's and output's uint8 quantization, ONNX's ``stride``
    (sh, sw), ``padding`` (top, left, bottom, right), ``dilation`` and ``groups`` (the input and
    output channels split into ``groups`` blocks, block :math:`g` of the output reading block
    :math:`g` of the input only: ``groups = C = O`` is a depthwise convolution), and whether a
    ReLU is fused."""
    name: str
    weight: np.ndarray
    bias: np.ndarray
    weight_scale: np.ndarray
    weight_zero_point: np.ndarray
    input_scale: np.float32
    input_zero_point: int
    output_scale: np.float32
    output_zero_point: int
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    relu: bool = False
    groups: int = 1

    @property
    def multiplier(self) -> np.ndarray:
        """:math:`M[c] = s_x s_w[c] / s_y`, (O,) float32, computed in float32 in ONNX Runtime's order."""
        return combined_scale(self.input_scale, self.weight_scale, self.output_scale)


@dataclass(frozen=True, eq=False)
class QuantizedLinear:
    """A fully connected layer in integers: ``weight`` (N, K) int8 (PyTorch's layout, one row per
    output), ``bias`` (N,) int32, per-output ``weight_scale`` and ``weight_zero_point``, the input's
    and output's uint8 quantization, and whether a ReLU is fused."""
    name: str
    weight: np.ndarray
    bias: np.ndarray
    weight_scale: np.ndarray
    weight_zero_point: np.ndarray
    input_scale: np.float32
    input_zero_point: int
    output_scale: np.float32
    output_zero_point: int
    relu: bool = False

    @property
    def multiplier(self) -> np.ndarray:
        """:math:`M[n] = s_x s_w[n] / s_y`, (N,) float32."""
        return combined_scale(self.input_scale, self.weight_scale, self.output_scale)


@dataclass(frozen=True)
class MaxPool2d:
    """Max pooling on uint8 codes: ``kernel`` (kh, kw), ``stride``, ``padding`` (top, left, bottom, right)."""
    name: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)


@dataclass(frozen=True)
class Flatten:
    """(B, C, H, W) -> (B, C*H*W), in PyTorch's (C, H, W) order."""
    name: str


Layer = QuantizedConv2d | QuantizedLinear | MaxPool2d | Flatten


@dataclass(frozen=True, eq=False)
class Int8Model:
    """An int8 network as plain arrays: the input's quantization (float32 in, uint8 codes out),
    the layers in order, and the output's quantization (uint8 codes back to float32 logits).
    Every array is read-only, so no forward pass can change it."""
    name: str
    input_shape: tuple[int, ...]
    input_scale: np.float32
    input_zero_point: int
    layers: tuple[Layer, ...]
    output_scale: np.float32
    output_zero_point: int


class Int8Output(NamedTuple):
    """What :func:`forward_int8` returns: the output ``codes`` (B, classes) uint8 and the
    ``logits`` :math:`s_y (q - z_y)` (B, classes) float32."""
    codes: np.ndarray
    logits: np.ndarray


# ----------------------------------------------------------------------------- primitives

def combined_scale(input_scale, weight_scale, output_scale) -> np.ndarray:
    """:math:`M = (s_x \\cdot s_w) / s_y` in float32, rounding after each operation as ONNX
    Runtime's ``ComputeOutputScale`` does (so the last bit agrees), one value per output channel."""
    product = np.float32(input_scale) * np.asarray(weight_scale, dtype=np.float32)
    return (product / np.float32(output_scale)).astype(np.float32)


def quantize_linear(x: np.ndarray, scale, zero_point: int) -> np.ndarray:
    """ONNX QuantizeLinear to uint8: :math:`q = \\mathrm{clamp}(\\mathrm{round}(x / s), -z, 255 - z) + z`,
    with a float32 division and rounding half to even. ``x`` float32, any shape -> uint8, same shape.

    Raises:
        ValueError: ``scale`` not a finite number > 0, or ``zero_point`` not an int in [0, 255].
    """
    _check_scale_and_zero_point(scale, zero_point)
    v = np.asarray(x, dtype=np.float32) / np.float32(scale)
    v = np.clip(v, np.float32(UINT8_MIN - zero_point), np.float32(UINT8_MAX - zero_point))
    return (np.rint(v).astype(np.int32) + zero_point).astype(np.uint8)


def _check_scale_and_zero_point(scale, zero_point) -> None:
    """A uint8 quantization: ``scale`` a finite number > 0, ``zero_point`` an int in [0, 255]."""
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, float, np.integer, np.floating)) \
            or not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    if isinstance(zero_point, (bool, np.bool_)) or not isinstance(zero_point, (int, np.integer)) \
            or not UINT8_MIN <= zero_point <= UINT8_MAX:
        raise ValueError(f"zero_point must be an int in [{UINT8_MIN}, {UINT8_MAX}] (uint8 codes), got {zero_point!r}")


def dequantize_linear(q: np.ndarray, scale, zero_point: int) -> np.ndarray:
    """ONNX DequantizeLinear: :math:`r = s\\,(q - z)`, as float32 (``float(q - z) * s``)."""
    return (q.astype(np.int32) - zero_point).astype(np.float32) * np.float32(scale)


def requantize(acc: np.ndarray, multiplier: np.ndarray, zero_point: int, relu: bool = False,
               channel_axis: int = 1) -> np.ndarray:
    """int32 accumulators -> uint8 codes as ONNX Runtime's ``MlasRequantizeOutput`` does:
    ``float32(acc) * M`` in float32, clamped to :math:`[-z, 255 - z]` (from :math:`0` up with
    ``relu``), rounded half to even, plus :math:`z`. ``multiplier`` has one value per channel
    along ``channel_axis`` of ``acc``."""
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    v = acc.astype(np.float32) * multiplier.reshape(shape)
    low = max(UINT8_MIN - zero_point, 0) if relu else UINT8_MIN - zero_point
    v = np.clip(v, np.float32(low), np.float32(UINT8_MAX - zero_point))
    return (np.rint(v).astype(np.int32) + zero_point).astype(np.uint8)


def quantize_multiplier(multiplier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point form of :math:`M > 0` (Jacob et al. 2018, eq. 6; TensorFlow Lite's
    ``QuantizeMultiplier``): :math:`M \\approx M_0 \\cdot 2^{n - 31}` with an int32
    :math:`M_0 \\in [2^{30}, 2^{31})` and an int32 shift :math:`n` (negative: shift right).
    Returns ``(M0, n)``, both int32 arrays shaped like ``multiplier``; :math:`M = 0` gives (0, 0).

    Raises:
        ValueError: a multiplier that is negative, NaN or infinite (a requantization scale
            :math:`s_x s_w / s_y` is always >= 0).
    """
    m = np.asarray(multiplier, dtype=np.float64)
    if not np.isfinite(m).all() or (m < 0).any():
        raise ValueError(f"multiplier must hold finite numbers >= 0 (s_x * s_w / s_y), got "
                         f"{m[~np.isfinite(m) | (m < 0)].ravel()[:3].tolist()}")
    fraction, exponent = np.frexp(m)                                 # m = fraction * 2**exponent, fraction in [0.5, 1)
    m0 = np.floor(fraction * 2.0 ** 31 + 0.5).astype(np.int64)       # round half away from zero (std::round)
    carry = m0 == 2 ** 31                                            # fraction rounded up to 1.0
    m0 = np.where(carry, m0 // 2, m0)
    exponent = np.where(carry, exponent + 1, exponent)
    tiny = (exponent < -31) | (m0 == 0)                             # below 2**-32: rounds to zero
    return np.where(tiny, 0, m0).astype(np.int32), np.where(tiny, 0, exponent).astype(np.int32)


def requantize_fixed_point(acc: np.ndarray, m0: np.ndarray, shift: np.ndarray, zero_point: int,
                           relu: bool = False, channel_axis: int = 1) -> np.ndarray:
    """int32 accumulators -> uint8 codes with integers only, as TensorFlow Lite Micro and
    CMSIS-NN do (``MultiplyByQuantizedMultiplier``): shift left by :math:`\\max(n, 0)`, take the
    rounded high half of the 64-bit product with :math:`M_0` (``SaturatingRoundingDoublingHighMul``),
    then a rounding right shift by :math:`\\max(-n, 0)` (``RoundingDivideByPOT``), add :math:`z`, clamp."""
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    m0 = m0.astype(np.int64).reshape(shape)
    left = np.maximum(shift, 0).astype(np.int64).reshape(shape)
    right = np.maximum(-shift, 0).astype(np.int64).reshape(shape)
    a = acc.astype(np.int64)
    if left.any():                                                   # M >= 1: shift left first, saturating
        a = np.clip(a << left, -2 ** 31, 2 ** 31 - 1)
    t = a * m0                                                       # exact in int64
    t += np.where(t >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))   # the nudge: half, toward t's sign
    high = np.abs(t) >> 31                                           # C's division truncates toward zero:
    np.negative(high, out=high, where=t < 0)                         # divide |t|, then restore the sign
    mask = (np.int64(1) << right) - 1
    threshold = (mask >> 1) + (high < 0)
    v = (high >> right) + ((high & mask) > threshold) + zero_point
    return np.clip(v, zero_point if relu else UINT8_MIN, UINT8_MAX).astype(np.uint8)


def _exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """An integer matrix product, computed in float64 (BLAS) and returned as int32. Exact: every
    product of two 9-bit codes and every partial sum of an int32 accumulator is an integer far
    below :math:`2^{53}`, which float64 holds exactly, in whatever order the sums are taken."""
    return (a.astype(np.float64, copy=False) @ b.astype(np.float64, copy=False)).astype(np.int32)


def _conv_windows(q: np.ndarray, layer: QuantizedConv2d) -> np.ndarray:
    """The windows a convolution reads, as raw uint8 codes: (B, groups, C / groups, Ho, Wo, kh, kw),
    the padding holding the code :math:`z_x` (the real value 0), as in ONNX Runtime's im2col."""
    top, left, bottom, right = layer.padding
    x = np.pad(q, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=layer.input_zero_point)
    _, group_c, kh, kw = layer.weight.shape                         # group_c = C / groups
    (sh, sw), (dh, dw) = layer.stride, layer.dilation
    windows = np.lib.stride_tricks.sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]                  # (B, C, Ho, Wo, kh, kw)
    b, _, ho, wo = windows.shape[:4]
    return windows.reshape(b, layer.groups, group_c, ho, wo, kh, kw)


def conv2d_accumulate(q: np.ndarray, layer: QuantizedConv2d) -> np.ndarray:
    """The int32 accumulators of a convolution: :math:`a = q_b + \\sum (q_x - z_x)(q_w - z_w)`
    over each window (and, with groups, over the input channels of the output's group only).
    ``q`` (B, C, H, W) uint8 -> (B, O, Ho, Wo) int32. Padding holds the code :math:`z_x` (the real
    value 0), as in ONNX Runtime's im2col."""
    windows = _conv_windows(q, layer)
    b, g, group_c, ho, wo, kh, kw = windows.shape
    out_c = layer.weight.shape[0]
    cols = windows.transpose(1, 0, 3, 4, 2, 5, 6).reshape(g, b * ho * wo, group_c * kh * kw)   # im2col per group
    cols = cols.astype(np.float64) - layer.input_zero_point          # small integers: exact in float64
    w = layer.weight.astype(np.int32) - layer.weight_zero_point.astype(np.int32)[:, None, None, None]
    w = w.reshape(g, out_c // g, group_c * kh * kw)                  # (g, O / g, C / g * kh * kw)
    acc = _exact_matmul(cols, w.transpose(0, 2, 1))                  # (g, B*Ho*Wo, O / g) int32
    acc = acc.transpose(1, 0, 2).reshape(b * ho * wo, out_c) + layer.bias
    return acc.reshape(b, ho, wo, out_c).transpose(0, 3, 1, 2)


def linear_accumulate(q: np.ndarray, layer: QuantizedLinear) -> np.ndarray:
    """The int32 accumulators of a fully connected layer: (B, K) uint8 -> (B, N) int32."""
    w = layer.weight.astype(np.int32) - layer.weight_zero_point.astype(np.int32)[:, None]
    return _exact_matmul(q.astype(np.int32) - layer.input_zero_point, w.T) + layer.bias


def int16_pair_error(codes: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """What adding products in saturating int16 pairs (``vpmaddubsw``) changes in exact sums.

    For rows of raw uint8 codes :math:`x` (R, K) and int8 weights :math:`w` (O, K), each pair
    :math:`P_{j} = x_{2j} w_{o,2j} + x_{2j+1} w_{o,2j+1}` is clamped to int16; the result is
    :math:`\\sum_j (\\mathrm{clamp}(P_j) - P_j)`, (R, O) int32, zero when nothing saturates. A pair
    can leave int16 only if :math:`(x_{2j} + x_{2j+1}) \\max|w| > 32767`, so only those pairs of
    codes are computed. An odd K is padded with a zero, as the kernels pad it.
    """
    w = weight.astype(np.int32)
    if w.shape[1] % 2:
        codes = np.pad(codes, ((0, 0), (0, 1)))
        w = np.pad(w, ((0, 0), (0, 1)))
    first, second = codes[:, 0::2].astype(np.int32), codes[:, 1::2].astype(np.int32)     # (R, K / 2)
    rows, pairs = np.nonzero((first + second) * int(np.abs(w).max(initial=0)) > INT16_MAX)
    sums = (first[rows, pairs, None] * w[:, 2 * pairs].T
            + second[rows, pairs, None] * w[:, 2 * pairs + 1].T)     # (n, O): those pairs, every output
    error = np.zeros((codes.shape[0], w.shape[0]), dtype=np.int32)
    np.add.at(error, rows, np.clip(sums, INT16_MIN, INT16_MAX) - sums)
    return error


def conv2d_int16_pair_error(q: np.ndarray, layer: QuantizedConv2d) -> np.ndarray:
    """:func:`int16_pair_error` for a convolution: (B, C, H, W) uint8 -> (B, O, Ho, Wo) int32, each
    group's reduction ordered as ONNX Runtime's kernels read it (kernel row, kernel column, input
    channel); zero for a depthwise convolution (exact kernels)."""
    windows = _conv_windows(q, layer)
    b, g, group_c, ho, wo, kh, kw = windows.shape
    out_c = layer.weight.shape[0]
    if group_c == 1 and out_c == g:                                  # depthwise: 32-bit kernels
        return np.zeros((b, out_c, ho, wo), dtype=np.int32)
    cols = windows.transpose(1, 0, 3, 4, 5, 6, 2).reshape(g, b * ho * wo, kh * kw * group_c)
    w = layer.weight.transpose(0, 2, 3, 1).reshape(g, out_c // g, kh * kw * group_c)
    error = np.concatenate([int16_pair_error(cols[i], w[i]) for i in range(g)], axis=1)
    return error.reshape(b, ho, wo, out_c).transpose(0, 3, 1, 2)


def max_pool2d_codes(q: np.ndarray, layer: MaxPool2d) -> np.ndarray:
    """Max pooling of uint8 codes (B, C, H, W) -> (B, C, Ho, Wo). Padding holds code 0, which
    never wins a window that holds a real pixel (like ONNX's :math:`-\\infty` padding)."""
    top, left, bottom, right = layer.padding
    x = np.pad(q, ((0, 0), (0, 0), (top, bottom), (left, right)))
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    ho, wo = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    # The maximum over the window, one offset (i, j) of the window at a time: each offset is a strided view of the
    # input, and an element-wise maximum of whole views is much faster than a reduction over window axes.
    out = None
    for i in range(kh):
        for j in range(kw):
            view = x[:, :, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw]
            out = view.copy() if out is None else np.maximum(out, view, out=out)
    return out


# ----------------------------------------------------------------------------- reading ONNX Runtime's int8 model

def _attributes(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _layer_name(node, index: int, taken: set[str]) -> str:
    """A C identifier for a node: ``'/conv1/Conv'`` -> ``'conv1'``; unnamed nodes get ``layer<i>``."""
    parts = [p for p in node.name.split("/") if p]
    name = re.sub(r"\W", "_", parts[0]) if parts else f"layer{index}"
    if not re.match(r"[A-Za-z_]", name):
        name = "_" + name
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _frozen(a, dtype) -> np.ndarray:
    """A read-only copy of ``a`` as ``dtype``."""
    a = np.array(a, dtype=dtype)
    a.setflags(write=False)
    return a


def _unsupported(node, why: str) -> NotImplementedError:
    return NotImplementedError(f"{node.op_type} node {node.name!r}: {why}; course_lib.deploy reads "
                               f"sequential QDQ models made of {', '.join(SUPPORTED_OPS)}")


def read_int8_model(path: Path | str) -> Int8Model:
    """Read the arrays of an int8 QDQ model written by :func:`course_lib.runtime.quantize_onnx_int8`
    (the ``onnx`` package, ``onnx.numpy_helper``): per layer, int8 weights, int32 biases, weight
    scales and zero points (per output channel), input and output scales and uint8 zero points.

    The graph is walked in order, each node read by the :class:`_GraphReader` method that
    :data:`_READERS` names for its operator. ``QuantizeLinear(x)`` gives the input's quantization;
    ``DequantizeLinear`` of a constant is a weight or a bias; each ``Conv`` / ``Gemm`` reads the
    dequantized codes of the layer before, and the ``QuantizeLinear`` after it (through an optional
    ``Relu``) gives its output's quantization; ``MaxPool`` and ``Flatten`` keep the quantization of
    their input (ONNX Runtime then runs them on the codes). The final ``DequantizeLinear`` gives
    the output's quantization.

    Args:
        path: an existing ``.onnx`` file in QDQ format (uint8 activations, int8 weights).

    Returns:
        An :class:`Int8Model` whose arrays are read-only copies.

    Raises:
        TypeError: ``path`` is not a str or Path.
        ValueError: the file does not exist, is not an ONNX model, or is a float model (no
            QuantizeLinear / DequantizeLinear).
        NotImplementedError: an operator outside :data:`SUPPORTED_OPS` (named with its node),
            non-2-D convolutions, int8 activations, a pooling that changes the
            quantization, or a graph that is not one chain of layers.
    """
    path = check_onnx_file(path, "path")
    from onnx import numpy_helper

    graph = load_onnx_graph(path, "path")
    if not any(n.op_type == "DequantizeLinear" for n in graph.node):
        raise ValueError(f"path {str(path)!r} holds a float model (no QuantizeLinear / DequantizeLinear "
                         f"nodes); quantize it first with course_lib.runtime.quantize_onnx_int8")
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(_attributes(node)["value"])
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise NotImplementedError(f"path {str(path)!r}: course_lib.deploy reads models with one input and one "
                                  f"output, got {len(inputs)} and {len(graph.output)}")
    input_shape = tuple(d.dim_value for d in inputs[0].type.tensor_type.shape.dim[1:])
    reader = _GraphReader(consts, inputs[0].name)
    for index, node in enumerate(graph.node):
        if node.op_type == "Constant":
            continue
        read = _READERS.get(node.op_type)
        if read is None:
            raise _unsupported(node, "this operator is not supported")
        read(reader, node, index)
    output = graph.output[0].name
    if reader.input_q is None or reader.pending or output not in reader.views or \
            reader.views[output][2] != reader.latest:
        raise NotImplementedError(f"path {str(path)!r}: the graph is not one chain QuantizeLinear -> layers -> "
                                  f"DequantizeLinear (the output {output!r} is not the last layer's dequantized codes)")
    scale, zero_point, _ = reader.views[output]
    return Int8Model(path.name, input_shape, *reader.input_q, tuple(reader.layers), scale, zero_point)


class _GraphReader:
    """What :func:`read_int8_model` knows while it walks the graph, and one method per operator.

    ``floats``: float tensors (the input, maybe flattened: flattening commutes with quantizing);
    ``codes``: uint8 activations, name -> (scale, zero point); ``views``: DequantizeLinear of
    activations, name -> (scale, zero point, codes' name); ``weights``: DequantizeLinear of
    constants, name -> (values, scale, zero point, axis); ``pending``: float outputs of layers
    waiting for their QuantizeLinear; ``latest``: the codes the next layer must read."""

    def __init__(self, consts: dict[str, np.ndarray], input_name: str):
        self.consts = consts
        self.floats = {input_name}
        self.codes: dict[str, tuple] = {}
        self.views: dict[str, tuple] = {}
        self.weights: dict[str, tuple] = {}
        self.pending: dict[str, dict] = {}
        self.layers: list[Layer] = []
        self.taken: set[str] = set()
        self.input_q: tuple | None = None
        self.latest: str | None = None

    def qparams(self, node) -> tuple[np.ndarray, np.ndarray | None]:
        """A Quantize/DequantizeLinear node's constant scale and zero point (None if absent)."""
        scale = self.consts.get(node.input[1])
        zero = self.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if scale is None:
            raise _unsupported(node, "its scale is not a constant")
        return scale, zero

    def activation(self, node, name: str) -> tuple:
        """(scale, zero point, codes' name) of the dequantized codes a layer reads: those of the layer before."""
        if name not in self.views or self.views[name][2] != self.latest:
            raise _unsupported(node, f"its input {name!r} is not the dequantized output of the layer before")
        return self.views[name]

    def dequantize_linear(self, node, index: int) -> None:
        """A weight or a bias (a constant), or a view of uint8 codes as floats."""
        scale, zero = self.qparams(node)
        source, out = node.input[0], node.output[0]
        if source in self.consts:
            zero = np.zeros_like(self.consts[source]) if zero is None else zero
            self.weights[out] = (self.consts[source], scale, zero, _attributes(node).get("axis", 1))
        elif source in self.codes:
            self.views[out] = (*self.codes[source], source)
        else:
            raise _unsupported(node, f"its input {source!r} is neither a constant nor uint8 codes")

    def quantize_linear(self, node, index: int) -> None:
        """The input's quantization, or the output quantization that completes a pending layer."""
        scale, zero = self.qparams(node)
        if zero is None or zero.dtype != np.uint8 or scale.size != 1:
            raise _unsupported(node, "activations must be uint8 with one scale per tensor "
                                     "(quantize_onnx_int8's QUInt8)")
        q = (np.float32(scale.reshape(())), int(zero.reshape(())))
        source = node.input[0]
        if source in self.floats:
            if self.input_q is not None:
                raise _unsupported(node, "the input is quantized twice")
            self.input_q = q
        elif source in self.pending:
            spec = self.pending.pop(source)
            layer = spec.pop("layer")
            if layer is None:                                       # a Conv or Gemm: its output's quantization
                kind = spec.pop("kind")
                layer = kind(**spec, output_scale=q[0], output_zero_point=q[1])
            elif (spec["input_scale"], spec["input_zero_point"]) != q:
                raise _unsupported(node, f"{type(layer).__name__} {layer.name!r} changes the "
                                         f"quantization, which needs a requantization step")
            self.layers.append(layer)
        else:
            raise _unsupported(node, f"its input {source!r} is not the output of a supported layer")
        self.codes[node.output[0]] = q
        self.latest = node.output[0]

    def weight_of(self, node) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """A Conv's or Gemm's int8 weight (output channels first), its per-channel scale and zero
        point, and its int32 bias (zeros if absent)."""
        if node.input[1] not in self.weights:
            raise _unsupported(node, "its weight is not a dequantized int8 constant")
        w, w_scale, w_zero, axis = self.weights[node.input[1]]
        a = _attributes(node)
        if node.op_type == "Gemm":
            if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
                raise _unsupported(node, "only alpha = beta = 1 and transA = 0 are supported")
            if not a.get("transB", 0):                              # (K, N) -> (N, K)
                w, axis = w.T, 1 - axis
        elif w.ndim != 4 or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise _unsupported(node, "only 2-D convolutions with explicit pads are supported")
        if w.dtype != np.int8:
            raise _unsupported(node, f"weights must be int8, got {w.dtype}")
        if np.size(w_scale) > 1 and axis != 0:
            raise _unsupported(node, "weight scales must be per output channel")
        channels = w.shape[0]
        if len(node.input) > 2 and node.input[2]:
            if node.input[2] not in self.weights or self.weights[node.input[2]][0].dtype != np.int32:
                raise _unsupported(node, "its bias is not a dequantized int32 constant")
            bias = self.weights[node.input[2]][0]
        else:
            bias = np.zeros(channels, np.int32)
        return (w, np.broadcast_to(w_scale, (channels,)), np.broadcast_to(w_zero, (channels,)),
                bias.reshape(channels))

    def conv_or_gemm(self, node, index: int) -> None:
        """A layer whose output quantization comes with the QuantizeLinear after it (through a ReLU)."""
        scale_x, zero_x, _ = self.activation(node, node.input[0])
        w, w_scale, w_zero, bias = self.weight_of(node)
        spec = {"name": _layer_name(node, index, self.taken), "weight": _frozen(w, np.int8),
                "bias": _frozen(bias, np.int32), "weight_scale": _frozen(w_scale, np.float32),
                "weight_zero_point": _frozen(w_zero, np.int8), "input_scale": scale_x, "input_zero_point": zero_x}
        if node.op_type == "Conv":
            a = _attributes(node)
            spec.update(kind=QuantizedConv2d, stride=tuple(a.get("strides", (1, 1))),
                        padding=tuple(a.get("pads", (0, 0, 0, 0))), dilation=tuple(a.get("dilations", (1, 1))),
                        groups=int(a.get("group", 1)))
        else:
            spec.update(kind=QuantizedLinear)
        self.pending[node.output[0]] = dict(spec, layer=None)

    def relu(self, node, index: int) -> None:
        """Fused into the Conv or Gemm before it (the clamp at the zero point does the job)."""
        spec = self.pending.pop(node.input[0], None)
        if spec is None or spec["layer"] is not None:
            raise _unsupported(node, "a ReLU is supported only right after a Conv or Gemm")
        self.pending[node.output[0]] = dict(spec, relu=True)

    def max_pool(self, node, index: int) -> None:
        """Max pooling on the codes (the map from codes to reals is increasing)."""
        scale_x, zero_x, _ = self.activation(node, node.input[0])
        a = _attributes(node)
        if any(d != 1 for d in a.get("dilations", (1, 1))) or a.get("ceil_mode", 0) or \
                a.get("storage_order", 0) or len(a["kernel_shape"]) != 2:
            raise _unsupported(node, "only 2-D max pooling without dilation or ceil_mode is supported")
        layer = MaxPool2d(_layer_name(node, index, self.taken), tuple(a["kernel_shape"]),
                          tuple(a.get("strides", (1, 1))), tuple(a.get("pads", (0, 0, 0, 0))))
        self.pending[node.output[0]] = {"layer": layer, "input_scale": scale_x, "input_zero_point": zero_x}

    def flatten(self, node, index: int) -> None:
        """Flattening the float input (before its quantization) or the codes of a layer."""
        if _attributes(node).get("axis", 1) != 1:
            raise _unsupported(node, "only axis = 1 is supported")
        layer = Flatten(_layer_name(node, index, self.taken))
        if node.input[0] in self.floats:
            self.layers.append(layer)
            self.floats.add(node.output[0])
        else:
            scale_x, zero_x, _ = self.activation(node, node.input[0])
            self.pending[node.output[0]] = {"layer": layer, "input_scale": scale_x, "input_zero_point": zero_x}


_READERS = {"DequantizeLinear": _GraphReader.dequantize_linear, "QuantizeLinear": _GraphReader.quantize_linear,
            "Conv": _GraphReader.conv_or_gemm, "Gemm": _GraphReader.conv_or_gemm, "Relu": _GraphReader.relu,
            "MaxPool": _GraphReader.max_pool, "Flatten": _GraphReader.flatten}


# ----------------------------------------------------------------------------- the integer forward pass

def _check_model(model) -> None:
    check_type(model, "model", Int8Model, "an Int8Model (from read_int8_model)")


def _check_images(x, model: Int8Model, name: str = "x") -> np.ndarray:
    """A float32 batch (B, *input_shape), B >= 1, finite, as a NumPy array (not copied)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    check_type(x, name, np.ndarray, "a float32 NumPy array or torch.Tensor")
    if x.dtype != np.float32:
        raise TypeError(f"{name} must hold float32 values (what the ONNX graph takes), got dtype {x.dtype}; "
                        f"use x.astype(np.float32)")
    if x.ndim != 1 + len(model.input_shape) or tuple(x.shape[1:]) != model.input_shape or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape (batch >= 1, *{model.input_shape}), got {tuple(x.shape)}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf; clean the images first")
    return x


def _run_layer(q: np.ndarray, layer: Layer, requantization: str, accumulation: str = "int32") -> np.ndarray:
    """One layer on uint8 codes."""
    if isinstance(layer, Flatten):
        return q.reshape(q.shape[0], -1)
    if isinstance(layer, MaxPool2d):
        return max_pool2d_codes(q, layer)
    if isinstance(layer, QuantizedConv2d):
        acc = conv2d_accumulate(q, layer)                              # (B, O, Ho, Wo) int32
        if accumulation == "int16_pairs":
            acc = acc + conv2d_int16_pair_error(q, layer)
    else:
        acc = linear_accumulate(q, layer)                              # (B, N) int32
        if accumulation == "int16_pairs":
            acc = acc + int16_pair_error(q, layer.weight)
    if requantization == "float":
        return requantize(acc, layer.multiplier, layer.output_zero_point, layer.relu)
    m0, shift = quantize_multiplier(layer.multiplier)
    return requantize_fixed_point(acc, m0, shift, layer.output_zero_point, layer.relu)


def forward_int8(model: Int8Model, x: np.ndarray | torch.Tensor, requantization: str = "float",
                 accumulation: str = "int32") -> Int8Output:
    """Run ``model`` in integers: quantize the float input (QuantizeLinear), then for each layer
    an int32 accumulation and a requantization to uint8 (Jacob et al. 2018, eqs. 4-7), max pooling
    on codes, and finally the logits :math:`s_y (q_y - z_y)` (DequantizeLinear).

    With ``requantization="float"`` every step rounds as ONNX Runtime's CPU kernels do, so
    ``logits`` equal ONNX Runtime's output bit for bit on every CPU for a model whose weights cannot
    saturate (:func:`course_lib.runtime.int16_pair_sums` at most 128, the course's default); for
    one quantized over the full int8 range, only on CPUs with VNNI, AMX or Arm's kernels. Measured:
    all 10,000 MNIST test images for LeNet-5 and LeNet-300-100, and all of Fashion-MNIST's for the
    zoo's small and tiny CNNs.
    ``"fixed_point"`` requantizes with the int32 multiplier and shift of :func:`quantize_multiplier`,
    as a microcontroller would. ``accumulation="int16_pairs"`` adds the products as an x86 CPU
    without VNNI does (:func:`int16_pair_error`), equal to ONNX Runtime's output on such a CPU; with
    ``"int32"`` (a microcontroller, VNNI, Arm) every sum is exact. The batch runs in slices of
    :data:`CHUNK` images.

    Args:
        model: an :class:`Int8Model` (from :func:`read_int8_model`); not modified.
        x: float32 images (B, *model.input_shape), B >= 1, finite (NumPy or torch); not modified.
        requantization: ``"float"`` or ``"fixed_point"``.
        accumulation: ``"int32"`` or ``"int16_pairs"``.

    Returns:
        :class:`Int8Output`: ``codes`` (B, classes) uint8 and ``logits`` (B, classes) float32.

    Raises:
        TypeError: ``model`` is not an Int8Model, ``x`` not an array or tensor, or not float32.
        ValueError: ``x`` has the wrong shape or holds NaN / inf, or ``requantization`` or
            ``accumulation`` is unknown.
    """
    _check_model(model)
    x = _check_images(x, model)
    check_choice(requantization, "requantization", REQUANTIZATIONS)
    check_choice(accumulation, "accumulation", ACCUMULATIONS)
    slices = []
    for start in range(0, len(x), CHUNK):
        q = quantize_linear(x[start:start + CHUNK], model.input_scale, model.input_zero_point)
        for layer in model.layers:
            q = _run_layer(q, layer, requantization, accumulation)
        slices.append(q)
    codes = np.concatenate(slices)
    return Int8Output(codes, dequantize_linear(codes, model.output_scale, model.output_zero_point))


# ----------------------------------------------------------------------------- a C header for a microcontroller

C_TYPES = {np.dtype(np.int8): "int8_t", np.dtype(np.int32): "int32_t", np.dtype(np.float32): "float"}


def _header_arrays(model: Int8Model) -> list[tuple[str, np.ndarray]]:
    """The arrays a microcontroller stores in flash, per weight layer: ``<layer>_weight`` int8,
    ``<layer>_bias`` int32, ``<layer>_multiplier`` float32 :math:`M`, and its fixed-point form
    ``<layer>_multiplier_q31`` int32 :math:`M_0` with ``<layer>_shift`` int8 :math:`n`."""
    arrays = []
    for layer in model.layers:
        if isinstance(layer, (QuantizedConv2d, QuantizedLinear)):
            m0, shift = quantize_multiplier(layer.multiplier)
            arrays += [(f"{layer.name}_weight", layer.weight), (f"{layer.name}_bias", layer.bias),
                       (f"{layer.name}_multiplier", layer.multiplier),
                       (f"{layer.name}_multiplier_q31", m0), (f"{layer.name}_shift", shift.astype(np.int8))]
    return arrays


def flash_bytes(model: Int8Model) -> int:
    """Bytes of flash the arrays of :func:`export_c_header` take: weights (1 byte each), biases and
    multipliers (4 bytes each per output channel), shifts (1 byte). Scales, zero points and shapes
    are ``#define`` constants, compiled into the code.

    Raises:
        TypeError: ``model`` is not an Int8Model.
    """
    _check_model(model)
    return sum(a.nbytes for _, a in _header_arrays(model))


def _c_value(v) -> str:
    """One C literal: ints as they are (INT32_MIN spelt so that C reads it as an int), float32
    values with 9 significant digits (enough to give back the same float32) and an ``f``."""
    if isinstance(v, (np.floating, float)):
        text = f"{float(v):.9g}"
        return (text if any(c in text for c in ".e") else text + ".0") + "f"
    return "(-2147483647 - 1)" if int(v) == -2 ** 31 else str(int(v))


def _c_array(name: str, a: np.ndarray, per_line: int = 16) -> str:
    values = [_c_value(v) for v in a.reshape(-1)]
    lines = [", ".join(values[i:i + per_line]) for i in range(0, len(values), per_line)]
    size = " * ".join(str(d) for d in a.shape)                      # flat, row-major (C order)
    return f"const {C_TYPES[a.dtype]} {name}[{size}] = {{\n    " + ",\n    ".join(lines) + "\n};\n"


def _c_defines(prefix: str, layer: Layer) -> list[tuple[str, str]]:
    """``#define`` lines (name, value) for a layer's shapes, scales and zero points."""
    P = f"{prefix}_{layer.name}".upper()
    if isinstance(layer, Flatten):
        return []
    if isinstance(layer, MaxPool2d):
        return [(f"{P}_KERNEL_H", layer.kernel[0]), (f"{P}_KERNEL_W", layer.kernel[1]),
                (f"{P}_STRIDE_H", layer.stride[0]), (f"{P}_STRIDE_W", layer.stride[1]),
                *[(f"{P}_PAD_{side}", p) for side, p in zip(("TOP", "LEFT", "BOTTOM", "RIGHT"), layer.padding)]]
    lines = [(f"{P}_OUT_{'CHANNELS' if isinstance(layer, QuantizedConv2d) else 'FEATURES'}", layer.weight.shape[0])]
    if isinstance(layer, QuantizedConv2d):
        _, c, kh, kw = layer.weight.shape
        lines += [(f"{P}_IN_CHANNELS", c * layer.groups), (f"{P}_GROUPS", layer.groups),
                  (f"{P}_KERNEL_H", kh), (f"{P}_KERNEL_W", kw),
                  (f"{P}_STRIDE_H", layer.stride[0]), (f"{P}_STRIDE_W", layer.stride[1]),
                  *[(f"{P}_PAD_{side}", p) for side, p in zip(("TOP", "LEFT", "BOTTOM", "RIGHT"), layer.padding)],
                  (f"{P}_DILATION_H", layer.dilation[0]), (f"{P}_DILATION_W", layer.dilation[1])]
    else:
        lines.append((f"{P}_IN_FEATURES", layer.weight.shape[1]))
    zero_w = np.unique(layer.weight_zero_point)
    return lines + [(f"{P}_INPUT_ZERO_POINT", layer.input_zero_point),
                    (f"{P}_OUTPUT_ZERO_POINT", layer.output_zero_point),
                    (f"{P}_WEIGHT_ZERO_POINT", int(zero_w[0]) if len(zero_w) == 1 else "per-channel: see the array"),
                    (f"{P}_RELU", int(layer.relu))]


def export_c_header(model: Int8Model, path: Path | str, name: str) -> int:
    """Write ``model``'s arrays as a C99 header a microcontroller project can compile
    (TensorFlow Lite Micro style: the model as constant arrays in flash), and return its flash
    bytes (:func:`flash_bytes`).

    The header holds, under the prefix ``name``: a comment with the model, its layers and flash
    bytes; ``#define`` constants for the input's and output's scale and zero point and each layer's
    shapes, strides, paddings and zero points; and per weight layer ``const`` arrays: int8 weights
    (PyTorch's layout (O, C, kh, kw) or (N, K), flattened in C order), int32 biases, float requantization multipliers
    :math:`M = s_x s_w / s_y` and their fixed-point form (``multiplier_q31`` :math:`M_0` and
    ``shift`` :math:`n`, :math:`M \\approx M_0 2^{n-31}`, Jacob et al. 2018 eq. 6).

    Args:
        model: an :class:`Int8Model`; not modified.
        path: the header to write (its folder must exist).
        name: a C identifier (letters, digits, ``_``; not starting with a digit), the prefix of
            every symbol, e.g. ``"lenet5"``.

    Raises:
        TypeError: ``model`` is not an Int8Model, ``path`` not a str or Path, ``name`` not a str.
        ValueError: ``path``'s folder does not exist (or ``path`` is a folder), or ``name`` is not
            a C identifier.
    """
    _check_model(model)
    path = check_file_path(path, "path")
    check_type(name, "name", str, "a C identifier such as 'lenet5'")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"name must be a C identifier (letters, digits and _, not starting with a digit), "
                         f"got {name!r}")
    arrays = _header_arrays(model)
    total = sum(a.nbytes for _, a in arrays)
    kinds = {"weights": sum(a.nbytes for n, a in arrays if n.endswith("_weight")),
             "biases": sum(a.nbytes for n, a in arrays if n.endswith("_bias"))}
    kinds["requantization"] = total - kinds["weights"] - kinds["biases"]
    P = name.upper()
    summary = "\n".join(
        f" *   {layer.name:<10} {type(layer).__name__:<16}"
        + (f" weight {tuple(layer.weight.shape)}, relu={layer.relu}" if hasattr(layer, "weight") else "")
        for layer in model.layers)
    comment = (f"/* {name}: int8 model {model.name!r} for integer-only inference (Jacob et al. 2018).\n"
               f" * Written by course_lib.deploy.export_c_header from ONNX Runtime's QDQ model.\n"
               f" * Flash: {total} bytes ({', '.join(f'{k} {v}' for k, v in kinds.items())}).\n"
               f" * Layers, in order (input (B, {', '.join(map(str, model.input_shape))}) float -> uint8 codes):\n"
               f"{summary}\n"
               f" * Each weight layer: acc = bias + sum((x - x_zero) * (w - w_zero)) in int32, then\n"
               f" *   y = clamp(y_zero + round_half_even((float)acc * multiplier), relu ? y_zero : 0, 255)\n"
               f" * (ONNX Runtime's arithmetic), or without floats:\n"
               f" *   y = clamp(y_zero + rounding_shift(high32(acc * 2^max(shift,0) * multiplier_q31), max(-shift,0)), ...).\n"
               f" */")
    out = [comment, f"#ifndef {P}_H", f"#define {P}_H", "", "#include <stdint.h>", "",
           f"#define {P}_FLASH_BYTES {total}",
           f"#define {P}_INPUT_SCALE {_c_value(model.input_scale)}",
           f"#define {P}_INPUT_ZERO_POINT {model.input_zero_point}",
           f"#define {P}_OUTPUT_SCALE {_c_value(model.output_scale)}",
           f"#define {P}_OUTPUT_ZERO_POINT {model.output_zero_point}"]
    out += [f"#define {P}_INPUT_DIM{i} {d}" for i, d in enumerate(model.input_shape)]
    for layer in model.layers:
        out += [""] + [f"#define {key} {value}" if isinstance(value, int) else f"/* {key}: {value} */"
                       for key, value in _c_defines(name, layer)]
    out.append("")
    out += [_c_array(f"{name}_{array_name}", a) for array_name, a in arrays]
    out.append(f"#endif  /* {P}_H */\n")
    path.write_text("\n".join(out))
    return total
