"""A small decoder-only transformer over characters, in the manner of nanoGPT (Karpathy 2022) and GPT-2
(Radford et al. 2019): token and position embeddings, ``n_layer`` pre-norm blocks of causal
self-attention and an MLP, a final LayerNorm and a linear head.

One block, for a sequence :math:`x \\in \\mathbb{R}^{T \\times d}`:

.. math::
    x \\leftarrow x + W_O\\,[\\mathrm{head}_1, \\dots, \\mathrm{head}_H], \\quad
    \\mathrm{head}_h = \\mathrm{softmax}\\!\\Big(\\frac{Q_h K_h^\\top}{\\sqrt{d/H}} + M\\Big) V_h, \\quad
    Q = \\mathrm{LN}_1(x) W_Q,\\; K = \\mathrm{LN}_1(x) W_K,\\; V = \\mathrm{LN}_1(x) W_V

.. math::
    x \\leftarrow x + W_2\\, \\mathrm{GELU}(W_1\\, \\mathrm{LN}_2(x))

with :math:`M` the causal mask (:math:`-\\infty` above the diagonal). Every matrix product of a block is
an ``nn.Linear`` without bias, named ``query``, ``key``, ``value``, ``proj`` (attention) and ``fc``,
``proj`` (MLP): the six layers the compression techniques work on. The embeddings and the head stay in
floating point, as in GPTQ and AWQ.

Two hooks serve the compression techniques, and do nothing by default:

- ``attention.head_mask`` (a buffer of ones, one per head) multiplies each head's output: head pruning
  sets entries to 0 (Michel et al. 2019; Kwon et al. 2022).
- ``attention.kv_bits`` (None): when set, keys and values are rounded per token and head to that many
  bits, exactly as an int8 KV cache stores them (:mod:`course_lib.language.kv_cache`), so a whole
  sequence can be scored as the cache would see it.

Generation with a KV cache, and the cache itself, live in :mod:`course_lib.language.kv_cache`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..checks import check_int, check_model, check_real, check_type
from ..data import SEED_RANGE
from .text import windows

__all__ = ["FLOAT16_TINIEST", "GPTConfig", "CausalSelfAttention", "MLP", "Block", "GPT", "fake_quantize_per_token",
           "LanguageTraining", "train_language_model", "window_losses", "bits_per_character", "generate"]


# The smallest positive float16 (a subnormal): the floor of every float16 scale. A floor like 1e-8 applied before
# the conversion would round to 0 in float16, and a vector of zeros would then divide 0 by 0.
FLOAT16_TINIEST = 2.0 ** -24


@dataclass(frozen=True)
class GPTConfig:
    """The model's shape: vocabulary, context length (``block_size``), layers, heads, width, dropout."""
    vocab_size: int
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.1

    def __post_init__(self) -> None:
        check_int(self.vocab_size, "vocab_size", 2)
        check_int(self.block_size, "block_size", 1)
        check_int(self.n_layer, "n_layer", 1)
        check_int(self.n_head, "n_head", 1)
        check_int(self.n_embd, "n_embd", 1)
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be a multiple of n_head={self.n_head}")
        check_real(self.dropout, "dropout", 0, 1, high_open=True)


def fake_quantize_per_token(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric round-to-nearest of ``x`` (..., head_dim) with one scale per vector, the last axis:
    :math:`s = \\max|x| / (2^{b-1} - 1)` stored in float16, codes :math:`q = \\mathrm{round}(x / s)`.
    Returns ``(codes, scales)``: int8 codes (..., head_dim) and float16 scales (..., 1)."""
    qmax = 2 ** (bits - 1) - 1
    scales = (x.abs().amax(-1, keepdim=True) / qmax).to(torch.float16).clamp_min(FLOAT16_TINIEST)
    codes = torch.round(x / scales.float()).clamp(-qmax, qmax).to(torch.int8)
    return codes, scales


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with separate query, key, value and output projections."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        d = config.n_embd
        self.n_head = config.n_head                 # heads kept (head pruning may remove some)
        self.head_dim = d // config.n_head
        self.query = nn.Linear(d, d, bias=False)
        self.key = nn.Linear(d, d, bias=False)
        self.value = nn.Linear(d, d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.dropout = nn.Dropout(config.dropout)
        self.register_buffer("head_mask", torch.ones(config.n_head))
        self.kv_bits: int | None = None

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values split into heads: each (B, H, T, d/H)."""
        B, T, _ = x.shape
        split = (B, T, self.n_head, self.head_dim)
        return tuple(layer(x).view(split).transpose(1, 2) for layer in (self.query, self.key, self.value))

    def combine(self, y: torch.Tensor) -> torch.Tensor:
        """Heads (B, H, T, d/H), each times its ``head_mask`` entry, back to (B, T, d), projected."""
        y = y * self.head_mask.view(1, -1, 1, 1)
        B, H, T, hd = y.shape
        return self.dropout(self.proj(y.transpose(1, 2).reshape(B, T, H * hd)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.heads(x)
        if self.kv_bits is not None:        # as an int8 KV cache would hand them back
            k, v = (codes.float() * scales.float() for codes, scales in
                    (fake_quantize_per_token(t, self.kv_bits) for t in (k, v)))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout.p if self.training else 0.0)
        return self.combine(y)


class MLP(nn.Module):
    """Two linear layers with a GELU between: d -> 4d -> d."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.gelu = nn.GELU()
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(self.gelu(self.fc(x))))


class Block(nn.Module):
    """A pre-norm transformer block: :math:`x + \\mathrm{attn}(\\mathrm{LN}_1 x)`, then
    :math:`x + \\mathrm{mlp}(\\mathrm{LN}_2 x)`."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.attention = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """The character-level language model: indices (B, T) -> next-character logits (B, T, vocab)."""

    def __init__(self, config: GPTConfig, seed: int = 0):
        super().__init__()
        check_type(config, "config", GPTConfig, "a GPTConfig")
        check_int(seed, "seed", *SEED_RANGE)
        self.config = config
        with torch.random.fork_rng(devices=[]):      # the layers' own initialisation, overwritten below,
            self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)      # must not draw from
            self.position_embedding = nn.Embedding(config.block_size, config.n_embd)   # the global generator
            self.dropout = nn.Dropout(config.dropout)
            self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
            self.ln_f = nn.LayerNorm(config.n_embd)
            self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        generator = torch.Generator().manual_seed(seed)
        # GPT-2's initialisation: N(0, 0.02), the residual projections scaled by 1/sqrt(2 n_layer).
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * config.n_layer) if name.endswith("proj.weight") else 0.02
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=generator) * std)

    def embed(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Token plus position embeddings of ``idx`` (B, T), positions ``start`` .. ``start + T - 1``."""
        T = idx.shape[1]
        if start + T > self.config.block_size:
            raise ValueError(f"the context holds at most block_size={self.config.block_size} characters, "
                             f"got {start + T}")
        positions = torch.arange(start, start + T, device=idx.device)
        return self.dropout(self.token_embedding(idx) + self.position_embedding(positions))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


@dataclass(frozen=True)
class LanguageTraining:
    """AdamW with a linear warm-up then a cosine decay to ``lr / 10``, on random windows of the training
    text; gradients clipped to norm 1 (nanoGPT's recipe, scaled down)."""
    steps: int = 2000
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.1
    eval_every: int = 250
    seed: int = 0

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr / 10 + 0.5 * (self.lr - self.lr / 10) * (1 + math.cos(math.pi * progress))


def train_language_model(model: nn.Module, tokens: torch.Tensor, settings: LanguageTraining,
                         validation: torch.Tensor | None = None, progress: bool = True,
                         description: str = "training") -> list[dict]:
    """Train ``model`` in place on random windows of ``tokens`` drawn from a generator seeded with
    ``settings.seed`` (dropout too draws from a seeded generator: the global one is left alone). Returns
    the history: every ``eval_every`` steps and at the end, the step, the mean training loss since the
    last record and the validation bits per character (if ``validation`` is given)."""
    check_model(model)
    check_type(settings, "settings", LanguageTraining, "a LanguageTraining")
    T = model.config.block_size
    generator = torch.Generator().manual_seed(settings.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "embedding" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": other, "weight_decay": 0.0}], lr=settings.lr, betas=(0.9, 0.99))
    history, losses, start = [], [], time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)                 # dropout's masks, inside fork_rng
        for step in tqdm(range(settings.steps), desc=description, disable=not progress):
            model.train()
            offsets = torch.randint(0, len(tokens) - T - 1, (settings.batch_size,), generator=generator)
            x = torch.stack([tokens[o:o + T] for o in offsets.tolist()])
            y = torch.stack([tokens[o + 1:o + T + 1] for o in offsets.tolist()])
            for group in optimizer.param_groups:
                group["lr"] = settings.lr_at(step)
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
            if (step + 1) % settings.eval_every == 0 or step + 1 == settings.steps:
                record = {"step": step + 1, "train_loss": round(sum(losses) / len(losses), 5),
                          "seconds": round(time.perf_counter() - start, 1)}
                if validation is not None:
                    record["validation_bpc"] = round(bits_per_character(model, validation), 5)
                history.append(record)
                losses = []
    model.eval()
    return history


@torch.no_grad()
def window_losses(model: nn.Module, tokens: torch.Tensor, limit: int | None = None,
                  batch_size: int = 16) -> torch.Tensor:
    """The mean next-character cross-entropy (nats) of each non-overlapping ``block_size`` window of
    ``tokens`` (at most ``limit`` windows): a (n,) tensor, for paired comparisons window by window."""
    check_int(batch_size, "batch_size", 1)
    was_training = model.training
    model.eval()
    inputs, targets = windows(tokens, model.config.block_size, limit)
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(inputs), batch_size):
        logits = model(inputs[i:i + batch_size].to(device))
        loss = F.cross_entropy(logits.transpose(1, 2), targets[i:i + batch_size].to(device), reduction="none")
        out.append(loss.mean(1).cpu())
    model.train(was_training)
    return torch.cat(out)


def bits_per_character(model: nn.Module, tokens: torch.Tensor, limit: int | None = None) -> float:
    """The model's bits per character on ``tokens``: mean cross-entropy over every predicted character,
    divided by :math:`\\ln 2`. (Perplexity per character is :math:`2^{\\text{bpc}}`.)"""
    return float(window_losses(model, tokens, limit).mean()) / math.log(2)


@torch.no_grad()
def generate(model: nn.Module, prompt: torch.Tensor, length: int, seed: int = 0,
             temperature: float = 0.8) -> torch.Tensor:
    """Sample ``length`` characters after ``prompt`` (1-D indices), re-reading the whole context at each
    step (no cache: see :func:`course_lib.language.kv_cache.generate_cached`). Returns the new indices."""
    check_int(length, "length", 1)
    check_real(temperature, "temperature", 0, low_open=True)
    generator = torch.Generator().manual_seed(seed)
    context = prompt.view(1, -1)
    new = []
    for _ in range(length):
        logits = model(context[:, -model.config.block_size:])[0, -1] / temperature
        nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
        new.append(int(nxt))
        context = torch.cat([context, nxt.view(1, 1)], 1)
    return torch.tensor(new)
