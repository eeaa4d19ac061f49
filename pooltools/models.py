"""The model family: one small CNN backbone whose variants differ ONLY in how they downsample.

Every variant is ``stage1 ... stageS`` followed by ``head``. A stage is ``convs_per_stage`` blocks
of 3x3 conv (no bias) + BatchNorm + ReLU (one int for every stage, or one per stage, e.g.
``(1, 2, 2)`` for a cheap full-resolution stage 1); every stage but the last then halves the resolution
(32 -> 16 -> 8 for three stages) in the variant's own way, and the head is global average pooling
+ a linear layer. With the defaults (``widths=(32, 64, 128)``, two convs per stage) ``base`` is::

    stage1: conv1 bn1 relu1 conv2 bn2 relu2   # (N, 32, 32, 32)
            pool (MaxPool2d 2x2)              # (N, 32, 16, 16)
    stage2: conv1 ... relu2                   # (N, 64, 16, 16)
            pool                              # (N, 64, 8, 8)
    stage3: conv1 ... relu2                   # (N, 128, 8, 8)
    head:   gap flatten fc                    # (N, 128, 1, 1) -> (N, 128) -> (N, 10)

The downsampling step of each variant (``stageK.pool`` is the downsampled map wherever there is
one, so a forward hook there compares like with like across variants):

============  ==========================================================================
``base``      ``pool`` = MaxPool2d(2)
``avgpool``   ``pool`` = AvgPool2d(2)
``strided``   no ``pool``; the stage's last conv has stride 2
``allconv``   ``pool`` = learned 3x3 conv, stride 2 (+BN+ReLU): ``pool.conv/bn/relu``
``convpool``  an extra 3x3 conv (+BN+ReLU) ``convK+1`` then ``pool`` = MaxPool2d(2): the
              parameter-matched control for ``allconv`` (Springenberg et al. 2015)
``blurpool``  ``pool.max`` = MaxPool2d(2, stride=1), then ``pool.blur`` = :class:`BlurPool2d`
              (binomial 3x3 blur, stride 2; Zhang 2019)
``unpooled``  no downsampling at all: every stage runs at 32x32, then global average pooling
``dilated``   no downsampling either, but the 3x3 convs of stages 2 and 3 are dilated
              (:data:`DILATIONS`), so the receptive field is ``base``'s without pooling
              (Yu & Koltun 2016): the control that separates field size from downsampling
============  ==========================================================================

Why dilations 3 and 4: every layer of ``dilated`` has stride 1, so each 3x3 conv with dilation
``d`` widens the field by ``2d`` and the field is ``1 + 2 * sum(d)``: always odd. ``base``'s
is 30 px (with the recipe's 1, 2, 2 convs), so 29 or 31 is as close as 3x3 layers can come; one
dilation per stage, (3, 4) reaches 31 with the smallest largest dilation (less of each kernel
falls on the zero padding), and its taps still cover every pixel of the field (no gridding).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "evaluating",
    "VARIANTS",
    "DOWNSAMPLING",
    "DILATIONS",
    "BlurPool2d",
    "build_model",
    "summary",
]


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode inside the block (BatchNorm uses its running statistics, dropout is off);
    every module's own train/eval flag is restored afterwards, even if the block raises."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training

DOWNSAMPLING: dict[str, str] = {
    "base": "max pooling 2x2",
    "avgpool": "average pooling 2x2",
    "strided": "stride-2 conv (pooling removed)",
    "allconv": "learned 3x3 stride-2 conv (+BN+ReLU)",
    "convpool": "extra 3x3 conv (+BN+ReLU), then max pooling 2x2",
    "blurpool": "max pooling 2x2 stride 1, then binomial blur stride 2",
    "unpooled": "none (stride 1 throughout)",
    "dilated": "none; stages 2 and 3 use dilated 3x3 convs (dilation 3, 4)",
}
VARIANTS: tuple[str, ...] = tuple(DOWNSAMPLING)
BLUR_PADDINGS = ("reflect", "zeros")
# Dilation of every 3x3 conv in stage k of ``dilated`` (stage 1 first); other variants use 1.
# A fourth or later stage (not in the recipe) keeps the last value.
DILATIONS: tuple[int, ...] = (1, 3, 4)


class BlurPool2d(nn.Module):
    """Anti-aliased subsampling: a fixed depthwise binomial blur, then keep every ``stride``-th pixel.

    The kernel is ``[1, 2, 1] (x) [1, 2, 1] / 16``, a low-pass filter that removes most of the
    frequencies that subsampling would alias (Zhang 2019, "Making Convolutional Networks
    Shift-Invariant Again"). It is a registered buffer: saved with the model, never trained.
    ``padding`` is ``"reflect"`` (Zhang's default) or ``"zeros"``; either keeps
    ``out = floor((in - 1) / stride) + 1``.
    """

    def __init__(self, channels: int, stride: int = 2, padding: str = "reflect") -> None:
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, but got {channels!r}")
        if not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be a positive int, but got {stride!r}")
        if padding not in BLUR_PADDINGS:
            raise ValueError(f"padding must be one of {BLUR_PADDINGS}, but got {padding!r}")
        self.channels, self.stride, self.padding = channels, stride, padding
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = torch.outer(taps, taps) / 16.0  # (3, 3), sums to 1: flat images stay flat
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).clone())  # (C, 1, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-3] != self.channels:
            raise ValueError(
                f"BlurPool2d expected {self.channels} channels, but got input of shape "
                f"{tuple(x.shape)}"
            )
        if self.padding == "reflect":
            x = F.pad(x, (1, 1, 1, 1), mode="reflect")  # (N, C, H+2, W+2)
            return F.conv2d(x, self.kernel, stride=self.stride, groups=self.channels)
        return F.conv2d(x, self.kernel, stride=self.stride, padding=1, groups=self.channels)

    def receptive_field_params(self) -> tuple[int, int, int, int]:
        """``(kernel, stride, padding, dilation)`` for ``pooltools.shapes.receptive_field``."""
        return 3, self.stride, 1, 1

    def extra_repr(self) -> str:
        return f"{self.channels}, stride={self.stride}, padding={self.padding!r}"


def _conv_bn_relu(
    layers: OrderedDict[str, nn.Module],
    suffix: str,
    c_in: int,
    c_out: int,
    stride: int,
    dilation: int = 1,
) -> None:
    """Append ``conv{suffix}``, ``bn{suffix}``, ``relu{suffix}`` to ``layers``; padding equals
    the dilation, so a stride-1 conv keeps the size."""
    layers[f"conv{suffix}"] = nn.Conv2d(
        c_in, c_out, 3, stride, dilation, dilation, bias=False
    )  # (N, c_out, H/s, W/s)
    layers[f"bn{suffix}"] = nn.BatchNorm2d(c_out)  # (N, c_out, H/s, W/s)
    layers[f"relu{suffix}"] = nn.ReLU()  # (N, c_out, H/s, W/s); not inplace: hooks see BN output


def _downsample(variant: str, channels: int, blur_padding: str) -> nn.Module | None:
    """The module that halves the resolution, or ``None`` where the variant has none."""
    if variant in ("base", "convpool"):
        return nn.MaxPool2d(2)  # (N, C, H/2, W/2)
    if variant == "avgpool":
        return nn.AvgPool2d(2)  # (N, C, H/2, W/2)
    if variant == "allconv":
        return nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(channels, channels, 3, 2, 1, bias=False),  # (N, C, H/2, W/2)
                bn=nn.BatchNorm2d(channels),  # (N, C, H/2, W/2)
                relu=nn.ReLU(),  # (N, C, H/2, W/2)
            )
        )
    if variant == "blurpool":
        return nn.Sequential(
            OrderedDict(
                max=nn.MaxPool2d(2, stride=1),  # (N, C, H-1, W-1)
                blur=BlurPool2d(channels, 2, blur_padding),  # (N, C, H/2, W/2)
            )
        )
    return None  # strided (the conv strides), unpooled and dilated


def _stage(
    variant: str,
    c_in: int,
    c_out: int,
    convs: int,
    downsample: bool,
    blur_padding: str,
    dilation: int = 1,
) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    extra = 1 if variant == "convpool" and downsample else 0
    for i in range(1, convs + extra + 1):
        stride = 2 if variant == "strided" and downsample and i == convs else 1
        _conv_bn_relu(layers, str(i), c_in if i == 1 else c_out, c_out, stride, dilation)
    pool = _downsample(variant, c_out, blur_padding) if downsample else None
    if pool is not None:
        layers["pool"] = pool  # (N, c_out, H/2, W/2)
    return nn.Sequential(layers)


class PoolNet(nn.Sequential):
    """The backbone: ``stage1 ... stageS`` then ``head``; see the module docstring.

    ``variant`` and ``arch_kwargs`` record how it was built, so a checkpoint can rebuild it.
    """

    def __init__(
        self,
        variant: str = "base",
        widths: Sequence[int] = (32, 64, 128),
        convs_per_stage: int | Sequence[int] = 2,
        num_classes: int = 10,
        in_channels: int = 3,
        blur_padding: str = "reflect",
    ) -> None:
        _check_args(variant, widths, convs_per_stage, num_classes, in_channels, blur_padding)
        convs = _per_stage(convs_per_stage, len(widths))
        modules: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = in_channels
        for k, (width, n_convs) in enumerate(zip(widths, convs, strict=True), start=1):
            last = k == len(widths)
            dilation = DILATIONS[min(k, len(DILATIONS)) - 1] if variant == "dilated" else 1
            modules[f"stage{k}"] = _stage(
                variant, c_in, width, n_convs, not last, blur_padding, dilation
            )  # (N, width, H/2**(k-1), W/2**(k-1)) before this stage's pool; 32x32 throughout
            # for unpooled and dilated
            c_in = width
        modules["head"] = nn.Sequential(
            OrderedDict(
                gap=nn.AdaptiveAvgPool2d(1),  # (N, widths[-1], 1, 1)
                flatten=nn.Flatten(),  # (N, widths[-1])
                fc=nn.Linear(c_in, num_classes),  # (N, num_classes)
            )
        )
        super().__init__(modules)
        self.variant = variant
        self.arch_kwargs: dict[str, Any] = {
            "widths": [int(w) for w in widths],
            "convs_per_stage": (
                int(convs_per_stage) if isinstance(convs_per_stage, int) else list(convs)
            ),
            "num_classes": int(num_classes),
            "in_channels": int(in_channels),
            "blur_padding": blur_padding,
        }
        for module in self.modules():
            if isinstance(module, nn.Conv2d):  # He init for ReLU nets, as torchvision's ResNet
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}"


def _check_args(variant, widths, convs_per_stage, num_classes, in_channels, blur_padding) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown model {variant!r}; allowed names are {', '.join(VARIANTS)}")
    if (
        isinstance(widths, (str, bytes))
        or not isinstance(widths, Sequence)
        or len(widths) < 1
        or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths)
    ):
        raise ValueError(
            f"widths must be a non-empty sequence of positive ints, but got {widths!r}"
        )
    if not isinstance(convs_per_stage, int) or isinstance(convs_per_stage, bool):
        if (
            isinstance(convs_per_stage, (str, bytes))
            or not isinstance(convs_per_stage, Sequence)
            or len(convs_per_stage) != len(widths)
            or not all(
                isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in convs_per_stage
            )
        ):
            raise ValueError(
                f"convs_per_stage must be a positive int or a sequence of positive ints, one per "
                f"stage ({len(widths)} here), but got {convs_per_stage!r}"
            )
    for name, value in [
        ("convs_per_stage", convs_per_stage if isinstance(convs_per_stage, int) else 1),
        ("num_classes", num_classes),
        ("in_channels", in_channels),
    ]:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, but got {value!r}")
    if blur_padding not in BLUR_PADDINGS:
        raise ValueError(f"blur_padding must be one of {BLUR_PADDINGS}, but got {blur_padding!r}")


def _per_stage(convs_per_stage: int | Sequence[int], stages: int) -> list[int]:
    """``convs_per_stage`` as one count per stage (an int applies to every stage)."""
    if isinstance(convs_per_stage, int):
        return [convs_per_stage] * stages
    return [int(c) for c in convs_per_stage]


def build_model(
    variant: str,
    widths: Sequence[int] = (32, 64, 128),
    convs_per_stage: int | Sequence[int] = 2,
    num_classes: int = 10,
    **kw: Any,
) -> PoolNet:
    """Build ``variant`` (one of :data:`VARIANTS`); ``kw``: ``in_channels``, ``blur_padding``.

    ``convs_per_stage`` is one int for all stages or one per stage. Same ``widths`` and
    ``convs_per_stage`` give every variant the same convolutions; only the
    downsampling differs. Seed first (``pooltools.config.seed_everything``) for identical weights.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown model {variant!r}; allowed names are {', '.join(VARIANTS)}")
    return PoolNet(variant, widths, convs_per_stage, num_classes, **kw)


# --------------------------------------------------------------------------------------------
# summary: parameters, multiply-accumulates and activation memory, measured with forward hooks


@dataclass(frozen=True)
class LayerSummary:
    """One leaf module: its output shape for a single image, parameters and MACs."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    output_bytes: int
    params: int
    macs: int


@dataclass(frozen=True)
class ModelSummary:
    """Parameter count, multiply-accumulates and activation memory for one image.

    ``macs`` counts convolutions (learned ``Conv2d`` and the fixed ``BlurPool2d`` blur) and
    ``Linear`` layers: ``out_elements * (in_channels / groups) * kh * kw`` and ``in * out``.
    BatchNorm (foldable into the conv at inference), ReLU and pooling (comparisons and a few
    adds) are not counted. ``activation_bytes`` sums the outputs of every leaf module, which is
    what a training step keeps for the backward pass (give or take in-place tricks).
    """

    params: int
    macs: int
    activation_bytes: int
    layers: tuple[LayerSummary, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-accumulates of one forward call for one image (the batch is 1)."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, BlurPool2d):
        return output.numel() * module.kernel.shape[-2] * module.kernel.shape[-1]
    if isinstance(module, nn.Linear):
        return (output.numel() // module.out_features) * module.in_features * module.out_features
    return 0


def summary(model: nn.Module, input_size: Sequence[int] = (3, 32, 32)) -> ModelSummary:
    """Run one zero image through ``model`` (eval mode, no grad) and count, per leaf module,
    its output shape, parameters and MACs. The model's train/eval mode is restored afterwards."""
    records: list[LayerSummary] = []

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        records.append(
            LayerSummary(
                name=names[module],
                kind=type(module).__name__,
                output_shape=tuple(output.shape[1:]),
                output_bytes=output.numel() * output.element_size(),
                params=sum(p.numel() for p in module.parameters(recurse=False)),
                macs=_macs(module, output),
            )
        )

    names = {m: n for n, m in model.named_modules() if not list(m.children())}
    handles = [m.register_forward_hook(hook) for m in names]
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with evaluating(model), torch.no_grad():
            model(torch.zeros(1, *input_size, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return ModelSummary(
        params=sum(p.numel() for p in model.parameters()),
        macs=sum(r.macs for r in records),
        activation_bytes=sum(r.output_bytes for r in records),
        layers=tuple(records),
    )
