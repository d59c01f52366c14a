"""Low-rank approximation: replace a layer by a product of thinner ones.

The survey's §5. A trained weight matrix is redundant: most of its action lies in a few
directions, so it can be replaced by a product of two thin matrices (or, for a convolution, a
short chain of cheaper convolutions) that stores and computes less.

**Truncated SVD of a fully connected layer.** A weight :math:`W \\in \\mathbb{R}^{m \\times n}`
(``out x in``) has the singular value decomposition :math:`W = U \\Sigma V^\\top`, with
:math:`\\sigma_1 \\ge \\sigma_2 \\ge \\dots \\ge 0`. Keeping the first :math:`r` terms,

.. math:: W \\approx A B, \\qquad A = U_r \\Sigma_r \\;(m \\times r), \\quad B = V_r^\\top \\;(r \\times n),

and the layer :math:`y = Wx + b` becomes two layers, :math:`y = A(Bx) + b`. By the
Eckart–Young theorem (1936) no rank-:math:`r` matrix is closer to :math:`W` in Frobenius norm, and
the error is exactly :math:`\\|W - AB\\|_F = \\sqrt{\\sum_{i>r} \\sigma_i^2}`. The fraction of the
*energy* kept is :math:`\\sum_{i\\le r}\\sigma_i^2 / \\sum_i \\sigma_i^2`. The two layers hold
:math:`r(m+n)` weights and cost :math:`r(m+n)` MACs per input instead of :math:`mn`, so they are
smaller only below the *break-even rank* :math:`r < mn/(m+n)`. Xue, Li & Gong (2013),
"Restructuring of Deep Neural Network Acoustic Models with Singular Value Decomposition", shrank
a speech model by 80 % this way, with fine-tuning, at no loss; Denton et al. (2014), "Exploiting
Linear Structure Within Convolutional Networks for Efficient Evaluation", did the same for the
layers of an ImageNet network.

**Convolutions** have a 4-D kernel :math:`K \\in \\mathbb{R}^{C_{out} \\times C_{in} \\times k_h
\\times k_w}`; three factorisations turn one convolution into a sequence of smaller ones:

* **Tucker-2** (Kim et al. 2016, "Compression of Deep Convolutional Neural Networks for Fast and
  Low Power Mobile Applications"): compress only the two channel modes,
  :math:`K \\approx \\mathcal{G} \\times_0 U_{out} \\times_1 U_{in}`, with
  :math:`U_{out} \\in \\mathbb{R}^{C_{out} \\times R_{out}}`, :math:`U_{in} \\in \\mathbb{R}^{C_{in} \\times R_{in}}`
  and a core :math:`\\mathcal{G} \\in \\mathbb{R}^{R_{out} \\times R_{in} \\times k_h \\times k_w}`.
  The HOSVD takes each :math:`U` as the leading left singular vectors of the kernel unfolded
  along that mode, then :math:`\\mathcal{G} = K \\times_0 U_{out}^\\top \\times_1 U_{in}^\\top`;
  HOOI (higher-order orthogonal iteration) refines the two alternately. The layer becomes
  1x1 (:math:`C_{in} \\to R_{in}`), then :math:`k_h \\times k_w` (:math:`R_{in} \\to R_{out}`), then 1x1
  (:math:`R_{out} \\to C_{out}`).
* **CP** (Lebedev et al. 2015, "Speeding-up Convolutional Neural Networks Using Fine-tuned
  CP-Decomposition"): a sum of :math:`R` rank-one tensors,
  :math:`K_{oihw} \\approx \\sum_r A_{or} B_{ir} C_{hr} D_{wr}`, fitted by alternating least
  squares. The layer becomes 1x1 (:math:`C_{in} \\to R`), a depthwise :math:`k_h \\times 1`, a
  depthwise :math:`1 \\times k_w`, then 1x1 (:math:`R \\to C_{out}`).
* **Spatial** (Jaderberg, Vedaldi & Zisserman 2014, "Speeding up Convolutional Neural Networks
  with Low Rank Expansions", scheme 2): the kernel rearranged to a matrix
  :math:`(C_{in} k_h) \\times (C_{out} k_w)` and truncated by SVD gives a vertical
  :math:`k_h \\times 1` convolution to :math:`R` channels, then a horizontal :math:`1 \\times k_w`
  one to :math:`C_{out}` (2.5x faster at no loss in their paper).

**Low-rank adaptation** (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models")
turns the idea around: the weight stays, frozen, and only a rank-:math:`r` update is trained,
:math:`y = W x + b + \\frac{\\alpha}{r} B A x` with :math:`A \\in \\mathbb{R}^{r \\times n}`,
:math:`B \\in \\mathbb{R}^{m \\times r}` (:math:`B = 0` at first, so training starts from the base
model): :math:`r(m + n)` trainable numbers instead of :math:`mn`.

Primitives take tensors and return new tensors; the layer and model transforms return new
modules and leave the given ones untouched. A factorised layer is an ``nn.Sequential`` of plain
``Linear`` / ``Conv2d`` layers, so :mod:`course_lib.measure` counts its parameters and MACs as it
counts any other model. Taught in ``notebooks/04_low_rank.ipynb``.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from . import data, hardware, measure, zoo
from .checks import check_choice, check_finite, check_int, check_model, check_real, check_tensor, check_type
from .data import SEED_RANGE, ImageSplit, check_split
from .measure import weight_layers
from .train import evaluate

FACTORIZATION_METHODS = ("svd", "tucker2", "cp", "spatial")   # "svd": Linear layers only


def _check_matrix(W: torch.Tensor, name: str = "W") -> None:
    """A non-empty 2-D floating-point tensor of finite values."""
    check_tensor(W, name)
    if W.dim() != 2 or W.numel() == 0 or not W.is_floating_point():
        raise ValueError(f"{name} must be a non-empty 2-D float tensor (out, in), got shape "
                         f"{tuple(W.shape)} of {W.dtype}")
    check_finite(W, name, "a factorisation of NaN or inf weights is meaningless")


def _check_kernel(K: torch.Tensor, name: str = "K") -> None:
    """A non-empty 4-D floating-point conv kernel (C_out, C_in, kh, kw) of finite values."""
    check_tensor(K, name)
    if K.dim() != 4 or K.numel() == 0 or not K.is_floating_point():
        raise ValueError(f"{name} must be a non-empty 4-D float conv kernel (C_out, C_in, kh, kw), "
                         f"got shape {tuple(K.shape)} of {K.dtype}")
    check_finite(K, name, "a factorisation of NaN or inf weights is meaningless")


def _check_singular_values(s: torch.Tensor) -> None:
    """A non-empty vector of finite, non-negative numbers, not all zero."""
    check_tensor(s, "singular_values")
    if s.dim() != 1 or s.numel() == 0 or not s.is_floating_point():
        raise ValueError(f"singular_values must be a non-empty 1-D float tensor, got shape "
                         f"{tuple(s.shape)} of {s.dtype}")
    check_finite(s, "singular_values")
    if (s < 0).any() or not (s > 0).any():
        raise ValueError("singular_values must be >= 0 and not all zero (from torch.linalg.svdvals)")


def _working_copy(t: torch.Tensor) -> torch.Tensor:
    """A detached copy the linear algebra can run on (torch's SVD has no fp16 / bf16 kernel)."""
    t = t.detach()
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


# ----------------------------------------------------------------------------- SVD primitives

def svd_factors(W: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The best rank-``rank`` factorisation :math:`W \\approx A B` (Eckart–Young):
    :math:`A = U_r \\Sigma_r` (m, r) and :math:`B = V_r^\\top` (r, n), from
    ``torch.linalg.svd(W, full_matrices=False)``. Its error :math:`\\|W - AB\\|_F` is
    :func:`approximation_error_bound` of ``W``'s singular values.

    Args:
        W: (m, n) = (out, in) float tensor, finite. Not modified.
        rank: an int in [1, min(m, n)].

    Returns:
        (A, B), new tensors of ``W``'s dtype and device.

    Raises:
        TypeError: ``W`` not a tensor, ``rank`` not an int. ValueError: ``W`` not 2-D float or
            holding NaN / inf; ``rank`` out of range.
    """
    _check_matrix(W)
    check_int(rank, "rank", 1, min(W.shape))
    U, S, Vh = torch.linalg.svd(_working_copy(W), full_matrices=False)   # (m, k), (k,), (k, n)
    A = U[:, :rank] * S[:rank]          # (m, r): each column u_i scaled by sigma_i
    B = Vh[:rank]                       # (r, n)
    return A.to(W.dtype).clone(), B.to(W.dtype).clone()


def approximation_error_bound(singular_values: torch.Tensor, rank: int) -> float:
    """The Eckart–Young error of the best rank-``rank`` approximation,
    :math:`\\sqrt{\\sum_{i > r} \\sigma_i^2}` (``rank = 0``: the whole norm :math:`\\|W\\|_F`).

    Args:
        singular_values: (k,) in decreasing order, as ``torch.linalg.svdvals`` returns them.
        rank: an int in [0, k].

    Raises:
        TypeError / ValueError: a bad vector (not 1-D, negative, NaN, all zero) or ``rank``.
    """
    _check_singular_values(singular_values)
    check_int(rank, "rank", 0, len(singular_values))
    discarded = singular_values.detach().double()[rank:]
    return math.sqrt(float((discarded ** 2).sum()))


def energy_kept(singular_values: torch.Tensor) -> torch.Tensor:
    """The fraction of energy kept at each rank,
    :math:`e_r = \\sum_{i \\le r} \\sigma_i^2 / \\sum_i \\sigma_i^2` for r = 1..k: a (k,) float64
    tensor, non-decreasing, its last entry exactly 1. Index ``r - 1`` is rank ``r``.

    Raises:
        TypeError / ValueError: as :func:`approximation_error_bound`.
    """
    _check_singular_values(singular_values)
    cumulative = torch.cumsum(singular_values.detach().double() ** 2, 0)
    return cumulative / cumulative[-1]


def rank_for_energy(singular_values: torch.Tensor, energy: float) -> int:
    """The smallest rank whose kept energy (:func:`energy_kept`) is at least ``energy``.

    Example: :math:`\\sigma = (3, 2, 1)` keeps 9/14, 13/14, 1; 0.9 of the energy needs rank 2.

    Args:
        singular_values: (k,), as ``torch.linalg.svdvals`` returns them.
        energy: a number in (0, 1].

    Raises:
        TypeError: ``energy`` not a number. ValueError: ``energy`` outside (0, 1], a bad vector.
    """
    check_real(energy, "energy", 0, 1, low_open=True)
    kept = energy_kept(singular_values)
    return int((kept < energy).sum()) + 1      # ranks below the target, plus one


def lowrank_parameters(m: int, n: int, rank: int) -> int:
    """Weights (and MACs per input) of an (m, n) layer factorised at ``rank``: :math:`r(m + n)`.

    Raises:
        TypeError / ValueError: ``m``, ``n`` not ints >= 1; ``rank`` not an int in [1, min(m, n)].
    """
    check_int(m, "m", 1)
    check_int(n, "n", 1)
    check_int(rank, "rank", 1, min(m, n))
    return rank * (m + n)


def break_even_rank(m: int, n: int) -> int:
    """The largest rank at which the factorised layer is smaller than the dense one,
    :math:`\\max\\{r : r(m+n) < mn\\}` (784 x 300: 216). 0 when no rank saves anything (a 2 x 2).

    Raises:
        TypeError / ValueError: ``m``, ``n`` not ints >= 1.
    """
    check_int(m, "m", 1)
    check_int(n, "n", 1)
    return (m * n - 1) // (m + n)


# ----------------------------------------------------------------------------- conv kernel primitives

def _unfold(K: torch.Tensor, mode: int) -> torch.Tensor:
    """Mode-``mode`` unfolding: (K.shape[mode], product of the other sizes), as TensorLy's."""
    return K.movedim(mode, 0).reshape(K.shape[mode], -1)


def _leading_left_singular_vectors(M: torch.Tensor, rank: int) -> torch.Tensor:
    """The ``rank`` leading left singular vectors of M (rows, cols) as columns: (rows, rank).
    When rank exceeds min(rows, cols) the full U supplies orthonormal extra columns."""
    U = torch.linalg.svd(M, full_matrices=rank > min(M.shape)).U
    return U[:, :rank]


def tucker2(K: torch.Tensor, rank_out: int, rank_in: int,
            iterations: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tucker-2 decomposition of a conv kernel on its two channel modes (Kim et al. 2016):
    :math:`K \\approx \\mathcal{G} \\times_0 U_{out} \\times_1 U_{in}`.

    HOSVD: :math:`U_{out}` holds the ``rank_out`` leading left singular vectors of the mode-0
    unfolding (C_out, C_in kh kw), :math:`U_{in}` the ``rank_in`` leading ones of the mode-1
    unfolding (C_in, C_out kh kw), and :math:`\\mathcal{G} = K \\times_0 U_{out}^\\top \\times_1
    U_{in}^\\top`. Each of the ``iterations`` HOOI sweeps then recomputes :math:`U_{out}` from
    :math:`K \\times_1 U_{in}^\\top` and :math:`U_{in}` from :math:`K \\times_0 U_{out}^\\top`,
    which never increases the error. Agrees with TensorLy's ``partial_tucker(K, (rank_out,
    rank_in), modes=[0, 1], init="svd", n_iter_max=iterations)`` (tested).

    Args:
        K: (C_out, C_in, kh, kw) float kernel, finite. Not modified.
        rank_out: an int in [1, C_out]. rank_in: an int in [1, C_in].
        iterations: HOOI sweeps, an int >= 0 (0: plain HOSVD).

    Returns:
        (core (rank_out, rank_in, kh, kw), U_out (C_out, rank_out), U_in (C_in, rank_in)), new
        tensors with orthonormal columns in U_out and U_in.

    Raises:
        TypeError / ValueError: a bad kernel (not 4-D, NaN), ranks or iterations out of range.
    """
    _check_kernel(K)
    C_out, C_in = K.shape[:2]
    check_int(rank_out, "rank_out", 1, C_out)
    check_int(rank_in, "rank_in", 1, C_in)
    check_int(iterations, "iterations", 0)
    X = _working_copy(K)
    U_out = _leading_left_singular_vectors(_unfold(X, 0), rank_out)           # (C_out, R_out)
    U_in = _leading_left_singular_vectors(_unfold(X, 1), rank_in)             # (C_in, R_in)
    for _ in range(iterations):
        # HOOI: the best U_out for the current U_in, then the best U_in for that U_out.
        U_out = _leading_left_singular_vectors(_unfold(torch.einsum("oihw,is->oshw", X, U_in), 0), rank_out)
        U_in = _leading_left_singular_vectors(_unfold(torch.einsum("oihw,or->rihw", X, U_out), 1), rank_in)
    core = torch.einsum("oihw,or,is->rshw", X, U_out, U_in)                   # (R_out, R_in, kh, kw)
    return core.to(K.dtype), U_out.to(K.dtype).contiguous(), U_in.to(K.dtype).contiguous()


def tucker2_reconstruct(core: torch.Tensor, U_out: torch.Tensor, U_in: torch.Tensor) -> torch.Tensor:
    """The kernel :math:`\\mathcal{G} \\times_0 U_{out} \\times_1 U_{in}`, (C_out, C_in, kh, kw).

    Raises:
        TypeError: an argument is not a tensor. ValueError: shapes that do not chain
            (core (R_out, R_in, kh, kw), U_out (C_out, R_out), U_in (C_in, R_in)).
    """
    for t, name in ((core, "core"), (U_out, "U_out"), (U_in, "U_in")):
        check_tensor(t, name)
    if core.dim() != 4 or U_out.dim() != 2 or U_in.dim() != 2 or \
            U_out.shape[1] != core.shape[0] or U_in.shape[1] != core.shape[1]:
        raise ValueError(f"expected core (R_out, R_in, kh, kw), U_out (C_out, R_out), U_in (C_in, R_in); "
                         f"got {tuple(core.shape)}, {tuple(U_out.shape)}, {tuple(U_in.shape)}")
    return torch.einsum("rshw,or,is->oihw", core, U_out, U_in)


def cp_als(K: torch.Tensor, rank: int, iterations: int = 50, seed: int = 0) -> list[torch.Tensor]:
    """CP decomposition of a conv kernel by alternating least squares (Lebedev et al. 2015):
    :math:`K_{oihw} \\approx \\sum_{r=1}^R A_{or} B_{ir} C_{hr} D_{wr}`.

    Start from random factors (drawn from a generator seeded with ``seed``); each sweep solves
    for one factor with the other three fixed, a linear least-squares problem whose solution is
    :math:`A = K_{(0)} (D \\odot C \\odot B) \\, \\big(B^\\top B \\ast C^\\top C \\ast D^\\top D\\big)^{+}`
    (the product of the unfolding with the Khatri–Rao product, written here as one ``einsum``;
    :math:`\\ast` is the element-wise product). Runs in float64; at the end each rank-one term's
    norm is shared equally by its four columns (the scale is arbitrary, balanced factors
    fine-tune better). Unlike the SVD, ALS finds a local optimum, not the best rank-R tensor.

    Args:
        K: (C_out, C_in, kh, kw) float kernel, finite. Not modified.
        rank: R, an int >= 1 (it may exceed every dimension).
        iterations: ALS sweeps, an int >= 1.
        seed: an int in [0, 2**32 - 1]; the global generator is not used.

    Returns:
        [A (C_out, R), B (C_in, R), C (kh, R), D (kw, R)], new tensors of ``K``'s dtype.

    Raises:
        TypeError / ValueError: a bad kernel, rank, iterations or seed.
    """
    _check_kernel(K)
    check_int(rank, "rank", 1)
    check_int(iterations, "iterations", 1)
    check_int(seed, "seed", *SEED_RANGE)
    X = K.detach().to(torch.float64)
    generator = torch.Generator().manual_seed(seed)
    factors = [torch.randn(size, rank, generator=generator, dtype=torch.float64).to(X.device)
               for size in X.shape]
    modes = "oihw"
    for _ in range(iterations):
        for mode in range(4):
            others = [k for k in range(4) if k != mode]
            # MTTKRP: (size of mode, R), the unfolding times the Khatri-Rao product of the others
            spec = f"oihw,{','.join(modes[k] + 'r' for k in others)}->{modes[mode]}r"
            mttkrp = torch.einsum(spec, X, *(factors[k] for k in others))
            gram = math.prod(factors[k].T @ factors[k] for k in others)         # (R, R)
            factors[mode] = mttkrp @ torch.linalg.pinv(gram)
    norms = torch.stack([f.norm(dim=0) for f in factors])                         # (4, R)
    share = norms.prod(0) ** 0.25                                                 # (R,)
    return [(f / norms[k].clamp(min=1e-300) * share).to(K.dtype) for k, f in enumerate(factors)]


def cp_reconstruct(factors: list[torch.Tensor]) -> torch.Tensor:
    """The kernel :math:`\\sum_r A_{or} B_{ir} C_{hr} D_{wr}` of four CP factors, (C_out, C_in, kh, kw).

    Raises:
        TypeError: not a list or tuple of four tensors. ValueError: not four 2-D factors with
            the same number of columns.
    """
    check_type(factors, "factors", (list, tuple), "a list of four factor matrices [A, B, C, D]")
    if len(factors) != 4:
        raise ValueError(f"factors must hold four matrices (C_out, R), (C_in, R), (kh, R), (kw, R), "
                         f"got {len(factors)}")
    for k, f in enumerate(factors):
        check_tensor(f, f"factors[{k}]")
    if any(f.dim() != 2 for f in factors) or len({f.shape[1] for f in factors}) != 1:
        raise ValueError(f"factors must be 2-D with the same number of columns R, got shapes "
                         f"{[tuple(f.shape) for f in factors]}")
    return torch.einsum("or,ir,hr,wr->oihw", *factors)


def spatial_factors(K: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Jaderberg et al. (2014)'s scheme 2: a vertical then a horizontal convolution.

    The kernel is rearranged into the matrix :math:`M_{(i,h),(o,w)} = K_{oihw}` of shape
    (C_in kh, C_out kw) and truncated by SVD, :math:`M \\approx (U_r \\Sigma_r^{1/2})(\\Sigma_r^{1/2} V_r^\\top)`
    (the square root shares the scale between the two). The first factor is a (rank, C_in, kh, 1)
    vertical kernel, the second a (C_out, rank, 1, kw) horizontal one. At rank
    min(C_in kh, C_out kw) the two convolutions reproduce the original exactly.

    Args:
        K: (C_out, C_in, kh, kw) float kernel, finite. Not modified.
        rank: an int in [1, min(C_in kh, C_out kw)].

    Returns:
        (vertical (rank, C_in, kh, 1), horizontal (C_out, rank, 1, kw)), new tensors.

    Raises:
        TypeError / ValueError: a bad kernel or rank.
    """
    _check_kernel(K)
    C_out, C_in, kh, kw = K.shape
    check_int(rank, "rank", 1, min(C_in * kh, C_out * kw))
    M = _working_copy(K).permute(1, 2, 0, 3).reshape(C_in * kh, C_out * kw)
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    root = S[:rank].sqrt()
    vertical = (U[:, :rank] * root).T.reshape(rank, C_in, kh, 1)
    horizontal = (root[:, None] * Vh[:rank]).reshape(rank, C_out, kw).permute(1, 0, 2).reshape(C_out, rank, 1, kw)
    return vertical.to(K.dtype).contiguous(), horizontal.to(K.dtype).contiguous()


# ----------------------------------------------------------------------------- factorised layers

def _with_weights(module: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None = None) -> nn.Module:
    """``module`` with its weight (and bias) set to copies of the given tensors."""
    with torch.no_grad():
        module.weight.copy_(weight)
        if bias is not None:
            module.bias.copy_(bias.detach())
    return module


def factorize_linear(layer: nn.Linear, rank: int) -> nn.Sequential:
    """A ``Linear`` (m outputs, n inputs) as two: ``project`` = Linear(n, r, no bias) with weight
    :math:`V_r^\\top`, then ``expand`` = Linear(r, m) with weight :math:`U_r\\Sigma_r` and the
    layer's bias (:func:`svd_factors`). :math:`r(m+n)` weights instead of :math:`mn`; at
    ``rank = min(m, n)`` it computes what the layer computes. The layer is not changed.

    Raises:
        TypeError: ``layer`` not an ``nn.Linear``; ``rank`` not an int.
        ValueError: ``rank`` outside [1, min(m, n)]; NaN or inf weights.
    """
    check_type(layer, "layer", nn.Linear, "an nn.Linear (use factorize_conv_* for a Conv2d)")
    A, B = svd_factors(layer.weight, rank)                            # (m, r), (r, n)
    like = {"device": layer.weight.device, "dtype": layer.weight.dtype}
    project = _with_weights(nn.Linear(layer.in_features, rank, bias=False, **like), B)
    expand = _with_weights(nn.Linear(rank, layer.out_features, bias=layer.bias is not None, **like),
                           A, layer.bias)
    return nn.Sequential(OrderedDict(project=project, expand=expand)).train(layer.training)


def _check_conv(conv: nn.Conv2d) -> None:
    """A Conv2d with groups=1 and finite weights: what the factorisations here take."""
    check_type(conv, "conv", nn.Conv2d, "an nn.Conv2d (use factorize_linear for a Linear)")
    if conv.groups != 1:
        raise ValueError(f"only convolutions with groups=1 can be factorised, got groups={conv.groups} "
                         "(a grouped or depthwise convolution is already factorised)")
    check_finite(conv.weight, "conv.weight", "a factorisation of NaN or inf weights is meaningless")


def _conv_like(conv: nn.Conv2d, c_in: int, c_out: int, kernel_size, bias: bool = False, **options) -> nn.Conv2d:
    """A new Conv2d on ``conv``'s device and dtype, with ``conv``'s padding mode."""
    return nn.Conv2d(c_in, c_out, kernel_size, bias=bias, padding_mode=conv.padding_mode,
                     device=conv.weight.device, dtype=conv.weight.dtype, **options)


def _split_per_axis(conv: nn.Conv2d, option: str) -> tuple:
    """``conv``'s stride, padding or dilation split into a (vertical, horizontal) pair: (h, 1)
    and (1, w), or (h, 0) and (0, w) for a padding. A padding given as a str ("same",
    "valid") means the same thing on each axis, so it is kept."""
    value = getattr(conv, option)
    if isinstance(value, str):
        return value, value
    h, w = value
    neutral = 0 if option == "padding" else 1
    return (h, neutral), (neutral, w)


def factorize_conv_tucker2(conv: nn.Conv2d, rank_out: int, rank_in: int, iterations: int = 0) -> nn.Sequential:
    """A Conv2d as Kim et al. (2016)'s three convolutions, from :func:`tucker2`:
    ``project_in`` 1x1 (C_in -> rank_in, weight :math:`U_{in}^\\top`), ``core`` kh x kw
    (rank_in -> rank_out, the core, with the conv's stride, padding and dilation), ``expand_out``
    1x1 (rank_out -> C_out, weight :math:`U_{out}`, the conv's bias). The output shape is the
    conv's; at full ranks (C_out, C_in) the output is the conv's too. The conv is not changed.

    Raises:
        TypeError: ``conv`` not an ``nn.Conv2d``. ValueError: groups != 1, NaN weights, ranks
            or iterations out of range (as :func:`tucker2`).
    """
    _check_conv(conv)
    core, U_out, U_in = tucker2(conv.weight, rank_out, rank_in, iterations)
    C_out, C_in = conv.weight.shape[:2]
    project_in = _with_weights(_conv_like(conv, C_in, rank_in, 1), U_in.T[:, :, None, None])
    core_conv = _with_weights(_conv_like(conv, rank_in, rank_out, conv.kernel_size, stride=conv.stride,
                                         padding=conv.padding, dilation=conv.dilation), core)
    expand_out = _with_weights(_conv_like(conv, rank_out, C_out, 1, bias=conv.bias is not None),
                               U_out[:, :, None, None], conv.bias)
    layers = OrderedDict(project_in=project_in, core=core_conv, expand_out=expand_out)
    return nn.Sequential(layers).train(conv.training)


def factorize_conv_cp(conv: nn.Conv2d, rank: int, iterations: int = 50, seed: int = 0) -> nn.Sequential:
    """A Conv2d as Lebedev et al. (2015)'s four convolutions, from :func:`cp_als`:
    ``project_in`` 1x1 (C_in -> R, weight :math:`B^\\top`), ``vertical`` depthwise kh x 1
    (groups=R, weight :math:`C`), ``horizontal`` depthwise 1 x kw (groups=R, weight :math:`D`),
    ``expand_out`` 1x1 (R -> C_out, weight :math:`A`, the conv's bias). Stride, padding and
    dilation are split by axis between the two depthwise convolutions, so the output shape is
    the conv's, and the output is that of the conv with kernel :func:`cp_reconstruct`. The conv
    is not changed.

    Raises:
        TypeError: ``conv`` not an ``nn.Conv2d``. ValueError: groups != 1, NaN weights, or a
            bad rank, iterations or seed (as :func:`cp_als`).
    """
    _check_conv(conv)
    A, B, C, D = cp_als(conv.weight, rank, iterations, seed)         # (C_out,R) (C_in,R) (kh,R) (kw,R)
    C_out, C_in, kh, kw = conv.weight.shape
    (stride_v, stride_h), (pad_v, pad_h), (dil_v, dil_h) = (_split_per_axis(conv, o) for o in
                                                            ("stride", "padding", "dilation"))
    project_in = _with_weights(_conv_like(conv, C_in, rank, 1), B.T[:, :, None, None])
    vertical = _with_weights(_conv_like(conv, rank, rank, (kh, 1), groups=rank, stride=stride_v,
                                        padding=pad_v, dilation=dil_v), C.T[:, None, :, None])
    horizontal = _with_weights(_conv_like(conv, rank, rank, (1, kw), groups=rank, stride=stride_h,
                                          padding=pad_h, dilation=dil_h), D.T[:, None, None, :])
    expand_out = _with_weights(_conv_like(conv, rank, C_out, 1, bias=conv.bias is not None),
                               A[:, :, None, None], conv.bias)
    return nn.Sequential(OrderedDict(project_in=project_in, vertical=vertical, horizontal=horizontal,
                              expand_out=expand_out)).train(conv.training)


def factorize_conv_spatial(conv: nn.Conv2d, rank: int) -> nn.Sequential:
    """A Conv2d as Jaderberg et al. (2014)'s two convolutions, from :func:`spatial_factors`:
    ``vertical`` kh x 1 (C_in -> rank), then ``horizontal`` 1 x kw (rank -> C_out, the conv's
    bias), stride, padding and dilation split by axis. The output shape is the conv's; at rank
    min(C_in kh, C_out kw) the output is the conv's too. The conv is not changed.

    Raises:
        TypeError: ``conv`` not an ``nn.Conv2d``. ValueError: groups != 1, NaN weights, rank out
            of range.
    """
    _check_conv(conv)
    V, H = spatial_factors(conv.weight, rank)                         # (R, C_in, kh, 1), (C_out, R, 1, kw)
    C_out, C_in, kh, kw = conv.weight.shape
    (stride_v, stride_h), (pad_v, pad_h), (dil_v, dil_h) = (_split_per_axis(conv, o) for o in
                                                            ("stride", "padding", "dilation"))
    vertical = _with_weights(_conv_like(conv, C_in, rank, (kh, 1), stride=stride_v, padding=pad_v,
                                        dilation=dil_v), V)
    horizontal = _with_weights(_conv_like(conv, rank, C_out, (1, kw), bias=conv.bias is not None,
                                          stride=stride_h, padding=pad_h, dilation=dil_h), H, conv.bias)
    return nn.Sequential(OrderedDict(vertical=vertical, horizontal=horizontal)).train(conv.training)


# ----------------------------------------------------------------------------- models

def _chosen_layers(model: nn.Module, layers: Iterable[str] | None, what: str = "Linear or Conv2d",
                   kinds: tuple[type, ...] = (nn.Linear, nn.Conv2d)) -> dict[str, nn.Module]:
    """The named layers of ``model`` (all of the given kinds if ``layers`` is None), in the
    model's order. Raises ValueError naming the unknown ones."""
    check_model(model)
    available = {name: m for name, m in weight_layers(model).items() if isinstance(m, kinds)}
    if layers is None:
        return available
    if isinstance(layers, str) or not isinstance(layers, Iterable):
        raise TypeError(f"layers must be a list of layer names like ['fc1'] or None, got {type(layers).__name__}")
    names = list(layers)
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        raise ValueError(f"layers must name {what} layers of the model {list(available)}, got {names}"
                         + (f" ({unknown} are not among them)" if unknown else ""))
    return {n: m for n, m in available.items() if n in names}


def _set_layer(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` in place of the submodule called ``name`` (as quantize_model does)."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def _rank_pair(rank) -> tuple[int, int]:
    """A Tucker-2 rank: an int r (meaning (r, r)) or a pair (rank_out, rank_in)."""
    if isinstance(rank, (tuple, list)) and len(rank) == 2:
        return rank[0], rank[1]
    if isinstance(rank, (tuple, list)):
        raise ValueError(f"a Tucker-2 rank must be an int or a pair (rank_out, rank_in), got {rank!r}")
    return rank, rank


def _factorize_layer(layer: nn.Module, rank, method: str) -> nn.Sequential:
    """One layer factorised: SVD for a Linear, ``method`` for a Conv2d."""
    if isinstance(layer, nn.Linear):
        return factorize_linear(layer, rank)
    if method == "svd":
        raise ValueError("method 'svd' factorises Linear layers only; for this Conv2d choose "
                         "method='tucker2', 'cp' or 'spatial'")
    if method == "tucker2":
        return factorize_conv_tucker2(layer, *_rank_pair(rank))
    if method == "cp":
        return factorize_conv_cp(layer, rank)
    return factorize_conv_spatial(layer, rank)


def factorize_model(model: nn.Module, ranks: dict[str, int | tuple[int, int]],
                    method: str = "svd") -> nn.Module:
    """A copy of ``model`` in which each layer named in ``ranks`` is replaced by its factorised
    ``nn.Sequential``: a Linear always by truncated SVD (:func:`factorize_linear`), a Conv2d by
    ``method`` (``"tucker2"``: rank r or a pair (rank_out, rank_in); ``"cp"``, ``"spatial"``:
    rank r; ``"svd"`` takes no Conv2d). Layers not named are copied unchanged; the given model
    is not changed. The factorised model is measured as any other by :mod:`course_lib.measure`.

    Args:
        ranks: ``{layer name: rank}``, names as in :func:`course_lib.measure.weight_layers`
            (``"fc1"``, ``"conv2"``).
        method: one of :data:`FACTORIZATION_METHODS`.

    Raises:
        TypeError: ``model`` not a module, ``ranks`` not a dict, a rank of the wrong type.
        ValueError: an empty dict, unknown layer names, a rank out of range (e.g. outside
            [1, min(m, n)] for SVD), NaN weights, a conv with groups != 1; the message names
            the layer.
    """
    check_model(model)
    check_choice(method, "method", FACTORIZATION_METHODS)
    check_type(ranks, "ranks", dict, "a dict {layer name: rank}")
    if not ranks:
        raise ValueError("ranks must name at least one layer, got an empty dict")
    layers = weight_layers(model)
    unknown = [name for name in ranks if name not in layers]
    if unknown:
        raise ValueError(f"ranks names unknown layers {unknown}; the model's Linear and Conv2d "
                         f"layers are {list(layers)}")
    factorized = copy.deepcopy(model)
    for name, rank in ranks.items():
        try:
            new_layer = _factorize_layer(factorized.get_submodule(name), rank, method)
        except (TypeError, ValueError) as e:
            raise type(e)(f"layer {name!r}: {e}") from None
        _set_layer(factorized, name, new_layer)
    return factorized


def _singular_values_of(W: torch.Tensor, mode: int = 0) -> torch.Tensor:
    """Singular values of a weight unfolded along ``mode`` (0: (out, rest)), on the CPU."""
    return torch.linalg.svdvals(_unfold(_working_copy(W), mode)).cpu()


def layer_singular_values(model: nn.Module) -> dict[str, torch.Tensor]:
    """The singular values of each Linear weight (m, n) and of each Conv2d weight's mode-0
    unfolding (C_out, C_in kh kw), in decreasing order, as CPU tensors: the spectra a notebook
    plots (a trained layer's decay fast; a random one's are flat).

    Raises:
        TypeError: ``model`` not a module. ValueError: NaN or inf in a weight.
    """
    layers = _chosen_layers(model, None)
    for name, layer in layers.items():
        check_finite(layer.weight, f"weight of layer {name!r}")
    return {name: _singular_values_of(layer.weight) for name, layer in layers.items()}


def ranks_for_energy(model: nn.Module, energy: float,
                     layers: Iterable[str] | None = None) -> dict[str, int | tuple[int, int]]:
    """For each chosen layer, the smallest rank keeping the fraction ``energy`` of its spectral
    energy (:func:`rank_for_energy`): an int for a Linear; for a Conv2d the Tucker-2 pair
    (rank_out, rank_in), each from its own unfolding (mode 0, (C_out, C_in kh kw); mode 1,
    (C_in, C_out kh kw)). The result is a ``ranks`` table for :func:`factorize_model` with
    ``method="tucker2"``.

    Raises:
        TypeError / ValueError: ``energy`` outside (0, 1]; unknown layer names; NaN weights.
    """
    check_real(energy, "energy", 0, 1, low_open=True)
    chosen = _chosen_layers(model, layers)
    ranks: dict[str, int | tuple[int, int]] = {}
    for name, layer in chosen.items():
        check_finite(layer.weight, f"weight of layer {name!r}")
        if isinstance(layer, nn.Linear):
            ranks[name] = rank_for_energy(_singular_values_of(layer.weight), energy)
        else:
            ranks[name] = (rank_for_energy(_singular_values_of(layer.weight, 0), energy),
                           rank_for_energy(_singular_values_of(layer.weight, 1), energy))
    return ranks


def _tucker2_parameters(C_out: int, C_in: int, kh: int, kw: int, rank_out: int, rank_in: int) -> int:
    """Weights of a Tucker-2 factorised conv: the two 1x1 convolutions and the core."""
    return C_in * rank_in + rank_in * rank_out * kh * kw + rank_out * C_out


def _factorized_parameters(layer: nn.Module, rank: int) -> int:
    """Weights of a Linear factorised by SVD at ``rank``, or of a Conv2d by Tucker-2 at (rank, rank)."""
    if isinstance(layer, nn.Linear):
        return lowrank_parameters(*layer.weight.shape, rank)
    return _tucker2_parameters(*layer.weight.shape, rank, rank)


def ranks_for_budget(model: nn.Module, fraction: float,
                     layers: Iterable[str] | None = None) -> dict[str, int | tuple[int, int]]:
    """For each chosen layer, the largest rank whose factorised weights are at most ``fraction``
    of the layer's weights (biases, unchanged by a factorisation, are left out):

    * a Linear (m, n): the largest r <= min(m, n) with :math:`r(m+n) \\le \\text{fraction}\\cdot mn`;
    * a Conv2d: the Tucker-2 pair (r, r), the largest r <= min(C_out, C_in) with
      :math:`C_{in} r + r^2 k_h k_w + r\\,C_{out} \\le \\text{fraction}\\cdot C_{out} C_{in} k_h k_w`.

    MACs scale the same way for a Linear (and for a conv at stride 1 without padding, nearly),
    so this is a MAC budget too. The result is a ``ranks`` table for :func:`factorize_model`
    with ``method="tucker2"``.

    Raises:
        TypeError / ValueError: ``fraction`` outside (0, 1], unknown layer names, or a budget so
            small that even rank 1 exceeds it (the message names the layer and its smallest
            fraction).
    """
    check_real(fraction, "fraction", 0, 1, low_open=True)
    ranks: dict[str, int | tuple[int, int]] = {}
    for name, layer in _chosen_layers(model, layers).items():
        largest = min(layer.weight.shape[:2])
        budget = fraction * layer.weight.numel()
        r = max((r for r in range(1, largest + 1) if _factorized_parameters(layer, r) <= budget), default=0)
        if r == 0:
            smallest = _factorized_parameters(layer, 1)
            raise ValueError(f"layer {name!r}: even rank 1 needs {smallest} weights, more than "
                             f"fraction={fraction} of its {layer.weight.numel()}; use a fraction >= "
                             f"{smallest / layer.weight.numel():.4f}")
        ranks[name] = r if isinstance(layer, nn.Linear) else (r, r)
    return ranks


def rank_scan(model: nn.Module, split: ImageSplit, layer: str, ranks: Iterable[int | tuple[int, int]],
              method: str = "tucker2", progress: bool = True) -> list[tuple[int | tuple[int, int], float]]:
    """Accuracy on ``split`` with only ``layer`` factorised, at each rank, without fine-tuning:
    the low-rank counterpart of :func:`course_lib.pruning.sensitivity_scan`. A Linear is
    factorised by SVD, a Conv2d by ``method``. Returns ``[(rank, accuracy), ...]`` in the order
    given. The scan drives choices, so ``split`` is validation data, never the test set.

    Raises:
        TypeError / ValueError: a bad model or split, an unknown layer, no ranks, a rank out of
            range (named as :func:`factorize_model` names it).
    """
    check_split(split)
    check_choice(method, "method", FACTORIZATION_METHODS)
    check_choice(layer, "layer", list(_chosen_layers(model, None)))
    ranks = list(ranks)
    if not ranks:
        raise ValueError("ranks must hold at least one rank")
    scan = []
    for rank in tqdm(ranks, desc=f"rank scan of {layer}", disable=not progress):
        factorized = factorize_model(model, {layer: rank}, method)
        scan.append((rank, evaluate(factorized, split).accuracy))
    return scan


# ----------------------------------------------------------------------------- low-rank adaptation

class LoRALinear(nn.Module):
    """A frozen ``Linear`` plus a trainable rank-r update (Hu et al. 2021):
    :math:`y = W x + b + \\frac{\\alpha}{r} B A x`.

    ``base`` is a copy of the given layer with ``requires_grad`` off; ``A`` (r, in) starts
    uniform in :math:`\\pm 1/\\sqrt{in}` (``nn.Linear``'s own initial range, as PEFT does),
    drawn from ``generator``; ``B`` (out, r) starts at zero, so at first the output is the base
    layer's exactly. ``alpha`` defaults to r (scale 1).

    Args:
        layer: the ``nn.Linear`` to adapt (not changed).
        rank: an int in [1, min(in, out)].
        alpha: a number > 0, or None.
        generator: a ``torch.Generator``; None: one seeded with 0 (the global one is never used).

    Raises:
        TypeError / ValueError: a layer that is not a Linear or holds NaN, a bad rank or alpha.
    """

    def __init__(self, layer: nn.Linear, rank: int, alpha: float | None = None,
                 generator: torch.Generator | None = None):
        super().__init__()
        check_type(layer, "layer", nn.Linear, "an nn.Linear")
        check_int(rank, "rank", 1, min(layer.in_features, layer.out_features))
        if alpha is not None:
            check_real(alpha, "alpha", 0, low_open=True)
        check_type(generator, "generator", torch.Generator, "a torch.Generator", allow_none=True)
        check_finite(layer.weight, "layer.weight")
        generator = torch.Generator().manual_seed(0) if generator is None else generator
        self.base = copy.deepcopy(layer).requires_grad_(False)
        self.rank = rank
        self.alpha = float(rank if alpha is None else alpha)
        like = {"device": layer.weight.device, "dtype": layer.weight.dtype}
        bound = 1.0 / math.sqrt(layer.in_features)
        A = (2 * torch.rand(rank, layer.in_features, generator=generator, device=generator.device) - 1) * bound
        self.A = nn.Parameter(A.to(**like))                                           # (r, in)
        self.B = nn.Parameter(torch.zeros(layer.out_features, rank, **like))          # (out, r)
        self.train(layer.training)

    @property
    def scale(self) -> float:
        """:math:`\\alpha / r`, the factor on the update."""
        return self.alpha / self.rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`W x + b + \\frac{\\alpha}{r} B (A x)`: (..., in) -> (..., out)."""
        return self.base(x) + self.scale * F.linear(F.linear(x, self.A), self.B)

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` with the update folded in, :math:`W + \\frac{\\alpha}{r} B A`:
        the same outputs, no extra cost at inference (its parameters are trainable again)."""
        merged = copy.deepcopy(self.base).requires_grad_(True)
        with torch.no_grad():
            merged.weight += self.scale * (self.B @ self.A)
        return merged

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}"


def add_lora(model: nn.Module, rank: int, alpha: float | None = None,
             layers: Iterable[str] | None = None, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every ``Linear`` (or the named ones) replaced by a
    :class:`LoRALinear` of rank ``rank``, and every other parameter frozen: training it trains
    only the A and B matrices, :math:`r(in + out)` numbers per layer (:func:`count_trainable`).
    The A matrices are drawn, layer by layer in model order, from one generator seeded with
    ``seed``. The given model is not changed.

    Raises:
        TypeError / ValueError: a bad model, rank, alpha or seed; ``layers`` naming a layer that
            is not a Linear of the model (the message names it).
    """
    check_int(rank, "rank", 1)
    check_int(seed, "seed", *SEED_RANGE)
    chosen = _chosen_layers(model, layers, "Linear", (nn.Linear,))
    adapted_already = {name for name, m in model.named_modules() if isinstance(m, LoRALinear)}
    chosen = {name: m for name, m in chosen.items() if name.rpartition(".")[0] not in adapted_already}
    if not chosen:
        raise ValueError("the model has no Linear layer to adapt")
    adapted = copy.deepcopy(model).requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    for name in chosen:
        try:
            lora = LoRALinear(adapted.get_submodule(name), rank, alpha, generator)
        except (TypeError, ValueError) as e:
            raise type(e)(f"layer {name!r}: {e}") from None
        _set_layer(adapted, name, lora)
    return adapted


def count_trainable(model: nn.Module) -> int:
    """Number of parameters with ``requires_grad`` (what an optimizer would update).

    Raises:
        TypeError: ``model`` not an ``nn.Module``.
    """
    check_model(model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


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
    check_choice(model_name, "model_name", zoo.names())
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
