"""Per-layer choices from a sensitivity scan, written once for every technique that makes them.

Pruning (a sparsity per layer), Deep Compression (bits per weight index), mixed-precision
quantization (bits per layer) and low rank (a rank per layer) all choose a setting for each layer
the same way (Han et al. 2015, Fig. 6; HAQ and AMC do it with search, here it is done by hand):

1. **scan**: compress one layer alone at each candidate setting, leave the others as they are,
   and measure the accuracy on validation data (:func:`scan_layers`);
2. then either **choose within a drop**: for each layer, the most aggressive setting whose
   accuracy stays within ``max_drop`` of the baseline (:func:`choose_within_drop`);
3. or **fit a budget**: start every layer at its mildest setting and, while the model is over
   budget, move the layer whose next setting loses the least accuracy per unit saved (bytes,
   weights) one step (:func:`greedy_knapsack`, the greedy answer to a knapsack problem).

The scan adds up single-layer effects, which interact when several layers are compressed at once;
the choice is a heuristic, to be checked by measuring the compressed model.

Taught in ``notebooks/01_pruning.ipynb`` (sensitivity) and ``notebooks/02_quantization.ipynb``
(mixed precision).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence

from torch import nn
from tqdm.auto import tqdm

from .checks import check_real, check_type, describe
from .data import ImageSplit, check_split
from .train import evaluate

__all__ = ["per_layer", "scan_layers", "check_scan", "choose_within_drop", "greedy_knapsack"]


def per_layer(value, layers: Iterable[str], name: str, check: Callable[[object, str], None],
              every_layer: bool = False) -> dict:
    """A per-layer setting read the one way every technique reads it: one value for every layer,
    or a dict ``{layer: value}``, each value checked by ``check(value, its_name)``.

    With a dict, only the layers it names get a setting, unless ``every_layer`` (Deep
    Compression compresses them all): then it must name each of ``layers``. The result follows
    the order of ``layers``.

    Raises:
        ValueError: a dict naming a layer not in ``layers`` (or, with ``every_layer``, missing
            one), naming both; whatever ``check`` raises, naming ``name[layer]``.
    """
    layers = list(layers)
    if not isinstance(value, dict):
        check(value, name)
        return {layer: value for layer in layers}
    unknown = sorted(set(value) - set(layers))
    missing = [layer for layer in layers if layer not in value] if every_layer else []
    if unknown or missing:
        rule = "must name every weight layer" if every_layer else "names unknown layers; it may name only"
        raise ValueError(f"{name} {rule} {layers}: unknown layers {unknown}" +
                         (f", missing {missing}" if every_layer else ""))
    for layer in layers:
        if layer in value:
            check(value[layer], f"{name}[{layer!r}]")
    return {layer: value[layer] for layer in layers if layer in value}


def scan_layers(model: nn.Module, split: ImageSplit, layers: Iterable[str], settings: Sequence[Hashable],
                compress: Callable[[nn.Module, str, Hashable], nn.Module], progress: bool = False,
                description: str = "sensitivity scan") -> dict[str, list[tuple[Hashable, float]]]:
    """Accuracy on ``split`` with each of ``layers`` alone compressed at each of ``settings``:
    ``{layer: [(setting, accuracy), ...]}`` in the order given. ``compress(model, layer,
    setting)`` returns a compressed copy (``model`` itself is never changed). The scan drives
    choices, so ``split`` is validation data, never the test set.

    Raises:
        TypeError / ValueError: ``split`` not a non-empty ImageSplit, no settings, ``compress``
            not callable.
    """
    check_split(split)
    settings = list(settings)
    if not settings:
        raise ValueError("settings must hold at least one setting to scan")
    check_type(compress, "compress", Callable, "a callable compress(model, layer, setting) -> model")
    layers = list(layers)
    scan: dict[str, list[tuple[Hashable, float]]] = {}
    with tqdm(total=len(layers) * len(settings), desc=description, disable=not progress) as bar:
        for layer in layers:
            scan[layer] = []
            for setting in settings:
                scan[layer].append((setting, evaluate(compress(model, layer, setting), split).accuracy))
                bar.update()
    return scan


def check_scan(scan: object, what: str = "setting") -> None:
    """A scan as :func:`scan_layers` returns it: a non-empty dict of non-empty lists of
    (setting, accuracy) pairs, accuracies in [0, 1]."""
    if not isinstance(scan, dict) or not scan:
        raise TypeError(f"scan must be a non-empty dict {{layer: [({what}, accuracy), ...]}}, got {describe(scan)}")
    for layer, points in scan.items():
        if not isinstance(points, (list, tuple)) or not points:
            raise ValueError(f"scan[{layer!r}] must be a non-empty list of ({what}, accuracy) points, "
                             f"got {describe(points)}")
        for k, point in enumerate(points):
            if not isinstance(point, (list, tuple)) or len(point) != 2:
                raise ValueError(f"scan[{layer!r}][{k}] must be a ({what}, accuracy) pair, got {point!r}")
            check_real(point[1], f"scan[{layer!r}][{k}] accuracy", 0, 1)


def choose_within_drop(scan: dict[str, list[tuple[Hashable, float]]], baseline_accuracy: float, max_drop: float,
                       most_aggressive: Callable[[Iterable[Hashable]], Hashable],
                       fallback: Callable[[list[Hashable]], Hashable]) -> dict[str, Hashable]:
    """For each layer, ``most_aggressive`` of the scanned settings whose accuracy is at least
    ``baseline_accuracy - max_drop`` (absolute: 0.01 is one point; the boundary counts), or
    ``fallback(all its settings)`` when none is. Pruning takes the highest sparsity (fallback 0),
    bits the fewest (fallback the most). The scan need not be sorted and is not changed.

    Raises:
        TypeError / ValueError: a scan not shaped as :func:`scan_layers` returns it,
            ``baseline_accuracy`` or ``max_drop`` outside [0, 1].
    """
    check_scan(scan)
    check_real(baseline_accuracy, "baseline_accuracy", 0, 1)
    check_real(max_drop, "max_drop", 0, 1)
    chosen = {}
    for layer, points in scan.items():
        good = [setting for setting, accuracy in points if accuracy >= baseline_accuracy - max_drop]
        chosen[layer] = most_aggressive(good) if good else fallback([setting for setting, _ in points])
    return chosen


def greedy_knapsack(options: dict[str, Sequence[tuple[Hashable, float, float]]], budget: float,
                    rest: float = 0.0) -> dict[str, Hashable]:
    """A setting per layer so that ``rest`` plus the layers' sizes is at most ``budget``, at
    the least accuracy cost by a greedy rule.

    ``options[layer]`` lists ``(setting, accuracy, size)`` from the mildest setting (largest
    size) to the most aggressive: accuracy with that layer alone compressed so (a scan), size
    in the budget's unit (bytes, weights). Every layer starts at its first option; while the
    total is over budget, the layer whose next option loses the least accuracy per unit saved,
    :math:`(a_i - a_{i+1}) / \\max(s_i - s_{i+1}, 1)`, takes that step (ties: the layer listed
    first). Greedy, not optimal: each step looks one option ahead.

    Raises:
        ValueError: a layer with no options; a budget that even the last options exceed (the
            message gives the smallest total).
    """
    for layer, layer_options in options.items():
        if not layer_options:
            raise ValueError(f"options[{layer!r}] holds no (setting, accuracy, size) option")
    step = {layer: 0 for layer in options}

    def total() -> float:
        return rest + sum(options[layer][i][2] for layer, i in step.items())

    while total() > budget:
        best = None
        for layer, i in step.items():
            if i + 1 == len(options[layer]):
                continue
            (_, accuracy, size), (_, next_accuracy, next_size) = options[layer][i], options[layer][i + 1]
            cost = (accuracy - next_accuracy) / max(size - next_size, 1)
            if best is None or cost < best[0]:
                best = (cost, layer)
        if best is None:
            raise ValueError(f"the budget {budget:g} cannot be met even with every layer at its last option "
                             f"({total():g} needed)")
        step[best[1]] += 1
    return {layer: options[layer][i][0] for layer, i in step.items()}
