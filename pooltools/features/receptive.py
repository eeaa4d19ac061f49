"""Receptive fields of every layer: the theoretical one (:func:`receptive_fields`) and the
effective one of Luo et al. (2016) (:func:`effective_receptive_field`, :func:`mass_square`)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from pooltools.features.hooks import (
    _check_channel,
    _check_images,
    _check_spatial,
    _device,
    _forward_to,
)
from pooltools.models import evaluating
from pooltools.shapes import ReceptiveField, leaf_modules, receptive_field

__all__ = ["receptive_fields", "effective_receptive_field", "erf_centre", "mass_square"]

_GLOBAL = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Linear)


# ------------------------------------------------------------------------------ receptive fields
def receptive_fields(model: nn.Module) -> dict[str, ReceptiveField]:
    """The receptive field of every layer's output, by layer name (in input pixels).

    Spatial layers (convs, pools, blur) get the field computed by
    :func:`pooltools.shapes.receptive_field`; pointwise layers (BatchNorm, ReLU) and containers
    (``"stage1"``, ``allconv``'s ``"stage1.pool"``) get the field of the last spatial layer at
    or before their output. Each field is renamed to its key. Global layers (``head.gap`` and
    after) see the whole image and are left out, as are containers holding them.
    """
    spatial = {f.name: f for f in receptive_field(model)}
    leaves = dict(leaf_modules(model))
    fields: dict[str, ReceptiveField] = {}
    current = ReceptiveField("", 1, 1, 0.0)  # before any spatial layer: one pixel
    for name, module in leaves.items():
        if isinstance(module, _GLOBAL):
            break
        current = spatial.get(name, current)
        fields[name] = current
    out: dict[str, ReceptiveField] = {}
    for name, _module in model.named_modules():
        inner = [n for n in leaves if n == name or n.startswith(name + ".")]
        if name and inner and all(n in fields for n in inner):
            out[name] = replace(fields[inner[-1]], name=name)
    return out


def _field_origin(field: ReceptiveField) -> int:
    """Input row (or column) where the first unit's field begins (an integer for any net)."""
    return int(round(field.start - (field.size - 1) / 2))


def effective_receptive_field(
    model: nn.Module,
    images: torch.Tensor,
    layer: str,
    channel: int | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """The effective receptive field (Luo et al. 2016) of the centre unit of ``layer``: ``(H, W)``.

    For each image, the gradient of the centre unit (row ``H'//2``, column ``W'//2`` of the
    layer's ``(N, C', H', W')`` output; summed over channels, or ``channel`` only) with respect to
    the input; its absolute value summed over input channels, averaged over images and divided
    by its maximum (so the peak is 1; all zeros if the unit is dead on every image). The
    theoretical receptive field bounds its support; how the mass spreads inside it is the point.
    """
    _check_images(images)
    device = _device(model)
    total = torch.zeros(images.shape[-2:], dtype=torch.float64)
    with evaluating(model), torch.enable_grad():
        for batch in images.split(batch_size):
            x = batch.detach().to(device).requires_grad_(True)  # (B, C, H, W)
            act = _forward_to(model, x, layer, detach=False)[layer]  # (B, C', H', W')
            _check_spatial(act, layer)
            unit = act[:, :, act.shape[2] // 2, act.shape[3] // 2]  # (B, C')
            if channel is not None:
                _check_channel(act, layer, channel)
                unit = unit[:, channel : channel + 1]
            (grad,) = torch.autograd.grad(unit.sum(), x)  # images are independent in eval mode
            total += grad.abs().sum(dim=1).sum(dim=0).double().cpu()  # (H, W)
    erf = (total / len(images)).numpy()
    peak = erf.max()
    return (erf / peak if peak > 0 else erf).astype(np.float32)


def erf_centre(field: ReceptiveField, map_shape: tuple[int, int]) -> tuple[float, float]:
    """Input (row, column) at the centre of the unit that :func:`effective_receptive_field`
    differentiates, row ``H'//2`` and column ``W'//2`` of a ``map_shape = (H', W')`` layer:
    ``field.start + index * field.jump``. On an even map after pooling this is not the image
    centre (``base``'s unit (4, 4) of 8×8 looks at (17.5, 17.5), not 15.5), so squares and boxes
    drawn on an ERF must be centred here."""
    h, w = map_shape
    if min(h, w) < 1:
        raise ValueError(f"map_shape must be a positive (H', W'), but got {map_shape}")
    return field.start + (h // 2) * field.jump, field.start + (w // 2) * field.jump


def mass_square(
    erf: np.ndarray, fraction: float = 0.9, centre: tuple[float, float] | None = None
) -> int:
    """Side (px) of the smallest square around ``centre`` that holds ``fraction`` of the map's mass.

    A square of side ``s`` starts at row ``floor(centre_row - (s - 1) / 2)`` (the same for
    columns) and is clipped to the map. ``centre`` defaults to the map's centre
    ``((H - 1) / 2, (W - 1) / 2)``, where the square starts at row ``(H - s) // 2``; pass
    :func:`erf_centre` for an ERF, whose unit need not sit at the image centre. Used on
    :func:`effective_receptive_field` maps to say how much of the theoretical field a unit's
    sensitivity actually fills.
    """
    erf = np.asarray(erf, dtype=np.float64)
    if erf.ndim != 2 or not 0 < fraction <= 1 or erf.min() < 0 or erf.sum() <= 0:
        raise ValueError(
            f"erf must be a non-negative (H, W) map with positive mass and fraction in (0, 1], "
            f"but got shape {erf.shape} and fraction {fraction}"
        )
    h, w = erf.shape
    cy, cx = ((h - 1) / 2, (w - 1) / 2) if centre is None else centre
    if not (math.isfinite(cy) and math.isfinite(cx)):
        raise ValueError(f"centre must be a finite (row, column), but got {centre}")
    total = erf.sum()
    largest = 2 * (max(h, w) + int(max(abs(cy), abs(cx)))) + 2  # covers the map from any centre
    for side in range(1, largest + 1):
        top, left = math.floor(cy - (side - 1) / 2), math.floor(cx - (side - 1) / 2)
        inside = erf[max(top, 0) : max(top + side, 0), max(left, 0) : max(left + side, 0)]
        if inside.sum() >= fraction * total * (1 - 1e-12):
            return side
    return largest
