"""Compressed files (course_lib.storage): every compressed form the course makes saved and reloaded
with safetensors; the records hold exactly the bytes measure counts (Deep Compression's accounting:
within one padding byte per layer), the file is those bytes plus its header, and the reloaded model
gives the same outputs, bit for bit. Corrupted and mismatched files are named."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_lib import codebook, data, deep_compression as DC, encoding, lowrank, measure, quantization, storage, zoo


@pytest.fixture(scope="module")
def images():
    return data.load("mnist", "test").images[:300]


def _same_outputs(a, b, x) -> bool:
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def _check_file(saved: storage.SavedModel) -> None:
    assert saved.file_bytes == saved.path.stat().st_size == 8 + saved.header_bytes + saved.payload_bytes
    assert storage.file_overhead(saved) == 8 + saved.header_bytes < 4096       # names, shapes, metadata


@pytest.mark.parametrize("encoding", ["dense", "bitmask", "csr", "relative_index"])
def test_a_pruned_model_in_each_encoding(tmp_path, images, encoding):
    pruned = zoo.load("lenet_300_100_pruned")
    saved = storage.save_compressed(pruned, tmp_path / "pruned.safetensors", encoding)
    _check_file(saved)
    assert saved.payload_bytes == measure.weight_bytes(pruned, "fp32", encoding)
    back = storage.load_compressed(saved.path, zoo.load("lenet_300_100"))
    assert _same_outputs(pruned, back, images)
    assert measure.count_nonzero(back) == measure.count_nonzero(pruned)        # sparsity kept after reload


def test_int8_and_kmeans_models(tmp_path, images):
    lenet5 = zoo.load("lenet5")
    int8 = quantization.quantize_model(lenet5, 8, 8, data.load("mnist", "train").sample(300), "minmax")
    shared = codebook.kmeans_quantize_model(lenet5, 4)
    for model, name in ((int8, "int8"), (shared, "kmeans")):
        saved = storage.save_compressed(model, tmp_path / f"{name}.safetensors")
        _check_file(saved)
        assert saved.payload_bytes == measure.weight_bytes(model)
        back = storage.load_compressed(saved.path, lenet5)
        assert _same_outputs(model, back, images), name
        assert measure.weight_bytes(back) == measure.weight_bytes(model)        # the reloaded model counts the same
    assert measure.weight_bytes(int8) < measure.weight_bytes(lenet5) / 3.9


def test_per_tensor_int4_with_float_inputs(tmp_path, images):
    model = quantization.quantize_model(zoo.load("lenet_300_100"), 4, None, per_channel=False)
    saved = storage.save_compressed(model, tmp_path / "int4.safetensors", "bitmask")
    assert saved.payload_bytes == measure.weight_bytes(model, "fp32", "bitmask")
    assert _same_outputs(model, storage.load_compressed(saved.path, zoo.load("lenet_300_100")), images)


def test_deep_compression_with_huffman_coding(tmp_path, images):
    for base in ("lenet_300_100", "lenet5"):
        model, recipe = zoo.load(f"{base}_deep_compressed"), zoo.entry(f"{base}_deep_compressed")["recipe"]
        bits = dict(recipe["bits"])
        saved = storage.save_deep_compressed(model, tmp_path / f"{base}.safetensors", bits, recipe["index_bits"])
        _check_file(saved)
        table = DC.account_model(model, bits, recipe["index_bits"])
        assert 0 <= saved.payload_bytes - table.bits_pqh / 8 < len(table.layers)     # one padding byte a layer at most
        back = storage.load_deep_compressed(saved.path, zoo.load(base))
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))
        assert _same_outputs(model, back, images)


def test_a_shared_pruned_model_in_the_relative_index_and_a_factorised_model(tmp_path, images):
    shared = DC.share_model_weights(zoo.load("lenet5_pruned"), 4)
    saved = storage.save_compressed(shared, tmp_path / "shared.safetensors", "relative_index")
    assert saved.payload_bytes == measure.weight_bytes(shared, "fp32", "relative_index")
    assert _same_outputs(shared, storage.load_compressed(saved.path, zoo.load("lenet5")), images)
    factorised = lowrank.factorize_model(zoo.load("lenet_300_100"), {"fc1": 20})
    saved = storage.save_compressed(factorised, tmp_path / "factorised.safetensors")
    assert saved.payload_bytes == measure.weight_bytes(factorised) == 4 * measure.count_parameters(factorised)
    skeleton = lowrank.factorize_model(zoo.load("lenet_300_100"), {"fc1": 20})
    with torch.no_grad():
        for p in skeleton.parameters():
            p.zero_()
    assert _same_outputs(factorised, storage.load_compressed(saved.path, skeleton), images)


@given(st.integers(0, 2 ** 31 - 1), st.sampled_from(encoding.ENCODINGS), st.integers(1, 16),
       st.sampled_from([(7, 5), (3, 4, 2, 2), (1, 40)]), st.floats(0.0, 1.0))
def test_every_encoding_round_trips_any_codes(seed, encoding_name, bits, shape, density):
    rng = np.random.default_rng(seed)
    codes = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), size=shape) * (rng.random(shape) < density)
    stream, info = storage._encode(codes, codes != 0, shape, bits, encoding_name)
    expected = encoding.storage_bits(torch.from_numpy(codes.astype(np.float32)), bits,
                                             encoding_name if len(shape) > 1 else "dense")
    assert stream.size == expected
    assert np.array_equal(storage._decode(stream, shape, bits, info, signed=True).reshape(shape), codes)


def test_bad_files_are_named_and_nothing_is_changed(tmp_path):
    lenet = zoo.load("lenet_300_100")
    before = {k: v.clone() for k, v in lenet.state_dict().items()}
    saved = storage.save_compressed(zoo.load("lenet_300_100_pruned"), tmp_path / "pruned.safetensors", "csr")
    raw = saved.path.read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(raw[:-100])
    with pytest.raises(storage.StorageError, match="truncated.safetensors cannot be read"):
        storage.load_compressed(tmp_path / "truncated.safetensors", lenet)
    with pytest.raises(storage.StorageError, match="is not a deep_compressed file"):
        storage.load_deep_compressed(saved.path, lenet)
    with pytest.raises(storage.StorageError, match="record 'fc1.weight' has shape"):
        storage.load_compressed(saved.path, _wider(lenet))
    with pytest.raises(ValueError, match="path must be an existing file"):
        storage.load_compressed(tmp_path / "missing.safetensors", lenet)
    with pytest.raises(ValueError, match="encoding_name must be one of"):
        storage.save_compressed(lenet, tmp_path / "x.safetensors", "zip")
    with pytest.raises(ValueError, match="existing folder"):
        storage.save_compressed(lenet, tmp_path / "no" / "x.safetensors")
    with pytest.raises(ValueError, match="k-means indices are stored dense"):
        storage.save_compressed(codebook.kmeans_quantize_model(lenet, 2), tmp_path / "k.safetensors", "csr")
    with pytest.raises(TypeError, match="model"):
        storage.save_compressed("lenet", tmp_path / "x.safetensors")
    assert all(torch.equal(before[k], v) for k, v in lenet.state_dict().items())


def _wider(lenet):
    import copy

    wider = copy.deepcopy(lenet)
    wider.fc1 = torch.nn.Linear(784, 301)
    wider.fc2 = torch.nn.Linear(301, 100)
    return wider
