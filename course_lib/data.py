"""MNIST and Fashion-MNIST from the repository's ``datasets/`` folder, verified and in memory.

Every file is checked against ``SHA256SUMS`` before it is read, so a missing or corrupted file
is named instead of silently training on garbage. Whole splits are small (60,000 images of
28x28 bytes is 47 MB), so they live in memory as tensors and batches are slices of them: an
epoch of LeNet-300-100 costs seconds on two CPU cores, where a per-sample PIL pipeline would
cost minutes.

Splits
------
Three splits, with one job each: ``"train"`` fits weights, ``"validation"`` makes every choice
(sparsities, bits, ranks, temperatures, architectures, hyperparameters), ``"test"`` only reports
final numbers. A choice made on the test set would make the test error an optimistic estimate.

* MNIST (LeCun et al., 1998): the official 10,000-image test set. Its official 60,000 training
  images are split, seeded and stratified, into 55,000 ``"train"`` images and 5,000
  ``"validation"`` images (500 per class) that no baseline ever trains on.
* Fashion-MNIST (Xiao et al., 2017): the shipped copy has no official split (see
  ``datasets/README.md``), so :func:`load` first draws a fixed, seeded, stratified one: 6,000
  training and 1,000 test images per class (60,000 / 10,000); the 60,000 are then split into
  train and validation as for MNIST. Accuracies on it are *not* comparable to published
  Fashion-MNIST test accuracies.

Taught in ``notebooks/00_efficiency_and_hardware.ipynb``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

DATASET_NAMES = ("mnist", "fashion-mnist")
SPLITS = ("train", "validation", "test")

# Per-pixel statistics of each dataset's 60,000 training images (train + validation), after
# scaling to [0, 1]: the constants every MNIST tutorial uses (tests/test_data.py recomputes them).
MEAN_STD = {"mnist": (0.1307, 0.3081), "fashion-mnist": (0.2860, 0.3530)}

CLASS_NAMES = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}

FASHION_SPLIT_SEED = 2017
FASHION_TEST_PER_CLASS = 1000
VALIDATION_SEED = 2015
VALIDATION_PER_CLASS = 500

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_FASHION_FILE = "fashion_mnist_by_class.npz"


class DatasetError(RuntimeError):
    """A dataset file is missing, corrupted, or not in the expected format."""


# ----------------------------------------------------------------------------- locating files

def data_root() -> Path:
    """The folder holding ``mnist/`` and ``fashion-mnist/``.

    ``$COURSE_DATA_DIR`` if set, else the repository's ``datasets/`` folder.
    """
    override = os.environ.get("COURSE_DATA_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "datasets"


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_checksums(folder: Path) -> dict[str, str]:
    """Parse a ``SHA256SUMS`` file (``<hex>  <name>`` per line) into ``{name: hex}``."""
    sums_file = folder / "SHA256SUMS"
    if not sums_file.is_file():
        raise DatasetError(f"checksum list {sums_file.name} is missing from {folder.name}/; "
                           "copy the dataset folder again from the course repository")
    checksums = {}
    for line in sums_file.read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            checksums[name.lstrip("*")] = digest
    return checksums


def verified_path(dataset: str, filename: str, root: Path | None = None) -> Path:
    """Return the path of ``filename`` after checking it against the folder's ``SHA256SUMS``.

    Raises:
        DatasetError: if the file is missing, unlisted, or its SHA-256 differs (corruption).
    """
    folder = Path(root or data_root()) / dataset
    path = folder / filename
    if not path.is_file():
        raise DatasetError(f"dataset file {dataset}/{filename} is missing; "
                           "restore it from the course repository (git checkout -- datasets)")
    expected = read_checksums(folder).get(filename)
    if expected is None:
        raise DatasetError(f"dataset file {dataset}/{filename} is not listed in SHA256SUMS")
    actual = sha256_of_file(path)
    if actual != expected:
        raise DatasetError(f"dataset file {dataset}/{filename} is corrupted: SHA-256 is "
                           f"{actual[:16]}..., expected {expected[:16]}...; "
                           "restore it from the course repository (git checkout -- datasets)")
    return path


# ----------------------------------------------------------------------------- file formats

def parse_idx(raw: bytes, name: str = "IDX data") -> np.ndarray:
    """Decode an IDX file (LeCun's format): magic ``0x0000 08 NDIM``, NDIM big-endian uint32
    sizes, then uint8 values in row-major order."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{name} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise DatasetError(f"{name} holds {len(raw) - offset} values, its header says {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def _read_mnist(split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The official MNIST files of ``split`` ("train": all 60,000 training images, or "test")."""
    image_file, label_file = _MNIST_FILES[split]
    images = parse_idx(gzip.decompress(verified_path("mnist", image_file, root).read_bytes()),
                       image_file)
    labels = parse_idx(gzip.decompress(verified_path("mnist", label_file, root).read_bytes()),
                       label_file)
    return images, labels


def stratified_split(labels: np.ndarray, held_out_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split example indices in two, stratified: for each class, a seeded permutation of its
    indices; the first ``held_out_per_class`` are held out, the rest kept. Returns
    ``(kept, held_out)``, each sorted. The same labels and seed always give the same split."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    kept, held_out = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        if len(members) <= held_out_per_class:
            raise ValueError(f"class {c} has {len(members)} examples, too few to hold out "
                             f"{held_out_per_class}")
        held_out.append(members[:held_out_per_class])
        kept.append(members[held_out_per_class:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held_out))


def fashion_split_indices(labels: np.ndarray, seed: int = FASHION_SPLIT_SEED,
                          test_per_class: int = FASHION_TEST_PER_CLASS) -> dict[str, np.ndarray]:
    """The course's Fashion-MNIST train/test split of the 70,000 shipped images: per class,
    ``test_per_class`` seeded picks go to test, the rest to train (indices sorted)."""
    train, test = stratified_split(labels, test_per_class, seed)
    return {"train": train, "test": test}


def validation_split_indices(labels: np.ndarray, seed: int = VALIDATION_SEED,
                             per_class: int = VALIDATION_PER_CLASS) -> dict[str, np.ndarray]:
    """Carve the validation split out of a training split: ``per_class`` seeded picks of each
    class go to ``"validation"``, the rest stay in ``"train"`` (indices sorted, disjoint)."""
    train, validation = stratified_split(labels, per_class, seed)
    return {"train": train, "validation": validation}


def _read_fashion(split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The course's Fashion-MNIST ``split`` ("train": all 60,000 training images, or "test")."""
    with np.load(verified_path("fashion-mnist", _FASHION_FILE, root)) as archive:
        images, labels = archive["images"], archive["labels"]
    index = fashion_split_indices(labels)[split]
    return images[index], labels[index]


def _read_split(dataset: str, split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one of :data:`SPLITS`: train and validation are carved from the
    dataset's 60,000 training images by :func:`validation_split_indices`."""
    read = _read_mnist if dataset == "mnist" else _read_fashion
    if split == "test":
        return read("test", root)
    images, labels = read("train", root)
    index = validation_split_indices(labels)[split]
    return images[index], labels[index]


# ----------------------------------------------------------------------------- public API

@dataclass(frozen=True)
class ImageSplit:
    """One split of a dataset, in memory.

    Attributes:
        images: (N, 1, 28, 28) float32, normalised: ``(pixel / 255 - mean) / std``.
        labels: (N,) int64 class indices.
        name: e.g. ``"mnist/test"``.
        classes: the class names, index by label.
    """
    images: torch.Tensor
    labels: torch.Tensor
    name: str
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> "ImageSplit":
        return ImageSplit(self.images.to(device), self.labels.to(device), self.name, self.classes)

    def subset(self, n: int) -> "ImageSplit":
        """The first ``n`` examples (a quick look for exercises and widgets)."""
        if not 0 < n <= len(self):
            raise ValueError(f"n must be in [1, {len(self)}], got {n}")
        return ImageSplit(self.images[:n], self.labels[:n], f"{self.name}[:{n}]", self.classes)


def _check_choice(argument: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{argument} must be one of {allowed}, got {value!r}")


def load_raw(dataset: str = "mnist", split: str = "train",
             root: Path | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The verified uint8 images (N, 28, 28) and labels (N,) of one split, as numpy arrays:
    ``"train"`` (55,000), ``"validation"`` (5,000) or ``"test"`` (10,000)."""
    _check_choice("dataset", dataset, DATASET_NAMES)
    _check_choice("split", split, SPLITS)
    root = Path(root) if root is not None else None
    return _read_split(dataset, split, root)


def load(dataset: str = "mnist", split: str = "train", root: Path | str | None = None,
         device: torch.device | str = "cpu") -> ImageSplit:
    """Load one split, verified by checksum, normalised, as tensors on ``device``.

    Example:
        >>> test = load("mnist", "test")
        >>> test.images.shape, test.labels[:5].tolist()
        (torch.Size([10000, 1, 28, 28]), [7, 2, 1, 0, 4])
    """
    images, labels = load_raw(dataset, split, root)
    mean, std = MEAN_STD[dataset]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)   # (N, 1, 28, 28)
    x = (x - mean) / std
    y = torch.from_numpy(labels.astype(np.int64))
    return ImageSplit(x, y, f"{dataset}/{split}", CLASS_NAMES[dataset]).to(device)


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by a random whole number of pixels in [-max_shift, max_shift] on
    each axis, filling with the background value (the image's minimum). A light augmentation
    for training baselines: (B, C, H, W) -> (B, C, H, W), a new tensor."""
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    if max_shift == 0:
        return images.clone()
    B, C, H, W = images.shape
    background = float(images.min())
    padded = torch.nn.functional.pad(images, (max_shift,) * 4, value=background)
    # Offsets into the padded image: 0..2*max_shift, one per sample and axis.
    dy = torch.randint(0, 2 * max_shift + 1, (B,), generator=generator, device="cpu")
    dx = torch.randint(0, 2 * max_shift + 1, (B,), generator=generator, device="cpu")
    rows = (dy[:, None] + torch.arange(H)).to(images.device)         # (B, H)
    cols = (dx[:, None] + torch.arange(W)).to(images.device)         # (B, W)
    batch = torch.arange(B, device=images.device)[:, None, None]     # (B, 1, 1)
    channels = [padded[:, c][batch, rows[:, :, None], cols[:, None, :]] for c in range(C)]
    return torch.stack(channels, dim=1)


def batches(split: ImageSplit, batch_size: int, shuffle: bool = False,
            generator: torch.Generator | None = None,
            max_shift: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)`` mini-batches as slices of the in-memory tensors.

    Args:
        batch_size: examples per batch (the last batch may be smaller).
        shuffle: visit examples in a random order drawn from ``generator``.
        generator: a seeded ``torch.Generator`` (CPU); needed for ``shuffle`` or ``max_shift``.
        max_shift: if > 0, augment with :func:`random_shift` by up to this many pixels.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if (shuffle or max_shift) and generator is None:
        raise ValueError("generator is required when shuffle=True or max_shift > 0; "
                         "pass torch.Generator().manual_seed(0)")
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(split.images.device)
    for start in range(0, n, batch_size):
        index = order[start:start + batch_size]
        x, y = split.images[index], split.labels[index]
        if max_shift:
            x = random_shift(x, max_shift, generator)
        yield x, y


def torchvision_dataset(dataset: str = "mnist", split: str = "train", transform=None,
                        target_transform=None, root: Path | str | None = None):
    """The same verified files behind torchvision's ``Dataset`` interface.

    Items are ``(PIL.Image, int)`` like ``torchvision.datasets.MNIST``, so torchvision
    transforms and a ``torch.utils.data.DataLoader`` work unchanged. Slower than
    :func:`batches`; use it to try torchvision augmentations.
    """
    from PIL import Image
    from torchvision.datasets import VisionDataset

    images, labels = load_raw(dataset, split, root)

    class VerifiedImages(VisionDataset):
        classes = list(CLASS_NAMES[dataset])

        def __len__(self) -> int:
            return len(labels)

        def __getitem__(self, i: int):
            image = Image.fromarray(images[i])  # uint8 (28, 28) -> mode "L"
            target = int(labels[i])
            if self.transform is not None:
                image = self.transform(image)
            if self.target_transform is not None:
                target = self.target_transform(target)
            return image, target

    return VerifiedImages(str(data_root()), transform=transform, target_transform=target_transform)
