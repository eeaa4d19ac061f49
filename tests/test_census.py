"""The downsampling census: a traced forward pass finds every op that shrinks H x W."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision.models as tvm
from torch import nn
from torchvision.ops import SqueezeExcitation

from pooltools.census import (
    KINDS,
    build_on_meta,
    count_by_kind,
    downsampling_stages,
    trace_downsampling,
)


class Handmade(nn.Module):
    """One of each kind, two of them in forward, plus things that must NOT count."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)  # patchify: 64 -> 16
        self.valid = nn.Conv2d(8, 8, 3)  # stride 1, no padding: 16 -> 14, trims, not downsampling
        self.se = SqueezeExcitation(8, 2)  # pools to 1x1 only to rescale channels
        self.pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # 14 -> 7
        self.same = nn.MaxPool2d(3, stride=1, padding=1)  # keeps the size
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)  # 7 -> 4

    def forward(self, x):
        x = self.pool(self.se(self.valid(self.stem(x))))
        x = self.down(self.same(x))
        x = F.avg_pool2d(x, 2)  # functional: 4 -> 2
        return x.mean((2, 3))  # global pooling written as a mean


def test_a_handmade_model_gives_exactly_the_steps_it_was_built_with():
    steps = trace_downsampling(Handmade(), (3, 64, 64), device="cpu")
    assert [(s.kind, s.where, s.in_size, s.out_size) for s in steps] == [
        ("patchify conv", "stem", (64, 64), (16, 16)),
        ("max pool", "pool", (14, 14), (7, 7)),
        ("strided conv", "down", (7, 7), (4, 4)),
        ("avg pool", "(model) (in forward)", (4, 4), (2, 2)),
        ("global pool", "(model) (in forward)", (2, 2), (1, 1)),
    ]
    pool = steps[1]
    assert (pool.kernel, pool.stride, pool.padding, pool.ceil_mode) == ((3, 3), (2, 2), (0, 0), True)
    assert pool.label() == "3x3/2 ceil" and steps[0].factor == 4
    assert count_by_kind(steps) == {
        "max pool": 1, "avg pool": 1, "strided conv": 1, "patchify conv": 1, "global pool": 1,
        "adaptive pool": 0,
    }  # fmt: skip
    assert list(count_by_kind([])) == list(KINDS)


def _static_walk(model: nn.Module) -> list[tuple[str, str]]:
    """An independent count: modules with stride > 1, and adaptive pools, from the module tree."""
    found = []
    for name, m in model.named_modules():
        stride = getattr(m, "stride", 1)
        stride = stride if isinstance(stride, int) else stride[0]
        if isinstance(m, nn.Conv2d) and stride > 1:
            found.append(("conv", name))
        elif isinstance(m, nn.MaxPool2d) and stride > 1:
            found.append(("max pool", name))
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            found.append(("global pool", name))
    return sorted(found)


def test_resnet18_trace_agrees_with_a_static_walk_of_its_modules():
    model = build_on_meta(tvm.resnet18)
    traced = sorted(
        ("conv" if "conv" in s.kind else s.kind, s.where) for s in trace_downsampling(model)
    )
    assert traced == _static_walk(model)


def test_the_trace_finds_pooling_written_in_forward_that_a_static_walk_misses():
    model = build_on_meta(tvm.densenet121)
    steps = trace_downsampling(model)
    assert steps[-1].kind == "global pool" and "in forward" in steps[-1].where
    assert not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in model.modules())


def test_meta_and_cpu_traces_are_the_same():
    torch.manual_seed(0)
    on_cpu = trace_downsampling(tvm.resnet18(weights=None), device="cpu")
    assert on_cpu == trace_downsampling(build_on_meta(tvm.resnet18))


def test_stages_group_parallel_branches_by_the_resolution_change():
    stages = downsampling_stages(trace_downsampling(build_on_meta(tvm.resnet18)))
    assert [s.in_size[0] for s in stages] == [224, 112, 56, 28, 14, 7]
    assert stages[2].kinds == ("strided conv",) and len(stages[2].steps) == 2  # conv + shortcut
    assert stages[1].kinds == ("max pool",) and stages[-1].kinds == ("global pool",)


@pytest.mark.parametrize("builder", [tvm.regnet_y_400mf, tvm.googlenet])
def test_builders_that_need_real_tensors_or_warn_still_build(builder):
    model = build_on_meta(builder)
    assert next(model.parameters()).device.type == "meta"
    assert trace_downsampling(model)
