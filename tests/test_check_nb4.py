"""pooltools.check.nb4: each check passes on the worked solution and fails on wrong answers."""

from __future__ import annotations

import numpy as np
import torch

from pooltools.check import nb4


def solution_mass_square(erf, fraction=0.9):  # the notebook's worked solution
    h, w = erf.shape
    total = erf.sum()
    for side in range(1, max(h, w) + 1):
        top, left = (h - side) // 2, (w - side) // 2
        if erf[max(top, 0):top + side, max(left, 0):left + side].sum() >= fraction * total:
            return side
    return max(h, w)


def solution_class_purity(maxima, labels, k=9):  # the notebook's worked solution
    top = torch.as_tensor(maxima).argsort(dim=0, descending=True, stable=True)[:k]  # (k, C)
    return np.array([np.bincount(labels[top[:, c]].numpy()).max() / k for c in range(top.shape[1])])


def test_mass_square_passes_on_the_solution(capsys):
    assert nb4.check_mass_square(solution_mass_square)
    assert capsys.readouterr().out.startswith("[PASS]")


def test_mass_square_fails_on_wrong_answers(capsys):
    def anchored_at_corner(erf, fraction=0.9):  # squares grown from the top-left corner
        total = erf.sum()
        return next(s for s in range(1, 33) if erf[:s, :s].sum() >= fraction * total)

    def stub(erf, fraction=0.9):
        raise NotImplementedError("your turn")

    ignores_fraction = lambda erf, fraction=0.9: solution_mass_square(erf)  # noqa: E731
    for wrong in (anchored_at_corner, ignores_fraction, stub):
        assert not nb4.check_mass_square(wrong)
        assert capsys.readouterr().out.startswith("[FAIL]")
    nb4.check_mass_square(stub)
    assert "NotImplementedError" in capsys.readouterr().out


def test_class_purity_passes_on_the_solution():
    assert nb4.check_class_purity(solution_class_purity)


def test_class_purity_fails_on_wrong_answers():
    def bottom_k(maxima, labels, k=9):  # the least activating images instead
        return solution_class_purity(-torch.as_tensor(maxima), labels, k)

    def counts_not_shares(maxima, labels, k=9):
        return solution_class_purity(maxima, labels, k) * k

    assert not nb4.check_class_purity(bottom_k)
    assert not nb4.check_class_purity(counts_not_shares)
    assert not nb4.check_class_purity(lambda maxima, labels, k=9: 0.5)
