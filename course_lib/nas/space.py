"""The search space: small CNNs described as data, and the moves a search makes in it.

A candidate is an :class:`~course_lib.architectures.Architecture` (notebook 05's description,
built by :func:`~course_lib.architectures.build_model`), restricted by a :class:`SearchSpace`:
a fixed skeleton (stem, number of stages, their strides, global-average-pooling head) and, for
each stage, a few *decisions*, each a choice among a handful of values:

* ``stage<i>.block``: the block type (``"conv"``, ``"separable"``, ``"inverted_residual"``, ...);
* ``stage<i>.width``, ``stage<i>.kernel``, ``stage<i>.depth``;
* ``stage<i>.expansion``: the expansion ratio :math:`t`, which only an inverted residual uses
  (for other blocks the value is inert: :func:`from_choices` builds them with ``expansion=1``);
* ``resolution``: the input side in pixels (the image is resized to it, MobileNet's :math:`\\rho`).

A point of the space is therefore a flat dict ``{decision: value}`` (:func:`to_choices`,
:func:`from_choices`): the form random search, REINFORCE and Optuna work in. The moves:

* :func:`sample`: every decision uniformly at random (random search's proposal).
* :func:`mutate`: one *active* decision (one that changes the network) set to another of its
  values: the mutation of regularised evolution (Real et al. 2019, "Regularized Evolution for
  Image Classifier Architecture Search", Sec. 2, which mutates one operation or one input).
* :func:`crossover`: each decision taken from one parent or the other (uniform crossover).

Randomness always comes in as an argument: a ``random.Random`` or a ``numpy.random.Generator``;
the global generators are never used. Descriptions are frozen, so no move modifies its input.

Taught in ``notebooks/07_automl_search.ipynb``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from ..architectures import BLOCK_TYPES, Architecture, Stage
from ..checks import check_type, describe, is_int
from ..models import IMAGE_SHAPE, NUM_CLASSES

__all__ = ["Rng", "STAGE_DECISIONS", "SPACE_BLOCKS", "OutOfSpaceError", "SearchSpace", "decisions", "space_size",
           "from_choices", "to_choices", "active_decisions", "check_in_space", "check_rng", "choose", "sample",
           "mutate", "crossover", "describe_architecture"]

Rng = random.Random | np.random.Generator
STAGE_DECISIONS = ("block", "width", "kernel", "depth", "expansion")
SPACE_BLOCKS = ("conv", "separable", "inverted_residual", "residual")   # blocks a space may hold


class OutOfSpaceError(ValueError):
    """A description (an Architecture or a dict of choices) that the search space cannot produce;
    the message names the field and the values the space allows."""


# ----------------------------------------------------------------------------- the space

def _check_options(values, name: str, low: int, high: int | None = None, odd: bool = False) -> tuple:
    check_type(values, name, (tuple, list), "a non-empty tuple of ints")
    if not values:
        raise ValueError(f"{name} must hold at least one value, got none")
    for v in values:
        if not is_int(v) or v < low or (high is not None and v > high) or (odd and v % 2 == 0):
            allowed = f"ints >= {low}" if high is None else f"ints in [{low}, {high}]"
            raise ValueError(f"{name} must hold {'odd ' if odd else ''}{allowed}, got {describe(v)} in {values!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} must not repeat a value, got {values!r}")
    return tuple(sorted(values))


@dataclass(frozen=True)
class SearchSpace:
    """What a search may choose, as data. The skeleton is fixed: a 3 x 3 conv-bn-relu stem of
    ``stem_width`` channels at stride 1, one stage per entry of ``strides`` (its first block at
    that stride), global average pooling and a linear classifier; widths are used exactly as
    given (``width_divisor=1``). Each stage chooses its block, width, kernel, depth and (for an
    inverted residual) expansion among the values here; the network chooses its input
    ``resolution``. The option tuples are stored sorted.

    The size of the space is :func:`space_size`; the default one (three stages) holds 786,432
    networks, from about 2 KB to 100 KB of int8 weights.

    Raises (on construction):
        ValueError: an empty or repeated option, a block outside :data:`SPACE_BLOCKS`, an even
            kernel, a resolution outside [1, 28], or strides that shrink the smallest
            resolution below 1 x 1. TypeError: a field of the wrong type.
    """
    blocks: tuple[str, ...] = ("conv", "separable", "inverted_residual")
    widths: tuple[int, ...] = (8, 16, 24, 32)
    kernels: tuple[int, ...] = (3, 5)
    depths: tuple[int, ...] = (1, 2)
    expansions: tuple[int, ...] = (2, 4)
    resolutions: tuple[int, ...] = (20, 24, 28)
    strides: tuple[int, ...] = (2, 2, 2)
    stem_width: int = 8
    input_shape: tuple[int, int, int] = IMAGE_SHAPE
    num_classes: int = NUM_CLASSES

    def __post_init__(self) -> None:
        check_type(self.blocks, "blocks", (tuple, list), "a non-empty tuple of block names")
        if not self.blocks or len(set(self.blocks)) != len(self.blocks):
            raise ValueError(f"blocks must hold at least one block type, none repeated, got {self.blocks!r}")
        for b in self.blocks:
            if b not in SPACE_BLOCKS:
                raise ValueError(f"blocks must be among {SPACE_BLOCKS}, got {b!r}")
        object.__setattr__(self, "blocks", tuple(b for b in BLOCK_TYPES if b in self.blocks))
        side = min(self.input_shape[1:]) if isinstance(self.input_shape, (tuple, list)) else 0
        for name, low, high, odd in (("widths", 1, None, False), ("kernels", 1, None, True),
                                     ("depths", 1, None, False), ("expansions", 1, None, False),
                                     ("resolutions", 1, side or None, False)):
            object.__setattr__(self, name, _check_options(getattr(self, name), name, low, high, odd))
        check_type(self.strides, "strides", (tuple, list), "a non-empty tuple of ints (one per stage)")
        if not self.strides or not all(is_int(s) and s >= 1 for s in self.strides):
            raise ValueError(f"strides must be a non-empty tuple of ints >= 1 (one per stage), got {self.strides!r}")
        object.__setattr__(self, "strides", tuple(self.strides))
        if not is_int(self.stem_width) or self.stem_width < 1:
            raise ValueError(f"stem_width must be an int >= 1, got {describe(self.stem_width)}")
        smallest = min(self.resolutions)
        if smallest < math.prod(self.strides):
            raise ValueError(f"strides {self.strides} shrink the smallest resolution {smallest} below 1x1: "
                             f"every resolution must be >= {math.prod(self.strides)}")
        Architecture(tuple(Stage("conv", 1, stride=s) for s in self.strides), stem_width=self.stem_width,
                     input_shape=self.input_shape, num_classes=self.num_classes, width_divisor=1)

    @property
    def n_stages(self) -> int:
        return len(self.strides)


def decisions(space: SearchSpace) -> dict[str, tuple]:
    """Every decision of ``space`` and its options, in a fixed order: ``resolution``, then
    ``stage1.block``, ``stage1.width``, ``stage1.kernel``, ``stage1.depth``,
    ``stage1.expansion``, ``stage2.block``, ... The flat form of a point of the space.

    Raises:
        TypeError: ``space`` is not a :class:`SearchSpace`.
    """
    _check_space(space)
    options = {"resolution": space.resolutions}
    for i in range(1, space.n_stages + 1):
        for d in STAGE_DECISIONS:
            options[f"stage{i}.{d}"] = getattr(space, d + "s")
    return options


def space_size(space: SearchSpace) -> int:
    """How many distinct networks ``space`` holds: :math:`|R| \\prod_{\\text{stages}}
    |W||K||D| \\sum_{b} (|T| \\text{ if } b \\text{ is an inverted residual else } 1)` (the
    expansion only counts where it changes the network)."""
    _check_space(space)
    per_block = sum(len(space.expansions) if b == "inverted_residual" else 1 for b in space.blocks)
    per_stage = len(space.widths) * len(space.kernels) * len(space.depths) * per_block
    return len(space.resolutions) * per_stage ** space.n_stages


def _check_space(space) -> None:
    check_type(space, "space", SearchSpace, "a SearchSpace")


# ----------------------------------------------------------------------------- descriptions <-> choices

def from_choices(choices: dict, space: SearchSpace) -> Architecture:
    """The network a dict of choices describes (keys and options as :func:`decisions`), a
    new :class:`Architecture`; a non-inverted-residual stage is built with ``expansion=1``.

    Raises:
        TypeError: ``choices`` not a dict. OutOfSpaceError: a decision missing or unknown, or a
            value that is not one of its options (the message names both).
    """
    check_in_space(choices, space)
    stages = []
    for i, stride in enumerate(space.strides, start=1):
        block = choices[f"stage{i}.block"]
        stages.append(Stage(block, choices[f"stage{i}.width"], depth=choices[f"stage{i}.depth"], stride=stride,
                            kernel=choices[f"stage{i}.kernel"],
                            expansion=choices[f"stage{i}.expansion"] if block == "inverted_residual" else 1))
    rho = choices["resolution"] / space.input_shape[1]
    return Architecture(tuple(stages), stem_width=space.stem_width, resolution_multiplier=rho,
                        input_shape=space.input_shape, num_classes=space.num_classes, width_divisor=1)


def to_choices(architecture: Architecture, space: SearchSpace) -> dict:
    """The dict of choices of an architecture of ``space`` (the inverse of :func:`from_choices`);
    the inert expansion of a stage that is not an inverted residual is given the smallest option.

    Raises:
        TypeError / OutOfSpaceError: as :func:`check_in_space`.
    """
    check_in_space(architecture, space)
    choices = {"resolution": architecture.resolution[0]}
    for i, s in enumerate(architecture.stages, start=1):
        choices.update({f"stage{i}.block": s.block, f"stage{i}.width": s.width, f"stage{i}.kernel": s.kernel,
                        f"stage{i}.depth": s.depth,
                        f"stage{i}.expansion": s.expansion if s.block == "inverted_residual" else space.expansions[0]})
    return choices


def active_decisions(choices: dict, space: SearchSpace) -> list[str]:
    """The decisions of ``choices`` whose change changes the network: all of them with at least
    two options, except the expansion of a stage that is not an inverted residual.

    Raises:
        TypeError / OutOfSpaceError: as :func:`check_in_space`.
    """
    check_in_space(choices, space)
    return [name for name, options in decisions(space).items()
            if len(options) > 1 and not (name.endswith(".expansion")
                                         and choices[name.replace("expansion", "block")] != "inverted_residual")]


def check_in_space(description, space: SearchSpace) -> None:
    """``description`` (an :class:`Architecture` or a dict of choices) is a point of ``space``.

    Raises:
        TypeError: ``space`` not a SearchSpace; ``description`` neither an Architecture nor a dict.
        OutOfSpaceError: the first field outside the space, named with the allowed values:
            ``"stages[1].width = 40 is not in the space's widths (8, 16, 24, 32)"``.
    """
    _check_space(space)
    check_type(description, "description", (Architecture, dict), "an Architecture or a dict of choices")
    if isinstance(description, dict):
        expected = decisions(space)
        missing = [k for k in expected if k not in description]
        unknown = [k for k in description if k not in expected]
        if missing or unknown:
            raise OutOfSpaceError(f"choices must have exactly the decisions {list(expected)}; "
                                  f"missing {missing}, unknown {unknown}")
        for name, options in expected.items():
            value = description[name]
            if isinstance(value, bool) or value not in options:
                raise OutOfSpaceError(f"choices[{name!r}] = {value!r} is not one of its options {options}")
        return
    a = description
    fixed = {"stem_width": space.stem_width, "stem_stride": 1, "head": "avgpool", "width_multiplier": 1.0,
             "input_shape": tuple(space.input_shape), "num_classes": space.num_classes, "width_divisor": 1}
    for name, value in fixed.items():
        if getattr(a, name) != value:
            raise OutOfSpaceError(f"architecture.{name} = {getattr(a, name)!r}; the space fixes it to {value!r}")
    if a.resolution[0] not in space.resolutions or a.resolution[0] != a.resolution[1]:
        raise OutOfSpaceError(f"architecture.resolution = {a.resolution} is not one of the space's square "
                              f"resolutions {space.resolutions}")
    if len(a.stages) != space.n_stages:
        raise OutOfSpaceError(f"architecture has {len(a.stages)} stages; the space has {space.n_stages}")
    for i, (s, stride) in enumerate(zip(a.stages, space.strides)):
        for field, allowed in (("block", space.blocks), ("width", space.widths), ("kernel", space.kernels),
                               ("depth", space.depths)):
            if getattr(s, field) not in allowed:
                raise OutOfSpaceError(f"stages[{i}].{field} = {getattr(s, field)!r} is not in the space's "
                                      f"{field}s {allowed}")
        expansions = space.expansions if s.block == "inverted_residual" else (1,)
        checks = (("stride", stride), ("groups", 1), ("se", False))
        if s.expansion not in expansions:
            raise OutOfSpaceError(f"stages[{i}].expansion = {s.expansion} is not in {expansions} (allowed for a "
                                  f"{s.block!r} block)")
        for field, value in checks:
            if getattr(s, field) != value:
                raise OutOfSpaceError(f"stages[{i}].{field} = {getattr(s, field)!r}; the space fixes it to {value!r}")


# ----------------------------------------------------------------------------- moves

def check_rng(rng, name: str = "rng") -> None:
    """``rng`` is a ``random.Random`` or a ``numpy.random.Generator`` (the global generators,
    ``random`` the module or ``np.random``, are refused: a search must be repeatable alone).

    Raises:
        TypeError: anything else (a seed, None, the ``random`` module).
    """
    if not isinstance(rng, (random.Random, np.random.Generator)):
        raise TypeError(f"{name} must be a random.Random or a numpy.random.Generator (e.g. random.Random(0)), "
                        f"got {describe(rng) if not hasattr(rng, '__name__') else rng.__name__}")


def choose(rng: Rng, options):
    """One of ``options`` (a non-empty sequence) uniformly at random, drawn from ``rng``."""
    if isinstance(rng, random.Random):
        return options[rng.randrange(len(options))]
    return options[int(rng.integers(len(options)))]


def sample(space: SearchSpace, rng: Rng) -> Architecture:
    """A network of ``space`` with every decision drawn uniformly from ``rng`` (in the order of
    :func:`decisions`, so one seed gives one network).

    Raises:
        TypeError: ``space`` not a SearchSpace, ``rng`` not a random.Random / numpy Generator.
    """
    _check_space(space)
    check_rng(rng)
    return from_choices({name: choose(rng, options) for name, options in decisions(space).items()}, space)


def mutate(architecture: Architecture, space: SearchSpace, rng: Rng) -> Architecture:
    """A new network one decision away from ``architecture``: one of its
    :func:`active_decisions`, chosen uniformly, set to one of its *other* options, chosen
    uniformly. The result is always in the space and always differs from the input (which, being
    frozen, is untouched). Regularised evolution's mutation (Real et al. 2019, Sec. 2).

    Raises:
        TypeError / OutOfSpaceError: as :func:`check_in_space`; ``rng`` of the wrong type.
        ValueError: a space with a single network (nothing to change).
    """
    check_rng(rng)
    choices = to_choices(architecture, space)
    active = active_decisions(choices, space)
    if not active:
        raise ValueError("the space holds a single network: every decision has one option, nothing to mutate")
    name = choose(rng, active)
    others = [v for v in decisions(space)[name] if v != choices[name]]
    return from_choices({**choices, name: choose(rng, others)}, space)


def crossover(a: Architecture, b: Architecture, space: SearchSpace, rng: Rng) -> Architecture:
    """A child of ``a`` and ``b``: each decision copied from one parent or the other with
    probability 1/2 (uniform crossover, the genetic-algorithm NAS of Xie & Yuille 2017 and
    NSGA-II's default for categorical genes). Always in the space.

    Raises:
        TypeError / OutOfSpaceError: as :func:`check_in_space`; ``rng`` of the wrong type.
    """
    check_rng(rng)
    ca, cb = to_choices(a, space), to_choices(b, space)
    return from_choices({name: choose(rng, (ca[name], cb[name])) for name in ca}, space)


def describe_architecture(architecture: Architecture) -> str:
    """One line for tables: ``"r24 | ir16 k3 d1 t4 | sep24 k5 d2 | conv32 k3 d1"``."""
    check_type(architecture, "architecture", Architecture, "an Architecture")
    short = {"conv": "conv", "separable": "sep", "inverted_residual": "ir", "residual": "res", "shuffle": "shuf"}
    parts = [f"r{architecture.resolution[0]}"]
    for s in architecture.stages:
        t = f" t{s.expansion}" if s.block == "inverted_residual" else ""
        parts.append(f"{short[s.block]}{s.width} k{s.kernel} d{s.depth}{t}")
    return " | ".join(parts)

