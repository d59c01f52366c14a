"""Factorisations of a 4-D conv kernel: Tucker-2 (HOSVD / HOOI), CP by ALS, and Jaderberg's
spatial split, with their reconstructions.

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

Primitives only: they take tensors and return new tensors; :mod:`course_lib.lowrank.layers`
builds the convolutions from them. Taught in ``notebooks/04_low_rank.ipynb``.
"""

from __future__ import annotations

import math

import torch

from ..checks import check_finite, check_int, check_tensor, check_type
from ..data import SEED_RANGE
from .svd import _working_copy

__all__ = ["tucker2", "tucker2_reconstruct", "cp_als", "cp_reconstruct", "spatial_factors"]


def _check_kernel(K: torch.Tensor, name: str = "K") -> None:
    """A non-empty 4-D floating-point conv kernel (C_out, C_in, kh, kw) of finite values."""
    check_tensor(K, name)
    if K.dim() != 4 or K.numel() == 0 or not K.is_floating_point():
        raise ValueError(f"{name} must be a non-empty 4-D float conv kernel (C_out, C_in, kh, kw), "
                         f"got shape {tuple(K.shape)} of {K.dtype}")
    check_finite(K, name, "a factorisation of NaN or inf weights is meaningless")


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
