"""A space designed around the device, and candidates judged by short stand-alone training.

Notebook 07's search (on the supernet, in :class:`~course_lib.nas.space.SearchSpace`'s
default space) loses to notebook 05's hand design (notebook 08, section 2), for two reasons
notebooks 07 and 08 measure: the supernet does not order networks that lie within a point of each other, and the space holds
mostly networks far smaller than the budget allows. This module holds the two remedies the
papers use.

**Design the space around the device** (MCUNet's TinyNAS, Lin et al. 2020, "MCUNet: Tiny Deep
Learning on IoT Devices", Sec. 3.1 and Fig. 3): among candidate spaces, prefer the one whose
networks *that fit the device* can compute the most, since within a memory budget more MACs tend
to buy accuracy. :func:`fitting_macs` samples a space and returns the MACs of the networks that
meet the constraints, and the share of samples that do; :data:`TIGHT_SPACE` is the space this
course's tight budget (64 KB of flash, 32 KB of SRAM) gets by that rule: widths up to 64 channels,
a 16-channel stem, and the last stage at stride 1 (7 x 7 maps from a 28 x 28 input, as
MobileNetV2's last stages).

**Judge each candidate by its own training, briefly** (Elsken, Metzen & Hutter 2019, "Neural
Architecture Search: A Survey", Sec. 4, lower-fidelity estimates: "training for fewer epochs").
:class:`ShortTraining` trains a candidate from scratch for ``epochs`` (Adam, cosine schedule) and
returns its accuracy on the validation split: about a minute a network on one CPU thread, against
a tenth of a second on a supernet, but each network is scored by weights of its own. A short run
only ranks: the winner is then trained in full, with the same recipe as the networks it is
compared with (the zoo's ``nas_tight_wide_fashion``).

Taught in ``notebooks/08_nas_for_a_device.ipynb``, Sec. 2.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from .. import train
from ..architectures import Architecture, build_model
from ..checks import check_int, check_real, check_type
from ..data import SEED_RANGE, ImageSplit, check_split
from .costs import Constraints, candidate_costs, violated_limits
from .space import SearchSpace, sample

__all__ = ["TIGHT_SPACE", "fitting_macs", "ShortTraining"]

# The tight budget's space by MCUNet's rule (notebook 08, Sec. 2): the networks of the default
# space that fit 64 KB / 32 KB average under a million MACs; these average about two million,
# near MobileNetV2-style x1.0's 2.2 million.
TIGHT_SPACE = SearchSpace(widths=(16, 24, 32, 48, 64), strides=(2, 2, 1), stem_width=16)


def fitting_macs(space: SearchSpace, constraints: Constraints, n_samples: int = 200,
                 seed: int = 0) -> tuple[list[int], float]:
    """Sample ``n_samples`` networks of ``space`` (uniformly, :func:`~course_lib.nas.space.sample`
    with ``random.Random(seed)``) and return the MACs of those that meet ``constraints``, in
    sampling order, and the share of the samples that do (TinyNAS's statistic, MCUNet Fig. 3:
    compare spaces by the distribution of the fitting networks' MACs).

    Raises:
        TypeError: ``space`` not a SearchSpace, ``constraints`` not Constraints.
        ValueError: ``n_samples`` not an int >= 1, ``seed`` outside the seed range.
    """
    check_type(space, "space", SearchSpace, "a SearchSpace")
    check_type(constraints, "constraints", Constraints, "Constraints (from nas.device_constraints)")
    check_int(n_samples, "n_samples", 1)
    check_int(seed, "seed", *SEED_RANGE)
    rng = random.Random(seed)
    macs = []
    for _ in range(n_samples):
        costs = candidate_costs(sample(space, rng), constraints.device)
        if not violated_limits(costs, constraints):
            macs.append(costs.macs)
    return macs, len(macs) / n_samples


@dataclass(frozen=True)
class ShortTraining:
    """An objective for any search of :mod:`~course_lib.nas.strategies`: the validation accuracy
    of a candidate built by :func:`~course_lib.architectures.build_model` (``seed``) and trained
    from scratch on ``train_split`` for ``epochs`` by :func:`course_lib.train.fit` (Adam at
    ``lr``, cosine schedule, batches of 128, no augmentation, seeded). Picklable; the caller's
    random state is left as it was.

    Raises (on construction):
        TypeError / ValueError: splits that are not non-empty ImageSplits, ``epochs`` not an int
            >= 1, ``lr`` not a finite number > 0, ``seed`` outside the seed range.
    """
    train_split: ImageSplit
    validation: ImageSplit
    epochs: int = 1
    lr: float = 3e-3
    seed: int = 0

    def __post_init__(self) -> None:
        check_split(self.train_split, "train_split")
        check_split(self.validation, "validation")
        check_int(self.epochs, "epochs", 1)
        check_real(self.lr, "lr", 0, float("inf"), low_open=True, high_open=True)
        check_int(self.seed, "seed", *SEED_RANGE)

    def __call__(self, architecture: Architecture) -> float:
        check_type(architecture, "architecture", Architecture, "an Architecture")
        with torch.random.fork_rng(devices=[]):
            model = build_model(architecture, seed=self.seed)
            train.fit(model, self.train_split, train.TrainingSettings(epochs=self.epochs, lr=self.lr, seed=self.seed),
                      device="cpu", progress=False)
        return train.evaluate(model, self.validation).accuracy
