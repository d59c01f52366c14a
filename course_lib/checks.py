"""Argument checks shared by every module: one function per kind of check.

Every public function of ``course_lib`` checks its arguments up front, so that a bad call fails
at once with a message that says how to fix it, instead of deep inside torch or, worse, not at
all (a NaN learning rate trains a model of NaNs). The convention, used everywhere:

* ``TypeError`` when an argument has the wrong type, ``ValueError`` when it has the right type
  but a wrong value.
* The message names the argument, what is allowed, and what was given:
  ``"batch_size must be an int >= 1, got 0"``, ``"lr must be a finite number > 0, got nan"``.
* ``bool`` is never an int or a number here: ``True`` passed as a count or a rate is a bug,
  even though Python lets ``True + 1 == 2``.
* Where a finite number is expected, NaN and ±inf are rejected.

:func:`describe`, :func:`is_int` and :func:`is_real` are the pieces the checks are made of; a
check that belongs to one concept lives beside it and is built on them: the bit width
(:func:`course_lib.quantization.check_bits`), the sparsity
(:func:`course_lib.pruning.check_sparsity`), a torch device and a data split
(:func:`course_lib.data.check_device`, :func:`course_lib.data.check_split`).
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path

import torch
from torch import nn

__all__ = ["describe", "is_int", "is_real", "check_type", "check_int", "check_real", "check_choice", "check_path",
           "check_model", "check_tensor", "check_finite", "check_argv"]


def describe(value) -> str:
    """What was given, for the end of a message: the type, and the value itself when it is a
    number or a str (``"float 2.5"``, ``"str 'half'"``, ``"bool True"``, ``"list"``)."""
    if isinstance(value, (numbers.Number, str)):
        return f"{type(value).__name__} {value!r}"
    return type(value).__name__


def is_int(value) -> bool:
    """True for an integer (a Python or NumPy int), False for anything else, ``bool`` included."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value) -> bool:
    """True for a real number (an int or a float, NumPy's too; NaN and inf included), False
    for anything else, ``bool`` included."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_type(value, name: str, kind: type | tuple[type, ...], expected: str,
               allow_none: bool = False) -> None:
    """``value`` is an instance of ``kind`` (or None, if ``allow_none``); ``expected`` says what
    that is in words, for the message: ``check_type(x, "shuffle", bool, "True or False")``.

    Raises:
        TypeError: ``"shuffle must be True or False, got int 1"``.
    """
    if isinstance(value, kind) or (allow_none and value is None):
        return
    raise TypeError(f"{name} must be {expected}{' or None' if allow_none else ''}, got {describe(value)}")


def check_int(value, name: str, low: int, high: int | None = None, allow_none: bool = False) -> None:
    """``value`` is an int in ``[low, high]`` (no upper bound if ``high`` is None), or None if
    ``allow_none``.

    Raises:
        TypeError: not an int (a float, even ``2.0``, or a bool): ``"n must be an int >= 1, got float 2.0"``.
        ValueError: out of range: ``"seed must be an int in [0, 4294967295], got -1"``.
    """
    if allow_none and value is None:
        return
    allowed = f"an int >= {low}" if high is None else f"an int in [{low}, {high}]"
    if allow_none:
        allowed += " or None"
    if not is_int(value):
        raise TypeError(f"{name} must be {allowed}, got {describe(value)}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {allowed}, got {value}")


def check_real(value, name: str, low: float | None = None, high: float | None = None, *,
               low_open: bool = False, high_open: bool = False) -> None:
    """``value`` is a finite real number (an int or a float) between ``low`` and ``high``: both
    bounds included, unless ``low_open`` / ``high_open``; None means no bound on that side.
    ``check_real(momentum, "momentum", 0, 1, high_open=True)`` accepts ``[0, 1)``; a bound of
    ``math.inf`` is written as such (``"in (0, inf)"``), None as ``"> 0"``.

    Raises:
        TypeError: not a real number (a str, None, a bool, a tensor).
        ValueError: NaN, ±inf, or out of range: ``"efficiency must be a finite number in (0, 1], got 1.5"``.
    """
    if low is not None and high is not None:
        allowed = f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    elif low is not None:
        allowed = f" {'>' if low_open else '>='} {low}"
    elif high is not None:
        allowed = f" {'<' if high_open else '<='} {high}"
    else:
        allowed = ""
    if not is_real(value):
        raise TypeError(f"{name} must be a finite number{allowed}, got {describe(value)}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or too_low or too_high:
        raise ValueError(f"{name} must be a finite number{allowed}, got {value}")


def check_choice(value, name: str, allowed) -> None:
    """``value`` is a str among ``allowed`` (a tuple or list of names, shown as given).

    Raises:
        ValueError: anything else, a non-str included:
            ``"optimizer must be one of ('adam', 'sgd'), got 'rmsprop'"``.
    """
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def check_path(path, name: str, kind: str = "file") -> Path:
    """``path`` is a str or a ``pathlib.Path`` (any ``os.PathLike``); returns it as a Path.
    ``kind`` (``"file"`` or ``"folder"``) is for the message. Whether it exists is for the
    caller to check, who knows whether it should.

    Raises:
        TypeError: ``"path must be a file path (str or Path), got NoneType"``.
    """
    check_type(path, name, (str, os.PathLike), f"a {kind} path (str or Path)")
    return Path(path)


def check_model(model, name: str = "model") -> None:
    """``model`` is a ``torch.nn.Module``.

    Raises:
        TypeError: ``"model must be a torch.nn.Module, got str 'lenet5'"``.
    """
    check_type(model, name, nn.Module, "a torch.nn.Module")


def check_tensor(t, name: str) -> None:
    """``t`` is a ``torch.Tensor`` (any shape and dtype).

    Raises:
        TypeError: ``"t must be a torch.Tensor, got list"``.
    """
    check_type(t, name, torch.Tensor, "a torch.Tensor")


def check_finite(t: torch.Tensor, name: str, hint: str = "") -> None:
    """The tensor ``t`` holds no NaN or ±inf (integer tensors always pass). ``hint``, if given,
    says how to fix it and ends the message.

    Raises:
        ValueError: ``"x contains NaN or inf; clean the data before calibrating"``.
    """
    if not torch.isfinite(t.detach()).all():
        raise ValueError(f"{name} contains NaN or inf{'; ' + hint if hint else ''}")


def check_argv(argv) -> None:
    """A command line's arguments: None (read ``sys.argv``) or a list of str.

    Raises:
        TypeError: ``"argv must be a list of str or None, got 'list'"``.
    """
    if argv is not None and (not isinstance(argv, (list, tuple)) or not all(isinstance(a, str) for a in argv)):
        raise TypeError(f"argv must be a list of str or None, got {argv!r}")
