"""A weight-sharing supernet, Once-for-All style: train once, evaluate thousands of subnets.

Training every candidate of a search from scratch is what made early NAS cost thousands of GPU
days. Cai, Gan, Wang, Zhang & Han (2020), "Once-for-All: Train One Network and Specialize it for
Efficient Deployment" (Sec. 3.1-3.2), train one *supernet* whose weights every subnet of the
space shares, so that a candidate's accuracy is read off in seconds. This module's supernet
holds, for each block position, one elastic block per block type of the space, at the largest
width :math:`W`, kernel :math:`K` and expansion :math:`T`; a subnet takes

* **elastic width**: the first :math:`w` output channels of each convolution (a channel prefix:
  :math:`W_{sub} = W[:w_{out}, :w_{in}]`), and the first :math:`t\\,w_{in}` hidden channels of an
  inverted residual (OFA's elastic expansion ratio);
* **elastic kernel**: the centre :math:`k \\times k` of the :math:`K \\times K` kernel
  (OFA adds a learned :math:`k^2 \\times k^2` transform of the centre; plain cropping here);
* **elastic depth**: the first :math:`d` blocks of each stage (OFA Sec. 3.2: "keep the first
  :math:`D` layers and skip the last");
* **elastic resolution**: the input resized to the chosen side, as :func:`build_model` does.

:meth:`Supernet.extract` copies a subnet's slices into the plain network that
:func:`~course_lib.architectures.build_model` builds for the same description: a standalone
``nn.Module`` with inherited weights, which :mod:`course_lib.measure` counts and which
deploys like any other (its output equals the supernet's on the same subnet; tested).

**Training** (:func:`train_supernet`): at each batch several subnets are run and their gradients
summed before one step. The *sandwich rule* (Yu & Huang 2019, "Universally Slimmable Networks
and Improved Training Techniques", Sec. 3.2; also BigNAS) always includes the largest and the
smallest subnet plus :math:`n` random ones, so that both ends of the space are trained at every
step; ``rule="random"`` trains one random subnet per batch (single-path one-shot, Guo et al. 2020).

**Batch-norm statistics** (Slimmable Networks, Yu et al. 2019, Sec. 3.3; OFA Sec. 3.2): the
running means and variances accumulated in the supernet mix every subnet, so before a subnet is
evaluated they are *re-estimated* on a few training batches (:func:`recalibrate_batch_norm`);
without this, accuracies of subnets are badly wrong. :class:`SubnetEvaluator` does the whole
evaluation: extract, re-estimate, score on a fixed validation subset.

Taught in ``notebooks/07_automl_search.ipynb``.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .. import data
from ..architectures import Architecture, build_model
from ..checks import check_choice, check_int, check_model, check_real, check_type
from ..data import SEED_RANGE, ImageSplit, batches, check_split
from ..measure import torch_threads
from ..train import evaluate
from .space import SearchSpace, check_in_space, choose, decisions, from_choices, sample

__all__ = ["SUPERNET_BLOCKS", "TRAINING_RULES", "ElasticConvBN", "ElasticBlock", "Supernet", "SupernetTraining",
           "train_supernet", "recalibrate_batch_norm", "SubnetEvaluator", "fashion_evaluator"]

SUPERNET_BLOCKS = ("conv", "separable", "inverted_residual")
TRAINING_RULES = ("sandwich", "random")


# ----------------------------------------------------------------------------- elastic layers

class ElasticConvBN(nn.Module):
    """A convolution + batch norm (+ activation) at its largest size, run at any smaller one.

    ``depthwise``: one filter per channel (weight (C, 1, K, K)), else a full convolution
    (weight (C_out, C_in, K, K)). :meth:`forward` takes the sizes to run at; the slices are
    views, so the gradient of a subnet trains exactly the weights it used."""

    def __init__(self, in_max: int, out_max: int, kernel_max: int, depthwise: bool = False,
                 activation: str | None = "relu"):
        super().__init__()
        self.depthwise, self.activation = depthwise, activation
        shape = (out_max, 1 if depthwise else in_max, kernel_max, kernel_max)
        reference = nn.Conv2d(shape[1], out_max, kernel_max, bias=False)      # torch's default initialisation
        self.weight = nn.Parameter(reference.weight.detach().clone().reshape(shape))
        self.bn = nn.BatchNorm2d(out_max)

    def sliced_weight(self, out_channels: int, in_channels: int, kernel: int) -> torch.Tensor:
        """The subnet's weight: the first ``out_channels`` filters, the first ``in_channels``
        inputs (all of a depthwise filter's one), and the centre ``kernel`` x ``kernel``."""
        K = self.weight.shape[-1]
        start = (K - kernel) // 2                       # centre crop: 7 -> 5 keeps rows 1..5
        w = self.weight[:out_channels] if self.depthwise else self.weight[:out_channels, :in_channels]
        return w[:, :, start:start + kernel, start:start + kernel]

    def forward(self, x: torch.Tensor, out_channels: int, kernel: int, stride: int = 1) -> torch.Tensor:
        in_channels = x.shape[1]                         # (B, C_in, H, W)
        if self.depthwise:
            out_channels = in_channels
        w = self.sliced_weight(out_channels, in_channels, kernel)
        y = F.conv2d(x, w, stride=stride, padding=kernel // 2, groups=in_channels if self.depthwise else 1)
        bn = self.bn                                     # the first out_channels statistics and affine terms
        y = F.batch_norm(y, bn.running_mean[:out_channels], bn.running_var[:out_channels],
                         bn.weight[:out_channels], bn.bias[:out_channels],
                         training=self.training, momentum=bn.momentum, eps=bn.eps)
        if self.activation == "relu":
            return F.relu(y)
        return F.relu6(y) if self.activation == "relu6" else y

    @torch.no_grad()
    def export_to(self, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
        """Copy the slice of the sizes of ``conv`` into ``conv`` and ``bn`` (built by build_model)."""
        out_channels, kernel = conv.out_channels, conv.kernel_size[0]
        conv.weight.copy_(self.sliced_weight(out_channels, conv.in_channels, kernel))
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).copy_(getattr(self.bn, name)[:out_channels])
        bn.num_batches_tracked.copy_(self.bn.num_batches_tracked)


class ElasticBlock(nn.Module):
    """One block position of the supernet for one block type, at the largest sizes:

    * ``"conv"``: conv k x k -> bn -> relu;
    * ``"separable"``: depthwise k x k -> bn -> relu, pointwise 1 x 1 -> bn -> relu;
    * ``"inverted_residual"``: expand 1 x 1 to :math:`t C_{in}` -> relu6 (none when t = 1),
      depthwise k x k -> relu6, project 1 x 1 (linear), plus the input when the shape is kept.

    As in :mod:`course_lib.architectures`, so that :meth:`Supernet.extract` can copy it there."""

    def __init__(self, block: str, in_max: int, out_max: int, kernel_max: int, expansion_max: int):
        super().__init__()
        self.block = block
        if block == "conv":
            self.conv = ElasticConvBN(in_max, out_max, kernel_max)
        elif block == "separable":
            self.depthwise = ElasticConvBN(in_max, in_max, kernel_max, depthwise=True)
            self.pointwise = ElasticConvBN(in_max, out_max, 1)
        else:
            hidden = in_max * expansion_max
            self.expand = ElasticConvBN(in_max, hidden, 1, activation="relu6")
            self.depthwise = ElasticConvBN(hidden, hidden, kernel_max, depthwise=True, activation="relu6")
            self.project = ElasticConvBN(hidden, out_max, 1, activation=None)

    def forward(self, x: torch.Tensor, out_channels: int, kernel: int, stride: int, expansion: int) -> torch.Tensor:
        if self.block == "conv":
            return self.conv(x, out_channels, kernel, stride)
        if self.block == "separable":
            return self.pointwise(self.depthwise(x, 0, kernel, stride), out_channels, 1)
        in_channels = x.shape[1]
        h = self.expand(x, expansion * in_channels, 1) if expansion > 1 else x
        y = self.project(self.depthwise(h, 0, kernel, stride), out_channels, 1)
        return x + y if stride == 1 and in_channels == out_channels else y

    def export_to(self, target: nn.Module) -> None:
        """Copy this block's slices into ``target``, the block build_model made for the subnet."""
        if self.block == "conv":
            self.conv.export_to(target.conv, target.bn)
        elif self.block == "separable":
            self.depthwise.export_to(target.depthwise.conv, target.depthwise.bn)
            self.pointwise.export_to(target.pointwise.conv, target.pointwise.bn)
        else:
            layers = target.layers
            if "expand" in layers._modules:
                self.expand.export_to(layers.expand.conv, layers.expand.bn)
            self.depthwise.export_to(layers.depthwise.conv, layers.depthwise.bn)
            self.project.export_to(layers.project.conv, layers.project.bn)


# ----------------------------------------------------------------------------- the supernet

class Supernet(nn.Module):
    """Every network of ``space`` in one set of weights (see the module docstring).

    ``supernet(x, architecture)`` runs the subnet ``architecture`` on a batch ``x``
    (B, C, H, W) -> (B, classes); :meth:`extract` gives it as a standalone model. The weights are
    drawn from a generator seeded with ``seed`` (the global one is left alone).

    Raises (on construction):
        TypeError: ``space`` not a SearchSpace. ValueError: a block type the supernet cannot
            share weights for (only :data:`SUPERNET_BLOCKS`); ``seed`` out of range.
    """

    def __init__(self, space: SearchSpace, seed: int = 0):
        super().__init__()
        check_type(space, "space", SearchSpace, "a SearchSpace")
        check_int(seed, "seed", *SEED_RANGE)
        unsupported = [b for b in space.blocks if b not in SUPERNET_BLOCKS]
        if unsupported:
            raise ValueError(f"space.blocks must be among {SUPERNET_BLOCKS} for a supernet (weights are shared "
                             f"by channel prefix), got {unsupported}")
        self.space = space
        W, K, T, D = max(space.widths), max(space.kernels), max(space.expansions), max(space.depths)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.stem = ElasticConvBN(space.input_shape[0], space.stem_width, 3)
            self.stages = nn.ModuleList()
            for i in range(space.n_stages):
                positions = nn.ModuleList()
                for j in range(D):
                    in_max = space.stem_width if (i == 0 and j == 0) else W
                    positions.append(nn.ModuleDict({b: ElasticBlock(b, in_max, W, K, T) for b in space.blocks}))
                self.stages.append(positions)
            self.fc = nn.Linear(W, space.num_classes)

    def forward(self, x: torch.Tensor, architecture: Architecture) -> torch.Tensor:
        a = architecture
        if a.resolution != tuple(x.shape[-2:]):               # as build_model's nn.Upsample
            x = F.interpolate(x, size=a.resolution, mode="bilinear", align_corners=False)
        x = self.stem(x, self.space.stem_width, 3)            # (B, stem, H, W)
        for i, stage in enumerate(a.stages):
            for j in range(stage.depth):                      # elastic depth: the first d blocks
                x = self.stages[i][j][stage.block](x, stage.width, stage.kernel,
                                                   stage.stride if j == 0 else 1, stage.expansion)
        x = x.mean(dim=(2, 3))                                # global average pooling: (B, w)
        return F.linear(x, self.fc.weight[:, :x.shape[1]], self.fc.bias)

    def extract(self, architecture: Architecture) -> nn.Sequential:
        """The subnet ``architecture`` as the standalone network :func:`build_model` makes for
        it, with the supernet's weights and batch-norm statistics copied in (no storage shared:
        training it leaves the supernet unchanged). In eval mode.

        Raises:
            TypeError / OutOfSpaceError: ``architecture`` is not a network of the supernet's space.
        """
        check_in_space(architecture, self.space)
        model = build_model(architecture)
        self.stem.export_to(model.stem.conv, model.stem.bn)
        for i, stage in enumerate(architecture.stages):
            for j in range(stage.depth):
                self.stages[i][j][stage.block].export_to(getattr(model, f"stage{i + 1}")[j])
        with torch.no_grad():
            model.fc.weight.copy_(self.fc.weight[:, :model.fc.in_features])
            model.fc.bias.copy_(self.fc.bias)
        return model.eval()

    def largest(self, rng: random.Random) -> Architecture:
        """The largest subnet (every width, kernel, depth, expansion and the resolution at their
        maximum); its block types drawn from ``rng`` when the space has several."""
        return self._extreme(rng, max)

    def smallest(self, rng: random.Random) -> Architecture:
        """The smallest subnet, as :meth:`largest` with every size at its minimum."""
        return self._extreme(rng, min)

    def _extreme(self, rng, pick) -> Architecture:
        choices = {name: (choose(rng, values) if name.endswith(".block") else pick(values))
                   for name, values in decisions(self.space).items()}
        return from_choices(choices, self.space)


# ----------------------------------------------------------------------------- training

@dataclass
class SupernetTraining:
    """What :func:`train_supernet` returns: the supernet and one record per epoch (mean loss of
    the largest subnet and over all subnets run, seconds)."""
    supernet: Supernet
    history: list[dict]
    seconds: float


def train_supernet(space: SearchSpace, train: ImageSplit, epochs: int, *, seed: int = 0,
                   rule: str = "sandwich", n_random: int = 2, batch_size: int = 128, lr: float = 2e-3,
                   threads: int | None = 1, progress: bool = True) -> SupernetTraining:
    """Train a new :class:`Supernet` of ``space`` for ``epochs`` passes over ``train``.

    Per batch, with Adam and a cosine learning-rate decay per step
    (:math:`\\eta_t = \\eta_0 \\tfrac12 (1 + \\cos(\\pi t / T))`), the cross-entropy gradients of
    the subnets chosen by ``rule`` are summed and one step taken:

    * ``"sandwich"``: the largest subnet, the smallest, and ``n_random`` random ones
      (Yu & Huang 2019, Sec. 3.2);
    * ``"random"``: one random subnet (single-path one-shot).

    Seeded: weights, batch order and subnet choices all follow ``seed``. ``threads``: torch
    threads during training (1, the course's setting for a reproducible single-core budget;
    None: torch's current count), restored afterwards.

    Raises (before anything is trained):
        TypeError / ValueError: a bad ``space`` (as :class:`Supernet`), ``train`` not a non-empty
            ImageSplit, ``epochs`` not an int >= 0, an unknown ``rule``, ``n_random`` not an int
            >= 0, ``batch_size`` not an int >= 1, ``lr`` not a finite number > 0, ``seed`` out of
            range, ``threads`` not an int >= 1 or None, ``progress`` not a bool.
    """
    check_split(train, "train")
    check_int(epochs, "epochs", 0)
    check_choice(rule, "rule", TRAINING_RULES)
    check_int(n_random, "n_random", 0)
    check_int(batch_size, "batch_size", 1)
    check_real(lr, "lr", 0, math.inf, low_open=True, high_open=True)
    check_int(threads, "threads", 1, allow_none=True)
    check_type(progress, "progress", bool, "True or False")
    supernet = Supernet(space, seed)                          # checks space and seed
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(supernet.parameters(), lr=lr)
    total_steps = max(1, epochs * math.ceil(len(train) / batch_size))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 0.5 * (1 + math.cos(math.pi * t / total_steps)))
    history = []
    start = time.perf_counter()
    with torch_threads(threads):
        supernet.train()
        for epoch in tqdm(range(epochs), desc="supernet", unit="epoch", disable=not progress):
            t0, largest_loss, all_loss, n_batches, n_runs = time.perf_counter(), 0.0, 0.0, 0, 0
            for x, y in batches(train, batch_size, shuffle=True, generator=generator):
                if rule == "sandwich":
                    subnets = [supernet.largest(rng), supernet.smallest(rng)]
                    subnets += [sample(space, rng) for _ in range(n_random)]
                else:
                    subnets = [sample(space, rng)]
                optimizer.zero_grad(set_to_none=True)
                for k, subnet in enumerate(subnets):
                    loss = F.cross_entropy(supernet(x, subnet), y)
                    loss.backward()                            # gradients of all subnets add up
                    all_loss += loss.item()
                    largest_loss += loss.item() if k == 0 else 0.0
                optimizer.step()
                schedule.step()
                n_batches += 1
                n_runs += len(subnets)
            history.append({"epoch": epoch + 1, "first_subnet_loss": largest_loss / max(n_batches, 1),
                            "mean_loss": all_loss / max(n_runs, 1), "seconds": time.perf_counter() - t0})
    supernet.eval()
    return SupernetTraining(supernet, history, time.perf_counter() - start)


# ----------------------------------------------------------------------------- evaluating a subnet

@torch.no_grad()
def _recalibrate_(model: nn.Module, images: torch.Tensor, batch_size: int) -> None:
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None                    # a cumulative average over the batches, not an EMA
    model.train()
    try:
        for start in range(0, len(images), batch_size):
            model(images[start:start + batch_size])
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
        model.eval()


def recalibrate_batch_norm(model: nn.Module, calibration: ImageSplit, batch_size: int = 256) -> nn.Module:
    """A copy of ``model`` whose batch norms' running means and variances are re-estimated on
    ``calibration`` (training images, never the test set): statistics reset, then the exact
    average over the batches (``momentum=None``) of the batch means and variances, in train
    mode under ``torch.no_grad``. Returned in eval mode; ``model`` is unchanged.

    Raises:
        TypeError / ValueError: ``model`` not an nn.Module, ``calibration`` not a non-empty
            ImageSplit, ``batch_size`` not an int >= 2 (a batch norm needs two values per channel).
    """
    check_model(model)
    check_split(calibration, "calibration")
    check_int(batch_size, "batch_size", 2)
    model = copy.deepcopy(model)
    _recalibrate_(model, calibration.images, batch_size)
    return model


@dataclass
class SubnetEvaluator:
    """The objective of a supernet-based search: ``evaluator(architecture)`` is the validation
    accuracy of the subnet, after :meth:`Supernet.extract` and batch-norm re-estimation on
    ``calibration``, on the fixed ``validation`` subset. Deterministic: the same subnet always
    gets the same accuracy. Picklable (parallel workers can use it).

    Build one on Fashion-MNIST with :func:`fashion_evaluator`."""
    supernet: Supernet
    calibration: ImageSplit
    validation: ImageSplit
    batch_size: int = 256

    def __post_init__(self) -> None:
        check_type(self.supernet, "supernet", Supernet, "a Supernet")
        check_split(self.calibration, "calibration")
        check_split(self.validation, "validation")
        check_int(self.batch_size, "batch_size", 2)

    def subnet(self, architecture: Architecture) -> nn.Module:
        """The standalone subnet, its batch-norm statistics re-estimated, in eval mode."""
        model = self.supernet.extract(architecture)
        _recalibrate_(model, self.calibration.images, self.batch_size)
        return model

    def __call__(self, architecture: Architecture) -> float:
        with torch_threads(1):
            return evaluate(self.subnet(architecture), self.validation, self.batch_size).accuracy


def fashion_evaluator(supernet: Supernet, n_calibration: int = 512, n_validation: int = 1000,
                      seed: int = 0) -> SubnetEvaluator:
    """A :class:`SubnetEvaluator` on Fashion-MNIST: ``n_calibration`` training images and
    ``n_validation`` validation images (``data.load("fashion-mnist", "validation")``), each drawn
    once with ``seed`` (:meth:`~course_lib.data.ImageSplit.sample`). The test split is never used
    by a search.

    Raises:
        TypeError / ValueError: ``supernet`` not a Supernet; ``n_calibration`` not an int in
            [2, 55000]; ``n_validation`` not an int in [1, 5000]; ``seed`` out of range.
    """
    check_type(supernet, "supernet", Supernet, "a Supernet")
    check_int(n_calibration, "n_calibration", 2, 55000)
    check_int(n_validation, "n_validation", 1, 5000)
    check_int(seed, "seed", *SEED_RANGE)
    calibration = data.load("fashion-mnist", "train").sample(n_calibration, seed)
    validation = data.load("fashion-mnist", "validation").sample(n_validation, seed)
    return SubnetEvaluator(supernet, calibration, validation)
