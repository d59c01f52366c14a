"""Notebook 03's panel: a student trained on the labels and distilled from the zoo's teacher, side by side."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from .. import data, hardware, measure, models, train, zoo
from ..checks import check_int
from ..distillation import check_temperature, check_soft_target_weight, distill, precompute_logits

__all__ = ["DistillationExperiment", "distillation_experiment"]


@dataclass(frozen=True)
class DistillationExperiment:
    """A student trained twice with the same seed and epochs, on the labels and from the
    teacher, scored on the validation split, with its size and verdict on a device."""
    hidden: int
    temperature: float
    weight: float
    epochs: int
    transfer_size: int
    labels_accuracy: float
    distilled_accuracy: float
    teacher_accuracy: float
    report: measure.ModelReport
    verdict: hardware.Verdict

    @property
    def gain(self) -> float:
        """Distilled minus labels-only validation accuracy (a fraction; x100 for points)."""
        return self.distilled_accuracy - self.labels_accuracy

    def lines(self) -> list[str]:
        """The panel's text, one line each."""
        return [
            f"Student 784-{self.hidden}-{self.hidden}-10, {measure.counted(self.epochs, 'epoch')} on "
            f"{self.transfer_size:,} labelled images, "
            f"T = {self.temperature:g}, weight {self.weight:g} on the soft targets",
            f"Validation accuracy: labels only {100 * self.labels_accuracy:.2f}%, distilled "
            f"{100 * self.distilled_accuracy:.2f}% ({100 * self.gain:+.2f} points); teacher "
            f"{100 * self.teacher_accuracy:.2f}%",
            f"{self.report.parameters:,} parameters, {measure.format_bytes(self.report.weight_bytes)} "
            f"of fp32 weights, {self.report.macs:,} MACs",
            *hardware.verdict_lines(self.verdict),
        ]


def distillation_experiment(hidden: int, temperature: float, weight: float, epochs: int,
                            device_name: str, transfer_size: int = 1_000,
                            seed: int = 0) -> DistillationExperiment:
    """Notebook 03's panel: an MLP student 784-hidden-hidden-10 given only the first
    ``transfer_size`` labelled training images, trained on them once on the labels and once
    distilled from the zoo's ``kd_teacher`` (same seed, same epochs), scored on the validation
    split; its fp32 size and its verdict on a device. Few labelled images (the default, 1,000)
    is where the teacher's soft targets help most (Hinton et al. 2015, §6 and Table 5).

    Raises:
        TypeError / ValueError: ``hidden`` not an int in [1, 2048]; ``epochs`` not in [1, 50];
            ``transfer_size`` not in [1, 55000]; ``temperature``/``weight`` as
            :func:`distillation_loss`; an unknown ``device_name``; all before training.
    """
    check_int(hidden, "hidden", 1, 2048)
    check_temperature(temperature)
    check_soft_target_weight(weight)
    check_int(epochs, "epochs", 1, 50)
    check_int(transfer_size, "transfer_size", 1, 55_000)
    device = hardware.get_device(device_name)
    transfer = data.load("mnist", "train").subset(transfer_size)
    validation = data.load("mnist", "validation")
    teacher = zoo.load("kd_teacher")
    targets = precompute_logits(teacher, transfer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        on_labels = models.mlp([hidden, hidden])
        distilled = copy.deepcopy(on_labels)
    settings = train.TrainingSettings(epochs=epochs, seed=seed)
    train.fit(on_labels, transfer, settings, device="cpu", progress=False,
              description="labels")
    distill(distilled, transfer, settings, teacher_logits=targets,
            temperature=temperature, weight=weight, device="cpu", progress=False)
    report = measure.report(distilled, f"MLP student 784-{hidden}-{hidden}-10")
    return DistillationExperiment(
        hidden=hidden, temperature=temperature, weight=weight, epochs=epochs, transfer_size=transfer_size,
        labels_accuracy=train.evaluate(on_labels, validation).accuracy,
        distilled_accuracy=train.evaluate(distilled, validation).accuracy,
        teacher_accuracy=train.evaluate(teacher, validation).accuracy,
        report=report, verdict=hardware.check_fit(report, device))
