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
from torch.nn import functional as F

from .quantization import weight_layers


class Codebook(NamedTuple):
    centroids: torch.Tensor   # (k,) float32
    indices: torch.Tensor     # weight's shape, int64 in [0, k)

    def reconstruct(self) -> torch.Tensor:
        return self.centroids[self.indices]


def kmeans_quantize(w: torch.Tensor, bits: int, iterations: int = 20) -> Codebook:
    """Cluster the values of ``w`` into :math:`2^{bits}` centroids with Lloyd's algorithm
    (linear initialisation). ``w`` is not modified. An empty cluster keeps its centroid."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ValueError(f"bits must be an int in [1, 8], got {bits}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    x = w.detach().reshape(-1).float()
    if x.numel() == 0 or not torch.isfinite(x).all():
        raise ValueError("w must be non-empty and finite")
    k = 2 ** bits
    centroids = torch.linspace(x.min().item(), x.max().item(), k, device=x.device)
    for _ in range(iterations):
        indices = (x[:, None] - centroids[None, :]).abs().argmin(1)          # (n,) nearest centroid
        sums = torch.zeros(k, device=x.device).index_add_(0, indices, x)
        counts = torch.bincount(indices, minlength=k).float()
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
    indices = (x[:, None] - centroids[None, :]).abs().argmin(1)
    return Codebook(centroids, indices.reshape(w.shape))


def codebook_storage_bits(numel: int, bits: int, centroid_bits: int = 32) -> int:
    """Bits for ``numel`` indices of ``bits`` bits and a codebook of :math:`2^{bits}` centroids."""
    return numel * bits + 2 ** bits * centroid_bits


class SharedWeights(nn.Module):
    """A Linear or Conv2d whose weight is ``centroids[indices]``: only the centroids (and the
    bias) train, so fine-tuning updates the codebook as Deep Compression does."""

    def __init__(self, layer: nn.Module, bits: int, iterations: int = 20):
        super().__init__()
        if not isinstance(layer, (nn.Linear, nn.Conv2d)):
            raise TypeError(f"layer must be nn.Linear or nn.Conv2d, got {type(layer).__name__}")
        codebook = kmeans_quantize(layer.weight, bits, iterations)
        self.layer = layer
        self.bits = bits
        self.centroids = nn.Parameter(codebook.centroids.to(layer.weight.device))
        self.register_buffer("indices", codebook.indices.to(layer.weight.device))
        self.layer.weight.requires_grad_(False)

    def weight(self) -> torch.Tensor:
        return self.centroids[self.indices]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, self.weight(), self.layer.bias)
        return self.layer._conv_forward(x, self.weight(), self.layer.bias)

    def storage_bits(self) -> int:
        return codebook_storage_bits(self.indices.numel(), self.bits)


def kmeans_quantize_model(model: nn.Module, bits: int | dict[str, int], iterations: int = 20) -> nn.Module:
    """A copy of ``model`` with each Linear/Conv2d weight (or those named in ``bits``) shared
    through a k-means codebook of :math:`2^{bits}` values."""
    layers = list(weight_layers(model))
    per_layer = bits if isinstance(bits, dict) else {name: bits for name in layers}
    unknown = set(per_layer) - set(layers)
    if unknown:
        raise ValueError(f"bits names unknown layers {sorted(unknown)}; layers: {layers}")
    shared = copy.deepcopy(model)
    for name, b in per_layer.items():
        parent_name, _, child = name.rpartition(".")
        parent = shared.get_submodule(parent_name) if parent_name else shared
        setattr(parent, child, SharedWeights(getattr(parent, child), b, iterations))
    return shared


def shared_weight_bytes(model: nn.Module) -> int:
    """Bytes of a k-means-quantized model: indices and codebooks for shared layers, fp32 for
    every other parameter (biases, batch norm)."""
    shared = [m for m in model.modules() if isinstance(m, SharedWeights)]
    in_codebooks = {id(m.layer.weight) for m in shared} | {id(m.centroids) for m in shared}
    bits = sum(m.storage_bits() for m in shared)
    bits += sum(32 * p.numel() for p in model.parameters() if id(p) not in in_codebooks)
    return -(-bits // 8)
