"""Networks as descriptions: frozen, validated :class:`Stage` and :class:`Architecture` dataclasses,
their layout, :func:`build_model` and :func:`architecture_costs`, and the course's designs
(:data:`FASHION_FAMILY`, :func:`plain_and_residual`)."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import torch
from torch import nn

from ..checks import check_choice, check_int, check_real, check_type, is_int
from ..data import SEED_RANGE
from ..models import IMAGE_SHAPE, NUM_CLASSES
from .costs import Costs, HEADS, conv_costs, conv_output_size, make_divisible
from .blocks import _check_block_fields, block_costs, check_block, conv_bn, make_block

__all__ = ["Stage", "Architecture", "BlockLayout", "layout", "build_model", "architecture_costs",
           "plain_and_residual", "FASHION_FAMILY"]


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
