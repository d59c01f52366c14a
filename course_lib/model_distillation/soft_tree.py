"""Frosst & Hinton's (2017) soft decision tree, "Distilling a Neural Network Into a Soft Decision
Tree": a depth-:math:`d` tree of learned linear filters, trained in torch on labels or on a
teacher's soft targets, with the path one input takes as its explanation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .. import measure, models, train
from ..checks import check_choice, check_finite, check_int, check_real, check_tensor, check_type
from ..data import SEED_RANGE, ImageSplit, check_split
from ..distillation import check_temperature
from .common import _check_labels
from .mimic_learning import _check_teacher_args, _fit_on_teacher

__all__ = ["PREDICTIONS", "MAX_SOFT_TREE_DEPTH", "path_probabilities", "expected_cross_entropy", "balance_penalty",
           "SoftDecisionTree", "soft_decision_tree", "train_soft_tree", "PathStep", "TreePath", "node_filters",
           "tree_path"]


PREDICTIONS = ("max_path", "mixture")

MAX_SOFT_TREE_DEPTH = 16        # 65,535 filters: beyond this, the tree no longer fits in memory

_EPS = 1e-6


def _check_depth(depth: int, high: int = MAX_SOFT_TREE_DEPTH) -> None:
    check_int(depth, "depth", 1, high)


def _path_probabilities(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`path_probabilities` (below) without its checks: the soft tree calls it on every batch."""
    depth = (int(p.shape[1]) + 1).bit_length() - 1       # int(): a plain number when exported to ONNX too
    reach = torch.ones(len(p), 1, dtype=p.dtype, device=p.device)           # (B, 1): the root
    inner = []
    for level in range(depth):
        right = p[:, 2 ** level - 1: 2 ** (level + 1) - 1]                  # (B, 2^level)
        inner.append(reach)
        # children in heap order: left, right of the first node, then of the second, ...
        reach = torch.stack([reach * (1 - right), reach * right], dim=2).flatten(1)
    return torch.cat(inner, dim=1), reach


def path_probabilities(node_probabilities: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Path probabilities of a complete binary tree of depth :math:`d` from its inner nodes'
    probabilities of taking the *right* branch, :math:`p_i` (Frosst & Hinton 2017, section 2).

    Nodes are numbered breadth first (heap order): the root is 0, node :math:`i`'s left child
    :math:`2i + 1`, its right child :math:`2i + 2`. The probability of reaching a node is the
    product, over its ancestors, of :math:`p_i` where the path turns right and :math:`1 - p_i`
    where it turns left; the leaves' probabilities sum to 1.

    Args:
        node_probabilities: (B, 2^d - 1) values in [0, 1].

    Returns:
        ``(inner, leaves)``: (B, 2^d - 1) the probability of reaching each inner node (the root's
        is 1), and (B, 2^d) each leaf's, leaves left to right.

    Raises:
        TypeError / ValueError: not a (B, 2^d - 1) float tensor of values in [0, 1].
    """
    check_tensor(node_probabilities, "node_probabilities")
    p = node_probabilities
    n = p.shape[-1] if p.dim() == 2 else 0
    if p.dim() != 2 or n < 1 or (n + 1) & n or not p.is_floating_point():
        raise ValueError(f"node_probabilities must be a (batch, 2**depth - 1) float tensor (1, 3, 7, 15, ... "
                         f"inner nodes), got shape {tuple(p.shape)} of {p.dtype}")
    check_finite(p, "node_probabilities")
    if p.numel() and (p.min() < 0 or p.max() > 1):
        raise ValueError("node_probabilities must be probabilities in [0, 1] (a sigmoid's outputs)")
    return _path_probabilities(p)


def expected_cross_entropy(leaf_probabilities: torch.Tensor, leaf_log_distributions: torch.Tensor,
                           targets: torch.Tensor) -> torch.Tensor:
    """Frosst & Hinton's loss: the cross-entropy of each leaf's distribution :math:`Q^\\ell` with
    the target distribution :math:`T`, weighted by the leaf's path probability :math:`P^\\ell`,
    averaged over the batch:

    .. math::  L = -\\frac1B \\sum_b \\sum_\\ell P^\\ell(x_b) \\sum_k T_{bk} \\log Q^\\ell_k

    (The paper's eq. 2 prints a logarithm around the sum over leaves, which cannot be taken of
    this negative number; implementations, this one too, minimise the expectation itself.) The
    targets are the teacher's softened probabilities, or one-hot labels.

    Args:
        leaf_probabilities: (B, L); leaf_log_distributions: (L, C) :math:`\\log Q`; targets: (B, C),
            rows summing to 1.

    Raises:
        TypeError / ValueError: tensors of the wrong type or of shapes that do not fit together.
    """
    for t, name in ((leaf_probabilities, "leaf_probabilities"), (leaf_log_distributions, "leaf_log_distributions"),
                    (targets, "targets")):
        check_tensor(t, name)
        if t.dim() != 2 or not t.is_floating_point():
            raise ValueError(f"{name} must be a 2-D float tensor, got shape {tuple(t.shape)} of {t.dtype}")
    B, L = leaf_probabilities.shape
    if leaf_log_distributions.shape[0] != L or targets.shape != (B, leaf_log_distributions.shape[1]):
        raise ValueError(f"expected leaf_probabilities (B, L), leaf_log_distributions (L, C) and targets (B, C), "
                         f"got {tuple(leaf_probabilities.shape)}, {tuple(leaf_log_distributions.shape)} and "
                         f"{tuple(targets.shape)}")
    per_leaf = targets @ leaf_log_distributions.T                         # (B, L): sum_k T_k log Q^l_k
    return -(leaf_probabilities * per_leaf).sum(dim=1).mean()


def balance_penalty(inner_probabilities: torch.Tensor, node_probabilities: torch.Tensor,
                    strength: float) -> torch.Tensor:
    """Frosst & Hinton's penalty for inner nodes that send everything one way: for each inner node
    :math:`i`, the batch's share of its mass that goes right,

    .. math::  \\alpha_i = \\frac{\\sum_x P^i(x)\\, p_i(x)}{\\sum_x P^i(x)},

    and :math:`C = -\\sum_i \\lambda_{d(i)} \\tfrac12 \\big(\\log \\alpha_i + \\log(1 - \\alpha_i)\\big)`,
    smallest when every node splits its inputs evenly. The strength decays with the node's depth
    :math:`d(i)` (the root has depth 0): :math:`\\lambda_d = \\lambda\\, 2^{-d}`, since deeper nodes
    see fewer examples and an even split matters less there. (The paper also suggests a running
    average of :math:`\\alpha_i` over batches for deep nodes; this is the per-batch form.)

    Args:
        inner_probabilities: (B, n) :math:`P^i`, from :func:`path_probabilities`.
        node_probabilities: (B, n) :math:`p_i`.
        strength: :math:`\\lambda` >= 0.

    Raises:
        TypeError / ValueError: tensors of different shapes or not (B, 2^d - 1); ``strength``
            not a finite number >= 0.
    """
    check_tensor(inner_probabilities, "inner_probabilities")
    check_tensor(node_probabilities, "node_probabilities")
    if inner_probabilities.shape != node_probabilities.shape or node_probabilities.dim() != 2:
        raise ValueError(f"inner_probabilities and node_probabilities must be (batch, inner nodes) of one shape, "
                         f"got {tuple(inner_probabilities.shape)} and {tuple(node_probabilities.shape)}")
    check_real(strength, "strength", 0, math.inf, high_open=True)
    n = node_probabilities.shape[1]
    alpha = (inner_probabilities * node_probabilities).sum(dim=0) / inner_probabilities.sum(dim=0).clamp_min(_EPS)
    alpha = alpha.clamp(_EPS, 1 - _EPS)                                        # (n,)
    node_depth = torch.tensor([(i + 1).bit_length() - 1 for i in range(n)])    # (n,): 0, 1, 1, 2, 2, 2, 2, ...
    lam = (strength * 2.0 ** -node_depth.double()).to(alpha)                  # (n,)
    return -(lam * 0.5 * (alpha.log() + (1 - alpha).log())).sum()


class SoftDecisionTree(nn.Module):
    """Frosst & Hinton (2017), "Distilling a Neural Network Into a Soft Decision Tree": a complete
    binary tree of depth :math:`d` whose :math:`2^d - 1` inner nodes are learned linear filters
    and whose :math:`2^d` leaves are learned distributions over the classes.

    Inner node :math:`i` goes right with probability :math:`p_i(x) = \\sigma(\\beta (x w_i + b_i))`
    (``beta``, the paper's inverse temperature, sharpens the decisions); leaf :math:`\\ell` holds
    :math:`Q^\\ell = \\mathrm{softmax}(\\phi^\\ell)`. All filters are one ``nn.Linear`` (row
    :math:`i` is :math:`w_i`), so every node's probability comes from one matrix product.

    ``forward`` returns log-probabilities (B, C), usable as logits by ``train.evaluate`` and
    :func:`fidelity`: with ``prediction="max_path"`` (the paper's rule) the distribution of the
    leaf with the greatest path probability, with ``"mixture"`` the path-weighted average
    :math:`\\sum_\\ell P^\\ell Q^\\ell`. Train it with :func:`train_soft_tree`.

    Raises (on construction):
        TypeError / ValueError: ``depth`` not an int in [1, 16]; ``image_shape`` not a tuple of
            ints >= 1; ``num_classes`` < 2; ``beta`` not a finite number > 0; an unknown
            ``prediction`` (one of :data:`PREDICTIONS`).
    """

    def __init__(self, depth: int, image_shape: tuple[int, ...] = models.IMAGE_SHAPE,
                 num_classes: int = models.NUM_CLASSES, beta: float = 1.0, prediction: str = "max_path") -> None:
        super().__init__()
        _check_depth(depth)
        measure.check_input_shape(image_shape)
        check_int(num_classes, "num_classes", 2)
        check_real(beta, "beta", 0, math.inf, low_open=True, high_open=True)
        check_choice(prediction, "prediction", PREDICTIONS)
        self.depth, self.image_shape, self.beta, self.prediction = depth, tuple(image_shape), beta, prediction
        self.flatten = nn.Flatten()
        self.inner = nn.Linear(math.prod(image_shape), 2 ** depth - 1)               # filters w_i, biases b_i
        self.leaves = nn.Parameter(0.1 * torch.randn(2 ** depth, num_classes))     # phi: (L, C)

    def extra_repr(self) -> str:
        return f"depth={self.depth}, beta={self.beta}, prediction={self.prediction!r}"

    def node_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`p_i(x) = \\sigma(\\beta(x w_i + b_i))` for every inner node: (B, 2^d - 1)."""
        return torch.sigmoid(self.beta * self.inner(self.flatten(x)))

    def leaf_log_distributions(self) -> torch.Tensor:
        """:math:`\\log Q^\\ell = \\log \\mathrm{softmax}(\\phi^\\ell)`: (2^d, C)."""
        return F.log_softmax(self.leaves, dim=-1)

    def loss(self, x: torch.Tensor, targets: torch.Tensor, penalty: float = 0.0) -> torch.Tensor:
        """:func:`expected_cross_entropy` against ``targets`` (B, C) plus :func:`balance_penalty`
        of strength ``penalty`` on this batch."""
        p = self.node_probabilities(x)
        inner, leaves = _path_probabilities(p)
        return expected_cross_entropy(leaves, self.leaf_log_distributions(), targets) + \
            balance_penalty(inner, p, penalty)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, leaves = _path_probabilities(self.node_probabilities(x))             # (B, L)
        log_q = self.leaf_log_distributions()                                    # (L, C)
        if self.prediction == "max_path":
            return log_q[leaves.argmax(dim=1)]                                   # (B, C)
        return (leaves @ log_q.exp()).clamp_min(torch.finfo(log_q.dtype).tiny).log()


def soft_decision_tree(depth: int, beta: float = 1.0, prediction: str = "max_path", seed: int = 0,
                       image_shape: tuple[int, ...] = models.IMAGE_SHAPE,
                       num_classes: int = models.NUM_CLASSES) -> SoftDecisionTree:
    """A :class:`SoftDecisionTree` whose parameters are drawn from a generator seeded with
    ``seed`` (the global RNG is left as it was).

    Raises:
        TypeError / ValueError: as :class:`SoftDecisionTree`; ``seed`` out of range.
    """
    check_int(seed, "seed", *SEED_RANGE)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SoftDecisionTree(depth, image_shape, num_classes, beta, prediction)


def train_soft_tree(tree: SoftDecisionTree, transfer: ImageSplit, settings: train.TrainingSettings, *,
                    teacher: nn.Module | None = None, teacher_logits: torch.Tensor | None = None,
                    temperature: float = 1.0, penalty: float = 0.1, validation: ImageSplit | None = None,
                    device: torch.device | str | None = None, progress: bool = True,
                    description: str = "soft tree") -> train.FitResult:
    """Train ``tree`` in place with :meth:`SoftDecisionTree.loss`, by :func:`course_lib.train.fit`:
    distilled, against the teacher's soft targets :math:`\\mathrm{softmax}(v / T)` (give
    ``teacher`` or its ``teacher_logits`` for ``transfer``, as :func:`mimic`), or, with neither,
    on ``transfer``'s labels as one-hot targets. ``penalty`` is :func:`balance_penalty`'s
    :math:`\\lambda`. The history's ``train_accuracy`` is that of ``tree``'s prediction rule. Other
    arguments as :func:`course_lib.train.fit`.

    Raises (before the tree is touched):
        TypeError: ``tree`` not a SoftDecisionTree; as :func:`mimic`.
        ValueError: teacher logits that are not (len(transfer), C) and finite; a teacher with
            other classes than the tree; ``temperature`` <= 0; ``penalty`` < 0; and as
            :func:`course_lib.train.fit`.
    """
    check_type(tree, "tree", SoftDecisionTree, "a SoftDecisionTree")
    check_split(transfer, "transfer")
    check_temperature(temperature)
    check_real(penalty, "penalty", 0, math.inf, high_open=True)
    classes = tree.leaves.shape[1]
    if teacher is not None or teacher_logits is not None:
        _check_teacher_args(tree, transfer, teacher, teacher_logits, settings, "tree")
    else:
        _check_labels(transfer.labels, len(transfer), classes, "transfer labels")
    common = dict(validation=validation, device=device, progress=progress, description=description)
    if teacher is None and teacher_logits is None:
        def loss_on_labels(out, labels, images):
            return tree.loss(images, F.one_hot(labels, classes).to(images.dtype), penalty)
        return train.fit(tree, transfer, settings, loss_fn=loss_on_labels, **common)
    return _fit_on_teacher(tree, transfer, settings,
                           lambda out, images, targets: tree.loss(images, F.softmax(targets / temperature, dim=-1),
                                                                  penalty),
                           teacher, teacher_logits, **common)


class PathStep(NamedTuple):
    """One inner node on an input's path: its index (heap order), its filter :math:`w_i` shaped
    as an image, the probability of the branch taken, and whether that branch is the right one."""
    node: int
    filter: torch.Tensor
    probability: float
    right: bool

    def __repr__(self) -> str:
        return (f"PathStep(node={self.node}, filter of shape {tuple(self.filter.shape)}, "
                f"{'right' if self.right else 'left'} with probability {self.probability:.3f})")


@dataclass(frozen=True)
class TreePath:
    """The explanation of one prediction: the inner nodes from the root to the leaf with the
    greatest path probability (the paper's prediction), that leaf (numbered 0 .. 2^d - 1 from the
    left), its path probability, and its distribution over the classes."""
    steps: tuple[PathStep, ...]
    leaf: int
    probability: float
    distribution: torch.Tensor

    @property
    def prediction(self) -> int:
        """The class the leaf gives the most probability."""
        return int(self.distribution.argmax())

    def lines(self) -> list[str]:
        """The path in words, one line per node, then the leaf."""
        return [*(f"node {s.node}: {'right' if s.right else 'left'} (probability {s.probability:.3f})"
                  for s in self.steps),
                f"leaf {self.leaf} (path probability {self.probability:.3f}): class {self.prediction} with "
                f"probability {float(self.distribution.max()):.3f}"]


def node_filters(tree: SoftDecisionTree) -> torch.Tensor:
    """Every inner node's filter :math:`w_i` shaped as an image: (2^d - 1, H, W) for
    single-channel images (28 x 28 on MNIST), else (2^d - 1, C, H, W). A copy, detached, on the
    CPU. The node's decision is :math:`\\sigma(\\beta(x \\cdot w_i + b_i))`: a filter is the
    image pattern that sends an input right.

    Raises:
        TypeError: ``tree`` is not a SoftDecisionTree.
    """
    check_type(tree, "tree", SoftDecisionTree, "a SoftDecisionTree")
    w = tree.inner.weight.detach().cpu().clone().view(-1, *tree.image_shape)
    return w.squeeze(1) if tree.image_shape[0] == 1 else w


def tree_path(tree: SoftDecisionTree, image: torch.Tensor) -> TreePath:
    """The path one image takes through ``tree``: to the leaf of greatest path probability, each
    inner node with its filter and the probability of the branch taken.

    Args:
        image: one image of the tree's ``image_shape`` (e.g. (1, 28, 28)), finite.

    Raises:
        TypeError / ValueError: ``tree`` not a SoftDecisionTree; ``image`` not a finite tensor of
            the tree's image shape.
    """
    check_type(tree, "tree", SoftDecisionTree, "a SoftDecisionTree")
    check_tensor(image, "image")
    if tuple(image.shape) != tree.image_shape or not image.is_floating_point():
        raise ValueError(f"image must be one float image of shape {tree.image_shape}, got shape "
                         f"{tuple(image.shape)} of {image.dtype}")
    check_finite(image, "image")
    with torch.no_grad():
        p = tree.node_probabilities(image[None].to(tree.inner.weight.device))[0].cpu()     # (n,)
        _, leaves = path_probabilities(p[None])
        leaf = int(leaves[0].argmax())
        filters = node_filters(tree)
        steps, node = [], 0
        for level in range(tree.depth):
            right = bool((leaf >> (tree.depth - 1 - level)) & 1)      # the leaf's bits, root first
            probability = float(p[node] if right else 1 - p[node])
            steps.append(PathStep(node, filters[node], probability, right))
            node = 2 * node + (2 if right else 1)
        distribution = tree.leaf_log_distributions()[leaf].exp().cpu()
    return TreePath(tuple(steps), leaf, float(leaves[0, leaf]), distribution)
