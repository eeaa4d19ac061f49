"""Checks for the notebooks' exercises: run a learner's answer against PyTorch or a computed
reference and print one clear pass/fail line, with a hint when it fails.

One module per notebook (``nb1`` ... ``nb4``), one function per exercise; every function returns a
:class:`CheckResult` and never raises on a wrong answer, so a check cell always prints its verdict.
The check cells stay in the student copies (``make student``).
"""

from pooltools.check.core import CheckResult, report, run_answer

__all__ = ["CheckResult", "report", "run_answer"]
