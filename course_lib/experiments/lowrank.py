"""The experiment behind notebook 04's panel (:func:`course_lib.widgets.lowrank_panel`):
factorise one layer of a zoo model and measure it, without training."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .. import data, hardware, measure, zoo
from ..checks import check_choice, check_int
from ..lowrank.layers import factorize_model
from ..measure import weight_layers
from ..train import evaluate
from .choices import check_panel_model

__all__ = ["LowRankExperiment", "lowrank_experiment"]

# ----------------------------------------------------------------------------- the experiment of notebook 04's panel

@dataclass(frozen=True)
class LowRankExperiment:
    """What factorising one layer of a zoo model did, before any fine-tuning."""
    model_name: str
    layer: str
    rank: int | tuple[int, int]           # an int for a Linear (SVD), (rank, rank) for a Conv2d (Tucker-2)
    baseline_accuracy: float              # on the validation subset
    accuracy: float                       # on the validation subset, factorised, not fine-tuned
    report: measure.ModelReport           # of the factorised model
    baseline_report: measure.ModelReport
    verdict: hardware.Verdict             # of the factorised model

    def _layer_counts(self, report: measure.ModelReport) -> tuple[int, int]:
        """(parameters, MACs) of the layer, or of the layers that replaced it."""
        traces = [t for t in report.layers if t.name == self.layer or t.name.startswith(self.layer + ".")]
        return sum(t.parameters for t in traces), sum(t.macs for t in traces)

    def lines(self) -> list[str]:
        """The result in words, one line each (what the panel shows)."""
        r, b = self.report, self.baseline_report
        how = "truncated SVD" if isinstance(self.rank, int) else "Tucker-2"
        (layer_params, layer_macs), (base_params, base_macs) = self._layer_counts(r), self._layer_counts(b)
        return [f"{self.model_name}, {self.layer} factorised by {how} at rank {self.rank}, no fine-tuning: "
                f"validation accuracy {100 * self.accuracy:.2f}% (baseline {100 * self.baseline_accuracy:.2f}%)",
                f"{self.layer}: {layer_params:,} parameters (was {base_params:,}, {base_params / layer_params:.2f}x "
                f"fewer), {layer_macs:,} MACs (was {base_macs:,})",
                f"model: {r.parameters:,} parameters (was {b.parameters:,}), {r.macs:,} MACs (was {b.macs:,}), "
                f"weights {measure.format_bytes(r.weight_bytes)} (was {measure.format_bytes(b.weight_bytes)})",
                *hardware.verdict_lines(self.verdict)]


def lowrank_experiment(model_name: str, layer: str, rank: int, device_name: str,
                       n_validation: int = 2000) -> LowRankExperiment:
    """Factorise one layer of a zoo model and measure it, without training (fast enough to
    follow a slider): a Linear by truncated SVD at ``rank``, a Conv2d by Tucker-2 at
    (``rank``, ``rank``). Accuracy on the first ``n_validation`` validation images, the report
    of both models, fit and estimated latency on the device.

    Raises:
        ValueError: an unknown model, layer or device; ``rank`` out of range for the layer
            (named as :func:`factorize_model` names it); ``n_validation`` outside [1, 5000].
        TypeError: arguments of the wrong type.
    """
    check_panel_model(model_name)
    device = hardware.get_device(device_name)
    baseline = zoo.load(model_name)
    check_choice(layer, "layer", list(weight_layers(baseline)))
    validation = data.load(zoo.dataset_of(model_name), "validation")
    check_int(n_validation, "n_validation", 1, len(validation))
    validation = validation.subset(n_validation)
    ranks = rank if isinstance(baseline.get_submodule(layer), nn.Linear) else (rank, rank)
    factorized = factorize_model(baseline, {layer: ranks}, method="tucker2")
    report = measure.report(factorized, model_name)
    return LowRankExperiment(
        model_name, layer, ranks, evaluate(baseline, validation).accuracy,
        evaluate(factorized, validation).accuracy, report, measure.report(baseline, model_name),
        hardware.check_fit(report, device))
