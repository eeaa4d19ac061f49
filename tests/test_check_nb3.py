"""Notebook 3's exercise checks: they pass on the worked solutions and fail on wrong answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from pooltools.check import nb3


def test_allconv_extra_params():
    by_hand = sum(3 * 3 * c * c + 2 * c for c in (32, 64))  # the solution's count
    assert nb3.check_allconv_extra_params(by_hand)
    assert not nb3.check_allconv_extra_params(sum(3 * 3 * c * c for c in (32, 64)))  # BN forgotten
    assert not nb3.check_allconv_extra_params("a lot")


def test_convs_to_see_the_image():
    assert nb3.check_convs_to_see_the_image(16)  # 1 + 2n >= 32
    assert not nb3.check_convs_to_see_the_image(15)
    assert not nb3.check_convs_to_see_the_image(16.0)


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    truth = rng.random(500) < 0.8
    return truth, np.where(rng.random(500) < 0.1, ~truth, truth)


def test_mcnemar_passes_on_the_solution_and_fails_on_wrong_counts_or_p(pair, capsys):
    a, b = pair
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = binomtest(only_a, only_a + only_b).pvalue  # the worked solution
    assert nb3.check_mcnemar(only_a, only_b, p, a, b)
    assert "PASS" in capsys.readouterr().out
    assert not nb3.check_mcnemar(only_b, only_a, p, a, b)  # swapped
    assert not nb3.check_mcnemar(only_a, only_b, p / 2, a, b)  # one-sided
    assert not nb3.check_mcnemar(only_a, only_b, "small", a, b)
    assert "FAIL" in capsys.readouterr().out
