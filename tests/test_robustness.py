"""pooltools.robustness: shift measurements, checked against cases with known answers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pooltools.robustness import shift_change, shift_consistency, shift_images


def test_constant_images_never_change_and_identity_of_a_ramp_changes_everywhere():
    flat = torch.full((2, 3, 8, 8), 5.0)
    assert shift_change(lambda t: t, flat) == shift_change(lambda t: F.max_pool2d(t, 2), flat)
    assert shift_change(lambda t: t, flat).unchanged == 1.0
    ramp = torch.arange(8.0).expand(1, 1, 8, 8).contiguous()  # each column one larger
    result = shift_change(lambda t: t, ramp)
    assert result.unchanged == 0.0
    # interior columns 1..6 hold 1..6 and drop by exactly 1 after the shift
    assert result.relative_change == pytest.approx(1 / 3.5)


def test_max_pooling_keeps_a_peak_that_stays_inside_its_window():
    x = torch.zeros(1, 1, 4, 8)
    x[0, 0, 0, 2] = 1.0  # shifted to column 3: same 2x2 window (columns 2-3)
    assert shift_change(lambda t: F.max_pool2d(t, 2), x).unchanged == 1.0
    assert shift_change(lambda t: t[..., ::2, ::2], x).unchanged < 1.0


def test_shift_images_moves_content_and_fills_with_zeros():
    x = torch.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    moved = shift_images(x, torch.tensor([1]), torch.tensor([-2]), max_shift=2)
    expected = torch.zeros(1, 1, 4, 4)
    expected[0, 0, 1:, :2] = x[0, 0, :3, 2:]  # down one row, left two columns
    assert torch.equal(moved, expected)
    with pytest.raises(ValueError, match=r"shifts must lie in \[-2, 2\]"):
        shift_images(x, torch.tensor([3]), torch.tensor([0]), max_shift=2)


def test_shift_consistency_of_invariant_and_of_position_sensitive_models():
    images = torch.randn(64, 3, 8, 8)
    invariant = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 10))
    with torch.no_grad():
        invariant[1].weight.zero_()
        invariant[1].bias.copy_(torch.arange(10.0))  # always predicts class 9
    assert shift_consistency(invariant, images, max_shift=2) == 1.0
    torch.manual_seed(0)
    sensitive = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 10))
    score = shift_consistency(sensitive, images, max_shift=2, seed=1)
    assert 0.0 <= score < 1.0
    assert score == shift_consistency(sensitive, images, max_shift=2, seed=1)  # seeded
