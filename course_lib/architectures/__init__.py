"""Architecture design: efficient blocks, what each one costs, and networks built from a description.

A network is designed cheap from the start instead of compressed afterwards. This package holds
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

Taught in ``notebooks/05_architecture_design.ipynb``; searched over in ``notebooks/07_automl_search.ipynb`` and ``notebooks/08_nas_for_a_device.ipynb``.

The package, one concern per module: :mod:`.costs` (sizes, widths and the cost formulas),
:mod:`.blocks` (the blocks as modules, and each block's costs), :mod:`.descriptions` (stages,
architectures, building and costing them, the course's designs), :mod:`.diagrams` (pictures of
blocks). The panel's experiment is in :mod:`course_lib.experiments`. Every public name is
importable from ``course_lib.architectures``.
"""

from __future__ import annotations

from .costs import (BLOCK_TYPES, HEADS, SE_REDUCTION, make_divisible, conv_output_size, se_channels,
                    shuffle_bottleneck, Costs, conv_costs, batch_norm_costs, se_costs, separable_ratio)
from .blocks import (check_block, block_costs, channel_shuffle, ChannelShuffle, SqueezeExcite, conv_bn,
                     ConvBlock, SeparableBlock, InvertedResidualBlock, ResidualBlock, ShuffleBlock, make_block)
from .descriptions import (Stage, Architecture, BlockLayout, layout, build_model, architecture_costs,
                           plain_and_residual, FASHION_FAMILY)
from .diagrams import DiagramBox, BlockDiagram, block_diagram, plot_block

__all__ = [
    # costs
    "BLOCK_TYPES", "HEADS", "SE_REDUCTION", "make_divisible", "conv_output_size", "se_channels",
    "shuffle_bottleneck", "Costs", "conv_costs", "batch_norm_costs", "se_costs", "separable_ratio",
    # blocks
    "check_block", "block_costs", "channel_shuffle", "ChannelShuffle", "SqueezeExcite", "conv_bn",
    "ConvBlock", "SeparableBlock", "InvertedResidualBlock", "ResidualBlock", "ShuffleBlock", "make_block",
    # descriptions
    "Stage", "Architecture", "BlockLayout", "layout", "build_model", "architecture_costs",
    "plain_and_residual", "FASHION_FAMILY",
    # diagrams
    "DiagramBox", "BlockDiagram", "block_diagram", "plot_block",
]
