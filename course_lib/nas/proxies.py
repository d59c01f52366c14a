"""Zero-cost proxies: guess how well a network will train from one look at it at initialisation.

If a score computed in a second on an *untrained* network ranked candidates as their trained
accuracies do, a search could skip training altogether. Two such scores:

* **synflow** (Tanaka, Kunin, Yamins & Ganguli 2020, "Pruning neural networks without any data
  by iteratively conserving synaptic flow", Sec. 5, eq. 2; used as a NAS proxy by Abdelfattah et
  al. 2021, "Zero-Cost Proxies for Lightweight NAS"): replace every weight by its absolute value,
  feed an all-ones input, and with :math:`\\mathcal{R} = \\mathbb{1}^\\top \\big(\\prod_l |W_l|\\big)
  \\mathbb{1}` (the network's output summed) the score is
  :math:`S = \\sum_\\theta \\theta \\odot \\partial \\mathcal{R} / \\partial \\theta`,
  the total "synaptic flow" through the parameters. No data, no labels. The activations are taken
  out (the network linearised) so that ReLU6 does not clip the flow; batch norms run in eval
  mode, as the identity they are at initialisation.
* **NASWOT** (Mellor, Turner, Storkey & Crowley 2021, "Neural Architecture Search without
  Training", ICML, Sec. 3, eq. 2): for a batch of :math:`N` images, the binary code
  :math:`c_i \\in \\{0, 1\\}^{N_A}` of which ReLU units are active for image :math:`i`; the kernel
  :math:`K_H[i, j] = N_A - d_H(c_i, c_j)` counts the units on which two images agree; the score
  is :math:`\\log |\\det K_H|`. A network that gives different images different activation patterns
  (a high score) separates them more easily once trained.

Whether a proxy is any good is a question of *rank correlation* between the proxy and the trained
accuracy over many networks: Kendall's :math:`\\tau` (:func:`kendall_tau`, written by hand below
and checked against ``scipy.stats.kendalltau``) and Spearman's :math:`\\rho` (:func:`spearman_rho`).

Taught in ``notebooks/08_nas_for_a_device.ipynb``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from ..checks import check_model, check_type, describe, is_real

__all__ = ["ACTIVATIONS", "synflow", "activation_codes", "naswot", "kendall_tau", "ranks", "spearman_rho",
           "proxy_scores"]

ACTIVATIONS = (nn.ReLU, nn.ReLU6)


# ----------------------------------------------------------------------------- the proxies

def synflow(model: nn.Module, input_shape: tuple[int, ...] = (1, 28, 28)) -> float:
    """The synflow score :math:`\\sum_\\theta |\\theta \\odot \\partial \\mathcal{R}/\\partial \\theta|`
    of ``model`` (Tanaka et al. 2020, eq. 2), computed in float64 on a linearised copy: every
    parameter replaced by its absolute value, every ReLU / ReLU6 by the identity, batch norms in
    eval mode, one all-ones input of ``input_shape``. ``model`` is unchanged. Scores span many
    orders of magnitude: compare their logarithms.

    Raises:
        TypeError: ``model`` not an nn.Module; ``input_shape`` not a tuple of ints.
        ValueError: a size < 1.
    """
    check_model(model)
    _check_shape(input_shape)
    net = copy.deepcopy(model).double().eval()
    for name, module in list(net.named_modules()):
        if isinstance(module, ACTIVATIONS):                  # linearise: R is a product of |W|
            net.set_submodule(name, nn.Identity())
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    R = net(torch.ones(1, *input_shape, dtype=torch.float64)).sum()
    R.backward()
    return float(sum((p.detach() * p.grad).abs().sum() for p in net.parameters() if p.grad is not None))


def activation_codes(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The binary codes of Mellor et al. (2021): for each image, 1 where a ReLU / ReLU6 unit's
    input is > 0, concatenated over every such layer, (N, N_A) float. Run in train mode (batch
    statistics, as at the start of training) on a copy; ``model`` is unchanged."""
    net = copy.deepcopy(model).train()
    codes: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda m, inputs, output: codes.append((inputs[0] > 0).flatten(1).float()))
             for m in net.modules() if isinstance(m, ACTIVATIONS)]
    try:
        with torch.no_grad():
            net(images)
    finally:
        for h in hooks:
            h.remove()
    if not codes:
        raise ValueError("model has no ReLU or ReLU6 layer: NASWOT needs binary activation codes")
    return torch.cat(codes, dim=1)


def naswot(model: nn.Module, images: torch.Tensor) -> float:
    """The NASWOT score :math:`\\log|\\det K_H|` (Mellor et al. 2021, eq. 2) with
    :math:`K_H = C C^\\top + (1 - C)(1 - C)^\\top`, i.e. :math:`K_H[i, j] = N_A - d_H(c_i, c_j)`
    for the codes :math:`C` of :func:`activation_codes` on ``images`` (N, C, H, W), N >= 2.
    The log-determinant is computed with ``torch.linalg.slogdet`` in float64 (``-inf`` when two
    images share a code: :math:`K_H` is then singular).

    Raises:
        TypeError: ``model`` not an nn.Module, ``images`` not a tensor.
        ValueError: ``images`` not a (N, C, H, W) batch with N >= 2, or a model without ReLUs.
    """
    check_model(model)
    check_type(images, "images", torch.Tensor, "a (N, C, H, W) tensor")
    if images.dim() != 4 or len(images) < 2:
        raise ValueError(f"images must be a (N, C, H, W) batch with N >= 2, got shape {tuple(images.shape)}")
    C = activation_codes(model, images).double()           # (N, N_A)
    K = C @ C.T + (1 - C) @ (1 - C).T                       # units where i and j agree (both on or both off)
    sign, logdet = torch.linalg.slogdet(K)
    return float(logdet) if sign > 0 else -math.inf


def _check_shape(input_shape) -> None:
    if not isinstance(input_shape, tuple) or not input_shape or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in input_shape):
        raise (TypeError if not isinstance(input_shape, tuple) else ValueError)(
            f"input_shape must be a tuple of ints >= 1 like (1, 28, 28), got {input_shape!r}")


# ----------------------------------------------------------------------------- rank correlations

def _check_pair(x, y) -> tuple[list[float], list[float]]:
    for values, name in ((x, "x"), (y, "y")):
        check_type(values, name, (list, tuple), "a list of numbers")
        for i, v in enumerate(values):
            if not is_real(v) or math.isnan(v):
                raise ValueError(f"{name}[{i}] must be a number (not NaN), got {describe(v)}")
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"x and y must have the same length, at least 2, got {len(x)} and {len(y)}")
    return [float(v) for v in x], [float(v) for v in y]


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's :math:`\\tau_b` (Kendall 1945), the rank agreement of two lists:

    .. math:: \\tau_b = \\frac{n_c - n_d}{\\sqrt{(n_0 - n_x)(n_0 - n_y)}}

    over the :math:`n_0 = n(n-1)/2` pairs :math:`i < j`: :math:`n_c` concordant
    (:math:`(x_i - x_j)(y_i - y_j) > 0`), :math:`n_d` discordant (< 0), :math:`n_x` tied in x,
    :math:`n_y` tied in y. +1: same order, -1: reversed, 0: unrelated. :math:`O(n^2)`, written for
    reading; equals ``scipy.stats.kendalltau`` (tested). NaN when x or y is constant. Infinite
    values (a NASWOT score of ``-inf``) rank below or above every finite one.

    Raises:
        TypeError / ValueError: not two lists of numbers of the same length >= 2, or a NaN.
    """
    x, y = _check_pair(x, y)
    n = len(x)
    concordant = discordant = tied_x = tied_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx = (x[i] > x[j]) - (x[i] < x[j])              # the sign, safe with infinities
            dy = (y[i] > y[j]) - (y[i] < y[j])
            tied_x += dx == 0
            tied_y += dy == 0
            concordant += dx * dy > 0
            discordant += dx * dy < 0
    pairs = n * (n - 1) // 2
    denominator = math.sqrt((pairs - tied_x) * (pairs - tied_y))
    return (concordant - discordant) / denominator if denominator else math.nan


def ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n of ``values``, ties given the mean of the ranks they span (``scipy.stats.rankdata``)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    k = 0
    while k < len(order):
        end = k
        while end + 1 < len(order) and values[order[end + 1]] == values[order[k]]:
            end += 1
        for m in range(k, end + 1):
            out[order[m]] = (k + end) / 2 + 1
        k = end + 1
    return out


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's :math:`\\rho`: the Pearson correlation of the ranks (:func:`ranks`, ties
    averaged), equal to ``scipy.stats.spearmanr``. NaN when x or y is constant.

    Raises:
        TypeError / ValueError: as :func:`kendall_tau`.
    """
    x, y = _check_pair(x, y)
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return cov / (sx * sy) if sx and sy else math.nan


def proxy_scores(models: Sequence[nn.Module], images: torch.Tensor, input_shape: tuple[int, ...] = (1, 28, 28)
                 ) -> dict[str, list[float]]:
    """``{"synflow": [log10 score per model], "naswot": [score per model]}`` (untrained models,
    in order; a synflow score of 0 gives ``-inf``). Correlate either with accuracies by
    :func:`kendall_tau`.

    Raises:
        TypeError / ValueError: as :func:`synflow` and :func:`naswot`; ``models`` not a list of modules.
    """
    check_type(models, "models", (list, tuple), "a list of nn.Module")
    for i, m in enumerate(models):
        check_model(m, f"models[{i}]")
    synflows = [synflow(m, input_shape) for m in models]
    return {"synflow": [math.log10(s) if s > 0 else -math.inf for s in synflows],
            "naswot": [naswot(m, images) for m in models]}

