"""pooltools.adaptive against PyTorch: values, indices, the window rule and bad inputs.

A dense grid sweeps every small input and output size (output larger than the input, 0 and
None included); hypothesis adds random shapes, dtypes, NaN, ±inf and ties. Where PyTorch
refuses an input we must refuse it too, with the matching kind of error.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import pooltools
from pooltools.adaptive import (
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    adaptive_windows,
    plain_pool_equivalent,
)

NAN, INF = np.nan, np.inf


def torch_adaptive(x: np.ndarray, output_size, kind: str):
    """PyTorch's answer as NumPy: (values, indices) for max, values for avg."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    if kind == "max":
        values, indices = F.adaptive_max_pool2d(t, output_size, return_indices=True)
        return values.numpy(), indices.numpy()
    return F.adaptive_avg_pool2d(t, output_size).numpy()


def assert_matches_torch(x: np.ndarray, output_size) -> None:
    values, indices = torch_adaptive(x, output_size, "max")
    ours, our_indices = adaptive_max_pool2d(x, output_size, return_indices=True)
    assert ours.dtype == x.dtype and our_indices.dtype == np.int64
    np.testing.assert_array_equal(ours, values)  # NaN == NaN here
    np.testing.assert_array_equal(our_indices, indices)
    np.testing.assert_array_equal(adaptive_max_pool2d(x, output_size), values)
    average = torch_adaptive(x, output_size, "avg")
    ours = adaptive_avg_pool2d(x, output_size)
    assert ours.dtype == x.dtype and ours.shape == average.shape
    if average.shape[-2:] == (1, 1):  # PyTorch calls mean(): its own summation order
        tol = 1e-3 if x.dtype == np.float16 else 1e-6
        np.testing.assert_allclose(ours, average, rtol=tol, atol=tol)
    else:
        np.testing.assert_array_equal(ours, average)


# ----------------------------------------------------------------------------- the rule
def test_windows_follow_the_floor_ceil_rule_and_overlap_on_14_to_4():
    assert adaptive_windows(14, 4) == [(0, 4), (3, 7), (7, 11), (10, 14)]  # floor/ceil of 3.5·i
    assert adaptive_windows(12, 4) == [(0, 3), (3, 6), (6, 9), (9, 12)]  # no overlap
    with pytest.raises(ValueError, match="in_size must be >= 1"):
        adaptive_windows(0, 2)


@pytest.mark.parametrize("n", range(1, 13))
@pytest.mark.parametrize("out", range(1, 15))
def test_windows_are_those_of_torch(n, out):
    # Each output of adaptive *average* pooling of one-hot rows tells which inputs its window
    # holds: an independent reading of PyTorch's windows.
    eye = torch.eye(n, dtype=torch.float64)[:, None, :]  # (n, 1, n): row k is one-hot at k
    pooled = F.adaptive_avg_pool1d(eye, out)[:, 0, :]  # (n, out)
    expected = [(int(np.flatnonzero(col)[0]), int(np.flatnonzero(col)[-1]) + 1) for col in pooled.T]
    assert adaptive_windows(n, out) == expected


@pytest.mark.parametrize("n", range(1, 13))
@pytest.mark.parametrize("out", range(1, 13))
def test_plain_pool_equivalent_is_right_and_complete(n, out):
    x = torch.randn(1, 1, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n * out))
    adaptive = F.adaptive_avg_pool1d(x, out)
    # Every plain pooling whose output has the right length and the same (random) averages
    # (to rounding: for out == 1 PyTorch's adaptive pooling calls mean(), summing in its own order).
    matches = [
        (k, s)
        for k in range(1, n + 1)
        for s in range(1, n + 1)
        if (n - k) // s + 1 == out
        and torch.allclose(F.avg_pool1d(x, k, s), adaptive, rtol=1e-12, atol=0)
    ]
    found = plain_pool_equivalent(n, out)
    if found is None:
        assert not matches
    else:
        assert found in matches
        k, s = found
        assert torch.equal(F.max_pool1d(x, k, s), F.adaptive_max_pool1d(x, out))
    if n % out == 0:
        assert found == (n // out, n // out)


def test_exported_from_pooltools():
    assert pooltools.adaptive_max_pool2d is adaptive_max_pool2d
    assert pooltools.adaptive_avg_pool2d is adaptive_avg_pool2d


# ----------------------------------------------------------------------------- dense grid
@pytest.mark.parametrize("height", range(1, 10))
@pytest.mark.parametrize("width", [1, 2, 5, 9])
def test_dense_grid_against_torch(height, width):
    rng = np.random.default_rng(height * 10 + width)
    x = rng.integers(-2, 3, (2, 2, height, width)).astype(np.float32)  # many ties
    x[rng.random(x.shape) < 0.1] = NAN
    x[rng.random(x.shape) < 0.05] = -INF
    y = rng.standard_normal((2, 2, height, width)).astype(np.float32)
    for oh in range(0, height + 3):
        for ow in sorted({0, 1, 2, width, width + 2}):
            assert_matches_torch(x, (oh, ow))
            assert_matches_torch(y, (oh, ow))


@pytest.mark.parametrize("output_size", [4, (4, None), (None, 3), (None, None), [2, 5]])
def test_int_none_and_list_output_sizes(output_size):
    x = np.random.default_rng(0).standard_normal((3, 14, 9))  # (C, H, W) float64
    assert_matches_torch(x, output_size)
    assert_matches_torch(x[None], output_size)


def test_nan_ties_and_minus_inf_follow_max_pool2d():
    x = np.array(
        [[[5, 5, NAN, 1], [5, 2, 3, NAN], [-INF, -INF, 7, 7], [-INF, -INF, 7, 7]]],
        dtype=np.float32,
    )
    ours, idx = adaptive_max_pool2d(x, 2, return_indices=True)
    ref, ref_idx = pooltools.max_pool2d(x, 2, return_indices=True)  # 4 -> 2 is kernel 2, stride 2
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(idx, ref_idx)
    assert_matches_torch(x, 2)
    assert_matches_torch(x, 3)  # overlapping windows


def test_float16_and_float64():
    rng = np.random.default_rng(3)
    for dtype in (np.float16, np.float64):
        x = rng.standard_normal((2, 3, 11, 7)).astype(dtype)
        for size in [(3, 2), (1, 1), (11, 7), (5, None)]:
            assert_matches_torch(x, size)


def test_large_input_to_global_pooling():
    x = np.random.default_rng(4).standard_normal((2, 8, 32, 32)).astype(np.float32)
    assert_matches_torch(x, 1)
    assert_matches_torch(x, 7)


def test_equivalent_plain_pooling_gives_the_same_values_and_indices():
    x = np.random.default_rng(5).standard_normal((2, 3, 12, 8)).astype(np.float32)
    (kh, sh), (kw, sw) = plain_pool_equivalent(12, 4), plain_pool_equivalent(8, 2)
    ours, idx = adaptive_max_pool2d(x, (4, 2), return_indices=True)
    ref, ref_idx = pooltools.max_pool2d(x, (kh, kw), (sh, sw), return_indices=True)
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(
        adaptive_avg_pool2d(x, (4, 2)), pooltools.avg_pool2d(x, (kh, kw), (sh, sw))
    )


# ----------------------------------------------------------------------------- hypothesis
values = st.one_of(
    st.integers(-3, 3).map(float),  # ties
    st.floats(-1e3, 1e3, width=32),
    st.sampled_from([NAN, INF, -INF]),
)


@st.composite
def adaptive_cases(draw):
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    ndim = draw(st.sampled_from([3, 4]))
    shape = (
        draw(st.integers(1, 3)),
        draw(st.integers(1, 12)),
        draw(st.integers(1, 12)),
    )
    if ndim == 4:
        shape = (draw(st.integers(0, 2)), *shape)
    x = draw(hnp.arrays(dtype, shape, elements=values))
    size = st.one_of(st.none(), st.integers(0, 15))
    output_size = draw(st.one_of(st.integers(0, 15), st.tuples(size, size)))
    return x, output_size


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(adaptive_cases())
def test_random_cases_against_torch(case):
    x, output_size = case
    assert_matches_torch(x, output_size)


# ----------------------------------------------------------------------------- bad inputs
def _good():
    return np.zeros((2, 3, 5, 7), dtype=np.float32)


BAD_INPUTS = [  # (input, output_size): each one refused by PyTorch
    (np.zeros((5, 7), dtype=np.float32), 2),  # 2-D
    (np.zeros((1, 1, 2, 5, 7), dtype=np.float32), 2),  # 5-D
    (np.zeros((2, 3, 0, 7), dtype=np.float32), 2),  # empty H
    (np.zeros((3, 5, 0), dtype=np.float32), 2),  # empty W
    (np.zeros((2, 3, 5, 7), dtype=np.int64), 2),  # integers
    (np.zeros((2, 3, 5, 7), dtype=np.int32), 2),
    (np.zeros((2, 3, 5, 7), dtype=np.uint8), 2),
    (np.zeros((2, 3, 5, 7), dtype=bool), 2),
    (_good(), (2, 3, 4)),  # three sizes
    (_good(), (2,)),
    (_good(), (-1, 3)),  # negative
    (_good(), (2.5, 3)),  # float
    (_good(), (True, 3)),  # bool
    (_good(), None),
]


def _torch_error(x, output_size, kind):
    pool = F.adaptive_max_pool2d if kind == "max" else F.adaptive_avg_pool2d
    try:
        pool(torch.from_numpy(x), output_size)
    except (TypeError, NotImplementedError) as error:
        return TypeError, error
    except (RuntimeError, ValueError) as error:
        return ValueError, error
    return None, None


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", range(len(BAD_INPUTS)))
def test_refuses_what_torch_refuses(kind, case):
    x, output_size = BAD_INPUTS[case]
    expected, torch_error = _torch_error(x, output_size, kind)
    assert expected is not None, f"PyTorch accepted case {case}; the test list is wrong"
    pool = adaptive_max_pool2d if kind == "max" else adaptive_avg_pool2d
    with pytest.raises(expected) as ours:
        pool(x, output_size)
    assert "adaptive" in str(ours.value) or "output_size" in str(ours.value), str(ours.value)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_empty_channels_as_torch(kind):
    # PyTorch's adaptive max pooling refuses C == 0, its average pooling accepts it.
    x = np.zeros((2, 0, 5, 7), dtype=np.float32)
    expected, _ = _torch_error(x, 2, kind)
    if kind == "max":
        assert expected is ValueError
        with pytest.raises(ValueError, match="dimension 1 being empty"):
            adaptive_max_pool2d(x, 2)
    else:
        assert expected is None
        assert adaptive_avg_pool2d(x, 2).shape == torch_adaptive(x, 2, "avg").shape


def test_refuses_lists_and_tensors():
    for bad in ([[[1.0, 2.0]]], torch.zeros(1, 2, 2)):
        with pytest.raises(TypeError, match="numpy.ndarray"):
            adaptive_max_pool2d(bad, 1)
        with pytest.raises(TypeError, match="numpy.ndarray"):
            adaptive_avg_pool2d(bad, 1)
