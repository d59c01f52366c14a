import pytest
import torch

from course_lib import codebook, data, models, train


def test_hand_worked_example():
    w = torch.tensor([0.0, 0.1, 0.9, 1.0])
    cb = codebook.kmeans_quantize(w, bits=1)
    assert torch.allclose(cb.centroids, torch.tensor([0.05, 0.95]))
    assert cb.indices.tolist() == [0, 0, 1, 1]
    assert codebook.codebook_storage_bits(4, 1) == 4 * 1 + 2 * 32


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_indices_fit_in_the_stated_bits_and_error_shrinks(bits):
    w = torch.randn(64, 32, generator=torch.Generator().manual_seed(bits))
    before = w.clone()
    cb = codebook.kmeans_quantize(w, bits)
    assert torch.equal(w, before)
    assert cb.indices.shape == w.shape and 0 <= cb.indices.min() and cb.indices.max() < 2 ** bits
    assert len(cb.centroids) == 2 ** bits
    if bits > 1:
        coarser = codebook.kmeans_quantize(w, bits - 1)
        assert (cb.reconstruct() - w).pow(2).mean() < (coarser.reconstruct() - w).pow(2).mean()


def test_codebook_fine_tuning_moves_only_the_centroids():
    model = models.build("lenet_300_100")
    shared = codebook.kmeans_quantize_model(model, 2)
    fc1 = shared.fc1
    indices, centroids = fc1.indices.clone(), fc1.centroids.detach().clone()
    split = data.load("mnist", "test").subset(256)
    train.fit(shared, split, 1, batch_size=64, progress=False)
    assert torch.equal(fc1.indices, indices)                       # the assignment is fixed
    assert not torch.equal(fc1.centroids.detach(), centroids)      # the codebook trained
    assert len(fc1.weight().unique()) <= 4
    n_w = 784 * 300 + 300 * 100 + 100 * 10
    assert codebook.shared_weight_bytes(shared) == -(-(n_w * 2 + 3 * 4 * 32 + 410 * 32) // 8)


def test_bad_input_gets_named_errors():
    with pytest.raises(ValueError, match="bits"):
        codebook.kmeans_quantize(torch.ones(4), 9)
    with pytest.raises(ValueError, match="finite"):
        codebook.kmeans_quantize(torch.tensor([1.0, float("inf")]), 2)
    with pytest.raises(ValueError, match="unknown layers"):
        codebook.kmeans_quantize_model(models.lenet5(), {"conv9": 2})
    with pytest.raises(TypeError, match="layer"):
        codebook.SharedWeights(torch.nn.ReLU(), 2)
