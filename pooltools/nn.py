"""Max pooling as a PyTorch layer written from scratch: our forward, our backward.

``ScratchMaxPool2d`` is a drop-in for ``nn.MaxPool2d``. Its forward pads the input with ``-inf``
and walks the ``kh*kw`` taps of the window; each tap is one strided slice of the padded input,
compared with the running maximum, so a 3x3 window costs nine elementwise passes and no loop
over pixels. It remembers *where* each maximum came from (the flat index ``h*W + w`` inside
its input plane, the same numbering PyTorch returns with ``return_indices=True``).

Its backward needs nothing but those indices: the gradient of a max is 1 for the winner and
0 for everyone else, so ``grad_input`` is ``grad_output`` scattered (and, where overlapping
windows pick the same pixel, summed) into a zero plane. That is exactly what PyTorch saves
for ``max_pool2d`` and exactly what it does in ``max_pool2d_with_indices_backward``.

Semantics match ``F.max_pool2d``: the first maximum in row-major window order wins a tie, a
NaN anywhere in a window makes the output NaN (pointing at the window's last NaN, as ATen's
``val > max || isnan(val)`` does), and a window holding only ``-inf`` points at its first
tap inside the image.

Memory format: a channels_last input gives channels_last output, indices and input gradient
(the work itself is done in whatever layout the input has). Devices: any on which the
elementwise ops run (CPU, CUDA). On CUDA ``scatter_add_`` uses atomic adds, so with
overlapping windows (stride < kernel) the summation order of the backward, and thus its last
bit, is not deterministic; PyTorch's own CUDA backward is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from pooltools.shapes import IntOrPair, PoolParams, first_real_tap

__all__ = ["ScratchMaxPool2d", "scratch_max_pool2d", "swap_maxpool"]

def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last for a 4-D input laid out that way (and not also plain contiguous)."""
    if (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        return torch.channels_last
    return torch.contiguous_format


def _lowest(dtype: torch.dtype) -> float | int:
    """The value no input can beat: ``-inf`` for floats, the smallest integer for int dtypes."""
    return -math.inf if dtype.is_floating_point else torch.iinfo(dtype).min


def _full(
    shape: Sequence[int],
    value: float,
    like: torch.Tensor,
    dtype: torch.dtype,
    memory_format: torch.memory_format,
) -> torch.Tensor:
    out = torch.empty(shape, dtype=dtype, device=like.device, memory_format=memory_format)
    return out.fill_(value)


def _max_pool_forward(x: torch.Tensor, params: PoolParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Max pooling of a 4-D ``x`` with torch elementwise ops; returns ``(output, indices)``."""
    n, c, h, w = x.shape  # x: (N, C, H, W)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
        params.kernel_size, params.stride, params.padding, params.dilation)  # fmt: skip
    out_h, out_w = params.output_shape((h, w))
    fmt = _memory_format(x)

    # Pad with -inf (the smallest int for integer inputs): a padded tap never wins, since
    # lowest > m is false for every m, NaN included.
    # With ceil_mode the last window may reach past the right padding, so pad up to its end.
    span_h = (out_h - 1) * sh + dh * (kh - 1) + 1  # padded rows the windows touch
    span_w = (out_w - 1) * sw + dw * (kw - 1) + 1
    padded_h, padded_w = max(span_h, h + ph), max(span_w, w + pw)
    if (padded_h, padded_w) == (h, w):  # no padding needed (e.g. k2 s2 on an even size)
        padded = x
    else:
        padded = _full((n, c, padded_h, padded_w), _lowest(x.dtype), x, x.dtype, fmt)  # (N, C, Hp, Wp)
        padded[:, :, ph : ph + h, pw : pw + w] = x

    # Flat index (h*W + w, unpadded) of each window's top-left tap; may lie outside the image.
    dev = x.device
    top = torch.arange(out_h, device=dev) * sh - ph  # (out_h,)
    left = torch.arange(out_w, device=dev) * sw - pw  # (out_w,)
    corner = top[:, None] * w + left[None, :]  # (out_h, out_w)

    # A window with nothing above -inf keeps pointing at its first tap inside the image,
    # as PyTorch does: skip whole dilation steps until the tap is in the image.
    first_row, first_col = first_real_tap(top, dh), first_real_tap(left, dw)
    first_tap = first_row[:, None] * w + first_col[None, :]  # (out_h, out_w)

    best = _full((n, c, out_h, out_w), _lowest(x.dtype), x, x.dtype, fmt)  # (N, C, out_h, out_w)
    index = _full((n, c, out_h, out_w), 0, x, torch.int64, fmt)  # (N, C, out_h, out_w)
    index.copy_(first_tap.expand(n, c, out_h, out_w))
    for i in range(kh):
        for j in range(kw):
            r, q = i * dh, j * dw  # offset of this tap inside the window
            tap = padded[:, :, r : r + (out_h - 1) * sh + 1 : sh, q : q + (out_w - 1) * sw + 1 : sw]
            # tap: (N, C, out_h, out_w), a strided view: tap[..., a, b] = padded[..., a*sh+r, b*sw+q]
            take = tap > best  # strict '>': the first maximum wins a tie
            if tap.is_floating_point():
                take |= tap.isnan()
            best = torch.where(take, tap, best)
            index = torch.where(take, corner + (r * w + q), index)
    return best, index


def _max_pool_backward(
    grad_output: torch.Tensor,
    index: torch.Tensor,
    input_shape: torch.Size,
    memory_format: torch.memory_format,
) -> torch.Tensor:
    """Scatter-add ``grad_output`` into zero input planes at ``index``; differentiable itself.

    Where windows overlap, one input pixel collects several gradients. PyTorch's CPU kernel adds
    them one at a time in output order, rounding after each addition. ``scatter_add_`` does the
    same in float32/float64, but in float16/bfloat16 it accumulates in float32 and rounds once,
    so for those dtypes the additions are made in rounds: round ``r`` adds each pixel's
    ``r``-th gradient (in output order), one rounded addition per pixel, as PyTorch does.
    """
    n, c, h, w = input_shape
    length = index.shape[-2] * index.shape[-1]
    planes = grad_output.new_zeros((n * c, h * w))  # (N*C, H*W): one flat row per plane
    flat_index = index.reshape(n * c, length)  # explicit sizes: an empty batch has 0 elements
    flat_grad = grad_output.reshape(n * c, length)
    if grad_output.dtype in (torch.float16, torch.bfloat16) and flat_index.numel():
        rank = _rank_in_output_order(flat_index)  # (N*C, L)
        zero = flat_grad.new_zeros(())
        for r in range(int(rank.max()) + 1):
            planes = planes.scatter_add(1, flat_index, torch.where(rank == r, flat_grad, zero))
    else:
        planes.scatter_add_(1, flat_index, flat_grad)
    return planes.view(n, c, h, w).contiguous(memory_format=memory_format)  # (N, C, H, W)


def _rank_in_output_order(flat_index: torch.Tensor) -> torch.Tensor:
    """For each output, how many earlier outputs of its plane point at the same input pixel."""
    rows, length = flat_index.shape
    key = flat_index + torch.arange(rows, device=flat_index.device)[:, None] * (flat_index.max() + 1)
    order = torch.sort(key.reshape(-1), stable=True).indices  # grouped by pixel, output order kept
    sorted_key = key.reshape(-1)[order]
    position = torch.arange(order.numel(), device=key.device)
    starts = torch.ones_like(sorted_key, dtype=torch.bool)
    starts[1:] = sorted_key[1:] != sorted_key[:-1]
    group_start = torch.where(starts, position, 0).cummax(0).values
    rank = torch.empty_like(position)
    rank[order] = position - group_start
    return rank.view(rows, length)


class _MaxPool2dFunction(torch.autograd.Function):
    """Autograd glue: forward returns ``(output, indices)``; backward reads only the indices."""

    @staticmethod
    def forward(ctx, x, params):  # type: ignore[override]
        output, index = _max_pool_forward(x, params)
        ctx.save_for_backward(index)  # like PyTorch: the indices and the shape, not the input
        ctx.input_shape = x.shape
        ctx.memory_format = _memory_format(x)
        ctx.mark_non_differentiable(index)
        return output, index

    @staticmethod
    def backward(ctx, grad_output, _grad_index):  # type: ignore[override]
        (index,) = ctx.saved_tensors
        grad_input = _max_pool_backward(grad_output, index, ctx.input_shape, ctx.memory_format)
        return grad_input, None


def _check_input(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, but got {type(x).__name__}")
    if x.dim() not in (3, 4):
        raise ValueError(
            f"expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, but got a {x.dim()}-D input "
            f"of shape {tuple(x.shape)}"
        )
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(
            f"input must have a floating point or integer dtype, as nn.MaxPool2d accepts, but "
            f"got {x.dtype}"
        )
    if any(size == 0 for size in x.shape[-3:]):
        raise ValueError(
            f"channels, height and width must be non-zero (only the batch may be empty), but "
            f"got input of shape {tuple(x.shape)}"
        )


def scratch_max_pool2d(
    input: torch.Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Functional twin of ``F.max_pool2d`` with our own forward and backward."""
    _check_input(input)
    params = PoolParams.of(kernel_size, stride, padding, dilation, ceil_mode)
    batched = input.dim() == 4
    x = input if batched else input.unsqueeze(0)  # (N, C, H, W)
    output, index = _MaxPool2dFunction.apply(x, params)
    if not batched:
        output, index = output.squeeze(0), index.squeeze(0)  # (C, out_h, out_w)
    return (output, index) if return_indices else output


class ScratchMaxPool2d(nn.Module):
    """Drop-in for ``nn.MaxPool2d`` (same arguments, outputs, indices and gradients).

    (N, C, H, W) -> (N, C, out_h, out_w), or (C, H, W) -> (C, out_h, out_w), with
    ``out = floor_or_ceil((size + 2*padding - dilation*(kernel_size-1) - 1) / stride) + 1``.
    Parameters are checked here, when the layer is built, rather than at the first call.
    Positional arguments come in ``nn.MaxPool2d``'s order: ``return_indices`` before
    ``ceil_mode``.
    """

    def __init__(
        self,
        kernel_size: IntOrPair,
        stride: IntOrPair | None = None,
        padding: IntOrPair = 0,
        dilation: IntOrPair = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        PoolParams.of(kernel_size, stride, padding, dilation)  # fail early, clearly
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size  # as nn.MaxPool2d stores it
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    @classmethod
    def from_torch(cls, pool: nn.MaxPool2d) -> ScratchMaxPool2d:
        """A ``ScratchMaxPool2d`` with the settings of an existing ``nn.MaxPool2d``."""
        return cls(
            pool.kernel_size,
            pool.stride,
            pool.padding,
            pool.dilation,
            pool.return_indices,
            pool.ceil_mode,
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return scratch_max_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )

    def receptive_field_params(self) -> tuple[int, int, int, int]:
        """``(kernel, stride, padding, dilation)`` of the height axis, for ``shapes.receptive_field``."""
        return PoolParams.of(self.kernel_size, self.stride, self.padding, self.dilation).axis(0)


def swap_maxpool(model: nn.Module) -> nn.Module:
    """Replace every ``nn.MaxPool2d`` in ``model`` (in place) by a ``ScratchMaxPool2d``.

    Returns ``model``, or a new ``ScratchMaxPool2d`` when ``model`` itself is a ``nn.MaxPool2d``.
    Parameters and buffers of the other layers are untouched, so the swapped model computes
    the same function and, if the backward matches, the same gradients.
    """
    if isinstance(model, nn.MaxPool2d):
        return ScratchMaxPool2d.from_torch(model)
    for name, child in model.named_children():
        swapped = swap_maxpool(child)
        if swapped is not child:
            setattr(model, name, swapped)
    return model
