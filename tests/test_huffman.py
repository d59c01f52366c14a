import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import encoding


def histograms(max_symbols=6, max_count=50):
    return st.lists(st.integers(0, max_count), min_size=1, max_size=max_symbols).filter(any)


def brute_force_best_bits(counts):
    """The fewest bits of any prefix code: over every length vector that satisfies Kraft's
    inequality (each one has a prefix code, Kraft-McMillan), lengths up to n - 1."""
    used = [c for c in counts if c > 0]
    if len(used) == 1:
        return used[0]                      # one symbol: 1 bit each, the convention
    best = math.inf
    for lengths in itertools.product(range(1, len(used)), repeat=len(used)):
        if sum(2.0 ** -l for l in lengths) <= 1:
            best = min(best, sum(c * l for c, l in zip(used, lengths)))
    return best


def is_prefix_free(words):
    return not any(a != b and b.startswith(a) for a in words for b in words)


def test_hand_worked_example():
    # counts 5, 2, 1, 1: merge 1+1 -> 2, then 2+2 -> 4, then 4+5: lengths 1, 2, 3, 3
    code = encoding.huffman_code([5, 2, 1, 1])
    assert code.lengths == (1, 2, 3, 3)
    assert code.codes == {0: "0", 1: "10", 2: "110", 3: "111"}
    assert encoding.huffman_bits([5, 2, 1, 1]) == 5 + 4 + 3 + 3
    bits = encoding.huffman_encode([0, 1, 2, 3, 0, 0], code)
    assert bits.bit_count == 11 and bits.data == bytes([0b01011011, 0b10000000])


def test_lengths_are_in_symbol_order_and_zero_counts_get_no_code():
    assert encoding.huffman_code_lengths([1, 0, 1, 5]) == [2, 0, 2, 1]
    code = encoding.huffman_code(torch.tensor([1, 0, 1, 5]))
    assert 1 not in code.codes and code.lengths[1] == 0


def test_single_symbol_gets_one_bit():
    assert encoding.huffman_code_lengths([0, 7, 0]) == [0, 1, 0]
    code = encoding.huffman_code([0, 7, 0])
    bits = encoding.huffman_encode([1, 1, 1], code)
    assert bits.bit_count == 3
    assert encoding.huffman_decode(bits, code).tolist() == [1, 1, 1]
    assert encoding.entropy_bits([0, 7, 0]) == 0.0                    # L = H + 1 exactly


def test_ties_are_broken_deterministically():
    # four equal counts: a balanced tree; ties go to the lower symbol, then the older node
    assert encoding.huffman_code_lengths([1, 1, 1, 1]) == [2, 2, 2, 2]
    assert encoding.huffman_code_lengths([2, 1, 1, 2]) == encoding.huffman_code_lengths([2, 1, 1, 2])
    assert encoding.huffman_code_lengths([1, 1, 2]) == [2, 2, 1]


@settings(max_examples=150, deadline=None)
@given(histograms(max_symbols=5))
def test_huffman_is_optimal_against_every_prefix_code(counts):
    assert encoding.huffman_bits(counts) == brute_force_best_bits(counts)


@settings(max_examples=100, deadline=None)
@given(histograms(max_symbols=12, max_count=1000))
def test_entropy_bound_and_kraft(counts):
    lengths = encoding.huffman_code_lengths(counts)
    total = sum(counts)
    L = sum(c * l for c, l in zip(counts, lengths)) / total
    H = encoding.entropy_bits(counts)
    used = sum(c > 0 for c in counts)
    assert H - 1e-9 <= L
    assert L < H + 1 if used > 1 else L == H + 1
    if used > 1:                            # a full binary tree: Kraft's sum is exactly 1
        assert sum(2.0 ** -l for l in lengths if l) == pytest.approx(1.0)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_round_trip_with_exact_bit_count(data):
    counts = data.draw(histograms(max_symbols=8, max_count=20))
    used = [s for s, c in enumerate(counts) if c > 0]
    symbols = data.draw(st.lists(st.sampled_from(used), max_size=60))
    code = encoding.huffman_code(counts)
    assert is_prefix_free(list(code.codes.values()))
    bits = encoding.huffman_encode(symbols, code)
    assert bits.bit_count == sum(code.lengths[s] for s in symbols)
    assert len(bits.data) == math.ceil(bits.bit_count / 8)
    assert encoding.huffman_decode(bits, code).tolist() == symbols
    assert encoding.huffman_decode(encoding.huffman_encode(torch.tensor(symbols, dtype=torch.long), code),
                                   code).tolist() == symbols


def test_a_decoder_needs_only_the_lengths():
    code = encoding.huffman_code([9, 4, 4, 1, 1, 0, 3])
    assert encoding.canonical_code(list(code.lengths)) == code


def test_inputs_are_not_modified():
    counts, t = [3, 1, 2], torch.tensor([3, 1, 2])
    encoding.huffman_code_lengths(counts)
    encoding.huffman_code(t)
    assert counts == [3, 1, 2] and t.tolist() == [3, 1, 2]


@pytest.mark.parametrize("counts, error, fragment", [
    ([], ValueError, "counts must hold at least one count"),
    ([0, 0], ValueError, "counts must have at least one count > 0"),
    ([1, -2], ValueError, "counts[1] must be an int >= 0, got -2"),
    ([1, float("nan")], TypeError, "counts[1] must be an int >= 0, got float nan"),
    ([1, 2.0], TypeError, "counts[1] must be an int >= 0"),
    ([1, True], TypeError, "counts[1] must be an int >= 0, got bool True"),
    (torch.tensor([1.0, 2.0]), TypeError, "counts must be a list of ints >= 0"),
    (torch.tensor([[1, 2]]), TypeError, "counts must be a list of ints >= 0"),
    ("abc", TypeError, "counts must be"),
])
def test_bad_counts_are_named(counts, error, fragment):
    with pytest.raises(error, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        encoding.huffman_code_lengths(counts)


def test_bad_symbols_and_streams_are_named():
    code = encoding.huffman_code([3, 0, 1])
    with pytest.raises(ValueError, match=r"symbols\[1\] = 1 has no code: the code covers the symbols \[0, 2\]"):
        encoding.huffman_encode([0, 1], code)
    with pytest.raises(ValueError, match="has no code"):
        encoding.huffman_encode([5], code)
    with pytest.raises(TypeError, match=r"symbols\[0\] must be an int"):
        encoding.huffman_encode([0.0], code)
    with pytest.raises(TypeError, match="code must be a HuffmanCode"):
        encoding.huffman_encode([0], {0: "0"})
    bits = encoding.huffman_encode([0, 2, 0], code)
    with pytest.raises(ValueError, match="bit_count"):
        encoding.huffman_decode(encoding.HuffmanBits(bits.data, 9), code)
    with pytest.raises(ValueError, match="ends inside a code word"):
        encoding.huffman_decode(encoding.HuffmanBits(b"\x80", 1), encoding.huffman_code([1, 1, 1]))
    with pytest.raises(ValueError, match="Kraft"):
        encoding.canonical_code([1, 1, 1])
    with pytest.raises(TypeError, match="symbols must be"):
        encoding.huffman_encode(torch.tensor([0.0]), code)
