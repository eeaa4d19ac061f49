"""Activation maximization: gradient ascent on the input for one channel
(:func:`visualize_channel`, :func:`visualize_channels`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pooltools.features.hooks import _check_channel, _check_spatial, _device, _forward_to
from pooltools.models import evaluating

__all__ = ["VisResult", "visualize_channel", "visualize_channels"]


# ------------------------------------------------------------------------------ visualization
@dataclass(frozen=True)
class VisResult:
    """``image`` ``(H, W, C)`` float32 in 0..1; ``history`` ``(steps,)`` the objective at each
    step (on the jittered image); ``activation`` the objective on the final image, no jitter."""

    image: np.ndarray
    history: np.ndarray
    activation: float


def _input_channels(model: nn.Module) -> int:
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return first.in_channels if first is not None else 3


def _total_variation(pixels: torch.Tensor) -> torch.Tensor:
    """Per image: mean absolute difference between vertical and horizontal neighbours. (B,)"""
    dy = (pixels[..., 1:, :] - pixels[..., :-1, :]).abs().flatten(1).mean(1)
    dx = (pixels[..., :, 1:] - pixels[..., :, :-1]).abs().flatten(1).mean(1)
    return dy + dx


def visualize_channels(
    model: nn.Module,
    layer: str,
    channels: Sequence[int],
    steps: int = 200,
    lr: float = 0.05,
    jitter: int = 2,
    l2: float = 0.1,
    tv: float = 0.5,
    seed: int = 0,
    image_size: int = 32,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    objective: str = "mean",
) -> list[VisResult]:
    """:func:`visualize_channel` for several channels at once: one batch, one image per channel.

    Every image starts from the same seeded noise and sees the same jitter, so the result for a
    channel does not depend on which other channels are in the batch.

    Long (about 70 lines) because it is one optimization loop read top to bottom: jitter, forward, objective, regularizers, step.
    """
    channels = [int(c) for c in channels]
    if not channels:
        raise ValueError("channels is empty; give at least one channel index")
    if objective not in ("mean", "centre"):
        raise ValueError(f"objective must be 'mean' or 'centre', but got {objective!r}")
    if steps < 1 or jitter < 0 or image_size < 1:
        raise ValueError(
            f"steps and image_size must be positive and jitter non-negative, but got "
            f"steps={steps}, image_size={image_size}, jitter={jitter}"
        )
    device, c_in, n = _device(model), _input_channels(model), len(channels)
    shift = torch.tensor(mean if mean is not None else [0.0] * c_in, dtype=torch.float32)
    scale = torch.tensor(std if std is not None else [1.0] * c_in, dtype=torch.float32)
    if shift.shape != (c_in,) or scale.shape != (c_in,) or (scale <= 0).any():
        raise ValueError(
            f"mean and std need {c_in} values each (std positive), but got {mean!r}, {std!r}"
        )
    shift, scale = shift.view(1, -1, 1, 1).to(device), scale.view(1, -1, 1, 1).to(device)
    generator = torch.Generator().manual_seed(seed)
    noise = 0.02 * torch.randn(1, c_in, image_size, image_size, generator=generator)
    pixels = (0.5 + noise).clamp(0, 1).repeat(n, 1, 1, 1).to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([pixels], lr=lr)
    pick = torch.arange(n, device=device)

    def score(images: torch.Tensor) -> torch.Tensor:  # (B, C, S, S) in 0..1 -> (B,)
        act = _forward_to(model, (images - shift) / scale, layer, detach=False)[layer]
        _check_spatial(act, layer)
        for c in channels:
            _check_channel(act, layer, c)
        maps = act[pick, channels]  # (B, H', W'): image b's own channel
        if objective == "centre":
            return maps[:, maps.shape[1] // 2, maps.shape[2] // 2]
        return maps.flatten(1).mean(1)

    history = []
    with evaluating(model), torch.enable_grad():
        for _ in range(steps):
            dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
            value = score(torch.roll(pixels, shifts=(dy, dx), dims=(2, 3)))  # (B,)
            penalty = l2 * ((pixels - 0.5) ** 2).flatten(1).mean(1) + tv * _total_variation(pixels)
            (pixels.grad,) = torch.autograd.grad((penalty - value).sum(), pixels)
            optimizer.step()  # gradient ascent on value - penalty
            with torch.no_grad():
                pixels.clamp_(0, 1)  # stay a valid image
            history.append(value.detach().cpu())
        with torch.no_grad():
            final = score(pixels).cpu()
    hist = torch.stack(history, dim=1).numpy()  # (B, steps)
    images = pixels.detach().permute(0, 2, 3, 1).cpu().numpy()  # (B, S, S, C)
    return [VisResult(images[i].astype(np.float32), hist[i], float(final[i])) for i in range(n)]


def visualize_channel(
    model: nn.Module,
    layer: str,
    channel: int,
    steps: int = 200,
    lr: float = 0.05,
    jitter: int = 2,
    l2: float = 0.1,
    tv: float = 0.5,
    seed: int = 0,
    image_size: int = 32,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    objective: str = "mean",
) -> VisResult:
    """Activation maximization: the image (pixels in 0..1) that one channel responds to most.

    Starting from seeded mid-grey noise, Adam (``lr``) ascends for ``steps`` steps on
    ``objective - l2 * mean((pixels - 0.5)**2) - tv * total_variation(pixels)``, where the
    objective is the channel's mean activation over positions (``"mean"``) or its centre unit
    (``"centre"``), measured on the image rolled by a random ``(dy, dx)`` in
    ``[-jitter, jitter]`` (jitter and both penalties keep high-frequency noise out). Pixels are
    clipped to 0..1 after every step. The model sees ``(pixels - mean) / std``: pass the
    normalization it was trained with (``pooltools.data.channel_stats`` of its training images);
    ``None`` means no normalization (mean 0, std 1). Aim at the layer *before* a ReLU (its
    BatchNorm): a channel that is off on the starting image has a zero gradient through the ReLU
    and would never move.
    """
    return visualize_channels(
        model, layer, [channel], steps, lr, jitter, l2, tv, seed, image_size, mean, std, objective
    )[0]
