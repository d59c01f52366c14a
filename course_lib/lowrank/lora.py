"""Low-rank adaptation: a frozen layer plus a trainable rank-r update.

**Low-rank adaptation** (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models")
turns the idea around: the weight stays, frozen, and only a rank-:math:`r` update is trained,
:math:`y = W x + b + \\frac{\\alpha}{r} B A x` with :math:`A \\in \\mathbb{R}^{r \\times n}`,
:math:`B \\in \\mathbb{R}^{m \\times r}` (:math:`B = 0` at first, so training starts from the base
model): :math:`r(m + n)` trainable numbers instead of :math:`mn`.

Taught in ``notebooks/04_low_rank.ipynb``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F

from ..checks import check_finite, check_int, check_model, check_real, check_type
from ..data import SEED_RANGE
from .layers import _chosen_layers

__all__ = ["LoRALinear", "add_lora", "count_trainable"]


# ----------------------------------------------------------------------------- low-rank adaptation

class LoRALinear(nn.Module):
    """A frozen ``Linear`` plus a trainable rank-r update (Hu et al. 2021):
    :math:`y = W x + b + \\frac{\\alpha}{r} B A x`.

    ``base`` is a copy of the given layer with ``requires_grad`` off; ``A`` (r, in) starts
    uniform in :math:`\\pm 1/\\sqrt{in}` (``nn.Linear``'s own initial range, as PEFT does),
    drawn from ``generator``; ``B`` (out, r) starts at zero, so at first the output is the base
    layer's exactly. ``alpha`` defaults to r (scale 1).

    Args:
        layer: the ``nn.Linear`` to adapt (not changed).
        rank: an int in [1, min(in, out)].
        alpha: a number > 0, or None.
        generator: a ``torch.Generator``; None: one seeded with 0 (the global one is never used).

    Raises:
        TypeError / ValueError: a layer that is not a Linear or holds NaN, a bad rank or alpha.
    """

    def __init__(self, layer: nn.Linear, rank: int, alpha: float | None = None,
                 generator: torch.Generator | None = None):
        super().__init__()
        check_type(layer, "layer", nn.Linear, "an nn.Linear")
        check_int(rank, "rank", 1, min(layer.in_features, layer.out_features))
        if alpha is not None:
            check_real(alpha, "alpha", 0, low_open=True)
        check_type(generator, "generator", torch.Generator, "a torch.Generator", allow_none=True)
        check_finite(layer.weight, "layer.weight")
        generator = torch.Generator().manual_seed(0) if generator is None else generator
        self.base = copy.deepcopy(layer).requires_grad_(False)
        self.rank = rank
        self.alpha = float(rank if alpha is None else alpha)
        like = {"device": layer.weight.device, "dtype": layer.weight.dtype}
        bound = 1.0 / math.sqrt(layer.in_features)
        A = (2 * torch.rand(rank, layer.in_features, generator=generator, device=generator.device) - 1) * bound
        self.A = nn.Parameter(A.to(**like))                                           # (r, in)
        self.B = nn.Parameter(torch.zeros(layer.out_features, rank, **like))          # (out, r)
        self.train(layer.training)

    @property
    def scale(self) -> float:
        """:math:`\\alpha / r`, the factor on the update."""
        return self.alpha / self.rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`W x + b + \\frac{\\alpha}{r} B (A x)`: (..., in) -> (..., out)."""
        return self.base(x) + self.scale * F.linear(F.linear(x, self.A), self.B)

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` with the update folded in, :math:`W + \\frac{\\alpha}{r} B A`:
        the same outputs, no extra cost at inference (its parameters are trainable again)."""
        merged = copy.deepcopy(self.base).requires_grad_(True)
        with torch.no_grad():
            merged.weight += self.scale * (self.B @ self.A)
        return merged

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}"


def add_lora(model: nn.Module, rank: int, alpha: float | None = None,
             layers: Iterable[str] | None = None, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every ``Linear`` (or the named ones) replaced by a
    :class:`LoRALinear` of rank ``rank``, and every other parameter frozen: training it trains
    only the A and B matrices, :math:`r(in + out)` numbers per layer (:func:`count_trainable`).
    The A matrices are drawn, layer by layer in model order, from one generator seeded with
    ``seed``. The given model is not changed.

    Raises:
        TypeError / ValueError: a bad model, rank, alpha or seed; ``layers`` naming a layer that
            is not a Linear of the model (the message names it).
    """
    check_int(rank, "rank", 1)
    check_int(seed, "seed", *SEED_RANGE)
    chosen = _chosen_layers(model, layers, "Linear", (nn.Linear,))
    adapted_already = {name for name, m in model.named_modules() if isinstance(m, LoRALinear)}
    chosen = {name: m for name, m in chosen.items() if name.rpartition(".")[0] not in adapted_already}
    if not chosen:
        raise ValueError("the model has no Linear layer to adapt")
    adapted = copy.deepcopy(model).requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    for name in chosen:
        try:
            lora = LoRALinear(adapted.get_submodule(name), rank, alpha, generator)
        except (TypeError, ValueError) as e:
            raise type(e)(f"layer {name!r}: {e}") from None
        adapted.set_submodule(name, lora)
    return adapted


def count_trainable(model: nn.Module) -> int:
    """Number of parameters with ``requires_grad`` (what an optimizer would update).

    Raises:
        TypeError: ``model`` not an ``nn.Module``.
    """
    check_model(model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
