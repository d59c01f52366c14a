"""Notebook 06's experiment (:func:`model_distillation_experiment`), the computation behind its
panel: a student of a chosen family and size distilled from the zoo's teacher on a chosen
transfer set, with its accuracy, fidelity, size and fit on a device."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import data, hardware, measure, models, train, zoo
from ..checks import check_choice, check_int
from ..data import SEED_RANGE
from ..distillation import precompute_logits
from ..model_distillation.fidelity_metrics import (
    Fidelity,
    fidelity,
    fidelity_of_predictions,
)
from ..model_distillation.mimic_learning import label_with_teacher, mimic
from ..model_distillation.soft_tree import soft_decision_tree, train_soft_tree
from ..model_distillation.transfer import TRANSFER_SETS, transfer_images
from ..model_distillation.trees import fit_tree, tree_predict, tree_report

__all__ = ["FAMILIES", "SIZES", "EXPERIMENT_LR", "EXPERIMENT_BATCH_SIZE", "ModelDistillationExperiment",
           "model_distillation_experiment"]

FAMILIES = ("mlp", "tiny_cnn", "soft_tree", "tree")
# What "size" means for each family of the panel, and its range.
SIZES = {"mlp": ("hidden width", 1, 2048), "tiny_cnn": ("first conv width", 1, 64),
         "soft_tree": ("depth", 1, 10), "tree": ("depth", 1, 30)}

# The panel trains on a few thousand images for a few epochs: small batches and a higher rate than
# train.fit's defaults give enough steps for a student to reach the teacher's logits (some are +-30).
EXPERIMENT_LR = 3e-3
EXPERIMENT_BATCH_SIZE = 32


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
        settings = train.TrainingSettings(epochs=epochs, lr=EXPERIMENT_LR, batch_size=EXPERIMENT_BATCH_SIZE, seed=seed)
        learn = train_soft_tree if family == "soft_tree" else mimic
        learn(student, labelled.split, settings, teacher_logits=labelled.teacher_logits, device="cpu", progress=False)
        scores = fidelity(student, teacher_model, validation)
        report = measure.report(student, name)
    return ModelDistillationExperiment(family=family, size=size, transfer=transfer, transfer_size=transfer_size,
                                       epochs=epochs, teacher=teacher, fidelity=scores, report=report,
                                       verdict=hardware.check_fit(report, device))
