"""Low-rank approximation: replace a layer by a product of thinner ones.

The survey's §5. A trained weight matrix is redundant: most of its action lies in a few
directions, so it can be replaced by a product of two thin matrices (or, for a convolution, a
short chain of cheaper convolutions) that stores and computes less. Each submodule's docstring
gives the maths; they are listed bottom-up, each using only the ones above it:

* :mod:`~course_lib.lowrank.svd`: the truncated SVD :math:`W \\approx AB` of a weight (m, n),
  its Eckart–Young error :math:`\\sqrt{\\sum_{i>r} \\sigma_i^2}`, the energy kept at each rank,
  and the sizes :math:`r(m+n)` against :math:`mn` (Xue, Li & Gong 2013; Denton et al. 2014).
* :mod:`~course_lib.lowrank.tensors`: factorisations of a conv kernel (C_out, C_in, kh, kw):
  Tucker-2 by HOSVD / HOOI (Kim et al. 2016), CP by alternating least squares (Lebedev et al.
  2015), and the vertical-then-horizontal split (Jaderberg, Vedaldi & Zisserman 2014).
* :mod:`~course_lib.lowrank.layers`: Linear and Conv2d layers rebuilt from those factors,
  :func:`factorize_model`, the spectra of a model's layers, and ranks chosen by energy, by a
  parameter budget or by an accuracy scan.
* :mod:`~course_lib.lowrank.lora`: low-rank adaptation (Hu et al. 2021, "LoRA"): a frozen
  layer plus a trainable update :math:`\\frac{\\alpha}{r} BA`.

Primitives take tensors and return new tensors; the layer and model transforms return new
modules and leave the given ones untouched. A factorised layer is an ``nn.Sequential`` of plain
``Linear`` / ``Conv2d`` layers, so :mod:`course_lib.measure` counts its parameters and MACs as it
counts any other model. Every public name is importable from here, ``lowrank.factorize_model``.
Taught in ``notebooks/04_low_rank.ipynb``.
"""

from .svd import (approximation_error_bound, break_even_rank, energy_kept, lowrank_parameters, rank_for_energy,
                  svd_factors)
from .tensors import cp_als, cp_reconstruct, spatial_factors, tucker2, tucker2_reconstruct
from .layers import (FACTORIZATION_METHODS, factorize_conv_cp, factorize_conv_spatial, factorize_conv_tucker2,
                     factorize_linear, factorize_model, layer_singular_values, rank_scan, ranks_for_budget,
                     ranks_for_energy)
from .lora import LoRALinear, add_lora, count_trainable

__all__ = [
    # svd
    "svd_factors", "approximation_error_bound", "energy_kept", "rank_for_energy", "lowrank_parameters",
    "break_even_rank",
    # tensors
    "tucker2", "tucker2_reconstruct", "cp_als", "cp_reconstruct", "spatial_factors",
    # layers
    "FACTORIZATION_METHODS", "factorize_linear", "factorize_conv_tucker2", "factorize_conv_cp",
    "factorize_conv_spatial", "factorize_model", "layer_singular_values", "ranks_for_energy",
    "ranks_for_budget", "rank_scan",
    # lora
    "LoRALinear", "add_lora", "count_trainable",
]
