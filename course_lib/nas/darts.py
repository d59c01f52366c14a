"""DARTS: architecture search by gradient descent, on one small cell.

Liu, Simonyan & Yang (2019), "DARTS: Differentiable Architecture Search", ICLR. Instead of
choosing one operation per edge of a cell, every edge computes a *mixed operation*, a softmax-
weighted sum of all candidate operations (Sec. 2.2, eq. 2):

.. math:: \\bar o^{(i,j)}(x) = \\sum_{o \\in \\mathcal{O}}
          \\frac{\\exp \\alpha_o^{(i,j)}}{\\sum_{o'} \\exp \\alpha_{o'}^{(i,j)}}\\; o(x)

so the architecture :math:`\\alpha` becomes continuous. The bilevel problem
:math:`\\min_\\alpha \\mathcal{L}_{val}(w^*(\\alpha), \\alpha)` with
:math:`w^*(\\alpha) = \\arg\\min_w \\mathcal{L}_{train}(w, \\alpha)` (eq. 3-4) is solved
approximately by alternating one gradient step on :math:`\\alpha` with a *validation* batch and one
on :math:`w` with a *training* batch (Algorithm 1; the first-order approximation, Sec. 2.3 with
:math:`\\xi = 0`). At the end each edge keeps its strongest operation other than ``"zero"``
(Sec. 2.4): the discrete cell, to be trained from scratch.

The cell here is small, to run in seconds: a 3 x 3 stem at stride 2 (28 -> 14), then a cell with
two intermediate nodes, :math:`x_1 = \\bar o^{(0,1)}(x_0)`, :math:`x_2 = \\bar o^{(0,2)}(x_0) +
\\bar o^{(1,2)}(x_1)`, global average pooling of :math:`x_2` and a linear classifier. The
operations (:data:`DARTS_OPS`) are a subset of the paper's: zero, identity, 3 x 3 and 5 x 5
separable convolutions, 3 x 3 convolution, 3 x 3 max pooling; convolutions are relu-conv-bn
with non-affine batch norms, as in the paper.

Taught in ``notebooks/07_automl_search.ipynb``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..checks import check_choice, check_int, check_real, check_type
from ..data import SEED_RANGE, ImageSplit, batches, check_split
from ..measure import torch_threads
from ..train import evaluate

__all__ = ["DARTS_OPS", "EDGES", "Zero", "make_op", "MixedOp", "DartsNetwork", "discretize", "DartsResult",
           "darts_search"]

DARTS_OPS = ("zero", "skip", "sep3x3", "sep5x5", "conv3x3", "maxpool3x3")
EDGES = ((0, 1), (0, 2), (1, 2))               # (from node, to node) of the cell


class Zero(nn.Module):
    """The "no connection" operation: zeros of the input's shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int) -> nn.Module:
    """One candidate operation of :data:`DARTS_OPS` on ``channels`` channels, stride 1.

    Raises:
        ValueError: ``name`` is not one of :data:`DARTS_OPS`. TypeError / ValueError: ``channels``
            not an int >= 1.
    """
    check_choice(name, "name", DARTS_OPS)
    check_int(channels, "channels", 1)
    if name == "zero":
        return Zero()
    if name == "skip":
        return nn.Identity()
    if name == "maxpool3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    if name == "conv3x3":
        return nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                             nn.BatchNorm2d(channels, affine=False))
    k = 3 if name == "sep3x3" else 5
    return nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, k, padding=k // 2, groups=channels, bias=False),
                         nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels, affine=False))


class MixedOp(nn.Module):
    """:math:`\\bar o(x) = \\sum_o p_o\\, o(x)` for given weights :math:`p` (one per operation)."""

    def __init__(self, channels: int, ops: tuple[str, ...] = DARTS_OPS):
        super().__init__()
        self.ops = nn.ModuleList(make_op(name, channels) for name in ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops))


class DartsNetwork(nn.Module):
    """Stem, the cell of :data:`EDGES`, pooling, classifier. With ``genotype=None`` every edge is
    a :class:`MixedOp` weighted by ``softmax(self.alpha[edge])`` (the supernet of the search);
    with a genotype (one op name per edge) each edge is that one operation (the discrete cell).
    ``self.alpha`` (edges, ops) is kept apart from the weights: :meth:`weights` lists the others."""

    def __init__(self, channels: int = 8, num_classes: int = 10, genotype: tuple[str, ...] | None = None):
        check_int(channels, "channels", 1)
        check_int(num_classes, "num_classes", 2)
        if genotype is not None:
            if not isinstance(genotype, (tuple, list)) or len(genotype) != len(EDGES):
                raise ValueError(f"genotype must be a tuple of {len(EDGES)} operation names, one per edge of "
                                 f"EDGES {EDGES}, or None, got {genotype!r}")
            for k, name in enumerate(genotype):
                check_choice(name, f"genotype[{k}]", DARTS_OPS)
            genotype = tuple(genotype)
        super().__init__()
        self.genotype = genotype
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))                     # (B, C, 14, 14)
        if genotype is None:
            self.edges = nn.ModuleList(MixedOp(channels) for _ in EDGES)
            self.alpha = nn.Parameter(1e-3 * torch.randn(len(EDGES), len(DARTS_OPS)))   # the paper's init
        else:
            self.edges = nn.ModuleList(make_op(name, channels) for name in genotype)
            self.alpha = None
        self.fc = nn.Linear(channels, num_classes)

    def weights(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name != "alpha"]

    def edge(self, k: int, x: torch.Tensor) -> torch.Tensor:
        if self.alpha is None:
            return self.edges[k](x)
        return self.edges[k](x, F.softmax(self.alpha[k], dim=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.stem(x)
        x1 = self.edge(0, x0)                               # node 1 <- node 0
        x2 = self.edge(1, x0) + self.edge(2, x1)            # node 2 <- nodes 0 and 1
        return self.fc(x2.mean(dim=(2, 3)))


def discretize(alpha: torch.Tensor) -> tuple[str, ...]:
    """Each edge's operation of largest :math:`\\alpha` other than ``"zero"`` (DARTS Sec. 2.4).

    Raises:
        TypeError / ValueError: ``alpha`` not an (edges, len(DARTS_OPS)) tensor.
    """
    check_type(alpha, "alpha", torch.Tensor, "an (edges, ops) tensor")
    if alpha.dim() != 2 or alpha.shape[1] != len(DARTS_OPS):
        raise ValueError(f"alpha must have shape (edges, {len(DARTS_OPS)}), got {tuple(alpha.shape)}")
    masked = alpha.detach().clone()
    masked[:, DARTS_OPS.index("zero")] = -math.inf
    return tuple(DARTS_OPS[int(i)] for i in masked.argmax(dim=1))


@dataclass(frozen=True)
class DartsResult:
    """What :func:`darts_search` returns: the discrete ``genotype`` (one op per edge of
    :data:`EDGES`), the final softmax weights (edges, ops), their history (one (edges, ops)
    list per logged step), the search network's validation accuracy, and the seconds taken."""
    genotype: tuple[str, ...]
    weights: torch.Tensor
    history: list[list[list[float]]]
    validation_accuracy: float
    seconds: float


def darts_search(train: ImageSplit, validation: ImageSplit, steps: int, *, seed: int = 0, channels: int = 8,
                 batch_size: int = 64, weight_lr: float = 0.025, alpha_lr: float = 3e-3,
                 log_every: int = 10, threads: int | None = 1) -> DartsResult:
    """First-order DARTS (Liu et al. 2019, Algorithm 1 with :math:`\\xi = 0`) for ``steps``
    alternating steps: :math:`\\alpha` by Adam (lr ``alpha_lr``, ten times the paper's 3e-4 by
    default so that a short search moves; betas (0.5, 0.999) and weight decay 1e-3 as in the
    paper) on a ``validation`` batch, then :math:`w` by SGD (momentum 0.9,
    lr ``weight_lr``, weight decay 3e-4, gradient norm clipped at 5) on a ``train`` batch. Both
    splits are drawn in a seeded order; the network's initial weights follow ``seed``.

    ``validation`` must come from the training data (the course's validation split), never the
    test set: :math:`\\alpha` is *fitted* on it.

    Raises (before anything runs):
        TypeError / ValueError: splits that are not non-empty ImageSplits; ``steps``,
            ``channels``, ``batch_size``, ``log_every`` not ints >= 1; learning rates not finite
            numbers > 0; ``seed`` out of range; ``threads`` not an int >= 1 or None.
    """
    check_split(train, "train")
    check_split(validation, "validation")
    for value, name in ((steps, "steps"), (channels, "channels"), (batch_size, "batch_size"),
                        (log_every, "log_every")):
        check_int(value, name, 1)
    check_real(weight_lr, "weight_lr", 0, math.inf, low_open=True, high_open=True)
    check_real(alpha_lr, "alpha_lr", 0, math.inf, low_open=True, high_open=True)
    check_int(seed, "seed", *SEED_RANGE)
    check_int(threads, "threads", 1, allow_none=True)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DartsNetwork(channels, len(train.classes))
    w_opt = torch.optim.SGD(net.weights(), lr=weight_lr, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam([net.alpha], lr=alpha_lr, betas=(0.5, 0.999), weight_decay=1e-3)
    generator = torch.Generator().manual_seed(seed)

    def endless(split: ImageSplit):
        while True:
            yield from batches(split, batch_size, shuffle=True, generator=generator)

    train_batches, val_batches = endless(train), endless(validation)
    history = []
    with torch_threads(threads):
        net.train()
        for step in range(steps):
            x, y = next(val_batches)                        # architecture step on validation data
            a_opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            a_opt.step()
            x, y = next(train_batches)                      # weight step on training data
            w_opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            nn.utils.clip_grad_norm_(net.weights(), 5.0)
            w_opt.step()
            if step % log_every == 0 or step == steps - 1:
                history.append(F.softmax(net.alpha.detach(), dim=1).tolist())
        accuracy = evaluate(net, validation).accuracy
    weights = F.softmax(net.alpha.detach(), dim=1)
    return DartsResult(discretize(net.alpha), weights, history, accuracy, time.perf_counter() - start)
