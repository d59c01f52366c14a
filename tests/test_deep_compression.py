import copy

import pytest
import torch

from course_lib import data, deep_compression as dc, encoding, measure, models, train


def pruned_mlp(seed=0, sparsity=0.8):
    """A small 16-12-10 MLP with 80% of each weight zeroed (by magnitude)."""
    torch.manual_seed(seed)                       # only builds the test's model
    model = models.mlp([12], in_features=16)
    with torch.no_grad():
        for layer in (model.fc1, model.fc2):
            w = layer.weight
            threshold = w.abs().reshape(-1).kthvalue(int(sparsity * w.numel())).values
            w.mul_((w.abs() > threshold).float())
    return model


def test_hand_made_layer_exact_bits():
    # a 1 x 12 weight, nonzeros at positions 0, 1 and 9; 2-bit gaps (at most 3): the gap of 7
    # before position 9 needs a filler (gap 3, value 0) covering positions 2-5, then gap 3
    w = torch.tensor([[0.5, -0.5, 0, 0, 0, 0, 0, 0, 0, 0.5, 0, 0]])
    enc = encoding.encode_relative_index(w, 2)
    assert enc.gaps.tolist() == [0, 0, 3, 3] and enc.values.tolist() == [0.5, -0.5, 0.0, 0.5]
    row = dc.account_layer("fc", w, torch.tensor([1.0]), bits=2, index_bits=2)
    assert (row.weights, row.nonzeros, row.entries, row.biases) == (12, 3, 4, 1)
    assert row.weight_index_bits == 4 * 2 and row.position_index_bits == 4 * 2
    assert row.codebook_bits == 3 * 32 and row.bias_bits == 32
    # weight indices: -0.5 -> 1, 0.5 -> 2, filler -> 0; counts [1, 1, 2, 0]: Huffman lengths 2, 2, 1
    # -> 1*2 + 1*2 + 2*1 = 6 bits + a table of 4 symbols x 8 bits
    assert row.weight_index_huffman_bits == 6 + 4 * 8
    # gaps: counts [2, 0, 0, 2] -> 1 bit each -> 4 bits + a table of 4 x 8 bits
    assert row.position_index_huffman_bits == 4 + 4 * 8
    assert row.bits_pq == 8 + 8 + 96 + 32
    assert row.bits_pqh == 38 + 36 + 96 + 32
    assert row.dense_bits == 13 * 32
    table = dc.CompressionTable((row,))
    assert table.ratio == pytest.approx(13 * 32 / row.bits_pqh) and table.ratio_pq == pytest.approx(13 * 32 / 144)
    assert table.rows()[-1]["layer"] == "total" and table.rows()[0]["kept %"] == 25.0


def test_sharing_keeps_zeros_zero_and_uses_at_most_2_to_the_b_values():
    model = pruned_mlp()
    shared = dc.share_model_weights(model, {"fc1": 3, "fc2": 2})
    for name, bits in (("fc1", 3), ("fc2", 2)):
        layer, original = getattr(shared, name), getattr(model, name).weight
        W = layer.weight_as_computed().detach()
        assert torch.equal(W == 0, original == 0)
        assert len(W.unique()) <= 2 ** bits
        assert layer.codebook()[0] == 0 and len(layer.centroids) == 2 ** bits - 1


def test_codebook_fine_tuning_keeps_zeros_and_clusters_and_leaves_the_input_alone():
    model = pruned_mlp()
    before = copy.deepcopy(model.state_dict())
    split = data.load("mnist", "validation").subset(256)
    split = data.ImageSplit(split.images[:, :, :4, :4].contiguous(), split.labels, "tiny", split.classes)   # 16 inputs
    out = dc.deep_compress(model, 3, split, train.TrainingSettings(epochs=2, lr=1e-2, batch_size=64), progress=False)
    fc1 = out.model.fc1
    plain = dc.share_model_weights(model, 3).fc1
    assert torch.equal(fc1.indices, plain.indices)                          # clusters are fixed
    assert not torch.equal(fc1.centroids.detach(), plain.centroids.detach())  # the codebook trained
    W = fc1.weight_as_computed().detach()
    assert torch.equal(W == 0, model.fc1.weight == 0)                       # zeros stay zero
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())   # input unchanged
    # the plain copy holds the same function and the accounting agrees
    flat = dc.as_plain_model(out.model)
    x = split.images[:8]
    assert torch.allclose(flat(x), out.model(x), atol=1e-6)
    assert dc.account_model(flat, 3) == out.table


def test_accounting_agrees_with_measure_before_huffman():
    model = pruned_mlp(1)
    shared = dc.share_model_weights(model, 4)
    table = dc.account_model(shared)            # 5-bit gaps: measure's default for fc layers
    per_layer = sum(-(-(l.weight_index_bits + l.position_index_bits) // 8) + -(-l.codebook_bits // 8)
                    + -(-l.bias_bits // 8) for l in table.layers)
    assert measure.weight_bytes(shared, encoding="relative_index") == per_layer
    # on layers this small the two 8-bit-per-symbol code tables cost more than Huffman saves
    assert table.ratio < table.ratio_pq


def test_paper_anchor_row_of_a_real_layer():
    # fc2 of a random 10% kept 300 x 100 layer: E entries, each b + p bits before Huffman
    g = torch.Generator().manual_seed(0)
    w = torch.randn(100, 300, generator=g) * (torch.rand(100, 300, generator=g) < 0.1)
    shared = dc.share_nonzero_weights(w, 5).reconstruct()
    row = dc.account_layer("ip2", shared, None, 5)
    assert row.entries == encoding.count_relative_index_entries(shared, 5)
    assert row.bits_pq == row.entries * 10 + 31 * 32
    assert row.bits_pqh < row.bits_pq


def test_choose_bits_takes_the_fewest_within_the_drop():
    scan = {"fc1": [(2, 0.90), (3, 0.97), (4, 0.98)], "fc2": [(2, 0.5), (3, 0.6)]}
    assert dc.choose_bits(scan, 0.98, 0.01) == {"fc1": 3, "fc2": 3}
    assert dc.choose_bits(scan, 0.98, 0.1) == {"fc1": 2, "fc2": 3}


def test_bad_input_is_named():
    model = pruned_mlp()
    with pytest.raises(ValueError, match=r"bits must name every weight layer .*missing \['fc2'\]"):
        dc.deep_compress(model, {"fc1": 3})
    with pytest.raises(ValueError, match=r"bits\['fc2'\] must be in \[1, 16\], got 0"):
        dc.share_model_weights(model, {"fc1": 3, "fc2": 0})
    with pytest.raises(TypeError, match="bits must be an int"):
        dc.deep_compress(model, 2.5)
    with pytest.raises(ValueError, match="index_bits must be an int in"):
        dc.account_model(model, 3, index_bits=0)
    with pytest.raises(ValueError, match="need training images: pass train="):
        dc.deep_compress(model, 3, fine_tuning=train.TrainingSettings(epochs=1))
    with pytest.raises(ValueError, match=r"layer 'fc1'.*distinct nonzero values.*share its weights first"):
        dc.account_model(model, 3)
    with pytest.raises(ValueError, match="bits must be given for layers that are not SparseSharedWeights"):
        dc.account_model(model)
    bad = pruned_mlp()
    with torch.no_grad():
        bad.fc1.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="layer 'fc1'.*NaN"):
        dc.share_model_weights(bad, 3)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        dc.deep_compress("lenet5", 3)
    with pytest.raises(TypeError, match=r"fine_tuning must be a TrainingSettings .* or None, got int"):
        dc.deep_compress(model, 3, data.load("mnist", "test").subset(10), 2)
    assert not any(torch.isnan(p).any() for p in model.parameters())       # nothing changed
