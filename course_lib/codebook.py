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

from .measure import CompressedLayer, StoredTensor, weight_layers
from .quantization import _check_model, _check_weight, _per_layer_bits, check_bits


class Codebook(NamedTuple):
    centroids: torch.Tensor   # (k,) float32
    indices: torch.Tensor     # weight's shape, int64 in [0, k)

    def reconstruct(self) -> torch.Tensor:
        return self.centroids[self.indices]


def nearest_centroid(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """For each value of ``x`` (n,), the index of the nearest of the sorted ``centroids`` (k,),
    ties to the lower index, as ``(x[:, None] - centroids).abs().argmin(1)`` would give, but in
    O(n log k) memory-light steps: the boundaries between neighbours are their midpoints, and
    ``torch.bucketize`` finds each value's interval without an (n, k) distance matrix (which
    for fc1 of LeNet-5 at 8 bits would take 400,000 x 256 floats, 400 MB)."""
    midpoints = (centroids[1:] + centroids[:-1]) / 2                   # (k-1,) boundaries
    return torch.bucketize(x, midpoints, right=False)


def kmeans_quantize(w: torch.Tensor, bits: int, iterations: int = 20) -> Codebook:
    """Cluster the values of ``w`` into :math:`2^{bits}` centroids with Lloyd's algorithm
    (linear initialisation between the smallest and largest value). In one dimension the
    centroids stay sorted, so each assignment is a :func:`nearest_centroid` lookup. An empty
    cluster keeps its centroid. ``w`` is not modified; the result is on ``w``'s device."""
    _check_weight(w)
    check_bits(bits)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an int >= 1, got {iterations!r}")
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
    """Bits for ``numel`` indices of ``bits`` bits and a codebook of :math:`2^{bits}` centroids."""
    check_bits(bits)
    if isinstance(numel, bool) or not isinstance(numel, int) or numel < 0:
        raise ValueError(f"numel must be an int >= 0, got {numel!r}")
    return numel * bits + 2 ** bits * centroid_bits


class SharedWeights(CompressedLayer):
    """A Linear or Conv2d whose weight is ``centroids[indices]``: only the centroids (and the
    bias) train, so fine-tuning updates the codebook as Deep Compression does.

    The given layer is copied, never changed. Stored: the ``bits``-bit index of each weight, the
    :math:`2^{bits}` centroids in fp32, the bias in fp32.
    """

    def __init__(self, layer: nn.Module, bits: int, iterations: int = 20):
        if not isinstance(layer, (nn.Linear, nn.Conv2d)):
            raise TypeError(f"layer must be nn.Linear or nn.Conv2d, got {type(layer).__name__}")
        codebook = kmeans_quantize(layer.weight, bits, iterations)
        super().__init__(copy.deepcopy(layer))
        self.bits = bits
        self.centroids = nn.Parameter(codebook.centroids.to(layer.weight.device))
        self.register_buffer("indices", codebook.indices.to(layer.weight.device))
        self.layer.weight.requires_grad_(False)        # the copy's float weight is replaced

    def weight_as_computed(self) -> torch.Tensor:
        return self.centroids[self.indices]

    def weight(self) -> torch.Tensor:
        """The shared weight, ``centroids[indices]``."""
        return self.weight_as_computed()

    def stored_tensors(self) -> list[StoredTensor]:
        stored = [StoredTensor("indices", self.weight_as_computed().detach(), self.bits),
                  StoredTensor("codebook", self.centroids.detach(), 32)]
        if self.layer.bias is not None:
            stored.append(StoredTensor("bias", self.layer.bias.detach(), 32))
        return stored

    def extra_repr(self) -> str:
        return f"{2 ** self.bits} shared values ({self.bits}-bit indices)"


def kmeans_quantize_model(model: nn.Module, bits: int | dict[str, int], iterations: int = 20) -> nn.Module:
    """A copy of ``model`` with each Linear/Conv2d weight (or those named in ``bits``) shared
    through a k-means codebook of :math:`2^{bits}` values. The given model is not changed."""
    _check_model(model)
    per_layer = _per_layer_bits(model, bits, "bits")
    shared = copy.deepcopy(model)
    for name, b in per_layer.items():
        parent_name, _, child = name.rpartition(".")
        parent = shared.get_submodule(parent_name) if parent_name else shared
        setattr(parent, child, SharedWeights(getattr(parent, child), b, iterations))
    return shared
