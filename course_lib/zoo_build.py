"""Rebuilding the zoo: each shipped model trained from its recipe (:data:`course_lib.zoo.RECIPES`), seeded,
on the CPU with one thread, then saved and recorded in the manifest::

    python -m course_lib.zoo_build lenet5      # or several names, or --all

This module sits above the technique modules: a recipe calls them (``train.fit``, ``distillation.distill``,
``pruning.iterative_prune``, Deep Compression, the NAS searches, the soft tree). The store it writes into,
:mod:`course_lib.zoo`, sits below and never imports it.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from dataclasses import asdict

import torch
from safetensors.torch import save_file
from torch import nn

from . import (
    architectures,
    data,
    deep_compression,
    distillation,
    language,
    model_distillation,
    nas,
    pruning,
    train,
    zoo,
)
from .checks import check_argv, check_choice, check_type
from .measure import torch_threads
from .zoo import (
    BUILD_THREADS,
    RECIPES,
    DeepCompressionRecipe,
    DistillRecipe,
    LanguageModelRecipe,
    LoRARecipe,
    PruneRecipe,
    Recipe,
    SearchRecipe,
    SoftTreeRecipe,
    SupernetRecipe,
    build_architecture,
    load,
    lora_base,
    names,
    read_manifest,
    weights_path,
)

__all__ = ["build_baseline", "main"]


def _train_from_scratch(name: str, recipe: Recipe | SearchRecipe, progress: bool,
                        architecture: architectures.Architecture | None = None) -> tuple[nn.Module, list[dict]]:
    # fork_rng: dropout draws from torch's global generator, seeded here for a repeatable build
    # and restored afterwards, so building a model leaves the caller's random state as it was.
    # The validation split is scored after every epoch (eval mode, no random draws): the
    # training history the manifest keeps. ``architecture``, when given, is built instead of
    # the recipe's named one (a search's winner, not yet in NAS_CHOICES).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = (build_architecture(recipe.architecture, seed=recipe.seed) if architecture is None
                 else architectures.build_model(architecture, seed=recipe.seed))
        result = train.fit(model, data.load(recipe.dataset, "train"), recipe.settings,
                           validation=data.load(recipe.dataset, "validation"), device="cpu", progress=progress,
                           description=name)
    history = [{"epoch": h["epoch"], "train_loss": round(h["train_loss"], 6),
                "train_accuracy": round(h["train_accuracy"], 6),
                "validation_accuracy": round(h["validation_accuracy"], 6), "seconds": round(h["seconds"], 2)}
               for h in result.history]
    return model, history


def _distill_from_teacher(recipe: DistillRecipe, progress: bool) -> nn.Module:

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        student = build_architecture(recipe.architecture, seed=recipe.seed)
        settings = train.TrainingSettings(epochs=recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size,
                                          weight_decay=recipe.weight_decay, max_shift=recipe.max_shift,
                                          seed=recipe.seed)
        distillation.distill(student, data.load(recipe.dataset, "train"), settings,
                             teacher=load(recipe.teacher), temperature=recipe.temperature, weight=recipe.weight,
                             device="cpu", progress=progress)
    return student


def _train_soft_tree(recipe: SoftTreeRecipe, progress: bool) -> nn.Module:

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        tree = build_architecture(recipe.architecture, seed=recipe.seed)
        teacher = load(recipe.teacher) if recipe.teacher else None
        settings = train.TrainingSettings(epochs=recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size,
                                          max_shift=recipe.max_shift, seed=recipe.seed)
        model_distillation.train_soft_tree(tree, data.load(recipe.dataset, "train"),
                                           settings, teacher=teacher,
                                           temperature=recipe.temperature, penalty=recipe.penalty, device="cpu",
                                           progress=progress, description=recipe.architecture)
    return tree


def _train_supernet(recipe: SupernetRecipe, progress: bool) -> tuple[nn.Module, nn.Module, dict]:
    """The trained supernet, its largest subnet (batch norms re-estimated: what the build's
    validation and test errors score) and the record's extra fields (history, stand-alone runs)."""
    space = nas.SearchSpace()
    train_split = data.load(recipe.dataset, "train")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        result = nas.train_supernet(space, train_split, recipe.epochs, seed=recipe.seed, rule=recipe.rule,
                                    n_random=recipe.n_random, batch_size=recipe.batch_size, lr=recipe.lr,
                                    threads=BUILD_THREADS, progress=progress)
        supernet = result.supernet
        evaluator = nas.fashion_evaluator(supernet, seed=recipe.seed)
        validation = data.load(recipe.dataset, "validation")
        rng = random.Random(recipe.seed)
        standalone = []
        for k in range(recipe.n_standalone):
            architecture = nas.sample(space, rng)
            model = architectures.build_model(architecture, seed=recipe.seed + k)
            start = time.perf_counter()
            settings = train.TrainingSettings(epochs=recipe.standalone_epochs, lr=recipe.standalone_lr,
                                              seed=recipe.seed + k)
            train.fit(model, train_split, settings, device="cpu", progress=progress,
                      description=f"stand-alone {k + 1}")
            standalone.append({"choices": nas.to_choices(architecture, space),
                               "standalone_validation_accuracy": round(train.evaluate(model, validation).accuracy, 6),
                               "inherited_validation_accuracy": round(evaluator(architecture), 6),
                               "train_seconds": round(time.perf_counter() - start, 1)})
        largest_architecture = supernet.largest(random.Random(recipe.seed))
        largest = evaluator.subnet(largest_architecture)
    history = [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in h.items()} for h in result.history]
    return supernet, largest, {"history": history, "supernet_seconds": round(result.seconds, 1),
                               "standalone": standalone,
                               "scored_subnet": nas.to_choices(largest_architecture, space)}


def _search_then_train(name: str, recipe: SearchRecipe, progress: bool) -> tuple[nn.Module, list[dict], dict]:
    """The search's winner trained in full, its training history, and the record's extra fields:
    every scored candidate (choices, costs, short-training validation accuracy) and the winner's
    choices."""

    space = nas.TIGHT_SPACE
    constraints = nas.device_constraints(nas.TIGHT_BUDGET.name, max_latency_ms=recipe.max_latency_ms)
    objective = nas.ShortTraining(data.load(recipe.dataset, "train"), data.load(recipe.dataset, "validation"),
                                  recipe.screen_epochs, recipe.screen_lr, recipe.seed)
    options = ({"population_size": recipe.population_size, "sample_size": recipe.sample_size}
               if recipe.strategy == "evolution" else {})
    start = time.perf_counter()
    result = nas.run_search(recipe.strategy, space, objective, recipe.budget, recipe.seed, constraints, **options)
    search_seconds = time.perf_counter() - start
    search = [{"choices": nas.to_choices(c.architecture, space), "validation_accuracy": round(c.accuracy, 6),
               "parameters": c.costs.parameters, "macs": c.costs.macs, "flash_bytes": c.costs.flash_bytes,
               "peak_activation_bytes": c.costs.peak_activation_bytes, "latency_ms": round(c.costs.latency_ms, 2)}
              for c in result.evaluated]
    winner = result.best.architecture
    model, history = _train_from_scratch(name, recipe, progress, architecture=winner)
    return model, history, {"search": search, "search_seconds": round(search_seconds, 1),
                            "rejected": len(result.rejected), "choices": nas.to_choices(winner, space)}


def _prune_from_base(recipe: PruneRecipe, progress: bool) -> tuple[nn.Module, list[dict]]:
    """The pruned model and each step's record (weights kept, validation accuracy: evaluation
    draws nothing at random, so recording it leaves the training as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        fine_tuning = train.TrainingSettings(epochs=recipe.epochs_per_step, lr=recipe.lr,
                                             max_shift=recipe.max_shift, seed=recipe.seed)
        pruned, _, history = pruning.iterative_prune(
            load(recipe.base), data.load(recipe.dataset, "train"), dict(recipe.sparsity),
            recipe.steps, fine_tuning, validation=data.load(recipe.dataset, "validation"), device="cpu",
            progress=progress)
    return pruned, [{k: round(v, 6) if isinstance(v, float) else v for k, v in h.items()} for h in history]


def _deep_compress_from_base(recipe: DeepCompressionRecipe, progress: bool) -> nn.Module:

    train_split = data.load(recipe.dataset, "train")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = load(recipe.base)
        if recipe.sparsity:
            fine_tuning = train.TrainingSettings(epochs=recipe.epochs_per_step, lr=recipe.lr,
                                                 max_shift=recipe.max_shift, seed=recipe.seed)
            model, _, _ = pruning.iterative_prune(model, train_split, dict(recipe.sparsity), recipe.steps,
                                                  fine_tuning, device="cpu", progress=progress)
        codebook_tuning = train.TrainingSettings(epochs=recipe.codebook_epochs, lr=recipe.codebook_lr,
                                                 max_shift=recipe.max_shift, seed=recipe.seed)
        compressed = deep_compression.deep_compress(
            model, dict(recipe.bits), train_split, codebook_tuning, index_bits=recipe.index_bits, device="cpu",
            progress=progress)
    return deep_compression.as_plain_model(compressed.model)


def _compression_record(model: nn.Module, recipe: DeepCompressionRecipe) -> dict:
    """What Deep Compression's format makes of a saved model: ratios against dense fp32 and the
    per-layer table (:func:`course_lib.deep_compression.account_model`)."""

    table = deep_compression.account_model(model, dict(recipe.bits), recipe.index_bits)
    return {"compression_ratio": round(table.ratio, 4), "compression_ratio_pq": round(table.ratio_pq, 4),
            "compressed_bits": table.bits_pqh, "dense_bits": table.dense_bits,
            "kept_fraction": round(table.kept, 6), "compression_table": table.rows()}


def _build_language_model(name: str, recipe: LanguageModelRecipe | LoRARecipe, progress: bool) -> dict:
    """Train notebook 09's language model, or LoRA adapters on their (quantized) frozen base, save it (for
    adapters, the adapters alone), and return its manifest record: bits per character on the validation and
    test topics, the trained parameters, the training history."""
    corpus = language.load_corpus()
    start = time.perf_counter()
    with torch_threads(BUILD_THREADS):
        model = lora_base(recipe) if isinstance(recipe, LoRARecipe) else build_architecture(recipe.architecture,
                                                                                            seed=recipe.seed)
        history = language.train_language_model(model, corpus.train, recipe.settings, validation=corpus.validation,
                                                 progress=progress, description=name)
    seconds = time.perf_counter() - start
    trained = {k: p.detach().contiguous() for k, p in model.named_parameters() if p.requires_grad}
    state = trained if isinstance(recipe, LoRARecipe) else {k: v.detach().contiguous()
                                                           for k, v in model.state_dict().items()}
    zoo.PRETRAINED_DIR.mkdir(exist_ok=True)
    path = weights_path(name)
    save_file(state, str(path), metadata={"name": name, "architecture": recipe.architecture})
    return {
        "file": path.name,
        "sha256": data.sha256_of_file(path),
        "architecture": recipe.architecture,
        "dataset": recipe.dataset,
        "recipe": asdict(recipe),
        "validation_bpc": round(language.bits_per_character(model, corpus.validation), 6),
        "test_bpc": round(language.bits_per_character(model, corpus.test), 6),
        "parameters": sum(p.numel() for p in trained.values()),
        "train_seconds": round(seconds, 1),
        "built_with": {"torch": torch.__version__, "python": platform.python_version(), "threads": BUILD_THREADS},
        "history": history,
    }


def build_baseline(name: str, progress: bool = True) -> dict:
    """Build a shipped model from its recipe on the CPU, save it, and record it in the manifest.

    The run is seeded (weights, batch order, augmentation) and uses one CPU thread: with more,
    the math library may split its sums differently when the machine is busy, and the file
    would change from run to run. So the same machine gives the same file. Returns the
    manifest record, with the test error measured on the saved model.

    Raises:
        ValueError: ``name`` is not one of :func:`names`. TypeError: ``progress`` not a bool.
        CheckpointError: the existing manifest is garbled (checked before training).
    """
    check_choice(name, "name", names())
    check_type(progress, "progress", bool, "True or False")
    read_manifest()
    recipe = RECIPES[name]
    if isinstance(recipe, (LanguageModelRecipe, LoRARecipe)):
        record = _build_language_model(name, recipe, progress)
        manifest = read_manifest()
        manifest[name] = record
        zoo.MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        return record
    start = time.perf_counter()
    with torch_threads(BUILD_THREADS):
        history = None
        if isinstance(recipe, PruneRecipe):
            model, history = _prune_from_base(recipe, progress)
        elif isinstance(recipe, DistillRecipe):
            model = _distill_from_teacher(recipe, progress)
        elif isinstance(recipe, DeepCompressionRecipe):
            model = _deep_compress_from_base(recipe, progress)
        elif isinstance(recipe, SoftTreeRecipe):
            model = _train_soft_tree(recipe, progress)
        elif isinstance(recipe, SupernetRecipe):
            model, scored, extra = _train_supernet(recipe, progress)
        elif isinstance(recipe, SearchRecipe):
            model, history, extra = _search_then_train(name, recipe, progress)
        else:
            model, history = _train_from_scratch(name, recipe, progress)
    seconds = time.perf_counter() - start
    scored = scored if isinstance(recipe, SupernetRecipe) else model    # a supernet is scored by a subnet
    validation = train.evaluate(scored, data.load(recipe.dataset, "validation"))
    final = train.evaluate(scored, data.load(recipe.dataset, "test"))
    zoo.PRETRAINED_DIR.mkdir(exist_ok=True)
    path = weights_path(name)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"name": name, "architecture": recipe.architecture})
    nonzero = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    record = {
        "file": path.name,
        "sha256": data.sha256_of_file(path),
        "architecture": recipe.architecture,
        "dataset": recipe.dataset,
        "recipe": asdict(recipe),
        "validation_error": round(validation.error, 6),
        "test_accuracy": round(final.accuracy, 6),
        "test_error": round(final.error, 6),
        "nonzero_parameters": nonzero,
        "train_seconds": round(seconds, 1),
        "seconds_per_epoch": round(seconds / max(1, recipe.epochs), 2),
        "built_with": {"torch": torch.__version__, "python": platform.python_version(),
                       "threads": BUILD_THREADS},
    }
    if isinstance(recipe, DeepCompressionRecipe):
        record.update(_compression_record(model, recipe))
    if isinstance(recipe, (SupernetRecipe, SearchRecipe)):
        record.update(extra)
    if history is not None:
        record["history"] = history
    manifest = read_manifest()
    manifest[name] = record
    zoo.MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    """The command line: ``NAME... | --all``: rebuild baselines from their recipes; returns the
    exit code.

    Raises:
        TypeError: ``argv`` is neither None nor a list of str.
        SystemExit: on a bad command line (argparse's usage message).
    """
    check_argv(argv)
    parser = argparse.ArgumentParser(prog="python -m course_lib.zoo_build",
                                     description="Rebuild pretrained baselines from their recipes.")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"one or more of {names()}")
    parser.add_argument("--all", action="store_true", help="rebuild every baseline")
    args = parser.parse_args(argv)
    chosen = names() if args.all else args.names
    if not chosen:
        parser.error("give one or more names, or --all")
    unknown = [n for n in chosen if n not in RECIPES]
    if unknown:
        parser.error(f"unknown baseline(s) {unknown}; choose from {names()}")
    for name in chosen:
        print(f"building {name}: {RECIPES[name]}")
        record = build_baseline(name)
        figure = (f"{record['test_bpc']:.3f} test bits per character" if "test_bpc" in record
                  else f"test error {100 * record['test_error']:.2f}%")
        print(f"{name}: {figure} in {record['train_seconds']:.0f} s -> {record['file']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
