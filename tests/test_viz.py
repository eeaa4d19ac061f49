"""pooltools.viz against PyTorch: window geometry, pooled values, and what each figure draws."""

from __future__ import annotations

import io
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from pooltools import viz
from pooltools.shapes import PoolParams, argmax_cells, arithmetic, as_cell

TOY = np.array([[1, 3, 2, 1], [4, 6, 5, 0], [2, 1, 9, 7], [0, 8, 3, 4]])


def rgb_image(h=12, w=12, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def torch_pool(x: np.ndarray, *args, op="max", **kwargs):
    """PyTorch's output for a (H, W) or (H, W, C) array, laid out like the input."""
    chw = x[None] if x.ndim == 2 else np.moveaxis(x, -1, 0)
    t = torch.from_numpy(np.ascontiguousarray(chw, dtype=np.float64))[None]
    fn = F.max_pool2d if op == "max" else F.avg_pool2d
    out = fn(t, *args, **kwargs)[0].numpy()
    return out[0] if x.ndim == 2 else np.moveaxis(out, 0, -1)


def patches_with(ax, gid: str) -> list:
    return [p for p in ax.patches if p.get_gid() == gid]


def png_bytes(fig: Figure) -> bytes:
    """Render the figure: some mistakes only show up at draw time."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=50)
    return buffer.getvalue()


# --------------------------------------------------------------------------- window geometry


def test_window_hand_checked():
    rows, cols = PoolParams.of(2).window((1, 0))  # stride defaults to the kernel
    assert rows.tolist() == [2, 3] and cols.tolist() == [0, 1]
    rows, cols = PoolParams.of(3, stride=1, padding=1, dilation=2).window((0, 1))
    assert rows.tolist() == [-1, 1, 3] and cols.tolist() == [0, 2, 4]
    rows, cols = PoolParams.of(3, stride=1, padding=1, dilation=2).window((0, 1), padded=True)
    assert rows.tolist() == [0, 2, 4] and cols.tolist() == [1, 3, 5]
    rows, cols = PoolParams.of((2, 3), (1, 2)).window((2, 1))  # pairs: per-axis settings
    assert rows.tolist() == [2, 3] and cols.tolist() == [2, 3, 4]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(cell=(0, 0), kernel_size=0), "kernel_size must be greater than zero"),
        (dict(cell=(0, 0), kernel_size=2, stride=0), "stride must be greater than zero"),
        (dict(cell=(0, 0), kernel_size=2, padding=-1), "padding must be non-negative"),
        (dict(cell=(-1, 0), kernel_size=2), "non-negative ints"),
        (dict(cell=(0.5, 0), kernel_size=2), "pair of ints"),
    ],
)
def test_window_refuses_bad_input(kwargs, message):
    cell = kwargs.pop("cell")
    with pytest.raises((ValueError, TypeError), match=message):
        PoolParams.of(**kwargs).window(cell)


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    k=st.integers(1, 4),
    s=st.integers(1, 4),
    pad_frac=st.floats(0, 1),
    d=st.integers(1, 3),
    ceil=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_window_contains_torch_argmax_and_gives_torch_max(h, w, k, s, pad_frac, d, ceil, seed):
    p = int(pad_frac * (k // 2) + 0.5) if k > 1 else 0
    x = np.random.default_rng(seed).permutation(h * w).reshape(h, w).astype(np.float64)
    t = torch.from_numpy(x)[None, None]
    try:
        out, idx = F.max_pool2d(t, k, s, p, d, ceil_mode=ceil, return_indices=True)
    except RuntimeError:
        assume(False)
    out, idx = out[0, 0].numpy(), idx[0, 0].numpy()
    for i, j in itertools.product(range(out.shape[0]), range(out.shape[1])):
        rows, cols = PoolParams.of(k, s, p, d).window((i, j))
        inside = [(r, c) for r in rows for c in cols if 0 <= r < h and 0 <= c < w]
        if not inside:  # a dilated window can lie wholly in the padding: PyTorch gives -inf
            assert out[i, j] == -math.inf
            pooled = viz.pool_array(
                x, kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil
            )
            assert argmax_cells(pooled.argmax, (i, j), (h, w), (rows, cols)) == []
            continue
        winner = divmod(int(idx[i, j]), w)
        assert winner in inside, "PyTorch's argmax must be one of the window's cells"
        assert out[i, j] == max(x[r, c] for r, c in inside)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 8),
    k=st.integers(1, 4),
    s=st.integers(1, 3),
    pad_frac=st.floats(0, 1),
    ceil=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_window_gives_torch_avg_with_padding_counted(h, k, s, pad_frac, ceil, seed):
    """Average pooling: padding cells count as zeros, cells past the padding do not count."""
    p = int(pad_frac * (k // 2) + 0.5) if k > 1 else 0
    x = np.random.default_rng(seed).normal(size=(h, h + 1))
    try:
        out = torch_pool(x, k, s, p, ceil_mode=ceil, op="avg")
    except RuntimeError:
        assume(False)
    for i, j in itertools.product(range(out.shape[0]), range(out.shape[1])):
        rows, cols = PoolParams.of(k, s, p).window((i, j))
        counted = [(r, c) for r in rows for c in cols if -p <= r < h + p and -p <= c < h + 1 + p]
        total = sum(x[r, c] for r, c in counted if 0 <= r < h and 0 <= c < h + 1)
        assert out[i, j] == pytest.approx(total / len(counted))


# --------------------------------------------------------------------------- pool_array


@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("k, s, p, ceil", [(2, None, 0, False), (3, 2, 1, True), (2, 1, 1, False)])
def test_pool_array_matches_torch_for_matrices_and_images(op, k, s, p, ceil):
    for x in (TOY, rgb_image(), rgb_image().astype(np.float32) / 255):
        result = viz.pool_array(
            x, kernel_size=k, stride=s, padding=p, dilation=1, ceil_mode=ceil, op=op
        )
        expected = torch_pool(x, k, s, p, ceil_mode=ceil, op=op)
        np.testing.assert_array_equal(result.output, expected)
        assert result.shape == expected.shape[:2]
        assert (result.argmax is None) == (op == "avg")


def test_pool_array_argmax_is_torchs_per_channel():
    x = rgb_image()
    result = viz.pool_array(x, kernel_size=3, stride=2, padding=1)
    t = torch.from_numpy(np.moveaxis(x, -1, 0).astype(np.float64))[None]
    _, idx = F.max_pool2d(t, 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(result.argmax, np.moveaxis(idx[0].numpy(), 0, -1))


def test_pool_array_passes_torchs_own_refusals_through():
    x = torch.zeros(1, 1, 4, 4)
    for kwargs in (dict(kernel_size=2, padding=2), dict(kernel_size=5)):
        with pytest.raises(RuntimeError) as theirs:
            F.max_pool2d(x, **kwargs)
        with pytest.raises(RuntimeError) as ours:
            viz.pool_array(np.zeros((4, 4)), **kwargs)
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(TypeError) as theirs:
        F.avg_pool2d(x, 2, dilation=2)
    with pytest.raises(TypeError) as ours:
        viz.pool_array(np.zeros((4, 4)), kernel_size=2, dilation=2, op="avg")
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError, match="op must be 'max' or 'avg'"):
        viz.pool_array(TOY, kernel_size=2, op="min")


def test_as_grid_accepts_matrices_images_and_tensors_and_explains_refusals():
    assert viz.as_grid([[1, 2], [3, 4]]).shape == (2, 2)
    assert viz.as_grid(torch.zeros(5, 6, 3)).shape == (5, 6, 3)
    assert viz.as_grid(np.zeros((5, 6, 1))).shape == (5, 6)
    assert viz.as_grid(rgb_image()).dtype == np.uint8
    with pytest.raises(ValueError, match=r"permute\(1, 2, 0\)"):
        viz.as_grid(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match=r"\(H, W\) or an image \(H, W, 3\)"):
        viz.as_grid(np.zeros(5))
    with pytest.raises(TypeError, match="expected numbers"):
        viz.as_grid(np.zeros((2, 2), dtype=bool))


def test_as_cell_and_format_value():
    assert as_cell((np.int64(1), 2)) == (1, 2)
    with pytest.raises(TypeError, match="pair of ints"):
        as_cell((True, 0))
    assert [viz.format_value(v) for v in (3.0, 2.5, 1 / 3, -2, -math.inf, 7)] == [
        "3", "2.5", "0.33", "−2", "−∞", "7",
    ]  # fmt: skip


# --------------------------------------------------------------------------- figures


def test_plot_matrix_writes_every_number():
    fig = viz.plot_matrix(TOY, highlight=[(1, 1)])
    (ax,) = fig.axes
    assert sorted(t.get_text() for t in ax.texts) == sorted(str(v) for v in TOY.ravel())
    assert ax.get_title() == "4×4"
    assert len(patches_with(ax, "highlight")) == 1
    with pytest.raises(ValueError, match="up to 16×16"):
        viz.plot_matrix(np.zeros((17, 17)))
    assert png_bytes(fig).startswith(b"\x89PNG")


def test_plot_window_toy_marks_window_and_torch_argmax():
    fig = viz.plot_window(TOY, kernel_size=2, cell=(1, 1))
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert "input 4×4" in ax.get_title() and "(1, 1)" in ax.get_title()
    (window,) = patches_with(ax, "window")
    assert window.get_xy() == (1.5, 1.5) and window.get_width() == window.get_height() == 2
    (circle,) = [p for p in patches_with(ax, "argmax") if isinstance(p, Circle)]
    result = viz.pool_array(TOY, kernel_size=2)
    assert circle.center == (2, 2) and divmod(int(result.argmax[1, 1]), 4) == (2, 2)
    assert len(ax.texts) == 16 and not patches_with(ax, "padding")
    assert png_bytes(fig)


def test_plot_window_shows_padding_as_minus_infinity_cells():
    fig = viz.plot_window(TOY, kernel_size=2, stride=1, padding=1)
    (ax,) = fig.axes
    assert len(patches_with(ax, "padding")) == 1
    assert [t.get_text() for t in ax.texts].count("−∞") == 6 * 6 - 16
    assert "padding 1" in ax.get_title()
    fig = viz.plot_window(
        TOY, kernel_size=2, stride=1, padding=1, op="avg"
    )  # avg pads with counted zeros
    assert [t.get_text() for t in fig.axes[0].texts].count("0") == 20 + int((TOY == 0).sum())


def test_plot_window_dilated_highlights_each_tap():
    x = np.arange(49).reshape(7, 7)
    fig = viz.plot_window(x, kernel_size=2, stride=2, dilation=2, cell=(1, 0))
    (ax,) = fig.axes
    cells = patches_with(ax, "window-cell")
    rows, cols = PoolParams.of(2, 2, 0, 2).window((1, 0))
    assert sorted(p.get_xy() for p in cells) == sorted(
        (c - 0.5, r - 0.5) for r in rows for c in cols
    )
    assert len(patches_with(ax, "window-extent")) == 1 and not patches_with(ax, "window")


def test_plot_window_image_marks_one_winner_per_channel():
    fig = viz.plot_window(rgb_image(), kernel_size=3, cell=(1, 2))
    (ax,) = fig.axes
    dots = [line for line in ax.lines if line.get_gid() == "argmax"]
    assert len(dots) == 3
    assert "input 12×12×3" in ax.get_title()
    assert png_bytes(fig)


def test_plot_window_refuses_a_cell_outside_the_output():
    with pytest.raises(ValueError, match=r"outside the output of shape 2×2; allowed are rows 0..1"):
        viz.plot_window(TOY, kernel_size=2, cell=(2, 0))


def test_plot_pooling_toy_titles_link_and_numbers():
    fig = viz.plot_pooling(TOY, kernel_size=2, cell=(1, 0))
    ax_in, ax_out = fig.axes
    assert ax_in.get_title() == "input 4×4" and ax_out.get_title() == "output 2×2"
    assert "max pooling: kernel 2, stride 2" in fig.get_suptitle()
    expected = torch_pool(TOY, 2)
    assert sorted(t.get_text() for t in ax_out.texts) == sorted(
        viz.format_value(v) for v in expected.ravel()
    )
    (cell,) = patches_with(ax_out, "output-cell")
    assert cell.get_xy() == (-0.5, 0.5)
    assert cell.get_edgecolor() == patches_with(ax_in, "window")[0].get_edgecolor()
    assert len(patches_with(ax_in, "link")) == len(patches_with(ax_out, "link")) == 1
    assert png_bytes(fig)
    assert not patches_with(viz.plot_pooling(TOY, kernel_size=2, link=False).axes[0], "link")


def test_plot_pooling_ceil_mode_draws_the_overhang():
    x = np.arange(25).reshape(5, 5)
    fig = viz.plot_pooling(x, kernel_size=2, ceil_mode=True, cell=(2, 2))
    ax_in, ax_out = fig.axes
    assert ax_out.get_title() == "output 3×3"
    assert len(patches_with(ax_in, "overhang")) == 2
    assert "ignored" in ax_in.get_title()
    assert png_bytes(fig)


@pytest.mark.parametrize("op", ["max", "avg"])
def test_plot_pooling_image_pools_per_channel(op):
    x = rgb_image(16, 16)
    fig = viz.plot_pooling(x, kernel_size=2, op=op, cell=(3, 4))
    ax_in, ax_out = fig.axes
    assert ax_in.get_title() == "input 16×16×3" and ax_out.get_title() == "output 8×8×3"
    shown = ax_out.images[0].get_array()
    np.testing.assert_allclose(shown, np.clip(torch_pool(x, 2, op=op) / 255, 0, 1))
    assert len([line for line in ax_in.lines if line.get_gid() == "argmax"]) == (
        3 if op == "max" else 0
    )
    assert png_bytes(fig)


def test_plot_pooling_large_matrix_gets_a_colorbar_not_numbers():
    x = np.random.default_rng(0).normal(size=(20, 20))
    fig = viz.plot_pooling(x, kernel_size=3, stride=2, padding=1)
    assert len(fig.axes) == 3  # input, output, colorbar
    assert len(fig.axes[0].texts) == 0 and fig.axes[0].get_title().startswith("input 20×20")
    assert fig.axes[1].get_title() == "output 10×10"


def test_plot_window_values_equation_matches_torch():
    cases = [
        (TOY, dict(kernel_size=2), (1, 1), "max"),
        (TOY, dict(kernel_size=2, padding=1), (0, 1), "avg"),
        (np.arange(25).reshape(5, 5), dict(kernel_size=2, ceil_mode=True), (2, 2), "avg"),
        (np.arange(49).reshape(7, 7), dict(kernel_size=2, dilation=2), (1, 0), "max"),
    ]
    for x, kwargs, cell, op in cases:
        fig = viz.plot_window_values(x, cell=cell, op=op, **kwargs)
        ax_in, ax_out = fig.axes
        equation = fig.get_supxlabel()
        lhs, rhs = equation.rsplit(" = ", 1)
        python = lhs.replace("−∞", "-math.inf").replace("−", "-")
        expected = torch_pool(x, op=op, **kwargs)[cell]
        assert eval(python) == pytest.approx(expected)  # noqa: S307 - our own arithmetic text
        assert rhs == viz.format_value(expected)
        n_taps = len(ax_in.get_xticks()) * len(ax_in.get_yticks())
        assert len(patches_with(ax_in, "value-cell")) == n_taps
        assert len(patches_with(ax_out, "output-cell")) == 1


def test_plot_window_values_image_shows_rgb_values():
    x = rgb_image()
    fig = viz.plot_window_values(x, kernel_size=2, cell=(0, 0))
    ax_in, ax_out = fig.axes
    out = torch_pool(x, 2)[0, 0]
    assert sorted(t.get_text() for t in ax_out.texts) == sorted(
        f"{c} {int(v)}" for c, v in zip("RGB", out, strict=True)
    )
    assert len(ax_in.texts) == 4 * 3
    assert "each channel" in fig.get_suptitle()
    assert png_bytes(fig)
    (legend,) = fig.legends  # the winner dots are explained, one entry per channel
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == [f"winner of the {c} channel" for c in ("red", "green", "blue")]
    colours = [h.get_markerfacecolor() for h in legend.legend_handles]
    assert colours == list(viz.CHANNEL_COLOURS)


def test_show_image_grid_one_axes_per_image():
    x = rgb_image(16, 16)
    images = [x, viz.pool_array(x, kernel_size=2).output.astype(np.uint8), np.zeros((4, 4))]
    fig = viz.show_image_grid(images, ncols=2)
    assert len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == ["16×16×3", "8×8×3", "4×4"]
    fig = viz.show_image_grid(images, ["a", "b", "c"], ncols=5)
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="one per image"):
        viz.show_image_grid(images, ["a"])
    with pytest.raises(ValueError, match="at least one image"):
        viz.show_image_grid([])
    assert png_bytes(fig)


def test_figures_show_themselves_in_jupyter_without_pyplot():
    fig = viz.plot_matrix(TOY)
    assert fig._repr_png_().startswith(b"\x89PNG")


# --------------------------------------------------------------------------- convolution arithmetic


def _covered_by_torch(h, w, k, s, p, d, ceil):
    """Input cells some window can pick: put a large value at each cell in turn and see whether
    any output of PyTorch's max pooling takes it (the oracle for `uncovered`)."""
    covered = set()
    for r in range(h):
        for c in range(w):
            x = torch.zeros(1, 1, h, w)
            x[0, 0, r, c] = 1.0
            if F.max_pool2d(x, k, s, p, d, ceil_mode=ceil).max() == 1.0:
                covered.add((r, c))
    return covered


@pytest.mark.parametrize(
    "h, w, k, s, p, d, ceil",
    [(5, 5, 2, 2, 0, 1, False), (5, 5, 2, 2, 0, 1, True), (7, 6, 3, 2, 1, 1, True),
     (6, 6, 2, 3, 0, 1, False), (7, 7, 2, 1, 0, 3, False), (9, 8, 3, 2, 1, 2, True)],
)  # fmt: skip
def test_arithmetic_agrees_with_pytorch(h, w, k, s, p, d, ceil):
    geo = arithmetic((h, w), kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    out = F.max_pool2d(torch.zeros(1, 1, h, w), k, s, p, d, ceil_mode=ceil)
    assert geo.out_shape == tuple(out.shape[-2:])
    cells = {(r, c) for r in range(h) for c in range(w)}
    assert cells - geo.uncovered == _covered_by_torch(h, w, k, s, p, d, ceil)
    floor = F.max_pool2d(torch.zeros(1, 1, h, w), k, s, p, d).shape[-2:]
    assert len(geo.extra) == geo.out_shape[0] * geo.out_shape[1] - floor[0] * floor[1]
    # every window holds its own argmax (PyTorch's return_indices on random data)
    x = torch.randn(1, 1, h, w)
    _, idx = F.max_pool2d(x, k, s, p, d, ceil_mode=ceil, return_indices=True)
    for (i, j), taps in geo.windows.items():
        assert divmod(int(idx[0, 0, i, j]), w) in taps
        assert len(taps) == k * k


def test_floor_drops_the_last_row_and_ceil_adds_windows_on_5x5():
    floor, ceil = (
        arithmetic(5, kernel_size=2, stride=2),
        arithmetic(5, kernel_size=2, stride=2, ceil_mode=True),
    )
    last = {(4, c) for c in range(5)} | {(r, 4) for r in range(5)}
    assert floor.uncovered == last and ceil.uncovered == frozenset()
    assert ceil.extra == {(2, 0), (2, 1), (2, 2), (0, 2), (1, 2)}
    fig = viz.plot_floor_vs_ceil(5, 2, 2)
    gids = [p.get_gid() for ax in fig.axes for p in ax.patches]
    assert gids.count("window-extra") == 5 and gids.count("window") == 4 + 4
    hatched = [p for ax in fig.axes for p in ax.patches if p.get_gid() == "input" and p.get_hatch()]
    assert len(hatched) == 9


def test_plot_arithmetic_writes_the_values_pytorch_returns():
    neg = -np.arange(1.0, 10.0).reshape(3, 3)
    fig = viz.plot_arithmetic(neg, kernel_size=3, stride=1, padding=1, windows=[(0, 0)])
    ax_in, ax_out = fig.axes
    expected = F.max_pool2d(torch.from_numpy(neg)[None, None], 3, 1, 1)[0, 0].numpy()
    texts = [t.get_text() for t in ax_out.texts]
    assert texts == [viz.format_value(v) for v in expected.flatten()]
    assert sum(t.get_text() == "−∞" for t in ax_in.texts) == 5 * 5 - 9
    with pytest.raises(ValueError, match="outside the output"):
        viz.plot_arithmetic(5, kernel_size=2, stride=2, windows=[(2, 0)])


def test_window_animation_has_one_frame_per_output_cell_and_renders_offline():
    toy = np.arange(16.0).reshape(4, 4)
    anim = viz.window_animation(toy, kernel_size=2, stride=2, dpi=40)
    html = viz.animation_html(anim)
    assert html.count("data:image/png;base64") == 4
    assert "https://" not in html and "http://" not in html, "plays offline"
    assert "fa fa-" not in html and "▶" in html, "icons as text, no icon font"
    fig = anim._fig
    assert [t.get_text() for t in fig.axes[1].texts] == ["5", "7", "13", "15"]  # last frame
    with pytest.raises(ValueError, match="at most 36 output cells"):
        viz.window_animation(np.zeros((14, 14)), kernel_size=2, stride=2)
