"""The verdict every exercise check returns and prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CheckResult", "report", "run_answer"]


@dataclass(frozen=True)
class CheckResult:
    """Whether the learner's answer to ``exercise`` passed, what was compared, and a hint."""

    exercise: str
    passed: bool
    message: str
    hint: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def line(self) -> str:
        """The one line a check cell prints."""
        mark = "PASS" if self.passed else "FAIL"
        text = f"[{mark}] {self.exercise}: {self.message}"
        return text if self.passed or not self.hint else f"{text} Hint: {self.hint}"


def report(exercise: str, passed: bool, message: str, hint: str = "") -> CheckResult:
    """Build the verdict, print its line, and return it (so tests can assert on it)."""
    result = CheckResult(exercise, bool(passed), message, hint)
    print(result.line())
    return result


def run_answer(
    exercise: str, answer: Callable[..., Any], *args: Any, hint: str = "", **kwargs: Any
) -> tuple[Any, CheckResult | None]:
    """Call the learner's ``answer(*args, **kwargs)``; an exception becomes a failed verdict.

    Returns ``(value, None)`` when the call worked, or ``(None, failed_result)`` (already
    printed, as one line naming the exception) when it raised, e.g. a stub's
    ``NotImplementedError``.
    """
    try:
        return answer(*args, **kwargs), None
    except Exception as error:  # the learner's code: any error is a failed answer, not a crash
        message = f"your code raised {type(error).__name__}: {error}"
        return None, report(exercise, False, message, hint)
