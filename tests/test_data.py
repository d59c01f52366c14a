
import numpy as np
import pytest
import torch

from course_lib import data


def test_mnist_official_split_and_known_class_counts():
    images, labels = data.load_raw("mnist", "train")
    _, validation_labels = data.load_raw("mnist", "validation")
    assert images.shape == (55000, 28, 28) and images.dtype == np.uint8
    # Published per-class counts of the MNIST training set (train + validation).
    assert (np.bincount(labels) + np.bincount(validation_labels)).tolist() == \
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(validation_labels).tolist() == [500] * 10
    test_images, test_labels = data.load_raw("mnist", "test")
    assert test_images.shape == (10000, 28, 28)
    assert test_labels[:5].tolist() == [7, 2, 1, 0, 4]


def test_fashion_split_is_stratified_disjoint_and_seeded():
    _, train_labels = data.load_raw("fashion-mnist", "train")
    _, test_labels = data.load_raw("fashion-mnist", "test")
    assert np.bincount(train_labels).tolist() == [5500] * 10
    assert np.bincount(test_labels).tolist() == [1000] * 10
    labels = np.repeat(np.arange(10), 7000)
    split = data.fashion_split_indices(labels)
    assert len(np.intersect1d(split["train"], split["test"])) == 0
    assert len(split["train"]) + len(split["test"]) == 70000
    again = data.fashion_split_indices(labels)
    assert np.array_equal(split["test"], again["test"])


@pytest.mark.parametrize("dataset", data.DATASET_NAMES)
def test_validation_is_carved_from_training_data_disjoint_and_seeded(dataset):
    train_images, _ = data.load_raw(dataset, "train")
    validation_images, validation_labels = data.load_raw(dataset, "validation")
    test_images, _ = data.load_raw(dataset, "test")
    assert len(train_images) == 55000 and len(validation_images) == 5000
    assert np.bincount(validation_labels).tolist() == [500] * 10
    # No validation image is also a training or test image (compare raw bytes).
    seen = {img.tobytes() for img in train_images} | {img.tobytes() for img in test_images}
    duplicates = sum(img.tobytes() in seen for img in validation_images)
    assert duplicates <= 10, duplicates       # both datasets hold a few byte-identical images
    labels = np.repeat(np.arange(10), 6000)
    split = data.validation_split_indices(labels)
    assert len(np.intersect1d(split["train"], split["validation"])) == 0
    assert np.array_equal(split["validation"], data.validation_split_indices(labels)["validation"])


@pytest.mark.parametrize("dataset", data.DATASET_NAMES)
def test_normalisation_constants_match_the_training_data(dataset):
    images = np.concatenate([data.load_raw(dataset, "train")[0], data.load_raw(dataset, "validation")[0]])
    x = images.astype(np.float64) / 255
    mean, std = data.MEAN_STD[dataset]
    assert abs(x.mean() - mean) < 5e-4 and abs(x.std() - std) < 5e-4
    split = data.load(dataset, "train")
    assert abs(split.images.mean().item()) < 3e-3 and abs(split.images.std().item() - 1) < 3e-3


def test_flipped_byte_is_detected_and_named(dataset_copy):
    path = dataset_copy / "mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(data.DatasetError, match="t10k-labels-idx1-ubyte.gz is corrupted"):
        data.load("mnist", "test", root=dataset_copy)


def test_missing_file_is_named(dataset_copy):
    (dataset_copy / "fashion-mnist" / "fashion_mnist_by_class.npz").unlink()
    with pytest.raises(data.DatasetError, match="fashion_mnist_by_class.npz is missing"):
        data.load("fashion-mnist", "train", root=dataset_copy)


def test_parse_idx_rejects_bad_magic_and_wrong_length():
    header = bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big")
    assert data.parse_idx(header + bytes([1, 2, 3])).tolist() == [1, 2, 3]
    with pytest.raises(data.DatasetError, match="magic"):
        data.parse_idx(bytes([0, 0, 9, 1]) + (3).to_bytes(4, "big") + bytes(3))
    with pytest.raises(data.DatasetError, match="header says 3"):
        data.parse_idx(header + bytes([1, 2]))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="dataset"):
        data.load("cifar10")
    with pytest.raises(ValueError, match="split"):
        data.load("mnist", "valid")


def test_batches_cover_every_example_once(mnist_test):
    g = torch.Generator().manual_seed(0)
    seen = torch.cat([y for _, y in data.batches(mnist_test, 999, shuffle=True, generator=g)])
    assert len(seen) == len(mnist_test)
    assert torch.equal(seen.sort().values, mnist_test.labels.sort().values)
    with pytest.raises(ValueError, match="batch_size"):
        next(data.batches(mnist_test, 0))
    with pytest.raises(ValueError, match="generator"):
        next(data.batches(mnist_test, 10, shuffle=True))


def test_random_shift_moves_pixels_and_keeps_the_input():
    x = torch.zeros(4, 1, 8, 8)
    x[:, 0, 4, 4] = 1.0
    before = x.clone()
    shifted = data.random_shift(x, 2, torch.Generator().manual_seed(1))
    assert torch.equal(x, before)
    assert shifted.shape == x.shape
    for img in shifted[:, 0]:
        r, c = (img == 1).nonzero()[0].tolist()
        assert abs(r - 4) <= 2 and abs(c - 4) <= 2
    with pytest.raises(ValueError, match="max_shift"):
        data.random_shift(x, -1, torch.Generator())


def test_torchvision_dataset_interface():
    from torchvision import transforms
    ds = data.torchvision_dataset("mnist", "test", transform=transforms.ToTensor())
    image, label = ds[0]
    assert image.shape == (1, 28, 28) and label == 7 and len(ds) == 10000
    assert 0.0 <= image.min() and image.max() <= 1.0


def test_subset_bounds(mnist_test):
    assert len(mnist_test.subset(10)) == 10
    with pytest.raises(ValueError, match="n must be in"):
        mnist_test.subset(0)
