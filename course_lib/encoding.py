"""How many bytes a tensor takes: number formats and sparse encodings.

A weight tensor is stored as values of some number format (32-bit float, 8-bit integer, any
n-bit code) and, if most of it is zero, in a sparse encoding that stores only the nonzeros plus
enough index information to put them back:

* ``dense``: every value, zeros included: :math:`N \\cdot b` bits.
* ``bitmask``: one bit per position says "nonzero here", then the nonzero values:
  :math:`N + \\mathrm{nnz} \\cdot b` bits.
* ``csr`` (compressed sparse row, on the tensor viewed as a matrix ``(shape[0], -1)``): values,
  their column indices and one row pointer per row + 1, indices in the smallest unsigned integer
  type (8, 16 or 32 bits) that holds them, as a C runtime would store them.
* ``relative_index``: Deep Compression's format (Han, Mao & Dally 2016, Sec. 3 and Fig. 2): for
  each nonzero, its value and the number of zeros skipped since the previous entry in
  ``index_bits`` bits; a gap too long for ``index_bits`` is bridged by a filler entry holding a
  zero. The paper uses 8 bits for conv and 5 bits for fully connected layers.

Each encoding has ``encode_*`` / ``decode_*`` functions (round-trip tested) and the byte counts
follow from what they produce. Taught in ``notebooks/00_efficiency_and_hardware.ipynb``; used
for pruned models in ``notebooks/01_pruning.ipynb``.

Last, an entropy code for the integers those encodings store (codebook indices, gaps):
``huffman_*`` (Huffman 1952), Deep Compression's third stage (Han, Mao & Dally 2016, Sec. 4),
taught in ``notebooks/10_capstone.ipynb``.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Sequence
from typing import NamedTuple

import torch

from .checks import check_choice, check_finite, check_int, check_tensor, check_type, describe, is_int

__all__ = ["ENCODINGS", "NAMED_FORMATS", "DEFAULT_INDEX_BITS", "bits_of", "unsigned_int_bits", "Bitmask",
           "encode_bitmask", "decode_bitmask", "CSR", "as_matrix", "encode_csr", "decode_csr", "RelativeIndex",
           "encode_relative_index", "decode_relative_index", "count_relative_index_entries", "storage_bits",
           "storage_bytes", "best_encoding", "HuffmanCode", "HuffmanBits", "huffman_code_lengths",
           "canonical_code", "huffman_code", "huffman_bits", "huffman_table_bits", "entropy_bits",
           "huffman_encode", "huffman_decode"]

ENCODINGS = ("dense", "bitmask", "csr", "relative_index")
NAMED_FORMATS = {"fp32": 32, "fp16": 16, "bf16": 16, "int8": 8}
DEFAULT_INDEX_BITS = {"conv": 8, "fc": 5}   # Deep Compression, Sec. 3


# ----------------------------------------------------------------------------- argument checks

def _check_encodable(t: torch.Tensor) -> None:
    """A torch.Tensor of finite values: a NaN or inf weight means training went wrong, and its
    encoding would be garbage that decodes to garbage."""
    check_tensor(t, "t")
    check_finite(t, "t", "only finite values can be encoded (check the model or the step that "
                         "produced the tensor)")


def _check_encoded(encoded, kind: type) -> None:
    """``encoded`` is the named tuple an ``encode_*`` function returns, with a valid shape."""
    if not isinstance(encoded, kind):
        raise TypeError(f"encoded must be a {kind.__name__} (from encode_{kind.__name__.lower()}), "
                        f"got {type(encoded).__name__}")
    if not isinstance(encoded.shape, tuple) or any(not is_int(d) or d < 0 for d in encoded.shape):
        raise ValueError(f"encoded.shape must be a tuple of ints >= 0, got {encoded.shape!r}")
    for field, value in encoded._asdict().items():
        if field not in ("shape", "index_bits") and not isinstance(value, torch.Tensor):
            raise TypeError(f"encoded.{field} must be a torch.Tensor, got {type(value).__name__}")


def bits_of(number_format: str | int) -> int:
    """Bits per value of a number format.

    ``"fp32"`` 32, ``"fp16"``/``"bf16"`` 16, ``"int8"`` 8, ``"intN"`` or ``"uintN"`` N
    (1 <= N <= 32), or a plain int N (a number of bits is an int: ``8``, not ``"8"`` or ``8.0``).

    Raises:
        TypeError: ``number_format`` is neither a str nor an int (a float, NaN, bool...).
        ValueError: an unknown name, or a bit count outside [1, 32].
    """
    if not (isinstance(number_format, str) or is_int(number_format)):
        raise TypeError(f"number_format must be a str like 'int8' or an int number of bits, "
                        f"got {describe(number_format)}")
    if is_int(number_format):
        bits = int(number_format)
    else:
        if number_format in NAMED_FORMATS:
            return NAMED_FORMATS[number_format]
        match = re.fullmatch(r"u?int(\d+)", number_format)
        if match is None:
            hint = f" (a number of bits is an int: {number_format}, or 'int{number_format}')" \
                if number_format.isdigit() else ""
            raise ValueError(f"number_format must be one of {sorted(NAMED_FORMATS)} or 'intN' "
                             f"with 1 <= N <= 32, got {number_format!r}{hint}")
        bits = int(match.group(1))
    if not 1 <= bits <= 32:
        raise ValueError(f"number_format must have 1 to 32 bits, got {bits}")
    return bits


def unsigned_int_bits(max_value: int) -> int:
    """The smallest C unsigned integer width (8, 16 or 32 bits) that holds ``max_value``.

    Raises:
        TypeError / ValueError: ``max_value`` is not an int in [0, 2**32 - 1].
    """
    check_int(max_value, "max_value", 0, 2 ** 32 - 1)
    for bits in (8, 16, 32):
        if max_value < 2 ** bits:
            return bits


# ----------------------------------------------------------------------------- bitmask

class Bitmask(NamedTuple):
    mask: torch.Tensor      # (N,) bool, True where the flattened tensor is nonzero
    values: torch.Tensor    # (nnz,) the nonzero values in flattened order
    shape: torch.Size


def encode_bitmask(t: torch.Tensor) -> Bitmask:
    """Bitmask encoding of the flattened ``t``: a (N,) bool mask of its nonzeros and the (nnz,)
    nonzero values in order. ``t`` (any shape, finite) is not modified.

    Raises:
        TypeError: ``t`` is not a tensor. ValueError: ``t`` holds NaN or inf.
    """
    _check_encodable(t)
    flat = t.detach().reshape(-1)
    mask = flat != 0
    return Bitmask(mask, flat[mask].clone(), t.shape)


def decode_bitmask(encoded: Bitmask) -> torch.Tensor:
    """The dense tensor of ``encoded.shape`` that :func:`encode_bitmask` encoded.

    Raises:
        TypeError: ``encoded`` is not a :class:`Bitmask`.
        ValueError: its mask, values and shape disagree.
    """
    _check_encoded(encoded, Bitmask)
    n = math.prod(encoded.shape)
    if encoded.mask.dtype != torch.bool or encoded.mask.numel() != n:
        raise ValueError(f"encoded.mask must be a bool tensor of {n} elements (shape "
                         f"{tuple(encoded.shape)}), got {encoded.mask.dtype} with {encoded.mask.numel()}")
    if encoded.values.numel() != int(encoded.mask.sum()):
        raise ValueError(f"encoded.values must hold one value per True in the mask "
                         f"({int(encoded.mask.sum())}), got {encoded.values.numel()}")
    flat = torch.zeros(encoded.mask.numel(), dtype=encoded.values.dtype)
    flat[encoded.mask] = encoded.values
    return flat.reshape(encoded.shape)


# ----------------------------------------------------------------------------- CSR

class CSR(NamedTuple):
    values: torch.Tensor        # (nnz,)
    col_indices: torch.Tensor   # (nnz,) int64 column of each value
    row_pointers: torch.Tensor  # (rows + 1,) int64: row r holds values[row_pointers[r]:row_pointers[r+1]]
    shape: torch.Size


def as_matrix(t: torch.Tensor) -> torch.Tensor:
    """View a tensor as a matrix (shape[0], rest): a conv weight (C_out, C_in, kh, kw) becomes
    (C_out, C_in*kh*kw), a vector (N,) becomes (1, N), a scalar (1, 1).

    Raises:
        TypeError: ``t`` is not a tensor.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"t must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() == 0:
        return t.reshape(1, 1)
    if t.dim() == 1:
        return t.reshape(1, -1)
    return t.reshape(t.shape[0], math.prod(t.shape[1:]))      # not -1: ambiguous for 0 rows


def encode_csr(t: torch.Tensor) -> CSR:
    """CSR encoding of ``t`` viewed as a matrix by :func:`as_matrix`: the nonzero values in
    row-major order, their column indices, and ``rows + 1`` row pointers (as
    ``torch.Tensor.to_sparse_csr``). ``t`` (any shape, finite) is not modified.

    Raises:
        TypeError: ``t`` is not a tensor. ValueError: ``t`` holds NaN or inf.
    """
    _check_encodable(t)
    M = as_matrix(t.detach())
    rows, cols = M.nonzero(as_tuple=True)        # in row-major order
    counts = torch.bincount(rows, minlength=M.shape[0])
    row_pointers = torch.cat([torch.zeros(1, dtype=torch.long, device=counts.device), counts.cumsum(0)])
    return CSR(M[rows, cols].clone(), cols, row_pointers, t.shape)


def decode_csr(encoded: CSR) -> torch.Tensor:
    """The dense tensor of ``encoded.shape`` that :func:`encode_csr` encoded.

    Raises:
        TypeError: ``encoded`` is not a :class:`CSR`.
        ValueError: its row pointers, column indices, values and shape disagree.
    """
    _check_encoded(encoded, CSR)
    pointers, cols = encoded.row_pointers, encoded.col_indices
    expected_rows = encoded.shape[0] if len(encoded.shape) >= 2 else 1      # as in as_matrix
    if len(pointers) != expected_rows + 1 or pointers[0] != 0 or (pointers.diff() < 0).any():
        raise ValueError(f"encoded.row_pointers must be {expected_rows + 1} non-decreasing offsets "
                         f"starting at 0 for shape {tuple(encoded.shape)}, got {pointers.tolist()}")
    n_rows = len(encoded.row_pointers) - 1
    n_cols = math.prod(encoded.shape) // max(1, n_rows)
    if not len(encoded.values) == len(cols) == int(pointers[-1]):
        raise ValueError(f"encoded.values and encoded.col_indices must both hold row_pointers[-1] = "
                         f"{int(pointers[-1])} entries, got {len(encoded.values)} and {len(cols)}")
    if len(cols) and (cols.min() < 0 or cols.max() >= n_cols):
        raise ValueError(f"encoded.col_indices must be in [0, {n_cols - 1}], "
                         f"got {int(cols.min())}..{int(cols.max())}")
    M = torch.zeros(n_rows, n_cols, dtype=encoded.values.dtype)
    rows = torch.repeat_interleave(torch.arange(n_rows), encoded.row_pointers.diff())
    M[rows, encoded.col_indices] = encoded.values
    return M.reshape(encoded.shape)


# ----------------------------------------------------------------------------- relative index

class RelativeIndex(NamedTuple):
    values: torch.Tensor   # (entries,) nonzeros and filler zeros
    gaps: torch.Tensor     # (entries,) int64 zeros skipped before each entry, each < 2**index_bits
    shape: torch.Size
    index_bits: int


def encode_relative_index(t: torch.Tensor, index_bits: int) -> RelativeIndex:
    """Deep Compression's relative-index encoding of the flattened tensor.

    Walking the positions in order with a cursor (the next position not yet covered), each
    nonzero at position ``p`` is stored as ``(gap = p - cursor, value)``. If the gap exceeds
    ``2**index_bits - 1``, a filler ``(2**index_bits - 1, 0)`` is stored first, which covers
    that many zeros and one more position.

    Args:
        t: any shape, finite values; not modified.
        index_bits: bits per gap, an int in [1, 32] (Deep Compression: 8 conv, 5 fc).

    Raises:
        TypeError: ``t`` is not a tensor, or ``index_bits`` is not an int (2.5, True).
        ValueError: ``t`` holds NaN or inf, or ``index_bits`` is outside [1, 32].
    """
    _check_encodable(t)
    check_int(index_bits, "index_bits", 1, 32)
    flat = t.detach().reshape(-1)
    max_gap = 2 ** index_bits - 1
    positions = flat.nonzero(as_tuple=True)[0].tolist()
    values, gaps = [], []
    cursor = 0
    for p in positions:
        while p - cursor > max_gap:
            gaps.append(max_gap)
            values.append(0.0)
            cursor += max_gap + 1
        gaps.append(p - cursor)
        values.append(flat[p].item())
        cursor = p + 1
    return RelativeIndex(torch.tensor(values, dtype=flat.dtype), torch.tensor(gaps, dtype=torch.long),
                         t.shape, index_bits)


def decode_relative_index(encoded: RelativeIndex) -> torch.Tensor:
    """The dense tensor of ``encoded.shape`` that :func:`encode_relative_index` encoded: entry
    ``i`` lands ``gaps[i]`` positions after the one before it.

    Raises:
        TypeError: ``encoded`` is not a :class:`RelativeIndex`, or its ``index_bits`` not an int.
        ValueError: a gap is negative or too long for ``index_bits``, the entries run past the
            end of the tensor, or values and gaps differ in number.
    """
    _check_encoded(encoded, RelativeIndex)
    check_int(encoded.index_bits, "encoded.index_bits", 1, 32)
    n = math.prod(encoded.shape)
    gaps = encoded.gaps
    if len(gaps) != len(encoded.values):
        raise ValueError(f"encoded.values and encoded.gaps must have one entry each, "
                         f"got {len(encoded.values)} and {len(gaps)}")
    if len(gaps) and (gaps.min() < 0 or gaps.max() >= 2 ** encoded.index_bits):
        raise ValueError(f"encoded.gaps must be in [0, {2 ** encoded.index_bits - 1}] for "
                         f"index_bits={encoded.index_bits}, got {int(gaps.min())}..{int(gaps.max())}")
    if int(gaps.sum()) + len(gaps) > n:
        raise ValueError(f"encoded.gaps run past the end of a tensor of {n} elements "
                         f"(shape {tuple(encoded.shape)})")
    flat = torch.zeros(n, dtype=encoded.values.dtype)
    cursor = 0
    for gap, value in zip(encoded.gaps.tolist(), encoded.values.tolist()):
        position = cursor + gap
        flat[position] = value
        cursor = position + 1
    return flat.reshape(encoded.shape)


def count_relative_index_entries(t: torch.Tensor, index_bits: int) -> int:
    """Number of entries (nonzeros + fillers) :func:`encode_relative_index` would store,
    computed without building the encoding: each gap ``g`` between consecutive nonzeros
    needs ``g // 2**index_bits`` fillers.

    Raises:
        TypeError / ValueError: as :func:`encode_relative_index`.
    """
    _check_encodable(t)
    check_int(index_bits, "index_bits", 1, 32)
    positions = t.detach().reshape(-1).nonzero(as_tuple=True)[0]
    if positions.numel() == 0:
        return 0
    starts = torch.cat([torch.zeros(1, dtype=torch.long, device=positions.device), positions[:-1] + 1])
    gaps = positions - starts
    return int(positions.numel() + (gaps // 2 ** index_bits).sum())


# ----------------------------------------------------------------------------- sizes

def storage_bits(t: torch.Tensor, number_format: str | int = "fp32", encoding: str = "dense",
                 index_bits: int | None = None) -> int:
    """Bits needed to store ``t`` with values in ``number_format`` and the given ``encoding``.

    ``index_bits`` only applies to ``relative_index``; by default 8 for tensors of 4 dimensions
    (conv) and 5 otherwise (fully connected), as in Deep Compression.

    Args:
        t: any shape, finite values.
        number_format: as :func:`bits_of`.
        encoding: one of :data:`ENCODINGS`.
        index_bits: None or an int in [1, 32] (checked whenever given).

    Raises:
        TypeError: ``t`` is not a tensor, ``number_format`` or ``index_bits`` has a wrong type.
        ValueError: ``t`` holds NaN or inf, or an argument is out of range / not a choice.
    """
    _check_encodable(t)
    b = bits_of(number_format)
    check_choice(encoding, "encoding", ENCODINGS)
    if index_bits is not None:
        check_int(index_bits, "index_bits", 1, 32)
    n = t.numel()
    if encoding == "dense":
        return n * b
    nnz = int(torch.count_nonzero(t))
    if encoding == "bitmask":
        return n + nnz * b
    if encoding == "csr":
        M = as_matrix(t)
        col_bits = unsigned_int_bits(max(0, M.shape[1] - 1))
        pointer_bits = unsigned_int_bits(nnz)
        return nnz * (b + col_bits) + (M.shape[0] + 1) * pointer_bits
    if index_bits is None:
        index_bits = DEFAULT_INDEX_BITS["conv" if t.dim() == 4 else "fc"]
    return count_relative_index_entries(t, index_bits) * (b + index_bits)


def storage_bytes(t: torch.Tensor, number_format: str | int = "fp32", encoding: str = "dense",
                  index_bits: int | None = None) -> int:
    """:func:`storage_bits` rounded up to whole bytes: :math:`\\lceil \\text{bits} / 8 \\rceil`.

    Raises:
        TypeError / ValueError: as :func:`storage_bits`.
    """
    return math.ceil(storage_bits(t, number_format, encoding, index_bits) / 8)


def best_encoding(t: torch.Tensor, number_format: str | int = "fp32") -> tuple[str, int]:
    """The encoding that stores ``t`` in the fewest bytes, and that many bytes (ties go to the
    earlier of :data:`ENCODINGS`).

    Raises:
        TypeError / ValueError: as :func:`storage_bits`.
    """
    _check_encodable(t)
    bits_of(number_format)
    sizes = {e: storage_bytes(t, number_format, e) for e in ENCODINGS}
    name = min(sizes, key=lambda e: (sizes[e], ENCODINGS.index(e)))
    return name, sizes[name]


# ----------------------------------------------------------------------------- Huffman coding

class HuffmanCode(NamedTuple):
    """A canonical Huffman code over the symbols ``0 .. len(lengths) - 1``."""
    lengths: tuple[int, ...]   # (symbols,) code length of each symbol in bits; 0: no code (count 0)
    codes: dict[int, str]      # symbol -> its code word as a str of "0"/"1", for each length > 0


class HuffmanBits(NamedTuple):
    """Code words laid end to end and packed into bytes, first bit in the most significant
    position, the last byte padded with zeros; ``bit_count`` says how many bits are meant."""
    data: bytes
    bit_count: int


def _as_list(values: Sequence[int] | torch.Tensor, name: str, expected: str) -> list:
    """A list or tuple, or a 1-D integer tensor, as a new Python list; else a TypeError naming
    ``name`` and what was ``expected``. The elements are checked by the caller."""
    if isinstance(values, torch.Tensor):
        if values.dim() != 1 or values.is_floating_point() or values.is_complex() or values.dtype == torch.bool:
            raise TypeError(f"{name} must be {expected}, got a {values.dtype} tensor of shape "
                            f"{tuple(values.shape)}")
        return values.tolist()
    if isinstance(values, (list, tuple)):
        return list(values)
    raise TypeError(f"{name} must be {expected}, got {describe(values)}")


def _check_counts(counts: Sequence[int] | torch.Tensor, name: str = "counts") -> list[int]:
    """A histogram: ``counts[s]`` occurrences of symbol ``s``, ints >= 0, at least one > 0.
    Returns a new list of Python ints (the argument is never modified)."""
    expected = ("a list of ints >= 0 (counts[s] = occurrences of symbol s) or a 1-D integer "
                "tensor such as torch.bincount(symbols)")
    values = _as_list(counts, name, expected)
    if not values:
        raise ValueError(f"{name} must hold at least one count, got an empty {type(counts).__name__}")
    for s, c in enumerate(values):
        if not is_int(c):
            raise TypeError(f"{name}[{s}] must be an int >= 0, got {describe(c)}")
        if c < 0:
            raise ValueError(f"{name}[{s}] must be an int >= 0, got {c}")
    if not any(values):
        raise ValueError(f"{name} must have at least one count > 0 (there is nothing to code), "
                         f"got {len(values)} zeros")
    return [int(c) for c in values]


def huffman_code_lengths(counts: Sequence[int] | torch.Tensor) -> list[int]:
    """The code length of each symbol in an optimal prefix code (Huffman 1952, "A Method for
    the Construction of Minimum-Redundancy Codes").

    Huffman's construction: put every symbol that occurs in a pool, weighted by its count;
    repeatedly take out the two lightest entries and put back one entry weighing their sum,
    until one is left. Each merge adds one bit to the code of every symbol under the two
    entries merged, so a symbol's code length is the number of merges it took part in.

    Ties are broken deterministically: entries of equal count are taken in the order they were
    made, the symbols first (by increasing symbol), then the merged entries (oldest first).
    Other tie-breaks give other lengths of the same total, equally optimal.

    With :math:`p_s = c_s / \\sum c` and :math:`H = -\\sum_s p_s \\log_2 p_s` (the entropy,
    :func:`entropy_bits`), the expected length :math:`L = \\sum_s p_s \\ell_s` is the smallest
    of any prefix code, and :math:`H \\le L < H + 1` (Shannon's source-coding bound) when two or
    more symbols occur. A lone symbol gets 1 bit (a stream needs some bits to count its
    symbols), so there :math:`L = H + 1 = 1`. A symbol of count 0 gets length 0: no code.

    Deep Compression (Han, Mao & Dally 2016, Sec. 4) Huffman-codes the codebook indices and the
    relative-index gaps of each layer: their distributions are skewed, which saves 20-30%.

    Args:
        counts: ``counts[s]`` occurrences of symbol ``s``: a list or tuple of ints >= 0, or a
            1-D integer tensor (``torch.bincount(symbols)``); at least one count > 0. Not modified.

    Returns:
        A list of ints, ``lengths[s]`` for each symbol in symbol order (not sorted by count).

    Raises:
        TypeError: ``counts`` is not a list / tuple / 1-D integer tensor, or holds a non-int
            (a float, NaN, a bool), the message naming its position.
        ValueError: ``counts`` is empty, holds a negative count, or only zeros.
    """
    values = _check_counts(counts)
    lengths = [0] * len(values)
    pool = [(c, s, [s]) for s, c in enumerate(values) if c > 0]     # (weight, order made, symbols)
    heapq.heapify(pool)
    if len(pool) == 1:
        lengths[pool[0][1]] = 1
    made = len(values)                     # merged entries are made after every symbol
    while len(pool) > 1:
        weight_a, _, symbols_a = heapq.heappop(pool)
        weight_b, _, symbols_b = heapq.heappop(pool)
        for s in symbols_a + symbols_b:    # one more bit for everything under the new node
            lengths[s] += 1
        heapq.heappush(pool, (weight_a + weight_b, made, symbols_a + symbols_b))
        made += 1
    return lengths


def canonical_code(lengths: Sequence[int]) -> HuffmanCode:
    """The canonical prefix code with the given code lengths: symbols taken by increasing
    length, then by increasing symbol, each code word one more than the previous one (as a
    binary number), shifted left when the length grows. A decoder needs only the lengths to
    rebuild the code, which is how Deflate (RFC 1951, Sec. 3.2.2) stores a Huffman code.

    Such a code exists when Kraft's inequality :math:`\\sum_s 2^{-\\ell_s} \\le 1` holds (over
    the lengths > 0).

    Args:
        lengths: a list or tuple of ints >= 0 (0: the symbol has no code), one of them > 0.

    Raises:
        TypeError: ``lengths`` is not a list or tuple of ints.
        ValueError: a negative length, no length > 0, or lengths that break Kraft's inequality.
    """
    check_type(lengths, "lengths", (list, tuple), "a list of ints >= 0 (one code length per symbol)")
    values = _check_counts(list(lengths), "lengths")
    kraft = sum(2.0 ** -l for l in values if l > 0)
    if kraft > 1.0:
        raise ValueError(f"lengths must satisfy Kraft's inequality sum(2**-l) <= 1 for a prefix "
                         f"code to exist, got sum {kraft:g} for {values}")
    codes: dict[int, str] = {}
    code, previous = 0, 0
    for s in sorted((s for s, l in enumerate(values) if l > 0), key=lambda s: (values[s], s)):
        code <<= values[s] - previous
        codes[s] = format(code, f"0{values[s]}b")
        code, previous = code + 1, values[s]
    return HuffmanCode(tuple(values), codes)


def huffman_code(counts: Sequence[int] | torch.Tensor) -> HuffmanCode:
    """The canonical Huffman code of a histogram:
    ``canonical_code(huffman_code_lengths(counts))``.

    Raises:
        TypeError / ValueError: as :func:`huffman_code_lengths`.
    """
    return canonical_code(huffman_code_lengths(counts))


def huffman_bits(counts: Sequence[int] | torch.Tensor) -> int:
    """Bits of the Huffman-coded stream of a histogram, without building it:
    :math:`\\sum_s c_s \\ell_s` (the code table is not included: see :func:`huffman_table_bits`).

    Raises:
        TypeError / ValueError: as :func:`huffman_code_lengths`.
    """
    values = _check_counts(counts)
    return sum(c * l for c, l in zip(values, huffman_code_lengths(values)))


def huffman_table_bits(symbols: int, length_bits: int = 8) -> int:
    """Bits to store a canonical code: one code length per symbol of the alphabet, in
    ``length_bits`` bits each (8 by default: lengths up to 255).

    Raises:
        TypeError / ValueError: ``symbols`` is not an int >= 1, ``length_bits`` not in [1, 32].
    """
    check_int(symbols, "symbols", 1)
    check_int(length_bits, "length_bits", 1, 32)
    return symbols * length_bits


def entropy_bits(counts: Sequence[int] | torch.Tensor) -> float:
    """Shannon entropy of a histogram in bits per symbol, :math:`H = -\\sum_s p_s \\log_2 p_s`
    with :math:`p_s = c_s / \\sum c` (symbols of count 0 add nothing): no prefix code does better
    on average, and Huffman's does less than one bit worse.

    Raises:
        TypeError / ValueError: as :func:`huffman_code_lengths`.
    """
    values = _check_counts(counts)
    total = sum(values)
    return sum(-c / total * math.log2(c / total) for c in values if c > 0) + 0.0   # + 0.0: no -0.0


def _check_code(code: HuffmanCode) -> None:
    if not isinstance(code, HuffmanCode):
        raise TypeError(f"code must be a HuffmanCode (from huffman_code or canonical_code), "
                        f"got {describe(code)}")


def _check_symbols(symbols: Sequence[int] | torch.Tensor, code: HuffmanCode) -> list[int]:
    expected = "a list of ints or a 1-D integer tensor"
    values = _as_list(symbols, "symbols", expected)
    for i, s in enumerate(values):
        if not is_int(s):
            raise TypeError(f"symbols[{i}] must be an int, got {describe(s)}")
        if s not in code.codes:
            raise ValueError(f"symbols[{i}] = {s} has no code: the code covers the symbols "
                             f"{sorted(code.codes)} (those of count > 0 when it was built)")
    return values


def huffman_encode(symbols: Sequence[int] | torch.Tensor, code: HuffmanCode) -> HuffmanBits:
    """Encode a sequence of integer symbols: their code words end to end, packed into bytes.

    Args:
        symbols: a list / tuple of ints or a 1-D integer tensor (may be empty); not modified.
        code: a :class:`HuffmanCode` that has a code for every symbol in ``symbols``.

    Returns:
        :class:`HuffmanBits` with ``bit_count`` exactly :math:`\\sum_i \\ell_{s_i}` and
        :math:`\\lceil \\text{bit\\_count} / 8 \\rceil` bytes of ``data``.

    Raises:
        TypeError: ``code`` is not a HuffmanCode, ``symbols`` not a sequence of ints.
        ValueError: a symbol without a code (named, with its position), checked before encoding.
    """
    _check_code(code)
    values = _check_symbols(symbols, code)
    bits = "".join(code.codes[s] for s in values)
    padded = bits + "0" * (-len(bits) % 8)
    data = int(padded, 2).to_bytes(len(padded) // 8, "big") if padded else b""
    return HuffmanBits(data, len(bits))


def huffman_decode(encoded: HuffmanBits, code: HuffmanCode) -> torch.Tensor:
    """The symbols :func:`huffman_encode` encoded with ``code``: read bits one at a time until
    they spell a code word (a prefix code needs no separators), emit its symbol, start again.

    Returns:
        An int64 tensor (n,) of symbols.

    Raises:
        TypeError: ``encoded`` is not a HuffmanBits, or ``code`` not a HuffmanCode.
        ValueError: ``bit_count`` does not fit the data, or the bits do not decode with this
            code (a bit sequence no code word starts, or a stream ending inside a code word).
    """
    _check_code(code)
    if not isinstance(encoded, HuffmanBits):
        raise TypeError(f"encoded must be a HuffmanBits (from huffman_encode), got {describe(encoded)}")
    if not isinstance(encoded.data, bytes) or not is_int(encoded.bit_count) or encoded.bit_count < 0 \
            or len(encoded.data) != math.ceil(encoded.bit_count / 8):
        raise ValueError(f"encoded.bit_count must be an int >= 0 with ceil(bit_count / 8) = "
                         f"len(encoded.data) bytes, got bit_count {encoded.bit_count!r} and "
                         f"{len(encoded.data) if isinstance(encoded.data, bytes) else 'no'} bytes")
    bits = "".join(format(byte, "08b") for byte in encoded.data)[:encoded.bit_count]
    symbol_of = {word: s for s, word in code.codes.items()}
    longest = max(code.lengths)
    symbols, word = [], ""
    for bit in bits:
        word += bit
        if word in symbol_of:
            symbols.append(symbol_of[word])
            word = ""
        elif len(word) >= longest:
            raise ValueError(f"encoded does not decode with this code: bits {word!r} after "
                             f"{len(symbols)} symbols start no code word")
    if word:
        raise ValueError(f"encoded ends inside a code word ({word!r} after {len(symbols)} symbols): "
                         f"it was encoded with another code, or bit_count is wrong")
    return torch.tensor(symbols, dtype=torch.long)
