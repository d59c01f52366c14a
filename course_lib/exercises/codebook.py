"""Exercise of notebook 02, weight sharing: k-means quantization of a tensor (Deep Compression).

The reference (``kmeans_quantize_reference``, for :func:`falls_back_to`) and a checker that tests
the learner's code on small hand-made cases and names typical mistakes.
"""

from __future__ import annotations

from typing import Callable

import torch

from .checking import (check_returned, check_unchanged, checker, CheckResult, describe, failed, passed, require,
                       run_learner)

__all__ = ["kmeans_quantize_reference", "check_kmeans_quantize"]


# ----------------------------------------------------------------------------- kmeans_quantize

def kmeans_quantize_reference(w: torch.Tensor, bits: int,
                              iterations: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """``(centroids, indices)``: :math:`2^{bits}` centroids found by Lloyd's algorithm from a
    linear initialisation between ``w.min()`` and ``w.max()`` (Han et al. 2016, Deep Compression),
    and the int64 index of each weight's nearest centroid, of ``w``'s shape. An empty cluster
    keeps its centroid."""
    x = w.detach().reshape(-1).float()                                        # (n,)
    centroids = torch.linspace(x.min().item(), x.max().item(), 2 ** bits)     # (k,)
    for _ in range(iterations):
        indices = (x[:, None] - centroids[None, :]).abs().argmin(1)           # (n,) nearest centroid
        for c in range(len(centroids)):
            members = x[indices == c]
            if len(members):                                                  # empty: keep it
                centroids[c] = members.mean()
    indices = (x[:, None] - centroids[None, :]).abs().argmin(1)
    return centroids, indices.reshape(w.shape)


@checker("kmeans_quantize")
def check_kmeans_quantize(kmeans_quantize: Callable) -> CheckResult:
    """Check ``kmeans_quantize(w, bits) -> (centroids, indices)``: :math:`2^{bits}` finite
    centroids (an empty cluster keeps a finite value), ``indices`` an integer tensor of ``w``'s
    shape pointing to each weight's nearest centroid, each used centroid the mean of its weights
    (a fixed point of Lloyd's algorithm), an error close to the reference's; ``w`` unchanged.
    Reference: :func:`kmeans_quantize_reference`."""
    name = "kmeans_quantize"
    g = torch.Generator().manual_seed(5)
    cases = [(torch.tensor([0.0, 0.1, 0.9, 1.0]), 1),
             (torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]), 3),   # 6 of the 8 clusters stay empty
             (torch.randn(8, 6, generator=g), 2), (torch.randn(5, 3, 3, generator=g), 3)]
    for w, bits in cases:
        original = w.clone()
        where = f"for w {describe(w)} and bits={bits}"
        got = run_learner(kmeans_quantize, (w, bits), name, case=where[4:])
        require((check_unchanged(original, w, name, where, "w", "read w (w.reshape(-1) is a view: "
                                 "clone it before writing).")
                 or check_returned(got, name, where, (tuple, list), what="(centroids, indices)")))
        if len(got) != 2:
            return failed(name, f"{where} return (centroids, indices), got {len(got)} values.")
        centroids, indices = got
        k = 2 ** bits
        require((check_returned(centroids, name, where, torch.Tensor, dtype="float", what="centroids")
                 or check_returned(indices, name, where, torch.Tensor, dtype="integer", what="indices")))
        if centroids.dim() != 1 or len(centroids) != k:
            hint = "k = 2**bits centroids, not bits." if centroids.numel() == bits else \
                f"use k = 2**bits = {k} centroids in a 1-D tensor; keep empty clusters (centroid unchanged)."
            return failed(name, f"{where}: expected {k} centroids, got shape {tuple(centroids.shape)}. "
                          f"Hint: {hint}")
        if not torch.isfinite(centroids).all():
            return failed(name, f"{where}: centroids {describe(centroids)} are not all finite. Hint: an empty "
                          "cluster (no weight assigned) has no mean - 0/0 is NaN; keep its previous centroid.")
        if indices.shape != w.shape:
            return failed(name, f"{where}: indices must have w's shape {tuple(w.shape)}, got "
                          f"{tuple(indices.shape)}. Hint: reshape them back with .reshape(w.shape).")
        if indices.min() < 0 or indices.max() >= k:
            return failed(name, f"{where}: indices must lie in [0, {k}), got [{int(indices.min())}, "
                          f"{int(indices.max())}].")
        centroids = centroids.detach().float()
        nearest = (w.reshape(-1, 1) - centroids.reshape(1, -1)).abs().min(1).values
        chosen = (w.reshape(-1) - centroids[indices.reshape(-1).long()]).abs()
        if not torch.allclose(chosen, nearest, atol=1e-6):
            return failed(name, f"{where}: some weights are not assigned to their nearest centroid. Hint: "
                          "indices = (w[:, None] - centroids[None, :]).abs().argmin(1).")
        for c in indices.unique():
            members = w.reshape(-1)[indices.reshape(-1) == c]
            if not torch.allclose(centroids[c], members.mean(), atol=1e-4):
                return failed(name, f"{where}: centroid {int(c)} is {centroids[c].item():.4f} but its "
                              f"weights average {members.mean().item():.4f}. Hint: repeat (assign, then "
                              "move each centroid to the mean of its weights) until stable.")
        ref_centroids, ref_indices = kmeans_quantize_reference(w, bits)
        ours = (ref_centroids[ref_indices] - w).pow(2).mean()
        theirs = (centroids[indices.long()] - w).pow(2).mean()
        if theirs > ours * 1.5 + 1e-6:
            return failed(name, f"{where}: reconstruction error {theirs:.5f}, the reference reaches "
                          f"{ours:.5f}. Hint: initialise the centroids spread linearly between w.min() "
                          "and w.max() (Deep Compression), not at random.")
    return passed(name, len(cases), "all cases pass (2**bits centroids, empty clusters kept finite, "
                  "nearest assignment, centroids at their clusters' means)")
