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

import functools
import gzip
import hashlib
import os
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checks import check_choice, check_finite, check_int, check_path, check_real, check_type

__all__ = ["DATASET_NAMES", "SPLITS", "MEAN_STD", "CLASS_NAMES", "FASHION_SPLIT_SEED", "FASHION_TEST_PER_CLASS",
           "VALIDATION_SEED", "VALIDATION_PER_CLASS", "DatasetError", "SEED_RANGE", "check_device", "data_root",
           "sha256_of_file", "read_checksums", "verified_path", "parse_idx", "stratified_split",
           "fashion_split_indices", "validation_split_indices", "ImageSplit", "check_split", "load_raw", "load",
           "random_shift", "affine", "random_affine", "batches", "torchvision_dataset"]

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


# ----------------------------------------------------------------------------- argument checks

SEED_RANGE = (0, 2 ** 32 - 1)     # what every generator accepts (NumPy's legacy one included)


def _check_root(root: Path | str | None) -> Path | None:
    """None, or an existing folder (a str or Path) that holds the dataset folders."""
    check_type(root, "root", (str, os.PathLike), "a folder path (str or Path)", allow_none=True)
    if root is None:
        return None
    if not Path(root).is_dir():
        raise ValueError(f"root must be an existing folder holding mnist/ and fashion-mnist/, got {str(root)!r}")
    return Path(root)


def check_device(device: torch.device | str, name: str = "device") -> torch.device:
    """Return ``torch.device(device)`` after checking that it names a device this machine has.

    Raises:
        TypeError: ``device`` is neither a str nor a ``torch.device``.
        ValueError: it names no torch device (``"gpu"``), or one that is absent here
            (``"cuda"`` without a GPU, ``"cuda:3"`` with one GPU, ``"mps"`` off a Mac).
    """
    check_type(device, name, (str, torch.device), "a str like 'cpu' or 'cuda', or a torch.device")
    try:
        resolved = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"{name} must name a torch device such as 'cpu', 'cuda' or 'mps', "
                         f"got {device!r}") from e
    if resolved.type == "cuda":
        present = torch.cuda.is_available() and (resolved.index or 0) < torch.cuda.device_count()
    elif resolved.type == "mps":
        present = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    else:
        present = True
    if not present:
        raise ValueError(f"{name} {str(device)!r} is not available on this machine; "
                         "use 'cpu' or train.default_device()")
    return resolved


# ----------------------------------------------------------------------------- locating files

def data_root() -> Path:
    """The folder holding ``mnist/`` and ``fashion-mnist/``.

    ``$COURSE_DATA_DIR`` if set, else the repository's ``datasets/`` folder.
    """
    override = os.environ.get("COURSE_DATA_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "datasets"


def sha256_of_file(path: Path | str) -> str:
    """The SHA-256 of a file's bytes as 64 lowercase hex digits, read in 1 MB chunks.

    Raises:
        TypeError: ``path`` is not a str or Path. OSError: the file cannot be read.
    """
    check_path(path, "path")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_checksums(folder: Path | str) -> dict[str, str]:
    """Parse a ``SHA256SUMS`` file (``<64 hex digits>  <name>`` per line, as ``sha256sum``
    writes it; blank lines skipped) into ``{name: hex}``.

    Raises:
        TypeError: ``folder`` is not a str or Path.
        DatasetError: the file is missing, not text, or a line is garbled (named by number).
    """
    folder = check_path(folder, "folder", "folder")
    sums_file = folder / "SHA256SUMS"
    restore = "restore it from the course repository (git checkout -- datasets)"
    if not sums_file.is_file():
        raise DatasetError(f"checksum list {sums_file.name} is missing from {folder.name}/; "
                           "copy the dataset folder again from the course repository")
    try:
        text = sums_file.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as e:
        raise DatasetError(f"checksum list {folder.name}/SHA256SUMS could not be read as text ({e}); "
                           f"{restore}") from e
    checksums = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
            raise DatasetError(f"checksum list {folder.name}/SHA256SUMS line {number} is not "
                               f"'<64 hex digits>  <file name>': {line[:80]!r}; {restore}")
        checksums[parts[1].lstrip("*")] = parts[0].lower()
    return checksums


def verified_path(dataset: str, filename: str, root: Path | None = None) -> Path:
    """Return the path of ``filename`` after checking it against the folder's ``SHA256SUMS``.

    Args:
        dataset: the dataset's folder name under ``root``.
        filename: a plain file name in that folder (no ``/``).
        root: the data folder; :func:`data_root` if None.

    Raises:
        TypeError / ValueError: an argument of the wrong type, a path for ``filename``, or a
            ``root`` that is not a folder.
        DatasetError: if the file is missing, unlisted, or its SHA-256 differs (corruption).
    """
    check_type(dataset, "dataset", str, "a dataset folder name (str)")
    check_type(filename, "filename", str, "a file name (str)")
    if not filename or Path(filename).name != filename or filename in (".", ".."):
        raise ValueError(f"filename must be a plain file name in the dataset folder, got {filename!r}")
    root = _check_root(root)
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
    sizes, then uint8 values in row-major order. Returns a uint8 array of those sizes.

    Raises:
        TypeError: ``raw`` is not bytes (or ``name`` not a str).
        DatasetError: a bad magic number, a truncated header, or a value count that disagrees
            with the header; the message names ``name``.
    """
    check_type(raw, "raw", (bytes, bytearray, memoryview), "the bytes of an IDX file")
    check_type(name, "name", str, "a str naming the data in messages")
    raw = bytes(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{name} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DatasetError(f"{name} has a truncated header: {ndim} sizes need {4 + 4 * ndim} "
                           f"bytes, the file holds {len(raw)}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise DatasetError(f"{name} holds {len(raw) - offset} values, its header says {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def _gunzip(path: Path) -> bytes:
    """The decompressed bytes of a gzip file; a failed CRC or length check is a DatasetError."""
    try:
        return gzip.decompress(path.read_bytes())
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as e:
        raise DatasetError(f"dataset file {path.parent.name}/{path.name} is not a valid gzip "
                           f"stream ({e}); restore it from the course repository "
                           "(git checkout -- datasets)") from e


def _check_images_and_labels(images: np.ndarray, labels: np.ndarray, image_source: str,
                             label_source: str) -> None:
    """Images (N, 28, 28) and labels (N,) in [0, 10) that agree in N, or a DatasetError."""
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(f"{image_source} holds an array of shape {images.shape}, expected (N, 28, 28)")
    if labels.ndim != 1 or (labels.size and not 0 <= labels.min() <= labels.max() < 10):
        raise DatasetError(f"{label_source} must hold one class index in [0, 9] per image")
    if len(images) != len(labels):
        raise DatasetError(f"{image_source} holds {len(images)} images but {label_source} holds "
                           f"{len(labels)} labels; the two files of a split must match (was one "
                           "replaced by another split's file?)")


def _read_mnist(split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The official MNIST files of ``split`` ("train": all 60,000 training images, or "test")."""
    image_file, label_file = _MNIST_FILES[split]
    images = parse_idx(_gunzip(verified_path("mnist", image_file, root)), image_file)
    labels = parse_idx(_gunzip(verified_path("mnist", label_file, root)), label_file)
    _check_images_and_labels(images, labels, f"mnist/{image_file}", f"mnist/{label_file}")
    return images, labels


def _as_labels(labels) -> np.ndarray:
    """``labels`` as a non-empty 1-D integer NumPy array."""
    try:
        array = np.asarray(labels)
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(f"labels must be a 1-D array of class indices, got {type(labels).__name__}") from e
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"labels must be a non-empty 1-D array of integer class indices, "
                         f"got shape {array.shape} of {array.dtype}")
    return array


def stratified_split(labels: np.ndarray, held_out_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split example indices in two, stratified: for each class, a seeded permutation of its
    indices; the first ``held_out_per_class`` are held out, the rest kept. Returns
    ``(kept, held_out)``, each sorted. The same labels and seed always give the same split.

    Args:
        labels: (N,) integer class labels, N >= 1 (a NumPy array, list or CPU tensor).
        held_out_per_class: an int >= 1, below every class's count.
        seed: an int in [0, 2**32 - 1].

    Raises:
        TypeError / ValueError: labels that are not a non-empty 1-D integer array, or a count
            or seed of the wrong type or range; ValueError if a class is too small.
    """
    check_int(held_out_per_class, "held_out_per_class", 1)
    check_int(seed, "seed", *SEED_RANGE)
    labels = _as_labels(labels)
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
    ``test_per_class`` seeded picks go to test, the rest to train (indices sorted).

    Raises:
        TypeError / ValueError: as :func:`stratified_split`, naming ``test_per_class``.
    """
    check_int(test_per_class, "test_per_class", 1)
    train, test = stratified_split(labels, test_per_class, seed)
    return {"train": train, "test": test}


def validation_split_indices(labels: np.ndarray, seed: int = VALIDATION_SEED,
                             per_class: int = VALIDATION_PER_CLASS) -> dict[str, np.ndarray]:
    """Carve the validation split out of a training split: ``per_class`` seeded picks of each
    class go to ``"validation"``, the rest stay in ``"train"`` (indices sorted, disjoint).

    Raises:
        TypeError / ValueError: as :func:`stratified_split`, naming ``per_class``.
    """
    check_int(per_class, "per_class", 1)
    train, validation = stratified_split(labels, per_class, seed)
    return {"train": train, "validation": validation}


def _read_fashion(split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The course's Fashion-MNIST ``split`` ("train": all 60,000 training images, or "test")."""
    with np.load(verified_path("fashion-mnist", _FASHION_FILE, root)) as archive:
        missing = {"images", "labels"} - set(archive.files)
        if missing:
            raise DatasetError(f"fashion-mnist/{_FASHION_FILE} lacks the arrays {sorted(missing)}")
        images, labels = archive["images"], archive["labels"]
    _check_images_and_labels(images, labels, f"fashion-mnist/{_FASHION_FILE} images",
                             f"fashion-mnist/{_FASHION_FILE} labels")
    index = fashion_split_indices(labels)[split]
    return images[index], labels[index]


def _read_split(dataset: str, split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one of :data:`SPLITS`: train and validation are carved from the
    dataset's 60,000 training images by :func:`validation_split_indices`.

    The course's Fashion-MNIST copy is stored class by class, so its validation and test splits
    are put in a fixed seeded order: a prefix (:meth:`ImageSplit.subset`) then holds every class,
    as MNIST's does. Its train split keeps the stored order, on which the shipped models' seeded
    recipes were trained (each epoch draws its own permutation); draw from it with
    :meth:`ImageSplit.sample`."""
    read = _read_mnist if dataset == "mnist" else _read_fashion
    if split == "test":
        images, labels = read("test", root)
    else:
        images, labels = read("train", root)
        index = validation_split_indices(labels)[split]
        images, labels = images[index], labels[index]
    if dataset == "fashion-mnist" and split != "train":
        order = np.random.default_rng(FASHION_SPLIT_SEED).permutation(len(labels))
        images, labels = images[order], labels[order]
    return images, labels


# ----------------------------------------------------------------------------- public API

@dataclass(frozen=True)
class ImageSplit:
    """One split of a dataset, in memory.

    Attributes:
        images: (N, 1, 28, 28) float32, normalised: ``(pixel / 255 - mean) / std``.
        labels: (N,) int64 class indices.
        name: e.g. ``"mnist/test"``.
        classes: the class names, index by label.

    Raises (on construction):
        TypeError / ValueError: images that are not a (N, C, H, W) float tensor, labels that are
            not N integer class indices, or a name / classes of the wrong type.
    """
    images: torch.Tensor
    labels: torch.Tensor
    name: str
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        check_type(self.images, "images", torch.Tensor, "a (N, C, H, W) float tensor")
        check_type(self.labels, "labels", torch.Tensor, "a (N,) int64 tensor")
        if self.images.dim() != 4 or not self.images.is_floating_point():
            raise ValueError(f"images must be a (N, C, H, W) float tensor, got shape "
                             f"{tuple(self.images.shape)} of {self.images.dtype}")
        if self.labels.dim() != 1 or self.labels.is_floating_point() or self.labels.dtype == torch.bool:
            raise ValueError(f"labels must be a (N,) integer tensor, got shape "
                             f"{tuple(self.labels.shape)} of {self.labels.dtype}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"images and labels must agree in N, got {len(self.images)} images "
                             f"and {len(self.labels)} labels")
        check_type(self.name, "name", str, "a str like 'mnist/test'")
        if not isinstance(self.classes, tuple) or not all(isinstance(c, str) for c in self.classes):
            raise TypeError(f"classes must be a tuple of class names (str), got {self.classes!r}")

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> "ImageSplit":
        """The same split with its tensors on ``device`` (this one is unchanged).

        Raises:
            TypeError / ValueError: as :func:`check_device`.
        """
        device = check_device(device)
        return ImageSplit(self.images.to(device), self.labels.to(device), self.name, self.classes)

    def subset(self, n: int) -> "ImageSplit":
        """The first ``n`` examples (a quick look for exercises and widgets). Every split but
        Fashion-MNIST's train split, which is stored class by class, holds every class in
        its first few hundred examples; to draw from any split, use :meth:`sample`.

        Raises:
            TypeError / ValueError: ``n`` is not an int in [1, len(self)].
        """
        check_int(n, "n", 1, len(self))
        return ImageSplit(self.images[:n], self.labels[:n], f"{self.name}[:{n}]", self.classes)

    def sample(self, n: int, seed: int = 0) -> "ImageSplit":
        """``n`` examples drawn without replacement by a permutation seeded with ``seed`` (a
        private generator: the global random state is untouched): a calibration or
        fine-tuning set in which every class appears about in proportion.

        Raises:
            TypeError / ValueError: ``n`` not an int in [1, len(self)]; ``seed`` not an int in
                [0, 2**32 - 1].
        """
        check_int(n, "n", 1, len(self))
        check_int(seed, "seed", *SEED_RANGE)
        index = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        index = index.to(self.labels.device)
        return ImageSplit(self.images[index], self.labels[index], f"{self.name}, {n} drawn with seed {seed}",
                          self.classes)


def check_split(split: ImageSplit, name: str = "split", allow_none: bool = False) -> None:
    """``split`` is an :class:`ImageSplit` (from :func:`load`) holding at least one example, or
    None if ``allow_none``: the check of every split that a model is trained, scored or
    calibrated on.

    Raises:
        TypeError: not an ImageSplit (e.g. an ``(images, labels)`` tuple).
        ValueError: an empty split.
    """
    check_type(split, name, ImageSplit, "an ImageSplit (from data.load)", allow_none)
    if split is not None and len(split) == 0:
        raise ValueError(f"{name} must hold at least one image, got an empty ImageSplit")


def load_raw(dataset: str = "mnist", split: str = "train",
             root: Path | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The verified uint8 images (N, 28, 28) and labels (N,) of one split, as numpy arrays:
    ``"train"`` (55,000), ``"validation"`` (5,000) or ``"test"`` (10,000).

    Raises:
        ValueError: ``dataset`` not in :data:`DATASET_NAMES`, ``split`` not in :data:`SPLITS`,
            or ``root`` not an existing folder. TypeError: ``root`` not a str or Path.
        DatasetError: a file is missing, corrupted, or the files of the split disagree.
    """
    check_choice(dataset, "dataset", DATASET_NAMES)
    check_choice(split, "split", SPLITS)
    root = _check_root(root)
    return _read_split(dataset, split, root)


def load(dataset: str = "mnist", split: str = "train", root: Path | str | None = None,
         device: torch.device | str = "cpu") -> ImageSplit:
    """Load one split, verified by checksum, normalised, as tensors on ``device``.

    Example:
        >>> test = load("mnist", "test")
        >>> test.images.shape, test.labels[:5].tolist()
        (torch.Size([10000, 1, 28, 28]), [7, 2, 1, 0, 4])

    Raises:
        TypeError / ValueError: as :func:`load_raw`, and for a ``device`` this machine lacks
            (:func:`check_device`), checked before any file is read.
        DatasetError: as :func:`load_raw`.
    """
    check_device(device)
    check_choice(dataset, "dataset", DATASET_NAMES)
    check_choice(split, "split", SPLITS)
    folder = (_check_root(root) or data_root()) / dataset
    # The folder and its files as they are now (names, sizes, modification times): another folder, or
    # a file changed since the last load, is read and verified again.
    files = (str(folder.resolve()),) + tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                                             for p in sorted(folder.glob("*"))) if folder.is_dir() else ()
    x, y = _normalised(dataset, split, None if root is None else str(root), files)
    # Copies: what a caller does to its split never reaches the next caller.
    return ImageSplit(x.clone(), y.clone(), f"{dataset}/{split}", CLASS_NAMES[dataset]).to(device)


@functools.lru_cache(maxsize=6)
def _normalised(dataset: str, split: str, root: str | None, files: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """One split read, verified and normalised once per process for the same files (reading and
    checking 55,000 images takes most of a second; the panels and the tests load a split again and
    again): (N, 1, 28, 28) float32 images and (N,) int64 labels."""
    images, labels = load_raw(dataset, split, root)
    mean, std = MEAN_STD[dataset]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)   # (N, 1, 28, 28)
    return (x - mean) / std, torch.from_numpy(labels.astype(np.int64))


def _check_images(images: torch.Tensor) -> None:
    check_type(images, "images", torch.Tensor, "a (B, C, H, W) tensor")
    if images.dim() != 4 or images.numel() == 0:
        raise ValueError(f"images must be a non-empty (B, C, H, W) tensor, got shape {tuple(images.shape)}")
    check_finite(images, "images", "the background value would be garbage")


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by a random whole number of pixels in [-max_shift, max_shift] on
    each axis, filling with the background value (the image's minimum). A light augmentation
    for training baselines: (B, C, H, W) -> (B, C, H, W), a new tensor.

    Args:
        images: (B, C, H, W), non-empty, finite; not modified.
        max_shift: an int >= 0 (0 returns a copy).
        generator: a CPU ``torch.Generator`` (needed when ``max_shift > 0``).

    Raises:
        TypeError: a non-tensor ``images``, a non-int ``max_shift``, or a missing generator.
        ValueError: ``images`` not 4-D, empty or not finite, or ``max_shift`` < 0.
    """
    _check_images(images)
    check_int(max_shift, "max_shift", 0)
    if max_shift:
        check_type(generator, "generator", torch.Generator,
                    "a torch.Generator when max_shift > 0 (torch.Generator().manual_seed(0))")
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


def affine(images: torch.Tensor, angles: torch.Tensor, shears: torch.Tensor, zooms: torch.Tensor) -> torch.Tensor:
    """Move each image by its own affine map about its centre: rotated by ``angles[b]`` degrees,
    sheared along the rows by ``shears[b]`` degrees, zoomed by ``zooms[b]``; sampled bilinearly, with
    the background value (the images' minimum) outside. Pixel :math:`u` of the result reads the
    input at :math:`c + A^{-1}(u - c)`, where :math:`c` is the centre and
    :math:`A = s\\,R(\\theta)\\begin{pmatrix}1 & -\\tan\\varphi\\\\ 0 & 1\\end{pmatrix}`: the map of
    ``torchvision.transforms.v2.functional.affine`` (no translation), for a whole batch at once.

    Args:
        images: (B, C, H, W), non-empty, finite; not modified.
        angles, shears, zooms: (B,) finite tensors; shears in (-90, 90) degrees, zooms > 0.

    Raises:
        TypeError: a non-tensor argument.
        ValueError: ``images`` not 4-D, empty or not finite; a map that is not (B,), not finite,
            or out of range.
    """
    _check_images(images)
    B, _, H, W = images.shape
    for value, name in ((angles, "angles"), (shears, "shears"), (zooms, "zooms")):
        check_type(value, name, torch.Tensor, f"a ({B},) tensor")
        if value.shape != (B,):
            raise ValueError(f"{name} must have shape ({B},), one per image, got {tuple(value.shape)}")
        check_finite(value, name, "the map would be garbage")
    if not bool((shears.abs() < 90).all()) or not bool((zooms > 0).all()):
        raise ValueError("shears must be in (-90, 90) degrees and zooms > 0, got shears in "
                         f"[{float(shears.min())}, {float(shears.max())}], zooms in "
                         f"[{float(zooms.min())}, {float(zooms.max())}]")
    theta, phi = torch.deg2rad(angles.double().cpu()), torch.deg2rad(shears.double().cpu())
    cos, sin, tan = torch.cos(theta), torch.sin(theta), torch.tan(phi)
    # The forward map A in (x right, y down) pixel axes; the grid needs its inverse.
    forward = torch.stack([torch.stack([cos, -cos * tan - sin], -1),
                           torch.stack([sin, -sin * tan + cos], -1)], -2) * zooms.double().cpu()[:, None, None]
    inverse = torch.linalg.inv(forward)                                   # (B, 2, 2): output -> input
    # affine_grid works in coordinates normalised to [-1, 1] on each axis; rescale for H != W.
    aspect = torch.tensor([[1.0, H / W], [W / H, 1.0]], dtype=torch.float64)
    matrix = torch.zeros(B, 2, 3, dtype=torch.float64)
    matrix[:, :, :2] = inverse * aspect
    grid = torch.nn.functional.affine_grid(matrix.to(images.dtype).to(images.device), list(images.shape),
                                           align_corners=False)
    background = images.min()
    moved = torch.nn.functional.grid_sample(images - background, grid, mode="bilinear",
                                            padding_mode="zeros", align_corners=False)
    return moved + background


def random_affine(images: torch.Tensor, degrees: float, scale: float, shear: float,
                  generator: torch.Generator) -> torch.Tensor:
    """:func:`affine` with each image's map drawn uniformly: an angle in [-degrees, degrees], a
    shear in [-shear, shear] degrees, a zoom in [1 - scale, 1 + scale].

    Small affine maps are how Simard, Steinkraus & Platt (2003) imitate the variety of new writers'
    hands on MNIST; the course uses them to score models on validation digits made unfamiliar, a
    stand-in for the test set's writers, whom the training images never show.

    Args:
        images: (B, C, H, W), non-empty, finite; not modified.
        degrees: the largest rotation, in [0, 180].
        scale: the largest relative zoom, in [0, 1).
        shear: the largest shear angle in degrees, in [0, 45].
        generator: a CPU ``torch.Generator``: three draws per image.

    Raises:
        TypeError: a non-tensor ``images``, a non-number argument, a missing generator.
        ValueError: ``images`` not 4-D, empty or not finite; an argument outside its range.
    """
    _check_images(images)
    check_real(degrees, "degrees", 0, 180)
    check_real(scale, "scale", 0, 1, high_open=True)
    check_real(shear, "shear", 0, 45)
    check_type(generator, "generator", torch.Generator, "a torch.Generator (torch.Generator().manual_seed(0))")
    draws = 2 * torch.rand(3, len(images), generator=generator, device="cpu", dtype=torch.float64) - 1
    return affine(images, degrees * draws[0], shear * draws[1], 1 + scale * draws[2])


def _iterate_batches(split: ImageSplit, batch_size: int, shuffle: bool,
                     generator: torch.Generator | None, max_shift: int,
                     with_index: bool = False) -> Iterator[tuple[torch.Tensor, ...]]:
    # The generator behind batches(), kept apart so that batches() checks its arguments when
    # called: a generator function would only run its checks at the first next().
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(split.images.device)
    for start in range(0, n, batch_size):
        index = order[start:start + batch_size]
        x, y = split.images[index], split.labels[index]
        if max_shift:
            x = random_shift(x, max_shift, generator)
        yield (x, y, index) if with_index else (x, y)


def batches(split: ImageSplit, batch_size: int, shuffle: bool = False,
            generator: torch.Generator | None = None,
            max_shift: int = 0, with_index: bool = False) -> Iterator[tuple[torch.Tensor, ...]]:
    """An iterator of ``(images, labels)`` mini-batches, slices of the in-memory tensors.

    Args:
        batch_size: examples per batch (the last batch may be smaller).
        shuffle: visit examples in a random order drawn from ``generator``.
        generator: a seeded ``torch.Generator`` (CPU); needed for ``shuffle`` or ``max_shift``.
        max_shift: if > 0, augment with :func:`random_shift` by up to this many pixels.
        with_index: also yield the batch's example indices into ``split``, as
            ``(images, labels, index)``: how a per-example target computed once (a teacher's
            logits, in distillation) is looked up for each batch.

    Raises (when called, before the first batch):
        TypeError: ``split`` not an ImageSplit, ``batch_size``/``max_shift`` not ints,
            ``shuffle``/``with_index`` not a bool, ``generator`` not a torch.Generator.
        ValueError: ``batch_size`` < 1, ``max_shift`` < 0, or no generator where one is needed.
    """
    check_type(split, "split", ImageSplit, "an ImageSplit (from data.load)")
    check_int(batch_size, "batch_size", 1)
    check_int(max_shift, "max_shift", 0)
    check_type(shuffle, "shuffle", bool, "True or False")
    check_type(with_index, "with_index", bool, "True or False")
    if generator is not None:
        check_type(generator, "generator", torch.Generator, "a torch.Generator or None")
    if (shuffle or max_shift) and generator is None:
        raise ValueError("generator is required when shuffle=True or max_shift > 0; "
                         "pass torch.Generator().manual_seed(0)")
    return _iterate_batches(split, batch_size, shuffle, generator, max_shift, with_index)


def torchvision_dataset(dataset: str = "mnist", split: str = "train", transform=None,
                        target_transform=None, root: Path | str | None = None):
    """The same verified files behind torchvision's ``Dataset`` interface.

    Items are ``(PIL.Image, int)`` like ``torchvision.datasets.MNIST``, so torchvision
    transforms and a ``torch.utils.data.DataLoader`` work unchanged. Slower than
    :func:`batches`; use it to try torchvision augmentations.

    Raises:
        TypeError: ``transform`` or ``target_transform`` is neither callable nor None.
        ValueError / DatasetError: as :func:`load_raw`.
    """
    check_type(transform, "transform", Callable, "callable", allow_none=True)
    check_type(target_transform, "target_transform", Callable, "callable", allow_none=True)
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
