import pytest
import torch

from course_lib import codebook, data, measure, models, train


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
    split = data.load("mnist", "validation").subset(256)
    train.fit(shared, split, 1, batch_size=64, progress=False)
    assert torch.equal(fc1.indices, indices)                       # the assignment is fixed
    assert not torch.equal(fc1.centroids.detach(), centroids)      # the codebook trained
    assert len(fc1.weight().unique()) <= 4
    n_w = 784 * 300 + 300 * 100 + 100 * 10
    assert measure.weight_bytes(shared) == -(-(n_w * 2 + 3 * 4 * 32 + 410 * 32) // 8)
    assert model.fc1.weight.requires_grad            # the given model's layers are not frozen


def test_assignment_equals_the_brute_force_nearest_centroid():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5000, generator=g)
    centroids = torch.linspace(-2, 2, 16)
    brute = (x[:, None] - centroids[None, :]).abs().argmin(1)
    assert torch.equal(codebook.nearest_centroid(x, centroids), brute)


def test_empty_clusters_keep_a_finite_centroid():
    cb = codebook.kmeans_quantize(torch.tensor([0.0, 0.0, 0.0, 1.0]), 2)
    assert torch.isfinite(cb.centroids).all() and cb.reconstruct().tolist() == [0.0, 0.0, 0.0, 1.0]


def test_8_bit_codebook_of_a_large_layer_needs_no_distance_matrix():
    w = torch.randn(500, 800, generator=torch.Generator().manual_seed(0))   # LeNet-5's fc1
    cb = codebook.kmeans_quantize(w, 8, iterations=3)     # an (n, 256) matrix would be 410 MB
    assert cb.indices.max() < 256 and (cb.reconstruct() - w).abs().max() < 0.1


def test_bad_input_gets_named_errors():
    with pytest.raises(ValueError, match="bits"):
        codebook.kmeans_quantize(torch.ones(4), 17)
    with pytest.raises(ValueError, match="NaN or inf"):
        codebook.kmeans_quantize(torch.tensor([1.0, float("inf")]), 2)
    with pytest.raises(ValueError, match="unknown layers"):
        codebook.kmeans_quantize_model(models.lenet5(), {"conv9": 2})
    with pytest.raises(TypeError, match="layer"):
        codebook.SharedWeights(torch.nn.ReLU(), 2)
