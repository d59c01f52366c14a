"""Truncated SVD of a weight matrix: the factors, the error, the energy kept, the sizes.

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

Primitives only: they take tensors and return new tensors. Taught in
``notebooks/04_low_rank.ipynb``.
"""

from __future__ import annotations

import math

import torch

from ..checks import check_finite, check_int, check_real, check_tensor

__all__ = ["svd_factors", "approximation_error_bound", "energy_kept", "rank_for_energy", "lowrank_parameters",
           "break_even_rank"]


def _check_matrix(W: torch.Tensor, name: str = "W") -> None:
    """A non-empty 2-D floating-point tensor of finite values."""
    check_tensor(W, name)
    if W.dim() != 2 or W.numel() == 0 or not W.is_floating_point():
        raise ValueError(f"{name} must be a non-empty 2-D float tensor (out, in), got shape "
                         f"{tuple(W.shape)} of {W.dtype}")
    check_finite(W, name, "a factorisation of NaN or inf weights is meaningless")


def _check_singular_values(s: torch.Tensor) -> None:
    """A non-empty vector of finite, non-negative numbers, not all zero, sorted largest first."""
    check_tensor(s, "singular_values")
    if s.dim() != 1 or s.numel() == 0 or not s.is_floating_point():
        raise ValueError(f"singular_values must be a non-empty 1-D float tensor, got shape "
                         f"{tuple(s.shape)} of {s.dtype}")
    check_finite(s, "singular_values")
    if (s < 0).any() or not (s > 0).any():
        raise ValueError("singular_values must be >= 0 and not all zero (from torch.linalg.svdvals)")
    if (s[1:] > s[:-1]).any():
        raise ValueError("singular_values must be sorted largest first, as torch.linalg.svdvals returns them; "
                         "got an increase, e.g. at index "
                         f"{int(torch.nonzero(s[1:] > s[:-1])[0]) + 1}: sort them with s.sort(descending=True)")


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
