"""Attribution maps: guided backprop (Springenberg et al. 2015) and the deconvnet (Zeiler &
Fergus 2014), written to be read; the tests cross-check both with captum."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pooltools.features.hooks import _check_channel, _check_images, _device, _forward_to, _resolve
from pooltools.models import BlurPool2d, evaluating
from pooltools.nn import ScratchMaxPool2d
from pooltools.shapes import PoolParams, leaf_modules

__all__ = ["guided_backprop", "deconvnet"]

_MAX_POOLS = (nn.MaxPool2d, ScratchMaxPool2d)


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
    model: nn.Module,
    images: torch.Tensor,
    target: int | tuple[str, int],
) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2015): ``d target / d images``, ``(N, C, H, W)``.

    ``target`` is a class index (the logit) or ``(layer, channel)`` (that channel's maximal
    unit in each image). Every ``nn.ReLU`` passes back only positive gradients, and only where
    its input was positive: ``grad_in = (images > 0) * max(grad_out, 0)``, done by backward hooks that
    are removed afterwards. Without ReLUs this is the plain gradient.
    """
    _check_images(images, "images")
    with evaluating(model), torch.enable_grad():
        with _relu_backward_rule(model, lambda grad_in, _grad_out: grad_in.clamp(min=0)):
            inputs = images.detach().to(_device(model)).requires_grad_(True)
            (grad,) = torch.autograd.grad(_target_score(model, inputs, target).sum(), inputs)
    return grad.cpu()


# ------------------------------------------------------------------------------ deconvnet
def _chain(model: nn.Module, layer: str) -> list[tuple[str, nn.Module]]:
    """The leaf layers in registration order, up to and including ``layer`` (or its last leaf)."""
    _resolve(model, layer)
    leaves = leaf_modules(model)
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
    model: nn.Module,
    images: torch.Tensor,
    layer: str,
    channel: int,
    bn: str = "fold",
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
    _check_images(images, "images")
    if bn not in ("fold", "skip"):
        raise ValueError(f"bn must be 'fold' or 'skip', but got {bn!r}")
    chain = _chain(model, layer)
    device = _device(model)
    with evaluating(model), torch.no_grad():
        h = images.detach().to(device)
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
        reference = _forward_to(model, images.detach().to(device), layer)[layer]
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
