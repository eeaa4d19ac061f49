"""Shape arithmetic of pooling and convolution: output sizes and receptive fields.

Everything here follows PyTorch's own rules (``pooling_output_shape`` and
``pool2d_shape_check`` in ATen), so a notebook can predict a shape before it asks PyTorch.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

__all__ = [
    "pair",
    "pool_output_size",
    "check_pool_params",
    "ReceptiveField",
    "receptive_field",
]


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


def check_pool_params(kernel_size: int, stride: int, padding: int, dilation: int) -> None:
    """Raise ``ValueError`` for parameters that PyTorch's pooling refuses (one spatial axis)."""
    if kernel_size <= 0:
        raise ValueError(f"kernel_size must be greater than zero, but got {kernel_size}")
    if stride <= 0:
        raise ValueError(f"stride must be greater than zero, but got {stride}")
    if dilation <= 0:
        raise ValueError(f"dilation must be greater than zero, but got {dilation}")
    if padding < 0:
        raise ValueError(f"padding must be non-negative, but got {padding}")
    if padding > kernel_size // 2:
        # PyTorch compares with half the *kernel size* (integer division), not with half
        # the dilated (effective) kernel; we follow PyTorch so both accept the same settings.
        raise ValueError(
            f"padding should be at most half of kernel_size (kernel_size // 2 = "
            f"{kernel_size // 2}), but got padding={padding} for kernel_size={kernel_size}"
        )


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
    check_pool_params(kernel_size, stride, padding, dilation)
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
        stride = module.stride if module.stride is not None else module.kernel_size
        return (
            _first(module.kernel_size),
            _first(stride),
            _first(module.padding),
            _first(module.dilation),
        )
    if isinstance(module, nn.AvgPool2d):
        stride = module.stride if module.stride is not None else module.kernel_size
        return _first(module.kernel_size), _first(stride), _first(module.padding), 1
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


def _leaves(model: nn.Module) -> Iterable[tuple[str, nn.Module]]:
    for name, module in model.named_modules():
        if not list(module.children()) or hasattr(module, "receptive_field_params"):
            yield name, module


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
        seen: set[str] = set()
        for name, module in _leaves(model_or_layers):
            if any(name.startswith(s + ".") for s in seen):
                continue
            if hasattr(module, "receptive_field_params"):
                seen.add(name)
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
