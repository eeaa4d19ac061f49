"""The model family: shapes per stage, what each variant changes, BlurPool2d, and summary()."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import pooltools.models as models_module
from pooltools.models import DILATIONS, VARIANTS, BlurPool2d, build_model, summary
from pooltools.shapes import receptive_field

HALVING = ("base", "avgpool", "strided", "allconv", "convpool", "blurpool")
TINY = {"widths": (4, 8, 16), "convs_per_stage": 2}


def test_every_variant_is_described_in_the_module_docstring_table():
    for name in VARIANTS:
        assert f"``{name}``" in models_module.__doc__, f"{name} is missing from the docstring table"


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_maps_images_to_class_logits(name):
    torch.manual_seed(0)
    model = build_model(name, **TINY).eval()
    out = model(torch.randn(5, 3, 32, 32))
    assert out.shape == (5, 10)
    assert torch.isfinite(out).all()


def _stage_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name):
        def hook(_module, _inputs, out):
            shapes[name] = tuple(out.shape)

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_children()]
    model(x)
    for handle in handles:
        handle.remove()
    return shapes


@pytest.mark.parametrize("name", HALVING)
def test_downsampling_variants_halve_the_size_after_each_stage_but_the_last(name):
    shapes = _stage_shapes(build_model(name, **TINY).eval(), torch.randn(2, 3, 32, 32))
    assert shapes == {
        "stage1": (2, 4, 16, 16),
        "stage2": (2, 8, 8, 8),
        "stage3": (2, 16, 8, 8),
        "head": (2, 10),
    }


@pytest.mark.parametrize("name", ["unpooled", "dilated"])
def test_unpooled_and_dilated_keep_full_resolution_in_every_stage(name):
    shapes = _stage_shapes(build_model(name, **TINY).eval(), torch.randn(2, 3, 32, 32))
    assert [shapes[f"stage{k}"][-2:] for k in (1, 2, 3)] == [(32, 32)] * 3


RECIPE_CONVS = (1, 2, 2)


def test_dilated_convs_use_the_stage_dilations_and_pad_to_keep_the_size():
    model = build_model("dilated", convs_per_stage=RECIPE_CONVS)
    for k, dilation in enumerate(DILATIONS, start=1):
        convs = [m for m in model.get_submodule(f"stage{k}").modules() if isinstance(m, nn.Conv2d)]
        assert convs and all(c.dilation == (dilation,) * 2 == c.padding for c in convs)
        assert all(c.stride == (1, 1) for c in convs)
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in model.modules())


def test_dilated_field_is_as_close_to_base_as_one_dilation_per_stage_allows():
    base_field = receptive_field(build_model("base", convs_per_stage=RECIPE_CONVS))[-1].size
    dilated_field = receptive_field(build_model("dilated", convs_per_stage=RECIPE_CONVS))[-1].size
    # by hand: stride 1 everywhere, so each 3x3 conv with dilation d widens the field by 2d
    assert dilated_field == 1 + 2 * sum(d * n for d, n in zip(DILATIONS, RECIPE_CONVS, strict=True))
    best = min(
        abs(1 + 2 * (1 + 2 * d2 + 2 * d3) - base_field) for d2 in range(1, 9) for d3 in range(1, 9)
    )
    assert abs(dilated_field - base_field) == best == 1  # 30 is even; a stride-1 field is odd


def test_dilated_matches_unpooled_in_parameters_and_macs():
    dilated, unpooled = (
        summary(build_model(n, convs_per_stage=RECIPE_CONVS)) for n in ("dilated", "unpooled")
    )
    assert (dilated.params, dilated.macs) == (unpooled.params, unpooled.macs)


@pytest.mark.parametrize("name", ["base", "avgpool", "allconv", "convpool", "blurpool"])
def test_stage_pool_is_the_downsampled_map(name):
    model = build_model(name, **TINY).eval()
    seen = {}

    def record(key):
        def hook(_module, _inputs, out):
            seen[key] = out.shape  # returns None: a hook's return value would replace the output

        return hook

    model.stage1.pool.register_forward_hook(record("pool"))
    model.stage1.relu2.register_forward_hook(record("relu"))
    model(torch.randn(1, 3, 32, 32))
    assert seen["relu"][-2:] == (32, 32) and seen["pool"][-2:] == (16, 16)
    assert not hasattr(model.stage3, "pool")  # the last stage feeds global average pooling


def test_variants_differ_only_in_their_downsampling():
    base = build_model("base", **TINY)
    base_names = {n for n, _ in base.named_parameters()}
    for name in VARIANTS:
        model = build_model(name, **TINY)
        names = {n for n, _ in model.named_parameters()}
        assert base_names <= names, name  # every variant has all of base's layers...
        for n, p in model.named_parameters():
            if n in base_names:
                assert p.shape == base.get_parameter(n).shape, (name, n)
    strided = build_model("strided", **TINY)
    assert strided.stage1.conv2.stride == (2, 2) and strided.stage1.conv1.stride == (1, 1)
    assert strided.stage3.conv2.stride == (1, 1)
    unpooled = build_model("unpooled", **TINY)
    assert all(m.stride == (1, 1) for m in unpooled.modules() if isinstance(m, nn.Conv2d))
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in unpooled.modules())


def test_allconv_and_convpool_are_parameter_matched():
    def count(model):
        return sum(p.numel() for p in model.parameters())

    base, allconv, convpool = (build_model(n, **TINY) for n in ("base", "allconv", "convpool"))
    # one extra 3x3 conv (w*w*9 weights) + BatchNorm (2*w) in each downsampling stage
    extra = sum(w * w * 9 + 2 * w for w in TINY["widths"][:-1])
    assert count(allconv) == count(convpool) == count(base) + extra
    for name in ("avgpool", "strided", "blurpool", "unpooled", "dilated"):
        assert count(build_model(name, **TINY)) == count(base), name


def test_unknown_name_lists_the_allowed_names():
    with pytest.raises(ValueError, match=r"unknown model 'maxpool'.*base, avgpool, strided"):
        build_model("maxpool")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"widths": ()}, "widths must be a non-empty sequence"),
        ({"widths": (8, 0)}, "widths must be a non-empty sequence"),
        ({"convs_per_stage": 0}, "convs_per_stage must be a positive int"),
        ({"num_classes": 0}, "num_classes must be a positive int"),
        ({"blur_padding": "circular"}, "blur_padding must be one of"),
    ],
)
def test_bad_arguments_say_what_is_allowed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model("blurpool", **kwargs)


def test_defaults_and_configurable_depth():
    model = build_model("base")
    assert [model.get_submodule(f"stage{k}").conv1.out_channels for k in (1, 2, 3)] == [32, 64, 128]
    deep = build_model("base", widths=(8, 16), convs_per_stage=3, num_classes=4)
    assert [n for n, _ in deep.stage1.named_children()][-4:] == ["conv3", "bn3", "relu3", "pool"]
    assert deep(torch.randn(1, 3, 32, 32)).shape == (1, 4)
    assert model.variant == "base" and deep.arch_kwargs["widths"] == [8, 16]


@pytest.mark.parametrize("name", VARIANTS)
def test_convs_per_stage_can_differ_per_stage(name):
    per_stage = build_model(name, widths=(4, 8, 16), convs_per_stage=(1, 2, 3))
    counts = [
        sum(isinstance(m, nn.Conv2d) and n.startswith("conv") for n, m in stage.named_children())
        for stage in (per_stage.stage1, per_stage.stage2, per_stage.stage3)
    ]
    extra = 1 if name == "convpool" else 0  # convpool's extra conv in each downsampling stage
    assert counts == [1 + extra, 2 + extra, 3]
    assert per_stage.arch_kwargs["convs_per_stage"] == [1, 2, 3]
    assert per_stage(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # a per-stage tuple of equal counts builds exactly the int's model
    torch.manual_seed(0)
    as_int = build_model(name, **TINY)
    torch.manual_seed(0)
    as_tuple = build_model(name, widths=TINY["widths"], convs_per_stage=(2, 2, 2))
    sa, sb = as_int.state_dict(), as_tuple.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert summary(as_int).macs == summary(as_tuple).macs


@pytest.mark.parametrize("convs", [(1, 2), (1, 0, 2), (1, 2.0, 2), "122", (True, 1, 1)])
def test_bad_per_stage_convs_say_what_is_allowed(convs):
    with pytest.raises(ValueError, match=r"one per stage \(3 here\)"):
        build_model("base", widths=(4, 8, 16), convs_per_stage=convs)


def test_same_seed_same_weights():
    torch.manual_seed(3)
    a = build_model("allconv", **TINY)
    torch.manual_seed(3)
    b = build_model("allconv", **TINY)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------------ BlurPool2d


def test_blur_kernel_is_the_normalized_binomial_and_not_trained():
    blur = BlurPool2d(2)
    expected = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
    assert torch.equal(blur.kernel[0, 0], expected) and torch.equal(blur.kernel[1, 0], expected)
    assert list(blur.parameters()) == [] and "kernel" in blur.state_dict()


def test_blur_keeps_a_flat_image_flat():
    for padding in ("reflect", "zeros"):
        out = BlurPool2d(1, padding=padding)(torch.full((1, 1, 6, 6), 3.0))
        assert out.shape == (1, 1, 3, 3)
        if padding == "reflect":
            assert torch.allclose(out, torch.full_like(out, 3.0))
        else:  # zero padding darkens the border: corner 3*9/16, edge 3*12/16, centre 3
            assert out[0, 0, 0, 0].item() == pytest.approx(3 * 9 / 16)
            assert out[0, 0, 1, 1].item() == pytest.approx(3.0)


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(2, 11),
    w=st.integers(2, 11),
    stride=st.integers(1, 3),
    padding=st.sampled_from(["reflect", "zeros"]),
)
def test_blur_equals_two_box_filters_then_subsampling(h, w, stride, padding):
    # [1,2,1]/4 = [1,1]/2 * [1,1]/2, so the binomial blur is a 2x2 average pool applied twice
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h * 100 + w))
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect" if padding == "reflect" else "constant")
    expected = F.avg_pool2d(F.avg_pool2d(padded, 2, 1), 2, 1)[..., ::stride, ::stride]
    out = BlurPool2d(3, stride, padding)(x)
    assert out.shape == expected.shape
    assert torch.allclose(out, expected, atol=1e-6)


def test_blur_refuses_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="padding must be one of"):
        BlurPool2d(3, padding="same")
    with pytest.raises(ValueError, match="channels must be a positive int"):
        BlurPool2d(0)
    with pytest.raises(ValueError, match="expected 3 channels"):
        BlurPool2d(3)(torch.randn(1, 4, 8, 8))


def test_receptive_field_walks_the_blurpool_model():
    fields = {f.name: f for f in receptive_field(build_model("blurpool", **TINY))}
    # conv 3x3 -> 3, conv 3x3 -> 5, max 2x2 s1 -> 6, blur 3x3 s2 -> 8 with jump 2
    assert (fields["stage1.conv2"].size, fields["stage1.pool.max"].size) == (5, 6)
    assert (fields["stage1.pool.blur"].size, fields["stage1.pool.blur"].jump) == (8, 2)
    assert fields["stage2.pool.blur"].jump == 4


# ------------------------------------------------------------------------------- summary


def _analytic_macs(name: str, widths: tuple[int, ...], convs: int, size: int = 32) -> int:
    """Conv MACs = H_out * W_out * C_out * C_in * 9, stage by stage, from the architecture."""
    total, c_in, r = 0, 3, size
    for k, c in enumerate(widths):
        down = k < len(widths) - 1 and name not in ("unpooled", "dilated")
        half = r // 2
        for i in range(convs):
            r_out = half if name == "strided" and down and i == convs - 1 else r
            total += r_out * r_out * c * (c_in if i == 0 else c) * 9
        if down and name == "convpool":
            total += r * r * c * c * 9  # the extra conv before the pool
        if down and name == "allconv":
            total += half * half * c * c * 9  # the learned stride-2 conv
        if down and name == "blurpool":
            total += half * half * c * 9  # depthwise blur: one 3x3 per output element
        c_in, r = c, half if down else r
    return total + widths[-1] * 10  # the linear layer


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("widths, convs", [((4, 8, 16), 2), ((32, 64, 128), 2), ((6, 10), 1)])
def test_summary_matches_an_independent_count(name, widths, convs):
    model = build_model(name, widths=widths, convs_per_stage=convs)
    info = summary(model)
    assert info.params == sum(p.numel() for p in model.parameters())
    assert info.macs == _analytic_macs(name, widths, convs)
    assert model.training  # summary restores the mode it found


def test_activation_bytes_of_a_hand_checkable_model():
    info = summary(build_model("base", widths=(2,), convs_per_stage=1))
    # conv, bn, relu: 3 x (2, 32, 32) floats; gap (2,1,1); flatten (2,); fc (10,)
    assert info.activation_bytes == (3 * 2 * 32 * 32 + 2 + 2 + 10) * 4
    assert [layer.name for layer in info.layers] == [
        "stage1.conv1", "stage1.bn1", "stage1.relu1", "head.gap", "head.flatten", "head.fc"
    ]  # fmt: skip
    assert info.layers[0].output_shape == (2, 32, 32) and info.layers[0].macs == 32 * 32 * 2 * 27
    assert info.as_dict()["params"] == 2 * 27 + 2 * 2 + 2 * 10 + 10
