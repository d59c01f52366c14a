"""Sizes, widths and closed-form costs: what a convolution, a batch norm or a squeeze-and-excitation
stage costs in parameters and multiply-accumulates, and the rounding of widths (MobileNet's
:func:`make_divisible`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..checks import check_int, check_real, check_type, is_int

__all__ = ["BLOCK_TYPES", "HEADS", "SE_REDUCTION", "make_divisible", "conv_output_size", "se_channels",
           "shuffle_bottleneck", "Costs", "conv_costs", "batch_norm_costs", "se_costs", "separable_ratio"]


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
