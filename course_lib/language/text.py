"""The text a language model learns: Python's own reference documentation, as characters.

``datasets/python-docs/topics.json`` holds the 79 topics of ``pydoc_data.topics`` from CPython 3.11.7
(the text ``help("if")`` shows; Python Software Foundation licence), copied once so every machine reads
the same characters (the module changes between Python versions). It is checked against its SHA-256
before it is read.

The split is by **document**, not by random characters: a topic belongs wholly to ``train``,
``validation`` or ``test``, so the test text is text the model never saw, not neighbours of it. The
topics are shuffled with ``numpy.random.default_rng(TEXT_SPLIT_SEED)``; the first ones go to test until it
holds 10 % of the characters, the next to validation until it holds 10 %, the rest to train.

The model reads characters (a vocabulary of about a hundred), so no tokenizer needs training and a
perplexity is directly bits per character: :math:`\\text{bpc} = \\text{loss} / \\ln 2`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checks import check_choice, check_int, check_type
from ..data import DatasetError, verified_path

__all__ = ["CORPUS", "CORPUS_FILE", "TEXT_SPLIT_SEED", "SPLITS", "read_topics", "split_topics",
           "CharTokenizer", "Corpus", "load_corpus", "windows"]

CORPUS = "python-docs"
CORPUS_FILE = "topics.json"
TEXT_SPLIT_SEED = 2024
SPLITS = ("train", "validation", "test")
_HELD_OUT_FRACTION = 0.10


def read_topics(root: Path | None = None) -> dict[str, str]:
    """The corpus as ``{topic: text}``, after checking the file's SHA-256.

    Raises:
        DatasetError: the file is missing, corrupted, or not a JSON object of strings.
    """
    path = verified_path(CORPUS, CORPUS_FILE, root)
    topics = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(topics, dict) or not all(isinstance(v, str) for v in topics.values()):
        raise DatasetError(f"dataset file {CORPUS}/{CORPUS_FILE} must hold a JSON object of strings")
    return topics


def split_topics(topics: dict[str, str], seed: int = TEXT_SPLIT_SEED) -> dict[str, list[str]]:
    """Which topics go to which split (see the module's docstring): ``{split: [topic, ...]}``."""
    names = sorted(topics)
    order = np.random.default_rng(seed).permutation(len(names))
    total = sum(len(t) for t in topics.values())
    splits: dict[str, list[str]] = {s: [] for s in SPLITS}
    held = {"test": 0, "validation": 0}
    for i in order:
        name = names[i]
        for split in ("test", "validation"):
            if held[split] < _HELD_OUT_FRACTION * total:
                splits[split].append(name)
                held[split] += len(topics[name])
                break
        else:
            splits["train"].append(name)
    return {s: sorted(v) for s, v in splits.items()}


class CharTokenizer:
    """Characters to integers and back; the vocabulary is every character of the corpus, sorted.

    A character the vocabulary lacks is an error that names it (the corpus is fixed, so this only
    happens with text typed by hand)."""

    def __init__(self, vocabulary: str):
        check_type(vocabulary, "vocabulary", str, "a str of distinct characters")
        if len(set(vocabulary)) != len(vocabulary) or not vocabulary:
            raise ValueError("vocabulary must be a non-empty str of distinct characters")
        self.vocabulary = vocabulary
        self._index = {c: i for i, c in enumerate(vocabulary)}

    def __len__(self) -> int:
        return len(self.vocabulary)

    def encode(self, text: str) -> torch.Tensor:
        """``text`` as a 1-D int64 tensor of character indices."""
        check_type(text, "text", str, "a str")
        unknown = sorted(set(text) - set(self._index))
        if unknown:
            raise ValueError(f"text holds characters outside the vocabulary: {''.join(unknown[:10])!r}")
        return torch.tensor([self._index[c] for c in text], dtype=torch.long)

    def decode(self, indices) -> str:
        """The characters of a sequence of indices."""
        return "".join(self.vocabulary[int(i)] for i in indices)


@dataclass(frozen=True)
class Corpus:
    """The corpus's three splits as index tensors, and the tokenizer that made them. Topics are
    joined in name order, each followed by a blank line."""
    tokenizer: CharTokenizer
    train: torch.Tensor
    validation: torch.Tensor
    test: torch.Tensor
    topics: dict[str, list[str]]

    def split(self, name: str) -> torch.Tensor:
        check_choice(name, "split", SPLITS)
        return getattr(self, name)


def load_corpus(root: Path | None = None) -> Corpus:
    """Read, verify and split the corpus (a second): see the module's docstring."""
    topics = read_topics(root)
    tokenizer = CharTokenizer("".join(sorted(set("".join(topics.values())) | {"\n"})))
    splits = split_topics(topics)
    encoded = {s: tokenizer.encode("".join(topics[name] + "\n\n" for name in names)) for s, names in splits.items()}
    return Corpus(tokenizer, encoded["train"], encoded["validation"], encoded["test"], splits)


def windows(tokens: torch.Tensor, length: int, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping windows of ``length`` inputs and their next-character targets:
    ``(inputs, targets)``, each (n, length); at most ``limit`` windows, from the start."""
    check_int(length, "length", 1)
    check_int(limit, "limit", 1, allow_none=True)
    n = (len(tokens) - 1) // length
    n = n if limit is None else min(n, limit)
    if n < 1:
        raise ValueError(f"tokens must hold more than length={length} characters, got {len(tokens)}")
    inputs = tokens[: n * length].view(n, length)
    targets = tokens[1: n * length + 1].view(n, length)
    return inputs, targets
