"""How much does an output change when the input moves by a few pixels?

Two measurements, used by notebooks 1 and 3:

* :func:`shift_change`: shift images by one pixel and compare an operation's outputs position by
  position (how many values stay exactly the same, and the mean relative change);
* :func:`shift_consistency`: Zhang (2019)'s consistency, adapted to 32x32 images: how often a
  classifier predicts the same class for two random shifts (up to ``max_shift`` pixels) of an image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pooltools.models import evaluating

__all__ = [
    "shift_change",
    "shift_images",
    "shifted_predictions",
    "shift_consistency",
]


@dataclass(frozen=True)
class ShiftChange:
    """``unchanged``: fraction of output values exactly equal; ``relative_change``: mean |Δ| / mean |y|."""

    unchanged: float
    relative_change: float


def shift_change(
    op: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, shift: int = 1
) -> ShiftChange:
    """Compare ``op(images)`` with ``op(images rolled right by shift pixels)`` at the same positions.

    ``images`` is ``(N, C, H, W)``. The columns that ``torch.roll`` wraps around are left out of the
    comparison (one output column on each side), so only genuine shifts are measured.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), but got shape {tuple(images.shape)}")
    if shift < 1:
        raise ValueError(f"shift must be a positive number of pixels, but got {shift}")
    before = op(images)[..., 1:-1]
    after = op(torch.roll(images, shifts=shift, dims=-1))[..., 1:-1]
    unchanged = (before == after).float().mean().item()
    change = ((before - after).abs().mean() / before.abs().mean().clamp_min(1e-12)).item()
    return ShiftChange(unchanged, change)


def shift_images(
    images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, max_shift: int
) -> torch.Tensor:
    """Shift each image by its own ``(dy[i], dx[i])`` pixels, filling with zeros (the data mean).

    ``images``: ``(N, C, H, W)``; ``dy``, ``dx``: int tensors of shape ``(N,)`` in
    ``[-max_shift, max_shift]``. Positive ``dx`` moves the content right.
    """
    n, _, h, w = images.shape
    if dy.shape != (n,) or dx.shape != (n,):
        raise ValueError(
            f"dy and dx must have shape ({n},), but got {tuple(dy.shape)}, {tuple(dx.shape)}"
        )
    if max(dy.abs().max().item(), dx.abs().max().item()) > max_shift:
        raise ValueError(f"shifts must lie in [-{max_shift}, {max_shift}]")
    padded = F.pad(images, (max_shift,) * 4)  # (N, C, H+2m, W+2m)
    rows = torch.arange(h)[None, :] + max_shift - dy[:, None]  # (N, H)
    cols = torch.arange(w)[None, :] + max_shift - dx[:, None]  # (N, W)
    batch = torch.arange(n)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


@torch.no_grad()
def shifted_predictions(
    model: nn.Module,
    images: torch.Tensor,
    max_shift: int = 4,
    seed: int = 0,
    batch_size: int = 500,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The classes ``model`` predicts for two independent random shifts of every image.

    Each (normalized) image is shifted twice by seeded random offsets in
    ``[-max_shift, max_shift]`` pixels, zero-filled; returns two ``(N,)`` int64 tensors.
    """
    gen = torch.Generator().manual_seed(seed)
    offsets = torch.randint(-max_shift, max_shift + 1, (4, len(images)), generator=gen)
    first, second = [], []
    with evaluating(model):
        for start in range(0, len(images), batch_size):
            sl = slice(start, start + batch_size)
            batch = images[sl]
            first.append(
                model(shift_images(batch, offsets[0, sl], offsets[1, sl], max_shift)).argmax(1)
            )
            second.append(
                model(shift_images(batch, offsets[2, sl], offsets[3, sl], max_shift)).argmax(1)
            )
    return torch.cat(first), torch.cat(second)


def shift_consistency(
    model: nn.Module,
    images: torch.Tensor,
    max_shift: int = 4,
    seed: int = 0,
    batch_size: int = 500,
) -> float:
    """Fraction of images whose predicted class is the same under two random shifts.

    Zhang (2019) compares two random 224x224 crops of an ImageNet image; on 32x32 CIFAR-10 we
    shift each (normalized) image twice by independent random offsets in
    ``[-max_shift, max_shift]`` pixels, zero-filled, and count agreeing predictions. Seeded
    (:func:`shifted_predictions` gives the two predictions themselves).
    """
    a, b = shifted_predictions(model, images, max_shift, seed, batch_size)
    return int((a == b).sum()) / len(images)
