"""The networks the course compresses.

Every model is an ``nn.Sequential`` with named layers, so a learner can write ``model.fc1`` and a
transform can walk the layers in order (conv -> relu -> pool -> ... -> flatten -> linear).

* LeNet-300-100 and LeNet-5 as in Han, Pool, Tran & Dally (2015), "Learning both Weights and
  Connections for Efficient Neural Networks" and Han, Mao & Dally (2016), "Deep Compression":
  266,610 and 431,080 parameters. LeNet-5 here is Caffe's variant (conv 20, conv 50, fc 500,
  fc 10, 5x5 kernels, max pooling) that those papers prune, with a ReLU after each conv.
* The knowledge-distillation teacher of Hinton, Vinyals & Dean (2015), "Distilling the Knowledge
  in a Neural Network": 784-1200-1200-10 with dropout, and MLP students of any width.
* A small CNN with batch norm (conv-bn-relu-pool blocks), for channel pruning across batch-norm
  boundaries and for Fashion-MNIST, and a tiny one that fits a microcontroller.

Taught in ``notebooks/00_efficiency_and_hardware.ipynb``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable, Sequence

import torch
from torch import nn

from .checks import check_choice, check_int, describe, is_int, is_real
from .data import SEED_RANGE

__all__ = ["IMAGE_SHAPE", "NUM_CLASSES", "mlp", "lenet_300_100", "lenet5", "kd_teacher", "kd_student", "small_cnn",
           "tiny_cnn", "ARCHITECTURES", "build"]

IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10


# ----------------------------------------------------------------------------- argument checks

def _check_sizes(sizes: Sequence[int], name: str, count: int | None = None) -> None:
    """A list or tuple of ints >= 1 (exactly ``count`` of them if given, else at least one)."""
    what = f"{count} positive ints" if count else "a non-empty list of positive ints"
    if not isinstance(sizes, (list, tuple)) or not sizes or (count and len(sizes) != count) or \
            any(not is_int(h) or h < 1 for h in sizes):
        raise ValueError(f"{name} must be {what}, got {sizes!r}")


def mlp(hidden_sizes: Sequence[int], dropout: float = 0.0, in_features: int = 784,
        num_classes: int = NUM_CLASSES) -> nn.Sequential:
    """A fully connected ReLU network ``in -> hidden[0] -> ... -> classes`` on flattened images.

    Layers are named ``fc1, fc2, ...``; with ``dropout > 0`` a dropout layer follows each hidden
    ReLU (and the input, at 0.2 as in Hinton et al. 2012, when ``dropout`` is set).

    Raises:
        ValueError: ``hidden_sizes`` is not a non-empty list of ints >= 1 (2.5, True, "300"
            are not sizes), or ``dropout`` is not a finite number in [0, 1).
        TypeError: ``dropout`` is not a number.
        TypeError / ValueError: ``in_features`` or ``num_classes`` is not an int >= 1.
    """
    _check_sizes(hidden_sizes, "hidden_sizes")
    if not is_real(dropout):
        raise TypeError(f"dropout must be a number in [0, 1), got {describe(dropout)}")
    if not (math.isfinite(dropout) and 0.0 <= dropout < 1.0):
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
    check_int(in_features, "in_features", 1)
    check_int(num_classes, "num_classes", 1)
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    if dropout:
        layers["drop0"] = nn.Dropout(min(dropout, 0.2))
    sizes = [in_features, *hidden_sizes]
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:]), start=1):
        layers[f"fc{i}"] = nn.Linear(n_in, n_out)
        layers[f"relu{i}"] = nn.ReLU()
        if dropout:
            layers[f"drop{i}"] = nn.Dropout(dropout)
    layers[f"fc{len(sizes)}"] = nn.Linear(sizes[-1], num_classes)
    return nn.Sequential(layers)


def lenet_300_100() -> nn.Sequential:
    """LeNet-300-100 (LeCun et al. 1998; Han et al. 2015): 784-300-100-10, 266,610 parameters."""
    return mlp([300, 100])


def lenet5() -> nn.Sequential:
    """Caffe's LeNet-5 as pruned by Han et al. (2015): 431,080 parameters.

    Shapes: (B,1,28,28) -conv1 5x5-> (B,20,24,24) -pool-> (B,20,12,12) -conv2 5x5-> (B,50,8,8)
    -pool-> (B,50,4,4) -flatten-> (B,800) -fc1-> (B,500) -fc2-> (B,10).
    """
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(1, 20, kernel_size=5), relu1=nn.ReLU(), pool1=nn.MaxPool2d(2),
        conv2=nn.Conv2d(20, 50, kernel_size=5), relu2=nn.ReLU(), pool2=nn.MaxPool2d(2),
        flatten=nn.Flatten(),
        fc1=nn.Linear(50 * 4 * 4, 500), relu3=nn.ReLU(),
        fc2=nn.Linear(500, NUM_CLASSES),
    ))


def kd_teacher(dropout: float = 0.5) -> nn.Sequential:
    """Hinton et al. (2015)'s MNIST teacher: 784-1200-1200-10 with dropout, 0.5 on both hidden
    layers and 0.2 on the input by default (:func:`mlp`), as in Hinton et al. (2012).

    The zoo's teacher keeps the default. A teacher at dropout 0.2 was better by itself on the
    validation split but a worse teacher there: its short-schedule students did no better than the
    labels (the zoo recipe records the comparison).

    Raises:
        TypeError / ValueError: ``dropout`` not a number in [0, 1).
    """
    return mlp([1200, 1200], dropout=dropout)


def kd_student(hidden: int = 800) -> nn.Sequential:
    """An MLP student 784-hidden-hidden-10 (Hinton et al. 2015 used 800).

    Raises:
        TypeError / ValueError: ``hidden`` is not an int >= 1.
    """
    check_int(hidden, "hidden", 1)
    return mlp([hidden, hidden])


def small_cnn(widths: Sequence[int] = (32, 64), hidden: int = 128) -> nn.Sequential:
    """Two conv-bn-relu-pool blocks (3x3 kernels, padding 1) and a two-layer classifier.

    Shapes with the default widths: (B,1,28,28) -> (B,32,14,14) -> (B,64,7,7) -> (B,3136)
    -> (B,128) -> (B,10).

    Raises:
        ValueError: ``widths`` is not two ints >= 1.
        TypeError / ValueError: ``hidden`` is not an int >= 1.
    """
    _check_sizes(widths, "widths", count=2)
    check_int(hidden, "hidden", 1)
    c1, c2 = widths
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(1, c1, 3, padding=1, bias=False), bn1=nn.BatchNorm2d(c1),
        relu1=nn.ReLU(), pool1=nn.MaxPool2d(2),
        conv2=nn.Conv2d(c1, c2, 3, padding=1, bias=False), bn2=nn.BatchNorm2d(c2),
        relu2=nn.ReLU(), pool2=nn.MaxPool2d(2),
        flatten=nn.Flatten(),
        fc1=nn.Linear(c2 * 7 * 7, hidden), relu3=nn.ReLU(),
        fc2=nn.Linear(hidden, NUM_CLASSES),
    ))


def tiny_cnn() -> nn.Sequential:
    """The small CNN at widths (8, 16) with a 32-unit classifier: 26,722 parameters (26 KiB in
    int8) and 307,648 MACs, a student small enough for a microcontroller (the Arduino
    Nano 33 BLE Sense profile: 256 KB of SRAM, 1 MB of flash)."""
    return small_cnn((8, 16), 32)


# Constructors by name, used by the zoo and the widgets. A constant table, never modified.
ARCHITECTURES: dict[str, Callable[[], nn.Sequential]] = {
    "lenet_300_100": lenet_300_100,
    "lenet5": lenet5,
    "kd_teacher": kd_teacher,
    "kd_student": kd_student,
    "small_cnn": small_cnn,
    "tiny_cnn": tiny_cnn,
}


def build(architecture: str, seed: int = 0) -> nn.Sequential:
    """A freshly initialised network by name, its weights drawn from a generator seeded with
    ``seed`` (the global RNG is left as it was).

    Args:
        architecture: one of :data:`ARCHITECTURES` (``"lenet5"``, ...).
        seed: an int in [0, 2**32 - 1].

    Raises:
        ValueError: an unknown ``architecture`` (the message lists the choices), or ``seed`` out
            of range. TypeError: ``seed`` is not an int (1.0, True, None).
    """
    check_choice(architecture, "architecture", sorted(ARCHITECTURES))
    check_int(seed, "seed", *SEED_RANGE)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ARCHITECTURES[architecture]()
