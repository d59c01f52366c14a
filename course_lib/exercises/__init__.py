"""The notebooks' exercises: a reference and a checker for each, the fallback that keeps a
notebook running while an exercise is unwritten, and the command that builds the student
notebooks.

An exercise cell decorates the learner's function with :func:`falls_back_to` and the course's
reference; while the function's body still raises ``NotImplementedError`` (as in the student
version), calls return the reference's answer after one printed note, so the rest of the
notebook runs::

    @exercises.falls_back_to(exercises.magnitude_prune_reference)
    def magnitude_prune(weight, sparsity):
        # BEGIN SOLUTION
        ...
        # END SOLUTION

    prune_check = exercises.check_magnitude_prune(magnitude_prune)   # tests the learner's code

A checker runs the learner's own code (never the fallback) on small hand-made cases and returns
a :class:`CheckResult` with one of three statuses:

* ``"pass"``;
* ``"fail"``, with a hint that names the mistake: checkers recognise the *typical* wrong answers
  (a formula missing its bias, ``int()`` where ``round()`` belongs, the input modified in place,
  ``None`` returned, float codes where integers belong...), not just a mismatch;
* ``"not attempted"``: the learner's code still raises ``NotImplementedError``; the notebook uses
  the reference.

A check cell asserts with :func:`assert_no_failures` (exercises not attempted are allowed).

Notebooks hold their solutions between ``# BEGIN SOLUTION`` and ``# END SOLUTION``; the student
version replaces a block inside a function with ``raise NotImplementedError``, removes a block
outside any function (e.g. solution-only asserts), and clears all outputs::

    python3 -m course_tools.student notebooks --out student

(the builder is course tooling, in :mod:`course_tools.student`).
"""

from .checking import (FAIL, NOT_ATTEMPTED, PASS, CheckResult, assert_no_failures, call_learner_function,
                       check_returned, check_unchanged, falls_back_to, learner_code)
from .efficiency import check_conv_cost, check_storage_bytes, conv_cost_reference, storage_bytes_reference
from .channels import (check_remove_channels, check_select_channels, remove_channels_reference,
                       select_channels_reference)
from .codebook import check_kmeans_quantize, kmeans_quantize_reference
from .lowrank import (check_choose_rank, check_factorize_linear, check_lora_forward, check_svd_factors,
                      check_tucker2, choose_rank_reference, factorize_linear_reference, lora_forward_reference,
                      svd_factors_reference, tucker2_reference)
from .mixed_precision import check_bits_for_budget, bits_for_budget_reference
from .pruning import (check_choose_sparsities, check_cubic_sparsity, check_magnitude_prune,
                      choose_sparsities_reference, cubic_sparsity_reference, magnitude_prune_reference)
from .quantization import (MinMaxObserverReference, check_integer_linear, check_linear_quantize,
                           check_minmax_observer, integer_linear_reference, linear_dequantize_reference,
                           linear_quantize_reference)

# notebook 03
from .distillation import (check_choose_bias_shift, check_distillation_loss, check_ensemble_logits,
                           check_softmax_with_temperature, choose_bias_shift_reference,
                           distillation_loss_reference, ensemble_logits_reference,
                           softmax_with_temperature_reference)

# notebook 06
from .model_distillation import (agreement_and_accuracy_reference, check_agreement_and_accuracy,
                                 check_leaf_probabilities, check_mimic_loss, check_nearest_neighbours,
                                 leaf_probabilities_reference, mimic_loss_reference, nearest_neighbours_reference)

# notebook 09 (the language model)
from .language import (check_gptq_columns, check_pack_int4, check_quantize_groups, check_quantize_kv,
                       check_wanda_2_4_mask, gptq_columns_reference, pack_int4_reference, quantize_groups_reference,
                       quantize_kv_reference, wanda_2_4_mask_reference)

# notebook 10 (the capstone)
from .capstone import (check_huffman_code_lengths, check_layer_compression_ratio, check_relative_index,
                       huffman_code_lengths_reference, layer_compression_ratio_reference,
                       relative_index_reference)

# notebook 05
from .architectures import (InvertedResidualReference, channel_shuffle_reference, check_channel_shuffle,
                            check_inverted_residual, check_make_divisible, check_pareto_front,
                            check_separable_costs, inverted_residual_state_dict, make_divisible_reference,
                            pareto_front_reference, separable_costs_reference)

# notebooks 07 and 08
from . import nas
from .nas import (check_hypervolume, check_kendall_tau, check_layer_bits, check_mcnemar_p, check_mutate_choices, check_naswot_score,
                  check_reinforce_update, check_violated_limits, hypervolume_reference, kendall_tau_reference,
                  layer_bits_reference, mcnemar_p_reference, mutate_choices_reference, naswot_score_reference, reinforce_update_reference,
                  violated_limits_reference)

__all__ = [
    # the mechanism
    "CheckResult", "PASS", "FAIL", "NOT_ATTEMPTED", "assert_no_failures", "falls_back_to", "learner_code",
    "call_learner_function", "check_returned", "check_unchanged",
    # notebook 00
    "check_conv_cost", "conv_cost_reference", "check_storage_bytes", "storage_bytes_reference",
    # notebook 01
    "check_magnitude_prune", "magnitude_prune_reference", "check_cubic_sparsity", "cubic_sparsity_reference",
    "check_select_channels", "select_channels_reference", "check_remove_channels", "remove_channels_reference",
    "check_choose_sparsities", "choose_sparsities_reference",
    # notebook 02
    "check_linear_quantize", "linear_quantize_reference", "linear_dequantize_reference",
    "check_minmax_observer", "MinMaxObserverReference", "check_integer_linear", "integer_linear_reference",
    "check_kmeans_quantize", "kmeans_quantize_reference", "check_bits_for_budget", "bits_for_budget_reference",
    # notebook 03
    "check_softmax_with_temperature", "softmax_with_temperature_reference", "check_distillation_loss",
    "distillation_loss_reference", "check_ensemble_logits", "ensemble_logits_reference",
    "check_choose_bias_shift", "choose_bias_shift_reference",
    # notebook 04
    "check_svd_factors", "svd_factors_reference", "check_factorize_linear", "factorize_linear_reference",
    "check_choose_rank", "choose_rank_reference", "check_tucker2", "tucker2_reference",
    "check_lora_forward", "lora_forward_reference",
    # notebook 06
    "check_agreement_and_accuracy", "agreement_and_accuracy_reference", "check_mimic_loss", "mimic_loss_reference",
    "check_leaf_probabilities", "leaf_probabilities_reference", "check_nearest_neighbours",
    "nearest_neighbours_reference",
    # notebook 05
    "check_separable_costs", "separable_costs_reference", "check_inverted_residual", "InvertedResidualReference",
    "inverted_residual_state_dict", "check_channel_shuffle", "channel_shuffle_reference", "check_make_divisible",
    "make_divisible_reference", "check_pareto_front", "pareto_front_reference",
    # notebook 09 (the language model)
    "check_quantize_groups", "quantize_groups_reference", "check_pack_int4", "pack_int4_reference",
    "check_gptq_columns", "gptq_columns_reference", "check_wanda_2_4_mask", "wanda_2_4_mask_reference",
    "check_quantize_kv", "quantize_kv_reference",
    # notebooks 07 and 08
    "nas", "check_mutate_choices", "mutate_choices_reference", "check_reinforce_update",
    "reinforce_update_reference", "check_hypervolume", "hypervolume_reference",
    "check_kendall_tau", "kendall_tau_reference", "check_mcnemar_p", "mcnemar_p_reference", "check_naswot_score",
    "naswot_score_reference", "check_layer_bits",
    "layer_bits_reference",
    "check_violated_limits", "violated_limits_reference",
    # notebook 10
    "check_huffman_code_lengths", "huffman_code_lengths_reference", "check_layer_compression_ratio",
    "layer_compression_ratio_reference", "check_relative_index", "relative_index_reference",
]
