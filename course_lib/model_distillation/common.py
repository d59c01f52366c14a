"""The checks and model probes the parts of :mod:`course_lib.model_distillation` share: labels,
images and teacher logits checked before anything is trained, a model's layer names, the output
of one of its layers (:func:`intermediate`), and the shape of what it outputs."""

from __future__ import annotations

import torch
from torch import nn

from .. import train
from ..checks import check_finite, check_model, check_tensor, check_type
from ..data import ImageSplit
from ..distillation import check_logits

__all__ = ["layer_names", "check_layer_name", "intermediate"]


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
