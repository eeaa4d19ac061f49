"""pooltools.pooling against PyTorch itself: values, indices, gradients, unpooling, errors.

Grid tests sweep every small configuration; hypothesis adds random shapes, dtypes, NaN, ±inf
and ties. Where PyTorch refuses a configuration we must refuse it too (with ValueError).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pooltools.pooling import (
    avg_pool2d,
    max_pool2d,
    max_pool2d_backward,
    max_pool2d_naive,
    max_unpool2d,
)

NAN, INF = np.nan, np.inf
SIZES = range(1, 8)  # H and W of the grid tests


# ----------------------------------------------------------------------------- helpers
def torch_max(x: np.ndarray, **kw) -> tuple[np.ndarray, np.ndarray] | None:
    """PyTorch's max pooling (values, indices), or None where PyTorch refuses the settings."""
    try:
        values, indices = F.max_pool2d(torch.from_numpy(x), return_indices=True, **kw)
    except RuntimeError:
        return None
    return values.numpy(), indices.numpy()


def assert_max_matches_torch(x: np.ndarray, naive: bool = True, **kw) -> np.ndarray | None:
    """Ours (vectorized with and without indices, and naive) equal PyTorch, or all refuse."""
    expected = torch_max(x, **kw)
    implementations = [max_pool2d, max_pool2d_naive] if naive else [max_pool2d]
    if expected is None:
        for pool in implementations:
            with pytest.raises(ValueError):
                pool(x, **kw)
        return None
    values, indices = expected
    for pool in implementations:
        ours, our_indices = pool(x, return_indices=True, **kw)
        assert ours.dtype == x.dtype and our_indices.dtype == np.int64
        np.testing.assert_array_equal(ours, values)  # NaN == NaN here
        np.testing.assert_array_equal(our_indices, indices)
        np.testing.assert_array_equal(pool(x, **kw), values)
    return indices


def has_padding_only_window(indices: np.ndarray, input_shape: tuple[int, ...]) -> bool:
    """True where PyTorch's quirk gave an index outside the plane (see max_pool2d's docstring)."""
    return indices.size > 0 and int(indices.max()) >= input_shape[-2] * input_shape[-1]


def assert_backward_matches_autograd(x: np.ndarray, indices: np.ndarray, seed: int, **kw) -> None:
    """Our backward equals autograd (bit for bit), given the same upstream gradient."""
    if has_padding_only_window(indices, x.shape):
        # PyTorch's CPU backward writes out of bounds here (it can crash the process), so we
        # refuse such indices instead of calling it.
        with pytest.raises(ValueError, match="invalid max index"):
            max_pool2d_backward(np.ones(indices.shape, x.dtype), indices, x.shape)
        return
    xt = torch.from_numpy(x).requires_grad_()
    out = F.max_pool2d(xt, **kw)
    grad_out = np.random.default_rng(seed).standard_normal(out.shape).astype(x.dtype)
    out.backward(torch.from_numpy(grad_out))
    ours = max_pool2d_backward(grad_out, indices, x.shape)
    assert ours.dtype == x.dtype and ours.shape == x.shape
    np.testing.assert_array_equal(ours, xt.grad.numpy())


def assert_unpool_matches_torch(values, indices, kernel, stride, padding, output_size=None):
    """Ours equals F.max_unpool2d; where PyTorch refuses (or returns an empty plane), we raise."""
    # PyTorch unpools floats only. For integers we unpool the numbers 1..n as float64 (exact)
    # to learn where each value lands, then look the values up.
    is_int = values.dtype.kind != "f"
    ids = np.arange(1, values.size + 1, dtype=np.float64).reshape(values.shape)
    try:
        expected = F.max_unpool2d(
            torch.from_numpy(ids if is_int else values),
            torch.from_numpy(indices),
            kernel,
            stride,
            padding,
            output_size,
        ).numpy()
    except (ValueError, RuntimeError):
        with pytest.raises(ValueError):
            max_unpool2d(values, indices, kernel, stride, padding, output_size)
        return
    if 0 in expected.shape[-2:]:  # PyTorch silently returns an empty plane; we refuse
        with pytest.raises(ValueError, match="must be positive"):
            max_unpool2d(values, indices, kernel, stride, padding, output_size)
        return
    if is_int:
        landed = expected.astype(np.int64)
        expected = np.where(landed > 0, values.ravel()[landed - 1], 0).astype(values.dtype)
    ours = max_unpool2d(values, indices, kernel, stride, padding, output_size)
    assert ours.dtype == values.dtype
    np.testing.assert_array_equal(ours, expected)


def ties_nans_infs(shape: tuple[int, ...], seed: int, dtype=np.float64) -> np.ndarray:
    """Small integers (many ties) with some NaN, +inf and -inf sprinkled in."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=shape).astype(dtype)
    for value, share in ((NAN, 0.08), (INF, 0.04), (-INF, 0.08)):
        x[rng.random(shape) < share] = value
    return x


GRID = [
    (k, s, p, d, ceil)
    for k, s, d, ceil in itertools.product((1, 2, 3), (1, 2, 3), (1, 2), (False, True))
    for p in range(k // 2 + 1)
]


# ----------------------------------------------------------------------------- hand-checkable
X4 = np.array(
    [[1, 3, 2, 1],
     [4, 6, 5, 0],
     [7, 2, 9, 8],
     [1, 0, 3, 4]], dtype=np.float32
)[None]  # (C=1, H=4, W=4)  # fmt: skip


def test_hand_example_max_avg_backward_unpool():
    values, indices = max_pool2d(X4, 2, return_indices=True)  # 2x2 windows, stride 2
    np.testing.assert_array_equal(values[0], [[6, 5], [7, 9]])
    np.testing.assert_array_equal(indices[0], [[5, 6], [8, 10]])  # h*4 + w of each maximum
    np.testing.assert_array_equal(max_pool2d_naive(X4, 2)[0], [[6, 5], [7, 9]])
    np.testing.assert_array_equal(avg_pool2d(X4, 2)[0], [[3.5, 2.0], [2.5, 6.0]])  # 14/4, ...
    grad = max_pool2d_backward(np.ones_like(values), indices, X4.shape)[0]
    np.testing.assert_array_equal(grad, [[0, 0, 0, 0],
                                         [0, 1, 1, 0],
                                         [1, 0, 1, 0],
                                         [0, 0, 0, 0]])  # fmt: skip
    unpooled = max_unpool2d(values, indices, 2)[0]  # the "switches": maxima back in place
    np.testing.assert_array_equal(unpooled, [[0, 0, 0, 0],
                                             [0, 6, 5, 0],
                                             [7, 0, 9, 0],
                                             [0, 0, 0, 0]])  # fmt: skip


def test_hand_example_overlapping_windows_accumulate_gradient():
    x = np.array([[[1, 2, 3], [4, 9, 5], [6, 7, 8]]], dtype=np.float64)  # 9 wins all 4 windows
    values, indices = max_pool2d(x, 2, stride=1, return_indices=True)
    np.testing.assert_array_equal(values[0], [[9, 9], [9, 9]])
    np.testing.assert_array_equal(indices[0], [[4, 4], [4, 4]])
    grad = max_pool2d_backward(np.ones_like(values), indices, x.shape)
    np.testing.assert_array_equal(grad[0], [[0, 0, 0], [0, 4, 0], [0, 0, 0]])


def test_hand_example_ties_nan_and_padding():
    # Ties: the first maximum in row-major window order wins.
    _, idx = max_pool2d(np.full((1, 2, 2), 3.0), 2, return_indices=True)
    assert idx.item() == 0
    # NaN wins over numbers, and the *last* NaN in window order gives the index (PyTorch).
    v, idx = max_pool2d(np.array([[[1.0, NAN], [NAN, 2.0]]]), 2, return_indices=True)
    assert np.isnan(v.item()) and idx.item() == 2
    # Padding acts as -inf: zero padding would turn every window touching the border into 0.
    x = np.array([[[-1.0, -2.0], [-3.0, -4.0]]])
    np.testing.assert_array_equal(
        max_pool2d(x, 2, stride=1, padding=1)[0],
        [[-1, -1, -2], [-1, -1, -2], [-3, -3, -4]],
    )
    # Average pooling counts zero padding by default, not with count_include_pad=False.
    ones = np.ones((1, 2, 2))
    np.testing.assert_array_equal(avg_pool2d(ones, 2, 1, 1)[0], [[.25, .5, .25],
                                                                 [.5, 1.0, .5],
                                                                 [.25, .5, .25]])  # fmt: skip
    np.testing.assert_array_equal(
        avg_pool2d(ones, 2, 1, 1, count_include_pad=False)[0], np.ones((3, 3))
    )


# ----------------------------------------------------------------------------- dense grids
@pytest.mark.parametrize("k, s, p, d, ceil", GRID)
def test_max_pool_grid_matches_torch(k, s, p, d, ceil):
    kw = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    for h, w in itertools.product(SIZES, SIZES):
        x = ties_nans_infs((1, 2, h, w), seed=h * 10 + w)
        assert_max_matches_torch(x, **kw)


@pytest.mark.parametrize("k, s, p, d, ceil", GRID)
def test_backward_grid_matches_autograd(k, s, p, d, ceil):
    kw = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    for h, w in itertools.product(SIZES, SIZES):  # float32 here; float64 in the random test
        x = np.random.default_rng(h * 10 + w).integers(-3, 4, (2, 2, h, w)).astype(np.float32)
        expected = torch_max(x, **kw)
        if expected is not None:  # ties included: the gradient follows PyTorch's argmax
            assert_backward_matches_autograd(x, expected[1], seed=h + w, **kw)


@pytest.mark.parametrize("k, s, p, d, ceil", GRID)
def test_unpool_grid_matches_torch(k, s, p, d, ceil):
    for h, w in itertools.product(SIZES, SIZES):
        x = np.random.default_rng(h * 10 + w).standard_normal((2, 2, h, w))
        expected = torch_max(x, kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
        if expected is None:
            continue
        values, indices = expected
        for output_size in (None, (h, w), x.shape):
            assert_unpool_matches_torch(values, indices, k, s, p, output_size)


@pytest.mark.parametrize("k, s, p, ceil", sorted({(k, s, p, c) for k, s, p, _, c in GRID}))
def test_avg_pool_grid_matches_torch(k, s, p, ceil):
    for h, w in itertools.product(SIZES, SIZES):  # float32 here; float64 in the random test
        x = np.random.default_rng(h * 10 + w).standard_normal((2, 2, h, w)).astype(np.float32)
        for include_pad, divisor in itertools.product((True, False), (None, -3)):
            kw = dict(
                kernel_size=k,
                stride=s,
                padding=p,
                ceil_mode=ceil,
                count_include_pad=include_pad,
                divisor_override=divisor,
            )
            try:
                expected = F.avg_pool2d(torch.from_numpy(x), **kw).numpy()
            except RuntimeError:
                with pytest.raises(ValueError):
                    avg_pool2d(x, **kw)
                continue
            ours = avg_pool2d(x, **kw)
            assert ours.dtype == x.dtype
            # Same summation order and divisor as PyTorch's CPU kernel: equal bit for bit.
            np.testing.assert_array_equal(ours, expected)


# ----------------------------------------------------------------------------- hypothesis
FLOAT_VALUES = st.sampled_from([-2.0, -1.0, 0.0, 1.0, 2.0, NAN, INF, -INF])


@st.composite
def pool_cases(draw, dtypes=(np.float32, np.float64, np.int32, np.int64, np.int8, np.uint8)):
    """A random input (3-D or 4-D, maybe N=0) and PyTorch-style pooling arguments."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    lead = draw(st.sampled_from([(), (0,), (1,), (2,)]))
    shape = (*lead, draw(st.integers(1, 3)), draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    if dtype.kind == "f":
        elements = FLOAT_VALUES
    else:
        info = np.iinfo(dtype)
        elements = st.sampled_from([int(info.min), int(info.max), 0, 1, 2, 3])
    x = draw(hnp.arrays(dtype, shape, elements=elements))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    args = dict(
        kernel_size=(kh, kw) if draw(st.booleans()) else kh,
        stride=draw(
            st.one_of(st.none(), st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4)))
        ),
        padding=(draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))),
        ceil_mode=draw(st.booleans()),
    )
    return x, args, draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pool_cases())
def test_max_pool_random_matches_torch(case):
    x, args, dilation = case
    kw = dict(args, dilation=dilation)
    indices = assert_max_matches_torch(x, naive=x.size <= 200, **kw)
    if indices is None:
        return
    values = max_pool2d(x, **kw)
    kernel = args["kernel_size"]
    stride = args["stride"] if args["stride"] is not None else kernel
    assert_unpool_matches_torch(values, indices, kernel, stride, args["padding"], x.shape[-2:])
    if x.dtype.kind == "f":
        clean = np.nan_to_num(x, nan=0.5, posinf=3.0, neginf=-3.0)  # finite for autograd
        assert_backward_matches_autograd(clean, torch_max(clean, **kw)[1], seed=x.size, **kw)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pool_cases(dtypes=(np.float32, np.float64)), st.booleans(), st.sampled_from([None, 1, 5]))
def test_avg_pool_random_matches_torch(case, include_pad, divisor):
    x, args, _ = case
    kw = dict(args, count_include_pad=include_pad, divisor_override=divisor)
    try:
        expected = F.avg_pool2d(torch.from_numpy(x), **kw).numpy()
    except RuntimeError:
        with pytest.raises(ValueError):
            avg_pool2d(x, **kw)
        return
    np.testing.assert_array_equal(avg_pool2d(x, **kw), expected)  # NaN and inf included


# ----------------------------------------------------------------------------- dtypes, layout
@pytest.mark.parametrize(
    "dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint16, np.float16]
)
def test_max_pool_other_dtypes_match_torch(dtype):
    rng = np.random.default_rng(0)
    if np.dtype(dtype).kind == "f":
        x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        x = rng.choice([info.min, info.min + 1, 0, info.max], size=(2, 3, 7, 6)).astype(dtype)
    if dtype == np.uint16:  # PyTorch has no max pooling for uint16: compare through int64
        expected = F.max_pool2d(torch.from_numpy(x.astype(np.int64)), 3, 2, 1, ceil_mode=True)
        np.testing.assert_array_equal(max_pool2d(x, 3, 2, 1, ceil_mode=True), expected.numpy())
        return
    assert_max_matches_torch(x, kernel_size=3, stride=2, padding=1, ceil_mode=True)
    assert_max_matches_torch(x, kernel_size=2, stride=1, padding=1, dilation=2)


def test_avg_pool_float16_matches_torch():
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6)).astype(np.float16)
    expected = F.avg_pool2d(torch.from_numpy(x), 3, 2, 1, ceil_mode=True).numpy()
    np.testing.assert_array_equal(avg_pool2d(x, 3, 2, 1, ceil_mode=True), expected)


def test_non_contiguous_input_and_unbatched_input():
    base = ties_nans_infs((3, 2, 9, 8), seed=1)
    x = base.transpose(1, 0, 3, 2)[:, :, ::2]  # a strided, transposed view
    assert_max_matches_torch(np.ascontiguousarray(x), kernel_size=3, stride=2, padding=1)
    np.testing.assert_array_equal(max_pool2d(x, 3, 2, 1), max_pool2d(x.copy(), 3, 2, 1))
    np.testing.assert_array_equal(
        avg_pool2d(x, 2, 1, 1), F.avg_pool2d(torch.from_numpy(x.copy()), 2, 1, 1).numpy()
    )
    values, indices = max_pool2d(base[0], 2, return_indices=True)  # (C, H, W) in, 3-D out
    assert values.shape == (2, 4, 4) and indices.shape == (2, 4, 4)
    assert max_unpool2d(values, indices, 2).shape == (2, 8, 8)
    assert max_pool2d_backward(np.ones_like(values), indices, base[0].shape).shape == (2, 9, 8)


def test_inputs_are_not_modified():
    x = ties_nans_infs((2, 2, 6, 6), seed=3)
    before = x.copy()
    max_pool2d(x, 3, 1, 1)
    max_pool2d(x, 3, 1, 1, return_indices=True)
    avg_pool2d(x, 3, 1, 1)
    np.testing.assert_array_equal(x, before)


# ----------------------------------------------------------------------------- bad input
X = np.zeros((1, 1, 4, 4), dtype=np.float32)
IDX = np.zeros((1, 1, 2, 2), dtype=np.int64)
G = np.zeros((1, 1, 2, 2), dtype=np.float32)

BAD_INPUTS = [
    # (call, error, message: what was wrong or what is allowed)
    (lambda: max_pool2d(X.tolist(), 2), TypeError, "must be a numpy.ndarray"),
    (lambda: max_pool2d(torch.zeros(1, 1, 4, 4), 2), TypeError, r"tensor.numpy\(\)"),
    (lambda: max_pool2d(X.astype(bool), 2), TypeError, "signed/unsigned integers or float16"),
    (lambda: max_pool2d(X.astype(complex), 2), TypeError, "only signed/unsigned integers"),
    (lambda: max_pool2d(X[0, 0], 2), ValueError, r"3-D \(C, H, W\) or 4-D \(N, C, H, W\)"),
    (lambda: max_pool2d(X[None], 2), ValueError, r"but got 5-D"),
    (lambda: max_pool2d(X[:, :0], 2), ValueError, "must be non-zero"),
    (lambda: max_pool2d(X, 0), ValueError, "kernel_size must be greater than zero"),
    (lambda: max_pool2d(X, 2, stride=0), ValueError, "stride must be greater than zero"),
    (lambda: max_pool2d(X, 2, dilation=(1, 0)), ValueError, "dilation must be greater than"),
    (lambda: max_pool2d(X, 3, padding=2), ValueError, r"at most half of kernel_size"),
    (lambda: max_pool2d(X, 2, padding=-1), ValueError, "must be non-negative"),
    (lambda: max_pool2d(X, 5), ValueError, "output size is too small"),
    (lambda: max_pool2d_naive(X, 5), ValueError, "output size is too small"),
    (lambda: max_pool2d(X, 2.0), TypeError, "int or a pair of ints"),
    (lambda: max_pool2d(X, (2, 2, 2)), TypeError, "int or a pair of ints"),
    (lambda: avg_pool2d(X.astype(np.int64), 2), TypeError, "float16, float32 or float64"),
    (lambda: avg_pool2d(X, 2, divisor_override=0), ValueError, "non-zero int"),
    (lambda: avg_pool2d(X, 3, padding=2), ValueError, "at most half of kernel_size"),
    (lambda: max_pool2d_backward(G, IDX[..., :1], X.shape), ValueError, "shape of grad_output"),
    (lambda: max_pool2d_backward(G.astype(int), IDX, X.shape), TypeError, "float16, float32"),
    (lambda: max_pool2d_backward(G, IDX * 1.0, X.shape), TypeError, "integers"),
    (lambda: max_pool2d_backward(G, IDX, (1, 2, 4, 4)), ValueError, "leading"),
    (lambda: max_pool2d_backward(G, IDX + 16, X.shape), ValueError, r"in \[0, 16\)"),
    (lambda: max_pool2d_backward(G, IDX - 1, X.shape), ValueError, r"in \[0, 16\)"),
    (lambda: max_unpool2d(G, IDX[..., :1], 2), ValueError, "shape of the input"),
    (lambda: max_unpool2d(G, IDX * 1.0, 2), TypeError, "integers"),
    (lambda: max_unpool2d(G, IDX, 2, output_size=(1, 4, 4)), ValueError, r"2 \(H, W\) or 4"),
    (lambda: max_unpool2d(G, IDX, 2, output_size=(6, 4)), ValueError, "strictly between 2 and 6"),
    (lambda: max_unpool2d(G, IDX + 16, 2), ValueError, r"in \[0, 16\)"),
    (lambda: max_unpool2d(G, IDX, 0), ValueError, "kernel_size must be greater than zero"),
    (
        lambda: max_unpool2d(G[..., :1, :1], IDX[..., :1, :1], 2, padding=1),
        ValueError,
        "must be positive",
    ),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUTS)
def test_bad_input_gives_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize(
    "kw",
    [
        dict(kernel_size=0),
        dict(kernel_size=2, stride=0),
        dict(kernel_size=2, dilation=0),
        dict(kernel_size=3, padding=2),
        dict(kernel_size=5),
    ],
)
def test_settings_we_refuse_are_refused_by_torch_too(kw):
    with pytest.raises((RuntimeError, ValueError)):
        F.max_pool2d(torch.from_numpy(X), **kw)
    with pytest.raises(ValueError):
        max_pool2d(X, **kw)
