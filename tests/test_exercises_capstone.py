import math

import pytest
import torch

from course_lib import encoding, exercises


def _todo(*args, **kwargs):
    raise NotImplementedError


def _fails_with(result, hint):
    assert result.status == "fail", result
    assert hint in result.message, result.message


def test_every_capstone_checker_reports_not_attempted():
    for check in (exercises.check_huffman_code_lengths, exercises.check_layer_compression_ratio,
                  exercises.check_relative_index):
        assert check(_todo).status == "not attempted", check


# ----------------------------------------------------------------------------- huffman_code_lengths

def test_huffman_reference_passes_and_agrees_with_the_library():
    assert exercises.check_huffman_code_lengths(exercises.huffman_code_lengths_reference).passed
    assert exercises.check_huffman_code_lengths(encoding.huffman_code_lengths).passed
    for counts in ([5, 2, 1, 1], [0, 3, 3, 1], [45, 13, 12, 16, 9, 5]):
        assert exercises.huffman_code_lengths_reference(counts) == encoding.huffman_code_lengths(counts)


def _other_tie_break(counts):
    # a different but equally optimal tie-break: ties go to the HIGHER symbol first
    return exercises.huffman_code_lengths_reference(counts[::-1])[::-1]


def test_huffman_checker_accepts_another_tie_break():
    assert _other_tie_break([1, 1, 1, 1, 1]) == [2, 2, 2, 3, 3]                # the reference: [3, 3, 2, 2, 2]
    assert exercises.check_huffman_code_lengths(_other_tie_break).passed


def _sorts_the_input(counts):
    counts.sort()
    return exercises.huffman_code_lengths_reference(counts)


def _no_single_symbol_case(counts):
    lengths = exercises.huffman_code_lengths_reference(counts)
    return [0] * len(counts) if sum(c > 0 for c in counts) == 1 else lengths


def _codes_zero_counts(counts):
    return exercises.huffman_code_lengths_reference([max(c, 1) for c in counts]) if any(counts) else []


def _sorted_by_count(counts):
    lengths = exercises.huffman_code_lengths_reference(counts)
    return sorted(lengths)


def _shannon(counts):
    total = sum(counts)
    return [math.ceil(-math.log2(c / total)) if c else 0 for c in counts]


def _too_short(counts):
    total = sum(counts)
    return [max(1, math.floor(-math.log2(c / total))) if c else 0 for c in counts]


def _returns_none(counts):
    exercises.huffman_code_lengths_reference(counts)


@pytest.mark.parametrize("mistake, hint", [
    (_sorts_the_input, "changed counts in place"),
    (_no_single_symbol_case, "give it length 1"),
    (_codes_zero_counts, "a symbol that never occurs needs no code"),
    (_sorted_by_count, "in SYMBOL order"),
    (_shannon, "Shannon's lengths"),
    (_too_short, "Kraft"),
    (_returns_none, "did you forget `return`?"),
])
def test_huffman_checker_names_the_mistake(mistake, hint):
    _fails_with(exercises.check_huffman_code_lengths(mistake), hint)


# ----------------------------------------------------------------------------- layer_compression_ratio

def test_ratio_reference_passes_and_agrees_with_the_library():
    from course_lib import deep_compression as dc
    assert exercises.check_layer_compression_ratio(exercises.layer_compression_ratio_reference).passed
    w = torch.zeros(20, 30)
    w.view(-1)[::7] = torch.tensor([0.5, -0.5]).repeat(43)[:86]
    row = dc.account_layer("fc", w, torch.zeros(20), bits=2, index_bits=3)
    table = dc.CompressionTable((row,))
    assert exercises.layer_compression_ratio_reference(600, 20, row.entries, 2, 3) == pytest.approx(table.ratio_pq)


@pytest.mark.parametrize("mistake, hint", [
    (lambda n, m, E, b, p: (E * (b + p) + (2 ** b - 1) * 32 + 32 * m) / (32 * (n + m)), "inverted"),
    (lambda n, m, E, b, p: 32 * (n + m) / (E * (b + p) + 32 * m), "the codebook is missing"),
    (lambda n, m, E, b, p: 32 * (n + m) / (E * b + (2 ** b - 1) * 32 + 32 * m), "the index bits are missing"),
    (lambda n, m, E, b, p: 4 * (n + m) / (E * (b + p) + (2 ** b - 1) * 32 + 32 * m), "bytes over bits"),
    (lambda n, m, E, b, p: 32 * (n + m) / ((E * (b + p) + (2 ** b - 1) * 32 + 32 * m) / 8), "bits over bytes"),
    (lambda n, m, E, b, p: 32 * (n + m) / (E * (b + p) + 2 ** b * 32 + 32 * m), "entry 0 is the zero"),
    (lambda n, m, E, b, p: 32 * (n + m) / (E * (b + p) + (2 ** b - 1) * 32), "the biases are missing"),
    (lambda n, m, E, b, p: 1.0, "dense = 32 * (weights + biases)"),
    (lambda n, m, E, b, p: torch.tensor(2.0), "one-element tensor is not a Python number"),
])
def test_ratio_checker_names_the_mistake(mistake, hint):
    _fails_with(exercises.check_layer_compression_ratio(mistake), hint)


# ----------------------------------------------------------------------------- relative_index

def test_relative_index_reference_passes_and_agrees_with_the_library():
    assert exercises.check_relative_index(exercises.relative_index_reference).passed
    t = torch.zeros(40)
    t[[3, 4, 30, 39]] = torch.tensor([1.0, -1.0, 2.0, 3.0])
    values, gaps = exercises.relative_index_reference(t, 3)
    library = encoding.encode_relative_index(t, 3)
    assert torch.equal(values, library.values) and torch.equal(gaps, library.gaps)


def _distance_not_zeros(w, index_bits):
    flat, max_gap = w.reshape(-1), 2 ** index_bits - 1
    values, gaps, previous = [], [], 0
    for p in flat.nonzero(as_tuple=True)[0].tolist():
        while p - previous > max_gap:
            values.append(0.0)
            gaps.append(max_gap)
            previous += max_gap
        values.append(flat[p].item())
        gaps.append(p - previous)
        previous = p
    return torch.tensor(values), torch.tensor(gaps, dtype=torch.long)


def _no_fillers(w, index_bits):
    flat = w.reshape(-1)
    values, gaps, cursor = [], [], 0
    for p in flat.nonzero(as_tuple=True)[0].tolist():
        values.append(flat[p].item())
        gaps.append(p - cursor)
        cursor = p + 1
    return torch.tensor(values), torch.tensor(gaps, dtype=torch.long)


def _filler_forgets_its_position(w, index_bits):
    flat, max_gap = w.reshape(-1), 2 ** index_bits - 1
    values, gaps, cursor = [], [], 0
    for p in flat.nonzero(as_tuple=True)[0].tolist():
        while p - cursor > max_gap:
            values.append(0.0)
            gaps.append(max_gap)
            cursor += max_gap                       # should be max_gap + 1
        values.append(flat[p].item())
        gaps.append(p - cursor)
        cursor = p + 1
    return torch.tensor(values), torch.tensor(gaps, dtype=torch.long)


def _float_gaps(w, index_bits):
    values, gaps = exercises.relative_index_reference(w, index_bits)
    return values, gaps.float()


def _zeroes_the_input(w, index_bits):
    result = exercises.relative_index_reference(w, index_bits)
    w.zero_()
    return result


@pytest.mark.parametrize("mistake, hint", [
    (_distance_not_zeros, "the gap counts the ZEROS skipped"),
    (_no_fillers, "does not fit"),
    (_filler_forgets_its_position, "AND its own position"),
    (_float_gaps, "INTEGER tensor"),
    (_zeroes_the_input, "changed w in place"),
    (lambda w, b: exercises.relative_index_reference(w, b)[0], "as the (values, gaps)"),
])
def test_relative_index_checker_names_the_mistake(mistake, hint):
    _fails_with(exercises.check_relative_index(mistake), hint)
