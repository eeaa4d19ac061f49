"""pooltools.widgets against PyTorch: explorer states, shape formulas, coverage, and the widget."""

from __future__ import annotations

import base64
import itertools
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from pooltools import viz
from pooltools.shapes import never_covered, uncovered
from pooltools.widgets import (
    ExplorerState,
    explore,
    format_shape_formula,
    pooling_explorer,
    render,
)

TOY = np.array([[1, 3, 2, 1], [4, 6, 5, 0], [2, 1, 9, 7], [0, 8, 3, 4]])
IMAGE = np.random.default_rng(0).integers(0, 256, size=(9, 11, 3), dtype=np.uint8)


def torch_call(x: np.ndarray, k, s, p, d, ceil, op):
    """PyTorch's (output laid out like x, None) or (None, its error text)."""
    chw = x[None] if x.ndim == 2 else np.moveaxis(x, -1, 0)
    t = torch.from_numpy(np.ascontiguousarray(chw, dtype=np.float64))[None]
    try:
        if op == "max":
            out = F.max_pool2d(t, k, s, p, d, ceil_mode=ceil)
        elif d != 1:
            out = F.avg_pool2d(t, k, s, p, ceil, dilation=d)
        else:
            out = F.avg_pool2d(t, k, s, p, ceil)
    except (RuntimeError, TypeError) as error:
        return None, str(error)
    out = out[0].numpy()
    return (out[0] if x.ndim == 2 else np.moveaxis(out, 0, -1)), None


def torch_length(size, k, s, p, d, ceil):
    """PyTorch's output length along one axis, or None where it refuses."""
    try:
        return F.max_pool2d(torch.zeros(1, 1, size, 1), (k, 1), (s, 1), (p, 0), (d, 1),
                            ceil_mode=ceil).shape[2]  # fmt: skip
    except RuntimeError:
        return None


def torch_never_covered(size, k, s, p, d, ceil) -> list[int]:
    """Brute force with PyTorch: a lone 1 at row r reaches the output iff some window covers r."""
    missed = []
    for r in range(size):
        x = torch.zeros(1, 1, size, 1)
        x[0, 0, r, 0] = 1
        out = F.max_pool2d(x, (k, 1), (s, 1), (p, 0), (d, 1), ceil_mode=ceil)
        if out.max() < 1:
            missed.append(r)
    return missed


# --------------------------------------------------------------------------- explore


SETTINGS = list(
    itertools.product(
        [1, 2, 3],  # kernel_size
        [None, 1, 2, 3],  # stride
        [0, 1],  # padding
        [1, 2],  # dilation
        [False, True],  # ceil_mode
        ["max", "avg"],
    )
)


@pytest.mark.parametrize("x", [TOY, IMAGE], ids=["matrix", "image"])
def test_explore_equals_torch_or_reports_torchs_error(x):
    refused = 0
    for k, s, p, d, ceil, op in SETTINGS:
        state = explore(x, kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil, op=op)
        expected, error = torch_call(x, k, s, p, d, ceil, op)
        if error is not None:
            refused += 1
            assert state.error == error and state.output is None and state.out_shape is None
            assert state.shape_text == "output shape: none (PyTorch refuses these settings)"
        else:
            assert state.error is None
            np.testing.assert_array_equal(state.output, expected)
            assert state.out_shape == expected.shape[:2]
    assert 0 < refused < len(SETTINGS)  # the grid really contains both kinds


@pytest.mark.parametrize(
    "kwargs, torch_kwargs",
    [
        (dict(kernel_size=2, padding=2), dict(kernel_size=2, padding=2)),  # pad > kernel // 2
        (dict(kernel_size=5), dict(kernel_size=5)),  # output size 0
        (dict(kernel_size=3, dilation=2), dict(kernel_size=3, dilation=2)),  # dilated too big
        (dict(kernel_size=0, stride=1), dict(kernel_size=0, stride=1)),
        (dict(kernel_size=2, padding=-1), dict(kernel_size=2, padding=-1)),
        (dict(kernel_size=2, dilation=0), dict(kernel_size=2, dilation=0)),
    ],
)
def test_explore_reports_torchs_own_error_text(kwargs, torch_kwargs):
    with pytest.raises(RuntimeError) as theirs:
        F.max_pool2d(torch.zeros(1, 1, 4, 4), **torch_kwargs)
    state = explore(TOY, **kwargs)
    assert state.error == str(theirs.value)
    assert state.output is None and state.out_shape is None and state.window_cells == []


def test_explore_avg_with_dilation_reports_torchs_refusal():
    with pytest.raises(TypeError) as theirs:
        F.avg_pool2d(torch.zeros(1, 1, 4, 4), 2, dilation=2)
    state = explore(TOY, kernel_size=2, dilation=2, op="avg")
    assert state.error == str(theirs.value) and state.output is None


def test_explore_window_cells_and_argmax_follow_torch():
    state = explore(TOY, kernel_size=2, cell=(1, 1))
    assert isinstance(state, ExplorerState)
    assert state.window_cells == [(2, 2), (2, 3), (3, 2), (3, 3)]
    _, idx = F.max_pool2d(torch.from_numpy(TOY).double()[None, None], 2, return_indices=True)
    assert state.argmax == [divmod(int(idx[0, 0, 1, 1]), 4)] == [(2, 2)]
    assert state.stride == (2, 2)  # None became the kernel size, as in PyTorch
    image_state = explore(IMAGE, kernel_size=3, stride=2, padding=1, cell=(2, 3))
    assert len(image_state.argmax) == 3 and image_state.shape_text == "output shape: 5 × 6 × 3"
    assert explore(TOY, kernel_size=2, op="avg").argmax is None


def test_explore_clamps_the_cell_into_the_output():
    assert explore(TOY, kernel_size=2, cell=(7, 9)).cell == (1, 1)
    assert explore(TOY, kernel_size=2, cell=(-3, 0)).cell == (0, 0)


def test_explore_warns_about_dropped_rows_gaps_and_padding_only_windows():
    state = explore(np.zeros((25, 25)), kernel_size=2, stride=2)
    assert state.out_shape == (12, 12) and state.shape_text == "output shape: 12 × 12"
    assert state.warnings == [
        "the last 1 row(s) and 1 column(s) of the input are never covered by any window"
    ]
    assert explore(np.zeros((24, 25)), kernel_size=2).warnings == [
        "the last 1 column(s) of the input are never covered by any window"
    ]
    gaps = explore(
        np.zeros((8, 8)), kernel_size=2, stride=3
    ).warnings  # stride 3 > kernel 2: every third row
    assert any("row(s) 2, 5 and column(s) 2, 5 fall in gaps" in w for w in gaps)
    blind = explore(
        np.arange(5)[None], kernel_size=2, stride=1, padding=1, dilation=2
    )  # taps at rows -1 and 1 only
    assert np.all(blind.output == -math.inf)
    assert any("5 output cell(s) have windows that lie wholly in the padding" in w
               for w in blind.warnings)  # fmt: skip
    assert blind.argmax == []
    assert explore(TOY, kernel_size=2, stride=2, padding=0).warnings == []


def test_explore_notes_ceil_mode_and_avg_padding():
    hangs = explore(np.zeros((5, 5)), kernel_size=2, stride=2, padding=0, ceil_mode=True)
    assert hangs.out_shape == (3, 3)
    assert any("hangs past the padded input" in w for w in hangs.warnings)
    dropped = explore(
        np.zeros((5, 5)), kernel_size=3, stride=3, padding=1, ceil_mode=True
    )  # 3rd window starts in padding
    assert any("PyTorch drops such a window" in w for w in dropped.warnings)
    assert any(
        "count_include_pad=True" in w
        for w in explore(TOY, kernel_size=2, padding=1, op="avg").warnings
    )


# --------------------------------------------------------------------------- shape arithmetic


def test_format_shape_formula_hand_checked():
    assert format_shape_formula(25, 2) == "H_out = floor((25 + 2·0 − 1·(2−1) − 1) / 2 + 1) = 12"
    assert format_shape_formula(5, 3, 3, 1, ceil_mode=True, axis="W") == (
        "W_out = ceil((5 + 2·1 − 1·(3−1) − 1) / 3 + 1) − 1 = 2"
    )
    assert "undefined" in format_shape_formula(5, 2, 0)


def evaluate(formula: str) -> tuple[int, int]:
    """(value of the written expression, the number after the last '=')."""
    expression, value = re.fullmatch(r"[HW]_out = (.*) = (-?\d+)", formula).groups()
    python = expression.replace("·", "*").replace("−", "-")
    python = python.replace("floor", "math.floor").replace("ceil", "math.ceil")
    return eval(python, {"math": math}), int(value)  # noqa: S307 - our own arithmetic text


def test_format_shape_formula_evaluates_to_torchs_shape():
    checked = 0
    for size, k, s, p, d, ceil in itertools.product(
        range(1, 9), range(1, 5), range(1, 4), range(0, 3), range(1, 3), (False, True)
    ):
        expected = torch_length(size, k, s, p, d, ceil)
        if expected is None:
            continue
        written, shown = evaluate(format_shape_formula(size, k, s, p, d, ceil))
        assert written == shown == expected, (size, k, s, p, d, ceil)
        checked += 1
    assert checked > 300


def test_explore_formulas_match_its_output_shape():
    state = explore(IMAGE, kernel_size=3, stride=2, padding=1, ceil_mode=True)
    assert [evaluate(f)[1] for f in (state.formula_h, state.formula_w)] == list(state.out_shape)
    assert state.formula_w.startswith("W_out = ceil((11 + 2·1")


def test_uncovered_hand_checked():
    assert uncovered(25, 2, 2) == 1
    assert uncovered(24, 2, 2) == 0
    assert uncovered(25, 2, 2, ceil_mode=True) == 0
    assert uncovered(7, 3, 3) == 1
    assert never_covered(7, 2, 4, 0, 3) == [1, 2, 4, 5, 6]  # taps 0 and 3; rows 4.. dropped
    with pytest.raises(ValueError, match="padding should be at most half"):
        uncovered(5, 2, 2, 2)


@settings(max_examples=80, deadline=None)
@given(
    size=st.integers(1, 14),
    k=st.integers(1, 5),
    s=st.integers(1, 5),
    p=st.integers(0, 2),
    d=st.integers(1, 3),
    ceil=st.booleans(),
)
def test_uncovered_and_never_covered_match_torch_brute_force(size, k, s, p, d, ceil):
    if torch_length(size, k, s, p, d, ceil) is None:
        with pytest.raises(ValueError):
            uncovered(size, k, s, p, d, ceil)
        return
    missed = torch_never_covered(size, k, s, p, d, ceil)
    assert never_covered(size, k, s, p, d, ceil) == missed
    trailing = 0
    while trailing < size and size - 1 - trailing in missed:
        trailing += 1
    assert uncovered(size, k, s, p, d, ceil) == trailing


# --------------------------------------------------------------------------- render


def test_render_draws_pooling_with_formulas():
    fig = render(explore(TOY, kernel_size=2, cell=(1, 0)))
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.axes[1].get_title() == "output 2×2"
    assert "H_out = floor((4 + 2·0" in fig.get_supxlabel()
    assert render(explore(TOY, kernel_size=2), show_text=False).get_supxlabel() == ""


def test_render_error_state_shows_the_input_and_torchs_message():
    state = explore(TOY, kernel_size=2, padding=2)
    fig = render(state)
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "input 4×4"
    assert "PyTorch refuses these settings" in fig.get_supxlabel()
    assert "pad should be at most half" in fig.get_supxlabel()
    assert render(explore(IMAGE, kernel_size=20)).axes[0].get_title() == "input 9×11×3"


# --------------------------------------------------------------------------- the widget


def test_widget_builds_headless_and_stride_updates_the_label():
    box = pooling_explorer(np.zeros((25, 25)))
    assert box.controls["stride"].description == "stride"
    assert "output shape: 12 × 12" in box.shape_label.value
    assert box.controls["row"].max == 11
    (shown,) = box.output.outputs
    assert base64.b64decode(shown["data"]["image/png"]).startswith(b"\x89PNG")

    box.controls["stride"].value = 1
    assert "output shape: 24 × 24" in box.shape_label.value
    assert box.state.stride == (1, 1)
    assert box.controls["stride_is_kernel"].value is False  # the learner chose their own stride
    assert box.controls["row"].max == 23


def test_widget_stride_follows_kernel_while_linked():
    box = pooling_explorer(TOY, draw=False)
    box.controls["kernel_size"].value = 3
    assert box.controls["stride"].value == 3 and "output shape: 1 × 1" in box.shape_label.value
    box.controls["stride"].value = 1
    box.controls["kernel_size"].value = 2
    assert box.controls["stride"].value == 1  # unlinked now: stride stays
    assert "output shape: 3 × 3" in box.shape_label.value
    box.controls["stride_is_kernel"].value = True
    assert box.controls["stride"].value == 2 and "output shape: 2 × 2" in box.shape_label.value


def test_widget_shows_torchs_error_and_recovers():
    box = pooling_explorer(TOY, draw=False)
    box.controls["row"].value = 1
    box.controls["padding"].value = 2
    assert "none (PyTorch refuses" in box.shape_label.value
    assert "pad should be at most half of effective kernel size" in box.details.value
    assert box.controls["row"].disabled
    box.controls["padding"].value = 1
    assert "output shape: 3 × 3" in box.shape_label.value and not box.controls["row"].disabled
    assert "H_out = floor((4 + 2·1 − 1·(2−1) − 1) / 2 + 1) = 3" in box.details.value


def test_widget_cell_sliders_pick_the_window():
    box = pooling_explorer(viz.as_grid(IMAGE), draw=False)
    box.controls["row"].value, box.controls["col"].value = 3, 4
    assert box.state.cell == (3, 4)
    assert box.state.window_cells[0] == (6, 8)
    box.controls["op"].value = "avg"
    assert box.state.argmax is None and box.state.cell == (3, 4)
