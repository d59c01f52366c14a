"""Architecture design: efficient blocks, what each one costs, and networks built from a description.

A network is designed cheap from the start instead of compressed afterwards. This module holds
the blocks of the efficient-network papers, the closed-form cost of each, and a builder that turns
a small description (plain data: a list of stages) into an ``nn.Module``, so that a notebook can
compare designs and a search (notebook 07) can sample and mutate them.

**Blocks** (each an ``nn.Module`` whose layers are plain ``Conv2d`` / ``BatchNorm2d`` / ``Linear``,
so :mod:`course_lib.measure` counts them like any other model):

* ``"conv"``: a standard convolution, conv-bn-relu (optionally grouped).
* ``"separable"``: depthwise separable convolution, Howard et al. (2017), "MobileNets: Efficient
  Convolutional Neural Networks for Mobile Vision Applications": a depthwise :math:`k \\times k`
  convolution filters each channel alone, a pointwise :math:`1 \\times 1` one mixes channels.
* ``"inverted_residual"``: Sandler et al. (2018), "MobileNetV2: Inverted Residuals and Linear
  Bottlenecks": expand :math:`1 \\times 1` by :math:`t`, depthwise :math:`k \\times k`, project
  :math:`1 \\times 1` *linearly* (no activation), with a residual between the thin ends.
* ``"residual"``: the basic block of He et al. (2016), "Deep Residual Learning for Image
  Recognition": two :math:`k \\times k` convolutions and a shortcut, :math:`y = \\mathrm{relu}(F(x) + x)`.
* ``"shuffle"``: the ShuffleNet unit of Zhang et al. (2018), "ShuffleNet: An Extremely Efficient
  Convolutional Neural Network for Mobile Devices": grouped :math:`1 \\times 1` convolutions with a
  channel shuffle between them so that information crosses the groups.
* Optionally squeeze-and-excitation in any block, Hu et al. (2018), "Squeeze-and-Excitation Networks".

**Costs.** For one image, with :math:`C_{in}, C_{out}` channels, kernel :math:`k`, groups
:math:`g`, output resolution :math:`H \\times W` (input :math:`H_{in} \\times W_{in}`), a
convolution has :math:`C_{out} (C_{in}/g) k^2` weights and costs :math:`H W C_{out} (C_{in}/g) k^2`
multiply-accumulates (MACs); each batch norm adds 2 parameters per channel (scale and shift: its
running statistics are buffers, folded into the convolution at inference) and no MACs. The
convolutions here have no bias (the batch norm's shift replaces it). :func:`block_costs` gives
every block's formula; tests check them against :func:`course_lib.measure.count_macs` and
:func:`course_lib.measure.count_parameters` for many shapes. The central ratio (MobileNet, eq. 5):

.. math::  \\frac{\\text{separable MACs}}{\\text{standard MACs}}
           = \\frac{H W C_{in} k^2 + H W C_{in} N}{H W C_{in} N k^2} = \\frac{1}{N} + \\frac{1}{k^2}

with :math:`N = C_{out}`: a 3x3 separable convolution costs 8 to 9 times less.

**Multipliers** (MobileNet, Sec. 3.3-3.4): the width multiplier :math:`\\alpha` scales every
width (rounded by :func:`make_divisible`), cutting cost by about :math:`\\alpha^2`; the resolution
multiplier :math:`\\rho` resizes the input image, cutting cost by about :math:`\\rho^2`.

**Descriptions.** A :class:`Stage` (block type, width, depth, stride, kernel, expansion, groups,
squeeze-and-excitation) and an :class:`Architecture` (stages, stem, head, multipliers, input
shape) are frozen, validated dataclasses: a bad field raises at once, naming it, and nothing is
built. :func:`build_model` turns one into an ``nn.Sequential``; :func:`architecture_costs` gives its
parameters and MACs without building it. :data:`FASHION_FAMILY` names the course's Fashion-MNIST
designs; :func:`plain_and_residual` gives the two networks of the degradation experiment.

One caveat on memory: :func:`course_lib.measure.peak_activation_bytes` models a runtime that
keeps only the current layer's input and output. A block with a shortcut also keeps its input
alive while its branch runs, so for residual, inverted-residual and shuffle blocks the true peak
is higher by up to that input's size.

Taught in ``notebooks/05_architecture_design.ipynb``; searched over in ``notebooks/07_automl_nas.ipynb``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import asdict, dataclass, fields, replace
from typing import NamedTuple

import torch
from torch import nn

from . import hardware, measure
from .checks import check_choice, check_int, check_real, check_type, is_int
from .data import SEED_RANGE
from .models import IMAGE_SHAPE, NUM_CLASSES

BLOCK_TYPES = ("conv", "separable", "inverted_residual", "residual", "shuffle")
HEADS = ("avgpool", "flatten")     # global average pooling + linear, or flatten + fully connected
SE_REDUCTION = 4                   # squeeze-and-excitation keeps C / 4 channels (MobileNetV3's choice)


# ----------------------------------------------------------------------------- sizes and widths

def make_divisible(value: float, divisor: int = 8) -> int:
    """A width rounded to the nearest multiple of ``divisor``, at least ``divisor``, and never
    more than 10 % below ``value`` (then one ``divisor`` more): MobileNetV2's ``_make_divisible``,
    which keeps channel counts a multiple of the SIMD width. ``divisor=1`` rounds to the nearest
    int, at least 1.

    Examples with ``divisor=8``: 32 -> 32, 0.5 * 32 = 16 -> 16, 0.35 * 32 = 11.2 -> 16 (8 would
    be 29 % below), 0.25 * 16 = 4 -> 8 (at least 8), 12 -> 16 (halves round up).

    Raises:
        TypeError / ValueError: ``value`` not a finite number > 0; ``divisor`` not an int >= 1.
    """
    check_real(value, "value", 0, math.inf, low_open=True, high_open=True)
    check_int(divisor, "divisor", 1)
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int | None = None) -> int:
    """Output size of a convolution (or pooling) along one axis:
    :math:`\\lfloor (n + 2p - k) / s \\rfloor + 1`. The blocks here pad by :math:`p = \\lfloor k/2
    \\rfloor` (the default), so that with an odd kernel the output is :math:`\\lceil n / s \\rceil`
    whatever :math:`k`: 28 -> 14 -> 7 -> 4 at stride 2.

    Raises:
        TypeError / ValueError: ``size``, ``kernel``, ``stride`` not ints >= 1, ``padding`` not an
            int >= 0 (or None), or a kernel larger than the padded input.
    """
    check_int(size, "size", 1)
    check_int(kernel, "kernel", 1)
    check_int(stride, "stride", 1)
    check_int(padding, "padding", 0, allow_none=True)
    padding = kernel // 2 if padding is None else padding
    if size + 2 * padding < kernel:
        raise ValueError(f"kernel {kernel} is larger than the padded input {size} + 2 * {padding}")
    return (size + 2 * padding - kernel) // stride + 1


def se_channels(channels: int) -> int:
    """Channels kept inside a squeeze-and-excitation module: :math:`\\max(1, \\lfloor C / r \\rfloor)`
    with :math:`r` = :data:`SE_REDUCTION` = 4 (Hu et al. used 16 for networks hundreds of channels
    wide; MobileNetV3 uses 4, which suits the narrow networks here).

    Raises:
        TypeError / ValueError: ``channels`` not an int >= 1.
    """
    check_int(channels, "channels", 1)
    return max(1, channels // SE_REDUCTION)


def shuffle_bottleneck(out_channels: int, groups: int) -> int:
    """Bottleneck width of a ShuffleNet unit: a quarter of its output channels (Zhang et al.
    2018, Sec. 3.3), rounded to the nearest multiple of ``groups`` (at least ``groups``) so that
    the grouped convolutions split it evenly: 48 channels, 4 groups -> 12; 24, 4 -> 8.

    Raises:
        TypeError / ValueError: ``out_channels`` or ``groups`` not an int >= 1.
    """
    check_int(out_channels, "out_channels", 1)
    check_int(groups, "groups", 1)
    return max(1, round(out_channels / 4 / groups)) * groups


# ----------------------------------------------------------------------------- cost formulas

@dataclass(frozen=True)
class Costs:
    """Parameters and MACs (per image) of a layer, a block or a network; ``a + b`` adds them."""
    parameters: int
    macs: int

    def __add__(self, other: "Costs") -> "Costs":
        return Costs(self.parameters + other.parameters, self.macs + other.macs)


def conv_costs(in_channels: int, out_channels: int, kernel: int, output_size: tuple[int, int],
               groups: int = 1, bias: bool = False) -> Costs:
    """One convolution: :math:`C_{out} (C_{in}/g) k^2` weights (:math:`+ C_{out}` with a bias) and
    :math:`H W C_{out} (C_{in}/g) k^2` MACs, with ``output_size`` = :math:`(H, W)` after the stride.
    A ``Linear`` layer is the case :math:`k = H = W = 1`. A depthwise convolution is the case
    :math:`g = C_{in} = C_{out}`: :math:`C k^2` weights, :math:`H W C k^2` MACs.

    Raises:
        TypeError / ValueError: a count that is not an int >= 1, ``output_size`` not two such
            ints, or ``groups`` that does not divide both channel counts.
    """
    for value, name in ((in_channels, "in_channels"), (out_channels, "out_channels"),
                        (kernel, "kernel"), (groups, "groups")):
        check_int(value, name, 1)
    _check_size(output_size, "output_size")
    check_type(bias, "bias", bool, "True or False")
    _check_groups(in_channels, out_channels, groups)
    H, W = output_size
    weights = out_channels * (in_channels // groups) * kernel * kernel
    return Costs(weights + (out_channels if bias else 0), H * W * weights)


def batch_norm_costs(channels: int) -> Costs:
    """A batch norm: 2 parameters per channel (scale :math:`\\gamma`, shift :math:`\\beta`), no MACs
    (at inference it folds into the convolution before it)."""
    check_int(channels, "channels", 1)
    return Costs(2 * channels, 0)


def se_costs(channels: int) -> Costs:
    """A squeeze-and-excitation module on :math:`C` channels, :math:`r` = :func:`se_channels`:
    two :math:`1 \\times 1` convolutions with biases on the pooled vector,
    :math:`2 C r + r + C` parameters and :math:`2 C r` MACs. (The final rescaling, :math:`H W C`
    multiplications, is element-wise and not counted, like pooling and activations.)"""
    r = se_channels(channels)
    return conv_costs(channels, r, 1, (1, 1), bias=True) + conv_costs(r, channels, 1, (1, 1), bias=True)


def separable_ratio(out_channels: int, kernel: int) -> float:
    """MobileNet's eq. 5: MACs of a depthwise separable convolution over those of a standard one
    with the same channels, kernel and stride, :math:`1/N + 1/k^2` (:math:`N` = ``out_channels``).
    The batch norms are not in it (they cost parameters, not MACs).

    Raises:
        TypeError / ValueError: ``out_channels`` or ``kernel`` not an int >= 1.
    """
    check_int(out_channels, "out_channels", 1)
    check_int(kernel, "kernel", 1)
    return 1 / out_channels + 1 / kernel ** 2


def _check_size(size, name: str) -> None:
    """A (height, width) pair of ints >= 1."""
    if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(is_int(s) and s >= 1 for s in size):
        raise ValueError(f"{name} must be a (height, width) pair of ints >= 1, got {size!r}")


def _check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"groups={groups} must divide in_channels={in_channels} and out_channels="
                         f"{out_channels}: a grouped convolution splits the channels into equal groups")


# ----------------------------------------------------------------------------- blocks

def _check_block_fields(block: str, kernel: int, stride: int, expansion: int, groups: int, se: bool,
                        prefix: str = "") -> None:
    """The checks of :func:`check_block` that need no channel counts (``prefix``: ``"Stage."``)."""
    check_choice(block, f"{prefix}block", BLOCK_TYPES)
    for value, name in ((kernel, "kernel"), (stride, "stride"), (expansion, "expansion"), (groups, "groups")):
        check_int(value, prefix + name, 1)
    check_type(se, f"{prefix}se", bool, "True or False")
    if kernel % 2 == 0:
        raise ValueError(f"{prefix}kernel must be odd (1, 3, 5, 7: padded by kernel // 2 the output "
                         f"is ceil(size / stride)), got {kernel}")
    if expansion != 1 and block != "inverted_residual":
        raise ValueError(f"{prefix}expansion applies to 'inverted_residual' blocks only; a {block!r} "
                         f"block must keep expansion=1, got {expansion}")
    if groups != 1 and block not in ("conv", "shuffle"):
        raise ValueError(f"{prefix}groups applies to 'conv' and 'shuffle' blocks only; a {block!r} "
                         f"block must keep groups=1, got {groups}")


def check_block(block: str, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                expansion: int = 1, groups: int = 1, se: bool = False) -> None:
    """The arguments of one block are valid: what :func:`block_costs`, :func:`make_block` and
    the block classes check before doing anything.

    Every block takes an odd ``kernel`` (padded by ``kernel // 2``, so the output is
    :math:`\\lceil n/s \\rceil`); ``expansion`` :math:`t` belongs to ``"inverted_residual"`` only
    and ``groups`` :math:`g` to ``"conv"`` and ``"shuffle"`` only (elsewhere they must stay 1, so
    one network has one description). A ShuffleNet unit adds its input back at stride 1 (so
    :math:`C_{out} = C_{in}`) and concatenates it, average-pooled, at stride > 1 (so
    :math:`C_{out} > C_{in}`, the branch giving :math:`C_{out} - C_{in}`); its groups divide
    :math:`C_{in}` and the branch's channels.

    Raises:
        ValueError: an unknown ``block`` (the message lists :data:`BLOCK_TYPES`), an even kernel,
            channels not divisible by ``groups``, a shuffle unit's widths that do not fit its
            stride, ``expansion`` or ``groups`` != 1 on a block that has none, or a count < 1.
        TypeError: a count that is not an int, ``se`` not a bool.
    """
    _check_block_fields(block, kernel, stride, expansion, groups, se)
    check_int(in_channels, "in_channels", 1)
    check_int(out_channels, "out_channels", 1)
    if block == "conv":
        _check_groups(in_channels, out_channels, groups)
    if block == "shuffle":
        if stride == 1 and out_channels != in_channels:
            raise ValueError(f"a stride-1 shuffle unit adds its input to its output, so out_channels "
                             f"must equal in_channels={in_channels}, got {out_channels}; use stride 2 "
                             "to change the width")
        if stride > 1 and out_channels <= in_channels:
            raise ValueError(f"a strided shuffle unit concatenates its pooled input, so out_channels "
                             f"must exceed in_channels={in_channels}, got {out_channels}")
        branch = out_channels if stride == 1 else out_channels - in_channels
        if in_channels % groups or branch % groups:
            raise ValueError(f"groups={groups} must divide a shuffle unit's in_channels={in_channels} "
                             f"and its branch's {branch} output channels (out_channels"
                             f"{'' if stride == 1 else ' - in_channels'})")


def block_costs(block: str, in_channels: int, out_channels: int, input_size: tuple[int, int],
                kernel: int = 3, stride: int = 1, expansion: int = 1, groups: int = 1,
                se: bool = False) -> Costs:
    """Parameters and MACs of one block on an input of ``input_size`` :math:`(H_{in}, W_{in})`;
    the output is :math:`H \\times W = \\lceil H_{in}/s \\rceil \\times \\lceil W_{in}/s \\rceil`.
    With :math:`C = C_{in}`, :math:`N = C_{out}`, and each batch norm's :math:`2 \\times` channels
    written out:

    * ``"conv"``: :math:`N (C/g) k^2 + 2N` parameters, :math:`H W N (C/g) k^2` MACs.
    * ``"separable"``: depthwise then pointwise, :math:`C k^2 + 2C + C N + 2N` parameters,
      :math:`H W C (k^2 + N)` MACs; :func:`separable_ratio` of the standard convolution's.
    * ``"inverted_residual"`` with hidden width :math:`h = t C` (no expansion layer when
      :math:`t = 1`): :math:`[t > 1](C h + 2h) + h k^2 + 2h + h N + 2N` parameters and
      :math:`[t > 1] H_{in} W_{in} C h + H W h k^2 + H W h N` MACs (the expansion runs before the
      stride, at the input resolution).
    * ``"residual"``: :math:`C N k^2 + N^2 k^2 + 4N` parameters, :math:`H W (C N k^2 + N^2 k^2)`
      MACs, plus a projection shortcut (:math:`1 \\times 1`, stride :math:`s`, batch norm) when
      the shape changes (:math:`s > 1` or :math:`C \\ne N`): :math:`C N + 2N` parameters,
      :math:`H W C N` MACs.
    * ``"shuffle"`` with bottleneck :math:`m` (:func:`shuffle_bottleneck`) and branch output
      :math:`b = N` at stride 1, :math:`b = N - C` at stride > 1:
      :math:`C m / g + 2m + m k^2 + 2m + m b / g + 2b` parameters and
      :math:`H_{in} W_{in} C m / g + H W m k^2 + H W m b / g` MACs.
    * ``se=True`` adds :func:`se_costs` on the channels it rescales: the output (``"conv"``), the
      depthwise output (:math:`C` for ``"separable"``, :math:`h` for ``"inverted_residual"``),
      the residual branch (:math:`N`), the shuffle branch (:math:`b`).

    Raises:
        TypeError / ValueError: as :func:`check_block`; ``input_size`` not two ints >= 1.
    """
    check_block(block, in_channels, out_channels, kernel, stride, expansion, groups, se)
    _check_size(input_size, "input_size")
    C, N, k, s = in_channels, out_channels, kernel, stride
    out = (conv_output_size(input_size[0], k, s), conv_output_size(input_size[1], k, s))
    if block == "conv":
        costs = conv_costs(C, N, k, out, groups) + batch_norm_costs(N)
        rescaled = N                                   # the channels squeeze-and-excitation rescales
    elif block == "separable":
        costs = (conv_costs(C, C, k, out, groups=C) + batch_norm_costs(C)      # depthwise
                 + conv_costs(C, N, 1, out) + batch_norm_costs(N))              # pointwise
        rescaled = C
    elif block == "inverted_residual":
        h = expansion * C
        costs = (conv_costs(h, h, k, out, groups=h) + batch_norm_costs(h)      # depthwise
                 + conv_costs(h, N, 1, out) + batch_norm_costs(N))              # linear projection
        if expansion > 1:
            costs = costs + conv_costs(C, h, 1, input_size) + batch_norm_costs(h)
        rescaled = h
    elif block == "residual":
        costs = (conv_costs(C, N, k, out) + batch_norm_costs(N)
                 + conv_costs(N, N, k, out) + batch_norm_costs(N))
        if s > 1 or C != N:                                                     # projection shortcut
            costs = costs + conv_costs(C, N, 1, out) + batch_norm_costs(N)
        rescaled = N
    else:  # "shuffle"
        m, g = shuffle_bottleneck(N, groups), groups
        b = N if s == 1 else N - C
        costs = (conv_costs(C, m, 1, input_size, groups=g) + batch_norm_costs(m)
                 + conv_costs(m, m, k, out, groups=m) + batch_norm_costs(m)
                 + conv_costs(m, b, 1, out, groups=g) + batch_norm_costs(b))
        rescaled = b
    return (costs + se_costs(rescaled)) if se else costs


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: (B, C, H, W) with its channels as ``groups`` groups of
    :math:`C/g` is reshaped to (B, g, C/g, H, W), transposed to (B, C/g, g, H, W) and flattened
    back, so that channel ``i * C/g + j`` moves to ``j * g + i`` and every group of the next grouped
    convolution sees one channel from each group of the last. A new tensor; ``x`` is not changed.

    Raises:
        TypeError: ``x`` not a tensor, ``groups`` not an int. ValueError: ``x`` not 4-D, or
            ``groups`` < 1 or not dividing its channels.
    """
    check_type(x, "x", torch.Tensor, "a torch.Tensor")
    check_int(groups, "groups", 1)
    if x.dim() != 4 or x.shape[1] % groups:
        raise ValueError(f"x must be a (B, C, H, W) tensor with C divisible by groups={groups}, "
                         f"got shape {tuple(x.shape)}")
    B, C, H, W = x.shape
    return x.reshape(B, groups, C // groups, H, W).transpose(1, 2).reshape(B, C, H, W)


class ChannelShuffle(nn.Module):
    """:func:`channel_shuffle` as a layer (no parameters), so the model prints and traces it."""

    def __init__(self, groups: int):
        super().__init__()
        check_int(groups, "groups", 1)
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): rescale each channel by a weight in (0, 1)
    computed from the whole image, :math:`y = x \\cdot \\sigma(W_2\\, \\mathrm{relu}(W_1\\, \\bar x))`
    with :math:`\\bar x` (B, C, 1, 1) the channel means ("squeeze") and :math:`W_1, W_2`
    :math:`1 \\times 1` convolutions C -> :func:`se_channels` (C) -> C ("excitation").
    (B, C, H, W) -> (B, C, H, W). Costs: :func:`se_costs`."""

    def __init__(self, channels: int):
        super().__init__()
        r = se_channels(channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, r, 1)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(r, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.gate(self.expand(self.relu(self.reduce(self.pool(x)))))    # (B, C, 1, 1)
        return x * w


def conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1,
            activation: str | None = "relu") -> nn.Sequential:
    """The piece every block is made of: ``conv`` (k x k, padding k // 2, no bias) -> ``bn`` ->
    ``relu`` or ``relu6`` (none if ``activation`` is None: a linear layer).

    Raises:
        TypeError / ValueError: counts that are not ints >= 1, ``groups`` not dividing the channels,
            ``activation`` not "relu", "relu6" or None.
    """
    for value, name in ((in_channels, "in_channels"), (out_channels, "out_channels"), (kernel, "kernel"),
                        (stride, "stride"), (groups, "groups")):
        check_int(value, name, 1)
    _check_groups(in_channels, out_channels, groups)
    if activation is not None:
        check_choice(activation, "activation", ("relu", "relu6"))
    layers = OrderedDict(conv=nn.Conv2d(in_channels, out_channels, kernel, stride=stride,
                                        padding=kernel // 2, groups=groups, bias=False),
                         bn=nn.BatchNorm2d(out_channels))
    if activation is not None:
        layers[activation] = nn.ReLU() if activation == "relu" else nn.ReLU6()
    return nn.Sequential(layers)


class ConvBlock(nn.Sequential):
    """A standard convolution: ``conv`` k x k (stride s, g groups) -> ``bn`` -> ``relu``
    [-> ``se``]. (B, C_in, H_in, W_in) -> (B, C_out, H, W). Costs: :func:`block_costs` ``"conv"``.

    Raises:
        TypeError / ValueError: as :func:`check_block`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 groups: int = 1, se: bool = False):
        check_block("conv", in_channels, out_channels, kernel, stride, groups=groups, se=se)
        layers = OrderedDict(conv_bn(in_channels, out_channels, kernel, stride, groups).named_children())
        if se:
            layers["se"] = SqueezeExcite(out_channels)
        super().__init__(layers)


class SeparableBlock(nn.Sequential):
    """A depthwise separable convolution (MobileNet, Fig. 3): ``depthwise`` k x k with one filter
    per channel (groups = C_in, stride s) -> bn -> relu [-> ``se``], then ``pointwise`` 1 x 1
    C_in -> C_out -> bn -> relu. Costs: :func:`block_costs` ``"separable"``, about
    :math:`1/N + 1/k^2` of a ``ConvBlock``'s MACs.

    Raises:
        TypeError / ValueError: as :func:`check_block`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 se: bool = False):
        check_block("separable", in_channels, out_channels, kernel, stride, se=se)
        layers = OrderedDict(depthwise=conv_bn(in_channels, in_channels, kernel, stride, groups=in_channels))
        if se:
            layers["se"] = SqueezeExcite(in_channels)
        layers["pointwise"] = conv_bn(in_channels, out_channels, 1)
        super().__init__(layers)


class InvertedResidualBlock(nn.Module):
    """MobileNetV2's inverted residual with a linear bottleneck (Sandler et al. 2018, Table 1):

    ``expand`` 1 x 1, C_in -> t C_in, relu6 (left out when t = 1) -> ``depthwise`` k x k,
    stride s, relu6 [-> ``se``] -> ``project`` 1 x 1, t C_in -> C_out, batch norm and *no*
    activation -> plus the input when s = 1 and C_in = C_out.

    The residual joins the thin ends (the bottlenecks), not the wide ones as in ResNet: hence
    "inverted". The projection is linear because a ReLU on a low-dimensional space destroys
    information (the paper's Sec. 3.2). Costs: :func:`block_costs` ``"inverted_residual"``.

    Raises:
        TypeError / ValueError: as :func:`check_block`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 expansion: int = 6, se: bool = False):
        super().__init__()
        check_block("inverted_residual", in_channels, out_channels, kernel, stride, expansion, se=se)
        hidden = expansion * in_channels
        layers = OrderedDict()
        if expansion > 1:
            layers["expand"] = conv_bn(in_channels, hidden, 1, activation="relu6")
        layers["depthwise"] = conv_bn(hidden, hidden, kernel, stride, groups=hidden, activation="relu6")
        if se:
            layers["se"] = SqueezeExcite(hidden)
        layers["project"] = conv_bn(hidden, out_channels, 1, activation=None)
        self.layers = nn.Sequential(layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(x)                                    # (B, C_out, H, W)
        return x + y if self.use_residual else y


class ResidualBlock(nn.Module):
    """He et al.'s basic block (2016, Fig. 2): :math:`y = \\mathrm{relu}(F(x) + \\mathrm{shortcut}(x))`
    with :math:`F` = ``conv1`` k x k (stride s) -> bn -> relu -> ``conv2`` k x k -> bn [-> ``se``].
    The shortcut is the identity when the shape is kept, else a 1 x 1 convolution with stride s
    and batch norm (the paper's option B). Costs: :func:`block_costs` ``"residual"``.

    The identity path is why depth stops hurting: :math:`\\partial y / \\partial x = I +
    \\partial F / \\partial x`, so the gradient reaches early layers even where :math:`F`'s
    Jacobian is small, and a block can learn :math:`F = 0` to do nothing.

    Raises:
        TypeError / ValueError: as :func:`check_block`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 se: bool = False):
        super().__init__()
        check_block("residual", in_channels, out_channels, kernel, stride, se=se)
        self.conv1 = conv_bn(in_channels, out_channels, kernel, stride)
        self.conv2 = conv_bn(out_channels, out_channels, kernel, activation=None)
        self.se = SqueezeExcite(out_channels) if se else None
        self.shortcut = None
        if stride > 1 or in_channels != out_channels:
            self.shortcut = conv_bn(in_channels, out_channels, 1, stride, activation=None)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))                         # (B, C_out, H, W)
        if self.se is not None:
            y = self.se(y)
        return self.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ShuffleBlock(nn.Module):
    """A ShuffleNet unit (Zhang et al. 2018, Fig. 2b-c), small but faithful. The branch:
    ``gconv1`` 1 x 1 with g groups, C_in -> m (:func:`shuffle_bottleneck`) -> bn -> relu ->
    ``shuffle`` (:func:`channel_shuffle`) -> ``depthwise`` k x k, stride s -> bn (no relu, as in
    the paper) -> ``gconv2`` 1 x 1 with g groups, m -> b -> bn [-> ``se``]. Then

    * stride 1: :math:`y = \\mathrm{relu}(x + \\text{branch}(x))`, b = C_out = C_in;
    * stride > 1: :math:`y = \\mathrm{relu}([\\mathrm{avgpool}_{3 \\times 3, s}(x), \\text{branch}(x)])`,
      concatenated along channels, b = C_out - C_in.

    Without the shuffle, each output group of ``gconv2`` would only ever see one input group:
    the network would be g narrow networks side by side. (The paper leaves the first 1 x 1 of
    its first stage ungrouped; here every unit is grouped.) Costs: :func:`block_costs` ``"shuffle"``.

    Raises:
        TypeError / ValueError: as :func:`check_block`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 groups: int = 2, se: bool = False):
        super().__init__()
        check_block("shuffle", in_channels, out_channels, kernel, stride, groups=groups, se=se)
        m = shuffle_bottleneck(out_channels, groups)
        b = out_channels if stride == 1 else out_channels - in_channels
        layers = OrderedDict(
            gconv1=conv_bn(in_channels, m, 1, groups=groups),
            shuffle=ChannelShuffle(groups),
            depthwise=conv_bn(m, m, kernel, stride, groups=m, activation=None),
            gconv2=conv_bn(m, b, 1, groups=groups, activation=None))
        if se:
            layers["se"] = SqueezeExcite(b)
        self.branch = nn.Sequential(layers)
        self.pool = nn.AvgPool2d(3, stride, padding=1) if stride > 1 else None
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch(x)                                    # (B, b, H, W)
        if self.pool is None:
            return self.relu(x + y)
        return self.relu(torch.cat([self.pool(x), y], dim=1))  # (B, C_in + b, H, W)


def make_block(block: str, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
               expansion: int = 1, groups: int = 1, se: bool = False) -> nn.Module:
    """The block named ``block`` (one of :data:`BLOCK_TYPES`) with these arguments, freshly
    initialised from the global generator (seed through :func:`build_model`).

    Raises:
        TypeError / ValueError: as :func:`check_block`.
    """
    check_block(block, in_channels, out_channels, kernel, stride, expansion, groups, se)
    if block == "conv":
        return ConvBlock(in_channels, out_channels, kernel, stride, groups, se)
    if block == "separable":
        return SeparableBlock(in_channels, out_channels, kernel, stride, se)
    if block == "inverted_residual":
        return InvertedResidualBlock(in_channels, out_channels, kernel, stride, expansion, se)
    if block == "residual":
        return ResidualBlock(in_channels, out_channels, kernel, stride, se)
    return ShuffleBlock(in_channels, out_channels, kernel, stride, groups, se)


# ----------------------------------------------------------------------------- descriptions

@dataclass(frozen=True)
class Stage:
    """A run of ``depth`` blocks of one type: the first maps the previous width to ``width``
    with stride ``stride``, the others keep ``width`` at stride 1 (as in MobileNetV2's table).
    ``width`` is before the width multiplier. ``expansion`` (t) is for ``"inverted_residual"``,
    ``groups`` (g) for ``"conv"`` and ``"shuffle"``; elsewhere they stay 1.

    ``Stage("inverted_residual", 24, depth=2, stride=2, expansion=4)``

    Raises (on construction):
        ValueError: an unknown ``block``, an even ``kernel``, a count < 1, or ``expansion`` /
            ``groups`` != 1 on a block type that has none (each names its field).
        TypeError: a field of the wrong type (``width=16.0``, ``se=1``).
    """
    block: str
    width: int
    depth: int = 1
    stride: int = 1
    kernel: int = 3
    expansion: int = 1
    groups: int = 1
    se: bool = False

    def __post_init__(self) -> None:
        _check_block_fields(self.block, self.kernel, self.stride, self.expansion, self.groups, self.se,
                            prefix="Stage.")
        check_int(self.width, "Stage.width", 1)
        check_int(self.depth, "Stage.depth", 1)


@dataclass(frozen=True)
class Architecture:
    """A network as data: a stem, stages of blocks, a head, and the two MobileNet multipliers.

    The network: [resize to :math:`\\rho H \\times \\rho W`] -> ``stem`` (conv-bn-relu 3 x 3,
    ``stem_width`` channels, stride ``stem_stride``) -> ``stage1`` ... -> head -> ``num_classes``
    logits. Every width (stem and stages) becomes ``make_divisible(width_multiplier * width,
    width_divisor)``. The head is ``"avgpool"`` (global average pooling then ``fc``: :math:`N`
    weights per class whatever the resolution) or ``"flatten"`` (``flatten`` then ``fc`` on all
    :math:`N H W` values: its weights grow with the resolution, and tie the model to one input size).

    Frozen and hashable (a search can keep a set of seen architectures); lists given for
    ``stages`` or ``input_shape`` are stored as tuples. ``dataclasses.replace(a, width_multiplier=0.5)``
    gives a validated variant; :meth:`to_dict` / :meth:`from_dict` a JSON-ready form.

    Args:
        stages: one or more :class:`Stage`.
        stem_width, stem_stride: ints >= 1.
        head: one of :data:`HEADS`.
        width_multiplier: :math:`\\alpha`, a finite number > 0.
        resolution_multiplier: :math:`\\rho` in (0, 1]; the resized side is
            :math:`\\max(1, \\lfloor \\rho H + 1/2 \\rfloor)`.
        input_shape: (channels, height, width) of the images the model takes.
        num_classes: an int >= 1. width_divisor: an int >= 1 (1: no rounding beyond the nearest int).

    Raises (on construction, so nothing is ever built from a bad description):
        TypeError / ValueError: a field of the wrong type or value, naming it; a block whose
            widths do not fit it (groups not dividing its channels, a shuffle unit's widths),
            naming the stage and block; strides that shrink the image below 1 x 1.
    """
    stages: tuple[Stage, ...]
    stem_width: int = 16
    stem_stride: int = 1
    head: str = "avgpool"
    width_multiplier: float = 1.0
    resolution_multiplier: float = 1.0
    input_shape: tuple[int, int, int] = IMAGE_SHAPE
    num_classes: int = NUM_CLASSES
    width_divisor: int = 8

    def __post_init__(self) -> None:
        check_type(self.stages, "stages", (tuple, list), "a non-empty list of Stage")
        if not self.stages:
            raise ValueError("stages must hold at least one Stage, got none")
        for i, stage in enumerate(self.stages):
            check_type(stage, f"stages[{i}]", Stage, "a Stage")
        object.__setattr__(self, "stages", tuple(self.stages))
        check_int(self.stem_width, "stem_width", 1)
        check_int(self.stem_stride, "stem_stride", 1)
        check_choice(self.head, "head", HEADS)
        check_real(self.width_multiplier, "width_multiplier", 0, math.inf, low_open=True, high_open=True)
        check_real(self.resolution_multiplier, "resolution_multiplier", 0, 1, low_open=True)
        check_type(self.input_shape, "input_shape", (tuple, list), "a (channels, height, width) tuple")
        if len(self.input_shape) != 3 or not all(is_int(s) and s >= 1 for s in self.input_shape):
            raise ValueError(f"input_shape must be (channels, height, width), three ints >= 1, "
                             f"got {tuple(self.input_shape)!r}")
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        check_int(self.num_classes, "num_classes", 1)
        check_int(self.width_divisor, "width_divisor", 1)
        layout(self)                    # widths and sizes of every block: raises if one does not fit

    @property
    def resolution(self) -> tuple[int, int]:
        """The (height, width) the stem sees: the input's times :math:`\\rho`, rounded, at least 1."""
        _, H, W = self.input_shape
        rho = self.resolution_multiplier
        return max(1, math.floor(rho * H + 0.5)), max(1, math.floor(rho * W + 0.5))

    def scaled_width(self, width: int) -> int:
        """A width as built: ``make_divisible(width_multiplier * width, width_divisor)``."""
        return make_divisible(self.width_multiplier * width, self.width_divisor)

    def to_dict(self) -> dict:
        """Plain data (dicts, lists, numbers, strs), e.g. for JSON; :meth:`from_dict` inverts it."""
        d = asdict(self)
        d["stages"] = [dict(s) for s in d["stages"]]
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "Architecture":
        """The architecture described by ``data`` (as :meth:`to_dict` writes it; fields left out
        take their defaults).

        Raises:
            TypeError: ``data`` or a stage not a dict.
            ValueError: an unknown field (the message lists the known ones), or as the constructor.
        """
        check_type(data, "data", dict, "a dict of Architecture fields")
        _check_keys(data, cls, "data")
        stages = data.get("stages")
        check_type(stages, "data['stages']", (list, tuple), "a list of stage dicts")
        parsed = []
        for i, s in enumerate(stages):
            check_type(s, f"data['stages'][{i}]", dict, "a dict of Stage fields")
            _check_keys(s, Stage, f"data['stages'][{i}]")
            parsed.append(Stage(**s))
        return cls(**{**data, "stages": tuple(parsed)})


def _check_keys(data: dict, cls: type, name: str) -> None:
    known = [f.name for f in fields(cls)]
    unknown = [k for k in data if k not in known]
    if unknown:
        raise ValueError(f"{name} has unknown field(s) {unknown}; the fields of {cls.__name__} are {known}")


class BlockLayout(NamedTuple):
    """One block of a built architecture: where it sits, its arguments after the width multiplier,
    and its input and output sizes (height, width)."""
    name: str                    # "stage2.block1"
    block: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    expansion: int
    groups: int
    se: bool
    input_size: tuple[int, int]
    output_size: tuple[int, int]


def layout(architecture: Architecture) -> tuple[BlockLayout, ...]:
    """Every block of ``architecture`` in order, with its channels (after the width multiplier)
    and sizes: the table a notebook prints, the plan :func:`build_model` follows.

    Raises:
        TypeError: ``architecture`` is not an :class:`Architecture`.
        ValueError: a block whose widths do not fit it (:func:`check_block`, with the stage
            and block named), or a stride applied to a side shorter than the stride: the strides
            shrink the image below 1 x 1.
    """
    check_type(architecture, "architecture", Architecture, "an Architecture")
    a = architecture
    H, W = a.resolution
    if H < a.stem_stride or W < a.stem_stride:
        raise ValueError(f"stem_stride {a.stem_stride} shrinks the {H}x{W} input below 1x1")
    size = (conv_output_size(H, 3, a.stem_stride), conv_output_size(W, 3, a.stem_stride))
    channels = a.scaled_width(a.stem_width)
    blocks = []
    for i, stage in enumerate(a.stages, start=1):
        out_channels = a.scaled_width(stage.width)
        for j in range(1, stage.depth + 1):
            stride = stage.stride if j == 1 else 1
            where = f"stages[{i - 1}] ({stage.block}), block {j} of {stage.depth}"
            if size[0] < stride or size[1] < stride:
                raise ValueError(f"{where} has stride {stride} but its input is only {size[0]}x{size[1]}: "
                                 f"the strides shrink the {H}x{W} image below 1x1; remove a stride "
                                 "or raise the resolution")
            try:
                check_block(stage.block, channels, out_channels, stage.kernel, stride, stage.expansion,
                            stage.groups, stage.se)
            except ValueError as e:
                raise ValueError(f"{where}, {channels} -> {out_channels} channels: {e}") from None
            out_size = (conv_output_size(size[0], stage.kernel, stride),
                        conv_output_size(size[1], stage.kernel, stride))
            blocks.append(BlockLayout(f"stage{i}.block{j}", stage.block, channels, out_channels, stage.kernel,
                                      stride, stage.expansion, stage.groups, stage.se, size, out_size))
            channels, size = out_channels, out_size
    return tuple(blocks)


# ----------------------------------------------------------------------------- building and costing

def build_model(architecture: Architecture, seed: int = 0) -> nn.Sequential:
    """The network ``architecture`` describes, its weights drawn from a generator seeded with
    ``seed`` (the global RNG is left as it was): an ``nn.Sequential`` named ``resize`` (only when
    :math:`\\rho` changes the size: bilinear ``nn.Upsample``), ``stem``, ``stage1`` ... (each an
    ``nn.Sequential`` of ``block1`` ...), then ``pool`` (``"avgpool"`` head), ``flatten``, ``fc``.
    Input (B, *input_shape), output (B, num_classes) logits. Exports to ONNX.

    Raises:
        TypeError: ``architecture`` not an :class:`Architecture`; ``seed`` not an int.
        ValueError: ``seed`` outside [0, 2**32 - 1]. (A bad description cannot exist: its
            constructor raised.)
    """
    check_type(architecture, "architecture", Architecture, "an Architecture")
    check_int(seed, "seed", *SEED_RANGE)
    a = architecture
    plan = layout(a)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if a.resolution != tuple(a.input_shape[1:]):
            layers["resize"] = nn.Upsample(size=a.resolution, mode="bilinear", align_corners=False)
        layers["stem"] = conv_bn(a.input_shape[0], a.scaled_width(a.stem_width), 3, a.stem_stride)
        for i, stage in enumerate(a.stages, start=1):
            blocks = [b for b in plan if b.name.startswith(f"stage{i}.")]
            layers[f"stage{i}"] = nn.Sequential(OrderedDict(
                (b.name.split(".")[1], make_block(b.block, b.in_channels, b.out_channels, b.kernel,
                                                  b.stride, b.expansion, b.groups, b.se))
                for b in blocks))
        channels, (H, W) = plan[-1].out_channels, plan[-1].output_size
        if a.head == "avgpool":
            layers["pool"] = nn.AdaptiveAvgPool2d(1)              # (B, N, H, W) -> (B, N, 1, 1)
            features = channels
        else:
            features = channels * H * W
        layers["flatten"] = nn.Flatten()
        layers["fc"] = nn.Linear(features, a.num_classes)
        return nn.Sequential(layers)


def architecture_costs(architecture: Architecture) -> Costs:
    """Parameters and MACs of the network :func:`build_model` makes, from the formulas alone
    (nothing is built): the stem (a ``"conv"`` block), :func:`block_costs` of every block in
    :func:`layout`, and the head, :math:`N \\cdot \\text{classes} + \\text{classes}` parameters and
    :math:`N \\cdot \\text{classes}` MACs for ``"avgpool"``, :math:`H W` times more weights and MACs
    for ``"flatten"``. Agrees with :func:`course_lib.measure.count_parameters` and
    :func:`course_lib.measure.count_macs` of the built model (tested); the resize costs no MACs.

    Raises:
        TypeError: ``architecture`` not an :class:`Architecture`.
    """
    plan = layout(architecture)
    a = architecture
    total = block_costs("conv", a.input_shape[0], a.scaled_width(a.stem_width), a.resolution, 3, a.stem_stride)
    for b in plan:
        total = total + block_costs(b.block, b.in_channels, b.out_channels, b.input_size, b.kernel,
                                    b.stride, b.expansion, b.groups, b.se)
    H, W = plan[-1].output_size
    features = plan[-1].out_channels * (1 if a.head == "avgpool" else H * W)
    return total + conv_costs(features, a.num_classes, 1, (1, 1), bias=True)


# ----------------------------------------------------------------------------- the course's designs

def plain_and_residual(depth: int = 20, width: int = 16) -> tuple[Architecture, Architecture]:
    """He et al. (2016, Sec. 4.2)'s CIFAR networks for the degradation experiment, on 28 x 28:
    a ``depth``-layer plain network and the same with shortcuts, ``(plain, residual)``.

    Both: stem 3 x 3 (``width``), three stages at widths ``width``, 2 ``width``, 4 ``width``
    (28 -> 14 -> 7 pixels), then global average pooling and ``fc``: :math:`6n + 2` weight layers
    with :math:`n = (\\text{depth} - 2) / 6`. The plain stages are :math:`2n` ``"conv"`` blocks,
    the residual ones :math:`n` ``"residual"`` blocks of two convolutions each, so the two
    networks have the same convolutions; the residual one adds two 1 x 1 projection shortcuts
    where the width doubles (the paper's option B; its CIFAR nets used parameter-free zero
    padding, option A). Past some depth the plain network trains *worse*, on the training set too:
    not overfitting, but an optimisation problem the shortcuts remove.

    Raises:
        TypeError / ValueError: ``depth`` not an int 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56,
            110, ...); ``width`` not an int >= 1.
    """
    check_int(depth, "depth", 8)
    check_int(width, "width", 1)
    if (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 weight layers (8, 14, 20, 26, 32, 44, 56, 110), got {depth}")
    n = (depth - 2) // 6
    widths_strides = ((width, 1), (2 * width, 2), (4 * width, 2))
    plain = tuple(Stage("conv", w, depth=2 * n, stride=s) for w, s in widths_strides)
    residual = tuple(Stage("residual", w, depth=n, stride=s) for w, s in widths_strides)
    # width_divisor=1: the widths exactly as given
    return (Architecture(plain, stem_width=width, width_divisor=1),
            Architecture(residual, stem_width=width, width_divisor=1))


def _family() -> dict[str, Architecture]:
    """Six designs (five block types, the separable one with either head) at width multipliers
    1.0 and 0.5, named like torchvision's
    (``mobilenet_v2_x0_5``). All take Fashion-MNIST's 1 x 28 x 28 images, start with a 16-channel
    stem at stride 1, downsample 28 -> 14 -> 7, and end in global average pooling, except
    ``separable_fc``; the separable design is the standard CNN with each convolution made
    separable, so the block type is the only difference, and ``separable_fc`` is the separable
    design with a flatten + fully connected head over the last 7 x 7 map instead of the pooling
    (``64 * 49 * 10 - 64 * 10`` more weights and as many MACs at width 1.0: the position of a
    feature is kept)."""
    designs = {
        # the baseline: four 3x3 conv-bn-relu after the stem
        "cnn": (Stage("conv", 32, stride=2), Stage("conv", 32), Stage("conv", 64, stride=2), Stage("conv", 64)),
        # the same layout, each convolution depthwise separable (MobileNet)
        "separable": (Stage("separable", 32, stride=2), Stage("separable", 32),
                      Stage("separable", 64, stride=2), Stage("separable", 64)),
        # MobileNetV2's pattern (Table 2's widths 16, 24, 32, 64), narrower and shallower:
        # t = 1 first, then t = 4, residuals inside the stages
        "mobilenet_v2": (Stage("inverted_residual", 16, stride=2),
                         Stage("inverted_residual", 24, depth=2, stride=2, expansion=4),
                         Stage("inverted_residual", 32, depth=2, expansion=4),
                         Stage("inverted_residual", 64, expansion=4)),
        # ResNet's basic blocks, one per stage (projection shortcuts where the width changes)
        "resnet": (Stage("residual", 32, stride=2), Stage("residual", 64, stride=2)),
        # ShuffleNet units with 4 groups: a strided unit then a stride-1 unit per stage
        "shufflenet": (Stage("shuffle", 64, stride=2, groups=4), Stage("shuffle", 64, groups=4),
                       Stage("shuffle", 128, stride=2, groups=4), Stage("shuffle", 128, groups=4)),
    }
    designs["separable_fc"] = designs["separable"]      # the same layers, another head
    heads = {"separable_fc": "flatten"}                 # the others: global average pooling
    return {f"{name}_x{str(alpha).replace('.', '_')}": Architecture(stages, width_multiplier=alpha,
                                                                     head=heads.get(name, "avgpool"))
            for name, stages in designs.items() for alpha in (1.0, 0.5)}


# The course's Fashion-MNIST designs by name: a constant table, never modified (descriptions are
# frozen). "cnn_x1_0" is the baseline the others are compared with.
FASHION_FAMILY: dict[str, Architecture] = _family()


# ----------------------------------------------------------------------------- pictures of blocks

class DiagramBox(NamedTuple):
    """One box of a block's picture: a layer (or a conv-bn-activation unit) of the block, what it
    does in words, the shape (C, H, W) it outputs for one image, and its kind (for the colour:
    ``"conv"``, ``"depthwise"``, ``"pointwise"``, ``"grouped"``, ``"identity"`` or ``"other"``)."""
    name: str
    label: str
    shape: tuple[int, int, int]
    kind: str


class BlockDiagram(NamedTuple):
    """A block as :func:`plot_block` draws it: the input, the ``main`` path top to bottom, an
    optional ``shortcut`` (a box of kind ``"identity"`` for the identity) joined to the main path
    by ``merge`` (``"add"`` or ``"concat"``), the layers ``after`` the join, the output."""
    title: str
    input_shape: tuple[int, int, int]
    main: tuple[DiagramBox, ...]
    shortcut: DiagramBox | None
    merge: str | None
    after: tuple[DiagramBox, ...]
    output_shape: tuple[int, int, int]


_BLOCK_CLASSES = (ConvBlock, SeparableBlock, InvertedResidualBlock, ResidualBlock, ShuffleBlock)
_KIND_COLOURS = {"conv": "#4c72b0", "depthwise": "#dd8452", "pointwise": "#55a868", "grouped": "#8172b3",
                 "identity": "#ffffff", "other": "#c0c0c0", "io": "#eeeeee"}


def _describe_unit(name: str, layers: list[nn.Module]) -> tuple[str, str]:
    """Label (name, what it computes, channels) and kind of a unit: a convolution with its batch
    norm and activation, or one other layer."""
    conv = next((m for m in layers if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        layer = layers[0]
        if isinstance(layer, SqueezeExcite):
            r = layer.reduce
            what = f"squeeze-excite\n{r.in_channels}→{r.out_channels}→{layer.expand.out_channels}"
        elif isinstance(layer, ChannelShuffle):
            what = f"channel shuffle\n{layer.groups} groups"
        elif isinstance(layer, nn.AvgPool2d):
            what = f"{layer.kernel_size}×{layer.kernel_size} avg pool\nstride {layer.stride}"
        else:
            what = type(layer).__name__
        return f"{name}\n{what}", "other"
    k, s, g = conv.kernel_size[0], conv.stride[0], conv.groups
    if g > 1 and g == conv.in_channels == conv.out_channels:
        what, kind = f"{k}×{k} depthwise", "depthwise"
    elif g > 1:
        what, kind = f"{k}×{k} conv, g={g}", "grouped"
    elif k == 1:
        what, kind = "1×1 conv", "pointwise"
    else:
        what, kind = f"{k}×{k} conv", "conv"
    channels = f"{conv.in_channels}→{conv.out_channels}" + (f", stride {s}" if s > 1 else "")
    activation = next((type(m).__name__ for m in layers if isinstance(m, (nn.ReLU, nn.ReLU6))), "linear")
    norm = "BN, " if any(isinstance(m, nn.BatchNorm2d) for m in layers) else ""
    return f"{name}\n{what}\n{channels}\n{norm}{activation}", kind


def _block_units(block: nn.Module) -> tuple[list, object, str | None, list]:
    """(main units, shortcut unit / "identity" / None, merge, units after): each unit a
    (name, [layers], module whose output is the unit's)."""
    def seq(name: str, module: nn.Sequential):
        return (name, list(module.children()), module)

    def one(name: str, module: nn.Module):
        return (name, [module], module)

    if isinstance(block, ConvBlock):
        main = [("conv", [block.conv, block.bn, block.relu], block.relu)]
        if "se" in block._modules:
            main.append(one("se", block.se))
        return main, None, None, []
    if isinstance(block, SeparableBlock):
        return [seq(n, m) if n != "se" else one(n, m) for n, m in block.named_children()], None, None, []
    if isinstance(block, InvertedResidualBlock):
        main = [seq(n, m) if n != "se" else one(n, m) for n, m in block.layers.named_children()]
        return main, "identity" if block.use_residual else None, "add" if block.use_residual else None, []
    if isinstance(block, ResidualBlock):
        main = [seq("conv1", block.conv1), seq("conv2", block.conv2)]
        if block.se is not None:
            main.append(one("se", block.se))
        shortcut = "identity" if block.shortcut is None else seq("shortcut", block.shortcut)
        return main, shortcut, "add", [one("relu", block.relu)]
    main = [seq(n, m) if isinstance(m, nn.Sequential) else one(n, m) for n, m in block.branch.named_children()]
    if block.pool is None:
        return main, "identity", "add", [one("relu", block.relu)]
    return main, one("pool", block.pool), "concat", [one("relu", block.relu)]


def block_diagram(block: nn.Module, input_size: tuple[int, int] = (14, 14)) -> BlockDiagram:
    """What :func:`plot_block` draws, as data: the block's own layers, in order, each with the
    shape it outputs for one (C_in, H, W) image (found by running the block once on zeros, in
    eval mode, under ``torch.no_grad``; the block's mode is restored).

    Raises:
        TypeError: ``block`` is not one of this module's blocks (``ConvBlock``, ``SeparableBlock``,
            ``InvertedResidualBlock``, ``ResidualBlock``, ``ShuffleBlock``).
        ValueError: ``input_size`` not two ints >= 1.
    """
    check_type(block, "block", _BLOCK_CLASSES, "a block of course_lib.architectures (e.g. from make_block)")
    _check_size(input_size, "input_size")
    main_units, shortcut_unit, merge, after_units = _block_units(block)
    units = main_units + after_units + ([shortcut_unit] if isinstance(shortcut_unit, tuple) else [])
    in_channels = next(m for m in block.modules() if isinstance(m, nn.Conv2d)).in_channels
    shapes: dict[str, tuple[int, int, int]] = {}
    hooks = [module.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
             for name, _, module in units]
    was_training = block.training
    try:
        with torch.no_grad():
            output = block.eval()(torch.zeros(1, in_channels, *input_size))     # (1, C_out, H, W)
    finally:
        for hook in hooks:
            hook.remove()
        block.train(was_training)

    def box(unit) -> DiagramBox:
        name, layers, _ = unit
        label, kind = _describe_unit(name, layers)
        return DiagramBox(name, label, shapes[name], kind)

    input_shape = (in_channels, *input_size)
    shortcut = (DiagramBox("identity", "identity", input_shape, "identity") if shortcut_unit == "identity"
                else box(shortcut_unit) if shortcut_unit is not None else None)
    return BlockDiagram(type(block).__name__, input_shape, tuple(box(u) for u in main_units), shortcut, merge,
                        tuple(box(u) for u in after_units), tuple(output.shape[1:]))


def plot_block(block: nn.Module, input_size: tuple[int, int] = (14, 14), *, ax=None, pyplot: bool = True):
    """A picture of ``block`` drawn from its own layers (:func:`block_diagram`): one box per
    layer, top to bottom, labelled with what it computes and the shape it outputs, coloured by
    kind (standard, depthwise, 1 x 1, grouped convolution, other), with the shortcut drawn beside
    the main path and joined by + (add) or a concatenation. Returns the matplotlib ``Figure``.

    Args:
        ax: a matplotlib ``Axes`` to draw into (several blocks side by side); None: a new figure.
        pyplot: for a new figure, pyplot's (``plt.show()`` displays it) or a bare ``Figure``
            (safe in a widget callback), as in :mod:`course_lib.plots`.

    Raises:
        TypeError: as :func:`block_diagram`; ``ax`` not a matplotlib Axes; ``pyplot`` not a bool.
        ValueError: as :func:`block_diagram`.
    """
    from matplotlib.axes import Axes          # matplotlib only where a picture is drawn
    from matplotlib.patches import Circle, FancyBboxPatch

    from .plots import _new_figure

    check_type(ax, "ax", Axes, "a matplotlib Axes or None", allow_none=True)
    check_type(pyplot, "pyplot", bool, "True or False")
    diagram = block_diagram(block, input_size)               # checks the block before a figure exists
    rows = len(diagram.main) + len(diagram.after) + 2 + (diagram.merge is not None)
    step, width, height = 1.3, 2.0, 1.0             # in data units (equal on both axes): rows go down
    side = width / 2 + 0.95                         # the shortcut runs down the right-hand side
    left, right = -width / 2 - 1.4, side + 0.95     # room for the shapes (left) and the shortcut's box
    if ax is None:
        inch = 0.5                                  # per data unit: 6-point labels fit their boxes
        fig = _new_figure(((right - left) * inch, (step * (rows - 1) + 1.0) * inch + 0.3), pyplot)
        ax = fig.add_axes((0, 0, 1, 0.94))
    fig = ax.figure
    shape_text = lambda shape: "(" + ", ".join(str(v) for v in shape) + ")"          # noqa: E731

    def draw_box(y: float, label: str, shape, kind: str, x: float = 0.0, w: float = width):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - height / 2), w, height, boxstyle="round,pad=0.02",
                                    facecolor=_KIND_COLOURS[kind], edgecolor="black", linewidth=0.8))
        light = kind in ("io", "identity", "other")
        ax.text(x, y, label, ha="center", va="center", fontsize=6, linespacing=1.1,
                color="black" if light else "white")
        if shape is not None:                        # the output shape, left of the box
            ax.text(x - w / 2 - 0.08, y, shape_text(shape), ha="right", va="center", fontsize=6, color="#333333")

    def arrow(y_from: float, y_to: float):
        ax.annotate("", xy=(0, y_to + height / 2), xytext=(0, y_from - height / 2),
                    arrowprops=dict(arrowstyle="->", linewidth=0.8))

    def next_row(y: float) -> float:
        arrow(y, y - step)
        return y - step

    y = 0.0
    draw_box(y, "input", diagram.input_shape, "io")
    for b in diagram.main:
        y = next_row(y)
        draw_box(y, b.label, b.shape, b.kind)
    if diagram.merge is not None:
        y = next_row(y)
        ax.add_patch(Circle((0, y), 0.3, facecolor="white", edgecolor="black", linewidth=0.8))
        ax.text(0, y, "+" if diagram.merge == "add" else "concat", ha="center", va="center",
                fontsize=9 if diagram.merge == "add" else 5)
        ax.plot([width / 2, side, side], [0, 0, y], color="black", linewidth=0.8)
        ax.annotate("", xy=(0.3, y), xytext=(side, y), arrowprops=dict(arrowstyle="->", linewidth=0.8))
        s = diagram.shortcut
        if s.kind == "identity":
            ax.text(side + 0.06, y / 2, "identity", ha="left", va="center", fontsize=6, style="italic",
                    rotation=90)
        else:
            draw_box(y / 2, s.label, None, s.kind, x=side, w=1.7)
    for b in diagram.after:
        y = next_row(y)
        draw_box(y, b.label, b.shape, b.kind)
    y = next_row(y)
    draw_box(y, "output", diagram.output_shape, "io")
    ax.set_xlim(left, right)
    ax.set_ylim(y - 0.55, 0.55)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(diagram.title, fontsize=8)
    return fig


# ----------------------------------------------------------------------------- the panel's experiment

# The family design built from each block type (see FASHION_FAMILY).
DESIGNS = {"conv": "cnn", "separable": "separable", "inverted_residual": "mobilenet_v2", "residual": "resnet",
           "shuffle": "shufflenet"}
TRAINED_WIDTHS = (1.0, 0.5)        # the width multipliers of the zoo's family, all at resolution 1


@dataclass(frozen=True)
class ArchitectureExperiment:
    """A family design at chosen multipliers, costed and placed on a device without training:
    its int8 report (parameters, MACs, weight bytes, peak activations), the verdict on the
    device, and the test accuracy of the zoo model of that design, width and resolution if one
    is built (``zoo_name`` / ``test_accuracy``, else None), with the nearest built one."""
    block: str
    design: str
    architecture: Architecture
    depth_multiplier: int
    report: measure.ModelReport
    reference_costs: Costs                 # the same design at alpha = rho = 1, depth x1
    verdict: hardware.Verdict
    zoo_name: str | None
    test_accuracy: float | None
    nearest_name: str | None
    nearest_accuracy: float | None

    def lines(self) -> list[str]:
        """The panel's text, one line each."""
        a, r = self.architecture, self.report
        alpha, rho = a.width_multiplier, a.resolution_multiplier
        H, W = a.resolution
        widths = [a.scaled_width(a.stem_width)] + [a.scaled_width(s.width) for s in a.stages]
        ratio = r.macs / self.reference_costs.macs
        lines = [f"{self.design} design ({self.block} blocks): width multiplier α = {alpha:.2f}, resolution multiplier "
                 f"ρ = {rho:g} ({H}×{W} input), depth ×{self.depth_multiplier}; widths {widths}",
                 f"{r.parameters:,} parameters, {r.macs:,} MACs: {ratio:.2f}x the MACs at α = ρ = 1 "
                 f"(α²ρ² = {alpha ** 2 * rho ** 2:.2f})",
                 f"int8: weights {measure.format_bytes(r.weight_bytes)} (flash), peak activations "
                 f"{measure.format_bytes(r.peak_activation_bytes)} (SRAM)",
                 *hardware.verdict_lines(self.verdict)]
        if self.zoo_name is not None:
            lines.append(f"Fashion-MNIST test accuracy (zoo model {self.zoo_name}, fp32, the course's split): "
                         f"{100 * self.test_accuracy:.2f}%")
        else:
            nearest = (f"; nearest trained: {self.nearest_name}, {100 * self.nearest_accuracy:.2f}%"
                       if self.nearest_name is not None else "")
            lines.append(f"Fashion-MNIST test accuracy: not trained (no zoo model at these settings){nearest}")
        return lines


def _recorded_accuracy(name: str) -> float | None:
    """The test accuracy in a zoo model's manifest record, or None if it is not built."""
    from . import zoo               # zoo builds on this module: imported where used

    if name not in zoo.names():
        return None
    try:
        return 1.0 - zoo.entry(name)["test_error"]
    except zoo.CheckpointError:
        return None


def architecture_experiment(block: str, width_multiplier: float, resolution_multiplier: float,
                            device_name: str, depth_multiplier: int = 1) -> ArchitectureExperiment:
    """Notebook 05's panel: the family design of ``block`` (:data:`DESIGNS`: ``"conv"`` -> cnn,
    ``"separable"``, ``"inverted_residual"`` -> mobilenet_v2, ``"residual"`` -> resnet,
    ``"shuffle"`` -> shufflenet) at width multiplier :math:`\\alpha`, resolution multiplier
    :math:`\\rho` and each stage ``depth_multiplier`` times deeper, built (untrained) and
    measured as int8 (:func:`course_lib.measure.report`), with its verdict on the device
    (:func:`course_lib.hardware.check_fit`) and the recorded test accuracy of the zoo model with
    the same settings (``<design>_x1_0_fashion`` or ``_x0_5``, at :math:`\\rho = 1` and depth x1)
    when it is built. No training: well under a second, except for ``"This machine"``, which is
    measured on the spot.

    Raises:
        ValueError: an unknown ``block`` or ``device_name``; ``width_multiplier`` outside (0, 4];
            ``resolution_multiplier`` outside (0, 1]; ``depth_multiplier`` outside [1, 4]; a
            design these settings cannot build (strides that shrink the image below 1 x 1, a
            shuffle unit whose widths the groups do not divide), named as :class:`Architecture`
            names it.
        TypeError: arguments of the wrong type.
    """
    check_choice(block, "block", BLOCK_TYPES)
    check_real(width_multiplier, "width_multiplier", 0, 4, low_open=True)
    check_real(resolution_multiplier, "resolution_multiplier", 0, 1, low_open=True)
    check_int(depth_multiplier, "depth_multiplier", 1, 4)
    device = hardware.get_device(device_name)
    design = DESIGNS[block]
    base = FASHION_FAMILY[f"{design}_x1_0"]
    stages = tuple(replace(s, depth=s.depth * depth_multiplier) for s in base.stages)
    architecture = replace(base, stages=stages, width_multiplier=width_multiplier,
                           resolution_multiplier=resolution_multiplier)
    name = f"{design} α={width_multiplier:g} ρ={resolution_multiplier:g}"
    report = measure.report(build_model(architecture), name, "int8")
    trained = {alpha: _recorded_accuracy(f"{design}_x{str(alpha).replace('.', '_')}_fashion")
               for alpha in TRAINED_WIDTHS}
    trained = {alpha: accuracy for alpha, accuracy in trained.items() if accuracy is not None}
    zoo_name = test_accuracy = nearest_name = nearest_accuracy = None
    exact = resolution_multiplier == 1 and depth_multiplier == 1 and width_multiplier in trained
    if exact:
        zoo_name = f"{design}_x{str(float(width_multiplier)).replace('.', '_')}_fashion"
        test_accuracy = trained[width_multiplier]
    elif trained:
        alpha = min(trained, key=lambda t: (abs(t - width_multiplier), -t))
        nearest_name = f"{design}_x{str(alpha).replace('.', '_')}_fashion"
        nearest_accuracy = trained[alpha]
    return ArchitectureExperiment(block, design, architecture, depth_multiplier, report,
                                  architecture_costs(base), hardware.check_fit(report, device),
                                  zoo_name, test_accuracy, nearest_name, nearest_accuracy)
