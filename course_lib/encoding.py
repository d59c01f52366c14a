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
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

import torch

ENCODINGS = ("dense", "bitmask", "csr", "relative_index")
NAMED_FORMATS = {"fp32": 32, "fp16": 16, "bf16": 16, "int8": 8}
DEFAULT_INDEX_BITS = {"conv": 8, "fc": 5}   # Deep Compression, Sec. 3


def bits_of(number_format: str | int) -> int:
    """Bits per value of a number format: ``"fp32"`` 32, ``"fp16"``/``"bf16"`` 16, ``"int8"`` 8,
    ``"intN"`` or ``"uintN"`` N (1 <= N <= 32), or a plain int N."""
    if isinstance(number_format, bool):
        raise TypeError("number_format must be a str like 'int8' or an int, got bool")
    if isinstance(number_format, int):
        bits = number_format
    elif isinstance(number_format, str):
        if number_format in NAMED_FORMATS:
            return NAMED_FORMATS[number_format]
        match = re.fullmatch(r"u?int(\d+)", number_format)
        if match is None:
            raise ValueError(f"number_format must be one of {sorted(NAMED_FORMATS)} or 'intN' "
                             f"with 1 <= N <= 32, got {number_format!r}")
        bits = int(match.group(1))
    else:
        raise TypeError(f"number_format must be a str or int, got {type(number_format).__name__}")
    if not 1 <= bits <= 32:
        raise ValueError(f"number_format must have 1 to 32 bits, got {bits}")
    return bits


def unsigned_int_bits(max_value: int) -> int:
    """The smallest C unsigned integer width (8, 16 or 32 bits) that holds ``max_value``."""
    for bits in (8, 16, 32):
        if max_value < 2 ** bits:
            return bits
    raise ValueError(f"max_value {max_value} does not fit in 32 bits")


# ----------------------------------------------------------------------------- bitmask

class Bitmask(NamedTuple):
    mask: torch.Tensor      # (N,) bool, True where the flattened tensor is nonzero
    values: torch.Tensor    # (nnz,) the nonzero values in flattened order
    shape: torch.Size


def encode_bitmask(t: torch.Tensor) -> Bitmask:
    flat = t.detach().reshape(-1)
    mask = flat != 0
    return Bitmask(mask, flat[mask].clone(), t.shape)


def decode_bitmask(encoded: Bitmask) -> torch.Tensor:
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
    (C_out, C_in*kh*kw), a vector (N,) becomes (1, N)."""
    if t.dim() == 0:
        return t.reshape(1, 1)
    if t.dim() == 1:
        return t.reshape(1, -1)
    return t.reshape(t.shape[0], -1)


def encode_csr(t: torch.Tensor) -> CSR:
    M = as_matrix(t.detach())
    rows, cols = M.nonzero(as_tuple=True)        # in row-major order
    counts = torch.bincount(rows, minlength=M.shape[0])
    row_pointers = torch.cat([torch.zeros(1, dtype=torch.long, device=counts.device), counts.cumsum(0)])
    return CSR(M[rows, cols].clone(), cols, row_pointers, t.shape)


def decode_csr(encoded: CSR) -> torch.Tensor:
    n_rows = len(encoded.row_pointers) - 1
    n_cols = math.prod(encoded.shape) // max(1, n_rows)
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
    """
    if not 1 <= index_bits <= 32:
        raise ValueError(f"index_bits must be in [1, 32], got {index_bits}")
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
    flat = torch.zeros(math.prod(encoded.shape), dtype=encoded.values.dtype)
    cursor = 0
    for gap, value in zip(encoded.gaps.tolist(), encoded.values.tolist()):
        position = cursor + gap
        flat[position] = value
        cursor = position + 1
    return flat.reshape(encoded.shape)


def count_relative_index_entries(t: torch.Tensor, index_bits: int) -> int:
    """Number of entries (nonzeros + fillers) :func:`encode_relative_index` would store,
    computed without building the encoding: each gap ``g`` between consecutive nonzeros
    needs ``g // 2**index_bits`` fillers."""
    if not 1 <= index_bits <= 32:
        raise ValueError(f"index_bits must be in [1, 32], got {index_bits}")
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
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"t must be a torch.Tensor, got {type(t).__name__}")
    b = bits_of(number_format)
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
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
    """:func:`storage_bits` rounded up to whole bytes."""
    return math.ceil(storage_bits(t, number_format, encoding, index_bits) / 8)


def best_encoding(t: torch.Tensor, number_format: str | int = "fp32") -> tuple[str, int]:
    """The encoding that stores ``t`` in the fewest bytes, and that many bytes."""
    sizes = {e: storage_bytes(t, number_format, e) for e in ENCODINGS}
    name = min(sizes, key=lambda e: (sizes[e], ENCODINGS.index(e)))
    return name, sizes[name]
