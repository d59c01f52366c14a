"""Pretrained baselines: safetensors files with a checksum manifest, and the recipes they were built by.

A notebook starts from a trained baseline in a second instead of training for minutes::

    >>> from course_lib import zoo
    >>> model = zoo.load("lenet5")          # verified against its SHA-256, then loaded
    >>> zoo.entry("lenet5")["test_error"]   # the error measured when it was built

Each baseline is rebuilt, seeded, by one command (with a progress bar), from
:mod:`course_lib.zoo_build`, which trains it with the technique modules::

    python -m course_lib.zoo_build lenet5      # or: --all
    python -m course_lib.zoo list              # each recipe and its measured test error; or: verify

This module is the store (the recipes as data, the manifest, loading and verifying); it builds
fresh networks with the modules that define them (``models``, ``architectures``, ``nas``,
``model_distillation``), none of which imports it.

The files live in ``course_lib/pretrained/``: ``<name>.safetensors`` and ``manifest.json``
(recipe, SHA-256, measured test error, training time, library versions).
Weights are read with ``safetensors`` (no pickle), so loading a checkpoint never runs code.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    # A rebuild must give the same file every time. Intel MKL picks its code paths by memory
    # alignment, which changes the rounding from run to run, unless asked for "conditional
    # numerical reproducibility"; that must be set before torch loads MKL.
    os.environ.setdefault("MKL_CBWR", "COMPATIBLE")

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from . import architectures, data, language, lowrank, model_distillation, models, nas
from .checks import check_argv, check_choice, check_path, check_type
from .encoding import DEFAULT_INDEX_BITS
from .train import TrainingSettings

__all__ = ["PRETRAINED_DIR", "MANIFEST", "BUILD_THREADS", "CheckpointError", "Recipe", "DerivedRecipe",
           "PruneRecipe", "DistillRecipe", "SoftTreeRecipe", "DeepCompressionRecipe", "SupernetRecipe",
           "SearchRecipe", "LanguageModelRecipe", "LoRARecipe", "CHAR_GPT", "ZOO_FAMILY", "SOFT_TREES", "NAS_CHOICES", "RECIPES", "names", "read_manifest", "entry",
           "weights_path", "verify", "load_state_dict", "load", "lora_base", "dataset_of", "nas_architecture",
           "build_architecture", "main"]

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
MANIFEST = PRETRAINED_DIR / "manifest.json"
BUILD_THREADS = 1


class CheckpointError(RuntimeError):
    """A pretrained file is missing, corrupted, or does not match its architecture."""


class _TrainedByFit:
    """A recipe whose model :func:`course_lib.train.fit` trains: its ``settings``, from the recipe's
    epochs, lr, optimizer, lr_schedule, batch_size, weight_decay, max_shift and seed."""

    @property
    def settings(self) -> TrainingSettings:
        return TrainingSettings(epochs=self.epochs, lr=self.lr, optimizer=self.optimizer, lr_schedule=self.lr_schedule,
                                batch_size=self.batch_size, weight_decay=self.weight_decay, max_shift=self.max_shift,
                                seed=self.seed)


@dataclass(frozen=True)
class Recipe(_TrainedByFit):
    """How a baseline is trained: everything :func:`course_lib.train.fit` needs, and the seed."""
    architecture: str
    dataset: str
    epochs: int
    lr: float = 1e-3
    optimizer: str = "adam"
    lr_schedule: str = "cosine"
    batch_size: int = 128
    weight_decay: float = 0.0
    max_shift: int = 2
    seed: int = 0
    reference: str = ""


@dataclass(frozen=True)
class DerivedRecipe:
    """A model derived from a shipped one, ``base``: same architecture, same dataset."""
    base: str

    @property
    def architecture(self) -> str:
        return RECIPES[self.base].architecture

    @property
    def dataset(self) -> str:
        return RECIPES[self.base].dataset


@dataclass(frozen=True)
class PruneRecipe(DerivedRecipe):
    """A compressed model derived from a baseline: iterative magnitude pruning with
    fine-tuning (:func:`course_lib.pruning.iterative_prune`) to per-layer sparsities."""
    sparsity: tuple[tuple[str, float], ...]
    steps: int
    epochs_per_step: int
    lr: float = 1e-3
    max_shift: int = 2
    seed: int = 0
    reference: str = ""

    @property
    def epochs(self) -> int:
        return self.steps * self.epochs_per_step


@dataclass(frozen=True)
class DistillRecipe:
    """A student distilled from a shipped teacher (:func:`course_lib.distillation.distill`):
    the teacher's logits at ``temperature`` as soft targets, with ``weight`` on them and the
    rest on the labels."""
    teacher: str
    architecture: str
    epochs: int
    temperature: float
    weight: float
    lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 0.0
    max_shift: int = 0
    seed: int = 0
    reference: str = ""

    @property
    def dataset(self) -> str:
        return RECIPES[self.teacher].dataset


@dataclass(frozen=True)
class SoftTreeRecipe:
    """A soft decision tree of Frosst & Hinton (2017) on MNIST
    (:func:`course_lib.model_distillation.train_soft_tree`): on the labels (``teacher=""``), or
    on a shipped teacher's probabilities at ``temperature`` (the teacher run on every batch, so
    the jittered images get the teacher's own answer)."""
    depth: int
    teacher: str
    epochs: int
    temperature: float = 1.0
    penalty: float = 0.1
    lr: float = 3e-3
    batch_size: int = 128
    max_shift: int = 0
    seed: int = 0
    reference: str = ""

    @property
    def architecture(self) -> str:
        return f"soft_tree_d{self.depth}"

    @property
    def dataset(self) -> str:
        return "mnist"


@dataclass(frozen=True)
class DeepCompressionRecipe(DerivedRecipe):
    """A model compressed by Deep Compression (Han, Mao & Dally 2016,
    :mod:`course_lib.deep_compression`) from a shipped model: iterative magnitude pruning to
    per-layer ``sparsity`` (skipped when it is empty: the base is pruned already), k-means
    weight sharing with ``bits`` per weight index in each layer (zeros kept zero), then
    ``codebook_epochs`` of codebook fine-tuning. Stored with ``index_bits``-bit relative indices
    and Huffman coding; the saved weights take at most ``2**bits`` values per layer, zero
    included."""
    sparsity: tuple[tuple[str, float], ...]
    steps: int
    epochs_per_step: int
    bits: tuple[tuple[str, int], ...]
    codebook_epochs: int
    index_bits: int = DEFAULT_INDEX_BITS["fc"]      # as deep_compression.LENET_INDEX_BITS: 5 in every LeNet layer
    lr: float = 1e-3
    codebook_lr: float = 1e-4
    max_shift: int = 2
    seed: int = 0
    reference: str = ""

    @property
    def epochs(self) -> int:
        return (self.steps * self.epochs_per_step if self.sparsity else 0) + self.codebook_epochs


@dataclass(frozen=True)
class SupernetRecipe:
    """Notebook 07's weight-sharing supernet (:func:`course_lib.nas.train_supernet`) over the
    default :class:`course_lib.nas.SearchSpace` on Fashion-MNIST, trained by ``rule`` for
    ``epochs``; then, for Kendall's tau between inherited and stand-alone accuracy, ``n_standalone``
    architectures drawn from the space with ``seed`` are each trained from scratch for
    ``standalone_epochs`` (Adam at ``standalone_lr``, cosine schedule) and scored on the validation
    split, beside their inherited accuracy (:func:`course_lib.nas.fashion_evaluator`); both kept in
    the manifest record (``standalone``)."""
    epochs: int
    rule: str = "random"
    n_random: int = 2
    lr: float = 2e-3
    batch_size: int = 128
    n_standalone: int = 8
    standalone_epochs: int = 1
    standalone_lr: float = 3e-3
    seed: int = 0
    reference: str = ""

    @property
    def architecture(self) -> str:
        return "supernet"

    @property
    def dataset(self) -> str:
        return "fashion-mnist"


@dataclass(frozen=True)
class SearchRecipe(_TrainedByFit):
    """A network found by a search and then trained in full (notebook 08, Sec. 2): ``strategy``
    (:func:`course_lib.nas.run_search`) proposes ``budget`` networks of :data:`course_lib.nas.TIGHT_SPACE`
    that fit the tight budget (64 KB flash, 32 KB SRAM) and ``max_latency_ms`` on its core, each
    scored by :class:`course_lib.nas.ShortTraining` (``screen_epochs`` at ``screen_lr``, on the
    validation split); the most accurate is then trained from scratch like notebook 05's family
    (``epochs``, Adam at ``lr``, cosine, ``weight_decay``, shifts of ``max_shift`` pixels). Its
    choices go to :data:`NAS_CHOICES` under ``architecture``; the manifest keeps every scored
    candidate (``search``)."""
    architecture: str
    budget: int
    strategy: str = "evolution"
    population_size: int = 6
    sample_size: int = 3
    screen_epochs: int = 1
    screen_lr: float = 3e-3
    max_latency_ms: float = 100.0
    epochs: int = 8
    lr: float = 1e-3
    optimizer: str = "adam"
    lr_schedule: str = "cosine"
    batch_size: int = 128
    weight_decay: float = 1e-4
    max_shift: int = 1
    seed: int = 0
    reference: str = ""

    @property
    def dataset(self) -> str:
        return "fashion-mnist"


class _TrainedOnText:
    """A recipe trained on notebook 09's corpus: the dataset is the corpus, read in steps of random windows
    (one "epoch" in the zoo's listing)."""

    @property
    def dataset(self) -> str:
        return language.CORPUS

    @property
    def epochs(self) -> int:
        return 1


@dataclass(frozen=True)
class LanguageModelRecipe(_TrainedOnText):
    """Notebook 09's character-level transformer (:class:`course_lib.language.GPT` of shape
    :data:`CHAR_GPT`) trained on the ``train`` topics of Python's reference documentation by
    :func:`course_lib.language.train_language_model` (AdamW, warm-up then cosine, random windows): the
    manifest keeps bits per character on the validation and test topics instead of an error rate."""
    steps: int
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.1
    seed: int = 0
    reference: str = ""

    @property
    def architecture(self) -> str:
        return "char_gpt"

    @property
    def settings(self) -> language.LanguageTraining:
        return language.LanguageTraining(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                                         warmup=self.warmup, weight_decay=self.weight_decay, seed=self.seed)


@dataclass(frozen=True)
class LoRARecipe(_TrainedOnText):
    """Notebook 09's LoRA adapters (Hu et al. 2021; QLoRA in miniature, Dettmers et al. 2023): rank ``rank``
    on every block linear (:func:`course_lib.lowrank.add_lora`, seeded), over the language model ``base``
    rounded to ``bits`` per channel and frozen (None: the float model, the control), trained by
    :func:`course_lib.language.train_language_model` for ``steps`` on the training topics. The file holds
    the adapters alone; the base comes from the zoo and is quantized again on loading."""
    base: str
    bits: int | None
    rank: int = 4
    steps: int = 60
    batch_size: int = 16
    lr: float = 2e-3
    warmup: int = 10
    seed: int = 0
    reference: str = ""

    @property
    def architecture(self) -> str:
        return "char_gpt_lora"

    @property
    def settings(self) -> language.LanguageTraining:
        return language.LanguageTraining(steps=self.steps, batch_size=self.batch_size, lr=self.lr, warmup=self.warmup,
                                         weight_decay=0.0, eval_every=self.steps, seed=self.seed)


# Notebook 09's language model: 103 characters (the corpus's, checked by a test), a context of 128,
# 4 blocks of 4 heads, width 128: 0.83 M parameters.
CHAR_GPT = language.GPTConfig(vocab_size=103, block_size=128, n_layer=4, n_head=4, n_embd=128, dropout=0.1)

# The members of notebook 05's family that the zoo ships: the standard CNN, its separable twin
# with either head and ResNet at width 1.0, the separable and MobileNetV2 designs at 1.0 and 0.5,
# ShuffleNet at 0.5.
ZOO_FAMILY = ("cnn_x1_0", "separable_x1_0", "separable_x0_5", "separable_fc_x1_0", "mobilenet_v2_x1_0",
              "mobilenet_v2_x0_5", "resnet_x1_0", "shufflenet_x0_5")

# Notebook 06's soft decision trees, by architecture name: their depth.
SOFT_TREES = {"soft_tree_d8": 8}

def _choices(resolution: int, *stages: tuple[str, int, int, int, int]) -> dict:
    """A point of a search space as nas.decisions orders it, from the input resolution and each
    stage's (block, width, kernel, depth, expansion)."""
    choices = {"resolution": resolution}
    for i, (block, width, kernel, depth, expansion) in enumerate(stages, start=1):
        choices.update({f"stage{i}.block": block, f"stage{i}.width": width, f"stage{i}.kernel": kernel,
                        f"stage{i}.depth": depth, f"stage{i}.expansion": expansion})
    return choices


# The searched networks for the tight budget (64 KB flash, 32 KB SRAM), notebook 08, section 2:
# nas_tight, the choices of course_lib.nas.SearchSpace() that its searches on supernet_fashion rank
# first; nas_tight_wide, in course_lib.nas.TIGHT_SPACE, the winner of nas_tight_wide_fashion's own
# search (its manifest record keeps every candidate; a test checks the two agree), and
# nas_tight_wide_2 and _3, the second and third of that search: the shortlist trained in full.
NAS_CHOICES = {
    "nas_tight": _choices(24, ("conv", 24, 5, 2, 2),
                          ("inverted_residual", 24, 5, 2, 2), ("inverted_residual", 16, 5, 2, 4)),
    "nas_tight_wide": _choices(28, ("separable", 16, 3, 1, 2),
                               ("conv", 24, 3, 1, 2), ("inverted_residual", 64, 5, 2, 4)),
    "nas_tight_wide_2": _choices(20, ("separable", 48, 5, 1, 2),
                                 ("conv", 24, 3, 2, 2), ("inverted_residual", 64, 3, 2, 4)),
    "nas_tight_wide_3": _choices(28, ("separable", 16, 3, 1, 2),
                                 ("conv", 24, 3, 2, 2), ("inverted_residual", 64, 5, 2, 4))}

# The shipped models and the published figures they are held to. A constant table.
RECIPES: dict[str, Recipe | PruneRecipe | DistillRecipe | SoftTreeRecipe | SupernetRecipe | SearchRecipe
              | LanguageModelRecipe | LoRARecipe] = {
    "lenet_300_100": Recipe("lenet_300_100", "mnist", epochs=30, reference=(
        "Han et al. 2015 (Learning both Weights and Connections), Table 1: 1.64% top-1 error "
        "(trained here on the 55,000 training images; 5,000 are kept for validation)")),
    "lenet5": Recipe("lenet5", "mnist", epochs=20, reference=(
        "Han et al. 2015 (Learning both Weights and Connections), Table 1: 0.80% top-1 error "
        "(trained here on the 55,000 training images; 5,000 are kept for validation)")),
    "small_cnn_fashion": Recipe("small_cnn", "fashion-mnist", epochs=15, weight_decay=1e-4,
                                max_shift=1, reference=(
        "course baseline on the course's seeded Fashion-MNIST split (not the official one)")),
    "kd_teacher": Recipe("kd_teacher", "mnist", epochs=80, max_shift=2, reference=(
        (
        "Hinton, Vinyals & Dean 2015 (Distilling the Knowledge in a Neural Network), section 3: "
        "784-1200-1200-10 with dropout and +-2-pixel jitter, 67 test errors (trained here on the 55,000 "
        "training images; 5,000 are kept for validation). Dropout 0.5 on the hidden layers, 0.2 on the input; "
        "the settings tried on validation: ZOO.md"
    ))),
    "kd_student_labels": Recipe("kd_student", "mnist", epochs=40, max_shift=0, reference=(
        "Hinton et al. 2015, section 3: 784-800-800-10 trained on the labels alone, no dropout, "
        "no jitter, 146 test errors")),
    "kd_student_distilled": DistillRecipe("kd_teacher", "kd_student", epochs=40, temperature=20.0,
                                          weight=0.9, reference=(
        (
        "Hinton et al. 2015, section 3: the 784-800-800-10 student matching the teacher's soft targets at T = "
        "20, no dropout, no jitter, 74 test errors; the weight 0.9 on the soft targets chosen on the "
        "validation split; the settings tried: ZOO.md"
    ))),
    "tiny_cnn_fashion": Recipe("tiny_cnn", "fashion-mnist", epochs=15, weight_decay=1e-4,
                               max_shift=0, reference=(
        "the student of notebook 03's Fashion-MNIST section, trained on the labels; its twin "
        "tiny_cnn_fashion_distilled has the same seed, epochs and optimizer")),
    "tiny_cnn_fashion_distilled": DistillRecipe("small_cnn_fashion", "tiny_cnn", epochs=15,
                                                temperature=4.0, weight=0.5, weight_decay=1e-4,
                                                reference=(
        "tiny_cnn_fashion's twin distilled from small_cnn_fashion; T and weight chosen on the "
        "validation split among T in (2, 4) x weight 0.5 (15-epoch runs: 91.10% and 91.12%, "
        "labels only 91.10%)")),
    # Notebook 05's family: eight of its designs and widths, one recipe for all (the small CNN's).
    **{f"{member}_fashion": Recipe(member, "fashion-mnist", epochs=8, weight_decay=1e-4, max_shift=1,
                                   reference="notebook 05's family of efficient designs "
                                             "(course_lib.architectures.FASHION_FAMILY)")
       for member in ZOO_FAMILY},
    "soft_tree_labels": SoftTreeRecipe(8, teacher="", epochs=30, max_shift=1, reference=(
        "Frosst & Hinton 2017 (Distilling a Neural Network Into a Soft Decision Tree), section 4: "
        "depth 8 on MNIST trained on the labels, 94.45% test accuracy; here Adam at 3e-3 with a "
        "cosine schedule, balance penalty 0.1, images jittered by up to 1 pixel")),
    "soft_tree_distilled": SoftTreeRecipe(8, teacher="lenet5", epochs=30, temperature=2.0, max_shift=1,
                                          reference=(
        (
        "Frosst & Hinton 2017, section 4: depth 8 trained on a network's soft targets, 96.76% test accuracy "
        "(the network: 99.21%); here LeNet-5's probabilities at T = 2 on every jittered batch, the twin of "
        "soft_tree_labels; T chosen on the validation split; the settings tried: ZOO.md"
    ))),
    "supernet_fashion": SupernetRecipe(epochs=14, rule="random", reference=(
        (
        "Cai et al. 2020 (Once-for-All), Sec. 3: one supernet for every network of the space, with elastic "
        "width, kernel, depth and expansion; here single-path training (one random subnet per batch, Guo et "
        "al. 2020) for 14 epochs, plus 8 architectures of the space trained stand-alone for 1 epoch each, for "
        "notebook 07's Kendall tau; why: ZOO.md"
    ))),
    "nas_tight_fashion": Recipe("nas_tight", "fashion-mnist", epochs=8, weight_decay=1e-4, max_shift=1, reference=(
        "the network notebook 07's searches on supernet_fashion find for the tight budget (64 KB flash, 32 KB "
        "SRAM), trained stand-alone from scratch with notebook 05's family recipe, for a comparison at equal "
        "budget and equal training")),
    "nas_tight_wide_fashion": SearchRecipe("nas_tight_wide", budget=24, reference=(
        (
        "notebook 08, section 2: the winner of a search for the tight budget (64 KB flash, 32 KB SRAM, 100 ms "
        "on the Arduino's core) in nas.TIGHT_SPACE (MCUNet's rule, Lin et al. 2020, Sec. 3.1), trained from "
        "scratch with notebook 05's family recipe; the search: ZOO.md"
    ))),
    **{f"nas_tight_wide_{k}_fashion": Recipe(f"nas_tight_wide_{k}", "fashion-mnist", epochs=8, weight_decay=1e-4,
                                             max_shift=1, reference=(
        f"the network with the {rank} best one-epoch score in nas_tight_wide_fashion's search, trained from scratch "
        "with notebook 05's family recipe: with nas_tight_wide_fashion, the shortlist among which notebook 08 "
        "chooses on the validation split"))
       for k, rank in ((2, "second"), (3, "third"))},
    # The same recipe with other seeds: for the spread between two runs that notebook 08 sets beside
    # the searched-versus-hand-designed margin, and for notebook 05's two separable twins (a global
    # average pool or a fully connected head) compared over three seeds.
    **{f"{architecture}_seed1_fashion": Recipe(architecture, "fashion-mnist", epochs=8, weight_decay=1e-4, max_shift=1,
                                               seed=1, reference=(
        f"{architecture}_fashion's recipe with seed 1 (initialisation, batch order, shifts): notebook 08, section 2 "
        "measures how far two runs of one recipe differ"))
       for architecture in ("mobilenet_v2_x1_0", "nas_tight_wide_3")},
    **{f"{architecture}_seed{seed}_fashion": Recipe(architecture, "fashion-mnist", epochs=8, weight_decay=1e-4,
                                                    max_shift=1, seed=seed, reference=(
        f"{architecture}_fashion's recipe with seed {seed} (initialisation, batch order, shifts): notebook 05, "
        "section 7 compares the separable twins with a pooled and a fully connected head over seeds 0, 1 and 2"))
       for architecture in ("separable_x1_0", "separable_fc_x1_0") for seed in (1, 2)},
    "char_gpt_python_docs": LanguageModelRecipe(steps=1800, reference=(
        "nanoGPT's character-level recipe (Karpathy 2022, shakespeare_char) scaled to 2 CPU cores: 4 layers, "
        "4 heads, width 128, context 128, dropout 0.1; AdamW at 3e-3, 100 warm-up steps, cosine to 3e-4, "
        "batches of 32 windows")),
    **{f"char_gpt_{label}_lora": LoRARecipe("char_gpt_python_docs", bits, reference=(
        f"notebook 09, section 8: {what}, rank 4 on every block linear, 60 steps of 16 windows at 2e-3"))
       for label, bits, what in (("int4", 4, "LoRA adapters on the 4-bit per-channel model (round-to-nearest), frozen"),
                                 ("fp32", None, "the control: the same adapters and training on the float model"))},
    "lenet5_pruned": PruneRecipe("lenet5", (("conv1", 0.34), ("conv2", 0.88), ("fc1", 0.925),
                                            ("fc2", 0.81)), steps=4, epochs_per_step=3, reference=(
        "Han et al. 2015, LeNet-5: 0.80% -> 0.77% error with 12x fewer weights (Table 1); the "
        "per-layer figures of Table 3 (conv1 66%, conv2 12%, fc1 8%, fc2 19% kept) give 8.43% "
        "kept (11.9x); this recipe keeps 7.5% of fc1 instead of 8%, so 7.96% in all (12.6x)")),
    "lenet_300_100_pruned": PruneRecipe("lenet_300_100", (("fc1", 0.94), ("fc2", 0.8), ("fc3", 0.3)), steps=4,
                                        epochs_per_step=8, reference=(
        (
        "Han et al. 2015, LeNet-300-100: 1.64% -> 1.59% error with 12x fewer weights (Table 1; per layer, "
        "Table 2); the sparsities are notebook 01's choice on the validation split; 4 steps of the cubic "
        "schedule, 8 epochs of retraining after each"
    ))),
    "lenet_300_100_deep_compressed": DeepCompressionRecipe(
        "lenet_300_100", (("fc1", 0.94), ("fc2", 0.8), ("fc3", 0.5)), steps=4, epochs_per_step=3,
        bits=(("fc1", 3), ("fc2", 3), ("fc3", 3)), codebook_epochs=3, reference=(
            (
        "Han, Mao & Dally 2016 (Deep Compression), Table 1: LeNet-300-100 1.64% -> 1.58% error at 40x; "
        "sparsities and bits chosen on the validation split; the runs compared: ZOO.md"
    ))),
    "lenet5_deep_compressed": DeepCompressionRecipe(
        "lenet5_pruned", (), steps=0, epochs_per_step=0,
        bits=(("conv1", 4), ("conv2", 2), ("fc1", 2), ("fc2", 2)), codebook_epochs=2, reference=(
            (
        "Han, Mao & Dally 2016 (Deep Compression), Table 1: LeNet-5 0.80% -> 0.74% error at 39x; pruned as "
        "lenet5_pruned, bits chosen on the validation split; the runs compared: ZOO.md"
    ))),
}


def names() -> list[str]:
    """The names of the shipped baselines."""
    return sorted(RECIPES)


def read_manifest() -> dict:
    """The manifest as a dict ``{name: record}``; empty if ``manifest.json`` does not exist.

    Raises:
        CheckpointError: naming manifest.json, if it is not valid JSON or not a JSON object.
    """
    if not MANIFEST.is_file():
        return {}
    rebuild = "restore it from the repository (git checkout -- course_lib/pretrained)"
    try:
        manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{MANIFEST.name} is not valid JSON ({e}); {rebuild}") from e
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{MANIFEST.name} must hold a JSON object {{name: record}}, "
                              f"got a JSON {type(manifest).__name__}; {rebuild}")
    return manifest


def entry(name: str) -> dict:
    """The manifest record of a baseline: recipe, sha256, test_error, train_seconds, versions.

    Raises:
        ValueError: ``name`` is not one of :func:`names`.
        CheckpointError: the manifest is garbled, or the baseline is not built or its record
            is not a JSON object.
    """
    check_choice(name, "name", names())
    record = read_manifest().get(name)
    if record is None:
        raise CheckpointError(f"baseline {name!r} has not been built; "
                              f"run: python -m course_lib.zoo_build {name}")
    if not isinstance(record, dict):
        raise CheckpointError(f"{MANIFEST.name}: the record of {name!r} must be a JSON object, "
                              f"got a JSON {type(record).__name__}; rebuild it with: "
                              f"python -m course_lib.zoo_build {name}")
    return record


def weights_path(name: str) -> Path:
    """Where a baseline's ``<name>.safetensors`` lives (it may not exist yet).

    Raises:
        ValueError: ``name`` is not one of :func:`names`.
    """
    check_choice(name, "name", names())
    return PRETRAINED_DIR / f"{name}.safetensors"


def verify(name: str) -> Path:
    """Check a baseline's file against the SHA-256 in the manifest; return its path.

    Raises:
        ValueError: ``name`` is not one of :func:`names`.
        CheckpointError: naming the file, if it is missing, truncated or altered; naming the
            model, if its manifest record has no valid ``sha256``.
    """
    path = weights_path(name)
    expected = entry(name).get("sha256")
    if not isinstance(expected, str) or not re.fullmatch(r"[0-9a-f]{64}", expected):
        field = "has no 'sha256' field" if expected is None else f"has sha256 {expected!r}, not 64 hex digits"
        raise CheckpointError(f"{MANIFEST.name}: the record of {name!r} {field}; rebuild it with: "
                              f"python -m course_lib.zoo_build {name}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path.name} is missing; "
                              f"rebuild it with: python -m course_lib.zoo_build {name}")
    actual = data.sha256_of_file(path)
    if actual != expected:
        raise CheckpointError(f"checkpoint {path.name} is corrupted: SHA-256 is {actual[:16]}..., "
                              f"expected {expected[:16]}...; restore it from the repository or "
                              f"rebuild it with: python -m course_lib.zoo_build {name}")
    return path


def load_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """Read a safetensors file into ``{parameter name: tensor}`` (CPU), without running code.

    Raises:
        TypeError: ``path`` is not a str or Path.
        CheckpointError: the file is missing or cannot be parsed.
    """
    path = check_path(path, "path")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path.name} could not be read ({e})") from e


def load(name: str, device: torch.device | str = "cpu") -> nn.Sequential:
    """A pretrained baseline in eval mode on ``device``, after checking its SHA-256.

    Raises:
        ValueError / TypeError: an unknown ``name``, or a ``device`` this machine lacks.
        CheckpointError: the file is missing, corrupted or unreadable (named as such), or its
            tensors do not fit the architecture.
    """
    check_choice(name, "name", names())
    device = data.check_device(device)
    path = verify(name)
    recipe = RECIPES[name]
    model = lora_base(recipe) if isinstance(recipe, LoRARecipe) else build_architecture(recipe.architecture)
    state = load_state_dict(path)      # a read failure stays a "could not be read" CheckpointError
    try:
        if isinstance(recipe, LoRARecipe):         # the file holds the adapters: every one of them, nothing else
            adapters = {k for k, p in model.named_parameters() if p.requires_grad}
            if set(state) != adapters:
                raise RuntimeError(f"the adapters' names differ: {sorted(set(state) ^ adapters)[:4]}")
            model.load_state_dict(state, strict=False)
        else:
            model.load_state_dict(state)
    except RuntimeError as e:          # only load_state_dict's own missing/unexpected/size errors
        raise CheckpointError(f"checkpoint {path.name} does not fit architecture "
                              f"{recipe.architecture!r}: {e}") from e
    return model.to(device).eval()


def lora_base(recipe: LoRARecipe) -> nn.Module:
    """The model a :class:`LoRARecipe`'s adapters sit on, with fresh adapters (B = 0): its base from the
    zoo, rounded to ``recipe.bits`` per channel and frozen (dequantized, :func:`language.dequantized_copy`),
    or the float base, then :func:`lowrank.add_lora` on every block linear."""
    check_type(recipe, "recipe", LoRARecipe, "a LoRARecipe")
    base = load(recipe.base)
    start = base if recipe.bits is None else language.dequantized_copy(language.quantize_weights(base, recipe.bits))
    return lowrank.add_lora(start, rank=recipe.rank, layers=list(language.block_linears(base)), seed=recipe.seed)


def dataset_of(name: str) -> str:
    """The dataset a baseline was trained on (``"mnist"`` or ``"fashion-mnist"``).

    Raises:
        ValueError: ``name`` is not one of :func:`names`.
    """
    check_choice(name, "name", names())
    return RECIPES[name].dataset


def nas_architecture(name: str) -> architectures.Architecture:
    """The network of :data:`NAS_CHOICES` called ``name``, in the space it was searched in:
    ``nas_tight_wide*`` in :data:`course_lib.nas.TIGHT_SPACE`, the others in the default
    :class:`course_lib.nas.SearchSpace`.

    Raises:
        ValueError: ``name`` is not in :data:`NAS_CHOICES`.
    """
    check_choice(name, "name", sorted(NAS_CHOICES))
    space = nas.TIGHT_SPACE if name.startswith("nas_tight_wide") else nas.SearchSpace()
    return nas.from_choices(NAS_CHOICES[name], space)


def build_architecture(architecture: str, seed: int = 0) -> nn.Module:
    """A freshly initialised network by architecture name: one of
    :data:`course_lib.models.ARCHITECTURES` or of notebook 05's
    :data:`course_lib.architectures.FASHION_FAMILY`.

    Raises:
        ValueError: an unknown ``architecture``. TypeError / ValueError: a bad ``seed``.
    """
    if isinstance(architecture, str) and architecture in architectures.FASHION_FAMILY:
        return architectures.build_model(architectures.FASHION_FAMILY[architecture], seed=seed)
    if isinstance(architecture, str) and architecture in NAS_CHOICES:
        return architectures.build_model(nas_architecture(architecture), seed=seed)
    if architecture == "char_gpt":
        return language.GPT(CHAR_GPT, seed=seed)
    if architecture == "supernet":
        return nas.Supernet(nas.SearchSpace(), seed=seed)
    if isinstance(architecture, str) and architecture in SOFT_TREES:
        return model_distillation.soft_decision_tree(SOFT_TREES[architecture], seed=seed)
    check_choice(architecture, "architecture",
                 sorted(models.ARCHITECTURES) + sorted(architectures.FASHION_FAMILY) + sorted(SOFT_TREES)
                 + ["supernet", "char_gpt"] + sorted(NAS_CHOICES))
    return models.build(architecture, seed=seed)


def main(argv: list[str] | None = None) -> int:
    """The command line: ``list`` or ``verify``; returns the exit code. (Building is
    :mod:`course_lib.zoo_build`'s.)

    Raises:
        TypeError: ``argv`` is neither None nor a list of str.
        SystemExit: on a bad command line (argparse's usage message).
    """
    check_argv(argv)
    parser = argparse.ArgumentParser(prog="python -m course_lib.zoo",
                                     description="List or verify the pretrained baselines "
                                                 "(rebuild them with python -m course_lib.zoo_build).")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="show each baseline's recipe and measured test error")
    sub.add_parser("verify", help="check every shipped file against its SHA-256")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name in names():
            recipe = RECIPES[name]
            record = read_manifest().get(name)
            if not record:
                error = "not built"
            elif "test_bpc" in record:
                error = f"{record['test_bpc']:.3f} test bits per character"
            else:
                error = f"{100 * record['test_error']:.2f}% test error"
            print(f"{name:27s} {recipe.architecture:18s} {recipe.dataset:14s} "
                  f"{recipe.epochs:3d} epochs  {error}   [{recipe.reference}]")
    else:
        for name in names():
            verify(name)
            print(f"{name}: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
