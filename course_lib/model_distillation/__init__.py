"""Model distillation: a stand-alone model, often of another family, trained to do what a bigger
one does, with the teacher's outputs as its targets; fidelity to the teacher is a goal beside
accuracy.

Notebook 03 (:mod:`course_lib.distillation`) adds the teacher's soft targets to a student's
training on labels. Here the teacher *is* the supervision: the student never needs a label, and
may be a model a person can read.

* **Mimic learning** (Bucilă, Caruana & Niculescu-Mizil 2006, "Model Compression"; Ba & Caruana
  2014, "Do Deep Nets Really Need to be Deep?"): regress the teacher's logits :math:`v` with
  the L2 loss of Ba & Caruana, on a transfer set with no labels at all:

  .. math::  L = \\frac{1}{2B} \\sum_b \\| z_b - v_b \\|_2^2

* **Transfer sets**: the unlabeled training images, or images synthesised from a small sample
  when the original data is not at hand: Bucilă et al.'s MUNGE, mixup-style convex
  combinations, Gaussian noise. The teacher labels them (:func:`label_with_teacher`).
* **Hints** (Romero et al. 2015, "FitNets: Hints for Thin Deep Nets"): first fit the student's
  layers up to a *guided* layer, through a small regressor, to the teacher's *hint* layer; then
  train the whole student.
* **Fidelity**: top-1 agreement with the teacher and :math:`\\mathrm{KL}(p \\| q)`, beside
  accuracy (:func:`fidelity`).
* **Into a tree**: Frosst & Hinton's (2017) soft decision tree, "Distilling a Neural Network
  Into a Soft Decision Tree" (:class:`SoftDecisionTree`), and scikit-learn's decision trees
  trained on the teacher's labels (:func:`fit_tree`, :func:`tree_depth_sweep`).

Every function checks its arguments first and raises a named ``TypeError`` / ``ValueError``
before anything is trained or changed. Randomness comes in as a seed or a ``torch.Generator``.

The package, bottom-up, each part using only the ones above it:

* :mod:`~course_lib.model_distillation.common`: the shared argument checks; a model's layer
  names and the output of one of its layers.
* :mod:`~course_lib.model_distillation.fidelity_metrics`: agreement and mean KL with the teacher.
* :mod:`~course_lib.model_distillation.mimic_learning`: mimic learning and labelling a transfer set.
* :mod:`~course_lib.model_distillation.transfer`: synthetic transfer sets (MUNGE, mixup, noise).
* :mod:`~course_lib.model_distillation.hints`: FitNets hints.
* :mod:`~course_lib.model_distillation.soft_tree`: Frosst & Hinton's soft decision tree.
* :mod:`~course_lib.model_distillation.trees`: scikit-learn trees on the teacher's labels.

Every public name is importable from here (``model_distillation.mimic``, ``model_distillation.SoftDecisionTree``).

Taught in ``notebooks/06_model_distillation.ipynb``.
"""

from .common import layer_names, check_layer_name, intermediate
from .fidelity_metrics import (top1_agreement, mean_kl, Fidelity, fidelity_of_predictions, fidelity_of_logits,
                               fidelity)
from .mimic_learning import mimic_loss, TransferSet, label_with_teacher, mimic
from .transfer import TRANSFER_SETS, munge, mixup_images, noise_images, transfer_images
from .hints import hint_regressor, hint_loss, HintTraining, train_with_hints
from .soft_tree import (PREDICTIONS, MAX_SOFT_TREE_DEPTH, path_probabilities, expected_cross_entropy,
                        balance_penalty, SoftDecisionTree, soft_decision_tree, train_soft_tree, PathStep, TreePath,
                        node_filters, tree_path)
from .trees import (TREE_TARGETS, fit_tree, tree_predict, TreeSize, tree_size, tree_report, TreeSweepRow,
                    tree_depth_sweep)

__all__ = [
    # common
    "layer_names", "check_layer_name", "intermediate",
    # fidelity_metrics
    "top1_agreement", "mean_kl", "Fidelity", "fidelity_of_predictions", "fidelity_of_logits", "fidelity",
    # mimic_learning
    "mimic_loss", "TransferSet", "label_with_teacher", "mimic",
    # transfer
    "TRANSFER_SETS", "munge", "mixup_images", "noise_images", "transfer_images",
    # hints
    "hint_regressor", "hint_loss", "HintTraining", "train_with_hints",
    # soft_tree
    "PREDICTIONS", "MAX_SOFT_TREE_DEPTH", "path_probabilities", "expected_cross_entropy", "balance_penalty",
    "SoftDecisionTree", "soft_decision_tree", "train_soft_tree", "PathStep", "TreePath", "node_filters",
    "tree_path",
    # trees
    "TREE_TARGETS", "fit_tree", "tree_predict", "TreeSize", "tree_size", "tree_report", "TreeSweepRow",
    "tree_depth_sweep",
]
