"""Exercises of notebook 05, architecture design: the cost of a depthwise separable convolution,
MobileNetV2's inverted residual block, ShuffleNet's channel shuffle, MobileNetV2's width rounding,
and the Pareto front of a family of models.

Each exercise has a reference (``*_reference``, or ``InvertedResidualReference``, for
:func:`falls_back_to`) and a checker (``check_*``) that tests the learner's code on small
hand-made cases and names typical mistakes. The references are plain Python and torch, written to
be read beside the notebook; they agree with :mod:`course_lib.architectures` (``block_costs``,
``InvertedResidualBlock``, ``channel_shuffle``, ``make_divisible``; tested).
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..checks import is_int, is_real
from .checking import (call_learner_function, check_returned, check_unchanged, checker, CheckResult, close_to, describe,
                       failed, learner_code, not_attempted, passed, require, run_learner)

__all__ = ["separable_costs_reference", "SEPARABLE_CASES", "check_separable_costs", "InvertedResidualReference",
           "inverted_residual_state_dict", "INVERTED_RESIDUAL_CASES", "check_inverted_residual",
           "channel_shuffle_reference", "check_channel_shuffle", "make_divisible_reference",
           "MAKE_DIVISIBLE_CASES", "check_make_divisible", "pareto_front_reference", "PARETO_CASES",
           "check_pareto_front"]




def _whole(value) -> int | None:
    """``value`` as an int if it is a whole number (an int, or a float / one-element tensor equal to one)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not is_real(value):
        return None
    if not is_int(value) and not (math.isfinite(value) and value == int(value)):
        return None
    return int(value)


# ----------------------------------------------------------------------------- separable_costs

def separable_costs_reference(c_in: int, c_out: int, kernel: int, height: int, width: int,
                              stride: int = 1) -> tuple[int, int]:
    """``(parameters, macs)`` of a depthwise separable convolution without bias or batch norm on
    a (c_in, height, width) input (Howard et al. 2017, eq. 3-4): a depthwise ``kernel`` x
    ``kernel`` convolution, stride ``stride``, padding ``kernel // 2`` (one filter per input
    channel), then a pointwise 1 x 1 convolution ``c_in -> c_out``. With an odd kernel the output
    is :math:`H \\times W = \\lceil H_{in}/s \\rceil \\times \\lceil W_{in}/s \\rceil`;
    parameters :math:`C_{in} k^2 + C_{in} C_{out}`, MACs :math:`H W C_{in} (k^2 + C_{out})`."""
    padding = kernel // 2
    H = (height + 2 * padding - kernel) // stride + 1             # = ceil(height / stride) for odd k
    W = (width + 2 * padding - kernel) // stride + 1
    depthwise = c_in * kernel * kernel                            # one k x k filter per channel
    pointwise = c_in * c_out                                      # a 1 x 1 convolution
    return depthwise + pointwise, H * W * (depthwise + pointwise)


SEPARABLE_CASES = [  # (c_in, c_out, kernel, height, width, stride)
    (16, 32, 3, 14, 14, 1),
    (8, 16, 3, 28, 28, 2),
    (32, 64, 5, 7, 7, 2),          # 7 -> 4: the output size rounds up
    (3, 8, 3, 9, 5, 2),            # not square, odd sides
    (1, 10, 7, 6, 6, 1),
]


def _separable_mistakes(c_in, c_out, k, h, w, s) -> list[tuple[tuple, str]]:
    """What the usual wrong formulas give, each with the hint that fixes it (most specific first)."""
    C, N = c_in, c_out
    params, macs = separable_costs_reference(c_in, c_out, k, h, w, s)
    H, W = (h - 1) // s + 1, (w - 1) // s + 1                     # the right output size
    return [
        ((macs, params), "the order is (parameters, macs), as in architectures.Costs (notebook 00's "
                         "conv_cost returned (macs, parameters))."),
        ((C * N * k * k, H * W * C * N * k * k), "that is the STANDARD convolution's cost, C_in·C_out·k² "
                                                 "weights: the separable one splits it into a depthwise k×k "
                                                 "(C_in·k²) and a pointwise 1×1 (C_in·C_out)."),
        ((C * N * k * k + C * N, H * W * (C * N * k * k + C * N)),
         "the depthwise convolution has ONE k×k filter per input channel (groups = C_in): C_in·k² "
         "weights, not C_in·C_out·k²."),
        ((C * k * k, H * W * C * k * k), "the pointwise part is missing: add the 1×1 convolution C_in -> "
                                         "C_out (C_in·C_out weights, H·W·C_in·C_out MACs)."),
        ((C * N, H * W * C * N), "the depthwise part is missing: add the k×k depthwise convolution "
                                 "(C_in·k² weights, H·W·C_in·k² MACs)."),
        ((params, h * w * C * (k * k + N)), "use the OUTPUT resolution: with stride s the output is "
                                             "ceil(H/s) × ceil(W/s), and every MAC produces an output."),
        ((params, H * W * C * k * k + h * w * C * N), "the pointwise convolution runs on the depthwise "
                                                       "output, AFTER the stride: H_out·W_out·C_in·C_out MACs."),
        ((params, (h / s) * (w / s) * C * (k * k + N)),
         "the output size is a whole number of positions: H_out = (H - 1) // s + 1 (floor division), which is "
         "ceil(H / s); H / s is a fraction when s does not divide H."),
        ((params, (h // s) * (w // s) * C * (k * k + N)),
         "with padding k // 2 the output is ceil(H/s) = (H - 1) // s + 1, not H // s (7 -> 4 at stride 2)."),
        ((params, ((h - k) // s + 1) * ((w - k) // s + 1) * C * (k * k + N)),
         "the depthwise convolution is padded by k // 2 (\"same\" padding): H_out = ceil(H/s), not "
         "(H - k) // s + 1."),
        ((params + C + N, macs), "no biases here: each convolution is followed by a batch norm whose shift "
                                 "replaces the bias (bias=False)."),
        ((params + N, macs), "no bias on the pointwise convolution: the batch norm's shift replaces it."),
        ((params + C, macs), "no bias on the depthwise convolution: the batch norm's shift replaces it."),
        ((params + 2 * C + 2 * N, macs), "count the two convolutions only, not their batch norms."),
        ((C * k * k + C * N * k * k, H * W * (C * k * k + C * N * k * k)),
         "the pointwise convolution is 1×1: C_in·C_out weights, no k²."),
        ((params, 2 * macs), "MACs count multiply-accumulates, not FLOPs: do not multiply by 2."),
    ]


@checker("separable_costs")
def check_separable_costs(separable_costs: Callable[..., tuple[int, int]]) -> CheckResult:
    """Check ``separable_costs(c_in, c_out, kernel, height, width, stride=1) -> (parameters,
    macs)`` of a depthwise separable convolution without bias or batch norm: depthwise k x k
    (stride s, padding k // 2), then pointwise 1 x 1; two whole numbers,
    :math:`C_{in} k^2 + C_{in} C_{out}` and :math:`H W C_{in} (k^2 + C_{out})` at the output
    resolution :math:`\\lceil H_{in}/s \\rceil \\times \\lceil W_{in}/s \\rceil`.
    Reference: :func:`separable_costs_reference`."""
    name = "separable_costs"
    for case in SEPARABLE_CASES:
        expected = separable_costs_reference(*case)
        args = dict(zip(("c_in", "c_out", "kernel", "height", "width", "stride"), case))
        where = f"for {args}"
        got = run_learner(separable_costs, case, name, case=str(args))
        if hasattr(got, "parameters") and hasattr(got, "macs") and not isinstance(got, nn.Module):
            got = (got.parameters, got.macs)                          # an architectures.Costs is fine
        require(check_returned(got, name, where, (tuple, list), what="(parameters, macs) pair"))
        if len(got) != 2:
            return failed(name, f"{where} return a pair (parameters, macs), got {len(got)} values: {describe(got)}")
        whole = (_whole(got[0]), _whole(got[1]))
        if None in whole:
            return failed(name, f"{where} expected two whole numbers, got {describe(got)}. Hint: the output "
                          "size is a whole number of positions: H_out = (H - 1) // stride + 1 (floor "
                          "division), which is ceil(H / stride).")
        if whole != expected:
            hint = next((h for wrong, h in _separable_mistakes(*case) if tuple(wrong) == whole),
                        "parameters = C_in·k² + C_in·C_out; MACs = H_out·W_out·C_in·(k² + C_out) with "
                        "H_out = ceil(H / stride).")
            return failed(name, f"{where} expected (parameters, macs) = {expected}, got {whole}. Hint: {hint}")
    return passed(name, len(SEPARABLE_CASES), f"all {len(SEPARABLE_CASES)} cases match (depthwise + pointwise, "
                  "output resolution after the stride, no bias)")


# ----------------------------------------------------------------------------- InvertedResidual

class InvertedResidualReference(nn.Module):
    """MobileNetV2's inverted residual block with a linear bottleneck (Sandler et al. 2018,
    Table 1), for ``expansion`` > 1: ``expand`` 1 x 1 (C_in -> t C_in) -> ``bn1`` -> ReLU6 ->
    ``depthwise`` 3 x 3 (stride s, padding 1, groups = t C_in) -> ``bn2`` -> ReLU6 -> ``project``
    1 x 1 (t C_in -> C_out) -> ``bn3`` and NO activation; plus the input when s = 1 and
    C_in = C_out. Convolutions without bias. (B, C_in, H, W) -> (B, C_out, ceil(H/s), ceil(W/s)).
    :func:`inverted_residual_state_dict` loads a :class:`course_lib.architectures.InvertedResidualBlock`'s
    weights into it."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expansion: int = 4):
        super().__init__()
        hidden = expansion * in_channels                          # the expansion widens the input
        self.expand = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.project = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.bn1(self.expand(x)))                     # (B, t C_in, H, W)
        y = F.relu6(self.bn2(self.depthwise(y)))                  # (B, t C_in, H/s, W/s)
        y = self.bn3(self.project(y))                             # (B, C_out, H/s, W/s): linear
        return x + y if self.use_residual else y


_CONVERSION = {"layers.expand.conv": "expand", "layers.expand.bn": "bn1", "layers.depthwise.conv": "depthwise",
               "layers.depthwise.bn": "bn2", "layers.project.conv": "project", "layers.project.bn": "bn3"}


def inverted_residual_state_dict(block: nn.Module) -> dict[str, torch.Tensor]:
    """The state of a :class:`course_lib.architectures.InvertedResidualBlock` (expansion > 1, no
    squeeze-and-excitation, 3 x 3 kernel) under the names of :class:`InvertedResidualReference`
    (``expand``, ``bn1``, ``depthwise``, ``bn2``, ``project``, ``bn3``), to load into the
    exercise's block and compare the two.

    Raises:
        TypeError: ``block`` is not such a block. ValueError: it has no expansion layer or has
            a squeeze-and-excitation module.
    """
    from ..architectures import InvertedResidualBlock      # exercises sit below the library in the imports

    if not isinstance(block, InvertedResidualBlock):
        raise TypeError(f"block must be a course_lib.architectures.InvertedResidualBlock, got {type(block).__name__}")
    if "expand" not in block.layers._modules or "se" in block.layers._modules:
        raise ValueError("block must have an expansion layer (expansion > 1) and no squeeze-and-excitation")
    state = {}
    for key, value in block.state_dict().items():
        prefix, _, field = key.rpartition(".")
        state[f"{_CONVERSION[prefix]}.{field}"] = value.clone()
    return state


INVERTED_RESIDUAL_CASES = [  # (in_channels, out_channels, stride, expansion, height)
    (4, 4, 1, 4, 6),               # residual
    (4, 4, 2, 3, 6),               # same width, stride 2: no residual
    (3, 5, 1, 2, 5),               # width changes: no residual
    (6, 4, 2, 2, 7),               # odd side at stride 2
]


def _seeded_reference(in_channels: int, out_channels: int, stride: int, expansion: int,
                      seed: int) -> InvertedResidualReference:
    """The reference block in eval mode with weights and batch-norm statistics large enough that
    activations pass 6 (so ReLU and ReLU6 differ) and every batch norm changes its input."""
    g = torch.Generator().manual_seed(seed)
    block = InvertedResidualReference(in_channels, out_channels, stride, expansion)
    with torch.no_grad():
        for conv in (block.expand, block.depthwise, block.project):
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        for bn in (block.bn1, block.bn2, block.bn3):
            n = bn.num_features
            bn.weight.copy_(0.5 + 1.5 * torch.rand(n, generator=g))
            bn.bias.copy_(torch.randn(n, generator=g))
            bn.running_mean.copy_(0.5 * torch.randn(n, generator=g))
            bn.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return block.eval()


def _inverted_residual_mistakes(ref: InvertedResidualReference, x: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    """Outputs of the usual wrong forwards on the reference's own layers, each with its hint."""
    def forward(act1=F.relu6, act2=F.relu6, act3=None, bn=(True, True, True), residual=None, act_after=None):
        bn1, bn2, bn3 = (m if keep else nn.Identity() for m, keep in zip((ref.bn1, ref.bn2, ref.bn3), bn))
        y = bn1(ref.expand(x))
        y = act1(y) if act1 else y
        y = bn2(ref.depthwise(y))
        y = act2(y) if act2 else y
        y = bn3(ref.project(y))
        y = act3(y) if act3 else y
        y = x + y if (ref.use_residual if residual is None else residual) else y
        return act_after(y) if act_after else y

    candidates = [
        (forward(act3=F.relu6), "the projection is LINEAR: no ReLU6 after bn3 (a ReLU on the thin "
                                "bottleneck destroys information, the paper's Sec. 3.2)."),
        (forward(act3=F.relu), "the projection is LINEAR: no activation after bn3."),
        (forward(act1=F.relu, act2=F.relu), "MobileNetV2 uses ReLU6, min(max(x, 0), 6) (F.relu6 or "
                                            "nn.ReLU6), not ReLU: it stays robust in low precision."),
        (forward(act1=F.relu), "the activation after the expansion is ReLU6, not ReLU."),
        (forward(act2=F.relu), "the activation after the depthwise convolution is ReLU6, not ReLU."),
        (forward(act1=None), "ReLU6 after the expansion (bn1) is missing."),
        (forward(act2=None), "ReLU6 after the depthwise convolution (bn2) is missing."),
        (forward(act_after=F.relu6), "no activation after the addition either: MobileNetV2 adds the input "
                                     "to the linear bottleneck and stops there (unlike ResNet)."),
        (forward(act_after=F.relu), "no activation after the addition: the output is x + bn3(project(...))."),
    ]
    if ref.use_residual:
        candidates.append((forward(residual=False), "the residual is missing: at stride 1 with in_channels == "
                                                    "out_channels, return x + y."))
    for i, label in enumerate(("bn1", "bn2", "bn3")):
        keep = [True, True, True]
        keep[i] = False
        candidates.append((forward(bn=tuple(keep)), f"the batch norm {label} is missing from the forward: "
                                                    "each convolution is followed by its batch norm."))
    return candidates


def _structure_hint(block: nn.Module, c_in: int, c_out: int, stride: int, t: int) -> str | None:
    """Name what is wrong in the layers the learner built, or None."""
    hidden = t * c_in
    for attr in ("bn1", "bn2", "bn3"):
        if not isinstance(getattr(block, attr, None), nn.BatchNorm2d):
            return (f"missing BN: self.{attr} must be an nn.BatchNorm2d (each convolution is followed by a "
                    "batch norm: bn1 and bn2 on the hidden width, bn3 on out_channels).")
    for attr in ("expand", "depthwise", "project"):
        if not isinstance(getattr(block, attr, None), nn.Conv2d):
            return f"self.{attr} must be an nn.Conv2d (the names expand, depthwise, project are required)."
    expand, depthwise, project = block.expand, block.depthwise, block.project
    if expand.out_channels == t * c_out and t * c_out != hidden:
        return (f"hidden = expansion * in_channels = {hidden}: the expansion widens the block's INPUT, not "
                "its output.")
    shapes = ((expand, c_in, hidden, 1), (depthwise, hidden, hidden, 3), (project, hidden, c_out, 1))
    for conv, n_in, n_out, k in shapes:
        if (conv.in_channels, conv.out_channels, conv.kernel_size) != (n_in, n_out, (k, k)):
            return (f"expected expand = Conv2d({c_in}, {hidden}, 1), depthwise = Conv2d({hidden}, {hidden}, 3), "
                    f"project = Conv2d({hidden}, {c_out}, 1); got {describe(block, 300)}.")
    if depthwise.groups != hidden:
        return (f"the depthwise convolution needs groups=hidden ({hidden}): one 3×3 filter per channel; "
                f"with groups={depthwise.groups} it mixes channels, {hidden // depthwise.groups}x the weights.")
    if expand.groups != 1 or project.groups != 1:
        return "the 1×1 convolutions expand and project are ordinary (groups=1): they mix the channels."
    if expand.stride != (1, 1) or project.stride != (1, 1) or depthwise.stride != (stride, stride):
        return (f"the stride ({stride}) belongs to the depthwise convolution only (MobileNetV2, Table 1); "
                "expand and project keep stride 1.")
    if depthwise.padding != (1, 1):
        return "the depthwise 3×3 convolution needs padding=1, so that stride 1 keeps H × W."
    if any(conv.bias is not None for conv in (expand, depthwise, project)):
        return ("build the convolutions with bias=False: the batch norm after each one has its own shift β, "
                "so a bias would be wasted parameters.")
    for bn, n in ((block.bn1, hidden), (block.bn2, hidden), (block.bn3, c_out)):
        if bn.num_features != n:
            return f"bn1 and bn2 normalise the hidden width ({hidden}), bn3 out_channels ({c_out})."
    return None


@checker("InvertedResidual")
def check_inverted_residual(InvertedResidual: Callable) -> CheckResult:
    """Check a class ``InvertedResidual(in_channels, out_channels, stride=1, expansion=4)``, an
    ``nn.Module`` with layers named ``expand`` (Conv2d 1 x 1, C_in -> t C_in), ``bn1``,
    ``depthwise`` (Conv2d 3 x 3, stride, padding 1, groups t C_in), ``bn2``, ``project`` (Conv2d
    1 x 1, t C_in -> C_out), ``bn3``, all convolutions without bias, whose forward applies ReLU6
    after bn1 and bn2, none after bn3, and adds the input only when stride is 1 and C_in = C_out.
    Judged with the reference's weights loaded into the learner's block (eval mode), on inputs
    whose activations pass 6; the input must not change. Reference: :class:`InvertedResidualReference`."""
    name = "InvertedResidual"
    cls = learner_code(InvertedResidual)
    for i, (c_in, c_out, stride, t, size) in enumerate(INVERTED_RESIDUAL_CASES):
        call = f"InvertedResidual({c_in}, {c_out}, stride={stride}, expansion={t})"
        block, failure = call_learner_function(cls, (c_in, c_out, stride, t), name, case=call)
        if failure:
            return failure if failure.failed else not_attempted(name, "__init__ is not written yet")
        if not isinstance(block, nn.Module):
            return failed(name, f"{call} is not an nn.Module. Hint: class InvertedResidual(nn.Module), and call "
                          "super().__init__() first in __init__.")
        hint = _structure_hint(block, c_in, c_out, stride, t)
        if hint:
            return failed(name, f"for {call}: {hint}")
        ref = _seeded_reference(c_in, c_out, stride, t, seed=i)
        try:
            block.load_state_dict(ref.state_dict())
        except RuntimeError as e:
            return failed(name, f"for {call} the reference's weights do not load into your block ({e}). Hint: "
                          "keep exactly the six layers expand, bn1, depthwise, bn2, project, bn3 (activations "
                          "hold no weights).")
        block.eval()
        x = 2 * torch.randn(2, c_in, size, size, generator=torch.Generator().manual_seed(10 + i))
        original = x.clone()
        where = f"for {call} on x of shape {tuple(x.shape)}"
        with torch.no_grad():
            got, failure = call_learner_function(block, (x,), name, case=where[4:], hints={
                "must match the size": "x + y needs x and y of the same shape: add the residual only when "
                                       "stride == 1 and in_channels == out_channels.",
                "NoneType": "did forward return its result?"})
            if failure:
                return failure if failure.failed else not_attempted(name, "forward is not written yet")
            require(check_unchanged(original, x, name, where, "x", "y = ... builds new tensors; x += y or an "
                                    "in-place activation (inplace=True) on x would overwrite the input."))
            expected = ref(x)
            require(check_returned(got, name, where, torch.Tensor, dtype=x.dtype, shape=expected.shape,
                                   what="output"))
            if not close_to(got, expected):
                hint = next((h for wrong, h in _inverted_residual_mistakes(ref, x) if close_to(got, wrong)),
                            "expand -> bn1 -> ReLU6 -> depthwise -> bn2 -> ReLU6 -> project -> bn3, then + x "
                            "only when stride == 1 and in_channels == out_channels.")
                return failed(name, f"{where} your block's output differs from the reference's (max difference "
                              f"{(got.detach() - expected).abs().max().item():.3g}). Hint: {hint}")
    n = len(INVERTED_RESIDUAL_CASES)
    return passed(name, n, f"all {n} cases pass (layers and shapes, depthwise groups, stride on the depthwise "
                  "convolution, ReLU6 twice, linear projection, residual only at stride 1 with equal widths)")


# ----------------------------------------------------------------------------- channel_shuffle

def channel_shuffle_reference(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle (Zhang et al. 2018, Sec. 3.1): (B, C, H, W) seen as
    ``groups`` groups of C / g channels is reshaped to (B, g, C/g, H, W), the two channel axes
    are transposed and the result flattened back to (B, C, H, W): channel ``i * C/g + j`` moves
    to ``j * g + i``. A new tensor; ``x`` is not modified."""
    B, C, H, W = x.shape
    return x.reshape(B, groups, C // groups, H, W).transpose(1, 2).reshape(B, C, H, W)


def _shuffle_cases() -> list[tuple[torch.Tensor, int]]:
    def numbered(B, C, H, W, dtype=torch.float32):              # every entry different
        return torch.arange(B * C * H * W, dtype=dtype).reshape(B, C, H, W)
    return [
        (numbered(2, 8, 2, 2), 2),                  # two images, C/g = 4 != g
        (numbered(1, 6, 1, 1), 2),                  # the notebook's picture: [0 1 2 | 3 4 5] -> [0 3 1 4 2 5]
        (numbered(2, 12, 3, 2), 3),
        (numbered(1, 12, 2, 3, torch.float64), 4),
        (numbered(3, 8, 2, 2).transpose(2, 3), 4),  # not contiguous in memory
        (numbered(1, 5, 2, 2), 1),                  # one group: nothing moves
    ]


def _channel_order(got: torch.Tensor, x: torch.Tensor) -> list[int] | None:
    """The input channel each output channel holds (the same in every image), else None."""
    order = []
    for c in range(got.shape[1]):
        match = [k for k in range(x.shape[1]) if torch.equal(got[:, c], x[:, k])]
        if not match:
            return None
        order.append(match[0])
    return order


def _shuffle_mistakes(x: torch.Tensor, groups: int) -> list[tuple[torch.Tensor, str]]:
    B, C, H, W = x.shape
    return [
        (x, "the channels come back in their original order: a reshape alone only relabels the axes; "
            "transpose the two channel axes between the two reshapes: "
            "x.reshape(B, g, C // g, H, W).transpose(1, 2).reshape(B, C, H, W)."),
        (channel_shuffle_reference(x, C // groups), "groups and channels per group are swapped: reshape to "
                                                    "(B, groups, C // groups, H, W), groups FIRST (the channels "
                                                    "of one group are contiguous), then transpose(1, 2)."),
        (x.reshape(B, groups, C // groups, H, W).transpose(2, 3).reshape(B, C, H, W),
         "you transposed the wrong axes: after reshape(B, g, C // g, H, W), swap axis 1 (groups) with axis 2 "
         "(channels per group): transpose(1, 2), not (2, 3)."),
        (x.reshape(B, groups, C // groups, H, W).transpose(0, 1).reshape(B, C, H, W),
         "you transposed the wrong axes: the batch axis 0 stays in place; swap axes 1 and 2: transpose(1, 2)."),
        (x.flip(1), "that reverses the channels; the shuffle interleaves the groups: channel i·(C/g) + j goes "
                    "to position j·g + i."),
    ]


@checker("channel_shuffle")
def check_channel_shuffle(channel_shuffle: Callable[[torch.Tensor, int], torch.Tensor]) -> CheckResult:
    """Check ``channel_shuffle(x, groups) -> Tensor``: for ``x`` (B, C, H, W) with C divisible by
    ``groups``, a NEW tensor of the same shape and dtype whose channel ``j * g + i`` is ``x``'s
    channel ``i * C/g + j`` (reshape to (B, g, C/g, H, W), transpose axes 1 and 2, reshape back);
    images of the batch and pixels stay where they are; ``x`` unchanged, contiguous or not.
    Reference: :func:`channel_shuffle_reference`."""
    name = "channel_shuffle"
    cases = _shuffle_cases()
    for x, groups in cases:
        original = x.clone()
        layout = "" if x.is_contiguous() else ", not contiguous"
        where = f"for x of shape {tuple(x.shape)} ({x.dtype}{layout}) and groups={groups}"
        got = run_learner(channel_shuffle, (x, groups), name, case=where[4:], hints={
            "view size is not compatible": "after transpose the tensor is no longer contiguous in memory, so "
                        ".view cannot flatten it: use .reshape(...) (or .contiguous().view(...)).",
            "shape '[": "the reshape sizes must multiply to B·C·H·W: (B, groups, C // groups, H, W), with C = "
     "x.shape[1]."})
        require(check_unchanged(original, x, name, where, "x", "reshape and transpose return new views; "
                                "assigning into x (x[:] = ..., x.copy_(...)) overwrites the caller's activations."))
        expected = channel_shuffle_reference(x, groups)
        if isinstance(got, torch.Tensor) and got.dim() == 5:
            return failed(name, f"{where} your result has shape {tuple(got.shape)}. Hint: reshape back to "
                          "(B, C, H, W) after the transpose.")
        require(check_returned(got, name, where, torch.Tensor, dtype=x.dtype, shape=expected.shape))
        if not torch.equal(got, expected):
            hint = next((h for wrong, h in _shuffle_mistakes(x, groups) if torch.equal(got, wrong)), None)
            if hint is None:
                order = _channel_order(got, x)
                right = _channel_order(expected, x)
                hint = ("values moved between images or pixels: the shuffle only permutes channels (axis 1)."
                        if order is None else f"your channel order is {order}, expected {right}: output channel "
                        "j·g + i holds input channel i·(C/g) + j.")
            return failed(name, f"{where} the channels are not shuffled as expected. Hint: {hint}")
    return passed(name, len(cases), f"all {len(cases)} cases pass (groups interleaved, batch and pixels in "
                  "place, dtype kept, non-contiguous input, x unchanged)")


# ----------------------------------------------------------------------------- make_divisible

def make_divisible_reference(value: float, divisor: int = 8) -> int:
    """MobileNetV2's width rounding (torchvision's ``_make_divisible``): ``value`` to the nearest
    multiple of ``divisor`` (halves up), at least ``divisor``, and if that is more than 10 %
    below ``value``, one ``divisor`` more. An int."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:                    # never lose more than 10 % of the channels
        rounded += divisor
    return rounded


MAKE_DIVISIBLE_CASES = [  # (value, divisor)
    (32, 8), (16.0, 8), (0.35 * 32, 8), (4, 8), (3, 8), (12, 8), (20, 8), (17, 8), (18, 8), (90, 8), (94, 8),
    (100, 8), (60, 16), (3, 4), (0.5 * 24, 8), (5, 1), (1.5, 1),
    (10, 9),        # rounds to 9 = exactly 0.9 * 10: kept (the rule is strict)
    (8.85, 8),      # rounds to 8: 9.6 % below 8.85, but 10.6 % of 8 (the rule measures against value)
]


def _ten_percent(rounded: float, value: float, divisor: int) -> float:
    """MobileNetV2's last step, applied to another rounding: one divisor more if 10 % were lost."""
    return rounded + divisor if rounded < 0.9 * value else rounded


def _divisible_mistakes() -> list[tuple[Callable[[float, int], float], str]]:
    """Wrong roundings, each with its hint (the most telling first)."""
    return [
        (lambda v, d: max(d, int(v + d / 2) // d * d),
         "the 10 % rule is missing: when the rounded width is below 0.9 * value, add one divisor "
         "(0.35 * 32 = 11.2 rounds to 8, 29 % fewer channels, so it becomes 16)."),
        (lambda v, d: (lambda r: r + d if r <= 0.9 * v else r)(max(d, int(v + d / 2) // d * d)),
         "the 10 % rule is strict: a width exactly 10 % below value is kept (new < 0.9 * value, not <=; "
         "make_divisible(10, 9) is 9)."),
        (lambda v, d: (lambda r: r + d if v - r > 0.1 * r else r)(max(d, int(v + d / 2) // d * d)),
         "measure the 10 % against VALUE, the width asked for, not against the rounded width: new < 0.9 * value "
         "(8.85 rounds to 8, 9.6 % below 8.85: kept)."),
        (lambda v, d: int(v + d / 2) // d * d, "the 10 % rule and the minimum are missing: the width must be at "
                                               "least divisor, and at most 10 % below value."),
        (lambda v, d: _ten_percent(max(d, round(v / d) * d), v, d),
         "round() rounds halves to EVEN (round(2.5) == 2): MobileNetV2 rounds halves up, "
         "int(value + divisor / 2) // divisor * divisor."),
        (lambda v, d: max(d, round(v / d) * d), "round to the nearest multiple with halves up (int(value + "
                                                "divisor / 2) // divisor * divisor; round() rounds halves to "
                                                "even), and add the 10 % rule."),
        (lambda v, d: round(v / d) * d, "the result must be at least divisor (a layer with 0 channels), and "
                                        "round() rounds halves to even; see MobileNetV2's rule."),
        (lambda v, d: _ten_percent(max(d, int(v // d) * d), v, d),
         "round to the NEAREST multiple (add divisor / 2 before the floor division), not down."),
        (lambda v, d: max(d, int(v // d) * d), "round to the NEAREST multiple (int(value + divisor / 2) // "
                                               "divisor * divisor), not down, then apply the 10 % rule."),
        (lambda v, d: int(v // d) * d, "round to the nearest multiple, at least divisor, not down to 0."),
        (lambda v, d: max(d, math.ceil(v / d) * d), "round to the NEAREST multiple, not always up (20 -> 24 but "
                                                    "17 -> 16), then apply the 10 % rule."),
        (lambda v, d: max(1, int(v + d / 2) // d), "return the width itself (a multiple of divisor), not the "
                                                   "number of multiples."),
    ]


@checker("make_divisible")
def check_make_divisible(make_divisible: Callable[[float, int], int]) -> CheckResult:
    """Check ``make_divisible(value, divisor) -> int``: ``value`` rounded to the nearest multiple
    of ``divisor`` (halves up), at least ``divisor``, plus one ``divisor`` when that would be
    more than 10 % below ``value`` (MobileNetV2's ``_make_divisible``); a Python int.
    Reference: :func:`make_divisible_reference`."""
    name = "make_divisible"
    answers = []
    for value, divisor in MAKE_DIVISIBLE_CASES:
        where = f"for value={value!r}, divisor={divisor}"
        got = run_learner(make_divisible, (value, divisor), name, case=where[4:])
        expected = make_divisible_reference(value, divisor)
        if isinstance(got, float) and got == int(got):
            return failed(name, f"{where} expected the int {expected}, got the float {got!r}. Hint: a number of "
                          "channels is an int: `//` on a float gives a float (15.2 // 8 == 1.0); wrap it in int().")
        require(check_returned(got, name, where, int, what="width"))
        answers.append(got)
    expected = [make_divisible_reference(v, d) for v, d in MAKE_DIVISIBLE_CASES]
    if answers == expected:
        n = len(MAKE_DIVISIBLE_CASES)
        return passed(name, n, f"all {n} cases match (nearest multiple with halves up, at least divisor, the "
                      "10 % rule, an int)")
    first = next(i for i, (a, e) in enumerate(zip(answers, expected)) if a != e)
    value, divisor = MAKE_DIVISIBLE_CASES[first]
    mistakes = _divisible_mistakes()
    hint = next((h for wrong, h in mistakes                     # a rule that gives every answer you gave
                 if all(wrong(v, d) == a for (v, d), a in zip(MAKE_DIVISIBLE_CASES, answers))), None)
    hint = hint or next((h for wrong, h in mistakes if wrong(value, divisor) == answers[first]),
                        "new = max(divisor, int(value + divisor / 2) // divisor * divisor); if new < 0.9 * value: "
                        "new += divisor.")
    return failed(name, f"for value={value!r}, divisor={divisor} expected {expected[first]}, got {answers[first]}. "
                  f"Hint: {hint}")


# ----------------------------------------------------------------------------- pareto_front

def pareto_front_reference(costs: Sequence[float], accuracies: Sequence[float]) -> list[int]:
    """The indices of the models no other model dominates, sorted by cost (cheapest first).
    Model j dominates model i when it costs no more and is no less accurate, and is strictly
    better in one of the two: :math:`c_j \\le c_i`, :math:`a_j \\ge a_i`, :math:`(c_j, a_j) \\ne
    (c_i, a_i)`. (No two models have both the same cost and the same accuracy.) A sweep in order
    of cost, ties broken by accuracy descending, keeps each model more accurate than every
    cheaper one. The inputs are not modified."""
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -accuracies[i]))
    front, best = [], -math.inf
    for i in order:
        if accuracies[i] > best:                  # more accurate than everything cheaper
            front.append(i)
            best = accuracies[i]
    return front


PARETO_CASES = [  # (costs, accuracies)
    ([4, 1, 3, 2, 5], [0.90, 0.70, 0.85, 0.80, 0.88]),           # one dominated model (cost 5)
    ([10, 20, 30, 40], [0.90, 0.80, 0.85, 0.95]),                # dominated by a model that is not its neighbour
    ([2, 2, 1, 3], [0.80, 0.85, 0.70, 0.85]),                    # ties: same cost, then same accuracy
    ([5.5, 4.0, 3.5, 2.0, 1.0], [0.95, 0.90, 0.85, 0.80, 0.70]), # all on the front, given most expensive first
    ((7,), (0.5,)),                                              # one model
    ([3, 1, 2, 1, 3], [0.92, 0.80, 0.80, 0.75, 0.93]),           # ties in both, in several places
]


def _front(costs, accuracies, dominates) -> list[int]:
    """Brute force: the models no other dominates (by the predicate), sorted by cost then index."""
    n = len(costs)
    kept = [i for i in range(n) if not any(j != i and dominates(costs[j], accuracies[j], costs[i], accuracies[i])
                                           for j in range(n))]
    return sorted(kept, key=lambda i: (costs[i], i))


def _neighbour_sweep(costs, accuracies) -> list[int]:
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -accuracies[i]))
    return [i for k, i in enumerate(order) if k == 0 or accuracies[i] > accuracies[order[k - 1]]]


def _pareto_mistakes(costs, accuracies) -> list[tuple[list, str]]:
    right = pareto_front_reference(costs, accuracies)
    return [
        (sorted(right), "sort the indices by cost (cheapest first), not by index."),
        (right[::-1], "sort by cost ASCENDING: the cheapest model first."),
        (_front(costs, accuracies, lambda cj, aj, ci, ai: cj < ci and aj >= ai),
         "a model of the SAME cost and lower accuracy is dominated: drop it (if you sweep in order of cost, "
         "break cost ties by accuracy descending: key=lambda i: (costs[i], -accuracies[i]))."),
        (_front(costs, accuracies, lambda cj, aj, ci, ai: cj <= ci and aj > ai),
         "a model with the SAME accuracy as a cheaper one is dominated: keep a model only if it is STRICTLY "
         "more accurate than every cheaper one (>, not >=)."),
        (_front(costs, accuracies, lambda cj, aj, ci, ai: cj < ci and aj > ai),
         "ties: a model is dominated by one that is at least as good on both axes and strictly better on one "
         "(same cost and lower accuracy, or same accuracy and higher cost)."),
        (_front(costs, accuracies, lambda cj, aj, ci, ai: cj >= ci and aj >= ai and (cj, aj) != (ci, ai)),
         "LOWER cost is better: you kept the models for which no more expensive model is as accurate."),
        (_front(costs, accuracies, lambda cj, aj, ci, ai: cj <= ci and aj <= ai and (cj, aj) != (ci, ai)),
         "HIGHER accuracy is better: model j dominates i when it costs no more AND is no less accurate."),
        (_neighbour_sweep(costs, accuracies), "compare each model with the BEST accuracy among all cheaper "
                                              "models (a running maximum), not only with its neighbour."),
        ([costs[i] for i in right], "return the INDICES of the models, not their costs."),
        ([accuracies[i] for i in right], "return the INDICES of the models, not their accuracies."),
        ([(costs[i], accuracies[i]) for i in right], "return the INDICES of the models, not (cost, accuracy) "
                                                     "pairs."),
    ]


@checker("pareto_front")
def check_pareto_front(pareto_front: Callable[[Sequence[float], Sequence[float]], list[int]]) -> CheckResult:
    """Check ``pareto_front(costs, accuracies) -> list[int]``: the indices of the non-dominated
    models (j dominates i when :math:`c_j \\le c_i`, :math:`a_j \\ge a_i` and one is strict),
    sorted by cost; a list (or tuple) of ints; the inputs unchanged. No two models share both
    cost and accuracy. Reference: :func:`pareto_front_reference`."""
    name = "pareto_front"
    for costs, accuracies in copy.deepcopy(PARETO_CASES):        # the learner's code may sort its inputs
        given = (copy.copy(costs), copy.copy(accuracies))
        where = f"for costs={list(costs)}, accuracies={list(accuracies)}"
        got = run_learner(pareto_front, (costs, accuracies), name, case=where[4:])
        for before, after, label in ((given[0], costs, "costs"), (given[1], accuracies, "accuracies")):
            require(check_unchanged(before, after, name, where, label, "sorted(...) makes a new list; "
                                    f"{label}.sort() reorders the caller's list (and the indices lose their "
                                    "meaning)."))
        if isinstance(got, torch.Tensor) or type(got).__module__ == "numpy":
            return failed(name, f"{where} expected a list of ints, got {type(got).__name__}. Hint: convert with "
                          ".tolist().")
        require(check_returned(got, name, where, (list, tuple), what="list of indices"))
        expected = pareto_front_reference(costs, accuracies)
        if all(is_int(i) for i in got) and [int(i) for i in got] == expected:
            continue
        got_list = [tuple(v) if isinstance(v, (tuple, list)) else v for v in got]
        hint = next((h for wrong, h in _pareto_mistakes(costs, accuracies) if list(wrong) == got_list), None)
        if hint is None and not all(is_int(i) for i in got):
            hint = "return the indices (ints) of the models on the front."
        return failed(name, f"{where} expected the indices {expected}, got {list(got)}. Hint: " +
                      (hint or "a model is on the front when no other costs no more and is at least as accurate "
                                "(strictly better on one axis); sort the indices by cost."))
    n = len(PARETO_CASES)
    return passed(name, n, f"all {n} cases pass (dominance with ties in cost and in accuracy, sorted by cost, "
                  "indices, inputs unchanged)")
