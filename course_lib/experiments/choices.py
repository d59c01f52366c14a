"""What the panels offer: the zoo models each panel can run and, for the pruning panel, the methods
a model allows, derived from what each model is (never a hand list), with the course's message
for a choice that cannot work.

A zoo model is offered when it classifies images by itself: it was trained on an image dataset and its
``forward`` takes the images and nothing else (notebook 09's language model reads text; it has its own panel). A weight-sharing supernet (notebook 07) is not one network but many, and its
``forward`` also needs the architecture to run; the networks found in it are in the zoo on their
own (``nas_tight_fashion``, ...). Channel pruning (notebook 01) needs a plain stack of layers
(:func:`course_lib.pruning.channel_prunable`).
"""

from __future__ import annotations

import functools
import inspect

from torch import nn

from .. import zoo
from ..data import DATASET_NAMES
from ..checks import check_choice
from ..pruning import SCOPES, channel_prunable

__all__ = ["takes_images", "panel_models", "check_panel_model", "pruning_methods"]


def _required_arguments(model: nn.Module) -> list[str]:
    """The arguments ``model.forward`` cannot do without."""
    return [p.name for p in inspect.signature(model.forward).parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def takes_images(model: nn.Module) -> bool:
    """Whether ``model(images)`` is a whole forward pass: ``forward`` needs the images and nothing else."""
    return len(_required_arguments(model)) == 1


@functools.cache
def _untrained(name: str) -> nn.Module:
    """The zoo model's architecture, freshly initialised (what it *is*; no file read)."""
    return zoo.build_architecture(zoo.RECIPES[name].architecture)


@functools.cache
def panel_models() -> tuple[str, ...]:
    """The zoo models a panel can run, in the zoo's order: those that classify images by themselves."""
    return tuple(name for name in zoo.names()
                 if zoo.RECIPES[name].dataset in DATASET_NAMES and takes_images(_untrained(name)))


def check_panel_model(name: str, argument: str = "model_name") -> None:
    """Raises ValueError, naming ``argument``, when ``name`` is not a zoo model or not one a panel
    can run, with what it is and what to choose instead."""
    check_choice(name, argument, zoo.names())
    if name in panel_models():
        return
    if zoo.RECIPES[name].dataset not in DATASET_NAMES:
        raise ValueError(f"{argument} {name!r} is a language model, not an image classifier: notebook 09's panel runs it "
                         f"(widgets.language_model_panel). Choose one of {list(panel_models())}.")
    extra = _required_arguments(_untrained(name))[1:]
    why = (" A supernet holds many networks at once; the ones found in it are in the zoo on their own "
           "(nas_tight_fashion, nas_tight_wide_fashion)." if isinstance(zoo.RECIPES[name], zoo.SupernetRecipe) else "")
    raise ValueError(f"{argument} {name!r} cannot classify images by itself: its forward also needs "
                     f"{', '.join(repr(e) for e in extra)}.{why} Choose one of {list(panel_models())}.")


def pruning_methods(name: str) -> tuple[str, ...]:
    """The pruning panel's methods for the zoo model ``name``: magnitude pruning in either scope
    always, channel pruning only for a plain stack of layers."""
    check_panel_model(name)
    return (*SCOPES, "channel") if channel_prunable(_untrained(name)) else SCOPES
