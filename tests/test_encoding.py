import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import encoding


def sparse_tensors(max_rows=12, max_cols=40):
    """Small tensors with many exact zeros."""
    @st.composite
    def build(draw):
        rows = draw(st.integers(1, max_rows))
        cols = draw(st.integers(1, max_cols))
        values = draw(st.lists(st.sampled_from([0.0, 0.0, 0.0, 1.5, -2.0, 0.25]),
                               min_size=rows * cols, max_size=rows * cols))
        return torch.tensor(values).reshape(rows, cols)
    return build()


def test_bits_of_formats():
    assert [encoding.bits_of(f) for f in ("fp32", "fp16", "bf16", "int8", "int4", "uint3", 7)] == \
        [32, 16, 16, 8, 4, 3, 7]
    for bad in ("int0", "int33", "float8", 0):
        with pytest.raises(ValueError, match="number_format"):
            encoding.bits_of(bad)
    with pytest.raises(TypeError, match="number_format"):
        encoding.bits_of(3.0)


def test_hand_worked_example():
    # 2 x 4 matrix with 3 nonzeros, int8 values.
    t = torch.tensor([[0.0, 5.0, 0.0, 0.0], [1.0, 0.0, 0.0, 2.0]])
    assert encoding.storage_bits(t, "int8", "dense") == 8 * 8
    assert encoding.storage_bits(t, "int8", "bitmask") == 8 + 3 * 8
    # CSR: 3 values x (8 value bits + 8 column bits) + 3 row pointers x 8 bits
    assert encoding.storage_bits(t, "int8", "csr") == 3 * 16 + 3 * 8
    # relative index with 2-bit gaps: positions 1, 4, 7 -> gaps 1, 2, 2, no filler
    assert encoding.storage_bits(t, "int8", "relative_index", index_bits=2) == 3 * (8 + 2)
    # with 1-bit gaps the gap of 2 needs fillers
    rel = encoding.encode_relative_index(t, 1)
    assert rel.gaps.tolist() == [1, 1, 0, 1, 0] and rel.values.tolist() == [5.0, 0.0, 1.0, 0.0, 2.0]


def test_relative_index_filler_matches_deep_compression_rule():
    t = torch.zeros(20)
    t[[1, 4, 15]] = torch.tensor([3.0, 4.0, 5.0])
    enc = encoding.encode_relative_index(t, 3)     # max gap 7
    assert enc.gaps.tolist() == [1, 2, 7, 2]
    assert enc.values.tolist() == [3.0, 4.0, 0.0, 5.0]
    assert torch.equal(encoding.decode_relative_index(enc), t)


@settings(max_examples=60, deadline=None)
@given(sparse_tensors(), st.integers(1, 6))
def test_encodings_round_trip(t, index_bits):
    assert torch.equal(encoding.decode_bitmask(encoding.encode_bitmask(t)), t)
    assert torch.equal(encoding.decode_csr(encoding.encode_csr(t)), t)
    rel = encoding.encode_relative_index(t, index_bits)
    assert torch.equal(encoding.decode_relative_index(rel), t)
    assert all(gap < 2 ** index_bits for gap in rel.gaps.tolist())
    assert encoding.count_relative_index_entries(t, index_bits) == len(rel.values)


@settings(max_examples=60, deadline=None)
@given(sparse_tensors(), st.sampled_from(["fp32", "fp16", "int8", "int4", 3]))
def test_byte_counts_follow_the_formulas(t, fmt):
    b = encoding.bits_of(fmt)
    n, nnz = t.numel(), int(torch.count_nonzero(t))
    assert encoding.storage_bytes(t, fmt, "dense") == math.ceil(n * b / 8)
    assert encoding.storage_bytes(t, fmt, "bitmask") == math.ceil((n + nnz * b) / 8)
    name, size = encoding.best_encoding(t, fmt)
    assert size == min(encoding.storage_bytes(t, fmt, e) for e in encoding.ENCODINGS)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_csr_agrees_with_torch_sparse_csr():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(7, 9, generator=g) * (torch.rand(7, 9, generator=g) > 0.7)
    ours = encoding.encode_csr(t)
    ref = t.to_sparse_csr()
    assert torch.equal(ours.row_pointers, ref.crow_indices())
    assert torch.equal(ours.col_indices, ref.col_indices())
    assert torch.equal(ours.values, ref.values())


def test_encode_leaves_input_unchanged():
    t = torch.tensor([0.0, 1.0, 0.0, 2.0])
    before = t.clone()
    for enc in (encoding.encode_bitmask(t), encoding.encode_csr(t), encoding.encode_relative_index(t, 2)):
        enc.values.zero_()
    assert torch.equal(t, before)


def test_bad_arguments_are_named():
    t = torch.ones(3)
    with pytest.raises(ValueError, match="encoding"):
        encoding.storage_bits(t, "fp32", "coo")
    with pytest.raises(ValueError, match="index_bits"):
        encoding.encode_relative_index(t, 0)
    with pytest.raises(TypeError, match="torch.Tensor"):
        encoding.storage_bits([1.0], "fp32")


# ----------------------------------------------------------------------------- bad input

T = torch.tensor([[0.0, 5.0, 0.0, 0.0], [1.0, 0.0, 0.0, 2.0]])


@pytest.mark.parametrize("call, error, fragment", [
    (lambda: encoding.bits_of(8.0), TypeError, "number_format must be a str like 'int8' or an int"),
    (lambda: encoding.bits_of(float("nan")), TypeError, "got float nan"),
    (lambda: encoding.bits_of(True), TypeError, "got bool"),
    (lambda: encoding.bits_of(None), TypeError, "number_format"),
    (lambda: encoding.bits_of("8"), ValueError, "a number of bits is an int: 8, or 'int8'"),
    (lambda: encoding.bits_of(33), ValueError, "1 to 32 bits, got 33"),
    (lambda: encoding.unsigned_int_bits(-1), ValueError, "max_value must be an int in [0, 4294967295], got -1"),
    (lambda: encoding.unsigned_int_bits(2 ** 32), ValueError, "max_value"),
    (lambda: encoding.unsigned_int_bits(3.0), TypeError, "max_value"),
    (lambda: encoding.encode_relative_index(T, 2.5), TypeError, "index_bits must be an int in [1, 32], got float 2.5"),
    (lambda: encoding.encode_relative_index(T, float("nan")), TypeError, "index_bits"),
    (lambda: encoding.encode_relative_index(T, True), TypeError, "index_bits"),
    (lambda: encoding.encode_relative_index(T, 33), ValueError, "index_bits must be an int in [1, 32], got 33"),
    (lambda: encoding.count_relative_index_entries(T, 2.5), TypeError, "index_bits"),
    (lambda: encoding.count_relative_index_entries(T, 0), ValueError, "index_bits"),
    (lambda: encoding.storage_bits(T, "int8", "relative_index", index_bits=2.5), TypeError, "index_bits"),
    (lambda: encoding.storage_bits(T, "int8", "relative_index", index_bits=0), ValueError, "index_bits"),
    (lambda: encoding.storage_bits(T, "int8", "dense", index_bits=-3), ValueError, "index_bits"),
    (lambda: encoding.storage_bits(T, "int8", None), ValueError, "encoding must be one of"),
    (lambda: encoding.storage_bits(T, 8.0), TypeError, "number_format"),
    (lambda: encoding.storage_bytes(T, "fp32", "coo"), ValueError, "encoding"),
    (lambda: encoding.best_encoding([1.0, 0.0]), TypeError, "t must be a torch.Tensor, got list"),
    (lambda: encoding.best_encoding(T, "float8"), ValueError, "number_format"),
    (lambda: encoding.encode_bitmask([0.0, 1.0]), TypeError, "t must be a torch.Tensor, got list"),
    (lambda: encoding.encode_csr(None), TypeError, "t must be a torch.Tensor"),
    (lambda: encoding.encode_relative_index(T.numpy(), 2), TypeError, "t must be a torch.Tensor, got ndarray"),
    (lambda: encoding.as_matrix([[1.0]]), TypeError, "t must be a torch.Tensor"),
    (lambda: encoding.encode_bitmask(torch.tensor([0.0, float("nan")])), ValueError, "t contains NaN or inf"),
    (lambda: encoding.encode_csr(torch.tensor([[float("inf")]])), ValueError, "NaN or inf"),
    (lambda: encoding.encode_relative_index(torch.tensor([-float("inf"), 0.0]), 3), ValueError, "NaN or inf"),
    (lambda: encoding.storage_bits(torch.tensor([float("nan")])), ValueError, "NaN or inf"),
    (lambda: encoding.decode_bitmask(encoding.encode_csr(T)), TypeError, "encoded must be a Bitmask"),
    (lambda: encoding.decode_csr((T, T, T, T.shape)), TypeError, "encoded must be a CSR"),
    (lambda: encoding.decode_relative_index(None), TypeError, "encoded must be a RelativeIndex"),
])
def test_bad_input_raises_a_named_error(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)


def test_decoders_reject_inconsistent_encodings():
    bitmask = encoding.encode_bitmask(T)
    with pytest.raises(ValueError, match="encoded.values must hold one value per True"):
        encoding.decode_bitmask(bitmask._replace(values=bitmask.values[:-1]))
    with pytest.raises(ValueError, match="encoded.mask"):
        encoding.decode_bitmask(bitmask._replace(shape=torch.Size([3, 4])))
    csr = encoding.encode_csr(T)
    with pytest.raises(ValueError, match=r"encoded.col_indices must be in \[0, 3\]"):
        encoding.decode_csr(csr._replace(col_indices=csr.col_indices + 4))
    with pytest.raises(ValueError, match="encoded.row_pointers"):
        encoding.decode_csr(csr._replace(row_pointers=torch.tensor([0, 3])))
    with pytest.raises(ValueError, match="entries"):
        encoding.decode_csr(csr._replace(values=csr.values[:1]))
    rel = encoding.encode_relative_index(T, 2)
    with pytest.raises(ValueError, match=r"encoded.gaps must be in \[0, 3\]"):
        encoding.decode_relative_index(rel._replace(gaps=torch.tensor([1, 2, 4])))
    with pytest.raises(ValueError, match="run past the end"):
        encoding.decode_relative_index(rel._replace(gaps=torch.tensor([3, 3, 3])))
    with pytest.raises(TypeError, match="encoded.index_bits"):
        encoding.decode_relative_index(rel._replace(index_bits=2.0))


@pytest.mark.parametrize("t", [torch.zeros(0), torch.zeros(0, 5), torch.zeros(5, 0), torch.tensor(3.0),
                               torch.tensor([0, 7, 0], dtype=torch.int8)])
def test_empty_scalar_and_integer_tensors_round_trip(t):
    assert torch.equal(encoding.decode_bitmask(encoding.encode_bitmask(t)), t)
    assert torch.equal(encoding.decode_csr(encoding.encode_csr(t)), t)
    assert torch.equal(encoding.decode_relative_index(encoding.encode_relative_index(t, 2)), t)


def test_a_rejected_tensor_is_left_unchanged():
    t = torch.tensor([0.0, float("nan"), 2.0])
    before = t.clone()
    for call in (encoding.encode_bitmask, encoding.encode_csr, lambda x: encoding.encode_relative_index(x, 2),
                 encoding.storage_bits):
        with pytest.raises(ValueError):
            call(t)
    assert torch.allclose(t, before, equal_nan=True)
