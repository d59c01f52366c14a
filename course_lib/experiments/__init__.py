"""The panels' experiments: each loads models from the zoo and runs one technique's workflow for a
notebook's panel (prune and measure, quantize and time, distil and score...), returning a result
whose ``lines()`` the panel shows.

This layer sits above the technique modules and the zoo, and below :mod:`course_lib.widgets`: the
techniques never import it, so a learner reads each technique without the panel's plumbing.

* :mod:`.choices`: the zoo models the panels can run, derived from what each model is;
  :mod:`.pruning`: notebook 01; :mod:`.quantization`: notebook 02; :mod:`.distillation`: notebook 03;
  :mod:`.lowrank`: notebook 04; :mod:`.language`: notebook 09; :mod:`.architectures`: notebook 05; :mod:`.model_distillation`:
  notebook 06; :mod:`.nas`: notebook 07.
"""

from .architectures import (
                                 DESIGNS,
                                 TRAINED_WIDTHS,
                                 ArchitectureExperiment,
                                 architecture_experiment,
)
from .choices import check_panel_model, panel_models, pruning_methods, takes_images
from .distillation import DistillationExperiment, distillation_experiment
from .language import (PANEL_CONTEXTS, PANEL_WEIGHTS, PANEL_WINDOWS, BpcComparison, LanguageDeployment,
                       calibration_windows, compare_bpc, language_deployment, language_experiment)
from .lowrank import LowRankExperiment, lowrank_experiment
from .model_distillation import (
                                 EXPERIMENT_BATCH_SIZE,
                                 EXPERIMENT_LR,
                                 FAMILIES,
                                 SIZES,
                                 ModelDistillationExperiment,
                                 model_distillation_experiment,
)
from .nas import (
                                 PANEL_BUDGET,
                                 PANEL_FLASH_KB,
                                 PANEL_LATENCY_MS,
                                 PANEL_SRAM_KB,
                                 CachedObjective,
                                 NasExperiment,
                                 nas_experiment,
                                 panel_devices,
                                 panel_evaluator,
)
from .pruning import PRUNING_METHOD_NAMES, PRUNING_METHODS, PruningExperiment, pruning_experiment
from .quantization import QuantizationExperiment, quantization_experiment

__all__ = [
    "check_panel_model", "panel_models", "pruning_methods", "takes_images",
    "DESIGNS", "TRAINED_WIDTHS", "ArchitectureExperiment", "architecture_experiment",
    "DistillationExperiment", "distillation_experiment",
    "PANEL_CONTEXTS", "PANEL_WEIGHTS", "PANEL_WINDOWS", "BpcComparison", "LanguageDeployment", "calibration_windows",
    "compare_bpc", "language_deployment", "language_experiment",
    "LowRankExperiment", "lowrank_experiment",
    "EXPERIMENT_BATCH_SIZE", "EXPERIMENT_LR", "FAMILIES", "SIZES", "ModelDistillationExperiment",
    "model_distillation_experiment",
    "PANEL_BUDGET", "PANEL_FLASH_KB", "PANEL_LATENCY_MS", "PANEL_SRAM_KB", "CachedObjective", "NasExperiment",
    "nas_experiment", "panel_devices", "panel_evaluator",
    "PRUNING_METHODS", "PRUNING_METHOD_NAMES", "PruningExperiment", "pruning_experiment",
    "QuantizationExperiment", "quantization_experiment",
]
