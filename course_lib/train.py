"""Seeding, device choice, and the training / evaluation loops every notebook uses.

``fit`` is deliberately plain: cross-entropy (or a loss you pass), Adam or SGD, an optional
cosine learning-rate decay, shift augmentation, and a ``after_step`` hook called after each
optimizer step. The hook is how compression rides along during fine-tuning: pruning re-applies
its masks there; fake-quantization lives in the modules' forward and needs no hook at all.

Taught in ``notebooks/00_efficiency_and_hardware.ipynb``.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .checks import check_choice, check_finite, check_int, check_model, check_real, check_type
from .data import SEED_RANGE, ImageSplit, batches, check_device, check_split

__all__ = ["OPTIMIZERS", "LR_SCHEDULES", "seed_everything", "default_device", "model_device", "Evaluation",
           "output_classes", "predict_logits", "evaluate", "FitResult", "TrainingSettings", "FINE_TUNING",
           "fit", "fine_tune"]

OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("constant", "cosine")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators (call once, at the top of a
    notebook; library functions take their own seeds instead).

    Raises:
        TypeError / ValueError: ``seed`` is not an int in [0, 2**32 - 1] (NumPy's limit).
    """
    check_int(seed, "seed", *SEED_RANGE)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def default_device() -> torch.device:
    """CUDA if present, else Apple's MPS, else the CPU (the course's reference)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter (CPU for a model without parameters).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    check_model(model)
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@dataclass(frozen=True)
class Evaluation:
    """Accuracy and mean cross-entropy of a model on a split; ``error`` = 1 - accuracy."""
    accuracy: float
    loss: float
    n: int

    @property
    def error(self) -> float:
        return 1.0 - self.accuracy


def output_classes(model: nn.Module, images: torch.Tensor, name: str = "model") -> int:
    """The number of classes ``model`` outputs, from the first of ``images`` (eval mode, no
    gradient; the model's mode is restored), checked up front so that a model that cannot take
    these images is named in plain words instead of failing deep inside torch.

    Raises:
        ValueError: the model cannot run on these images (a model built for other inputs, e.g.
            3-channel ones), or does not output (batch, classes) logits.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(images[:1].to(model_device(model)))
    except RuntimeError as e:
        raise ValueError(f"{name} cannot run on these images (one image of shape {tuple(images.shape[1:])}); "
                         f"was it built for other inputs? Torch said: {e}") from e
    finally:
        model.train(was_training)
    if out.dim() != 2:
        raise ValueError(f"{name} must be a classifier, outputting (batch, classes) logits, got shape {tuple(out.shape)}")
    return out.shape[1]


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits (N, classes) of ``model`` in eval mode, computed in batches on the model's device
    (its train/eval mode is restored afterwards).

    Args:
        images: (N, ...) with N >= 1, finite.
        batch_size: an int >= 1.

    Raises:
        TypeError: ``model`` not an nn.Module, ``images`` not a tensor, ``batch_size`` not an int.
        ValueError: ``images`` empty or not finite, ``batch_size`` < 1.
    """
    check_model(model)
    check_type(images, "images", torch.Tensor, "a (N, ...) tensor")
    if images.dim() == 0 or len(images) == 0:
        raise ValueError(f"images must hold at least one example (N, ...), got shape {tuple(images.shape)}")
    check_finite(images, "images")
    check_int(batch_size, "batch_size", 1)
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        outs = [model(images[i:i + batch_size].to(device)) for i in range(0, len(images), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs)


def evaluate(model: nn.Module, split: ImageSplit, batch_size: int = 1000) -> Evaluation:
    """Top-1 accuracy and mean cross-entropy of ``model`` on ``split`` (eval mode, no grad).
    The model stays on its device; batches are moved to it.

    Raises:
        TypeError: ``model`` not an nn.Module, ``split`` not an ImageSplit, ``batch_size`` not an int.
        ValueError: ``split`` empty, ``batch_size`` < 1.
    """
    check_model(model)
    check_split(split)
    check_int(batch_size, "batch_size", 1)
    logits = predict_logits(model, split.images, batch_size)
    labels = split.labels.to(logits.device)
    loss = F.cross_entropy(logits, labels).item()
    accuracy = (logits.argmax(1) == labels).float().mean().item()
    return Evaluation(accuracy=accuracy, loss=loss, n=len(split))


@dataclass
class FitResult:
    """What :func:`fit` returns: one dict per epoch in ``history`` and the final evaluation."""
    history: list[dict] = field(default_factory=list)
    final: Evaluation | None = None
    seconds: float = 0.0


def _make_optimizer(model: nn.Module, settings: TrainingSettings) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if settings.optimizer == "adam":
        return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    return torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)


def _check_targets(targets: torch.Tensor, n: int, loss_fn) -> None:
    """Per-example targets for :func:`fit`: one finite row per training example, and a loss that uses them."""
    if targets.dim() == 0 or len(targets) != n:
        raise ValueError(f"targets must have one row per training example ({n}), got shape {tuple(targets.shape)}")
    if loss_fn is None:
        raise ValueError("targets need a loss_fn(logits, labels, images, targets) to use them")
    check_finite(targets, "targets")


def _train_one_epoch(model: nn.Module, epoch_batches, loss_fn, targets: torch.Tensor | None,
                     opt: torch.optim.Optimizer, scheduler, after_step) -> tuple[float, float]:
    """One pass of :func:`fit` over ``epoch_batches`` (images, labels, indices): for each batch the
    loss, a gradient step, the schedule's step and ``after_step``. Returns the epoch's mean loss
    and accuracy on the training batches."""
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for x, y, index in epoch_batches:
        logits = model(x)
        loss = loss_fn(logits, y, x) if targets is None else loss_fn(logits, y, x, targets[index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        scheduler.step()
        if after_step is not None:
            after_step(model)
        loss_sum += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    return loss_sum / seen, correct / seen


@dataclass(frozen=True)
class TrainingSettings:
    """How a training run optimises: what :func:`fit` and every training function built on it
    (distillation, mimic learning, hints, soft trees) take, checked when made, so that a wrong
    setting is named before any model is touched. Vary one with :func:`dataclasses.replace`:
    ``replace(settings, seed=1)``.

    Attributes:
        epochs: passes over the training split (>= 0).
        lr: initial learning rate (finite, > 0); with ``lr_schedule="cosine"`` it decays per step
            as :math:`\\eta_t = \\eta_0 \\cdot \\tfrac12 (1 + \\cos(\\pi t / T))`.
        optimizer: ``"adam"`` or ``"sgd"`` (with ``momentum``, in [0, 1)).
        lr_schedule: ``"cosine"`` or ``"constant"``.
        batch_size: examples per step (>= 1).
        weight_decay: L2 penalty (finite, >= 0).
        max_shift: shift augmentation in pixels (0 = none).
        seed: seeds the batch order and augmentation (a private generator; dropout uses the
            global generator, so seed that too for a fully repeatable run), in [0, 2**32 - 1].

    Raises (on construction):
        TypeError: a count or rate of the wrong type (``epochs=2.0``, ``lr="0.1"``, ``True``).
        ValueError: a value outside its range, an unknown ``optimizer`` or ``lr_schedule``.
    """
    epochs: int
    lr: float = 1e-3
    optimizer: str = "adam"
    lr_schedule: str = "cosine"
    batch_size: int = 128
    weight_decay: float = 0.0
    momentum: float = 0.9
    max_shift: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self.epochs, "epochs", 0)
        check_real(self.lr, "lr", 0, math.inf, low_open=True, high_open=True)
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        check_choice(self.lr_schedule, "lr_schedule", LR_SCHEDULES)
        check_int(self.batch_size, "batch_size", 1)
        check_real(self.weight_decay, "weight_decay", 0, math.inf, high_open=True)
        check_real(self.momentum, "momentum", 0, 1, high_open=True)
        check_int(self.max_shift, "max_shift", 0)
        check_int(self.seed, "seed", *SEED_RANGE)


#: Fine-tuning's defaults: a short run at a learning rate ~10x below the original training's, as
#: when retraining after pruning (Han et al. 2015) or quantization.
FINE_TUNING = TrainingSettings(epochs=1, lr=1e-4)


def _lr_factor(settings: TrainingSettings, total_steps: int) -> Callable[[int], float]:
    """The learning rate's multiplier at each step: 1, or the cosine decay over ``total_steps``."""
    if settings.lr_schedule == "constant":
        return lambda step: 1.0
    return lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps))


def fit(model: nn.Module, train: ImageSplit, settings: TrainingSettings, *,
        validation: ImageSplit | None = None, loss_fn: Callable[..., torch.Tensor] | None = None,
        targets: torch.Tensor | None = None, after_step: Callable[[nn.Module], None] | None = None,
        device: torch.device | str | None = None, progress: bool = True,
        description: str = "train") -> FitResult:
    """Train ``model`` in place on ``train`` as ``settings`` say (epochs, learning rate and its
    schedule, optimizer, batch size, augmentation, seed).

    Args:
        settings: a :class:`TrainingSettings`.
        validation: if given, evaluated after every epoch (recorded in the history) and at the
            end (``final``): the validation split, never the test split.
        loss_fn: ``loss_fn(logits, labels, images)``; cross-entropy by default. Distillation
            passes a loss that also looks at a teacher's logits for ``images``.
        targets: a per-example tensor ``(N, ...)`` aligned with ``train`` (a frozen teacher's
            logits, computed once). With it, ``loss_fn`` is called as
            ``loss_fn(logits, labels, images, targets[index])`` with the batch's rows.
        after_step: called as ``after_step(model)`` after every optimizer step (e.g. to re-apply
            pruning masks so pruned weights stay zero).
        device: where to train; the model's current device if None.
        progress: show a ``tqdm`` bar (set False in tests).

    Returns:
        A :class:`FitResult` with per-epoch ``train_loss``, ``train_accuracy``, ``lr``,
        ``seconds`` and, with ``validation``, ``validation_accuracy``.

    Raises (before anything is touched: on error the model is unchanged):
        TypeError: ``model`` not an nn.Module, ``train``/``validation`` not an ImageSplit,
            ``settings`` not a TrainingSettings, ``loss_fn`` or ``after_step`` not callable,
            ``targets`` not a tensor, ``progress`` not a bool.
        ValueError: ``targets`` without one row per training example, not finite, or without
            a ``loss_fn``; an empty ``train``/``validation``; a ``device`` this machine lacks.
    """
    check_model(model)
    check_split(train, "train")
    check_split(validation, "validation", allow_none=True)
    check_type(settings, "settings", TrainingSettings, "a TrainingSettings (train.TrainingSettings(epochs=...))")
    check_type(loss_fn, "loss_fn", Callable, "a callable", allow_none=True)
    check_type(after_step, "after_step", Callable, "a callable", allow_none=True)
    check_type(targets, "targets", torch.Tensor, "a (N, ...) tensor aligned with train",
               allow_none=True)
    if targets is not None:
        _check_targets(targets, len(train), loss_fn)
    check_type(progress, "progress", bool, "True or False")
    check_type(description, "description", str, "a str")
    device = check_device(device) if device is not None else model_device(model)
    model.to(device)
    train_on_device = train.to(device)
    targets_on_device = targets.to(device) if targets is not None else None
    loss_fn = loss_fn or (lambda logits, labels, images: F.cross_entropy(logits, labels))
    opt = _make_optimizer(model, settings)
    total_steps = max(1, settings.epochs * math.ceil(len(train) / settings.batch_size))
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(settings, total_steps))
    generator = torch.Generator().manual_seed(settings.seed)

    result = FitResult()
    start = time.perf_counter()
    bar = tqdm(range(settings.epochs), desc=description, unit="epoch", disable=not progress, leave=True)
    for epoch in bar:
        t0 = time.perf_counter()
        epoch_lr = opt.param_groups[0]["lr"]
        epoch_batches = batches(train_on_device, settings.batch_size, shuffle=True, generator=generator,
                                max_shift=settings.max_shift, with_index=True)
        train_loss, train_accuracy = _train_one_epoch(model, epoch_batches, loss_fn, targets_on_device, opt,
                                                      scheduler, after_step)
        record = {"epoch": epoch + 1, "lr": epoch_lr, "train_loss": train_loss,
                  "train_accuracy": train_accuracy, "seconds": time.perf_counter() - t0}
        if validation is not None:
            record["validation_accuracy"] = evaluate(model, validation).accuracy
        result.history.append(record)
        bar.set_postfix({k: f"{v:.4f}" for k, v in record.items()
                         if k in ("train_loss", "validation_accuracy")})
    model.eval()
    if validation is not None:
        result.final = evaluate(model, validation)
    result.seconds = time.perf_counter() - start
    return result


def fine_tune(model: nn.Module, train: ImageSplit, settings: TrainingSettings = FINE_TUNING,
              **kwargs) -> FitResult:
    """:func:`fit` with fine-tuning's defaults (:data:`FINE_TUNING`: one epoch at a learning rate of
    1e-4) and its own progress label; other keyword arguments as :func:`fit`.

    Raises:
        TypeError / ValueError: as :func:`fit`, before the model is touched.
    """
    kwargs.setdefault("description", "fine-tune")
    return fit(model, train, settings, **kwargs)
