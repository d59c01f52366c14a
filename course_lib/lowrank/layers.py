"""Factorised layers and models: a Linear or Conv2d replaced by a short ``nn.Sequential`` of
thinner ones (from :mod:`~course_lib.lowrank.svd` and :mod:`~course_lib.lowrank.tensors`),
the spectra of a model's layers, and the choice of ranks by energy, by budget or by scan.

The layer and model transforms return new modules and leave the given ones untouched. A
factorised layer is an ``nn.Sequential`` of plain ``Linear`` / ``Conv2d`` layers, so
:mod:`course_lib.measure` counts its parameters and MACs as it counts any other model.
Taught in ``notebooks/04_low_rank.ipynb``.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from ..checks import check_choice, check_finite, check_model, check_real, check_type
from ..data import ImageSplit, check_split
from ..measure import weight_layers
from ..selection import per_layer
from ..train import evaluate
from .svd import _working_copy, lowrank_parameters, rank_for_energy, svd_factors
from .tensors import _unfold, cp_als, spatial_factors, tucker2

__all__ = ["FACTORIZATION_METHODS", "factorize_linear", "factorize_conv_tucker2", "factorize_conv_cp",
           "factorize_conv_spatial", "factorize_model", "layer_singular_values", "ranks_for_energy",
           "ranks_for_budget", "rank_scan"]

FACTORIZATION_METHODS = ("svd", "tucker2", "cp", "spatial")   # "svd": Linear layers only


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


def factorize_conv_tucker2(conv: nn.Conv2d, rank_out: int, rank_in: int, iterations: int = 0,
                           decompose: Callable | None = None) -> nn.Sequential:
    """A Conv2d as Kim et al. (2016)'s three convolutions, from :func:`tucker2` (or ``decompose``,
    a function of the same first arguments ``(K, rank_out, rank_in)`` returning ``(core, U_out,
    U_in)``: notebook 04 passes the learner's own):
    ``project_in`` 1x1 (C_in -> rank_in, weight :math:`U_{in}^\\top`), ``core`` kh x kw
    (rank_in -> rank_out, the core, with the conv's stride, padding and dilation), ``expand_out``
    1x1 (rank_out -> C_out, weight :math:`U_{out}`, the conv's bias). The output shape is the
    conv's; at full ranks (C_out, C_in) the output is the conv's too. The conv is not changed.

    Raises:
        TypeError: ``conv`` not an ``nn.Conv2d``. ValueError: groups != 1, NaN weights, ranks
            or iterations out of range (as :func:`tucker2`).
    """
    _check_conv(conv)
    if decompose is None:
        core, U_out, U_in = tucker2(conv.weight, rank_out, rank_in, iterations)
    else:
        core, U_out, U_in = (t.detach() for t in decompose(conv.weight.detach(), rank_out, rank_in))
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


def _rank_pair(rank) -> tuple[int, int]:
    """A Tucker-2 rank: an int r (meaning (r, r)) or a pair (rank_out, rank_in)."""
    if isinstance(rank, (tuple, list)) and len(rank) == 2:
        return rank[0], rank[1]
    if isinstance(rank, (tuple, list)):
        raise ValueError(f"a Tucker-2 rank must be an int or a pair (rank_out, rank_in), got {rank!r}")
    return rank, rank


def _factorize_layer(layer: nn.Module, rank, method: str, decompose: Callable | None = None) -> nn.Sequential:
    """One layer factorised: SVD for a Linear, ``method`` for a Conv2d."""
    if isinstance(layer, nn.Linear):
        return factorize_linear(layer, rank)
    if method == "svd":
        raise ValueError("method 'svd' factorises Linear layers only; for this Conv2d choose "
                         "method='tucker2', 'cp' or 'spatial'")
    if method == "tucker2":
        return factorize_conv_tucker2(layer, *_rank_pair(rank), decompose=decompose)
    if method == "cp":
        return factorize_conv_cp(layer, rank)
    return factorize_conv_spatial(layer, rank)


def factorize_model(model: nn.Module, ranks: dict[str, int | tuple[int, int]],
                    method: str = "svd", decompose: Callable | None = None) -> nn.Module:
    """A copy of ``model`` in which each layer named in ``ranks`` is replaced by its factorised
    ``nn.Sequential``: a Linear always by truncated SVD (:func:`factorize_linear`), a Conv2d by
    ``method`` (``"tucker2"``: rank r or a pair (rank_out, rank_in); ``"cp"``, ``"spatial"``:
    rank r; ``"svd"`` takes no Conv2d). Layers not named are copied unchanged; the given model
    is not changed. The factorised model is measured as any other by :mod:`course_lib.measure`.

    Args:
        ranks: ``{layer name: rank}``, names as in :func:`course_lib.measure.weight_layers`
            (``"fc1"``, ``"conv2"``).
        method: one of :data:`FACTORIZATION_METHODS`.
        decompose: with ``method="tucker2"`` only, replaces :func:`tucker2` for the convolutions
            (:func:`factorize_conv_tucker2`).

    Raises:
        TypeError: ``model`` not a module, ``ranks`` not a dict, a rank of the wrong type,
            ``decompose`` not a function.
        ValueError: an empty dict, unknown layer names, a rank out of range (e.g. outside
            [1, min(m, n)] for SVD), NaN weights, a conv with groups != 1; the message names
            the layer.
    """
    check_model(model)
    check_choice(method, "method", FACTORIZATION_METHODS)
    check_type(ranks, "ranks", dict, "a dict {layer name: rank}")
    if decompose is not None and not callable(decompose):
        raise TypeError(f"decompose must be a function (K, rank_out, rank_in) -> (core, U_out, U_in), "
                        f"got {type(decompose).__name__}")
    if decompose is not None and method != "tucker2":
        raise ValueError(f"decompose replaces Tucker-2's decomposition: it needs method='tucker2', got {method!r}")
    if not ranks:
        raise ValueError("ranks must name at least one layer, got an empty dict")
    per_layer(ranks, weight_layers(model), "ranks", lambda rank, name: None)   # names; each rank checked below
    factorized = copy.deepcopy(model)
    for name, rank in ranks.items():
        try:
            new_layer = _factorize_layer(factorized.get_submodule(name), rank, method, decompose)
        except (TypeError, ValueError) as e:
            raise type(e)(f"layer {name!r}: {e}") from None
        factorized.set_submodule(name, new_layer)
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
