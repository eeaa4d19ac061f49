"""Forward hooks that are always removed again: activations of named layers (:func:`capture`,
:func:`capturing`) and the feature layers a notebook walks (:func:`feature_layers`), plus the
checks every technique shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from pooltools.models import BlurPool2d, evaluating
from pooltools.nn import ScratchMaxPool2d

__all__ = ["capture", "capturing", "feature_layers"]

Layers = str | Sequence[str]
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, BlurPool2d, ScratchMaxPool2d)


# ------------------------------------------------------------------------------ plumbing
class _StopForward(Exception):
    """Raised by a hook once every wanted layer has run: the rest of the network is skipped."""


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


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
    images: torch.Tensor,
    layers: Layers,
    batch_size: int | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The activations of the named layers for input ``images``: ``{name: tensor}`` on the CPU.

    Runs in eval mode without gradients, in batches of ``batch_size`` (all at once if
    ``None``), and stops each forward pass after the last requested layer. ``reduce``, if
    given, is applied to every batch's activation before it is kept (e.g. global average
    pooling, or picking one channel), so a large dataset never holds full feature maps.
    For the context-manager form, see :func:`capturing`.
    """
    _check_images(images, "images")
    names = list(_resolve(model, layers))
    step = len(images) if batch_size is None else int(batch_size)
    if step < 1:
        raise ValueError(f"batch_size must be a positive int or None, but got {batch_size}")
    device = _device(model)
    parts: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    with evaluating(model), torch.no_grad():
        for batch in images.split(step):
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
