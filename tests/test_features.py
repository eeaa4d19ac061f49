"""pooltools.features: each technique checked against PyTorch itself or a toy with a known answer."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from models_for_tests import tiny_model
from torch import nn

from pooltools import features as fe
from pooltools.features import probes
from pooltools.models import VARIANTS, build_model
from pooltools.shapes import receptive_field

TINY = {"widths": (4, 8, 8), "convs_per_stage": 1}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (a second one spin-waits on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(name: str, seed: int = 0) -> nn.Module:
    """A tiny model with non-trivial BatchNorm statistics, so BN is not the identity."""
    return tiny_model(name, seed, **TINY)


def images(n: int = 4, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def hook_count(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


class Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


# ------------------------------------------------------------------------------ capture
def test_capture_equals_running_the_layers_by_hand():
    model, x = tiny("base"), images()
    acts = fe.capture(
        model, images=x, layers=["stage1.conv1", "stage1.relu1", "stage1.pool", "stage2"]
    )
    with torch.no_grad():
        s1 = model.stage1
        conv = s1.conv1(x)
        relu = F.relu(s1.bn1(conv))
        pool = F.max_pool2d(relu, 2)
    torch.testing.assert_close(acts["stage1.conv1"], conv)
    torch.testing.assert_close(acts["stage1.relu1"], relu)
    torch.testing.assert_close(acts["stage1.pool"], pool)
    torch.testing.assert_close(acts["stage2"], model.stage2(pool).detach())
    assert not any(a.requires_grad for a in acts.values())


def test_capture_in_batches_and_with_reduce_gives_the_same_values():
    model, x = tiny("allconv"), images(7)
    whole = fe.capture(model, images=x, layers="stage2.relu1")["stage2.relu1"]
    batched = fe.capture(model, images=x, layers="stage2.relu1", batch_size=3)["stage2.relu1"]
    pooled = fe.capture(
        model, images=x, layers="stage2.relu1", batch_size=2, reduce=lambda a: a.mean((2, 3))
    )
    torch.testing.assert_close(batched, whole)
    torch.testing.assert_close(pooled["stage2.relu1"], whole.mean((2, 3)))


def test_capture_uses_eval_mode_and_restores_train_mode_and_bn_statistics():
    model, x = tiny("base").train(), images()
    model.stage1.bn1.eval()  # a mixed state must come back as it was
    running = model.stage1.bn1.running_mean.clone()
    acts = fe.capture(model, images=x, layers="stage1.bn1")["stage1.bn1"]
    torch.testing.assert_close(acts, model.stage1.bn1(model.stage1.conv1(x)).detach())
    assert model.training and model.stage2.bn1.training and not model.stage1.bn1.training
    assert torch.equal(model.stage2.bn1.running_mean, tiny("base").stage2.bn1.running_mean)
    assert torch.equal(model.stage1.bn1.running_mean, running)


def test_capturing_keeps_the_latest_output_and_can_keep_the_graph():
    model = tiny("base")
    with fe.capturing(model, "stage1.relu1") as acts:
        model(images(2, seed=1))
        model(images(3, seed=2))
    assert acts["stage1.relu1"].shape == (3, 4, 16, 16)
    x = images(2).requires_grad_(True)
    with fe.capturing(model, ["stage1.conv1"], detach=False) as acts:
        model(x)
    (grad,) = torch.autograd.grad(acts["stage1.conv1"].sum(), x)
    expected = F.conv_transpose2d(torch.ones(2, 4, 16, 16), model.stage1.conv1.weight, padding=1)
    torch.testing.assert_close(grad, expected)


def test_hooks_are_removed_even_when_the_forward_pass_raises():
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(inplace=True), Boom())
    x = images(1, 8)
    assert hook_count(model) == 0
    with pytest.raises(RuntimeError, match="boom"):
        fe.capture(
            model, images=x, layers=["0", "2"]
        )  # "2" is never reached: the forward raises first
    with pytest.raises(RuntimeError, match="boom"), fe.capturing(model, ["0", "1"]):
        model(x)
    with pytest.raises(RuntimeError, match="boom"):
        fe.guided_backprop(model, images=x, target=0)  # installs backward hooks on the ReLU
    with pytest.raises(RuntimeError, match="boom"):
        fe.visualize_channel(model, "2", 0, steps=2)
    assert hook_count(model) == 0
    assert model[1].inplace  # the guided-ReLU hook made it out-of-place meanwhile
    assert model.training


def test_unknown_layer_names_are_refused_with_the_available_ones():
    model = tiny("base")
    with pytest.raises(
        ValueError, match=r"\['stage9'\].*available layers are: stage1, stage1.conv1"
    ):
        fe.capture(model, images=images(), layers=["stage1.relu1", "stage9"])
    with pytest.raises(ValueError, match="available layers"):
        fe.top_activating(model, layer="nope", channel=0, images=images())
    with pytest.raises(ValueError, match="layers is empty"):
        fe.capture(model, images=images(), layers=[])


# ------------------------------------------------------------------------------ layers, fields
def test_feature_layers_lists_relu_and_pool_outputs_in_order():
    base = fe.feature_layers(build_model("base"))
    assert base == [
        "stage1.relu1", "stage1.relu2", "stage1.pool",
        "stage2.relu1", "stage2.relu2", "stage2.pool",
        "stage3.relu1", "stage3.relu2",
    ]  # fmt: skip
    assert fe.feature_layers(build_model("allconv"))[:3] == [
        "stage1.relu1",
        "stage1.relu2",
        "stage1.pool",
    ]
    assert fe.feature_layers(build_model("blurpool"))[:3] == [
        "stage1.relu1",
        "stage1.relu2",
        "stage1.pool",
    ]
    assert fe.feature_layers(build_model("strided")) == [n for n in base if "pool" not in n]
    assert fe.feature_layers(build_model("unpooled")) == [n for n in base if "pool" not in n]


@pytest.mark.parametrize("name", VARIANTS)
def test_receptive_fields_name_every_feature_layer_and_agree_with_shapes(name):
    model = tiny(name)
    fields = fe.receptive_fields(model)
    spatial = {f.name: f for f in receptive_field(model)}
    for layer, field in spatial.items():
        assert fields[layer] == field
    for layer in fe.feature_layers(model):
        assert fields[layer].name == layer
    assert fields["stage1.relu1"].size == 3  # one 3x3 conv
    last_conv = [n for n in spatial if n.startswith("stage1.")][-1]
    assert (fields["stage1"].size, fields["stage1"].jump) == (
        spatial[last_conv].size,
        spatial[last_conv].jump,
    )
    assert not any(n.startswith("head") for n in fields)


def _rf_box(field, unit_row: int, unit_col: int) -> tuple[int, int, int, int]:
    top = round(field.start - (field.size - 1) / 2) + unit_row * field.jump
    left = round(field.start - (field.size - 1) / 2) + unit_col * field.jump
    return top, left, top + field.size, left + field.size


def _support_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return rows.min(), cols.min(), rows.max() + 1, cols.max() + 1


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([1, 3, 5]), st.integers(1, 2), st.integers(0, 1), st.integers(1, 2)
        ),
        min_size=1,
        max_size=4,
    )
)
def test_erf_support_of_a_positive_conv_net_is_exactly_the_receptive_field(layers):
    """All weights and inputs positive: no cancellation, so every pixel of the theoretical field
    has a nonzero gradient, and no pixel outside it does."""
    assume(all(p <= (d * (k - 1)) // 2 for k, _s, p, d in layers))
    torch.manual_seed(0)
    modules: list[nn.Module] = []
    c = 2
    for k, s, p, d in layers:
        conv = nn.Conv2d(c, 3, k, s, p, d)
        nn.init.uniform_(conv.weight, 0.1, 1.0)
        modules += [conv, nn.ReLU()]
        c = 3
    model = nn.Sequential(*modules).double()
    field = fe.receptive_fields(model)[str(len(modules) - 1)]
    size = 3 * field.size + 4
    x = torch.rand(3, 2, size, size, dtype=torch.float64) + 0.1
    out = model(x)
    top, left, bottom, right = _rf_box(field, out.shape[2] // 2, out.shape[3] // 2)
    assume(top >= 0 and left >= 0 and bottom <= size and right <= size)
    erf = fe.effective_receptive_field(model, layer=str(len(modules) - 1), images=x)
    assert erf.shape == (size, size) and erf.max() == 1.0 and erf.min() >= 0
    assert _support_box(erf > 0) == (top, left, bottom, right)
    if all(d == 1 and s <= k for k, s, _p, d in layers):  # no gaps between the taps
        assert (erf > 0).sum() == field.size**2
    one_channel = fe.effective_receptive_field(
        model, layer=str(len(modules) - 1), images=x, channel=2
    )
    np.testing.assert_array_equal(one_channel > 0, erf > 0)


@pytest.mark.parametrize("name", VARIANTS)
def test_erf_stays_inside_the_theoretical_field_in_every_variant(name):
    model, x = tiny(name), images(3, 32)
    layer = fe.feature_layers(model)[-1]
    out = fe.capture(model, images=x[:1], layers=layer)[layer]
    box = _rf_box(fe.receptive_fields(model)[layer], out.shape[2] // 2, out.shape[3] // 2)
    erf = fe.effective_receptive_field(
        model, layer=layer, images=x
    )  # all channels: some unit is alive
    inside = np.zeros_like(erf, dtype=bool)
    inside[max(box[0], 0) : box[2], max(box[1], 0) : box[3]] = True
    assert erf.max() == 1.0
    assert (erf[~inside] == 0).all()


def test_erf_of_a_single_max_pool_follows_the_switch():
    """One image through a 2x2 max pool: the gradient reaches only the window's maximum."""
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 2, 3] = 5.0  # the winner of window (1, 1), the centre unit of the 2x2 output
    erf = fe.effective_receptive_field(nn.Sequential(nn.MaxPool2d(2)), layer="0", images=x)
    expected = np.zeros((4, 4), dtype=np.float32)
    expected[2, 3] = 1.0
    np.testing.assert_array_equal(erf, expected)


# ------------------------------------------------------------------------------ top-k
def bright_pixel_images() -> tuple[torch.Tensor, list[tuple[int, int]], list[float]]:
    """Dim noise, each image with one bright pixel of its own brightness and place."""
    gen = torch.Generator().manual_seed(0)
    x = 0.5 * torch.rand(6, 1, 12, 12, generator=gen)
    spots = [(5, 6), (0, 0), (11, 3), (7, 11), (2, 9), (6, 1)]
    brightness = [2.0, 5.0, 3.0, 1.5, 4.0, 2.5]
    for i, ((r, c), b) in enumerate(zip(spots, brightness, strict=True)):
        x[i, 0, r, c] = b
    return x, spots, brightness


def pixel_detector() -> nn.Sequential:
    """conv = identity (a 3x3 kernel with 1 in the middle), then a 2x2 max pool."""
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0
    return nn.Sequential(conv, nn.MaxPool2d(2))


def test_top_activating_finds_the_brightest_pixels_with_fields_centred_on_them():
    x, spots, brightness = bright_pixel_images()
    top = fe.top_activating(pixel_detector(), layer="0", channel=0, images=x, k=4, batch_size=4)
    order = np.argsort(brightness)[::-1][:4]
    assert top.indices.tolist() == order.tolist()
    torch.testing.assert_close(top.values, torch.tensor(brightness)[order.copy()])
    for i, image in enumerate(order):
        r, c = spots[image]
        assert top.positions[i].tolist() == [r, c]
        expected = (max(r - 1, 0), max(c - 1, 0), min(r + 2, 12), min(c + 2, 12))
        assert tuple(top.boxes[i].tolist()) == expected
        assert top.patches[i, 0, 1, 1] == brightness[image]  # the centre of the 3x3 patch
    assert top.patches.shape == (4, 1, 3, 3)
    assert (top.patches[0, 0, 0, :] == 0).all() and (top.patches[0, 0, :, 0] == 0).all()  # (0, 0)


def test_top_activating_patches_are_crops_of_the_zero_padded_images():
    x, spots, _ = bright_pixel_images()
    top = fe.top_activating(
        pixel_detector(), layer="1", channel=0, images=x, k=6
    )  # after the pool: field 4, jump 2
    field = fe.receptive_fields(pixel_detector())["1"]
    assert (field.size, field.jump) == (4, 2)
    padded = F.pad(x, (4, 4, 4, 4))
    for i, image in enumerate(top.indices.tolist()):
        t, left, b, right = _rf_box(field, *top.positions[i].tolist())
        assert t <= spots[image][0] < b and left <= spots[image][1] < right
        torch.testing.assert_close(
            top.patches[i], padded[image, :, t + 4 : b + 4, left + 4 : right + 4]
        )
        assert top.boxes[i].tolist() == [max(t, 0), max(left, 0), min(b, 12), min(right, 12)]


def test_top_activating_refuses_bad_arguments():
    model, x = tiny("base"), images()
    with pytest.raises(ValueError, match=r"k must be in \[1, 4\]"):
        fe.top_activating(model, layer="stage1.relu1", channel=0, images=x, k=5)
    with pytest.raises(ValueError, match=r"channel must be in \[0, 4\)"):
        fe.top_activating(model, layer="stage1.relu1", channel=4, images=x, k=2)
    with pytest.raises(ValueError, match="global layer"):
        fe.top_activating(model, layer="head.fc", channel=0, images=x, k=2)


# ------------------------------------------------------------------------------ visualization
def test_visualize_channel_drives_the_channel_far_above_random_images():
    model = tiny("base")
    layer, channel, stats = "stage3.relu1", 3, {"mean": (0.5,) * 3, "std": (0.25,) * 3}
    result = fe.visualize_channel(model, layer, channel, steps=40, lr=0.1, **stats)
    pixels = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    baseline = fe.capture(model, images=(pixels - 0.5) / 0.25, layers=layer)[layer][
        :, channel
    ].mean((1, 2))
    assert result.activation > baseline.mean() + 10 * baseline.std()
    assert result.activation > 5 * baseline.mean()
    assert result.image.shape == (32, 32, 3) and result.image.dtype == np.float32
    assert result.image.min() >= 0 and result.image.max() <= 1
    assert result.history.shape == (40,) and result.history[-1] > result.history[0]
    image = torch.from_numpy(result.image).permute(2, 0, 1)[None]  # (1, 3, 32, 32)
    again = fe.capture(model, images=(image - 0.5) / 0.25, layers=layer)
    assert again[layer][0, channel].mean().item() == pytest.approx(result.activation, rel=1e-5)


def test_visualize_channel_is_seeded_and_batching_does_not_change_a_channel():
    model = tiny("allconv")
    kw = {"steps": 8, "mean": (0.5, 0.4, 0.3), "std": (0.25, 0.25, 0.25)}
    one = fe.visualize_channel(model, "stage1.pool", 2, seed=3, **kw)
    same = fe.visualize_channel(model, "stage1.pool", 2, seed=3, **kw)
    both = fe.visualize_channels(model, "stage1.pool", [0, 2], seed=3, **kw)
    other = fe.visualize_channel(model, "stage1.pool", 2, seed=4, **kw)
    np.testing.assert_array_equal(one.image, same.image)
    np.testing.assert_allclose(both[1].image, one.image, atol=1e-5)
    assert not np.allclose(other.image, one.image)
    centre = fe.visualize_channel(model, "stage1.pool", 2, objective="centre", steps=3)
    assert centre.history.shape == (3,)
    with pytest.raises(ValueError, match="objective must be"):
        fe.visualize_channel(model, "stage1.pool", 2, objective="max")
    with pytest.raises(ValueError, match="mean and std need 3 values"):
        fe.visualize_channel(model, "stage1.pool", 2, mean=(0.5,), std=(0.2,))


# ------------------------------------------------------------------------------ guided backprop
class _GuidedReLU(torch.autograd.Function):
    """Reference: ReLU forward; backward passes gradient only where input > 0 and grad > 0."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (x > 0) * (grad > 0)


class _DeconvReLU(torch.autograd.Function):
    """Reference: ReLU forward; backward rectifies the gradient itself (Zeiler & Fergus)."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return grad.clamp(min=0)


class _FunctionReLU(nn.Module):
    def __init__(self, function: type[torch.autograd.Function]) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function.apply(x)


def with_relu(model: nn.Module, function: type[torch.autograd.Function]) -> nn.Module:
    """A copy of ``model`` whose ``nn.ReLU`` modules run ``function`` instead."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                setattr(parent, name, _FunctionReLU(function))
    return model


def input_grad(model: nn.Module, x: torch.Tensor, layer: str, top: torch.Tensor) -> torch.Tensor:
    """Plain autograd: d<layer output, top>/dx."""
    x = x.clone().requires_grad_(True)
    with fe.capturing(model, layer, detach=False) as acts:
        model(x)
    return torch.autograd.grad(acts[layer], x, top)[0]


@pytest.mark.parametrize("target", [7, ("stage2.relu1", 5)])
def test_guided_backprop_matches_a_guided_relu_autograd_function(target):
    model, x = tiny("base"), images(3)
    guided = fe.guided_backprop(model, images=x, target=target)
    reference_model = with_relu(model, _GuidedReLU)
    if isinstance(target, int):
        layer, top = "head.fc", torch.zeros(3, 10)
        top[:, target] = 1
    else:
        layer = target[0]
        act = fe.capture(model, images=x, layers=layer)[layer]
        top = torch.zeros_like(act)
        where = act[:, target[1]].flatten(1).argmax(1)
        top[:, target[1]].view(3, -1)[torch.arange(3), where] = 1
    torch.testing.assert_close(guided, input_grad(reference_model, x, layer, top))
    plain = input_grad(model, x, layer, top)
    assert not torch.allclose(guided, plain)  # the guided rule really changed something
    assert hook_count(model) == 0


def test_guided_backprop_is_the_plain_gradient_without_relus():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), nn.Tanh(), nn.Conv2d(4, 5, 3),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3),
    )  # fmt: skip
    x = images(2, 10)
    top = torch.zeros(2, 3)
    top[:, 1] = 1
    torch.testing.assert_close(
        fe.guided_backprop(model, images=x, target=1), input_grad(model, x, "6", top)
    )
    act = fe.capture(model, images=x, layers="3")["3"]
    top = torch.zeros_like(act)
    where = act[:, 2].flatten(1).argmax(1)
    top[:, 2].view(2, -1)[torch.arange(2), where] = 1
    torch.testing.assert_close(
        fe.guided_backprop(model, images=x, target=("3", 2)), input_grad(model, x, "3", top)
    )


def test_guided_backprop_refuses_bad_targets():
    model = tiny("base")
    with pytest.raises(ValueError, match=r"target class must be in \[0, 10\)"):
        fe.guided_backprop(model, images=images(), target=10)
    with pytest.raises(ValueError, match=r"channel must be in \[0, 8\)"):
        fe.guided_backprop(model, images=images(), target=("stage2.relu1", 8))


# ------------------------------------------------------------------------------ deconvnet
def top_unit(act: torch.Tensor, channel: int) -> torch.Tensor:
    """Keep each image's maximal unit of ``channel`` (its value), zero elsewhere."""
    top = torch.zeros_like(act)
    if act.dim() == 2:
        top[:, channel] = act[:, channel]
        return top
    values, where = act[:, channel].flatten(1).max(1)
    top[:, channel].view(len(act), -1)[torch.arange(len(act)), where] = values
    return top


@pytest.mark.parametrize("name", VARIANTS)
def test_deconvnet_equals_backprop_with_the_deconvnet_relu_rule(name):
    """Unpooling with switches, transposed convs and BN folding are exactly the backward passes
    of max pooling, convolution and eval-mode BN; only the ReLU rule differs from backprop."""
    model, x = tiny(name), images(3)
    reference_model = with_relu(model, _DeconvReLU)
    for layer, channel in [(fe.feature_layers(model)[-1], 3), ("stage2", 1), ("head.fc", 4)]:
        act = fe.capture(model, images=x, layers=layer)[layer]
        expected = input_grad(reference_model, x, layer, top_unit(act, channel))
        result = fe.deconvnet(model, images=x, layer=layer, channel=channel)
        assert result.shape == x.shape
        torch.testing.assert_close(result, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", VARIANTS)
def test_deconvnet_reconstruction_stays_inside_the_units_receptive_field(name):
    model, x = tiny(name), images(2, 32)
    layer = fe.feature_layers(model)[2]
    act = fe.capture(model, images=x, layers=layer)[layer]
    field = fe.receptive_fields(model)[layer]
    result = fe.deconvnet(model, images=x, layer=layer, channel=0)
    assert result.abs().sum() > 0
    for i in range(2):
        where = act[i, 0].flatten().argmax().item()
        t, left, b, right = _rf_box(field, where // act.shape[3], where % act.shape[3])
        inside = torch.zeros(32, 32, dtype=torch.bool)
        inside[max(t, 0) : b, max(left, 0) : right] = True
        assert (result[i, :, ~inside] == 0).all()


def test_deconvnet_reaches_exactly_the_max_pool_switches():
    """ReLU -> 2x2 max pool -> positive 3x3 conv. Going down from the maximal conv unit, the
    transposed conv feeds the 3x3 pooled cells around it, and each cell's value lands on its
    window's argmax pixel (the switch) and nowhere else in the window."""
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    nn.init.uniform_(conv.weight, 0.1, 1.0)
    model = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2), conv)
    x = torch.rand(1, 1, 12, 12, generator=torch.Generator().manual_seed(0)) + 0.05
    result = fe.deconvnet(model, images=x, layer="2", channel=0)[0, 0]
    out = model(x).detach()[0, 0]  # (6, 6)
    value, where = out.flatten().max(0)
    i, j = divmod(where.item(), 6)
    _, switches = F.max_pool2d(x, 2, return_indices=True)  # (1, 1, 6, 6)
    expected = torch.zeros(12 * 12)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if 0 <= i + di < 6 and 0 <= j + dj < 6:
                expected[switches[0, 0, i + di, j + dj]] = value * conv.weight[0, 0, di + 1, dj + 1]
    torch.testing.assert_close(result.flatten(), expected.detach())


def test_deconvnet_bn_skip_differs_from_fold_unless_the_bn_scale_is_one():
    model, x = tiny("base"), images(2)
    fold = fe.deconvnet(model, images=x, layer="stage2.relu1", channel=2)
    skip = fe.deconvnet(model, images=x, layer="stage2.relu1", channel=2, bn="skip")
    assert not torch.allclose(fold, skip)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.fill_(1.0)
            module.running_var.fill_(1.0 - module.eps)
    torch.testing.assert_close(
        fe.deconvnet(model, images=x, layer="stage2.relu1", channel=2),
        fe.deconvnet(model, images=x, layer="stage2.relu1", channel=2, bn="skip"),
    )
    with pytest.raises(ValueError, match="bn must be 'fold' or 'skip'"):
        fe.deconvnet(model, images=x, layer="stage2.relu1", channel=2, bn="drop")


class _Reversed(nn.Module):
    """Registers a then b, but runs b first: not a chain in registration order."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 3, 3, padding=1)
        self.b = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(self.b(x))


def test_deconvnet_refuses_a_model_that_is_not_a_chain():
    with pytest.raises(ValueError, match="registration order"):
        fe.deconvnet(_Reversed(), images=images(1, 8), layer="a", channel=0)


# ------------------------------------------------------------------------------ linear probe
def clustered(n: int, classes: int, features: int, seed: int, separable: bool):
    """Images (N, features, 2, 2) whose channel means carry the class (or nothing)."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=gen)
    x = torch.randn(n, features, 2, 2, generator=gen)
    if separable:
        x[torch.arange(n), labels] += 4.0
    return x, labels


def test_linear_probe_separates_linearly_separable_features():
    model = nn.Sequential(nn.Identity())
    train = clustered(400, 4, 8, 0, True)
    test = clustered(400, 4, 8, 1, True)
    result = fe.linear_probe(
        model, layer="0", train=train, test=test, epochs=20, lr=0.05, batch_size=64
    )
    assert result.train_acc >= 0.99 and result.test_acc >= 0.99
    far = ((train[0] * 1e3 + 1e4), train[1]), ((test[0] * 1e3 + 1e4), test[1])  # standardized away
    assert fe.linear_probe(model, *far, layer="0", epochs=20, lr=0.05, batch_size=64) == result
    assert result.train_acc >= 0.99 and result.test_acc >= 0.99
    assert result.features == 8


def test_linear_probe_features_are_standardized_with_training_statistics():
    gen = torch.Generator().manual_seed(0)
    f_train = 1e4 + 1e3 * torch.randn(50, 3, generator=gen, dtype=torch.float64)
    f_train[:, 2] = 7.0  # a dead channel: constant
    f_test = f_train[:10] * 2
    train, test = probes._standardize(f_train, f_test)
    torch.testing.assert_close(train[:, :2].mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(train[:, :2].std(0, unbiased=False), torch.ones(2))
    assert (train[:, 2] == 0).all() and (test[:, 2] == 7.0).all()  # (14 - 7) / 1
    mu, sd = f_train[:, :2].mean(0), f_train[:, :2].std(0, unbiased=False)
    torch.testing.assert_close(test[:, :2], ((f_test[:, :2] - mu) / sd).float())


def test_linear_probe_on_random_labels_is_at_chance_on_the_test_set():
    model = nn.Sequential(nn.Identity())
    train = clustered(200, 4, 32, 0, False)
    test = clustered(2000, 4, 32, 1, False)
    result = fe.linear_probe(
        model, layer="0", train=train, test=test, epochs=40, lr=0.05, batch_size=50
    )
    assert abs(result.test_acc - 0.25) < 0.05  # chance; the std of the estimate is ~0.01
    assert result.train_acc > result.test_acc + 0.15  # memorized, not learned
    again = fe.linear_probe(
        model, layer="0", train=train, test=test, epochs=40, lr=0.05, batch_size=50
    )
    assert again == result


def test_linear_probe_on_a_cnn_layer_uses_one_feature_per_channel():
    model = tiny("unpooled")
    train = (images(40, 8, seed=0), torch.arange(40) % 2)
    test = (images(20, 8, seed=1), torch.arange(20) % 2)
    result = fe.linear_probe(model, layer="stage2.relu1", train=train, test=test, epochs=3)
    assert result.features == 8 and 0 <= result.test_acc <= 1
    with pytest.raises(ValueError, match="differ in length"):
        fe.linear_probe(model, layer="stage2.relu1", train=(train[0], train[1][:5]), test=test)


def test_linear_probes_one_pass_gives_each_layer_what_linear_probe_gives_it_alone():
    model, layers = tiny("base"), ["stage1.relu1", "stage2.pool", "stage3.relu1"]
    train = (images(40, 16, seed=0), torch.arange(40) % 3)
    test = (images(20, 16, seed=1), torch.arange(20) % 3)
    forwards = []
    handle = model.register_forward_pre_hook(lambda *_: forwards.append(1))
    together = fe.linear_probes(
        model, layers=layers, train=train, test=test, epochs=3, batch_size=64
    )
    handle.remove()
    assert list(together) == layers and len(forwards) == 2  # one pass over train, one over test
    for layer in layers:
        assert together[layer] == fe.linear_probe(
            model, layer=layer, train=train, test=test, epochs=3, batch_size=64
        )


def test_top_activating_channels_equals_one_channel_at_a_time_in_one_pass():
    model, x = tiny("base"), images(12)
    forwards = []
    handle = model.register_forward_pre_hook(lambda *_: forwards.append(1))
    many = fe.top_activating_channels(
        model, layer="stage2.relu1", channels=[5, 0, 3], images=x, k=4, batch_size=12
    )
    handle.remove()
    assert len(forwards) == 1
    for channel, top in zip([5, 0, 3], many, strict=True):
        alone = fe.top_activating(model, layer="stage2.relu1", channel=channel, images=x, k=4)
        for field in ("indices", "values", "patches", "boxes", "positions"):
            torch.testing.assert_close(getattr(top, field), getattr(alone, field))
    with pytest.raises(ValueError, match="channels is empty"):
        fe.top_activating_channels(model, layer="stage2.relu1", channels=[], images=x)
    with pytest.raises(ValueError, match=r"channel must be in \[0, 8\)"):
        fe.top_activating_channels(model, layer="stage2.relu1", channels=[1, 8], images=x, k=2)


# ------------------------------------------------------------------------------ comparing networks
def test_conv_depths_count_every_conv_up_to_each_layer():
    for name in ("base", "allconv", "unpooled", "convpool"):
        model = build_model(name, **TINY)
        convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        order = [n for n, _ in model.named_modules()]
        for layer, depth in fe.conv_depths(model).items():
            inside = [c for c in convs if c.startswith(layer + ".")]
            before = [c for c in convs if order.index(c) < order.index(layer)]
            assert depth == len(before) + len(inside), (name, layer)
    assert fe.conv_depths(build_model("allconv", **TINY))["stage1.pool"] == 2  # its learned conv


def test_fit_probe_separates_separable_classes_and_not_noise():
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 3
    centres = torch.randn(3, 5, generator=gen) * 4
    f = centres[y] + torch.randn(300, 5, generator=gen)
    r = fe.fit_probe(f[:200], y[:200], f[200:], y[200:])
    assert r.test_acc > 0.95 and r.features == 5
    noise = fe.fit_probe(torch.randn(200, 5, generator=gen), y[:200],
                         torch.randn(100, 5, generator=gen), y[200:])  # fmt: skip
    assert noise.test_acc < 0.6
    again = fe.fit_probe(f[:200], y[:200], f[200:], y[200:])
    assert again == r  # deterministic
    with pytest.raises(ValueError, match="differ in length"):
        fe.fit_probe(f[:200], y[:100], f[200:], y[200:])


def test_class_purity_against_a_counting_loop():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (50,), generator=gen)
    maxima = torch.rand(50, 6, generator=gen)
    got = fe.class_purity(maxima, labels, k=7)
    for c in range(6):
        top = sorted(range(50), key=lambda i: -float(maxima[i, c]))[:7]
        counts = np.bincount(labels[top].numpy())
        assert got[c] == pytest.approx(counts.max() / 7)
    pure = (labels[:, None] == 4).float().expand(50, 2)
    assert fe.class_purity(pure, labels, k=min(9, int((labels == 4).sum()))).tolist() == [1.0, 1.0]


def test_mass_square_on_a_flat_map_and_a_spike():
    flat = np.ones((32, 32))
    for fraction in (0.1, 0.5, 0.9, 1.0):
        assert fe.mass_square(flat, fraction) == int(np.ceil(np.sqrt(fraction * 1024) - 1e-9))
    spike = np.zeros((32, 32))
    spike[15, 15] = 1  # the 1-px square of a 32-px map starts at (32 - 1) // 2 = 15
    assert fe.mass_square(spike, 0.99) == 1
    spike = np.roll(spike, 1, axis=0)
    assert fe.mass_square(spike, 0.99) == 2
    with pytest.raises(ValueError, match="fraction"):
        fe.mass_square(flat, 1.5)


def _brute_mass_square(erf, fraction, top_of):
    """Independent reference: try every side, the square's top row given by top_of(side)."""
    total = erf.sum()
    for side in range(1, 3 * max(erf.shape)):
        t, left = top_of(side, erf.shape[0]), top_of(side, erf.shape[1])
        if erf[max(t, 0) : max(t + side, 0), max(left, 0) : max(left + side, 0)].sum() >= fraction * total * (1 - 1e-12):
            return side
    raise AssertionError("no square holds the mass")


def test_mass_square_default_centre_is_the_map_centre():
    rng = np.random.default_rng(3)
    for shape in ((32, 32), (31, 31), (8, 8)):
        erf = rng.random(shape) ** 4
        for fraction in (0.5, 0.9):
            expected = _brute_mass_square(erf, fraction, lambda s, n: (n - s) // 2)
            assert fe.mass_square(erf, fraction) == expected
            assert fe.mass_square(erf, fraction, centre=((shape[0] - 1) / 2, (shape[1] - 1) / 2)) == expected


def test_mass_square_around_an_off_centre_block():
    erf = np.zeros((32, 32))
    erf[15:21, 15:21] = 1.0  # a 6x6 block centred at (17.5, 17.5), not at the map centre 15.5
    assert fe.mass_square(erf, 1.0, centre=(17.5, 17.5)) == 6
    assert fe.mass_square(erf, 1.0) == 10  # around 15.5 it takes rows 11..20
    erf = np.zeros((32, 32))
    erf[31, 31] = 1.0  # in the corner, far from a centre near the other corner
    assert fe.mass_square(erf, 1.0, centre=(0.0, 0.0)) == 63
    with pytest.raises(ValueError, match="centre"):
        fe.mass_square(erf, 0.5, centre=(float("nan"), 0.0))


def test_erf_centre_is_the_centre_of_the_gradient_support():
    """An even map after two poolings: the centre unit (4, 4) of 8x8 does not look at the image
    centre. The ERF's support (positive convolutions and average pools, so every tap counts) is
    centred where erf_centre says."""
    torch.manual_seed(0)
    layers = []
    for pool in (True, True, False):
        conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        nn.init.uniform_(conv.weight, 0.5, 1.0)
        layers += [conv] + ([nn.AvgPool2d(2)] if pool else [])
    model = nn.Sequential(*layers).double()
    layer = str(len(layers) - 1)
    x = torch.rand(2, 1, 32, 32, dtype=torch.float64)
    erf = fe.effective_receptive_field(model, images=x, layer=layer)
    rows, cols = np.nonzero(erf > 0)
    support_centre = ((rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2)
    field = fe.receptive_fields(model)[layer]
    assert fe.erf_centre(field, model(x).shape[-2:]) == support_centre
    assert support_centre != (15.5, 15.5)
    with pytest.raises(ValueError, match="map_shape"):
        fe.erf_centre(field, (0, 8))
