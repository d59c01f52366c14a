"""scikit-learn's decision trees trained on a teacher's labels: fitting, prediction, size as a
device would store it, and the depth sweep of accuracy and fidelity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.tree import DecisionTreeClassifier
from torch import nn

from .. import measure
from ..checks import check_int, check_model, check_type
from ..data import SEED_RANGE, ImageSplit, check_split
from ..distillation import precompute_logits
from .common import _check_images
from .fidelity_metrics import Fidelity, fidelity_of_predictions
from .mimic_learning import label_with_teacher

__all__ = ["TREE_TARGETS", "fit_tree", "tree_predict", "TreeSize", "tree_size", "tree_report", "TreeSweepRow",
           "tree_depth_sweep"]


TREE_TARGETS = ("teacher", "labels")


def _check_fitted_tree(tree: DecisionTreeClassifier) -> None:
    check_type(tree, "tree", DecisionTreeClassifier, "a sklearn.tree.DecisionTreeClassifier")
    if not hasattr(tree, "tree_"):
        raise ValueError("tree is not fitted yet; train it with fit_tree(split, max_depth)")


def fit_tree(split: ImageSplit, max_depth: int | None, seed: int = 0) -> DecisionTreeClassifier:
    """A scikit-learn decision tree (CART, Gini impurity) of depth at most ``max_depth`` (None:
    grown until its leaves are pure) fitted on ``split``'s flattened pixels and its labels: the
    true labels, or the teacher's with a :class:`TransferSet` from :func:`label_with_teacher`
    (the tree then imitates the teacher). ``seed`` fixes scikit-learn's tie-breaking among features.

    Raises:
        TypeError / ValueError: ``split`` not a non-empty ImageSplit; ``max_depth`` not an int
            >= 1 or None; ``seed`` out of range.
    """
    check_split(split, "split")
    check_int(max_depth, "max_depth", 1, allow_none=True)
    check_int(seed, "seed", *SEED_RANGE)
    x = split.images.detach().cpu().flatten(1).numpy()
    return DecisionTreeClassifier(max_depth=max_depth, random_state=seed).fit(x, split.labels.cpu().numpy())


def tree_predict(tree: DecisionTreeClassifier, images: torch.Tensor) -> torch.Tensor:
    """The classes a fitted tree predicts for ``images`` (N, C, H, W): (N,) int64 on the CPU.

    Raises:
        TypeError / ValueError: an unfitted tree; images that are not a finite, non-empty 4-D
            float tensor with the tree's number of pixels.
    """
    _check_fitted_tree(tree)
    _check_images(images)
    x = images.detach().cpu().flatten(1)
    if x.shape[1] != tree.n_features_in_:
        raise ValueError(f"images must have {tree.n_features_in_} pixels each (the tree's inputs), got "
                         f"{x.shape[1]}")
    return torch.from_numpy(tree.predict(x.numpy()).astype(np.int64))


@dataclass(frozen=True)
class TreeSize:
    """A fitted tree's size: its depth, nodes (inner + leaves), leaves, and an estimate of its
    bytes in a compact array layout (:func:`tree_size`)."""
    depth: int
    nodes: int
    leaves: int
    bytes: int


def tree_size(tree: DecisionTreeClassifier) -> TreeSize:
    """Depth, nodes and leaves of a fitted tree, and its bytes as a compact array: each inner node
    keeps its feature index (2 bytes while there are under 65,536 features), its threshold (4,
    fp32) and its two children's indices (2 bytes each while the tree has under 65,536 nodes,
    else 4); each leaf keeps its class (1 byte for up to 256 classes, else 2). An estimate of
    what a microcontroller would store, not scikit-learn's own (much larger) memory.

    Raises:
        TypeError / ValueError: ``tree`` not a fitted DecisionTreeClassifier.
    """
    _check_fitted_tree(tree)
    nodes, leaves = int(tree.tree_.node_count), int(tree.get_n_leaves())
    inner = nodes - leaves
    index = 2 if nodes < 2 ** 16 else 4
    feature = 2 if tree.n_features_in_ < 2 ** 16 else 4
    klass = 1 if len(tree.classes_) <= 256 else 2
    return TreeSize(depth=int(tree.get_depth()), nodes=nodes, leaves=leaves,
                    bytes=inner * (feature + 4 + 2 * index) + leaves * klass)


def tree_report(tree: DecisionTreeClassifier, name: str = "decision tree") -> measure.ModelReport:
    """A :class:`course_lib.measure.ModelReport` for a fitted tree, so that
    :func:`course_lib.hardware.check_fit` can judge it: weight bytes from :func:`tree_size`,
    "parameters" the stored numbers (feature and threshold per inner node, class per leaf), no MACs
    (a tree compares, it does not multiply), activations the fp32 input image.

    Raises:
        TypeError / ValueError: ``tree`` not a fitted DecisionTreeClassifier; ``name`` not a str.
    """
    size = tree_size(tree)
    check_type(name, "name", str, "a str")
    stored = 2 * (size.nodes - size.leaves) + size.leaves
    image_bytes = 4 * int(tree.n_features_in_)
    return measure.ModelReport(name=name, number_format="fp32", encoding="dense", parameters=stored,
                               nonzeros=stored, weight_bytes=size.bytes, macs=0,
                               peak_activation_bytes=image_bytes, activation_traffic_bytes=image_bytes, layers=())


@dataclass(frozen=True)
class TreeSweepRow:
    """One tree of a depth sweep: its maximum depth, what it was trained on (``"teacher"``: the
    teacher's labels; ``"labels"``: the true ones), its :class:`Fidelity` on the evaluation
    split, and its :class:`TreeSize`."""
    depth: int
    targets: str
    fidelity: Fidelity
    size: TreeSize


def tree_depth_sweep(teacher: nn.Module, transfer: ImageSplit, evaluation: ImageSplit,
                     depths: Sequence[int], seed: int = 0) -> list[TreeSweepRow]:
    """For each depth, two scikit-learn trees fitted on ``transfer``: one on the teacher's labels
    (the argmax of its logits: distillation into a tree), one on ``transfer``'s true labels;
    each scored on ``evaluation`` for accuracy and agreement with the teacher, with its size.

    Returns:
        Rows in the order of ``depths``, ``"teacher"`` before ``"labels"`` at each depth.

    Raises (before any tree is fitted):
        TypeError / ValueError: ``teacher`` not an nn.Module; empty splits; ``depths`` not a
            non-empty list of ints >= 1; ``seed`` out of range.
    """
    check_model(teacher, "teacher")
    check_split(transfer, "transfer")
    check_split(evaluation, "evaluation")
    check_type(depths, "depths", (list, tuple, range), "a list of ints >= 1 like [2, 4, 8]")
    if not depths:
        raise ValueError("depths must hold at least one depth, got an empty list")
    for d in depths:
        check_int(d, "each depth", 1)
    check_int(seed, "seed", *SEED_RANGE)
    on_teacher = label_with_teacher(transfer.images, teacher, transfer.name, transfer.classes).split
    evaluation_logits = precompute_logits(teacher, evaluation)
    rows = []
    for depth in depths:
        for targets, split in zip(TREE_TARGETS, (on_teacher, transfer)):
            tree = fit_tree(split, depth, seed)
            predictions = tree_predict(tree, evaluation.images)
            rows.append(TreeSweepRow(depth, targets,
                                     fidelity_of_predictions(predictions, evaluation_logits, evaluation.labels),
                                     tree_size(tree)))
    return rows
