"""Where real networks downsample: trace one forward pass and list every op that shrinks H x W.

A static walk over ``model.modules()`` misses pooling written in ``forward`` (DenseNet and
MobileNet-V2 call ``F.adaptive_avg_pool2d`` there; Inception-v3's blocks call ``F.max_pool2d``), so
:func:`trace_downsampling` runs the model once under a :class:`torch.overrides.TorchFunctionMode`
that sees every convolution and pooling call, module or functional, and keeps those whose output
is smaller than their input in H or W. Squeeze-and-excitation blocks pool to 1x1 only to rescale
channels (the main path keeps its size), so their pooling is not counted.

On PyTorch's ``meta`` device (the default here) a model is built and run with shapes only: no
numbers, no memory, no weights downloaded; torchvision's ImageNet models take well under a second
each.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from pooltools.models import evaluating
from pooltools.shapes import PoolParams, pair

__all__ = [
    "KINDS",
    "trace_downsampling",
    "build_on_meta",
    "count_by_kind",
    "downsampling_stages",
]

KINDS: tuple[str, ...] = (
    "max pool",
    "avg pool",
    "strided conv",
    "patchify conv",
    "global pool",
    "adaptive pool",
)

_MAX_POOLS = (F.max_pool2d, F._max_pool2d, F.max_pool2d_with_indices)
_ADAPTIVE = (
    F.adaptive_avg_pool2d,
    F.adaptive_max_pool2d,
    F._adaptive_max_pool2d,
    F.adaptive_max_pool2d_with_indices,
)
_MEANS = (torch.mean, torch.Tensor.mean, torch._C.TensorBase.mean)
# Positional parameter names of the calls traced (several are C builtins or dispatch wrappers,
# whose signatures ``inspect`` cannot read).
_POOL_PARAMS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode")
_PARAMS: dict[Any, tuple[str, ...]] = {
    torch.conv2d: ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    F.avg_pool2d: ("input", "kernel_size", "stride", "padding", "ceil_mode"),
    **dict.fromkeys(_MAX_POOLS, _POOL_PARAMS),
    **dict.fromkeys(_ADAPTIVE, ("input", "output_size")),
}
_SQUEEZE_EXCITATION_NAMES = ("SqueezeExcitation", "SElayer", "SEBlock")


@dataclass(frozen=True)
class DownsamplingStep:
    """One op that shrinks the feature map: its kind, where it runs, the sizes and parameters.

    ``where`` is the module path (``"layer2.0.conv1"``); a functional call in a module's
    ``forward`` reads ``"features (in forward)"``. ``kernel``/``stride``/``padding`` are
    ``(h, w)`` pairs, ``None`` for adaptive and global pooling; ``ceil_mode`` only for pools.
    """

    kind: str
    where: str
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    kernel: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] | None = None
    ceil_mode: bool | None = None

    @property
    def factor(self) -> float:
        """How much the height shrinks: ``in_H / out_H``."""
        return self.in_size[0] / self.out_size[0]

    def label(self) -> str:
        """A short label: ``"3x3/2 ceil"``, ``"16x16/16"``, ``"7x7->1x1"``."""
        if self.kernel is None:
            return f"{self.in_size[0]}x{self.in_size[1]}->{self.out_size[0]}x{self.out_size[1]}"
        text = f"{self.kernel[0]}x{self.kernel[1]}/{self.stride[0]}"
        return text + (" ceil" if self.ceil_mode else "")


def _bind(func: Callable[..., Any], args: tuple, kwargs: dict) -> dict[str, Any]:
    """The call's arguments by parameter name (defaults not filled in)."""
    return {**dict(zip(_PARAMS[func], args, strict=False)), **kwargs}


def _spatial(t: Any) -> tuple[int, int] | None:
    if isinstance(t, tuple):  # (values, indices)
        t = t[0]
    if isinstance(t, torch.Tensor) and t.dim() in (3, 4):
        return int(t.shape[-2]), int(t.shape[-1])
    return None


class _Tracer(TorchFunctionMode):
    """Records every conv/pool call that shrinks H or W, with the module it runs in."""

    def __init__(self, stack: list[tuple[str, nn.Module]]) -> None:
        super().__init__()
        self.stack = stack
        self.steps: list[DownsamplingStep] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        kind = self._kind(func, args, kwargs)
        if kind is None:
            return out
        a = _bind(func, args, kwargs) if func in _PARAMS else {"input": args[0]}
        size_in, size_out = _spatial(a["input"]), _spatial(out)
        if kind == "mean" and size_in is not None:
            size_out = (1, 1)  # a mean over H and W, with or without keepdim
        if size_in is None or size_out is None or size_out == size_in:
            return out
        step = self._step(kind, func, a, size_in, size_out)
        if kind in ("conv", "max pool", "avg pool") and step.stride == (1, 1):
            return out  # a "valid" stride-1 window trims a border; it does not downsample
        if any(type(m).__name__ in _SQUEEZE_EXCITATION_NAMES for _, m in self.stack):
            return out  # channel attention: the main path keeps its size
        self.steps.append(step)
        return out

    @staticmethod
    def _kind(func, args, kwargs) -> str | None:
        if func is torch.conv2d:
            return "conv"
        if func in _MAX_POOLS:
            return "max pool"
        if func is F.avg_pool2d:
            return "avg pool"
        if func in _ADAPTIVE:
            return "adaptive"
        if func in _MEANS:
            dims = kwargs.get("dim", args[1] if len(args) > 1 else None)
            dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
            return "mean" if sorted(d % 4 for d in dims) == [2, 3] else None
        return None

    def _where(self, module_types: tuple[type, ...]) -> str:
        if not self.stack:
            return "(model forward)"
        name, module = self.stack[-1]
        name = name or "(model)"
        return name if isinstance(module, module_types) else f"{name} (in forward)"

    def _step(self, kind, func, a, size_in, size_out) -> DownsamplingStep:
        if kind == "conv":
            kernel = pair(tuple(a["weight"].shape[-2:]), "kernel_size")
            stride = pair(a.get("stride", 1), "stride")
            padding = a.get("padding", 0)
            padding = (0, 0) if isinstance(padding, str) else pair(padding, "padding")
            patchify = kernel == stride and padding == (0, 0)
            return DownsamplingStep(
                "patchify conv" if patchify else "strided conv",
                self._where((nn.Conv2d,)),
                size_in, size_out, kernel, stride, padding,
            )  # fmt: skip
        if kind in ("max pool", "avg pool"):
            pool = PoolParams.of(a["kernel_size"], a.get("stride"), a.get("padding", 0),
                                 ceil_mode=a.get("ceil_mode", False), check=False)  # fmt: skip
            module_types = (nn.MaxPool2d,) if kind == "max pool" else (nn.AvgPool2d,)
            return DownsamplingStep(
                kind, self._where(module_types), size_in, size_out, pool.kernel_size,
                pool.stride, pool.padding, pool.ceil_mode,
            )  # fmt: skip
        module_types = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
        kind = "global pool" if size_out == (1, 1) else "adaptive pool"
        return DownsamplingStep(kind, self._where(module_types), size_in, size_out)


def trace_downsampling(
    model: nn.Module, input_size: Sequence[int] = (3, 224, 224), device: str | torch.device = "meta"
) -> list[DownsamplingStep]:
    """Run one ``(1, *input_size)`` input through ``model`` (eval mode, no grad) and return every
    op that shrinks H or W, in the order they run. The model must already be on ``device``."""
    stack: list[tuple[str, nn.Module]] = []
    names = {m: n for n, m in model.named_modules()}

    def push(module, _inputs):
        stack.append((names[module], module))

    def pop(module, _inputs, _output):
        stack.pop()

    handles = []
    for module in names:
        handles.append(module.register_forward_pre_hook(push))
        handles.append(module.register_forward_hook(pop))
    tracer = _Tracer(stack)
    try:
        with evaluating(model), torch.no_grad(), tracer:
            model(torch.zeros(1, *input_size, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return tracer.steps


def build_on_meta(builder: Callable[..., nn.Module], **kwargs: Any) -> nn.Module:
    """``builder(weights=None, **kwargs)`` on the meta device (shapes only, nothing downloaded).

    A builder that computes its layout with real tensors (RegNet's) cannot run on meta; it is
    built on the CPU, then moved to meta. Initialization warnings (GoogLeNet's) are silenced.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.device("meta"):
                return builder(weights=None, **kwargs)
        except NotImplementedError:
            return builder(weights=None, **kwargs).to("meta")


def count_by_kind(steps: Sequence[DownsamplingStep]) -> dict[str, int]:
    """How many steps of each of :data:`KINDS` (zeros included, in that order)."""
    counts = dict.fromkeys(KINDS, 0)
    for step in steps:
        counts[step.kind] += 1
    return counts


@dataclass(frozen=True)
class Stage:
    """One change of resolution on the way through the network, and every op that makes it
    (parallel branches, such as ResNet's shortcut or an Inception block's pool, share it)."""

    in_size: tuple[int, int]
    out_size: tuple[int, int]
    steps: tuple[DownsamplingStep, ...]

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of its steps, in :data:`KINDS` order, each once."""
        return tuple(k for k in KINDS if any(s.kind == k for s in self.steps))


def downsampling_stages(steps: Sequence[DownsamplingStep]) -> list[Stage]:
    """Group steps by the resolution change they make (``in_size -> out_size``), in order."""
    groups: dict[tuple[tuple[int, int], tuple[int, int]], list[DownsamplingStep]] = {}
    for step in steps:
        groups.setdefault((step.in_size, step.out_size), []).append(step)
    return [Stage(i, o, tuple(s)) for (i, o), s in groups.items()]
