"""Weight-only quantization of a transformer's linear layers: round-to-nearest per channel or per group,
real bit packing, GPTQ and AWQ.

**Group-wise round-to-nearest.** A weight matrix :math:`W` (out x in) is cut, along each row, into groups
of ``group_size`` consecutive input weights (one group per row: per channel). Each group :math:`g` gets an
asymmetric grid on its own range, widened to hold 0 (as GPTQ's quantizer does):

.. math::
    s_g = \\frac{\\max(w_g, 0) - \\min(w_g, 0)}{2^b - 1}, \\quad
    z_g = \\mathrm{round}\\Big(\\frac{-\\min(w_g, 0)}{s_g}\\Big), \\quad
    q = \\mathrm{clamp}(\\mathrm{round}(w / s_g) + z_g,\\ 0,\\ 2^b - 1), \\quad \\hat w = s_g (q - z_g)

The scale is stored in float16 (at least the smallest positive float16, for a group of zeros; the codes are
computed with that rounded scale), the zero-point in ``b``
bits: a matrix costs :math:`\\text{out} \\cdot \\text{in} \\cdot b / 8` bytes of codes plus
:math:`\\text{out} \\cdot \\lceil \\text{in} / \\text{group} \\rceil \\cdot (2 + b / 8)` bytes of scales and
zero-points. Smaller groups follow the weights more closely, and pay more for scales: at 4 bits and
groups of 32, :math:`4 + (16 + 4) / 32 = 4.625` bits per weight.

**Packing.** :func:`pack_codes` writes ``b``-bit codes as one stream of bits, little-endian: two 4-bit
codes a byte (the first in the low nibble, as ONNX Runtime's ``MatMulNBits`` reads them), eight 3-bit
codes in three bytes.

**GPTQ** (Frantar et al. 2023, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
Transformers", Algorithm 1) quantizes one input column at a time and moves each column's rounding error
onto the columns not yet quantized, weighted by the inverse Hessian of the layer's squared error,
:math:`H = 2 X X^\\top` (X: the layer's calibration inputs): with :math:`U` the upper Cholesky factor of
:math:`H^{-1}`, column :math:`j`'s error :math:`e = (w_j - \\hat w_j) / U_{jj}` updates
:math:`W_{:, k} \\mathrel{-}= e\\, U_{jk}` for :math:`k > j`.

**AWQ** (Lin et al. 2024, "AWQ: Activation-aware Weight Quantization for LLM Compression and
Acceleration", Sec. 3.2) scales each input channel up by :math:`s_j = \\overline{|x_j|}^{\\alpha}` before
rounding (and the input down by the same factor, folded into the LayerNorm or layer before): the channels
that carry large activations lose less to rounding. :math:`\\alpha \\in [0, 1]` is chosen on a grid to
minimise the layers' output error on calibration inputs.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

from ..checks import check_int, check_model, check_tensor, check_type
from ..measure import CompressedLayer, StoredTensor
from .gpt import FLOAT16_TINIEST, GPT

__all__ = ["BLOCK_LAYERS", "quantize_groupwise", "dequantize_groupwise", "pack_codes", "unpack_codes",
           "GroupQuantizedLinear", "block_linears", "quantize_weights", "linear_inputs", "hessian",
           "gptq_quantize", "gptq_model", "awq_scale_search", "awq_model", "dequantized_copy"]

# The linear layers of a block, by their name inside it.
BLOCK_LAYERS = ("attention.query", "attention.key", "attention.value", "attention.proj", "mlp.fc", "mlp.proj")


def _check_bits(bits: int) -> None:
    check_int(bits, "bits", 2, 8)


def _group_size(weight: torch.Tensor, group_size: int | None) -> int:
    """The group size along the input axis (None: the whole row), checked to divide the row."""
    n_in = weight.shape[1]
    if group_size is None:
        return n_in
    check_int(group_size, "group_size", 1, n_in)
    if n_in % group_size:
        raise ValueError(f"group_size={group_size} must divide the {n_in} input weights of each row")
    return group_size


def _group_grid(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Float16 scales and integer zero-points (as float) for each row of ``w`` (rows, n): (rows, 1) each."""
    qmax = 2 ** bits - 1
    lo, hi = w.amin(1, keepdim=True).clamp(max=0), w.amax(1, keepdim=True).clamp(min=0)
    scale = ((hi - lo) / qmax).half().clamp_min(FLOAT16_TINIEST).float()
    zero = torch.round(-lo / scale).clamp(0, qmax)
    return scale, zero


def _round_to_grid(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int) -> torch.Tensor:
    return torch.clamp(torch.round(w / scale) + zero, 0, 2 ** bits - 1)


def quantize_groupwise(weight: torch.Tensor, bits: int, group_size: int | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Round-to-nearest of ``weight`` (out, in) per group of ``group_size`` inputs (None: per channel).

    Returns ``(codes, scales, zero_points)``: uint8 codes (out, in) in :math:`[0, 2^b - 1]`, float16
    scales and uint8 zero-points (out, in / group_size). ``weight`` is not changed.

    Raises:
        TypeError / ValueError: a weight that is not a finite 2-D float tensor, bits outside [2, 8], a
            group size that does not divide the rows.
    """
    check_tensor(weight, "weight")
    if weight.dim() != 2 or not weight.is_floating_point() or not torch.isfinite(weight).all():
        raise ValueError(f"weight must be a finite 2-D float tensor, got shape {tuple(weight.shape)}")
    _check_bits(bits)
    g = _group_size(weight, group_size)
    out, n_in = weight.shape
    groups = weight.detach().float().reshape(out * n_in // g, g)
    scale, zero = _group_grid(groups, bits)
    codes = _round_to_grid(groups, scale, zero, bits)
    return (codes.reshape(out, n_in).to(torch.uint8), scale.reshape(out, -1).half(),
            zero.reshape(out, -1).to(torch.uint8))


def dequantize_groupwise(codes: torch.Tensor, scales: torch.Tensor, zero_points: torch.Tensor) -> torch.Tensor:
    """:math:`\\hat w = s_g (q - z_g)` as float32 (out, in), the group size read from the shapes."""
    out, n_in = codes.shape
    g = n_in // scales.shape[1]
    q = codes.float().reshape(out, -1, g)
    return ((q - zero_points.float().unsqueeze(-1)) * scales.float().unsqueeze(-1)).reshape(out, n_in)


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """``bits``-bit codes (any shape, read in row-major order) as a little-endian stream of bits:
    a uint8 tensor of :math:`\\lceil n b / 8 \\rceil` bytes.

    Raises:
        ValueError: a code outside :math:`[0, 2^b - 1]`.
    """
    _check_bits(bits)
    flat = codes.reshape(-1).to(torch.int64)
    if flat.numel() and (flat.min() < 0 or flat.max() > 2 ** bits - 1):
        raise ValueError(f"codes must be in [0, {2 ** bits - 1}] for {bits} bits")
    shifts = torch.arange(bits)
    stream = ((flat.unsqueeze(1) >> shifts) & 1).reshape(-1)           # bit k of code i at i*bits + k
    stream = torch.cat([stream, stream.new_zeros(-len(stream) % 8)])
    return (stream.reshape(-1, 8) << torch.arange(8)).sum(1).to(torch.uint8)


def unpack_codes(packed: torch.Tensor, bits: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The inverse of :func:`pack_codes`: uint8 codes of ``shape``."""
    _check_bits(bits)
    n = math.prod(shape)
    stream = ((packed.to(torch.int64).unsqueeze(1) >> torch.arange(8)) & 1).reshape(-1)[: n * bits]
    return (stream.reshape(n, bits) << torch.arange(bits)).sum(1).to(torch.uint8).reshape(shape)


class GroupQuantizedLinear(CompressedLayer):
    """A bias-free ``Linear`` stored as packed ``bits``-bit codes with a float16 scale and a ``bits``-bit
    zero-point per group; it computes with the dequantized weight (kept, once unpacked, for speed).

    ``input_scale`` (None, or one factor per input channel) multiplies the input first: what AWQ adds
    where no earlier layer can absorb its scales."""

    def __init__(self, layer: nn.Linear, codes: torch.Tensor, scales: torch.Tensor, zero_points: torch.Tensor,
                 bits: int, input_scale: torch.Tensor | None = None):
        super().__init__(layer)
        self.bits = bits
        self.shape = tuple(codes.shape)
        self.register_buffer("packed", pack_codes(codes, bits))
        self.register_buffer("scales", scales.half())
        self.register_buffer("packed_zero_points", pack_codes(zero_points, bits))
        self.input_scale = input_scale
        self.register_buffer("weight_dequantized",
                             dequantize_groupwise(codes, scales, zero_points).to(layer.weight.device), persistent=False)
        layer.weight.requires_grad_(False)

    @property
    def group_size(self) -> int:
        return self.shape[1] // self.scales.shape[1]

    def codes(self) -> torch.Tensor:
        return unpack_codes(self.packed, self.bits, self.shape)

    def zero_points(self) -> torch.Tensor:
        return unpack_codes(self.packed_zero_points, self.bits, tuple(self.scales.shape))

    def weight_as_computed(self) -> torch.Tensor:
        return self.weight_dequantized

    def stored_tensors(self) -> list[StoredTensor]:
        stored = [StoredTensor("weight codes", self.weight_dequantized, self.bits),
                  StoredTensor("group scales", self.scales.float(), 16),
                  StoredTensor("group zero-points", self.zero_points().float(), self.bits)]
        if self.input_scale is not None:
            stored.append(StoredTensor("input scales", self.input_scale, 16))
        return stored

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_scale is not None:
            x = x * self.input_scale
        return F.linear(x, self.weight_dequantized)

    def extra_repr(self) -> str:
        return f"{self.bits}-bit, groups of {self.group_size}"


def block_linears(model: GPT) -> dict[str, nn.Linear]:
    """The six linear layers of every block, by name (``blocks.0.attention.query`` ...), in order."""
    check_type(model, "model", GPT, "a course_lib.language.GPT")
    return {f"blocks.{i}.{name}": block.get_submodule(name)
            for i, block in enumerate(model.blocks) for name in BLOCK_LAYERS}


def _replace(model: GPT, name: str, layer: nn.Module) -> None:
    model.set_submodule(name, layer)


def quantize_weights(model: GPT, bits: int, group_size: int | None = None) -> GPT:
    """A copy of ``model`` whose block linears are round-to-nearest quantized (:func:`quantize_groupwise`);
    embeddings, LayerNorms and the head stay float32. ``model`` is not changed."""
    _check_bits(bits)
    quantized = copy.deepcopy(model)
    for name, layer in block_linears(quantized).items():
        codes, scales, zeros = quantize_groupwise(layer.weight, bits, group_size)
        _replace(quantized, name, GroupQuantizedLinear(layer, codes, scales, zeros, bits))
    return quantized


@torch.no_grad()
def linear_inputs(model: GPT, windows: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """The inputs the named layers receive when ``model`` reads ``windows`` (n, T): each (n * T, in)."""
    check_model(model)
    inputs: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    hooks = [model.get_submodule(n).register_forward_pre_hook(
        lambda m, args, n=n: inputs[n].append(args[0].detach().reshape(-1, args[0].shape[-1]))) for n in names]
    try:
        model.eval()
        model(windows)
    finally:
        for h in hooks:
            h.remove()
    return {n: torch.cat(v) for n, v in inputs.items()}


def hessian(x: torch.Tensor) -> torch.Tensor:
    """:math:`H = \\frac{2}{N} X^\\top X` for inputs ``x`` (N, in): the Hessian of the layer's mean squared
    output error with respect to each row of its weight."""
    x = x.double()
    return (2.0 / len(x) * x.T @ x).float()


def gptq_quantize(weight: torch.Tensor, H: torch.Tensor, bits: int, group_size: int | None = None,
                  damp: float = 0.01) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GPTQ (Frantar et al. 2023, Algorithm 1, without the lazy block updates, which only make it
    faster): quantize ``weight`` (out, in) column by column, spreading each column's error over the later
    columns through the inverse Hessian. A group's scale and zero-point are chosen, as in the paper's
    code, when its first column is reached (on the weights updated so far). ``damp`` times the mean of
    H's diagonal is added to the diagonal; an input that is always 0 (a zero on the diagonal) gets a
    1 there, and its weights are 0.

    Returns ``(codes, scales, zero_points)`` as :func:`quantize_groupwise` does. ``weight`` and ``H`` are
    not changed.
    """
    check_tensor(weight, "weight")
    check_tensor(H, "H")
    _check_bits(bits)
    out, n_in = weight.shape
    if H.shape != (n_in, n_in):
        raise ValueError(f"H must be ({n_in}, {n_in}) for a weight of {n_in} inputs, got {tuple(H.shape)}")
    g = _group_size(weight, group_size)
    W = weight.detach().double().clone()
    H = H.detach().double().clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H += damp * torch.mean(torch.diag(H)) * torch.eye(n_in, dtype=H.dtype)
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    codes = torch.zeros(out, n_in, dtype=torch.uint8)
    scales, zeros = [], []
    for j in range(n_in):
        if j % g == 0:
            scale, zero = _group_grid(W[:, j:j + g].float(), bits)
            scales.append(scale)
            zeros.append(zero)
        q = _round_to_grid(W[:, j:j + 1].float(), scale, zero, bits)
        codes[:, j] = q[:, 0].to(torch.uint8)
        error = (W[:, j] - (scale * (q - zero))[:, 0].double()) / U[j, j]
        W[:, j + 1:] -= error.unsqueeze(1) * U[j, j + 1:].unsqueeze(0)
    return codes, torch.cat(scales, 1).half(), torch.cat(zeros, 1).to(torch.uint8)


def gptq_model(model: GPT, calibration: torch.Tensor, bits: int, group_size: int | None = None,
               damp: float = 0.01) -> GPT:
    """A copy of ``model`` with every block linear quantized by :func:`gptq_quantize`, block after block:
    each block's layers see the calibration windows (n, T) as the blocks already quantized pass them on,
    as in the paper. ``model`` is not changed."""
    _check_bits(bits)
    quantized = copy.deepcopy(model)
    for i in range(len(quantized.blocks)):
        for names in ([f"blocks.{i}.attention.{n}" for n in ("query", "key", "value")], [f"blocks.{i}.attention.proj"],
                      [f"blocks.{i}.mlp.fc"], [f"blocks.{i}.mlp.proj"]):
            inputs = linear_inputs(quantized, calibration, names)
            for name in names:
                layer = quantized.get_submodule(name)
                codes, scales, zeros = gptq_quantize(layer.weight, hessian(inputs[name]), bits, group_size, damp)
                _replace(quantized, name, GroupQuantizedLinear(layer, codes, scales, zeros, bits))
    return quantized


@torch.no_grad()
def awq_scale_search(layers: list[nn.Linear], x: torch.Tensor, bits: int, group_size: int | None,
                     grid: int = 20) -> tuple[torch.Tensor, float]:
    """AWQ's search (Lin et al. 2024, Sec. 3.2, Eq. 5) for layers that share the input ``x`` (N, in):
    :math:`s = \\overline{|x|}^{\\alpha} / \\sqrt{\\max \\cdot \\min}` for :math:`\\alpha` in
    ``0, 1/grid, ..., 1``, keeping the one whose quantized layers
    :math:`Q(W \\mathrm{diag}(s))\\, \\mathrm{diag}(s)^{-1} x` best match the float outputs (mean squared
    error). :math:`\\alpha = 0` is plain round-to-nearest. Returns ``(s, alpha)``."""
    mean_abs = x.abs().mean(0).clamp_min(1e-8)
    targets = [F.linear(x, layer.weight) for layer in layers]
    best = (math.inf, None, 0.0)
    for k in range(grid + 1):
        alpha = k / grid
        s = mean_abs ** alpha
        s = s / (s.max() * s.min()).sqrt()
        error = 0.0
        for layer, target in zip(layers, targets):
            w_hat = dequantize_groupwise(*quantize_groupwise(layer.weight * s, bits, group_size)) / s
            error += float(((F.linear(x, w_hat) - target) ** 2).mean())
        if error < best[0]:
            best = (error, s, alpha)
    return best[1], best[2]


@torch.no_grad()
def awq_model(model: GPT, calibration: torch.Tensor, bits: int, group_size: int | None = None,
              grid: int = 20) -> tuple[GPT, dict[str, float]]:
    """A copy of ``model`` quantized with AWQ's per-channel scales, and the :math:`\alpha` chosen for each
    group of layers. As in the paper's code, each block's scales are searched and applied to the float
    weights first, then the block is quantized: :math:`s` multiplies the layers' input columns, and its
    inverse is folded into what precedes them, the LayerNorm before query, key and value (and before the
    MLP's first layer), the value layer's rows before the attention's output projection (attention mixes
    values linearly, head by head). The MLP's second layer follows a GELU, which no scale passes through:
    it keeps :math:`1/s` as a stored vector of input scales. ``model`` is not changed."""
    _check_bits(bits)
    quantized = copy.deepcopy(model)
    alphas = {}
    for i, block in enumerate(quantized.blocks):
        prefix = f"blocks.{i}"
        input_scales = {}
        for names, before in ((("attention.query", "attention.key", "attention.value"), block.ln1),
                              (("attention.proj",), block.attention.value),
                              (("mlp.fc",), block.ln2),
                              (("mlp.proj",), None)):
            full = [f"{prefix}.{n}" for n in names]
            x = linear_inputs(quantized, calibration, full[:1])[full[0]]          # through the float, scaled block
            layers = [quantized.get_submodule(n) for n in full]
            s, alpha = awq_scale_search(layers, x, bits, group_size, grid)
            alphas[f"{prefix}.{names[0] if len(names) == 1 else 'attention.qkv'}"] = alpha
            for layer in layers:
                layer.weight.mul_(s)
            if isinstance(before, nn.LayerNorm):
                before.weight.div_(s)
                before.bias.div_(s)
            elif isinstance(before, nn.Linear):
                before.weight.div_(s.unsqueeze(1))
            else:                    # the last search of the block: nothing runs before it is quantized
                input_scales[full[0]] = 1 / s
        for name in (f"{prefix}.{n}" for n in BLOCK_LAYERS):
            layer = quantized.get_submodule(name)
            codes, scales, zeros = quantize_groupwise(layer.weight, bits, group_size)
            _replace(quantized, name, GroupQuantizedLinear(layer, codes, scales, zeros, bits,
                                                           input_scale=input_scales.get(name)))
    return quantized, alphas


def dequantized_copy(model: GPT) -> GPT:
    """A copy of a weight-quantized ``model`` whose :class:`GroupQuantizedLinear` s are plain, frozen
    ``nn.Linear`` s holding the dequantized weights (input scales folded in): the same function, in the
    form :func:`course_lib.lowrank.add_lora` adapts (QLoRA's frozen 4-bit base, Dettmers et al. 2023)."""
    plain = copy.deepcopy(model)
    for name, layer in list(plain.named_modules()):
        if isinstance(layer, GroupQuantizedLinear):
            linear = nn.Linear(layer.shape[1], layer.shape[0], bias=False)
            weight = layer.weight_dequantized
            if layer.input_scale is not None:
                weight = weight * layer.input_scale
            linear.weight.data.copy_(weight)
            plain.set_submodule(name, linear.requires_grad_(False))
    return plain
