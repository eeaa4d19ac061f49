"""The images, and the input patches, that excite a channel most (:func:`top_activating`), and
how class-specific they are (:func:`class_purity`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pooltools.features.hooks import (
    _check_channel,
    _check_images,
    _check_spatial,
    _resolve,
    capture,
)
from pooltools.features.receptive import _field_origin, receptive_fields
from pooltools.shapes import ReceptiveField

__all__ = ["TopK", "top_activating", "top_activating_channels", "class_purity"]


# ------------------------------------------------------------------------------ top-k images
@dataclass(frozen=True)
class TopK:
    """The ``k`` images that excite one channel most, best first.

    ``indices`` ``(k,)`` into the image batch; ``values`` ``(k,)`` the channel's maximum
    activation over positions; ``patches`` ``(k, C, S, S)`` the input under the receptive field
    (side ``S``) of the maximal unit, zero-filled where the field hangs over the image border;
    ``boxes`` ``(k, 4)`` that field as ``(top, left, bottom, right)`` pixel rows/columns, clipped
    to the image, bottom/right exclusive; ``positions`` ``(k, 2)`` the unit's (row, column) in
    the layer's map.
    """

    indices: torch.Tensor
    values: torch.Tensor
    patches: torch.Tensor
    boxes: torch.Tensor
    positions: torch.Tensor


def top_activating(
    model: nn.Module,
    images: torch.Tensor,
    layer: str,
    channel: int,
    k: int = 9,
    batch_size: int = 256,
) -> TopK:
    """The top-``k`` images for ``channel`` of ``layer``, ranked by the channel's maximum
    activation over positions, with the receptive-field patch around each maximum.

    Forward passes run in batches and keep only the one channel's map. Ties go to the lower
    image index and, within an image, to the first maximum in row-major order.
    """
    return top_activating_channels(
        model, layer=layer, channels=[channel], images=images, k=k, batch_size=batch_size
    )[0]


def top_activating_channels(
    model: nn.Module,
    images: torch.Tensor,
    layer: str,
    channels: Sequence[int],
    k: int = 9,
    batch_size: int = 256,
) -> list[TopK]:
    """:func:`top_activating` for several channels of one layer, with one pass over the images
    (the expensive part); the result for a channel does not depend on the others."""
    _check_images(images)
    _resolve(model, layer)
    channels = [int(c) for c in channels]
    if not channels:
        raise ValueError("channels is empty; give at least one channel index")
    if not 1 <= k <= len(images):
        raise ValueError(f"k must be in [1, {len(images)}] (the number of images), but got {k}")
    field = receptive_fields(model).get(layer)
    if field is None:
        raise ValueError(f"layer {layer!r} sees the whole image (a global layer): no patch to show")

    def chosen_channels(act: torch.Tensor) -> torch.Tensor:  # (B, C', H', W') -> (B, K, H', W')
        _check_spatial(act, layer)
        for channel in channels:
            _check_channel(act, layer, channel)
        return act[:, channels]

    maps = capture(
        model, images=images, layers=layer, batch_size=batch_size, reduce=chosen_channels
    )[layer]
    return [_top_k(maps[:, i], field, images, k) for i in range(len(channels))]


def _top_k(maps: torch.Tensor, field: ReceptiveField, images: torch.Tensor, k: int) -> TopK:
    """The top-``k`` of one channel's maps ``(N, H', W')``, with their receptive-field patches."""
    n, h_out, w_out = maps.shape
    best, where = maps.reshape(n, -1).max(dim=1)  # (N,): max over positions and its first argmax
    order = torch.sort(best, descending=True, stable=True).indices[:k]  # (k,)
    rows, cols = where[order] // w_out, where[order] % w_out  # (k,), (k,)
    size, origin = field.size, _field_origin(field)
    tops, lefts = origin + rows * field.jump, origin + cols * field.jump  # (k,) unclipped corners
    height, width = images.shape[-2:]
    boxes = torch.stack(
        [tops.clamp(0, height), lefts.clamp(0, width),
         (tops + size).clamp(0, height), (lefts + size).clamp(0, width)], dim=1,
    )  # fmt: skip
    chosen = images[order.to(images.device)].cpu()  # (k, C, H, W)
    padded = F.pad(chosen, (size, size, size, size))  # zeros where a field hangs over the border
    patches = torch.stack(
        [
            padded[i, :, top + size : top + 2 * size, left + size : left + 2 * size]
            for i, (top, left) in enumerate(zip(tops.tolist(), lefts.tolist(), strict=True))
        ]
    )  # (k, C, S, S)
    return TopK(order, best[order], patches, boxes, torch.stack([rows, cols], dim=1))


def class_purity(maxima: torch.Tensor, labels: torch.Tensor, k: int = 9) -> np.ndarray:
    """How class-specific each channel's top-``k`` images are: ``(C,)`` values in ``1/k .. 1``.

    ``maxima`` ``(N, C)`` is each channel's maximum activation per image (over positions);
    ``labels`` ``(N,)`` the images' classes. For each channel, the share of its ``k`` most
    activating images that belong to their most common class (ties: the lower image index
    ranks first). An edge or colour unit fires on any class (low purity); a unit that
    "recognizes objects" of one class picks its top images from that class (purity near 1).
    """
    maxima, labels = torch.as_tensor(maxima), torch.as_tensor(labels).long()
    if maxima.dim() != 2 or len(maxima) != len(labels) or not 1 <= k <= len(maxima):
        raise ValueError(
            f"maxima must be (N, C) with N = len(labels) >= k, but got {tuple(maxima.shape)}, "
            f"{len(labels)} labels and k={k}"
        )
    order = torch.sort(maxima, dim=0, descending=True, stable=True).indices[:k]  # (k, C)
    top_labels = labels[order]  # (k, C)
    counts = F.one_hot(top_labels, int(labels.max()) + 1).sum(0)  # (C, classes)
    return (counts.max(1).values.double() / k).numpy()
