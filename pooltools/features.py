"""What a CNN's layers respond to: activations, receptive fields, visualizations and probes.

One function per technique, each built on forward/backward hooks that are always removed again
(even when a forward pass raises), each run in eval mode (BatchNorm uses its running statistics)
with every module's train/eval flag restored afterwards. Tensors come back on the CPU.

=============================  ===============================================================
:func:`capture`                activations of named layers (:func:`capturing`: as a context)
:func:`feature_layers`         the ReLU and pooling outputs, in order (what notebook 4 walks)
:func:`receptive_fields`       the theoretical receptive field of every layer
:func:`effective_receptive_field`  Luo et al. (2016): where the gradient of one unit lands
:func:`top_activating`         the images (and input patches) that excite a channel most
:func:`visualize_channel`      activation maximization by gradient ascent on the input
:func:`guided_backprop`        Springenberg et al. (2015): gradients through "guided" ReLUs
:func:`deconvnet`              Zeiler & Fergus (2014): unpool with max-pool switches, rectify,
                               transposed convs, down to the input
:func:`linear_probe`           Alain & Bengio (2016): how linearly decodable a layer's features are
:func:`linear_probes`          the same for several layers, with one pass over the images
:func:`fit_probe`              a probe on features captured once (full-batch, deterministic)
:func:`conv_depths`            convolutions so far at each feature layer (a fair x axis)
:func:`class_purity`           how class-specific a channel's top-k images are
:func:`mass_square`            the centred square holding a fraction of an ERF's mass
=============================  ===============================================================

Layers are named as in ``model.named_modules()`` (``"stage2.relu2"``, ``"stage1.pool"``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.optimize
import torch
import torch.nn.functional as F
from torch import nn

from pooltools.models import BlurPool2d
from pooltools.nn import ScratchMaxPool2d
from pooltools.shapes import PoolParams, ReceptiveField, receptive_field

__all__ = [
    "capture",
    "capturing",
    "feature_layers",
    "receptive_fields",
    "effective_receptive_field",
    "TopK",
    "top_activating",
    "top_activating_channels",
    "VisResult",
    "visualize_channel",
    "visualize_channels",
    "guided_backprop",
    "deconvnet",
    "ProbeResult",
    "linear_probe",
    "linear_probes",
    "conv_depths",
    "fit_probe",
    "class_purity",
    "mass_square",
]

Layers = str | Sequence[str]
_GLOBAL = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Linear)
_MAX_POOLS = (nn.MaxPool2d, ScratchMaxPool2d)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, BlurPool2d, ScratchMaxPool2d)


# ------------------------------------------------------------------------------ plumbing
class _StopForward(Exception):
    """Raised by a hook once every wanted layer has run: the rest of the network is skipped."""


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode inside the block; every module's own train/eval flag restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


def _resolve(model: nn.Module, layers: Layers) -> dict[str, nn.Module]:
    """``{name: module}`` for the requested names (duplicates dropped, order kept)."""
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError("layers is empty; name at least one layer of the model")
    modules = dict(model.named_modules())
    modules.pop("", None)  # the model itself is not a layer
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise ValueError(
            f"unknown layer name(s) {unknown}; available layers are: {', '.join(modules)}"
        )
    return {n: modules[n] for n in dict.fromkeys(names)}


def _check_channel(act: torch.Tensor, layer: str, channel: int) -> None:
    if not 0 <= channel < act.shape[1]:
        raise ValueError(
            f"channel must be in [0, {act.shape[1]}) for layer {layer!r} with output shape "
            f"{tuple(act.shape)}, but got {channel}"
        )


def _check_spatial(act: torch.Tensor, layer: str) -> None:
    if act.dim() != 4:
        raise ValueError(
            f"layer {layer!r} gives a {act.dim()}-D output of shape {tuple(act.shape)}; this "
            f"needs a spatial (N, C, H, W) layer such as a conv, ReLU or pooling output"
        )


def _check_images(images: torch.Tensor, name: str = "images") -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or len(images) == 0:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a non-empty (N, C, H, W) tensor, but got {shape}")


# ------------------------------------------------------------------------------ capture
@contextmanager
def capturing(
    model: nn.Module, layers: Layers, detach: bool = True
) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of ``layers`` during every forward pass run inside the block.

    ``with capturing(model, ["stage1.relu2", "stage1.pool"]) as acts: model(x)`` fills
    ``acts[name]`` with that layer's latest output (a copy, detached unless ``detach=False``,
    which keeps the autograd graph for gradients with respect to an activation). The caller
    chooses train/eval mode and grad mode. The hooks are removed when the block ends, also when
    it ends with an exception. Unknown names raise ``ValueError`` listing the available ones.
    """
    modules = _resolve(model, layers)
    acts: dict[str, torch.Tensor] = {}

    def hook_for(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            out = output[0] if isinstance(output, tuple) else output  # (values, indices) pools
            acts[name] = out.detach().clone() if detach else out  # clone: in-place ops follow

        return hook

    handles = []
    try:
        for name, module in modules.items():
            handles.append(module.register_forward_hook(hook_for(name)))
        yield acts
    finally:
        for handle in handles:
            handle.remove()


def _forward_to(
    model: nn.Module, x: torch.Tensor, layers: Layers, detach: bool = True
) -> dict[str, torch.Tensor]:
    """One forward pass that stops as soon as every layer in ``layers`` has produced its output."""
    names = list(_resolve(model, layers))
    with capturing(model, names, detach) as acts:

        def stop(*_: Any) -> None:
            if len(acts) == len(names):
                raise _StopForward

        handles = [m.register_forward_hook(stop) for m in _resolve(model, names).values()]
        try:
            model(x)
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
    missing = [n for n in names if n not in acts]
    if missing:
        raise RuntimeError(f"layer(s) {missing} did not run during the model's forward pass")
    return acts


def capture(
    model: nn.Module,
    x: torch.Tensor,
    layers: Layers,
    batch_size: int | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The activations of the named layers for input ``x``: ``{name: tensor}`` on the CPU.

    Runs in eval mode without gradients, in batches of ``batch_size`` (all at once if
    ``None``), and stops each forward pass after the last requested layer. ``reduce``, if
    given, is applied to every batch's activation before it is kept (e.g. global average
    pooling, or picking one channel), so a large dataset never holds full feature maps.
    For the context-manager form, see :func:`capturing`.
    """
    _check_images(x, "x")
    names = list(_resolve(model, layers))
    step = len(x) if batch_size is None else int(batch_size)
    if step < 1:
        raise ValueError(f"batch_size must be a positive int or None, but got {batch_size}")
    device = _device(model)
    parts: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    with _evaluating(model), torch.no_grad():
        for batch in x.split(step):
            acts = _forward_to(model, batch.to(device), names)
            for name in names:
                act = acts[name] if reduce is None else reduce(acts[name])
                parts[name].append(act.cpu())
    return {name: torch.cat(chunks) for name, chunks in parts.items()}


def feature_layers(model: nn.Module) -> list[str]:
    """The ReLU outputs and pooling outputs of ``model``, in order.

    A module named ``pool`` (the downsampled map of :mod:`pooltools.models`, whatever the
    variant makes it) is listed once, and the layers inside it are not: ``allconv``'s
    ``stage1.pool`` (conv+BN+ReLU) and ``blurpool``'s ``stage1.pool`` (max, then blur) each appear
    as ``"stage1.pool"``. Otherwise every ``nn.ReLU`` and every max/average/blur pooling layer
    is listed; global pooling (``head.gap``) is not.
    """
    names: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(n + ".") for n in names):
            continue
        if name.rsplit(".", 1)[-1] == "pool" or isinstance(module, (nn.ReLU, *_POOLS)):
            names.append(name)
    return names


# ------------------------------------------------------------------------------ receptive fields
def _leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaf layers in registration order; a module with ``receptive_field_params`` counts as
    one leaf (as in :func:`pooltools.shapes.receptive_field`)."""
    leaves: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(n + ".") for n, _ in leaves[-1:]):
            continue
        if not list(module.children()) or hasattr(module, "receptive_field_params"):
            leaves.append((name, module))
    return leaves


def receptive_fields(model: nn.Module) -> dict[str, ReceptiveField]:
    """The receptive field of every layer's output, by layer name (in input pixels).

    Spatial layers (convs, pools, blur) get the field computed by
    :func:`pooltools.shapes.receptive_field`; pointwise layers (BatchNorm, ReLU) and containers
    (``"stage1"``, ``allconv``'s ``"stage1.pool"``) get the field of the last spatial layer at
    or before their output. Each field is renamed to its key. Global layers (``head.gap`` and
    after) see the whole image and are left out, as are containers holding them.
    """
    spatial = {f.name: f for f in receptive_field(model)}
    leaves = dict(_leaf_modules(model))
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
    layer: str,
    images: torch.Tensor,
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
    with _evaluating(model), torch.enable_grad():
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
    layer: str,
    channel: int,
    images: torch.Tensor,
    k: int = 9,
    batch_size: int = 256,
) -> TopK:
    """The top-``k`` images for ``channel`` of ``layer``, ranked by the channel's maximum
    activation over positions, with the receptive-field patch around each maximum.

    Forward passes run in batches and keep only the one channel's map. Ties go to the lower
    image index and, within an image, to the first maximum in row-major order.
    """
    return top_activating_channels(model, layer, [channel], images, k, batch_size)[0]


def top_activating_channels(
    model: nn.Module,
    layer: str,
    channels: Sequence[int],
    images: torch.Tensor,
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

    maps = capture(model, images, layer, batch_size, reduce=chosen_channels)[layer]
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
    with _evaluating(model), torch.enable_grad():
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


# ------------------------------------------------------------------------------ guided backprop
def _target_score(model: nn.Module, x: torch.Tensor, target: int | tuple[str, int]) -> torch.Tensor:
    """Per image ``(N,)``: a class logit, or the maximum over positions of one channel."""
    if isinstance(target, tuple):
        layer, channel = target
        act = _forward_to(model, x, layer, detach=False)[layer]  # (N, C', H', W') or (N, F)
        _check_channel(act, layer, channel)
        return act[:, channel].flatten(1).max(dim=1).values if act.dim() > 2 else act[:, channel]
    logits = model(x)  # (N, classes)
    if logits.dim() != 2 or not 0 <= int(target) < logits.shape[1]:
        raise ValueError(
            f"target class must be in [0, {logits.shape[-1]}) for output shape "
            f"{tuple(logits.shape)}, but got {target!r}; or pass (layer, channel)"
        )
    return logits[:, int(target)]


@contextmanager
def _relu_backward_rule(
    model: nn.Module, rule: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> Iterator[None]:
    """Replace every ``nn.ReLU``'s backward by ``rule(grad_input, grad_output)`` in the block.

    In-place ReLUs are made out-of-place meanwhile (full backward hooks need that).
    """
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    inplace = [m.inplace for m in relus]
    handles = []

    def hook(_module: nn.Module, grad_input: Any, grad_output: Any) -> tuple[torch.Tensor]:
        return (rule(grad_input[0], grad_output[0]),)

    try:
        for relu in relus:
            relu.inplace = False
            handles.append(relu.register_full_backward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
        for relu, flag in zip(relus, inplace, strict=True):
            relu.inplace = flag


def guided_backprop(
    model: nn.Module, x: torch.Tensor, target: int | tuple[str, int]
) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2015): ``d target / d x``, ``(N, C, H, W)``.

    ``target`` is a class index (the logit) or ``(layer, channel)`` (that channel's maximal
    unit in each image). Every ``nn.ReLU`` passes back only positive gradients, and only where
    its input was positive: ``grad_in = (x > 0) * max(grad_out, 0)``, done by backward hooks that
    are removed afterwards. Without ReLUs this is the plain gradient.
    """
    _check_images(x, "x")
    with _evaluating(model), torch.enable_grad():
        with _relu_backward_rule(model, lambda grad_in, _grad_out: grad_in.clamp(min=0)):
            inputs = x.detach().to(_device(model)).requires_grad_(True)
            (grad,) = torch.autograd.grad(_target_score(model, inputs, target).sum(), inputs)
    return grad.cpu()


# ------------------------------------------------------------------------------ deconvnet
def _chain(model: nn.Module, layer: str) -> list[tuple[str, nn.Module]]:
    """The leaf layers in registration order, up to and including ``layer`` (or its last leaf)."""
    _resolve(model, layer)
    leaves = _leaf_modules(model)
    inside = [i for i, (n, _) in enumerate(leaves) if n == layer or n.startswith(layer + ".")]
    if not inside:
        raise ValueError(f"layer {layer!r} holds no layer that deconvnet can invert")
    return leaves[: inside[-1] + 1]


def _output_padding(in_size: int, out_size: int, k: int, s: int, p: int, d: int) -> int:
    return in_size - ((out_size - 1) * s - 2 * p + d * (k - 1) + 1)


def _linear_transpose(
    module: nn.Module, signal: torch.Tensor, in_shape: torch.Size
) -> torch.Tensor:
    """The transposed map of a linear layer without bias (average/blur pooling, flatten)."""
    with torch.enable_grad():
        zero = torch.zeros(in_shape, device=signal.device, requires_grad=True)
        (back,) = torch.autograd.grad(module(zero), zero, signal)
    return back


def _step_down(module: nn.Module, signal: torch.Tensor, memory: Any, bn: str) -> torch.Tensor:
    """Project ``signal`` from a layer's output to its input, deconvnet style."""
    if isinstance(module, nn.ReLU):
        return F.relu(signal)  # rectify the signal itself (the forward mask is not used)
    if isinstance(module, nn.BatchNorm2d):
        if bn == "skip":
            return signal
        if module.running_var is None:
            raise ValueError("bn='fold' needs BatchNorm running statistics; use bn='skip'")
        gain = torch.rsqrt(module.running_var + module.eps)  # (C,)
        if module.weight is not None:
            gain = gain * module.weight
        return signal * gain.view(1, -1, 1, 1)  # the transposed (diagonal) linear part
    if isinstance(module, nn.Conv2d):
        if isinstance(module.padding, str) or module.padding_mode != "zeros":
            raise ValueError(
                f"deconvnet supports convs with integer zero padding, but got "
                f"padding={module.padding!r}, padding_mode={module.padding_mode!r}"
            )
        in_shape = memory
        pads = [
            _output_padding(in_shape[i + 2], signal.shape[i + 2], module.kernel_size[i],
                            module.stride[i], module.padding[i], module.dilation[i])
            for i in (0, 1)
        ]  # fmt: skip
        return F.conv_transpose2d(  # the same weights, transposed; the bias is left out
            signal, module.weight, None, module.stride, module.padding, tuple(pads),
            module.groups, module.dilation,
        )  # fmt: skip
    if isinstance(module, _MAX_POOLS):
        indices, in_shape = memory
        pool = PoolParams.of(module.kernel_size, module.stride, module.padding, module.dilation)
        kernel, stride = pool.kernel_size, pool.stride
        if all(s >= d * (k - 1) + 1 for k, s, d in zip(kernel, stride, pool.dilation, strict=True)):
            # windows do not overlap: every input pixel is some window's switch at most once
            return F.max_unpool2d(signal, indices, kernel, stride, module.padding, in_shape[-2:])
        n, c, h, w = in_shape  # overlapping windows: a pixel may be the switch of several; sum
        flat = signal.new_zeros(n, c, h * w).scatter_add_(2, indices.flatten(2), signal.flatten(2))
        return flat.view(in_shape)
    if isinstance(module, nn.Linear):
        return signal @ module.weight  # (N, out) -> (N, in), bias left out
    if isinstance(module, (nn.AvgPool2d, nn.AdaptiveAvgPool2d, BlurPool2d, nn.Flatten)):
        return _linear_transpose(module, signal, memory)
    if isinstance(module, (nn.Identity, nn.Dropout, nn.Dropout2d)):
        return signal
    raise TypeError(
        f"deconvnet does not know layer {type(module).__name__}; supported are Conv2d, "
        f"BatchNorm2d, ReLU, MaxPool2d, AvgPool2d, BlurPool2d, AdaptiveAvgPool2d, Flatten, "
        f"Linear, Identity and Dropout"
    )


def deconvnet(
    model: nn.Module, x: torch.Tensor, layer: str, channel: int, bn: str = "fold"
) -> torch.Tensor:
    """Zeiler & Fergus (2014) deconvnet reconstruction of one unit, ``(N, C, H, W)``.

    Forward up to ``layer``, recording each max pool's switches (argmax indices). At the top,
    keep only the maximal unit of ``channel`` in each image (its activation; all else zero),
    then go back down layer by layer: ``max_unpool2d`` with the recorded switches at a max pool
    (a scatter-add where windows overlap, as ``blurpool``'s stride-1 max), ReLU applied to the
    signal, transposed convolution with the same weights (biases left out), the transposed map
    of average or blur pooling. In networks without max pooling (``strided``, ``allconv``,
    ``unpooled``) the transposed stride-2 convs (or nothing) do the upsampling, and no switches
    steer the signal. BatchNorm (eval mode: a per-channel scale and shift) is folded in by
    default: the signal is multiplied by ``weight / sqrt(running_var + eps)``, the transpose of
    its linear part, as for a conv; ``bn="skip"`` passes the signal through unchanged (Zeiler &
    Fergus had no BatchNorm).

    The model must run its layers in registration order (nested ``nn.Sequential``, as every
    ``pooltools.models`` variant); this is checked.
    """
    _check_images(x, "x")
    if bn not in ("fold", "skip"):
        raise ValueError(f"bn must be 'fold' or 'skip', but got {bn!r}")
    chain = _chain(model, layer)
    device = _device(model)
    with _evaluating(model), torch.no_grad():
        h = x.detach().to(device)
        memories: list[Any] = []
        for _name, module in chain:
            if isinstance(module, _MAX_POOLS):
                in_shape = h.shape
                h, indices = F.max_pool2d(
                    h, module.kernel_size, module.stride, module.padding, module.dilation,
                    module.ceil_mode, return_indices=True,
                )  # fmt: skip
                memories.append((indices, in_shape))  # the switches
            else:
                memories.append(h.shape)
                h = module(h)
        reference = _forward_to(model, x.detach().to(device), layer)[layer]
        if h.shape != reference.shape or not torch.allclose(h, reference, rtol=1e-4, atol=1e-5):
            raise ValueError(
                f"the model does not run its layers in registration order up to {layer!r}; "
                f"deconvnet needs a plain chain of layers (nested nn.Sequential)"
            )
        _check_channel(h, layer, channel)
        signal = torch.zeros_like(h)  # (N, C', H', W') or (N, F)
        if h.dim() == 4:
            values, where = h[:, channel].flatten(1).max(dim=1)  # (N,) the maximal unit
            signal[:, channel].view(len(h), -1).scatter_(1, where[:, None], values[:, None])
        else:
            signal[:, channel] = h[:, channel]
        for (_name, module), memory in zip(reversed(chain), reversed(memories), strict=True):
            signal = _step_down(module, signal, memory, bn)
    return signal.cpu()


# ------------------------------------------------------------------------------ linear probe
@dataclass(frozen=True)
class ProbeResult:
    """Accuracy (0..1) of the linear probe on its training and test features; ``features``:
    their number (the layer's channels)."""

    train_acc: float
    test_acc: float
    features: int


def _pooled(act: torch.Tensor) -> torch.Tensor:
    return act.mean(dim=(2, 3)) if act.dim() == 4 else act.flatten(1)  # (N, C)


def _standardize(f_train: torch.Tensor, f_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets scaled with the training mean and std (float64 in, float32 out); features that
    are constant on the training set (dead channels) become 0, not NaN."""
    mu, sd = f_train.mean(0), f_train.std(0, unbiased=False)  # (F,), (F,)
    sd = torch.where(sd > 1e-12, sd, torch.ones_like(sd))
    return ((f_train - mu) / sd).float(), ((f_test - mu) / sd).float()


def linear_probe(
    model: nn.Module,
    layer: str,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    epochs: int = 30,
    lr: float = 0.01,
    seed: int = 0,
    batch_size: int = 256,
    weight_decay: float = 0.0,
) -> ProbeResult:
    """Train a linear softmax classifier on ``layer``'s globally average-pooled features.

    ``train`` and ``test`` are ``(images (N, C, H, W) normalized, labels (N,))``. Features are
    computed once (:func:`capture`, eval mode), standardized with the training mean and std
    (constant features stay 0), and the classifier (zero-initialized, so only the seeded
    mini-batch order is random) is trained with Adam (``lr``, ``weight_decay``) and cross-entropy
    for ``epochs`` epochs. Softmax regression is convex: the result measures the features, not
    the optimizer.
    """
    return linear_probes(
        model, [layer], train, test, epochs, lr, seed, batch_size, weight_decay
    )[layer]


def linear_probes(
    model: nn.Module,
    layers: Sequence[str],
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    epochs: int = 30,
    lr: float = 0.01,
    seed: int = 0,
    batch_size: int = 256,
    weight_decay: float = 0.0,
) -> dict[str, ProbeResult]:
    """:func:`linear_probe` for several layers: ``{layer: ProbeResult}``, in the order given.

    The features of every layer come from one pass over the images (the expensive part); each
    layer's probe is then trained exactly as :func:`linear_probe` trains it alone.
    """
    (x_train, y_train), (x_test, y_test) = train, test
    y_train, y_test = torch.as_tensor(y_train).long(), torch.as_tensor(y_test).long()
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError(
            f"images and labels differ in length: train {len(x_train)} vs {len(y_train)}, "
            f"test {len(x_test)} vs {len(y_test)}"
        )
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs}, {batch_size}")
    names = list(_resolve(model, layers))
    feats_train = capture(model, x_train, names, batch_size, reduce=_pooled)  # {layer: (N, F)}
    feats_test = capture(model, x_test, names, batch_size, reduce=_pooled)
    classes = int(max(y_train.max(), y_test.max())) + 1
    return {
        name: _fit_probe(
            *_standardize(feats_train[name].double(), feats_test[name].double()),
            y_train, y_test, classes, epochs, lr, seed, batch_size, weight_decay,
        )  # fmt: skip
        for name in names
    }


def _fit_probe(
    f_train: torch.Tensor,
    f_test: torch.Tensor,
    y_train: torch.Tensor,
    y_test: torch.Tensor,
    classes: int,
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int,
    weight_decay: float,
) -> ProbeResult:
    """Softmax regression from zero weights on standardized features ``(N, F)``."""
    probe = nn.Linear(f_train.shape[1], classes)
    nn.init.zeros_(probe.weight)
    nn.init.zeros_(probe.bias)
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    with torch.enable_grad():
        for _ in range(epochs):
            for idx in torch.randperm(len(f_train), generator=generator).split(batch_size):
                loss = F.cross_entropy(probe(f_train[idx]), y_train[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        train_acc = (probe(f_train).argmax(1) == y_train).double().mean().item()
        test_acc = (probe(f_test).argmax(1) == y_test).double().mean().item()
    return ProbeResult(train_acc, test_acc, int(f_train.shape[1]))


# ------------------------------------------------------------------------------ comparing networks
def conv_depths(model: nn.Module) -> dict[str, int]:
    """For every :func:`feature_layers` layer, the number of convolutions the input has passed.

    Every ``nn.Conv2d`` up to and including the layer counts (``allconv``'s learned stride-2
    ``stage1.pool`` is one; a fixed blur is not). This is the x axis on which layers of networks
    with and without pooling are compared like with like.
    """
    wanted = set(feature_layers(model))
    depths: dict[str, int] = {}
    count = 0
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            count += 1
        if name in wanted:  # a container (allconv's pool) is visited before its conv: recount
            inner = sum(isinstance(m, nn.Conv2d) for m in module.modules())
            depths[name] = count + inner
    return depths


def fit_probe(
    f_train: torch.Tensor,
    y_train: torch.Tensor,
    f_test: torch.Tensor,
    y_test: torch.Tensor,
    l2: float = 1e-3,
    max_iter: int = 200,
) -> ProbeResult:
    """A linear softmax probe on precomputed features ``(N, F)``, solved to convergence.

    Features are standardized with the training mean and std (constant ones become 0); the
    classifier starts from zero and minimizes mean cross-entropy plus ``l2 * |W|^2 / 2`` with
    scipy's full-batch L-BFGS-B (float64, on one thread: fast on a busy CPU too). The problem is convex and the solver has no
    randomness, so the same features give the same probe: any spread between probes comes
    from the data they were given. Use it with features captured once (:func:`capture` with a
    ``reduce``) to probe many layers and subsets cheaply.
    """
    y_train, y_test = torch.as_tensor(y_train).long(), torch.as_tensor(y_test).long()
    if f_train.dim() != 2 or f_test.dim() != 2 or f_train.shape[1] != f_test.shape[1]:
        raise ValueError(
            f"features must be (N, F) with the same F, but got train {tuple(f_train.shape)} "
            f"and test {tuple(f_test.shape)}"
        )
    if len(f_train) != len(y_train) or len(f_test) != len(y_test):
        raise ValueError(
            f"features and labels differ in length: train {len(f_train)} vs {len(y_train)}, "
            f"test {len(f_test)} vs {len(y_test)}"
        )
    x_train, x_test = (t.double() for t in _standardize(f_train.double(), f_test.double()))
    classes = int(max(y_train.max(), y_test.max())) + 1
    onehot = F.one_hot(y_train, classes).double()  # (N, K)
    n, d = x_train.shape

    def loss_and_grad(theta_np: np.ndarray) -> tuple[float, np.ndarray]:
        theta = torch.from_numpy(theta_np)
        weight, bias = theta[: d * classes].view(d, classes), theta[d * classes :]
        log_p = torch.log_softmax(x_train @ weight + bias, dim=1)  # (N, K)
        loss = -(onehot * log_p).sum() / n + 0.5 * l2 * weight.square().sum()
        delta = (log_p.exp() - onehot) / n  # (N, K): d loss / d logits
        grad = torch.cat([(x_train.T @ delta + l2 * weight).flatten(), delta.sum(0)])
        return float(loss), grad.numpy()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: a second thread only waits (badly, on a busy CPU)
    try:
        theta = scipy.optimize.minimize(
            loss_and_grad, np.zeros(d * classes + classes), jac=True, method="L-BFGS-B",
            options={"maxiter": max_iter},
        ).x  # fmt: skip
        weight = torch.from_numpy(theta[: d * classes]).view(d, classes)
        bias = torch.from_numpy(theta[d * classes :])
        train_acc = ((x_train @ weight + bias).argmax(1) == y_train).double().mean().item()
        test_acc = ((x_test @ weight + bias).argmax(1) == y_test).double().mean().item()
    finally:
        torch.set_num_threads(threads)
    return ProbeResult(train_acc, test_acc, int(d))


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


def mass_square(erf: np.ndarray, fraction: float = 0.9) -> int:
    """Side (px) of the smallest centred square that holds ``fraction`` of the map's mass.

    A square of side ``s`` in an ``(H, W)`` map starts at row ``(H - s) // 2`` and column
    ``(W - s) // 2``. Used on :func:`effective_receptive_field` maps to say how much of the
    theoretical field a unit's sensitivity actually fills.
    """
    erf = np.asarray(erf, dtype=np.float64)
    if erf.ndim != 2 or not 0 < fraction <= 1 or erf.min() < 0 or erf.sum() <= 0:
        raise ValueError(
            f"erf must be a non-negative (H, W) map with positive mass and fraction in (0, 1], "
            f"but got shape {erf.shape} and fraction {fraction}"
        )
    h, w = erf.shape
    total = erf.sum()
    for side in range(1, max(h, w) + 1):
        top, left = max((h - side) // 2, 0), max((w - side) // 2, 0)
        if erf[top : top + side, left : left + side].sum() >= fraction * total * (1 - 1e-12):
            return side
    return max(h, w)
