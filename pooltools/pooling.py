"""Max pooling, its backward pass, average pooling and max unpooling, from scratch in NumPy.

Every function follows ``torch.nn.functional`` exactly (same shapes, same values, same
argmax indices), so a notebook can put the two side by side. Two versions of max pooling:

* ``max_pool2d_naive``: loops over every output pixel and its window; read this first.
* ``max_pool2d``: the same result with a few whole-array NumPy operations per kernel offset.

Conventions (PyTorch's):

* Input is ``(C, H, W)`` or ``(N, C, H, W)``; the output has the same rank.
* Padding never wins a max: it acts as ``-inf`` (the dtype's minimum for integers).
* Ties go to the first maximum in row-major window order; a window holding NaN gives NaN, and
  its index is the *last* NaN in window order (PyTorch replaces its running max by every NaN).
* An index is ``h * W + w`` inside one unpadded input plane, as ``int64``.

Inputs must be NumPy arrays of a real numeric dtype (signed/unsigned integers, float16/32/64).
Lists, tensors and bool arrays raise ``TypeError``: the output keeps the input's dtype, so we
refuse to guess one (``np.asarray([[1, 2]])`` would silently be int64), and PyTorch refuses
bool too. ``avg_pool2d`` takes floating-point arrays only (see its docstring).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from pooltools.shapes import IntOrPair, Pair, PoolParams, first_real_tap

__all__ = [
    "max_pool2d",
    "max_pool2d_naive",
    "max_pool2d_backward",
    "avg_pool2d",
    "max_unpool2d",
]



# ----------------------------------------------------------------------------- validation
def _check_array(x: object, name: str, kinds: str = "iuf") -> np.ndarray:
    """Return ``x`` if it is a NumPy array whose dtype kind is in ``kinds``, else raise TypeError."""
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy.ndarray, but got {type(x).__name__}; convert it first with "
            f"np.asarray(...) (or tensor.numpy() for a PyTorch tensor)"
        )
    if x.dtype.kind not in kinds:
        allowed = {
            "iuf": "signed/unsigned integers or float16/float32/float64",
            "f": "float16, float32 or float64",
            "iu": "integers (int64 like PyTorch's indices)",
        }[kinds]
        raise TypeError(f"{name} has dtype {x.dtype}, but only {allowed} are allowed")
    return x


def _as_batch(x: np.ndarray, name: str) -> np.ndarray:
    """View a ``(C, H, W)`` or ``(N, C, H, W)`` array as 4-D, checking C, H and W are non-zero."""
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{name} must be 3-D (C, H, W) or 4-D (N, C, H, W), but got {x.ndim}-D with "
            f"shape {x.shape}"
        )
    if 0 in x.shape[-3:]:
        raise ValueError(
            f"{name} has shape {x.shape}: C, H and W must be non-zero (only the batch size N "
            f"may be 0)"
        )
    return x if x.ndim == 4 else x[None]


def _pool_setup(
    x: object,
    kernel_size: IntOrPair,
    stride: IntOrPair | None,
    padding: IntOrPair,
    dilation: IntOrPair,
    ceil_mode: bool,
    kinds: str = "iuf",
) -> tuple[np.ndarray, Pair, Pair, Pair, Pair, Pair]:
    """Validate everything once; return ``(x4, kernel, stride, padding, dilation, out_hw)``."""
    x4 = _as_batch(_check_array(x, "input", kinds), "input")
    params = PoolParams.of(kernel_size, stride, padding, dilation, ceil_mode)
    out_hw = params.output_shape(x4.shape)
    return x4, params.kernel_size, params.stride, params.padding, params.dilation, out_hw


def _lowest(dtype: np.dtype) -> float | int:
    """The value that never wins a max: ``-inf`` for floats, the minimum for integers."""
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _axis_slices(out_size: int, in_size: int, stride: int, offset: int) -> tuple[slice, slice]:
    """Which outputs ``o`` read a real input pixel at ``o*stride + offset``, and which pixels.

    Returns ``(out_slice, in_slice)``; outputs outside ``out_slice`` would read padding (or past
    the end, with ``ceil_mode``) for this kernel offset. Both slices may be empty.
    """
    first = max(0, -(offset // stride))  # smallest o with o*stride + offset >= 0
    last = (in_size - 1 - offset) // stride  # largest o with o*stride + offset <= in_size - 1
    stop = min(out_size, last + 1) if in_size - 1 - offset >= 0 else 0
    stop = max(stop, first)
    start_in = first * stride + offset
    return slice(first, stop), slice(start_in, start_in + (stop - first - 1) * stride + 1, stride)


def _offsets(
    kernel: int, stride: int, pad: int, dil: int, in_size: int, out_size: int
) -> Iterator[tuple[slice, slice, bool]]:
    """``(out_slice, in_slice, covers_all)`` for each kernel offset along one axis."""
    for a in range(kernel):
        o, i = _axis_slices(out_size, in_size, stride, a * dil - pad)
        yield o, i, o.start == 0 and o.stop == out_size


def _unbatch(result: np.ndarray, x: np.ndarray) -> np.ndarray:
    return result if x.ndim == 4 else result[0]


# ----------------------------------------------------------------------------- max pooling
def max_pool2d_naive(
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Max pooling with plain loops: for each output pixel, scan its window. Slow but obvious.

    Same arguments and results as ``max_pool2d`` (and ``torch.nn.functional.max_pool2d``).
    """
    x4, (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = _pool_setup(
        x, kernel_size, stride, padding, dilation, ceil_mode
    )
    n_batch, channels, height, width = x4.shape
    out = np.empty((n_batch, channels, oh, ow), dtype=x4.dtype)  # (N, C, oh, ow)
    indices = np.empty((n_batch, channels, oh, ow), dtype=np.int64)  # flat h*W + w per plane
    for n in range(n_batch):
        for c in range(channels):
            for i in range(oh):
                for j in range(ow):
                    # Like PyTorch: start from -inf at the window's first pixel that is not
                    # top/left padding, then scan the window in row-major order.
                    best = _lowest(x4.dtype)
                    best_at = first_real_tap(i * sh - ph, dh) * width + first_real_tap(j * sw - pw, dw)
                    for a in range(kh):
                        for b in range(kw):
                            h = i * sh - ph + a * dh  # row in the *unpadded* input
                            w = j * sw - pw + b * dw
                            if not (0 <= h < height and 0 <= w < width):
                                continue  # padding: never the maximum
                            value = x4[n, c, h, w]
                            # Replace only if bigger (so ties keep the first) or NaN (so NaN
                            # spreads, and the last NaN wins, as in PyTorch).
                            if value > best or np.isnan(value):
                                best, best_at = value, h * width + w
                    out[n, c, i, j] = best
                    indices[n, c, i, j] = best_at
    out, indices = _unbatch(out, x), _unbatch(indices, x)
    return (out, indices) if return_indices else out


def max_pool2d(
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Max pooling of ``(C, H, W)`` or ``(N, C, H, W)`` arrays, equal to ``F.max_pool2d``.

    Vectorized: whole-array NumPy operations per kernel offset, never a loop over pixels. Without
    indices, the max is *separable*: the max over a ``kh x kw`` window is the max over its
    ``kw`` columns of the max over its ``kh`` rows, so we reduce rows first (reading whole
    contiguous rows) and then columns: ``kh + kw`` passes instead of ``kh * kw``. Padding is
    never materialized: each offset only updates the outputs whose pixel lies inside the input.

    Returns the pooled array (same dtype, same rank) and, with ``return_indices``, int64 argmax
    indices ``h * W + w`` into each input plane, as PyTorch. (The sign of a zero maximum, -0.0
    versus 0.0, may differ from PyTorch's; the values compare equal.)

    PyTorch quirk, reproduced: with dilation a window can hold only padding (``kernel_size=2,
    padding=1, dilation=2`` on a 1-pixel-wide input). Its max is ``-inf`` (the dtype's minimum
    for integers) and its index is that of the first tap after the top/left padding, which
    lies outside the plane. ``max_pool2d_backward`` and ``max_unpool2d`` refuse such indices
    with a ValueError (PyTorch's CPU backward writes out of bounds there).
    """
    x4, kernel, step, pad, dil, out_hw = _pool_setup(
        x, kernel_size, stride, padding, dilation, ceil_mode
    )
    if return_indices:
        out, indices = _max_pool_with_indices(x4, kernel, step, pad, dil, out_hw)
        return _unbatch(out, x), _unbatch(indices, x)
    rows = _max_along(x4, 2, kernel[0], step[0], pad[0], dil[0], out_hw[0])  # (N, C, oh, W)
    out = _max_along(rows, 3, kernel[1], step[1], pad[1], dil[1], out_hw[1])  # (N, C, oh, ow)
    return _unbatch(out, x)


def _max_along(
    x: np.ndarray, axis: int, kernel: int, stride: int, pad: int, dil: int, out_size: int
) -> np.ndarray:
    """1-D max pooling of a 4-D array along ``axis`` (2 or 3) with ``np.maximum(..., out=)``."""

    def along(s: slice) -> tuple[slice, ...]:
        return (slice(None),) * axis + (s,)

    offsets = list(_offsets(kernel, stride, pad, dil, x.shape[axis], out_size))
    full = [i for o, i, covers in offsets if covers]
    partial = [(o, i) for o, i, covers in offsets if not covers and o.stop > o.start]
    if len(full) >= 2:  # the common case: the first max allocates the output, no extra copy
        out = np.maximum(x[along(full[0])], x[along(full[1])])
        full = full[2:]
    elif full:
        out = x[along(full.pop())].copy()
    else:  # no offset reaches every output (e.g. kernel 2 with padding 1): start from "-inf"
        shape = list(x.shape)
        shape[axis] = out_size
        out = np.full(shape, _lowest(x.dtype), dtype=x.dtype)
    for i in full:
        np.maximum(out, x[along(i)], out=out)
    for o, i in partial:
        np.maximum(out[along(o)], x[along(i)], out=out[along(o)])
    return out


def _max_pool_with_indices(
    x4: np.ndarray,
    kernel: Pair,
    step: Pair,
    pad: Pair,
    dil: Pair,
    out_hw: Pair,
) -> tuple[np.ndarray, np.ndarray]:
    """Max and argmax with PyTorch's exact rule, vectorized over a loop of kernel offsets.

    PyTorch starts each window at ``(-inf, first real pixel)`` and replaces the running max by
    every pixel that is bigger or NaN. We do the same for all windows at once, remembering the
    winning *tap* (kernel offset ``a * kw + b``, one byte) and turning taps into flat indices
    ``h * W + w`` once at the end: cheaper than moving int64 indices on every update.
    """
    n_batch, channels, height, width = x4.shape
    (kh, kw), (oh, ow) = kernel, out_hw
    best = np.full((n_batch, channels, oh, ow), _lowest(x4.dtype), dtype=x4.dtype)
    # Each window's first real (non-padding) tap: where the scan starts, the tie-break default.
    first_a = _first_real_tap(oh, step[0], pad[0], dil[0])  # (oh,)
    first_b = _first_real_tap(ow, step[1], pad[1], dil[1])  # (ow,)
    taps = np.empty((n_batch, channels, oh, ow), dtype=np.min_scalar_type(kh * kw - 1))
    taps[...] = first_a[:, None] * kw + first_b[None, :]
    has_nan = x4.dtype.kind == "f" and bool(np.isnan(x4).any())  # else skip the NaN rule
    take_buffer = np.empty(best.shape, dtype=bool)
    for a, (oi, ii, _) in enumerate(_offsets(kh, step[0], pad[0], dil[0], height, oh)):
        for b, (oj, ij, _) in enumerate(_offsets(kw, step[1], pad[1], dil[1], width, ow)):
            if oi.stop == oi.start or oj.stop == oj.start:
                continue
            new = x4[:, :, ii, ij]  # (N, C, rows, cols): this tap's pixel in each window
            cur = best[:, :, oi, oj]  # views: updating them updates best and taps
            take = np.greater(new, cur, out=take_buffer[:, :, oi, oj])
            if has_nan:
                take |= np.isnan(new)
            np.maximum(cur, new, out=cur)  # the same values as "take new where take"
            # "taps = tap where take": tap numbers only grow along the scan, and no window
            # takes a tap before its first real one, so a max does it (and is ~5x faster
            # than np.copyto(..., where=take)).
            tap = taps.dtype.type(a * kw + b)
            view = taps[:, :, oi, oj]
            np.maximum(view, take.view(np.uint8) * tap, out=view)
    # Tap number -> flat index h * W + w, through a small table of shape (kh * kw, oh, ow).
    tap_a, tap_b = np.divmod(np.arange(kh * kw), kw)
    rows = np.arange(oh)[None, :] * step[0] - pad[0] + tap_a[:, None] * dil[0]  # (taps, oh)
    cols = np.arange(ow)[None, :] * step[1] - pad[1] + tap_b[:, None] * dil[1]  # (taps, ow)
    table = rows[:, :, None] * width + cols[:, None, :]  # (taps, oh, ow)
    position = taps.astype(np.int64)
    position *= oh * ow
    position += np.arange(oh * ow).reshape(oh, ow)
    return best, np.take(table.ravel(), position)


def _first_real_tap(out_size: int, stride: int, pad: int, dil: int) -> np.ndarray:
    """Number of the first tap at or after coordinate 0 in each window (PyTorch's ``ih0``)."""
    start = np.arange(out_size) * stride - pad
    return (first_real_tap(start, dil) - start) // dil


# ----------------------------------------------------------------------------- backward
def max_pool2d_backward(
    grad_output: np.ndarray, indices: np.ndarray, input_shape: Sequence[int]
) -> np.ndarray:
    """Gradient of max pooling w.r.t. its input: each output's gradient goes to its argmax.

    Where windows overlap (stride < kernel) one input pixel can be the argmax of several
    outputs; its gradient is the sum of theirs. ``np.add.at`` does that scatter-add on the
    flattened input (plain ``grad[idx] += g`` would keep only one of the repeated updates). It
    adds in the same order as PyTorch, so the result equals autograd's bit for bit. (With
    NumPy >= 1.25 ``np.add.at`` is also about twice as fast here as ``np.bincount``, which
    accumulates in float64 and needs a cast back.)
    """
    grad = _check_array(grad_output, "grad_output", "f")
    idx = _check_array(indices, "indices", "iu")
    if idx.shape != grad.shape:
        raise ValueError(
            f"indices must have the shape of grad_output {grad.shape}, but got {idx.shape}"
        )
    _as_batch(grad, "grad_output")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != grad.ndim or shape[:-2] != grad.shape[:-2] or min(shape[-2:]) < 1:
        raise ValueError(
            f"input_shape {shape} does not fit grad_output {grad.shape}: it must have the same "
            f"rank and leading (N, C) dims, and a positive H and W"
        )
    plane = shape[-2] * shape[-1]
    planes = int(np.prod(shape[:-2]))
    _check_index_range(idx, plane, shape[-2:])
    # Flat position in the whole input: plane number * plane size + index inside the plane.
    per_plane = grad.shape[-2] * grad.shape[-1]  # explicit: reshape(0, -1) fails when N == 0
    flat = idx.reshape(planes, per_plane) + (np.arange(planes, dtype=np.int64) * plane)[:, None]
    grad_input = np.zeros(planes * plane, dtype=grad.dtype)
    np.add.at(grad_input, flat.ravel(), grad.ravel())
    return grad_input.reshape(shape)


def _check_index_range(idx: np.ndarray, plane: int, hw: Sequence[int]) -> None:
    """Refuse indices outside a plane (a negative one would silently wrap into another plane)."""
    if idx.size == 0:
        return
    # One pass instead of min() and max(): viewed as unsigned, negative indices become huge.
    unsigned = idx.view(f"u{idx.dtype.itemsize}") if idx.dtype.kind == "i" else idx
    if int(unsigned.max()) >= plane:
        low, high = int(idx.min()), int(idx.max())
        bad = low if low < 0 else high
        raise ValueError(
            f"found an invalid max index {int(bad)}: planes are {hw[0]}x{hw[1]}, so indices "
            f"must lie in [0, {plane})"
        )


# ----------------------------------------------------------------------------- average
def avg_pool2d(
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> np.ndarray:
    """Average pooling, equal to ``F.avg_pool2d`` (bit for bit on float32/float64 in our tests).

    Each window's sum runs in PyTorch's order (row-major, from 0; float16 in float32) and is
    divided by PyTorch's divisor:

    * ``divisor_override`` if given (any non-zero int);
    * with ``count_include_pad`` (default): the window size after clipping it at the *padded*
      end ``size + padding``, so zero padding counts but a ``ceil_mode`` overhang does not;
    * otherwise: the number of real (non-padding) pixels in the window.

    Floating-point input only: an average of integers is not an integer, and PyTorch refuses
    int8/16/32 (and truncates for int64). Convert first with ``x.astype(np.float32)``.
    """
    x4, kernel, step, pad, _, (oh, ow) = _pool_setup(
        x, kernel_size, stride, padding, 1, ceil_mode, kinds="f"
    )
    if divisor_override is not None and (
        isinstance(divisor_override, bool)
        or not isinstance(divisor_override, (int, np.integer))
        or divisor_override == 0
    ):
        raise ValueError(
            f"divisor_override must be None or a non-zero int, but got {divisor_override!r}"
        )
    acc_dtype = np.float32 if x4.dtype == np.float16 else x4.dtype
    total = np.zeros((x4.shape[0], x4.shape[1], oh, ow), dtype=acc_dtype)  # (N, C, oh, ow)
    with np.errstate(invalid="ignore"):  # inf + -inf = NaN, as in PyTorch: no warning
        for oi, ii, _ in _offsets(kernel[0], step[0], pad[0], 1, x4.shape[2], oh):
            for oj, ij, _ in _offsets(kernel[1], step[1], pad[1], 1, x4.shape[3], ow):
                if oi.stop > oi.start and oj.stop > oj.start:
                    view = total[:, :, oi, oj]
                    np.add(view, x4[:, :, ii, ij], out=view)
    rows_pad, rows_real = _window_counts(oh, x4.shape[2], kernel[0], step[0], pad[0])
    cols_pad, cols_real = _window_counts(ow, x4.shape[3], kernel[1], step[1], pad[1])
    real = rows_real[:, None] * cols_real[None, :]  # (oh, ow)
    if divisor_override is not None:
        divisor = np.full((oh, ow), int(divisor_override))
    elif count_include_pad:
        divisor = rows_pad[:, None] * cols_pad[None, :]
    else:
        divisor = real
    safe = np.where(divisor == 0, 1, divisor).astype(acc_dtype)
    out = np.where(real > 0, total / safe, 0)  # a window of padding only gives 0, like torch
    return _unbatch(out.astype(x4.dtype, copy=False), x)


def _window_counts(
    out_size: int, in_size: int, kernel: int, stride: int, pad: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per output along one axis: window length clipped at ``in_size + pad``, and real pixels."""
    start = np.arange(out_size) * stride - pad
    end = np.minimum(start + kernel, in_size + pad)
    real = np.minimum(end, in_size) - np.maximum(start, 0)
    return end - start, np.maximum(real, 0)


# ----------------------------------------------------------------------------- unpooling
def max_unpool2d(
    x: np.ndarray,
    indices: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    output_size: Sequence[int] | None = None,
) -> np.ndarray:
    """Put each pooled value back where its max came from; zeros elsewhere (``F.max_unpool2d``).

    These are the "switches" of Zeiler & Fergus (2014): the indices from
    ``max_pool2d(..., return_indices=True)`` remember where each maximum was, so unpooling
    gives a sparse map of the input's winning pixels. The output is ``(..., H, W)`` with
    ``H = (h_in - 1) * stride - 2 * padding + kernel`` unless ``output_size`` is given, as
    ``(H, W)`` or with two leading dims ``(N, C, H, W)``, strictly within ``stride`` of that
    default (PyTorch's rule: several input sizes pool to the same output size). Where indices
    repeat, the last value wins, as in PyTorch on the CPU. Any numeric dtype works (PyTorch's
    CPU unpooling takes floating point only); an unpooled size below 1 raises ValueError
    (PyTorch returns an empty plane).
    """
    values = _as_batch(_check_array(x, "input"), "input")
    idx = _check_array(indices, "indices", "iu")
    if idx.shape != x.shape:
        raise ValueError(f"indices must have the shape of the input {x.shape}, but got {idx.shape}")
    params = PoolParams.of(kernel_size, stride, padding, unpooling=True)
    kernel, step, pad = params.kernel_size, params.stride, params.padding
    default = [(values.shape[2 + d] - 1) * step[d] + kernel[d] - 2 * pad[d] for d in range(2)]
    if output_size is None:
        size = default
    else:
        size = [int(s) for s in output_size]
        if len(size) == 4:
            size = size[2:]
        if len(size) != 2:
            raise ValueError(
                f"output_size should be a sequence of 2 (H, W) or 4 (N, C, H, W) elements, but "
                f"it has {len(size)}: {tuple(output_size)}"
            )
        for d in range(2):
            low, high = default[d] - step[d], default[d] + step[d]
            if not low < size[d] < high:
                raise ValueError(
                    f"invalid output_size {tuple(output_size)}: dim {d} must be strictly between "
                    f"{low} and {high}"
                )
    if min(size) < 1:
        raise ValueError(f"the unpooled size {tuple(size)} must be positive in H and W")
    planes = values.shape[0] * values.shape[1]
    plane = size[0] * size[1]
    _check_index_range(idx, plane, size)
    out = np.zeros((planes, plane), dtype=values.dtype)  # one flat row per (n, c) plane
    per_plane = values.shape[2] * values.shape[3]  # explicit: reshape(0, -1) fails when N == 0
    out[np.arange(planes)[:, None], idx.reshape(planes, per_plane)] = values.reshape(
        planes, per_plane
    )
    return _unbatch(out.reshape(values.shape[0], values.shape[1], *size), x)
