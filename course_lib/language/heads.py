"""Removing attention heads after training, with a Fisher-information mask (Kwon et al. 2022, "A Fast
Post-Training Pruning Framework for Transformers", Sec. 4).

Put a mask variable :math:`m_h = 1` on each head's output (``attention.head_mask``). Removing head
:math:`h` changes the loss, to second order, by about :math:`\\frac12 \\mathcal{I}_{hh}`, with the
empirical Fisher information :math:`\\mathcal{I}_{hh} = \\frac1N \\sum_{n} (\\partial L_n / \\partial m_h)^2`
over calibration windows (Eq. 5-7; the paper keeps the diagonal, as here). So the heads of lowest Fisher
information go first, ranked across all layers. Then **mask tuning** (Sec. 4.3): in each layer, the kept
heads' mask values are refit by linear least squares so that the layer's output matches the unpruned
layer's on the calibration inputs (each head's contribution :math:`W_O^{(h)} \\mathrm{head}_h` is a
column of the regression).

:func:`remove_heads` then cuts the pruned heads out of the query, key and value rows and the output
projection's columns: the model is really smaller and faster, not just masked.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from ..checks import check_int
from .gpt import GPT

__all__ = ["head_fisher", "mask_heads", "tune_head_masks", "remove_heads"]


def head_fisher(model: GPT, windows: torch.Tensor) -> torch.Tensor:
    """The diagonal empirical Fisher information of every head's mask, (n_layer, n_head): the mean over
    ``windows`` (n, T + 1; each window predicts its own next characters) of the squared gradient of that
    window's loss. ``model`` is not changed."""
    probe = copy.deepcopy(model).eval()
    masks = [block.attention.head_mask.requires_grad_(True) for block in probe.blocks]
    fisher = torch.zeros(len(masks), masks[0].numel())
    for window in windows:
        logits = probe(window[None, :-1])
        loss = F.cross_entropy(logits[0], window[1:])
        grads = torch.autograd.grad(loss, masks)
        fisher += torch.stack(grads) ** 2
    return fisher / len(windows)


def mask_heads(model: GPT, scores: torch.Tensor, n_remove: int) -> GPT:
    """A copy of ``model`` with the ``n_remove`` heads of lowest ``scores`` (n_layer, n_head), ranked
    across layers, masked to 0 (ties to the earlier head)."""
    check_int(n_remove, "n_remove", 0, scores.numel() - 1)
    masked = copy.deepcopy(model)
    lowest = torch.topk(scores.flatten(), n_remove, largest=False).indices if n_remove else []
    with torch.no_grad():
        for flat in lowest:
            layer, head = divmod(int(flat), scores.shape[1])
            masked.blocks[layer].attention.head_mask[head] = 0.0
    return masked


@torch.no_grad()
def tune_head_masks(model: GPT, masked: GPT, windows: torch.Tensor) -> GPT:
    """Kwon et al.'s mask tuning: a copy of ``masked`` whose kept heads' masks are refit, layer by layer,
    by least squares so each attention layer's output on ``windows`` (n, T) (as the tuned model so far
    passes them on) matches ``model``'s attention output on the same inputs."""
    tuned = copy.deepcopy(masked).eval()
    inputs: dict[int, torch.Tensor] = {}
    for i, (block, reference) in enumerate(zip(tuned.blocks, model.blocks)):
        hook = block.register_forward_pre_hook(lambda m, args, i=i: inputs.__setitem__(i, args[0]))
        tuned(windows)
        hook.remove()
        x = block.ln1(inputs[i])
        target = reference.attention.combine(_attend(reference.attention, x))      # the unpruned layer's output
        attention = block.attention
        heads = _attend(attention, x)                                                # (B, H, T, hd)
        kept = attention.head_mask.nonzero().flatten()
        columns = []
        for h in kept.tolist():
            one = torch.zeros_like(attention.head_mask)
            one[h] = 1.0
            columns.append(F.linear((heads * one.view(1, -1, 1, 1)).transpose(1, 2).flatten(2), attention.proj.weight
                                    ).flatten())
        solution = torch.linalg.lstsq(torch.stack(columns, 1).double(), target.flatten().double()).solution
        attention.head_mask[kept] = solution.float()
    return tuned


def _attend(attention: nn.Module, x: torch.Tensor) -> torch.Tensor:
    q, k, v = attention.heads(x)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


@torch.no_grad()
def remove_heads(model: GPT) -> GPT:
    """A copy of ``model`` without its masked heads: each layer's query, key and value lose those heads'
    rows, the output projection their columns; a kept head's mask value is folded into the projection."""
    smaller = copy.deepcopy(model)
    for block in smaller.blocks:
        attention = block.attention
        kept = attention.head_mask.nonzero().flatten()
        hd = attention.head_dim
        rows = (kept[:, None] * hd + torch.arange(hd)).flatten()
        for name in ("query", "key", "value"):
            layer = getattr(attention, name)
            cut = nn.Linear(layer.in_features, len(rows), bias=False)
            cut.weight.copy_(layer.weight[rows])
            setattr(attention, name, cut)
        proj = nn.Linear(len(rows), attention.proj.out_features, bias=False)
        proj.weight.copy_(attention.proj.weight[:, rows] * attention.head_mask[kept].repeat_interleave(hd))
        attention.proj = proj
        attention.n_head = len(kept)
        attention.head_mask = torch.ones(len(kept))
    return smaller
