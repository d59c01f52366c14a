"""What every checker returns, how an exercise falls back to the course's reference, and how a
checker runs a learner's code safely.

* :func:`falls_back_to` decorates the learner's function (or class): while its body still
  raises ``NotImplementedError``, calls use the course's reference, with one visible note, so the
  rest of the notebook runs.
* A checker returns a :class:`CheckResult` whose status is ``"pass"``, ``"fail"`` or
  ``"not attempted"``; :func:`assert_no_failures` is the assert of a check cell.
* :func:`call_learner_function` and :func:`check_returned` turn whatever the learner's code does
  (raise, loop, return ``None``, a float where integers belong...) into a failing result with a
  hint, never into a traceback from the checker.
* A checker is written once, as a loop over its cases, and stops at the first mistake: inside a
  function decorated with :func:`checker`, :func:`run_learner` calls the learner's code and
  :func:`require` takes any check's result; a failure (or "not attempted") ends the checker with
  that result, so no checker repeats ``if failure: return failure``.
"""

from __future__ import annotations

import numbers

import functools
import math
import signal
import threading
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

__all__ = ["STATUSES", "NOT_ATTEMPTED_MESSAGE", "CheckResult", "passed", "failed", "not_attempted",
           "assert_no_failures", "falls_back_to", "learner_code", "TIME_LIMIT_S", "describe",
           "call_learner_function", "check_returned", "same", "check_unchanged", "checker", "close_to",
           "StopCheck", "require", "returned_number", "run_learner", "student_gradient"]

PASS, FAIL, NOT_ATTEMPTED = "pass", "fail", "not attempted"
STATUSES = (PASS, FAIL, NOT_ATTEMPTED)
NOT_ATTEMPTED_MESSAGE = ("not attempted yet: the notebook uses the reference; write your solution "
                         "and re-run this cell")


# ----------------------------------------------------------------------------- results

@dataclass(frozen=True)
class CheckResult:
    """The outcome of a checker: a ``status`` (``"pass"``, ``"fail"`` or ``"not attempted"``),
    how many cases ran, and a message with a hint. ``status`` also accepts a bool (True: pass)."""
    exercise: str
    status: str
    cases: int
    message: str

    def __post_init__(self):
        status = (PASS if self.status else FAIL) if isinstance(self.status, bool) else self.status
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES} (or a bool), got {self.status!r}")
        object.__setattr__(self, "status", status)

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def __str__(self) -> str:
        return f"[{self.status.upper()}] {self.exercise}: {self.message}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        colour, mark = {PASS: ("#1a7f37", "&#10004; PASS"), FAIL: ("#cf222e", "&#10008; FAIL"),
                        NOT_ATTEMPTED: ("#9a6700", "&#9711; NOT ATTEMPTED")}[self.status]
        text = self.message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return (f"<div style='border-left:4px solid {colour};padding:4px 8px'>"
                f"<b style='color:{colour}'>{mark}</b> <code>{self.exercise}</code>: {text}</div>")


def passed(exercise: str, cases: int, message: str) -> CheckResult:
    return CheckResult(exercise, PASS, cases, message)


def failed(exercise: str, message: str) -> CheckResult:
    return CheckResult(exercise, FAIL, 0, message)


def not_attempted(exercise: str, detail: str = "") -> CheckResult:
    return CheckResult(exercise, NOT_ATTEMPTED, 0, NOT_ATTEMPTED_MESSAGE + (f" ({detail})" if detail else ""))


def assert_no_failures(*results: CheckResult) -> int:
    """The assert of a check cell: raises AssertionError listing every failed exercise with its
    message; exercises not attempted yet (the notebook used the reference) are allowed. Returns
    the number of exercises that passed."""
    for r in results:
        if not isinstance(r, CheckResult):
            raise TypeError(f"assert_no_failures takes the CheckResults returned by the checkers, "
                            f"got {type(r).__name__}")
    failures = [r for r in results if r.failed]
    if failures:
        raise AssertionError(f"{len(failures)} exercise(s) failed:\n" +
                             "\n".join(f"- {r.exercise}: {r.message}" for r in failures))
    return sum(r.passed for r in results)


# ----------------------------------------------------------------------------- the fallback

def falls_back_to(reference: Callable) -> Callable:
    """Decorator for an exercise: calls run the learner's code; while it raises
    ``NotImplementedError`` they return ``reference(*args, **kwargs)`` instead, after one printed
    note per exercise, so the notebook goes on. The learner's own code stays available as
    ``.learner_function`` (or ``.learner_class``): the checkers test that, never the fallback.

    On a class, each instance is the learner's object; the reference's object is fed the same
    calls alongside it, and takes over for good once a learner's method raises
    ``NotImplementedError`` (it has seen every call, so its state is complete)."""
    if not callable(reference):
        raise TypeError(f"falls_back_to takes the course's reference function or class, e.g. "
                        f"exercises.magnitude_prune_reference; got {type(reference).__name__}")

    def decorate(learner):
        if isinstance(learner, type):
            return _ExerciseClass(learner, reference)

        @functools.wraps(learner)
        def exercise(*args, **kwargs):
            try:
                return learner(*args, **kwargs)
            except NotImplementedError:
                exercise.note_fallback()
                return reference(*args, **kwargs)

        exercise.learner_function = learner
        exercise.reference = reference
        exercise.note_fallback = _note_once(learner.__name__)
        return exercise
    return decorate


def _note_once(name: str) -> Callable[[], None]:
    shown = []

    def note():
        if not shown:
            shown.append(True)
            print(f"{name}: not written yet - using the course's reference so the notebook can go on")
    return note


class _ExerciseClass:
    """What ``falls_back_to`` makes of a class: calling it builds an :class:`_ExerciseInstance`."""

    def __init__(self, learner_class: type, reference: Callable):
        self.learner_class, self.reference = learner_class, reference
        self.__name__ = learner_class.__name__
        self.__doc__ = learner_class.__doc__
        self.note_fallback = _note_once(learner_class.__name__)

    def __call__(self, *args, **kwargs):
        return _ExerciseInstance(self, args, kwargs)

    def __repr__(self) -> str:
        reference = getattr(self.reference, "__name__", self.reference)
        return f"<exercise class {self.__name__}, falling back to {reference}>"


class _ExerciseInstance:
    def __init__(self, owner: _ExerciseClass, args: tuple, kwargs: dict):
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_reference", owner.reference(*args, **kwargs))
        try:
            learner = owner.learner_class(*args, **kwargs)
        except NotImplementedError:
            owner.note_fallback()
            learner = None
        object.__setattr__(self, "_learner", learner)

    def _run(self, name: str, args: tuple, kwargs: dict):
        try:                                       # the reference sees every call
            answer, error = getattr(self._reference, name)(*args, **kwargs), None
        except Exception as e:
            answer, error = None, e
        if self._learner is not None:
            try:
                return getattr(self._learner, name)(*args, **kwargs)
            except NotImplementedError:
                self._owner.note_fallback()
                object.__setattr__(self, "_learner", None)
        if error is not None:
            raise error
        return answer

    def __call__(self, *args, **kwargs):
        return self._run("__call__", args, kwargs)

    def __getattr__(self, name: str):
        active = self._learner if self._learner is not None else self._reference
        value = getattr(active, name)
        if callable(value) and not isinstance(value, (torch.Tensor, nn.Module)):
            return lambda *args, **kwargs: self._run(name, args, kwargs)
        return value

    def __setattr__(self, name: str, value):
        setattr(self._learner if self._learner is not None else self._reference, name, value)


def learner_code(exercise: Callable) -> Callable:
    """The learner's own function or class behind a ``falls_back_to`` exercise (else itself)."""
    return getattr(exercise, "learner_function", getattr(exercise, "learner_class", exercise))


# ----------------------------------------------------------------------------- running learner code

TIME_LIMIT_S = 5.0     # a learner's call on a tiny case taking longer is taken for an endless loop


class _TooSlow(Exception):
    pass


@contextmanager
def _time_limit(seconds: float | None):
    """Raise _TooSlow after ``seconds`` (where SIGALRM exists and we are on the main thread)."""
    usable = (seconds is not None and hasattr(signal, "SIGALRM")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise _TooSlow()
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _where_it_raised(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    if len(frames) < 2:
        return ""
    last = frames[-1]
    return f" at line {last.lineno} (`{last.line}`)" if last.line else f" at line {last.lineno}"


def describe(value, limit: int = 80) -> str:
    """A short description of an argument for messages: small tensors by value, others by shape."""
    if isinstance(value, torch.Tensor):
        if value.numel() <= 8:
            return f"tensor({[round(v, 4) for v in value.reshape(-1).tolist()]})" if value.dim() else \
                f"tensor({round(value.item(), 4)})"
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, nn.Module):
        return repr(value).replace("\n", " ")[:limit]
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def call_learner_function(fn: Callable, args: tuple, exercise: str, case: str | None = None,
                          kwargs: dict | None = None, hints: dict[str, str] | None = None,
                          time_limit: float | None = None) -> tuple[object, CheckResult | None]:
    """Call the learner's code ``fn(*args, **kwargs)`` (the learner's own code behind a
    ``falls_back_to`` exercise): ``(result, None)``, or ``(None, result)`` where ``result`` is
    "not attempted" (it raised NotImplementedError) or a FAIL naming the exception, the case
    (``case``, else the arguments), the line that raised and, when ``hints`` maps a piece of
    "ExceptionName: message" to a hint, that hint. A call running longer than ``time_limit``
    seconds (default :data:`TIME_LIMIT_S`; enforced where SIGALRM exists, on the main thread)
    fails as a probable endless loop."""
    fn = learner_code(fn)
    kwargs = kwargs or {}
    time_limit = TIME_LIMIT_S if time_limit is None else time_limit
    if case is None:
        shown = [describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in kwargs.items()]
        case = "(" + ", ".join(shown) + ")"
    try:
        with _time_limit(time_limit):
            return fn(*args, **kwargs), None
    except NotImplementedError:
        return None, not_attempted(exercise)
    except _TooSlow:
        return None, failed(exercise, f"for {case} your code ran for more than {time_limit:g} s on a tiny "
                            "case. Hint: is there a loop that never ends (a `while` whose condition "
                            "never changes)?")
    except Exception as e:  # the learner's code may raise anything; report it, do not crash
        error = f"{type(e).__name__}: {e}"
        hint = next((h for key, h in (hints or {}).items() if key in error), None)
        return None, failed(exercise, f"for {case} your code raised {error}{_where_it_raised(e)}" +
                            (f". Hint: {hint}" if hint else ""))


_ARTICLES = {torch.Tensor: "a tensor", int: "an int", float: "a float", dict: "a dict", tuple: "a tuple",
             list: "a list", nn.Module: "a module"}


def _type_name(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def check_returned(got, exercise: str, where: str, expected: type | tuple[type, ...] = torch.Tensor, *,
                   dtype: str | torch.dtype | None = None, shape: tuple[int, ...] | None = None,
                   what: str = "result") -> CheckResult | None:
    """None if ``got`` has the expected type (and, for a tensor, ``dtype``: ``"integer"``,
    ``"float"`` or an exact torch dtype; and ``shape``); else a failing result with a hint.
    ``where`` names the case ("for weight of shape (4, 3) and sparsity 0.5")."""
    expected = expected if isinstance(expected, tuple) else (expected,)
    names = " or ".join(_ARTICLES.get(t, f"a {t.__name__}") for t in expected)
    if got is None:
        return failed(exercise, f"{where} your function returned None. Hint: your function returns "
                      "None: did you forget `return`?")
    is_number = any(t in (int, float) for t in expected)
    if isinstance(got, bool) and bool not in expected or not isinstance(got, expected):
        hint = ""
        if isinstance(got, torch.Tensor) and got.numel() == 1 and is_number:
            hint = " Hint: a one-element tensor is not a Python number: use .item() (or float(...))."
        elif torch.Tensor in expected and isinstance(got, (list, tuple)):
            hint = " Hint: build a tensor with torch.tensor(...) or torch.stack(...)."
        return failed(exercise, f"{where} expected {names} as the {what}, got {_type_name(got)}.{hint}")
    if isinstance(got, torch.Tensor):
        if dtype == "integer" and (got.is_floating_point() or got.dtype == torch.bool or got.is_complex()):
            return failed(exercise, f"{where} the {what} must be an INTEGER tensor (int64), got "
                          f"{got.dtype}. Hint: integer codes/indices are stored as integers: convert "
                          "with .to(torch.int64) (or .long()) after rounding.")
        if dtype == "float" and not got.is_floating_point():
            return failed(exercise, f"{where} the {what} must be a float tensor, got {got.dtype}. "
                          "Hint: convert with .float().")
        if isinstance(dtype, torch.dtype) and got.dtype != dtype:
            return failed(exercise, f"{where} the {what} must have dtype {dtype}, got {got.dtype}. "
                          f"Hint: keep the input's dtype (or convert with .to({dtype})).")
        if shape is not None and tuple(got.shape) != tuple(shape):
            return failed(exercise, f"{where} the {what} must have shape {tuple(shape)}, got "
                          f"{tuple(got.shape)}.")
    return None


def same(a, b) -> bool:
    """Deep equality of tensors, modules (parameters, buffers and settings), containers, numbers."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and torch.equal(a, b))
    if isinstance(a, nn.Module) or isinstance(b, nn.Module):
        return (type(a) is type(b) and repr(a) == repr(b)
                and same(dict(a.state_dict()), dict(b.state_dict())))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def check_unchanged(before, after, exercise: str, where: str, name: str = "its input",
                    hint: str = "work on a copy (.clone(), copy.deepcopy) and return a new result.",
                    ) -> CheckResult | None:
    """A failing result if ``after`` (the object given to the learner) no longer equals
    ``before`` (a copy taken before the call)."""
    if same(before, after):
        return None
    return failed(exercise, f"{where} your function changed {name} in place. Hint: {hint}")


class StopCheck(Exception):
    """Ends a checker early with ``result`` (a failure, or "not attempted"): raised by
    :func:`require`, caught by :func:`checker`."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.message)
        self.result = result


def returned_number(got, exercise: str, where: str, hint: str = "return a float.") -> float:
    """The learner's answer as a Python float: a 0-d tensor or array counts as the number it holds. None (a
    forgotten ``return``) or anything else that is not a real number ends the checker (as :func:`require`)."""
    if hasattr(got, "item") and tuple(getattr(got, "shape", (1,))) == ():
        got = got.item()
    if got is None:
        require(failed(exercise, f"{where} got None. Hint: did you forget `return`?"))
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        require(failed(exercise, f"{where} expected a number, got {type(got).__name__}. Hint: {hint}"))
    return float(got)


def require(result: CheckResult | None) -> None:
    """Go on when a check found nothing (``None``); else end the checker with ``result``.
    Only inside a function decorated with :func:`checker` (or one it calls)."""
    if result is not None:
        raise StopCheck(result)


def run_learner(fn: Callable, args: tuple, exercise: str, case: str | None = None, kwargs: dict | None = None,
                hints: dict[str, str] | None = None, time_limit: float | None = None) -> object:
    """What the learner's ``fn(*args, **kwargs)`` returns, as :func:`call_learner_function`; if it
    raised, ran too long or is not written yet, the checker ends with that result (:func:`require`)."""
    got, failure = call_learner_function(fn, args, exercise, case=case, kwargs=kwargs, hints=hints,
                                         time_limit=time_limit)
    require(failure)
    return got


def student_gradient(loss_fn: Callable, student: torch.Tensor, teacher: torch.Tensor, rest: tuple, exercise: str,
                     where: str, in_place_hint: str, detach_hint: str) -> torch.Tensor | None:
    """The gradient a learner's distillation-style loss ``loss_fn(student, teacher, *rest)`` sends to
    the student's logits, run on fresh copies of both that require gradients. The checker ends (as
    :func:`require`) when the loss carries no gradient (``detach_hint`` says why it may not) or when a
    gradient reaches the teacher's logits, a fixed target. ``in_place_hint`` answers the error an
    in-place change of a leaf raises."""
    z, v = student.clone().requires_grad_(True), teacher.clone().requires_grad_(True)
    got = run_learner(loss_fn, (z, v, *rest), exercise, case=where[4:] + " (logits requiring grad)",
                      hints={"leaf Variable": in_place_hint})
    if not isinstance(got, torch.Tensor) or not got.requires_grad:
        require(failed(exercise, f"{where} (logits requiring grad) your loss carries no gradient. Hint: "
                       f"{detach_hint}"))
    got.backward()
    if v.grad is not None and bool((v.grad != 0).any()):
        require(failed(exercise, f"{where}, a gradient flows into teacher_logits. Hint: the teacher is a fixed "
                       "target, not trained: use teacher_logits.detach() (or compute what you take from it under "
                       "torch.no_grad()), so no gradient reaches the teacher."))
    return z.grad


def checker(exercise: str) -> Callable:
    """Decorator for a checker: a :class:`StopCheck` (from :func:`require` or :func:`run_learner`)
    returns its result; an unexpected error inside the checker itself (an answer of a shape nobody
    foresaw) becomes a FAIL with a hint, never a traceback."""
    def decorate(check):
        @functools.wraps(check)
        def run(*args, **kwargs) -> CheckResult:
            try:
                return check(*args, **kwargs)
            except StopCheck as stop:
                return stop.result
            except Exception as e:
                return failed(exercise, f"the checker could not compare your answer ({type(e).__name__}: "
                              f"{e}). Hint: check the type and shape of what your code returns "
                              "against the exercise's docstring.")
        return run
    return decorate


def close_to(got: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5) -> bool:
    """Same shape, and equal up to ``rtol`` of the largest entry of ``expected`` (at least 1),
    compared in float64: the checkers' test of a learner's tensor against a reference's."""
    got, expected = got.detach().double(), expected.detach().double()
    if got.shape != expected.shape:
        return False
    scale = max(expected.abs().max().item(), 1.0) if expected.numel() else 1.0
    return bool(((got - expected).abs() <= rtol * scale).all())
