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
    train.fit(shared, split, train.TrainingSettings(epochs=1, batch_size=64), progress=False)
    assert torch.equal(fc1.indices, indices)                       # the assignment is fixed
    assert not torch.equal(fc1.centroids.detach(), centroids)      # the codebook trained
    assert len(fc1.weight_as_computed().unique()) <= 4
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


# ----------------------------------------------------------------------------- bad input never gives garbage

from torch import nn  # noqa: E402

C = torch.tensor([-1.0, 0.0, 1.0])
NAN_MODEL = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
with torch.no_grad():
    NAN_MODEL[2].weight[0, 0] = float("nan")


@pytest.mark.parametrize("call, error, fragment", [
    (lambda: codebook.Codebook(C, torch.tensor([0, 3])).reconstruct(), ValueError,
     "indices must be in [0, 3) for 3 centroids, got values in [0, 3]"),
    (lambda: codebook.Codebook(C, torch.tensor([-1, 0])).reconstruct(), ValueError, "got values in [-1, 0]"),
    (lambda: codebook.Codebook(C, torch.tensor([0.0, 1.0])).reconstruct(), TypeError,
     "indices must hold integer indices, got dtype torch.float32"),
    (lambda: codebook.Codebook(C, [0, 1]).reconstruct(), TypeError, "indices must be an integer tensor, got list"),
    (lambda: codebook.Codebook([0.0, 1.0], torch.tensor([0])).reconstruct(), TypeError,
     "centroids must be a 1-D float tensor (k,), got list"),
    (lambda: codebook.Codebook(torch.tensor([0, 1]), torch.tensor([0])).reconstruct(), ValueError,
     "centroids must be a non-empty 1-D float tensor (k,), got shape (2,) of torch.int64"),
    (lambda: codebook.Codebook(C[None], torch.tensor([0])).reconstruct(), ValueError, "got shape (1, 3)"),
    (lambda: codebook.Codebook(torch.tensor([0.0, float("nan")]), torch.tensor([0])).reconstruct(), ValueError,
     "centroids contains NaN or inf"),
    (lambda: codebook.nearest_centroid(torch.zeros(2, 2), C), ValueError,
     "x must be a 1-D float tensor (n,), got shape (2, 2)"),
    (lambda: codebook.nearest_centroid(torch.tensor([1, 2]), C), ValueError, "of torch.int64"),
    (lambda: codebook.nearest_centroid([0.5], C), TypeError, "x must be a 1-D float tensor (n,), got list"),
    (lambda: codebook.nearest_centroid(torch.tensor([float("inf")]), C), ValueError, "x contains NaN or inf"),
    (lambda: codebook.nearest_centroid(torch.zeros(2), torch.tensor([1.0, 0.0])), ValueError,
     "centroids must be sorted ascending, got [1.0, 0.0]"),
    (lambda: codebook.nearest_centroid(torch.zeros(2), torch.tensor([])), ValueError,
     "centroids must be a non-empty 1-D float tensor"),
    (lambda: codebook.nearest_centroid(torch.zeros(2), torch.tensor([0.0, float("nan")])), ValueError,
     "centroids contains NaN or inf"),
    (lambda: codebook.codebook_storage_bits(10, 2, 0), ValueError, "centroid_bits must be an int in [1, 64], got 0"),
    (lambda: codebook.codebook_storage_bits(10, 2, 65), ValueError, "got 65"),
    (lambda: codebook.codebook_storage_bits(10, 2, 32.0), TypeError, "centroid_bits must be an int in [1, 64], got float"),
    (lambda: codebook.codebook_storage_bits(10, 2, True), TypeError, "got bool"),
    (lambda: codebook.codebook_storage_bits(-1, 2), ValueError, "numel must be an int >= 0, got -1"),
    (lambda: codebook.codebook_storage_bits(10.0, 2), TypeError, "numel must be an int >= 0, got float 10.0"),
    (lambda: codebook.codebook_storage_bits(10, 2.0), TypeError, "bits must be an int in [1, 16]"),
    (lambda: codebook.kmeans_quantize(torch.ones(4), 2, iterations=0), ValueError,
     "iterations must be an int >= 1, got 0"),
    (lambda: codebook.kmeans_quantize(torch.ones(4), 2, iterations=2.0), TypeError,
     "iterations must be an int >= 1, got float 2.0"),
    (lambda: codebook.kmeans_quantize(torch.ones(4), True), TypeError, "bits"),
    (lambda: codebook.kmeans_quantize([1.0, 2.0], 2), TypeError, "w must be a torch.Tensor"),
    (lambda: codebook.SharedWeights(nn.Linear(4, 3), 0), ValueError, "bits must be in [1, 16], got 0"),
    (lambda: codebook.kmeans_quantize_model("lenet5", 2), TypeError, "model must be a torch.nn.Module, got str"),
    (lambda: codebook.kmeans_quantize_model(models.lenet5(), {}), ValueError,
     "bits must name at least one layer of ['conv1', 'conv2', 'fc1', 'fc2'], got {}"),
    (lambda: codebook.kmeans_quantize_model(models.lenet5(), 2.0), TypeError, "bits must be an int in [1, 16]"),
    (lambda: codebook.kmeans_quantize_model(models.lenet5(), {"fc1": 20}), ValueError, "bits['fc1']"),
    (lambda: codebook.kmeans_quantize_model(models.lenet5(), 2, iterations=0), ValueError,
     "iterations must be an int >= 1, got 0"),
    (lambda: codebook.kmeans_quantize_model(NAN_MODEL, 2), ValueError, "layer '2': w contains NaN or inf"),
])
def test_bad_input_raises_a_named_error(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)


def test_checked_primitives_by_hand():
    assert codebook.codebook_storage_bits(4, 1, 16) == 4 * 1 + 2 * 16
    assert codebook.codebook_storage_bits(0, 1, 64) == 2 * 64
    assert codebook.Codebook(C, torch.tensor([[2, 0], [1, 1]])).reconstruct().tolist() == [[1.0, -1.0], [0.0, 0.0]]
    tied = torch.tensor([0.5, 0.5, 2.0])                 # a constant weight's codebook has ties
    assert codebook.nearest_centroid(torch.tensor([0.0, 0.5, 1.9]), tied).tolist() == [0, 0, 2]


def test_nothing_changes_on_error():
    x, centroids = torch.tensor([0.5, -0.75]), torch.tensor([1.0, -1.0])
    with pytest.raises(ValueError, match="sorted"):
        codebook.nearest_centroid(x, centroids)
    assert x.tolist() == [0.5, -0.75] and centroids.tolist() == [1.0, -1.0]
    before = {k: v.clone() for k, v in NAN_MODEL.state_dict().items()}
    with pytest.raises(ValueError, match="NaN"):
        codebook.kmeans_quantize_model(NAN_MODEL, 2)
    after = NAN_MODEL.state_dict()
    assert all(torch.allclose(before[k], after[k], equal_nan=True) for k in before)
    assert isinstance(NAN_MODEL[0], nn.Linear) and NAN_MODEL[0].weight.requires_grad
