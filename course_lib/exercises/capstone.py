"""Exercises of notebook 10, the capstone: Deep Compression's third stage and its accounting.

* ``huffman_code_lengths(counts)``: the code length of each symbol in an optimal prefix code
  (Huffman 1952), as :func:`course_lib.encoding.huffman_code_lengths`;
* ``layer_compression_ratio(weights, biases, entries, bits, index_bits)``: a layer's dense fp32
  size over its size in Deep Compression's format before Huffman coding, as
  :class:`course_lib.deep_compression.LayerAccount` counts it;
* ``relative_index(w, index_bits)``: the relative-index entries of a flattened weight, fillers
  included, as :func:`course_lib.encoding.encode_relative_index`.

Each has a reference (for :func:`falls_back_to`) and a checker that runs the learner's code on
small hand-made cases and names the typical mistakes.
"""

from __future__ import annotations

import heapq
import math
from typing import Callable

import torch

from .. import encoding
from .checking import (check_returned, check_unchanged, checker, CheckResult, describe, failed, passed, require,
                       run_learner)

__all__ = ["huffman_code_lengths_reference", "check_huffman_code_lengths", "layer_compression_ratio_reference",
           "check_layer_compression_ratio", "relative_index_reference", "check_relative_index"]


# ----------------------------------------------------------------------------- huffman_code_lengths

def huffman_code_lengths_reference(counts: list[int]) -> list[int]:
    """``lengths[s]``: the bits of symbol ``s`` in a Huffman code of the histogram ``counts``
    (0 for a symbol of count 0, 1 for a lone symbol). Repeatedly merge the two lightest entries;
    every symbol under a merge gets one more bit."""
    lengths = [0] * len(counts)
    pool = [(c, s, [s]) for s, c in enumerate(counts) if c > 0]     # (weight, tie-break, symbols)
    heapq.heapify(pool)
    if len(pool) == 1:
        lengths[pool[0][1]] = 1
    made = len(counts)
    while len(pool) > 1:
        weight_a, _, a = heapq.heappop(pool)
        weight_b, _, b = heapq.heappop(pool)
        for s in a + b:
            lengths[s] += 1
        heapq.heappush(pool, (weight_a + weight_b, made, a + b))
        made += 1
    return lengths


_HUFFMAN_CASES = [[5, 2, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1, 1], [0, 7, 0], [45, 13, 12, 16, 9, 5],     # CLRS's example
                  [3, 0, 1, 1, 0, 6], [10, 1], [1, 2, 4, 8, 16, 32], [4]]


def _as_int_list(got) -> list[int] | None:
    if isinstance(got, torch.Tensor) and got.dim() == 1 and not got.is_floating_point():
        return [int(v) for v in got.tolist()]
    if isinstance(got, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in got):
        return list(got)
    return None


@checker("huffman_code_lengths")
def check_huffman_code_lengths(huffman_code_lengths: Callable[[list[int]], list[int]]) -> CheckResult:
    """Check ``huffman_code_lengths(counts) -> list[int]``: one length per symbol in symbol order,
    0 for a count of 0, 1 for a lone symbol, lengths of a prefix code (Kraft's sum at most 1)
    whose total :math:`\\sum_s c_s \\ell_s` is the optimum (any tie-break is fine); ``counts``
    unchanged. Reference: :func:`huffman_code_lengths_reference`."""
    name = "huffman_code_lengths"
    for counts in _HUFFMAN_CASES:
        given = list(counts)
        where = f"for counts {counts}"
        got = run_learner(huffman_code_lengths, (given,), name, case=where[4:])
        require((check_unchanged(counts, given, name, where, "counts", "sort or pop from a copy "
                                 "(sorted(counts), list(counts)), never from the histogram itself.")
                 or check_returned(got, name, where, (list, tuple, torch.Tensor), what="lengths")))
        lengths = _as_int_list(got)
        if lengths is None:
            return failed(name, f"{where} the lengths must be ints (a list of int), got {describe(got)}. "
                          "Hint: a code length is a whole number of bits.")
        if len(lengths) != len(counts):
            return failed(name, f"{where} expected one length per symbol ({len(counts)}), got {len(lengths)} "
                          f"({lengths}). Hint: return lengths[s] for every symbol s, 0 for those of count 0.")
        used = [s for s, c in enumerate(counts) if c > 0]
        best = encoding.huffman_bits(counts)
        total = sum(c * l for c, l in zip(counts, lengths))
        if sorted(lengths) == sorted(huffman_code_lengths_reference(counts)) and total != best:
            return failed(name, f"{where} got lengths {lengths}: the right lengths, given to the wrong "
                          "symbols. Hint: return them in SYMBOL order (lengths[s] belongs to counts[s]), "
                          "not sorted by count or in the order the merges met them.")
        if len(used) == 1 and lengths[used[0]] != 1:
            return failed(name, f"{where} the lone symbol {used[0]} got length {lengths[used[0]]}. Hint: with "
                          "one symbol there is nothing to merge, but each occurrence still needs a bit: "
                          "give it length 1.")
        zero_coded = [s for s, c in enumerate(counts) if c == 0 and lengths[s] != 0]
        if zero_coded:
            return failed(name, f"{where} symbols {zero_coded} of count 0 got lengths "
                          f"{[lengths[s] for s in zero_coded]}. Hint: a symbol that never occurs needs no "
                          "code (length 0); leave it out of the pool, or it takes room from the others.")
        if any(lengths[s] < 1 for s in used):
            return failed(name, f"{where} got lengths {lengths}: every symbol that occurs needs at least 1 bit.")
        kraft = sum(2.0 ** -lengths[s] for s in used)
        if kraft > 1 + 1e-12:
            return failed(name, f"{where} got lengths {lengths}: no prefix code has them (Kraft's sum "
                          f"{kraft:g} > 1). Hint: rounding log2(1/p) down gives codes too short; build "
                          "the tree by merging the two lightest entries.")
        if total != best:
            shannon = [math.ceil(-math.log2(c / sum(counts))) if c else 0 for c in counts]
            hint = ("those are Shannon's lengths ceil(log2(1/p)): a prefix code, but not an optimal one. "
                    if lengths == shannon else "")
            return failed(name, f"{where} got lengths {lengths}, {total} bits in all; the optimum is "
                          f"{best} bits. Hint: {hint}Merge the TWO LIGHTEST entries each time (a heap: "
                          "heapq), and add one bit to every symbol under both.")
    return passed(name, len(_HUFFMAN_CASES), f"all {len(_HUFFMAN_CASES)} cases pass (optimal lengths in "
                  "symbol order, zero counts without a code, a lone symbol on 1 bit, counts unchanged)")


# ----------------------------------------------------------------------------- layer_compression_ratio

def layer_compression_ratio_reference(weights: int, biases: int, entries: int, bits: int,
                                      index_bits: int) -> float:
    """Dense fp32 bits over Deep Compression's bits (before Huffman coding) for one layer:

    .. math:: \\frac{32\\,(n + m)}{E\\,(b + p) + (2^b - 1)\\cdot 32 + 32\\,m}

    with ``n`` weights, ``m`` biases (kept in fp32), ``E`` relative-index entries (nonzeros
    and fillers), ``b`` bits per weight index and ``p`` bits per gap; the codebook's entry 0 is
    the zero, not stored, so :math:`2^b - 1` shared values are."""
    dense = 32 * (weights + biases)
    compressed = entries * (bits + index_bits) + (2 ** bits - 1) * 32 + 32 * biases
    return dense / compressed


_RATIO_CASES = [(235_200, 300, 19_000, 5, 5), (1_000, 10, 120, 4, 5), (25_000, 50, 3_200, 3, 5),
                (400_000, 500, 30_000, 2, 4)]


def _ratio_mistakes(n: int, m: int, E: int, b: int, p: int) -> list[tuple[float, str]]:
    dense = 32 * (n + m)
    codebook, bias = (2 ** b - 1) * 32, 32 * m
    right = E * (b + p) + codebook + bias
    return [
        (right / dense, "the ratio is inverted: dense size OVER compressed size (a ratio > 1 means smaller)."),
        (dense / (E * (b + p) + bias), "the codebook is missing: the 2**b - 1 shared values are stored too, "
                                       "32 bits each."),
        (dense / (E * b + codebook + bias), "the index bits are missing: each entry stores its gap "
                                            "(index_bits bits) besides its weight index."),
        (dense / (E * p + codebook + bias), "the weight-index bits are missing: each entry stores a "
                                            "bits-bit index into the codebook besides its gap."),
        (dense / (E * (b + p) + 2 ** b * 32 + bias), "the codebook stores 2**b - 1 values: entry 0 is the "
                                                     "zero, which needs no storage."),
        (dense / (E * (b + p) + codebook), "the biases are missing from the compressed size: they are "
                                           "stored too (32 bits each)."),
        (32 * n / (E * (b + p) + codebook), "the biases are left out of both sizes: count them on both "
                                            "sides (32 bits each)."),
        (dense / 8 / right, "bytes over bits: the dense size is in bytes (/8), the compressed one in bits; "
                            "use bits on both sides."),
        (dense / (right / 8), "bits over bytes: the compressed size is in bytes, the dense one in bits; "
                              "use bits on both sides."),
        (dense / (E * (b + p) / 8 + codebook + bias), "E * (b + p) is already in bits: do not divide it by 8."),
        (32 * (n + m) / (E * (32 + p) + bias), "the entries store b-bit INDICES into the codebook, not "
                                               "32-bit values."),
    ]


@checker("layer_compression_ratio")
def check_layer_compression_ratio(layer_compression_ratio: Callable[..., float]) -> CheckResult:
    """Check ``layer_compression_ratio(weights, biases, entries, bits, index_bits) -> float``:
    :math:`32(n+m) / (E(b+p) + (2^b-1)\\cdot 32 + 32m)` within 1e-9 relative, naming the usual
    mistakes (ratio inverted, codebook or index bits forgotten, bytes mixed with bits, biases
    forgotten). Reference: :func:`layer_compression_ratio_reference`."""
    name = "layer_compression_ratio"
    for case in _RATIO_CASES:
        n, m, E, b, p = case
        where = f"for weights={n}, biases={m}, entries={E}, bits={b}, index_bits={p}"
        got = run_learner(layer_compression_ratio, case, name, case=where[4:])
        require(check_returned(got, name, where, (float, int), what="ratio"))
        expected = layer_compression_ratio_reference(*case)
        if math.isclose(got, expected, rel_tol=1e-9):
            continue
        for wrong, hint in _ratio_mistakes(*case):
            if math.isclose(got, wrong, rel_tol=1e-9):
                return failed(name, f"{where} got {got:.6g}, expected {expected:.6g}. Hint: {hint}")
        return failed(name, f"{where} got {got:.6g}, expected {expected:.6g}. Hint: dense = 32 * (weights + "
                      "biases) bits; compressed = entries * (bits + index_bits) + (2**bits - 1) * 32 + "
                      "32 * biases bits; return dense / compressed.")
    return passed(name, len(_RATIO_CASES), f"all {len(_RATIO_CASES)} cases pass (indices, gaps, codebook and "
                  "biases counted, in bits on both sides)")


# ----------------------------------------------------------------------------- relative_index

def relative_index_reference(w: torch.Tensor, index_bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, gaps)`` of Deep Compression's relative index of the flattened ``w``: each
    nonzero stored with the number of zeros skipped since the previous entry; a gap longer than
    :math:`2^{bits} - 1` first gets a filler entry (gap :math:`2^{bits} - 1`, value 0), which
    covers that many zeros and its own position."""
    flat = w.detach().reshape(-1)
    max_gap = 2 ** index_bits - 1
    values, gaps, cursor = [], [], 0          # cursor: the first position no entry covers yet
    for p in flat.nonzero(as_tuple=True)[0].tolist():
        while p - cursor > max_gap:
            values.append(0.0)
            gaps.append(max_gap)
            cursor += max_gap + 1
        values.append(flat[p].item())
        gaps.append(p - cursor)
        cursor = p + 1
    return torch.tensor(values, dtype=flat.dtype), torch.tensor(gaps, dtype=torch.long)


_RELATIVE_CASES = [(torch.tensor([0.0, 3.0, 0.0, 0.0, 4.0]), 2),            # no filler, gaps 1 and 2
                   (torch.tensor([0.0] * 9 + [5.0]), 2),                      # 9 zeros, max gap 3: 2 fillers
                   (torch.tensor([1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 6.0]), 2),    # gap of exactly 4: 1 filler
                   (torch.tensor([0.0, 0.0, 0.0, 7.0, 0.0, 0.0, 0.0, 0.0, 8.0]), 2),   # gap exactly 3: none
                   (torch.tensor([[0.0, 1.5, 0.0], [0.0, 0.0, -2.0]]), 1),    # 2-D, 1-bit gaps
                   (torch.zeros(6), 3)]                                       # no nonzero: no entry


def _only_after_fillers(values, gaps, ref_values, ref_gaps) -> bool:
    """The values are right and the gaps differ only right after filler entries."""
    if values.shape != ref_values.shape or gaps.shape != ref_gaps.shape or \
            not torch.equal(values.to(ref_values.dtype), ref_values):
        return False
    differs = (gaps.long() != ref_gaps).nonzero(as_tuple=True)[0].tolist()
    return bool(differs) and all(i > 0 and ref_values[i - 1] == 0 for i in differs)


@checker("relative_index")
def check_relative_index(relative_index: Callable) -> CheckResult:
    """Check ``relative_index(w, index_bits) -> (values, gaps)``: the entries of Deep
    Compression's relative index of the flattened ``w``, fillers included, exactly as
    :func:`relative_index_reference` (so that they decode back to ``w`` with the fewest
    fillers); ``gaps`` an integer tensor; ``w`` unchanged."""
    name = "relative_index"
    for w, bits in _RELATIVE_CASES:
        given = w.clone()                        # the learner's copy: the cases stay intact
        where = f"for w {describe(w)} and index_bits={bits}"
        got = run_learner(relative_index, (given, bits), name, case=where[4:])
        require((check_unchanged(w, given, name, where, "w", "read w; build new lists of values and gaps.")
                 or check_returned(got, name, where, (tuple, list), what="(values, gaps)")))
        if len(got) != 2:
            return failed(name, f"{where} return (values, gaps), got {len(got)} items.")
        values, gaps = got
        require((check_returned(values, name, where, torch.Tensor, what="values")
                 or check_returned(gaps, name, where, torch.Tensor, dtype="integer", what="gaps")))
        ref_values, ref_gaps = relative_index_reference(w, bits)
        if values.shape == ref_values.shape and gaps.shape == ref_gaps.shape and \
                torch.equal(values.to(ref_values.dtype), ref_values) and torch.equal(gaps.long(), ref_gaps):
            continue
        shown = f"got values {values.tolist()} and gaps {gaps.tolist()}, expected {ref_values.tolist()} and " \
                f"{ref_gaps.tolist()}"
        max_gap = 2 ** bits - 1
        nonzeros = int(torch.count_nonzero(w))
        if len(values) != len(gaps):
            hint = "values and gaps need one entry each: a filler has a value (0) and a gap too."
        elif len(gaps) and int(gaps.max()) > max_gap:
            hint = (f"a gap of {int(gaps.max())} does not fit {bits} bits (at most {max_gap}): when the "
                    "zeros run longer, store a filler (gap 2**bits - 1, value 0) first.")
        elif len(gaps) == len(ref_gaps) and len(gaps) and set((gaps.long() - ref_gaps).tolist()) <= {0, 1} \
                and (gaps.long() - ref_gaps).any():
            hint = ("the gap counts the ZEROS skipped since the previous entry: p - (previous + 1), not "
                    "the distance p - previous.")
        elif _only_after_fillers(values, gaps, ref_values, ref_gaps):
            hint = ("a filler covers 2**bits - 1 zeros AND its own position: after one, move the cursor "
                    "by 2**bits, not 2**bits - 1.")
        elif len(gaps) > len(ref_gaps):
            hint = ("too many fillers: a filler is needed only when the gap exceeds 2**bits - 1, and it "
                    "covers 2**bits - 1 zeros AND its own position (move the cursor by 2**bits).")
        elif len(gaps) < len(ref_gaps) and nonzeros == len(values):
            hint = "the fillers are missing: a gap too long for index_bits needs filler entries first."
        else:
            hint = ("walk the positions with a cursor (the first position not yet covered): while "
                    "p - cursor > 2**bits - 1, store (0, 2**bits - 1) and move the cursor by 2**bits; "
                    "then store (w[p], p - cursor) and set cursor = p + 1.")
        return failed(name, f"{where} {shown}. Hint: {hint}")
    return passed(name, len(_RELATIVE_CASES), f"all {len(_RELATIVE_CASES)} cases pass (gaps count the zeros "
                  "skipped, fillers exactly where a gap is too long, w left unchanged)")
