"""Models the feature tests share: tiny variants whose BatchNorm is not the identity."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pooltools.models import build_model


def tiny_model(name: str, seed: int = 0, **arch: Any) -> nn.Module:
    """``build_model(name, **arch)`` in eval mode, with random BatchNorm statistics and affine
    parameters (so folding or skipping BatchNorm is really tested), seeded by ``seed``."""
    torch.manual_seed(seed)
    model = build_model(name, **arch)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()
