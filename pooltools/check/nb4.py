"""Checks for notebook 4's exercises (what pooled and unpooled CNNs learn), one per exercise.

Each runs the learner's answer on seeded inputs, compares it with the tested reference in
:mod:`pooltools.features`, prints one PASS/FAIL line and returns the :class:`CheckResult`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from pooltools import features
from pooltools.check.core import CheckResult, report, run_answer

__all__ = ["check_mass_square", "check_class_purity"]


def _maps() -> dict[str, np.ndarray]:
    """Maps with known shapes: flat, a centred blob, an off-centre blob, odd size, one spike."""
    rows, cols = np.mgrid[0:32, 0:32]
    blob = np.exp(-((rows - 15.5) ** 2 + (cols - 15.5) ** 2) / (2 * 4.0**2))
    shifted = np.exp(-((rows - 10) ** 2 + (cols - 20) ** 2) / (2 * 3.0**2))
    odd = np.exp(-((rows[:31, :31] - 15) ** 2 + (cols[:31, :31] - 15) ** 2) / (2 * 6.0**2))
    spike = np.zeros((32, 32))
    spike[16, 16] = 1.0
    return {"flat 32x32": np.ones((32, 32)), "centred Gaussian": blob,
            "off-centre Gaussian": shifted, "31x31 Gaussian": odd, "single spike": spike}  # fmt: skip


def check_mass_square(mass_square: Callable[[np.ndarray, float], int]) -> CheckResult:
    """Exercise 1: ``mass_square(erf, fraction) -> side`` against ``features.mass_square``."""
    name = "Exercise 1 (the centred square that holds a share of the ERF)"
    hint = (
        "for side = 1, 2, ...: take rows (H - side) // 2 onwards and the same for columns, "
        "return the first side whose square holds >= fraction of erf.sum()"
    )
    for label, erf in _maps().items():
        for fraction in (0.5, 0.9):
            got, failed = run_answer(name, mass_square, erf.copy(), fraction, hint=hint)
            if failed is not None:
                return failed
            expected = features.mass_square(erf, fraction)
            if not isinstance(got, (int, np.integer)) or int(got) != expected:
                message = f"{label}, fraction {fraction}: got {got!r}, expected {expected} px"
                return report(name, False, message, hint)
    return report(name, True, "matches features.mass_square on 5 maps at 50 % and 90 %")


def check_class_purity(
    class_purity: Callable[[torch.Tensor, torch.Tensor, int], np.ndarray],
) -> CheckResult:
    """Exercise 2: ``class_purity(maxima, labels, k) -> (C,)`` against ``features.class_purity``."""
    name = "Exercise 2 (class purity of the top-9 images)"
    hint = (
        "per channel: the indices of the k largest maxima (torch.topk or argsort), their "
        "labels, the count of the most common label (np.bincount(...).max()), divided by k"
    )
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (200,), generator=gen)
    maxima = torch.rand(200, 12, generator=gen)
    maxima[:, :4] += 2.0 * (labels[:, None] == torch.arange(4)).float()  # 4 class-pure channels
    for k in (9, 5):
        got, failed = run_answer(name, class_purity, maxima.clone(), labels.clone(), k, hint=hint)
        if failed is not None:
            return failed
        expected = features.class_purity(maxima, labels, k)
        got_arr = np.asarray(got, dtype=np.float64).ravel() if got is not None else None
        if got_arr is None or got_arr.shape != expected.shape:
            shape = None if got_arr is None else got_arr.shape
            message = f"k={k}: expected {expected.shape[0]} values (one per channel), got {shape}"
            return report(name, False, message, hint)
        if not np.allclose(got_arr, expected):
            bad = int(np.argmax(np.abs(got_arr - expected)))
            message = f"k={k}, channel {bad}: got {got_arr[bad]:.3f}, expected {expected[bad]:.3f}"
            return report(name, False, message, hint)
    return report(name, True, "matches features.class_purity on 12 channels at k = 9 and 5")
