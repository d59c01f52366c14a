"""Clustering-based quantization: k-means weight sharing (Deep Compression, stage 2).

Han, Mao & Dally (2016) replace each layer's weights by :math:`k = 2^b` shared values: k-means
clusters the weights, each weight stores only the :math:`b`-bit index of its cluster, and the
layer stores the :math:`k` centroids once (a *codebook*). Storage for :math:`n` weights:

.. math:: n\\,b + k \\cdot 32 \\text{ bits.}

Centroids start spread linearly between the smallest and largest weight (the paper's best
initialisation: it keeps the rare large weights, which matter most). Fine-tuning then trains the
centroids themselves: the gradient of a centroid is the sum of the gradients of the weights that
share it, which autograd computes when the weight is built as ``centroids[indices]``.
Taught in ``notebooks/02_quantization.ipynb``.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import nn

from .checks import check_finite, check_int, check_model, check_type
from .measure import CompressedLayer, StoredTensor, weight_layers
from .quantization import per_layer_bits, check_bits, check_weight

__all__ = ["CENTROID_BITS_RANGE", "Codebook", "nearest_centroid", "kmeans_quantize", "codebook_storage_bits",
           "SharedWeights", "kmeans_quantize_model"]

CENTROID_BITS_RANGE = (1, 64)    # bits per stored centroid: fp32 by default, fp64 at most


def _check_centroids(centroids: torch.Tensor, sorted_ascending: bool = True) -> None:
    """A non-empty 1-D float tensor of finite values, sorted ascending (ties allowed) if asked."""
    check_type(centroids, "centroids", torch.Tensor, "a 1-D float tensor (k,)")
    if centroids.dim() != 1 or centroids.numel() == 0 or not centroids.is_floating_point():
        raise ValueError(f"centroids must be a non-empty 1-D float tensor (k,), got shape "
                         f"{tuple(centroids.shape)} of {centroids.dtype}")
    check_finite(centroids, "centroids")
    if sorted_ascending and (centroids[1:] < centroids[:-1]).any():
        raise ValueError(f"centroids must be sorted ascending, got {centroids.tolist()[:8]}"
                         f"{'...' if len(centroids) > 8 else ''}; pass centroids.sort().values")


class Codebook(NamedTuple):
    """A k-means codebook: ``k`` shared values and, for each weight, the index of its value."""
    centroids: torch.Tensor   # (k,) float32
    indices: torch.Tensor     # weight's shape, int64 in [0, k)

    def reconstruct(self) -> torch.Tensor:
        """The shared weight :math:`\\hat W = c[I]`: ``centroids[indices]``, of ``indices``'s
        shape and ``centroids``'s dtype (a new tensor).

        Raises:
            TypeError: ``centroids`` or ``indices`` is not a tensor, or ``indices`` does not
                hold integers.
            ValueError: ``centroids`` is not a non-empty 1-D float tensor of finite values, or
                an index lies outside ``[0, k)`` (a negative one would silently pick from the end).
        """
        _check_centroids(self.centroids, sorted_ascending=False)
        check_type(self.indices, "indices", torch.Tensor, "an integer tensor")
        if self.indices.is_floating_point() or self.indices.is_complex() or self.indices.dtype == torch.bool:
            raise TypeError(f"indices must hold integer indices, got dtype {self.indices.dtype}")
        k = len(self.centroids)
        if self.indices.numel() and (self.indices.min() < 0 or self.indices.max() >= k):
            raise ValueError(f"indices must be in [0, {k}) for {k} centroids, got values in "
                             f"[{int(self.indices.min())}, {int(self.indices.max())}]")
        return self.centroids[self.indices]


def nearest_centroid(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """For each value of ``x`` (n,), the index of the nearest of the sorted ``centroids`` (k,),
    ties to the lower index, as ``(x[:, None] - centroids).abs().argmin(1)`` would give, but in
    O(n log k) memory-light steps: the boundaries between neighbours are their midpoints, and
    ``torch.bucketize`` finds each value's interval without an (n, k) distance matrix (which
    for fc1 of LeNet-5 at 8 bits would take 400,000 x 256 floats, 400 MB).

    With :math:`m_j = (c_j + c_{j+1})/2`, the result is :math:`i = |\\{j : m_j < x\\}|`.
    Returns an int64 tensor (n,) with values in ``[0, k)``; the inputs are not modified.

    Raises:
        TypeError: ``x`` or ``centroids`` is not a tensor.
        ValueError: either is not a 1-D float tensor (``centroids`` non-empty), holds NaN or
            inf, the two are on different devices, or ``centroids`` is not sorted ascending.
    """
    check_type(x, "x", torch.Tensor, "a 1-D float tensor (n,)")
    if x.dim() != 1 or not x.is_floating_point():
        raise ValueError(f"x must be a 1-D float tensor (n,), got shape {tuple(x.shape)} of {x.dtype}; "
                         "flatten a weight with w.reshape(-1)")
    check_finite(x, "x")
    _check_centroids(centroids)
    if x.device != centroids.device:
        raise ValueError(f"x and centroids must be on one device, got {x.device} and {centroids.device}")
    midpoints = (centroids[1:] + centroids[:-1]) / 2                   # (k-1,) boundaries
    return torch.bucketize(x, midpoints, right=False)


def kmeans_quantize(w: torch.Tensor, bits: int, iterations: int = 20) -> Codebook:
    """Cluster the values of ``w`` into :math:`2^{bits}` centroids with Lloyd's algorithm
    (linear initialisation between the smallest and largest value). In one dimension the
    centroids stay sorted, so each assignment is a :func:`nearest_centroid` lookup. An empty
    cluster keeps its centroid. ``w`` is not modified; the result is on ``w``'s device.

    Each iteration assigns :math:`I_i = \\arg\\min_j |w_i - c_j|` and moves each centroid to
    the mean of its weights, :math:`c_j = \\frac{1}{|\\{i: I_i = j\\}|}\\sum_{I_i = j} w_i`.

    Raises:
        TypeError: ``w`` is not a float tensor, ``bits`` or ``iterations`` not an int.
        ValueError: ``w`` is empty or holds NaN or inf, ``bits`` is outside [1, 16],
            ``iterations`` < 1.
    """
    check_weight(w)
    check_bits(bits)
    check_int(iterations, "iterations", 1)
    x = w.detach().reshape(-1).float()
    k = 2 ** bits
    centroids = torch.linspace(x.min().item(), x.max().item(), k, device=x.device)
    for _ in range(iterations):
        indices = nearest_centroid(x, centroids)                                  # (n,)
        sums = torch.zeros(k, device=x.device).index_add_(0, indices, x)
        counts = torch.bincount(indices, minlength=k).float()
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        centroids = centroids.sort().values
    indices = nearest_centroid(x, centroids)
    return Codebook(centroids, indices.reshape(w.shape))


def codebook_storage_bits(numel: int, bits: int, centroid_bits: int = 32) -> int:
    """Bits for ``numel`` indices of ``bits`` bits and a codebook of :math:`2^{bits}` centroids
    of ``centroid_bits`` each: :math:`n\\,b + 2^b \\cdot c`.

    Raises:
        TypeError: an argument is not an int (bool is not one).
        ValueError: ``numel`` < 0, ``bits`` outside [1, 16], ``centroid_bits`` outside [1, 64].
    """
    check_int(numel, "numel", 0)
    check_bits(bits)
    check_int(centroid_bits, "centroid_bits", *CENTROID_BITS_RANGE)
    return numel * bits + 2 ** bits * centroid_bits


class SharedWeights(CompressedLayer):
    """A Linear or Conv2d whose weight is ``centroids[indices]``: only the centroids (and the
    bias) train, so fine-tuning updates the codebook as Deep Compression does.

    The given layer is copied, never changed. Stored: the ``bits``-bit index of each weight, the
    :math:`2^{bits}` centroids in fp32, the bias in fp32.

    Raises (on construction):
        TypeError: ``layer`` is not an ``nn.Linear`` / ``nn.Conv2d``; as :func:`kmeans_quantize`.
        ValueError: as :func:`kmeans_quantize` (a weight with NaN, ``bits`` outside [1, 16]).
    """

    def __init__(self, layer: nn.Module, bits: int, iterations: int = 20):
        check_type(layer, "layer", (nn.Linear, nn.Conv2d), "nn.Linear or nn.Conv2d")
        codebook = kmeans_quantize(layer.weight, bits, iterations)
        super().__init__(copy.deepcopy(layer))
        self.bits = bits
        self.centroids = nn.Parameter(codebook.centroids.to(layer.weight.device))
        self.register_buffer("indices", codebook.indices.to(layer.weight.device))
        self.layer.weight.requires_grad_(False)        # the copy's float weight is replaced

    def weight_as_computed(self) -> torch.Tensor:
        """``centroids[indices]``: the weight the forward pass multiplies by."""
        return self.centroids[self.indices]


    def stored_tensors(self) -> list[StoredTensor]:
        """The ``bits``-bit indices (as the computed weight, so zeros stay visible), the fp32
        codebook and the fp32 bias."""
        stored = [StoredTensor("indices", self.weight_as_computed().detach(), self.bits),
                  StoredTensor("codebook", self.centroids.detach(), 32)]
        if self.layer.bias is not None:
            stored.append(StoredTensor("bias", self.layer.bias.detach(), 32))
        return stored

    def extra_repr(self) -> str:
        """``"4 shared values (2-bit indices)"`` in the module's repr."""
        return f"{2 ** self.bits} shared values ({self.bits}-bit indices)"


def kmeans_quantize_model(model: nn.Module, bits: int | dict[str, int], iterations: int = 20) -> nn.Module:
    """A copy of ``model`` with each Linear/Conv2d weight (or those named in ``bits``) shared
    through a k-means codebook of :math:`2^{bits}` values. The given model is not changed.

    Args:
        bits: an int in [1, 16] for every layer, or a dict ``{layer name: bits}`` for some.
        iterations: Lloyd iterations per layer, an int >= 1.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, a bit width or ``iterations`` not an int.
        ValueError: the model has no Linear/Conv2d, ``bits`` is an empty dict, names unknown
            layers or a width outside [1, 16], ``iterations`` < 1, or a weight holds NaN or
            inf (the message names the layer).
    """
    check_model(model)
    if isinstance(bits, dict) and not bits:
        raise ValueError(f"bits must name at least one layer of {list(weight_layers(model))}, got {{}}")
    per_layer = per_layer_bits(model, bits, "bits")
    check_int(iterations, "iterations", 1)
    shared = copy.deepcopy(model)
    for name, b in per_layer.items():
        try:
            layer = SharedWeights(shared.get_submodule(name), b, iterations)
        except ValueError as e:                     # name the layer whose weight is bad
            raise ValueError(f"layer {name!r}: {e}") from e
        shared.set_submodule(name, layer)
    return shared
