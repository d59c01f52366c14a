"""What every checker returns, and how it runs a learner's function safely."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable



@dataclass(frozen=True)
class CheckResult:
    """The outcome of a checker: ``passed``, how many cases ran, and a message with a hint."""
    exercise: str
    passed: bool
    cases: int
    message: str

    def __str__(self) -> str:
        mark = "PASS" if self.passed else "FAIL"
        return f"[{mark}] {self.exercise}: {self.message}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.passed else "#cf222e"
        mark = "&#10004; PASS" if self.passed else "&#10008; FAIL"
        text = self.message.replace("&", "&amp;").replace("<", "&lt;")
        return (f"<div style='border-left:4px solid {colour};padding:4px 8px'>"
                f"<b style='color:{colour}'>{mark}</b> <code>{self.exercise}</code>: {text}</div>")


def call_learner_function(fn: Callable, args: tuple, exercise: str) -> tuple[object, CheckResult | None]:
    """Call the learner's ``fn(*args)``: ``(result, None)``, or ``(None, a failing CheckResult)``
    saying it is not implemented yet or what it raised."""
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, CheckResult(exercise, False, 0, "not implemented yet: replace the "
                                 "`raise NotImplementedError` with your code")
    except Exception as e:  # the learner's code may raise anything; report it, do not crash
        return None, CheckResult(exercise, False, 0, f"your function raised {type(e).__name__}: {e} "
                                 f"when called with {args}")
