"""Pictures of blocks: a block taken apart into boxes (:func:`block_diagram`) and drawn with
matplotlib (:func:`plot_block`)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..checks import check_type
from ..plots import new_figure
from .blocks import (
    ChannelShuffle,
    ConvBlock,
    InvertedResidualBlock,
    ResidualBlock,
    SeparableBlock,
    ShuffleBlock,
    SqueezeExcite,
)
from .costs import _check_size

__all__ = ["DiagramBox", "BlockDiagram", "block_diagram", "plot_block"]


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
    from matplotlib.axes import Axes  # matplotlib only where a picture is drawn
    from matplotlib.patches import Circle, FancyBboxPatch


    check_type(ax, "ax", Axes, "a matplotlib Axes or None", allow_none=True)
    check_type(pyplot, "pyplot", bool, "True or False")
    diagram = block_diagram(block, input_size)               # checks the block before a figure exists
    rows = len(diagram.main) + len(diagram.after) + 2 + (diagram.merge is not None)
    step, width, height = 1.3, 2.0, 1.0             # in data units (equal on both axes): rows go down
    side = width / 2 + 0.95                         # the shortcut runs down the right-hand side
    left, right = -width / 2 - 1.4, side + 0.95     # room for the shapes (left) and the shortcut's box
    if ax is None:
        inch = 0.5                                  # per data unit: 6-point labels fit their boxes
        fig = new_figure(((right - left) * inch, (step * (rows - 1) + 1.0) * inch + 0.3), pyplot)
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
