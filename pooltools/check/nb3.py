"""Checks for notebook 3's exercises: each recomputes the answer its own way and compares.

Every function prints one PASS/FAIL line (see :mod:`pooltools.check.core`) and never raises on a
wrong answer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pooltools.check.core import CheckResult, report
from pooltools.models import build_model, summary
from pooltools.shapes import receptive_field

__all__ = ["check_allconv_extra_params", "check_convs_to_see_the_image", "check_mcnemar"]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_allconv_extra_params(answer: Any) -> CheckResult:
    """Exercise 1: how many parameters ``allconv`` adds over ``base`` at the default widths,
    compared with the two models' parameter counts."""
    name = "Exercise 1 (allconv's extra parameters)"
    want = summary(build_model("allconv")).params - summary(build_model("base")).params
    hint = "each downsampling stage gets a 3×3 conv (C·C·9 weights, no bias) and a BatchNorm (2·C)"
    if not _is_int(answer):
        return report(name, False, f"expected a whole number, but got {answer!r}", hint)
    if answer != want:
        return report(name, False, f"{answer:,} is not the difference of the two models", hint)
    return report(name, True, f"{want:,} extra parameters, as summary() counts them")


def check_convs_to_see_the_image(answer: Any, image_size: int = 32) -> CheckResult:
    """Exercise 2: the fewest stride-1 3×3 convs whose receptive field covers ``image_size``."""
    name = "Exercise 2 (convolutions to see the whole image)"
    n = 1
    while receptive_field([(3, 1, 1, 1)] * n)[-1].size < image_size:
        n += 1
    hint = "each stride-1 3×3 conv widens the field by 2 pixels, starting from 1"
    if not _is_int(answer):
        return report(name, False, f"expected a whole number, but got {answer!r}", hint)
    if answer != n:
        field = receptive_field([(3, 1, 1, 1)] * int(answer))[-1].size if answer > 0 else 1
        return report(name, False, f"{answer} convs see {field} px, and {n} is the fewest that "
                      f"see {image_size}", hint)  # fmt: skip
    return report(name, True, f"{n} convs: a field of {receptive_field([(3, 1, 1, 1)] * n)[-1].size} px")


def check_mcnemar(
    only_a: Any, only_b: Any, p_value: Any, correct_a: Any, correct_b: Any
) -> CheckResult:
    """Exercise 3: the discordant counts and McNemar's exact p-value for two classifiers,
    compared with counts taken here and the binomial tail summed with ``math.comb``."""
    name = "Exercise 3 (McNemar by hand)"
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    want_a, want_b = int((a & ~b).sum()), int((~a & b).sum())
    hint = "only_a = images a gets right and b wrong; p = binomtest(only_a, only_a + only_b).pvalue"
    if not (_is_int(only_a) and _is_int(only_b)) or (only_a, only_b) != (want_a, want_b):
        return report(name, False, f"the discordant counts are not ({only_a!r}, {only_b!r})", hint)
    n, k = want_a + want_b, min(want_a, want_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n if n else 0.5
    want_p = min(1.0, 2 * tail)
    try:
        ok = math.isclose(float(p_value), want_p, rel_tol=1e-6, abs_tol=1e-12)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        return report(name, False, f"p = {p_value!r}, but the exact two-sided p is {want_p:.3g}", hint)
    return report(name, True, f"{want_a} against {want_b} discordant images, p = {want_p:.3g}")
