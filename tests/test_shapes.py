"""pooltools.shapes against PyTorch itself: output sizes, refusals and receptive fields."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from pooltools.shapes import (
    PoolParams,
    ReceptiveField,
    arithmetic,
    first_real_tap,
    pair,
    pool_output_size,
    receptive_field,
)


def torch_size(size, k, s, p, d, ceil):
    """PyTorch's answer: the output height, or None where PyTorch refuses the setting."""
    x = torch.zeros(1, 1, size, size)
    try:
        return F.max_pool2d(x, k, s, p, d, ceil_mode=ceil).shape[-1]
    except RuntimeError:
        return None


def ours(size, k, s, p, d, ceil):
    try:
        return pool_output_size(size, k, s, p, d, ceil)
    except ValueError:
        return None


GRID = list(
    itertools.product(
        range(1, 10), range(1, 5), range(1, 5), range(0, 3), range(1, 4), (False, True)
    )
)


def test_dense_grid_matches_pytorch():
    mismatches = [cfg for cfg in GRID if ours(*cfg) != torch_size(*cfg)]
    assert not mismatches, f"{len(mismatches)} of {len(GRID)} differ, e.g. {mismatches[:5]}"
    # the grid really exercises both outcomes
    assert sum(torch_size(*cfg) is None for cfg in GRID) > 100


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(1, 64),
    k=st.integers(1, 8),
    s=st.integers(1, 8),
    p=st.integers(0, 4),
    d=st.integers(1, 4),
    ceil=st.booleans(),
)
def test_random_settings_match_pytorch(size, k, s, p, d, ceil):
    assert ours(size, k, s, p, d, ceil) == torch_size(size, k, s, p, d, ceil)


def test_default_stride_is_kernel_size():
    assert pool_output_size(32, 2) == 16 == torch_size(32, 2, 2, 0, 1, False)
    assert pool_output_size(32, 3) == 10


def test_the_silently_dropped_row_and_ceil_mode():
    assert pool_output_size(25, 2, 2) == 12  # last row dropped
    assert pool_output_size(25, 2, 2, ceil_mode=True) == 13
    # ceil_mode never starts a window in the right padding: 5 = 2*2 + 1 would start at 4 >= 3+1
    assert pool_output_size(3, 2, 2, padding=1, ceil_mode=True) == torch_size(3, 2, 2, 1, 1, True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kernel_size=0), "kernel_size must be greater than zero"),
        (dict(kernel_size=2, stride=0), "stride must be greater than zero"),
        (dict(kernel_size=2, dilation=0), "dilation must be greater than zero"),
        (dict(kernel_size=2, padding=2), "padding should be at most half of kernel_size"),
        (dict(kernel_size=2, padding=-1), "padding must be non-negative"),
        (dict(kernel_size=3, dilation=3), "output size is too small"),
    ],
)
def test_invalid_settings_say_what_is_allowed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pool_output_size(5, **kwargs)


def test_pair_accepts_what_pytorch_pooling_accepts():
    assert pair(3, "k") == (3, 3) and pair((2, 4), "k") == (2, 4)
    assert pair(np.int64(2), "k") == (2, 2)
    x = torch.randn(1, 1, 7, 9)
    for spelling in [(2,), [3], (2, 3)]:  # PyTorch reads a 1-element tuple as (k, k)
        want = F.max_pool2d(x, spelling).shape[-2:]
        kh, kw = pair(spelling, "k")
        assert (pool_output_size(7, kh, kh), pool_output_size(9, kw, kw)) == tuple(want)
    for bad in [(1, 2, 3), (), "2", 2.0, True, (1, True)]:
        with pytest.raises(TypeError, match=r"k must be an int or a pair of ints \(or a 1-tuple"):
            pair(bad, "k")


def empirical_receptive_field(model: nn.Module, size: int = 64) -> int:
    """Side of the input region that influences the centre output unit, found by autograd.

    Max pooling sends the gradient to one argmax only, so it is swapped for average pooling of
    the same geometry; positive weights, zero biases and a positive input keep every path open.
    """
    model = copy.deepcopy(model).eval().double()
    for name, m in list(model.named_children()):
        if isinstance(m, nn.MaxPool2d):
            setattr(model, name, nn.AvgPool2d(m.kernel_size, m.stride, m.padding))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
    x = torch.rand(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    y = model(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = (x.grad[0, 0].abs().sum(1) > 0).nonzero()
    return int(rows.max() - rows.min() + 1)


KNOWN_NETS = {
    "two 3x3 convs": (
        nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1)),
        5,
    ),
    "conv-pool-conv": (
        nn.Sequential(
            nn.Conv2d(1, 1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3, padding=1)
        ),
        8,
    ),
    "dilated conv": (
        nn.Sequential(nn.Conv2d(1, 1, 3, padding=2, dilation=2), nn.Conv2d(1, 1, 3, padding=1)),
        7,
    ),
    "VGG-ish, 2 stages": (
        nn.Sequential(
            nn.Conv2d(1, 1, 3, padding=1),
            nn.BatchNorm2d(1),
            nn.ReLU(),
            nn.Conv2d(1, 1, 3, padding=1),
            nn.MaxPool2d(2),
            nn.Conv2d(1, 1, 3, padding=1),
            nn.Conv2d(1, 1, 3, padding=1),
            nn.MaxPool2d(2),
        ),
        16,
    ),
}


@pytest.mark.parametrize("name", KNOWN_NETS)
def test_receptive_field_of_known_networks(name):
    net, expected = KNOWN_NETS[name]
    fields = receptive_field(net)
    assert fields[-1].size == expected
    assert empirical_receptive_field(net) == expected


def test_receptive_field_recurrence_by_hand():
    fields = receptive_field([(3, 1, 1, 1), (2, 2, 0, 1), (3, 1, 1, 1), (2, 2, 0, 1)])
    assert [(f.size, f.jump) for f in fields] == [(3, 1), (4, 2), (8, 2), (10, 4)]
    assert fields[1] == ReceptiveField("layer1", 4, 2, 0.5)


def test_receptive_field_stops_at_global_pooling_and_rejects_unknown_layers():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    assert [f.size for f in receptive_field(net)] == [3]
    with pytest.raises(TypeError, match="receptive_field does not know layer Upsample"):
        receptive_field(nn.Sequential(nn.Upsample(scale_factor=2)))
    with pytest.raises(ValueError, match="expected \\(kernel, stride, padding, dilation\\)"):
        receptive_field([(3, 1, 1)])


# ------------------------------------------------------------------ PoolParams: the one parser

SPELLINGS = [
    dict(kernel_size=2),
    dict(kernel_size=(2,)),
    dict(kernel_size=[3, 2], stride=(1,)),
    dict(kernel_size=2, stride=()),
    dict(kernel_size=3, stride=None, padding=(1,)),
    dict(kernel_size=(3, 3), stride=[2, 1], padding=[1, 0], dilation=(2,)),
    dict(kernel_size=np.int64(2), stride=np.int32(1)),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
]


@pytest.mark.parametrize("kwargs", SPELLINGS)
def test_pool_params_accept_every_spelling_pytorch_accepts_with_its_output_shape(kwargs):
    x = torch.zeros(1, 1, 9, 8)
    params = PoolParams.of(**kwargs)
    assert params.output_shape(x.shape) == tuple(F.max_pool2d(x, **kwargs).shape[-2:])
    assert PoolParams.of(*params.axis(0)).axis(0) == params.axis(0)  # ints round-trip


@pytest.mark.parametrize(
    "kwargs",
    [dict(kernel_size=0), dict(kernel_size=2, stride=0), dict(kernel_size=2, padding=2),
     dict(kernel_size=2, dilation=0), dict(kernel_size=(2, 2, 2)), dict(kernel_size=2.0),
     dict(kernel_size=True), dict(kernel_size=2, ceil_mode=1), dict(kernel_size=2, ceil_mode="False"),
     dict(kernel_size=2, ceil_mode=None)],
)  # fmt: skip
def test_pool_params_refuse_what_pytorch_refuses(kwargs):
    x = torch.zeros(1, 1, 9, 8)
    with pytest.raises((RuntimeError, TypeError, ValueError)):
        F.max_pool2d(x, **kwargs)
    with pytest.raises((TypeError, ValueError)):
        PoolParams.of(**kwargs)


def test_first_real_tap_is_pytorchs_while_loop_for_ints_arrays_and_tensors():
    def loop(start: int, dil: int) -> int:  # PyTorch's `while (ih0 < 0) ih0 += dilation`
        while start < 0:
            start += dil
        return start

    starts = list(range(-7, 4))
    for dil in (1, 2, 3):
        expected = [loop(s, dil) for s in starts]
        assert [first_real_tap(s, dil) for s in starts] == expected
        assert first_real_tap(np.array(starts), dil).tolist() == expected
        assert first_real_tap(torch.tensor(starts), dil).tolist() == expected


def test_arithmetic_of_a_window_that_only_ceil_mode_makes():
    """3x3 input, kernel 4, stride 2: floor mode refuses it, ceil mode gives PyTorch's 1x1."""
    x = torch.zeros(1, 1, 3, 3)
    assert F.max_pool2d(x, 4, 2, ceil_mode=True).shape[-2:] == (1, 1)
    geo = arithmetic(3, kernel_size=4, stride=2, ceil_mode=True)
    assert geo.out_shape == (1, 1) and geo.extra == {(0, 0)} and geo.uncovered == frozenset()
