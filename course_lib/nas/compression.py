"""AutoML for compression: let a search choose each layer's sparsity and bit width.

Layers do not tolerate compression equally: the first convolution and the classifier are
sensitive, the wide middle layers are not. Rather than one sparsity and one bit width for the
whole model, AMC (He, Lin, Liu, Wang, Li & Han 2018, "AMC: AutoML for Model Compression and
Acceleration on Mobile Devices", Sec. 3) lets an agent choose a per-layer pruning ratio under a
resource budget, rewarded by the validation accuracy *without fine-tuning* (Sec. 3.4), and HAQ
(Wang, Liu, Lin, Lin & Han 2019, "HAQ: Hardware-Aware Automated Quantization with Mixed
Precision", Sec. 3) does the same for per-layer bit widths with the hardware in the loop.

Here the agent is Optuna's TPE (instead of their DDPG) choosing, for every ``Linear`` /
``Conv2d`` layer :math:`l`, a sparsity :math:`s_l` and a bit width :math:`b_l`; a policy is
applied with the course's own functions (:func:`course_lib.pruning.prune_weights`, magnitude
masks per layer, then :func:`course_lib.quantization.quantize_model`, weight-only affine
per-channel codes) and its size measured by :func:`course_lib.measure.weight_bytes` (codes at
:math:`b_l` bits, each tensor in its smallest encoding, so the zeros of pruning are paid for only
where a sparse encoding wins; the other parameters at fp32). A policy over the flash budget
:math:`B` is infeasible (constraint :math:`\\text{bytes}/B - 1 > 0`) and is not evaluated. The
result is compared with the best *uniform* policy (one :math:`s` and one :math:`b` for all
layers) that fits the same budget; the uniform policies can also be the search's first trials
(a warm start), so that TPE learns from good settings rather than from random ones, most of
which, with no fine-tuning, ruin at least one layer.

Taught in ``notebooks/08_nas_for_a_device.ipynb``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from torch import nn

from ..checks import check_int, check_model, check_type
from ..data import SEED_RANGE, ImageSplit, check_split
from ..measure import torch_threads, weight_bytes, weight_layers
from ..pruning import check_sparsity, prune_weights
from ..quantization import check_bits, quantize_model
from ..train import evaluate
from .strategies import _constraint_option, _set_constraints, quiet_optuna

__all__ = ["Policy", "apply_policy", "policy_bytes", "CompressionSearchResult", "search_compression"]

Policy = dict[str, tuple[float, int]]           # layer name -> (sparsity, bits)


def apply_policy(model: nn.Module, policy: Policy) -> nn.Module:
    """A compressed copy of ``model``: each layer of ``policy`` pruned by magnitude to its
    sparsity, then its weight quantized to its bits (weight-only, affine, per channel); layers
    not named stay as they are. ``model`` is unchanged.

    Raises:
        TypeError / ValueError: ``model`` not an nn.Module; ``policy`` not a dict of
            ``{layer: (sparsity, bits)}`` over the model's Linear / Conv2d layers, a sparsity
            outside [0, 1) or bits outside [1, 16].
    """
    check_model(model)
    _check_policy(policy, model)
    pruned, _ = prune_weights(model, {layer: s for layer, (s, _) in policy.items()})
    return quantize_model(pruned, weight_bits={layer: b for layer, (_, b) in policy.items()}, activation_bits=None)


def policy_bytes(model: nn.Module, policy: Policy) -> int:
    """Flash bytes of ``apply_policy(model, policy)``: :func:`course_lib.measure.weight_bytes`
    with every tensor in its smallest encoding (``"best"``), the uncompressed parameters at fp32.

    Raises:
        TypeError / ValueError: as :func:`apply_policy`.
    """
    return weight_bytes(apply_policy(model, policy), "fp32", "best")


def _check_policy(policy, model: nn.Module) -> None:
    check_type(policy, "policy", dict, "a dict {layer name: (sparsity, bits)}")
    layers = weight_layers(model)
    for layer, value in policy.items():
        if layer not in layers:
            raise ValueError(f"policy names {layer!r}, which is not a Linear / Conv2d layer of the model "
                             f"({list(layers)})")
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"policy[{layer!r}] must be a (sparsity, bits) pair, got {value!r}")
        check_sparsity(value[0], f"policy[{layer!r}] sparsity")
        check_bits(value[1], f"policy[{layer!r}] bits")


@dataclass(frozen=True)
class CompressionSearchResult:
    """The best searched policy and the best uniform one under the same flash budget, each with
    its bytes and validation accuracy (None where nothing fits), and every trial as
    ``(policy, bytes, accuracy or None)``."""
    budget_bytes: int
    policy: Policy | None
    accuracy: float | None
    bytes: int | None
    uniform_policy: tuple[float, int] | None
    uniform_accuracy: float | None
    uniform_bytes: int | None
    trials: tuple[tuple[Policy, int, float | None], ...]


def search_compression(model: nn.Module, validation: ImageSplit, budget_bytes: int, n_trials: int, *,
                       seed: int = 0, sparsities: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75),
                       bits: tuple[int, ...] = (2, 4, 6, 8), n_startup_trials: int = 10,
                       warm_start: bool = False) -> CompressionSearchResult:
    """Search a per-layer (sparsity, bits) policy for ``model`` under ``budget_bytes`` of flash
    with Optuna's ``TPESampler(seed=seed)`` for ``n_trials`` trials (each layer's sparsity among
    ``sparsities`` and bits among ``bits``, as categorical parameters), maximising the accuracy on
    ``validation`` without fine-tuning (AMC Sec. 3.4). Every uniform policy of the same grid is
    measured too, and the best that fits is reported beside the search's best.

    With ``warm_start``, the uniform policies are the study's first trials (``enqueue_trial``),
    before the ``n_trials`` of TPE: its model of good and bad settings starts from them instead of
    from random draws, most of which, over many layers, ruin the network. Without it they are
    measured after the search, apart from it. One torch thread.

    Raises (before anything runs):
        TypeError / ValueError: ``model`` not an nn.Module with Linear / Conv2d layers;
            ``validation`` not a non-empty ImageSplit; ``budget_bytes`` or ``n_trials`` not an
            int >= 1; an empty or bad grid (sparsities in [0, 1), bits in [1, 16]); ``seed`` out
            of range; ``warm_start`` not a bool.
    """
    import optuna

    check_model(model)
    check_split(validation, "validation")
    check_int(budget_bytes, "budget_bytes", 1)
    check_int(n_trials, "n_trials", 1)
    check_int(seed, "seed", *SEED_RANGE)
    check_int(n_startup_trials, "n_startup_trials", 1)
    check_type(warm_start, "warm_start", bool, "True or False")
    for grid, name, check in ((sparsities, "sparsities", check_sparsity), (bits, "bits", check_bits)):
        check_type(grid, name, (tuple, list), "a non-empty tuple")
        if not grid:
            raise ValueError(f"{name} must hold at least one value, got none")
        for v in grid:
            check(v, f"a value of {name}")
    layers = list(weight_layers(model))
    if not layers:
        raise ValueError("model has no Linear or Conv2d layer to compress")
    trials: list[tuple[Policy, int, float | None]] = []

    def score(policy: Policy) -> tuple[int, float | None]:
        compressed = apply_policy(model, policy)
        size = weight_bytes(compressed, "fp32", "best")
        accuracy = evaluate(compressed, validation).accuracy if size <= budget_bytes else None
        return size, accuracy

    def objective(trial) -> float:
        policy = {layer: (trial.suggest_categorical(f"{layer}.sparsity", list(sparsities)),
                          trial.suggest_categorical(f"{layer}.bits", list(bits))) for layer in layers}
        size, accuracy = score(policy)
        _set_constraints(trial, {"flash": size / budget_bytes - 1})
        trials.append((policy, size, accuracy))
        return accuracy if accuracy is not None else 0.0

    grid = list(itertools.product(sparsities, bits))
    with torch_threads(1), quiet_optuna():
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials, **_constraint_option())
        study = optuna.create_study(direction="maximize", sampler=sampler)
        if warm_start:
            for s, b in grid:
                study.enqueue_trial({**{f"{layer}.sparsity": s for layer in layers},
                                     **{f"{layer}.bits": b for layer in layers}})
        study.optimize(objective, n_trials=n_trials + (len(grid) if warm_start else 0))
        if warm_start:                                      # the first trials were the uniform grid
            measured = [(point, size, accuracy) for point, (_, size, accuracy) in zip(grid, trials)]
        else:
            measured = [((s, b), *score({layer: (s, b) for layer in layers})) for s, b in grid]
    uniform = [u for u in measured if u[2] is not None]
    feasible = [t for t in trials if t[2] is not None]
    best = max(feasible, key=lambda t: t[2]) if feasible else (None, None, None)
    best_uniform = max(uniform, key=lambda u: u[2]) if uniform else (None, None, None)
    return CompressionSearchResult(budget_bytes, best[0], best[2], best[1], best_uniform[0], best_uniform[2],
                                   best_uniform[1], tuple(trials))
