"""Pruning a transformer without retraining: magnitude against Wanda, unstructured and 2:4.

**Wanda** (Sun et al. 2024, "A Simple and Effective Pruning Approach for Large Language Models",
Eq. 1) scores each weight by its magnitude times the norm of the input it multiplies, over calibration
tokens, :math:`S_{ij} = |W_{ij}| \\cdot \\lVert X_j \\rVert_2`, and compares weights within each output
row (Sec. 3, "per output"): a weight on a channel that carries large activations matters more than its
size says. **Magnitude** pruning scores by :math:`|W_{ij}|` alone, compared the same way here, so the
two differ by the score only.

**2:4 semi-structured sparsity** keeps the 2 highest-scoring weights of every 4 consecutive inputs of a
row: 50 % sparsity in a pattern NVIDIA's Ampere tensor cores run at up to twice the speed (Mishra et al.
2021). A CPU has no such kernel; the point here is the accuracy that pattern costs.

Sparsity is the fraction of zeros. The layers are pruned block after block, each block's calibration
inputs coming through the blocks already pruned (Wanda's own code does the same).
"""

from __future__ import annotations

import copy

import torch

from ..checks import check_choice, check_tensor
from ..pruning import magnitude_mask
from .gpt import GPT
from .weights import BLOCK_LAYERS, linear_inputs

__all__ = ["PATTERNS", "wanda_scores", "row_mask", "n_of_m_mask", "prune_model", "linear_sparsity"]

PATTERNS = ("unstructured", "2:4")


def wanda_scores(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """:math:`|W_{ij}| \\cdot \\lVert X_j \\rVert_2` for a weight (out, in) and its inputs ``x`` (N, in)."""
    check_tensor(weight, "weight")
    check_tensor(x, "x")
    if x.dim() != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"x must be (N, {weight.shape[1]}) for a weight of {weight.shape[1]} inputs, "
                         f"got {tuple(x.shape)}")
    return weight.detach().abs() * x.detach().norm(dim=0)


def row_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """The 0/1 mask that zeroes, in each row, the ``round(sparsity * in)`` lowest scores (ties to the
    earlier index): :func:`course_lib.pruning.magnitude_mask` row by row (scores are not negative)."""
    return torch.stack([magnitude_mask(row, sparsity) for row in scores])


def n_of_m_mask(scores: torch.Tensor, n: int = 2, m: int = 4) -> torch.Tensor:
    """The 0/1 mask that keeps the ``n`` highest scores of every ``m`` consecutive inputs of a row
    (``m`` must divide the row)."""
    out, n_in = scores.shape
    if n_in % m:
        raise ValueError(f"m={m} must divide the {n_in} inputs of each row")
    groups = scores.reshape(out, n_in // m, m)
    keep = torch.topk(groups, n, dim=2).indices
    return torch.zeros_like(groups).scatter_(2, keep, 1.0).reshape(out, n_in)


@torch.no_grad()
def prune_model(model: GPT, method: str, pattern: str, calibration: torch.Tensor | None = None,
                sparsity: float = 0.5) -> GPT:
    """A copy of ``model`` whose block linears are pruned by ``method`` (``"magnitude"`` or ``"wanda"``,
    which needs ``calibration`` windows (n, T)) to ``pattern``: ``"unstructured"`` at ``sparsity``
    per output row, or ``"2:4"``. ``model`` is not changed."""
    check_choice(method, "method", ("magnitude", "wanda"))
    check_choice(pattern, "pattern", PATTERNS)
    if method == "wanda" and calibration is None:
        raise ValueError("method='wanda' needs calibration windows (its scores use the layers' inputs)")
    pruned = copy.deepcopy(model)
    for i in range(len(pruned.blocks)):
        names = [f"blocks.{i}.{n}" for n in BLOCK_LAYERS]
        inputs = linear_inputs(pruned, calibration, names) if method == "wanda" else {}
        for name in names:
            weight = pruned.get_submodule(name).weight
            scores = wanda_scores(weight, inputs[name]) if method == "wanda" else weight.abs()
            mask = n_of_m_mask(scores) if pattern == "2:4" else row_mask(scores, sparsity)
            weight.mul_(mask)
    return pruned


def linear_sparsity(model: GPT) -> float:
    """The fraction of zeros among the block linears' weights."""
    weights = [model.get_submodule(f"blocks.{i}.{n}").weight for i in range(len(model.blocks)) for n in BLOCK_LAYERS]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
