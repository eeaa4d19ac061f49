"""Notebook 1's exercise checks: each passes on the worked solution (taken from the notebook's own
solution cell) and fails, with one FAIL line and without raising, on wrong answers."""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pooltools.check import nb1
from pooltools.tools import student

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_what_is_max_pooling.ipynb"


@pytest.fixture(scope="module")
def solutions() -> dict:
    """Every name the notebook's solution cells define (run in one namespace, in order)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    from pooltools import widgets
    from pooltools.shapes import pool_output_size, uncovered

    namespace: dict = {"torch": torch, "F": F, "nn": torch.nn, "np": np, "widgets": widgets,
                       "pool_output_size": pool_output_size, "uncovered": uncovered}  # fmt: skip
    cells = [c for c in nb.cells if student.is_solution(c)]
    assert len(cells) >= 4, "notebook 1 has its four exercises"
    for cell in cells:
        exec(compile(cell.source, "<solution>", "exec"), namespace)
    return namespace


CHECKS = [
    ("output_size", nb1.check_output_size),
    ("max_pool_2x2", nb1.check_max_pool_2x2),
    ("lossy_sizes", nb1.check_lossy_sizes),
    ("avg_pool_input_grad", nb1.check_avg_pool_grad),
]


@pytest.mark.parametrize("name, check", CHECKS, ids=[n for n, _ in CHECKS])
def test_the_worked_solution_passes(solutions, name, check, capsys):
    result = check(solutions[name])
    assert result.passed, result.line()
    assert capsys.readouterr().out.startswith("[PASS] Exercise ")


def _stub(*args, **kwargs):
    raise NotImplementedError("your turn: write your answer here")


WRONG = {
    "output_size": [
        lambda n, k, s, p: (n + 2 * p - k) // s,  # forgets the + 1
        lambda n, k, s, p: -(-(n + 2 * p - k) // s) + 1,  # ceiling instead of floor
        lambda n, k, s, p: 16,  # the one case, hard-coded
        lambda n, k, s, p: float((n + 2 * p - k) // s + 1),  # a float, not an int
    ],
    "max_pool_2x2": [
        lambda t: F.max_pool2d(t, 2),  # the built-in the exercise forbids
        lambda t: t.reshape(*t.shape[:2], t.shape[2] // 2, 2, t.shape[3] // 2, 2).mean(dim=(3, 5)),
        lambda t: t.reshape(*t.shape[:2], 2, t.shape[2] // 2, 2, t.shape[3] // 2).amax(dim=(2, 4)),
        lambda t: t[..., ::2, ::2],  # subsampling
    ],
    "lossy_sizes": [
        lambda k, s, sizes: [n for n in sizes if n % 2 == 1],  # right only for k = s = 2
        lambda k, s, sizes: [n for n in sizes if n % 2 == 0],
        lambda k, s, sizes: None,
    ],
    "avg_pool_input_grad": [
        lambda x, g: torch.zeros_like(x),
        lambda x, g: F.interpolate(g, scale_factor=2),  # forgets the 1/4
        lambda x, g: g,  # wrong shape
    ],
}


@pytest.mark.parametrize("name, check", CHECKS, ids=[n for n, _ in CHECKS])
def test_wrong_answers_and_the_stub_fail_without_raising(name, check, capsys):
    for wrong in [*WRONG[name], _stub]:
        result = check(wrong)
        assert not result.passed, f"{name}: a wrong answer passed: {result.line()}"
        out = capsys.readouterr().out
        assert out.startswith("[FAIL] Exercise ") and out.count("\n") == 1 and "Hint: " in out


def test_the_stub_failure_says_whose_turn_it_is(capsys):
    result = nb1.check_output_size(_stub)
    assert "NotImplementedError: your turn" in result.message


def test_the_builtin_pooling_is_restored_after_exercise_2():
    before = F.max_pool2d
    nb1.check_max_pool_2x2(lambda t: F.max_pool2d(t, 2))
    assert F.max_pool2d is before and torch.max_pool2d(torch.zeros(1, 1, 2, 2), 2).shape[-1] == 1
