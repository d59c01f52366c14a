"""Hints (Romero et al. 2015, "FitNets: Hints for Thin Deep Nets", Sec. 2.2): first fit the
student's layers up to a *guided* layer, through a small regressor, to the teacher's *hint*
layer; then train the whole student."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from .. import data, train
from ..checks import check_finite, check_int, check_tensor
from ..data import SEED_RANGE, ImageSplit, check_split
from ..distillation import check_temperature, check_soft_target_weight, distill
from .common import _output_shape, check_layer_name, intermediate
from .mimic_learning import _check_teacher_args

__all__ = ["hint_regressor", "hint_loss", "HintTraining", "train_with_hints"]


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


def train_with_hints(student: nn.Module, teacher: nn.Module, transfer: ImageSplit,
                     settings: train.TrainingSettings, *, guided_layer: str, hint_layer: str, hint_epochs: int,
                     temperature: float = 4.0, weight: float = 0.9, validation: ImageSplit | None = None,
                     device: torch.device | str | None = None, progress: bool = True) -> HintTraining:
    """FitNets (Romero et al. 2015), in two stages, on the student in place:

    1. ``hint_epochs`` epochs of :func:`hint_loss` between the teacher's ``hint_layer`` output
       (eval mode, no gradient) and the student's ``guided_layer`` output through a
       :func:`hint_regressor`: only the student's layers up to the guided layer (and the
       regressor) learn; the layers after it get no gradient and stay as they were.
    2. ``settings.epochs`` epochs of the whole student with :func:`course_lib.distillation.distill`
       (``weight`` on the teacher's soft targets at ``temperature``; ``weight=0``: labels alone).

    Both stages train with ``settings`` (stage 1 for ``hint_epochs``); the regressor is seeded with
    ``settings.seed``. Other arguments as :func:`course_lib.train.fit`.

    Returns:
        :class:`HintTraining` (the regressor, stage 1's and stage 2's FitResults).

    Raises (before the student is touched):
        TypeError: models that are not nn.Modules; layer names that are not str.
        ValueError: a ``guided_layer`` the student does not have or a ``hint_layer`` the teacher
            does not have (the message lists the layers); student and teacher with different
            numbers of classes; labels outside the classes; ``temperature``/``weight`` as
            :func:`course_lib.distillation.distillation_loss`; and as :func:`course_lib.train.fit`.
    """
    classes = _check_teacher_args(student, transfer, teacher, None, settings)
    check_layer_name(student, guided_layer, "guided_layer")
    check_layer_name(teacher, hint_layer, "hint_layer")
    check_int(hint_epochs, "hint_epochs", 0)
    check_temperature(temperature)
    check_soft_target_weight(weight)
    check_split(validation, "validation", allow_none=True)
    if transfer.labels.min() < 0 or transfer.labels.max() >= classes:
        raise ValueError(f"transfer labels must be class indices in [0, {classes - 1}]")
    if device is not None:
        data.check_device(device)
    example = transfer.images[:1]
    regressor = hint_regressor(_output_shape(student, example, guided_layer),
                               _output_shape(teacher, example, hint_layer), settings.seed)
    guided = _Guided(student, regressor, guided_layer)
    was_training = teacher.training
    frozen = teacher.eval()

    def loss_on_hint(out, labels, images):
        with torch.no_grad():
            hint = intermediate(frozen, hint_layer, images.to(train.model_device(frozen))).to(out.device)
        return hint_loss(out, hint.flatten(1))

    try:
        hint_result = train.fit(guided, transfer,
                                replace(settings, epochs=hint_epochs),
                                loss_fn=loss_on_hint, device=device, progress=progress, description="hints")
    finally:
        teacher.train(was_training)
    result = distill(student, transfer, settings, teacher=teacher,
                     temperature=temperature, weight=weight, validation=validation, device=device,
                     progress=progress, description="after hints")
    return HintTraining(regressor, hint_result, result)
