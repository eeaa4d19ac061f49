"""Pooling parameters and the geometry of pooling and convolution.

One home for the arithmetic every other module needs: :class:`PoolParams` is the only place that
normalizes and validates pooling parameters (every spelling PyTorch accepts: ``2``, ``(2,)``,
``(2, 3)``, ``stride=None`` or ``()`` for "the kernel size"); it knows each window's taps and
the output shape. Around it: the output-size rule of one axis, the first tap of a window that
lies inside the image, the input rows no window reaches, a whole call's layout
(:func:`arithmetic`), and receptive fields.

Everything follows PyTorch's own rules (``pooling_output_shape`` and ``pool2d_shape_check`` in
ATen), so a notebook can predict a shape before it asks PyTorch.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "IntOrPair",
    "Pair",
    "PoolArgs",
    "PoolParams",
    "pair",
    "pair_text",
    "pool_output_size",
    "first_real_tap",
    "argmax_cells",
    "never_covered",
    "uncovered",
    "Arithmetic",
    "arithmetic",
    "ReceptiveField",
    "leaf_modules",
    "receptive_field",
]

IntOrPair = int | Sequence[int]
Pair = tuple[int, int]


class PoolArgs(TypedDict, total=False):
    """The keyword arguments of a 2-D pooling call, as ``F.max_pool2d`` spells them; drawing
    functions take them as ``**pool`` and turn them into a :class:`PoolParams` once."""

    kernel_size: IntOrPair
    stride: IntOrPair | None
    padding: IntOrPair
    dilation: IntOrPair
    ceil_mode: bool


def pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """Return ``(h, w)`` from an int, a 1-element or a 2-element sequence, as PyTorch's pooling
    accepts them (``F.max_pool2d(x, (2,))`` pools 2x2), with a clear error otherwise.

    Any integer type is accepted (``int``, ``np.int64``); bools and floats are refused.
    """
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) in (1, 2):
        items = tuple(value) * (3 - len(value))  # (k,) -> (k, k)
    else:
        items = (value, value)
    try:
        if any(isinstance(v, bool | np.bool_) for v in items):
            raise TypeError
        return operator.index(items[0]), operator.index(items[1])
    except TypeError:
        raise TypeError(
            f"{name} must be an int or a pair of ints (or a 1-tuple (k,), read as (k, k)), "
            f"but got {value!r}"
        ) from None


def pool_output_size(
    size: int,
    kernel_size: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length of max/avg pooling along one axis, exactly as PyTorch computes it.

    ``floor`` (or ``ceil`` with ``ceil_mode``) of
    ``(size + 2*padding - dilation*(kernel_size-1) - 1) / stride + 1``; with ``ceil_mode`` a last
    window that would start inside the right padding is dropped. ``stride`` defaults to
    ``kernel_size``. Raises ``ValueError`` for settings PyTorch refuses, including an output
    smaller than 1.
    """
    stride = kernel_size if stride is None else stride
    if size < 1:
        raise ValueError(f"size must be at least 1, but got {size}")
    _check_axis(kernel_size, stride, padding, dilation)
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1
    if ceil_mode:
        out = (span + stride - 1) // stride + 1  # ATen's div_rtn: integer floor division
        if (out - 1) * stride >= size + padding:
            out -= 1  # the last window would start in the right padding: PyTorch drops it
    else:
        out = span // stride + 1
    if out < 1:
        raise ValueError(
            f"output size is too small: input size {size} with kernel_size={kernel_size}, "
            f"stride={stride}, padding={padding}, dilation={dilation}, ceil_mode={ceil_mode} "
            f"gives {out}; the dilated kernel ({dilation * (kernel_size - 1) + 1}) is larger than "
            f"the padded input ({size + 2 * padding})"
        )
    return out


def _check_axis(
    kernel_size: int, stride: int, padding: int, dilation: int, unpooling: bool = False
) -> None:
    """Raise ``ValueError`` for one axis's parameters that PyTorch's pooling refuses
    (``unpooling``: ``F.max_unpool2d``'s looser rule, without the half-kernel padding bound)."""
    if kernel_size <= 0:
        raise ValueError(f"kernel_size must be greater than zero, but got {kernel_size}")
    if stride <= 0:
        raise ValueError(f"stride must be greater than zero, but got {stride}")
    if dilation <= 0:
        raise ValueError(f"dilation must be greater than zero, but got {dilation}")
    if padding < 0:
        raise ValueError(f"padding must be non-negative, but got {padding}")
    if padding > kernel_size // 2 and not unpooling:
        # PyTorch compares with half the *kernel size* (integer division), not with half
        # the dilated (effective) kernel; we follow PyTorch so both accept the same settings.
        raise ValueError(
            f"padding should be at most half of kernel_size (kernel_size // 2 = "
            f"{kernel_size // 2}), but got padding={padding} for kernel_size={kernel_size}"
        )



@dataclass(frozen=True)
class PoolParams:
    """Kernel, stride, padding and dilation as ``(h, w)`` pairs, plus ``ceil_mode``: one pooling
    call's settings, validated. Build it with :meth:`of`, which accepts what PyTorch accepts.

    >>> PoolParams.of(2)
    PoolParams(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), ceil_mode=False)
    """

    kernel_size: Pair
    stride: Pair
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    ceil_mode: bool = False

    @classmethod
    def of(
        cls,
        kernel_size: IntOrPair,
        stride: IntOrPair | None = None,
        padding: IntOrPair = 0,
        dilation: IntOrPair = 1,
        ceil_mode: bool = False,
        *,
        unpooling: bool = False,
        check: bool = True,
    ) -> PoolParams:
        """Normalize and check, like ``nn.MaxPool2d``: an int ``k`` or a 1-tuple ``(k,)`` means
        ``(k, k)``; ``stride=None`` or ``()`` means the kernel size. Raises ``TypeError`` for a
        value that is not an int or a pair of ints, ``ValueError`` for settings PyTorch refuses.
        ``unpooling=True`` checks as ``F.max_unpool2d`` does (any non-negative padding);
        ``check=False`` only parses (the explorer shows the arithmetic of a refused setting)."""
        kernel = pair(kernel_size, "kernel_size")
        no_stride = stride is None or (
            isinstance(stride, Sequence) and not isinstance(stride, str) and len(stride) == 0
        )
        step = kernel if no_stride else pair(stride, "stride")  # type: ignore[arg-type]
        if not isinstance(ceil_mode, bool | np.bool_):
            raise TypeError(f"ceil_mode must be a bool (True or False), but got {ceil_mode!r}")
        params = cls(kernel, step, pair(padding, "padding"), pair(dilation, "dilation"),
                     bool(ceil_mode))  # fmt: skip
        for ax in range(2 if check else 0):
            _check_axis(*params.axis(ax), unpooling=unpooling)
        return params

    def axis(self, ax: int) -> tuple[int, int, int, int]:
        """``(kernel, stride, padding, dilation)`` along axis 0 (rows) or 1 (columns)."""
        return self.kernel_size[ax], self.stride[ax], self.padding[ax], self.dilation[ax]

    def output_shape(self, in_shape: Sequence[int]) -> Pair:
        """``(H_out, W_out)`` for an ``(H, W)`` input, by :func:`pool_output_size`."""
        h, w = (pool_output_size(int(n), *self.axis(ax), self.ceil_mode)
                for ax, n in enumerate(in_shape[-2:]))  # fmt: skip
        return h, w

    def window(self, cell: Sequence[int], *, padded: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Input rows and columns that output ``cell = (row, col)`` pools over; the window is
        their product. Row ``i`` starts at ``i*stride - padding`` and takes ``kernel_size`` rows,
        ``dilation`` apart. Coordinates are the unpadded input's (negative, or ``>= H``, inside
        the padding) unless ``padded=True`` shifts them to index the padded input.

        >>> PoolParams.of(2).window((1, 0))
        (array([2, 3]), array([0, 1]))
        """
        i, j = as_cell(cell)
        if i < 0 or j < 0:
            raise ValueError(f"cell must be a pair of non-negative ints, but got {cell!r}")
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
            self.kernel_size, self.stride, self.padding, self.dilation)  # fmt: skip
        rows = i * sh - ph + dh * np.arange(kh)
        cols = j * sw - pw + dw * np.arange(kw)
        if padded:
            rows, cols = rows + ph, cols + pw
        return rows, cols

    def text(self) -> str:
        """``kernel 2, stride 2, padding 0, dilation 1`` (a pair only where the axes differ)."""
        return (f"kernel {pair_text(self.kernel_size)}, stride {pair_text(self.stride)}, padding "
                f"{pair_text(self.padding)}, dilation {pair_text(self.dilation)}"
                + (", ceil_mode" if self.ceil_mode else ""))  # fmt: skip


def pair_text(value: Pair) -> str:
    """``2`` for ``(2, 2)``, ``(2, 3)`` where the axes differ: how figures and texts write a pair."""
    return str(value[0]) if value[0] == value[1] else f"({value[0]}, {value[1]})"


def as_cell(cell: Sequence[int]) -> Pair:
    """``(row, col)`` as Python ints; NumPy integers are fine, floats and bools are not."""
    try:
        if len(cell) == 2 and not any(isinstance(v, bool | np.bool_) for v in cell):
            return operator.index(cell[0]), operator.index(cell[1])
    except TypeError:
        pass
    raise TypeError(f"a cell must be a (row, col) pair of ints, but got {cell!r}")


def first_real_tap(start: Any, dilation: int) -> Any:
    """Coordinate of a window's first tap at or after 0, for a window whose first tap is at
    ``start`` (an int, a NumPy array or a tensor of them).

    PyTorch's kernels start their running max there (``while (ih0 < 0) ih0 += dilation``), so
    a window that holds only padding points at this tap: ``start`` plus whole dilation steps.
    """
    behind = -start
    behind = behind * (behind > 0)  # max(0, -start), for ints, arrays and tensors alike
    return start + (behind + dilation - 1) // dilation * dilation


def argmax_cells(argmax: np.ndarray | None, cell: Sequence[int], in_shape: Sequence[int],
                 window: tuple[np.ndarray, np.ndarray]) -> list[Pair]:  # fmt: skip
    """Input ``(row, col)`` of each channel's maximum for one output ``cell``, from PyTorch's
    ``return_indices`` (``argmax``, laid out ``(H_out, W_out)`` or ``(H_out, W_out, C)``).

    Empty for average pooling (``argmax=None``) and when the ``window`` holds no input cell at all
    (it lies wholly in the padding: PyTorch then outputs −∞ and its index means nothing).
    """
    rows, cols = window
    h, w = int(in_shape[0]), int(in_shape[1])
    if argmax is None or not (any(0 <= r < h for r in rows) and any(0 <= c < w for c in cols)):
        return []
    flat = np.atleast_1d(argmax[as_cell(cell)])  # one index per channel
    return [(int(f // w), int(f % w)) for f in flat]


def _covered(size: int, params: PoolParams) -> set[int]:
    """Input positions (0..size-1) that at least one window of axis 0 touches."""
    n_out = pool_output_size(size, *params.axis(0), params.ceil_mode)
    taps: set[int] = set()
    for i in range(n_out):
        taps.update(int(r) for r in params.window((i, 0))[0] if 0 <= r < size)
    return taps


def never_covered(
    size: int,
    kernel_size: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> list[int]:
    """Input positions along one axis that no window touches, so they never reach the output.

    Found by walking the windows: trailing rows a floor-mode output leaves out, and gaps between
    windows (stride larger than the dilated kernel) or between a dilated window's taps. Raises
    ``ValueError`` for settings PyTorch refuses.
    """
    covered = _covered(size, PoolParams.of(kernel_size, stride, padding, dilation, ceil_mode))
    return [i for i in range(size) if i not in covered]


def uncovered(
    size: int,
    kernel_size: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """How many trailing input rows (or columns) no window ever reaches.

    A 25-pixel side pooled 2×2 with stride 2 gives 12 windows over rows 0..23: row 24 is
    dropped, so ``uncovered(25, 2, 2) == 1``. Raises ``ValueError`` for settings PyTorch refuses.
    """
    covered = _covered(size, PoolParams.of(kernel_size, stride, padding, dilation, ceil_mode))
    return size - 1 - max(covered) if covered else size


@dataclass(frozen=True)
class Arithmetic:
    """The geometry of one pooling call on an ``H×W`` input, as PyTorch computes it.

    ``out_shape``: output rows and columns; ``windows[(i, j)]``: the (row, col) taps of output cell
    ``(i, j)`` in input coordinates (negative or ``>= H`` means padding or past the edge);
    ``uncovered``: input cells no window holds (the rows ``floor`` drops); ``extra``: output cells
    that exist only because of ``ceil_mode``.
    """

    in_shape: Pair
    out_shape: Pair
    padding: Pair
    windows: dict[Pair, list[Pair]]
    uncovered: frozenset[Pair]
    extra: frozenset[Pair]


def arithmetic(in_shape: int | Sequence[int], **pool: Any) -> Arithmetic:
    """Where each window of a pooling call lies, which input cells none covers, which output cells
    ``ceil_mode`` adds. ``pool``: :class:`PoolArgs`. The output shape is PyTorch's own (it runs
    ``F.max_pool2d`` on zeros), so settings PyTorch refuses raise PyTorch's error."""
    h, w = (in_shape, in_shape) if isinstance(in_shape, int) else tuple(in_shape)
    if min(h, w) < 1:
        raise ValueError(f"in_shape must be positive, but got {in_shape!r}")
    zeros = torch.zeros(1, 1, h, w)
    ho, wo = F.max_pool2d(zeros, **pool).shape[-2:]
    try:
        fh, fw = F.max_pool2d(zeros, **{**pool, "ceil_mode": False}).shape[-2:]
    except RuntimeError:  # floor mode refuses what ceil mode accepts: every window is extra
        fh, fw = 0, 0
    params = PoolParams.of(**pool)
    windows, covered = {}, set()
    for i, j in itertools.product(range(ho), range(wo)):
        rows, cols = params.window((i, j))
        taps = [(int(r), int(c)) for r, c in itertools.product(rows, cols)]
        windows[(i, j)] = taps
        covered |= {(r, c) for r, c in taps if 0 <= r < h and 0 <= c < w}
    cells = set(itertools.product(range(h), range(w)))
    extra = frozenset((i, j) for i, j in windows if i >= fh or j >= fw)
    return Arithmetic((h, w), (int(ho), int(wo)), params.padding, windows,
                      frozenset(cells - covered), extra)  # fmt: skip


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one layer's output units, in input pixels.

    ``size``: side of the square input region one unit sees.
    ``jump``: distance in input pixels between neighbouring units (the product of strides).
    ``start``: input coordinate of the centre of the first unit's field (may be negative or
    fractional: padding puts part of the field outside the image).
    """

    name: str
    size: int
    jump: int
    start: float


_POINTWISE = (
    nn.BatchNorm2d,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
    nn.GroupNorm,
    nn.LayerNorm,
)


def _first(v: int | Sequence[int]) -> int:
    return v if isinstance(v, int) else int(v[0])


def _layer_params(module: nn.Module) -> tuple[int, int, int, int] | None:
    """``(kernel, stride, padding, dilation)`` of a spatial layer, or ``None`` for pointwise ones."""
    if isinstance(module, nn.Conv2d):
        if isinstance(module.padding, str):
            raise ValueError(f"string padding {module.padding!r} is not supported; use ints")
        return (
            _first(module.kernel_size),
            _first(module.stride),
            _first(module.padding),
            _first(module.dilation),
        )
    if isinstance(module, nn.MaxPool2d):
        return PoolParams.of(module.kernel_size, module.stride, module.padding, module.dilation).axis(0)
    if isinstance(module, nn.AvgPool2d):
        return PoolParams.of(module.kernel_size, module.stride, module.padding).axis(0)
    if hasattr(module, "receptive_field_params"):  # custom layers (e.g. blur pooling) opt in
        return tuple(module.receptive_field_params())  # type: ignore[return-value]
    if isinstance(module, _POINTWISE):
        return None
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Linear)):
        raise StopIteration  # global layers: the field becomes the whole image
    raise TypeError(
        f"receptive_field does not know layer {type(module).__name__}; allowed are Conv2d, "
        f"MaxPool2d, AvgPool2d, pointwise layers (BatchNorm, activations, Dropout) and, as a "
        f"stopping point, global pooling, Flatten and Linear"
    )


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers of ``model`` in registration order (execution order for an ``nn.Sequential``):
    modules without children, where a module with ``receptive_field_params`` (e.g. blur
    pooling) counts as one layer. A bare layer is its own only leaf, named ``""``."""
    if not list(model.children()) or hasattr(model, "receptive_field_params"):
        return [("", model)]
    leaves: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(n + ".") for n, _ in leaves[-1:]):
            continue  # the model itself, or inside a layer that counts as one
        if not list(module.children()) or hasattr(module, "receptive_field_params"):
            leaves.append((name, module))
    return leaves


def receptive_field(
    model_or_layers: nn.Module | Sequence[tuple[int, int, int, int]],
) -> list[ReceptiveField]:
    """Receptive field size, jump and start after each spatial layer.

    Takes an ``nn.Module`` (walked in registration order, which is execution order for an
    ``nn.Sequential``) or a list of ``(kernel, stride, padding, dilation)`` tuples. Pointwise
    layers are skipped; the walk stops at the first global layer (adaptive pooling, Flatten,
    Linear). Uses the recurrence ``r += (k_eff-1)*j``, ``start += ((k_eff-1)/2 - p)*j``,
    ``j *= s`` with ``k_eff = d*(k-1)+1``.
    """
    if isinstance(model_or_layers, nn.Module):
        layers: list[tuple[str, tuple[int, int, int, int]]] = []
        for name, module in leaf_modules(model_or_layers):
            try:
                params = _layer_params(module)
            except StopIteration:
                break
            if params is not None:
                layers.append((name or type(module).__name__, params))
    else:
        layers = []
        for i, params in enumerate(model_or_layers):
            if len(params) != 4:
                raise ValueError(
                    f"layer {i}: expected (kernel, stride, padding, dilation), got {params!r}"
                )
            layers.append((f"layer{i}", tuple(int(p) for p in params)))  # type: ignore[misc]

    size, jump, start = 1, 1, 0.0
    out = []
    for name, (k, s, p, d) in layers:
        if k <= 0 or s <= 0 or d <= 0 or p < 0:
            raise ValueError(
                f"{name}: kernel, stride and dilation must be positive and padding non-negative, "
                f"but got kernel={k}, stride={s}, padding={p}, dilation={d}"
            )
        k_eff = d * (k - 1) + 1
        size += (k_eff - 1) * jump
        start += ((k_eff - 1) / 2 - p) * jump
        jump *= s
        out.append(ReceptiveField(name, size, jump, start))
    return out
