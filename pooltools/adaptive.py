"""Adaptive max and average pooling from scratch in NumPy, equal to ``torch.nn.functional``.

Adaptive pooling asks for an *output* size instead of a kernel and a stride. Along an axis of
length ``n`` pooled to ``out`` values, window ``i`` covers

    ``start = floor(i * n / out)`` up to (excluding) ``end = ceil((i + 1) * n / out)``

(ATen's ``start_index`` / ``end_index``). The windows cover the whole axis; when ``n`` is not a
multiple of ``out`` their starts are unevenly spaced, their lengths may differ, and neighbours
share a pixel wherever ``(i + 1) * n / out`` is not an integer (with ``out > n`` windows repeat).
When ``n`` is a multiple, the windows are those of a plain pooling with ``kernel = stride = n // out``:
:func:`plain_pool_equivalent` finds the plain kernel and stride whenever one exists.

Conventions (PyTorch's CPU kernels):

* Input ``(C, H, W)`` or ``(N, C, H, W)``, float16/32/64 (PyTorch refuses integers and bools);
  ``output_size`` is an int or a pair whose entries may be ``None`` (keep that size).
* Max: ties go to the first maximum in row-major window order; a NaN wins, and the index is
  that of the window's *last* NaN, exactly as in ``max_pool2d``. Indices are ``h * W + w``.
* Average: each window is summed in row-major order (float16 in float32) and divided by its
  height, then by its width, as ATen does, so the values are equal bit for bit. One exception:
  for ``output_size`` 1×1 PyTorch calls ``mean()``, whose vectorized summation order depends on
  the CPU; we use ``np.mean`` there, equal to a few units in the last place.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np

__all__ = [
    "adaptive_windows",
    "plain_pool_equivalent",
    "adaptive_max_pool2d",
    "adaptive_avg_pool2d",
]

OutputSize = int | None | Sequence[int | None]


# ----------------------------------------------------------------------------- the rule
def adaptive_windows(in_size: int, out_size: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]``: the half-open input range of each of ``out_size`` windows."""
    in_size, out_size = operator.index(in_size), operator.index(out_size)
    if in_size < 1 or out_size < 0:
        raise ValueError(
            f"in_size must be >= 1 and out_size >= 0, but got in_size={in_size}, "
            f"out_size={out_size}"
        )
    return [((i * in_size) // out_size, -(-(i + 1) * in_size // out_size)) for i in range(out_size)]


def plain_pool_equivalent(in_size: int, out_size: int) -> tuple[int, int] | None:
    """``(kernel, stride)`` of the plain pooling with the same windows as adaptive pooling, or None.

    Found by computing the adaptive windows and testing whether they all have one length and
    start at multiples of one step. That holds when ``in_size % out_size == 0`` (``kernel =
    stride = in_size // out_size``) and in a few other cases (e.g. 5 -> 4 is kernel 2, stride
    1); 14 -> 4 has windows of length 4 starting at 0, 3, 7, 10, which no single stride gives.
    """
    windows = adaptive_windows(in_size, out_size)
    if not windows:
        return None
    kernel = windows[0][1] - windows[0][0]
    if len(windows) == 1:
        return kernel, kernel
    stride = windows[1][0] - windows[0][0]  # 0 when out_size > in_size: windows repeat
    same = all(
        start == i * stride and end - start == kernel for i, (start, end) in enumerate(windows)
    )
    return (kernel, stride) if same and stride >= 1 else None


# ----------------------------------------------------------------------------- validation
def _check_input(x: object, name: str, allow_empty_channels: bool) -> np.ndarray:
    """Return ``x`` viewed as 4-D after PyTorch's checks (dtype, rank, non-empty dims)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{name}() expects a numpy.ndarray, but got {type(x).__name__}; convert it first "
            f"with np.asarray(...) (or tensor.numpy() for a PyTorch tensor)"
        )
    if x.dtype.kind != "f":
        raise TypeError(
            f'"{name}" not implemented for dtype {x.dtype}: only float16, float32 and float64 '
            f"are allowed (PyTorch refuses integers and bools too); use x.astype(np.float32)"
        )
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{name}(): expected a 3-D (C, H, W) or 4-D (N, C, H, W) array, but got shape {x.shape}"
        )
    first = x.ndim - (2 if allow_empty_channels else 3)  # the batch size N may be 0
    for dim in range(first, x.ndim):
        if x.shape[dim] == 0:
            raise ValueError(
                f"{name}(): expected input to have non-zero size for non-batch dimensions, but "
                f"input has shape {x.shape} with dimension {dim} being empty"
            )
    return x if x.ndim == 4 else x[None]


def _output_hw(output_size: OutputSize, hw: Sequence[int], name: str) -> tuple[int, int]:
    """``(oh, ow)`` from an int or a pair (``None`` keeps the input's size), checked."""
    if isinstance(output_size, Sequence) and not isinstance(output_size, str):
        items = tuple(output_size)
        if len(items) != 2:
            raise ValueError(
                f"{name}(): output_size must have 2 elements (H, W), but got {len(items)}: "
                f"{output_size!r}"
            )
    elif output_size is None:
        raise TypeError(f"{name}(): output_size must be an int or a pair, not None")
    else:
        items = (output_size, output_size)
    sizes = []
    for item, keep in zip(items, hw, strict=True):
        if item is None:
            sizes.append(keep)
            continue
        if isinstance(item, bool | np.bool_):
            raise TypeError(f"{name}(): output_size must hold ints or None, but got {item!r}")
        try:
            size = operator.index(item)
        except TypeError:
            raise TypeError(
                f"{name}(): output_size must hold ints or None, but got {item!r} of type "
                f"{type(item).__name__}"
            ) from None
        if size < 0:
            raise ValueError(
                f"{name}(): elements of output_size must be greater than or equal to 0, but "
                f"got {tuple(items)}"
            )
        sizes.append(size)
    return sizes[0], sizes[1]


def _bounds(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Window starts and lengths along one axis, as int arrays."""
    windows = np.array(adaptive_windows(in_size, out_size), dtype=np.int64).reshape(-1, 2)
    return windows[:, 0], windows[:, 1] - windows[:, 0]


# ----------------------------------------------------------------------------- max
def _window_max(block: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Max and its offset along ``axis`` with PyTorch's rule: first max, else the last NaN."""
    offset = np.argmax(block, axis=axis)  # first maximum (NaN aside: fixed below)
    nan = np.isnan(block)
    if nan.any():
        length = block.shape[axis]
        last_nan = length - 1 - np.argmax(np.flip(nan, axis=axis), axis=axis)
        offset = np.where(nan.any(axis=axis), last_nan, offset)
    value = np.take_along_axis(block, np.expand_dims(offset, axis), axis=axis)
    return np.squeeze(value, axis), offset


def adaptive_max_pool2d(
    x: np.ndarray, output_size: OutputSize, return_indices: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Adaptive max pooling, equal to ``F.adaptive_max_pool2d`` in values and indices.

    Separable, like ``max_pool2d``: first the max over each window's columns within every row,
    then the max over the window's rows. Taking the first maximum along W and then the first
    along H gives the first maximum in row-major order (and the last NaN, likewise), so the
    indices are PyTorch's. ``oh + ow`` NumPy reductions in all.
    """
    x4 = _check_input(x, "adaptive_max_pool2d", allow_empty_channels=False)
    n_batch, channels, height, width = x4.shape
    oh, ow = _output_hw(output_size, (height, width), "adaptive_max_pool2d")
    # Each row's max over each column window, and the column w where it lies.
    col_val = np.empty((n_batch, channels, height, ow), dtype=x4.dtype)
    col_w = np.empty((n_batch, channels, height, ow), dtype=np.int64)
    for j, (w0, w1) in enumerate(adaptive_windows(width, ow)):
        col_val[..., j], offset = _window_max(x4[..., w0:w1], axis=3)
        col_w[..., j] = offset + w0
    out = np.empty((n_batch, channels, oh, ow), dtype=x4.dtype)
    indices = np.empty((n_batch, channels, oh, ow), dtype=np.int64)
    for i, (h0, h1) in enumerate(adaptive_windows(height, oh)):
        out[:, :, i], offset = _window_max(col_val[:, :, h0:h1], axis=2)  # (N, C, ow)
        w = np.take_along_axis(col_w[:, :, h0:h1], offset[:, :, None], axis=2)[:, :, 0]
        indices[:, :, i] = (offset + h0) * width + w
    if x.ndim == 3:
        out, indices = out[0], indices[0]
    return (out, indices) if return_indices else out


# ----------------------------------------------------------------------------- average
def adaptive_avg_pool2d(x: np.ndarray, output_size: OutputSize) -> np.ndarray:
    """Adaptive average pooling, equal to ``F.adaptive_avg_pool2d`` (see the module notes).

    Each window's sum runs in row-major order, one NumPy addition per window tap over all
    windows at once (a window shorter than the longest adds nothing for its missing taps), then
    is divided by the window's height and then its width, as ATen's CPU kernel does.
    """
    x4 = _check_input(x, "adaptive_avg_pool2d", allow_empty_channels=True)
    oh, ow = _output_hw(output_size, x4.shape[2:], "adaptive_avg_pool2d")
    acc = np.dtype(np.float32) if x4.dtype == np.float16 else x4.dtype
    with np.errstate(invalid="ignore"):  # inf + -inf = NaN, as in PyTorch: no warning
        out = _window_means(x4, oh, ow, acc)
    return _unbatch(out.astype(x4.dtype, copy=False), x)


def _window_means(x4: np.ndarray, oh: int, ow: int, acc: np.dtype) -> np.ndarray:
    """Each window's row-major sum divided by its height, then by its width, in ``acc``."""
    n_batch, channels, height, width = x4.shape
    if (oh, ow) == (1, 1):  # PyTorch's shortcut: input.mean over H and W
        return x4.mean(axis=(2, 3), keepdims=True, dtype=acc)
    h0, kh = _bounds(height, oh)
    w0, kw = _bounds(width, ow)
    total = np.zeros((n_batch, channels, oh, ow), dtype=acc)
    for a in range(int(kh.max(initial=0))):
        rows = np.minimum(h0 + a, height - 1)  # clipped; masked out below where a >= kh
        for b in range(int(kw.max(initial=0))):
            cols = np.minimum(w0 + b, width - 1)
            tap = x4[:, :, rows[:, None], cols[None, :]].astype(acc, copy=False)  # (N, C, oh, ow)
            inside = (a < kh)[:, None] & (b < kw)[None, :]
            np.add(total, tap, out=total, where=inside)
    return total / kh[:, None].astype(acc) / kw[None, :].astype(acc)


def _unbatch(result: np.ndarray, x: np.ndarray) -> np.ndarray:
    return result if x.ndim == 4 else result[0]
