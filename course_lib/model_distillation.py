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

Taught in ``notebooks/06_model_distillation.ipynb``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from sklearn.tree import DecisionTreeClassifier
from torch import nn
from torch.nn import functional as F

from . import data, hardware, measure, models, train, zoo
from .checks import (check_choice, check_finite, check_int, check_model, check_real, check_tensor,
                     check_type)
from .data import SEED_RANGE, ImageSplit, check_split
from .distillation import (check_logit_pair, check_logits, check_temperature, check_weight, distill,
                           precompute_logits, soft_target_loss)

TRANSFER_SETS = ("images", "munge", "mixup", "noise")
PREDICTIONS = ("max_path", "mixture")
TREE_TARGETS = ("teacher", "labels")
FAMILIES = ("mlp", "tiny_cnn", "soft_tree", "tree")
# What "size" means for each family of the panel, and its range.
SIZES = {"mlp": ("hidden width", 1, 2048), "tiny_cnn": ("first conv width", 1, 64),
         "soft_tree": ("depth", 1, 10), "tree": ("depth", 1, 30)}
MAX_SOFT_TREE_DEPTH = 16        # 65,535 filters: beyond this, the tree no longer fits in memory
# The panel trains on a few thousand images for a few epochs: small batches and a higher rate than
# train.fit's defaults give enough steps for a student to reach the teacher's logits (some are +-30).
EXPERIMENT_LR = 3e-3
EXPERIMENT_BATCH_SIZE = 32
_EPS = 1e-6


# ----------------------------------------------------------------------------- argument checks



def _check_labels(labels: torch.Tensor, n: int, classes: int, name: str = "labels") -> None:
    check_tensor(labels, name)
    if labels.dim() != 1 or labels.is_floating_point() or labels.dtype == torch.bool or len(labels) != n:
        raise ValueError(f"{name} must be a ({n},) integer tensor of class indices, got shape "
                         f"{tuple(labels.shape)} of {labels.dtype}")
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"{name} must be class indices in [0, {classes - 1}], got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")


def _check_images(images: torch.Tensor, name: str = "images", at_least: int = 1) -> None:
    """A finite (N, C, H, W) float tensor with N >= ``at_least``."""
    check_tensor(images, name)
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"{name} must be a (N, C, H, W) float tensor, got shape {tuple(images.shape)} "
                         f"of {images.dtype}")
    if len(images) < at_least:
        raise ValueError(f"{name} must hold at least {at_least} image{'s' if at_least > 1 else ''}, "
                         f"got {len(images)}; an empty transfer set teaches nothing")
    check_finite(images, name)


def _check_teacher_logits(teacher_logits: torch.Tensor, transfer: ImageSplit) -> None:
    """(len(transfer), C) finite logits: one row per transfer image."""
    check_logits(teacher_logits, "teacher_logits")
    if len(teacher_logits) != len(transfer):
        raise ValueError(f"teacher_logits must have one row per transfer image ({len(transfer)}), got "
                         f"{len(teacher_logits)}; compute them on the same images "
                         "(distillation.precompute_logits(teacher, transfer))")


def _output_shape(model: nn.Module, example: torch.Tensor, layer: str | None = None) -> tuple[int, ...]:
    """The shape of one example's output (of the whole model, or of ``layer``), eval mode, no grad;
    the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = example.to(train.model_device(model))
            out = model(x) if layer is None else intermediate(model, layer, x)
    finally:
        model.train(was_training)
    return tuple(out.shape[1:])


def _classes_of(model: nn.Module, example: torch.Tensor, name: str) -> int:
    shape = _output_shape(model, example)
    if len(shape) != 1:
        raise ValueError(f"{name} must output (batch, classes) logits, got an output of shape "
                         f"(batch, {', '.join(map(str, shape))})")
    return shape[0]


# ----------------------------------------------------------------------------- fidelity

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
    student_logits = train.predict_logits(student, split.images, batch_size).cpu()
    teacher_logits = train.predict_logits(teacher, split.images, batch_size).cpu()
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher must output the same classes, got logits of shape "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
    return fidelity_of_logits(student_logits, teacher_logits, split.labels.cpu())


# ----------------------------------------------------------------------------- mimic learning

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


def _fit_on_teacher(model: nn.Module, transfer: ImageSplit, epochs: int,
                    loss_on_targets: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                    teacher: nn.Module | None, teacher_logits: torch.Tensor | None, max_shift: int,
                    **fit_kwargs) -> train.FitResult:
    """``train.fit`` with a loss ``loss_on_targets(output, images, teacher_logits)``: the
    teacher's logits computed once (given, or from ``teacher`` when ``max_shift == 0``), or live
    on every shifted batch. Arguments are checked by the caller."""
    if teacher is not None and max_shift == 0:
        teacher_logits = precompute_logits(teacher, transfer)
    if teacher_logits is not None:
        return train.fit(model, transfer, epochs, max_shift=0, targets=teacher_logits,
                         loss_fn=lambda out, labels, images, targets: loss_on_targets(out, images, targets),
                         **fit_kwargs)
    was_training = teacher.training
    frozen = teacher.eval()

    def loss_with_teacher(out, labels, images):
        with torch.no_grad():
            targets = frozen(images.to(train.model_device(frozen))).to(out.device)
        return loss_on_targets(out, images, targets)

    try:
        return train.fit(model, transfer, epochs, max_shift=max_shift, loss_fn=loss_with_teacher, **fit_kwargs)
    finally:
        teacher.train(was_training)


def _check_teacher_args(student: nn.Module, transfer: ImageSplit, teacher: nn.Module | None,
                        teacher_logits: torch.Tensor | None, max_shift: int, student_name: str = "student") -> int:
    """Exactly one of a teacher and its logits for ``transfer``, with the student's classes;
    returns the number of classes."""
    check_model(student, student_name)
    check_split(transfer, "transfer")
    check_int(max_shift, "max_shift", 0)
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


def mimic(student: nn.Module, transfer: ImageSplit, epochs: int, *, teacher: nn.Module | None = None,
          teacher_logits: torch.Tensor | None = None, centre: bool = False, lr: float = 1e-3,
          optimizer: str = "adam", lr_schedule: str = "cosine", batch_size: int = 128,
          weight_decay: float = 0.0, max_shift: int = 0, test: ImageSplit | None = None, seed: int = 0,
          device: torch.device | str | None = None, progress: bool = True,
          description: str = "mimic") -> train.FitResult:
    """Mimic learning: train ``student`` in place to regress the teacher's logits with
    :func:`mimic_loss` over ``transfer``, by :func:`course_lib.train.fit`. No label is used:
    ``transfer.labels`` only feed the history's ``train_accuracy`` (with a :class:`TransferSet`
    from :func:`label_with_teacher`, that is the agreement with the teacher).

    Give either a ``teacher`` (run in eval mode; its logits computed once, or on every batch when
    ``max_shift > 0``) or its ``teacher_logits`` (N, C) for the images of ``transfer``.

    Regressing logits takes more steps than cross-entropy on labels: a confident teacher's logits
    reach tens (LeNet-5's span about +-30), and the student's outputs must grow that far.

    Returns:
        The :class:`course_lib.train.FitResult` of the run.

    Raises (before the student is touched):
        TypeError: ``student``/``teacher`` not nn.Modules, ``teacher_logits`` not a tensor,
            ``centre`` not a bool.
        ValueError: both or neither of ``teacher`` and ``teacher_logits``; teacher logits that are
            not (len(transfer), C) and finite, or given with ``max_shift > 0``; student and
            teacher with different numbers of classes; an empty ``transfer``; and as
            :func:`course_lib.train.fit`.
    """
    _check_teacher_args(student, transfer, teacher, teacher_logits, max_shift)
    check_type(centre, "centre", bool, "True or False")
    return _fit_on_teacher(student, transfer, epochs,
                           lambda out, images, targets: mimic_loss(out, targets, centre),
                           teacher, teacher_logits, max_shift, lr=lr, optimizer=optimizer,
                           lr_schedule=lr_schedule, batch_size=batch_size, weight_decay=weight_decay,
                           test=test, seed=seed, device=device, progress=progress, description=description)


# ----------------------------------------------------------------------------- transfer sets

def _check_generator(generator: torch.Generator) -> None:
    check_type(generator, "generator", torch.Generator, "a torch.Generator (torch.Generator().manual_seed(0))")


def _nearest_neighbours(x: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """For each row of ``x`` (n, D), the index of its nearest other row (Euclidean), in chunks of
    rows so that memory stays (chunk, n). (n,) int64."""
    index = []
    for start in range(0, len(x), chunk):
        d = torch.cdist(x[start:start + chunk], x)                          # (chunk, n)
        rows = torch.arange(start, min(start + chunk, len(x)))
        d[rows - start, rows] = math.inf                                     # never itself
        index.append(d.argmin(dim=1))
    return torch.cat(index)


def munge(images: torch.Tensor, size: int, generator: torch.Generator, swap_probability: float = 0.5,
          width_divisor: float = 10.0) -> torch.Tensor:
    """MUNGE (Bucilă, Caruana & Niculescu-Mizil 2006, section 4): synthetic examples near the
    data. Each example :math:`e` is paired with its nearest neighbour :math:`e'` (Euclidean, over
    pixels); each attribute (pixel) :math:`a` is, with probability :math:`p`
    (``swap_probability``), replaced by a draw from :math:`\\mathcal N(e'_a, sd)` with
    :math:`sd = |e_a - e'_a| / s` (``width_divisor``), and kept otherwise. Rounds over the sample
    are repeated until ``size`` examples are made (the first ``size`` are returned).

    The paper's pass also alters the neighbour :math:`e'` in place as it goes; here each round
    leaves the sample as it was, so a round is one vectorised step and the result does not depend
    on the order of the loop. The defaults are this course's, not the paper's (it tunes
    :math:`p` and :math:`s` per data set).

    Args:
        images: (n, C, H, W), n >= 2, finite; not modified.
        size: examples to make, an int >= 1.
        generator: a CPU ``torch.Generator`` (the only source of randomness).

    Returns:
        (size, C, H, W) float tensor, on the CPU.

    Raises:
        TypeError / ValueError: ``images`` not a finite (n, C, H, W) float tensor with n >= 2;
            ``size`` not an int >= 1; ``swap_probability`` outside [0, 1]; ``width_divisor`` not
            a finite number > 0; ``generator`` not a torch.Generator.
    """
    _check_images(images, at_least=2)
    check_int(size, "size", 1)
    check_real(swap_probability, "swap_probability", 0, 1)
    check_real(width_divisor, "width_divisor", 0, math.inf, low_open=True, high_open=True)
    _check_generator(generator)
    x = images.detach().cpu().flatten(1)                     # (n, D)
    neighbour = x[_nearest_neighbours(x)]                    # (n, D): e' for each e
    sd = (x - neighbour).abs() / width_divisor               # (n, D)
    rounds = []
    for _ in range(math.ceil(size / len(x))):
        swap = torch.rand(x.shape, generator=generator) < swap_probability
        drawn = neighbour + sd * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        rounds.append(torch.where(swap, drawn, x))
    return torch.cat(rounds)[:size].reshape(size, *images.shape[1:])


def mixup_images(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Mixup-style convex combinations (Zhang et al. 2018, "mixup"): :math:`\\lambda x_i +
    (1 - \\lambda) x_j` for random pairs :math:`(i, j)` of the sample and :math:`\\lambda \\sim
    U(0, 1)` (mixup's Beta(1, 1)). No labels are mixed: the teacher labels the results.

    Returns:
        (size, C, H, W) float tensor, on the CPU; ``images`` is not modified.

    Raises:
        TypeError / ValueError: as :func:`munge` (n >= 2 images, ``size`` >= 1, a generator).
    """
    _check_images(images, at_least=2)
    check_int(size, "size", 1)
    _check_generator(generator)
    x = images.detach().cpu()
    i = torch.randint(0, len(x), (size,), generator=generator)
    j = torch.randint(0, len(x), (size,), generator=generator)
    lam = torch.rand(size, generator=generator, dtype=x.dtype).view(size, 1, 1, 1)
    return lam * x[i] + (1 - lam) * x[j]


def noise_images(images: torch.Tensor, size: int, generator: torch.Generator, std: float = 0.5) -> torch.Tensor:
    """Gaussian-noise variants: :math:`x_i + \\sigma \\varepsilon` with :math:`i` drawn uniformly
    from the sample and :math:`\\varepsilon \\sim \\mathcal N(0, I)`; ``std`` = :math:`\\sigma`
    in the images' units (normalised MNIST pixels have standard deviation 1).

    Returns:
        (size, C, H, W) float tensor, on the CPU; ``images`` is not modified.

    Raises:
        TypeError / ValueError: ``images`` not a finite, non-empty (n, C, H, W) float tensor;
            ``size`` not an int >= 1; ``std`` not a finite number >= 0; no generator.
    """
    _check_images(images)
    check_int(size, "size", 1)
    check_real(std, "std", 0, math.inf, high_open=True)
    _check_generator(generator)
    x = images.detach().cpu()
    i = torch.randint(0, len(x), (size,), generator=generator)
    return x[i] + std * torch.randn((size, *x.shape[1:]), generator=generator, dtype=x.dtype)


def transfer_images(kind: str, sample: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """The images of a transfer set of ``kind`` (one of :data:`TRANSFER_SETS`): ``"images"``, the
    first ``size`` images of ``sample`` themselves (the unlabeled training images); ``"munge"``,
    ``"mixup"`` or ``"noise"``, ``size`` images synthesised from ``sample`` with the defaults of
    :func:`munge`, :func:`mixup_images`, :func:`noise_images`.

    Raises:
        ValueError: an unknown ``kind``; ``size`` above ``len(sample)`` for ``"images"``; and as
            the function it calls.
    """
    check_choice(kind, "kind", TRANSFER_SETS)
    if kind == "images":
        _check_images(sample, "sample")
        check_int(size, "size", 1, len(sample))
        _check_generator(generator)
        return sample[:size].detach().cpu().clone()
    make = {"munge": munge, "mixup": mixup_images, "noise": noise_images}[kind]
    return make(sample, size, generator)


# ----------------------------------------------------------------------------- hints (FitNets)

def layer_names(model: nn.Module) -> list[str]:
    """The names of a model's layers (every named submodule), in order: what ``hint_layer`` and
    ``guided_layer`` may be (``["conv1", "relu1", ...]`` for :func:`course_lib.models.lenet5`).

    Raises:
        TypeError: ``model`` is not an nn.Module.
    """
    check_model(model)
    return [name for name, _ in model.named_modules() if name]


def check_layer_name(model: nn.Module, layer: str, name: str = "layer") -> nn.Module:
    """Return the layer of ``model`` called ``layer``.

    Raises:
        TypeError: ``layer`` is not a str.
        ValueError: the model has no such layer: ``"hint_layer 'fc9' is not a layer of the model;
            its layers are ['conv1', ...]"``.
    """
    check_type(layer, name, str, "a layer name (str)")
    modules = dict(model.named_modules())
    if not layer or layer not in modules:
        raise ValueError(f"{name} {layer!r} is not a layer of the model; its layers are {layer_names(model)}")
    return modules[layer]


def intermediate(model: nn.Module, layer: str, images: torch.Tensor) -> torch.Tensor:
    """The output of ``model``'s layer ``layer`` on ``images``, caught by a forward hook while the
    model runs (the hook is removed afterwards). Gradients flow as in the model's own forward;
    the model's mode is left as it is.

    Raises:
        TypeError / ValueError: ``model`` not an nn.Module; no layer called ``layer``
            (:func:`check_layer_name`); ``images`` not a tensor; a layer the forward never calls.
    """
    check_model(model)
    module = check_layer_name(model, layer)
    check_tensor(images, "images")
    caught = []
    handle = module.register_forward_hook(lambda m, inputs, output: caught.append(output))
    try:
        model(images)
    finally:
        handle.remove()
    if not caught:
        raise ValueError(f"layer {layer!r} is never called by the model's forward, so it has no output")
    return caught[-1]


def hint_regressor(guided_shape: Sequence[int], hint_shape: Sequence[int], seed: int = 0) -> nn.Module:
    """The FitNets regressor :math:`r` from the student's guided layer (one example's output
    shape ``guided_shape``) to the teacher's hint layer (``hint_shape``). Between two feature
    maps (C, H, W) with the guided one at least as large, a convolution whose kernel
    :math:`(H_g - H_h + 1) \\times (W_g - W_h + 1)` maps one onto the other (Romero et al.'s
    convolutional regressor, far fewer weights than a fully connected one); otherwise a Linear
    from the flattened guided output, reshaped to ``hint_shape``. Weights drawn from a generator
    seeded with ``seed`` (the global RNG is left as it was).

    Raises:
        ValueError: shapes that are not non-empty tuples of ints >= 1; ``seed`` out of range.
    """
    for shape, name in ((guided_shape, "guided_shape"), (hint_shape, "hint_shape")):
        if not isinstance(shape, (tuple, list, torch.Size)) or not shape or \
                any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in shape):
            raise ValueError(f"{name} must be one example's output shape, a tuple of ints >= 1, got {shape!r}")
    check_int(seed, "seed", *SEED_RANGE)
    g, h = tuple(guided_shape), tuple(hint_shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if len(g) == 3 and len(h) == 3 and g[1] >= h[1] and g[2] >= h[2]:
            return nn.Conv2d(g[0], h[0], kernel_size=(g[1] - h[1] + 1, g[2] - h[2] + 1))
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(g), math.prod(h)), nn.Unflatten(1, h))


def hint_loss(regressed: torch.Tensor, hint: torch.Tensor) -> torch.Tensor:
    """FitNets' (Romero et al. 2015, eq. 3) hint loss :math:`\\frac12 \\| u_h(x) - r(v_g(x)) \\|^2`,
    summed over each example's features and averaged over the batch; the teacher's hint
    :math:`u_h(x)` is a target (no gradient flows into it).

    Raises:
        TypeError / ValueError: tensors that are not float, of different shapes, empty, or not finite.
    """
    check_tensor(regressed, "regressed")
    check_tensor(hint, "hint")
    if regressed.shape != hint.shape or regressed.dim() < 2 or len(hint) == 0 or not hint.is_floating_point():
        raise ValueError(f"regressed and hint must be float tensors of one shape (batch, ...), got "
                         f"{tuple(regressed.shape)} and {tuple(hint.shape)}; the regressor maps the guided "
                         "layer's output onto the hint layer's")
    check_finite(hint, "hint")
    return 0.5 * ((regressed - hint.detach()) ** 2).flatten(1).sum(dim=1).mean()


class _Guided(nn.Module):
    """Stage 1's model: the student's guided layer through the regressor, flattened (B, D) (so
    that ``train.fit``'s bookkeeping runs; its ``train_accuracy`` means nothing here)."""

    def __init__(self, student: nn.Module, regressor: nn.Module, guided_layer: str) -> None:
        super().__init__()
        self.student, self.regressor, self.guided_layer = student, regressor, guided_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.regressor(intermediate(self.student, self.guided_layer, x)).flatten(1)


@dataclass
class HintTraining:
    """What :func:`train_with_hints` returns: the stage-1 regressor and both runs' results."""
    regressor: nn.Module
    hint_result: train.FitResult
    result: train.FitResult


def train_with_hints(student: nn.Module, teacher: nn.Module, transfer: ImageSplit, epochs: int, *,
                     guided_layer: str, hint_layer: str, hint_epochs: int, temperature: float = 4.0,
                     weight: float = 0.9, lr: float = 1e-3, optimizer: str = "adam",
                     lr_schedule: str = "cosine", batch_size: int = 128, weight_decay: float = 0.0,
                     test: ImageSplit | None = None, seed: int = 0, device: torch.device | str | None = None,
                     progress: bool = True) -> HintTraining:
    """FitNets (Romero et al. 2015), in two stages, on the student in place:

    1. ``hint_epochs`` epochs of :func:`hint_loss` between the teacher's ``hint_layer`` output
       (eval mode, no gradient) and the student's ``guided_layer`` output through a
       :func:`hint_regressor`: only the student's layers up to the guided layer (and the
       regressor) learn; the layers after it get no gradient and stay as they were.
    2. ``epochs`` epochs of the whole student with :func:`course_lib.distillation.distill`
       (``weight`` on the teacher's soft targets at ``temperature``; ``weight=0``: labels alone).

    Returns:
        :class:`HintTraining` (the regressor, stage 1's and stage 2's FitResults).

    Raises (before the student is touched):
        TypeError: models that are not nn.Modules; layer names that are not str.
        ValueError: a ``guided_layer`` the student does not have or a ``hint_layer`` the teacher
            does not have (the message lists the layers); student and teacher with different
            numbers of classes; labels outside the classes; ``temperature``/``weight`` as
            :func:`course_lib.distillation.distillation_loss`; and as :func:`course_lib.train.fit`.
    """
    classes = _check_teacher_args(student, transfer, teacher, None, 0)
    check_layer_name(student, guided_layer, "guided_layer")
    check_layer_name(teacher, hint_layer, "hint_layer")
    check_int(epochs, "epochs", 0)
    check_int(hint_epochs, "hint_epochs", 0)
    check_temperature(temperature)
    check_weight(weight)
    check_split(test, "test", allow_none=True)
    check_int(seed, "seed", *SEED_RANGE)
    if transfer.labels.min() < 0 or transfer.labels.max() >= classes:
        raise ValueError(f"transfer labels must be class indices in [0, {classes - 1}]")
    if device is not None:
        data.check_device(device)
    example = transfer.images[:1]
    regressor = hint_regressor(_output_shape(student, example, guided_layer),
                               _output_shape(teacher, example, hint_layer), seed)
    guided = _Guided(student, regressor, guided_layer)
    was_training = teacher.training
    frozen = teacher.eval()

    def loss_on_hint(out, labels, images):
        with torch.no_grad():
            hint = intermediate(frozen, hint_layer, images.to(train.model_device(frozen))).to(out.device)
        return hint_loss(out, hint.flatten(1))

    common = dict(lr=lr, optimizer=optimizer, lr_schedule=lr_schedule, batch_size=batch_size,
                  weight_decay=weight_decay, seed=seed, device=device, progress=progress)
    try:
        hint_result = train.fit(guided, transfer, hint_epochs, loss_fn=loss_on_hint, description="hints", **common)
    finally:
        teacher.train(was_training)
    result = distill(student, transfer, epochs, teacher=teacher, temperature=temperature, weight=weight,
                     test=test, description="after hints", **common)
    return HintTraining(regressor, hint_result, result)


# ----------------------------------------------------------------------------- the soft decision tree

def _check_depth(depth: int, high: int = MAX_SOFT_TREE_DEPTH) -> None:
    check_int(depth, "depth", 1, high)


def _path_probabilities(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`path_probabilities` (below) without its checks: the soft tree calls it on every batch."""
    depth = (p.shape[1] + 1).bit_length() - 1
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


def train_soft_tree(tree: SoftDecisionTree, transfer: ImageSplit, epochs: int, *,
                    teacher: nn.Module | None = None, teacher_logits: torch.Tensor | None = None,
                    temperature: float = 1.0, penalty: float = 0.1, lr: float = 1e-3, optimizer: str = "adam",
                    lr_schedule: str = "cosine", batch_size: int = 128, weight_decay: float = 0.0,
                    max_shift: int = 0, test: ImageSplit | None = None, seed: int = 0,
                    device: torch.device | str | None = None, progress: bool = True,
                    description: str = "soft tree") -> train.FitResult:
    """Train ``tree`` in place with :meth:`SoftDecisionTree.loss`, by :func:`course_lib.train.fit`:
    distilled, against the teacher's soft targets :math:`\\mathrm{softmax}(v / T)` (give
    ``teacher`` or its ``teacher_logits`` for ``transfer``, as :func:`mimic`), or, with neither,
    on ``transfer``'s labels as one-hot targets. ``penalty`` is :func:`balance_penalty`'s
    :math:`\\lambda`. The history's ``train_accuracy`` is that of ``tree``'s prediction rule.

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
        _check_teacher_args(tree, transfer, teacher, teacher_logits, max_shift, "tree")
    else:
        _check_labels(transfer.labels, len(transfer), classes, "transfer labels")
    common = dict(lr=lr, optimizer=optimizer, lr_schedule=lr_schedule, batch_size=batch_size,
                  weight_decay=weight_decay, test=test, seed=seed, device=device, progress=progress,
                  description=description)
    if teacher is None and teacher_logits is None:
        def loss_on_labels(out, labels, images):
            return tree.loss(images, F.one_hot(labels, classes).to(images.dtype), penalty)
        return train.fit(tree, transfer, epochs, max_shift=max_shift, loss_fn=loss_on_labels, **common)
    return _fit_on_teacher(tree, transfer, epochs,
                           lambda out, images, targets: tree.loss(images, F.softmax(targets / temperature, dim=-1),
                                                                  penalty),
                           teacher, teacher_logits, max_shift, **common)


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


# ----------------------------------------------------------------------------- scikit-learn trees

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


# ----------------------------------------------------------------------------- the panel's experiment

def _student(family: str, size: int, seed: int) -> nn.Module:
    """An untrained student of ``family`` ("mlp", "tiny_cnn" or "soft_tree") at ``size``."""
    if family == "soft_tree":
        return soft_decision_tree(size, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family == "mlp":
            return models.mlp([size, size])
        return models.small_cnn((size, 2 * size), 4 * size)


def _describe(family: str, size: int) -> str:
    return {"mlp": f"MLP 784-{size}-{size}-10",
            "tiny_cnn": f"CNN, widths {size}-{2 * size}, {4 * size}-unit classifier",
            "soft_tree": f"soft decision tree of depth {size}",
            "tree": f"decision tree of depth <= {size}"}[family]


@dataclass(frozen=True)
class ModelDistillationExperiment:
    """A student trained on the teacher's outputs over a transfer set (no labels), scored on the
    validation split, with its size and its verdict on a device."""
    family: str
    size: int
    transfer: str
    transfer_size: int
    epochs: int
    teacher: str
    fidelity: Fidelity
    report: measure.ModelReport
    verdict: hardware.Verdict

    def lines(self) -> list[str]:
        """The panel's text, one line each."""
        f = self.fidelity
        kl = "n/a (a hard tree gives no probabilities)" if f.kl is None else f"{f.kl:.3f} nats"
        epochs = f"{self.epochs} epoch{'s' if self.epochs > 1 else ''} on"
        trained = "fitted on" if self.family == "tree" else epochs
        source = "unlabeled training images" if self.transfer == "images" else f"{self.transfer} images"
        return [
            f"{_describe(self.family, self.size)}, {trained} {self.transfer_size:,} {source} labelled by "
            f"the teacher ({self.teacher}); no true labels used",
            f"Validation: accuracy {100 * f.accuracy:.2f}% (teacher {100 * f.teacher_accuracy:.2f}%), "
            f"agreement with the teacher {100 * f.agreement:.2f}%, KL(teacher || student) {kl}",
            f"{self.report.parameters:,} {'stored numbers' if self.family == 'tree' else 'parameters'}, "
            f"{measure.format_bytes(self.report.weight_bytes)}, {self.report.macs:,} MACs",
            *hardware.verdict_lines(self.verdict),
        ]


def model_distillation_experiment(family: str, size: int, transfer: str, device_name: str, *,
                                  epochs: int = 5, transfer_size: int = 2000, sample_size: int = 200,
                                  teacher: str = "lenet5", seed: int = 0) -> ModelDistillationExperiment:
    """Notebook 06's panel: a student of ``family`` (one of :data:`FAMILIES`; ``size`` is its
    hidden width, first conv width, or depth, see :data:`SIZES`) trained on a transfer set labelled
    by the zoo model ``teacher``: ``transfer="images"``, the first ``transfer_size`` training
    images; ``"munge"``, ``"mixup"`` or ``"noise"``, ``transfer_size`` images synthesised from the
    first ``sample_size`` (:func:`transfer_images`, seeded by ``seed``). Networks learn by
    :func:`mimic`, the soft tree by :func:`train_soft_tree` on the teacher's probabilities, the
    scikit-learn tree by :func:`fit_tree` on its labels (networks and soft trees with Adam at
    :data:`EXPERIMENT_LR`, batches of :data:`EXPERIMENT_BATCH_SIZE`). Scored on the validation
    split (:class:`Fidelity`), measured, and judged on the device ``device_name``. A few seconds
    with the defaults.

    Raises (before anything is trained):
        TypeError / ValueError: an unknown ``family``, ``transfer``, ``teacher`` or device;
            ``size`` outside the family's range; ``epochs`` not in [1, 50]; ``transfer_size``
            not in [1, 55000]; ``sample_size`` not in [2, 55000] (``"images"`` ignores it);
            ``seed`` out of range.
    """
    check_choice(family, "family", FAMILIES)
    what, low, high = SIZES[family]
    check_int(size, f"size ({what} of a {family})", low, high)
    check_choice(transfer, "transfer", TRANSFER_SETS)
    check_int(epochs, "epochs", 1, 50)
    check_int(transfer_size, "transfer_size", 1, 55_000)
    check_int(sample_size, "sample_size", 2, 55_000)
    check_choice(teacher, "teacher", zoo.names())
    check_int(seed, "seed", *SEED_RANGE)
    device = hardware.get_device(device_name)
    teacher_model = zoo.load(teacher)
    training = data.load("mnist", "train")
    validation = data.load("mnist", "validation")
    generator = torch.Generator().manual_seed(seed)
    sample = training.images if transfer == "images" else training.images[:sample_size]
    images = transfer_images(transfer, sample, transfer_size, generator)
    labelled = label_with_teacher(images, teacher_model, f"{transfer} transfer set", training.classes)
    name = _describe(family, size)
    if family == "tree":
        tree = fit_tree(labelled.split, size, seed)
        scores = fidelity_of_predictions(tree_predict(tree, validation.images),
                                         precompute_logits(teacher_model, validation), validation.labels)
        report = tree_report(tree, name)
    else:
        student = _student(family, size, seed)
        fit = dict(teacher_logits=labelled.teacher_logits, lr=EXPERIMENT_LR, batch_size=EXPERIMENT_BATCH_SIZE,
                   seed=seed, device="cpu", progress=False)
        if family == "soft_tree":
            train_soft_tree(student, labelled.split, epochs, **fit)
        else:
            mimic(student, labelled.split, epochs, **fit)
        scores = fidelity(student, teacher_model, validation)
        report = measure.report(student, name)
    return ModelDistillationExperiment(family=family, size=size, transfer=transfer, transfer_size=transfer_size,
                                       epochs=epochs, teacher=teacher, fidelity=scores, report=report,
                                       verdict=hardware.check_fit(report, device))
