"""Fidelity: how faithfully a student does what its teacher does, beside how accurate it is.

Top-1 agreement with the teacher, :math:`\\frac1B \\sum_b [\\arg\\max_k z_{bk} = \\arg\\max_k v_{bk}]`, and
the mean :math:`\\mathrm{KL}(p \\| q)` from the teacher's distribution :math:`p` to the student's
:math:`q` (:func:`fidelity`); a model's fidelity to itself is 1 and 0."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import train
from ..checks import check_int, check_model
from ..data import ImageSplit, check_split
from ..distillation import check_logit_pair, check_logits, soft_target_loss
from .common import _check_labels

__all__ = ["top1_agreement", "mean_kl", "Fidelity", "fidelity_of_predictions", "fidelity_of_logits", "fidelity"]


def top1_agreement(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> float:
    """The fraction of examples on which the student's top class is the teacher's:
    :math:`\\frac1B \\sum_b [\\arg\\max_k z_{bk} = \\arg\\max_k v_{bk}]`, a float in [0, 1].
    A tie goes to the lowest class index on both sides (``torch.argmax``'s rule).

    Raises:
        TypeError / ValueError: logits that are not finite (B, C) float tensors of one shape.
    """
    check_logit_pair(student_logits, teacher_logits)
    return (student_logits.argmax(dim=1) == teacher_logits.argmax(dim=1)).double().mean().item()


def mean_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> float:
    """:math:`\\frac1B \\sum_b \\mathrm{KL}(p_b \\| q_b)` in nats, with :math:`p` = softmax of the
    teacher's logits (the target) and :math:`q` the student's, at temperature 1: 0 when the student
    gives the teacher's distributions. Equals ``distillation.soft_target_loss(z, v, 1.0)``.

    Raises:
        TypeError / ValueError: as :func:`top1_agreement`.
    """
    check_logit_pair(student_logits, teacher_logits)
    return soft_target_loss(student_logits.detach(), teacher_logits, 1.0).item()


@dataclass(frozen=True)
class Fidelity:
    """How faithfully a student imitates its teacher on a split, beside how accurate both are.

    Attributes:
        agreement: top-1 agreement with the teacher (:func:`top1_agreement`), in [0, 1].
        kl: mean KL(teacher || student) in nats (:func:`mean_kl`); None for a student that gives
            a class only (a scikit-learn tree, whose pure leaves give the teacher's other classes
            probability 0, an infinite KL).
        accuracy, teacher_accuracy: top-1 accuracy of each on the split's labels.
        n: examples.
    """
    agreement: float
    kl: float | None
    accuracy: float
    teacher_accuracy: float
    n: int


def fidelity_of_predictions(predictions: torch.Tensor, teacher_logits: torch.Tensor,
                            labels: torch.Tensor) -> Fidelity:
    """:class:`Fidelity` of a student that predicts classes only (``kl`` is None).

    Args:
        predictions: (N,) integer classes; teacher_logits: (N, C); labels: (N,) true classes.

    Raises:
        TypeError / ValueError: tensors of the wrong type, shape or range; NaN in the logits.
    """
    check_logits(teacher_logits, "teacher_logits")
    n, classes = teacher_logits.shape
    _check_labels(predictions, n, classes, "predictions")
    _check_labels(labels, n, classes)
    teacher = teacher_logits.argmax(dim=1).cpu()
    predictions, labels = predictions.cpu(), labels.cpu()
    return Fidelity(agreement=(predictions == teacher).double().mean().item(), kl=None,
                    accuracy=(predictions == labels).double().mean().item(),
                    teacher_accuracy=(teacher == labels).double().mean().item(), n=n)


def fidelity_of_logits(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                       labels: torch.Tensor) -> Fidelity:
    """:class:`Fidelity` from the logits of both models on the same (N,) labelled examples.

    Raises:
        TypeError / ValueError: as :func:`top1_agreement`; labels that are not N class indices.
    """
    check_logit_pair(student_logits, teacher_logits)
    base = fidelity_of_predictions(student_logits.argmax(dim=1), teacher_logits, labels)
    return Fidelity(agreement=base.agreement, kl=mean_kl(student_logits, teacher_logits),
                    accuracy=base.accuracy, teacher_accuracy=base.teacher_accuracy, n=base.n)


def fidelity(student: nn.Module, teacher: nn.Module, split: ImageSplit, batch_size: int = 1000) -> Fidelity:
    """Agreement, KL(teacher || student) and both accuracies of two models on ``split`` (eval
    mode; each model's mode is restored). A model's fidelity to itself is 1 (KL 0).

    Raises:
        TypeError: ``student``/``teacher`` not nn.Modules, ``split`` not an ImageSplit.
        ValueError: an empty ``split``; models with different numbers of classes; ``batch_size`` < 1.
    """
    check_model(student, "student")
    check_model(teacher, "teacher")
    check_split(split, "split")
    check_int(batch_size, "batch_size", 1)
    train.output_classes(student, split.images, "student")        # each model takes these images, or is named
    train.output_classes(teacher, split.images, "teacher")
    student_logits = train.predict_logits(student, split.images, batch_size).cpu()
    teacher_logits = train.predict_logits(teacher, split.images, batch_size).cpu()
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher must output the same classes, got logits of shape "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
    return fidelity_of_logits(student_logits, teacher_logits, split.labels.cpu())
