"""Exercises of notebook 01, structured pruning: choosing the channels to keep, removing them
from a Conv-BN-Conv block.

Each exercise has a reference (``*_reference``, for :func:`falls_back_to`) and a checker
(``check_*``) that tests the learner's code on small hand-made cases and names typical mistakes.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from .checking import check_returned, check_unchanged, checker, CheckResult, failed, passed, require, run_learner

__all__ = ["select_channels_reference", "check_select_channels", "remove_channels_reference",
           "check_remove_channels"]


# ----------------------------------------------------------------------------- select_channels

def select_channels_reference(weight: torch.Tensor, count: int) -> torch.Tensor:
    """Indices (int64) of the ``count`` output channels (rows, dim 0) of largest L1 norm
    :math:`\\sum |W_c|`, in increasing order (ties: the earlier channel)."""
    scores = weight.detach().reshape(weight.shape[0], -1).abs().sum(dim=1)      # (C_out,)
    return torch.argsort(scores, descending=True, stable=True)[:count].sort().values


def _channel_cases() -> list[tuple[torch.Tensor, int]]:
    g = torch.Generator().manual_seed(1)
    # Each wrong answer picks other rows: L1 top-2 = {0, 2}, least = {3, 4}, L2 = {1, 2},
    # signed sum = {1, 4}, columns instead of rows = {0, 1}.
    fc = torch.tensor([[1.0, -1.0, 1.0, -1.0], [3.2, 0.0, 0.0, 0.0], [-3.0, -3.0, 0.0, 0.0],
                       [0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.5, 0.5]])
    conv = torch.randn(6, 3, 3, 3, generator=g)
    conv[4] *= 5.0
    return [(fc, 2), (conv, 3), (torch.randn(8, 5, generator=g), 5), (fc, 1)]


@checker("select_channels")
def check_select_channels(select_channels: Callable[[torch.Tensor, int], torch.Tensor]) -> CheckResult:
    """Check ``select_channels(weight, count) -> Tensor``: the indices (an integer tensor of
    length ``count``) of the ``count`` output channels (rows, dim 0) of largest L1 norm
    :math:`\\sum |W_c|`, in increasing order; ``weight`` unchanged.
    Reference: :func:`select_channels_reference`."""
    name = "select_channels"
    cases = _channel_cases()
    for w, count in cases:
        original = w.clone()
        where = f"for a weight of shape {tuple(w.shape)} and count={count}"
        got = run_learner(select_channels, (w, count), name, case=where[4:])
        require(check_unchanged(original, w, name, where, "its input weight",
                                "compute the scores from weight.abs() (a new tensor), never with in-place ops."))
        if isinstance(got, torch.Tensor) and got.dtype == torch.bool:
            return failed(name, f"{where} you returned a boolean mask. Hint: return the INDICES of the "
                          "kept channels, e.g. torch.topk(scores, count).indices, sorted.")
        if isinstance(got, torch.Tensor) and got.is_floating_point():
            return failed(name, f"{where} the indices must be an INTEGER tensor, got {got.dtype}. Hint: "
                          "return torch.topk(scores, count).indices (or argsort), not the scores/values.")
        require(check_returned(got, name, where, torch.Tensor, dtype="integer", shape=(count,), what="indices"))
        expected = select_channels_reference(w, count)
        got_list = got.tolist()
        if got_list == expected.tolist():
            continue
        flat = w.reshape(w.shape[0], -1)
        l1 = flat.abs().sum(1)
        candidates = {
            "you kept the LEAST important channels: sort by descending norm (or use torch.topk).":
                torch.argsort(l1)[:count].sort().values.tolist(),
            "return the indices in increasing order (.sort()), so the pruned layer keeps the "
            "channels in their original order.": torch.argsort(l1, descending=True)[:count].tolist(),
            "the L1 norm sums ABSOLUTE values: weight.abs().sum(...), not weight.sum(...).":
                torch.argsort(flat.sum(1), descending=True)[:count].sort().values.tolist(),
            "use the L1 norm (sum of |w|), not the L2 norm.":
                torch.argsort(flat.norm(dim=1), descending=True)[:count].sort().values.tolist(),
        }
        if w.dim() == 2:
            candidates["score output channels (rows, dim 0), summing over every other dimension."] = \
                torch.argsort(w.abs().sum(0), descending=True)[:count].sort().values.tolist()
        hint = next((h for h, wrong in candidates.items() if wrong == got_list),
                    "score each output channel by weight[c].abs().sum(), keep the top `count`, sort them.")
        return failed(name, f"{where} expected {expected.tolist()}, got {got_list}. Hint: {hint}")
    return passed(name, len(cases), "all cases pass (conv and linear weights, L1 not L2, sorted "
                  "integer indices, weight unchanged)")


# ----------------------------------------------------------------------------- remove_channels

def remove_channels_reference(conv: nn.Conv2d, bn: nn.BatchNorm2d, next_conv: nn.Conv2d,
                              keep: torch.Tensor) -> tuple[nn.Conv2d, nn.BatchNorm2d, nn.Conv2d]:
    """New ``(conv, bn, next_conv)`` keeping only the channels ``keep`` (int64 indices) between
    ``conv`` and ``next_conv``: ``conv``'s output channels (weight rows and bias), the batch
    norm's weight, bias, running_mean and running_var, ``next_conv``'s input channels (weight
    columns). The given modules are not modified."""
    conv_kwargs = lambda c: dict(kernel_size=c.kernel_size, stride=c.stride, padding=c.padding,
                                 dilation=c.dilation, bias=c.bias is not None, padding_mode=c.padding_mode)
    new_conv = nn.Conv2d(conv.in_channels, len(keep), **conv_kwargs(conv))
    new_bn = nn.BatchNorm2d(len(keep), eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                            track_running_stats=bn.track_running_stats)
    new_next = nn.Conv2d(len(keep), next_conv.out_channels, **conv_kwargs(next_conv))
    with torch.no_grad():
        new_conv.weight.copy_(conv.weight[keep])                  # (k, C_in, kh, kw)
        if conv.bias is not None:
            new_conv.bias.copy_(conv.bias[keep])
        for name in ("weight", "bias", "running_mean", "running_var"):
            if getattr(bn, name) is not None:
                getattr(new_bn, name).copy_(getattr(bn, name)[keep])
        if bn.num_batches_tracked is not None:
            new_bn.num_batches_tracked.copy_(bn.num_batches_tracked)
        new_next.weight.copy_(next_conv.weight[:, keep])          # (C_next, k, kh, kw)
        if next_conv.bias is not None:
            new_next.bias.copy_(next_conv.bias)
    return new_conv.train(conv.training), new_bn.train(bn.training), new_next.train(next_conv.training)


def _conv_bn_conv(seed: int, stride: int, padding: int, bias: bool, next_kernel: int):
    """A seeded Conv(3->6) -> BN(6) -> Conv(6->4) in eval mode, with non-trivial BN statistics."""
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(3, 6, 3, stride=stride, padding=padding, bias=bias)
    bn = nn.BatchNorm2d(6)
    next_conv = nn.Conv2d(6, 4, next_kernel, padding=next_kernel // 2)
    with torch.no_grad():
        for p in [*conv.parameters(), *next_conv.parameters()]:
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        bn.weight.copy_(torch.rand(6, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(6, generator=g))
        bn.running_mean.copy_(torch.randn(6, generator=g))
        bn.running_var.copy_(torch.rand(6, generator=g) * 2 + 0.25)
        bn.num_batches_tracked.fill_(7)
    x = torch.randn(2, 3, 9, 9, generator=g)
    return conv.eval(), bn.eval(), next_conv.eval(), x


def _remove_cases():
    return [  # (modules and input, keep, keep is sorted)
        (_conv_bn_conv(0, stride=2, padding=1, bias=True, next_kernel=3), torch.tensor([0, 2, 3, 5]), True),
        (_conv_bn_conv(1, stride=1, padding=0, bias=False, next_kernel=1), torch.tensor([4]), True),
        (_conv_bn_conv(2, stride=1, padding=1, bias=True, next_kernel=3), torch.tensor([1, 2, 3, 4, 5]), True),
        (_conv_bn_conv(3, stride=2, padding=1, bias=True, next_kernel=3), torch.tensor([5, 0, 3]), False),
    ]


_REMOVE_HINTS = {
    "running_": "slice the BatchNorm's running_mean and running_var too (bn.running_mean[keep]).",
    "dimension 0 with size 4": "next_conv has only 4 output channels: the removed channels are its "
                               "INPUTS (dim 1), next_conv.weight[:, keep].",
}


def _forward(conv, bn, next_conv, x):
    return next_conv(torch.relu(bn(conv(x))))


def _structure_hint(conv, bn, next_conv, keep, new_conv, new_bn, new_next) -> str | None:
    """Name what is wrong in the returned modules, or None."""
    k = len(keep)
    if not (isinstance(new_conv, nn.Conv2d) and isinstance(new_bn, nn.BatchNorm2d)
            and isinstance(new_next, nn.Conv2d)):
        return ("return (new_conv, new_bn, new_next_conv): an nn.Conv2d, an nn.BatchNorm2d and an "
                f"nn.Conv2d; got ({type(new_conv).__name__}, {type(new_bn).__name__}, "
                f"{type(new_next).__name__}).")
    W, Wn = conv.weight.detach(), next_conv.weight.detach()
    if tuple(new_next.weight.shape) == (k, *Wn.shape[1:]) and k != Wn.shape[0]:
        return ("you sliced next_conv's OUTPUT channels (dim 0); the removed channels are its "
                "INPUTS: keep next_conv.weight[:, keep] and all its outputs.")
    if tuple(new_conv.weight.shape) != (k, *W.shape[1:]):
        return (f"new_conv's weight must have shape {(k, *W.shape[1:])} (the kept output channels), "
                f"got {tuple(new_conv.weight.shape)}: use conv.weight[keep].")
    if not torch.equal(new_conv.weight.detach(), W[keep]):
        return "new_conv's weight must be conv.weight[keep]: the kept channels, in the order of keep."
    if (conv.bias is None) != (new_conv.bias is None):
        return "keep conv's bias setting: bias=conv.bias is not None."
    if conv.bias is not None and tuple(new_conv.bias.shape) != (k,):
        return (f"slice conv's bias too: conv.bias[keep] (shape ({k},)), got shape "
                f"{tuple(new_conv.bias.shape)}.")
    if conv.bias is not None and not torch.equal(new_conv.bias.detach(), conv.bias.detach()[keep]):
        return "new_conv's bias must be conv.bias[keep]."
    for old, new, label in ((conv, new_conv, "conv"), (next_conv, new_next, "next_conv")):
        for attribute in ("stride", "padding", "dilation", "kernel_size"):
            if getattr(old, attribute) != getattr(new, attribute):
                return (f"{label}'s {attribute} was lost ({getattr(old, attribute)} became "
                        f"{getattr(new, attribute)}): build the new Conv2d with stride={label}.stride, "
                        f"padding={label}.padding, dilation={label}.dilation.")
    for attribute in ("weight", "bias", "running_mean", "running_var"):
        old, new = getattr(bn, attribute), getattr(new_bn, attribute)
        if new is None or tuple(new.shape) != (k,):
            return (f"the BatchNorm's {attribute} must keep the same channels: bn.{attribute}[keep] "
                    f"(shape ({k},)), got {None if new is None else tuple(new.shape)}. Its running "
                    "statistics are buffers, not parameters: slice them too.")
        if not torch.equal(new.detach(), old.detach()[keep]):
            return (f"the BatchNorm's {attribute} must be bn.{attribute}[keep]"
                    + (": copy the running statistics of the KEPT channels (a new BatchNorm2d starts "
                       "at mean 0, variance 1)." if attribute.startswith("running") else "."))
    if new_bn.eps != bn.eps:
        return f"keep the BatchNorm's eps ({bn.eps})."
    if tuple(new_next.weight.shape) != (Wn.shape[0], k, *Wn.shape[2:]):
        return (f"next_conv's weight must have shape {(Wn.shape[0], k, *Wn.shape[2:])}: keep its "
                "input channels next_conv.weight[:, keep].")
    if not torch.equal(new_next.weight.detach(), Wn[:, keep]):
        return "new_next_conv's weight must be next_conv.weight[:, keep]."
    if (next_conv.bias is None) != (new_next.bias is None) or (
            next_conv.bias is not None and not torch.equal(new_next.bias.detach(), next_conv.bias.detach())):
        return "next_conv keeps all its outputs, so its bias is copied whole (not sliced)."
    return None


@checker("remove_channels")
def check_remove_channels(remove_channels: Callable) -> CheckResult:
    """Check ``remove_channels(conv, bn, next_conv, keep) -> (new_conv, new_bn, new_next_conv)``:
    NEW modules (the given ones untouched) where ``conv`` keeps only the output channels ``keep``
    (an int64 tensor of indices, sorted in the notebook) in weight and bias; the BatchNorm2d keeps
    the same entries of weight, bias and its buffers running_mean, running_var (num_batches_tracked
    copied); ``next_conv`` keeps only those input channels; stride, padding, dilation and bias
    settings preserved. In eval mode the new trio computes exactly what the original computes
    with next_conv's input channels outside ``keep`` zeroed (an unsorted ``keep`` must still give
    a consistent trio). Reference: :func:`remove_channels_reference`."""
    name = "remove_channels"
    cases = _remove_cases()
    for (conv, bn, next_conv, x), keep, is_sorted in cases:
        before = copy.deepcopy((conv, bn, next_conv, keep))
        where = (f"for Conv2d(3, 6, stride={conv.stride[0]}, padding={conv.padding[0]}, bias="
                 f"{conv.bias is not None}) -> BatchNorm2d(6) -> ReLU -> Conv2d(6, 4, "
                 f"{next_conv.kernel_size[0]}) and keep={keep.tolist()}")
        got = run_learner(remove_channels, (conv, bn, next_conv, keep), name,
                          case=where[4:], hints=_REMOVE_HINTS)
        for old, new, label in zip(before, (conv, bn, next_conv, keep), ("conv", "bn", "next_conv", "keep")):
            require(check_unchanged(old, new, name, where, f"the given {label}", "build NEW modules "
                                    "(nn.Conv2d(...), nn.BatchNorm2d(...)) and copy the kept slices "
                                    "into them, or copy.deepcopy first; never assign to the given "
                                    "modules' .weight or buffers."))
        require(check_returned(got, name, where, (tuple, list), what="(new_conv, new_bn, new_next_conv)"))
        if len(got) != 3:
            return failed(name, f"{where} return three modules (new_conv, new_bn, new_next_conv), got "
                          f"{len(got)} values.")
        new_conv, new_bn, new_next = got
        if any(n is o for n, o in zip(got, (conv, bn, next_conv))):
            return failed(name, f"{where} you returned one of the given modules. Hint: return NEW "
                          "modules; the original block must stay usable.")
        hint = _structure_hint(conv, bn, next_conv, keep, new_conv, new_bn, new_next) if is_sorted else None
        if hint:
            return failed(name, f"{where}: {hint}")
        masked = copy.deepcopy(next_conv)
        with torch.no_grad():
            removed = torch.ones(conv.out_channels, dtype=torch.bool)
            removed[keep] = False
            masked.weight[:, removed] = 0
            expected = _forward(conv, bn, masked, x)
            try:
                out = _forward(*(copy.deepcopy(m).eval() for m in got), x)
            except Exception as e:
                return failed(name, f"{where} running your three modules on an input of shape "
                              f"{tuple(x.shape)} raised {type(e).__name__}: {e}. Hint: the kept channel "
                              "count must match between conv's outputs, the BatchNorm and next_conv's inputs.")
        if out.shape != expected.shape:
            return failed(name, f"{where} the new block's output has shape {tuple(out.shape)}, expected "
                          f"{tuple(expected.shape)}. Hint: keep conv's stride and padding and next_conv's "
                          "output channels.")
        if not torch.allclose(out, expected, atol=1e-5):
            hint = ("keep was given unsorted: slice conv, the BatchNorm and next_conv with the SAME index "
                    "tensor `keep` (not a boolean mask for some of them), so channel j means the same "
                    "channel in all three." if not is_sorted else
                    "the new block must compute what the original computes with the removed channels zeroed.")
            return failed(name, f"{where} the new block's output differs from the original's with those "
                          f"channels zeroed (max difference {(out - expected).abs().max().item():.3g}). "
                          f"Hint: {hint}")
    return passed(name, len(cases), f"all {len(cases)} cases pass (weights, bias, BatchNorm statistics "
                  "and next_conv's inputs sliced; stride and padding kept; originals untouched)")
