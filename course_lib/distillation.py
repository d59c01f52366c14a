"""Knowledge distillation: a small student learns from a big teacher's softened predictions.

Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural Network". A classifier's
logits :math:`z` become probabilities at a *temperature* :math:`T`:

.. math::  q_i = \\frac{\\exp(z_i / T)}{\\sum_j \\exp(z_j / T)}

:math:`T = 1` is the ordinary softmax; a higher :math:`T` softens the distribution, so the small
probabilities a trained teacher gives to wrong classes (a 2 that looks a little like a 3, much
like a 7) become large enough to learn from: the "dark knowledge" of how the teacher generalises.

The student minimises a weighted sum of two terms (``weight`` = :math:`\\alpha`):

.. math::  L = (1 - \\alpha)\\, \\mathrm{CE}(y, q^{(1)})
           + \\alpha\\, T^2\\, \\mathrm{KL}\\big(p^{(T)} \\,\\|\\, q^{(T)}\\big)

with :math:`p^{(T)}` the teacher's and :math:`q^{(T)}` the student's softened distributions.
The gradient of the soft term (before :math:`T^2`) with respect to the student's logit
:math:`z_i` is :math:`(q_i - p_i) / T` (the paper's eq. 2), which shrinks as :math:`1/T^2` when
:math:`T` grows (the difference :math:`q_i - p_i` itself shrinks as :math:`1/T`); multiplying by
:math:`T^2` keeps the two terms in proportion whatever the temperature. As :math:`T \\to \\infty`
with zero-mean logits, :math:`T^2` times the gradient tends to :math:`(z_i - v_i) / N`: the
gradient of :func:`logit_matching_loss`, the "logit matching" of Caruana and colleagues
(the paper's section 2.1).

Also here: ensembles (average of logits or of probabilities), the paper's omitted-class
experiment (:func:`without_class`, :func:`with_bias_shift`, :func:`choose_bias_shift`), and the
experiment behind notebook 03's panel.

Taught in ``notebooks/03_knowledge_distillation.ipynb``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from . import train
from .checks import check_int, check_model, check_real, check_tensor, check_type, check_finite, is_real
from .data import ImageSplit, check_split

__all__ = ["COMBINE", "check_temperature", "check_soft_target_weight", "check_logits", "check_logit_pair",
           "softmax_with_temperature", "log_softmax_with_temperature", "soft_target_loss", "distillation_loss",
           "soft_target_gradient", "logit_matching_loss", "Ensemble", "precompute_logits", "distill",
           "without_class", "with_bias_shift", "choose_bias_shift"]

COMBINE = ("logits", "probabilities")


# ----------------------------------------------------------------------------- argument checks

def check_temperature(temperature: float) -> None:
    """``temperature`` is a finite number > 0.

    Raises:
        TypeError / ValueError: ``"temperature must be a finite number in (0, inf), got 0"``.
    """
    check_real(temperature, "temperature", 0, math.inf, low_open=True, high_open=True)


def check_soft_target_weight(weight: float) -> None:
    """``weight`` (the soft term's share of the loss) is a finite number in [0, 1].

    Raises:
        TypeError / ValueError: ``"weight must be a finite number in [0, 1], got 1.5"``.
    """
    check_real(weight, "weight", 0, 1)


def check_logits(logits: torch.Tensor, name: str) -> None:
    """``logits`` is a finite (B, C) float tensor with B >= 1 and C >= 2.

    Raises:
        TypeError: not a tensor. ValueError: another shape or dtype, NaN or inf.
    """
    check_tensor(logits, name)
    if logits.dim() != 2 or logits.shape[0] == 0 or logits.shape[1] < 2 or \
            not logits.is_floating_point():
        raise ValueError(f"{name} must be a (batch, classes) float tensor with batch >= 1 and "
                         f"classes >= 2, got shape {tuple(logits.shape)} of {logits.dtype}")
    check_finite(logits, name)


def check_logit_pair(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    """Student and teacher logits: each as :func:`check_logits`, and of the same shape.

    Raises:
        TypeError / ValueError: naming ``student_logits`` or ``teacher_logits``.
    """
    check_logits(student_logits, "student_logits")
    check_logits(teacher_logits, "teacher_logits")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student_logits and teacher_logits must have the same shape (batch, classes), "
                         f"got {tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")


def _check_labels(labels: torch.Tensor, logits: torch.Tensor) -> None:
    check_tensor(labels, "labels")
    if labels.dim() != 1 or labels.is_floating_point() or labels.dtype == torch.bool or \
            len(labels) != len(logits):
        raise ValueError(f"labels must be a ({len(logits)},) integer tensor of class indices, got shape "
                         f"{tuple(labels.shape)} of {labels.dtype}")
    classes = logits.shape[1]
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"labels must be class indices in [0, {classes - 1}], got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")


# ----------------------------------------------------------------------------- the loss

def softmax_with_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """:math:`q_i = \\exp(z_i/T) / \\sum_j \\exp(z_j/T)` over the last axis: (B, C) -> (B, C).

    Raises:
        TypeError / ValueError: ``logits`` not a finite (B, C) float tensor; ``temperature``
            not a finite number > 0.
    """
    check_logits(logits, "logits")
    check_temperature(temperature)
    return F.softmax(logits / temperature, dim=-1)


def log_softmax_with_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """:math:`\\log q_i = z_i/T - \\log \\sum_j \\exp(z_j/T)`, computed stably (never
    ``log(softmax(...))``, which gives ``-inf`` when a probability underflows to 0).

    Raises:
        TypeError / ValueError: as :func:`softmax_with_temperature`.
    """
    check_logits(logits, "logits")
    check_temperature(temperature)
    return F.log_softmax(logits / temperature, dim=-1)


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                     temperature: float) -> torch.Tensor:
    """:math:`T^2 \\cdot \\frac1B \\sum_b \\mathrm{KL}(p_b^{(T)} \\| q_b^{(T)})`, with
    :math:`\\mathrm{KL}(p\\|q) = \\sum_i p_i (\\log p_i - \\log q_i)`: the teacher's softened
    distribution :math:`p` is the target, the student's :math:`q` is fitted to it. Averaged
    over the batch (``batchmean``, not over batch x classes). Equals
    ``T**2 * F.kl_div(log_q, p, reduction="batchmean")``.

    The teacher's logits are a target: no gradient flows into them.

    Raises:
        TypeError / ValueError: logits that are not finite (B, C) float tensors of the same
            shape; ``temperature`` not a finite number > 0.
    """
    check_logit_pair(student_logits, teacher_logits)
    check_temperature(temperature)
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=-1)          # (B,)
    return temperature ** 2 * kl.mean()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      labels: torch.Tensor | None, temperature: float,
                      weight: float) -> torch.Tensor:
    """Hinton et al.'s loss: :math:`(1 - \\alpha)\\,\\mathrm{CE}(y, q^{(1)}) + \\alpha\\,
    T^2\\,\\mathrm{KL}(p^{(T)} \\| q^{(T)})`, with :math:`\\alpha` = ``weight``. The hard term
    uses the student's ordinary softmax (T = 1), as at test time.

    Args:
        student_logits, teacher_logits: (B, C) logits of the same examples.
        labels: (B,) class indices, or None when ``weight == 1`` (soft targets alone: the
            transfer set needs no labels).
        temperature: T > 0; the paper used T = 20 on MNIST.
        weight: the soft term's share, in [0, 1]; 0 is ordinary training on the labels.

    Raises:
        TypeError / ValueError: as :func:`soft_target_loss`; ``weight`` outside [0, 1];
            ``labels`` None while ``weight < 1``, or not B class indices in [0, C - 1].
    """
    check_logit_pair(student_logits, teacher_logits)
    check_temperature(temperature)
    check_soft_target_weight(weight)
    if labels is None and weight < 1:
        raise ValueError(f"labels are needed when weight < 1 (the hard term has weight {1 - weight}); "
                         "pass labels, or weight=1 to train on soft targets alone")
    if labels is not None:
        _check_labels(labels, student_logits)
    soft = soft_target_loss(student_logits, teacher_logits, temperature)
    if weight == 1:
        return soft
    hard = F.cross_entropy(student_logits, labels)
    return (1 - weight) * hard + weight * soft


def soft_target_gradient(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                         temperature: float) -> torch.Tensor:
    """The paper's eq. 2: :math:`\\partial C / \\partial z_i = (q_i - p_i) / T`, the gradient of
    one example's cross-entropy with the soft targets (equivalently of its KL divergence: they
    differ by the teacher's entropy, a constant) with respect to the student's logits. (B, C).

    Raises:
        TypeError / ValueError: as :func:`soft_target_loss`.
    """
    check_logit_pair(student_logits, teacher_logits)
    check_temperature(temperature)
    q = F.softmax(student_logits / temperature, dim=-1)
    p = F.softmax(teacher_logits.detach() / temperature, dim=-1)
    return (q - p) / temperature


def logit_matching_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """The high-temperature limit of :func:`soft_target_loss` (section 2.1 of the paper):
    :math:`\\frac1B \\sum_b \\frac{1}{2N} \\sum_i \\big((z_i - \\bar z) - (v_i - \\bar v)\\big)^2`
    over N classes, with each example's logits centred (softmax ignores a constant added to all
    logits, so only centred logits can be matched). Its gradient is
    :math:`((z_i - \\bar z) - (v_i - \\bar v)) / (N B)`, the limit of ``T**2`` times the
    soft-target gradient.

    Raises:
        TypeError / ValueError: logits that are not finite (B, C) float tensors of the same shape.
    """
    check_logit_pair(student_logits, teacher_logits)
    z = student_logits - student_logits.mean(dim=-1, keepdim=True)
    v = teacher_logits.detach() - teacher_logits.detach().mean(dim=-1, keepdim=True)
    classes = student_logits.shape[1]
    return ((z - v) ** 2).sum(dim=-1).mean() / (2 * classes)


# ----------------------------------------------------------------------------- ensembles

class Ensemble(nn.Module):
    """Several classifiers as one: the logits of the average.

    ``combine="probabilities"`` averages the members' softmax outputs and returns their log
    (so ``softmax`` of the output is the average distribution, and ``argmax`` its vote);
    ``combine="logits"`` averages the logits (a geometric mean of the distributions). Hinton et
    al. distil an ensemble's averaged predictions into one model (the paper's section 4).

    Raises (on construction):
        TypeError: ``members`` not a list or tuple of nn.Modules.
        ValueError: no members, or ``combine`` not one of :data:`COMBINE`.
    """

    def __init__(self, members: Sequence[nn.Module], combine: str = "probabilities") -> None:
        super().__init__()
        check_type(members, "members", (list, tuple), "a list of models")
        if not members:
            raise ValueError("members must hold at least one model, got an empty list")
        for i, m in enumerate(members):
            check_model(m, f"members[{i}]")
        if combine not in COMBINE:
            raise ValueError(f"combine must be one of {COMBINE}, got {combine!r}")
        self.members = nn.ModuleList(members)
        self.combine = combine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` -> the combined logits (B, C).

        Raises:
            ValueError: the members give outputs of different shapes (different class counts).
        """
        outputs = [m(x) for m in self.members]
        shapes = [tuple(o.shape) for o in outputs]
        if len(set(shapes)) > 1:
            raise ValueError(f"the ensemble's members must give logits of one shape (the same classes), got "
                             f"{dict(enumerate(shapes))}; combine only models trained on the same task")
        logits = torch.stack(outputs)                                 # (M, B, C)
        if self.combine == "logits":
            return logits.mean(dim=0)
        log_probs = F.log_softmax(logits, dim=-1)
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


# ----------------------------------------------------------------------------- training

@torch.no_grad()
def precompute_logits(teacher: nn.Module, split: ImageSplit, batch_size: int = 1000) -> torch.Tensor:
    """The teacher's logits for every image of ``split``, computed once (eval mode: no dropout),
    on the CPU: (N, C). Reused every epoch when the transfer set is not augmented.

    Raises:
        TypeError / ValueError: as :func:`course_lib.train.predict_logits`.
    """
    check_split(split, "split")
    return train.predict_logits(teacher, split.images, batch_size).cpu()


def _teacher_classes(teacher: nn.Module | None, teacher_logits: torch.Tensor | None, transfer: ImageSplit,
                     max_shift: int) -> int:
    """The teacher's number of classes, once exactly one of ``teacher`` (a model that takes the
    transfer images) and ``teacher_logits`` (one finite row per transfer image, unshifted) is
    checked to fit ``transfer``."""
    if (teacher is None) == (teacher_logits is None):
        raise ValueError("give exactly one of teacher (a model) and teacher_logits (its logits for transfer)")
    if teacher is not None:
        check_model(teacher, "teacher")
        return train.output_classes(teacher, transfer.images, "teacher")
    check_logits(teacher_logits, "teacher_logits")
    if len(teacher_logits) != len(transfer):
        raise ValueError(f"teacher_logits must have one row per transfer image ({len(transfer)}), "
                         f"got {len(teacher_logits)}")
    if max_shift:
        raise ValueError("teacher_logits were computed on unshifted images; with max_shift > 0 "
                         "pass the teacher itself so it sees the shifted batches")
    return teacher_logits.shape[1]


def distill(student: nn.Module, transfer: ImageSplit, settings: train.TrainingSettings, *,
            teacher: nn.Module | None = None, teacher_logits: torch.Tensor | None = None,
            temperature: float = 4.0, weight: float = 0.9, validation: ImageSplit | None = None,
            device: torch.device | str | None = None, progress: bool = True,
            description: str = "distill", loss: Callable | None = None) -> train.FitResult:
    """Train ``student`` in place on the transfer set with :func:`distillation_loss`, by
    :func:`course_lib.train.fit` (same seeding, schedule, progress bar and devices). ``loss``, if
    given, replaces :func:`distillation_loss` with a function of the same arguments
    ``(student_logits, teacher_logits, labels, temperature, weight)``: notebook 03 trains its
    students with the learner's own.

    Give either a ``teacher`` (a frozen model, run in eval mode) or its precomputed
    ``teacher_logits`` (N, C) for the images of ``transfer``. Without augmentation
    (``settings.max_shift == 0``) a teacher's logits are computed once, before the first epoch; with it the
    teacher sees each shifted batch, so it runs at every step.

    Args:
        transfer: the transfer set (images and, unless ``weight == 1``, labels).
        temperature, weight: as :func:`distillation_loss`.
        other arguments: as :func:`course_lib.train.fit`.

    Returns:
        The :class:`course_lib.train.FitResult` of the run.

    Raises (before the student is touched):
        TypeError: ``student``/``teacher`` not nn.Modules, ``teacher_logits`` not a tensor, ``loss`` not a
            function.
        ValueError: both or neither of ``teacher`` and ``teacher_logits``; teacher logits that
            are not (len(transfer), C) and finite, or given with ``max_shift > 0``; student and
            teacher with different numbers of classes; labels outside the classes;
            ``temperature`` <= 0; ``weight`` outside [0, 1]; an empty ``transfer``;
            and as :func:`course_lib.train.fit`.
    """
    check_model(student, "student")
    check_split(transfer, "transfer")
    if loss is not None and not callable(loss):
        raise TypeError(f"loss must be a function (student_logits, teacher_logits, labels, temperature, weight), "
                        f"got {type(loss).__name__}")
    loss = loss or distillation_loss
    check_temperature(temperature)
    check_soft_target_weight(weight)
    check_type(settings, "settings", train.TrainingSettings, "a TrainingSettings (train.TrainingSettings(epochs=...))")
    classes = _teacher_classes(teacher, teacher_logits, transfer, settings.max_shift)
    student_classes = train.output_classes(student, transfer.images, "student")
    if student_classes != classes:
        raise ValueError(f"student and teacher must have the same number of classes, got "
                         f"{student_classes} and {classes}")
    if transfer.labels.min() < 0 or transfer.labels.max() >= classes:
        raise ValueError(f"transfer labels must be class indices in [0, {classes - 1}]")

    common = dict(validation=validation, device=device, progress=progress, description=description)

    def loss_on_targets(logits, labels, images, targets):
        return loss(logits, targets, labels, temperature, weight)

    if teacher is not None and settings.max_shift == 0:
        teacher_logits = precompute_logits(teacher, transfer)
    if teacher_logits is not None:
        return train.fit(student, transfer, settings, loss_fn=loss_on_targets,
                         targets=teacher_logits, **common)

    was_training = teacher.training
    frozen = teacher.eval()

    def loss_with_teacher(logits, labels, images):
        with torch.no_grad():
            targets = frozen(images.to(train.model_device(frozen))).to(logits.device)
        return loss(logits, targets, labels, temperature, weight)

    try:
        return train.fit(student, transfer, settings, loss_fn=loss_with_teacher,
                         **common)
    finally:
        teacher.train(was_training)


# ----------------------------------------------------------------------------- an omitted class

def without_class(split: ImageSplit, label: int) -> ImageSplit:
    """``split`` without any example of class ``label``: the transfer set of the paper's
    omitted-digit experiment (section 3: a student that never sees a 3).

    Raises:
        TypeError / ValueError: ``split`` not a non-empty ImageSplit; ``label`` not an int in
            [0, classes - 1]; no example left.
    """
    check_split(split, "split")
    check_int(label, "label", 0, len(split.classes) - 1)
    keep = split.labels != label
    if not keep.any():
        raise ValueError(f"split holds only class {label}; nothing would be left")
    return ImageSplit(split.images[keep], split.labels[keep], f"{split.name} without {label}",
                      split.classes)


def _last_linear(model: nn.Module) -> nn.Linear:
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not layers or layers[-1].bias is None:
        raise ValueError("model must end in an nn.Linear with a bias (the layer that makes the logits)")
    return layers[-1]


def with_bias_shift(model: nn.Module, label: int, shift: float) -> nn.Module:
    """A copy of ``model`` whose output bias for class ``label`` is raised by ``shift``: every
    logit of that class moves up by ``shift``. The paper raised the bias of the omitted 3 by 3.5
    (section 3); here the shift is chosen on validation data (:func:`choose_bias_shift`).

    Raises:
        TypeError: ``model`` not an nn.Module; ``shift`` not a number.
        ValueError: ``model`` does not end in a Linear with a bias; ``label`` not an output;
            ``shift`` not finite.
    """
    check_model(model)
    check_real(shift, "shift")
    out = _last_linear(model)
    check_int(label, "label", 0, out.out_features - 1)
    shifted = copy.deepcopy(model)
    with torch.no_grad():
        _last_linear(shifted).bias[label] += shift
    return shifted


def choose_bias_shift(logits: torch.Tensor, labels: torch.Tensor, label: int,
                      shifts: Sequence[float]) -> float:
    """The shift among ``shifts`` that, added to the logits of class ``label``, leaves the fewest
    errors on ``(logits, labels)`` (a validation split's); ties go to the smallest value
    among the shifts (with non-negative candidates, the least change). The logits are not
    modified.

    Raises:
        TypeError / ValueError: ``logits`` not a finite (B, C) float tensor; ``labels`` not B
            class indices; ``label`` not in [0, C - 1]; ``shifts`` empty or not finite numbers.
    """
    check_logits(logits, "logits")
    _check_labels(labels, logits)
    check_int(label, "label", 0, logits.shape[1] - 1)
    if not isinstance(shifts, (list, tuple)) or not shifts or \
            not all(is_real(s) and math.isfinite(s) for s in shifts):
        raise ValueError(f"shifts must be a non-empty list of finite numbers, got {shifts!r}")
    best, best_errors = None, None
    for shift in sorted(shifts):
        moved = logits.clone()
        moved[:, label] += shift
        errors = int((moved.argmax(dim=1) != labels).sum())
        if best_errors is None or errors < best_errors:
            best, best_errors = shift, errors
    return best
