"""The KV cache: generating one character at a time without reading the whole context again.

Without a cache, each new character costs a forward pass over the whole context: :math:`O(T)` tokens of
work per step. But the keys and values of the characters already read do not change (attention is
causal), so a decoder keeps them, per layer, and each step computes the new character's query, key and
value only, attending over the stored ones. The cache grows by
:math:`2 \\cdot n_\\text{layer} \\cdot d` numbers per character: 2 bytes each in float16.

An **int8 KV cache** stores each key and value vector of each head as int8 codes with one float16
scale (symmetric round-to-nearest, :func:`course_lib.language.gpt.fake_quantize_per_token`), as
KIVI (Liu et al. 2024) and vLLM's FP8/INT8 caches do in finer or coarser ways: half the bytes of
float16, plus :math:`2 \\cdot n_\\text{layer} \\cdot H` scales per character. Setting
``attention.kv_bits`` on a model scores whole sequences exactly as a cached decoder would see them
(a test checks the two agree).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..checks import check_int, check_real, check_type
from .gpt import GPT, fake_quantize_per_token

__all__ = ["KVCache", "forward_with_cache", "generate_cached", "cache_bytes_per_token", "set_kv_bits"]


class KVCache:
    """Keys and values of the characters read so far, per layer, in buffers allocated once for
    ``capacity`` characters (as a device's static buffers are): float16, or ``bits``-bit codes with a
    float16 scale per head and character."""

    def __init__(self, n_layer: int, capacity: int, bits: int | None = None):
        check_int(n_layer, "n_layer", 1)
        check_int(capacity, "capacity", 1)
        check_int(bits, "bits", 2, 8, allow_none=True)
        self.bits, self.capacity = bits, capacity
        self.buffers: list[dict[str, torch.Tensor]] = [{} for _ in range(n_layer)]
        self.length = 0

    def _allocate(self, layer: int, like: torch.Tensor) -> None:
        B, H, _, hd = like.shape
        codes = torch.float16 if self.bits is None else torch.int8
        for name in ("k", "v"):
            self.buffers[layer][name] = torch.zeros(B, H, self.capacity, hd, dtype=codes)
            if self.bits is not None:
                self.buffers[layer][name + "_scale"] = torch.zeros(B, H, self.capacity, 1, dtype=torch.float16)

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new keys and values (B, H, t, hd) of ``layer`` after the :attr:`length` characters
        already stored; return all of that layer's, as the attention reads them (float32, after the round
        trip through storage). :attr:`length` moves on when the model's step is done
        (:func:`forward_with_cache`)."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.capacity:
            raise ValueError(f"the cache holds {self.capacity} characters; {end} do not fit")
        if not self.buffers[layer]:
            self._allocate(layer, k)
        stored = self.buffers[layer]
        out = []
        for name, t in (("k", k), ("v", v)):
            if self.bits is None:
                stored[name][:, :, start:end] = t.half()
                out.append(stored[name][:, :, :end].float())
            else:
                codes, scales = fake_quantize_per_token(t, self.bits)
                stored[name][:, :, start:end] = codes
                stored[name + "_scale"][:, :, start:end] = scales
                out.append(stored[name][:, :, :end].float() * stored[name + "_scale"][:, :, :end].float())
        return out[0], out[1]

    def nbytes(self) -> int:
        """Bytes the cache's characters take (codes and scales of the :attr:`length` stored so far)."""
        return sum(t[:, :, :self.length].numel() * t.element_size() for layer in self.buffers for t in layer.values())


def cache_bytes_per_token(model: GPT, bits: int | None = None) -> int:
    """Bytes one character adds to the cache: float16 keys and values (``bits=None``), or ``bits``-bit
    codes plus a float16 scale per head, for keys and values of every layer."""
    check_type(model, "model", GPT, "a course_lib.language.GPT")
    heads = sum(block.attention.n_head for block in model.blocks)
    head_dim = model.blocks[0].attention.head_dim
    if bits is None:
        return 2 * heads * head_dim * 2
    return 2 * heads * (head_dim * bits // 8 + 2)


@torch.no_grad()
def forward_with_cache(model: GPT, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Logits (B, t, vocab) for the characters ``idx`` (B, t) that follow those in ``cache``; their keys
    and values are added to it."""
    start = cache.length
    x = model.embed(idx, start)
    t = idx.shape[1]
    allowed = torch.ones(t, start + t, dtype=torch.bool).tril(start)      # character i sees 0 .. start + i
    for i, block in enumerate(model.blocks):
        attention = block.attention
        q, k, v = attention.heads(block.ln1(x))
        keys, values = cache.append(i, k, v)
        x = x + attention.combine(F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed))
        x = x + block.mlp(block.ln2(x))
    cache.length += t
    return model.head(model.ln_f(x))


@torch.no_grad()
def generate_cached(model: GPT, prompt: torch.Tensor, length: int, bits: int | None = None, seed: int = 0,
                    temperature: float = 0.8) -> tuple[torch.Tensor, KVCache]:
    """Sample ``length`` characters after ``prompt`` (1-D) with a KV cache of ``bits`` (None: float16);
    the same draws as :func:`course_lib.language.gpt.generate` for the same seed. Returns the new indices
    and the cache."""
    check_int(length, "length", 1)
    check_real(temperature, "temperature", 0, low_open=True)
    if len(prompt) + length > model.config.block_size:
        raise ValueError(f"prompt and length together must fit the context of {model.config.block_size} "
                         f"characters, got {len(prompt)} + {length}")
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    cache = KVCache(len(model.blocks), model.config.block_size, bits)
    logits = forward_with_cache(model, prompt.view(1, -1), cache)[0, -1]
    new = []
    for step in range(length):
        nxt = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator)
        new.append(int(nxt))
        if step + 1 < length:
            logits = forward_with_cache(model, nxt.view(1, 1), cache)[0, -1]
    return torch.tensor(new), cache


def set_kv_bits(model: GPT, bits: int | None) -> GPT:
    """Make every attention layer of ``model`` round its keys and values to ``bits`` per token and head
    (None: not at all), in place, as a cache of that many bits would; returns the model."""
    check_type(model, "model", GPT, "a course_lib.language.GPT")
    check_int(bits, "bits", 2, 8, allow_none=True)
    for block in model.blocks:
        block.attention.kv_bits = bits
    return model
