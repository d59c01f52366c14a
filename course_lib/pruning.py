"""Pruning: remove the weights, neurons or channels that matter least.

Two families, as in the survey's §2 and the papers it builds on:

* **Fine-grained (unstructured) pruning** zeroes individual weights. The magnitude criterion
  (Han, Pool, Tran & Dally 2015, "Learning both Weights and Connections for Efficient Neural
  Networks") keeps the weights of largest :math:`|w|`: for a tensor :math:`W` and a sparsity
  :math:`s` (the fraction of zeros), the mask is

  .. math:: M_i = \\mathbb{1}\\big[\\,|W_i| \\text{ is not among the } \\mathrm{round}(s\\,n) \\text{ smallest}\\,\\big].

  Masks are chosen per layer or globally (one threshold for all layers), kept applied through
  fine-tuning, and reached gradually (Zhu & Gupta 2017's cubic schedule). The zeros make a model
  smaller only once it is stored sparsely (:mod:`course_lib.encoding`); dense kernels still
  multiply by every zero, so it is not faster.
* **Structured pruning** removes whole output channels (conv) or neurons (linear) and builds a
  physically smaller network: the layer loses rows, the next layer loses the matching inputs, and
  a batch norm in between loses the matching entries. Dense kernels then do less work: it is faster.
  Channels are ranked by an importance criterion: the L1 / L2 norm of their filter (Li et al.
  2017, "Pruning Filters for Efficient ConvNets"), their mean activation, or the first-order Taylor
  estimate of the loss change when removing them (Molchanov et al. 2017, "Pruning Convolutional
  Neural Networks for Resource Efficient Inference").

Primitives take tensors and return new tensors; transforms return a new model and leave the given
one untouched. Taught in ``notebooks/01_pruning.ipynb``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import replace

import torch
from torch import nn

from .checks import (check_choice, check_finite, check_int, check_model, check_real, check_tensor, check_type,
                     describe, is_real)
from .data import SEED_RANGE, ImageSplit, batches, check_split
from .measure import WEIGHT_LAYER_TYPES, trace_layers, weight_layers
from .selection import check_scan, choose_within_drop, greedy_knapsack, per_layer, scan_layers
from .train import TrainingSettings, evaluate, fine_tune, model_device

__all__ = ["Masks", "CRITERIA", "SCOPES", "check_sparsity", "magnitude_mask", "prunable_layers", "layerwise_masks",
           "global_masks", "apply_masks_", "masks_hook", "prune_weights", "layer_sparsity", "kept_fraction",
           "sensitivity_scan", "choose_sparsities", "sparsities_for_target", "cubic_sparsity", "iterative_prune",
           "channel_norm", "activation_importance", "taylor_importance", "select_channels", "channel_prunable",
           "check_channel_prunable", "remove_channels", "prune_channels"]

Masks = dict[str, torch.Tensor]          # parameter name ("fc1.weight") -> 0/1 mask of its shape
CRITERIA = ("l1", "l2", "activation", "taylor")
SCOPES = ("layer", "global")              # one sparsity per layer, or one global threshold


def check_sparsity(sparsity: float, name: str = "sparsity") -> None:
    """Sparsity is the fraction of zeros (of weights, or of channels): a number in [0, 1).

    Raises:
        TypeError: not a real number (a str, a bool). ValueError: NaN, or outside [0, 1).
    """
    if not is_real(sparsity):
        raise TypeError(f"{name} must be a number in [0, 1), got {describe(sparsity)}")
    if not 0.0 <= sparsity < 1.0:       # also False for NaN
        raise ValueError(f"{name} must be in [0, 1), got {sparsity}")


# ----------------------------------------------------------------------------- fine-grained primitives

def magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """The 0/1 mask that zeroes the ``round(sparsity * n)`` entries of smallest magnitude.

    Exactly that many zeros, whatever the ties (ties go to the earlier index, as ``torch.topk``
    picks them); identical to ``torch.nn.utils.prune.l1_unstructured``'s mask.
    Returns a float tensor of ``weight``'s shape; ``weight`` is not modified.
    """
    check_tensor(weight, "weight")
    check_sparsity(sparsity)
    check_finite(weight, "weight", "magnitudes would be meaningless")
    n_prune = round(sparsity * weight.numel())
    mask = torch.ones_like(weight)
    if n_prune:
        smallest = torch.topk(weight.detach().abs().reshape(-1), n_prune, largest=False).indices
        mask.view(-1)[smallest] = 0.0
    return mask


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """:func:`course_lib.measure.weight_layers`, raising ValueError if there is none."""
    check_model(model)
    layers = weight_layers(model)
    if not layers:
        raise ValueError(f"model has no prunable weights (no {[c.__name__ for c in WEIGHT_LAYER_TYPES]} layers)")
    return layers


def _per_layer(model: nn.Module, sparsity: float | dict[str, float], name: str = "sparsity") -> dict[str, float]:
    return per_layer(sparsity, prunable_layers(model), name, check_sparsity)


def layerwise_masks(model: nn.Module, sparsity: float | dict[str, float]) -> Masks:
    """Magnitude masks chosen layer by layer: one sparsity for every prunable layer, or a dict
    ``{layer name: sparsity}`` (layers not named are left dense)."""
    layers = prunable_layers(model)
    return {f"{name}.weight": magnitude_mask(layers[name].weight, s)
            for name, s in _per_layer(model, sparsity).items()}


def global_masks(model: nn.Module, sparsity: float, layer_names: Iterable[str] | None = None) -> Masks:
    """Magnitude masks with one threshold over all the chosen layers' weights together, so
    layers with many small weights lose more (Han et al. 2015; ``prune.global_unstructured``)."""
    check_sparsity(sparsity)
    layers = prunable_layers(model)
    names = _layer_names(layers, layer_names)
    flat = torch.cat([layers[n].weight.detach().reshape(-1) for n in names])   # (sum of sizes,)
    mask = magnitude_mask(flat, sparsity)
    masks, start = {}, 0
    for n in names:
        w = layers[n].weight
        masks[f"{n}.weight"] = mask[start:start + w.numel()].reshape(w.shape)
        start += w.numel()
    return masks


def _layer_names(layers: dict[str, nn.Module], layer_names: Iterable[str] | None) -> list[str]:
    names = list(layers) if layer_names is None else list(layer_names)
    unknown = set(names) - set(layers)
    if unknown or not names:
        raise ValueError(f"layer_names must name prunable layers {list(layers)}, got {names}")
    return names


def apply_masks_(model: nn.Module, masks: Masks) -> None:
    """Multiply each masked parameter by its mask, in place. Use it as ``fit``'s ``after_step``
    hook so pruned weights stay zero through fine-tuning. Every mask is checked before any
    parameter changes, so a bad mask leaves the model as it was."""
    check_model(model)
    check_type(masks, "masks", dict, "a dict {parameter name: mask}")
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in params:
            raise ValueError(f"masks names parameter {name!r}, which the model does not have")
        if not isinstance(mask, torch.Tensor) or params[name].shape != mask.shape:
            raise ValueError(f"mask for {name!r} must be a tensor of the parameter's shape "
                             f"{tuple(params[name].shape)}, got {getattr(mask, 'shape', type(mask).__name__)}")
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask.to(params[name].device))


def masks_hook(masks: Masks) -> Callable[[nn.Module], None]:
    """``after_step`` hook for :func:`course_lib.train.fit` that re-applies ``masks``."""
    return lambda model: apply_masks_(model, masks)


def prune_weights(model: nn.Module, sparsity: float | dict[str, float],
                  scope: str = "layer") -> tuple[nn.Module, Masks]:
    """Unstructured magnitude pruning of a copy of ``model``: individual weights are zeroed, the
    shapes stay. ``scope="layer"`` (each layer to its sparsity) or ``"global"`` (one threshold;
    ``sparsity`` must then be a float). Returns (pruned copy, masks)."""
    check_choice(scope, "scope", SCOPES)
    if scope == "global" and isinstance(sparsity, dict):
        raise ValueError("scope='global' takes one float sparsity, not a dict")
    masks = layerwise_masks(model, sparsity) if scope == "layer" else global_masks(model, sparsity)
    pruned = copy.deepcopy(model)
    apply_masks_(pruned, masks)
    return pruned, masks



def layer_sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of zeros in each prunable layer's weight."""
    return {name: 1.0 - int(torch.count_nonzero(m.weight)) / m.weight.numel()
            for name, m in prunable_layers(model).items()}


def kept_fraction(model: nn.Module) -> float:
    """Nonzero weights over all weights of the prunable layers (Han et al.'s "% kept";
    biases are not counted, as in the paper)."""
    layers = prunable_layers(model).values()
    return sum(int(torch.count_nonzero(m.weight)) for m in layers) / sum(m.weight.numel() for m in layers)


# ----------------------------------------------------------------------------- sensitivity

def sensitivity_scan(model: nn.Module, split: ImageSplit, sparsities: Iterable[float],
                     layer_names: Iterable[str] | None = None,
                     progress: bool = True) -> dict[str, list[tuple[float, float]]]:
    """Accuracy on ``split`` when each layer alone is magnitude-pruned to each sparsity, without
    retraining (Han et al. 2015, Fig. 6). Returns ``{layer: [(sparsity, accuracy), ...]}``.
    The scan drives choices, so ``split`` is validation data, never the test set."""
    check_split(split)
    sparsities = list(sparsities)
    if not sparsities:
        raise ValueError("sparsities must hold at least one sparsity")
    for s in sparsities:
        check_sparsity(s, "each of sparsities")
    names = _layer_names(prunable_layers(model), layer_names)
    return scan_layers(model, split, names, sparsities, lambda m, name, s: prune_weights(m, {name: s})[0],
                       progress=progress)


def choose_sparsities(scan: dict[str, list[tuple[float, float]]], baseline_accuracy: float,
                      max_drop: float) -> dict[str, float]:
    """For each layer, the highest scanned sparsity whose accuracy stays within ``max_drop``
    (absolute: 0.01 is one point) of the baseline, boundary included; 0 if none does. Sensitive
    layers keep more weights. The scan need not be sorted."""
    check_scan(scan, "sparsity")
    for layer, points in scan.items():
        for s, _ in points:
            check_sparsity(s, f"a sparsity in scan[{layer!r}]")
    return choose_within_drop(scan, baseline_accuracy, max_drop, most_aggressive=max, fallback=lambda _: 0.0)


def sparsities_for_target(scan: dict[str, list[tuple[float, float]]], sizes: dict[str, int],
                          kept: float) -> dict[str, float]:
    """Per-layer sparsities that keep at most the fraction ``kept`` of all weights, chosen from a
    sensitivity scan at the least accuracy cost *per weight removed*: every layer starts at its
    lowest scanned sparsity; while too many weights remain, the layer whose next scanned step
    loses the least scan accuracy per weight it removes takes that step (ties: the layer listed
    first). The same greedy knapsack (:func:`course_lib.selection.greedy_knapsack`) as
    :func:`course_lib.quantization.mixed_precision_bits`, with weights in place of bytes. A big
    layer (LeNet-300-100's fc1) gives up many weights per step, so it is pruned hardest; a small
    sensitive one (the output layer) keeps more.

    Raises ValueError if even the highest scanned sparsities keep more than ``kept``.
    """
    if not isinstance(scan, dict) or not scan:
        raise TypeError("scan must be a non-empty dict {layer: [(sparsity, accuracy), ...]}")
    if not isinstance(sizes, dict) or set(sizes) != set(scan):
        raise ValueError(f"sizes must give the number of weights of each scanned layer {list(scan)}")
    for layer, n in sizes.items():
        check_int(n, f"sizes[{layer!r}]", 1)
    check_real(kept, "kept", 0, 1, low_open=True)
    points = {layer: sorted(p) for layer, p in scan.items()}        # by sparsity; the scan is not changed
    for layer, p in points.items():
        if not p:
            raise ValueError(f"scan[{layer!r}] holds no (sparsity, accuracy) point")
        for s, _ in p:
            check_sparsity(s, f"a sparsity in scan[{layer!r}]")
    total = sum(sizes.values())
    if sum(sizes[layer] * (1 - p[-1][0]) for layer, p in points.items()) > kept * total:
        raise ValueError(f"the scanned sparsities cannot keep as little as {kept:.4f} of the weights")
    options = {layer: [(s, accuracy, sizes[layer] * (1 - s)) for s, accuracy in p] for layer, p in points.items()}
    return greedy_knapsack(options, kept * total)


# ----------------------------------------------------------------------------- gradual pruning

def cubic_sparsity(step: int, total_steps: int, final: float, initial: float = 0.0) -> float:
    """Zhu & Gupta (2017), "To prune, or not to prune", Eq. 1:
    :math:`s_t = s_f + (s_i - s_f)(1 - t/n)^3` for :math:`t = 0..n`: prune fast while many
    redundant weights remain, slowly near the end."""
    check_int(total_steps, "total_steps", 1)
    check_int(step, "step", 0, total_steps)
    check_sparsity(final, "final")
    check_sparsity(initial, "initial")
    return final + (initial - final) * (1 - step / total_steps) ** 3


def iterative_prune(model: nn.Module, train: ImageSplit, final_sparsity: float | dict[str, float],
                    steps: int, fine_tuning: TrainingSettings, *, validation: ImageSplit | None = None,
                    scope: str = "layer", schedule: Callable[[int, int, float], float] | None = None,
                    device: torch.device | str | None = None,
                    progress: bool = True) -> tuple[nn.Module, Masks, list[dict]]:
    """Gradual magnitude pruning with fine-tuning (Han et al. 2015's prune-retrain loop on Zhu &
    Gupta's cubic schedule): at step ``t = 1..steps`` prune a copy of the model to
    ``cubic_sparsity(t)`` of each layer's final sparsity, then fine-tune with the masks held, as
    ``fine_tuning`` says (its ``epochs`` per step, its ``seed`` + t at step t). Retraining uses a
    learning rate below the original one, as Han et al. do. With ``validation``, each step records its validation accuracy (monitoring uses
    validation data; the test set only reports the end result). ``schedule(t, steps, final)``
    gives step ``t``'s sparsity (default :func:`cubic_sparsity`; a learner's own works too).
    Returns (pruned model, final masks, one record per step)."""
    check_model(model)
    check_split(train, "train")
    if validation is not None:
        check_split(validation, "validation")
    check_int(steps, "steps", 1)
    check_type(fine_tuning, "fine_tuning", TrainingSettings, "a TrainingSettings (train.TrainingSettings(epochs=...))")
    check_int(fine_tuning.seed + steps, "fine_tuning.seed + steps", *SEED_RANGE)
    check_choice(scope, "scope", SCOPES)
    if scope == "global" and isinstance(final_sparsity, dict):
        raise ValueError("scope='global' takes one float final_sparsity, not a dict")
    targets = _per_layer(model, final_sparsity) if scope == "layer" else final_sparsity
    if scope == "global":
        check_sparsity(targets, "final_sparsity")
    check_type(schedule, "schedule", Callable, "callable as schedule(step, total_steps, final)",
               allow_none=True)
    if schedule is None:
        schedule = cubic_sparsity
    current = copy.deepcopy(model)
    history = []
    masks: Masks = {}
    for t in range(1, steps + 1):
        if scope == "layer":
            step_sparsity = {n: schedule(t, steps, s) for n, s in targets.items()}
        else:
            step_sparsity = schedule(t, steps, targets)
        current, masks = prune_weights(current, step_sparsity, scope)
        fine_tune(current, train,
                  replace(fine_tuning, seed=fine_tuning.seed + t),
                  after_step=masks_hook(masks), device=device, progress=progress,
                  description=f"prune step {t}/{steps}")
        record = {"step": t, "kept": kept_fraction(current)}
        if validation is not None:
            record["validation_accuracy"] = evaluate(current, validation).accuracy
        history.append(record)
    return current, masks, history


# ----------------------------------------------------------------------------- structured: scoring

def channel_norm(weight: torch.Tensor, p: int = 1) -> torch.Tensor:
    """Importance of each output channel (row) of a weight: :math:`\\|W_c\\|_p` over all its
    inputs (Li et al. 2017 use p = 1). (C_out, ...) -> (C_out,)."""
    if isinstance(p, bool) or p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p!r}")
    check_tensor(weight, "weight")
    if weight.dim() < 2:
        raise ValueError(f"weight must be a tensor (C_out, ...) of 2+ dimensions, got shape {tuple(weight.shape)}")
    return weight.detach().reshape(weight.shape[0], -1).norm(p=p, dim=1)


def _layer(model: nn.Module, layer_name: str) -> nn.Module:
    check_model(model)
    layers = prunable_layers(model)
    check_choice(layer_name, "layer_name", list(layers))
    return layers[layer_name]


def _per_channel_mean(t: torch.Tensor) -> torch.Tensor:
    """(B, C, ...) -> (C,): mean over the batch and spatial positions."""
    return t.transpose(0, 1).reshape(t.shape[1], -1).mean(dim=1)


def activation_importance(model: nn.Module, layer_name: str, split: ImageSplit,
                          n: int = 1000) -> torch.Tensor:
    """Mean absolute output of each channel of ``layer_name`` over ``n`` examples (channels
    that barely respond matter little). Returns (C_out,)."""
    layer = _layer(model, layer_name)
    check_split(split)
    check_int(n, "n", 1)
    device = model_device(model)
    totals = []
    handle = layer.register_forward_hook(lambda m, i, out: totals.append(_per_channel_mean(out.abs())))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            for x, _ in batches(split.subset(min(n, len(split))), 500):
                model(x.to(device))
    finally:
        handle.remove()
        model.train(was_training)
    return torch.stack(totals).mean(0).cpu()


def taylor_importance(model: nn.Module, layer_name: str, split: ImageSplit, n: int = 1000) -> torch.Tensor:
    """First-order Taylor estimate of the loss change when a channel is removed (Molchanov et
    al. 2017): :math:`|\\,\\overline{a_c \\, \\partial L / \\partial a_c}\\,|`, the product of each
    output ``a`` with its gradient, averaged over positions and examples. Returns (C_out,).
    The model's parameter gradients are left as they were (saved, then restored)."""
    layer = _layer(model, layer_name)
    check_split(split)
    check_int(n, "n", 1)
    device = model_device(model)
    saved_grads = {name: (None if p.grad is None else p.grad.clone()) for name, p in model.named_parameters()}
    outputs = []

    def keep_output(module, inputs, out):      # returns None: the output is left unchanged
        out.retain_grad()
        outputs.append(out)

    handle = layer.register_forward_hook(keep_output)
    scores = []
    was_training = model.training
    try:
        model.eval()
        for x, y in batches(split.subset(min(n, len(split))), 250):
            outputs.clear()
            model.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x.to(device)), y.to(device))
            loss.backward()
            a = outputs[0]
            scores.append(_per_channel_mean(a * a.grad).abs())
    finally:
        handle.remove()
        for name, p in model.named_parameters():
            p.grad = saved_grads[name]
        model.train(was_training)
    return torch.stack(scores).mean(0).detach().cpu()


def select_channels(importance: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the ``count`` most important channels, in increasing order (ties go to the
    earlier channel)."""
    check_tensor(importance, "importance")
    if importance.dim() != 1:
        raise ValueError(f"importance must be a vector (C,), got shape {tuple(importance.shape)}")
    check_finite(importance, "importance")
    check_int(count, "count", 1, len(importance))
    order = torch.argsort(importance, descending=True, stable=True)
    return order[:count].sort().values


# ----------------------------------------------------------------------------- structured: applying

def _sliced_layer(layer: nn.Module, out_index: torch.Tensor | None = None,
                  in_index: torch.Tensor | None = None) -> nn.Module:
    """A new Linear / Conv2d / BatchNorm with only the given output rows and/or input columns."""
    W = layer.weight.detach()
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
        new = type(layer)(len(out_index), eps=layer.eps, momentum=layer.momentum,
                          affine=layer.affine, track_running_stats=layer.track_running_stats)
        for name in ("weight", "bias", "running_mean", "running_var"):
            source = getattr(layer, name)
            if source is not None:
                getattr(new, name).data.copy_(source.detach()[out_index])
        if layer.num_batches_tracked is not None:
            new.num_batches_tracked.copy_(layer.num_batches_tracked)
        return new
    if out_index is not None:
        W = W[out_index]
    if in_index is not None:
        W = W[:, in_index]
    bias = layer.bias.detach()[out_index] if (layer.bias is not None and out_index is not None) else layer.bias
    if isinstance(layer, nn.Linear):
        new = nn.Linear(W.shape[1], W.shape[0], bias=layer.bias is not None)
    else:
        if layer.groups != 1:
            raise ValueError("grouped convolutions are not supported by remove_channels")
        new = nn.Conv2d(W.shape[1], W.shape[0], layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, bias=layer.bias is not None,
                        padding_mode=layer.padding_mode)
    new.weight.data.copy_(W)
    if bias is not None:
        new.bias.data.copy_(bias.detach())
    return new.to(layer.weight.device)


def channel_prunable(model: nn.Module) -> bool:
    """Whether :func:`remove_channels` can shrink ``model``: a plain stack of layers, an
    ``nn.Sequential`` whose convolutions and linear layers are its own children. In a network built
    of blocks (a shortcut that adds a block's input to its output, a concatenation), removing a
    channel inside a block would also have to remove it from every tensor the block joins."""
    layers = weight_layers(model)
    return isinstance(model, nn.Sequential) and len(layers) >= 2 and all("." not in name for name in layers)


def check_channel_prunable(model: nn.Module) -> None:
    """Raises ValueError, saying why and what to do instead, when ``model`` is not
    :func:`channel_prunable`."""
    if channel_prunable(model):
        return
    nested = [name for name in weight_layers(model) if "." in name]
    where = (f"its layers sit inside blocks (e.g. {nested[0]!r})" if nested
             else f"it is a {type(model).__name__}, not a plain stack of layers")
    raise ValueError(f"channel pruning needs a plain stack of layers (an nn.Sequential of convolutions and linear "
                     f"layers), and {where}: removing a channel there would break the tensors a block joins. "
                     "Prune its weights by magnitude instead (scope 'layer' or 'global'), or choose a plain stack "
                     "such as lenet5, small_cnn_fashion or tiny_cnn_fashion.")


def remove_channels(model: nn.Sequential, layer_name: str, keep: torch.Tensor,
                    input_shape: tuple[int, ...] = (1, 28, 28)) -> nn.Sequential:
    """Channel surgery: a new, physically smaller network where layer ``layer_name`` keeps only
    the output channels (neurons) whose indices are in ``keep`` (an integer tensor or list).

    Walking forward from that layer: a batch norm keeps the same channels; element-wise layers
    and pooling pass through; the next Conv2d keeps only those input channels; the next Linear,
    if a Flatten came between, keeps the input columns of those channels (``H*W`` columns each,
    in the order ``Flatten`` lays them out), else those input columns. Before any fine-tuning the
    result computes exactly what the dense model computes with those channels zeroed.
    """
    check_type(model, "model", nn.Sequential, "an nn.Sequential (the course's models are)")
    check_channel_prunable(model)
    layer = _layer(model, layer_name)
    keep = torch.as_tensor(keep)
    if keep.is_floating_point() or keep.dtype == torch.bool:
        raise TypeError(f"keep must hold integer channel indices, got dtype {keep.dtype}")
    keep = keep.to(torch.long).reshape(-1)
    n_out = layer.weight.shape[0]
    if len(keep) == 0 or keep.min() < 0 or keep.max() >= n_out or len(keep.unique()) != len(keep):
        raise ValueError(f"keep must hold distinct channel indices in [0, {n_out}), got {keep.tolist()}")
    keep = keep.sort().values.cpu()
    children = dict(model.named_children())
    names = list(children)
    position = names.index(layer_name)
    # The shape entering each layer (one traced input), to know how many columns a Flatten
    # gives each channel.
    input_shapes = {t.name: t.input_shape for t in trace_layers(model, input_shape)}

    new_modules = dict(children)
    new_modules[layer_name] = _sliced_layer(layer, out_index=keep)
    columns = keep
    for name in names[position + 1:]:
        module = children[name]
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            new_modules[name] = _sliced_layer(module, out_index=columns)
        elif isinstance(module, nn.Flatten):
            per_channel = math.prod(input_shapes[name][1:])          # H * W of each channel
            columns = (columns[:, None] * per_channel + torch.arange(per_channel)).reshape(-1)
        elif isinstance(module, WEIGHT_LAYER_TYPES):
            new_modules[name] = _sliced_layer(module, in_index=columns.to(module.weight.device))
            break
        elif list(module.parameters()):
            raise ValueError(f"cannot carry channel pruning through layer {name!r} "
                             f"({type(module).__name__})")
    else:
        raise ValueError(f"layer {layer_name!r} has no following Linear/Conv2d to shrink; "
                         "pruning the output layer's neurons would remove classes")
    pruned = nn.Sequential()
    for name in names:   # unchanged layers are copied, so the new model shares nothing
        module = new_modules[name]
        pruned.add_module(name, copy.deepcopy(module) if module is children[name] else module)
    return pruned.train(model.training)


def prune_channels(model: nn.Sequential, sparsity: dict[str, float], criterion: str = "l1",
                   split: ImageSplit | None = None) -> nn.Sequential:
    """Structured pruning of several layers: layer ``name`` loses the fraction
    ``sparsity[name]`` of its output channels, keeping ``max(1, round((1 - s) * C_out))`` of
    them, scored by ``criterion``: ``"l1"``, ``"l2"`` (filter norms), ``"activation"`` or
    ``"taylor"`` (data-driven; need ``split``, training or validation images). Layers are pruned
    in order, each scored on the network as pruned so far, and removed by
    :func:`remove_channels`. Returns a new model; the given one is not changed."""
    check_type(model, "model", nn.Sequential, "an nn.Sequential (the course's models are)")
    check_channel_prunable(model)
    check_choice(criterion, "criterion", CRITERIA)
    if criterion in ("activation", "taylor"):
        if split is None:
            raise ValueError(f"criterion {criterion!r} needs data: pass split=")
        check_split(split)
    if not isinstance(sparsity, dict) or not sparsity:
        raise TypeError("sparsity must be a non-empty dict {layer name: fraction of channels removed}")
    layers = prunable_layers(model)
    for name, s in sparsity.items():
        if name not in layers:
            raise ValueError(f"sparsity names unknown layer {name!r}; prunable layers are {list(layers)}")
        check_sparsity(s, f"sparsity[{name!r}]")
    current = model
    for name, s in sparsity.items():
        layer = _layer(current, name)
        if criterion in ("l1", "l2"):
            importance = channel_norm(layer.weight, 1 if criterion == "l1" else 2)
        elif criterion == "activation":
            importance = activation_importance(current, name, split)
        else:
            importance = taylor_importance(current, name, split)
        keep = select_channels(importance, max(1, round((1.0 - s) * layer.weight.shape[0])))
        current = remove_channels(current, name, keep)
    return current if current is not model else copy.deepcopy(model)
