"""Transfer sets made when the original data is not at hand: images synthesised from a small
sample by Bucilă et al.'s MUNGE (2006, "Model Compression", Sec. 4.3), mixup-style convex
combinations, or Gaussian noise; the teacher then labels them
(:func:`course_lib.model_distillation.label_with_teacher`)."""

from __future__ import annotations

import math

import torch

from ..checks import check_choice, check_int, check_real, check_type
from .common import _check_images

__all__ = ["TRANSFER_SETS", "munge", "mixup_images", "noise_images", "transfer_images"]


TRANSFER_SETS = ("images", "munge", "mixup", "noise")


def _check_generator(generator: torch.Generator) -> None:
    check_type(generator, "generator", torch.Generator, "a torch.Generator (torch.Generator().manual_seed(0))")


def _nearest_neighbours(x: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """For each row of ``x`` (n, D), the index of its nearest other row (Euclidean), in chunks of
    rows so that memory stays (chunk, n). (n,) int64."""
    index = []
    for start in range(0, len(x), chunk):
        d = torch.cdist(x[start:start + chunk], x)                          # (chunk, n)
        rows = torch.arange(start, min(start + chunk, len(x)))
        d[rows - start, rows] = math.inf                                     # never itself
        index.append(d.argmin(dim=1))
    return torch.cat(index)


def munge(images: torch.Tensor, size: int, generator: torch.Generator, swap_probability: float = 0.5,
          width_divisor: float = 10.0) -> torch.Tensor:
    """MUNGE (Bucilă, Caruana & Niculescu-Mizil 2006, section 4): synthetic examples near the
    data. Each example :math:`e` is paired with its nearest neighbour :math:`e'` (Euclidean, over
    pixels); each attribute (pixel) :math:`a` is, with probability :math:`p`
    (``swap_probability``), replaced by a draw from :math:`\\mathcal N(e'_a, sd)` with
    :math:`sd = |e_a - e'_a| / s` (``width_divisor``), and kept otherwise. Rounds over the sample
    are repeated until ``size`` examples are made (the first ``size`` are returned).

    The paper's pass also alters the neighbour :math:`e'` in place as it goes; here each round
    leaves the sample as it was, so a round is one vectorised step and the result does not depend
    on the order of the loop. The defaults are this course's, not the paper's (it tunes
    :math:`p` and :math:`s` per data set).

    Args:
        images: (n, C, H, W), n >= 2, finite; not modified.
        size: examples to make, an int >= 1.
        generator: a CPU ``torch.Generator`` (the only source of randomness).

    Returns:
        (size, C, H, W) float tensor, on the CPU.

    Raises:
        TypeError / ValueError: ``images`` not a finite (n, C, H, W) float tensor with n >= 2;
            ``size`` not an int >= 1; ``swap_probability`` outside [0, 1]; ``width_divisor`` not
            a finite number > 0; ``generator`` not a torch.Generator.
    """
    _check_images(images, at_least=2)
    check_int(size, "size", 1)
    check_real(swap_probability, "swap_probability", 0, 1)
    check_real(width_divisor, "width_divisor", 0, math.inf, low_open=True, high_open=True)
    _check_generator(generator)
    x = images.detach().cpu().flatten(1)                     # (n, D)
    neighbour = x[_nearest_neighbours(x)]                    # (n, D): e' for each e
    sd = (x - neighbour).abs() / width_divisor               # (n, D)
    rounds = []
    for _ in range(math.ceil(size / len(x))):
        swap = torch.rand(x.shape, generator=generator) < swap_probability
        drawn = neighbour + sd * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        rounds.append(torch.where(swap, drawn, x))
    return torch.cat(rounds)[:size].reshape(size, *images.shape[1:])


def mixup_images(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Mixup-style convex combinations (Zhang et al. 2018, "mixup"): :math:`\\lambda x_i +
    (1 - \\lambda) x_j` for random pairs :math:`(i, j)` of the sample and :math:`\\lambda \\sim
    U(0, 1)` (mixup's Beta(1, 1)). No labels are mixed: the teacher labels the results.

    Returns:
        (size, C, H, W) float tensor, on the CPU; ``images`` is not modified.

    Raises:
        TypeError / ValueError: as :func:`munge` (n >= 2 images, ``size`` >= 1, a generator).
    """
    _check_images(images, at_least=2)
    check_int(size, "size", 1)
    _check_generator(generator)
    x = images.detach().cpu()
    i = torch.randint(0, len(x), (size,), generator=generator)
    j = torch.randint(0, len(x), (size,), generator=generator)
    lam = torch.rand(size, generator=generator, dtype=x.dtype).view(size, 1, 1, 1)
    return lam * x[i] + (1 - lam) * x[j]


def noise_images(images: torch.Tensor, size: int, generator: torch.Generator, std: float = 0.5) -> torch.Tensor:
    """Gaussian-noise variants: :math:`x_i + \\sigma \\varepsilon` with :math:`i` drawn uniformly
    from the sample and :math:`\\varepsilon \\sim \\mathcal N(0, I)`; ``std`` = :math:`\\sigma`
    in the images' units (normalised MNIST pixels have standard deviation 1).

    Returns:
        (size, C, H, W) float tensor, on the CPU; ``images`` is not modified.

    Raises:
        TypeError / ValueError: ``images`` not a finite, non-empty (n, C, H, W) float tensor;
            ``size`` not an int >= 1; ``std`` not a finite number >= 0; no generator.
    """
    _check_images(images)
    check_int(size, "size", 1)
    check_real(std, "std", 0, math.inf, high_open=True)
    _check_generator(generator)
    x = images.detach().cpu()
    i = torch.randint(0, len(x), (size,), generator=generator)
    return x[i] + std * torch.randn((size, *x.shape[1:]), generator=generator, dtype=x.dtype)


def transfer_images(kind: str, sample: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """The images of a transfer set of ``kind`` (one of :data:`TRANSFER_SETS`): ``"images"``, the
    first ``size`` images of ``sample`` themselves (the unlabeled training images); ``"munge"``,
    ``"mixup"`` or ``"noise"``, ``size`` images synthesised from ``sample`` with the defaults of
    :func:`munge`, :func:`mixup_images`, :func:`noise_images`.

    Raises:
        ValueError: an unknown ``kind``; ``size`` above ``len(sample)`` for ``"images"``; and as
            the function it calls.
    """
    check_choice(kind, "kind", TRANSFER_SETS)
    if kind == "images":
        _check_images(sample, "sample")
        check_int(size, "size", 1, len(sample))
        _check_generator(generator)
        return sample[:size].detach().cpu().clone()
    make = {"munge": munge, "mixup": mixup_images, "noise": noise_images}[kind]
    return make(sample, size, generator)
