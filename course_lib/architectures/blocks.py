"""The efficient blocks as ``nn.Module``s (conv, separable, inverted residual, residual, shuffle,
squeeze-and-excitation), their checks, and each block's cost formula (:func:`block_costs`)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..checks import check_choice, check_int, check_type
from .costs import (BLOCK_TYPES, Costs, _check_groups, _check_size, batch_norm_costs, conv_costs,
                    conv_output_size, se_channels, se_costs, shuffle_bottleneck)

__all__ = ["check_block", "block_costs", "channel_shuffle", "ChannelShuffle", "SqueezeExcite", "conv_bn",
           "ConvBlock", "SeparableBlock", "InvertedResidualBlock", "ResidualBlock", "ShuffleBlock", "make_block"]


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
