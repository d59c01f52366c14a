"""Notebook 09's workflows: calibration windows, paired comparisons of two models' bits per character,
and the panel's question: on this device, at this context length, do the weights, the KV cache and the
activations fit, how fast would one character be generated, and at what perplexity?"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from .. import hardware, language, zoo
from ..checks import check_choice, check_int
from ..data import SEED_RANGE
from ..language import GPT, cache_bytes_per_token
from ..measure import ModelReport, format_bytes, weight_bytes

__all__ = ["calibration_windows", "BpcComparison", "compare_bpc", "PANEL_CONTEXTS", "PANEL_WEIGHTS", "PANEL_WINDOWS",
           "LanguageDeployment", "language_deployment", "language_experiment"]

PANEL_CONTEXTS = (16, 32, 64, 128)
# The weight formats the panel offers: (bits, group size) of round-to-nearest, None for float32.
PANEL_WEIGHTS = {"fp32": None, "int8 per channel": (8, None), "int4 g32": (4, 32), "int3 g32": (3, 32)}
PANEL_WINDOWS = 128                 # the test windows the panel scores (of 404), for an answer in a second


def calibration_windows(tokens: torch.Tensor, n: int, length: int, seed: int) -> torch.Tensor:
    """``n`` windows of ``length`` characters at random offsets of ``tokens`` (the training split), drawn
    from a generator seeded with ``seed``: (n, length)."""
    check_int(n, "n", 1)
    check_int(length, "length", 1, len(tokens))
    check_int(seed, "seed", *SEED_RANGE)
    offsets = torch.randint(0, len(tokens) - length + 1, (n,), generator=torch.Generator().manual_seed(seed))
    return torch.stack([tokens[o:o + length] for o in offsets.tolist()])


@dataclass(frozen=True)
class BpcComparison:
    """Model B against model A on the same windows: the mean difference of bits per character, its 95 %
    interval over windows (paired: each window scored by both), and the perplexity ratio it means."""
    delta_bpc: float
    low: float
    high: float
    windows: int

    @property
    def perplexity_ratio(self) -> float:
        """:math:`2^{\\Delta \\text{bpc}}`: B's perplexity over A's."""
        return 2 ** self.delta_bpc

    def __str__(self) -> str:
        return (f"{self.delta_bpc:+.4f} bpc [{self.low:+.4f}, {self.high:+.4f}] "
                f"(perplexity x{self.perplexity_ratio:.4f})")


def compare_bpc(losses_a: torch.Tensor, losses_b: torch.Tensor) -> BpcComparison:
    """Paired comparison of per-window losses (nats, from :func:`course_lib.language.window_losses`):
    mean difference in bits, with a normal 95 % interval, :math:`\\pm 1.96\\, s / \\sqrt{n}`, over windows."""
    if losses_a.shape != losses_b.shape or losses_a.dim() != 1 or len(losses_a) < 2:
        raise ValueError("losses_a and losses_b must be 1-D tensors of the same length (>= 2), one loss per window")
    delta = (losses_b - losses_a).double() / math.log(2)
    half = 1.96 * float(delta.std()) / math.sqrt(len(delta))
    mean = float(delta.mean())
    return BpcComparison(mean, mean - half, mean + half, len(delta))


@dataclass(frozen=True)
class LanguageDeployment:
    """One generated character on a device: what must fit and how fast it would come."""
    verdict: hardware.Verdict
    weights: str
    kv_cache: str
    context: int
    weight_bytes: int
    cache_bytes: int
    activation_bytes: int
    macs: int
    bpc: float

    @property
    def characters_per_second(self) -> float:
        return 1.0 / self.verdict.estimate.seconds if self.verdict.estimate.seconds > 0 else math.inf

    def lines(self) -> list[str]:
        v = self.verdict
        fits = "fits" if v.fits else "does NOT fit"
        lines = [f"<b>{v.device}</b>: weights {self.weights}, KV cache {self.kv_cache}, context {self.context} "
                 f"characters: <b>{fits}</b>.",
                 f"Weights {format_bytes(self.weight_bytes)}; KV cache at {self.context} characters "
                 f"{format_bytes(self.cache_bytes)}; activations for one step {format_bytes(self.activation_bytes)}.",
                 f"Storage {format_bytes(v.storage_used)} of {format_bytes(v.storage_available)}; working memory "
                 f"{format_bytes(v.memory_used)} of {format_bytes(v.memory_available)}.",
                 f"Estimated {self.characters_per_second:,.0f} characters per second "
                 f"({1000 * v.estimate.seconds:.2f} ms each, {v.estimate.bound}-bound; a roofline estimate, "
                 "not a measurement).",
                 f"Measured on test windows: {self.bpc:.3f} bits per character (perplexity "
                 f"{2 ** self.bpc:.2f} per character)."]
        return lines + [f"Why not: {r}" for r in v.reasons]


def language_deployment(model: GPT, device_name: str, context: int, weights: str, weight_bytes: int,
                        kv_cache: str, bpc: float) -> LanguageDeployment:
    """The verdict for generating one character with ``context`` characters already in the cache, the
    weights stored as ``weights`` in ``weight_bytes`` (measured), the cache in ``kv_cache`` (``"fp16"`` or
    ``"int8"``), through :func:`course_lib.hardware.check_fit`: working memory holds the cache and the
    step's activations (float32: the residual stream, query, key and value, the attention scores of every
    head, the MLP's hidden layer, the logits); each step reads every weight and the whole cache; it costs
    a multiply-accumulate per weight of the blocks and the head, plus :math:`2 T d` per layer for
    attention. Weight-only formats compute in float32 after dequantizing.

    Raises:
        ValueError: an unknown device or cache format, or a context outside [1, block_size].
    """
    device = hardware.get_device(device_name)
    check_int(context, "context", 1, model.config.block_size)
    if kv_cache not in ("fp16", "int8"):
        raise ValueError(f"kv_cache must be 'fp16' or 'int8', got {kv_cache!r}")
    cfg = model.config
    cache = context * cache_bytes_per_token(model, None if kv_cache == "fp16" else 8)
    activations = 4 * (8 * cfg.n_embd + cfg.n_head * context + cfg.vocab_size)
    macs = (sum(p.numel() for name, p in model.named_parameters() if p.dim() == 2 and "embedding" not in name)
            + 2 * context * cfg.n_embd * cfg.n_layer)
    report = ModelReport(name=f"char_gpt ({weights})", number_format="fp32", encoding="dense",
                         parameters=sum(p.numel() for p in model.parameters()), nonzeros=0, weight_bytes=weight_bytes,
                         macs=macs, peak_activation_bytes=cache + activations, activation_traffic_bytes=cache,
                         layers=())
    return LanguageDeployment(hardware.check_fit(report, device), weights, kv_cache, context, weight_bytes, cache,
                              activations, macs, bpc)


@lru_cache(maxsize=None)
def _panel_model(weights: str) -> GPT:
    model = zoo.load("char_gpt_python_docs")
    chosen = PANEL_WEIGHTS[weights]
    return model if chosen is None else language.quantize_weights(model, *chosen)


@lru_cache(maxsize=None)
def _panel_bpc(weights: str, kv_cache: str) -> float:
    model = _panel_model(weights)
    scored = language.set_kv_bits(copy.deepcopy(model), 8) if kv_cache == "int8" else model
    return language.bits_per_character(scored, language.load_corpus().test, limit=PANEL_WINDOWS)


def language_experiment(device_name: str, context: int, weights: str, kv_cache: str) -> LanguageDeployment:
    """The panel's run: the zoo's language model with ``weights`` (one of :data:`PANEL_WEIGHTS`, rounded to
    nearest) and ``kv_cache``, scored on the first :data:`PANEL_WINDOWS` test windows (each combination once
    per session), then :func:`language_deployment` on ``device_name`` at ``context``.

    Raises:
        ValueError: an unknown device, weight format or cache format, or a context outside [1, 128].
    """
    check_choice(weights, "weights", list(PANEL_WEIGHTS))
    check_choice(kv_cache, "kv_cache", ["fp16", "int8"])
    model = _panel_model(weights)
    return language_deployment(model, device_name, context, weights, weight_bytes(model), kv_cache,
                               _panel_bpc(weights, kv_cache))
