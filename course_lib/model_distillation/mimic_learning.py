"""Mimic learning (Bucilă, Caruana & Niculescu-Mizil 2006, "Model Compression"; Ba & Caruana 2014,
"Do Deep Nets Really Need to be Deep?"): regress the teacher's logits :math:`v` with the L2 loss
of Ba & Caruana, on a transfer set with no labels at all,

.. math::  L = \\frac{1}{2B} \\sum_b \\| z_b - v_b \\|_2^2 ,

and the teacher labelling a transfer set (:func:`label_with_teacher`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from .. import train
from ..checks import check_model, check_type
from ..data import ImageSplit, check_split
from ..distillation import check_logit_pair, check_logits, precompute_logits
from .common import _check_images, _check_teacher_logits, _classes_of

__all__ = ["mimic_loss", "TransferSet", "label_with_teacher", "mimic"]


def mimic_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, centre: bool = False) -> torch.Tensor:
    """Ba & Caruana's (2014) L2 regression of the teacher's logits:
    :math:`\\frac{1}{2B} \\sum_b \\sum_k (z_{bk} - v_{bk})^2`, summed over the classes and averaged
    over the examples; its gradient is :math:`(z - v) / B`. The teacher's logits are a target (no
    gradient flows into them).

    With ``centre=True`` each example's logits are first centred (:math:`z - \\bar z`, over the
    classes), since softmax ignores a constant added to every logit; that is Hinton et al.'s
    "logit matching", :func:`course_lib.distillation.logit_matching_loss`, times the number of
    classes. Ba & Caruana regress the raw logits (``centre=False``).

    Raises:
        TypeError / ValueError: logits that are not finite (B, C) float tensors of one shape;
            ``centre`` not a bool.
    """
    check_logit_pair(student_logits, teacher_logits)
    check_type(centre, "centre", bool, "True or False")
    z, v = student_logits, teacher_logits.detach()
    if centre:
        z = z - z.mean(dim=-1, keepdim=True)
        v = v - v.mean(dim=-1, keepdim=True)
    return 0.5 * ((z - v) ** 2).sum(dim=-1).mean()


class TransferSet(NamedTuple):
    """A transfer set labelled by the teacher: ``split.images`` the images, ``split.labels`` the
    teacher's top class for each (never the true labels, which a transfer set may not have), and
    ``teacher_logits`` (N, C) the teacher's logits. With these labels, ``train.fit``'s
    ``train_accuracy`` of a student is its agreement with the teacher on the transfer set."""
    split: ImageSplit
    teacher_logits: torch.Tensor


def label_with_teacher(images: torch.Tensor, teacher: nn.Module, name: str = "transfer set",
                       classes: tuple[str, ...] | None = None, batch_size: int = 1000) -> TransferSet:
    """Run the teacher (eval mode) on ``images`` (N, C, H, W) and make them a :class:`TransferSet`
    on the CPU: labels = the teacher's argmax. ``images`` is not modified.

    Raises:
        TypeError / ValueError: ``images`` not a finite, non-empty (N, C, H, W) float tensor;
            ``teacher`` not an nn.Module; ``classes`` not a tuple of the teacher's number of
            class names.
    """
    _check_images(images)
    check_model(teacher, "teacher")
    check_type(name, "name", str, "a str")
    logits = train.predict_logits(teacher, images, batch_size).cpu()
    check_logits(logits, "the teacher's logits")
    if classes is None:
        classes = tuple(str(k) for k in range(logits.shape[1]))
    if not isinstance(classes, tuple) or len(classes) != logits.shape[1]:
        raise ValueError(f"classes must be a tuple of {logits.shape[1]} class names (the teacher's outputs), "
                         f"got {classes!r}")
    split = ImageSplit(images.detach().cpu(), logits.argmax(dim=1), f"{name} (labels: the teacher's)",
                       classes)
    return TransferSet(split, logits)


def _fit_on_teacher(model: nn.Module, transfer: ImageSplit, settings: train.TrainingSettings,
                    loss_on_targets: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                    teacher: nn.Module | None, teacher_logits: torch.Tensor | None,
                    **fit_kwargs) -> train.FitResult:
    """``train.fit`` with a loss ``loss_on_targets(output, images, teacher_logits)``: the
    teacher's logits computed once (given, or from ``teacher`` when ``settings.max_shift == 0``),
    or live on every shifted batch. Arguments are checked by the caller."""
    if teacher is not None and settings.max_shift == 0:
        teacher_logits = precompute_logits(teacher, transfer)
    if teacher_logits is not None:
        return train.fit(model, transfer, settings, targets=teacher_logits,
                         loss_fn=lambda out, labels, images, targets: loss_on_targets(out, images, targets),
                         **fit_kwargs)
    was_training = teacher.training
    frozen = teacher.eval()

    def loss_with_teacher(out, labels, images):
        with torch.no_grad():
            targets = frozen(images.to(train.model_device(frozen))).to(out.device)
        return loss_on_targets(out, images, targets)

    try:
        return train.fit(model, transfer, settings, loss_fn=loss_with_teacher,
                         **fit_kwargs)
    finally:
        teacher.train(was_training)


def _check_teacher_args(student: nn.Module, transfer: ImageSplit, teacher: nn.Module | None,
                        teacher_logits: torch.Tensor | None, settings: train.TrainingSettings,
                        student_name: str = "student") -> int:
    """Exactly one of a teacher and its logits for ``transfer``, with the student's classes, and
    training ``settings``; returns the number of classes."""
    check_model(student, student_name)
    check_split(transfer, "transfer")
    check_type(settings, "settings", train.TrainingSettings, "a TrainingSettings (train.TrainingSettings(epochs=...))")
    max_shift = settings.max_shift
    if (teacher is None) == (teacher_logits is None):
        raise ValueError("give exactly one of teacher (a model) and teacher_logits (its logits for transfer)")
    if teacher is not None:
        check_model(teacher, "teacher")
        classes = _classes_of(teacher, transfer.images[:1], "teacher")
    else:
        _check_teacher_logits(teacher_logits, transfer)
        if max_shift:
            raise ValueError("teacher_logits were computed on unshifted images; with max_shift > 0 pass the "
                             "teacher itself so it sees the shifted batches")
        classes = teacher_logits.shape[1]
    student_classes = _classes_of(student, transfer.images[:1], student_name)
    if student_classes != classes:
        raise ValueError(f"{student_name} and teacher must have the same number of classes, got "
                         f"{student_classes} and {classes}")
    return classes


def mimic(student: nn.Module, transfer: ImageSplit, settings: train.TrainingSettings, *,
          teacher: nn.Module | None = None, teacher_logits: torch.Tensor | None = None, centre: bool = False,
          validation: ImageSplit | None = None, device: torch.device | str | None = None, progress: bool = True,
          description: str = "mimic", loss: Callable | None = None) -> train.FitResult:
    """Mimic learning: train ``student`` in place to regress the teacher's logits with
    :func:`mimic_loss` (or ``loss``, a function of the same arguments ``(student_logits,
    teacher_logits, centre)``: notebook 06 trains with the learner's own) over ``transfer``, by
    :func:`course_lib.train.fit`. No label is used:
    ``transfer.labels`` only feed the history's ``train_accuracy`` (with a :class:`TransferSet`
    from :func:`label_with_teacher`, that is the agreement with the teacher).

    Give either a ``teacher`` (run in eval mode; its logits computed once, or on every batch when
    ``settings.max_shift > 0``) or its ``teacher_logits`` (N, C) for the images of ``transfer``.
    Other arguments as :func:`course_lib.train.fit`.

    Regressing logits takes more steps than cross-entropy on labels: a confident teacher's logits
    reach tens (LeNet-5's span about +-30), and the student's outputs must grow that far.

    Returns:
        The :class:`course_lib.train.FitResult` of the run.

    Raises (before the student is touched):
        TypeError: ``student``/``teacher`` not nn.Modules, ``teacher_logits`` not a tensor,
            ``centre`` not a bool, ``loss`` not a function.
        ValueError: both or neither of ``teacher`` and ``teacher_logits``; teacher logits that are
            not (len(transfer), C) and finite, or given with ``max_shift > 0``; student and
            teacher with different numbers of classes; an empty ``transfer``; and as
            :func:`course_lib.train.fit`.
    """
    _check_teacher_args(student, transfer, teacher, teacher_logits, settings)
    check_type(centre, "centre", bool, "True or False")
    if loss is not None and not callable(loss):
        raise TypeError(f"loss must be a function (student_logits, teacher_logits, centre), got {type(loss).__name__}")
    loss = loss or mimic_loss
    return _fit_on_teacher(student, transfer, settings,
                           lambda out, images, targets: loss(out, targets, centre),
                           teacher, teacher_logits, validation=validation, device=device, progress=progress,
                           description=description)
