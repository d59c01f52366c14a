"""Notebook 01's panel: prune a zoo model, fine-tune it briefly, and measure it."""

from __future__ import annotations

from dataclasses import dataclass

from .. import data, hardware, measure, zoo
from ..checks import check_choice, check_int
from ..pruning import (
    SCOPES,
    check_sparsity,
    masks_hook,
    prunable_layers,
    prune_channels,
    prune_weights,
)
from ..train import TrainingSettings, evaluate, fine_tune
from .choices import check_panel_model

__all__ = ["PRUNING_METHODS", "PRUNING_METHOD_NAMES", "PruningExperiment", "pruning_experiment"]

# Magnitude pruning in either scope (``"layer"``: one sparsity per layer; ``"global"``: one threshold for the
# model, as :func:`course_lib.pruning.prune_weights`), or structured pruning of whole channels.
PRUNING_METHODS = (*SCOPES, "channel")
PRUNING_METHOD_NAMES = {"layer": "magnitude pruning, one sparsity per layer",
                        "global": "magnitude pruning, one global threshold",
                        "channel": "channel pruning"}


@dataclass(frozen=True)
class PruningExperiment:
    """What pruning a zoo model did: accuracy, storage, fit on a device, measured speedup."""
    model_name: str
    method: str
    sparsity: float
    baseline_accuracy: float      # on the validation split
    accuracy: float               # on the validation split
    report: measure.ModelReport   # of the pruned model, weights in their best encoding
    dense_bytes: int              # of the baseline, fp32 dense
    verdict: hardware.Verdict
    speedup: measure.Speedup | None

    def lines(self) -> list[str]:
        """The result in words, one line each (what the panel shows)."""
        r = self.report
        lines = [f"{self.model_name}, {PRUNING_METHOD_NAMES[self.method]} at sparsity {self.sparsity:.2f}: validation "
                 f"accuracy {100 * self.accuracy:.2f}% (baseline {100 * self.baseline_accuracy:.2f}%)",
                 f"nonzero weights {r.nonzeros:,} of {r.parameters:,}; {r.macs:,} MACs; stored in "
                 f"{measure.format_bytes(r.weight_bytes)} ({r.encoding}) vs "
                 f"{measure.format_bytes(self.dense_bytes)} dense fp32",
                 *hardware.verdict_lines(self.verdict, " with dense kernels")]
        if self.speedup is not None:
            lines.append(f"Measured here, batch {self.speedup.baseline.batch_size}: "
                         f"{1000 * self.speedup.candidate.median:.3f} ms vs "
                         f"{1000 * self.speedup.baseline.median:.3f} ms dense: speedup "
                         f"{self.speedup.ratio:.2f}x")
        return lines


def pruning_experiment(model_name: str, method: str, sparsity: float, device_name: str,
                       fine_tune_epochs: int = 0, fine_tune_examples: int = 10_000,
                       measure_speed: bool = True, seed: int = 0) -> PruningExperiment:
    """Prune a zoo model, optionally fine-tune it briefly on training images, and measure it:
    validation accuracy, bytes in the best encoding, fit and estimated latency on a device,
    and the speedup measured here.

    ``method``: magnitude pruning in the scope ``"layer"`` or ``"global"`` (masks held while
    fine-tuning), or ``"channel"``: every hidden layer loses the fraction ``sparsity`` of its
    channels by L1 norm, giving a smaller dense network.
    """
    check_panel_model(model_name)
    check_choice(method, "method", PRUNING_METHODS)
    check_sparsity(sparsity)
    check_int(fine_tune_epochs, "fine_tune_epochs", 0)
    check_int(fine_tune_examples, "fine_tune_examples", 1)
    device = hardware.get_device(device_name)
    baseline = zoo.load(model_name)
    dataset = zoo.dataset_of(model_name)
    validation = data.load(dataset, "validation")
    if method == "channel":
        hidden = list(prunable_layers(baseline))[:-1]
        pruned = prune_channels(baseline, {n: sparsity for n in hidden})
        hook = None
    else:
        pruned, masks = prune_weights(baseline, sparsity, method)
        hook = masks_hook(masks)
    if fine_tune_epochs:
        subset = data.load(dataset, "train").sample(fine_tune_examples)
        fine_tune(pruned, subset, TrainingSettings(epochs=fine_tune_epochs, lr=1e-3, seed=seed), after_step=hook,
                  progress=False)
    encoding = "dense" if method == "channel" else "best"
    report = measure.report(pruned, model_name, encoding=encoding)
    speed = measure.speedup(baseline, pruned, batch_size=64, repeats=20) if measure_speed else None
    return PruningExperiment(
        model_name, method, sparsity, evaluate(baseline, validation).accuracy,
        evaluate(pruned, validation).accuracy, report, measure.weight_bytes(baseline, "fp32"),
        hardware.check_fit(report, device), speed)
