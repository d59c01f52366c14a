
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



@pytest.mark.parametrize("angle, shear, zoom", [(30.0, 0.0, 1.0), (0.0, 20.0, 1.0), (0.0, 0.0, 1.2),
                                                 (25.0, 10.0, 0.9), (-40.0, -15.0, 1.1)])
def test_affine_matches_torchvision(angle, shear, zoom):
    from torchvision.transforms.v2 import functional as TF
    x = torch.rand(3, 2, 28, 20, generator=torch.Generator().manual_seed(0)) - 0.4    # not square, two channels
    before = x.clone()
    ours = data.affine(x, torch.full((3,), angle), torch.full((3,), shear), torch.full((3,), zoom))
    background = x.min()          # torchvision fills with 0: move the background there and back
    reference = TF.affine(x - background, angle=angle, translate=[0, 0], scale=zoom, shear=[shear, 0.0],
                          interpolation=TF.InterpolationMode.BILINEAR) + background
    assert torch.equal(x, before)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def test_random_affine_draws_within_its_ranges():
    x = torch.zeros(64, 1, 9, 9)
    x[:, 0, 4, 4] = 1.0                                   # a dot at the centre stays there, whatever the map
    assert torch.equal(data.random_affine(x, 0, 0, 0, torch.Generator()), x)        # no distortion: the input
    moved = data.random_affine(x, 15, 0.15, 10, torch.Generator().manual_seed(0))
    torch.testing.assert_close(moved[:, 0, 4, 4], torch.ones(64))
    again = data.random_affine(x, 15, 0.15, 10, torch.Generator().manual_seed(0))
    assert torch.equal(moved, again)                     # seeded: the same maps
    bar = torch.zeros(1, 1, 9, 9)
    bar[0, 0, 4, :] = 1.0                                 # a horizontal bar, rotated by up to 90 degrees
    turned = [data.random_affine(bar, 90, 0, 0, torch.Generator().manual_seed(s)) for s in range(8)]
    assert any(float(t[0, 0, :, 4].sum()) > 2 for t in turned)        # some turn it towards the column

def test_torchvision_dataset_interface():
    from torchvision import transforms
    ds = data.torchvision_dataset("mnist", "test", transform=transforms.ToTensor())
    image, label = ds[0]
    assert image.shape == (1, 28, 28) and label == 7 and len(ds) == 10000
    assert 0.0 <= image.min() and image.max() <= 1.0


def test_subset_bounds(mnist_test):
    assert len(mnist_test.subset(10)) == 10
    with pytest.raises(ValueError, match=r"n must be an int in \[1, 10000\], got 0"):
        mnist_test.subset(0)


# ----------------------------------------------------------------------------- bad files

def _replace_listed_file(folder, name, content):
    """Write ``content`` to ``folder/name`` and list its new SHA-256 in ``SHA256SUMS``, so that
    the checksum check passes and the check behind it is the one tested."""
    (folder / name).write_bytes(content)
    digest = data.sha256_of_file(folder / name)
    sums = folder / "SHA256SUMS"
    lines = [f"{digest}  {name}" if line.endswith(f" {name}") else line
             for line in sums.read_text().splitlines()]
    sums.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("garbled_line", [
    "not-a-checksum  t10k-labels-idx1-ubyte.gz",
    "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
    "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b  two  names",
    "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd0045579  short.gz",
])
def test_garbled_checksum_line_is_named_with_its_number(dataset_copy, garbled_line):
    sums = dataset_copy / "mnist" / "SHA256SUMS"
    lines = sums.read_text().splitlines()
    lines[1] = garbled_line
    sums.write_text("\n".join(lines) + "\n")
    with pytest.raises(data.DatasetError, match=r"mnist/SHA256SUMS line 2 is not '<64 hex digits>  <file name>'"):
        data.load("mnist", "test", root=dataset_copy)


def test_checksum_list_that_is_not_text_is_named(dataset_copy):
    (dataset_copy / "mnist" / "SHA256SUMS").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(data.DatasetError, match="mnist/SHA256SUMS could not be read as text"):
        data.read_checksums(dataset_copy / "mnist")


@pytest.mark.parametrize("damage", ["crc", "truncated"])
def test_gzip_stream_that_fails_its_check_is_named(dataset_copy, damage):
    name = "t10k-labels-idx1-ubyte.gz"
    raw = bytearray((dataset_copy / "mnist" / name).read_bytes())
    if damage == "crc":
        raw[-8] ^= 0xFF           # the CRC-32 in the gzip trailer
    else:
        raw = raw[:-100]
    _replace_listed_file(dataset_copy / "mnist", name, bytes(raw))
    with pytest.raises(data.DatasetError, match=f"mnist/{name} is not a valid gzip stream"):
        data.load_raw("mnist", "test", root=dataset_copy)


def test_label_file_of_another_split_is_rejected_naming_both_files(dataset_copy):
    folder = dataset_copy / "mnist"
    _replace_listed_file(folder, "t10k-labels-idx1-ubyte.gz",
                         (folder / "train-labels-idx1-ubyte.gz").read_bytes())
    with pytest.raises(data.DatasetError, match=r"mnist/t10k-images-idx3-ubyte.gz holds 10000 images "
                                                r"but mnist/t10k-labels-idx1-ubyte.gz holds 60000 labels"):
        data.load("mnist", "test", root=dataset_copy)


def test_truncated_idx_header_is_a_dataset_error():
    with pytest.raises(data.DatasetError, match="truncated header"):
        data.parse_idx(bytes([0, 0, 8, 3, 0, 0]), "x.idx")


# ----------------------------------------------------------------------------- bad arguments

SPLIT = data.ImageSplit(torch.zeros(6, 1, 4, 4), torch.tensor([0, 1, 0, 1, 0, 1]), "tiny", ("a", "b"))
GEN = torch.Generator().manual_seed(0)
LABELS = np.repeat(np.arange(3), 4)


@pytest.mark.parametrize("call, error, fragment", [
    (lambda: data.batches(SPLIT, 2.5), TypeError, "batch_size must be an int >= 1, got float 2.5"),
    (lambda: data.batches(SPLIT, True), TypeError, "batch_size must be an int >= 1, got bool"),
    (lambda: data.batches(SPLIT, 0), ValueError, "batch_size must be an int >= 1, got 0"),
    (lambda: data.batches(SPLIT, 2, max_shift=-1, generator=GEN), ValueError, "max_shift must be an int >= 0, got -1"),
    (lambda: data.batches(SPLIT, 2, max_shift=1.0, generator=GEN), TypeError, "max_shift"),
    (lambda: data.batches(SPLIT, 2, shuffle=1, generator=GEN), TypeError, "shuffle must be True or False"),
    (lambda: data.batches(SPLIT, 2, shuffle=True, generator=0), TypeError, "generator must be a torch.Generator"),
    (lambda: data.batches((SPLIT.images, SPLIT.labels), 2), TypeError, "split must be an ImageSplit"),
    (lambda: data.random_shift(torch.zeros(1, 4, 4), 1, GEN), ValueError, "images must be a non-empty (B, C, H, W)"),
    (lambda: data.random_shift(torch.zeros(0, 1, 4, 4), 1, GEN), ValueError, "non-empty"),
    (lambda: data.random_shift(SPLIT.images.numpy(), 1, GEN), TypeError, "images must be a (B, C, H, W) tensor"),
    (lambda: data.random_shift(torch.full((1, 1, 2, 2), float("nan")), 1, GEN), ValueError, "NaN or inf"),
    (lambda: data.random_shift(SPLIT.images, 1.5, GEN), TypeError, "max_shift must be an int >= 0, got float 1.5"),
    (lambda: data.random_shift(SPLIT.images, 1, None), TypeError, "generator must be a torch.Generator"),
    (lambda: data.random_affine(SPLIT.images, 181, 0, 0, GEN), ValueError,
     "degrees must be a finite number in [0, 180]"),
    (lambda: data.random_affine(SPLIT.images, 10, 1.0, 0, GEN), ValueError, "scale must be a finite number in [0, 1)"),
    (lambda: data.random_affine(SPLIT.images, 10, 0.1, float("nan"), GEN), ValueError, "shear must be a finite number"),
    (lambda: data.random_affine(SPLIT.images, "10", 0.1, 5, GEN), TypeError, "degrees"),
    (lambda: data.random_affine(SPLIT.images, 10, 0.1, 5, None), TypeError, "generator must be a torch.Generator"),
    (lambda: data.random_affine(torch.zeros(0, 1, 4, 4), 10, 0.1, 5, GEN), ValueError, "non-empty"),
    (lambda: data.affine(SPLIT.images, torch.zeros(5), torch.zeros(6), torch.ones(6)), ValueError,
     "angles must have shape (6,), one per image, got (5,)"),
    (lambda: data.affine(SPLIT.images, torch.zeros(6), torch.zeros(6), torch.zeros(6)), ValueError, "zooms > 0"),
    (lambda: data.affine(SPLIT.images, torch.zeros(6), torch.full((6,), 90.0), torch.ones(6)), ValueError,
     "shears must be in (-90, 90)"),
    (lambda: data.affine(SPLIT.images, torch.full((6,), float("inf")), torch.zeros(6), torch.ones(6)), ValueError,
     "angles"),
    (lambda: data.affine(SPLIT.images, [0.0] * 6, torch.zeros(6), torch.ones(6)), TypeError,
     "angles must be a (6,) tensor"),
    (lambda: SPLIT.subset(2.0), TypeError, "n must be an int in [1, 6], got float"),
    (lambda: SPLIT.subset(7), ValueError, "n must be an int in [1, 6], got 7"),
    (lambda: SPLIT.to("gpu"), ValueError, "device must name a torch device"),
    (lambda: SPLIT.to(0.5), TypeError, "device must be a str like 'cpu'"),
    (lambda: data.stratified_split(LABELS, 0, 0), ValueError, "held_out_per_class must be an int >= 1, got 0"),
    (lambda: data.stratified_split(LABELS, 1.5, 0), TypeError, "held_out_per_class"),
    (lambda: data.stratified_split(LABELS, 1, -1), ValueError, "seed must be an int in [0, 4294967295], got -1"),
    (lambda: data.stratified_split(LABELS, 1, 0.0), TypeError, "seed"),
    (lambda: data.stratified_split(LABELS, 4, 0), ValueError, "too few to hold out 4"),
    (lambda: data.stratified_split(LABELS.astype(float), 1, 0), ValueError, "labels must be a non-empty 1-D array of integer"),
    (lambda: data.stratified_split(np.array([], dtype=int), 1, 0), ValueError, "labels"),
    (lambda: data.stratified_split(LABELS.reshape(3, 4), 1, 0), ValueError, "labels"),
    (lambda: data.validation_split_indices(LABELS, per_class=-2), ValueError, "per_class must be an int >= 1, got -2"),
    (lambda: data.validation_split_indices(LABELS, seed=None), TypeError, "seed"),
    (lambda: data.fashion_split_indices(LABELS, test_per_class=1.0), TypeError, "test_per_class"),
    (lambda: data.load("mnist", "test", device="gpu"), ValueError, "device must name a torch device"),
    (lambda: data.load("mnist", "test", device=None), TypeError, "device must be a str like 'cpu'"),
    (lambda: data.load(None), ValueError, "dataset must be one of"),
    (lambda: data.load_raw("mnist", "test", root=3), TypeError, "root must be a folder path"),
    (lambda: data.load_raw("mnist", "test", root="/no/such/folder"), ValueError, "root must be an existing folder"),
    (lambda: data.verified_path("mnist", "../fashion-mnist/SHA256SUMS"), ValueError, "filename must be a plain file name"),
    (lambda: data.parse_idx("not bytes"), TypeError, "raw must be the bytes of an IDX file"),
    (lambda: data.torchvision_dataset("mnist", "test", transform="ToTensor"), TypeError, "transform must be callable"),
    (lambda: data.ImageSplit(torch.zeros(3, 28, 28), torch.zeros(3, dtype=torch.long), "x", ()), ValueError,
     "images must be a (N, C, H, W) float tensor"),
    (lambda: data.ImageSplit(torch.zeros(3, 1, 2, 2), torch.zeros(2, dtype=torch.long), "x", ()), ValueError,
     "images and labels must agree in N, got 3 images and 2 labels"),
    (lambda: data.ImageSplit(torch.zeros(3, 1, 2, 2), torch.zeros(3), "x", ()), ValueError, "labels must be a (N,) integer"),
])
def test_bad_input_raises_a_named_error(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_device_is_rejected_before_reading_files(monkeypatch):
    monkeypatch.setattr(data, "load_raw", lambda *a, **k: pytest.fail("read files before checking device"))
    with pytest.raises(ValueError, match="device 'cuda' is not available on this machine"):
        data.load("mnist", "test", device="cuda")


def test_nothing_changes_on_error(dataset_copy):
    images = torch.randn(2, 1, 4, 4)
    before = images.clone()
    with pytest.raises(TypeError):
        data.random_shift(images, 1.5, GEN)
    assert torch.equal(images, before)
    state = GEN.get_state()
    with pytest.raises(ValueError):
        data.batches(SPLIT, 0, shuffle=True, generator=GEN)
    assert torch.equal(GEN.get_state(), state)          # no draw from the caller's generator
    files = {p: p.read_bytes() for p in (dataset_copy / "mnist").iterdir()}
    sums = dataset_copy / "mnist" / "SHA256SUMS"
    sums.write_text(sums.read_text().replace("  t10k-images", " t10k-images x"))
    files[sums] = sums.read_bytes()
    with pytest.raises(data.DatasetError):
        data.load("mnist", "test", root=dataset_copy)
    assert {p: p.read_bytes() for p in (dataset_copy / "mnist").iterdir()} == files


def test_sample_draws_every_class_and_leaves_the_global_state_alone():
    state = torch.random.get_rng_state()
    fashion = data.load("fashion-mnist", "train")              # stored class by class
    drawn = fashion.sample(1000, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert drawn.labels.bincount(minlength=10).min() >= 50      # every class, about in proportion
    assert torch.equal(drawn.labels, fashion.sample(1000, seed=3).labels)
    assert not torch.equal(drawn.labels, fashion.sample(1000, seed=4).labels)
    with pytest.raises(ValueError, match="n must be"):
        fashion.sample(0)
    with pytest.raises(TypeError, match="seed must be"):
        fashion.sample(10, seed=1.5)


@pytest.mark.parametrize("split", ["validation", "test"])
def test_fashion_evaluation_splits_hold_every_class_in_a_prefix(split):
    labels = data.load("fashion-mnist", split).labels
    assert labels[:500].bincount(minlength=10).min() >= 25
    assert labels.bincount(minlength=10).tolist() == [len(labels) // 10] * 10
