"""pooltools.features.guided_backprop and deconvnet against captum (an independent implementation).

What exactly is compared:

- **Guided backprop.** captum's ``GuidedBackprop`` replaces each ``nn.ReLU``'s gradient by
  ``relu(grad_in)`` (the ordinary ReLU gradient, then negatives dropped): the same rule as ours.
  Compared on class logits and on a ``(layer, channel)`` target (the channel's maximal unit per
  image, which both reach through the same max over positions).
- **Deconvnet.** captum's ``Deconvolution`` is autograd with each ``nn.ReLU``'s gradient replaced
  by ``relu(grad_out)`` (the forward mask ignored). It has no explicit max-unpooling switches in
  the Zeiler & Fergus sense: it back-propagates through ``MaxPool2d`` with autograd, which sends
  each window's signal to that window's argmax. Those argmax indices are exactly the switches our
  ``deconvnet`` records, and our transposed convs / BatchNorm fold are the backward maps of the
  convs / eval-mode BatchNorm, biases left out in both. So the two agree up to the starting
  signal: ours starts from the unit's *activation*, captum (a gradient) from 1. We compare ours
  with ``activation * captum`` for the maximal unit of a channel, with ``bn="fold"``, on every
  variant (pooled, strided, learned-conv, blur, unpooled and dilated).
"""

from __future__ import annotations

import pytest
import torch
from models_for_tests import tiny_model
from torch import nn

from pooltools import features as fe
from pooltools.models import VARIANTS

captum_attr = pytest.importorskip("captum.attr")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # captum notes its ReLU hooks

TINY = {"widths": (4, 8, 8), "convs_per_stage": (1, 2, 1)}


def tiny(name: str, seed: int = 0) -> nn.Module:
    """A tiny model of this file's architecture (see models_for_tests.tiny_model)."""
    return tiny_model(name, seed, **TINY)


def inputs(n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


class MaxUnit(nn.Module):
    """The maximum over positions of one channel of ``layer``: ``(N,)`` -> a scalar per image."""

    def __init__(self, model: nn.Module, layer: str, channel: int) -> None:
        super().__init__()
        self.model, self.layer, self.channel = model, layer, channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with fe.capturing(self.model, self.layer, detach=False) as acts:
            self.model(x)
        return acts[self.layer][:, self.channel].flatten(1).max(dim=1).values[:, None]  # (N, 1)


@pytest.mark.parametrize("name", VARIANTS)
def test_guided_backprop_equals_captum_on_class_logits(name):
    model, x = tiny(name), inputs()
    ours = fe.guided_backprop(model, images=x, target=3)
    theirs = captum_attr.GuidedBackprop(model).attribute(x.clone(), target=3)
    assert ours.abs().sum() > 0
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["base", "allconv", "unpooled", "dilated"])
def test_guided_backprop_equals_captum_on_a_channel(name):
    model, x = tiny(name), inputs()
    ours = fe.guided_backprop(model, images=x, target=("stage2.relu1", 2))
    theirs = captum_attr.GuidedBackprop(MaxUnit(model, "stage2.relu1", 2)).attribute(
        x.clone(), target=0
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("layer", ["stage2.relu1", "stage3.relu1"])
def test_deconvnet_equals_activation_times_captum_deconvolution(name, layer):
    model, x = tiny(name), inputs()
    channel = int(
        fe.capture(model, images=x, layers=layer)[layer].amax((0, 2, 3)).argmax()
    )  # a live channel
    ours = fe.deconvnet(model, images=x, layer=layer, channel=channel, bn="fold")
    unit = MaxUnit(model, layer, channel)
    with torch.no_grad():
        value = unit(x)  # (N, 1): the activation our deconvnet starts from
    theirs = captum_attr.Deconvolution(unit).attribute(x.clone(), target=0)
    assert ours.abs().sum() > 0
    torch.testing.assert_close(ours, value.view(-1, 1, 1, 1) * theirs, rtol=1e-4, atol=1e-5)


def test_deconvnet_differs_from_guided_backprop():
    """The comparison can fail: the two rules give different maps on the same unit."""
    model, x = tiny("base"), inputs()
    deconv = fe.deconvnet(model, images=x, layer="stage3.relu1", channel=0)
    guided = fe.guided_backprop(model, images=x, target=("stage3.relu1", 0))
    assert not torch.allclose(deconv / deconv.norm(), guided / guided.norm(), atol=1e-3)
